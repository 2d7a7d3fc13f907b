//! The device side of the liftguard ingest protocol, for sensors, gym gateways, the
//! `replay` command, the demo and the tests.
//!
//! [`Uploader`] keeps the protocol's promises on the client side:
//! - batches of one sensor are sent in `seq` order, at most `max_in_flight` unacknowledged
//!   on the stream;
//! - a batch is done when acknowledged ACCEPTED or DUPLICATE, or REJECTED (never resent);
//! - a RETRY ack puts the batch (and the sensor's later batches, which ingest also bounces)
//!   back in line, resent in seq order after `retry_after_ms`;
//! - a broken stream is reopened and every unacknowledged batch resent: ingest's
//!   `(sensor_id, seq)` dedupe makes that harmless.
//!
//! [`batches_from_samples`] cuts a sensor's samples into uniformly sampled batches.

pub mod webhook;

pub use webhook::{SignatureError, verify_signature};

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use liftguard_proto::v1::{
    self as pb, AckStatus, BatchAck, SampleBatch, ingest_client::IngestClient,
    query_client::QueryClient, registry_client::RegistryClient,
};
use tokio::time::Instant;
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::{Channel, Endpoint},
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint {0:?}: {1}")]
    Endpoint(String, String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, tonic::transport::Error),
    #[error("the token cannot be sent as a header")]
    BadToken,
    #[error("server refused the stream: {0}")]
    Refused(tonic::Status),
    #[error("gave up after {attempts} attempts to reopen the stream: {last}")]
    GaveUp { attempts: u32, last: tonic::Status },
}

/// Opens a channel to `endpoint` (`http://host:port`).
pub async fn connect(endpoint: &str) -> Result<Channel, ClientError> {
    let ep = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| ClientError::Endpoint(endpoint.to_owned(), e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    ep.connect()
        .await
        .map_err(|e| ClientError::Connect(endpoint.to_owned(), e))
}

/// A bearer token ready to attach to requests.
#[derive(Debug, Clone)]
pub struct Token(MetadataValue<Ascii>);

impl Token {
    pub fn new(secret: &str) -> Result<Self, ClientError> {
        format!("Bearer {secret}")
            .parse()
            .map(Token)
            .map_err(|_| ClientError::BadToken)
    }

    /// Wraps a message in a request carrying the token.
    pub fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert("authorization", self.0.clone());
        r
    }
}

pub fn registry_client(ch: Channel) -> RegistryClient<Channel> {
    RegistryClient::new(ch)
}

pub fn query_client(ch: Channel) -> QueryClient<Channel> {
    QueryClient::new(ch).max_decoding_message_size(64 << 20)
}

/// Tunables of an upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub max_in_flight: usize,
    /// Reopen attempts after a broken stream before giving up.
    pub max_reconnects: u32,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 32,
            max_reconnects: 10,
        }
    }
}

/// What an upload achieved.
#[derive(Debug, Clone, Default)]
pub struct UploadReport {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<BatchAck>,
    pub retries: u64,
    pub reconnects: u32,
}

type Key = (String, u64);

/// Streams batches to ingest and sees each one acknowledged.
#[derive(Debug, Clone)]
pub struct Uploader {
    client: IngestClient<Channel>,
    token: Token,
    opts: UploadOptions,
}

impl Uploader {
    pub fn new(channel: Channel, token: Token, opts: UploadOptions) -> Self {
        let client = IngestClient::new(channel)
            .max_encoding_message_size(16 << 20)
            .max_decoding_message_size(16 << 20);
        Self {
            client,
            token,
            opts,
        }
    }

    /// Uploads every batch (lazily pulled from `batches`), calling `on_ack` for each final
    /// acknowledgement. Returns when every batch is done.
    pub async fn upload<I>(
        &mut self,
        batches: I,
        mut on_ack: impl FnMut(&BatchAck),
    ) -> Result<UploadReport, ClientError>
    where
        I: IntoIterator<Item = SampleBatch>,
    {
        let mut source = batches.into_iter().peekable();
        let mut report = UploadReport::default();
        // Batches to resend, per sensor in seq order, and when they may go.
        let mut retry: BTreeMap<Key, SampleBatch> = BTreeMap::new();
        let mut retry_at = Instant::now();
        let mut in_flight: HashMap<Key, SampleBatch> = HashMap::new();
        let mut reconnect_attempts = 0u32;

        'stream: loop {
            if source.peek().is_none() && retry.is_empty() && in_flight.is_empty() {
                return Ok(report);
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<SampleBatch>(self.opts.max_in_flight);
            let mut acks = match self
                .client
                .stream_samples(
                    self.token
                        .request(tokio_stream::wrappers::ReceiverStream::new(rx)),
                )
                .await
            {
                Ok(resp) => resp.into_inner(),
                Err(status) => {
                    if is_final(&status) {
                        return Err(ClientError::Refused(status));
                    }
                    reconnect_attempts += 1;
                    if reconnect_attempts > self.opts.max_reconnects {
                        return Err(ClientError::GaveUp {
                            attempts: reconnect_attempts,
                            last: status,
                        });
                    }
                    tokio::time::sleep(backoff(reconnect_attempts)).await;
                    continue 'stream;
                }
            };
            loop {
                // Fill the window: retries first (once due), then new batches.
                while in_flight.len() < self.opts.max_in_flight {
                    let next = if !retry.is_empty() {
                        if Instant::now() < retry_at {
                            break;
                        }
                        retry.pop_first().map(|(_, b)| b)
                    } else {
                        source.next()
                    };
                    let Some(b) = next else { break };
                    in_flight.insert((b.sensor_id.clone(), b.seq), b.clone());
                    if tx.send(b).await.is_err() {
                        break;
                    }
                }
                if source.peek().is_none() && retry.is_empty() && in_flight.is_empty() {
                    return Ok(report);
                }
                let retry_wait = tokio::time::sleep_until(retry_at);
                tokio::select! {
                    _ = retry_wait, if !retry.is_empty() && in_flight.len() < self.opts.max_in_flight => {}
                    ack = acks.message() => match ack {
                        Ok(Some(ack)) => {
                            let key = (ack.sensor_id.clone(), ack.seq);
                            let Some(batch) = in_flight.remove(&key) else { continue };
                            match AckStatus::try_from(ack.status).unwrap_or(AckStatus::Unspecified) {
                                AckStatus::Accepted => { report.accepted += 1; on_ack(&ack); }
                                AckStatus::Duplicate => { report.duplicates += 1; on_ack(&ack); }
                                AckStatus::Retry => {
                                    report.retries += 1;
                                    let wait = Duration::from_millis(u64::from(ack.retry_after_ms.max(1)));
                                    retry_at = retry_at.max(Instant::now() + wait);
                                    retry.insert(key, batch);
                                }
                                AckStatus::Rejected | AckStatus::Unspecified => {
                                    on_ack(&ack);
                                    report.rejected.push(ack);
                                }
                            }
                            reconnect_attempts = 0;
                        }
                        Ok(None) | Err(_) => {
                            // The stream ended or broke: everything unacknowledged goes again.
                            if let Err(status) = &ack {
                                if is_final(status) {
                                    return Err(ClientError::Refused(status.clone()));
                                }
                                tracing::debug!(%status, "ingest stream broke; reopening");
                            }
                            retry.extend(in_flight.drain());
                            reconnect_attempts += 1;
                            report.reconnects += 1;
                            if reconnect_attempts > self.opts.max_reconnects {
                                return Err(ClientError::GaveUp {
                                    attempts: reconnect_attempts,
                                    last: ack.err().unwrap_or_else(|| tonic::Status::aborted("stream ended with batches unacknowledged")),
                                });
                            }
                            tokio::time::sleep(backoff(reconnect_attempts)).await;
                            continue 'stream;
                        }
                    }
                }
            }
        }
    }
}

