//! End-to-end latency benchmark (issue 4, "Speed"): from a sample batch's arrival at
//! ingest to (a) the rep record it completes being committed in the database and (b) an
//! alert it triggers reaching a `AlertService.Subscribe` subscriber, at 1,000 simulated
//! athletes streaming in real time.
//!
//! A benchmark, not a test: it prints figures and asserts nothing about them.
//!
//! ```sh
//! export CARGO_TARGET_DIR=/var/tmp/liftguard-target
//! cargo build -p liftguard                 # the roles run as real `liftguard` processes
//! cargo bench --profile dev -p liftguard-e2e --bench latency -- [options]
//! ```
//! Options (all optional): `--mode distributed|embedded|both` (both), `--athletes N`
//! (1000), `--gyms N` (20: one gateway stream per gym), `--warmup-s S` (30),
//! `--measure-s S` (90), `--seed N` (42), `--subscribe athlete|gym|none` (athlete: one
//! alert stream per athlete), `--partitions N` (8), `--config FILE` (extra TOML for every
//! role, e.g. lowered alert thresholds), `--fetch-wait-ms N|default` (10: the consumers'
//! `fetch.wait.max.ms` in distributed mode, see below). `LIFTGUARD_BIN` picks the binary (else the one
//! next to this executable's profile directory).
//!
//! What runs:
//! - distributed: `liftguard api`, `ingest`, `process`, `sink` processes against the Kafka
//!   mock cluster (in this process, over TCP) and a fresh PostgreSQL database;
//! - embedded: one `liftguard run` (in-process bus, SQLite).
//!
//! The load: every athlete's session is simulated in advance (two IMUs at 100 Hz), cut into
//! 0.5 s batches (`gym::BATCH_LEN`), re-timed so device time is wall time, and sent by a
//! gateway per gym when the batch's last sample would have been measured (each athlete
//! with its own phase within the 0.5 s). After the warm-up (calibration, first sets),
//! figures are taken over the measurement window.
//!
//! How latency is measured, exactly (no histogram interpolation):
//! - the processor stamps every rep and alert with `source_received_us`, the ingest
//!   receive time of the input batch whose processing emitted it;
//! - reps: the sink logs `now − source_received_us` right after committing each write
//!   (target `liftguard_sink::latency`, debug), which this program reads from the sink's
//!   stderr; the histogram `liftguard_sink_visible_latency_seconds` is printed as a
//!   cross-check (5 ms buckets);
//! - alerts: the subscriber computes `now − source_received_us` when the event arrives.
//!
//! All processes run on this machine and read the same clock.
//!
//! The Kafka mock cluster answers a fetch that finds no new data only after the full
//! `fetch.wait.max.ms` (librdkafka's `rdkafka_mock_handlers.c`: "If there was no data,
//! delay up to MaxWait"), even if data arrives meanwhile; a real broker answers as soon as
//! `fetch.min.bytes` are there. With librdkafka's default of 500 ms that adds up to 500 ms
//! per consumer hop that a real deployment does not have, so distributed mode sets it to
//! 10 ms unless told otherwise (printed with the figures).
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use liftguard::gym;
use liftguard_client::Token;
use liftguard_e2e::{Role, metric_sum, parse_metrics};
use liftguard_model::topics;
use liftguard_proto::v1 as pb;
use liftguard_sim::SimSession;
use pb::{alert_service_client::AlertServiceClient, ingest_client::IngestClient};
use tokio::sync::mpsc;

const OPERATOR: &str = "bench-operator-token";
const SIM_START_US: i64 = liftguard::demo::SIM_START_US;
/// Extra stream time after the measurement window (sessions end, pipeline settles).
const TAIL_S: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Distributed,
    Embedded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscribe {
    PerAthlete,
    PerGym,
    None,
}

#[derive(Debug, Clone)]
struct Opts {
    modes: Vec<Mode>,
    athletes: u32,
    gyms: u32,
    warmup_s: f64,
    measure_s: f64,
    seed: u64,
    subscribe: Subscribe,
    partitions: i32,
    extra_config: String,
    config_path: Option<String>,
    /// `consumer.fetch.wait.max.ms` for the distributed roles (None: librdkafka's 500).
    fetch_wait_ms: Option<u32>,
}

