//! The api role: the `liftguard.v1.Registry`, `liftguard.v1.Query`, `liftguard.v1.Access`
//! and `liftguard.v1.AnalyticsService` ([`analytics`]) gRPC services over the [`Store`],
//! plus the route helpers that add gRPC health and server reflection.
//!
//! Invariants:
//! - Every call is authenticated (`authorization: Bearer <token>`) with
//!   [`auth::authenticate_user`]: the operator token may do everything; a gym API key and a
//!   gym admin token administer their gym; a coach token reads its gym; an athlete token
//!   reads its own data; a clinician token reads what active consent grants cover. A
//!   request outside that fails with `PERMISSION_DENIED` naming the caller and what was
//!   refused; `CreateGym` is operator-only.
//! - Reads resolve the caller's [`Scope`] on every call and pass it into the store query's
//!   SQL (never filtering afterwards); callers without identity get pseudonyms
//!   ([`access`]). Every authenticated call writes an audit row.
//! - Every request field is validated before the store is called ([`validate`]): a bad
//!   slug, id, placement, range, limit or page token is `INVALID_ARGUMENT` naming the
//!   field and the rule.
//! - Store failures keep their kind (`NOT_FOUND`, `ALREADY_EXISTS`, `UNAVAILABLE`, ...);
//!   internal errors are logged and answered without details.
//! - Responses are bounded: pages of at most `max_page_limit` reps; lumbar traces of at
//!   most `max_trace_span_ms` and `max_trace_points`.
//! - Metrics: `liftguard_api_requests_total{method,code}` and
//!   `liftguard_api_request_seconds{method}`.

use std::{fmt, sync::Arc, time::Instant};

use liftguard_model::ErrorKind;
use liftguard_proto::v1::{
    Athlete, CreateGymRequest, CreateGymResponse, EnrollAthleteRequest, IssueApiKeyRequest,
    IssueApiKeyResponse, ListAthletesRequest, ListAthletesResponse, ListRepsRequest,
    ListRepsResponse, ListSensorsRequest, ListSensorsResponse, LumbarPoint, LumbarTraceRequest,
    LumbarTraceResponse, RegisterSensorRequest, RevokeApiKeyRequest, RevokeApiKeyResponse, Sensor,
    access_server::AccessServer,
    list_reps_request,
    query_server::{Query, QueryServer},
    registry_server::{Registry, RegistryServer},
};
use liftguard_runtime::{
    auth::{self, Principal},
    metrics::{LATENCY_BUCKETS, counter_vec, histogram_vec},
    status,
};
use liftguard_store::{RepCursor, RepQuery, RepTarget, Store, StoreError};
use prometheus::{HistogramVec, IntCounterVec};
use serde::Deserialize;
use tonic::{
    Request, Response, Status, metadata::MetadataMap, server::NamedService, service::RoutesBuilder,
};

pub mod access;
pub mod alerts;
pub mod analytics;
pub mod dashboard;
pub mod validate;
pub mod webhooks;

pub use access::{Audit, Caller};
pub use analytics::ANALYTICS_SERVICE_NAME;

