//! Stability deficit (fault 2): how much less controlled an eccentric phase (or a carry
//! bout) is than the athlete's own light-load baseline for the same exercise.
//!
//! Features (biomechanics.md): tremor-band (4–12 Hz) RMS of acceleration and of angular
//! velocity over both sensors (physiological and fatigue tremor; Lippold), the log
//! dimensionless jerk of ω_T (Hogan & Sternad 2009), the coefficient of variation of ω_T
//! during the descent, and tilt sway in carries. Each is compared in log units with the
//! athlete's light-load baseline (loads ≤ `light_load_fraction` of capacity): heavier load
//! makes raw trunk dynamics *more* stable (Graham et al. 2012), so raw values mislead.
//! Deficit = Σ w_i·max(0, z_i).
//!
//! Invariants: the baseline starts from a population prior worth `prior_reps` reps and is
//! dominated by the athlete's own light-load reps as they accumulate; spreads are floored;
//! the deficit is finite and ≥ 0; baselines are per exercise and bounded (fixed size).

use liftguard_model::Exercise;
use serde::{Deserialize, Serialize};

use crate::config::StabilityConfig;
use crate::filter::Welford;

const N_FEATURES: usize = 5;

/// Accumulates one phase (eccentric or carry bout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseStability {
    n: u32,
    tremor_acc2: f64,
    tremor_gyro2: f64,
    jerk2: f64,
    duration_s: f64,
    peak_rate: f64,
    w_hist: [f64; 2],
    w_count: u8,
    descent: Welford,
    sway_sag: Welford,
    sway_lat: Welford,
}

/// Features of one phase; `None` when not measurable (too short, no motion).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StabilityFeatures {
    /// ln RMS of the tremor-band acceleration (m/s²), mean over sensors.
    pub tremor_acc_log: Option<f64>,
    /// ln RMS of the tremor-band angular velocity (rad/s), mean over sensors.
    pub tremor_gyro_log: Option<f64>,
    /// −(log dimensionless jerk) of ω_T: larger = less smooth.
    pub jerk: Option<f64>,
    /// ln of the coefficient of variation of ω_T during the descent.
    pub cv_log: Option<f64>,
    /// ln RMS tilt sway (rad) about the bout mean (carries).
    pub sway_log: Option<f64>,
}

impl StabilityFeatures {
    fn values(&self) -> [Option<f64>; N_FEATURES] {
        [
            self.tremor_acc_log,
            self.tremor_gyro_log,
            self.jerk,
            self.cv_log,
            self.sway_log,
        ]
    }
}

impl PhaseStability {
    /// One grid sample: squared tremor magnitudes (already averaged over sensors), the
    /// 6 Hz low-passed trunk rate (rad/s), optional (sagittal, lateral) trunk tilt (rad).
    #[inline]
    pub fn push(
        &mut self,
        dt: f64,
        tremor_acc2: f64,
        tremor_gyro2: f64,
        omega_t: f64,
        tilt: Option<(f64, f64)>,
        still: f64,
    ) {
        if !(dt.is_finite()
            && tremor_acc2.is_finite()
            && tremor_gyro2.is_finite()
            && omega_t.is_finite())
        {
            return;
        }
        self.n = self.n.saturating_add(1);
        self.tremor_acc2 += tremor_acc2;
        self.tremor_gyro2 += tremor_gyro2;
        self.duration_s += dt;
        self.peak_rate = self.peak_rate.max(omega_t.abs());
        if self.w_count >= 2 {
            let d2 = (omega_t - 2.0 * self.w_hist[1] + self.w_hist[0]) / (dt * dt);
            self.jerk2 += d2 * d2 * dt;
        } else {
            self.w_count += 1;
        }
        self.w_hist = [self.w_hist[1], omega_t];
        if omega_t > still {
            self.descent.push(omega_t);
        }
        if let Some((s, l)) = tilt {
            self.sway_sag.push(s);
            self.sway_lat.push(l);
        }
    }

    pub fn duration_s(&self) -> f64 {
        self.duration_s
    }

    pub fn features(&self) -> StabilityFeatures {
        if self.n < 5 {
            return StabilityFeatures::default();
        }
        let n = f64::from(self.n);
        let ln_pos = |x: f64| (x.is_finite() && x > 1e-12).then(|| x.ln());
        let jerk = (self.peak_rate > 0.05 && self.jerk2 > 0.0)
            .then(|| {
                (self.duration_s.powi(3) / (self.peak_rate * self.peak_rate) * self.jerk2).ln()
            })
            .filter(|v| v.is_finite());
        let cv = (self.descent.count() >= 5 && self.descent.mean() > 1e-6)
            .then(|| self.descent.std() / self.descent.mean())
            .and_then(ln_pos);
        let sway = (self.sway_sag.count() >= 5)
            .then(|| (self.sway_sag.std().powi(2) + self.sway_lat.std().powi(2)).sqrt())
            .and_then(ln_pos);
        StabilityFeatures {
            tremor_acc_log: ln_pos((self.tremor_acc2 / n).sqrt()),
            tremor_gyro_log: ln_pos((self.tremor_gyro2 / n).sqrt()),
            jerk,
            cv_log: cv,
            sway_log: sway,
        }
    }
}

