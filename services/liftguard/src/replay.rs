//! `liftguard replay`: streams a recording (a sensor logbook) to an ingest endpoint with
//! its original device timestamps, e.g. a gym backfilling data synced after a session.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use liftguard_client::{Token, UploadOptions, Uploader, batches_from_samples};
use liftguard_model::Exercise;
use liftguard_proto::v1 as pb;

use crate::recording;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub file: PathBuf,
    pub sensor: String,
    pub endpoint: String,
    pub api_key: String,
    /// Sample rate; estimated from the timestamps when absent.
    pub rate_hz: Option<f64>,
    /// First `seq`: continue the sensor's numbering (it must exceed what ingest saw).
    pub first_seq: u64,
    pub batch_len: usize,
    /// Shift every timestamp by this many seconds (e.g. to map a relative `t_s` to wall time).
    pub time_offset_s: f64,
    pub exercise: Option<Exercise>,
    pub load_kg: Option<f32>,
    pub set_id: Option<String>,
}

pub async fn run(o: ReplayOptions) -> anyhow::Result<()> {
    let mut samples = recording::read(&o.file)?;
    let shift = (o.time_offset_s * 1e6).round() as i64;
    for s in &mut samples {
        s.t_us += shift;
    }
    let rate = match o.rate_hz {
        Some(r) => r,
        None => recording::estimate_rate_hz(&samples)
            .context("cannot estimate the sample rate; pass --rate-hz")?,
    };
    if !(25.0..=400.0).contains(&rate) {
        bail!("sample rate {rate:.1} Hz is outside 25..=400 Hz");
    }
    let set = (o.exercise.is_some() || o.load_kg.is_some() || o.set_id.is_some()).then(|| {
        pb::SetContext {
            set_id: o.set_id.clone().unwrap_or_default(),
            exercise: o.exercise.map_or(0, Exercise::to_proto),
            load_kg: o.load_kg.unwrap_or(0.0),
        }
    });
    let batches = batches_from_samples(&o.sensor, o.first_seq, rate, &samples, o.batch_len, set);
    let n = batches.len();
    let last_seq = batches.last().map_or(o.first_seq, |b| b.seq);
    eprintln!(
        "replaying {} samples at {rate:.1} Hz from {} as {} batches (seq {}..={last_seq}) to {}",
        samples.len(),
        o.file.display(),
        n,
        o.first_seq,
        o.endpoint
    );
    let channel = liftguard_client::connect(&o.endpoint).await?;
    let mut up = Uploader::new(channel, Token::new(&o.api_key)?, UploadOptions::default());
    let report = up
        .upload(batches, |ack| {
            if ack.status == pb::AckStatus::Rejected as i32 {
                eprintln!(
                    "  seq {} rejected: code {} field {:?}: {}",
                    ack.seq, ack.code, ack.field, ack.reason
                );
            }
        })
        .await?;
    println!(
        "replayed {n} batches: {} accepted, {} duplicates, {} rejected, {} retried; next seq {}",
        report.accepted,
        report.duplicates,
        report.rejected.len(),
        report.retries,
        last_seq + 1
    );
    if !report.rejected.is_empty() {
        bail!("{} batches were rejected", report.rejected.len());
    }
    Ok(())
}
