//! The processor role: consumes `liftguard.samples.v1` (and `liftguard.flareups.v1`),
//! keeps one [`AthleteState`] per athlete, and produces rep, kinematics, alert and risk
//! records.
//!
//! # Effectively-once results without transactions
//! Every output record has a deterministic id and the sink upserts by it, so producing a
//! record twice is harmless *if it has the same value both times*. Processing is a pure
//! function of (state, input record) and the state is checkpointed together with the
//! input offsets it reflects, so a replay after a crash or a rebalance reproduces the
//! same records, bit for bit:
//!
//! 1. Outputs of an input record are sent before the next record is read.
//! 2. A checkpoint (every `commit_interval_ms`) takes, at one instant between two input
//!    records: the deliveries not yet confirmed (the outputs of all input applied so far),
//!    a copy of every changed athlete's state (with, inside it, the offset of the last input
//!    record applied to it per topic-partition and its `steps` count) and the input
//!    positions. A background task waits until those deliveries are durable, then writes
//!    the states to the database, fenced by `steps` (see `liftguard_store::checkpoint`);
//!    processing goes on meanwhile. At most one checkpoint is in flight.
//! 3. Only when the task has finished are the positions it took committed.
//!
//! A crash anywhere leaves: committed offsets ≤ the offsets reflected by every stored
//! state of an athlete with input before them. On restart (or when another instance
//! gets the partition) the consumer resumes at the committed offset; an athlete's state
//! is loaded on its first record, and records at or below the state's applied offset are
//! skipped. Records between are reprocessed from the same state and give the same
//! outputs, which the sink's upserts absorb. Nothing is lost (outputs before a stored
//! state are durable by 1.) and nothing doubles (deterministic ids).
//!
//! # Invariants
//! - Input of one athlete is processed in bus order (one partition, one task).
//! - Memory is bounded: at most `max_athletes` states; idle states (and the least recently
//!   active beyond the bound) are evicted only once their checkpoint is durable, and
//!   restored on demand.
//! - On a partition revocation the processor checkpoints, commits and drops the states of
//!   the athletes of that partition; it commits offsets only for partitions it owns.
//! - A record that cannot be decoded is counted, logged and skipped; it never stops the
//!   stream. A checkpoint that cannot be decoded (a state format from another version) is
//!   counted and the athlete starts afresh.

mod athlete;
mod merge;
mod metrics;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

pub use athlete::{AthleteConfig, AthleteState, BatchOutput, batch_samples, sample_times};
use futures::{StreamExt, stream::FuturesUnordered};
use liftguard_biomech as bio;
use liftguard_bus::{Bus, BusError, Consumer, DeliveryFuture, Message, Producer, RebalanceEvent};
use liftguard_model::topics;
use liftguard_proto::v1 as pb;
use liftguard_store::{Checkpoint, Store, StoreError};
pub use metrics::ProcessorMetrics;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Configuration of the processor role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Consumer group; instances in one group share the partitions.
    pub group: String,
    /// Checkpoint (states, then input offsets) at least this often (ms). Bounds the input
    /// replayed after a crash; output latency does not depend on it.
    pub commit_interval_ms: u64,
    /// At most this many athletes' state in memory.
    pub max_athletes: usize,
    /// An athlete without input for this long (wall clock, s) is evicted from memory once
    /// its state is checkpointed; it is restored on its next record.
    pub idle_evict_s: f64,
    /// An athlete without input for this long (wall clock, s) has its open session closed
    /// (trailing reps, session alerts, the day's risk), as a long gap in the data would.
    pub idle_close_s: f64,
    pub athlete: AthleteConfig,
    pub biomech: bio::Config,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            group: "liftguard-processor".into(),
            commit_interval_ms: 2000,
            max_athletes: 20_000,
            idle_evict_s: 120.0,
            idle_close_s: 1800.0,
            athlete: AthleteConfig::default(),
            biomech: bio::Config::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("checkpoint store: {0}")]
    Store(#[from] StoreError),
    #[error("checkpoint encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("checkpoint task: {0}")]
    Task(String),
}

/// Format version of [`Snapshot`]; a stored snapshot of another version is not restored.
const SNAPSHOT_VERSION: u32 = 1;

