//! Population analytics against the generator's truth: weekly counts and rates exactly,
//! distributions against a direct computation, the planted trending athletes found (and
//! no other), acute:chronic load against direct sums, cohort filters, pseudonymous input,
//! and athlete history tables.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

use liftguard_analytics::history::{HistoryInput, athlete_history};
use liftguard_analytics::population::{
    CohortFilter, Dimension, LoadOptions, PopulationInput, TrendOptions, TrendingOptions, Trends,
    TrendsInput, load_monitoring, trending_athletes,
};
use liftguard_analytics::testing::{Population, PopulationSpec, generate};
use liftguard_analytics::time::{
    AGE_BANDS, DAY_US, WEEK_US, age_band, day_start_us, iso_week, week_start_us,
};
use liftguard_proto::v1::RepRecord;
use liftguard_store::rollups::{DAMAGE_SCALE, fixed};
use liftguard_store::{RepFacts, RiskFacts, ScoreBuckets};
use polars::prelude::*;

/// Population trends over the buckets of `input`'s reps (what the store's score buckets
/// hold for them; `liftguard-store`'s tests check that on every backend).
fn population_trends(
    input: &PopulationInput<'_>,
    opts: &TrendOptions,
) -> Result<Trends, liftguard_analytics::AnalyticsError> {
    let buckets = ScoreBuckets::from_facts(input.reps);
    liftguard_analytics::population::population_trends(
        &TrendsInput {
            buckets: &buckets,
            athletes: input.athletes,
            risk: input.risk,
        },
        opts,
    )
}

fn population() -> Population {
    generate(&PopulationSpec::default())
}

fn f64s(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect()
}

fn u64s(df: &DataFrame, c: &str) -> Vec<u64> {
    df.column(c)
        .unwrap()
        .cast(&DataType::UInt64)
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .map(Option::unwrap)
        .collect()
}

fn i64s(df: &DataFrame, c: &str) -> Vec<i64> {
    df.column(c)
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .map(Option::unwrap)
        .collect()
}

fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    df.column(c)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

fn bools(df: &DataFrame, c: &str) -> Vec<bool> {
    df.column(c)
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .map(Option::unwrap)
        .collect()
}

/// Linear quantile between closest ranks (numpy's default), as a reference.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let float_idx = (v.len() - 1) as f64 * q;
    let idx = float_idx as usize;
    let (lo, hi) = (v[idx], v[(float_idx.ceil() as usize).min(v.len() - 1)]);
    if lo == hi {
        lo
    } else {
        (float_idx - idx as f64) * (hi - lo) + lo
    }
}

#[test]
fn weekly_counts_and_rates_are_exactly_the_generated_ones() {
    let pop = population();
    let facts = RepFacts::from_reps(&pop.reps);
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: None,
    };
    let t = population_trends(&input, &TrendOptions::default()).unwrap();
    let mut truth: BTreeMap<i64, (u64, u64, BTreeSet<&str>)> = BTreeMap::new();
    for ((a, w), c) in &pop.weeks {
        let e = truth.entry(*w).or_default();
        e.0 += u64::from(c.reps);
        e.1 += u64::from(c.events);
        e.2.insert(a.as_str());
    }
    assert_eq!(t.table.height(), truth.len());
    let weeks = i64s(&t.table, "week_start");
    let reps = u64s(&t.table, "reps");
    let events = u64s(&t.table, "extensor_events");
    let athletes = u64s(&t.table, "athletes");
    let rate = f64s(&t.table, "events_per_100_reps");
    let iso = strs(&t.table, "iso_week");
    for (i, (w, (r, e, a))) in truth.iter().enumerate() {
        assert_eq!(weeks[i], *w);
        assert_eq!(reps[i], *r);
        assert_eq!(events[i], *e);
        assert_eq!(athletes[i], a.len() as u64);
        assert_eq!(rate[i], Some(*e as f64 * 100.0 / *r as f64));
        assert_eq!(iso[i].as_deref(), Some(iso_week(*w).1.as_str()));
    }
    // Ungrouped dimensions are null, risk absent.
    assert!(strs(&t.table, "gym_id").iter().all(Option::is_none));
    assert!(f64s(&t.table, "risk_median").iter().all(Option::is_none));
    assert!(!t.risk_available);
    assert_eq!(iso[0].as_deref(), Some("2024-W01"));
}

