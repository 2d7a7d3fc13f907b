//! Every threshold and constant of the biomechanics core, typed, with its default and the
//! reason for it: a citation, the biomechanics reference (`docs/biomechanics.md`), or
//! **\[tune\]** for engineering starting points that belong to configuration.
//!
//! Invariants:
//! - No stage uses a numeric constant that changes results without it being here (unit
//!   conversions and numerical guards aside).
//! - `Config` deserialises from partial documents (`#[serde(default)]` everywhere), so a
//!   deployment overrides only what it tunes.
//! - `Config::validated` clamps every value into a range where the stages stay stable and
//!   finite (the pipeline applies it on every call, so no configuration can break it);
//!   `Config::check` reports the fields a strict loader should reject.

use serde::{Deserialize, Serialize};

/// A configuration that cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// These fields are non-finite or outside their accepted range (see `Config::validated`).
    #[error("configuration values out of range: {}", fields.join(", "))]
    OutOfRange { fields: Vec<&'static str> },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Version of the model, stamped on every record. Bump when outputs change meaning.
    pub model_version: u32,
    /// Standard gravity, m/s² (CGPM 1901).
    pub gravity_mps2: f64,
    /// Rate of the internal uniform grid both sensors are resampled to, Hz. 100 Hz resolves
    /// the 50 ms onset-lag criterion and the 4–12 Hz tremor band. \[tune\]
    pub grid_rate_hz: f64,
    /// Rate of the kinematics output, Hz (contract default 25).
    pub kinematics_rate_hz: f64,
    pub stance: StanceConfig,
    pub fusion: FusionConfig,
    pub ml_axis: MlAxisConfig,
    pub reattach: ReattachConfig,
    pub sensor: SensorConfig,
    pub align: AlignConfig,
    pub filters: FilterConfig,
    pub segment: SegmentConfig,
    pub sets: SetConfig,
    pub classify: ClassifyConfig,
    pub events: EventConfig,
    pub anthropometry: AnthropometryConfig,
    pub fatigue: FatigueConfig,
    pub damage: DamageConfig,
    pub stability: StabilityConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            model_version: 1,
            gravity_mps2: 9.80665,
            grid_rate_hz: 100.0,
            kinematics_rate_hz: 25.0,
            stance: StanceConfig::default(),
            fusion: FusionConfig::default(),
            ml_axis: MlAxisConfig::default(),
            reattach: ReattachConfig::default(),
            sensor: SensorConfig::default(),
            align: AlignConfig::default(),
            filters: FilterConfig::default(),
            segment: SegmentConfig::default(),
            sets: SetConfig::default(),
            classify: ClassifyConfig::default(),
            events: EventConfig::default(),
            anthropometry: AnthropometryConfig::default(),
            fatigue: FatigueConfig::default(),
            damage: DamageConfig::default(),
            stability: StabilityConfig::default(),
        }
    }
}

fn clamp(x: f64, lo: f64, hi: f64, default: f64) -> f64 {
    if x.is_finite() {
        x.clamp(lo, hi)
    } else {
        default
    }
}

impl Config {
    /// A copy with every value clamped into a safe range (non-finite values → defaults).
    pub fn validated(&self) -> Config {
        self.normalized().0
    }

