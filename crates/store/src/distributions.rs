//! Score distributions per athlete, exercise and week: the reps, extensor events and
//! damage of each `(athlete, gym, week, exercise)` bucket together with every rep's
//! fatigue score and stability deficit (migration v7, `rollup_athlete_week_scores`).
//! Population trends over a year read one bucket per ~27 reps instead of every rep, and
//! still compute exact quantiles: a bucket keeps the values themselves, not a sketch.
//!
//! Backends:
//! - **TimescaleDB**: a continuous aggregate on `reps` (the scores packed by `string_agg`),
//!   real-time, refreshed with the other rollups (policy and [`Store::refresh_rollups`]).
//! - **PostgreSQL** and **SQLite**: a table of the same columns (scores as packed
//!   big-endian f32s in a `bytea`, or a JSON array on SQLite), filled from the stored reps by the migration and recomputed for
//!   the pending athlete-weeks by every rollup refresh, like the other rollups.
//!
//! Reading ([`Store::score_buckets`]) is current on every backend: each week of the range
//! comes whole from exactly one source. Weeks lying entirely inside the range come from
//! the rollup, except (fallbacks) weeks holding a pending mark; the partial weeks at the
//! range's edges and those pending weeks are bucketed here from the raw reps
//! ([`ScoreBuckets::from_facts`]). On TimescaleDB, late reps in a bucket below the refresh
//! watermark show after the next refresh, as in every continuous aggregate.
//!
//! Invariants:
//! - A bucket is `(athlete, gym, week, exercise)`; the week is Monday 00:00 UTC of the
//!   rep's `start_us` ([`crate::rollups::week_start`]). Its values are one per rep, in
//!   ascending order, exactly the stored f32s (SQLite's JSON text round-trips them: f32
//!   needs 9 significant digits, SQLite writes 15 or more).
//! - `damage_sum_nano` is the fixed-point sum of [`crate::rollups::fixed`] (billionths), so
//!   no summation order can change it.
//! - Canonical order: presented athlete id, week, gym, exercise; dictionaries sorted.
//!   The same stored reps give identical `ScoreBuckets` on every backend and from either
//!   source.
//! - Bounded: at most [`MAX_ALL_REPS`] values (`ResultTooLarge` beyond).

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use sqlx::{Postgres, QueryBuilder, Row as _, Sqlite};

use crate::access::{Scope, push_scope};
use crate::analytics_rows::{check_scope_size, copy_scope_filter, pg_time_literal};
use crate::common::{MAX_ALL_REPS, clamp_query_time};
use crate::pgcopy::{CopyOut, field};
use crate::rollups::{DAMAGE_SCALE, WEEK_US, fixed, leak, pg_ts, week_start};
use crate::{Backend, Db, RepFacts, Store, StoreError};

/// The buckets of a set of reps, column-wise (one entry per bucket in every per-bucket
/// vector). Athletes and gyms are dictionary-coded: `athlete[i]` indexes
/// [`ScoreBuckets::athletes`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreBuckets {
    /// Athlete ids as presented to the caller (pseudonyms without identity), sorted.
    pub athletes: Vec<String>,
    /// Sorted.
    pub gyms: Vec<String>,
    pub athlete: Vec<u32>,
    pub gym: Vec<u32>,
    /// Monday 00:00 UTC, µs.
    pub week_us: Vec<i64>,
    /// Wire code of `liftguard.v1.Exercise`.
    pub exercise: Vec<i32>,
    pub reps: Vec<u32>,
    /// Reps with an extensor-moment event.
    pub events: Vec<u32>,
    /// Σ damage in billionths.
    pub damage_sum_nano: Vec<i64>,
    /// Bucket `i`'s values are `fatigue[offsets[i]..offsets[i + 1]]` (and the same range of
    /// `stability`); `offsets` has one more entry than there are buckets.
    pub offsets: Vec<u32>,
    /// Fatigue scores, ascending within each bucket.
    pub fatigue: Vec<f32>,
    /// Stability deficits, ascending within each bucket.
    pub stability: Vec<f32>,
}

