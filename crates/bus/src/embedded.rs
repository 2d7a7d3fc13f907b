//! The embedded (one-process) bus: an append-only, bounded log per partition with Kafka's
//! consumer-group semantics.
//!
//! Invariants:
//! - Topics are auto-created with `partitions` partitions; a key's partition is
//!   `fnv1a64(key) % partitions`, so a key's records stay in one log in send order.
//! - A partition log holds at most `max_retained_per_partition` records; a send to a full
//!   partition fails with `QueueFull` at once (no waiting, no dropping).
//! - Offsets are dense and increase by one per record; the log is truncated below the
//!   minimum committed offset of every group that ever subscribed to the topic (a group
//!   that has not committed a partition holds it at the current start). A topic no group
//!   subscribed to is never truncated: it fills up and pushes back on producers.
//! - Each partition has at most one owner per group (round-robin over the sorted
//!   partitions and members, recomputed on every join and leave). A member's read position
//!   for a newly assigned partition starts at the group's committed offset, so records the
//!   previous owner received without committing are delivered again (at-least-once).
//! - Consumers wait on a per-member `Notify` that senders and rebalances signal; nothing polls.
//! - All state sits behind one mutex whose critical sections do no I/O and never await.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, broadcast};
use tracing::info;

use crate::{
    BusError, BusStats, Counters, Delivery, EMBEDDED_MAX_MESSAGE_BYTES, EmbeddedConfig, Message,
    RebalanceEvent, embedded_partition,
};

type Tp = (String, i32);

/// Upper bound of the partition count (keeps per-topic and per-group tables small).
const MAX_PARTITIONS: u32 = 1024;

pub(crate) struct Broker {
    partitions: u32,
    max_retained: usize,
    counters: Arc<Counters>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    topics: HashMap<String, Topic>,
    groups: HashMap<String, Group>,
    next_member: u64,
}

struct Topic {
    parts: Vec<Part>,
}

struct Part {
    /// Offset of the first retained record.
    base: i64,
    log: VecDeque<Record>,
}

impl Part {
    fn end(&self) -> i64 {
        self.base + self.log.len() as i64
    }
}

struct Record {
    key: Arc<str>,
    payload: Bytes,
}

#[derive(Default)]
struct Group {
    /// Every topic a member of this group ever subscribed to: the group's committed
    /// offsets hold back retention there, also while it has no members.
    topics: BTreeSet<String>,
    members: BTreeMap<u64, MemberState>,
    committed: HashMap<Tp, i64>,
    /// topic -> partition -> owning member.
    owners: HashMap<String, Vec<Option<u64>>>,
}

struct MemberState {
    topics: BTreeSet<String>,
    /// Sorted.
    assignment: Vec<Tp>,
    positions: HashMap<Tp, i64>,
    cursor: usize,
    notify: Arc<Notify>,
    events: broadcast::Sender<RebalanceEvent>,
}

