//! Alerts, daily flare-up risk, flare-up reports, and the gyms' webhooks with their
//! delivery outbox (migration step 4, `alerts`).
//!
//! Tables (one logical schema on every backend; PostgreSQL `*_time`/`*_at` TIMESTAMPTZ
//! columns are `*_us` INTEGER columns on SQLite):
//! - `alerts`: one row per `AlertRecord`, natural key `(alert_id, time)` (the alert id ends
//!   with `-{time_us}`, so it is unique by itself), plus the delivery `cursor` and the
//!   acknowledgement. Evidence and rep ids are JSON (`JSONB` on PostgreSQL).
//! - `alert_cursor`: one row, the last cursor handed out.
//! - `risk_scores`: one row per athlete and day, key `(athlete_id, day)`; drivers as JSON.
//! - `flareup_reports`: key `report_id` = `{athlete_id}-{onset_time_us}`.
//! - `webhooks`: per gym, with the signing secret **in clear**: the dispatcher needs it to
//!   compute HMACs, so it cannot be hashed like API keys. It is returned exactly once, by
//!   [`Store::create_webhook`]; listings never contain it. Deleting is a soft delete.
//! - `webhook_deliveries`: the outbox, one row per (webhook, alert), created in the same
//!   transaction as the alert's first insert.
//!
//! On TimescaleDB `alerts` (by `time`, 30-day chunks) and `risk_scores` (by `day`, 90-day
//! chunks) are hypertables, so their unique keys include the time column; on plain
//! PostgreSQL they are plain tables (a few rows per athlete and day: partitioning buys
//! nothing), with the same keys.
//!
//! Invariants:
//! - **Cursors.** A new alert gets `cursor = last + 1, last + 2, ...` on its FIRST insert,
//!   assigned while the writer holds the `alert_cursor` row lock (PostgreSQL `FOR UPDATE`;
//!   SQLite serialises writers anyway) until it commits. So cursors are unique, strictly
//!   increasing in commit order, and become visible in cursor order: a reader that sees
//!   cursor `c` also sees every cursor below `c`. That is what lets `Subscribe` hand over
//!   from a database replay to live events without a gap. Within one call, new alerts get
//!   their cursors in `(time_us, alert_id)` order, so every backend assigns the same ones.
//! - Re-upserting an alert never creates a new cursor, never duplicates the row and never
//!   touches its acknowledgement; changed content replaces the stored content (counted as
//!   updated), identical content writes nothing. `source_received_us` (when the input
//!   that produced the alert reached ingest, for latency measurement; NULL when 0) is
//!   kept from the first insert and is not part of the comparison: replays differ in it.
//! - Outbox rows are created only for alerts inserted now (not for re-upserts), for the
//!   gym's webhooks that are not deleted and whose `min_severity` the alert reaches;
//!   `ON CONFLICT DO NOTHING` keeps one row per (webhook, alert).
//! - A delivery, once `delivered_at` is set, is never claimed again. Claiming pushes
//!   `next_attempt_at` to the end of a lease and counts the attempt, in one transaction
//!   (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so concurrent dispatchers never claim the
//!   same row at the same time; a dispatcher that dies mid-send leaves the row to be
//!   claimed again when the lease ends (at-least-once; receivers dedupe by delivery id).
//! - Risk upserts are monotone in time: a record replaces the stored one for its day only
//!   if its `time_us` is not older (and it differs), so a replayed older estimate never
//!   overwrites a newer one.
//! - Every read takes a [`Scope`] and applies it in SQL; alerts, risk and reports carry
//!   real athlete ids, so a pseudonymous scope (`identity == false`) is refused.

mod pg;
mod sqlite;

use std::collections::HashMap;

use chrono::NaiveDate;
use liftguard_model::GymId;
use liftguard_proto::v1::{AlertRecord, Evidence, FlareUpReport, RiskDriver, RiskRecord};
use serde_json::{Value, json};

use crate::common::{
    MAX_TIME_US, check_athlete, check_f64, check_gym, check_text, check_time, now_us, random_hex,
};
use crate::{Scope, Store, StoreError};

/// Longest alert id, in characters.
pub const MAX_ALERT_ID_CHARS: usize = 160;
/// Longest alert title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest recommendation, risk driver explanation or flare-up note, in characters.
pub const MAX_LONG_TEXT_CHARS: usize = 2_000;
/// Most evidence items per alert and drivers per risk record.
pub const MAX_EVIDENCE_ITEMS: usize = 64;
/// Most rep ids per alert.
pub const MAX_REP_IDS: usize = 1_000;
/// Largest page of [`Store::list_alerts`].
pub const MAX_ALERT_PAGE: u32 = 1_000;
/// Most days one [`Store::risk_scores`] call returns per athlete.
pub const MAX_RISK_DAYS: u32 = 366;
/// Longest webhook URL, in characters.
pub const MAX_URL_CHARS: usize = 2_048;
/// Pain is reported on 0..=10.
pub const MAX_PAIN: u32 = 10;

/// Rows per write statement: alerts carry text and JSON (~1-2 KB each); this keeps a
/// statement well below the shared ~48 KB budget in the usual case, and
/// [`chunks_by_budget`] enforces the budget whatever the sizes.
const MAX_ALERTS_PER_STATEMENT: usize = 100;

/// One stored alert, as delivered to subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    /// Delivery order; assigned on first insert, never changed.
    pub cursor: i64,
    pub alert: AlertRecord,
    pub acknowledged_at_us: Option<i64>,
    pub acknowledged_by: Option<String>,
}

/// What one [`Store::upsert_alerts`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertWrite {
    /// New alerts (each got a new cursor).
    pub inserted: u64,
    /// Existing alerts whose content changed.
    pub updated: u64,
    /// Webhook outbox rows created.
    pub deliveries: u64,
    /// The highest cursor handed out so far (after this call).
    pub last_cursor: i64,
}

/// A page request over alerts, in cursor order, within a [`Scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts whose cursor is above this.
    pub after_cursor: i64,
    /// 1..=[`MAX_ALERT_PAGE`].
    pub limit: u32,
    pub unacknowledged_only: bool,
    /// `[from_us, to_us)` on the alert's `time_us`.
    pub from_us: i64,
    pub to_us: i64,
}

