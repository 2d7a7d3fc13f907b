//! Alerts and flare-up risk end to end, in one `liftguard run` process (in-process bus,
//! SQLite): an athlete's reported flare-up reaches the processor's risk model through the
//! bus and shows in that athlete's risk drivers (and not in another's); every alert the
//! processor produced reaches a gym subscriber exactly once, with evidence and advice.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use liftguard::gym;
use liftguard_client::Token;
use liftguard_e2e::{Role, eventually, metric_sum};
use liftguard_model::topics;
use liftguard_proto::v1 as pb;
use liftguard_proto::v1::alert_service_client::AlertServiceClient;

const OPERATOR: &str = "e2e-operator-token";
const SLUG: &str = "signals-gym";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_flare_up_drives_the_risk_and_alerts_reach_subscribers() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "liftguard-signals-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}/liftguard.db?mode=rwc", dir.display());
    let node = Role::start(
        "run",
        &[
            "run",
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
    let sessions = liftguard_sim::simulate_gym(
        31,
        3,
        5.0,
        liftguard::demo::SIM_START_US,
        &liftguard_sim::SimOptions::default(),
    );
    let ch = liftguard_client::connect(&grpc).await?;
    let (key, enrolled) = gym::enroll(ch.clone(), &Token::new(OPERATOR)?, SLUG, &sessions).await?;
    let gym_key = Token::new(&key)?;
    let mut alerts = AlertServiceClient::new(ch.clone());

    // Athlete 0 reports a flare-up that started the day before the session.
    let onset = liftguard::demo::SIM_START_US - 86_400_000_000;
    let reported = alerts
        .report_flare_up(gym_key.request(pb::ReportFlareUpRequest {
            athlete_id: enrolled[0].athlete_id.clone(),
            onset_time_us: onset,
            pain: 6,
            note: "sharp pain after deadlifts".into(),
        }))
        .await?
        .into_inner();
    assert_eq!(
        reported.report.unwrap().report_id,
        format!("{}-{onset}", enrolled[0].athlete_id)
    );

    // A gym-wide subscriber from the start.
    let mut stream = alerts
        .subscribe(gym_key.request(pb::SubscribeAlertsRequest {
            athlete_id: String::new(),
            after_cursor: 0,
            ..Default::default()
        }))
        .await?
        .into_inner();

    let upload_ch = liftguard_client::connect(&grpc).await?;
    gym::upload(upload_ch, &key, SLUG, &sessions, |_| {}).await?;
    eventually(
        Duration::from_secs(120),
        "every session closed and stored",
        || async {
            let m = node.metrics().await?;
            let closed = metric_sum(&m, "liftguard_processor_sessions_closed_total");
            let produced = |t: &str| {
                m.get(&format!(
                    "liftguard_processor_records_total{{topic=\"{t}\"}}"
                ))
                .copied()
                .unwrap_or(0.0)
            };
            let written = |t: &str| {
                m.get(&format!(
                    "liftguard_sink_written_records_total{{topic=\"{t}\"}}"
                ))
                .copied()
                .unwrap_or(0.0)
            };
            let done = closed as usize == sessions.len()
                && [topics::REPS, topics::ALERTS, topics::RISK]
                    .iter()
                    .all(|t| written(t) >= produced(t));
            Ok(if done {
                Ok(produced(topics::ALERTS) as usize)
            } else {
                Err(format!("{closed} sessions closed"))
            })
        },
    )
    .await?;

    // The risk of the session's day: the flare-up is a driver for athlete 0 only.
    let day = liftguard_risk::day_string(liftguard_risk::day_index(liftguard::demo::SIM_START_US));
    let mut risk = Vec::new();
    for e in &enrolled {
        let r = alerts
            .get_risk(gym_key.request(pb::GetRiskRequest {
                athlete_id: e.athlete_id.clone(),
                days: 3,
                until_day: day.clone(),
            }))
            .await?
            .into_inner()
            .records;
        assert_eq!(r.len(), 1, "one estimate for the day: {r:?}");
        risk.push(r[0].clone());
    }
    let flare = |r: &pb::RiskRecord| {
        r.drivers
            .iter()
            .find(|d| d.feature == "prior_flare_ups")
            .cloned()
            .unwrap()
    };
    eprintln!(
        "risk with a reported flare-up: P = {:.3} (driver {:?}); without: P = {:.3}",
        risk[0].probability,
        flare(&risk[0]),
        risk[1].probability
    );
    assert!(flare(&risk[0]).value > 0.0 && flare(&risk[0]).contribution > 0.0);
    for r in &risk[1..] {
        assert_eq!(flare(r).value, 0.0);
    }

    // Every stored alert reached the subscriber exactly once.
    let listed = alerts
        .list_alerts(gym_key.request(pb::ListAlertsRequest {
            limit: 1000,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .alerts;
    assert!(!listed.is_empty(), "the simulated gym produced no alert");
    let mut seen = Vec::new();
    while seen.len() < listed.len() {
        let ev = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await??
            .unwrap();
        seen.push(ev);
    }
    let mut ids: Vec<String> = seen
        .iter()
        .map(|e| e.alert.as_ref().unwrap().alert_id.clone())
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "an alert was delivered twice");
    eprintln!("{n} alerts delivered to the subscriber");
    for e in &seen {
        let a = e.alert.as_ref().unwrap();
        assert!(
            !a.recommendation.is_empty() && !a.evidence.is_empty(),
            "{a:?}"
        );
    }
    node.terminate(Duration::from_secs(30))?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
