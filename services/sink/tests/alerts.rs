//! Alerts and risk through the sink (embedded bus, SQLite and PostgreSQL): alerts land with
//! cursors and their webhook outbox rows; replays create no new cursor and no new
//! delivery; a record the store refuses is dropped (counted by topic) without stalling
//! the topic; offsets are committed after the write.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use liftguard_bus::{Bus, EmbeddedConfig, Producer};
use liftguard_model::{GymId, topics};
use liftguard_proto::v1 as pb;
use liftguard_sink::{Sink, SinkConfig, TOPICS};
use liftguard_store::testing::PgTestDb;
use liftguard_store::{AlertQuery, Scope, Store, StoreOptions};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_711_756_800_000_000; // 2024-03-30T00:00:00Z
const A1: &str = "a-00000000000000a1";

fn alert(i: i64, severity: pb::Severity) -> pb::AlertRecord {
    let t = T0 + i * 60_000_000;
    pb::AlertRecord {
        alert_id: format!("{A1}-2-{t}"),
        gym_id: "gym-sink".into(),
        athlete_id: A1.into(),
        session_id: "s1".into(),
        set_id: format!("set-{i}"),
        kind: pb::AlertKind::Fatigue as i32,
        severity: severity as i32,
        time_us: t,
        title: format!("Fatigue high in set {i}"),
        recommendation: "Rest 3 minutes; drop the load 10 %.".into(),
        evidence: vec![pb::Evidence {
            name: "fatigue_score".into(),
            value: 71.5 + i as f64,
            threshold: 65.0,
            unit: "score".into(),
        }],
        rep_ids: vec![format!("{A1}-{t}")],
        model_version: 1,
        source_received_us: t + 250_000,
    }
}

fn risk(day: &str, t: i64, p: f64) -> pb::RiskRecord {
    pb::RiskRecord {
        risk_id: format!("{A1}-{day}"),
        gym_id: "gym-sink".into(),
        athlete_id: A1.into(),
        day: day.into(),
        time_us: t,
        probability: p,
        drivers: vec![pb::RiskDriver {
            feature: "damage_acwr".into(),
            value: 1.3,
            contribution: 0.4,
            explanation: "more damage than usual".into(),
        }],
        alert: p > 0.5,
        model_version: 1,
    }
}

async fn drain(bus: &Bus, store: &Store, registry: &prometheus::Registry) {
    let sink = Sink::new(SinkConfig::default(), bus, store.clone(), registry).unwrap();
    let stop = CancellationToken::new();
    stop.cancel(); // drain mode: consume everything, write, commit, return
    tokio::time::timeout(
        Duration::from_secs(60),
        sink.run(stop, Some(Duration::from_secs(30))),
    )
    .await
    .expect("sink drained in time")
    .unwrap();
}

async fn send(p: &Producer, topic: &str, payload: Vec<u8>) {
    p.send(topic, A1, payload).unwrap().await.unwrap();
}

fn metric(registry: &prometheus::Registry, name: &str, label: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| label.is_empty() || m.get_label().iter().any(|l| l.value() == label))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

