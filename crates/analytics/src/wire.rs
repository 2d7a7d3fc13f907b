//! The analytics tables as `liftguard.v1` messages (the api role's responses), read back
//! from the frames, so the wire carries exactly what an export contains.
//!
//! Invariants: one message per frame row, in frame order; a null float becomes an absent
//! `optional` field (or an absent `Distribution` when its median is null), never NaN; a
//! null label becomes the empty string.

use liftguard_proto::v1 as pb;

use crate::AnalyticsError;
use crate::history::{AthleteHistory, Cols};
use crate::population::{LoadTable, Trending, Trends};

fn at<T: Clone + Default>(v: &[T], i: usize) -> T {
    v.get(i).cloned().unwrap_or_default()
}

fn opt(v: &[Option<f64>], i: usize) -> Option<f64> {
    v.get(i).copied().flatten()
}

fn s(v: &[Option<String>], i: usize) -> String {
    v.get(i).cloned().flatten().unwrap_or_default()
}

fn u32_at(v: &[u64], i: usize) -> u32 {
    u32::try_from(at(v, i)).unwrap_or(u32::MAX)
}

struct Dist {
    median: Vec<Option<f64>>,
    q1: Vec<Option<f64>>,
    q3: Vec<Option<f64>>,
    iqr: Vec<Option<f64>>,
    p90: Vec<Option<f64>>,
}

impl Dist {
    fn read(c: &Cols<'_>, prefix: &str) -> Result<Dist, AnalyticsError> {
        Ok(Dist {
            median: c.f(&format!("{prefix}_median"))?,
            q1: c.f(&format!("{prefix}_q1"))?,
            q3: c.f(&format!("{prefix}_q3"))?,
            iqr: c.f(&format!("{prefix}_iqr"))?,
            p90: c.f(&format!("{prefix}_p90"))?,
        })
    }

    fn at(&self, i: usize) -> Option<pb::Distribution> {
        Some(pb::Distribution {
            median: opt(&self.median, i)?,
            q1: opt(&self.q1, i).unwrap_or_default(),
            q3: opt(&self.q3, i).unwrap_or_default(),
            iqr: opt(&self.iqr, i).unwrap_or_default(),
            p90: opt(&self.p90, i).unwrap_or_default(),
        })
    }
}

impl Trends {
    /// The table as `TrendRow`s.
    pub fn to_proto(&self) -> Result<Vec<pb::TrendRow>, AnalyticsError> {
        let c = Cols(&self.table);
        let week = c.i("week_start")?;
        let iso = c.s("iso_week")?;
        let (gym, age, sex, tage, sport, ex) = (
            c.s("gym_id")?,
            c.s("age_band")?,
            c.s("sex")?,
            c.s("training_age_band")?,
            c.s("sport")?,
            c.s("exercise")?,
        );
        let (athletes, reps, events) = (c.u("athletes")?, c.u("reps")?, c.u("extensor_events")?);
        let rate = c.f("events_per_100_reps")?;
        let (fatigue, stability) = (Dist::read(&c, "fatigue")?, Dist::read(&c, "stability")?);
        let (dt, dm, dp) = (
            c.f("damage_total")?,
            c.f("damage_per_athlete_median")?,
            c.f("damage_per_athlete_p90")?,
        );
        let (rd, rm, rp, rx) = (
            c.u("risk_athlete_days")?,
            c.f("risk_median")?,
            c.f("risk_p90")?,
            c.f("risk_max")?,
        );
        Ok((0..self.table.height())
            .map(|i| pb::TrendRow {
                week_start_us: week.get(i).copied().flatten().unwrap_or_default(),
                iso_week: s(&iso, i),
                gym_id: s(&gym, i),
                age_band: s(&age, i),
                sex: s(&sex, i),
                training_age_band: s(&tage, i),
                sport: s(&sport, i),
                exercise: s(&ex, i),
                athletes: u32_at(&athletes, i),
                reps: u32_at(&reps, i),
                extensor_events: u32_at(&events, i),
                events_per_100_reps: opt(&rate, i),
                fatigue: fatigue.at(i),
                stability_deficit: stability.at(i),
                damage_total: opt(&dt, i).unwrap_or_default(),
                damage_per_athlete_median: opt(&dm, i).unwrap_or_default(),
                damage_per_athlete_p90: opt(&dp, i).unwrap_or_default(),
                risk_athlete_days: u32_at(&rd, i),
                risk_median: opt(&rm, i),
                risk_p90: opt(&rp, i),
                risk_max: opt(&rx, i),
            })
            .collect())
    }
}