impl AlertQuery {
    /// Every alert after `after_cursor`, `limit` at a time.
    pub fn after(after_cursor: i64, limit: u32) -> Self {
        Self {
            after_cursor,
            limit,
            unacknowledged_only: false,
            from_us: 0,
            to_us: MAX_TIME_US + 1,
        }
    }
}

/// A webhook as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub webhook_id: String,
    pub gym_id: String,
    pub url: String,
    pub description: String,
    /// `Severity` as its proto number; alerts below it are not sent.
    pub min_severity: i32,
    pub created_us: i64,
    pub delivered: u64,
    pub pending: u64,
    pub failed: u64,
}

/// A newly registered webhook and its secret, which is shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub webhook: Webhook,
    /// `whsec_` + 64 hex characters (32 bytes from the OS CSPRNG).
    pub secret: String,
}

/// A delivery claimed by a dispatcher: send it, then report with
/// [`Store::finish_delivery`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub webhook_id: String,
    pub url: String,
    pub secret: String,
    /// 1 for the first attempt (counts this one).
    pub attempt: u32,
    pub alert: StoredAlert,
}

impl ClaimedDelivery {
    /// Stable across attempts: `{webhook_id}/{alert_id}` (visible ASCII).
    pub fn delivery_id(&self) -> String {
        delivery_id(&self.webhook_id, &self.alert.alert.alert_id)
    }
}

/// `{webhook_id}/{alert_id}`: the receiver-side dedupe key of a delivery.
pub fn delivery_id(webhook_id: &str, alert_id: &str) -> String {
    format!("{webhook_id}/{alert_id}")
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx answer: never sent again.
    Delivered { status: u16 },
    /// Try again at `next_attempt_us`.
    Retry {
        status: Option<u16>,
        error: String,
        next_attempt_us: i64,
    },
    /// Gave up (attempts exhausted).
    Failed { status: Option<u16>, error: String },
}

/// One row of the outbox, for diagnostics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    pub webhook_id: String,
    pub alert_id: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered: bool,
    pub failed: bool,
}

// ---- schema (migration step 4; referenced from `schema::STEPS`) ----

/// Columns of `alerts` on PostgreSQL (both flavours).
macro_rules! pg_alerts_columns {
    () => {
        r#"
    cursor BIGINT NOT NULL CHECK (cursor > 0),
    alert_id TEXT COLLATE "C" NOT NULL,
    gym_id TEXT COLLATE "C" NOT NULL,
    athlete_id TEXT COLLATE "C" NOT NULL,
    session_id TEXT NOT NULL,
    set_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    title TEXT NOT NULL,
    recommendation TEXT NOT NULL,
    evidence JSONB NOT NULL,
    rep_ids JSONB NOT NULL,
    model_version BIGINT NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    source_received_at TIMESTAMPTZ,
    stored_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (alert_id, time)"#
    };
}

macro_rules! pg_risk_columns {
    () => {
        r#"
    risk_id TEXT COLLATE "C" NOT NULL,
    gym_id TEXT COLLATE "C" NOT NULL,
    athlete_id TEXT COLLATE "C" NOT NULL,
    day DATE NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    probability DOUBLE PRECISION NOT NULL CHECK (probability >= 0 AND probability <= 1),
    drivers JSONB NOT NULL,
    alert BOOLEAN NOT NULL,
    model_version BIGINT NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (athlete_id, day)"#
    };
}

/// The tables both PostgreSQL flavours create identically.
macro_rules! pg_alerts_common {
    () => {
        [
            "CREATE TABLE alert_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL CHECK (last >= 0)
)",
            "INSERT INTO alert_cursor (id, last) VALUES (1, 0)",
            "CREATE INDEX alerts_gym_cursor_idx ON alerts (gym_id, cursor)",
            "CREATE INDEX alerts_athlete_cursor_idx ON alerts (athlete_id, cursor)",
            "CREATE INDEX risk_scores_gym_day_idx ON risk_scores (gym_id, day)",
            r#"CREATE TABLE flareup_reports (
    report_id TEXT COLLATE "C" PRIMARY KEY,
    gym_id TEXT COLLATE "C" NOT NULL,
    athlete_id TEXT COLLATE "C" NOT NULL,
    onset_time TIMESTAMPTZ NOT NULL,
    pain INTEGER NOT NULL CHECK (pain >= 0 AND pain <= 10),
    note TEXT NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    UNIQUE (athlete_id, onset_time)
)"#,
            "CREATE INDEX flareup_reports_gym_idx ON flareup_reports (gym_id, onset_time)",
            r#"CREATE TABLE webhooks (
    webhook_id TEXT COLLATE "C" PRIMARY KEY,
    gym_id TEXT COLLATE "C" NOT NULL REFERENCES gyms (gym_id),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    description TEXT NOT NULL,
    min_severity INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
)"#,
            "CREATE INDEX webhooks_gym_idx ON webhooks (gym_id) WHERE deleted_at IS NULL",
            r#"CREATE TABLE webhook_deliveries (
    webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks (webhook_id),
    alert_id TEXT COLLATE "C" NOT NULL,
    alert_time TIMESTAMPTZ NOT NULL,
    gym_id TEXT COLLATE "C" NOT NULL,
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    failed_at TIMESTAMPTZ,
    PRIMARY KEY (webhook_id, alert_id)
)"#,
            "CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) \
             WHERE delivered_at IS NULL AND failed_at IS NULL",
        ]
    };
}

const PG_COMMON: [&str; 11] = pg_alerts_common!();

