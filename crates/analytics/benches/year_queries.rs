//! Clinician analytics over a year of a 500-athlete gym (the store's synthetic
//! `GymSpec::year_of_500`, ≈ 3.5 M reps): every query end to end — the store read within a
//! scope, then polars — on plain PostgreSQL and SQLite (TimescaleDB with
//! `LIFTGUARD_BENCH_BACKENDS=...,timescale`: the pglite WASM server, slow to load).
//!
//! ```sh
//! cargo bench -p liftguard-analytics --bench year_queries
//! ```
//! Env: `LIFTGUARD_BENCH_BACKENDS` (default `postgres,sqlite`), `LIFTGUARD_BENCH_WEEKS`
//! (default 52), `LIFTGUARD_BENCH_ATHLETES` (default 500), `LIFTGUARD_BENCH_ROUNDS`
//! (default 3; the best round is reported), `LIFTGUARD_TEST_PG_URL`. Fresh databases are
//! created and dropped. Prints figures (read = store, compute = polars); asserts nothing
//! about time.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use liftguard_analytics::history::{HistoryInput, athlete_history};
use liftguard_analytics::population::{
    Dimension, LoadOptions, PopulationInput, TrendOptions, TrendingOptions, TrendsInput,
    load_monitoring, load_window, population_trends, trending_athletes, trending_window,
};
use liftguard_analytics::{ExportFormat, RepStreamWriter};
use liftguard_model::{AthleteId, GymId};
use liftguard_proto::v1::Athlete;
use liftguard_store::testing::synth::{self, GymSpec};
use liftguard_store::testing::{PgTestDb, PgliteServer};
use liftguard_store::{
    MAX_PAGE_LIMIT, MAX_TIME_US, RepFacts, Scope, ScopedRepQuery, ScoreBuckets, Store, StoreOptions,
};

const SECRET: &[u8] = b"bench-secret";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn load(store: &Store, spec: &GymSpec) -> anyhow::Result<(u64, Duration, String)> {
    store.create_gym(&spec.gym_id, "Synthetic gym").await?;
    let athletes = synth::athletes(spec);
    let ids: Vec<String> = athletes.iter().map(|a| a.athlete_id.clone()).collect();
    for (a, id) in athletes.iter().zip(&ids) {
        liftguard_store::testing::insert_athlete_with_id(
            store,
            &Athlete {
                athlete_id: id.to_owned(),
                ..a.profile.clone()
            },
        )
        .await?;
    }
    let started = Instant::now();
    let mut n = 0u64;
    for week in synth::reps_by_week(spec, &athletes, &ids) {
        for chunk in week.chunks(5_000) {
            store.upsert_reps(chunk).await?;
        }
        n += week.len() as u64;
    }
    Ok((n, started.elapsed(), ids[0].clone()))
}

#[derive(Default, Clone, Copy)]
struct Timing {
    read: Duration,
    compute: Duration,
}

impl Timing {
    fn total(&self) -> Duration {
        self.read + self.compute
    }
}

/// Runs `f` `rounds` times and keeps the round with the best total.
async fn best<F, Fut>(rounds: usize, mut f: F) -> anyhow::Result<(Timing, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Timing, usize)>>,
{
    let mut out: Option<(Timing, usize)> = None;
    for _ in 0..rounds {
        let r = f().await?;
        if out.is_none_or(|o| r.0.total() < o.0.total()) {
            out = Some(r);
        }
    }
    out.context("no rounds")
}

