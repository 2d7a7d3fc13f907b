//! Event-time merge of an athlete's two sensors.
//!
//! The two sensors' batches reach the processor in arrival order, which is not time
//! order: a sensor whose batches were pushed back (RETRY) or synced late falls behind
//! the other. [`SensorMerge`] holds each sensor's batches and releases them one at a time
//! in a canonical time order that depends on the data only, never on the arrival
//! interleaving: so the biomechanics sees the same sequence, and produces bit-identical
//! records, whether the two streams arrived in lockstep, one lagging the other, or hours
//! late.
//!
//! Order: a batch's key is its start on the thoracolumbar clock. A sacrum start is mapped
//! with the clock offset (sacrum minus thoracolumbar) the caller passes at each release,
//! which is the pipeline's own estimate (itself a function of what was released before),
//! or 0 before there is one. The head with the smaller key (thoracolumbar first on a
//! tie) is released once it is *covered*: the other sensor has data at or past its end,
//! or has a batch held (whose key is then later), or its newest batch ended its session
//! (nothing earlier can follow). Otherwise it waits for the other sensor.
//!
//! Invariants:
//! - Each sensor's batches are released in the order they were pushed (their seq order).
//! - Releases are a pure function of the two pushed sequences, as long as neither sensor
//!   lags the other by more than the lateness bound: then the same data gives the same
//!   release order whatever the arrival interleaving (tested).
//! - Bounded: a batch is held at most `max_hold_us` of its own sensor's newer data (the
//!   other sensor is then treated as missing for that span: the lateness bound), and at
//!   most `max_batches` are held in all; beyond either bound the oldest goes.
//! - Pure: no clock.

use std::collections::VecDeque;

