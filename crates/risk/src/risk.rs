//! Multi-day flare-up risk: daily features per athlete and a discrete-time logistic hazard
//! model for P(flare-up within 72 h) (biomechanics.md "Multi-day flare-up risk").
//!
//! # Features (day d = UTC day of the assessment time, [`FEATURES`] order)
//! Days are UTC days of event time; days without reps count as zero load (no record is
//! needed: every sum below runs over the stored days with weights from their distance to d).
//! - `damage_day_log10`: log10 of day d's cumulative LiFFT damage (Σ DPC, moment normalised
//!   to capacity; Gallagher et al. 2017, biomechanics.md "Cumulative damage"), floored.
//! - `damage_7d_log10`: log10 of the damage of days d−6..d, floored.
//! - `acwr`: acute:chronic ratio of exponentially weighted means of daily damage,
//!   λ = 2/(N + 1) with N = 7 and 28 days (0.25 and 0.069; Williams et al. 2017). Each mean
//!   is bias-corrected by the weight of the days since the athlete's first data (at most the
//!   retained history), so a new athlete starts at 1, not at λ_a/λ_c ≈ 3.6. 0/0 → 1.
//!   Clamped to [0, acwr_cap]. ACWR alone does not predict injury (Impellizzeri et al. 2020;
//!   Lolli et al. 2019): its weight is bounded by validation so that it can never lift P over
//!   the threshold by itself (tested).
//! - `banister_fatigue`, `banister_fitness`: Banister impulse-response, Σ e^(−k/τ)·damage_(d−k)
//!   with τ 7 d and 42 d over the retained history, normalised so that one reference day's
//!   damage every day gives 1.
//! - `extensor_events`, `extensor_event_rate`, `peak_fatigue`, `stability_deficit`: over the
//!   last `recent_days` (default 3, the 72-h horizon): event count, events per rep, the peak
//!   fatigue score, the mean stability deficit per rep.
//! - `prior_flare_ups`: Σ (0.5 + pain/20)·e^(−age/τ) over reported flare-ups with onset before
//!   the assessment time (τ 30 d): a pain-10 flare-up today counts 1, a pain-0 one 0.5.
//!
//! # Model
//! logit P = intercept + Σ_i c_i with c_i = w_i·(x_i − ref_i), except c = w·(ln(1 + x) −
//! ln(1 + ref)) for the event count and c = w·max(0, x − ref) for peak fatigue and stability
//! deficit (below a typical training day they add nothing: a rest day is already carried by
//! the damage and event terms). [`crate::RiskCoefficients`] holds documented priors, **not
//! fitted**: no outcome data exists here. Each driver reports x_i and c_i.
//!
//! # Alert
//! `rule_met` when P(d) > threshold and P is rising: P(d) ≥ P(d−1) and P(d) − P(d−3) ≥
//! min_rise, with P(d−k) evaluated from the same state as of the end of day d−k. An alert is
//! issued when the rule is met, no flare-up alert was issued on day d, and the cooldown has
//! passed. The other risk alert of the reference (extensor events > ~20 % of a session's reps)
//! is the session-share rule of [`crate::AlertEngine`].
//!
//! # Invariants
//! - State holds the daily damage of the last [`HISTORY_DAYS`] days and the full daily
//!   aggregates of the last [`DETAIL_DAYS`] (relative to the newest rep; enough for every
//!   feature of days at or after the newest rep's day: assessments of earlier days are
//!   approximate), the [`MAX_FLARE_UPS`] most recent flare-ups (one per onset time: a replayed
//!   report changes nothing) and the [`MAX_EVENT_REPS`] latest extensor-event rep ids:
//!   serialised ≤ [`crate::MAX_STATE_BYTES`] (tested). The state does not depend on the
//!   configuration, so a new configuration applies to the whole history.
//! - The Banister sums run over the retained history only (60 days: the 42-day fitness loses
//!   the e^(−60/42) ≈ 24 % tail; both are normalised by the truncated weight sum).
//! - Reps older than the history are counted in `ignored_reps` and otherwise ignored.
//! - Every feature is clamped into a finite range, so P ∈ (0, 1) and every number is finite.
//! - With validated coefficients: more damage on day d, more extensor events, a higher rate,
//!   higher fatigue or stability deficit, and more/closer flare-ups never lower P; rest days
//!   after training lower it (tested).