/// Configuration of the api role.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The operator token; `None` or empty disables operator access.
    pub operator_token: Option<String>,
    /// Page size when the request says 0.
    pub default_page_limit: u32,
    /// Largest page size a request may ask for.
    pub max_page_limit: u32,
    /// Longest range of one GetLumbarTrace call.
    pub max_trace_span_ms: u64,
    /// Most points one GetLumbarTrace response carries (else OUT_OF_RANGE: ask for less).
    pub max_trace_points: usize,
    /// Largest encoded request accepted.
    pub max_request_bytes: usize,
    /// Largest encoded response sent.
    pub max_response_bytes: usize,
    /// Key of the athlete pseudonyms shown to clinicians without an identity grant
    /// (HMAC-SHA256; keep it stable for the deployment, at least 32 random characters).
    /// Without it, pseudonymised results are refused (FAILED_PRECONDITION).
    pub pseudonym_secret: Option<String>,
    /// Lifetime of an access token when IssueToken says 0, seconds.
    pub token_default_ttl_s: u64,
    /// Longest lifetime IssueToken grants, seconds.
    pub token_max_ttl_s: u64,
    /// `[api.alerts]`: the alert stream (AlertService).
    pub alerts: alerts::AlertsConfig,
    /// `[api.webhooks]`: the webhook dispatcher.
    pub webhooks: webhooks::WebhookConfig,
    /// `[api.dashboard]`: the clinicians' dashboard over HTTP ([`dashboard`]).
    pub dashboard: dashboard::DashboardConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            operator_token: None,
            default_page_limit: 1000,
            max_page_limit: 10_000,
            max_trace_span_ms: 3_600_000,
            max_trace_points: 200_000,
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 32 * 1024 * 1024,
            pseudonym_secret: None,
            token_default_ttl_s: 30 * 24 * 3600,
            token_max_ttl_s: 365 * 24 * 3600,
            alerts: alerts::AlertsConfig::default(),
            webhooks: webhooks::WebhookConfig::default(),
            dashboard: dashboard::DashboardConfig::default(),
        }
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "<redacted>"),
            )
            .field("default_page_limit", &self.default_page_limit)
            .field("max_page_limit", &self.max_page_limit)
            .field("max_trace_span_ms", &self.max_trace_span_ms)
            .field("max_trace_points", &self.max_trace_points)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_response_bytes", &self.max_response_bytes)
            .field(
                "pseudonym_secret",
                &self.pseudonym_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("token_default_ttl_s", &self.token_default_ttl_s)
            .field("token_max_ttl_s", &self.token_max_ttl_s)
            .field("alerts", &self.alerts)
            .field("webhooks", &self.webhooks)
            .field("dashboard", &self.dashboard)
            .finish()
    }
}

#[derive(Clone)]
struct Metrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
    audit_failures: prometheus::IntCounter,
}

struct Inner {
    cfg: ApiConfig,
    store: Store,
    metrics: Metrics,
}

/// Implements both `Registry` and `Query`. Cheap to clone.
#[derive(Clone)]
pub struct ApiService {
    inner: Arc<Inner>,
}

/// The fully qualified gRPC names of the services this crate serves.
pub const REGISTRY_SERVICE_NAME: &str = <RegistryServer<ApiService> as NamedService>::NAME;
pub const QUERY_SERVICE_NAME: &str = <QueryServer<ApiService> as NamedService>::NAME;
pub const ACCESS_SERVICE_NAME: &str = <AccessServer<ApiService> as NamedService>::NAME;

pub(crate) fn store_status(e: StoreError) -> Status {
    match e.kind() {
        ErrorKind::Internal => {
            tracing::error!(error = %e, "store failure");
            status(ErrorKind::Internal, "internal error (logged on the server)")
        }
        kind => status(kind, e.to_string()),
    }
}

impl ApiService {
    /// Registers the role's metrics (`liftguard_api_*`) into `registry`.
    pub fn new(cfg: ApiConfig, store: Store, registry: &prometheus::Registry) -> Self {
        let metrics = Metrics {
            requests: counter_vec(
                registry,
                "liftguard_api_requests_total",
                "gRPC requests of the api role, by method and status code.",
                &["method", "code"],
            ),
            seconds: histogram_vec(
                registry,
                "liftguard_api_request_seconds",
                "Handling time of api requests, by method.",
                &["method"],
                LATENCY_BUCKETS,
            ),
            audit_failures: liftguard_runtime::metrics::counter(
                registry,
                "liftguard_api_audit_failures_total",
                "Audit rows that could not be written (the call's result was withheld).",
            ),
        };
        Self {
            inner: Arc::new(Inner {
                cfg,
                store,
                metrics,
            }),
        }
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.cfg
    }