    /// Strict check for configuration loading: every field within its accepted range.
    pub fn check(&self) -> Result<(), ConfigError> {
        let (_, fields) = self.normalized();
        if fields.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange { fields })
        }
    }

    /// The clamped copy and the names of the fields that had to change.
    fn normalized(&self) -> (Config, Vec<&'static str>) {
        let d = Config::default();
        let mut c = self.clone();
        let mut changed: Vec<&'static str> = Vec::new();
        // `v!(field, lo, hi)`: clamp a field into [lo, hi]; non-finite → its default.
        macro_rules! v {
            ($($f:ident).+, $lo:expr, $hi:expr) => {
                let before = c.$($f).+;
                c.$($f).+ = clamp(before, $lo, $hi, d.$($f).+);
                if c.$($f).+.to_bits() != before.to_bits() {
                    changed.push(stringify!($($f).+));
                }
            };
        }
        v!(gravity_mps2, 9.7, 9.9);
        v!(grid_rate_hz, 50.0, 400.0);
        v!(kinematics_rate_hz, 1.0, c.grid_rate_hz);
        v!(stance.gyro_dps, 0.1, 30.0);
        v!(stance.acc_g, 0.001, 0.5);
        v!(stance.min_s, 0.1, 30.0);
        v!(stance.guard_s, 0.0, 5.0);
        v!(stance.lowpass_hz, 0.1, 50.0);
        v!(stance.max_bias_dps, 0.1, 100.0);
        v!(stance.bias_update_weight, 0.0, 1.0);
        v!(fusion.kp, 0.0, 100.0);
        v!(fusion.ki, 0.0, 10.0);
        v!(fusion.acc_gate, 0.0, 10.0);
        v!(fusion.gyro_gate_dps, 0.0, 1e4);
        v!(fusion.gap_kp_factor, 0.0, 100.0);
        v!(fusion.gap_recovery_s, 0.0, 60.0);
        v!(ml_axis.min_rate_dps, 0.0, 1e3);
        v!(ml_axis.min_tilt_deg, 0.0, 90.0);
        v!(ml_axis.min_rotation_deg, 1.0, 3600.0);
        v!(ml_axis.min_moving_s, 0.0, 60.0);
        v!(ml_axis.max_minor_ratio, 0.0, 1.0);
        v!(ml_axis.min_sign_tilt_deg, 0.0, 90.0);
        v!(ml_axis.monitor_rotation_deg, 1.0, 1e5);
        v!(ml_axis.monitor_max_deviation_deg, 1.0, 90.0);
        v!(reattach.lateral_deg, 1.0, 180.0);
        v!(sensor.max_interp_gap_s, 0.01, 2.0);
        v!(sensor.reinit_gap_s, c.sensor.max_interp_gap_s, 3600.0);
        v!(sensor.tremor_lo_hz, 0.1, 50.0);
        v!(sensor.tremor_hi_hz, c.sensor.tremor_lo_hz, 100.0);
        v!(align.ring_s, 2.0, 20.0);
        v!(align.pre_s, 0.2, 3.0);
        v!(align.post_s, 1.0, c.align.ring_s - c.align.pre_s);
        v!(align.quiet_s, 0.1, 10.0);
        v!(align.quiet_dps, 0.1, 100.0);
        v!(align.onset_dps, c.align.quiet_dps, 1e3);
        v!(align.smoothing_s, 0.0, 1.0);
        v!(align.search_s, 0.05, 2.0);
        v!(align.min_correlation, -1.0, 1.0);
        v!(align.min_overlap, 0.1, 1.0);
        v!(align.max_offset_s, 0.0, 3600.0);
        v!(align.max_jump_s, 0.001, 2.0);
        v!(align.edge_max_disagreement_s, 0.0, 2.0);
        v!(align.max_lookahead_s, 0.1, c.align.ring_s);
        v!(align.ring_headroom_s, 0.0, c.align.ring_s / 2.0);
        for (l, dl) in c
            .align
            .edge_levels_dps
            .iter_mut()
            .zip(d.align.edge_levels_dps)
        {
            *l = clamp(*l, 0.1, 100.0, dl);
        }
        c.align.keep_estimates = c.align.keep_estimates.clamp(1, 64);
        v!(filters.angle_lowpass_hz, 0.5, 50.0);
        v!(filters.segmentation_lowpass_hz, 0.2, 20.0);
        v!(filters.event_lowpass_hz, 0.5, 50.0);
        v!(segment.on_dps, 0.5, 500.0);
        v!(segment.still_dps, 0.1, c.segment.on_dps);
        v!(segment.min_depth_deg, 1.0, 120.0);
        v!(segment.top_zone_deg, 0.5, 90.0);
        v!(segment.top_zone_fraction, 0.0, 1.0);
        v!(segment.max_eccentric_s, 1.0, 10.0);
        v!(segment.max_ascent_s, 1.0, 20.0);
        v!(segment.top_window_s, 0.0, 2.0);
        v!(segment.standing_tau_s, 0.1, 600.0);
        v!(sets.rest_gap_s, 1.0, 3600.0);
        c.classify.min_reps = c.classify.min_reps.clamp(1, 6);
        v!(classify.gait_lo_hz, 0.1, 10.0);
        v!(classify.gait_hi_hz, c.classify.gait_lo_hz, 20.0);
        v!(classify.min_bout_s, 0.5, 600.0);
        v!(classify.min_auto_bout_s, 0.5, 600.0);
        v!(classify.squat_drop_scale_m, 1e-3, 10.0);
        v!(classify.squat_trunk_scale_deg, 1e-3, 90.0);
        v!(classify.squat_pelvis_scale_deg, 1e-3, 90.0);
        v!(events.early_fraction, 0.01, 1.0);
        v!(events.onset_fraction_low, 0.01, 0.9);
        v!(
            events.onset_fraction_high,
            c.events.onset_fraction_low + 0.01,
            0.99
        );
        v!(events.max_ascent_s, 1.0, 10.0);
        v!(anthropometry.default_height_m, 1.0, 2.5);
        v!(anthropometry.default_mass_kg, 25.0, 300.0);
        v!(fatigue.tau_s, 1.0, 1e7);
        v!(fatigue.dose_ref_s, 1e-3, 1e6);
        v!(fatigue.dose_deadband, 0.0, 1.0);
        v!(fatigue.observed_ref, 1e-3, 1e3);
        v!(fatigue.observed_weight, 0.0, 1.0);
        v!(fatigue.observed_smoothing, 0.0, 1.0);
        c.fatigue.baseline_reps = c.fatigue.baseline_reps.clamp(1, 20);
        v!(damage.lifft_a, 0.0, 1.0);
        v!(damage.lifft_divisor, 1.0, 1e12);
        v!(damage.reference_moment_nm, 1.0, 1e4);
        v!(stability.light_load_fraction, 0.0, 1.0);
        v!(stability.prior_reps, 0.0, 1e3);
        v!(stability.prior_log_spread, 1e-3, 10.0);
        v!(stability.floor_log, 1e-3, 10.0);
        (c, changed)
    }

    /// Grid period, µs.
    pub fn grid_period_us(&self) -> i64 {
        (1e6 / self.grid_rate_hz()).round().max(1.0) as i64
    }

    /// Grid rate actually used (validated).
    pub fn grid_rate_hz(&self) -> f64 {
        clamp(self.grid_rate_hz, 50.0, 400.0, 100.0)
    }
}