use serde::{Deserialize, Serialize};

use crate::config::{RiskConfig, Term};
use crate::time::{DAY_US, day_end_us, day_index, day_string};
use crate::{Alert, AlertKind, Evidence, RepFacts, Severity, bounded_id, finite};

/// Days of daily damage kept, relative to the newest rep's day.
pub const HISTORY_DAYS: i64 = 60;
/// Days (relative to the newest rep's day) whose event, fatigue and stability aggregates are
/// kept: the recent window (≤ 7 days) of day d and of day d − rise_days (≤ 7). Older days keep
/// their damage only, which is all the EWMA and Banister features need.
pub const DETAIL_DAYS: i64 = 14;
/// Reported flare-ups kept (the most recent onsets).
pub const MAX_FLARE_UPS: usize = 16;
/// Extensor-event rep ids kept for the evidence of a flare-up alert.
pub const MAX_EVENT_REPS: usize = 8;
/// The features, in the order of their computation.
pub const FEATURES: [&str; 10] = [
    "damage_day_log10",
    "damage_7d_log10",
    "acwr",
    "banister_fatigue",
    "banister_fitness",
    "extensor_events",
    "extensor_event_rate",
    "peak_fatigue",
    "stability_deficit",
    "prior_flare_ups",
];

/// Per-athlete risk state. Feed every rep ([`RiskState::on_rep`]) and flare-up report, and
/// assess at session ends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RiskState {
    /// Daily aggregates, ascending by day, one per day.
    days: Vec<DayAgg>,
    /// The first day the athlete had data (for the EWMA bias correction).
    first_day: Option<i64>,
    /// Ascending by onset, one per onset.
    flare_ups: Vec<FlareUp>,
    /// Latest extensor-event reps (day, rep id), by arrival.
    event_reps: Vec<(i64, String)>,
    /// Session of the newest rep fed.
    last_session_id: String,
    last_alert_us: Option<i64>,
    last_alert_day: Option<i64>,
    /// Reps too old for the history.
    ignored_reps: u64,
}

/// One UTC day of reps. Serialised as a compact array (it is most of the state).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "DayRow", into = "DayRow")]
struct DayAgg {
    day: i64,
    damage: f64,
    reps: u32,
    events: u32,
    peak_fatigue: f64,
    stability_sum: f64,
}

type DayRow = (i64, f64, u32, u32, f64, f64);

impl From<DayRow> for DayAgg {
    fn from(r: DayRow) -> Self {
        DayAgg {
            day: r.0,
            damage: r.1,
            reps: r.2,
            events: r.3,
            peak_fatigue: r.4,
            stability_sum: r.5,
        }
    }
}

impl From<DayAgg> for DayRow {
    fn from(d: DayAgg) -> Self {
        (
            d.day,
            d.damage,
            d.reps,
            d.events,
            d.peak_fatigue,
            d.stability_sum,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct FlareUp {
    onset_us: i64,
    pain: u32,
}

/// The day's risk, ready to become a `RiskRecord` (`risk_id = {athlete}-{day}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskAssessment {
    /// `YYYY-MM-DD`, UTC day of `time_us`.
    pub day: String,
    /// The assessment time (event time of the newest data it reflects).
    pub time_us: i64,
    /// P(flare-up within 72 h).
    pub probability: f64,
    /// Every feature, largest |contribution| first.
    pub drivers: Vec<Driver>,
    /// A new flare-up alert (rule met, not yet alerted today, cooldown passed).
    pub alert: Option<Alert>,
    /// The alert rule holds (P above threshold and rising): `RiskRecord.alert`. True on every
    /// assessment of the day while it holds, even when `alert` is `None` (already sent).
    pub rule_met: bool,
    /// P(d) − P(d − rise_days).
    pub rise: f64,
}

/// One feature's share of the estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    pub feature: String,
    pub value: f64,
    /// Contribution to the log-odds (0 at the reference value).
    pub contribution: f64,
    pub explanation: String,
}

/// Feature values for one day, [`FEATURES`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Features([f64; 10]);

/// Σ_{k<n} r^k.
fn geometric(r: f64, n: i64) -> f64 {
    if n <= 0 {
        return 0.0;
    }
    if (1.0 - r).abs() < 1e-15 {
        return n as f64;
    }
    (1.0 - r.powi(n.min(i64::from(i32::MAX)) as i32)) / (1.0 - r)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x.clamp(-40.0, 40.0)).exp())
}

