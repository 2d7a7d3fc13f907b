//! Population analytics: weekly trends by gym, cohort and exercise over score buckets
//! (`liftguard_store::ScoreBuckets`: per athlete, gym, week and exercise, every rep's
//! scores kept); athletes trending up and acute:chronic load over rep facts
//! (`liftguard_store::RepFacts`) of their window; the athletes in scope and their daily risk.
//!
//! Invariants:
//! - Inputs come already scoped and presented by the store (pseudonyms where the caller has
//!   no identity grant); nothing here widens or narrows what the caller may see, except the
//!   explicit [`CohortFilter`].
//! - Deterministic: the same inputs give bit-identical frames. Rows enter polars in the
//!   store's canonical order, groups are keyed by small integer codes assigned in sorted
//!   label order, every table is sorted by its keys; float sums are taken in row order
//!   ([`crate::sums`]), damage in trends is an exact integer sum of billionths.
//! - Trends are a function of the reps, not of how they were bucketed: counts and damage
//!   add across buckets exactly, and a group's quantiles are computed over all the values
//!   of its buckets (exact, not merged sketches).
//! - Weeks are ISO weeks (Monday 00:00 UTC); the age band is the age reached in the week's
//!   ISO year ([`crate::time::age_band`]); the training-age band is fixed at enrollment.
//! - Counts and rates are exact (integers; `events * 100 / reps` in f64, null without
//!   reps); quantiles interpolate linearly between closest ranks; nothing is NaN.
//! - Risk (daily probability) is never broken down by exercise; without a risk table the
//!   risk columns are null and `risk_available` is false.
//! - Memory is bounded by the input: a frame row per bucket (trends), per rep (trending,
//!   load) and per risk day, and one value row per rep's score in trends.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use liftguard_proto::v1::Athlete;
use liftguard_store::rollups::DAMAGE_SCALE;
use liftguard_store::{RepFacts, RiskFacts, ScoreBuckets};
use polars::prelude::*;

use crate::render::u64s;
use crate::rows::exercise_key;
use crate::sums::sum_by;
use crate::time::{
    AGE_BANDS, DAY_US, TRAINING_AGE_BANDS, WEEK_US, age_band, cohort_label, day_start_us, iso_week,
    training_age_band, week_start_us,
};
use crate::{AnalyticsError, PolarsContext};

/// What population figures are broken down by (besides the week).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Gym,
    AgeBand,
    Sex,
    TrainingAgeBand,
    Sport,
    Exercise,
}

impl Dimension {
    pub const ALL: [Dimension; 6] = [
        Dimension::Gym,
        Dimension::AgeBand,
        Dimension::Sex,
        Dimension::TrainingAgeBand,
        Dimension::Sport,
        Dimension::Exercise,
    ];

    /// The output column holding the dimension's label.
    pub fn column(self) -> &'static str {
        match self {
            Dimension::Gym => "gym_id",
            Dimension::AgeBand => "age_band",
            Dimension::Sex => "sex",
            Dimension::TrainingAgeBand => "training_age_band",
            Dimension::Sport => "sport",
            Dimension::Exercise => "exercise",
        }
    }

    /// Internal code column.
    fn key(self) -> &'static str {
        match self {
            Dimension::Gym => "k_gym",
            Dimension::AgeBand => "k_age",
            Dimension::Sex => "k_sex",
            Dimension::TrainingAgeBand => "k_tage",
            Dimension::Sport => "k_sport",
            Dimension::Exercise => "k_ex",
        }
    }

    /// Parses a dimension name: the column name or `gym`, `age`, `training_age`.
    pub fn parse(s: &str) -> Option<Dimension> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "gym" | "gym_id" => Some(Dimension::Gym),
            "age" | "age_band" => Some(Dimension::AgeBand),
            "sex" => Some(Dimension::Sex),
            "training_age" | "training_age_band" => Some(Dimension::TrainingAgeBand),
            "sport" => Some(Dimension::Sport),
            "exercise" => Some(Dimension::Exercise),
            _ => None,
        }
    }
}

/// Restricts a population. Empty lists are no condition. Labels are matched after
/// [`cohort_label`] normalisation; bands must be known labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CohortFilter {
    /// Wire codes of `liftguard.v1.Exercise` (reps only; risk is not per exercise).
    pub exercises: Vec<i32>,
    pub sexes: Vec<String>,
    pub sports: Vec<String>,
    /// Labels of [`AGE_BANDS`].
    pub age_bands: Vec<String>,
    /// Labels of [`TRAINING_AGE_BANDS`].
    pub training_age_bands: Vec<String>,
}

