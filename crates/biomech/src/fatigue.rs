//! Fatigue of the spinal extensors, in two reported parts (biomechanics.md):
//!
//! - **Dose** (modelled): F ← F·e^(−Δt/τ) + max(0, M/M_cap − d)·Δt, τ = 5000 s; dose score
//!   = 100·(1 − e^(−F/F_ref)). The dead band d (default 5 % of capacity) keeps standing
//!   posture and sway (a few % of capacity, clipped at 0 so never averaging out) from
//!   accumulating dose for hours; d = 0 is the literal model.
//! - **Observed**: per rep, z-scores against the first reps of the set for peak lumbar
//!   flexion, LDI, concentric duration, tremor-band RMS and jerk (each in the direction that
//!   fatigue moves it); F_obs = mean of max(0, z), averaged exponentially over the set's
//!   reps (single reps are noisy); observed score = 100·(1 − e^(−F_obs/ref)).
//!
//! The blended score is (1 − w)·dose + w·observed.
//!
//! Invariants: scores are in [0, 100] and finite; the dose never decreases while loaded
//! and decays exponentially at rest; the observed part of the first `baseline_reps` reps of
//! a set is 0 (they are its baseline); baseline spreads are floored so 3 reps cannot
//! produce huge z-scores.

use serde::{Deserialize, Serialize};

use crate::config::FatigueConfig;
use crate::filter::Welford;

/// The first-order dose model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DoseModel {
    /// Dose, seconds at capacity moment.
    f: f64,
}

impl DoseModel {
    /// Advances by `dt` seconds with moment ratio `m_over_cap` (M / M_cap); the ratio counts
    /// above `dose_deadband` only.
    #[inline]
    pub fn step(&mut self, cfg: &FatigueConfig, dt: f64, m_over_cap: f64) {
        if !(dt.is_finite() && dt > 0.0) {
            return;
        }
        let load = if m_over_cap.is_finite() {
            (m_over_cap - cfg.dose_deadband).clamp(0.0, 10.0)
        } else {
            0.0
        };
        self.f = self.f * (-dt / cfg.tau_s).exp() + load * dt;
    }

    /// Rest for `dt` seconds (no load).
    pub fn rest(&mut self, cfg: &FatigueConfig, dt: f64) {
        if dt.is_finite() && dt > 0.0 {
            self.f *= (-dt / cfg.tau_s).exp();
        }
    }

    pub fn dose(&self) -> f64 {
        self.f
    }

    /// Dose score 0–100.
    pub fn score(&self, cfg: &FatigueConfig) -> f64 {
        let s = 100.0 * (1.0 - (-self.f / cfg.dose_ref_s).exp());
        if s.is_finite() {
            s.clamp(0.0, 100.0)
        } else {
            0.0
        }
    }
}

/// Per-rep features watched for drift (None = not measured for this rep).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftFeatures {
    pub peak_lumbar_deg: Option<f64>,
    pub ldi: Option<f64>,
    pub concentric_s: Option<f64>,
    /// ln of the tremor-band RMS.
    pub tremor_log: Option<f64>,
    /// −(log dimensionless jerk): larger = less smooth.
    pub jerk_log: Option<f64>,
}

impl DriftFeatures {
    fn values(&self) -> [Option<f64>; 5] {
        [
            self.peak_lumbar_deg,
            self.ldi,
            self.concentric_s,
            self.tremor_log,
            self.jerk_log,
        ]
    }
}

/// Observed drift within a set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedDrift {
    baseline: [Welford; 5],
    reps: u32,
    /// Smoothed F_obs (exponential average over the set's reps).
    smoothed: f64,
}

impl ObservedDrift {
    /// Forgets the set's baseline.
    pub fn new_set(&mut self) {
        *self = Self::default();
    }

    /// Adds a rep; returns the set's smoothed F_obs (the mean of positive z-scores averaged
    /// exponentially over reps, weight `observed_smoothing`; 0 while forming the baseline).
    pub fn push(&mut self, cfg: &FatigueConfig, f: &DriftFeatures) -> f64 {
        let raw = self.raw(cfg, f);
        if self.reps > cfg.baseline_reps {
            let a = cfg.observed_smoothing.clamp(0.0, 1.0);
            self.smoothed += a * (raw - self.smoothed);
        }
        self.smoothed
    }

