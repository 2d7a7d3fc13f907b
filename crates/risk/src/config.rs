//! Every threshold and coefficient of alerting and risk, typed, with its default and the
//! reason for it: a citation, `docs/biomechanics.md`, or **\[tune\]** for engineering starting
//! points. There is no outcome data in this repository: the risk coefficients are plausible
//! priors (stated per term), not fitted values, and must be refitted on real flare-up reports.
//!
//! Invariants:
//! - `#[serde(default, deny_unknown_fields)]` everywhere: a deployment overrides only what it
//!   tunes, and a misspelt key is an error rather than a silently ignored setting.
//! - [`Config::validated`] clamps every value into a range where the engines stay finite and
//!   the documented properties hold (non-finite values → defaults). In particular:
//!   - every repetition condition needs at least 2 reps/events, so one noisy rep never fires;
//!   - risk weights have the signs that make the monotonic properties true (more damage,
//!     more events, more flare-ups → higher P; `|fitness weight| ≤ fatigue weight`);
//!   - the ACWR term is bounded so that, with every other feature at its reference, it can
//!     never lift P above the alert threshold (Impellizzeri et al. 2020: ACWR is an input,
//!     never the alarm).
//! - [`Config::check`] names the fields a strict loader should reject.

use serde::{Deserialize, Serialize};

/// A configuration that cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// These fields are non-finite or outside their accepted range (see `Config::validated`).
    #[error("configuration values out of range: {}", fields.join(", "))]
    OutOfRange { fields: Vec<&'static str> },
}

/// The whole configuration of `liftguard-risk`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Version of the alert and risk model, stamped on `AlertRecord`/`RiskRecord`. Bump when
    /// outputs change meaning (e.g. refitted coefficients).
    pub model_version: u32,
    pub alerts: AlertConfig,
    pub risk: RiskConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model_version: 1,
            alerts: AlertConfig::default(),
            risk: RiskConfig::default(),
        }
    }
}

/// In-session alerts ([`crate::AlertEngine`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    pub extensor: ExtensorAlertConfig,
    pub fatigue: FatigueAlertConfig,
    pub stability: StabilityAlertConfig,
    pub session: SessionAlertConfig,
    /// Minimum event time between two alerts of one kind (per athlete).
    pub cooldown_s: CooldownConfig,
}

/// Extensor-moment events within a set (fault 1, biomechanics.md "Extensor-moment event").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtensorAlertConfig {
    /// Events in the set needed to fire (≥ 2: one event alone is tolerable, and the
    /// detector's single false positive must never fire). \[tune\]
    pub min_events: u32,
    /// ... and their share of the set's reps so far. \[tune\]
    pub min_share: f64,
    /// Share at which the alert is Critical ("stop the set"). \[tune\]
    pub critical_share: f64,
    /// Recommended load reduction for the next sets, fraction. \[tune\]
    pub deload_fraction: f64,
}

impl Default for ExtensorAlertConfig {
    fn default() -> Self {
        ExtensorAlertConfig {
            min_events: 2,
            min_share: 0.3,
            critical_share: 0.5,
            deload_fraction: 0.2,
        }
    }
}

/// Fatigue score (biomechanics.md "Fatigue score", 0–100) held high over consecutive reps.
/// Measured on simulated athletes (crates/risk/tests/alerts_sim.rs): 5 sets of 12 deadlifts at
/// 80 % of capacity with 2-min rests peak at 80–82 in the last sets; 3 light sets (5 reps at
/// 45 %) stay below 35; a random 30-min session ends at 75–90.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FatigueAlertConfig {
    /// Score at or above which a rep counts as fatigued. \[tune\]
    pub threshold: f64,
    /// Consecutive fatigued reps in the set needed to fire (≥ 2). \[tune\]
    pub consecutive_reps: u32,
    /// Score of the firing rep at or above which the alert is Critical. \[tune\]
    pub critical: f64,
    /// Recommended rest before the next set, minutes. \[tune\]
    pub rest_min: f64,
    /// Recommended load reduction if training continues, fraction. \[tune\]
    pub deload_fraction: f64,
}

