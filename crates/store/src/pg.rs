//! PostgreSQL and TimescaleDB.
//!
//! Invariants:
//! - Writes are multi-row `INSERT ... SELECT FROM UNNEST(arrays)`: one cached prepared
//!   statement per table whatever the batch size, each execution below
//!   `STATEMENT_BUDGET_BYTES` of parameters, all chunks of a call in one transaction.
//! - Upserts only touch a row whose values differ (`IS DISTINCT FROM`), so a replay
//!   writes nothing and `rows_affected` counts real inserts and corrections.
//! - Plain PostgreSQL: before writing into a month, the month's partition exists (created
//!   under an advisory lock, moving any rows the DEFAULT partition holds for that month).
//!   The set of months known to exist is a bounded cache; a stale entry is harmless because
//!   the DEFAULT partition accepts anything.
//! - Every connection starts with `DEALLOCATE ALL`: the pglite server runs one backend for
//!   all its clients, so statements prepared by a previous connection would collide with
//!   sqlx's statement names. On a real server it is a no-op.

use std::collections::{BTreeSet, HashSet};
use std::str::FromStr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use liftguard_model::{AthleteId, GymId, Placement, SensorId};
use liftguard_proto::v1::{Athlete, AthleteProfile, ExtensorEvidence, Gym, RepRecord, Sensor};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, Row as _};

use crate::access::{Scope, push_scope};
use crate::common::{KinPoint, RepCursor, UpsertClause, upsert_clause};
use crate::macros::rep_from_row;
use crate::registry::registry_impl;
use crate::schema::{PG_MIGRATIONS_TABLE, REP_COLUMNS, STEPS, col_list};
use crate::{Backend, IssuedKey, QScope, SensorBinding, StoreError};

type Row = PgRow;

/// Key of the advisory lock serialising migrations and partition creation.
pub(crate) const SCHEMA_LOCK: i64 = 0x6c67_7374_6f72; // "lgstor"
/// At most this many (table, month) partitions are remembered as existing.
const PARTITION_CACHE_MAX: usize = 4_096;

pub(crate) struct Pg {
    pub(crate) pool: PgPool,
    partitions: Mutex<HashSet<(Table, i32)>>,
    /// The server is the WASM build (pglite): 64 KB messages, no `COPY FROM STDIN`.
    pub(crate) wasm: bool,
    /// Offer new rows to `COPY` first (plain PostgreSQL; see `bulk.rs`).
    pub(crate) copy_first: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Reps,
    Kinematics,
}

impl Table {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Reps => "reps",
            Table::Kinematics => "kinematics",
        }
    }
    pub(crate) fn time_column(self) -> &'static str {
        match self {
            Table::Reps => "start_time",
            Table::Kinematics => "time",
        }
    }
}

/// Leaks a statement built once from constants, so sqlx gets a `&'static str`.
fn leak(s: String) -> &'static str {
    s.leak()
}

static REP_SELECT: LazyLock<String> = LazyLock::new(|| col_list(|c| c.0.to_owned()));

pub(crate) static REP_UPSERT: LazyLock<&'static str> = LazyLock::new(|| {
    let cols = col_list(|c| c.0.to_owned());
    let unnest = REP_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, c.1))
        .collect::<Vec<_>>()
        .join(", ");
    let UpsertClause { set, old, new } = upsert_clause(
        REP_COLUMNS.iter().map(|c| c.0),
        ["athlete_id", "start_time"],
        "EXCLUDED",
    );
    leak(format!(
        "INSERT INTO reps ({cols}, stored_at) SELECT u.*, ${}::timestamptz FROM UNNEST({unnest}) AS u \
         ON CONFLICT (athlete_id, start_time) DO UPDATE SET {set}, stored_at = EXCLUDED.stored_at \
         WHERE ({old}) IS DISTINCT FROM ({new})",
        REP_COLUMNS.len() + 1
    ))
});

pub(crate) const KIN_UPSERT: &str = "INSERT INTO kinematics (gym_id, athlete_id, time, lumbar_flexion_deg, \
     trunk_inclination_deg, pelvis_inclination_deg) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::real[], $5::real[], $6::real[]) \
     ON CONFLICT (athlete_id, time) DO UPDATE SET gym_id = EXCLUDED.gym_id, \
     lumbar_flexion_deg = EXCLUDED.lumbar_flexion_deg, \
     trunk_inclination_deg = EXCLUDED.trunk_inclination_deg, \
     pelvis_inclination_deg = EXCLUDED.pelvis_inclination_deg \
     WHERE (kinematics.gym_id, kinematics.lumbar_flexion_deg, kinematics.trunk_inclination_deg, \
     kinematics.pelvis_inclination_deg) IS DISTINCT FROM (EXCLUDED.gym_id, \
     EXCLUDED.lumbar_flexion_deg, EXCLUDED.trunk_inclination_deg, EXCLUDED.pelvis_inclination_deg)";

