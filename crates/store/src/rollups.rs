//! Rollups clinicians ask for — per athlete per day, per gym per week, per gym per exercise
//! per week — and the `extensor_events` view (migration v6, `timescale_ops`).
//!
//! Backends:
//! - **TimescaleDB**: continuous aggregates on `reps` (`rollup_athlete_daily`,
//!   `rollup_athlete_exercise_weekly`) and hierarchical ones on them (`rollup_gym_weekly`,
//!   `rollup_gym_exercise_weekly`), all with real-time aggregation
//!   (`materialized_only = false`): buckets above the refresh watermark — today, this
//!   week — are computed from the raw rows at query time, so figures are always current.
//!   Refreshed by policy (`Store::apply_policies`), or explicitly with
//!   [`Store::refresh_rollups`] (pglite runs no background jobs).
//! - **PostgreSQL** and **SQLite**: tables of the same names and columns, refreshed
//!   incrementally by [`Store::refresh_rollups`], which the sink's maintenance task calls
//!   periodically: every write through the store marks the `(day, athlete)` buckets it
//!   touched in `rollup_pending`, and a refresh recomputes exactly those athlete-days and
//!   athlete-weeks from `reps`, then the gym weeks they belong to. Between refreshes the
//!   fallbacks lag (by at most the refresh interval); after one, every backend answers the
//!   same.
//!
//! Invariants:
//! - Identical results on every backend for the same stored reps (after a refresh): every
//!   sum is an exact integer in a fixed-point unit (grams of load, millionths of a fatigue
//!   or stability point, billionths of damage), so the order rows are summed in cannot
//!   change a result; per rep each value is rounded half away from zero to the unit
//!   ([`fixed`]) and clamped to ±1e15 units, identically in SQL and in Rust. Maxima are the
//!   stored floats themselves. Means and rates are derived from the sums in Rust.
//! - Buckets are UTC: days start at 00:00 UTC, weeks on Monday 00:00 UTC (TimescaleDB's
//!   `time_bucket` origin 2000-01-03 is a Monday; the fallbacks use the same grid). A rep
//!   belongs to the bucket of its `start_us`.
//! - The caller's [`Scope`] is applied in SQL. A scope limited to some athletes never reads
//!   a gym-level rollup (which would include the others): it aggregates the athlete-level
//!   rollups of exactly those athletes, which gives the same figures when they are all of
//!   the gym's athletes. Athlete ids leave as [`Scope::present`] shows them.
//! - Rollups summarise the reps that were stored when their buckets were last computed, and
//!   outlive them: retention dropping raw reps leaves the rollups. On TimescaleDB the
//!   refresh window (policy and [`Store::refresh_rollups`]) starts at the reps retention
//!   cutoff, since refreshing over dropped chunks would delete their aggregates; on the
//!   fallbacks deletes do not mark buckets, and retention forgets marks older than the
//!   cutoff. Buckets older than the cutoff are therefore frozen; a late rep for a newer
//!   bucket recomputes it from the reps stored.
//! - Bounded: a query returns at most [`MAX_ROLLUP_ROWS`] rows (`ResultTooLarge` beyond).

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use liftguard_proto::v1::RepRecord;
use sqlx::{Postgres, QueryBuilder, Row as _, Sqlite};

use crate::access::{Scope, push_scope};
use crate::common::clamp_query_time;
use crate::{Backend, Db, Store, StoreError};

/// At most this many rows are returned by one rollup query.
pub const MAX_ROLLUP_ROWS: usize = 1_000_000;

/// µs in a day and a week.
pub const DAY_US: i64 = 86_400_000_000;
pub const WEEK_US: i64 = 7 * DAY_US;
/// Monday 1969-12-29 is 3 days before the Unix epoch: weeks start at `k·WEEK_US − 3 days`.
const MONDAY_OFFSET_US: i64 = 3 * DAY_US;

/// Fixed-point scales of the sums.
pub const VOLUME_SCALE: f64 = 1e3; // grams
pub const SCORE_SCALE: f64 = 1e6; // millionths (fatigue, stability)
pub const DAMAGE_SCALE: f64 = 1e9; // billionths
/// Largest magnitude one rep contributes to a sum, in units.
const FIXED_CLAMP: f64 = 1e15;

/// A value in fixed-point units: `v · scale` rounded half away from zero, clamped to
/// ±1e15 — exactly what the rollups' SQL computes per rep.
pub fn fixed(v: f64, scale: f64) -> i64 {
    if v < 0.0 {
        -((-v * scale + 0.5).min(FIXED_CLAMP).trunc() as i64)
    } else {
        (v * scale + 0.5).min(FIXED_CLAMP).trunc() as i64
    }
}

/// The start of the UTC day containing `us`.
pub fn day_start(us: i64) -> i64 {
    us - us.rem_euclid(DAY_US)
}

/// The start of the week (Monday 00:00 UTC) containing `us`.
pub fn week_start(us: i64) -> i64 {
    us - (us + MONDAY_OFFSET_US).rem_euclid(WEEK_US)
}

/// Combinable figures of a set of reps. Sums are exact integers in the unit their name
/// says; combine two sets with [`RepTotals::merge`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RepTotals {
    pub reps: i64,
    /// Reps with an extensor-moment event.
    pub events: i64,
    /// Σ load_kg, in grams (load volume: one rep moves its load once).
    pub volume_g: i64,
    /// Σ fatigue_score, in millionths of a point.
    pub fatigue_sum_micro: i64,
    pub fatigue_max: f32,
    /// Σ stability_deficit, in millionths.
    pub stability_sum_micro: i64,
    pub stability_max: f32,
    /// Σ damage (LiFFT), in billionths.
    pub damage_sum_nano: i64,
    pub damage_max: f64,
    /// Largest peak load moment, N·m.
    pub moment_max_nm: f32,
}

impl RepTotals {
    /// The totals of one rep (what the SQL adds per row).
    pub fn of_rep(r: &RepRecord) -> Self {
        RepTotals {
            reps: 1,
            events: i64::from(r.extensor_event),
            volume_g: fixed(f64::from(r.load_kg), VOLUME_SCALE),
            fatigue_sum_micro: fixed(f64::from(r.fatigue_score), SCORE_SCALE),
            fatigue_max: r.fatigue_score,
            stability_sum_micro: fixed(f64::from(r.stability_deficit), SCORE_SCALE),
            stability_max: r.stability_deficit,
            damage_sum_nano: fixed(r.damage, DAMAGE_SCALE),
            damage_max: r.damage,
            moment_max_nm: r.peak_load_moment_nm,
        }
    }

