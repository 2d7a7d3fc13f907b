//! The `liftguard.v1.AnalyticsService` gRPC service: population trends, athletes trending
//! up, load monitoring, one athlete's history, and CSV / Parquet exports, computed by
//! `liftguard-analytics` (polars) over rows the store reads within the caller's scope.
//!
//! Invariants:
//! - Every call authenticates, resolves the caller's [`Scope`] from the database
//!   ([`ApiService::caller`]), narrows it to the gyms the request names (each checked with
//!   `check_read_gym`: PERMISSION_DENIED outside the scope), and passes it into the store's
//!   SQL. Nothing is filtered after a query. Every call writes one audit row; an export
//!   writes it before the first byte is sent (nothing is read without a trace).
//! - Callers without identity get pseudonyms everywhere (ids inside rep, session, set,
//!   alert, risk and report ids included) and name athletes by pseudonym only; without a
//!   configured `pseudonym_secret` they are refused (FAILED_PRECONDITION).
//! - Polars runs on blocking threads (`spawn_blocking`), never on the async workers.
//! - Bounded: a history computes over at most [`MAX_HISTORY_REPS`] reps (OUT_OF_RANGE
//!   beyond: ask for a shorter range) and returns at most [`MAX_RESPONSE_REPS`] of them
//!   (`reps_truncated`); its trace obeys `max_trace_span_ms` / `max_trace_points`; alerts
//!   at most [`MAX_HISTORY_ALERTS`]. Exports stream chunks of at most
//!   [`EXPORT_CHUNK_BYTES`] through a channel of [`EXPORT_CHANNEL_CHUNKS`]: a slow client
//!   slows the reads, a gone client stops them; memory is one page plus one Parquet row
//!   group.

use std::pin::Pin;
use std::time::Instant;

use liftguard_analytics::history::{HistoryInput, athlete_history};
use liftguard_analytics::population::{
    CohortFilter, Dimension, LoadOptions, PopulationInput, TrendOptions, TrendingOptions,
    TrendsInput, load_monitoring, load_window, population_trends, trending_athletes,
    trending_window,
};
use liftguard_analytics::{AnalyticsError, ExportFormat, RepStreamWriter, SharedBuffer};
use liftguard_model::{ErrorKind, Exercise, GymId};
use liftguard_proto::v1::{
    self as pb, AthleteHistoryRequest, AthleteHistoryResponse, ExportChunk, ExportRepsRequest,
    ExportTrendsRequest, LoadMonitoringRequest, LoadMonitoringResponse, PopulationFilter,
    PopulationTrendsRequest, PopulationTrendsResponse, TrendDimension, TrendingAthletesRequest,
    TrendingAthletesResponse,
    analytics_service_server::{AnalyticsService, AnalyticsServiceServer},
};
use liftguard_runtime::status;
use liftguard_store::{
    AlertQuery, MAX_TIME_US, RepFacts, RiskFacts, Scope, ScopedRepQuery, ScoreBuckets,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, server::NamedService};

use crate::{ApiService, Audit, Caller, store_status, validate};

/// The fully qualified gRPC name of the analytics service.
pub const ANALYTICS_SERVICE_NAME: &str = <AnalyticsServiceServer<ApiService> as NamedService>::NAME;

/// Most reps one AthleteHistory computes over.
pub const MAX_HISTORY_REPS: usize = 200_000;
/// Most reps one AthleteHistory response carries.
pub const MAX_RESPONSE_REPS: usize = 20_000;
/// Most alerts one AthleteHistory response carries (the newest are dropped beyond).
pub const MAX_HISTORY_ALERTS: usize = 5_000;
/// Largest `data` of one ExportChunk.
pub const EXPORT_CHUNK_BYTES: usize = 1 << 20;
/// Chunks buffered between the export's reader and the client.
pub const EXPORT_CHANNEL_CHUNKS: usize = 4;
/// Reps per batch between an export's reader and its writer.
const EXPORT_PAGE: usize = 10_000;

/// A server-streamed export.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<ExportChunk, Status>> + Send>>;

fn analytics_status(e: AnalyticsError) -> Status {
    match e.kind() {
        ErrorKind::Internal => {
            tracing::error!(error = %e, "analytics failure");
            status(ErrorKind::Internal, "internal error (logged on the server)")
        }
        kind => status(kind, e.to_string()),
    }
}

