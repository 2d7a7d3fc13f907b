//! The ingest role: the `liftguard.v1.Ingest` gRPC service.
//!
//! Sensors (or a gym gateway multiplexing many sensors) open `StreamSamples`, send
//! `SampleBatch`es and get one `BatchAck` per batch. Per batch, in this order:
//! 1. [`validate`]: shape, finiteness, physical ranges, rate, device-time plausibility
//!    (pure; `INVALID_ARGUMENT` for malformed values, `OUT_OF_RANGE` for values outside
//!    the accepted window; a device clock ahead beyond a bound is flagged, not rejected);
//! 2. the sensor binding (cached with a TTL): unknown -> `NOT_FOUND`, another gym's
//!    sensor -> `PERMISSION_DENIED`;
//! 3. [`progress`]: a resend of an accepted `(sensor, seq)` with the same content is
//!    acked `DUPLICATE` and not sent again; the same seq with other content is
//!    `ALREADY_EXISTS`; seq or device time going backwards is `FAILED_PRECONDITION`;
//! 4. the per-gym quota and the process-wide in-flight bound (RETRY,
//!    `RESOURCE_EXHAUSTED`, with `retry_after_ms`);
//! 5. enrichment into `EnrichedBatch` (gym, athlete, placement, profile, receive time),
//!    sent to `liftguard.samples.v1` keyed by athlete; ACCEPTED only once durable.
//!
//! Invariants: memory is bounded everywhere (per-stream pending batches, the ack channel,
//! the process-wide in-flight semaphore, the number of streams, the LRU maps of sensor
//! progress, bindings and gym quotas); a bad batch never ends the stream; the processor,
//! not ingest, is the authoritative dedupe (it drops seq ≤ the last processed seq per
//! sensor), ingest's window only avoids needless duplicates on the bus.

use std::{fmt, sync::Arc};

use liftguard_bus::Producer;
use liftguard_model::ErrorKind;
use liftguard_proto::v1::{
    BatchAck, SampleBatch,
    ingest_server::{Ingest, IngestServer},
};
use liftguard_runtime::{auth, status};
use liftguard_store::Store;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming, server::NamedService, service::RoutesBuilder};

pub mod bindings;
mod lru;
pub mod metrics;
pub mod progress;
pub mod quota;
mod service;
pub mod validate;

/// Configuration of the ingest role. Every field has a default (`[ingest]` in the config
/// file may be empty).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// The operator token (may stream for any gym); `None` or empty disables it.
    pub operator_token: Option<String>,
    /// Samples per batch, 1..=this.
    pub max_samples_per_batch: usize,
    /// Encoded size limit of one incoming message (tonic `max_decoding_message_size`);
    /// raised automatically to fit `max_samples_per_batch`.
    pub max_message_bytes: usize,
    /// A batch whose last sample is further ahead of the receive time is OUT_OF_RANGE.
    pub max_future_ms: u64,
    /// A device clock ahead by more than this is flagged (accepted, ack reason, metric).
    pub clock_skew_flag_ms: u64,
    /// A batch may start this much before the previous batch's end.
    pub time_tolerance_ms: u64,
    /// Accepted `(seq, content hash)` pairs remembered per sensor.
    pub dedupe_window: usize,
    /// Sensors whose progress is tracked (LRU beyond).
    pub max_tracked_sensors: usize,
    pub binding_cache_capacity: usize,
    /// How long a sensor binding is trusted (a re-bound sensor is seen after this).
    pub binding_cache_ttl_ms: u64,
    /// How long "no such sensor" is trusted.
    pub binding_cache_negative_ttl_ms: u64,
    /// Batches pending per stream; beyond it the stream is not read (flow control).
    pub max_in_flight_per_stream: usize,
    /// Batches pending on the bus for the whole process; beyond it RETRY.
    pub max_in_flight_total: usize,
    /// Concurrent streams; beyond it the call fails with RESOURCE_EXHAUSTED.
    pub max_streams: usize,
    /// Per-gym quota in samples per second; 0 disables quotas.
    pub gym_quota_samples_per_sec: f64,
    /// Bucket size of the per-gym quota (at least one full batch).
    pub gym_quota_burst_samples: f64,
    /// Gyms whose quota bucket is tracked (LRU beyond).
    pub max_quota_gyms: usize,
    /// `retry_after_ms` for bus QueueFull and the in-flight bound.
    pub queue_full_retry_after_ms: u32,
    /// `retry_after_ms` when the bus or the store is unavailable.
    pub unavailable_retry_after_ms: u32,
    /// A delivery not confirmed within this is answered RETRY/UNAVAILABLE.
    pub delivery_timeout_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            operator_token: None,
            max_samples_per_batch: 2000,
            max_message_bytes: 256 * 1024,
            max_future_ms: 60_000,
            clock_skew_flag_ms: 2_000,
            time_tolerance_ms: 100,
            dedupe_window: 64,
            max_tracked_sensors: 100_000,
            binding_cache_capacity: 100_000,
            binding_cache_ttl_ms: 30_000,
            binding_cache_negative_ttl_ms: 2_000,
            max_in_flight_per_stream: 32,
            max_in_flight_total: 4096,
            max_streams: 10_000,
            gym_quota_samples_per_sec: 250_000.0,
            gym_quota_burst_samples: 500_000.0,
            max_quota_gyms: 10_000,
            queue_full_retry_after_ms: 250,
            unavailable_retry_after_ms: 1_000,
            delivery_timeout_ms: 30_000,
        }
    }
}

