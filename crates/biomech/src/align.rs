//! Time alignment of the two sensors of an athlete.
//!
//! Each sensor has its own device clock (offsets of tens of ms to seconds) and its own
//! rate. Both sensors see the same movement onsets (quiet → moving). Each sensor keeps a
//! rolling buffer of its angular-rate magnitude on its own grid and a short list of its
//! onsets ([`OnsetTracker`]). For each thoracolumbar onset, [`ClockAligner`] slides the
//! window around it along the sacrum's buffer near the expected lag (the current offset, or
//! before that the arrival order of the batches) ([`estimate_offset`]): the lag of maximum
//! normalised cross-correlation, refined by the movement edge (the first rise out of quiet
//! reaches both sensors together). The sacrum need not detect the onset itself (a slowly
//! moving pelvis may never look "quiet then moving"). The aligner keeps the last credible
//! estimates and uses the median of their largest mutually consistent group (the
//! consensus): it tracks slow drift and rejects outliers, and a wrong start (the biased
//! correlation bootstrap, early mispaired movements) is outvoted by the estimates that
//! follow instead of locking the gate onto itself.
//!
//! Invariants:
//! - Buffers are bounded (`pre_s + post_s + 3·max_lookahead_s + 2·search_s + 1 s` at the
//!   grid rate, at most `MAX_ONSETS` onsets) and quantised.
//! - An estimate is credible only with a correlation ≥ `min_correlation`, enough overlap,
//!   |offset| ≤ `max_offset_s` and a clean movement edge (the correlation-only estimate
//!   bootstraps the alignment and is dropped at the first edge estimate). The offset is the
//!   median of the largest group of kept estimates within `max_jump_s` of one of them (ties:
//!   the group nearest the current offset), so it only moves when most recent estimates
//!   agree; it is never decided by the order in which estimates arrived. The offset is
//!   P-clock minus T-clock: the sacrum sample matching thoracolumbar time t is at sacrum
//!   time t + offset.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::compact;
use crate::config::AlignConfig;

const RATE_SCALE: f64 = 1e-3;
/// Onsets remembered per sensor.
const MAX_ONSETS: usize = 8;
/// Half-width of the centred moving average applied before timing edges, grid samples
/// (±4 at 100 Hz: first spectral zero near 11 Hz, inside the tremor band).
const EDGE_SMOOTH_HALF: usize = 4;
/// Extra buffer beyond the window and the lookahead, s.
const BUFFER_SLACK_S: f64 = 1.0;

/// Rolling |ω| buffer and onset detector of one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnsetTracker {
    quiet_s: f64,
    armed: bool,
    smooth: f64,
    /// Time of `buf[0]`.
    start_us: i64,
    /// |ω| (rad/s) per grid sample, quantised.
    #[serde(with = "compact::records")]
    buf: VecDeque<[i16; 1]>,
    period_us: i64,
    onsets: VecDeque<i64>,
}

impl Default for OnsetTracker {
    fn default() -> Self {
        Self {
            quiet_s: 0.0,
            armed: false,
            smooth: 0.0,
            start_us: 0,
            buf: VecDeque::new(),
            period_us: 1,
            onsets: VecDeque::new(),
        }
    }
}

/// A window of |ω| around an onset.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub onset_us: i64,
    pub start_us: i64,
    /// |ω|, rad/s.
    pub values: Vec<f64>,
}

/// Buffer length: a window (pre + post) widened by the pairing tolerance on both sides
/// (at most lookahead + search) plus the arrival lag (lookahead) and some slack.
fn capacity(cfg: &AlignConfig, period_us: i64) -> usize {
    let span =
        cfg.pre_s + cfg.post_s + 3.0 * cfg.max_lookahead_s + 2.0 * cfg.search_s + BUFFER_SLACK_S;
    (span * 1e6 / period_us.max(1) as f64).ceil() as usize
}

