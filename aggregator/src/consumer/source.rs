//! The source topics and what each may carry, and a message decoded into an [`Item`]
//! waiting for its batch.

use std::sync::Arc;

use mieruka_ingest::{Item, Position, Schema};
use rdkafka::message::{BorrowedMessage, Message};

use super::batch::Pending;
use super::ConsumerError;
use crate::topic_allow::TopicAllow;

use mieruka_ingest::UNKNOWN_SOURCE;

/// A source topic: its name, shared by every message read from it (telling two messages'
/// topics apart is then a pointer comparison), and what it may carry.
pub(super) struct SourceTopic {
    pub(super) name: Arc<str>,
    /// `None`: every source and type.
    pub(super) allow: Option<TopicAllow>,
}

/// The source topics with their allow lists. An allow list of a topic not consumed is a
/// misconfiguration that stops the role: most likely a misspelt name, which would leave
/// the real topic open while the config looks closed. Each topic without a list is named
/// in a warning.
pub(super) fn source_topics(
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

/// A message of `topics`, admitted under assignment `epoch`, decoded into what waits for
/// its batch. Its key and bytes are kept only for a dead-letter topic (`dead_letters`):
/// without one nothing reads them, and copying them was an allocation per message.
pub(super) fn pending(
    schema: &Schema,
    topics: &[SourceTopic],
    m: &BorrowedMessage<'_>,
    epoch: u64,
    dead_letters: bool,
) -> Pending {
    let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
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
    Pending {
        topic: source.map_or_else(|| Arc::from(topic), |t| t.name.clone()),
        partition,
        offset,
        epoch,
        key: m.key().filter(|_| dead_letters).map(<[u8]>::to_vec),
        item: Arc::new(item),
        raw: if dead_letters {
            raw.to_vec()
        } else {
            Vec::new()
        },
        dead_lettered: false,
    }
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
