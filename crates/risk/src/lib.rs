//! `liftguard-risk`: in-session alerts and multi-day flare-up risk, from reps.
//!
//! The processor turns each biomechanics rep (`liftguard_biomech::Rep`) into a
//! [`RepFacts`] and feeds it, per athlete, to two independent state machines:
//!
//! ```text
//! RepFacts ─► AlertEngine::on_rep ──────────► Alert (extensor events, fatigue, stability)
//!          ─► AlertEngine::on_session_end ──► Alert (session event share)
//!          ─► RiskState::on_rep      (daily aggregates)
//! FlareUpReport ─► RiskState::on_flare_up
//! session end ─► RiskState::assess ─► RiskAssessment (P(flare-up within 72 h), drivers, Alert?)
//! ```
//!
//! The science and its sources are in `docs/biomechanics.md` ("Multi-day flare-up risk",
//! "Cumulative damage", "Fatigue score", "Stability deficit"); each module cites what it uses.
//!
//! Invariants (whole crate):
//! - Pure: no I/O, no async, no clock (all times are event times given by the caller), no
//!   randomness. The same inputs in the same order give bit-identical outputs and states.
//! - No panic and no NaN/inf for any input: non-finite numbers in [`RepFacts`] are treated as
//!   0 (or "unknown"), every feature is clamped into a documented range, every `f64` in a
//!   state or an output is finite.
//! - Bounded: every buffer is capped (see [`alerts`] and [`risk`]); ids kept in state are cut
//!   to [`MAX_ID_BYTES`]; each state serialises (JSON) to at most [`MAX_STATE_BYTES`]
//!   (tested with worst-case inputs).
//! - Every tunable number lives in [`Config`] with its default and its reason (a citation or
//!   **\[tune\]**); [`Config::validated`] clamps it into a range where the invariants hold, and
//!   the engines apply it on every call, so no configuration can break them.

pub mod alerts;
pub mod config;
pub mod risk;
mod time;

use serde::{Deserialize, Serialize};

pub use alerts::AlertEngine;
pub use config::{
    AlertConfig, Config, ConfigError, CooldownConfig, ExtensorAlertConfig, FatigueAlertConfig,
    RiskCoefficients, RiskConfig, SessionAlertConfig, StabilityAlertConfig, Term,
};
pub use liftguard_model::Exercise;
pub use risk::{Driver, FEATURES, RiskAssessment, RiskState};
pub use time::{DAY_US, day_index, day_string};

/// Ids (rep, set, session) kept in state or copied into alerts are cut to this many bytes
/// (at a char boundary). Ids from the processor are far shorter (athlete ids ≤ 64 chars).
pub const MAX_ID_BYTES: usize = 128;

/// Upper bound of the JSON serialisation of [`AlertEngine`] and of [`RiskState`].
pub const MAX_STATE_BYTES: usize = 8 * 1024;

/// What the processor knows about one rep (from `liftguard_biomech::Rep`, the set metadata and
/// the athlete profile). Times are event times (thoracolumbar device clock, µs since the epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepFacts {
    pub rep_id: String,
    pub set_id: String,
    pub session_id: String,
    pub exercise: Exercise,
    pub load_kg: f64,
    /// The athlete's capacity for this exercise, kg (0 = unknown: the rep never counts as heavy).
    pub capacity_kg: f64,
    pub start_us: i64,
    pub end_us: i64,
    pub extensor_event: bool,
    /// Blended fatigue score, 0–100 (`Rep::fatigue.score`).
    pub fatigue_score: f64,
    /// Σ w·max(0, z) against the athlete's light-load baseline (`Rep::stability_deficit`).
    pub stability_deficit: f64,
    /// LiFFT damage of this cycle, moment normalised to capacity (`Rep::damage.per_cycle`).
    pub damage_per_cycle: f64,
    pub peak_load_moment_nm: f64,
    pub eccentric_s: f64,
}

