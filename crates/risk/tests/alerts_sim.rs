//! In-session alerts against the simulator's ground truth: simulated athletes (liftguard-sim,
//! with injected lumbar-led ascents and unstable heavy eccentrics) run through the
//! biomechanics pipeline (liftguard-biomech), the reps fed to the [`AlertEngine`] as the
//! processor would.
//!
//! Seeds: `random_athlete(seed, index)` / `random_session_plan(seed, …)` for the athletes
//! listed in `SESSIONS`; fatigue plans use `random_athlete(60 + i, i)`, i = 0..3.
//!
//! Reproduce: `cargo nextest run -p liftguard-risk --test alerts_sim --no-capture`

mod common;

use common::*;
use liftguard_model::Exercise;
use liftguard_risk::{Alert, AlertConfig, AlertEngine, AlertKind, RepFacts};
use liftguard_sim::{SessionPlan, SetPlan, SimOptions};

/// (seed, athlete index, fault propensity override).
const SESSIONS: [(u64, u32, Option<f64>); 6] = [
    (21, 0, None),
    (22, 1, None),
    (23, 2, Some(2.5)),
    (24, 3, Some(3.0)),
    (25, 4, None),
    (26, 5, Some(0.3)),
];
const MINUTES: f64 = 25.0;

fn feed(cfg: &AlertConfig, facts: &[RepFacts], session_id: &str) -> Vec<Alert> {
    let mut e = AlertEngine::new();
    let mut out = Vec::new();
    for r in facts {
        e.on_rep(cfg, r, &mut out);
    }
    let end = facts.last().map_or(0, |r| r.end_us + 1);
    e.on_session_end(cfg, session_id, end, &mut out);
    out
}

#[test]
fn rules_follow_ground_truth() {
    // Cooldowns off: every set is judged on its own (dedupe still one per kind per set).
    let mut cfg = AlertConfig::default();
    cfg.cooldown_s.extensor_events = 0.0;
    cfg.cooldown_s.stability = 0.0;
    cfg.cooldown_s.fatigue = 0.0;
    let heavy_fraction = cfg.stability.heavy_fraction;

    let (mut many, mut many_fired, mut clean, mut clean_fired) = (0, 0, 0, 0);
    let (mut single, mut single_fired) = (0, 0);
    let (mut unstable_sets, mut unstable_fired, mut stable_heavy, mut stable_heavy_fired) =
        (0, 0, 0, 0);
    let (mut stable_sets_fired, mut high_share, mut high_share_fired, mut low_share, mut low_fired) =
        (0, 0, 0, 0, 0);
    let mut default_alerts = [0usize; 5];
    for (seed, index, fp) in SESSIONS {
        let (a, sim, reps) = session_facts(seed, index, fp, MINUTES);
        let session_id = format!("{}-{}", a.id, START_US);
        let facts = to_facts(&reps, &a, &session_id, 0);
        let alerts = feed(&cfg, &facts, &session_id);
        let fired = |kind: AlertKind, set: &str| {
            alerts
                .iter()
                .any(|x| x.kind == kind && x.set_id.as_deref() == Some(set))
        };
        for set in &sim.truth.sets {
            if set.reps.is_empty() {
                continue;
            }
            let n = set.reps.len();
            let faults = set.reps.iter().filter(|r| r.extensor_fault).count();
            let unstable = set.reps.iter().filter(|r| r.unstable).count();
            let detected = facts
                .iter()
                .filter(|r| r.set_id == set.set_id && r.extensor_event)
                .count();
            let ext = fired(AlertKind::ExtensorEvents, &set.set_id);
            let stab = fired(AlertKind::Stability, &set.set_id);
            eprintln!(
                "{} {:?} ratio {:.2}: reps {n} faults {faults} (detected {detected}) unstable \
                 {unstable} → extensor {ext} stability {stab}",
                set.set_id, set.exercise, set.load_ratio
            );
            if faults >= 3 && faults as f64 >= 0.4 * n as f64 {
                many += 1;
                many_fired += usize::from(ext);
            }
            if faults == 0 {
                clean += 1;
                clean_fired += usize::from(ext);
            }
            if faults == 1 {
                single += 1;
                single_fired += usize::from(ext);
                assert!(
                    !ext || detected >= 2,
                    "{}: fired on one true event",
                    set.set_id
                );
            }
            let heavy = set.load_ratio >= heavy_fraction;
            if heavy && unstable >= 3 {
                unstable_sets += 1;
                unstable_fired += usize::from(stab);
            }
            if heavy && unstable == 0 {
                stable_heavy += 1;
                stable_heavy_fired += usize::from(stab);
            }
            if unstable == 0 {
                stable_sets_fired += usize::from(stab);
            }
        }
        let n = sim.truth.sets.iter().map(|s| s.reps.len()).sum::<usize>();
        let faults = sim
            .truth
            .sets
            .iter()
            .flat_map(|s| &s.reps)
            .filter(|r| r.extensor_fault)
            .count();
        let share = faults as f64 / n.max(1) as f64;
        let session_alert = alerts
            .iter()
            .any(|x| x.kind == AlertKind::SessionEventShare);
        eprintln!(
            "session {session_id}: truth share {share:.2} ({faults}/{n}) → session alert {session_alert}"
        );
        if share >= 0.25 {
            high_share += 1;
            high_share_fired += usize::from(session_alert);
        }
        if share < 0.15 {
            low_share += 1;
            low_fired += usize::from(session_alert);
        }
        for x in feed(&AlertConfig::default(), &facts, &session_id) {
            default_alerts[x.kind.to_proto() as usize - 1] += 1;
        }
    }
    eprintln!(
        "EXTENSOR: many-event sets {many_fired}/{many} fired; single-event sets {single_fired}/{single}; \
         clean sets {clean_fired}/{clean}"
    );
    eprintln!(
        "STABILITY: heavy sets with ≥3 unstable reps {unstable_fired}/{unstable_sets} fired; \
         stable heavy sets {stable_heavy_fired}/{stable_heavy}"
    );
    eprintln!(
        "SESSION SHARE (rule: > 0.2): sessions with truth share ≥ 0.25 {high_share_fired}/{high_share}; \
         < 0.15 {low_fired}/{low_share}"
    );
    eprintln!(
        "with default cooldowns, alerts by kind (extensor, fatigue, stability, session share, \
         flare-up): {default_alerts:?} over {} sessions",
        SESSIONS.len()
    );
    assert!(many >= 5, "scenario must contain many-event sets ({many})");
    assert_eq!(many_fired, many, "every set with many true events fires");
    assert!(clean >= 20, "{clean}");
    assert_eq!(clean_fired, 0, "a set without true events never fires");
    assert!(unstable_sets >= 4, "{unstable_sets}");
    assert!(
        unstable_fired * 10 >= unstable_sets * 9,
        "recall {unstable_fired}/{unstable_sets}"
    );
    assert_eq!(
        stable_sets_fired, 0,
        "a set without unstable reps never fires"
    );
    assert!(high_share >= 1 && low_share >= 1);
    assert_eq!(high_share_fired, high_share);
    assert_eq!(low_fired, 0);
}

