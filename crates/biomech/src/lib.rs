//! `liftguard-biomech`: the pure signal-processing and biomechanics core.
//!
//! Two back IMUs per athlete (T12/L1 "thoracolumbar", S1/S2 "sacrum") in, reps with
//! extensor-moment evidence, fatigue, stability, load moment and cumulative damage out,
//! plus a 25 Hz lumbar-angle trace. Everything is online and causal, sample by sample:
//!
//! ```text
//! samples ─► sensor::SensorStage (per sensor: bias, Mahony fusion, calibration, grid)
//!         ─► align (clock offset)  ─► pipeline (pairing on the thoracolumbar clock)
//!         ─► segment ─► events / moment / fatigue / damage / stability / classify ─► Output
//! ```
//!
//! Invariants (whole crate):
//! - Pure: no I/O, no async, no clock, no randomness; the same inputs give the same outputs.
//! - No panic and no NaN/inf out for any finite input (non-finite input samples are dropped).
//! - All per-athlete state is bounded and serialisable: [`AthletePipeline`] is `Clone +
//!   Serialize + Deserialize` and stays ≤ 64 KiB serialised (tested with JSON).
//! - Every tunable number lives in [`Config`] with its default and source.

pub mod align;
pub mod analyze;
pub mod athlete;
pub mod calibration;
pub mod classify;
pub mod compact;
pub mod config;
pub mod damage;
pub mod events;
pub mod fatigue;
pub mod filter;
pub mod fusion;
pub mod moment;
pub mod pipeline;
pub mod reps;
pub mod ring;
pub mod segment;
pub mod sensor;
pub mod stability;

use serde::{Deserialize, Serialize};

pub use analyze::{Analysis, AnalysisSummary, analyze_recordings};
pub use config::{Config, ConfigError};
pub use liftguard_model::{Exercise, Placement};
pub use pipeline::{AthletePipeline, PipelineStats};

/// Declared 1RM-like capacities, kg (0 = unknown → defaults from body mass).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub deadlift: f64,
    pub squat: f64,
    pub swing: f64,
}

/// Anthropometrics of an athlete (0 = unknown → configured defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AthleteParams {
    pub height_m: f64,
    pub mass_kg: f64,
    pub capacity_kg: Capacity,
}

/// One IMU sample on the sensor's own device clock: specific force (m/s²) and angular
/// rate (rad/s) in the sensor frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ImuSample {
    pub t_us: i64,
    pub acc: [f32; 3],
    pub gyro: [f32; 3],
}

/// Set metadata from the client; `None` = unknown (classified from motion / load 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetInfo {
    pub set_id: Option<String>,
    pub exercise: Option<Exercise>,
    pub load_kg: Option<f64>,
}

/// What the pipeline produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Output {
    Rep(Rep),
    /// Downsampled to `Config::kinematics_rate_hz` (default 25 Hz); points are emitted only
    /// while both sensors are calibrated and present, so consecutive points may have gaps.
    Kinematics(KinematicsPoint),
}

/// Angles at one instant (thoracolumbar clock). Inclinations are relative to the
/// calibrated quiet stance (forward positive); lumbar flexion θ_L = θ_T − θ_P (0 = standing).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KinematicsPoint {
    pub t_us: i64,
    pub lumbar_flexion_deg: f32,
    pub trunk_inclination_deg: f32,
    pub pelvis_inclination_deg: f32,
}

/// The evidence of the extensor-moment event decision (each number is why, or why not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtensorEvidence {
    /// Peak lumbar extension velocity within the early ascent, °/s.
    pub peak_lumbar_ext_velocity_dps: f64,
    /// Longest run with lumbar share r(t) above threshold within the early ascent, ms.
    pub lumbar_share_duration_ms: f64,
    /// Maximum lumbar share r(t) within the early ascent (0–1).
    pub max_lumbar_share: f64,
    /// Lumbar dominance index of the ascent (0–1).
    pub ldi: f64,
    /// Lumbar minus pelvic extension onset, ms (negative = the lumbar spine leads).
    pub onset_lag_ms: f64,
    /// Lumbar flexion at the start of the ascent, °.
    pub bottom_lumbar_flexion_deg: f64,
    /// Peak load moment at L5/S1 during the rep, N·m.
    pub peak_load_moment_nm: f64,
    /// Lumbar extension past standing at the top (−min θ_L), ° (kettlebell-swing variant).
    pub top_hyperextension_deg: f64,
}

/// Fatigue: blended score 0–100 with its two parts (each 0–100).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FatigueScore {
    pub score: f64,
    /// Modelled dose part.
    pub dose: f64,
    /// Observed drift part (vs the first reps of the set).
    pub observed: f64,
}

/// LiFFT damage of a rep and cumulative sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Damage {
    /// Damage of this cycle (DPC).
    pub per_cycle: f64,
    pub cumulative_set: f64,
    pub cumulative_session: f64,
    pub cumulative_day: f64,
    /// LiFFT probability of high risk for the day's cumulative damage.
    pub p_high_risk: f64,
    /// The PLM fed to LiFFT is the peak moment normalised to capacity (always true in this
    /// version; stated so consumers never mistake it for a raw occupational PLM).
    pub normalised_to_capacity: bool,
    /// Whether the capacity was declared (false = default multiple of body mass).
    pub capacity_declared: bool,
    /// The reference moment a lift at capacity counts as, N·m.
    pub reference_moment_nm: f64,
    /// The athlete's capacity moment for this exercise, N·m.
    pub capacity_moment_nm: f64,
    /// The effective PLM used: peak / capacity × reference, N·m.
    pub effective_plm_nm: f64,
}

/// One repetition (or, for carries, one walked bout) with everything measured about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rep {
    pub set_index: u32,
    pub set_id: Option<String>,
    /// 1-based within the set.
    pub rep_index: u32,
    pub exercise: Exercise,
    pub exercise_inferred: bool,
    pub load_kg: f64,
    /// Phase times on the thoracolumbar clock, µs.
    pub start_us: i64,
    pub bottom_us: i64,
    pub concentric_start_us: i64,
    pub end_us: i64,
    pub eccentric_s: f64,
    pub concentric_s: f64,
    pub peak_lumbar_flexion_deg: f64,
    pub peak_trunk_inclination_deg: f64,
    pub ldi: f64,
    pub peak_load_moment_nm: f64,
    pub extensor_event: bool,
    pub evidence: ExtensorEvidence,
    pub fatigue: FatigueScore,
    pub stability_deficit: f64,
    pub damage: Damage,
    /// Carries only: steps counted in the bout (0 for lifts).
    pub steps: u32,
}