fn is_final(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::InvalidArgument
            | tonic::Code::Unimplemented
    )
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(6)).min(3000))
}

/// One IMU sample for [`batches_from_samples`]: device time, accelerometer (m/s²),
/// gyroscope (rad/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t_us: i64,
    pub acc: [f32; 3],
    pub gyro: [f32; 3],
}

/// Cuts one sensor's samples into batches of at most `max_len` uniformly spaced samples
/// at `rate_hz`, numbered from `first_seq`. A gap (a step of more than 1.5 sample periods)
/// starts a new batch, so each batch's implicit timestamps stay true.
pub fn batches_from_samples(
    sensor_id: &str,
    first_seq: u64,
    rate_hz: f64,
    samples: &[Sample],
    max_len: usize,
    set: Option<pb::SetContext>,
) -> Vec<SampleBatch> {
    let period = 1e6 / rate_hz;
    let max_len = max_len.max(1);
    let mut out = Vec::new();
    let mut cur: VecDeque<Sample> = VecDeque::new();
    let mut seq = first_seq;
    let mut flush = |cur: &mut VecDeque<Sample>, seq: &mut u64| {
        if let Some(first) = cur.front() {
            let mut b = SampleBatch {
                sensor_id: sensor_id.to_owned(),
                seq: *seq,
                first_sample_time_us: first.t_us,
                sample_rate_hz: rate_hz as f32,
                set: set.clone(),
                ..Default::default()
            };
            for s in cur.drain(..) {
                b.ax.push(s.acc[0]);
                b.ay.push(s.acc[1]);
                b.az.push(s.acc[2]);
                b.gx.push(s.gyro[0]);
                b.gy.push(s.gyro[1]);
                b.gz.push(s.gyro[2]);
            }
            out.push(b);
            *seq += 1;
        }
    };
    for s in samples {
        if let Some(first) = cur.front() {
            let expected = first.t_us as f64 + cur.len() as f64 * period;
            if (s.t_us as f64 - expected).abs() > 0.5 * period || cur.len() >= max_len {
                flush(&mut cur, &mut seq);
            }
        }
        cur.push_back(*s);
    }
    flush(&mut cur, &mut seq);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_us: i64) -> Sample {
        Sample {
            t_us,
            acc: [0.0, 0.0, 9.81],
            gyro: [0.0; 3],
        }
    }

    #[test]
    fn batches_split_on_length_and_gaps_and_number_sequentially() {
        // 100 Hz: 0..250 samples, then a 1 s gap, then 30 more.
        let mut samples: Vec<Sample> = (0..250).map(|i| s(i * 10_000)).collect();
        samples.extend((0..30).map(|i| s(3_500_000 + i * 10_000)));
        let b = batches_from_samples("x", 7, 100.0, &samples, 100, None);
        let lens: Vec<usize> = b.iter().map(|b| b.ax.len()).collect();
        assert_eq!(lens, vec![100, 100, 50, 30]);
        let seqs: Vec<u64> = b.iter().map(|b| b.seq).collect();
        assert_eq!(seqs, vec![7, 8, 9, 10]);
        assert_eq!(b[3].first_sample_time_us, 3_500_000);
        assert_eq!(b[1].first_sample_time_us, 1_000_000);
    }

    #[test]
    fn jitter_within_half_a_period_stays_in_one_batch() {
        let samples: Vec<Sample> = (0..10).map(|i| s(i * 10_000 + (i % 2) * 3_000)).collect();
        let b = batches_from_samples("x", 1, 100.0, &samples, 100, None);
        assert_eq!(b.len(), 1);
    }
}
