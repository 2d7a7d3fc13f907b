//! The sink role: consumes `liftguard.reps.v1`, `liftguard.kinematics.v1`,
//! `liftguard.alerts.v1` and `liftguard.risk.v1` and upserts them into the store.
//!
//! Invariants:
//! - Offsets are committed only after the rows of every record up to them are written,
//!   so a crash re-delivers and re-writes; writes are upserts by natural key, so the
//!   store ends up the same as if nothing had happened (effectively once).
//! - A store failure is retried with capped exponential backoff and never skipped: the
//!   sink stops consuming (bus lag grows, the bus's bounds push back) until it recovers.
//! - An undecodable record is counted, logged and skipped.
//! - Alerts and risk records the store refuses as invalid (`InvalidArgument` naming the
//!   record) are counted (`liftguard_sink_invalid_records_total{topic}`), logged and
//!   dropped, and the rest of the batch is written: one bad record never stalls the topic.
//! - Alerts are written with their webhook outbox rows in one transaction
//!   (`Store::upsert_alerts`): an alert is in the store exactly when its deliveries are
//!   queued, and a replayed alert queues nothing new.
//! - A batch holds at most `max_batch_records` records: memory is bounded. It is written
//!   when full, after `max_batch_delay_ms`, or (`write_when_idle`, the default) as soon as
//!   no further record is ready: latency is one write when idle, batches grow under load.
//! - Two writer lanes, each batching and writing on its own: reps, alerts and risk (few
//!   rows, what people wait for), and kinematics (the bulk). A rep never waits behind a
//!   kinematics write. One task owns the consumer, hands records to their topic's lane
//!   (bounded: a slow lane stops the consumption) and commits what a lane reports
//!   written; lanes own disjoint topics, so per partition the commit order is the write
//!   order. Commits are limited to partitions the consumer still owns.
//! - Within a lane's write, reps go before alerts and risk (separate transactions, no
//!   dependency between them; its offsets are committed after all of them).
//! - Visibility latency: right after the rows of reps (and of alerts) are committed, each
//!   record's `now − source_received_us` (ingest receive time of the input batch that
//!   emitted it) is observed in `liftguard_sink_visible_latency_seconds{topic}`; with
//!   `RUST_LOG=liftguard_sink::latency=debug` every value is also logged exactly (one
//!   event per write, target `liftguard_sink::latency`, field `latencies_us`), for
//!   benchmarks that need exact percentiles. Records without a receive time are skipped.

pub mod maintenance;

use std::{collections::HashMap, time::Duration};

use liftguard_bus::{Bus, BusError, Consumer, Message};
use liftguard_model::topics;
use liftguard_proto::v1 as pb;
use liftguard_runtime::metrics::{
    LATENCY_BUCKETS, counter, counter_vec, gauge, histogram, histogram_vec,
};
use liftguard_store::{Store, StoreError};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    pub group: String,
    /// Write when this many records are buffered...
    pub max_batch_records: usize,
    /// ...or when the oldest buffered record is this old (ms)...
    pub max_batch_delay_ms: u64,
    /// ...or, when set, as soon as no further record is ready on the bus (group commit:
    /// an idle sink writes at once; under load a batch holds what arrived during the
    /// previous write, so batches grow with the load and no time is spent lingering).
    pub write_when_idle: bool,
    /// Cap of the retry backoff on store failures (ms).
    pub max_retry_backoff_ms: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            group: "liftguard-sink".into(),
            max_batch_records: 1000,
            max_batch_delay_ms: 100,
            write_when_idle: true,
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
    #[error("sink writer lane: {0}")]
    Lane(String),
}

#[derive(Debug, Clone)]
struct SinkMetrics {
    rows: IntCounterVec,
    records: IntCounterVec,
    written: IntCounterVec,
    decode_errors: IntCounter,
    invalid: IntCounterVec,
    deliveries: IntCounter,
    write_errors: IntCounter,
    write_seconds: Histogram,
    visible: HistogramVec,
    lag: IntGauge,
}

/// Buckets of `liftguard_sink_visible_latency_seconds`: 5 ms steps up to 250 ms (the
/// target's neighbourhood), then coarser up to 10 s.
const VISIBLE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.055, 0.06, 0.065, 0.07,
    0.075, 0.08, 0.085, 0.09, 0.095, 0.1, 0.105, 0.11, 0.115, 0.12, 0.125, 0.13, 0.135, 0.14,
    0.145, 0.15, 0.155, 0.16, 0.165, 0.17, 0.175, 0.18, 0.185, 0.19, 0.195, 0.2, 0.205, 0.21,
    0.215, 0.22, 0.225, 0.23, 0.235, 0.24, 0.245, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5,
    2.0, 3.0, 5.0, 10.0,
];

