//! The bus contract, run against both implementations: the embedded bus and Kafka on
//! librdkafka's mock cluster over TCP (`MockKafka`). Implementation-specific behaviour
//! (embedded bounds and retention; Kafka idempotence and producer queue bound) follows.
//!
//! No sleeps as synchronisation: every wait polls a condition against a deadline.

// Tests may unwrap (workplace standard); the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liftguard_bus::testing::MockKafka;
use liftguard_bus::{
    Bus, BusError, Consumer, EmbeddedConfig, KafkaConfig, Message, RebalanceEvent,
};
use liftguard_model::ErrorKind;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Test environment and helpers
// ---------------------------------------------------------------------------------------

struct Env {
    bus: Bus,
    mock: Option<MockKafka>,
}

/// Small session timeout: librdkafka's mock coordinator waits `session.timeout.ms - 1 s`
/// for members to rejoin after any membership change (its initial delay we set to 0).
fn kafka_test_extra() -> Vec<(String, String)> {
    [
        ("consumer.session.timeout.ms", "2000"),
        ("consumer.heartbeat.interval.ms", "100"),
        ("consumer.fetch.wait.max.ms", "20"),
        ("consumer.fetch.error.backoff.ms", "20"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Env {
    fn embedded() -> Env {
        Env {
            bus: Bus::embedded(EmbeddedConfig {
                partitions: PARTITIONS as u32,
                max_retained_per_partition: 10_000,
            }),
            mock: None,
        }
    }

    fn kafka_with(extra: Vec<(String, String)>) -> Env {
        let mock = MockKafka::start(1).expect("mock kafka starts");
        let bus = Bus::kafka(KafkaConfig {
            brokers: mock.bootstrap_servers(),
            client_id: "bus-test".into(),
            partitions: PARTITIONS,
            extra,
        })
        .expect("kafka bus");
        Env {
            bus,
            mock: Some(mock),
        }
    }

    fn kafka() -> Env {
        Env::kafka_with(kafka_test_extra())
    }

    /// A topic with `PARTITIONS` partitions (embedded: auto-created with that count).
    fn topic(&self, name: &str) -> String {
        if let Some(m) = &self.mock {
            m.create_topic(name, PARTITIONS).expect("create topic");
        }
        name.to_owned()
    }
}

fn payload(key: &str, seq: usize) -> Vec<u8> {
    format!("{key}:{seq}").into_bytes()
}

fn parse(m: &Message) -> (String, usize) {
    let s = std::str::from_utf8(&m.payload).expect("utf8 payload");
    let (k, n) = s.rsplit_once(':').expect("key:seq");
    (k.to_owned(), n.parse().expect("seq"))
}

/// Sends `per_key` records for each of `keys` keys (interleaved), awaits every delivery.
async fn produce(bus: &Bus, topic: &str, keys: usize, per_key: usize) -> Vec<(String, usize)> {
    let p = bus.producer().expect("producer");
    let mut futs = Vec::new();
    let mut sent = Vec::new();
    for seq in 0..per_key {
        for k in 0..keys {
            let key = format!("athlete-{k}");
            futs.push(p.send(topic, &key, payload(&key, seq)).expect("send"));
            sent.push((key, seq));
        }
    }
    for f in futs {
        timeout(DEADLINE, f)
            .await
            .expect("delivery in time")
            .expect("delivered");
    }
    sent
}

#[derive(Default, Clone)]
struct Snapshot {
    assignment: Vec<(String, i32)>,
    lag: i64,
}

/// A consumer driven by its own task: forwards every record, optionally commits each
/// record before forwarding it, stops receiving after `limit` records, and publishes its
/// assignment and lag on every turn.
struct Driver {
    rx: mpsc::UnboundedReceiver<Message>,
    snap: Arc<Mutex<Snapshot>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Consumer>,
}

fn drive(mut c: Consumer, commit: bool, limit: Option<usize>) -> Driver {
    let (tx, rx) = mpsc::unbounded_channel();
    let snap = Arc::new(Mutex::new(Snapshot::default()));
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let snap = snap.clone();
        let stop = stop.clone();
        async move {
            let mut n = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                let receiving = limit.is_none_or(|l| n < l);
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                    r = c.recv(), if receiving => {
                        let m = r.expect("recv");
                        if commit {
                            c.commit(&[(m.topic.clone(), m.partition, m.offset + 1)]).expect("commit");
                        }
                        n += 1;
                        let _ = tx.send(m);
                    }
                }
                *snap.lock().unwrap() = Snapshot {
                    assignment: c.assignment(),
                    lag: c.lag(),
                };
            }
            c
        }
    });
    Driver {
        rx,
        snap,
        stop,
        task,
    }
}