#[test]
fn distributions_by_gym_and_exercise_match_a_direct_computation() {
    let pop = population();
    let facts = RepFacts::from_reps(&pop.reps);
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: None,
    };
    let opts = TrendOptions {
        group_by: vec![Dimension::Exercise, Dimension::Gym],
        ..TrendOptions::default()
    };
    let t = population_trends(&input, &opts).unwrap();
    type Key = (i64, String, String);
    let label = |c: i32| {
        [
            "unspecified",
            "deadlift",
            "squat",
            "kettlebell_swing",
            "carry",
        ][c as usize]
    };
    let mut groups: BTreeMap<Key, Vec<&RepRecord>> = BTreeMap::new();
    for r in &pop.reps {
        groups
            .entry((
                week_start_us(r.start_us),
                r.gym_id.clone(),
                label(r.exercise).to_owned(),
            ))
            .or_default()
            .push(r);
    }
    assert_eq!(t.table.height(), groups.len());
    let (weeks, gyms, ex) = (
        i64s(&t.table, "week_start"),
        strs(&t.table, "gym_id"),
        strs(&t.table, "exercise"),
    );
    let (reps, events) = (u64s(&t.table, "reps"), u64s(&t.table, "extensor_events"));
    let cols = [
        "fatigue_median",
        "fatigue_q1",
        "fatigue_q3",
        "fatigue_p90",
        "stability_median",
        "stability_p90",
        "fatigue_iqr",
        "damage_per_athlete_median",
    ];
    let got: Vec<Vec<Option<f64>>> = cols.iter().map(|c| f64s(&t.table, c)).collect();
    let damage = f64s(&t.table, "damage_total");
    let order = |e: &str| {
        ["deadlift", "squat", "kettlebell_swing", "carry"]
            .iter()
            .position(|x| *x == e)
    };
    let mut rows: Vec<(&Key, &Vec<&RepRecord>)> = groups.iter().collect();
    rows.sort_by_key(|((w, g, e), _)| (*w, g.clone(), order(e)));
    for (i, ((w, g, e), rs)) in rows.into_iter().enumerate() {
        assert_eq!(
            (weeks[i], gyms[i].as_deref(), ex[i].as_deref()),
            (*w, Some(g.as_str()), Some(e.as_str()))
        );
        assert_eq!(reps[i], rs.len() as u64);
        assert_eq!(
            events[i],
            rs.iter().filter(|r| r.extensor_event).count() as u64
        );
        let fat: Vec<f64> = rs.iter().map(|r| f64::from(r.fatigue_score)).collect();
        let stab: Vec<f64> = rs.iter().map(|r| f64::from(r.stability_deficit)).collect();
        assert_eq!(got[0][i], Some(quantile(&fat, 0.5)), "median {i}");
        assert_eq!(got[1][i], Some(quantile(&fat, 0.25)));
        assert_eq!(got[2][i], Some(quantile(&fat, 0.75)));
        assert_eq!(got[3][i], Some(quantile(&fat, 0.9)));
        assert_eq!(got[4][i], Some(quantile(&stab, 0.5)));
        assert_eq!(got[5][i], Some(quantile(&stab, 0.9)));
        assert_eq!(got[6][i], Some(quantile(&fat, 0.75) - quantile(&fat, 0.25)));
        // Damage sums are exact in billionths (fixed point), per athlete and in total.
        let mut per_athlete: BTreeMap<&str, i64> = BTreeMap::new();
        for r in rs {
            *per_athlete.entry(r.athlete_id.as_str()).or_default() += fixed(r.damage, DAMAGE_SCALE);
        }
        let sums: Vec<f64> = per_athlete.values().map(|n| *n as f64 / 1e9).collect();
        assert_eq!(got[7][i], Some(quantile(&sums, 0.5)));
        let total: i64 = per_athlete.values().sum();
        assert_eq!(damage[i], Some(total as f64 / 1e9));
        let direct: f64 = rs.iter().map(|r| r.damage).sum();
        assert!((total as f64 / 1e9 - direct).abs() <= 1e-9 * rs.len() as f64);
    }
}