fn plan(ex: Exercise, load: f64, reps: u32, sets: u32) -> SessionPlan {
    SessionPlan {
        start_us: START_US,
        sets: (0..sets)
            .map(|i| SetPlan {
                set_id: format!("s{i}"),
                exercise: ex,
                load_kg: load,
                reps,
                rest_after_s: 120.0,
            })
            .collect(),
    }
}

#[test]
fn fatigue_alert_fires_late_in_long_heavy_sets_and_not_in_short_light_ones() {
    let cfg = AlertConfig::default();
    for i in 0..3u32 {
        let a = liftguard_sim::random_athlete(60 + u64::from(i), i);
        let cap = a.capacity_for(Exercise::Deadlift);
        for (heavy, ratio, reps, sets) in [(true, 0.8, 12, 5), (false, 0.45, 5, 3)] {
            let load = (ratio * cap / 2.5).round() * 2.5;
            let p = plan(Exercise::Deadlift, load, reps, sets);
            let sim = liftguard_sim::simulate(&a, &p, &SimOptions::default(), 700 + u64::from(i));
            let reps = run_pipeline(&sim);
            let session_id = format!("{}-{}", a.id, START_US);
            let facts = to_facts(&reps, &a, &session_id, 0);
            let fatigue: Vec<Alert> = feed(&cfg, &facts, &session_id)
                .into_iter()
                .filter(|x| x.kind == AlertKind::Fatigue)
                .collect();
            let peak = facts.iter().map(|r| r.fatigue_score).fold(0.0, f64::max);
            let position = |x: &Alert| {
                let set = x.set_id.clone().unwrap_or_default();
                let in_set: Vec<&RepFacts> = facts.iter().filter(|r| r.set_id == set).collect();
                let k = in_set
                    .iter()
                    .position(|r| r.end_us == x.time_us)
                    .unwrap_or(0)
                    + 1;
                (set, k, in_set.len())
            };
            let where_: Vec<(String, usize, usize)> = fatigue.iter().map(position).collect();
            eprintln!(
                "athlete {} {} sets of {} at {ratio}: peak fatigue {peak:.0}, fatigue alerts at \
                 (set, rep, reps in set) {where_:?}",
                a.id, sets, p.sets[0].reps
            );
            if heavy {
                assert!(
                    !fatigue.is_empty(),
                    "{}: no fatigue alert in a long heavy session",
                    a.id
                );
                for (set, k, _) in &where_ {
                    assert_ne!(set, "s0", "not in the first set");
                    assert!(*k >= 6, "late in the set: rep {k}");
                }
            } else {
                assert!(
                    fatigue.is_empty(),
                    "{}: fatigue alert in short light sets",
                    a.id
                );
            }
        }
    }
}
