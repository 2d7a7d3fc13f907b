//! Deterministic synthetic gym data for benchmarks and tests: a gym's athletes (with the
//! enrollment fields population analytics group by) and their reps over weeks, plus
//! kinematics chunks for write benchmarks.
//!
//! Invariants:
//! - Pure functions of the [`GymSpec`] (seed included): the same spec gives the same
//!   athletes and the same reps, on every machine. Each (athlete, week) draws from its own
//!   seeded generator, so a week can be generated alone ([`week_of_reps`]) and memory stays
//!   bounded (one week of the gym at a time).
//! - Plausible, not physiological truth: ~`sessions_per_week` sessions per athlete and week
//!   (some weeks skipped), one or two monitored lifts per session, 3–5 sets of 5–10 reps,
//!   extensor-event rates that differ by athlete (1–40 %), rise with fatigue within a
//!   session, and rise over the period for ~15 % of the athletes ("trending up"); fatigue
//!   that rises with reps and falls with rest; LiFFT damage from the load moment normalised
//!   to the athlete's capacity. Every value the store validates is valid.

use liftguard_proto::v1::{Athlete, ExtensorEvidence, KinematicsChunk, RepRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// 2024-01-01T00:00:00Z, a Monday (so weeks line up with the store's Monday weeks).
pub const YEAR_START_US: i64 = 1_704_067_200_000_000;
const SECOND: i64 = 1_000_000;
const DAY: i64 = 86_400 * SECOND;
const WEEK: i64 = 7 * DAY;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GymSpec {
    pub gym_id: String,
    pub athletes: usize,
    /// Start of week 0 (µs); a Monday 00:00 UTC keeps weeks aligned with the rollups.
    pub start_us: i64,
    pub weeks: u32,
    /// Mean sessions per athlete and week (athletes vary around it).
    pub sessions_per_week: f64,
    pub seed: u64,
}

impl GymSpec {
    /// The benchmark gym: 500 athletes, 52 weeks of 2024, ~3 sessions a week (≈ 3.5 M reps).
    pub fn year_of_500() -> Self {
        GymSpec {
            gym_id: "synth-gym".into(),
            athletes: 500,
            start_us: YEAR_START_US,
            weeks: 52,
            sessions_per_week: 3.0,
            seed: 500,
        }
    }

    /// A small gym for tests: `athletes` athletes over `weeks` weeks.
    pub fn small(gym_id: &str, athletes: usize, weeks: u32, seed: u64) -> Self {
        GymSpec {
            gym_id: gym_id.into(),
            athletes,
            start_us: YEAR_START_US,
            weeks,
            sessions_per_week: 3.0,
            seed,
        }
    }
}

/// One generated athlete: enrollment fields plus the traits that drive their reps.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthAthlete {
    pub index: usize,
    /// A deterministic id (`a-` + 16 hex) for data written without enrollment. Enrolling
    /// through the store assigns other ids: pass those to [`week_of_reps`] instead.
    pub athlete_id: String,
    /// `external_ref` = `synth-NNNN`, cohort fields filled; `athlete_id` empty.
    pub profile: Athlete,
    /// Probability of an extensor event on a fresh, moderate rep.
    pub base_event_rate: f64,
    /// Multiplier of the event rate reached at the end of the period (1.0: flat).
    pub event_trend: f64,
    /// Typical stability deficit.
    pub stability_level: f64,
    /// Mean sessions per week.
    pub frequency: f64,
    /// Usual session start, hours after midnight UTC.
    pub start_hour: f64,
}

