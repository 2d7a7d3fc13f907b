//! The store maintenance task against a real SQLite store: rollups follow the writes
//! without anyone calling `refresh_rollups`, retention does not run at startup (old
//! recordings replayed into a short-lived process stay), and stop ends the task.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use liftguard_sink::maintenance::Maintenance;
use liftguard_store::testing::synth::{self, GymSpec};
use liftguard_store::{Policies, Scope, Store, StoreOptions};
use tokio_util::sync::CancellationToken;

/// Polls `check` until it returns `Some` (or fails after 30 s).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counter(registry: &prometheus::Registry, name: &str, label: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.value() == label))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_keeps_rollups_fresh_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let store = Store::connect(&url, StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut policies = Policies::default();
    policies.rollups.refresh_interval_s = 1;
    policies.retention.reps_days = 1; // everything generated below is older than that
    let registry = prometheus::Registry::new();
    let stop = CancellationToken::new();
    let task = tokio::spawn(Maintenance::new(store.clone(), policies, &registry).run(stop.clone()));

    let spec = GymSpec::small("maint-gym", 3, 2, 8);
    let athletes = synth::athletes(&spec);
    let ids: Vec<String> = athletes.iter().map(|a| a.athlete_id.clone()).collect();
    let reps: Vec<_> = synth::reps_by_week(&spec, &athletes, &ids)
        .flatten()
        .collect();
    store.upsert_reps(&reps).await.unwrap();

    let weeks = eventually("the rollups to show every rep", || async {
        let w = store.gym_weekly(&Scope::all(), 0..i64::MAX).await.unwrap();
        let n: i64 = w.iter().map(|w| w.totals.reps).sum();
        (n == reps.len() as i64).then_some(w)
    })
    .await;
    assert_eq!(weeks.len(), 2);
    assert!(
        counter(
            &registry,
            "liftguard_sink_maintenance_runs_total",
            "rollups"
        ) >= 1
    );
    assert_eq!(
        counter(
            &registry,
            "liftguard_sink_maintenance_runs_total",
            "retention"
        ),
        0,
        "retention waits one interval"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM reps")
        .fetch_one(store.sqlite_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(stored, reps.len() as i64, "nothing deleted at startup");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the task stops")
        .unwrap();
}