/// Tracing target of the exact visibility latencies (debug level).
pub const LATENCY_LOG_TARGET: &str = "liftguard_sink::latency";

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
            invalid: counter_vec(
                r,
                "liftguard_sink_invalid_records_total",
                "Records the store refused as invalid and the sink dropped, by topic",
                &["topic"],
            ),
            deliveries: counter(
                r,
                "liftguard_sink_webhook_deliveries_queued_total",
                "Webhook outbox rows created with new alerts",
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
            visible: histogram_vec(
                r,
                "liftguard_sink_visible_latency_seconds",
                "From the ingest receive time of the input batch that emitted a record to its \
                 rows being committed, by topic (reps, alerts)",
                &["topic"],
                VISIBLE_BUCKETS,
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
    alerts: Vec<pb::AlertRecord>,
    risk: Vec<pb::RiskRecord>,
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

/// The topics the sink consumes.
pub const TOPICS: [&str; 4] = [
    topics::REPS,
    topics::KINEMATICS,
    topics::ALERTS,
    topics::RISK,
];

pub struct Sink {
    consumer: Consumer,
    writer: Writer,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("group", &self.writer.cfg.group)
            .finish()
    }
}

/// Lanes: 0 = reps, alerts and risk (few rows, what people wait for); 1 = kinematics (the
/// bulk). Each lane batches and writes on its own, so a rep never waits behind a
/// kinematics write.
const LANES: usize = 2;

fn lane_of(topic: &str) -> usize {
    usize::from(topic == topics::KINEMATICS)
}

/// What a lane wrote: the offsets it may commit, and its records per topic.
#[derive(Debug)]
struct Written {
    offsets: Vec<(String, i32, i64)>,
    per_topic: HashMap<String, u64>,
}

impl Sink {
    pub fn new(
        cfg: SinkConfig,
        bus: &Bus,
        store: Store,
        registry: &Registry,
    ) -> Result<Self, SinkError> {
        let consumer = bus.consumer(&cfg.group, &TOPICS)?;
        Ok(Self {
            consumer,
            writer: Writer {
                cfg,
                store,
                metrics: SinkMetrics::register(registry),
            },
        })
    }

    /// Runs until `stop` fires; then, with `drain` set, keeps consuming until the group has
    /// no lag (or `drain` elapses); writes what it holds, commits and returns.
    ///
    /// This task owns the consumer: it hands each record to its topic's lane (a task that
    /// batches and writes, see [`LANES`]) and commits the offsets a lane reports written.
    pub async fn run(
        mut self,
        stop: CancellationToken,
        drain: Option<Duration>,
    ) -> Result<(), SinkError> {
        // Cancelled on a stop without drain: a lane then abandons a write that fails (the
        // records stay uncommitted and are redelivered) instead of retrying forever.
        let abandon = CancellationToken::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Written>();
        let mut lanes = Vec::with_capacity(LANES);
        let mut tasks = Vec::with_capacity(LANES);
        for _ in 0..LANES {
            let (tx, rx) = mpsc::channel(self.writer.cfg.max_batch_records.max(1));
            lanes.push(tx);
            tasks.push(tokio::spawn(self.writer.clone().run_lane(
                rx,
                done_tx.clone(),
                abandon.clone(),
            )));
        }
        drop(done_tx);
        let pumped = self.pump(&stop, drain, &lanes, &mut done_rx).await;
        if drain.is_none() || pumped.is_err() {
            abandon.cancel();
        }
        // Close the lanes: each writes what it holds and ends.
        drop(lanes);
        for t in tasks {
            t.await.map_err(|e| SinkError::Lane(e.to_string()))?;
        }
        while let Some(w) = done_rx.recv().await {
            self.commit(w)?;
        }
        pumped?;
        tracing::info!("sink stopped after writing and committing its input");
        Ok(())
    }

    /// Hands records to the lanes and commits what they wrote, until stop (then, with
    /// `drain`, until no lag).
    async fn pump(
        &mut self,
        stop: &CancellationToken,
        drain: Option<Duration>,
        lanes: &[mpsc::Sender<Message>],
        done: &mut mpsc::UnboundedReceiver<Written>,
    ) -> Result<(), SinkError> {
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(w) = done.recv() => self.commit(w)?,
                msg = self.consumer.recv() => {
                    let msg = msg?;
                    self.writer.metrics.records.with_label_values(&[&msg.topic]).inc();
                    // A full lane (a slow store) stops the consumption: the bus pushes back.
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => break,
                        sent = lanes[lane_of(&msg.topic)].send(msg) => {
                            sent.map_err(|_| SinkError::Lane("a writer lane stopped".into()))?;
                        }
                    }
                }
            }
        }
        if let Some(limit) = drain {
            let deadline = tokio::time::Instant::now() + limit;
            while self.consumer.lag() > 0 && tokio::time::Instant::now() < deadline {
                while let Ok(w) = done.try_recv() {
                    self.commit(w)?;
                }
                if let Ok(msg) =
                    tokio::time::timeout(Duration::from_millis(100), self.consumer.recv()).await
                {
                    let msg = msg?;
                    self.writer
                        .metrics
                        .records
                        .with_label_values(&[&msg.topic])
                        .inc();
                    lanes[lane_of(&msg.topic)]
                        .send(msg)
                        .await
                        .map_err(|_| SinkError::Lane("a writer lane stopped".into()))?;
                }
            }
        }
        Ok(())
    }

    /// Commits a lane's written offsets (those of partitions this consumer still owns: a
    /// partition that moved is re-consumed by its new owner from its committed offset).
    fn commit(&self, w: Written) -> Result<(), SinkError> {
        let owned: std::collections::HashSet<(String, i32)> =
            self.consumer.assignment().into_iter().collect();
        let offsets: Vec<(String, i32, i64)> = w
            .offsets
            .into_iter()
            .filter(|(t, p, _)| owned.contains(&(t.clone(), *p)))
            .collect();
        if !offsets.is_empty() {
            self.consumer.commit(&offsets)?;
        }
        for (topic, n) in &w.per_topic {
            self.writer
                .metrics
                .written
                .with_label_values(&[topic])
                .inc_by(*n);
        }
        self.writer.metrics.lag.set(self.consumer.lag());
        Ok(())
    }
}

