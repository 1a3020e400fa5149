//! What a source topic may carry: the sources and event types each topic the `aggregate`
//! role consumes is allowed (`[kafka.topic_allow."<topic>"]`), as an HTTP bearer token is.
//!
//! Whoever may produce to a topic could otherwise write any line system's figures: the
//! consumer refuses an event whose source or type its topic does not allow
//! (`not_allowed`), as the HTTP receiver refuses one its token does not allow.

use mieruka_ingest::{Event, Reason, Rejection, Schema, TypeId};

/// The sources and event types one source topic may carry, compiled against the plan.
///
/// Checked for every message read (a consumer reads some 200,000 a second), so nothing
/// is hashed or allocated on the way: the sources are a sorted list searched by
/// bisection (a topic carries a few), the types a table indexed by type id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicAllow {
    topic: String,
    /// Sorted, without repeats.
    sources: Vec<String>,
    /// Whether each type (by [`TypeId`]) may be carried; `None`: every type of the plan.
    types: Option<Vec<bool>>,
}

/// Why a topic's allow list cannot be used: the role must not start with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic {topic:?}: {message}")]
pub struct TopicAllowError {
    /// The topic whose list is wrong.
    pub topic: String,
    /// What is wrong with it.
    pub message: String,
}

impl TopicAllow {
    /// The list of `topic`: the `sources` it carries (at least one) and the `types` (none:
    /// every type of the plan), each of which the plan must declare.
    pub fn new(
        schema: &Schema,
        topic: &str,
        sources: &[String],
        types: &[String],
    ) -> Result<Self, TopicAllowError> {
        let err = |message: String| TopicAllowError {
            topic: topic.to_owned(),
            message,
        };
        if sources.is_empty() {
            return Err(err(
                "lists no sources; it would refuse every event (list the sources it carries)"
                    .to_owned(),
            ));
        }
        if sources.iter().any(|s| s.trim().is_empty()) {
            return Err(err("lists an empty source".to_owned()));
        }
        let mut sorted = sources.to_vec();
        sorted.sort();
        sorted.dedup();
        let types = if types.is_empty() {
            None
        } else {
            let mut table = vec![false; schema.types().len()];
            for name in types {
                let id = schema.type_id(name).ok_or_else(|| {
                    err(format!(
                        "type {name:?} is not an event type of the plan; the plan declares: {}",
                        schema.type_names().join(", ")
                    ))
                })?;
                table[usize::from(id.0)] = true;
            }
            Some(table)
        };
        Ok(Self {
            topic: topic.to_owned(),
            sources: sorted,
            types,
        })
    }

    /// The topic this list is of.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The sources it carries, sorted.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Its only source, when it carries one: whom to count a message of the topic under
    /// when the message does not say (it is not JSON) or says another source.
    pub fn single_source(&self) -> Option<&str> {
        match self.sources.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Whether the topic carries `source`.
    pub fn carries_source(&self, source: &str) -> bool {
        self.sources
            .binary_search_by(|s| s.as_str().cmp(source))
            .is_ok()
    }

    /// Whether the topic carries events of type `id`.
    pub fn carries_type(&self, id: TypeId) -> bool {
        self.types
            .as_ref()
            .is_none_or(|t| t.get(usize::from(id.0)).copied().unwrap_or(false))
    }

    /// Nothing when the topic may carry `event`; else its `not_allowed` refusal, naming
    /// the topic and the event's source or type (the event passed validation: they are
    /// safe to show).
    pub fn check(&self, schema: &Schema, event: &Event) -> Result<(), Rejection> {
        if !self.carries_source(&event.source) {
            return Err(Rejection::at(
                Reason::NotAllowed,
                "source",
                format!(
                    "topic {:?} may not carry source {:?} (it carries {})",
                    self.topic,
                    event.source,
                    self.sources.join(", ")
                ),
            )
            .with_event_id(Some(&event.id)));
        }
        if !self.carries_type(event.type_id) {
            let allowed: Vec<&str> = schema
                .types()
                .iter()
                .enumerate()
                .filter(|(i, _)| self.types.as_ref().is_some_and(|t| t[*i]))
                .map(|(_, t)| t.name.as_str())
                .collect();
            return Err(Rejection::at(
                Reason::NotAllowed,
                "type",
                format!(
                    "topic {:?} may not carry events of type {} (it carries {})",
                    self.topic,
                    schema.event_type(event.type_id).name,
                    allowed.join(", ")
                ),
            )
            .with_event_id(Some(&event.id)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    fn schema() -> Schema {
        Plan::ome()
            .unwrap_or_else(|e| panic!("the Ome plan: {e:?}"))
            .schema
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn event(schema: &Schema, source: &str, type_name: &str) -> Event {
        Event {
            id: "e-1".into(),
            source: source.into(),
            type_id: schema
                .type_id(type_name)
                .unwrap_or_else(|| panic!("{type_name}")),
            occurred_at: mieruka_ingest::Timestamp::from_micros(0),
            data: Vec::new(),
            voids: None,
        }
    }

    #[test]
    fn a_topic_carries_only_its_sources_and_types() {
        let schema = schema();
        let allow = TopicAllow::new(
            &schema,
            "mieruka.events",
            &strings(&["konbini", "card"]),
            &strings(&["certificate.issued", "event.voided"]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            allow.check(&schema, &event(&schema, "card", "certificate.issued")),
            Ok(())
        );
        let r = allow
            .check(&schema, &event(&schema, "office", "certificate.issued"))
            .unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref(), r.event_id.as_deref()),
            (Reason::NotAllowed, Some("source"), Some("e-1"))
        );
        assert_eq!(
            r.message,
            "topic \"mieruka.events\" may not carry source \"office\" (it carries card, konbini)"
        );
        let r = allow
            .check(&schema, &event(&schema, "konbini", "paper.purchased"))
            .unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::NotAllowed, Some("type"))
        );
        assert_eq!(
            r.message,
            "topic \"mieruka.events\" may not carry events of type paper.purchased (it carries \
             certificate.issued, event.voided)"
        );
    }

    #[test]
    fn a_topic_that_lists_no_types_carries_every_type_of_the_plan() {
        let schema = schema();
        let allow = TopicAllow::new(&schema, "t", &strings(&["office"]), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        for ty in schema.types() {
            assert_eq!(
                allow.check(&schema, &event(&schema, "office", &ty.name)),
                Ok(())
            );
        }
        assert_eq!(allow.single_source(), Some("office"));
    }

    #[test]
    fn a_list_with_a_type_the_plan_does_not_declare_or_no_source_is_refused() {
        let schema = schema();
        let e = TopicAllow::new(
            &schema,
            "t",
            &strings(&["konbini"]),
            &strings(&["certificate.isued"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("topic \"t\": type \"certificate.isued\" is not an event type of the plan; the plan declares: ")
                && e.contains("certificate.issued"),
            "{e}"
        );
        let e = TopicAllow::new(&schema, "t", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lists no sources"), "{e}");
    }
}