/// Quiet stance (gyro bias, standing gravity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StanceConfig {
    /// |ω − ω_ref| below this is quiet, °/s (biomechanics.md: |ω| < 3 °/s). \[tune\]
    pub gyro_dps: f64,
    /// | |a| − g | below this fraction of g is quiet (biomechanics.md: 0.03 g). \[tune\]
    pub acc_g: f64,
    /// Minimum quiet duration, s (biomechanics.md: ≥ 1 s). \[tune\]
    pub min_s: f64,
    /// The newest quiet is held back this long before it counts, so the start of a
    /// movement (seen late through the low-pass) never enters the bias, s. \[tune\]
    pub guard_s: f64,
    /// Low-pass applied before the quiet test (suppresses sensor noise), Hz. \[tune\]
    pub lowpass_hz: f64,
    /// Largest plausible MEMS gyro bias, °/s: a steady rotation above it is not stance. \[tune\]
    pub max_bias_dps: f64,
    /// Weight of a new quiet chunk in the running bias estimate. \[tune\]
    pub bias_update_weight: f64,
}

impl Default for StanceConfig {
    fn default() -> Self {
        Self {
            gyro_dps: 3.0,
            acc_g: 0.03,
            min_s: 1.0,
            guard_s: 0.25,
            lowpass_hz: 5.0,
            max_bias_dps: 10.0,
            bias_update_weight: 0.3,
        }
    }
}

/// Mahony 6-axis fusion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusionConfig {
    /// Proportional gain, 1/s (Mahony et al. 2008; biomechanics.md: Kp 0.5–2). \[tune\]
    pub kp: f64,
    /// Integral gain, 1/s² (biomechanics.md: 0–0.005; bias comes from stance instead). \[tune\]
    pub ki: f64,
    /// Accelerometer correction only while | |a|/g − 1 | ≤ this (biomechanics.md: 0.1). \[tune\]
    pub acc_gate: f64,
    /// ... and while |ω| ≤ this, °/s: lever-arm (tangential α·r and centripetal ω²·r)
    /// accelerations tilt the measured "gravity" whenever the segment rotates, even when
    /// |a| ≈ g (the turnaround of a swing). Correcting only when nearly still keeps the
    /// gyro's short-term accuracy; the bias comes from quiet stance. \[tune\]
    pub gyro_gate_dps: f64,
    /// After a data gap the attitude is uncertain: Kp is multiplied by this ... \[tune\]
    pub gap_kp_factor: f64,
    /// ... for this long, s. \[tune\]
    pub gap_recovery_s: f64,
}

