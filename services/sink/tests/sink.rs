//! The sink against a real embedded bus and a real SQLite store: replays change nothing,
//! a poison record is skipped without stalling the stream, offsets are committed only
//! after the write (a new sink in the same group resumes with nothing to redo).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use liftguard_bus::{Bus, EmbeddedConfig};
use liftguard_model::{AthleteId, topics};
use liftguard_proto::v1 as pb;
use liftguard_sink::{Sink, SinkConfig};
use liftguard_store::{Store, StoreOptions};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

fn rep(i: i64) -> pb::RepRecord {
    pb::RepRecord {
        rep_id: format!("a1-{}", 1_000_000 + i * 5_000_000),
        gym_id: "g1".into(),
        athlete_id: "a1".into(),
        set_id: "s1".into(),
        rep_index: i as u32 + 1,
        exercise: 1,
        load_kg: 100.0,
        start_us: 1_000_000 + i * 5_000_000,
        end_us: 4_000_000 + i * 5_000_000,
        bottom_us: 2_000_000 + i * 5_000_000,
        concentric_start_us: 2_100_000 + i * 5_000_000,
        peak_lumbar_flexion_deg: 20.0 + i as f32,
        session_id: "a1-0".into(),
        ..Default::default()
    }
}

async fn run_until_drained(bus: &Bus, store: &Store) {
    let sink = Sink::new(
        SinkConfig::default(),
        bus,
        store.clone(),
        &prometheus::Registry::new(),
    )
    .unwrap();
    let stop = CancellationToken::new();
    stop.cancel(); // drain mode: consume everything there is, write, commit, return
    tokio::time::timeout(
        Duration::from_secs(30),
        sink.run(stop, Some(Duration::from_secs(20))),
    )
    .await
    .expect("sink drained in time")
    .unwrap();
}

#[tokio::test]
async fn replays_and_poison_records_leave_exactly_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url, StoreOptions { max_connections: 1 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let bus = Bus::embedded(EmbeddedConfig::default());
    // Subscribe the group before producing, as in a running system.
    drop(
        bus.consumer("liftguard-sink", &[topics::REPS, topics::KINEMATICS])
            .unwrap(),
    );
    let p = bus.producer().unwrap();
    let mut sends = Vec::new();
    for round in 0..2 {
        for i in 0..3 {
            sends.push(p.send(topics::REPS, "a1", rep(i).encode_to_vec()).unwrap());
        }
        if round == 0 {
            sends.push(p.send(topics::REPS, "a1", vec![0xff, 0xff, 0xff]).unwrap());
            let k = pb::KinematicsChunk {
                gym_id: "g1".into(),
                athlete_id: "a1".into(),
                first_time_us: 1_000_000,
                rate_hz: 25.0,
                lumbar_flexion_deg: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            };
            sends.push(p.send(topics::KINEMATICS, "a1", k.encode_to_vec()).unwrap());
        }
    }
    for s in sends {
        s.await.unwrap();
    }
    run_until_drained(&bus, &store).await;

    let reps = store
        .all_reps(&liftguard_store::Scope::all())
        .await
        .unwrap();
    assert_eq!(reps, (0..3).map(rep).collect::<Vec<_>>());
    let trace = store
        .lumbar_trace(
            &liftguard_store::Scope::all(),
            &AthleteId::parse("a1").unwrap(),
            0,
            i64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(
        trace,
        vec![
            (1_000_000, 1.0),
            (1_040_000, 2.0),
            (1_080_000, 3.0),
            (1_120_000, 4.0)
        ]
    );

    // Committed: a new sink in the group finds nothing left; a corrected record replaces.
    let mut fixed = rep(1);
    fixed.peak_lumbar_flexion_deg = 33.0;
    p.send(topics::REPS, "a1", fixed.encode_to_vec())
        .unwrap()
        .await
        .unwrap();
    run_until_drained(&bus, &store).await;
    let reps = store
        .all_reps(&liftguard_store::Scope::all())
        .await
        .unwrap();
    assert_eq!(reps.len(), 3);
    assert_eq!(reps[1].peak_lumbar_flexion_deg, 33.0);
    store.close().await;
}