fn parse_args() -> anyhow::Result<Opts> {
    let mut o = Opts {
        modes: vec![Mode::Distributed, Mode::Embedded],
        athletes: 1000,
        gyms: 20,
        warmup_s: 30.0,
        measure_s: 90.0,
        seed: 42,
        subscribe: Subscribe::PerAthlete,
        partitions: 8,
        extra_config: String::new(),
        config_path: None,
        fetch_wait_ms: Some(10),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // `cargo bench` passes `--bench`; libtest-style filters are ignored too.
        if a == "--bench" || !a.starts_with("--") {
            continue;
        }
        let v = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--mode" => {
                o.modes = match v.as_str() {
                    "distributed" => vec![Mode::Distributed],
                    "embedded" => vec![Mode::Embedded],
                    "both" => vec![Mode::Distributed, Mode::Embedded],
                    _ => bail!("--mode distributed|embedded|both, not {v}"),
                }
            }
            "--athletes" => o.athletes = v.parse()?,
            "--gyms" => o.gyms = v.parse()?,
            "--warmup-s" => o.warmup_s = v.parse()?,
            "--measure-s" => o.measure_s = v.parse()?,
            "--seed" => o.seed = v.parse()?,
            "--partitions" => o.partitions = v.parse()?,
            "--fetch-wait-ms" => {
                o.fetch_wait_ms = match v.as_str() {
                    "default" => None,
                    v => Some(v.parse()?),
                }
            }
            "--subscribe" => {
                o.subscribe = match v.as_str() {
                    "athlete" => Subscribe::PerAthlete,
                    "gym" => Subscribe::PerGym,
                    "none" => Subscribe::None,
                    _ => bail!("--subscribe athlete|gym|none, not {v}"),
                }
            }
            "--config" => {
                o.extra_config =
                    std::fs::read_to_string(&v).with_context(|| format!("reading {v}"))?;
                o.config_path = Some(v);
            }
            _ => bail!("unknown option {a}"),
        }
    }
    anyhow::ensure!(
        o.athletes >= 1 && o.gyms >= 1 && o.gyms <= o.athletes,
        "need 1 <= gyms <= athletes"
    );
    anyhow::ensure!(o.warmup_s >= 0.0 && o.measure_s > 0.0, "bad durations");
    Ok(o)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

fn slug(gym: usize) -> String {
    format!("bench-gym-{gym:03}")
}

/// One athlete's load: the session without its samples (for enrollment) and its batches
/// with when to send them (µs after the athlete's start).
struct Athlete {
    gym: usize,
    session: SimSession,
    batches: Vec<(i64, pb::SampleBatch)>,
}

/// The simulated load, from the cache in the temp directory when an earlier run simulated
/// at least as many athletes with the same seed, gyms and durations (athletes are
/// simulated independently, so the first N of a larger load are the load of N; simulating
/// 1,000 athletes takes minutes on 2 cores).
fn load(o: &Opts) -> anyhow::Result<Vec<Athlete>> {
    let path = std::env::temp_dir().join(format!(
        "liftguard-bench-load-v1-s{}-g{}-w{}-m{}.bin",
        o.seed, o.gyms, o.warmup_s, o.measure_s
    ));
    if let Ok(bytes) = std::fs::read(&path) {
        match decode_load(&bytes, o.athletes as usize) {
            Ok(a) if a.len() == o.athletes as usize => {
                eprintln!("  (simulated load read from {})", path.display());
                return Ok(a);
            }
            Ok(_) => {}
            Err(e) => eprintln!("  ignoring the cache {}: {e:#}", path.display()),
        }
    }
    let athletes = prepare(o);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, encode_load(&athletes)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(athletes)
}

fn encode_load(athletes: &[Athlete]) -> anyhow::Result<Vec<u8>> {
    use prost::Message as _;
    let mut out = Vec::new();
    out.extend((athletes.len() as u64).to_le_bytes());
    for a in athletes {
        let session = serde_json::to_vec(&a.session)?;
        out.extend((a.gym as u64).to_le_bytes());
        out.extend((session.len() as u64).to_le_bytes());
        out.extend(session);
        out.extend((a.batches.len() as u64).to_le_bytes());
        for (due, b) in &a.batches {
            out.extend(due.to_le_bytes());
            b.encode_length_delimited(&mut out)?;
        }
    }
    Ok(out)
}