impl Pg {
    pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<Pg, StoreError> {
        let opts =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        // One direct attempt first: the pool would retry a refused connection until its
        // acquire timeout; an unreachable server should be reported (Unavailable) at once.
        sqlx::PgConnection::connect_with(&opts)
            .await?
            .close()
            .await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(15))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::raw_sql("DEALLOCATE ALL").execute(conn).await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&pool)
            .await?;
        Ok(Pg {
            pool,
            partitions: Mutex::new(HashSet::new()),
            wasm: version.contains("Emscripten") || version.contains("emcc"),
            copy_first: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The flavour recorded by a previous `migrate`, else what `migrate` would choose.
    pub(crate) async fn detect_backend(&self) -> Result<Backend, StoreError> {
        let has_table: bool =
            sqlx::query_scalar("SELECT to_regclass('liftguard_schema_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        if has_table {
            let b: Option<String> = sqlx::query_scalar(
                "SELECT backend FROM liftguard_schema_migrations ORDER BY version LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await?;
            if let Some(b) = b {
                return parse_backend(&b);
            }
        }
        let available: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(if available {
            Backend::Timescale
        } else {
            Backend::Postgres
        })
    }

    pub(crate) async fn migrate(&self) -> Result<Backend, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(PG_MIGRATIONS_TABLE).execute(&mut *tx).await?;
        let applied: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, backend FROM liftguard_schema_migrations ORDER BY version",
        )
        .fetch_all(&mut *tx)
        .await?;
        let newest_known = STEPS.iter().map(|s| s.version).max().unwrap_or(0);
        if let Some((v, _)) = applied.iter().find(|(v, _)| *v > newest_known) {
            return Err(StoreError::Schema(format!(
                "database has migration {v}, this build knows up to {newest_known}"
            )));
        }
        let backend = match applied.first() {
            Some((_, b)) => parse_backend(b)?,
            None => {
                let available: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
                )
                .fetch_one(&mut *tx)
                .await?;
                if available {
                    let mut sp = tx.begin().await?;
                    match sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
                        .execute(&mut *sp)
                        .await
                    {
                        Ok(_) => {
                            sp.commit().await?;
                            Backend::Timescale
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "timescaledb is available but cannot be created; using plain partitioned tables");
                            sp.rollback().await?;
                            Backend::Postgres
                        }
                    }
                } else {
                    tracing::info!("timescaledb is not available; using plain partitioned tables");
                    Backend::Postgres
                }
            }
        };
        let done: HashSet<i64> = applied.iter().map(|(v, _)| *v).collect();
        for step in STEPS.iter().filter(|s| !done.contains(&s.version)) {
            for sql in (step.pg)(backend) {
                sqlx::raw_sql(*sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration {
                        version: step.version,
                        name: step.name,
                        source,
                    })?;
            }
            sqlx::query(
                "INSERT INTO liftguard_schema_migrations (version, name, backend) VALUES ($1, $2, $3)",
            )
            .bind(step.version)
            .bind(step.name)
            .bind(backend.as_str())
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                version = step.version,
                name = step.name,
                backend = backend.as_str(),
                "migration applied"
            );
        }
        tx.commit().await?;
        Ok(backend)
    }

    fn db_time(us: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(us)
            .ok_or_else(|| StoreError::invalid("time", format!("{us} µs is not representable")))
    }

    fn row_time(row: &Row, col: &str) -> Result<i64, StoreError> {
        Ok(row.try_get::<DateTime<Utc>, _>(col)?.timestamp_micros())
    }

    fn rep_time(row: &Row, i: usize) -> Result<i64, StoreError> {
        Ok(row.try_get::<DateTime<Utc>, _>(i)?.timestamp_micros())
    }

    /// Forgets that a month's partition exists (it was dropped by retention), so a later
    /// write into that month recreates it.
    pub(crate) fn forget_partition(&self, table: Table, month: i32) {
        if let Ok(mut s) = self.partitions.lock() {
            s.remove(&(table, month));
        }
    }

    /// Creates the monthly partitions (plain PostgreSQL only) the times fall into.
    pub(crate) async fn ensure_partitions(
        &self,
        table: Table,
        times: impl Iterator<Item = i64>,
    ) -> Result<(), StoreError> {
        let months: BTreeSet<i32> = times.filter_map(month_of).collect();
        for m in months {
            let known = self
                .partitions
                .lock()
                .map(|s| s.contains(&(table, m)))
                .unwrap_or(false);
            if known {
                continue;
            }
            self.create_partition(table, m).await?;
            if let Ok(mut s) = self.partitions.lock() {
                if s.len() >= PARTITION_CACHE_MAX {
                    s.clear();
                }
                s.insert((table, m));
            }
        }
        Ok(())
    }

    async fn create_partition(&self, table: Table, month: i32) -> Result<(), StoreError> {
        let (y, m) = (month.div_euclid(12), month.rem_euclid(12) + 1);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let part = format!("{}_p{y:04}{m:02}", table.name());
        let from = format!("{y:04}-{m:02}-01 00:00:00+00");
        let to = format!("{ny:04}-{nm:02}-01 00:00:00+00");
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&part)
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            tx.commit().await?;
            return Ok(());
        }
        let (t, col) = (table.name(), table.time_column());
        // Identifiers and bounds are built from the table enum and integers only.
        let ddl = format!(
            "LOCK TABLE {t}_default IN ACCESS EXCLUSIVE MODE;
             CREATE TABLE {part} (LIKE {t} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
             WITH moved AS (DELETE FROM {t}_default WHERE {col} >= '{from}' AND {col} < '{to}' RETURNING *)
                 INSERT INTO {part} SELECT * FROM moved;
             ALTER TABLE {t} ATTACH PARTITION {part} FOR VALUES FROM ('{from}') TO ('{to}');"
        );
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!(partition = part, "partition created");
        Ok(())
    }

    /// Upserts validated, deduplicated reps in one transaction (strategy in `bulk.rs`).
    pub(crate) async fn upsert_reps(
        &self,
        reps: &[&RepRecord],
        backend: Backend,
    ) -> Result<u64, StoreError> {
        self.write_reps(reps, backend).await
    }

    /// Upserts validated, deduplicated points in one transaction (strategy in `bulk.rs`).
    pub(crate) async fn upsert_kinematics(
        &self,
        points: &[KinPoint<'_>],
        backend: Backend,
    ) -> Result<u64, StoreError> {
        self.write_kinematics(points, backend).await
    }

    /// Up to `limit` reps of `target` within `access` in `[from_us, to_us)` after `after`,
    /// in (start, athlete) order. The scope is part of the WHERE clause.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn list_reps(
        &self,
        access: &Scope,
        target: QScope<'_>,
        from_us: i64,
        to_us: i64,
        events_only: bool,
        limit: i64,
        after: &RepCursor,
    ) -> Result<Vec<RepRecord>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {} FROM reps WHERE ",
            REP_SELECT.as_str()
        ));
        push_scope(&mut qb, access, "gym_id", "athlete_id");
        match target {
            QScope::Athlete(a) => {
                qb.push(" AND athlete_id = ").push_bind(a.to_owned());
            }
            QScope::Gym(g) => {
                qb.push(" AND gym_id = ").push_bind(g.to_owned());
            }
            QScope::All => {}
        }
        qb.push(" AND start_time >= ")
            .push_bind(Self::db_time(from_us)?)
            .push(" AND start_time < ")
            .push_bind(Self::db_time(to_us)?);
        if events_only {
            qb.push(" AND extensor_event");
        }
        qb.push(" AND (start_time, athlete_id) > (")
            .push_bind(Self::db_time(after.start_us)?)
            .push(", ")
            .push_bind(after.athlete_id.clone())
            .push(") ORDER BY start_time, athlete_id LIMIT ")
            .push_bind(limit);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok(rep_from_row!(row, Self::rep_time)))
            .collect()
    }

    pub(crate) async fn lumbar_trace(
        &self,
        access: &Scope,
        athlete: &str,
        from_us: i64,
        to_us: i64,
        limit: i64,
    ) -> Result<Vec<(i64, f32)>, StoreError> {
        let mut qb =
            QueryBuilder::<Postgres>::new("SELECT time, lumbar_flexion_deg FROM kinematics WHERE ");
        push_scope(&mut qb, access, "gym_id", "athlete_id");
        qb.push(" AND athlete_id = ")
            .push_bind(athlete.to_owned())
            .push(" AND time >= ")
            .push_bind(Self::db_time(from_us)?)
            .push(" AND time < ")
            .push_bind(Self::db_time(to_us)?)
            .push(" ORDER BY time LIMIT ")
            .push_bind(limit);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((Self::rep_time(r, 0)?, r.try_get(1)?)))
            .collect()
    }
}

