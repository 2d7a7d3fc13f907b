//! Physics sanity of the synthesised IMU signals against the ground truth.
mod common;

use common::*;
use liftguard_model::{Exercise, Placement};
use liftguard_sim::{G, GYRO_RANGE, SensorRecording, SimOptions, Truth};

fn ml_axis(rec: &SensorRecording) -> [f64; 3] {
    // mounting takes segment vectors to sensor vectors; segment ML axis is +y
    [rec.mounting[0][1], rec.mounting[1][1], rec.mounting[2][1]]
}

/// At quiet stance the accelerometer reads gravity in any mounting and the gyro is still
/// (the calibration gate of the biomechanics doc: | |a| − g | < 0.03 g, |ω| < 3 °/s).
#[test]
fn quiet_stance_reads_gravity_in_any_mounting() {
    for seed in 0..6 {
        let s = run(&ideal(true, 100.0), seed);
        for rec in [&s.thoracolumbar, &s.sacrum] {
            let t0 = rec.samples[0].t_us;
            let quiet: Vec<_> = rec
                .samples
                .iter()
                .take_while(|x| x.t_us < t0 + 2_500_000)
                .collect();
            assert!(quiet.len() >= 240, "{} samples", quiet.len());
            for x in &quiet {
                let a = norm(x.acc);
                assert!(
                    (a - G).abs() < 0.03 * G,
                    "seed {seed} {}: |a| = {a}",
                    rec.sensor_id
                );
                assert!(
                    norm(x.gyro).to_degrees() < 3.0,
                    "|w| = {}",
                    norm(x.gyro).to_degrees()
                );
            }
        }
        // mounting is a proper rotation
        let m = s.thoracolumbar.mounting;
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        assert!((det - 1.0).abs() < 1e-9);
    }
    // with the realistic noise/bias defaults the mean is still g within bias size
    let s = run(&SimOptions::default(), 3);
    let rec = &s.thoracolumbar;
    let t0 = rec.samples[0].t_us;
    let q: Vec<f64> = rec
        .samples
        .iter()
        .take_while(|x| x.t_us < t0 + 2_000_000)
        .map(|x| norm(x.acc))
        .collect();
    let mean = q.iter().sum::<f64>() / q.len() as f64;
    assert!((mean - G).abs() < 0.1, "mean |a| {mean}");
}

/// Integrate the gyro around the mounted ML axis over [a, b] and compare with the truth
/// inclination change of the same segment.
fn integrate_ml(
    rec: &SensorRecording,
    truth: &Truth,
    off_to_t12: i64,
    a: i64,
    b: i64,
    trunk: bool,
) -> (f64, f64) {
    let ml = ml_axis(rec);
    let xs: Vec<_> = rec
        .samples
        .iter()
        .filter(|x| x.t_us + off_to_t12 >= a && x.t_us + off_to_t12 <= b)
        .collect();
    let mut ang = 0.0;
    for w in xs.windows(2) {
        let g0: f64 = (0..3).map(|i| f64::from(w[0].gyro[i]) * ml[i]).sum();
        let g1: f64 = (0..3).map(|i| f64::from(w[1].gyro[i]) * ml[i]).sum();
        ang += 0.5 * (g0 + g1) * (w[1].t_us - w[0].t_us) as f64 * 1e-6;
    }
    let first = xs
        .first()
        .map(|x| x.t_us + off_to_t12)
        .expect("samples in window");
    let last = xs
        .last()
        .map(|x| x.t_us + off_to_t12)
        .expect("samples in window");
    let pick = |t| {
        let (tr, pe, _) = truth_at(truth, t);
        if trunk { tr } else { pe }
    };
    (ang.to_degrees(), pick(last) - pick(first))
}

#[test]
fn gyro_integral_about_ml_axis_reproduces_truth_inclination() {
    let s = run(&ideal(true, 200.0), 11);
    let off_s_to_t = s.thoracolumbar.clock_offset_us - s.sacrum.clock_offset_us;
    let mut checked = 0;
    for set in &s.truth.sets {
        for r in &set.reps {
            let (a, b) = (r.start_us - 200_000, r.end_us + 200_000);
            let (gi, ti) = integrate_ml(&s.thoracolumbar, &s.truth, 0, a, b, true);
            let (gp, tp) = integrate_ml(&s.sacrum, &s.truth, off_s_to_t, a, b, false);
            // also within the rep: down to the bottom
            let (gd, td) =
                integrate_ml(&s.thoracolumbar, &s.truth, 0, r.start_us, r.bottom_us, true);
            assert!(
                (gi - ti).abs() < 0.5,
                "{} rep {}: trunk gyro {gi:.3} vs truth {ti:.3}",
                set.set_id,
                r.index
            );
            assert!(
                (gp - tp).abs() < 0.5,
                "{} rep {}: pelvis gyro {gp:.3} vs truth {tp:.3}",
                set.set_id,
                r.index
            );
            assert!(
                (gd - td).abs() < 0.5,
                "{} rep {}: descent {gd:.3} vs {td:.3}",
                set.set_id,
                r.index
            );
            if set.exercise == Exercise::Deadlift {
                assert!(td > 30.0, "deadlift trunk flexes > 30°, got {td}");
            }
            checked += 1;
        }
    }
    assert!(checked > 30);
}

