//! Batching: the messages read and waiting for a commit, the partitions of a batch,
//! the batches committing in the background, and how a batch being collected picks its
//! partitions (never one with a commit in flight, so a partition's messages commit in
//! order).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mieruka_ingest::{Item, Status};

use super::run::Aggregator;
use crate::store::{PgError, SourcePosition};

/// Batches' worth of messages a batch being collected may hold back (of partitions with a
/// commit in flight) before it stops and waits for that commit.
const HOLD_BATCHES: usize = 4;

/// Most messages a batch reserves room for before it reads any (a larger `max_batch`
/// grows its batches as they fill).
const BATCH_RESERVE: usize = 1 << 16;

/// One message read and decoded, waiting for its batch to commit.
pub(super) struct Pending {
    /// Shared with every message of the topic (see [`Aggregator::topics`]): telling two
    /// messages' partitions apart is then a pointer comparison, not a string comparison.
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) epoch: u64,
    /// The message's key, for the dead-letter topic; `None` without one.
    pub(super) key: Option<Vec<u8>>,
    /// Shared with the transaction that commits it (no copy of the event per attempt).
    pub(super) item: Arc<Item>,
    /// The message's bytes as read, for the dead-letter topic if the event is refused
    /// (the store may refuse a valid one at commit); empty without a dead-letter topic.
    pub(super) raw: Vec<u8>,
    pub(super) dead_lettered: bool,
}

impl Pending {
    /// Whether the message is of `topic`/`partition`.
    pub(super) fn is_of(&self, topic: &Arc<str>, partition: i32) -> bool {
        self.partition == partition && (Arc::ptr_eq(&self.topic, topic) || self.topic == *topic)
    }
}

/// One partition of a batch: the last offset read and the assignment it was read under.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) last: i64,
    pub(super) epoch: u64,
}

/// The partitions of a batch, in order of first appearance (a batch holds a few: a linear
/// scan beats hashing each message's topic).
pub(super) fn parts_of(batch: &[Pending]) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for m in batch {
        match parts.iter_mut().find(|p| m.is_of(&p.topic, p.partition)) {
            Some(p) => p.last = p.last.max(m.offset),
            None => parts.push(Part {
                topic: m.topic.clone(),
                partition: m.partition,
                last: m.offset,
                epoch: m.epoch,
            }),
        }
    }
    parts
}

/// A batch's transaction on the runtime: its outcome and how long it took.
pub(super) type CommitTask = tokio::task::JoinHandle<(Result<Vec<Status>, PgError>, Duration)>;

/// A batch whose transaction runs in the background.
pub(super) struct InFlight {
    pub(super) batch: Vec<Pending>,
    pub(super) parts: Vec<Part>,
    pub(super) positions: Vec<SourcePosition>,
    pub(super) task: CommitTask,
}

impl InFlight {
    /// Whether it commits a partition of `other`.
    pub(super) fn overlaps(&self, other: &[Pending]) -> bool {
        other
            .iter()
            .any(|m| self.parts.iter().any(|p| m.is_of(&p.topic, p.partition)))
    }
}

/// Which partitions' messages a batch being collected takes: none of a commit in flight
/// (`busy`), at most `cap` partitions, and none of a partition that already has a message
/// held back (its messages commit in order).
pub(super) struct Picker<'a> {
    busy: &'a [(Arc<str>, i32)],
    cap: usize,
    taken: Vec<(Arc<str>, i32)>,
    behind: Vec<(Arc<str>, i32)>,
}

impl Picker<'_> {
    fn has(list: &[(Arc<str>, i32)], m: &Pending) -> bool {
        list.iter().any(|(t, p)| m.is_of(t, *p))
    }

    /// Whether `m` goes into the batch (its partition is then taken).
    fn admit(&mut self, m: &Pending) -> bool {
        if Self::has(self.busy, m) || Self::has(&self.behind, m) {
            return false;
        }
        if Self::has(&self.taken, m) {
            return true;
        }
        if self.taken.len() >= self.cap {
            return false;
        }
        self.taken.push((m.topic.clone(), m.partition));
        true
    }

    /// `m` stays behind, and so do its partition's later messages.
    fn hold(&mut self, m: &Pending) {
        if !Self::has(&self.behind, m) {
            self.behind.push((m.topic.clone(), m.partition));
        }
    }
}

impl Aggregator {
    /// Reads one batch of the partitions not in `busy` (those of the commits in flight):
    /// up to `max_batch` messages, or what arrives within `max_wait` of the first one.
    /// Messages of busy partitions, and those that do not fit, stay in the carry, in
    /// order, for a later batch (so a partition's messages always commit in order).
    /// Returns early (possibly empty) when asked to stop or when [`HOLD_BATCHES`] batches'
    /// worth of messages are held back, empty when nothing arrived for 100 ms, and as soon
    /// as a commit of `in_flight` is through while the batch is empty or holds a quarter
    /// of `max_batch`: reading on (into the carry, or to fill the batch) would leave the
    /// room that commit freed idle.
    pub(super) fn collect(
        &mut self,
        busy: &[(Arc<str>, i32)],
        in_flight: &VecDeque<InFlight>,
    ) -> Vec<Pending> {
        let owned = self.ctx().owned().count();
        let mut pick = Picker {
            busy,
            // Each batch takes its share of the partitions, so the next one finds some free.
            cap: owned.div_ceil(self.opts.parallel_commits.max(1)).max(1),
            taken: Vec::new(),
            behind: Vec::new(),
        };
        // Sized for a full batch up front: grown by doubling, its moves and the fresh
        // pages behind them were a sixth of this thread's time (perf, the Kafka bench).
        let mut batch = Vec::with_capacity(self.opts.max_batch.min(BATCH_RESERVE));
        // Taken out of the carry in place: the rest keep their order, and the carry its
        // room (rebuilt, it grew again from nothing for every batch).
        let mut admitted = 0;
        batch.extend(self.carry.extract_if(.., |m| {
            if admitted < self.opts.max_batch && pick.admit(m) {
                admitted += 1;
                true
            } else {
                pick.hold(m);
                false
            }
        }));
        let mut first: Option<Instant> = (!batch.is_empty()).then(Instant::now);
        loop {
            if self.stopping()
                || batch.len() >= self.opts.max_batch
                || self.carry.len() >= HOLD_BATCHES * self.opts.max_batch
                || ((batch.is_empty() || batch.len() >= self.opts.max_batch / 4)
                    && in_flight.iter().any(|f| f.task.is_finished()))
            {
                break;
            }
            let timeout = match first {
                None => Duration::from_millis(100),
                Some(t) => {
                    let left = self.opts.max_wait.saturating_sub(t.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    left
                }
            };
            let polled = self.poll_one(timeout);
            self.measure_lag();
            match polled {
                Some(p) if !pick.admit(&p) => {
                    pick.hold(&p);
                    self.carry.push(p);
                }
                Some(p) => {
                    batch.push(p);
                    first.get_or_insert_with(Instant::now);
                }
                // Idle: return, so that a commit in flight is seen through.
                None if batch.is_empty() => break,
                None => {}
            }
        }
        batch
    }
}