/// Runs polars work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AnalyticsError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "analytics task failed");
            status(ErrorKind::Internal, "internal error (logged on the server)")
        })?
        .map_err(analytics_status)
}

fn content_type(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Csv => "text/csv",
        ExportFormat::Parquet => "application/vnd.apache.parquet",
    }
}

fn export_format(v: i32) -> Result<ExportFormat, Status> {
    match pb::ExportFormat::try_from(v) {
        Ok(pb::ExportFormat::Csv) => Ok(ExportFormat::Csv),
        Ok(pb::ExportFormat::Parquet) => Ok(ExportFormat::Parquet),
        _ => Err(validate::invalid(
            "format",
            format!("{v} is not EXPORT_FORMAT_CSV (1) or EXPORT_FORMAT_PARQUET (2)"),
        )),
    }
}

fn dimensions(v: &[i32]) -> Result<Vec<Dimension>, Status> {
    v.iter()
        .map(|d| match TrendDimension::try_from(*d) {
            Ok(TrendDimension::Gym) => Ok(Dimension::Gym),
            Ok(TrendDimension::AgeBand) => Ok(Dimension::AgeBand),
            Ok(TrendDimension::Sex) => Ok(Dimension::Sex),
            Ok(TrendDimension::TrainingAgeBand) => Ok(Dimension::TrainingAgeBand),
            Ok(TrendDimension::Sport) => Ok(Dimension::Sport),
            Ok(TrendDimension::Exercise) => Ok(Dimension::Exercise),
            _ => Err(validate::invalid(
                "group_by",
                format!("{d} is not a TrendDimension (1..=6)"),
            )),
        })
        .collect()
}

/// A validated population filter: the cohort part, the range and the gyms named.
struct Population {
    cohort: CohortFilter,
    from_us: i64,
    to_us: i64,
    gyms: Vec<GymId>,
}

fn population_filter(f: Option<PopulationFilter>) -> Result<Population, Status> {
    let f = f.unwrap_or_default();
    let (from_us, to_us) = validate::range("filter.range", f.range, false)?;
    let gyms = f
        .gym_ids
        .iter()
        .map(|g| validate::gym_id("filter.gym_ids", g))
        .collect::<Result<Vec<_>, _>>()?;
    for e in &f.exercises {
        if Exercise::from_proto(*e).is_none() {
            return Err(validate::invalid(
                "filter.exercises",
                format!("{e} is not a known exercise (1..=4)"),
            ));
        }
    }
    for (field, list, max) in [
        ("filter.sexes", &f.sexes, 32),
        ("filter.sports", &f.sports, 64),
        ("filter.age_bands", &f.age_bands, 16),
        ("filter.training_age_bands", &f.training_age_bands, 16),
    ] {
        for s in list {
            validate::text(field, s, max, true)?;
        }
    }
    Ok(Population {
        cohort: CohortFilter {
            exercises: f.exercises,
            sexes: f.sexes,
            sports: f.sports,
            age_bands: f.age_bands,
            training_age_bands: f.training_age_bands,
        },
        from_us,
        to_us,
        gyms,
    })
}

/// Which reps a population call needs.
enum Window {
    /// The filter's whole range.
    All,
    /// The trending window ending with the week of `as_of` (default: the newest rep).
    Trending { as_of: Option<i64>, weeks: u32 },
    /// The 28 days before the end of the `as_of` day (default: the newest rep's day).
    Load { as_of: Option<i64> },
}

/// The rows of a population call, owned (they go to a blocking thread).
/// The rows of a population request: rep facts for windowed computations, score buckets
/// (a row per athlete, week and exercise) for trends over any range; the other is empty.
struct Rows {
    facts: RepFacts,
    buckets: ScoreBuckets,
    athletes: Vec<pb::Athlete>,
    risk: Option<RiskFacts>,
}

impl Rows {
    fn input(&self) -> PopulationInput<'_> {
        PopulationInput {
            reps: &self.facts,
            athletes: &self.athletes,
            risk: self.risk.as_ref(),
        }
    }

    fn trends_input(&self) -> TrendsInput<'_> {
        TrendsInput {
            buckets: &self.buckets,
            athletes: &self.athletes,
            risk: self.risk.as_ref(),
        }
    }

    /// Reps the rows cover.
    fn reps(&self) -> u64 {
        self.facts.len() as u64 + self.buckets.total_reps()
    }
}