impl Driver {
    fn snapshot(&self) -> Snapshot {
        self.snap.lock().unwrap().clone()
    }

    /// Receives exactly `n` records (fails at the deadline).
    async fn take(&mut self, n: usize) -> Vec<Message> {
        let mut out = Vec::with_capacity(n);
        let until = Instant::now() + DEADLINE;
        while out.len() < n {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Ok(Some(m)) => out.push(m),
                Ok(None) => panic!("driver ended after {} of {n} records", out.len()),
                Err(_) => panic!("only {} of {n} records before the deadline", out.len()),
            }
        }
        out
    }

    /// Waits until `f(snapshot)` holds.
    async fn wait(&self, what: &str, f: impl Fn(&Snapshot) -> bool) {
        let until = Instant::now() + DEADLINE;
        loop {
            if f(&self.snapshot()) {
                return;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}: {:?}",
                self.snapshot().assignment
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the task and returns the consumer, plus anything received but not taken.
    async fn stop(mut self) -> (Consumer, Vec<Message>) {
        self.stop.cancel();
        let c = self.task.await.expect("driver task");
        let mut rest = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            rest.push(m);
        }
        (c, rest)
    }
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    let until = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn all_partitions(topic: &str) -> Vec<(String, i32)> {
    (0..PARTITIONS).map(|p| (topic.to_owned(), p)).collect()
}

/// Receives the next rebalance event within the deadline.
async fn next_event(rx: &mut broadcast::Receiver<RebalanceEvent>) -> RebalanceEvent {
    timeout(DEADLINE, rx.recv())
        .await
        .expect("rebalance event in time")
        .expect("event channel open")
}

// ---------------------------------------------------------------------------------------
// The contract (both implementations)
// ---------------------------------------------------------------------------------------

/// Records of one key arrive in send order, all from one partition.
async fn per_key_order_preserved(env: Env) {
    let topic = env.topic("order");
    let c = env.bus.consumer("g-order", &[&topic]).unwrap();
    let mut d = drive(c, true, None);
    produce(&env.bus, &topic, 6, 50).await;
    let got = d.take(300).await;
    let mut by_key: BTreeMap<String, Vec<(usize, i32, i64)>> = BTreeMap::new();
    for m in &got {
        let (k, seq) = parse(m);
        assert_eq!(k, m.key);
        by_key
            .entry(k)
            .or_default()
            .push((seq, m.partition, m.offset));
    }
    assert_eq!(by_key.len(), 6);
    for (k, v) in by_key {
        let seqs: Vec<usize> = v.iter().map(|x| x.0).collect();
        assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "order of {k}");
        let parts: BTreeSet<i32> = v.iter().map(|x| x.1).collect();
        assert_eq!(parts.len(), 1, "{k} spread over partitions {parts:?}");
        assert!(
            v.windows(2).all(|w| w[0].2 < w[1].2),
            "offsets of {k} increase"
        );
    }
    d.stop().await;
}

