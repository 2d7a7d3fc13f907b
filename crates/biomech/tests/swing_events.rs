//! Extensor-moment events against the simulator's truth on whole 30-minute sessions that
//! include kettlebell swings, run the way the "risk" crate's simulation tests run them
//! (`random_athlete(seed, index)`, `random_session_plan(seed, …, 30 min)`,
//! `SimOptions::default()`, simulation seed = seed; set metadata announced 3 s early).
//!
//! Regression: for `random_athlete(31, 2)` every swing of sets 06–09 was flagged (58
//! detected vs 7 true events). Cause: the clock aligner locked onto a wrong sacrum offset
//! (−40 ms instead of +30 ms) for 20 minutes — its outlier gate was centred on the median
//! of the estimates it had already accepted, which a biased correlation bootstrap and two
//! early mispaired edges had set, so every later (correct) estimate was rejected. The pelvis
//! was then paired 70 ms late: the swing top looked 6–8° hyperextended and the lumbar spine
//! appeared to lead the pelvis. Nothing swing-specific was wrong; the truth labels are right
//! (checked below).
//!
//! Stated tolerances:
//! - per exercise (deadlift, squat, swing) over the sweep: event precision and recall ≥ 0.9;
//! - per session: at most 2 false and 2 missed swing events;
//! - per session: |clock offset error| ≤ 40 ms at every thoracolumbar batch after the first
//!   minute (a 40 ms pelvis delay is a ≈ 4° lumbar error at a swing's 100 °/s hip snap) and
//!   ≤ 25 ms at the end (as in `accuracy.rs`).
//!
//! Reproduce: `cargo nextest run -p liftguard-biomech --test swing_events --no-capture`

mod common;

use std::collections::BTreeMap;

use common::*;
use liftguard_biomech::{AthletePipeline, Config, Rep};
use liftguard_model::Exercise;
use liftguard_sim::SimSession;

const MINUTES: f64 = 30.0;
/// The clock offset may still be settling during the first minute.
const SETTLE_US: i64 = 60_000_000;
const MAX_CLOCK_ERR_MS: f64 = 40.0;
const MAX_FINAL_CLOCK_ERR_MS: f64 = 25.0;
/// Swing truth: the injected top hyperextension is 6.5–14°, a clean top −3…+0.5°.
const SWING_FAULT_TRUTH_DEG: f64 = -5.0;

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    tp: u32,
    fp: u32,
    fneg: u32,
    tn: u32,
}

impl Counts {
    fn add(&mut self, ours: bool, fault: bool) {
        match (ours, fault) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fneg += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fp).max(1))
    }
    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fneg).max(1))
    }
}

struct Outcome {
    label: String,
    /// Per exercise.
    counts: BTreeMap<String, Counts>,
    max_clock_err_ms: f64,
    final_clock_err_ms: f64,
    /// Swing reps matched to truth: (ours, truth fault, top hyperextension °, truth min θ_L °).
    swings: Vec<(bool, bool, f64, f64)>,
    /// Lumbar-angle RMSE within swing sets, ° (the top hyperextension reads this angle).
    swing_lumbar_rmse_deg: f64,
}

fn simulate(seed: u64, index: u32, fault_propensity: Option<f64>) -> SimSession {
    let mut a = liftguard_sim::random_athlete(seed, index);
    if let Some(fp) = fault_propensity {
        a.fault_propensity = fp;
    }
    let plan = liftguard_sim::random_session_plan(seed, &a, MINUTES, START_US);
    liftguard_sim::simulate(&a, &plan, &liftguard_sim::SimOptions::default(), seed)
}

