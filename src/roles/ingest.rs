//! The `ingest` role: the HTTP receiver, producing to Kafka.
//!
//! It answers `POST /v1/events` once the broker has acknowledged every accepted event
//! (idempotent producer, `acks=all`); its reply means "accepted for processing":
//! duplicates are found by the aggregators. It also serves `/metrics`, `/healthz` and
//! `/readyz` for its own health (ready while the broker answers for the topic) and
//! counts the events it refuses at the edge.
//!
//! What it refuses (HTTP and its inboxes) goes to the dead-letter topic and, when a
//! PostgreSQL URL is resolved (`[store] url`), into PostgreSQL's `rejected` table beside
//! the aggregators' own refusals ([`KeepRefused`]): `mieruka rejected` then lists every
//! refusal of the deployment from one table. The aggregators do not read the
//! dead-letter topic back, so nothing is kept twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mieruka_aggregator::store::PgStore;
use mieruka_exporter::{Exporter, Role};
use mieruka_ingest::http::Token;
use mieruka_ingest::kafka::rdkafka::producer::Producer;
use mieruka_ingest::kafka::KafkaSink;
use mieruka_ingest::{EventSink, Item, SinkError, Status};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{bind, Clock, Counted, CountingSink};
use crate::config::{Resolved, TopicAllowConfig};

/// The built `ingest` role.
pub struct IngestRole {
    listener: TcpListener,
    kafka: Arc<KafkaSink>,
    sink: Arc<CountingSink<KeepRefused<KafkaSink>>>,
    exporter: Arc<Exporter>,
    settings: Resolved,
    topic: String,
}

impl IngestRole {
    /// Creates the producer and binds the socket; the broker is reached in `run`.
    pub async fn build(settings: &Resolved) -> anyhow::Result<IngestRole> {
        let brokers = settings.brokers()?;
        let topic = settings.kafka.topic.clone();
        if let Some(allow) = &settings.kafka.ingest_allow {
            warn_not_carried(&topic, allow, &settings.tokens);
        }
        let kafka = Arc::new(kafka_sink(settings, brokers)?);
        let exporter = Exporter::for_role(
            settings.plan.clone(),
            settings.sources.clone(),
            Role::Ingest,
        );
        let clock = Clock(settings.now);
        // An empty KPI snapshot, so /readyz depends only on the role's own inputs.
        exporter.publish(&[], clock.now());
        super::inbox::prepare(&settings.inboxes)?;
        let (listener, _) = bind(&settings.listen).await?;
        // Each outcome is counted once across the roles: this one counts what it refuses
        // at the edge, the aggregators what they commit.
        let keep = KeepRefused::open(kafka.clone(), settings).await?;
        let sink = Arc::new(CountingSink::new(
            Arc::new(keep),
            exporter.clone(),
            Counted::Refusals,
        ));
        Ok(IngestRole {
            listener,
            kafka,
            sink,
            exporter,
            settings: settings.clone(),
            topic,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The topic events are produced to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Serves until `shutdown` is cancelled, then flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let IngestRole {
            listener,
            kafka,
            sink,
            exporter,
            settings,
            topic,
        } = self;
        let readiness = tokio::spawn(readiness(
            kafka.clone(),
            exporter.clone(),
            topic.clone(),
            shutdown.clone(),
        ));
        let receiver = super::receiver(&settings, sink.clone(), &exporter)?;
        let clock = Clock(settings.now);
        let republish = {
            let exporter = exporter.clone();
            // The role serves no KPIs: its page is the empty snapshot, with the inboxes.
            Arc::new(move || exporter.publish(&[], clock.now()))
        };
        let inboxes = super::inbox::spawn_all(
            &settings.inboxes,
            &settings.plan,
            &sink,
            &exporter,
            (clock, republish),
            &shutdown,
        );
        let app = mieruka_exporter::router(exporter).merge(mieruka_ingest::http::router(receiver));
        let addr = listener.local_addr()?;
        tracing::info!(%addr, %topic, "Receiving events for Kafka.");
        super::serve(listener, settings.idle_timeout, app, &shutdown).await?;
        shutdown.cancel();
        // The file in hand is produced before the producer is flushed.
        inboxes.join_all().await;
        let _ = readiness.await;
        drop(sink);
        let flushed =
            tokio::task::spawn_blocking(move || kafka.producer().flush(Duration::from_secs(10)))
                .await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!("Some produced events were not acknowledged before stopping; their requests were not answered 2xx.");
        }
        tracing::info!("Stopped.");
        Ok(())
    }
}

/// The producer of the `[kafka]` topic as `ingest` (and `mieruka import`) produce: mieruka's
/// producer settings, then `[kafka.librdkafka]`; refusals to the dead-letter topic.
pub fn kafka_sink(settings: &Resolved, brokers: &str) -> anyhow::Result<KafkaSink> {
    let mut producer = mieruka_ingest::kafka::producer_config(brokers);
    for (k, v) in &settings.kafka.librdkafka {
        producer.set(k, v);
    }
    let kafka = &settings.kafka;
    let schema = Arc::new(settings.plan.schema.clone());
    let dead_letter = kafka.dead_letter_topic.as_deref();
    KafkaSink::with_config(producer, &kafka.topic, dead_letter, schema)
        .context("cannot create the Kafka producer")
}

/// A sink in front of Kafka that first keeps each refused item in PostgreSQL's
/// `rejected` table, when a URL is resolved: the `ingest` role and `mieruka import` into
/// the production pipeline refuse items before Kafka, which no aggregator sees.
///
/// The refusals are written before the batch is produced, so a database that fails
/// fails the batch (503 to an HTTP client, which re-sends: the accepted events count
/// once by their ids; a refusal may then be kept twice, never not at all).
pub struct KeepRefused<S> {
    inner: Arc<S>,
    store: Option<PgStore>,
}

impl<S> KeepRefused<S> {
    /// In front of `inner`, keeping refusals in the PostgreSQL store the settings name
    /// (none: only `inner`, e.g. its dead-letter topic, keeps them).
    pub async fn open(inner: Arc<S>, settings: &Resolved) -> anyhow::Result<Self> {
        let store = match settings.database_url() {
            Ok(url) => Some(
                PgStore::open(url, settings.plan.clone())
                    .await
                    .context("cannot open the PostgreSQL store that keeps rejected events")?,
            ),
            Err(_) => None,
        };
        Ok(KeepRefused { inner, store })
    }

