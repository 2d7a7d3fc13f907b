//! The liftguard wire protocol (`proto/liftguard/v1`), generated at build time.
//!
//! Invariant: this crate contains generated code and nothing else; conversions between
//! wire types and domain types live with the code that owns the domain type.

#![allow(clippy::all, clippy::pedantic, rust_2018_idioms)]

/// `liftguard.v1`: messages and services.
pub mod v1 {
    tonic::include_proto!("liftguard.v1");
}

/// Encoded `FileDescriptorSet` of every liftguard proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/liftguard_descriptor.bin"));
