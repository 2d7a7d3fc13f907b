//! Event-time merge of an athlete's two sensors.
//!
//! The two sensors' batches reach the processor in arrival order, which is not time
//! order: a sensor whose batches were pushed back (RETRY) or synced late falls behind
//! the other. [`SensorMerge`] holds each sensor's batches until the other sensor's data
//! covers their time, then releases them in time order, so the biomechanics sees the
//! two streams merged by time, not by arrival.
//!
//! Times are compared on the thoracolumbar clock: a sacrum time is mapped with the
//! clock offset (sacrum minus thoracolumbar) the caller supplies — the pipeline's own
//! estimate once it has one, before that a rough one from the server receive times.
//!
//! Invariants:
//! - Each sensor's batches are released in the order they were pushed (their seq order).
//! - Bounded: a batch is held at most `max_hold_us` of the other sensor's data past its
//!   start (the other sensor is then treated as missing for that span), and at most
//!   `max_batches` are held in all; beyond either bound the oldest is released.
//! - Pure: no clock; the same pushes give the same releases.

use std::collections::VecDeque;

use liftguard_model::Placement;
use liftguard_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// One held batch with its span on the thoracolumbar clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    start_us: i64,
    end_us: i64,
    batch: pb::EnrichedBatch,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SensorMerge {
    held: [VecDeque<Held>; 2],
    /// End of the newest data seen per sensor (thoracolumbar clock).
    newest_end_us: [Option<i64>; 2],
    /// Device time minus receive time of each sensor's first batch: their difference is
    /// the rough clock offset used until the pipeline estimates it.
    first_skew_us: [Option<i64>; 2],
}

fn slot(p: Placement) -> usize {
    match p {
        Placement::Thoracolumbar => 0,
        Placement::Sacrum => 1,
    }
}

/// Device time of the end of a batch (one period past its last sample).
pub fn batch_end_us(b: &pb::EnrichedBatch) -> i64 {
    let n = b.ax.len() as f64;
    b.first_sample_time_us + (n * 1e6 / f64::from(b.sample_rate_hz.max(1.0))).round() as i64
}

impl SensorMerge {
    /// The rough sacrum-minus-thoracolumbar clock offset from receive times, once both
    /// sensors have been seen (0 before).
    pub fn rough_offset_us(&self) -> i64 {
        match self.first_skew_us {
            [Some(t), Some(s)] => s - t,
            _ => 0,
        }
    }

    pub fn held(&self) -> usize {
        self.held[0].len() + self.held[1].len()
    }

    /// Adds a batch; appends to `out` every batch that may now go, in time order.
    /// `offset_us` maps sacrum time to thoracolumbar time (`t_T = t_S − offset`).
    pub fn push(
        &mut self,
        placement: Placement,
        batch: pb::EnrichedBatch,
        offset_us: Option<i64>,
        max_hold_us: i64,
        max_batches: usize,
        out: &mut Vec<pb::EnrichedBatch>,
    ) {
        let s = slot(placement);
        if self.first_skew_us[s].is_none() && batch.received_time_us > 0 {
            self.first_skew_us[s] = Some(batch.first_sample_time_us - batch.received_time_us);
        }
        let shift = if s == 1 {
            offset_us.unwrap_or_else(|| self.rough_offset_us())
        } else {
            0
        };
        let start_us = batch.first_sample_time_us - shift;
        let end_us = batch_end_us(&batch) - shift;
        self.newest_end_us[s] = Some(self.newest_end_us[s].map_or(end_us, |e| e.max(end_us)));
        self.held[s].push_back(Held {
            start_us,
            end_us,
            batch,
        });
        self.release(max_hold_us, max_batches, false, out);
    }

    /// Releases everything held, in time order (end of stream, session end, eviction).
    pub fn drain(&mut self, out: &mut Vec<pb::EnrichedBatch>) {
        self.release(0, 0, true, out);
    }