    /// Closes the connections to PostgreSQL.
    pub async fn close(&self) {
        if let Some(store) = &self.store {
            store.close().await;
        }
    }
}

impl<S: EventSink> EventSink for KeepRefused<S> {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        if let Some(store) = &self.store {
            // Only the refused items are written (with their masked raw text).
            store.record_rejected(&items).await?;
        }
        self.inner.submit(items).await
    }
}

/// Ready while the broker answers for the topic: probed every 10 s while it does, every
/// second while it does not; each change is logged once.
async fn readiness(
    kafka: Arc<KafkaSink>,
    exporter: Arc<Exporter>,
    topic: String,
    shutdown: CancellationToken,
) {
    let mut was = None;
    loop {
        let probe = {
            let (kafka, topic) = (kafka.clone(), topic.clone());
            tokio::task::spawn_blocking(move || {
                kafka
                    .producer()
                    .client()
                    .fetch_metadata(Some(&topic), Duration::from_secs(3))
                    .map(|m| m.topics().iter().any(|t| t.error().is_none()))
            })
            .await
        };
        let ok = matches!(probe, Ok(Ok(true)));
        exporter.set_ready(ok);
        if was != Some(ok) {
            if ok {
                tracing::info!(%topic, "The broker answers for the topic; ready.");
            } else {
                tracing::warn!(%topic, "The broker does not answer for the topic; not ready.");
            }
            was = Some(ok);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs(if ok { 10 } else { 1 })) => {}
        }
    }
}

/// Warns about each source and type a token may send that the topic it goes to may not
/// carry (when the config says what it carries): the aggregators would refuse those
/// events as `not_allowed` after this role accepted them.
fn warn_not_carried(topic: &str, allow: &TopicAllowConfig, tokens: &[(String, Token)]) {
    for (_, token) in tokens {
        for source in token.sources.iter().filter(|s| !allow.sources.contains(s)) {
            tracing::warn!(token = %token.name, %source, %topic, "A token may send a source its topic does not carry ([kafka.topic_allow]); the aggregators will refuse those events.");
        }
        if allow.types.is_empty() {
            continue;
        }
        if token.types.is_empty() {
            tracing::warn!(token = %token.name, %topic, "A token may send every type, and its topic carries only some ([kafka.topic_allow]); the aggregators will refuse the others.");
        }
        for ty in token.types.iter().filter(|t| !allow.types.contains(t)) {
            tracing::warn!(token = %token.name, r#type = %ty, %topic, "A token may send a type its topic does not carry ([kafka.topic_allow]); the aggregators will refuse those events.");
        }
    }
}
