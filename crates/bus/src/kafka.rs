//! The Kafka bus (librdkafka through rdkafka).
//!
//! Invariants:
//! - Producers are idempotent with `acks=all`; a send is enqueued with `send_result`
//!   (never the retrying `send`), so a full local queue surfaces as `QueueFull` at once.
//!   librdkafka's own idempotent retries are deduplicated by the broker; this crate never
//!   re-sends a record librdkafka reported as failed.
//! - Consumers never auto-commit; offsets are committed explicitly (async, or sync for
//!   shutdown) and only for partitions the consumer owns at that moment.
//! - Assignment changes are recorded by a custom `ConsumerContext`, logged, counted and
//!   published on a bounded broadcast channel; they happen inside `recv` (librdkafka serves
//!   rebalances when the consumer is polled).
//! - `lag()` never blocks: it combines the local position with watermarks and committed
//!   offsets cached by a background refresh (at most one in flight, at most once a second).
//! - `extra` properties override the defaults set here.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, RebalanceProtocol,
    StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{BusError, Counters, Delivery, DeliveryFuture, KafkaConfig, Message, RebalanceEvent};

type Tp = (String, i32);

/// How often `lag()` refreshes its cached watermarks at most.
const LAG_REFRESH: Duration = Duration::from_secs(1);
/// Network timeout of one lag refresh request (a refresh in flight delays the final drop
/// of a closed consumer by at most this much).
const LAG_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Producer,
    Consumer,
    Admin,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain data replaced wholesale; a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct KafkaBus {
    cfg: KafkaConfig,
}

impl KafkaBus {
    pub(crate) fn new(cfg: KafkaConfig) -> Result<KafkaBus, BusError> {
        if cfg.brokers.trim().is_empty() {
            return Err(BusError::InvalidArgument(
                "kafka brokers must not be empty".into(),
            ));
        }
        if cfg.partitions < 1 {
            return Err(BusError::InvalidArgument(format!(
                "kafka partitions must be >= 1, got {}",
                cfg.partitions
            )));
        }
        let bus = KafkaBus { cfg };
        // Validate every property (names and values) now rather than at first use.
        bus.config(Role::Producer).create_native_config()?;
        let mut consumer = bus.config(Role::Consumer);
        consumer.set("group.id", "liftguard-config-check");
        consumer.create_native_config()?;
        Ok(bus)
    }

    fn config(&self, role: Role) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.cfg.brokers)
            .set("client.id", &self.cfg.client_id);
        match role {
            Role::Producer => {
                c.set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "5")
                    .set("queue.buffering.max.messages", "100000")
                    .set("queue.buffering.max.kbytes", "65536")
                    .set("message.timeout.ms", "30000")
                    .set("partitioner", "murmur2_random");
            }
            Role::Consumer => {
                c.set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("allow.auto.create.topics", "true");
            }
            Role::Admin => {}
        }
        for (k, v) in &self.cfg.extra {
            let (scope, key) = if let Some(k) = k.strip_prefix("producer.") {
                (Some(Role::Producer), k)
            } else if let Some(k) = k.strip_prefix("consumer.") {
                (Some(Role::Consumer), k)
            } else {
                (None, k.as_str())
            };
            if scope.is_none_or(|s| s == role) {
                c.set(key, v);
            }
        }
        c.set_log_level(RDKafkaLogLevel::Info);
        c
    }

    pub(crate) fn producer(
        &self,
        counters: Arc<Counters>,
        closed: CancellationToken,
    ) -> Result<KafkaProducer, BusError> {
        let inner: FutureProducer<LogContext> = self
            .config(Role::Producer)
            .create_with_context(LogContext)?;
        Ok(KafkaProducer {
            inner,
            counters,
            closed,
        })
    }

    pub(crate) fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        events: broadcast::Sender<RebalanceEvent>,
        counters: Arc<Counters>,
        closed: CancellationToken,
    ) -> Result<KafkaConsumer, BusError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BusError::InvalidArgument(
                "a Kafka consumer must be created inside a tokio runtime".into(),
            ));
        }
        let mut cfg = self.config(Role::Consumer);
        cfg.set("group.id", group);
        if !self
            .cfg
            .extra
            .iter()
            .any(|(k, _)| k == "client.id" || k == "consumer.client.id")
        {
            cfg.set("client.id", format!("{}-{group}", self.cfg.client_id));
        }
        let ctx = BusConsumerContext {
            group: group.to_owned(),
            assignment: Mutex::new(BTreeSet::new()),
            events,
            counters: counters.clone(),
        };
        let consumer: StreamConsumer<BusConsumerContext> = cfg.create_with_context(ctx)?;
        consumer.subscribe(topics)?;
        info!(group, ?topics, "kafka consumer subscribed");
        Ok(KafkaConsumer {
            inner: Arc::new(consumer),
            counters,
            closed,
            lag: Arc::new(LagCache::default()),
        })
    }

    pub(crate) async fn ensure_topics(
        &self,
        topics: &[&str],
        timeout: Duration,
    ) -> Result<(), BusError> {
        let admin: AdminClient<LogContext> =
            self.config(Role::Admin).create_with_context(LogContext)?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, self.cfg.partitions, TopicReplication::Fixed(-1)))
            .collect();
        let opts = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let results =
            match tokio::time::timeout(timeout, admin.create_topics(new.iter(), &opts)).await {
                Ok(Ok(r)) => r,
                Ok(Err(KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut))) => {
                    return Err(BusError::Timeout(timeout));
                }
                Ok(Err(e)) => return Err(BusError::Kafka(e)),
                Err(_) => return Err(BusError::Timeout(timeout)),
            };
        for r in results {
            match r {
                Ok(name) => {
                    info!(topic = %name, partitions = self.cfg.partitions, "kafka topic created")
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    debug!(topic = %name, "kafka topic exists")
                }
                Err((name, RDKafkaErrorCode::OperationTimedOut)) => {
                    warn!(topic = %name, "kafka topic creation timed out");
                    return Err(BusError::Timeout(timeout));
                }
                Err((name, code)) => {
                    warn!(topic = %name, %code, "kafka topic creation failed");
                    return Err(BusError::Kafka(KafkaError::AdminOp(code)));
                }
            }
        }
        Ok(())
    }
}

