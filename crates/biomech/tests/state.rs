//! Per-athlete state: bounded size (≤ 64 KiB serialised, worst case included), exact
//! checkpoint/restore, and re-calibration after a re-attached sensor (announced or not).
//!
//! Reproduce: `cargo test -p liftguard-biomech --test state -- --nocapture`

mod common;

use common::*;
use liftguard_biomech::{AthletePipeline, Config, ImuSample, Output};
use liftguard_model::{Exercise, Placement};
use liftguard_sim::{SimOptions, SimSession};

const MAX_STATE: usize = 64 * 1024;

fn session(seed: u64, minutes: f64) -> SimSession {
    let a = liftguard_sim::random_athlete(seed, 0);
    let plan = liftguard_sim::random_session_plan(seed, &a, minutes, START_US);
    liftguard_sim::simulate(&a, &plan, &scenario_options(seed % 12), seed)
}

/// Feeds both sensors in arrival order, calling `at_batch(k, pipeline)` before batch k.
fn feed(
    cfg: &Config,
    s: &SimSession,
    t: &[ImuSample],
    sa: &[ImuSample],
    mut p: AthletePipeline,
    mut at_batch: impl FnMut(usize, &mut AthletePipeline),
) -> (Vec<Output>, AthletePipeline) {
    let (off_t, off_s) = (s.thoracolumbar.clock_offset_us, s.sacrum.clock_offset_us);
    let mut out = Vec::new();
    let (mut i, mut j, mut k) = (0, 0, 0);
    while i < t.len() || j < sa.len() {
        at_batch(k, &mut p);
        k += 1;
        let take_t = match (t.get(i), sa.get(j)) {
            (Some(a), Some(b)) => a.t_us - off_t <= b.t_us - off_s,
            (Some(_), None) => true,
            _ => false,
        };
        if take_t {
            let e = (i + BATCH).min(t.len());
            p.push(cfg, Placement::Thoracolumbar, &t[i..e], &mut out);
            i = e;
        } else {
            let e = (j + BATCH).min(sa.len());
            p.push(cfg, Placement::Sacrum, &sa[j..e], &mut out);
            j = e;
        }
    }
    p.finish(cfg, &mut out);
    (out, p)
}

#[test]
fn worst_case_state_is_below_64_kib() {
    // The sacrum's clock is 100 s off (beyond `max_offset_s`): the two sensors are never
    // aligned, so both sample buffers stay full for the whole session.
    let cfg = Config::default();
    let s = session(3, 6.0);
    let t = convert(&s.thoracolumbar.samples);
    let mut sa = convert(&s.sacrum.samples);
    sa.iter_mut().for_each(|x| x.t_us += 100_000_000);
    let mut worst = 0usize;
    let p = AthletePipeline::new(&cfg, params(&s.athlete));
    let (out, p) = feed(&cfg, &s, &t, &sa, p, |k, p| {
        if k % 50 == 0 {
            worst = worst.max(serde_json::to_vec(p).map(|v| v.len()).unwrap_or(usize::MAX));
        }
    });
    let full = p.sensor(Placement::Sacrum).ring_len();
    eprintln!(
        "STATE worst case (never aligned, full buffers): {worst} bytes JSON (limit {MAX_STATE}); sacrum buffer {full} entries"
    );
    assert!(worst <= MAX_STATE);
    assert!(p.clock_offset_us().is_none());
    // Without alignment the trunk alone still segments reps.
    assert!(out.iter().any(|o| matches!(o, Output::Rep(_))));
}

