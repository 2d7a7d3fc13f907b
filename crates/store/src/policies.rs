//! Retention and compression of the record tables: configuration ([`Policies`], the
//! `[store.retention]`, `[store.compression]` and `[store.rollups]` sections of the service
//! configuration), [`Store::apply_policies`] (run at startup, idempotent) and
//! [`Store::enforce_retention`] (run periodically by the sink's maintenance task).
//!
//! Per flavour:
//! - **TimescaleDB**: native policies. `apply_policies` enables the columnstore on each
//!   record hypertable (segmented by `athlete_id`, ordered by time descending, so one
//!   athlete's rows compress together and per-athlete reads touch one segment), and makes
//!   the compression, retention and continuous-aggregate refresh jobs match the
//!   configuration (replacing a job whose setting differs, removing one whose age is 0).
//!   TimescaleDB's scheduler runs them; `enforce_retention` does nothing there.
//! - **PostgreSQL**: no compression (there is no fallback for the columnstore: plain
//!   tables stay uncompressed; TOAST compresses only large values). Retention drops whole
//!   monthly partitions of `reps` and `kinematics` once their month ends before the cutoff
//!   (so a table keeps at least its configured age and at most one month more), deletes
//!   older rows from their DEFAULT partitions, and deletes older rows from unpartitioned
//!   tables (`alerts`, `risk_scores`).
//! - **SQLite**: no compression; retention is `DELETE ... WHERE time < cutoff`.
//!
//! Invariants:
//! - Applying the same [`Policies`] twice changes nothing the second time (the report is
//!   empty); changing an age replaces exactly that job.
//! - An age of 0 days means "keep forever" (no retention job, nothing deleted) or "never
//!   compress".
//! - Tables that do not exist yet (`alerts`, `risk_scores` before migration v4) are skipped.
//! - Retention never touches rollups: they outlive the raw rows they summarise.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::pg::{Pg, SCHEMA_LOCK, Table};
use crate::rollups::ROLLUPS;
use crate::{Backend, Db, Store, StoreError};

/// µs in a day.
const DAY_US: i64 = 86_400_000_000;
/// Advisory lock key serialising `apply_policies` ("lgpoli").
const POLICY_LOCK: i64 = 0x6c67_706f_6c69;

/// How a table's time column is stored on SQLite.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LiteTime {
    Micros,
    /// `YYYY-MM-DD` text.
    IsoDate,
}

/// A record table policies apply to.
struct PolicyTable {
    name: &'static str,
    pg_time: &'static str,
    /// The PostgreSQL time column is a DATE (else TIMESTAMPTZ).
    pg_date: bool,
    lite_time: &'static str,
    lite_kind: LiteTime,
    /// Columnstore order (time first; key columns that are not the segment follow).
    orderby: &'static str,
    /// The store's monthly partitions on plain PostgreSQL.
    partitions: Option<Table>,
}

const TABLES: [PolicyTable; 4] = [
    PolicyTable {
        name: "reps",
        pg_time: "start_time",
        pg_date: false,
        lite_time: "start_us",
        lite_kind: LiteTime::Micros,
        orderby: "start_time DESC",
        partitions: Some(Table::Reps),
    },
    PolicyTable {
        name: "kinematics",
        pg_time: "time",
        pg_date: false,
        lite_time: "t_us",
        lite_kind: LiteTime::Micros,
        orderby: "time DESC",
        partitions: Some(Table::Kinematics),
    },
    PolicyTable {
        name: "alerts",
        pg_time: "time",
        pg_date: false,
        lite_time: "time_us",
        lite_kind: LiteTime::Micros,
        orderby: "time DESC, alert_id",
        partitions: None,
    },
    PolicyTable {
        name: "risk_scores",
        pg_time: "day",
        pg_date: true,
        lite_time: "day",
        lite_kind: LiteTime::IsoDate,
        orderby: "day DESC",
        partitions: None,
    },
];

