//! Shared harness: simulated sessions (liftguard-sim, with ground truth) run through the
//! biomechanics pipeline (liftguard-biomech) the way the live system would, then turned
//! into the [`RepFacts`] the processor gives this crate.
#![allow(dead_code)]

use liftguard_biomech::{
    AthleteParams, AthletePipeline, Capacity, Config, ImuSample, Output, Rep, SetInfo,
};
use liftguard_model::Placement;
use liftguard_sim::{AthleteSpec, SimSession};

pub const START_US: i64 = 1_700_000_000_000_000;
const BATCH: usize = 10;
const ANNOUNCE_BEFORE_S: f64 = 3.0;

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

fn convert(s: &[liftguard_sim::ImuSample]) -> Vec<ImuSample> {
    s.iter()
        .map(|x| ImuSample {
            t_us: x.t_us,
            acc: x.acc,
            gyro: x.gyro,
        })
        .collect()
}

/// Feeds a session through one pipeline in arrival (true-time) order, announcing each set
/// 3 s before it starts, and returns the reps.
pub fn run_pipeline(s: &SimSession) -> Vec<Rep> {
    let cfg = Config::default();
    let mut p = AthletePipeline::new(&cfg, params(&s.athlete));
    let t = convert(&s.thoracolumbar.samples);
    let sa = convert(&s.sacrum.samples);
    let off_t = s.thoracolumbar.clock_offset_us;
    let off_s = s.sacrum.clock_offset_us;
    let mut ann: Vec<(i64, SetInfo)> = s
        .truth
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
        .collect();
    ann.reverse();
    let mut out = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    while i < t.len() || j < sa.len() {
        let take_t = match (t.get(i), sa.get(j)) {
            (Some(a), Some(b)) => a.t_us - off_t <= b.t_us - off_s,
            (Some(_), None) => true,
            _ => false,
        };
        if take_t {
            let now = t[i].t_us;
            while ann.last().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, info)) = ann.pop() {
                    p.set_context(info);
                }
            }
            let e = (i + BATCH).min(t.len());
            p.push(&cfg, Placement::Thoracolumbar, &t[i..e], &mut out);
            i = e;
        } else {
            let e = (j + BATCH).min(sa.len());
            p.push(&cfg, Placement::Sacrum, &sa[j..e], &mut out);
            j = e;
        }
    }
    p.finish(&cfg, &mut out);
    out.into_iter()
        .filter_map(|o| match o {
            Output::Rep(r) => Some(r),
            Output::Kinematics(_) => None,
        })
        .collect()
}

/// The processor's view of a pipeline rep: ids as the processor builds them, the athlete's
/// capacity for the exercise, event times shifted by `shift_us`.
pub fn to_facts(
    reps: &[Rep],
    athlete: &AthleteSpec,
    session_id: &str,
    shift_us: i64,
) -> Vec<liftguard_risk::RepFacts> {
    reps.iter()
        .map(|r| liftguard_risk::RepFacts {
            rep_id: format!("{}-{}", athlete.id, r.start_us + shift_us),
            set_id: r
                .set_id
                .clone()
                .unwrap_or_else(|| format!("{session_id}-s{}", r.set_index)),
            session_id: session_id.to_owned(),
            exercise: r.exercise,
            load_kg: r.load_kg,
            capacity_kg: athlete.capacity_for(r.exercise),
            start_us: r.start_us + shift_us,
            end_us: r.end_us + shift_us,
            extensor_event: r.extensor_event,
            fatigue_score: r.fatigue.score,
            stability_deficit: r.stability_deficit,
            damage_per_cycle: r.damage.per_cycle,
            peak_load_moment_nm: r.peak_load_moment_nm,
            eccentric_s: r.eccentric_s,
        })
        .collect()
}

/// A random 30-min session of athlete `index` (seeded), optionally with a given fault
/// propensity (the simulator's multiplier of lumbar-led ascents), through the pipeline.
pub fn session_facts(
    seed: u64,
    index: u32,
    fault_propensity: Option<f64>,
    minutes: f64,
) -> (AthleteSpec, liftguard_sim::SimSession, Vec<Rep>) {
    let mut a = liftguard_sim::random_athlete(seed, index);
    if let Some(fp) = fault_propensity {
        a.fault_propensity = fp;
    }
    let plan = liftguard_sim::random_session_plan(seed, &a, minutes, START_US);
    let s = liftguard_sim::simulate(&a, &plan, &liftguard_sim::SimOptions::default(), seed);
    let reps = run_pipeline(&s);
    (a, s, reps)
}