fn evaluate(label: String, sim: &SimSession) -> Outcome {
    let truth_offset = sim.sacrum.clock_offset_us - sim.thoracolumbar.clock_offset_us;
    let t0 = sim.truth.start_us;
    let mut max_err: f64 = 0.0;
    let mut hook = |p: &mut AthletePipeline, t: i64| {
        if t - t0 >= SETTLE_US {
            let e = p
                .clock_offset_us()
                .map_or(f64::INFINITY, |o| (o - truth_offset) as f64 / 1000.0);
            max_err = max_err.max(e.abs());
        }
    };
    let run = run_session_with(&Config::default(), sim, true, &mut hook);
    let final_err = run
        .pipeline
        .clock_offset_us()
        .map_or(f64::INFINITY, |o| (o - truth_offset) as f64 / 1000.0);

    let reps: Vec<Rep> = run
        .reps
        .iter()
        .filter(|r| r.exercise != Exercise::Carry)
        .cloned()
        .collect();
    let truth = truth_reps(&sim.truth);
    // The truth labels themselves: a swing fault is exactly a top hyperextension past −5°.
    for t in truth
        .iter()
        .filter(|t| t.exercise == Exercise::KettlebellSwing)
    {
        assert_eq!(
            t.rep.extensor_fault,
            t.rep.min_lumbar_flexion_deg < SWING_FAULT_TRUTH_DEG,
            "{label}: truth label of {} #{} vs its kinematics ({:.2}°)",
            t.set_id,
            t.rep.index,
            t.rep.min_lumbar_flexion_deg
        );
    }
    let mut swing_errs = Vec::new();
    for set in sim
        .truth
        .sets
        .iter()
        .filter(|s| s.exercise == Exercise::KettlebellSwing)
    {
        for k in run
            .kin
            .iter()
            .filter(|k| k.t_us >= set.start_us && k.t_us <= set.end_us)
        {
            if let Some((_, _, l)) = truth_at(&sim.truth, k.t_us) {
                swing_errs.push(f64::from(k.lumbar_flexion_deg) - l);
            }
        }
    }
    let (pairs, lone, missed) = match_reps(&reps, &truth);
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut swings = Vec::new();
    for &(i, k) in &pairs {
        let (r, t) = (&reps[i], &truth[k]);
        counts
            .entry(format!("{:?}", t.exercise))
            .or_default()
            .add(r.extensor_event, t.rep.extensor_fault);
        if t.exercise == Exercise::KettlebellSwing {
            swings.push((
                r.extensor_event,
                t.rep.extensor_fault,
                r.evidence.top_hyperextension_deg,
                t.rep.min_lumbar_flexion_deg,
            ));
        }
    }
    for &i in &lone {
        counts
            .entry(format!("{:?}", reps[i].exercise))
            .or_default()
            .add(reps[i].extensor_event, false);
    }
    for &k in &missed {
        counts
            .entry(format!("{:?}", truth[k].exercise))
            .or_default()
            .add(false, truth[k].rep.extensor_fault);
    }
    Outcome {
        label,
        counts,
        max_clock_err_ms: max_err,
        final_clock_err_ms: final_err,
        swings,
        swing_lumbar_rmse_deg: rmse(&swing_errs),
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / f64::from(n) }
}

/// Prints the session's figures; returns its violations of the per-session tolerances.
fn check_session(o: &Outcome) -> Vec<String> {
    let sw = o
        .counts
        .get(&format!("{:?}", Exercise::KettlebellSwing))
        .copied()
        .unwrap_or_default();
    let all = o.counts.values().fold(Counts::default(), |a, c| Counts {
        tp: a.tp + c.tp,
        fp: a.fp + c.fp,
        fneg: a.fneg + c.fneg,
        tn: a.tn + c.tn,
    });
    let hyper = |ours: bool, fault: bool| {
        mean(
            o.swings
                .iter()
                .filter(|s| s.0 == ours && s.1 == fault)
                .map(|s| s.2),
        )
    };
    eprintln!(
        "{}: clock |err| max {:.1} ms, final {:.1} ms | swing-set lumbar RMSE {:.2}° | \
         swing tp {} fp {} fn {} tn {} (top hyperext. mean: tp {:.1}° fp {:.1}° tn {:.1}°) | \
         all lifts tp {} fp {} fn {}",
        o.label,
        o.max_clock_err_ms,
        o.final_clock_err_ms.abs(),
        o.swing_lumbar_rmse_deg,
        sw.tp,
        sw.fp,
        sw.fneg,
        sw.tn,
        hyper(true, true),
        hyper(true, false),
        hyper(false, false),
        all.tp,
        all.fp,
        all.fneg
    );
    let mut problems = Vec::new();
    if o.max_clock_err_ms > MAX_CLOCK_ERR_MS {
        problems.push(format!(
            "{}: clock offset off by {:.1} ms",
            o.label, o.max_clock_err_ms
        ));
    }
    if o.final_clock_err_ms.abs() > MAX_FINAL_CLOCK_ERR_MS {
        problems.push(format!(
            "{}: final clock offset off by {:.1} ms",
            o.label, o.final_clock_err_ms
        ));
    }
    if sw.fp > 2 || sw.fneg > 2 {
        problems.push(format!("{}: swing events {sw:?}", o.label));
    }
    problems
}

