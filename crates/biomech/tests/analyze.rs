//! `analyze_recordings` (the offline path of `liftguard analyze`): whole recordings in,
//! reps, a 25 Hz lumbar trace and a summary out.
//!
//! Reproduce: `cargo test -p liftguard-biomech --test analyze -- --nocapture`

mod common;

use common::*;
use liftguard_biomech::{Config, SetInfo, analyze_recordings};
use liftguard_model::Exercise;
use liftguard_sim::{SessionPlan, SetPlan, SimOptions};

fn recording(
    ex: Exercise,
    load: f64,
    reps: u32,
    offset_us: i64,
    seed: u64,
) -> liftguard_sim::SimSession {
    let a = liftguard_sim::random_athlete(seed, 0);
    let plan = SessionPlan {
        start_us: START_US,
        sets: vec![SetPlan {
            set_id: "rec".into(),
            exercise: ex,
            load_kg: load,
            reps,
            rest_after_s: 5.0,
        }],
    };
    let opts = SimOptions {
        rate_hz_thoracolumbar: 100.0,
        rate_hz_sacrum: 60.0,
        clock_offset_us_sacrum: offset_us,
        ..SimOptions::default()
    };
    liftguard_sim::simulate(&a, &plan, &opts, seed)
}

#[test]
fn analyzes_a_recording_with_metadata() {
    let s = recording(Exercise::Deadlift, 80.0, 8, 1_500_000, 61);
    let set = SetInfo {
        set_id: Some("rec".into()),
        exercise: Some(Exercise::Deadlift),
        load_kg: Some(80.0),
    };
    let a = analyze_recordings(
        &Config::default(),
        params(&s.athlete),
        set,
        &convert(&s.thoracolumbar.samples),
        &convert(&s.sacrum.samples),
    );
    let truth_offset = s.sacrum.clock_offset_us - s.thoracolumbar.clock_offset_us;
    let err = lumbar_errors(
        &Run {
            reps: a.reps.clone(),
            kin: a.kinematics.clone(),
            pipeline: liftguard_biomech::AthletePipeline::new(
                &Config::default(),
                params(&s.athlete),
            ),
            max_state_bytes: 0,
        },
        &s.truth,
    );
    eprintln!(
        "ANALYZE deadlift: {} reps (truth {}), {} kinematics points, lumbar RMSE {:.2}°, offset {:?} µs (truth {truth_offset}), summary {:?}",
        a.reps.len(),
        s.truth.sets[0].reps.len(),
        a.kinematics.len(),
        rmse(&err),
        a.summary.clock_offset_us,
        a.summary
    );
    assert_eq!(a.reps.len(), s.truth.sets[0].reps.len());
    assert!(a.reps.iter().all(|r| r.exercise == Exercise::Deadlift
        && !r.exercise_inferred
        && r.set_id.as_deref() == Some("rec")));
    assert_eq!(a.summary.reps as usize, a.reps.len());
    assert_eq!(a.summary.sets, 1);
    assert!((a.summary.clock_offset_us.unwrap_or(0) - truth_offset).abs() < 25_000);
    // 25 Hz trace on the thoracolumbar clock, mostly contiguous.
    let steps: Vec<i64> = a
        .kinematics
        .windows(2)
        .map(|w| w[1].t_us - w[0].t_us)
        .collect();
    let regular = steps.iter().filter(|&&d| d == 40_000).count();
    assert!(regular as f64 >= 0.95 * steps.len() as f64);
    assert!(rmse(&err) < 2.0);
    let truth_faults = s.truth.sets[0]
        .reps
        .iter()
        .filter(|r| r.extensor_fault)
        .count() as u32;
    assert!((i64::from(a.summary.extensor_events) - i64::from(truth_faults)).abs() <= 1);
}

#[test]
fn analyzes_a_recording_without_metadata() {
    let s = recording(Exercise::KettlebellSwing, 16.0, 14, -250_000, 62);
    let a = analyze_recordings(
        &Config::default(),
        params(&s.athlete),
        SetInfo::default(),
        &convert(&s.thoracolumbar.samples),
        &convert(&s.sacrum.samples),
    );
    eprintln!(
        "ANALYZE unknown (swing): {} reps (truth {}), exercises {:?}",
        a.reps.len(),
        s.truth.sets[0].reps.len(),
        a.summary.reps_by_exercise
    );
    assert_eq!(a.reps.len(), s.truth.sets[0].reps.len());
    assert!(
        a.reps
            .iter()
            .all(|r| r.exercise == Exercise::KettlebellSwing && r.exercise_inferred)
    );
}

#[test]
fn empty_and_single_sensor_recordings() {
    let cfg = Config::default();
    let a = analyze_recordings(&cfg, Default::default(), SetInfo::default(), &[], &[]);
    assert!(a.reps.is_empty() && a.kinematics.is_empty() && a.summary.reps == 0);
    // Only the trunk sensor: reps are still counted (no lumbar angle without the sacrum).
    let s = recording(Exercise::Squat, 60.0, 6, 0, 63);
    let set = SetInfo {
        set_id: None,
        exercise: Some(Exercise::Squat),
        load_kg: Some(60.0),
    };
    let a = analyze_recordings(
        &cfg,
        params(&s.athlete),
        set,
        &convert(&s.thoracolumbar.samples),
        &[],
    );
    eprintln!(
        "ANALYZE trunk only: {} reps (truth {})",
        a.reps.len(),
        s.truth.sets[0].reps.len()
    );
    assert_eq!(a.reps.len(), s.truth.sets[0].reps.len());
    assert!(a.kinematics.is_empty());
}