impl Default for ScoreBuckets {
    fn default() -> Self {
        Self {
            athletes: Vec::new(),
            gyms: Vec::new(),
            athlete: Vec::new(),
            gym: Vec::new(),
            week_us: Vec::new(),
            exercise: Vec::new(),
            reps: Vec::new(),
            events: Vec::new(),
            damage_sum_nano: Vec::new(),
            offsets: vec![0],
            fatigue: Vec::new(),
            stability: Vec::new(),
        }
    }
}

impl ScoreBuckets {
    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.week_us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.week_us.is_empty()
    }

    /// The range of bucket `i`'s values in [`ScoreBuckets::fatigue`] and
    /// [`ScoreBuckets::stability`].
    pub fn values(&self, i: usize) -> Range<usize> {
        self.offsets[i] as usize..self.offsets[i + 1] as usize
    }

    /// Number of reps in all buckets.
    pub fn total_reps(&self) -> u64 {
        self.reps.iter().map(|r| u64::from(*r)).sum()
    }

    /// The buckets of `facts` (their ids as they are presented there): what the rollup
    /// holds for the same reps.
    pub fn from_facts(facts: &RepFacts) -> ScoreBuckets {
        let mut b = Builder::default();
        b.push_facts(facts);
        b.finish()
    }
}

/// One bucket while collecting.
struct Bucket {
    athlete: u32,
    gym: u32,
    week: i64,
    exercise: i32,
    reps: u32,
    events: u32,
    damage_nano: i64,
    fatigue: Vec<f32>,
    stability: Vec<f32>,
}

/// Strings to dense codes, in first-seen order.
#[derive(Default)]
struct Interner {
    labels: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    fn code(&mut self, s: &str) -> u32 {
        if let Some(c) = self.index.get(s) {
            return *c;
        }
        let c = self.labels.len() as u32;
        self.labels.push(s.to_owned());
        self.index.insert(s.to_owned(), c);
        c
    }

    /// Sorted labels and each first-seen code's position among them.
    fn sorted(self) -> (Vec<String>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.labels.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.labels[*a as usize].cmp(&self.labels[*b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, c) in order.iter().enumerate() {
            rank[*c as usize] = r as u32;
        }
        let mut labels = self.labels;
        let sorted = order
            .iter()
            .map(|c| std::mem::take(&mut labels[*c as usize]))
            .collect();
        (sorted, rank)
    }
}

/// Collects buckets from rollup rows and raw reps; [`Builder::finish`] puts them in the
/// canonical form. Buckets pushed twice under one key are merged (sources never overlap,
/// but merging keeps the result a function of the reps whatever the split).
#[derive(Default)]
struct Builder {
    athletes: Interner,
    gyms: Interner,
    buckets: Vec<Bucket>,
    index: HashMap<(u32, u32, i64, i32), usize>,
    values: usize,
}

impl Builder {
    fn slot(&mut self, athlete: &str, gym: &str, week: i64, exercise: i32) -> &mut Bucket {
        let (a, g) = (self.athletes.code(athlete), self.gyms.code(gym));
        let next = self.buckets.len();
        let i = *self.index.entry((a, g, week, exercise)).or_insert(next);
        if i == next {
            self.buckets.push(Bucket {
                athlete: a,
                gym: g,
                week,
                exercise,
                reps: 0,
                events: 0,
                damage_nano: 0,
                fatigue: Vec::new(),
                stability: Vec::new(),
            });
        }
        &mut self.buckets[i]
    }

    /// One rollup row.
    #[allow(clippy::too_many_arguments)]
    fn push_row(
        &mut self,
        athlete: &str,
        gym: &str,
        week: i64,
        exercise: i32,
        reps: i64,
        events: i64,
        damage_nano: i64,
        fatigue: Vec<f32>,
        stability: Vec<f32>,
    ) -> Result<(), StoreError> {
        let corrupt = |reason: String| StoreError::CorruptRow {
            table: "rollup_athlete_week_scores",
            reason,
        };
        if reps < 0 || reps != fatigue.len() as i64 || reps != stability.len() as i64 {
            return Err(corrupt(format!(
                "{reps} reps with {} fatigue and {} stability values",
                fatigue.len(),
                stability.len()
            )));
        }
        if !(0..=reps).contains(&events) {
            return Err(corrupt(format!("{events} events in {reps} reps")));
        }
        self.count(fatigue.len())?;
        let b = self.slot(athlete, gym, week, exercise);
        b.reps += reps as u32;
        b.events += events as u32;
        b.damage_nano = b.damage_nano.saturating_add(damage_nano);
        b.fatigue.extend(fatigue);
        b.stability.extend(stability);
        Ok(())
    }

