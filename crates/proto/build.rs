//! Compiles `proto/liftguard/v1/*.proto` with protox (pure Rust, no system protoc) and
//! generates prost messages plus tonic clients and servers.
use std::{env, fs, path::PathBuf};

use prost::Message;

const FILES: &[&str] = &[
    "liftguard/v1/common.proto",
    "liftguard/v1/ingest.proto",
    "liftguard/v1/registry.proto",
    "liftguard/v1/records.proto",
    "liftguard/v1/query.proto",
    "liftguard/v1/analytics.proto",
    "liftguard/v1/signals.proto",
    "liftguard/v1/alerts.proto",
    "liftguard/v1/access.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(FILES, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("liftguard_descriptor.bin"), fds.encode_to_vec())?;
    // Messages the processor keeps in checkpointed per-athlete state are serde-serializable.
    let serde = "#[derive(serde::Serialize, serde::Deserialize)]";
    tonic_prost_build::configure()
        .type_attribute(".liftguard.v1.SetContext", serde)
        .type_attribute(".liftguard.v1.AthleteProfile", serde)
        .type_attribute(".liftguard.v1.EnrichedBatch", serde)
        .compile_fds(fds)?;
    Ok(())
}
