//! The whole pipeline end to end, against the simulator's ground truth:
//! - distributed mode: separate `liftguard ingest`, `process`, `sink` and `api` processes,
//!   the Kafka mock cluster over TCP and a fresh PostgreSQL database;
//! - embedded mode: one `liftguard run` process (in-process bus, SQLite);
//! - offline: `liftguard simulate` → `liftguard analyze`.
//!
//! Completion is read from the roles' own metrics (every uploaded sample processed, every
//! produced record consumed by the sink), never from sleeps.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use liftguard::gym::{self, Accuracy};
use liftguard_client::Token;
use liftguard_e2e::{Role, eventually, metric_sum};
use liftguard_model::{AthleteId, topics};
use liftguard_proto::v1 as pb;
use liftguard_sim::SimSession;
use liftguard_store::{Store, StoreOptions};

const OPERATOR: &str = "e2e-operator-token";
const SLUG: &str = "e2e-gym";

fn simulated_gym(seed: u64, athletes: u32, minutes: f64) -> Vec<SimSession> {
    liftguard_sim::simulate_gym(
        seed,
        athletes,
        minutes,
        liftguard::demo::SIM_START_US,
        &liftguard_sim::SimOptions::default(),
    )
}

fn total_samples(sessions: &[SimSession]) -> u64 {
    sessions
        .iter()
        .map(|s| (s.thoracolumbar.samples.len() + s.sacrum.samples.len()) as u64)
        .sum()
}

/// Enrolls through `api`, uploads through `ingest`; every batch must be accepted.
async fn stream_gym(
    api: &str,
    ingest: &str,
    sessions: &[SimSession],
) -> anyhow::Result<(Vec<gym::Enrolled>, liftguard_client::UploadReport)> {
    let api_ch = liftguard_client::connect(api).await?;
    let (key, enrolled) = gym::enroll(api_ch, &Token::new(OPERATOR)?, SLUG, sessions).await?;
    let ingest_ch = liftguard_client::connect(ingest).await?;
    let report = gym::upload(ingest_ch, &key, SLUG, sessions, |_| {}).await?;
    let expected: usize = sessions
        .iter()
        .map(|s| gym::session_batches(SLUG, s, gym::BATCH_LEN).len())
        .sum();
    assert!(
        report.rejected.is_empty(),
        "rejected: {:?}",
        report.rejected
    );
    assert_eq!(report.accepted + report.duplicates, expected as u64);
    Ok((enrolled, report))
}

/// Waits until the processor has processed every sample and the sink has written every
/// record the processor produced (the sink counts a record only once its rows are stored).
async fn wait_until_stored(processor: &Role, sink: &Role, samples: u64) -> anyhow::Result<()> {
    eventually(Duration::from_secs(120), "the pipeline to drain", || async {
        let p = processor.metrics().await?;
        let s = sink.metrics().await?;
        let processed = metric_sum(&p, "liftguard_processor_samples_total") as u64;
        let produced = |t: &str| {
            p.get(&format!("liftguard_processor_records_total{{topic=\"{t}\"}}"))
                .copied()
                .unwrap_or(0.0)
        };
        let consumed = |t: &str| {
            s.get(&format!("liftguard_sink_written_records_total{{topic=\"{t}\"}}"))
                .copied()
                .unwrap_or(0.0)
        };
        let done = processed == samples
            && consumed(topics::REPS) >= produced(topics::REPS)
            && consumed(topics::KINEMATICS) >= produced(topics::KINEMATICS)
            && produced(topics::KINEMATICS) > 0.0;
        if done {
            Ok(Ok(()))
        } else {
            Ok(Err(format!(
                "processed {processed}/{samples} samples; reps written {}/{}; kinematics written {}/{}",
                consumed(topics::REPS),
                produced(topics::REPS),
                consumed(topics::KINEMATICS),
                produced(topics::KINEMATICS)
            )))
        }
    })
    .await
}

