//! The console summary of a [`Report`], read back from its DataFrames (one source of
//! truth: the text shows exactly what an export contains).
//!
//! Invariants: plain text, no terminal control codes; at most `text_max_rows` rows per
//! table; cells wider than [`MAX_CELL`] characters are cut with `…`; a table that cannot
//! be read renders as a one-line notice instead of failing the whole summary.

use std::fmt::Write as _;

use polars::prelude::*;

use crate::{AnalyticsError, PolarsContext, Report};

const MAX_CELL: usize = 24;
const SPARK_MAX_WIDTH: usize = 60;
const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column, AnalyticsError> {
    df.column(name).ctx("reading a report column")
}

pub(crate) fn f64s(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>, AnalyticsError> {
    let c = column(df, name)?
        .cast(&DataType::Float64)
        .ctx("casting to f64")?;
    Ok(c.f64().ctx("reading f64")?.iter().collect())
}

pub(crate) fn u64s(df: &DataFrame, name: &str) -> Result<Vec<u64>, AnalyticsError> {
    let c = column(df, name)?
        .cast(&DataType::UInt64)
        .ctx("casting to u64")?;
    Ok(c.u64()
        .ctx("reading u64")?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

pub(crate) fn i64s(df: &DataFrame, name: &str) -> Result<Vec<Option<i64>>, AnalyticsError> {
    let c = column(df, name)?
        .cast(&DataType::Int64)
        .ctx("casting to i64")?;
    Ok(c.i64().ctx("reading i64")?.iter().collect())
}

pub(crate) fn strs(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>, AnalyticsError> {
    let c = column(df, name)?;
    Ok(c.str()
        .ctx("reading strings")?
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect())
}

/// Sum of an integer column (0 for an empty frame).
pub(crate) fn sum_u64(df: &DataFrame, name: &str) -> Result<u64, AnalyticsError> {
    Ok(u64s(df, name)?.iter().sum())
}

/// First value of a float column (None when empty or null).
pub(crate) fn first_f64(df: &DataFrame, name: &str) -> Result<Option<f64>, AnalyticsError> {
    Ok(f64s(df, name)?.first().copied().flatten())
}

fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "-".to_owned(),
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_CELL {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_CELL - 1).collect();
        t.push('…');
        t
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) of microseconds since the epoch.
pub(crate) fn fmt_utc_minute(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60
    )
}

/// Columns `0..left` left-aligned, the others right-aligned, widths fitted to the content.
fn table_aligned(out: &mut String, headers: &[&str], rows: &[Vec<String>], left: usize) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from(" ");
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            s.push(' ');
            if i < left {
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
    line(out, &mut headers.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

/// A table with a left-aligned label column and right-aligned figures.
fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    table_aligned(out, headers, rows, 1);
}

fn heading(out: &mut String, title: &str, shown: usize, total: usize) {
    if shown < total {
        let _ = writeln!(out, "\n{title} ({shown} of {total})");
    } else {
        let _ = writeln!(out, "\n{title}");
    }
}

fn sparkline(counts: &[u64]) -> String {
    let group = counts.len().div_ceil(SPARK_MAX_WIDTH).max(1);
    let merged: Vec<u64> = counts.chunks(group).map(|c| c.iter().sum()).collect();
    let max = merged.iter().copied().max().unwrap_or(0).max(1);
    merged
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                // 1..=8 levels; a non-empty bin is always visible.
                let level = ((c * 8).div_ceil(max)).clamp(1, 8) as usize;
                SPARK[level - 1]
            }
        })
        .collect()
}

fn header(out: &mut String, r: &Report) {
    let t = &r.totals;
    let _ = writeln!(
        out,
        "liftguard report: {} gyms, {} athletes ({} active), {} reps, {} sets, {} sessions",
        t.gyms, t.athletes, t.athletes_active, t.reps, t.sets, t.sessions
    );
    let _ = writeln!(
        out,
        "extensor events: {} ({} per 100 reps) | peak lumbar flexion median {} deg, p90 {} deg | mean fatigue {}",
        t.extensor_events,
        num(t.events_per_100_reps, 1),
        num(t.peak_lumbar_flexion_median_deg, 1),
        num(t.peak_lumbar_flexion_p90_deg, 1),
        num(t.mean_fatigue, 1),
    );
    if t.duplicates_dropped > 0 {
        let _ = writeln!(
            out,
            "({} of {} input reps repeated a natural key and were counted once)",
            t.duplicates_dropped, t.input_reps
        );
    }
}

