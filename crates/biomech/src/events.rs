//! Extensor-moment events (fault 1): on each ascent, does the lumbar spine extend first and
//! fast while the pelvis waits (lumbar-led), rather than the hips driving the lift?
//!
//! The ascent's lumbar and pelvic angular velocities (low-passed against tremor) and angles
//! are recorded in a bounded buffer from just before the concentric start; when the rep
//! ends, [`analyze_ascent`] computes the evidence (biomechanics.md):
//! peak lumbar extension velocity and lumbar share r(t) = |ω_L| / (|ω_L| + |ω_P|) within the
//! first `early_fraction` of the ascent, the lumbar dominance index
//! LDI = Δθ_L,ext / (Δθ_L,ext + Δθ_P,ext), and the onset lag (lumbar − pelvic extension onset).
//! An event needs all three: fast (peak > 60 °/s), lumbar-dominated (r > 0.6 for ≥ 100 ms)
//! and lumbar-first (lead > 50 ms).
//!
//! Invariants:
//! - The buffer holds at most `max_ascent_s` (plus a short pre-roll); longer ascents are
//!   analysed on their first part, which contains the early window whenever the ascent is
//!   shorter than `max_ascent_s / early_fraction`.
//! - Extension is negative angular velocity (flexion positive); all evidence is finite.
//! - Onsets are timed on the rise to each segment's peak extension velocity (extrapolated
//!   to its start), so a tremor blip before the rise is never an onset.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::compact::{self, dequantize, quantize};
use crate::config::EventConfig;

const RATE_SCALE: f64 = 1e-3;
const ANGLE_SCALE: f64 = 1e-4;
/// Pre-roll kept before the concentric start, s (its back-dated start may precede the
/// detection by the hysteresis).
const PRE_ROLL_S: f64 = 0.3;

/// Bounded recording of one ascent: (ω_L, ω_P, θ_L, θ_P) per grid sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AscentRecorder {
    start_us: i64,
    period_us: i64,
    recording: bool,
    #[serde(with = "compact::records")]
    data: VecDeque<[i16; 4]>,
}

/// One ascent sample (rad/s, rad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AscentSample {
    pub omega_l: f64,
    pub omega_p: f64,
    pub theta_l: f64,
    pub theta_p: f64,
}

impl AscentRecorder {
    pub fn new(period_us: i64) -> Self {
        Self {
            start_us: 0,
            period_us: period_us.max(1),
            recording: false,
            data: VecDeque::new(),
        }
    }

    fn pre_cap(&self) -> usize {
        (PRE_ROLL_S * 1e6 / self.period_us as f64).ceil() as usize + 1
    }

    /// Appends a sample at `t_us` (already corrected for filter delay). Before `begin`, only
    /// the pre-roll is kept; after, samples are kept up to `max_ascent_s`. A time jump (gap)
    /// before `begin` restarts the pre-roll; after `begin` missing samples repeat the last one.
    pub fn push(&mut self, cfg: &EventConfig, t_us: i64, s: AscentSample) {
        let rec = [
            quantize(s.omega_l, RATE_SCALE),
            quantize(s.omega_p, RATE_SCALE),
            quantize(s.theta_l, ANGLE_SCALE),
            quantize(s.theta_p, ANGLE_SCALE),
        ];
        if self.data.is_empty() {
            self.start_us = t_us;
            self.data.push_back(rec);
            return;
        }
        let expected = self
            .start_us
            .saturating_add(self.data.len() as i64 * self.period_us);
        if !self.recording {
            if t_us != expected {
                self.data.clear();
                self.start_us = t_us;
            }
            self.data.push_back(rec);
            while self.data.len() > self.pre_cap() {
                self.data.pop_front();
                self.start_us += self.period_us;
            }
            return;
        }
        let cap = (cfg.max_ascent_s * 1e6 / self.period_us as f64).ceil() as usize + self.pre_cap();
        if t_us < expected {
            return;
        }
        let fill = ((t_us - expected) / self.period_us).min(cap as i64) as usize;
        let last = self.data.back().copied().unwrap_or(rec);
        for _ in 0..fill {
            if self.data.len() >= cap {
                return;
            }
            self.data.push_back(last);
        }
        if self.data.len() < cap {
            self.data.push_back(rec);
        }
    }

    /// The concentric started at `t_us`: keep a little before it and record from now on.
    pub fn begin(&mut self, t_us: i64) {
        self.recording = true;
        let keep_from = t_us - (0.1 * 1e6) as i64;
        while self.data.len() > 1 && self.start_us + self.period_us <= keep_from {
            self.data.pop_front();
            self.start_us += self.period_us;
        }
    }

    /// Back to pre-roll mode (rep finished or abandoned).
    pub fn clear(&mut self) {
        self.recording = false;
        self.data.clear();
    }