/// Decodes, batches and writes the records of one lane.
#[derive(Clone)]
struct Writer {
    cfg: SinkConfig,
    store: Store,
    metrics: SinkMetrics,
}

impl Writer {
    /// One lane: fills a batch until it is full, the delay passed (with something in it),
    /// or no record is ready (with `write_when_idle`; `biased` polls that arm only after
    /// `recv` returned pending); writes it; reports it written. Ends when its input closes,
    /// after writing what it holds.
    async fn run_lane(
        self,
        mut input: mpsc::Receiver<Message>,
        done: mpsc::UnboundedSender<Written>,
        abandon: CancellationToken,
    ) {
        let delay = Duration::from_millis(self.cfg.max_batch_delay_ms.max(1));
        let idle_write = self.cfg.write_when_idle;
        let mut batch = Batch::default();
        loop {
            let deadline = tokio::time::sleep(delay);
            tokio::pin!(deadline);
            let closed = loop {
                tokio::select! {
                    biased;
                    _ = &mut deadline, if !batch.is_empty() => break false,
                    msg = input.recv() => match msg {
                        Some(msg) => {
                            self.add(&mut batch, msg);
                            if batch.records >= self.cfg.max_batch_records {
                                break false;
                            }
                        }
                        None => break true,
                    },
                    () = std::future::ready(()), if idle_write && !batch.is_empty() => break false,
                }
            };
            if let Some(w) = self.write(&mut batch, &abandon).await {
                // The receiver lives until every lane has ended.
                let _ = done.send(w);
            }
            if closed {
                return;
            }
        }
    }

