//! From wire rows to polars frames: validation, de-duplication and canonical order.
//!
//! Invariants:
//! - Every rep that reaches a frame has passed [`prepare`]: non-empty ids, finite numbers,
//!   a physically possible peak lumbar flexion, `end_us >= start_us`, and a gym that agrees
//!   with the athlete's enrolment.
//! - Reps are unique by their natural key `(athlete_id, start_us)` and in canonical order
//!   (athlete, start), so everything derived from them is independent of the input order.
//! - An empty proto string (proto3 "unset") becomes a null cell, never an empty string.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use liftguard_model::Exercise;
use liftguard_proto::v1::{Athlete, ExtensorEvidence, RepRecord};
use polars::prelude::*;
use prost::Message;

use crate::{AnalyticsError, PolarsContext};

/// Physical bound on lumbar flexion (either direction), degrees. Anything beyond is a
/// corrupt row, not an extreme athlete.
pub(crate) const MAX_ABS_FLEXION_DEG: f32 = 180.0;

/// Ordering rank of an exercise label: the known exercises in wire order, then
/// `unspecified`, then codes this build does not know (a newer producer).
pub(crate) const RANK_UNSPECIFIED: u32 = 4;

/// `(rank, label)` of a wire exercise code. Labels are stable: the known exercises use
/// [`Exercise::as_str`], code 0 is `unspecified`, other codes are `unknown_<code>`.
pub(crate) fn exercise_key(code: i32) -> (u32, Cow<'static, str>) {
    match Exercise::from_proto(code) {
        Some(e) => {
            let rank = Exercise::ALL.iter().position(|x| *x == e).unwrap_or(0);
            (u32::try_from(rank).unwrap_or(0), Cow::Borrowed(e.as_str()))
        }
        None if code == 0 => (RANK_UNSPECIFIED, Cow::Borrowed("unspecified")),
        None => (RANK_UNSPECIFIED + 1, Cow::Owned(format!("unknown_{code}"))),
    }
}

/// The athletes a report covers, keyed (and therefore ordered) by athlete id.
#[derive(Debug, Clone)]
pub(crate) struct AthleteEntry {
    pub gym_id: String,
    pub display_name: Option<String>,
    pub external_ref: Option<String>,
    /// Present in the `athletes` argument (false: only seen in reps).
    pub enrolled: bool,
}

/// Validated, de-duplicated reps in canonical order plus the athlete universe.
pub(crate) struct Prepared<'a> {
    pub reps: Vec<&'a RepRecord>,
    pub duplicates_dropped: usize,
    pub athletes: BTreeMap<String, AthleteEntry>,
}

