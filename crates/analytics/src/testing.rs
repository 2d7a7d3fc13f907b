//! A deterministic generator of a gym population's stored records, with the truth the
//! analytics must reproduce: who was planted as trending up, and exactly how many reps and
//! extensor events each athlete had each ISO week. For tests and benchmarks.
//!
//! Invariants:
//! - A pure function of its [`PopulationSpec`] (ChaCha8 from the seed).
//! - Every rep is valid for the store (ids parse, finite numbers, times in range); rep
//!   starts are unique per athlete and strictly increase; `load_kg` is a multiple of 2.5
//!   (exact in f32).
//! - The week's event count is decided first and then placed on that many of the week's
//!   reps, so `events * 100 / reps` per week is known exactly; a planted athlete's rate
//!   rises by [`PLANTED_RATE_STEP`] per 100 reps every week, a stable athlete's stays within
//!   ±1 of its base rate.
//! - Ids: gyms `gym-<i>`, athletes `a-<16 hex>` (seeded), sets
//!   `<athlete>-<session start>-s<i>`, sessions `<athlete>-<session start>`, reps
//!   `<athlete>-<start>` (like the processor's).

use std::collections::BTreeMap;

use liftguard_proto::v1::{Athlete, ExtensorEvidence, KinematicsChunk, RepRecord};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::time::{DAY_US, WEEK_US, week_start_us};

/// 2024-01-01T00:00:00Z, a Monday.
pub const DEFAULT_START_US: i64 = 1_704_067_200_000_000;
/// Weekly rise of a planted athlete's event rate, events per 100 reps.
pub const PLANTED_RATE_STEP: f64 = 3.0;
const SPORTS: [&str; 4] = ["weightlifting", "powerlifting", "crossfit", "rugby"];

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationSpec {
    pub seed: u64,
    pub gyms: u32,
    pub athletes_per_gym: u32,
    pub weeks: u32,
    /// A Monday 00:00 UTC.
    pub start_us: i64,
    /// Sessions per athlete and week: uniform in this range.
    pub sessions_per_week: (u32, u32),
    /// Sets per session: uniform in this range.
    pub sets_per_session: (u32, u32),
    /// Reps per set: uniform in this range.
    pub reps_per_set: (u32, u32),
    /// Every `planted_every`-th athlete (by index) is planted as trending up (0: none).
    pub planted_every: u32,
}

impl Default for PopulationSpec {
    fn default() -> Self {
        Self {
            seed: 7,
            gyms: 2,
            athletes_per_gym: 12,
            weeks: 8,
            start_us: DEFAULT_START_US,
            sessions_per_week: (2, 3),
            sets_per_session: (3, 5),
            reps_per_set: (5, 8),
            planted_every: 4,
        }
    }
}

impl PopulationSpec {
    /// A year of a 500-athlete gym (the performance target's data): 52 weeks, 2–4
    /// sessions a week, 4–6 sets of 5–8 reps (~3.4 M reps).
    pub fn year_of_500() -> Self {
        Self {
            seed: 500,
            gyms: 1,
            athletes_per_gym: 500,
            weeks: 52,
            start_us: DEFAULT_START_US,
            sessions_per_week: (2, 4),
            sets_per_session: (4, 6),
            reps_per_set: (5, 8),
            planted_every: 10,
        }
    }
}

/// One athlete-week as generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeekTruth {
    pub reps: u32,
    pub events: u32,
}

/// The records and the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    pub gyms: Vec<String>,
    /// Enrolled athletes with their ids and cohort fields, by id.
    pub athletes: Vec<Athlete>,
    /// Every rep, by athlete then start.
    pub reps: Vec<RepRecord>,
    /// Athletes planted as trending up.
    pub planted: Vec<String>,
    /// (athlete, week start) → counts.
    pub weeks: BTreeMap<(String, i64), WeekTruth>,
}

fn range(rng: &mut ChaCha8Rng, (lo, hi): (u32, u32)) -> u32 {
    rng.random_range(lo..=hi.max(lo))
}