/// Routes librdkafka's logs and global errors to `tracing`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogContext;

fn log_rdkafka(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => error!(target: "librdkafka", fac, "{msg}"),
        RDKafkaLogLevel::Warning => warn!(target: "librdkafka", fac, "{msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(target: "librdkafka", fac, "{msg}")
        }
        RDKafkaLogLevel::Debug => debug!(target: "librdkafka", fac, "{msg}"),
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_rdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(target: "librdkafka", %error, reason, "kafka client error");
    }
}

#[derive(Clone)]
pub(crate) struct KafkaProducer {
    inner: FutureProducer<LogContext>,
    counters: Arc<Counters>,
    closed: CancellationToken,
}

impl KafkaProducer {
    pub(crate) fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<DeliveryFuture, BusError> {
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match self.inner.send_result(record) {
            Ok(fut) => {
                Counters::inc(&self.counters.sent);
                let counters = self.counters.clone();
                Ok(Box::pin(async move {
                    let r = match fut.await {
                        Ok(Ok(d)) => Ok(Delivery {
                            partition: d.partition,
                            offset: d.offset,
                        }),
                        // Rejected by librdkafka / the broker: surface, never resend.
                        Ok(Err((e, _msg))) => Err(BusError::from_kafka(e)),
                        Err(_canceled) => Err(BusError::Closed),
                    };
                    match &r {
                        Ok(_) => Counters::inc(&counters.delivered),
                        Err(e) => {
                            Counters::inc(&counters.delivery_failed);
                            warn!(error = %e, "kafka delivery failed");
                        }
                    }
                    r
                }))
            }
            Err((e, _record)) => {
                let e = BusError::from_kafka(e);
                if matches!(e, BusError::QueueFull) {
                    Counters::inc(&self.counters.queue_full);
                }
                Err(e)
            }
        }
    }

    pub(crate) async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let p = self.inner.clone();
        let r = tokio::task::spawn_blocking(move || p.flush(timeout))
            .await
            .map_err(|e| BusError::Unavailable(format!("flush task failed: {e}")))?;
        r.map_err(|e| match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::TimedOutQueue) => {
                BusError::Timeout(timeout)
            }
            _ => BusError::from_kafka(e),
        })
    }
}

/// Records assignment changes (see the module invariants).
pub(crate) struct BusConsumerContext {
    group: String,
    assignment: Mutex<BTreeSet<Tp>>,
    events: broadcast::Sender<RebalanceEvent>,
    counters: Arc<Counters>,
}

fn tpl_to_vec(tpl: &TopicPartitionList) -> Vec<Tp> {
    let mut v: Vec<Tp> = tpl
        .elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    v.sort();
    v
}

impl ClientContext for BusConsumerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_rdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(target: "librdkafka", group = %self.group, %error, reason, "kafka consumer client error");
    }
}

