//! Random athletes and session plans for a plausible gym.
//!
//! Invariants: pure functions of their arguments (ChaCha8 seeded from mixed `u64` seeds);
//! loads are fractions of the athlete's capacity, rounded to real plate/bell increments;
//! a plan never has zero sets; rests lie within the configured range except the last set's,
//! which fills the session to the requested length.

use liftguard_model::Exercise;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::motion::{gauss, uni};
use crate::{AthleteSpec, CapacityKg, SessionPlan, SetPlan};

/// SplitMix64 of `seed` and a stream tag: independent, reproducible sub-seeds.
pub(crate) fn mix(seed: u64, tag: u64) -> u64 {
    let mut z = seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A plausible athlete, id `"ath-<index>"`. Same (seed, index) → same athlete.
pub fn random_athlete(seed: u64, index: u32) -> AthleteSpec {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0xA7_0000_0000 + u64::from(index)));
    let height = (1.74 + 0.09 * gauss(&mut rng)).clamp(1.50, 2.02);
    let bmi = (24.5 + 2.8 * gauss(&mut rng)).clamp(19.0, 34.0);
    let mass = (bmi * height * height * 10.0).round() / 10.0;
    let dl = mass * (1.5 + 0.35 * gauss(&mut rng)).clamp(0.8, 2.8);
    let deadlift = (dl / 2.5).round() * 2.5;
    let squat = ((deadlift * (0.82 + 0.06 * gauss(&mut rng)).clamp(0.65, 1.0)) / 2.5).round() * 2.5;
    let swing = (mass * 0.3 * (1.0 + 0.2 * gauss(&mut rng)))
        .clamp(12.0, 48.0)
        .round();
    AthleteSpec {
        id: format!("ath-{index}"),
        height_m: (height * 100.0).round() / 100.0,
        mass_kg: mass,
        capacity_kg: CapacityKg {
            deadlift,
            squat,
            swing,
        },
        stability_capacity: uni(&mut rng, 0.65, 0.9),
        fault_propensity: (0.5 * gauss(&mut rng)).exp().clamp(0.2, 3.0),
    }
}

/// The enrollment cohort fields of a simulated athlete (what a gym records at sign-up), for
/// population analytics. See [`AthleteSpec::cohort`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohort {
    /// 1955..=2009.
    pub birth_year: i32,
    /// `"f"` or `"m"`.
    pub sex: String,
    /// Years of structured training, 0..=25.
    pub training_age_years: i32,
    /// One of [`SPORTS`].
    pub sport: String,
}

/// Sports a simulated athlete trains for.
pub const SPORTS: [&str; 5] = [
    "weightlifting",
    "powerlifting",
    "crossfit",
    "rugby",
    "general_fitness",
];

impl AthleteSpec {
    /// The athlete's cohort: a pure function of the athlete (its id and body), drawn from a
    /// random stream of its own, so adding it changed no motion, signal or truth.
    pub fn cohort(&self) -> Cohort {
        let tag = self.id.bytes().fold(
            self.height_m.to_bits() ^ self.mass_kg.to_bits().rotate_left(17),
            |h, b| mix(h, u64::from(b)),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(mix(tag, 0xC0_4047));
        let birth_year = rng.random_range(1955..=2009);
        let sex = if rng.random_bool(0.45) { "f" } else { "m" };
        let max_training = (2024 - birth_year - 12).clamp(0, 25);
        let training_age_years = rng.random_range(0..=max_training);
        let sport = SPORTS[rng.random_range(0..SPORTS.len())];
        Cohort {
            birth_year,
            sex: sex.to_owned(),
            training_age_years,
            sport: sport.to_owned(),
        }
    }
}

/// Knobs of [`random_session_plan_with`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// rest between sets, uniform in [rest_min_s, rest_max_s]
    pub rest_min_s: f64,
    pub rest_max_s: f64,
    /// probability that the session ends with a loaded carry
    pub carry_probability: f64,
    /// probability that a deadlift/squat/swing set is loaded above the stability threshold
    pub heavy_set_probability: f64,
    /// time reserved for the quiet stance at the start (s)
    pub lead_in_s: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            rest_min_s: 30.0,
            rest_max_s: 120.0,
            carry_probability: 0.25,
            heavy_set_probability: 0.3,
            lead_in_s: 5.0,
        }
    }
}

