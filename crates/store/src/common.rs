//! Backend-independent pieces: input validation, kinematics expansion, in-call
//! deduplication, statement chunking, key material and the page cursor.
//!
//! Invariants:
//! - Everything written is validated here first, identically for every backend, so the
//!   three backends accept and reject exactly the same input: times within
//!   `0..=MAX_TIME_US` (what PostgreSQL's TIMESTAMPTZ and SQLite's INTEGER both hold
//!   exactly), finite floats (SQLite would turn NaN into NULL), no NUL in text
//!   (PostgreSQL rejects it), ids that parse as model ids.
//! - Within one call, records with the same natural key are collapsed to the last one
//!   (a later record is a correction), so one statement never touches a key twice.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::str::FromStr;

use liftguard_model::{AthleteId, GymId};
use liftguard_proto::v1::{KinematicsChunk, RepRecord};
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The largest storable time: 9999-12-31T23:59:59.999999Z in µs since the Unix epoch.
pub const MAX_TIME_US: i64 = 253_402_300_799_999_999;
/// The largest page of [`crate::Store::list_reps`].
pub const MAX_PAGE_LIMIT: u32 = 10_000;
/// At most this many points are returned by one [`crate::Store::lumbar_trace`] call.
pub const MAX_TRACE_POINTS: usize = 2_000_000;
/// At most this many reps are returned by one [`crate::Store::all_reps`] call.
pub const MAX_ALL_REPS: usize = 5_000_000;
/// Kinematics sample rates accepted, Hz (points at most 100 µs apart never collide).
pub const MAX_KINEMATICS_RATE_HZ: f32 = 10_000.0;
/// Points accepted in one kinematics chunk.
pub const MAX_POINTS_PER_CHUNK: usize = 100_000;

/// Upper bound of the encoded parameters (or SQL text) of one write statement. The pglite
/// TimescaleDB build rejects protocol messages above ~64 KB; stay well below.
pub(crate) const STATEMENT_BUDGET_BYTES: usize = 48 * 1024;
/// Upper bound of rows per write statement, whatever their size.
pub(crate) const MAX_ROWS_PER_STATEMENT: usize = 1_000;
/// Longest free-text field (labels, names, set/session ids, ...), in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 256;

/// The parts of a reps upsert's conflict clause: `SET` assignments of every data column
/// (all but the natural key `key`), and the old and new row tuples to compare so an
/// identical replay writes nothing. `excluded` is the backend's spelling of the
/// proposed row (`EXCLUDED` or `excluded`).
pub(crate) struct UpsertClause {
    pub set: String,
    pub old: String,
    pub new: String,
}

pub(crate) fn upsert_clause<'a>(
    columns: impl Iterator<Item = &'a str>,
    key: [&str; 2],
    excluded: &str,
) -> UpsertClause {
    let data: Vec<&str> = columns.filter(|c| !key.contains(c)).collect();
    let join =
        |f: &dyn Fn(&str) -> String| data.iter().map(|c| f(c)).collect::<Vec<_>>().join(", ");
    UpsertClause {
        set: join(&|c| format!("{c} = {excluded}.{c}")),
        old: join(&|c| format!("reps.{c}")),
        new: join(&|c| format!("{excluded}.{c}")),
    }
}

pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Clamps a query bound into the storable range, so every backend sees the same window.
pub(crate) fn clamp_query_time(t: i64) -> i64 {
    t.clamp(0, MAX_TIME_US + 1)
}

pub(crate) fn check_time(field: &str, t: i64) -> Result<i64, StoreError> {
    if (0..=MAX_TIME_US).contains(&t) {
        Ok(t)
    } else {
        Err(StoreError::invalid(
            field,
            format!("{t} is outside 0..={MAX_TIME_US} µs since the Unix epoch"),
        ))
    }
}

pub(crate) fn check_f32(field: &str, v: f32) -> Result<f32, StoreError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(StoreError::invalid(field, format!("{v} is not finite")))
    }
}

