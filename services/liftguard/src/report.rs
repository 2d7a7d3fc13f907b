//! `liftguard report`: the clinician summary (polars) over the store, printed and
//! optionally exported as CSV and/or Parquet.

use std::path::PathBuf;

use anyhow::Context as _;
use liftguard_analytics::{ExportFormat, ReportOptions, build_report, export_reps};
use liftguard_model::GymId;

use crate::serve::open_store;

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

pub async fn run(
    database_url: &str,
    max_connections: u32,
    gym: Option<String>,
    export: Option<PathBuf>,
    format: Format,
) -> anyhow::Result<()> {
    let store = open_store(database_url, max_connections).await?;
    let gym = gym.map(GymId::parse).transpose().context("--gym")?;
    let reps = store.all_reps(gym.as_ref()).await?;
    let mut athletes = Vec::new();
    match &gym {
        Some(g) => athletes = store.list_athletes(g).await?,
        None => {
            for g in store.list_gyms().await? {
                athletes.extend(store.list_athletes(&GymId::parse(g.gym_id)?).await?);
            }
        }
    }
    let report = build_report(&reps, &athletes, &ReportOptions::default())?;
    println!("{}", report.render_text());
    if let Some(dir) = export {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut files = Vec::new();
        for f in format.formats() {
            files.extend(report.export(&dir, f)?);
            let ext = match f {
                ExportFormat::Csv => "csv",
                ExportFormat::Parquet => "parquet",
            };
            let path = dir.join(format!("reps.{ext}"));
            export_reps(&reps, &path, f)?;
            files.push(path);
        }
        for f in &files {
            println!("wrote {}", f.display());
        }
    }
    store.close().await;
    Ok(())
}
