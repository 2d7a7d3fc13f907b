//! Report tables against hand-computed figures, input-order independence, validation,
//! and CSV / Parquet round trips read back with polars.
//!
//! The fixture (times in seconds from T0; flexion in degrees; `*` = extensor event):
//!
//! | athlete | gym | session | set | exercise | peak flexion | fatigue | cum. damage |
//! |---|---|---|---|---|---|---|---|
//! | ath-a1 Alice | gym-a | s1 | set-1 | deadlift x4 | 10, 20, 30*, 40 | 10, 20, 30, 40 | .1 .2 .3 .4 |
//! | ath-a1 Alice | gym-a | s2 (+1 day) | set-2 | squat x2 | 15, 25 | 5, 15 | .05 .1 |
//! | ath-a2 Bob | gym-a | s3 | (none) | kettlebell swing x3 | 5, 6.5*, 8* | 50, 60, 70 | 1, 1.5, 2 |
//! | ath-b1 Cara | gym-b | s4 | (none) | carry, unspecified | 12, 14* | 0, 10 | .01 .02 |
//! | ath-b2 Dan | gym-b | no reps | | | | | |
//!
//! Quantiles are linear (numpy default): index `q * (n - 1)` between sorted values.

// Tests may unwrap, helpers included.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use liftguard_analytics::{
    AnalyticsError, ExportFormat, Report, ReportOptions, build_report, export_reps, raw_reps_frame,
};
use liftguard_model::{ErrorKind, Exercise};
use liftguard_proto::v1::{Athlete, ExtensorEvidence, RepRecord};
use polars::prelude::*;

const T0: i64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z
const S: i64 = 1_000_000;
const DAY: i64 = 86_400 * S;

