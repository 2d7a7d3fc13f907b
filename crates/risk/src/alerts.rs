//! In-session alerts: what to tell the athlete (and the coach) while they train.
//!
//! Rules (thresholds in [`AlertConfig`]; biomechanics.md "Extensor-moment event", "Fatigue
//! score", "Stability deficit", "Multi-day flare-up risk"):
//! - **Extensor events** (fault 1): in the current set, events ≥ `min_events` (≥ 2) and
//!   events / reps so far ≥ `min_share`. Critical at `critical_share`.
//! - **Fatigue**: fatigue score ≥ `threshold` on `consecutive_reps` (≥ 2) consecutive reps of
//!   the set. Critical when the firing rep scores ≥ `critical`.
//! - **Stability** (fault 2): among the set's last `window_reps` *heavy* reps (load ≥
//!   `heavy_fraction` × capacity; unknown capacity never counts), at least `min_reps` (≥ 2)
//!   with a deficit ≥ `deficit_threshold`. Critical when their mean deficit ≥
//!   `critical_mean_deficit`.
//! - **Session event share**, at the session's end: reps ≥ `min_reps`, events ≥ `min_events`
//!   and events / reps > `min_share` (~20 %).
//!
//! Invariants:
//! - Every rule has a repetition condition (≥ 2 reps or events), so one noisy rep never fires.
//! - Dedupe: at most one alert per kind per set (a set is a run of consecutive reps with the
//!   same `set_id` in one session) and one session-share alert per session.
//! - Cooldown: an alert of a kind is held back while less than its cooldown (event time) has
//!   passed since the last alert of that kind; the rule is re-checked on later reps, so a
//!   held-back condition may still fire later in the same set.
//! - A rep of a new session closes the previous one as `on_session_end` would (at the end of
//!   its last rep), so a missed session end never loses the session alert.
//! - Bounded: one session and one set are tracked; rep-id lists hold at most [`MAX_REP_IDS`]
//!   (the most recent), the heavy-rep window at most [`MAX_WINDOW`]; ids are cut to
//!   [`crate::MAX_ID_BYTES`]. Serialised state ≤ [`crate::MAX_STATE_BYTES`] (tested).
//! - Pure and deterministic: alert times are rep end times or the given session end.

use liftguard_model::Exercise;
use serde::{Deserialize, Serialize};

use crate::config::AlertConfig;
use crate::{Alert, AlertKind, Evidence, RepFacts, Severity, bounded_id, finite};

/// Rep ids carried by one alert (the most recent ones that drove it).
pub const MAX_REP_IDS: usize = 8;
/// Largest heavy-rep window of the stability rule.
pub const MAX_WINDOW: usize = 10;

