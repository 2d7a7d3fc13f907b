//! Ground-truth consistency and fault statistics.
mod common;

use common::*;
use liftguard_model::Exercise;
use liftguard_sim::{SimOptions, SimSession, Truth, TruthRep, simulate, simulate_gym};

#[test]
fn rep_boundaries_are_ordered_and_inside_their_set() {
    let gym = simulate_gym(21, 6, 8.0, START_US, &SimOptions::default());
    for s in &gym {
        let t = &s.truth;
        let mut prev_set_end = t.start_us;
        for set in &t.sets {
            assert!(
                set.start_us >= prev_set_end && set.end_us >= set.start_us,
                "{}",
                set.set_id
            );
            assert!(set.end_us <= t.end_us);
            prev_set_end = set.end_us;
            let mut prev_end = set.start_us;
            for (i, r) in set.reps.iter().enumerate() {
                assert_eq!(r.index as usize, i + 1);
                assert!(r.start_us >= prev_end, "{} rep {}", set.set_id, r.index);
                assert!(
                    r.start_us < r.bottom_us
                        && r.bottom_us <= r.concentric_start_us
                        && r.concentric_start_us < r.end_us
                );
                assert!(r.end_us <= set.end_us);
                assert!((0.0..=1.0).contains(&r.fatigue));
                prev_end = r.end_us;
            }
            if set.exercise == Exercise::Carry {
                assert!(set.reps.is_empty() && !set.bouts.is_empty());
            } else {
                assert!(!set.reps.is_empty() && set.bouts.is_empty());
            }
        }
        // the first set starts after the quiet stance
        let first = t.sets[0].start_us - t.start_us;
        assert!(first >= 2_000_000, "quiet stance {first} µs");
    }
}

/// Lumbar-led ascent criteria of the biomechanics doc evaluated on the TRUTH angles
/// (first 40 % of the ascent): (peak lumbar extension velocity, longest run of lumbar share
/// > 0.6 in ms, lumbar lead over the pelvis in ms).
fn truth_criteria(t: &Truth, r: &TruthRep) -> (f64, f64, f64) {
    let idx = |us: i64| ((us - t.start_us) / 10_000) as usize;
    let (c, e) = (idx(r.concentric_start_us), idx(r.end_us));
    let early = c + ((e - c) as f64 * 0.4).round() as usize;
    // 5-sample moving average (50 ms) against tremor, then central differences
    let sm = |f: &dyn Fn(usize) -> f64, i: usize| (i - 2..=i + 2).map(f).sum::<f64>() / 5.0;
    let lum = |i: usize| sm(&|k| t.lumbar[k].lumbar_flexion_deg, i);
    let pel = |i: usize| sm(&|k| t.lumbar[k].pelvis_inclination_deg, i);
    let (mut peak, mut run, mut best, mut lon, mut pon) = (0.0f64, 0, 0, None, None);
    for i in c..=early + 10 {
        let wl = -(lum(i + 1) - lum(i - 1)) / 0.02;
        let wp = -(pel(i + 1) - pel(i - 1)) / 0.02;
        if i <= early {
            peak = peak.max(wl);
            let share = wl.abs() / (wl.abs() + wp.abs() + 1e-9);
            if share > 0.6 && wl > 10.0 {
                run += 1;
                best = best.max(run);
            } else {
                run = 0;
            }
        }
        if lon.is_none() && wl > 20.0 {
            lon = Some(i);
        }
        if pon.is_none() && wp > 20.0 {
            pon = Some(i);
        }
    }
    let lead = match (lon, pon) {
        (Some(l), Some(p)) => (p as f64 - l as f64) * 10.0,
        (Some(_), None) => 1000.0,
        _ => -1000.0,
    };
    (peak, best as f64 * 10.0, lead)
}

#[test]
fn extensor_faults_only_where_recorded() {
    let gym = simulate_gym(5, 8, 10.0, START_US, &SimOptions::default());
    let (mut faults, mut normals, mut flagged_normals, mut missed_faults) = (0, 0, 0, 0);
    for s in &gym {
        for set in &s.truth.sets {
            for r in &set.reps {
                match set.exercise {
                    Exercise::Deadlift | Exercise::Squat => {
                        let (peak, run_ms, lead) = truth_criteria(&s.truth, r);
                        let flagged = peak > 60.0 && run_ms >= 100.0 && lead > 50.0;
                        if r.extensor_fault {
                            faults += 1;
                            assert!(
                                r.lumbar_lead_ms > 50.0
                                    && r.peak_lumbar_ext_velocity_early_dps > 60.0
                            );
                            missed_faults += usize::from(!flagged);
                        } else {
                            normals += 1;
                            assert!(r.lumbar_lead_ms < 0.0);
                            flagged_normals += usize::from(flagged);
                        }
                    }
                    Exercise::KettlebellSwing => {
                        assert_eq!(r.extensor_fault, r.min_lumbar_flexion_deg < -5.0, "{:?}", r);
                    }
                    Exercise::Carry => unreachable!(),
                }
            }
        }
    }
    assert!(
        faults >= 20 && normals >= 200,
        "{faults} faults, {normals} normal reps"
    );
    assert_eq!(
        missed_faults, 0,
        "every injected fault meets the lumbar-led criteria on the truth"
    );
    assert_eq!(flagged_normals, 0, "no normal rep meets them");
}

fn all_reps(gym: &[SimSession]) -> Vec<(Exercise, f64, f64, TruthRep)> {
    gym.iter()
        .flat_map(|s| {
            s.truth.sets.iter().flat_map(move |set| {
                set.reps.iter().map(move |r| {
                    (
                        set.exercise,
                        set.load_ratio,
                        s.athlete.stability_capacity,
                        r.clone(),
                    )
                })
            })
        })
        .collect()
}

