//! `liftguard report`: clinician analytics (polars) straight from the store.
//!
//! - `liftguard report` — the summary (per gym, athlete, exercise, session), optionally
//!   exported with the raw reps (`--export DIR --format csv|parquet|both`).
//! - `report trends` — weekly population figures by gym / cohort / exercise.
//! - `report trending` — athletes whose event rate or risk rose over the last weeks.
//! - `report load` — acute:chronic load (descriptive, never an alarm).
//! - `report athlete ID` — one athlete's weeks, sessions, sets, reps and trace window.
//! - `report export --out FILE` — every rep in scope as CSV or Parquet, streamed page by
//!   page with a progress bar.
//!
//! Invariants: whoever has the database URL reads as the operator, narrowed to the
//! `--gym`s given; `--pseudonymous` presents pseudonyms exactly as the api would (same
//! secret: `LIFTGUARD_PSEUDONYM_SECRET` or `[api] pseudonym_secret`). Files are written under
//! a temporary name and renamed. The progress bar is drawn only on a terminal (stderr) and
//! never with `--quiet`. Polars runs on blocking threads.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use liftguard_analytics::history::{HistoryInput, athlete_history};
use liftguard_analytics::population::{
    CohortFilter, Dimension, LoadOptions, PopulationInput, TrendOptions, TrendingOptions,
    TrendsInput, load_monitoring, load_window, population_trends, trending_athletes,
    trending_window,
};
use liftguard_analytics::time::parse_time;
use liftguard_analytics::{
    ExportFormat, RepStreamWriter, ReportOptions, build_report, export_reps, raw_reps_frame,
    write_frame_file,
};
use liftguard_model::{AthleteId, Exercise, GymId};
use liftguard_proto::v1::{Athlete, RepRecord};
use liftguard_store::{
    MAX_PAGE_LIMIT, MAX_TIME_US, RepFacts, RiskFacts, Scope, ScopedRepQuery, ScoreBuckets, Store,
};

use crate::serve::open_store;

/// Rows per table printed.
const TEXT_ROWS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Parquet,
    Both,
}

impl Format {
    fn formats(self) -> Vec<ExportFormat> {
        match self {
            Format::Csv => vec![ExportFormat::Csv],
            Format::Parquet => vec![ExportFormat::Parquet],
            Format::Both => vec![ExportFormat::Csv, ExportFormat::Parquet],
        }
    }
}

/// Format of a single output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    Csv,
    Parquet,
}

impl From<FileFormat> for ExportFormat {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Csv => ExportFormat::Csv,
            FileFormat::Parquet => ExportFormat::Parquet,
        }
    }
}

