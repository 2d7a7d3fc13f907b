//! Starting roles and stopping them in order.
//!
//! One function, [`start`], runs any combination of roles in this process: all of them for
//! `liftguard run` and `liftguard demo`, one for each distributed role. Shutdown is staged
//! so that nothing acknowledged is lost:
//! 1. the gRPC front door closes (no new streams; in-flight acks complete) and readiness
//!    fails;
//!    (alert streams end with UNAVAILABLE: clients resume by cursor); the webhook
//!    dispatcher finishes its in-flight attempts;
//! 2. the ingest producer (and the api's flare-up producer) flushes to the bus;
//! 3. the processor drains its input (embedded bus: until no lag), confirms its output and
//!    commits;
//! 4. the sink drains, writes and commits;
//! 5. the store closes.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use liftguard_bus::{Bus, EmbeddedConfig, KafkaConfig, Producer};
use liftguard_processor::Processor;
use liftguard_runtime::http::{self, Health};
use liftguard_sink::Sink;
use liftguard_store::{Store, StoreOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// Which roles this process runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roles {
    pub ingest: bool,
    pub api: bool,
    pub process: bool,
    pub sink: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        ingest: true,
        api: true,
        process: true,
        sink: true,
    };

    fn needs_store(self) -> bool {
        self.ingest || self.api || self.sink || self.process
    }

    fn needs_grpc(self) -> bool {
        self.ingest || self.api
    }

    fn name(self) -> &'static str {
        match (self.ingest, self.api, self.process, self.sink) {
            (true, true, true, true) => "all",
            (true, false, false, false) => "ingest",
            (false, true, false, false) => "api",
            (false, false, true, false) => "process",
            (false, false, false, true) => "sink",
            _ => "mixed",
        }
    }
}

/// A running node: its bound addresses and the handles to stop it in order.
pub struct Node {
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    /// The api role's dashboard listener, when `[api.dashboard] addr` is set.
    pub dashboard_addr: Option<SocketAddr>,
    pub store: Option<Store>,
    pub bus: Bus,
    health: Health,
    grpc_health: Option<tonic_health::server::HealthReporter>,
    front: CancellationToken,
    grpc: Option<JoinHandle<anyhow::Result<()>>>,
    /// The dashboard's HTTP server (stops with the front door).
    dashboard: Option<JoinHandle<anyhow::Result<()>>>,
    producer: Option<Producer>,
    processor: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
    sink: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
    /// The api role's webhook dispatcher (stopped after the gRPC server).
    webhooks: Option<(CancellationToken, JoinHandle<()>)>,
    ops: (CancellationToken, JoinHandle<anyhow::Result<()>>),
}

/// Opens the store at `url` with at most `max_connections` connections (1 for servers
/// that take a single client, such as the pglite TimescaleDB build) and migrates it.
pub async fn open_store(url: &str, max_connections: u32) -> anyhow::Result<Store> {
    let max_connections = max_connections.max(1);
    let store = Store::connect(url, StoreOptions { max_connections })
        .await
        .with_context(|| format!("connecting to the store at {}", redact(url)))?;
    let backend = store.migrate().await.context("migrating the store")?;
    tracing::info!(?backend, "store ready");
    Ok(store)
}

