//! Per-sensor progress: seq order, time continuity and the dedupe window. Pure (no I/O,
//! no clock); the service wraps one [`Tracker`] in a mutex shared by all streams, so a
//! resend after a reconnect is recognised too.
//!
//! Per sensor the tracker keeps the last *accepted* seq and end time, a window of the
//! most recent accepted `(seq, content hash)` pairs, and the batches currently in flight
//! to the bus (reserved, not yet accepted).
//!
//! Invariants:
//! - Accepted progress moves only through [`Tracker::complete`] with `accepted = true`
//!   (the bus confirmed durability).
//! - A batch that was not accepted but may be resent (RETRY) sets the sensor's *retry
//!   floor*: until that seq arrives again, every later seq of the sensor is bounced with
//!   [`Verdict::Blocked`] (answered RETRY). Otherwise a pipelined later batch would be
//!   accepted first and the resend rejected as going backwards: data lost. A batch
//!   released with [`Tracker::release_rejected`] (never to be resent) sets no floor.
//! - A `(sensor, seq)` in the window with the same content is a DUPLICATE (acked again,
//!   not re-sent); with different content it is `ALREADY_EXISTS` on `seq`.
//! - A new batch must have a seq above every accepted and in-flight seq of its sensor,
//!   else `FAILED_PRECONDITION` on `seq` (going backwards, or older than the window), and
//!   must not start before the end of the previous batch minus `time_tolerance_us`, else
//!   `FAILED_PRECONDITION` on `first_sample_time_us`; both reasons carry both numbers.
//! - Memory is bounded: at most `max_sensors` sensors (least recently used evicted),
//!   `window` accepted pairs and the stream's in-flight batches per sensor.
//!
//! This is a fast path, not the authority: after an ingest restart or an eviction the
//! window is gone and a resend is forwarded again. The processor drops every batch whose
//! seq is ≤ the last seq it processed for that sensor, which is the authoritative dedupe
//! across restarts.

use std::collections::VecDeque;

use liftguard_model::{ErrorKind, SensorId};

use crate::{lru::BoundedLru, validate::Reject};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressConfig {
    /// Accepted `(seq, hash)` pairs remembered per sensor.
    pub window: usize,
    /// Sensors tracked at most.
    pub max_sensors: usize,
    /// A batch may start this much before the previous batch's end (clock jitter).
    pub time_tolerance_us: i64,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            window: 64,
            max_sensors: 100_000,
            time_tolerance_us: 100_000,
        }
    }
}

/// The identity and extent of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchKey {
    pub seq: u64,
    pub hash: u64,
    pub first_us: i64,
    pub end_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before and in order: reserved as in flight. The caller must call
    /// [`Tracker::complete`] exactly once for it.
    New,
    /// Accepted earlier with the same content.
    Duplicate,
    /// The same batch is in flight right now (a resend racing its original).
    InFlight,
    /// An earlier seq of this sensor is awaiting its resend (the retry floor).
    Blocked {
        waiting_for: u64,
    },
    Reject(Reject),
}

#[derive(Debug, Default)]
struct SensorProgress {
    last_seq: u64,
    last_end_us: i64,
    /// Accepted, ascending by seq, at most `window` long.
    recent: VecDeque<(u64, u64)>,
    /// Reserved, not yet confirmed.
    in_flight: Vec<BatchKey>,
    /// Lowest seq answered RETRY and not yet resent.
    retry_floor: Option<u64>,
}

impl SensorProgress {
    /// The highest accepted or in-flight seq and the end time of that batch.
    fn high_water(&self) -> Option<(u64, i64)> {
        let accepted = (self.last_seq > 0).then_some((self.last_seq, self.last_end_us));
        let pending = self
            .in_flight
            .iter()
            .max_by_key(|k| k.seq)
            .map(|k| (k.seq, k.end_us));
        match (accepted, pending) {
            (Some(a), Some(p)) => Some(if p.0 > a.0 { p } else { a }),
            (a, p) => a.or(p),
        }
    }
}

#[derive(Debug)]
pub struct Tracker {
    cfg: ProgressConfig,
    sensors: BoundedLru<SensorId, SensorProgress>,
}

impl Tracker {
    pub fn new(cfg: ProgressConfig) -> Self {
        let sensors = BoundedLru::new(cfg.max_sensors);
        Self { cfg, sensors }
    }

    pub fn tracked_sensors(&self) -> usize {
        self.sensors.len()
    }

