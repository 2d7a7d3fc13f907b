//! The bounded, uniformly-timed buffer of one sensor's grid samples, waiting to be paired
//! with the other sensor's.
//!
//! Each sensor's derived signals are resampled onto a uniform grid of its own device clock
//! (multiples of the grid period). The ring holds them, quantised to `i16`, until the
//! athlete stage consumes them; the time of an entry is implicit (`t0 + i·period`).
//!
//! Invariants:
//! - Entries are contiguous in time: a gap in the input is stored as "missing" entries;
//!   a gap longer than the whole capacity restarts the ring at the new time.
//! - The ring never holds more than `capacity` entries: pushing into a full ring drops the
//!   oldest entry (counted in `dropped`).
//! - Quantisation: tilt 1e-4 rad, rate 1e-3 rad/s, vertical acceleration 2e-3 m/s²,
//!   tremor 1e-3 m/s² and 1e-4 rad/s, saturating; `i16::MIN` in the first field = missing.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::compact::{self, dequantize, quantize};

const TILT_SCALE: f64 = 1e-4;
const RATE_SCALE: f64 = 1e-3;
const VERT_SCALE: f64 = 2e-3;
const TREMOR_ACC_SCALE: f64 = 1e-3;
const TREMOR_GYRO_SCALE: f64 = 1e-4;
const MISSING: i16 = i16::MIN;

/// One sensor's derived signals at one grid time, in the sensor's calibration basis
/// (two axes orthogonal to its standing gravity direction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GridSample {
    /// Tilt rotation vector from the calibrated stance (rad), basis components.
    pub tilt: [f64; 2],
    /// Angular velocity orthogonal to standing gravity (rad/s), basis components.
    pub omega: [f64; 2],
    /// World-vertical linear acceleration (m/s², up positive).
    pub vert_acc: f64,
    /// Magnitude of the tremor-band acceleration (m/s²).
    pub tremor_acc: f64,
    /// Magnitude of the tremor-band angular velocity (rad/s).
    pub tremor_gyro: f64,
    /// Calibration epoch the basis belongs to (increments on every re-calibration).
    pub epoch: u16,
}

impl GridSample {
    fn encode(&self) -> [i16; 8] {
        [
            quantize(self.tilt[0], TILT_SCALE),
            quantize(self.tilt[1], TILT_SCALE),
            quantize(self.omega[0], RATE_SCALE),
            quantize(self.omega[1], RATE_SCALE),
            quantize(self.vert_acc, VERT_SCALE),
            quantize(self.tremor_acc, TREMOR_ACC_SCALE),
            quantize(self.tremor_gyro, TREMOR_GYRO_SCALE),
            // The epoch wraps within i16 range; only equality is ever used.
            (self.epoch & 0x7fff) as i16,
        ]
    }

    fn decode(r: &[i16; 8]) -> Option<Self> {
        (r[0] != MISSING).then(|| GridSample {
            tilt: [dequantize(r[0], TILT_SCALE), dequantize(r[1], TILT_SCALE)],
            omega: [dequantize(r[2], RATE_SCALE), dequantize(r[3], RATE_SCALE)],
            vert_acc: dequantize(r[4], VERT_SCALE),
            tremor_acc: dequantize(r[5], TREMOR_ACC_SCALE),
            tremor_gyro: dequantize(r[6], TREMOR_GYRO_SCALE),
            epoch: r[7] as u16,
        })
    }

    /// Linear interpolation (`w` = weight of `b`), epoch of the nearer sample.
    pub fn lerp(a: &Self, b: &Self, w: f64) -> Self {
        let l = |x: f64, y: f64| x + (y - x) * w;
        GridSample {
            tilt: [l(a.tilt[0], b.tilt[0]), l(a.tilt[1], b.tilt[1])],
            omega: [l(a.omega[0], b.omega[0]), l(a.omega[1], b.omega[1])],
            vert_acc: l(a.vert_acc, b.vert_acc),
            tremor_acc: l(a.tremor_acc, b.tremor_acc),
            tremor_gyro: l(a.tremor_gyro, b.tremor_gyro),
            epoch: if w < 0.5 { a.epoch } else { b.epoch },
        }
    }
}

/// Bounded ring of grid samples with implicit uniform timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRing {
    t0_us: i64,
    period_us: i64,
    capacity: usize,
    #[serde(with = "compact::records")]
    data: VecDeque<[i16; 8]>,
    dropped: u64,
}

impl SampleRing {
    pub fn new(period_us: i64, capacity: usize) -> Self {
        Self {
            t0_us: 0,
            period_us: period_us.max(1),
            capacity: capacity.max(2),
            data: VecDeque::new(),
            dropped: 0,
        }
    }

