//! The dashboard's JSON: wire records (protobuf) as plain JSON objects with the proto's
//! field names. Enums become labels (`deadlift`, `warning`, `extensor_events`), optional
//! numbers become `null` when absent, and floats are written with their shortest exact
//! decimal form (an `f32` load of 102.5 kg stays `102.5`). Non-finite numbers are `null`.

use liftguard_model::Exercise;
use liftguard_proto::v1 as pb;
use serde_json::{Map, Value, json};

/// An `f32` as its shortest decimal (`0.3`, not `0.30000001192092896`).
pub fn f32j(x: f32) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// An `f64`, `null` when not finite.
pub fn f64j(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn opt(x: Option<f64>) -> Value {
    x.map_or(Value::Null, f64j)
}

/// The label of an exercise code (`unspecified`, `unknown_<code>` otherwise).
pub fn exercise(code: i32) -> String {
    match Exercise::from_proto(code) {
        Some(e) => e.as_str().to_owned(),
        None if code == 0 => "unspecified".to_owned(),
        None => format!("unknown_{code}"),
    }
}

fn severity(v: i32) -> &'static str {
    match pb::Severity::try_from(v) {
        Ok(pb::Severity::Info) => "info",
        Ok(pb::Severity::Warning) => "warning",
        Ok(pb::Severity::Critical) => "critical",
        _ => "unspecified",
    }
}

fn alert_kind(v: i32) -> &'static str {
    match pb::AlertKind::try_from(v) {
        Ok(pb::AlertKind::ExtensorEvents) => "extensor_events",
        Ok(pb::AlertKind::Fatigue) => "fatigue",
        Ok(pb::AlertKind::Stability) => "stability",
        Ok(pb::AlertKind::SessionEventShare) => "session_event_share",
        Ok(pb::AlertKind::FlareUpRisk) => "flare_up_risk",
        _ => "unspecified",
    }
}

fn distribution(d: Option<&pb::Distribution>) -> Value {
    match d {
        None => Value::Null,
        Some(d) => json!({
            "median": f64j(d.median),
            "q1": f64j(d.q1),
            "q3": f64j(d.q3),
            "iqr": f64j(d.iqr),
            "p90": f64j(d.p90),
        }),
    }
}

pub fn who_am_i(w: &pb::WhoAmIResponse) -> Value {
    json!({
        "role": w.role,
        "actor": w.actor,
        "token_id": w.token_id,
        "gym_id": w.gym_id,
        "athlete_id": w.athlete_id,
        "clinician_id": w.clinician_id,
        "expires_us": w.expires_us,
        "all_gyms": w.all_gyms,
        "gym_ids": w.gym_ids,
        "all_athletes": w.all_athletes,
        "athlete_ids": w.athlete_ids,
        "identity": w.identity,
    })
}

pub fn trend_row(r: &pb::TrendRow) -> Value {
    json!({
        "week_start_us": r.week_start_us,
        "iso_week": r.iso_week,
        "gym_id": r.gym_id,
        "age_band": r.age_band,
        "sex": r.sex,
        "training_age_band": r.training_age_band,
        "sport": r.sport,
        "exercise": r.exercise,
        "athletes": r.athletes,
        "reps": r.reps,
        "extensor_events": r.extensor_events,
        "events_per_100_reps": opt(r.events_per_100_reps),
        "fatigue": distribution(r.fatigue.as_ref()),
        "stability_deficit": distribution(r.stability_deficit.as_ref()),
        "damage_total": f64j(r.damage_total),
        "damage_per_athlete_median": f64j(r.damage_per_athlete_median),
        "damage_per_athlete_p90": f64j(r.damage_per_athlete_p90),
        "risk_athlete_days": r.risk_athlete_days,
        "risk_median": opt(r.risk_median),
        "risk_p90": opt(r.risk_p90),
        "risk_max": opt(r.risk_max),
    })
}

