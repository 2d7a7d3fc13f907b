//! The api role: the `liftguard.v1.Registry` and `liftguard.v1.Query` gRPC services over
//! the [`Store`], plus the route helpers that add gRPC health and server reflection.
//!
//! Invariants:
//! - Every call is authenticated (`authorization: Bearer <token>`): the operator token
//!   may do everything; a gym API key acts on its own gym only. A request naming another
//!   gym, or an athlete of another gym, fails with `PERMISSION_DENIED`; `CreateGym` is
//!   operator-only.
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

use liftguard_model::{ErrorKind, GymId};
use liftguard_proto::v1::{
    Athlete, CreateGymRequest, CreateGymResponse, EnrollAthleteRequest, IssueApiKeyRequest,
    IssueApiKeyResponse, ListAthletesRequest, ListAthletesResponse, ListRepsRequest,
    ListRepsResponse, ListSensorsRequest, ListSensorsResponse, LumbarPoint, LumbarTraceRequest,
    LumbarTraceResponse, RegisterSensorRequest, RevokeApiKeyRequest, RevokeApiKeyResponse, Sensor,
    list_reps_request,
    query_server::{Query, QueryServer},
    registry_server::{Registry, RegistryServer},
};
use liftguard_runtime::{
    auth::{self, Principal},
    metrics::{LATENCY_BUCKETS, counter_vec, histogram_vec},
    status,
};
use liftguard_store::{RepCursor, RepQuery, Scope, Store, StoreError};
use prometheus::{HistogramVec, IntCounterVec};
use serde::Deserialize;
use tonic::{
    Request, Response, Status, metadata::MetadataMap, server::NamedService, service::RoutesBuilder,
};

pub mod validate;

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
            .finish()
    }
}

#[derive(Clone)]
struct Metrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
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

