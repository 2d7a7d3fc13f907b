//! Rows for clinician analytics (`liftguard-analytics`): narrow rep facts for population
//! trends, the athletes in scope with their cohort fields, daily risk, and full reps and
//! reps for one athlete's history or an export — always read through a caller's [`Scope`].
//!
//! Invariants:
//! - Every function takes `&Scope` and applies it in the SQL itself (PostgreSQL:
//!   `gym_id = ANY($n)` / `athlete_id = ANY($m)`; SQLite: `IN ($n, ...)` of bound
//!   parameters). An empty scope reads nothing and runs no query.
//! - With `scope.identity == false` no real athlete id leaves this module: athlete ids are
//!   presented with [`Scope::present_rep`] / [`Scope::present_athlete`] under the
//!   caller-supplied deployment secret (pseudonyms, also inside rep, session and set ids;
//!   no name or external reference). A pseudonymous caller names an athlete by pseudonym only
//!   ([`Store::resolve_athlete`]); real ids are not accepted from it.
//! - Deterministic order, identical on every backend: rep facts by `(athlete_id, start)`,
//!   athletes by `athlete_id`, risk by `(athlete_id, day)`, pages by `(start, athlete_id)`,
//!   ids compared bytewise (the "C" collation on PostgreSQL, BINARY on SQLite) — so
//!   analytics that sum floats in row order get bit-identical results on every backend.
//! - Bounded: facts are capped at [`MAX_ALL_REPS`] reps (streamed, then put in canonical
//!   order here); pages at [`MAX_PAGE_LIMIT`]; streams hand over batches of at most that.
//! - Risk comes from the `risk_scores` table when it exists (migration v4, the alerts
//!   step); until then [`Store::risk_facts`] answers `None` rather than failing.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt as _;
use liftguard_model::AthleteId;
use liftguard_proto::v1::{Athlete, ExtensorEvidence, RepRecord};
use sqlx::{AssertSqlSafe, Row as _};

use crate::access::Scope;
use crate::common::{MAX_ALL_REPS, MAX_PAGE_LIMIT, MAX_TIME_US, RepCursor, clamp_query_time};
use crate::macros::rep_from_row;
use crate::pgcopy::{CopyOut, field};
use crate::rollups::pg_ts as pg_time;
use crate::schema::col_list;
use crate::{Db, RepPage, Store, StoreError};

/// The rep fields population analytics need, column-wise (one entry per rep in every
/// vector), in `(athlete_id, start_us)` order of the real ids. Athletes and gyms are
/// dictionary-coded: `athlete[i]` indexes [`RepFacts::athletes`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepFacts {
    /// Athlete ids as presented to the caller (pseudonyms without identity).
    pub athletes: Vec<String>,
    pub gyms: Vec<String>,
    pub athlete: Vec<u32>,
    pub gym: Vec<u32>,
    pub start_us: Vec<i64>,
    pub end_us: Vec<i64>,
    /// Wire code of `liftguard.v1.Exercise`.
    pub exercise: Vec<i32>,
    pub extensor_event: Vec<bool>,
    pub load_kg: Vec<f32>,
    pub peak_lumbar_flexion_deg: Vec<f32>,
    pub fatigue_score: Vec<f32>,
    pub stability_deficit: Vec<f32>,
    pub damage: Vec<f64>,
}

impl RepFacts {
    /// Number of reps.
    pub fn len(&self) -> usize {
        self.start_us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start_us.is_empty()
    }

    /// The newest rep start, if any.
    pub fn last_start_us(&self) -> Option<i64> {
        self.start_us.iter().copied().max()
    }

    fn code(dict: &mut Vec<String>, index: &mut HashMap<String, u32>, s: &str) -> u32 {
        if let Some(c) = index.get(s) {
            return *c;
        }
        let c = dict.len() as u32;
        dict.push(s.to_owned());
        index.insert(s.to_owned(), c);
        c
    }
}

/// Daily flare-up risk per athlete (the day's last estimate), in `(athlete_id, day)` order
/// of the real ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskFacts {
    /// Athlete ids as presented to the caller.
    pub athlete_id: Vec<String>,
    pub gym_id: Vec<String>,
    /// 00:00 UTC of the risk's day, µs.
    pub day_us: Vec<i64>,
    pub probability: Vec<f64>,
}

/// A page request over reps within a scope, ordered by `(start_us, athlete_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedRepQuery {
    /// Only this athlete (a real id, e.g. from [`Store::resolve_athlete`]).
    pub athlete: Option<AthleteId>,
    /// `[from_us, to_us)` on `start_us`.
    pub from_us: i64,
    pub to_us: i64,
    /// 1..=[`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// Continue after this cursor (the previous page's `next`). The cursor holds a real
    /// athlete id: keep it on the server, never hand it to a pseudonymous caller.
    pub after: Option<RepCursor>,
}

#[derive(Clone, Copy)]
enum Dialect {
    Pg,
    Lite,
}

impl Dialect {
    fn time(self, pg: &'static str, lite: &'static str) -> &'static str {
        match self {
            Dialect::Pg => pg,
            Dialect::Lite => lite,
        }
    }
}