/// How long records are kept, per table, in days (0 = forever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Raw 25 Hz lumbar kinematics: large (≈ 90 000 rows per athlete-hour), only needed for
    /// recent traces. Default 30.
    pub kinematics_days: u32,
    /// Rep records (with event evidence): the clinical history. Default 3650 (10 years).
    pub reps_days: u32,
    /// Alerts. Default 3650.
    pub alerts_days: u32,
    /// Daily risk scores. Default 3650.
    pub risk_scores_days: u32,
    /// How often the service enforces retention on PostgreSQL and SQLite (seconds).
    /// Default 3600. TimescaleDB's own scheduler runs its retention jobs (daily).
    pub interval_s: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            kinematics_days: 30,
            reps_days: 3650,
            alerts_days: 3650,
            risk_scores_days: 3650,
            interval_s: 3600,
        }
    }
}

impl RetentionPolicy {
    fn days(&self, table: &str) -> u32 {
        match table {
            "reps" => self.reps_days,
            "kinematics" => self.kinematics_days,
            "alerts" => self.alerts_days,
            _ => self.risk_scores_days,
        }
    }
}

/// When chunks are compressed (TimescaleDB only), per table, in days after the chunk's end
/// (0 = never). Upserts into compressed chunks still work (late data, corrections), only
/// slower: choose ages past the usual backfill and correction window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionPolicy {
    /// Off: no columnstore settings or jobs are touched (existing ones are removed).
    pub enabled: bool,
    /// Default 2 (1-day chunks: yesterday's chunk compresses the day after).
    pub kinematics_after_days: u32,
    /// Default 30 (7-day chunks; backfills and replays of the last month stay row-based).
    pub reps_after_days: u32,
    /// Default 90 (acknowledgements update alerts; keep the recent ones row-based).
    pub alerts_after_days: u32,
    /// Default 180 (90-day chunks).
    pub risk_scores_after_days: u32,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        CompressionPolicy {
            enabled: true,
            kinematics_after_days: 2,
            reps_after_days: 30,
            alerts_after_days: 90,
            risk_scores_after_days: 180,
        }
    }
}

impl CompressionPolicy {
    fn days(&self, table: &str) -> u32 {
        if !self.enabled {
            return 0;
        }
        match table {
            "reps" => self.reps_after_days,
            "kinematics" => self.kinematics_after_days,
            "alerts" => self.alerts_after_days,
            _ => self.risk_scores_after_days,
        }
    }
}

/// How rollups are kept fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollupPolicy {
    /// Seconds between refreshes: the service's refresh of the fallbacks' rollup tables, and
    /// the schedule of TimescaleDB's refresh jobs (whose recent buckets are real-time
    /// anyway). Default 60.
    pub refresh_interval_s: u64,
}

impl Default for RollupPolicy {
    fn default() -> Self {
        RollupPolicy {
            refresh_interval_s: 60,
        }
    }
}

/// Everything [`Store::apply_policies`] and the maintenance task need.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policies {
    pub retention: RetentionPolicy,
    pub compression: CompressionPolicy,
    pub rollups: RollupPolicy,
}

/// What [`Store::apply_policies`] changed (empty when everything was already in place).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyReport {
    pub changes: Vec<String>,
}

/// What one [`Store::enforce_retention`] pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    pub rows_deleted: u64,
    pub partitions_dropped: u64,
}

/// `reps_p202401` → months since year 0 (`year * 12 + month0`), for `table_pYYYYMM` names.
fn partition_month(table: &str, name: &str) -> Option<i32> {
    let digits = name.strip_prefix(table)?.strip_prefix("_p")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = digits[..4].parse().ok()?;
    let m: i32 = digits[4..].parse().ok()?;
    (1..=12).contains(&m).then_some(y * 12 + m - 1)
}

/// The first µs after the month (`year * 12 + month0`).
fn month_end_us(month: i32) -> Option<i64> {
    let next = month + 1;
    let d =
        chrono::NaiveDate::from_ymd_opt(next.div_euclid(12), next.rem_euclid(12) as u32 + 1, 1)?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

fn iso_day(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "0000-01-01".into())
}

impl Store {
    /// Makes the database's compression, retention and rollup-refresh settings match `p`
    /// (TimescaleDB); on the fallbacks there is nothing to set up (retention runs in
    /// [`Store::enforce_retention`]; compression has no fallback). Run after `migrate`;
    /// idempotent.
    pub async fn apply_policies(&self, p: &Policies) -> Result<PolicyReport, StoreError> {
        match (&self.inner.db, self.backend()) {
            (Db::Pg(pg), Backend::Timescale) => {
                let report = apply_timescale(pg, p).await?;
                for c in &report.changes {
                    tracing::info!(change = %c, "timescaledb policy applied");
                }
                Ok(report)
            }
            _ => {
                if p.compression.enabled {
                    tracing::info!(
                        backend = self.backend().as_str(),
                        "compression needs TimescaleDB: tables stay uncompressed on this backend"
                    );
                }
                Ok(PolicyReport::default())
            }
        }
    }

