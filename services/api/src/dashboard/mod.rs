//! The clinicians' dashboard: a small single-page web app and the JSON API it reads,
//! served over HTTP by the api role on its own listener (`[api.dashboard] addr`, flag
//! `--dashboard-addr`; absent = not served).
//!
//! - `GET /dashboard/…`: the page (HTML, CSS and vanilla JS embedded in the binary with
//!   `include_str!`; SVG charts drawn in the browser; nothing loaded from elsewhere). The
//!   page itself holds no data: every path under `/dashboard/` returns the same shell,
//!   which asks for a bearer token (kept in the tab's `sessionStorage`) and reads the API.
//! - `GET /api/v1/…`: JSON (see [`router`] for the endpoints and their parameters).
//!
//! Invariants:
//! - Every API request is answered by the api role's own gRPC handlers, called in process
//!   with the request's `Authorization` header as their metadata: authentication
//!   (`auth::authenticate_user`), the caller's scope resolved from the database
//!   (`auth::scope`) and applied in the store's SQL, pseudonyms for callers without an
//!   identity grant, validation and the audit row (`Analytics.*`, `Query.*`,
//!   `Access.WhoAmI`) are theirs, so the dashboard can show nothing the gRPC API would
//!   not, and everything it reads is audited the same way.
//! - Errors are JSON `{"error": {"status", "code", "message"}}` with the HTTP status of the
//!   error's kind (401 unauthenticated, 403 not permitted, 404 unknown, 400 bad parameter,
//!   412 no pseudonym key, 503 unavailable); the message names the reason.
//! - Tokens travel only in the `Authorization` header, never in cookies or URLs: no
//!   cross-site request can carry them. Responses forbid framing and inline scripts
//!   (Content-Security-Policy), and API answers are never cached.
//! - Bounded: a session request spans at most `max_session_span_s` and returns at most
//!   `max_session_reps` reps; its trace is read in windows of the api's
//!   `max_trace_span_ms`; the trending table draws at most `max_sparklines` sparklines.
//! - Metrics: `liftguard_dashboard_requests_total{route,status}` and
//!   `liftguard_dashboard_request_seconds{route}`.

mod json;

use std::{net::SocketAddr, time::Instant};

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use liftguard_proto::v1::{
    AthleteHistoryRequest, ListRepsRequest, LumbarTraceRequest, PopulationFilter,
    PopulationTrendsRequest, TimeRange, TrendDimension, TrendingAthletesRequest, WhoAmIRequest,
    access_server::Access, analytics_service_server::AnalyticsService, list_reps_request,
    query_server::Query as QueryRpc,
};
use prometheus::{HistogramVec, IntCounterVec};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::{Status, metadata::MetadataMap};

use crate::ApiService;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// `[api.dashboard]`: the clinicians' dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Address of the dashboard's HTTP listener (e.g. `0.0.0.0:8080`); absent = the
    /// dashboard is not served. Overridden by `--dashboard-addr` /
    /// `LIFTGUARD_DASHBOARD_ADDR`.
    pub addr: Option<SocketAddr>,
    /// Longest time span of one session request (reps + lumbar trace), seconds.
    pub max_session_span_s: u64,
    /// Most reps one session request returns (`truncated` beyond).
    pub max_session_reps: usize,
    /// Most rows of the trending table that get a weekly sparkline.
    pub max_sparklines: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            addr: None,
            max_session_span_s: 4 * 3600,
            max_session_reps: 5_000,
            max_sparklines: 25,
        }
    }
}

/// Errors of the dashboard's listener.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot bind the dashboard on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("dashboard server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
struct Metrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
}

#[derive(Clone)]
struct Dash {
    svc: ApiService,
    cfg: DashboardConfig,
    metrics: Metrics,
}

