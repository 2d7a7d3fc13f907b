//! A bounded cache of sensor bindings (sensor -> gym, athlete, placement, profile) with a
//! time to live, so a re-bound sensor is seen within `ttl` and an unknown sensor does not
//! cost a store lookup per batch.
//!
//! Invariants: at most `capacity` entries (least recently used evicted); an entry is
//! served only before its expiry (`ttl` for a binding, the shorter `negative_ttl` for
//! "no such sensor", so a sensor registered a moment ago is found soon); pure (the caller
//! passes the time).

use std::time::{Duration, Instant};

use liftguard_model::SensorId;
use liftguard_store::SensorBinding;

use crate::lru::BoundedLru;

#[derive(Debug)]
pub struct BindingCache {
    ttl: Duration,
    negative_ttl: Duration,
    entries: BoundedLru<SensorId, (Instant, Option<SensorBinding>)>,
}

impl BindingCache {
    pub fn new(capacity: usize, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl,
            entries: BoundedLru::new(capacity),
        }
    }

    /// `Some(lookup result)` while fresh, `None` when the store must be asked.
    pub fn get(&mut self, sensor: &SensorId, now: Instant) -> Option<Option<SensorBinding>> {
        match self.entries.get_mut(sensor) {
            Some((expires, b)) if now < *expires => Some(b.clone()),
            Some(_) => {
                self.entries.remove(sensor);
                None
            }
            None => None,
        }
    }

    pub fn put(&mut self, sensor: SensorId, binding: Option<SensorBinding>, now: Instant) {
        let ttl = if binding.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        self.entries.insert(sensor, (now + ttl, binding));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liftguard_model::{AthleteId, GymId, Placement};
    use liftguard_proto::v1::AthleteProfile;

    fn binding(athlete: &str) -> SensorBinding {
        SensorBinding {
            gym_id: GymId::parse("g1").unwrap(),
            athlete_id: AthleteId::parse(athlete).unwrap(),
            placement: Placement::Sacrum,
            profile: AthleteProfile::default(),
        }
    }

    #[test]
    fn entries_expire_and_negative_entries_expire_sooner() {
        let t0 = Instant::now();
        let mut c = BindingCache::new(2, Duration::from_secs(30), Duration::from_secs(2));
        let s1 = SensorId::parse("s1").unwrap();
        let s2 = SensorId::parse("s2").unwrap();
        assert_eq!(c.get(&s1, t0), None);
        c.put(s1.clone(), Some(binding("a1")), t0);
        c.put(s2.clone(), None, t0);
        assert_eq!(
            c.get(&s1, t0 + Duration::from_secs(29))
                .unwrap()
                .unwrap()
                .athlete_id
                .as_str(),
            "a1"
        );
        assert_eq!(c.get(&s2, t0 + Duration::from_secs(1)), Some(None));
        assert_eq!(c.get(&s2, t0 + Duration::from_secs(2)), None);
        assert_eq!(c.get(&s1, t0 + Duration::from_secs(30)), None);
        // bounded
        for i in 0..10 {
            c.put(SensorId::parse(format!("x{i}")).unwrap(), None, t0);
        }
        assert_eq!(c.len(), 2);
    }
}
