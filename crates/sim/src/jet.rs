//! Second-order jets: a value with its first and second time derivatives.
//!
//! Invariant: every operation applies the exact chain/product rule, so a pose built from
//! jets carries exact velocities and accelerations (no finite differences anywhere).

use std::ops::{Add, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct J {
    /// value
    pub v: f64,
    /// first time derivative
    pub d: f64,
    /// second time derivative
    pub dd: f64,
}

impl J {
    pub const ZERO: J = J {
        v: 0.0,
        d: 0.0,
        dd: 0.0,
    };

    pub const fn c(v: f64) -> J {
        J { v, d: 0.0, dd: 0.0 }
    }

    pub fn sin_cos(self) -> (J, J) {
        let (s, c) = self.v.sin_cos();
        let d2 = self.d * self.d;
        (
            J {
                v: s,
                d: c * self.d,
                dd: -s * d2 + c * self.dd,
            },
            J {
                v: c,
                d: -s * self.d,
                dd: -c * d2 - s * self.dd,
            },
        )
    }
}

impl Add for J {
    type Output = J;
    #[inline]
    fn add(self, o: J) -> J {
        J {
            v: self.v + o.v,
            d: self.d + o.d,
            dd: self.dd + o.dd,
        }
    }
}

impl Sub for J {
    type Output = J;
    #[inline]
    fn sub(self, o: J) -> J {
        J {
            v: self.v - o.v,
            d: self.d - o.d,
            dd: self.dd - o.dd,
        }
    }
}

impl Neg for J {
    type Output = J;
    #[inline]
    fn neg(self) -> J {
        J {
            v: -self.v,
            d: -self.d,
            dd: -self.dd,
        }
    }
}

impl Mul for J {
    type Output = J;
    #[inline]
    fn mul(self, o: J) -> J {
        J {
            v: self.v * o.v,
            d: self.d * o.v + self.v * o.d,
            dd: self.dd * o.v + 2.0 * self.d * o.d + self.v * o.dd,
        }
    }
}

impl Mul<f64> for J {
    type Output = J;
    #[inline]
    fn mul(self, k: f64) -> J {
        J {
            v: self.v * k,
            d: self.d * k,
            dd: self.dd * k,
        }
    }
}

pub(crate) type V3 = [J; 3];
pub(crate) type M3 = [[J; 3]; 3];

/// Rotation about x (roll, lateral bend) by angle `a`.
#[cfg(test)]
pub(crate) fn rot_x(a: J) -> M3 {
    let (s, c) = a.sin_cos();
    let o = J::c(1.0);
    let z = J::ZERO;
    [[o, z, z], [z, c, -s], [z, s, c]]
}

/// Rotation about y (sagittal pitch; positive tilts the segment's +z axis towards +x,
/// i.e. forward flexion).
#[cfg(test)]
pub(crate) fn rot_y(a: J) -> M3 {
    let (s, c) = a.sin_cos();
    let o = J::c(1.0);
    let z = J::ZERO;
    [[c, z, s], [z, o, z], [-s, z, c]]
}

/// Rotation about z (yaw, axial twist).
#[cfg(test)]
pub(crate) fn rot_z(a: J) -> M3 {
    let (s, c) = a.sin_cos();
    let o = J::c(1.0);
    let z = J::ZERO;
    [[c, -s, z], [s, c, z], [z, z, o]]
}

#[cfg(test)]
pub(crate) fn mm(a: &M3, b: &M3) -> M3 {
    let mut r = [[J::ZERO; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    r
}

/// A·x for a constant vector x.
pub(crate) fn mv_c(a: &M3, x: &[f64; 3]) -> V3 {
    [
        a[0][0] * x[0] + a[0][1] * x[1] + a[0][2] * x[2],
        a[1][0] * x[0] + a[1][1] * x[1] + a[1][2] * x[2],
        a[2][0] * x[0] + a[2][1] * x[1] + a[2][2] * x[2],
    ]
}

pub(crate) fn vadd(a: &V3, b: &V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// R = Rz(yaw) · Rx(roll) · Ry(pitch): segment frame to world frame (closed form of the
/// product, checked against the explicit product in the tests).
pub(crate) fn zxy(yaw: J, roll: J, pitch: J) -> M3 {
    let (sy, cy) = yaw.sin_cos();
    let (sr, cr) = roll.sin_cos();
    let (sp, cp) = pitch.sin_cos();
    let sr_sp = sr * sp;
    let sr_cp = sr * cp;
    [
        [cy * cp - sy * sr_sp, -(sy * cr), cy * sp + sy * sr_cp],
        [sy * cp + cy * sr_sp, cy * cr, sy * sp - cy * sr_cp],
        [-(cr * sp), sr, cr * cp],
    ]
}

/// Third column of [`zxy`] times `len`: where the segment's long axis points.
pub(crate) fn zxy_axis(yaw: J, roll: J, pitch: J, len: f64) -> V3 {
    let (sy, cy) = yaw.sin_cos();
    let (sr, cr) = roll.sin_cos();
    let (sp, cp) = pitch.sin_cos();
    let sr_cp = sr * cp;
    [
        (cy * sp + sy * sr_cp) * len,
        (sy * sp - cy * sr_cp) * len,
        (cr * cp) * len,
    ]
}

/// Body-frame angular velocity of a rotation jet: vee(Rᵀ·Ṙ).
pub(crate) fn body_omega(r: &M3) -> [f64; 3] {
    // W = R^T Rdot; W[i][j] = sum_k R[k][i] * Rdot[k][j]
    let w = |i: usize, j: usize| -> f64 { (0..3).map(|k| r[k][i].v * r[k][j].d).sum() };
    [
        0.5 * (w(2, 1) - w(1, 2)),
        0.5 * (w(0, 2) - w(2, 0)),
        0.5 * (w(1, 0) - w(0, 1)),
    ]
}

/// Rᵀ·x for a plain vector using the value part of R.
pub(crate) fn rt_mul(r: &M3, x: &[f64; 3]) -> [f64; 3] {
    [
        r[0][0].v * x[0] + r[1][0].v * x[1] + r[2][0].v * x[2],
        r[0][1].v * x[0] + r[1][1].v * x[1] + r[2][1].v * x[2],
        r[0][2].v * x[0] + r[1][2].v * x[1] + r[2][2].v * x[2],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_sin_matches_finite_difference() {
        let f = |t: f64| J {
            v: 0.3 * t * t + t,
            d: 0.6 * t + 1.0,
            dd: 0.6,
        };
        let t = 0.7;
        let h = 1e-4;
        let (s, _) = f(t).sin_cos();
        let sp = f(t + h).sin_cos().0.v;
        let sm = f(t - h).sin_cos().0.v;
        assert!((s.d - (sp - sm) / (2.0 * h)).abs() < 1e-6);
        assert!((s.dd - (sp - 2.0 * s.v + sm) / (h * h)).abs() < 1e-4);
    }

    #[test]
    fn closed_form_matches_product() {
        let a = J {
            v: 0.7,
            d: -1.3,
            dd: 4.0,
        };
        let b = J {
            v: -0.2,
            d: 0.4,
            dd: -2.0,
        };
        let c = J {
            v: 1.1,
            d: 2.2,
            dd: 0.5,
        };
        let r = zxy(a, b, c);
        let q = mm(&mm(&rot_z(a), &rot_x(b)), &rot_y(c));
        let ax = zxy_axis(a, b, c, 2.0);
        for i in 0..3 {
            for j in 0..3 {
                let (x, y) = (r[i][j], q[i][j]);
                assert!(
                    (x.v - y.v).abs() < 1e-12
                        && (x.d - y.d).abs() < 1e-12
                        && (x.dd - y.dd).abs() < 1e-11
                );
            }
            assert!(
                (ax[i].v - 2.0 * q[i][2].v).abs() < 1e-12
                    && (ax[i].dd - 2.0 * q[i][2].dd).abs() < 1e-11
            );
        }
    }

    #[test]
    fn omega_of_pure_pitch_is_y() {
        let r = zxy(
            J::ZERO,
            J::ZERO,
            J {
                v: 0.4,
                d: 1.5,
                dd: 0.0,
            },
        );
        let w = body_omega(&r);
        assert!((w[1] - 1.5).abs() < 1e-12);
        assert!(w[0].abs() < 1e-12 && w[2].abs() < 1e-12);
    }
}
