//! The same data written to plain PostgreSQL, TimescaleDB (pglite) and SQLite gives
//! identical answers to every query.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use liftguard_model::AthleteId;
use liftguard_store::testing::{PgTestDb, PgliteServer};
use liftguard_store::{Backend, MAX_TIME_US, Scope, Store, StoreOptions};

#[tokio::test]
async fn identical_results_across_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let sqlite = Store::connect(&sqlite_url, StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    let db = PgTestDb::create().await.unwrap();
    let pg = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    let server = PgliteServer::start().await.unwrap();
    let ts = Store::connect(&server.url(), StoreOptions { max_connections: 1 })
        .await
        .unwrap();

    assert_eq!(sqlite.migrate().await.unwrap(), Backend::Sqlite);
    assert_eq!(pg.migrate().await.unwrap(), Backend::Postgres);
    assert_eq!(ts.migrate().await.unwrap(), Backend::Timescale);

    let s_lite = common::load_reference_data(&sqlite).await;
    let s_pg = common::load_reference_data(&pg).await;
    let s_ts = common::load_reference_data(&ts).await;

    // The snapshot is not trivial.
    assert_eq!(s_lite.gyms.len(), 2);
    assert_eq!(s_lite.athletes.len(), 3);
    assert_eq!(s_lite.all.len(), 410);
    assert!(s_lite.by_gym_pages.len() > 5);
    assert!(!s_lite.events_window.is_empty());
    assert!(s_lite.traces.iter().all(|t| !t.is_empty()));

    assert_eq!(s_pg, s_lite, "plain PostgreSQL differs from SQLite");
    assert_eq!(s_ts, s_lite, "TimescaleDB differs from SQLite");

    // The newest rep start (the default "as of" of windowed analytics): every backend and
    // every query shape (skip scan over gyms, per-athlete key) agrees with the data.
    let all = &s_lite.all;
    let mid = {
        let mut starts: Vec<i64> = all.iter().map(|r| r.start_us).collect();
        starts.sort_unstable();
        starts[starts.len() / 2]
    };
    let a1 = AthleteId::parse("a-1000000000000001").unwrap();
    let cases: Vec<(Scope, i64, i64)> = vec![
        (Scope::all(), 0, MAX_TIME_US + 1),
        (Scope::all(), 0, mid),
        (Scope::all(), mid, MAX_TIME_US + 1),
        (Scope::gym(common::gym("ref-gym")), 0, MAX_TIME_US + 1),
        (Scope::gym(common::gym("ref-two")), 0, mid),
        (
            Scope::athlete(common::gym("ref-gym"), a1.clone()),
            0,
            MAX_TIME_US + 1,
        ),
        (Scope::athlete(common::gym("ref-gym"), a1.clone()), 0, mid),
        (Scope::gym(common::gym("nobody")), 0, MAX_TIME_US + 1),
    ];
    for (scope, from, to) in &cases {
        let want = all
            .iter()
            .filter(|r| r.start_us >= *from && r.start_us < *to)
            .filter(|r| {
                scope
                    .gyms
                    .as_ref()
                    .is_none_or(|g| g.iter().any(|g| g.as_str() == r.gym_id))
            })
            .filter(|r| {
                scope
                    .athletes
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|a| a.as_str() == r.athlete_id))
            })
            .map(|r| r.start_us)
            .max();
        for (name, store) in [("sqlite", &sqlite), ("postgres", &pg), ("timescale", &ts)] {
            let got = store.newest_rep_start(scope, *from, *to).await.unwrap();
            assert_eq!(
                got, want,
                "{name}: newest rep start of {scope:?} in [{from}, {to})"
            );
        }
    }

    // Alerts (cursors, acknowledgements), risk, flare-up reports, webhooks and the outbox.
    let a_lite = common::alerts::load_alert_reference(&sqlite).await;
    let a_pg = common::alerts::load_alert_reference(&pg).await;
    let a_ts = common::alerts::load_alert_reference(&ts).await;
    assert_eq!(a_lite.alerts.len(), 60);
    assert!(a_lite.alerts.iter().filter(|a| a.3).count() == 2);
    assert!(!a_lite.gym_page.is_empty());
    assert_eq!(a_lite.risk.len(), 9);
    assert_eq!(a_lite.flareups.len(), 3);
    assert!(a_lite.deliveries.iter().any(|d| d.4) && a_lite.deliveries.iter().any(|d| !d.4));
    assert_eq!(a_pg, a_lite, "alerts: plain PostgreSQL differs from SQLite");
    assert_eq!(a_ts, a_lite, "alerts: TimescaleDB differs from SQLite");
    pg.close().await;
    db.drop().await.unwrap();
}