/// Scores the store's content against the truth and asserts the accuracy targets.
async fn check_against_truth(
    store: &Store,
    sessions: &[SimSession],
    enrolled: &[gym::Enrolled],
    mode: &str,
) -> anyhow::Result<Accuracy> {
    let reps = store.all_reps(&liftguard_store::Scope::all()).await?;
    let mut each = Vec::new();
    for (s, e) in sessions.iter().zip(enrolled) {
        let mine: Vec<pb::RepRecord> = reps
            .iter()
            .filter(|r| r.athlete_id == e.athlete_id)
            .cloned()
            .collect();
        // Every record is well-formed and attributed.
        for r in &mine {
            assert_eq!(r.gym_id, SLUG);
            assert!(r.end_us > r.start_us && r.bottom_us >= r.start_us && r.bottom_us <= r.end_us);
            assert!(r.peak_lumbar_flexion_deg.is_finite());
            assert_eq!(r.rep_id, format!("{}-{}", r.athlete_id, r.start_us));
        }
        let trace = store
            .lumbar_trace(
                &liftguard_store::Scope::all(),
                &AthleteId::parse(e.athlete_id.clone())?,
                i64::MIN,
                i64::MAX,
            )
            .await?;
        each.push(gym::score(&s.truth, &mine, &trace));
    }
    let all = Accuracy::merge(&each);
    eprintln!("[{mode}] accuracy vs ground truth: {all:?}");
    let exact = all.sets_exact as f64 / all.sets as f64;
    assert!(all.sets >= 6, "too few sets simulated: {all:?}");
    assert!(
        exact >= 0.95,
        "rep count exact in only {:.0}% of sets: {all:?}",
        exact * 100.0
    );
    assert!(
        all.max_count_error <= 1,
        "a set's rep count is off by more than 1: {all:?}"
    );
    assert!(
        all.lumbar_points > 1000,
        "too few lumbar points stored: {all:?}"
    );
    assert!(all.lumbar_rmse_deg <= 2.0, "lumbar RMSE too large: {all:?}");
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_mode_processes_a_gym_through_kafka_and_postgres() -> anyhow::Result<()> {
    let kafka = liftguard_bus::testing::MockKafka::start(1)?;
    for t in topics::ALL {
        kafka.create_topic(t, 4)?;
    }
    let brokers = kafka.bootstrap_servers();
    let db = liftguard_store::testing::PgTestDb::create().await?;
    let url = db.url().to_owned();

    let common = |role: &'static str| {
        vec![
            role.to_owned(),
            "--kafka".into(),
            brokers.clone(),
            "--database".into(),
            url.clone(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--operator-token".into(),
            OPERATOR.into(),
        ]
    };
    let start = |role: &'static str| {
        let args = common(role);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Role::start(role, &refs, &[])
    };
    // Migrations first, as a deployment's init step does.
    let out = std::process::Command::new(liftguard_e2e::liftguard_bin())
        .args(["migrate", "--database", &url])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let api = start("api")?;
    let ingest = start("ingest")?;
    let processor = start("process")?;
    let sink = start("sink")?;

    let sessions = simulated_gym(7, 3, 4.0);
    let (enrolled, _) = stream_gym(
        api.grpc.as_deref().unwrap(),
        ingest.grpc.as_deref().unwrap(),
        &sessions,
    )
    .await?;
    wait_until_stored(&processor, &sink, total_samples(&sessions)).await?;

    let store = Store::connect(&url, StoreOptions { max_connections: 2 }).await?;
    check_against_truth(&store, &sessions, &enrolled, "distributed").await?;

    // The clinician query RPCs serve the same records, scoped to the gym.
    let mut q = liftguard_client::query_client(
        liftguard_client::connect(api.grpc.as_deref().unwrap()).await?,
    );
    let op = Token::new(OPERATOR)?;
    let mut listed = 0;
    let mut token = String::new();
    loop {
        let page = q
            .list_reps(op.request(pb::ListRepsRequest {
                scope: Some(pb::list_reps_request::Scope::GymId(SLUG.into())),
                range: Some(pb::TimeRange {
                    from_us: 0,
                    to_us: i64::MAX,
                }),
                limit: 50,
                page_token: token.clone(),
            }))
            .await?
            .into_inner();
        listed += page.reps.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        listed,
        store.all_reps(&liftguard_store::Scope::all()).await?.len()
    );

    // Ordered shutdown: every role exits 0 on SIGTERM.
    for r in [ingest, processor, sink, api] {
        r.terminate(Duration::from_secs(30))?;
    }
    store.close().await;
    db.drop().await?;
    Ok(())
}

