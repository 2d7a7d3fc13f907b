//! The webhook dispatcher: a task of the api role that delivers the outbox
//! (`webhook_deliveries`, filled by the sink in the alert's own transaction) as signed
//! HTTP POSTs.
//!
//! Each attempt POSTs the alert as JSON ([`payload`]) with the headers
//! `X-Liftguard-Timestamp` (unix seconds of this attempt), `X-Liftguard-Signature`
//! (`v1=` hex HMAC-SHA256 of `"{timestamp}.{body}"` under the webhook's secret, see
//! [`liftguard_client::webhook`], which also has the receiver's `verify_signature`),
//! `X-Liftguard-Delivery` (`{webhook_id}/{alert_id}`, the same on every attempt) and
//! `X-Liftguard-Attempt`.
//!
//! Invariants:
//! - A 2xx answer marks the delivery delivered: it is never sent again. Anything else
//!   (other status, timeout, connection error) is retried at
//!   `min(cap, base * 2^(attempt-1))` scaled by a jitter factor in [0.5, 1) derived from
//!   the delivery id and attempt (deterministic: the same delivery backs off the same way
//!   on every instance), or later if the receiver sent `Retry-After` (capped); after
//!   `max_attempts` the delivery is marked failed and counted.
//! - Several api instances share the outbox safely: deliveries are claimed with a lease
//!   in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so no two instances send
//!   the same attempt. A dispatcher that dies mid-attempt leaves the delivery to be
//!   claimed again when its lease ends: delivery is at-least-once, receivers dedupe on
//!   `X-Liftguard-Delivery`.
//! - Bounded: at most `concurrency` requests in flight, each bounded by the timeouts;
//!   response bodies are not read; redirects are not followed (a 3xx is a failure).
//! - Error texts stored and logged never contain the URL (it may carry a token).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use liftguard_client::webhook::{DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use liftguard_proto::v1::{AlertKind, Severity};
use liftguard_runtime::metrics::{LATENCY_BUCKETS, counter, counter_vec, gauge, histogram};
use liftguard_store::{ClaimedDelivery, DeliveryOutcome, Store, StoreError};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Header with the attempt number (1 for the first).
pub const ATTEMPT_HEADER: &str = "X-Liftguard-Attempt";

/// `[api.webhooks]`: the dispatcher.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Run the dispatcher in this api process.
    pub enabled: bool,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How often to look for due deliveries when idle (ms).
    pub poll_interval_ms: u64,
    pub connect_timeout_ms: u64,
    /// Whole request, connect included (ms).
    pub request_timeout_ms: u64,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// First retry delay (ms), doubled per attempt...
    pub backoff_base_ms: u64,
    /// ...up to this (ms); `Retry-After` is honoured up to this too.
    pub backoff_cap_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 8,
            poll_interval_ms: 200,
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            max_attempts: 10,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 3_600_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

#[derive(Clone)]
struct Metrics {
    attempts: IntCounterVec,
    failed: IntCounter,
    seconds: Histogram,
    in_flight: IntGauge,
    pending: IntGauge,
    errors: IntCounter,
}

impl Metrics {
    fn register(r: &prometheus::Registry) -> Self {
        Self {
            attempts: counter_vec(
                r,
                "liftguard_webhook_attempts_total",
                "Webhook delivery attempts, by outcome (delivered, retry, failed).",
                &["outcome"],
            ),
            failed: counter(
                r,
                "liftguard_webhook_failed_total",
                "Deliveries given up after max_attempts.",
            ),
            seconds: histogram(
                r,
                "liftguard_webhook_attempt_seconds",
                "Duration of one delivery attempt.",
                LATENCY_BUCKETS,
            ),
            in_flight: gauge(
                r,
                "liftguard_webhook_in_flight",
                "Delivery attempts in flight in this process.",
            ),
            pending: gauge(
                r,
                "liftguard_webhook_pending",
                "Deliveries neither delivered nor failed (all gyms).",
            ),
            errors: counter(
                r,
                "liftguard_webhook_store_errors_total",
                "Failed outbox reads or writes of the dispatcher (retried).",
            ),
        }
    }
}

