//! The behaviour suite on plain PostgreSQL 15 (monthly partitions), plus partitioning.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{DAY, T0, reps_for};
use liftguard_model::ErrorKind;
use liftguard_store::testing::PgTestDb;
use liftguard_store::{Backend, Store, StoreOptions};

async fn setup() -> (Store, PgTestDb) {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    (store, db)
}

crate::behaviour_tests!(setup, Backend::Postgres);

async fn partitions(store: &Store, parent: &str) -> Vec<(String, i64)> {
    let pool = store.pg_pool().unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for n in names {
        let rows: i64 = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM reps WHERE tableoid::regclass::text = $1 \
             UNION ALL SELECT count(*) FROM kinematics WHERE tableoid::regclass::text = $1",
        )
        .bind(&n)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .sum();
        out.push((n, rows));
    }
    out
}

#[tokio::test]
async fn partitions_are_created_on_demand() {
    let (store, db) = setup().await;
    assert_eq!(store.migrate().await.unwrap(), Backend::Postgres);
    assert_eq!(
        partitions(&store, "reps").await,
        [("reps_default".to_string(), 0)]
    );
    // Reps from 2024-03-30 every 12 h for 40 days: March, April, May.
    let mut reps = reps_for(1, "gym-p", &["a-0000000000000001"], 80, T0);
    for (i, r) in reps.iter_mut().enumerate() {
        r.start_us = T0 + i as i64 * DAY / 2;
    }
    store.upsert_reps(&reps).await.unwrap();
    let kin = common::kin_chunk(
        2,
        "gym-p",
        "a-0000000000000001",
        T0 + 2 * DAY - 1_000_000,
        25.0,
        100,
    );
    store.upsert_kinematics(&[kin]).await.unwrap();
    assert_eq!(
        partitions(&store, "reps").await,
        [
            ("reps_default".to_string(), 0),
            ("reps_p202403".to_string(), 4),
            ("reps_p202404".to_string(), 60),
            ("reps_p202405".to_string(), 16),
        ]
    );
    // 2024-03-31T23:59:59 + 4 s: the chunk straddles the month boundary.
    assert_eq!(
        partitions(&store, "kinematics").await,
        [
            ("kinematics_default".to_string(), 0),
            ("kinematics_p202403".to_string(), 25),
            ("kinematics_p202404".to_string(), 75),
        ]
    );

    // A partition dropped behind the store's back: writes land in DEFAULT, never rejected.
    sqlx::raw_sql("DROP TABLE reps_p202403")
        .execute(store.pg_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(store.upsert_reps(&reps[..4]).await.unwrap(), 4);
    assert!(
        partitions(&store, "reps")
            .await
            .contains(&("reps_default".to_string(), 4))
    );
    // A fresh store (empty partition cache) recreates the partition and moves the rows.
    let fresh = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    assert_eq!(fresh.backend(), Backend::Postgres);
    let mut later = reps[3].clone();
    later.start_us += 1;
    assert_eq!(fresh.upsert_reps(&[later]).await.unwrap(), 1);
    let parts = partitions(&fresh, "reps").await;
    assert!(
        parts.contains(&("reps_default".to_string(), 0)),
        "{parts:?}"
    );
    assert!(
        parts.contains(&("reps_p202403".to_string(), 5)),
        "{parts:?}"
    );
    // Replays after the move still find their rows (the key is unique across partitions).
    assert_eq!(fresh.upsert_reps(&reps).await.unwrap(), 0);
    assert_eq!(common::count(&fresh, "reps").await, 81);
    fresh.close().await;
    store.close().await;
    db.drop().await.unwrap();
}

#[tokio::test]
async fn concurrent_migrations_agree() {
    let (store, db) = setup().await;
    let other = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    let (a, b) = tokio::join!(store.migrate(), other.migrate());
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        (Backend::Postgres, Backend::Postgres)
    );
    assert_eq!(
        common::count(&store, "liftguard_schema_migrations").await as usize,
        liftguard_store::known_versions().len()
    );
    let ext: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
            .fetch_one(store.pg_pool().unwrap())
            .await
            .unwrap();
    assert_eq!(ext, 0);
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Port 1 on localhost: nothing listens there.
    let err = Store::connect(
        "postgres://postgres@127.0.0.1:1/postgres",
        StoreOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// Ids sort bytewise (as on SQLite) even in a database whose default collation does not.
#[tokio::test]
async fn text_order_is_bytewise_whatever_the_database_collation() {
    let db = PgTestDb::create_with(
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    )
    .await
    .unwrap();
    let pg = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    pg.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let lite = Store::connect(&url, StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    lite.migrate().await.unwrap();
    // en-US would order these a-a1, a.b, a_c, a-B1 (case and punctuation folded).
    let ids = ["a-a1", "a-B1", "a_c", "a.b"];
    let reps = reps_for(9, "coll-gym", &ids, 3, T0);
    let g = common::gym("coll-gym");
    let mut results = Vec::new();
    for store in [&pg, &lite] {
        store.upsert_reps(&reps).await.unwrap();
        store.create_gym("coll-gym", "C").await.unwrap();
        for ext in ["b-2", "B-1", "a.3", "a-4"] {
            store
                .enroll_athlete(&g, &common::athlete_input(ext, ext))
                .await
                .unwrap();
        }
        let order: Vec<String> = store
            .all_reps(&liftguard_store::Scope::all())
            .await
            .unwrap()
            .into_iter()
            .take(4)
            .map(|r| r.athlete_id)
            .collect();
        let refs: Vec<String> = store
            .list_athletes(&liftguard_store::Scope::all(), &g)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.external_ref)
            .collect();
        results.push((order, refs));
    }
    assert_eq!(results[0].0, ["a-B1", "a-a1", "a.b", "a_c"]);
    assert_eq!(results[0].1, ["B-1", "a-4", "a.3", "b-2"]);
    assert_eq!(results[0], results[1]);
    // The database's own default order really differs (the test can fail).
    let native: Vec<String> =
        sqlx::query_scalar("SELECT x FROM unnest($1::text[]) AS x ORDER BY x")
            .bind(ids)
            .fetch_all(pg.pg_pool().unwrap())
            .await
            .unwrap();
    assert_ne!(native, results[0].0);
    pg.close().await;
    db.drop().await.unwrap();
}