    fn count(&mut self, n: usize) -> Result<(), StoreError> {
        self.values += n;
        if self.values > MAX_ALL_REPS {
            return Err(StoreError::ResultTooLarge {
                what: "reps in score buckets",
                limit: MAX_ALL_REPS,
            });
        }
        Ok(())
    }

    fn push_facts(&mut self, f: &RepFacts) {
        for i in 0..f.len() {
            let (Some(athlete), Some(gym)) = (
                f.athletes.get(f.athlete[i] as usize),
                f.gyms.get(f.gym[i] as usize),
            ) else {
                continue;
            };
            let b = self.slot(athlete, gym, week_start(f.start_us[i]), f.exercise[i]);
            b.reps += 1;
            b.events += u32::from(f.extensor_event[i]);
            b.damage_nano = b
                .damage_nano
                .saturating_add(fixed(f.damage[i], DAMAGE_SCALE));
            b.fatigue.push(f.fatigue_score[i]);
            b.stability.push(f.stability_deficit[i]);
        }
    }

    fn finish(self) -> ScoreBuckets {
        let (athletes, a_rank) = self.athletes.sorted();
        let (gyms, g_rank) = self.gyms.sorted();
        let mut buckets = self.buckets;
        for b in &mut buckets {
            b.athlete = a_rank[b.athlete as usize];
            b.gym = g_rank[b.gym as usize];
            b.fatigue.sort_unstable_by(f32::total_cmp);
            b.stability.sort_unstable_by(f32::total_cmp);
        }
        buckets.sort_unstable_by_key(|b| (b.athlete, b.week, b.gym, b.exercise));
        let n = buckets.len();
        let values: usize = buckets.iter().map(|b| b.fatigue.len()).sum();
        let mut out = ScoreBuckets {
            athletes,
            gyms,
            athlete: Vec::with_capacity(n),
            gym: Vec::with_capacity(n),
            week_us: Vec::with_capacity(n),
            exercise: Vec::with_capacity(n),
            reps: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
            damage_sum_nano: Vec::with_capacity(n),
            offsets: Vec::with_capacity(n + 1),
            fatigue: Vec::with_capacity(values),
            stability: Vec::with_capacity(values),
        };
        out.offsets.push(0);
        for b in buckets {
            out.athlete.push(b.athlete);
            out.gym.push(b.gym);
            out.week_us.push(b.week);
            out.exercise.push(b.exercise);
            out.reps.push(b.reps);
            out.events.push(b.events);
            out.damage_sum_nano.push(b.damage_nano);
            out.fatigue.extend(b.fatigue);
            out.stability.extend(b.stability);
            out.offsets.push(out.fatigue.len() as u32);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Schema (migration v7)

/// The bucket's figures from `reps` rows aliased `r`. PostgreSQL packs the scores as
/// big-endian f32s in a `bytea` (`float4send`): reading it is a copy, where a `real[]`
/// costs a function call per element (measured: 360 ms against 57 ms for a year of a
/// 500-athlete gym). SQLite collects them in a JSON array.
fn aggs(pg: bool) -> String {
    let (fixed, [f, s]) = if pg {
        (
            crate::rollups::pg_fixed("r.damage", DAMAGE_SCALE),
            ["fatigue_score", "stability_deficit"]
                .map(|c| format!("string_agg(float4send(r.{c}), ''::bytea)")),
        )
    } else {
        (
            crate::rollups::lite_fixed("r.damage", DAMAGE_SCALE),
            ["fatigue_score", "stability_deficit"].map(|c| format!("json_group_array(r.{c})")),
        )
    };
    format!(
        "count(*) AS reps, count(*) FILTER (WHERE r.extensor_event) AS events, \
         sum({fixed}) AS damage_sum_n, {f} AS fatigue, {s} AS stability"
    )
}

/// What a PostgreSQL read selects, in [`Builder::push_row`] order, and from where (sums
/// of the continuous aggregate are numeric: read as int8).
const PG_READ: &str = "week, gym_id, athlete_id, exercise, reps::int8, events::int8, \
     damage_sum_n::int8, fatigue, stability FROM rollup_athlete_week_scores";

/// The columns of the fallbacks' table, in order.
pub(crate) const SCORE_COLUMNS: &str =
    "week, gym_id, athlete_id, exercise, reps, events, damage_sum_n, fatigue, stability";

fn v7_timescale() -> &'static [&'static str] {
    leak(vec![format!(
        "CREATE MATERIALIZED VIEW rollup_athlete_week_scores \
         WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS \
         SELECT time_bucket(INTERVAL '7 days', r.start_time) AS week, r.gym_id, r.athlete_id, \
         r.exercise, {} FROM reps r GROUP BY 1, 2, 3, 4 WITH NO DATA",
        aggs(true)
    )])
}

fn v7_postgres() -> &'static [&'static str] {
    leak(vec![
        "CREATE TABLE rollup_athlete_week_scores (week TIMESTAMPTZ NOT NULL, \
         gym_id TEXT COLLATE \"C\" NOT NULL, athlete_id TEXT COLLATE \"C\" NOT NULL, \
         exercise INTEGER NOT NULL, reps BIGINT NOT NULL, events BIGINT NOT NULL, \
         damage_sum_n BIGINT NOT NULL, fatigue BYTEA NOT NULL, stability BYTEA NOT NULL, \
         PRIMARY KEY (week, gym_id, athlete_id, exercise))"
            .to_owned(),
        // The reps stored before this migration (later ones are marked by their writes).
        format!(
            "INSERT INTO rollup_athlete_week_scores ({SCORE_COLUMNS}) \
             SELECT date_bin(INTERVAL '7 days', r.start_time, TIMESTAMPTZ '2000-01-03 00:00:00+00'), \
             r.gym_id, r.athlete_id, r.exercise, {} FROM reps r GROUP BY 1, 2, 3, 4",
            aggs(true)
        ),
    ])
}

static V7_TIMESCALE: std::sync::LazyLock<&'static [&'static str]> =
    std::sync::LazyLock::new(v7_timescale);
static V7_POSTGRES: std::sync::LazyLock<&'static [&'static str]> =
    std::sync::LazyLock::new(v7_postgres);