fn exercise_slot(ex: Exercise) -> usize {
    match ex {
        Exercise::Deadlift => 0,
        Exercise::Squat => 1,
        Exercise::KettlebellSwing => 2,
        Exercise::Carry => 3,
    }
}

/// Light-load baselines per exercise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StabilityBaseline {
    stats: [[Welford; N_FEATURES]; 4],
}

impl StabilityBaseline {
    fn prior(cfg: &StabilityConfig) -> [f64; N_FEATURES] {
        let ln = |x: f64| if x > 0.0 { x.ln() } else { 0.0 };
        [
            ln(cfg.prior_tremor_acc),
            ln(cfg.prior_tremor_gyro),
            cfg.prior_jerk,
            ln(cfg.prior_cv),
            ln(cfg.prior_sway),
        ]
    }

    fn weights(cfg: &StabilityConfig) -> [f64; N_FEATURES] {
        [
            cfg.w_tremor_acc,
            cfg.w_tremor_gyro,
            cfg.w_jerk,
            cfg.w_cv,
            cfg.w_sway,
        ]
    }

    /// Deficit of a phase against the exercise's baseline.
    pub fn deficit(&self, cfg: &StabilityConfig, ex: Exercise, f: &StabilityFeatures) -> f64 {
        let prior = Self::prior(cfg);
        let w = Self::weights(cfg);
        let k = cfg.prior_reps.max(0.0);
        let mut d = 0.0;
        for (i, v) in f.values().iter().enumerate() {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            let s = &self.stats[exercise_slot(ex)][i];
            let n = f64::from(s.count());
            let tot = (k + n).max(1e-9);
            let mean = (k * prior[i] + n * s.mean()) / tot;
            let var = (k * cfg.prior_log_spread.powi(2) + n * s.std().powi(2)) / tot;
            let sd = var.sqrt().max(cfg.floor_log);
            let z = (v - mean) / sd;
            if z.is_finite() {
                d += w[i] * z.max(0.0);
            }
        }
        d
    }

    /// Learns a phase into the baseline (call only for light-load phases).
    pub fn learn(&mut self, ex: Exercise, f: &StabilityFeatures) {
        for (s, v) in self.stats[exercise_slot(ex)].iter_mut().zip(f.values()) {
            if let Some(v) = v {
                s.push(v);
            }
        }
    }

    /// Light-load phases learned for an exercise.
    pub fn count(&self, ex: Exercise) -> u32 {
        self.stats[exercise_slot(ex)]
            .iter()
            .map(Welford::count)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(tremor: f64, seed: u64) -> StabilityFeatures {
        let mut p = PhaseStability::default();
        let mut x = seed;
        for i in 0..150 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * tremor;
            let t = i as f64 / 150.0;
            let w = 1.5 * 30.0 * t * t * (1.0 - t) * (1.0 - t) + noise;
            p.push(
                0.01,
                tremor * tremor,
                (0.3 * tremor).powi(2),
                w,
                None,
                0.087,
            );
        }
        p.features()
    }

    #[test]
    fn smooth_min_jerk_has_textbook_jerk() {
        let mut p = PhaseStability::default();
        let d = 1.5;
        let n = 1500;
        for i in 0..=n {
            let x = i as f64 / n as f64;
            let w = 30.0 * x * x * (1.0 - x) * (1.0 - x) / d;
            p.push(d / n as f64, 0.01, 0.01, w, None, 0.0);
        }
        // Dimensionless jerk of a minimum-jerk profile: 720 / 1.875² = 204.8 → ln = 5.32.
        let j = p.features().jerk.unwrap();
        assert!((j - 5.32).abs() < 0.05, "{j}");
    }

    #[test]
    fn tremor_raises_the_deficit_against_the_light_baseline() {
        let cfg = StabilityConfig::default();
        let mut b = StabilityBaseline::default();
        for s in 0..6 {
            b.learn(Exercise::Deadlift, &phase(0.05, s));
        }
        assert_eq!(b.count(Exercise::Deadlift), 6);
        let calm = b.deficit(&cfg, Exercise::Deadlift, &phase(0.05, 99));
        let shaky = b.deficit(&cfg, Exercise::Deadlift, &phase(0.4, 99));
        assert!(shaky > calm + 3.0, "calm {calm} shaky {shaky}");
        assert!(calm < 1.5, "{calm}");
        assert_eq!(
            b.deficit(&cfg, Exercise::Squat, &StabilityFeatures::default()),
            0.0
        );
    }
}