    fn release(
        &mut self,
        max_hold_us: i64,
        max_batches: usize,
        all: bool,
        out: &mut Vec<pb::EnrichedBatch>,
    ) {
        loop {
            // The earlier-starting head of the two queues is the candidate.
            let candidate = match (self.held[0].front(), self.held[1].front()) {
                (Some(a), Some(b)) => usize::from(b.start_us < a.start_us),
                (Some(_), None) => 0,
                (None, Some(_)) => 1,
                (None, None) => return,
            };
            let other = 1 - candidate;
            let Some(head) = self.held[candidate].front() else {
                return;
            };
            let covered = self.newest_end_us[other].is_some_and(|e| e >= head.end_us)
                || !self.held[other].is_empty();
            let newest = self.newest_end_us[candidate].unwrap_or(head.end_us);
            let overdue = newest - head.start_us > max_hold_us;
            let over_bound = self.held() > max_batches;
            if !(all || covered || overdue || over_bound) {
                return;
            }
            if let Some(h) = self.held[candidate].pop_front() {
                out.push(h.batch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(seq: u64, t_s: f64) -> pb::EnrichedBatch {
        pb::EnrichedBatch {
            seq,
            first_sample_time_us: (t_s * 1e6) as i64,
            sample_rate_hz: 100.0,
            ax: vec![0.0; 50],
            ..Default::default()
        }
    }

    const HOLD: i64 = 10_000_000;

    fn push(m: &mut SensorMerge, p: Placement, x: pb::EnrichedBatch) -> Vec<(u64, i64)> {
        let mut out = Vec::new();
        m.push(p, x, Some(0), HOLD, 1000, &mut out);
        out.iter()
            .map(|b| (b.seq, b.first_sample_time_us))
            .collect()
    }

    #[test]
    fn a_sensor_running_ahead_is_held_until_the_other_catches_up() {
        let mut m = SensorMerge::default();
        // The thoracolumbar sensor sends 4 s of data while the sacrum is held back.
        let mut released = Vec::new();
        for i in 0..8 {
            released.extend(push(
                &mut m,
                Placement::Thoracolumbar,
                b(i + 1, i as f64 * 0.5),
            ));
        }
        assert!(released.is_empty(), "{released:?}");
        assert_eq!(m.held(), 8);
        // The sacrum catches up: everything goes, merged by time.
        let mut out = Vec::new();
        for i in 0..8 {
            let r = push(&mut m, Placement::Sacrum, b(100 + i, i as f64 * 0.5));
            out.extend(r);
        }
        let times: Vec<i64> = out.iter().map(|(_, t)| *t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        // Both sensors now cover 0..4 s: nothing needs to wait.
        assert_eq!(out.len(), 16);
        assert_eq!(m.held(), 0);
        // A sacrum batch past the thoracolumbar data waits again; drain releases it.
        assert!(push(&mut m, Placement::Sacrum, b(108, 4.0)).is_empty());
        let mut rest = Vec::new();
        m.drain(&mut rest);
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn a_missing_sensor_delays_the_other_by_at_most_the_hold() {
        let mut m = SensorMerge::default();
        let mut released = 0;
        for i in 0..100 {
            released += push(&mut m, Placement::Thoracolumbar, b(i + 1, i as f64 * 0.5)).len();
            // Held data never spans more than the hold (plus one batch).
            assert!(m.held() <= 21, "{}", m.held());
        }
        assert!(released >= 79);
    }

    #[test]
    fn the_count_bound_holds() {
        let mut m = SensorMerge::default();
        let mut out = Vec::new();
        for i in 0..50 {
            m.push(
                Placement::Sacrum,
                b(i + 1, 0.0),
                Some(0),
                i64::MAX,
                10,
                &mut out,
            );
        }
        assert!(m.held() <= 10);
        assert_eq!(out.len() + m.held(), 50);
    }

    #[test]
    fn the_rough_offset_comes_from_receive_times() {
        let mut m = SensorMerge::default();
        let mut t = b(1, 100.0);
        t.received_time_us = 200_000_000;
        let mut s = b(1, 102.5);
        s.received_time_us = 200_000_000;
        let mut out = Vec::new();
        m.push(Placement::Thoracolumbar, t, None, HOLD, 100, &mut out);
        m.push(Placement::Sacrum, s, None, HOLD, 100, &mut out);
        assert_eq!(m.rough_offset_us(), 2_500_000);
    }
}