async fn scenario(store: &Store) {
    store.migrate().await.unwrap();
    store.create_gym("gym-sink", "Sink").await.unwrap();
    let g = GymId::parse("gym-sink").unwrap();
    store
        .create_webhook(&g, "https://coach.example.com/h", "all", 0)
        .await
        .unwrap();
    store
        .create_webhook(
            &g,
            "https://pager.example.com/h",
            "critical",
            pb::Severity::Critical as i32,
        )
        .await
        .unwrap();
    let bus = Bus::embedded(EmbeddedConfig::default());
    drop(bus.consumer("liftguard-sink", &TOPICS).unwrap());
    let p = bus.producer().unwrap();
    let registry = prometheus::Registry::new();

    let mut bad = alert(99, pb::Severity::Warning);
    bad.evidence[0].value = f64::NAN;
    for i in 0..5 {
        let sev = if i == 2 {
            pb::Severity::Critical
        } else {
            pb::Severity::Warning
        };
        send(&p, topics::ALERTS, alert(i, sev).encode_to_vec()).await;
        if i == 1 {
            send(&p, topics::ALERTS, bad.encode_to_vec()).await;
            send(&p, topics::ALERTS, vec![0xff, 0xff]).await;
        }
    }
    send(
        &p,
        topics::RISK,
        risk("2024-03-30", T0 + 10, 0.2).encode_to_vec(),
    )
    .await;
    send(
        &p,
        topics::RISK,
        risk("2024-03-30", T0 + 20, 0.6).encode_to_vec(),
    )
    .await;
    drain(&bus, store, &registry).await;

    let stored = store
        .list_alerts(&Scope::gym(g.clone()), &AlertQuery::after(0, 100))
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|a| a.cursor).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(stored[2].alert, alert(2, pb::Severity::Critical));
    let hooks = store.list_webhooks(&g).await.unwrap();
    let pending: u64 = hooks.iter().map(|h| h.pending).sum();
    assert_eq!(pending, 5 + 1, "five for `all`, one critical for the pager");
    assert_eq!(
        metric(
            &registry,
            "liftguard_sink_invalid_records_total",
            topics::ALERTS
        ),
        1
    );
    assert_eq!(
        metric(&registry, "liftguard_sink_decode_errors_total", ""),
        1
    );
    assert_eq!(
        metric(
            &registry,
            "liftguard_sink_written_records_total",
            topics::ALERTS
        ),
        7
    );
    assert_eq!(
        metric(
            &registry,
            "liftguard_sink_written_records_total",
            topics::RISK
        ),
        2
    );
    assert_eq!(
        metric(
            &registry,
            "liftguard_sink_webhook_deliveries_queued_total",
            ""
        ),
        6
    );
    let r = store
        .risk_scores(&Scope::gym(g.clone()), "2024-03-30", "2024-03-30")
        .await
        .unwrap();
    assert_eq!(r, vec![risk("2024-03-30", T0 + 20, 0.6)]);

    // Everything was committed: a replay of the same alerts (as after a crash) is written
    // again, creates no cursor and queues nothing.
    for i in 0..5 {
        let sev = if i == 2 {
            pb::Severity::Critical
        } else {
            pb::Severity::Warning
        };
        send(&p, topics::ALERTS, alert(i, sev).encode_to_vec()).await;
    }
    send(
        &p,
        topics::RISK,
        risk("2024-03-30", T0 + 10, 0.2).encode_to_vec(),
    )
    .await;
    let registry = prometheus::Registry::new();
    drain(&bus, store, &registry).await;
    assert_eq!(
        metric(
            &registry,
            "liftguard_sink_written_records_total",
            topics::ALERTS
        ),
        5
    );
    assert_eq!(store.last_alert_cursor().await.unwrap(), 5);
    let again = store
        .list_alerts(&Scope::gym(g.clone()), &AlertQuery::after(0, 100))
        .await
        .unwrap();
    assert_eq!(again, stored);
    let pending: u64 = store
        .list_webhooks(&g)
        .await
        .unwrap()
        .iter()
        .map(|h| h.pending)
        .sum();
    assert_eq!(pending, 6);
    assert_eq!(
        metric(
            &registry,
            "liftguard_sink_webhook_deliveries_queued_total",
            ""
        ),
        0
    );
    let r = store
        .risk_scores(&Scope::gym(g), "2024-03-30", "2024-03-30")
        .await
        .unwrap();
    assert_eq!(
        r[0].probability, 0.6,
        "an older estimate never overwrites a newer one"
    );
}

#[tokio::test]
async fn alerts_and_risk_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url, StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    scenario(&store).await;
    store.close().await;
}

#[tokio::test]
async fn alerts_and_risk_on_postgres() {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections: 2 })
        .await
        .unwrap();
    scenario(&store).await;
    store.close().await;
    db.drop().await.unwrap();
}