    /// Totals of both sets (sums add, maxima take the larger; an empty side is neutral).
    pub fn merge(&self, o: &RepTotals) -> RepTotals {
        if self.reps == 0 {
            return *o;
        }
        if o.reps == 0 {
            return *self;
        }
        RepTotals {
            reps: self.reps + o.reps,
            events: self.events + o.events,
            volume_g: self.volume_g + o.volume_g,
            fatigue_sum_micro: self.fatigue_sum_micro + o.fatigue_sum_micro,
            fatigue_max: self.fatigue_max.max(o.fatigue_max),
            stability_sum_micro: self.stability_sum_micro + o.stability_sum_micro,
            stability_max: self.stability_max.max(o.stability_max),
            damage_sum_nano: self.damage_sum_nano + o.damage_sum_nano,
            damage_max: self.damage_max.max(o.damage_max),
            moment_max_nm: self.moment_max_nm.max(o.moment_max_nm),
        }
    }

    /// Extensor events per 100 reps (0 without reps).
    pub fn event_rate_per_100(&self) -> f64 {
        if self.reps == 0 {
            0.0
        } else {
            100.0 * self.events as f64 / self.reps as f64
        }
    }

    pub fn fatigue_mean(&self) -> f64 {
        self.mean(self.fatigue_sum_micro, SCORE_SCALE)
    }

    pub fn stability_mean(&self) -> f64 {
        self.mean(self.stability_sum_micro, SCORE_SCALE)
    }

    pub fn volume_kg(&self) -> f64 {
        self.volume_g as f64 / VOLUME_SCALE
    }

    pub fn damage_sum(&self) -> f64 {
        self.damage_sum_nano as f64 / DAMAGE_SCALE
    }

    fn mean(&self, sum: i64, scale: f64) -> f64 {
        if self.reps == 0 {
            0.0
        } else {
            sum as f64 / scale / self.reps as f64
        }
    }
}

/// One athlete's day.
#[derive(Debug, Clone, PartialEq)]
pub struct AthleteDay {
    /// 00:00 UTC of the day, µs.
    pub day_us: i64,
    pub gym_id: String,
    /// As the scope presents it (a pseudonym without identity).
    pub athlete_id: String,
    pub totals: RepTotals,
}

/// One gym's week.
#[derive(Debug, Clone, PartialEq)]
pub struct GymWeek {
    /// Monday 00:00 UTC, µs.
    pub week_us: i64,
    pub gym_id: String,
    /// Athletes with at least one rep in the week.
    pub athletes: i64,
    /// Athlete-days with reps (training days).
    pub athlete_days: i64,
    pub totals: RepTotals,
}

/// One exercise in one gym's week.
#[derive(Debug, Clone, PartialEq)]
pub struct ExerciseWeek {
    pub week_us: i64,
    pub gym_id: String,
    /// Wire code of `liftguard.v1.Exercise`.
    pub exercise: i32,
    /// Athletes with at least one rep of the exercise in the week.
    pub athletes: i64,
    pub totals: RepTotals,
}

/// What one refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupRefresh {
    /// Athlete-days recomputed (fallbacks; 0 on TimescaleDB).
    pub athlete_days: u64,
    /// Gym-weeks recomputed (fallbacks; 0 on TimescaleDB).
    pub gym_weeks: u64,
}

// ---------------------------------------------------------------------------------------
// SQL

/// The rollups in refresh order (hierarchical ones after their sources).
pub(crate) const ROLLUPS: [&str; 5] = [
    "rollup_athlete_daily",
    "rollup_athlete_exercise_weekly",
    "rollup_gym_weekly",
    "rollup_gym_exercise_weekly",
    "rollup_athlete_week_scores",
];

/// [`fixed`] of a column, in PostgreSQL.
pub(crate) fn pg_fixed(col: &str, scale: f64) -> String {
    Dialect::Pg.fixed(col, scale)
}

/// [`fixed`] of a column, in SQLite.
pub(crate) fn lite_fixed(col: &str, scale: f64) -> String {
    Dialect::Lite.fixed(col, scale)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Pg,
    Lite,
}

impl Dialect {
    /// The per-rep fixed-point expression of [`fixed`].
    fn fixed(self, col: &str, scale: f64) -> String {
        match self {
            Dialect::Pg => format!(
                "(CASE WHEN {col} < 0 THEN -trunc(least(-({col})::float8 * {scale:.1}::float8 + 0.5::float8, {FIXED_CLAMP:.1}::float8)) \
                 ELSE trunc(least(({col})::float8 * {scale:.1}::float8 + 0.5::float8, {FIXED_CLAMP:.1}::float8)) END)::int8"
            ),
            Dialect::Lite => format!(
                "(CASE WHEN {col} < 0 THEN -CAST(min(-{col} * {scale:.1} + 0.5, {FIXED_CLAMP:.1}) AS INTEGER) \
                 ELSE CAST(min({col} * {scale:.1} + 0.5, {FIXED_CLAMP:.1}) AS INTEGER) END)"
            ),
        }
    }

    /// The figures of a group of `reps` rows, in [`SUM_COLUMNS`] order.
    fn rep_aggs(self, p: &str) -> String {
        format!(
            "count(*) AS reps, count(*) FILTER (WHERE {p}extensor_event) AS events, \
             sum({}) AS volume_g, sum({}) AS fatigue_sum_u, max({p}fatigue_score) AS fatigue_max, \
             sum({}) AS stability_sum_u, max({p}stability_deficit) AS stability_max, \
             sum({}) AS damage_sum_n, max({p}damage) AS damage_max, \
             max({p}peak_load_moment_nm) AS moment_max",
            self.fixed(&format!("{p}load_kg"), VOLUME_SCALE),
            self.fixed(&format!("{p}fatigue_score"), SCORE_SCALE),
            self.fixed(&format!("{p}stability_deficit"), SCORE_SCALE),
            self.fixed(&format!("{p}damage"), DAMAGE_SCALE),
        )
    }
}

/// The figures columns every rollup has, in order.
const SUM_COLUMNS: &str = "reps, events, volume_g, fatigue_sum_u, fatigue_max, stability_sum_u, \
     stability_max, damage_sum_n, damage_max, moment_max";

/// The figures of a group of rollup rows (prefix `p` is the rollup's alias with a dot).
fn combine_aggs(p: &str) -> String {
    format!(
        "sum({p}reps) AS reps, sum({p}events) AS events, sum({p}volume_g) AS volume_g, \
         sum({p}fatigue_sum_u) AS fatigue_sum_u, max({p}fatigue_max) AS fatigue_max, \
         sum({p}stability_sum_u) AS stability_sum_u, max({p}stability_max) AS stability_max, \
         sum({p}damage_sum_n) AS damage_sum_n, max({p}damage_max) AS damage_max, \
         max({p}moment_max) AS moment_max"
    )
}