/// The dashboard's routes (pages, assets and the JSON API), for [`bind`] or tests.
///
/// | route | answers with | parameters |
/// |---|---|---|
/// | `GET /api/v1/me` | who the token is and what it may read (`Access.WhoAmI`) | |
/// | `GET /api/v1/trends` | weekly population rows (`Analytics.PopulationTrends`) | filter¹, `group_by` (gym, exercise, age_band, sex, training_age_band, sport) |
/// | `GET /api/v1/trending` | athletes trending up, each with its weekly points (`Analytics.TrendingAthletes`, `Analytics.AthleteHistory`) | filter¹, `weeks`, `all`, `as_of` |
/// | `GET /api/v1/athletes/{id}` | one athlete: sessions, sets, weeks, alerts, risk, flare-ups (`Analytics.AthleteHistory`) | `from`, `to` |
/// | `GET /api/v1/athletes/{id}/reps` | the reps of a span with evidence, and its lumbar trace (`Query.ListReps`, `Query.GetLumbarTrace`) | `from`, `to` (required), `trace` |
///
/// ¹ filter: `gym`, `exercise`, `sex`, `sport`, `age_band`, `training_age_band` (each a
/// comma-separated list or repeated), `from`, `to` (`YYYY-MM-DD` UTC, `to` inclusive, or
/// µs since the epoch, `to` exclusive).
pub fn router(svc: ApiService, registry: &prometheus::Registry) -> Router {
    let metrics = Metrics {
        requests: liftguard_runtime::metrics::counter_vec(
            registry,
            "liftguard_dashboard_requests_total",
            "HTTP requests of the dashboard, by route and status.",
            &["route", "status"],
        ),
        seconds: liftguard_runtime::metrics::histogram_vec(
            registry,
            "liftguard_dashboard_request_seconds",
            "Handling time of dashboard requests, by route.",
            &["route"],
            liftguard_runtime::metrics::LATENCY_BUCKETS,
        ),
    };
    let cfg = svc.config().dashboard.clone();
    let dash = Dash { svc, cfg, metrics };
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard/") }))
        .route(
            "/dashboard",
            get(|| async { Redirect::temporary("/dashboard/") }),
        )
        .route("/dashboard/", get(page))
        .route("/dashboard/{*path}", get(page_or_asset))
        .route("/api/v1/me", get(me))
        .route("/api/v1/trends", get(trends))
        .route("/api/v1/trending", get(trending))
        .route("/api/v1/athletes/{id}", get(athlete))
        .route("/api/v1/athletes/{id}/reps", get(athlete_reps))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(dash)
        .layer(axum::middleware::map_response(security_headers))
}

/// Binds `addr` and returns the bound address plus a future serving until `stop` fires.
pub async fn bind(
    addr: SocketAddr,
    svc: ApiService,
    registry: &prometheus::Registry,
    stop: CancellationToken,
) -> Result<
    (
        SocketAddr,
        impl std::future::Future<Output = Result<(), DashboardError>> + Send + 'static,
    ),
    DashboardError,
> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DashboardError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| DashboardError::Bind { addr, source })?;
    let app = router(svc, registry);
    let fut = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .map_err(DashboardError::Serve)
    };
    Ok((local, fut))
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(uri: Uri, mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let cache = if uri.path().starts_with("/api/") {
        "no-store"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

// ----- errors -----------------------------------------------------------------------

/// An answer that is not a success: HTTP status, gRPC-style code label, reason.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_param(name: &str, reason: impl std::fmt::Display) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT",
            message: format!("parameter `{name}`: {reason}"),
        }
    }
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        use tonic::Code::*;
        let status = match s.code() {
            InvalidArgument | OutOfRange => StatusCode::BAD_REQUEST,
            Unauthenticated => StatusCode::UNAUTHORIZED,
            PermissionDenied => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            AlreadyExists | Aborted => StatusCode::CONFLICT,
            FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Ok | Cancelled | Unknown | Internal | DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            code: crate::code_label(s.code()),
            message: s.message().to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "status": self.status.as_u16(),
                "code": self.code,
                "message": self.message,
            }
        });
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"liftguard\""),
            );
        }
        r
    }
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: format!(
                "no endpoint `{}`; see /api/v1/me, /api/v1/trends, /api/v1/trending, \
                 /api/v1/athletes/{{id}}, /api/v1/athletes/{{id}}/reps",
                uri.path()
            ),
        }
        .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "not found; the dashboard is at /dashboard/\n",
        )
            .into_response()
    }
}

async fn method_not_allowed(uri: Uri) -> Response {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "METHOD_NOT_ALLOWED",
        message: format!("`{}` answers GET only", uri.path()),
    }
    .into_response()
}

// ----- pages ------------------------------------------------------------------------

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}