    fn sample(&self, i: usize) -> Option<(i64, AscentSample)> {
        let r = self.data.get(i)?;
        Some((
            self.start_us + i as i64 * self.period_us,
            AscentSample {
                omega_l: dequantize(r[0], RATE_SCALE),
                omega_p: dequantize(r[1], RATE_SCALE),
                theta_l: dequantize(r[2], ANGLE_SCALE),
                theta_p: dequantize(r[3], ANGLE_SCALE),
            },
        ))
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The evidence of one ascent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AscentEvidence {
    pub peak_lumbar_ext_velocity_dps: f64,
    pub lumbar_share_duration_ms: f64,
    pub max_lumbar_share: f64,
    pub ldi: f64,
    /// Lumbar minus pelvic extension onset, ms (negative = the lumbar spine leads).
    pub onset_lag_ms: f64,
    pub bottom_lumbar_flexion_deg: f64,
    pub event: bool,
}

/// Extension onset of one segment (µs), extrapolated from its rise to its peak extension
/// velocity v_pk in [from, to]. Point-to-point movements have bell-shaped, minimum-jerk
/// velocity profiles v/v_pk = 16·x²(1 − x)², x = (t − t0)/D (Flash & Hogan 1985), so the
/// crossings t_lo, t_hi of f_lo·v_pk and f_hi·v_pk fix x_lo, x_hi, hence D and the start t0.
/// A fixed threshold would time a slow segment late and a fast one early; the
/// extrapolation times both at their start.
fn extrapolated_onset(
    rec: &AscentRecorder,
    cfg: &EventConfig,
    from: i64,
    to: i64,
    pick: impl Fn(&AscentSample) -> f64,
) -> Option<f64> {
    let mut series: Vec<(i64, f64)> = Vec::with_capacity(rec.len());
    for i in 0..rec.len() {
        let Some((t, s)) = rec.sample(i) else { break };
        if t < from {
            continue;
        }
        if t > to {
            break;
        }
        series.push((t, -pick(&s)));
    }
    let (k_pk, &(_, v_pk)) = series
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1))?;
    if v_pk.is_nan() || v_pk <= cfg.onset_dps.to_radians() {
        return None;
    }
    // Walk back from the peak to each level's crossing on the rise.
    let crossing = |level: f64| -> Option<f64> {
        let mut k = k_pk;
        while k > 0 && series[k].1 >= level {
            k -= 1;
        }
        if series[k].1 >= level {
            return None; // still above the level at the start: the rise began earlier
        }
        let (t0, v0) = series[k];
        let (t1, v1) = series[k + 1];
        let w = ((level - v0) / (v1 - v0)).clamp(0.0, 1.0);
        Some(t0 as f64 + w * (t1 - t0) as f64)
    };
    let t_hi = crossing(cfg.onset_fraction_high * v_pk)?;
    let t_lo = crossing(cfg.onset_fraction_low * v_pk)?;
    // Minimum-jerk phase at which the velocity reaches fraction f of its peak (x ≤ 1/2).
    let phase = |f: f64| (1.0 - (1.0 - f.clamp(0.0, 1.0).sqrt()).max(0.0).sqrt()) / 2.0;
    let (x_lo, x_hi) = (
        phase(cfg.onset_fraction_low),
        phase(cfg.onset_fraction_high),
    );
    let duration = (t_hi - t_lo).max(0.0) / (x_hi - x_lo).max(1e-3);
    let t0 = t_lo - x_lo * duration;
    t0.is_finite().then_some(t0)
}

