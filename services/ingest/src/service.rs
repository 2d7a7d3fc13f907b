//! The `Ingest.StreamSamples` handler: one task per stream that reads batches, checks
//! them (validation, sensor binding, progress, quota, capacity), hands the good ones to
//! the bus and acknowledges each batch in the order it was received.
//!
//! Invariants:
//! - The call is authenticated once, before the stream task starts; every later problem
//!   is a per-batch ack and never ends the stream (except an undecodable or oversized
//!   message, which tonic cannot skip: the stream then ends with that status after the
//!   acks of the batches before it).
//! - Acks leave in receive order (a `FuturesOrdered`), so the acks of one sensor are in
//!   the order its batches were sent. At most `max_in_flight_per_stream` batches are
//!   pending per stream: beyond that the task stops reading and HTTP/2 flow control holds
//!   the client back (no RETRY needed, nothing buffered). The ack channel is bounded too.
//! - ACCEPTED is sent only after the bus's delivery future resolved OK; progress (last
//!   seq, dedupe window) moves only then. A RETRY or REJECTED batch leaves no progress.
//! - Backpressure is explicit and bounded: bus `QueueFull`, the process-wide in-flight
//!   bound and the per-gym quota answer RETRY + RESOURCE_EXHAUSTED with `retry_after_ms`;
//!   other transient bus or store failures answer RETRY + UNAVAILABLE. A bus error that
//!   says the record itself is bad (`InvalidArgument`/`OutOfRange`) is REJECTED: never
//!   resend what the bus refused.
//! - A client that goes away does not abandon batches already on their way to the bus:
//!   the task stops reading and waits for their deliveries, so progress stays exact.

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::{StreamExt, stream::FuturesOrdered};
use liftguard_bus::{BusError, Producer};
use liftguard_model::{ErrorKind, SensorId, topics};
use liftguard_proto::v1::{AckStatus, BatchAck, EnrichedBatch, SampleBatch};
use liftguard_runtime::auth::Principal;
use liftguard_store::{SensorBinding, Store, StoreError};
use prometheus::IntGauge;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::{Status, Streaming};
use tracing::Instrument;

use crate::{
    IngestConfig,
    bindings::BindingCache,
    metrics::Metrics,
    progress::{BatchKey, ProgressConfig, Tracker, Verdict},
    quota::Quotas,
    validate::{self, Limits, Reject},
};

type AckFuture = Pin<Box<dyn Future<Output = BatchAck> + Send>>;

pub(crate) struct Inner {
    pub(crate) cfg: IngestConfig,
    limits: Limits,
    pub(crate) store: Store,
    producer: Producer,
    pub(crate) metrics: Metrics,
    tracker: Mutex<Tracker>,
    bindings: Mutex<BindingCache>,
    quotas: Mutex<Quotas>,
    in_flight: Arc<Semaphore>,
    pub(crate) streams: Arc<Semaphore>,
    stream_ids: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis().max(1)).unwrap_or(u32::MAX)
}

/// Identifies the batch an ack answers.
struct AckTo {
    sensor_id: String,
    seq: u64,
    received_time_us: i64,
}

impl AckTo {
    fn ack(
        &self,
        status: AckStatus,
        kind: Option<ErrorKind>,
        field: &str,
        reason: String,
    ) -> BatchAck {
        BatchAck {
            sensor_id: self.sensor_id.clone(),
            seq: self.seq,
            status: status as i32,
            code: kind.map_or(0, ErrorKind::grpc_code),
            field: field.to_owned(),
            reason,
            retry_after_ms: 0,
            received_time_us: self.received_time_us,
        }
    }
}

/// Releases a progress reservation that was not accepted (RETRY, error, or a dropped
/// future) so the batch may be sent again.
struct Reservation {
    inner: Arc<Inner>,
    sensor: SensorId,
    key: BatchKey,
    done: bool,
}

impl Reservation {
    fn finish(mut self, accepted: bool) {
        self.done = true;
        lock(&self.inner.tracker).complete(&self.sensor, self.key, accepted);
    }

    /// The batch was refused for good: the client will not resend it.
    fn finish_rejected(mut self) {
        self.done = true;
        lock(&self.inner.tracker).release_rejected(&self.sensor, self.key);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.inner.tracker).complete(&self.sensor, self.key, false);
        }
    }
}

