//! The per-sensor stage: raw samples in device-time order → bias-corrected, fused,
//! calibrated signals on a uniform grid of the sensor's own clock, buffered in a
//! [`SampleRing`] for the athlete stage.
//!
//! Per sample: timestamp checks, rate estimate, quiet-stance detection (gyro bias, first
//! standing gravity, re-attachment evidence), Mahony fusion, tilt and horizontal angular
//! velocity in the calibration basis, world-vertical acceleration, tremor-band magnitudes,
//! ML-axis estimation, then linear interpolation onto the grid.
//!
//! Invariants:
//! - Samples whose time is not after the previous one, or with non-finite values, or with
//!   |t| > 2^60 µs are dropped (counted) and never reach any filter.
//! - Nothing is emitted before the first quiet stance (no calibration → no angle).
//! - Grid entries are interpolated only across gaps ≤ `max_interp_gap_s`; longer gaps are
//!   stored as missing. After a gap > `reinit_gap_s` the fusion restarts from the
//!   accelerometer and the filters restart.
//! - A re-calibration (announced or detected) starts a new epoch; ring entries carry their
//!   epoch so they are always interpreted with their own calibration. At most
//!   `MAX_EPOCHS` calibrations are kept.

use serde::{Deserialize, Serialize};

use crate::ImuSample;
use crate::align::OnsetTracker;
use crate::calibration::{Basis, MlAxisEstimator, MlAxisMonitor, StanceDetector};
use crate::config::Config;
use crate::filter::BandPass;
use crate::fusion::{Mahony, dot, norm, normalize};
use crate::ring::{GridSample, SampleRing};

/// Calibrations remembered (current plus the ones still referenced by buffered entries).
const MAX_EPOCHS: usize = 4;
/// Largest accepted |timestamp|: keeps all time arithmetic far from overflow.
const MAX_ABS_TIME_US: i64 = 1 << 60;
/// Intervals averaged before the rate estimate is trusted.
const RATE_WARMUP: u32 = 8;