impl PlanOptions {
    /// Defaults for a session of `minutes`: short sessions (< 20 min, e.g. a demo) get
    /// 15–45 s rests so that they still contain several sets.
    pub fn for_minutes(minutes: f64) -> Self {
        if minutes < 20.0 {
            PlanOptions {
                rest_min_s: 15.0,
                rest_max_s: 45.0,
                ..PlanOptions::default()
            }
        } else {
            PlanOptions::default()
        }
    }
}

/// A plan of about `minutes` for `athlete`, with [`PlanOptions::for_minutes`].
pub fn random_session_plan(
    seed: u64,
    athlete: &AthleteSpec,
    minutes: f64,
    start_us: i64,
) -> SessionPlan {
    random_session_plan_with(
        seed,
        athlete,
        minutes,
        start_us,
        &PlanOptions::for_minutes(minutes),
    )
}

fn bell(target: f64) -> f64 {
    const BELLS: [f64; 11] = [
        8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0, 36.0, 40.0, 44.0, 48.0,
    ];
    let mut best = BELLS[0];
    for b in BELLS {
        if (b - target).abs() < (best - target).abs() {
            best = b;
        }
    }
    best
}

/// Estimated duration of a set (s), used to fill the time budget.
fn est_duration(ex: Exercise, reps: u32) -> f64 {
    let r = f64::from(reps);
    match ex {
        Exercise::Deadlift => 4.5 * r,
        Exercise::Squat => 4.4 * r,
        Exercise::KettlebellSwing => 1.95 * r + 1.0,
        Exercise::Carry => 11.0 * r + 6.0,
    }
}

