//! The access-control role matrix: every role × every query/export/admin RPC, over a real
//! tonic server on 127.0.0.1 and a real PostgreSQL database.
//!
//! The matrix is a table: [`ROLES`] (rows) × [`columns`] (one [`Column`] per RPC cell,
//! with the call and the expected outcome per role). To cover a new RPC, add a `Column`;
//! to cover a new role, add a `Role` variant, its credential in [`setup`] and an arm in
//! the columns' `expect` functions (the compiler lists the matches to extend).
//!
//! Every forbidden cell must fail with the expected code and a message naming what was
//! refused (the target) and who asked; every allowed cell must return exactly the rows
//! in the caller's scope (athlete ids as the caller may see them: pseudonyms for a
//! clinician without an identity grant, and no real id anywhere in such a response);
//! every authenticated cell writes one audit row with its status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use futures::StreamExt;
use futures::future::BoxFuture;
use liftguard_api::{ApiConfig, ApiService, add_health_and_reflection};
use liftguard_model::{AthleteId, GymId, Placement};
use liftguard_proto::v1::{
    AlertRecord, AthleteHistoryRequest, ExportFormat, ExportRepsRequest, GetRiskRequest,
    ListAlertsRequest, PopulationFilter, PopulationTrendsRequest,
    alert_service_client::AlertServiceClient, analytics_service_client::AnalyticsServiceClient,
};
use liftguard_proto::v1::{
    Athlete, ConsentGrant, CreateClinicianRequest, EnrollAthleteRequest, ExtensorEvidence,
    GrantConsentRequest, IssueApiKeyRequest, IssueTokenRequest, KinematicsChunk,
    ListAthletesRequest, ListCliniciansRequest, ListGrantsRequest, ListRepsRequest,
    ListSensorsRequest, ListTokensRequest, LumbarTraceRequest, QueryAuditLogRequest, RepRecord,
    RevokeConsentRequest, RevokeTokenRequest, Role as WireRole, TimeRange, WhoAmIRequest,
    access_client::AccessClient, list_reps_request::Scope as Target, query_client::QueryClient,
    registry_client::RegistryClient,
};
use liftguard_store::{Store, StoreOptions, TokenSubject, pseudonym, testing::PgTestDb};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Status, transport::Channel, transport::Server};

const OPERATOR: &str = "op-token-for-the-matrix";
const SECRET: &str = "matrix-pseudonym-secret-0123456789abcdef";
const T0: i64 = 1_700_000_000_000_000;
const DAY: i64 = 86_400_000_000;

/// The rows of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Operator,
    /// The API key of gym-a (service role + gym administration).
    GymKey,
    GymAdmin,
    Coach,
    /// Whole-gym grant on gym-a with identity.
    ClinConsent,
    /// Athlete-level grant on a1 without identity: pseudonyms.
    ClinPseudo,
    /// Had a whole-gym grant on gym-a, revoked.
    ClinRevoked,
    /// Never granted anything.
    ClinNone,
    /// Athlete a1 of gym-a.
    AthleteA1,
    /// Athlete b1 of gym-b (another gym).
    AthleteB1,
    /// An athlete token of a1 past its expiry.
    Expired,
    /// A coach token of gym-a, revoked.
    Revoked,
}

const ROLES: &[Role] = &[
    Role::Operator,
    Role::GymKey,
    Role::GymAdmin,
    Role::Coach,
    Role::ClinConsent,
    Role::ClinPseudo,
    Role::ClinRevoked,
    Role::ClinNone,
    Role::AthleteA1,
    Role::AthleteB1,
    Role::Expired,
    Role::Revoked,
];

/// What a call returned, normalised for comparison.
#[derive(Debug, Clone)]
enum Got {
    /// The athlete ids of the returned rows, as presented, and every id-like string of the
    /// response (to look for leaked real ids).
    Rows {
        athletes: BTreeSet<String>,
        texts: Vec<String>,
    },
    Grants(Vec<ConsentGrant>),
    Done(Vec<String>),
}

impl Got {
    fn texts(&self) -> Vec<String> {
        match self {
            Got::Rows { texts, .. } | Got::Done(texts) => texts.clone(),
            Got::Grants(g) => g
                .iter()
                .flat_map(|g| [g.athlete_id.clone(), g.grant_id.clone()])
                .collect(),
        }
    }
}

/// What a cell must do.
enum Expect {
    /// OK with exactly these (presented) athlete ids in the rows.
    Rows(BTreeSet<String>),
    /// OK; the check returns an error text when the response is wrong.
    Ok(fn(&Ctx, Role, &Got) -> Result<(), String>),
    /// PERMISSION_DENIED whose message contains every fragment.
    Denied(Vec<String>),
    /// UNAUTHENTICATED whose message contains the fragment.
    Unauth(&'static str),
}

type Call = for<'a> fn(&'a Ctx, Role) -> BoxFuture<'a, Result<Got, Status>>;

/// One RPC cell column of the matrix.
struct Column {
    name: &'static str,
    call: Call,
    expect: fn(&Ctx, Role) -> Expect,
}

struct Ctx {
    addr: SocketAddr,
    store: Store,
    a1: String,
    a2: String,
    b1: String,
    creds: BTreeMap<Role, String>,
    /// What a denial must mention to name the caller.
    who: BTreeMap<Role, String>,
    _server: tokio::task::JoinHandle<()>,
}

impl Ctx {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn req<T>(&self, r: Role, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.creds[&r]).parse().unwrap(),
        );
        req
    }

    /// How `r` names an athlete: by pseudonym without identity.
    fn name(&self, r: Role, athlete: &str) -> String {
        if r == Role::ClinPseudo {
            pseudonym(SECRET.as_bytes(), athlete)
        } else {
            athlete.to_owned()
        }
    }

    fn p(&self, athlete: &str) -> String {
        pseudonym(SECRET.as_bytes(), athlete)
    }

    fn real_ids(&self) -> [&str; 3] {
        [&self.a1, &self.a2, &self.b1]
    }

    async fn registry(&self) -> RegistryClient<Channel> {
        RegistryClient::new(self.channel().await)
    }
    async fn query(&self) -> QueryClient<Channel> {
        QueryClient::new(self.channel().await)
    }
    async fn access(&self) -> AccessClient<Channel> {
        AccessClient::new(self.channel().await)
    }
    async fn analytics(&self) -> AnalyticsServiceClient<Channel> {
        AnalyticsServiceClient::new(self.channel().await)
    }
    async fn alerts(&self) -> AlertServiceClient<Channel> {
        AlertServiceClient::new(self.channel().await)
    }
}