/// One batch handed to the bus: holds a slot of the process-wide in-flight bound.
struct InFlight {
    gauge: IntGauge,
    _permit: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

enum Handled {
    Done(BatchAck),
    Sending(AckFuture),
}

impl Inner {
    pub(crate) fn new(
        cfg: IngestConfig,
        store: Store,
        producer: Producer,
        metrics: Metrics,
    ) -> Self {
        let limits = cfg.limits();
        let tracker = Tracker::new(ProgressConfig {
            window: cfg.dedupe_window,
            max_sensors: cfg.max_tracked_sensors,
            time_tolerance_us: i64::try_from(cfg.time_tolerance_ms.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        });
        let bindings = BindingCache::new(
            cfg.binding_cache_capacity,
            Duration::from_millis(cfg.binding_cache_ttl_ms),
            Duration::from_millis(cfg.binding_cache_negative_ttl_ms),
        );
        let quotas = Quotas::new(
            cfg.gym_quota_samples_per_sec,
            cfg.gym_quota_burst_samples
                .max(cfg.max_samples_per_batch as f64),
            cfg.max_quota_gyms,
        );
        let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight_total.max(1)));
        let streams = Arc::new(Semaphore::new(cfg.max_streams.max(1)));
        Self {
            cfg,
            limits,
            store,
            producer,
            metrics,
            tracker: Mutex::new(tracker),
            bindings: Mutex::new(bindings),
            quotas: Mutex::new(quotas),
            in_flight,
            streams,
            stream_ids: AtomicU64::new(0),
        }
    }

    pub(crate) fn next_stream_id(&self) -> u64 {
        self.stream_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn rejected(&self, to: &AckTo, r: Reject) -> BatchAck {
        self.metrics.batches.with_label_values(&["rejected"]).inc();
        self.metrics
            .rejects
            .with_label_values(&[r.kind.label(), r.field_label()])
            .inc();
        tracing::debug!(sensor = %to.sensor_id, seq = to.seq, field = %r.field, reason = %r.reason, "batch rejected");
        to.ack(AckStatus::Rejected, Some(r.kind), &r.field, r.reason)
    }

    fn retry(
        &self,
        to: &AckTo,
        kind: ErrorKind,
        cause: &str,
        after: Duration,
        reason: String,
    ) -> BatchAck {
        self.metrics.batches.with_label_values(&["retry"]).inc();
        self.metrics.retries.with_label_values(&[cause]).inc();
        tracing::debug!(sensor = %to.sensor_id, seq = to.seq, cause, "batch answered with RETRY");
        let mut ack = to.ack(AckStatus::Retry, Some(kind), "", reason);
        ack.retry_after_ms = ms(after);
        ack
    }

    async fn binding(&self, sensor: &SensorId) -> Result<Option<SensorBinding>, StoreError> {
        if let Some(b) = lock(&self.bindings).get(sensor, Instant::now()) {
            self.metrics
                .binding_lookups
                .with_label_values(&["hit"])
                .inc();
            return Ok(b);
        }
        self.metrics
            .binding_lookups
            .with_label_values(&["miss"])
            .inc();
        let b = self.store.sensor_binding(sensor).await?;
        lock(&self.bindings).put(sensor.clone(), b.clone(), Instant::now());
        Ok(b)
    }

    /// Checks one batch and, when it is new and admitted, sends it to the bus.
    async fn handle(self: &Arc<Self>, principal: &Principal, batch: SampleBatch) -> Handled {
        let received = now_us();
        let to = AckTo {
            sensor_id: batch.sensor_id.clone(),
            seq: batch.seq,
            received_time_us: received,
        };
        let checked = match validate::validate(&batch, &self.limits, received) {
            Ok(c) => c,
            Err(r) => return Handled::Done(self.rejected(&to, r)),
        };
        let sensor = checked.sensor.clone();

        let binding = match self.binding(&sensor).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Handled::Done(self.rejected(
                    &to,
                    Reject::new(
                        ErrorKind::NotFound,
                        "sensor_id",
                        format!(
                            "sensor `{sensor}` is not registered (or not enrolled to an athlete)"
                        ),
                    ),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, sensor = %sensor, "sensor binding lookup failed");
                return Handled::Done(self.retry(
                    &to,
                    ErrorKind::Unavailable,
                    "store_unavailable",
                    Duration::from_millis(self.cfg.unavailable_retry_after_ms.into()),
                    format!("the registry is unavailable: {e}"),
                ));
            }
        };
        if let Principal::Gym(own) = principal
            && *own != binding.gym_id
        {
            return Handled::Done(self.rejected(
                &to,
                Reject::new(
                    ErrorKind::PermissionDenied,
                    "sensor_id",
                    format!("sensor `{sensor}` is not registered to gym `{own}`"),
                ),
            ));
        }

        let key = BatchKey {
            seq: batch.seq,
            hash: validate::content_hash(&batch),
            first_us: batch.first_sample_time_us,
            end_us: checked.end_us,
        };
        let verdict = lock(&self.tracker).check(&sensor, key);
        let reservation = match verdict {
            Verdict::New => Reservation {
                inner: self.clone(),
                sensor: sensor.clone(),
                key,
                done: false,
            },
            Verdict::Duplicate => {
                self.metrics.batches.with_label_values(&["duplicate"]).inc();
                return Handled::Done(to.ack(
                    AckStatus::Duplicate,
                    None,
                    "",
                    format!(
                        "seq {} of sensor `{sensor}` was already accepted; not written again",
                        batch.seq
                    ),
                ));
            }
            Verdict::InFlight => {
                return Handled::Done(self.retry(
                    &to,
                    ErrorKind::Unavailable,
                    "in_flight_elsewhere",
                    Duration::from_millis(self.cfg.queue_full_retry_after_ms.into()),
                    format!("seq {} of sensor `{sensor}` is being written right now; resend to learn its outcome", batch.seq),
                ));
            }
            Verdict::Blocked { waiting_for } => {
                return Handled::Done(self.retry(
                    &to,
                    ErrorKind::ResourceExhausted,
                    "waiting_for_resend",
                    Duration::from_millis(self.cfg.queue_full_retry_after_ms.into()),
                    format!(
                        "waiting for the resend of seq {waiting_for} of sensor `{sensor}`: batches of a sensor are accepted in seq order"
                    ),
                ));
            }
            Verdict::Reject(r) => return Handled::Done(self.rejected(&to, r)),
        };

        let gym = binding.gym_id.clone();
        if let Err(wait) = lock(&self.quotas).try_take(&gym, checked.samples, Instant::now()) {
            return Handled::Done(self.retry(
                &to,
                ErrorKind::ResourceExhausted,
                "quota",
                wait,
                format!(
                    "gym `{gym}` is over its quota of {} samples/s",
                    self.cfg.gym_quota_samples_per_sec
                ),
            ));
        }
        let refund = |inner: &Inner| lock(&inner.quotas).refund(&gym, checked.samples);

        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            refund(self);
            return Handled::Done(self.retry(
                &to,
                ErrorKind::ResourceExhausted,
                "in_flight",
                Duration::from_millis(self.cfg.queue_full_retry_after_ms.into()),
                format!(
                    "ingest has {} batches in flight, its maximum",
                    self.cfg.max_in_flight_total
                ),
            ));
        };

