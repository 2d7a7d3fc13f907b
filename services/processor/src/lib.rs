//! The processor role: consumes `liftguard.samples.v1`, keeps one [`AthleteState`] per
//! athlete, and produces `liftguard.reps.v1` and `liftguard.kinematics.v1`.
//!
//! Delivery (as built for the pipeline issue): at-least-once with deterministic record
//! ids. Input offsets are committed only after every record produced from the input up
//! to them is durable on the bus, so a crash replays input and the sink's upserts by
//! natural key absorb the repeats. Per-athlete state is in memory; restoring it from a
//! checkpoint after a crash or rebalance is the next step (see ARCHITECTURE.md).
//!
//! Invariants:
//! - Input of one athlete is processed in bus order (one partition, one task).
//! - Memory is bounded: at most `max_athletes` states; the least recently active athlete
//!   is flushed and evicted beyond that.
//! - A record that cannot be decoded is counted, logged and skipped; it never stops the
//!   stream.

mod athlete;
mod merge;
mod metrics;

use std::{collections::HashMap, time::Duration};

pub use athlete::{AthleteConfig, AthleteState, BatchOutput, batch_samples, sample_times};
use futures::{StreamExt, stream::FuturesUnordered};
use liftguard_biomech as bio;
use liftguard_bus::{Bus, BusError, Consumer, DeliveryFuture, Producer};
use liftguard_model::topics;
use liftguard_proto::v1 as pb;
pub use metrics::ProcessorMetrics;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Configuration of the processor role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Consumer group; instances in one group share the partitions.
    pub group: String,
    /// Commit input offsets at least this often (ms).
    pub commit_interval_ms: u64,
    /// At most this many athletes' state in memory.
    pub max_athletes: usize,
    pub athlete: AthleteConfig,
    pub biomech: bio::Config,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            group: "liftguard-processor".into(),
            commit_interval_ms: 500,
            max_athletes: 20_000,
            athlete: AthleteConfig::default(),
            biomech: bio::Config::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// The processor role.
pub struct Processor {
    cfg: ProcessorConfig,
    consumer: Consumer,
    producer: Producer,
    metrics: ProcessorMetrics,
    states: HashMap<String, (AthleteState, u64)>,
    tick: u64,
    /// Deliveries not yet confirmed, and the input positions they cover.
    pending: FuturesUnordered<DeliveryFuture>,
    /// Next offset to commit per (topic, partition), once `pending` is empty.
    positions: HashMap<(String, i32), i64>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("group", &self.cfg.group)
            .field("athletes", &self.states.len())
            .finish()
    }
}

impl Processor {
    pub fn new(
        cfg: ProcessorConfig,
        bus: &Bus,
        registry: &prometheus::Registry,
    ) -> Result<Self, ProcessorError> {
        let consumer = bus.consumer(&cfg.group, &[topics::SAMPLES])?;
        let producer = bus.producer()?;
        Ok(Self {
            cfg,
            consumer,
            producer,
            metrics: ProcessorMetrics::register(registry),
            states: HashMap::new(),
            tick: 0,
            pending: FuturesUnordered::new(),
            positions: HashMap::new(),
        })
    }

