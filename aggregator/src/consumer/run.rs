//! The run loop: the consumer thread reads batches while earlier ones commit in the
//! background, up to `parallel_commits` at once, never two of one partition.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mieruka_ingest::Schema;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use tokio::runtime::Handle;

use super::batch::{InFlight, Pending};
use super::context::{Ctx, Owned};
use super::source::{source_topics, SourceTopic};
use super::{partition, source, AggregatorOptions, ConsumerError, Observer, LAG_INTERVAL};
use crate::store::PgStore;

/// The `aggregate` role's consumer, built and subscribed, ready to [`Aggregator::run`].
pub struct Aggregator {
    /// The group member; its context holds the partitions owned.
    pub(super) consumer: BaseConsumer<Ctx>,
    /// The dead-letter producer and topic, when one is configured.
    pub(super) dead_letter: Option<(FutureProducer, String)>,
    pub(super) store: Arc<PgStore>,
    pub(super) schema: Arc<Schema>,
    pub(super) handle: Handle,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) opts: AggregatorOptions,
    pub(super) observer: Arc<dyn Observer>,
    /// The source topics, and what each may carry.
    pub(super) topics: Vec<SourceTopic>,
    /// Messages read but in no batch yet (of partitions with a commit in flight, or read
    /// during a backoff), in order.
    pub(super) carry: Vec<Pending>,
    /// The assignment epoch the partitions were paused under (`None`: not paused).
    pub(super) paused_epoch: Option<u64>,
    /// When the lag was last measured.
    pub(super) last_lag: Option<Instant>,
    /// When a poll error was last logged (one warning per 30 s).
    pub(super) last_poll_warning: Option<Instant>,
    /// When silent seeks were last probed (at most every 200 ms).
    pub(super) last_probe: Option<Instant>,
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
        let cfg = consumer_config(&opts);
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

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(super) fn ctx(&self) -> &Ctx {
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

    /// Polls once; serves rebalances and returns a message of an owned partition.
    pub(super) fn poll_one(&mut self, timeout: Duration) -> Option<Pending> {
        let polled = self.consumer.poll(timeout);
        match polled {
            None => {
                // Nothing queued: a partition still waiting on a seek has really been
                // silent (not merely queued behind others).
                self.probe_silent();
                None
            }
            Some(Ok(m)) => {
                let dead_letters = self.dead_letter.is_some();
                accept(&self.consumer, &self.schema, &self.topics, &m, dead_letters)
            }
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
    pub(super) fn measure_lag(&mut self) {
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
}

/// Takes a message of an owned partition, in offset order, decoded into an
/// [`Item`](mieruka_ingest::Item).
fn accept(
    consumer: &BaseConsumer<Ctx>,
    schema: &Schema,
    topics: &[SourceTopic],
    m: &BorrowedMessage<'_>,
    dead_letters: bool,
) -> Option<Pending> {
    let epoch = partition::admit(consumer, m.topic(), m.partition(), m.offset())?;
    Some(source::pending(schema, topics, m, epoch, dead_letters))
}

/// The consumer's librdkafka settings: the group's, offsets kept by the store (never
/// committed to Kafka, read from the earliest when none is stored), statistics for the
/// lag, short socket timeouts; then the config's `[kafka.librdkafka]` properties. The
/// benchmark's bare consumer uses the same, so its ratio compares like with like.
pub fn consumer_config(opts: &AggregatorOptions) -> ClientConfig {
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
    cfg
}
