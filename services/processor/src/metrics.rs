//! Prometheus metrics of the processor role.

use liftguard_proto::v1 as pb;
use liftguard_runtime::metrics::{LATENCY_BUCKETS, counter, counter_vec, gauge, histogram};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::BatchOutput;

#[derive(Debug, Clone)]
pub struct ProcessorMetrics {
    pub batches: IntCounterVec,
    pub samples: IntCounter,
    pub reps: IntCounter,
    /// Records produced, by topic: the sink's consumed counts converge to these.
    pub records: IntCounterVec,
    pub events: IntCounter,
    pub decode_errors: IntCounter,
    pub backpressure: IntCounter,
    pub evictions: IntCounter,
    pub athletes: IntGauge,
    pub lag: IntGauge,
    /// Server receive time of a batch to the end of its processing.
    pub latency: Histogram,
    pub handle_seconds: Histogram,
}

impl ProcessorMetrics {
    pub fn register(r: &Registry) -> Self {
        Self {
            batches: counter_vec(
                r,
                "liftguard_processor_batches_total",
                "Sample batches consumed, by outcome",
                &["outcome"],
            ),
            samples: counter(
                r,
                "liftguard_processor_samples_total",
                "Sensor samples processed",
            ),
            reps: counter(r, "liftguard_processor_reps_total", "Rep records produced"),
            records: counter_vec(
                r,
                "liftguard_processor_records_total",
                "Records produced, by topic",
                &["topic"],
            ),
            events: counter(
                r,
                "liftguard_processor_extensor_events_total",
                "Reps flagged as extensor-moment events",
            ),
            decode_errors: counter(
                r,
                "liftguard_processor_decode_errors_total",
                "Undecodable input records skipped",
            ),
            backpressure: counter(
                r,
                "liftguard_processor_backpressure_total",
                "Sends that waited for the bus",
            ),
            evictions: counter(
                r,
                "liftguard_processor_evictions_total",
                "Athlete states flushed and evicted",
            ),
            athletes: gauge(
                r,
                "liftguard_processor_athletes",
                "Athletes with state in memory",
            ),
            lag: gauge(
                r,
                "liftguard_processor_bus_lag",
                "Input records not yet consumed by the group",
            ),
            latency: histogram(
                r,
                "liftguard_processor_latency_seconds",
                "Ingest receive time to end of processing",
                LATENCY_BUCKETS,
            ),
            handle_seconds: histogram(
                r,
                "liftguard_processor_batch_seconds",
                "Time to process one batch",
                &[1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2],
            ),
        }
    }

    pub fn observe_batch(&self, b: &pb::EnrichedBatch, out: &BatchOutput) {
        if out.duplicate {
            self.batches.with_label_values(&["duplicate"]).inc();
            return;
        }
        self.batches.with_label_values(&["processed"]).inc();
        self.samples.inc_by(b.ax.len() as u64);
        self.reps.inc_by(out.reps.len() as u64);
        self.events
            .inc_by(out.reps.iter().filter(|r| r.extensor_event).count() as u64);
    }
}