impl ConsumerContext for BusConsumerContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = tpl_to_vec(tpl);
            {
                let mut a = lock(&self.assignment);
                for tp in &revoked {
                    a.remove(tp);
                }
            }
            info!(group = %self.group, ?revoked, "kafka partitions revoked");
            Counters::inc(&self.counters.rebalances);
            if !revoked.is_empty() {
                let _ = self.events.send(RebalanceEvent::Revoked(revoked));
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = tpl_to_vec(tpl);
                {
                    let mut a = lock(&self.assignment);
                    if !matches!(
                        consumer.rebalance_protocol(),
                        RebalanceProtocol::Cooperative
                    ) {
                        a.clear();
                    }
                    a.extend(assigned.iter().cloned());
                }
                info!(group = %self.group, ?assigned, "kafka partitions assigned");
                Counters::inc(&self.counters.rebalances);
                if !assigned.is_empty() {
                    let _ = self.events.send(RebalanceEvent::Assigned(assigned));
                }
            }
            Rebalance::Error(e) => warn!(group = %self.group, error = %e, "kafka rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                debug!(group = %self.group, offsets = ?tpl_to_vec(offsets), "kafka offsets committed")
            }
            // "No offset" means there was nothing to commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                Counters::inc(&self.counters.commit_failed);
                warn!(group = %self.group, error = %e, "kafka offset commit failed");
            }
        }
    }
}

#[derive(Default)]
struct LagCache {
    refreshing: AtomicBool,
    /// Set when the consumer is dropped: a refresh in flight stops at its next request.
    closing: AtomicBool,
    snap: Mutex<LagSnapshot>,
}

#[derive(Default)]
struct LagSnapshot {
    at: Option<Instant>,
    /// (low watermark, high watermark, committed offset)
    parts: HashMap<Tp, (i64, i64, Option<i64>)>,
}

type Inner = StreamConsumer<BusConsumerContext>;

pub(crate) struct KafkaConsumer {
    inner: Arc<Inner>,
    counters: Arc<Counters>,
    closed: CancellationToken,
    lag: Arc<LagCache>,
}