impl Default for FatigueAlertConfig {
    fn default() -> Self {
        FatigueAlertConfig {
            threshold: 70.0,
            consecutive_reps: 3,
            critical: 85.0,
            rest_min: 5.0,
            deload_fraction: 0.15,
        }
    }
}

/// Stability deficit on heavy eccentrics (fault 2, biomechanics.md "Stability deficit").
/// Measured on simulated athletes: reps without injected instability score 0–6 (rarely
/// above 5), unstable heavy reps 6–17.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StabilityAlertConfig {
    /// A rep is heavy when load ≥ this fraction of the athlete's capacity (capacity unknown →
    /// never heavy). "Heavy" in strength training is usually ≥ 75–80 % 1RM. \[tune\]
    pub heavy_fraction: f64,
    /// Deficit at or above which a heavy rep counts as unstable. \[tune\]
    pub deficit_threshold: f64,
    /// Unstable reps among the last `window_reps` heavy reps of the set needed to fire (≥ 2). \[tune\]
    pub min_reps: u32,
    /// Heavy reps considered (the set's most recent). \[tune\]
    pub window_reps: u32,
    /// Mean deficit of the unstable reps at or above which the alert is Critical. \[tune\]
    pub critical_mean_deficit: f64,
    /// Recommended load reduction, fraction. \[tune\]
    pub deload_fraction: f64,
}

impl Default for StabilityAlertConfig {
    fn default() -> Self {
        StabilityAlertConfig {
            heavy_fraction: 0.75,
            deficit_threshold: 6.0,
            min_reps: 3,
            window_reps: 5,
            critical_mean_deficit: 12.0,
            deload_fraction: 0.15,
        }
    }
}

/// Extensor events over a whole session (biomechanics.md "Multi-day flare-up risk": alert when
/// extensor events exceed ~20 % of a session's reps).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionAlertConfig {
    /// Fire when events / reps is above this share (biomechanics.md: ~20 %). \[tune\]
    pub min_share: f64,
    /// Share at or above which the alert is Critical. \[tune\]
    pub critical_share: f64,
    /// Sessions with fewer reps never fire (a share of 2 reps means little). \[tune\]
    pub min_reps: u32,
    /// Sessions with fewer events never fire (≥ 2). \[tune\]
    pub min_events: u32,
    /// Recommended rest days from heavy hinging. \[tune\]
    pub rest_days: u32,
    /// Recommended load reduction for the next session, fraction. \[tune\]
    pub deload_fraction: f64,
}

impl Default for SessionAlertConfig {
    fn default() -> Self {
        SessionAlertConfig {
            min_share: 0.2,
            critical_share: 0.4,
            min_reps: 10,
            min_events: 2,
            rest_days: 2,
            deload_fraction: 0.3,
        }
    }
}

/// Per-kind cooldowns, seconds of event time. Within a cooldown an alert of that kind is
/// held back (the condition is re-checked on the next rep). \[tune\]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CooldownConfig {
    pub extensor_events: f64,
    pub fatigue: f64,
    pub stability: f64,
    pub session_event_share: f64,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        CooldownConfig {
            // About two sets of a typical session: one notification, then time to act on it.
            extensor_events: 300.0,
            // Fatigue persists (τ 5000 s): once per 15 minutes is enough.
            fatigue: 900.0,
            stability: 300.0,
            // One per session already; sessions are split by gaps of ≥ 30 min (processor
            // `session_gap_s`), so this only guards against sessions cut short by restarts.
            session_event_share: 600.0,
        }
    }
}

impl CooldownConfig {
    pub(crate) fn seconds(&self, kind: crate::AlertKind) -> f64 {
        match kind {
            crate::AlertKind::ExtensorEvents => self.extensor_events,
            crate::AlertKind::Fatigue => self.fatigue,
            crate::AlertKind::Stability => self.stability,
            crate::AlertKind::SessionEventShare => self.session_event_share,
            crate::AlertKind::FlareUpRisk => 0.0,
        }
    }
}