/// Per-athlete alert state. Create one per athlete, feed every rep in time order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertEngine {
    session: Option<SessionTrack>,
    set: Option<SetTrack>,
    /// Event time of the last alert of each kind (`AlertKind` order), for cooldowns.
    last_fired_us: [Option<i64>; 5],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionTrack {
    session_id: String,
    reps: u32,
    events: u32,
    event_rep_ids: Vec<String>,
    last_end_us: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SetTrack {
    set_id: String,
    exercise: Exercise,
    /// Load and capacity of the latest rep, kg.
    load_kg: f64,
    capacity_kg: f64,
    reps: u32,
    events: u32,
    event_rep_ids: Vec<String>,
    /// Consecutive reps at or above the fatigue threshold, and the latest of them.
    fatigue_run: u32,
    fatigue_run_ids: Vec<String>,
    /// The set's most recent heavy reps (≤ window).
    heavy: Vec<HeavyRep>,
    /// Kinds already fired in this set (`AlertKind` order; the first three are set-level).
    fired: [bool; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HeavyRep {
    rep_id: String,
    deficit: f64,
}

fn push_capped(ids: &mut Vec<String>, id: &str, cap: usize) {
    if ids.len() >= cap {
        ids.remove(0);
    }
    ids.push(bounded_id(id));
}

/// The easier variant of a lift to regress to.
fn regression(ex: Exercise) -> &'static str {
    match ex {
        Exercise::Deadlift => "Romanian deadlifts from blocks or a dowel hip-hinge drill",
        Exercise::Squat => "goblet squats or box squats",
        Exercise::KettlebellSwing => "kettlebell deadlifts and hip-hinge drills",
        Exercise::Carry => "a lighter, shorter carry",
    }
}

fn pct(fraction: f64) -> f64 {
    (fraction * 100.0).round()
}

/// " (to about N kg)" for a load reduced by `fraction`, or "" when the load is unknown.
fn target_load(load_kg: f64, fraction: f64) -> String {
    if load_kg > 0.0 {
        format!(" (to about {:.0} kg)", load_kg * (1.0 - fraction))
    } else {
        String::new()
    }
}

impl AlertEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one rep (in event-time order); appends any alert it completes to `out`.
    pub fn on_rep(&mut self, cfg: &AlertConfig, rep: &RepFacts, out: &mut Vec<Alert>) {
        let cfg = cfg.validated();
        let session_id = bounded_id(&rep.session_id);
        let set_id = bounded_id(&rep.set_id);
        if let Some(s) = &self.session
            && s.session_id != session_id
        {
            let (id, end) = (s.session_id.clone(), s.last_end_us);
            self.close_session(&cfg, &id, end, out);
        }
        let session = self.session.get_or_insert_with(|| SessionTrack {
            session_id: session_id.clone(),
            reps: 0,
            events: 0,
            event_rep_ids: Vec::new(),
            last_end_us: rep.end_us,
        });
        session.reps = session.reps.saturating_add(1);
        if rep.extensor_event {
            session.events = session.events.saturating_add(1);
            push_capped(&mut session.event_rep_ids, &rep.rep_id, MAX_REP_IDS);
        }
        session.last_end_us = session.last_end_us.max(rep.end_us);

        if self.set.as_ref().is_none_or(|s| s.set_id != set_id) {
            self.set = Some(SetTrack {
                set_id,
                exercise: rep.exercise,
                load_kg: 0.0,
                capacity_kg: 0.0,
                reps: 0,
                events: 0,
                event_rep_ids: Vec::new(),
                fatigue_run: 0,
                fatigue_run_ids: Vec::new(),
                heavy: Vec::new(),
                fired: [false; 3],
            });
        }
        let Some(set) = self.set.as_mut() else {
            return;
        };
        let load = finite(rep.load_kg).max(0.0);
        let capacity = finite(rep.capacity_kg).max(0.0);
        set.exercise = rep.exercise;
        set.load_kg = load;
        set.capacity_kg = capacity;
        set.reps = set.reps.saturating_add(1);
        if rep.extensor_event {
            set.events = set.events.saturating_add(1);
            push_capped(&mut set.event_rep_ids, &rep.rep_id, MAX_REP_IDS);
        }
        let fatigue = finite(rep.fatigue_score).clamp(0.0, 100.0);
        if fatigue >= cfg.fatigue.threshold {
            set.fatigue_run = set.fatigue_run.saturating_add(1);
            push_capped(&mut set.fatigue_run_ids, &rep.rep_id, MAX_REP_IDS);
        } else {
            set.fatigue_run = 0;
            set.fatigue_run_ids.clear();
        }
        let heavy = capacity > 0.0 && load >= cfg.stability.heavy_fraction * capacity;
        if heavy {
            let window = cfg.stability.window_reps as usize;
            while set.heavy.len() >= window {
                set.heavy.remove(0);
            }
            set.heavy.push(HeavyRep {
                rep_id: bounded_id(&rep.rep_id),
                deficit: finite(rep.stability_deficit).max(0.0),
            });
        }

        let t = rep.end_us;
        let candidates = [
            self.extensor_alert(&cfg, t),
            self.fatigue_alert(&cfg, t, fatigue),
            self.stability_alert(&cfg, t),
        ];
        for alert in candidates.into_iter().flatten() {
            if self.cooled_down(&cfg, alert.kind, t) {
                self.last_fired_us[alert.kind.index()] = Some(t);
                if let Some(set) = self.set.as_mut() {
                    set.fired[alert.kind.index()] = true;
                }
                out.push(alert);
            }
        }
    }

    /// Closes `session_id` at `end_us` (event time): the session-share rule is evaluated
    /// and the session and set state cleared. A session this engine is not tracking (already
    /// closed, or never seen) is ignored.
    pub fn on_session_end(
        &mut self,
        cfg: &AlertConfig,
        session_id: &str,
        end_us: i64,
        out: &mut Vec<Alert>,
    ) {
        let cfg = cfg.validated();
        let id = bounded_id(session_id);
        if self.session.as_ref().is_some_and(|s| s.session_id == id) {
            self.close_session(&cfg, &id, end_us, out);
        }
    }

    fn cooled_down(&self, cfg: &AlertConfig, kind: AlertKind, t: i64) -> bool {
        let cooldown_us = (cfg.cooldown_s.seconds(kind) * 1e6) as i64;
        match self.last_fired_us[kind.index()] {
            Some(last) if cooldown_us > 0 => t.saturating_sub(last) >= cooldown_us,
            _ => true,
        }
    }

    fn close_session(
        &mut self,
        cfg: &AlertConfig,
        session_id: &str,
        end_us: i64,
        out: &mut Vec<Alert>,
    ) {
        let Some(s) = self.session.take() else {
            return;
        };
        self.set = None;
        let c = &cfg.session;
        let share = if s.reps > 0 {
            f64::from(s.events) / f64::from(s.reps)
        } else {
            0.0
        };
        if s.reps < c.min_reps || s.events < c.min_events || share <= c.min_share {
            return;
        }
        let kind = AlertKind::SessionEventShare;
        if !self.cooled_down(cfg, kind, end_us) {
            return;
        }
        self.last_fired_us[kind.index()] = Some(end_us);
        let severity = if share >= c.critical_share {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut recommendation = format!(
            "Your lower back started the lift on {} of {} reps today. Take {} rest days from \
             heavy hinging (deadlifts, swings, heavy squats). Next session, reduce your loads \
             by {:.0}% and practise the hip hinge (dowel drill, Romanian deadlift) until the \
             hips lead every rep.",
            s.events,
            s.reps,
            c.rest_days,
            pct(c.deload_fraction)
        );
        if severity == Severity::Critical {
            recommendation.push_str(" If your back is sore or stiff tomorrow, see your clinician.");
        }
        out.push(Alert {
            kind,
            severity,
            time_us: end_us,
            session_id: session_id.to_owned(),
            set_id: None,
            title: format!(
                "Back-led lifting on {:.0}% of this session's reps",
                pct(share)
            ),
            recommendation,
            evidence: vec![
                Evidence::new(
                    "session_extensor_events",
                    f64::from(s.events),
                    f64::from(c.min_events),
                    "reps",
                ),
                Evidence::new(
                    "session_reps",
                    f64::from(s.reps),
                    f64::from(c.min_reps),
                    "reps",
                ),
                Evidence::new("session_event_share", share, c.min_share, "fraction"),
            ],
            rep_ids: s.event_rep_ids,
        });
    }

    fn base_alert(&self, kind: AlertKind, severity: Severity, t: i64) -> Option<Alert> {
        let (session, set) = (self.session.as_ref()?, self.set.as_ref()?);
        Some(Alert {
            kind,
            severity,
            time_us: t,
            session_id: session.session_id.clone(),
            set_id: Some(set.set_id.clone()),
            title: String::new(),
            recommendation: String::new(),
            evidence: Vec::new(),
            rep_ids: Vec::new(),
        })
    }

    fn extensor_alert(&self, cfg: &AlertConfig, t: i64) -> Option<Alert> {
        let set = self.set.as_ref()?;
        let c = &cfg.extensor;
        let kind = AlertKind::ExtensorEvents;
        let share = f64::from(set.events) / f64::from(set.reps.max(1));
        if set.fired[kind.index()] || set.events < c.min_events || share < c.min_share {
            return None;
        }
        let critical = share >= c.critical_share;
        let severity = if critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut a = self.base_alert(kind, severity, t)?;
        a.title = format!(
            "Back took over the lift on {} of {} reps ({})",
            set.events, set.reps, set.exercise
        );
        let cue = "drive with your hips and glutes: push the floor away and let the chest and \
                   hips rise together";
        a.recommendation = if critical {
            format!(
                "Stop this set: your lower back, not your hips, started {} of the last {} lifts. \
                 For the rest of the session switch to {}, or reduce the load by {:.0}%{} and {cue}.",
                set.events,
                set.reps,
                regression(set.exercise),
                pct(c.deload_fraction),
                target_load(set.load_kg, c.deload_fraction)
            )
        } else {
            format!(
                "Your lower back, not your hips, started {} of the last {} lifts. Reduce the load \
                 by {:.0}%{} for the next sets and {cue}. If it keeps happening, switch to {}.",
                set.events,
                set.reps,
                pct(c.deload_fraction),
                target_load(set.load_kg, c.deload_fraction),
                regression(set.exercise)
            )
        };
        a.evidence = vec![
            Evidence::new(
                "set_extensor_events",
                f64::from(set.events),
                f64::from(c.min_events),
                "reps",
            ),
            Evidence::new("set_extensor_event_share", share, c.min_share, "fraction"),
            Evidence::new("set_reps", f64::from(set.reps), 0.0, "reps"),
            Evidence::new("load", set.load_kg, 0.0, "kg"),
        ];
        a.rep_ids = set.event_rep_ids.clone();
        Some(a)
    }

    fn fatigue_alert(&self, cfg: &AlertConfig, t: i64, score: f64) -> Option<Alert> {
        let set = self.set.as_ref()?;
        let c = &cfg.fatigue;
        let kind = AlertKind::Fatigue;
        if set.fired[kind.index()] || set.fatigue_run < c.consecutive_reps {
            return None;
        }
        let critical = score >= c.critical;
        let severity = if critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut a = self.base_alert(kind, severity, t)?;
        a.title = format!(
            "Back extensors fatigued: score {:.0} for {} reps in a row",
            score, set.fatigue_run
        );
        a.recommendation = if critical {
            format!(
                "End heavy lifting for today: your back extensors are very fatigued ({:.0}/100), \
                 and fatigued extensors are when the back starts to take over the lift. Finish \
                 with light mobility work, and start lighter next session.",
                score
            )
        } else {
            format!(
                "End this set and rest at least {:.0} minutes before the next one. If you carry \
                 on, reduce the load by {:.0}%{} and stop as soon as the reps slow down.",
                c.rest_min,
                pct(c.deload_fraction),
                target_load(set.load_kg, c.deload_fraction)
            )
        };
        a.evidence = vec![
            Evidence::new("fatigue_score", score, c.threshold, "score"),
            Evidence::new(
                "consecutive_fatigued_reps",
                f64::from(set.fatigue_run),
                f64::from(c.consecutive_reps),
                "reps",
            ),
            Evidence::new("load", set.load_kg, 0.0, "kg"),
        ];
        a.rep_ids = set.fatigue_run_ids.clone();
        Some(a)
    }

    fn stability_alert(&self, cfg: &AlertConfig, t: i64) -> Option<Alert> {
        let set = self.set.as_ref()?;
        let c = &cfg.stability;
        let kind = AlertKind::Stability;
        if set.fired[kind.index()] {
            return None;
        }
        let unstable: Vec<&HeavyRep> = set
            .heavy
            .iter()
            .filter(|h| h.deficit >= c.deficit_threshold)
            .collect();
        let n = unstable.len() as u32;
        if n < c.min_reps {
            return None;
        }
        let mean = unstable.iter().map(|h| h.deficit).sum::<f64>() / f64::from(n);
        let critical = mean >= c.critical_mean_deficit;
        let severity = if critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut a = self.base_alert(kind, severity, t)?;
        let load_fraction = if set.capacity_kg > 0.0 {
            set.load_kg / set.capacity_kg
        } else {
            0.0
        };
        let lowering = if set.exercise == Exercise::Carry {
            "carrying"
        } else {
            "lowering"
        };
        a.title = format!(
            "Unstable {lowering} under heavy load: {} of the last {} heavy reps",
            n,
            set.heavy.len()
        );
        let below = (c.heavy_fraction * set.capacity_kg).max(0.0);
        let advice = format!(
            "bring the load below {:.0}% of your capacity (about {:.0} kg), lower the weight \
             slowly and under control (3 seconds down) and brace before every rep",
            pct(c.heavy_fraction),
            below
        );
        a.recommendation = if critical {
            format!(
                "Stop this set: your trunk is shaking while {lowering} this weight. For the next \
                 sets {advice}; if the shaking comes back, regress to {}.",
                regression(set.exercise)
            )
        } else {
            format!(
                "Your trunk is losing control while {lowering} this weight. For the next sets \
                 {advice}. Stop the set if the shaking continues."
            )
        };
        a.evidence = vec![
            Evidence::new(
                "unstable_heavy_reps",
                f64::from(n),
                f64::from(c.min_reps),
                "reps",
            ),
            Evidence::new(
                "heavy_reps_in_window",
                set.heavy.len() as f64,
                f64::from(c.window_reps),
                "reps",
            ),
            Evidence::new("mean_stability_deficit", mean, c.deficit_threshold, "z"),
            Evidence::new(
                "load_fraction_of_capacity",
                load_fraction,
                c.heavy_fraction,
                "fraction",
            ),
        ];
        a.rep_ids = unstable
            .iter()
            .rev()
            .take(MAX_REP_IDS)
            .rev()
            .map(|h| h.rep_id.clone())
            .collect();
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(i: i64, set: &str, event: bool) -> RepFacts {
        RepFacts {
            rep_id: format!("a-{i}"),
            set_id: set.to_owned(),
            session_id: "sess".to_owned(),
            exercise: Exercise::Deadlift,
            load_kg: 100.0,
            capacity_kg: 120.0,
            start_us: i * 5_000_000,
            end_us: i * 5_000_000 + 4_000_000,
            extensor_event: event,
            fatigue_score: 10.0,
            stability_deficit: 1.0,
            damage_per_cycle: 1e-4,
            peak_load_moment_nm: 200.0,
            eccentric_s: 1.5,
        }
    }

    #[test]
    fn push_capped_keeps_the_most_recent() {
        let mut v = Vec::new();
        for i in 0..20 {
            push_capped(&mut v, &format!("{i}"), 3);
        }
        assert_eq!(v, vec!["17", "18", "19"]);
    }

    #[test]
    fn two_events_in_two_reps_are_critical() {
        let cfg = AlertConfig::default();
        let mut e = AlertEngine::new();
        let mut out = Vec::new();
        e.on_rep(&cfg, &rep(0, "s1", true), &mut out);
        assert!(out.is_empty());
        e.on_rep(&cfg, &rep(1, "s1", true), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, AlertKind::ExtensorEvents);
        assert_eq!(out[0].severity, Severity::Critical);
        assert_eq!(out[0].rep_ids, vec!["a-0", "a-1"]);
        assert_eq!(out[0].time_us, 9_000_000);
        assert_eq!(out[0].set_id.as_deref(), Some("s1"));
        assert!(out[0].recommendation.contains("Romanian deadlift"));
        assert!(out[0].recommendation.contains("to about 80 kg"));
    }
}