/// Generates the population of `spec`.
pub fn generate(spec: &PopulationSpec) -> Population {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let gyms: Vec<String> = (0..spec.gyms).map(|g| format!("gym-{g}")).collect();
    let mut athletes = Vec::new();
    let mut reps = Vec::new();
    let mut planted = Vec::new();
    let mut weeks = BTreeMap::new();
    let mut index = 0u32;
    for gym in &gyms {
        for k in 0..spec.athletes_per_gym {
            let id = format!("a-{:016x}", rng.random::<u64>());
            let birth_year = if k % 11 == 10 {
                0
            } else {
                rng.random_range(1960..=2008)
            };
            let athlete = Athlete {
                athlete_id: id.clone(),
                gym_id: gym.clone(),
                external_ref: format!("{gym}-m{k:04}"),
                display_name: format!("Athlete {k} of {gym}"),
                height_m: 1.6 + 0.01 * f32::from(rng.random_range(0u8..40)),
                mass_kg: 55.0 + f32::from(rng.random_range(0u8..50)),
                capacity_deadlift_kg: 100.0 + 2.5 * f32::from(rng.random_range(0u8..60)),
                capacity_squat_kg: 80.0 + 2.5 * f32::from(rng.random_range(0u8..50)),
                capacity_swing_kg: 16.0 + 4.0 * f32::from(rng.random_range(0u8..6)),
                birth_year,
                sex: if rng.random_bool(0.5) { "F" } else { "m" }.to_owned(),
                training_age_years: rng.random_range(0..=14),
                sport: SPORTS[rng.random_range(0..SPORTS.len())].to_owned(),
            };
            let is_planted = spec.planted_every > 0 && index.is_multiple_of(spec.planted_every);
            if is_planted {
                planted.push(id.clone());
            }
            let base_rate: f64 = rng.random_range(2.0..12.0);
            for w in 0..spec.weeks {
                let week = spec.start_us + i64::from(w) * WEEK_US;
                let sessions = range(&mut rng, spec.sessions_per_week);
                // Distinct training days, in order.
                let mut days: Vec<i64> = (0..7).collect();
                days.shuffle(&mut rng);
                let mut days: Vec<i64> = days.into_iter().take(sessions as usize).collect();
                days.sort_unstable();
                let mut week_reps: Vec<RepRecord> = Vec::new();
                for day in days {
                    let session_start =
                        week + day * DAY_US + rng.random_range(6..20) * 3_600_000_000;
                    let session_id = format!("{id}-{session_start}");
                    let mut t = session_start;
                    for s in 0..range(&mut rng, spec.sets_per_session) {
                        let exercise = rng.random_range(1..=4);
                        let load_kg = 2.5 * f32::from(rng.random_range(8u8..80));
                        let set_id = format!("{session_id}-s{s}");
                        for r in 0..range(&mut rng, spec.reps_per_set) {
                            let dur = rng.random_range(2_000_000..4_000_000);
                            week_reps.push(rep(
                                &mut rng,
                                gym,
                                &id,
                                &session_id,
                                &set_id,
                                r,
                                exercise,
                                load_kg,
                                t,
                                dur,
                            ));
                            t += dur + rng.random_range(500_000..1_500_000);
                        }
                        t += rng.random_range(60..240) * 1_000_000;
                    }
                }
                // The week's events: a planned rate, placed on that many reps.
                let planned = if is_planted {
                    base_rate + PLANTED_RATE_STEP * f64::from(w)
                } else {
                    base_rate + rng.random_range(-1.0..1.0)
                };
                let n = week_reps.len();
                let events = ((planned / 100.0 * n as f64).round() as usize).min(n);
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng);
                for &i in order.iter().take(events) {
                    let r = &mut week_reps[i];
                    r.extensor_event = true;
                    r.evidence = Some(ExtensorEvidence {
                        peak_lumbar_ext_velocity_dps: rng.random_range(60.0..200.0),
                        lumbar_share_duration_ms: rng.random_range(80.0..400.0),
                        max_lumbar_share: rng.random_range(0.55..1.0),
                        ldi: rng.random_range(0.5..1.0),
                        onset_lag_ms: rng.random_range(-150.0..-10.0),
                        bottom_lumbar_flexion_deg: r.peak_lumbar_flexion_deg,
                        peak_load_moment_nm: r.peak_load_moment_nm,
                        top_hyperextension_deg: rng.random_range(-8.0..0.0),
                    });
                }
                weeks.insert(
                    (id.clone(), week_start_us(week)),
                    WeekTruth {
                        reps: n as u32,
                        events: events as u32,
                    },
                );
                reps.extend(week_reps);
            }
            athletes.push(athlete);
            index += 1;
        }
    }
    athletes.sort_by(|a, b| a.athlete_id.cmp(&b.athlete_id));
    reps.sort_by(|a, b| {
        a.athlete_id
            .cmp(&b.athlete_id)
            .then(a.start_us.cmp(&b.start_us))
    });
    planted.sort();
    Population {
        gyms,
        athletes,
        reps,
        planted,
        weeks,
    }
}