/// The first `want` athletes of an encoded load (fewer if it holds fewer).
fn decode_load(mut bytes: &[u8], want: usize) -> anyhow::Result<Vec<Athlete>> {
    use prost::Message as _;
    fn u64_of(b: &mut &[u8]) -> anyhow::Result<u64> {
        let (head, rest) = b.split_first_chunk::<8>().context("truncated")?;
        *b = rest;
        Ok(u64::from_le_bytes(*head))
    }
    let n = usize::try_from(u64_of(&mut bytes)?)?;
    if n < want {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for _ in 0..want {
        let gym = usize::try_from(u64_of(&mut bytes)?)?;
        let len = usize::try_from(u64_of(&mut bytes)?)?;
        anyhow::ensure!(bytes.len() >= len, "truncated");
        let session: SimSession = serde_json::from_slice(&bytes[..len])?;
        bytes = &bytes[len..];
        let count = u64_of(&mut bytes)?;
        let mut batches = Vec::new();
        for _ in 0..count {
            let due = u64_of(&mut bytes)? as i64;
            batches.push((due, pb::SampleBatch::decode_length_delimited(&mut bytes)?));
        }
        out.push(Athlete {
            gym,
            session,
            batches,
        });
    }
    Ok(out)
}

/// Simulates every athlete (on 2 threads) and cuts the sessions into paced batches.
fn prepare(o: &Opts) -> Vec<Athlete> {
    let minutes = (o.warmup_s + o.measure_s + TAIL_S) / 60.0 + 1.0;
    let keep_us = ((o.warmup_s + o.measure_s + TAIL_S) * 1e6) as i64;
    let one = |i: u32| -> Athlete {
        let gym = (i % o.gyms) as usize;
        let seed = o.seed.wrapping_mul(1_000_003).wrapping_add(u64::from(i));
        let a = liftguard_sim::random_athlete(o.seed, i);
        let plan = liftguard_sim::random_session_plan(seed, &a, minutes, SIM_START_US);
        let mut s = liftguard_sim::simulate(
            &a,
            &plan,
            &liftguard_sim::SimOptions::default(),
            seed ^ 0x5EED,
        );
        let slug = slug(gym);
        let offsets: HashMap<String, (i64, f64)> = [&s.thoracolumbar, &s.sacrum]
            .iter()
            .map(|r| (gym::sensor_id(&slug, r), (r.clock_offset_us, r.rate_hz)))
            .collect();
        let mut batches: Vec<(i64, pb::SampleBatch)> =
            gym::session_batches(&slug, &s, gym::BATCH_LEN)
                .into_iter()
                .map(|b| {
                    let (off, rate) = offsets[&b.sensor_id];
                    let end_true =
                        b.first_sample_time_us - off + (b.ax.len() as f64 * 1e6 / rate) as i64;
                    (end_true - SIM_START_US, b)
                })
                .filter(|(due, _)| *due <= keep_us)
                .collect();
        // The session ends where the stream is cut: the last batch of each sensor says so.
        for sensor in [&s.thoracolumbar, &s.sacrum].map(|r| gym::sensor_id(&slug, r)) {
            if let Some((_, b)) = batches
                .iter_mut()
                .rev()
                .find(|(_, b)| b.sensor_id == sensor)
            {
                b.end_of_session = true;
            }
        }
        batches.sort_by_key(|(due, _)| *due);
        s.thoracolumbar.samples = Vec::new();
        s.sacrum.samples = Vec::new();
        s.truth.lumbar = Vec::new();
        Athlete {
            gym,
            session: s,
            batches,
        }
    };
    let n = o.athletes;
    let threads = 2u32.min(n);
    let mut parts: Vec<Vec<Athlete>> = Vec::new();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let one = &one;
                sc.spawn(move || {
                    (t..n)
                        .step_by(threads as usize)
                        .map(one)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            parts.push(h.join().expect("simulation thread panicked"));
        }
    });
    let mut all: Vec<Athlete> = parts.into_iter().flatten().collect();
    all.sort_by_key(|a| {
        a.session
            .athlete
            .id
            .trim_start_matches("ath-")
            .parse::<u32>()
            .unwrap_or(0)
    });
    all
}

/// Latency samples (µs) with the wall time (µs) at which each was taken.
#[derive(Default)]
struct Samples {
    values: Mutex<Vec<(i64, i64)>>,
}

impl Samples {
    fn push(&self, at_us: i64, lat_us: i64) {
        self.values.lock().unwrap().push((at_us, lat_us));
    }

    fn window(&self, from_us: i64, to_us: i64) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .values
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, lat)| at - lat >= from_us && at - lat < to_us)
            .map(|(_, l)| *l)
            .collect();
        v.sort_unstable();
        v
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(name: &str, v: &[i64]) -> String {
    if v.is_empty() {
        return format!("{name:<34} n=0");
    }
    let ms = |us: i64| us as f64 / 1000.0;
    format!(
        "{name:<34} n={:<7} p50 {:>7.1} ms   p90 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
        v.len(),
        ms(pct(v, 0.5)),
        ms(pct(v, 0.9)),
        ms(pct(v, 0.99)),
        ms(*v.last().unwrap_or(&0))
    )
}

/// Collects the sink's exact visibility latencies from its JSON log lines.
fn latency_observer(reps: Arc<Samples>, alerts: Arc<Samples>) -> impl Fn(&str) + Send + 'static {
    move |line: &str| {
        if !line.contains("liftguard_sink::latency") {
            return;
        }
        let at = now_us();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let f = &v["fields"];
        let (Some(topic), Some(values)) = (f["topic"].as_str(), f["latencies_us"].as_str()) else {
            return;
        };
        let into = if topic == topics::REPS {
            &reps
        } else if topic == topics::ALERTS {
            &alerts
        } else {
            return;
        };
        for lat in values.split(',').filter_map(|x| x.parse::<i64>().ok()) {
            into.push(at, lat);
        }
    }
}

/// CPU time (user + system, seconds) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime, stime are fields 14 and 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