#[test]
fn checkpoint_restore_is_exact() {
    let cfg = Config::default();
    let s = session(5, 6.0);
    let t = convert(&s.thoracolumbar.samples);
    let sa = convert(&s.sacrum.samples);
    let fresh = || AthletePipeline::new(&cfg, params(&s.athlete));
    let (reference, _) = feed(&cfg, &s, &t, &sa, fresh(), |_, _| {});
    // Same feed, but the state goes through a JSON checkpoint every 400 batches.
    let mut sizes = Vec::new();
    let (restored, _) = feed(&cfg, &s, &t, &sa, fresh(), |k, p| {
        if k % 400 == 399 {
            let bytes = serde_json::to_vec(p).expect("serialize");
            sizes.push(bytes.len());
            *p = serde_json::from_slice(&bytes).expect("deserialize");
        }
    });
    let reps = reference
        .iter()
        .filter(|o| matches!(o, Output::Rep(_)))
        .count();
    eprintln!(
        "CHECKPOINT {} restores (sizes {}..{} bytes): {} outputs, {reps} reps, identical",
        sizes.len(),
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0),
        reference.len()
    );
    assert!(sizes.len() > 10 && reps > 20);
    assert_eq!(restored.len(), reference.len());
    if let Some(i) = (0..reference.len()).find(|&i| restored[i] != reference[i]) {
        panic!(
            "output {i} differs after restore:\n{:?}\n{:?}",
            reference[i], restored[i]
        );
    }
}

/// Rotates a sensor's samples from `from_us` on by the rotation `r` (a re-attachment).
fn reattach(samples: &mut [ImuSample], from_us: i64, r: [[f64; 3]; 3]) {
    let rot = |v: [f32; 3]| {
        let v = v.map(f64::from);
        [0, 1, 2].map(|i| (r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2]) as f32)
    };
    for s in samples.iter_mut().filter(|s| s.t_us >= from_us) {
        s.acc = rot(s.acc);
        s.gyro = rot(s.gyro);
    }
}

fn axis_angle(axis: [f64; 3], deg: f64) -> [[f64; 3]; 3] {
    let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
    let [x, y, z] = axis.map(|v| v / n);
    let (s, c) = deg.to_radians().sin_cos();
    let t = 1.0 - c;
    [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]
}

/// Runs a session whose thoracolumbar sensor is re-attached (rotated by `r`) during the
/// rest after the second set; returns (lumbar RMSE from 40 s after the re-attachment,
/// exact rep counts, sets, recalibrations).
fn run_reattach(seed: u64, r: [[f64; 3]; 3], announce: bool) -> (f64, usize, usize, u32) {
    run_reattach_with(seed, |_| r, announce)
}

/// As `run_reattach`, the rotation computed from the session's thoracolumbar samples.
fn run_reattach_with(
    seed: u64,
    make_r: impl Fn(&[ImuSample]) -> [[f64; 3]; 3],
    announce: bool,
) -> (f64, usize, usize, u32) {
    let cfg = Config::default();
    let a = liftguard_sim::random_athlete(seed, 0);
    let plan = liftguard_sim::random_session_plan_with(
        seed,
        &a,
        12.0,
        START_US,
        &liftguard_sim::PlanOptions {
            rest_min_s: 60.0,
            rest_max_s: 90.0,
            carry_probability: 0.0,
            ..Default::default()
        },
    );
    let s = liftguard_sim::simulate(&a, &plan, &SimOptions::default(), seed);
    let at = s.truth.sets[1].end_us + 15_000_000;
    let mut t = convert(&s.thoracolumbar.samples);
    let sa = convert(&s.sacrum.samples);
    let r = make_r(&t);
    reattach(&mut t, at, r);
    let run = run_session_with_samples(&cfg, &s, &t, &sa, announce.then_some(at));
    let errs: Vec<f64> = run
        .kin
        .iter()
        .filter(|k| k.t_us > at + 40_000_000)
        .filter_map(|k| {
            truth_at(&s.truth, k.t_us).map(|(_, _, l)| f64::from(k.lumbar_flexion_deg) - l)
        })
        .collect();
    let mut exact = 0;
    let lifts: Vec<_> = s
        .truth
        .sets
        .iter()
        .filter(|x| x.exercise != Exercise::Carry)
        .collect();
    for set in &lifts {
        let n = run
            .reps
            .iter()
            .filter(|r| r.set_id.as_deref() == Some(set.set_id.as_str()))
            .count();
        if n == set.reps.len() {
            exact += 1;
        }
    }
    let recal = run
        .pipeline
        .sensor(Placement::Thoracolumbar)
        .stats()
        .recalibrations;
    (rmse(&errs), exact, lifts.len(), recal)
}