impl CohortFilter {
    fn validate(&self) -> Result<(), AnalyticsError> {
        for b in &self.age_bands {
            if !AGE_BANDS.contains(&b.as_str()) {
                return Err(AnalyticsError::InvalidOptions(format!(
                    "age band {b:?} is not one of {AGE_BANDS:?}"
                )));
            }
        }
        for b in &self.training_age_bands {
            if !TRAINING_AGE_BANDS.contains(&b.as_str()) {
                return Err(AnalyticsError::InvalidOptions(format!(
                    "training age band {b:?} is not one of {TRAINING_AGE_BANDS:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The rows a population computation reads, as the store returned them for one scope.
#[derive(Debug, Clone, Copy)]
pub struct PopulationInput<'a> {
    pub reps: &'a RepFacts,
    /// The enrolled athletes in scope (cohort fields); athletes seen only in reps or risk
    /// get `unknown` cohorts.
    pub athletes: &'a [Athlete],
    /// `None` when the deployment stores no risk yet.
    pub risk: Option<&'a RiskFacts>,
}

/// The rows population trends read, as the store returned them for one scope: score
/// buckets (per athlete, gym, week and exercise, every rep's scores kept) instead of rep
/// facts, so a year reads a row per bucket, not per rep.
#[derive(Debug, Clone, Copy)]
pub struct TrendsInput<'a> {
    pub buckets: &'a ScoreBuckets,
    /// As in [`PopulationInput::athletes`].
    pub athletes: &'a [Athlete],
    /// `None` when the deployment stores no risk yet.
    pub risk: Option<&'a RiskFacts>,
}

/// Knobs of [`population_trends`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrendOptions {
    /// Breakdown besides the week; order and repeats do not matter.
    pub group_by: Vec<Dimension>,
    pub filter: CohortFilter,
}

/// Weekly population figures.
///
/// `table` columns (fixed; dimension columns are null unless grouped by):
/// `week_start [Datetime µs], iso_week, gym_id, age_band, sex, training_age_band, sport,
/// exercise [str], athletes, reps, extensor_events [u32], events_per_100_reps,
/// fatigue_{median,q1,q3,iqr,p90}, stability_{median,q1,q3,iqr,p90}, damage_total,
/// damage_per_athlete_median, damage_per_athlete_p90 [f64], risk_athlete_days [u32],
/// risk_median, risk_p90, risk_max [f64]`; sorted by week, then the dimensions in
/// [`Dimension::ALL`] order (gyms, sexes, sports alphabetically; bands and exercises in
/// their natural order). One row per (week, group) with at least one rep. Damage sums
/// add each rep's damage rounded to 1e-9 (the rollups' fixed point), exactly.
#[derive(Debug, Clone)]
pub struct Trends {
    pub table: DataFrame,
    pub group_by: Vec<Dimension>,
    pub risk_available: bool,
}

/// Knobs of [`trending_athletes`]; see the proto `TrendingAthletesRequest` for the method.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendingOptions {
    /// End of the window: its week is the last one. `None`: the newest rep (else risk day).
    pub as_of_us: Option<i64>,
    /// Window length in ISO weeks, 2..=104. Default 6.
    pub weeks: u32,
    /// A week counts for the event-rate trend with at least this many reps. Default 20.
    pub min_reps_per_week: u32,
    /// Weeks needed for a slope, 2..=weeks. Default 3.
    pub min_weeks: u32,
    /// Events per 100 reps per week. Default 1.0.
    pub min_rate_slope: f64,
    /// Probability per week. Default 0.02.
    pub min_risk_slope: f64,
    /// Keep athletes that are not trending (with their slopes).
    pub include_all: bool,
    pub filter: CohortFilter,
}

impl Default for TrendingOptions {
    fn default() -> Self {
        Self {
            as_of_us: None,
            weeks: 6,
            min_reps_per_week: 20,
            min_weeks: 3,
            min_rate_slope: 1.0,
            min_risk_slope: 0.02,
            include_all: false,
            filter: CohortFilter::default(),
        }
    }
}

impl TrendingOptions {
    fn validate(&self) -> Result<(), AnalyticsError> {
        let bad = |m: String| Err(AnalyticsError::InvalidOptions(m));
        if !(2..=104).contains(&self.weeks) {
            return bad(format!("weeks must be in 2..=104, got {}", self.weeks));
        }
        if !(2..=self.weeks).contains(&self.min_weeks) {
            return bad(format!(
                "min_weeks must be in 2..={}, got {}",
                self.weeks, self.min_weeks
            ));
        }
        if self.min_reps_per_week == 0 {
            return bad("min_reps_per_week must be at least 1".into());
        }
        if !self.min_rate_slope.is_finite() || !self.min_risk_slope.is_finite() {
            return bad("slope thresholds must be finite".into());
        }
        self.filter.validate()
    }
}

/// Athletes trending up.
///
/// `table` columns: `athlete_id, gym_id, age_band (as of the window's last week), sex,
/// training_age_band, sport [str], weeks_counted, reps, extensor_events [u32], first_rate,
/// last_rate, rate_slope [f64], risk_weeks [u32], last_risk, risk_slope [f64],
/// trending_event_rate, trending_risk [bool]`; only athletes with data in the window;
/// trending first, then by `rate_slope` (largest first, nulls last), then athlete id.
/// `reps`/`extensor_events` count the weeks that qualified.
#[derive(Debug, Clone)]
pub struct Trending {
    pub table: DataFrame,
    /// `[window_start_us, window_end_us)`: whole ISO weeks (empty when there is no data).
    pub window_start_us: i64,
    pub window_end_us: i64,
    pub risk_available: bool,
}

/// Knobs of [`load_monitoring`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// The last day of the windows (UTC). `None`: the day of the newest rep.
    pub as_of_us: Option<i64>,
    pub filter: CohortFilter,
}

/// Acute:chronic load per athlete — descriptive, never the alarm.
///
/// `table` columns: `athlete_id, gym_id, age_band, sex, training_age_band, sport [str],
/// acute_load_kg, chronic_weekly_load_kg, acute_chronic_ratio [f64], acute_reps,
/// chronic_reps [u32]`, athletes with reps in the 28 days, sorted by gym then athlete.
/// Acute: sum of `load_kg` over `[end - 7 d, end)`; chronic: that sum over
/// `[end - 28 d, end)` divided by 4; the ratio is null when chronic is 0.
#[derive(Debug, Clone)]
pub struct LoadTable {
    pub table: DataFrame,
    /// End (exclusive) of both windows: 00:00 UTC after the as-of day.
    pub window_end_us: i64,
}

// ---------------------------------------------------------------------------------------

/// Sorted dictionary of labels; a label's code is its position.
#[derive(Debug, Default)]
struct Dict {
    labels: Vec<String>,
    index: HashMap<String, u32>,
}

impl Dict {
    fn from_set(set: BTreeSet<String>) -> Dict {
        let labels: Vec<String> = set.into_iter().collect();
        let index = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i as u32))
            .collect();
        Dict { labels, index }
    }

    fn code(&self, label: &str) -> u32 {
        self.index.get(label).copied().unwrap_or(0)
    }
}

/// Every athlete the inputs mention, coded by presented id (sorted).
struct Universe {
    ids: Vec<String>,
    gym: Vec<u32>,
    birth_year: Vec<i32>,
    sex: Vec<u32>,
    tage: Vec<u32>,
    sport: Vec<u32>,
    gyms: Dict,
    sexes: Dict,
    sports: Dict,
    /// Passes the athlete-level part of the filter (sex, sport, training age).
    selected: Vec<bool>,
}

/// Exercise labels in wire order (rank), coded by position.
struct Exercises {
    labels: Vec<String>,
    code_of: HashMap<i32, u32>,
}

struct Prepared {
    universe: Universe,
    /// a, week, start_us, k_gym, k_age, k_sex, k_tage, k_sport, event, load (what trending
    /// and load read).
    reps: DataFrame,
    /// a, week, day_us, k_gym, k_age, k_sex, k_tage, k_sport, p (None without risk).
    risk: Option<DataFrame>,
}

fn series<T, V>(name: &str, values: V) -> Column
where
    Series: NamedFrom<V, T>,
    T: ?Sized,
{
    Series::new(name.into(), values).into_column()
}

/// The athlete and gym ids the rows mention; `first_gym[i]` is the gym (a `gyms` index)
/// of the first row naming `athletes[i]`.
struct Seen<'a> {
    athletes: &'a [String],
    gyms: &'a [String],
    first_gym: Vec<Option<u32>>,
}

impl<'a> Seen<'a> {
    fn new(
        athletes: &'a [String],
        gyms: &'a [String],
        athlete: &[u32],
        gym: &[u32],
    ) -> Result<Seen<'a>, AnalyticsError> {
        let mut first_gym: Vec<Option<u32>> = vec![None; athletes.len()];
        for (a, g) in athlete.iter().zip(gym) {
            let slot = first_gym.get_mut(*a as usize).ok_or_else(|| {
                AnalyticsError::InvalidOptions(format!("athlete code {a} out of range"))
            })?;
            if slot.is_none() {
                *slot = Some(*g);
            }
        }
        Ok(Seen {
            athletes,
            gyms,
            first_gym,
        })
    }
}