async fn page_or_asset(Path(path): Path<String>) -> Response {
    let (ct, body) = match path.as_str() {
        "assets/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "assets/app.css" => ("text/css; charset=utf-8", APP_CSS),
        "assets/favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        p if p.starts_with("assets/") => {
            return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
        }
        _ => return page().await,
    };
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

// ----- parameters -------------------------------------------------------------------

/// The query parameters of a request, checked against the names its route accepts.
struct Params(Vec<(String, String)>);

type RawParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

impl Params {
    fn parse(q: RawParams, allowed: &[&str]) -> Result<Params, ApiError> {
        let Query(pairs) = q.map_err(|e| ApiError::bad_param("query", e.body_text()))?;
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_param(
                    k,
                    format!("unknown; this endpoint accepts {}", allowed.join(", ")),
                ));
            }
        }
        Ok(Params(pairs))
    }

    /// Every value of `name` (repeated or comma-separated), trimmed, empty ones dropped.
    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The last value of `name`, when given and not empty.
    fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.one(name) {
            None => Ok(false),
            Some("1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(v) => Err(ApiError::bad_param(
                name,
                format!("{v:?} is not true or false"),
            )),
        }
    }

    fn u32(&self, name: &str) -> Result<u32, ApiError> {
        match self.one(name) {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad_param(name, format!("{v:?} is not a whole number"))),
        }
    }

    /// A time: `YYYY-MM-DD` (midnight UTC; `end_of_day` = the next midnight) or µs.
    fn time(&self, name: &str, end_of_day: bool) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.one(name) else {
            return Ok(None);
        };
        if let Ok(us) = v.parse::<i64>() {
            return Ok(Some(us));
        }
        let day = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_param(
                name,
                format!("{v:?} is neither a date YYYY-MM-DD nor µs since the epoch"),
            )
        })?;
        let day = if end_of_day {
            day.succ_opt()
                .ok_or_else(|| ApiError::bad_param(name, "date out of range"))?
        } else {
            day
        };
        Ok(day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros()))
    }

    /// `from`/`to` as a range (absent when neither is given).
    fn range(&self) -> Result<Option<TimeRange>, ApiError> {
        let from = self.time("from", false)?;
        let to = self.time("to", true)?;
        Ok(match (from, to) {
            (None, None) => None,
            (f, t) => Some(TimeRange {
                from_us: f.unwrap_or(i64::MIN),
                to_us: t.unwrap_or(i64::MAX),
            }),
        })
    }

    fn filter(&self) -> Result<PopulationFilter, ApiError> {
        let exercises = self
            .list("exercise")
            .iter()
            .map(|e| {
                liftguard_model::Exercise::parse(e)
                    .map(liftguard_model::Exercise::to_proto)
                    .ok_or_else(|| {
                        ApiError::bad_param(
                            "exercise",
                            format!("{e:?} is not deadlift, squat, kettlebell_swing or carry"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PopulationFilter {
            gym_ids: self.list("gym"),
            range: self.range()?,
            exercises,
            sexes: self.list("sex"),
            sports: self.list("sport"),
            age_bands: self.list("age_band"),
            training_age_bands: self.list("training_age_band"),
        })
    }
}

const FILTER: [&str; 8] = [
    "gym",
    "exercise",
    "sex",
    "sport",
    "age_band",
    "training_age_band",
    "from",
    "to",
];

fn dimension(name: &str) -> Result<TrendDimension, ApiError> {
    Ok(match name {
        "gym" => TrendDimension::Gym,
        "age_band" => TrendDimension::AgeBand,
        "sex" => TrendDimension::Sex,
        "training_age_band" => TrendDimension::TrainingAgeBand,
        "sport" => TrendDimension::Sport,
        "exercise" => TrendDimension::Exercise,
        other => {
            return Err(ApiError::bad_param(
                "group_by",
                format!(
                    "{other:?} is not one of gym, exercise, age_band, sex, training_age_band, sport"
                ),
            ));
        }
    })
}

// ----- handlers ---------------------------------------------------------------------

/// A gRPC request for the api's own handlers, carrying only the HTTP request's
/// `Authorization` header.
fn rpc<T>(headers: &HeaderMap, msg: T) -> tonic::Request<T> {
    let mut auth = HeaderMap::new();
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        auth.insert(header::AUTHORIZATION, v.clone());
    }
    let mut r = tonic::Request::new(msg);
    *r.metadata_mut() = MetadataMap::from_headers(auth);
    r
}

impl Dash {
    /// Runs a handler, answers JSON, records the metrics.
    async fn answer(
        &self,
        route: &'static str,
        f: impl std::future::Future<Output = Result<Value, ApiError>>,
    ) -> Response {
        let started = Instant::now();
        let r = f.await;
        let resp = match r {
            Ok(v) => Json(v).into_response(),
            Err(e) => {
                tracing::debug!(route, status = %e.status, message = e.message, "dashboard request refused");
                e.into_response()
            }
        };
        self.metrics
            .requests
            .with_label_values(&[route, resp.status().as_str()])
            .inc();
        self.metrics
            .seconds
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
        resp
    }
}

async fn me(State(d): State<Dash>, headers: HeaderMap, q: RawParams) -> Response {
    d.answer("me", async {
        Params::parse(q, &[])?;
        let w = Access::who_am_i(&d.svc, rpc(&headers, WhoAmIRequest {}))
            .await?
            .into_inner();
        Ok(json::who_am_i(&w))
    })
    .await
}

async fn trends(State(d): State<Dash>, headers: HeaderMap, q: RawParams) -> Response {
    d.answer("trends", async {
        let mut allowed = FILTER.to_vec();
        allowed.push("group_by");
        let p = Params::parse(q, &allowed)?;
        let group_by = p
            .list("group_by")
            .iter()
            .map(|g| dimension(g).map(|d| d as i32))
            .collect::<Result<Vec<_>, _>>()?;
        let r = AnalyticsService::population_trends(
            &d.svc,
            rpc(
                &headers,
                PopulationTrendsRequest {
                    filter: Some(p.filter()?),
                    group_by,
                },
            ),
        )
        .await?
        .into_inner();
        Ok(json!({
            "group_by": p.list("group_by"),
            "risk_available": r.risk_available,
            "rows": r.rows.iter().map(json::trend_row).collect::<Vec<_>>(),
        }))
    })
    .await
}

async fn trending(State(d): State<Dash>, headers: HeaderMap, q: RawParams) -> Response {
    d.answer("trending", async {
        let mut allowed = FILTER.to_vec();
        allowed.extend(["weeks", "all", "as_of"]);
        let p = Params::parse(q, &allowed)?;
        let r = AnalyticsService::trending_athletes(
            &d.svc,
            rpc(
                &headers,
                TrendingAthletesRequest {
                    filter: Some(p.filter()?),
                    as_of_us: p.time("as_of", true)?.map_or(0, |t| t - 1),
                    weeks: p.u32("weeks")?,
                    include_all: p.flag("all")?,
                    ..Default::default()
                },
            ),
        )
        .await?
        .into_inner();
        // Weekly points for the sparklines: each athlete's weeks in the window (the same
        // caller, so the same scope, pseudonyms and audit as any history request).
        let window = (r.window_end_us > r.window_start_us).then_some(TimeRange {
            from_us: r.window_start_us,
            to_us: r.window_end_us,
        });
        let mut athletes = Vec::with_capacity(r.athletes.len());
        for (i, a) in r.athletes.iter().enumerate() {
            let mut row = json::trending_athlete(a);
            let weeks = if i < d.cfg.max_sparklines && window.is_some() {
                let h = AnalyticsService::athlete_history(
                    &d.svc,
                    rpc(
                        &headers,
                        AthleteHistoryRequest {
                            athlete_id: a.athlete_id.clone(),
                            range: window,
                            include_reps: false,
                            trace_range: None,
                        },
                    ),
                )
                .await;
                match h {
                    Ok(h) => {
                        let h = h.into_inner();
                        // Callers with identity see the athlete's name (blank for pseudonyms).
                        if let Some(at) = &h.athlete
                            && !at.display_name.is_empty()
                        {
                            row.insert("display_name".to_owned(), json!(at.display_name));
                        }
                        Value::Array(h.weeks.iter().map(json::week_point).collect())
                    }
                    // A sparkline is an extra: the table stands without it (the refusal
                    // is audited like any other).
                    Err(e) => {
                        tracing::debug!(athlete = a.athlete_id, code = ?e.code(), message = e.message(), "no sparkline");
                        Value::Null
                    }
                }
            } else {
                Value::Null
            };
            row.insert("weeks".to_owned(), weeks);
            athletes.push(Value::Object(row));
        }
        Ok(json!({
            "window_start_us": r.window_start_us,
            "window_end_us": r.window_end_us,
            "risk_available": r.risk_available,
            "athletes": athletes,
        }))
    })
    .await
}

async fn athlete(
    State(d): State<Dash>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: RawParams,
) -> Response {
    d.answer("athlete", async {
        let p = Params::parse(q, &["from", "to"])?;
        let h = AnalyticsService::athlete_history(
            &d.svc,
            rpc(
                &headers,
                AthleteHistoryRequest {
                    athlete_id: id,
                    range: p.range()?,
                    include_reps: false,
                    trace_range: None,
                },
            ),
        )
        .await?
        .into_inner();
        Ok(json!({
            "athlete": h.athlete.as_ref().map(json::athlete),
            "sessions": h.sessions.iter().map(json::session).collect::<Vec<_>>(),
            "sets": h.sets.iter().map(json::set).collect::<Vec<_>>(),
            "weeks": h.weeks.iter().map(json::athlete_week).collect::<Vec<_>>(),
            "alerts": h.alerts.iter().map(json::alert).collect::<Vec<_>>(),
            "risk": h.risk.iter().map(json::risk).collect::<Vec<_>>(),
            "flareups": h.flareups.iter().map(json::flareup).collect::<Vec<_>>(),
            "alerts_available": h.alerts_available,
            "risk_available": h.risk_available,
            "flareups_available": h.flareups_available,
        }))
    })
    .await
}

async fn athlete_reps(
    State(d): State<Dash>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: RawParams,
) -> Response {
    d.answer("athlete_reps", async {
        let p = Params::parse(q, &["from", "to", "trace"])?;
        let from = p
            .time("from", false)?
            .ok_or_else(|| ApiError::bad_param("from", "required"))?;
        let to = p
            .time("to", true)?
            .ok_or_else(|| ApiError::bad_param("to", "required"))?;
        if to <= from {
            return Err(ApiError::bad_param("to", "must be after `from`"));
        }
        let max_span =
            i64::try_from(d.cfg.max_session_span_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        if i128::from(to) - i128::from(from) > i128::from(max_span) {
            return Err(ApiError::bad_param(
                "to",
                format!(
                    "the span is longer than {} s; ask for one session at a time",
                    d.cfg.max_session_span_s
                ),
            ));
        }
        let range = Some(TimeRange {
            from_us: from,
            to_us: to,
        });
        let mut reps = Vec::new();
        let mut page_token = String::new();
        let mut truncated = false;
        loop {
            let page = QueryRpc::list_reps(
                &d.svc,
                rpc(
                    &headers,
                    ListRepsRequest {
                        scope: Some(list_reps_request::Scope::AthleteId(id.clone())),
                        range,
                        limit: 1000,
                        page_token,
                    },
                ),
            )
            .await?
            .into_inner();
            reps.extend(page.reps.iter().map(json::rep));
            if reps.len() >= d.cfg.max_session_reps {
                truncated = !page.next_page_token.is_empty() || reps.len() > d.cfg.max_session_reps;
                reps.truncate(d.cfg.max_session_reps);
                break;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let mut trace: Vec<Value> = Vec::new();
        if p.flag("trace")? {
            let window = i64::try_from(d.svc.config().max_trace_span_ms.saturating_mul(1000))
                .unwrap_or(i64::MAX)
                .max(1);
            let mut start = from;
            while start < to {
                let end = start.saturating_add(window).min(to);
                let points = QueryRpc::get_lumbar_trace(
                    &d.svc,
                    rpc(
                        &headers,
                        LumbarTraceRequest {
                            athlete_id: id.clone(),
                            range: Some(TimeRange {
                                from_us: start,
                                to_us: end,
                            }),
                        },
                    ),
                )
                .await?
                .into_inner()
                .points;
                trace.extend(
                    points
                        .iter()
                        .map(|pt| json!([pt.t_us, json::f32j(pt.lumbar_flexion_deg)])),
                );
                start = end;
            }
        }
        Ok(json!({
            "from_us": from,
            "to_us": to,
            "reps": reps,
            "truncated": truncated,
            "trace": trace,
        }))
    })
    .await
}