#[test]
fn cohort_bands_and_filters() {
    let pop = population();
    let facts = RepFacts::from_reps(&pop.reps);
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: None,
    };
    let opts = TrendOptions {
        group_by: vec![
            Dimension::AgeBand,
            Dimension::Sex,
            Dimension::TrainingAgeBand,
            Dimension::Sport,
        ],
        filter: CohortFilter {
            sexes: vec!["f".into()],
            ..CohortFilter::default()
        },
    };
    let t = population_trends(&input, &opts).unwrap();
    assert!(
        strs(&t.table, "sex")
            .iter()
            .all(|s| s.as_deref() == Some("f"))
    );
    // Direct: reps of athletes enrolled as "F" (labels are lower-cased), by age band.
    let by_id: BTreeMap<&str, _> = pop
        .athletes
        .iter()
        .map(|a| (a.athlete_id.as_str(), a))
        .collect();
    let mut truth: BTreeMap<(i64, &str), u64> = BTreeMap::new();
    for r in &pop.reps {
        let a = by_id[r.athlete_id.as_str()];
        if a.sex != "F" {
            continue;
        }
        let w = week_start_us(r.start_us);
        *truth
            .entry((w, AGE_BANDS[age_band(a.birth_year, iso_week(w).0)]))
            .or_default() += 1;
    }
    let mut got: BTreeMap<(i64, String), u64> = BTreeMap::new();
    let (w, age, reps) = (
        i64s(&t.table, "week_start"),
        strs(&t.table, "age_band"),
        u64s(&t.table, "reps"),
    );
    for i in 0..t.table.height() {
        *got.entry((w[i], age[i].clone().unwrap())).or_default() += reps[i];
    }
    let truth: BTreeMap<(i64, String), u64> = truth
        .into_iter()
        .map(|((w, b), n)| ((w, b.to_owned()), n))
        .collect();
    assert_eq!(got, truth);
    assert!(
        age.iter().any(|a| a.as_deref() == Some("unknown")),
        "athletes without a birth year"
    );

    // An exercise filter keeps only those reps; a bad band label is refused.
    let dl = population_trends(
        &input,
        &TrendOptions {
            filter: CohortFilter {
                exercises: vec![1],
                ..CohortFilter::default()
            },
            ..TrendOptions::default()
        },
    )
    .unwrap();
    let total: u64 = u64s(&dl.table, "reps").iter().sum();
    assert_eq!(
        total,
        pop.reps.iter().filter(|r| r.exercise == 1).count() as u64
    );
    let bad = population_trends(
        &input,
        &TrendOptions {
            filter: CohortFilter {
                age_bands: vec!["teen".into()],
                ..CohortFilter::default()
            },
            ..TrendOptions::default()
        },
    );
    assert!(bad.is_err());
}