/// Every athlete the inputs mention, with the athlete-level part of `filter` applied.
fn universe(
    seen: &Seen<'_>,
    athletes: &[Athlete],
    risk: Option<&RiskFacts>,
    filter: &CohortFilter,
) -> Universe {
    struct Info<'a> {
        gym: &'a str,
        birth_year: i32,
        sex: String,
        tage: usize,
        sport: String,
    }
    let mut infos: BTreeMap<&str, Info<'_>> = BTreeMap::new();
    for a in athletes {
        infos.entry(a.athlete_id.as_str()).or_insert(Info {
            gym: a.gym_id.as_str(),
            birth_year: a.birth_year,
            sex: cohort_label(&a.sex),
            tage: training_age_band(a.training_age_years),
            sport: cohort_label(&a.sport),
        });
    }
    let unknown = |gym| Info {
        gym,
        birth_year: 0,
        sex: "unknown".into(),
        tage: 0,
        sport: "unknown".into(),
    };
    // Athletes seen only in the rows (or risk): their gym from the first row naming them.
    for (i, id) in seen.athletes.iter().enumerate() {
        if !infos.contains_key(id.as_str()) {
            let gym = seen
                .first_gym
                .get(i)
                .copied()
                .flatten()
                .and_then(|g| seen.gyms.get(g as usize))
                .map_or("", String::as_str);
            infos.insert(id.as_str(), unknown(gym));
        }
    }
    if let Some(r) = risk {
        for (id, gym) in r.athlete_id.iter().zip(&r.gym_id) {
            infos
                .entry(id.as_str())
                .or_insert_with(|| unknown(gym.as_str()));
        }
    }
    let mut gym_set: BTreeSet<String> = infos.values().map(|i| i.gym.to_owned()).collect();
    gym_set.extend(seen.gyms.iter().cloned());
    if let Some(r) = risk {
        gym_set.extend(r.gym_id.iter().cloned());
    }
    let gyms = Dict::from_set(gym_set);
    let sexes = Dict::from_set(infos.values().map(|i| i.sex.clone()).collect());
    let sports = Dict::from_set(infos.values().map(|i| i.sport.clone()).collect());
    let norm = |v: &[String]| -> BTreeSet<String> { v.iter().map(|s| cohort_label(s)).collect() };
    let (want_sex, want_sport) = (norm(&filter.sexes), norm(&filter.sports));
    let want_tage: BTreeSet<&str> = filter
        .training_age_bands
        .iter()
        .map(String::as_str)
        .collect();
    let mut u = Universe {
        ids: Vec::with_capacity(infos.len()),
        gym: Vec::with_capacity(infos.len()),
        birth_year: Vec::with_capacity(infos.len()),
        sex: Vec::with_capacity(infos.len()),
        tage: Vec::with_capacity(infos.len()),
        sport: Vec::with_capacity(infos.len()),
        selected: Vec::with_capacity(infos.len()),
        gyms: Dict::default(),
        sexes: Dict::default(),
        sports: Dict::default(),
    };
    for (id, i) in &infos {
        u.ids.push((*id).to_owned());
        u.gym.push(gyms.code(i.gym));
        u.birth_year.push(i.birth_year);
        u.sex.push(sexes.code(&i.sex));
        u.tage.push(i.tage as u32);
        u.sport.push(sports.code(&i.sport));
        u.selected.push(
            (want_sex.is_empty() || want_sex.contains(&i.sex))
                && (want_sport.is_empty() || want_sport.contains(&i.sport))
                && (want_tage.is_empty() || want_tage.contains(TRAINING_AGE_BANDS[i.tage])),
        );
    }
    u.gyms = gyms;
    u.sexes = sexes;
    u.sports = sports;
    u
}

/// The exercises present, in wire order (rank), coded by position.
fn exercises_of(present: BTreeSet<i32>) -> Exercises {
    let mut keyed: Vec<((u32, String), i32)> = present
        .into_iter()
        .map(|c| {
            let (rank, label) = exercise_key(c);
            ((rank, label.into_owned()), c)
        })
        .collect();
    keyed.sort();
    Exercises {
        labels: keyed.iter().map(|((_, l), _)| l.clone()).collect(),
        code_of: keyed
            .iter()
            .enumerate()
            .map(|(i, (_, c))| (*c, i as u32))
            .collect(),
    }
}

/// Per-row coding shared by the preparers: universe codes of the rows' athletes and gyms,
/// the filter's row-level conditions (exercise, age band) and the ISO year of a week.
struct Coder<'a> {
    u: &'a Universe,
    to_u: Vec<u32>,
    gym_to_u: Vec<u32>,
    want_ex: BTreeSet<i32>,
    want_age: BTreeSet<&'a str>,
    years: HashMap<i64, i32>,
}

impl<'a> Coder<'a> {
    fn new(u: &'a Universe, seen: &Seen<'_>, filter: &'a CohortFilter) -> Coder<'a> {
        let code_of_id: HashMap<&str, u32> = u
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as u32))
            .collect();
        Coder {
            u,
            to_u: seen
                .athletes
                .iter()
                .map(|id| code_of_id.get(id.as_str()).copied().unwrap_or(0))
                .collect(),
            gym_to_u: seen.gyms.iter().map(|g| u.gyms.code(g)).collect(),
            want_ex: filter.exercises.iter().copied().collect(),
            want_age: filter.age_bands.iter().map(String::as_str).collect(),
            years: HashMap::new(),
        }
    }

    /// The universe code of the rows' athlete `a` and its age band in `week`, or `None`
    /// when the filter drops the row (athlete level, exercise `ex`, age band).
    fn keep(&mut self, a: u32, week: i64, ex: i32) -> Option<(u32, usize)> {
        let code = self.to_u.get(a as usize).copied().unwrap_or(0);
        let ci = code as usize;
        if !self.u.selected[ci] {
            return None;
        }
        if !self.want_ex.is_empty() && !self.want_ex.contains(&ex) {
            return None;
        }
        let year = *self.years.entry(week).or_insert_with(|| iso_week(week).0);
        let age = age_band(self.u.birth_year[ci], year);
        if !self.want_age.is_empty() && !self.want_age.contains(AGE_BANDS[age]) {
            return None;
        }
        Some((code, age))
    }

    fn gym(&self, g: u32) -> u32 {
        self.gym_to_u.get(g as usize).copied().unwrap_or(0)
    }
}

/// Every column of a columnar input has as many values as its reference column.
fn same_lengths(
    what: &str,
    (reference, n): (&str, usize),
    columns: &[(&str, usize)],
) -> Result<(), AnalyticsError> {
    match columns.iter().find(|(_, len)| *len != n) {
        Some((name, len)) => Err(AnalyticsError::InvalidOptions(format!(
            "{what} column {name} has {len} values, {reference} has {n}"
        ))),
        None => Ok(()),
    }
}

