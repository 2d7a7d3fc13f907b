//! Fatigue dynamics on simulated sessions: at constant load the score rises over a set
//! (allowing noise), and it recovers with rest, for each lift and several athletes.
//!
//! Plan per athlete and lift: 3 sets at ~75 % of capacity with 3-minute rests, then a
//! 20-minute rest and a 4th set. Seeds: athletes `random_athlete(100 + i, i)`, i = 0..4.
//!
//! Reproduce: `cargo test -p liftguard-biomech --test fatigue -- --nocapture`

mod common;

use common::*;
use liftguard_biomech::{Config, Rep};
use liftguard_model::Exercise;
use liftguard_sim::{SessionPlan, SetPlan, SimOptions};

const ATHLETES: u32 = 4;

/// Spearman rank correlation of the scores with their order.
fn spearman_with_index(v: &[f64]) -> f64 {
    let n = v.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut rank = vec![0.0; n];
    for (r, &i) in idx.iter().enumerate() {
        rank[i] = r as f64;
    }
    let mean = (n as f64 - 1.0) / 2.0;
    let (mut num, mut den_a, mut den_b) = (0.0, 0.0, 0.0);
    for (i, &r) in rank.iter().enumerate() {
        let a = i as f64 - mean;
        let b = r - mean;
        num += a * b;
        den_a += a * a;
        den_b += b * b;
    }
    num / (den_a * den_b).sqrt()
}

fn plan(ex: Exercise, load: f64, reps: u32) -> SessionPlan {
    let set = |i: u32, rest: f64| SetPlan {
        set_id: format!("s{i}"),
        exercise: ex,
        load_kg: load,
        reps,
        rest_after_s: rest,
    };
    SessionPlan {
        start_us: START_US,
        sets: vec![set(1, 180.0), set(2, 180.0), set(3, 1200.0), set(4, 10.0)],
    }
}

fn load_for(a: &liftguard_sim::AthleteSpec, ex: Exercise) -> f64 {
    let cap = a.capacity_for(ex);
    match ex {
        Exercise::KettlebellSwing => (0.75 * cap / 4.0).round() * 4.0,
        _ => (0.75 * cap / 2.5).round() * 2.5,
    }
}

#[test]
fn fatigue_rises_within_sets_and_recovers_with_rest() {
    let cfg = Config::default();
    let mut rhos = Vec::new();
    let mut truth_corr_pairs: Vec<(f64, f64)> = Vec::new();
    for ex in [
        Exercise::Deadlift,
        Exercise::Squat,
        Exercise::KettlebellSwing,
    ] {
        for i in 0..ATHLETES {
            let a = liftguard_sim::random_athlete(100 + u64::from(i), i);
            let reps_per_set = if ex == Exercise::KettlebellSwing {
                15
            } else {
                10
            };
            let p = plan(ex, load_for(&a, ex), reps_per_set);
            let seed = 7_000 + u64::from(i);
            let sim = liftguard_sim::simulate(&a, &p, &SimOptions::default(), seed);
            let run = run_session(&cfg, &sim, true);
            let by_set = |id: &str| -> Vec<&Rep> {
                run.reps
                    .iter()
                    .filter(|r| r.set_id.as_deref() == Some(id))
                    .collect()
            };
            let sets: Vec<Vec<&Rep>> = (1..=4).map(|k| by_set(&format!("s{k}"))).collect();
            for (k, s) in sets.iter().enumerate() {
                assert!(s.len() >= 5, "{ex:?} athlete {i} set {k}: {} reps", s.len());
                let scores: Vec<f64> = s.iter().map(|r| r.fatigue.score).collect();
                let rho = spearman_with_index(&scores);
                rhos.push(rho);
                eprintln!(
                    "FATIGUE {ex:?} athlete {i} set {}: first {:.1} last {:.1} rho {rho:.2} (dose {:.1}→{:.1}, observed {:.1}→{:.1})",
                    k + 1,
                    scores[0],
                    scores[scores.len() - 1],
                    s[0].fatigue.dose,
                    s[s.len() - 1].fatigue.dose,
                    s[0].fatigue.observed,
                    s[s.len() - 1].fatigue.observed
                );
                assert!(
                    rho >= 0.6,
                    "{ex:?} athlete {i} set {}: not rising (rho {rho:.2}) {scores:?}",
                    k + 1
                );
                assert!(
                    scores[scores.len() - 1] > scores[0] + 5.0,
                    "{ex:?} athlete {i} set {}",
                    k + 1
                );
            }
            // Recovery with rest: the first rep after a rest scores lower than the last before.
            for k in 0..3 {
                let before = sets[k].last().map(|r| r.fatigue.score).unwrap_or_default();
                let after = sets[k + 1]
                    .first()
                    .map(|r| r.fatigue.score)
                    .unwrap_or_default();
                assert!(
                    after < before,
                    "{ex:?} athlete {i}: no recovery after set {} ({before:.1} → {after:.1})",
                    k + 1
                );
            }
            // Over the 20-minute rest the modelled dose decays (τ = 5000 s), although walking
            // about during the rest adds a little (reported).
            let dose_before = sets[2].last().map(|r| r.fatigue.dose).unwrap_or_default();
            let dose_after = sets[3].first().map(|r| r.fatigue.dose).unwrap_or_default();
            eprintln!(
                "FATIGUE {ex:?} athlete {i}: dose across the 20-min rest {dose_before:.1} → {dose_after:.1}"
            );
            // Agreement with the simulator's latent fatigue (reported, not a target).
            let truth = truth_reps(&sim.truth);
            let (pairs, _, _) = match_reps(&run.reps, &truth);
            truth_corr_pairs.extend(
                pairs
                    .iter()
                    .map(|&(r, t)| (run.reps[r].fatigue.score, truth[t].rep.fatigue)),
            );
        }
    }
    let n = truth_corr_pairs.len() as f64;
    let (mx, my) = truth_corr_pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &truth_corr_pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    let mut sorted = rhos.clone();
    sorted.sort_by(f64::total_cmp);
    assert!(
        sorted[sorted.len() / 2] >= 0.9,
        "median within-set rho {:.2}",
        sorted[sorted.len() / 2]
    );
    eprintln!(
        "FATIGUE within-set Spearman rho: median {:.2}, min {:.2} over {} sets; Pearson r with the simulator's latent fatigue {:.2}",
        sorted[sorted.len() / 2],
        sorted[0],
        sorted.len(),
        sxy / (sxx * syy).sqrt()
    );
}
