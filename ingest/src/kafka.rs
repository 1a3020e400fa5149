//! The Kafka producer of the `ingest` role: an [`EventSink`] that writes each accepted
//! event to the source topic and replies only once the broker has acknowledged it; and
//! the dead-letter format that every role producing dead letters shares ([`dead_letter`]).
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
//!   reply and, when a dead-letter topic is configured, produced there as below.
//!
//! # Dead letters
//!
//! The `ingest` role (events refused at the edge) and the `aggregate` role (messages of
//! a source topic refused on reading or at commit) write the same format, built by
//! [`dead_letter`]:
//! - **Payload**: the event's original bytes, or — when the personal-number guard
//!   masked something in them — the masked text. (The `ingest` role is handed the text
//!   only, already through the guard, so its payload is that text.)
//! - **Headers**: `reason` (the closed reason code), `field` (the JSON path at fault;
//!   absent when the whole event is), `message` (the first problem's; an event with
//!   several field-level problems has ` | field: message (reason)` for each other one
//!   appended, and a `problems` header: a JSON array of `{"field","reason","message"}`,
//!   the first included), `event_id` (when the event's id could
//!   be read, and never for `personal_number`), `source` (the configured source label —
//!   the token's or topic's source, `unknown` when there is none — never request data),
//!   `position` (where it was received: `index 3`, `file:line` or
//!   `topic/partition@offset`), `payload` (`original` or `masked`); then, by position,
//!   `topic`, `partition`, `offset` (a Kafka message) or `file`, `line` (a file).
//! - **Key**: the received message's key when it had one; else `source/event_id`
//!   (`source` as in the header), as source topics are keyed, when the event id is known
//!   and the reason is not `personal_number`; else none.
//! - **Personal numbers**: the key and every header value pass through the guard's
//!   masker ([`guard::mask`](crate::guard::mask)) before they are produced, so a key such
//!   as `konbini/<a personal number>` never reaches the topic in clear.

use std::borrow::Cow;
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

use rdkafka::message::ToBytes;

use crate::event::Event;
use crate::guard;
use crate::reject::Rejection;
use crate::schema::Schema;
use crate::sink::{EventSink, Item, Position, SinkError, Status};

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

/// A refused event as the dead-letter topic gets it (the format is in the module docs).
/// The payload and key borrow from what was received where nothing had to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// The message key, masked.
    pub key: Option<Cow<'a, [u8]>>,
    /// The original bytes, or the masked text.
    pub payload: Cow<'a, [u8]>,
    /// Header names and (masked) values, in the documented order.
    pub headers: Vec<(&'static str, String)>,
}

impl DeadLetter<'_> {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The message to produce to `topic`.
    pub fn record<'r>(&'r self, topic: &'r str) -> FutureRecord<'r, [u8], [u8]> {
        let headers = self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                })
            },
        );
        let record = FutureRecord::to(topic)
            .payload(&*self.payload)
            .headers(headers);
        match &self.key {
            Some(k) => record.key(&**k),
            None => record,
        }
    }
}