fn set<I: IntoIterator<Item = S>, S: Into<String>>(i: I) -> BTreeSet<String> {
    i.into_iter().map(Into::into).collect()
}

fn rep(gym: &str, athlete: &str, start_us: i64, event: bool) -> RepRecord {
    RepRecord {
        rep_id: format!("{athlete}-{start_us}"),
        gym_id: gym.into(),
        athlete_id: athlete.into(),
        set_id: format!("{athlete}-sess-s1"),
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
        session_id: format!("{athlete}-sess"),
        model_version: 1,
        ..Default::default()
    }
}

fn reps_got(reps: Vec<RepRecord>) -> Got {
    Got::Rows {
        athletes: reps.iter().map(|r| r.athlete_id.clone()).collect(),
        texts: reps
            .iter()
            .flat_map(|r| {
                [
                    r.athlete_id.clone(),
                    r.rep_id.clone(),
                    r.set_id.clone(),
                    r.session_id.clone(),
                ]
            })
            .collect(),
    }
}

fn athletes_got(a: Vec<Athlete>) -> Got {
    Got::Rows {
        athletes: a.iter().map(|a| a.athlete_id.clone()).collect(),
        texts: a
            .iter()
            .flat_map(|a| {
                [
                    a.athlete_id.clone(),
                    a.external_ref.clone(),
                    a.display_name.clone(),
                ]
            })
            .collect(),
    }
}

/// Starts PostgreSQL-backed api + the fixture: gym-a (a1, a2), gym-b (b1), reps with and
/// without events and kinematics for all three, sensors, clinicians, grants and tokens.
async fn setup(db: &PgTestDb) -> Ctx {
    let store = Store::connect(db.url(), StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let registry = prometheus::Registry::new();
    let svc = ApiService::new(
        ApiConfig {
            operator_token: Some(OPERATOR.into()),
            pseudonym_secret: Some(SECRET.into()),
            ..ApiConfig::default()
        },
        store.clone(),
        &registry,
    );
    // Every user-facing service of the api role: Registry, Query, Access, Analytics and
    // the alert service.
    let stop = tokio_util::sync::CancellationToken::new();
    let bus = liftguard_bus::Bus::embedded(liftguard_bus::EmbeddedConfig::default());
    let alert_api = liftguard_api::alerts::AlertApi::start(
        svc.clone(),
        liftguard_api::alerts::AlertsConfig::default(),
        bus.producer().unwrap(),
        &registry,
        stop.clone(),
    )
    .await
    .unwrap();
    let mut builder = tonic::service::RoutesBuilder::default();
    let mut names: Vec<&'static str> = svc.add_to(&mut builder).to_vec();
    names.push(alert_api.add_to(&mut builder));
    add_health_and_reflection(&mut builder, &names)
        .await
        .unwrap();
    let routes = builder.routes();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _keep = (bus, alert_api);
        let _ = Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled_owned())
            .await;
    });

    let ga = GymId::parse("gym-a").unwrap();
    let gb = GymId::parse("gym-b").unwrap();
    store.create_gym("gym-a", "Gym A").await.unwrap();
    store.create_gym("gym-b", "Gym B").await.unwrap();
    let gym_key = store.issue_api_key(&ga, "matrix").await.unwrap().secret;
    let enroll = |gym: GymId, ext: &'static str| {
        let store = store.clone();
        async move {
            store
                .enroll_athlete(
                    &gym,
                    &Athlete {
                        external_ref: ext.into(),
                        display_name: format!("Name {ext}"),
                        height_m: 1.8,
                        mass_kg: 80.0,
                        birth_year: 1990,
                        sex: "f".into(),
                        sport: "crossfit".into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .athlete_id
        }
    };
    let a1 = enroll(ga.clone(), "m-a1").await;
    let a2 = enroll(ga.clone(), "m-a2").await;
    let b1 = enroll(gb.clone(), "m-b1").await;
    let mut reps = Vec::new();
    for (gym, a) in [("gym-a", &a1), ("gym-a", &a2), ("gym-b", &b1)] {
        reps.push(rep(gym, a, T0, true));
        reps.push(rep(gym, a, T0 + DAY, false));
        store
            .upsert_kinematics(&[KinematicsChunk {
                gym_id: gym.into(),
                athlete_id: a.clone(),
                first_time_us: T0,
                rate_hz: 25.0,
                lumbar_flexion_deg: (0..50).map(|i| i as f32).collect(),
                trunk_inclination_deg: vec![],
                pelvis_inclination_deg: vec![],
            }])
            .await
            .unwrap();
    }
    store.upsert_reps(&reps).await.unwrap();
    let alerts: Vec<AlertRecord> = [("gym-a", &a1), ("gym-a", &a2), ("gym-b", &b1)]
        .into_iter()
        .map(|(gym, a)| AlertRecord {
            alert_id: format!("{a}-1-{T0}"),
            gym_id: gym.into(),
            athlete_id: a.clone(),
            session_id: format!("{a}-sess"),
            kind: 1,
            severity: 2,
            time_us: T0,
            title: "events".into(),
            ..Default::default()
        })
        .collect();
    store.upsert_alerts(&alerts).await.unwrap();
    for (i, a) in [&a1, &a2].into_iter().enumerate() {
        store
            .register_sensor(
                &ga,
                &liftguard_model::SensorId::parse(format!("AA:00:00:00:00:0{i}")).unwrap(),
                &AthleteId::parse(a.as_str()).unwrap(),
                Placement::Thoracolumbar,
            )
            .await
            .unwrap();
    }

    for c in [
        "c-consent",
        "c-pseudo",
        "c-revoked",
        "c-none",
        "c-dummy",
        "c-dummy2",
    ] {
        store.create_clinician(Some(c), c).await.unwrap();
    }
    let a1_id = AthleteId::parse(a1.as_str()).unwrap();
    store
        .grant_consent("c-consent", &ga, None, true, "test")
        .await
        .unwrap();
    store
        .grant_consent("c-pseudo", &ga, Some(&a1_id), false, "test")
        .await
        .unwrap();
    let g = store
        .grant_consent("c-revoked", &ga, None, true, "test")
        .await
        .unwrap();
    assert!(store.revoke_consent(&g.grant_id, "test").await.unwrap());

    let far = T0 * 2;
    let issue = |s: TokenSubject| {
        let store = store.clone();
        async move { store.issue_token(&s, "matrix", far, "test").await.unwrap() }
    };
    let admin = issue(TokenSubject::GymAdmin(ga.clone())).await;
    let coach = issue(TokenSubject::Coach(ga.clone())).await;
    let cc = issue(TokenSubject::Clinician("c-consent".into())).await;
    let cp = issue(TokenSubject::Clinician("c-pseudo".into())).await;
    let cr = issue(TokenSubject::Clinician("c-revoked".into())).await;
    let cn = issue(TokenSubject::Clinician("c-none".into())).await;
    let ta1 = issue(TokenSubject::Athlete(ga.clone(), a1_id.clone())).await;
    let tb1 = issue(TokenSubject::Athlete(
        gb.clone(),
        AthleteId::parse(b1.as_str()).unwrap(),
    ))
    .await;
    let expired = issue(TokenSubject::Athlete(ga.clone(), a1_id.clone())).await;
    // Move the expiry into the past (the store refuses to issue an expired token).
    sqlx::query(
        "UPDATE access_tokens SET expires_at = now() - interval '1 hour' WHERE token_id = $1",
    )
    .bind(&expired.token.token_id)
    .execute(store.pg_pool().unwrap())
    .await
    .unwrap();
    let revoked = issue(TokenSubject::Coach(ga.clone())).await;
    assert!(store.revoke_token(&revoked.token.token_id).await.unwrap());

    let creds = BTreeMap::from([
        (Role::Operator, OPERATOR.to_owned()),
        (Role::GymKey, gym_key),
        (Role::GymAdmin, admin.secret.clone()),
        (Role::Coach, coach.secret.clone()),
        (Role::ClinConsent, cc.secret.clone()),
        (Role::ClinPseudo, cp.secret.clone()),
        (Role::ClinRevoked, cr.secret.clone()),
        (Role::ClinNone, cn.secret.clone()),
        (Role::AthleteA1, ta1.secret.clone()),
        (Role::AthleteB1, tb1.secret.clone()),
        (Role::Expired, expired.secret.clone()),
        (Role::Revoked, revoked.secret.clone()),
    ]);
    let who = BTreeMap::from([
        (Role::Operator, "operator".to_owned()),
        (Role::GymKey, "API key of gym `gym-a`".to_owned()),
        (Role::GymAdmin, admin.token.token_id.clone()),
        (Role::Coach, coach.token.token_id.clone()),
        (Role::ClinConsent, cc.token.token_id.clone()),
        (Role::ClinPseudo, cp.token.token_id.clone()),
        (Role::ClinRevoked, cr.token.token_id.clone()),
        (Role::ClinNone, cn.token.token_id.clone()),
        (Role::AthleteA1, ta1.token.token_id.clone()),
        (Role::AthleteB1, tb1.token.token_id.clone()),
        (Role::Expired, expired.token.token_id.clone()),
        (Role::Revoked, revoked.token.token_id.clone()),
    ]);
    Ctx {
        addr,
        store,
        a1,
        a2,
        b1,
        creds,
        who,
        _server: server,
    }
}

