//! AlertService over a real tonic server on 127.0.0.1 and real PostgreSQL, with the
//! process's alert poller, the webhook dispatcher delivering to a real HTTP receiver on
//! 127.0.0.1, and the embedded bus for flare-up reports. Alerts are written with
//! `Store::upsert_alerts`, exactly as the sink writes them.
//!
//! No sleeps as synchronisation: every wait polls a condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use liftguard_api::alerts::{ALERT_SERVICE_NAME, AlertApi, AlertsConfig};
use liftguard_api::webhooks::{self, WebhookConfig};
use liftguard_api::{ApiConfig, ApiService, add_health_and_reflection};
use liftguard_bus::{Bus, EmbeddedConfig};
use liftguard_client::webhook::{
    DEFAULT_TOLERANCE, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature,
};
use liftguard_model::{AthleteId, GymId, topics};
use liftguard_proto::v1::{
    AcknowledgeAlertRequest, AlertEvent, AlertKind, AlertRecord, Athlete, DeleteWebhookRequest,
    Evidence, FlareUpReport, GetRiskRequest, ListAlertsRequest, ListWebhooksRequest,
    RegisterWebhookRequest, ReportFlareUpRequest, RiskDriver, RiskRecord, Severity,
    SubscribeAlertsRequest, alert_service_client::AlertServiceClient,
};
use liftguard_store::testing::PgTestDb;
use liftguard_store::{Store, StoreOptions, TokenSubject};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Streaming, transport::Channel, transport::Server};