/// A consumer that commits as it goes gets every record exactly once, and a new member
/// of the group resumes after the last commit (nothing is redelivered).
async fn exactly_once_with_commits(env: Env) {
    let topic = env.topic("once");
    let sent = produce(&env.bus, &topic, 10, 20).await;
    let mut d = drive(env.bus.consumer("g-once", &[&topic]).unwrap(), true, None);
    let got = d.take(sent.len()).await;
    let mut counts: HashMap<(String, usize), usize> = HashMap::new();
    for m in &got {
        *counts.entry(parse(m)).or_default() += 1;
    }
    assert_eq!(counts.len(), sent.len(), "every record delivered");
    assert!(counts.values().all(|c| *c == 1), "no record twice");
    d.wait("lag 0", |s| s.lag == 0).await;
    let (c, rest) = d.stop().await;
    assert!(rest.is_empty(), "no extra records: {rest:?}");
    c.close().await;

    // A new member of the same group sees only what is produced after the commits.
    let mut d = drive(env.bus.consumer("g-once", &[&topic]).unwrap(), true, None);
    produce(&env.bus, &topic, 1, 1).await;
    let next = d.take(1).await;
    assert_eq!(parse(&next[0]), ("athlete-0".to_owned(), 0));
    d.wait("lag 0", |s| s.lag == 0).await;
    let (_, rest) = d.stop().await;
    assert!(rest.is_empty(), "nothing redelivered: {rest:?}");
}

/// A member that stops without committing leaves its records to the next member, which
/// gets exactly what was not committed.
async fn uncommitted_records_are_redelivered(env: Env) {
    let topic = env.topic("redeliver");
    let sent = produce(&env.bus, &topic, 8, 10).await;
    let mut a = env.bus.consumer("g-re", &[&topic]).unwrap();
    // A: commit the first 30 records it receives, then receive the rest without committing.
    let mut committed = Vec::new();
    let mut uncommitted = BTreeSet::new();
    let until = Instant::now() + DEADLINE;
    while committed.len() + uncommitted.len() < sent.len() {
        let m = tokio::time::timeout_at(until, a.recv())
            .await
            .expect("in time")
            .unwrap();
        if committed.len() < 30 {
            // Per partition the commits must stay a prefix: commit every record of a
            // partition up to here, in order.
            a.commit(&[(m.topic.clone(), m.partition, m.offset + 1)])
                .unwrap();
            committed.push(parse(&m));
        } else {
            uncommitted.insert((m.partition, m.offset, parse(&m)));
        }
    }
    // Records received after the first 30 on a partition whose later record was committed
    // cannot exist: commits happened before them in receive order, and each partition is
    // received in offset order. So "uncommitted" is exactly what B must get.
    a.close().await;

    let mut b = drive(env.bus.consumer("g-re", &[&topic]).unwrap(), true, None);
    let got = b.take(uncommitted.len()).await;
    let got: BTreeSet<(i32, i64, (String, usize))> = got
        .iter()
        .map(|m| (m.partition, m.offset, parse(m)))
        .collect();
    assert_eq!(got, uncommitted);
    b.wait("lag 0", |s| s.lag == 0).await;
    let (_, rest) = b.stop().await;
    assert!(rest.is_empty(), "committed records came back: {rest:?}");
}

/// Two members split the partitions; each key goes to exactly one of them.
async fn two_consumers_split_partitions(env: Env) {
    let topic = env.topic("split");
    let a = drive(env.bus.consumer("g-split", &[&topic]).unwrap(), true, None);
    a.wait("a owns everything", |s| {
        s.assignment.len() == PARTITIONS as usize
    })
    .await;
    let b = drive(env.bus.consumer("g-split", &[&topic]).unwrap(), true, None);
    let stable = |a: &Snapshot, b: &Snapshot| {
        let sa: BTreeSet<_> = a.assignment.iter().cloned().collect();
        let sb: BTreeSet<_> = b.assignment.iter().cloned().collect();
        !sa.is_empty()
            && !sb.is_empty()
            && sa.is_disjoint(&sb)
            && sa.union(&sb).cloned().collect::<Vec<_>>() == all_partitions(&topic)
    };
    wait_for("a and b split the partitions", || {
        stable(&a.snapshot(), &b.snapshot())
    })
    .await;
    let (sa, sb) = (a.snapshot(), b.snapshot());

    let sent = produce(&env.bus, &topic, 40, 5).await;
    let (mut a, mut b) = (a, b);
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    let until = Instant::now() + DEADLINE;
    while got_a.len() + got_b.len() < sent.len() {
        tokio::select! {
            Some(m) = a.rx.recv() => got_a.push(m),
            Some(m) = b.rx.recv() => got_b.push(m),
            () = tokio::time::sleep_until(until) => panic!("only {} of {}", got_a.len() + got_b.len(), sent.len()),
        }
    }
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both members got records"
    );
    let keys_a: BTreeSet<String> = got_a.iter().map(|m| m.key.clone()).collect();
    let keys_b: BTreeSet<String> = got_b.iter().map(|m| m.key.clone()).collect();
    assert!(keys_a.is_disjoint(&keys_b), "a key went to both members");
    assert_eq!(keys_a.len() + keys_b.len(), 40);
    assert!(
        got_a
            .iter()
            .all(|m| sa.assignment.contains(&(m.topic.clone(), m.partition)))
    );
    assert!(
        got_b
            .iter()
            .all(|m| sb.assignment.contains(&(m.topic.clone(), m.partition)))
    );
    let all: BTreeSet<(String, usize)> = got_a.iter().chain(&got_b).map(parse).collect();
    assert_eq!(all.len(), sent.len(), "no duplicates, nothing missing");
    a.stop().await;
    b.stop().await;
}