/// ` AND <gym> IN scope AND <athlete> IN scope` with placeholders from `$first` on, and
/// the number of placeholders used. Built from constant fragments and numbers only.
fn scope_sql(d: Dialect, scope: &Scope, first: usize, prefix: &str) -> (String, usize) {
    let mut sql = String::new();
    let mut n = first;
    for (col, list) in [
        ("gym_id", scope.gyms.as_ref().map(Vec::len)),
        ("athlete_id", scope.athletes.as_ref().map(Vec::len)),
    ] {
        let Some(len) = list else { continue };
        match d {
            Dialect::Pg => {
                sql.push_str(&format!(" AND {prefix}{col} = ANY(${n})"));
                n += 1;
            }
            Dialect::Lite => {
                let params: Vec<String> = (n..n + len).map(|i| format!("${i}")).collect();
                sql.push_str(&format!(" AND {prefix}{col} IN ({})", params.join(", ")));
                n += len;
            }
        }
    }
    (sql, n - first)
}

/// Binds the scope's lists in the order [`scope_sql`] placed them.
macro_rules! bind_scope {
    (pg, $q:expr, $scope:expr) => {{
        let mut q = $q;
        if let Some(g) = $scope.gym_strs() {
            q = q.bind(g);
        }
        if let Some(a) = $scope.athlete_strs() {
            q = q.bind(a);
        }
        q
    }};
    (lite, $q:expr, $scope:expr) => {{
        let mut q = $q;
        for g in $scope.gym_strs().unwrap_or_default() {
            q = q.bind(g);
        }
        for a in $scope.athlete_strs().unwrap_or_default() {
            q = q.bind(a);
        }
        q
    }};
}

/// SQLite's parameter limit, minus room for the fixed parameters.
const MAX_SCOPE_PARAMS: usize = 32_000;

pub(crate) fn check_scope_size(scope: &Scope) -> Result<(), StoreError> {
    let n = scope.gyms.as_ref().map_or(0, Vec::len) + scope.athletes.as_ref().map_or(0, Vec::len);
    if n > MAX_SCOPE_PARAMS {
        return Err(StoreError::invalid(
            "scope",
            format!("{n} gyms and athletes; at most {MAX_SCOPE_PARAMS}"),
        ));
    }
    Ok(())
}

fn pg_row_time(row: &sqlx::postgres::PgRow, i: usize) -> Result<i64, StoreError> {
    Ok(row.try_get::<DateTime<Utc>, _>(i)?.timestamp_micros())
}

fn lite_row_time(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(i)?)
}

const ATHLETE_COLUMNS: &str = "athlete_id, gym_id, external_ref, display_name, height_m, mass_kg, \
     capacity_deadlift_kg, capacity_squat_kg, capacity_swing_kg, birth_year, sex, \
     training_age_years, sport";

macro_rules! athlete_from_row {
    ($row:expr) => {{
        let row = $row;
        Athlete {
            athlete_id: row.try_get(0)?,
            gym_id: row.try_get(1)?,
            external_ref: row.try_get(2)?,
            display_name: row.try_get(3)?,
            height_m: row.try_get(4)?,
            mass_kg: row.try_get(5)?,
            capacity_deadlift_kg: row.try_get(6)?,
            capacity_squat_kg: row.try_get(7)?,
            capacity_swing_kg: row.try_get(8)?,
            birth_year: row.try_get(9)?,
            sex: row.try_get(10)?,
            training_age_years: row.try_get(11)?,
            sport: row.try_get(12)?,
        }
    }};
}

/// Appends one fact row to `out` (dictionary-coding athlete and gym; consecutive rows of
/// one athlete skip the dictionary lookup).
macro_rules! push_fact_row {
    ($row:expr, $out:expr, $athletes:expr, $gyms:expr, $prev:expr, $time:expr) => {{
        let row = $row;
        push_fact(
            $out,
            $athletes,
            $gyms,
            &mut $prev,
            FactRow {
                athlete: row.try_get(0)?,
                gym: row.try_get(1)?,
                start_us: $time(row, 2)?,
                end_us: $time(row, 3)?,
                exercise: row.try_get(4)?,
                extensor_event: row.try_get(5)?,
                load_kg: row.try_get(6)?,
                peak_lumbar_flexion_deg: row.try_get(7)?,
                fatigue_score: row.try_get(8)?,
                stability_deficit: row.try_get(9)?,
                damage: row.try_get(10)?,
            },
        )?;
    }};
}

/// One row of [`fact_sql`] / [`copy_fact_sql`], decoded.
struct FactRow<'a> {
    athlete: &'a str,
    gym: &'a str,
    start_us: i64,
    end_us: i64,
    exercise: i32,
    extensor_event: bool,
    load_kg: f32,
    peak_lumbar_flexion_deg: f32,
    fatigue_score: f32,
    stability_deficit: f32,
    damage: f64,
}

impl<'a> FactRow<'a> {
    fn of(r: &'a RepRecord) -> Self {
        FactRow {
            athlete: &r.athlete_id,
            gym: &r.gym_id,
            start_us: r.start_us,
            end_us: r.end_us,
            exercise: r.exercise,
            extensor_event: r.extensor_event,
            load_kg: r.load_kg,
            peak_lumbar_flexion_deg: r.peak_lumbar_flexion_deg,
            fatigue_score: r.fatigue_score,
            stability_deficit: r.stability_deficit,
            damage: r.damage,
        }
    }
}