/// Multi-day flare-up risk ([`crate::RiskState`]); biomechanics.md "Multi-day flare-up risk".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Alert when P(flare-up within 72 h) is above this (biomechanics.md: 0.5) ... \[tune\]
    pub threshold: f64,
    /// ... and rising: P(d) ≥ P(d − 1) and P(d) − P(d − rise_days) ≥ min_rise
    /// (biomechanics.md: "rising over 3 days"). \[tune\]
    pub rise_days: u32,
    pub min_rise: f64,
    /// P at or above which the alert is Critical. \[tune\]
    pub critical: f64,
    /// Minimum event time between two flare-up alerts, s (and never two on one UTC day):
    /// 72 h, the prediction horizon. \[tune\]
    pub cooldown_s: f64,
    /// Window of the event, fatigue and stability features, days (the 72-h horizon). \[tune\]
    pub recent_days: u32,
    /// Spans of the acute and chronic EWMA of daily damage, λ = 2/(N + 1): 7 and 28 days
    /// give 0.25 and 0.069 (Williams et al. 2017, BJSM 51:209).
    pub acute_days: f64,
    pub chronic_days: f64,
    /// ACWR values are clamped to [0, acwr_cap] (new athletes and returns from breaks give
    /// meaningless large ratios). \[tune\]
    pub acwr_cap: f64,
    /// Banister impulse-response time constants, days: fitness 42, fatigue 7 (Banister et al.
    /// 1975; the usual values, biomechanics.md).
    pub fitness_tau_days: f64,
    pub fatigue_tau_days: f64,
    /// Damage of a typical training day (LiFFT, moment normalised to capacity): the unit of
    /// the Banister features. Measured: a 30-min simulated session gives 2–4 × 10⁻³. \[tune\]
    pub reference_day_damage: f64,
    /// Damage values below this count as this in the log10 features (a rest day). \[tune\]
    pub damage_floor: f64,
    /// Recency weighting of prior flare-ups: weight·e^(−age/τ), τ in days. \[tune\]
    pub flare_tau_days: f64,
    /// Recommended rest days in a flare-up alert. \[tune\]
    pub rest_days: u32,
    /// Recommended deload in a flare-up alert, fraction. \[tune\]
    pub deload_fraction: f64,
    pub coefficients: RiskCoefficients,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            threshold: 0.5,
            rise_days: 3,
            min_rise: 0.05,
            critical: 0.75,
            cooldown_s: 259_200.0,
            recent_days: 3,
            acute_days: 7.0,
            chronic_days: 28.0,
            acwr_cap: 3.0,
            fitness_tau_days: 42.0,
            fatigue_tau_days: 7.0,
            reference_day_damage: 2.5e-3,
            damage_floor: 1e-4,
            flare_tau_days: 30.0,
            rest_days: 2,
            deload_fraction: 0.3,
            coefficients: RiskCoefficients::default(),
        }
    }
}

/// One term of the logistic hazard: contribution = weight · (value − reference); for the event
/// count weight · (ln(1 + value) − ln(1 + reference)); for peak fatigue and stability deficit
/// weight · max(0, value − reference) (see `crate::risk`). At the reference every
/// contribution is 0 and the log-odds are the intercept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Term {
    pub weight: f64,
    pub reference: f64,
}

impl Default for Term {
    fn default() -> Self {
        Term {
            weight: 0.0,
            reference: 0.0,
        }
    }
}

const fn term(weight: f64, reference: f64) -> Term {
    Term { weight, reference }
}