/// Busy and total jiffies of the whole machine.
fn machine_cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return (0.0, 0.0);
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Histogram `name` (optionally one label pair) from scraped metrics: count, sum and the
/// cumulative buckets.
fn histogram(
    m: &HashMap<String, f64>,
    name: &str,
    label: Option<(&str, &str)>,
) -> (f64, f64, Vec<(f64, f64)>) {
    let lbl = label.map(|(k, v)| format!("{k}=\"{v}\""));
    let matches = |key: &str, suffix: &str| {
        let Some(rest) = key.strip_prefix(&format!("{name}{suffix}")) else {
            return false;
        };
        match &lbl {
            None => rest.is_empty() || rest.starts_with('{'),
            Some(l) => rest.contains(l.as_str()),
        }
    };
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut buckets = Vec::new();
    for (k, v) in m {
        if matches(k, "_count") {
            count += v;
        } else if matches(k, "_sum") {
            sum += v;
        } else if matches(k, "_bucket")
            && let Some(le) = k.split("le=\"").nth(1).and_then(|r| r.split('"').next())
        {
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            buckets.push((le, *v));
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    (count, sum, buckets)
}

/// The upper bound of the bucket holding quantile `q` (the resolution is the bucket width).
fn bucket_quantile(buckets: &[(f64, f64)], count: f64, q: f64) -> f64 {
    let want = q * count;
    buckets
        .iter()
        .find(|(_, c)| *c >= want)
        .map_or(f64::NAN, |(le, _)| *le)
}

fn histogram_line(what: &str, h: &(f64, f64, Vec<(f64, f64)>)) -> String {
    let (count, sum, b) = h;
    if *count == 0.0 {
        return format!("{what:<34} n=0");
    }
    format!(
        "{what:<34} n={count:<7} mean {:>7.1} ms   p50 ≤ {:.0} ms   p99 ≤ {:.0} ms",
        1000.0 * sum / count,
        1000.0 * bucket_quantile(b, *count, 0.5),
        1000.0 * bucket_quantile(b, *count, 0.99)
    )
}

/// What one gateway (gym) stream saw.
#[derive(Default)]
struct GatewayReport {
    accepted: u64,
    accepted_samples: u64,
    duplicates: u64,
    retries: u64,
    rejected: Vec<String>,
    /// Largest delay between a batch's due time and its send.
    max_send_lag_us: i64,
}

/// Batches sent and not yet acknowledged: (sensor, seq) → (send time µs, batch).
type InFlight = HashMap<(String, u64), (i64, pb::SampleBatch)>;

/// Streams a gym's batches on one `StreamSamples` stream, each when due (`start` + its
/// athlete's phase + its due offset); resends RETRY-acked batches after `retry_after_ms`.
async fn gateway(
    endpoint: String,
    key: String,
    mut schedule: Vec<(i64, pb::SampleBatch)>,
    start: tokio::time::Instant,
    acks_lat: Arc<Samples>,
    window: (i64, i64),
) -> anyhow::Result<GatewayReport> {
    schedule.sort_by_key(|(due, _)| *due);
    let total = schedule.len();
    let ch = liftguard_client::connect(&endpoint).await?;
    let token = Token::new(&key)?;
    let mut client = IngestClient::new(ch)
        .max_encoding_message_size(16 << 20)
        .max_decoding_message_size(16 << 20);
    let (tx, rx) = mpsc::channel::<pb::SampleBatch>(4096);
    let mut acks = client
        .stream_samples(token.request(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .context("StreamSamples")?
        .into_inner();
    let mut report = GatewayReport::default();
    let sent: Arc<Mutex<InFlight>> = Arc::default();
    let (retry_tx, mut retry_rx) =
        mpsc::unbounded_channel::<(tokio::time::Instant, pb::SampleBatch)>();
    let sender = {
        let tx = tx.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut lag = 0i64;
            for (due, b) in schedule {
                let at = start + Duration::from_micros(due.max(0) as u64);
                tokio::time::sleep_until(at).await;
                lag = lag.max(tokio::time::Instant::now().duration_since(at).as_micros() as i64);
                sent.lock()
                    .unwrap()
                    .insert((b.sensor_id.clone(), b.seq), (now_us(), b.clone()));
                if tx.send(b).await.is_err() {
                    break;
                }
            }
            lag
        })
    };
    // Resends: in the order their RETRY acks came, each after its delay.
    let resender = {
        let tx = tx.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            while let Some((at, b)) = retry_rx.recv().await {
                tokio::time::sleep_until(at).await;
                sent.lock()
                    .unwrap()
                    .insert((b.sensor_id.clone(), b.seq), (now_us(), b.clone()));
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        })
    };
    drop(tx);
    let mut done = 0usize;
    while done < total {
        let Some(ack) = acks.message().await.context("ingest stream broke")? else {
            bail!(
                "ingest ended the stream with {} of {total} batches acknowledged",
                done
            );
        };
        let Some((sent_at, batch)) = sent
            .lock()
            .unwrap()
            .remove(&(ack.sensor_id.clone(), ack.seq))
        else {
            continue;
        };
        let now = now_us();
        match pb::AckStatus::try_from(ack.status).unwrap_or(pb::AckStatus::Unspecified) {
            pb::AckStatus::Accepted => {
                done += 1;
                acks_lat.push(now, now - sent_at);
                if sent_at >= window.0 && sent_at < window.1 {
                    report.accepted += 1;
                    report.accepted_samples += batch.ax.len() as u64;
                }
            }
            pb::AckStatus::Duplicate => {
                done += 1;
                report.duplicates += 1;
            }
            pb::AckStatus::Retry => {
                report.retries += 1;
                let wait = Duration::from_millis(u64::from(ack.retry_after_ms.max(1)));
                let _ = retry_tx.send((tokio::time::Instant::now() + wait, batch));
            }
            _ => {
                done += 1;
                if report.rejected.len() < 5 {
                    report.rejected.push(format!(
                        "{} #{}: {} {}",
                        ack.sensor_id, ack.seq, ack.field, ack.reason
                    ));
                }
            }
        }
    }
    drop(retry_tx);
    report.max_send_lag_us = sender.await.unwrap_or(0);
    resender.abort();
    Ok(report)
}

/// Follows one alert subscription, recording `now − source_received_us` per event.
async fn subscriber(
    endpoint: String,
    key: String,
    req: pb::SubscribeAlertsRequest,
    alerts: Arc<Samples>,
    unstamped: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<bool> {
    let ch = liftguard_client::connect(&endpoint).await?;
    let mut c = AlertServiceClient::new(ch);
    let mut stream = match c.subscribe(Token::new(&key)?.request(req)).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented => return Ok(false),
        Err(s) => return Err(s).context("Subscribe"),
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(true),
            ev = stream.message() => match ev {
                Ok(Some(ev)) => {
                    let now = now_us();
                    match ev.alert {
                        Some(a) if a.source_received_us > 0 => alerts.push(now, now - a.source_received_us),
                        _ => { unstamped.fetch_add(1, Ordering::Relaxed); }
                    }
                }
                Ok(None) => return Ok(true),
                Err(s) if stop.is_cancelled() => { let _ = s; return Ok(true) }
                Err(s) => return Err(s).context("alert stream"),
            }
        }
    }
}

