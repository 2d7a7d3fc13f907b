#![allow(dead_code)]

use liftguard_model::Exercise;
use liftguard_sim::{
    AthleteSpec, CapacityKg, SessionPlan, SetPlan, SimOptions, SimSession, Truth, simulate,
};

pub const START_US: i64 = 1_700_000_000_000_000;

pub fn athlete() -> AthleteSpec {
    AthleteSpec {
        id: "ath-t".into(),
        height_m: 1.78,
        mass_kg: 80.0,
        capacity_kg: CapacityKg {
            deadlift: 140.0,
            squat: 115.0,
            swing: 28.0,
        },
        stability_capacity: 0.8,
        fault_propensity: 1.0,
    }
}

pub fn set(id: &str, exercise: Exercise, load_kg: f64, reps: u32, rest: f64) -> SetPlan {
    SetPlan {
        set_id: id.into(),
        exercise,
        load_kg,
        reps,
        rest_after_s: rest,
    }
}

/// Deadlift (light, heavy), squat, swings, carry.
pub fn mixed_plan() -> SessionPlan {
    SessionPlan {
        start_us: START_US,
        sets: vec![
            set("dl1", Exercise::Deadlift, 90.0, 8, 40.0),
            set("dl2", Exercise::Deadlift, 125.0, 5, 40.0),
            set("sq1", Exercise::Squat, 80.0, 8, 30.0),
            set("kb1", Exercise::KettlebellSwing, 24.0, 15, 30.0),
            set("ca1", Exercise::Carry, 50.0, 2, 10.0),
        ],
    }
}

pub fn ideal(random_mounting: bool, rate: f64) -> SimOptions {
    SimOptions {
        random_mounting,
        rate_hz_thoracolumbar: rate,
        rate_hz_sacrum: rate,
        ..SimOptions::ideal()
    }
}

pub fn run(opts: &SimOptions, seed: u64) -> SimSession {
    simulate(&athlete(), &mixed_plan(), opts, seed)
}

/// Truth (trunk, pelvis, lumbar) in degrees at `t_us` on the thoracolumbar clock (linear
/// interpolation of the 100 Hz series).
pub fn truth_at(truth: &Truth, t_us: i64) -> (f64, f64, f64) {
    let x = (t_us - truth.start_us) as f64 / 10_000.0;
    let i = (x.floor().max(0.0) as usize).min(truth.lumbar.len() - 2);
    let w = (x - i as f64).clamp(0.0, 1.0);
    let a = &truth.lumbar[i];
    let b = &truth.lumbar[i + 1];
    let l = |p: f64, q: f64| p + w * (q - p);
    (
        l(a.trunk_inclination_deg, b.trunk_inclination_deg),
        l(a.pelvis_inclination_deg, b.pelvis_inclination_deg),
        l(a.lumbar_flexion_deg, b.lumbar_flexion_deg),
    )
}

pub fn norm(v: [f32; 3]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}