/// The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed:
/// `min(cap, base * 2^(attempt-1))` times a factor in [0.5, 1) derived from
/// `(delivery_id, attempt)`.
pub fn backoff(cfg: &WebhookConfig, delivery_id: &str, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(40);
    let raw = cfg.backoff_base_ms.saturating_mul(1u64 << exp);
    let capped = raw.min(cfg.backoff_cap_ms);
    let h = Sha256::digest(format!("{delivery_id}#{attempt}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    let frac = (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    Duration::from_millis((capped as f64 * (0.5 + 0.5 * frac)) as u64)
}

/// The JSON body of a delivery: `delivery_id`, `webhook_id`, `cursor`, `acknowledged` and
/// the alert (enums by name, times in µs, evidence with its thresholds).
pub fn payload(d: &ClaimedDelivery) -> Vec<u8> {
    let a = &d.alert.alert;
    let kind = AlertKind::try_from(a.kind)
        .map(|k| k.as_str_name().to_owned())
        .unwrap_or_else(|_| a.kind.to_string());
    let sev = Severity::try_from(a.severity)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| a.severity.to_string());
    let evidence: Vec<_> = a
        .evidence
        .iter()
        .map(
            |e| json!({"name": e.name, "value": e.value, "threshold": e.threshold, "unit": e.unit}),
        )
        .collect();
    json!({
        "delivery_id": d.delivery_id(),
        "webhook_id": d.webhook_id,
        "cursor": d.alert.cursor,
        "acknowledged": d.alert.acknowledged_at_us.is_some(),
        "alert": {
            "alert_id": a.alert_id,
            "gym_id": a.gym_id,
            "athlete_id": a.athlete_id,
            "session_id": a.session_id,
            "set_id": a.set_id,
            "kind": kind,
            "severity": sev,
            "time_us": a.time_us,
            "title": a.title,
            "recommendation": a.recommendation,
            "evidence": evidence,
            "rep_ids": a.rep_ids,
            "model_version": a.model_version,
        }
    })
    .to_string()
    .into_bytes()
}

fn unix_now() -> (i64, i64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    )
}

struct Dispatcher {
    cfg: WebhookConfig,
    store: Store,
    http: reqwest::Client,
    metrics: Metrics,
}

/// Starts the dispatcher; it stops (finishing in-flight attempts) when `stop` fires.
pub fn spawn(
    cfg: WebhookConfig,
    store: Store,
    registry: &prometheus::Registry,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, WebhookError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms.max(1)))
        .timeout(Duration::from_millis(cfg.request_timeout_ms.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("liftguard-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let d = Arc::new(Dispatcher {
        cfg,
        store,
        http,
        metrics: Metrics::register(registry),
    });
    Ok(tokio::spawn(async move { d.run(stop).await }))
}

impl Dispatcher {
    /// A claimed delivery stays leased for this long: the attempt's whole time budget
    /// plus margin.
    fn lease(&self) -> Duration {
        Duration::from_millis(
            self.cfg
                .connect_timeout_ms
                .saturating_add(self.cfg.request_timeout_ms)
                .saturating_mul(2)
                .saturating_add(10_000),
        )
    }

