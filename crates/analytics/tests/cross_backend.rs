//! The same generated population stored in SQLite, plain PostgreSQL and TimescaleDB
//! (pglite) gives identical analytics: rep facts equal to the in-memory rows, and
//! bit-identical trend, trending, load and history tables (floats included: rows come in
//! the same canonical order from every backend, and polars aggregates them the same way),
//! for the operator, a gym, and a pseudonymous scope.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use liftguard_analytics::history::{HistoryInput, athlete_history};
use liftguard_analytics::population::{
    Dimension, LoadOptions, PopulationInput, TrendOptions, TrendingOptions, TrendsInput,
    load_monitoring, population_trends, trending_athletes,
};
use liftguard_analytics::testing::{Population, PopulationSpec, generate, trace_chunk};
use liftguard_model::{AthleteId, GymId};
use liftguard_proto::v1::RepRecord;
use liftguard_store::testing::{PgTestDb, PgliteServer};
use liftguard_store::{
    Backend, MAX_TIME_US, RepFacts, Scope, ScopedRepQuery, ScoreBuckets, Store, StoreOptions,
};
use polars::prelude::DataFrame;

const SECRET: &[u8] = b"cross-backend-secret";

async fn load(store: &Store, pop: &Population) {
    liftguard_store::testing::seed_population(store, &pop.gyms, &pop.athletes, &pop.reps)
        .await
        .unwrap();
    let a = &pop.athletes[0];
    let first = pop
        .reps
        .iter()
        .find(|r| r.athlete_id == a.athlete_id)
        .unwrap()
        .start_us;
    store
        .upsert_kinematics(&[trace_chunk(&a.gym_id, &a.athlete_id, first, 500)])
        .await
        .unwrap();
}

/// Every analytics output for one scope, as frames.
#[derive(Debug)]
struct Outputs {
    facts_len: usize,
    presented_ids: Vec<String>,
    tables: Vec<(String, DataFrame)>,
    history_reps: Vec<RepRecord>,
    trace: Vec<(i64, f32)>,
    /// Every rep in scope through `for_each_rep_batch` (the exports' path).
    streamed: Vec<RepRecord>,
}

