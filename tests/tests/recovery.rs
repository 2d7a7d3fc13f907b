//! Effectively-once results across crashes, rebalances and late data, proven with real
//! processes: `liftguard ingest`, `process` and `sink` (and `api`), the Kafka mock
//! cluster over TCP and a fresh PostgreSQL database per run.
//!
//! Every scenario is compared with an uninterrupted run of the same simulated gym (same
//! seed) in its own cluster: the stored rows (reps with every field, the lumbar trace
//! bit for bit, alerts and risk) must be identical — none missing, none doubled, none
//! changed. Athlete ids are random per run, so rows are compared with each athlete's id
//! replaced by its index in the simulation.
//!
//! Completion is a condition on the database (equal to the reference) and on the
//! processors' own metrics (no lag), polled with a deadline, never a sleep.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use liftguard::gym;
use liftguard_client::{Token, UploadOptions, Uploader};
use liftguard_e2e::{Role, eventually, metric_sum};
use liftguard_model::{AthleteId, topics};
use liftguard_proto::v1 as pb;
use liftguard_sim::SimSession;
use liftguard_store::{Scope, Store, StoreOptions};

const OPERATOR: &str = "e2e-operator-token";
const SLUG: &str = "recovery-gym";
const PARTITIONS: i32 = 6;

fn simulated_gym(seed: u64, athletes: u32, minutes: f64) -> Vec<SimSession> {
    liftguard_sim::simulate_gym(
        seed,
        athletes,
        minutes,
        liftguard::demo::SIM_START_US,
        &liftguard_sim::SimOptions::default(),
    )
}

/// Kafka mock cluster, a fresh database, and the api, ingest and sink roles.
struct Cluster {
    _kafka: liftguard_bus::testing::MockKafka,
    db: Option<liftguard_store::testing::PgTestDb>,
    url: String,
    brokers: String,
    config: std::path::PathBuf,
    dir: std::path::PathBuf,
    api: Option<Role>,
    ingest: Option<Role>,
    sink: Option<Role>,
}

impl Cluster {
    async fn start(name: &str) -> anyhow::Result<Cluster> {
        Self::start_with(name, "").await
    }