/// The figures columns when selected for reading (PostgreSQL sums are numeric on
/// TimescaleDB: read them as int8).
fn read_columns(d: Dialect) -> &'static str {
    match d {
        Dialect::Pg => {
            "reps::int8, events::int8, volume_g::int8, fatigue_sum_u::int8, fatigue_max, \
             stability_sum_u::int8, stability_max, damage_sum_n::int8, damage_max, moment_max"
        }
        Dialect::Lite => SUM_COLUMNS,
    }
}

/// The SQLite figure columns (a macro so `V6_SQLITE` can be a constant).
macro_rules! lite_figures {
    () => {
        "reps INTEGER NOT NULL, events INTEGER NOT NULL, volume_g INTEGER NOT NULL, \
         fatigue_sum_u INTEGER NOT NULL, fatigue_max REAL NOT NULL, \
         stability_sum_u INTEGER NOT NULL, stability_max REAL NOT NULL, \
         damage_sum_n INTEGER NOT NULL, damage_max REAL NOT NULL, moment_max REAL NOT NULL"
    };
}

/// Column definitions of the figures in a fallback rollup table.
fn figure_columns(d: Dialect) -> &'static str {
    match d {
        Dialect::Pg => {
            "reps BIGINT NOT NULL, events BIGINT NOT NULL, volume_g BIGINT NOT NULL, \
             fatigue_sum_u BIGINT NOT NULL, fatigue_max REAL NOT NULL, \
             stability_sum_u BIGINT NOT NULL, stability_max REAL NOT NULL, \
             damage_sum_n BIGINT NOT NULL, damage_max DOUBLE PRECISION NOT NULL, \
             moment_max REAL NOT NULL"
        }
        Dialect::Lite => lite_figures!(),
    }
}

/// The `extensor_events` view: reps with an extensor-moment event and their evidence.
/// A view, not a table: events are reps (one row, one natural key, one upsert), and the
/// view inherits the reps' chunks, compression and retention for free.
fn events_view(d: Dialect) -> String {
    let (start, end) = match d {
        Dialect::Pg => ("start_time", "end_time"),
        Dialect::Lite => ("start_us", "end_us"),
    };
    format!(
        "CREATE VIEW extensor_events AS SELECT gym_id, athlete_id, {start}, {end}, rep_id, set_id, \
         session_id, exercise, load_kg, peak_load_moment_nm, fatigue_score, stability_deficit, \
         ev_peak_lumbar_ext_velocity_dps AS peak_lumbar_ext_velocity_dps, \
         ev_lumbar_share_duration_ms AS lumbar_share_duration_ms, \
         ev_max_lumbar_share AS max_lumbar_share, ev_ldi AS ldi, ev_onset_lag_ms AS onset_lag_ms, \
         ev_bottom_lumbar_flexion_deg AS bottom_lumbar_flexion_deg, \
         ev_peak_load_moment_nm AS event_peak_load_moment_nm, \
         ev_top_hyperextension_deg AS top_hyperextension_deg \
         FROM reps WHERE extensor_event"
    )
}

/// [`events_view`] for SQLite, as a constant.
const V6_SQLITE_VIEW: &str = "CREATE VIEW extensor_events AS SELECT gym_id, athlete_id, start_us, end_us, rep_id, set_id, \
     session_id, exercise, load_kg, peak_load_moment_nm, fatigue_score, stability_deficit, \
     ev_peak_lumbar_ext_velocity_dps AS peak_lumbar_ext_velocity_dps, \
     ev_lumbar_share_duration_ms AS lumbar_share_duration_ms, \
     ev_max_lumbar_share AS max_lumbar_share, ev_ldi AS ldi, ev_onset_lag_ms AS onset_lag_ms, \
     ev_bottom_lumbar_flexion_deg AS bottom_lumbar_flexion_deg, \
     ev_peak_load_moment_nm AS event_peak_load_moment_nm, \
     ev_top_hyperextension_deg AS top_hyperextension_deg \
     FROM reps WHERE extensor_event";

/// Statements generated once, kept for the life of the process (migrations want statics).
pub(crate) fn leak(v: Vec<String>) -> &'static [&'static str] {
    let v: Vec<&'static str> = v.into_iter().map(|s| &*s.leak()).collect();
    v.leak()
}

/// Migration v6 on TimescaleDB: continuous aggregates, real-time, created empty (a
/// refresh or the refresh policy fills them; real-time aggregation answers meanwhile).
pub(crate) fn v6_timescale() -> &'static [&'static str] {
    let aggs = Dialect::Pg.rep_aggs("");
    let cagg = "WITH (timescaledb.continuous, timescaledb.materialized_only = false)";
    leak(vec![
        events_view(Dialect::Pg),
        format!(
            "CREATE MATERIALIZED VIEW rollup_athlete_daily {cagg} AS \
             SELECT time_bucket(INTERVAL '1 day', start_time) AS day, gym_id, athlete_id, {aggs} \
             FROM reps GROUP BY 1, 2, 3 WITH NO DATA"
        ),
        format!(
            "CREATE MATERIALIZED VIEW rollup_athlete_exercise_weekly {cagg} AS \
             SELECT time_bucket(INTERVAL '7 days', start_time) AS week, gym_id, athlete_id, exercise, {aggs} \
             FROM reps GROUP BY 1, 2, 3, 4 WITH NO DATA"
        ),
        format!(
            "CREATE MATERIALIZED VIEW rollup_gym_weekly {cagg} AS \
             SELECT time_bucket(INTERVAL '7 days', day) AS week, gym_id, \
             count(DISTINCT athlete_id) AS athletes, count(*) AS athlete_days, {} \
             FROM rollup_athlete_daily GROUP BY 1, 2 WITH NO DATA",
            combine_aggs("")
        ),
        format!(
            "CREATE MATERIALIZED VIEW rollup_gym_exercise_weekly {cagg} AS \
             SELECT time_bucket(INTERVAL '7 days', week) AS week, gym_id, exercise, \
             count(*) AS athletes, {} \
             FROM rollup_athlete_exercise_weekly GROUP BY 1, 2, 3 WITH NO DATA",
            combine_aggs("")
        ),
    ])
}