impl Default for FusionConfig {
    fn default() -> Self {
        Self {
            kp: 1.0,
            ki: 0.0,
            acc_gate: 0.1,
            gyro_gate_dps: 10.0,
            gap_kp_factor: 4.0,
            gap_recovery_s: 1.5,
        }
    }
}

/// Medio-lateral axis estimation (principal component of ω in the horizontal plane).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MlAxisConfig {
    /// Only samples rotating faster than this count, °/s. \[tune\]
    pub min_rate_dps: f64,
    /// ... while tilted at least this far from the stance, ° (the first sagittal movements:
    /// gait and sway rotate the segment but keep it near upright). \[tune\]
    pub min_tilt_deg: f64,
    /// Accumulated rotation needed before the axis is trusted, °. \[tune\]
    pub min_rotation_deg: f64,
    /// ... and accumulated moving time, s. \[tune\]
    pub min_moving_s: f64,
    /// Minor/major eigenvalue ratio above which the movement is not planar enough. \[tune\]
    pub max_minor_ratio: f64,
    /// The largest tilt seen must project at least this much on the axis to sign it, °. \[tune\]
    pub min_sign_tilt_deg: f64,
    /// The axis monitor re-checks after this much rotation, °. \[tune\]
    pub monitor_rotation_deg: f64,
    /// A principal axis further than this from the calibrated one triggers re-estimation, °. \[tune\]
    pub monitor_max_deviation_deg: f64,
}

impl Default for MlAxisConfig {
    fn default() -> Self {
        Self {
            min_rate_dps: 8.0,
            min_tilt_deg: 8.0,
            min_rotation_deg: 20.0,
            min_moving_s: 0.4,
            max_minor_ratio: 0.5,
            min_sign_tilt_deg: 10.0,
            monitor_rotation_deg: 200.0,
            monitor_max_deviation_deg: 30.0,
        }
    }
}

/// Detection of an unannounced re-attachment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReattachConfig {
    /// A quiet stance whose gravity is tilted sideways (about the calibrated AP axis) by more
    /// than this, °, cannot be a posture of the same mounting. \[tune\]
    pub lateral_deg: f64,
    /// ... in this many consecutive quiet chunks. \[tune\]
    pub chunks: u32,
}

impl Default for ReattachConfig {
    fn default() -> Self {
        Self {
            lateral_deg: 12.0,
            chunks: 2,
        }
    }
}

/// Per-sensor signal handling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SensorConfig {
    /// Grid values are interpolated across gaps up to this long, s; longer = missing. \[tune\]
    pub max_interp_gap_s: f64,
    /// Beyond this gap the attitude restarts from the accelerometer, s. \[tune\]
    pub reinit_gap_s: f64,
    /// Tremor band, Hz (physiological and fatigue tremor; Lippold 1970, biomechanics.md).
    pub tremor_lo_hz: f64,
    pub tremor_hi_hz: f64,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            max_interp_gap_s: 0.35,
            reinit_gap_s: 2.0,
            tremor_lo_hz: 4.0,
            tremor_hi_hz: 12.0,
        }
    }
}

/// Clock alignment of the two sensors and buffering.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlignConfig {
    /// Window kept before a movement onset, s. \[tune\]
    pub pre_s: f64,
    /// Window recorded after it, s (about one lift). \[tune\]
    pub post_s: f64,
    /// Quiet needed before an onset counts, s. \[tune\]
    pub quiet_s: f64,
    /// |ω| below this is quiet for onset detection, °/s. \[tune\]
    pub quiet_dps: f64,
    /// |ω| above this after quiet is an onset, °/s. \[tune\]
    pub onset_dps: f64,
    /// Smoothing of |ω| for onset detection, s. \[tune\]
    pub smoothing_s: f64,
    /// Lag search around the onset difference, ± s. \[tune\]
    pub search_s: f64,
    /// Minimum normalised cross-correlation to accept an estimate. \[tune\]
    pub min_correlation: f64,
    /// Minimum overlap of the windows at the chosen lag (fraction). \[tune\]
    pub min_overlap: f64,
    /// Largest accepted clock offset, s (contract: tens of ms up to seconds).
    pub max_offset_s: f64,
    /// |ω| levels (above the quiet baseline) whose last crossing before the onset times the
    /// movement edge, °/s (above sensor noise and physiological tremor, low enough to catch
    /// the first segment to move). \[tune\]
    pub edge_levels_dps: [f64; 5],
    /// The edge estimate replaces the correlation estimate when within this of it, s. \[tune\]
    pub edge_max_disagreement_s: f64,
    /// Estimates kept; the offset is the median of their largest consistent group (see
    /// `max_jump_s`). \[tune\]
    pub keep_estimates: usize,
    /// Estimates within this of each other pair the same movements; one further than this
    /// from the largest such group (the consensus) is outvoted, s. \[tune\]
    pub max_jump_s: f64,
    /// How far one sensor's data may run ahead of the other's before the lagging one is
    /// treated as missing, s. \[tune\]
    pub max_lookahead_s: f64,
    /// Capacity of each sensor's grid buffer, s (bounds the state: 650 entries at 100 Hz). \[tune\]
    pub ring_s: f64,
    /// Room kept free in a waiting buffer: the oldest entries are processed (without the
    /// other sensor) rather than dropped, s. \[tune\]
    pub ring_headroom_s: f64,
}