impl RiskState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reps older than the retained history, ignored.
    pub fn ignored_reps(&self) -> u64 {
        self.ignored_reps
    }

    /// Adds a rep to the aggregate of its UTC day (of `start_us`). Any arrival order.
    pub fn on_rep(&mut self, rep: &RepFacts) {
        let day = day_index(rep.start_us);
        let newest = self.days.last().map_or(day, |d| d.day.max(day));
        if day <= newest.saturating_sub(HISTORY_DAYS) {
            self.ignored_reps = self.ignored_reps.saturating_add(1);
            return;
        }
        self.first_day = Some(self.first_day.map_or(day, |f| f.min(day)));
        let i = match self.days.binary_search_by_key(&day, |d| d.day) {
            Ok(i) => i,
            Err(i) => {
                self.days.insert(
                    i,
                    DayAgg {
                        day,
                        damage: 0.0,
                        reps: 0,
                        events: 0,
                        peak_fatigue: 0.0,
                        stability_sum: 0.0,
                    },
                );
                i
            }
        };
        let d = &mut self.days[i];
        d.damage += finite(rep.damage_per_cycle).clamp(0.0, 1.0);
        d.reps = d.reps.saturating_add(1);
        if rep.extensor_event {
            d.events = d.events.saturating_add(1);
            if self.event_reps.len() >= MAX_EVENT_REPS {
                self.event_reps.remove(0);
            }
            self.event_reps.push((day, bounded_id(&rep.rep_id)));
        }
        d.peak_fatigue = d
            .peak_fatigue
            .max(finite(rep.fatigue_score).clamp(0.0, 100.0));
        d.stability_sum += finite(rep.stability_deficit).clamp(0.0, 1000.0);
        let cutoff = newest.saturating_sub(HISTORY_DAYS);
        self.days.retain(|d| d.day > cutoff);
        let detail = newest.saturating_sub(DETAIL_DAYS);
        for d in self.days.iter_mut().filter(|d| d.day <= detail) {
            d.reps = 0;
            d.events = 0;
            d.peak_fatigue = 0.0;
            d.stability_sum = 0.0;
        }
        self.event_reps.retain(|(d, _)| *d > detail);
        self.last_session_id = bounded_id(&rep.session_id);
    }

    /// Records a reported flare-up (pain 0–10; larger values count as 10). Idempotent: a
    /// second report with the same onset keeps the larger pain.
    pub fn on_flare_up(&mut self, onset_us: i64, pain: u32) {
        let pain = pain.min(10);
        match self
            .flare_ups
            .binary_search_by_key(&onset_us, |f| f.onset_us)
        {
            Ok(i) => self.flare_ups[i].pain = self.flare_ups[i].pain.max(pain),
            Err(i) => {
                self.flare_ups.insert(i, FlareUp { onset_us, pain });
                while self.flare_ups.len() > MAX_FLARE_UPS {
                    self.flare_ups.remove(0);
                }
            }
        }
    }

    /// The day's estimate at `at_us` (event time), with drivers and, when the rule is met for
    /// the first time that day and the cooldown has passed, an alert. Only the alert
    /// bookkeeping changes the state.
    pub fn assess(&mut self, cfg: &RiskConfig, at_us: i64) -> RiskAssessment {
        let cfg = cfg.validated();
        let d = day_index(at_us);
        let features = self.features(&cfg, d, at_us);
        let contrib = contributions(&cfg, &features);
        let p = probability(&cfg, &contrib);
        let p_at = |k: i64| {
            let day = d.saturating_sub(k);
            let f = self.features(&cfg, day, day_end_us(day).min(at_us));
            probability(&cfg, &contributions(&cfg, &f))
        };
        let p_prev = p_at(1);
        let p_base = p_at(i64::from(cfg.rise_days));
        let rise = p - p_base;
        let rule_met = p > cfg.threshold && p >= p_prev && rise >= cfg.min_rise;

        let mut drivers: Vec<Driver> = (0..FEATURES.len())
            .map(|i| Driver {
                feature: FEATURES[i].to_owned(),
                value: features.0[i],
                contribution: contrib[i],
                explanation: explain(&cfg, i, features.0[i], contrib[i]),
            })
            .collect();
        drivers.sort_by(|a, b| {
            b.contribution
                .abs()
                .total_cmp(&a.contribution.abs())
                .then_with(|| a.feature.cmp(&b.feature))
        });

        let cooled = self
            .last_alert_us
            .is_none_or(|last| at_us.saturating_sub(last) as f64 >= cfg.cooldown_s * 1e6);
        let alert = if rule_met && cooled && self.last_alert_day != Some(d) {
            self.last_alert_us = Some(at_us);
            self.last_alert_day = Some(d);
            Some(self.alert(&cfg, d, at_us, p, rise, &drivers))
        } else {
            None
        };
        RiskAssessment {
            day: day_string(d),
            time_us: at_us,
            probability: p,
            drivers,
            alert,
            rule_met,
            rise,
        }
    }

    /// Feature values for day `d`, flare-ups weighted at `t_us`. Only days ≤ d count.
    fn features(&self, cfg: &RiskConfig, d: i64, t_us: i64) -> Features {
        let h = HISTORY_DAYS;
        let la = 2.0 / (cfg.acute_days + 1.0);
        let lc = 2.0 / (cfg.chronic_days + 1.0);
        let (ra, rc) = (1.0 - la, 1.0 - lc);
        let rf = (-1.0 / cfg.fatigue_tau_days).exp();
        let rfit = (-1.0 / cfg.fitness_tau_days).exp();
        let recent = i64::from(cfg.recent_days);
        let (mut day_dmg, mut sum7, mut ewa, mut ewc, mut fat, mut fit) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut events, mut reps, mut peak, mut stab) = (0u64, 0u64, 0.0f64, 0.0);
        for a in &self.days {
            let k = d.saturating_sub(a.day);
            if !(0..h).contains(&k) {
                continue;
            }
            let x = a.damage;
            if k == 0 {
                day_dmg += x;
            }
            if k < 7 {
                sum7 += x;
            }
            let k32 = k as i32;
            ewa += ra.powi(k32) * x;
            ewc += rc.powi(k32) * x;
            fat += rf.powi(k32) * x;
            fit += rfit.powi(k32) * x;
            if k < recent {
                events += u64::from(a.events);
                reps += u64::from(a.reps);
                peak = peak.max(a.peak_fatigue);
                stab += a.stability_sum;
            }
        }
        // Bias correction of the EWMAs: divide by the weight of the days since the first data.
        let n = self
            .first_day
            .map_or(0, |f| d.saturating_sub(f).saturating_add(1).clamp(0, h));
        let acwr = if n == 0 {
            1.0
        } else {
            let a = ewa / geometric(ra, n);
            let c = ewc / geometric(rc, n);
            if c > 1e-300 {
                a / c
            } else if a > 1e-300 {
                cfg.acwr_cap
            } else {
                1.0
            }
        };
        let unit = cfg.reference_day_damage;
        let fat_norm = fat / (unit * geometric(rf, h));
        let fit_norm = fit / (unit * geometric(rfit, h));
        let floor = cfg.damage_floor.log10();
        let log = |x: f64, hi: f64| x.max(cfg.damage_floor).log10().clamp(floor, hi);
        let rate = if reps > 0 {
            events as f64 / reps as f64
        } else {
            0.0
        };
        let stab_mean = if reps > 0 { stab / reps as f64 } else { 0.0 };
        let tau_us = cfg.flare_tau_days * DAY_US as f64;
        let flare: f64 = self
            .flare_ups
            .iter()
            .filter(|f| f.onset_us <= t_us)
            .map(|f| {
                let age = t_us.saturating_sub(f.onset_us) as f64;
                (0.5 + f64::from(f.pain) / 20.0) * (-age / tau_us).exp()
            })
            .sum();
        let v = [
            log(day_dmg, 1.0),
            log(sum7, 2.0),
            acwr.clamp(0.0, cfg.acwr_cap),
            fat_norm.clamp(0.0, 100.0),
            fit_norm.clamp(0.0, 100.0),
            (events as f64).min(1e6),
            rate.clamp(0.0, 1.0),
            peak.clamp(0.0, 100.0),
            stab_mean.clamp(0.0, 1000.0),
            flare.clamp(0.0, 100.0),
        ];
        Features(v.map(finite))
    }

    fn alert(
        &self,
        cfg: &RiskConfig,
        d: i64,
        at_us: i64,
        p: f64,
        rise: f64,
        drivers: &[Driver],
    ) -> Alert {
        let top: Vec<&Driver> = drivers
            .iter()
            .filter(|x| x.contribution > 0.0)
            .take(3)
            .collect();
        let has = |f: &str| top.iter().any(|x| x.feature == f);
        let mut rec = format!(
            "Take {} rest days from heavy lifting (no heavy deadlifts, squats or swings); \
             walking and gentle mobility are fine.",
            cfg.rest_days
        );
        if has("extensor_events") || has("extensor_event_rate") {
            rec.push_str(
                " When you return, regress the hinge: Romanian deadlifts or a dowel hip-hinge \
                 drill instead of deadlifts, kettlebell deadlifts instead of swings, until the \
                 hips lead every rep.",
            );
        }
        rec.push_str(&format!(
            " Then deload by {:.0}% for a week and build back up gradually.",
            (cfg.deload_fraction * 100.0).round()
        ));
        if has("stability_deficit") {
            rec.push_str(" Keep heavy lowering slow and controlled, or lighter.");
        }
        if has("prior_flare_ups") || p >= cfg.critical {
            rec.push_str(" If pain builds, see your clinician.");
        }
        let names: Vec<&str> = top.iter().map(|x| x.feature.as_str()).collect();
        rec.push_str(&format!(" Main drivers: {}.", names.join(", ")));
        let mut evidence = vec![
            Evidence::new("flare_up_probability_72h", p, cfg.threshold, "probability"),
            Evidence::new(
                &format!("probability_rise_{}d", cfg.rise_days),
                rise,
                cfg.min_rise,
                "probability",
            ),
        ];
        for x in &top {
            evidence.push(Evidence::new(&x.feature, x.value, 0.0, unit_of(&x.feature)));
        }
        let recent = i64::from(cfg.recent_days);
        let rep_ids = self
            .event_reps
            .iter()
            .filter(|(day, _)| (0..recent).contains(&d.saturating_sub(*day)))
            .map(|(_, id)| id.clone())
            .collect();
        Alert {
            kind: AlertKind::FlareUpRisk,
            severity: if p >= cfg.critical {
                Severity::Critical
            } else {
                Severity::Warning
            },
            time_us: at_us,
            session_id: self.last_session_id.clone(),
            set_id: None,
            title: format!(
                "Back flare-up risk {:.0}% over the next 3 days, and rising",
                (p * 100.0).round()
            ),
            recommendation: rec,
            evidence,
            rep_ids,
        }
    }
}