#[test]
fn trending_finds_exactly_the_planted_athletes() {
    let pop = population();
    let facts = RepFacts::from_reps(&pop.reps);
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: None,
    };
    let opts = TrendingOptions {
        include_all: true,
        ..TrendingOptions::default()
    };
    let t = trending_athletes(&input, &opts).unwrap();
    let ids = strs(&t.table, "athlete_id");
    let flagged: BTreeSet<String> = ids
        .iter()
        .zip(bools(&t.table, "trending_event_rate"))
        .filter(|(_, f)| *f)
        .map(|(id, _)| id.clone().unwrap())
        .collect();
    let planted: BTreeSet<String> = pop.planted.iter().cloned().collect();
    assert_eq!(flagged, planted);
    assert_eq!(t.table.height(), pop.athletes.len());
    // The window: the 6 ISO weeks ending with the newest rep's week.
    let newest = pop.reps.iter().map(|r| r.start_us).max().unwrap();
    assert_eq!(t.window_end_us, week_start_us(newest) + WEEK_US);
    assert_eq!(t.window_start_us, t.window_end_us - 6 * WEEK_US);
    // Slopes against a direct least-squares fit of the generator's weekly rates.
    let slopes = f64s(&t.table, "rate_slope");
    let weeks_counted = u64s(&t.table, "weeks_counted");
    for (i, id) in ids.iter().enumerate() {
        let id = id.clone().unwrap();
        let pts: Vec<(f64, f64)> = pop
            .weeks
            .range((id.clone(), t.window_start_us)..(id.clone(), t.window_end_us))
            .filter(|(_, c)| c.reps >= 20)
            .map(|((_, w), c)| {
                (
                    ((w - t.window_start_us) / WEEK_US) as f64,
                    f64::from(c.events) * 100.0 / f64::from(c.reps),
                )
            })
            .collect();
        assert_eq!(weeks_counted[i], pts.len() as u64);
        let n = pts.len() as f64;
        let (sx, sy) = (
            pts.iter().map(|p| p.0).sum::<f64>(),
            pts.iter().map(|p| p.1).sum::<f64>(),
        );
        let sxy: f64 = pts.iter().map(|p| p.0 * p.1).sum();
        let sxx: f64 = pts.iter().map(|p| p.0 * p.0).sum();
        let expected = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        let got = slopes[i].unwrap();
        assert!((got - expected).abs() < 1e-9, "{id}: {got} vs {expected}");
        if planted.contains(&id) {
            assert!((got - 3.0).abs() < 0.6, "planted slope {got}");
        }
    }
    // Trending first, by slope.
    let only = trending_athletes(&input, &TrendingOptions::default()).unwrap();
    assert_eq!(only.table.height(), planted.len());
    let s = f64s(&only.table, "rate_slope");
    assert!(s.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn trending_by_risk_and_risk_columns() {
    let pop = population();
    let facts = RepFacts::from_reps(&pop.reps);
    // Daily risk: rising for the first athlete, flat for the others.
    let mut risk = RiskFacts::default();
    let start = pop.reps.iter().map(|r| r.start_us).min().unwrap();
    let days = 8 * 7;
    for (k, a) in pop.athletes.iter().enumerate() {
        for d in 0..days {
            risk.athlete_id.push(a.athlete_id.clone());
            risk.gym_id.push(a.gym_id.clone());
            risk.day_us.push(day_start_us(start) + d * DAY_US);
            risk.probability
                .push(if k == 0 { 0.05 + 0.01 * d as f64 } else { 0.1 });
        }
    }
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: Some(&risk),
    };
    let t = trending_athletes(&input, &TrendingOptions::default()).unwrap();
    let ids = strs(&t.table, "athlete_id");
    let by_risk: Vec<String> = ids
        .iter()
        .zip(bools(&t.table, "trending_risk"))
        .filter(|(_, f)| *f)
        .map(|(i, _)| i.clone().unwrap())
        .collect();
    assert_eq!(by_risk, vec![pop.athletes[0].athlete_id.clone()]);
    let slope = f64s(&t.table, "risk_slope")[ids
        .iter()
        .position(|i| i.as_deref() == Some(pop.athletes[0].athlete_id.as_str()))
        .unwrap()]
    .unwrap();
    assert!((slope - 0.07).abs() < 1e-9, "{slope}");

    let trends = population_trends(
        &input,
        &TrendOptions {
            group_by: vec![Dimension::Gym],
            ..TrendOptions::default()
        },
    )
    .unwrap();
    assert!(trends.risk_available);
    let days_col = u64s(&trends.table, "risk_athlete_days");
    assert!(days_col.iter().all(|d| *d == 12 * 7), "{days_col:?}");
    // By exercise: risk is not broken down.
    let by_ex = population_trends(
        &input,
        &TrendOptions {
            group_by: vec![Dimension::Exercise],
            ..TrendOptions::default()
        },
    )
    .unwrap();
    assert!(
        f64s(&by_ex.table, "risk_median")
            .iter()
            .all(Option::is_none)
    );
}

