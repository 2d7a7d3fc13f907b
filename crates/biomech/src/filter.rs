//! Causal digital filters and running statistics used by every other stage.
//!
//! Invariants:
//! - Every filter is causal (output depends on current and past inputs only) and
//!   allocation-free per sample.
//! - Designs are valid for any positive sample rate: cut-offs are clamped below Nyquist
//!   (0.45·fs) so a badly-estimated rate can never produce an unstable filter.
//! - A non-finite input never enters the state: it is replaced by the previous output
//!   (filters) or ignored (statistics), so outputs stay finite for finite coefficients.

use serde::{Deserialize, Serialize};

/// Largest cut-off as a fraction of the sample rate (below Nyquist = 0.5).
const MAX_CUTOFF_FRACTION: f64 = 0.45;
/// Butterworth quality factor for a 2nd-order section (1/√2).
const BUTTERWORTH_Q: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// A 2nd-order IIR section in transposed direct form II.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
    last: f64,
}

impl Biquad {
    /// An identity filter (passes input through).
    pub fn identity() -> Self {
        Self {
            b: [1.0, 0.0, 0.0],
            a: [0.0, 0.0],
            z: [0.0; 2],
            last: 0.0,
        }
    }

    fn warp(fc_hz: f64, fs_hz: f64) -> Option<f64> {
        if !(fc_hz.is_finite() && fs_hz.is_finite()) || fc_hz <= 0.0 || fs_hz <= 0.0 {
            return None;
        }
        let fc = fc_hz.min(MAX_CUTOFF_FRACTION * fs_hz);
        Some((std::f64::consts::PI * fc / fs_hz).tan())
    }

    /// 2nd-order Butterworth low-pass (bilinear transform with pre-warping).
    /// Invalid parameters give the identity filter.
    pub fn lowpass(fc_hz: f64, fs_hz: f64) -> Self {
        let Some(k) = Self::warp(fc_hz, fs_hz) else {
            return Self::identity();
        };
        let norm = 1.0 / (1.0 + k / BUTTERWORTH_Q + k * k);
        let b0 = k * k * norm;
        Self {
            b: [b0, 2.0 * b0, b0],
            a: [
                2.0 * (k * k - 1.0) * norm,
                (1.0 - k / BUTTERWORTH_Q + k * k) * norm,
            ],
            z: [0.0; 2],
            last: 0.0,
        }
    }

    /// 2nd-order Butterworth high-pass. Invalid parameters give the identity filter.
    pub fn highpass(fc_hz: f64, fs_hz: f64) -> Self {
        let Some(k) = Self::warp(fc_hz, fs_hz) else {
            return Self::identity();
        };
        let norm = 1.0 / (1.0 + k / BUTTERWORTH_Q + k * k);
        Self {
            b: [norm, -2.0 * norm, norm],
            a: [
                2.0 * (k * k - 1.0) * norm,
                (1.0 - k / BUTTERWORTH_Q + k * k) * norm,
            ],
            z: [0.0; 2],
            last: 0.0,
        }
    }

    /// Filters one sample.
    #[inline]
    pub fn step(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return self.last;
        }
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        if y.is_finite() {
            self.last = y;
            y
        } else {
            self.reset(0.0);
            0.0
        }
    }

    /// Sets the state to the steady state for a constant input `x` (no start transient).
    pub fn reset(&mut self, x: f64) {
        let x = if x.is_finite() { x } else { 0.0 };
        let dc = (self.b[0] + self.b[1] + self.b[2]) / (1.0 + self.a[0] + self.a[1]);
        let y = dc * x;
        // Steady state of the transposed form: z1 = b2·x − a2·y, z0 = y − b0·x.
        self.z[1] = self.b[2] * x - self.a[1] * y;
        self.z[0] = y - self.b[0] * x;
        self.last = y;
    }

    /// Last output.
    pub fn value(&self) -> f64 {
        self.last
    }
}

/// 4–12 Hz style band-pass: two high-pass sections (4th order) then one low-pass section.
/// The steep high side keeps slow movement accelerations out of the tremor band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandPass {
    hp1: Biquad,
    hp2: Biquad,
    lp: Biquad,
}

impl BandPass {
    pub fn new(lo_hz: f64, hi_hz: f64, fs_hz: f64) -> Self {
        Self {
            hp1: Biquad::highpass(lo_hz, fs_hz),
            hp2: Biquad::highpass(lo_hz, fs_hz),
            lp: Biquad::lowpass(hi_hz, fs_hz),
        }
    }

