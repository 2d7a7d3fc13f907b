//! `liftguard.v1.AlertService`: alerts for athletes, coaches and gyms (a gapless live
//! stream and pages), acknowledgements, flare-up reports, daily risk, and the gyms'
//! webhooks. Served by the api role next to Registry/Query/Access.
//!
//! Invariants:
//! - Every call is authenticated ([`ApiService::principal`]) and audited
//!   ([`ApiService::finish`]); metrics go to `liftguard_api_requests_total{method,code}`.
//! - Who may do what: reads of one athlete (Subscribe, ListAlerts, GetRisk) follow the
//!   caller's resolved [`Scope`] (`check_read_athlete`): the operator, the athlete's gym
//!   (API key, admin, coach), the athlete themselves; gym-wide reads follow
//!   `check_read_gym` and are limited to the scope's athletes in SQL (an athlete token
//!   asking for its gym sees itself only). Actions on an athlete (AcknowledgeAlert,
//!   ReportFlareUp) need `check_athlete` (never clinicians). Webhooks need
//!   `check_gym_admin`. Alerts name athletes, so callers that see pseudonyms only get
//!   PERMISSION_DENIED. Everything else is PERMISSION_DENIED naming the caller.
//! - Validation is precise: INVALID_ARGUMENT names the field and the rule before the
//!   store is called.
//! - Subscribe: see [`hub`] (one poller per process, bounded broadcast, replay then live
//!   without gap or duplicate, lagging subscribers re-synced from the store). At most
//!   `max_subscribers` streams (RESOURCE_EXHAUSTED beyond); streams end with UNAVAILABLE
//!   when the server stops (resume with the last cursor).
//! - ReportFlareUp stores the report first, then produces it to `liftguard.flareups.v1`
//!   (key = athlete id) and answers only when the bus confirmed it; a failure is
//!   UNAVAILABLE and the (idempotent) call can simply be repeated.

pub(crate) mod hub;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate, Utc};
use liftguard_bus::Producer;
use liftguard_model::{AthleteId, ErrorKind, GymId, topics};
use liftguard_proto::v1::{
    AcknowledgeAlertRequest, AcknowledgeAlertResponse, AlertEvent, DeleteWebhookRequest,
    DeleteWebhookResponse, FlareUpReport, GetRiskRequest, GetRiskResponse, ListAlertsRequest,
    ListAlertsResponse, ListWebhooksRequest, ListWebhooksResponse, RegisterWebhookRequest,
    RegisterWebhookResponse, ReportFlareUpRequest, ReportFlareUpResponse, Severity,
    SubscribeAlertsRequest, Webhook as WireWebhook,
    alert_service_server::{AlertService, AlertServiceServer},
};
use liftguard_runtime::auth::Principal;
use liftguard_runtime::metrics::{counter, counter_vec, gauge};
use liftguard_runtime::status;
use liftguard_store::{AlertQuery, Scope, StoreError, Webhook};
use prometheus::IntGauge;
use prost::Message as _;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, server::NamedService, service::RoutesBuilder};

use crate::{ApiService, Audit, Caller, store_status, validate};

/// `[api.alerts]`: the alert stream and its poller.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often the process's one poller looks for new alerts (ms).
    pub poll_interval_ms: u64,
    /// On PostgreSQL, also wake the poller on `LISTEN` notifications from the writer.
    pub listen: bool,
    /// Alerts buffered in the process's broadcast; a subscriber further behind re-syncs
    /// from the store.
    pub broadcast_capacity: usize,
    /// Events buffered per stream before the stream stops reading the broadcast.
    pub subscriber_buffer: usize,
    /// Most concurrent Subscribe streams per process.
    pub max_subscribers: usize,
    /// Alerts read from the store per query (replays, polls).
    pub store_page: u32,
    /// ListAlerts page when the request says 0, and its maximum.
    pub default_page_limit: u32,
    pub max_page_limit: u32,
    /// How long ReportFlareUp waits for the bus to confirm (ms).
    pub produce_timeout_ms: u64,
    /// Flare-up onsets further in the future than this are refused (clock skew), ms.
    pub max_onset_skew_ms: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 50,
            listen: true,
            broadcast_capacity: 4096,
            subscriber_buffer: 256,
            max_subscribers: 10_000,
            store_page: 500,
            default_page_limit: 100,
            max_page_limit: liftguard_store::alerts::MAX_ALERT_PAGE,
            produce_timeout_ms: 10_000,
            max_onset_skew_ms: 300_000,
        }
    }
}