impl OnsetTracker {
    /// Feeds the angular-rate magnitude (rad/s) at grid time `t_us`. `None` (a gap) empties
    /// the buffer and forgets the onsets (windows must be contiguous).
    pub fn push(&mut self, cfg: &AlignConfig, t_us: i64, period_us: i64, rate: Option<f64>) {
        let h = period_us as f64 * 1e-6;
        let contiguous = self.buf.is_empty()
            || (self.period_us == period_us && self.newest_us() + period_us == t_us);
        self.period_us = period_us.max(1);
        let finite = rate.filter(|r| r.is_finite());
        let Some(rate) = finite.filter(|_| contiguous) else {
            self.buf.clear();
            self.onsets.clear();
            self.quiet_s = 0.0;
            self.armed = false;
            if let Some(r) = finite {
                self.start_us = t_us;
                self.buf.push_back([compact::quantize(r, RATE_SCALE)]);
            }
            return;
        };
        if self.buf.is_empty() {
            self.start_us = t_us;
        }
        self.buf.push_back([compact::quantize(rate, RATE_SCALE)]);
        while self.buf.len() > capacity(cfg, period_us) {
            self.buf.pop_front();
            self.start_us = self.start_us.saturating_add(period_us);
        }
        // Light smoothing against noise spikes (one-pole).
        let alpha = (h / (h + cfg.smoothing_s)).clamp(0.0, 1.0);
        self.smooth += alpha * (rate - self.smooth);
        if self.smooth < cfg.quiet_dps.to_radians() {
            self.quiet_s += h;
            if self.quiet_s >= cfg.quiet_s {
                self.armed = true;
            }
        } else {
            self.quiet_s = 0.0;
            if self.armed && self.smooth > cfg.onset_dps.to_radians() {
                // Quiet long enough, now moving: an onset. Wait for quiet again.
                self.armed = false;
                if self.onsets.len() >= MAX_ONSETS {
                    self.onsets.pop_front();
                }
                self.onsets.push_back(t_us);
            }
        }
        // Forget onsets whose window start left the buffer.
        let pre_us = (cfg.pre_s * 1e6) as i64;
        while self
            .onsets
            .front()
            .is_some_and(|&o| o - pre_us < self.start_us)
        {
            self.onsets.pop_front();
        }
    }

    /// Time of the newest buffered sample.
    pub fn newest_us(&self) -> i64 {
        self.start_us
            .saturating_add((self.buf.len() as i64 - 1).max(0) * self.period_us)
    }

    /// Onsets detected and still buffered (oldest first).
    pub fn onsets(&self) -> impl Iterator<Item = i64> + '_ {
        self.onsets.iter().copied()
    }

    /// The oldest onset still buffered.
    pub fn first_onset(&self) -> Option<i64> {
        self.onsets.front().copied()
    }

    fn remove_onset(&mut self, o: i64) {
        self.onsets.retain(|&x| x != o);
    }

    /// The buffered samples in [from_us, to_us] (grid-aligned), if fully buffered; the
    /// window's `onset_us` is set to `onset_us`.
    pub fn window(&self, from_us: i64, to_us: i64, onset_us: i64) -> Option<Window> {
        let p = self.period_us;
        let i0 = (from_us - self.start_us).div_euclid(p);
        let i1 = (to_us - self.start_us).div_euclid(p);
        if i0 < 0 || i1 >= self.buf.len() as i64 || i1 < i0 {
            return None;
        }
        Some(Window {
            onset_us,
            start_us: self.start_us + i0 * p,
            values: (i0..=i1)
                .map(|i| compact::dequantize(self.buf[i as usize][0], RATE_SCALE))
                .collect(),
        })
    }

    /// Time of the oldest buffered sample.
    pub fn oldest_us(&self) -> i64 {
        self.start_us
    }
}