#[test]
fn acute_chronic_load_matches_direct_sums() {
    let pop = population();
    let facts = RepFacts::from_reps(&pop.reps);
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: None,
    };
    let l = load_monitoring(&input, &LoadOptions::default()).unwrap();
    let newest = pop.reps.iter().map(|r| r.start_us).max().unwrap();
    let end = day_start_us(newest) + DAY_US;
    assert_eq!(l.window_end_us, end);
    let ids = strs(&l.table, "athlete_id");
    let (acute, chronic, ratio) = (
        f64s(&l.table, "acute_load_kg"),
        f64s(&l.table, "chronic_weekly_load_kg"),
        f64s(&l.table, "acute_chronic_ratio"),
    );
    let (ar, cr) = (u64s(&l.table, "acute_reps"), u64s(&l.table, "chronic_reps"));
    assert_eq!(ids.len(), pop.athletes.len());
    for (i, id) in ids.iter().enumerate() {
        let id = id.clone().unwrap();
        let mine: Vec<&RepRecord> = pop.reps.iter().filter(|r| r.athlete_id == id).collect();
        let sum = |from: i64| -> (f64, u64) {
            mine.iter()
                .filter(|r| r.start_us >= from && r.start_us < end)
                .fold((0.0, 0), |(s, n), r| (s + f64::from(r.load_kg), n + 1))
        };
        let (a, an) = sum(end - 7 * DAY_US);
        let (c, cn) = sum(end - 28 * DAY_US);
        // Loads are multiples of 2.5: every partial sum is exact.
        assert_eq!(acute[i], Some(a));
        assert_eq!(chronic[i], Some(c / 4.0));
        assert_eq!(ratio[i], Some(a / (c / 4.0)));
        assert_eq!((ar[i], cr[i]), (an, cn));
    }
}

#[test]
fn wire_rows_follow_the_frames() {
    let pop = population();
    let facts = RepFacts::from_reps(&pop.reps);
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: None,
    };
    let t = population_trends(
        &input,
        &TrendOptions {
            group_by: vec![Dimension::Sport],
            ..TrendOptions::default()
        },
    )
    .unwrap();
    let rows = t.to_proto().unwrap();
    assert_eq!(rows.len(), t.table.height());
    let reps: u64 = rows.iter().map(|r| u64::from(r.reps)).sum();
    assert_eq!(reps, pop.reps.len() as u64);
    assert!(
        rows.iter()
            .all(|r| r.gym_id.is_empty() && !r.sport.is_empty())
    );
    assert!(
        rows.iter()
            .all(|r| r.fatigue.is_some() && r.risk_median.is_none())
    );
    let tr = trending_athletes(&input, &TrendingOptions::default()).unwrap();
    let tp = tr.to_proto().unwrap();
    assert_eq!(tp.len(), pop.planted.len());
    assert!(
        tp.iter()
            .all(|a| a.trending_event_rate && a.rate_slope.unwrap() > 1.0)
    );
    let l = load_monitoring(&input, &LoadOptions::default())
        .unwrap()
        .to_proto()
        .unwrap();
    assert_eq!(l.len(), pop.athletes.len());
}

#[test]
fn history_of_one_athlete() {
    let pop = population();
    let athlete = &pop.athletes[3];
    let reps: Vec<RepRecord> = pop
        .reps
        .iter()
        .filter(|r| r.athlete_id == athlete.athlete_id)
        .rev()
        .cloned()
        .collect();
    let h = athlete_history(&HistoryInput {
        athlete,
        reps: &reps,
        risk: None,
    })
    .unwrap();
    let sessions: BTreeSet<&str> = reps.iter().map(|r| r.session_id.as_str()).collect();
    let sets: BTreeSet<&str> = reps.iter().map(|r| r.set_id.as_str()).collect();
    assert_eq!(h.sessions.height(), sessions.len());
    assert_eq!(h.sets.height(), sets.len());
    assert_eq!(h.weeks.height(), 8);
    let starts = i64s(&h.sessions, "start_us");
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    let weeks = h.weeks_proto().unwrap();
    for w in &weeks {
        let truth = pop.weeks[&(athlete.athlete_id.clone(), w.week_start_us)];
        assert_eq!((w.reps, w.extensor_events), (truth.reps, truth.events));
    }
    // First week: its load over the 4-week mean with 3 empty weeks = 4.
    assert_eq!(weeks[0].acute_chronic_ratio, Some(4.0));
    let set_reps: u32 = h.sets_proto().unwrap().iter().map(|s| s.reps).sum();
    assert_eq!(set_reps as usize, reps.len());
    let sess = h.sessions_proto().unwrap();
    assert_eq!(
        sess.iter().map(|s| s.reps).sum::<u32>() as usize,
        reps.len()
    );
    // A rep of someone else is refused.
    let mut wrong = reps.clone();
    wrong[0].athlete_id = "a-other".into();
    assert!(
        athlete_history(&HistoryInput {
            athlete,
            reps: &wrong,
            risk: None
        })
        .is_err()
    );
}