/// The fully qualified gRPC name of the service.
pub const ALERT_SERVICE_NAME: &str = <AlertServiceServer<AlertApi> as NamedService>::NAME;

/// Longest flare-up note, in characters.
pub const MAX_NOTE_CHARS: usize = 1_000;
/// Flare-up onsets at most this long ago are accepted.
pub const MAX_ONSET_AGE_US: i64 = 366 * 86_400_000_000;
/// GetRisk days when the request says 0.
pub const DEFAULT_RISK_DAYS: u32 = 14;

struct Inner {
    api: ApiService,
    cfg: AlertsConfig,
    hub: Arc<hub::AlertHub>,
    producer: Producer,
    stop: CancellationToken,
    subscribers: AtomicUsize,
    subscribers_gauge: IntGauge,
}

/// Implements `AlertService`. Cheap to clone.
#[derive(Clone)]
pub struct AlertApi {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AlertApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertApi")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

/// Decrements the subscriber count when a stream ends.
struct SubscriberSlot(Arc<Inner>);

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::SeqCst);
        self.0.subscribers_gauge.dec();
    }
}

impl AlertApi {
    /// Starts the process's alert poller (it and every stream stop with `stop`) and
    /// registers the `liftguard_api_alerts_*` metrics. `producer` carries flare-up reports
    /// to the bus.
    pub async fn start(
        api: ApiService,
        cfg: AlertsConfig,
        producer: Producer,
        registry: &prometheus::Registry,
        stop: CancellationToken,
    ) -> Result<AlertApi, StoreError> {
        let metrics = hub::HubMetrics {
            polled: counter(
                registry,
                "liftguard_api_alerts_polled_total",
                "New alerts the process's poller read from the store and broadcast.",
            ),
            poll_errors: counter(
                registry,
                "liftguard_api_alerts_poll_errors_total",
                "Failed polls of the alert poller (retried).",
            ),
            cursor: gauge(
                registry,
                "liftguard_api_alerts_poller_cursor",
                "The last alert cursor the poller broadcast.",
            ),
            sent: counter_vec(
                registry,
                "liftguard_api_alerts_events_sent_total",
                "Alert events sent to subscribers, by source (replay from the store, live).",
                &["source"],
            ),
            resyncs: counter(
                registry,
                "liftguard_api_alerts_resyncs_total",
                "Times a lagging subscriber was re-synced from the store.",
            ),
        };
        let subscribers_gauge = gauge(
            registry,
            "liftguard_api_alerts_subscribers",
            "Open Subscribe streams.",
        );
        let hub = hub::AlertHub::start(
            api.store().clone(),
            hub::HubConfig {
                poll_interval: Duration::from_millis(cfg.poll_interval_ms.max(1)),
                listen: cfg.listen,
                broadcast_capacity: cfg.broadcast_capacity,
                page: cfg.store_page,
            },
            metrics,
            stop.clone(),
        )
        .await?;
        Ok(AlertApi {
            inner: Arc::new(Inner {
                api,
                cfg,
                hub,
                producer,
                stop,
                subscribers: AtomicUsize::new(0),
                subscribers_gauge,
            }),
        })
    }