        let samples = checked.samples;
        let athlete = binding.athlete_id.clone();
        let payload = EnrichedBatch {
            gym_id: binding.gym_id.into_string(),
            athlete_id: binding.athlete_id.into_string(),
            sensor_id: batch.sensor_id,
            placement: binding.placement.to_proto(),
            seq: batch.seq,
            first_sample_time_us: batch.first_sample_time_us,
            sample_rate_hz: batch.sample_rate_hz,
            received_time_us: received,
            ax: batch.ax,
            ay: batch.ay,
            az: batch.az,
            gx: batch.gx,
            gy: batch.gy,
            gz: batch.gz,
            set: batch.set,
            reattached: batch.reattached,
            athlete: Some(binding.profile),
            end_of_session: batch.end_of_session,
        }
        .encode_to_vec();

        let started = Instant::now();
        let delivery = match self
            .producer
            .send(topics::SAMPLES, athlete.as_str(), payload)
        {
            Ok(d) => d,
            Err(e) => {
                refund(self);
                let ack = self.bus_failure(&to, &e);
                if ack.status == AckStatus::Rejected as i32 {
                    reservation.finish_rejected();
                } else {
                    drop(reservation);
                }
                return Handled::Done(ack);
            }
        };
        self.metrics.in_flight.inc();
        let slot = InFlight {
            gauge: self.metrics.in_flight.clone(),
            _permit: permit,
        };
        let inner = self.clone();
        let timeout = Duration::from_millis(self.cfg.delivery_timeout_ms);
        let skew = checked.skew_ahead_us;
        Handled::Sending(Box::pin(async move {
            let outcome = tokio::time::timeout(timeout, delivery).await;
            drop(slot);
            inner
                .metrics
                .bus_send_seconds
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(_delivery)) => {
                    reservation.finish(true);
                    inner.metrics.batches.with_label_values(&["accepted"]).inc();
                    inner.metrics.samples_accepted.inc_by(samples as u64);
                    match skew {
                        Some(ahead) => {
                            inner.metrics.clock_skew_flagged.inc();
                            tracing::info!(sensor = %to.sensor_id, seq = to.seq, ahead_us = ahead, "device clock ahead of the server; flagged");
                            to.ack(
                                AckStatus::Accepted,
                                None,
                                "first_sample_time_us",
                                format!(
                                    "accepted; clock skew flagged: the device clock is {:.3} s ahead of the server",
                                    ahead as f64 / 1e6
                                ),
                            )
                        }
                        None => to.ack(AckStatus::Accepted, None, "", String::new()),
                    }
                }
                Ok(Err(e)) => {
                    let ack = inner.bus_failure(&to, &e);
                    if ack.status == AckStatus::Rejected as i32 {
                        reservation.finish_rejected();
                    } else {
                        drop(reservation);
                    }
                    ack
                }
                Err(_) => {
                    drop(reservation);
                    tracing::warn!(sensor = %to.sensor_id, seq = to.seq, "bus delivery timed out");
                    inner.retry(
                        &to,
                        ErrorKind::Unavailable,
                        "delivery_timeout",
                        Duration::from_millis(inner.cfg.unavailable_retry_after_ms.into()),
                        format!("the bus did not confirm the batch within {timeout:?}"),
                    )
                }
            }
        }))
    }

    fn bus_failure(&self, to: &AckTo, e: &BusError) -> BatchAck {
        let kind = if matches!(e, BusError::QueueFull) {
            ErrorKind::ResourceExhausted
        } else {
            e.kind()
        };
        match kind {
            ErrorKind::ResourceExhausted => self.retry(
                to,
                ErrorKind::ResourceExhausted,
                "queue_full",
                Duration::from_millis(self.cfg.queue_full_retry_after_ms.into()),
                format!("the bus is full: {e}"),
            ),
            ErrorKind::InvalidArgument | ErrorKind::OutOfRange => {
                tracing::warn!(error = %e, sensor = %to.sensor_id, seq = to.seq, "the bus refused the record");
                self.rejected(
                    to,
                    Reject::new(kind, "", format!("the bus refused the batch: {e}")),
                )
            }
            _ => {
                tracing::warn!(error = %e, sensor = %to.sensor_id, seq = to.seq, "bus send failed");
                self.retry(
                    to,
                    ErrorKind::Unavailable,
                    "bus_unavailable",
                    Duration::from_millis(self.cfg.unavailable_retry_after_ms.into()),
                    format!("the bus is unavailable: {e}"),
                )
            }
        }
    }
}

