//! The Kafka consumer of the `aggregate` role: reads the source topics in a consumer
//! group, decodes and validates each message, and commits each batch's aggregates
//! together with the batch's source positions in one PostgreSQL transaction.
//!
//! Guarantees, and what each rests on:
//! - **Effectively once.** The offsets that count are the ones in PostgreSQL
//!   (`source_positions`), written in the transaction that folds the batch
//!   ([`PgStore::submit_with_positions`]). On assignment the consumer starts each
//!   partition at its stored offset (the beginning when there is none), never at the
//!   broker's committed offset, which it writes only as advice for tools. A crash before
//!   the commit re-reads the batch; a crash after it starts past it. Duplicate deliveries
//!   of one event are caught by the store's event log (`source`, `event_id`).
//! - **A revoked consumer cannot double-count.** Each commit moves a partition's stored
//!   offset from the value this consumer holds (read at assignment, then advanced by its
//!   own commits) with a conditional update; if another owner moved it meanwhile the whole
//!   batch rolls back ([`PgError::Fenced`]), the batch is dropped and the consumer seeks to
//!   the stored offsets again. On revocation, in-flight messages of the revoked
//!   partitions are dropped before the next commit (each message carries the epoch of
//!   the assignment it was read under).
//! - **Nothing is lost.** A message's offset is stored only with its effect; when
//!   PostgreSQL is down or contended the consumer retries the same batch with
//!   exponential backoff until it commits, still polling (so the group sees it alive),
//!   reading ahead up to a few batches and then pausing its partitions; on recovery it
//!   resumes and seeks to the next offset it has not read. It never reads past a gap in
//!   the offsets: it seeks back until the missing offsets arrive, unless the broker says
//!   they expired (below the log start). After every seek it watches that a partition
//!   answers: one silent for a second is sought further back (a broker may answer a
//!   fetch from inside its last record batch with nothing), so it cannot stall at the
//!   tail of a partition.
//! - **A poison message never blocks a partition.** An event that fails validation, or
//!   that its topic may not carry ([`TopicAllow`]: `not_allowed`), is produced to the
//!   dead-letter topic (in the format every role shares:
//!   [`mieruka_ingest::kafka::dead_letter`]) and awaited *before* the batch commits, and
//!   it is kept in the `rejected` table by the same commit; the partition moves past it.
//!   Events the store refuses at commit time (`conflicting_duplicate`,
//!   `void_not_allowed`) are in the `rejected` table by that commit and are produced to
//!   the dead-letter topic after it (best effort).
//! - **One owner per key.** The store's lock-free reads of a key's log rows rely on every
//!   event of a key (and its voids) arriving on one partition: the ingest role keys
//!   messages by `source/event_id` (a void by its target).
//! - **Graceful shutdown.** When asked to stop, the batch in flight is committed (unless
//!   the database is down: then it is left for the next owner) and the group is left
//!   cleanly.
//!
//! - **Throughput.** A batch's transaction runs in the background while the next batches
//!   are read and decoded; up to `parallel_commits` run at once, never two of one
//!   partition: a batch takes only partitions with no commit in flight (and its share of
//!   them), and the messages of the others wait, in order, for a later batch. A failed
//!   background commit is retried in the foreground as above, with what was read
//!   meanwhile kept, in order, for after it.
//!
//! The loop runs on a thread of its own with a `BaseConsumer`, so that the rebalance
//! callback (which runs inside `poll`) can read the stored offsets synchronously before
//! it assigns the partitions with those offsets.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mieruka_ingest::{Item, Position, Rejection, Schema, Status};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;

use crate::store_pg::{PgError, PgStore, SourcePosition};
use crate::topic_allow::TopicAllow;

/// The source label of events whose `source` could not be read.
const UNKNOWN_SOURCE: &str = "unknown";

/// Batches' worth of messages a batch being collected may hold back (of partitions with a
/// commit in flight) before it stops and waits for that commit.
const HOLD_BATCHES: usize = 4;

/// Batches read ahead while commits fail before the partitions are paused.
const PAUSE_AFTER_BATCHES: usize = 4;