/// Step 4 on TimescaleDB: `alerts` and `risk_scores` are hypertables.
pub(crate) const PG_ALERTS_TIMESCALE: &[&str] = &[
    concat!("CREATE TABLE alerts (", pg_alerts_columns!(), "\n)"),
    // Alerts are sparse (a few per athlete and session): 30-day chunks.
    "SELECT create_hypertable('alerts', by_range('time', INTERVAL '30 days'), create_default_indexes => false)",
    // Unique indexes of a hypertable must include its time column; cursors are unique by
    // construction (see the module docs), this index serves `cursor > $1 ORDER BY cursor`.
    "CREATE UNIQUE INDEX alerts_cursor_idx ON alerts (cursor, time)",
    concat!("CREATE TABLE risk_scores (", pg_risk_columns!(), "\n)"),
    // One row per athlete and day: 90-day chunks.
    "SELECT create_hypertable('risk_scores', by_range('day', INTERVAL '90 days'), create_default_indexes => false)",
    PG_COMMON[0],
    PG_COMMON[1],
    PG_COMMON[2],
    PG_COMMON[3],
    PG_COMMON[4],
    PG_COMMON[5],
    PG_COMMON[6],
    PG_COMMON[7],
    PG_COMMON[8],
    PG_COMMON[9],
    PG_COMMON[10],
];

/// Step 4 on plain PostgreSQL: the same tables, not partitioned.
pub(crate) const PG_ALERTS_PLAIN: &[&str] = &[
    concat!("CREATE TABLE alerts (", pg_alerts_columns!(), "\n)"),
    "CREATE UNIQUE INDEX alerts_cursor_idx ON alerts (cursor)",
    concat!("CREATE TABLE risk_scores (", pg_risk_columns!(), "\n)"),
    PG_COMMON[0],
    PG_COMMON[1],
    PG_COMMON[2],
    PG_COMMON[3],
    PG_COMMON[4],
    PG_COMMON[5],
    PG_COMMON[6],
    PG_COMMON[7],
    PG_COMMON[8],
    PG_COMMON[9],
    PG_COMMON[10],
];

/// Step 4 on SQLite.
pub(crate) const SQLITE_ALERTS: &[&str] = &[
    "CREATE TABLE alert_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL CHECK (last >= 0)
) STRICT",
    "INSERT INTO alert_cursor (id, last) VALUES (1, 0)",
    "CREATE TABLE alerts (
    cursor INTEGER NOT NULL CHECK (cursor > 0),
    alert_id TEXT NOT NULL,
    gym_id TEXT NOT NULL,
    athlete_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    set_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    time_us INTEGER NOT NULL,
    title TEXT NOT NULL,
    recommendation TEXT NOT NULL,
    evidence TEXT NOT NULL CHECK (json_valid(evidence)),
    rep_ids TEXT NOT NULL CHECK (json_valid(rep_ids)),
    model_version INTEGER NOT NULL,
    acknowledged_us INTEGER,
    acknowledged_by TEXT,
    source_received_us INTEGER,
    stored_us INTEGER NOT NULL,
    PRIMARY KEY (alert_id, time_us)
) STRICT",
    "CREATE UNIQUE INDEX alerts_cursor_idx ON alerts (cursor)",
    "CREATE INDEX alerts_gym_cursor_idx ON alerts (gym_id, cursor)",
    "CREATE INDEX alerts_athlete_cursor_idx ON alerts (athlete_id, cursor)",
    "CREATE TABLE risk_scores (
    risk_id TEXT NOT NULL,
    gym_id TEXT NOT NULL,
    athlete_id TEXT NOT NULL,
    day TEXT NOT NULL CHECK (day GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    time_us INTEGER NOT NULL,
    probability REAL NOT NULL CHECK (probability >= 0 AND probability <= 1),
    drivers TEXT NOT NULL CHECK (json_valid(drivers)),
    alert INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    stored_us INTEGER NOT NULL,
    PRIMARY KEY (athlete_id, day)
) STRICT",
    "CREATE INDEX risk_scores_gym_day_idx ON risk_scores (gym_id, day)",
    "CREATE TABLE flareup_reports (
    report_id TEXT PRIMARY KEY,
    gym_id TEXT NOT NULL,
    athlete_id TEXT NOT NULL,
    onset_us INTEGER NOT NULL,
    pain INTEGER NOT NULL CHECK (pain >= 0 AND pain <= 10),
    note TEXT NOT NULL,
    reported_us INTEGER NOT NULL,
    UNIQUE (athlete_id, onset_us)
) STRICT",
    "CREATE INDEX flareup_reports_gym_idx ON flareup_reports (gym_id, onset_us)",
    "CREATE TABLE webhooks (
    webhook_id TEXT PRIMARY KEY,
    gym_id TEXT NOT NULL REFERENCES gyms (gym_id),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    description TEXT NOT NULL,
    min_severity INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    deleted_us INTEGER
) STRICT",
    "CREATE INDEX webhooks_gym_idx ON webhooks (gym_id) WHERE deleted_us IS NULL",
    "CREATE TABLE webhook_deliveries (
    webhook_id TEXT NOT NULL REFERENCES webhooks (webhook_id),
    alert_id TEXT NOT NULL,
    alert_us INTEGER NOT NULL,
    gym_id TEXT NOT NULL,
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_us INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_us INTEGER NOT NULL,
    delivered_us INTEGER,
    failed_us INTEGER,
    PRIMARY KEY (webhook_id, alert_id)
) STRICT",
    "CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_us) \
     WHERE delivered_us IS NULL AND failed_us IS NULL",
];

// ---- validation and encoding (identical for every backend) ----