impl Default for AlignConfig {
    fn default() -> Self {
        Self {
            pre_s: 1.0,
            post_s: 3.0,
            quiet_s: 1.0,
            quiet_dps: 10.0,
            onset_dps: 30.0,
            smoothing_s: 0.02,
            search_s: 0.5,
            min_correlation: 0.8,
            min_overlap: 0.6,
            max_offset_s: 30.0,
            edge_levels_dps: [3.0, 4.5, 6.0, 8.0, 10.0],
            edge_max_disagreement_s: 0.05,
            keep_estimates: 9,
            max_jump_s: 0.06,
            max_lookahead_s: 2.0,
            ring_s: 6.5,
            ring_headroom_s: 1.0,
        }
    }
}

/// Causal low-pass filters on the athlete signals (2nd-order Butterworth).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterConfig {
    /// For angular accelerations in the load moment, Hz (biomechanics.md: 6 Hz for angles).
    pub angle_lowpass_hz: f64,
    /// For segmentation, Hz (biomechanics.md: ~3 Hz). \[tune\]
    pub segmentation_lowpass_hz: f64,
    /// For event velocities: keeps 4–12 Hz tremor out of onsets and peaks, Hz. \[tune\]
    pub event_lowpass_hz: f64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            angle_lowpass_hz: 6.0,
            segmentation_lowpass_hz: 3.0,
            event_lowpass_hz: 5.0,
        }
    }
}

/// Rep and phase segmentation on the trunk's sagittal motion (hysteresis state machine).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentConfig {
    /// Flexion faster than this starts an eccentric, extension faster than this a
    /// concentric, °/s (biomechanics.md: ω_on). \[tune\]
    pub on_dps: f64,
    /// Below this the trunk is considered still (phase start/end times), °/s. \[tune\]
    pub still_dps: f64,
    /// A rep must flex the trunk at least this far from standing, °. \[tune\]
    pub min_depth_deg: f64,
    /// Back within this of standing ends the concentric, ° (biomechanics.md: ~10°). \[tune\]
    pub top_zone_deg: f64,
    /// ... or within this fraction of the rep's depth, whichever is larger. \[tune\]
    pub top_zone_fraction: f64,
    /// An eccentric longer than this without reaching the bottom is abandoned, s. \[tune\]
    pub max_eccentric_s: f64,
    /// A bottom + concentric longer than this is abandoned, s. \[tune\]
    pub max_ascent_s: f64,
    /// After the top, the rep stays open this long for lockout (hyperextension), s. \[tune\]
    pub top_window_s: f64,
    /// The standing reference adapts with this time constant while still and upright, s. \[tune\]
    pub standing_tau_s: f64,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            on_dps: 15.0,
            still_dps: 5.0,
            min_depth_deg: 15.0,
            top_zone_deg: 10.0,
            top_zone_fraction: 0.25,
            max_eccentric_s: 6.0,
            max_ascent_s: 8.0,
            top_window_s: 0.3,
            standing_tau_s: 5.0,
        }
    }
}

/// Set boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SetConfig {
    /// Without reps for longer than this, the next rep starts a new set (when the client
    /// does not name sets), s. \[tune\]
    pub rest_gap_s: f64,
}

impl Default for SetConfig {
    fn default() -> Self {
        Self { rest_gap_s: 20.0 }
    }
}