/// Serves one authenticated stream until the client half-closes (then every pending
/// batch is acknowledged), the input fails, or the client goes away.
pub(crate) async fn run_stream(
    inner: Arc<Inner>,
    principal: Principal,
    mut input: Streaming<SampleBatch>,
    tx: mpsc::Sender<Result<BatchAck, Status>>,
    permit: OwnedSemaphorePermit,
) {
    inner.metrics.streams.inc();
    let max = inner.cfg.max_in_flight_per_stream.max(1);
    let mut pending: FuturesOrdered<AckFuture> = FuturesOrdered::new();
    let mut reading = true;
    let mut client_open = true;
    let mut failure: Option<Status> = None;
    let mut counts = [0u64; 5];
    tracing::debug!("stream opened");
    loop {
        if !reading && pending.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(ack) = pending.next(), if !pending.is_empty() => {
                if let Some(c) = usize::try_from(ack.status).ok().and_then(|i| counts.get_mut(i)) {
                    *c += 1;
                }
                if client_open && tx.send(Ok(ack)).await.is_err() {
                    client_open = false;
                    reading = false;
                }
            }
            msg = input.next(), if reading && pending.len() < max => match msg {
                Some(Ok(batch)) => match inner.handle(&principal, batch).await {
                    Handled::Done(ack) => pending.push_back(Box::pin(std::future::ready(ack))),
                    Handled::Sending(fut) => pending.push_back(fut),
                },
                Some(Err(status)) => {
                    tracing::info!(code = ?status.code(), message = status.message(), "stream input failed");
                    reading = false;
                    failure = Some(status);
                }
                None => reading = false,
            },
            else => break,
        }
    }
    if let Some(status) = failure
        && client_open
    {
        let _ = tx.send(Err(status)).await;
    }
    tracing::info!(
        accepted = counts[AckStatus::Accepted as usize],
        duplicate = counts[AckStatus::Duplicate as usize],
        rejected = counts[AckStatus::Rejected as usize],
        retry = counts[AckStatus::Retry as usize],
        client_open,
        "stream closed"
    );
    inner.metrics.streams.dec();
    drop(permit);
}

/// Spawns [`run_stream`] in a span naming the stream and the principal.
pub(crate) fn spawn_stream(
    inner: Arc<Inner>,
    principal: Principal,
    peer: Option<std::net::SocketAddr>,
    input: Streaming<SampleBatch>,
    tx: mpsc::Sender<Result<BatchAck, Status>>,
    permit: OwnedSemaphorePermit,
) {
    let span = tracing::info_span!(
        "ingest_stream",
        stream = inner.next_stream_id(),
        principal = %principal.label(),
        peer = ?peer
    );
    tokio::spawn(run_stream(inner, principal, input, tx, permit).instrument(span));
}