impl fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestConfig")
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_samples_per_batch", &self.max_samples_per_batch)
            .field("max_message_bytes", &self.effective_max_message_bytes())
            .field("max_future_ms", &self.max_future_ms)
            .field("clock_skew_flag_ms", &self.clock_skew_flag_ms)
            .field("time_tolerance_ms", &self.time_tolerance_ms)
            .field("dedupe_window", &self.dedupe_window)
            .field("max_tracked_sensors", &self.max_tracked_sensors)
            .field("binding_cache_capacity", &self.binding_cache_capacity)
            .field("binding_cache_ttl_ms", &self.binding_cache_ttl_ms)
            .field(
                "binding_cache_negative_ttl_ms",
                &self.binding_cache_negative_ttl_ms,
            )
            .field("max_in_flight_per_stream", &self.max_in_flight_per_stream)
            .field("max_in_flight_total", &self.max_in_flight_total)
            .field("max_streams", &self.max_streams)
            .field("gym_quota_samples_per_sec", &self.gym_quota_samples_per_sec)
            .field("gym_quota_burst_samples", &self.gym_quota_burst_samples)
            .field("max_quota_gyms", &self.max_quota_gyms)
            .field("queue_full_retry_after_ms", &self.queue_full_retry_after_ms)
            .field(
                "unavailable_retry_after_ms",
                &self.unavailable_retry_after_ms,
            )
            .field("delivery_timeout_ms", &self.delivery_timeout_ms)
            .finish()
    }
}

impl IngestConfig {
    /// The validation limits this configuration implies.
    pub fn limits(&self) -> validate::Limits {
        let us = |ms: u64| i64::try_from(ms.saturating_mul(1000)).unwrap_or(i64::MAX);
        validate::Limits {
            max_samples: self.max_samples_per_batch.max(1),
            max_future_us: us(self.max_future_ms),
            skew_flag_us: us(self.clock_skew_flag_ms),
            ..validate::Limits::default()
        }
    }

    /// `max_message_bytes`, at least large enough for a full batch of
    /// `max_samples_per_batch` (6 packed float columns plus 8 KiB for the rest).
    pub fn effective_max_message_bytes(&self) -> usize {
        let needed = self
            .max_samples_per_batch
            .saturating_mul(6 * 4)
            .saturating_add(8 * 1024);
        self.max_message_bytes.max(needed)
    }
}

/// The `Ingest` service. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct IngestService {
    inner: Arc<service::Inner>,
}

impl IngestService {
    /// Registers the role's metrics (`liftguard_ingest_*`) into `registry`.
    pub fn new(
        cfg: IngestConfig,
        store: Store,
        producer: Producer,
        registry: &prometheus::Registry,
    ) -> Self {
        let metrics = metrics::Metrics::new(registry);
        Self {
            inner: Arc::new(service::Inner::new(cfg, store, producer, metrics)),
        }
    }

    pub fn config(&self) -> &IngestConfig {
        &self.inner.cfg
    }

    /// The tonic server with the message size limits of the configuration (incoming:
    /// [`IngestConfig::effective_max_message_bytes`]; outgoing acks: 64 KiB).
    pub fn into_server(self) -> IngestServer<IngestService> {
        let max = self.inner.cfg.effective_max_message_bytes();
        IngestServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(64 * 1024)
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    type StreamSamplesStream = ReceiverStream<Result<BatchAck, Status>>;

    async fn stream_samples(
        &self,
        request: Request<Streaming<SampleBatch>>,
    ) -> Result<Response<Self::StreamSamplesStream>, Status> {
        let inner = &self.inner;
        let principal = auth::authenticate(
            request.metadata(),
            &inner.store,
            inner.cfg.operator_token.as_deref(),
        )
        .await?;
        let permit = inner.streams.clone().try_acquire_owned().map_err(|_| {
            status(
                ErrorKind::ResourceExhausted,
                format!(
                    "ingest serves at most {} streams at once; retry later",
                    inner.cfg.max_streams
                ),
            )
        })?;
        let peer = request.remote_addr();
        let (tx, rx) = mpsc::channel(inner.cfg.max_in_flight_per_stream.clamp(1, 1024));
        service::spawn_stream(
            inner.clone(),
            principal,
            peer,
            request.into_inner(),
            tx,
            permit,
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The fully qualified gRPC name of the Ingest service.
pub const SERVICE_NAME: &str = <IngestServer<IngestService> as NamedService>::NAME;

pub use liftguard_runtime::grpc::{GrpcRoutes, RoutesError, add_health_and_reflection};

/// The ingest role's gRPC routes: Ingest + health + reflection. For one server hosting
/// several roles, add [`IngestService::into_server`] to a shared `RoutesBuilder` and call
/// [`add_health_and_reflection`] (or the api crate's equivalent) once with every name.
pub async fn ingest_routes(svc: IngestService) -> Result<GrpcRoutes, RoutesError> {
    let mut builder = RoutesBuilder::default();
    builder.add_service(svc.into_server());
    let health = add_health_and_reflection(&mut builder, &[SERVICE_NAME]).await?;
    Ok(GrpcRoutes {
        routes: builder.routes(),
        health,
    })
}
