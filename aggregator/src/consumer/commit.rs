//! Committing a batch: in the background while the next is read, or here, retried
//! through outages with backoff (still polling, pausing the partitions once a few
//! batches wait); a fenced batch is dropped and its partitions sought to their stored
//! offsets.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mieruka_ingest::{Item, Status};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::batch::{parts_of, CommitTask, InFlight, Part, Pending};
use super::run::Aggregator;
use super::ConsumerError;
use crate::store::{PgError, SourcePosition};

/// Batches read ahead while commits fail before the partitions are paused.
const PAUSE_AFTER_BATCHES: usize = 4;

/// How one commit attempt ended without committing.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// Another consumer moved a stored offset: drop the batch, seek anew.
    Fenced(String, i32),
    /// PostgreSQL or the broker is unavailable: retry the same batch later.
    Transient(String),
    /// Give up.
    Fatal(ConsumerError),
}

/// Sorts a commit's failure into what the consumer does next.
fn classify(result: Result<Vec<Status>, PgError>) -> Result<Vec<Status>, AttemptError> {
    match result {
        Ok(s) => Ok(s),
        Err(PgError::Fenced { topic, partition }) => Err(AttemptError::Fenced(topic, partition)),
        Err(e @ (PgError::Database(_) | PgError::Contention { .. })) => {
            Err(AttemptError::Transient(e.to_string()))
        }
        // A plan change: this aggregator stops with the message naming what changed.
        Err(
            e @ (PgError::Migrate(_)
            | PgError::Inconsistent(_)
            | PgError::Corrupt(_)
            | PgError::PlanChanged(_)),
        ) => Err(AttemptError::Fatal(e.into())),
    }
}

impl Aggregator {
    /// Starts committing a batch in the background (after producing its invalid events
    /// to the dead-letter topic). When producing the dead letters fails, the batch is
    /// committed here instead, through the retrying path.
    pub(super) fn start(
        &mut self,
        mut batch: Vec<Pending>,
    ) -> Result<Option<InFlight>, ConsumerError> {
        self.retain_current(&mut batch);
        if batch.is_empty() {
            self.resume();
            return Ok(None);
        }
        if let Err(e) = self.dead_letter_invalid(&mut batch) {
            tracing::debug!(error = ?e, "Dead letters not produced; committing through the retry path.");
            return self.commit(batch).map(|()| None);
        }
        let parts = parts_of(&batch);
        let positions = self.positions(&parts);
        let task = self.submit(&batch, &positions);
        Ok(Some(InFlight {
            batch,
            parts,
            positions,
            task,
        }))
    }

    /// Waits for a background commit. When it failed for a reason that passes, `next`
    /// (read meanwhile) goes back to the carry, ahead of anything read later, and the
    /// batch is retried here until it commits.
    pub(super) fn finish(
        &mut self,
        f: InFlight,
        next: &mut Vec<Pending>,
    ) -> Result<(), ConsumerError> {
        let InFlight {
            batch,
            parts,
            positions,
            task,
        } = f;
        match self.wait(task) {
            Ok((statuses, elapsed)) => {
                self.committed(&batch, &parts, &positions, &statuses, elapsed);
                self.resume();
                Ok(())
            }
            Err(AttemptError::Fenced(topic, partition)) => self.fenced(&topic, partition, &batch),
            Err(AttemptError::Transient(reason)) => {
                tracing::debug!(%reason, "Background commit failed; retrying it.");
                next.append(&mut self.carry);
                self.carry = std::mem::take(next);
                self.commit(batch)
            }
            Err(AttemptError::Fatal(e)) => Err(e),
        }
    }

    /// Drops the messages of partitions revoked (or re-assigned) since they were read.
    fn retain_current(&self, batch: &mut Vec<Pending>) {
        let owned = self.ctx().owned();
        // The current epoch of each partition met, looked up once per partition.
        let mut current: Vec<(Arc<str>, i32, Option<u64>)> = Vec::new();
        batch.retain(|m| {
            let epoch = match current.iter().find(|(t, p, _)| m.is_of(t, *p)) {
                Some((_, _, e)) => *e,
                None => {
                    let e = owned.get(&m.topic, m.partition).map(|s| s.epoch);
                    current.push((m.topic.clone(), m.partition, e));
                    e
                }
            };
            epoch == Some(m.epoch)
        });
    }

