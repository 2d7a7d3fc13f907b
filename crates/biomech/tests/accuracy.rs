//! Accuracy on simulated sessions with ground truth (set metadata announced by the client).
//!
//! 24 sessions (seeds 1..=24, one random athlete each, 12-minute random plans mixing
//! deadlifts, squats, kettlebell swings and carries), realistic sensors: default noise, bias,
//! bias walk, drops and gap bursts, random mountings, 50–200 Hz per sensor, sacrum clock
//! offsets from −2.5 s to +1.2 s (`scenario_options(seed % 12)`). Each test prints its
//! figures (run with `--nocapture`) and asserts the target overall and per exercise.
//!
//! Reproduce: `cargo test -p liftguard-biomech --test accuracy -- --nocapture`

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::*;
use liftguard_biomech::{Config, Rep};
use liftguard_model::Exercise;
use liftguard_sim::SimSession;

const SESSIONS: u64 = 24;
const MINUTES: f64 = 12.0;
const LIFTS: [Exercise; 3] = [
    Exercise::Deadlift,
    Exercise::Squat,
    Exercise::KettlebellSwing,
];

struct Session {
    seed: u64,
    sim: SimSession,
    run: Run,
}

fn simulate(seed: u64) -> Session {
    let athlete = liftguard_sim::random_athlete(seed, 0);
    let plan = liftguard_sim::random_session_plan(seed, &athlete, MINUTES, START_US);
    let sim = liftguard_sim::simulate(&athlete, &plan, &scenario_options(seed % 12), seed);
    let run = run_session(&Config::default(), &sim, true);
    Session { seed, sim, run }
}

/// All sessions, simulated and processed once (on two threads) for every test here.
fn sessions() -> &'static [Session] {
    static CELL: OnceLock<Vec<Session>> = OnceLock::new();
    CELL.get_or_init(|| {
        let seeds: Vec<u64> = (1..=SESSIONS).collect();
        let mut out: Vec<Session> = std::thread::scope(|s| {
            let handles: Vec<_> = seeds
                .chunks(seeds.len().div_ceil(2))
                .map(|chunk| {
                    s.spawn(move || chunk.iter().map(|&seed| simulate(seed)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("simulation thread"))
                .collect()
        });
        out.sort_by_key(|s| s.seed);
        out
    })
}

fn lift_reps(run: &Run) -> Vec<Rep> {
    run.reps
        .iter()
        .filter(|r| r.exercise != Exercise::Carry)
        .cloned()
        .collect()
}

#[test]
fn rep_count_exact_in_95_percent_of_sets_never_off_by_more_than_one() {
    let mut per_ex: BTreeMap<String, (u32, u32, i64)> = BTreeMap::new();
    let (mut exact, mut total, mut worst) = (0u32, 0u32, 0i64);
    for s in sessions() {
        for set in s
            .sim
            .truth
            .sets
            .iter()
            .filter(|t| t.exercise != Exercise::Carry)
        {
            let ours = s
                .run
                .reps
                .iter()
                .filter(|r| r.set_id.as_deref() == Some(set.set_id.as_str()))
                .count() as i64;
            let diff = ours - set.reps.len() as i64;
            let e = per_ex.entry(format!("{:?}", set.exercise)).or_default();
            e.1 += 1;
            total += 1;
            if diff == 0 {
                e.0 += 1;
                exact += 1;
            } else {
                eprintln!(
                    "seed {} set {} {:?}: truth {} ours {}",
                    s.seed,
                    set.set_id,
                    set.exercise,
                    set.reps.len(),
                    ours
                );
            }
            e.2 = e.2.max(diff.abs());
            worst = worst.max(diff.abs());
        }
    }
    for (ex, (ok, n, w)) in &per_ex {
        eprintln!(
            "REP COUNT {ex}: exact {ok}/{n} = {:.1}%, max |error| {w}",
            100.0 * f64::from(*ok) / f64::from(*n)
        );
        assert!(f64::from(*ok) >= 0.95 * f64::from(*n), "{ex}");
        assert!(*w <= 1, "{ex}");
    }
    eprintln!(
        "REP COUNT all: exact {exact}/{total} = {:.1}%, max |error| {worst}",
        100.0 * f64::from(exact) / f64::from(total)
    );
    assert_eq!(per_ex.len(), 3, "all three lifts covered");
    assert!(f64::from(exact) >= 0.95 * f64::from(total));
    assert!(worst <= 1);
}

#[test]
fn lumbar_flexion_rmse_below_2_degrees() {
    let mut all = Vec::new();
    let mut per_ex: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut worst_session: f64 = 0.0;
    for s in sessions() {
        let e = lumbar_errors(&s.run, &s.sim.truth);
        assert!(
            e.len() > 1000,
            "seed {}: only {} kinematics points",
            s.seed,
            e.len()
        );
        worst_session = worst_session.max(rmse(&e));
        all.extend_from_slice(&e);
        for set in s
            .sim
            .truth
            .sets
            .iter()
            .filter(|t| LIFTS.contains(&t.exercise))
        {
            let errs = per_ex.entry(format!("{:?}", set.exercise)).or_default();
            for k in s
                .run
                .kin
                .iter()
                .filter(|k| k.t_us >= set.start_us && k.t_us <= set.end_us)
            {
                if let Some((_, _, l)) = truth_at(&s.sim.truth, k.t_us) {
                    errs.push(f64::from(k.lumbar_flexion_deg) - l);
                }
            }
        }
    }
    for (ex, e) in &per_ex {
        eprintln!("LUMBAR RMSE {ex}: {:.3}° over {} points", rmse(e), e.len());
        assert!(rmse(e) <= 2.0, "{ex}");
    }
    eprintln!(
        "LUMBAR RMSE all: {:.3}° over {} points (whole sessions incl. rests; worst session {:.3}°)",
        rmse(&all),
        all.len(),
        worst_session
    );
    assert_eq!(per_ex.len(), 3);
    assert!(rmse(&all) <= 2.0);
}

#[derive(Default, Debug)]
struct Counts {
    tp: u32,
    fp: u32,
    fneg: u32,
}

impl Counts {
    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fp).max(1))
    }
    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fneg).max(1))
    }
}