async fn outputs(store: &Store, scope: &Scope, pop: &Population) -> Outputs {
    let facts = store
        .rep_facts(scope, SECRET, 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    let athletes = store.scoped_athletes(scope, SECRET).await.unwrap();
    let risk = store
        .risk_facts(scope, SECRET, 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    let input = PopulationInput {
        reps: &facts,
        athletes: &athletes,
        risk: risk.as_ref(),
    };
    // Trends read score buckets: current before any rollup refresh (raw reps, pending
    // marks, real-time aggregates) and after one (the rollup), and always the buckets of
    // exactly the reps in range, also for a range with partial weeks at both ends.
    let live = store
        .score_buckets(scope, SECRET, 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    assert_eq!(
        live,
        ScoreBuckets::from_facts(&facts),
        "buckets before refresh"
    );
    store.refresh_rollups().await.unwrap();
    let buckets = store
        .score_buckets(scope, SECRET, 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    assert_eq!(buckets, live, "buckets after refresh");
    if let (Some(first), Some(last)) = (facts.start_us.iter().min(), facts.last_start_us()) {
        let (from, to) = (first + 3 * 86_400_000_000 + 5, last - 4 * 86_400_000_000);
        let part = store.score_buckets(scope, SECRET, from, to).await.unwrap();
        let part_facts = store.rep_facts(scope, SECRET, from, to).await.unwrap();
        assert!(!part.is_empty());
        assert_eq!(part, ScoreBuckets::from_facts(&part_facts), "partial weeks");
    }
    let trends_input = TrendsInput {
        buckets: &buckets,
        athletes: &athletes,
        risk: risk.as_ref(),
    };
    let mut tables = Vec::new();
    for (name, dims) in [
        ("weekly", vec![]),
        ("gym_exercise", vec![Dimension::Gym, Dimension::Exercise]),
        (
            "cohort",
            vec![
                Dimension::AgeBand,
                Dimension::Sex,
                Dimension::TrainingAgeBand,
                Dimension::Sport,
            ],
        ),
    ] {
        let t = population_trends(
            &trends_input,
            &TrendOptions {
                group_by: dims,
                ..TrendOptions::default()
            },
        )
        .unwrap();
        tables.push((name.to_owned(), t.table));
    }
    let trending = trending_athletes(
        &input,
        &TrendingOptions {
            include_all: true,
            ..TrendingOptions::default()
        },
    )
    .unwrap();
    tables.push(("trending".into(), trending.table));
    let load = load_monitoring(&input, &LoadOptions::default()).unwrap();
    tables.push(("load".into(), load.table));

    // One athlete's history: resolved by the name the scope shows, reps paged.
    let real = &pop.athletes[0];
    let shown = scope.present(SECRET, &real.athlete_id);
    let resolved = store
        .resolve_athlete(scope, SECRET, &shown)
        .await
        .unwrap()
        .expect("visible athlete");
    assert_eq!(resolved.athlete_id, real.athlete_id);
    let id = AthleteId::parse(resolved.athlete_id.clone()).unwrap();
    let mut reps = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scoped_reps(
                scope,
                SECRET,
                &ScopedRepQuery {
                    athlete: Some(id.clone()),
                    from_us: 0,
                    to_us: MAX_TIME_US + 1,
                    limit: 97,
                    after,
                },
            )
            .await
            .unwrap();
        reps.extend(page.reps);
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let shown_athlete = athletes
        .iter()
        .find(|a| a.athlete_id == shown)
        .unwrap()
        .clone();
    let h = athlete_history(&HistoryInput {
        athlete: &shown_athlete,
        reps: &reps,
        risk: risk.as_ref(),
    })
    .unwrap();
    tables.push(("sessions".into(), h.sessions));
    tables.push(("sets".into(), h.sets));
    tables.push(("weeks".into(), h.weeks));
    let trace = store
        .lumbar_trace(scope, &id, 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    let mut streamed = Vec::new();
    let n = store
        .for_each_rep_batch(scope, SECRET, 0, MAX_TIME_US + 1, 333, |batch| {
            assert!(batch.len() <= 333);
            streamed.extend(batch);
            async { true }
        })
        .await
        .unwrap();
    assert_eq!(n as usize, streamed.len());
    assert_eq!(streamed.len(), facts.len());
    assert!(streamed.windows(2).all(|w| {
        // Natural-key order of the real ids (presented ids keep that order only with
        // identity).
        !scope.identity
            || (w[0].athlete_id.as_str(), w[0].start_us) < (w[1].athlete_id.as_str(), w[1].start_us)
    }));
    Outputs {
        streamed,
        facts_len: facts.len(),
        presented_ids: facts.athletes.clone(),
        tables,
        history_reps: reps,
        trace,
    }
}

fn assert_same(a: &Outputs, b: &Outputs, what: &str) {
    assert_eq!(a.facts_len, b.facts_len, "{what}: facts");
    assert_eq!(a.presented_ids, b.presented_ids, "{what}: ids");
    assert_eq!(a.history_reps, b.history_reps, "{what}: history reps");
    assert_eq!(a.trace, b.trace, "{what}: trace");
    assert_eq!(a.streamed, b.streamed, "{what}: streamed reps");
    for ((name, x), (_, y)) in a.tables.iter().zip(&b.tables) {
        if !x.equals_missing(y) {
            let cols: Vec<String> = x
                .columns()
                .iter()
                .zip(y.columns())
                .filter(|(a, b)| {
                    !a.as_materialized_series()
                        .equals_missing(b.as_materialized_series())
                })
                .map(|(a, b)| {
                    format!(
                        "{}: {:?} vs {:?}",
                        a.name(),
                        a.as_materialized_series(),
                        b.as_materialized_series()
                    )
                })
                .collect();
            panic!("{what}: table {name} differs in {cols:#?}");
        }
    }
}

// polars blocks in place: not on a current-thread runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_analytics_on_sqlite_postgres_and_timescale() {
    let pop = generate(&PopulationSpec {
        athletes_per_gym: 8,
        weeks: 7,
        ..PopulationSpec::default()
    });

    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
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
    for s in [&sqlite, &pg, &ts] {
        load(s, &pop).await;
    }

    // The store hands out exactly the generated rows, in the canonical order.
    let baseline = RepFacts::from_reps(&pop.reps);
    for (s, name) in [(&sqlite, "sqlite"), (&pg, "postgres"), (&ts, "timescale")] {
        let f = s
            .rep_facts(&Scope::all(), SECRET, 0, MAX_TIME_US + 1)
            .await
            .unwrap();
        assert_eq!(
            f, baseline,
            "{name}: rep facts differ from the generated rows"
        );
    }

    let gym0 = GymId::parse(pop.gyms[0].clone()).unwrap();
    let scopes = [
        ("operator", Scope::all()),
        ("gym", Scope::gym(gym0.clone())),
        (
            "pseudonymous",
            Scope {
                gyms: Some(vec![gym0]),
                athletes: None,
                identity: false,
            },
        ),
    ];
    for (what, scope) in &scopes {
        let lite = outputs(&sqlite, scope, &pop).await;
        let p = outputs(&pg, scope, &pop).await;
        let t = outputs(&ts, scope, &pop).await;
        assert!(lite.facts_len > 1_000, "{what}: {}", lite.facts_len);
        assert!(!lite.trace.is_empty() && !lite.history_reps.is_empty());
        assert_same(&lite, &p, &format!("{what}: postgres vs sqlite"));
        assert_same(&lite, &t, &format!("{what}: timescale vs sqlite"));
        if !scope.identity {
            let dump = format!("{:?} {:?}", lite.tables, lite.history_reps);
            for a in &pop.athletes {
                assert!(!dump.contains(&a.athlete_id), "{what}: real id leaked");
                assert!(!dump.contains(&a.display_name), "{what}: name leaked");
            }
            assert!(lite.presented_ids.iter().all(|i| i.starts_with("p-")));
        }
    }
    // A gym scope sees only its gym; a scope naming nothing sees nothing.
    let g = outputs(&sqlite, &scopes[1].1, &pop).await;
    let expected = pop.reps.iter().filter(|r| r.gym_id == pop.gyms[0]).count();
    assert_eq!(g.facts_len, expected);
    let none = sqlite
        .rep_facts(&Scope::none(), SECRET, 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    assert!(none.is_empty());
    let other = Scope::gym(GymId::parse(pop.gyms[1].clone()).unwrap());
    let hidden = sqlite
        .resolve_athlete(&other, SECRET, &pop.athletes[0].athlete_id)
        .await
        .unwrap();
    assert_eq!(
        hidden.is_some(),
        pop.athletes[0].gym_id == pop.gyms[1],
        "another gym's athlete is not resolvable"
    );

    pg.close().await;
    db.drop().await.unwrap();
    ts.close().await;
    server.stop().await.unwrap();
}