    pub fn server(&self) -> AlertServiceServer<AlertApi> {
        let c = self.inner.api.config();
        AlertServiceServer::new(self.clone())
            .max_decoding_message_size(c.max_request_bytes)
            .max_encoding_message_size(c.max_response_bytes)
    }

    /// Adds the service to `builder`; returns its name (for health and reflection).
    pub fn add_to(&self, builder: &mut RoutesBuilder) -> &'static str {
        builder.add_service(self.server());
        ALERT_SERVICE_NAME
    }

    fn api(&self) -> &ApiService {
        &self.inner.api
    }

    /// The scope of an alert read: one athlete (`athlete_id`), or a gym (`gym_id`, or the
    /// caller's own gym), limited to what the caller's scope covers.
    async fn read_scope(
        &self,
        c: &Caller,
        a: &mut Audit,
        athlete_raw: &str,
        gym_raw: &str,
    ) -> Result<Scope, Status> {
        if !c.scope.identity && !c.scope.is_empty() {
            return Err(status(
                ErrorKind::PermissionDenied,
                format!(
                    "alerts and risk name athletes; {} sees pseudonymised data only",
                    c.principal.describe()
                ),
            ));
        }
        if !athlete_raw.is_empty() {
            a.param("athlete_id", athlete_raw);
            let (gym, athlete) = self
                .api()
                .resolve_athlete(c, "athlete_id", athlete_raw)
                .await?;
            a.gym(&gym);
            if !gym_raw.is_empty() && gym_raw != gym.as_str() {
                return Err(validate::invalid(
                    "gym_id",
                    format!("athlete `{athlete}` belongs to gym `{gym}`, not `{gym_raw}`"),
                ));
            }
            return Ok(Scope::athlete(gym, athlete));
        }
        let gym = self.gym_of(&c.principal, gym_raw)?;
        a.gym(&gym);
        c.principal.check_read_gym(&c.scope, &gym)?;
        Ok(Scope {
            gyms: Some(vec![gym]),
            athletes: c.scope.athletes.clone(),
            identity: true,
        })
    }

    /// `gym_id` from the request, or the caller's own gym when it is empty.
    fn gym_of(&self, p: &Principal, raw: &str) -> Result<GymId, Status> {
        if raw.is_empty() {
            return p.gym().cloned().ok_or_else(|| {
                validate::invalid(
                    "gym_id",
                    format!(
                        "required: {} has no gym of its own; name the gym (or an athlete_id)",
                        p.describe()
                    ),
                )
            });
        }
        validate::gym_id("gym_id", raw)
    }

    /// An athlete a caller acts on (acknowledge, report): `athlete_id`, or the caller
    /// itself when it is an athlete and the field is empty.
    async fn acted_athlete(
        &self,
        c: &Caller,
        a: &mut Audit,
        raw: &str,
    ) -> Result<(GymId, AthleteId), Status> {
        let (gym, athlete) = match (raw.is_empty(), &c.principal) {
            (true, Principal::Athlete { gym, athlete, .. }) => (gym.clone(), athlete.clone()),
            (true, _) => return Err(validate::invalid("athlete_id", "required")),
            (false, _) => {
                if !c.scope.identity && !c.scope.is_empty() {
                    return Err(status(
                        ErrorKind::PermissionDenied,
                        format!("{} may not act on athletes", c.principal.describe()),
                    ));
                }
                self.api().resolve_athlete(c, "athlete_id", raw).await?
            }
        };
        a.gym(&gym);
        a.param("athlete_id", &athlete);
        c.principal.check_athlete(&gym, &athlete)?;
        Ok((gym, athlete))
    }

    fn page_limit(&self, v: u32) -> Result<u32, Status> {
        let cfg = &self.inner.cfg;
        validate::limit(
            "limit",
            v,
            cfg.default_page_limit,
            cfg.max_page_limit
                .min(liftguard_store::alerts::MAX_ALERT_PAGE),
        )
    }
}

