//! Exercise classification from motion (when the set metadata does not name it) and
//! walking-bout detection for loaded carries.
//!
//! Per rep, [`RepShape`] summarises the movement: trunk and pelvis range, sacrum drop
//! (double-integrated vertical acceleration over the eccentric, drift-corrected to zero
//! velocity at the bottom) and concentric duration.
//! - Kettlebell swing: ballistic hip snaps: most reps have a short concentric.
//! - Squat vs deadlift: squats drop the hips further with a more upright trunk and pelvis
//!   (knee-dominant); deadlifts hinge (hip-dominant). A standardised sum of the three
//!   differences decides, medians over the set's reps.
//!
//! [`GaitDetector`] finds walking bouts from the step-band (1–3 Hz) energy of the vertical
//! sacrum acceleration.
//!
//! Invariants: classification is a pure function of the shapes; the gait detector is causal
//! and bounded; every output is finite.

use liftguard_model::Exercise;
use serde::{Deserialize, Serialize};

use crate::config::ClassifyConfig;
use crate::filter::Biquad;

/// Reference height the drop thresholds refer to, m.
const REFERENCE_HEIGHT_M: f64 = 1.75;

/// Movement summary of one rep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RepShape {
    pub trunk_range_deg: f64,
    pub pelvis_range_deg: Option<f64>,
    pub sacrum_drop_m: Option<f64>,
    pub concentric_s: f64,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

/// The exercise of a set from its reps' shapes.
pub fn classify(cfg: &ClassifyConfig, height_m: f64, reps: &[RepShape]) -> Exercise {
    // Swings: most reps have a ballistic hip snap (the set may also hold the slower pick-up
    // or put-down of the bell).
    let snaps = reps
        .iter()
        .filter(|r| r.concentric_s < cfg.swing_max_concentric_s)
        .count();
    if 2 * snaps > reps.len() {
        return Exercise::KettlebellSwing;
    }
    let scale = if height_m.is_finite() && height_m > 0.5 {
        REFERENCE_HEIGHT_M / height_m
    } else {
        1.0
    };
    let mut score = 0.0;
    if let Some(d) = median(reps.iter().filter_map(|r| r.sacrum_drop_m).collect()) {
        score += (d * scale - cfg.squat_drop_m) / cfg.squat_drop_scale_m;
    }
    if let Some(t) = median(reps.iter().map(|r| r.trunk_range_deg).collect()) {
        score -= (t - cfg.squat_trunk_deg) / cfg.squat_trunk_scale_deg;
    }
    if let Some(p) = median(reps.iter().filter_map(|r| r.pelvis_range_deg).collect()) {
        score -= (p - cfg.squat_pelvis_deg) / cfg.squat_pelvis_scale_deg;
    }
    if score > 0.0 {
        Exercise::Squat
    } else {
        Exercise::Deadlift
    }
}

/// Integrates the sacrum's vertical acceleration from the last still instant (zero-velocity
/// update: the body is at rest, so velocity and displacement restart at 0) to the bottom of
/// the rep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DropIntegrator {
    v: f64,
    z: f64,
    t: f64,
}

impl DropIntegrator {
    /// The body is still: restart from rest.
    pub fn still(&mut self) {
        *self = Self::default();
    }

    #[inline]
    pub fn push(&mut self, dt: f64, vert_acc: f64) {
        if dt.is_finite() && vert_acc.is_finite() {
            self.v += vert_acc * dt;
            self.z += self.v * dt;
            self.t += dt;
        }
    }

    /// Drop so far (m, downward positive) assuming zero velocity now: a linear velocity drift
    /// (accelerometer bias, tilt error) is removed.
    pub fn drop_m(&self) -> Option<f64> {
        if self.t <= 0.0 {
            return None;
        }
        let z = self.z - 0.5 * self.v * self.t;
        z.is_finite().then_some(-z)
    }
}

/// A completed walking bout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bout {
    pub start_us: i64,
    pub end_us: i64,
    pub steps: u32,
}

/// Walking detection from the step-band energy of vertical acceleration. Bout limits are
/// the first and last step (upward zero crossing of the step-band signal) of the walking
/// period, so the energy average's lag does not stretch the bout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaitDetector {
    hp: Biquad,
    lp: Biquad,
    energy: f64,
    walking: bool,
    first_step_us: i64,
    last_step_us: i64,
    prev_step_us: Option<i64>,
    steps: u32,
    prev: f64,
}

/// Time constant of the gait energy average, s (about one stride).
const GAIT_ENERGY_TAU_S: f64 = 0.5;
/// A step seen this long before walking is detected still belongs to the bout, s.
const GAIT_LOOKBACK_S: f64 = 1.0;

impl GaitDetector {
    pub fn new(cfg: &ClassifyConfig, rate_hz: f64) -> Self {
        Self {
            hp: Biquad::highpass(cfg.gait_lo_hz, rate_hz),
            lp: Biquad::lowpass(cfg.gait_hi_hz, rate_hz),
            energy: 0.0,
            walking: false,
            first_step_us: 0,
            last_step_us: 0,
            prev_step_us: None,
            steps: 0,
            prev: 0.0,
        }
    }