/// The store URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub fn open_bus(settings: &Settings, client_id: &str) -> anyhow::Result<Bus> {
    let b = &settings.file.bus;
    Ok(match &settings.kafka_brokers {
        Some(brokers) => Bus::kafka(KafkaConfig {
            brokers: brokers.clone(),
            client_id: client_id.to_owned(),
            partitions: i32::try_from(b.partitions).unwrap_or(12),
            extra: b
                .kafka
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
        .context("connecting to Kafka")?,
        None => Bus::embedded(EmbeddedConfig {
            partitions: b.partitions,
            max_retained_per_partition: b.max_retained_per_partition,
        }),
    })
}

/// Starts `roles` and returns once every one of them is serving.
pub async fn start(
    settings: &Settings,
    roles: Roles,
    registry: prometheus::Registry,
) -> anyhow::Result<Node> {
    let health = Health::new();
    let bus = open_bus(settings, &format!("liftguard-{}", roles.name()))?;
    let store = if roles.needs_store() {
        let ready = health.component("store");
        let s = open_store(&settings.database_url, settings.file.store.max_connections).await?;
        ready.set(true);
        Some(s)
    } else {
        None
    };

    let ops_stop = CancellationToken::new();
    let (http_addr, ops_fut) = http::bind(
        settings.http_addr,
        registry.clone(),
        health.clone(),
        ops_stop.clone(),
    )
    .await?;
    let ops = (
        ops_stop,
        tokio::spawn(async move { ops_fut.await.map_err(anyhow::Error::from) }),
    );

    // The embedded bus lives in this process: stopping without draining it would drop
    // acknowledged batches. Kafka keeps them, so distributed roles stop promptly.
    let drain = settings
        .kafka_brokers
        .is_none()
        .then_some(Duration::from_secs(120));
    let mut processor = None;
    if roles.process {
        let stop = CancellationToken::new();
        let store = store
            .clone()
            .context("the processor needs a store (checkpoints)")?;
        let p = Processor::new(settings.file.processor.clone(), &bus, store, &registry)?;
        let ready = health.component("processor");
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            ready.set(true);
            p.run(s, drain).await.map_err(anyhow::Error::from)
        });
        processor = Some((stop, handle));
    }
    let mut sink = None;
    if roles.sink {
        let stop = CancellationToken::new();
        let store = store.clone().context("the sink needs a store")?;
        let k = Sink::new(settings.file.sink.clone(), &bus, store.clone(), &registry)?;
        // Store maintenance (policies; rollup refresh and retention on the fallbacks) runs
        // next to the sink and stops with it.
        let maintenance = liftguard_sink::maintenance::Maintenance::new(
            store,
            settings.file.store.policies(),
            &registry,
        );
        let ready = health.component("sink");
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            ready.set(true);
            let (sunk, ()) = tokio::join!(k.run(s.clone(), drain), maintenance.run(s));
            sunk.map_err(anyhow::Error::from)
        });
        sink = Some((stop, handle));
    }

    let front = CancellationToken::new();
    let mut grpc = None;
    let mut grpc_addr = None;
    let mut producer = None;
    let mut grpc_health = None;
    let mut webhooks = None;
    let mut dashboard = None;
    let mut dashboard_addr = None;
    if roles.needs_grpc() {
        let store = store.clone().context("gRPC roles need a store")?;
        let listener = tokio::net::TcpListener::bind(settings.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC on {}", settings.grpc_addr))?;
        let addr = listener.local_addr()?;
        let mut builder = tonic::service::RoutesBuilder::default();
        let mut names: Vec<&'static str> = Vec::new();
        if roles.ingest {
            let p = bus.producer()?;
            producer = Some(p.clone());
            let mut cfg = settings.file.ingest.clone();
            if settings.operator_token.is_some() {
                cfg.operator_token = settings.operator_token.clone();
            }
            let svc = liftguard_ingest::IngestService::new(cfg, store.clone(), p, &registry);
            builder.add_service(svc.into_server());
            names.push(liftguard_ingest::SERVICE_NAME);
        }
        if roles.api {
            let mut cfg = settings.file.api.clone();
            if settings.operator_token.is_some() {
                cfg.operator_token = settings.operator_token.clone();
            }
            // The pseudonym key: `[api] pseudonym_secret`, overridden by the environment.
            if let Ok(secret) = std::env::var("LIFTGUARD_PSEUDONYM_SECRET")
                && !secret.is_empty()
            {
                cfg.pseudonym_secret = Some(secret);
            }
            let svc = liftguard_api::ApiService::new(cfg, store.clone(), &registry);
            names.extend(svc.add_to(&mut builder));
            // The clinicians' dashboard (HTTP), when configured: closes with the front door.
            if let Some(addr) = svc.config().dashboard.addr {
                let (bound, fut) =
                    liftguard_api::dashboard::bind(addr, svc.clone(), &registry, front.clone())
                        .await?;
                dashboard = Some(tokio::spawn(async move {
                    fut.await.map_err(anyhow::Error::from)
                }));
                dashboard_addr = Some(bound);
                tracing::info!(%bound, "dashboard on http://{bound}/dashboard/");
            }
            // AlertService: its poller and streams stop with the front door; flare-up
            // reports go to the bus through the process's producer (flushed on shutdown).
            let p = match &producer {
                Some(p) => p.clone(),
                None => {
                    let p = bus.producer()?;
                    producer = Some(p.clone());
                    p
                }
            };
            let alerts = liftguard_api::alerts::AlertApi::start(
                svc.clone(),
                svc.config().alerts.clone(),
                p,
                &registry,
                front.clone(),
            )
            .await
            .context("starting the alert service")?;
            names.push(alerts.add_to(&mut builder));
            if svc.config().webhooks.enabled {
                let stop = CancellationToken::new();
                let h = liftguard_api::webhooks::spawn(
                    svc.config().webhooks.clone(),
                    store.clone(),
                    &registry,
                    stop.clone(),
                )?;
                webhooks = Some((stop, h));
            }
        }
        let reporter =
            liftguard_runtime::grpc::add_health_and_reflection(&mut builder, &names).await?;
        grpc_health = Some(reporter);
        let routes = builder.routes();
        let ready = health.component("grpc");
        let stop = front.clone();
        grpc = Some(tokio::spawn(async move {
            ready.set(true);
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    stop.cancelled_owned(),
                )
                .await
                .context("gRPC server failed")
        }));
        grpc_addr = Some(addr);
        tracing::info!(%addr, roles = roles.name(), "gRPC serving");
    }
    tracing::info!(%http_addr, "metrics and health on http://{http_addr}/metrics");
    Ok(Node {
        grpc_addr,
        http_addr,
        dashboard_addr,
        store,
        bus,
        health,
        grpc_health,
        front,
        grpc,
        dashboard,
        producer,
        processor,
        sink,
        webhooks,
        ops,
    })
}

