//! Clinician analytics: summaries of rep records as polars DataFrames, a console summary,
//! and CSV / Parquet exports.
//!
//! This is the only crate that depends on polars. It never touches a database or the
//! bus: callers (the `api` role, `liftguard report`, `liftguard demo`) fetch rows from the
//! store and hand them over as wire types ([`RepRecord`], [`Athlete`]).
//!
//! Invariants:
//! - Input is validated before anything is computed; a bad row is a precise
//!   [`AnalyticsError`] naming the row and the field, never a panic or a silent NaN.
//! - Reps are de-duplicated by their natural key `(athlete_id, start_us)` (the newest
//!   `model_version` wins, ties broken by content), then put in canonical order, so the
//!   same rows in any order and with any at-least-once repeats give identical reports.
//! - Tables have fixed schemas and are sorted by their keys (see [`Report`]).
//! - Quantiles interpolate linearly between closest ranks; rates are per 100 reps and
//!   null (not NaN) without reps. Times are UTC, microseconds.
//! - Memory is bounded by the input: every table has at most one row per input row
//!   (histograms: at most `360 / MIN_BIN_WIDTH_DEG + 1` rows per exercise).

use std::path::{Path, PathBuf};

use liftguard_model::ErrorKind;
use liftguard_proto::v1::{Athlete, RepRecord};
/// The frame type of every table (re-exported so callers need no polars dependency).
pub use polars::prelude::DataFrame;
use polars::prelude::PolarsError;

mod export;
pub mod history;
pub mod population;
mod render;
mod rows;
mod sums;
mod tables;
pub mod testing;
mod text;
pub mod time;
mod wire;

pub use export::{
    PARQUET_ROW_GROUP_ROWS, RepStreamWriter, SharedBuffer, export_reps, frame_bytes,
    raw_reps_frame, trace_frame, write_frame_file,
};
pub use text::render_frame;

/// Narrowest histogram bin accepted by [`ReportOptions`], degrees.
pub const MIN_BIN_WIDTH_DEG: f64 = 0.5;
/// Widest histogram bin accepted by [`ReportOptions`], degrees.
pub const MAX_BIN_WIDTH_DEG: f64 = 90.0;

/// Errors of this crate. Input problems map to [`ErrorKind::InvalidArgument`].
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// A rep record is unusable; `index` is its position in the input slice.
    #[error("rep #{index} (rep_id {rep_id:?}): `{field}` {reason}")]
    InvalidRep {
        index: usize,
        rep_id: String,
        field: &'static str,
        reason: String,
    },
    /// An athlete record is unusable; `index` is its position in the input slice.
    #[error("athlete #{index} ({athlete_id:?}): `{field}` {reason}")]
    InvalidAthlete {
        index: usize,
        athlete_id: String,
        field: &'static str,
        reason: String,
    },
    /// A rep names a different gym than the athlete's enrolment (or than the athlete's
    /// other reps): mixing tenants is refused.
    #[error(
        "rep {rep_id:?} of athlete {athlete_id:?} is for gym {rep_gym:?}, but the athlete belongs to gym {athlete_gym:?}"
    )]
    GymMismatch {
        rep_id: String,
        athlete_id: String,
        rep_gym: String,
        athlete_gym: String,
    },
    #[error("invalid report options: {0}")]
    InvalidOptions(String),
    /// A polars computation or file format failure (a bug or a broken file).
    #[error("polars failed in {context}: {source}")]
    Polars {
        context: &'static str,
        #[source]
        source: PolarsError,
    },
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AnalyticsError {
    /// The shared error vocabulary (for gRPC / HTTP mapping by the caller).
    pub fn kind(&self) -> ErrorKind {
        match self {
            AnalyticsError::InvalidRep { .. }
            | AnalyticsError::InvalidAthlete { .. }
            | AnalyticsError::GymMismatch { .. }
            | AnalyticsError::InvalidOptions(_) => ErrorKind::InvalidArgument,
            AnalyticsError::Polars { .. } | AnalyticsError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Attaches a context to polars results.
pub(crate) trait PolarsContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, AnalyticsError>;
}

impl<T> PolarsContext<T> for Result<T, PolarsError> {
    fn ctx(self, context: &'static str) -> Result<T, AnalyticsError> {
        self.map_err(|source| AnalyticsError::Polars { context, source })
    }
}

/// Knobs of [`build_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Width of the peak-lumbar-flexion histogram bins, degrees, in
    /// [`MIN_BIN_WIDTH_DEG`, `MAX_BIN_WIDTH_DEG`]. Default 5.
    pub flexion_bin_width_deg: f64,
    /// Rows per table in [`Report::render_text`] (the frames are never truncated).
    /// Default 10.
    pub text_max_rows: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            flexion_bin_width_deg: 5.0,
            text_max_rows: 10,
        }
    }
}

