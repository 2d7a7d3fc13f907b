//! 6-axis orientation fusion: a quaternion Mahony filter (no magnetometer) whose
//! accelerometer correction is gated off while the accelerometer cannot be trusted as a
//! gravity sensor.
//!
//! Invariants:
//! - The quaternion is unit-norm after every update; a degenerate or non-finite state is
//!   replaced by the identity (never NaN out).
//! - The correction is applied only when | |a|/g − 1 | ≤ `acc_gate` and |ω| ≤
//!   `gyro_gate_dps` (swings and pulls put the accelerometer far from gravity).
//! - Only the gravity direction matters downstream: heading (yaw) is unobservable
//!   without a magnetometer and is never used.

use serde::{Deserialize, Serialize};

use crate::config::FusionConfig;

/// Largest fraction of the attitude error one update may correct (numerical stability of
/// the explicit correction step: Kp·dt must stay well below 1).
const MAX_STEP_CORRECTION: f64 = 0.2;

/// Mahony attitude filter. `q` rotates sensor-frame vectors into a gravity-aligned
/// world frame whose z axis points up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mahony {
    q: [f64; 4],
    integral: [f64; 3],
}

impl Default for Mahony {
    fn default() -> Self {
        Self {
            q: [1.0, 0.0, 0.0, 0.0],
            integral: [0.0; 3],
        }
    }
}

#[inline]
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Unit vector, or `None` when the norm is zero or not finite.
#[inline]
pub(crate) fn normalize(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = norm(a);
    (n.is_finite() && n > 1e-12).then(|| [a[0] / n, a[1] / n, a[2] / n])
}

impl Mahony {
    /// A filter whose up direction equals the (normalised) specific force `acc`.
    pub fn from_acc(acc: [f64; 3]) -> Self {
        let mut m = Self::default();
        m.align_up(acc);
        m
    }

    /// Resets the attitude so that the up direction in the sensor frame is `acc`.
    pub fn align_up(&mut self, acc: [f64; 3]) {
        let Some(a) = normalize(acc) else {
            return;
        };
        // Shortest-arc rotation taking the sensor vector `a` to world up (0, 0, 1).
        let w = 1.0 + a[2];
        let q = if w < 1e-9 {
            [0.0, 1.0, 0.0, 0.0]
        } else {
            // axis = a × z = (a_y, −a_x, 0)
            [w, a[1], -a[0], 0.0]
        };
        self.q = q;
        self.normalize_q();
        self.integral = [0.0; 3];
    }