    /// One position per partition of a batch: from the offset held to after its last
    /// message, sorted.
    fn positions(&self, parts: &[Part]) -> Vec<SourcePosition> {
        let owned = self.ctx().owned();
        let mut positions: Vec<SourcePosition> = parts
            .iter()
            .map(|p| SourcePosition {
                topic: p.topic.to_string(),
                partition: p.partition,
                expected: owned.get(&p.topic, p.partition).and_then(|s| s.expected),
                next: p.last + 1,
            })
            .collect();
        positions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        positions
    }

    /// Commits a batch, retrying through outages; drops it when fenced.
    fn commit(&mut self, mut batch: Vec<Pending>) -> Result<(), ConsumerError> {
        let mut delay = Duration::from_millis(100);
        loop {
            self.retain_current(&mut batch);
            if batch.is_empty() {
                self.resume();
                return Ok(());
            }
            let parts = parts_of(&batch);
            let positions = self.positions(&parts);
            match self.attempt(&mut batch, &parts, &positions) {
                Ok(()) => {
                    self.resume();
                    return Ok(());
                }
                Err(AttemptError::Fenced(topic, partition)) => {
                    return self.fenced(&topic, partition, &batch);
                }
                Err(AttemptError::Transient(reason)) => {
                    if self.stopping() {
                        tracing::warn!(%reason, "Stopping with an uncommitted batch; the next owner of its partitions reads it again.");
                        self.carry.clear();
                        return Ok(());
                    }
                    tracing::warn!(%reason, retry_in = ?delay, messages = batch.len(), "Cannot commit the batch; retrying it (partitions pause once a few batches wait).");
                    self.backoff(delay);
                    delay = (delay * 2).min(self.opts.max_backoff);
                }
                Err(AttemptError::Fatal(e)) => return Err(e),
            }
        }
    }

    /// One try: dead letters first, then the transaction.
    fn attempt(
        &mut self,
        batch: &mut [Pending],
        parts: &[Part],
        positions: &[SourcePosition],
    ) -> Result<(), AttemptError> {
        self.dead_letter_invalid(batch)?;
        let task = self.submit(batch, positions);
        let (statuses, elapsed) = self.wait(task)?;
        self.committed(batch, parts, positions, &statuses, elapsed);
        Ok(())
    }

    /// Starts the transaction of a batch and its positions on the runtime.
    fn submit(&self, batch: &[Pending], positions: &[SourcePosition]) -> CommitTask {
        let items: Vec<Arc<Item>> = batch.iter().map(|m| m.item.clone()).collect();
        let (store, positions) = (self.store.clone(), positions.to_vec());
        self.handle.spawn(async move {
            let started = Instant::now();
            let r = store.submit_with_positions(&items, &positions).await;
            (r, started.elapsed())
        })
    }

    /// Waits for a transaction: each item's fate and how long it took, or why it failed.
    fn wait(&self, task: CommitTask) -> Result<(Vec<Status>, Duration), AttemptError> {
        match self.handle.block_on(task) {
            Ok((r, elapsed)) => classify(r).map(|statuses| (statuses, elapsed)),
            Err(e) => Err(AttemptError::Transient(format!(
                "the commit task ended abnormally: {e}"
            ))),
        }
    }

    /// Another consumer committed `topic`/`partition`: drops the batch and seeks to the
    /// stored offsets.
    fn fenced(
        &mut self,
        topic: &str,
        partition: i32,
        batch: &[Pending],
    ) -> Result<(), ConsumerError> {
        tracing::warn!(%topic, partition, "Fenced: another consumer committed this partition; dropping the batch and seeking to the stored offsets.");
        let r = self.reposition(batch);
        self.resume();
        r
    }