    #[inline]
    pub fn step(&mut self, x: f64) -> f64 {
        self.lp.step(self.hp2.step(self.hp1.step(x)))
    }

    /// Zero state (the band-pass has no DC gain, so this is the steady state of any constant).
    pub fn reset(&mut self) {
        self.hp1.reset(0.0);
        self.hp2.reset(0.0);
        self.lp.reset(0.0);
    }
}

/// Welford running mean and variance. Ignores non-finite values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Welford {
    n: u32,
    mean: f64,
    m2: f64,
}

impl Welford {
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n = self.n.saturating_add(1);
        let d = x - self.mean;
        self.mean += d / f64::from(self.n);
        self.m2 += d * (x - self.mean);
    }
    pub fn count(&self) -> u32 {
        self.n
    }
    pub fn mean(&self) -> f64 {
        self.mean
    }
    /// Sample standard deviation (0 with fewer than two values).
    pub fn std(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2.max(0.0) / f64::from(self.n - 1)).sqrt()
        }
    }
}

/// Divides, returning `fallback` when the result would not be finite.
#[inline]
pub fn safe_div(num: f64, den: f64, fallback: f64) -> f64 {
    let r = num / den;
    if r.is_finite() { r } else { fallback }
}

/// Replaces a non-finite value by `fallback`.
#[inline]
pub fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() { x } else { fallback }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain_at(mut f: impl FnMut(f64) -> f64, freq: f64, fs: f64) -> f64 {
        let n = (fs * 20.0) as usize;
        let mut peak: f64 = 0.0;
        for i in 0..n {
            let y = f((2.0 * std::f64::consts::PI * freq * i as f64 / fs).sin());
            if i > n / 2 {
                peak = peak.max(y.abs());
            }
        }
        peak
    }

    #[test]
    fn lowpass_butterworth_response() {
        let fs = 100.0;
        let mut lp = Biquad::lowpass(6.0, fs);
        assert!((gain_at(|x| lp.step(x), 0.5, fs) - 1.0).abs() < 0.01);
        let mut lp = Biquad::lowpass(6.0, fs);
        // −3 dB at the cut-off.
        assert!((gain_at(|x| lp.step(x), 6.0, fs) - std::f64::consts::FRAC_1_SQRT_2).abs() < 0.02);
        let mut lp = Biquad::lowpass(6.0, fs);
        // 2nd order: about −40 dB per decade above the cut-off, plus bilinear warping.
        assert!(gain_at(|x| lp.step(x), 30.0, fs) < 0.05);
    }

    #[test]
    fn highpass_and_bandpass_response() {
        let fs = 200.0;
        let mut hp = Biquad::highpass(4.0, fs);
        assert!(gain_at(|x| hp.step(x), 0.4, fs) < 0.02);
        let mut bp = BandPass::new(4.0, 12.0, fs);
        let mid = gain_at(|x| bp.step(x), 7.0, fs);
        assert!(mid > 0.7 && mid < 1.05, "mid-band gain {mid}");
        let mut bp = BandPass::new(4.0, 12.0, fs);
        assert!(gain_at(|x| bp.step(x), 1.0, fs) < 0.01);
        let mut bp = BandPass::new(4.0, 12.0, fs);
        assert!(gain_at(|x| bp.step(x), 40.0, fs) < 0.15);
    }

    #[test]
    fn reset_is_steady_state() {
        let mut lp = Biquad::lowpass(3.0, 50.0);
        lp.reset(7.5);
        for _ in 0..10 {
            assert!((lp.step(7.5) - 7.5).abs() < 1e-9);
        }
    }

    #[test]
    fn invalid_design_is_identity_and_nan_is_held() {
        let mut f = Biquad::lowpass(f64::NAN, 100.0);
        assert_eq!(f.step(3.0), 3.0);
        let mut f = Biquad::lowpass(80.0, 100.0); // clamped below Nyquist, still stable
        for _ in 0..1000 {
            assert!(f.step(1.0).is_finite());
        }
        let y = f.step(f64::NAN);
        assert!(y.is_finite());
    }

    #[test]
    fn welford_matches_two_pass() {
        let xs = [1.0, 2.0, 4.0, 8.0, 16.0];
        let mut w = Welford::default();
        xs.iter().for_each(|&x| w.push(x));
        w.push(f64::NAN);
        let mean = xs.iter().sum::<f64>() / 5.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0;
        assert_eq!(w.count(), 5);
        assert!((w.mean() - mean).abs() < 1e-12);
        assert!((w.std() - var.sqrt()).abs() < 1e-12);
    }
}