/// What is checkpointed per athlete.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    /// Input records applied (monotonic; the store's fence).
    steps: u64,
    /// Offset of the last input record applied, per (topic, partition).
    applied: Vec<(String, i32, i64)>,
    state: AthleteState,
}

/// What a finished checkpoint task reports back.
struct Saved {
    /// Athletes whose snapshot was written.
    ids: Vec<String>,
    /// Input positions to commit now that those states and every earlier output are durable.
    positions: Vec<((String, i32), i64)>,
    bytes: u64,
    started: Instant,
}

/// One athlete in memory.
struct Slot {
    snap: Snapshot,
    /// Changed since its snapshot was last taken for a checkpoint.
    dirty: bool,
    /// A snapshot of it is being written (not yet durable).
    saving: bool,
    last_active: Instant,
}

impl Slot {
    /// Whether any topic-partition this athlete's input came from satisfies `f`: its state
    /// belongs to the owner of those partitions.
    fn reads_from(&self, f: impl Fn(&(String, i32)) -> bool) -> bool {
        self.snap
            .applied
            .iter()
            .any(|(t, p, _)| f(&(t.clone(), *p)))
    }

    fn applied(&self, topic: &str, partition: i32) -> Option<i64> {
        self.snap
            .applied
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, o)| *o)
    }

    fn set_applied(&mut self, topic: &str, partition: i32, offset: i64) {
        match self
            .snap
            .applied
            .iter_mut()
            .find(|(t, p, _)| t == topic && *p == partition)
        {
            Some(e) => e.2 = offset,
            None => self
                .snap
                .applied
                .push((topic.to_owned(), partition, offset)),
        }
        self.snap.steps += 1;
        self.dirty = true;
    }
}

/// The processor role.
pub struct Processor {
    cfg: ProcessorConfig,
    consumer: Consumer,
    producer: Producer,
    store: Store,
    rebalances: broadcast::Receiver<RebalanceEvent>,
    metrics: ProcessorMetrics,
    slots: HashMap<String, Slot>,
    /// Deliveries not yet confirmed.
    pending: FuturesUnordered<DeliveryFuture>,
    /// Next offset to commit per (topic, partition), at the next checkpoint.
    positions: HashMap<(String, i32), i64>,
    /// The checkpoint being written in the background, at most one.
    in_flight: Option<tokio::task::JoinHandle<Result<Saved, ProcessorError>>>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("group", &self.cfg.group)
            .field("athletes", &self.slots.len())
            .finish()
    }
}

impl Processor {
    /// A processor consuming from `bus`, checkpointing to `store` (migrated).
    pub fn new(
        cfg: ProcessorConfig,
        bus: &Bus,
        store: Store,
        registry: &prometheus::Registry,
    ) -> Result<Self, ProcessorError> {
        let mut consumer = bus.consumer(&cfg.group, &[topics::SAMPLES, topics::FLAREUPS])?;
        let rebalances = consumer.rebalance_events();
        let producer = bus.producer()?;
        Ok(Self {
            cfg,
            consumer,
            producer,
            store,
            rebalances,
            metrics: ProcessorMetrics::register(registry),
            slots: HashMap::new(),
            pending: FuturesUnordered::new(),
            positions: HashMap::new(),
            in_flight: None,
        })
    }

