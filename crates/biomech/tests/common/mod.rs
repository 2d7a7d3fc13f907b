//! Shared harness for the accuracy tests: drives the pipeline with simulated sessions the
//! way the live system would (both sensors' batches interleaved by arrival, i.e. by true
//! time; set metadata announced by the client just before each set) and scores the
//! outputs against the simulator's ground truth.
#![allow(dead_code)]

use liftguard_biomech::{
    AthleteParams, AthletePipeline, Capacity, Config, ImuSample, KinematicsPoint, Output, Rep,
    SetInfo,
};
use liftguard_model::{Exercise, Placement};
use liftguard_sim::{AthleteSpec, SimOptions, SimSession, Truth, TruthRep};

pub const START_US: i64 = 1_700_000_000_000_000;
/// Samples per batch (≈ 100 ms at 100 Hz), like a wearable's uplink.
pub const BATCH: usize = 10;
/// The client announces a set this long before its first rep.
pub const ANNOUNCE_BEFORE_S: f64 = 3.0;

pub fn params(a: &AthleteSpec) -> AthleteParams {
    AthleteParams {
        height_m: a.height_m,
        mass_kg: a.mass_kg,
        capacity_kg: Capacity {
            deadlift: a.capacity_kg.deadlift,
            squat: a.capacity_kg.squat,
            swing: a.capacity_kg.swing,
        },
    }
}

pub fn convert(s: &[liftguard_sim::ImuSample]) -> Vec<ImuSample> {
    s.iter()
        .map(|x| ImuSample {
            t_us: x.t_us,
            acc: x.acc,
            gyro: x.gyro,
        })
        .collect()
}

pub struct Run {
    pub reps: Vec<Rep>,
    pub kin: Vec<KinematicsPoint>,
    pub pipeline: AthletePipeline,
    pub max_state_bytes: usize,
}

/// Feeds a session through one pipeline. `metadata`: announce each set (exercise, load,
/// id); otherwise the pipeline classifies and splits sets itself.
pub fn run_session(cfg: &Config, s: &SimSession, metadata: bool) -> Run {
    run_session_with(cfg, s, metadata, &mut |_, _| {})
}