#[test]
fn fault_probability_rises_with_fatigue_and_instability_needs_overload() {
    let gym = simulate_gym(99, 24, 20.0, START_US, &SimOptions::default());
    let reps = all_reps(&gym);
    let rate = |lo: f64, hi: f64| {
        let sel: Vec<_> = reps
            .iter()
            .filter(|x| x.3.fatigue >= lo && x.3.fatigue < hi)
            .collect();
        (
            sel.iter().filter(|x| x.3.extensor_fault).count() as f64 / sel.len().max(1) as f64,
            sel.len(),
        )
    };
    let (fresh, n0) = rate(0.0, 0.1);
    let (tired, n1) = rate(0.3, 1.01);
    assert!(n0 > 100 && n1 > 100, "{n0} fresh, {n1} tired reps");
    assert!(
        tired > 2.0 * fresh,
        "fault rate fresh {fresh:.3}, tired {tired:.3}"
    );
    // fatigue rises within a set and falls during rest
    let mut rises = 0;
    let mut sets = 0;
    for s in &gym {
        for set in &s.truth.sets {
            if set.reps.len() >= 5 {
                sets += 1;
                rises += usize::from(set.reps.last().unwrap().fatigue > set.reps[0].fatigue);
            }
        }
        for w in s.truth.sets.windows(2) {
            if let (Some(a), Some(b)) = (w[0].reps.last(), w[1].reps.first()) {
                let rest = (w[1].start_us - w[0].end_us) as f64 / 1e6;
                if rest > 30.0 {
                    assert!(b.fatigue < a.fatigue + 0.06, "rest lowers fatigue");
                }
            }
        }
    }
    assert_eq!(rises, sets);
    // instability only above the stability threshold, and there it is the rule
    let over: Vec<_> = reps.iter().filter(|x| x.1 > x.2).collect();
    assert!(reps.iter().all(|x| !x.3.unstable || x.1 > x.2));
    let unstable_over = over.iter().filter(|x| x.3.unstable).count() as f64 / over.len() as f64;
    assert!(
        over.len() > 50 && unstable_over > 0.7,
        "{} over, {unstable_over}",
        over.len()
    );
    // more propensity → more faults
    let by_prop = |hi: bool| {
        let sel: Vec<_> = gym
            .iter()
            .filter(|s| {
                (s.athlete.fault_propensity > 1.3) == hi && (s.athlete.fault_propensity < 0.8) != hi
            })
            .flat_map(|s| s.truth.sets.iter().flat_map(|x| x.reps.iter()))
            .collect();
        sel.iter().filter(|r| r.extensor_fault).count() as f64 / sel.len().max(1) as f64
    };
    assert!(
        by_prop(true) > by_prop(false),
        "high {} low {}",
        by_prop(true),
        by_prop(false)
    );
}

#[test]
fn swings_are_periodic_near_1_9_s() {
    let s = simulate(&athlete(), &mixed_plan(), &SimOptions::default(), 3);
    let kb = s
        .truth
        .sets
        .iter()
        .find(|x| x.exercise == Exercise::KettlebellSwing)
        .unwrap();
    let mut p: Vec<f64> = kb
        .reps
        .windows(2)
        .map(|w| (w[1].start_us - w[0].start_us) as f64 / 1e6)
        .collect();
    p.sort_by(f64::total_cmp);
    let med = p[p.len() / 2];
    assert!((1.7..2.2).contains(&med), "median swing period {med}");
    assert!(p[0] > 1.4 && p[p.len() - 1] < 2.6);
}

/// Odd but possible inputs never panic and still give ordered, finite output.
#[test]
fn degenerate_inputs_are_handled() {
    let mut a = athlete();
    a.height_m = f64::NAN;
    a.capacity_kg.squat = 0.0;
    a.stability_capacity = f64::NAN;
    a.fault_propensity = -3.0;
    let plan = liftguard_sim::SessionPlan {
        start_us: -5_000_000,
        sets: vec![
            set("zero", Exercise::Deadlift, 100.0, 0, f64::NAN),
            set("sq0", Exercise::Squat, 60.0, 3, -4.0),
            set("kb", Exercise::KettlebellSwing, 500.0, 2, 1.0),
            set("ca", Exercise::Carry, 0.0, 0, 0.0),
        ],
    };
    let opts = SimOptions {
        quiet_stance_s: -1.0,
        rate_hz_thoracolumbar: 10_000.0,
        rate_hz_sacrum: f64::NAN,
        drop_probability: 2.0,
        ..SimOptions::default()
    };
    let s = simulate(&a, &plan, &opts, 0);
    assert_eq!(s.thoracolumbar.rate_hz, 200.0);
    assert_eq!(s.sacrum.rate_hz, 100.0);
    assert!(
        s.thoracolumbar.samples.is_empty(),
        "drop probability clamps to 1"
    );
    assert_eq!(s.truth.sets.len(), 4);
    assert!(s.truth.sets[0].reps.is_empty());
    assert!(
        s.truth
            .sets
            .iter()
            .flat_map(|x| &x.reps)
            .all(|r| !r.extensor_fault && r.peak_lumbar_flexion_deg.is_finite())
    );
    assert!(
        s.truth
            .lumbar
            .iter()
            .all(|x| x.lumbar_flexion_deg.is_finite() && x.trunk_inclination_deg.is_finite())
    );
    let ok = simulate(&a, &plan, &SimOptions::default(), 0);
    assert!(
        ok.sacrum
            .samples
            .iter()
            .all(|x| x.acc.iter().chain(x.gyro.iter()).all(|v| v.is_finite()))
    );
    let tiny = liftguard_sim::random_session_plan(1, &athlete(), 0.2, 0);
    assert_eq!(tiny.sets.len(), 1);
}