    /// Deletes records older than their table's retention age before `now_us` (plain
    /// PostgreSQL: whole monthly partitions plus older rows elsewhere; SQLite: rows). Does
    /// nothing on TimescaleDB, whose retention jobs do this.
    pub async fn enforce_retention(
        &self,
        p: &RetentionPolicy,
        now_us: i64,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport::default();
        match (&self.inner.db, self.backend()) {
            (Db::Pg(_), Backend::Timescale) => {}
            (Db::Pg(pg), _) => {
                for t in &TABLES {
                    let days = p.days(t.name);
                    if days > 0 {
                        let cutoff = now_us.saturating_sub(i64::from(days) * DAY_US);
                        retain_pg(pg, t, cutoff, &mut report).await?;
                    }
                }
                if p.reps_days > 0 {
                    // Buckets older than the reps cutoff are frozen: forget their marks.
                    let cutoff = now_us.saturating_sub(i64::from(p.reps_days) * DAY_US);
                    let cutoff =
                        chrono::DateTime::from_timestamp_micros(cutoff).ok_or_else(|| {
                            StoreError::invalid("now_us", format!("{cutoff} is not a time"))
                        })?;
                    sqlx::query("DELETE FROM rollup_pending WHERE day < $1")
                        .bind(cutoff)
                        .execute(&pg.pool)
                        .await?;
                }
            }
            (Db::Sqlite(l), _) => {
                for t in &TABLES {
                    let days = p.days(t.name);
                    if days == 0 {
                        continue;
                    }
                    let exists: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1)",
                    )
                    .bind(t.name)
                    .fetch_one(&l.pool)
                    .await?;
                    if !exists {
                        continue;
                    }
                    let cutoff = now_us.saturating_sub(i64::from(days) * DAY_US);
                    // Table and column names come from the constant list above.
                    let sql = format!("DELETE FROM {} WHERE {} < $1", t.name, t.lite_time);
                    let q = sqlx::query(AssertSqlSafe(sql));
                    let q = match t.lite_kind {
                        LiteTime::Micros => q.bind(cutoff),
                        LiteTime::IsoDate => q.bind(iso_day(cutoff)),
                    };
                    let _gate = l.write_gate.lock().await;
                    let mut tx = l.pool.begin_with("BEGIN IMMEDIATE").await?;
                    report.rows_deleted += q.execute(&mut *tx).await?.rows_affected();
                    tx.commit().await?;
                }
                if p.reps_days > 0 {
                    // Buckets older than the reps cutoff are frozen: forget their marks.
                    let cutoff = now_us.saturating_sub(i64::from(p.reps_days) * DAY_US);
                    sqlx::query("DELETE FROM rollup_pending WHERE day_us < $1")
                        .bind(cutoff)
                        .execute(&l.pool)
                        .await?;
                }
            }
        }
        if report != RetentionReport::default() {
            tracing::info!(
                rows = report.rows_deleted,
                partitions = report.partitions_dropped,
                "retention enforced"
            );
        }
        Ok(report)
    }
}