/// Offset (P-clock minus T-clock, µs) and its correlation: the thoracolumbar window `t`
/// around its onset is slid along the longer sacrum segment `p` over lags within
/// `center_us ± search_us`; `None` when not credible.
pub fn estimate_offset(
    cfg: &AlignConfig,
    t: &Window,
    p: &Window,
    center_us: f64,
    search_us: f64,
    period_us: i64,
) -> Option<OffsetEstimate> {
    if period_us <= 0 || t.values.is_empty() || p.values.is_empty() {
        return None;
    }
    let (x, y) = (&t.values, &p.values);
    let h = period_us as f64;
    // With offset = lag·h, x[i] (time t.start + i·h) matches y[j] at p-time t.start + i·h +
    // lag·h, i.e. j = i + lag − start_diff.
    let start_diff = ((p.start_us - t.start_us) as f64 / h).round() as i64;
    let center = (center_us / h).round() as i64;
    let search = (search_us / h).round().max(1.0) as i64;
    let mut best: Option<(i64, f64)> = None;
    let mut scores = Vec::with_capacity((2 * search + 1) as usize);
    for lag in (center - search)..=(center + search) {
        let r = pearson_shifted(x, y, lag - start_diff, cfg.min_overlap);
        scores.push(r);
        if let Some(r) = r
            && best.is_none_or(|(_, b)| r > b)
        {
            best = Some((lag, r));
        }
    }
    let (lag, r) = best?;
    if r < cfg.min_correlation {
        return None;
    }
    // Parabolic refinement around the peak.
    let k = (lag - (center - search)) as usize;
    let frac = match (
        k.checked_sub(1).and_then(|i| scores[i]),
        scores.get(k + 1).copied().flatten(),
    ) {
        (Some(a), Some(c)) => {
            let den = a - 2.0 * r + c;
            if den < -1e-12 {
                (0.5 * (a - c) / den).clamp(-0.5, 0.5)
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    let corr_us = (lag as f64 + frac) * h;
    // Refine with the movement edge: the first departure from quiet reaches both sensors
    // together, while the correlation of whole movements is biased by the lumbo-pelvic
    // rhythm (the lumbar spine lags the pelvis).
    let p_onset = t.onset_us + lag * period_us;
    let levels = cfg.edge_levels_dps.map(f64::to_radians);
    let edge = edge_time(&levels, &t.values, t.start_us, t.onset_us, h)
        .zip(edge_time(&levels, &p.values, p.start_us, p_onset, h))
        .map(|(a, b)| b - a)
        .filter(|e| (e - corr_us).abs() <= cfg.edge_max_disagreement_s * 1e6);
    let est = OffsetEstimate {
        edge_us: edge,
        corr_us,
        correlation: r,
    };
    (est.best_us().abs() <= cfg.max_offset_s * 1e6).then_some(est)
}

/// One offset estimate from a pair of windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffsetEstimate {
    /// From the movement edges (unbiased; `None` when no clean edge or far from `corr_us`).
    pub edge_us: Option<f64>,
    /// From the cross-correlation (robust but biased by the lumbo-pelvic rhythm).
    pub corr_us: f64,
    pub correlation: f64,
}

impl OffsetEstimate {
    pub fn best_us(&self) -> f64 {
        self.edge_us.unwrap_or(self.corr_us)
    }
}

/// Time (µs, the series' clock) at which `x` rose out of quiet before the sample at
/// `onset_us`: median over `levels` (above the series' quiet baseline, the minimum of the
/// smoothed series before the onset) of the interpolated crossing time of the last rise.
fn edge_time(levels: &[f64], x: &[f64], start_us: i64, onset_us: i64, h: f64) -> Option<f64> {
    let onset_i = ((((onset_us - start_us) as f64) / h).round().max(0.0) as usize)
        .min(x.len().checked_sub(1)?);
    // Centred moving average (no delay) against sensor noise and 4–12 Hz tremor.
    let half = EDGE_SMOOTH_HALF;
    let sm: Vec<f64> = (0..x.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half).min(x.len() - 1));
            x[a..=b].iter().sum::<f64>() / (b - a + 1) as f64
        })
        .collect();
    let base = sm[..=onset_i].iter().copied().fold(f64::INFINITY, f64::min);
    let mut times = Vec::with_capacity(levels.len());
    for &lvl in levels {
        let l = base + lvl;
        // Walk back from the onset to the last sample below the level.
        let mut i = onset_i;
        while i > 0 && sm[i] >= l {
            i -= 1;
        }
        if i == 0 || sm[i] >= l || i + 1 >= sm.len() {
            continue;
        }
        let frac = (l - sm[i]) / (sm[i + 1] - sm[i]);
        if frac.is_finite() {
            times.push(start_us as f64 + (i as f64 + frac.clamp(0.0, 1.0)) * h);
        }
    }
    if times.is_empty() {
        return None;
    }
    times.sort_by(f64::total_cmp);
    Some(times[times.len() / 2])
}