/// One calibration epoch: basis and (once estimated) the signed ML axis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochCalib {
    pub epoch: u16,
    pub basis: Basis,
    pub ml: Option<[f64; 2]>,
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorStats {
    pub samples: u64,
    pub rejected: u64,
    pub gaps: u64,
    pub recalibrations: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Derived {
    t_us: i64,
    g: GridSample,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorStage {
    last_t_us: Option<i64>,
    last_gyro: [f64; 3],
    dt_est_s: f64,
    intervals: u32,
    design_rate_hz: f64,
    stance: StanceDetector,
    bias: Option<[f64; 3]>,
    fusion: Mahony,
    boost_s: f64,
    calibs: Vec<EpochCalib>,
    /// Current epoch (0 = never calibrated); `awaiting_stance` after an announced re-attach.
    epoch: u16,
    awaiting_stance: bool,
    ml: MlAxisEstimator,
    monitor: MlAxisMonitor,
    lateral_strikes: u8,
    tremor: [BandPass; 6],
    prev: Option<Derived>,
    prev_rate: Option<(i64, f64)>,
    pub(crate) ring: SampleRing,
    pub(crate) onset: OnsetTracker,
    stats: SensorStats,
}

impl SensorStage {
    pub fn new(cfg: &Config) -> Self {
        let period_us = cfg.grid_period_us();
        let cap = (cfg.align.ring_s * cfg.grid_rate_hz()).round().max(16.0) as usize;
        Self {
            last_t_us: None,
            last_gyro: [0.0; 3],
            dt_est_s: 0.0,
            intervals: 0,
            design_rate_hz: 0.0,
            stance: StanceDetector::new(&cfg.stance, 100.0),
            bias: None,
            fusion: Mahony::default(),
            boost_s: 0.0,
            calibs: Vec::new(),
            epoch: 0,
            awaiting_stance: true,
            ml: MlAxisEstimator::default(),
            monitor: MlAxisMonitor::default(),
            lateral_strikes: 0,
            tremor: [BandPass::new(cfg.sensor.tremor_lo_hz, cfg.sensor.tremor_hi_hz, 100.0); 6],
            prev: None,
            prev_rate: None,
            ring: SampleRing::new(period_us, cap),
            onset: OnsetTracker::default(),
            stats: SensorStats::default(),
        }
    }

    pub fn stats(&self) -> SensorStats {
        self.stats
    }

    /// The ML estimator's progress (diagnostics).
    pub fn ml_diagnostics(&self) -> (f64, f64, f64, f64) {
        self.ml.diagnostics()
    }

    /// Grid samples buffered (diagnostics).
    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }

    /// The fused up direction in the sensor frame (diagnostics).
    pub fn up(&self) -> [f64; 3] {
        self.fusion.up()
    }

    /// The calibration of `epoch`, if still remembered.
    pub fn calib(&self, epoch: u16) -> Option<&EpochCalib> {
        self.calibs
            .iter()
            .rev()
            .find(|c| c.epoch & 0x7fff == epoch & 0x7fff)
    }

    /// The current calibration, if any.
    pub fn current(&self) -> Option<&EpochCalib> {
        if self.awaiting_stance {
            None
        } else {
            self.calibs.last()
        }
    }

    /// Estimated sample rate (Hz), 0 while unknown.
    pub fn rate_hz(&self) -> f64 {
        if self.intervals >= RATE_WARMUP && self.dt_est_s > 0.0 {
            1.0 / self.dt_est_s
        } else {
            0.0
        }
    }

    /// Announced re-attachment: forget the mounting calibration; the next quiet stance
    /// recalibrates. The gyro bias is a property of the device and is kept.
    pub fn reattached(&mut self) {
        self.awaiting_stance = true;
        self.prev = None;
        self.lateral_strikes = 0;
    }

    fn new_epoch(&mut self, stance_acc: [f64; 3]) {
        let Some(basis) = Basis::from_up(stance_acc) else {
            return;
        };
        self.epoch = self.epoch.wrapping_add(1) & 0x7fff;
        if self.epoch == 0 {
            self.epoch = 1;
        }
        self.calibs.push(EpochCalib {
            epoch: self.epoch,
            basis,
            ml: None,
        });
        while self.calibs.len() > MAX_EPOCHS {
            self.calibs.remove(0);
        }
        self.fusion.align_up(stance_acc);
        self.ml = MlAxisEstimator::default();
        self.monitor = MlAxisMonitor::default();
        self.awaiting_stance = false;
        self.lateral_strikes = 0;
        self.prev = None;
        if self.calibs.len() > 1 {
            self.stats.recalibrations += 1;
        }
    }

    fn design_filters(&mut self, cfg: &Config, rate_hz: f64) {
        self.design_rate_hz = rate_hz;
        self.stance = StanceDetector::new(&cfg.stance, rate_hz);
        self.tremor = [BandPass::new(cfg.sensor.tremor_lo_hz, cfg.sensor.tremor_hi_hz, rate_hz); 6];
    }

    /// Processes one raw sample.
    pub fn push(&mut self, cfg: &Config, s: &ImuSample) {
        self.stats.samples += 1;
        let acc = s.acc.map(f64::from);
        let gyro_raw = s.gyro.map(f64::from);
        if !(acc.iter().chain(gyro_raw.iter()).all(|v| v.is_finite())
            && s.t_us.abs() <= MAX_ABS_TIME_US)
        {
            self.stats.rejected += 1;
            return;
        }
        let Some(last) = self.last_t_us else {
            self.last_t_us = Some(s.t_us);
            self.fusion = Mahony::from_acc(acc);
            self.last_gyro = gyro_raw;
            return;
        };
        if s.t_us <= last {
            self.stats.rejected += 1;
            return;
        }
        let dt = (s.t_us - last) as f64 * 1e-6;
        self.last_t_us = Some(s.t_us);
        self.update_rate(cfg, dt);
        let g = cfg.gravity_mps2;
        let bias = self.bias.unwrap_or([0.0; 3]);
        let gyro = [
            gyro_raw[0] - bias[0],
            gyro_raw[1] - bias[1],
            gyro_raw[2] - bias[2],
        ];

        if dt > cfg.sensor.reinit_gap_s {
            // Long gap: the attitude is stale. Restart from the accelerometer when it reads
            // gravity, otherwise keep the last attitude and let the correction recover it.
            self.stats.gaps += 1;
            if (norm(acc) / g - 1.0).abs() <= cfg.fusion.acc_gate {
                self.fusion.align_up(acc);
            }
            self.stance.restart();
            self.tremor.iter_mut().for_each(BandPass::reset);
            self.prev = None;
            self.prev_rate = None;
            self.boost_s = cfg.fusion.gap_recovery_s;
            self.last_gyro = gyro;
            return;
        }
        let gap = dt
            > cfg
                .sensor
                .max_interp_gap_s
                .min(3.0 * self.dt_est_s.max(1e-3));
        if gap {
            self.stats.gaps += 1;
            self.boost_s = cfg.fusion.gap_recovery_s;
        }

        // Fusion with the trapezoidal rate over the interval (no half-sample lag).
        let w_mid = [
            0.5 * (gyro[0] + self.last_gyro[0]),
            0.5 * (gyro[1] + self.last_gyro[1]),
            0.5 * (gyro[2] + self.last_gyro[2]),
        ];
        self.last_gyro = gyro;
        if gap {
            // One accelerometer sample says nothing about the attitude over a whole gap.
            self.fusion.integrate(w_mid, dt);
        } else {
            let mut fcfg = cfg.fusion;
            if self.boost_s > 0.0 {
                fcfg.kp *= cfg.fusion.gap_kp_factor;
                self.boost_s -= dt;
            }
            self.fusion.update(w_mid, acc, dt, &fcfg, g);
        }

        self.emit_rate(cfg, s.t_us, norm(gyro));

        // Quiet stance: bias, first calibration, re-attachment evidence.
        if self.rate_hz() > 0.0
            && let Some(chunk) =
                self.stance
                    .push(&cfg.stance, g, acc, gyro_raw, dt, s.t_us, self.bias)
        {
            self.on_quiet_chunk(cfg, chunk.mean_acc, chunk.mean_gyro);
        }

        let Some(cal) = self.current().copied() else {
            return;
        };
        let up = self.fusion.up();
        let tilt = cal.basis.tilt(up);
        let omega = cal.basis.project(gyro);
        let vert_acc = dot(acc, up) - g;
        let mut ta = 0.0;
        let mut tg = 0.0;
        for i in 0..3 {
            let a = self.tremor[i].step(acc[i]);
            let w = self.tremor[3 + i].step(gyro[i]);
            ta += a * a;
            tg += w * w;
        }
        match cal.ml {
            None => {
                self.ml.push(&cfg.ml_axis, omega, tilt, dt);
                if let Some(m) = self.ml.axis(&cfg.ml_axis)
                    && let Some(c) = self.calibs.last_mut()
                {
                    c.ml = Some(m);
                }
            }
            Some(m) => {
                if self.monitor.push(&cfg.ml_axis, m, omega, tilt, dt) {
                    // Movement no longer rotates about the calibrated axis: the sensor was
                    // turned on the skin. Keep the basis, re-estimate the ML axis.
                    let basis = cal.basis;
                    self.epoch = (self.epoch.wrapping_add(1) & 0x7fff).max(1);
                    self.calibs.push(EpochCalib {
                        epoch: self.epoch,
                        basis,
                        ml: None,
                    });
                    while self.calibs.len() > MAX_EPOCHS {
                        self.calibs.remove(0);
                    }
                    self.ml = MlAxisEstimator::default();
                    self.stats.recalibrations += 1;
                }
            }
        }
        let d = Derived {
            t_us: s.t_us,
            g: GridSample {
                tilt,
                omega,
                vert_acc,
                tremor_acc: ta.sqrt(),
                tremor_gyro: tg.sqrt(),
                epoch: self.epoch,
            },
        };
        self.emit_grid(cfg, d);
    }

    /// A quiet-stance chunk: update the gyro bias, calibrate (first stance or after an
    /// announced re-attachment) or look for evidence of an unannounced re-attachment.
    fn on_quiet_chunk(&mut self, cfg: &Config, mean_acc: [f64; 3], mean_gyro: [f64; 3]) {
        let w = cfg.stance.bias_update_weight;
        self.bias = Some(match self.bias {
            None => mean_gyro,
            Some(b) => [0, 1, 2].map(|i| b[i] + w * (mean_gyro[i] - b[i])),
        });
        if self.awaiting_stance {
            self.new_epoch(mean_acc);
        } else {
            self.check_reattach(cfg, mean_acc);
        }
    }

    fn update_rate(&mut self, cfg: &Config, dt: f64) {
        if self.intervals < RATE_WARMUP {
            if dt < cfg.sensor.max_interp_gap_s {
                self.intervals += 1;
                self.dt_est_s += (dt - self.dt_est_s) / f64::from(self.intervals);
            }
        } else if dt < 1.5 * self.dt_est_s {
            self.dt_est_s += 0.02 * (dt - self.dt_est_s);
        }
        let rate = self.rate_hz();
        if rate > 0.0
            && (self.design_rate_hz <= 0.0 || (rate / self.design_rate_hz - 1.0).abs() > 0.1)
        {
            self.design_filters(cfg, rate);
        }
    }

    fn check_reattach(&mut self, cfg: &Config, stance_acc: [f64; 3]) {
        let Some(cal) = self.current().copied() else {
            return;
        };
        let (Some(m), Some(up)) = (cal.ml, normalize(stance_acc)) else {
            return;
        };
        let tilt = cal.basis.tilt(up);
        let lateral = (tilt[1] * m[0] - tilt[0] * m[1]).abs();
        if lateral > cfg.reattach.lateral_deg.to_radians() {
            self.lateral_strikes = self.lateral_strikes.saturating_add(1);
            if u32::from(self.lateral_strikes) >= cfg.reattach.chunks {
                self.new_epoch(stance_acc);
            }
        } else {
            self.lateral_strikes = 0;
        }
    }

    /// Interpolates from the previous derived sample to `d` onto the grid.
    fn emit_grid(&mut self, cfg: &Config, d: Derived) {
        let period = self.ring.period_us();
        if let Some(p) = self.prev {
            let span = d.t_us - p.t_us;
            let ok = span > 0
                && (span as f64) * 1e-6 <= cfg.sensor.max_interp_gap_s
                && p.g.epoch == d.g.epoch;
            if ok {
                // Grid times in (p, d].
                let mut t = (p.t_us.div_euclid(period) + 1) * period;
                while t <= d.t_us {
                    let w = (t - p.t_us) as f64 / span as f64;
                    self.ring.push(t, Some(&GridSample::lerp(&p.g, &d.g, w)));
                    t += period;
                }
            }
        } else if d.t_us.rem_euclid(period) == 0 {
            self.ring.push(d.t_us, Some(&d.g));
        }
        self.prev = Some(d);
    }

    /// Feeds the onset window (clock alignment) with |ω| on the grid, from the very first
    /// samples (alignment does not need the mounting calibration).
    fn emit_rate(&mut self, cfg: &Config, t_us: i64, rate: f64) {
        let period = self.ring.period_us();
        if let Some((pt, pr)) = self.prev_rate {
            let span = t_us - pt;
            if span > 0 && (span as f64) * 1e-6 <= cfg.sensor.max_interp_gap_s {
                let mut t = (pt.div_euclid(period) + 1) * period;
                while t <= t_us {
                    let w = (t - pt) as f64 / span as f64;
                    self.onset
                        .push(&cfg.align, t, period, Some(pr + (rate - pr) * w));
                    t += period;
                }
            } else {
                // A gap: the window restarts.
                self.onset.push(&cfg.align, t_us, period, None);
            }
        }
        self.prev_rate = Some((t_us, rate));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: f64 = 9.80665;

    /// Rotation matrix about a unit axis.
    fn rot(axis: [f64; 3], ang: f64) -> [[f64; 3]; 3] {
        let [x, y, z] = axis;
        let (s, c) = ang.sin_cos();
        let t = 1.0 - c;
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    }

    fn mul(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
        [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
    }

    fn transpose(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
        [0, 1, 2].map(|i| [m[0][i], m[1][i], m[2][i]])
    }

    /// A segment flexing about its y axis by θ(t) (3 s cycles of 50° after 2 s of stance),
    /// seen through an arbitrary mounting; no linear acceleration.
    fn flexion(t: f64) -> (f64, f64) {
        if t < 2.0 {
            return (0.0, 0.0);
        }
        let w = 2.0 * std::f64::consts::PI / 3.0;
        let u = t - 2.0;
        (
            25f64.to_radians() * (1.0 - (w * u).cos()),
            25f64.to_radians() * w * (w * u).sin(),
        )
    }

    #[test]
    fn calibrates_any_mounting_and_tracks_sagittal_angle() {
        let cfg = Config::default();
        let mount = rot([0.48, -0.6, 0.64], 2.1);
        let mut st = SensorStage::new(&cfg);
        let mut max_err: f64 = 0.0;
        for k in 0..1500i64 {
            let t = k as f64 * 0.01;
            let (th, w) = flexion(t);
            let seg = rot([0.0, 1.0, 0.0], th);
            let acc = mul(&mount, mul(&transpose(&seg), [0.0, 0.0, G]));
            let gyro = mul(&mount, [0.0, w, 0.0]);
            let s = ImuSample {
                t_us: 1_000_000 + k * 10_000,
                acc: acc.map(|v| v as f32),
                gyro: gyro.map(|v| v as f32),
            };
            st.push(&cfg, &s);
            if t > 6.0 {
                let (gt, g) = st.ring.get(st.ring.len() - 1).unwrap();
                let g = g.unwrap();
                let m = st.calib(g.epoch).unwrap().ml.unwrap();
                let est = g.tilt[0] * m[0] + g.tilt[1] * m[1];
                let truth = flexion((gt - 1_000_000) as f64 * 1e-6).0;
                max_err = max_err.max((est - truth).abs().to_degrees());
            }
        }
        // The estimated ML axis is the mounting's y column, signed so flexion is positive.
        let c = st.current().unwrap();
        let m = c.ml.unwrap();
        let axis = [0, 1, 2].map(|i| c.basis.e1[i] * m[0] + c.basis.e2[i] * m[1]);
        let truth = [mount[0][1], mount[1][1], mount[2][1]];
        let cosang = dot(axis, truth);
        assert!(
            cosang > 0.999,
            "ML axis off by {:.2}°",
            cosang.acos().to_degrees()
        );
        assert!(max_err < 0.05, "sagittal angle error {max_err:.3}°");
        assert_eq!(st.stats().recalibrations, 0);
    }

    #[test]
    fn rejects_bad_samples_and_survives_gaps() {
        let cfg = Config::default();
        let mut st = SensorStage::new(&cfg);
        let ok = |t| ImuSample {
            t_us: t,
            acc: [0.0, 0.0, 9.8],
            gyro: [0.0; 3],
        };
        st.push(&cfg, &ok(1_000));
        st.push(&cfg, &ok(1_000)); // duplicate
        st.push(&cfg, &ok(500)); // backwards
        st.push(
            &cfg,
            &ImuSample {
                t_us: 2_000,
                acc: [f32::NAN, 0.0, 9.8],
                gyro: [0.0; 3],
            },
        );
        st.push(&cfg, &ok(i64::MAX)); // beyond the accepted range
        assert_eq!(st.stats().rejected, 4);
        for k in 0..300 {
            st.push(&cfg, &ok(20_000 + k * 10_000));
        }
        assert!(st.current().is_some(), "calibrated from quiet stance");
        st.push(&cfg, &ok(100_000_000)); // a long gap
        assert!(st.stats().gaps >= 1);
        st.reattached();
        assert!(st.current().is_none(), "waiting for a new stance");
    }
}
