//! The sink role: consumes `liftguard.reps.v1` and `liftguard.kinematics.v1` and upserts
//! them into the store.
//!
//! Invariants:
//! - Offsets are committed only after the rows of every record up to them are written,
//!   so a crash re-delivers and re-writes; writes are upserts by natural key, so the
//!   store ends up the same as if nothing had happened (effectively once).
//! - A store failure is retried with capped exponential backoff and never skipped: the
//!   sink stops consuming (bus lag grows, the bus's bounds push back) until it recovers.
//! - An undecodable record is counted, logged and skipped.
//! - A batch holds at most `max_batch_records` records: memory is bounded.

use std::{collections::HashMap, time::Duration};

use liftguard_bus::{Bus, BusError, Consumer, Message};
use liftguard_model::topics;
use liftguard_proto::v1 as pb;
use liftguard_runtime::metrics::{LATENCY_BUCKETS, counter, counter_vec, gauge, histogram};
use liftguard_store::{Store, StoreError};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    pub group: String,
    /// Write when this many records are buffered...
    pub max_batch_records: usize,
    /// ...or when the oldest buffered record is this old (ms).
    pub max_batch_delay_ms: u64,
    /// Cap of the retry backoff on store failures (ms).
    pub max_retry_backoff_ms: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            group: "liftguard-sink".into(),
            max_batch_records: 1000,
            max_batch_delay_ms: 100,
            max_retry_backoff_ms: 5000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
struct SinkMetrics {
    rows: IntCounterVec,
    records: IntCounterVec,
    written: IntCounterVec,
    decode_errors: IntCounter,
    write_errors: IntCounter,
    write_seconds: Histogram,
    lag: IntGauge,
}

impl SinkMetrics {
    fn register(r: &Registry) -> Self {
        Self {
            rows: counter_vec(
                r,
                "liftguard_sink_rows_total",
                "Rows upserted, by table",
                &["table"],
            ),
            records: counter_vec(
                r,
                "liftguard_sink_records_total",
                "Bus records consumed, by topic",
                &["topic"],
            ),
            written: counter_vec(
                r,
                "liftguard_sink_written_records_total",
                "Bus records whose rows are in the store (counted after the write), by topic",
                &["topic"],
            ),
            decode_errors: counter(
                r,
                "liftguard_sink_decode_errors_total",
                "Undecodable records skipped",
            ),
            write_errors: counter(
                r,
                "liftguard_sink_write_errors_total",
                "Failed store writes (retried)",
            ),
            write_seconds: histogram(
                r,
                "liftguard_sink_write_seconds",
                "Time to upsert one batch",
                LATENCY_BUCKETS,
            ),
            lag: gauge(
                r,
                "liftguard_sink_bus_lag",
                "Records not yet consumed by the sink",
            ),
        }
    }
}

/// Records decoded and waiting to be written.
#[derive(Debug, Default)]
struct Batch {
    reps: Vec<pb::RepRecord>,
    kinematics: Vec<pb::KinematicsChunk>,
    records: usize,
    /// Records per topic in this batch (decodable or not).
    per_topic: HashMap<String, u64>,
    positions: HashMap<(String, i32), i64>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.records == 0
    }
}

pub struct Sink {
    cfg: SinkConfig,
    consumer: Consumer,
    store: Store,
    metrics: SinkMetrics,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("group", &self.cfg.group)
            .finish()
    }
}

impl Sink {
    pub fn new(
        cfg: SinkConfig,
        bus: &Bus,
        store: Store,
        registry: &Registry,
    ) -> Result<Self, SinkError> {
        let consumer = bus.consumer(&cfg.group, &[topics::REPS, topics::KINEMATICS])?;
        Ok(Self {
            cfg,
            consumer,
            store,
            metrics: SinkMetrics::register(registry),
        })
    }