impl ReportOptions {
    fn validate(&self) -> Result<(), AnalyticsError> {
        let w = self.flexion_bin_width_deg;
        if !(MIN_BIN_WIDTH_DEG..=MAX_BIN_WIDTH_DEG).contains(&w) {
            return Err(AnalyticsError::InvalidOptions(format!(
                "flexion_bin_width_deg must be in [{MIN_BIN_WIDTH_DEG}, {MAX_BIN_WIDTH_DEG}], got {w}"
            )));
        }
        Ok(())
    }
}

/// Whole-report figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Reps given to [`build_report`] and how many of them repeated a natural key.
    pub input_reps: usize,
    pub duplicates_dropped: usize,
    /// Reps counted (after de-duplication).
    pub reps: u64,
    pub gyms: u64,
    pub athletes: u64,
    /// Athletes with at least one rep.
    pub athletes_active: u64,
    pub sets: u64,
    pub sessions: u64,
    pub extensor_events: u64,
    pub events_per_100_reps: Option<f64>,
    pub peak_lumbar_flexion_median_deg: Option<f64>,
    pub peak_lumbar_flexion_p90_deg: Option<f64>,
    pub mean_fatigue: Option<f64>,
}

/// The tables clinicians get. Column lists (types in brackets; `f64` may be null where
/// there is nothing to aggregate; times are `Datetime[µs]`, UTC):
///
/// - `per_athlete`, one row per athlete given or seen in reps, sorted by gym, athlete:
///   `athlete_id, display_name, external_ref, gym_id, enrolled[bool], reps, sets,
///   sessions, reps_deadlift, reps_squat, reps_kettlebell_swing, reps_carry, reps_other,
///   extensor_events [u32], events_per_100_reps, peak_lumbar_flexion_median_deg,
///   peak_lumbar_flexion_p90_deg, peak_lumbar_flexion_max_deg, mean_fatigue,
///   max_cumulative_damage [f64], first_rep, last_rep`.
/// - `per_gym`, sorted by gym: `gym_id, athletes, athletes_active, reps, sets, sessions,
///   reps_<exercise>…, reps_other, extensor_events [u32], events_per_100_reps,
///   peak_lumbar_flexion_median_deg, peak_lumbar_flexion_p90_deg, mean_fatigue [f64]`.
/// - `by_exercise`, in wire order of the exercise (then `unspecified`, `unknown_<code>`):
///   `exercise, gyms, athletes, reps, extensor_events [u32], events_per_100_reps,
///   mean_load_kg, peak_lumbar_flexion_{median,q1,q3,iqr,p90,max}_deg, mean_ldi,
///   mean_peak_load_moment_nm, mean_fatigue [f64]`.
/// - `flexion_distribution`, by exercise then bin: `exercise, bin_lo_deg, bin_hi_deg
///   [f64], reps [u32], share [f64], peak_lumbar_flexion_{median,q1,q3,iqr,p90}_deg`.
/// - `sessions`, sorted by athlete, start: `athlete_id, gym_id, session_id, start, end,
///   duration_min, reps, sets, extensor_events, events_per_100_reps,
///   peak_lumbar_flexion_max_deg, mean_fatigue, max_fatigue, max_cumulative_damage`.
///
/// Sets are distinct non-empty `set_id`s of an athlete; sessions distinct `session_id`s.
#[derive(Debug, Clone)]
pub struct Report {
    pub per_athlete: DataFrame,
    pub per_gym: DataFrame,
    pub by_exercise: DataFrame,
    pub flexion_distribution: DataFrame,
    pub sessions: DataFrame,
    pub totals: Totals,
    pub options: ReportOptions,
}

