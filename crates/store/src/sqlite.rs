//! SQLite (the embedded deployment).
//!
//! Invariants:
//! - File databases run in WAL mode with `synchronous = NORMAL`, foreign keys on and a
//!   busy timeout; write transactions start with `BEGIN IMMEDIATE`, so concurrent writers
//!   queue on the lock instead of failing on upgrade.
//! - `sqlite::memory:` databases live in one connection (the pool is pinned to exactly
//!   one, never idled out), since every SQLite connection to `:memory:` is its own database.
//! - Writes are multi-row `INSERT ... VALUES` upserts that only touch rows whose values
//!   differ (`IS NOT`), chunked to stay below SQLite's parameter limit and the shared
//!   statement budget, all chunks of a call in one transaction.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use liftguard_model::{AthleteId, GymId, Placement, SensorId};
use liftguard_proto::v1::{Athlete, AthleteProfile, ExtensorEvidence, Gym, RepRecord, Sensor};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row as _, Sqlite};

use crate::access::{Scope, push_scope};
use crate::common::{
    KinPoint, RepCursor, UpsertClause, chunk_by_budget, kin_est_bytes, now_us, rep_est_bytes,
    upsert_clause,
};
use crate::macros::rep_from_row;
use crate::registry::registry_impl;
use crate::schema::{REP_COLUMNS, SQLITE_MIGRATIONS_TABLE, STEPS, col_list};
use crate::{Backend, IssuedKey, QScope, SensorBinding, StoreError};

type Row = SqliteRow;

/// Rows per statement: 37 parameters per rep, 6 per kinematics point, well below
/// SQLite's 32766 parameters.
const MAX_REPS_PER_STATEMENT: usize = 500;
const MAX_POINTS_PER_STATEMENT: usize = 1_000;

pub(crate) struct Lite {
    pub(crate) pool: SqlitePool,
    /// Taken around the write transactions of the record paths (reps, kinematics,
    /// alerts, risk, checkpoints, rollup refresh, retention): SQLite has one writer, and
    /// its busy handler retries on a sleep schedule (up to 100 ms per retry) that lets a
    /// long run of back-to-back transactions starve a waiting writer. This FIFO gate
    /// queues them instead, so a sink write waits for at most the transaction ahead of
    /// it (checkpoints are written in small transactions for that reason). Never held
    /// across another gated call.
    pub(crate) write_gate: tokio::sync::Mutex<()>,
}

static REP_INSERT_HEAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO reps ({}, stored_us) ",
        col_list(|c| c.2.to_owned())
    )
});

static REP_CONFLICT: LazyLock<String> = LazyLock::new(|| {
    let UpsertClause { set, old, new } = upsert_clause(
        REP_COLUMNS.iter().map(|c| c.2),
        ["athlete_id", "start_us"],
        "excluded",
    );
    format!(
        " ON CONFLICT (athlete_id, start_us) DO UPDATE SET {set}, stored_us = excluded.stored_us \
         WHERE ({old}) IS NOT ({new})"
    )
});

const KIN_INSERT_HEAD: &str = "INSERT INTO kinematics (gym_id, athlete_id, t_us, \
     lumbar_flexion_deg, trunk_inclination_deg, pelvis_inclination_deg) ";
const KIN_CONFLICT: &str = " ON CONFLICT (athlete_id, t_us) DO UPDATE SET \
     gym_id = excluded.gym_id, lumbar_flexion_deg = excluded.lumbar_flexion_deg, \
     trunk_inclination_deg = excluded.trunk_inclination_deg, \
     pelvis_inclination_deg = excluded.pelvis_inclination_deg \
     WHERE (kinematics.gym_id, kinematics.lumbar_flexion_deg, kinematics.trunk_inclination_deg, \
     kinematics.pelvis_inclination_deg) IS NOT (excluded.gym_id, excluded.lumbar_flexion_deg, \
     excluded.trunk_inclination_deg, excluded.pelvis_inclination_deg)";