fn check_long_text<'a>(field: &str, s: &'a str, max: usize) -> Result<&'a str, StoreError> {
    if s.contains('\0') {
        return Err(StoreError::invalid(field, "contains a NUL character"));
    }
    if s.chars().count() > max {
        return Err(StoreError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    Ok(s)
}

/// `[A-Za-z0-9:_.-]{1,max}`: ids that are safe in headers, logs and URLs.
fn check_token(field: &str, s: &str, max: usize) -> Result<(), StoreError> {
    if s.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(StoreError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')))
    {
        return Err(StoreError::invalid(
            field,
            format!("contains {ch:?}; allowed are letters, digits and : _ - ."),
        ));
    }
    Ok(())
}

fn validate_alert(a: &AlertRecord) -> Result<(), StoreError> {
    check_token("alert_id", &a.alert_id, MAX_ALERT_ID_CHARS)?;
    check_gym("gym_id", &a.gym_id)?;
    check_athlete("athlete_id", &a.athlete_id)?;
    check_time("time_us", a.time_us)?;
    if a.source_received_us != 0 {
        check_time("source_received_us", a.source_received_us)?;
    }
    if !a.alert_id.ends_with(&format!("-{}", a.time_us)) {
        return Err(StoreError::invalid(
            "alert_id",
            format!(
                "{:?} does not end with -{} (alert ids are `{{athlete}}-{{kind}}-{{time_us}}`)",
                a.alert_id, a.time_us
            ),
        ));
    }
    check_text("session_id", &a.session_id)?;
    check_text("set_id", &a.set_id)?;
    check_long_text("title", &a.title, MAX_TITLE_CHARS)?;
    check_long_text("recommendation", &a.recommendation, MAX_LONG_TEXT_CHARS)?;
    if a.evidence.len() > MAX_EVIDENCE_ITEMS {
        return Err(StoreError::invalid(
            "evidence",
            format!("{} items; at most {MAX_EVIDENCE_ITEMS}", a.evidence.len()),
        ));
    }
    for (i, e) in a.evidence.iter().enumerate() {
        check_text(&format!("evidence[{i}].name"), &e.name)?;
        check_text(&format!("evidence[{i}].unit"), &e.unit)?;
        check_f64(&format!("evidence[{i}].value"), e.value)?;
        check_f64(&format!("evidence[{i}].threshold"), e.threshold)?;
    }
    if a.rep_ids.len() > MAX_REP_IDS {
        return Err(StoreError::invalid(
            "rep_ids",
            format!("{} ids; at most {MAX_REP_IDS}", a.rep_ids.len()),
        ));
    }
    for (i, r) in a.rep_ids.iter().enumerate() {
        check_text(&format!("rep_ids[{i}]"), r)?;
    }
    Ok(())
}

/// `YYYY-MM-DD` of a real calendar day between 1970 and 9999.
pub(crate) fn check_day(field: &str, s: &str) -> Result<NaiveDate, StoreError> {
    let bad = || StoreError::invalid(field, format!("{s:?} is not a YYYY-MM-DD date"));
    if s.len() != 10 {
        return Err(bad());
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    if d.format("%Y-%m-%d").to_string() != s {
        return Err(bad());
    }
    if !(1970..=9999).contains(&chrono::Datelike::year(&d)) {
        return Err(StoreError::invalid(
            field,
            format!("{s} is outside 1970-01-01..=9999-12-31"),
        ));
    }
    Ok(d)
}

fn validate_risk(r: &RiskRecord) -> Result<(), StoreError> {
    check_token("risk_id", &r.risk_id, MAX_ALERT_ID_CHARS)?;
    check_gym("gym_id", &r.gym_id)?;
    check_athlete("athlete_id", &r.athlete_id)?;
    check_day("day", &r.day)?;
    check_time("time_us", r.time_us)?;
    check_f64("probability", r.probability)?;
    if !(0.0..=1.0).contains(&r.probability) {
        return Err(StoreError::invalid(
            "probability",
            format!("{} is outside 0..=1", r.probability),
        ));
    }
    if r.drivers.len() > MAX_EVIDENCE_ITEMS {
        return Err(StoreError::invalid(
            "drivers",
            format!("{} items; at most {MAX_EVIDENCE_ITEMS}", r.drivers.len()),
        ));
    }
    for (i, d) in r.drivers.iter().enumerate() {
        check_text(&format!("drivers[{i}].feature"), &d.feature)?;
        check_f64(&format!("drivers[{i}].value"), d.value)?;
        check_f64(&format!("drivers[{i}].contribution"), d.contribution)?;
        check_long_text(
            &format!("drivers[{i}].explanation"),
            &d.explanation,
            MAX_LONG_TEXT_CHARS,
        )?;
    }
    Ok(())
}

fn validate_flareup(r: &FlareUpReport) -> Result<(), StoreError> {
    check_gym("gym_id", &r.gym_id)?;
    check_athlete("athlete_id", &r.athlete_id)?;
    check_time("onset_time_us", r.onset_time_us)?;
    check_time("reported_at_us", r.reported_at_us)?;
    if r.pain > MAX_PAIN {
        return Err(StoreError::invalid(
            "pain",
            format!("{} is outside 0..={MAX_PAIN}", r.pain),
        ));
    }
    check_long_text("note", &r.note, MAX_LONG_TEXT_CHARS)?;
    let want = flareup_report_id(&r.athlete_id, r.onset_time_us);
    if r.report_id != want {
        return Err(StoreError::invalid(
            "report_id",
            format!(
                "{:?} must be {want:?} ({{athlete_id}}-{{onset_time_us}})",
                r.report_id
            ),
        ));
    }
    Ok(())
}

/// The id of an athlete's flare-up report: `{athlete_id}-{onset_time_us}` (one report per
/// athlete and onset time; a resend is the same report).
pub fn flareup_report_id(athlete_id: &str, onset_time_us: i64) -> String {
    format!("{athlete_id}-{onset_time_us}")
}

/// An alert ready to bind: validated, JSON encoded, with its cursor.
#[derive(Debug)]
pub(crate) struct AlertRow<'a> {
    pub a: &'a AlertRecord,
    pub evidence: String,
    pub rep_ids: String,
    /// The stored cursor, or the new one (0 until assigned).
    pub cursor: i64,
}

impl AlertRow<'_> {
    fn est_bytes(&self) -> usize {
        256 + self.a.alert_id.len()
            + self.a.gym_id.len()
            + self.a.athlete_id.len()
            + self.a.session_id.len()
            + self.a.set_id.len()
            + self.a.title.len()
            + self.a.recommendation.len()
            + self.evidence.len()
            + self.rep_ids.len()
    }
}

/// A risk record ready to bind.
#[derive(Debug)]
pub(crate) struct RiskRow<'a> {
    pub r: &'a RiskRecord,
    pub drivers: String,
}

impl RiskRow<'_> {
    fn est_bytes(&self) -> usize {
        128 + self.r.risk_id.len()
            + self.r.gym_id.len()
            + self.r.athlete_id.len()
            + self.drivers.len()
    }
}

