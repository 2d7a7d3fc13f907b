//! `liftguard replay`: streams recordings (sensor logbooks) to an ingest endpoint with
//! their original device timestamps, e.g. a gym backfilling data synced after a session.
//! Several files (one per sensor, typically an athlete's two) go out on one stream,
//! interleaved by time as a gateway would send them.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use liftguard_client::{Token, UploadOptions, Uploader, batches_from_samples};
use liftguard_model::Exercise;
use liftguard_proto::v1 as pb;

use crate::recording;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// `(recording, sensor id)` pairs.
    pub files: Vec<(PathBuf, String)>,
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
    if o.files.is_empty() {
        bail!("nothing to replay: give at least one FILE with its --sensor");
    }
    let set = (o.exercise.is_some() || o.load_kg.is_some() || o.set_id.is_some()).then(|| {
        pb::SetContext {
            set_id: o.set_id.clone().unwrap_or_default(),
            exercise: o.exercise.map_or(0, Exercise::to_proto),
            load_kg: o.load_kg.unwrap_or(0.0),
        }
    });
    let shift = (o.time_offset_s * 1e6).round() as i64;
    let mut batches = Vec::new();
    let mut last_seqs = Vec::new();
    for (file, sensor) in &o.files {
        let mut samples = recording::read(file)?;
        for s in &mut samples {
            s.t_us += shift;
        }
        let rate = match o.rate_hz {
            Some(r) => r,
            None => recording::estimate_rate_hz(&samples).with_context(|| {
                format!(
                    "{}: cannot estimate the sample rate; pass --rate-hz",
                    file.display()
                )
            })?,
        };
        if !(25.0..=400.0).contains(&rate) {
            bail!(
                "{}: sample rate {rate:.1} Hz is outside 25..=400 Hz",
                file.display()
            );
        }
        let mut b = batches_from_samples(
            sensor,
            o.first_seq,
            rate,
            &samples,
            o.batch_len,
            set.clone(),
        );
        // A logbook is a whole session: its last batch ends it.
        if let Some(last) = b.last_mut() {
            last.end_of_session = true;
        }
        let last = b.last().map_or(o.first_seq, |b| b.seq);
        eprintln!(
            "{}: {} samples at {rate:.1} Hz as sensor {sensor}, {} batches (seq {}..={last})",
            file.display(),
            samples.len(),
            b.len(),
            o.first_seq
        );
        last_seqs.push((sensor.clone(), last));
        batches.extend(b);
    }
    // One sensor's batches stay in seq order: the sort is stable and their times increase.
    batches.sort_by_key(|b| b.first_sample_time_us);
    let n = batches.len();
    eprintln!("replaying {n} batches to {}", o.endpoint);
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
        "replayed {n} batches: {} accepted, {} duplicates, {} rejected, {} retried",
        report.accepted,
        report.duplicates,
        report.rejected.len(),
        report.retries,
    );
    for (sensor, last) in last_seqs {
        println!("  next seq for {sensor}: {}", last + 1);
    }
    if !report.rejected.is_empty() {
        bail!("{} batches were rejected", report.rejected.len());
    }
    Ok(())
}