impl Broker {
    pub(crate) fn new(cfg: EmbeddedConfig, counters: Arc<Counters>) -> Broker {
        Broker {
            partitions: cfg.partitions.clamp(1, MAX_PARTITIONS),
            max_retained: cfg.max_retained_per_partition.max(1),
            counters,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No critical section leaves the state half-updated on panic (they only panic on
        // allocation failure), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn topic_mut<'a>(&self, topics: &'a mut HashMap<String, Topic>, name: &str) -> &'a mut Topic {
        if !topics.contains_key(name) {
            let parts = (0..self.partitions)
                .map(|_| Part {
                    base: 0,
                    log: VecDeque::new(),
                })
                .collect();
            topics.insert(name.to_owned(), Topic { parts });
        }
        topics
            .get_mut(name)
            .unwrap_or_else(|| unreachable!("topic inserted above"))
    }

    pub(crate) fn send(
        &self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
    ) -> Result<Delivery, BusError> {
        if payload.len() > EMBEDDED_MAX_MESSAGE_BYTES {
            return Err(BusError::InvalidArgument(format!(
                "payload of {} bytes exceeds the embedded limit of {EMBEDDED_MAX_MESSAGE_BYTES}",
                payload.len()
            )));
        }
        let partition = embedded_partition(key, self.partitions);
        let pidx = partition as usize;
        let mut st = self.lock();
        if st.closed {
            return Err(BusError::Closed);
        }
        let State { topics, groups, .. } = &mut *st;
        let part = &mut self.topic_mut(topics, topic).parts[pidx];
        if part.log.len() >= self.max_retained {
            Counters::inc(&self.counters.queue_full);
            return Err(BusError::QueueFull);
        }
        let offset = part.end();
        part.log.push_back(Record {
            key: Arc::from(key),
            payload: Bytes::from(payload),
        });
        for g in groups.values() {
            let owner = g
                .owners
                .get(topic)
                .and_then(|o| o.get(pidx).copied().flatten());
            if let Some(m) = owner.and_then(|id| g.members.get(&id)) {
                m.notify.notify_one();
            }
        }
        drop(st);
        Counters::inc(&self.counters.sent);
        Counters::inc(&self.counters.delivered);
        Ok(Delivery { partition, offset })
    }

    pub(crate) fn join(
        self: &Arc<Self>,
        group: &str,
        topics: &[&str],
        events: broadcast::Sender<RebalanceEvent>,
    ) -> Result<Member, BusError> {
        let mut st = self.lock();
        if st.closed {
            return Err(BusError::Closed);
        }
        for t in topics {
            self.topic_mut(&mut st.topics, t);
        }
        let id = st.next_member;
        st.next_member += 1;
        let notify = Arc::new(Notify::new());
        let g = st.groups.entry(group.to_owned()).or_default();
        let subscribed: BTreeSet<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        g.topics.extend(subscribed.iter().cloned());
        g.members.insert(
            id,
            MemberState {
                topics: subscribed,
                assignment: Vec::new(),
                positions: HashMap::new(),
                cursor: 0,
                notify: notify.clone(),
                events,
            },
        );
        rebalance(g, group, self.partitions, &self.counters);
        drop(st);
        Ok(Member {
            broker: self.clone(),
            group: group.to_owned(),
            id,
            notify,
        })
    }

    fn leave(&self, group: &str, id: u64) {
        let mut st = self.lock();
        if let Some(g) = st.groups.get_mut(group)
            && g.members.remove(&id).is_some()
        {
            info!(group, member = id, "embedded bus: member left the group");
            rebalance(g, group, self.partitions, &self.counters);
        }
    }

    /// The next record for member `id`, if any.
    fn poll(&self, group: &str, id: u64) -> Result<Option<Message>, BusError> {
        let mut st = self.lock();
        if st.closed {
            return Err(BusError::Closed);
        }
        let State { topics, groups, .. } = &mut *st;
        let Some(g) = groups.get_mut(group) else {
            return Err(BusError::Closed);
        };
        let Group {
            members, committed, ..
        } = g;
        let Some(MemberState {
            assignment,
            positions,
            cursor,
            ..
        }) = members.get_mut(&id)
        else {
            return Err(BusError::Closed);
        };
        let n = assignment.len();
        for i in 0..n {
            let idx = (*cursor + i) % n;
            let tp = &assignment[idx];
            let Some(part) = topics.get(&tp.0).and_then(|t| t.parts.get(tp.1 as usize)) else {
                continue;
            };
            let pos = match positions.get_mut(tp) {
                Some(p) => p,
                None => {
                    let start = committed.get(tp).copied().unwrap_or(part.base);
                    positions.entry(tp.clone()).or_insert(start)
                }
            };
            if *pos < part.base {
                *pos = part.base;
            }
            if *pos < part.end() {
                let offset = *pos;
                let rec = &part.log[(offset - part.base) as usize];
                let (key, payload) = (rec.key.clone(), rec.payload.clone());
                *pos += 1;
                *cursor = (idx + 1) % n;
                let topic = tp.0.clone();
                let partition = tp.1;
                drop(st);
                return Ok(Some(Message {
                    topic,
                    partition,
                    offset,
                    key: key.to_string(),
                    payload: payload.to_vec(),
                }));
            }
        }
        Ok(None)
    }

    fn commit(&self, group: &str, id: u64, offsets: &[(String, i32, i64)]) -> Result<(), BusError> {
        let mut st = self.lock();
        if st.closed {
            return Err(BusError::Closed);
        }
        let State { topics, groups, .. } = &mut *st;
        let member = groups.get(group).and_then(|g| g.members.get(&id));
        let Some(member) = member else {
            return Err(BusError::Closed);
        };
        // Validate everything first: a commit applies completely or not at all.
        for (t, p, o) in offsets {
            if !member.assignment.iter().any(|(at, ap)| at == t && ap == p) {
                Counters::inc(&self.counters.commit_failed);
                return Err(BusError::NotAssigned {
                    topic: t.clone(),
                    partition: *p,
                });
            }
            let end = topics
                .get(t)
                .and_then(|x| x.parts.get(*p as usize))
                .map(Part::end)
                .unwrap_or(0);
            if *o < 0 || *o > end {
                Counters::inc(&self.counters.commit_failed);
                return Err(BusError::InvalidArgument(format!(
                    "commit offset {o} for {t}/{p} is outside 0..={end}"
                )));
            }
        }
        if let Some(g) = groups.get_mut(group) {
            for (t, p, o) in offsets {
                g.committed.insert((t.clone(), *p), *o);
            }
        }
        for (t, p, _) in offsets {
            truncate(topics, groups, t, *p);
        }
        Ok(())
    }

    fn with_member<R>(
        &self,
        group: &str,
        id: u64,
        f: impl FnOnce(&State, &Group, &MemberState) -> R,
    ) -> Option<R> {
        let st = self.lock();
        let g = st.groups.get(group)?;
        let m = g.members.get(&id)?;
        Some(f(&st, g, m))
    }

    pub(crate) fn ensure_topics(&self, topics: &[&str]) {
        let mut st = self.lock();
        for t in topics {
            self.topic_mut(&mut st.topics, t);
        }
    }

    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        for g in st.groups.values() {
            for m in g.members.values() {
                m.notify.notify_one();
            }
        }
    }

    pub(crate) fn retained(&self, topic: &str) -> Option<usize> {
        let st = self.lock();
        st.topics
            .get(topic)
            .map(|t| t.parts.iter().map(|p| p.log.len()).sum())
    }

    pub(crate) fn stats(&self) -> BusStats {
        let retained: usize = {
            let st = self.lock();
            st.topics
                .values()
                .flat_map(|t| t.parts.iter())
                .map(|p| p.log.len())
                .sum()
        };
        self.counters.snapshot(retained as u64)
    }
}

/// Drops the records of `t/p` below the minimum committed offset of the groups
/// subscribed to `t`.
fn truncate(topics: &mut HashMap<String, Topic>, groups: &HashMap<String, Group>, t: &str, p: i32) {
    let Some(part) = topics.get_mut(t).and_then(|x| x.parts.get_mut(p as usize)) else {
        return;
    };
    let tp = (t.to_owned(), p);
    let min = groups
        .values()
        .filter(|g| g.topics.contains(t))
        .map(|g| g.committed.get(&tp).copied().unwrap_or(part.base))
        .min();
    let Some(min) = min else { return };
    let n = (min - part.base).clamp(0, part.log.len() as i64);
    if n > 0 {
        part.log.drain(..n as usize);
        part.base += n;
    }
}

/// Round-robin assignment of every partition of the group's subscribed topics over the
/// members subscribing to each topic; notifies members whose assignment changed.
fn rebalance(g: &mut Group, group: &str, partitions: u32, counters: &Counters) {
    let topics: BTreeSet<String> = g
        .members
        .values()
        .flat_map(|m| m.topics.iter().cloned())
        .collect();
    let mut next: BTreeMap<u64, Vec<Tp>> = g.members.keys().map(|id| (*id, Vec::new())).collect();
    let mut owners = HashMap::new();
    let mut rr = 0usize;
    for topic in topics {
        let subs: Vec<u64> = g
            .members
            .iter()
            .filter(|(_, m)| m.topics.contains(&topic))
            .map(|(id, _)| *id)
            .collect();
        if subs.is_empty() {
            continue;
        }
        let mut o = vec![None; partitions as usize];
        for (p, slot) in o.iter_mut().enumerate() {
            let id = subs[rr % subs.len()];
            rr += 1;
            if let Some(a) = next.get_mut(&id) {
                a.push((topic.clone(), p as i32));
            }
            *slot = Some(id);
        }
        owners.insert(topic, o);
    }
    g.owners = owners;
    for (id, m) in g.members.iter_mut() {
        let mut assignment = next.remove(id).unwrap_or_default();
        assignment.sort();
        if assignment == m.assignment {
            continue;
        }
        let revoked: Vec<Tp> = m
            .assignment
            .iter()
            .filter(|tp| assignment.binary_search(tp).is_err())
            .cloned()
            .collect();
        let assigned: Vec<Tp> = assignment
            .iter()
            .filter(|tp| m.assignment.binary_search(tp).is_err())
            .cloned()
            .collect();
        for tp in &revoked {
            m.positions.remove(tp);
        }
        m.assignment = assignment;
        m.cursor = 0;
        info!(
            group,
            member = *id,
            ?revoked,
            ?assigned,
            "embedded bus rebalance"
        );
        Counters::inc(&counters.rebalances);
        // No receiver (nobody listening) is fine; the channel is bounded.
        if !revoked.is_empty() {
            let _ = m.events.send(RebalanceEvent::Revoked(revoked));
        }
        if !assigned.is_empty() {
            let _ = m.events.send(RebalanceEvent::Assigned(assigned));
        }
        m.notify.notify_one();
    }
}

/// A member of an embedded consumer group; leaves the group on drop.
pub(crate) struct Member {
    broker: Arc<Broker>,
    group: String,
    id: u64,
    notify: Arc<Notify>,
}

impl Member {
    pub(crate) async fn recv(&mut self) -> Result<Message, BusError> {
        loop {
            // A notification that arrives between `poll` and `notified()` is kept as a
            // permit by `notify_one`, so no wake-up is lost.
            if let Some(m) = self.broker.poll(&self.group, self.id)? {
                Counters::inc(&self.broker.counters.received);
                return Ok(m);
            }
            self.notify.notified().await;
        }
    }

    pub(crate) fn commit(&self, offsets: &[(String, i32, i64)]) -> Result<(), BusError> {
        self.broker.commit(&self.group, self.id, offsets)
    }

    pub(crate) fn assignment(&self) -> Vec<(String, i32)> {
        self.broker
            .with_member(&self.group, self.id, |_, _, m| m.assignment.clone())
            .unwrap_or_default()
    }

    pub(crate) fn lag(&self) -> i64 {
        self.broker
            .with_member(&self.group, self.id, |st, g, m| {
                m.assignment
                    .iter()
                    .filter_map(|tp| {
                        let part = st.topics.get(&tp.0)?.parts.get(tp.1 as usize)?;
                        let pos = m
                            .positions
                            .get(tp)
                            .or_else(|| g.committed.get(tp))
                            .copied()
                            .unwrap_or(part.base)
                            .max(part.base);
                        Some((part.end() - pos).max(0))
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.broker.leave(&self.group, self.id);
    }
}
