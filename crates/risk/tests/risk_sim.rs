//! Flare-up risk from simulated training: the same simulated athlete (liftguard-sim) with a
//! normal and with a high propensity to lumbar-led lifts, each 30-minute session run through
//! the biomechanics pipeline, then repeated on a multi-week schedule (the session's reps
//! shifted by whole days).
//!
//! Seeds: `random_athlete(11, 1)`, `random_session_plan(11, …)`, simulation seed 11.
//!
//! Reproduce: `cargo nextest run -p liftguard-risk --test risk_sim --no-capture`

mod common;

use common::*;
use liftguard_risk::{DAY_US, RepFacts, RiskConfig, RiskState, day_index};

/// Mon/Wed/Fri for 4 weeks, then 5 days in a row.
fn schedule() -> Vec<i64> {
    let mut days: Vec<i64> = (0..4).flat_map(|w| [7 * w, 7 * w + 2, 7 * w + 4]).collect();
    days.extend(28..33);
    days
}

fn shifted(template: &[RepFacts], day: i64) -> Vec<RepFacts> {
    template
        .iter()
        .map(|r| RepFacts {
            rep_id: format!("{}+{day}", r.rep_id),
            session_id: format!("{}+{day}", r.session_id),
            set_id: format!("{}+{day}", r.set_id),
            start_us: r.start_us + day * DAY_US,
            end_us: r.end_us + day * DAY_US,
            ..r.clone()
        })
        .collect()
}

/// P at 23:00 of each day 0..35 and the days an alert fired.
fn run(template: &[RepFacts], flare_up_day: Option<i64>) -> (Vec<f64>, Vec<i64>) {
    let cfg = RiskConfig::default();
    let day0 = day_index(template[0].start_us);
    let mut s = RiskState::new();
    let (mut ps, mut alerts) = (Vec::new(), Vec::new());
    for day in 0..36 {
        if flare_up_day == Some(day) {
            s.on_flare_up((day0 + day) * DAY_US + 6 * 3_600_000_000, 6);
        }
        if schedule().contains(&day) {
            for r in shifted(template, day) {
                s.on_rep(&r);
            }
        }
        let a = s.assess(&cfg, (day0 + day) * DAY_US + 23 * 3_600_000_000);
        if a.alert.is_some() {
            alerts.push(day);
        }
        ps.push(a.probability);
    }
    (ps, alerts)
}

#[test]
fn back_led_lifting_raises_risk_and_alerts_with_a_flare_up_history() {
    let (a, sim_n, normal) = session_facts(11, 1, None, 30.0);
    let (b, sim_f, faulty) = session_facts(11, 1, Some(3.0), 30.0);
    // Premise: the pipeline's events follow the truth for these sessions.
    for (sim, reps) in [(&sim_n, &normal), (&sim_f, &faulty)] {
        let truth = sim
            .truth
            .sets
            .iter()
            .flat_map(|s| &s.reps)
            .filter(|r| r.extensor_fault)
            .count();
        let detected = reps.iter().filter(|r| r.extensor_event).count();
        eprintln!("extensor events: truth {truth}, detected {detected}");
        assert!(
            detected.abs_diff(truth) <= 8,
            "truth {truth} detected {detected}"
        );
    }
    let n = to_facts(&normal, &a, "normal", 0);
    let f = to_facts(&faulty, &b, "faulty", 0);
    let share = |x: &[RepFacts]| {
        x.iter().filter(|r| r.extensor_event).count() as f64 / x.len().max(1) as f64
    };
    let damage = |x: &[RepFacts]| x.iter().map(|r| r.damage_per_cycle).sum::<f64>();
    eprintln!(
        "session: normal {} reps, event share {:.2}, damage {:.2e}; faulty {} reps, event share \
         {:.2}, damage {:.2e}",
        n.len(),
        share(&n),
        damage(&n),
        f.len(),
        share(&f),
        damage(&f)
    );
    assert!(share(&f) > share(&n) + 0.1);

    let (pn, an) = run(&n, None);
    let (pf, af) = run(&f, None);
    let (pff, aff) = run(&f, Some(21));
    let fmt = |p: &[f64]| {
        p.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!("normal:            {}  alerts {an:?}", fmt(&pn));
    eprintln!("back-led:          {}  alerts {af:?}", fmt(&pf));
    eprintln!("back-led + flare:  {}  alerts {aff:?}", fmt(&pff));
    for day in schedule() {
        let d = day as usize;
        assert!(pf[d] > pn[d], "day {day}: {} vs {}", pf[d], pn[d]);
        assert!(pff[d] >= pf[d]);
    }
    assert!(an.is_empty(), "a normal athlete never alerts");
    assert!(
        aff.iter().any(|&d| d >= 28),
        "the back-led block after a flare-up alerts"
    );
    // The training block raises risk above the 3×/week weeks, rest after it lowers it.
    assert!(pf[32] > pf[25]);
    assert!(pf[35] < pf[32]);
}
