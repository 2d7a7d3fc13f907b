//! Bulk-write benchmark on real PostgreSQL: the sink's upsert path
//! (`Store::upsert_reps` / `Store::upsert_kinematics` in the sink's batch sizes) against
//! binary `COPY` of the same rows into the same, truncated, tables — the ceiling.
//!
//! Columns: "sink upsert" is `upsert_*` as the sink calls it (reps: multi-row upsert
//! statements; kinematics on plain PostgreSQL: new points go through `COPY` inside a
//! savepoint, existing keys fall back to the upsert statements); "stmts only" the upsert
//! statements alone (the same path as "sink upsert" for reps); "replay" the same batches again (nothing
//! changes); "COPY/batch" one `COPY` per sink batch (same transactions as the sink); "one
//! COPY" a single `COPY` of everything. The ratios compare "sink upsert" with both ceilings.
//!
//! ```sh
//! cargo bench -p liftguard-store --bench bulk_write
//! ```
//! Env: `LIFTGUARD_BENCH_REPS` (default 200000), `LIFTGUARD_BENCH_POINTS` (kinematics
//! points, default 2000000), `LIFTGUARD_BENCH_BATCH` (records per sink batch, default the
//! sink's 1000), `LIFTGUARD_BENCH_ROUNDS` (default 3; the best round of each is reported),
//! `LIFTGUARD_TEST_PG_URL` (server, default postgres://postgres@127.0.0.1:5432/postgres).
//! A fresh database is created and dropped. Prints figures; asserts nothing about time.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use liftguard_proto::v1::{KinematicsChunk, RepRecord};
use liftguard_store::testing::synth::{self, GymSpec};
use liftguard_store::testing::{PgTestDb, bulk};
use liftguard_store::{Store, StoreOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rate(rows: u64, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

/// `n` reps of the synthetic gym, week after week.
fn reps(n: usize) -> Vec<RepRecord> {
    let spec = GymSpec::year_of_500();
    let athletes = synth::athletes(&spec);
    let ids: Vec<String> = athletes.iter().map(|a| a.athlete_id.clone()).collect();
    let mut out = Vec::with_capacity(n);
    for week in synth::reps_by_week(&spec, &athletes, &ids) {
        out.extend(week);
        if out.len() >= n {
            break;
        }
    }
    out.truncate(n);
    out
}

/// About `points` kinematics points in 1-s chunks of 25 points, 50 athletes training
/// at once, in time order (what the processor emits).
fn kinematics(points: usize) -> Vec<KinematicsChunk> {
    let ids: Vec<String> = (0..50)
        .map(|i| format!("a-{:016x}", 0xbeef_0000u64 + i))
        .collect();
    let seconds = points.div_ceil(25 * ids.len()).max(1);
    let mut chunks = synth::kinematics_chunks("synth-gym", &ids, synth::YEAR_START_US, seconds, 7);
    chunks.sort_by_key(|c| (c.first_time_us, c.athlete_id.clone()));
    chunks
}

#[derive(Default)]
struct Best(Option<Duration>);

impl Best {
    fn add(&mut self, d: Duration) {
        self.0 = Some(self.0.map_or(d, |b| b.min(d)));
    }
    fn get(&self) -> Duration {
        self.0.unwrap_or_default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n_reps = env_usize("LIFTGUARD_BENCH_REPS", 200_000);
    let n_points = env_usize("LIFTGUARD_BENCH_POINTS", 2_000_000);
    let batch = env_usize("LIFTGUARD_BENCH_BATCH", 1_000).max(1);
    let rounds = env_usize("LIFTGUARD_BENCH_ROUNDS", 3).max(1);

    let reps = reps(n_reps);
    let chunks = kinematics(n_points);
    let points: u64 = chunks
        .iter()
        .map(|c| c.lumbar_flexion_deg.len() as u64)
        .sum();
    let reps_n = reps.len() as u64;

    let db = PgTestDb::create()
        .await
        .context("creating the bench database")?;
    let store = Store::connect(db.url(), StoreOptions { max_connections: 2 }).await?;
    let backend = store.migrate().await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(store.pg_pool().context("postgres")?)
        .await?;
    println!(
        "bulk_write on {backend} ({})",
        version.split(',').next().unwrap_or("")
    );
    println!(
        "{reps_n} reps in batches of {batch}; {points} kinematics points in {} chunks of 25, {batch} chunks per batch; best of {rounds} rounds",
        chunks.len()
    );

    // Per table: [sink upsert, upsert statements only, replay, COPY per batch, one COPY].
    let mut best = [
        [
            Best::default(),
            Best::default(),
            Best::default(),
            Best::default(),
            Best::default(),
        ],
        [
            Best::default(),
            Best::default(),
            Best::default(),
            Best::default(),
            Best::default(),
        ],
    ];
    for round in 0..rounds {
        for (mode, copy_first) in [(0usize, true), (1, false)] {
            // The sink's path: one upsert call per batch.
            bulk::set_copy_first(&store, copy_first);
            bulk::truncate_records(&store).await?;
            let t = Instant::now();
            let mut n = 0;
            for b in reps.chunks(batch) {
                n += store.upsert_reps(b).await?;
            }
            best[0][mode].add(t.elapsed());
            ensure!(n == reps_n, "upserted {n} reps, expected {reps_n}");
            let t = Instant::now();
            let mut n = 0;
            for b in chunks.chunks(batch) {
                n += store.upsert_kinematics(b).await?;
            }
            best[1][mode].add(t.elapsed());
            ensure!(n == points, "upserted {n} points, expected {points}");
        }
        bulk::set_copy_first(&store, true);

        // Replays (redelivery after a crash): nothing changes.
        let t = Instant::now();
        let mut n = 0;
        for b in reps.chunks(batch) {
            n += store.upsert_reps(b).await?;
        }
        best[0][2].add(t.elapsed());
        ensure!(n == 0, "replay changed {n} reps");
        let t = Instant::now();
        for b in chunks.chunks(batch) {
            n += store.upsert_kinematics(b).await?;
        }
        best[1][2].add(t.elapsed());
        ensure!(n == 0, "replay changed {n} points");

        // The ceiling: COPY of the same batches into the emptied tables...
        bulk::truncate_records(&store).await?;
        let t = Instant::now();
        for b in reps.chunks(batch) {
            bulk::copy_reps(&store, b).await?;
        }
        best[0][3].add(t.elapsed());
        let t = Instant::now();
        for b in chunks.chunks(batch) {
            bulk::copy_kinematics(&store, b).await?;
        }
        best[1][3].add(t.elapsed());

        // ...and one COPY of everything.
        bulk::truncate_records(&store).await?;
        let t = Instant::now();
        bulk::copy_reps(&store, &reps).await?;
        best[0][4].add(t.elapsed());
        let t = Instant::now();
        bulk::copy_kinematics(&store, &chunks).await?;
        best[1][4].add(t.elapsed());
        eprintln!("round {} done", round + 1);
    }

    println!(
        "{:<11} {:>14} {:>14} {:>14} {:>14} {:>14} {:>9} {:>9}",
        "rows/s",
        "sink upsert",
        "stmts only",
        "replay",
        "COPY/batch",
        "one COPY",
        "vs batch",
        "vs one"
    );
    for (i, (what, rows)) in [("reps", reps_n), ("kinematics", points)]
        .into_iter()
        .enumerate()
    {
        let r: Vec<f64> = best[i].iter().map(|b| rate(rows, b.get())).collect();
        println!(
            "{what:<11} {:>14.0} {:>14.0} {:>14.0} {:>14.0} {:>14.0} {:>9.2} {:>9.2}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[0] / r[3],
            r[0] / r[4]
        );
    }
    store.close().await;
    db.drop().await?;
    Ok(())
}
