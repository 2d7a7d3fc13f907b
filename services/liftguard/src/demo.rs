//! `liftguard demo`: the whole system in one process on the embedded defaults.
//!
//! Starts every role (embedded bus, SQLite in a data directory), enrolls a simulated gym
//! through the Registry RPCs, streams every athlete's two sensors through the real gRPC
//! ingest over loopback, drains the pipeline, then prints the clinician summary (polars)
//! and how the stored results compare with the simulator's ground truth.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use liftguard_client::Token;
use liftguard_model::AthleteId;
use liftguard_proto::v1 as pb;

use crate::{
    config::{FileConfig, Settings},
    gym,
    serve::{self, Roles},
};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub athletes: u32,
    pub minutes: f64,
    pub seed: u64,
    pub data_dir: PathBuf,
    pub export: Option<PathBuf>,
    pub file: FileConfig,
}

/// Fixed start of the simulated session (2026-01-05 09:00 UTC), so a seed reproduces
/// every record id.
pub const SIM_START_US: i64 = 1_767_603_600_000_000;

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let db_path = opts.data_dir.join("liftguard.db");
    if db_path.exists() {
        std::fs::remove_file(&db_path).ok();
    }
    let database_url = format!("sqlite://{}?mode=rwc", db_path.display());
    let operator = random_token();
    let settings = Settings {
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: database_url.clone(),
        kafka_brokers: None,
        operator_token: Some(operator.clone()),
        file: opts.file.clone(),
    };
    eprintln!(
        "liftguard demo: {} athletes, {} min each, seed {}",
        opts.athletes, opts.minutes, opts.seed
    );
    let node = serve::start(&settings, Roles::ALL, prometheus::Registry::new()).await?;
    let grpc = node.grpc_addr.context("no gRPC address")?;
    eprintln!(
        "  serving gRPC on {grpc}, metrics on http://{}/metrics",
        node.http_addr
    );

    let sessions = liftguard_sim::simulate_gym(
        opts.seed,
        opts.athletes,
        opts.minutes,
        SIM_START_US,
        &liftguard_sim::SimOptions::default(),
    );
    let channel = liftguard_client::connect(&format!("http://{grpc}")).await?;
    let slug = "demo-gym";
    let (api_key, enrolled) =
        gym::enroll(channel.clone(), &Token::new(&operator)?, slug, &sessions).await?;
    eprintln!("  enrolled {} athletes with 2 sensors each", enrolled.len());

    let total: usize = sessions
        .iter()
        .map(|s| gym::session_batches(slug, s, gym::BATCH_LEN).len())
        .sum();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "  streaming {bar:40.cyan/blue} {pos}/{len} batches {per_sec} ({msg})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let samples = Arc::new(AtomicU64::new(0));
    let (b, s) = (bar.clone(), samples.clone());
    let started = std::time::Instant::now();
    let report = gym::upload(channel.clone(), &api_key, slug, &sessions, move |ack| {
        b.inc(1);
        if ack.status == pb::AckStatus::Accepted as i32 {
            s.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await?;
    bar.finish_with_message("done");
    eprintln!(
        "  uploaded in {:.1} s: {} accepted, {} duplicates, {} rejected, {} retried",
        started.elapsed().as_secs_f64(),
        report.accepted,
        report.duplicates,
        report.rejected.len(),
        report.retries
    );

    eprintln!("  draining the pipeline (processor, sink) ...");
    node.shutdown().await?;
    let store = serve::open_store(&database_url, 1).await?;

    // The clinician summary, from what the store holds.
    let reps = store.all_reps(&liftguard_store::Scope::all()).await?;
    let athletes: Vec<pb::Athlete> = {
        let gym_id = liftguard_model::GymId::parse(slug)?;
        store
            .list_athletes(&liftguard_store::Scope::all(), &gym_id)
            .await?
    };
    let summary = liftguard_analytics::build_report(
        &reps,
        &athletes,
        &liftguard_analytics::ReportOptions::default(),
    )?;
    println!("{}", summary.render_text());

    // Against the ground truth.
    let mut per_athlete = Vec::new();
    println!("Ground truth check (the simulator knows every rep and angle):");
    for (s, e) in sessions.iter().zip(&enrolled) {
        let mine: Vec<pb::RepRecord> = reps
            .iter()
            .filter(|r| r.athlete_id == e.athlete_id)
            .cloned()
            .collect();
        let trace = store
            .lumbar_trace(
                &liftguard_store::Scope::all(),
                &AthleteId::parse(e.athlete_id.clone())?,
                i64::MIN,
                i64::MAX,
            )
            .await?;
        let a = gym::score(&s.truth, &mine, &trace);
        println!(
            "  Athlete {:<8} sets {:>2}/{:<2} exact  reps {:>3} detected / {:>3} true  lumbar RMSE {:.2} deg",
            s.athlete.id, a.sets_exact, a.sets, a.reps_detected, a.reps_true, a.lumbar_rmse_deg
        );
        per_athlete.push(a);
    }
    let all = gym::Accuracy::merge(&per_athlete);
    println!(
        "  overall: rep count exact in {}/{} sets (max error {}), {} reps detected vs {} true, lumbar flexion RMSE {:.2} deg over {} points",
        all.sets_exact,
        all.sets,
        all.max_count_error,
        all.reps_detected,
        all.reps_true,
        all.lumbar_rmse_deg,
        all.lumbar_points
    );
    if let Some(dir) = &opts.export {
        std::fs::create_dir_all(dir)?;
        let mut files = summary.export(dir, liftguard_analytics::ExportFormat::Csv)?;
        files.extend(summary.export(dir, liftguard_analytics::ExportFormat::Parquet)?);
        println!("Exported {} files to {}", files.len(), dir.display());
    }
    println!(
        "Data kept in {} (try: liftguard report --database {database_url})",
        db_path.display()
    );
    Ok(())
}

/// A random operator token for this process only.
fn random_token() -> String {
    format!("demo-op-{}", hex::encode(rand::random::<[u8; 24]>()))
}
