//! Prometheus metrics of the ingest role, registered into the registry given to
//! [`crate::IngestService::new`].
//!
//! Invariant: every label has a bounded set of values (ack status, ErrorKind label, the
//! field name without its index, a fixed retry cause), never a sensor, gym or seq.

use liftguard_runtime::metrics::{LATENCY_BUCKETS, counter, counter_vec, gauge, histogram};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct Metrics {
    /// `status` = accepted | duplicate | rejected | retry.
    pub batches: IntCounterVec,
    /// `reason` = ErrorKind label, `field` = offending field without index.
    pub rejects: IntCounterVec,
    /// `cause` = queue_full | in_flight | quota | in_flight_elsewhere | bus_unavailable |
    /// store_unavailable | delivery_timeout.
    pub retries: IntCounterVec,
    pub samples_accepted: IntCounter,
    pub in_flight: IntGauge,
    pub streams: IntGauge,
    pub bus_send_seconds: Histogram,
    pub clock_skew_flagged: IntCounter,
    pub binding_lookups: IntCounterVec,
}

impl Metrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            batches: counter_vec(
                r,
                "liftguard_ingest_batches_total",
                "Sample batches acknowledged, by ack status.",
                &["status"],
            ),
            rejects: counter_vec(
                r,
                "liftguard_ingest_rejects_total",
                "Rejected sample batches, by reason (error kind) and offending field.",
                &["reason", "field"],
            ),
            retries: counter_vec(
                r,
                "liftguard_ingest_retries_total",
                "Batches answered with RETRY, by cause.",
                &["cause"],
            ),
            samples_accepted: counter(
                r,
                "liftguard_ingest_samples_accepted_total",
                "IMU samples durably on the bus.",
            ),
            in_flight: gauge(
                r,
                "liftguard_ingest_in_flight_batches",
                "Batches sent to the bus and not yet confirmed.",
            ),
            streams: gauge(
                r,
                "liftguard_ingest_streams_active",
                "Open StreamSamples calls.",
            ),
            bus_send_seconds: histogram(
                r,
                "liftguard_ingest_bus_send_seconds",
                "Time from handing a batch to the bus until it is durable.",
                LATENCY_BUCKETS,
            ),
            clock_skew_flagged: counter(
                r,
                "liftguard_ingest_clock_skew_flagged_total",
                "Accepted batches whose device clock was ahead of the server beyond the flag bound.",
            ),
            binding_lookups: counter_vec(
                r,
                "liftguard_ingest_binding_lookups_total",
                "Sensor binding lookups, by result (hit | miss).",
                &["result"],
            ),
        }
    }
}