async fn retain_pg(
    pg: &Pg,
    t: &PolicyTable,
    cutoff: i64,
    report: &mut RetentionReport,
) -> Result<(), StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(t.name)
        .fetch_one(&pg.pool)
        .await?;
    if !exists {
        return Ok(());
    }
    let cutoff_ts = chrono::DateTime::from_timestamp_micros(cutoff)
        .ok_or_else(|| StoreError::invalid("now_us", format!("{cutoff} is not a time")))?;
    let partitioned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass($1))",
    )
    .bind(t.name)
    .fetch_one(&pg.pool)
    .await?;
    // Rows to delete one by one live in the DEFAULT partition or the whole table.
    let mut delete_from = t.name.to_owned();
    if partitioned {
        delete_from = format!("{}_default", t.name);
        let parts: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1) ORDER BY 1",
        )
        .bind(t.name)
        .fetch_all(&pg.pool)
        .await?;
        for part in parts {
            let Some(month) = partition_month(t.name, &part) else {
                continue;
            };
            if month_end_us(month).is_none_or(|end| end > cutoff) {
                continue;
            }
            let mut tx = pg.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SCHEMA_LOCK)
                .execute(&mut *tx)
                .await?;
            // The name matched `<table>_pYYYYMM` above: a constant prefix and digits.
            sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE IF EXISTS {part}")))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            if let Some(table) = t.partitions {
                pg.forget_partition(table, month);
            }
            report.partitions_dropped += 1;
            tracing::info!(partition = part, "partition dropped by retention");
        }
        let has_default: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&delete_from)
            .fetch_one(&pg.pool)
            .await?;
        if !has_default {
            return Ok(());
        }
    }
    let cast = if t.pg_date { "::date" } else { "" };
    // Table and column names come from the constant list above.
    let sql = format!("DELETE FROM {delete_from} WHERE {} < $1{cast}", t.pg_time);
    report.rows_deleted += sqlx::query(AssertSqlSafe(sql))
        .bind(cutoff_ts)
        .execute(&pg.pool)
        .await?
        .rows_affected();
    Ok(())
}

/// `(job id, same setting)` of the table's job of `proc` whose `config->>key` is compared
/// with `days` days.
async fn job(
    conn: &mut sqlx::PgConnection,
    proc_name: &str,
    table: &str,
    key: &str,
    days: u32,
) -> Result<Option<(i32, bool)>, StoreError> {
    let row: Option<(i32, Option<bool>)> = sqlx::query_as(
        "SELECT job_id, (config->>$3)::interval = make_interval(days => $4) \
         FROM timescaledb_information.jobs WHERE proc_name = $1 AND hypertable_name = $2 \
         ORDER BY job_id LIMIT 1",
    )
    .bind(proc_name)
    .bind(table)
    .bind(key)
    .bind(days as i32)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id, same)| (id, same.unwrap_or(false))))
}