// ---------------------------------------------------------------------------------------
// Calls

fn list_reps_call(
    c: &Ctx,
    r: Role,
    target: Target,
    events: bool,
) -> BoxFuture<'_, Result<Got, Status>> {
    Box::pin(async move {
        let mut q = c.query().await;
        let req = c.req(
            r,
            ListRepsRequest {
                scope: Some(target),
                range: None,
                limit: 0,
                page_token: String::new(),
            },
        );
        let resp = if events {
            q.list_events(req).await?
        } else {
            q.list_reps(req).await?
        };
        Ok(reps_got(resp.into_inner().reps))
    })
}

fn trace_call(c: &Ctx, r: Role, athlete: String) -> BoxFuture<'_, Result<Got, Status>> {
    Box::pin(async move {
        let pts = c
            .query()
            .await
            .get_lumbar_trace(c.req(
                r,
                LumbarTraceRequest {
                    athlete_id: athlete.clone(),
                    range: Some(TimeRange {
                        from_us: T0,
                        to_us: T0 + 3_600_000_000,
                    }),
                },
            ))
            .await?
            .into_inner()
            .points;
        Ok(Got::Rows {
            athletes: if pts.is_empty() {
                BTreeSet::new()
            } else {
                set([athlete])
            },
            texts: vec![],
        })
    })
}

fn list_athletes_call<'a>(
    c: &'a Ctx,
    r: Role,
    gym: &'static str,
) -> BoxFuture<'a, Result<Got, Status>> {
    Box::pin(async move {
        let a = c
            .registry()
            .await
            .list_athletes(c.req(r, ListAthletesRequest { gym_id: gym.into() }))
            .await?
            .into_inner()
            .athletes;
        Ok(athletes_got(a))
    })
}

fn issue_token_call<'a>(
    c: &'a Ctx,
    r: Role,
    role: WireRole,
    gym: &'static str,
    clinician: &'static str,
) -> BoxFuture<'a, Result<Got, Status>> {
    Box::pin(async move {
        let t = c
            .access()
            .await
            .issue_token(c.req(
                r,
                IssueTokenRequest {
                    role: role as i32,
                    gym_id: gym.into(),
                    athlete_id: String::new(),
                    clinician_id: clinician.into(),
                    label: "matrix".into(),
                    ttl_s: 3600,
                },
            ))
            .await?
            .into_inner();
        assert!(t.secret.starts_with("lgt_"));
        Ok(Got::Done(vec![]))
    })
}

fn audit_call<'a>(c: &'a Ctx, r: Role, gym: &'static str) -> BoxFuture<'a, Result<Got, Status>> {
    Box::pin(async move {
        let e = c
            .access()
            .await
            .query_audit_log(c.req(
                r,
                QueryAuditLogRequest {
                    gym_id: gym.into(),
                    range: None,
                    limit: 100,
                    page_token: String::new(),
                },
            ))
            .await?
            .into_inner()
            .entries;
        Ok(Got::Done(e.into_iter().map(|e| e.gym_id).collect()))
    })
}

fn count_got(n: u64) -> Got {
    Got::Rows {
        athletes: set([format!("{n} reps")]),
        texts: vec![],
    }
}

fn trends_call<'a>(c: &'a Ctx, r: Role, gym: &'static str) -> BoxFuture<'a, Result<Got, Status>> {
    Box::pin(async move {
        let rows = c
            .analytics()
            .await
            .population_trends(c.req(
                r,
                PopulationTrendsRequest {
                    filter: Some(PopulationFilter {
                        gym_ids: vec![gym.into()],
                        ..Default::default()
                    }),
                    group_by: vec![],
                },
            ))
            .await?
            .into_inner()
            .rows;
        Ok(count_got(rows.iter().map(|r| u64::from(r.reps)).sum()))
    })
}

