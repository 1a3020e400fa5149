//! The consumer's context, which librdkafka calls back from inside `poll`: rebalances
//! (partitions start at the offsets stored in PostgreSQL, read synchronously before they
//! are assigned), librdkafka's logs into `tracing`, and its statistics (each partition's
//! watermarks, for the lag). It owns the set of partitions this consumer holds.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;

use super::partition::PartitionState;
use crate::store::{PgError, PgStore};

/// The partitions this consumer owns, by topic and partition.
#[derive(Debug, Default)]
pub(super) struct Owned {
    pub(super) parts: HashMap<String, HashMap<i32, PartitionState>>,
    pub(super) epoch: u64,
}

impl Owned {
    pub(super) fn get(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.parts.get(topic)?.get(&partition)
    }

    pub(super) fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        self.parts.get_mut(topic)?.get_mut(&partition)
    }

    /// What `f` gives for each owned partition's state, where it gives something.
    pub(super) fn select<T>(
        &self,
        f: impl Fn(&PartitionState) -> Option<T>,
    ) -> Vec<(String, i32, T)> {
        let f = &f;
        self.parts
            .iter()
            .flat_map(|(t, ps)| {
                ps.iter()
                    .filter_map(move |(p, s)| f(s).map(|v| (t.clone(), *p, v)))
            })
            .collect()
    }

    /// How many partitions are owned.
    pub(super) fn count(&self) -> usize {
        self.parts.values().map(HashMap::len).sum()
    }
}

/// The consumer's context: rebalance callbacks, librdkafka's logs into `tracing`, and its
/// statistics (each partition's watermarks, for the lag).
pub(super) struct Ctx {
    pub(super) store: Arc<PgStore>,
    pub(super) handle: Handle,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) owned: Mutex<Owned>,
    pub(super) max_backoff: Duration,
}

impl Ctx {
    pub(super) fn owned(&self) -> MutexGuard<'_, Owned> {
        self.owned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, waking early when asked to stop.
    pub(super) fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// The stored offsets of `parts` (absent: no row), retried with backoff until read;
    /// `None` only when asked to stop first.
    pub(super) fn stored_positions(
        &self,
        parts: &[(String, i32)],
    ) -> Option<HashMap<(String, i32), i64>> {
        let topics: BTreeSet<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
        let mut delay = Duration::from_millis(100);
        loop {
            if self.stopping() {
                return None;
            }
            let read = self.handle.block_on(async {
                let mut map = HashMap::new();
                for t in &topics {
                    for (p, next) in self.store.positions(t).await? {
                        map.insert(((*t).to_owned(), p), next);
                    }
                }
                Ok::<_, PgError>(map)
            });
            match read {
                Ok(map) => return Some(map),
                Err(e) => {
                    tracing::warn!(error = %e, ?delay, "Cannot read the stored offsets; retrying.");
                    self.sleep(delay);
                    delay = (delay * 2).min(self.max_backoff);
                }
            }
        }
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac}: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{fac}: {log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }

    /// Keeps each owned partition's watermarks (every [`LAG_INTERVAL`](super::LAG_INTERVAL), served by `poll`
    /// on the consumer thread): the lag is then measured without asking the broker.
    fn stats(&self, statistics: Statistics) {
        let mut owned = self.owned();
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // The end as `fetch_watermarks` gave it under librdkafka's default
                // `read_committed`; offsets below 0 are librdkafka's "unknown".
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if let (Some(s), true) = (owned.get_mut(topic, partition), end >= 0) {
                    s.watermarks = Some(((p.lo_offset >= 0).then_some(p.lo_offset), end));
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, tpl, &parts, cooperative);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl, &parts, cooperative);
            }
            other => {
                tracing::warn!(error = ?other, "Rebalance error; dropping every partition.");
                {
                    let mut owned = self.owned();
                    owned.parts.clear();
                    owned.epoch += 1;
                }
                let _ = consumer.unassign();
            }
        }
    }
}

impl Ctx {
    /// Takes assigned partitions, each starting where PostgreSQL says, not where the
    /// broker's advisory commit says.
    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        parts: &[(String, i32)],
        cooperative: bool,
    ) {
        match self.stored_positions(parts) {
            Some(stored) => self.start_at(tpl, parts, &stored),
            None => tracing::info!(
                ?parts,
                "Partitions assigned while stopping; not consuming them."
            ),
        }
        let r = if cooperative {
            consumer.incremental_assign(tpl)
        } else {
            consumer.assign(tpl)
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "Cannot take the assigned partitions.");
            let mut owned = self.owned();
            for (t, p) in parts {
                if let Some(ps) = owned.parts.get_mut(t) {
                    ps.remove(p);
                }
            }
        }
    }

    /// Sets each assigned partition's start offset to its `stored` one (the beginning
    /// when there is none) and owns it under a new epoch.
    fn start_at(
        &self,
        tpl: &mut TopicPartitionList,
        parts: &[(String, i32)],
        stored: &HashMap<(String, i32), i64>,
    ) {
        let mut owned = self.owned();
        for (t, p) in parts {
            let at = stored.get(&(t.clone(), *p)).copied();
            let offset = at.map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = tpl.set_partition_offset(t, *p, offset) {
                tracing::warn!(topic = %t, partition = p, error = %e, "Cannot set a start offset.");
            }
            owned.epoch += 1;
            let epoch = owned.epoch;
            owned
                .parts
                .entry(t.clone())
                .or_default()
                .insert(*p, PartitionState::new(epoch, at));
        }
        tracing::info!(
            partitions = ?parts.iter().map(|(t, p)| format!("{t}/{p}@{}", stored.get(&(t.clone(), *p)).map_or("beginning".to_owned(), i64::to_string))).collect::<Vec<_>>(),
            "Partitions assigned; starting at the offsets stored in PostgreSQL."
        );
    }

    /// Releases revoked partitions; their messages in flight are dropped before the next
    /// commit (their epoch is gone).
    fn revoke(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
        parts: &[(String, i32)],
        cooperative: bool,
    ) {
        {
            let mut owned = self.owned();
            for (t, p) in parts {
                if let Some(ps) = owned.parts.get_mut(t) {
                    ps.remove(p);
                }
            }
            owned.epoch += 1;
        }
        tracing::info!(
            ?parts,
            "Partitions revoked; their uncommitted messages are dropped."
        );
        let r = if cooperative {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "Cannot release the revoked partitions.");
        }
    }
}