fn term_of(cfg: &RiskConfig, i: usize) -> Term {
    let c = &cfg.coefficients;
    [
        c.damage_day_log10,
        c.damage_7d_log10,
        c.acwr,
        c.banister_fatigue,
        c.banister_fitness,
        c.extensor_events,
        c.extensor_event_rate,
        c.peak_fatigue,
        c.stability_deficit,
        c.prior_flare_ups,
    ][i]
}

/// Log-odds contribution of each feature.
fn contributions(cfg: &RiskConfig, f: &Features) -> [f64; 10] {
    std::array::from_fn(|i| {
        let t = term_of(cfg, i);
        let x = f.0[i];
        let c = match i {
            5 => t.weight * (x.max(0.0).ln_1p() - t.reference.max(0.0).ln_1p()),
            7 | 8 => t.weight * (x - t.reference).max(0.0),
            _ => t.weight * (x - t.reference),
        };
        finite(c)
    })
}

fn probability(cfg: &RiskConfig, contributions: &[f64; 10]) -> f64 {
    sigmoid(cfg.coefficients.intercept + contributions.iter().sum::<f64>())
}

fn unit_of(feature: &str) -> &'static str {
    match feature {
        "damage_day_log10" | "damage_7d_log10" => "log10 damage",
        "acwr" => "ratio",
        "banister_fatigue" | "banister_fitness" => "reference days/day",
        "extensor_events" => "events",
        "extensor_event_rate" => "fraction",
        "peak_fatigue" => "score",
        "stability_deficit" => "z",
        "prior_flare_ups" => "weighted count",
        _ => "",
    }
}