fn history_call(c: &Ctx, r: Role, athlete: String) -> BoxFuture<'_, Result<Got, Status>> {
    Box::pin(async move {
        let h = c
            .analytics()
            .await
            .athlete_history(c.req(
                r,
                AthleteHistoryRequest {
                    athlete_id: athlete,
                    range: None,
                    include_reps: true,
                    trace_range: None,
                },
            ))
            .await?
            .into_inner();
        let Got::Rows {
            mut athletes,
            mut texts,
        } = reps_got(h.reps)
        else {
            unreachable!()
        };
        let who = h.athlete.unwrap_or_default();
        athletes.insert(who.athlete_id.clone());
        texts.extend([who.athlete_id, who.external_ref, who.display_name]);
        texts.extend(h.sessions.into_iter().map(|s| s.session_id));
        Ok(Got::Rows { athletes, texts })
    })
}

/// Maps a rows expectation onto a count of reps (two per visible athlete).
fn as_rep_count(e: Expect) -> Expect {
    match e {
        Expect::Rows(a) => Expect::Rows(set([format!("{} reps", 2 * a.len())])),
        other => other,
    }
}

/// Alerts and risk name athletes: a clinician without identity is refused outright.
fn no_pseudonyms(r: Role, e: Expect) -> Expect {
    match r {
        Role::ClinPseudo => denied(["sees pseudonymised data only"]),
        _ => e,
    }
}

// ---------------------------------------------------------------------------------------
// Expectations shared by columns

fn unauth(r: Role) -> Option<Expect> {
    match r {
        Role::Expired => Some(Expect::Unauth("expired at")),
        Role::Revoked => Some(Expect::Unauth("was revoked at")),
        _ => None,
    }
}

fn denied<const N: usize>(parts: [&str; N]) -> Expect {
    Expect::Denied(parts.iter().map(|s| (*s).to_owned()).collect())
}

/// Reads addressed to all of gym-a (ListReps/ListEvents/ListAthletes gym-a).
fn gym_a_read(c: &Ctx, r: Role) -> Expect {
    if let Some(e) = unauth(r) {
        return e;
    }
    match r {
        Role::Operator | Role::GymKey | Role::GymAdmin | Role::Coach | Role::ClinConsent => {
            Expect::Rows(set([c.a1.as_str(), c.a2.as_str()]))
        }
        Role::ClinPseudo => Expect::Rows(set([c.p(&c.a1)])),
        Role::AthleteA1 => Expect::Rows(set([c.a1.as_str()])),
        Role::ClinRevoked | Role::ClinNone => denied(["no active consent grant", "`gym-a`"]),
        Role::AthleteB1 => denied(["may not read gym `gym-a`"]),
        Role::Expired | Role::Revoked => unreachable!(),
    }
}

/// Reads addressed to all of gym-b: the cross-gym column.
fn gym_b_read(c: &Ctx, r: Role) -> Expect {
    if let Some(e) = unauth(r) {
        return e;
    }
    match r {
        Role::Operator | Role::AthleteB1 => Expect::Rows(set([c.b1.as_str()])),
        Role::GymKey | Role::GymAdmin | Role::Coach => denied(["may not access gym `gym-b`"]),
        Role::ClinConsent | Role::ClinPseudo | Role::ClinRevoked | Role::ClinNone => {
            denied(["no active consent grant", "`gym-b`"])
        }
        Role::AthleteA1 => denied(["may not read gym `gym-b`"]),
        Role::Expired | Role::Revoked => unreachable!(),
    }
}

/// Reads of athlete a1 (ListReps athlete, GetLumbarTrace).
fn a1_read(c: &Ctx, r: Role) -> Expect {
    if let Some(e) = unauth(r) {
        return e;
    }
    match r {
        Role::Operator
        | Role::GymKey
        | Role::GymAdmin
        | Role::Coach
        | Role::ClinConsent
        | Role::AthleteA1 => Expect::Rows(set([c.a1.as_str()])),
        Role::ClinPseudo => Expect::Rows(set([c.p(&c.a1)])),
        Role::ClinRevoked | Role::ClinNone => Expect::Denied(vec![
            "no active consent grant".into(),
            format!("athlete `{}`", c.a1),
        ]),
        Role::AthleteB1 => Expect::Denied(vec![format!("not athlete `{}`", c.a1)]),
        Role::Expired | Role::Revoked => unreachable!(),
    }
}

/// Reads of athlete b1 of gym-b (cross-gym for everyone of gym-a).
fn b1_read(c: &Ctx, r: Role) -> Expect {
    if let Some(e) = unauth(r) {
        return e;
    }
    match r {
        Role::Operator | Role::AthleteB1 => Expect::Rows(set([c.b1.as_str()])),
        Role::GymKey | Role::GymAdmin | Role::Coach => Expect::Denied(vec![format!(
            "may not access athlete `{}` of gym `gym-b`",
            c.b1
        )]),
        Role::ClinConsent | Role::ClinRevoked | Role::ClinNone => Expect::Denied(vec![
            "no active consent grant".into(),
            format!("athlete `{}`", c.b1),
        ]),
        Role::ClinPseudo => Expect::Denied(vec![
            "no active consent grant".into(),
            format!("athlete `{}`", c.p(&c.b1)),
        ]),
        Role::AthleteA1 => Expect::Denied(vec![format!("not athlete `{}`", c.b1)]),
        Role::Expired | Role::Revoked => unreachable!(),
    }
}

/// Administration of gym-a (operator, its key, its admin).
fn gym_a_admin(r: Role, what: &'static str) -> Expect {
    if let Some(e) = unauth(r) {
        return e;
    }
    match r {
        Role::Operator | Role::GymKey | Role::GymAdmin => Expect::Ok(|_, _, _| Ok(())),
        _ => denied([what, "gym `gym-a`"]),
    }
}

fn operator_only(r: Role, what: &'static str) -> Expect {
    if let Some(e) = unauth(r) {
        return e;
    }
    match r {
        Role::Operator => Expect::Ok(|_, _, _| Ok(())),
        _ => denied([what, "requires the operator"]),
    }
}

// ---------------------------------------------------------------------------------------
// The columns