/// Migration v6 on plain PostgreSQL and SQLite: rollup tables and the pending marks.
fn v6_tables(d: Dialect) -> Vec<String> {
    let (t, tc, txt, int, big, strict) = match d {
        Dialect::Pg => (
            "",
            "TIMESTAMPTZ",
            "TEXT COLLATE \"C\"",
            "INTEGER",
            "BIGINT",
            "",
        ),
        Dialect::Lite => (
            "_us",
            "INTEGER",
            "TEXT",
            "INTEGER",
            "INTEGER",
            " STRICT, WITHOUT ROWID",
        ),
    };
    let figures = figure_columns(d);
    vec![
        events_view(d),
        format!(
            "CREATE TABLE rollup_pending (day{t} {tc} NOT NULL, athlete_id {txt} NOT NULL, \
             PRIMARY KEY (day{t}, athlete_id)){strict}"
        ),
        format!(
            "CREATE TABLE rollup_athlete_daily (day{t} {tc} NOT NULL, gym_id {txt} NOT NULL, \
             athlete_id {txt} NOT NULL, {figures}, PRIMARY KEY (day{t}, gym_id, athlete_id)){strict}"
        ),
        format!(
            "CREATE INDEX rollup_athlete_daily_athlete_idx ON rollup_athlete_daily (athlete_id, day{t})"
        ),
        format!(
            "CREATE TABLE rollup_athlete_exercise_weekly (week{t} {tc} NOT NULL, gym_id {txt} NOT NULL, \
             athlete_id {txt} NOT NULL, exercise {int} NOT NULL, {figures}, \
             PRIMARY KEY (week{t}, gym_id, athlete_id, exercise)){strict}"
        ),
        format!(
            "CREATE INDEX rollup_athlete_exercise_weekly_athlete_idx \
             ON rollup_athlete_exercise_weekly (athlete_id, week{t})"
        ),
        format!(
            "CREATE TABLE rollup_gym_weekly (week{t} {tc} NOT NULL, gym_id {txt} NOT NULL, \
             athletes {big} NOT NULL, athlete_days {big} NOT NULL, {figures}, \
             PRIMARY KEY (week{t}, gym_id)){strict}"
        ),
        format!(
            "CREATE TABLE rollup_gym_exercise_weekly (week{t} {tc} NOT NULL, gym_id {txt} NOT NULL, \
             exercise {int} NOT NULL, athletes {big} NOT NULL, {figures}, \
             PRIMARY KEY (week{t}, gym_id, exercise)){strict}"
        ),
    ]
}

static V6_TIMESCALE: LazyLock<&'static [&'static str]> = LazyLock::new(v6_timescale);
static V6_POSTGRES: LazyLock<&'static [&'static str]> =
    LazyLock::new(|| leak(v6_tables(Dialect::Pg)));

/// The PostgreSQL statements of migration v6 for a flavour.
pub(crate) fn v6_pg(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Timescale => *V6_TIMESCALE,
        _ => *V6_POSTGRES,
    }
}

/// Migration v6 on SQLite (a constant, as `schema::Step` wants; a unit test checks it is
/// what [`v6_tables`] generates for SQLite, so both fallbacks stay alike).
pub(crate) const V6_SQLITE: &[&str] = &[
    V6_SQLITE_VIEW,
    "CREATE TABLE rollup_pending (day_us INTEGER NOT NULL, athlete_id TEXT NOT NULL, PRIMARY KEY (day_us, athlete_id)) STRICT, WITHOUT ROWID",
    concat!(
        "CREATE TABLE rollup_athlete_daily (day_us INTEGER NOT NULL, gym_id TEXT NOT NULL, athlete_id TEXT NOT NULL, ",
        lite_figures!(),
        ", PRIMARY KEY (day_us, gym_id, athlete_id)) STRICT, WITHOUT ROWID"
    ),
    "CREATE INDEX rollup_athlete_daily_athlete_idx ON rollup_athlete_daily (athlete_id, day_us)",
    concat!(
        "CREATE TABLE rollup_athlete_exercise_weekly (week_us INTEGER NOT NULL, gym_id TEXT NOT NULL, athlete_id TEXT NOT NULL, exercise INTEGER NOT NULL, ",
        lite_figures!(),
        ", PRIMARY KEY (week_us, gym_id, athlete_id, exercise)) STRICT, WITHOUT ROWID"
    ),
    "CREATE INDEX rollup_athlete_exercise_weekly_athlete_idx ON rollup_athlete_exercise_weekly (athlete_id, week_us)",
    concat!(
        "CREATE TABLE rollup_gym_weekly (week_us INTEGER NOT NULL, gym_id TEXT NOT NULL, athletes INTEGER NOT NULL, athlete_days INTEGER NOT NULL, ",
        lite_figures!(),
        ", PRIMARY KEY (week_us, gym_id)) STRICT, WITHOUT ROWID"
    ),
    concat!(
        "CREATE TABLE rollup_gym_exercise_weekly (week_us INTEGER NOT NULL, gym_id TEXT NOT NULL, exercise INTEGER NOT NULL, athletes INTEGER NOT NULL, ",
        lite_figures!(),
        ", PRIMARY KEY (week_us, gym_id, exercise)) STRICT, WITHOUT ROWID"
    ),
];

// ---------------------------------------------------------------------------------------
// Marking and refreshing (fallbacks)

/// Advisory lock key serialising rollup refreshes on PostgreSQL ("lgroll").
const ROLLUP_LOCK: i64 = 0x6c67_726f_6c6c;

/// The distinct `(day, athlete)` buckets of `reps`, sorted (a stable lock order).
pub(crate) fn pending_keys<'a>(reps: &[&'a RepRecord]) -> Vec<(i64, &'a str)> {
    let keys: BTreeSet<(i64, &str)> = reps
        .iter()
        .map(|r| (day_start(r.start_us), r.athlete_id.as_str()))
        .collect();
    keys.into_iter().collect()
}

/// Marks buckets for the next refresh (plain PostgreSQL), inside the writer's transaction.
pub(crate) const PG_MARK: &str = "INSERT INTO rollup_pending (day, athlete_id) \
     SELECT * FROM unnest($1::timestamptz[], $2::text[]) ON CONFLICT DO NOTHING";

/// Marks buckets for the next refresh (SQLite), from a JSON `[[day_us, athlete], ...]`.
pub(crate) const LITE_MARK: &str = "INSERT OR IGNORE INTO rollup_pending (day_us, athlete_id) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1)";

