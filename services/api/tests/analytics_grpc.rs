//! AnalyticsService over a real tonic server on 127.0.0.1 and a real SQLite store holding a
//! generated population: answers equal the analytics computed directly over the store,
//! scopes are applied (gym key, clinician with and without identity), pseudonyms are used
//! throughout, exports stream whole files, and every call is audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use liftguard_analytics::population::{
    Dimension, PopulationInput, TrendOptions, TrendingOptions, trending_athletes,
};
use liftguard_analytics::testing::{Population, PopulationSpec, generate, trace_chunk};
use liftguard_api::{ApiConfig, ApiService, api_routes};
use liftguard_model::GymId;
use liftguard_proto::v1::{
    AthleteHistoryRequest, ExportChunk, ExportFormat, ExportRepsRequest, ExportTrendsRequest,
    LoadMonitoringRequest, PopulationFilter, PopulationTrendsRequest, TimeRange, TrendDimension,
    TrendingAthletesRequest, analytics_service_client::AnalyticsServiceClient,
};
use liftguard_store::{MAX_TIME_US, Scope, Store, StoreOptions, TokenSubject, pseudonym};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, transport::Channel, transport::Server};

const OPERATOR: &str = "op-token-for-analytics";
const SECRET: &str = "pseudonym-secret-for-the-analytics-tests";

struct Harness {
    addr: SocketAddr,
    store: Store,
    pop: Population,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    async fn start(secret: Option<&str>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let store = Store::connect(&url, StoreOptions { max_connections: 4 })
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let pop = generate(&PopulationSpec {
            athletes_per_gym: 6,
            weeks: 7,
            ..PopulationSpec::default()
        });
        liftguard_store::testing::seed_population(&store, &pop.gyms, &pop.athletes, &pop.reps)
            .await
            .unwrap();
        let a = &pop.athletes[0];
        let first = pop
            .reps
            .iter()
            .find(|r| r.athlete_id == a.athlete_id)
            .unwrap()
            .start_us;
        store
            .upsert_kinematics(&[trace_chunk(&a.gym_id, &a.athlete_id, first, 250)])
            .await
            .unwrap();
        let svc = ApiService::new(
            ApiConfig {
                operator_token: Some(OPERATOR.into()),
                pseudonym_secret: secret.map(str::to_owned),
                ..ApiConfig::default()
            },
            store.clone(),
            &prometheus::Registry::new(),
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
            pop,
            server,
            _dir: dir,
        }
    }

    async fn client(&self) -> AnalyticsServiceClient<Channel> {
        let ch = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        AnalyticsServiceClient::new(ch).max_decoding_message_size(64 * 1024 * 1024)
    }

    fn gym(&self, i: usize) -> GymId {
        GymId::parse(self.pop.gyms[i].clone()).unwrap()
    }

    async fn gym_key(&self, i: usize) -> String {
        self.store
            .issue_api_key(&self.gym(i), "analytics tests")
            .await
            .unwrap()
            .secret
    }

    /// A clinician token with consent for gym `i`, with or without identity.
    async fn clinician(&self, id: &str, i: usize, identity: bool) -> String {
        self.store
            .create_clinician(Some(id), "Dr Test")
            .await
            .unwrap();
        self.store
            .grant_consent(id, &self.gym(i), None, identity, "operator")
            .await
            .unwrap();
        self.store
            .issue_token(
                &TokenSubject::Clinician(id.to_owned()),
                "t",
                MAX_TIME_US,
                "operator",
            )
            .await
            .unwrap()
            .secret
    }
}

fn req<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn by(dims: &[TrendDimension]) -> Vec<i32> {
    dims.iter().map(|d| *d as i32).collect()
}

async fn collect(mut s: tonic::Streaming<ExportChunk>) -> (Vec<u8>, Vec<ExportChunk>) {
    let mut bytes = Vec::new();
    let mut chunks = Vec::new();
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        bytes.extend_from_slice(&c.data);
        chunks.push(ExportChunk {
            data: Vec::new(),
            ..c
        });
    }
    (bytes, chunks)
}

