//! What this consumer knows of one partition it owns, and how it reads a partition's
//! offsets in order on a broker that does not always serve the offset asked for.
//!
//! Two recoveries live here, both for tansu 0.6 (and any broker like it):
//! - **Gaps.** Never read past a gap the broker can still fill: a message past the next
//!   offset seeks back (at most every 500 ms, further back each time) and what arrives is
//!   dropped until the next offset does. Only offsets below the log start (expired by
//!   retention) are skipped.
//! - **Silent seeks.** A seek no message has answered yet is a [`Probe`]; one silent for
//!   [`PROBE_AFTER`] is sought further back ([`Aggregator::probe_silent`]).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;

use super::context::Ctx;
use super::run::Aggregator;

/// How long a partition may stay silent after a seek before it is sought further back.
const PROBE_AFTER: Duration = Duration::from_secs(1);

/// Shortest time between two seeks back over one gap.
const GAP_SEEK_EVERY: Duration = Duration::from_millis(500);

/// How long the broker is given to report a partition's watermarks.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a seek may take.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

/// What this consumer knows of one partition it owns: its place in the assignment, the
/// offsets read and held, and the recovery of gaps and silent seeks in progress.
#[derive(Debug)]
pub(super) struct PartitionState {
    /// The assignment this state belongs to; messages read under another are dropped.
    pub(super) epoch: u64,
    /// The stored offset this consumer holds (`None`: no row yet): the fence's expectation.
    pub(super) expected: Option<i64>,
    /// The next offset to read, once known.
    pub(super) next: Option<i64>,
    /// The gap being sought back over: (first missing offset, last seek, seeks so far).
    gap_sought: Option<(i64, Instant, u32)>,
    /// A seek not yet answered by any message of the partition (see [`Probe`]).
    probe: Option<Probe>,
    /// The partition's low watermark (when the broker reports it) and its end (the last
    /// stable offset, which is the high watermark unless transactions are open), as
    /// librdkafka last reported them in its statistics: what the lag is measured against.
    pub(super) watermarks: Option<(Option<i64>, i64)>,
}

/// A seek to `wanted` that no message of the partition has answered yet. Some brokers
/// (tansu 0.6) answer a fetch from inside a record batch with the batch after it, and
/// with nothing when it is the last one: a consumer that sought into the last batch of a
/// partition would wait forever. A probe silent for [`PROBE_AFTER`] (times the tries so
/// far, plus one) while nothing is queued seeks further back (16, 64, 256, … up to 16,384
/// offsets, never below the log start); what precedes `wanted` is dropped when it arrives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    wanted: i64,
    since: Instant,
    tries: u32,
}

impl Probe {
    fn new(wanted: i64) -> Self {
        Probe {
            wanted,
            since: Instant::now(),
            tries: 0,
        }
    }

    /// Where the next seek goes: further back with each try, never below the log start.
    fn target(&self, low: i64) -> i64 {
        let back = 16i64.saturating_mul(4i64.saturating_pow(self.tries.min(5)));
        (self.wanted - back).max(low)
    }
}

/// What to do with a message read from a partition.
#[derive(Debug)]
pub(super) enum Admit {
    /// Take it, under this assignment epoch.
    Take(u64),
    /// Drop it: read before, or ahead of an offset sought.
    Drop,
    /// Drop it: it lies past a gap (see [`Gap`]).
    Gap(Gap),
}

/// Offsets missing before a message read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gap {
    /// The first missing offset (the next one to read).
    from: i64,
    /// Seeks back over this gap so far.
    tries: u32,
    /// Whether a seek back is due now (the last one was long enough ago).
    seek_due: bool,
}

impl PartitionState {
    /// A partition (re)started at its stored offset `at` (`None`: the beginning) under
    /// assignment `epoch`: a seek there is awaited as a probe.
    pub(super) fn new(epoch: u64, at: Option<i64>) -> Self {
        PartitionState {
            epoch,
            expected: at,
            next: at,
            gap_sought: None,
            probe: at.map(Probe::new),
            watermarks: None,
        }
    }