    /// Classifies a validated batch; on [`Verdict::New`] it is reserved as in flight.
    pub fn check(&mut self, sensor: &SensorId, key: BatchKey) -> Verdict {
        let tolerance = self.cfg.time_tolerance_us;
        let p = self
            .sensors
            .get_or_insert_with(sensor, SensorProgress::default);
        match p.retry_floor {
            Some(floor) if key.seq > floor => {
                return Verdict::Blocked { waiting_for: floor };
            }
            Some(floor) if key.seq == floor => p.retry_floor = None,
            _ => {}
        }
        if let Some(&(_, hash)) = p.recent.iter().find(|(s, _)| *s == key.seq) {
            return if hash == key.hash {
                Verdict::Duplicate
            } else {
                Verdict::Reject(Reject::new(
                    ErrorKind::AlreadyExists,
                    "seq",
                    format!(
                        "seq {} of sensor `{sensor}` was already accepted with different content; a seq may not be reused",
                        key.seq
                    ),
                ))
            };
        }
        if let Some(k) = p.in_flight.iter().find(|k| k.seq == key.seq) {
            return if k.hash == key.hash {
                Verdict::InFlight
            } else {
                Verdict::Reject(Reject::new(
                    ErrorKind::AlreadyExists,
                    "seq",
                    format!(
                        "seq {} of sensor `{sensor}` is in flight with different content; a seq may not be reused",
                        key.seq
                    ),
                ))
            };
        }
        if let Some((hw_seq, hw_end)) = p.high_water() {
            if key.seq <= hw_seq {
                let oldest = p.recent.front().map(|(s, _)| *s);
                let why = match oldest {
                    Some(o) if key.seq < o => {
                        format!(" (older than the dedupe window, which starts at seq {o})")
                    }
                    _ => String::new(),
                };
                return Verdict::Reject(Reject::new(
                    ErrorKind::FailedPrecondition,
                    "seq",
                    format!(
                        "seq going backwards for sensor `{sensor}`: got seq {}, but seq {hw_seq} was already received{why}; seq must be strictly increasing",
                        key.seq
                    ),
                ));
            }
            if key.first_us < hw_end.saturating_sub(tolerance) {
                return Verdict::Reject(Reject::new(
                    ErrorKind::FailedPrecondition,
                    "first_sample_time_us",
                    format!(
                        "time going backwards for sensor `{sensor}`: first_sample_time_us {} is before the end of the previous batch (seq {hw_seq}) at {hw_end} µs (tolerance {tolerance} µs)",
                        key.first_us
                    ),
                ));
            }
        }
        p.in_flight.push(key);
        Verdict::New
    }

    /// Ends the reservation of a batch that will not be resent (rejected): no progress,
    /// no retry floor.
    pub fn release_rejected(&mut self, sensor: &SensorId, key: BatchKey) {
        if let Some(p) = self.sensors.get_mut(sensor) {
            p.in_flight.retain(|k| k.seq != key.seq);
        }
    }