fn gyms(out: &mut String, r: &Report, max_rows: usize) -> Result<(), AnalyticsError> {
    let df = &r.per_gym;
    let gym = strs(df, "gym_id")?;
    let (athletes, active, reps) = (
        u64s(df, "athletes")?,
        u64s(df, "athletes_active")?,
        u64s(df, "reps")?,
    );
    let (sessions, events) = (u64s(df, "sessions")?, u64s(df, "extensor_events")?);
    let (rate, p50, p90, fat) = (
        f64s(df, "events_per_100_reps")?,
        f64s(df, "peak_lumbar_flexion_median_deg")?,
        f64s(df, "peak_lumbar_flexion_p90_deg")?,
        f64s(df, "mean_fatigue")?,
    );
    let n = df.height().min(max_rows);
    heading(out, "Gyms", n, df.height());
    let rows: Vec<Vec<String>> = (0..n)
        .map(|i| {
            vec![
                cut(gym[i].as_deref().unwrap_or("-")),
                athletes[i].to_string(),
                active[i].to_string(),
                reps[i].to_string(),
                sessions[i].to_string(),
                events[i].to_string(),
                num(rate[i], 1),
                num(p50[i], 1),
                num(p90[i], 1),
                num(fat[i], 1),
            ]
        })
        .collect();
    table(
        out,
        &[
            "gym",
            "athletes",
            "active",
            "reps",
            "sessions",
            "events",
            "/100 reps",
            "flex p50",
            "flex p90",
            "fatigue",
        ],
        &rows,
    );
    Ok(())
}

fn athletes(out: &mut String, r: &Report, max_rows: usize) -> Result<(), AnalyticsError> {
    let df = &r.per_athlete;
    let (id, name, gym) = (
        strs(df, "athlete_id")?,
        strs(df, "display_name")?,
        strs(df, "gym_id")?,
    );
    let (reps, sets, sessions, events) = (
        u64s(df, "reps")?,
        u64s(df, "sets")?,
        u64s(df, "sessions")?,
        u64s(df, "extensor_events")?,
    );
    let rate = f64s(df, "events_per_100_reps")?;
    let (p50, p90, max) = (
        f64s(df, "peak_lumbar_flexion_median_deg")?,
        f64s(df, "peak_lumbar_flexion_p90_deg")?,
        f64s(df, "peak_lumbar_flexion_max_deg")?,
    );
    let (fat, dmg) = (
        f64s(df, "mean_fatigue")?,
        f64s(df, "max_cumulative_damage")?,
    );
    // Highest event rate first (athletes without reps last), then most reps, then id.
    let mut order: Vec<usize> = (0..df.height()).collect();
    order.sort_by(|&a, &b| {
        let ra = rate[a].unwrap_or(f64::NEG_INFINITY);
        let rb = rate[b].unwrap_or(f64::NEG_INFINITY);
        rb.total_cmp(&ra)
            .then(reps[b].cmp(&reps[a]))
            .then(id[a].cmp(&id[b]))
    });
    order.truncate(max_rows);
    heading(
        out,
        "Athletes, highest event rate first",
        order.len(),
        df.height(),
    );
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|&i| {
            let label = name[i].as_deref().or(id[i].as_deref()).unwrap_or("-");
            vec![
                cut(label),
                cut(gym[i].as_deref().unwrap_or("-")),
                reps[i].to_string(),
                sets[i].to_string(),
                sessions[i].to_string(),
                format!("{}/{}/{}", num(p50[i], 0), num(p90[i], 0), num(max[i], 0)),
                events[i].to_string(),
                num(rate[i], 1),
                num(fat[i], 1),
                dmg[i].map_or_else(|| "-".to_owned(), |d| format!("{d:.2e}")),
            ]
        })
        .collect();
    table(
        out,
        &[
            "athlete",
            "gym",
            "reps",
            "sets",
            "sess",
            "flex p50/p90/max",
            "events",
            "/100 reps",
            "fatigue",
            "LiFFT damage",
        ],
        &rows,
    );
    Ok(())
}

fn exercises(out: &mut String, r: &Report, max_rows: usize) -> Result<(), AnalyticsError> {
    let df = &r.by_exercise;
    let ex = strs(df, "exercise")?;
    let (athl, reps, events) = (
        u64s(df, "athletes")?,
        u64s(df, "reps")?,
        u64s(df, "extensor_events")?,
    );
    let (rate, load, p50, q1, q3, p90, ldi) = (
        f64s(df, "events_per_100_reps")?,
        f64s(df, "mean_load_kg")?,
        f64s(df, "peak_lumbar_flexion_median_deg")?,
        f64s(df, "peak_lumbar_flexion_q1_deg")?,
        f64s(df, "peak_lumbar_flexion_q3_deg")?,
        f64s(df, "peak_lumbar_flexion_p90_deg")?,
        f64s(df, "mean_ldi")?,
    );
    let n = df.height().min(max_rows);
    heading(out, "By exercise", n, df.height());
    let rows: Vec<Vec<String>> = (0..n)
        .map(|i| {
            vec![
                cut(ex[i].as_deref().unwrap_or("-")),
                reps[i].to_string(),
                athl[i].to_string(),
                events[i].to_string(),
                num(rate[i], 1),
                num(load[i], 1),
                format!("{} [{}-{}]", num(p50[i], 1), num(q1[i], 1), num(q3[i], 1)),
                num(p90[i], 1),
                num(ldi[i], 2),
            ]
        })
        .collect();
    table(
        out,
        &[
            "exercise",
            "reps",
            "athletes",
            "events",
            "/100 reps",
            "load kg",
            "flex p50 [IQR]",
            "flex p90",
            "ldi",
        ],
        &rows,
    );
    Ok(())
}

