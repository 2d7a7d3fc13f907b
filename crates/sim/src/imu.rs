//! IMU synthesis from the rigid-body kinematics of [`crate::motion::Motion`].
//!
//! Per sample (true time t): specific force f = M·Rᵀ·(a_point − g) and gyro ω = M·ω_body,
//! then + bias (gyro: constant + random walk; accel: constant) + white noise, clipped to the
//! full scale, quantised to f32. Device timestamps are `start + offset + t`; samples are
//! equally spaced on the device clock (rate_hz, clamped to 50..=200) with a random phase.
//! Drops (single, Bernoulli) and gap bursts (Poisson, 50–300 ms) are removed afterwards.
//! Invariant: the random stream of a sensor is independent of the other sensor and of the
//! motion, so changing one sensor's options never changes the other sensor or the truth.

use liftguard_model::Placement;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::motion::{Cursor, Motion, gauss, uni};
use crate::{ACCEL_RANGE, GYRO_RANGE, ImuSample, SensorRecording, SimOptions};

fn finite_or(x: f64, d: f64) -> f64 {
    if x.is_finite() { x } else { d }
}

/// Uniformly distributed random rotation (from a normalised Gaussian quaternion).
pub(crate) fn random_rotation(rng: &mut ChaCha8Rng) -> [[f64; 3]; 3] {
    let mut q = [0.0f64; 4];
    let mut n2 = 0.0;
    while n2 < 1e-6 {
        for x in q.iter_mut() {
            *x = gauss(rng);
        }
        n2 = q.iter().map(|x| x * x).sum::<f64>();
    }
    let n = n2.sqrt();
    let [w, x, y, z] = q.map(|v| v / n);
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

fn mat_vec(m: &[[f64; 3]; 3], v: &[f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn synthesize(
    motion: &Motion,
    sensor_id: &str,
    placement: Placement,
    rate_hz: f64,
    offset_us: i64,
    start_us: i64,
    opts: &SimOptions,
    seed: u64,
) -> SensorRecording {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rate = finite_or(rate_hz, 100.0).clamp(50.0, 200.0);
    let mounting = if opts.random_mounting {
        random_rotation(&mut rng)
    } else {
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    };
    let an = finite_or(opts.accel_noise_std, 0.0).max(0.0);
    let gn = finite_or(opts.gyro_noise_std, 0.0).max(0.0);
    let gb_sd = finite_or(opts.gyro_bias_std, 0.0).max(0.0);
    let ab_sd = finite_or(opts.accel_bias_std, 0.0).max(0.0);
    let drop_p = finite_or(opts.drop_probability, 0.0).clamp(0.0, 1.0);
    let gaps_per_s = finite_or(opts.gap_bursts_per_min, 0.0).max(0.0) / 60.0;
    let period_us = 1e6 / rate;
    let walk_sd = finite_or(opts.gyro_bias_walk, 0.0).max(0.0) * (1.0 / rate).sqrt();
    let gyro_bias = [
        gauss(&mut rng) * gb_sd,
        gauss(&mut rng) * gb_sd,
        gauss(&mut rng) * gb_sd,
    ];
    let acc_bias = [
        gauss(&mut rng) * ab_sd,
        gauss(&mut rng) * ab_sd,
        gauss(&mut rng) * ab_sd,
    ];
    let phase_us = rng.random::<f64>() * period_us;
    let dur_us = motion.duration_s * 1e6;

    // gap bursts as true-time intervals (µs since session start)
    let mut gaps: Vec<(f64, f64)> = Vec::new();
    if gaps_per_s > 0.0 {
        let mut t = 0.0f64;
        loop {
            let u: f64 = rng.random::<f64>().max(1e-12);
            t += -u.ln() / gaps_per_s * 1e6;
            if t >= dur_us || gaps.len() > 100_000 {
                break;
            }
            let len = uni(&mut rng, 50_000.0, 300_000.0);
            gaps.push((t, t + len));
        }
    }

    let n = if dur_us > phase_us {
        ((dur_us - phase_us) / period_us).floor() as usize + 1
    } else {
        1
    };
    let mut samples = Vec::with_capacity(n);
    let mut walk = [0.0f64; 3];
    let mut cur = Cursor::default();
    let mut gi = 0usize;
    let base = start_us.saturating_add(offset_us);
    for k in 0..n {
        let rel_us = (phase_us + k as f64 * period_us).round();
        let t = rel_us * 1e-6;
        let (f_seg, w_seg) = motion.sensor_kinematics(placement, t, &mut cur);
        let f = mat_vec(&mounting, &f_seg);
        let w = mat_vec(&mounting, &w_seg);
        let mut acc = [0f32; 3];
        let mut gyro = [0f32; 3];
        for i in 0..3 {
            let a = f[i] + acc_bias[i] + an * gauss(&mut rng);
            let g = w[i] + gyro_bias[i] + walk[i] + gn * gauss(&mut rng);
            walk[i] += walk_sd * gauss(&mut rng);
            acc[i] = a.clamp(-ACCEL_RANGE, ACCEL_RANGE) as f32;
            gyro[i] = g.clamp(-GYRO_RANGE, GYRO_RANGE) as f32;
        }
        let dropped_single = rng.random::<f64>() < drop_p;
        while gi < gaps.len() && gaps[gi].1 < rel_us {
            gi += 1;
        }
        let in_gap = gi < gaps.len() && gaps[gi].0 <= rel_us && rel_us <= gaps[gi].1;
        if dropped_single || in_gap {
            continue;
        }
        samples.push(ImuSample {
            t_us: base.saturating_add(rel_us as i64),
            acc,
            gyro,
        });
    }
    SensorRecording {
        sensor_id: sensor_id.to_string(),
        placement,
        rate_hz: rate,
        clock_offset_us: offset_us,
        mounting,
        samples,
    }
}