#[allow(clippy::too_many_arguments)]
fn rep(
    rng: &mut ChaCha8Rng,
    gym: &str,
    athlete: &str,
    session_id: &str,
    set_id: &str,
    index: u32,
    exercise: i32,
    load_kg: f32,
    start_us: i64,
    dur_us: i64,
) -> RepRecord {
    let fatigue: f32 = rng.random_range(0.0..100.0);
    RepRecord {
        rep_id: format!("{athlete}-{start_us}"),
        gym_id: gym.to_owned(),
        athlete_id: athlete.to_owned(),
        set_id: set_id.to_owned(),
        rep_index: index + 1,
        exercise,
        exercise_inferred: rng.random_bool(0.1),
        load_kg,
        start_us,
        end_us: start_us + dur_us,
        bottom_us: start_us + dur_us / 2,
        concentric_start_us: start_us + dur_us / 2 + 100_000,
        eccentric_s: (dur_us / 2) as f32 / 1e6,
        concentric_s: (dur_us / 2) as f32 / 1e6,
        peak_lumbar_flexion_deg: rng.random_range(5.0..55.0),
        peak_trunk_inclination_deg: rng.random_range(20.0..85.0),
        ldi: rng.random_range(0.0..1.0),
        peak_load_moment_nm: rng.random_range(80.0..380.0),
        extensor_event: false,
        evidence: None,
        fatigue_score: fatigue,
        fatigue_dose: fatigue * 0.6,
        fatigue_observed: fatigue * 0.4,
        stability_deficit: rng.random_range(0.0..4.0),
        damage: rng.random_range(1e-6..1e-3),
        cumulative_damage: 0.0,
        session_id: session_id.to_owned(),
        clock_skew_flagged: false,
        model_version: 1,
        ..Default::default()
    }
}

/// A 25 Hz lumbar flexion trace of `n` points for an athlete, starting at `first_time_us`.
pub fn trace_chunk(gym: &str, athlete: &str, first_time_us: i64, n: usize) -> KinematicsChunk {
    KinematicsChunk {
        gym_id: gym.to_owned(),
        athlete_id: athlete.to_owned(),
        first_time_us,
        rate_hz: 25.0,
        lumbar_flexion_deg: (0..n).map(|i| 20.0 * ((i as f32) / 12.5).sin()).collect(),
        trunk_inclination_deg: Vec::new(),
        pelvis_inclination_deg: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_consistent() {
        let spec = PopulationSpec {
            athletes_per_gym: 3,
            weeks: 3,
            ..PopulationSpec::default()
        };
        let a = generate(&spec);
        assert_eq!(a, generate(&spec));
        assert_eq!(a.athletes.len(), 6);
        let total: u32 = a.weeks.values().map(|w| w.reps).sum();
        assert_eq!(total as usize, a.reps.len());
        let events: u32 = a.weeks.values().map(|w| w.events).sum();
        assert_eq!(
            events as usize,
            a.reps.iter().filter(|r| r.extensor_event).count()
        );
        for w in a.reps.windows(2) {
            if w[0].athlete_id == w[1].athlete_id {
                assert!(w[0].end_us < w[1].start_us);
            }
        }
        assert!(!a.planted.is_empty());
    }
}
