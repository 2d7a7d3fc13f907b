//! Load moment at L5/S1 from anthropometrics and the set load (biomechanics.md):
//!
//!   M(t) ≈ [m_L·g·L_sh + m_ub·g·r_ub]·sin θ_T(t) + I_ub·α_T(t)
//!
//! with upper-body mass, centre-of-mass distance, shoulder distance and inertia from
//! segment tables (Winter 2009, after Dempster) scaled by the athlete's height and mass.
//!
//! Invariants:
//! - Unknown (zero, negative or non-finite) height, mass or capacity fall back to the
//!   configured defaults; every quantity is finite and the capacity moment is > 0.
//! - θ_T is the trunk inclination from standing (forward positive), a quasi-static model:
//!   the moment is positive in flexion.

use liftguard_model::Exercise;
use serde::{Deserialize, Serialize};

use crate::config::AnthropometryConfig;
use crate::{AthleteParams, Capacity};

/// Body-segment parameters of one athlete.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Anthropometrics {
    pub height_m: f64,
    pub mass_kg: f64,
    /// Upper-body mass above L5/S1, kg.
    pub m_ub: f64,
    /// Its centre-of-mass distance from L5/S1, m.
    pub r_ub: f64,
    /// L5/S1-to-shoulder distance (the hanging load's lever at 90°), m.
    pub l_sh: f64,
    /// Upper-body moment of inertia about L5/S1, kg·m².
    pub inertia: f64,
    /// Capacities per exercise, kg (declared or defaulted).
    pub capacity: Capacity,
    /// Whether every lift capacity was declared by the athlete (not defaulted).
    pub capacity_declared: bool,
}

fn positive_or(x: f64, d: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { d }
}

impl Anthropometrics {
    pub fn new(cfg: &AnthropometryConfig, p: &AthleteParams) -> Self {
        let h = positive_or(p.height_m, cfg.default_height_m).clamp(1.0, 2.5);
        let m = positive_or(p.mass_kg, cfg.default_mass_kg).clamp(25.0, 300.0);
        let m_ub = cfg.upper_body_mass_fraction * m;
        let r_ub = cfg.com_fraction * h;
        let k = cfg.gyration_fraction * h;
        let c = &p.capacity_kg;
        let declared = [c.deadlift, c.squat, c.swing]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0);
        Self {
            height_m: h,
            mass_kg: m,
            m_ub,
            r_ub,
            l_sh: cfg.shoulder_fraction * h,
            inertia: m_ub * (r_ub * r_ub + k * k),
            capacity: Capacity {
                deadlift: positive_or(c.deadlift, cfg.default_deadlift_bw * m),
                squat: positive_or(c.squat, cfg.default_squat_bw * m),
                swing: positive_or(c.swing, cfg.default_swing_bw * m),
            },
            capacity_declared: declared,
        }
    }

    /// Capacity for an exercise, kg.
    pub fn capacity_kg(&self, cfg: &AnthropometryConfig, ex: Exercise) -> f64 {
        match ex {
            Exercise::Deadlift => self.capacity.deadlift,
            Exercise::Squat => self.capacity.squat,
            Exercise::KettlebellSwing => self.capacity.swing,
            Exercise::Carry => cfg.carry_of_deadlift * self.capacity.deadlift,
        }
    }

    /// Static gain A = m_L·g·L_sh + m_ub·g·r_ub (N·m at 90°).
    #[inline]
    pub fn static_gain(&self, g: f64, load_kg: f64) -> f64 {
        let load = if load_kg.is_finite() {
            load_kg.max(0.0)
        } else {
            0.0
        };
        load * g * self.l_sh + self.m_ub * g * self.r_ub
    }

    /// M = A·sin θ_T + I·α_T, N·m.
    #[inline]
    pub fn moment(&self, gain: f64, theta_t: f64, alpha_t: f64) -> f64 {
        let m = gain * theta_t.sin() + self.inertia * alpha_t;
        if m.is_finite() { m } else { 0.0 }
    }

    /// The capacity moment: the exercise's capacity load at the reference inclination, N·m.
    pub fn capacity_moment(&self, cfg: &AnthropometryConfig, g: f64, ex: Exercise) -> f64 {
        let a = self.static_gain(g, self.capacity_kg(cfg, ex));
        (a * cfg.capacity_inclination_deg.to_radians().sin()).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: f64 = 9.80665;

    #[test]
    fn textbook_values_for_a_reference_athlete() {
        let cfg = AnthropometryConfig::default();
        let a = Anthropometrics::new(
            &cfg,
            &AthleteParams {
                height_m: 1.75,
                mass_kg: 75.0,
                capacity_kg: Capacity {
                    deadlift: 150.0,
                    squat: 120.0,
                    swing: 24.0,
                },
            },
        );
        assert!((a.m_ub - 40.2).abs() < 0.01);
        assert!((a.l_sh - 0.42875).abs() < 1e-9);
        // Unloaded 90° flexion: ~130 N·m (static L5/S1 moments of 100–150 N·m are typical).
        let m = a.moment(a.static_gain(G, 0.0), std::f64::consts::FRAC_PI_2, 0.0);
        assert!((m - 132.5).abs() < 2.0, "{m}");
        // 100 kg at 45°: 100·g·0.429·0.707 + 132.5·0.707 ≈ 391 N·m.
        let m = a.moment(a.static_gain(G, 100.0), std::f64::consts::FRAC_PI_4, 0.0);
        assert!((m - 391.0).abs() < 3.0, "{m}");
        // Inertia adds I·α.
        let m2 = a.moment(a.static_gain(G, 0.0), 0.0, 10.0);
        assert!((m2 - 10.0 * a.inertia).abs() < 1e-9);
        assert!(a.capacity_declared);
    }

    #[test]
    fn unknowns_fall_back_to_defaults() {
        let cfg = AnthropometryConfig::default();
        let a = Anthropometrics::new(
            &cfg,
            &AthleteParams {
                height_m: f64::NAN,
                mass_kg: 0.0,
                capacity_kg: Capacity::default(),
            },
        );
        assert_eq!(a.height_m, 1.75);
        assert_eq!(a.mass_kg, 75.0);
        assert_eq!(a.capacity.deadlift, 112.5);
        assert!(!a.capacity_declared);
        assert!(a.capacity_moment(&cfg, G, Exercise::Carry) > 1.0);
        assert_eq!(
            a.moment(a.static_gain(G, f64::INFINITY), f64::NAN, 0.0),
            0.0
        );
    }
}