/// Runs an audited analytics handler: `$body` gets the principal `$p`, the audit row `$a`
/// and the request `$req`; metrics and the audit row are written around it.
macro_rules! analytics_call {
    ($self:ident, $request:ident, $method:literal, |$p:ident, $a:ident, $req:ident| $body:block) => {{
        let started = Instant::now();
        let r = async {
            let principal = $self.principal($request.metadata()).await?;
            let mut audit = Audit::new(concat!("Analytics.", $method));
            let $req = $request.into_inner();
            let r: Result<_, Status> = {
                let $p = &principal;
                let $a = &mut audit;
                async { $body }.await
            };
            $self.finish(&principal, audit, r).await
        }
        .await;
        $self.observe($method, started, &r);
        r
    }};
}

impl ApiService {
    pub fn analytics_server(&self) -> AnalyticsServiceServer<ApiService> {
        AnalyticsServiceServer::new(self.clone())
            .max_decoding_message_size(self.inner.cfg.max_request_bytes)
            .max_encoding_message_size(self.inner.cfg.max_response_bytes)
    }

    /// The caller's scope narrowed to the gyms a request names (each must be readable).
    fn population_scope(&self, c: &Caller, a: &mut Audit, gyms: &[GymId]) -> Result<Scope, Status> {
        if gyms.is_empty() {
            return Ok(c.scope.clone());
        }
        for g in gyms {
            c.principal.check_read_gym(&c.scope, g)?;
        }
        if let [g] = gyms {
            a.gym(g);
        }
        a.param(
            "gyms",
            gyms.iter().map(GymId::as_str).collect::<Vec<_>>().join(","),
        );
        let mut wanted: Vec<GymId> = gyms.to_vec();
        wanted.sort();
        wanted.dedup();
        let narrowed = match &c.scope.gyms {
            None => wanted,
            Some(own) => wanted.into_iter().filter(|g| own.contains(g)).collect(),
        };
        Ok(Scope {
            gyms: Some(narrowed),
            ..c.scope.clone()
        })
    }

    async fn population_rows(
        &self,
        scope: &Scope,
        from_us: i64,
        to_us: i64,
        trends: bool,
    ) -> Result<Rows, Status> {
        let key = self.presentation_key(scope)?;
        let store = &self.inner.store;
        let (facts, buckets) = if trends {
            let b = store
                .score_buckets(scope, key, from_us, to_us)
                .await
                .map_err(store_status)?;
            (RepFacts::default(), b)
        } else {
            let f = store
                .rep_facts(scope, key, from_us, to_us)
                .await
                .map_err(store_status)?;
            (f, ScoreBuckets::default())
        };
        let athletes = store
            .scoped_athletes(scope, key)
            .await
            .map_err(store_status)?;
        let risk = store
            .risk_facts(scope, key, from_us, to_us)
            .await
            .map_err(store_status)?;
        Ok(Rows {
            facts,
            buckets,
            athletes,
            risk,
        })
    }

    /// Resolves a population request: filter, scope, rows.
    /// Resolves a population request: filter, scope, rows. Windowed computations read only
    /// their window (intersected with the filter's range); the resolved "as of" is returned.
    async fn population(
        &self,
        p: &liftguard_runtime::auth::Principal,
        a: &mut Audit,
        filter: Option<PopulationFilter>,
        window: Window,
    ) -> Result<(Rows, CohortFilter, Option<i64>), Status> {
        let f = population_filter(filter)?;
        if f.from_us != i64::MIN || f.to_us != i64::MAX {
            a.param("range", format!("[{},{})", f.from_us, f.to_us));
        }
        let c = self.caller(p.clone()).await?;
        let scope = self.population_scope(&c, a, &f.gyms)?;
        let (as_of, weeks) = match window {
            Window::All => (None, 0),
            Window::Trending { as_of, weeks } => (as_of, weeks),
            Window::Load { as_of } => (as_of, 0),
        };
        let as_of = match (&window, as_of) {
            (Window::All, _) => None,
            (_, Some(t)) => Some(t),
            (_, None) => self
                .inner
                .store
                .newest_rep_start(&scope, f.from_us, f.to_us)
                .await
                .map_err(store_status)?,
        };
        let (from, to) = match (&window, as_of) {
            (Window::Trending { .. }, Some(t)) => trending_window(t, weeks),
            (Window::Load { .. }, Some(t)) => load_window(t),
            _ => (f.from_us, f.to_us),
        };
        let trends = matches!(window, Window::All);
        let rows = self
            .population_rows(&scope, from.max(f.from_us), to.min(f.to_us), trends)
            .await?;
        a.param("reps", rows.reps());
        Ok((rows, f.cohort, as_of))
    }

