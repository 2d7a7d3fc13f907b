//! Retention and compression policies: TimescaleDB jobs applied idempotently (and run by
//! hand, since pglite has no scheduler), partition-dropping retention on plain PostgreSQL,
//! DELETE-by-age retention on SQLite — and rollups that outlive the raw rows.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use liftguard_model::GymId;
use liftguard_proto::v1::RepRecord;
use liftguard_store::testing::synth::{self, GymSpec, YEAR_START_US};
use liftguard_store::testing::{PgTestDb, PgliteServer};
use liftguard_store::{Backend, GymWeek, Policies, RetentionPolicy, Scope, Store, StoreOptions};

const DAY: i64 = 86_400_000_000;

/// 2024-01-01 .. 2024-03-11 (10 weeks, three calendar months) of a small gym, with an
/// hour of kinematics per athlete at the start.
async fn load(store: &Store) -> (Vec<RepRecord>, u64) {
    let spec = GymSpec::small("pol-gym", 4, 10, 3);
    let athletes = synth::athletes(&spec);
    let ids: Vec<String> = athletes.iter().map(|a| a.athlete_id.clone()).collect();
    let reps: Vec<RepRecord> = synth::reps_by_week(&spec, &athletes, &ids)
        .flatten()
        .collect();
    for b in reps.chunks(1_000) {
        store.upsert_reps(b).await.unwrap();
    }
    let kin = synth::kinematics_chunks("pol-gym", &ids, YEAR_START_US + 60 * DAY, 120, 1);
    let points = store.upsert_kinematics(&kin).await.unwrap();
    store.refresh_rollups().await.unwrap();
    (reps, points)
}

async fn weeks(store: &Store) -> Vec<GymWeek> {
    store
        .gym_weekly(&Scope::gym(GymId::parse("pol-gym").unwrap()), 0..i64::MAX)
        .await
        .unwrap()
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    match store.pg_pool() {
        Some(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        None => sqlx::query_scalar(sql)
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap(),
    }
}

/// `(table, setting)` of every job of `proc_name`, sorted.
async fn jobs(store: &Store, proc_name: &str, key: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT hypertable_name::text, coalesce(config->>$2, schedule_interval::text) \
         FROM timescaledb_information.jobs WHERE proc_name = $1 ORDER BY 1",
    )
    .bind(proc_name)
    .bind(key)
    .fetch_all(store.pg_pool().unwrap())
    .await
    .unwrap()
}

async fn job_id(store: &Store, proc_name: &str, table: &str) -> i32 {
    sqlx::query_scalar(
        "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = $1 AND hypertable_name = $2",
    )
    .bind(proc_name)
    .bind(table)
    .fetch_one(store.pg_pool().unwrap())
    .await
    .unwrap()
}