/// Coefficients of the discrete-time logistic hazard model
/// logit P(flare-up within 72 h | day d) = intercept + Σ contributions.
///
/// **Not fitted**: there are no flare-up outcomes in this repository. The values are priors
/// chosen so that (a) a reference athlete-day (≈ 3 sessions a week of ~2.5 × 10⁻³ damage, few
/// extensor events, moderate fatigue, no flare-up history) gives the baseline hazard, (b) no
/// single training-load feature reaches the threshold alone, (c) the effect sizes are in the
/// range the literature reports for the factor's odds ratio. All \[tune\]; refit on reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskCoefficients {
    /// Baseline log-odds for the reference athlete-day: logit(0.03) ≈ −3.5, i.e. a flare-up
    /// about every 100 days of a recreational lifter with a history of back pain, within the
    /// range of recurrence rates reported for low-back pain (≈ 33 % within a year, da Silva
    /// et al. 2017, with several flares per affected year). \[tune\]
    pub intercept: f64,
    /// log10 of the day's cumulative damage. LiFFT's slope is 1.03 per decade for long-term
    /// high-risk jobs (Gallagher et al. 2017); half of it here, because the 72-h outcome is
    /// different and the 7-day sum carries part of the same information. \[tune\]
    pub damage_day_log10: Term,
    /// log10 of the last 7 days' damage (same reasoning). \[tune\]
    pub damage_7d_log10: Term,
    /// Acute:chronic ratio of the damage EWMAs. Small and bounded (validated): an input, never
    /// the alarm (Impellizzeri et al. 2020; Lolli et al. 2019). \[tune\]
    pub acwr: Term,
    /// Banister fatigue, in reference days per day (steady-state normalised). \[tune\]
    pub banister_fatigue: Term,
    /// Banister fitness, same unit; negative weight: chronic load protects (Gabbett 2016).
    /// Validated: |weight| ≤ the fatigue weight, so more damage today always raises P. \[tune\]
    pub banister_fitness: Term,
    /// Extensor-moment events in the recent window, on ln(1 + count): events are the
    /// mechanism of fault 1 (biomechanics.md). \[tune\]
    pub extensor_events: Term,
    /// Events per rep in the recent window: weight 4 makes a 30 % rate (the in-set alert
    /// level) worth about +1 log-odds (OR ≈ 2.7). \[tune\]
    pub extensor_event_rate: Term,
    /// Peak fatigue score (0–100) in the recent window, above the reference only (a 30-min
    /// simulated session peaks at 75–90); +0.03 per point: 90 vs 65 ≈ OR 2. \[tune\]
    pub peak_fatigue: Term,
    /// Mean stability deficit per rep in the recent window (fault 2), above the reference only
    /// (simulated sessions average 2–3.5); +0.15 per unit: a day of unstable heavy reps
    /// (mean ≈ 8) ≈ +0.75. \[tune\]
    pub stability_deficit: Term,
    /// Recency-weighted prior flare-ups. Previous episodes are the strongest known predictor
    /// of low-back pain recurrence (OR ≈ 2–4, e.g. Taylor et al. 2014; Hägglund et al. 2006
    /// for sports injury in general): one recent severe flare-up ≈ +1.1 log-odds. \[tune\]
    pub prior_flare_ups: Term,
}