fn mix(a: u64, b: u64, c: u64) -> u64 {
    // SplitMix64 over the three words: independent streams per (seed, athlete, week).
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(c.wrapping_mul(0x94D0_49BB_1331_11EB))
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller; u1 in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

const SPORTS: [&str; 5] = [
    "weightlifting",
    "powerlifting",
    "crossfit",
    "rugby",
    "general",
];

/// The gym's athletes, in index order.
pub fn athletes(spec: &GymSpec) -> Vec<SynthAthlete> {
    (0..spec.athletes)
        .map(|i| {
            let mut rng = StdRng::seed_from_u64(mix(spec.seed, i as u64, u64::MAX));
            let sex = if rng.random_bool(0.45) { "f" } else { "m" };
            let (h, m) = if sex == "f" {
                (1.66, 66.0)
            } else {
                (1.79, 84.0)
            };
            let height = (h + 0.07 * normal(&mut rng)).clamp(1.45, 2.10);
            let mass = (m + 11.0 * normal(&mut rng)).clamp(45.0, 150.0);
            let training_age = rng.random_range(0..=15);
            let strength =
                mass * (1.1 + 0.08 * f64::from(training_age)) * rng.random_range(0.8..1.2);
            let trending = rng.random_bool(0.15);
            SynthAthlete {
                index: i,
                athlete_id: format!("a-{:016x}", mix(spec.seed, i as u64, 7)),
                profile: Athlete {
                    athlete_id: String::new(),
                    gym_id: spec.gym_id.clone(),
                    external_ref: format!("synth-{i:04}"),
                    display_name: format!("Athlete {i}"),
                    height_m: height as f32,
                    mass_kg: mass as f32,
                    capacity_deadlift_kg: (strength * 1.9).round() as f32,
                    capacity_squat_kg: (strength * 1.5).round() as f32,
                    capacity_swing_kg: (mass * 0.35 / 4.0).round() as f32 * 4.0,
                    birth_year: rng.random_range(1965..=2006),
                    sex: sex.into(),
                    training_age_years: training_age,
                    sport: SPORTS[rng.random_range(0..SPORTS.len())].into(),
                },
                base_event_rate: (0.08 * (0.6 * normal(&mut rng)).exp()).clamp(0.01, 0.40),
                event_trend: if trending {
                    rng.random_range(1.8..3.0)
                } else {
                    rng.random_range(0.8..1.1)
                },
                stability_level: rng.random_range(0.3..1.5),
                frequency: (spec.sessions_per_week + 0.6 * normal(&mut rng)).clamp(1.0, 5.0),
                start_hour: rng.random_range(6.0..19.5),
            }
        })
        .collect()
}

/// Exercise codes (the proto enum): deadlift, squat, kettlebell swing, carry.
const DEADLIFT: i32 = 1;
const SQUAT: i32 = 2;
const SWING: i32 = 3;
const CARRY: i32 = 4;

/// Every rep of week `week` (0-based) for every athlete, athlete by athlete, in time order
/// per athlete. `ids[i]` is the athlete id to write for athlete `i` (the synthetic ids of
/// [`athletes`], or the ids the store assigned at enrollment).
pub fn week_of_reps(
    spec: &GymSpec,
    athletes: &[SynthAthlete],
    ids: &[String],
    week: u32,
) -> Vec<RepRecord> {
    let mut out = Vec::new();
    for (a, id) in athletes.iter().zip(ids) {
        athlete_week(spec, a, id, week, &mut out);
    }
    out
}

/// All weeks, one `Vec` per week (see [`week_of_reps`]).
pub fn reps_by_week<'a>(
    spec: &'a GymSpec,
    athletes: &'a [SynthAthlete],
    ids: &'a [String],
) -> impl Iterator<Item = Vec<RepRecord>> + 'a {
    (0..spec.weeks).map(move |w| week_of_reps(spec, athletes, ids, w))
}