    fn add(&self, batch: &mut Batch, msg: Message) {
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
            topics::ALERTS => pb::AlertRecord::decode(msg.payload.as_slice())
                .map(|a| batch.alerts.push(a))
                .is_ok(),
            topics::RISK => pb::RiskRecord::decode(msg.payload.as_slice())
                .map(|r| batch.risk.push(r))
                .is_ok(),
            _ => false,
        };
        if !ok {
            self.metrics.decode_errors.inc();
            tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, "undecodable record skipped");
        }
    }

    /// Writes the batch, retrying until it succeeds, and returns what may be committed;
    /// `None` when there was nothing to write, or when `abandon` fires during a failure
    /// streak (nothing is committed then and the records are redelivered later).
    async fn write(&self, batch: &mut Batch, abandon: &CancellationToken) -> Option<Written> {
        if batch.is_empty() {
            return None;
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
                    if abandon.is_cancelled() {
                        tracing::warn!(
                            "stopping during a store outage: records stay uncommitted and will be redelivered"
                        );
                        *batch = Batch::default();
                        return None;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = abandon.cancelled() => {}
                    }
                    backoff =
                        (backoff * 2).min(Duration::from_millis(self.cfg.max_retry_backoff_ms));
                }
            }
        }
        let done = std::mem::take(batch);
        Some(Written {
            offsets: done
                .positions
                .into_iter()
                .map(|((t, p), o)| (t, p, o))
                .collect(),
            per_topic: done.per_topic,
        })
    }

    async fn write_once(&self, batch: &mut Batch) -> Result<(), StoreError> {
        if !batch.reps.is_empty() {
            let n = self.store.upsert_reps(&batch.reps).await?;
            self.metrics.rows.with_label_values(&["reps"]).inc_by(n);
            self.observe_visible(
                topics::REPS,
                batch.reps.iter().map(|r| r.source_received_us),
            );
        }
        while !batch.alerts.is_empty() {
            match self.store.upsert_alerts(&batch.alerts).await {
                Ok(w) => {
                    self.metrics
                        .rows
                        .with_label_values(&["alerts"])
                        .inc_by(w.inserted + w.updated);
                    self.metrics
                        .rows
                        .with_label_values(&["webhook_deliveries"])
                        .inc_by(w.deliveries);
                    self.metrics.deliveries.inc_by(w.deliveries);
                    self.observe_visible(
                        topics::ALERTS,
                        batch.alerts.iter().map(|a| a.source_received_us),
                    );
                    break;
                }
                Err(e) => {
                    self.drop_invalid(topics::ALERTS, &mut batch.alerts, e, |a| a.alert_id.clone())?
                }
            }
        }
        while !batch.risk.is_empty() {
            match self.store.upsert_risk(&batch.risk).await {
                Ok(n) => {
                    self.metrics
                        .rows
                        .with_label_values(&["risk_scores"])
                        .inc_by(n);
                    break;
                }
                Err(e) => {
                    self.drop_invalid(topics::RISK, &mut batch.risk, e, |r| r.risk_id.clone())?
                }
            }
        }
        // The bulk (one row per 25 Hz point) last, so reps and alerts are visible sooner.
        if !batch.kinematics.is_empty() {
            let n = self.store.upsert_kinematics(&batch.kinematics).await?;
            self.metrics
                .rows
                .with_label_values(&["kinematics"])
                .inc_by(n);
        }
        Ok(())
    }

    /// Observes `now − source_received_us` of records just committed (see the module docs).
    fn observe_visible(&self, topic: &str, received_us: impl Iterator<Item = i64>) {
        let now = now_us();
        let h = self.metrics.visible.with_label_values(&[topic]);
        let log = tracing::enabled!(target: LATENCY_LOG_TARGET, tracing::Level::DEBUG);
        let mut exact = String::new();
        for r in received_us.filter(|&r| r > 0) {
            let lat = now.saturating_sub(r).max(0);
            h.observe(lat as f64 / 1e6);
            if log {
                if !exact.is_empty() {
                    exact.push(',');
                }
                exact.push_str(&lat.to_string());
            }
        }
        if log && !exact.is_empty() {
            tracing::debug!(target: LATENCY_LOG_TARGET, topic, latencies_us = %exact, "visible");
        }
    }

    /// Drops the record an `InvalidArgument` names (counted and logged) so the rest can be
    /// written; any other error is returned (and retried by the caller).
    fn drop_invalid<T>(
        &self,
        topic: &str,
        records: &mut Vec<T>,
        e: StoreError,
        id: impl Fn(&T) -> String,
    ) -> Result<(), StoreError> {
        match e {
            StoreError::InvalidArgument {
                index: Some(i),
                ref field,
                ref reason,
            } if i < records.len() => {
                let bad = records.remove(i);
                self.metrics.invalid.with_label_values(&[topic]).inc();
                tracing::warn!(topic, id = %id(&bad), field, reason, "invalid record dropped");
                Ok(())
            }
            e => Err(e),
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