/// The PostgreSQL statements of migration v7 for a flavour.
pub(crate) fn v7_pg(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Timescale => *V7_TIMESCALE,
        _ => *V7_POSTGRES,
    }
}

/// Migration v7 on SQLite (a constant, as `schema::Step` wants; a unit test checks the
/// aggregates are [`aggs`]).
pub(crate) const V7_SQLITE: &[&str] = &[
    "CREATE TABLE rollup_athlete_week_scores (week_us INTEGER NOT NULL, gym_id TEXT NOT NULL, \
     athlete_id TEXT NOT NULL, exercise INTEGER NOT NULL, reps INTEGER NOT NULL, \
     events INTEGER NOT NULL, damage_sum_n INTEGER NOT NULL, fatigue TEXT NOT NULL, \
     stability TEXT NOT NULL, PRIMARY KEY (week_us, gym_id, athlete_id, exercise)) STRICT, WITHOUT ROWID",
    "INSERT INTO rollup_athlete_week_scores (week_us, gym_id, athlete_id, exercise, reps, events, \
     damage_sum_n, fatigue, stability) \
     SELECT r.start_us - ((r.start_us + 259200000000) % 604800000000), r.gym_id, r.athlete_id, \
     r.exercise, count(*) AS reps, count(*) FILTER (WHERE r.extensor_event) AS events, \
     sum((CASE WHEN r.damage < 0 THEN -CAST(min(-r.damage * 1000000000.0 + 0.5, 1000000000000000.0) AS INTEGER) \
     ELSE CAST(min(r.damage * 1000000000.0 + 0.5, 1000000000000000.0) AS INTEGER) END)) AS damage_sum_n, \
     json_group_array(r.fatigue_score) AS fatigue, json_group_array(r.stability_deficit) AS stability \
     FROM reps r GROUP BY 1, 2, 3, 4",
];