/// The dead letter of `item`, refused for `rejection`: the one place that decides what
/// the dead-letter topic gets (see the module docs). `key` and `original` are the
/// message's key and bytes as received, when the caller has them (a source topic's
/// reader does; the HTTP receiver hands over only the masked text in `item.raw_masked`).
pub fn dead_letter<'a>(
    item: &'a Item,
    rejection: &Rejection,
    key: Option<&'a [u8]>,
    original: Option<&'a [u8]>,
) -> DeadLetter<'a> {
    let (payload, kind): (Cow<'a, [u8]>, &str) = match (original, item.raw_masked.as_deref()) {
        // The guard masked something: the masked text, never the bytes.
        (_, Some(masked)) if item.raw_was_masked => (Cow::Borrowed(masked.as_bytes()), "masked"),
        // Nothing needed masking (or the event passed the guard): the bytes as received,
        // even when they are not UTF-8.
        (Some(bytes), _) => (Cow::Borrowed(bytes), "original"),
        // Only the text (the HTTP receiver's items): bytes that were not UTF-8 were
        // replaced in it, so it is not what was received.
        (None, Some(text)) if text.contains('\u{FFFD}') => {
            (Cow::Borrowed(text.as_bytes()), "masked")
        }
        (None, Some(text)) => (Cow::Borrowed(text.as_bytes()), "original"),
        (None, None) => (Cow::Borrowed(&[][..]), "original"),
    };
    // Set only when the id passed the guard (for `personal_number` too: the number is
    // elsewhere in the event).
    let event_id = rejection.event_id.as_deref();
    let source = item.source_label.as_str();
    let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(10);
    let mut add = |name: &'static str, value: &str| headers.push((name, guard::mask(value)));
    add("reason", rejection.reason.as_str());
    if let Some(field) = &rejection.field {
        add("field", field);
    }
    add("message", &rejection.full_message());
    if !rejection.more.is_empty() {
        add("problems", &problems_json(rejection));
    }
    if let Some(id) = event_id {
        add("event_id", id);
    }
    add("source", source);
    add("position", &item.position.to_string());
    add("payload", kind);
    match &item.position {
        Position::Offset {
            topic,
            partition,
            offset,
        } => {
            add("topic", topic);
            add("partition", &partition.to_string());
            add("offset", &offset.to_string());
        }
        Position::Line { file, line } => {
            add("file", file);
            add("line", &line.to_string());
        }
        Position::Index(_) => {}
    }
    let key = match (key, event_id) {
        (Some(k), _) => Some(mask_bytes(k)),
        (None, Some(id)) => Some(Cow::Owned(
            guard::mask(&format!("{source}/{id}")).into_bytes(),
        )),
        (None, None) => None,
    };
    DeadLetter {
        key,
        payload,
        headers,
    }
}