    pub fn registry_server(&self) -> RegistryServer<ApiService> {
        RegistryServer::new(self.clone())
            .max_decoding_message_size(self.inner.cfg.max_request_bytes)
            .max_encoding_message_size(self.inner.cfg.max_response_bytes)
    }

    pub fn query_server(&self) -> QueryServer<ApiService> {
        QueryServer::new(self.clone())
            .max_decoding_message_size(self.inner.cfg.max_request_bytes)
            .max_encoding_message_size(self.inner.cfg.max_response_bytes)
    }

    pub fn access_server(&self) -> AccessServer<ApiService> {
        AccessServer::new(self.clone())
            .max_decoding_message_size(self.inner.cfg.max_request_bytes)
            .max_encoding_message_size(self.inner.cfg.max_response_bytes)
    }

    /// Adds Registry, Query, Access and AnalyticsService to `builder`; returns their
    /// names (for health/reflection).
    pub fn add_to(&self, builder: &mut RoutesBuilder) -> [&'static str; 4] {
        builder
            .add_service(self.registry_server())
            .add_service(self.query_server())
            .add_service(self.access_server())
            .add_service(self.analytics_server());
        [
            REGISTRY_SERVICE_NAME,
            QUERY_SERVICE_NAME,
            ACCESS_SERVICE_NAME,
            ANALYTICS_SERVICE_NAME,
        ]
    }

    /// The store this service reads.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Authenticates a call to a user-facing endpoint (every principal, see
    /// [`auth::authenticate_user`]).
    pub async fn principal(&self, meta: &MetadataMap) -> Result<Principal, Status> {
        auth::authenticate_user(
            meta,
            &self.inner.store,
            self.inner.cfg.operator_token.as_deref(),
        )
        .await
    }