    /// Starts again at the stored offset `at` under a new `epoch` (after a fence); the
    /// watermarks are kept.
    pub(super) fn restart(&mut self, epoch: u64, at: Option<i64>) {
        *self = PartitionState {
            watermarks: self.watermarks,
            ..PartitionState::new(epoch, at)
        };
    }

    /// Whether the message at `offset` is the next one; moves past it if so.
    pub(super) fn admit(&mut self, offset: i64) -> Admit {
        if self.probe.is_some_and(|p| offset <= p.wanted) {
            // The broker answers from at or before the offset sought: reading goes on
            // from batch boundaries now.
            self.probe = None;
        }
        match self.next {
            Some(next) if offset < next => Admit::Drop,
            Some(next) if offset > next => {
                let tries = match self.gap_sought {
                    Some((at, _, n)) if at == next => n,
                    _ => 0,
                };
                let seek_due = self
                    .gap_sought
                    .is_none_or(|(at, t, _)| at != next || t.elapsed() > GAP_SEEK_EVERY);
                if seek_due {
                    self.gap_sought = Some((next, Instant::now(), tries + 1));
                }
                Admit::Gap(Gap {
                    from: next,
                    tries,
                    seek_due,
                })
            }
            _ => {
                self.next = Some(offset + 1);
                Admit::Take(self.epoch)
            }
        }
    }

    /// The broker said the offsets of `gap` expired: reads on from `offset`, unless the
    /// partition moved meanwhile.
    fn skip_expired(&mut self, gap: Gap, offset: i64) -> Option<u64> {
        if self.next != Some(gap.from) {
            return None;
        }
        self.next = Some(offset + 1);
        Some(self.epoch)
    }

    /// A seek back over `gap` went out: await it as a probe (unless the partition moved).
    fn sought_back(&mut self, gap: Gap) {
        if self.next == Some(gap.from) {
            self.probe = Some(Probe {
                tries: gap.tries + 1,
                ..Probe::new(gap.from)
            });
        }
    }

    /// A seek to `offset` went out (after resuming): await it as a probe.
    pub(super) fn sought(&mut self, offset: i64) {
        self.probe = Some(Probe::new(offset));
    }

    /// The probe silent long enough to be sought further back, if any. Each try waits
    /// longer: a broker slow to answer is not sought away from forever.
    pub(super) fn probe_due(&self) -> Option<Probe> {
        let probe = self.probe?;
        let wait = PROBE_AFTER.saturating_mul(probe.tries.saturating_add(1));
        (probe.since.elapsed() >= wait).then_some(probe)
    }

    /// The log start could not be read for `probe`: try again later, no further back.
    fn probe_later(&mut self) {
        if let Some(q) = self.probe.as_mut() {
            q.since = Instant::now();
        }
    }

    /// Whether `probe` (still the current one) is sought further back, the log starting
    /// at `low`; a probe at the log start is over (the partition is at its end).
    fn probe_again(&mut self, probe: Probe, low: i64) -> bool {
        if self.probe.is_none_or(|q| q.wanted != probe.wanted) {
            return false;
        }
        if probe.wanted <= low {
            // Nothing precedes the offset sought: the partition is at its end.
            self.probe = None;
            return false;
        }
        self.probe = Some(Probe {
            tries: probe.tries + 1,
            ..Probe::new(probe.wanted)
        });
        true
    }
}

