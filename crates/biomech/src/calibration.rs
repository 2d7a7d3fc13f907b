//! Mounting-independent calibration of one sensor: quiet-stance detection (gyro bias and
//! the standing gravity direction), the calibration basis, the medio-lateral (ML) axis
//! from the first sagittal movements, and the evidence used to detect a re-attachment.
//!
//! Invariants:
//! - Nothing assumes an axis convention: the standing "up" direction comes from the mean
//!   accelerometer direction of the first quiet stance, the ML axis from the principal
//!   component of the angular velocity orthogonal to it.
//! - The ML axis is a unit vector in the basis orthogonal to standing gravity, signed so
//!   that the largest tilt seen during its estimation (a forward bend: people bend forward
//!   far more than backward) is positive, i.e. forward flexion is positive.
//! - Every output is finite; degenerate inputs leave the estimators not ready.

use serde::{Deserialize, Serialize};

use crate::config::{MlAxisConfig, StanceConfig};
use crate::filter::Biquad;
use crate::fusion::{cross, dot, normalize};

/// Statistics of one completed quiet-stance chunk (`StanceConfig::min_s` long).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietChunk {
    pub mean_acc: [f64; 3],
    pub mean_gyro: [f64; 3],
    pub end_t_us: i64,
}

/// Running sums of quiet samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct QuietSums {
    acc: [f64; 3],
    gyro: [f64; 3],
    n: u32,
    duration_s: f64,
}

impl QuietSums {
    fn add(&mut self, acc: [f64; 3], gyro: [f64; 3], dt: f64) {
        for i in 0..3 {
            self.acc[i] += acc[i];
            self.gyro[i] += gyro[i];
        }
        self.n += 1;
        self.duration_s += dt;
    }

    fn absorb(&mut self, o: &QuietSums) {
        for i in 0..3 {
            self.acc[i] += o.acc[i];
            self.gyro[i] += o.gyro[i];
        }
        self.n += o.n;
        self.duration_s += o.duration_s;
    }

    fn mean_gyro(&self) -> Option<[f64; 3]> {
        (self.n > 0).then(|| self.gyro.map(|v| v / f64::from(self.n)))
    }
}

/// Detects quiet stance: |ω − ω_ref| < `gyro_dps` and | |a| − g | < `acc_g`·g on the
/// low-passed signals for `min_s` seconds. `ω_ref` is the gyro bias when known, else the
/// running mean of the current chunk (a MEMS bias of a few °/s must not prevent the first
/// calibration). The newest `guard_s` of quiet is held back until it is followed by more
/// quiet: the low-pass notices a movement onset late, and the first instants of a movement
/// must not leak into the bias or the standing gravity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StanceDetector {
    lp: [Biquad; 6],
    confirmed: QuietSums,
    /// Full block of quiet held back (between `guard_s` and 2·`guard_s` old) ...
    held: QuietSums,
    /// ... and the block filling now.
    pending: QuietSums,
    primed: bool,
}

impl StanceDetector {
    pub fn new(cfg: &StanceConfig, rate_hz: f64) -> Self {
        let lp = Biquad::lowpass(cfg.lowpass_hz, rate_hz);
        Self {
            lp: [lp; 6],
            confirmed: QuietSums::default(),
            held: QuietSums::default(),
            pending: QuietSums::default(),
            primed: false,
        }
    }

    /// Restarts the chunk (after a gap or a filter redesign).
    pub fn restart(&mut self) {
        self.confirmed = QuietSums::default();
        self.held = QuietSums::default();
        self.pending = QuietSums::default();
        self.primed = false;
    }

