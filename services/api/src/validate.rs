//! Request validation of the Registry and Query services: pure functions that turn wire
//! strings and numbers into checked values or a precise `INVALID_ARGUMENT` naming the
//! field.
//!
//! Invariant: every value that reaches the store from a request has passed one of these
//! checks (the store validates again; these give the client the field name and the rule).

use liftguard_model::{AthleteId, ErrorKind, GymId, Placement, SensorId};
use liftguard_proto::v1::{Athlete, TimeRange};
use liftguard_runtime::status;
use tonic::Status;

/// Longest free-text field accepted (names, labels, refs), in characters.
pub const MAX_TEXT: usize = 200;

pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    status(
        ErrorKind::InvalidArgument,
        format!("invalid `{field}`: {reason}"),
    )
}

pub fn gym_id(field: &str, s: &str) -> Result<GymId, Status> {
    if s.is_empty() {
        return Err(invalid(field, "required"));
    }
    slug_rule(field, s)?;
    GymId::parse(s).map_err(|e| invalid(field, e))
}

/// Gym slugs (= gym ids): `[a-z0-9-]{3,64}`.
pub fn slug(field: &str, s: &str) -> Result<GymId, Status> {
    gym_id(field, s)
}

fn slug_rule(field: &str, s: &str) -> Result<(), Status> {
    let ok = (3..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{s:?} must match [a-z0-9-]{{3,64}}"),
        ))
    }
}

pub fn athlete_id(field: &str, s: &str) -> Result<AthleteId, Status> {
    if s.is_empty() {
        return Err(invalid(field, "required"));
    }
    AthleteId::parse(s).map_err(|e| invalid(field, e))
}

/// Sensor hardware ids: `[A-Za-z0-9:_-]{1,64}`.
pub fn sensor_id(field: &str, s: &str) -> Result<SensorId, Status> {
    if s.is_empty() {
        return Err(invalid(field, "required"));
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')))
    {
        return Err(invalid(
            field,
            format!("contains {ch:?}; allowed are [A-Za-z0-9:_-]"),
        ));
    }
    SensorId::parse(s).map_err(|e| invalid(field, e))
}

pub fn placement(field: &str, v: i32) -> Result<Placement, Status> {
    Placement::from_proto(v).ok_or_else(|| {
        invalid(
            field,
            format!("{v} is not PLACEMENT_THORACOLUMBAR (1) or PLACEMENT_SACRUM (2)"),
        )
    })
}

/// Free text: at most `max` characters, no control characters; `required` rejects
/// empty (after trimming) text.
pub fn text<'a>(field: &str, s: &'a str, max: usize, required: bool) -> Result<&'a str, Status> {
    if required && s.trim().is_empty() {
        return Err(invalid(field, "required"));
    }
    if s.chars().count() > max {
        return Err(invalid(field, format!("longer than {max} characters")));
    }
    if let Some(ch) = s.chars().find(|c| c.is_control()) {
        return Err(invalid(
            field,
            format!("contains the control character {ch:?}"),
        ));
    }
    Ok(s)
}

fn number(
    field: &str,
    v: f32,
    range: std::ops::RangeInclusive<f32>,
    zero_ok: bool,
) -> Result<(), Status> {
    if !v.is_finite() {
        return Err(invalid(field, format!("{v} is not a finite number")));
    }
    if (zero_ok && v == 0.0) || range.contains(&v) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!(
            "{v} is outside {}..={}{}",
            range.start(),
            range.end(),
            if zero_ok { " (or 0 for unknown)" } else { "" }
        ),
    ))
}

/// Checks an athlete to enroll into `gym`; returns it with `gym_id` set.
pub fn athlete(gym: &GymId, a: Option<Athlete>) -> Result<Athlete, Status> {
    let mut a = a.ok_or_else(|| invalid("athlete", "required"))?;
    if !a.gym_id.is_empty() && a.gym_id != gym.as_str() {
        return Err(invalid(
            "athlete.gym_id",
            format!(
                "{:?} differs from gym_id {:?}; leave it empty",
                a.gym_id,
                gym.as_str()
            ),
        ));
    }
    if !a.athlete_id.is_empty() {
        athlete_id("athlete.athlete_id", &a.athlete_id)?;
    }
    text("athlete.external_ref", &a.external_ref, 128, true)?;
    text("athlete.display_name", &a.display_name, MAX_TEXT, false)?;
    text("athlete.sex", &a.sex, 32, false)?;
    text("athlete.sport", &a.sport, 64, false)?;
    number("athlete.height_m", a.height_m, 0.5..=2.6, true)?;
    number("athlete.mass_kg", a.mass_kg, 20.0..=350.0, true)?;
    number(
        "athlete.capacity_deadlift_kg",
        a.capacity_deadlift_kg,
        0.0..=1000.0,
        false,
    )?;
    number(
        "athlete.capacity_squat_kg",
        a.capacity_squat_kg,
        0.0..=1000.0,
        false,
    )?;
    number(
        "athlete.capacity_swing_kg",
        a.capacity_swing_kg,
        0.0..=1000.0,
        false,
    )?;
    if a.birth_year != 0 && !(1900..=2100).contains(&a.birth_year) {
        return Err(invalid(
            "athlete.birth_year",
            format!("{} is outside 1900..=2100 (or 0 for unknown)", a.birth_year),
        ));
    }
    if !(0..=100).contains(&a.training_age_years) {
        return Err(invalid(
            "athlete.training_age_years",
            format!("{} is outside 0..=100", a.training_age_years),
        ));
    }
    a.gym_id = gym.as_str().to_owned();
    Ok(a)
}