    /// Runs until `stop` fires; then, with `drain` set, keeps consuming until the group has
    /// no lag (or `drain` elapses), confirms pending deliveries, commits and returns.
    /// Draining matters for the embedded bus, whose log lives in this process.
    pub async fn run(
        mut self,
        stop: CancellationToken,
        drain: Option<Duration>,
    ) -> Result<(), ProcessorError> {
        let mut commit_timer =
            tokio::time::interval(Duration::from_millis(self.cfg.commit_interval_ms.max(10)));
        commit_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = commit_timer.tick() => {
                    self.checkpoint().await?;
                    self.metrics.lag.set(self.consumer.lag());
                }
                msg = self.consumer.recv() => {
                    let msg = msg?;
                    self.handle_message(&msg).await?;
                    self.positions.insert((msg.topic.clone(), msg.partition), msg.offset + 1);
                }
            }
        }
        if let Some(limit) = drain {
            let deadline = tokio::time::Instant::now() + limit;
            while self.consumer.lag() > 0 && tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(100), self.consumer.recv()).await {
                    Ok(msg) => {
                        let msg = msg?;
                        self.handle_message(&msg).await?;
                        self.positions
                            .insert((msg.topic.clone(), msg.partition), msg.offset + 1);
                    }
                    Err(_elapsed) => {}
                }
            }
        }
        // Batches held for the two-sensor merge are processed before the final commit.
        let ids: Vec<String> = self.states.keys().cloned().collect();
        for id in ids {
            if let Some((st, _)) = self.states.get_mut(&id) {
                let out = st.flush_merge(&self.cfg.biomech, &self.cfg.athlete);
                self.emit(&id, out).await?;
            }
        }
        self.checkpoint().await?;
        tracing::info!("processor stopped after committing its input");
        Ok(())
    }

    async fn handle_message(&mut self, msg: &liftguard_bus::Message) -> Result<(), ProcessorError> {
        let batch = match pb::EnrichedBatch::decode(msg.payload.as_slice()) {
            Ok(b) => b,
            Err(e) => {
                self.metrics.decode_errors.inc();
                tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, error = %e, "undecodable sample batch skipped");
                return Ok(());
            }
        };
        let started = std::time::Instant::now();
        self.tick += 1;
        let tick = self.tick;
        let bio_cfg = &self.cfg.biomech;
        let entry = self
            .states
            .entry(batch.athlete_id.clone())
            .or_insert_with(|| {
                (
                    AthleteState::new(bio_cfg, &batch.gym_id, &batch.athlete_id),
                    tick,
                )
            });
        entry.1 = tick;
        let out = entry.0.handle(bio_cfg, &self.cfg.athlete, &batch);
        self.metrics.observe_batch(&batch, &out);
        if batch.received_time_us > 0
            && let Some(lat) = now_us().checked_sub(batch.received_time_us)
        {
            self.metrics.latency.observe(lat as f64 / 1e6);
        }
        self.emit(&batch.athlete_id, out).await?;
        self.evict_if_needed().await?;
        self.metrics
            .handle_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.athletes.set(self.states.len() as i64);
        Ok(())
    }

    async fn emit(&mut self, athlete_id: &str, out: BatchOutput) -> Result<(), ProcessorError> {
        for rep in &out.reps {
            self.send(topics::REPS, athlete_id, rep.encode_to_vec())
                .await?;
        }
        for k in &out.kinematics {
            self.send(topics::KINEMATICS, athlete_id, k.encode_to_vec())
                .await?;
        }
        Ok(())
    }

    /// Sends, waiting out backpressure (the processor never drops output).
    async fn send(
        &mut self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
    ) -> Result<(), ProcessorError> {
        let mut backoff = Duration::from_millis(1);
        loop {
            match self.producer.send(topic, key, payload.clone()) {
                Ok(fut) => {
                    self.metrics.records.with_label_values(&[topic]).inc();
                    self.pending.push(fut);
                    return Ok(());
                }
                Err(BusError::QueueFull) => {
                    self.metrics.backpressure.inc();
                    // Confirm what is in flight first: that frees the queue.
                    if let Some(r) = self.pending.next().await {
                        r?;
                    } else {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(200));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits until every produced record is durable, then commits the input positions.
    async fn checkpoint(&mut self) -> Result<(), ProcessorError> {
        while let Some(r) = self.pending.next().await {
            r?;
        }
        if self.positions.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(String, i32, i64)> = self
            .positions
            .drain()
            .map(|((t, p), o)| (t, p, o))
            .collect();
        self.consumer.commit(&offsets)?;
        Ok(())
    }

    async fn evict_if_needed(&mut self) -> Result<(), ProcessorError> {
        if self.states.len() <= self.cfg.max_athletes {
            return Ok(());
        }
        let Some(oldest) = self
            .states
            .iter()
            .min_by_key(|(_, (_, t))| *t)
            .map(|(k, _)| k.clone())
        else {
            return Ok(());
        };
        if let Some((mut st, _)) = self.states.remove(&oldest) {
            let out = st.finish(&self.cfg.biomech, &self.cfg.athlete);
            self.metrics.evictions.inc();
            self.emit(&oldest, out).await?;
        }
        Ok(())
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}
