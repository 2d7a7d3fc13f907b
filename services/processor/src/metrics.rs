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
    /// States restored from a checkpoint, by outcome (restored, fresh, failed).
    pub restores: IntCounterVec,
    /// Input records skipped because the restored state already reflects them.
    pub replay_skipped: IntCounter,
    /// Checkpoints: states written, and durations of a whole checkpoint.
    pub states_written: IntCounter,
    pub checkpoint_seconds: Histogram,
    pub checkpoint_bytes: IntCounter,
    pub revocations: IntCounter,
    pub sessions_closed: IntCounterVec,
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
                "Athlete states evicted from memory after checkpointing",
            ),
            restores: counter_vec(
                r,
                "liftguard_processor_state_restores_total",
                "Athlete states looked up in the checkpoint store, by outcome",
                &["outcome"],
            ),
            replay_skipped: counter(
                r,
                "liftguard_processor_replay_skipped_total",
                "Input records skipped because the restored state already reflects them",
            ),
            states_written: counter(
                r,
                "liftguard_processor_checkpoint_states_total",
                "Athlete states written to the checkpoint store",
            ),
            checkpoint_seconds: histogram(
                r,
                "liftguard_processor_checkpoint_seconds",
                "Time to write one checkpoint (states, then input offsets)",
                &[1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            ),
            checkpoint_bytes: counter(
                r,
                "liftguard_processor_checkpoint_bytes_total",
                "Serialised athlete state written",
            ),
            revocations: counter(
                r,
                "liftguard_processor_revocations_total",
                "Partition revocations handled (checkpoint, then state dropped)",
            ),
            sessions_closed: counter_vec(
                r,
                "liftguard_processor_sessions_closed_total",
                "Training sessions closed, by cause (marker or gap, idle)",
                &["cause"],
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
