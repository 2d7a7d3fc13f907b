//! Test harness: a real tonic server on 127.0.0.1 (port 0) serving the ingest routes, a
//! real store (SQLite in a temp dir, or PostgreSQL) with two gyms, and a real embedded
//! bus whose consumer the tests read.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use liftguard_bus::{Bus, Consumer, EmbeddedConfig};
use liftguard_ingest::{IngestConfig, IngestService, ingest_routes};
use liftguard_model::{AthleteId, GymId, Placement, SensorId, topics};
use liftguard_proto::v1::{
    AckStatus, Athlete, BatchAck, EnrichedBatch, SampleBatch, SetContext,
    ingest_client::IngestClient,
};
use liftguard_store::{Store, StoreOptions};
use prost::Message as _;
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Status, Streaming, transport::Server};

pub const OPERATOR: &str = "operator-secret-token";
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

pub struct Tenant {
    pub gym: GymId,
    pub key: String,
    pub key_id: String,
    pub athlete: AthleteId,
    pub sensor: SensorId,
}

pub struct Harness {
    pub addr: SocketAddr,
    pub store: Store,
    pub bus: Bus,
    pub consumer: Consumer,
    pub registry: prometheus::Registry,
    pub a: Tenant,
    pub b: Tenant,
    server: JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn tenant(store: &Store, slug: &str, sensor: &str) -> Result<Tenant> {
    let (gym, _) = store.create_gym(slug, &format!("Gym {slug}")).await?;
    let gym = GymId::parse(gym.gym_id)?;
    let key = store.issue_api_key(&gym, "test").await?;
    let athlete = store
        .enroll_athlete(
            &gym,
            &Athlete {
                external_ref: format!("{slug}-m1"),
                display_name: "Test Athlete".into(),
                height_m: 1.8,
                mass_kg: 82.5,
                capacity_deadlift_kg: 180.0,
                ..Default::default()
            },
        )
        .await?;
    let athlete = AthleteId::parse(athlete.athlete_id)?;
    let sensor = SensorId::parse(sensor)?;
    store
        .register_sensor(&gym, &sensor, &athlete, Placement::Thoracolumbar)
        .await?;
    Ok(Tenant {
        gym,
        key: key.secret,
        key_id: key.key_id,
        athlete,
        sensor,
    })
}

impl Harness {
    /// SQLite in a temp dir.
    pub async fn start(cfg: IngestConfig, bus: EmbeddedConfig) -> Result<Harness> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("lg.db").display());
        let store = Store::connect(&url, StoreOptions { max_connections: 4 }).await?;
        Self::start_with(cfg, bus, store, Some(dir)).await
    }

    pub async fn start_with(
        mut cfg: IngestConfig,
        bus_cfg: EmbeddedConfig,
        store: Store,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Harness> {
        store.migrate().await?;
        let a = tenant(&store, "gym-a", "sa-01").await?;
        let b = tenant(&store, "gym-b", "sb-01").await?;
        let bus = Bus::embedded(bus_cfg);
        let consumer = bus.consumer("test-reader", &[topics::SAMPLES])?;
        let registry = prometheus::Registry::new();
        cfg.operator_token = Some(OPERATOR.into());
        let svc = IngestService::new(cfg, store.clone(), bus.producer()?, &registry);
        let routes = ingest_routes(svc).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = Server::builder()
                .add_routes(routes.routes)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Ok(Harness {
            addr,
            store,
            bus,
            consumer,
            registry,
            a,
            b,
            server,
            _dir: dir,
        })
    }

    pub async fn client(&self) -> Result<IngestClient<tonic::transport::Channel>> {
        Ok(IngestClient::connect(format!("http://{}", self.addr)).await?)
    }

    pub async fn open(&self, token: &str) -> Result<Conn, Status> {
        let mut client = self
            .client()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel(256);
        let mut req = Request::new(ReceiverStream::new(rx));
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
        let acks = client.stream_samples(req).await?.into_inner();
        Ok(Conn { tx, acks })
    }

    /// Reads `n` records from the bus, then checks nothing else is there.
    pub async fn read_exactly(&mut self, n: usize) -> Result<Vec<EnrichedBatch>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let m = tokio::time::timeout(TIMEOUT, self.consumer.recv())
                .await
                .with_context(|| format!("waiting for record {i} of {n}"))??;
            assert_eq!(m.topic, topics::SAMPLES);
            let b = EnrichedBatch::decode(m.payload.as_slice())?;
            assert_eq!(m.key, b.athlete_id, "records are keyed by athlete");
            out.push(b);
        }
        // Acks are sent only after the bus has the record, so the log is complete here.
        let lag = self.consumer.lag();
        if lag != 0 {
            bail!("{lag} unexpected extra records on the bus");
        }
        Ok(out)
    }

    /// The value of a counter with the given labels in the harness registry.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }
}

pub struct Conn {
    pub tx: mpsc::Sender<SampleBatch>,
    pub acks: Streaming<BatchAck>,
}

impl Conn {
    pub async fn send(&self, b: SampleBatch) {
        self.tx.send(b).await.expect("request stream open");
    }

    pub async fn ack(&mut self) -> BatchAck {
        tokio::time::timeout(TIMEOUT, self.acks.message())
            .await
            .expect("ack in time")
            .expect("stream ok")
            .expect("stream not ended")
    }

    pub async fn roundtrip(&mut self, b: SampleBatch) -> BatchAck {
        let (sensor, seq) = (b.sensor_id.clone(), b.seq);
        self.send(b).await;
        let ack = self.ack().await;
        assert_eq!((ack.sensor_id.as_str(), ack.seq), (sensor.as_str(), seq));
        ack
    }
}

/// A valid 100 Hz batch of `n` samples; consecutive seqs continue in time from `t0_us`.
pub fn batch(sensor: &SensorId, seq: u64, t0_us: i64, n: usize) -> SampleBatch {
    let first = t0_us + (seq as i64 - 1) * n as i64 * 10_000;
    let wave = |k: usize, a: f32| {
        (0..n).map(move |i| a * ((seq as usize * n + i + k) as f32 * 0.05).sin())
    };
    SampleBatch {
        sensor_id: sensor.as_str().into(),
        seq,
        first_sample_time_us: first,
        sample_rate_hz: 100.0,
        ax: wave(0, 2.0).collect(),
        ay: wave(1, 1.0).collect(),
        az: wave(2, 0.5).map(|v| v + 9.81).collect(),
        gx: wave(3, 0.8).collect(),
        gy: wave(4, 0.4).collect(),
        gz: wave(5, 0.2).collect(),
        set: Some(SetContext {
            set_id: "set-1".into(),
            exercise: 1,
            load_kg: 120.0,
        }),
        reattached: seq == 1,
        end_of_session: false,
    }
}

pub fn status(ack: &BatchAck) -> AckStatus {
    AckStatus::try_from(ack.status).unwrap_or(AckStatus::Unspecified)
}