/// `[[k, "s"], ...]` for SQLite's `json_each`. The strings are validated model ids
/// (no characters JSON would need escaped); anything else is escaped anyway.
pub(crate) fn json_pairs<'a>(keys: impl Iterator<Item = (i64, &'a str)>) -> String {
    let mut out = String::from("[");
    for (i, (k, s)) in keys.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        out.push_str(&k.to_string());
        out.push_str(",\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push_str("\"]");
    }
    out.push(']');
    out
}

pub(crate) fn pg_ts(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::invalid("time", format!("{us} µs is not representable")))
}

/// The refresh statements of one dialect.
struct RefreshSql {
    del_daily: String,
    ins_daily: String,
    del_athlete_ex: String,
    ins_athlete_ex: String,
    del_gym_weekly: String,
    ins_gym_weekly: String,
    del_gym_ex: String,
    ins_gym_ex: String,
    /// Score distributions of the athlete-weeks (`distributions.rs`).
    del_scores: String,
    ins_scores: String,
}

impl RefreshSql {
    fn new(d: Dialect) -> Self {
        let aggs = d.rep_aggs("r.");
        let (keys, t, start, day, week) = match d {
            Dialect::Pg => (
                "unnest($1::timestamptz[], $2::text[]) AS p(k, id)",
                "",
                "r.start_time",
                "INTERVAL '24 hours'",
                "INTERVAL '168 hours'",
            ),
            Dialect::Lite => (
                "(SELECT json_extract(value, '$[0]') AS k, json_extract(value, '$[1]') AS id FROM json_each($1)) AS p",
                "_us",
                "r.start_us",
                "86400000000",
                "604800000000",
            ),
        };
        // Deleting "the rollup rows of these keys": PostgreSQL joins, SQLite uses row values.
        let del = |table: &str, col: &str, by: &str, ret: &str| match d {
            Dialect::Pg => format!(
                "DELETE FROM {table} r USING {keys} WHERE r.{col}{t} = p.k AND r.{by} = p.id{ret}"
            ),
            Dialect::Lite => format!(
                "DELETE FROM {table} WHERE ({col}{t}, {by}) IN (SELECT k, id FROM {keys}){ret}"
            ),
        };
        // Recomputing the buckets of these keys from `reps`. PostgreSQL: a LATERAL subquery
        // per key, so each key is an index range scan on the reps primary key whatever the
        // planner estimates for the key list (a hash join would scan every partition).
        let recompute = |into: &str, group: &str, width: &str, ret: &str| match d {
            Dialect::Pg => format!(
                "INSERT INTO {into} SELECT p.k, x.* FROM {keys} CROSS JOIN LATERAL \
                 (SELECT {group}, {aggs} FROM reps r WHERE r.athlete_id = p.id \
                 AND {start} >= p.k AND {start} < p.k + {width} GROUP BY {group}) AS x{ret}"
            ),
            Dialect::Lite => format!(
                "INSERT INTO {into} SELECT p.k, {group}, {aggs} FROM {keys} \
                 JOIN reps r ON r.athlete_id = p.id AND {start} >= p.k AND {start} < p.k + {width} \
                 GROUP BY p.k, {group}{ret}"
            ),
        };
        let (del_scores, ins_scores) = crate::distributions::refresh_sql(d == Dialect::Pg, keys);
        RefreshSql {
            del_scores,
            ins_scores,
            del_daily: del(
                "rollup_athlete_daily",
                "day",
                "athlete_id",
                &format!(" RETURNING day{t}, gym_id"),
            ),
            ins_daily: recompute(
                &format!("rollup_athlete_daily (day{t}, gym_id, athlete_id, {SUM_COLUMNS})"),
                "r.gym_id, r.athlete_id",
                day,
                &format!(" RETURNING day{t}, gym_id"),
            ),
            del_athlete_ex: del(
                "rollup_athlete_exercise_weekly",
                "week",
                "athlete_id",
                &format!(" RETURNING week{t}, gym_id"),
            ),
            ins_athlete_ex: recompute(
                &format!(
                    "rollup_athlete_exercise_weekly (week{t}, gym_id, athlete_id, exercise, {SUM_COLUMNS})"
                ),
                "r.gym_id, r.athlete_id, r.exercise",
                week,
                &format!(" RETURNING week{t}, gym_id"),
            ),
            del_gym_weekly: del("rollup_gym_weekly", "week", "gym_id", ""),
            ins_gym_weekly: format!(
                "INSERT INTO rollup_gym_weekly (week{t}, gym_id, athletes, athlete_days, {SUM_COLUMNS}) \
                 SELECT p.k, d.gym_id, count(DISTINCT d.athlete_id), count(*), {} FROM {keys} \
                 JOIN rollup_athlete_daily d ON d.gym_id = p.id AND d.day{t} >= p.k AND d.day{t} < p.k + {week} \
                 GROUP BY p.k, d.gym_id",
                combine_aggs("d.")
            ),
            del_gym_ex: del("rollup_gym_exercise_weekly", "week", "gym_id", ""),
            ins_gym_ex: format!(
                "INSERT INTO rollup_gym_exercise_weekly (week{t}, gym_id, exercise, athletes, {SUM_COLUMNS}) \
                 SELECT p.k, a.gym_id, a.exercise, count(*), {} FROM {keys} \
                 JOIN rollup_athlete_exercise_weekly a ON a.gym_id = p.id AND a.week{t} = p.k \
                 GROUP BY p.k, a.gym_id, a.exercise",
                combine_aggs("a.")
            ),
        }
    }
}

static PG_REFRESH: LazyLock<RefreshSql> = LazyLock::new(|| RefreshSql::new(Dialect::Pg));
static LITE_REFRESH: LazyLock<RefreshSql> = LazyLock::new(|| RefreshSql::new(Dialect::Lite));

/// Splits `(k, id)` pairs into PostgreSQL arrays.
fn pg_arrays(
    keys: &BTreeSet<(i64, String)>,
) -> Result<(Vec<DateTime<Utc>>, Vec<&str>), StoreError> {
    let mut ks = Vec::with_capacity(keys.len());
    let mut ids = Vec::with_capacity(keys.len());
    for (k, id) in keys {
        ks.push(pg_ts(*k)?);
        ids.push(id.as_str());
    }
    Ok((ks, ids))
}