    /// Runs until `stop` fires; then, with `drain` set, keeps consuming until the group has
    /// no lag (or `drain` elapses). Finally checkpoints (states, then offsets) and returns.
    /// Draining matters for the embedded bus, whose log lives in this process.
    pub async fn run(
        mut self,
        stop: CancellationToken,
        drain: Option<Duration>,
    ) -> Result<(), ProcessorError> {
        let mut timer =
            tokio::time::interval(Duration::from_millis(self.cfg.commit_interval_ms.max(10)));
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                ev = self.rebalances.recv() => self.on_rebalance(ev).await?,
                saved = wait_in_flight(&mut self.in_flight) => {
                    self.in_flight = None;
                    let saved = saved.map_err(|e| ProcessorError::Task(e.to_string()))??;
                    self.complete_checkpoint(saved)?;
                }
                _ = timer.tick() => {
                    self.start_checkpoint();
                    self.housekeeping().await?;
                    self.metrics.lag.set(self.consumer.lag());
                }
                msg = self.consumer.recv() => {
                    let msg = msg?;
                    self.handle_message(&msg).await?;
                }
            }
        }
        if let Some(limit) = drain {
            let deadline = tokio::time::Instant::now() + limit;
            while self.consumer.lag() > 0 && tokio::time::Instant::now() < deadline {
                if let Ok(msg) =
                    tokio::time::timeout(Duration::from_millis(100), self.consumer.recv()).await
                {
                    self.handle_message(&msg?).await?;
                }
            }
        }
        self.checkpoint().await?;
        tracing::info!("processor stopped after checkpointing its state and input offsets");
        Ok(())
    }

    async fn on_rebalance(
        &mut self,
        ev: Result<RebalanceEvent, broadcast::error::RecvError>,
    ) -> Result<(), ProcessorError> {
        match ev {
            Ok(RebalanceEvent::Assigned(parts)) => {
                tracing::info!(?parts, "partitions assigned");
            }
            Ok(RebalanceEvent::Revoked(parts)) => {
                tracing::info!(
                    ?parts,
                    "partitions revoked: checkpointing, then dropping their athletes"
                );
                self.metrics.revocations.inc();
                self.checkpoint().await?;
                let revoked: HashSet<(String, i32)> = parts.into_iter().collect();
                self.slots
                    .retain(|_, s| !s.reads_from(|p| revoked.contains(p)));
                self.positions.retain(|k, _| !revoked.contains(k));
                self.metrics.athletes.set(self.slots.len() as i64);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                // Missed events: be safe, checkpoint and forget everything not owned.
                tracing::warn!(missed = n, "rebalance events missed");
                self.checkpoint().await?;
                let owned: HashSet<(String, i32)> =
                    self.consumer.assignment().into_iter().collect();
                self.slots
                    .retain(|_, s| !s.reads_from(|p| !owned.contains(p)));
            }
            Err(broadcast::error::RecvError::Closed) => {
                // The consumer is gone; its recv will fail next.
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    async fn handle_message(&mut self, msg: &Message) -> Result<(), ProcessorError> {
        let started = Instant::now();
        let key = (msg.topic.clone(), msg.partition);
        if msg.topic == topics::SAMPLES {
            self.handle_samples(msg).await?;
        } else if msg.topic == topics::FLAREUPS {
            self.handle_flareup(msg).await?;
        }
        self.positions.insert(key, msg.offset + 1);
        self.evict_if_needed().await?;
        self.metrics
            .handle_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.athletes.set(self.slots.len() as i64);
        Ok(())
    }

    async fn handle_samples(&mut self, msg: &Message) -> Result<(), ProcessorError> {
        let batch = match pb::EnrichedBatch::decode(msg.payload.as_slice()) {
            Ok(b) => b,
            Err(e) => {
                self.metrics.decode_errors.inc();
                tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, error = %e, "undecodable sample batch skipped");
                return Ok(());
            }
        };
        if !self.admit(&batch.gym_id, &batch.athlete_id, msg).await? {
            return Ok(());
        }
        let Some(slot) = self.slots.get_mut(&batch.athlete_id) else {
            return Ok(());
        };
        slot.set_applied(&msg.topic, msg.partition, msg.offset);
        let out = slot
            .snap
            .state
            .handle(&self.cfg.biomech, &self.cfg.athlete, &batch);
        self.metrics.observe_batch(&batch, &out);
        if out.sessions_closed > 0 {
            self.metrics
                .sessions_closed
                .with_label_values(&["marker_or_gap"])
                .inc_by(u64::from(out.sessions_closed));
        }
        if batch.received_time_us > 0
            && let Some(lat) = now_us().checked_sub(batch.received_time_us)
        {
            self.metrics.latency.observe(lat as f64 / 1e6);
        }
        self.emit(&batch.athlete_id, out).await
    }

    async fn handle_flareup(&mut self, msg: &Message) -> Result<(), ProcessorError> {
        let report = match pb::FlareUpReport::decode(msg.payload.as_slice()) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.decode_errors.inc();
                tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, error = %e, "undecodable flare-up report skipped");
                return Ok(());
            }
        };
        if !self.admit(&report.gym_id, &report.athlete_id, msg).await? {
            return Ok(());
        }
        let Some(slot) = self.slots.get_mut(&report.athlete_id) else {
            return Ok(());
        };
        slot.set_applied(&msg.topic, msg.partition, msg.offset);
        slot.snap.state.flare_up(&report);
        Ok(())
    }

    /// Brings the athlete's slot into memory (restored from its checkpoint); `false` when
    /// the state already reflects `msg` (a replay after a crash or rebalance).
    async fn admit(
        &mut self,
        gym_id: &str,
        athlete_id: &str,
        msg: &Message,
    ) -> Result<bool, ProcessorError> {
        if !self.slots.contains_key(athlete_id) {
            let slot = self.restore(gym_id, athlete_id).await?;
            self.slots.insert(athlete_id.to_owned(), slot);
        }
        let Some(slot) = self.slots.get_mut(athlete_id) else {
            return Ok(false);
        };
        slot.last_active = Instant::now();
        if slot
            .applied(&msg.topic, msg.partition)
            .is_some_and(|o| o >= msg.offset)
        {
            self.metrics.replay_skipped.inc();
            return Ok(false);
        }
        Ok(true)
    }

    async fn restore(&mut self, gym_id: &str, athlete_id: &str) -> Result<Slot, ProcessorError> {
        let fresh = || Snapshot {
            version: SNAPSHOT_VERSION,
            steps: 0,
            applied: Vec::new(),
            state: AthleteState::new(&self.cfg.biomech, gym_id, athlete_id),
        };
        let snap = match self.store.load_checkpoint(athlete_id).await? {
            None => {
                self.metrics.restores.with_label_values(&["fresh"]).inc();
                fresh()
            }
            Some(cp) => match rmp_serde::from_slice::<Snapshot>(&cp.state) {
                Ok(s) if s.version == SNAPSHOT_VERSION => {
                    self.metrics.restores.with_label_values(&["restored"]).inc();
                    s
                }
                Ok(s) => {
                    self.metrics.restores.with_label_values(&["failed"]).inc();
                    tracing::error!(
                        athlete_id,
                        version = s.version,
                        "checkpoint of another format version; starting afresh"
                    );
                    fresh()
                }
                Err(e) => {
                    self.metrics.restores.with_label_values(&["failed"]).inc();
                    tracing::error!(athlete_id, error = %e, "undecodable checkpoint; starting afresh");
                    fresh()
                }
            },
        };
        Ok(Slot {
            snap,
            dirty: false,
            saving: false,
            last_active: Instant::now(),
        })
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
        for a in &out.alerts {
            self.send(topics::ALERTS, athlete_id, a.encode_to_vec())
                .await?;
        }
        for r in &out.risks {
            self.send(topics::RISK, athlete_id, r.encode_to_vec())
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

    /// A whole checkpoint, waited for: outputs durable, then changed states written, then
    /// input offsets committed (revocation, shutdown, the memory bound).
    async fn checkpoint(&mut self) -> Result<(), ProcessorError> {
        self.finish_checkpoint().await?;
        self.start_checkpoint();
        self.finish_checkpoint().await
    }

    /// Starts a checkpoint without stopping the processing loop: takes the deliveries not
    /// yet confirmed (the outputs of every input applied so far), clones the changed
    /// athletes' snapshots and takes the input positions; a task confirms the deliveries,
    /// serialises and writes the states. [`Self::finish_checkpoint`] then commits the
    /// positions. Input applied after this point is covered by the next checkpoint.
    fn start_checkpoint(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        let started = Instant::now();
        let mut snaps = Vec::new();
        for (id, slot) in self.slots.iter_mut().filter(|(_, s)| s.dirty) {
            slot.dirty = false;
            slot.saving = true;
            snaps.push((
                id.clone(),
                slot.snap.state.gym_id().to_owned(),
                slot.snap.clone(),
            ));
        }
        let positions: Vec<((String, i32), i64)> = self.positions.drain().collect();
        if snaps.is_empty() && positions.is_empty() && self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        let store = self.store.clone();
        let handle = tokio::spawn(async move {
            while let Some(r) = pending.next().await {
                r?;
            }
            let ids: Vec<String> = snaps.iter().map(|(id, _, _)| id.clone()).collect();
            let rows = tokio::task::spawn_blocking(move || {
                snaps
                    .into_iter()
                    .map(|(athlete_id, gym_id, snap)| {
                        Ok(Checkpoint {
                            athlete_id,
                            gym_id,
                            steps: i64::try_from(snap.steps).unwrap_or(i64::MAX),
                            state: rmp_serde::to_vec_named(&snap)?,
                        })
                    })
                    .collect::<Result<Vec<_>, ProcessorError>>()
            })
            .await
            .map_err(|e| ProcessorError::Task(e.to_string()))??;
            let bytes = rows.iter().map(|r| r.state.len() as u64).sum();
            if !rows.is_empty() {
                store.save_checkpoints(&rows).await?;
            }
            Ok(Saved {
                ids,
                positions,
                bytes,
                started,
            })
        });
        self.in_flight = Some(handle);
    }

    /// Waits for the checkpoint in flight (if any), then commits its input positions.
    async fn finish_checkpoint(&mut self) -> Result<(), ProcessorError> {
        let Some(handle) = self.in_flight.take() else {
            return Ok(());
        };
        let saved = handle
            .await
            .map_err(|e| ProcessorError::Task(e.to_string()))??;
        self.complete_checkpoint(saved)
    }

    fn complete_checkpoint(&mut self, saved: Saved) -> Result<(), ProcessorError> {
        for id in &saved.ids {
            if let Some(slot) = self.slots.get_mut(id) {
                slot.saving = false;
            }
        }
        if !saved.ids.is_empty() {
            self.metrics.states_written.inc_by(saved.ids.len() as u64);
            self.metrics.checkpoint_bytes.inc_by(saved.bytes);
            self.metrics
                .checkpoint_seconds
                .observe(saved.started.elapsed().as_secs_f64());
        }
        // Only partitions this instance owns: a late commit for a partition that moved
        // could otherwise overwrite the new owner's position.
        let owned: HashSet<(String, i32)> = self.consumer.assignment().into_iter().collect();
        let offsets: Vec<(String, i32, i64)> = saved
            .positions
            .into_iter()
            .filter(|(k, _)| owned.contains(k))
            .map(|((t, p), o)| (t, p, o))
            .collect();
        if !offsets.is_empty() {
            self.consumer.commit(&offsets)?;
        }
        Ok(())
    }

    /// Closes sessions of athletes idle for `idle_close_s` and evicts checkpointed
    /// athletes idle for `idle_evict_s`.
    async fn housekeeping(&mut self) -> Result<(), ProcessorError> {
        let now = Instant::now();
        let close_after = Duration::from_secs_f64(self.cfg.idle_close_s.max(0.0));
        let evict_after = Duration::from_secs_f64(self.cfg.idle_evict_s.max(0.0));
        let idle: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                now.duration_since(s.last_active) >= close_after && s.snap.state.session_open()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for id in idle {
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            let out = slot.snap.state.finish(&self.cfg.biomech, &self.cfg.athlete);
            // A state change without input: it still has to reach the checkpoint.
            slot.dirty = true;
            self.metrics
                .sessions_closed
                .with_label_values(&["idle"])
                .inc();
            self.emit(&id, out).await?;
        }
        let before = self.slots.len();
        self.slots.retain(|_, s| {
            s.dirty
                || s.saving
                || s.snap.state.session_open()
                || now.duration_since(s.last_active) < evict_after
        });
        self.metrics
            .evictions
            .inc_by((before - self.slots.len()) as u64);
        Ok(())
    }

    /// Beyond `max_athletes`, evicts the least recently active checkpointed athletes
    /// (checkpointing first when none is clean).
    async fn evict_if_needed(&mut self) -> Result<(), ProcessorError> {
        if self.slots.len() <= self.cfg.max_athletes {
            return Ok(());
        }
        if self.slots.values().all(|s| s.dirty || s.saving) {
            self.checkpoint().await?;
        }
        let excess = self.slots.len() - self.cfg.max_athletes;
        let mut clean: Vec<(Instant, String)> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.dirty && !s.saving)
            .map(|(k, s)| (s.last_active, k.clone()))
            .collect();
        clean.sort();
        for (_, id) in clean.into_iter().take(excess) {
            self.slots.remove(&id);
            self.metrics.evictions.inc();
        }
        Ok(())
    }
}

/// Resolves when the checkpoint in flight finishes; never, when there is none.
async fn wait_in_flight(
    in_flight: &mut Option<tokio::task::JoinHandle<Result<Saved, ProcessorError>>>,
) -> Result<Result<Saved, ProcessorError>, tokio::task::JoinError> {
    match in_flight {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}
