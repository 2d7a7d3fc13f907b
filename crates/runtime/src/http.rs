//! The operations endpoint every long-running role serves over HTTP:
//! - `GET /metrics`: the process's Prometheus registry in text exposition format;
//! - `GET /healthz`: liveness, 200 while the process runs;
//! - `GET /readyz`: readiness, 200 only when every registered component is ready and the
//!   process is not shutting down, else 503 with the components that are not.
//!
//! Invariant: these handlers never block on the data path (they read atomics and the
//! metrics registry only).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// Readiness of the process's components.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    components: Mutex<Vec<(String, Arc<AtomicBool>)>>,
    draining: AtomicBool,
}

/// A handle a component uses to report its own readiness.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component, initially not ready.
    pub fn component(&self, name: &str) -> Readiness {
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut c) = self.inner.components.lock() {
            c.push((name.to_owned(), flag.clone()));
        }
        Readiness(flag)
    }

    /// Marks the process as draining: readiness fails from now on (load balancers stop
    /// sending traffic) while liveness stays up.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// `Ok` when ready, else the names of what is not.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut not_ready = Vec::new();
        if self.inner.draining.load(Ordering::Acquire) {
            not_ready.push("draining".to_owned());
        }
        if let Ok(c) = self.inner.components.lock() {
            for (name, flag) in c.iter() {
                if !flag.load(Ordering::Acquire) {
                    not_ready.push(name.clone());
                }
            }
        }
        if not_ready.is_empty() {
            Ok(())
        } else {
            Err(not_ready)
        }
    }
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    health: Health,
}

/// The router, for embedding or tests.
pub fn router(registry: Registry, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health })
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&s.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            buf,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match s.health.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(missing) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", missing.join(", ")),
        ),
    }
}

/// Errors of the HTTP endpoint.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot bind the operations endpoint on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("operations endpoint failed: {0}")]
    Serve(std::io::Error),
}

/// Binds `addr` and returns the bound address plus a future serving until `stop` fires.
pub async fn bind(
    addr: SocketAddr,
    registry: Registry,
    health: Health,
    stop: CancellationToken,
) -> Result<
    (
        SocketAddr,
        impl std::future::Future<Output = Result<(), HttpError>>,
    ),
    HttpError,
> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let app = router(registry, health);
    let fut = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .map_err(HttpError::Serve)
    };
    Ok((local, fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_component_and_no_drain() {
        let h = Health::new();
        assert!(h.check().is_ok());
        let a = h.component("bus");
        let b = h.component("store");
        assert_eq!(h.check(), Err(vec!["bus".to_owned(), "store".to_owned()]));
        a.set(true);
        b.set(true);
        assert!(h.check().is_ok());
        h.set_draining();
        assert_eq!(h.check(), Err(vec!["draining".to_owned()]));
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness_over_tcp() {
        let registry = Registry::new();
        let c = prometheus::IntCounter::new("liftguard_test_total", "test").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let health = Health::new();
        let ready = health.component("x");
        let stop = CancellationToken::new();
        let (addr, fut) = bind(
            "127.0.0.1:0".parse().unwrap(),
            registry,
            health,
            stop.clone(),
        )
        .await
        .unwrap();
        let server = tokio::spawn(fut);
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        let body = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("liftguard_test_total 3"), "{body}");
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 503);
        ready.set(true);
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        stop.cancel();
        server.await.unwrap().unwrap();
    }
}