    /// A cluster whose roles also read `processor` (TOML lines of the `[processor]` table).
    async fn start_with(name: &str, processor: &str) -> anyhow::Result<Cluster> {
        let kafka = liftguard_bus::testing::MockKafka::start(1)?;
        for t in topics::ALL {
            kafka.create_topic(t, PARTITIONS)?;
        }
        let brokers = kafka.bootstrap_servers();
        let db = liftguard_store::testing::PgTestDb::create().await?;
        let url = db.url().to_owned();
        let dir = std::env::temp_dir().join(format!(
            "liftguard-recovery-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("liftguard.toml");
        // Checkpoints every 100 ms so kills land between and across them; a short
        // session timeout so a killed member leaves the group quickly.
        std::fs::write(
            &config,
            format!(
                "[processor]\ncommit_interval_ms = 100\n{processor}\n\
                 [bus.kafka]\n\"consumer.session.timeout.ms\" = \"3000\"\n\
                 \"consumer.heartbeat.interval.ms\" = \"200\"\n"
            ),
        )?;
        liftguard_e2e::run_cli(&["migrate", "--database", &url])?;
        let mut c = Cluster {
            _kafka: kafka,
            db: Some(db),
            url,
            brokers,
            config,
            dir,
            api: None,
            ingest: None,
            sink: None,
        };
        c.api = Some(c.role("api")?);
        c.ingest = Some(c.role("ingest")?);
        c.sink = Some(c.role("sink")?);
        Ok(c)
    }

    fn role(&self, role: &str) -> anyhow::Result<Role> {
        Role::start(
            role,
            &[
                role,
                "--config",
                self.config.to_str().unwrap(),
                "--kafka",
                &self.brokers,
                "--database",
                &self.url,
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--operator-token",
                OPERATOR,
            ],
            &[],
        )
    }

    fn processor(&self) -> anyhow::Result<Role> {
        self.role("process")
    }

    async fn enroll(
        &self,
        sessions: &[SimSession],
    ) -> anyhow::Result<(String, Vec<gym::Enrolled>)> {
        let ch =
            liftguard_client::connect(self.api.as_ref().unwrap().grpc.as_deref().unwrap()).await?;
        gym::enroll(ch, &Token::new(OPERATOR)?, SLUG, sessions).await
    }

    /// Uploads each athlete's batches (in the order given) on its own gateway stream;
    /// every batch must be accepted.
    async fn upload(
        &self,
        key: &str,
        per_athlete: Vec<Vec<pb::SampleBatch>>,
    ) -> anyhow::Result<()> {
        let ch = liftguard_client::connect(self.ingest.as_ref().unwrap().grpc.as_deref().unwrap())
            .await?;
        let token = Token::new(key)?;
        let mut tasks = tokio::task::JoinSet::new();
        for batches in per_athlete {
            let n = batches.len() as u64;
            let mut up = Uploader::new(ch.clone(), token.clone(), UploadOptions::default());
            tasks.spawn(async move {
                let r = up.upload(batches, |_| {}).await?;
                anyhow::ensure!(r.rejected.is_empty(), "rejected: {:?}", r.rejected);
                anyhow::ensure!(r.accepted + r.duplicates == n, "{r:?} of {n}");
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    }

    async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&self.url, StoreOptions { max_connections: 2 }).await?)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        for r in [self.ingest.take(), self.sink.take(), self.api.take()]
            .into_iter()
            .flatten()
        {
            r.terminate(Duration::from_secs(30))?;
        }
        if let Some(db) = self.db.take() {
            db.drop().await?;
        }
        std::fs::remove_dir_all(&self.dir).ok();
        Ok(())
    }
}

fn batches_of(sessions: &[SimSession]) -> Vec<Vec<pb::SampleBatch>> {
    sessions
        .iter()
        .map(|s| gym::session_batches(SLUG, s, gym::BATCH_LEN))
        .collect()
}

/// The database's content, normalised for comparison across runs.
#[derive(Debug, PartialEq)]
struct Content {
    reps: Vec<pb::RepRecord>,
    /// (athlete index, time, lumbar flexion bits).
    trace: Vec<(usize, i64, u32)>,
    /// Alerts without their delivery cursor (insertion order) and receive-time stamp.
    alerts: Vec<pb::AlertRecord>,
    risks: Vec<pb::RiskRecord>,
}

impl Content {
    fn summary(&self) -> String {
        format!(
            "{} reps, {} trace points, {} alerts, {} risk estimates",
            self.reps.len(),
            self.trace.len(),
            self.alerts.len(),
            self.risks.len()
        )
    }

    /// What differs from `other`, briefly.
    fn diff(&self, other: &Content) -> String {
        let mut d = Vec::new();
        if self.reps.len() != other.reps.len() {
            d.push(format!("reps {} vs {}", self.reps.len(), other.reps.len()));
        }
        if let Some((a, b)) = self.reps.iter().zip(&other.reps).find(|(a, b)| a != b) {
            d.push(format!("first differing rep:\n  {a:?}\n  {b:?}"));
        }
        if self.trace.len() != other.trace.len() {
            d.push(format!(
                "trace points {} vs {}",
                self.trace.len(),
                other.trace.len()
            ));
        }
        if let Some((a, b)) = self.trace.iter().zip(&other.trace).find(|(a, b)| a != b) {
            d.push(format!("first differing trace point: {a:?} vs {b:?}"));
        }
        if self.alerts != other.alerts {
            d.push(format!("alerts {:?} vs {:?}", self.alerts, other.alerts));
        }
        if self.risks != other.risks {
            d.push(format!("risk {:?} vs {:?}", self.risks, other.risks));
        }
        d.join("; ")
    }
}

async fn content(store: &Store, enrolled: &[gym::Enrolled]) -> anyhow::Result<Content> {
    let norm = |s: &str| {
        let mut s = s.to_owned();
        for (i, e) in enrolled.iter().enumerate() {
            s = s.replace(&e.athlete_id, &format!("A{i}"));
        }
        s
    };
    let mut reps: Vec<pb::RepRecord> = store
        .all_reps(&Scope::all())
        .await?
        .into_iter()
        .map(|mut r| {
            r.athlete_id = norm(&r.athlete_id);
            r.rep_id = norm(&r.rep_id);
            r.session_id = norm(&r.session_id);
            r.set_id = norm(&r.set_id);
            r
        })
        .collect();
    reps.sort_by(|a, b| a.rep_id.cmp(&b.rep_id));
    let mut trace = Vec::new();
    for (i, e) in enrolled.iter().enumerate() {
        let id = AthleteId::parse(e.athlete_id.clone())?;
        for (t, deg) in store
            .lumbar_trace(&Scope::all(), &id, i64::MIN, i64::MAX)
            .await?
        {
            trace.push((i, t, deg.to_bits()));
        }
    }
    let mut alerts = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .list_alerts(
                &Scope::all(),
                &liftguard_store::AlertQuery::after(after, 200),
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = last.cursor;
        alerts.extend(page.into_iter().map(|a| {
            let mut a = a.alert;
            a.source_received_us = 0;
            a.athlete_id = norm(&a.athlete_id);
            a.alert_id = norm(&a.alert_id);
            a.session_id = norm(&a.session_id);
            a.set_id = norm(&a.set_id);
            a.rep_ids = a.rep_ids.iter().map(|r| norm(r)).collect();
            a
        }));
    }
    alerts.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    let mut risks: Vec<pb::RiskRecord> = store
        .risk_scores(&Scope::all(), "2025-07-01", "2026-06-30")
        .await?
        .into_iter()
        .map(|mut r| {
            r.athlete_id = norm(&r.athlete_id);
            r.risk_id = norm(&r.risk_id);
            r
        })
        .collect();
    risks.sort_by(|a, b| a.risk_id.cmp(&b.risk_id));
    Ok(Content {
        reps,
        trace,
        alerts,
        risks,
    })
}

/// The reference: one processor, never disturbed, until every session is closed and every
/// produced record is stored.
async fn reference(sessions: &[SimSession]) -> anyhow::Result<Content> {
    let c = Cluster::start("reference").await?;
    let p = c.processor()?;
    let (key, enrolled) = c.enroll(sessions).await?;
    c.upload(&key, batches_of(sessions)).await?;
    let sink = c.sink.as_ref().unwrap();
    eventually(
        Duration::from_secs(120),
        "the reference run to complete",
        || async {
            let pm = p.metrics().await?;
            let sm = sink.metrics().await?;
            let closed = metric_sum(&pm, "liftguard_processor_sessions_closed_total");
            let produced = |t: &str| {
                pm.get(&format!(
                    "liftguard_processor_records_total{{topic=\"{t}\"}}"
                ))
                .copied()
                .unwrap_or(0.0)
            };
            let written = |t: &str| {
                sm.get(&format!(
                    "liftguard_sink_written_records_total{{topic=\"{t}\"}}"
                ))
                .copied()
                .unwrap_or(0.0)
            };
            let done = closed as usize == sessions.len()
                && [
                    topics::REPS,
                    topics::KINEMATICS,
                    topics::ALERTS,
                    topics::RISK,
                ]
                .iter()
                .all(|t| written(t) >= produced(t));
            Ok(if done {
                Ok(())
            } else {
                Err(format!(
                    "{closed} sessions closed; reps {}/{}, kinematics {}/{}",
                    written(topics::REPS),
                    produced(topics::REPS),
                    written(topics::KINEMATICS),
                    produced(topics::KINEMATICS)
                ))
            })
        },
    )
    .await?;
    let store = c.store().await?;
    let content = content(&store, &enrolled).await?;
    store.close().await;
    p.terminate(Duration::from_secs(30))?;
    c.stop().await?;
    anyhow::ensure!(!content.reps.is_empty(), "the reference stored no reps");
    anyhow::ensure!(
        content.risks.len() == sessions.len(),
        "one risk estimate per athlete-day expected: {}",
        content.summary()
    );
    eprintln!("reference: {}", content.summary());
    Ok(content)
}

/// Waits until the database equals `want` and no processor has lag left.
async fn converges(
    c: &Cluster,
    enrolled: &[gym::Enrolled],
    processors: &[&Role],
    want: &Content,
    what: &str,
) -> anyhow::Result<()> {
    let store = c.store().await?;
    eventually(Duration::from_secs(180), what, || async {
        let got = content(&store, enrolled).await?;
        if &got != want {
            return Ok(Err(format!(
                "{} — differs: {}",
                got.summary(),
                got.diff(want)
            )));
        }
        for p in processors {
            let lag = metric_sum(&p.metrics().await?, "liftguard_processor_bus_lag");
            if lag > 0.0 {
                return Ok(Err(format!("equal so far, processor lag {lag}")));
            }
        }
        Ok(Ok(()))
    })
    .await?;
    store.close().await;
    Ok(())
}

/// Polls (every 2 ms, so a kill lands close to the mark) the processors' summed
/// `liftguard_processor_batches_total` until it reaches `n`.
async fn processed_at_least(processors: &[&Role], n: f64) -> anyhow::Result<f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut sum = 0.0;
        for p in processors {
            sum += metric_sum(&p.metrics().await?, "liftguard_processor_batches_total");
        }
        if sum >= n {
            return Ok(sum);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "processors stuck at {sum} batches of {n}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_processor_mid_session_changes_nothing_in_the_database() -> anyhow::Result<()>
{
    let sessions = Arc::new(simulated_gym(21, 4, 4.0));
    let want = reference(&sessions).await?;
    let total: usize = batches_of(&sessions).iter().map(Vec::len).sum();
    for fraction in [0.1, 0.4, 0.7] {
        let c = Cluster::start("kill").await?;
        let (key, enrolled) = c.enroll(&sessions).await?;
        let p1 = c.processor()?;
        // Data keeps arriving while the processor is killed and restarted.
        let upload = {
            let per = batches_of(&sessions);
            let c_ingest = c.ingest.as_ref().unwrap().grpc.clone().unwrap();
            let key = key.clone();
            tokio::spawn(async move {
                let ch = liftguard_client::connect(&c_ingest).await?;
                let token = Token::new(&key)?;
                let mut tasks = tokio::task::JoinSet::new();
                for batches in per {
                    let mut up = Uploader::new(ch.clone(), token.clone(), UploadOptions::default());
                    tasks.spawn(async move { up.upload(batches, |_| {}).await });
                }
                while let Some(r) = tasks.join_next().await {
                    let r = r??;
                    anyhow::ensure!(r.rejected.is_empty(), "rejected: {:?}", r.rejected);
                }
                anyhow::Ok(())
            })
        };
        let at = processed_at_least(&[&p1], fraction * total as f64).await?;
        // Past at least one durable checkpoint, so the restart has state to restore.
        eventually(Duration::from_secs(60), "a first checkpoint", || async {
            let n = metric_sum(
                &p1.metrics().await?,
                "liftguard_processor_checkpoint_states_total",
            );
            Ok(if n > 0.0 {
                Ok(())
            } else {
                Err("no state written yet".to_owned())
            })
        })
        .await?;
        p1.kill();
        eprintln!("killed the processor (SIGKILL) after {at} of {total} batches");
        let p2 = c.processor()?;
        upload.await??;
        converges(
            &c,
            &enrolled,
            &[&p2],
            &want,
            "the restarted run to equal the reference",
        )
        .await?;
        let m = p2.metrics().await?;
        let restored = m
            .get("liftguard_processor_state_restores_total{outcome=\"restored\"}")
            .copied()
            .unwrap_or(0.0);
        let failed = m
            .get("liftguard_processor_state_restores_total{outcome=\"failed\"}")
            .copied()
            .unwrap_or(0.0);
        let resumed = m
            .get("liftguard_processor_batches_total{outcome=\"processed\"}")
            .copied()
            .unwrap_or(0.0);
        eprintln!(
            "kill at {:.0}%: identical to the reference; the restart processed {resumed} batches, \
             restored {restored} athlete states, skipped {} records as already applied",
            fraction * 100.0,
            metric_sum(&m, "liftguard_processor_replay_skipped_total")
        );
        assert_eq!(failed, 0.0, "a checkpoint failed to restore");
        // The kill lands after a durable checkpoint (every athlete has streamed by then); if
        // the restart had anything left to process (the uploads run faster than real time,
        // so a late kill may find everything done), it continued from checkpoints.
        assert!(
            resumed == 0.0 || restored > 0.0,
            "the restarted processor processed {resumed} batches without restoring a checkpoint"
        );
        p2.terminate(Duration::from_secs(30))?;
        c.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_joining_and_leaving_the_group_change_nothing_in_the_database()
-> anyhow::Result<()> {
    let sessions = simulated_gym(22, 6, 4.0);
    let want = reference(&sessions).await?;
    let total: usize = batches_of(&sessions).iter().map(Vec::len).sum();
    let c = Cluster::start("rebalance").await?;
    let (key, enrolled) = c.enroll(&sessions).await?;
    let p1 = c.processor()?;
    let p2 = c.processor()?;
    let per = batches_of(&sessions);
    // Upload the first half of every session; then a third processor joins.
    let half: Vec<Vec<pb::SampleBatch>> = per.iter().map(|b| b[..b.len() / 2].to_vec()).collect();
    let rest: Vec<Vec<pb::SampleBatch>> = per.iter().map(|b| b[b.len() / 2..].to_vec()).collect();
    let quarter: Vec<Vec<pb::SampleBatch>> =
        rest.iter().map(|b| b[..b.len() / 2].to_vec()).collect();
    let last: Vec<Vec<pb::SampleBatch>> = rest.iter().map(|b| b[b.len() / 2..].to_vec()).collect();
    let count = |v: &[Vec<pb::SampleBatch>]| v.iter().map(Vec::len).sum::<usize>() as f64;
    let (n_half, n_quarter) = (count(&half), count(&quarter));
    assert_eq!(n_half + n_quarter + count(&last), total as f64);
    c.upload(&key, half).await?;
    processed_at_least(&[&p1, &p2], n_half).await?;
    let p3 = c.processor()?;
    eprintln!("a third processor joined after half of the data");
    c.upload(&key, quarter).await?;
    processed_at_least(&[&p1, &p2, &p3], n_half + n_quarter).await?;
    // One leaves (graceful: SIGTERM checkpoints, commits and leaves the group).
    let m1 = p1.metrics().await?;
    p1.terminate(Duration::from_secs(30))?;
    eprintln!(
        "the first processor left after {} batches",
        metric_sum(&m1, "liftguard_processor_batches_total")
    );
    c.upload(&key, last).await?;
    converges(
        &c,
        &enrolled,
        &[&p2, &p3],
        &want,
        "the rebalanced run to equal the reference",
    )
    .await?;
    for (name, p) in [("p2", &p2), ("p3", &p3)] {
        let m = p.metrics().await?;
        eprintln!(
            "{name}: {} batches, {} revocations, {} states restored",
            metric_sum(&m, "liftguard_processor_batches_total"),
            metric_sum(&m, "liftguard_processor_revocations_total"),
            m.get("liftguard_processor_state_restores_total{outcome=\"restored\"}")
                .copied()
                .unwrap_or(0.0)
        );
    }
    p2.terminate(Duration::from_secs(30))?;
    p3.terminate(Duration::from_secs(30))?;
    c.stop().await?;
    Ok(())
}

/// Reorders one athlete's batches as a gateway with one sensor lagging (`lag` batches of
/// the other behind) would send them; each sensor keeps its own order.
fn lagging(batches: &[pb::SampleBatch], lagging_sensor: &str, lag: usize) -> Vec<pb::SampleBatch> {
    let (slow, fast): (Vec<_>, Vec<_>) = batches
        .iter()
        .cloned()
        .partition(|b| b.sensor_id == lagging_sensor);
    let mut out = Vec::with_capacity(batches.len());
    let (mut i, mut j) = (0, 0);
    while i < fast.len() || j < slow.len() {
        if i < fast.len() && (i < j + lag || j >= slow.len()) {
            out.push(fast[i].clone());
            i += 1;
        } else {
            out.push(slow[j].clone());
            j += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_out_of_order_and_backfilled_data_give_the_same_records_as_live() -> anyhow::Result<()>
{
    let sessions = simulated_gym(23, 4, 4.0);
    let want = reference(&sessions).await?;
    let c = Cluster::start("late").await?;
    let (key, enrolled) = c.enroll(&sessions).await?;
    let p = c.processor()?;
    let per = batches_of(&sessions);
    let sacrum = |i: usize| gym::sensor_id(SLUG, &sessions[i].sacrum);
    let thoracolumbar = |i: usize| gym::sensor_id(SLUG, &sessions[i].thoracolumbar);
    let live = vec![
        // Athlete 0: the sacrum's batches arrive 20 batches (10 s) late.
        lagging(&per[0], &sacrum(0), 20),
        // Athlete 1: the thoracolumbar sensor 40 batches (20 s) late.
        lagging(&per[1], &thoracolumbar(1), 40),
        // Athlete 2: in order.
        per[2].clone(),
    ];
    c.upload(&key, live).await?;
    // Athlete 3's whole session (a logbook synced after the others were processed).
    processed_at_least(&[&p], (per[0].len() + per[1].len() + per[2].len()) as f64).await?;
    c.upload(&key, vec![per[3].clone()]).await?;
    converges(
        &c,
        &enrolled,
        &[&p],
        &want,
        "late and backfilled data to equal live",
    )
    .await?;
    p.terminate(Duration::from_secs(30))?;
    c.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_and_restoring_athletes_under_a_tiny_memory_bound_changes_nothing()
-> anyhow::Result<()> {
    let sessions = simulated_gym(24, 4, 3.0);
    let want = reference(&sessions).await?;
    // Room for two athletes' state among four streaming at once, and idle states evicted
    // at every checkpoint: states go to the database and come back all the time.
    let c = Cluster::start_with("evict", "max_athletes = 2\nidle_evict_s = 0.0").await?;
    let (key, enrolled) = c.enroll(&sessions).await?;
    let p = c.processor()?;
    c.upload(&key, batches_of(&sessions)).await?;
    converges(
        &c,
        &enrolled,
        &[&p],
        &want,
        "the bounded run to equal the reference",
    )
    .await?;
    let m = p.metrics().await?;
    let evictions = metric_sum(&m, "liftguard_processor_evictions_total");
    let restored = m
        .get("liftguard_processor_state_restores_total{outcome=\"restored\"}")
        .copied()
        .unwrap_or(0.0);
    eprintln!(
        "bounded memory: {evictions} evictions, {restored} restores; identical to the reference"
    );
    assert!(
        evictions > 10.0 && restored > 10.0,
        "{evictions} evictions, {restored} restores"
    );
    p.terminate(Duration::from_secs(30))?;
    c.stop().await?;
    Ok(())
}