    /// Ends the reservation of `(sensor, seq)`; when `accepted`, the batch becomes the
    /// sensor's progress and enters the dedupe window; when not, it awaits its resend
    /// (the retry floor).
    pub fn complete(&mut self, sensor: &SensorId, key: BatchKey, accepted: bool) {
        let window = self.cfg.window.max(1);
        let p = if accepted {
            self.sensors
                .get_or_insert_with(sensor, SensorProgress::default)
        } else {
            match self.sensors.get_mut(sensor) {
                Some(p) => p,
                None => return,
            }
        };
        p.in_flight.retain(|k| k.seq != key.seq);
        if !accepted {
            p.retry_floor = Some(p.retry_floor.map_or(key.seq, |f| f.min(key.seq)));
            return;
        }
        if key.seq > p.last_seq {
            p.last_seq = key.seq;
            p.last_end_us = key.end_us;
        }
        let pos = p.recent.partition_point(|(s, _)| *s < key.seq);
        if p.recent.get(pos).map(|(s, _)| *s) != Some(key.seq) {
            p.recent.insert(pos, (key.seq, key.hash));
        }
        while p.recent.len() > window {
            p.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seq: u64, hash: u64, first_us: i64) -> BatchKey {
        BatchKey {
            seq,
            hash,
            first_us,
            end_us: first_us + 1_000_000,
        }
    }

    fn tracker(window: usize) -> Tracker {
        Tracker::new(ProgressConfig {
            window,
            max_sensors: 10,
            time_tolerance_us: 100_000,
        })
    }

    fn sid(s: &str) -> SensorId {
        SensorId::parse(s).unwrap()
    }

    fn rejected(v: Verdict) -> Reject {
        match v {
            Verdict::Reject(r) => r,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn accepted_batches_dedupe_and_conflicts_are_named() {
        let mut t = tracker(4);
        let s = sid("s1");
        let k1 = key(1, 11, 0);
        assert_eq!(t.check(&s, k1), Verdict::New);
        // racing resend while in flight
        assert_eq!(t.check(&s, k1), Verdict::InFlight);
        t.complete(&s, k1, true);
        assert_eq!(t.check(&s, k1), Verdict::Duplicate);
        let r = rejected(t.check(&s, key(1, 12, 0)));
        assert_eq!(
            (r.kind, r.field.as_str()),
            (ErrorKind::AlreadyExists, "seq")
        );
    }

    #[test]
    fn seq_and_time_must_move_forward_with_both_numbers_in_the_reason() {
        let mut t = tracker(4);
        let s = sid("s1");
        let k5 = key(5, 55, 10_000_000);
        assert_eq!(t.check(&s, k5), Verdict::New);
        t.complete(&s, k5, true);
        let r = rejected(t.check(&s, key(4, 44, 20_000_000)));
        assert_eq!(
            (r.kind, r.field.as_str()),
            (ErrorKind::FailedPrecondition, "seq")
        );
        assert!(
            r.reason.contains("got seq 4") && r.reason.contains("seq 5"),
            "{}",
            r.reason
        );
        // starts before the previous end (11 s) minus tolerance
        let r = rejected(t.check(&s, key(6, 66, 10_800_000)));
        assert_eq!(
            (r.kind, r.field.as_str()),
            (ErrorKind::FailedPrecondition, "first_sample_time_us")
        );
        assert!(
            r.reason.contains("10800000") && r.reason.contains("11000000"),
            "{}",
            r.reason
        );
        // within the tolerance is fine; gaps in seq are fine
        assert_eq!(t.check(&s, key(9, 99, 10_950_000)), Verdict::New);
    }

    #[test]
    fn retry_leaves_no_trace_and_in_flight_counts_for_order() {
        let mut t = tracker(4);
        let s = sid("s1");
        let k1 = key(1, 1, 0);
        let k2 = key(2, 2, 1_000_000);
        assert_eq!(t.check(&s, k1), Verdict::New);
        // pipelined: k2 checked against the in-flight k1
        assert_eq!(t.check(&s, k2), Verdict::New);
        let r = rejected(t.check(&s, key(1, 9, 0)));
        assert_eq!(r.kind, ErrorKind::AlreadyExists);
        t.complete(&s, k1, false); // RETRY
        t.complete(&s, k2, false); // RETRY
        // both may be sent again as new
        assert_eq!(t.check(&s, k1), Verdict::New);
        t.complete(&s, k1, true);
        assert_eq!(t.check(&s, k2), Verdict::New);
        t.complete(&s, k2, true);
        assert_eq!(t.check(&s, k1), Verdict::Duplicate);
        assert_eq!(t.check(&s, k2), Verdict::Duplicate);
    }

    #[test]
    fn a_retried_seq_blocks_later_seqs_until_it_is_resent() {
        let mut t = tracker(8);
        let s = sid("s");
        let (k1, k2, k3) = (key(1, 1, 0), key(2, 2, 1_000_000), key(3, 3, 2_000_000));
        assert_eq!(t.check(&s, k1), Verdict::New);
        assert_eq!(t.check(&s, k2), Verdict::New);
        t.complete(&s, k1, false); // RETRY for seq 1 (bus full)...
        t.complete(&s, k2, false); // ...and for seq 2, which ingest bounced too
        assert_eq!(t.check(&s, k3), Verdict::Blocked { waiting_for: 1 });
        // The resend of seq 1 lifts the floor; 2 and 3 follow in order.
        assert_eq!(t.check(&s, k1), Verdict::New);
        t.complete(&s, k1, true);
        assert_eq!(t.check(&s, k2), Verdict::New);
        t.complete(&s, k2, true);
        assert_eq!(t.check(&s, k3), Verdict::New);
        t.complete(&s, k3, true);
        // A rejected batch sets no floor.
        let k4 = key(4, 4, 3_000_000);
        assert_eq!(t.check(&s, k4), Verdict::New);
        t.release_rejected(&s, k4);
        assert_eq!(t.check(&s, key(5, 5, 4_000_000)), Verdict::New);
    }

    #[test]
    fn the_window_is_bounded_and_older_resends_fail_precondition() {
        let mut t = tracker(3);
        let s = sid("s1");
        for seq in 1..=10 {
            let k = key(seq, seq * 10, seq as i64 * 1_000_000);
            assert_eq!(t.check(&s, k), Verdict::New);
            t.complete(&s, k, true);
        }
        assert_eq!(t.check(&s, key(8, 80, 8_000_000)), Verdict::Duplicate);
        let r = rejected(t.check(&s, key(7, 70, 7_000_000)));
        assert_eq!(
            (r.kind, r.field.as_str()),
            (ErrorKind::FailedPrecondition, "seq")
        );
        assert!(r.reason.contains("dedupe window"), "{}", r.reason);
    }

    #[test]
    fn sensors_are_independent_and_bounded() {
        let mut t = tracker(3);
        for i in 0..25 {
            let s = sid(&format!("s{i}"));
            let k = key(1, 1, 0);
            assert_eq!(t.check(&s, k), Verdict::New);
            t.complete(&s, k, true);
        }
        assert_eq!(t.tracked_sensors(), 10);
        // an evicted sensor starts afresh (the processor's seq check is the authority)
        assert_eq!(t.check(&sid("s0"), key(1, 1, 0)), Verdict::New);
        // a recent one is still remembered
        assert_eq!(t.check(&sid("s24"), key(1, 1, 0)), Verdict::Duplicate);
    }
}
