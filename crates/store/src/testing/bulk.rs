//! Bulk loading and measurement helpers for benchmarks (PostgreSQL only): binary `COPY` of
//! record rows — the write ceiling the upsert path is compared against — and truncation
//! of the record tables between rounds.
//!
//! Invariant: these bypass the upsert path (a `COPY` fails on an existing key); never use
//! them where the pipeline's idempotence matters.

use liftguard_proto::v1::{KinematicsChunk, RepRecord};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::synth::{GymSpec, LoadedGym, load_gym};
use super::{DEFAULT_PG_URL, TestSupportError, with_database};
use crate::{Db, Store, StoreError, StoreOptions};

fn pg_only(what: &str) -> StoreError {
    StoreError::invalid("backend", format!("{what} needs PostgreSQL"))
}

/// `COPY` of `reps` into `reps` (one transaction). Fails on keys that already exist.
pub async fn copy_reps(store: &Store, reps: &[RepRecord]) -> Result<u64, StoreError> {
    match &store.inner.db {
        Db::Pg(pg) => pg.copy_reps(reps, store.backend()).await,
        Db::Sqlite(_) => Err(pg_only("COPY")),
    }
}

/// `COPY` of the chunks' points into `kinematics` (one transaction).
pub async fn copy_kinematics(store: &Store, chunks: &[KinematicsChunk]) -> Result<u64, StoreError> {
    match &store.inner.db {
        Db::Pg(pg) => pg.copy_kinematics(chunks, store.backend()).await,
        Db::Sqlite(_) => Err(pg_only("COPY")),
    }
}

/// Turns the `COPY`-first write strategy of plain PostgreSQL on or off (on by default), so
/// benchmarks and tests can measure or exercise the plain upsert statements alone.
pub fn set_copy_first(store: &Store, on: bool) {
    if let Db::Pg(pg) = &store.inner.db {
        pg.copy_first
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Empties `reps` and `kinematics` (and pending rollup work), keeping partitions.
pub async fn truncate_records(store: &Store) -> Result<(), StoreError> {
    let pool = store.pg_pool().ok_or_else(|| pg_only("TRUNCATE"))?;
    sqlx::raw_sql("TRUNCATE reps, kinematics")
        .execute(pool)
        .await?;
    let pending: bool = sqlx::query_scalar("SELECT to_regclass('rollup_pending') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if pending {
        sqlx::raw_sql("TRUNCATE rollup_pending")
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Opens the database `name` on the `LIFTGUARD_TEST_PG_URL` server (default
/// [`super::DEFAULT_PG_URL`]), creating it when missing (`fresh`: dropping it first), and
/// returns its URL. For benchmarks that keep a large dataset between runs; `name` must be
/// `[a-z0-9_]+`.
pub async fn persistent_database(name: &str, fresh: bool) -> Result<String, TestSupportError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(TestSupportError::BadUrl(format!("database name {name:?}")));
    }
    let base = std::env::var("LIFTGUARD_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    let url = with_database(&base, name)?;
    let mut admin = PgConnection::connect(&base).await?;
    if fresh {
        // The name was checked above: lowercase letters, digits and underscores.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;
    Ok(url)
}

/// Name of the PostgreSQL database holding the year-of-500 benchmark dataset (bump the
/// suffix when the generator changes).
pub const YEAR_OF_500_DB: &str = "lg_bench_year500_v1";

/// The year-of-500 dataset ([`super::synth::GymSpec::year_of_500`]) on PostgreSQL: loaded
/// once into [`YEAR_OF_500_DB`] through the store's upsert path (then rollups refreshed)
/// and reused by later runs; `fresh` reloads it. Returns the store (pool of
/// `max_connections`), the loaded gym and how long loading took (`None` when reused).
pub async fn year_of_500(
    fresh: bool,
    max_connections: u32,
) -> Result<(Store, LoadedGym, Option<std::time::Duration>), Box<dyn std::error::Error + Send + Sync>>
{
    let spec = GymSpec::year_of_500();
    // Benchmarks started together load the dataset once: the others wait on this lock
    // (held by a connection to the server's maintenance database) and then reuse it.
    let base = std::env::var("LIFTGUARD_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    let mut lock = PgConnection::connect(&base).await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(YEAR_OF_500_LOCK)
        .execute(&mut lock)
        .await?;
    let result = year_of_500_locked(spec, fresh, max_connections).await;
    lock.close().await?;
    result
}

/// Advisory lock key of the year-of-500 load ("lgy500").
const YEAR_OF_500_LOCK: i64 = 0x6c67_7935_3030;

async fn year_of_500_locked(
    spec: GymSpec,
    fresh: bool,
    max_connections: u32,
) -> Result<(Store, LoadedGym, Option<std::time::Duration>), Box<dyn std::error::Error + Send + Sync>>
{
    let mut url = persistent_database(YEAR_OF_500_DB, fresh).await?;
    for attempt in 0..2 {
        let store = Store::connect(&url, StoreOptions { max_connections }).await?;
        store.migrate().await?;
        let pool = store.pg_pool().ok_or("not PostgreSQL")?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS synth_dataset (name TEXT PRIMARY KEY, reps BIGINT NOT NULL, athlete_ids TEXT NOT NULL)",
        )
        .execute(pool)
        .await?;
        let marker: Option<(i64, String)> = sqlx::query_as(
            "SELECT reps, athlete_ids FROM synth_dataset WHERE name = 'year_of_500'",
        )
        .fetch_optional(pool)
        .await?;
        if let Some((reps, ids)) = marker {
            let gym = LoadedGym {
                spec,
                athlete_ids: ids.split(',').map(str::to_owned).collect(),
                reps: u64::try_from(reps).unwrap_or_default(),
            };
            return Ok((store, gym, None));
        }
        let gyms: i64 = sqlx::query_scalar("SELECT count(*) FROM gyms")
            .fetch_one(pool)
            .await?;
        if gyms > 0 && attempt == 0 {
            // A load that did not finish: start over.
            store.close().await;
            url = persistent_database(YEAR_OF_500_DB, true).await?;
            continue;
        }
        let started = std::time::Instant::now();
        let gym = load_gym(&store, &spec, 5_000).await?;
        sqlx::raw_sql("ANALYZE").execute(pool).await?;
        let took = started.elapsed();
        sqlx::query(
            "INSERT INTO synth_dataset (name, reps, athlete_ids) VALUES ('year_of_500', $1, $2)",
        )
        .bind(i64::try_from(gym.reps).unwrap_or(i64::MAX))
        .bind(gym.athlete_ids.join(","))
        .execute(pool)
        .await?;
        return Ok((store, gym, Some(took)));
    }
    Err("could not prepare the year-of-500 database".into())
}