fn athlete_week(spec: &GymSpec, a: &SynthAthlete, id: &str, week: u32, out: &mut Vec<RepRecord>) {
    let mut rng = StdRng::seed_from_u64(mix(spec.seed, a.index as u64, u64::from(week)));
    if rng.random_bool(0.06) {
        return; // a week off
    }
    let progress = if spec.weeks > 1 {
        f64::from(week) / f64::from(spec.weeks - 1)
    } else {
        0.0
    };
    // Event-rate multiplier: trending athletes rise over the second half of the period.
    let trend = 1.0 + (a.event_trend - 1.0) * ((progress - 0.4) / 0.6).clamp(0.0, 1.0);
    let whole = a.frequency.floor();
    let sessions = (whole as usize + usize::from(rng.random_bool(a.frequency - whole))).min(6);
    let mut days: Vec<i64> = (0..7).collect();
    for i in 0..sessions {
        let j = rng.random_range(i..7);
        days.swap(i, j);
    }
    let mut days = days[..sessions].to_vec();
    days.sort_unstable();
    let week_start = spec.start_us + i64::from(week) * WEEK;
    for day in days {
        let hour = (a.start_hour + 0.75 * normal(&mut rng)).clamp(5.0, 21.0);
        let start = week_start + day * DAY + (hour * 3600.0 * 1e6) as i64;
        session(a, id, &spec.gym_id, start, trend, &mut rng, out);
    }
}

