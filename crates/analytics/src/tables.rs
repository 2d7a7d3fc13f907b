//! The report tables, computed with polars lazy queries over the prepared rep frame.
//!
//! Invariants:
//! - Every table has a fixed schema (column names and types do not depend on the data;
//!   the per-exercise rep counts are one column per known exercise plus `reps_other`).
//! - Every table is sorted by its key columns, so equal inputs give equal frames.
//! - Quantiles use linear interpolation between closest ranks (numpy's default): the
//!   median of `[1, 2, 3, 4]` is 2.5 and its p90 is 3.7.
//! - Rates are per 100 reps and null when there are no reps (never NaN or infinite).

use std::collections::BTreeMap;

use liftguard_model::Exercise;
use liftguard_proto::v1::RepRecord;
use polars::prelude::*;

use crate::rows::{self, exercise_key};
use crate::{AnalyticsError, PolarsContext};

pub(crate) const FLEXION: &str = "peak_lumbar_flexion_deg";

/// Datetime type of every time column: microseconds, UTC (stored time-zone naive).
pub(crate) fn datetime_us() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, None)
}

fn count(e: Expr, name: &str) -> Expr {
    e.cast(DataType::UInt32).alias(name)
}

fn p(q: f64) -> impl Fn(Expr) -> Expr {
    move |e: Expr| e.quantile(lit(q), QuantileMethod::Linear)
}