impl Default for RiskCoefficients {
    fn default() -> Self {
        RiskCoefficients {
            intercept: -3.5,
            damage_day_log10: term(0.5, -2.6),
            damage_7d_log10: term(0.5, -2.1),
            acwr: term(0.3, 1.0),
            banister_fatigue: term(0.4, 0.4),
            banister_fitness: term(-0.4, 0.4),
            extensor_events: term(0.35, 3.0),
            extensor_event_rate: term(4.0, 0.05),
            peak_fatigue: term(0.03, 65.0),
            stability_deficit: term(0.15, 3.0),
            prior_flare_ups: term(1.2, 0.0),
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

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
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

    fn normalized(&self) -> (Config, Vec<&'static str>) {
        let (alerts, mut changed) = self.alerts.normalized();
        let (risk, more) = self.risk.normalized();
        changed.extend(more);
        (
            Config {
                model_version: self.model_version,
                alerts,
                risk,
            },
            changed,
        )
    }
}

// `v!(c, d, changed; field, lo, hi)`: clamp a float field into [lo, hi], non-finite → default.
macro_rules! v {
    ($c:ident, $d:ident, $changed:ident; $($f:ident).+, $lo:expr, $hi:expr) => {
        let before = $c.$($f).+;
        $c.$($f).+ = clamp(before, $lo, $hi, $d.$($f).+);
        if $c.$($f).+.to_bits() != before.to_bits() {
            $changed.push(stringify!($($f).+));
        }
    };
}
// `u!(c, changed; field, lo, hi)`: clamp an integer field into [lo, hi].
macro_rules! u {
    ($c:ident, $changed:ident; $($f:ident).+, $lo:expr, $hi:expr) => {
        let before = $c.$($f).+;
        $c.$($f).+ = before.clamp($lo, $hi);
        if $c.$($f).+ != before {
            $changed.push(stringify!($($f).+));
        }
    };
}

impl AlertConfig {
    /// A copy with every value clamped into a safe range.
    pub fn validated(&self) -> AlertConfig {
        self.normalized().0
    }

    fn normalized(&self) -> (AlertConfig, Vec<&'static str>) {
        let d = AlertConfig::default();
        let mut c = *self;
        let mut changed = Vec::new();
        u!(c, changed; extensor.min_events, 2, 1000);
        v!(c, d, changed; extensor.min_share, 0.0, 1.0);
        v!(c, d, changed; extensor.critical_share, c.extensor.min_share, 1.0);
        v!(c, d, changed; extensor.deload_fraction, 0.0, 0.9);
        v!(c, d, changed; fatigue.threshold, 0.0, 100.0);
        u!(c, changed; fatigue.consecutive_reps, 2, 1000);
        v!(c, d, changed; fatigue.critical, c.fatigue.threshold, 100.0);
        v!(c, d, changed; fatigue.rest_min, 0.0, 240.0);
        v!(c, d, changed; fatigue.deload_fraction, 0.0, 0.9);
        v!(c, d, changed; stability.heavy_fraction, 0.0, 2.0);
        v!(c, d, changed; stability.deficit_threshold, 0.0, 1e6);
        u!(c, changed; stability.window_reps, 2, crate::alerts::MAX_WINDOW as u32);
        u!(c, changed; stability.min_reps, 2, c.stability.window_reps);
        v!(c, d, changed; stability.critical_mean_deficit, c.stability.deficit_threshold, 1e6);
        v!(c, d, changed; stability.deload_fraction, 0.0, 0.9);
        v!(c, d, changed; session.min_share, 0.0, 1.0);
        v!(c, d, changed; session.critical_share, c.session.min_share, 1.0);
        u!(c, changed; session.min_reps, 1, 100_000);
        u!(c, changed; session.min_events, 2, 100_000);
        u!(c, changed; session.rest_days, 0, 30);
        v!(c, d, changed; session.deload_fraction, 0.0, 0.9);
        v!(c, d, changed; cooldown_s.extensor_events, 0.0, 7.0 * 86_400.0);
        v!(c, d, changed; cooldown_s.fatigue, 0.0, 7.0 * 86_400.0);
        v!(c, d, changed; cooldown_s.stability, 0.0, 7.0 * 86_400.0);
        v!(c, d, changed; cooldown_s.session_event_share, 0.0, 7.0 * 86_400.0);
        (c, changed)
    }
}

impl RiskConfig {
    /// A copy with every value clamped into a safe range.
    pub fn validated(&self) -> RiskConfig {
        self.normalized().0
    }

    fn normalized(&self) -> (RiskConfig, Vec<&'static str>) {
        let d = RiskConfig::default();
        let mut c = *self;
        let mut changed = Vec::new();
        v!(c, d, changed; threshold, 0.01, 0.99);
        u!(c, changed; rise_days, 1, 7);
        v!(c, d, changed; min_rise, 0.0, 1.0);
        v!(c, d, changed; critical, c.threshold, 0.999);
        v!(c, d, changed; cooldown_s, 0.0, 30.0 * 86_400.0);
        u!(c, changed; recent_days, 1, 7);
        v!(c, d, changed; acute_days, 1.0, 28.0);
        v!(c, d, changed; chronic_days, c.acute_days, 90.0);
        v!(c, d, changed; acwr_cap, 1.5, 5.0);
        v!(c, d, changed; fatigue_tau_days, 1.0, 60.0);
        v!(c, d, changed; fitness_tau_days, c.fatigue_tau_days, 365.0);
        v!(c, d, changed; reference_day_damage, 1e-9, 1.0);
        v!(c, d, changed; damage_floor, 1e-12, 1e-2);
        v!(c, d, changed; flare_tau_days, 1.0, 3650.0);
        u!(c, changed; rest_days, 0, 30);
        v!(c, d, changed; deload_fraction, 0.0, 0.9);
        let thr_logit = logit(c.threshold);
        v!(c, d, changed; coefficients.intercept, -20.0, thr_logit - 1.0);
        v!(c, d, changed; coefficients.damage_day_log10.weight, 0.0, 5.0);
        v!(c, d, changed; coefficients.damage_day_log10.reference, -12.0, 0.0);
        v!(c, d, changed; coefficients.damage_7d_log10.weight, 0.0, 5.0);
        v!(c, d, changed; coefficients.damage_7d_log10.reference, -12.0, 1.0);
        v!(c, d, changed; coefficients.acwr.reference, 0.5, 1.5);
        // ACWR alone (every other term at its reference) stays at most half-way from the
        // baseline to the threshold.
        let acwr_max = 0.5 * (thr_logit - c.coefficients.intercept)
            / (c.acwr_cap - c.coefficients.acwr.reference);
        v!(c, d, changed; coefficients.acwr.weight, 0.0, acwr_max.max(0.0));
        v!(c, d, changed; coefficients.banister_fatigue.weight, 0.0, 5.0);
        v!(c, d, changed; coefficients.banister_fatigue.reference, 0.0, 10.0);
        v!(c, d, changed; coefficients.banister_fitness.weight, -c.coefficients.banister_fatigue.weight, 0.0);
        v!(c, d, changed; coefficients.banister_fitness.reference, 0.0, 10.0);
        v!(c, d, changed; coefficients.extensor_events.weight, 0.0, 5.0);
        v!(c, d, changed; coefficients.extensor_events.reference, 0.0, 1000.0);
        v!(c, d, changed; coefficients.extensor_event_rate.weight, 0.0, 20.0);
        v!(c, d, changed; coefficients.extensor_event_rate.reference, 0.0, 1.0);
        v!(c, d, changed; coefficients.peak_fatigue.weight, 0.0, 0.5);
        v!(c, d, changed; coefficients.peak_fatigue.reference, 0.0, 100.0);
        v!(c, d, changed; coefficients.stability_deficit.weight, 0.0, 5.0);
        v!(c, d, changed; coefficients.stability_deficit.reference, 0.0, 100.0);
        v!(c, d, changed; coefficients.prior_flare_ups.weight, 0.0, 5.0);
        v!(c, d, changed; coefficients.prior_flare_ups.reference, 0.0, 10.0);
        (c, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().check(), Ok(()));
        assert_eq!(Config::default().validated(), Config::default());
    }

    #[test]
    fn validated_clamps_nonsense() {
        let mut c = Config::default();
        c.alerts.extensor.min_events = 1;
        c.alerts.fatigue.consecutive_reps = 0;
        c.alerts.stability.window_reps = 1000;
        c.risk.threshold = f64::NAN;
        c.risk.coefficients.acwr.weight = 100.0;
        c.risk.coefficients.banister_fitness.weight = -100.0;
        let v = c.validated();
        assert_eq!(v.alerts.extensor.min_events, 2);
        assert_eq!(v.alerts.fatigue.consecutive_reps, 2);
        assert_eq!(
            v.alerts.stability.window_reps,
            crate::alerts::MAX_WINDOW as u32
        );
        assert_eq!(v.risk.threshold, 0.5);
        assert!(v.risk.coefficients.acwr.weight < 1.0);
        assert_eq!(
            v.risk.coefficients.banister_fitness.weight,
            -v.risk.coefficients.banister_fatigue.weight
        );
        match c.check() {
            Err(ConfigError::OutOfRange { fields }) => {
                assert!(fields.contains(&"extensor.min_events"), "{fields:?}");
                assert!(fields.contains(&"coefficients.acwr.weight"), "{fields:?}");
                assert!(fields.contains(&"threshold"), "{fields:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_documents_and_unknown_fields() {
        let c: Config = serde_json::from_str(r#"{"alerts":{"fatigue":{"threshold":75}}}"#).unwrap();
        assert_eq!(c.alerts.fatigue.threshold, 75.0);
        assert_eq!(c.alerts.fatigue.consecutive_reps, 3);
        assert_eq!(c.risk, RiskConfig::default());
        let bad = serde_json::from_str::<Config>(r#"{"alerts":{"fatigue":{"treshold":75}}}"#);
        assert!(bad.is_err());
    }
}