    /// Feeds one raw sample; returns a chunk each time `min_s` of (confirmed) quiet has
    /// accumulated.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        cfg: &StanceConfig,
        g: f64,
        acc: [f64; 3],
        gyro: [f64; 3],
        dt: f64,
        t_us: i64,
        bias: Option<[f64; 3]>,
    ) -> Option<QuietChunk> {
        if !self.primed {
            for i in 0..3 {
                self.lp[i].reset(acc[i]);
                self.lp[3 + i].reset(gyro[i]);
            }
            self.primed = true;
        }
        let mut a = [0.0; 3];
        let mut w = [0.0; 3];
        for i in 0..3 {
            a[i] = self.lp[i].step(acc[i]);
            w[i] = self.lp[3 + i].step(gyro[i]);
        }
        let mut all = self.confirmed;
        all.absorb(&self.held);
        all.absorb(&self.pending);
        let reference = bias.or_else(|| all.mean_gyro()).unwrap_or(w);
        let dev = [
            w[0] - reference[0],
            w[1] - reference[1],
            w[2] - reference[2],
        ];
        let gyro_ok = dot(dev, dev).sqrt() < cfg.gyro_dps.to_radians()
            && dot(reference, reference).sqrt() < cfg.max_bias_dps.to_radians();
        let acc_ok = (dot(a, a).sqrt() - g).abs() < cfg.acc_g * g;
        if !(gyro_ok && acc_ok) {
            self.confirmed = QuietSums::default();
            self.held = QuietSums::default();
            self.pending = QuietSums::default();
            return None;
        }
        self.pending.add(acc, gyro, dt);
        if self.pending.duration_s >= cfg.guard_s {
            // The held block is now at least guard_s old: it counts.
            let h = self.held;
            self.confirmed.absorb(&h);
            self.held = self.pending;
            self.pending = QuietSums::default();
        }
        if self.confirmed.duration_s < cfg.min_s || self.confirmed.n == 0 {
            return None;
        }
        let n = f64::from(self.confirmed.n);
        let chunk = QuietChunk {
            mean_acc: self.confirmed.acc.map(|v| v / n),
            mean_gyro: self.confirmed.gyro.map(|v| v / n),
            end_t_us: t_us,
        };
        self.confirmed = QuietSums::default();
        Some(chunk)
    }
}

/// The calibration basis of one epoch: standing up direction and two unit axes orthogonal
/// to it (all in the sensor frame).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    pub up0: [f64; 3],
    pub e1: [f64; 3],
    pub e2: [f64; 3],
}

impl Basis {
    /// Basis from a standing specific-force direction; `None` for a zero/non-finite vector.
    pub fn from_up(acc: [f64; 3]) -> Option<Self> {
        let up0 = normalize(acc)?;
        // Seed with the sensor axis least aligned with up0 (well conditioned).
        let ax = up0.map(f64::abs);
        let seed = if ax[0] <= ax[1] && ax[0] <= ax[2] {
            [1.0, 0.0, 0.0]
        } else if ax[1] <= ax[2] {
            [0.0, 1.0, 0.0]
        } else {
            [0.0, 0.0, 1.0]
        };
        let e1 = normalize(cross(up0, seed))?;
        let e2 = cross(up0, e1);
        Some(Self { up0, e1, e2 })
    }

    /// Tilt rotation vector (rad) taking the current up direction `up` back to `up0`,
    /// in basis components. A segment rotation by θ about a horizontal axis m (sensor
    /// frame) gives tilt = θ·m.
    #[inline]
    pub fn tilt(&self, up: [f64; 3]) -> [f64; 2] {
        let c = cross(up, self.up0);
        let s = dot(c, c).sqrt();
        let cosang = dot(up, self.up0);
        let ang = s.atan2(cosang);
        let k = if s > 1e-12 { ang / s } else { 1.0 };
        [k * dot(c, self.e1), k * dot(c, self.e2)]
    }

    /// Components of a sensor-frame vector on (e1, e2).
    #[inline]
    pub fn project(&self, v: [f64; 3]) -> [f64; 2] {
        [dot(v, self.e1), dot(v, self.e2)]
    }
}