pub(crate) fn encode_evidence(ev: &[Evidence]) -> String {
    Value::Array(
        ev.iter()
            .map(|e| {
                json!({"name": e.name, "value": e.value, "threshold": e.threshold, "unit": e.unit})
            })
            .collect(),
    )
    .to_string()
}

pub(crate) fn encode_drivers(d: &[RiskDriver]) -> String {
    Value::Array(
        d.iter()
            .map(|d| {
                json!({"feature": d.feature, "value": d.value, "contribution": d.contribution,
                       "explanation": d.explanation})
            })
            .collect(),
    )
    .to_string()
}

pub(crate) fn encode_strings(v: &[String]) -> String {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect()).to_string()
}

fn json_items(table: &'static str, text: &str) -> Result<Vec<Value>, StoreError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(other) => Err(StoreError::corrupt(
            table,
            format!("expected a JSON array, found {other}"),
        )),
        Err(e) => Err(StoreError::corrupt(table, format!("bad JSON: {e}"))),
    }
}

fn json_str(table: &'static str, v: &Value, key: &str) -> Result<String, StoreError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::corrupt(table, format!("JSON item without string {key:?}")))
}

fn json_f64(table: &'static str, v: &Value, key: &str) -> Result<f64, StoreError> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| StoreError::corrupt(table, format!("JSON item without number {key:?}")))
}

pub(crate) fn decode_evidence(text: &str) -> Result<Vec<Evidence>, StoreError> {
    json_items("alerts", text)?
        .iter()
        .map(|v| {
            Ok(Evidence {
                name: json_str("alerts", v, "name")?,
                value: json_f64("alerts", v, "value")?,
                threshold: json_f64("alerts", v, "threshold")?,
                unit: json_str("alerts", v, "unit")?,
            })
        })
        .collect()
}

pub(crate) fn decode_drivers(text: &str) -> Result<Vec<RiskDriver>, StoreError> {
    json_items("risk_scores", text)?
        .iter()
        .map(|v| {
            Ok(RiskDriver {
                feature: json_str("risk_scores", v, "feature")?,
                value: json_f64("risk_scores", v, "value")?,
                contribution: json_f64("risk_scores", v, "contribution")?,
                explanation: json_str("risk_scores", v, "explanation")?,
            })
        })
        .collect()
}

pub(crate) fn decode_strings(table: &'static str, text: &str) -> Result<Vec<String>, StoreError> {
    json_items(table, text)?
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(StoreError::corrupt(
                table,
                format!("expected a JSON string, found {other}"),
            )),
        })
        .collect()
}

pub(crate) fn u32_of(table: &'static str, col: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::corrupt(table, format!("{col}: {v} is not a u32")))
}

pub(crate) fn status_of(table: &'static str, v: Option<i32>) -> Result<Option<u16>, StoreError> {
    v.map(|s| u16::try_from(s).map_err(|_| StoreError::corrupt(table, format!("last_status {s}"))))
        .transpose()
}

/// Validates alerts, collapses duplicate ids to the last one and orders them by
/// `(time_us, alert_id)`: the order new alerts receive their cursors in.
fn prepare_alerts(alerts: &[AlertRecord]) -> Result<Vec<AlertRow<'_>>, StoreError> {
    let mut pos: HashMap<&str, usize> = HashMap::with_capacity(alerts.len());
    let mut out: Vec<AlertRow<'_>> = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.iter().enumerate() {
        validate_alert(a).map_err(|e| e.at_index(i))?;
        let row = AlertRow {
            a,
            evidence: encode_evidence(&a.evidence),
            rep_ids: encode_strings(&a.rep_ids),
            cursor: 0,
        };
        match pos.get(a.alert_id.as_str()) {
            Some(&p) => out[p] = row,
            None => {
                pos.insert(&a.alert_id, out.len());
                out.push(row);
            }
        }
    }
    out.sort_by(|x, y| {
        (x.a.time_us, x.a.alert_id.as_str()).cmp(&(y.a.time_us, y.a.alert_id.as_str()))
    });
    Ok(out)
}

/// Validates risk records and keeps, per `(athlete_id, day)`, the newest by `time_us`
/// (the last of equals): the same result as applying them one by one.
fn prepare_risk(records: &[RiskRecord]) -> Result<Vec<RiskRow<'_>>, StoreError> {
    let mut pos: HashMap<(&str, &str), usize> = HashMap::with_capacity(records.len());
    let mut out: Vec<RiskRow<'_>> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        validate_risk(r).map_err(|e| e.at_index(i))?;
        let row = RiskRow {
            r,
            drivers: encode_drivers(&r.drivers),
        };
        match pos.get(&(r.athlete_id.as_str(), r.day.as_str())) {
            Some(&p) if out[p].r.time_us <= r.time_us => out[p] = row,
            Some(_) => {}
            None => {
                pos.insert((&r.athlete_id, &r.day), out.len());
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// Consecutive runs of `rows` within the statement budget and row cap.
fn chunks_by_budget<T>(rows: &[T], max_rows: usize, est: impl Fn(&T) -> usize) -> Vec<&[T]> {
    crate::common::chunk_by_budget(rows, max_rows, est)
}

/// Refuses pseudonymous scopes that can see something (an empty scope sees nothing).
fn check_scope(scope: &Scope) -> Result<(), StoreError> {
    if !scope.identity && !scope.is_empty() {
        return Err(StoreError::PermissionDenied(
            "alerts, risk and flare-up reports carry athlete identities; this scope is pseudonymous"
                .into(),
        ));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), StoreError> {
    check_long_text("url", url, MAX_URL_CHARS)?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| StoreError::invalid("url", "must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(StoreError::invalid("url", "has no host"));
    }
    if let Some(ch) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::invalid(
            "url",
            format!("contains {ch:?}; percent-encode it"),
        ));
    }
    Ok(())
}

/// See [`Store::alert_listener`].
pub struct AlertListener {
    inner: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for AlertListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertListener").finish_non_exhaustive()
    }
}