const OPERATOR: &str = "op-token-for-alert-tests";
const T0: i64 = 1_711_756_800_000_000; // 2024-03-30T00:00:00Z
const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Some`, failing after `WAIT`.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Harness {
    addr: SocketAddr,
    store: Store,
    bus: Bus,
    registry: prometheus::Registry,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    gym_a: GymId,
    key_a: String,
    key_b: String,
    a1: AthleteId,
    a2: AthleteId,
    b1: AthleteId,
    tok_a1: String,
    db: Option<PgTestDb>,
}

impl Harness {
    async fn start(alerts: AlertsConfig, hooks: WebhookConfig) -> Harness {
        let db = PgTestDb::create().await.unwrap();
        let store = Store::connect(db.url(), StoreOptions { max_connections: 8 })
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let (gym_a, gym_b) = (
            GymId::parse("gym-a").unwrap(),
            GymId::parse("gym-b").unwrap(),
        );
        store.create_gym("gym-a", "A").await.unwrap();
        store.create_gym("gym-b", "B").await.unwrap();
        let key_a = store.issue_api_key(&gym_a, "t").await.unwrap().secret;
        let key_b = store.issue_api_key(&gym_b, "t").await.unwrap().secret;
        let enroll = |g: GymId, r: &'static str| {
            let store = store.clone();
            async move {
                let a = store
                    .enroll_athlete(
                        &g,
                        &Athlete {
                            external_ref: r.into(),
                            height_m: 1.8,
                            mass_kg: 80.0,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                AthleteId::parse(a.athlete_id).unwrap()
            }
        };
        let a1 = enroll(gym_a.clone(), "a1").await;
        let a2 = enroll(gym_a.clone(), "a2").await;
        let b1 = enroll(gym_b.clone(), "b1").await;
        let tok_a1 = store
            .issue_token(
                &TokenSubject::Athlete(gym_a.clone(), a1.clone()),
                "phone",
                chrono::Utc::now().timestamp_micros() + 3_600_000_000,
                "test",
            )
            .await
            .unwrap()
            .secret;

        let registry = prometheus::Registry::new();
        let bus = Bus::embedded(EmbeddedConfig::default());
        let stop = CancellationToken::new();
        let api = ApiService::new(
            ApiConfig {
                operator_token: Some(OPERATOR.into()),
                ..ApiConfig::default()
            },
            store.clone(),
            &registry,
        );
        let alert_api = AlertApi::start(
            api.clone(),
            alerts,
            bus.producer().unwrap(),
            &registry,
            stop.clone(),
        )
        .await
        .unwrap();
        webhooks::spawn(hooks, store.clone(), &registry, stop.clone()).unwrap();
        let mut builder = tonic::service::RoutesBuilder::default();
        let mut names: Vec<&'static str> = api.add_to(&mut builder).to_vec();
        names.push(alert_api.add_to(&mut builder));
        add_health_and_reflection(&mut builder, &names)
            .await
            .unwrap();
        let routes = builder.routes();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = stop.clone();
        let server = tokio::spawn(async move {
            let _ = Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), s.cancelled_owned())
                .await;
        });
        Harness {
            addr,
            store,
            bus,
            registry,
            stop,
            server,
            gym_a,
            key_a,
            key_b,
            a1,
            a2,
            b1,
            tok_a1,
            db: Some(db),
        }
    }

    async fn client(&self) -> AlertServiceClient<Channel> {
        let ch = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        AlertServiceClient::new(ch)
    }

    /// A client whose HTTP/2 receive windows are the protocol's minimum default (64 KiB),
    /// not the client library's megabytes: an unread stream backs up into the server fast.
    async fn small_window_client(&self) -> AlertServiceClient<Channel> {
        let ch = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        AlertServiceClient::new(ch)
    }

    fn metric(&self, name: &str, label: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| label.is_empty() || m.get_label().iter().any(|l| l.value() == label))
            .map(|m| m.get_counter().get_value())
            .sum()
    }

    async fn shutdown(mut self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, &mut self.server)
            .await
            .expect("the server stops: streams end when the service stops")
            .unwrap();
        self.store.close().await;
        if let Some(db) = self.db.take() {
            db.drop().await.unwrap();
        }
    }
}

fn req<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn fast_alerts() -> AlertsConfig {
    AlertsConfig {
        poll_interval_ms: 20,
        ..AlertsConfig::default()
    }
}

fn fast_hooks() -> WebhookConfig {
    WebhookConfig {
        poll_interval_ms: 10,
        backoff_base_ms: 10,
        backoff_cap_ms: 40,
        max_attempts: 4,
        request_timeout_ms: 5_000,
        ..WebhookConfig::default()
    }
}

/// An alert of `athlete` (gym-a unless told) at `T0 + i` seconds.
fn alert(gym: &GymId, athlete: &AthleteId, i: i64, severity: Severity) -> AlertRecord {
    let t = T0 + i * 1_000_000;
    AlertRecord {
        alert_id: format!("{athlete}-{}-{t}", AlertKind::ExtensorEvents as i32),
        gym_id: gym.to_string(),
        athlete_id: athlete.to_string(),
        session_id: format!("{athlete}-s0"),
        set_id: format!("set-{}", i / 10),
        kind: AlertKind::ExtensorEvents as i32,
        severity: severity as i32,
        time_us: t,
        title: format!("Lumbar-led extension in set {}", i / 10),
        recommendation: "Regress to a trap-bar deadlift at 70 %.".into(),
        evidence: vec![Evidence {
            name: "extensor_events_in_set".into(),
            value: 3.0,
            threshold: 2.0,
            unit: "count".into(),
        }],
        rep_ids: vec![format!("{athlete}-{t}")],
        model_version: 1,
        source_received_us: t + 100_000,
    }
}

async fn next_event(s: &mut Streaming<AlertEvent>) -> AlertEvent {
    tokio::time::timeout(WAIT, s.message())
        .await
        .expect("an event in time")
        .expect("stream ok")
        .expect("stream open")
}

async fn subscribe(
    c: &mut AlertServiceClient<Channel>,
    token: &str,
    athlete: &str,
    after: i64,
) -> Result<Streaming<AlertEvent>, tonic::Status> {
    c.subscribe(req(
        SubscribeAlertsRequest {
            athlete_id: athlete.into(),
            after_cursor: after,
            gym_id: String::new(),
        },
        token,
    ))
    .await
    .map(|r| r.into_inner())
}

/// Disconnect mid-stream, more alerts written (and old ones re-upserted), resume from the
/// last cursor: nothing missed, nothing twice; the athlete's own stream sees only them.
#[tokio::test]
async fn subscribers_resume_without_gaps_or_duplicates() {
    let h = Harness::start(fast_alerts(), fast_hooks()).await;
    let mut c = h.client().await;
    let mut gym_stream = subscribe(&mut c, &h.key_a, "", 0).await.unwrap();
    let mut own = subscribe(&mut c, &h.tok_a1, "", 0).await.unwrap();

    let mut written: Vec<AlertRecord> = Vec::new();
    let batch1: Vec<_> = (0..5)
        .map(|i| {
            let who = if i % 2 == 0 { &h.a1 } else { &h.a2 };
            alert(&h.gym_a, who, i, Severity::Warning)
        })
        .collect();
    h.store.upsert_alerts(&batch1).await.unwrap();
    written.extend(batch1);
    // Another gym's alert is never seen here.
    let other = alert(
        &GymId::parse("gym-b").unwrap(),
        &h.b1,
        0,
        Severity::Critical,
    );
    h.store
        .upsert_alerts(std::slice::from_ref(&other))
        .await
        .unwrap();

    let mut seen: Vec<AlertEvent> = Vec::new();
    for _ in 0..5 {
        seen.push(next_event(&mut gym_stream).await);
    }
    let batch2: Vec<_> = (5..11)
        .map(|i| alert(&h.gym_a, &h.a2, i, Severity::Info))
        .collect();
    h.store.upsert_alerts(&batch2).await.unwrap();
    written.extend(batch2);
    for _ in 0..3 {
        seen.push(next_event(&mut gym_stream).await);
    }
    drop(gym_stream); // the client goes away mid-batch
    let last = seen.last().unwrap().cursor;

    // While it is away: new alerts, and replays of everything (as after a sink restart).
    let batch3: Vec<_> = (11..15)
        .map(|i| alert(&h.gym_a, &h.a1, i, Severity::Critical))
        .collect();
    h.store.upsert_alerts(&batch3).await.unwrap();
    written.extend(batch3);
    let replay = h.store.upsert_alerts(&written).await.unwrap();
    assert_eq!((replay.inserted, replay.updated), (0, 0));

    let mut resumed = subscribe(&mut c, &h.key_a, "", last).await.unwrap();
    for _ in 0..(written.len() - seen.len()) {
        seen.push(next_event(&mut resumed).await);
    }
    // Live after the replay, and no duplicate in between: the next event is the sentinel.
    let sentinel = alert(&h.gym_a, &h.a2, 100, Severity::Warning);
    h.store
        .upsert_alerts(std::slice::from_ref(&sentinel))
        .await
        .unwrap();
    written.push(sentinel.clone());
    seen.push(next_event(&mut resumed).await);
    assert_eq!(seen.last().unwrap().alert.as_ref().unwrap(), &sentinel);

    let got: Vec<&AlertRecord> = seen.iter().map(|e| e.alert.as_ref().unwrap()).collect();
    let want: Vec<&AlertRecord> = written.iter().collect();
    let mut sorted_want = want.clone();
    sorted_want.sort_by_key(|a| (a.time_us, a.alert_id.clone()));
    // Cursors: strictly increasing, in first-insert order; every alert exactly once.
    assert!(seen.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let mut got_ids: Vec<&str> = got.iter().map(|a| a.alert_id.as_str()).collect();
    got_ids.sort();
    let mut want_ids: Vec<&str> = want.iter().map(|a| a.alert_id.as_str()).collect();
    want_ids.sort();
    assert_eq!(got_ids, want_ids);
    assert!(got.iter().all(|a| a.gym_id == "gym-a"));
    let by_id: HashMap<&str, &AlertRecord> =
        want.iter().map(|a| (a.alert_id.as_str(), *a)).collect();
    for g in &got {
        assert_eq!(
            *g,
            by_id[g.alert_id.as_str()],
            "every field, receive time included"
        );
    }

    // The athlete's own stream: only a1's alerts, in cursor order, then live.
    let a1_count = written
        .iter()
        .filter(|a| a.athlete_id == h.a1.as_str())
        .count();
    let mut mine = Vec::new();
    for _ in 0..a1_count {
        mine.push(next_event(&mut own).await);
    }
    assert!(
        mine.iter()
            .all(|e| e.alert.as_ref().unwrap().athlete_id == h.a1.as_str())
    );
    assert!(mine.windows(2).all(|w| w[0].cursor < w[1].cursor));

    // Acknowledge through the API: listed as acknowledged, by the athlete.
    let first_mine = mine[0].alert.as_ref().unwrap().alert_id.clone();
    let ack = c
        .acknowledge_alert(req(
            AcknowledgeAlertRequest {
                alert_id: first_mine.clone(),
            },
            &h.tok_a1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(ack.newly_acknowledged);
    let ev = ack.alert.unwrap();
    assert!(ev.acknowledged);
    assert_eq!(ev.acknowledged_by, format!("athlete:{}", h.a1));
    let again = c
        .acknowledge_alert(req(
            AcknowledgeAlertRequest {
                alert_id: first_mine,
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.newly_acknowledged);

    // ListAlerts pages through the same sequence.
    let mut listed = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .list_alerts(req(
                ListAlertsRequest {
                    after_cursor: after,
                    limit: 4,
                    ..Default::default()
                },
                &h.key_a,
            ))
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.alerts);
        if page.next_after_cursor == 0 {
            break;
        }
        after = page.next_after_cursor;
    }
    assert_eq!(
        listed.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        seen.iter().map(|e| e.cursor).collect::<Vec<_>>()
    );
    let unacked = c
        .list_alerts(req(
            ListAlertsRequest {
                unacknowledged_only: true,
                limit: 1000,
                ..Default::default()
            },
            &h.tok_a1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unacked.alerts.len(), a1_count - 1);
    assert!(h.metric("liftguard_api_alerts_events_sent_total", "replay") >= 1.0);
    assert!(h.metric("liftguard_api_alerts_events_sent_total", "live") >= 1.0);
    drop(own);
    drop(resumed);
    h.shutdown().await;
}

/// A subscriber that does not read while many alerts arrive falls behind the broadcast;
/// it is re-synced from the store and still gets every alert exactly once, in order.
#[tokio::test]
async fn a_lagging_subscriber_is_resynced_not_skipped() {
    let h = Harness::start(
        AlertsConfig {
            poll_interval_ms: 5,
            broadcast_capacity: 16,
            subscriber_buffer: 1,
            store_page: 7,
            ..AlertsConfig::default()
        },
        fast_hooks(),
    )
    .await;
    let mut c = h.small_window_client().await;
    let mut s = subscribe(&mut c, &h.key_a, "", 0).await.unwrap();
    // ~700 bytes per event, 420 KB in all: far beyond the broadcast buffer, the stream's
    // buffer and the 64 KiB HTTP/2 windows, so the unread stream must lag.
    let total = 600;
    for b in 0..60 {
        let batch: Vec<_> = (0..10)
            .map(|i| AlertRecord {
                recommendation: "Rest. ".repeat(100),
                ..alert(&h.gym_a, &h.a1, b * 10 + i, Severity::Info)
            })
            .collect();
        h.store.upsert_alerts(&batch).await.unwrap();
    }
    // Let the poller broadcast everything while the client reads nothing.
    eventually("the poller to catch up", || async {
        (h.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "liftguard_api_alerts_poller_cursor")
            .flat_map(|f| f.get_metric().iter())
            .map(|m| m.get_gauge().get_value())
            .sum::<f64>()
            >= total as f64)
            .then_some(())
    })
    .await;
    let mut cursors = Vec::new();
    for _ in 0..total {
        cursors.push(next_event(&mut s).await.cursor);
    }
    assert_eq!(cursors, (1..=total).collect::<Vec<i64>>());
    assert!(h.metric("liftguard_api_alerts_resyncs_total", "") >= 1.0);
    drop(s);
    // An open stream ends with UNAVAILABLE when the server stops (and does not hold the
    // shutdown up): the client resumes elsewhere with its last cursor.
    let mut open = subscribe(&mut c, &h.key_a, "", total).await.unwrap();
    h.stop.cancel();
    let end = tokio::time::timeout(WAIT, open.message())
        .await
        .expect("the stream ends in time");
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
    h.shutdown().await;
}

#[derive(Debug, Clone)]
struct Hit {
    path: &'static str,
    delivery: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    status: u16,
}

#[derive(Clone)]
struct Receiver {
    path: &'static str,
    fail_first: usize,
    hits: Arc<Mutex<Vec<Hit>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delivery = h(DELIVERY_HEADER);
    let mut hits = r.hits.lock().unwrap();
    let before = hits
        .iter()
        .filter(|x| x.path == r.path && x.delivery == delivery)
        .count();
    let status = if before < r.fail_first { 500 } else { 200 };
    hits.push(Hit {
        path: r.path,
        delivery,
        timestamp: h(TIMESTAMP_HEADER),
        signature: h(SIGNATURE_HEADER),
        body: body.to_vec(),
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

/// A receiver that answers 500 to the first two attempts of every delivery gets each
/// alert exactly once as a success, every signature verifies, a tampered body does not;
/// a receiver that always fails gets `max_attempts` tries, then the delivery is failed.
#[tokio::test]
async fn webhooks_retry_until_delivered_and_sign_every_attempt() {
    let h = Harness::start(fast_alerts(), fast_hooks()).await;
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let flaky = Receiver {
        path: "/flaky",
        fail_first: 2,
        hits: hits.clone(),
    };
    let broken = Receiver {
        path: "/broken",
        fail_first: usize::MAX,
        hits: hits.clone(),
    };
    let app = Router::new()
        .route("/flaky", post(hook).with_state(flaky))
        .route("/broken", post(hook).with_state(broken));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let receiver = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });

    let mut c = h.client().await;
    let flaky_hook = c
        .register_webhook(req(
            RegisterWebhookRequest {
                gym_id: String::new(),
                url: format!("http://{http}/flaky"),
                description: "coach phone".into(),
                min_severity: 0,
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner();
    let secret = flaky_hook.secret.clone();
    assert!(secret.starts_with("whsec_"));
    let broken_hook = c
        .register_webhook(req(
            RegisterWebhookRequest {
                gym_id: "gym-a".into(),
                url: format!("http://{http}/broken"),
                description: "pager".into(),
                min_severity: Severity::Critical as i32,
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner();
    let listed = c
        .list_webhooks(req(
            ListWebhooksRequest {
                gym_id: String::new(),
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.webhooks.len(), 2);
    let listed_text = format!("{listed:?}");
    assert!(
        !listed_text.contains(&secret),
        "listings never carry secrets"
    );

    let alerts: Vec<_> = (0..6)
        .map(|i| {
            let sev = if i == 3 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            alert(&h.gym_a, if i % 2 == 0 { &h.a1 } else { &h.a2 }, i, sev)
        })
        .collect();
    let w = h.store.upsert_alerts(&alerts).await.unwrap();
    assert_eq!(w.deliveries, 6 + 1);
    // Replays (a sink restart) queue nothing new.
    assert_eq!(h.store.upsert_alerts(&alerts).await.unwrap().deliveries, 0);

    let flaky_id = flaky_hook.webhook.as_ref().unwrap().webhook_id.clone();
    let broken_id = broken_hook.webhook.as_ref().unwrap().webhook_id.clone();
    let states = eventually("every delivery to finish", || async {
        let s = h.store.delivery_states(&h.gym_a).await.unwrap();
        s.iter().all(|d| d.delivered || d.failed).then_some(s)
    })
    .await;
    for d in &states {
        if d.webhook_id == flaky_id {
            assert!(
                d.delivered && d.attempts == 3 && d.last_status == Some(200),
                "{d:?}"
            );
        } else {
            assert_eq!(d.webhook_id, broken_id);
            assert!(
                d.failed && d.attempts == 4 && d.last_status == Some(500),
                "{d:?}"
            );
        }
    }
    assert_eq!(h.metric("liftguard_webhook_failed_total", ""), 1.0);
    assert_eq!(
        h.metric("liftguard_webhook_attempts_total", "delivered"),
        6.0
    );

    let hits = hits.lock().unwrap().clone();
    let flaky_hits: Vec<&Hit> = hits.iter().filter(|x| x.path == "/flaky").collect();
    assert_eq!(flaky_hits.len(), 18, "3 attempts for each of 6 alerts");
    let mut successes: BTreeMap<&str, usize> = BTreeMap::new();
    for hit in &flaky_hits {
        if hit.status == 200 {
            *successes.entry(hit.delivery.as_str()).or_default() += 1;
        }
    }
    assert_eq!(successes.len(), 6);
    assert!(
        successes.values().all(|n| *n == 1),
        "each alert exactly once as a success"
    );
    let now = chrono::Utc::now().timestamp();
    for hit in &hits {
        let secret = if hit.path == "/flaky" {
            &secret
        } else {
            &broken_hook.secret
        };
        verify_signature(
            secret,
            &hit.timestamp,
            &hit.body,
            &hit.signature,
            now,
            DEFAULT_TOLERANCE,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", hit.delivery));
        let body: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
        assert_eq!(body["delivery_id"], hit.delivery.as_str());
        assert_eq!(body["alert"]["gym_id"], "gym-a");
        assert_eq!(body["alert"]["kind"], "ALERT_KIND_EXTENSOR_EVENTS");
    }
    let sample = flaky_hits[0];
    let mut tampered = sample.body.clone();
    let pos = tampered.len() / 2;
    tampered[pos] ^= 0x01;
    assert!(
        verify_signature(
            &secret,
            &sample.timestamp,
            &tampered,
            &sample.signature,
            now,
            DEFAULT_TOLERANCE
        )
        .is_err()
    );
    assert!(
        verify_signature(
            &broken_hook.secret,
            &sample.timestamp,
            &sample.body,
            &sample.signature,
            now,
            DEFAULT_TOLERANCE
        )
        .is_err(),
        "another webhook's secret does not verify"
    );
    // Delivered rows are never claimed again.
    let far = chrono::Utc::now().timestamp_micros() + 86_400_000_000;
    assert!(
        h.store
            .claim_deliveries(far, far + 1, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Delete: gone from the listing; a second delete says so.
    let del = c
        .delete_webhook(req(
            DeleteWebhookRequest {
                gym_id: String::new(),
                webhook_id: broken_id.clone(),
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(del.deleted);
    let del = c
        .delete_webhook(req(
            DeleteWebhookRequest {
                gym_id: String::new(),
                webhook_id: broken_id,
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!del.deleted);
    receiver.abort();
    h.shutdown().await;
}

/// Other gyms, other athletes: PERMISSION_DENIED; bad fields: INVALID_ARGUMENT naming
/// them; an athlete reports its own flare-up (stored and produced to the bus) and reads
/// its own risk.
#[tokio::test]
async fn permissions_validation_flareups_and_risk() {
    let h = Harness::start(fast_alerts(), fast_hooks()).await;
    let mut c = h.client().await;
    let a2_alert = alert(&h.gym_a, &h.a2, 1, Severity::Warning);
    h.store
        .upsert_alerts(std::slice::from_ref(&a2_alert))
        .await
        .unwrap();

    let denied = |r: Result<_, tonic::Status>, what: &str| {
        let e = r.err().unwrap_or_else(|| panic!("{what}: allowed"));
        assert_eq!(e.code(), Code::PermissionDenied, "{what}: {e:?}");
    };
    // Another gym's key: the gym's stream, one of its athletes, its webhooks.
    denied(
        c.subscribe(req(
            SubscribeAlertsRequest {
                gym_id: "gym-a".into(),
                ..Default::default()
            },
            &h.key_b,
        ))
        .await
        .map(|_| ()),
        "gym-b key subscribes gym-a",
    );
    denied(
        subscribe(&mut c, &h.key_b, h.a1.as_str(), 0)
            .await
            .map(|_| ()),
        "gym-b key subscribes a1",
    );
    denied(
        c.list_webhooks(req(
            ListWebhooksRequest {
                gym_id: "gym-a".into(),
            },
            &h.key_b,
        ))
        .await
        .map(|_| ()),
        "gym-b key lists gym-a webhooks",
    );
    denied(
        c.acknowledge_alert(req(
            AcknowledgeAlertRequest {
                alert_id: a2_alert.alert_id.clone(),
            },
            &h.key_b,
        ))
        .await
        .map(|_| ()),
        "gym-b key acknowledges a gym-a alert",
    );
    // An athlete, for another athlete.
    denied(
        subscribe(&mut c, &h.tok_a1, h.a2.as_str(), 0)
            .await
            .map(|_| ()),
        "a1 subscribes a2",
    );
    denied(
        c.list_alerts(req(
            ListAlertsRequest {
                athlete_id: h.a2.to_string(),
                ..Default::default()
            },
            &h.tok_a1,
        ))
        .await
        .map(|_| ()),
        "a1 lists a2",
    );
    denied(
        c.acknowledge_alert(req(
            AcknowledgeAlertRequest {
                alert_id: a2_alert.alert_id.clone(),
            },
            &h.tok_a1,
        ))
        .await
        .map(|_| ()),
        "a1 acknowledges a2's alert",
    );
    let now = chrono::Utc::now().timestamp_micros();
    denied(
        c.report_flare_up(req(
            ReportFlareUpRequest {
                athlete_id: h.a2.to_string(),
                onset_time_us: now - 3_600_000_000,
                pain: 5,
                note: String::new(),
            },
            &h.tok_a1,
        ))
        .await
        .map(|_| ()),
        "a1 reports for a2",
    );
    denied(
        c.get_risk(req(
            GetRiskRequest {
                athlete_id: h.a2.to_string(),
                ..Default::default()
            },
            &h.tok_a1,
        ))
        .await
        .map(|_| ()),
        "a1 reads a2's risk",
    );
    denied(
        c.register_webhook(req(
            RegisterWebhookRequest {
                url: "https://x.example.com".into(),
                ..Default::default()
            },
            &h.tok_a1,
        ))
        .await
        .map(|_| ()),
        "an athlete registers a webhook",
    );
    // The athlete asking for its gym's stream sees itself only.
    let own = c
        .list_alerts(req(
            ListAlertsRequest {
                gym_id: "gym-a".into(),
                ..Default::default()
            },
            &h.tok_a1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(own.alerts.is_empty(), "a2's alert is not a1's");
    // Unauthenticated.
    let e = c
        .list_alerts(Request::new(ListAlertsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // Validation names the field.
    let invalid = |r: Result<_, tonic::Status>, field: &str| {
        let e = r.err().unwrap_or_else(|| panic!("{field}: accepted"));
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(
            e.message().contains(&format!("`{field}`")),
            "{field}: {}",
            e.message()
        );
    };
    invalid(
        subscribe(&mut c, &h.key_a, "", -1).await.map(|_| ()),
        "after_cursor",
    );
    invalid(
        c.subscribe(req(SubscribeAlertsRequest::default(), OPERATOR))
            .await
            .map(|_| ()),
        "gym_id",
    );
    invalid(
        c.list_alerts(req(
            ListAlertsRequest {
                limit: 5000,
                ..Default::default()
            },
            &h.key_a,
        ))
        .await
        .map(|_| ()),
        "limit",
    );
    for (pain, onset, note, field) in [
        (11, now - 1_000_000, "", "pain"),
        (3, now + 86_400_000_000, "", "onset_time_us"),
        (3, 0, "", "onset_time_us"),
        (3, now - 1_000_000, "\u{1b}[31m", "note"),
    ] {
        invalid(
            c.report_flare_up(req(
                ReportFlareUpRequest {
                    athlete_id: String::new(),
                    onset_time_us: onset,
                    pain,
                    note: note.into(),
                },
                &h.tok_a1,
            ))
            .await
            .map(|_| ()),
            field,
        );
    }
    invalid(
        c.get_risk(req(
            GetRiskRequest {
                days: 400,
                ..Default::default()
            },
            &h.tok_a1,
        ))
        .await
        .map(|_| ()),
        "days",
    );
    invalid(
        c.get_risk(req(
            GetRiskRequest {
                until_day: "30/03/2024".into(),
                ..Default::default()
            },
            &h.tok_a1,
        ))
        .await
        .map(|_| ()),
        "until_day",
    );
    invalid(
        c.register_webhook(req(
            RegisterWebhookRequest {
                url: "ftp://x.example.com/".into(),
                ..Default::default()
            },
            &h.key_a,
        ))
        .await
        .map(|_| ()),
        "url",
    );
    invalid(
        c.register_webhook(req(
            RegisterWebhookRequest {
                url: "https://x.example.com/".into(),
                min_severity: 9,
                ..Default::default()
            },
            &h.key_a,
        ))
        .await
        .map(|_| ()),
        "min_severity",
    );

    // Flare-up: the athlete reports its own (athlete_id may be left empty); stored and on
    // the bus; a resend is the same report.
    let mut flareups = h
        .bus
        .consumer("test-flareups", &[topics::FLAREUPS])
        .unwrap();
    let onset = now - 2 * 3_600_000_000;
    let report = c
        .report_flare_up(req(
            ReportFlareUpRequest {
                athlete_id: String::new(),
                onset_time_us: onset,
                pain: 7,
                note: "after heavy pulls\nleft side".into(),
            },
            &h.tok_a1,
        ))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.report_id, format!("{}-{onset}", h.a1));
    assert_eq!(report.gym_id, "gym-a");
    let msg = tokio::time::timeout(WAIT, flareups.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.key, h.a1.as_str());
    assert_eq!(
        FlareUpReport::decode(msg.payload.as_slice()).unwrap(),
        report
    );
    let again = c
        .report_flare_up(req(
            ReportFlareUpRequest {
                athlete_id: h.a1.to_string(),
                onset_time_us: onset,
                pain: 7,
                note: "after heavy pulls\nleft side".into(),
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(again, report, "a resend is the same report");
    let stored = h
        .store
        .flareup_reports(&liftguard_store::Scope::gym(h.gym_a.clone()), 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(stored, vec![report]);

    // Risk: the athlete's days, oldest first, with drivers.
    let risk = |day: &str, p: f64| RiskRecord {
        risk_id: format!("{}-{day}", h.a1),
        gym_id: "gym-a".into(),
        athlete_id: h.a1.to_string(),
        day: day.into(),
        time_us: T0,
        probability: p,
        drivers: vec![RiskDriver {
            feature: "damage_acwr".into(),
            value: 1.6,
            contribution: 0.8,
            explanation: "60 % more damage than the 4-week average".into(),
        }],
        alert: p > 0.5,
        model_version: 1,
    };
    let days = [
        risk("2024-03-27", 0.1),
        risk("2024-03-29", 0.3),
        risk("2024-03-30", 0.6),
    ];
    h.store.upsert_risk(&days).await.unwrap();
    let got = c
        .get_risk(req(
            GetRiskRequest {
                athlete_id: String::new(),
                days: 3,
                until_day: "2024-03-30".into(),
            },
            &h.tok_a1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.records, days[1..].to_vec());
    let got = c
        .get_risk(req(
            GetRiskRequest {
                athlete_id: h.a1.to_string(),
                days: 0,
                until_day: "2024-03-30".into(),
            },
            &h.key_a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.records, days.to_vec());

    // The service is advertised by reflection.
    let ch = Channel::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let names = liftguard_runtime::grpc::reflected_services(ch)
        .await
        .unwrap();
    assert!(names.iter().any(|n| n == ALERT_SERVICE_NAME), "{names:?}");
    assert!(h.metric("liftguard_api_requests_total", "PERMISSION_DENIED") >= 9.0);
    assert!(h.metric("liftguard_api_requests_total", "INVALID_ARGUMENT") >= 10.0);
    let _ = &h.b1;
    h.shutdown().await;
}