/// Exercise classification from motion when the set metadata does not say.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassifyConfig {
    /// Reps needed before a set's exercise is decided (reps wait until then; the pause
    /// between reps is known from the second rep on). \[tune\]
    pub min_reps: u32,
    /// Swing: most reps of the set have a concentric (hip snap) shorter than this, s. \[tune\]
    pub swing_max_concentric_s: f64,
    /// In a swing set, a hinge with a concentric slower than this is the pick-up or
    /// put-down of the bell (a deadlift-like transfer), not a swing, s. \[tune\]
    pub swing_transfer_concentric_s: f64,
    /// Squat vs deadlift: sacrum drop (m, scaled to a 1.75 m athlete) at which both are
    /// equally likely; squats drop the hips further (knee-dominant). \[tune\]
    pub squat_drop_m: f64,
    /// ... and its spread, m. \[tune\]
    pub squat_drop_scale_m: f64,
    /// Trunk range (°) at which both are equally likely; deadlifts hinge further. \[tune\]
    pub squat_trunk_deg: f64,
    /// ... and its spread, °. \[tune\]
    pub squat_trunk_scale_deg: f64,
    /// Pelvis range (°) at which both are equally likely; deadlifts tilt the pelvis more. \[tune\]
    pub squat_pelvis_deg: f64,
    /// ... and its spread, °. \[tune\]
    pub squat_pelvis_scale_deg: f64,
    /// Walking (carry) step band for detecting bouts, Hz. \[tune\]
    pub gait_lo_hz: f64,
    pub gait_hi_hz: f64,
    /// Gait-band RMS of vertical sacrum acceleration that means walking, m/s². \[tune\]
    pub gait_rms_mps2: f64,
    /// A walking bout of a declared carry must last this long, s. \[tune\]
    pub min_bout_s: f64,
    /// ... with at least this many steps per second (walking 1.4–2.5 Hz). \[tune\]
    pub min_cadence_hz: f64,
    /// Walking only counts with the trunk within this of standing (loads are carried
    /// upright; lifts and swings bend the trunk), °. \[tune\]
    pub walk_max_trunk_deg: f64,
    /// Without metadata, only bouts this long make a carry (a few steps between sets do
    /// not), s. \[tune\]
    pub min_auto_bout_s: f64,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            min_reps: 3,
            swing_max_concentric_s: 0.8,
            swing_transfer_concentric_s: 0.9,
            squat_drop_m: 0.33,
            squat_drop_scale_m: 0.04,
            squat_trunk_deg: 48.0,
            squat_trunk_scale_deg: 8.0,
            squat_pelvis_deg: 31.0,
            squat_pelvis_scale_deg: 4.0,
            gait_lo_hz: 1.0,
            gait_hi_hz: 3.0,
            gait_rms_mps2: 0.6,
            min_bout_s: 3.0,
            min_cadence_hz: 1.2,
            walk_max_trunk_deg: 20.0,
            min_auto_bout_s: 7.0,
        }
    }
}

/// Extensor-moment events (fault 1), evaluated on each ascent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventConfig {
    /// The criteria look at this first fraction of the ascent (biomechanics.md: 40 %). \[tune\]
    pub early_fraction: f64,
    /// Peak lumbar extension velocity above this, °/s (biomechanics.md: 60 °/s). \[tune\]
    pub min_peak_ext_dps: f64,
    /// Lumbar share r(t) above this ... (biomechanics.md: 0.6). \[tune\]
    pub share_threshold: f64,
    /// ... for at least this long, ms (biomechanics.md: 100 ms). \[tune\]
    pub min_share_ms: f64,
    /// r(t) only counts while |ω_L| + |ω_P| exceeds this (undefined at rest), °/s. \[tune\]
    pub share_min_rate_dps: f64,
    /// The lumbar spine leads the pelvis by more than this, ms (biomechanics.md: 50 ms). \[tune\]
    pub min_lead_ms: f64,
    /// A segment whose peak extension velocity stays below this has no extension onset, °/s. \[tune\]
    pub onset_dps: f64,
    /// Onsets are extrapolated from the crossings of these fractions of the segment's peak
    /// extension velocity on its rise (quadratic start). \[tune\]
    pub onset_fraction_low: f64,
    pub onset_fraction_high: f64,
    /// Swing variant: lumbar extension past standing beyond this at the top, °
    /// (biomechanics.md: θ_L < −5°). \[tune\]
    pub hyperextension_deg: f64,
    /// Ascent samples kept for the analysis (bounds the state), s. \[tune\]
    pub max_ascent_s: f64,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            early_fraction: 0.4,
            min_peak_ext_dps: 60.0,
            share_threshold: 0.6,
            min_share_ms: 100.0,
            share_min_rate_dps: 20.0,
            min_lead_ms: 50.0,
            onset_dps: 15.0,
            onset_fraction_low: 0.2,
            onset_fraction_high: 0.5,
            hyperextension_deg: 5.0,
            max_ascent_s: 5.0,
        }
    }
}