/// Pearson correlation of x[i] with y[i + shift] over the overlap; `None` if the overlap is
/// below `min_overlap` of x or a signal is constant there.
fn pearson_shifted(x: &[f64], y: &[f64], shift: i64, min_overlap: f64) -> Option<f64> {
    let i0 = (-shift).max(0) as usize;
    let i1 = (y.len() as i64 - shift).min(x.len() as i64).max(0) as usize;
    if i1 <= i0 || ((i1 - i0) as f64) < min_overlap * x.len() as f64 {
        return None;
    }
    let n = (i1 - i0) as f64;
    let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &a) in x.iter().enumerate().take(i1).skip(i0) {
        let b = y[(i as i64 + shift) as usize];
        sx += a;
        sy += b;
        sxx += a * a;
        syy += b * b;
        sxy += a * b;
    }
    let cov = sxy - sx * sy / n;
    let vx = sxx - sx * sx / n;
    let vy = syy - sy * sy / n;
    let den = (vx * vy).sqrt();
    (den.is_finite() && den > 1e-12).then(|| cov / den)
}

/// The current clock-offset estimate: consensus of the last credible estimates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockAligner {
    /// The last credible estimates (oldest first), µs.
    estimates: VecDeque<f64>,
    /// The consensus offset of `estimates`, µs (`None` in states saved before it existed:
    /// then the plain median).
    #[serde(default)]
    consensus_us: Option<f64>,
    /// The only kept estimate is the (biased) correlation bootstrap.
    #[serde(default)]
    bootstrap: bool,
    /// Pairings tried and rejected (low correlation / implausible / outside the consensus),
    /// for diagnostics.
    rejected: u32,
    /// Arrival-order prior of the offset, µs (running average) ...
    arrival_us: Option<f64>,
    /// ... and the running mean square of its deviations, µs².
    arrival_var: f64,
}

/// Weight of a new arrival observation in the running prior.
const ARRIVAL_WEIGHT: f64 = 0.02;

impl ClockAligner {
    /// Records the difference of the newest sacrum and thoracolumbar device times seen at an
    /// arrival (µs). Batches arrive within `max_lookahead_s` of each other, so this is the
    /// offset to within that bound.
    pub fn observe_arrival(&mut self, d_us: f64) {
        if !d_us.is_finite() {
            return;
        }
        match self.arrival_us {
            None => self.arrival_us = Some(d_us),
            Some(a) => {
                let dev = d_us - a;
                self.arrival_us = Some(a + ARRIVAL_WEIGHT * dev);
                self.arrival_var += ARRIVAL_WEIGHT * (dev * dev - self.arrival_var);
            }
        }
    }

    /// Pairing tolerance around the arrival prior, µs: three spreads of the arrival
    /// differences plus the search range, never beyond the contractual lookahead.
    fn arrival_tolerance_us(&self, cfg: &AlignConfig) -> f64 {
        (3.0 * self.arrival_var.sqrt() + cfg.search_s * 1e6)
            .min((cfg.max_lookahead_s + cfg.search_s) * 1e6)
    }

    /// Estimates from every thoracolumbar onset whose window is complete, once the sacrum
    /// buffer covers the matching span. Returns whether a new estimate was accepted.
    pub fn update(
        &mut self,
        cfg: &AlignConfig,
        t: &mut OnsetTracker,
        p: &mut OnsetTracker,
        period_us: i64,
    ) -> bool {
        let pre_us = (cfg.pre_s * 1e6) as i64;
        let post_us = (cfg.post_s * 1e6) as i64;
        let (prior, tol_us) = match (self.offset_us(), self.arrival_us) {
            (Some(o), _) => (o as f64, cfg.search_s * 1e6),
            (None, Some(a)) => (a, self.arrival_tolerance_us(cfg)),
            (None, None) => return false,
        };
        let tol = tol_us as i64;
        let mut accepted_any = false;
        while let Some(o_t) = t.first_onset() {
            if t.newest_us() < o_t + post_us {
                break;
            }
            let c = o_t + prior as i64;
            let (from, to) = (c - tol - pre_us, c + tol + post_us);
            if p.newest_us() < to && p.oldest_us() <= from {
                break; // the sacrum data for this movement has not all arrived yet
            }
            t.remove_onset(o_t);
            let wt = t.window(o_t - pre_us, o_t + post_us, o_t);
            let wp = p.window(from, to, c);
            let est = wt
                .zip(wp)
                .and_then(|(wt, wp)| estimate_offset(cfg, &wt, &wp, prior, tol_us, period_us));
            if self.accept(cfg, est) {
                accepted_any = true;
            }
        }
        accepted_any
    }