    async fn run(self: Arc<Self>, stop: CancellationToken) {
        let idle = Duration::from_millis(self.cfg.poll_interval_ms.max(1));
        let concurrency = self.cfg.concurrency.max(1);
        let mut running: JoinSet<()> = JoinSet::new();
        let mut polls: u64 = 0;
        tracing::info!(concurrency, "webhook dispatcher started");
        loop {
            while running.try_join_next().is_some() {}
            let free = concurrency.saturating_sub(running.len());
            if free > 0 {
                match self.claim(free).await {
                    Ok(batch) => {
                        for d in batch {
                            let me = self.clone();
                            running.spawn(async move { me.attempt(d).await });
                        }
                    }
                    Err(e) => {
                        self.metrics.errors.inc();
                        tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    }
                }
            }
            polls += 1;
            if polls % 50 == 1
                && let Ok(n) = self.store.pending_deliveries().await
            {
                self.metrics.pending.set(n);
            }
            self.metrics
                .in_flight
                .set(i64::try_from(running.len()).unwrap_or(i64::MAX));
            // All slots busy: claim again as soon as one frees; otherwise wait for the
            // poll interval.
            let full = running.len() >= concurrency;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = running.join_next(), if full => {}
                _ = tokio::time::sleep(idle), if !full => {}
            }
        }
        // Finish what is in flight (bounded by the request timeout), then stop.
        while running.join_next().await.is_some() {}
        tracing::info!("webhook dispatcher stopped");
    }

    async fn claim(&self, n: usize) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let (_, now) = unix_now();
        let lease = i64::try_from(self.lease().as_micros()).unwrap_or(i64::MAX);
        self.store
            .claim_deliveries(
                now,
                now.saturating_add(lease),
                u32::try_from(n).unwrap_or(u32::MAX),
            )
            .await
    }

    /// One attempt: POST, then record the outcome.
    async fn attempt(&self, d: ClaimedDelivery) {
        let delivery_id = d.delivery_id();
        if d.attempt > self.cfg.max_attempts.max(1) {
            // Claimed again after a crash with its attempts used up.
            self.metrics.attempts.with_label_values(&["failed"]).inc();
            self.metrics.failed.inc();
            self.finish(
                &d,
                DeliveryOutcome::Failed {
                    status: None,
                    error: "attempts exhausted".into(),
                },
            )
            .await;
            return;
        }
        let body = payload(&d);
        let (secs, _) = unix_now();
        let started = std::time::Instant::now();
        let sent = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, secs.to_string())
            .header(SIGNATURE_HEADER, sign(&d.secret, secs, &body))
            .header(DELIVERY_HEADER, &delivery_id)
            .header(ATTEMPT_HEADER, d.attempt.to_string())
            .body(body)
            .send()
            .await;
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        let (status, error, retry_after) = match sent {
            Ok(resp) if resp.status().is_success() => {
                let status = resp.status().as_u16();
                self.metrics
                    .attempts
                    .with_label_values(&["delivered"])
                    .inc();
                tracing::debug!(
                    delivery = delivery_id,
                    attempt = d.attempt,
                    status,
                    "webhook delivered"
                );
                self.finish(&d, DeliveryOutcome::Delivered { status }).await;
                return;
            }
            Ok(resp) => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let status = resp.status();
                (Some(status.as_u16()), format!("HTTP {status}"), retry_after)
            }
            Err(e) => (None, e.without_url().to_string(), None),
        };
        if d.attempt >= self.cfg.max_attempts.max(1) {
            self.metrics.attempts.with_label_values(&["failed"]).inc();
            self.metrics.failed.inc();
            tracing::warn!(
                delivery = delivery_id,
                attempts = d.attempt,
                error,
                "webhook delivery failed for good"
            );
            self.finish(&d, DeliveryOutcome::Failed { status, error })
                .await;
            return;
        }
        let cap = Duration::from_millis(self.cfg.backoff_cap_ms);
        let wait = backoff(&self.cfg, &delivery_id, d.attempt)
            .max(retry_after.unwrap_or_default().min(cap));
        self.metrics.attempts.with_label_values(&["retry"]).inc();
        tracing::debug!(
            delivery = delivery_id,
            attempt = d.attempt,
            error,
            retry_in_ms = wait.as_millis() as u64,
            "webhook attempt failed; will retry"
        );
        let (_, now) = unix_now();
        let next = now.saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX));
        self.finish(
            &d,
            DeliveryOutcome::Retry {
                status,
                error,
                next_attempt_us: next,
            },
        )
        .await;
    }

    /// Records an outcome, retrying store failures a few times (if it still fails, the
    /// lease expires and the delivery is attempted again: at-least-once).
    async fn finish(&self, d: &ClaimedDelivery, outcome: DeliveryOutcome) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..5 {
            match self
                .store
                .finish_delivery(&d.webhook_id, &d.alert.alert.alert_id, d.attempt, &outcome)
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::warn!(error = %e, delivery = d.delivery_id(), "recording a delivery outcome failed");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_deterministically() {
        let cfg = WebhookConfig {
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
            ..WebhookConfig::default()
        };
        for attempt in 1..=12 {
            let full = (1_000u64 << (attempt - 1)).min(60_000);
            let d = backoff(&cfg, "wh_1/a-1-2-3", attempt).as_millis() as u64;
            assert!(
                d >= full / 2 && d < full,
                "attempt {attempt}: {d} ms not in [{}, {full})",
                full / 2
            );
            assert_eq!(
                backoff(&cfg, "wh_1/a-1-2-3", attempt),
                backoff(&cfg, "wh_1/a-1-2-3", attempt)
            );
        }
        // Different deliveries spread out.
        let spread: std::collections::HashSet<u128> = (0..20)
            .map(|i| backoff(&cfg, &format!("wh_1/a-{i}"), 3).as_millis())
            .collect();
        assert!(spread.len() > 10);
        assert!(backoff(&cfg, "x", u32::MAX) <= Duration::from_millis(60_000));
    }
}