fn session(
    a: &SynthAthlete,
    id: &str,
    gym: &str,
    start_us: i64,
    trend: f64,
    rng: &mut StdRng,
    out: &mut Vec<RepRecord>,
) {
    let p = &a.profile;
    let mass = f64::from(p.mass_kg);
    let height = f64::from(p.height_m);
    let main = if rng.random_bool(0.55) {
        DEADLIFT
    } else {
        SQUAT
    };
    let mut lifts = vec![main];
    if rng.random_bool(0.6) {
        lifts.push(if rng.random_bool(0.6) { SWING } else { CARRY });
    }
    let session_id = format!("{id}-{start_us}");
    let shoulder = 0.30 * height; // L5/S1 to shoulder
    // The moment at capacity, for normalising (LiFFT overflows on gym loads).
    let cap_moment =
        (f64::from(p.capacity_deadlift_kg) * 9.81 * shoulder + 0.5 * mass * 9.81 * 0.2) * 0.8;
    let mut t = start_us;
    let mut dose = 0.0f64;
    let mut last_t = start_us;
    let mut cumulative = 0.0f64;
    for (li, &ex) in lifts.iter().enumerate() {
        if li > 0 {
            t += rng.random_range(180..420) * SECOND;
        }
        let load = match ex {
            DEADLIFT => f64::from(p.capacity_deadlift_kg) * rng.random_range(0.55..0.85),
            SQUAT => f64::from(p.capacity_squat_kg) * rng.random_range(0.55..0.85),
            SWING => f64::from(p.capacity_swing_kg),
            _ => (mass * rng.random_range(0.3..0.6)).round(),
        };
        let load = ((load / 2.5).round() * 2.5).max(2.5);
        let sets = rng.random_range(3..=5);
        for s in 0..sets {
            if s > 0 {
                t += rng.random_range(90..240) * SECOND;
            }
            let set_id = format!("{id}-set-{t}");
            let reps = rng.random_range(5..=10u32);
            for r in 0..reps {
                // Recovery since the last rep (first-order, tau 5000 s).
                dose *= (-((t - last_t) as f64 / 1e6) / 5000.0).exp();
                let duration = rng.random_range(1.8..3.4);
                let incl = rng.random_range(35.0f64..70.0);
                let moment =
                    (load * 9.81 * shoulder + 0.5 * mass * 9.81 * 0.2) * incl.to_radians().sin();
                let relative = (moment / cap_moment).clamp(0.05, 1.5);
                dose += relative * duration;
                let fatigue = 100.0 * (1.0 - (-dose / 60.0).exp());
                let p_event =
                    (a.base_event_rate * trend * (0.5 + fatigue / 80.0) * (0.6 + relative))
                        .clamp(0.0, 0.9);
                let event = rng.random_bool(p_event);
                let ecc = rng.random_range(0.6..1.6);
                let con = duration - ecc - 0.2;
                let stability =
                    (a.stability_level * (0.6 + fatigue / 120.0) * (0.35 * normal(rng)).exp())
                        .min(20.0);
                // LiFFT on the capacity-normalised moment (100 N·m at capacity).
                let plm = 100.0 * relative;
                let damage = (0.038 * plm + 0.32).exp() / 1_902_416.0;
                cumulative += damage;
                let flex =
                    (22.0 + 10.0 * relative + fatigue / 10.0 + 5.0 * normal(rng)).clamp(0.0, 80.0);
                let ldi =
                    (0.45 + 0.1 * normal(rng) + if event { 0.2 } else { 0.0 }).clamp(0.05, 0.98);
                let bottom = t + (ecc * 1e6) as i64;
                out.push(RepRecord {
                    rep_id: format!("{id}-{t}"),
                    gym_id: gym.into(),
                    athlete_id: id.into(),
                    set_id: set_id.clone(),
                    rep_index: r,
                    exercise: ex,
                    exercise_inferred: rng.random_bool(0.1),
                    load_kg: load as f32,
                    start_us: t,
                    end_us: t + (duration * 1e6) as i64,
                    bottom_us: bottom,
                    concentric_start_us: bottom + 200_000,
                    eccentric_s: ecc as f32,
                    concentric_s: con as f32,
                    peak_lumbar_flexion_deg: flex as f32,
                    peak_trunk_inclination_deg: incl as f32,
                    ldi: ldi as f32,
                    peak_load_moment_nm: moment as f32,
                    extensor_event: event,
                    evidence: event.then(|| ExtensorEvidence {
                        peak_lumbar_ext_velocity_dps: rng.random_range(60.0..220.0),
                        lumbar_share_duration_ms: rng.random_range(100.0..400.0),
                        max_lumbar_share: rng.random_range(0.6..1.0),
                        ldi: ldi as f32,
                        onset_lag_ms: rng.random_range(-150.0..-50.0),
                        bottom_lumbar_flexion_deg: flex as f32,
                        peak_load_moment_nm: moment as f32,
                        top_hyperextension_deg: if ex == SWING {
                            rng.random_range(-12.0..-5.0)
                        } else {
                            0.0
                        },
                    }),
                    fatigue_score: fatigue as f32,
                    fatigue_dose: dose as f32,
                    fatigue_observed: (fatigue * rng.random_range(0.7..1.3)).min(100.0) as f32,
                    stability_deficit: stability as f32,
                    damage,
                    cumulative_damage: cumulative,
                    session_id: session_id.clone(),
                    clock_skew_flagged: rng.random_bool(0.002),
                    model_version: 1,
                    source_received_us: 0,
                });
                last_t = t;
                t += ((duration + rng.random_range(0.8..1.6)) * 1e6) as i64;
            }
        }
    }
}

/// `seconds` one-second chunks (25 points at 25 Hz) per athlete from `start_us`, athlete by
/// athlete in time order, with trunk and pelvis angles: what the processor emits.
pub fn kinematics_chunks(
    gym: &str,
    athlete_ids: &[String],
    start_us: i64,
    seconds: usize,
    seed: u64,
) -> Vec<KinematicsChunk> {
    let mut out = Vec::with_capacity(athlete_ids.len() * seconds);
    for (i, id) in athlete_ids.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(mix(seed, i as u64, 0x006b_696e));
        let phase = rng.random_range(0.0..std::f64::consts::TAU);
        for s in 0..seconds {
            let first = start_us + s as i64 * SECOND;
            let mut lumbar = Vec::with_capacity(25);
            let mut trunk = Vec::with_capacity(25);
            let mut pelvis = Vec::with_capacity(25);
            for k in 0..25 {
                let x = phase + (s * 25 + k) as f64 * std::f64::consts::TAU / 75.0;
                let noise = rng.random_range(-0.5..0.5);
                lumbar.push((20.0 + 18.0 * x.sin() + noise) as f32);
                trunk.push((40.0 + 30.0 * x.sin() + noise) as f32);
                pelvis.push((20.0 + 12.0 * x.sin() + noise) as f32);
            }
            out.push(KinematicsChunk {
                gym_id: gym.into(),
                athlete_id: id.clone(),
                first_time_us: first,
                rate_hz: 25.0,
                lumbar_flexion_deg: lumbar,
                trunk_inclination_deg: trunk,
                pelvis_inclination_deg: pelvis,
            });
        }
    }
    out
}

