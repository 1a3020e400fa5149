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
//! The parts: `run` (the loop and its thread), `context` (rebalances and librdkafka's
//! callbacks), `partition` (one partition's state, with the recovery of gaps and of
//! seeks a broker does not answer), `batch` (what waits for a commit, and which
//! partitions a batch takes), `commit` (committing, retrying, fencing, pausing),
//! `dead_letter` and `source` (the topics and decoding a message).
//!
//! The loop runs on a thread of its own with a `BaseConsumer`, so that the rebalance
//! callback (which runs inside `poll`) can read the stored offsets synchronously before
//! it assigns the partitions with those offsets.
//!
//! [`PgStore::submit_with_positions`]: crate::store::PgStore::submit_with_positions

mod batch;
mod commit;
mod context;
mod dead_letter;
mod partition;
mod run;
mod source;

use std::time::Duration;

use mieruka_ingest::Status;
use rdkafka::error::KafkaError;

use crate::store::PgError;
use crate::topic_allow::TopicAllow;

pub use run::{consumer_config, Aggregator};

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
