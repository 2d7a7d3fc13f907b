//! The plain-PostgreSQL write path: a batch offered to `COPY` that collides with a
//! concurrent writer's row falls back to the upsert and ends up exactly as an upsert alone.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use liftguard_store::testing::PgTestDb;
use liftguard_store::testing::synth::{self, GymSpec};
use liftguard_store::{Backend, RepQuery, RepTarget, Scope, Store, StoreOptions};
use sqlx::Connection as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_falls_back_to_upsert_on_a_concurrent_conflict() {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Postgres);
    let spec = GymSpec::small("bulk-gym", 1, 1, 4);
    let athletes = synth::athletes(&spec);
    let ids = vec![athletes[0].athlete_id.clone()];
    let reps = synth::week_of_reps(&spec, &athletes, &ids, 0);
    let (first, moved) = (reps[0].clone(), reps[1].clone());
    assert_eq!(
        store
            .upsert_reps(std::slice::from_ref(&first))
            .await
            .unwrap(),
        1
    );

    // Another writer, uncommitted: moves the stored rep to `moved`'s key.
    let mut other = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query(
        "UPDATE reps SET start_time = start_time + make_interval(secs => $1) WHERE athlete_id = $2",
    )
    .bind((moved.start_us - first.start_us) as f64 / 1e6)
    .bind(&first.athlete_id)
    .execute(&mut *tx)
    .await
    .unwrap();

    // The store sees nothing in `moved`'s span, tries COPY and waits on the other writer.
    let s = store.clone();
    let m = moved.clone();
    let write = tokio::spawn(async move { s.upsert_reps(&[m]).await });
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
    // Unique violation → upsert: the moved row now holds `moved`'s values.
    assert_eq!(write.await.unwrap().unwrap(), 1);
    let page = store
        .list_reps(
            &Scope::all(),
            &RepQuery {
                target: RepTarget::Gym(liftguard_model::GymId::parse("bulk-gym").unwrap()),
                from_us: 0,
                to_us: i64::MAX,
                events_only: false,
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.reps, vec![moved]);
    store.close().await;
    other.close().await.unwrap();
    db.drop().await.unwrap();
}