async fn refresh_pg(pool: &sqlx::PgPool) -> Result<RollupRefresh, StoreError> {
    let sql = &*PG_REFRESH;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROLLUP_LOCK)
        .execute(&mut *tx)
        .await?;
    let pending: Vec<(DateTime<Utc>, String)> =
        sqlx::query_as("DELETE FROM rollup_pending RETURNING day, athlete_id")
            .fetch_all(&mut *tx)
            .await?;
    if pending.is_empty() {
        tx.commit().await?;
        return Ok(RollupRefresh::default());
    }
    let days: BTreeSet<(i64, String)> = pending
        .into_iter()
        .map(|(d, a)| (d.timestamp_micros(), a))
        .collect();
    let athlete_weeks: BTreeSet<(i64, String)> = days
        .iter()
        .map(|(d, a)| (week_start(*d), a.clone()))
        .collect();
    let mut gym_weeks = BTreeSet::new();
    let mut gym_ex_weeks = BTreeSet::new();
    let run = |q: &'static str| sqlx::query_as::<_, (DateTime<Utc>, String)>(q);
    let (ks, ids) = pg_arrays(&days)?;
    for q in [sql.del_daily.as_str(), sql.ins_daily.as_str()] {
        for (d, g) in run(q).bind(&ks).bind(&ids).fetch_all(&mut *tx).await? {
            gym_weeks.insert((week_start(d.timestamp_micros()), g));
        }
    }
    let (ks, ids) = pg_arrays(&athlete_weeks)?;
    for q in [sql.del_athlete_ex.as_str(), sql.ins_athlete_ex.as_str()] {
        for (w, g) in run(q).bind(&ks).bind(&ids).fetch_all(&mut *tx).await? {
            gym_ex_weeks.insert((w.timestamp_micros(), g));
        }
    }
    for q in [sql.del_scores.as_str(), sql.ins_scores.as_str()] {
        sqlx::query(q)
            .bind(&ks)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
    }
    for (keys, del, ins) in [
        (
            &gym_weeks,
            sql.del_gym_weekly.as_str(),
            sql.ins_gym_weekly.as_str(),
        ),
        (
            &gym_ex_weeks,
            sql.del_gym_ex.as_str(),
            sql.ins_gym_ex.as_str(),
        ),
    ] {
        let (ks, ids) = pg_arrays(keys)?;
        for q in [del, ins] {
            sqlx::query(q)
                .bind(&ks)
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(RollupRefresh {
        athlete_days: days.len() as u64,
        gym_weeks: gym_weeks.len() as u64,
    })
}

async fn refresh_lite(pool: &sqlx::SqlitePool) -> Result<RollupRefresh, StoreError> {
    let sql = &*LITE_REFRESH;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let pending: Vec<(i64, String)> =
        sqlx::query_as("SELECT day_us, athlete_id FROM rollup_pending")
            .fetch_all(&mut *tx)
            .await?;
    if pending.is_empty() {
        tx.commit().await?;
        return Ok(RollupRefresh::default());
    }
    let days: BTreeSet<(i64, String)> = pending.into_iter().collect();
    let athlete_weeks: BTreeSet<(i64, String)> = days
        .iter()
        .map(|(d, a)| (week_start(*d), a.clone()))
        .collect();
    let json =
        |keys: &BTreeSet<(i64, String)>| json_pairs(keys.iter().map(|(k, s)| (*k, s.as_str())));
    let mut gym_weeks = BTreeSet::new();
    let mut gym_ex_weeks = BTreeSet::new();
    let run = |q: &'static str| sqlx::query_as::<_, (i64, String)>(q);
    let keys = json(&days);
    for q in [sql.del_daily.as_str(), sql.ins_daily.as_str()] {
        for (d, g) in run(q).bind(&keys).fetch_all(&mut *tx).await? {
            gym_weeks.insert((week_start(d), g));
        }
    }
    let keys = json(&athlete_weeks);
    for q in [sql.del_athlete_ex.as_str(), sql.ins_athlete_ex.as_str()] {
        for (w, g) in run(q).bind(&keys).fetch_all(&mut *tx).await? {
            gym_ex_weeks.insert((w, g));
        }
    }
    for q in [sql.del_scores.as_str(), sql.ins_scores.as_str()] {
        sqlx::query(q).bind(&keys).execute(&mut *tx).await?;
    }
    for (set, del, ins) in [
        (
            &gym_weeks,
            sql.del_gym_weekly.as_str(),
            sql.ins_gym_weekly.as_str(),
        ),
        (
            &gym_ex_weeks,
            sql.del_gym_ex.as_str(),
            sql.ins_gym_ex.as_str(),
        ),
    ] {
        let keys = json(set);
        for q in [del, ins] {
            sqlx::query(q).bind(&keys).execute(&mut *tx).await?;
        }
    }
    // The write lock is held since BEGIN IMMEDIATE: nothing was marked meanwhile.
    sqlx::query("DELETE FROM rollup_pending")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(RollupRefresh {
        athlete_days: days.len() as u64,
        gym_weeks: gym_weeks.len() as u64,
    })
}

// ---------------------------------------------------------------------------------------
// Queries

/// Reads the ten figure columns starting at `$i`.
macro_rules! totals_at {
    ($row:expr, $i:expr) => {{
        let (row, i) = (&$row, $i);
        RepTotals {
            reps: row.try_get(i)?,
            events: row.try_get(i + 1)?,
            volume_g: row.try_get(i + 2)?,
            fatigue_sum_micro: row.try_get(i + 3)?,
            fatigue_max: row.try_get(i + 4)?,
            stability_sum_micro: row.try_get(i + 5)?,
            stability_max: row.try_get(i + 6)?,
            damage_sum_nano: row.try_get(i + 7)?,
            damage_max: row.try_get(i + 8)?,
            moment_max_nm: row.try_get(i + 9)?,
        }
    }};
}

/// The figures of a group of rollup rows, read as integers (PostgreSQL sums are numeric).
fn combine_read(d: Dialect) -> String {
    let cast = if d == Dialect::Pg { "::int8" } else { "" };
    format!(
        "sum(reps){cast}, sum(events){cast}, sum(volume_g){cast}, sum(fatigue_sum_u){cast}, \
         max(fatigue_max), sum(stability_sum_u){cast}, max(stability_max), \
         sum(damage_sum_n){cast}, max(damage_max), max(moment_max)"
    )
}

/// Which rollup query.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grain {
    AthleteDaily,
    GymWeekly,
    ExerciseWeekly,
}

