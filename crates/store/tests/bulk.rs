//! The plain-PostgreSQL kinematics write path: a batch offered to `COPY` that collides with
//! a concurrent writer's row falls back to the upsert and ends up exactly as an upsert
//! alone. (Reps are always upserted by statements.)
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use liftguard_proto::v1::KinematicsChunk;
use liftguard_store::testing::PgTestDb;
use liftguard_store::testing::synth::{self, GymSpec};
use liftguard_store::{Backend, Store, StoreOptions};
use sqlx::Connection as _;

/// One lumbar point of `athlete` at `t_us`.
fn point(athlete: &str, t_us: i64, lumbar: f32) -> KinematicsChunk {
    KinematicsChunk {
        gym_id: "bulk-gym".into(),
        athlete_id: athlete.into(),
        first_time_us: t_us,
        rate_hz: 25.0,
        lumbar_flexion_deg: vec![lumbar],
        trunk_inclination_deg: Vec::new(),
        pelvis_inclination_deg: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_falls_back_to_upsert_on_a_concurrent_conflict() {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Postgres);
    let spec = GymSpec::small("bulk-gym", 1, 1, 4);
    let athletes = synth::athletes(&spec);
    let athlete = athletes[0].athlete_id.clone();
    let (t0, t1) = (synth::YEAR_START_US, synth::YEAR_START_US + 40_000);
    assert_eq!(
        store
            .upsert_kinematics(&[point(&athlete, t0, 1.0)])
            .await
            .unwrap(),
        1
    );

    // Another writer, uncommitted: moves the stored point to t1.
    let mut other = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query(
        "UPDATE kinematics SET time = time + make_interval(secs => $1) WHERE athlete_id = $2",
    )
    .bind((t1 - t0) as f64 / 1e6)
    .bind(&athlete)
    .execute(&mut *tx)
    .await
    .unwrap();

    // The store sees nothing at t1, tries COPY and waits on the other writer.
    let s = store.clone();
    let a = athlete.clone();
    let write = tokio::spawn(async move { s.upsert_kinematics(&[point(&a, t1, 2.0)]).await });
    let pool = store.pg_pool().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the COPY never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.commit().await.unwrap();
    // Unique violation → upsert: the moved point now holds the new value.
    assert_eq!(write.await.unwrap().unwrap(), 1);
    let rows: Vec<(i64, f32)> = sqlx::query_as(
        "SELECT (extract(epoch FROM time) * 1000000)::int8, lumbar_flexion_deg FROM kinematics",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![(t1, 2.0)]);
    store.close().await;
    other.close().await.unwrap();
    db.drop().await.unwrap();
}
