//! mieruka's edge: the event contract (envelope and typed payloads), validation against
//! the event types a plan declares, the personal-number guard, and the sources that
//! receive events (file import; the HTTP receiver lives in the binary's wiring).
//!
//! This crate never knows about KPIs, and never lets a personal number through: a
//! payload that holds one is rejected with the JSON path of the field, and the value is
//! neither logged nor stored.

pub mod contract;
pub mod event;
pub mod frame;
pub mod guard;
#[cfg(feature = "http")]
pub mod http;
pub mod import;
pub mod json;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod reject;
pub mod schema;
pub mod sink;
mod swar;
pub mod timestamp;

pub use event::{decode, decode_logged, Event, IdText, Value};
pub use reject::{Reason, Rejection};
pub use schema::{EventType, EventTypeDecl, FieldKind, Schema, TimeWindow, TypeId};
pub use sink::{EventSink, Item, Position, SinkError, Status};
pub use timestamp::Timestamp;

/// The source label of an event whose source is not one the configuration names (or
/// cannot be read): metrics labels come from configuration, never from request data.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// Most bytes of a rejected event's raw text that are kept (in the `rejected` table, a
/// dead letter, a reply): enough for any real event many times over; a hostile
/// megabyte line is kept cut, with a note saying how long it was.
pub const MAX_RAW_KEPT: usize = 64 * 1024;

/// Decodes one raw event into an [`Item`], masking the raw text when it is rejected.
pub fn item(schema: &Schema, raw: &[u8], position: Position, source_label: &str) -> Item {
    let outcome = decode(schema, raw).map(std::sync::Arc::new);
    let (raw_masked, raw_was_masked) = match outcome {
        Ok(_) => (None, false),
        Err(_) => {
            let (text, masked) = mask_raw_reporting(raw);
            (Some(text), masked)
        }
    };
    Item {
        position,
        outcome,
        raw_masked,
        raw_was_masked,
        source_label: source_label.into(),
    }
}

/// The raw text of a rejected event as it may be kept: every personal number the guard
/// finds masked ([`guard::mask_raw`]), cut to [`MAX_RAW_KEPT`] bytes — and the part kept
/// masked again, as a cut inside a longer digit run (or a number's exponent) can leave
/// a personal number.
pub fn mask_raw(raw: &[u8]) -> String {
    mask_raw_reporting(raw).0
}

/// [`mask_raw`], and whether the guard changed anything (the text is then not the bytes
/// as received).
pub fn mask_raw_reporting(raw: &[u8]) -> (String, bool) {
    let masked = guard::mask_raw(raw);
    let changed = masked != String::from_utf8_lossy(raw);
    if masked.len() <= MAX_RAW_KEPT {
        return (masked, changed);
    }
    let mut cut = MAX_RAW_KEPT;
    while !masked.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut kept = guard::mask_raw(&masked.as_bytes()[..cut]);
    kept.push_str(&format!("… [cut: {} bytes in all]", masked.len()));
    (kept, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_raw_text_keeps_no_personal_number_the_cut_made() {
        // 123456789018 is valid: the 13-digit run is not a personal number, the 12
        // digits the cut leaves of it are.
        let mut raw = vec![b'.'; MAX_RAW_KEPT - 12];
        raw.extend_from_slice(b"1234567890185 and more");
        assert!(!guard::contains(&String::from_utf8_lossy(&raw)));
        let kept = mask_raw(&raw);
        assert!(
            kept.contains("************… [cut: 65546 bytes in all]"),
            "{}",
            &kept[65500..]
        );
        assert!(!guard::contains(&kept));
    }
}