/// The refresh of the pending athlete-weeks: `(delete, insert)` for a dialect, keyed like
/// the other athlete-week rollups (`keys` yields `p.k` week starts and `p.id` athletes).
pub(crate) fn refresh_sql(pg: bool, keys: &str) -> (String, String) {
    if pg {
        (
            format!(
                "DELETE FROM rollup_athlete_week_scores r USING {keys} \
                 WHERE r.week = p.k AND r.athlete_id = p.id"
            ),
            // One index range scan of the reps primary key per key (see the other rollups).
            format!(
                "INSERT INTO rollup_athlete_week_scores ({SCORE_COLUMNS}) SELECT p.k, x.* FROM {keys} \
                 CROSS JOIN LATERAL (SELECT r.gym_id, r.athlete_id, r.exercise, {} FROM reps r \
                 WHERE r.athlete_id = p.id AND r.start_time >= p.k \
                 AND r.start_time < p.k + INTERVAL '168 hours' \
                 GROUP BY r.gym_id, r.athlete_id, r.exercise) AS x",
                aggs(true)
            ),
        )
    } else {
        (
            format!(
                "DELETE FROM rollup_athlete_week_scores WHERE (week_us, athlete_id) IN \
                 (SELECT k, id FROM {keys})"
            ),
            format!(
                "INSERT INTO rollup_athlete_week_scores (week_us, gym_id, athlete_id, exercise, \
                 reps, events, damage_sum_n, fatigue, stability) \
                 SELECT p.k, r.gym_id, r.athlete_id, r.exercise, {} FROM {keys} \
                 JOIN reps r ON r.athlete_id = p.id AND r.start_us >= p.k \
                 AND r.start_us < p.k + 604800000000 GROUP BY p.k, r.gym_id, r.athlete_id, r.exercise",
                aggs(false)
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Reading

/// Which parts of `[from, to)` come from where: sub-ranges read from the rollup, and
/// sub-ranges bucketed from the raw reps. Both lists are sorted and disjoint and cover the
/// range; every rollup range is whole weeks not in `raw_weeks`.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    rollup: Vec<(i64, i64)>,
    raw: Vec<(i64, i64)>,
}

/// Splits `[from, to)` (non-empty): partial weeks at the edges and the weeks starting at
/// `raw_weeks` (sorted) are raw, the other whole weeks come from the rollup.
fn plan(from: i64, to: i64, raw_weeks: &[i64]) -> Plan {
    let first = week_start(from);
    let first_whole = if first == from {
        from
    } else {
        first.saturating_add(WEEK_US)
    };
    let last_whole = week_start(to);
    let mut p = Plan {
        rollup: Vec::new(),
        raw: Vec::new(),
    };
    let push = |v: &mut Vec<(i64, i64)>, a: i64, b: i64| {
        if a >= b {
            return;
        }
        match v.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => v.push((a, b)),
        }
    };
    if first_whole >= last_whole {
        push(&mut p.raw, from, to);
        return p;
    }
    push(&mut p.raw, from, first_whole);
    let mut w = first_whole;
    for &r in raw_weeks {
        if r < first_whole || r >= last_whole {
            continue;
        }
        push(&mut p.rollup, w, r);
        push(&mut p.raw, r, r + WEEK_US);
        w = w.max(r + WEEK_US);
    }
    push(&mut p.rollup, w, last_whole);
    push(&mut p.raw, last_whole, to);
    p
}

/// Big-endian f32s packed by `float4send` (PostgreSQL).
fn be_f32s(b: &[u8], what: &str) -> Result<Vec<f32>, StoreError> {
    if !b.len().is_multiple_of(4) {
        return Err(StoreError::CorruptRow {
            table: "rollup_athlete_week_scores",
            reason: format!("{what}: {} bytes is not a whole number of f32s", b.len()),
        });
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}

/// The numbers of a JSON array SQLite's `json_group_array` wrote (`[0.5,1.0e-05,...]`),
/// each parsed straight to the nearest f32 (the text is the stored double to 15 or more
/// digits, so that is the stored f32). A hand loop: several times faster than a JSON
/// parser over millions of values.
fn json_values(text: &str, what: &str) -> Result<Vec<f32>, StoreError> {
    let bad = |reason: String| StoreError::CorruptRow {
        table: "rollup_athlete_week_scores",
        reason: format!("{what}: {reason}"),
    };
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| bad("not a JSON array".into()))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|v| {
            let v = v.trim();
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(format!("{v:?} is not a finite number")))
        })
        .collect()
}

