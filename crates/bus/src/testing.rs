//! Test support: [`MockKafka`], librdkafka's in-process mock Kafka cluster, reachable over
//! TCP (`127.0.0.1:<port>`) by this and other processes for as long as the value lives.
//!
//! Invariants:
//! - The cluster is owned by one dedicated thread (librdkafka's mock-cluster handle is
//!   neither `Send` nor `Sync` in rdkafka's API); the thread serves commands over a channel
//!   and destroys the cluster when the `MockKafka` is dropped (the drop joins the thread).
//! - The group initial rebalance delay is 0 (the real broker's default is 3 s), so consumer
//!   groups form as soon as members join. This file holds the crate's only `unsafe` code.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer as _};

use crate::BusError;

enum Cmd {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::SyncSender<Result<(), BusError>>,
    },
}

/// A mock Kafka cluster for tests (see the module docs).
pub struct MockKafka {
    bootstrap: String,
    brokers: i32,
    cmds: Option<mpsc::Sender<Cmd>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKafka")
            .field("bootstrap", &self.bootstrap)
            .field("brokers", &self.brokers)
            .finish()
    }
}

impl MockKafka {
    /// Starts a mock cluster of `brokers` brokers (1..=16).
    pub fn start(brokers: i32) -> Result<MockKafka, BusError> {
        if !(1..=16).contains(&brokers) {
            return Err(BusError::InvalidArgument(format!(
                "mock cluster needs 1..=16 brokers, got {brokers}"
            )));
        }
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("lg-mock-kafka".into())
            .spawn(move || serve(brokers, &ready_tx, &cmd_rx))
            .map_err(|e| BusError::Unavailable(format!("cannot start mock kafka thread: {e}")))?;
        let bootstrap = match ready_rx.recv() {
            Ok(r) => r,
            Err(_) => Err(BusError::Unavailable(
                "mock kafka thread exited during start".into(),
            )),
        };
        match bootstrap {
            Ok(bootstrap) => Ok(MockKafka {
                bootstrap,
                brokers,
                cmds: Some(cmd_tx),
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    /// `host:port,...` of the mock brokers, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// Creates `name` with `partitions` partitions (replication min(brokers, 3)).
    /// The mock has no CreateTopics API; this is the way to get a partition count other
    /// than the mock's auto-creation default (4).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BusError> {
        crate::validate_topic(name)?;
        if partitions < 1 {
            return Err(BusError::InvalidArgument(format!(
                "partitions must be >= 1, got {partitions}"
            )));
        }
        let (reply, rx) = mpsc::sync_channel(1);
        let cmds = self.cmds.as_ref().ok_or(BusError::Closed)?;
        cmds.send(Cmd::CreateTopic {
            name: name.to_owned(),
            partitions,
            reply,
        })
        .map_err(|_| BusError::Closed)?;
        rx.recv().map_err(|_| BusError::Closed)?
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        // Closing the command channel ends the thread, which destroys the cluster.
        self.cmds.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread owning the mock cluster: a producer client created with
/// `test.mock.num.brokers` owns the cluster; dropping the client destroys it.
fn serve(
    brokers: i32,
    ready: &mpsc::SyncSender<Result<String, BusError>>,
    cmds: &mpsc::Receiver<Cmd>,
) {
    let mut cfg = ClientConfig::new();
    cfg.set("test.mock.num.brokers", brokers.to_string())
        .set("client.id", "liftguard-mock-kafka");
    let producer: BaseProducer = match cfg.create() {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let Some(mock) = producer.client().mock_cluster() else {
        let _ = ready.send(Err(BusError::Unavailable(
            "librdkafka created no mock cluster".into(),
        )));
        return;
    };
    if !disable_initial_rebalance_delay(producer.client()) {
        let _ = ready.send(Err(BusError::Unavailable(
            "mock cluster handle unavailable".into(),
        )));
        return;
    }
    let bootstrap = mock.bootstrap_servers();
    tracing::info!(%bootstrap, brokers, "mock kafka cluster started");
    if ready.send(Ok(bootstrap)).is_err() {
        return;
    }
    let replication = brokers.min(3);
    loop {
        match cmds.recv_timeout(Duration::from_millis(200)) {
            Ok(Cmd::CreateTopic {
                name,
                partitions,
                reply,
            }) => {
                let r = mock
                    .create_topic(&name, partitions, replication)
                    .map_err(BusError::from);
                let _ = reply.send(r);
            }
            // Serve the owning client's event queue (logs) so it never accumulates.
            Err(mpsc::RecvTimeoutError::Timeout) => producer.poll(Duration::ZERO),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(mock);
    drop(producer);
    tracing::info!("mock kafka cluster stopped");
}

/// Sets the mock cluster's group initial rebalance delay to 0. Returns false if `client`
/// owns no mock cluster.
#[allow(unsafe_code)]
fn disable_initial_rebalance_delay<C: ClientContext>(client: &Client<C>) -> bool {
    // SAFETY: `client.native_ptr()` is a valid `rd_kafka_t*` for as long as `client` is
    // borrowed. `rd_kafka_handle_mock_cluster` only reads that handle and returns the mock
    // cluster the client created for `test.mock.num.brokers` (or null); the cluster is
    // destroyed only together with the client, which outlives this call. The setter writes
    // one integer under the cluster's own mutex (`mcluster->lock`), so calling it from this
    // thread while the mock broker threads run is sound.
    unsafe {
        let mcluster = rdkafka_sys::rd_kafka_handle_mock_cluster(client.native_ptr());
        if mcluster.is_null() {
            return false;
        }
        rdkafka_sys::rd_kafka_mock_group_initial_rebalance_delay_ms(mcluster, 0);
    }
    true
}