/// Estimates the ML axis (in basis components) as the principal axis of the horizontal
/// angular velocity during the first sagittal movements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MlAxisEstimator {
    c11: f64,
    c12: f64,
    c22: f64,
    rotation_rad: f64,
    moving_s: f64,
    max_tilt: [f64; 2],
    max_tilt_norm: f64,
}

/// Principal unit eigenvector of a symmetric 2×2 matrix and the minor/major eigenvalue ratio.
pub fn principal_axis(c11: f64, c12: f64, c22: f64) -> Option<([f64; 2], f64)> {
    let tr = c11 + c22;
    let det = c11 * c22 - c12 * c12;
    let disc = (0.25 * tr * tr - det).max(0.0).sqrt();
    let l1 = 0.5 * tr + disc;
    let l2 = 0.5 * tr - disc;
    if !(l1.is_finite() && l1 > 1e-12) {
        return None;
    }
    // Eigenvector for l1: (c12, l1 − c11) or (l1 − c22, c12), whichever is better conditioned.
    let v = if (l1 - c11).abs() > (l1 - c22).abs() {
        [c12, l1 - c11]
    } else {
        [l1 - c22, c12]
    };
    let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
    if !(n.is_finite() && n > 1e-15) {
        // Isotropic or diagonal: pick the larger diagonal axis.
        return Some((
            if c11 >= c22 { [1.0, 0.0] } else { [0.0, 1.0] },
            (l2 / l1).max(0.0),
        ));
    }
    Some(([v[0] / n, v[1] / n], (l2 / l1).max(0.0)))
}

impl MlAxisEstimator {
    /// Feeds one sample of horizontal angular velocity and tilt (basis components).
    #[inline]
    pub fn push(&mut self, cfg: &MlAxisConfig, omega: [f64; 2], tilt: [f64; 2], dt: f64) {
        let rate = (omega[0] * omega[0] + omega[1] * omega[1]).sqrt();
        let tilt_norm = (tilt[0] * tilt[0] + tilt[1] * tilt[1]).sqrt();
        if !(rate.is_finite() && tilt_norm.is_finite() && dt.is_finite()) {
            return;
        }
        if tilt_norm > self.max_tilt_norm {
            self.max_tilt_norm = tilt_norm;
            self.max_tilt = tilt;
        }
        // Only rotation while the segment is clearly bent counts: walking, sway and weight
        // shifts rotate it (roll, yaw) but keep it near upright.
        if rate < cfg.min_rate_dps.to_radians() || tilt_norm < cfg.min_tilt_deg.to_radians() {
            return;
        }
        self.c11 += omega[0] * omega[0] * dt;
        self.c12 += omega[0] * omega[1] * dt;
        self.c22 += omega[1] * omega[1] * dt;
        self.rotation_rad += rate * dt;
        self.moving_s += dt;
    }

    /// The signed ML axis once enough sagittal movement has been seen.
    pub fn axis(&self, cfg: &MlAxisConfig) -> Option<[f64; 2]> {
        if self.rotation_rad < cfg.min_rotation_deg.to_radians() || self.moving_s < cfg.min_moving_s
        {
            return None;
        }
        let (m, ratio) = principal_axis(self.c11, self.c12, self.c22)?;
        if ratio > cfg.max_minor_ratio {
            return None;
        }
        let along = m[0] * self.max_tilt[0] + m[1] * self.max_tilt[1];
        if along.abs() < cfg.min_sign_tilt_deg.to_radians() {
            return None;
        }
        Some(if along > 0.0 { m } else { [-m[0], -m[1]] })
    }

    /// Accumulated movement, for diagnostics.
    pub fn rotation_deg(&self) -> f64 {
        self.rotation_rad.to_degrees()
    }