impl KafkaConsumer {
    pub(crate) async fn recv(&mut self) -> Result<Message, BusError> {
        loop {
            let r = tokio::select! {
                biased;
                () = self.closed.cancelled() => return Err(BusError::Closed),
                r = self.inner.recv() => r,
            };
            match r {
                Ok(m) => {
                    let key = match m.key() {
                        None => String::new(),
                        Some(k) => match std::str::from_utf8(k) {
                            Ok(s) => s.to_owned(),
                            Err(_) => {
                                warn!(
                                    topic = m.topic(),
                                    partition = m.partition(),
                                    offset = m.offset(),
                                    "non-UTF-8 record key, decoded lossily"
                                );
                                String::from_utf8_lossy(k).into_owned()
                            }
                        },
                    };
                    let msg = Message {
                        topic: m.topic().to_owned(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key,
                        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    };
                    Counters::inc(&self.counters.received);
                    return Ok(msg);
                }
                Err(e) => {
                    if let Some((code, reason)) = self.inner.client().fatal_error() {
                        error!(%code, reason, "fatal kafka consumer error");
                        return Err(BusError::Kafka(KafkaError::MessageConsumptionFatal(code)));
                    }
                    if let KafkaError::MessageConsumptionFatal(_) = e {
                        return Err(BusError::Kafka(e));
                    }
                    Counters::inc(&self.counters.consumer_errors);
                    warn!(error = %e, "kafka consumer error (continuing)");
                }
            }
        }
    }

    /// Builds the commit list, refusing partitions this consumer does not own.
    fn commit_list(&self, offsets: &[(String, i32, i64)]) -> Result<TopicPartitionList, BusError> {
        let assignment = lock(&self.inner.context().assignment);
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (t, p, o) in offsets {
            if !assignment.contains(&(t.clone(), *p)) {
                Counters::inc(&self.counters.commit_failed);
                return Err(BusError::NotAssigned {
                    topic: t.clone(),
                    partition: *p,
                });
            }
            if *o < 0 {
                Counters::inc(&self.counters.commit_failed);
                return Err(BusError::InvalidArgument(format!(
                    "commit offset {o} for {t}/{p} is negative"
                )));
            }
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        Ok(tpl)
    }

    pub(crate) fn commit(&self, offsets: &[(String, i32, i64)]) -> Result<(), BusError> {
        let tpl = self.commit_list(offsets)?;
        if tpl.count() == 0 {
            return Ok(());
        }
        self.inner.commit(&tpl, CommitMode::Async).map_err(|e| {
            Counters::inc(&self.counters.commit_failed);
            BusError::from_kafka(e)
        })
    }

    pub(crate) async fn commit_sync(&self, offsets: &[(String, i32, i64)]) -> Result<(), BusError> {
        let tpl = self.commit_list(offsets)?;
        if tpl.count() == 0 {
            return Ok(());
        }
        let c = self.inner.clone();
        let r = tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| BusError::Unavailable(format!("commit task failed: {e}")))?;
        r.map_err(|e| {
            Counters::inc(&self.counters.commit_failed);
            BusError::from_kafka(e)
        })
    }

    pub(crate) fn assignment(&self) -> Vec<Tp> {
        lock(&self.inner.context().assignment)
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn lag(&self) -> i64 {
        let assignment = self.assignment();
        let positions: HashMap<Tp, i64> = match self.inner.position() {
            Ok(tpl) => concrete_offsets(&tpl),
            Err(_) => HashMap::new(),
        };
        let (sum, stale) = {
            let snap = lock(&self.lag.snap);
            let sum = assignment
                .iter()
                .filter_map(|tp| {
                    let &(low, high, committed) = snap.parts.get(tp)?;
                    let start = positions
                        .get(tp)
                        .copied()
                        .or(committed)
                        .unwrap_or(low)
                        .max(low);
                    Some((high - start).max(0))
                })
                .sum();
            (sum, snap.at.is_none_or(|t| t.elapsed() >= LAG_REFRESH))
        };
        if stale && !self.lag.refreshing.swap(true, Ordering::AcqRel) {
            self.spawn_lag_refresh();
        }
        sum
    }

    fn spawn_lag_refresh(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let cache = self.lag.clone();
        let job = move || {
            refresh_lag(&weak, &cache);
            cache.refreshing.store(false, Ordering::Release);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(job);
            }
            Err(_) => {
                let cache = self.lag.clone();
                if std::thread::Builder::new()
                    .name("lg-bus-lag".into())
                    .spawn(job)
                    .is_err()
                {
                    cache.refreshing.store(false, Ordering::Release);
                }
            }
        }
    }

    pub(crate) async fn close(self) {
        self.lag.closing.store(true, Ordering::Release);
        let c = self.inner.clone();
        drop(self);
        // The close handshake (leave group, wait for pending commits) blocks.
        let _ = tokio::task::spawn_blocking(move || drop(c)).await;
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        self.lag.closing.store(true, Ordering::Release);
    }
}

/// Blocking: fetches committed offsets and watermarks of the current assignment. Holds the
/// consumer only for one request at a time and stops once the consumer is dropped, so it
/// never keeps a closed consumer alive for long.
fn refresh_lag(weak: &Weak<Inner>, cache: &LagCache) {
    let live = || {
        if cache.closing.load(Ordering::Acquire) {
            None
        } else {
            weak.upgrade()
        }
    };
    let Some(c) = live() else { return };
    let tps: Vec<Tp> = lock(&c.context().assignment).iter().cloned().collect();
    let mut parts = HashMap::with_capacity(tps.len());
    if !tps.is_empty() {
        let mut tpl = TopicPartitionList::with_capacity(tps.len());
        for (t, p) in &tps {
            tpl.add_partition(t, *p);
        }
        let committed: HashMap<Tp, i64> = match c.committed_offsets(tpl, LAG_REQUEST_TIMEOUT) {
            Ok(tpl) => concrete_offsets(&tpl),
            Err(e) => {
                debug!(error = %e, "lag refresh: committed offsets unavailable");
                HashMap::new()
            }
        };
        drop(c);
        for tp in tps {
            let Some(c) = live() else { return };
            match c.fetch_watermarks(&tp.0, tp.1, LAG_REQUEST_TIMEOUT) {
                Ok((low, high)) => {
                    let com = committed.get(&tp).copied();
                    parts.insert(tp, (low, high, com));
                }
                Err(e) => {
                    debug!(topic = %tp.0, partition = tp.1, error = %e, "lag refresh: watermarks unavailable")
                }
            }
        }
    }
    *lock(&cache.snap) = LagSnapshot {
        at: Some(Instant::now()),
        parts,
    };
}

/// The concrete offsets of a partition list (logical ones such as "end" are skipped).
fn concrete_offsets(tpl: &TopicPartitionList) -> HashMap<Tp, i64> {
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
            _ => None,
        })
        .collect()
}