#[test]
fn extensor_moment_events_precision_and_recall_above_0_9() {
    let mut per_ex: BTreeMap<String, Counts> = BTreeMap::new();
    let mut all = Counts::default();
    for s in sessions() {
        let reps = lift_reps(&s.run);
        let truth = truth_reps(&s.sim.truth);
        let (pairs, lone, missed) = match_reps(&reps, &truth);
        let mut add = |ex: Exercise, ours: bool, fault: bool| {
            let c = per_ex.entry(format!("{ex:?}")).or_default();
            match (ours, fault) {
                (true, true) => {
                    c.tp += 1;
                    all.tp += 1;
                }
                (true, false) => {
                    c.fp += 1;
                    all.fp += 1;
                }
                (false, true) => {
                    c.fneg += 1;
                    all.fneg += 1;
                }
                _ => {}
            }
        };
        for &(i, k) in &pairs {
            add(
                truth[k].exercise,
                reps[i].extensor_event,
                truth[k].rep.extensor_fault,
            );
        }
        for &i in &lone {
            add(reps[i].exercise, reps[i].extensor_event, false);
        }
        for &k in &missed {
            add(truth[k].exercise, false, truth[k].rep.extensor_fault);
        }
    }
    for (ex, c) in &per_ex {
        eprintln!(
            "EVENTS {ex}: precision {:.3} recall {:.3} (tp {} fp {} fn {})",
            c.precision(),
            c.recall(),
            c.tp,
            c.fp,
            c.fneg
        );
        assert!(
            c.tp + c.fneg >= 10,
            "{ex}: too few injected faults to judge"
        );
        assert!(c.precision() >= 0.9 && c.recall() >= 0.9, "{ex}: {c:?}");
    }
    eprintln!(
        "EVENTS all: precision {:.3} recall {:.3} ({all:?})",
        all.precision(),
        all.recall()
    );
    assert_eq!(per_ex.len(), 3);
}

#[test]
fn stability_deficit_separates_unstable_eccentrics_auc_above_0_9() {
    let mut per_ex: BTreeMap<String, (Vec<f64>, Vec<bool>)> = BTreeMap::new();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for s in sessions() {
        let reps = lift_reps(&s.run);
        let truth = truth_reps(&s.sim.truth);
        let (pairs, _, _) = match_reps(&reps, &truth);
        for (i, k) in pairs {
            let e = per_ex
                .entry(format!("{:?}", truth[k].exercise))
                .or_default();
            e.0.push(reps[i].stability_deficit);
            e.1.push(truth[k].rep.unstable);
            scores.push(reps[i].stability_deficit);
            labels.push(truth[k].rep.unstable);
        }
    }
    for (ex, (sc, lb)) in &per_ex {
        let a = auc(sc, lb);
        eprintln!(
            "STABILITY AUC {ex}: {a:.3} ({} unstable of {})",
            lb.iter().filter(|x| **x).count(),
            lb.len()
        );
        assert!(a >= 0.9, "{ex}");
    }
    let a = auc(&scores, &labels);
    eprintln!(
        "STABILITY AUC all: {a:.3} ({} unstable of {})",
        labels.iter().filter(|x| **x).count(),
        labels.len()
    );
    assert!(a >= 0.9);
}

#[test]
fn clock_offsets_are_recovered() {
    let mut errs = Vec::new();
    for s in sessions() {
        let truth = s.sim.sacrum.clock_offset_us - s.sim.thoracolumbar.clock_offset_us;
        let est = s.run.pipeline.clock_offset_us().expect("aligned");
        errs.push(((est - truth) as f64 / 1000.0).abs());
    }
    errs.sort_by(f64::total_cmp);
    eprintln!(
        "CLOCK OFFSET |error| ms: median {:.1}, max {:.1}",
        errs[errs.len() / 2],
        errs[errs.len() - 1]
    );
    assert!(errs[errs.len() - 1] < 25.0);
}

#[test]
fn state_stays_below_64_kib_in_every_session() {
    let worst = sessions()
        .iter()
        .map(|s| s.run.max_state_bytes)
        .max()
        .unwrap_or(0);
    eprintln!("STATE max serialized (JSON) during sessions: {worst} bytes");
    assert!(worst > 0 && worst <= 64 * 1024);
}
