//! Configuration: defaults, then an optional TOML file, then environment variables and
//! flags (clap reads both; a flag wins over its variable). Every field of the file is
//! optional; unknown keys are errors, so a typo does not silently fall back to a default.
//!
//! ```toml
//! grpc_addr = "0.0.0.0:50051"
//! http_addr = "0.0.0.0:9090"
//! database_url = "postgres://postgres@db:5432/liftguard"
//! kafka_brokers = "kafka:9092"          # absent: the embedded in-process bus
//! [bus]
//! partitions = 12
//! [store]
//! max_connections = 8
//! [store.retention]                     # days; 0 = keep forever
//! kinematics_days = 30
//! reps_days = 3650
//! [store.compression]                   # TimescaleDB only
//! reps_after_days = 30
//! [store.rollups]
//! refresh_interval_s = 60
//! [processor]
//! commit_interval_ms = 500
//! [processor.biomech]
//! kinematics_rate_hz = 25.0
//! [sink]
//! max_batch_records = 1000
//! [api.alerts]                          # AlertService (api role)
//! poll_interval_ms = 50
//! [api.webhooks]                        # the webhook dispatcher (api role)
//! max_attempts = 10
//! [api.dashboard]                       # the clinicians' dashboard (api role), HTTP
//! addr = "0.0.0.0:8080"                 # absent: not served (--dashboard-addr)
//! ```

use std::{net::SocketAddr, path::Path};

use anyhow::Context as _;
use liftguard_processor::ProcessorConfig;
use liftguard_sink::SinkConfig;
use serde::Deserialize;

/// Bus tunables shared by both bus kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSection {
    /// Partitions of the embedded bus, and of Kafka topics when liftguard creates them.
    pub partitions: u32,
    /// Embedded bus bound: records retained per partition before producers are pushed back.
    pub max_retained_per_partition: usize,
    /// Extra librdkafka properties (e.g. security.protocol, sasl.*).
    pub kafka: std::collections::BTreeMap<String, String>,
}

impl Default for BusSection {
    fn default() -> Self {
        Self {
            partitions: 8,
            max_retained_per_partition: 50_000,
            kafka: Default::default(),
        }
    }
}

/// Store tunables.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// Connection pool size (1 for single-client servers such as pglite).
    pub max_connections: u32,
    /// `[store.retention]`: days kept per table (0 = forever) and how often the fallbacks
    /// enforce it; see `liftguard_store::RetentionPolicy` for the defaults.
    pub retention: liftguard_store::RetentionPolicy,
    /// `[store.compression]`: TimescaleDB columnstore ages per table (no fallback).
    pub compression: liftguard_store::CompressionPolicy,
    /// `[store.rollups]`: refresh interval of the rollups.
    pub rollups: liftguard_store::RollupPolicy,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            max_connections: 8,
            retention: Default::default(),
            compression: Default::default(),
            rollups: Default::default(),
        }
    }
}

impl StoreSection {
    /// The store policies of this section.
    pub fn policies(&self) -> liftguard_store::Policies {
        liftguard_store::Policies {
            retention: self.retention.clone(),
            compression: self.compression.clone(),
            rollups: self.rollups.clone(),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub kafka_brokers: Option<String>,
    pub operator_token: Option<String>,
    pub bus: BusSection,
    pub store: StoreSection,
    pub ingest: liftguard_ingest::IngestConfig,
    pub api: liftguard_api::ApiConfig,
    pub processor: ProcessorConfig,
    pub sink: SinkConfig,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// Effective settings of a serving process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub database_url: String,
    pub kafka_brokers: Option<String>,
    pub operator_token: Option<String>,
    pub file: FileConfig,
}

pub const DEFAULT_GRPC_ADDR: &str = "0.0.0.0:50051";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:9090";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://liftguard.db?mode=rwc";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_all_defaults_and_typos_are_errors() {
        let c: FileConfig = toml::from_str("").unwrap();
        assert_eq!(c.bus.partitions, 8);
        assert!(toml::from_str::<FileConfig>("grcp_addr = \"x\"").is_err());
        let c: FileConfig = toml::from_str(
            "kafka_brokers = \"k:9092\"\n[bus]\npartitions = 12\n[processor]\ncommit_interval_ms = 50\n",
        )
        .unwrap();
        assert_eq!(c.kafka_brokers.as_deref(), Some("k:9092"));
        assert_eq!(c.bus.partitions, 12);
        assert_eq!(c.processor.commit_interval_ms, 50);
    }

    #[test]
    fn alert_and_webhook_sections() {
        let c: FileConfig = toml::from_str(
            "[api.alerts]\npoll_interval_ms = 10\n[api.webhooks]\nmax_attempts = 3\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.api.alerts.poll_interval_ms, 10);
        assert_eq!(c.api.webhooks.max_attempts, 3);
        assert!(!c.api.webhooks.enabled);
        assert_eq!(
            c.api.webhooks.concurrency, 8,
            "unset fields keep their defaults"
        );
        assert!(toml::from_str::<FileConfig>("[api.webhooks]\nmax_atempts = 3\n").is_err());
    }
}