impl Node {
    /// Stops every role in order (see the module docs). On the embedded bus the processor
    /// and the sink first consume everything already on it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.health.set_draining();
        if let Some(h) = &self.grpc_health {
            h.set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
        self.front.cancel();
        if let Some(h) = self.grpc {
            h.await.context("gRPC task panicked")??;
        }
        if let Some(h) = self.dashboard {
            h.await.context("dashboard task panicked")??;
        }
        if let Some((stop, h)) = self.webhooks {
            // In-flight attempts finish (bounded by the request timeout); the rest stay
            // in the outbox for the next start.
            stop.cancel();
            h.await.context("webhook dispatcher panicked")?;
        }
        if let Some(p) = &self.producer {
            p.flush(Duration::from_secs(30))
                .await
                .context("flushing the ingest producer")?;
        }
        if let Some((stop, h)) = self.processor {
            stop.cancel();
            h.await.context("processor task panicked")??;
        }
        if let Some((stop, h)) = self.sink {
            stop.cancel();
            h.await.context("sink task panicked")??;
        }
        if let Some(store) = self.store {
            store.close().await;
        }
        self.ops.0.cancel();
        self.ops.1.await.context("ops endpoint panicked")??;
        tracing::info!("shut down cleanly");
        Ok(())
    }

    /// Runs until SIGTERM/SIGINT, or until a role fails.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let shutdown = liftguard_runtime::shutdown::Shutdown::new();
        shutdown.install_signal_handlers();
        shutdown.wait().await;
        self.shutdown().await
    }
}
