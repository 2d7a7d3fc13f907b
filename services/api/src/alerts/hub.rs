//! The alert hub: ONE poller per api process follows the store's alert cursor and fans
//! every new alert out to the process's subscribers through a bounded broadcast channel;
//! [`follow`] turns that into one subscriber's gapless, duplicate-free stream.
//!
//! Invariants:
//! - The poller broadcasts alerts in strictly increasing cursor order, each once. It
//!   relies on the store's guarantee that cursors become visible in cursor order (a read
//!   that sees cursor `c` sees every cursor below it), so following `cursor > last` never
//!   skips an alert.
//! - A subscriber joins the broadcast BEFORE it replays from the store. Everything the
//!   poller broadcasts after the join reaches the subscriber; everything broadcast before
//!   was committed before the replay started, so the replay sees it. The subscriber sends
//!   an alert only if its cursor is above the last it sent: no gap, no duplicate at the
//!   hand-off.
//! - A subscriber that falls behind the broadcast buffer (`Lagged`) re-replays from the
//!   store after the last cursor it sent, then continues live: it is never silently
//!   skipped ahead. A slow client is bounded by its own send buffer; while that buffer
//!   is full it stops reading the broadcast and later re-syncs from the store.
//! - Wake-ups: a timer (`poll_interval_ms`) and, on PostgreSQL, `LISTEN` notifications
//!   sent by the writer's transaction (a notification only triggers an earlier poll).

use std::sync::Arc;
use std::time::Duration;

