//! mieruka's edge: the event contract (envelope and typed payloads), validation against
//! the event types a plan declares, the personal-number guard, and the sources that
//! receive events (file import; the HTTP receiver lives in the binary's wiring).
//!
//! This crate never knows about KPIs, and never lets a personal number through: a
//! payload that holds one is rejected with the JSON path of the field, and the value is
//! neither logged nor stored.

pub mod event;
pub mod guard;
pub mod http;
pub mod import;
pub mod kafka;
pub mod reject;
pub mod schema;
pub mod sink;
pub mod timestamp;

pub use event::{decode, Event, Value};
pub use reject::{Reason, Rejection};
pub use schema::{EventType, EventTypeDecl, FieldKind, Schema, TypeId};
pub use sink::{EventSink, Item, Position, SinkError, Status};
pub use timestamp::Timestamp;

/// Decodes one raw event into an [`Item`], masking the raw text when it is rejected.
pub fn item(schema: &Schema, raw: &[u8], position: Position, source_label: &str) -> Item {
    let outcome = decode(schema, raw).map(std::sync::Arc::new);
    let raw_masked = outcome.is_err().then(|| mask_raw(raw));
    Item {
        position,
        outcome,
        raw_masked,
        source_label: source_label.to_owned(),
    }
}

/// The raw text of a rejected event as it may be stored: personal numbers masked, and
/// withheld altogether when one hides behind JSON escapes the mask cannot see.
pub fn mask_raw(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let masked = guard::mask(&text);
    if masked.contains("\\u") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) {
            if guard::find_in_value(&v).is_some() && masked == text {
                return "[withheld: a personal number hidden behind JSON escapes]".to_owned();
            }
        }
    }
    masked
}