#[test]
fn athlete_31_2_swing_events_follow_truth() {
    // The risk engineer's session, and the same athlete with a high fault propensity.
    let cases = [(None, "ath(31,2)"), (Some(3.0), "ath(31,2) fp=3.0")];
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let hs: Vec<_> = cases
            .iter()
            .map(|&(fp, label)| s.spawn(move || evaluate(label.to_owned(), &simulate(31, 2, fp))))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("session thread"))
            .collect()
    });
    for o in &outcomes {
        for (ex, c) in &o.counts {
            eprintln!(
                "{} EVENTS {ex}: precision {:.3} recall {:.3} ({c:?})",
                o.label,
                c.precision(),
                c.recall()
            );
        }
        for (i, (ours, fault, hyper, truth_min)) in o.swings.iter().enumerate() {
            if ours != fault {
                eprintln!(
                    "{} swing {i}: ours {ours} truth {fault}: top hyperextension {hyper:.2}° \
                     (truth min θ_L {truth_min:.2}°)",
                    o.label
                );
            }
        }
        let problems = check_session(o);
        assert!(problems.is_empty(), "{problems:?}");
        let sw = o.counts[&format!("{:?}", Exercise::KettlebellSwing)];
        assert!(sw.tp + sw.fneg >= 5, "{}: {sw:?}", o.label);
        assert!(
            sw.precision() >= 0.9 && sw.recall() >= 0.9,
            "{}: {sw:?}",
            o.label
        );
    }
}

#[test]
fn swing_sessions_sweep_precision_and_recall_above_0_9() {
    // Sessions 1..=14 (athlete index seed % 4); random plans mix swings with the other lifts.
    let seeds: Vec<u64> = (1..=14).collect();
    let mut outcomes: Vec<(u64, Outcome)> = std::thread::scope(|s| {
        let hs: Vec<_> = seeds
            .chunks(seeds.len().div_ceil(2))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&seed| {
                            let idx = (seed % 4) as u32;
                            let o =
                                evaluate(format!("ath({seed},{idx})"), &simulate(seed, idx, None));
                            (seed, o)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("session thread"))
            .collect()
    });
    outcomes.sort_by_key(|(s, _)| *s);
    let mut per_ex: BTreeMap<String, Counts> = BTreeMap::new();
    for (_, o) in &outcomes {
        for (ex, c) in &o.counts {
            let e = per_ex.entry(ex.clone()).or_default();
            e.tp += c.tp;
            e.fp += c.fp;
            e.fneg += c.fneg;
            e.tn += c.tn;
        }
    }
    for (ex, c) in &per_ex {
        eprintln!(
            "SWEEP EVENTS {ex}: precision {:.3} recall {:.3} ({c:?})",
            c.precision(),
            c.recall()
        );
    }
    let problems: Vec<String> = outcomes
        .iter()
        .flat_map(|(_, o)| check_session(o))
        .collect();
    assert!(
        problems.is_empty(),
        "sessions out of tolerance: {problems:?}"
    );
    let swing = per_ex
        .get(&format!("{:?}", Exercise::KettlebellSwing))
        .copied()
        .unwrap_or_default();
    assert!(
        swing.tp + swing.fneg >= 30,
        "too few swing faults to judge: {swing:?}"
    );
    for (ex, c) in &per_ex {
        assert!(
            c.precision() >= 0.9 && c.recall() >= 0.9,
            "{ex}: precision {:.3} recall {:.3} ({c:?})",
            c.precision(),
            c.recall()
        );
    }
}