#[test]
fn lumbar_truth_is_trunk_minus_pelvis_minus_standing() {
    let s = run(&SimOptions::default(), 5);
    let stand = s.truth.standing_trunk_deg - s.truth.standing_pelvis_deg;
    assert!(
        stand < 0.0,
        "standing lordosis: trunk leans back relative to the sacrum"
    );
    for a in &s.truth.lumbar {
        let l = a.trunk_inclination_deg - a.pelvis_inclination_deg - stand;
        assert!((l - a.lumbar_flexion_deg).abs() < 1e-9);
    }
    // 100 Hz, contiguous
    for w in s.truth.lumbar.windows(2) {
        assert_eq!(w[1].t_us - w[0].t_us, 10_000);
    }
    // quiet start: the lumbar angle is ~0
    assert!(
        s.truth.lumbar[..200]
            .iter()
            .all(|a| a.lumbar_flexion_deg.abs() < 1.5)
    );
}

#[test]
fn specific_force_during_motion_is_plausible_and_saturation_respected() {
    let s = run(&SimOptions::default(), 8);
    for rec in [&s.thoracolumbar, &s.sacrum] {
        let max_a = rec.samples.iter().map(|x| norm(x.acc)).fold(0.0, f64::max);
        let max_w = rec.samples.iter().map(|x| norm(x.gyro)).fold(0.0, f64::max);
        assert!(
            max_a > 11.0 && max_a < 60.0,
            "{}: max |a| {max_a}",
            rec.sensor_id
        );
        assert!(
            max_w.to_degrees() > 60.0 && max_w < GYRO_RANGE * 3f64.sqrt(),
            "max |w| {max_w}"
        );
        assert!(rec.samples.iter().all(|x| {
            x.gyro
                .iter()
                .all(|g| f64::from(g.abs()) <= GYRO_RANGE + 1e-3)
        }));
    }
    assert_eq!(s.thoracolumbar.placement, Placement::Thoracolumbar);
    assert_eq!(s.sacrum.placement, Placement::Sacrum);
}

/// Power of `x` (sampled at `rate`) at frequency `f` (plain DFT bin).
fn power_at(x: &[f64], rate: f64, f: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * f * i as f64 / rate;
        re += v * ph.cos();
        im += v * ph.sin();
    }
    (re * re + im * im) / (x.len() as f64).powi(2)
}

/// Unstable eccentrics carry 4–12 Hz tremor in the gyro; stable ones do not.
#[test]
fn unstable_eccentrics_show_4_to_12_hz_tremor() {
    use liftguard_sim::{SessionPlan, simulate};
    let plan = SessionPlan {
        start_us: START_US,
        sets: vec![
            set("light", Exercise::Deadlift, 70.0, 8, 60.0),
            set("heavy", Exercise::Deadlift, 130.0, 5, 10.0),
        ],
    };
    let s = simulate(&athlete(), &plan, &SimOptions::default(), 17);
    let rec = &s.thoracolumbar;
    let ml = ml_axis(rec);
    let band = |set_id: &str| -> Vec<(f64, f64, bool)> {
        let set = s.truth.sets.iter().find(|x| x.set_id == set_id).unwrap();
        set.reps
            .iter()
            .map(|r| {
                let w: Vec<f64> = rec
                    .samples
                    .iter()
                    .filter(|x| x.t_us >= r.start_us && x.t_us < r.bottom_us)
                    .map(|x| {
                        (0..3)
                            .map(|i| f64::from(x.gyro[i]) * ml[i])
                            .sum::<f64>()
                            .to_degrees()
                    })
                    .collect();
                // remove the movement itself: residual from a 250 ms moving average
                let k = 12usize;
                let res: Vec<f64> = (k..w.len() - k)
                    .map(|i| w[i] - w[i - k..=i + k].iter().sum::<f64>() / (2 * k + 1) as f64)
                    .collect();
                let tremor: f64 = (4..=12).map(|f| power_at(&res, 100.0, f as f64)).sum();
                let high: f64 = (16..=24).map(|f| power_at(&res, 100.0, f as f64)).sum();
                (tremor, high, r.unstable)
            })
            .collect()
    };
    let light = band("light");
    let heavy = band("heavy");
    assert!(
        light.iter().all(|x| !x.2) && heavy.iter().all(|x| x.2),
        "heavy (130/140 > 0.8) is unstable"
    );
    let med = |v: &[(f64, f64, bool)]| {
        let mut p: Vec<f64> = v.iter().map(|x| x.0).collect();
        p.sort_by(f64::total_cmp);
        p[p.len() / 2]
    };
    assert!(
        med(&heavy) > 5.0 * med(&light),
        "tremor power heavy {} light {}",
        med(&heavy),
        med(&light)
    );
    for (tremor, high, _) in &heavy {
        assert!(tremor > high, "tremor sits in 4–12 Hz: {tremor} vs {high}");
    }
}