fn cursor(field: &str, v: i64) -> Result<i64, Status> {
    if v < 0 {
        return Err(validate::invalid(field, format!("{v} is negative")));
    }
    Ok(v)
}

fn wire_webhook(w: Webhook) -> WireWebhook {
    WireWebhook {
        webhook_id: w.webhook_id,
        gym_id: w.gym_id,
        url: w.url,
        description: w.description,
        min_severity: w.min_severity,
        created_us: w.created_us,
        delivered: w.delivered,
        pending: w.pending,
        failed: w.failed,
    }
}

/// `http(s)://host...`, at most 2048 characters, no whitespace or control characters.
pub(crate) fn webhook_url(field: &str, s: &str) -> Result<String, Status> {
    if s.is_empty() {
        return Err(validate::invalid(field, "required"));
    }
    if s.chars().count() > liftguard_store::alerts::MAX_URL_CHARS {
        return Err(validate::invalid(
            field,
            format!(
                "longer than {} characters",
                liftguard_store::alerts::MAX_URL_CHARS
            ),
        ));
    }
    let url = reqwest::Url::parse(s).map_err(|e| validate::invalid(field, e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(validate::invalid(
            field,
            format!("scheme `{}`: only http and https", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(validate::invalid(field, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(validate::invalid(
            field,
            "must not carry credentials (the signature authenticates liftguard)",
        ));
    }
    if let Some(ch) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(validate::invalid(field, format!("contains {ch:?}")));
    }
    Ok(s.to_owned())
}

fn severity(field: &str, v: i32) -> Result<i32, Status> {
    Severity::try_from(v)
        .map(|s| s as i32)
        .map_err(|_| validate::invalid(field, format!("{v} is not a Severity (0..=3)")))
}

/// Note text: at most [`MAX_NOTE_CHARS`], newlines and tabs allowed, no other control
/// characters.
fn note(field: &str, s: &str) -> Result<String, Status> {
    if s.chars().count() > MAX_NOTE_CHARS {
        return Err(validate::invalid(
            field,
            format!("longer than {MAX_NOTE_CHARS} characters"),
        ));
    }
    if let Some(ch) = s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(validate::invalid(
            field,
            format!("contains the control character {ch:?}"),
        ));
    }
    Ok(s.to_owned())
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// Runs an audited handler (authenticate, resolve the caller, fill the audit row, write
/// it) and records its metrics.
macro_rules! handle {
    ($self:ident, $request:ident, $method:literal, |$c:ident, $a:ident, $req:ident| $body:block) => {{
        let started = Instant::now();
        let r = async {
            let principal = $self.api().principal($request.metadata()).await?;
            let mut audit = Audit::new(concat!("AlertService.", $method));
            let $req = $request.into_inner();
            let r: Result<_, Status> = async {
                let $c = $self.api().caller(principal.clone()).await?;
                let $a = &mut audit;
                $body
            }
            .await;
            $self.api().finish(&principal, audit, r).await
        }
        .await;
        $self.api().observe($method, started, &r);
        r
    }};
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<AlertEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AlertService for AlertApi {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeAlertsRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        handle!(self, request, "Subscribe", |c, a, req| {
            let after = cursor("after_cursor", req.after_cursor)?;
            let scope = self.read_scope(&c, a, &req.athlete_id, &req.gym_id).await?;
            a.param("after_cursor", after);
            let inner = &self.inner;
            let n = inner.subscribers.fetch_add(1, Ordering::SeqCst);
            inner.subscribers_gauge.inc();
            let slot = SubscriberSlot(inner.clone());
            if n >= inner.cfg.max_subscribers {
                drop(slot);
                return Err(status(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "{} alert streams are open on this server (the maximum); retry later",
                        inner.cfg.max_subscribers
                    ),
                ));
            }
            let (tx, rx) = mpsc::channel(inner.cfg.subscriber_buffer.max(1));
            let hub = inner.hub.clone();
            let stop = inner.stop.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let ended = hub::follow(&hub, &scope, after, &tx, &stop).await;
                let last_words = match ended {
                    hub::Ended::ClientGone => None,
                    hub::Ended::Stopping => Some(status(
                        ErrorKind::Unavailable,
                        "the server is stopping; resubscribe with after_cursor = the last cursor received",
                    )),
                    hub::Ended::Store(e) => Some(store_status(e)),
                };
                if let Some(s) = last_words {
                    let _ = tx.send(Err(s)).await;
                }
            });
            Ok(Response::new(
                Box::pin(ReceiverStream::new(rx)) as EventStream
            ))
        })
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        handle!(self, request, "ListAlerts", |c, a, req| {
            let after = cursor("after_cursor", req.after_cursor)?;
            let limit = self.page_limit(req.limit)?;
            let (from_us, to_us) = validate::range("range", req.range, false)?;
            let scope = self.read_scope(&c, a, &req.athlete_id, &req.gym_id).await?;
            a.param("after_cursor", after);
            a.param("limit", limit);
            let page = self
                .api()
                .store()
                .list_alerts(
                    &scope,
                    &AlertQuery {
                        after_cursor: after,
                        limit,
                        unacknowledged_only: req.unacknowledged_only,
                        from_us,
                        to_us,
                    },
                )
                .await
                .map_err(store_status)?;
            a.count(page.len());
            let next_after_cursor = if page.len() == limit as usize {
                page.last().map(|x| x.cursor).unwrap_or_default()
            } else {
                0
            };
            Ok(Response::new(ListAlertsResponse {
                alerts: page.iter().map(hub::event).collect(),
                next_after_cursor,
            }))
        })
    }

    async fn acknowledge_alert(
        &self,
        request: Request<AcknowledgeAlertRequest>,
    ) -> Result<Response<AcknowledgeAlertResponse>, Status> {
        handle!(self, request, "AcknowledgeAlert", |c, a, req| {
            let id = validate::text("alert_id", &req.alert_id, 160, true)?;
            a.param("alert_id", id);
            let store = self.api().store();
            let found = store
                .get_alert(id)
                .await
                .map_err(store_status)?
                .ok_or_else(|| {
                    status(ErrorKind::NotFound, format!("alert `{id}` does not exist"))
                })?;
            let gym = GymId::parse(found.alert.gym_id.as_str())
                .map_err(|e| status(ErrorKind::Internal, format!("stored alert: {e}")))?;
            let athlete = AthleteId::parse(found.alert.athlete_id.as_str())
                .map_err(|e| status(ErrorKind::Internal, format!("stored alert: {e}")))?;
            a.gym(&gym);
            c.principal.check_athlete(&gym, &athlete)?;
            let (stored, newly) = store
                .acknowledge_alert(id, &c.principal.actor())
                .await
                .map_err(store_status)?;
            Ok(Response::new(AcknowledgeAlertResponse {
                alert: Some(hub::event(&stored)),
                newly_acknowledged: newly,
            }))
        })
    }

    async fn report_flare_up(
        &self,
        request: Request<ReportFlareUpRequest>,
    ) -> Result<Response<ReportFlareUpResponse>, Status> {
        handle!(self, request, "ReportFlareUp", |c, a, req| {
            let now = now_us();
            let cfg = &self.inner.cfg;
            let skew =
                i64::try_from(cfg.max_onset_skew_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
            if req.onset_time_us <= 0 {
                return Err(validate::invalid(
                    "onset_time_us",
                    "required (µs since the epoch)",
                ));
            }
            if req.onset_time_us > now.saturating_add(skew) {
                return Err(validate::invalid(
                    "onset_time_us",
                    format!("{} is in the future (server time {now})", req.onset_time_us),
                ));
            }
            if req.onset_time_us < now - MAX_ONSET_AGE_US {
                return Err(validate::invalid(
                    "onset_time_us",
                    format!("{} is more than 366 days ago", req.onset_time_us),
                ));
            }
            if req.pain > liftguard_store::alerts::MAX_PAIN {
                return Err(validate::invalid(
                    "pain",
                    format!("{} is outside 0..=10", req.pain),
                ));
            }
            let note = note("note", &req.note)?;
            let (gym, athlete) = self.acted_athlete(&c, a, &req.athlete_id).await?;
            let report = FlareUpReport {
                report_id: liftguard_store::alerts::flareup_report_id(
                    athlete.as_str(),
                    req.onset_time_us,
                ),
                gym_id: gym.as_str().to_owned(),
                athlete_id: athlete.as_str().to_owned(),
                onset_time_us: req.onset_time_us,
                pain: req.pain,
                note,
                reported_at_us: now,
            };
            let stored = self
                .api()
                .store()
                .upsert_flareup(&report)
                .await
                .map_err(store_status)?;
            a.param("report_id", &stored.report_id);
            let unavailable = |e: String| {
                tracing::warn!(error = %e, report = stored.report_id, "flare-up report not forwarded");
                status(
                    ErrorKind::Unavailable,
                    format!(
                        "the report is stored but could not be forwarded to the risk model ({e}); send it again"
                    ),
                )
            };
            let sent = self
                .inner
                .producer
                .send(topics::FLAREUPS, athlete.as_str(), stored.encode_to_vec())
                .map_err(|e| unavailable(e.to_string()))?;
            match tokio::time::timeout(Duration::from_millis(cfg.produce_timeout_ms.max(1)), sent)
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(unavailable(e.to_string())),
                Err(_) => return Err(unavailable("timed out".into())),
            }
            tracing::info!(gym = %gym, athlete = %athlete, pain = stored.pain, "flare-up reported");
            Ok(Response::new(ReportFlareUpResponse {
                report: Some(stored),
            }))
        })
    }

    async fn get_risk(
        &self,
        request: Request<GetRiskRequest>,
    ) -> Result<Response<GetRiskResponse>, Status> {
        handle!(self, request, "GetRisk", |c, a, req| {
            let days = match req.days {
                0 => DEFAULT_RISK_DAYS,
                d if d <= liftguard_store::alerts::MAX_RISK_DAYS => d,
                d => {
                    return Err(validate::invalid(
                        "days",
                        format!(
                            "{d} is outside 1..={}",
                            liftguard_store::alerts::MAX_RISK_DAYS
                        ),
                    ));
                }
            };
            let until = if req.until_day.is_empty() {
                Utc::now().date_naive()
            } else {
                day("until_day", &req.until_day)?
            };
            let from = until - chrono::Duration::days(i64::from(days) - 1);
            let raw = if req.athlete_id.is_empty() {
                match &c.principal {
                    Principal::Athlete { athlete, .. } => athlete.as_str().to_owned(),
                    _ => return Err(validate::invalid("athlete_id", "required")),
                }
            } else {
                req.athlete_id.clone()
            };
            let scope = self.read_scope(&c, a, &raw, "").await?;
            let fmt = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
            a.param("days", format!("{}..={}", fmt(from), fmt(until)));
            let records = self
                .api()
                .store()
                .risk_scores(&scope, &fmt(from), &fmt(until))
                .await
                .map_err(store_status)?;
            a.count(records.len());
            Ok(Response::new(GetRiskResponse { records }))
        })
    }

    async fn register_webhook(
        &self,
        request: Request<RegisterWebhookRequest>,
    ) -> Result<Response<RegisterWebhookResponse>, Status> {
        handle!(self, request, "RegisterWebhook", |c, a, req| {
            let url = webhook_url("url", &req.url)?;
            let description =
                validate::text("description", &req.description, validate::MAX_TEXT, false)?;
            let min = severity("min_severity", req.min_severity)?;
            let gym = self.gym_of(&c.principal, &req.gym_id)?;
            a.gym(&gym);
            c.principal.check_gym_admin(&gym, "RegisterWebhook")?;
            let created = self
                .api()
                .store()
                .create_webhook(&gym, &url, description, min)
                .await
                .map_err(store_status)?;
            a.param("webhook_id", &created.webhook.webhook_id);
            Ok(Response::new(RegisterWebhookResponse {
                webhook: Some(wire_webhook(created.webhook)),
                secret: created.secret,
            }))
        })
    }

    async fn list_webhooks(
        &self,
        request: Request<ListWebhooksRequest>,
    ) -> Result<Response<ListWebhooksResponse>, Status> {
        handle!(self, request, "ListWebhooks", |c, a, req| {
            let gym = self.gym_of(&c.principal, &req.gym_id)?;
            a.gym(&gym);
            c.principal.check_gym_admin(&gym, "ListWebhooks")?;
            let hooks = self
                .api()
                .store()
                .list_webhooks(&gym)
                .await
                .map_err(store_status)?;
            a.count(hooks.len());
            Ok(Response::new(ListWebhooksResponse {
                webhooks: hooks.into_iter().map(wire_webhook).collect(),
            }))
        })
    }

    async fn delete_webhook(
        &self,
        request: Request<DeleteWebhookRequest>,
    ) -> Result<Response<DeleteWebhookResponse>, Status> {
        handle!(self, request, "DeleteWebhook", |c, a, req| {
            let id = validate::text("webhook_id", &req.webhook_id, 64, true)?;
            let gym = self.gym_of(&c.principal, &req.gym_id)?;
            a.gym(&gym);
            a.param("webhook_id", id);
            c.principal.check_gym_admin(&gym, "DeleteWebhook")?;
            let deleted = self
                .api()
                .store()
                .delete_webhook(&gym, id)
                .await
                .map_err(store_status)?;
            Ok(Response::new(DeleteWebhookResponse { deleted }))
        })
    }
}

fn day(field: &str, s: &str) -> Result<NaiveDate, Status> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| validate::invalid(field, format!("{s:?} is not a YYYY-MM-DD date")))?;
    if d.format("%Y-%m-%d").to_string() != s || !(1971..=9999).contains(&d.year()) {
        return Err(validate::invalid(
            field,
            format!("{s:?} is not a YYYY-MM-DD date between 1971 and 9999"),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn msg<T: std::fmt::Debug>(r: Result<T, Status>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        e.message().to_owned()
    }

    #[test]
    fn urls() {
        assert!(webhook_url("url", "https://hooks.example.com/liftguard?x=1").is_ok());
        assert!(webhook_url("url", "http://127.0.0.1:8080/h").is_ok());
        assert!(msg(webhook_url("url", "")).contains("required"));
        assert!(msg(webhook_url("url", "ftp://x.example.com")).contains("only http and https"));
        assert!(msg(webhook_url("url", "not a url")).contains("`url`"));
        assert!(msg(webhook_url("url", "https://u:p@x.example.com")).contains("credentials"));
        let long = format!("https://x.example.com/{}", "a".repeat(2100));
        assert!(msg(webhook_url("url", &long)).contains("longer than 2048"));
    }

    #[test]
    fn notes_days_severities() {
        assert!(note("note", "sharp pain\nleft side").is_ok());
        assert!(msg(note("note", "bell\u{7}")).contains("control character"));
        assert!(msg(note("note", &"x".repeat(1001))).contains("1000"));
        assert!(day("until_day", "2024-02-29").is_ok());
        assert!(msg(day("until_day", "2024-2-29")).contains("`until_day`"));
        assert!(msg(day("until_day", "2023-02-29")).contains("YYYY-MM-DD"));
        assert_eq!(severity("min_severity", 3).unwrap(), 3);
        assert!(msg(severity("min_severity", 4)).contains("`min_severity`"));
        assert!(msg(cursor("after_cursor", -1)).contains("negative"));
    }
}