/// Offsets committed by one consumer are where a re-created consumer resumes.
async fn offsets_resume_after_recreate(env: Env) {
    let topic = env.topic("resume");
    let sent = produce(&env.bus, &topic, 5, 20).await;
    let mut a = drive(
        env.bus.consumer("g-resume", &[&topic]).unwrap(),
        true,
        Some(40),
    );
    let first = a.take(40).await;
    let (c, rest) = a.stop().await;
    assert!(rest.is_empty());
    c.close().await;

    let mut b = drive(env.bus.consumer("g-resume", &[&topic]).unwrap(), true, None);
    let second = b.take(sent.len() - 40).await;
    b.wait("lag 0", |s| s.lag == 0).await;
    let (_, rest) = b.stop().await;
    assert!(rest.is_empty(), "redelivered after commit: {rest:?}");
    let a_set: BTreeSet<_> = first.iter().map(parse).collect();
    let b_set: BTreeSet<_> = second.iter().map(parse).collect();
    assert!(a_set.is_disjoint(&b_set));
    assert_eq!(a_set.len() + b_set.len(), sent.len());
}

/// `flush` waits for everything sent, even when the delivery futures were dropped.
async fn flush_delivers_everything(env: Env) {
    let topic = env.topic("flush");
    let p = env.bus.producer().unwrap();
    for i in 0..500 {
        let key = format!("k{}", i % 17);
        drop(p.send(&topic, &key, payload(&key, i)).unwrap());
    }
    p.flush(Duration::from_secs(20)).await.expect("flush");
    let mut d = drive(env.bus.consumer("g-flush", &[&topic]).unwrap(), true, None);
    let got = d.take(500).await;
    let seqs: BTreeSet<usize> = got.iter().map(|m| parse(m).1).collect();
    assert_eq!(seqs.len(), 500);
    d.stop().await;
}

/// `lag()` counts the records the group has not consumed on the assigned partitions.
async fn lag_counts_unconsumed(env: Env) {
    let topic = env.topic("lag");
    produce(&env.bus, &topic, 7, 6).await;
    let mut d = drive(
        env.bus.consumer("g-lag", &[&topic]).unwrap(),
        false,
        Some(12),
    );
    d.take(12).await;
    d.wait("lag 30", |s| s.lag == 30).await;
    d.stop().await;
}

/// Members are told about assignment changes; leaving hands partitions back.
async fn rebalance_events_track_assignment(env: Env) {
    let topic = env.topic("events");
    let mut ca = env.bus.consumer("g-ev", &[&topic]).unwrap();
    let mut ev_a = ca.rebalance_events();
    let a = drive(ca, true, None);
    match next_event(&mut ev_a).await {
        RebalanceEvent::Assigned(tps) => assert_eq!(tps, all_partitions(&topic)),
        e => panic!("unexpected {e:?}"),
    }
    let b = drive(env.bus.consumer("g-ev", &[&topic]).unwrap(), true, None);
    // A loses partitions (Kafka's eager protocol: all of them, then gets some back).
    let mut revoked = false;
    let until = Instant::now() + DEADLINE;
    while !revoked {
        assert!(Instant::now() < until, "no revocation");
        if let RebalanceEvent::Revoked(tps) = next_event(&mut ev_a).await {
            assert!(!tps.is_empty());
            revoked = true;
        }
    }
    b.wait("b assigned", |s| !s.assignment.is_empty()).await;
    let (cb, _) = b.stop().await;
    cb.close().await;
    a.wait("a owns everything again", |s| {
        s.assignment == all_partitions(&topic)
    })
    .await;
    a.stop().await;
}

