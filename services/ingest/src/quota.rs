//! Per-gym quotas: a token bucket of samples per second. Pure: the caller passes the time.
//!
//! Invariants: a bucket never holds more than `burst` tokens and refills at `rate` per
//! second; a batch of `n` samples takes `n` tokens or nothing (then the caller answers
//! RETRY with the returned wait); `burst` is at least the largest batch, so every valid
//! batch can eventually pass. At most `max_gyms` buckets are kept (least recently used
//! evicted; an evicted gym starts again with a full bucket). `rate <= 0` disables quotas.

use std::time::{Duration, Instant};

use liftguard_model::GymId;

use crate::lru::BoundedLru;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct Quotas {
    rate: f64,
    burst: f64,
    buckets: BoundedLru<GymId, Bucket>,
}

impl Quotas {
    pub fn new(samples_per_sec: f64, burst: f64, max_gyms: usize) -> Self {
        Self {
            rate: samples_per_sec,
            burst: burst.max(samples_per_sec.max(0.0)),
            buckets: BoundedLru::new(max_gyms),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes `n` tokens for `gym` at `now`, or says how long until they are available.
    pub fn try_take(&mut self, gym: &GymId, n: usize, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.get_or_insert_with(gym, || Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        let need = n as f64;
        if b.tokens >= need {
            b.tokens -= need;
            Ok(())
        } else {
            let missing = need.min(burst) - b.tokens;
            Err(Duration::from_secs_f64((missing / rate).max(0.001)))
        }
    }

    /// Returns `n` tokens taken for a batch that was not sent after all.
    pub fn refund(&mut self, gym: &GymId, n: usize) {
        if !self.enabled() {
            return;
        }
        let burst = self.burst;
        if let Some(b) = self.buckets.get_mut(gym) {
            b.tokens = (b.tokens + n as f64).min(burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_rate_and_reports_the_wait() {
        let g = GymId::parse("g1").unwrap();
        let other = GymId::parse("g2").unwrap();
        let t0 = Instant::now();
        let mut q = Quotas::new(1000.0, 2000.0, 8);
        assert!(q.try_take(&g, 1500, t0).is_ok());
        let wait = q.try_take(&g, 1000, t0).unwrap_err();
        // 500 left, 500 missing at 1000/s
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // other gyms are unaffected
        assert!(q.try_take(&other, 2000, t0).is_ok());
        // refill
        assert!(
            q.try_take(&g, 1000, t0 + Duration::from_millis(500))
                .is_ok()
        );
        // refund restores
        q.refund(&g, 1000);
        assert!(
            q.try_take(&g, 1000, t0 + Duration::from_millis(500))
                .is_ok()
        );
        // never above burst
        assert!(q.try_take(&g, 2000, t0 + Duration::from_secs(100)).is_ok());
        assert!(q.try_take(&g, 1, t0 + Duration::from_secs(100)).is_err());
    }

    #[test]
    fn disabled_quota_admits_everything() {
        let g = GymId::parse("g1").unwrap();
        let mut q = Quotas::new(0.0, 0.0, 8);
        for _ in 0..100 {
            assert!(q.try_take(&g, 1_000_000, Instant::now()).is_ok());
        }
    }
}