/// A generated gym written into a store.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedGym {
    pub spec: GymSpec,
    /// Athlete ids as enrolled, in athlete index order.
    pub athlete_ids: Vec<String>,
    pub reps: u64,
}

/// Creates the gym, enrolls its athletes (the store assigns their ids) and writes every
/// week of reps through `Store::upsert_reps` in batches of `batch`, then refreshes the
/// rollups. Deterministic up to the enrolled ids.
pub async fn load_gym(
    store: &crate::Store,
    spec: &GymSpec,
    batch: usize,
) -> Result<LoadedGym, crate::StoreError> {
    store.create_gym(&spec.gym_id, &spec.gym_id).await?;
    let gym = liftguard_model::GymId::parse(spec.gym_id.as_str())
        .map_err(|e| crate::StoreError::invalid("gym_id", e.to_string()))?;
    let athletes = athletes(spec);
    let mut ids = Vec::with_capacity(athletes.len());
    for a in &athletes {
        ids.push(store.enroll_athlete(&gym, &a.profile).await?.athlete_id);
    }
    let mut reps = 0u64;
    for week in reps_by_week(spec, &athletes, &ids) {
        for b in week.chunks(batch.max(1)) {
            store.upsert_reps(b).await?;
            reps += b.len() as u64;
        }
    }
    store.refresh_rollups().await?;
    Ok(LoadedGym {
        spec: spec.clone(),
        athlete_ids: ids,
        reps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_plausible() {
        let spec = GymSpec::small("synth-t", 20, 4, 9);
        let a = athletes(&spec);
        assert_eq!(a, athletes(&spec));
        let ids: Vec<String> = a.iter().map(|x| x.athlete_id.clone()).collect();
        let w1 = week_of_reps(&spec, &a, &ids, 1);
        assert_eq!(w1, week_of_reps(&spec, &a, &ids, 1));
        assert_ne!(w1, week_of_reps(&spec, &a, &ids, 2));
        let all: Vec<RepRecord> = reps_by_week(&spec, &a, &ids).flatten().collect();
        // ~3 sessions x ~45 reps per athlete-week.
        let per = all.len() as f64 / (20.0 * 4.0);
        assert!((60.0..220.0).contains(&per), "{per} reps per athlete-week");
        let events = all.iter().filter(|r| r.extensor_event).count() as f64;
        let rate = events / all.len() as f64;
        assert!((0.03..0.35).contains(&rate), "event rate {rate}");
        let mut keys: Vec<(&str, i64)> = all
            .iter()
            .map(|r| (r.athlete_id.as_str(), r.start_us))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all.len(), "natural keys are unique");
        for r in &all {
            crate::common::validate_rep(r).unwrap();
            assert!(r.start_us >= spec.start_us && r.start_us < spec.start_us + 4 * WEEK);
        }
    }

    #[test]
    fn kinematics_are_whole_seconds_at_25_hz() {
        let ids = vec!["a-0000000000000001".to_string()];
        let c = kinematics_chunks("synth-t", &ids, YEAR_START_US, 3, 1);
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].first_time_us - c[0].first_time_us, SECOND);
        assert!(c.iter().all(|c| c.lumbar_flexion_deg.len() == 25));
        crate::common::expand_kinematics(&c).unwrap();
    }
}