/// The query text up to the time window's lower bound; the caller binds the window, pushes
/// the scope, and finishes with [`query_tail`].
fn query_head(d: Dialect, grain: Grain, by_athlete: bool) -> (String, &'static str) {
    let (t, week_of_day) = match d {
        Dialect::Pg => (
            "",
            "date_trunc('week', day AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        ),
        Dialect::Lite => ("_us", "(day_us - ((day_us + 259200000000) % 604800000000))"),
    };
    let read = read_columns(d);
    match (grain, by_athlete) {
        (Grain::AthleteDaily, _) => (
            format!(
                "SELECT day{t}, gym_id, athlete_id, {read} FROM rollup_athlete_daily WHERE day{t} >= "
            ),
            "day",
        ),
        (Grain::GymWeekly, false) => (
            format!(
                "SELECT week{t}, gym_id, athletes, athlete_days, {read} FROM rollup_gym_weekly WHERE week{t} >= "
            ),
            "week",
        ),
        (Grain::GymWeekly, true) => (
            format!(
                "SELECT w, gym_id, count(DISTINCT athlete_id), count(*), {} FROM \
                 (SELECT {week_of_day} AS w, * FROM rollup_athlete_daily WHERE day{t} >= ",
                combine_read(d)
            ),
            "day+week",
        ),
        (Grain::ExerciseWeekly, false) => (
            format!(
                "SELECT week{t}, gym_id, exercise, athletes, {read} FROM rollup_gym_exercise_weekly WHERE week{t} >= "
            ),
            "week",
        ),
        (Grain::ExerciseWeekly, true) => (
            format!(
                "SELECT week{t}, gym_id, exercise, count(*), {} FROM rollup_athlete_exercise_weekly WHERE week{t} >= ",
                combine_read(d)
            ),
            "week",
        ),
    }
}

/// Validated, clamped `[from, to)`; `None` when empty.
fn window(range: &Range<i64>) -> Result<Option<(i64, i64)>, StoreError> {
    if range.start > range.end {
        return Err(StoreError::invalid(
            "range",
            format!("from_us {} is after to_us {}", range.start, range.end),
        ));
    }
    let (from, to) = (clamp_query_time(range.start), clamp_query_time(range.end));
    Ok((from < to).then_some((from, to)))
}

/// Builds a rollup query for one dialect (`$ts` converts µs to the bound time type).
macro_rules! build_query {
    ($db:ty, $d:expr, $grain:expr, $scope:expr, $from:expr, $to:expr, $ts:expr) => {{
        let by_athlete = $scope.athletes.is_some();
        let (head, kind) = query_head($d, $grain, by_athlete);
        let t = if $d == Dialect::Pg { "" } else { "_us" };
        let mut qb = QueryBuilder::<$db>::new(head);
        match kind {
            "day+week" => {
                // Days of the weeks starting in [from, to): [from, to + 1 week).
                qb.push_bind($ts($from)?);
                qb.push(format!(" AND day{t} < "));
                qb.push_bind($ts($to.saturating_add(WEEK_US))?);
                qb.push(" AND ");
                push_scope(&mut qb, $scope, "gym_id", "athlete_id");
                qb.push(") x WHERE w >= ");
                qb.push_bind($ts($from)?);
                qb.push(" AND w < ");
                qb.push_bind($ts($to)?);
                qb.push(" GROUP BY w, gym_id ORDER BY w, gym_id");
            }
            col => {
                qb.push_bind($ts($from)?);
                qb.push(format!(" AND {col}{t} < "));
                qb.push_bind($ts($to)?);
                qb.push(" AND ");
                push_scope(&mut qb, $scope, "gym_id", "athlete_id");
                match ($grain, by_athlete) {
                    (Grain::AthleteDaily, _) => {
                        qb.push(format!(" ORDER BY day{t}, gym_id, athlete_id"));
                    }
                    (Grain::GymWeekly, _) => {
                        qb.push(format!(" ORDER BY week{t}, gym_id"));
                    }
                    (Grain::ExerciseWeekly, false) => {
                        qb.push(format!(" ORDER BY week{t}, gym_id, exercise"));
                    }
                    (Grain::ExerciseWeekly, true) => {
                        qb.push(format!(
                            " GROUP BY week{t}, gym_id, exercise ORDER BY week{t}, gym_id, exercise"
                        ));
                    }
                }
            }
        }
        qb.push(" LIMIT ");
        qb.push_bind(MAX_ROLLUP_ROWS as i64 + 1);
        qb
    }};
}

fn pg_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn lite_ts(us: i64) -> Result<i64, StoreError> {
    Ok(us)
}

fn too_many<T>(rows: &[T]) -> Result<(), StoreError> {
    if rows.len() > MAX_ROLLUP_ROWS {
        return Err(StoreError::ResultTooLarge {
            what: "rollup rows",
            limit: MAX_ROLLUP_ROWS,
        });
    }
    Ok(())
}

/// Runs a rollup query on whichever backend and maps each row with `$map(row, time_us)`.
macro_rules! run_rollup {
    ($self:expr, $grain:expr, $scope:expr, $range:expr, |$row:ident, $time:ident| $map:expr) => {{
        let Some((from, to)) = window(&$range)? else {
            return Ok(Vec::new());
        };
        if $scope.is_empty() {
            return Ok(Vec::new());
        }
        match &$self.inner.db {
            Db::Pg(pg) => {
                let mut qb = build_query!(Postgres, Dialect::Pg, $grain, $scope, from, to, pg_ts);
                let rows = qb.build().fetch_all(&pg.pool).await?;
                too_many(&rows)?;
                rows.iter()
                    .map(|$row| {
                        let $time = pg_us($row.try_get(0)?);
                        Ok($map)
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            }
            Db::Sqlite(l) => {
                let mut qb = build_query!(Sqlite, Dialect::Lite, $grain, $scope, from, to, lite_ts);
                let rows = qb.build().fetch_all(&l.pool).await?;
                too_many(&rows)?;
                rows.iter()
                    .map(|$row| {
                        let $time: i64 = $row.try_get(0)?;
                        Ok($map)
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            }
        }
    }};
}

impl Store {
    /// Brings the rollups up to date with the stored reps. TimescaleDB: refreshes every
    /// continuous aggregate over its whole range (only invalidated buckets are recomputed;
    /// the refresh policy does the same in the background). Fallbacks: recomputes the
    /// buckets marked by writes since the last refresh. Idempotent; concurrent refreshes
    /// serialise (PostgreSQL advisory lock, SQLite write lock).
    pub async fn refresh_rollups(&self) -> Result<RollupRefresh, StoreError> {
        let started = std::time::Instant::now();
        let done = match &self.inner.db {
            Db::Pg(pg) if self.backend() == Backend::Timescale => {
                // Not over raw data dropped by retention (that would delete aggregates):
                // from the reps retention cutoff on, when there is one.
                let from: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT now() - (config->>'drop_after')::interval FROM timescaledb_information.jobs \
                     WHERE proc_name = 'policy_retention' AND hypertable_name = 'reps' LIMIT 1",
                )
                .fetch_optional(&pg.pool)
                .await?
                .flatten();
                for cagg in ROLLUPS {
                    sqlx::query(
                        "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, NULL)",
                    )
                    .bind(cagg)
                    .bind(from)
                    .execute(&pg.pool)
                    .await?;
                }
                RollupRefresh::default()
            }
            Db::Pg(pg) => refresh_pg(&pg.pool).await?,
            Db::Sqlite(l) => {
                let _gate = l.write_gate.lock().await;
                refresh_lite(&l.pool).await?
            }
        };
        tracing::debug!(
            athlete_days = done.athlete_days,
            gym_weeks = done.gym_weeks,
            ms = started.elapsed().as_millis() as u64,
            "rollups refreshed"
        );
        Ok(done)
    }

    /// Per athlete per day, for days starting in `range` (µs), in `(day, gym, athlete)`
    /// order of the real ids; athlete ids as `scope` presents them (`secret` keys the
    /// pseudonyms).
    pub async fn athlete_daily(
        &self,
        scope: &Scope,
        secret: &[u8],
        range: Range<i64>,
    ) -> Result<Vec<AthleteDay>, StoreError> {
        run_rollup!(self, Grain::AthleteDaily, scope, range, |row, t| {
            let athlete: String = row.try_get(2)?;
            AthleteDay {
                day_us: t,
                gym_id: row.try_get(1)?,
                athlete_id: scope.present(secret, &athlete),
                totals: totals_at!(row, 3),
            }
        })
    }

    /// Per gym per week, for weeks (Monday 00:00 UTC) starting in `range`, in
    /// `(week, gym)` order. A scope limited to some athletes counts only those athletes.
    pub async fn gym_weekly(
        &self,
        scope: &Scope,
        range: Range<i64>,
    ) -> Result<Vec<GymWeek>, StoreError> {
        run_rollup!(self, Grain::GymWeekly, scope, range, |row, t| GymWeek {
            week_us: t,
            gym_id: row.try_get(1)?,
            athletes: row.try_get(2)?,
            athlete_days: row.try_get(3)?,
            totals: totals_at!(row, 4),
        })
    }

    /// Per gym per exercise per week, for weeks starting in `range`, in
    /// `(week, gym, exercise)` order. A scope limited to some athletes counts only those.
    pub async fn exercise_weekly(
        &self,
        scope: &Scope,
        range: Range<i64>,
    ) -> Result<Vec<ExerciseWeek>, StoreError> {
        run_rollup!(self, Grain::ExerciseWeekly, scope, range, |row, t| {
            ExerciseWeek {
                week_us: t,
                gym_id: row.try_get(1)?,
                exercise: row.try_get(2)?,
                athletes: row.try_get(3)?,
                totals: totals_at!(row, 4),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_rounds_half_away_from_zero_and_clamps() {
        assert_eq!(fixed(0.0, 1e3), 0);
        assert_eq!(fixed(102.5, 1e3), 102_500);
        assert_eq!(fixed(0.7f32 as f64, 1e3), 700); // 699.99998... rounds up
        assert_eq!(fixed(0.0078125, 1e6), 7_813); // 7812.5 exactly: away from zero
        assert_eq!(fixed(-0.0078125, 1e6), -7_813);
        assert_eq!(fixed(1e300, 1e9), 1_000_000_000_000_000);
        assert_eq!(fixed(-1e300, 1e9), -1_000_000_000_000_000);
    }

    #[test]
    fn buckets_are_utc_days_and_monday_weeks() {
        // 2024-01-03T15:00Z (a Wednesday) -> day 2024-01-03, week Monday 2024-01-01.
        let t = 1_704_294_000_000_000;
        assert_eq!(day_start(t), 1_704_240_000_000_000);
        assert_eq!(week_start(t), 1_704_067_200_000_000);
        assert_eq!(week_start(1_704_067_200_000_000), 1_704_067_200_000_000);
        // The epoch (a Thursday) is in the week of Monday 1969-12-29.
        assert_eq!(week_start(0), -3 * DAY_US);
        assert_eq!(week_start(4 * DAY_US), 4 * DAY_US);
        // 2000-01-03, TimescaleDB's origin, is a week start.
        assert_eq!(week_start(946_857_600_000_000), 946_857_600_000_000);
    }

    #[test]
    fn totals_merge_and_derive() {
        let a = RepTotals {
            reps: 2,
            events: 1,
            volume_g: 200_000,
            fatigue_sum_micro: 100_000_000,
            fatigue_max: 60.0,
            stability_sum_micro: 3_000_000,
            stability_max: 2.0,
            damage_sum_nano: 10,
            damage_max: 6e-9,
            moment_max_nm: 300.0,
        };
        let m = a.merge(&RepTotals::default()).merge(&a);
        assert_eq!(m.reps, 4);
        assert_eq!(m.event_rate_per_100(), 50.0);
        assert_eq!(m.fatigue_mean(), 50.0);
        assert_eq!(m.stability_mean(), 1.5);
        assert_eq!(m.volume_kg(), 400.0);
        assert_eq!(RepTotals::default().event_rate_per_100(), 0.0);
    }

    #[test]
    fn json_pairs_escape() {
        assert_eq!(
            json_pairs([(1, "a-1"), (2, "x\"y")].into_iter()),
            r#"[[1,"a-1"],[2,"x\"y"]]"#
        );
        assert_eq!(json_pairs(std::iter::empty()), "[]");
    }

    #[test]
    fn sqlite_migration_matches_the_generator() {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let generated: Vec<String> = v6_tables(Dialect::Lite).iter().map(|s| norm(s)).collect();
        let constant: Vec<String> = V6_SQLITE.iter().map(|s| norm(s)).collect();
        assert_eq!(generated, constant);
    }

    #[test]
    fn statements_fit_pglite() {
        for s in v6_timescale() {
            assert!(s.len() < 16 * 1024, "{s}");
        }
        // PostgreSQL recomputes each key with its own index range scan (LATERAL).
        assert!(PG_REFRESH.ins_daily.contains("CROSS JOIN LATERAL"));
        assert!(
            PG_REFRESH
                .ins_daily
                .contains("r.athlete_id = p.id AND r.start_time >= p.k")
        );
        assert!(
            PG_REFRESH
                .ins_daily
                .contains("GROUP BY r.gym_id, r.athlete_id")
        );
        assert!(
            LITE_REFRESH
                .del_daily
                .starts_with("DELETE FROM rollup_athlete_daily WHERE (day_us, athlete_id) IN")
        );
    }
}