impl Trending {
    /// The table as `TrendingAthlete`s.
    pub fn to_proto(&self) -> Result<Vec<pb::TrendingAthlete>, AnalyticsError> {
        let c = Cols(&self.table);
        let (id, gym, age, sex, tage, sport) = (
            c.s("athlete_id")?,
            c.s("gym_id")?,
            c.s("age_band")?,
            c.s("sex")?,
            c.s("training_age_band")?,
            c.s("sport")?,
        );
        let (weeks, reps, events, risk_weeks) = (
            c.u("weeks_counted")?,
            c.u("reps")?,
            c.u("extensor_events")?,
            c.u("risk_weeks")?,
        );
        let (first, last, slope, last_risk, risk_slope) = (
            c.f("first_rate")?,
            c.f("last_rate")?,
            c.f("rate_slope")?,
            c.f("last_risk")?,
            c.f("risk_slope")?,
        );
        let flag = |name: &str| -> Result<Vec<bool>, AnalyticsError> {
            Ok(c.u(name)?.into_iter().map(|v| v != 0).collect())
        };
        let (tr, tk) = (flag("trending_event_rate")?, flag("trending_risk")?);
        Ok((0..self.table.height())
            .map(|i| pb::TrendingAthlete {
                athlete_id: s(&id, i),
                gym_id: s(&gym, i),
                age_band: s(&age, i),
                sex: s(&sex, i),
                training_age_band: s(&tage, i),
                sport: s(&sport, i),
                weeks_counted: u32_at(&weeks, i),
                reps: u32_at(&reps, i),
                extensor_events: u32_at(&events, i),
                first_rate: opt(&first, i),
                last_rate: opt(&last, i),
                rate_slope: opt(&slope, i),
                risk_weeks: u32_at(&risk_weeks, i),
                last_risk: opt(&last_risk, i),
                risk_slope: opt(&risk_slope, i),
                trending_event_rate: at(&tr, i),
                trending_risk: at(&tk, i),
            })
            .collect())
    }
}

impl LoadTable {
    /// The table as `AthleteLoad`s.
    pub fn to_proto(&self) -> Result<Vec<pb::AthleteLoad>, AnalyticsError> {
        let c = Cols(&self.table);
        let (id, gym) = (c.s("athlete_id")?, c.s("gym_id")?);
        let (acute, chronic, ratio) = (
            c.f("acute_load_kg")?,
            c.f("chronic_weekly_load_kg")?,
            c.f("acute_chronic_ratio")?,
        );
        let (ar, cr) = (c.u("acute_reps")?, c.u("chronic_reps")?);
        Ok((0..self.table.height())
            .map(|i| pb::AthleteLoad {
                athlete_id: s(&id, i),
                gym_id: s(&gym, i),
                acute_load_kg: opt(&acute, i).unwrap_or_default(),
                chronic_weekly_load_kg: opt(&chronic, i).unwrap_or_default(),
                acute_chronic_ratio: opt(&ratio, i),
                acute_reps: u32_at(&ar, i),
                chronic_reps: u32_at(&cr, i),
            })
            .collect())
    }
}