    pub(crate) fn observe<T>(&self, method: &str, started: Instant, r: &Result<T, Status>) {
        let code = match r {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        let m = &self.inner.metrics;
        m.requests
            .with_label_values(&[method, code_label(code)])
            .inc();
        m.seconds
            .with_label_values(&[method])
            .observe(started.elapsed().as_secs_f64());
        if let Err(s) = r {
            tracing::debug!(method, code = ?s.code(), message = s.message(), "request failed");
        }
    }

    /// Resolves what a reps query asks for and checks the caller may see it; the rows
    /// are limited by the caller's scope in the store query as well.
    async fn rep_target(
        &self,
        c: &Caller,
        a: &mut Audit,
        target: Option<list_reps_request::Scope>,
    ) -> Result<RepTarget, Status> {
        match target {
            None => Err(validate::invalid(
                "scope",
                "required: set athlete_id or gym_id",
            )),
            Some(list_reps_request::Scope::GymId(g)) => {
                let gym = validate::gym_id("gym_id", &g)?;
                a.gym(&gym);
                c.principal.check_read_gym(&c.scope, &gym)?;
                Ok(RepTarget::Gym(gym))
            }
            Some(list_reps_request::Scope::AthleteId(raw)) => {
                a.param("athlete_id", &raw);
                let (gym, athlete) = self.resolve_athlete(c, "athlete_id", &raw).await?;
                a.gym(&gym);
                Ok(RepTarget::Athlete(athlete))
            }
        }
    }

    async fn list_reps_impl(
        &self,
        request: Request<ListRepsRequest>,
        events_only: bool,
    ) -> Result<Response<ListRepsResponse>, Status> {
        let p = self.principal(request.metadata()).await?;
        let mut a = Audit::new(if events_only {
            "Query.ListEvents"
        } else {
            "Query.ListReps"
        });
        let req = request.into_inner();
        let r = async {
            let (from_us, to_us) = validate::range("range", req.range, false)?;
            let cfg = &self.inner.cfg;
            let limit = validate::limit(
                "limit",
                req.limit,
                cfg.default_page_limit,
                cfg.max_page_limit,
            )?;
            if from_us != i64::MIN || to_us != i64::MAX {
                a.param("range", format!("[{from_us},{to_us})"));
            }
            a.param("limit", limit);
            let c = self.caller(p.clone()).await?;
            // Checked before the target so a bad token is INVALID_ARGUMENT whoever asks.
            if !req.page_token.is_empty() {
                RepCursor::decode(&req.page_token).map_err(|_| {
                    validate::invalid("page_token", "not a token returned by ListReps/ListEvents")
                })?;
            }
            let target = self.rep_target(&c, &mut a, req.scope).await?;
            let after = self.decode_cursor(&c, &req.page_token).await?;
            let key = self.presentation_key(&c.scope)?;
            let page = self
                .inner
                .store
                .list_reps(
                    &c.scope,
                    &RepQuery {
                        target,
                        from_us,
                        to_us,
                        events_only,
                        limit,
                        after,
                    },
                )
                .await
                .map_err(store_status)?;
            a.count(page.reps.len());
            let next_page_token = match &page.next {
                Some(cur) => self.encode_cursor(&c, cur)?,
                None => String::new(),
            };
            Ok(Response::new(ListRepsResponse {
                reps: page
                    .reps
                    .into_iter()
                    .map(|r| c.scope.present_rep(key, r))
                    .collect(),
                next_page_token,
            }))
        }
        .await;
        self.finish(&p, a, r).await
    }
}

pub(crate) fn code_label(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Runs a handler body and records its metrics.
macro_rules! observed {
    ($self:ident, $method:literal, $body:expr) => {{
        let started = Instant::now();
        let r = $body;
        $self.observe($method, started, &r);
        r
    }};
}

/// Runs an audited handler: authenticates, runs `$body` with the principal `$p` and the
/// audit row `$a`, writes the audit row.
macro_rules! audited {
    ($self:ident, $request:ident, $action:literal, |$p:ident, $a:ident, $req:ident| $body:block) => {
        async {
            let principal = $self.principal($request.metadata()).await?;
            let mut audit = Audit::new($action);
            let $req = $request.into_inner();
            let r: Result<_, Status> = {
                let $p = &principal;
                let $a = &mut audit;
                async { $body }.await
            };
            $self.finish(&principal, audit, r).await
        }
        .await
    };
}

#[tonic::async_trait]
impl Registry for ApiService {
    async fn create_gym(
        &self,
        request: Request<CreateGymRequest>,
    ) -> Result<Response<CreateGymResponse>, Status> {
        observed!(
            self,
            "CreateGym",
            audited!(self, request, "Registry.CreateGym", |p, a, req| {
                p.require_operator("CreateGym")?;
                let gym_id = validate::slug("slug", &req.slug)?;
                a.gym(&gym_id);
                let name = validate::text("name", &req.name, validate::MAX_TEXT, true)?;
                let store = &self.inner.store;
                let (gym, created) = store
                    .create_gym(gym_id.as_str(), name)
                    .await
                    .map_err(store_status)?;
                let mut resp = CreateGymResponse {
                    gym: Some(gym),
                    api_key: String::new(),
                    api_key_id: String::new(),
                };
                if created {
                    let key = store
                        .issue_api_key(&gym_id, "initial")
                        .await
                        .map_err(store_status)?;
                    resp.api_key = key.secret;
                    resp.api_key_id = key.key_id;
                    tracing::info!(gym = %gym_id, "gym created");
                }
                a.param("created", created);
                Ok(Response::new(resp))
            })
        )
    }

    async fn enroll_athlete(
        &self,
        request: Request<EnrollAthleteRequest>,
    ) -> Result<Response<Athlete>, Status> {
        observed!(
            self,
            "EnrollAthlete",
            audited!(self, request, "Registry.EnrollAthlete", |p, a, req| {
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                a.gym(&gym);
                p.check_gym_admin(&gym, "EnrollAthlete")?;
                let athlete = validate::athlete(&gym, req.athlete)?;
                let stored = self
                    .inner
                    .store
                    .enroll_athlete(&gym, &athlete)
                    .await
                    .map_err(store_status)?;
                a.param("athlete_id", &stored.athlete_id);
                Ok(Response::new(stored))
            })
        )
    }

    async fn register_sensor(
        &self,
        request: Request<RegisterSensorRequest>,
    ) -> Result<Response<Sensor>, Status> {
        observed!(
            self,
            "RegisterSensor",
            audited!(self, request, "Registry.RegisterSensor", |p, a, req| {
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                let sensor = validate::sensor_id("sensor_id", &req.sensor_id)?;
                let athlete = validate::athlete_id("athlete_id", &req.athlete_id)?;
                let placement = validate::placement("placement", req.placement)?;
                a.gym(&gym);
                a.param("sensor_id", &sensor);
                a.param("athlete_id", &athlete);
                p.check_gym_admin(&gym, "RegisterSensor")?;
                let s = self
                    .inner
                    .store
                    .register_sensor(&gym, &sensor, &athlete, placement)
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(s))
            })
        )
    }

    async fn issue_api_key(
        &self,
        request: Request<IssueApiKeyRequest>,
    ) -> Result<Response<IssueApiKeyResponse>, Status> {
        observed!(
            self,
            "IssueApiKey",
            audited!(self, request, "Registry.IssueApiKey", |p, a, req| {
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                let label = validate::text("label", &req.label, 100, false)?;
                a.gym(&gym);
                p.check_gym_admin(&gym, "IssueApiKey")?;
                let key = self
                    .inner
                    .store
                    .issue_api_key(&gym, label)
                    .await
                    .map_err(store_status)?;
                tracing::info!(gym = %gym, key_id = %key.key_id, by = p.label(), "api key issued");
                a.param("api_key_id", &key.key_id);
                Ok(Response::new(IssueApiKeyResponse {
                    api_key_id: key.key_id,
                    api_key: key.secret,
                }))
            })
        )
    }

    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        observed!(
            self,
            "RevokeApiKey",
            audited!(self, request, "Registry.RevokeApiKey", |p, a, req| {
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                let key_id = validate::text("api_key_id", &req.api_key_id, 64, true)?;
                a.gym(&gym);
                a.param("api_key_id", key_id);
                p.check_gym_admin(&gym, "RevokeApiKey")?;
                let revoked = self
                    .inner
                    .store
                    .revoke_api_key(&gym, key_id)
                    .await
                    .map_err(store_status)?;
                tracing::info!(gym = %gym, key_id, revoked, by = p.label(), "api key revocation");
                Ok(Response::new(RevokeApiKeyResponse { revoked }))
            })
        )
    }