    async fn history(
        &self,
        p: &liftguard_runtime::auth::Principal,
        a: &mut Audit,
        req: AthleteHistoryRequest,
    ) -> Result<AthleteHistoryResponse, Status> {
        let (from_us, to_us) = validate::range("range", req.range, false)?;
        let trace_range = match req.trace_range {
            None => None,
            Some(_) => Some(validate::range("trace_range", req.trace_range, true)?),
        };
        let cfg = &self.inner.cfg;
        if let Some((f, t)) = trace_range {
            let max_span =
                i64::try_from(cfg.max_trace_span_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
            if i128::from(t) - i128::from(f) > i128::from(max_span) {
                return Err(validate::invalid(
                    "trace_range",
                    format!("spans more than {max_span} µs; request a shorter window"),
                ));
            }
        }
        a.param("athlete_id", &req.athlete_id);
        let c = self.caller(p.clone()).await?;
        let (gym, athlete) = self
            .resolve_athlete(&c, "athlete_id", &req.athlete_id)
            .await?;
        a.gym(&gym);
        let key = self.presentation_key(&c.scope)?.to_vec();
        let one = Scope {
            gyms: Some(vec![gym]),
            athletes: Some(vec![athlete.clone()]),
            identity: c.scope.identity,
        };
        let store = &self.inner.store;
        let shown = store
            .scoped_athletes(&one, &key)
            .await
            .map_err(store_status)?
            .pop()
            .ok_or_else(|| status(ErrorKind::NotFound, "the athlete is no longer enrolled"))?;

        let mut reps = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .scoped_reps(
                    &one,
                    &key,
                    &ScopedRepQuery {
                        athlete: Some(athlete.clone()),
                        from_us,
                        to_us,
                        limit: liftguard_store::MAX_PAGE_LIMIT,
                        after,
                    },
                )
                .await
                .map_err(store_status)?;
            reps.extend(page.reps);
            if reps.len() > MAX_HISTORY_REPS {
                return Err(status(
                    ErrorKind::OutOfRange,
                    format!(
                        "more than {MAX_HISTORY_REPS} reps in the range; request a shorter range"
                    ),
                ));
            }
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        let risk = store
            .risk_facts(&one, &key, from_us, to_us)
            .await
            .map_err(store_status)?;

        let trace = match trace_range {
            None => Vec::new(),
            Some((f, t)) => {
                let points = store
                    .lumbar_trace(&one, &athlete, f, t)
                    .await
                    .map_err(store_status)?;
                if points.len() > cfg.max_trace_points {
                    return Err(status(
                        ErrorKind::OutOfRange,
                        format!(
                            "{} trace points in trace_range, more than {}; request a shorter window",
                            points.len(),
                            cfg.max_trace_points
                        ),
                    ));
                }
                points
                    .into_iter()
                    .map(|(t_us, lumbar_flexion_deg)| pb::LumbarPoint {
                        t_us,
                        lumbar_flexion_deg,
                    })
                    .collect()
            }
        };

        // Alerts, risk records and flare-ups of the athlete: read with the athlete's id
        // (the caller was just checked to cover it; the alerts store refuses pseudonymous
        // scopes because its rows carry ids), then presented to the caller.
        let named = Scope {
            identity: true,
            ..one.clone()
        };
        let real = athlete.as_str().to_owned();
        let present = |s: &str| one.present_in(&key, &real, s);
        let mut alerts = Vec::new();
        let mut cursor = 0;
        loop {
            let page = store
                .list_alerts(
                    &named,
                    &AlertQuery {
                        from_us: from_us.max(0),
                        to_us: to_us.min(MAX_TIME_US + 1),
                        ..AlertQuery::after(cursor, 1_000)
                    },
                )
                .await
                .map_err(store_status)?;
            let n = page.len();
            for s in page {
                cursor = s.cursor;
                let mut al = s.alert;
                al.alert_id = present(&al.alert_id);
                al.athlete_id = present(&al.athlete_id);
                al.session_id = present(&al.session_id);
                al.set_id = present(&al.set_id);
                for r in &mut al.rep_ids {
                    *r = present(r);
                }
                alerts.push(al);
            }
            if n < 1_000 || alerts.len() >= MAX_HISTORY_ALERTS {
                break;
            }
        }
        alerts.truncate(MAX_HISTORY_ALERTS);
        let risk_records = match (reps.first(), reps.last()) {
            (Some(first), Some(last)) => {
                let day = |us: i64| {
                    liftguard_analytics::time::format_time(us)
                        .get(..10)
                        .unwrap_or_default()
                        .to_owned()
                };
                // At most a year of days, ending with the newest rep's day.
                let from = first
                    .start_us
                    .max(last.start_us - 365 * liftguard_analytics::time::DAY_US);
                store
                    .risk_scores(&named, &day(from), &day(last.start_us))
                    .await
                    .map_err(store_status)?
                    .into_iter()
                    .map(|mut r| {
                        r.risk_id = present(&r.risk_id);
                        r.athlete_id = present(&r.athlete_id);
                        r
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let flareups = store
            .flareup_reports(&named, from_us, to_us)
            .await
            .map_err(store_status)?
            .into_iter()
            .map(|mut r| {
                r.report_id = present(&r.report_id);
                r.athlete_id = present(&r.athlete_id);
                r
            })
            .collect();

        let risk_available = risk.is_some();
        let athlete_msg = shown.clone();
        let (h, reps) = blocking(move || {
            let h = athlete_history(&HistoryInput {
                athlete: &shown,
                reps: &reps,
                risk: risk.as_ref(),
            })?;
            Ok((h, reps))
        })
        .await?;
        let reps_truncated = req.include_reps && reps.len() > MAX_RESPONSE_REPS;
        let mut out_reps = Vec::new();
        if req.include_reps {
            out_reps = reps;
            out_reps.truncate(MAX_RESPONSE_REPS);
        }
        a.count(out_reps.len());
        Ok(AthleteHistoryResponse {
            athlete: Some(athlete_msg),
            sessions: h.sessions_proto().map_err(analytics_status)?,
            sets: h.sets_proto().map_err(analytics_status)?,
            weeks: h.weeks_proto().map_err(analytics_status)?,
            reps: out_reps,
            reps_truncated,
            trace,
            alerts,
            risk: risk_records,
            flareups,
            alerts_available: true,
            risk_available,
            flareups_available: true,
        })
    }

    /// Streams every rep in `scope` and range as a file: a task streams the rows from the
    /// store in batches, a blocking thread writes them into the file format and cuts the
    /// bytes into chunks. Both channels are bounded, so a slow client slows the read; a
    /// gone client stops both.
    #[allow(clippy::too_many_arguments)]
    fn stream_reps(
        &self,
        scope: Scope,
        key: Vec<u8>,
        from_us: i64,
        to_us: i64,
        exercises: Vec<i32>,
        format: ExportFormat,
    ) -> ExportStream {
        let (tx, rx) = mpsc::channel::<Result<ExportChunk, Status>>(EXPORT_CHANNEL_CHUNKS);
        let (batch_tx, mut batch_rx) = mpsc::channel::<Result<Vec<pb::RepRecord>, Status>>(2);
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            let read = store
                .for_each_rep_batch(&scope, &key, from_us, to_us, EXPORT_PAGE, |batch| {
                    let tx = batch_tx.clone();
                    async move { tx.send(Ok(batch)).await.is_ok() }
                })
                .await;
            if let Err(e) = read {
                let _ = batch_tx.send(Err(store_status(e))).await;
            }
        });
        tokio::task::spawn_blocking(move || {
            let fail = |e: Status| {
                let _ = tx.blocking_send(Err(e));
            };
            let buf = SharedBuffer::default();
            let mut writer = match RepStreamWriter::new(buf.clone(), format) {
                Ok(w) => w,
                Err(e) => return fail(analytics_status(e)),
            };
            let mut first = true;
            let mut chunk = |data: Vec<u8>, last: bool, rows: u64| {
                let ct = if first { content_type(format) } else { "" };
                first = false;
                tx.blocking_send(Ok(ExportChunk {
                    data,
                    last,
                    rows,
                    content_type: ct.to_owned(),
                }))
                .is_ok()
            };
            while let Some(batch) = batch_rx.blocking_recv() {
                let reps = match batch {
                    Ok(b) if exercises.is_empty() => b,
                    Ok(b) => b
                        .into_iter()
                        .filter(|r| exercises.contains(&r.exercise))
                        .collect(),
                    Err(e) => return fail(e),
                };
                if let Err(e) = writer.write(&reps) {
                    return fail(analytics_status(e));
                }
                if buf.len() >= EXPORT_CHUNK_BYTES {
                    let bytes = buf.take();
                    for piece in bytes.chunks(EXPORT_CHUNK_BYTES) {
                        if !chunk(piece.to_vec(), false, writer.rows()) {
                            return; // the client went away; dropping batch_rx stops the read
                        }
                    }
                }
            }
            let rows = match writer.finish() {
                Ok(n) => n,
                Err(e) => return fail(analytics_status(e)),
            };
            let rest = buf.take();
            let pieces: Vec<&[u8]> = if rest.is_empty() {
                vec![&[]]
            } else {
                rest.chunks(EXPORT_CHUNK_BYTES).collect()
            };
            let n = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                if !chunk(piece.to_vec(), i + 1 == n, rows) {
                    return;
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

/// Splits file bytes into chunks (at least one, the last flagged).
fn chunks_of(bytes: Vec<u8>, rows: u64, format: ExportFormat) -> Vec<Result<ExportChunk, Status>> {
    let mut out: Vec<Result<ExportChunk, Status>> = bytes
        .chunks(EXPORT_CHUNK_BYTES)
        .map(|c| {
            Ok(ExportChunk {
                data: c.to_vec(),
                last: false,
                rows,
                content_type: String::new(),
            })
        })
        .collect();
    if out.is_empty() {
        out.push(Ok(ExportChunk {
            data: Vec::new(),
            last: false,
            rows,
            content_type: String::new(),
        }));
    }
    if let Some(Ok(first)) = out.first_mut() {
        first.content_type = content_type(format).to_owned();
    }
    if let Some(Ok(last)) = out.last_mut() {
        last.last = true;
    }
    out
}

#[tonic::async_trait]
impl AnalyticsService for ApiService {
    async fn population_trends(
        &self,
        request: Request<PopulationTrendsRequest>,
    ) -> Result<Response<PopulationTrendsResponse>, Status> {
        analytics_call!(self, request, "PopulationTrends", |p, a, req| {
            let group_by = dimensions(&req.group_by)?;
            a.param(
                "group_by",
                group_by
                    .iter()
                    .map(|d| d.column())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            let (rows, filter, _) = self.population(p, a, req.filter, Window::All).await?;
            let (trows, risk_available) = blocking(move || {
                let t =
                    population_trends(&rows.trends_input(), &TrendOptions { group_by, filter })?;
                Ok((t.to_proto()?, t.risk_available))
            })
            .await?;
            a.count(trows.len());
            Ok(Response::new(PopulationTrendsResponse {
                rows: trows,
                risk_available,
            }))
        })
    }

    async fn trending_athletes(
        &self,
        request: Request<TrendingAthletesRequest>,
    ) -> Result<Response<TrendingAthletesResponse>, Status> {
        analytics_call!(self, request, "TrendingAthletes", |p, a, req| {
            let d = TrendingOptions::default();
            let pick = |v: u32, default: u32| if v == 0 { default } else { v };
            let pickf = |v: f64, default: f64| if v == 0.0 { default } else { v };
            let mut opts = TrendingOptions {
                as_of_us: (req.as_of_us != 0).then_some(req.as_of_us),
                weeks: pick(req.weeks, d.weeks),
                min_reps_per_week: pick(req.min_reps_per_week, d.min_reps_per_week),
                min_weeks: pick(req.min_weeks, d.min_weeks),
                min_rate_slope: pickf(req.min_rate_slope, d.min_rate_slope),
                min_risk_slope: pickf(req.min_risk_slope, d.min_risk_slope),
                include_all: req.include_all,
                filter: CohortFilter::default(),
            };
            a.param("weeks", opts.weeks);
            let window = Window::Trending {
                as_of: opts.as_of_us,
                weeks: opts.weeks,
            };
            let (rows, filter, as_of) = self.population(p, a, req.filter, window).await?;
            opts.filter = filter;
            opts.as_of_us = as_of;
            let (athletes, start, end, risk) = blocking(move || {
                let t = trending_athletes(&rows.input(), &opts)?;
                Ok((
                    t.to_proto()?,
                    t.window_start_us,
                    t.window_end_us,
                    t.risk_available,
                ))
            })
            .await?;
            a.count(athletes.len());
            Ok(Response::new(TrendingAthletesResponse {
                athletes,
                window_start_us: start,
                window_end_us: end,
                risk_available: risk,
            }))
        })
    }

    async fn load_monitoring(
        &self,
        request: Request<LoadMonitoringRequest>,
    ) -> Result<Response<LoadMonitoringResponse>, Status> {
        analytics_call!(self, request, "LoadMonitoring", |p, a, req| {
            let as_of = (req.as_of_us != 0).then_some(req.as_of_us);
            let (rows, filter, as_of_us) = self
                .population(p, a, req.filter, Window::Load { as_of })
                .await?;
            let (athletes, end) = blocking(move || {
                let l = load_monitoring(&rows.input(), &LoadOptions { as_of_us, filter })?;
                Ok((l.to_proto()?, l.window_end_us))
            })
            .await?;
            a.count(athletes.len());
            Ok(Response::new(LoadMonitoringResponse {
                athletes,
                window_end_us: end,
            }))
        })
    }

    async fn athlete_history(
        &self,
        request: Request<AthleteHistoryRequest>,
    ) -> Result<Response<AthleteHistoryResponse>, Status> {
        analytics_call!(self, request, "AthleteHistory", |p, a, req| {
            Ok(Response::new(self.history(p, a, req).await?))
        })
    }

    type ExportRepsStream = ExportStream;

    async fn export_reps(
        &self,
        request: Request<ExportRepsRequest>,
    ) -> Result<Response<Self::ExportRepsStream>, Status> {
        // The audit row is written (by `finish`) before any data is read or sent.
        let prepared = analytics_call!(self, request, "ExportReps", |p, a, req| {
            let format = export_format(req.format)?;
            let f = population_filter(req.filter)?;
            a.param("format", format.extension());
            if f.from_us != i64::MIN || f.to_us != i64::MAX {
                a.param("range", format!("[{},{})", f.from_us, f.to_us));
            }
            let c = self.caller(p.clone()).await?;
            let scope = self.population_scope(&c, a, &f.gyms)?;
            let key = self.presentation_key(&scope)?.to_vec();
            Ok(Response::new((scope, key, f, format)))
        })?;
        let (scope, key, f, format) = prepared.into_inner();
        Ok(Response::new(self.stream_reps(
            scope,
            key,
            f.from_us,
            f.to_us,
            f.cohort.exercises,
            format,
        )))
    }

    type ExportTrendsStream = ExportStream;

    async fn export_trends(
        &self,
        request: Request<ExportTrendsRequest>,
    ) -> Result<Response<Self::ExportTrendsStream>, Status> {
        let r = analytics_call!(self, request, "ExportTrends", |p, a, req| {
            let format = export_format(req.format)?;
            a.param("format", format.extension());
            let t = req.trends.unwrap_or_default();
            let group_by = dimensions(&t.group_by)?;
            let (rows, filter, _) = self.population(p, a, t.filter, Window::All).await?;
            let (bytes, n) = blocking(move || {
                let t =
                    population_trends(&rows.trends_input(), &TrendOptions { group_by, filter })?;
                Ok((
                    liftguard_analytics::frame_bytes(&t.table, format)?,
                    t.table.height() as u64,
                ))
            })
            .await?;
            a.count(n as usize);
            Ok(Response::new(chunks_of(bytes, n, format)))
        })?;
        let chunks = r.into_inner();
        Ok(Response::new(
            Box::pin(tokio_stream::iter(chunks)) as ExportStream
        ))
    }
}