    /// Keeps a credible estimate and recomputes the consensus. Returns whether the estimate
    /// is part of the consensus group.
    fn accept(&mut self, cfg: &AlignConfig, est: Option<OffsetEstimate>) -> bool {
        // The correlation estimate alone only bootstraps the alignment (it is biased by the
        // lumbo-pelvic rhythm); later estimates need a clean movement edge, and the first
        // one replaces the bootstrap.
        let off = match est {
            Some(OffsetEstimate {
                edge_us: Some(e), ..
            }) if e.is_finite() => {
                if self.bootstrap {
                    self.estimates.clear();
                    self.bootstrap = false;
                }
                e
            }
            Some(e) if self.estimates.is_empty() && e.corr_us.is_finite() => {
                self.bootstrap = true;
                e.corr_us
            }
            _ => {
                self.rejected = self.rejected.saturating_add(1);
                return false;
            }
        };
        let current = self
            .consensus_us
            .or_else(|| median(self.estimates.iter().copied()));
        self.estimates.push_back(off);
        while self.estimates.len() > cfg.keep_estimates.max(1) {
            self.estimates.pop_front();
        }
        let radius = cfg.max_jump_s * 1e6;
        let (consensus, members) = consensus(&self.estimates, radius, current, off);
        self.consensus_us = consensus;
        if !members {
            self.rejected = self.rejected.saturating_add(1);
        }
        members
    }

    /// Current offset (P-clock minus T-clock), µs.
    pub fn offset_us(&self) -> Option<i64> {
        self.consensus_us
            .or_else(|| median(self.estimates.iter().copied()))
            .map(|m| m.round() as i64)
    }

    pub fn rejected(&self) -> u32 {
        self.rejected
    }

    /// The credible estimates currently kept (oldest first), µs.
    pub fn estimates(&self) -> Vec<f64> {
        self.estimates.iter().copied().collect()
    }
}

fn median(v: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = v.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        0.5 * (v[mid - 1] + v[mid])
    })
}