fn non_empty(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

fn invalid_rep(
    index: usize,
    rep: &RepRecord,
    field: &'static str,
    reason: String,
) -> AnalyticsError {
    AnalyticsError::InvalidRep {
        index,
        rep_id: rep.rep_id.clone(),
        field,
        reason,
    }
}

fn validate_rep(index: usize, rep: &RepRecord) -> Result<(), AnalyticsError> {
    for (field, value) in [
        ("athlete_id", &rep.athlete_id),
        ("gym_id", &rep.gym_id),
        ("session_id", &rep.session_id),
    ] {
        if value.is_empty() {
            return Err(invalid_rep(index, rep, field, "must not be empty".into()));
        }
    }
    let finite32 = [
        ("load_kg", rep.load_kg),
        ("peak_lumbar_flexion_deg", rep.peak_lumbar_flexion_deg),
        ("ldi", rep.ldi),
        ("peak_load_moment_nm", rep.peak_load_moment_nm),
        ("fatigue_score", rep.fatigue_score),
    ];
    for (field, v) in finite32 {
        if !v.is_finite() {
            return Err(invalid_rep(
                index,
                rep,
                field,
                format!("must be finite, got {v}"),
            ));
        }
    }
    if !rep.cumulative_damage.is_finite() {
        return Err(invalid_rep(
            index,
            rep,
            "cumulative_damage",
            format!("must be finite, got {}", rep.cumulative_damage),
        ));
    }
    if rep.peak_lumbar_flexion_deg.abs() > MAX_ABS_FLEXION_DEG {
        return Err(invalid_rep(
            index,
            rep,
            "peak_lumbar_flexion_deg",
            format!(
                "{} deg is outside the physical range [-{MAX_ABS_FLEXION_DEG}, {MAX_ABS_FLEXION_DEG}]",
                rep.peak_lumbar_flexion_deg
            ),
        ));
    }
    if rep.end_us < rep.start_us {
        return Err(invalid_rep(
            index,
            rep,
            "end_us",
            format!("{} is before start_us {}", rep.end_us, rep.start_us),
        ));
    }
    Ok(())
}

/// Canonical order with a total tie-break: natural key, newest model version first, then
/// the encoded bytes, so which duplicate survives never depends on the input order.
fn canonical_cmp(a: &RepRecord, b: &RepRecord) -> Ordering {
    a.athlete_id
        .cmp(&b.athlete_id)
        .then(a.start_us.cmp(&b.start_us))
        .then(b.model_version.cmp(&a.model_version))
        .then_with(|| a.encode_to_vec().cmp(&b.encode_to_vec()))
}

/// Validates and de-duplicates `reps`, and builds the athlete universe from `athletes`
/// plus any athlete that only appears in reps.
pub(crate) fn prepare<'a>(
    reps: &'a [RepRecord],
    athletes: &[Athlete],
) -> Result<Prepared<'a>, AnalyticsError> {
    let mut universe: BTreeMap<String, (AthleteEntry, &Athlete)> = BTreeMap::new();
    for (index, a) in athletes.iter().enumerate() {
        let invalid = |field: &'static str, reason: &str| AnalyticsError::InvalidAthlete {
            index,
            athlete_id: a.athlete_id.clone(),
            field,
            reason: reason.to_owned(),
        };
        if a.athlete_id.is_empty() {
            return Err(invalid("athlete_id", "must not be empty"));
        }
        if a.gym_id.is_empty() {
            return Err(invalid("gym_id", "must not be empty"));
        }
        match universe.entry(a.athlete_id.clone()) {
            Entry::Vacant(v) => {
                v.insert((
                    AthleteEntry {
                        gym_id: a.gym_id.clone(),
                        display_name: non_empty(&a.display_name).map(str::to_owned),
                        external_ref: non_empty(&a.external_ref).map(str::to_owned),
                        enrolled: true,
                    },
                    a,
                ));
            }
            Entry::Occupied(o) => {
                if o.get().1 != a {
                    return Err(invalid("athlete_id", "listed twice with different data"));
                }
            }
        }
    }
    let mut universe: BTreeMap<String, AthleteEntry> =
        universe.into_iter().map(|(k, (e, _))| (k, e)).collect();

    for (index, rep) in reps.iter().enumerate() {
        validate_rep(index, rep)?;
    }
    let mut sorted: Vec<&RepRecord> = reps.iter().collect();
    sorted.sort_by(|a, b| canonical_cmp(a, b));
    let before = sorted.len();
    sorted.dedup_by(|later, kept| {
        later.athlete_id == kept.athlete_id && later.start_us == kept.start_us
    });
    let duplicates_dropped = before - sorted.len();
    if duplicates_dropped > 0 {
        tracing::debug!(duplicates_dropped, "dropped reps repeating a natural key");
    }

    for rep in &sorted {
        match universe.entry(rep.athlete_id.clone()) {
            Entry::Vacant(v) => {
                v.insert(AthleteEntry {
                    gym_id: rep.gym_id.clone(),
                    display_name: None,
                    external_ref: None,
                    enrolled: false,
                });
            }
            Entry::Occupied(o) => {
                if o.get().gym_id != rep.gym_id {
                    return Err(AnalyticsError::GymMismatch {
                        rep_id: rep.rep_id.clone(),
                        athlete_id: rep.athlete_id.clone(),
                        rep_gym: rep.gym_id.clone(),
                        athlete_gym: o.get().gym_id.clone(),
                    });
                }
            }
        }
    }
    Ok(Prepared {
        reps: sorted,
        duplicates_dropped,
        athletes: universe,
    })
}