/// `[from_us, to_us)`; absent means all time. `required` makes it mandatory.
pub fn range(field: &str, r: Option<TimeRange>, required: bool) -> Result<(i64, i64), Status> {
    match r {
        None if required => Err(invalid(field, "required")),
        None => Ok((i64::MIN, i64::MAX)),
        Some(r) if r.from_us < r.to_us => Ok((r.from_us, r.to_us)),
        Some(r) => Err(invalid(
            field,
            format!("from_us ({}) must be before to_us ({})", r.from_us, r.to_us),
        )),
    }
}

/// A page size: 0 means `default`; above `max` is INVALID_ARGUMENT.
pub fn limit(field: &str, v: u32, default: u32, max: u32) -> Result<u32, Status> {
    match v {
        0 => Ok(default.min(max)),
        v if v <= max => Ok(v),
        v => Err(invalid(field, format!("{v} is outside 1..={max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn msg(r: Result<impl std::fmt::Debug, Status>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        e.message().to_owned()
    }

    #[test]
    fn ids_and_slugs() {
        assert!(slug("slug", "iron-gym-01").is_ok());
        assert!(msg(slug("slug", "Iron")).contains("`slug`"));
        assert!(msg(slug("slug", "ab")).contains("[a-z0-9-]{3,64}"));
        assert!(msg(gym_id("gym_id", "")).contains("required"));
        assert!(sensor_id("sensor_id", "AA:BB:cc_01-x").is_ok());
        assert!(msg(sensor_id("sensor_id", "aa.bb")).contains("'.'"));
        assert!(msg(athlete_id("athlete_id", "a b")).contains("`athlete_id`"));
        assert!(placement("placement", 2).is_ok());
        assert!(msg(placement("placement", 0)).contains("`placement`"));
    }

    #[test]
    fn athletes() {
        let gym = GymId::parse("gym-a").unwrap();
        let good = Athlete {
            external_ref: "m-1".into(),
            height_m: 1.8,
            mass_kg: 80.0,
            ..Default::default()
        };
        assert_eq!(athlete(&gym, Some(good.clone())).unwrap().gym_id, "gym-a");
        assert!(msg(athlete(&gym, None)).contains("`athlete`"));
        let mut bad = good.clone();
        bad.external_ref = " ".into();
        assert!(msg(athlete(&gym, Some(bad))).contains("`athlete.external_ref`"));
        let mut bad = good.clone();
        bad.mass_kg = f32::NAN;
        assert!(msg(athlete(&gym, Some(bad))).contains("`athlete.mass_kg`"));
        let mut bad = good.clone();
        bad.height_m = 4.0;
        assert!(msg(athlete(&gym, Some(bad))).contains("`athlete.height_m`"));
        let mut bad = good.clone();
        bad.gym_id = "gym-b".into();
        assert!(msg(athlete(&gym, Some(bad))).contains("`athlete.gym_id`"));
        let mut bad = good;
        bad.birth_year = 1800;
        assert!(msg(athlete(&gym, Some(bad))).contains("`athlete.birth_year`"));
    }

    #[test]
    fn ranges_and_limits() {
        assert_eq!(range("range", None, false).unwrap(), (i64::MIN, i64::MAX));
        assert!(msg(range("range", None, true)).contains("required"));
        let r = TimeRange {
            from_us: 5,
            to_us: 5,
        };
        assert!(
            msg(range("range", Some(r), false)).contains("from_us (5) must be before to_us (5)")
        );
        assert_eq!(limit("limit", 0, 1000, 10_000).unwrap(), 1000);
        assert_eq!(limit("limit", 10_000, 1000, 10_000).unwrap(), 10_000);
        assert!(msg(limit("limit", 10_001, 1000, 10_000)).contains("1..=10000"));
    }
}
