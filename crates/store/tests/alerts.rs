//! Alerts, risk, flare-up reports, webhooks and the outbox on SQLite, plain PostgreSQL
//! and TimescaleDB (pglite), plus what only shows under concurrency on PostgreSQL:
//! cursors become visible in cursor order, and concurrent claimers never share a row.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::alerts::{alert, alerts_behaviour, wall_now};
use common::{DAY, T0, gym};
use liftguard_proto::v1::{AlertKind, Severity};
use liftguard_store::testing::{PgTestDb, PgliteServer};
use liftguard_store::{AlertQuery, Backend, DeliveryOutcome, Scope, Store, StoreOptions};

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
    let store = Store::connect(&url, StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Sqlite);
    (store, dir)
}

async fn postgres(max_connections: u32) -> (Store, PgTestDb) {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Postgres);
    (store, db)
}

#[tokio::test]
async fn alerts_behaviour_sqlite() {
    let (store, _dir) = sqlite().await;
    alerts_behaviour(&store).await;
    assert!(store.alert_listener().await.unwrap().is_none());
}

#[tokio::test]
async fn alerts_behaviour_postgres() {
    let (store, db) = postgres(4).await;
    alerts_behaviour(&store).await;
    store.close().await;
    db.drop().await.unwrap();
}

#[tokio::test]
async fn alerts_behaviour_timescale_and_hypertables() {
    let server = PgliteServer::start().await.unwrap();
    let store = Store::connect(&server.url(), StoreOptions { max_connections: 1 })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Timescale);
    alerts_behaviour(&store).await;
    let dims: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT hypertable_name::text, column_name::text, time_interval::text \
         FROM timescaledb_information.dimensions \
         WHERE hypertable_name IN ('alerts', 'risk_scores') ORDER BY 1",
    )
    .fetch_all(store.pg_pool().unwrap())
    .await
    .unwrap();
    assert_eq!(
        dims,
        [
            ("alerts".into(), "time".into(), "30 days".into()),
            ("risk_scores".into(), "day".into(), "90 days".into()),
        ]
    );
}

/// Writers on several connections commit alerts concurrently while a reader follows the
/// cursor: it must never see a cursor before every lower one is visible (else a
/// subscriber handing over from replay to live events would skip alerts).
#[tokio::test]
async fn cursors_become_visible_in_order_under_concurrent_writers() {
    let (store, db) = postgres(8).await;
    const WRITERS: usize = 4;
    const BATCHES: i64 = 40;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let a = format!("a-00000000000000{w:02}");
            for b in 0..BATCHES {
                let batch: Vec<_> = (0..3)
                    .map(|k| {
                        alert(
                            "gym-cc",
                            &a,
                            AlertKind::Fatigue,
                            T0 + b * 10 + k,
                            Severity::Warning,
                        )
                    })
                    .collect();
                s.upsert_alerts(&batch).await.unwrap();
            }
        }));
    }
    let total = WRITERS as i64 * BATCHES * 3;
    let mut last = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while last < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reader stalled at {last}"
        );
        let page = store
            .list_alerts(&Scope::all(), &AlertQuery::after(last, 1000))
            .await
            .unwrap();
        for a in &page {
            assert_eq!(
                a.cursor,
                last + 1,
                "a gap: cursor {} after {last}",
                a.cursor
            );
            last = a.cursor;
        }
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.last_alert_cursor().await.unwrap(), total);
    store.close().await;
    db.drop().await.unwrap();
}

/// Two dispatchers (separate pools) claiming at the same time never get the same row.
#[tokio::test]
async fn concurrent_claims_never_overlap() {
    let (store, db) = postgres(4).await;
    let other = Store::connect(db.url(), StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    let g = gym("gym-claim");
    store.create_gym("gym-claim", "Claims").await.unwrap();
    for i in 0..3 {
        store
            .create_webhook(&g, "https://example.com/h", &format!("h{i}"), 0)
            .await
            .unwrap();
    }
    let alerts: Vec<_> = (0..100)
        .map(|i| {
            alert(
                "gym-claim",
                "a-0000000000000c01",
                AlertKind::Stability,
                T0 + i * DAY / 100,
                Severity::Info,
            )
        })
        .collect();
    assert_eq!(store.upsert_alerts(&alerts).await.unwrap().deliveries, 300);
    let now = wall_now() + 1_000_000;
    let claimer = |s: Store| async move {
        let mut mine = Vec::new();
        loop {
            let batch = s.claim_deliveries(now, now + 60_000_000, 7).await.unwrap();
            if batch.is_empty() {
                return mine;
            }
            for c in batch {
                s.finish_delivery(
                    &c.webhook_id,
                    &c.alert.alert.alert_id,
                    c.attempt,
                    &DeliveryOutcome::Delivered { status: 200 },
                )
                .await
                .unwrap();
                mine.push(c.delivery_id());
            }
        }
    };
    let (a, b) = tokio::join!(claimer(store.clone()), claimer(other.clone()));
    let union: HashSet<&String> = a.iter().chain(&b).collect();
    assert_eq!(a.len() + b.len(), 300, "no row claimed twice");
    assert_eq!(union.len(), 300);
    assert!(!a.is_empty() && !b.is_empty(), "both claimers worked");
    other.close().await;
    store.close().await;
    db.drop().await.unwrap();
}

/// `LISTEN` wakes a poller when alerts are inserted (not on replays).
#[tokio::test]
async fn postgres_notifies_inserts() {
    let (store, db) = postgres(4).await;
    let mut listener = store.alert_listener().await.unwrap().unwrap();
    let a = alert(
        "gym-n",
        "a-0000000000000n01",
        AlertKind::Fatigue,
        T0,
        Severity::Critical,
    );
    store.upsert_alerts(std::slice::from_ref(&a)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(got, 1);
    store.upsert_alerts(std::slice::from_ref(&a)).await.unwrap();
    let b = alert(
        "gym-n",
        "a-0000000000000n01",
        AlertKind::Fatigue,
        T0 + 1,
        Severity::Critical,
    );
    store.upsert_alerts(&[b]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(got, 2, "the replay sent nothing");
    drop(listener);
    store.close().await;
    db.drop().await.unwrap();
}