fn store_status(e: StoreError) -> Status {
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

    /// Adds Registry and Query to `builder`; returns their names (for health/reflection).
    pub fn add_to(&self, builder: &mut RoutesBuilder) -> [&'static str; 2] {
        builder
            .add_service(self.registry_server())
            .add_service(self.query_server());
        [REGISTRY_SERVICE_NAME, QUERY_SERVICE_NAME]
    }

    async fn principal(&self, meta: &MetadataMap) -> Result<Principal, Status> {
        auth::authenticate(
            meta,
            &self.inner.store,
            self.inner.cfg.operator_token.as_deref(),
        )
        .await
    }

    fn observe<T>(&self, method: &str, started: Instant, r: &Result<T, Status>) {
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

    /// Resolves the scope of a reps query and checks the caller may see it.
    async fn rep_scope(
        &self,
        p: &Principal,
        scope: Option<list_reps_request::Scope>,
    ) -> Result<Scope, Status> {
        match scope {
            None => Err(validate::invalid(
                "scope",
                "required: set athlete_id or gym_id",
            )),
            Some(list_reps_request::Scope::GymId(g)) => {
                let gym = validate::gym_id("gym_id", &g)?;
                p.check_gym(&gym)?;
                Ok(Scope::Gym(gym))
            }
            Some(list_reps_request::Scope::AthleteId(a)) => {
                let athlete = self.visible_athlete(p, "athlete_id", &a).await?;
                Ok(Scope::Athlete(athlete))
            }
        }
    }

    /// Parses an athlete id and checks that it exists and the caller may see it.
    async fn visible_athlete(
        &self,
        p: &Principal,
        field: &str,
        raw: &str,
    ) -> Result<liftguard_model::AthleteId, Status> {
        let id = validate::athlete_id(field, raw)?;
        let athlete = self
            .inner
            .store
            .get_athlete(&id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| {
                status(
                    ErrorKind::NotFound,
                    format!("athlete `{id}` does not exist"),
                )
            })?;
        let gym = GymId::parse(athlete.gym_id.as_str()).map_err(|e| {
            status(
                ErrorKind::Internal,
                format!("stored athlete has a bad gym id: {e}"),
            )
        })?;
        p.check_gym(&gym)?;
        Ok(id)
    }

    async fn list_reps_impl(
        &self,
        request: Request<ListRepsRequest>,
        events_only: bool,
    ) -> Result<Response<ListRepsResponse>, Status> {
        let p = self.principal(request.metadata()).await?;
        let req = request.into_inner();
        let (from_us, to_us) = validate::range("range", req.range, false)?;
        let cfg = &self.inner.cfg;
        let limit = validate::limit(
            "limit",
            req.limit,
            cfg.default_page_limit,
            cfg.max_page_limit,
        )?;
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(RepCursor::decode(&req.page_token).map_err(|_| {
                validate::invalid("page_token", "not a token returned by ListReps/ListEvents")
            })?)
        };
        let scope = self.rep_scope(&p, req.scope).await?;
        let page = self
            .inner
            .store
            .list_reps(&RepQuery {
                scope,
                from_us,
                to_us,
                events_only,
                limit,
                after,
            })
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListRepsResponse {
            reps: page.reps,
            next_page_token: page.next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }
}

fn code_label(c: tonic::Code) -> &'static str {
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

#[tonic::async_trait]
impl Registry for ApiService {
    async fn create_gym(
        &self,
        request: Request<CreateGymRequest>,
    ) -> Result<Response<CreateGymResponse>, Status> {
        observed!(
            self,
            "CreateGym",
            async {
                let p = self.principal(request.metadata()).await?;
                p.require_operator("CreateGym")?;
                let req = request.into_inner();
                let gym_id = validate::slug("slug", &req.slug)?;
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
                Ok(Response::new(resp))
            }
            .await
        )
    }

    async fn enroll_athlete(
        &self,
        request: Request<EnrollAthleteRequest>,
    ) -> Result<Response<Athlete>, Status> {
        observed!(
            self,
            "EnrollAthlete",
            async {
                let p = self.principal(request.metadata()).await?;
                let req = request.into_inner();
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                p.check_gym(&gym)?;
                let athlete = validate::athlete(&gym, req.athlete)?;
                let stored = self
                    .inner
                    .store
                    .enroll_athlete(&gym, &athlete)
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(stored))
            }
            .await
        )
    }

    async fn register_sensor(
        &self,
        request: Request<RegisterSensorRequest>,
    ) -> Result<Response<Sensor>, Status> {
        observed!(
            self,
            "RegisterSensor",
            async {
                let p = self.principal(request.metadata()).await?;
                let req = request.into_inner();
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                let sensor = validate::sensor_id("sensor_id", &req.sensor_id)?;
                let athlete = validate::athlete_id("athlete_id", &req.athlete_id)?;
                let placement = validate::placement("placement", req.placement)?;
                p.check_gym(&gym)?;
                let s = self
                    .inner
                    .store
                    .register_sensor(&gym, &sensor, &athlete, placement)
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(s))
            }
            .await
        )
    }

    async fn issue_api_key(
        &self,
        request: Request<IssueApiKeyRequest>,
    ) -> Result<Response<IssueApiKeyResponse>, Status> {
        observed!(
            self,
            "IssueApiKey",
            async {
                let p = self.principal(request.metadata()).await?;
                let req = request.into_inner();
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                let label = validate::text("label", &req.label, 100, false)?;
                p.check_gym(&gym)?;
                let key = self
                    .inner
                    .store
                    .issue_api_key(&gym, label)
                    .await
                    .map_err(store_status)?;
                tracing::info!(gym = %gym, key_id = %key.key_id, by = p.label(), "api key issued");
                Ok(Response::new(IssueApiKeyResponse {
                    api_key_id: key.key_id,
                    api_key: key.secret,
                }))
            }
            .await
        )
    }

    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        observed!(
            self,
            "RevokeApiKey",
            async {
                let p = self.principal(request.metadata()).await?;
                let req = request.into_inner();
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                let key_id = validate::text("api_key_id", &req.api_key_id, 64, true)?;
                p.check_gym(&gym)?;
                let revoked = self
                    .inner
                    .store
                    .revoke_api_key(&gym, key_id)
                    .await
                    .map_err(store_status)?;
                tracing::info!(gym = %gym, key_id, revoked, by = p.label(), "api key revocation");
                Ok(Response::new(RevokeApiKeyResponse { revoked }))
            }
            .await
        )
    }

    async fn list_athletes(
        &self,
        request: Request<ListAthletesRequest>,
    ) -> Result<Response<ListAthletesResponse>, Status> {
        observed!(
            self,
            "ListAthletes",
            async {
                let p = self.principal(request.metadata()).await?;
                let gym = validate::gym_id("gym_id", &request.get_ref().gym_id)?;
                p.check_gym(&gym)?;
                let athletes = self
                    .inner
                    .store
                    .list_athletes(&gym)
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(ListAthletesResponse { athletes }))
            }
            .await
        )
    }

    async fn list_sensors(
        &self,
        request: Request<ListSensorsRequest>,
    ) -> Result<Response<ListSensorsResponse>, Status> {
        observed!(
            self,
            "ListSensors",
            async {
                let p = self.principal(request.metadata()).await?;
                let gym = validate::gym_id("gym_id", &request.get_ref().gym_id)?;
                p.check_gym(&gym)?;
                let sensors = self
                    .inner
                    .store
                    .list_sensors(&gym)
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(ListSensorsResponse { sensors }))
            }
            .await
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
        observed!(self, "GetLumbarTrace", async {
            let p = self.principal(request.metadata()).await?;
            let req = request.into_inner();
            let (from_us, to_us) = validate::range("range", req.range, true)?;
            let cfg = &self.inner.cfg;
            let max_span_us = i64::try_from(cfg.max_trace_span_ms.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            let span = i128::from(to_us) - i128::from(from_us);
            if span > i128::from(max_span_us) {
                return Err(validate::invalid(
                    "range",
                    format!(
                        "spans {span} µs; at most {max_span_us} µs per call (page through longer ranges)"
                    ),
                ));
            }
            let athlete = self.visible_athlete(&p, "athlete_id", &req.athlete_id).await?;
            let points = self
                .inner
                .store
                .lumbar_trace(&athlete, from_us, to_us)
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
            Ok(Response::new(LumbarTraceResponse {
                points: points
                    .into_iter()
                    .map(|(t_us, lumbar_flexion_deg)| LumbarPoint {
                        t_us,
                        lumbar_flexion_deg,
                    })
                    .collect(),
            }))
        }
        .await)
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
