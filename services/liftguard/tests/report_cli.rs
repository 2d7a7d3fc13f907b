//! `liftguard report` and its subcommands over a SQLite store holding a generated
//! population, parsed from command-line arguments as the binary would: files are written,
//! CSV exports have the generated row counts, the planted athletes are the trending ones,
//! and pseudonymous reports carry no real id.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;

use clap::Parser;
use liftguard::report::{self, ReportArgs};
use liftguard_analytics::testing::{Population, PopulationSpec, generate, trace_chunk};
use liftguard_model::GymId;
use liftguard_store::{Store, StoreOptions};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    report: ReportArgs,
}

const SECRET: &str = "report-cli-test-secret";

/// Enrolls the population through the store (which picks athlete ids) and stores its reps
/// under those ids. Returns the population with the ids rewritten.
async fn load(url: &str) -> Population {
    let store = Store::connect(url, StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut pop = generate(&PopulationSpec {
        athletes_per_gym: 5,
        weeks: 6,
        ..PopulationSpec::default()
    });
    for g in &pop.gyms {
        store.create_gym(g, g).await.unwrap();
    }
    let mut ids: HashMap<String, String> = HashMap::new();
    for a in &mut pop.athletes {
        let gym = GymId::parse(a.gym_id.clone()).unwrap();
        let stored = store.enroll_athlete(&gym, a).await.unwrap();
        ids.insert(a.athlete_id.clone(), stored.athlete_id.clone());
        a.athlete_id = stored.athlete_id;
    }
    for r in &mut pop.reps {
        let new = ids[&r.athlete_id].clone();
        for s in [&mut r.rep_id, &mut r.session_id, &mut r.set_id] {
            *s = s.replace(&r.athlete_id, &new);
        }
        r.athlete_id = new;
    }
    for p in &mut pop.planted {
        *p = ids[p.as_str()].clone();
    }
    pop.planted.sort();
    store.upsert_reps(&pop.reps).await.unwrap();
    let a = &pop.athletes[0];
    let first = pop
        .reps
        .iter()
        .filter(|r| r.athlete_id == a.athlete_id)
        .map(|r| r.start_us)
        .min()
        .unwrap();
    store
        .upsert_kinematics(&[trace_chunk(&a.gym_id, &a.athlete_id, first, 100)])
        .await
        .unwrap();
    store.close().await;
    pop
}

async fn run(url: &str, args: &[&str], secret: Option<&str>) -> anyhow::Result<()> {
    let mut argv = vec!["report"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv)?;
    report::run(cli.report, url, 2, secret.map(str::to_owned)).await
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_subcommands_write_what_the_data_holds() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let pop = load(&url).await;
    let d = |name: &str| dir.path().join(name);

    // The summary, as before.
    let summary = d("summary");
    run(
        &url,
        &["--export", summary.to_str().unwrap(), "--format", "csv"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(lines(&summary.join("reps.csv")).len(), pop.reps.len() + 1);
    assert!(summary.join("per_athlete.csv").exists());

    // Trends by gym and sex, as Parquet (by extension) and CSV.
    let pq = d("trends.parquet");
    run(
        &url,
        &["trends", "--by", "gym,sex", "--out", pq.to_str().unwrap()],
        None,
    )
    .await
    .unwrap();
    let bytes = std::fs::read(&pq).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    let csv = d("trends.csv");
    run(
        &url,
        &[
            "trends",
            "--by",
            "exercise",
            "--exercise",
            "deadlift",
            "--out",
            csv.to_str().unwrap(),
        ],
        None,
    )
    .await
    .unwrap();
    let t = lines(&csv);
    assert!(t[0].starts_with("week_start,iso_week,gym_id,age_band,sex,"));
    assert_eq!(t.len() - 1, 6, "one row per week, deadlifts only");
    assert!(t[1..].iter().all(|l| l.contains(",deadlift,")));

    // Trending: the planted athletes (and every athlete with --all).
    let tr = d("trending.csv");
    run(&url, &["trending", "--out", tr.to_str().unwrap()], None)
        .await
        .unwrap();
    let mut trending: Vec<String> = lines(&tr)[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    trending.sort();
    assert_eq!(trending, pop.planted);
    run(
        &url,
        &[
            "trending",
            "--all",
            "--weeks",
            "4",
            "--out",
            tr.to_str().unwrap(),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(lines(&tr).len() - 1, pop.athletes.len());
    let bad = run(&url, &["trending", "--weeks", "1"], None).await;
    assert!(bad.is_err());

    // Load monitoring for one gym.
    let ld = d("load.csv");
    run(
        &url,
        &["load", "--gym", &pop.gyms[1], "--out", ld.to_str().unwrap()],
        None,
    )
    .await
    .unwrap();
    let l = lines(&ld);
    assert_eq!(l.len() - 1, 5);
    assert!(l[1..].iter().all(|x| x.contains(&pop.gyms[1])));

    // One athlete's history with a trace window.
    let a = &pop.athletes[0];
    let first = pop
        .reps
        .iter()
        .filter(|r| r.athlete_id == a.athlete_id)
        .map(|r| r.start_us)
        .min()
        .unwrap();
    let hist = d("athlete");
    run(
        &url,
        &[
            "athlete",
            &a.athlete_id,
            "--trace-from",
            &first.to_string(),
            "--trace-to",
            &(first + 10_000_000).to_string(),
            "--out",
            hist.to_str().unwrap(),
        ],
        None,
    )
    .await
    .unwrap();
    let own = pop
        .reps
        .iter()
        .filter(|r| r.athlete_id == a.athlete_id)
        .count();
    assert_eq!(lines(&hist.join("reps.csv")).len(), own + 1);
    assert_eq!(lines(&hist.join("weeks.csv")).len(), 6 + 1);
    assert_eq!(lines(&hist.join("trace.csv")).len(), 100 + 1);

    // Exports: all reps as Parquet, deadlifts as CSV, quietly.
    let all = d("out/all.parquet");
    run(
        &url,
        &["export", "--out", all.to_str().unwrap(), "-q"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(&std::fs::read(&all).unwrap()[..4], b"PAR1");
    let dl = d("out/deadlifts.csv");
    run(
        &url,
        &[
            "export",
            "--exercise",
            "deadlift",
            "--out",
            dl.to_str().unwrap(),
            "--quiet",
        ],
        None,
    )
    .await
    .unwrap();
    let n = pop.reps.iter().filter(|r| r.exercise == 1).count();
    assert_eq!(lines(&dl).len(), n + 1);
    assert!(!d("out/deadlifts.csv.tmp").exists());

    // Pseudonymous: needs the secret, and then shows no real id anywhere.
    assert!(
        run(&url, &["--pseudonymous", "trending", "--all"], None)
            .await
            .is_err()
    );
    let anon = d("anon.csv");
    run(
        &url,
        &[
            "--pseudonymous",
            "export",
            "--out",
            anon.to_str().unwrap(),
            "-q",
        ],
        Some(SECRET),
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&anon).unwrap();
    assert_eq!(text.lines().count(), pop.reps.len() + 1);
    for a in &pop.athletes {
        assert!(!text.contains(&a.athlete_id));
    }
}
