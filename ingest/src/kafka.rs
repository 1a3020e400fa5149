//! The Kafka producer of the `ingest` role: an [`EventSink`] that writes each accepted
//! event to the source topic and replies only once the broker has acknowledged it.
//!
//! Guarantees, and what each rests on:
//! - **Nothing acknowledged is lost.** `submit` returns `Ok` only after every message of
//!   the batch has a delivery report from the broker, with `acks=all` (every in-sync
//!   replica has it). A delivery error makes the whole batch
//!   [`SinkError::Unavailable`] (the HTTP receiver answers 503), and re-sending it is
//!   safe: the aggregator counts an event id once.
//! - **No duplicates from producer retries.** `enable.idempotence=true`: the broker
//!   drops a retried message it already wrote (per producer id and sequence), so a
//!   network hiccup does not write an event twice (and a re-send by the line system
//!   is a duplicate the store recognises by `source` and `event_id`).
//! - **One owner per key.** Messages are keyed by [`kafka_key`]: `source/event_id`, and
//!   a void by `source/<the event it voids>`, so a void and its original land on the same
//!   partition, which one aggregator owns at a time (the PostgreSQL store relies on this).
//! - **What is produced.** An accepted event is produced in its canonical JSON form (the
//!   form the store logs; it decodes to the same event, UTC timestamp and defaults
//!   filled in), so the topic never carries text that failed validation. The reply says
//!   "accepted for processing": duplicates are only known when the aggregator commits.
//! - **Rejected at the edge.** Events that fail validation are reported `Rejected` in the
//!   reply and, when a dead-letter topic is configured, produced there with their raw
//!   text masked by the personal-number guard and headers `reason`, `field`, `message`,
//!   `position`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

/// The `rdkafka` crate this module is built on, re-exported so that the binary and its
/// tests speak to the broker with the same client and librdkafka.
pub use rdkafka;

use crate::event::Event;
use crate::schema::Schema;
use crate::sink::{EventSink, Item, SinkError, Status};

/// How long the producer keeps retrying a message before reporting it failed: the
/// longest an HTTP request waits on an unreachable broker before its 503.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The key of an event's Kafka message: `source/event_id`, and for a void
/// `source/<the event_id it voids>`, so that a void and its original share a partition.
pub fn kafka_key(event: &Event) -> String {
    let id = event.voids.as_deref().unwrap_or(&event.id);
    format!("{}/{id}", event.source)
}

/// The producer settings of mieruka: idempotent, `acks=all`, a short linger.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "none")
        // A connection that is not up within 10 s is dropped and tried again (a broker
        // that accepts but never answers would otherwise hold it for librdkafka's 30 s
        // default: the whole time an HTTP request waits).
        .set("socket.connection.setup.timeout.ms", "10000")
        // A request unanswered for 10 s (a connection the broker lost without closing
        // it: a crashed host, a partition) fails, the connection is dropped and the batch
        // retried on a new one within the delivery timeout (librdkafka's default, 60 s,
        // uses it all up); idempotence keeps the retry from writing twice. The broker
        // gives up waiting for its replicas' acks a little earlier, so it answers first.
        .set("socket.timeout.ms", "10000")
        .set("request.timeout.ms", "8000")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .set("broker.address.family", "v4");
    cfg
}

/// An [`EventSink`] producing to Kafka (the `ingest` role).
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    dead_letter_topic: Option<String>,
    schema: Arc<Schema>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink producing to `topic` on `brokers`; edge rejections also go to
    /// `dead_letter_topic` when given. Connecting is lazy: this does not wait for the broker.
    pub fn new(
        brokers: &str,
        topic: &str,
        dead_letter_topic: Option<&str>,
        schema: Arc<Schema>,
    ) -> Result<Self, KafkaError> {
        Self::with_config(producer_config(brokers), topic, dead_letter_topic, schema)
    }

    /// Like [`KafkaSink::new`], with a producer config of the caller's (for tests and
    /// tuning; keep `enable.idempotence` and `acks=all`).
    pub fn with_config(
        cfg: ClientConfig,
        topic: &str,
        dead_letter_topic: Option<&str>,
        schema: Arc<Schema>,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: cfg.create()?,
            topic: topic.to_owned(),
            dead_letter_topic: dead_letter_topic.map(str::to_owned),
            schema,
        })
    }

    /// The topic events go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The producer (for metadata checks and flushing at shutdown).
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Enqueues one message, waiting for the oldest pending delivery while the local
    /// queue is full.
    async fn enqueue(
        &self,
        pending: &mut VecDeque<DeliveryFuture>,
        mut record: FutureRecord<'_, str, [u8]>,
    ) -> Result<(), SinkError> {
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    match pending.pop_front() {
                        Some(oldest) => settle(oldest).await?,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((e, _)) => {
                    return Err(SinkError::Unavailable(format!(
                        "cannot produce to Kafka: {e}"
                    )))
                }
            }
        }
    }
}

/// Waits for one delivery report.
async fn settle(delivery: DeliveryFuture) -> Result<(), SinkError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(SinkError::Unavailable(format!(
            "the broker did not acknowledge an event: {e}"
        ))),
        Err(_) => Err(SinkError::Unavailable(
            "the Kafka producer shut down before acknowledging".to_owned(),
        )),
    }
}

impl EventSink for KafkaSink {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        let mut pending = VecDeque::with_capacity(items.len());
        let mut statuses = Vec::with_capacity(items.len());
        for item in &items {
            match &item.outcome {
                Ok(event) => {
                    let key = kafka_key(event);
                    let payload = event.canonical_json(&self.schema);
                    let record = FutureRecord::to(&self.topic)
                        .key(key.as_str())
                        .payload(payload.as_bytes());
                    self.enqueue(&mut pending, record).await?;
                    statuses.push(Status::Accepted);
                }
                Err(rejection) => {
                    if let Some(dlq) = &self.dead_letter_topic {
                        let raw = item.raw_masked.clone().unwrap_or_default();
                        let position = item.position.to_string();
                        let headers = OwnedHeaders::new()
                            .insert(Header {
                                key: "reason",
                                value: Some(rejection.reason.as_str()),
                            })
                            .insert(Header {
                                key: "field",
                                value: Some(rejection.field.as_deref().unwrap_or("")),
                            })
                            .insert(Header {
                                key: "message",
                                value: Some(rejection.message.as_str()),
                            })
                            .insert(Header {
                                key: "position",
                                value: Some(position.as_str()),
                            });
                        let record = FutureRecord::to(dlq)
                            .payload(raw.as_bytes())
                            .headers(headers);
                        self.enqueue(&mut pending, record).await?;
                    }
                    statuses.push(Status::Rejected(rejection.clone()));
                }
            }
        }
        for delivery in pending {
            settle(delivery).await?;
        }
        Ok(statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;
    use crate::TypeId;

    fn event(id: &str, voids: Option<&str>) -> Event {
        Event {
            id: id.to_owned(),
            source: "card".to_owned(),
            type_id: TypeId(0),
            occurred_at: Timestamp::from_micros(0),
            data: Vec::new(),
            voids: voids.map(str::to_owned),
        }
    }

    #[test]
    fn an_event_is_keyed_by_source_and_id_and_a_void_by_its_target() {
        assert_eq!(kafka_key(&event("c-1", None)), "card/c-1");
        assert_eq!(kafka_key(&event("v-9", Some("c-1"))), "card/c-1");
    }
}