    async fn list_athletes(
        &self,
        request: Request<ListAthletesRequest>,
    ) -> Result<Response<ListAthletesResponse>, Status> {
        observed!(
            self,
            "ListAthletes",
            audited!(self, request, "Registry.ListAthletes", |p, a, req| {
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                a.gym(&gym);
                let c = self.caller(p.clone()).await?;
                c.principal.check_read_gym(&c.scope, &gym)?;
                let key = self.presentation_key(&c.scope)?;
                let athletes = self
                    .inner
                    .store
                    .list_athletes(&c.scope, &gym)
                    .await
                    .map_err(store_status)?;
                a.count(athletes.len());
                Ok(Response::new(ListAthletesResponse {
                    athletes: athletes
                        .into_iter()
                        .map(|at| c.scope.present_athlete(key, at))
                        .collect(),
                }))
            })
        )
    }

    async fn list_sensors(
        &self,
        request: Request<ListSensorsRequest>,
    ) -> Result<Response<ListSensorsResponse>, Status> {
        observed!(
            self,
            "ListSensors",
            audited!(self, request, "Registry.ListSensors", |p, a, req| {
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                a.gym(&gym);
                if let Principal::Clinician { .. } = p {
                    // Sensors name the athlete wearing them: not for consent-based readers.
                    return Err(status(
                        ErrorKind::PermissionDenied,
                        format!(
                            "ListSensors is for the gym and its athletes; {} may not list the sensors of gym `{gym}`",
                            p.describe()
                        ),
                    ));
                }
                let c = self.caller(p.clone()).await?;
                c.principal.check_read_gym(&c.scope, &gym)?;
                let sensors = self
                    .inner
                    .store
                    .list_sensors(&c.scope, &gym)
                    .await
                    .map_err(store_status)?;
                a.count(sensors.len());
                Ok(Response::new(ListSensorsResponse { sensors }))
            })
        )
    }
}