/// Analyses the ascent in [`concentric_us`, `end_us`] recorded in `rec`.
pub fn analyze_ascent(
    cfg: &EventConfig,
    rec: &AscentRecorder,
    concentric_us: i64,
    end_us: i64,
) -> AscentEvidence {
    let mut ev = AscentEvidence::default();
    if rec.is_empty() || end_us <= concentric_us {
        return ev;
    }
    let dur = (end_us - concentric_us) as f64;
    let early_end = concentric_us + (cfg.early_fraction * dur) as i64;
    let period_ms = rec.period_us as f64 * 1e-3;
    let min_rate = cfg.share_min_rate_dps.to_radians();
    let mut peak_ext: f64 = 0.0;
    let mut run = 0usize;
    let mut best_run = 0usize;
    let mut max_share: f64 = 0.0;
    let mut first: Option<AscentSample> = None;
    let mut last: Option<AscentSample> = None;
    for i in 0..rec.len() {
        let Some((t, s)) = rec.sample(i) else { break };
        if t < concentric_us {
            continue;
        }
        if t > end_us {
            break;
        }
        if first.is_none() {
            first = Some(s);
        }
        last = Some(s);
        if t <= early_end {
            peak_ext = peak_ext.max(-s.omega_l);
            let tot = s.omega_l.abs() + s.omega_p.abs();
            if s.omega_l < 0.0 && tot > min_rate {
                let r = s.omega_l.abs() / tot;
                max_share = max_share.max(r);
                if r > cfg.share_threshold {
                    run += 1;
                    best_run = best_run.max(run);
                } else {
                    run = 0;
                }
            } else {
                run = 0;
            }
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        return ev;
    };
    let d_l = (first.theta_l - last.theta_l).max(0.0);
    let d_p = (first.theta_p - last.theta_p).max(0.0);
    ev.ldi = if d_l + d_p > 1e-3 {
        d_l / (d_l + d_p)
    } else {
        0.0
    };
    ev.peak_lumbar_ext_velocity_dps = peak_ext.to_degrees();
    ev.lumbar_share_duration_ms = best_run as f64 * period_ms;
    ev.max_lumbar_share = max_share;
    ev.bottom_lumbar_flexion_deg = first.theta_l.to_degrees();
    let from = concentric_us - (PRE_ROLL_S * 0.5 * 1e6) as i64;
    let on_l = extrapolated_onset(rec, cfg, from, end_us, |s| s.omega_l);
    let on_p = extrapolated_onset(rec, cfg, from, end_us, |s| s.omega_p);
    let end = end_us as f64;
    ev.onset_lag_ms = match (on_l, on_p) {
        (Some(l), Some(p)) => (l - p) * 1e-3,
        // The pelvis never extended: the lumbar spine led the whole ascent.
        (Some(l), None) => (l - end) * 1e-3,
        // The lumbar spine never extended: it did not lead.
        (None, Some(p)) => (end - p) * 1e-3,
        (None, None) => 0.0,
    };
    ev.event = on_l.is_some()
        && ev.peak_lumbar_ext_velocity_dps > cfg.min_peak_ext_dps
        && ev.lumbar_share_duration_ms >= cfg.min_share_ms
        && -ev.onset_lag_ms > cfg.min_lead_ms;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimum-jerk velocity of a move of `amp` rad over [t0, t0 + d] at time t.
    fn mj_vel(t: f64, t0: f64, d: f64, amp: f64) -> f64 {
        if t < t0 || t > t0 + d {
            return 0.0;
        }
        let x = (t - t0) / d;
        amp / d * 30.0 * x * x * (1.0 - x) * (1.0 - x)
    }

    /// An ascent of 1 s from t = 0: pelvis −45° from `p0`, lumbar −20° (fast or slow) from `l0`.
    fn ascent(p0: f64, p_dur: f64, l0: f64, l_dur: f64) -> (AscentRecorder, EventConfig) {
        let cfg = EventConfig::default();
        let mut rec = AscentRecorder::new(10_000);
        let (mut tl, mut tp) = (20f64.to_radians(), 45f64.to_radians());
        let dt = 0.01;
        for k in -30i64..110 {
            let t = k as f64 * dt;
            if k == 0 {
                rec.begin(0);
            }
            let wl = -mj_vel(t, l0, l_dur, 20f64.to_radians());
            let wp = -mj_vel(t, p0, p_dur, 45f64.to_radians());
            tl += wl * dt;
            tp += wp * dt;
            rec.push(
                &cfg,
                k * 10_000,
                AscentSample {
                    omega_l: wl,
                    omega_p: wp,
                    theta_l: tl,
                    theta_p: tp,
                },
            );
        }
        (rec, cfg)
    }

    #[test]
    fn hip_led_ascent_is_not_an_event() {
        let (rec, cfg) = ascent(0.0, 0.95, 0.15, 0.85);
        let ev = analyze_ascent(&cfg, &rec, 0, 1_000_000);
        assert!(!ev.event, "{ev:?}");
        assert!(ev.onset_lag_ms > 50.0, "{ev:?}");
        assert!(ev.ldi > 0.25 && ev.ldi < 0.35, "{ev:?}");
    }

    #[test]
    fn lumbar_led_ascent_is_an_event() {
        let (rec, cfg) = ascent(0.18, 0.8, 0.0, 0.25);
        let ev = analyze_ascent(&cfg, &rec, 0, 1_000_000);
        assert!(ev.event, "{ev:?}");
        assert!(ev.peak_lumbar_ext_velocity_dps > 100.0);
        assert!(ev.onset_lag_ms < -100.0);
        assert!(ev.lumbar_share_duration_ms >= 100.0);
        assert!((ev.bottom_lumbar_flexion_deg - 20.0).abs() < 0.5);
    }

    #[test]
    fn fast_but_simultaneous_is_not_an_event() {
        // Fast lumbar extension, but the pelvis starts with it: no lead.
        let (rec, cfg) = ascent(0.0, 0.5, 0.0, 0.3);
        let ev = analyze_ascent(&cfg, &rec, 0, 1_000_000);
        assert!(!ev.event, "{ev:?}");
    }

    #[test]
    fn recorder_is_bounded() {
        let cfg = EventConfig::default();
        let mut rec = AscentRecorder::new(10_000);
        let s = AscentSample {
            omega_l: 0.0,
            omega_p: 0.0,
            theta_l: 0.0,
            theta_p: 0.0,
        };
        for k in 0..1000 {
            rec.push(&cfg, k * 10_000, s);
        }
        assert!(rec.len() <= 32);
        rec.begin(1000 * 10_000);
        for k in 1000..3000 {
            rec.push(&cfg, k * 10_000, s);
        }
        assert!(rec.len() <= 540, "{}", rec.len());
    }
}