fn explain(cfg: &RiskConfig, i: usize, v: f64, contribution: f64) -> String {
    let recent = cfg.recent_days;
    let r = term_of(cfg, i).reference;
    let at_floor = v <= cfg.damage_floor.log10() + 1e-9;
    let what = match i {
        0 if at_floor => "No spinal load recorded today".to_owned(),
        1 if at_floor => "No spinal load recorded in the last 7 days".to_owned(),
        0 => format!(
            "Spinal load today (LiFFT cumulative damage, moment normalised to capacity): \
             {:.1e} vs a typical day's {:.1e}",
            10f64.powf(v),
            10f64.powf(r)
        ),
        1 => format!(
            "Spinal load over the last 7 days: {:.1e} vs a typical week's {:.1e}",
            10f64.powf(v),
            10f64.powf(r)
        ),
        2 => format!(
            "Acute:chronic load ratio {v:.2} (7-day vs 28-day average; 1 = steady). An input \
             only: it never raises an alert by itself"
        ),
        3 => format!(
            "Short-term training fatigue (Banister, 7-day): {v:.2} typical training days per day"
        ),
        4 => format!(
            "Long-term training base (Banister, 42-day): {v:.2} typical training days per day; \
             a higher base protects"
        ),
        5 => format!(
            "{v:.0} reps where the lower back, not the hips, started the lift in the last \
             {recent} days"
        ),
        6 => format!(
            "{:.0}% of reps in the last {recent} days were back-led lifts",
            v * 100.0
        ),
        7 => format!("Peak back-extensor fatigue {v:.0}/100 in the last {recent} days"),
        8 => format!(
            "Mean stability deficit {v:.1} (shaky lowering under load) in the last {recent} days"
        ),
        _ => format!("Recent flare-ups (weighted by pain and recency): {v:.2}"),
    };
    let effect = if contribution > 0.005 {
        format!("raises the risk (+{contribution:.2} log-odds)")
    } else if contribution < -0.005 {
        format!("lowers the risk ({contribution:.2} log-odds)")
    } else {
        "no effect".to_owned()
    };
    format!("{what}: {effect}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_sums() {
        assert_eq!(geometric(0.5, 0), 0.0);
        assert!((geometric(0.5, 3) - 1.75).abs() < 1e-12);
        assert_eq!(geometric(1.0, 4), 4.0);
    }

    #[test]
    fn empty_state_is_the_baseline_with_rest_and_no_history() {
        let cfg = RiskConfig::default();
        let mut s = RiskState::new();
        let a = s.assess(&cfg, 1_700_000_000_000_000);
        assert_eq!(a.day, "2023-11-14");
        assert_eq!(a.drivers.len(), FEATURES.len());
        assert!(a.probability > 0.0 && a.probability < cfg.threshold);
        assert!(a.alert.is_none() && !a.rule_met);
        let acwr = a.drivers.iter().find(|d| d.feature == "acwr").unwrap();
        assert_eq!(acwr.value, 1.0);
        assert_eq!(acwr.contribution, 0.0);
    }
}
