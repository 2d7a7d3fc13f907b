//! The behaviour suite on TimescaleDB (pglite build over TCP, one connection), plus
//! hypertable checks. Needs `npm ci` in tests/pglite.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{DAY, T0, reps_for};
use liftguard_store::testing::PgliteServer;
use liftguard_store::{Backend, Store, StoreOptions};

async fn setup() -> (Store, PgliteServer) {
    let server = PgliteServer::start().await.unwrap();
    let store = Store::connect(&server.url(), StoreOptions { max_connections: 1 })
        .await
        .unwrap();
    (store, server)
}

crate::behaviour_tests!(setup, Backend::Timescale);

#[tokio::test]
async fn reps_and_kinematics_are_hypertables() {
    let (store, _server) = setup().await;
    assert_eq!(
        store.backend(),
        Backend::Timescale,
        "detected before migrate"
    );
    assert_eq!(store.migrate().await.unwrap(), Backend::Timescale);
    let pool = store.pg_pool().unwrap();
    let dims: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT hypertable_name::text, column_name::text, time_interval::text \
         FROM timescaledb_information.dimensions \
         WHERE hypertable_name IN ('reps', 'kinematics') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        dims,
        [
            ("kinematics".into(), "time".into(), "1 day".into()),
            ("reps".into(), "start_time".into(), "7 days".into()),
        ]
    );
    let hypertables: Vec<String> = sqlx::query_scalar(
        "SELECT hypertable_name::text FROM timescaledb_information.hypertables \
         WHERE hypertable_name IN ('reps', 'kinematics') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(hypertables, ["kinematics", "reps"]);
    // 30 days of reps land in several 7-day chunks; replays go to the same rows.
    let mut reps = reps_for(3, "gym-ts", &["a-0000000000000001"], 30, T0);
    for (i, r) in reps.iter_mut().enumerate() {
        r.start_us = T0 + i as i64 * DAY;
    }
    assert_eq!(store.upsert_reps(&reps).await.unwrap(), 30);
    assert_eq!(store.upsert_reps(&reps).await.unwrap(), 0);
    let chunks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'reps'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!((5..=6).contains(&chunks), "{chunks} chunks");
    // No plain partitions were made.
    let defaults: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = 'reps_default'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(defaults, 0);
}

/// pglite runs one backend for all clients: a client connecting after another one left
/// must not trip over the statements the first one prepared.
#[tokio::test]
async fn a_later_client_reuses_the_server() {
    let (first, server) = setup().await;
    first.migrate().await.unwrap();
    common::registry_round_trip(&first).await;
    let reps = reps_for(4, "gym-ts", &["a-0000000000000001"], 5, T0);
    first.upsert_reps(&reps).await.unwrap();
    first.close().await;
    let second = Store::connect(&server.url(), StoreOptions { max_connections: 1 })
        .await
        .unwrap();
    assert_eq!(second.backend(), Backend::Timescale, "recorded flavour");
    assert_eq!(second.migrate().await.unwrap(), Backend::Timescale);
    // The same statements the first client prepared.
    assert_eq!(second.upsert_reps(&reps).await.unwrap(), 0);
    assert_eq!(
        second
            .all_reps(&liftguard_store::Scope::all())
            .await
            .unwrap(),
        common::sorted(reps)
    );
    assert_eq!(second.list_gyms().await.unwrap().len(), 2);
}
