//! Rollups (migrations v6 and v7): the same reps give identical rollups on TimescaleDB (pglite:
//! continuous aggregates refreshed explicitly, since pglite runs no background jobs),
//! plain PostgreSQL and SQLite (incrementally refreshed tables) — and equal to a reference
//! computed in Rust from the reps — for every kind of scope, before and after corrections
//! and late reps.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

use liftguard_model::{AthleteId, GymId};
use liftguard_proto::v1::RepRecord;
use liftguard_store::rollups::{DAY_US, WEEK_US, day_start, week_start};
use liftguard_store::testing::synth::{self, GymSpec};
use liftguard_store::testing::{PgTestDb, PgliteServer};
use liftguard_store::{
    AthleteDay, Backend, ExerciseWeek, GymWeek, MAX_TIME_US, RepTotals, Scope, ScoreBuckets, Store,
    StoreOptions,
};

const SECRET: &[u8] = b"rollup-test-secret";

fn gym(s: &str) -> GymId {
    GymId::parse(s).unwrap()
}

/// Two gyms' synthetic reps and the athlete ids of the first.
fn dataset() -> (Vec<RepRecord>, Vec<String>) {
    let mut reps = Vec::new();
    let mut first_ids = Vec::new();
    for (spec, keep_ids) in [
        (GymSpec::small("roll-gym", 8, 3, 11), true),
        (GymSpec::small("roll-two", 3, 2, 12), false),
    ] {
        let athletes = synth::athletes(&spec);
        let ids: Vec<String> = athletes.iter().map(|a| a.athlete_id.clone()).collect();
        reps.extend(synth::reps_by_week(&spec, &athletes, &ids).flatten());
        if keep_ids {
            first_ids = ids;
        }
    }
    (reps, first_ids)
}

struct Reference {
    daily: Vec<AthleteDay>,
    weekly: Vec<GymWeek>,
    exercise: Vec<ExerciseWeek>,
}

/// The rollups computed in Rust from the reps a scope can see (real ids).
fn reference(reps: &[RepRecord], scope: &Scope) -> Reference {
    let visible = |r: &RepRecord| {
        scope
            .gyms
            .as_ref()
            .is_none_or(|g| g.iter().any(|g| g.as_str() == r.gym_id))
            && scope
                .athletes
                .as_ref()
                .is_none_or(|a| a.iter().any(|a| a.as_str() == r.athlete_id))
    };
    let mut daily: BTreeMap<(i64, String, String), RepTotals> = BTreeMap::new();
    let mut exercise: BTreeMap<(i64, String, i32), (BTreeSet<String>, RepTotals)> = BTreeMap::new();
    for r in reps.iter().filter(|r| visible(r)) {
        let t = RepTotals::of_rep(r);
        let d = daily
            .entry((
                day_start(r.start_us),
                r.gym_id.clone(),
                r.athlete_id.clone(),
            ))
            .or_default();
        *d = d.merge(&t);
        let e = exercise
            .entry((week_start(r.start_us), r.gym_id.clone(), r.exercise))
            .or_default();
        e.0.insert(r.athlete_id.clone());
        e.1 = e.1.merge(&t);
    }
    let mut weekly: BTreeMap<(i64, String), (BTreeSet<String>, i64, RepTotals)> = BTreeMap::new();
    for ((day, g, a), t) in &daily {
        let w = weekly.entry((week_start(*day), g.clone())).or_default();
        w.0.insert(a.clone());
        w.1 += 1;
        w.2 = w.2.merge(t);
    }
    Reference {
        daily: daily
            .into_iter()
            .map(|((day_us, gym_id, athlete_id), totals)| AthleteDay {
                day_us,
                gym_id,
                athlete_id: scope.present(SECRET, &athlete_id),
                totals,
            })
            .collect(),
        weekly: weekly
            .into_iter()
            .map(|((week_us, gym_id), (a, days, totals))| GymWeek {
                week_us,
                gym_id,
                athletes: a.len() as i64,
                athlete_days: days,
                totals,
            })
            .collect(),
        exercise: exercise
            .into_iter()
            .map(|((week_us, gym_id, exercise), (a, totals))| ExerciseWeek {
                week_us,
                gym_id,
                exercise,
                athletes: a.len() as i64,
                totals,
            })
            .collect(),
    }
}

fn scopes(ids: &[String]) -> Vec<(&'static str, Scope)> {
    let athletes =
        |ids: &[String]| Some(ids.iter().map(|a| AthleteId::parse(a).unwrap()).collect());
    vec![
        ("everything", Scope::all()),
        ("one gym", Scope::gym(gym("roll-gym"))),
        (
            "all athletes of the gym, listed",
            Scope {
                gyms: Some(vec![gym("roll-gym")]),
                athletes: athletes(ids),
                identity: true,
            },
        ),
        (
            "three athletes, pseudonymous",
            Scope {
                gyms: Some(vec![gym("roll-gym")]),
                athletes: athletes(&ids[..3]),
                identity: false,
            },
        ),
        (
            "athletes of another gym",
            Scope {
                gyms: Some(vec![gym("roll-two")]),
                athletes: athletes(&ids[..2]),
                identity: true,
            },
        ),
        ("nothing", Scope::none()),
    ]
}

