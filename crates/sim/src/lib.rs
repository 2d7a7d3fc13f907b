//! `liftguard-sim`: a deterministic simulator of athletes wearing two back IMUs (T12/L1 and
//! S1/S2), with the ground truth kept beside the signal.
//!
//! # Model
//! - **Kinematics** (module `motion`): a sagittal lumbo-pelvic chain driven by smooth C² tracks:
//!   pelvic inclination θ_P, lumbar flexion θ_L, hip-centre translation, pelvic roll/yaw,
//!   lumbar lateral bend and twist. Trunk inclination is θ_T = θ_P + θ_L + (θ_T,stand − θ_P,stand).
//!   The sacral point moves as the pelvis rotates about the hip; T12 sits on the lumbar chord
//!   above S1; each sensor sits on the skin with a posterior lever arm.
//! - **IMU physics** (module `imu`): exact jets (no finite differences) give the world acceleration
//!   of the sensor point (incl. tangential/centripetal lever-arm terms) and the body angular
//!   velocity. Accelerometer = M·Rᵀ·(a − g) (specific force, m/s²), gyro = M·ω_body (rad/s),
//!   with M the mounting rotation (segment → sensor). Then constant + random-walk gyro bias,
//!   accelerometer bias, white noise, saturation (±16 g, ±2000 °/s), per-sensor rate, device
//!   clock offset, random single drops and gap bursts of 50–300 ms.
//! - **Athlete behaviour** (module `motion`): quiet stance, sets of deadlifts, squats, kettlebell
//!   swings and carries, standing rests with sway/weight shifts/a few steps, a latent fatigue
//!   state, lumbar-led ascents (fault 1), instability tremor (fault 2).
//!   Sets include movement that is not a rep, as in a real gym: squats walk the bar out of and
//!   back into the rack, kettlebell sets start with a pick-up and end with parking the bell,
//!   carries start with a pick-up and end with a put-down.
//!
//! # Frames and conventions
//! Segment frames: x anterior, y left (medio-lateral; a positive rotation about +y is forward
//! flexion), z cranial. World: z up, gravity (0, 0, −g). `SensorRecording::mounting` takes
//! segment vectors to sensor vectors, so the true ML axis in sensor coordinates is its column 1.
//! Inclinations are the sagittal Euler angle of the segment (Rz(yaw)·Rx(roll)·Ry(pitch)).
//!
//! # Invariants
//! - Deterministic: the output is a pure function of the arguments (ChaCha8 seeded from the
//!   `u64` seed; no clocks, no thread-local RNG). The motion (and therefore the ground truth)
//!   depends only on athlete, plan, `quiet_stance_s` and seed, never on the sensor options.
//! - All truth times are on the THORACOLUMBAR device clock (true time + its clock offset).
//! - `extensor_fault`/`unstable` are set exactly for the reps where the generator injected
//!   them; an unstable rep only ever occurs when `load/capacity > stability_capacity`.
//! - Sample timestamps of a recording are strictly increasing.

pub mod csv;
mod imu;
mod jet;
mod motion;
pub mod plan;
mod track;

use liftguard_model::{Exercise, Placement};
use serde::{Deserialize, Serialize};

pub use csv::{
    CsvError, RECORDING_CSV_HEADER, recording_from_csv, recording_to_csv, truth_angles_to_csv,
    truth_reps_to_csv, truth_sets_to_csv,
};
pub use plan::{
    Cohort, PlanOptions, SPORTS, random_athlete, random_session_plan, random_session_plan_with,
};

/// Standard gravity used by the simulator (m/s²).
pub const G: f64 = 9.80665;
/// Accelerometer full scale (±16 g), m/s².
pub const ACCEL_RANGE: f64 = 16.0 * G;
/// Gyroscope full scale (±2000 °/s), rad/s.
pub const GYRO_RANGE: f64 = 2000.0 * std::f64::consts::PI / 180.0;