    /// (rotation °, moving s, minor/major ratio, largest tilt °) for diagnostics.
    pub fn diagnostics(&self) -> (f64, f64, f64, f64) {
        let ratio = principal_axis(self.c11, self.c12, self.c22).map_or(f64::NAN, |(_, r)| r);
        (
            self.rotation_rad.to_degrees(),
            self.moving_s,
            ratio,
            self.max_tilt_norm.to_degrees(),
        )
    }
}

/// Watches that movement keeps rotating about the calibrated ML axis. A re-attachment that
/// turns the sensor about the vertical leaves gravity unchanged but moves the ML axis: the
/// principal axis of recent movement then departs from the calibrated one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MlAxisMonitor {
    c11: f64,
    c12: f64,
    c22: f64,
    rotation_rad: f64,
}

impl MlAxisMonitor {
    /// Feeds a sample; returns `true` when the recent principal axis differs from `m` by
    /// more than the configured angle (then the monitor restarts).
    #[inline]
    pub fn push(
        &mut self,
        cfg: &MlAxisConfig,
        m: [f64; 2],
        omega: [f64; 2],
        tilt: [f64; 2],
        dt: f64,
    ) -> bool {
        let rate = (omega[0] * omega[0] + omega[1] * omega[1]).sqrt();
        let tilt_norm = (tilt[0] * tilt[0] + tilt[1] * tilt[1]).sqrt();
        // Same gating as the estimator: rotation while clearly bent (not gait or sway).
        if !(rate.is_finite() && dt.is_finite() && tilt_norm.is_finite())
            || rate < cfg.min_rate_dps.to_radians()
            || tilt_norm < cfg.min_tilt_deg.to_radians()
        {
            return false;
        }
        self.c11 += omega[0] * omega[0] * dt;
        self.c12 += omega[0] * omega[1] * dt;
        self.c22 += omega[1] * omega[1] * dt;
        self.rotation_rad += rate * dt;
        if self.rotation_rad < cfg.monitor_rotation_deg.to_radians() {
            return false;
        }
        let verdict = principal_axis(self.c11, self.c12, self.c22).is_some_and(|(p, ratio)| {
            let cosang = (p[0] * m[0] + p[1] * m[1]).abs().min(1.0);
            ratio <= cfg.max_minor_ratio
                && cosang.acos() > cfg.monitor_max_deviation_deg.to_radians()
        });
        *self = Self::default();
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: f64 = 9.80665;

    #[test]
    fn stance_detector_finds_quiet_and_rejects_motion() {
        let cfg = StanceConfig::default();
        let mut d = StanceDetector::new(&cfg, 100.0);
        let bias = [0.01, -0.02, 0.005];
        let mut chunks = 0;
        for i in 0..250 {
            let c = d.push(&cfg, G, [0.1, 0.2, G], bias, 0.01, i * 10_000, None);
            if let Some(c) = c {
                chunks += 1;
                assert!((c.mean_gyro[1] + 0.02).abs() < 1e-9);
                assert!((c.mean_acc[2] - G).abs() < 1e-9);
            }
        }
        // 2.5 s of quiet: 2 chunks of 1 s once confirmed (the newest 0.25–0.5 s is held back).
        assert_eq!(chunks, 2);
        // Moving: 30 °/s oscillation never yields a chunk.
        let mut d = StanceDetector::new(&cfg, 100.0);
        for i in 0..500 {
            let w = 0.5 * (i as f64 * 0.1).sin();
            assert!(
                d.push(
                    &cfg,
                    G,
                    [0.0, 0.0, G],
                    [w, 0.0, 0.0],
                    0.01,
                    i * 10_000,
                    None
                )
                .is_none()
            );
        }
    }

    #[test]
    fn basis_and_tilt() {
        let b = Basis::from_up([0.0, 0.0, G]).unwrap();
        assert!(dot(b.e1, b.up0).abs() < 1e-12 && dot(b.e2, b.up0).abs() < 1e-12);
        assert!((dot(b.e1, b.e2)).abs() < 1e-12);
        // Segment rotated by +0.5 rad about sensor axis m = e1: up seen in the sensor frame
        // rotates by −0.5 rad about e1.
        let th: f64 = 0.5;
        let m = b.e1;
        let u = b.up0;
        // Rodrigues for −θ about m (m ⟂ u): u cos θ − (m × u) sin θ.
        let mxu = cross(m, u);
        let up = [
            u[0] * th.cos() - mxu[0] * th.sin(),
            u[1] * th.cos() - mxu[1] * th.sin(),
            u[2] * th.cos() - mxu[2] * th.sin(),
        ];
        let t = b.tilt(up);
        assert!((t[0] - th).abs() < 1e-12 && t[1].abs() < 1e-12, "{t:?}");
        assert!(Basis::from_up([0.0; 3]).is_none());
    }

    #[test]
    fn principal_axis_of_known_covariance() {
        let (v, r) = principal_axis(4.0, 0.0, 1.0).unwrap();
        assert!((v[0].abs() - 1.0).abs() < 1e-12 && r == 0.25);
        let (v, _) = principal_axis(1.0, 1.0, 1.0).unwrap();
        assert!((v[0].abs() - v[1].abs()).abs() < 1e-12);
        assert!(principal_axis(0.0, 0.0, 0.0).is_none());
    }

    #[test]
    fn ml_axis_is_signed_by_forward_bend() {
        let cfg = MlAxisConfig::default();
        let mut e = MlAxisEstimator::default();
        // Axis at 30° in the basis; bend forward 60° then back, with small lateral wobble.
        let axis = [30f64.to_radians().cos(), 30f64.to_radians().sin()];
        let perp = [-axis[1], axis[0]];
        let dt = 0.01;
        let mut th = 0.0;
        for i in 0..300 {
            let t = i as f64 * dt;
            let w = std::f64::consts::PI / 3.0 * (std::f64::consts::PI * t / 1.5).sin();
            let wob = 0.05 * (t * 20.0).sin();
            th += w * dt;
            let om = [w * axis[0] + wob * perp[0], w * axis[1] + wob * perp[1]];
            e.push(&cfg, om, [th * axis[0], th * axis[1]], dt);
        }
        let m = e.axis(&cfg).unwrap();
        assert!(
            (m[0] - axis[0]).abs() < 0.01 && (m[1] - axis[1]).abs() < 0.01,
            "{m:?}"
        );
        // Same motion with the opposite rotation convention yields the opposite axis.
        let mut e = MlAxisEstimator::default();
        let mut th = 0.0;
        for i in 0..300 {
            let t = i as f64 * dt;
            let w = -std::f64::consts::PI / 3.0 * (std::f64::consts::PI * t / 1.5).sin();
            th += w * dt;
            e.push(
                &cfg,
                [w * axis[0], w * axis[1]],
                [th * axis[0], th * axis[1]],
                dt,
            );
        }
        let m = e.axis(&cfg).unwrap();
        assert!((m[0] + axis[0]).abs() < 0.01, "{m:?}");
    }

    #[test]
    fn monitor_flags_a_turned_axis() {
        let cfg = MlAxisConfig::default();
        let mut mon = MlAxisMonitor::default();
        let m = [1.0, 0.0];
        let turned = [50f64.to_radians().cos(), 50f64.to_radians().sin()];
        let mut flagged = false;
        for i in 0..2000 {
            let w = 1.5 * (i as f64 * 0.02).sin();
            flagged |= mon.push(&cfg, m, [w * turned[0], w * turned[1]], [0.5, 0.0], 0.01);
        }
        assert!(flagged);
        let mut mon = MlAxisMonitor::default();
        for i in 0..2000 {
            let w = 1.5 * (i as f64 * 0.02).sin();
            assert!(!mon.push(&cfg, m, [w, 0.02 * w], [0.5, 0.0], 0.01));
        }
    }
}