/// `--format`, else the file's extension (`.parquet`/`.pq`), else CSV.
fn file_format(explicit: Option<FileFormat>, path: &Path) -> ExportFormat {
    match explicit {
        Some(f) => f.into(),
        None => path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(ExportFormat::parse)
            .unwrap_or(ExportFormat::Csv),
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[arg(long, env = "LIFTGUARD_DATABASE_URL", global = true)]
    pub database: Option<String>,
    /// Only these gyms (repeat the flag).
    #[arg(long = "gym", global = true)]
    pub gyms: Vec<String>,
    /// Show pseudonyms instead of athlete ids (the api's secret:
    /// LIFTGUARD_PSEUDONYM_SECRET or `[api] pseudonym_secret`).
    #[arg(long, global = true)]
    pub pseudonymous: bool,
    /// No progress bar (it is only drawn on a terminal anyway).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Summary: write the tables and the raw reps to this directory.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Summary: export format.
    #[arg(long, value_enum, default_value = "both")]
    pub format: Format,
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Weekly population trends: event rate per 100 reps, fatigue and stability
    /// distributions, damage, risk; by gym, cohort and exercise.
    Trends(TrendsArgs),
    /// Athletes whose extensor-event rate (or risk) rose over the last weeks.
    Trending(TrendingArgs),
    /// Acute:chronic training load per athlete (descriptive, not an alarm).
    Load(LoadArgs),
    /// One athlete's history: weeks, sessions, sets, reps with evidence, a trace window.
    Athlete(AthleteArgs),
    /// Every rep in scope as one CSV or Parquet file (streamed, with a progress bar).
    Export(ExportArgs),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PopulationArgs {
    /// From this time (YYYY-MM-DD, RFC 3339 or µs); default: all time.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,
    /// Up to this time (exclusive).
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,
    /// Only these exercises (deadlift, squat, kettlebell_swing, carry; repeat).
    #[arg(long = "exercise", value_parser = parse_exercise)]
    pub exercises: Vec<Exercise>,
    #[arg(long = "sex")]
    pub sexes: Vec<String>,
    #[arg(long = "sport")]
    pub sports: Vec<String>,
    /// <18, 18-24, 25-34, 35-44, 45-54, 55-64, 65+, unknown.
    #[arg(long = "age-band")]
    pub age_bands: Vec<String>,
    /// 0-1, 2-4, 5-9, 10+.
    #[arg(long = "training-age-band")]
    pub training_age_bands: Vec<String>,
}

impl PopulationArgs {
    fn range(&self) -> (i64, i64) {
        (self.from.unwrap_or(0), self.to.unwrap_or(MAX_TIME_US + 1))
    }

    fn cohort(&self) -> CohortFilter {
        CohortFilter {
            exercises: self.exercises.iter().map(|e| e.to_proto()).collect(),
            sexes: self.sexes.clone(),
            sports: self.sports.clone(),
            age_bands: self.age_bands.clone(),
            training_age_bands: self.training_age_bands.clone(),
        }
    }
}

fn parse_exercise(s: &str) -> Result<Exercise, String> {
    Exercise::parse(s).ok_or_else(|| {
        format!("unknown exercise {s:?}: use deadlift, squat, kettlebell_swing or carry")
    })
}

fn parse_dimension(s: &str) -> Result<Dimension, String> {
    Dimension::parse(s).ok_or_else(|| {
        format!("unknown dimension {s:?}: use gym, age, sex, training_age, sport, exercise")
    })
}

#[derive(Debug, clap::Args)]
pub struct TrendsArgs {
    #[command(flatten)]
    pub population: PopulationArgs,
    /// Break down by (comma-separated): gym, age, sex, training_age, sport, exercise.
    #[arg(long, value_delimiter = ',', value_parser = parse_dimension)]
    pub by: Vec<Dimension>,
    /// Also write the table to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// File format (default: from the extension, else CSV).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
}

#[derive(Debug, clap::Args)]
pub struct TrendingArgs {
    #[command(flatten)]
    pub population: PopulationArgs,
    /// End of the window (its ISO week is the last); default: the newest rep.
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<i64>,
    #[arg(long, default_value_t = 6)]
    pub weeks: u32,
    #[arg(long, default_value_t = 20)]
    pub min_reps_per_week: u32,
    #[arg(long, default_value_t = 3)]
    pub min_weeks: u32,
    /// Events per 100 reps per week.
    #[arg(long, default_value_t = 1.0)]
    pub min_rate_slope: f64,
    /// Risk probability per week.
    #[arg(long, default_value_t = 0.02)]
    pub min_risk_slope: f64,
    /// List every athlete with data in the window, not only those trending up.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub population: PopulationArgs,
    /// The last day of the windows; default: the newest rep's day.
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<i64>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
}

#[derive(Debug, clap::Args)]
pub struct AthleteArgs {
    /// The athlete id (or its pseudonym with --pseudonymous).
    pub athlete: String,
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,
    /// A lumbar trace window to export (with --out): start.
    #[arg(long, value_parser = parse_time, requires = "trace_to")]
    pub trace_from: Option<i64>,
    #[arg(long, value_parser = parse_time, requires = "trace_from")]
    pub trace_to: Option<i64>,
    /// Write weeks, sessions, sets, reps (and the trace) to this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FileFormat,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub population: PopulationArgs,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
}

/// What every subcommand needs: the store and how to present to the caller.
struct Ctx {
    store: Store,
    scope: Scope,
    key: Vec<u8>,
    quiet: bool,
}

/// Runs `liftguard report`. `secret` is the configured pseudonym secret, if any.
pub async fn run(
    args: ReportArgs,
    database_url: &str,
    max_connections: u32,
    secret: Option<String>,
) -> anyhow::Result<()> {
    let gyms = args
        .gyms
        .iter()
        .map(|g| GymId::parse(g.clone()).with_context(|| format!("--gym {g:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key = match (args.pseudonymous, secret.filter(|s| !s.is_empty())) {
        (false, _) => Vec::new(),
        (true, Some(s)) => s.into_bytes(),
        (true, None) => bail!(
            "--pseudonymous needs the deployment's pseudonym secret: set LIFTGUARD_PSEUDONYM_SECRET \
             or [api] pseudonym_secret"
        ),
    };
    let scope = Scope {
        gyms: (!gyms.is_empty()).then_some(gyms),
        athletes: None,
        identity: !args.pseudonymous,
    };
    let store = open_store(database_url, max_connections).await?;
    let ctx = Ctx {
        store,
        scope,
        key,
        quiet: args.quiet,
    };
    let r = match args.command {
        None => summary(&ctx, args.export, args.format).await,
        Some(ReportCommand::Trends(a)) => trends(&ctx, a).await,
        Some(ReportCommand::Trending(a)) => trending(&ctx, a).await,
        Some(ReportCommand::Load(a)) => load(&ctx, a).await,
        Some(ReportCommand::Athlete(a)) => athlete(&ctx, a).await,
        Some(ReportCommand::Export(a)) => export(&ctx, a).await,
    };
    ctx.store.close().await;
    r
}

/// Runs polars work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("analytics task failed")?
}

async fn summary(ctx: &Ctx, export: Option<PathBuf>, format: Format) -> anyhow::Result<()> {
    let mut reps = Vec::new();
    ctx.store
        .for_each_rep_batch(
            &ctx.scope,
            &ctx.key,
            0,
            MAX_TIME_US + 1,
            MAX_PAGE_LIMIT as usize,
            |batch| {
                reps.extend(batch);
                async { true }
            },
        )
        .await?;
    let athletes = ctx.store.scoped_athletes(&ctx.scope, &ctx.key).await?;
    let files = blocking(move || {
        let report = build_report(&reps, &athletes, &ReportOptions::default())?;
        println!("{}", report.render_text());
        let mut files = Vec::new();
        if let Some(dir) = export {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for f in format.formats() {
                files.extend(report.export(&dir, f)?);
                let path = dir.join(format!("reps.{}", f.extension()));
                export_reps(&reps, &path, f)?;
                files.push(path);
            }
        }
        Ok(files)
    })
    .await?;
    for f in &files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

struct OwnedRows {
    facts: RepFacts,
    athletes: Vec<Athlete>,
    risk: Option<RiskFacts>,
}

impl OwnedRows {
    fn input(&self) -> PopulationInput<'_> {
        PopulationInput {
            reps: &self.facts,
            athletes: &self.athletes,
            risk: self.risk.as_ref(),
        }
    }
}

/// `[from, to)` of the filter narrowed to a window computed from the "as of" (given, or the
/// newest rep in range); returns the resolved "as of" too.
async fn window(
    ctx: &Ctx,
    p: &PopulationArgs,
    as_of: Option<i64>,
    window: impl Fn(i64) -> (i64, i64),
) -> anyhow::Result<((i64, i64), Option<i64>)> {
    let (from, to) = p.range();
    let as_of = match as_of {
        Some(t) => Some(t),
        None => ctx.store.newest_rep_start(&ctx.scope, from, to).await?,
    };
    Ok(match as_of {
        Some(t) => {
            let (s, e) = window(t);
            ((from.max(s), to.min(e)), Some(t))
        }
        None => ((from, to), None),
    })
}

/// What population trends read: score buckets, not every rep.
struct OwnedTrendRows {
    buckets: ScoreBuckets,
    athletes: Vec<Athlete>,
    risk: Option<RiskFacts>,
}

impl OwnedTrendRows {
    fn input(&self) -> TrendsInput<'_> {
        TrendsInput {
            buckets: &self.buckets,
            athletes: &self.athletes,
            risk: self.risk.as_ref(),
        }
    }
}

async fn trend_rows(ctx: &Ctx, p: &PopulationArgs) -> anyhow::Result<OwnedTrendRows> {
    let started = std::time::Instant::now();
    let (from, to) = p.range();
    let buckets = ctx
        .store
        .score_buckets(&ctx.scope, &ctx.key, from, to)
        .await?;
    let (athletes, risk) = cohort_rows(ctx, (from, to)).await?;
    read_done(started, buckets.total_reps(), athletes.len());
    Ok(OwnedTrendRows {
        buckets,
        athletes,
        risk,
    })
}

async fn rows_in(ctx: &Ctx, (from, to): (i64, i64)) -> anyhow::Result<OwnedRows> {
    let started = std::time::Instant::now();
    let facts = ctx.store.rep_facts(&ctx.scope, &ctx.key, from, to).await?;
    let (athletes, risk) = cohort_rows(ctx, (from, to)).await?;
    read_done(started, facts.len() as u64, athletes.len());
    Ok(OwnedRows {
        facts,
        athletes,
        risk,
    })
}

/// What every population query reads besides its reps: the athletes in scope and their
/// daily risk in `[from, to)`.
async fn cohort_rows(
    ctx: &Ctx,
    (from, to): (i64, i64),
) -> anyhow::Result<(Vec<Athlete>, Option<RiskFacts>)> {
    let athletes = ctx.store.scoped_athletes(&ctx.scope, &ctx.key).await?;
    let risk = ctx.store.risk_facts(&ctx.scope, &ctx.key, from, to).await?;
    Ok((athletes, risk))
}

fn read_done(started: std::time::Instant, reps: u64, athletes: usize) {
    tracing::info!(
        reps,
        athletes,
        ms = started.elapsed().as_millis() as u64,
        "rows read"
    );
}

fn write_table(
    df: &liftguard_analytics::DataFrame,
    out: &Option<PathBuf>,
    format: Option<FileFormat>,
) -> anyhow::Result<()> {
    if let Some(path) = out {
        write_frame_file(df, path, file_format(format, path))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn trends(ctx: &Ctx, a: TrendsArgs) -> anyhow::Result<()> {
    let r = trend_rows(ctx, &a.population).await?;
    let opts = TrendOptions {
        group_by: a.by,
        filter: a.population.cohort(),
    };
    blocking(move || {
        let t = population_trends(&r.input(), &opts)?;
        print!("{}", t.render_text(TEXT_ROWS)?);
        if !t.risk_available {
            println!("(no risk scores stored yet)");
        }
        write_table(&t.table, &a.out, a.format)
    })
    .await
}

async fn trending(ctx: &Ctx, a: TrendingArgs) -> anyhow::Result<()> {
    let weeks = a.weeks;
    let (range, as_of) = window(ctx, &a.population, a.as_of, |t| trending_window(t, weeks)).await?;
    let r = rows_in(ctx, range).await?;
    let opts = TrendingOptions {
        as_of_us: as_of,
        weeks: a.weeks,
        min_reps_per_week: a.min_reps_per_week,
        min_weeks: a.min_weeks,
        min_rate_slope: a.min_rate_slope,
        min_risk_slope: a.min_risk_slope,
        include_all: a.all,
        filter: a.population.cohort(),
    };
    blocking(move || {
        let t = trending_athletes(&r.input(), &opts)?;
        print!("{}", t.render_text(TEXT_ROWS)?);
        println!(
            "method: least-squares slope of the weekly extensor-event rate (per 100 reps) over \
             the last {} ISO weeks, weeks with >= {} reps, >= {} such weeks, slope >= {} per week \
             (risk: weekly mean daily risk, slope >= {} per week)",
            opts.weeks,
            opts.min_reps_per_week,
            opts.min_weeks,
            opts.min_rate_slope,
            opts.min_risk_slope
        );
        write_table(&t.table, &a.out, a.format)
    })
    .await
}

async fn load(ctx: &Ctx, a: LoadArgs) -> anyhow::Result<()> {
    let (range, as_of) = window(ctx, &a.population, a.as_of, load_window).await?;
    let r = rows_in(ctx, range).await?;
    let opts = LoadOptions {
        as_of_us: as_of,
        filter: a.population.cohort(),
    };
    blocking(move || {
        let l = load_monitoring(&r.input(), &opts)?;
        print!("{}", l.render_text(TEXT_ROWS)?);
        write_table(&l.table, &a.out, a.format)
    })
    .await
}

async fn athlete(ctx: &Ctx, a: AthleteArgs) -> anyhow::Result<()> {
    let found = ctx
        .store
        .resolve_athlete(&ctx.scope, &ctx.key, &a.athlete)
        .await?
        .with_context(|| format!("athlete {:?} is not in scope", a.athlete))?;
    let id = AthleteId::parse(found.athlete_id.clone())?;
    let gym = GymId::parse(found.gym_id.clone())?;
    let one = Scope {
        gyms: Some(vec![gym]),
        athletes: Some(vec![id.clone()]),
        identity: ctx.scope.identity,
    };
    let shown = ctx
        .store
        .scoped_athletes(&one, &ctx.key)
        .await?
        .pop()
        .context("the athlete is no longer enrolled")?;
    let (from, to) = (a.from.unwrap_or(0), a.to.unwrap_or(MAX_TIME_US + 1));
    let mut reps: Vec<RepRecord> = Vec::new();
    let mut after = None;
    loop {
        let page = ctx
            .store
            .scoped_reps(
                &one,
                &ctx.key,
                &ScopedRepQuery {
                    athlete: Some(id.clone()),
                    from_us: from,
                    to_us: to,
                    limit: MAX_PAGE_LIMIT,
                    after,
                },
            )
            .await?;
        reps.extend(page.reps);
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let risk = ctx.store.risk_facts(&one, &ctx.key, from, to).await?;
    let trace = match (a.trace_from, a.trace_to) {
        (Some(f), Some(t)) => ctx.store.lumbar_trace(&one, &id, f, t).await?,
        _ => Vec::new(),
    };
    let (out, format) = (a.out, ExportFormat::from(a.format));
    let files = blocking(move || {
        let h = athlete_history(&HistoryInput {
            athlete: &shown,
            reps: &reps,
            risk: risk.as_ref(),
        })?;
        print!("{}", h.render_text(TEXT_ROWS)?);
        println!(
            "{} reps ({} with an extensor event); trace points: {}",
            reps.len(),
            reps.iter().filter(|r| r.extensor_event).count(),
            trace.len()
        );
        let mut files = Vec::new();
        if let Some(dir) = out {
            let ext = format.extension();
            for (stem, df) in [
                ("weeks", &h.weeks),
                ("sessions", &h.sessions),
                ("sets", &h.sets),
            ] {
                let path = dir.join(format!("{stem}.{ext}"));
                write_frame_file(df, &path, format)?;
                files.push(path);
            }
            let path = dir.join(format!("reps.{ext}"));
            write_frame_file(&raw_reps_frame(&reps)?, &path, format)?;
            files.push(path);
            if !trace.is_empty() {
                let path = dir.join(format!("trace.{ext}"));
                write_frame_file(&liftguard_analytics::trace_frame(&trace)?, &path, format)?;
                files.push(path);
            }
        }
        Ok(files)
    })
    .await?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// A progress bar on stderr when it is a terminal and not `--quiet`, else hidden.
fn progress(total: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} exporting {wide_bar} {pos}/{len} reps ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

async fn export(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<()> {
    let (from, to) = a.population.range();
    let format = file_format(a.format, &a.out);
    let exercises: Vec<i32> = a
        .population
        .exercises
        .iter()
        .map(|e| e.to_proto())
        .collect();
    let total = ctx.store.count_scoped_reps(&ctx.scope, from, to).await?;
    let bar = progress(total, ctx.quiet);
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tmp_name = a
        .out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = a.out.with_file_name(tmp_name);
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut writer = RepStreamWriter::new(file, format)?;
    let mut failed: Option<anyhow::Error> = None;
    let read = ctx
        .store
        .for_each_rep_batch(
            &ctx.scope,
            &ctx.key,
            from,
            to,
            MAX_PAGE_LIMIT as usize,
            |batch| {
                let n = batch.len() as u64;
                let reps: Vec<RepRecord> = if exercises.is_empty() {
                    batch
                } else {
                    batch
                        .into_iter()
                        .filter(|r| exercises.contains(&r.exercise))
                        .collect()
                };
                // Polars writes here, on the (multi-threaded) runtime's blocking section.
                let ok = match tokio::task::block_in_place(|| writer.write(&reps)) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e.into());
                        false
                    }
                };
                bar.inc(n);
                async move { ok }
            },
        )
        .await;
    let result: anyhow::Result<u64> = match (read, failed) {
        (Err(e), _) => Err(e.into()),
        (_, Some(e)) => Err(e),
        (Ok(_), None) => tokio::task::block_in_place(|| writer.finish()).map_err(Into::into),
    };
    bar.finish_and_clear();
    let rows = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &a.out).with_context(|| format!("renaming to {}", a.out.display()))?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "wrote {} ({rows} reps)", a.out.display());
    Ok(())
}