impl RepFacts {
    /// Rep facts of in-memory reps, exactly as [`Store::rep_facts`] returns them for those
    /// rows with identity: in `(athlete_id, start_us)` order (a repeated key keeps the first
    /// of the sorted rows), gyms coded in order of first appearance. For reps that never
    /// went through a database, and for tests.
    pub fn from_reps(reps: &[RepRecord]) -> RepFacts {
        let mut sorted: Vec<&RepRecord> = reps.iter().collect();
        sorted.sort_by(|a, b| {
            a.athlete_id
                .cmp(&b.athlete_id)
                .then(a.start_us.cmp(&b.start_us))
        });
        sorted.dedup_by(|b, a| a.athlete_id == b.athlete_id && a.start_us == b.start_us);
        let mut out = RepFacts::default();
        let (mut athletes, mut gyms) = (HashMap::new(), HashMap::new());
        for r in sorted {
            let a = RepFacts::code(&mut out.athletes, &mut athletes, &r.athlete_id);
            let g = RepFacts::code(&mut out.gyms, &mut gyms, &r.gym_id);
            out.push_row(a, g, &FactRow::of(r));
        }
        out
    }

    /// Appends one row under already assigned athlete and gym codes.
    fn push_row(&mut self, athlete: u32, gym: u32, r: &FactRow<'_>) {
        self.athlete.push(athlete);
        self.gym.push(gym);
        self.start_us.push(r.start_us);
        self.end_us.push(r.end_us);
        self.exercise.push(r.exercise);
        self.extensor_event.push(r.extensor_event);
        self.load_kg.push(r.load_kg);
        self.peak_lumbar_flexion_deg.push(r.peak_lumbar_flexion_deg);
        self.fatigue_score.push(r.fatigue_score);
        self.stability_deficit.push(r.stability_deficit);
        self.damage.push(r.damage);
    }
}

/// Appends one fact, dictionary-coding its athlete and gym (`prev` caches the last
/// athlete: rows mostly come grouped by athlete). `ResultTooLarge` beyond [`MAX_ALL_REPS`].
fn push_fact(
    out: &mut RepFacts,
    athletes: &mut HashMap<String, u32>,
    gyms: &mut HashMap<String, u32>,
    prev: &mut Option<(String, u32)>,
    r: FactRow<'_>,
) -> Result<(), StoreError> {
    let code = match prev {
        Some((a, c)) if a.as_str() == r.athlete => *c,
        _ => {
            let c = RepFacts::code(&mut out.athletes, athletes, r.athlete);
            *prev = Some((r.athlete.to_owned(), c));
            c
        }
    };
    let gym_code = RepFacts::code(&mut out.gyms, gyms, r.gym);
    out.push_row(code, gym_code, &r);
    if out.start_us.len() > MAX_ALL_REPS {
        return Err(StoreError::ResultTooLarge {
            what: "rep facts",
            limit: MAX_ALL_REPS,
        });
    }
    Ok(())
}

