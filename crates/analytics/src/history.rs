//! One athlete's history: sessions, sets and ISO weeks from their reps (as the store
//! presented them), with the daily risk when stored.
//!
//! Invariants:
//! - Reps are put in `(start_us, rep_id)` order first, so every table (and every float
//!   sum) is independent of the input order.
//! - Tables are sorted: sessions and sets by start then id, weeks by week.
//! - The weekly acute:chronic ratio is descriptive: this week's load (sum of `load_kg`)
//!   over the mean of this and the three weeks before, weeks without reps counting 0;
//!   null when that mean is 0.
//! - Reps without a set id belong to no set (they still count in sessions and weeks).

use std::collections::{BTreeMap, HashMap};

use liftguard_proto::v1::{Athlete, RepRecord};
use liftguard_store::RiskFacts;
use polars::prelude::*;

use crate::render::{f64s, i64s, strs, u64s};
use crate::rows::exercise_key;
use crate::sums::sum_by;
use crate::time::{WEEK_US, iso_week, week_start_us};
use crate::{AnalyticsError, PolarsContext};

/// What [`athlete_history`] reads.
#[derive(Debug, Clone, Copy)]
pub struct HistoryInput<'a> {
    pub athlete: &'a Athlete,
    pub reps: &'a [RepRecord],
    /// The athlete's daily risk (rows of other athletes are ignored); `None` when the
    /// deployment stores no risk yet.
    pub risk: Option<&'a RiskFacts>,
}

/// The athlete's tables.
///
/// - `sessions`: `session_id [str], start_us, end_us [i64], reps, sets, extensor_events
///   [u32], events_per_100_reps, peak_lumbar_flexion_max_deg, mean_fatigue, max_fatigue,
///   max_stability_deficit, damage_total [f64]`.
/// - `sets`: `set_id, session_id, exercise [str], load_kg [f64], start_us, end_us [i64],
///   reps, extensor_events [u32], max_fatigue, max_stability_deficit, damage_total [f64]`
///   (exercise and load of the set's first rep).
/// - `weeks`: `week_start_us [i64], iso_week [str], reps, sessions, extensor_events [u32],
///   events_per_100_reps, fatigue_{median,q1,q3,iqr,p90},
///   stability_{median,q1,q3,iqr,p90}, damage_total, load_kg_total,
///   acute_chronic_ratio, risk_mean, risk_max [f64]`.
#[derive(Debug, Clone)]
pub struct AthleteHistory {
    pub athlete_id: String,
    pub sessions: DataFrame,
    pub sets: DataFrame,
    pub weeks: DataFrame,
    pub risk_available: bool,
}

fn series<T, V>(name: &str, values: V) -> Column
where
    Series: NamedFrom<V, T>,
    T: ?Sized,
{
    Series::new(name.into(), values).into_column()
}

fn u32c(e: Expr, name: &str) -> Expr {
    e.cast(DataType::UInt32).alias(name)
}

fn q(e: Expr, p: f64) -> Expr {
    e.quantile(lit(p), QuantileMethod::Linear)
}

fn rate(num: &str, den: &str) -> Expr {
    when(col(den).gt(lit(0u32)))
        .then(col(num).cast(DataType::Float64) * lit(100.0) / col(den).cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
        .alias("events_per_100_reps")
}

/// Code of each distinct string, in order of first appearance.
fn codes<'a>(values: impl Iterator<Item = &'a str>) -> Vec<u32> {
    let mut index: HashMap<&str, u32> = HashMap::new();
    values
        .map(|v| {
            let n = index.len() as u32;
            *index.entry(v).or_insert(n)
        })
        .collect()
}

fn rep_frame(reps: &[&RepRecord]) -> Result<DataFrame, AnalyticsError> {
    let n = reps.len();
    let f = |g: fn(&RepRecord) -> f32| reps.iter().map(|r| f64::from(g(r))).collect::<Vec<_>>();
    DataFrame::new(
        n,
        vec![
            series(
                "session_id",
                reps.iter()
                    .map(|r| r.session_id.as_str())
                    .collect::<Vec<_>>(),
            ),
            series("sess", codes(reps.iter().map(|r| r.session_id.as_str()))),
            series("set", codes(reps.iter().map(|r| r.set_id.as_str()))),
            series(
                "set_id",
                reps.iter()
                    .map(|r| (!r.set_id.is_empty()).then_some(r.set_id.as_str()))
                    .collect::<Vec<_>>(),
            ),
            series(
                "exercise",
                reps.iter()
                    .map(|r| exercise_key(r.exercise).1.into_owned())
                    .collect::<Vec<_>>(),
            ),
            series("load_kg", f(|r| r.load_kg)),
            series(
                "start_us",
                reps.iter().map(|r| r.start_us).collect::<Vec<_>>(),
            ),
            series("end_us", reps.iter().map(|r| r.end_us).collect::<Vec<_>>()),
            series(
                "week",
                reps.iter()
                    .map(|r| week_start_us(r.start_us))
                    .collect::<Vec<_>>(),
            ),
            series(
                "event",
                reps.iter().map(|r| r.extensor_event).collect::<Vec<_>>(),
            ),
            series("flexion", f(|r| r.peak_lumbar_flexion_deg)),
            series("fatigue", f(|r| r.fatigue_score)),
            series("stability", f(|r| r.stability_deficit)),
            series("damage", reps.iter().map(|r| r.damage).collect::<Vec<_>>()),
        ],
    )
    .ctx("building the history rep frame")
}