/// Admits the message at `offset` of an owned partition: its assignment epoch when it is
/// the next one to read; `None` (dropped) when it is not owned, read before, or past a
/// gap (then sought back over, unless the gap expired: then read on).
pub(super) fn admit(
    consumer: &BaseConsumer<Ctx>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Option<u64> {
    let verdict = {
        let mut owned = consumer.context().owned();
        let Some(s) = owned.get_mut(topic, partition) else {
            tracing::debug!(
                topic,
                partition,
                offset,
                "Message of a partition not owned; dropped."
            );
            return None;
        };
        s.admit(offset)
    };
    match verdict {
        Admit::Take(epoch) => Some(epoch),
        Admit::Drop => None,
        Admit::Gap(gap) => over_gap(consumer, topic, partition, offset, gap),
    }
}

/// A message at `offset` past `gap`: seeks back over the gap (when due) and drops the
/// message, unless the broker says the missing offsets expired (below the log start).
fn over_gap(
    consumer: &BaseConsumer<Ctx>,
    topic: &str,
    partition: i32,
    offset: i64,
    gap: Gap,
) -> Option<u64> {
    let expired = matches!(
        consumer.fetch_watermarks(topic, partition, WATERMARKS_TIMEOUT),
        Ok((low, _)) if low > gap.from
    );
    if !expired {
        if gap.seek_due {
            seek_back(consumer, topic, partition, offset, gap);
        }
        return None;
    }
    tracing::warn!(
        topic,
        partition,
        expected = gap.from,
        got = offset,
        "Offsets expired by retention before they were read; reading on."
    );
    consumer
        .context()
        .owned()
        .get_mut(topic, partition)?
        .skip_expired(gap, offset)
}

/// Seeks back over `gap`. Some brokers (tansu 0.6) answer a fetch from the middle of a
/// record batch with the next batch: each try seeks further back (16, 64, 256, …
/// offsets) so the batch holding the gap's first offset comes whole; what precedes it is
/// dropped when it arrives.
fn seek_back(consumer: &BaseConsumer<Ctx>, topic: &str, partition: i32, offset: i64, gap: Gap) {
    tracing::warn!(
        topic,
        partition,
        expected = gap.from,
        got = offset,
        "Gap in the offsets read; seeking back."
    );
    let back = 16i64.saturating_mul(4i64.saturating_pow(gap.tries.min(8)));
    let low = consumer
        .fetch_watermarks(topic, partition, WATERMARKS_TIMEOUT)
        .map_or(0, |(low, _)| low);
    let target = if gap.tries == 0 {
        gap.from
    } else {
        (gap.from - back).max(low)
    };
    if let Err(e) = consumer.seek(topic, partition, Offset::Offset(target), SEEK_TIMEOUT) {
        tracing::warn!(error = %e, "Cannot seek back over the gap; retrying.");
    }
    if let Some(s) = consumer.context().owned().get_mut(topic, partition) {
        s.sought_back(gap);
    }
}

impl Aggregator {
    /// Seeks further back on each partition that has not answered a seek for
    /// [`PROBE_AFTER`] (see [`Probe`]); not while paused.
    pub(super) fn probe_silent(&mut self) {
        if self.paused_epoch.is_some()
            || self
                .last_probe
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_probe = Some(Instant::now());
        let due = self.ctx().owned().select(PartitionState::probe_due);
        for (t, p, probe) in due {
            let low = match self.consumer.fetch_watermarks(&t, p, WATERMARKS_TIMEOUT) {
                Ok((low, _)) => low,
                Err(e) => {
                    // The broker does not answer: try again later, no further back.
                    tracing::debug!(topic = %t, partition = p, error = %e, "Cannot read the log start to probe; trying later.");
                    if let Some(s) = self.ctx().owned().get_mut(&t, p) {
                        s.probe_later();
                    }
                    continue;
                }
            };
            let target = probe.target(low);
            let again = self
                .ctx()
                .owned()
                .get_mut(&t, p)
                .is_some_and(|s| s.probe_again(probe, low));
            if !again {
                continue;
            }
            tracing::debug!(topic = %t, partition = p, wanted = probe.wanted, from = target, "No message since seeking; seeking further back.");
            if let Err(e) = self
                .consumer
                .seek(&t, p, Offset::Offset(target), SEEK_TIMEOUT)
            {
                tracing::debug!(topic = %t, partition = p, error = %e, "Cannot seek back; trying again.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(admit: Admit) -> Gap {
        match admit {
            Admit::Gap(g) => g,
            other => panic!("expected a gap, got {other:?}"),
        }
    }

    #[test]
    fn a_partition_with_no_stored_offset_takes_whatever_comes_first_then_reads_in_order() {
        let mut s = PartitionState::new(3, None);
        assert!(matches!(s.admit(41), Admit::Take(3)));
        assert!(matches!(s.admit(41), Admit::Drop));
        assert!(matches!(s.admit(42), Admit::Take(3)));
        assert_eq!(s.next, Some(43));
    }

    #[test]
    fn a_message_past_the_next_offset_is_a_gap_sought_back_over_at_most_every_500_ms() {
        let mut s = PartitionState::new(1, Some(10));
        let first = gap(s.admit(12));
        assert_eq!((first.from, first.tries, first.seek_due), (10, 0, true));
        // Another message past the gap right after: no second seek yet.
        let again = gap(s.admit(13));
        assert_eq!((again.tries, again.seek_due), (1, false));
        assert_eq!(s.next, Some(10), "nothing past a gap is read");
        // Once the missing offset arrives, reading goes on.
        assert!(matches!(s.admit(10), Admit::Take(1)));
        assert_eq!(s.next, Some(11));
    }

    #[test]
    fn an_expired_gap_reads_on_only_if_the_partition_still_waits_on_it() {
        let mut s = PartitionState::new(2, Some(5));
        let g = gap(s.admit(9));
        assert_eq!(s.skip_expired(g, 9), Some(2));
        assert_eq!(s.next, Some(10));
        // The partition moved on meanwhile: the stale gap changes nothing.
        assert_eq!(s.skip_expired(g, 20), None);
        assert_eq!(s.next, Some(10));
    }

    #[test]
    fn a_seek_is_answered_by_a_message_at_or_before_the_offset_sought() {
        let mut s = PartitionState::new(1, Some(100));
        assert!(s.probe.is_some(), "a start at a stored offset is awaited");
        // A message after the offset sought does not answer it (a broker that skipped
        // ahead), so the probe stays.
        let _ = s.admit(140);
        assert!(s.probe.is_some());
        let _ = s.admit(100);
        assert!(s.probe.is_none());
    }

    #[test]
    fn a_silent_probe_is_sought_further_back_each_try_and_ends_at_the_log_start() {
        let mut s = PartitionState::new(1, Some(1000));
        assert!(s.probe_due().is_none(), "a fresh probe is not due");
        let probe = Probe {
            since: Instant::now() - PROBE_AFTER,
            ..Probe::new(1000)
        };
        s.probe = Some(probe);
        let due = s
            .probe_due()
            .unwrap_or_else(|| panic!("a probe silent for a second is due"));
        assert_eq!(due.target(0), 1000 - 16);
        assert!(s.probe_again(due, 0));
        let next = s.probe.unwrap_or_else(|| panic!("the probe goes on"));
        assert_eq!((next.tries, next.target(0)), (1, 1000 - 64));
        assert_eq!(next.target(990), 990, "never below the log start");
        // A probe replaced meanwhile by a seek elsewhere is not sought again.
        let mut moved = PartitionState::new(1, Some(500));
        assert!(!moved.probe_again(due, 0));
        assert_eq!(moved.probe.map(|p| p.wanted), Some(500));
        // Nothing precedes an offset at the log start: the partition is at its end.
        assert!(!s.probe_again(next, 1000));
        assert!(s.probe.is_none());
    }

    #[test]
    fn a_restart_after_a_fence_keeps_the_watermarks_and_forgets_the_rest() {
        let mut s = PartitionState::new(1, Some(10));
        s.watermarks = Some((Some(0), 50));
        let _ = s.admit(12);
        s.restart(7, Some(30));
        assert_eq!((s.epoch, s.expected, s.next), (7, Some(30), Some(30)));
        assert!(s.gap_sought.is_none());
        assert_eq!(s.probe.map(|p| (p.wanted, p.tries)), Some((30, 0)));
        assert_eq!(s.watermarks, Some((Some(0), 50)));
    }
}
