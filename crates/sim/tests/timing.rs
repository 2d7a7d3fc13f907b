//! Determinism, sample rates, clock offsets, drops and gaps, CSV format.
mod common;

use common::*;
use liftguard_sim::{
    SensorRecording, SimOptions, random_athlete, random_session_plan, recording_from_csv,
    recording_to_csv, simulate, simulate_gym,
};

#[test]
fn same_seed_same_output_different_seed_different() {
    let o = SimOptions::default();
    let a = run(&o, 42);
    let b = run(&o, 42);
    assert_eq!(a, b);
    let c = run(&o, 43);
    assert_ne!(a.thoracolumbar.samples, c.thoracolumbar.samples);
    assert_ne!(a.truth, c.truth);
    // gym: same seed → same gym, independent of threading
    let g1 = simulate_gym(9, 3, 2.0, START_US, &o);
    let g2 = simulate_gym(9, 3, 2.0, START_US, &o);
    assert_eq!(g1, g2);
    assert_ne!(g1, simulate_gym(10, 3, 2.0, START_US, &o));
    assert_eq!(random_athlete(5, 2), random_athlete(5, 2));
    assert_ne!(random_athlete(5, 2), random_athlete(5, 3));
}

#[test]
fn truth_does_not_depend_on_sensor_options() {
    let a = run(&SimOptions::default(), 7);
    let b = run(
        &SimOptions {
            rate_hz_thoracolumbar: 50.0,
            rate_hz_sacrum: 200.0,
            clock_offset_us_sacrum: -1_500_000,
            random_mounting: false,
            ..SimOptions::default()
        },
        7,
    );
    assert_eq!(a.truth, b.truth);
}

fn intervals(r: &SensorRecording) -> Vec<i64> {
    r.samples
        .windows(2)
        .map(|w| w[1].t_us - w[0].t_us)
        .collect()
}

#[test]
fn rates_offsets_and_drops_are_honoured() {
    let opts = SimOptions {
        rate_hz_thoracolumbar: 50.0,
        rate_hz_sacrum: 200.0,
        clock_offset_us_thoracolumbar: 2_000_000,
        clock_offset_us_sacrum: -3_250_000,
        drop_probability: 0.0,
        gap_bursts_per_min: 0.0,
        ..SimOptions::default()
    };
    let s = run(&opts, 1);
    let (t, p) = (&s.thoracolumbar, &s.sacrum);
    assert_eq!(t.sensor_id, "ath-t-t12");
    assert_eq!(p.sensor_id, "ath-t-s1");
    assert_eq!(t.clock_offset_us, 2_000_000);
    assert_eq!(p.clock_offset_us, 2_000_000 - 3_250_000);
    for (r, period) in [(t, 20_000i64), (p, 5_000i64)] {
        // no drops: every interval is one period (±1 µs rounding)
        assert!(
            intervals(r).iter().all(|&d| (d - period).abs() <= 1),
            "{}",
            r.sensor_id
        );
        // first sample within one period of session start on the device clock
        let first = r.samples[0].t_us - (START_US + r.clock_offset_us);
        assert!((0..=period).contains(&first), "first at {first}");
        // covers the whole session
        let span = r.samples.last().unwrap().t_us - r.samples[0].t_us;
        let dur = s.truth.end_us - s.truth.start_us;
        assert!((span - dur).abs() <= 2 * period, "span {span} vs {dur}");
    }
    assert_eq!(s.truth.start_us, START_US + 2_000_000);

    // drops and gap bursts
    let opts = SimOptions {
        drop_probability: 0.01,
        gap_bursts_per_min: 2.0,
        ..SimOptions::default()
    };
    let s = run(&opts, 2);
    let r = &s.thoracolumbar;
    let dur_s = (s.truth.end_us - s.truth.start_us) as f64 / 1e6;
    let expected = dur_s * 100.0;
    let lost = 1.0 - r.samples.len() as f64 / expected;
    let gaps: Vec<i64> = intervals(r).into_iter().filter(|&d| d > 45_000).collect();
    let singles = intervals(r)
        .into_iter()
        .filter(|&d| d > 15_000 && d <= 45_000)
        .count();
    assert!(intervals(r).iter().all(|&d| d > 0), "strictly increasing");
    assert!(
        gaps.len() as f64 > dur_s / 60.0 && gaps.len() as f64 <= dur_s / 60.0 * 2.0 * 3.0,
        "{} gaps",
        gaps.len()
    );
    assert!(
        gaps.iter().all(|&g| g <= 320_000),
        "gap bursts are ≤ 300 ms: {gaps:?}"
    );
    assert!(
        singles as f64 > 0.5 * 0.01 * expected,
        "{singles} single drops"
    );
    assert!(lost > 0.01 && lost < 0.05, "lost {lost}");
}

#[test]
fn csv_round_trips_exactly() {
    let s = run(&SimOptions::default(), 4);
    let text = recording_to_csv(&s.sacrum);
    assert!(text.starts_with("t_s,ax,ay,az,gx,gy,gz\n"));
    let second = text.lines().nth(1).unwrap();
    let t_s: f64 = second.split(',').next().unwrap().parse().unwrap();
    assert!((t_s * 1e6 - s.sacrum.samples[0].t_us as f64).abs() < 1.0);
    assert_eq!(recording_from_csv(&text).unwrap(), s.sacrum.samples);
    let bad = "t_s,ax,ay,az,gx,gy,gz\n1.5,1,2,3,4,5\n";
    assert_eq!(recording_from_csv(bad).unwrap_err().line, 2);
    assert!(recording_from_csv("nope\n").is_err());
}

#[test]
fn random_plans_fill_the_session_with_several_sets() {
    for i in 0..20 {
        let a = random_athlete(77, i);
        assert!(a.height_m > 1.45 && a.height_m < 2.05 && a.mass_kg > 40.0 && a.mass_kg < 150.0);
        assert!(a.capacity_kg.squat <= a.capacity_kg.deadlift);
        let p = random_session_plan(i.into(), &a, 6.0, START_US);
        assert!(
            p.sets.len() >= 3,
            "athlete {i}: {} sets in 6 min",
            p.sets.len()
        );
        for s in &p.sets {
            assert!(s.reps >= 2 && s.reps <= 20);
            assert!(s.rest_after_s >= 3.0);
            assert!(s.load_kg > 0.0);
        }
        let sim = simulate(&a, &p, &SimOptions::default(), u64::from(i));
        let dur = (sim.truth.end_us - sim.truth.start_us) as f64 / 60e6;
        assert!((dur - 6.0).abs() < 1.0, "session lasts {dur} min");
        let long = random_session_plan(i.into(), &a, 60.0, START_US);
        assert!(long.sets.len() >= 8);
        let rests: Vec<f64> = long.sets[..long.sets.len() - 1]
            .iter()
            .map(|s| s.rest_after_s)
            .collect();
        assert!(rests.iter().all(|&r| (30.0..=120.0).contains(&r)));
    }
}
