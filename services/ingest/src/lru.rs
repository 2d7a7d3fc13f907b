//! A small bounded least-recently-used map.
//!
//! Invariants: never holds more than `capacity` entries (inserting into a full map evicts
//! the least recently used entry first); `get_mut` and `insert` count as uses; every
//! operation is O(log n). Not synchronised: callers wrap it in a mutex and never hold the
//! lock across an `.await`.

use std::{
    collections::{BTreeMap, HashMap, hash_map::Entry},
    hash::Hash,
};

#[derive(Debug)]
pub struct BoundedLru<K, V> {
    capacity: usize,
    clock: u64,
    entries: HashMap<K, (u64, V)>,
    order: BTreeMap<u64, K>,
}

impl<K: Clone + Eq + Hash, V> BoundedLru<K, V> {
    /// A map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            clock: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The entry for `k`, marked as most recently used.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let now = self.tick();
        let (used, v) = self.entries.get_mut(k)?;
        self.order.remove(used);
        self.order.insert(now, k.clone());
        *used = now;
        Some(v)
    }

    /// Inserts or replaces `k`; returns the evicted least recently used entry, if any.
    pub fn insert(&mut self, k: K, v: V) -> Option<(K, V)> {
        let now = self.tick();
        if let Some((used, old)) = self.entries.get_mut(&k) {
            self.order.remove(used);
            self.order.insert(now, k);
            *used = now;
            *old = v;
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity {
            self.order
                .pop_first()
                .and_then(|(_, old_k)| self.entries.remove(&old_k).map(|(_, old_v)| (old_k, old_v)))
        } else {
            None
        };
        self.order.insert(now, k.clone());
        self.entries.insert(k, (now, v));
        evicted
    }

    /// The entry for `k`, inserting `make()` first when absent (evicting the least
    /// recently used entry when full).
    pub fn get_or_insert_with(&mut self, k: &K, make: impl FnOnce() -> V) -> &mut V {
        let now = self.tick();
        if !self.entries.contains_key(k)
            && self.entries.len() >= self.capacity
            && let Some((_, old_k)) = self.order.pop_first()
        {
            self.entries.remove(&old_k);
        }
        match self.entries.entry(k.clone()) {
            Entry::Occupied(o) => {
                let e = o.into_mut();
                self.order.remove(&e.0);
                e.0 = now;
                self.order.insert(now, k.clone());
                &mut e.1
            }
            Entry::Vacant(slot) => {
                self.order.insert(now, k.clone());
                &mut slot.insert((now, make())).1
            }
        }
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (used, v) = self.entries.remove(k)?;
        self.order.remove(&used);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_stays_bounded() {
        let mut m = BoundedLru::new(3);
        assert!(m.insert("a", 1).is_none());
        assert!(m.insert("b", 2).is_none());
        assert!(m.insert("c", 3).is_none());
        // touch a: b is now the oldest
        assert_eq!(m.get_mut(&"a"), Some(&mut 1));
        assert_eq!(m.insert("d", 4), Some(("b", 2)));
        assert_eq!(m.len(), 3);
        assert!(m.get_mut(&"b").is_none());
        // replacing does not evict
        assert!(m.insert("c", 30).is_none());
        assert_eq!(m.insert("e", 5), Some(("a", 1)));
        assert_eq!(m.remove(&"c"), Some(30));
        assert_eq!(m.len(), 2);
        for i in 0..100 {
            m.insert("x", i);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(*m.get_or_insert_with(&"y", || 7), 7);
        assert_eq!(*m.get_or_insert_with(&"y", || 8), 7);
        assert_eq!(m.len(), 3);
        assert_eq!(m.order.len(), m.entries.len());
    }
}