/// The roles' TOML: the bus partitions, the mock-cluster fetch wait (distributed), then
/// `--config` on top (its values win).
fn role_config(mode: Mode, o: &Opts) -> anyhow::Result<String> {
    let mut base: toml::Table = toml::from_str(&format!("[bus]\npartitions = {}\n", o.partitions))?;
    if let (Mode::Distributed, Some(ms)) = (mode, o.fetch_wait_ms) {
        let bus = base
            .get_mut("bus")
            .and_then(|b| b.as_table_mut())
            .context("bus table")?;
        let mut kafka = toml::Table::new();
        kafka.insert(
            "consumer.fetch.wait.max.ms".into(),
            toml::Value::String(ms.to_string()),
        );
        bus.insert("kafka".into(), toml::Value::Table(kafka));
    }
    let extra: toml::Table = toml::from_str(&o.extra_config).context("parsing --config")?;
    merge(&mut base, extra);
    Ok(toml::to_string(&base)?)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// The processes of one mode.
struct Deployment {
    roles: Vec<Role>,
    /// gRPC endpoint of ingest and of the api.
    ingest: String,
    api: String,
    _kafka: Option<liftguard_bus::testing::MockKafka>,
    db: Option<liftguard_store::testing::PgTestDb>,
    dir: std::path::PathBuf,
    description: String,
}

impl Deployment {
    async fn start(
        mode: Mode,
        o: &Opts,
        reps: &Arc<Samples>,
        sink_alerts: &Arc<Samples>,
    ) -> anyhow::Result<Deployment> {
        let dir = std::env::temp_dir().join(format!(
            "liftguard-bench-{}-{}",
            std::process::id(),
            now_us()
        ));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("liftguard.toml");
        std::fs::write(&config, role_config(mode, o)?)?;
        let cfg = config.to_str().context("temp path")?.to_owned();
        let env = [
            ("LIFTGUARD_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,liftguard_sink::latency=debug"),
        ];
        let observe = || latency_observer(reps.clone(), sink_alerts.clone());
        match mode {
            Mode::Distributed => {
                let kafka = liftguard_bus::testing::MockKafka::start(1)?;
                for t in topics::ALL {
                    kafka.create_topic(t, o.partitions)?;
                }
                let brokers = kafka.bootstrap_servers();
                let db = liftguard_store::testing::PgTestDb::create().await?;
                let url = db.url().to_owned();
                liftguard_e2e::run_cli(&["migrate", "--database", &url])?;
                let mut roles = Vec::new();
                for name in ["api", "ingest", "process", "sink"] {
                    let args = [
                        name,
                        "--config",
                        &cfg,
                        "--kafka",
                        &brokers,
                        "--database",
                        &url,
                        "--grpc-addr",
                        "127.0.0.1:0",
                        "--http-addr",
                        "127.0.0.1:0",
                        "--operator-token",
                        OPERATOR,
                    ];
                    roles.push(if name == "sink" {
                        Role::start_observed(name, &args, &env, observe())?
                    } else {
                        Role::start(name, &args, &env)?
                    });
                }
                let api = roles[0].grpc.clone().context("api gRPC address")?;
                let ingest = roles[1].grpc.clone().context("ingest gRPC address")?;
                Ok(Deployment {
                    roles,
                    ingest,
                    api,
                    _kafka: Some(kafka),
                    db: Some(db),
                    dir,
                    description: format!(
                        "distributed: `liftguard api|ingest|process|sink` processes, Kafka mock cluster (1 broker, {} partitions, in the benchmark process), PostgreSQL",
                        o.partitions
                    ),
                })
            }
            Mode::Embedded => {
                let url = format!("sqlite://{}/liftguard.db?mode=rwc", dir.display());
                let args = [
                    "run",
                    "--config",
                    &cfg,
                    "--database",
                    &url,
                    "--grpc-addr",
                    "127.0.0.1:0",
                    "--http-addr",
                    "127.0.0.1:0",
                    "--operator-token",
                    OPERATOR,
                ];
                let node = Role::start_observed("run", &args, &env, observe())?;
                let grpc = node.grpc.clone().context("gRPC address")?;
                Ok(Deployment {
                    roles: vec![node],
                    ingest: grpc.clone(),
                    api: grpc,
                    _kafka: None,
                    db: None,
                    dir,
                    description: format!(
                        "embedded: one `liftguard run` process (in-process bus, {} partitions; SQLite)",
                        o.partitions
                    ),
                })
            }
        }
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        for r in self.roles.drain(..) {
            let name = r.name.clone();
            if let Err(e) = r.terminate(Duration::from_secs(120)) {
                eprintln!("  warning: {name} did not stop cleanly: {e:#}");
            }
        }
        if let Some(db) = self.db.take() {
            db.drop().await?;
        }
        std::fs::remove_dir_all(&self.dir).ok();
        Ok(())
    }
}

/// The server processes (backends) serving this deployment's PostgreSQL database.
async fn db_backends(d: &Deployment) -> Vec<u32> {
    let Some(db) = &d.db else {
        return Vec::new();
    };
    let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db.url())
        .await
    else {
        return Vec::new();
    };
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    pool.close().await;
    pids.into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect()
}