/// Sessions, sets and weeks of one athlete.
pub fn athlete_history(input: &HistoryInput<'_>) -> Result<AthleteHistory, AnalyticsError> {
    let id = input.athlete.athlete_id.as_str();
    let mut reps: Vec<&RepRecord> = input.reps.iter().collect();
    if let Some((i, r)) = reps.iter().enumerate().find(|(_, r)| r.athlete_id != id) {
        return Err(AnalyticsError::InvalidRep {
            index: i,
            rep_id: r.rep_id.clone(),
            field: "athlete_id",
            reason: format!(
                "{:?} is not the athlete of the history ({id:?})",
                r.athlete_id
            ),
        });
    }
    reps.sort_by(|a, b| a.start_us.cmp(&b.start_us).then(a.rep_id.cmp(&b.rep_id)));
    let df = rep_frame(&reps)?;

    // Float sums in row order (see `sums`), joined on the group codes.
    let sess_sums = sum_by(
        &df,
        &["sess"],
        &[("damage", "damage_total"), ("fatigue", "fatigue_sum")],
    )?;
    let set_sums = sum_by(&df, &["set"], &[("damage", "damage_total")])?;
    let week_sums = sum_by(
        &df,
        &["week"],
        &[("damage", "damage_total"), ("load_kg", "load_kg_total")],
    )?;
    let sessions = df
        .clone()
        .lazy()
        .group_by([col("sess"), col("session_id")])
        .agg([
            col("start_us").min(),
            col("end_us").max(),
            u32c(len(), "reps"),
            u32c(col("set_id").drop_nulls().n_unique(), "sets"),
            u32c(col("event").sum(), "extensor_events"),
            col("flexion").max().alias("peak_lumbar_flexion_max_deg"),
            col("fatigue").max().alias("max_fatigue"),
            col("stability").max().alias("max_stability_deficit"),
        ])
        .join(
            sess_sums.lazy(),
            [col("sess")],
            [col("sess")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            (col("fatigue_sum") / col("reps").cast(DataType::Float64)).alias("mean_fatigue")
        ])
        .sort(["start_us", "session_id"], SortMultipleOptions::default())
        .select([
            col("session_id"),
            col("start_us"),
            col("end_us"),
            col("reps"),
            col("sets"),
            col("extensor_events"),
            rate("extensor_events", "reps"),
            col("peak_lumbar_flexion_max_deg"),
            col("mean_fatigue"),
            col("max_fatigue"),
            col("max_stability_deficit"),
            col("damage_total"),
        ])
        .collect()
        .ctx("history sessions")?;

    let sets = df
        .clone()
        .lazy()
        .filter(col("set_id").is_not_null())
        .group_by([col("set"), col("set_id")])
        .agg([
            col("session_id")
                .sort_by([col("start_us")], SortMultipleOptions::default())
                .first(),
            col("exercise")
                .sort_by([col("start_us")], SortMultipleOptions::default())
                .first(),
            col("load_kg")
                .sort_by([col("start_us")], SortMultipleOptions::default())
                .first(),
            col("start_us").min(),
            col("end_us").max(),
            u32c(len(), "reps"),
            u32c(col("event").sum(), "extensor_events"),
            col("fatigue").max().alias("max_fatigue"),
            col("stability").max().alias("max_stability_deficit"),
        ])
        .join(
            set_sums.lazy(),
            [col("set")],
            [col("set")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(["start_us", "set_id"], SortMultipleOptions::default())
        .select([
            col("set_id"),
            col("session_id"),
            col("exercise"),
            col("load_kg"),
            col("start_us"),
            col("end_us"),
            col("reps"),
            col("extensor_events"),
            col("max_fatigue"),
            col("max_stability_deficit"),
            col("damage_total"),
        ])
        .collect()
        .ctx("history sets")?;

    let mut weekly = df
        .lazy()
        .group_by([col("week")])
        .agg([
            u32c(len(), "reps"),
            u32c(col("session_id").n_unique(), "sessions"),
            u32c(col("event").sum(), "extensor_events"),
            col("fatigue").median().alias("fatigue_median"),
            q(col("fatigue"), 0.25).alias("fatigue_q1"),
            q(col("fatigue"), 0.75).alias("fatigue_q3"),
            q(col("fatigue"), 0.9).alias("fatigue_p90"),
            col("stability").median().alias("stability_median"),
            q(col("stability"), 0.25).alias("stability_q1"),
            q(col("stability"), 0.75).alias("stability_q3"),
            q(col("stability"), 0.9).alias("stability_p90"),
        ])
        .join(
            week_sums.lazy(),
            [col("week")],
            [col("week")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(["week"], SortMultipleOptions::default())
        .collect()
        .ctx("history weeks")?;

    // Descriptive acute:chronic per week, from the weekly loads (missing weeks = 0).
    let weeks_v = i64s(&weekly, "week")?;
    let loads = f64s(&weekly, "load_kg_total")?;
    let by_week: HashMap<i64, f64> = weeks_v
        .iter()
        .zip(&loads)
        .filter_map(|(w, l)| Some(((*w)?, l.unwrap_or(0.0))))
        .collect();
    let acwr: Vec<Option<f64>> = weeks_v
        .iter()
        .map(|w| {
            let w = (*w)?;
            let load = |k: i64| by_week.get(&(w - k * WEEK_US)).copied().unwrap_or(0.0);
            let chronic = (load(0) + load(1) + load(2) + load(3)) / 4.0;
            (chronic > 0.0).then(|| load(0) / chronic)
        })
        .collect();
    let labels: Vec<String> = weeks_v
        .iter()
        .map(|w| w.map(|w| iso_week(w).1).unwrap_or_default())
        .collect();
    // Risk per week of the athlete's days.
    let mut risk_by_week: BTreeMap<i64, (f64, f64, u32)> = BTreeMap::new();
    if let Some(r) = input.risk {
        for ((a, day), p) in r.athlete_id.iter().zip(&r.day_us).zip(&r.probability) {
            if a == id && p.is_finite() {
                let e =
                    risk_by_week
                        .entry(week_start_us(*day))
                        .or_insert((0.0, f64::NEG_INFINITY, 0));
                e.0 += p;
                e.1 = e.1.max(*p);
                e.2 += 1;
            }
        }
    }
    let risk_mean: Vec<Option<f64>> = weeks_v
        .iter()
        .map(|w| {
            w.and_then(|w| risk_by_week.get(&w))
                .map(|(s, _, n)| s / f64::from(*n))
        })
        .collect();
    let risk_max: Vec<Option<f64>> = weeks_v
        .iter()
        .map(|w| w.and_then(|w| risk_by_week.get(&w)).map(|(_, m, _)| *m))
        .collect();
    weekly
        .with_column(series("iso_week", labels))
        .ctx("history weeks")?;
    weekly
        .with_column(series("acute_chronic_ratio", acwr))
        .ctx("history weeks")?;
    weekly
        .with_column(series("risk_mean", risk_mean))
        .ctx("history weeks")?;
    weekly
        .with_column(series("risk_max", risk_max))
        .ctx("history weeks")?;
    let weeks = weekly
        .lazy()
        .select([
            col("week").alias("week_start_us"),
            col("iso_week"),
            col("reps"),
            col("sessions"),
            col("extensor_events"),
            rate("extensor_events", "reps"),
            col("fatigue_median"),
            col("fatigue_q1"),
            col("fatigue_q3"),
            (col("fatigue_q3") - col("fatigue_q1")).alias("fatigue_iqr"),
            col("fatigue_p90"),
            col("stability_median"),
            col("stability_q1"),
            col("stability_q3"),
            (col("stability_q3") - col("stability_q1")).alias("stability_iqr"),
            col("stability_p90"),
            col("damage_total"),
            col("load_kg_total"),
            col("acute_chronic_ratio"),
            col("risk_mean"),
            col("risk_max"),
        ])
        .collect()
        .ctx("history weeks")?;
    Ok(AthleteHistory {
        athlete_id: id.to_owned(),
        sessions,
        sets,
        weeks,
        risk_available: input.risk.is_some(),
    })
}

/// Column readers for the wire conversions.
pub(crate) struct Cols<'a>(pub &'a DataFrame);

impl Cols<'_> {
    pub fn f(&self, name: &str) -> Result<Vec<Option<f64>>, AnalyticsError> {
        f64s(self.0, name)
    }
    pub fn u(&self, name: &str) -> Result<Vec<u64>, AnalyticsError> {
        u64s(self.0, name)
    }
    pub fn i(&self, name: &str) -> Result<Vec<Option<i64>>, AnalyticsError> {
        i64s(self.0, name)
    }
    pub fn s(&self, name: &str) -> Result<Vec<Option<String>>, AnalyticsError> {
        strs(self.0, name)
    }
}
