//! Periodic store maintenance, run next to the sink: rollup refreshes and retention on
//! the fallbacks (plain PostgreSQL, SQLite). On TimescaleDB both are database jobs
//! (`Store::apply_policies` set them up), so this task only applies the policies at start.
//!
//! Invariants:
//! - Passes of one process never overlap (one task, sequential passes); across processes
//!   the store serialises rollup refreshes (advisory lock / SQLite write lock), and
//!   retention is idempotent.
//! - A failed pass is logged and counted, never fatal: the next tick retries (maintenance
//!   must not stop the sink from writing).
//! - Stops at the next await once `stop` fires; a pass in progress is abandoned as a whole
//!   (each pass is one transaction per step, so nothing half-done is committed).

use std::time::{Duration, Instant};

use liftguard_runtime::metrics::{LATENCY_BUCKETS, counter_vec, histogram_vec};
use liftguard_store::{Backend, Policies, Store};
use prometheus::{HistogramVec, IntCounterVec, Registry};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Metrics {
    runs: IntCounterVec,
    errors: IntCounterVec,
    seconds: HistogramVec,
    work: IntCounterVec,
}

impl Metrics {
    fn register(r: &Registry) -> Self {
        Metrics {
            runs: counter_vec(
                r,
                "liftguard_sink_maintenance_runs_total",
                "Store maintenance passes completed, by task (rollups, retention)",
                &["task"],
            ),
            errors: counter_vec(
                r,
                "liftguard_sink_maintenance_errors_total",
                "Store maintenance passes that failed (retried at the next tick), by task",
                &["task"],
            ),
            seconds: histogram_vec(
                r,
                "liftguard_sink_maintenance_seconds",
                "Duration of a store maintenance pass, by task",
                &["task"],
                LATENCY_BUCKETS,
            ),
            work: counter_vec(
                r,
                "liftguard_sink_maintenance_items_total",
                "Rollup athlete-days recomputed, retention rows deleted and partitions dropped",
                &["item"],
            ),
        }
    }
}

/// The maintenance task.
pub struct Maintenance {
    store: Store,
    policies: Policies,
    metrics: Metrics,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance")
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl Maintenance {
    pub fn new(store: Store, policies: Policies, registry: &Registry) -> Self {
        Maintenance {
            store,
            policies,
            metrics: Metrics::register(registry),
        }
    }

    /// Applies the policies (logging a failure), then, on the fallbacks, refreshes rollups
    /// every `rollups.refresh_interval_s` (the first at once) and enforces retention every
    /// `retention.interval_s` (the first after one interval) until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        if let Err(e) = self.store.apply_policies(&self.policies).await {
            tracing::warn!(error = %e, "could not apply store policies");
        }
        if self.store.backend() == Backend::Timescale {
            tracing::info!("TimescaleDB runs rollup refreshes and retention as jobs");
            return;
        }
        // Rollups refresh at once (cheap when nothing is pending); retention waits one
        // interval, so a short-lived process (a demo, a test) replaying old recordings
        // never loses them to a startup pass.
        let every = |s: u64, first_now: bool| {
            let period = Duration::from_secs(s.max(1));
            let start =
                tokio::time::Instant::now() + if first_now { Duration::ZERO } else { period };
            let mut i = tokio::time::interval_at(start, period);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        };
        let mut refresh = every(self.policies.rollups.refresh_interval_s, true);
        let mut retention = every(self.policies.retention.interval_s, false);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = refresh.tick() => self.refresh_once(&stop).await,
                _ = retention.tick() => self.retain_once(&stop).await,
            }
        }
    }

    async fn refresh_once(&self, stop: &CancellationToken) {
        let started = Instant::now();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = self.store.refresh_rollups() => r,
        };
        self.finish(
            "rollups",
            started,
            result.map(|r| {
                self.metrics
                    .work
                    .with_label_values(&["rollup_athlete_days"])
                    .inc_by(r.athlete_days);
            }),
        );
    }

    async fn retain_once(&self, stop: &CancellationToken) {
        let started = Instant::now();
        let now_us = chrono_now_us();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = self.store.enforce_retention(&self.policies.retention, now_us) => r,
        };
        self.finish(
            "retention",
            started,
            result.map(|r| {
                self.metrics
                    .work
                    .with_label_values(&["retention_rows"])
                    .inc_by(r.rows_deleted);
                self.metrics
                    .work
                    .with_label_values(&["retention_partitions"])
                    .inc_by(r.partitions_dropped);
            }),
        );
    }

    fn finish(
        &self,
        task: &str,
        started: Instant,
        result: Result<(), liftguard_store::StoreError>,
    ) {
        self.metrics
            .seconds
            .with_label_values(&[task])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => self.metrics.runs.with_label_values(&[task]).inc(),
            Err(e) => {
                self.metrics.errors.with_label_values(&[task]).inc();
                tracing::warn!(task, error = %e, "store maintenance failed; retrying at the next tick");
            }
        }
    }
}

fn chrono_now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