async fn scrape(d: &Deployment) -> HashMap<String, HashMap<String, f64>> {
    let mut out = HashMap::new();
    for r in &d.roles {
        if let Ok(body) = reqwest::get(format!("{}/metrics", r.http)).await
            && let Ok(text) = body.text().await
        {
            out.insert(r.name.clone(), parse_metrics(&text));
        }
    }
    out
}

/// All metrics of every role in one map (each role exports its own names).
fn merged(m: &HashMap<String, HashMap<String, f64>>) -> HashMap<String, f64> {
    let mut all = HashMap::new();
    for v in m.values() {
        for (k, x) in v {
            *all.entry(k.clone()).or_insert(0.0) += x;
        }
    }
    all
}

async fn run_mode(mode: Mode, o: &Opts, athletes: &[Athlete]) -> anyhow::Result<String> {
    let reps = Arc::new(Samples::default());
    let sink_alerts = Arc::new(Samples::default());
    let alerts = Arc::new(Samples::default());
    let acks = Arc::new(Samples::default());
    let unstamped = Arc::new(AtomicU64::new(0));
    let d = Deployment::start(mode, o, &reps, &sink_alerts).await?;
    eprintln!("[{mode:?}] {}", d.description);

    // Enrollment: one gym per gateway, concurrently.
    let t = Instant::now();
    let mut enrolls = tokio::task::JoinSet::new();
    for g in 0..o.gyms as usize {
        let sessions: Vec<SimSession> = athletes
            .iter()
            .filter(|a| a.gym == g)
            .map(|a| a.session.clone())
            .collect();
        let api = d.api.clone();
        enrolls.spawn(async move {
            let ch = liftguard_client::connect(&api).await?;
            let (key, enrolled) =
                gym::enroll(ch, &Token::new(OPERATOR)?, &slug(g), &sessions).await?;
            anyhow::Ok((g, key, enrolled))
        });
    }
    let mut keys: BTreeMap<usize, (String, Vec<gym::Enrolled>)> = BTreeMap::new();
    while let Some(r) = enrolls.join_next().await {
        let (g, key, enrolled) = r??;
        keys.insert(g, (key, enrolled));
    }
    eprintln!(
        "[{mode:?}] enrolled {} athletes in {} gyms in {:.1} s",
        athletes.len(),
        o.gyms,
        t.elapsed().as_secs_f64()
    );

    // Subscribers, before any data flows.
    let stop_subs = tokio_util::sync::CancellationToken::new();
    let mut subs = tokio::task::JoinSet::new();
    if o.subscribe != Subscribe::None {
        for (g, (key, enrolled)) in &keys {
            let reqs: Vec<pb::SubscribeAlertsRequest> = match o.subscribe {
                Subscribe::PerAthlete => enrolled
                    .iter()
                    .map(|e| pb::SubscribeAlertsRequest {
                        athlete_id: e.athlete_id.clone(),
                        ..Default::default()
                    })
                    .collect(),
                _ => vec![pb::SubscribeAlertsRequest {
                    gym_id: slug(*g),
                    ..Default::default()
                }],
            };
            for req in reqs {
                subs.spawn(subscriber(
                    d.api.clone(),
                    key.clone(),
                    req,
                    alerts.clone(),
                    unstamped.clone(),
                    stop_subs.clone(),
                ));
            }
        }
    }
    // Give the streams a moment to open, then check that the service exists.
    let subscribed = !subs.is_empty();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut alert_service = subscribed;
    while let Some(r) = subs.try_join_next() {
        match r? {
            Ok(false) => alert_service = false,
            Ok(true) => {}
            Err(e) => eprintln!("[{mode:?}] subscriber failed: {e:#}"),
        }
    }
    if subscribed && !alert_service {
        eprintln!(
            "[{mode:?}] AlertService.Subscribe is not served by this build: alert latency n/a"
        );
        stop_subs.cancel();
    }

    // The load.
    let start = tokio::time::Instant::now() + Duration::from_secs(1);
    let t0 = now_us() + 1_000_000;
    let window = (
        t0 + (o.warmup_s * 1e6) as i64,
        t0 + ((o.warmup_s + o.measure_s) * 1e6) as i64,
    );
    let shift = t0 - SIM_START_US;
    let mut gateways = tokio::task::JoinSet::new();
    for (g, (key, _)) in &keys {
        let mut schedule = Vec::new();
        for (i, a) in athletes.iter().enumerate().filter(|(_, a)| a.gym == *g) {
            // A fixed phase per athlete within the batch period: sensors are not in step.
            let phase = ((i as u64).wrapping_mul(2_654_435_761) % 500_000) as i64;
            for (due, b) in &a.batches {
                let mut b = b.clone();
                b.first_sample_time_us += shift + phase;
                schedule.push((due + phase, b));
            }
        }
        gateways.spawn(gateway(
            d.ingest.clone(),
            key.clone(),
            schedule,
            start,
            acks.clone(),
            window,
        ));
    }
    let pids: Vec<(String, u32)> = d.roles.iter().map(|r| (r.name.clone(), r.pid())).collect();
    let self_pid = std::process::id();
    // CPU over the measurement window.
    tokio::time::sleep_until(start + Duration::from_secs_f64(o.warmup_s)).await;
    let cpu0: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let self0 = cpu_seconds(self_pid);
    let m0 = machine_cpu();
    let load0 = load_average();
    let metrics0 = scrape(&d).await;
    let backends = db_backends(&d).await;
    let db0: Vec<f64> = backends.iter().map(|p| cpu_seconds(*p)).collect();
    tokio::time::sleep_until(start + Duration::from_secs_f64(o.warmup_s + o.measure_s)).await;
    let cpu1: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let self1 = cpu_seconds(self_pid);
    let m1 = machine_cpu();
    let load1 = load_average();
    let metrics1 = scrape(&d).await;
    let db_cpu: f64 = backends
        .iter()
        .zip(&db0)
        .map(|(p, c0)| (cpu_seconds(*p) - c0).max(0.0))
        .sum();

    let mut gw = GatewayReport::default();
    while let Some(r) = gateways.join_next().await {
        let r = r??;
        gw.accepted += r.accepted;
        gw.accepted_samples += r.accepted_samples;
        gw.duplicates += r.duplicates;
        gw.retries += r.retries;
        gw.max_send_lag_us = gw.max_send_lag_us.max(r.max_send_lag_us);
        gw.rejected.extend(r.rejected);
    }
    // Let the last records of the window reach the store and the subscribers.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_subs.cancel();
    while let Some(r) = subs.join_next().await {
        if let Ok(Err(e)) = r {
            eprintln!("[{mode:?}] subscriber ended: {e:#}");
        }
    }
    let metrics2 = scrape(&d).await;

    // The report.
    let span = o.measure_s;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("## {}", d.description));
    if mode == Mode::Distributed {
        line(match o.fetch_wait_ms {
            Some(ms) => format!(
                "consumers: fetch.wait.max.ms = {ms} (the mock cluster answers a fetch that finds no data only after this wait, even when data arrives meanwhile; a real broker answers at once)"
            ),
            None => "consumers: librdkafka's default fetch.wait.max.ms (500; on the mock cluster every fetch that finds no data waits that long)".into(),
        });
    }
    let config = role_config(mode, o).unwrap_or_default();
    let config: Vec<&str> = config.lines().filter(|l| !l.trim().is_empty()).collect();
    line(format!("role config: {}", config.join("  ")));
    line(format!(
        "load: {} athletes (2 IMUs at 100 Hz) in {} gyms, one gateway stream per gym, {}-sample batches per sensor sent in real time; warm-up {:.0} s, measured {:.0} s",
        athletes.len(),
        o.gyms,
        gym::BATCH_LEN,
        o.warmup_s,
        o.measure_s
    ));
    line(format!(
        "throughput: {:.0} samples/s accepted ({:.0} batches/s); retries {}, duplicates {}, rejected {}; max send lag of the load generator {:.1} ms",
        gw.accepted_samples as f64 / span,
        gw.accepted as f64 / span,
        gw.retries,
        gw.duplicates,
        gw.rejected.len(),
        gw.max_send_lag_us as f64 / 1000.0
    ));
    for r in gw.rejected.iter().take(3) {
        line(format!("  rejected: {r}"));
    }
    line(
        "latency = now − source_received_us (ingest receive time of the batch whose arrival let the processor emit the record); reps: at the sink's commit; alerts: on arrival at the subscriber"
            .into(),
    );
    let rep_v = reps.window(window.0, window.1);
    let alert_v = alerts.window(window.0, window.1);
    line(summary("rep visible (committed)", &rep_v));
    if alert_service {
        line(summary("alert visible to a subscriber", &alert_v));
        if unstamped.load(Ordering::Relaxed) > 0 {
            line(format!(
                "  ({} alert events without source_received_us, not counted)",
                unstamped.load(Ordering::Relaxed)
            ));
        }
    } else if o.subscribe == Subscribe::None {
        line("alert visible to a subscriber       not measured (--subscribe none)".into());
    } else {
        line("alert visible to a subscriber       n/a: AlertService.Subscribe not served by this build".into());
    }
    line(summary(
        "alert committed (sink)",
        &sink_alerts.window(window.0, window.1),
    ));
    line(summary(
        "ingest ack (gateway send → ack)",
        &acks.window(window.0, window.1),
    ));
    let all1 = merged(&metrics1);
    let all0 = merged(&metrics0);
    let all2 = merged(&metrics2);
    let delta = |name: &str, label: Option<(&str, &str)>| {
        let (c1, s1, b1) = histogram(&all1, name, label);
        let (c0, s0, b0) = histogram(&all0, name, label);
        let b: Vec<(f64, f64)> = b1
            .iter()
            .map(|(le, c)| {
                (
                    *le,
                    c - b0.iter().find(|(l, _)| l == le).map_or(0.0, |(_, c)| *c),
                )
            })
            .collect();
        (c1 - c0, s1 - s0, b)
    };
    line(histogram_line(
        "  cross-check: sink histogram, reps",
        &delta(
            "liftguard_sink_visible_latency_seconds",
            Some(("topic", topics::REPS)),
        ),
    ));
    line(histogram_line(
        "  processor receive → processed",
        &delta("liftguard_processor_latency_seconds", None),
    ));
    line(histogram_line(
        "  processor checkpoint",
        &delta("liftguard_processor_checkpoint_seconds", None),
    ));
    line(histogram_line(
        "  sink write (one batch)",
        &delta("liftguard_sink_write_seconds", None),
    ));
    line(histogram_line(
        "  ingest bus send",
        &delta("liftguard_ingest_bus_send_seconds", None),
    ));
    let counter_delta = |name: &str| metric_sum(&all1, name) - metric_sum(&all0, name);
    line(format!(
        "  processor: {:.0} batches/s, {:.0} reps/s, checkpoints wrote {:.1} MB/s ({:.0} states/s); sink: {:.0} records/s, {:.0} rows/s",
        counter_delta("liftguard_processor_batches_total") / span,
        counter_delta("liftguard_processor_reps_total") / span,
        counter_delta("liftguard_processor_checkpoint_bytes_total") / span / 1e6,
        counter_delta("liftguard_processor_checkpoint_states_total") / span,
        counter_delta("liftguard_sink_written_records_total") / span,
        counter_delta("liftguard_sink_rows_total") / span,
    ));
    line(format!(
        "  totals after the run: {:.0} reps, {:.0} alerts produced by the processor; processor lag {:.0}, sink lag {:.0}",
        metric_sum(&all2, "liftguard_processor_reps_total"),
        all2.get(&format!(
            "liftguard_processor_records_total{{topic=\"{}\"}}",
            topics::ALERTS
        ))
        .copied()
        .unwrap_or(0.0),
        metric_sum(&all2, "liftguard_processor_bus_lag"),
        metric_sum(&all2, "liftguard_sink_bus_lag"),
    ));
    let cpu: Vec<String> = pids
        .iter()
        .zip(cpu0.iter().zip(&cpu1))
        .map(|((n, _), (a, b))| format!("{n} {:.0}%", 100.0 * (b - a) / span))
        .collect();
    line(format!(
        "  CPU over the window (100% = one core): {}, benchmark process (load generator, subscribers{}) {:.0}%; machine busy {:.0}% of 2 cores; load average {load0} → {load1}",
        {
            let mut all = cpu;
            if !backends.is_empty() {
                all.push(format!(
                    "PostgreSQL ({} backends of this database) {:.0}%",
                    backends.len(),
                    100.0 * db_cpu / span
                ));
            }
            all.join(", ")
        },
        if mode == Mode::Distributed {
            ", Kafka mock"
        } else {
            ""
        },
        100.0 * (self1 - self0) / span,
        100.0 * (m1.0 - m0.0) / (m1.1 - m0.1).max(1.0),
    ));
    d.stop().await?;
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bin = liftguard_e2e::liftguard_bin();
    let profile = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    eprintln!(
        "simulating {} athletes ({:.0} s of data each) ...",
        o.athletes,
        o.warmup_s + o.measure_s + TAIL_S
    );
    let t = Instant::now();
    let athletes = load(&o)?;
    let batches: usize = athletes.iter().map(|a| a.batches.len()).sum();
    eprintln!("  {batches} batches in {:.1} s", t.elapsed().as_secs_f64());
    let mut report = vec![
        "# liftguard end-to-end latency (issue 4)".to_owned(),
        format!(
            "binary: {} (profile `{profile}`{}); this load generator {}; {} CPU cores; seed {}{}",
            bin.display(),
            if profile == "debug" {
                ": opt-level 0 except liftguard-biomech/-sim at 3"
            } else {
                ""
            },
            if cfg!(debug_assertions) {
                "unoptimized (dev)"
            } else {
                "optimized"
            },
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            o.seed,
            o.config_path
                .as_ref()
                .map(|p| format!("; extra config {p}"))
                .unwrap_or_default()
        ),
    ];
    for mode in o.modes.clone() {
        let r = rt.block_on(run_mode(mode, &o, &athletes))?;
        eprintln!("{r}");
        report.push(r);
    }
    println!("{}", report.join("\n"));
    Ok(())
}