#[tonic::async_trait]
impl Query for ApiService {
    async fn list_reps(
        &self,
        request: Request<ListRepsRequest>,
    ) -> Result<Response<ListRepsResponse>, Status> {
        observed!(self, "ListReps", self.list_reps_impl(request, false).await)
    }

    async fn list_events(
        &self,
        request: Request<ListRepsRequest>,
    ) -> Result<Response<ListRepsResponse>, Status> {
        observed!(self, "ListEvents", self.list_reps_impl(request, true).await)
    }

    async fn get_lumbar_trace(
        &self,
        request: Request<LumbarTraceRequest>,
    ) -> Result<Response<LumbarTraceResponse>, Status> {
        observed!(
            self,
            "GetLumbarTrace",
            audited!(self, request, "Query.GetLumbarTrace", |p, a, req| {
                let (from_us, to_us) = validate::range("range", req.range, true)?;
                a.param("athlete_id", &req.athlete_id);
                a.param("range", format!("[{from_us},{to_us})"));
                let cfg = &self.inner.cfg;
                let max_span_us =
                    i64::try_from(cfg.max_trace_span_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
                let span = i128::from(to_us) - i128::from(from_us);
                if span > i128::from(max_span_us) {
                    return Err(validate::invalid(
                        "range",
                        format!(
                            "spans {span} µs; at most {max_span_us} µs per call (page through longer ranges)"
                        ),
                    ));
                }
                let c = self.caller(p.clone()).await?;
                let (gym, athlete) = self
                    .resolve_athlete(&c, "athlete_id", &req.athlete_id)
                    .await?;
                a.gym(&gym);
                let points = self
                    .inner
                    .store
                    .lumbar_trace(&c.scope, &athlete, from_us, to_us)
                    .await
                    .map_err(store_status)?;
                if points.len() > cfg.max_trace_points {
                    return Err(status(
                        ErrorKind::OutOfRange,
                        format!(
                            "{} points in the range, more than {} per call; request a shorter range",
                            points.len(),
                            cfg.max_trace_points
                        ),
                    ));
                }
                a.count(points.len());
                Ok(Response::new(LumbarTraceResponse {
                    points: points
                        .into_iter()
                        .map(|(t_us, lumbar_flexion_deg)| LumbarPoint {
                            t_us,
                            lumbar_flexion_deg,
                        })
                        .collect(),
                }))
            })
        )
    }
}

pub use liftguard_runtime::grpc::{GrpcRoutes, RoutesError, add_health_and_reflection};

/// The api role's gRPC routes: Registry + Query + health + reflection.
///
/// All-in-one mode (ingest and api in one server): build one `RoutesBuilder`, add
/// `ingest.into_server()` and [`ApiService::add_to`], then call
/// [`add_health_and_reflection`] once with all three service names.
pub async fn api_routes(svc: &ApiService) -> Result<GrpcRoutes, RoutesError> {
    let mut builder = RoutesBuilder::default();
    let names = svc.add_to(&mut builder);
    let health = add_health_and_reflection(&mut builder, &names).await?;
    Ok(GrpcRoutes {
        routes: builder.routes(),
        health,
    })
}