async fn population(
    store: &Store,
    scope: &Scope,
    what: Option<&str>,
) -> anyhow::Result<(Timing, usize)> {
    let t0 = Instant::now();
    // Windowed queries read only their window (as the api and the CLI do).
    let (from, to) = match what {
        Some("trending") | Some("load") => {
            let newest = store
                .newest_rep_start(scope, 0, MAX_TIME_US + 1)
                .await?
                .unwrap_or(0);
            if what == Some("trending") {
                trending_window(newest, TrendingOptions::default().weeks)
            } else {
                load_window(newest)
            }
        }
        _ => (0, MAX_TIME_US + 1),
    };
    // Trends read score buckets (as the api and the CLI do); the rest read rep facts.
    let trends = matches!(what, Some("weekly" | "gym_exercise" | "cohort" | "buckets"));
    let (facts, buckets) = if trends {
        (
            RepFacts::default(),
            store.score_buckets(scope, SECRET, from, to).await?,
        )
    } else {
        (
            store.rep_facts(scope, SECRET, from, to).await?,
            ScoreBuckets::default(),
        )
    };
    let athletes = store.scoped_athletes(scope, SECRET).await?;
    let risk = store.risk_facts(scope, SECRET, from, to).await?;
    let read = t0.elapsed();
    let what = what.map(str::to_owned);
    let (compute, rows) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let input = PopulationInput {
            reps: &facts,
            athletes: &athletes,
            risk: risk.as_ref(),
        };
        let tinput = TrendsInput {
            buckets: &buckets,
            athletes: &athletes,
            risk: risk.as_ref(),
        };
        let t1 = Instant::now();
        let rows = match what.as_deref() {
            None => facts.len(),
            Some("buckets") => buckets.len(),
            Some("weekly") => population_trends(&tinput, &TrendOptions::default())?
                .table
                .height(),
            Some("gym_exercise") => population_trends(
                &tinput,
                &TrendOptions {
                    group_by: vec![Dimension::Gym, Dimension::Exercise],
                    ..TrendOptions::default()
                },
            )?
            .table
            .height(),
            Some("cohort") => population_trends(
                &tinput,
                &TrendOptions {
                    group_by: vec![
                        Dimension::AgeBand,
                        Dimension::Sex,
                        Dimension::TrainingAgeBand,
                        Dimension::Sport,
                    ],
                    ..TrendOptions::default()
                },
            )?
            .table
            .height(),
            Some("trending") => trending_athletes(&input, &TrendingOptions::default())?
                .table
                .height(),
            Some("load") => load_monitoring(&input, &LoadOptions::default())?
                .table
                .height(),
            Some(other) => anyhow::bail!("unknown query {other}"),
        };
        Ok((t1.elapsed(), rows))
    })
    .await??;
    Ok((Timing { read, compute }, rows))
}

async fn history(store: &Store, scope: &Scope, athlete: &str) -> anyhow::Result<(Timing, usize)> {
    let t0 = Instant::now();
    let id = AthleteId::parse(athlete.to_owned())?;
    let shown = store
        .resolve_athlete(scope, SECRET, athlete)
        .await?
        .context("athlete in scope")?;
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
                    limit: MAX_PAGE_LIMIT,
                    after,
                },
            )
            .await?;
        reps.extend(page.reps);
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let risk = store.risk_facts(scope, SECRET, 0, MAX_TIME_US + 1).await?;
    let read = t0.elapsed();
    let (compute, rows) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let t1 = Instant::now();
        let h = athlete_history(&HistoryInput {
            athlete: &shown,
            reps: &reps,
            risk: risk.as_ref(),
        })?;
        Ok((
            t1.elapsed(),
            h.weeks.height() + h.sessions.height() + reps.len(),
        ))
    })
    .await??;
    Ok((Timing { read, compute }, rows))
}

/// Streams every rep in scope as CSV (bytes dropped): read = waiting for the store,
/// compute = writing.
async fn export(store: &Store, scope: &Scope) -> anyhow::Result<(Timing, usize)> {
    let mut writer = RepStreamWriter::new(std::io::sink(), ExportFormat::Csv)?;
    let mut compute = Duration::ZERO;
    let started = Instant::now();
    let mut failed = None;
    store
        .for_each_rep_batch(scope, SECRET, 0, MAX_TIME_US + 1, 10_000, |batch| {
            let t = Instant::now();
            let ok = match tokio::task::block_in_place(|| writer.write(&batch)) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            };
            compute += t.elapsed();
            async move { ok }
        })
        .await?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let rows = writer.finish()?;
    let total = started.elapsed();
    Ok((
        Timing {
            read: total.saturating_sub(compute),
            compute,
        },
        rows as usize,
    ))
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

