//! What every long-running liftguard role shares.
//!
//! - [`telemetry`]: tracing subscriber setup (human or JSON logs, `RUST_LOG` filter).
//! - [`http`]: the operations endpoint of a role: `/metrics` (Prometheus), `/healthz`
//!   (liveness: the process runs) and `/readyz` (readiness: every component reported ready).
//! - [`shutdown`]: one cancellation token per process, triggered by SIGTERM/SIGINT, and the
//!   ordered-shutdown convention (front door closes first, then buses flush, then commits).
//! - [`grpc`]: gRPC health and reflection for any set of services.
//! - [`auth`]: bearer-token authentication shared by the gRPC services.
//! - [`metrics`]: registration helpers for Prometheus metrics.
//! - [`status`]: the one mapping from [`ErrorKind`] to `tonic::Status`.
//!
//! Invariant: no domain logic lives here.

pub mod auth;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;

pub use liftguard_model::ErrorKind;

/// Maps the error vocabulary to a gRPC status (one code per kind, see [`ErrorKind::grpc_code`]).
pub fn status(kind: ErrorKind, msg: impl Into<String>) -> tonic::Status {
    tonic::Status::new(tonic::Code::from(kind.grpc_code()), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_grpc_code() {
        for (kind, code) in [
            (ErrorKind::InvalidArgument, tonic::Code::InvalidArgument),
            (ErrorKind::Unauthenticated, tonic::Code::Unauthenticated),
            (ErrorKind::PermissionDenied, tonic::Code::PermissionDenied),
            (ErrorKind::NotFound, tonic::Code::NotFound),
            (ErrorKind::AlreadyExists, tonic::Code::AlreadyExists),
            (
                ErrorKind::FailedPrecondition,
                tonic::Code::FailedPrecondition,
            ),
            (ErrorKind::OutOfRange, tonic::Code::OutOfRange),
            (ErrorKind::ResourceExhausted, tonic::Code::ResourceExhausted),
            (ErrorKind::Unavailable, tonic::Code::Unavailable),
            (ErrorKind::Internal, tonic::Code::Internal),
        ] {
            assert_eq!(status(kind, "x").code(), code, "{kind:?}");
        }
    }
}
