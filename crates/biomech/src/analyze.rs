//! Offline analysis of a recording (used by `liftguard analyze`): both sensors' samples go
//! through the same [`AthletePipeline`] as in the live system, interleaved by time.
//!
//! The sacrum's clock may be offset by seconds; interleaving by raw device time would then
//! hold one stream back by that offset. The offset is first estimated with the same sensor
//! stages and aligner (a dry run over the start of the data, assuming both recordings
//! started at about the same time), and the sacrum samples are interleaved at their
//! estimated thoracolumbar time. The pipeline still estimates the offset itself; the dry
//! run only orders the feed.
//!
//! Invariants: pure; the result depends only on the arguments; no sample is fed twice.

use liftguard_model::{Exercise, Placement};
use serde::{Deserialize, Serialize};

use crate::align::ClockAligner;
use crate::config::Config;
use crate::sensor::SensorStage;
use crate::{AthleteParams, AthletePipeline, ImuSample, KinematicsPoint, Output, Rep, SetInfo};

/// Samples per push in the interleaved feed.
const FEED_BATCH: usize = 16;

/// The result of [`analyze_recordings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub reps: Vec<Rep>,
    /// At `Config::kinematics_rate_hz` (25 Hz by default), thoracolumbar clock.
    pub kinematics: Vec<KinematicsPoint>,
    pub summary: AnalysisSummary,
}

/// Headline numbers of an analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSummary {
    pub sets: u32,
    pub reps: u32,
    pub extensor_events: u32,
    /// Extensor events per rep (0 without reps).
    pub extensor_event_rate: f64,
    pub peak_fatigue: f64,
    pub mean_stability_deficit: f64,
    pub peak_lumbar_flexion_deg: f64,
    pub cumulative_damage: f64,
    pub p_high_risk: f64,
    /// Reps per exercise (exercise name, count), in `Exercise::ALL` order.
    pub reps_by_exercise: Vec<(Exercise, u32)>,
    /// Estimated sacrum-minus-thoracolumbar clock offset, µs.
    pub clock_offset_us: Option<i64>,
}

/// Estimates the sacrum clock offset by running the sensor stages and the aligner over the
/// recordings (each in its own time order) until a first estimate is accepted.
pub fn estimate_clock_offset(
    config: &Config,
    thoracolumbar: &[ImuSample],
    sacrum: &[ImuSample],
) -> Option<i64> {
    let cfg = config.validated();
    let mut t = SensorStage::new(&cfg);
    let mut p = SensorStage::new(&cfg);
    let mut aligner = ClockAligner::default();
    let period = cfg.grid_period_us();
    let (mut i, mut j) = (0usize, 0usize);
    // The recordings are assumed to start together: each advances relative to its own first
    // sample, and that feed order is the arrival prior the aligner refines.
    let (Some(t0), Some(p0)) = (thoracolumbar.first(), sacrum.first()) else {
        return None;
    };
    while i < thoracolumbar.len() || j < sacrum.len() {
        let take_t = j >= sacrum.len()
            || (i < thoracolumbar.len()
                && thoracolumbar[i].t_us - t0.t_us <= sacrum[j].t_us - p0.t_us);
        if take_t {
            t.push(&cfg, &thoracolumbar[i]);
            i += 1;
        } else {
            p.push(&cfg, &sacrum[j]);
            j += 1;
        }
        let newest_t = thoracolumbar[i.saturating_sub(1)].t_us;
        let newest_p = sacrum[j.saturating_sub(1)].t_us;
        aligner.observe_arrival(newest_p.saturating_sub(newest_t) as f64);
        if aligner.update(&cfg.align, &mut t.onset, &mut p.onset, period) {
            return aligner.offset_us();
        }
    }
    None
}

/// Feeds both recordings through one pipeline (with `set` as the whole recording's set
/// context), then `finish()`, and collects the outputs.
pub fn analyze_recordings(
    config: &Config,
    params: AthleteParams,
    set: SetInfo,
    thoracolumbar: &[ImuSample],
    sacrum: &[ImuSample],
) -> Analysis {
    let mut pipe = AthletePipeline::new(config, params);
    pipe.set_context(set);
    let offset = estimate_clock_offset(config, thoracolumbar, sacrum).unwrap_or(0);
    let mut out = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    while i < thoracolumbar.len() || j < sacrum.len() {
        let next_t = thoracolumbar.get(i).map(|s| s.t_us);
        let next_p = sacrum.get(j).map(|s| s.t_us.saturating_sub(offset));
        let take_t = match (next_t, next_p) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            _ => false,
        };
        if take_t {
            let end = (i + FEED_BATCH).min(thoracolumbar.len());
            pipe.push(
                config,
                Placement::Thoracolumbar,
                &thoracolumbar[i..end],
                &mut out,
            );
            i = end;
        } else {
            let end = (j + FEED_BATCH).min(sacrum.len());
            pipe.push(config, Placement::Sacrum, &sacrum[j..end], &mut out);
            j = end;
        }
    }
    pipe.finish(config, &mut out);
    let mut reps = Vec::new();
    let mut kinematics = Vec::new();
    for o in out {
        match o {
            Output::Rep(r) => reps.push(r),
            Output::Kinematics(k) => kinematics.push(k),
        }
    }
    let summary = summarize(&reps, pipe.clock_offset_us());
    Analysis {
        reps,
        kinematics,
        summary,
    }
}

fn summarize(reps: &[Rep], clock_offset_us: Option<i64>) -> AnalysisSummary {
    let n = reps.len() as u32;
    let events = reps.iter().filter(|r| r.extensor_event).count() as u32;
    let mut sets: Vec<u32> = reps.iter().map(|r| r.set_index).collect();
    sets.dedup();
    AnalysisSummary {
        sets: sets.len() as u32,
        reps: n,
        extensor_events: events,
        extensor_event_rate: if n > 0 {
            f64::from(events) / f64::from(n)
        } else {
            0.0
        },
        peak_fatigue: reps.iter().map(|r| r.fatigue.score).fold(0.0, f64::max),
        mean_stability_deficit: if n > 0 {
            reps.iter().map(|r| r.stability_deficit).sum::<f64>() / f64::from(n)
        } else {
            0.0
        },
        peak_lumbar_flexion_deg: reps
            .iter()
            .map(|r| r.peak_lumbar_flexion_deg)
            .fold(0.0, f64::max),
        cumulative_damage: reps.last().map_or(0.0, |r| r.damage.cumulative_session),
        p_high_risk: reps.last().map_or(0.0, |r| r.damage.p_high_risk),
        reps_by_exercise: Exercise::ALL
            .iter()
            .map(|&e| (e, reps.iter().filter(|r| r.exercise == e).count() as u32))
            .collect(),
        clock_offset_us,
    }
}