/// Output file format of the exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

impl ExportFormat {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Parquet => "parquet",
        }
    }

    /// Parses `csv` / `parquet` (case-insensitive), for CLI flags.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(ExportFormat::Csv),
            "parquet" | "pq" => Some(ExportFormat::Parquet),
            _ => None,
        }
    }
}

/// Builds every table of the report from rep rows and the athletes they belong to.
///
/// Athletes without reps appear with zero counts; athletes only seen in reps appear with
/// `enrolled = false` and no display name. Fails on invalid rows (see the crate invariants).
pub fn build_report(
    reps: &[RepRecord],
    athletes: &[Athlete],
    opts: &ReportOptions,
) -> Result<Report, AnalyticsError> {
    opts.validate()?;
    let prepared = rows::prepare(reps, athletes)?;
    let rep_df = rows::rep_frame(&prepared.reps)?;
    let athlete_df = rows::athlete_frame(&prepared.athletes)?;

    let per_athlete = tables::per_athlete(&rep_df, &athlete_df)?;
    let per_gym = tables::per_gym(&rep_df, &per_athlete)?;
    let by_exercise = tables::by_exercise(&rep_df)?;
    let flexion_distribution =
        tables::flexion_distribution(&prepared.reps, &by_exercise, opts.flexion_bin_width_deg)?;
    let sessions = tables::sessions(&rep_df)?;
    let totals_df = tables::totals(&rep_df)?;

    let sum = |name: &str| render::sum_u64(&per_gym, name);
    let reps_counted = sum("reps")?;
    let extensor_events = sum("extensor_events")?;
    let totals = Totals {
        input_reps: reps.len(),
        duplicates_dropped: prepared.duplicates_dropped,
        reps: reps_counted,
        gyms: per_gym.height() as u64,
        athletes: per_athlete.height() as u64,
        athletes_active: sum("athletes_active")?,
        sets: sum("sets")?,
        sessions: sum("sessions")?,
        extensor_events,
        events_per_100_reps: (reps_counted > 0)
            .then(|| extensor_events as f64 * 100.0 / reps_counted as f64),
        peak_lumbar_flexion_median_deg: render::first_f64(
            &totals_df,
            "peak_lumbar_flexion_median_deg",
        )?,
        peak_lumbar_flexion_p90_deg: render::first_f64(&totals_df, "peak_lumbar_flexion_p90_deg")?,
        mean_fatigue: render::first_f64(&totals_df, "mean_fatigue")?,
    };
    Ok(Report {
        per_athlete,
        per_gym,
        by_exercise,
        flexion_distribution,
        sessions,
        totals,
        options: opts.clone(),
    })
}

impl Report {
    /// The tables with their file stems, in a fixed order.
    pub fn tables(&self) -> [(&'static str, &DataFrame); 5] {
        [
            ("per_athlete", &self.per_athlete),
            ("per_gym", &self.per_gym),
            ("by_exercise", &self.by_exercise),
            ("flexion_distribution", &self.flexion_distribution),
            ("sessions", &self.sessions),
        ]
    }

    /// A compact console summary (plain text, at most `options.text_max_rows` rows per
    /// table), for `liftguard demo` and `liftguard report`.
    pub fn render_text(&self) -> String {
        render::render(self)
    }

    /// Writes one file per table into `dir` (created if missing):
    /// `per_athlete`, `per_gym`, `by_exercise`, `flexion_distribution`, `sessions`, with
    /// the format's extension. Each file is written to a temporary name and renamed, so
    /// a reader never sees a half-written file. Returns the paths in that order.
    pub fn export(&self, dir: &Path, format: ExportFormat) -> Result<Vec<PathBuf>, AnalyticsError> {
        std::fs::create_dir_all(dir).map_err(|source| AnalyticsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        self.tables()
            .into_iter()
            .map(|(stem, df)| {
                let path = dir.join(format!("{stem}.{}", format.extension()));
                export::write_frame(df, &path, format)?;
                Ok(path)
            })
            .collect()
    }
}