/// Runs a gym through one `liftguard run` process configured by `config` (TOML) and
/// checks the stored result against the truth. Returns the upload report and every
/// stored rep.
async fn embedded_run(
    seed: u64,
    config: &str,
) -> anyhow::Result<(liftguard_client::UploadReport, Vec<pb::RepRecord>)> {
    let dir = tempfile_dir()?;
    let url = format!("sqlite://{}/liftguard.db?mode=rwc", dir.display());
    let config_path = dir.join("liftguard.toml");
    std::fs::write(&config_path, config)?;
    let node = Role::start(
        "run",
        &[
            "run",
            "--config",
            config_path.to_str().unwrap(),
            "--database",
            &url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--operator-token",
            OPERATOR,
        ],
        &[],
    )?;
    let grpc = node.grpc.clone().unwrap();
    let sessions = simulated_gym(seed, 3, 4.0);
    let (enrolled, report) = stream_gym(&grpc, &grpc, &sessions).await?;
    wait_until_stored(&node, &node, total_samples(&sessions)).await?;
    node.terminate(Duration::from_secs(30))?;

    let store = Store::connect(&url, StoreOptions { max_connections: 1 }).await?;
    check_against_truth(&store, &sessions, &enrolled, "embedded").await?;
    let reps = store.all_reps(&liftguard_store::Scope::all()).await?;
    store.close().await;
    std::fs::remove_dir_all(&dir).ok();
    Ok((report, reps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_processes_a_gym_in_one_process() -> anyhow::Result<()> {
    embedded_run(11, "").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_under_backpressure_loses_and_doubles_nothing() -> anyhow::Result<()> {
    // A bus that holds 40 records per partition: ingest must push back (RETRY with
    // RESOURCE_EXHAUSTED) and the clients must resend, and the result must be the same.
    let (report, reps) = embedded_run(
        11,
        "[bus]\npartitions = 2\nmax_retained_per_partition = 40\n[processor]\ncommit_interval_ms = 20\n",
    )
    .await?;
    assert!(
        report.retries > 0,
        "the bound never pushed back: {report:?}"
    );
    // Nothing lost, nothing doubled, nothing changed: exactly the records of an
    // undisturbed run of the same gym. Athlete ids are random per run, so everything
    // derived from them is compared without them.
    let (_, clean) = embedded_run(11, "").await?;
    let strip = |reps: Vec<pb::RepRecord>| -> Vec<pb::RepRecord> {
        let mut v: Vec<pb::RepRecord> = reps
            .into_iter()
            .map(|mut r| {
                r.athlete_id.clear();
                r.rep_id.clear();
                r.session_id.clear();
                r.set_id.clear();
                r
            })
            .collect();
        v.sort_by_key(|r| (r.start_us, r.end_us));
        v
    };
    let (reps, clean) = (strip(reps), strip(clean));
    assert_eq!(reps.len(), clean.len());
    // Bit for bit: the processor's merge is canonical (event time, not arrival), so the
    // resends and the interleaving they cause change no value of any record.
    for (a, b) in reps.iter().zip(&clean) {
        assert_eq!(a, b);
    }
    assert_eq!(reps, clean);
    Ok(())
}

#[test]
fn offline_analyze_counts_the_simulated_reps() -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let run = liftguard_e2e::run_cli;
    let d = dir.display().to_string();
    run(&["simulate", "--out", &d, "--seed", "5", "--minutes", "3"])?;
    run(&[
        "analyze",
        "--thoracolumbar",
        &format!("{d}/thoracolumbar.csv"),
        "--sacrum",
        &format!("{d}/sacrum.csv"),
        "--out",
        &format!("{d}/out"),
    ])?;
    let truth = std::fs::read_to_string(dir.join("truth_reps.csv"))?;
    let reps = std::fs::read_to_string(dir.join("out/reps.csv"))?;
    let true_reps = truth.lines().count() - 1;
    let found = reps.lines().count() - 1;
    assert!(true_reps > 10, "{true_reps}");
    assert!(
        found.abs_diff(true_reps) <= true_reps / 20 + 1,
        "analyze found {found} reps, truth has {true_reps}"
    );
    let lumbar = std::fs::read_to_string(dir.join("out/lumbar.csv"))?;
    assert!(lumbar.starts_with("t_s,lumbar_flexion_deg\n"));
    assert!(lumbar.lines().count() > 25 * 60, "lumbar.csv too short");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "liftguard-e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
