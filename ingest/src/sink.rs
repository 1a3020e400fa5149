//! The `EventSink` trait: what every source (HTTP, file import, Kafka) writes to.

use std::future::Future;
use std::sync::Arc;

use crate::event::Event;
use crate::reject::{Reason, Rejection};
use crate::schema::Schema;

/// Where an item sat in what its source received, so a person can find it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// Index in an HTTP request body (0-based).
    Index(usize),
    /// Line (1-based) in an imported file.
    Line { file: String, line: u64 },
    /// A Kafka message.
    Offset {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Index(i) => write!(f, "index {i}"),
            Position::Line { file, line } => write!(f, "{file}:{line}"),
            Position::Offset {
                topic,
                partition,
                offset,
            } => {
                write!(f, "{topic}/{partition}@{offset}")
            }
        }
    }
}

/// One received event: decoded, or rejected with the (masked) raw text kept.
#[derive(Clone, Debug)]
pub struct Item {
    /// Where it came from.
    pub position: Position,
    /// The decoded event, or why it was refused before reaching the sink. Shared: a
    /// store's event log keeps the same event without copying it.
    pub outcome: Result<Arc<Event>, Rejection>,
    /// The raw text, masked by the guard; kept for rejected events only.
    pub raw_masked: Option<String>,
    /// Whether the guard changed anything in `raw_masked` (then it is not the bytes as
    /// received, and only it may leave the process).
    pub raw_was_masked: bool,
    /// The configured source label for metrics (never taken from request data).
    pub source_label: crate::IdText,
}

impl Item {
    /// Refuses the item for `rejection`, keeping its raw text masked.
    pub fn refuse(&mut self, raw: &[u8], rejection: Rejection) {
        let (text, masked) = crate::mask_raw_reporting(raw);
        self.raw_masked = Some(text);
        self.raw_was_masked = masked;
        self.outcome = Err(rejection);
    }

    /// What a sender may send, for an accepted item: refused as `not_allowed` when its
    /// source is not among `sources` (`None`: any source) or its type not among `types`
    /// (empty: any type), naming `sender` (e.g. `token "konbini"`); else labelled with its
    /// source. The HTTP receiver's tokens and the inboxes both decide here.
    pub fn authorise(
        &mut self,
        raw: &[u8],
        schema: &Schema,
        sender: (&str, &str),
        (sources, types): (Option<&[String]>, &[String]),
    ) {
        let Ok(event) = &self.outcome else {
            return;
        };
        let (kind, name) = sender;
        let type_name = &schema.event_type(event.type_id).name;
        let (field, message) =
            if sources.is_some_and(|s| !s.iter().any(|allowed| *allowed == event.source)) {
                (
                    "source",
                    format!("{kind} {name:?} may not send source {:?}", event.source),
                )
            } else if !types.is_empty() && !types.contains(type_name) {
                (
                    "type",
                    format!("{kind} {name:?} may not send events of type {type_name}"),
                )
            } else {
                self.source_label = event.source.clone();
                return;
            };
        let r = Rejection::at(Reason::NotAllowed, field, message).with_event_id(Some(&event.id));
        self.refuse(raw, r);
    }
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Counted.
    Accepted,
    /// Already counted before: same source, id and body.
    Duplicate,
    /// Refused, with the reason.
    Rejected(Rejection),
}

/// Why a sink could not take a batch. Nothing of the batch is durable when this is
/// returned, so the caller may retry the whole batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store or broker is unreachable or overloaded: retry later.
    #[error("sink unavailable: {0}")]
    Unavailable(String),
    /// A bug or misconfiguration: retrying will not help.
    #[error("sink failed: {0}")]
    Fatal(String),
}

/// A destination for batches of events. A batch is durable when `submit` returns `Ok`.
pub trait EventSink: Send + Sync {
    /// Makes the batch durable and reports each item's fate, in order.
    fn submit(
        &self,
        items: Vec<Item>,
    ) -> impl Future<Output = Result<Vec<Status>, SinkError>> + Send;
}