/// Histogram bin index of a flexion value (bins are `[i*w, (i+1)*w)`).
pub(crate) fn flexion_bin(flexion_deg: f32, width_deg: f64) -> i64 {
    // |flexion| <= 180 and width >= MIN_BIN_WIDTH, so the result is small and exact.
    (f64::from(flexion_deg) / width_deg).floor() as i64
}

fn series<T, V>(name: &str, values: V) -> Column
where
    Series: NamedFrom<V, T>,
    T: ?Sized,
{
    Series::new(name.into(), values).into_column()
}

/// The per-rep frame the report aggregates (internal schema, not exported).
pub(crate) fn rep_frame(reps: &[&RepRecord]) -> Result<DataFrame, AnalyticsError> {
    let n = reps.len();
    let mut rank = Vec::with_capacity(n);
    let mut exercise = Vec::with_capacity(n);
    for r in reps {
        let (k, label) = exercise_key(r.exercise);
        rank.push(k);
        exercise.push(label.into_owned());
    }
    let f = |g: fn(&RepRecord) -> f32| reps.iter().map(|r| f64::from(g(r))).collect::<Vec<_>>();
    let columns = vec![
        series(
            "athlete_id",
            reps.iter()
                .map(|r| r.athlete_id.as_str())
                .collect::<Vec<_>>(),
        ),
        series(
            "gym_id",
            reps.iter().map(|r| r.gym_id.as_str()).collect::<Vec<_>>(),
        ),
        series(
            "session_id",
            reps.iter()
                .map(|r| r.session_id.as_str())
                .collect::<Vec<_>>(),
        ),
        series(
            "set_id",
            reps.iter()
                .map(|r| non_empty(&r.set_id))
                .collect::<Vec<_>>(),
        ),
        series("exercise_rank", rank),
        series("exercise", exercise),
        series("load_kg", f(|r| r.load_kg)),
        series(
            "start_us",
            reps.iter().map(|r| r.start_us).collect::<Vec<_>>(),
        ),
        series("end_us", reps.iter().map(|r| r.end_us).collect::<Vec<_>>()),
        series("peak_lumbar_flexion_deg", f(|r| r.peak_lumbar_flexion_deg)),
        series("ldi", f(|r| r.ldi)),
        series("peak_load_moment_nm", f(|r| r.peak_load_moment_nm)),
        series(
            "extensor_event",
            reps.iter().map(|r| r.extensor_event).collect::<Vec<_>>(),
        ),
        series("fatigue_score", f(|r| r.fatigue_score)),
        series(
            "cumulative_damage",
            reps.iter().map(|r| r.cumulative_damage).collect::<Vec<_>>(),
        ),
    ];
    DataFrame::new(n, columns).ctx("building the rep frame")
}

/// The athlete universe as a frame: athlete_id, display_name, external_ref, gym_id, enrolled.
pub(crate) fn athlete_frame(
    athletes: &BTreeMap<String, AthleteEntry>,
) -> Result<DataFrame, AnalyticsError> {
    let columns = vec![
        series(
            "athlete_id",
            athletes.keys().map(String::as_str).collect::<Vec<_>>(),
        ),
        series(
            "display_name",
            athletes
                .values()
                .map(|a| a.display_name.as_deref())
                .collect::<Vec<_>>(),
        ),
        series(
            "external_ref",
            athletes
                .values()
                .map(|a| a.external_ref.as_deref())
                .collect::<Vec<_>>(),
        ),
        series(
            "gym_id",
            athletes
                .values()
                .map(|a| a.gym_id.as_str())
                .collect::<Vec<_>>(),
        ),
        series(
            "enrolled",
            athletes.values().map(|a| a.enrolled).collect::<Vec<_>>(),
        ),
    ];
    DataFrame::new(athletes.len(), columns).ctx("building the athlete frame")
}