// polars (direct computations below) blocks in place: not on a current-thread runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_trends_equal_the_direct_computation() {
    let h = Harness::start(Some(SECRET)).await;
    let mut c = h.client().await;
    let r = c
        .population_trends(req(
            PopulationTrendsRequest {
                filter: None,
                group_by: by(&[TrendDimension::Gym, TrendDimension::Sex]),
            },
            OPERATOR,
        ))
        .await
        .unwrap()
        .into_inner();
    let facts = h
        .store
        .rep_facts(&Scope::all(), b"", 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    let athletes = h.store.scoped_athletes(&Scope::all(), b"").await.unwrap();
    let risk = h
        .store
        .risk_facts(&Scope::all(), b"", 0, MAX_TIME_US + 1)
        .await
        .unwrap();
    // The service reads score buckets from the store; the same figures follow from the reps.
    let buckets = liftguard_store::ScoreBuckets::from_facts(&facts);
    let tinput = liftguard_analytics::population::TrendsInput {
        buckets: &buckets,
        athletes: &athletes,
        risk: risk.as_ref(),
    };
    let direct = liftguard_analytics::population::population_trends(
        &tinput,
        &TrendOptions {
            group_by: vec![Dimension::Gym, Dimension::Sex],
            ..TrendOptions::default()
        },
    )
    .unwrap()
    .to_proto()
    .unwrap();
    assert_eq!(r.rows, direct);
    assert!(r.risk_available);
    let reps: u64 = r.rows.iter().map(|x| u64::from(x.reps)).sum();
    assert_eq!(reps, h.pop.reps.len() as u64);

    // Trending: the planted athletes, by real id for the operator.
    let t = c
        .trending_athletes(req(TrendingAthletesRequest::default(), OPERATOR))
        .await
        .unwrap()
        .into_inner();
    let input = PopulationInput {
        reps: &facts,
        athletes: &athletes,
        risk: risk.as_ref(),
    };
    let direct = trending_athletes(&input, &TrendingOptions::default())
        .unwrap()
        .to_proto()
        .unwrap();
    assert_eq!(t.athletes, direct);
    let mut ids: Vec<String> = t.athletes.iter().map(|a| a.athlete_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, h.pop.planted);

    let l = c
        .load_monitoring(req(LoadMonitoringRequest::default(), OPERATOR))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.athletes.len(), h.pop.athletes.len());

    // Every call is in the audit log.
    let audit = h
        .store
        .query_audit(None, 0, MAX_TIME_US + 1, 100, None)
        .await
        .unwrap();
    for action in [
        "Analytics.PopulationTrends",
        "Analytics.TrendingAthletes",
        "Analytics.LoadMonitoring",
    ] {
        assert!(
            audit
                .entries
                .iter()
                .any(|e| e.action == action && e.status == "OK"),
            "{action} not audited"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gym_keys_see_their_gym_only() {
    let h = Harness::start(Some(SECRET)).await;
    let mut c = h.client().await;
    let key = h.gym_key(0).await;
    let r = c
        .population_trends(req(
            PopulationTrendsRequest {
                filter: None,
                group_by: by(&[TrendDimension::Gym]),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.rows.is_empty());
    assert!(r.rows.iter().all(|x| x.gym_id == h.pop.gyms[0]));
    let reps: u64 = r.rows.iter().map(|x| u64::from(x.reps)).sum();
    let own = h
        .pop
        .reps
        .iter()
        .filter(|x| x.gym_id == h.pop.gyms[0])
        .count();
    assert_eq!(reps, own as u64);

    let other = PopulationFilter {
        gym_ids: vec![h.pop.gyms[1].clone()],
        ..PopulationFilter::default()
    };
    let e = c
        .population_trends(req(
            PopulationTrendsRequest {
                filter: Some(other.clone()),
                group_by: vec![],
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = c
        .export_reps(req(
            ExportRepsRequest {
                filter: Some(other),
                format: ExportFormat::Csv as i32,
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Another gym's athlete: refused by id.
    let foreign = h
        .pop
        .athletes
        .iter()
        .find(|a| a.gym_id == h.pop.gyms[1])
        .unwrap();
    let e = c
        .athlete_history(req(
            AthleteHistoryRequest {
                athlete_id: foreign.athlete_id.clone(),
                ..AthleteHistoryRequest::default()
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Bad requests name the field.
    let e = c
        .population_trends(req(
            PopulationTrendsRequest {
                filter: None,
                group_by: vec![99],
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("group_by"), "{}", e.message());
    let e = c
        .population_trends(req(
            PopulationTrendsRequest {
                filter: Some(PopulationFilter {
                    age_bands: vec!["teens".into()],
                    ..PopulationFilter::default()
                }),
                group_by: vec![],
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .population_trends(req(PopulationTrendsRequest::default(), "nope"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinicians_without_identity_get_pseudonyms_only() {
    let h = Harness::start(Some(SECRET)).await;
    let mut c = h.client().await;
    let token = h.clinician("dr-anon", 0, false).await;
    let t = c
        .trending_athletes(req(
            TrendingAthletesRequest {
                include_all: true,
                ..TrendingAthletesRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let own: Vec<&liftguard_proto::v1::Athlete> = h
        .pop
        .athletes
        .iter()
        .filter(|a| a.gym_id == h.pop.gyms[0])
        .collect();
    assert_eq!(t.athletes.len(), own.len());
    for a in &t.athletes {
        assert!(a.athlete_id.starts_with("p-"), "{}", a.athlete_id);
        assert!(
            own.iter()
                .any(|o| pseudonym(SECRET.as_bytes(), &o.athlete_id) == a.athlete_id)
        );
    }
    // History by pseudonym: every id in it is a pseudonym; the real id is refused.
    let real = own[0];
    let p = pseudonym(SECRET.as_bytes(), &real.athlete_id);
    let first = h
        .pop
        .reps
        .iter()
        .find(|r| r.athlete_id == real.athlete_id)
        .unwrap()
        .start_us;
    let hist = c
        .athlete_history(req(
            AthleteHistoryRequest {
                athlete_id: p.clone(),
                include_reps: true,
                trace_range: Some(TimeRange {
                    from_us: first,
                    to_us: first + 60_000_000,
                }),
                ..AthleteHistoryRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let dump = format!("{hist:?}");
    assert!(!dump.contains(&real.athlete_id), "real id leaked");
    assert!(!dump.contains(&real.display_name), "name leaked");
    let athlete = hist.athlete.unwrap();
    assert_eq!(athlete.athlete_id, p);
    assert_eq!(athlete.sport, real.sport, "cohort fields stay");
    let n = h
        .pop
        .reps
        .iter()
        .filter(|r| r.athlete_id == real.athlete_id)
        .count();
    assert_eq!(hist.reps.len(), n);
    assert!(hist.reps.iter().all(|r| r.rep_id.starts_with(&p)));
    assert_eq!(
        hist.sessions.iter().map(|s| s.reps).sum::<u32>() as usize,
        n
    );
    assert_eq!(hist.weeks.len(), 7);
    assert_eq!(hist.trace.len(), 250);
    assert!(hist.reps.iter().any(|r| r.evidence.is_some()));
    let e = c
        .athlete_history(req(
            AthleteHistoryRequest {
                athlete_id: real.athlete_id.clone(),
                ..AthleteHistoryRequest::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // The other gym is not covered by the grant.
    let e = c
        .population_trends(req(
            PopulationTrendsRequest {
                filter: Some(PopulationFilter {
                    gym_ids: vec![h.pop.gyms[1].clone()],
                    ..PopulationFilter::default()
                }),
                group_by: vec![],
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Exports carry pseudonyms too.
    let s = c
        .export_reps(req(
            ExportRepsRequest {
                filter: None,
                format: ExportFormat::Csv as i32,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let (bytes, _) = collect(s).await;
    let text = String::from_utf8(bytes).unwrap();
    for a in &own {
        assert!(!text.contains(&a.athlete_id));
    }
    assert_eq!(
        text.lines().count() - 1,
        h.pop
            .reps
            .iter()
            .filter(|r| r.gym_id == h.pop.gyms[0])
            .count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonyms_need_the_secret() {
    let h = Harness::start(None).await;
    let mut c = h.client().await;
    let token = h.clinician("dr-anon", 0, false).await;
    let e = c
        .population_trends(req(PopulationTrendsRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    // With identity, no secret is needed.
    let named = h.clinician("dr-named", 1, true).await;
    let r = c
        .population_trends(req(PopulationTrendsRequest::default(), &named))
        .await
        .unwrap()
        .into_inner();
    let reps: u64 = r.rows.iter().map(|x| u64::from(x.reps)).sum();
    assert_eq!(
        reps,
        h.pop
            .reps
            .iter()
            .filter(|r| r.gym_id == h.pop.gyms[1])
            .count() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_whole_files() {
    let h = Harness::start(Some(SECRET)).await;
    let mut c = h.client().await;
    for format in [ExportFormat::Csv, ExportFormat::Parquet] {
        let s = c
            .export_reps(req(
                ExportRepsRequest {
                    filter: Some(PopulationFilter {
                        exercises: vec![1, 2],
                        ..PopulationFilter::default()
                    }),
                    format: format as i32,
                },
                OPERATOR,
            ))
            .await
            .unwrap()
            .into_inner();
        let (bytes, chunks) = collect(s).await;
        let expected = h
            .pop
            .reps
            .iter()
            .filter(|r| r.exercise == 1 || r.exercise == 2)
            .count() as u64;
        let last = chunks.last().unwrap();
        assert!(last.last && chunks.iter().filter(|c| c.last).count() == 1);
        assert_eq!(last.rows, expected);
        assert!(!chunks[0].content_type.is_empty());
        match format {
            ExportFormat::Csv => {
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.starts_with("rep_id,gym_id,athlete_id,"));
                assert_eq!(text.lines().count() as u64, expected + 1);
            }
            _ => {
                assert_eq!(&bytes[..4], b"PAR1");
                assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
            }
        }
    }
    let s = c
        .export_trends(req(
            ExportTrendsRequest {
                trends: Some(PopulationTrendsRequest {
                    filter: None,
                    group_by: by(&[TrendDimension::Exercise]),
                }),
                format: ExportFormat::Csv as i32,
            },
            OPERATOR,
        ))
        .await
        .unwrap()
        .into_inner();
    let (bytes, chunks) = collect(s).await;
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("week_start,iso_week,gym_id,"));
    assert_eq!(text.lines().count() as u64, chunks.last().unwrap().rows + 1);
    let e = c
        .export_reps(req(
            ExportRepsRequest {
                filter: None,
                format: 0,
            },
            OPERATOR,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}