/// Puts facts read in any order into the canonical order: athletes by id (bytewise), then
/// start time; athlete codes become ranks of the sorted ids, gym codes are assigned in
/// order of first appearance. Keys `(athlete_id, start_us)` are unique (the natural key).
fn canonicalize(f: RepFacts) -> RepFacts {
    let n = f.len();
    let mut order: Vec<usize> = (0..f.athletes.len()).collect();
    order.sort_by(|a, b| f.athletes[*a].cmp(&f.athletes[*b]));
    let mut rank = vec![0u32; f.athletes.len()];
    for (r, code) in order.iter().enumerate() {
        rank[*code] = r as u32;
    }
    // Counting sort by athlete rank, then each athlete's rows by time.
    let mut starts = vec![0usize; order.len() + 1];
    for a in &f.athlete {
        starts[rank[*a as usize] as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut perm = vec![0usize; n];
    let mut next = starts.clone();
    for (i, a) in f.athlete.iter().enumerate() {
        let r = rank[*a as usize] as usize;
        perm[next[r]] = i;
        next[r] += 1;
    }
    for w in starts.windows(2) {
        perm[w[0]..w[1]].sort_unstable_by_key(|i| f.start_us[*i]);
    }
    let take = |v: &[i64]| perm.iter().map(|i| v[*i]).collect::<Vec<_>>();
    let mut gyms: Vec<String> = Vec::new();
    let mut gym_code: Vec<Option<u32>> = vec![None; f.gyms.len()];
    let gym: Vec<u32> = perm
        .iter()
        .map(|i| {
            let g = f.gym[*i] as usize;
            *gym_code[g].get_or_insert_with(|| {
                gyms.push(f.gyms[g].clone());
                (gyms.len() - 1) as u32
            })
        })
        .collect();
    RepFacts {
        athletes: order.iter().map(|c| f.athletes[*c].clone()).collect(),
        gyms,
        athlete: perm.iter().map(|i| rank[f.athlete[*i] as usize]).collect(),
        gym,
        start_us: take(&f.start_us),
        end_us: take(&f.end_us),
        exercise: perm.iter().map(|i| f.exercise[*i]).collect(),
        extensor_event: perm.iter().map(|i| f.extensor_event[*i]).collect(),
        load_kg: perm.iter().map(|i| f.load_kg[*i]).collect(),
        peak_lumbar_flexion_deg: perm.iter().map(|i| f.peak_lumbar_flexion_deg[*i]).collect(),
        fatigue_score: perm.iter().map(|i| f.fatigue_score[*i]).collect(),
        stability_deficit: perm.iter().map(|i| f.stability_deficit[*i]).collect(),
        damage: perm.iter().map(|i| f.damage[*i]).collect(),
    }
}

impl Store {
    /// Rep facts of every rep in scope with `start_us` in `[from_us, to_us)`, in
    /// `(athlete_id, start_us)` order. One streamed query (the database scans, nothing is
    /// sorted or paged server-side); the canonical order is made here. `ResultTooLarge`
    /// beyond [`MAX_ALL_REPS`] reps.
    pub async fn rep_facts(
        &self,
        scope: &Scope,
        secret: &[u8],
        from_us: i64,
        to_us: i64,
    ) -> Result<RepFacts, StoreError> {
        check_scope_size(scope)?;
        let (from, to) = (clamp_query_time(from_us), clamp_query_time(to_us));
        let mut out = RepFacts::default();
        if scope.is_empty() || from >= to {
            return Ok(out);
        }
        let mut athletes: HashMap<String, u32> = HashMap::new();
        let mut gyms: HashMap<String, u32> = HashMap::new();
        let mut prev: Option<(String, u32)> = None;
        match &self.inner.db {
            // A real server: binary COPY, decoded here (a fraction of the per-row cost of
            // the extended protocol's row decoding; pglite has no COPY).
            Db::Pg(pg) if !pg.wasm => {
                let sql = copy_fact_sql(scope, from, to)?;
                let mut conn = pg.pool.acquire().await?;
                let mut stream = conn.copy_out_raw(&sql).await?;
                let mut decoder = CopyOut::new("reps", 11);
                while let Some(chunk) = stream.try_next().await? {
                    decoder.feed(&chunk, |f| {
                        push_fact(
                            &mut out,
                            &mut athletes,
                            &mut gyms,
                            &mut prev,
                            FactRow {
                                athlete: field::text(f[0])?,
                                gym: field::text(f[1])?,
                                start_us: field::time_us(f[2])?,
                                end_us: field::time_us(f[3])?,
                                exercise: field::i32(f[4])?,
                                extensor_event: field::bool(f[5])?,
                                load_kg: field::f32(f[6])?,
                                peak_lumbar_flexion_deg: field::f32(f[7])?,
                                fatigue_score: field::f32(f[8])?,
                                stability_deficit: field::f32(f[9])?,
                                damage: field::f64(f[10])?,
                            },
                        )
                    })?;
                }
                decoder.finish()?;
            }
            Db::Pg(pg) => {
                let sql = fact_sql(Dialect::Pg, scope);
                let q = sqlx::query(AssertSqlSafe(sql))
                    .bind(pg_time(from)?)
                    .bind(pg_time(to)?);
                let mut rows = bind_scope!(pg, q, scope).fetch(&pg.pool);
                while let Some(row) = rows.try_next().await? {
                    push_fact_row!(&row, &mut out, &mut athletes, &mut gyms, prev, pg_row_time);
                }
            }
            Db::Sqlite(l) => {
                let sql = fact_sql(Dialect::Lite, scope);
                let q = sqlx::query(AssertSqlSafe(sql)).bind(from).bind(to);
                let mut rows = bind_scope!(lite, q, scope).fetch(&l.pool);
                while let Some(row) = rows.try_next().await? {
                    push_fact_row!(
                        &row,
                        &mut out,
                        &mut athletes,
                        &mut gyms,
                        prev,
                        lite_row_time
                    );
                }
            }
        }
        let mut out = canonicalize(out);
        if !scope.identity {
            for a in &mut out.athletes {
                *a = crate::access::pseudonym(secret, a);
            }
        }
        tracing::debug!(
            reps = out.len(),
            athletes = out.athletes.len(),
            "rep facts read"
        );
        Ok(out)
    }

    /// Every rep in scope with `start_us` in `[from_us, to_us)` (evidence included),
    /// presented as the scope allows, handed to `f` in batches of at most `batch` reps in
    /// `(athlete_id, start_us)` order, from one streamed query (bounded memory: one
    /// batch). `f` returns `false` to stop early. Returns the number of reps handed over.
    pub async fn for_each_rep_batch<F, Fut>(
        &self,
        scope: &Scope,
        secret: &[u8],
        from_us: i64,
        to_us: i64,
        batch: usize,
        mut f: F,
    ) -> Result<u64, StoreError>
    where
        F: FnMut(Vec<RepRecord>) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        check_scope_size(scope)?;
        let (from, to) = (clamp_query_time(from_us), clamp_query_time(to_us));
        if scope.is_empty() || from >= to {
            return Ok(0);
        }
        let batch = batch.clamp(1, MAX_PAGE_LIMIT as usize);
        let mut buf: Vec<RepRecord> = Vec::with_capacity(batch);
        let mut n = 0u64;
        macro_rules! drain {
            ($rows:expr, $time:expr) => {{
                let mut rows = $rows;
                while let Some(row) = rows.try_next().await? {
                    let r = rep_from_row!(&row, $time);
                    buf.push(scope.present_rep(secret, r));
                    if buf.len() == batch {
                        n += buf.len() as u64;
                        if !f(std::mem::replace(&mut buf, Vec::with_capacity(batch))).await {
                            return Ok(n);
                        }
                    }
                }
            }};
        }
        match &self.inner.db {
            Db::Pg(pg) => {
                let sql = stream_sql(Dialect::Pg, scope);
                let q = sqlx::query(AssertSqlSafe(sql))
                    .bind(pg_time(from)?)
                    .bind(pg_time(to)?);
                drain!(bind_scope!(pg, q, scope).fetch(&pg.pool), pg_row_time);
            }
            Db::Sqlite(l) => {
                let sql = stream_sql(Dialect::Lite, scope);
                let q = sqlx::query(AssertSqlSafe(sql)).bind(from).bind(to);
                drain!(bind_scope!(lite, q, scope).fetch(&l.pool), lite_row_time);
            }
        }
        if !buf.is_empty() {
            n += buf.len() as u64;
            f(buf).await;
        }
        Ok(n)
    }

    /// Every athlete in scope (enrolled), in `athlete_id` order of the real ids,
    /// presented as the scope allows (pseudonym, no name or external reference without
    /// identity).
    pub async fn scoped_athletes(
        &self,
        scope: &Scope,
        secret: &[u8],
    ) -> Result<Vec<Athlete>, StoreError> {
        check_scope_size(scope)?;
        if scope.is_empty() {
            return Ok(Vec::new());
        }
        let athletes = match &self.inner.db {
            Db::Pg(pg) => {
                let (s, _) = scope_sql(Dialect::Pg, scope, 1, "");
                let sql = format!(
                    "SELECT {ATHLETE_COLUMNS} FROM athletes WHERE TRUE{s} ORDER BY athlete_id"
                );
                let rows = bind_scope!(pg, sqlx::query(AssertSqlSafe(sql)), scope)
                    .fetch_all(&pg.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(athlete_from_row!(r)))
                    .collect::<Result<Vec<_>, StoreError>>()?
            }
            Db::Sqlite(l) => {
                let (s, _) = scope_sql(Dialect::Lite, scope, 1, "");
                let sql = format!(
                    "SELECT {ATHLETE_COLUMNS} FROM athletes WHERE 1{s} ORDER BY athlete_id"
                );
                let rows = bind_scope!(lite, sqlx::query(AssertSqlSafe(sql)), scope)
                    .fetch_all(&l.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(athlete_from_row!(r)))
                    .collect::<Result<Vec<_>, StoreError>>()?
            }
        };
        Ok(athletes
            .into_iter()
            .map(|a| scope.present_athlete(secret, a))
            .collect())
    }

    /// The athlete a caller names, as stored (real id), when the scope covers it: by real
    /// id with identity, by pseudonym only without. `None` when it does not exist or is not
    /// visible (the two are indistinguishable to the caller).
    pub async fn resolve_athlete(
        &self,
        scope: &Scope,
        secret: &[u8],
        presented: &str,
    ) -> Result<Option<Athlete>, StoreError> {
        if scope.is_empty() || AthleteId::parse(presented).is_err() {
            return Ok(None);
        }
        let identity_scope = Scope {
            identity: true,
            ..scope.clone()
        };
        if scope.identity {
            let narrowed = Scope {
                athletes: Some(match &scope.athletes {
                    Some(list) if !list.iter().any(|a| a.as_str() == presented) => {
                        return Ok(None);
                    }
                    _ => vec![
                        AthleteId::parse(presented)
                            .map_err(|e| StoreError::invalid("athlete_id", e.to_string()))?,
                    ],
                }),
                ..identity_scope
            };
            return Ok(self.scoped_athletes(&narrowed, secret).await?.pop());
        }
        // Without identity: the pseudonym of every visible athlete, compared with the
        // name given (bounded by the scope's athletes).
        let all = self.scoped_athletes(&identity_scope, secret).await?;
        Ok(all
            .into_iter()
            .find(|a| crate::access::pseudonym(secret, &a.athlete_id) == presented))
    }

    /// Daily risk of the athletes in scope with the day in `[from_us, to_us)`: `None`
    /// when this database has no `risk_scores` table yet.
    pub async fn risk_facts(
        &self,
        scope: &Scope,
        secret: &[u8],
        from_us: i64,
        to_us: i64,
    ) -> Result<Option<RiskFacts>, StoreError> {
        check_scope_size(scope)?;
        if !self.table_exists("risk_scores").await? {
            return Ok(None);
        }
        let mut out = RiskFacts::default();
        let (from, to) = (clamp_query_time(from_us), clamp_query_time(to_us));
        if scope.is_empty() || from >= to {
            return Ok(Some(out));
        }
        let day = |us: i64| {
            DateTime::from_timestamp_micros(us)
                .map(|t| t.date_naive().format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        // Day strings sort like the days they name (YYYY-MM-DD).
        // A bound past the last storable day includes that day.
        let (from_day, to_day) = (day(from), day(to.min(MAX_TIME_US)));
        let to_exclusive = to <= MAX_TIME_US && to % 86_400_000_000 == 0;
        let rows: Vec<(String, String, String, f64)> = match &self.inner.db {
            Db::Pg(pg) => {
                let (s, _) = scope_sql(Dialect::Pg, scope, 3, "");
                let sql = risk_sql(Dialect::Pg, &s, to_exclusive);
                let q = sqlx::query(AssertSqlSafe(sql))
                    .bind(&from_day)
                    .bind(&to_day);
                let rows = bind_scope!(pg, q, scope).fetch_all(&pg.pool).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                    .collect::<Result<_, StoreError>>()?
            }
            Db::Sqlite(l) => {
                let (s, _) = scope_sql(Dialect::Lite, scope, 3, "");
                let sql = risk_sql(Dialect::Lite, &s, to_exclusive);
                let q = sqlx::query(AssertSqlSafe(sql))
                    .bind(from_day.clone())
                    .bind(to_day.clone());
                let rows = bind_scope!(lite, q, scope).fetch_all(&l.pool).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                    .collect::<Result<_, StoreError>>()?
            }
        };
        let mut presented: HashMap<String, String> = HashMap::new();
        for (athlete, gym, d, p) in rows {
            let date = NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|e| StoreError::corrupt("risk_scores", format!("day {d:?}: {e}")))?;
            let day_us = date
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_micros())
                .ok_or_else(|| StoreError::corrupt("risk_scores", format!("day {d:?}")))?;
            let shown = presented
                .entry(athlete.clone())
                .or_insert_with(|| scope.present(secret, &athlete))
                .clone();
            out.athlete_id.push(shown);
            out.gym_id.push(gym);
            out.day_us.push(day_us);
            out.probability.push(p);
        }
        Ok(Some(out))
    }

    /// One page of full reps (evidence included) in scope, in `(start_us, athlete_id)`
    /// order, presented as the scope allows. Following `next` visits every matching rep
    /// once.
    pub async fn scoped_reps(
        &self,
        scope: &Scope,
        secret: &[u8],
        q: &ScopedRepQuery,
    ) -> Result<RepPage, StoreError> {
        check_scope_size(scope)?;
        if !(1..=MAX_PAGE_LIMIT).contains(&q.limit) {
            return Err(StoreError::invalid(
                "limit",
                format!("{} is outside 1..={MAX_PAGE_LIMIT}", q.limit),
            ));
        }
        let (from, to) = (clamp_query_time(q.from_us), clamp_query_time(q.to_us));
        if scope.is_empty() || from >= to {
            return Ok(RepPage {
                reps: Vec::new(),
                next: None,
            });
        }
        let start = RepCursor {
            start_us: from,
            athlete_id: String::new(),
        };
        let after = q.after.as_ref().unwrap_or(&start);
        let fetch = i64::from(q.limit) + 1;
        let athlete = q.athlete.as_ref().map(|a| a.as_str().to_owned());
        let mut reps = match &self.inner.db {
            Db::Pg(pg) => {
                let sql = page_sql(Dialect::Pg, scope, athlete.is_some());
                let mut qq = sqlx::query(AssertSqlSafe(sql))
                    .bind(pg_time(from)?)
                    .bind(pg_time(to)?)
                    .bind(pg_time(after.start_us)?)
                    .bind(after.athlete_id.clone())
                    .bind(fetch);
                if let Some(a) = &athlete {
                    qq = qq.bind(a.clone());
                }
                let rows = bind_scope!(pg, qq, scope).fetch_all(&pg.pool).await?;
                rows.iter()
                    .map(|row| Ok(rep_from_row!(row, pg_row_time)))
                    .collect::<Result<Vec<_>, StoreError>>()?
            }
            Db::Sqlite(l) => {
                let sql = page_sql(Dialect::Lite, scope, athlete.is_some());
                let mut qq = sqlx::query(AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .bind(after.start_us)
                    .bind(after.athlete_id.clone())
                    .bind(fetch);
                if let Some(a) = &athlete {
                    qq = qq.bind(a.clone());
                }
                let rows = bind_scope!(lite, qq, scope).fetch_all(&l.pool).await?;
                rows.iter()
                    .map(|row| Ok(rep_from_row!(row, lite_row_time)))
                    .collect::<Result<Vec<_>, StoreError>>()?
            }
        };
        let next = if reps.len() > q.limit as usize {
            reps.truncate(q.limit as usize);
            reps.last().map(RepCursor::after)
        } else {
            None
        };
        let reps = reps
            .into_iter()
            .map(|r| scope.present_rep(secret, r))
            .collect();
        Ok(RepPage { reps, next })
    }

    /// The number of reps in scope with `start_us` in `[from_us, to_us)` (e.g. to size a
    /// progress bar before an export).
    pub async fn count_scoped_reps(
        &self,
        scope: &Scope,
        from_us: i64,
        to_us: i64,
    ) -> Result<u64, StoreError> {
        check_scope_size(scope)?;
        let (from, to) = (clamp_query_time(from_us), clamp_query_time(to_us));
        if scope.is_empty() || from >= to {
            return Ok(0);
        }
        let n: i64 = match &self.inner.db {
            Db::Pg(pg) => {
                let (s, _) = scope_sql(Dialect::Pg, scope, 3, "");
                let sql = format!(
                    "SELECT count(*) FROM reps WHERE start_time >= $1 AND start_time < $2{s}"
                );
                let q = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(pg_time(from)?)
                    .bind(pg_time(to)?);
                bind_scope!(pg, q, scope).fetch_one(&pg.pool).await?
            }
            Db::Sqlite(l) => {
                let (s, _) = scope_sql(Dialect::Lite, scope, 3, "");
                let sql =
                    format!("SELECT count(*) FROM reps WHERE start_us >= $1 AND start_us < $2{s}");
                let q = sqlx::query_scalar(AssertSqlSafe(sql)).bind(from).bind(to);
                bind_scope!(lite, q, scope).fetch_one(&l.pool).await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The newest rep start in scope and in `[from_us, to_us)` (the default "as of" of
    /// windowed analytics), `None` without reps.
    pub async fn newest_rep_start(
        &self,
        scope: &Scope,
        from_us: i64,
        to_us: i64,
    ) -> Result<Option<i64>, StoreError> {
        check_scope_size(scope)?;
        let (from, to) = (clamp_query_time(from_us), clamp_query_time(to_us));
        if scope.is_empty() || from >= to {
            return Ok(None);
        }
        Ok(match &self.inner.db {
            Db::Pg(pg) => {
                let (s, _) = scope_sql(Dialect::Pg, scope, 3, "r.");
                let sql = if scope.athletes.is_some() {
                    // The primary key (athlete_id, start_time) answers per athlete.
                    format!(
                        "SELECT max(r.start_time) FROM reps r \
                         WHERE r.start_time >= $1 AND r.start_time < $2{s}"
                    )
                } else {
                    // A skip scan over the gyms that have reps, then the newest rep of each
                    // from the (gym_id, start_time) index: milliseconds, where a plain
                    // max() reads every rep (no index leads with start_time).
                    format!(
                        "WITH RECURSIVE g AS (\
                           SELECT min(gym_id) AS id FROM reps \
                           UNION ALL \
                           SELECT (SELECT min(r.gym_id) FROM reps r WHERE r.gym_id > g.id) \
                           FROM g WHERE g.id IS NOT NULL) \
                         SELECT max(x.m) FROM g CROSS JOIN LATERAL (\
                           SELECT max(r.start_time) AS m FROM reps r \
                           WHERE r.gym_id = g.id AND r.start_time >= $1 AND r.start_time < $2{s}) x \
                         WHERE g.id IS NOT NULL"
                    )
                };
                let q = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(pg_time(from)?)
                    .bind(pg_time(to)?);
                let t: Option<DateTime<Utc>> =
                    bind_scope!(pg, q, scope).fetch_one(&pg.pool).await?;
                t.map(|t| t.timestamp_micros())
            }
            Db::Sqlite(l) => {
                let (s, _) = scope_sql(Dialect::Lite, scope, 3, "");
                let sql = format!(
                    "SELECT max(start_us) FROM reps WHERE start_us >= $1 AND start_us < $2{s}"
                );
                let q = sqlx::query_scalar(AssertSqlSafe(sql)).bind(from).bind(to);
                bind_scope!(lite, q, scope).fetch_one(&l.pool).await?
            }
        })
    }

    /// Whether a table exists (tables added by later migrations are optional inputs).
    pub async fn table_exists(&self, table: &str) -> Result<bool, StoreError> {
        Ok(match &self.inner.db {
            Db::Pg(pg) => {
                sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(&pg.pool)
                    .await?
            }
            Db::Sqlite(l) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(table.to_owned())
                .fetch_one(&l.pool)
                .await?
                    > 0
            }
        })
    }
}

/// Rep facts: time range `$1..$2`, scope from `$3`; no order (see [`canonicalize`]).
fn fact_sql(d: Dialect, scope: &Scope) -> String {
    let t = d.time("start_time", "start_us");
    let e = d.time("end_time", "end_us");
    let (s, _) = scope_sql(d, scope, 3, "");
    format!(
        "SELECT athlete_id, gym_id, {t}, {e}, exercise, extensor_event, load_kg, \
         peak_lumbar_flexion_deg, fatigue_score, stability_deficit, damage FROM reps \
         WHERE {t} >= $1 AND {t} < $2{s}"
    )
}

/// [`fact_sql`] for PostgreSQL as a binary `COPY ... TO STDOUT` (which takes no bind
/// parameters): the time range and the scope's ids are inlined as escaped literals (ids
/// are validated newtypes; the escaping holds for any text whatever
/// `standard_conforming_strings` says).
fn copy_fact_sql(scope: &Scope, from_us: i64, to_us: i64) -> Result<String, StoreError> {
    Ok(format!(
        "COPY (SELECT athlete_id, gym_id, start_time, end_time, exercise, extensor_event, \
         load_kg, peak_lumbar_flexion_deg, fatigue_score, stability_deficit, damage FROM reps \
         WHERE start_time >= {} AND start_time < {}{}) TO STDOUT (FORMAT binary)",
        pg_time_literal(from_us)?,
        pg_time_literal(to_us)?,
        copy_scope_filter(scope)
    ))
}

/// A time as a `timestamptz` literal for a `COPY` query (which takes no bind parameters):
/// a constant at plan time (so partitions are pruned), exact to the µs. Times are clamped
/// to `0..=MAX_TIME_US + 1`; the one value past year 9999 (the "unbounded" end) is
/// `infinity`, which selects the same rows (none is stored later).
pub(crate) fn pg_time_literal(us: i64) -> Result<String, StoreError> {
    if us > MAX_TIME_US {
        return Ok("'infinity'::timestamptz".to_owned());
    }
    Ok(format!(
        "'{}'::timestamptz",
        pg_time(us)?.format("%Y-%m-%d %H:%M:%S%.6f+00")
    ))
}

/// The scope as ` AND gym_id = ANY(...) AND athlete_id = ANY(...)` with escaped literals.
pub(crate) fn copy_scope_filter(scope: &Scope) -> String {
    let mut sql = String::new();
    for (col, list) in [
        ("gym_id", scope.gym_strs()),
        ("athlete_id", scope.athlete_strs()),
    ] {
        if let Some(ids) = list {
            let items: Vec<String> = ids.iter().map(|s| pg_text_literal(s)).collect();
            sql.push_str(&format!(
                " AND {col} = ANY(ARRAY[{}]::text[])",
                items.join(", ")
            ));
        }
    }
    sql
}

/// `s` as a PostgreSQL escape-string literal (`E'...'`): backslashes and quotes escaped.
fn pg_text_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str("E'");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Full reps for a stream: time range `$1..$2`, scope from `$3`, in natural-key order
/// (the primary key's order: no sort on SQLite, an ordered index scan or merge on
/// PostgreSQL).
fn stream_sql(d: Dialect, scope: &Scope) -> String {
    let t = d.time("start_time", "start_us");
    let cols = match d {
        Dialect::Pg => col_list(|c| c.0.to_owned()),
        Dialect::Lite => col_list(|c| c.2.to_owned()),
    };
    let (s, _) = scope_sql(d, scope, 3, "");
    format!("SELECT {cols} FROM reps WHERE {t} >= $1 AND {t} < $2{s} ORDER BY athlete_id, {t}")
}

/// Risk rows: the day in `[$1, $2)` (or `[$1, $2]` when `to` is not a midnight), scope from
/// `$3`. PostgreSQL stores the day as DATE, SQLite as `YYYY-MM-DD` text; both read back as
/// that text.
fn risk_sql(d: Dialect, scope: &str, to_exclusive: bool) -> String {
    let op = if to_exclusive { "<" } else { "<=" };
    let (day, from, to) = match d {
        Dialect::Pg => ("to_char(day, 'YYYY-MM-DD')", "$1::date", "$2::date"),
        Dialect::Lite => ("day", "$1", "$2"),
    };
    format!(
        "SELECT athlete_id, gym_id, {day}, probability FROM risk_scores \
         WHERE day >= {from} AND day {op} {to}{scope} ORDER BY athlete_id, day"
    )
}

/// Full-rep page: time range `$1..$2`, after `($3, $4)`, `LIMIT $5`, athlete `$6` when
/// given, then the scope.
fn page_sql(d: Dialect, scope: &Scope, one_athlete: bool) -> String {
    let t = d.time("start_time", "start_us");
    let cols = match d {
        Dialect::Pg => col_list(|c| c.0.to_owned()),
        Dialect::Lite => col_list(|c| c.2.to_owned()),
    };
    let (athlete, first) = if one_athlete {
        (" AND athlete_id = $6", 7)
    } else {
        ("", 6)
    };
    let (s, _) = scope_sql(d, scope, first, "");
    format!(
        "SELECT {cols} FROM reps WHERE {t} >= $1 AND {t} < $2 AND ({t}, athlete_id) > ($3, $4)\
         {athlete}{s} ORDER BY {t}, athlete_id LIMIT $5"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use liftguard_model::GymId;

    fn scope(gyms: Option<&[&str]>, athletes: Option<&[&str]>) -> Scope {
        Scope {
            gyms: gyms.map(|g| g.iter().map(|s| GymId::parse(*s).unwrap()).collect()),
            athletes: athletes.map(|a| a.iter().map(|s| AthleteId::parse(*s).unwrap()).collect()),
            identity: true,
        }
    }

    #[test]
    fn scope_clauses_number_their_placeholders() {
        let s = scope(Some(&["gym-a", "gym-b"]), Some(&["a1", "a2", "a3"]));
        assert_eq!(
            scope_sql(Dialect::Pg, &s, 5, ""),
            (
                " AND gym_id = ANY($5) AND athlete_id = ANY($6)".to_owned(),
                2
            )
        );
        assert_eq!(
            scope_sql(Dialect::Lite, &s, 5, "r."),
            (
                " AND r.gym_id IN ($5, $6) AND r.athlete_id IN ($7, $8, $9)".to_owned(),
                5
            )
        );
        assert_eq!(
            scope_sql(Dialect::Pg, &Scope::all(), 3, ""),
            (String::new(), 0)
        );
        let sql = page_sql(Dialect::Pg, &s, true);
        assert!(sql.contains("athlete_id = $6 AND gym_id = ANY($7) AND athlete_id = ANY($8)"));
    }

    #[test]
    fn presented_reps_carry_no_real_id() {
        let r = RepRecord {
            rep_id: "a-1234-99".into(),
            athlete_id: "a-1234".into(),
            session_id: "a-1234-50".into(),
            set_id: "a-1234-50-s1".into(),
            ..Default::default()
        };
        let hidden = Scope {
            identity: false,
            ..Scope::all()
        };
        let p = hidden.present_rep(b"k", r.clone());
        let pseudo = crate::access::pseudonym(b"k", "a-1234");
        assert_eq!(p.athlete_id, pseudo);
        assert_eq!(p.rep_id, format!("{pseudo}-99"));
        assert_eq!(p.set_id, format!("{pseudo}-50-s1"));
        assert!(!format!("{p:?}").contains("a-1234"));
        assert_eq!(Scope::all().present_rep(b"k", r.clone()), r);
    }

    #[test]
    fn text_literals_escape_quotes_and_backslashes() {
        assert_eq!(pg_text_literal("ath-1"), "E'ath-1'");
        assert_eq!(pg_text_literal("a'b"), "E'a\\'b'");
        assert_eq!(pg_text_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(
            pg_text_literal("'; DROP TABLE reps; --"),
            "E'\\'; DROP TABLE reps; --'"
        );
    }

    #[test]
    fn copy_sql_inlines_exact_time_literals_and_the_scope() {
        let sql = copy_fact_sql(&Scope::all(), 1_500_000_000_123_456, MAX_TIME_US + 1).unwrap();
        assert!(sql.contains("start_time >= '2017-07-14 02:40:00.123456+00'::timestamptz"));
        assert!(sql.contains("start_time < 'infinity'::timestamptz"));
        assert!(sql.ends_with(") TO STDOUT (FORMAT binary)"));
        let last = copy_fact_sql(&Scope::all(), 0, MAX_TIME_US).unwrap();
        assert!(last.contains("start_time >= '1970-01-01 00:00:00.000000+00'::timestamptz"));
        assert!(last.contains("start_time < '9999-12-31 23:59:59.999999+00'::timestamptz"));
    }
}