    /// After a commit: the positions this consumer holds, its observer, the broker's
    /// advisory offsets, and the dead letters known only at commit time.
    fn committed(
        &self,
        batch: &[Pending],
        parts: &[Part],
        positions: &[SourcePosition],
        statuses: &[Status],
        elapsed: Duration,
    ) {
        {
            // Only partitions still held under the assignment the batch was read in: a
            // partition re-assigned meanwhile read its stored offset afresh.
            let mut owned = self.ctx().owned();
            for p in parts {
                if let Some(s) = owned.get_mut(&p.topic, p.partition) {
                    if s.epoch == p.epoch {
                        s.expected = Some(p.last + 1);
                    }
                }
            }
        }
        tracing::debug!(messages = batch.len(), ?elapsed, "Batch committed.");
        let labels: Vec<&str> = batch.iter().map(|m| m.item.source_label.as_str()).collect();
        self.observer.committed(&labels, statuses, elapsed);
        // Advice for tools: the broker's committed offsets follow the stored ones.
        let mut tpl = TopicPartitionList::new();
        for p in positions {
            let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next));
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "Advisory offset commit to the broker failed.");
        }
        self.dead_letter_late(batch, statuses);
    }

    /// After a fence: forget the batch's partitions' progress and seek to the stored offsets.
    fn reposition(&mut self, batch: &[Pending]) -> Result<(), ConsumerError> {
        let parts: Vec<(String, i32)> = batch
            .iter()
            .map(|m| (m.topic.to_string(), m.partition))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let Some(stored) = self.ctx().stored_positions(&parts) else {
            return Ok(());
        };
        for (t, p) in parts {
            let at = stored.get(&(t.clone(), p)).copied();
            {
                let mut owned = self.ctx().owned();
                owned.epoch += 1;
                let epoch = owned.epoch;
                match owned.get_mut(&t, p) {
                    Some(s) => s.restart(epoch, at),
                    None => continue,
                }
            }
            let offset = at.map_or(Offset::Beginning, Offset::Offset);
            let mut tries = 0;
            loop {
                match self.consumer.seek(&t, p, offset, Duration::from_secs(5)) {
                    Ok(()) => break,
                    Err(e) if tries < 10 => {
                        tries += 1;
                        tracing::debug!(topic = %t, partition = p, error = %e, "Seek failed; retrying.");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => {
                        // Reading on would skip the dropped batch: stop, and let a restart
                        // start from the stored offsets.
                        return Err(ConsumerError::Fatal(format!(
                            "cannot seek {t}/{p} to its stored offset after a fence: {e}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Pauses every assigned partition (again, if a rebalance assigned new ones).
    fn pause(&mut self) {
        let epoch = self.ctx().owned().epoch;
        if self.paused_epoch == Some(epoch) {
            return;
        }
        match self.consumer.assignment() {
            Ok(a) => {
                match self.consumer.pause(&a) {
                    Ok(()) => tracing::info!(
                        read_ahead = self.carry.len(),
                        "Commits keep failing; partitions paused until one succeeds."
                    ),
                    Err(e) => tracing::debug!(error = %e, "Cannot pause the partitions."),
                }
                self.paused_epoch = Some(epoch);
            }
            Err(e) => tracing::debug!(error = %e, "Cannot read the assignment to pause it."),
        }
    }

    /// Resumes fetching after a pause.
    fn resume(&mut self) {
        if self.paused_epoch.take().is_none() {
            return;
        }
        match self.consumer.assignment() {
            Ok(a) => {
                if let Err(e) = self.consumer.resume(&a) {
                    tracing::warn!(error = %e, "Cannot resume the partitions.");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot read the assignment to resume it."),
        }
        // librdkafka resumes from its fetch position, past what it had fetched and then
        // discarded at the pause: go back to the next offset this consumer has not read.
        let resume_at = self.ctx().owned().select(|s| s.next);
        for (t, p, next) in resume_at {
            if let Err(e) = self
                .consumer
                .seek(&t, p, Offset::Offset(next), Duration::from_secs(5))
            {
                // The gap check in `accept` (or the probe) seeks again if this did not take.
                tracing::debug!(topic = %t, partition = p, error = %e, "Cannot seek after resuming.");
            }
            if let Some(s) = self.ctx().owned().get_mut(&t, p) {
                s.sought(next);
            }
        }
        tracing::info!("Committed again; partitions resumed.");
    }

    /// Waits `delay` while still polling (rebalances are served, the group sees us alive);
    /// what arrives meanwhile is kept for the next batch.
    pub(super) fn backoff(&mut self, delay: Duration) {
        let until = Instant::now() + delay;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(p) = self.poll_one(left.min(Duration::from_millis(100))) {
                self.carry.push(p);
            }
            // Pause only once a few batches wait: a short outage then needs no pause and
            // no seek (tansu 0.6 was seen to lose track of offsets after them).
            if self.carry.len() >= PAUSE_AFTER_BATCHES * self.opts.max_batch {
                self.pause();
            }
        }
    }
}