pub(crate) fn bind_reps<'q>(
    q: Query<'q, Postgres, PgArguments>,
    rows: &[&RepRecord],
) -> Result<Query<'q, Postgres, PgArguments>, StoreError> {
    fn strs<'a>(rows: &[&'a RepRecord], f: fn(&'a RepRecord) -> &'a str) -> Vec<&'a str> {
        rows.iter().map(|r| f(r)).collect()
    }
    fn f32s(rows: &[&RepRecord], f: fn(&RepRecord) -> f32) -> Vec<f32> {
        rows.iter().map(|r| f(r)).collect()
    }
    fn f64s(rows: &[&RepRecord], f: fn(&RepRecord) -> f64) -> Vec<f64> {
        rows.iter().map(|r| f(r)).collect()
    }
    fn bools(rows: &[&RepRecord], f: fn(&RepRecord) -> bool) -> Vec<bool> {
        rows.iter().map(|r| f(r)).collect()
    }
    fn times(
        rows: &[&RepRecord],
        f: fn(&RepRecord) -> i64,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        rows.iter().map(|r| Pg::db_time(f(r))).collect()
    }
    fn ev(rows: &[&RepRecord], f: fn(&ExtensorEvidence) -> f32) -> Vec<Option<f32>> {
        rows.iter().map(|r| r.evidence.as_ref().map(f)).collect()
    }
    Ok(q.bind(strs(rows, |r| &r.rep_id))
        .bind(strs(rows, |r| &r.gym_id))
        .bind(strs(rows, |r| &r.athlete_id))
        .bind(strs(rows, |r| &r.set_id))
        .bind(
            rows.iter()
                .map(|r| i64::from(r.rep_index))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.exercise).collect::<Vec<_>>())
        .bind(bools(rows, |r| r.exercise_inferred))
        .bind(f32s(rows, |r| r.load_kg))
        .bind(times(rows, |r| r.start_us)?)
        .bind(times(rows, |r| r.end_us)?)
        .bind(times(rows, |r| r.bottom_us)?)
        .bind(times(rows, |r| r.concentric_start_us)?)
        .bind(f32s(rows, |r| r.eccentric_s))
        .bind(f32s(rows, |r| r.concentric_s))
        .bind(f32s(rows, |r| r.peak_lumbar_flexion_deg))
        .bind(f32s(rows, |r| r.peak_trunk_inclination_deg))
        .bind(f32s(rows, |r| r.ldi))
        .bind(f32s(rows, |r| r.peak_load_moment_nm))
        .bind(bools(rows, |r| r.extensor_event))
        .bind(ev(rows, |e| e.peak_lumbar_ext_velocity_dps))
        .bind(ev(rows, |e| e.lumbar_share_duration_ms))
        .bind(ev(rows, |e| e.max_lumbar_share))
        .bind(ev(rows, |e| e.ldi))
        .bind(ev(rows, |e| e.onset_lag_ms))
        .bind(ev(rows, |e| e.bottom_lumbar_flexion_deg))
        .bind(ev(rows, |e| e.peak_load_moment_nm))
        .bind(ev(rows, |e| e.top_hyperextension_deg))
        .bind(f32s(rows, |r| r.fatigue_score))
        .bind(f32s(rows, |r| r.fatigue_dose))
        .bind(f32s(rows, |r| r.fatigue_observed))
        .bind(f32s(rows, |r| r.stability_deficit))
        .bind(f64s(rows, |r| r.damage))
        .bind(f64s(rows, |r| r.cumulative_damage))
        .bind(strs(rows, |r| &r.session_id))
        .bind(bools(rows, |r| r.clock_skew_flagged))
        .bind(
            rows.iter()
                .map(|r| i64::from(r.model_version))
                .collect::<Vec<_>>(),
        ))
}