pub(crate) fn check_f64(field: &str, v: f64) -> Result<f64, StoreError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(StoreError::invalid(field, format!("{v} is not finite")))
    }
}

pub(crate) fn check_text<'a>(field: &str, s: &'a str) -> Result<&'a str, StoreError> {
    if s.contains('\0') {
        return Err(StoreError::invalid(field, "contains a NUL character"));
    }
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(StoreError::invalid(
            field,
            format!("longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(s)
}

pub(crate) fn check_gym(field: &str, s: &str) -> Result<(), StoreError> {
    GymId::parse(s)
        .map(|_| ())
        .map_err(|e| StoreError::invalid(field, e.to_string()))
}

pub(crate) fn check_athlete(field: &str, s: &str) -> Result<(), StoreError> {
    AthleteId::parse(s)
        .map(|_| ())
        .map_err(|e| StoreError::invalid(field, e.to_string()))
}

/// Gym slugs (and so gym ids): `[a-z0-9-]{3,64}`.
pub(crate) fn check_slug(slug: &str) -> Result<(), StoreError> {
    let ok_chars = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(3..=64).contains(&slug.len()) || !ok_chars {
        return Err(StoreError::invalid(
            "slug",
            format!("{slug:?} must match [a-z0-9-]{{3,64}}"),
        ));
    }
    Ok(())
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `n` bytes from the operating system's CSPRNG, hex encoded.
pub(crate) fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| StoreError::Schema(format!("no randomness from the OS: {e}")))?;
    Ok(hex::encode(buf))
}

/// Validates every stored field of a rep.
pub(crate) fn validate_rep(r: &RepRecord) -> Result<(), StoreError> {
    check_gym("gym_id", &r.gym_id)?;
    check_athlete("athlete_id", &r.athlete_id)?;
    check_text("rep_id", &r.rep_id)?;
    check_text("set_id", &r.set_id)?;
    check_text("session_id", &r.session_id)?;
    check_time("start_us", r.start_us)?;
    check_time("end_us", r.end_us)?;
    check_time("bottom_us", r.bottom_us)?;
    check_time("concentric_start_us", r.concentric_start_us)?;
    for (field, v) in [
        ("load_kg", r.load_kg),
        ("eccentric_s", r.eccentric_s),
        ("concentric_s", r.concentric_s),
        ("peak_lumbar_flexion_deg", r.peak_lumbar_flexion_deg),
        ("peak_trunk_inclination_deg", r.peak_trunk_inclination_deg),
        ("ldi", r.ldi),
        ("peak_load_moment_nm", r.peak_load_moment_nm),
        ("fatigue_score", r.fatigue_score),
        ("fatigue_dose", r.fatigue_dose),
        ("fatigue_observed", r.fatigue_observed),
        ("stability_deficit", r.stability_deficit),
    ] {
        check_f32(field, v)?;
    }
    check_f64("damage", r.damage)?;
    check_f64("cumulative_damage", r.cumulative_damage)?;
    if let Some(e) = &r.evidence {
        for (field, v) in [
            (
                "evidence.peak_lumbar_ext_velocity_dps",
                e.peak_lumbar_ext_velocity_dps,
            ),
            (
                "evidence.lumbar_share_duration_ms",
                e.lumbar_share_duration_ms,
            ),
            ("evidence.max_lumbar_share", e.max_lumbar_share),
            ("evidence.ldi", e.ldi),
            ("evidence.onset_lag_ms", e.onset_lag_ms),
            (
                "evidence.bottom_lumbar_flexion_deg",
                e.bottom_lumbar_flexion_deg,
            ),
            ("evidence.peak_load_moment_nm", e.peak_load_moment_nm),
            ("evidence.top_hyperextension_deg", e.top_hyperextension_deg),
        ] {
            check_f32(field, v)?;
        }
    }
    Ok(())
}

/// Validates `reps` and collapses duplicates of the natural key `(athlete_id, start_us)`
/// to the last occurrence, keeping first-seen order.
pub(crate) fn prepare_reps(reps: &[RepRecord]) -> Result<Vec<&RepRecord>, StoreError> {
    let mut out: Vec<&RepRecord> = Vec::with_capacity(reps.len());
    let mut pos: HashMap<(&str, i64), usize> = HashMap::with_capacity(reps.len());
    for (i, r) in reps.iter().enumerate() {
        validate_rep(r).map_err(|e| e.at_index(i))?;
        match pos.entry((r.athlete_id.as_str(), r.start_us)) {
            Entry::Occupied(e) => out[*e.get()] = r,
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// One stored kinematics point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KinPoint<'a> {
    pub gym_id: &'a str,
    pub athlete_id: &'a str,
    pub t_us: i64,
    pub lumbar: f32,
    pub trunk: Option<f32>,
    pub pelvis: Option<f32>,
}

/// Expands chunks into points at `first_time_us + round(i * 1e6 / rate_hz)`, validates
/// them and collapses duplicates of `(athlete_id, t_us)` to the last occurrence.
/// `trunk_inclination_deg` / `pelvis_inclination_deg` are either empty (stored as NULL)
/// or as long as `lumbar_flexion_deg`.
pub(crate) fn expand_kinematics(
    chunks: &[KinematicsChunk],
) -> Result<Vec<KinPoint<'_>>, StoreError> {
    let total: usize = chunks.iter().map(|c| c.lumbar_flexion_deg.len()).sum();
    let mut out: Vec<KinPoint<'_>> = Vec::with_capacity(total);
    let mut pos: HashMap<(&str, i64), usize> = HashMap::with_capacity(total);
    for (ci, c) in chunks.iter().enumerate() {
        let at = |e: StoreError| e.at_index(ci);
        check_gym("gym_id", &c.gym_id).map_err(at)?;
        check_athlete("athlete_id", &c.athlete_id).map_err(at)?;
        check_time("first_time_us", c.first_time_us).map_err(at)?;
        if !(c.rate_hz.is_finite() && c.rate_hz > 0.0 && c.rate_hz <= MAX_KINEMATICS_RATE_HZ) {
            return Err(at(StoreError::invalid(
                "rate_hz",
                format!("{} is outside (0, {MAX_KINEMATICS_RATE_HZ}]", c.rate_hz),
            )));
        }
        let n = c.lumbar_flexion_deg.len();
        if n > MAX_POINTS_PER_CHUNK {
            return Err(at(StoreError::invalid(
                "lumbar_flexion_deg",
                format!("{n} points; at most {MAX_POINTS_PER_CHUNK} per chunk"),
            )));
        }
        for (field, col) in [
            ("trunk_inclination_deg", &c.trunk_inclination_deg),
            ("pelvis_inclination_deg", &c.pelvis_inclination_deg),
        ] {
            if !col.is_empty() && col.len() != n {
                return Err(at(StoreError::invalid(
                    field,
                    format!("{} values, lumbar_flexion_deg has {n}", col.len()),
                )));
            }
        }
        let step_us = 1e6 / f64::from(c.rate_hz);
        for i in 0..n {
            // Exact in f64 for every accepted input (i < 1e5, offsets < 2^53 µs).
            let offset = (i as f64 * step_us).round() as i64;
            let t_us = c
                .first_time_us
                .checked_add(offset)
                .ok_or_else(|| StoreError::invalid("first_time_us", "overflow"))
                .and_then(|t| check_time("first_time_us", t))
                .map_err(at)?;
            let p = KinPoint {
                gym_id: &c.gym_id,
                athlete_id: &c.athlete_id,
                t_us,
                lumbar: check_f32(&format!("lumbar_flexion_deg[{i}]"), c.lumbar_flexion_deg[i])
                    .map_err(at)?,
                trunk: opt_at(&c.trunk_inclination_deg, i, "trunk_inclination_deg").map_err(at)?,
                pelvis: opt_at(&c.pelvis_inclination_deg, i, "pelvis_inclination_deg")
                    .map_err(at)?,
            };
            match pos.entry((p.athlete_id, t_us)) {
                Entry::Occupied(e) => out[*e.get()] = p,
                Entry::Vacant(e) => {
                    e.insert(out.len());
                    out.push(p);
                }
            }
        }
    }
    Ok(out)
}

fn opt_at(col: &[f32], i: usize, name: &str) -> Result<Option<f32>, StoreError> {
    match col.get(i) {
        None => Ok(None),
        Some(&v) => check_f32(&format!("{name}[{i}]"), v).map(Some),
    }
}

/// Splits `items` into consecutive runs whose estimated encoded size stays within
/// [`STATEMENT_BUDGET_BYTES`] and whose length stays within `max_rows`
/// (a single oversized item still forms its own run).
pub(crate) fn chunk_by_budget<T>(
    items: &[T],
    max_rows: usize,
    est_bytes: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    chunk_by_bytes(items, max_rows, STATEMENT_BUDGET_BYTES, est_bytes)
}

/// [`chunk_by_budget`] with another byte budget (servers without pglite's message limit).
pub(crate) fn chunk_by_bytes<T>(
    items: &[T],
    max_rows: usize,
    budget: usize,
    est_bytes: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let b = est_bytes(item);
        if i > start && (bytes + b > budget || i - start >= max_rows) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += b;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Estimated bytes of one rep in a statement: per-value length words, fixed-size values,
/// text. Generous, so the real size stays below the budget.
pub(crate) fn rep_est_bytes(r: &&RepRecord) -> usize {
    640 + r.rep_id.len() + r.gym_id.len() + r.athlete_id.len() + r.set_id.len() + r.session_id.len()
}

pub(crate) fn kin_est_bytes(p: &KinPoint<'_>) -> usize {
    96 + p.gym_id.len() + p.athlete_id.len()
}

/// Where a page of reps ends: the sort key `(start_us, athlete_id)` of its last rep.
/// Encodes to an opaque, URL-safe string (see [`RepCursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepCursor {
    pub(crate) start_us: i64,
    pub(crate) athlete_id: String,
}

impl RepCursor {
    const PREFIX: &'static str = "c1";

    /// The position just after the rep of `athlete` starting at `start_us`.
    pub fn new(start_us: i64, athlete: &AthleteId) -> Self {
        RepCursor {
            start_us,
            athlete_id: athlete.as_str().to_owned(),
        }
    }

    pub fn start_us(&self) -> i64 {
        self.start_us
    }

    /// The athlete id of the position (a real id: never hand a decoded cursor's id to a
    /// caller without identity).
    pub fn athlete_id(&self) -> &str {
        &self.athlete_id
    }

    pub(crate) fn after(r: &RepRecord) -> Self {
        RepCursor {
            start_us: r.start_us,
            athlete_id: r.athlete_id.clone(),
        }
    }

    /// The opaque page token.
    pub fn encode(&self) -> String {
        format!(
            "{}{}",
            Self::PREFIX,
            hex::encode(format!("{}/{}", self.start_us, self.athlete_id))
        )
    }

    /// Parses a page token produced by [`RepCursor::encode`]; anything else is
    /// `InvalidArgument` on `page_token`.
    pub fn decode(token: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::invalid("page_token", "not a token returned by this service");
        let body = token.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        let raw = hex::decode(body).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (t, a) = text.split_once('/').ok_or_else(bad)?;
        let start_us: i64 = t.parse().map_err(|_| bad())?;
        check_time("page_token", start_us).map_err(|_| bad())?;
        AthleteId::parse(a).map_err(|_| bad())?;
        Ok(RepCursor {
            start_us,
            athlete_id: a.to_owned(),
        })
    }
}

impl fmt::Display for RepCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for RepCursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RepCursor::decode(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(first: i64, rate: f32, n: usize) -> KinematicsChunk {
        KinematicsChunk {
            gym_id: "gym-1".into(),
            athlete_id: "a-1".into(),
            first_time_us: first,
            rate_hz: rate,
            lumbar_flexion_deg: (0..n).map(|i| i as f32).collect(),
            trunk_inclination_deg: vec![],
            pelvis_inclination_deg: (0..n).map(|i| -(i as f32)).collect(),
        }
    }

    #[test]
    fn kinematics_times_are_rounded_offsets() {
        let chunks = [chunk(1_000_000, 30.0, 4)];
        let pts = expand_kinematics(&chunks).unwrap();
        let ts: Vec<i64> = pts.iter().map(|p| p.t_us).collect();
        // 1e6/30 = 33333.33.. -> 33333, 66667, 100000
        assert_eq!(ts, vec![1_000_000, 1_033_333, 1_066_667, 1_100_000]);
        assert_eq!(pts[1].trunk, None);
        assert_eq!(pts[1].pelvis, Some(-1.0));
    }

    #[test]
    fn overlapping_chunks_keep_the_last_value() {
        let mut second = chunk(1_040_000, 25.0, 3); // 1_040_000, 1_080_000, 1_120_000
        second.lumbar_flexion_deg = vec![10.0, 11.0, 12.0];
        let chunks = [chunk(1_000_000, 25.0, 3), second];
        let pts = expand_kinematics(&chunks).unwrap();
        let got: Vec<(i64, f32)> = pts.iter().map(|p| (p.t_us, p.lumbar)).collect();
        assert_eq!(
            got,
            vec![
                (1_000_000, 0.0),
                (1_040_000, 10.0),
                (1_080_000, 11.0),
                (1_120_000, 12.0)
            ]
        );
    }

    #[test]
    fn bad_kinematics_name_the_field_and_chunk() {
        let mut c = chunk(0, 25.0, 3);
        c.lumbar_flexion_deg[2] = f32::NAN;
        let e = expand_kinematics(&[chunk(0, 25.0, 1), c]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid lumbar_flexion_deg[2] (record 1): NaN is not finite"
        );
        let mut c = chunk(0, 25.0, 3);
        c.trunk_inclination_deg = vec![1.0];
        assert!(expand_kinematics(&[c]).is_err());
        assert!(expand_kinematics(&[chunk(0, 0.0, 3)]).is_err());
        assert!(expand_kinematics(&[chunk(-1, 25.0, 3)]).is_err());
        assert!(expand_kinematics(&[chunk(MAX_TIME_US, 25.0, 2)]).is_err());
    }

    #[test]
    fn chunking_respects_budget_and_row_cap() {
        let items: Vec<usize> = vec![20_000, 20_000, 20_000, 100_000, 1, 1, 1];
        let runs = chunk_by_budget(&items, 2, |b| *b);
        let lens: Vec<usize> = runs.iter().map(|r| r.len()).collect();
        assert_eq!(lens, vec![2, 1, 1, 2, 1]);
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), items.len());
        assert!(chunk_by_budget::<usize>(&[], 10, |b| *b).is_empty());
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = RepCursor {
            start_us: 1_700_000_000_000_000,
            athlete_id: "a-0123456789abcdef".into(),
        };
        let s = c.encode();
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(RepCursor::decode(&s).unwrap(), c);
        let bad_id = format!("c1{}", hex::encode("12/a b"));
        for bad in ["", "c1", "c1zz", "x1abcd", bad_id.as_str()] {
            assert!(RepCursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs() {
        assert!(check_slug("iron-gym-01").is_ok());
        let long = "x".repeat(65);
        for bad in ["ab", "Iron", "a_b-c", long.as_str()] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_hex_is_random() {
        let a = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32).unwrap());
    }
}