/// Like `run_session`, on given (modified) samples, optionally announcing a thoracolumbar
/// re-attachment at `reattach_at_us` (thoracolumbar clock).
fn run_session_with_samples(
    cfg: &Config,
    s: &SimSession,
    t: &[ImuSample],
    sa: &[ImuSample],
    reattach_at_us: Option<i64>,
) -> Run {
    let mut p = AthletePipeline::new(cfg, params(&s.athlete));
    let (off_t, off_s) = (s.thoracolumbar.clock_offset_us, s.sacrum.clock_offset_us);
    let mut sets: Vec<_> = s.truth.sets.iter().rev().collect();
    let mut pending_reattach = reattach_at_us;
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < t.len() || j < sa.len() {
        let take_t = match (t.get(i), sa.get(j)) {
            (Some(a), Some(b)) => a.t_us - off_t <= b.t_us - off_s,
            (Some(_), None) => true,
            _ => false,
        };
        if take_t {
            let now = t[i].t_us;
            while sets.last().is_some_and(|x| x.start_us - 3_000_000 <= now) {
                if let Some(x) = sets.pop() {
                    p.set_context(liftguard_biomech::SetInfo {
                        set_id: Some(x.set_id.clone()),
                        exercise: Some(x.exercise),
                        load_kg: Some(x.load_kg),
                    });
                }
            }
            if pending_reattach.is_some_and(|at| now >= at) {
                p.reattached(Placement::Thoracolumbar);
                pending_reattach = None;
            }
            // Split batches at the re-attachment so no batch mixes mountings.
            let mut e = (i + BATCH).min(t.len());
            if let Some(at) = pending_reattach {
                while e > i + 1 && t[e - 1].t_us >= at {
                    e -= 1;
                }
            }
            p.push(cfg, Placement::Thoracolumbar, &t[i..e], &mut out);
            i = e;
        } else {
            let e = (j + BATCH).min(sa.len());
            p.push(cfg, Placement::Sacrum, &sa[j..e], &mut out);
            j = e;
        }
    }
    finish_run(cfg, p, out, 0)
}

#[test]
fn reattached_sensor_is_recalibrated() {
    for seed in [21u64, 22] {
        // Announced: any rotation.
        let r = axis_angle([0.3, -0.8, 0.5], 70.0);
        let (rmse_a, exact_a, n, recal_a) = run_reattach(seed, r, true);
        eprintln!(
            "REATTACH seed {seed} announced: lumbar RMSE {rmse_a:.2}° after, reps exact in {exact_a}/{n} sets, recalibrations {recal_a}"
        );
        assert!(rmse_a <= 2.0 && recal_a >= 1 && exact_a + 1 >= n);
        // Not announced, a tilt with a lateral part: detected from quiet stance.
        let (rmse_b, exact_b, n, recal_b) = run_reattach(seed, r, false);
        eprintln!(
            "REATTACH seed {seed} detected (tilted): lumbar RMSE {rmse_b:.2}° after, reps exact in {exact_b}/{n} sets, recalibrations {recal_b}"
        );
        assert!(rmse_b <= 2.0 && recal_b >= 1 && exact_b + 1 >= n);
        // Not announced, turned about the vertical only: gravity cannot tell, the ML-axis
        // monitor sees movement rotating about a new axis.
        let yaw = |t: &[ImuSample]| {
            let n = t.len().min(100) as f64;
            let up =
                [0, 1, 2].map(|i| t.iter().take(100).map(|x| f64::from(x.acc[i])).sum::<f64>() / n);
            axis_angle(up, 60.0)
        };
        let (rmse_c, exact_c, n, recal_c) = run_reattach_with(seed, yaw, false);
        eprintln!(
            "REATTACH seed {seed} detected (turned about vertical): lumbar RMSE {rmse_c:.2}° after, reps exact in {exact_c}/{n} sets, recalibrations {recal_c}"
        );
        assert!(rmse_c <= 2.0 && recal_c >= 1 && exact_c + 1 >= n);
    }
}