    /// The world up direction expressed in the sensor frame (unit vector).
    #[inline]
    pub fn up(&self) -> [f64; 3] {
        let [w, x, y, z] = self.q;
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            w * w - x * x - y * y + z * z,
        ]
    }

    /// The quaternion (w, x, y, z).
    pub fn quaternion(&self) -> [f64; 4] {
        self.q
    }

    /// One update with bias-corrected gyro `gyro` (rad/s), specific force `acc` (m/s²)
    /// over `dt` seconds. Returns whether the accelerometer correction was applied.
    #[inline]
    pub fn update(
        &mut self,
        gyro: [f64; 3],
        acc: [f64; 3],
        dt: f64,
        cfg: &FusionConfig,
        g: f64,
    ) -> bool {
        if !(dt.is_finite() && dt > 0.0) {
            return false;
        }
        let mut w = gyro;
        let mut corrected = false;
        let an = norm(acc);
        let gyro_gate = cfg.gyro_gate_dps.to_radians();
        if an.is_finite()
            && an > 1e-6
            && (an / g - 1.0).abs() <= cfg.acc_gate
            && norm(gyro) <= gyro_gate
        {
            let a = [acc[0] / an, acc[1] / an, acc[2] / an];
            let e = cross(a, self.up());
            if cfg.ki > 0.0 {
                for (acc_i, e_i) in self.integral.iter_mut().zip(e) {
                    *acc_i += cfg.ki * e_i * dt;
                }
            }
            // One step never corrects more than MAX_STEP_CORRECTION of the error (Kp·dt ≥ 1
            // would overshoot, e.g. on the sample after a data gap).
            let kp = cfg.kp.min(MAX_STEP_CORRECTION / dt);
            for ((w_i, e_i), int_i) in w.iter_mut().zip(e).zip(self.integral) {
                *w_i += kp * e_i + int_i;
            }
            corrected = true;
        }
        self.integrate(w, dt);
        corrected
    }

    /// Integrates body rate `w` (rad/s) over `dt` (first order, then renormalised).
    #[inline]
    pub fn integrate(&mut self, w: [f64; 3], dt: f64) {
        let [qw, qx, qy, qz] = self.q;
        let h = 0.5 * dt;
        let (gx, gy, gz) = (w[0] * h, w[1] * h, w[2] * h);
        self.q = [
            qw - qx * gx - qy * gy - qz * gz,
            qx + qw * gx + qy * gz - qz * gy,
            qy + qw * gy - qx * gz + qz * gx,
            qz + qw * gz + qx * gy - qy * gx,
        ];
        self.normalize_q();
    }

    fn normalize_q(&mut self) {
        let n = self.q.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n.is_finite() && n > 1e-12 {
            for v in &mut self.q {
                *v /= n;
            }
        } else {
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: f64 = 9.80665;

    fn angle_between(a: [f64; 3], b: [f64; 3]) -> f64 {
        (dot(a, b) / (norm(a) * norm(b)))
            .clamp(-1.0, 1.0)
            .acos()
            .to_degrees()
    }

    #[test]
    fn init_from_acc_points_up() {
        for acc in [
            [0.0, 0.0, G],
            [G, 0.0, 0.0],
            [0.0, -G, 0.0],
            [0.0, 0.0, -G],
            [1.0, 2.0, -3.0],
        ] {
            let m = Mahony::from_acc(acc);
            assert!(angle_between(m.up(), acc) < 1e-6, "{acc:?} -> {:?}", m.up());
        }
    }

    #[test]
    fn pure_gyro_rotation_moves_up_vector() {
        // Rotate 90° about sensor x at 1 rad/s: world up seen from the sensor rotates by −90°.
        let cfg = FusionConfig {
            kp: 0.0,
            ..FusionConfig::default()
        };
        let mut m = Mahony::from_acc([0.0, 0.0, G]);
        let dt = 0.001;
        let n = (std::f64::consts::FRAC_PI_2 / dt).round() as usize;
        for _ in 0..n {
            m.update([1.0, 0.0, 0.0], [0.0, 0.0, 0.0], dt, &cfg, G);
        }
        let up = m.up();
        // Up rotates by −90° about x: (0,0,1) -> (0,1,0).
        assert!(angle_between(up, [0.0, 1.0, 0.0]) < 0.1, "{up:?}");
    }

    #[test]
    fn correction_converges_and_is_gated() {
        let cfg = FusionConfig::default();
        let mut m = Mahony::from_acc([0.0, 0.0, G]);
        let tilted = [G * 0.5f64.sin(), 0.0, G * 0.5f64.cos()];
        for _ in 0..2000 {
            m.update([0.0; 3], tilted, 0.01, &cfg, G);
        }
        assert!(angle_between(m.up(), tilted) < 0.5);
        // A 2 g specific force is gated: no correction, no change.
        let before = m.up();
        let applied = m.update([0.0; 3], [0.0, 2.0 * G, 0.0], 0.01, &cfg, G);
        assert!(!applied);
        assert!(angle_between(before, m.up()) < 1e-9);
    }

    #[test]
    fn non_finite_input_keeps_unit_quaternion() {
        let cfg = FusionConfig::default();
        let mut m = Mahony::default();
        m.update([f64::NAN, 0.0, 0.0], [0.0, 0.0, G], 0.01, &cfg, G);
        let n: f64 = m.quaternion().iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-9);
        m.update([1e300, 1e300, 0.0], [0.0, 0.0, G], 0.01, &cfg, G);
        assert!(m.up().iter().all(|v| v.is_finite()));
    }
}