/// One IMU sample: specific force (m/s²) and angular rate (rad/s) in the sensor frame, stamped
/// on the sensor's own clock (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImuSample {
    pub t_us: i64,
    pub acc: [f32; 3],
    pub gyro: [f32; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorRecording {
    pub sensor_id: String,
    pub placement: Placement,
    pub rate_hz: f64,
    /// device clock minus true time, microseconds (sacrum and thoracolumbar differ)
    pub clock_offset_us: i64,
    /// mounting: rotation matrix taking segment-frame vectors to sensor-frame vectors (row-major)
    pub mounting: [[f64; 3]; 3],
    /// with drops already removed (gaps)
    pub samples: Vec<ImuSample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AthleteSpec {
    pub id: String,
    pub height_m: f64,
    pub mass_kg: f64,
    /// per exercise: deadlift, squat, swing (kg)
    pub capacity_kg: CapacityKg,
    /// fraction of capacity above which eccentrics become unstable
    pub stability_capacity: f64,
    /// base probability multiplier of lumbar-led ascents
    pub fault_propensity: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapacityKg {
    pub deadlift: f64,
    pub squat: f64,
    pub swing: f64,
}

impl AthleteSpec {
    /// Capacity used for an exercise. Carries (total load in both hands) use 60 % of the
    /// deadlift capacity, a grip/trunk-limited estimate.
    pub fn capacity_for(&self, exercise: Exercise) -> f64 {
        match exercise {
            Exercise::Deadlift => self.capacity_kg.deadlift,
            Exercise::Squat => self.capacity_kg.squat,
            Exercise::KettlebellSwing => self.capacity_kg.swing,
            Exercise::Carry => 0.6 * self.capacity_kg.deadlift,
        }
    }

    /// load / capacity for an exercise (0 when the capacity is not positive).
    pub fn load_ratio(&self, exercise: Exercise, load_kg: f64) -> f64 {
        let c = self.capacity_for(exercise);
        if c > 0.0 { load_kg / c } else { 0.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetPlan {
    pub set_id: String,
    pub exercise: Exercise,
    pub load_kg: f64,
    /// repetitions; for a carry the number of walked lengths
    pub reps: u32,
    pub rest_after_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPlan {
    /// true time, unix micros
    pub start_us: i64,
    pub sets: Vec<SetPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimOptions {
    /// 50..=200 (values outside are clamped)
    pub rate_hz_thoracolumbar: f64,
    pub rate_hz_sacrum: f64,
    /// sacrum clock offset relative to the thoracolumbar clock
    pub clock_offset_us_sacrum: i64,
    /// m/s², per axis white noise
    pub accel_noise_std: f64,
    /// rad/s, per axis white noise
    pub gyro_noise_std: f64,
    /// rad/s, per axis constant bias
    pub gyro_bias_std: f64,
    /// per-sample drop probability; gap bursts come on top (see `gap_bursts_per_min`)
    pub drop_probability: f64,
    /// arbitrary 3D mounting rotations (identity otherwise)
    pub random_mounting: bool,
    /// stance at session start (>= 2 s by default)
    pub quiet_stance_s: f64,
    /// thoracolumbar device clock minus true time (µs)
    pub clock_offset_us_thoracolumbar: i64,
    /// gyro bias random walk, rad/s per √s
    pub gyro_bias_walk: f64,
    /// m/s², per axis constant accelerometer bias
    pub accel_bias_std: f64,
    /// mean number of gap bursts (50–300 ms of lost samples) per minute and sensor
    pub gap_bursts_per_min: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            rate_hz_thoracolumbar: 100.0,
            rate_hz_sacrum: 100.0,
            clock_offset_us_sacrum: 30_000,
            accel_noise_std: 0.02,
            gyro_noise_std: 0.0015,
            gyro_bias_std: 0.005,
            drop_probability: 0.002,
            random_mounting: true,
            quiet_stance_s: 3.0,
            clock_offset_us_thoracolumbar: 0,
            gyro_bias_walk: 1e-4,
            accel_bias_std: 0.02,
            gap_bursts_per_min: 0.3,
        }
    }
}

impl SimOptions {
    /// Noise-free, drop-free, identity-mounted options (physics tests, demos of the truth).
    pub fn ideal() -> Self {
        SimOptions {
            accel_noise_std: 0.0,
            gyro_noise_std: 0.0,
            gyro_bias_std: 0.0,
            drop_probability: 0.0,
            random_mounting: false,
            gyro_bias_walk: 0.0,
            accel_bias_std: 0.0,
            gap_bursts_per_min: 0.0,
            ..SimOptions::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSession {
    pub athlete: AthleteSpec,
    pub thoracolumbar: SensorRecording,
    pub sacrum: SensorRecording,
    pub truth: Truth,
}

impl SimSession {
    pub fn recording(&self, placement: Placement) -> &SensorRecording {
        match placement {
            Placement::Thoracolumbar => &self.thoracolumbar,
            Placement::Sacrum => &self.sacrum,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub sets: Vec<TruthSet>,
    /// ground-truth lumbar flexion (deg, positive = flexion, 0 = standing) at 100 Hz,
    /// time on the THORACOLUMBAR device clock
    pub lumbar: Vec<TruthAngle>,
    /// the athlete's standing trunk (T12) inclination, deg (forward positive)
    pub standing_trunk_deg: f64,
    /// the athlete's standing pelvic (S1) inclination, deg (forward positive)
    pub standing_pelvis_deg: f64,
    /// session start and end on the thoracolumbar clock
    pub start_us: i64,
    pub end_us: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TruthAngle {
    pub t_us: i64,
    pub lumbar_flexion_deg: f64,
    pub trunk_inclination_deg: f64,
    pub pelvis_inclination_deg: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthSet {
    pub set_id: String,
    pub exercise: Exercise,
    pub load_kg: f64,
    /// span of the set's activity: from the first movement (walk-out of a squat rack,
    /// kettlebell pick-up, carry pick-up, first deadlift descent) to the last (walk-in,
    /// bell parked, carry put down, last deadlift lockout). Pick-ups, parks and walks are
    /// not reps.
    pub start_us: i64,
    pub end_us: i64,
    /// empty for carries (see `bouts`)
    pub reps: Vec<TruthRep>,
    /// load / capacity for this athlete and exercise
    pub load_ratio: f64,
    /// carries only: the walked lengths (pick-up and put-down excluded)
    pub bouts: Vec<TruthBout>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthRep {
    /// 1-based in the set
    pub index: u32,
    /// thoracolumbar clock
    pub start_us: i64,
    pub bottom_us: i64,
    pub concentric_start_us: i64,
    pub end_us: i64,
    pub peak_lumbar_flexion_deg: f64,
    /// injected lumbar-led ascent (or swing hyperextension)
    pub extensor_fault: bool,
    /// injected tremor/sway on the eccentric
    pub unstable: bool,
    /// the generator's latent fatigue 0..1 at this rep
    pub fatigue: f64,
    /// most extended lumbar angle within the rep (deg; negative = extension past standing)
    pub min_lumbar_flexion_deg: f64,
    /// peak lumbar extension velocity (deg/s, positive) over the first 40 % of the concentric phase
    pub peak_lumbar_ext_velocity_early_dps: f64,
    /// injected lumbar lead over the pelvis at ascent onset (ms; negative = the pelvis leads)
    pub lumbar_lead_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthBout {
    pub start_us: i64,
    pub end_us: i64,
    pub unstable: bool,
}

/// Simulates one athlete's session. Deterministic in all arguments.
pub fn simulate(
    athlete: &AthleteSpec,
    plan: &SessionPlan,
    opts: &SimOptions,
    seed: u64,
) -> SimSession {
    let motion = motion::Motion::build(athlete, plan, opts.quiet_stance_s, seed);
    let off_t = opts.clock_offset_us_thoracolumbar;
    let off_s = off_t.saturating_add(opts.clock_offset_us_sacrum);
    let thoracolumbar = imu::synthesize(
        &motion,
        &format!("{}-t12", athlete.id),
        Placement::Thoracolumbar,
        opts.rate_hz_thoracolumbar,
        off_t,
        plan.start_us,
        opts,
        plan::mix(seed, 0x7431_3200),
    );
    let sacrum = imu::synthesize(
        &motion,
        &format!("{}-s1", athlete.id),
        Placement::Sacrum,
        opts.rate_hz_sacrum,
        off_s,
        plan.start_us,
        opts,
        plan::mix(seed, 0x5331_0000),
    );
    let truth = motion.truth(plan.start_us.saturating_add(off_t));
    SimSession {
        athlete: athlete.clone(),
        thoracolumbar,
        sacrum,
        truth,
    }
}

/// A whole gym: `athletes` random athletes, each with a random session plan of `minutes`
/// starting at `start_us`, simulated with `opts`. Athletes are simulated in parallel on
/// scoped threads; the result does not depend on the thread count.
pub fn simulate_gym(
    seed: u64,
    athletes: u32,
    minutes: f64,
    start_us: i64,
    opts: &SimOptions,
) -> Vec<SimSession> {
    let one = |i: u32| {
        let a = random_athlete(seed, i);
        let p = random_session_plan(
            plan::mix(seed, 0x1000_0000 + u64::from(i)),
            &a,
            minutes,
            start_us,
        );
        simulate(&a, &p, opts, plan::mix(seed, 0x2000_0000 + u64::from(i)))
    };
    let n = athletes as usize;
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, 8)
        .min(n.max(1));
    if threads <= 1 {
        return (0..athletes).map(one).collect();
    }
    let mut out: Vec<Option<SimSession>> = vec![None; n];
    std::thread::scope(|s| {
        for (c, chunk) in out.chunks_mut(n.div_ceil(threads)).enumerate() {
            let one = &one;
            let base = c * n.div_ceil(threads);
            s.spawn(move || {
                for (j, slot) in chunk.iter_mut().enumerate() {
                    *slot = Some(one((base + j) as u32));
                }
            });
        }
    });
    out.into_iter().flatten().collect()
}