impl Store {
    /// The score buckets of every rep in scope with `start_us` in `[from_us, to_us)`, as
    /// `scope` presents the athletes (`secret` keys the pseudonyms), current with the stored
    /// reps (see the module docs). `ResultTooLarge` beyond [`MAX_ALL_REPS`] reps.
    pub async fn score_buckets(
        &self,
        scope: &Scope,
        secret: &[u8],
        from_us: i64,
        to_us: i64,
    ) -> Result<ScoreBuckets, StoreError> {
        if from_us > to_us {
            return Err(StoreError::invalid(
                "range",
                format!("from_us {from_us} is after to_us {to_us}"),
            ));
        }
        check_scope_size(scope)?;
        let (from, to) = (clamp_query_time(from_us), clamp_query_time(to_us));
        if scope.is_empty() || from >= to {
            return Ok(ScoreBuckets::default());
        }
        let started = std::time::Instant::now();
        let pending = self.pending_weeks(from, to).await?;
        let plan = plan(from, to, &pending);
        let mut b = Builder::default();
        let mut present: HashMap<String, String> = HashMap::new();
        // Rows name an athlete once per bucket: present each id once.
        let mut shown = |id: String| -> String {
            present
                .entry(id)
                .or_insert_with_key(|id| scope.present(secret, id))
                .clone()
        };
        for &(a, z) in &plan.rollup {
            match &self.inner.db {
                // A real server: binary COPY, decoded here (pglite has no COPY).
                Db::Pg(pg) if !pg.wasm => {
                    let sql = format!(
                        "COPY (SELECT {PG_READ} WHERE week >= {} AND week < {}{}) \
                         TO STDOUT (FORMAT binary)",
                        pg_time_literal(a)?,
                        pg_time_literal(z)?,
                        copy_scope_filter(scope)
                    );
                    let mut conn = pg.pool.acquire().await?;
                    let mut stream = conn.copy_out_raw(&sql).await?;
                    let mut decoder = CopyOut::new("rollup_athlete_week_scores", 9);
                    while let Some(chunk) = stream.try_next().await? {
                        decoder.feed(&chunk, |f| {
                            let athlete = shown(field::text(f[2])?.to_owned());
                            b.push_row(
                                &athlete,
                                field::text(f[1])?,
                                field::time_us(f[0])?,
                                field::i32(f[3])?,
                                field::i64(f[4])?,
                                field::i64(f[5])?,
                                field::i64(f[6])?,
                                be_f32s(f[7], "fatigue")?,
                                be_f32s(f[8], "stability")?,
                            )
                        })?;
                    }
                    decoder.finish()?;
                }
                Db::Pg(pg) => {
                    let mut qb =
                        QueryBuilder::<Postgres>::new(format!("SELECT {PG_READ} WHERE week >= "));
                    qb.push_bind(pg_ts(a)?);
                    qb.push(" AND week < ");
                    qb.push_bind(pg_ts(z)?);
                    qb.push(" AND ");
                    push_scope(&mut qb, scope, "gym_id", "athlete_id");
                    let mut rows = qb.build().fetch(&pg.pool);
                    while let Some(row) = rows.try_next().await? {
                        let week: DateTime<Utc> = row.try_get(0)?;
                        let gym: String = row.try_get(1)?;
                        let athlete = shown(row.try_get(2)?);
                        b.push_row(
                            &athlete,
                            &gym,
                            week.timestamp_micros(),
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                            row.try_get(6)?,
                            be_f32s(row.try_get(7)?, "fatigue")?,
                            be_f32s(row.try_get(8)?, "stability")?,
                        )?;
                    }
                }
                Db::Sqlite(l) => {
                    let mut qb = QueryBuilder::<Sqlite>::new(
                        "SELECT week_us, gym_id, athlete_id, exercise, reps, events, damage_sum_n, \
                         fatigue, stability FROM rollup_athlete_week_scores WHERE week_us >= ",
                    );
                    qb.push_bind(a);
                    qb.push(" AND week_us < ");
                    qb.push_bind(z);
                    qb.push(" AND ");
                    push_scope(&mut qb, scope, "gym_id", "athlete_id");
                    let mut rows = qb.build().fetch(&l.pool);
                    while let Some(row) = rows.try_next().await? {
                        let gym: String = row.try_get(1)?;
                        let athlete = shown(row.try_get(2)?);
                        b.push_row(
                            &athlete,
                            &gym,
                            row.try_get(0)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                            row.try_get(6)?,
                            json_values(row.try_get(7)?, "fatigue")?,
                            json_values(row.try_get(8)?, "stability")?,
                        )?;
                    }
                }
            }
        }
        let from_rollup = b.buckets.len();
        for &(a, z) in &plan.raw {
            let facts = self.rep_facts(scope, secret, a, z).await?;
            b.count(facts.len())?;
            b.push_facts(&facts);
        }
        tracing::debug!(
            rollup_ranges = plan.rollup.len(),
            raw_ranges = plan.raw.len(),
            from_rollup,
            buckets = b.buckets.len(),
            reps = b.values,
            ms = started.elapsed().as_millis() as u64,
            "score buckets read"
        );
        Ok(b.finish())
    }