/// Commits are fenced: a partition the consumer does not own is refused.
async fn commit_of_unowned_partition_is_refused(env: Env) {
    let topic = env.topic("fence");
    let other = env.topic("fence-other");
    let c = env.bus.consumer("g-fence", &[&topic]).unwrap();
    let d = drive(c, true, None);
    d.wait("assigned", |s| s.assignment.len() == PARTITIONS as usize)
        .await;
    let (c, _) = d.stop().await;
    let e = c.commit(&[(other.clone(), 0, 1)]).unwrap_err();
    assert!(matches!(e, BusError::NotAssigned { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = c.commit(&[(topic.clone(), 0, -5)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(env.bus.stats().commit_failed >= 2);
}

/// `close` ends pending `recv`s and refuses sends.
async fn close_ends_recv_and_send(env: Env) {
    let topic = env.topic("close");
    let mut c = env.bus.consumer("g-close", &[&topic]).unwrap();
    let p = env.bus.producer().unwrap();
    let pending = tokio::spawn(async move { c.recv().await });
    // Let the consumer block in recv (if it has not yet, close is seen at entry instead).
    tokio::task::yield_now().await;
    env.bus.close();
    let r = timeout(DEADLINE, pending)
        .await
        .expect("recv returns")
        .unwrap();
    assert!(matches!(r, Err(BusError::Closed)), "{r:?}");
    assert!(matches!(
        p.send(&topic, "k", vec![1]),
        Err(BusError::Closed)
    ));
    assert!(matches!(
        env.bus.consumer("g2", &[&topic]),
        Err(BusError::Closed)
    ));
}

/// Bad names are refused with a precise error, before any I/O.
async fn bad_input_is_invalid_argument(env: Env) {
    let p = env.bus.producer().unwrap();
    let e = p.send("bad topic", "k", vec![]).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = env.bus.consumer("", &["t"]).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = env.bus.consumer("g", &[]).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::embedded()).await;
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::kafka()).await;
                }
            )*
        }
    };
}

contract!(
    per_key_order_preserved,
    exactly_once_with_commits,
    uncommitted_records_are_redelivered,
    two_consumers_split_partitions,
    offsets_resume_after_recreate,
    flush_delivers_everything,
    lag_counts_unconsumed,
    rebalance_events_track_assignment,
    commit_of_unowned_partition_is_refused,
    close_ends_recv_and_send,
    bad_input_is_invalid_argument,
);

// ---------------------------------------------------------------------------------------
// Embedded only: bounds and retention
// ---------------------------------------------------------------------------------------

fn one_partition(max: usize) -> Bus {
    Bus::embedded(EmbeddedConfig {
        partitions: 1,
        max_retained_per_partition: max,
    })
}

#[tokio::test]
async fn embedded_bound_gives_queue_full_and_recovers_after_commit() {
    let bus = one_partition(10);
    let mut c = bus.consumer("g", &["t"]).unwrap();
    let p = bus.producer().unwrap();
    for i in 0..10 {
        p.send("t", "k", vec![i]).unwrap().await.unwrap();
    }
    let e = p.send("t", "k", vec![10]).err().expect("full");
    assert!(matches!(e, BusError::QueueFull));
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
    assert_eq!(bus.stats().queue_full, 1);

    // Consuming alone frees nothing; committing does.
    let mut last = None;
    for _ in 0..4 {
        last = Some(c.recv().await.unwrap());
    }
    assert!(p.send("t", "k", vec![10]).is_err());
    let last = last.unwrap();
    c.commit(&[(last.topic.clone(), last.partition, last.offset + 1)])
        .unwrap();
    assert_eq!(bus.retained("t"), Some(6));
    for i in 0..4 {
        let d = p.send("t", "k", vec![20 + i]).unwrap().await.unwrap();
        assert_eq!(d.offset, 10 + i64::from(i));
    }
    assert!(matches!(
        p.send("t", "k", vec![0]),
        Err(BusError::QueueFull)
    ));
    let s = bus.stats();
    assert_eq!((s.sent, s.queue_full, s.retained), (14, 3, 10));
}