/// A plan of about `minutes` (sets + rests), mixing deadlift, squat and kettlebell swing in
/// blocks of 2–4 sets, optionally ending with a carry.
pub fn random_session_plan_with(
    seed: u64,
    athlete: &AthleteSpec,
    minutes: f64,
    start_us: i64,
    opts: &PlanOptions,
) -> SessionPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x9_1A40));
    let minutes = if minutes.is_finite() {
        minutes.clamp(0.1, 24.0 * 60.0)
    } else {
        5.0
    };
    let budget = (minutes * 60.0 - opts.lead_in_s.max(0.0)).max(10.0);
    let (rmin, rmax) = {
        let a = if opts.rest_min_s.is_finite() {
            opts.rest_min_s.max(2.0)
        } else {
            30.0
        };
        let b = if opts.rest_max_s.is_finite() {
            opts.rest_max_s.max(a)
        } else {
            a
        };
        (a, b)
    };
    let sc = athlete.stability_capacity;
    let start_s = start_us.div_euclid(1_000_000);
    let mut sets: Vec<SetPlan> = Vec::new();
    let mut t = 0.0;
    let mut prev: Option<Exercise> = None;
    let mut full = false;
    let mut idx = 0u32;
    let make = |ex: Exercise, rng: &mut ChaCha8Rng| -> (f64, u32) {
        let heavy = rng.random::<f64>() < opts.heavy_set_probability;
        let ratio = if heavy {
            let lo = sc + 0.03;
            uni(rng, lo, (sc + 0.15).max(lo))
        } else {
            uni(rng, 0.45, (sc - 0.03).max(0.46))
        };
        match ex {
            Exercise::Deadlift | Exercise::Squat => {
                let cap = athlete.capacity_for(ex);
                let load = ((ratio * cap / 2.5).round() * 2.5).max(20.0);
                let base = (12.0 - 14.0 * (ratio - 0.5)).clamp(5.0, 12.0);
                let reps = (base + uni(rng, -1.0, 1.0)).round().clamp(5.0, 12.0) as u32;
                (load, reps)
            }
            Exercise::KettlebellSwing => {
                let load = bell(ratio * athlete.capacity_kg.swing);
                let reps = rng.random_range(10..=20);
                (load, reps)
            }
            Exercise::Carry => {
                let cap = athlete.capacity_for(Exercise::Carry);
                let load = ((uni(rng, 0.5, 1.0) * cap / 2.0).round() * 2.0).max(8.0);
                (load, rng.random_range(2..=4))
            }
        }
    };
    while !full {
        let choices = [
            Exercise::Deadlift,
            Exercise::Squat,
            Exercise::KettlebellSwing,
        ];
        let mut ex = choices[rng.random_range(0..choices.len())];
        if Some(ex) == prev {
            ex = choices[rng.random_range(0..choices.len())];
        }
        prev = Some(ex);
        let n_sets = rng.random_range(2..=4);
        for _ in 0..n_sets {
            let (load, reps) = make(ex, &mut rng);
            let d = est_duration(ex, reps);
            if t + d > budget {
                full = true;
                break;
            }
            idx += 1;
            let rest = uni(&mut rng, rmin, rmax);
            sets.push(SetPlan {
                set_id: format!("{}-{}-set{:02}", athlete.id, start_s, idx),
                exercise: ex,
                load_kg: load,
                reps,
                rest_after_s: rest,
            });
            t += d + rest;
        }
    }
    if rng.random::<f64>() < opts.carry_probability {
        let (load, lengths) = make(Exercise::Carry, &mut rng);
        // make room by dropping trailing sets if needed
        let d = est_duration(Exercise::Carry, lengths);
        while t + d > budget && sets.len() > 1 {
            if let Some(s) = sets.pop() {
                t -= est_duration(s.exercise, s.reps) + s.rest_after_s;
            }
        }
        if t + d <= budget {
            idx += 1;
            sets.push(SetPlan {
                set_id: format!("{}-{}-set{:02}", athlete.id, start_s, idx),
                exercise: Exercise::Carry,
                load_kg: load,
                reps: lengths,
                rest_after_s: rmin,
            });
            t += d + rmin;
        }
    }
    if sets.is_empty() {
        let (load, reps) = make(Exercise::Deadlift, &mut rng);
        let fit = ((budget / 4.5).floor() as u32).clamp(3, reps.max(3));
        sets.push(SetPlan {
            set_id: format!("{}-{}-set01", athlete.id, start_s),
            exercise: Exercise::Deadlift,
            load_kg: load,
            reps: fit,
            rest_after_s: rmin,
        });
        t = est_duration(Exercise::Deadlift, fit) + rmin;
    }
    // the last rest fills the session up to the requested length
    if let Some(last) = sets.last_mut() {
        let used = t - last.rest_after_s;
        last.rest_after_s = (budget - used).max(3.0);
    }
    SessionPlan { start_us, sets }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_are_deterministic_plausible_and_varied() {
        let cohorts: Vec<Cohort> = (0..200).map(|i| random_athlete(9, i).cohort()).collect();
        assert_eq!(cohorts[3], random_athlete(9, 3).cohort());
        for c in &cohorts {
            assert!((1955..=2009).contains(&c.birth_year), "{c:?}");
            assert!(
                c.training_age_years >= 0 && c.training_age_years <= 25,
                "{c:?}"
            );
            assert!(2024 - c.birth_year - c.training_age_years >= 12, "{c:?}");
            assert!(SPORTS.contains(&c.sport.as_str()));
        }
        let sexes: std::collections::BTreeSet<&str> =
            cohorts.iter().map(|c| c.sex.as_str()).collect();
        let sports: std::collections::BTreeSet<&str> =
            cohorts.iter().map(|c| c.sport.as_str()).collect();
        assert_eq!(sexes.len(), 2);
        assert_eq!(sports.len(), SPORTS.len());
    }
}