    /// Week starts in `[from, to)` with a pending rollup mark (fallbacks; none on
    /// TimescaleDB, whose aggregates are real-time), sorted.
    async fn pending_weeks(&self, from: i64, to: i64) -> Result<Vec<i64>, StoreError> {
        let (lo, hi) = (week_start(from), to.saturating_add(WEEK_US));
        let days: Vec<i64> =
            match &self.inner.db {
                Db::Pg(_) if self.backend() == Backend::Timescale => Vec::new(),
                Db::Pg(pg) => sqlx::query_scalar::<_, DateTime<Utc>>(
                    "SELECT DISTINCT day FROM rollup_pending WHERE day >= $1 AND day < $2",
                )
                .bind(pg_ts(lo)?)
                .bind(pg_ts(hi)?)
                .fetch_all(&pg.pool)
                .await?
                .into_iter()
                .map(|d| d.timestamp_micros())
                .collect(),
                Db::Sqlite(l) => sqlx::query_scalar(
                    "SELECT DISTINCT day_us FROM rollup_pending WHERE day_us >= $1 AND day_us < $2",
                )
                .bind(lo)
                .bind(hi)
                .fetch_all(&l.pool)
                .await?,
            };
        let mut weeks: Vec<i64> = days.into_iter().map(week_start).collect();
        weeks.sort_unstable();
        weeks.dedup();
        Ok(weeks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MON: i64 = 1_767_571_200_000_000; // 2026-01-05 00:00 UTC, a Monday

    #[test]
    fn plans_split_edges_and_pending_weeks() {
        assert_eq!(week_start(MON), MON);
        // Whole weeks only.
        assert_eq!(
            plan(MON, MON + 3 * WEEK_US, &[]),
            Plan {
                rollup: vec![(MON, MON + 3 * WEEK_US)],
                raw: vec![]
            }
        );
        // Partial edges and a pending middle week.
        let (from, to) = (MON - 2 * 86_400_000_000, MON + 3 * WEEK_US + 5);
        assert_eq!(
            plan(from, to, &[MON - WEEK_US, MON + WEEK_US, MON + 9 * WEEK_US]),
            Plan {
                rollup: vec![(MON, MON + WEEK_US), (MON + 2 * WEEK_US, MON + 3 * WEEK_US)],
                raw: vec![
                    (from, MON),
                    (MON + WEEK_US, MON + 2 * WEEK_US),
                    (MON + 3 * WEEK_US, to)
                ]
            }
        );
        // Adjacent raw pieces merge; a range inside one week is raw.
        assert_eq!(
            plan(MON + 1, MON + 2 * WEEK_US, &[MON + WEEK_US]),
            Plan {
                rollup: vec![],
                raw: vec![(MON + 1, MON + 2 * WEEK_US)]
            }
        );
        assert_eq!(
            plan(MON + 1, MON + 5, &[]),
            Plan {
                rollup: vec![],
                raw: vec![(MON + 1, MON + 5)]
            }
        );
    }

    #[test]
    fn buckets_from_facts_group_sort_and_sum_exactly() {
        let facts = RepFacts {
            athletes: vec!["b".into(), "a".into()],
            gyms: vec!["g".into()],
            athlete: vec![0, 0, 1, 0],
            gym: vec![0, 0, 0, 0],
            start_us: vec![MON + 10, MON + 20, MON + 30, MON + WEEK_US],
            end_us: vec![0; 4],
            exercise: vec![1, 1, 1, 1],
            extensor_event: vec![true, false, true, false],
            load_kg: vec![0.0; 4],
            peak_lumbar_flexion_deg: vec![0.0; 4],
            fatigue_score: vec![0.5, 0.25, 0.75, 0.125],
            stability_deficit: vec![0.1, 0.3, 0.2, 0.4],
            damage: vec![1e-9, 2.5e-9, 0.0, 1.0],
        };
        let b = ScoreBuckets::from_facts(&facts);
        assert_eq!(b.athletes, vec!["a", "b"]);
        assert_eq!(b.athlete, vec![0, 1, 1]);
        assert_eq!(b.week_us, vec![MON, MON, MON + WEEK_US]);
        assert_eq!(b.reps, vec![1, 2, 1]);
        assert_eq!(b.events, vec![1, 1, 0]);
        // 1 + 3 (2.5 rounds half away from zero) billionths.
        assert_eq!(b.damage_sum_nano, vec![0, 4, 1_000_000_000]);
        assert_eq!(b.offsets, vec![0, 1, 3, 4]);
        assert_eq!(b.fatigue, vec![0.75, 0.25, 0.5, 0.125]);
        assert_eq!(b.stability, vec![0.2, 0.1, 0.3, 0.4]);
        assert_eq!(b.total_reps(), 4);
    }

    #[test]
    fn packed_f32s_decode() {
        let b: Vec<u8> = [0.5f32, -2.25, 1e-40]
            .iter()
            .flat_map(|x| x.to_bits().to_be_bytes())
            .collect();
        assert_eq!(be_f32s(&b, "f").unwrap(), [0.5, -2.25, 1e-40]);
        assert!(be_f32s(&b[..5], "f").is_err());
        assert!(be_f32s(&[], "f").unwrap().is_empty());
    }

    #[test]
    fn json_arrays_parse_to_the_stored_f32s() {
        assert_eq!(json_values("[]", "f").unwrap(), Vec::<f32>::new());
        let xs = [0.1f32, 1e-5, 3.4028235e38, 7.0, 0.333_333_34, 1e-40];
        // SQLite prints the double of each f32 with 15 significant digits.
        let text = format!(
            "[{}]",
            xs.iter()
                .map(|x| format!("{:.14e}", f64::from(*x)))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(json_values(&text, "f").unwrap(), xs);
        assert_eq!(json_values(" [ 0.5 , 2.0 ] ", "f").unwrap(), [0.5, 2.0]);
        for bad in ["", "0.5", "[0.5,null]", "[1e999]", "[0.5,]"] {
            assert!(json_values(bad, "f").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sqlite_migration_uses_the_refresh_aggregates() {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(norm(V7_SQLITE[1]).contains(&norm(&aggs(false))));
    }
}
