//! Plain-text rendering of the population and history tables for `liftguard report`.
//!
//! Invariants: plain text (no terminal control codes); at most `max_rows` rows per table
//! with the total said; nulls shown as `-`; floats with a fixed number of decimals;
//! `Datetime` columns as UTC dates; the frames themselves are never changed.

use std::fmt::Write as _;

use polars::prelude::*;

use crate::history::AthleteHistory;
use crate::population::{LoadTable, Trending, Trends};
use crate::time::format_time;
use crate::{AnalyticsError, PolarsContext};

fn cell_strings(df: &DataFrame, name: &str, rows: usize) -> Result<Vec<String>, AnalyticsError> {
    let c = df.column(name).ctx("rendering a column")?;
    let c = c.slice(0, rows);
    let dash = || "-".to_owned();
    Ok(match c.dtype() {
        DataType::String => c
            .str()
            .ctx("rendering strings")?
            .iter()
            .map(|v| v.map_or_else(dash, str::to_owned))
            .collect(),
        DataType::Boolean => c
            .bool()
            .ctx("rendering booleans")?
            .iter()
            .map(|v| v.map_or_else(dash, |b| if b { "yes" } else { "no" }.to_owned()))
            .collect(),
        DataType::Float32 | DataType::Float64 => c
            .cast(&DataType::Float64)
            .ctx("rendering floats")?
            .f64()
            .ctx("rendering floats")?
            .iter()
            .map(|v| v.map_or_else(dash, |x| format!("{x:.3}")))
            .collect(),
        DataType::Datetime(_, _) => c
            .cast(&DataType::Int64)
            .ctx("rendering times")?
            .i64()
            .ctx("rendering times")?
            .iter()
            .map(|v| v.map_or_else(dash, |t| format_time(t)[..10].to_owned()))
            .collect(),
        _ => c
            .cast(&DataType::Int64)
            .ctx("rendering integers")?
            .i64()
            .ctx("rendering integers")?
            .iter()
            .map(|v| v.map_or_else(dash, |x| x.to_string()))
            .collect(),
    })
}

/// `columns` of `df` as an aligned text table (first column left-aligned), at most
/// `max_rows` rows, headed by `title` and the row count.
pub fn render_frame(
    title: &str,
    df: &DataFrame,
    columns: &[&str],
    max_rows: usize,
) -> Result<String, AnalyticsError> {
    let shown = df.height().min(max_rows);
    let cols: Vec<Vec<String>> = columns
        .iter()
        .map(|c| cell_strings(df, c, shown))
        .collect::<Result<_, _>>()?;
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for (w, col) in widths.iter_mut().zip(&cols) {
        for cell in col {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    if shown < df.height() {
        let _ = writeln!(out, "{title} ({shown} of {} rows)", df.height());
    } else {
        let _ = writeln!(out, "{title} ({} rows)", df.height());
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            s.push(' ');
            if i == 0 {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', pad));
            } else {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(cell);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, columns.to_vec());
    for r in 0..shown {
        line(&mut out, cols.iter().map(|c| c[r].as_str()).collect());
    }
    Ok(out)
}

impl Trends {
    /// The weekly table: the grouped dimensions and the main figures.
    pub fn render_text(&self, max_rows: usize) -> Result<String, AnalyticsError> {
        let mut cols = vec!["iso_week"];
        cols.extend(self.group_by.iter().map(|d| d.column()));
        cols.extend([
            "athletes",
            "reps",
            "extensor_events",
            "events_per_100_reps",
            "fatigue_median",
            "fatigue_iqr",
            "fatigue_p90",
            "stability_median",
            "stability_p90",
            "damage_total",
        ]);
        if self.risk_available
            && !self
                .group_by
                .contains(&crate::population::Dimension::Exercise)
        {
            cols.extend(["risk_median", "risk_p90"]);
        }
        render_frame(
            "population trends by ISO week",
            &self.table,
            &cols,
            max_rows,
        )
    }
}

impl Trending {
    pub fn render_text(&self, max_rows: usize) -> Result<String, AnalyticsError> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "window: {} .. {} (whole ISO weeks)",
            format_time(self.window_start_us),
            format_time(self.window_end_us)
        );
        out.push_str(&render_frame(
            "athletes trending up",
            &self.table,
            &[
                "athlete_id",
                "gym_id",
                "weeks_counted",
                "reps",
                "first_rate",
                "last_rate",
                "rate_slope",
                "risk_weeks",
                "last_risk",
                "risk_slope",
                "trending_event_rate",
                "trending_risk",
            ],
            max_rows,
        )?);
        Ok(out)
    }
}

impl LoadTable {
    pub fn render_text(&self, max_rows: usize) -> Result<String, AnalyticsError> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "acute (7 d) : chronic (28 d, weekly mean) load up to {} — a description of training \
             load, not an alarm",
            format_time(self.window_end_us)
        );
        out.push_str(&render_frame(
            "load monitoring",
            &self.table,
            &[
                "athlete_id",
                "gym_id",
                "acute_load_kg",
                "chronic_weekly_load_kg",
                "acute_chronic_ratio",
                "acute_reps",
                "chronic_reps",
            ],
            max_rows,
        )?);
        Ok(out)
    }
}

impl AthleteHistory {
    pub fn render_text(&self, max_rows: usize) -> Result<String, AnalyticsError> {
        let mut out = format!("athlete {}\n", self.athlete_id);
        out.push_str(&render_frame(
            "weeks",
            &self.weeks,
            &[
                "iso_week",
                "reps",
                "sessions",
                "extensor_events",
                "events_per_100_reps",
                "fatigue_median",
                "stability_median",
                "damage_total",
                "load_kg_total",
                "acute_chronic_ratio",
                "risk_mean",
            ],
            max_rows,
        )?);
        out.push('\n');
        out.push_str(&render_frame(
            "sessions",
            &self.sessions,
            &[
                "session_id",
                "reps",
                "sets",
                "extensor_events",
                "peak_lumbar_flexion_max_deg",
                "max_fatigue",
                "max_stability_deficit",
                "damage_total",
            ],
            max_rows,
        )?);
        Ok(out)
    }
}