/// As [`run_session`], calling `hook(pipeline, t12_time)` before every thoracolumbar batch.
pub fn run_session_with(
    cfg: &Config,
    s: &SimSession,
    metadata: bool,
    hook: &mut dyn FnMut(&mut AthletePipeline, i64),
) -> Run {
    let mut p = AthletePipeline::new(cfg, params(&s.athlete));
    let t = convert(&s.thoracolumbar.samples);
    let sa = convert(&s.sacrum.samples);
    let off_t = s.thoracolumbar.clock_offset_us;
    let off_s = s.sacrum.clock_offset_us;
    let mut announcements: Vec<(i64, SetInfo)> = if metadata {
        s.truth
            .sets
            .iter()
            .map(|set| {
                (
                    set.start_us - (ANNOUNCE_BEFORE_S * 1e6) as i64,
                    SetInfo {
                        set_id: Some(set.set_id.clone()),
                        exercise: Some(set.exercise),
                        load_kg: Some(set.load_kg),
                    },
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    announcements.reverse();
    let mut out = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_state = 0usize;
    let mut batches = 0u64;
    while i < t.len() || j < sa.len() {
        // Arrival order = true time.
        let nt = t.get(i).map(|x| x.t_us - off_t);
        let ns = sa.get(j).map(|x| x.t_us - off_s);
        let take_t = match (nt, ns) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            _ => false,
        };
        if take_t {
            let t_now = t[i].t_us;
            while announcements.last().is_some_and(|(at, _)| *at <= t_now) {
                if let Some((_, info)) = announcements.pop() {
                    p.set_context(info);
                }
            }
            hook(&mut p, t_now);
            let end = (i + BATCH).min(t.len());
            p.push(cfg, Placement::Thoracolumbar, &t[i..end], &mut out);
            i = end;
        } else {
            let end = (j + BATCH).min(sa.len());
            p.push(cfg, Placement::Sacrum, &sa[j..end], &mut out);
            j = end;
        }
        batches += 1;
        if batches.is_multiple_of(997) {
            max_state = max_state.max(serde_json::to_vec(&p).map(|v| v.len()).unwrap_or(0));
        }
    }
    finish_run(cfg, p, out, max_state)
}

/// Truth (trunk, pelvis, lumbar) in degrees at `t_us` (thoracolumbar clock).
/// Finishes the pipeline and splits everything it emitted into a [`Run`].
pub fn finish_run(
    cfg: &Config,
    mut p: AthletePipeline,
    mut out: Vec<Output>,
    max_state_bytes: usize,
) -> Run {
    p.finish(cfg, &mut out);
    let mut reps = Vec::new();
    let mut kin = Vec::new();
    for o in out {
        match o {
            Output::Rep(r) => reps.push(r),
            Output::Kinematics(k) => kin.push(k),
        }
    }
    Run {
        reps,
        kin,
        pipeline: p,
        max_state_bytes,
    }
}

pub fn truth_at(truth: &Truth, t_us: i64) -> Option<(f64, f64, f64)> {
    let x = (t_us - truth.start_us) as f64 / 10_000.0;
    if x < 0.0 || truth.lumbar.len() < 2 {
        return None;
    }
    let i = x.floor() as usize;
    if i + 1 >= truth.lumbar.len() {
        return None;
    }
    let w = x - i as f64;
    let a = &truth.lumbar[i];
    let b = &truth.lumbar[i + 1];
    let l = |p: f64, q: f64| p + w * (q - p);
    Some((
        l(a.trunk_inclination_deg, b.trunk_inclination_deg),
        l(a.pelvis_inclination_deg, b.pelvis_inclination_deg),
        l(a.lumbar_flexion_deg, b.lumbar_flexion_deg),
    ))
}

/// Lumbar-angle errors (ours − truth) over all kinematics points.
pub fn lumbar_errors(run: &Run, truth: &Truth) -> Vec<f64> {
    run.kin
        .iter()
        .filter_map(|k| {
            truth_at(truth, k.t_us).map(|(_, _, l)| f64::from(k.lumbar_flexion_deg) - l)
        })
        .collect()
}

pub fn rmse(e: &[f64]) -> f64 {
    if e.is_empty() {
        return f64::NAN;
    }
    (e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64).sqrt()
}

/// A truth rep with its exercise.
#[derive(Debug, Clone)]
pub struct TRep {
    pub set_id: String,
    pub exercise: Exercise,
    pub rep: TruthRep,
}

pub fn truth_reps(truth: &Truth) -> Vec<TRep> {
    truth
        .sets
        .iter()
        .flat_map(|s| {
            s.reps.iter().map(move |r| TRep {
                set_id: s.set_id.clone(),
                exercise: s.exercise,
                rep: r.clone(),
            })
        })
        .collect()
}

fn overlap(a0: i64, a1: i64, b0: i64, b1: i64) -> i64 {
    (a1.min(b1) - a0.max(b0)).max(0)
}

/// Pairs detected reps with truth reps by maximal overlap of [start, end] (one-to-one,
/// greedy in time order). Returns (pairs (detected idx, truth idx), unmatched detected,
/// unmatched truth).
pub fn match_reps(reps: &[Rep], truth: &[TRep]) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut used = vec![false; truth.len()];
    let mut pairs = Vec::new();
    let mut lone = Vec::new();
    for (i, r) in reps.iter().enumerate() {
        let best = truth
            .iter()
            .enumerate()
            .filter(|(k, _)| !used[*k])
            .map(|(k, t)| {
                (
                    k,
                    overlap(r.start_us, r.end_us, t.rep.start_us, t.rep.end_us),
                )
            })
            .filter(|(_, o)| *o > 0)
            .max_by_key(|(_, o)| *o);
        match best {
            Some((k, _)) => {
                used[k] = true;
                pairs.push((i, k));
            }
            None => lone.push(i),
        }
    }
    let missed = (0..truth.len()).filter(|k| !used[*k]).collect();
    (pairs, lone, missed)
}

/// Area under the ROC curve of `scores` for binary `labels` (ties count half).
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !**l)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            if p > n {
                wins += 1.0;
            } else if p == n {
                wins += 0.5;
            }
        }
    }
    wins / (pos.len() * neg.len()) as f64
}

/// Realistic sensor options for a scenario index: 50–200 Hz (different per sensor), clock
/// offsets from tens of ms to seconds, default noise/bias/drops, random mountings.
pub fn scenario_options(k: u64) -> SimOptions {
    const RATES: [(f64, f64); 6] = [
        (100.0, 100.0),
        (50.0, 200.0),
        (200.0, 50.0),
        (100.0, 60.0),
        (120.0, 100.0),
        (200.0, 200.0),
    ];
    const OFFSETS: [i64; 6] = [30_000, -45_000, 1_200_000, -2_500_000, 80_000, 400_000];
    let (rt, rs) = RATES[(k % 6) as usize];
    SimOptions {
        rate_hz_thoracolumbar: rt,
        rate_hz_sacrum: rs,
        clock_offset_us_sacrum: OFFSETS[((k / 2) % 6) as usize],
        clock_offset_us_thoracolumbar: 5_000 * (k as i64 % 7),
        random_mounting: true,
        ..SimOptions::default()
    }
}