pub fn trending_athlete(a: &pb::TrendingAthlete) -> Map<String, Value> {
    let v = json!({
        "athlete_id": a.athlete_id,
        "gym_id": a.gym_id,
        "age_band": a.age_band,
        "sex": a.sex,
        "training_age_band": a.training_age_band,
        "sport": a.sport,
        "weeks_counted": a.weeks_counted,
        "reps": a.reps,
        "extensor_events": a.extensor_events,
        "first_rate": opt(a.first_rate),
        "last_rate": opt(a.last_rate),
        "rate_slope": opt(a.rate_slope),
        "risk_weeks": a.risk_weeks,
        "last_risk": opt(a.last_risk),
        "risk_slope": opt(a.risk_slope),
        "trending_event_rate": a.trending_event_rate,
        "trending_risk": a.trending_risk,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// One week of an athlete, as a sparkline point.
pub fn week_point(w: &pb::AthleteWeek) -> Value {
    json!({
        "week_start_us": w.week_start_us,
        "iso_week": w.iso_week,
        "reps": w.reps,
        "extensor_events": w.extensor_events,
        "events_per_100_reps": opt(w.events_per_100_reps),
    })
}

pub fn athlete(a: &pb::Athlete) -> Value {
    json!({
        "athlete_id": a.athlete_id,
        "gym_id": a.gym_id,
        "external_ref": a.external_ref,
        "display_name": a.display_name,
        "height_m": f32j(a.height_m),
        "mass_kg": f32j(a.mass_kg),
        "capacity_deadlift_kg": f32j(a.capacity_deadlift_kg),
        "capacity_squat_kg": f32j(a.capacity_squat_kg),
        "capacity_swing_kg": f32j(a.capacity_swing_kg),
        "birth_year": a.birth_year,
        "sex": a.sex,
        "training_age_years": a.training_age_years,
        "sport": a.sport,
    })
}

pub fn session(s: &pb::SessionSummary) -> Value {
    json!({
        "session_id": s.session_id,
        "start_us": s.start_us,
        "end_us": s.end_us,
        "reps": s.reps,
        "sets": s.sets,
        "extensor_events": s.extensor_events,
        "events_per_100_reps": opt(s.events_per_100_reps),
        "peak_lumbar_flexion_max_deg": f64j(s.peak_lumbar_flexion_max_deg),
        "mean_fatigue": f64j(s.mean_fatigue),
        "max_fatigue": f64j(s.max_fatigue),
        "max_stability_deficit": f64j(s.max_stability_deficit),
        "damage_total": f64j(s.damage_total),
    })
}

pub fn set(s: &pb::SetSummary) -> Value {
    json!({
        "set_id": s.set_id,
        "session_id": s.session_id,
        "exercise": s.exercise,
        "load_kg": f32j(s.load_kg),
        "start_us": s.start_us,
        "end_us": s.end_us,
        "reps": s.reps,
        "extensor_events": s.extensor_events,
        "max_fatigue": f64j(s.max_fatigue),
        "max_stability_deficit": f64j(s.max_stability_deficit),
        "damage_total": f64j(s.damage_total),
    })
}

pub fn athlete_week(w: &pb::AthleteWeek) -> Value {
    json!({
        "week_start_us": w.week_start_us,
        "iso_week": w.iso_week,
        "reps": w.reps,
        "sessions": w.sessions,
        "extensor_events": w.extensor_events,
        "events_per_100_reps": opt(w.events_per_100_reps),
        "fatigue": distribution(w.fatigue.as_ref()),
        "stability_deficit": distribution(w.stability_deficit.as_ref()),
        "damage_total": f64j(w.damage_total),
        "load_kg_total": f64j(w.load_kg_total),
        "acute_chronic_ratio": opt(w.acute_chronic_ratio),
        "risk_mean": opt(w.risk_mean),
        "risk_max": opt(w.risk_max),
    })
}

fn evidence(e: Option<&pb::ExtensorEvidence>) -> Value {
    match e {
        None => Value::Null,
        Some(e) => json!({
            "peak_lumbar_ext_velocity_dps": f32j(e.peak_lumbar_ext_velocity_dps),
            "lumbar_share_duration_ms": f32j(e.lumbar_share_duration_ms),
            "max_lumbar_share": f32j(e.max_lumbar_share),
            "ldi": f32j(e.ldi),
            "onset_lag_ms": f32j(e.onset_lag_ms),
            "bottom_lumbar_flexion_deg": f32j(e.bottom_lumbar_flexion_deg),
            "peak_load_moment_nm": f32j(e.peak_load_moment_nm),
            "top_hyperextension_deg": f32j(e.top_hyperextension_deg),
        }),
    }
}

pub fn rep(r: &pb::RepRecord) -> Value {
    json!({
        "rep_id": r.rep_id,
        "gym_id": r.gym_id,
        "athlete_id": r.athlete_id,
        "set_id": r.set_id,
        "session_id": r.session_id,
        "rep_index": r.rep_index,
        "exercise": exercise(r.exercise),
        "exercise_inferred": r.exercise_inferred,
        "load_kg": f32j(r.load_kg),
        "start_us": r.start_us,
        "end_us": r.end_us,
        "bottom_us": r.bottom_us,
        "concentric_start_us": r.concentric_start_us,
        "eccentric_s": f32j(r.eccentric_s),
        "concentric_s": f32j(r.concentric_s),
        "peak_lumbar_flexion_deg": f32j(r.peak_lumbar_flexion_deg),
        "peak_trunk_inclination_deg": f32j(r.peak_trunk_inclination_deg),
        "ldi": f32j(r.ldi),
        "peak_load_moment_nm": f32j(r.peak_load_moment_nm),
        "extensor_event": r.extensor_event,
        "evidence": evidence(r.evidence.as_ref()),
        "fatigue_score": f32j(r.fatigue_score),
        "fatigue_dose": f32j(r.fatigue_dose),
        "fatigue_observed": f32j(r.fatigue_observed),
        "stability_deficit": f32j(r.stability_deficit),
        "damage": f64j(r.damage),
        "cumulative_damage": f64j(r.cumulative_damage),
        "clock_skew_flagged": r.clock_skew_flagged,
        "model_version": r.model_version,
    })
}

pub fn alert(a: &pb::AlertRecord) -> Value {
    json!({
        "alert_id": a.alert_id,
        "gym_id": a.gym_id,
        "athlete_id": a.athlete_id,
        "session_id": a.session_id,
        "set_id": a.set_id,
        "kind": alert_kind(a.kind),
        "severity": severity(a.severity),
        "time_us": a.time_us,
        "title": a.title,
        "recommendation": a.recommendation,
        "evidence": a.evidence.iter().map(|e| json!({
            "name": e.name,
            "value": f64j(e.value),
            "threshold": f64j(e.threshold),
            "unit": e.unit,
        })).collect::<Vec<_>>(),
        "rep_ids": a.rep_ids,
    })
}

pub fn risk(r: &pb::RiskRecord) -> Value {
    json!({
        "risk_id": r.risk_id,
        "day": r.day,
        "time_us": r.time_us,
        "probability": f64j(r.probability),
        "alert": r.alert,
        "drivers": r.drivers.iter().map(|d| json!({
            "feature": d.feature,
            "value": f64j(d.value),
            "contribution": f64j(d.contribution),
            "explanation": d.explanation,
        })).collect::<Vec<_>>(),
    })
}

pub fn flareup(f: &pb::FlareUpReport) -> Value {
    json!({
        "report_id": f.report_id,
        "onset_time_us": f.onset_time_us,
        "pain": f.pain,
        "note": f.note,
        "reported_at_us": f.reported_at_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_their_shortest_form_and_non_finite_is_null() {
        assert_eq!(f32j(102.5), json!(102.5));
        assert_eq!(f32j(0.3), json!(0.3));
        assert_eq!(f32j(f32::NAN), Value::Null);
        assert_eq!(f64j(f64::INFINITY), Value::Null);
        assert_eq!(opt(None), Value::Null);
    }

    #[test]
    fn labels() {
        assert_eq!(exercise(1), "deadlift");
        assert_eq!(exercise(0), "unspecified");
        assert_eq!(exercise(42), "unknown_42");
        assert_eq!(severity(3), "critical");
        assert_eq!(alert_kind(1), "extensor_events");
    }
}