use liftguard_proto::v1::AlertEvent;
use liftguard_store::{AlertQuery, Scope, Store, StoreError, StoredAlert};
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Tunables of the hub (part of [`super::AlertsConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HubConfig {
    pub poll_interval: Duration,
    pub listen: bool,
    pub broadcast_capacity: usize,
    pub page: u32,
}

#[derive(Clone)]
pub(crate) struct HubMetrics {
    pub polled: IntCounter,
    pub poll_errors: IntCounter,
    pub cursor: IntGauge,
    pub sent: IntCounterVec,
    pub resyncs: IntCounter,
}

/// The process's poller and its broadcast.
pub(crate) struct AlertHub {
    tx: broadcast::Sender<Arc<StoredAlert>>,
    store: Store,
    page: u32,
    metrics: HubMetrics,
}

impl AlertHub {
    /// Starts the poller from the store's current last cursor; it stops with `stop`.
    pub(crate) async fn start(
        store: Store,
        cfg: HubConfig,
        metrics: HubMetrics,
        stop: CancellationToken,
    ) -> Result<Arc<AlertHub>, StoreError> {
        let last = store.last_alert_cursor().await?;
        metrics.cursor.set(last);
        let (tx, _) = broadcast::channel(cfg.broadcast_capacity.max(16));
        let hub = Arc::new(AlertHub {
            tx,
            store,
            page: cfg.page.clamp(1, liftguard_store::alerts::MAX_ALERT_PAGE),
            metrics,
        });
        let poller = hub.clone();
        tokio::spawn(async move { poller.poll_loop(cfg, last, stop).await });
        Ok(hub)
    }

    async fn poll_loop(self: Arc<Self>, cfg: HubConfig, mut last: i64, stop: CancellationToken) {
        let mut listener = if cfg.listen {
            match self.store.alert_listener().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN for alerts failed; polling on the timer only");
                    None
                }
            }
        } else {
            None
        };
        let mut tick = tokio::time::interval(cfg.poll_interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = cfg.poll_interval;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
                n = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = n {
                        tracing::warn!(error = %e, "alert LISTEN connection failed; polling on the timer only");
                        listener = None;
                    }
                }
            }
            match self.poll_once(&mut last).await {
                Ok(()) => backoff = cfg.poll_interval,
                Err(e) => {
                    self.metrics.poll_errors.inc();
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "alert poll failed");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::debug!("alert poller stopped");
    }

    /// Broadcasts every alert after `last` (all pages), advancing `last`.
    async fn poll_once(&self, last: &mut i64) -> Result<(), StoreError> {
        loop {
            let page = self
                .store
                .list_alerts(&Scope::all(), &AlertQuery::after(*last, self.page))
                .await?;
            let full = page.len() == self.page as usize;
            for a in page {
                *last = a.cursor;
                self.metrics.polled.inc();
                // No receiver is fine: nobody subscribes right now.
                let _ = self.tx.send(Arc::new(a));
            }
            self.metrics.cursor.set(*last);
            if !full {
                return Ok(());
            }
        }
    }
}

/// Why a subscription ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The client went away.
    ClientGone,
    /// The server is stopping (resume elsewhere with the last cursor).
    Stopping,
    /// The store failed during a replay.
    Store(StoreError),
}

pub(crate) fn event(a: &StoredAlert) -> AlertEvent {
    AlertEvent {
        cursor: a.cursor,
        alert: Some(a.alert.clone()),
        acknowledged: a.acknowledged_at_us.is_some(),
        acknowledged_at_us: a.acknowledged_at_us.unwrap_or_default(),
        acknowledged_by: a.acknowledged_by.clone().unwrap_or_default(),
    }
}

fn visible(scope: &Scope, a: &StoredAlert) -> bool {
    let (Ok(g), Ok(ath)) = (
        liftguard_model::GymId::parse(a.alert.gym_id.as_str()),
        liftguard_model::AthleteId::parse(a.alert.athlete_id.as_str()),
    ) else {
        return false;
    };
    scope.covers_athlete(&g, &ath)
}

/// Streams `scope`'s alerts after `after` into `out`: replay, then live, until the client
/// goes away, `stop` fires, or the store fails during a replay.
pub(crate) async fn follow(
    hub: &AlertHub,
    scope: &Scope,
    after: i64,
    out: &mpsc::Sender<Result<AlertEvent, tonic::Status>>,
    stop: &CancellationToken,
) -> Ended {
    // Join first (module docs: this ordering is what makes the hand-off gapless).
    let mut rx = hub.tx.subscribe();
    let mut last = after;
    if let Err(e) = replay(hub, scope, &mut last, out, stop).await {
        return e;
    }
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ended::Stopping,
            _ = out.closed() => return Ended::ClientGone,
            r = rx.recv() => r,
        };
        match next {
            Ok(a) => {
                if a.cursor <= last || !visible(scope, &a) {
                    continue;
                }
                last = a.cursor;
                if send(out, stop, event(&a)).await.is_err() {
                    return Ended::ClientGone;
                }
                hub.metrics.sent.with_label_values(&["live"]).inc();
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                hub.metrics.resyncs.inc();
                tracing::debug!(
                    skipped = n,
                    last,
                    "subscriber lagged; re-syncing from the store"
                );
                if let Err(e) = replay(hub, scope, &mut last, out, stop).await {
                    return e;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return Ended::Stopping,
        }
    }
}

/// Sends every stored alert of the scope after `last`, advancing `last`.
async fn replay(
    hub: &AlertHub,
    scope: &Scope,
    last: &mut i64,
    out: &mpsc::Sender<Result<AlertEvent, tonic::Status>>,
    stop: &CancellationToken,
) -> Result<(), Ended> {
    loop {
        let page = hub
            .store
            .list_alerts(scope, &AlertQuery::after(*last, hub.page))
            .await
            .map_err(Ended::Store)?;
        let full = page.len() == hub.page as usize;
        for a in page {
            *last = a.cursor;
            send(out, stop, event(&a)).await?;
            hub.metrics.sent.with_label_values(&["replay"]).inc();
        }
        if !full {
            return Ok(());
        }
    }
}

async fn send(
    out: &mpsc::Sender<Result<AlertEvent, tonic::Status>>,
    stop: &CancellationToken,
    ev: AlertEvent,
) -> Result<(), Ended> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => Err(Ended::Stopping),
        r = out.send(Ok(ev)) => r.map_err(|_| Ended::ClientGone),
    }
}