#[tokio::test]
async fn timescale_policies_are_jobs_applied_idempotently() {
    let server = PgliteServer::start().await.unwrap();
    let store = Store::connect(&server.url(), StoreOptions { max_connections: 1 })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Timescale);
    let (reps, points) = load(&store).await;
    let before = weeks(&store).await;
    assert_eq!(before.len(), 10);

    let mut p = Policies::default();
    let first = store.apply_policies(&p).await.unwrap();
    assert!(
        first
            .changes
            .iter()
            .any(|c| c == "reps: columnstore segmented by athlete_id"),
        "{first:?}"
    );
    assert_eq!(
        jobs(&store, "policy_compression", "compress_after").await,
        [
            ("alerts".into(), "90 days".into()),
            ("kinematics".into(), "2 days".into()),
            ("reps".into(), "30 days".into()),
            ("risk_scores".into(), "180 days".into()),
        ]
    );
    assert_eq!(
        jobs(&store, "policy_retention", "drop_after").await,
        [
            ("alerts".into(), "3650 days".into()),
            ("kinematics".into(), "30 days".into()),
            ("reps".into(), "3650 days".into()),
            ("risk_scores".into(), "3650 days".into()),
        ]
    );
    let refresh = jobs(&store, "policy_refresh_continuous_aggregate", "-").await;
    assert_eq!(refresh.len(), 5, "{refresh:?}");
    assert!(
        refresh.iter().all(|(_, every)| every == "00:01:00"),
        "{refresh:?}"
    );
    let segments: Vec<(String, String)> = sqlx::query_as(
        "SELECT hypertable_name::text, attname::text FROM timescaledb_information.compression_settings \
         WHERE segmentby_column_index = 1 ORDER BY 1",
    )
    .fetch_all(store.pg_pool().unwrap())
    .await
    .unwrap();
    assert!(
        segments.iter().all(|(_, col)| col == "athlete_id"),
        "{segments:?}"
    );
    assert_eq!(segments.len(), 4, "{segments:?}");

    // Idempotent.
    assert!(store.apply_policies(&p).await.unwrap().changes.is_empty());

    // Exactly the changed settings are replaced.
    p.retention.kinematics_days = 7;
    p.retention.reps_days = 0;
    p.rollups.refresh_interval_s = 120;
    let second = store.apply_policies(&p).await.unwrap();
    assert_eq!(
        second.changes.len(),
        2 + 5,
        "kinematics and reps retention, five refresh schedules: {second:?}"
    );
    assert_eq!(
        jobs(&store, "policy_retention", "drop_after").await,
        [
            ("alerts".into(), "3650 days".into()),
            ("kinematics".into(), "7 days".into()),
            ("risk_scores".into(), "3650 days".into()),
        ]
    );
    assert!(store.apply_policies(&p).await.unwrap().changes.is_empty());

    // Run the jobs by hand (pglite has no scheduler): 2024 data is old enough for both.
    let pool = store.pg_pool().unwrap();
    let compress = job_id(&store, "policy_compression", "reps").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CALL run_job({compress})")))
        .execute(pool)
        .await
        .unwrap();
    let compressed = count(
        &store,
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'reps' AND is_compressed",
    )
    .await;
    assert!(compressed >= 10, "{compressed} compressed reps chunks");
    // Upserts into compressed chunks: replays change nothing, corrections land.
    assert_eq!(store.upsert_reps(&reps[..500]).await.unwrap(), 0);
    let mut fixed = reps[3].clone();
    fixed.fatigue_score += 1.0;
    assert_eq!(store.upsert_reps(&[fixed.clone()]).await.unwrap(), 1);
    assert_eq!(store.upsert_reps(&[reps[3].clone()]).await.unwrap(), 1);
    store.refresh_rollups().await.unwrap();
    assert_eq!(weeks(&store).await, before, "compression changes no figure");

    let retention = job_id(&store, "policy_retention", "kinematics").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CALL run_job({retention})")))
        .execute(pool)
        .await
        .unwrap();
    assert!(points > 0);
    assert_eq!(count(&store, "SELECT count(*) FROM kinematics").await, 0);
    assert_eq!(
        count(&store, "SELECT count(*) FROM reps").await,
        reps.len() as i64
    );

    // Reps retention: the rollups outlive the dropped chunks.
    p.retention.reps_days = 100;
    store.apply_policies(&p).await.unwrap();
    let retention = job_id(&store, "policy_retention", "reps").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CALL run_job({retention})")))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM reps").await, 0);
    store.refresh_rollups().await.unwrap();
    assert_eq!(weeks(&store).await, before, "rollups outlive the raw reps");
}

