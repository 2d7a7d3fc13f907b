//! Without set metadata: the pipeline splits sets on rest gaps, classifies each set's
//! exercise from the motion, detects carries from walking bouts, and still counts reps.
//!
//! 12 sessions (seeds 31..=42), random athletes, 12-minute plans with 30–90 s rests
//! (longer than the 20 s rest gap that separates sets without metadata), realistic sensors.
//!
//! Reproduce: `cargo test -p liftguard-biomech --test no_metadata -- --nocapture`

mod common;

use std::collections::BTreeMap;

use common::*;
use liftguard_biomech::Config;
use liftguard_model::Exercise;
use liftguard_sim::PlanOptions;

#[test]
fn classifies_exercises_and_counts_reps_without_metadata() {
    let cfg = Config::default();
    let opts = PlanOptions {
        rest_min_s: 30.0,
        rest_max_s: 90.0,
        ..PlanOptions::default()
    };
    // exercise -> (sets, correctly classified, exact rep count)
    let mut per_ex: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for seed in 31..=42u64 {
        let a = liftguard_sim::random_athlete(seed, 0);
        let plan = liftguard_sim::random_session_plan_with(seed, &a, 12.0, START_US, &opts);
        let sim = liftguard_sim::simulate(&a, &plan, &scenario_options(seed % 12), seed);
        let run = run_session(&cfg, &sim, false);
        for set in &sim.truth.sets {
            let ours: Vec<_> = run
                .reps
                .iter()
                .filter(|r| {
                    r.start_us >= set.start_us - 1_000_000 && r.end_us <= set.end_us + 1_000_000
                })
                .collect();
            let truth_n = if set.exercise == Exercise::Carry {
                set.bouts.len()
            } else {
                set.reps.len()
            };
            let mut votes: BTreeMap<String, usize> = BTreeMap::new();
            for r in &ours {
                *votes.entry(format!("{:?}", r.exercise)).or_default() += 1;
            }
            let label = votes
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(e, _)| e.clone())
                .unwrap_or_default();
            let ok_class = label == format!("{:?}", set.exercise);
            let ok_count = ours.len() == truth_n;
            let e = per_ex.entry(format!("{:?}", set.exercise)).or_default();
            e.0 += 1;
            e.1 += u32::from(ok_class);
            e.2 += u32::from(ok_count);
            if !(ok_class && ok_count) {
                eprintln!(
                    "seed {seed} {:?} set: truth {truth_n}, ours {} {votes:?}",
                    set.exercise,
                    ours.len()
                );
            }
            assert!(ours.iter().all(|r| r.exercise_inferred));
        }
    }
    let (mut n, mut c, mut k) = (0, 0, 0);
    for (ex, (sets, class, count)) in &per_ex {
        eprintln!(
            "NO METADATA {ex}: classified {class}/{sets} = {:.1}%, rep count exact {count}/{sets} = {:.1}%",
            100.0 * f64::from(*class) / f64::from(*sets),
            100.0 * f64::from(*count) / f64::from(*sets)
        );
        n += sets;
        c += class;
        k += count;
    }
    let (cf, kf) = (f64::from(c) / f64::from(n), f64::from(k) / f64::from(n));
    eprintln!(
        "NO METADATA all: classified {:.1}%, rep count exact {:.1}% of {n} sets",
        100.0 * cf,
        100.0 * kf
    );
    assert!(cf >= 0.9 && kf >= 0.9);
}