/// Every `RepRecord` field as a column, in wire order, evidence flattened into
/// `evidence_*` columns (null when the rep carries no evidence). Times stay integer
/// microseconds (the natural key must survive exactly); `exercise` is its stable label.
pub(crate) fn raw_rep_frame(reps: &[RepRecord]) -> Result<DataFrame, AnalyticsError> {
    let n = reps.len();
    let s = |g: fn(&RepRecord) -> &str| reps.iter().map(|r| non_empty(g(r))).collect::<Vec<_>>();
    let f32c = |g: fn(&RepRecord) -> f32| reps.iter().map(g).collect::<Vec<_>>();
    let i64c = |g: fn(&RepRecord) -> i64| reps.iter().map(g).collect::<Vec<_>>();
    let b = |g: fn(&RepRecord) -> bool| reps.iter().map(g).collect::<Vec<_>>();
    let ev = |g: fn(&ExtensorEvidence) -> f32| {
        reps.iter()
            .map(|r| r.evidence.as_ref().map(g))
            .collect::<Vec<_>>()
    };
    let columns = vec![
        series("rep_id", s(|r| &r.rep_id)),
        series("gym_id", s(|r| &r.gym_id)),
        series("athlete_id", s(|r| &r.athlete_id)),
        series("set_id", s(|r| &r.set_id)),
        series(
            "rep_index",
            reps.iter().map(|r| r.rep_index).collect::<Vec<_>>(),
        ),
        series(
            "exercise",
            reps.iter()
                .map(|r| exercise_key(r.exercise).1.into_owned())
                .collect::<Vec<_>>(),
        ),
        series("exercise_inferred", b(|r| r.exercise_inferred)),
        series("load_kg", f32c(|r| r.load_kg)),
        series("start_us", i64c(|r| r.start_us)),
        series("end_us", i64c(|r| r.end_us)),
        series("bottom_us", i64c(|r| r.bottom_us)),
        series("concentric_start_us", i64c(|r| r.concentric_start_us)),
        series("eccentric_s", f32c(|r| r.eccentric_s)),
        series("concentric_s", f32c(|r| r.concentric_s)),
        series(
            "peak_lumbar_flexion_deg",
            f32c(|r| r.peak_lumbar_flexion_deg),
        ),
        series(
            "peak_trunk_inclination_deg",
            f32c(|r| r.peak_trunk_inclination_deg),
        ),
        series("ldi", f32c(|r| r.ldi)),
        series("peak_load_moment_nm", f32c(|r| r.peak_load_moment_nm)),
        series("extensor_event", b(|r| r.extensor_event)),
        series(
            "evidence_peak_lumbar_ext_velocity_dps",
            ev(|e| e.peak_lumbar_ext_velocity_dps),
        ),
        series(
            "evidence_lumbar_share_duration_ms",
            ev(|e| e.lumbar_share_duration_ms),
        ),
        series("evidence_max_lumbar_share", ev(|e| e.max_lumbar_share)),
        series("evidence_ldi", ev(|e| e.ldi)),
        series("evidence_onset_lag_ms", ev(|e| e.onset_lag_ms)),
        series(
            "evidence_bottom_lumbar_flexion_deg",
            ev(|e| e.bottom_lumbar_flexion_deg),
        ),
        series(
            "evidence_peak_load_moment_nm",
            ev(|e| e.peak_load_moment_nm),
        ),
        series(
            "evidence_top_hyperextension_deg",
            ev(|e| e.top_hyperextension_deg),
        ),
        series("fatigue_score", f32c(|r| r.fatigue_score)),
        series("fatigue_dose", f32c(|r| r.fatigue_dose)),
        series("fatigue_observed", f32c(|r| r.fatigue_observed)),
        series("stability_deficit", f32c(|r| r.stability_deficit)),
        series("damage", reps.iter().map(|r| r.damage).collect::<Vec<_>>()),
        series(
            "cumulative_damage",
            reps.iter().map(|r| r.cumulative_damage).collect::<Vec<_>>(),
        ),
        series("session_id", s(|r| &r.session_id)),
        series("clock_skew_flagged", b(|r| r.clock_skew_flagged)),
        series(
            "model_version",
            reps.iter().map(|r| r.model_version).collect::<Vec<_>>(),
        ),
    ];
    DataFrame::new(n, columns).ctx("building the raw rep frame")
}
