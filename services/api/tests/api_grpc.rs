//! Registry and Query over a real tonic server on 127.0.0.1 and a real store (SQLite in a
//! temp dir; PostgreSQL for the registry flow), plus gRPC health and reflection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use futures::StreamExt;
use liftguard_api::{
    ACCESS_SERVICE_NAME, ANALYTICS_SERVICE_NAME, ApiConfig, ApiService, QUERY_SERVICE_NAME,
    REGISTRY_SERVICE_NAME, api_routes,
};
use liftguard_proto::v1::{
    Athlete, CreateGymRequest, EnrollAthleteRequest, ExtensorEvidence, IssueApiKeyRequest,
    KinematicsChunk, ListAthletesRequest, ListRepsRequest, ListSensorsRequest, LumbarTraceRequest,
    Placement as WirePlacement, RegisterSensorRequest, RepRecord, RevokeApiKeyRequest, TimeRange,
    list_reps_request::Scope, query_client::QueryClient, registry_client::RegistryClient,
};
use liftguard_store::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, transport::Channel, transport::Server};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const OPERATOR: &str = "op-token-for-tests";

struct Harness {
    addr: SocketAddr,
    store: Store,
    registry: prometheus::Registry,
    server: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("api.db").display());
        let store = Store::connect(&url, StoreOptions { max_connections: 4 })
            .await
            .unwrap();
        Self::with_store(store, Some(dir)).await
    }

    async fn with_store(store: Store, dir: Option<tempfile::TempDir>) -> Harness {
        store.migrate().await.unwrap();
        let registry = prometheus::Registry::new();
        let svc = ApiService::new(
            ApiConfig {
                operator_token: Some(OPERATOR.into()),
                ..ApiConfig::default()
            },
            store.clone(),
            &registry,
        );
        let routes = api_routes(&svc).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = Server::builder()
                .add_routes(routes.routes)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Harness {
            addr,
            store,
            registry,
            server,
            _dir: dir,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn registry(&self) -> RegistryClient<Channel> {
        RegistryClient::new(self.channel().await)
    }

    async fn query(&self) -> QueryClient<Channel> {
        QueryClient::new(self.channel().await)
    }

    fn requests(&self, method: &str, code: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "liftguard_api_requests_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                let l = m.get_label();
                l.iter()
                    .any(|l| l.name() == "method" && l.value() == method)
                    && l.iter().any(|l| l.name() == "code" && l.value() == code)
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }
}

fn req<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn athlete(external_ref: &str) -> Athlete {
    Athlete {
        external_ref: external_ref.into(),
        display_name: format!("Athlete {external_ref}"),
        height_m: 1.75,
        mass_kg: 78.0,
        capacity_deadlift_kg: 160.0,
        ..Default::default()
    }
}

/// Creates a gym through the API; returns its first key.
async fn gym(c: &mut RegistryClient<Channel>, slug: &str) -> String {
    let r = c
        .create_gym(req(
            CreateGymRequest {
                slug: slug.into(),
                name: format!("Gym {slug}"),
            },
            OPERATOR,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.gym.as_ref().unwrap().gym_id, slug);
    assert!(r.api_key.starts_with("lg_"), "{}", r.api_key);
    r.api_key
}

async fn enroll(c: &mut RegistryClient<Channel>, key: &str, gym: &str, ext: &str) -> String {
    c.enroll_athlete(req(
        EnrollAthleteRequest {
            gym_id: gym.into(),
            athlete: Some(athlete(ext)),
        },
        key,
    ))
    .await
    .unwrap()
    .into_inner()
    .athlete_id
}

/// create gym -> key -> enroll -> register sensor -> list, idempotency included.
async fn registry_flow(h: &Harness) {
    let mut c = h.registry().await;
    let key = gym(&mut c, "iron-gym").await;

    // creating again returns the gym and no key
    let again = c
        .create_gym(req(
            CreateGymRequest {
                slug: "iron-gym".into(),
                name: "Other name".into(),
            },
            OPERATOR,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.gym.unwrap().name, "Gym iron-gym");
    assert!(again.api_key.is_empty() && again.api_key_id.is_empty());

    let id = enroll(&mut c, &key, "iron-gym", "m-001").await;
    assert!(id.starts_with("a-"), "{id}");
    // enrolling again updates and keeps the id
    let mut updated = athlete("m-001");
    updated.mass_kg = 80.0;
    let a = c
        .enroll_athlete(req(
            EnrollAthleteRequest {
                gym_id: "iron-gym".into(),
                athlete: Some(updated),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a.athlete_id.as_str(), a.mass_kg, a.gym_id.as_str()),
        (id.as_str(), 80.0, "iron-gym")
    );
    let id2 = enroll(&mut c, &key, "iron-gym", "m-002").await;
    assert_ne!(id, id2);

    for (sensor, placement) in [
        ("AA:BB:CC:00:00:01", WirePlacement::Thoracolumbar),
        ("AA:BB:CC:00:00:02", WirePlacement::Sacrum),
    ] {
        let s = c
            .register_sensor(req(
                RegisterSensorRequest {
                    gym_id: "iron-gym".into(),
                    sensor_id: sensor.into(),
                    athlete_id: id.clone(),
                    placement: placement as i32,
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (s.sensor_id.as_str(), s.athlete_id.as_str(), s.placement),
            (sensor, id.as_str(), placement as i32)
        );
    }

    let athletes = c
        .list_athletes(req(
            ListAthletesRequest {
                gym_id: "iron-gym".into(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .athletes;
    let mut ids: Vec<&str> = athletes.iter().map(|a| a.athlete_id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![id.as_str(), id2.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    let sensors = c
        .list_sensors(req(
            ListSensorsRequest {
                gym_id: "iron-gym".into(),
            },
            OPERATOR,
        ))
        .await
        .unwrap()
        .into_inner()
        .sensors;
    assert_eq!(sensors.len(), 2);
    assert!(
        sensors
            .iter()
            .all(|s| s.gym_id == "iron-gym" && s.athlete_id == id)
    );

    // a second key issued by the gym itself works too
    let k2 = c
        .issue_api_key(req(
            IssueApiKeyRequest {
                gym_id: "iron-gym".into(),
                label: "gateway".into(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!k2.api_key_id.is_empty());
    c.list_sensors(req(
        ListSensorsRequest {
            gym_id: "iron-gym".into(),
        },
        &k2.api_key,
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn registry_flow_on_sqlite() {
    let h = Harness::sqlite().await;
    registry_flow(&h).await;
    assert_eq!(h.requests("CreateGym", "OK"), 2.0);
    assert_eq!(h.requests("EnrollAthlete", "OK"), 3.0);
}

#[tokio::test]
async fn registry_flow_on_postgres() {
    let db = liftguard_store::testing::PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    let h = Harness::with_store(store, None).await;
    registry_flow(&h).await;
    drop(h);
    db.drop().await.unwrap();
}

#[tokio::test]
async fn cross_gym_access_is_permission_denied() {
    let h = Harness::sqlite().await;
    let mut c = h.registry().await;
    let mut q = h.query().await;
    let key_a = gym(&mut c, "gym-aaa").await;
    let key_b = gym(&mut c, "gym-bbb").await;
    let athlete_b = enroll(&mut c, &key_b, "gym-bbb", "b-1").await;

    let denied = |r: Result<_, tonic::Status>, what: &str| {
        let e = r.err().unwrap_or_else(|| panic!("{what} must be denied"));
        assert_eq!(e.code(), Code::PermissionDenied, "{what}: {e:?}");
        e
    };
    let e = denied(
        c.enroll_athlete(req(
            EnrollAthleteRequest {
                gym_id: "gym-bbb".into(),
                athlete: Some(athlete("x")),
            },
            &key_a,
        ))
        .await
        .map(|_| ()),
        "EnrollAthlete",
    );
    assert!(
        e.message().contains("gym-aaa") && e.message().contains("gym-bbb"),
        "{}",
        e.message()
    );
    denied(
        c.list_athletes(req(
            ListAthletesRequest {
                gym_id: "gym-bbb".into(),
            },
            &key_a,
        ))
        .await
        .map(|_| ()),
        "ListAthletes",
    );
    denied(
        c.register_sensor(req(
            RegisterSensorRequest {
                gym_id: "gym-bbb".into(),
                sensor_id: "s-1".into(),
                athlete_id: athlete_b.clone(),
                placement: 1,
            },
            &key_a,
        ))
        .await
        .map(|_| ()),
        "RegisterSensor",
    );
    denied(
        c.issue_api_key(req(
            IssueApiKeyRequest {
                gym_id: "gym-bbb".into(),
                label: "steal".into(),
            },
            &key_a,
        ))
        .await
        .map(|_| ()),
        "IssueApiKey",
    );
    denied(
        c.create_gym(req(
            CreateGymRequest {
                slug: "gym-ccc".into(),
                name: "C".into(),
            },
            &key_a,
        ))
        .await
        .map(|_| ()),
        "CreateGym by a gym key",
    );
    for scope in [
        Scope::GymId("gym-bbb".into()),
        Scope::AthleteId(athlete_b.clone()),
    ] {
        denied(
            q.list_reps(req(
                ListRepsRequest {
                    scope: Some(scope.clone()),
                    ..Default::default()
                },
                &key_a,
            ))
            .await
            .map(|_| ()),
            "ListReps",
        );
        denied(
            q.list_events(req(
                ListRepsRequest {
                    scope: Some(scope),
                    ..Default::default()
                },
                &key_a,
            ))
            .await
            .map(|_| ()),
            "ListEvents",
        );
    }
    denied(
        q.get_lumbar_trace(req(
            LumbarTraceRequest {
                athlete_id: athlete_b.clone(),
                range: Some(TimeRange {
                    from_us: 0,
                    to_us: 1_000_000,
                }),
            },
            &key_a,
        ))
        .await
        .map(|_| ()),
        "GetLumbarTrace",
    );
    // the owner and the operator may
    q.list_reps(req(
        ListRepsRequest {
            scope: Some(Scope::AthleteId(athlete_b.clone())),
            ..Default::default()
        },
        &key_b,
    ))
    .await
    .unwrap();
    q.list_reps(req(
        ListRepsRequest {
            scope: Some(Scope::GymId("gym-bbb".into())),
            ..Default::default()
        },
        OPERATOR,
    ))
    .await
    .unwrap();
    assert!(h.requests("ListReps", "PERMISSION_DENIED") >= 2.0);
}

#[tokio::test]
async fn missing_unknown_and_revoked_keys_are_unauthenticated() {
    let h = Harness::sqlite().await;
    let mut c = h.registry().await;
    let key = gym(&mut c, "gym-rev").await;
    let e = c
        .list_athletes(Request::new(ListAthletesRequest {
            gym_id: "gym-rev".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = c
        .list_athletes(req(
            ListAthletesRequest {
                gym_id: "gym-rev".into(),
            },
            "lg_x_y",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let k2 = c
        .issue_api_key(req(
            IssueApiKeyRequest {
                gym_id: "gym-rev".into(),
                label: "temp".into(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    c.list_athletes(req(
        ListAthletesRequest {
            gym_id: "gym-rev".into(),
        },
        &k2.api_key,
    ))
    .await
    .unwrap();
    let revoked = c
        .revoke_api_key(req(
            RevokeApiKeyRequest {
                gym_id: "gym-rev".into(),
                api_key_id: k2.api_key_id.clone(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .revoked;
    assert!(revoked);
    let e = c
        .list_athletes(req(
            ListAthletesRequest {
                gym_id: "gym-rev".into(),
            },
            &k2.api_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // the first key still works
    c.list_athletes(req(
        ListAthletesRequest {
            gym_id: "gym-rev".into(),
        },
        &key,
    ))
    .await
    .unwrap();
    assert_eq!(h.requests("ListAthletes", "UNAUTHENTICATED"), 3.0);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let h = Harness::sqlite().await;
    let mut c = h.registry().await;
    let mut q = h.query().await;
    let key = gym(&mut c, "gym-val").await;
    let a = enroll(&mut c, &key, "gym-val", "v-1").await;

    let invalid = |r: Result<(), tonic::Status>, field: &str| {
        let e = r.expect_err(field);
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(
            e.message().contains(&format!("`{field}`")),
            "{field}: {}",
            e.message()
        );
    };
    invalid(
        c.create_gym(req(
            CreateGymRequest {
                slug: "Bad Slug".into(),
                name: "x".into(),
            },
            OPERATOR,
        ))
        .await
        .map(|_| ()),
        "slug",
    );
    invalid(
        c.create_gym(req(
            CreateGymRequest {
                slug: "good-slug".into(),
                name: "".into(),
            },
            OPERATOR,
        ))
        .await
        .map(|_| ()),
        "name",
    );
    let reg = |sensor: &str, athlete: &str, placement: i32| RegisterSensorRequest {
        gym_id: "gym-val".into(),
        sensor_id: sensor.into(),
        athlete_id: athlete.into(),
        placement,
    };
    invalid(
        c.register_sensor(req(reg("bad/id", &a, 1), &key))
            .await
            .map(|_| ()),
        "sensor_id",
    );
    invalid(
        c.register_sensor(req(reg("s-1", "a b", 1), &key))
            .await
            .map(|_| ()),
        "athlete_id",
    );
    invalid(
        c.register_sensor(req(reg("s-1", &a, 0), &key))
            .await
            .map(|_| ()),
        "placement",
    );
    let mut bad = athlete("v-2");
    bad.height_m = f32::NAN;
    invalid(
        c.enroll_athlete(req(
            EnrollAthleteRequest {
                gym_id: "gym-val".into(),
                athlete: Some(bad),
            },
            &key,
        ))
        .await
        .map(|_| ()),
        "athlete.height_m",
    );
    // an athlete of the gym that does not exist
    let e = c
        .register_sensor(req(reg("s-1", "a-0000000000000000", 1), &key))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    let list =
        |scope: Option<Scope>, range: Option<TimeRange>, limit: u32, token: &str| ListRepsRequest {
            scope,
            range,
            limit,
            page_token: token.into(),
        };
    let gym_scope = Some(Scope::GymId("gym-val".into()));
    invalid(
        q.list_reps(req(list(None, None, 0, ""), &key))
            .await
            .map(|_| ()),
        "scope",
    );
    invalid(
        q.list_reps(req(list(gym_scope.clone(), None, 10_001, ""), &key))
            .await
            .map(|_| ()),
        "limit",
    );
    invalid(
        q.list_reps(req(
            list(
                gym_scope.clone(),
                Some(TimeRange {
                    from_us: 10,
                    to_us: 5,
                }),
                0,
                "",
            ),
            &key,
        ))
        .await
        .map(|_| ()),
        "range",
    );
    invalid(
        q.list_reps(req(list(gym_scope.clone(), None, 0, "not-a-token"), &key))
            .await
            .map(|_| ()),
        "page_token",
    );
    invalid(
        q.list_reps(req(
            list(Some(Scope::GymId("NOPE".into())), None, 0, ""),
            &key,
        ))
        .await
        .map(|_| ()),
        "gym_id",
    );
    invalid(
        q.get_lumbar_trace(req(
            LumbarTraceRequest {
                athlete_id: a.clone(),
                range: None,
            },
            &key,
        ))
        .await
        .map(|_| ()),
        "range",
    );
    invalid(
        q.get_lumbar_trace(req(
            LumbarTraceRequest {
                athlete_id: a.clone(),
                range: Some(TimeRange {
                    from_us: 0,
                    to_us: 2 * 3_600_000_000,
                }),
            },
            &key,
        ))
        .await
        .map(|_| ()),
        "range",
    );
    let e = q
        .list_reps(req(
            list(
                Some(Scope::AthleteId("a-ffffffffffffffff".into())),
                None,
                0,
                "",
            ),
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(h.requests("ListReps", "INVALID_ARGUMENT") >= 5.0);
}

fn rep(gym: &str, athlete: &str, start_us: i64, event: bool) -> RepRecord {
    RepRecord {
        rep_id: format!("{athlete}-{start_us}"),
        gym_id: gym.into(),
        athlete_id: athlete.into(),
        set_id: "set-1".into(),
        rep_index: 1,
        exercise: 1,
        load_kg: 100.0,
        start_us,
        end_us: start_us + 2_000_000,
        bottom_us: start_us + 1_000_000,
        concentric_start_us: start_us + 1_000_000,
        eccentric_s: 1.0,
        concentric_s: 1.0,
        peak_lumbar_flexion_deg: 30.0,
        extensor_event: event,
        evidence: event.then(|| ExtensorEvidence {
            ldi: 0.8,
            ..Default::default()
        }),
        session_id: "sess-1".into(),
        model_version: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn list_reps_paginates_every_rep_exactly_once() {
    let h = Harness::sqlite().await;
    let mut c = h.registry().await;
    let mut q = h.query().await;
    let key = gym(&mut c, "gym-pag").await;
    let a1 = enroll(&mut c, &key, "gym-pag", "p-1").await;
    let a2 = enroll(&mut c, &key, "gym-pag", "p-2").await;
    let t0 = 1_750_000_000_000_000i64;
    let mut reps = Vec::new();
    for i in 0..23i64 {
        // both athletes share some start times, to exercise the (start_us, athlete) order
        reps.push(rep("gym-pag", &a1, t0 + (i / 2) * 10_000_000, i % 3 == 0));
        if i % 2 == 0 {
            reps.push(rep("gym-pag", &a2, t0 + (i / 2) * 10_000_000, i % 4 == 0));
        }
    }
    reps.sort_by_key(|r| (r.start_us, r.athlete_id.clone()));
    reps.dedup_by_key(|r| (r.start_us, r.athlete_id.clone()));
    h.store.upsert_reps(&reps).await.unwrap();

    async fn all(
        q: &mut QueryClient<Channel>,
        key: &str,
        scope: Scope,
        events: bool,
        limit: u32,
    ) -> (Vec<RepRecord>, usize) {
        let mut out = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let r = ListRepsRequest {
                scope: Some(scope.clone()),
                range: None,
                limit,
                page_token: token.clone(),
            };
            let page = if events {
                q.list_events(req(r, key)).await
            } else {
                q.list_reps(req(r, key)).await
            }
            .unwrap()
            .into_inner();
            pages += 1;
            assert!(page.reps.len() <= limit as usize);
            out.extend(page.reps);
            if page.next_page_token.is_empty() {
                return (out, pages);
            }
            token = page.next_page_token;
            assert!(pages < 100, "pagination does not end");
        }
    }

    let keys = |v: &[RepRecord]| {
        v.iter()
            .map(|r| (r.start_us, r.athlete_id.clone()))
            .collect::<Vec<_>>()
    };
    let (got, pages) = all(&mut q, &key, Scope::GymId("gym-pag".into()), false, 7).await;
    assert_eq!(keys(&got), keys(&reps));
    assert_eq!(pages, reps.len().div_ceil(7));
    assert_eq!(got[3].peak_lumbar_flexion_deg, 30.0);

    let only_a1: Vec<RepRecord> = reps
        .iter()
        .filter(|r| r.athlete_id == a1)
        .cloned()
        .collect();
    let (got, _) = all(&mut q, &key, Scope::AthleteId(a1.clone()), false, 5).await;
    assert_eq!(keys(&got), keys(&only_a1));

    let events: Vec<RepRecord> = reps.iter().filter(|r| r.extensor_event).cloned().collect();
    assert!(!events.is_empty() && events.len() < reps.len());
    let (got, _) = all(&mut q, &key, Scope::GymId("gym-pag".into()), true, 3).await;
    assert_eq!(keys(&got), keys(&events));
    assert!(
        got.iter()
            .all(|r| r.evidence.as_ref().is_some_and(|e| e.ldi == 0.8))
    );

    // a range selects by start time
    let page = q
        .list_reps(req(
            ListRepsRequest {
                scope: Some(Scope::GymId("gym-pag".into())),
                range: Some(TimeRange {
                    from_us: t0 + 10_000_000,
                    to_us: t0 + 30_000_000,
                }),
                limit: 0,
                page_token: String::new(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    let want: Vec<_> = reps
        .iter()
        .filter(|r| (t0 + 10_000_000..t0 + 30_000_000).contains(&r.start_us))
        .cloned()
        .collect();
    assert_eq!(keys(&page.reps), keys(&want));
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn lumbar_trace_returns_the_stored_points_in_range() {
    let h = Harness::sqlite().await;
    let mut c = h.registry().await;
    let mut q = h.query().await;
    let key = gym(&mut c, "gym-trc").await;
    let a = enroll(&mut c, &key, "gym-trc", "t-1").await;
    let t0 = 1_750_000_000_000_000i64;
    h.store
        .upsert_kinematics(&[KinematicsChunk {
            gym_id: "gym-trc".into(),
            athlete_id: a.clone(),
            first_time_us: t0,
            rate_hz: 25.0,
            lumbar_flexion_deg: (0..100).map(|i| i as f32 * 0.5).collect(),
            trunk_inclination_deg: vec![],
            pelvis_inclination_deg: vec![],
        }])
        .await
        .unwrap();
    let pts = q
        .get_lumbar_trace(req(
            LumbarTraceRequest {
                athlete_id: a.clone(),
                range: Some(TimeRange {
                    from_us: t0 + 400_000,
                    to_us: t0 + 800_000,
                }),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .points;
    // 25 Hz = 40 ms: points 10..20
    assert_eq!(pts.len(), 10, "{pts:?}");
    assert_eq!(pts[0].t_us, t0 + 400_000);
    assert_eq!(pts[0].lumbar_flexion_deg, 5.0);
    assert!(pts.windows(2).all(|w| w[0].t_us < w[1].t_us));
}

#[tokio::test]
async fn health_serves_and_reflection_lists_the_services() {
    let h = Harness::sqlite().await;
    let mut health = HealthClient::new(h.channel().await);
    for service in [
        "",
        REGISTRY_SERVICE_NAME,
        QUERY_SERVICE_NAME,
        ACCESS_SERVICE_NAME,
        ANALYTICS_SERVICE_NAME,
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "liftguard.v1.Ingest".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::NotFound,
        "the api role does not serve Ingest"
    );

    let names = liftguard_runtime::grpc::reflected_services(h.channel().await)
        .await
        .unwrap();
    let mut refl = ServerReflectionClient::new(h.channel().await);
    assert_eq!(
        names,
        vec![
            "grpc.health.v1.Health".to_owned(),
            "grpc.reflection.v1.ServerReflection".to_owned(),
            ACCESS_SERVICE_NAME.to_owned(),
            ANALYTICS_SERVICE_NAME.to_owned(),
            QUERY_SERVICE_NAME.to_owned(),
            REGISTRY_SERVICE_NAME.to_owned(),
        ]
    );

    // reflection can describe a liftguard message by symbol
    let resp = refl
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "liftguard.v1.Query".into(),
            )),
        }]))
        .await
        .unwrap()
        .into_inner();
    let first = resp.take(1).collect::<Vec<_>>().await;
    assert!(
        matches!(
            first[0].as_ref().unwrap().message_response,
            Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
        ),
        "{first:?}"
    );
}