/// `year * 12 + month0` of a time, for partition bookkeeping.
fn month_of(us: i64) -> Option<i32> {
    let t = DateTime::from_timestamp_micros(us)?;
    Some(t.year() * 12 + t.month0() as i32)
}

pub(crate) fn parse_backend(s: &str) -> Result<Backend, StoreError> {
    match s {
        "timescale" => Ok(Backend::Timescale),
        "postgres" => Ok(Backend::Postgres),
        other => Err(StoreError::Schema(format!(
            "schema was created for backend {other:?}"
        ))),
    }
}

registry_impl!(
    Pg,
    Postgres,
    created = "created_at",
    updated = "updated_at",
    revoked = "revoked_at"
);
crate::access::access_impl!(Pg, Postgres, DateTime<Utc>, "_at", "BEGIN");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        assert_eq!(month_of(0), Some(1970 * 12));
        // 2024-02-29T23:59:59.999999Z and the next µs.
        assert_eq!(month_of(1_709_251_199_999_999), Some(2024 * 12 + 1));
        assert_eq!(month_of(1_709_251_200_000_000), Some(2024 * 12 + 2));
    }

    #[test]
    fn statements_are_well_formed() {
        assert!(REP_UPSERT.contains("$37::timestamptz"));
        assert!(REP_UPSERT.contains("$36::bigint[]"));
        assert!(!REP_UPSERT.contains("SET athlete_id"));
        // Far below the pglite message limit.
        assert!(REP_UPSERT.len() < 8 * 1024);
    }
}
