//! Ingest over a real tonic server, a real store and a real embedded bus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use liftguard_bus::EmbeddedConfig;
use liftguard_ingest::IngestConfig;
use liftguard_model::{Placement, SensorId};
use liftguard_proto::v1::AckStatus;
use tonic::Code;

fn code(c: Code) -> i32 {
    c as i32
}

#[tokio::test]
async fn unknown_or_missing_key_fails_the_call_unauthenticated() {
    let h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    let err = h.open("lg_nope_0000").await.err().expect("must fail");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("unknown or revoked"),
        "{}",
        err.message()
    );

    // no authorization metadata at all
    let mut client = h.client().await.unwrap();
    let err = client
        .stream_samples(tokio_stream::iter(Vec::new()))
        .await
        .expect_err("must fail");
    assert_eq!(err.code(), Code::Unauthenticated);

    // a revoked key stops working
    assert!(h.store.revoke_api_key(&h.a.gym, &h.a.key_id).await.unwrap());
    let err = h.open(&h.a.key).await.err().expect("revoked key must fail");
    assert_eq!(err.code(), Code::Unauthenticated);
}

/// Every kind of bad batch in ONE stream, between good ones: each bad one gets its precise
/// ack, the stream goes on, and every good one lands on the bus exactly once, in order.
#[tokio::test]
async fn interleaved_good_and_bad_batches_in_one_stream() {
    let mut h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    let s = h.a.sensor.clone();
    let t0 = now_us() - 60_000_000;
    let mut c = h.open(&h.a.key).await.unwrap();
    let mut good = Vec::new();

    let ack = c.roundtrip(batch(&s, 1, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
    assert_eq!(ack.code, 0);
    assert!(ack.received_time_us >= t0);
    good.push(1);

    // another gym's sensor
    let ack = c.roundtrip(batch(&h.b.sensor, 1, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Rejected);
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::PermissionDenied), "sensor_id")
    );

    // unknown sensor
    let unknown = SensorId::parse("zz:99").unwrap();
    let ack = c.roundtrip(batch(&unknown, 1, t0, 100)).await;
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::NotFound), "sensor_id")
    );

    // NaN
    let mut b = batch(&s, 2, t0, 100);
    b.gx[17] = f32::NAN;
    let ack = c.roundtrip(b).await;
    assert_eq!(status(&ack), AckStatus::Rejected);
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::InvalidArgument), "gx[17]")
    );
    assert!(ack.reason.contains("NaN"), "{}", ack.reason);

    // out of range (> 16 g)
    let mut b = batch(&s, 2, t0, 100);
    b.az[3] = 200.0;
    let ack = c.roundtrip(b).await;
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::OutOfRange), "az[3]")
    );

    // oversize batch (2001 samples)
    let ack = c.roundtrip(batch(&s, 2, t0, 2001)).await;
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::InvalidArgument), "ax")
    );
    assert!(ack.reason.contains("2000"), "{}", ack.reason);

    // mismatched columns
    let mut b = batch(&s, 2, t0, 100);
    b.gz.pop();
    let ack = c.roundtrip(b).await;
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::InvalidArgument), "gz")
    );

    // the rejected seq 2 leaves no progress: a good seq 2 is accepted
    let ack = c.roundtrip(batch(&s, 2, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
    good.push(2);
    let ack = c.roundtrip(batch(&s, 4, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
    good.push(4);

    // duplicate: acknowledged again, not written again
    let ack = c.roundtrip(batch(&s, 2, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Duplicate, "{ack:?}");
    assert_eq!(ack.code, 0);

    // same seq, different content
    let mut b = batch(&s, 4, t0, 100);
    b.ax[0] += 0.5;
    let ack = c.roundtrip(b).await;
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::AlreadyExists), "seq")
    );

    // seq going backwards (3 < 4 and never accepted)
    let ack = c.roundtrip(batch(&s, 3, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Rejected);
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::FailedPrecondition), "seq")
    );
    assert!(
        ack.reason.contains("got seq 3") && ack.reason.contains("seq 4"),
        "{}",
        ack.reason
    );

    // device time going backwards with a higher seq
    let mut b = batch(&s, 5, t0, 100);
    b.first_sample_time_us = t0;
    let ack = c.roundtrip(b).await;
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::FailedPrecondition), "first_sample_time_us")
    );

    // too far in the future
    let mut b = batch(&s, 5, t0, 100);
    b.first_sample_time_us = now_us() + 3_600_000_000;
    let ack = c.roundtrip(b).await;
    assert_eq!(
        (ack.code, ack.field.as_str()),
        (code(Code::OutOfRange), "first_sample_time_us")
    );

    // bad sample rate, seq 0
    let mut b = batch(&s, 5, t0, 100);
    b.sample_rate_hz = 1000.0;
    assert_eq!(c.roundtrip(b).await.field, "sample_rate_hz");
    let mut b = batch(&s, 5, t0, 100);
    b.seq = 0;
    assert_eq!(c.roundtrip(b).await.field, "seq");

    let ack = c.roundtrip(batch(&s, 5, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
    good.push(5);

    drop(c);
    let landed = h.read_exactly(good.len()).await.unwrap();
    assert_eq!(landed.iter().map(|b| b.seq).collect::<Vec<_>>(), good);
    for (b, seq) in landed.iter().zip(&good) {
        let sent = batch(&s, *seq, t0, 100);
        assert_eq!(b.sensor_id, s.as_str());
        assert_eq!(b.gym_id, h.a.gym.as_str());
        assert_eq!(b.athlete_id, h.a.athlete.as_str());
        assert_eq!(b.placement, Placement::Thoracolumbar.to_proto());
        assert_eq!(b.first_sample_time_us, sent.first_sample_time_us);
        assert_eq!((b.ax.clone(), b.gz.clone()), (sent.ax, sent.gz));
        assert_eq!(b.set, sent.set);
        assert_eq!(b.reattached, *seq == 1);
        let profile = b.athlete.as_ref().expect("profile");
        assert_eq!((profile.height_m, profile.mass_kg), (1.8, 82.5));
        assert_eq!(profile.capacity_deadlift_kg, 180.0);
        assert!(b.received_time_us >= b.first_sample_time_us);
    }
    assert_eq!(
        h.counter("liftguard_ingest_batches_total", &[("status", "accepted")]),
        4.0
    );
    assert_eq!(
        h.counter("liftguard_ingest_batches_total", &[("status", "duplicate")]),
        1.0
    );
    assert_eq!(
        h.counter("liftguard_ingest_batches_total", &[("status", "rejected")]),
        12.0
    );
    assert_eq!(
        h.counter(
            "liftguard_ingest_rejects_total",
            &[("reason", "invalid_argument"), ("field", "gx")]
        ),
        1.0
    );
    assert_eq!(
        h.counter("liftguard_ingest_samples_accepted_total", &[]),
        400.0
    );
}

/// Many batches in flight at once from several sensors of one stream: all accepted, acks
/// per sensor in send order, the bus holds each exactly once in order.
#[tokio::test]
async fn pipelined_batches_are_acked_in_order_and_land_once() {
    let mut h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    // a second sensor of the same athlete (the sacrum)
    let sacrum = SensorId::parse("sa-02").unwrap();
    h.store
        .register_sensor(&h.a.gym, &sacrum, &h.a.athlete, Placement::Sacrum)
        .await
        .unwrap();
    let t0 = now_us() - 600_000_000;
    let c = h.open(&h.a.key).await.unwrap();
    let mut c = c;
    const N: u64 = 60;
    for seq in 1..=N {
        c.send(batch(&h.a.sensor, seq, t0, 50)).await;
        c.send(batch(&sacrum, seq, t0, 50)).await;
    }
    let mut next = [1u64, 1u64];
    for _ in 0..2 * N {
        let ack = c.ack().await;
        assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
        let i = usize::from(ack.sensor_id == sacrum.as_str());
        assert_eq!(ack.seq, next[i], "acks of one sensor in send order");
        next[i] += 1;
    }
    drop(c);
    let landed = h.read_exactly(2 * N as usize).await.unwrap();
    for sensor in [h.a.sensor.as_str(), sacrum.as_str()] {
        let seqs: Vec<u64> = landed
            .iter()
            .filter(|b| b.sensor_id == sensor)
            .map(|b| b.seq)
            .collect();
        assert_eq!(seqs, (1..=N).collect::<Vec<_>>());
    }
    assert!(
        landed
            .iter()
            .any(|b| b.placement == Placement::Sacrum.to_proto())
    );
}

/// A resend after a reconnect is a DUPLICATE, not a second record on the bus.
#[tokio::test]
async fn resend_after_reconnect_is_a_duplicate() {
    let mut h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    let t0 = now_us() - 60_000_000;
    let mut c = h.open(&h.a.key).await.unwrap();
    for seq in 1..=3 {
        assert_eq!(
            status(&c.roundtrip(batch(&h.a.sensor, seq, t0, 100)).await),
            AckStatus::Accepted
        );
    }
    drop(c);
    let mut c = h.open(&h.a.key).await.unwrap();
    for seq in 2..=3 {
        let ack = c.roundtrip(batch(&h.a.sensor, seq, t0, 100)).await;
        assert_eq!(status(&ack), AckStatus::Duplicate, "{ack:?}");
    }
    assert_eq!(
        status(&c.roundtrip(batch(&h.a.sensor, 4, t0, 100)).await),
        AckStatus::Accepted
    );
    drop(c);
    let seqs: Vec<u64> = h
        .read_exactly(4)
        .await
        .unwrap()
        .iter()
        .map(|b| b.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

/// The operator token may stream for any gym's sensors.
#[tokio::test]
async fn operator_token_streams_for_any_gym() {
    let mut h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    let t0 = now_us() - 60_000_000;
    let mut c = h.open(OPERATOR).await.unwrap();
    assert_eq!(
        status(&c.roundtrip(batch(&h.a.sensor, 1, t0, 10)).await),
        AckStatus::Accepted
    );
    assert_eq!(
        status(&c.roundtrip(batch(&h.b.sensor, 1, t0, 10)).await),
        AckStatus::Accepted
    );
    drop(c);
    let landed = h.read_exactly(2).await.unwrap();
    let mut gyms: Vec<&str> = landed.iter().map(|b| b.gym_id.as_str()).collect();
    gyms.sort_unstable();
    assert_eq!(gyms, vec!["gym-a", "gym-b"]);
}

/// A tiny bus: sends beyond its bound get RETRY/RESOURCE_EXHAUSTED with a retry hint;
/// after the reader consumed and committed, the resends are accepted, nothing lands twice.
#[tokio::test]
async fn full_bus_answers_retry_and_resends_land_after_consuming() {
    let mut h = Harness::start(
        IngestConfig::default(),
        EmbeddedConfig {
            partitions: 1,
            max_retained_per_partition: 3,
        },
    )
    .await
    .unwrap();
    let s = h.a.sensor.clone();
    let t0 = now_us() - 60_000_000;
    let mut c = h.open(&h.a.key).await.unwrap();
    for seq in 1..=5 {
        c.send(batch(&s, seq, t0, 100)).await;
    }
    let mut retry = Vec::new();
    for seq in 1..=5 {
        let ack = c.ack().await;
        assert_eq!(ack.seq, seq);
        if seq <= 3 {
            assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
        } else {
            assert_eq!(status(&ack), AckStatus::Retry, "{ack:?}");
            assert_eq!(ack.code, code(Code::ResourceExhausted));
            assert!(ack.retry_after_ms > 0);
            if seq == 5 {
                // Not the bus this time: seq 5 waits for the resend of seq 4, so it can
                // never overtake it (which would make the resend of 4 "go backwards").
                assert!(ack.reason.contains("resend of seq 4"), "{ack:?}");
            }
            retry.push(seq);
        }
    }
    assert_eq!(retry, vec![4, 5]);
    let first = h.read_exactly(3).await.unwrap();
    assert_eq!(
        first.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    h.consumer
        .commit(&[(liftguard_model::topics::SAMPLES.to_owned(), 0, 3)])
        .unwrap();
    for seq in retry {
        let ack = c.roundtrip(batch(&s, seq, t0, 100)).await;
        assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
    }
    drop(c);
    let rest = h.read_exactly(2).await.unwrap();
    assert_eq!(rest.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(
        h.counter("liftguard_ingest_retries_total", &[("cause", "queue_full")]),
        1.0
    );
    assert_eq!(
        h.counter(
            "liftguard_ingest_retries_total",
            &[("cause", "waiting_for_resend")]
        ),
        1.0
    );
}

/// The per-gym quota answers RETRY/RESOURCE_EXHAUSTED with the wait, and only for that gym.
#[tokio::test]
async fn gym_quota_answers_retry_with_the_wait() {
    let mut h = Harness::start(
        IngestConfig {
            max_samples_per_batch: 100,
            gym_quota_samples_per_sec: 10.0,
            gym_quota_burst_samples: 100.0,
            ..IngestConfig::default()
        },
        EmbeddedConfig::default(),
    )
    .await
    .unwrap();
    let t0 = now_us() - 60_000_000;
    let mut c = h.open(OPERATOR).await.unwrap();
    assert_eq!(
        status(&c.roundtrip(batch(&h.a.sensor, 1, t0, 100)).await),
        AckStatus::Accepted
    );
    let ack = c.roundtrip(batch(&h.a.sensor, 2, t0, 100)).await;
    assert_eq!(status(&ack), AckStatus::Retry, "{ack:?}");
    assert_eq!(ack.code, code(Code::ResourceExhausted));
    // 100 samples at 10/s: about 10 s to wait
    assert!(
        (5_000..=10_001).contains(&ack.retry_after_ms),
        "{}",
        ack.retry_after_ms
    );
    // gym b has its own bucket
    assert_eq!(
        status(&c.roundtrip(batch(&h.b.sensor, 1, t0, 100)).await),
        AckStatus::Accepted
    );
    // the refused seq 2 left no progress: seq 2 is still the next one (refused again now)
    assert_eq!(
        status(&c.roundtrip(batch(&h.a.sensor, 2, t0, 100)).await),
        AckStatus::Retry
    );
    drop(c);
    assert_eq!(h.read_exactly(2).await.unwrap().len(), 2);
}

/// A message above the encoded size limit cannot be skipped by tonic: the batches before
/// it are acknowledged, then the stream ends with OUT_OF_RANGE.
#[tokio::test]
async fn oversized_message_ends_the_stream_after_acking_the_earlier_batches() {
    let mut h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    let t0 = now_us() - 60_000_000;
    let mut c = h.open(&h.a.key).await.unwrap();
    c.send(batch(&h.a.sensor, 1, t0, 100)).await;
    c.send(batch(&h.a.sensor, 2, t0, 20_000)).await; // ~480 KB > 256 KiB
    assert_eq!(status(&c.ack().await), AckStatus::Accepted);
    let end = tokio::time::timeout(TIMEOUT, c.acks.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(end.code(), Code::OutOfRange, "{end:?}");
    drop(c);
    assert_eq!(h.read_exactly(1).await.unwrap()[0].seq, 1);
}

/// A device clock ahead of the server (within the bound) is accepted and flagged.
#[tokio::test]
async fn clock_skew_is_flagged_not_rejected() {
    let h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    let mut c = h.open(&h.a.key).await.unwrap();
    let mut b = batch(&h.a.sensor, 1, 0, 100);
    b.first_sample_time_us = now_us() + 10_000_000;
    let ack = c.roundtrip(b).await;
    assert_eq!(status(&ack), AckStatus::Accepted, "{ack:?}");
    assert_eq!(ack.field, "first_sample_time_us");
    assert!(ack.reason.contains("clock skew flagged"), "{}", ack.reason);
    assert_eq!(
        h.counter("liftguard_ingest_clock_skew_flagged_total", &[]),
        1.0
    );
}

/// The same path over PostgreSQL: authentication, binding lookup and enrichment come
/// from the database.
#[tokio::test]
async fn ingest_over_postgres_enriches_from_the_registry() {
    let db = liftguard_store::testing::PgTestDb::create().await.unwrap();
    let store = liftguard_store::Store::connect(
        db.url(),
        liftguard_store::StoreOptions { max_connections: 4 },
    )
    .await
    .unwrap();
    let mut h = Harness::start_with(
        IngestConfig::default(),
        EmbeddedConfig::default(),
        store,
        None,
    )
    .await
    .unwrap();
    let t0 = now_us() - 60_000_000;
    let mut c = h.open(&h.a.key).await.unwrap();
    assert_eq!(
        status(&c.roundtrip(batch(&h.a.sensor, 1, t0, 200)).await),
        AckStatus::Accepted
    );
    let ack = c.roundtrip(batch(&h.b.sensor, 1, t0, 200)).await;
    assert_eq!(ack.code, code(Code::PermissionDenied));
    assert_eq!(
        status(&c.roundtrip(batch(&h.a.sensor, 1, t0, 200)).await),
        AckStatus::Duplicate
    );
    drop(c);
    let landed = h.read_exactly(1).await.unwrap();
    assert_eq!(
        (landed[0].gym_id.as_str(), landed[0].athlete_id.as_str()),
        (h.a.gym.as_str(), h.a.athlete.as_str())
    );
    assert_eq!(landed[0].athlete.as_ref().unwrap().mass_kg, 82.5);
    drop(h);
    db.drop().await.unwrap();
}

/// The ingest role's routes answer gRPC health (SERVING) and reflection (Ingest only).
#[tokio::test]
async fn ingest_routes_serve_health_and_reflection() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let h = Harness::start(IngestConfig::default(), EmbeddedConfig::default())
        .await
        .unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", liftguard_ingest::SERVICE_NAME] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let names = liftguard_runtime::grpc::reflected_services(channel)
        .await
        .unwrap();
    assert_eq!(
        names,
        vec![
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "liftguard.v1.Ingest"
        ]
    );
}