fn columns() -> Vec<Column> {
    vec![
        Column {
            name: "Query.ListReps gym-a",
            call: |c, r| list_reps_call(c, r, Target::GymId("gym-a".into()), false),
            expect: gym_a_read,
        },
        Column {
            name: "Query.ListEvents gym-a",
            call: |c, r| list_reps_call(c, r, Target::GymId("gym-a".into()), true),
            expect: gym_a_read,
        },
        Column {
            name: "Query.ListReps gym-b (cross-gym)",
            call: |c, r| list_reps_call(c, r, Target::GymId("gym-b".into()), false),
            expect: gym_b_read,
        },
        Column {
            name: "Query.ListReps athlete a1",
            call: |c, r| list_reps_call(c, r, Target::AthleteId(c.name(r, &c.a1)), false),
            expect: a1_read,
        },
        Column {
            name: "Query.ListEvents athlete b1 (cross-gym)",
            call: |c, r| list_reps_call(c, r, Target::AthleteId(c.name(r, &c.b1)), true),
            expect: b1_read,
        },
        Column {
            name: "Query.GetLumbarTrace a1",
            call: |c, r| trace_call(c, r, c.name(r, &c.a1)),
            expect: a1_read,
        },
        Column {
            name: "Query.GetLumbarTrace b1 (cross-gym)",
            call: |c, r| trace_call(c, r, c.name(r, &c.b1)),
            expect: b1_read,
        },
        Column {
            name: "Registry.ListAthletes gym-a",
            call: |c, r| list_athletes_call(c, r, "gym-a"),
            expect: gym_a_read,
        },
        Column {
            name: "Registry.ListAthletes gym-b (cross-gym)",
            call: |c, r| list_athletes_call(c, r, "gym-b"),
            expect: gym_b_read,
        },
        Column {
            name: "Registry.ListSensors gym-a",
            call: |c, r| {
                Box::pin(async move {
                    let s = c
                        .registry()
                        .await
                        .list_sensors(c.req(
                            r,
                            ListSensorsRequest {
                                gym_id: "gym-a".into(),
                            },
                        ))
                        .await?
                        .into_inner()
                        .sensors;
                    Ok(Got::Rows {
                        athletes: s.iter().map(|s| s.athlete_id.clone()).collect(),
                        texts: vec![],
                    })
                })
            },
            expect: |c, r| match r {
                Role::ClinConsent | Role::ClinPseudo | Role::ClinRevoked | Role::ClinNone => {
                    denied(["ListSensors", "gym `gym-a`"])
                }
                _ => gym_a_read(c, r),
            },
        },
        Column {
            name: "Registry.EnrollAthlete gym-a (update a2)",
            call: |c, r| {
                Box::pin(async move {
                    c.registry()
                        .await
                        .enroll_athlete(c.req(
                            r,
                            EnrollAthleteRequest {
                                gym_id: "gym-a".into(),
                                athlete: Some(Athlete {
                                    external_ref: "m-a2".into(),
                                    display_name: "Name m-a2".into(),
                                    height_m: 1.8,
                                    mass_kg: 80.0,
                                    birth_year: 1990,
                                    sex: "f".into(),
                                    sport: "crossfit".into(),
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await?;
                    Ok(Got::Done(vec![]))
                })
            },
            expect: |_, r| gym_a_admin(r, "EnrollAthlete"),
        },
        Column {
            name: "Registry.IssueApiKey gym-b (cross-gym)",
            call: |c, r| {
                Box::pin(async move {
                    c.registry()
                        .await
                        .issue_api_key(c.req(
                            r,
                            IssueApiKeyRequest {
                                gym_id: "gym-b".into(),
                                label: "matrix".into(),
                            },
                        ))
                        .await?;
                    Ok(Got::Done(vec![]))
                })
            },
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator => Expect::Ok(|_, _, _| Ok(())),
                    _ => denied(["IssueApiKey", "gym `gym-b`"]),
                }
            },
        },
        Column {
            name: "Access.IssueToken coach gym-a",
            call: |c, r| issue_token_call(c, r, WireRole::Coach, "gym-a", ""),
            expect: |_, r| gym_a_admin(r, "issuing a coach token"),
        },
        Column {
            name: "Access.IssueToken gym-admin gym-a",
            call: |c, r| issue_token_call(c, r, WireRole::GymAdmin, "gym-a", ""),
            expect: |_, r| operator_only(r, "issuing a gym admin token"),
        },
        Column {
            name: "Access.IssueToken clinician",
            call: |c, r| issue_token_call(c, r, WireRole::Clinician, "", "c-dummy"),
            expect: |_, r| operator_only(r, "issuing a clinician token"),
        },
        Column {
            name: "Access.RevokeToken (a fresh coach token of gym-a)",
            call: |c, r| {
                Box::pin(async move {
                    let t = c
                        .store
                        .issue_token(
                            &TokenSubject::Coach(GymId::parse("gym-a").unwrap()),
                            "victim",
                            T0 * 2,
                            "test",
                        )
                        .await
                        .unwrap();
                    let revoked = c
                        .access()
                        .await
                        .revoke_token(c.req(
                            r,
                            RevokeTokenRequest {
                                token_id: t.token.token_id.clone(),
                            },
                        ))
                        .await?
                        .into_inner()
                        .revoked;
                    assert!(revoked);
                    Ok(Got::Done(vec![]))
                })
            },
            expect: |_, r| gym_a_admin(r, "revoking token"),
        },
        Column {
            name: "Access.ListTokens gym-a",
            call: |c, r| {
                Box::pin(async move {
                    let t = c
                        .access()
                        .await
                        .list_tokens(c.req(
                            r,
                            ListTokensRequest {
                                gym_id: "gym-a".into(),
                                clinician_id: String::new(),
                                include_revoked: true,
                            },
                        ))
                        .await?
                        .into_inner()
                        .tokens;
                    Ok(Got::Done(
                        t.iter()
                            .flat_map(|t| [t.gym_id.clone(), format!("{t:?}")])
                            .collect(),
                    ))
                })
            },
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator | Role::GymKey | Role::GymAdmin => Expect::Ok(|_, _, got| {
                        let texts = got.texts();
                        if texts.is_empty() {
                            return Err("no tokens listed".into());
                        }
                        if texts.iter().any(|t| t.contains("lgt_")) {
                            return Err("a token secret was listed".into());
                        }
                        if texts.iter().step_by(2).any(|g| g != "gym-a") {
                            return Err(format!("tokens of another gym: {texts:?}"));
                        }
                        Ok(())
                    }),
                    _ => denied(["listing tokens"]),
                }
            },
        },
        Column {
            name: "Access.CreateClinician",
            call: |c, r| {
                Box::pin(async move {
                    c.access()
                        .await
                        .create_clinician(c.req(
                            r,
                            CreateClinicianRequest {
                                clinician_id: "c-new".into(),
                                name: "New".into(),
                            },
                        ))
                        .await?;
                    Ok(Got::Done(vec![]))
                })
            },
            expect: |_, r| operator_only(r, "CreateClinician"),
        },
        Column {
            name: "Access.ListClinicians",
            call: |c, r| {
                Box::pin(async move {
                    let l = c
                        .access()
                        .await
                        .list_clinicians(c.req(r, ListCliniciansRequest {}))
                        .await?
                        .into_inner()
                        .clinicians;
                    Ok(Got::Done(l.into_iter().map(|c| c.clinician_id).collect()))
                })
            },
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator | Role::GymKey | Role::GymAdmin => Expect::Ok(|_, _, _| Ok(())),
                    _ => denied(["ListClinicians"]),
                }
            },
        },
        Column {
            name: "Access.GrantConsent whole gym-a",
            call: |c, r| {
                Box::pin(async move {
                    let g = c
                        .access()
                        .await
                        .grant_consent(c.req(
                            r,
                            GrantConsentRequest {
                                clinician_id: "c-dummy".into(),
                                gym_id: "gym-a".into(),
                                athlete_id: String::new(),
                                include_identity: false,
                            },
                        ))
                        .await?
                        .into_inner();
                    Ok(Got::Grants(vec![g]))
                })
            },
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator | Role::GymKey | Role::GymAdmin => Expect::Ok(|_, _, _| Ok(())),
                    Role::AthleteA1 | Role::AthleteB1 => {
                        denied(["whole-gym consent for gym `gym-a`", "gym's admin"])
                    }
                    _ => denied(["granting consent for gym `gym-a`"]),
                }
            },
        },
        Column {
            name: "Access.GrantConsent athlete a1",
            call: |c, r| {
                Box::pin(async move {
                    let g = c
                        .access()
                        .await
                        .grant_consent(c.req(
                            r,
                            GrantConsentRequest {
                                clinician_id: "c-dummy".into(),
                                gym_id: "gym-a".into(),
                                athlete_id: c.a1.clone(),
                                include_identity: true,
                            },
                        ))
                        .await?
                        .into_inner();
                    Ok(Got::Grants(vec![g]))
                })
            },
            expect: |c, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator | Role::AthleteA1 => Expect::Ok(|_, _, _| Ok(())),
                    Role::GymKey | Role::GymAdmin => Expect::Denied(vec![
                        format!("consent for athlete `{}`", c.a1),
                        "given by the athlete".into(),
                    ]),
                    Role::AthleteB1 => {
                        Expect::Denied(vec![format!("only for itself, not for athlete `{}`", c.a1)])
                    }
                    _ => denied(["granting consent for gym `gym-a`"]),
                }
            },
        },
        Column {
            name: "Access.RevokeConsent (a fresh grant of a1)",
            call: |c, r| {
                Box::pin(async move {
                    let g = c
                        .store
                        .grant_consent(
                            "c-dummy2",
                            &GymId::parse("gym-a").unwrap(),
                            Some(&AthleteId::parse(c.a1.as_str()).unwrap()),
                            false,
                            "test",
                        )
                        .await
                        .unwrap();
                    let revoked = c
                        .access()
                        .await
                        .revoke_consent(c.req(
                            r,
                            RevokeConsentRequest {
                                grant_id: g.grant_id.clone(),
                            },
                        ))
                        .await;
                    // Leave no active grant behind for the next row.
                    let _ = c.store.revoke_consent(&g.grant_id, "test").await;
                    assert!(revoked?.into_inner().revoked);
                    Ok(Got::Done(vec![]))
                })
            },
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator | Role::GymKey | Role::GymAdmin | Role::AthleteA1 => {
                        Expect::Ok(|_, _, _| Ok(()))
                    }
                    Role::AthleteB1 => denied(["may revoke only its own grants"]),
                    _ => denied(["revoking consent grant", "gym `gym-a`"]),
                }
            },
        },
        Column {
            name: "Access.ListGrants",
            call: |c, r| {
                Box::pin(async move {
                    let g = c
                        .access()
                        .await
                        .list_grants(c.req(r, ListGrantsRequest::default()))
                        .await?
                        .into_inner()
                        .grants;
                    Ok(Got::Grants(g))
                })
            },
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Coach => denied(["listing consent grants"]),
                    _ => Expect::Ok(|c, r, got| {
                        let Got::Grants(gs) = got else {
                            return Err("not grants".into());
                        };
                        let ok = |g: &ConsentGrant| match r {
                            Role::Operator => true,
                            Role::GymKey | Role::GymAdmin => g.gym_id == "gym-a",
                            Role::AthleteA1 => {
                                g.gym_id == "gym-a"
                                    && (g.athlete_id.is_empty() || g.athlete_id == c.a1)
                            }
                            Role::AthleteB1 => g.gym_id == "gym-b",
                            Role::ClinConsent => g.clinician_id == "c-consent",
                            Role::ClinPseudo => {
                                g.clinician_id == "c-pseudo" && g.athlete_id == c.p(&c.a1)
                            }
                            Role::ClinRevoked => g.clinician_id == "c-revoked",
                            Role::ClinNone => false,
                            _ => false,
                        };
                        if let Some(bad) = gs.iter().find(|g| !ok(g)) {
                            return Err(format!("out-of-scope grant listed: {bad:?}"));
                        }
                        let expect_some =
                            !matches!(r, Role::ClinNone | Role::ClinRevoked | Role::AthleteB1);
                        if expect_some == gs.is_empty() {
                            return Err(format!("expected some grants: {expect_some}, got {gs:?}"));
                        }
                        Ok(())
                    }),
                }
            },
        },
        Column {
            name: "Access.QueryAuditLog gym-a",
            call: |c, r| audit_call(c, r, "gym-a"),
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator | Role::GymKey | Role::GymAdmin => Expect::Ok(|_, _, got| {
                        let g = got.texts();
                        if g.is_empty() || g.iter().any(|g| g != "gym-a") {
                            return Err(format!("audit rows of other gyms: {g:?}"));
                        }
                        Ok(())
                    }),
                    Role::Coach => denied(["reading the audit log", "gym `gym-a`"]),
                    _ => denied(["audit log"]),
                }
            },
        },
        Column {
            name: "Access.QueryAuditLog gym-b (cross-gym)",
            call: |c, r| audit_call(c, r, "gym-b"),
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                match r {
                    Role::Operator => Expect::Ok(|_, _, _| Ok(())),
                    _ => denied(["reading the audit log", "gym `gym-b`"]),
                }
            },
        },
        Column {
            name: "Analytics.PopulationTrends gym-a",
            call: |c, r| trends_call(c, r, "gym-a"),
            expect: |c, r| as_rep_count(gym_a_read(c, r)),
        },
        Column {
            name: "Analytics.PopulationTrends gym-b (cross-gym)",
            call: |c, r| trends_call(c, r, "gym-b"),
            expect: |c, r| as_rep_count(gym_b_read(c, r)),
        },
        Column {
            name: "Analytics.AthleteHistory a1",
            call: |c, r| history_call(c, r, c.name(r, &c.a1)),
            expect: a1_read,
        },
        Column {
            name: "Analytics.AthleteHistory b1 (cross-gym)",
            call: |c, r| history_call(c, r, c.name(r, &c.b1)),
            expect: b1_read,
        },
        Column {
            name: "Analytics.ExportReps gym-a (CSV)",
            call: |c, r| {
                Box::pin(async move {
                    let mut stream = c
                        .analytics()
                        .await
                        .export_reps(c.req(
                            r,
                            ExportRepsRequest {
                                filter: Some(PopulationFilter {
                                    gym_ids: vec!["gym-a".into()],
                                    ..Default::default()
                                }),
                                format: ExportFormat::Csv as i32,
                            },
                        ))
                        .await?
                        .into_inner();
                    let (mut rows, mut bytes) = (0, Vec::new());
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk?;
                        rows += chunk.rows;
                        bytes.extend(chunk.data);
                    }
                    let Got::Rows { athletes, .. } = count_got(rows) else {
                        unreachable!()
                    };
                    Ok(Got::Rows {
                        athletes,
                        texts: vec![String::from_utf8_lossy(&bytes).into_owned()],
                    })
                })
            },
            expect: |c, r| as_rep_count(gym_a_read(c, r)),
        },
        Column {
            name: "AlertService.ListAlerts gym-a",
            call: |c, r| {
                Box::pin(async move {
                    let a = c
                        .alerts()
                        .await
                        .list_alerts(c.req(
                            r,
                            ListAlertsRequest {
                                gym_id: "gym-a".into(),
                                ..Default::default()
                            },
                        ))
                        .await?
                        .into_inner()
                        .alerts;
                    Ok(Got::Rows {
                        athletes: a
                            .iter()
                            .filter_map(|e| e.alert.as_ref())
                            .map(|a| a.athlete_id.clone())
                            .collect(),
                        texts: vec![],
                    })
                })
            },
            expect: |c, r| no_pseudonyms(r, gym_a_read(c, r)),
        },
        Column {
            name: "AlertService.GetRisk a1",
            call: |c, r| {
                Box::pin(async move {
                    c.alerts()
                        .await
                        .get_risk(c.req(
                            r,
                            GetRiskRequest {
                                athlete_id: c.name(r, &c.a1),
                                ..Default::default()
                            },
                        ))
                        .await?;
                    Ok(Got::Done(vec![]))
                })
            },
            expect: |c, r| {
                no_pseudonyms(
                    r,
                    match a1_read(c, r) {
                        Expect::Rows(_) => Expect::Ok(|_, _, _| Ok(())),
                        other => other,
                    },
                )
            },
        },
        Column {
            name: "Access.WhoAmI",
            call: |c, r| {
                Box::pin(async move {
                    let w = c
                        .access()
                        .await
                        .who_am_i(c.req(r, WhoAmIRequest {}))
                        .await?
                        .into_inner();
                    let mut texts = vec![w.role.clone()];
                    texts.extend(w.athlete_ids.iter().cloned());
                    Ok(Got::Done(texts))
                })
            },
            expect: |_, r| {
                if let Some(e) = unauth(r) {
                    return e;
                }
                Expect::Ok(|c, r, got| {
                    let t = got.texts();
                    let role = match r {
                        Role::Operator => "operator",
                        Role::GymKey => "gym_key",
                        Role::GymAdmin => "gym_admin",
                        Role::Coach => "coach",
                        Role::AthleteA1 | Role::AthleteB1 => "athlete",
                        _ => "clinician",
                    };
                    if t[0] != role {
                        return Err(format!("role {} instead of {role}", t[0]));
                    }
                    if r == Role::ClinPseudo && t[1..] != [c.p(&c.a1)] {
                        return Err(format!("scope athletes {:?}", &t[1..]));
                    }
                    Ok(())
                })
            },
        },
    ]
}