    pub fn period_us(&self) -> i64 {
        self.period_us
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn is_full(&self) -> bool {
        self.data.len() >= self.capacity
    }
    /// Entries lost to overflow since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    /// Time of the oldest entry.
    pub fn front_time(&self) -> Option<i64> {
        (!self.data.is_empty()).then_some(self.t0_us)
    }
    /// Time of the newest entry.
    pub fn back_time(&self) -> Option<i64> {
        (!self.data.is_empty()).then(|| {
            self.t0_us
                .saturating_add((self.data.len() as i64 - 1) * self.period_us)
        })
    }

    /// Appends the sample for grid time `t_us` (a multiple of the period). Times at or before
    /// the newest entry are ignored; skipped grid times become missing entries.
    pub fn push(&mut self, t_us: i64, s: Option<&GridSample>) {
        let rec = s.map_or([MISSING, 0, 0, 0, 0, 0, 0, 0], GridSample::encode);
        match self.back_time() {
            None => {
                self.t0_us = t_us;
                self.data.push_back(rec);
            }
            Some(back) if t_us <= back => {}
            Some(back) => {
                let steps = t_us.saturating_sub(back) / self.period_us;
                if steps as u128 > self.capacity as u128 {
                    self.dropped += self.data.len() as u64;
                    self.data.clear();
                    self.t0_us = t_us;
                    self.data.push_back(rec);
                    return;
                }
                for _ in 1..steps {
                    self.push_back_raw([MISSING, 0, 0, 0, 0, 0, 0, 0]);
                }
                self.push_back_raw(rec);
            }
        }
    }

    fn push_back_raw(&mut self, rec: [i16; 8]) {
        if self.data.len() >= self.capacity {
            self.data.pop_front();
            self.t0_us += self.period_us;
            self.dropped += 1;
        }
        self.data.push_back(rec);
    }

    /// Removes and returns the oldest entry with its time.
    pub fn pop_front(&mut self) -> Option<(i64, Option<GridSample>)> {
        let rec = self.data.pop_front()?;
        let t = self.t0_us;
        self.t0_us += self.period_us;
        Some((t, GridSample::decode(&rec)))
    }

    /// The oldest entry without removing it.
    pub fn front(&self) -> Option<(i64, Option<GridSample>)> {
        self.data
            .front()
            .map(|r| (self.t0_us, GridSample::decode(r)))
    }

    /// Entry `i` (0 = oldest) with its time.
    pub fn get(&self, i: usize) -> Option<(i64, Option<GridSample>)> {
        self.data.get(i).map(|r| {
            (
                self.t0_us + i as i64 * self.period_us,
                GridSample::decode(r),
            )
        })
    }

    /// Drops entries strictly older than `t_us`.
    pub fn trim_before(&mut self, t_us: i64) {
        while !self.data.is_empty() && self.t0_us < t_us {
            self.data.pop_front();
            self.t0_us += self.period_us;
        }
    }

    /// The sample at arbitrary time `t_us`, linearly interpolated between the two bracketing
    /// entries; `None` when outside the ring or when a bracketing entry is missing.
    pub fn interpolate(&self, t_us: i64) -> Option<GridSample> {
        let rel = t_us.checked_sub(self.t0_us)?;
        if rel < 0 {
            return None;
        }
        let i = (rel / self.period_us) as usize;
        let frac = (rel % self.period_us) as f64 / self.period_us as f64;
        let a = GridSample::decode(self.data.get(i)?)?;
        if frac == 0.0 {
            return Some(a);
        }
        let b = GridSample::decode(self.data.get(i + 1)?)?;
        Some(GridSample::lerp(&a, &b, frac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> GridSample {
        GridSample {
            tilt: [x, -x],
            omega: [2.0 * x, 0.5],
            vert_acc: 1.0,
            tremor_acc: 0.1,
            tremor_gyro: 0.01,
            epoch: 3,
        }
    }

    #[test]
    fn push_pop_roundtrip_with_gaps() {
        let mut r = SampleRing::new(10_000, 100);
        r.push(1_000_000, Some(&s(0.1)));
        r.push(1_030_000, Some(&s(0.2))); // two missing in between
        r.push(1_020_000, Some(&s(9.0))); // in the past: ignored
        assert_eq!(r.len(), 4);
        assert_eq!(r.back_time(), Some(1_030_000));
        let (t, a) = r.pop_front().unwrap();
        assert_eq!(t, 1_000_000);
        let a = a.unwrap();
        assert!((a.tilt[0] - 0.1).abs() < 1e-4 && (a.omega[0] - 0.2).abs() < 1e-3);
        assert_eq!(a.epoch, 3);
        assert!(r.pop_front().unwrap().1.is_none());
        assert!(r.pop_front().unwrap().1.is_none());
        assert!(r.pop_front().unwrap().1.is_some());
    }

    #[test]
    fn bounded_and_interpolates() {
        let mut r = SampleRing::new(10_000, 5);
        for i in 0..8 {
            r.push(i * 10_000, Some(&s(i as f64 * 0.01)));
        }
        assert_eq!(r.len(), 5);
        assert_eq!(r.dropped(), 3);
        assert_eq!(r.front_time(), Some(30_000));
        let m = r.interpolate(45_000).unwrap();
        assert!((m.tilt[0] - 0.045).abs() < 2e-4);
        assert!(r.interpolate(25_000).is_none());
        assert!(r.interpolate(75_000).is_none());
        // A gap longer than the capacity restarts the ring.
        r.push(10_000_000, Some(&s(0.0)));
        assert_eq!(r.len(), 1);
        assert_eq!(r.front_time(), Some(10_000_000));
    }

    #[test]
    fn serde_roundtrip() {
        let mut r = SampleRing::new(10_000, 50);
        for i in 0..20 {
            r.push(
                i * 10_000,
                (i % 3 != 0).then(|| s(i as f64 * 0.01)).as_ref(),
            );
        }
        let txt = serde_json::to_string(&r).unwrap();
        let back: SampleRing = serde_json::from_str(&txt).unwrap();
        assert_eq!(back, r);
    }
}