#[tokio::test]
async fn postgres_retention_drops_old_partitions() {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Postgres);
    assert!(
        store
            .apply_policies(&Policies::default())
            .await
            .unwrap()
            .changes
            .is_empty(),
        "nothing to set up without TimescaleDB"
    );
    let (reps, points) = load(&store).await;
    let before = weeks(&store).await;
    let parts = |store: &Store| {
        let pool = store.pg_pool().unwrap().clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'reps'::regclass ORDER BY 1",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        parts(&store).await,
        [
            "reps_default",
            "reps_p202401",
            "reps_p202402",
            "reps_p202403"
        ]
    );
    // A rep in the DEFAULT partition, older than the cutoff: its month's partition was
    // dropped behind the store's back after the store created it.
    let mut stray = reps[0].clone();
    stray.start_us = YEAR_START_US - 12 * DAY; // 2023-12-20
    store.upsert_reps(&[stray.clone()]).await.unwrap();
    sqlx::raw_sql("DROP TABLE reps_p202312")
        .execute(store.pg_pool().unwrap())
        .await
        .unwrap();
    store.upsert_reps(&[stray.clone()]).await.unwrap();
    assert_eq!(
        count(&store, "SELECT count(*) FROM reps_default").await,
        1,
        "the cached partition is gone: the row lands in DEFAULT"
    );

    // Cutoff 2024-02-15 for reps (kinematics: 2024-01-26): January ends before it.
    let policy = RetentionPolicy {
        reps_days: 10,
        kinematics_days: 30,
        ..RetentionPolicy::default()
    };
    let now = YEAR_START_US + 55 * DAY; // 2024-02-25
    let report = store.enforce_retention(&policy, now).await.unwrap();
    assert_eq!(report.partitions_dropped, 1, "{report:?}");
    assert_eq!(report.rows_deleted, 1, "the stray rep: {report:?}");
    assert_eq!(
        parts(&store).await,
        ["reps_default", "reps_p202402", "reps_p202403"]
    );
    // Whole months only: February's reps before the cutoff stay.
    let feb = YEAR_START_US + 31 * DAY;
    let kept = reps.iter().filter(|r| r.start_us >= feb).count() as i64;
    assert_eq!(count(&store, "SELECT count(*) FROM reps").await, kept);
    // Kinematics of 2024-03-01 are newer than their cutoff.
    assert_eq!(
        count(&store, "SELECT count(*) FROM kinematics").await,
        points as i64
    );
    store.refresh_rollups().await.unwrap();
    assert_eq!(
        weeks(&store).await,
        before,
        "rollups outlive the raw reps (the stray rep's week is not in the gym's range)"
    );

    // Idempotent; a later cutoff drops the remaining months of both tables.
    assert_eq!(
        store.enforce_retention(&policy, now).await.unwrap(),
        Default::default()
    );
    let report = store
        .enforce_retention(&policy, YEAR_START_US + 400 * DAY)
        .await
        .unwrap();
    assert_eq!(report.partitions_dropped, 3, "{report:?}"); // reps Feb, Mar; kinematics Mar
    assert_eq!(report.rows_deleted, 0, "{report:?}");
    assert_eq!(count(&store, "SELECT count(*) FROM reps").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM kinematics").await, 0);
    store.refresh_rollups().await.unwrap();
    assert_eq!(weeks(&store).await, before, "rollups outlive the raw reps");

    // A late rep for a dropped month recreates its partition.
    let mut late = reps[1].clone();
    late.start_us = YEAR_START_US + 3 * DAY;
    assert_eq!(store.upsert_reps(&[late]).await.unwrap(), 1);
    assert!(parts(&store).await.contains(&"reps_p202401".to_string()));
    store.close().await;
    db.drop().await.unwrap();
}

#[tokio::test]
async fn sqlite_retention_deletes_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let store = Store::connect(&url, StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), Backend::Sqlite);
    assert!(
        store
            .apply_policies(&Policies::default())
            .await
            .unwrap()
            .changes
            .is_empty()
    );
    let (reps, points) = load(&store).await;
    let before = weeks(&store).await;
    let policy = RetentionPolicy {
        reps_days: 10,
        kinematics_days: 0, // forever
        ..RetentionPolicy::default()
    };
    let now = YEAR_START_US + 55 * DAY;
    let report = store.enforce_retention(&policy, now).await.unwrap();
    let cutoff = now - 10 * DAY;
    let old = reps.iter().filter(|r| r.start_us < cutoff).count() as u64;
    assert_eq!(report.rows_deleted, old);
    assert_eq!(report.partitions_dropped, 0);
    assert_eq!(
        count(&store, "SELECT count(*) FROM reps").await,
        (reps.len() as u64 - old) as i64
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM kinematics").await,
        points as i64
    );
    assert_eq!(
        store.enforce_retention(&policy, now).await.unwrap(),
        Default::default()
    );
    store.refresh_rollups().await.unwrap();
    assert_eq!(weeks(&store).await, before, "rollups outlive the raw reps");
}