async fn apply_timescale(pg: &Pg, p: &Policies) -> Result<PolicyReport, StoreError> {
    // One transaction under a lock: processes starting together apply the policies one
    // after the other (the second finds everything in place).
    let mut tx = pg.pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(POLICY_LOCK)
        .execute(&mut *tx)
        .await?;
    let mut changes = Vec::new();
    for t in &TABLES {
        let compression: Option<bool> = sqlx::query_scalar(
            "SELECT compression_enabled FROM timescaledb_information.hypertables \
             WHERE hypertable_name = $1",
        )
        .bind(t.name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(compression_enabled) = compression else {
            continue; // not (yet) a hypertable
        };
        // Compression: settings once, then the job.
        let after = p.compression.days(t.name);
        if after > 0 && !compression_enabled {
            // Names and orders come from the constant list above.
            let sql = format!(
                "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = 'athlete_id', \
                 timescaledb.compress_orderby = '{}')",
                t.name, t.orderby
            );
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
            changes.push(format!("{}: columnstore segmented by athlete_id", t.name));
        }
        let existing = job(
            &mut tx,
            "policy_compression",
            t.name,
            "compress_after",
            after,
        )
        .await?;
        match (existing, after) {
            (Some((_, true)), a) if a > 0 => {}
            (None, 0) => {}
            (existing, after) => {
                if existing.is_some() {
                    sqlx::query(
                        "SELECT remove_compression_policy($1::regclass, if_exists => true)",
                    )
                    .bind(t.name)
                    .execute(&mut *tx)
                    .await?;
                }
                if after > 0 {
                    sqlx::query(
                        "SELECT add_compression_policy($1::regclass, compress_after => make_interval(days => $2))",
                    )
                    .bind(t.name)
                    .bind(after as i32)
                    .execute(&mut *tx)
                    .await?;
                    changes.push(format!("{}: compress after {after} days", t.name));
                } else {
                    changes.push(format!("{}: compression job removed", t.name));
                }
            }
        }
        // Retention.
        let keep = p.retention.days(t.name);
        let existing = job(&mut tx, "policy_retention", t.name, "drop_after", keep).await?;
        match (existing, keep) {
            (Some((_, true)), k) if k > 0 => {}
            (None, 0) => {}
            (existing, keep) => {
                if existing.is_some() {
                    sqlx::query("SELECT remove_retention_policy($1::regclass, if_exists => true)")
                        .bind(t.name)
                        .execute(&mut *tx)
                        .await?;
                }
                if keep > 0 {
                    sqlx::query(
                        "SELECT add_retention_policy($1::regclass, drop_after => make_interval(days => $2))",
                    )
                    .bind(t.name)
                    .bind(keep as i32)
                    .execute(&mut *tx)
                    .await?;
                    changes.push(format!("{}: drop chunks after {keep} days", t.name));
                } else {
                    changes.push(format!("{}: retention job removed", t.name));
                }
            }
        }
    }
    // Rollup refresh jobs, on the configured schedule, up to an hour ago (newer buckets are
    // real-time). Their window starts where reps retention ends (at least 4 weeks back,
    // two weekly buckets): a refresh over dropped raw data would delete the aggregates,
    // and rollups must outlive the raw reps. Without reps retention: the whole range.
    let every = p.rollups.refresh_interval_s.max(1) as f64;
    let start_days: Option<i32> =
        (p.retention.reps_days > 0).then(|| p.retention.reps_days.max(28) as i32);
    for cagg in ROLLUPS {
        let row: Option<(i32, bool)> = sqlx::query_as(
            "SELECT job_id, schedule_interval = make_interval(secs => $2) \
             AND (config->>'start_offset')::interval IS NOT DISTINCT FROM \
             (CASE WHEN $3::int IS NULL THEN NULL ELSE make_interval(days => $3::int) END) \
             FROM timescaledb_information.jobs \
             WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name = $1 \
             ORDER BY job_id LIMIT 1",
        )
        .bind(cagg)
        .bind(every)
        .bind(start_days)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((_, true)) = row {
            continue;
        }
        if row.is_some() {
            sqlx::query(
                "SELECT remove_continuous_aggregate_policy($1::regclass, if_exists => true)",
            )
            .bind(cagg)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "SELECT add_continuous_aggregate_policy($1::regclass, \
             start_offset => CASE WHEN $3::int IS NULL THEN NULL ELSE make_interval(days => $3::int) END, \
             end_offset => INTERVAL '1 hour', schedule_interval => make_interval(secs => $2))",
        )
        .bind(cagg)
        .bind(every)
        .bind(start_days)
        .execute(&mut *tx)
        .await?;
        changes.push(match start_days {
            Some(d) => format!("{cagg}: refresh every {every} s over the last {d} days"),
            None => format!("{cagg}: refresh every {every} s over the whole range"),
        });
    }
    tx.commit().await?;
    Ok(PolicyReport { changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_and_month_ends() {
        assert_eq!(partition_month("reps", "reps_p202401"), Some(2024 * 12));
        assert_eq!(
            partition_month("reps", "reps_p202412"),
            Some(2024 * 12 + 11)
        );
        for bad in [
            "reps_default",
            "reps_p2024013",
            "reps_p202413",
            "kinematics_p202401",
        ] {
            assert_eq!(partition_month("reps", bad), None, "{bad}");
        }
        // January 2024 ends at 2024-02-01T00:00Z; December at the next year's start.
        assert_eq!(month_end_us(2024 * 12), Some(1_706_745_600_000_000));
        assert_eq!(month_end_us(2024 * 12 + 11), Some(1_735_689_600_000_000));
        assert_eq!(iso_day(1_706_745_600_000_000), "2024-02-01");
    }

    #[test]
    fn defaults_and_toml() {
        let p: Policies = toml::from_str("").unwrap();
        assert_eq!(p, Policies::default());
        assert_eq!(p.retention.days("kinematics"), 30);
        assert_eq!(p.compression.days("reps"), 30);
        let p: Policies = toml::from_str(
            "[retention]\nkinematics_days = 7\n[compression]\nenabled = false\n[rollups]\nrefresh_interval_s = 5\n",
        )
        .unwrap();
        assert_eq!(p.retention.kinematics_days, 7);
        assert_eq!(p.retention.reps_days, 3650);
        assert_eq!(p.compression.days("reps"), 0);
        assert_eq!(p.rollups.refresh_interval_s, 5);
        assert!(toml::from_str::<Policies>("[retention]\nkinematic_days = 7\n").is_err());
    }
}