use liftguard_model::Placement;
use liftguard_proto::v1 as pb;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SensorMerge {
    held: [VecDeque<pb::EnrichedBatch>; 2],
    /// End of the newest data pushed per sensor, on that sensor's own clock.
    newest_end_us: [Option<i64>; 2],
    /// The newest batch pushed per sensor ended its session: nothing earlier can follow,
    /// so the other sensor's later data need not wait for it.
    ended: [bool; 2],
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
    pub fn held(&self) -> usize {
        self.held[0].len() + self.held[1].len()
    }

    /// Holds a batch; [`SensorMerge::pop_ready`] releases it.
    pub fn push(&mut self, placement: Placement, batch: pb::EnrichedBatch) {
        let s = slot(placement);
        let end = batch_end_us(&batch);
        self.newest_end_us[s] = Some(self.newest_end_us[s].map_or(end, |e| e.max(end)));
        self.ended[s] = batch.end_of_session;
        self.held[s].push_back(batch);
    }

    /// The next batch in canonical order, if it may go now. `offset_us` maps sacrum
    /// time to thoracolumbar time (`t_T = t_S − offset`); call again after processing
    /// each released batch, with the then-current offset.
    pub fn pop_ready(
        &mut self,
        offset_us: Option<i64>,
        max_hold_us: i64,
        max_batches: usize,
    ) -> Option<pb::EnrichedBatch> {
        self.pop(offset_us.unwrap_or(0), max_hold_us, max_batches, false)
    }

    /// The next batch in canonical order whatever the other sensor (end of session,
    /// shutdown, eviction).
    pub fn pop_any(&mut self, offset_us: Option<i64>) -> Option<pb::EnrichedBatch> {
        self.pop(offset_us.unwrap_or(0), 0, 0, true)
    }

    fn pop(
        &mut self,
        offset_us: i64,
        max_hold_us: i64,
        max_batches: usize,
        all: bool,
    ) -> Option<pb::EnrichedBatch> {
        // Shift of each slot's clock onto the thoracolumbar clock.
        let shift = [0, offset_us];
        let key = |s: usize, b: &pb::EnrichedBatch| b.first_sample_time_us - shift[s];
        let candidate = match (self.held[0].front(), self.held[1].front()) {
            (Some(a), Some(b)) => usize::from(key(1, b) < key(0, a)),
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (None, None) => return None,
        };
        let other = 1 - candidate;
        let head = self.held[candidate].front()?;
        let head_end = batch_end_us(head) - shift[candidate];
        let covered = !self.held[other].is_empty()
            || self.ended[other]
            || self.newest_end_us[other].is_some_and(|e| e - shift[other] >= head_end);
        let newest = self.newest_end_us[candidate].map_or(head_end, |e| e - shift[candidate]);
        let overdue = newest - key(candidate, head) > max_hold_us;
        let over_bound = self.held() > max_batches;
        if all || covered || overdue || over_bound {
            self.held[candidate].pop_front()
        } else {
            None
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

    fn push_bounded(
        m: &mut SensorMerge,
        p: Placement,
        x: pb::EnrichedBatch,
        hold: i64,
        max: usize,
    ) -> Vec<(u64, i64)> {
        m.push(p, x);
        std::iter::from_fn(|| m.pop_ready(Some(0), hold, max))
            .map(|b| (b.seq, b.first_sample_time_us))
            .collect()
    }

    fn push(m: &mut SensorMerge, p: Placement, x: pb::EnrichedBatch) -> Vec<(u64, i64)> {
        push_bounded(m, p, x, HOLD, 1000)
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
        let rest: Vec<_> = std::iter::from_fn(|| m.pop_any(Some(0))).collect();
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
        let mut out = 0;
        for i in 0..50 {
            out += push_bounded(&mut m, Placement::Sacrum, b(i + 1, 0.0), i64::MAX, 10).len();
        }
        assert!(m.held() <= 10);
        assert_eq!(out + m.held(), 50);
    }

    /// Two sensors' sequences pushed in many different interleavings release in one
    /// and the same order.
    #[test]
    fn the_release_order_does_not_depend_on_the_arrival_interleaving() {
        let t: Vec<_> = (0..40).map(|i| b(i + 1, i as f64 * 0.5)).collect();
        // The sacrum clock runs 0.23 s ahead, at a batch length of 0.4 s.
        let s: Vec<_> = (0..50)
            .map(|i| {
                let mut x = b(100 + i, 0.23 + i as f64 * 0.4);
                x.ax.truncate(40);
                x
            })
            .collect();
        let mut reference: Option<Vec<(u64, i64)>> = None;
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for trial in 0..200 {
            let (mut i, mut j) = (0, 0);
            let mut m = SensorMerge::default();
            let mut out = Vec::new();
            while i < t.len() || j < s.len() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // Trial 0 alternates; others draw bursts, letting either sensor lag.
                let take_t = if trial == 0 {
                    i <= j
                } else {
                    rng.is_multiple_of(2)
                };
                if (take_t && i < t.len()) || j >= s.len() {
                    m.push(Placement::Thoracolumbar, t[i].clone());
                    i += 1;
                } else {
                    m.push(Placement::Sacrum, s[j].clone());
                    j += 1;
                }
                // The offset the caller passes may change with what was released.
                while let Some(x) =
                    m.pop_ready(Some((out.len() as i64 / 10) * 10_000), i64::MAX, 1000)
                {
                    out.push((x.seq, x.first_sample_time_us));
                }
            }
            while let Some(x) = m.pop_any(Some((out.len() as i64 / 10) * 10_000)) {
                out.push((x.seq, x.first_sample_time_us));
            }
            assert_eq!(out.len(), 90);
            match &reference {
                None => reference = Some(out),
                Some(r) => assert_eq!(r, &out, "trial {trial}"),
            }
        }
    }

    #[test]
    fn a_sensor_that_ended_its_session_does_not_hold_the_other_back() {
        let mut m = SensorMerge::default();
        let mut last = b(1, 0.0);
        last.end_of_session = true;
        assert_eq!(push(&mut m, Placement::Sacrum, last).len(), 0);
        // The thoracolumbar sensor's trailing data goes at once.
        assert_eq!(push(&mut m, Placement::Thoracolumbar, b(1, 0.0)).len(), 2);
        assert_eq!(push(&mut m, Placement::Thoracolumbar, b(2, 0.5)).len(), 1);
        // The sacrum starts again: it waits for the thoracolumbar sensor again.
        assert_eq!(push(&mut m, Placement::Sacrum, b(2, 100.0)).len(), 0);
        assert_eq!(push(&mut m, Placement::Thoracolumbar, b(3, 100.0)).len(), 2);
    }
}