impl Lite {
    pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<Lite, StoreError> {
        let mut opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(e.to_string()))?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .synchronous(SqliteSynchronous::Normal);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            opts = opts.journal_mode(SqliteJournalMode::Wal);
        }
        let pool_opts = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(max_connections.max(1))
        };
        let pool = pool_opts
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(opts)
            .await?;
        Ok(Lite {
            pool,
            write_gate: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) async fn migrate(&self) -> Result<Backend, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SQLITE_MIGRATIONS_TABLE)
            .execute(&mut *tx)
            .await?;
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
        if let Some((_, b)) = applied.iter().find(|(_, b)| b != Backend::Sqlite.as_str()) {
            return Err(StoreError::Schema(format!(
                "schema was created for backend {b:?}"
            )));
        }
        let done: HashSet<i64> = applied.iter().map(|(v, _)| *v).collect();
        for step in STEPS.iter().filter(|s| !done.contains(&s.version)) {
            for sql in step.sqlite {
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
                "INSERT INTO liftguard_schema_migrations (version, name, backend, applied_us) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(step.version)
            .bind(step.name)
            .bind(Backend::Sqlite.as_str())
            .bind(now_us())
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                version = step.version,
                name = step.name,
                backend = "sqlite",
                "migration applied"
            );
        }
        tx.commit().await?;
        Ok(Backend::Sqlite)
    }

    fn db_time(us: i64) -> Result<i64, StoreError> {
        Ok(us)
    }

    fn row_time(row: &Row, col: &str) -> Result<i64, StoreError> {
        Ok(row.try_get::<i64, _>(col)?)
    }

    fn rep_time(row: &Row, i: usize) -> Result<i64, StoreError> {
        Ok(row.try_get::<i64, _>(i)?)
    }

    pub(crate) async fn upsert_reps(&self, reps: &[&RepRecord]) -> Result<u64, StoreError> {
        let stored = now_us();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut n = 0;
        for chunk in chunk_by_budget(reps, MAX_REPS_PER_STATEMENT, rep_est_bytes) {
            let mut qb = QueryBuilder::<Sqlite>::new(REP_INSERT_HEAD.as_str());
            qb.push_values(chunk, |mut b, r| {
                let ev = r.evidence.as_ref();
                b.push_bind(r.rep_id.clone())
                    .push_bind(r.gym_id.clone())
                    .push_bind(r.athlete_id.clone())
                    .push_bind(r.set_id.clone())
                    .push_bind(i64::from(r.rep_index))
                    .push_bind(r.exercise)
                    .push_bind(r.exercise_inferred)
                    .push_bind(r.load_kg)
                    .push_bind(r.start_us)
                    .push_bind(r.end_us)
                    .push_bind(r.bottom_us)
                    .push_bind(r.concentric_start_us)
                    .push_bind(r.eccentric_s)
                    .push_bind(r.concentric_s)
                    .push_bind(r.peak_lumbar_flexion_deg)
                    .push_bind(r.peak_trunk_inclination_deg)
                    .push_bind(r.ldi)
                    .push_bind(r.peak_load_moment_nm)
                    .push_bind(r.extensor_event)
                    .push_bind(ev.map(|e| e.peak_lumbar_ext_velocity_dps))
                    .push_bind(ev.map(|e| e.lumbar_share_duration_ms))
                    .push_bind(ev.map(|e| e.max_lumbar_share))
                    .push_bind(ev.map(|e| e.ldi))
                    .push_bind(ev.map(|e| e.onset_lag_ms))
                    .push_bind(ev.map(|e| e.bottom_lumbar_flexion_deg))
                    .push_bind(ev.map(|e| e.peak_load_moment_nm))
                    .push_bind(ev.map(|e| e.top_hyperextension_deg))
                    .push_bind(r.fatigue_score)
                    .push_bind(r.fatigue_dose)
                    .push_bind(r.fatigue_observed)
                    .push_bind(r.stability_deficit)
                    .push_bind(r.damage)
                    .push_bind(r.cumulative_damage)
                    .push_bind(r.session_id.clone())
                    .push_bind(r.clock_skew_flagged)
                    .push_bind(i64::from(r.model_version))
                    .push_bind(stored);
            });
            qb.push(REP_CONFLICT.as_str());
            n += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        if n > 0 {
            // Mark the rollup buckets of these reps for the next refresh (rollups.rs).
            let keys = crate::rollups::pending_keys(reps);
            sqlx::query(crate::rollups::LITE_MARK)
                .bind(crate::rollups::json_pairs(keys.into_iter()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    pub(crate) async fn upsert_kinematics(
        &self,
        points: &[KinPoint<'_>],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut n = 0;
        for chunk in chunk_by_budget(points, MAX_POINTS_PER_STATEMENT, kin_est_bytes) {
            let mut qb = QueryBuilder::<Sqlite>::new(KIN_INSERT_HEAD);
            qb.push_values(chunk, |mut b, p| {
                b.push_bind(p.gym_id.to_owned())
                    .push_bind(p.athlete_id.to_owned())
                    .push_bind(p.t_us)
                    .push_bind(p.lumbar)
                    .push_bind(p.trunk)
                    .push_bind(p.pelvis);
            });
            qb.push(KIN_CONFLICT);
            n += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
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
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM reps WHERE ",
            col_list(|c| c.2.to_owned())
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
        qb.push(" AND start_us >= ")
            .push_bind(from_us)
            .push(" AND start_us < ")
            .push_bind(to_us);
        if events_only {
            qb.push(" AND extensor_event");
        }
        qb.push(" AND (start_us, athlete_id) > (")
            .push_bind(after.start_us)
            .push(", ")
            .push_bind(after.athlete_id.clone())
            .push(") ORDER BY start_us, athlete_id LIMIT ")
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
            QueryBuilder::<Sqlite>::new("SELECT t_us, lumbar_flexion_deg FROM kinematics WHERE ");
        push_scope(&mut qb, access, "gym_id", "athlete_id");
        qb.push(" AND athlete_id = ")
            .push_bind(athlete.to_owned())
            .push(" AND t_us >= ")
            .push_bind(from_us)
            .push(" AND t_us < ")
            .push_bind(to_us)
            .push(" ORDER BY t_us LIMIT ")
            .push_bind(limit);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

registry_impl!(
    Lite,
    Sqlite,
    created = "created_us",
    updated = "updated_us",
    revoked = "revoked_us"
);
crate::access::access_impl!(Lite, Sqlite, i64, "_us", "BEGIN IMMEDIATE");