/// Checks one cell; returns a description of the failure.
fn check(c: &Ctx, col: &Column, r: Role, got: &Result<Got, Status>) -> Result<(), String> {
    let fail = |m: String| Err(format!("{} × {r:?}: {m}; got {got:?}", col.name));
    match ((col.expect)(c, r), got) {
        (Expect::Rows(want), Ok(Got::Rows { athletes, .. })) if *athletes == want => {}
        (Expect::Rows(want), _) => return fail(format!("want OK with rows of {want:?}")),
        (Expect::Ok(f), Ok(g)) => f(c, r, g).or_else(&fail)?,
        (Expect::Ok(_), Err(_)) => return fail("want OK".into()),
        (Expect::Denied(parts), Err(s)) if s.code() == Code::PermissionDenied => {
            for p in parts.iter().chain([&c.who[&r]]) {
                if !s.message().contains(p.as_str()) {
                    return fail(format!("denial must mention {p:?}"));
                }
            }
        }
        (Expect::Denied(parts), _) => return fail(format!("want PERMISSION_DENIED {parts:?}")),
        (Expect::Unauth(part), Err(s))
            if s.code() == Code::Unauthenticated
                && s.message().contains(part)
                && s.message().contains(c.who[&r].as_str()) => {}
        (Expect::Unauth(part), _) => return fail(format!("want UNAUTHENTICATED {part:?}")),
    }
    // Without identity, no real athlete id anywhere in a response or a refusal.
    if r == Role::ClinPseudo {
        let mut texts = got.as_ref().map(Got::texts).unwrap_or_default();
        if let Err(s) = got {
            texts.push(s.message().to_owned());
        }
        for real in c.real_ids() {
            if texts.iter().any(|t| t.contains(real)) {
                return fail(format!("real id {real} leaked to a pseudonymous clinician"));
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_role_against_every_rpc() {
    let db = PgTestDb::create().await.unwrap();
    let c = setup(&db).await;
    let cols = columns();
    let mut failures = Vec::new();
    let mut audited = 0usize;
    let mut denied_cells = 0usize;
    for &r in ROLES {
        for col in &cols {
            let got = (col.call)(&c, r).await;
            if let Err(e) = check(&c, col, r, &got) {
                failures.push(e);
            }
            if !matches!(r, Role::Expired | Role::Revoked) {
                audited += 1;
            }
            if matches!(&got, Err(s) if s.code() == Code::PermissionDenied) {
                denied_cells += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells wrong:\n{}",
        failures.len(),
        ROLES.len() * cols.len(),
        failures.join("\n")
    );

    // Audit: one row per authenticated cell (unauthenticated calls have no principal),
    // with its status; refusals keep their message.
    let all = c
        .store
        .query_audit(None, 0, i64::MAX, 10_000, None)
        .await
        .unwrap()
        .entries;
    assert_eq!(all.len(), audited, "one audit row per authenticated call");
    assert_eq!(
        all.iter()
            .filter(|e| e.status == "PERMISSION_DENIED")
            .count(),
        denied_cells
    );
    let none_reads: Vec<_> = all
        .iter()
        .filter(|e| e.actor == "clinician:c-none" && e.action == "Query.ListReps")
        .collect();
    assert_eq!(
        none_reads
            .iter()
            .map(|e| e.gym_id.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["", "gym-a", "gym-b"]),
        "the refused reads of c-none are audited with the gym they addressed: {none_reads:?}"
    );
    for e in none_reads {
        assert_eq!(e.status, "PERMISSION_DENIED");
        assert_eq!(e.role, "clinician");
        assert_eq!(e.token_id, c.who[&Role::ClinNone]);
        assert!(e.detail.contains("no active consent grant"), "{e:?}");
        assert_eq!(e.result_count, -1);
    }
    let pseudo_read = all
        .iter()
        .find(|e| {
            e.actor == "clinician:c-pseudo"
                && e.action == "Query.ListReps"
                && e.params.contains("athlete_id")
        })
        .expect("the clinician's athlete read is audited");
    assert_eq!(pseudo_read.status, "OK");
    assert_eq!(pseudo_read.result_count, 2, "{pseudo_read:?}");
    assert!(pseudo_read.params.contains(&c.p(&c.a1)), "{pseudo_read:?}");

    drop(c);
    db.drop().await.unwrap();
}

/// Deterministic xorshift for the property test (fixed seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn bearer<T>(secret: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    req
}

/// Property: whatever sequence of grants and revocations (whole gym by the gym admin,
/// per athlete by the athletes themselves), the clinician's very next call sees exactly
/// what the active grants cover — reads of each athlete and of the gym.
#[tokio::test]
async fn consent_revocation_takes_effect_on_the_next_call() {
    let db = PgTestDb::create().await.unwrap();
    let c = setup(&db).await;
    let ga = GymId::parse("gym-a").unwrap();
    c.store
        .create_clinician(Some("c-prop"), "Prop")
        .await
        .unwrap();
    let clin = c
        .store
        .issue_token(&TokenSubject::Clinician("c-prop".into()), "p", T0 * 2, "t")
        .await
        .unwrap()
        .secret;
    let a2_token = c
        .store
        .issue_token(
            &TokenSubject::Athlete(ga.clone(), AthleteId::parse(c.a2.as_str()).unwrap()),
            "p",
            T0 * 2,
            "t",
        )
        .await
        .unwrap()
        .secret;
    let admin = c.creds[&Role::GymAdmin].clone();
    let a1_token = c.creds[&Role::AthleteA1].clone();
    let mut access = c.access().await;
    let mut query = c.query().await;

    // The model: is there an active grant of the whole gym / of a1 / of a2, and its id.
    let mut active: [Option<String>; 3] = [None, None, None];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for step in 0..60 {
        let which = rng.next(3) as usize;
        let (who, athlete) = match which {
            0 => (&admin, String::new()),
            1 => (&a1_token, c.a1.clone()),
            _ => (&a2_token, c.a2.clone()),
        };
        match active[which].take() {
            None => {
                let g = access
                    .grant_consent(bearer(
                        who,
                        GrantConsentRequest {
                            clinician_id: "c-prop".into(),
                            gym_id: "gym-a".into(),
                            athlete_id: athlete,
                            include_identity: true,
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                active[which] = Some(g.grant_id);
            }
            Some(grant_id) => {
                let r = access
                    .revoke_consent(bearer(who, RevokeConsentRequest { grant_id }))
                    .await
                    .unwrap()
                    .into_inner();
                assert!(r.revoked);
            }
        }
        let sees_a1 = active[0].is_some() || active[1].is_some();
        let sees_a2 = active[0].is_some() || active[2].is_some();
        for (athlete, visible) in [(&c.a1, sees_a1), (&c.a2, sees_a2)] {
            let r = query
                .list_reps(bearer(
                    &clin,
                    ListRepsRequest {
                        scope: Some(Target::AthleteId(athlete.clone())),
                        ..Default::default()
                    },
                ))
                .await;
            match (visible, r) {
                (true, Ok(resp)) => assert_eq!(resp.into_inner().reps.len(), 2, "step {step}"),
                (false, Err(s)) => {
                    assert_eq!(s.code(), Code::PermissionDenied, "step {step}: {s:?}");
                    assert!(s.message().contains(athlete.as_str()), "step {step}: {s:?}");
                }
                (v, r) => panic!("step {step}: visible {v}, got {r:?} (model {active:?})"),
            }
        }
        let gym = query
            .list_reps(bearer(
                &clin,
                ListRepsRequest {
                    scope: Some(Target::GymId("gym-a".into())),
                    ..Default::default()
                },
            ))
            .await;
        let want: BTreeSet<String> = [(sees_a1, &c.a1), (sees_a2, &c.a2)]
            .into_iter()
            .filter(|(v, _)| *v)
            .map(|(_, a)| a.clone())
            .collect();
        match gym {
            Ok(resp) => {
                let got: BTreeSet<String> = resp
                    .into_inner()
                    .reps
                    .into_iter()
                    .map(|r| r.athlete_id)
                    .collect();
                assert!(
                    !want.is_empty(),
                    "step {step}: gym read allowed without grants"
                );
                assert_eq!(got, want, "step {step}");
            }
            Err(s) => {
                assert!(want.is_empty(), "step {step}: {s:?}");
                assert_eq!(s.code(), Code::PermissionDenied);
            }
        }
    }
    drop(c);
    db.drop().await.unwrap();
}