#[tokio::test]
async fn embedded_retention_follows_slowest_group_and_new_groups_start_at_earliest() {
    let bus = one_partition(100);
    let fast = bus.consumer("fast", &["t"]).unwrap();
    let slow = bus.consumer("slow", &["t"]).unwrap();
    let p = bus.producer().unwrap();
    for i in 0..10u8 {
        p.send("t", "k", vec![i]).unwrap().await.unwrap();
    }
    fast.commit(&[("t".into(), 0, 10)]).unwrap();
    assert_eq!(bus.retained("t"), Some(10), "slow group holds the log");
    slow.commit(&[("t".into(), 0, 4)]).unwrap();
    assert_eq!(bus.retained("t"), Some(6));
    // Groups keep holding retention after their members leave.
    drop(slow);
    fast.commit(&[("t".into(), 0, 10)]).unwrap();
    assert_eq!(bus.retained("t"), Some(6));
    // A new group starts at the earliest retained offset.
    let mut fresh = bus.consumer("fresh", &["t"]).unwrap();
    let m = fresh.recv().await.unwrap();
    assert_eq!((m.offset, m.payload.clone()), (4, vec![4]));
    // Committing beyond the log end is refused.
    let e = fresh.commit(&[("t".into(), 0, 11)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn embedded_unsubscribed_topic_fills_up_and_ensure_topics_creates() {
    let bus = one_partition(3);
    bus.ensure_topics(&["made"], Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(bus.retained("made"), Some(0));
    let p = bus.producer().unwrap();
    for _ in 0..3 {
        drop(p.send("made", "k", vec![]).unwrap());
    }
    assert!(matches!(
        p.send("made", "k", vec![]),
        Err(BusError::QueueFull)
    ));
    let big = vec![0u8; liftguard_bus::EMBEDDED_MAX_MESSAGE_BYTES + 1];
    let e = p.send("other", "k", big).err().expect("too large");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// A dropped member's partitions move to the remaining one, at the committed offset.
#[tokio::test]
async fn embedded_dropped_member_hands_partitions_over() {
    let bus = Bus::embedded(EmbeddedConfig {
        partitions: 2,
        max_retained_per_partition: 100,
    });
    let a = bus.consumer("g", &["t"]).unwrap();
    let mut b = bus.consumer("g", &["t"]).unwrap();
    assert_eq!(a.assignment().len() + b.assignment().len(), 2);
    assert_eq!(a.assignment().len(), 1);
    let p = bus.producer().unwrap();
    // Find a key for a's partition.
    let a_part = a.assignment()[0].1;
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| liftguard_bus::embedded_partition(k, 2) == a_part)
        .unwrap();
    drop(p.send("t", &key, b"x".to_vec()).unwrap());
    drop(a);
    assert_eq!(b.assignment().len(), 2);
    let m = timeout(DEADLINE, b.recv()).await.unwrap().unwrap();
    assert_eq!((m.partition, m.offset, m.key), (a_part, 0, key));
}

// ---------------------------------------------------------------------------------------
// Kafka only
// ---------------------------------------------------------------------------------------

/// Several tasks share one idempotent producer: every record lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_concurrent_producers_no_duplicates() {
    let env = Env::kafka();
    let topic = env.topic("concurrent");
    let p = env.bus.producer().unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let p = p.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let mut futs = Vec::new();
            for i in 0..250 {
                let key = format!("t{t}-k{}", i % 5);
                futs.push(p.send(&topic, &key, payload(&key, i)).unwrap());
            }
            let mut out = Vec::new();
            for f in futs {
                out.push(f.await.unwrap());
            }
            out
        }));
    }
    let mut landed = BTreeSet::new();
    for t in tasks {
        for d in t.await.unwrap() {
            assert!(
                landed.insert((d.partition, d.offset)),
                "two records at {d:?}"
            );
        }
    }
    assert_eq!(landed.len(), 1000);
    let mut d = drive(env.bus.consumer("g-conc", &[&topic]).unwrap(), true, None);
    let got = d.take(1000).await;
    d.wait("lag 0", |s| s.lag == 0).await;
    let (_, rest) = d.stop().await;
    assert!(rest.is_empty(), "duplicates: {rest:?}");
    let distinct: BTreeSet<_> = got.iter().map(parse).collect();
    assert_eq!(distinct.len(), 1000);
    let s = env.bus.stats();
    assert_eq!((s.sent, s.delivered, s.delivery_failed), (1000, 1000, 0));
}