fn check_risk(risk: Option<&RiskFacts>) -> Result<(), AnalyticsError> {
    if let Some(r) = risk {
        let m = r.athlete_id.len();
        if r.gym_id.len() != m || r.day_us.len() != m || r.probability.len() != m {
            return Err(AnalyticsError::InvalidOptions(
                "risk facts columns differ in length".into(),
            ));
        }
    }
    Ok(())
}

/// The risk rows of the universe's selected athletes (not filtered by exercise).
fn risk_frame(
    risk: Option<&RiskFacts>,
    u: &Universe,
    filter: &CohortFilter,
) -> Result<Option<DataFrame>, AnalyticsError> {
    let Some(r) = risk else {
        return Ok(None);
    };
    let code_of_id: HashMap<&str, u32> = u
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let want_age: BTreeSet<&str> = filter.age_bands.iter().map(String::as_str).collect();
    let mut years: HashMap<i64, i32> = HashMap::new();
    let m = r.athlete_id.len();
    let mut cols = RiskCols::with_capacity(m);
    for i in 0..m {
        let Some(&a) = code_of_id.get(r.athlete_id[i].as_str()) else {
            continue;
        };
        let ai = a as usize;
        if !u.selected[ai] || !r.probability[i].is_finite() {
            continue;
        }
        let day = day_start_us(r.day_us[i]);
        let week = week_start_us(day);
        let year = *years.entry(week).or_insert_with(|| iso_week(week).0);
        let age = age_band(u.birth_year[ai], year);
        if !want_age.is_empty() && !want_age.contains(AGE_BANDS[age]) {
            continue;
        }
        cols.keys.push(u, a, week, u.gyms.code(&r.gym_id[i]), age);
        cols.day.push(day);
        cols.p.push(r.probability[i]);
    }
    Ok(Some(cols.frame()?))
}

fn prepare(input: &PopulationInput<'_>, filter: &CohortFilter) -> Result<Prepared, AnalyticsError> {
    filter.validate()?;
    let facts = input.reps;
    let n = facts.len();
    same_lengths(
        "rep facts",
        ("start_us", n),
        &[
            ("athlete", facts.athlete.len()),
            ("gym", facts.gym.len()),
            ("end_us", facts.end_us.len()),
            ("exercise", facts.exercise.len()),
            ("extensor_event", facts.extensor_event.len()),
            ("load_kg", facts.load_kg.len()),
            (
                "peak_lumbar_flexion_deg",
                facts.peak_lumbar_flexion_deg.len(),
            ),
            ("fatigue_score", facts.fatigue_score.len()),
            ("stability_deficit", facts.stability_deficit.len()),
            ("damage", facts.damage.len()),
        ],
    )?;
    check_risk(input.risk)?;
    let seen = Seen::new(&facts.athletes, &facts.gyms, &facts.athlete, &facts.gym)?;
    let u = universe(&seen, input.athletes, input.risk, filter);
    let mut coder = Coder::new(&u, &seen, filter);
    let mut c = RepCols::with_capacity(n);
    for i in 0..n {
        let week = week_start_us(facts.start_us[i]);
        let Some((a, age)) = coder.keep(facts.athlete[i], week, facts.exercise[i]) else {
            continue;
        };
        c.keys.push(&u, a, week, coder.gym(facts.gym[i]), age);
        c.start.push(facts.start_us[i]);
        c.event.push(facts.extensor_event[i]);
        c.load.push(f64::from(facts.load_kg[i]));
    }
    let reps = c.frame()?;
    let risk = risk_frame(input.risk, &u, filter)?;
    Ok(Prepared {
        universe: u,
        reps,
        risk,
    })
}

/// The key columns of every population frame row: the universe athlete code, the week,
/// and the gym and cohort codes (`a, week, k_gym, k_age, k_sex, k_tage, k_sport`).
#[derive(Default)]
struct KeyCols {
    a: Vec<u32>,
    week: Vec<i64>,
    gym: Vec<u32>,
    age: Vec<u32>,
    sex: Vec<u32>,
    tage: Vec<u32>,
    sport: Vec<u32>,
}

impl KeyCols {
    fn with_capacity(n: usize) -> Self {
        Self {
            a: Vec::with_capacity(n),
            week: Vec::with_capacity(n),
            gym: Vec::with_capacity(n),
            age: Vec::with_capacity(n),
            sex: Vec::with_capacity(n),
            tage: Vec::with_capacity(n),
            sport: Vec::with_capacity(n),
        }
    }

    /// One row of athlete `a` (a universe code; its cohort codes come from `u`).
    fn push(&mut self, u: &Universe, a: u32, week: i64, gym: u32, age: usize) {
        let ai = a as usize;
        self.a.push(a);
        self.week.push(week);
        self.gym.push(gym);
        self.age.push(age as u32);
        self.sex.push(u.sex[ai]);
        self.tage.push(u.tage[ai]);
        self.sport.push(u.sport[ai]);
    }

    /// The frame of these keys and `more` columns.
    fn frame(self, more: Vec<Column>, what: &'static str) -> Result<DataFrame, AnalyticsError> {
        let n = self.a.len();
        let mut cols = vec![
            series("a", self.a),
            series("week", self.week),
            series("k_gym", self.gym),
            series("k_age", self.age),
            series("k_sex", self.sex),
            series("k_tage", self.tage),
            series("k_sport", self.sport),
        ];
        cols.extend(more);
        DataFrame::new(n, cols).ctx(what)
    }
}

/// Rep rows: keys, `start_us, event, load`.
#[derive(Default)]
struct RepCols {
    keys: KeyCols,
    start: Vec<i64>,
    event: Vec<bool>,
    load: Vec<f64>,
}

impl RepCols {
    fn with_capacity(n: usize) -> Self {
        Self {
            keys: KeyCols::with_capacity(n),
            start: Vec::with_capacity(n),
            event: Vec::with_capacity(n),
            load: Vec::with_capacity(n),
        }
    }

    fn frame(self) -> Result<DataFrame, AnalyticsError> {
        self.keys.frame(
            vec![
                series("start_us", self.start),
                series("event", self.event),
                series("load", self.load),
            ],
            "building the population rep frame",
        )
    }
}

/// Risk rows: keys, `day_us, p`.
#[derive(Default)]
struct RiskCols {
    keys: KeyCols,
    day: Vec<i64>,
    p: Vec<f64>,
}

impl RiskCols {
    fn with_capacity(n: usize) -> Self {
        Self {
            keys: KeyCols::with_capacity(n),
            day: Vec::with_capacity(n),
            p: Vec::with_capacity(n),
        }
    }

    fn frame(self) -> Result<DataFrame, AnalyticsError> {
        self.keys.frame(
            vec![series("day_us", self.day), series("p", self.p)],
            "building the population risk frame",
        )
    }
}