#[test]
fn facts_from_reps_are_in_store_order() {
    let pop = population();
    let mut shuffled = pop.reps.clone();
    shuffled.reverse();
    assert_eq!(
        RepFacts::from_reps(&shuffled),
        RepFacts::from_reps(&pop.reps)
    );
    let f = RepFacts::from_reps(&pop.reps);
    assert_eq!(f.len(), pop.reps.len());
    assert_eq!(f.athletes.len(), pop.athletes.len());
}

#[test]
fn streamed_exports_are_whole_files() {
    use liftguard_analytics::{ExportFormat, RepStreamWriter, SharedBuffer, raw_reps_frame};
    let pop = generate(&PopulationSpec {
        athletes_per_gym: 40,
        weeks: 16,
        ..PopulationSpec::default()
    });
    assert!(pop.reps.len() > 65_536, "{}", pop.reps.len());
    for format in [ExportFormat::Csv, ExportFormat::Parquet] {
        let buf = SharedBuffer::default();
        let mut w = RepStreamWriter::new(buf.clone(), format).unwrap();
        let mut file = Vec::new();
        let mut chunks = 0;
        for page in pop.reps.chunks(10_000) {
            w.write(page).unwrap();
            let bytes = buf.take();
            chunks += usize::from(!bytes.is_empty());
            file.extend(bytes);
        }
        assert_eq!(w.finish().unwrap(), pop.reps.len() as u64);
        let last = buf.take();
        chunks += usize::from(!last.is_empty());
        file.extend(last);
        assert!(chunks > 1, "{format:?} was not streamed");
        let expected = raw_reps_frame(&pop.reps).unwrap();
        let got = match format {
            ExportFormat::Csv => CsvReadOptions::default()
                .with_has_header(true)
                .into_reader_with_file_handle(std::io::Cursor::new(file))
                .finish()
                .unwrap(),
            ExportFormat::Parquet => ParquetReader::new(std::io::Cursor::new(file))
                .finish()
                .unwrap(),
        };
        assert_eq!(got.height(), pop.reps.len());
        assert_eq!(got.get_column_names(), expected.get_column_names());
        if format == ExportFormat::Parquet {
            assert!(got.equals_missing(&expected));
        } else {
            assert_eq!(
                got.column("rep_id").unwrap().str().unwrap().get(7),
                expected.column("rep_id").unwrap().str().unwrap().get(7)
            );
        }
    }
    // No rows: a CSV file is just the header.
    let buf = SharedBuffer::default();
    let w = RepStreamWriter::new(buf.clone(), ExportFormat::Csv).unwrap();
    assert_eq!(w.finish().unwrap(), 0);
    let text = String::from_utf8(buf.take()).unwrap();
    assert!(text.starts_with("rep_id,gym_id,athlete_id,") && text.lines().count() == 1);
}

#[test]
fn repeated_runs_are_bit_identical() {
    let pop = generate(&PopulationSpec {
        athletes_per_gym: 8,
        weeks: 7,
        ..PopulationSpec::default()
    });
    let facts = RepFacts::from_reps(&pop.reps);
    let input = PopulationInput {
        reps: &facts,
        athletes: &pop.athletes,
        risk: None,
    };
    let first = population_trends(&input, &TrendOptions::default()).unwrap();
    for i in 0..10 {
        let again = population_trends(&input, &TrendOptions::default()).unwrap();
        for (a, b) in first.table.columns().iter().zip(again.table.columns()) {
            assert!(
                a.as_materialized_series()
                    .equals_missing(b.as_materialized_series()),
                "run {i}: {} differs",
                a.name()
            );
        }
    }
}