/// Score buckets (migration v7) are the buckets of the reps each store holds, on every
/// backend alike, for every scope — whole range and a range with partial weeks.
async fn check_buckets(stores: &[(&str, &Store)], ids: &[String], step: &str) {
    let ranges = [
        (0, MAX_TIME_US + 1),
        (
            synth::YEAR_START_US + 2 * DAY_US + 7,
            synth::YEAR_START_US + 3 * WEEK_US + 3 * DAY_US,
        ),
    ];
    for (label, scope) in scopes(ids) {
        for (from, to) in ranges {
            let mut first: Option<ScoreBuckets> = None;
            for (backend, store) in stores {
                let ctx = format!("{step}, {backend}, {label}, [{from}, {to})");
                let got = store.score_buckets(&scope, SECRET, from, to).await.unwrap();
                let facts = store.rep_facts(&scope, SECRET, from, to).await.unwrap();
                assert_eq!(got, ScoreBuckets::from_facts(&facts), "{ctx}");
                assert_eq!(got.total_reps(), facts.len() as u64, "{ctx}");
                match &first {
                    None => first = Some(got),
                    Some(f) => assert_eq!(&got, f, "{ctx}: differs between backends"),
                }
            }
        }
    }
}

async fn check(stores: &[(&str, &Store)], reps: &[RepRecord], ids: &[String], step: &str) {
    check_buckets(stores, ids, step).await;
    let all = 0..i64::MAX;
    for (label, scope) in scopes(ids) {
        let want = reference(reps, &scope);
        for (backend, store) in stores {
            let ctx = format!("{step}, {backend}, {label}");
            let daily = store
                .athlete_daily(&scope, SECRET, all.clone())
                .await
                .unwrap();
            assert_eq!(daily.len(), want.daily.len(), "{ctx}: athlete days");
            // Rows sort by real id; compare as sets keyed by what is shown.
            let key = |d: &AthleteDay| (d.day_us, d.gym_id.clone(), d.athlete_id.clone());
            let mut got = daily.clone();
            got.sort_by_key(key);
            let mut exp = want.daily.clone();
            exp.sort_by_key(key);
            assert_eq!(got, exp, "{ctx}: athlete_daily");
            assert_eq!(
                store.gym_weekly(&scope, all.clone()).await.unwrap(),
                want.weekly,
                "{ctx}: gym_weekly"
            );
            assert_eq!(
                store.exercise_weekly(&scope, all.clone()).await.unwrap(),
                want.exercise,
                "{ctx}: exercise_weekly"
            );
        }
    }
    // A window: weeks starting in [week 1, week 2) and the days in it.
    let w1 = synth::YEAR_START_US + WEEK_US;
    let scope = Scope::gym(gym("roll-gym"));
    let want = reference(reps, &scope);
    for (backend, store) in stores {
        let weeks = store.gym_weekly(&scope, w1..w1 + WEEK_US).await.unwrap();
        assert_eq!(
            weeks,
            want.weekly
                .iter()
                .filter(|w| w.week_us == w1)
                .cloned()
                .collect::<Vec<_>>(),
            "{step}, {backend}: one week"
        );
        let days = store
            .athlete_daily(&scope, SECRET, w1 + DAY_US..w1 + 3 * DAY_US)
            .await
            .unwrap();
        assert!(!days.is_empty());
        assert!(
            days.iter()
                .all(|d| (w1 + DAY_US..w1 + 3 * DAY_US).contains(&d.day_us))
        );
        assert!(
            store.gym_weekly(&scope, w1..w1 - 1).await.is_err(),
            "reversed range"
        );
    }
}