/// Mirrors `liftguard.v1.AlertKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertKind {
    /// Extensor-moment events in a set above a rate.
    ExtensorEvents,
    /// Fatigue score above a threshold for several consecutive reps.
    Fatigue,
    /// Stability deficit on heavy eccentrics, repeated.
    Stability,
    /// Extensor events above a share of a whole session's reps.
    SessionEventShare,
    /// Daily flare-up risk above the threshold and rising.
    FlareUpRisk,
}

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::ExtensorEvents,
        AlertKind::Fatigue,
        AlertKind::Stability,
        AlertKind::SessionEventShare,
        AlertKind::FlareUpRisk,
    ];

    /// Stable snake_case name, used in alert ids.
    pub fn slug(self) -> &'static str {
        match self {
            AlertKind::ExtensorEvents => "extensor_events",
            AlertKind::Fatigue => "fatigue",
            AlertKind::Stability => "stability",
            AlertKind::SessionEventShare => "session_event_share",
            AlertKind::FlareUpRisk => "flare_up_risk",
        }
    }

    /// The wire enum value (`liftguard.v1.AlertKind`).
    pub fn to_proto(self) -> i32 {
        match self {
            AlertKind::ExtensorEvents => 1,
            AlertKind::Fatigue => 2,
            AlertKind::Stability => 3,
            AlertKind::SessionEventShare => 4,
            AlertKind::FlareUpRisk => 5,
        }
    }

    pub fn from_proto(v: i32) -> Option<Self> {
        AlertKind::ALL.into_iter().find(|k| k.to_proto() == v)
    }

    pub(crate) fn index(self) -> usize {
        match self {
            AlertKind::ExtensorEvents => 0,
            AlertKind::Fatigue => 1,
            AlertKind::Stability => 2,
            AlertKind::SessionEventShare => 3,
            AlertKind::FlareUpRisk => 4,
        }
    }
}

/// Mirrors `liftguard.v1.Severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// The wire enum value (`liftguard.v1.Severity`).
    pub fn to_proto(self) -> i32 {
        match self {
            Severity::Info => 1,
            Severity::Warning => 2,
            Severity::Critical => 3,
        }
    }

    pub fn from_proto(v: i32) -> Option<Self> {
        match v {
            1 => Some(Severity::Info),
            2 => Some(Severity::Warning),
            3 => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// One number that drove an alert (`threshold` 0 when it is not a threshold comparison).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub name: String,
    pub value: f64,
    pub threshold: f64,
    pub unit: String,
}

impl Evidence {
    pub(crate) fn new(name: &str, value: f64, threshold: f64, unit: &str) -> Self {
        Evidence {
            name: name.to_owned(),
            value: finite(value),
            threshold: finite(threshold),
            unit: unit.to_owned(),
        }
    }
}

/// An alert, ready to become an `AlertRecord` (the processor adds gym, athlete and the
/// model version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub severity: Severity,
    /// Event time at which the condition held: the end of the rep that completed it, the
    /// session's end, or the assessment time for [`AlertKind::FlareUpRisk`].
    pub time_us: i64,
    pub session_id: String,
    /// `None` for session- and day-level alerts.
    pub set_id: Option<String>,
    /// One line for a notification.
    pub title: String,
    /// Plain language: what to do.
    pub recommendation: String,
    pub evidence: Vec<Evidence>,
    /// Reps whose data drove the alert (at most [`alerts::MAX_REP_IDS`]).
    pub rep_ids: Vec<String>,
}

impl Alert {
    /// Deterministic id `{athlete}-{kind_slug}-{time_us}` (the `AlertRecord.alert_id`
    /// contract): the same input always gives the same id, so replays upsert. Cooldowns are
    /// positive by default, so one athlete cannot get two alerts of one kind at one instant.
    pub fn id(&self, athlete_id: &str) -> String {
        format!("{athlete_id}-{}-{}", self.kind.slug(), self.time_us)
    }
}

/// `x` if finite, else 0.
pub(crate) fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// `s` cut to at most [`MAX_ID_BYTES`] bytes at a char boundary.
pub(crate) fn bounded_id(s: &str) -> String {
    if s.len() <= MAX_ID_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_ID_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_proto_values() {
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::from_proto(k.to_proto()), Some(k));
        }
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::from_proto(s.to_proto()), Some(s));
        }
        assert_eq!(AlertKind::from_proto(0), None);
    }

    #[test]
    fn ids_are_cut_at_char_boundaries() {
        let long = "é".repeat(200);
        let b = bounded_id(&long);
        assert!(b.len() <= MAX_ID_BYTES);
        assert!(long.starts_with(&b));
        assert_eq!(bounded_id("ath-1-17"), "ath-1-17");
    }

    #[test]
    fn alert_id_is_deterministic() {
        let a = Alert {
            kind: AlertKind::SessionEventShare,
            severity: Severity::Warning,
            time_us: 1_700_000_000_000_000,
            session_id: "s".into(),
            set_id: None,
            title: String::new(),
            recommendation: String::new(),
            evidence: Vec::new(),
            rep_ids: Vec::new(),
        };
        assert_eq!(a.id("ath-7"), "ath-7-session_event_share-1700000000000000");
    }
}
