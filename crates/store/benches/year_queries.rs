//! Queries over a year of a 500-athlete gym, on real PostgreSQL: the rollup queries and
//! loading rep rows for the polars trends, per kind of caller.
//!
//! ```sh
//! cargo bench -p liftguard-store --bench year_queries
//! ```
//! The dataset (`GymSpec::year_of_500`: ~3 sessions a week, sets of 5–10 reps, ≈ 3.5 M reps)
//! is generated deterministically and loaded once through the store's upsert path into the
//! database `lg_bench_year500_v1` (`liftguard_store::testing::bulk::year_of_500`), then
//! reused; `LIFTGUARD_BENCH_FRESH=1` reloads it. `LIFTGUARD_BENCH_RUNS` (default 5) runs
//! per query; the table shows min / median / max. Prints figures; asserts nothing about time.
//!
//! Other crates' benchmarks (analytics) get the same data with
//! `liftguard_store::testing::bulk::year_of_500(false, n)`.

use std::future::Future;
use std::time::{Duration, Instant};

use liftguard_model::{AthleteId, GymId};
use liftguard_store::testing::bulk;
use liftguard_store::testing::synth::YEAR_START_US;
use liftguard_store::{RepQuery, RepTarget, Scope, Store};

const WEEK_US: i64 = 7 * 86_400_000_000;
const SECRET: &[u8] = b"bench-secret";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `f` `runs` times; prints rows and min / median / max.
async fn time<F, Fut>(label: &str, scope: &str, runs: usize, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let t = Instant::now();
        rows = f().await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{label:<34} {scope:<24} {rows:>9} {:>9.1} {:>9.1} {:>9.1}",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let fresh = std::env::var("LIFTGUARD_BENCH_FRESH").is_ok_and(|v| v == "1");
    let runs = env_usize("LIFTGUARD_BENCH_RUNS", 5).max(1);
    let started = Instant::now();
    let (store, gym, load) = bulk::year_of_500(fresh, 4)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = store
        .pg_pool()
        .ok_or_else(|| anyhow::anyhow!("not PostgreSQL"))?
        .clone();
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&pool)
        .await?;
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&pool)
        .await?;
    let days: i64 = sqlx::query_scalar("SELECT count(*) FROM rollup_athlete_daily")
        .fetch_one(&pool)
        .await?;
    println!(
        "year_queries on {} ({})",
        store.backend(),
        version.split(',').next().unwrap_or("")
    );
    println!(
        "dataset: {} athletes, {} reps, {days} athlete-days, {:.2} GB on disk",
        gym.athlete_ids.len(),
        gym.reps,
        size as f64 / 1e9
    );
    match load {
        Some(d) => println!(
            "loaded in {:.1} s through Store::upsert_reps (5000-rep batches) + refresh_rollups + ANALYZE: {:.0} reps/s",
            d.as_secs_f64(),
            gym.reps as f64 / d.as_secs_f64()
        ),
        None => println!(
            "reused the loaded database (set LIFTGUARD_BENCH_FRESH=1 to reload); ready in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    }

    let g = GymId::parse(gym.spec.gym_id.as_str())?;
    let ids: Vec<AthleteId> = gym
        .athlete_ids
        .iter()
        .map(|a| AthleteId::parse(a.as_str()))
        .collect::<Result<_, _>>()?;
    let year = YEAR_START_US..YEAR_START_US + i64::from(gym.spec.weeks) * WEEK_US;
    let scopes: Vec<(&str, Scope)> = vec![
        ("operator (all gyms)", Scope::all()),
        ("gym admin (gym)", Scope::gym(g.clone())),
        (
            "clinician (25 athletes)",
            Scope {
                gyms: Some(vec![g.clone()]),
                athletes: Some(ids.iter().step_by(20).cloned().collect()),
                identity: false,
            },
        ),
        ("athlete (self)", Scope::athlete(g.clone(), ids[7].clone())),
    ];

    println!(
        "\n{:<34} {:<24} {:>9} {:>9} {:>9} {:>9}",
        "query (a year)", "scope", "rows", "min ms", "median ms", "max ms"
    );
    for (label, scope) in &scopes {
        let s: &Store = &store;
        time("athlete_daily", label, runs, || async {
            Ok(s.athlete_daily(scope, SECRET, year.clone()).await?.len())
        })
        .await?;
        time("gym_weekly", label, runs, || async {
            Ok(s.gym_weekly(scope, year.clone()).await?.len())
        })
        .await?;
        time("exercise_weekly", label, runs, || async {
            Ok(s.exercise_weekly(scope, year.clone()).await?.len())
        })
        .await?;
        time("rep_facts (rows for polars)", label, runs, || async {
            Ok(s.rep_facts(scope, SECRET, year.start, year.end)
                .await?
                .len())
        })
        .await?;
    }
    // Full rep records (exports, per-athlete history), for comparison with the narrow facts.
    let month = YEAR_START_US + 20 * WEEK_US..YEAR_START_US + 24 * WEEK_US;
    time(
        "all_reps, 4 weeks of the gym",
        "gym admin (gym)",
        runs.min(3),
        || async {
            let mut n = 0;
            let mut q = RepQuery {
                target: RepTarget::Gym(g.clone()),
                from_us: month.start,
                to_us: month.end,
                events_only: false,
                limit: 10_000,
                after: None,
            };
            loop {
                let page = store.list_reps(&Scope::gym(g.clone()), &q).await?;
                n += page.reps.len();
                match page.next {
                    Some(c) => q.after = Some(c),
                    None => break,
                }
            }
            Ok(n)
        },
    )
    .await?;
    time(
        "list_reps events, one athlete",
        "athlete (self)",
        runs,
        || async {
            let q = RepQuery {
                target: RepTarget::Athlete(ids[7].clone()),
                from_us: year.start,
                to_us: year.end,
                events_only: true,
                limit: 10_000,
                after: None,
            };
            Ok(store
                .list_reps(&Scope::athlete(g.clone(), ids[7].clone()), &q)
                .await?
                .reps
                .len())
        },
    )
    .await?;

    // Incremental refresh after a day's corrections (restored afterwards: the dataset stays
    // as generated).
    let day = YEAR_START_US + 30 * WEEK_US + 2 * 86_400_000_000;
    let q = RepQuery {
        target: RepTarget::Gym(g.clone()),
        from_us: day,
        to_us: day + 86_400_000_000,
        events_only: false,
        limit: 10_000,
        after: None,
    };
    let original = store.list_reps(&Scope::gym(g.clone()), &q).await?.reps;
    let mut changed = original.clone();
    for r in &mut changed {
        r.fatigue_score = (r.fatigue_score + 1.0).min(100.0);
    }
    let t = Instant::now();
    store.upsert_reps(&changed).await?;
    let write = t.elapsed();
    let t = Instant::now();
    let done = store.refresh_rollups().await?;
    let refresh = t.elapsed();
    store.upsert_reps(&original).await?;
    store.refresh_rollups().await?;
    println!(
        "\ncorrections of one day ({} reps): upsert {:.1} ms, refresh_rollups {:.1} ms ({} athlete-days, {} gym-weeks recomputed)",
        original.len(),
        ms(write),
        ms(refresh),
        done.athlete_days,
        done.gym_weeks
    );
    let t = Instant::now();
    store.refresh_rollups().await?;
    println!(
        "refresh_rollups with nothing pending: {:.1} ms",
        ms(t.elapsed())
    );
    store.close().await;
    Ok(())
}