    /// Runs until `stop` fires; then, with `drain` set, keeps consuming until the group has
    /// no lag (or `drain` elapses); writes what it holds, commits and returns.
    pub async fn run(
        mut self,
        stop: CancellationToken,
        drain: Option<Duration>,
    ) -> Result<(), SinkError> {
        let delay = Duration::from_millis(self.cfg.max_batch_delay_ms.max(1));
        let mut batch = Batch::default();
        loop {
            let deadline = tokio::time::sleep(delay);
            tokio::pin!(deadline);
            // Fill the batch until it is full, the delay passed (with something in it), or stop.
            let stopping = loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break true,
                    _ = &mut deadline, if !batch.is_empty() => break false,
                    msg = self.consumer.recv() => {
                        self.add(&mut batch, msg?);
                        if batch.records >= self.cfg.max_batch_records {
                            break false;
                        }
                    }
                }
            };
            self.write(&mut batch, &stop).await?;
            self.metrics.lag.set(self.consumer.lag());
            if stopping {
                if let Some(limit) = drain {
                    self.drain(&mut batch, limit).await?;
                }
                tracing::info!("sink stopped after writing and committing its input");
                return Ok(());
            }
        }
    }

    async fn drain(&mut self, batch: &mut Batch, limit: Duration) -> Result<(), SinkError> {
        let deadline = tokio::time::Instant::now() + limit;
        // Writes during the drain must not be abandoned by a cancelled token.
        let live = CancellationToken::new();
        while self.consumer.lag() > 0 && tokio::time::Instant::now() < deadline {
            if let Ok(msg) =
                tokio::time::timeout(Duration::from_millis(100), self.consumer.recv()).await
            {
                self.add(batch, msg?);
                if batch.records >= self.cfg.max_batch_records {
                    self.write(batch, &live).await?;
                }
            }
        }
        self.write(batch, &live).await
    }

    fn add(&self, batch: &mut Batch, msg: Message) {
        self.metrics.records.with_label_values(&[&msg.topic]).inc();
        batch.records += 1;
        *batch.per_topic.entry(msg.topic.clone()).or_default() += 1;
        batch
            .positions
            .insert((msg.topic.clone(), msg.partition), msg.offset + 1);
        let ok = match msg.topic.as_str() {
            topics::REPS => pb::RepRecord::decode(msg.payload.as_slice())
                .map(|r| batch.reps.push(r))
                .is_ok(),
            topics::KINEMATICS => pb::KinematicsChunk::decode(msg.payload.as_slice())
                .map(|k| batch.kinematics.push(k))
                .is_ok(),
            _ => false,
        };
        if !ok {
            self.metrics.decode_errors.inc();
            tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, "undecodable record skipped");
        }
    }

    /// Writes the batch (retrying until it succeeds, or until stop during a failure
    /// streak, in which case nothing is committed and the records are redelivered later),
    /// then commits.
    async fn write(
        &mut self,
        batch: &mut Batch,
        stop: &CancellationToken,
    ) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = std::time::Instant::now();
            match self.write_once(batch).await {
                Ok(()) => {
                    self.metrics
                        .write_seconds
                        .observe(started.elapsed().as_secs_f64());
                    break;
                }
                Err(e) => {
                    self.metrics.write_errors.inc();
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "store write failed; retrying");
                    if stop.is_cancelled() {
                        tracing::warn!(
                            "stopping during a store outage: records stay uncommitted and will be redelivered"
                        );
                        *batch = Batch::default();
                        return Ok(());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => {}
                    }
                    backoff =
                        (backoff * 2).min(Duration::from_millis(self.cfg.max_retry_backoff_ms));
                }
            }
        }
        let offsets: Vec<(String, i32, i64)> = batch
            .positions
            .drain()
            .map(|((t, p), o)| (t, p, o))
            .collect();
        self.consumer.commit(&offsets)?;
        for (topic, n) in &batch.per_topic {
            self.metrics.written.with_label_values(&[topic]).inc_by(*n);
        }
        *batch = Batch::default();
        Ok(())
    }

    async fn write_once(&self, batch: &Batch) -> Result<(), StoreError> {
        if !batch.reps.is_empty() {
            let n = self.store.upsert_reps(&batch.reps).await?;
            self.metrics.rows.with_label_values(&["reps"]).inc_by(n);
        }
        if !batch.kinematics.is_empty() {
            let n = self.store.upsert_kinematics(&batch.kinematics).await?;
            self.metrics
                .rows
                .with_label_values(&["kinematics"])
                .inc_by(n);
        }
        Ok(())
    }
}