async fn bench(name: &str, store: &Store, spec: &GymSpec, rounds: usize) -> anyhow::Result<()> {
    store.migrate().await?;
    let (n, took, athlete) = load(store, spec).await?;
    println!(
        "\n{name}: loaded {n} reps of {} athletes over {} weeks in {:.1} s ({:.0} reps/s)",
        spec.athletes,
        spec.weeks,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    // What the sink's maintenance task does periodically.
    let t = Instant::now();
    let refreshed = store.refresh_rollups().await?;
    println!(
        "rollups refreshed in {:.1} s ({} athlete-days)",
        t.elapsed().as_secs_f64(),
        refreshed.athlete_days
    );
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>8}",
        "query", "read ms", "polars ms", "total ms", "rows"
    );
    let gym = Scope::gym(GymId::parse(spec.gym_id.clone())?);
    let pseudo = Scope {
        identity: false,
        ..gym.clone()
    };
    for (label, what, scope) in [
        ("rep facts (read only)", None, &gym),
        ("score buckets (read only)", Some("buckets"), &gym),
        ("trends by week", Some("weekly"), &gym),
        ("trends by gym x exercise", Some("gym_exercise"), &gym),
        ("trends by age x sex x tage x sport", Some("cohort"), &gym),
        ("trends by week, pseudonymous", Some("weekly"), &pseudo),
        ("trending athletes (6 weeks)", Some("trending"), &gym),
        ("load monitoring (acute:chronic)", Some("load"), &gym),
    ] {
        let (t, rows) = best(rounds, || population(store, scope, what)).await?;
        println!(
            "{label:<34} {:>8} {:>9} {:>9} {rows:>8}",
            ms(t.read),
            ms(t.compute),
            ms(t.total())
        );
    }
    // The live state between two refreshes: the newest two days corrected (reps upserted
    // again with another load) and not yet re-rolled, so their week is read from the reps
    // on the fallbacks (TimescaleDB's real-time aggregate covers it anyway).
    let newest = store
        .newest_rep_start(&gym, 0, MAX_TIME_US + 1)
        .await?
        .unwrap_or(0);
    let mut recent = Vec::new();
    store
        .for_each_rep_batch(
            &gym,
            SECRET,
            newest - 2 * 86_400_000_000,
            MAX_TIME_US + 1,
            5_000,
            |batch| {
                recent.extend(batch);
                async { true }
            },
        )
        .await?;
    for r in &mut recent {
        r.load_kg += 0.5;
    }
    for chunk in recent.chunks(5_000) {
        store.upsert_reps(chunk).await?;
    }
    let label = format!("trends by week, {} reps pending", recent.len());
    let (t, rows) = best(rounds, || population(store, &gym, Some("weekly"))).await?;
    println!(
        "{label:<34} {:>8} {:>9} {:>9} {rows:>8}",
        ms(t.read),
        ms(t.compute),
        ms(t.total())
    );
    store.refresh_rollups().await?;
    let (t, rows) = best(rounds, || history(store, &gym, &athlete)).await?;
    println!(
        "{:<34} {:>8} {:>9} {:>9} {rows:>8}",
        "athlete history (a year)",
        ms(t.read),
        ms(t.compute),
        ms(t.total())
    );
    let (t, rows) = best(1, || export(store, &gym)).await?;
    println!(
        "{:<34} {:>8} {:>9} {:>9} {rows:>8}  ({:.0} reps/s)",
        "export all reps (CSV)",
        ms(t.read),
        ms(t.compute),
        ms(t.total()),
        rows as f64 / t.total().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let spec = GymSpec {
        weeks: env("LIFTGUARD_BENCH_WEEKS", 52),
        athletes: env("LIFTGUARD_BENCH_ATHLETES", 500),
        ..GymSpec::year_of_500()
    };
    let rounds: usize = env("LIFTGUARD_BENCH_ROUNDS", 3);
    let backends: String = env("LIFTGUARD_BENCH_BACKENDS", "postgres,sqlite".to_owned());
    for b in backends.split(',').map(str::trim) {
        match b {
            "postgres" => {
                let db = PgTestDb::create().await?;
                let store = Store::connect(db.url(), StoreOptions { max_connections: 4 }).await?;
                let r = bench("PostgreSQL (partitioned)", &store, &spec, rounds).await;
                store.close().await;
                db.drop().await?;
                r?;
            }
            "sqlite" => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
                let store = Store::connect(&url, StoreOptions { max_connections: 4 }).await?;
                let r = bench("SQLite", &store, &spec, rounds).await;
                store.close().await;
                r?;
            }
            "timescale" => {
                let server = PgliteServer::start().await?;
                let store =
                    Store::connect(&server.url(), StoreOptions { max_connections: 1 }).await?;
                let r = bench("TimescaleDB (pglite, WASM)", &store, &spec, rounds).await;
                store.close().await;
                server.stop().await?;
                r?;
            }
            other => anyhow::bail!("unknown backend {other:?}"),
        }
    }
    Ok(())
}