/// `events * 100 / reps`, null when `reps` is 0.
fn rate_per_100(events: &str, reps: &str) -> Expr {
    when(col(reps).gt(lit(0u32)))
        .then(col(events).cast(DataType::Float64) * lit(100.0) / col(reps).cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// Names of the per-exercise rep-count columns, in order.
pub(crate) fn exercise_count_columns() -> Vec<String> {
    Exercise::ALL
        .iter()
        .map(|e| format!("reps_{}", e.as_str()))
        .chain(std::iter::once("reps_other".to_owned()))
        .collect()
}

fn exercise_count_aggs() -> Vec<Expr> {
    let mut aggs: Vec<Expr> = Exercise::ALL
        .iter()
        .map(|e| {
            count(
                col("exercise").eq(lit(e.as_str())).sum(),
                &format!("reps_{}", e.as_str()),
            )
        })
        .collect();
    aggs.push(count(
        col("exercise_rank")
            .gt_eq(lit(rows::RANK_UNSPECIFIED))
            .sum(),
        "reps_other",
    ));
    aggs
}

fn cols(names: &[&str]) -> Vec<Expr> {
    names.iter().map(|n| col(*n)).collect()
}

/// Per athlete (every athlete of the universe, with or without reps).
pub(crate) fn per_athlete(
    reps: &DataFrame,
    athletes: &DataFrame,
) -> Result<DataFrame, AnalyticsError> {
    let mut aggs = vec![
        count(len(), "reps"),
        count(col("set_id").drop_nulls().n_unique(), "sets"),
        count(col("session_id").n_unique(), "sessions"),
    ];
    aggs.extend(exercise_count_aggs());
    aggs.extend([
        col(FLEXION)
            .median()
            .alias("peak_lumbar_flexion_median_deg"),
        p(0.9)(col(FLEXION)).alias("peak_lumbar_flexion_p90_deg"),
        col(FLEXION).max().alias("peak_lumbar_flexion_max_deg"),
        count(col("extensor_event").sum(), "extensor_events"),
        col("fatigue_score").mean().alias("mean_fatigue"),
        col("cumulative_damage")
            .max()
            .alias("max_cumulative_damage"),
        col("start_us").min().cast(datetime_us()).alias("first_rep"),
        col("end_us").max().cast(datetime_us()).alias("last_rep"),
    ]);
    let stats = reps.clone().lazy().group_by([col("athlete_id")]).agg(aggs);

    let mut counts = vec!["reps".to_owned(), "sets".to_owned(), "sessions".to_owned()];
    counts.extend(exercise_count_columns());
    counts.push("extensor_events".to_owned());
    let fill: Vec<Expr> = counts
        .iter()
        .map(|c| col(c.as_str()).fill_null(lit(0u32)))
        .collect();

    let mut select = cols(&[
        "athlete_id",
        "display_name",
        "external_ref",
        "gym_id",
        "enrolled",
    ]);
    select.extend(counts.iter().map(|c| col(c.as_str())));
    select.push(rate_per_100("extensor_events", "reps").alias("events_per_100_reps"));
    select.extend(cols(&[
        "peak_lumbar_flexion_median_deg",
        "peak_lumbar_flexion_p90_deg",
        "peak_lumbar_flexion_max_deg",
        "mean_fatigue",
        "max_cumulative_damage",
        "first_rep",
        "last_rep",
    ]));

    athletes
        .clone()
        .lazy()
        .left_join(stats, col("athlete_id"), col("athlete_id"))
        .with_columns(fill)
        .select(select)
        .sort(["gym_id", "athlete_id"], SortMultipleOptions::default())
        .collect()
        .ctx("per-athlete table")
}

/// Per gym: athlete counts and sums from the per-athlete table, rep-level
/// distributions from the rep frame.
pub(crate) fn per_gym(
    reps: &DataFrame,
    per_athlete: &DataFrame,
) -> Result<DataFrame, AnalyticsError> {
    let mut sums = vec!["reps".to_owned(), "sets".to_owned(), "sessions".to_owned()];
    sums.extend(exercise_count_columns());
    sums.push("extensor_events".to_owned());

    let mut aggs = vec![
        count(len(), "athletes"),
        count(col("reps").gt(lit(0u32)).sum(), "athletes_active"),
    ];
    aggs.extend(sums.iter().map(|c| count(col(c.as_str()).sum(), c)));
    let from_athletes = per_athlete
        .clone()
        .lazy()
        .group_by([col("gym_id")])
        .agg(aggs);

    let from_reps = reps.clone().lazy().group_by([col("gym_id")]).agg([
        col(FLEXION)
            .median()
            .alias("peak_lumbar_flexion_median_deg"),
        p(0.9)(col(FLEXION)).alias("peak_lumbar_flexion_p90_deg"),
        col("fatigue_score").mean().alias("mean_fatigue"),
    ]);

    let mut select = cols(&["gym_id", "athletes", "athletes_active"]);
    select.extend(sums.iter().map(|c| col(c.as_str())));
    select.push(rate_per_100("extensor_events", "reps").alias("events_per_100_reps"));
    select.extend(cols(&[
        "peak_lumbar_flexion_median_deg",
        "peak_lumbar_flexion_p90_deg",
        "mean_fatigue",
    ]));
    from_athletes
        .left_join(from_reps, col("gym_id"), col("gym_id"))
        .select(select)
        .sort(["gym_id"], SortMultipleOptions::default())
        .collect()
        .ctx("per-gym table")
}

/// Per exercise, population-wide.
pub(crate) fn by_exercise(reps: &DataFrame) -> Result<DataFrame, AnalyticsError> {
    reps.clone()
        .lazy()
        .group_by([col("exercise_rank"), col("exercise")])
        .agg([
            count(col("gym_id").n_unique(), "gyms"),
            count(col("athlete_id").n_unique(), "athletes"),
            count(len(), "reps"),
            count(col("extensor_event").sum(), "extensor_events"),
            col("load_kg").mean().alias("mean_load_kg"),
            col(FLEXION)
                .median()
                .alias("peak_lumbar_flexion_median_deg"),
            p(0.25)(col(FLEXION)).alias("peak_lumbar_flexion_q1_deg"),
            p(0.75)(col(FLEXION)).alias("peak_lumbar_flexion_q3_deg"),
            p(0.9)(col(FLEXION)).alias("peak_lumbar_flexion_p90_deg"),
            col(FLEXION).max().alias("peak_lumbar_flexion_max_deg"),
            col("ldi").mean().alias("mean_ldi"),
            col("peak_load_moment_nm")
                .mean()
                .alias("mean_peak_load_moment_nm"),
            col("fatigue_score").mean().alias("mean_fatigue"),
        ])
        .sort(
            ["exercise_rank", "exercise"],
            SortMultipleOptions::default(),
        )
        .select([
            col("exercise"),
            col("gyms"),
            col("athletes"),
            col("reps"),
            col("extensor_events"),
            rate_per_100("extensor_events", "reps").alias("events_per_100_reps"),
            col("mean_load_kg"),
            col("peak_lumbar_flexion_median_deg"),
            col("peak_lumbar_flexion_q1_deg"),
            col("peak_lumbar_flexion_q3_deg"),
            (col("peak_lumbar_flexion_q3_deg") - col("peak_lumbar_flexion_q1_deg"))
                .alias("peak_lumbar_flexion_iqr_deg"),
            col("peak_lumbar_flexion_p90_deg"),
            col("peak_lumbar_flexion_max_deg"),
            col("mean_ldi"),
            col("mean_peak_load_moment_nm"),
            col("mean_fatigue"),
        ])
        .collect()
        .ctx("by-exercise table")
}

/// Peak-lumbar-flexion histogram per exercise: contiguous bins `[bin_lo_deg, bin_hi_deg)`
/// from each exercise's lowest to highest occupied bin (empty bins in between have 0
/// reps), the bin's share of the exercise's reps, and the exercise's median, quartiles,
/// IQR and p90 repeated on each of its rows (so one file draws the plot with its markers).
pub(crate) fn flexion_distribution(
    reps: &[&RepRecord],
    by_exercise: &DataFrame,
    bin_width_deg: f64,
) -> Result<DataFrame, AnalyticsError> {
    // (rank, label) -> bin -> count. Bounded: |flexion| <= 180 deg and the width has a
    // validated lower bound, so at most 360 / MIN_BIN_WIDTH + 1 bins per exercise.
    let mut hist: BTreeMap<(u32, String), BTreeMap<i64, u32>> = BTreeMap::new();
    for r in reps {
        let (rank, label) = exercise_key(r.exercise);
        let bin = rows::flexion_bin(r.peak_lumbar_flexion_deg, bin_width_deg);
        *hist
            .entry((rank, label.into_owned()))
            .or_default()
            .entry(bin)
            .or_default() += 1;
    }
    let mut exercise = Vec::new();
    let mut lo = Vec::new();
    let mut hi = Vec::new();
    let mut counts = Vec::new();
    let mut share = Vec::new();
    for ((_, label), bins) in &hist {
        let total: u32 = bins.values().sum();
        let (Some(first), Some(last)) = (bins.keys().next(), bins.keys().next_back()) else {
            continue;
        };
        for bin in *first..=*last {
            let c = bins.get(&bin).copied().unwrap_or(0);
            exercise.push(label.clone());
            lo.push(bin as f64 * bin_width_deg);
            hi.push((bin + 1) as f64 * bin_width_deg);
            counts.push(c);
            share.push(f64::from(c) / f64::from(total.max(1)));
        }
    }
    let n = exercise.len();
    let hist = DataFrame::new(
        n,
        vec![
            Series::new("exercise".into(), exercise).into_column(),
            Series::new("bin_lo_deg".into(), lo).into_column(),
            Series::new("bin_hi_deg".into(), hi).into_column(),
            Series::new("reps".into(), counts).into_column(),
            Series::new("share".into(), share).into_column(),
        ],
    )
    .ctx("building the flexion histogram")?;
    let stats = by_exercise.clone().lazy().select(cols(&[
        "exercise",
        "peak_lumbar_flexion_median_deg",
        "peak_lumbar_flexion_q1_deg",
        "peak_lumbar_flexion_q3_deg",
        "peak_lumbar_flexion_iqr_deg",
        "peak_lumbar_flexion_p90_deg",
    ]));
    // The histogram rows are already in (exercise rank, bin) order; a left join keeps
    // the left order.
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    hist.lazy()
        .join(stats, [col("exercise")], [col("exercise")], args)
        .collect()
        .ctx("flexion distribution table")
}

/// Per training session of an athlete.
pub(crate) fn sessions(reps: &DataFrame) -> Result<DataFrame, AnalyticsError> {
    reps.clone()
        .lazy()
        .group_by([col("athlete_id"), col("gym_id"), col("session_id")])
        .agg([
            col("start_us").min().alias("start_us"),
            col("end_us").max().alias("end_us"),
            count(len(), "reps"),
            count(col("set_id").drop_nulls().n_unique(), "sets"),
            count(col("extensor_event").sum(), "extensor_events"),
            col(FLEXION).max().alias("peak_lumbar_flexion_max_deg"),
            col("fatigue_score").mean().alias("mean_fatigue"),
            col("fatigue_score").max().alias("max_fatigue"),
            col("cumulative_damage")
                .max()
                .alias("max_cumulative_damage"),
        ])
        .sort(
            ["athlete_id", "start_us", "session_id"],
            SortMultipleOptions::default(),
        )
        .select([
            col("athlete_id"),
            col("gym_id"),
            col("session_id"),
            col("start_us").cast(datetime_us()).alias("start"),
            col("end_us").cast(datetime_us()).alias("end"),
            ((col("end_us") - col("start_us")).cast(DataType::Float64) / lit(60_000_000.0))
                .alias("duration_min"),
            col("reps"),
            col("sets"),
            col("extensor_events"),
            rate_per_100("extensor_events", "reps").alias("events_per_100_reps"),
            col("peak_lumbar_flexion_max_deg"),
            col("mean_fatigue"),
            col("max_fatigue"),
            col("max_cumulative_damage"),
        ])
        .collect()
        .ctx("sessions table")
}

/// Whole-report figures (one row), for the text summary and callers that want numbers.
pub(crate) fn totals(reps: &DataFrame) -> Result<DataFrame, AnalyticsError> {
    reps.clone()
        .lazy()
        .select([
            count(len(), "reps"),
            count(col("extensor_event").sum(), "extensor_events"),
            col(FLEXION)
                .median()
                .alias("peak_lumbar_flexion_median_deg"),
            p(0.9)(col(FLEXION)).alias("peak_lumbar_flexion_p90_deg"),
            col("fatigue_score").mean().alias("mean_fatigue"),
        ])
        .collect()
        .ctx("totals")
}