/// Every problem of `r` as a JSON array of `{"field","reason","message"}` (the
/// `problems` header of an event that had more than one).
fn problems_json(r: &Rejection) -> String {
    let list: Vec<serde_json::Value> = r
        .problems()
        .map(|(reason, field, message)| {
            serde_json::json!({"field": field, "reason": reason.as_str(), "message": message})
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// `bytes` with every personal number masked: borrowed when there is none (so a key
/// that is not UTF-8 stays as it was), else the masked text.
fn mask_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let text = String::from_utf8_lossy(bytes);
    let masked = guard::mask(&text);
    if masked == text {
        Cow::Borrowed(bytes)
    } else {
        Cow::Owned(masked.into_bytes())
    }
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
    async fn enqueue<K: ToBytes + ?Sized>(
        &self,
        pending: &mut VecDeque<DeliveryFuture>,
        mut record: FutureRecord<'_, K, [u8]>,
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
                        let letter = dead_letter(item, rejection, None, None);
                        self.enqueue(&mut pending, letter.record(dlq)).await?;
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
    use crate::reject::Reason;
    use crate::timestamp::Timestamp;
    use crate::TypeId;

    fn event(id: &str, voids: Option<&str>) -> Event {
        Event {
            id: id.into(),
            source: "card".into(),
            type_id: TypeId(0),
            occurred_at: Timestamp::from_micros(0),
            data: Vec::new(),
            voids: voids.map(Into::into),
        }
    }

    #[test]
    fn an_event_is_keyed_by_source_and_id_and_a_void_by_its_target() {
        assert_eq!(kafka_key(&event("c-1", None)), "card/c-1");
        assert_eq!(kafka_key(&event("v-9", Some("c-1"))), "card/c-1");
    }

    /// A valid personal number, for tests only: the check digit of 12345678901 is 8.
    const PERSONAL: &str = "123456789018";

    /// An item refused for `rejection`, received as `raw` at `position` under `label`.
    fn refused(raw: &[u8], position: Position, label: &str, rejection: Rejection) -> Item {
        let (text, masked) = crate::mask_raw_reporting(raw);
        Item {
            position,
            outcome: Err(rejection),
            raw_masked: Some(text),
            raw_was_masked: masked,
            source_label: label.into(),
        }
    }

    fn kafka_position() -> Position {
        Position::Offset {
            topic: "mieruka.events".into(),
            partition: 3,
            offset: 41,
        }
    }

    fn not_allowed() -> Rejection {
        Rejection::at(
            Reason::NotAllowed,
            "source",
            "topic \"mieruka.events\" may not carry source \"card\"",
        )
        .with_event_id(Some("c-1"))
    }

    fn names(letter: &DeadLetter<'_>) -> Vec<&'static str> {
        letter.headers.iter().map(|(k, _)| *k).collect()
    }

    const CARD: &[u8] = br#"{"event_id":"c-1","source":"card","type":"certificate.issued"}"#;

    #[test]
    fn a_dead_letter_of_an_event_with_several_problems_lists_them_all() {
        let raw = br#"{"event_id":"c-2","source":"card","type":"cert","data":{"n":0,"x":1}}"#;
        let mut rejection =
            Rejection::at(Reason::OutOfBounds, "data.n", "0 is below the minimum 1");
        rejection.more.push(crate::reject::Problem {
            reason: Reason::UnknownField,
            field: Some("data.x".to_owned()),
            message: "unknown field; cert has fields n".to_owned(),
        });
        let item = refused(raw, kafka_position(), "card", rejection.clone());
        let letter = dead_letter(&item, &rejection, None, Some(raw));
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            header("message"),
            Some(
                "0 is below the minimum 1 | data.x: unknown field; cert has fields n (unknown_field)"
            )
        );
        let problems: serde_json::Value =
            serde_json::from_str(header("problems").unwrap_or("")).unwrap_or_default();
        assert_eq!(problems[0]["field"], "data.n");
        assert_eq!(problems[1]["reason"], "unknown_field");
        assert_eq!(problems.as_array().map(Vec::len), Some(2));
        // One problem: no `problems` header, the message as it was.
        let letter = dead_letter(&item, &not_allowed(), None, Some(raw));
        assert!(!names(&letter).contains(&"problems"));
    }

    #[test]
    fn a_dead_letter_read_from_a_topic_has_every_header_and_keeps_its_key_and_bytes() {
        let item = refused(CARD, kafka_position(), "unknown", not_allowed());
        let letter = dead_letter(&item, &not_allowed(), Some(b"card/c-1"), Some(CARD));
        let headers: Vec<(&str, &str)> = letter
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        assert_eq!(
            headers,
            [
                ("reason", "not_allowed"),
                ("field", "source"),
                (
                    "message",
                    "topic \"mieruka.events\" may not carry source \"card\""
                ),
                ("event_id", "c-1"),
                ("source", "unknown"),
                ("position", "mieruka.events/3@41"),
                ("payload", "original"),
                ("topic", "mieruka.events"),
                ("partition", "3"),
                ("offset", "41"),
            ]
        );
        assert_eq!(letter.key.as_deref(), Some(&b"card/c-1"[..]));
        assert_eq!(&*letter.payload, CARD);
    }

    #[test]
    fn a_dead_letter_refused_at_the_edge_has_the_same_headers_but_where_it_was_received() {
        let raw = br#"{"event_id":"p-5","source":"office","type":"paper.purchased"}"#;
        let rejection = Rejection::at(Reason::UnknownValue, "data.size", "unknown value \"A5\"")
            .with_event_id(Some("p-5"));
        let http = refused(raw, Position::Index(9), "office", rejection.clone());
        let letter = dead_letter(&http, &rejection, None, None);
        let kafka = refused(raw, kafka_position(), "office", rejection.clone());
        let from_topic = dead_letter(&kafka, &rejection, Some(b"office/p-5"), Some(raw));
        // One header set: the Kafka one adds only where in Kafka it was read.
        let mut shared = names(&from_topic);
        shared.retain(|k| !["topic", "partition", "offset"].contains(k));
        assert_eq!(names(&letter), shared);
        assert_eq!(letter.header("position"), Some("index 9"));
        assert_eq!(letter.header("payload"), Some("original"));
        assert_eq!(&*letter.payload, &raw[..]);
        // No key received: keyed as source topics are, by the configured source.
        assert_eq!(letter.key.as_deref(), Some(&b"office/p-5"[..]));
        // Nor an id: no key. A whole-event refusal has no `field`.
        let whole = Rejection::whole(Reason::NotJson, "not JSON: EOF at line 1 column 9");
        let item = refused(b"{\"broken\"", Position::Index(0), "office", whole.clone());
        let letter = dead_letter(&item, &whole, None, None);
        assert_eq!(letter.key, None);
        assert_eq!(letter.header("field"), None);
        assert_eq!(letter.header("event_id"), None);
    }

    #[test]
    fn a_file_position_names_the_file_and_the_line() {
        let rejection = Rejection::at(Reason::BadTimestamp, "occurred_at", "not RFC 3339");
        let item = refused(
            b"x",
            Position::Line {
                file: "in/konbini.csv".into(),
                line: 7,
            },
            "konbini",
            rejection.clone(),
        );
        let letter = dead_letter(&item, &rejection, None, None);
        assert_eq!(letter.header("position"), Some("in/konbini.csv:7"));
        assert_eq!(letter.header("file"), Some("in/konbini.csv"));
        assert_eq!(letter.header("line"), Some("7"));
    }

    #[test]
    fn a_personal_number_never_leaves_in_the_key_a_header_or_the_payload() {
        let raw = format!(
            r#"{{"event_id":"k-1","source":"konbini","type":"certificate.issued","data":{{"memo":"{PERSONAL}"}}}}"#
        );
        let rejection = Rejection::at(
            Reason::PersonalNumber,
            "data.memo",
            "holds what looks like a personal number",
        )
        .with_event_id(Some("k-1"));
        let key = format!("konbini/{PERSONAL}");
        let file = format!("in/{PERSONAL}.csv");
        let position = Position::Line { file, line: 2 };
        let item = refused(raw.as_bytes(), position, "konbini", rejection.clone());
        let letter = dead_letter(
            &item,
            &rejection,
            Some(key.as_bytes()),
            Some(raw.as_bytes()),
        );
        assert_eq!(letter.key.as_deref(), Some(&b"konbini/************"[..]));
        assert_eq!(letter.header("payload"), Some("masked"));
        let everything = format!("{letter:?}{}", String::from_utf8_lossy(&letter.payload));
        assert!(!everything.contains(PERSONAL), "{everything}");
        assert_eq!(letter.header("file"), Some("in/************.csv"));
        // A personal_number refusal names the id that passed the guard (the number is
        // elsewhere in the event).
        assert_eq!(letter.header("event_id"), Some("k-1"));
        // An id that is a personal number is masked wherever it goes.
        let id = Rejection::at(Reason::NotAllowed, "type", "may not").with_event_id(Some(PERSONAL));
        let item = refused(b"{}", Position::Index(0), "konbini", id.clone());
        let letter = dead_letter(&item, &id, None, None);
        assert_eq!(letter.header("event_id"), Some("************"));
        assert_eq!(letter.key.as_deref(), Some(&b"konbini/************"[..]));
    }

    #[test]
    fn the_payload_is_the_bytes_received_unless_the_guard_masked_them() {
        let rejection = Rejection::whole(Reason::NotJson, "not JSON");
        // Not JSON, and not UTF-8 either (Shift_JIS): the bytes as read.
        let sjis: &[u8] = b"\x97\x70\x8e\x86 {\"sheets\": ";
        let item = refused(sjis, kafka_position(), "unknown", rejection.clone());
        let letter = dead_letter(&item, &rejection, None, Some(sjis));
        assert_eq!(
            (letter.header("payload"), &*letter.payload),
            (Some("original"), sjis)
        );
        // Grouped, in text that is not JSON: masked, separators kept.
        let raw = b"memo 1234-5678-9018 {";
        let item = refused(raw, kafka_position(), "unknown", rejection.clone());
        let letter = dead_letter(&item, &rejection, None, Some(raw));
        assert_eq!(letter.header("payload"), Some("masked"));
        assert_eq!(&*letter.payload, b"memo ****-****-**** {");
        // Without the bytes (the HTTP receiver's items), the item says what the guard did.
        let letter = dead_letter(&item, &rejection, None, None);
        assert_eq!(letter.header("payload"), Some("masked"));
        let item = refused(sjis, Position::Index(0), "unknown", rejection.clone());
        let letter = dead_letter(&item, &rejection, None, None);
        assert_eq!(
            letter.header("payload"),
            Some("masked"),
            "not the bytes received"
        );
        let item = refused(
            b"memo 1234 {",
            Position::Index(0),
            "unknown",
            rejection.clone(),
        );
        let letter = dead_letter(&item, &rejection, None, None);
        assert_eq!(letter.header("payload"), Some("original"));
    }
}