fn q(e: Expr, p: f64) -> Expr {
    e.quantile(lit(p), QuantileMethod::Linear)
}

fn u32c(e: Expr, name: &str) -> Expr {
    e.cast(DataType::UInt32).alias(name)
}

fn distribution(source: &str, prefix: &str) -> [Expr; 4] {
    [
        col(source).median().alias(format!("{prefix}_median")),
        q(col(source), 0.25).alias(format!("{prefix}_q1")),
        q(col(source), 0.75).alias(format!("{prefix}_q3")),
        q(col(source), 0.9).alias(format!("{prefix}_p90")),
    ]
}

fn null_f64(name: &str) -> Expr {
    lit(NULL).cast(DataType::Float64).alias(name)
}

fn null_str(name: &str) -> Expr {
    lit(NULL).cast(DataType::String).alias(name)
}

/// `num * 100 / den` for integer columns, null when `den` is 0.
fn rate_per_100(num: &str, den: &str) -> Expr {
    when(col(den).gt(lit(0u32)))
        .then(col(num).cast(DataType::Float64) * lit(100.0) / col(den).cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

fn left_join(l: LazyFrame, r: LazyFrame, keys: &[Expr]) -> LazyFrame {
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    l.join(r, keys, keys, args)
}

/// Replaces a `u32` code column by the labels it indexes (a new `String` column `name`).
fn decode(
    df: &mut DataFrame,
    key: &str,
    name: &str,
    labels: &[String],
) -> Result<(), AnalyticsError> {
    let codes = u64s(df, key)?;
    let out: Vec<Option<&str>> = codes
        .iter()
        .map(|c| labels.get(*c as usize).map(String::as_str))
        .collect();
    df.with_column(series(name, out))
        .ctx("decoding a key column")?;
    Ok(())
}

/// `week_start` (Datetime) and `iso_week` from the `week` µs column.
fn decode_weeks(df: &mut DataFrame) -> Result<(), AnalyticsError> {
    let weeks = crate::render::i64s(df, "week")?;
    let mut cache: HashMap<i64, String> = HashMap::new();
    let labels: Vec<Option<String>> = weeks
        .iter()
        .map(|w| w.map(|w| cache.entry(w).or_insert_with(|| iso_week(w).1).clone()))
        .collect();
    df.with_column(series("iso_week", labels))
        .ctx("decoding weeks")?;
    Ok(())
}

fn labels_of(u: &Universe, ex: &Exercises, d: Dimension) -> Vec<String> {
    match d {
        Dimension::Gym => u.gyms.labels.clone(),
        Dimension::AgeBand => AGE_BANDS.iter().map(|s| (*s).to_owned()).collect(),
        Dimension::Sex => u.sexes.labels.clone(),
        Dimension::TrainingAgeBand => TRAINING_AGE_BANDS.iter().map(|s| (*s).to_owned()).collect(),
        Dimension::Sport => u.sports.labels.clone(),
        Dimension::Exercise => ex.labels.clone(),
    }
}

/// The buckets population trends read, one frame row per kept `(athlete, gym, week,
/// exercise)` bucket, and their values.
struct PreparedBuckets {
    universe: Universe,
    exercises: Exercises,
    /// a, week, k_gym, k_age, k_sex, k_tage, k_sport, k_ex, reps, events, damage_n.
    buckets: DataFrame,
    /// For each frame row, the bucket's index in the input (its values).
    source: Vec<usize>,
    risk: Option<DataFrame>,
}

fn prepare_buckets(
    input: &TrendsInput<'_>,
    filter: &CohortFilter,
) -> Result<PreparedBuckets, AnalyticsError> {
    filter.validate()?;
    let b = input.buckets;
    let n = b.len();
    same_lengths(
        "score buckets",
        ("week_us", n),
        &[
            ("athlete", b.athlete.len()),
            ("gym", b.gym.len()),
            ("exercise", b.exercise.len()),
            ("reps", b.reps.len()),
            ("events", b.events.len()),
            ("damage_sum_nano", b.damage_sum_nano.len()),
        ],
    )?;
    let values = b.fatigue.len();
    if b.offsets.len() != n + 1
        || b.stability.len() != values
        || b.offsets.first() != Some(&0)
        || b.offsets.last().map(|v| *v as usize) != Some(values)
        || b.offsets.windows(2).any(|w| w[0] > w[1])
    {
        return Err(AnalyticsError::InvalidOptions(
            "score buckets offsets do not index the values".into(),
        ));
    }
    check_risk(input.risk)?;
    let seen = Seen::new(&b.athletes, &b.gyms, &b.athlete, &b.gym)?;
    let u = universe(&seen, input.athletes, input.risk, filter);
    let exercises = exercises_of(b.exercise.iter().copied().collect());
    let mut coder = Coder::new(&u, &seen, filter);
    let mut c = BucketCols::default();
    let mut source = Vec::with_capacity(n);
    for i in 0..n {
        let week = b.week_us[i];
        let Some((a, age)) = coder.keep(b.athlete[i], week, b.exercise[i]) else {
            continue;
        };
        source.push(i);
        c.keys.push(&u, a, week, coder.gym(b.gym[i]), age);
        c.ex.push(exercises.code_of.get(&b.exercise[i]).copied().unwrap_or(0));
        c.reps.push(b.reps[i]);
        c.events.push(b.events[i]);
        c.damage_n.push(b.damage_sum_nano[i]);
    }
    let buckets = c.frame()?;
    let risk = risk_frame(input.risk, &u, filter)?;
    Ok(PreparedBuckets {
        universe: u,
        exercises,
        buckets,
        source,
        risk,
    })
}

/// Bucket rows: keys, `k_ex, reps, events, damage_n`.
#[derive(Default)]
struct BucketCols {
    keys: KeyCols,
    ex: Vec<u32>,
    reps: Vec<u32>,
    events: Vec<u32>,
    damage_n: Vec<i64>,
}

impl BucketCols {
    fn frame(self) -> Result<DataFrame, AnalyticsError> {
        self.keys.frame(
            vec![
                series("k_ex", self.ex),
                series("reps", self.reps),
                series("events", self.events),
                series("damage_n", self.damage_n),
            ],
            "building the population bucket frame",
        )
    }
}

/// The fatigue and stability distributions per group: the groups' keys (`week` and the
/// dimension codes) with their quantiles. Every value of a group's buckets enters once,
/// so the quantiles are those of the group's reps, exactly.
fn distributions(
    p: &PreparedBuckets,
    input: &ScoreBuckets,
    key_names: &[String],
) -> Result<DataFrame, AnalyticsError> {
    let cols: Vec<Vec<i64>> = key_names
        .iter()
        .map(|k| {
            crate::render::i64s(&p.buckets, k)
                .map(|v| v.into_iter().map(|x| x.unwrap_or(i64::MIN)).collect())
        })
        .collect::<Result<_, _>>()?;
    // Group ids in first-seen order; the keys of each group.
    let mut gid_of: HashMap<Vec<i64>, u32> = HashMap::new();
    let mut group_keys: Vec<Vec<i64>> = vec![Vec::new(); key_names.len()];
    let values: usize = p.source.iter().map(|i| input.values(*i).len()).sum();
    let mut gid = Vec::with_capacity(values);
    let mut fatigue = Vec::with_capacity(values);
    let mut stability = Vec::with_capacity(values);
    for (row, src) in p.source.iter().enumerate() {
        let key: Vec<i64> = cols.iter().map(|c| c[row]).collect();
        let next = gid_of.len() as u32;
        let g = *gid_of.entry(key).or_insert_with_key(|k| {
            for (dst, v) in group_keys.iter_mut().zip(k) {
                dst.push(*v);
            }
            next
        });
        let r = input.values(*src);
        gid.extend(std::iter::repeat_n(g, r.len()));
        fatigue.extend(input.fatigue[r.clone()].iter().map(|v| f64::from(*v)));
        stability.extend(input.stability[r].iter().map(|v| f64::from(*v)));
    }
    let values = DataFrame::new(
        gid.len(),
        vec![
            series("gid", gid),
            series("fatigue", fatigue),
            series("stability", stability),
        ],
    )
    .ctx("building the score values frame")?;
    let mut key_cols = vec![series("gid", (0..gid_of.len() as u32).collect::<Vec<_>>())];
    for (name, v) in key_names.iter().zip(group_keys) {
        let c = series(name, v);
        // Keys keep their dtype (week i64, codes u32) so the joins match.
        let dtype = p
            .buckets
            .column(name)
            .ctx("reading a key column")?
            .dtype()
            .clone();
        key_cols.push(c.cast(&dtype).ctx("casting a key column")?);
    }
    let keys = DataFrame::new(gid_of.len(), key_cols).ctx("building the group keys")?;
    let mut aggs: Vec<Expr> = Vec::new();
    aggs.extend(distribution("fatigue", "fatigue"));
    aggs.extend(distribution("stability", "stability"));
    let q = values.lazy().group_by([col("gid")]).agg(aggs);
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    keys.lazy()
        .join(q, [col("gid")], [col("gid")], args)
        .collect()
        .ctx("score distributions")?
        .drop("gid")
        .ctx("score distributions")
}

/// An `i64` column of billionths as `f64` units, divided here (exactly `n / 1e9`, as
/// `RepTotals` derives it; polars may multiply by the reciprocal instead).
fn nano_to_f64(df: &DataFrame, name: &str) -> Result<Vec<f64>, AnalyticsError> {
    Ok(crate::render::i64s(df, name)?
        .into_iter()
        .map(|v| v.unwrap_or(0) as f64 / DAMAGE_SCALE)
        .collect())
}

/// Weekly figures of the population, by the requested dimensions.
pub fn population_trends(
    input: &TrendsInput<'_>,
    opts: &TrendOptions,
) -> Result<Trends, AnalyticsError> {
    let p = prepare_buckets(input, &opts.filter)?;
    let dims: Vec<Dimension> = opts
        .group_by
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut keys = vec![col("week")];
    keys.extend(dims.iter().map(|d| col(d.key())));
    let key_names: Vec<String> = std::iter::once("week".to_owned())
        .chain(dims.iter().map(|d| d.key().to_owned()))
        .collect();
    let mut with_athlete = keys.clone();
    with_athlete.push(col("a"));

    // Counts and damage: exact integer sums of the buckets.
    let stats = p.buckets.clone().lazy().group_by(keys.clone()).agg([
        u32c(col("a").n_unique(), "athletes"),
        u32c(col("reps").cast(DataType::UInt64).sum(), "reps"),
        u32c(
            col("events").cast(DataType::UInt64).sum(),
            "extensor_events",
        ),
        col("damage_n").sum().alias("damage_n"),
    ]);
    let mut per_athlete = p
        .buckets
        .clone()
        .lazy()
        .group_by(with_athlete)
        .agg([col("damage_n").sum()])
        .collect()
        .ctx("damage per athlete")?;
    let d = nano_to_f64(&per_athlete, "damage_n")?;
    per_athlete
        .with_column(series("d", d))
        .ctx("damage per athlete")?;
    let spread = per_athlete.lazy().group_by(keys.clone()).agg([
        col("d").median().alias("damage_per_athlete_median"),
        q(col("d"), 0.9).alias("damage_per_athlete_p90"),
    ]);
    let dist = distributions(&p, input.buckets, &key_names)?;
    let mut lf = left_join(stats, dist.lazy(), &keys);
    lf = left_join(lf, spread, &keys);
    let risk_joined = match &p.risk {
        Some(r) if !dims.contains(&Dimension::Exercise) => {
            let risk = r.clone().lazy().group_by(keys.clone()).agg([
                u32c(len(), "risk_athlete_days"),
                col("p").median().alias("risk_median"),
                q(col("p"), 0.9).alias("risk_p90"),
                col("p").max().alias("risk_max"),
            ]);
            lf = left_join(lf, risk, &keys);
            true
        }
        _ => false,
    };
    let mut df = lf
        .sort(key_names, SortMultipleOptions::default())
        .collect()
        .ctx("population trends")?;
    let total = nano_to_f64(&df, "damage_n")?;
    df.with_column(series("damage_total", total))
        .ctx("damage totals")?;
    decode_weeks(&mut df)?;
    for d in &dims {
        decode(
            &mut df,
            d.key(),
            d.column(),
            &labels_of(&p.universe, &p.exercises, *d),
        )?;
    }

    let mut select = vec![
        col("week")
            .cast(crate::tables::datetime_us())
            .alias("week_start"),
        col("iso_week"),
    ];
    for d in Dimension::ALL {
        select.push(if dims.contains(&d) {
            col(d.column())
        } else {
            null_str(d.column())
        });
    }
    select.extend([
        col("athletes"),
        col("reps"),
        col("extensor_events"),
        rate_per_100("extensor_events", "reps").alias("events_per_100_reps"),
    ]);
    for pre in ["fatigue", "stability"] {
        select.extend([
            col(format!("{pre}_median")),
            col(format!("{pre}_q1")),
            col(format!("{pre}_q3")),
            (col(format!("{pre}_q3")) - col(format!("{pre}_q1"))).alias(format!("{pre}_iqr")),
            col(format!("{pre}_p90")),
        ]);
    }
    select.extend([
        col("damage_total"),
        col("damage_per_athlete_median"),
        col("damage_per_athlete_p90"),
    ]);
    if risk_joined {
        select.extend([
            col("risk_athlete_days").fill_null(lit(0u32)),
            col("risk_median"),
            col("risk_p90"),
            col("risk_max"),
        ]);
    } else {
        select.extend([
            lit(0u32).alias("risk_athlete_days"),
            null_f64("risk_median"),
            null_f64("risk_p90"),
            null_f64("risk_max"),
        ]);
    }
    let table = df
        .lazy()
        .select(select)
        .collect()
        .ctx("population trends table")?;
    Ok(Trends {
        table,
        group_by: dims,
        risk_available: p.risk.is_some(),
    })
}

/// The universe as a frame (`a`, athlete and cohort labels), the age band as of `year`.
fn universe_frame(u: &Universe, year: i32) -> Result<DataFrame, AnalyticsError> {
    let n = u.ids.len();
    let lab = |d: &Dict, codes: &[u32]| -> Vec<String> {
        codes
            .iter()
            .map(|c| d.labels.get(*c as usize).cloned().unwrap_or_default())
            .collect()
    };
    DataFrame::new(
        n,
        vec![
            series("a", (0..n as u32).collect::<Vec<_>>()),
            series("athlete_id", u.ids.clone()),
            series("gym_id", lab(&u.gyms, &u.gym)),
            series(
                "age_band",
                u.birth_year
                    .iter()
                    .map(|b| AGE_BANDS[age_band(*b, year)])
                    .collect::<Vec<_>>(),
            ),
            series("sex", lab(&u.sexes, &u.sex)),
            series(
                "training_age_band",
                u.tage
                    .iter()
                    .map(|t| TRAINING_AGE_BANDS[*t as usize])
                    .collect::<Vec<_>>(),
            ),
            series("sport", lab(&u.sports, &u.sport)),
        ],
    )
    .ctx("building the athlete frame")
}

/// One athlete's weekly points `(x = week index in the window, y)` fitted by least squares.
#[derive(Debug, Default)]
struct Fit {
    n: u32,
    reps: u64,
    events: u64,
    first: Option<f64>,
    last: Option<f64>,
    /// Σx, Σy, Σxy, Σx² in week order.
    sums: [f64; 4],
}

impl Fit {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1;
        self.first.get_or_insert(y);
        self.last = Some(y);
        self.sums[0] += x;
        self.sums[1] += y;
        self.sums[2] += x * y;
        self.sums[3] += x * x;
    }

    /// `(n Σxy − Σx Σy) / (n Σx² − (Σx)²)`; `None` with fewer than 2 distinct weeks.
    fn slope(&self) -> Option<f64> {
        let n = f64::from(self.n);
        let [sx, sy, sxy, sxx] = self.sums;
        let den = n * sxx - sx * sx;
        (self.n >= 2 && den != 0.0).then(|| (n * sxy - sx * sy) / den)
    }
}

/// The reps a trending computation reads for `as_of_us` and `weeks`: `[start, end)` of
/// whole ISO weeks (callers read only this window from the store).
pub fn trending_window(as_of_us: i64, weeks: u32) -> (i64, i64) {
    let last = week_start_us(as_of_us);
    (last - i64::from(weeks.max(1) - 1) * WEEK_US, last + WEEK_US)
}

/// The reps a load computation reads for `as_of_us`: the 28 days before the end of the
/// as-of day.
pub fn load_window(as_of_us: i64) -> (i64, i64) {
    let end = day_start_us(as_of_us) + DAY_US;
    (end - 28 * DAY_US, end)
}

/// Athletes whose extensor-event rate or risk rose over the window (method: see
/// [`TrendingOptions`] and the proto).
pub fn trending_athletes(
    input: &PopulationInput<'_>,
    opts: &TrendingOptions,
) -> Result<Trending, AnalyticsError> {
    opts.validate()?;
    let p = prepare(input, &opts.filter)?;
    let newest = crate::render::i64s(&p.reps, "start_us")?
        .into_iter()
        .flatten()
        .max()
        .or_else(|| {
            p.risk
                .as_ref()
                .and_then(|r| crate::render::i64s(r, "day_us").ok())
                .and_then(|d| d.into_iter().flatten().max())
        });
    let Some(as_of) = opts.as_of_us.or(newest) else {
        return Ok(Trending {
            table: empty_trending()?,
            window_start_us: 0,
            window_end_us: 0,
            risk_available: p.risk.is_some(),
        });
    };
    let last_week = week_start_us(as_of);
    let start = last_week - i64::from(opts.weeks - 1) * WEEK_US;
    let end = last_week + WEEK_US;
    let in_window = col("week").gt_eq(lit(start)).and(col("week").lt(lit(end)));
    let x_of = |week: i64| ((week - start) / WEEK_US) as f64;

    // Weekly counts (exact integers) per athlete, then the fits in Rust, week order.
    let weekly = p
        .reps
        .clone()
        .lazy()
        .filter(in_window.clone())
        .group_by([col("a"), col("week")])
        .agg([u32c(len(), "reps"), u32c(col("event").sum(), "events")])
        .sort(["a", "week"], SortMultipleOptions::default())
        .collect()
        .ctx("trending: weekly counts")?;
    let (wa, ww) = (u64s(&weekly, "a")?, crate::render::i64s(&weekly, "week")?);
    let (wr, we) = (u64s(&weekly, "reps")?, u64s(&weekly, "events")?);
    let mut rate_fits: BTreeMap<u32, Fit> = BTreeMap::new();
    for i in 0..weekly.height() {
        let (a, reps, events) = (wa[i] as u32, wr[i], we[i]);
        let Some(week) = ww[i] else { continue };
        if reps < u64::from(opts.min_reps_per_week) {
            continue;
        }
        let fit = rate_fits.entry(a).or_default();
        fit.reps += reps;
        fit.events += events;
        fit.add(x_of(week), events as f64 * 100.0 / reps as f64);
    }
    // Weekly mean risk per athlete (sums in row order, see `sums`), then the fits.
    let mut risk_fits: BTreeMap<u32, Fit> = BTreeMap::new();
    if let Some(r) = &p.risk {
        let in_win = r
            .clone()
            .lazy()
            .filter(in_window)
            .with_columns([lit(1.0).alias("one")])
            .collect()
            .ctx("trending: risk window")?;
        let mut weekly = sum_by(&in_win, &["a", "week"], &[("p", "p_sum"), ("one", "days")])?;
        weekly = weekly
            .lazy()
            .sort(["a", "week"], SortMultipleOptions::default())
            .collect()
            .ctx("trending: weekly risk")?;
        let (ra, rw) = (u64s(&weekly, "a")?, crate::render::i64s(&weekly, "week")?);
        let (rs, rd) = (
            crate::render::f64s(&weekly, "p_sum")?,
            crate::render::f64s(&weekly, "days")?,
        );
        for i in 0..weekly.height() {
            let (Some(week), Some(sum), Some(days)) = (rw[i], rs[i], rd[i]) else {
                continue;
            };
            if days > 0.0 {
                risk_fits
                    .entry(ra[i] as u32)
                    .or_default()
                    .add(x_of(week), sum / days);
            }
        }
    }
    let codes: Vec<u32> = rate_fits
        .keys()
        .chain(risk_fits.keys())
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let none = Fit::default();
    let fit_col =
        |fits: &BTreeMap<u32, Fit>, f: &dyn Fn(&Fit) -> Option<f64>| -> Vec<Option<f64>> {
            codes
                .iter()
                .map(|a| f(fits.get(a).unwrap_or(&none)))
                .collect()
        };
    let count_col = |fits: &BTreeMap<u32, Fit>, f: &dyn Fn(&Fit) -> u64| -> Vec<u32> {
        codes
            .iter()
            .map(|a| u32::try_from(f(fits.get(a).unwrap_or(&none))).unwrap_or(u32::MAX))
            .collect()
    };
    let stats = DataFrame::new(
        codes.len(),
        vec![
            series("a", codes.clone()),
            series("weeks_counted", count_col(&rate_fits, &|f| u64::from(f.n))),
            series("reps", count_col(&rate_fits, &|f| f.reps)),
            series("extensor_events", count_col(&rate_fits, &|f| f.events)),
            series("first_rate", fit_col(&rate_fits, &|f| f.first)),
            series("last_rate", fit_col(&rate_fits, &|f| f.last)),
            series("rate_slope", fit_col(&rate_fits, &Fit::slope)),
            series("risk_weeks", count_col(&risk_fits, &|f| u64::from(f.n))),
            series("last_risk", fit_col(&risk_fits, &|f| f.last)),
            series("risk_slope", fit_col(&risk_fits, &Fit::slope)),
        ],
    )
    .ctx("trending: fits")?;

    let trending_rate = col("weeks_counted")
        .gt_eq(lit(opts.min_weeks))
        .and(col("rate_slope").gt_eq(lit(opts.min_rate_slope)))
        .fill_null(lit(false));
    let trending_risk = col("risk_weeks")
        .gt_eq(lit(opts.min_weeks))
        .and(col("risk_slope").gt_eq(lit(opts.min_risk_slope)))
        .fill_null(lit(false));
    let mut lf = universe_frame(&p.universe, iso_week(last_week).0)?
        .lazy()
        .join(
            stats.lazy(),
            [col("a")],
            [col("a")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_columns([
            trending_rate.alias("trending_event_rate"),
            trending_risk.alias("trending_risk"),
        ])
        .with_columns([col("trending_event_rate")
            .or(col("trending_risk"))
            .alias("trending")]);
    if !opts.include_all {
        lf = lf.filter(col("trending"));
    }
    let table = lf
        .sort(
            ["trending", "rate_slope", "athlete_id"],
            SortMultipleOptions::default()
                .with_order_descending_multi([true, true, false])
                .with_nulls_last(true),
        )
        .select(TRENDING_COLUMNS.iter().map(|c| col(*c)).collect::<Vec<_>>())
        .collect()
        .ctx("trending athletes")?;
    Ok(Trending {
        table,
        window_start_us: start,
        window_end_us: end,
        risk_available: p.risk.is_some(),
    })
}

const TRENDING_COLUMNS: [&str; 17] = [
    "athlete_id",
    "gym_id",
    "age_band",
    "sex",
    "training_age_band",
    "sport",
    "weeks_counted",
    "reps",
    "extensor_events",
    "first_rate",
    "last_rate",
    "rate_slope",
    "risk_weeks",
    "last_risk",
    "risk_slope",
    "trending_event_rate",
    "trending_risk",
];

fn empty_trending() -> Result<DataFrame, AnalyticsError> {
    let s = |n: &str| series(n, Vec::<String>::new());
    let u = |n: &str| series(n, Vec::<u32>::new());
    let f = |n: &str| series(n, Vec::<f64>::new());
    let b = |n: &str| series(n, Vec::<bool>::new());
    DataFrame::new(
        0,
        vec![
            s("athlete_id"),
            s("gym_id"),
            s("age_band"),
            s("sex"),
            s("training_age_band"),
            s("sport"),
            u("weeks_counted"),
            u("reps"),
            u("extensor_events"),
            f("first_rate"),
            f("last_rate"),
            f("rate_slope"),
            u("risk_weeks"),
            f("last_risk"),
            f("risk_slope"),
            b("trending_event_rate"),
            b("trending_risk"),
        ],
    )
    .ctx("empty trending table")
}

/// Acute:chronic training load per athlete as of a day (descriptive; see [`LoadTable`]).
pub fn load_monitoring(
    input: &PopulationInput<'_>,
    opts: &LoadOptions,
) -> Result<LoadTable, AnalyticsError> {
    let p = prepare(input, &opts.filter)?;
    let newest = crate::render::i64s(&p.reps, "start_us")?
        .into_iter()
        .flatten()
        .max();
    let as_of = opts.as_of_us.or(newest).unwrap_or(0);
    let end = day_start_us(as_of) + DAY_US;
    let (acute_from, chronic_from) = (end - 7 * DAY_US, end - 28 * DAY_US);
    // Filtering keeps the row order; the sums run in it (see `sums`).
    let window = p
        .reps
        .clone()
        .lazy()
        .filter(
            col("start_us")
                .gt_eq(lit(chronic_from))
                .and(col("start_us").lt(lit(end))),
        )
        .with_columns([
            when(col("start_us").gt_eq(lit(acute_from)))
                .then(col("load"))
                .otherwise(lit(0.0))
                .alias("acute_load"),
            col("start_us")
                .gt_eq(lit(acute_from))
                .cast(DataType::Float64)
                .alias("acute_one"),
            lit(1.0).alias("one"),
        ])
        .collect()
        .ctx("load monitoring window")?;
    let stats = sum_by(
        &window,
        &["a"],
        &[
            ("acute_load", "acute_load_kg"),
            ("load", "chronic_load"),
            ("acute_one", "acute_n"),
            ("one", "chronic_n"),
        ],
    )?;
    let chronic = (col("chronic_load") / lit(4.0)).alias("chronic_weekly_load_kg");
    let table = universe_frame(&p.universe, iso_week(week_start_us(as_of)).0)?
        .lazy()
        .join(
            stats.lazy(),
            [col("a")],
            [col("a")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_columns([chronic])
        .select([
            col("athlete_id"),
            col("gym_id"),
            col("age_band"),
            col("sex"),
            col("training_age_band"),
            col("sport"),
            col("acute_load_kg"),
            col("chronic_weekly_load_kg"),
            when(col("chronic_weekly_load_kg").gt(lit(0.0)))
                .then(col("acute_load_kg") / col("chronic_weekly_load_kg"))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("acute_chronic_ratio"),
            u32c(col("acute_n"), "acute_reps"),
            u32c(col("chronic_n"), "chronic_reps"),
        ])
        .sort(["gym_id", "athlete_id"], SortMultipleOptions::default())
        .collect()
        .ctx("load monitoring")?;
    Ok(LoadTable {
        table,
        window_end_us: end,
    })
}