    pub fn is_walking(&self) -> bool {
        self.walking
    }

    /// One grid sample; `upright` = the trunk is near its standing inclination. Returns a
    /// bout when one ends that lasted at least `min_s` with a walking cadence.
    pub fn push(
        &mut self,
        cfg: &ClassifyConfig,
        t_us: i64,
        dt: f64,
        vert_acc: f64,
        upright: bool,
        min_s: f64,
    ) -> Option<Bout> {
        let x = self.lp.step(self.hp.step(vert_acc));
        let a = (dt / GAIT_ENERGY_TAU_S).clamp(0.0, 1.0);
        self.energy += a * (x * x - self.energy);
        let above = upright && self.energy.sqrt() > cfg.gait_rms_mps2;
        let step = self.prev <= 0.0 && x > 0.0;
        self.prev = x;
        if step {
            if self.walking {
                self.steps = self.steps.saturating_add(1);
                self.last_step_us = t_us;
            } else {
                self.prev_step_us = Some(t_us);
            }
        }
        if above && !self.walking {
            self.walking = true;
            let lookback = (GAIT_LOOKBACK_S * 1e6) as i64;
            match self.prev_step_us.filter(|&p| t_us - p <= lookback) {
                Some(p) => {
                    self.first_step_us = p;
                    self.steps = 1;
                }
                None => {
                    self.first_step_us = t_us;
                    self.steps = 0;
                }
            }
            self.last_step_us = self.first_step_us;
        }
        if self.walking && !above {
            self.walking = false;
            self.prev_step_us = None;
            let dur = (self.last_step_us - self.first_step_us) as f64 * 1e-6;
            if dur >= min_s && f64::from(self.steps) >= cfg.min_cadence_hz * dur {
                return Some(Bout {
                    start_us: self.first_step_us,
                    end_us: self.last_step_us,
                    steps: self.steps,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(trunk: f64, pelvis: f64, drop: f64, conc: f64, _gap: f64) -> RepShape {
        RepShape {
            trunk_range_deg: trunk,
            pelvis_range_deg: Some(pelvis),
            sacrum_drop_m: Some(drop),
            concentric_s: conc,
        }
    }

    #[test]
    fn rules_separate_the_three_lifts() {
        let cfg = ClassifyConfig::default();
        let dl = [
            shape(60.0, 42.0, 0.28, 1.1, 0.9),
            shape(58.0, 40.0, 0.27, 1.2, 0.8),
        ];
        let sq = [
            shape(38.0, 22.0, 0.45, 1.2, 0.7),
            shape(40.0, 24.0, 0.42, 1.3, 0.6),
        ];
        let sw = [
            shape(47.0, 36.0, 0.25, 1.0, 1.2),
            shape(55.0, 42.0, 0.10, 0.55, 0.05),
            shape(54.0, 40.0, 0.11, 0.6, 0.1),
        ];
        assert_eq!(classify(&cfg, 1.75, &dl), Exercise::Deadlift);
        assert_eq!(classify(&cfg, 1.75, &sq), Exercise::Squat);
        assert_eq!(classify(&cfg, 1.75, &sw), Exercise::KettlebellSwing);
        // A tall athlete's deadlift drops further in metres but not relative to height.
        let tall = [shape(60.0, 42.0, 0.33, 1.1, 0.9)];
        assert_eq!(classify(&cfg, 2.0, &tall), Exercise::Deadlift);
    }

    #[test]
    fn drop_integrator_removes_linear_velocity_drift() {
        let mut d = DropIntegrator::default();
        d.still();
        let dt = 0.01;
        // z(t) = −0.4·s(t/T) (minimum jerk, T = 1.5 s) plus a 0.05 m/s² bias.
        let n = 150;
        for i in 1..=n {
            let x = i as f64 / n as f64;
            let acc = -0.4 * (60.0 * x - 180.0 * x * x + 120.0 * x * x * x) / (1.5 * 1.5);
            d.push(dt, acc + 0.05);
        }
        let drop = d.drop_m().unwrap();
        assert!((drop - 0.4).abs() < 0.02, "{drop}");
        d.still();
        assert!(d.drop_m().is_none());
    }

    #[test]
    fn gait_detector_finds_a_walking_bout() {
        let cfg = ClassifyConfig::default();
        let mut g = GaitDetector::new(&cfg, 100.0);
        let mut bouts = Vec::new();
        for k in 0..2500i64 {
            let t = k as f64 * 0.01;
            let walking = (5.0..15.0).contains(&t);
            let a = if walking {
                2.3 * (2.0 * std::f64::consts::PI * 1.8 * t).sin()
            } else {
                0.02
            };
            if let Some(b) = g.push(&cfg, k * 10_000, 0.01, a, true, 3.0) {
                bouts.push(b);
            }
        }
        assert_eq!(bouts.len(), 1);
        let b = bouts[0];
        let dur = (b.end_us - b.start_us) as f64 * 1e-6;
        assert!((dur - 10.0).abs() < 1.0, "{dur}");
        assert!((b.steps as i64 - 18).abs() <= 2, "{}", b.steps);
    }
}