impl AlertListener {
    /// Waits for the next notification (reconnecting as needed); returns the cursor it
    /// announced (0 when unreadable).
    pub async fn recv(&mut self) -> Result<i64, StoreError> {
        let n = self.inner.recv().await?;
        Ok(n.payload().parse().unwrap_or(0))
    }
}

/// The backend of a store, for the per-backend modules.
enum Db<'a> {
    Pg(&'a sqlx::PgPool),
    Lite(&'a sqlx::SqlitePool),
}

impl Store {
    fn alerts_db(&self) -> Result<Db<'_>, StoreError> {
        match (self.pg_pool(), self.sqlite_pool()) {
            (Some(p), _) => Ok(Db::Pg(p)),
            (None, Some(l)) => Ok(Db::Lite(l)),
            (None, None) => Err(StoreError::Schema("store has no pool".into())),
        }
    }

    /// Upserts alerts in one transaction: new alerts get cursors (see the module docs)
    /// and outbox rows for their gym's webhooks; existing ones are updated in place when
    /// their content changed. `InvalidArgument` (naming the field and the record index)
    /// before anything is written when a record cannot be stored.
    pub async fn upsert_alerts(&self, alerts: &[AlertRecord]) -> Result<AlertWrite, StoreError> {
        let mut rows = prepare_alerts(alerts)?;
        if rows.is_empty() {
            return Ok(AlertWrite {
                last_cursor: self.last_alert_cursor().await?,
                ..AlertWrite::default()
            });
        }
        let w = match self.alerts_db()? {
            Db::Pg(p) => pg::upsert_alerts(p, &mut rows).await?,
            Db::Lite(l) => {
                let _gate = self.lite_write_gate().await;
                sqlite::upsert_alerts(l, &mut rows).await?
            }
        };
        tracing::debug!(
            records = alerts.len(),
            inserted = w.inserted,
            updated = w.updated,
            deliveries = w.deliveries,
            "alerts upserted"
        );
        Ok(w)
    }

    /// The highest cursor handed out so far (0 before the first alert).
    pub async fn last_alert_cursor(&self) -> Result<i64, StoreError> {
        let q = "SELECT last FROM alert_cursor WHERE id = 1";
        Ok(match self.alerts_db()? {
            Db::Pg(p) => sqlx::query_scalar(q).fetch_one(p).await?,
            Db::Lite(l) => sqlx::query_scalar(q).fetch_one(l).await?,
        })
    }

    /// One page of the scope's alerts with `cursor > q.after_cursor`, in cursor order.
    pub async fn list_alerts(
        &self,
        scope: &Scope,
        q: &AlertQuery,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        check_scope(scope)?;
        if !(1..=MAX_ALERT_PAGE).contains(&q.limit) {
            return Err(StoreError::invalid(
                "limit",
                format!("{} is outside 1..={MAX_ALERT_PAGE}", q.limit),
            ));
        }
        if q.from_us > q.to_us {
            return Err(StoreError::invalid(
                "range",
                format!("from_us {} is after to_us {}", q.from_us, q.to_us),
            ));
        }
        if scope.is_empty() {
            return Ok(Vec::new());
        }
        let q = AlertQuery {
            after_cursor: q.after_cursor.max(0),
            from_us: crate::common::clamp_query_time(q.from_us),
            to_us: crate::common::clamp_query_time(q.to_us),
            ..*q
        };
        if q.from_us >= q.to_us {
            return Ok(Vec::new());
        }
        match self.alerts_db()? {
            Db::Pg(p) => pg::list_alerts(p, scope, &q).await,
            Db::Lite(l) => sqlite::list_alerts(l, scope, &q).await,
        }
    }

    /// The alert with this id, whatever its scope (check access on the result).
    pub async fn get_alert(&self, alert_id: &str) -> Result<Option<StoredAlert>, StoreError> {
        check_token("alert_id", alert_id, MAX_ALERT_ID_CHARS)?;
        match self.alerts_db()? {
            Db::Pg(p) => pg::get_alert(p, alert_id).await,
            Db::Lite(l) => sqlite::get_alert(l, alert_id).await,
        }
    }

    /// Acknowledges an alert by `by` (a principal label). Returns the alert and whether
    /// this call acknowledged it (`false`: it already was; the first acknowledgement is
    /// kept). `NotFound` for an unknown alert.
    pub async fn acknowledge_alert(
        &self,
        alert_id: &str,
        by: &str,
    ) -> Result<(StoredAlert, bool), StoreError> {
        check_token("alert_id", alert_id, MAX_ALERT_ID_CHARS)?;
        check_text("acknowledged_by", by)?;
        let now = now_us();
        let newly = match self.alerts_db()? {
            Db::Pg(p) => pg::acknowledge(p, alert_id, by, now).await?,
            Db::Lite(l) => sqlite::acknowledge(l, alert_id, by, now).await?,
        };
        let alert = self
            .get_alert(alert_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("alert {alert_id}")))?;
        Ok((alert, newly))
    }

    /// Upserts daily risk records on `(athlete_id, day)` in one transaction (monotone in
    /// `time_us`, see the module docs). Returns the rows inserted or changed.
    pub async fn upsert_risk(&self, records: &[RiskRecord]) -> Result<u64, StoreError> {
        let rows = prepare_risk(records)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let n = match self.alerts_db()? {
            Db::Pg(p) => pg::upsert_risk(p, &rows).await?,
            Db::Lite(l) => {
                let _gate = self.lite_write_gate().await;
                sqlite::upsert_risk(l, &rows).await?
            }
        };
        tracing::debug!(records = records.len(), changed = n, "risk upserted");
        Ok(n)
    }

    /// The scope's risk records for the days `from_day..=to_day` (YYYY-MM-DD), ordered by
    /// `(athlete_id, day)`; at most [`MAX_RISK_DAYS`] days.
    pub async fn risk_scores(
        &self,
        scope: &Scope,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<RiskRecord>, StoreError> {
        check_scope(scope)?;
        let from = check_day("from_day", from_day)?;
        let to = check_day("to_day", to_day)?;
        if from > to {
            return Err(StoreError::invalid(
                "from_day",
                format!("{from_day} is after {to_day}"),
            ));
        }
        let days = (to - from).num_days() + 1;
        if days > i64::from(MAX_RISK_DAYS) {
            return Err(StoreError::invalid(
                "days",
                format!("{days} days; at most {MAX_RISK_DAYS}"),
            ));
        }
        if scope.is_empty() {
            return Ok(Vec::new());
        }
        match self.alerts_db()? {
            Db::Pg(p) => pg::risk_scores(p, scope, from_day, to_day).await,
            Db::Lite(l) => sqlite::risk_scores(l, scope, from_day, to_day).await,
        }
    }

    /// Stores a flare-up report (idempotent on `report_id`; a resend with other pain or
    /// note replaces them and the report time). Returns the report as stored.
    pub async fn upsert_flareup(&self, r: &FlareUpReport) -> Result<FlareUpReport, StoreError> {
        validate_flareup(r)?;
        match self.alerts_db()? {
            Db::Pg(p) => pg::upsert_flareup(p, r).await,
            Db::Lite(l) => sqlite::upsert_flareup(l, r).await,
        }
    }

    /// The scope's flare-up reports with onset in `[from_us, to_us)`, ordered by
    /// `(onset_time_us, athlete_id)`.
    pub async fn flareup_reports(
        &self,
        scope: &Scope,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<FlareUpReport>, StoreError> {
        check_scope(scope)?;
        let (from, to) = (
            crate::common::clamp_query_time(from_us),
            crate::common::clamp_query_time(to_us),
        );
        if from >= to || scope.is_empty() {
            return Ok(Vec::new());
        }
        match self.alerts_db()? {
            Db::Pg(p) => pg::flareups(p, scope, from, to).await,
            Db::Lite(l) => sqlite::flareups(l, scope, from, to).await,
        }
    }

    /// Registers a webhook for an existing gym (`NotFound` otherwise). The secret is
    /// generated here and returned only by this call.
    pub async fn create_webhook(
        &self,
        gym: &GymId,
        url: &str,
        description: &str,
        min_severity: i32,
    ) -> Result<NewWebhook, StoreError> {
        check_url(url)?;
        check_text("description", description)?;
        let webhook_id = format!("wh_{}", random_hex(8)?);
        let secret = format!("whsec_{}", random_hex(32)?);
        let created_us = now_us();
        let webhook = Webhook {
            webhook_id,
            gym_id: gym.as_str().to_owned(),
            url: url.to_owned(),
            description: description.to_owned(),
            min_severity,
            created_us,
            delivered: 0,
            pending: 0,
            failed: 0,
        };
        match self.alerts_db()? {
            Db::Pg(p) => pg::create_webhook(p, &webhook, &secret).await?,
            Db::Lite(l) => sqlite::create_webhook(l, &webhook, &secret).await?,
        }
        tracing::info!(gym = %gym, webhook = %webhook.webhook_id, "webhook registered");
        Ok(NewWebhook { webhook, secret })
    }

    /// The gym's webhooks (not deleted) with delivery counts, ordered by id; never the
    /// secrets.
    pub async fn list_webhooks(&self, gym: &GymId) -> Result<Vec<Webhook>, StoreError> {
        match self.alerts_db()? {
            Db::Pg(p) => pg::list_webhooks(p, gym.as_str()).await,
            Db::Lite(l) => sqlite::list_webhooks(l, gym.as_str()).await,
        }
    }

    /// Deletes a webhook of the gym and abandons its pending deliveries: `Ok(true)` when
    /// deleted now, `Ok(false)` when it already was, `NotFound` when the gym has no such
    /// webhook.
    pub async fn delete_webhook(&self, gym: &GymId, webhook_id: &str) -> Result<bool, StoreError> {
        check_token("webhook_id", webhook_id, 64)?;
        let now = now_us();
        let r = match self.alerts_db()? {
            Db::Pg(p) => pg::delete_webhook(p, gym.as_str(), webhook_id, now).await?,
            Db::Lite(l) => sqlite::delete_webhook(l, gym.as_str(), webhook_id, now).await?,
        };
        match r {
            None => Err(StoreError::NotFound(format!(
                "webhook {webhook_id} of gym {gym}"
            ))),
            Some(deleted) => {
                if deleted {
                    tracing::info!(gym = %gym, webhook = webhook_id, "webhook deleted");
                }
                Ok(deleted)
            }
        }
    }

    /// Claims up to `limit` deliveries due at `now_us`: each counts an attempt and is
    /// leased until `lease_until_us` (claimed again after that if not finished). Ordered
    /// by due time. Deliveries whose alert is no longer stored are marked failed.
    pub async fn claim_deliveries(
        &self,
        now_us: i64,
        lease_until_us: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        check_time("now_us", now_us)?;
        check_time("lease_until_us", lease_until_us)?;
        let limit = i64::from(limit.clamp(1, 10_000));
        let (claimed, orphans) = match self.alerts_db()? {
            Db::Pg(p) => pg::claim(p, now_us, lease_until_us, limit).await?,
            Db::Lite(l) => sqlite::claim(l, now_us, lease_until_us, limit).await?,
        };
        for (webhook_id, alert_id, attempt) in orphans {
            tracing::warn!(
                webhook = webhook_id,
                alert = alert_id,
                "delivery abandoned: the alert is no longer stored"
            );
            self.finish_delivery(
                &webhook_id,
                &alert_id,
                attempt,
                &DeliveryOutcome::Failed {
                    status: None,
                    error: "the alert is no longer stored".into(),
                },
            )
            .await?;
        }
        Ok(claimed)
    }

    /// Records how attempt `attempt` of a delivery ended. A success is recorded whatever
    /// happened meanwhile; a retry or failure only if no later attempt was claimed since
    /// and the delivery is not delivered. Returns whether the row changed.
    pub async fn finish_delivery(
        &self,
        webhook_id: &str,
        alert_id: &str,
        attempt: u32,
        outcome: &DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        if let DeliveryOutcome::Retry {
            next_attempt_us, ..
        } = outcome
        {
            check_time("next_attempt_us", *next_attempt_us)?;
        }
        let now = now_us();
        let error = match outcome {
            DeliveryOutcome::Delivered { .. } => None,
            DeliveryOutcome::Retry { error, .. } | DeliveryOutcome::Failed { error, .. } => {
                // Errors come from the network: keep them short and storable.
                Some(
                    error
                        .replace('\0', " ")
                        .chars()
                        .take(crate::common::MAX_TEXT_CHARS)
                        .collect::<String>(),
                )
            }
        };
        match self.alerts_db()? {
            Db::Pg(p) => {
                pg::finish(
                    p,
                    webhook_id,
                    alert_id,
                    attempt,
                    outcome,
                    error.as_deref(),
                    now,
                )
                .await
            }
            Db::Lite(l) => {
                sqlite::finish(
                    l,
                    webhook_id,
                    alert_id,
                    attempt,
                    outcome,
                    error.as_deref(),
                    now,
                )
                .await
            }
        }
    }

    /// The outbox rows of a gym, ordered by `(webhook_id, alert_id)` (diagnostics, tests).
    pub async fn delivery_states(&self, gym: &GymId) -> Result<Vec<DeliveryState>, StoreError> {
        match self.alerts_db()? {
            Db::Pg(p) => pg::delivery_states(p, gym.as_str()).await,
            Db::Lite(l) => sqlite::delivery_states(l, gym.as_str()).await,
        }
    }

    /// On PostgreSQL, a connection woken whenever alerts are inserted (`LISTEN` on the
    /// channel `upsert_alerts` notifies in its transaction); `None` on SQLite. A wake-up
    /// only says "poll now": notifications can be lost (reconnects), so pollers keep
    /// polling on a timer as well.
    pub async fn alert_listener(&self) -> Result<Option<AlertListener>, StoreError> {
        match self.alerts_db()? {
            Db::Pg(p) => Ok(Some(AlertListener {
                inner: pg::listener(p).await?,
            })),
            Db::Lite(_) => Ok(None),
        }
    }

    /// Deliveries neither delivered nor failed, over all gyms (a gauge).
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(match self.alerts_db()? {
            Db::Pg(p) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM webhook_deliveries \
                     WHERE delivered_at IS NULL AND failed_at IS NULL",
                )
                .fetch_one(p)
                .await?
            }
            Db::Lite(l) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM webhook_deliveries \
                     WHERE delivered_us IS NULL AND failed_us IS NULL",
                )
                .fetch_one(l)
                .await?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id_time: i64) -> AlertRecord {
        AlertRecord {
            alert_id: format!("a-1-3-{id_time}"),
            gym_id: "gym-a".into(),
            athlete_id: "a-1".into(),
            time_us: id_time,
            title: "t".into(),
            evidence: vec![Evidence {
                name: "x".into(),
                value: 0.1 + 0.2,
                threshold: 1e-300,
                unit: "ms".into(),
            }],
            rep_ids: vec!["r1".into(), "r\"2".into()],
            ..Default::default()
        }
    }

    #[test]
    fn json_round_trips_exactly() {
        let a = alert(5);
        let back = decode_evidence(&encode_evidence(&a.evidence)).unwrap();
        assert_eq!(back, a.evidence);
        assert_eq!(
            back[0].value.to_bits(),
            a.evidence[0].value.to_bits(),
            "f64 bits survive"
        );
        assert_eq!(
            decode_strings("alerts", &encode_strings(&a.rep_ids)).unwrap(),
            a.rep_ids
        );
        let d = vec![RiskDriver {
            feature: "acwr".into(),
            value: 1.234_567_890_123_456_7,
            contribution: -5e-324,
            explanation: "ratio \u{1F600}".into(),
        }];
        assert_eq!(decode_drivers(&encode_drivers(&d)).unwrap(), d);
        assert!(decode_evidence("{}").is_err());
        assert!(decode_strings("alerts", "[1]").is_err());
    }

    #[test]
    fn alerts_are_validated_and_ordered() {
        let mut bad = alert(7);
        bad.alert_id = "a-1-3-8".into();
        let e = prepare_alerts(&[alert(1), bad]).unwrap_err();
        assert!(
            matches!(&e, StoreError::InvalidArgument { field, index: Some(1), .. } if field == "alert_id"),
            "{e}"
        );
        let mut nan = alert(7);
        nan.evidence[0].value = f64::NAN;
        let e = prepare_alerts(&[nan]).unwrap_err();
        assert!(e.to_string().contains("evidence[0].value"), "{e}");
        let mut changed = alert(3);
        changed.title = "second".into();
        let input = [alert(9), alert(3), changed];
        let rows = prepare_alerts(&input).unwrap();
        let got: Vec<(i64, &str)> = rows
            .iter()
            .map(|r| (r.a.time_us, r.a.title.as_str()))
            .collect();
        assert_eq!(got, vec![(3, "second"), (9, "t")]);
    }

    #[test]
    fn risk_keeps_the_newest_per_day() {
        let r = |t: i64, p: f64| RiskRecord {
            risk_id: "a-1-2024-03-30".into(),
            gym_id: "gym-a".into(),
            athlete_id: "a-1".into(),
            day: "2024-03-30".into(),
            time_us: t,
            probability: p,
            ..Default::default()
        };
        let recs = [r(10, 0.1), r(30, 0.3), r(20, 0.2), r(30, 0.4)];
        let rows = prepare_risk(&recs).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].r.probability, 0.4);
        let mut bad = r(1, 1.5);
        assert!(prepare_risk(std::slice::from_ref(&bad)).is_err());
        bad.probability = 0.5;
        bad.day = "2024-02-30".into();
        assert!(prepare_risk(std::slice::from_ref(&bad)).is_err());
        bad.day = "2024-3-30".into();
        assert!(prepare_risk(&[bad]).is_err());
    }

    #[test]
    fn urls_and_days() {
        assert!(check_url("https://hooks.example.com/x?y=1").is_ok());
        assert!(check_url("http://127.0.0.1:8080/").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https:///x",
            "http://a b",
            "hooks.example.com",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_day("d", "2024-02-29").is_ok());
        assert!(check_day("d", "2023-02-29").is_err());
        assert!(check_day("d", "1969-12-31").is_err());
    }
}
