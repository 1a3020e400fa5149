//! The `rejected` table's rows, shared by both dialects: what a refused item keeps, and
//! how a kept row reads back.

use mieruka_ingest::{Position, Reason, Rejection};

use crate::store::row::{ReadError, ReadRow};
use crate::store::RejectedRow;

/// The columns [`read_rejected`] reads, in its order (a dialect may select more after
/// them).
pub(crate) const REJECTED_COLUMNS: &str = "source, position, event_id, reason, field, message, raw";

/// A refused item as the `rejected` table keeps it.
pub(crate) struct RejectedItem {
    pub source_label: String,
    pub position: Position,
    pub rejection: Rejection,
    /// The raw text, masked by the guard (or the event's canonical JSON).
    pub raw: String,
}

impl RejectedItem {
    /// The event id the table shows: only when the event passed the guard (the
    /// rejection carries it then); a personal number never reaches the table unmasked.
    pub fn shown_event_id(&self) -> Option<&str> {
        let r = &self.rejection;
        (r.reason != Reason::PersonalNumber)
            .then_some(r.event_id.as_deref())
            .flatten()
    }
}

/// A row of [`REJECTED_COLUMNS`].
pub(crate) fn read_rejected(r: &impl ReadRow) -> Result<RejectedRow, ReadError> {
    Ok(RejectedRow {
        source: r.text(0)?.to_owned(),
        position: r.text(1)?.to_owned(),
        event_id: r.opt_text(2)?.map(str::to_owned),
        reason: r.text(3)?.to_owned(),
        field: r.opt_text(4)?.map(str::to_owned),
        message: r.text(5)?.to_owned(),
        raw: r.text(6)?.to_owned(),
    })
}
