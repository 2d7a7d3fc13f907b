//! Online rep and phase segmentation on the trunk's sagittal motion.
//!
//! A hysteresis state machine on the low-passed trunk inclination θ_T and its angular
//! velocity ω_T (biomechanics.md):
//! standing → **eccentric** (flexing, ω_T > ω_on) → **bottom** (flexion stops, depth reached)
//! → **concentric** (extending, ω_T < −ω_on) → back near standing → **top** → next rep.
//!
//! Invariants:
//! - Phase times are ordered: start ≤ bottom ≤ concentric start ≤ end.
//! - A rep is reported only if the trunk flexed at least `min_depth_deg` beyond the standing
//!   reference; shallow movements (sway, steps, posture shifts) are discarded.
//! - Every phase has a timeout, so the machine always returns to standing.
//! - Times are corrected for the group delay of the low-pass (2nd-order Butterworth:
//!   √2 / (2π f_c) at low frequency), so they refer to the unfiltered motion.

use serde::{Deserialize, Serialize};

use crate::config::SegmentConfig;

/// Phase of the current movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Standing,
    Eccentric,
    Bottom,
    Concentric,
}

/// What a sample changed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SegEvent {
    /// An eccentric started at `t_us` (back-dated to the last still sample).
    Start { t_us: i64 },
    /// The bottom was reached (time of maximum flexion).
    Bottom { t_us: i64 },
    /// The concentric started (back-dated to the end of the bottom).
    Concentric { t_us: i64 },
    /// The rep ended (back near standing, extension finished).
    End(RepTiming),
    /// The movement was not a rep (too shallow or timed out).
    Abandoned,
}

/// Phase times of a completed rep (µs) and its depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RepTiming {
    pub start_us: i64,
    pub bottom_us: i64,
    pub concentric_us: i64,
    pub end_us: i64,
    /// Peak flexion beyond the standing reference, rad.
    pub depth: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segmenter {
    phase: Phase,
    /// Standing reference of θ_T, rad.
    standing: f64,
    still_since_us: i64,
    start_us: i64,
    peak: f64,
    peak_us: i64,
    bottom_us: i64,
    ext_since_us: i64,
    concentric_us: i64,
    delay_us: i64,
    initialized: bool,
}