fn distribution(out: &mut String, r: &Report, max_rows: usize) -> Result<(), AnalyticsError> {
    let df = &r.flexion_distribution;
    let ex = strs(df, "exercise")?;
    let (lo, hi, reps) = (
        f64s(df, "bin_lo_deg")?,
        f64s(df, "bin_hi_deg")?,
        u64s(df, "reps")?,
    );
    // Rows are grouped by exercise, bins ascending.
    let mut groups: Vec<(String, f64, f64, Vec<u64>)> = Vec::new();
    for i in 0..df.height() {
        let label = ex[i].clone().unwrap_or_default();
        match groups.last_mut() {
            Some(g) if g.0 == label => {
                g.2 = hi[i].unwrap_or(g.2);
                g.3.push(reps[i]);
            }
            _ => groups.push((
                label,
                lo[i].unwrap_or(0.0),
                hi[i].unwrap_or(0.0),
                vec![reps[i]],
            )),
        }
    }
    let total = groups.len();
    groups.truncate(max_rows);
    heading(
        out,
        &format!(
            "Peak lumbar flexion, {} deg bins",
            r.options.flexion_bin_width_deg
        ),
        groups.len(),
        total,
    );
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(label, lo, hi, counts)| {
            vec![
                cut(label),
                format!("{lo:.0}..{hi:.0} deg"),
                format!("|{}|", sparkline(counts)),
            ]
        })
        .collect();
    table_aligned(out, &["exercise", "range", "histogram"], &rows, 3);
    Ok(())
}

fn sessions(out: &mut String, r: &Report, max_rows: usize) -> Result<(), AnalyticsError> {
    let df = &r.sessions;
    let (athlete, session) = (strs(df, "athlete_id")?, strs(df, "session_id")?);
    let start = i64s(df, "start")?;
    let (dur, rate) = (f64s(df, "duration_min")?, f64s(df, "events_per_100_reps")?);
    let (reps, sets, events) = (
        u64s(df, "reps")?,
        u64s(df, "sets")?,
        u64s(df, "extensor_events")?,
    );
    let names: std::collections::HashMap<String, String> = {
        let pa = &r.per_athlete;
        strs(pa, "athlete_id")?
            .into_iter()
            .zip(strs(pa, "display_name")?)
            .filter_map(|(id, name)| Some((id?, name?)))
            .collect()
    };
    // Latest first; ties by athlete, session.
    let mut order: Vec<usize> = (0..df.height()).collect();
    order.sort_by(|&a, &b| {
        start[b]
            .cmp(&start[a])
            .then(athlete[a].cmp(&athlete[b]))
            .then(session[a].cmp(&session[b]))
    });
    order.truncate(max_rows);
    heading(out, "Sessions, latest first", order.len(), df.height());
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|&i| {
            let id = athlete[i].as_deref().unwrap_or("-");
            vec![
                cut(names.get(id).map_or(id, String::as_str)),
                start[i].map_or_else(|| "-".to_owned(), fmt_utc_minute),
                num(dur[i], 1),
                reps[i].to_string(),
                sets[i].to_string(),
                events[i].to_string(),
                num(rate[i], 1),
            ]
        })
        .collect();
    table(
        out,
        &[
            "athlete",
            "start (UTC)",
            "min",
            "reps",
            "sets",
            "events",
            "/100 reps",
        ],
        &rows,
    );
    Ok(())
}

pub(crate) fn render(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    let max_rows = r.options.text_max_rows;
    type Section = fn(&mut String, &Report, usize) -> Result<(), AnalyticsError>;
    let sections: [(&str, Section); 5] = [
        ("gyms", gyms),
        ("athletes", athletes),
        ("exercises", exercises),
        ("flexion distribution", distribution),
        ("sessions", sessions),
    ];
    for (name, section) in sections {
        let mut part = String::new();
        match section(&mut part, r, max_rows) {
            Ok(()) => out.push_str(&part),
            Err(e) => {
                let _ = writeln!(out, "\n({name}: cannot render: {e})");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_instants() {
        assert_eq!(fmt_utc_minute(0), "1970-01-01 00:00");
        // 2023-11-14T22:13:20Z
        assert_eq!(fmt_utc_minute(1_700_000_000_000_000), "2023-11-14 22:13");
        // Leap day and a negative instant.
        assert_eq!(fmt_utc_minute(951_782_400_000_000), "2000-02-29 00:00");
        assert_eq!(fmt_utc_minute(-60_000_000), "1969-12-31 23:59");
    }

    #[test]
    fn sparkline_scales_and_keeps_small_bins_visible() {
        assert_eq!(sparkline(&[0, 1, 8, 4]), " ▁█▄");
        assert_eq!(sparkline(&[100, 1]), "█▁");
        // Wider than the limit: merged into at most SPARK_MAX_WIDTH cells.
        assert_eq!(sparkline(&[1; 150]).chars().count(), 50);
    }

    #[test]
    fn long_cells_are_cut() {
        assert_eq!(cut("short"), "short");
        let long = "x".repeat(40);
        assert_eq!(cut(&long).chars().count(), MAX_CELL);
        assert!(cut(&long).ends_with('…'));
    }
}