impl AthleteHistory {
    pub fn sessions_proto(&self) -> Result<Vec<pb::SessionSummary>, AnalyticsError> {
        let c = Cols(&self.sessions);
        let id = c.s("session_id")?;
        let (start, end) = (c.i("start_us")?, c.i("end_us")?);
        let (reps, sets, events) = (c.u("reps")?, c.u("sets")?, c.u("extensor_events")?);
        let (rate, flex, mf, xf, xs, dt) = (
            c.f("events_per_100_reps")?,
            c.f("peak_lumbar_flexion_max_deg")?,
            c.f("mean_fatigue")?,
            c.f("max_fatigue")?,
            c.f("max_stability_deficit")?,
            c.f("damage_total")?,
        );
        Ok((0..self.sessions.height())
            .map(|i| pb::SessionSummary {
                session_id: s(&id, i),
                start_us: start.get(i).copied().flatten().unwrap_or_default(),
                end_us: end.get(i).copied().flatten().unwrap_or_default(),
                reps: u32_at(&reps, i),
                sets: u32_at(&sets, i),
                extensor_events: u32_at(&events, i),
                events_per_100_reps: opt(&rate, i),
                peak_lumbar_flexion_max_deg: opt(&flex, i).unwrap_or_default(),
                mean_fatigue: opt(&mf, i).unwrap_or_default(),
                max_fatigue: opt(&xf, i).unwrap_or_default(),
                max_stability_deficit: opt(&xs, i).unwrap_or_default(),
                damage_total: opt(&dt, i).unwrap_or_default(),
            })
            .collect())
    }

    pub fn sets_proto(&self) -> Result<Vec<pb::SetSummary>, AnalyticsError> {
        let c = Cols(&self.sets);
        let (id, session, ex) = (c.s("set_id")?, c.s("session_id")?, c.s("exercise")?);
        let load = c.f("load_kg")?;
        let (start, end) = (c.i("start_us")?, c.i("end_us")?);
        let (reps, events) = (c.u("reps")?, c.u("extensor_events")?);
        let (xf, xs, dt) = (
            c.f("max_fatigue")?,
            c.f("max_stability_deficit")?,
            c.f("damage_total")?,
        );
        Ok((0..self.sets.height())
            .map(|i| pb::SetSummary {
                set_id: s(&id, i),
                session_id: s(&session, i),
                exercise: s(&ex, i),
                load_kg: opt(&load, i).unwrap_or_default() as f32,
                start_us: start.get(i).copied().flatten().unwrap_or_default(),
                end_us: end.get(i).copied().flatten().unwrap_or_default(),
                reps: u32_at(&reps, i),
                extensor_events: u32_at(&events, i),
                max_fatigue: opt(&xf, i).unwrap_or_default(),
                max_stability_deficit: opt(&xs, i).unwrap_or_default(),
                damage_total: opt(&dt, i).unwrap_or_default(),
            })
            .collect())
    }

    pub fn weeks_proto(&self) -> Result<Vec<pb::AthleteWeek>, AnalyticsError> {
        let c = Cols(&self.weeks);
        let week = c.i("week_start_us")?;
        let iso = c.s("iso_week")?;
        let (reps, sessions, events) = (c.u("reps")?, c.u("sessions")?, c.u("extensor_events")?);
        let rate = c.f("events_per_100_reps")?;
        let (fatigue, stability) = (Dist::read(&c, "fatigue")?, Dist::read(&c, "stability")?);
        let (dt, lt, acwr, rm, rx) = (
            c.f("damage_total")?,
            c.f("load_kg_total")?,
            c.f("acute_chronic_ratio")?,
            c.f("risk_mean")?,
            c.f("risk_max")?,
        );
        Ok((0..self.weeks.height())
            .map(|i| pb::AthleteWeek {
                week_start_us: week.get(i).copied().flatten().unwrap_or_default(),
                iso_week: s(&iso, i),
                reps: u32_at(&reps, i),
                sessions: u32_at(&sessions, i),
                extensor_events: u32_at(&events, i),
                events_per_100_reps: opt(&rate, i),
                fatigue: fatigue.at(i),
                stability_deficit: stability.at(i),
                damage_total: opt(&dt, i).unwrap_or_default(),
                load_kg_total: opt(&lt, i).unwrap_or_default(),
                acute_chronic_ratio: opt(&acwr, i),
                risk_mean: opt(&rm, i),
                risk_max: opt(&rx, i),
            })
            .collect())
    }
}