impl Segmenter {
    /// `lowpass_hz` is the cut-off of the filter applied to θ_T, ω_T (for delay compensation).
    pub fn new(lowpass_hz: f64) -> Self {
        let delay_s = if lowpass_hz > 0.0 {
            std::f64::consts::SQRT_2 / (2.0 * std::f64::consts::PI * lowpass_hz)
        } else {
            0.0
        };
        Self {
            phase: Phase::Standing,
            standing: 0.0,
            still_since_us: 0,
            start_us: 0,
            peak: 0.0,
            peak_us: 0,
            bottom_us: 0,
            ext_since_us: 0,
            concentric_us: 0,
            delay_us: (delay_s * 1e6).round() as i64,
            initialized: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Standing reference (rad).
    pub fn standing(&self) -> f64 {
        self.standing
    }

    /// Forgets the current movement (after a long data gap).
    pub fn reset(&mut self) {
        self.phase = Phase::Standing;
        self.initialized = false;
    }

    /// One grid sample of low-passed trunk inclination `theta` (rad) and rate `omega` (rad/s);
    /// `dt` is the grid period (s).
    pub fn step(
        &mut self,
        cfg: &SegmentConfig,
        t_us: i64,
        theta: f64,
        omega: f64,
        dt: f64,
    ) -> Option<SegEvent> {
        if !(theta.is_finite() && omega.is_finite()) {
            return None;
        }
        let t = t_us - self.delay_us;
        if !self.initialized {
            // θ_T is relative to the calibrated stance, so 0 is the standing prior.
            self.initialized = true;
            self.still_since_us = t;
            self.phase = Phase::Standing;
        }
        let on = cfg.on_dps.to_radians();
        let still = cfg.still_dps.to_radians();
        let rel = theta - self.standing;
        match self.phase {
            Phase::Standing => {
                if omega.abs() < still && rel.abs() < cfg.top_zone_deg.to_radians() {
                    let a = (dt / cfg.standing_tau_s.max(dt)).clamp(0.0, 1.0);
                    self.standing += a * (theta - self.standing);
                }
                if omega <= still {
                    self.still_since_us = t;
                }
                if omega > on && rel > -cfg.top_zone_deg.to_radians() {
                    self.phase = Phase::Eccentric;
                    self.start_us = self.still_since_us;
                    self.peak = theta;
                    self.peak_us = t;
                    return Some(SegEvent::Start {
                        t_us: self.start_us,
                    });
                }
                None
            }
            Phase::Eccentric => {
                if theta > self.peak {
                    self.peak = theta;
                    self.peak_us = t;
                }
                if t - self.start_us > (cfg.max_eccentric_s * 1e6) as i64 {
                    return Some(self.abandon(t));
                }
                if omega < still {
                    if self.peak - self.standing >= cfg.min_depth_deg.to_radians() {
                        self.phase = Phase::Bottom;
                        self.bottom_us = self.peak_us;
                        self.ext_since_us = t;
                        return Some(SegEvent::Bottom {
                            t_us: self.bottom_us,
                        });
                    }
                    if omega < -on || rel < cfg.top_zone_deg.to_radians() * 0.5 {
                        return Some(self.abandon(t));
                    }
                }
                None
            }
            Phase::Bottom => {
                if theta > self.peak {
                    self.peak = theta;
                    self.peak_us = t;
                    self.bottom_us = t;
                }
                if omega >= -still {
                    self.ext_since_us = t;
                }
                if t - self.bottom_us > (cfg.max_ascent_s * 1e6) as i64 {
                    return Some(self.abandon(t));
                }
                if omega < -on {
                    self.phase = Phase::Concentric;
                    self.concentric_us = self.ext_since_us.max(self.bottom_us);
                    return Some(SegEvent::Concentric {
                        t_us: self.concentric_us,
                    });
                }
                None
            }
            Phase::Concentric => {
                let depth = self.peak - self.standing;
                let zone = cfg
                    .top_zone_deg
                    .to_radians()
                    .max(cfg.top_zone_fraction * depth);
                if rel < zone && omega >= -still {
                    self.phase = Phase::Standing;
                    self.still_since_us = t;
                    return Some(SegEvent::End(RepTiming {
                        start_us: self.start_us,
                        bottom_us: self.bottom_us,
                        concentric_us: self.concentric_us,
                        end_us: t.max(self.concentric_us),
                        depth,
                    }));
                }
                if t - self.bottom_us > (cfg.max_ascent_s * 1e6) as i64 {
                    return Some(self.abandon(t));
                }
                None
            }
        }
    }

    fn abandon(&mut self, t: i64) -> SegEvent {
        self.phase = Phase::Standing;
        self.still_since_us = t;
        SegEvent::Abandoned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trunk angle of `n` synthetic reps (deg): descend `depth` over 1.4 s, pause 0.3 s,
    /// ascend over 1.1 s, hold 1 s.
    fn reps(n: usize, depth: f64, dt: f64) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let seg = |x: f64| 10.0 * x.powi(3) - 15.0 * x.powi(4) + 6.0 * x.powi(5);
        let mut push_phase = |dur: f64, f: &dyn Fn(f64) -> f64| {
            let k = (dur / dt) as usize;
            for i in 0..k {
                out.push(f(i as f64 / k as f64));
            }
        };
        push_phase(2.0, &|_| 0.0);
        for _ in 0..n {
            push_phase(1.4, &|x| depth * seg(x));
            push_phase(0.3, &|_| depth);
            push_phase(1.1, &|x| depth * (1.0 - seg(x)));
            push_phase(1.0, &|_| 0.0);
        }
        let mut prev = 0.0;
        out.iter()
            .map(|&a| {
                let w = (a - prev) / dt;
                prev = a;
                (a.to_radians(), w.to_radians())
            })
            .collect()
    }

    fn count(signal: &[(f64, f64)], dt: f64) -> (usize, Vec<RepTiming>) {
        let cfg = SegmentConfig::default();
        let mut s = Segmenter::new(0.0);
        let mut ends = Vec::new();
        for (i, &(th, w)) in signal.iter().enumerate() {
            if let Some(SegEvent::End(r)) = s.step(&cfg, (i as f64 * dt * 1e6) as i64, th, w, dt) {
                ends.push(r);
            }
        }
        (ends.len(), ends)
    }

    #[test]
    fn counts_deep_reps_with_ordered_phases() {
        let dt = 0.01;
        let (n, ends) = count(&reps(5, 50.0, dt), dt);
        assert_eq!(n, 5);
        for r in &ends {
            assert!(
                r.start_us <= r.bottom_us
                    && r.bottom_us <= r.concentric_us
                    && r.concentric_us <= r.end_us
            );
            assert!((r.depth.to_degrees() - 50.0).abs() < 1.0);
            // ascent 1.1 s + pause ≈ end − bottom
            let asc = (r.end_us - r.bottom_us) as f64 * 1e-6;
            assert!(asc > 1.0 && asc < 1.5, "{asc}");
        }
    }

    #[test]
    fn ignores_shallow_movements() {
        let dt = 0.01;
        assert_eq!(count(&reps(4, 8.0, dt), dt).0, 0);
    }

    #[test]
    fn counts_squat_depth_reps() {
        let dt = 0.01;
        assert_eq!(count(&reps(8, 25.0, dt), dt).0, 8);
    }
}