/// Anthropometrics for the load moment at L5/S1 and default capacities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnthropometryConfig {
    /// Used when the athlete's height is unknown, m. \[tune\]
    pub default_height_m: f64,
    /// Used when the athlete's mass is unknown, kg. \[tune\]
    pub default_mass_kg: f64,
    /// Mass above L5/S1 as a fraction of body mass: head+neck 0.081, thorax 0.216,
    /// abdomen 0.139, two arms 2×(0.028+0.016+0.006) (Winter 2009, Table 4.1, after Dempster).
    pub upper_body_mass_fraction: f64,
    /// L5/S1-to-shoulder distance as a fraction of height: acromion 0.818 H − L5/S1 ≈ 0.575 H
    /// (Winter 2009, Fig. 4.1; Drillis & Contini).
    pub shoulder_fraction: f64,
    /// Upper-body centre of mass distance from L5/S1 as a fraction of height (segment-mass
    /// weighted: head 0.36 H, thorax 0.19 H, abdomen 0.06 H, arms hang from the shoulders).
    pub com_fraction: f64,
    /// Radius of gyration of the upper body about its centre of mass, fraction of height
    /// (trunk ≈ 0.3 of its 0.29 H length plus head and arms; Winter 2009). \[tune\]
    pub gyration_fraction: f64,
    /// Default capacities as multiples of body mass when unknown (typical trained adults). \[tune\]
    pub default_deadlift_bw: f64,
    pub default_squat_bw: f64,
    pub default_swing_bw: f64,
    /// Carry capacity (both hands) as a fraction of the deadlift capacity. \[tune\]
    pub carry_of_deadlift: f64,
    /// Trunk inclination at which the capacity moment is taken, °: a maximal lift peaks at
    /// about this inclination. \[tune\]
    pub capacity_inclination_deg: f64,
}

impl Default for AnthropometryConfig {
    fn default() -> Self {
        Self {
            default_height_m: 1.75,
            default_mass_kg: 75.0,
            upper_body_mass_fraction: 0.536,
            shoulder_fraction: 0.245,
            com_fraction: 0.192,
            gyration_fraction: 0.10,
            default_deadlift_bw: 1.5,
            default_squat_bw: 1.25,
            default_swing_bw: 0.3,
            carry_of_deadlift: 0.6,
            capacity_inclination_deg: 60.0,
        }
    }
}

/// Fatigue of the spinal extensors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FatigueConfig {
    /// Recovery time constant of the dose model, s (biomechanics.md: 5000 s).
    pub tau_s: f64,
    /// Dose at which the dose score reaches 63 %, s at capacity moment. \[tune\]
    pub dose_ref_s: f64,
    /// Moment ratios below this do not add dose (standing posture and sway). \[tune\]
    pub dose_deadband: f64,
    /// Weight of a new rep in the exponential average of the observed drift. \[tune\]
    pub observed_smoothing: f64,
    /// Reps of a set forming its observed baseline (biomechanics.md: first 3).
    pub baseline_reps: u32,
    /// Observed drift F_obs at which the observed score reaches 63 %. \[tune\]
    pub observed_ref: f64,
    /// Weight of the observed part in the blended score. \[tune\]
    pub observed_weight: f64,
    /// Floors of the baseline spread for the z-scores (3 reps give a poor spread): peak
    /// lumbar flexion °, LDI, concentric duration (fraction of its mean), tremor and jerk
    /// (log units). \[tune\]
    pub floor_lumbar_deg: f64,
    pub floor_ldi: f64,
    pub floor_duration_frac: f64,
    pub floor_log: f64,
}

impl Default for FatigueConfig {
    fn default() -> Self {
        Self {
            tau_s: 5000.0,
            dose_ref_s: 40.0,
            dose_deadband: 0.05,
            observed_smoothing: 0.25,
            baseline_reps: 3,
            observed_ref: 1.0,
            observed_weight: 0.3,
            floor_lumbar_deg: 1.5,
            floor_ldi: 0.05,
            floor_duration_frac: 0.06,
            floor_log: 0.15,
        }
    }
}