/// The consensus of `estimates`: the median of the largest group of estimates within
/// `radius` of one of them (ties: the group whose median is nearest `current`, then the
/// newer centre), and whether `newest` belongs to that group.
fn consensus(
    estimates: &VecDeque<f64>,
    radius: f64,
    current: Option<f64>,
    newest: f64,
) -> (Option<f64>, bool) {
    let group = |c: f64| {
        estimates
            .iter()
            .copied()
            .filter(move |e| (e - c).abs() <= radius)
    };
    // (size, distance of its median to `current`, centre, median)
    let mut best: Option<(usize, f64, f64, f64)> = None;
    for &c in estimates {
        let Some(m) = median(group(c)) else { continue };
        let size = group(c).count();
        let dist = current.map_or(0.0, |cur| (m - cur).abs());
        // Later centres win exact ties (iteration is oldest first).
        if best.is_none_or(|(bs, bd, _, _)| size > bs || (size == bs && dist <= bd)) {
            best = Some((size, dist, c, m));
        }
    }
    match best {
        Some((_, _, c, m)) => (Some(m), (newest - c).abs() <= radius),
        None => (None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lift-like |ω| pattern with movements starting at the given true times.
    fn profile(t: f64, starts: &[f64]) -> f64 {
        let mut v = 0.002;
        for &s in starts {
            let u = t - s;
            if (0.0..2.8).contains(&u) {
                v += (1.2 * (std::f64::consts::PI * u / 1.4).sin()).abs()
                    + 0.3 * (u * 5.0).sin().abs();
            }
        }
        v
    }

    /// Feeds both trackers in arrival order; the P clock is `offset_us` ahead of the T clock.
    fn run(offset_us: i64, lag_p_s: f64) -> ClockAligner {
        let cfg = AlignConfig::default();
        let (mut t, mut p) = (OnsetTracker::default(), OnsetTracker::default());
        let mut a = ClockAligner::default();
        let h = 10_000;
        let starts = [2.0, 9.0, 16.5, 21.0];
        let base_p = (1_000_000 + offset_us).div_euclid(h) * h;
        for k in 0..3000i64 {
            let tt = k as f64 * 0.01;
            t.push(&cfg, 1_000_000 + k * h, h, Some(profile(tt, &starts)));
            let tp = base_p + k * h;
            let true_tp = (tp - offset_us - 1_000_000) as f64 * 1e-6;
            p.push(&cfg, tp, h, Some(profile(true_tp - lag_p_s, &starts)));
            a.observe_arrival((tp - (1_000_000 + k * h)) as f64);
            a.update(&cfg, &mut t, &mut p, h);
        }
        a
    }

    #[test]
    fn recovers_offsets_from_ms_to_seconds() {
        for off in [30_000i64, -120_000, 2_000_000, -3_500_000, 0] {
            let a = run(off, 0.0);
            let est = a.offset_us().unwrap();
            assert!(
                (est - off).abs() < 6_000,
                "offset {off}: {est} {:?}",
                a.estimates()
            );
            assert!(a.estimates().len() >= 3);
        }
    }

    #[test]
    fn sub_sample_lag_is_resolved() {
        // The P stream lags 4 ms behind its clock: the estimate moves by ~4 ms.
        let est = run(0, 0.004).offset_us().unwrap();
        assert!((est - 4_000).abs() < 3_000, "{est}");
    }

    fn edge(e: f64) -> Option<OffsetEstimate> {
        Some(OffsetEstimate {
            edge_us: Some(e),
            corr_us: e,
            correlation: 0.95,
        })
    }

    #[test]
    fn a_wrong_start_is_outvoted() {
        // A session seen in the simulator (random_athlete(31, 2)): a correlation bootstrap
        // biased by −89 ms and early walk-out edges 60–80 ms off, then the true offset
        // (+30 ms) over and over. The old gate (60 ms around the median of accepted
        // estimates) locked onto −40 ms for 20 minutes.
        let cfg = AlignConfig::default();
        let mut a = ClockAligner::default();
        assert!(a.accept(
            &cfg,
            Some(OffsetEstimate {
                edge_us: None,
                corr_us: -59_151.0,
                correlation: 0.99,
            })
        ));
        assert_eq!(a.offset_us(), Some(-59_151));
        for e in [26_385.0, -49_902.0, -30_314.0] {
            a.accept(&cfg, edge(e));
        }
        for e in [30_570.0, 32_057.0, 32_713.0, 34_244.0, 43_866.0, 32_035.0] {
            a.accept(&cfg, edge(e));
        }
        let off = a.offset_us().unwrap();
        assert!((off - 30_000).abs() < 5_000, "{off} {:?}", a.estimates());
        // A converged consensus is not moved by a few outliers.
        for e in [-40_000.0, -45_000.0, 120_000.0] {
            assert!(!a.accept(&cfg, edge(e)));
        }
        let off2 = a.offset_us().unwrap();
        assert!((off2 - off).abs() < 3_000, "{off2} {:?}", a.estimates());
        // Garbage never counts.
        assert!(!a.accept(&cfg, None));
        assert!(!a.accept(
            &cfg,
            Some(OffsetEstimate {
                edge_us: None,
                corr_us: 0.0,
                correlation: 0.99,
            })
        ));
    }

    #[test]
    fn median_and_gap_restart() {
        let cfg = AlignConfig::default();
        let mut a = ClockAligner::default();
        assert!(a.offset_us().is_none());
        a.estimates.extend([10.0, 50_000.0, 12.0]);
        assert_eq!(a.offset_us(), Some(12));
        let mut w = OnsetTracker::default();
        for k in 0..300 {
            w.push(
                &cfg,
                k * 10_000,
                10_000,
                Some(if k > 200 { 1.0 } else { 0.0 }),
            );
        }
        assert_eq!(w.onsets().count(), 1);
        w.push(&cfg, 300 * 10_000, 10_000, None);
        assert_eq!(w.onsets().count(), 0);
        assert!(w.buf.len() <= capacity(&cfg, 10_000));
    }
}
