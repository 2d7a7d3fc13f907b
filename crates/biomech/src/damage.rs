//! Cumulative damage with the Lifting Fatigue Failure Tool (LiFFT; Gallagher et al. 2017,
//! Appl Ergon 63:142–150; constants as restated in Exo-LiFFT, Zelik et al. 2021):
//!
//!   DPC = exp(0.038·PLM + 0.32) / 1 902 416,   CD = Σ DPC,
//!   P(high risk) = 1 / (1 + exp(−(1.72 + 1.03·log10 CD)))
//!
//! LiFFT was fitted on occupational lifts (PLM mostly ≤ 100 N·m); heavy gym lifts overflow
//! it. The peak moment is therefore normalised to the athlete's capacity moment and
//! re-expressed on the reference scale (`reference_moment_nm`): a lift at capacity counts
//! as a reference-moment lift. Every output says so (`normalised_to_capacity`).
//!
//! Invariants: damage is finite and ≥ 0 (the effective PLM is clamped to [0, 4× reference]);
//! cumulative sums only grow within their scope; the day rolls over on local-day change.

use serde::{Deserialize, Serialize};

use crate::config::DamageConfig;

/// LiFFT damage of one cycle with peak load moment `plm_nm`.
pub fn damage_per_cycle(cfg: &DamageConfig, plm_nm: f64) -> f64 {
    let plm = if plm_nm.is_finite() {
        plm_nm.max(0.0)
    } else {
        0.0
    };
    let d = (cfg.lifft_a * plm + cfg.lifft_b).exp() / cfg.lifft_divisor;
    if d.is_finite() { d } else { 0.0 }
}

/// Probability of a high-risk job for cumulative damage `cd` (0 damage → the limit value).
pub fn p_high_risk(cfg: &DamageConfig, cd: f64) -> f64 {
    if !(cd.is_finite() && cd > 0.0) {
        return 0.0;
    }
    let x = cfg.risk_intercept + cfg.risk_slope * cd.log10();
    let p = 1.0 / (1.0 + (-x).exp());
    if p.is_finite() { p } else { 0.0 }
}

/// The effective PLM: `peak_nm / capacity_nm · reference`, clamped to [0, 4·reference].
pub fn effective_plm(cfg: &DamageConfig, peak_nm: f64, capacity_nm: f64) -> f64 {
    let r = peak_nm / capacity_nm;
    if !r.is_finite() {
        return 0.0;
    }
    (r * cfg.reference_moment_nm).clamp(0.0, 4.0 * cfg.reference_moment_nm)
}

/// Running sums of damage per set, session and (local) day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DamageAccumulator {
    pub set: f64,
    pub session: f64,
    pub day: f64,
    pub day_index: Option<i64>,
}

impl DamageAccumulator {
    /// Local day number of a unix time (µs).
    pub fn day_of(cfg: &DamageConfig, t_us: i64) -> i64 {
        (t_us / 1_000_000)
            .saturating_add(cfg.utc_offset_s)
            .div_euclid(86_400)
    }

    pub fn new_set(&mut self) {
        self.set = 0.0;
    }

    /// Adds one cycle's damage at time `t_us`.
    pub fn add(&mut self, cfg: &DamageConfig, t_us: i64, dpc: f64) {
        let day = Self::day_of(cfg, t_us);
        if self.day_index != Some(day) {
            self.day_index = Some(day);
            self.day = 0.0;
        }
        let d = if dpc.is_finite() { dpc.max(0.0) } else { 0.0 };
        self.set += d;
        self.session += d;
        self.day += d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifft_formula_values() {
        let c = DamageConfig::default();
        // PLM 0: e^0.32 / 1 902 416
        assert!((damage_per_cycle(&c, 0.0) - 0.32f64.exp() / 1_902_416.0).abs() < 1e-15);
        // PLM 100 N·m: e^4.12 / 1 902 416 ≈ 3.236e-5
        let d = damage_per_cycle(&c, 100.0);
        assert!((d - 3.2359e-5).abs() < 1e-8, "{d}");
        // 1000 such lifts: CD ≈ 0.0324 → P = 1/(1+e^−(1.72 + 1.03·log10 0.0324)) ≈ 0.546
        let p = p_high_risk(&c, 1000.0 * d);
        assert!((p - 0.5462).abs() < 1e-3, "{p}");
        assert_eq!(p_high_risk(&c, 0.0), 0.0);
        assert!(p_high_risk(&c, 1e9) <= 1.0);
    }

    #[test]
    fn normalisation_and_accumulation() {
        let c = DamageConfig::default();
        assert_eq!(effective_plm(&c, 300.0, 600.0), 50.0);
        assert_eq!(effective_plm(&c, 5000.0, 600.0), 400.0);
        assert_eq!(effective_plm(&c, 1.0, 0.0), 0.0);
        let mut acc = DamageAccumulator::default();
        let day = 86_400_000_000i64;
        acc.add(&c, 10 * day + 5, 1e-5);
        acc.add(&c, 10 * day + 6, 1e-5);
        acc.new_set();
        acc.add(&c, 11 * day + 1, 1e-5);
        assert_eq!(acc.set, 1e-5);
        assert!((acc.session - 3e-5).abs() < 1e-18);
        assert_eq!(acc.day, 1e-5);
        assert_eq!(acc.day_index, Some(11));
    }
}