#[tokio::test]
async fn rollups_are_identical_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let sqlite = Store::connect(&sqlite_url, StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    let db = PgTestDb::create().await.unwrap();
    let pg = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    let server = PgliteServer::start().await.unwrap();
    let ts = Store::connect(&server.url(), StoreOptions { max_connections: 1 })
        .await
        .unwrap();
    assert_eq!(sqlite.migrate().await.unwrap(), Backend::Sqlite);
    assert_eq!(pg.migrate().await.unwrap(), Backend::Postgres);
    assert_eq!(ts.migrate().await.unwrap(), Backend::Timescale);
    let stores = [("sqlite", &sqlite), ("postgres", &pg), ("timescale", &ts)];

    let (mut reps, ids) = dataset();
    assert!(reps.len() > 3_000, "{} reps", reps.len());
    for (_, store) in &stores {
        for b in reps.chunks(700) {
            store.upsert_reps(b).await.unwrap();
        }
        let done = store.refresh_rollups().await.unwrap();
        if store.backend() != Backend::Timescale {
            assert!(done.athlete_days > 0 && done.gym_weeks > 0, "{done:?}");
        }
        // A second refresh has nothing to do.
        assert_eq!(
            store.refresh_rollups().await.unwrap(),
            liftguard_store::RollupRefresh::default()
        );
    }
    check(&stores, &reps, &ids, "initial").await;

    // The continuous aggregates were materialized (not only answered in real time).
    let materialized: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.continuous_aggregates \
         WHERE view_name LIKE 'rollup_%' AND NOT materialized_only",
    )
    .fetch_one(ts.pg_pool().unwrap())
    .await
    .unwrap();
    assert_eq!(materialized, 5, "five real-time continuous aggregates");
    let hyper: String = sqlx::query_scalar(
        "SELECT materialization_hypertable_name::text FROM timescaledb_information.continuous_aggregates \
         WHERE view_name = 'rollup_athlete_daily'",
    )
    .fetch_one(ts.pg_pool().unwrap())
    .await
    .unwrap();
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM _timescaledb_internal.{hyper}"
    )))
    .fetch_one(ts.pg_pool().unwrap())
    .await
    .unwrap();
    assert!(rows > 0, "rollup_athlete_daily has materialized rows");

    // Corrections (values, event flag, exercise and gym of existing reps), a replay and a
    // late rep on an old day.
    let mut changed = Vec::new();
    for (i, r) in reps.iter_mut().enumerate().filter(|(i, _)| i % 97 == 0) {
        r.fatigue_score = (r.fatigue_score + 7.25).min(100.0);
        r.extensor_event = !r.extensor_event;
        r.evidence = None;
        if i % 2 == 0 {
            r.exercise = 4;
        }
        r.damage *= 3.0;
        changed.push(r.clone());
    }
    let mut moved = reps[5].clone();
    moved.gym_id = "roll-two".into();
    reps[5] = moved.clone();
    changed.push(moved);
    let mut late = reps[10].clone();
    late.start_us -= 3_600_000_000;
    late.end_us -= 3_600_000_000;
    late.bottom_us -= 3_600_000_000;
    late.concentric_start_us -= 3_600_000_000;
    late.load_kg = 0.7;
    changed.push(late.clone());
    reps.push(late);
    for (_, store) in &stores {
        assert_eq!(
            store.upsert_reps(&changed).await.unwrap(),
            changed.len() as u64
        );
        assert_eq!(store.upsert_reps(&changed).await.unwrap(), 0, "replay");
    }
    // Before the fallbacks' refresh their score buckets are already current (the pending
    // weeks are read from the reps); TimescaleDB's show late data after its refresh.
    check_buckets(&stores[..2], &ids, "corrections, not refreshed").await;
    for (_, store) in &stores {
        store.refresh_rollups().await.unwrap();
    }
    check(&stores, &reps, &ids, "after corrections").await;

    pg.close().await;
    db.drop().await.unwrap();
}

/// On TimescaleDB, today's figures are real-time: reps written after the last refresh are
/// in the rollups at once. The fallbacks show them after their next refresh.
#[tokio::test]
async fn timescale_rollups_are_real_time() {
    let server = PgliteServer::start().await.unwrap();
    let ts = Store::connect(&server.url(), StoreOptions { max_connections: 1 })
        .await
        .unwrap();
    ts.migrate().await.unwrap();
    let db = PgTestDb::create().await.unwrap();
    let pg = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    pg.migrate().await.unwrap();
    let spec = GymSpec::small("rt-gym", 3, 2, 5);
    let athletes = synth::athletes(&spec);
    let ids: Vec<String> = athletes.iter().map(|a| a.athlete_id.clone()).collect();
    let week0 = synth::week_of_reps(&spec, &athletes, &ids, 0);
    let week1 = synth::week_of_reps(&spec, &athletes, &ids, 1);
    let scope = Scope::gym(gym("rt-gym"));
    for store in [&ts, &pg] {
        store.upsert_reps(&week0).await.unwrap();
        store.refresh_rollups().await.unwrap();
        store.upsert_reps(&week1).await.unwrap();
    }
    let weeks = |reps: usize| reps as i64;
    let ts_weeks = ts.gym_weekly(&scope, 0..i64::MAX).await.unwrap();
    assert_eq!(
        ts_weeks.len(),
        2,
        "the new week is visible before any refresh"
    );
    assert_eq!(ts_weeks[1].totals.reps, weeks(week1.len()));
    let pg_weeks = pg.gym_weekly(&scope, 0..i64::MAX).await.unwrap();
    assert_eq!(pg_weeks.len(), 1, "the fallback lags until its refresh");
    pg.refresh_rollups().await.unwrap();
    assert_eq!(pg.gym_weekly(&scope, 0..i64::MAX).await.unwrap(), ts_weeks);
    pg.close().await;
    db.drop().await.unwrap();
}