    /// F_obs of one rep (mean of positive z-scores; 0 while forming the baseline).
    fn raw(&mut self, cfg: &FatigueConfig, f: &DriftFeatures) -> f64 {
        self.reps = self.reps.saturating_add(1);
        let vals = f.values();
        if self.reps <= cfg.baseline_reps {
            for (w, v) in self.baseline.iter_mut().zip(vals) {
                if let Some(v) = v {
                    w.push(v);
                }
            }
            return 0.0;
        }
        let mut sum = 0.0;
        let mut n = 0u32;
        for (i, (w, v)) in self.baseline.iter().zip(vals).enumerate() {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            if w.count() == 0 {
                continue;
            }
            let floor = match i {
                0 => cfg.floor_lumbar_deg,
                1 => cfg.floor_ldi,
                2 => cfg.floor_duration_frac * w.mean().abs(),
                _ => cfg.floor_log,
            };
            let sd = w.std().max(floor).max(1e-9);
            let z = (v - w.mean()) / sd;
            if z.is_finite() {
                sum += z.max(0.0);
                n += 1;
            }
        }
        if n == 0 { 0.0 } else { sum / f64::from(n) }
    }
}

/// Maps F_obs to a 0–100 score.
pub fn observed_score(cfg: &FatigueConfig, f_obs: f64) -> f64 {
    let s = 100.0 * (1.0 - (-f_obs.max(0.0) / cfg.observed_ref).exp());
    if s.is_finite() {
        s.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// Blends the two parts.
pub fn blend(cfg: &FatigueConfig, dose_score: f64, observed: f64) -> f64 {
    let w = cfg.observed_weight;
    ((1.0 - w) * dose_score + w * observed).clamp(0.0, 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dose_rises_under_load_and_recovers_at_rest() {
        let cfg = FatigueConfig::default();
        let mut d = DoseModel::default();
        let mut prev = 0.0;
        for _ in 0..300 {
            d.step(&cfg, 0.1, 0.7);
            assert!(d.score(&cfg) >= prev);
            prev = d.score(&cfg);
        }
        // 30 s at 70 % capacity (65 % above the 5 % dead band): F ≈ 19.5 s (decay over
        // 30 s is negligible at τ = 5000 s).
        assert!((d.dose() - 19.5).abs() < 0.1, "{}", d.dose());
        let mut standing = DoseModel::default();
        standing.step(&cfg, 3600.0, 0.03);
        assert_eq!(standing.dose(), 0.0);
        let before = d.dose();
        d.rest(&cfg, 5000.0);
        assert!((d.dose() - before / std::f64::consts::E).abs() < 1e-9);
        d.step(&cfg, f64::NAN, 1.0);
        d.step(&cfg, 1.0, f64::INFINITY);
        assert!(d.score(&cfg).is_finite());
    }

    #[test]
    fn observed_drift_is_zero_at_baseline_and_grows_with_drift() {
        let cfg = FatigueConfig::default();
        let mut o = ObservedDrift::default();
        let rep = |lumbar: f64, conc: f64| DriftFeatures {
            peak_lumbar_deg: Some(lumbar),
            ldi: Some(0.3),
            concentric_s: Some(conc),
            tremor_log: Some(-3.0),
            jerk_log: None,
        };
        for l in [20.0, 20.5, 19.5] {
            assert_eq!(o.push(&cfg, &rep(l, 1.0)), 0.0);
        }
        let same = o.push(&cfg, &rep(20.0, 1.0));
        assert!(same < 0.1, "{same}");
        let drifted = o.push(&cfg, &rep(26.0, 1.3));
        // lumbar z = 6/1.5 = 4, duration z = 0.3/0.06 = 5, others 0: mean 9/4, smoothed.
        let a = cfg.observed_smoothing;
        let expect = same + a * (2.25 - same);
        assert!((drifted - expect).abs() < 1e-9, "{drifted} vs {expect}");
        assert!(observed_score(&cfg, drifted) > 40.0);
        o.new_set();
        assert_eq!(o.push(&cfg, &rep(26.0, 1.3)), 0.0);
        let w = cfg.observed_weight;
        assert!((blend(&cfg, 50.0, 100.0) - (50.0 * (1.0 - w) + 100.0 * w)).abs() < 1e-12);
    }
}