/// How often consumer lag is measured.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Why the consumer stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The Kafka client could not be created or configured.
    #[error("Kafka client error: {0}")]
    Kafka(#[from] KafkaError),
    /// The store failed in a way retrying cannot fix.
    #[error("store error: {0}")]
    Store(#[from] PgError),
    /// Anything else that ends the consumer (a restart re-reads the stored offsets).
    #[error("{0}")]
    Fatal(String),
}

/// Settings of the consumer.
#[derive(Clone, Debug)]
pub struct AggregatorOptions {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// The consumer group every aggregator replica joins.
    pub group_id: String,
    /// The source topics.
    pub topics: Vec<String>,
    /// What each source topic may carry, for the topics that say (each one of `topics`);
    /// a topic without one carries every source and type.
    pub allow: Vec<TopicAllow>,
    /// Where rejected events go (none: only the `rejected` table).
    pub dead_letter_topic: Option<String>,
    /// Most messages per batch (one transaction).
    pub max_batch: usize,
    /// Longest a batch waits for more messages after its first one.
    pub max_wait: Duration,
    /// Longest pause between retries while PostgreSQL is unavailable.
    pub max_backoff: Duration,
    /// Batches committed at once, in transactions of their own, on disjoint partitions
    /// (they write the event log side by side and meet only on the shared aggregate
    /// rows, briefly, at the end).
    pub parallel_commits: usize,
    /// Further librdkafka settings for the consumer and the dead-letter producer (they
    /// override the defaults).
    pub client_config: Vec<(String, String)>,
}

impl AggregatorOptions {
    /// Options with the defaults: batches of up to 20,000 messages or 100 ms, up to 2
    /// committing at once; backoff up to 5 s. A batch has a fixed cost (its transaction,
    /// the aggregate rows it locks, which parallel commits share, and its commit), so
    /// large batches carry a full stream: on the 2-core bench 20,000 gave 160k events/s
    /// where 5,000 gave 118k (and 10,000 gave 140k, 40,000 no more than 20,000); at lower
    /// rates `max_wait` ends batches early anyway.
    pub fn new(brokers: &str, group_id: &str, topics: Vec<String>) -> Self {
        Self {
            brokers: brokers.to_owned(),
            group_id: group_id.to_owned(),
            topics,
            allow: Vec::new(),
            dead_letter_topic: None,
            max_batch: 20_000,
            max_wait: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            parallel_commits: 2,
            client_config: Vec::new(),
        }
    }
}

/// What the consumer reports as it goes (the binary counts it into its health metrics).
pub trait Observer: Send + Sync {
    /// A batch committed: each item's source label and fate, and how long the commit took.
    fn committed(&self, labels: &[&str], statuses: &[Status], elapsed: Duration) {
        let _ = (labels, statuses, elapsed);
    }
    /// A partition's lag: messages in the partition past the consumer's position.
    fn lag(&self, topic: &str, partition: i32, lag: i64) {
        let _ = (topic, partition, lag);
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// What this consumer knows of one partition it owns.
#[derive(Debug)]
struct PartState {
    /// The assignment this state belongs to; messages read under another are dropped.
    epoch: u64,
    /// The stored offset this consumer holds (`None`: no row yet): the fence's expectation.
    expected: Option<i64>,
    /// The next offset to read, once known.
    next: Option<i64>,
    /// The gap being sought back over: (first missing offset, last seek, seeks so far).
    gap_sought: Option<(i64, Instant, u32)>,
    /// A seek not yet answered by any message of the partition (see [`Probe`]).
    probe: Option<Probe>,
    /// The partition's low watermark (when the broker reports it) and its end (the last
    /// stable offset, which is the high watermark unless transactions are open), as
    /// librdkafka last reported them in its statistics: what the lag is measured against.
    watermarks: Option<(Option<i64>, i64)>,
}

/// A seek to `wanted` that no message of the partition has answered yet. Some brokers
/// (tansu 0.6) answer a fetch from inside a record batch with the batch after it, and
/// with nothing when it is the last one: a consumer that sought into the last batch of a
/// partition would wait forever. A probe silent for [`PROBE_AFTER`] (times the tries so
/// far, plus one) while nothing is queued seeks further back (16, 64, 256, … up to 16,384
/// offsets, never below the log start); what precedes `wanted` is dropped when it arrives.
#[derive(Debug, Clone, Copy)]
struct Probe {
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
}

/// How long a partition may stay silent after a seek before it is sought further back.
const PROBE_AFTER: Duration = Duration::from_secs(1);

/// The partitions this consumer owns, by topic and partition.
#[derive(Debug, Default)]
struct Owned {
    parts: HashMap<String, HashMap<i32, PartState>>,
    epoch: u64,
}

impl Owned {
    fn get(&self, topic: &str, partition: i32) -> Option<&PartState> {
        self.parts.get(topic)?.get(&partition)
    }

    fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartState> {
        self.parts.get_mut(topic)?.get_mut(&partition)
    }

    /// What `f` gives for each owned partition's state, where it gives something.
    fn select<T>(&self, f: impl Fn(&PartState) -> Option<T>) -> Vec<(String, i32, T)> {
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
    fn count(&self) -> usize {
        self.parts.values().map(HashMap::len).sum()
    }
}

/// The consumer's context: rebalance callbacks, librdkafka's logs into `tracing`, and its
/// statistics (each partition's watermarks, for the lag).
struct Ctx {
    store: Arc<PgStore>,
    handle: Handle,
    stop: Arc<AtomicBool>,
    owned: Mutex<Owned>,
    max_backoff: Duration,
}

impl Ctx {
    fn owned(&self) -> MutexGuard<'_, Owned> {
        self.owned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, waking early when asked to stop.
    fn sleep(&self, d: Duration) {
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
    fn stored_positions(&self, parts: &[(String, i32)]) -> Option<HashMap<(String, i32), i64>> {
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

    /// Keeps each owned partition's watermarks (every [`LAG_INTERVAL`], served by `poll`
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
                // Start where PostgreSQL says, not where the broker's advisory commit says.
                let stored = self.stored_positions(&parts);
                if let Some(stored) = &stored {
                    let mut owned = self.owned();
                    for (t, p) in &parts {
                        let at = stored.get(&(t.clone(), *p)).copied();
                        let offset = at.map_or(Offset::Beginning, Offset::Offset);
                        if let Err(e) = tpl.set_partition_offset(t, *p, offset) {
                            tracing::warn!(topic = %t, partition = p, error = %e, "Cannot set a start offset.");
                        }
                        owned.epoch += 1;
                        let epoch = owned.epoch;
                        owned.parts.entry(t.clone()).or_default().insert(
                            *p,
                            PartState {
                                epoch,
                                expected: at,
                                next: at,
                                gap_sought: None,
                                probe: at.map(Probe::new),
                                watermarks: None,
                            },
                        );
                    }
                    tracing::info!(
                        partitions = ?parts.iter().map(|(t, p)| format!("{t}/{p}@{}", stored.get(&(t.clone(), *p)).map_or("beginning".to_owned(), i64::to_string))).collect::<Vec<_>>(),
                        "Partitions assigned; starting at the offsets stored in PostgreSQL."
                    );
                } else {
                    tracing::info!(
                        ?parts,
                        "Partitions assigned while stopping; not consuming them."
                    );
                }
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "Cannot take the assigned partitions.");
                    let mut owned = self.owned();
                    for (t, p) in &parts {
                        if let Some(ps) = owned.parts.get_mut(t) {
                            ps.remove(p);
                        }
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                {
                    let mut owned = self.owned();
                    for (t, p) in &parts {
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

/// One message read and decoded, waiting for its batch to commit.
struct Pending {
    /// Shared with every message of the topic (see [`Aggregator::topics`]): telling two
    /// messages' partitions apart is then a pointer comparison, not a string comparison.
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    epoch: u64,
    key: Option<Vec<u8>>,
    /// Shared with the transaction that commits it (no copy of the event per attempt).
    item: Arc<Item>,
    /// The message's bytes as read, for the dead-letter topic if the event is refused
    /// (the store may refuse a valid one at commit).
    raw: Vec<u8>,
    dead_lettered: bool,
}

impl Pending {
    /// Whether the message is of `topic`/`partition`.
    fn is_of(&self, topic: &Arc<str>, partition: i32) -> bool {
        self.partition == partition && (Arc::ptr_eq(&self.topic, topic) || self.topic == *topic)
    }
}

/// One partition of a batch: the last offset read and the assignment it was read under.
#[derive(Debug, Clone)]
struct Part {
    topic: Arc<str>,
    partition: i32,
    last: i64,
    epoch: u64,
}

/// The partitions of a batch, in order of first appearance (a batch holds a few: a linear
/// scan beats hashing each message's topic).
fn parts_of(batch: &[Pending]) -> Vec<Part> {
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
type CommitTask = tokio::task::JoinHandle<(Result<Vec<Status>, PgError>, Duration)>;

/// A batch whose transaction runs in the background.
struct InFlight {
    batch: Vec<Pending>,
    parts: Vec<Part>,
    positions: Vec<SourcePosition>,
    task: CommitTask,
}

impl InFlight {
    /// Whether it commits a partition of `other`.
    fn overlaps(&self, other: &[Pending]) -> bool {
        other
            .iter()
            .any(|m| self.parts.iter().any(|p| m.is_of(&p.topic, p.partition)))
    }
}

/// How one commit attempt ended without committing.
#[derive(Debug)]
enum AttemptError {
    /// Another consumer moved a stored offset: drop the batch, seek anew.
    Fenced(String, i32),
    /// PostgreSQL or the broker is unavailable: retry the same batch later.
    Transient(String),
    /// Give up.
    Fatal(ConsumerError),
}

/// The `aggregate` role's consumer, built and subscribed, ready to [`Aggregator::run`].
pub struct Aggregator {
    consumer: BaseConsumer<Ctx>,
    dead_letter: Option<(FutureProducer, String)>,
    store: Arc<PgStore>,
    schema: Arc<Schema>,
    handle: Handle,
    stop: Arc<AtomicBool>,
    opts: AggregatorOptions,
    observer: Arc<dyn Observer>,
    /// The source topics, and what each may carry.
    topics: Vec<SourceTopic>,
    carry: Vec<Pending>,
    paused_epoch: Option<u64>,
    last_lag: Option<Instant>,
    last_poll_warning: Option<Instant>,
    last_probe: Option<Instant>,
}

impl Aggregator {
    /// Creates the consumer (and the dead-letter producer) and subscribes to the topics.
    /// Must be called inside a Tokio runtime; connecting to the broker is lazy.
    pub async fn build(
        store: PgStore,
        opts: AggregatorOptions,
        observer: Arc<dyn Observer>,
    ) -> Result<Self, ConsumerError> {
        if opts.topics.is_empty() {
            return Err(ConsumerError::Fatal(
                "no source topics: set [kafka] topic (or topics) in the config".to_owned(),
            ));
        }
        let sources = source_topics(&opts.topics, &opts.allow)?;
        let store = Arc::new(store);
        let schema = Arc::new(store.plan().schema.clone());
        let handle = Handle::current();
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Ctx {
            store: store.clone(),
            handle: handle.clone(),
            stop: stop.clone(),
            owned: Mutex::new(Owned::default()),
            max_backoff: opts.max_backoff,
        };
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &opts.brokers)
            .set("group.id", &opts.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "100")
            // Statistics carry the partitions' watermarks, for the lag (see `Ctx::stats`).
            .set(
                "statistics.interval.ms",
                LAG_INTERVAL.as_millis().to_string(),
            )
            // Connections that do not come up, or stop answering, within 10 s are dropped
            // and made again (librdkafka's defaults are 30 and 60 s).
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("socket.timeout.ms", "10000")
            .set("broker.address.family", "v4");
        for (k, v) in &opts.client_config {
            cfg.set(k, v);
        }
        let consumer: BaseConsumer<Ctx> = cfg.create_with_context(ctx)?;
        let topics: Vec<&str> = opts.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let dead_letter = match &opts.dead_letter_topic {
            Some(t) => {
                let mut cfg = mieruka_ingest::kafka::producer_config(&opts.brokers);
                for (k, v) in &opts.client_config {
                    cfg.set(k, v);
                }
                Some((cfg.create()?, t.clone()))
            }
            None => None,
        };
        Ok(Self {
            consumer,
            dead_letter,
            store,
            schema,
            handle,
            stop,
            topics: sources,
            opts,
            observer,
            carry: Vec::new(),
            paused_epoch: None,
            last_lag: None,
            last_poll_warning: None,
            last_probe: None,
        })
    }

    /// Consumes until `shutdown` completes, then commits the batch in flight and leaves
    /// the group. Returns an error only for what a restart must fix.
    pub async fn run<F>(self, shutdown: F) -> Result<(), ConsumerError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        let watcher = tokio::spawn(async move {
            shutdown.await;
            stop.store(true, Ordering::SeqCst);
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("mieruka-consumer".to_owned())
            .spawn(move || {
                let r = self.run_blocking();
                let _ = tx.send(r);
            });
        let result = match spawned {
            Ok(_) => rx.await.unwrap_or_else(|_| {
                Err(ConsumerError::Fatal(
                    "the consumer thread ended without a result".to_owned(),
                ))
            }),
            Err(e) => Err(ConsumerError::Fatal(format!(
                "cannot start the consumer thread: {e}"
            ))),
        };
        watcher.abort();
        result
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn ctx(&self) -> &Ctx {
        self.consumer.context()
    }

    fn run_blocking(mut self) -> Result<(), ConsumerError> {
        tracing::info!(topics = ?self.opts.topics, group = %self.opts.group_id, "Consuming.");
        // Batches commit in the background while the next ones are read and decoded:
        // PostgreSQL and the consumer work side by side, and up to `parallel_commits`
        // transactions run at once. Each partition has at most one batch in flight, so
        // its positions move in order (a batch starts once its partitions' last commit
        // is through).
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let result = 'run: loop {
            // A new batch holds only partitions with no commit in flight, so that up to
            // `parallel_commits` transactions really run side by side.
            let busy: Vec<(Arc<str>, i32)> = in_flight
                .iter()
                .flat_map(|f| f.parts.iter().map(|p| (p.topic.clone(), p.partition)))
                .collect();
            let mut batch = self.collect(&busy, &in_flight);
            // See through the commits that are done first: they free their partitions and
            // room without a wait. Then those that hold a partition of the new batch, or
            // that make room (the oldest first); the oldest when everything read waits on
            // a commit in flight and none was done; all of them when idle (nothing read,
            // nothing held back, and no commit done: an empty batch after a commit was
            // done only means that the freed partitions can be read again).
            let limit = self.opts.parallel_commits.max(1);
            let idle = batch.is_empty()
                && self.carry.is_empty()
                && !in_flight.iter().any(|f| f.task.is_finished());
            let mut freed = false;
            for waiting in [false, true] {
                let mut i = 0;
                while i < in_flight.len() {
                    let f = &in_flight[i];
                    let must = f.task.is_finished()
                        || (waiting
                            && (idle
                                || (batch.is_empty() && !freed)
                                || in_flight.len() >= limit
                                || f.overlaps(&batch)));
                    if !must {
                        i += 1;
                        continue;
                    }
                    let Some(f) = in_flight.remove(i) else {
                        break;
                    };
                    freed = true;
                    if let Err(e) = self.finish(f, &mut batch) {
                        break 'run Err(e);
                    }
                }
            }
            if !batch.is_empty() {
                match self.start(batch) {
                    Ok(Some(f)) => in_flight.push_back(f),
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
            }
            if self.stopping() && self.carry.is_empty() {
                while let Some(f) = in_flight.pop_front() {
                    if let Err(e) = self.finish(f, &mut Vec::new()) {
                        break 'run Err(e);
                    }
                }
                if self.carry.is_empty() {
                    break Ok(());
                }
            }
        };
        tracing::info!("Leaving the consumer group.");
        self.consumer.unsubscribe();
        if let Some((producer, _)) = &self.dead_letter {
            use rdkafka::producer::Producer;
            let _ = producer.flush(Duration::from_secs(5));
        }
        drop(self.consumer);
        self.handle.block_on(self.store.close());
        result
    }

    /// Starts committing a batch in the background (after producing its invalid events
    /// to the dead-letter topic). When producing the dead letters fails, the batch is
    /// committed here instead, through the retrying path.
    fn start(&mut self, mut batch: Vec<Pending>) -> Result<Option<InFlight>, ConsumerError> {
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
    fn finish(&mut self, f: InFlight, next: &mut Vec<Pending>) -> Result<(), ConsumerError> {
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

    /// Reads one batch of the partitions not in `busy` (those of the commits in flight):
    /// up to `max_batch` messages, or what arrives within `max_wait` of the first one.
    /// Messages of busy partitions, and those that do not fit, stay in the carry, in
    /// order, for a later batch (so a partition's messages always commit in order).
    /// Returns early (possibly empty) when asked to stop or when [`HOLD_BATCHES`] batches'
    /// worth of messages are held back, empty when nothing arrived for 100 ms, and as soon
    /// as a commit of `in_flight` is through while the batch is empty or holds a quarter
    /// of `max_batch`: reading on (into the carry, or to fill the batch) would leave the
    /// room that commit freed idle.
    fn collect(
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
        let mut batch = Vec::new();
        for m in std::mem::take(&mut self.carry) {
            if batch.len() < self.opts.max_batch && pick.admit(&m) {
                batch.push(m);
            } else {
                pick.hold(&m);
                self.carry.push(m);
            }
        }
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

    /// Polls once; serves rebalances and returns a message of an owned partition.
    fn poll_one(&mut self, timeout: Duration) -> Option<Pending> {
        let polled = self.consumer.poll(timeout);
        match polled {
            None => {
                // Nothing queued: a partition still waiting on a seek has really been
                // silent (not merely queued behind others).
                self.probe_silent();
                None
            }
            Some(Ok(m)) => accept(&self.consumer, &self.schema, &self.topics, &m),
            Some(Err(KafkaError::PartitionEOF(_))) => None,
            Some(Err(e)) => {
                let quiet = self
                    .last_poll_warning
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(30));
                if !quiet {
                    tracing::warn!(error = %e, "Kafka consumer error; librdkafka reconnects by itself.");
                    self.last_poll_warning = Some(Instant::now());
                }
                None
            }
        }
    }

    /// Publishes the lag of each owned partition, every [`LAG_INTERVAL`].
    fn measure_lag(&mut self) {
        if self.last_lag.is_some_and(|t| t.elapsed() < LAG_INTERVAL) {
            return;
        }
        self.last_lag = Some(Instant::now());
        // From librdkafka's statistics, not a request to the broker: a round trip per
        // partition here would stall reading (hundreds of ms on a busy broker).
        let lags = self.ctx().owned().select(|s| {
            let (low, end) = s.watermarks?;
            Some((end - s.next.or(s.expected).or(low)?).max(0))
        });
        for (t, p, lag) in lags {
            self.observer.lag(&t, p, lag);
        }
    }

    /// Seeks further back on each partition that has not answered a seek for
    /// [`PROBE_AFTER`] (see [`Probe`]); not while paused.
    fn probe_silent(&mut self) {
        if self.paused_epoch.is_some()
            || self
                .last_probe
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_probe = Some(Instant::now());
        let due = self.ctx().owned().select(|s| {
            let probe = s.probe?;
            // Each try waits longer: a broker slow to answer is not sought away from
            // forever.
            let wait = PROBE_AFTER.saturating_mul(probe.tries.saturating_add(1));
            (probe.since.elapsed() >= wait).then_some(probe)
        });
        for (t, p, probe) in due {
            let low = match self
                .consumer
                .fetch_watermarks(&t, p, Duration::from_secs(2))
            {
                Ok((low, _)) => low,
                Err(e) => {
                    // The broker does not answer: try again later, no further back.
                    tracing::debug!(topic = %t, partition = p, error = %e, "Cannot read the log start to probe; trying later.");
                    if let Some(s) = self.ctx().owned().get_mut(&t, p) {
                        if let Some(q) = s.probe.as_mut() {
                            q.since = Instant::now();
                        }
                    }
                    continue;
                }
            };
            let back = 16i64.saturating_mul(4i64.saturating_pow(probe.tries.min(5)));
            let target = (probe.wanted - back).max(low);
            let mut owned = self.ctx().owned();
            let Some(s) = owned.get_mut(&t, p) else {
                continue;
            };
            if s.probe.is_none_or(|q| q.wanted != probe.wanted) {
                continue;
            }
            if probe.wanted <= low {
                // Nothing precedes the offset sought: the partition is at its end.
                s.probe = None;
                continue;
            }
            s.probe = Some(Probe {
                tries: probe.tries + 1,
                ..Probe::new(probe.wanted)
            });
            drop(owned);
            tracing::debug!(topic = %t, partition = p, wanted = probe.wanted, from = target, "No message since seeking; seeking further back.");
            if let Err(e) =
                self.consumer
                    .seek(&t, p, Offset::Offset(target), Duration::from_secs(5))
            {
                tracing::debug!(topic = %t, partition = p, error = %e, "Cannot seek back; trying again.");
            }
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

    /// Produces the batch's invalid events to the dead-letter topic (once each), and
    /// awaits the broker: they are acknowledged before the commit that moves the
    /// partition past them.
    fn dead_letter_invalid(&self, batch: &mut [Pending]) -> Result<(), AttemptError> {
        let todo: Vec<usize> = batch
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.dead_lettered && m.item.outcome.is_err())
            .map(|(i, _)| i)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        if self.dead_letter.is_some() {
            let entries: Vec<(&Pending, &Rejection)> = todo
                .iter()
                .filter_map(|&i| {
                    let m = &batch[i];
                    m.item.outcome.as_ref().err().map(|r| (m, r))
                })
                .collect();
            self.dead_letters(&entries)
                .map_err(|e| AttemptError::Transient(format!("dead-letter topic: {e}")))?;
        }
        for i in todo {
            batch[i].dead_lettered = true;
        }
        Ok(())
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
        // Refusals known only at commit time, to the dead-letter topic (best effort:
        // they are in the `rejected` table already).
        if self.dead_letter.is_some() {
            let late: Vec<(&Pending, &Rejection)> = batch
                .iter()
                .zip(statuses)
                .filter_map(|(m, s)| match (s, &m.item.outcome) {
                    (Status::Rejected(r), Ok(_)) => Some((m, r)),
                    _ => None,
                })
                .collect();
            if !late.is_empty() {
                if let Err(e) = self.dead_letters(&late) {
                    tracing::warn!(error = %e, count = late.len(), "Cannot produce refused events to the dead-letter topic; they are in the rejected table.");
                }
            }
        }
    }

    /// Produces rejected events to the dead-letter topic and awaits every acknowledgement.
    fn dead_letters(&self, entries: &[(&Pending, &Rejection)]) -> Result<(), String> {
        let Some((producer, topic)) = &self.dead_letter else {
            return Ok(());
        };
        self.handle.block_on(async {
            let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
            for (m, r) in entries {
                let letter = mieruka_ingest::kafka::dead_letter(
                    &m.item,
                    r,
                    m.key.as_deref(),
                    Some(m.raw.as_slice()),
                );
                let mut record = letter.record(topic);
                loop {
                    match producer.send_result(record) {
                        Ok(f) => {
                            pending.push_back(f);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            match pending.pop_front() {
                                Some(f) => settle(f).await?,
                                None => tokio::time::sleep(Duration::from_millis(10)).await,
                            }
                        }
                        Err((e, _)) => return Err(e.to_string()),
                    }
                }
            }
            for f in pending {
                settle(f).await?;
            }
            Ok(())
        })
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
                    Some(s) => {
                        s.epoch = epoch;
                        s.expected = at;
                        s.next = at;
                        s.gap_sought = None;
                        s.probe = at.map(Probe::new);
                    }
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
                s.probe = Some(Probe::new(next));
            }
        }
        tracing::info!("Committed again; partitions resumed.");
    }

    /// Waits `delay` while still polling (rebalances are served, the group sees us alive);
    /// what arrives meanwhile is kept for the next batch.
    fn backoff(&mut self, delay: Duration) {
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

/// Which partitions' messages a batch being collected takes: none of a commit in flight
/// (`busy`), at most `cap` partitions, and none of a partition that already has a message
/// held back (its messages commit in order).
struct Picker<'a> {
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

/// Sorts a commit's failure into what the consumer does next.
fn classify(result: Result<Vec<Status>, PgError>) -> Result<Vec<Status>, AttemptError> {
    match result {
        Ok(s) => Ok(s),
        Err(PgError::Fenced { topic, partition }) => Err(AttemptError::Fenced(topic, partition)),
        Err(e @ (PgError::Database(_) | PgError::Contention { .. })) => {
            Err(AttemptError::Transient(e.to_string()))
        }
        Err(e @ (PgError::Migrate(_) | PgError::Inconsistent(_) | PgError::Corrupt(_))) => {
            Err(AttemptError::Fatal(e.into()))
        }
    }
}

/// Waits for one dead-letter delivery report.
async fn settle(f: DeliveryFuture) -> Result<(), String> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("the producer shut down".to_owned()),
    }
}

/// Takes a message of an owned partition, in offset order, decoded into an [`Item`].
fn accept(
    consumer: &BaseConsumer<Ctx>,
    schema: &Schema,
    topics: &[SourceTopic],
    m: &BorrowedMessage<'_>,
) -> Option<Pending> {
    let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
    let epoch = {
        let mut owned = consumer.context().owned();
        let Some(mut s) = owned.get_mut(topic, partition) else {
            tracing::debug!(
                topic,
                partition,
                offset,
                "Message of a partition not owned; dropped."
            );
            return None;
        };
        if s.probe.is_some_and(|p| offset <= p.wanted) {
            // The broker answers from at or before the offset sought: reading goes on
            // from batch boundaries now.
            s.probe = None;
        }
        if let Some(next) = s.next {
            if offset < next {
                return None;
            }
            if offset > next {
                // Never read past a gap the broker can still fill: seek back (at most
                // every 500 ms) and drop what arrives until `next` does. Only offsets
                // below the log start (expired by retention) are skipped.
                let gap_from = next;
                let tries = match s.gap_sought {
                    Some((at, _, n)) if at == next => n,
                    _ => 0,
                };
                let seek_due = s.gap_sought.is_none_or(|(at, t, _)| {
                    at != next || t.elapsed() > Duration::from_millis(500)
                });
                if seek_due {
                    s.gap_sought = Some((next, Instant::now(), tries + 1));
                }
                drop(owned);
                let expired = matches!(
                    consumer.fetch_watermarks(topic, partition, Duration::from_secs(2)),
                    Ok((low, _)) if low > gap_from
                );
                if !expired {
                    if seek_due {
                        tracing::warn!(
                            topic,
                            partition,
                            expected = gap_from,
                            got = offset,
                            "Gap in the offsets read; seeking back."
                        );
                        // Some brokers (tansu 0.6) answer a fetch from the middle of a
                        // record batch with the next batch: seek further back each time
                        // (16, 64, 256, … offsets) so the batch holding `gap_from` comes
                        // whole; what precedes `gap_from` is dropped above.
                        let back = 16i64.saturating_mul(4i64.saturating_pow(tries.min(8)));
                        let low = consumer
                            .fetch_watermarks(topic, partition, Duration::from_secs(2))
                            .map_or(0, |(low, _)| low);
                        let target = if tries == 0 {
                            gap_from
                        } else {
                            (gap_from - back).max(low)
                        };
                        if let Err(e) = consumer.seek(
                            topic,
                            partition,
                            Offset::Offset(target),
                            Duration::from_secs(5),
                        ) {
                            tracing::warn!(error = %e, "Cannot seek back over the gap; retrying.");
                        }
                        if let Some(s) = consumer.context().owned().get_mut(topic, partition) {
                            if s.next == Some(gap_from) {
                                s.probe = Some(Probe {
                                    tries: tries + 1,
                                    ..Probe::new(gap_from)
                                });
                            }
                        }
                    }
                    return None;
                }
                tracing::warn!(
                    topic,
                    partition,
                    expected = gap_from,
                    got = offset,
                    "Offsets expired by retention before they were read; reading on."
                );
                owned = consumer.context().owned();
                let again = owned.get_mut(topic, partition)?;
                if again.next != Some(gap_from) {
                    return None;
                }
                s = again;
            }
        }
        s.next = Some(offset + 1);
        s.epoch
    };
    let raw = m.payload().unwrap_or(&[]);
    let source = topics.iter().find(|t| *t.name == *topic);
    let item = read_item(
        schema,
        source.and_then(|t| t.allow.as_ref()),
        raw,
        Position::Offset {
            topic: topic.to_owned(),
            partition,
            offset,
        },
    );
    Some(Pending {
        topic: source.map_or_else(|| Arc::from(topic), |t| t.name.clone()),
        partition,
        offset,
        epoch,
        key: m.key().map(<[u8]>::to_vec),
        item: Arc::new(item),
        raw: raw.to_vec(),
        dead_lettered: false,
    })
}

/// A source topic: its name, shared by every message read from it (telling two messages'
/// topics apart is then a pointer comparison), and what it may carry.
struct SourceTopic {
    name: Arc<str>,
    /// `None`: every source and type.
    allow: Option<TopicAllow>,
}

/// The source topics with their allow lists. An allow list of a topic not consumed is a
/// misconfiguration that stops the role: most likely a misspelt name, which would leave
/// the real topic open while the config looks closed. Each topic without a list is named
/// in a warning.
fn source_topics(
    topics: &[String],
    allow: &[TopicAllow],
) -> Result<Vec<SourceTopic>, ConsumerError> {
    if let Some(a) = allow
        .iter()
        .find(|a| !topics.iter().any(|t| t == a.topic()))
    {
        return Err(ConsumerError::Fatal(format!(
            "[kafka.topic_allow] names topic {:?}, which this role does not consume (it consumes {})",
            a.topic(),
            topics.join(", ")
        )));
    }
    Ok(topics
        .iter()
        .map(|t| {
            let allow = allow.iter().find(|a| a.topic() == t).cloned();
            if allow.is_none() {
                tracing::warn!(
                    topic = %t,
                    "The topic declares no sources or types it may carry: whoever may produce to it can write any source's figures. Declare them in [kafka.topic_allow.\"<topic>\"]."
                );
            }
            SourceTopic {
                name: Arc::from(t.as_str()),
                allow,
            }
        })
        .collect())
}

/// Decodes one message of a source topic into an [`Item`], refusing as `not_allowed` an
/// event the topic may not carry (`allow`). The item's source label is the event's source
/// when the topic may carry it; else the topic's only source, if it has one (as the HTTP
/// receiver counts under its token's); else `unknown`.
fn read_item(schema: &Schema, allow: Option<&TopicAllow>, raw: &[u8], position: Position) -> Item {
    let label = allow
        .and_then(TopicAllow::single_source)
        .unwrap_or(UNKNOWN_SOURCE);
    let mut item = mieruka_ingest::item(schema, raw, position, label);
    let refusal = match (&item.outcome, allow) {
        (Ok(e), None) => {
            item.source_label.clone_from(&e.source);
            None
        }
        (Ok(e), Some(a)) => {
            if a.carries_source(&e.source) {
                item.source_label.clone_from(&e.source);
            }
            a.check(schema, e).err()
        }
        (Err(_), _) => None,
    };
    if let Some(r) = refusal {
        // Kept in the `rejected` table like every refused event's text (it passed the
        // guard, so nothing is masked, but one rule holds for all the table's text).
        item.refuse(raw, r);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use mieruka_ingest::Reason;

    fn schema() -> Schema {
        Plan::ome()
            .unwrap_or_else(|e| panic!("the Ome plan: {e:?}"))
            .schema
    }

    fn at(offset: i64) -> Position {
        Position::Offset {
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    fn cert(source: &str) -> String {
        format!(
            r#"{{"event_id":"k-1","source":"{source}","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{{"channel":"konbini","certificate":"juminhyo"}}}}"#
        )
    }

    fn allow(schema: &Schema, sources: &[&str], types: &[&str]) -> TopicAllow {
        let s: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        let t: Vec<String> = types.iter().map(|s| (*s).to_owned()).collect();
        TopicAllow::new(schema, "t", &s, &t).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_event_its_topic_may_not_carry_is_refused_not_allowed_with_its_text_kept() {
        let schema = schema();
        let konbini = allow(&schema, &["konbini"], &["certificate.issued"]);
        let ok = read_item(&schema, Some(&konbini), cert("konbini").as_bytes(), at(1));
        assert!(ok.outcome.is_ok(), "{:?}", ok.outcome);
        assert_eq!(ok.source_label, "konbini");

        let raw = cert("card");
        let refused = read_item(&schema, Some(&konbini), raw.as_bytes(), at(2));
        let Err(r) = &refused.outcome else {
            panic!("a source the topic does not carry was accepted");
        };
        assert_eq!(
            (r.reason, r.field.as_deref(), r.event_id.as_deref()),
            (Reason::NotAllowed, Some("source"), Some("k-1"))
        );
        assert!(r.message.contains("topic \"t\""), "{}", r.message);
        // Counted under the topic's one source, never under what the event says.
        assert_eq!(refused.source_label, "konbini");
        assert_eq!(refused.raw_masked.as_deref(), Some(raw.as_str()));

        let paper = allow(&schema, &["konbini", "card"], &["paper.purchased"]);
        let refused = read_item(&schema, Some(&paper), raw.as_bytes(), at(3));
        let Err(r) = &refused.outcome else {
            panic!("a type the topic does not carry was accepted");
        };
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::NotAllowed, Some("type"))
        );
        // The source is one the topic carries: counted under it.
        assert_eq!(refused.source_label, "card");
        let not_json = read_item(&schema, Some(&paper), b"{", at(4));
        assert_eq!(not_json.source_label, UNKNOWN_SOURCE);
    }

    #[test]
    fn a_topic_without_an_allow_list_carries_every_source() {
        let schema = schema();
        let item = read_item(&schema, None, cert("card").as_bytes(), at(1));
        assert!(item.outcome.is_ok());
        assert_eq!(item.source_label, "card");
    }

    #[test]
    fn an_allow_list_of_a_topic_not_consumed_stops_the_role() {
        let schema = schema();
        let a = allow(&schema, &["konbini"], &[]);
        let Err(e) = source_topics(&["u".to_owned()], std::slice::from_ref(&a)) else {
            panic!("an allow list of a topic not consumed was taken");
        };
        assert!(e.to_string().contains("names topic \"t\""), "{e}");
        let topics = source_topics(&["u".to_owned(), "t".to_owned()], &[a])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(topics[0].allow.is_none() && topics[1].allow.is_some());
    }
}