fn athlete(id: &str, gym: &str, name: &str) -> Athlete {
    Athlete {
        athlete_id: id.into(),
        gym_id: gym.into(),
        external_ref: format!("ref-{id}"),
        display_name: name.into(),
        height_m: 1.8,
        mass_kg: 80.0,
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn rep(
    athlete: &str,
    gym: &str,
    session: &str,
    set: &str,
    exercise: i32,
    start_us: i64,
    flexion: f32,
    event: bool,
    fatigue: f32,
    cum_damage: f64,
) -> RepRecord {
    RepRecord {
        rep_id: format!("{athlete}-{start_us}"),
        gym_id: gym.into(),
        athlete_id: athlete.into(),
        set_id: set.into(),
        rep_index: 1,
        exercise,
        exercise_inferred: false,
        load_kg: 100.0,
        start_us,
        end_us: start_us + 3 * S,
        bottom_us: start_us + S,
        concentric_start_us: start_us + S + S / 2,
        eccentric_s: 1.0,
        concentric_s: 1.5,
        peak_lumbar_flexion_deg: flexion,
        peak_trunk_inclination_deg: flexion + 20.0,
        ldi: 0.25,
        peak_load_moment_nm: 200.0,
        extensor_event: event,
        evidence: event.then(|| ExtensorEvidence {
            peak_lumbar_ext_velocity_dps: 95.5,
            lumbar_share_duration_ms: 180.0,
            max_lumbar_share: 0.75,
            ldi: 0.6,
            onset_lag_ms: -40.0,
            bottom_lumbar_flexion_deg: flexion,
            peak_load_moment_nm: 210.25,
            top_hyperextension_deg: 0.0,
        }),
        fatigue_score: fatigue,
        fatigue_dose: fatigue / 2.0,
        fatigue_observed: fatigue / 4.0,
        stability_deficit: 0.5,
        damage: 0.01,
        cumulative_damage: cum_damage,
        session_id: session.into(),
        clock_skew_flagged: false,
        model_version: 1,
        ..Default::default()
    }
}

const DL: i32 = 1;
const SQ: i32 = 2;
const KB: i32 = 3;
const CARRY: i32 = 4;

fn fixture() -> (Vec<RepRecord>, Vec<Athlete>) {
    let mut reps = Vec::new();
    for (i, (flex, ev, fat, dmg)) in [
        (10.0, false, 10.0, 0.1),
        (20.0, false, 20.0, 0.2),
        (30.0, true, 30.0, 0.3),
        (40.0, false, 40.0, 0.4),
    ]
    .into_iter()
    .enumerate()
    {
        reps.push(rep(
            "ath-a1",
            "gym-a",
            "s1",
            "set-1",
            DL,
            T0 + i as i64 * 5 * S,
            flex,
            ev,
            fat,
            dmg,
        ));
    }
    reps.push(rep(
        "ath-a1",
        "gym-a",
        "s2",
        "set-2",
        SQ,
        T0 + DAY,
        15.0,
        false,
        5.0,
        0.05,
    ));
    reps.push(rep(
        "ath-a1",
        "gym-a",
        "s2",
        "set-2",
        SQ,
        T0 + DAY + 5 * S,
        25.0,
        false,
        15.0,
        0.1,
    ));
    reps.push(rep(
        "ath-a2",
        "gym-a",
        "s3",
        "",
        KB,
        T0 + 60 * S,
        5.0,
        false,
        50.0,
        1.0,
    ));
    reps.push(rep(
        "ath-a2",
        "gym-a",
        "s3",
        "",
        KB,
        T0 + 62 * S,
        6.5,
        true,
        60.0,
        1.5,
    ));
    reps.push(rep(
        "ath-a2",
        "gym-a",
        "s3",
        "",
        KB,
        T0 + 64 * S,
        8.0,
        true,
        70.0,
        2.0,
    ));
    reps.push(rep(
        "ath-b1",
        "gym-b",
        "s4",
        "",
        CARRY,
        T0 + 120 * S,
        12.0,
        false,
        0.0,
        0.01,
    ));
    reps.push(rep(
        "ath-b1",
        "gym-b",
        "s4",
        "",
        0,
        T0 + 130 * S,
        14.0,
        true,
        10.0,
        0.02,
    ));
    let athletes = vec![
        athlete("ath-a1", "gym-a", "Alice"),
        athlete("ath-a2", "gym-a", "Bob"),
        athlete("ath-b1", "gym-b", "Cara"),
        athlete("ath-b2", "gym-b", "Dan"),
    ];
    (reps, athletes)
}

fn report(reps: &[RepRecord], athletes: &[Athlete]) -> Report {
    build_report(reps, athletes, &ReportOptions::default()).unwrap()
}

fn u32s(df: &DataFrame, name: &str) -> Vec<u32> {
    df.column(name)
        .unwrap()
        .u32()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

fn f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().f64().unwrap().iter().collect()
}

fn strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

#[track_caller]
fn assert_close(actual: &[Option<f64>], expected: &[Option<f64>]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        match (a, e) {
            (Some(a), Some(e)) => assert!((a - e).abs() < 1e-9, "{actual:?} vs {expected:?}"),
            (None, None) => {}
            _ => panic!("{actual:?} vs {expected:?}"),
        }
    }
}

fn some(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().copied().map(Some).collect()
}

#[test]
fn per_athlete_matches_hand_computation() {
    let (reps, athletes) = fixture();
    let r = report(&reps, &athletes);
    let df = &r.per_athlete;
    assert_eq!(
        strs(df, "athlete_id"),
        ["ath-a1", "ath-a2", "ath-b1", "ath-b2"].map(|s| Some(s.to_owned()))
    );
    assert_eq!(strs(df, "display_name")[1].as_deref(), Some("Bob"));
    assert_eq!(u32s(df, "reps"), [6, 3, 2, 0]);
    assert_eq!(u32s(df, "sets"), [2, 0, 0, 0]);
    assert_eq!(u32s(df, "sessions"), [2, 1, 1, 0]);
    assert_eq!(u32s(df, "reps_deadlift"), [4, 0, 0, 0]);
    assert_eq!(u32s(df, "reps_squat"), [2, 0, 0, 0]);
    assert_eq!(u32s(df, "reps_kettlebell_swing"), [0, 3, 0, 0]);
    assert_eq!(u32s(df, "reps_carry"), [0, 0, 1, 0]);
    assert_eq!(u32s(df, "reps_other"), [0, 0, 1, 0]);
    assert_eq!(u32s(df, "extensor_events"), [1, 2, 1, 0]);
    // Alice: [10,15,20,25,30,40]: median (20+25)/2, p90 at index 4.5 = 30 + .5*10.
    // Bob: [5,6.5,8]: p90 at index 1.8 = 6.5 + .8*1.5. Cara: [12,14]: p90 = 12 + .9*2.
    assert_close(
        &f64s(df, "peak_lumbar_flexion_median_deg"),
        &[Some(22.5), Some(6.5), Some(13.0), None],
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_p90_deg"),
        &[Some(35.0), Some(7.7), Some(13.8), None],
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_max_deg"),
        &[Some(40.0), Some(8.0), Some(14.0), None],
    );
    assert_close(
        &f64s(df, "events_per_100_reps"),
        &[Some(100.0 / 6.0), Some(200.0 / 3.0), Some(50.0), None],
    );
    assert_close(
        &f64s(df, "mean_fatigue"),
        &[Some(20.0), Some(60.0), Some(5.0), None],
    );
    assert_close(
        &f64s(df, "max_cumulative_damage"),
        &[Some(0.4), Some(2.0), Some(0.02), None],
    );
    let first = df
        .column("first_rep")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap();
    let last = df
        .column("last_rep")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap();
    assert_eq!(first.i64().unwrap().get(0), Some(T0));
    assert_eq!(last.i64().unwrap().get(0), Some(T0 + DAY + 8 * S));
    assert_eq!(first.i64().unwrap().get(3), None);
}

#[test]
fn per_gym_and_totals_match_hand_computation() {
    let (reps, athletes) = fixture();
    let r = report(&reps, &athletes);
    let df = &r.per_gym;
    assert_eq!(
        strs(df, "gym_id"),
        [Some("gym-a".into()), Some("gym-b".into())]
    );
    assert_eq!(u32s(df, "athletes"), [2, 2]);
    assert_eq!(u32s(df, "athletes_active"), [2, 1]);
    assert_eq!(u32s(df, "reps"), [9, 2]);
    assert_eq!(u32s(df, "sets"), [2, 0]);
    assert_eq!(u32s(df, "sessions"), [3, 1]);
    assert_eq!(u32s(df, "reps_deadlift"), [4, 0]);
    assert_eq!(u32s(df, "reps_kettlebell_swing"), [3, 0]);
    assert_eq!(u32s(df, "reps_other"), [0, 1]);
    assert_eq!(u32s(df, "extensor_events"), [3, 1]);
    assert_close(
        &f64s(df, "events_per_100_reps"),
        &some(&[100.0 / 3.0, 50.0]),
    );
    // gym-a flexion sorted: [5,6.5,8,10,15,20,25,30,40]: median 15, p90 at 7.2 = 30 + .2*10.
    assert_close(
        &f64s(df, "peak_lumbar_flexion_median_deg"),
        &some(&[15.0, 13.0]),
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_p90_deg"),
        &some(&[32.0, 13.8]),
    );
    assert_close(&f64s(df, "mean_fatigue"), &some(&[300.0 / 9.0, 5.0]));

    let t = &r.totals;
    assert_eq!(
        (
            t.input_reps,
            t.duplicates_dropped,
            t.reps,
            t.gyms,
            t.athletes,
            t.athletes_active
        ),
        (11, 0, 11, 2, 4, 3)
    );
    assert_eq!((t.sets, t.sessions, t.extensor_events), (2, 4, 4));
    assert_close(&[t.events_per_100_reps], &[Some(400.0 / 11.0)]);
    // All 11: [5,6.5,8,10,12,14,15,20,25,30,40]: median 14, p90 at 9 = 30.
    assert_close(&[t.peak_lumbar_flexion_median_deg], &[Some(14.0)]);
    assert_close(&[t.peak_lumbar_flexion_p90_deg], &[Some(30.0)]);
    assert_close(&[t.mean_fatigue], &[Some(310.0 / 11.0)]);
}

#[test]
fn by_exercise_matches_hand_computation() {
    let (reps, athletes) = fixture();
    let r = report(&reps, &athletes);
    let df = &r.by_exercise;
    assert_eq!(
        strs(df, "exercise"),
        [
            "deadlift",
            "squat",
            "kettlebell_swing",
            "carry",
            "unspecified"
        ]
        .map(|s| Some(s.into()))
    );
    assert_eq!(u32s(df, "reps"), [4, 2, 3, 1, 1]);
    assert_eq!(u32s(df, "athletes"), [1, 1, 1, 1, 1]);
    assert_eq!(u32s(df, "extensor_events"), [1, 0, 2, 0, 1]);
    assert_close(
        &f64s(df, "events_per_100_reps"),
        &some(&[25.0, 0.0, 200.0 / 3.0, 0.0, 100.0]),
    );
    // deadlift [10,20,30,40]: q1 at .75 = 17.5, q3 at 2.25 = 32.5, p90 at 2.7 = 37.
    assert_close(
        &f64s(df, "peak_lumbar_flexion_median_deg"),
        &some(&[25.0, 20.0, 6.5, 12.0, 14.0]),
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_q1_deg"),
        &some(&[17.5, 17.5, 5.75, 12.0, 14.0]),
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_q3_deg"),
        &some(&[32.5, 22.5, 7.25, 12.0, 14.0]),
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_iqr_deg"),
        &some(&[15.0, 5.0, 1.5, 0.0, 0.0]),
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_p90_deg"),
        &some(&[37.0, 24.0, 7.7, 12.0, 14.0]),
    );
    assert_close(&f64s(df, "mean_load_kg"), &some(&[100.0; 5]));
}

#[test]
fn flexion_histogram_has_contiguous_bins_with_hand_counts() {
    let (reps, athletes) = fixture();
    let r = report(&reps, &athletes);
    let df = &r.flexion_distribution;
    let ex = strs(df, "exercise");
    let lo = f64s(df, "bin_lo_deg");
    let counts = u32s(df, "reps");
    let rows: Vec<(String, f64, u32)> = ex
        .iter()
        .zip(&lo)
        .zip(&counts)
        .map(|((e, l), c)| (e.clone().unwrap(), l.unwrap(), *c))
        .collect();
    let expected: Vec<(String, f64, u32)> = [
        // deadlift 10, 20, 30, 40 in 5-degree bins 10..45, empty bins in between.
        ("deadlift", 10.0, 1),
        ("deadlift", 15.0, 0),
        ("deadlift", 20.0, 1),
        ("deadlift", 25.0, 0),
        ("deadlift", 30.0, 1),
        ("deadlift", 35.0, 0),
        ("deadlift", 40.0, 1),
        ("squat", 15.0, 1),
        ("squat", 20.0, 0),
        ("squat", 25.0, 1),
        ("kettlebell_swing", 5.0, 3),
        ("carry", 10.0, 1),
        ("unspecified", 10.0, 1),
    ]
    .into_iter()
    .map(|(e, l, c)| (e.to_owned(), l, c))
    .collect();
    assert_eq!(rows, expected);
    assert_close(&f64s(df, "bin_hi_deg")[..2], &some(&[15.0, 20.0]));
    assert_close(&f64s(df, "share")[..2], &some(&[0.25, 0.0]));
    assert_close(&f64s(df, "share")[10..11], &some(&[1.0]));
    // The exercise's quantiles ride along on every row.
    assert_close(
        &f64s(df, "peak_lumbar_flexion_median_deg")[..1],
        &some(&[25.0]),
    );
    assert_close(
        &f64s(df, "peak_lumbar_flexion_iqr_deg")[7..8],
        &some(&[5.0]),
    );

    // A wider bin merges them: deadlift [0,20) holds 10, [20,40) holds 20 and 30,
    // [40,60) holds 40 (bins are closed below, open above).
    let wide = build_report(
        &reps,
        &athletes,
        &ReportOptions {
            flexion_bin_width_deg: 20.0,
            ..Default::default()
        },
    )
    .unwrap();
    let d = &wide.flexion_distribution;
    assert_eq!(u32s(d, "reps")[..3], [1, 2, 1]);
    assert_close(&f64s(d, "bin_lo_deg")[..3], &some(&[0.0, 20.0, 40.0]));
    assert_close(&f64s(d, "share")[..3], &some(&[0.25, 0.5, 0.25]));
}

#[test]
fn sessions_table_matches_hand_computation() {
    let (reps, athletes) = fixture();
    let r = report(&reps, &athletes);
    let df = &r.sessions;
    assert_eq!(
        strs(df, "session_id"),
        ["s1", "s2", "s3", "s4"].map(|s| Some(s.into()))
    );
    assert_eq!(
        strs(df, "athlete_id"),
        ["ath-a1", "ath-a1", "ath-a2", "ath-b1"].map(|s| Some(s.into()))
    );
    assert_eq!(u32s(df, "reps"), [4, 2, 3, 2]);
    assert_eq!(u32s(df, "sets"), [1, 1, 0, 0]);
    assert_eq!(u32s(df, "extensor_events"), [1, 0, 2, 1]);
    let start = df.column("start").unwrap();
    assert_eq!(
        start.dtype(),
        &DataType::Datetime(TimeUnit::Microseconds, None)
    );
    let start = start.cast(&DataType::Int64).unwrap();
    let end = df.column("end").unwrap().cast(&DataType::Int64).unwrap();
    assert_eq!(start.i64().unwrap().get(1), Some(T0 + DAY));
    assert_eq!(end.i64().unwrap().get(0), Some(T0 + 18 * S));
    // s1: first start T0, last end T0 + 15 s + 3 s.
    assert_close(
        &f64s(df, "duration_min"),
        &some(&[0.3, 8.0 / 60.0, 7.0 / 60.0, 13.0 / 60.0]),
    );
    assert_close(
        &f64s(df, "max_cumulative_damage"),
        &some(&[0.4, 0.1, 2.0, 0.02]),
    );
}

#[test]
fn empty_input_gives_empty_tables_with_fixed_schemas() {
    let (reps, athletes) = fixture();
    let full = report(&reps, &athletes);
    let empty = report(&[], &[]);
    for ((name, e), (_, f)) in empty.tables().into_iter().zip(full.tables()) {
        assert_eq!(e.height(), 0, "{name}");
        assert_eq!(
            e.schema(),
            f.schema(),
            "{name} schema must not depend on data"
        );
    }
    let t = &empty.totals;
    assert_eq!(
        (t.reps, t.athletes, t.gyms, t.extensor_events),
        (0, 0, 0, 0)
    );
    assert_eq!(t.events_per_100_reps, None);
    assert_eq!(t.peak_lumbar_flexion_median_deg, None);
    let text = empty.render_text();
    assert!(
        text.contains("0 gyms, 0 athletes (0 active), 0 reps"),
        "{text}"
    );

    // Athletes but no reps: every athlete listed with zero counts and null rates.
    let only_athletes = report(&[], &athletes);
    assert_eq!(u32s(&only_athletes.per_athlete, "reps"), [0, 0, 0, 0]);
    assert_eq!(
        f64s(&only_athletes.per_athlete, "events_per_100_reps"),
        vec![None; 4]
    );
    assert_eq!(u32s(&only_athletes.per_gym, "athletes_active"), [0, 0]);
    assert_eq!(
        f64s(&only_athletes.per_gym, "events_per_100_reps"),
        [None, None]
    );

    // Empty exports are valid files with a header / schema.
    let dir = tempfile::tempdir().unwrap();
    for format in [ExportFormat::Csv, ExportFormat::Parquet] {
        let files = empty.export(dir.path(), format).unwrap();
        for (path, (_, df)) in files.iter().zip(empty.tables()) {
            let back = read_back(path, format, df.schema());
            assert_eq!(back.height(), 0);
            assert_eq!(back.schema(), df.schema(), "{}", path.display());
        }
    }
}

/// A fixed permutation (multiplicative step coprime to n) — deterministic, not sorted.
fn permute<T: Clone>(v: &[T], step: usize) -> Vec<T> {
    (0..v.len())
        .map(|i| v[(i * step + 3) % v.len()].clone())
        .collect()
}

fn assert_same_tables(a: &Report, b: &Report) {
    for ((name, x), (_, y)) in a.tables().into_iter().zip(b.tables()) {
        assert!(x.equals_missing(y), "{name} differs:\n{x:?}\n{y:?}");
    }
}

#[test]
fn same_rows_in_any_order_give_identical_report() {
    let (reps, athletes) = fixture();
    let base = report(&reps, &athletes);
    for step in [1, 2, 3, 4, 5, 7] {
        let shuffled = permute(&reps, step);
        assert_ne!(shuffled, reps);
        let mut ath = athletes.clone();
        ath.reverse();
        let other = report(&shuffled, &ath);
        assert_same_tables(&base, &other);
        assert_eq!(base.totals, other.totals);
        assert_eq!(base.render_text(), other.render_text());
    }
    let mut reversed = reps.clone();
    reversed.reverse();
    assert_same_tables(&base, &report(&reversed, &athletes));
}

#[test]
fn duplicate_reps_count_once_and_newest_model_version_wins() {
    let (reps, athletes) = fixture();
    let base = report(&reps, &athletes);

    // An at-least-once resend of three reps changes nothing but the duplicate count.
    let mut with_dupes = reps.clone();
    with_dupes.extend(reps[2..5].iter().cloned());
    let dup = report(&permute(&with_dupes, 5), &athletes);
    assert_same_tables(&base, &dup);
    assert_eq!(dup.totals.duplicates_dropped, 3);
    assert_eq!(dup.totals.input_reps, 14);
    assert_eq!(dup.totals.reps, 11);
    assert!(dup.render_text().contains("3 of 14 input reps"));

    // A reprocessed rep (same natural key, newer model) replaces the old one whatever
    // the order: Bob's 5-degree swing becomes a 9-degree event.
    let mut newer = reps[6].clone();
    newer.model_version = 2;
    newer.peak_lumbar_flexion_deg = 9.0;
    newer.extensor_event = true;
    for rows in [
        [reps.clone(), vec![newer.clone()]].concat(),
        [vec![newer.clone()], reps.clone()].concat(),
    ] {
        let r = report(&rows, &athletes);
        assert_eq!(u32s(&r.per_athlete, "extensor_events"), [1, 3, 1, 0]);
        assert_close(
            &f64s(&r.per_athlete, "peak_lumbar_flexion_max_deg")[1..2],
            &some(&[9.0]),
        );
    }
}

#[test]
fn invalid_input_is_rejected_with_the_row_and_field() {
    let (reps, athletes) = fixture();
    let opts = ReportOptions::default();

    let mut bad = reps.clone();
    bad[4].peak_lumbar_flexion_deg = f32::NAN;
    let err = build_report(&bad, &athletes, &opts).unwrap_err();
    assert!(
        matches!(
            &err,
            AnalyticsError::InvalidRep {
                index: 4,
                field: "peak_lumbar_flexion_deg",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let mut bad = reps.clone();
    bad[0].peak_lumbar_flexion_deg = 200.0;
    let err = build_report(&bad, &athletes, &opts).unwrap_err();
    assert!(err.to_string().contains("physical range"), "{err}");

    let mut bad = reps.clone();
    bad[1].athlete_id.clear();
    let err = build_report(&bad, &athletes, &opts).unwrap_err();
    assert!(matches!(
        err,
        AnalyticsError::InvalidRep {
            index: 1,
            field: "athlete_id",
            ..
        }
    ));

    let mut bad = reps.clone();
    bad[2].end_us = bad[2].start_us - 1;
    let err = build_report(&bad, &athletes, &opts).unwrap_err();
    assert!(matches!(
        err,
        AnalyticsError::InvalidRep {
            field: "end_us",
            ..
        }
    ));

    let mut bad = reps.clone();
    bad[3].cumulative_damage = f64::INFINITY;
    let err = build_report(&bad, &athletes, &opts).unwrap_err();
    assert!(matches!(
        err,
        AnalyticsError::InvalidRep {
            field: "cumulative_damage",
            ..
        }
    ));

    // A rep filed under another gym than the athlete's enrolment: tenants never mix.
    let mut bad = reps.clone();
    bad[0].gym_id = "gym-b".into();
    let err = build_report(&bad, &athletes, &opts).unwrap_err();
    assert!(
        matches!(&err, AnalyticsError::GymMismatch { athlete_id, rep_gym, athlete_gym, .. }
            if athlete_id == "ath-a1" && rep_gym == "gym-b" && athlete_gym == "gym-a"),
        "{err}"
    );

    let mut dup_athletes = athletes.clone();
    let mut changed = athletes[0].clone();
    changed.gym_id = "gym-b".into();
    dup_athletes.push(changed);
    let err = build_report(&reps, &dup_athletes, &opts).unwrap_err();
    assert!(matches!(
        err,
        AnalyticsError::InvalidAthlete {
            index: 4,
            field: "athlete_id",
            ..
        }
    ));
    // An identical repeat of an athlete is harmless.
    let mut same_twice = athletes.clone();
    same_twice.push(athletes[0].clone());
    assert_same_tables(&report(&reps, &athletes), &report(&reps, &same_twice));

    for width in [0.0, -5.0, f64::NAN, 0.1, 1000.0] {
        let err = build_report(
            &reps,
            &athletes,
            &ReportOptions {
                flexion_bin_width_deg: width,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, AnalyticsError::InvalidOptions(_)),
            "{width}: {err}"
        );
    }
}

#[test]
fn athletes_seen_only_in_reps_are_reported_as_not_enrolled() {
    let (mut reps, athletes) = fixture();
    reps.push(rep(
        "ath-x", "gym-b", "s9", "set-9", DL, T0, 33.0, false, 1.0, 0.0,
    ));
    let r = report(&reps, &athletes);
    let df = &r.per_athlete;
    let ids = strs(df, "athlete_id");
    let i = ids
        .iter()
        .position(|v| v.as_deref() == Some("ath-x"))
        .unwrap();
    assert_eq!(strs(df, "display_name")[i], None);
    assert_eq!(strs(df, "gym_id")[i].as_deref(), Some("gym-b"));
    let enrolled: Vec<Option<bool>> = df
        .column("enrolled")
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(enrolled[i], Some(false));
    assert_eq!(enrolled[0], Some(true));
    assert_eq!(u32s(&r.per_gym, "athletes"), [2, 3]);
}

fn read_back(path: &Path, format: ExportFormat, schema: &SchemaRef) -> DataFrame {
    match format {
        ExportFormat::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_schema(Some(Arc::clone(schema)))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .unwrap()
            .finish()
            .unwrap(),
        ExportFormat::Parquet => ParquetReader::new(File::open(path).unwrap())
            .finish()
            .unwrap(),
    }
}

#[test]
fn report_tables_round_trip_through_csv_and_parquet() {
    let (reps, athletes) = fixture();
    let r = report(&reps, &athletes);
    let dir = tempfile::tempdir().unwrap();
    for format in [ExportFormat::Csv, ExportFormat::Parquet] {
        let out = dir.path().join(format.extension()).join("nested");
        let files = r.export(&out, format).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let ext = format.extension();
        assert_eq!(
            names,
            [
                "per_athlete",
                "per_gym",
                "by_exercise",
                "flexion_distribution",
                "sessions"
            ]
            .map(|s| format!("{s}.{ext}"))
        );
        for (path, (name, df)) in files.iter().zip(r.tables()) {
            let back = read_back(path, format, df.schema());
            assert!(
                back.equals_missing(df),
                "{name} via {ext}:\n{back:?}\n{df:?}"
            );
        }
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 5);
    }
    // The CSV is plain text a spreadsheet opens: header first, times in ISO 8601.
    let csv = std::fs::read_to_string(dir.path().join("csv/nested/sessions.csv")).unwrap();
    assert!(
        csv.starts_with("athlete_id,gym_id,session_id,start,end,"),
        "{csv}"
    );
    assert!(csv.contains("2023-11-14T22:13:20"), "{csv}");
}

#[test]
fn raw_reps_round_trip_with_every_field_and_evidence() {
    let (mut reps, _) = fixture();
    reps[0].exercise = 9; // a code from a newer producer
    reps[1].clock_skew_flagged = true;
    reps[1].rep_id = "id, with \"quotes\"".into();
    let expected = raw_reps_frame(&reps).unwrap();
    assert_eq!(expected.height(), reps.len());
    // 29 wire fields, evidence (8) flattened in place of the message field.
    assert_eq!(expected.width(), 28 + 8);

    let dir = tempfile::tempdir().unwrap();
    for format in [ExportFormat::Csv, ExportFormat::Parquet] {
        let path = dir.path().join(format!("raw/reps.{}", format.extension()));
        assert_eq!(export_reps(&reps, &path, format).unwrap(), reps.len());
        let back = read_back(&path, format, expected.schema());
        assert!(back.equals_missing(&expected), "{format:?}:\n{back:?}");

        // Spot checks against the records themselves (not only the frame builder).
        assert_eq!(
            back.column("start_us").unwrap().i64().unwrap().get(4),
            Some(reps[4].start_us)
        );
        let ex = strs(&back, "exercise");
        assert_eq!(ex[0].as_deref(), Some("unknown_9"));
        assert_eq!(ex[4].as_deref(), Some(Exercise::Squat.as_str()));
        assert_eq!(
            strs(&back, "rep_id")[1].as_deref(),
            Some("id, with \"quotes\"")
        );
        assert_eq!(
            strs(&back, "set_id")[6],
            None,
            "empty strings export as null"
        );
        let vel = back
            .column("evidence_peak_lumbar_ext_velocity_dps")
            .unwrap();
        let vel: Vec<Option<f32>> = vel.f32().unwrap().iter().collect();
        assert_eq!(vel[2], Some(95.5), "rep 2 is an event with evidence");
        assert_eq!(vel[0], None, "rep 0 carries no evidence");
        let flex: Vec<Option<f32>> = back
            .column("peak_lumbar_flexion_deg")
            .unwrap()
            .f32()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(flex[7], Some(6.5));
        let skew: Vec<Option<bool>> = back
            .column("clock_skew_flagged")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(skew[..2], [Some(false), Some(true)]);
    }
}

#[test]
fn render_text_summarises_the_report_compactly() {
    let (reps, athletes) = fixture();
    let r = report(&reps, &athletes);
    let text = r.render_text();
    println!("{text}");
    assert!(
        text.starts_with(
            "liftguard report: 2 gyms, 4 athletes (3 active), 11 reps, 2 sets, 4 sessions\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("extensor events: 4 (36.4 per 100 reps)"),
        "{text}"
    );
    assert!(
        text.contains("peak lumbar flexion median 14.0 deg, p90 30.0 deg"),
        "{text}"
    );
    for needle in [
        "Alice",
        "Bob",
        "Cara",
        "Dan",
        "gym-a",
        "deadlift",
        "kettlebell_swing",
        "2023-11-15 22:13",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    // Highest event rate first: Bob (66.7) before Cara (50) before Alice (16.7); Dan last.
    let pos = |s: &str| text.find(s).unwrap();
    assert!(pos("Bob") < pos("Cara") && pos("Cara") < pos("Alice") && pos("Alice") < pos("Dan"));
    assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");

    let short = build_report(
        &reps,
        &athletes,
        &ReportOptions {
            text_max_rows: 1,
            ..Default::default()
        },
    )
    .unwrap()
    .render_text();
    assert!(
        short.contains("Athletes, highest event rate first (1 of 4)"),
        "{short}"
    );
    assert!(!short.contains("Dan"), "{short}");
    assert!(short.lines().count() < text.lines().count());
}