/// LiFFT cumulative damage (Gallagher et al. 2017, Appl Ergon 63:142–150; constants as
/// restated in Zelik et al. 2021).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DamageConfig {
    /// DPC = exp(a·PLM + b) / divisor.
    pub lifft_a: f64,
    pub lifft_b: f64,
    pub lifft_divisor: f64,
    /// P(high risk) = 1 / (1 + exp(−(intercept + slope·log10 CD))).
    pub risk_intercept: f64,
    pub risk_slope: f64,
    /// LiFFT was fitted on occupational lifts (PLM mostly ≤ 100 N·m): the peak moment is
    /// normalised to the athlete's capacity moment and re-expressed on this scale, N·m, so a
    /// lift at capacity counts as this PLM. \[tune\]
    pub reference_moment_nm: f64,
    /// Local-time offset for day boundaries of the daily damage, s. \[tune\]
    pub utc_offset_s: i64,
}

impl Default for DamageConfig {
    fn default() -> Self {
        Self {
            lifft_a: 0.038,
            lifft_b: 0.32,
            lifft_divisor: 1_902_416.0,
            risk_intercept: 1.72,
            risk_slope: 1.03,
            reference_moment_nm: 100.0,
            utc_offset_s: 0,
        }
    }
}

/// Stability deficit (fault 2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StabilityConfig {
    /// Loads up to this fraction of capacity form the athlete's baseline (warm-up range). \[tune\]
    pub light_load_fraction: f64,
    /// Weight of the population prior in the baseline, in pseudo-reps. \[tune\]
    pub prior_reps: f64,
    /// Population prior (log means, log spreads) of the eccentric features, used until the
    /// athlete's own light-load reps dominate: tremor-band acceleration RMS (m/s²), tremor-
    /// band angular velocity RMS (rad/s), log dimensionless jerk, CV of ω_T, carry sway (rad). \[tune\]
    pub prior_tremor_acc: f64,
    pub prior_tremor_gyro: f64,
    pub prior_jerk: f64,
    pub prior_cv: f64,
    pub prior_sway: f64,
    pub prior_log_spread: f64,
    /// Floor of the baseline spread (log units). \[tune\]
    pub floor_log: f64,
    /// Feature weights in the deficit Σ w_i·max(0, z_i). \[tune\]
    pub w_tremor_acc: f64,
    pub w_tremor_gyro: f64,
    pub w_jerk: f64,
    pub w_cv: f64,
    pub w_sway: f64,
}

impl Default for StabilityConfig {
    fn default() -> Self {
        Self {
            light_load_fraction: 0.6,
            prior_reps: 2.0,
            prior_tremor_acc: 0.08,
            prior_tremor_gyro: 0.03,
            prior_jerk: 8.0,
            prior_cv: 0.6,
            prior_sway: 0.02,
            prior_log_spread: 0.5,
            floor_log: 0.15,
            w_tremor_acc: 1.0,
            w_tremor_gyro: 1.0,
            w_jerk: 0.3,
            w_cv: 0.3,
            w_sway: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_document_keeps_defaults() {
        let c: Config =
            serde_json::from_str(r#"{"fusion":{"kp":0.5},"grid_rate_hz":200}"#).unwrap();
        assert_eq!(c.fusion.kp, 0.5);
        assert_eq!(c.fusion.acc_gate, 0.1);
        assert_eq!(c.grid_rate_hz, 200.0);
        assert_eq!(c.events, EventConfig::default());
    }

    #[test]
    fn validated_clamps_nonsense() {
        let mut c = Config {
            grid_rate_hz: f64::NAN,
            ..Config::default()
        };
        c.fatigue.tau_s = -5.0;
        c.align.ring_s = 1e9;
        let v = c.validated();
        match c.check() {
            Err(ConfigError::OutOfRange { fields }) => {
                assert_eq!(
                    fields,
                    vec!["grid_rate_hz", "align.ring_s", "fatigue.tau_s"]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Config::default().check(), Ok(()));
        assert_eq!(v.grid_rate_hz, 100.0);
        assert_eq!(v.fatigue.tau_s, 1.0);
        assert_eq!(v.align.ring_s, 20.0);
        assert_eq!(v.grid_period_us(), 10_000);
    }
}