/// The bounded producer queue refuses at once (QueueFull), and recovers after a flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_producer_queue_full_is_immediate_and_recovers() {
    let mut extra = kafka_test_extra();
    extra.push(("producer.queue.buffering.max.messages".into(), "10".into()));
    // Records stay queued (counted against the bound) for the whole send loop.
    extra.push(("producer.linger.ms".into(), "1000".into()));
    let env = Env::kafka_with(extra);
    let topic = env.topic("full");
    let p = env.bus.producer().unwrap();
    let mut futs = Vec::new();
    for i in 0..10 {
        futs.push(p.send(&topic, "k", payload("k", i)).unwrap());
    }
    let started = std::time::Instant::now();
    let e = p
        .send(&topic, "k", payload("k", 10))
        .err()
        .expect("queue full");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "QueueFull must not wait"
    );
    assert!(matches!(e, BusError::QueueFull), "{e}");
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
    p.flush(Duration::from_secs(20)).await.unwrap();
    for f in futs {
        f.await.unwrap();
    }
    p.send(&topic, "k", payload("k", 11))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(env.bus.stats().queue_full, 1);
}

/// The mock cluster listens on TCP, so other processes can use it for the test's lifetime.
#[tokio::test]
async fn kafka_mock_cluster_listens_on_tcp() {
    let mock = MockKafka::start(3).unwrap();
    let servers = mock.bootstrap_servers();
    let addrs: Vec<String> = servers.split(',').map(str::to_owned).collect();
    assert_eq!(addrs.len(), 3, "{servers}");
    for a in &addrs {
        std::net::TcpStream::connect(a).expect("broker reachable over TCP");
    }
    mock.create_topic("created", 6).unwrap();
    assert!(mock.create_topic("bad name", 1).is_err());
    // Dropping stops the owning thread (and must not hang).
    drop(mock);
}

#[test]
fn kafka_config_is_validated_up_front() {
    let bad = |extra: Vec<(&str, &str)>, brokers: &str, partitions: i32| {
        Bus::kafka(KafkaConfig {
            brokers: brokers.into(),
            client_id: "x".into(),
            partitions,
            extra: extra
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        })
        .expect_err("refused")
        .kind()
    };
    assert_eq!(
        bad(vec![("no.such.property", "1")], "h:1", 1),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        bad(vec![("producer.linger.ms", "-7")], "h:1", 1),
        ErrorKind::InvalidArgument
    );
    assert_eq!(bad(vec![], "", 1), ErrorKind::InvalidArgument);
    assert_eq!(bad(vec![], "h:1", 0), ErrorKind::InvalidArgument);
    assert!(
        Bus::kafka(KafkaConfig {
            extra: vec![("consumer.fetch.wait.max.ms".into(), "10".into())],
            ..KafkaConfig::default()
        })
        .is_ok()
    );
}

/// Topic creation through the Admin API is bounded by its timeout (the mock cluster has no
/// CreateTopics, so it cannot succeed there: it must fail in time rather than hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_ensure_topics_is_bounded_by_its_timeout() {
    let env = Env::kafka();
    let started = std::time::Instant::now();
    let r = env
        .bus
        .ensure_topics(&["admin-made"], Duration::from_millis(500))
        .await;
    assert!(started.elapsed() < Duration::from_secs(5), "{r:?}");
    let e = r.expect_err("the mock has no CreateTopics");
    assert!(matches!(e, BusError::Timeout(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}
