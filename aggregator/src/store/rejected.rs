//! The `rejected` table's rows, shared by both dialects: what a refused item keeps, how a
//! kept row reads back, and how `mieruka rejected` selects and sums them up.

use mieruka_ingest::{Position, Rejection};
use sqlx::{Database, QueryBuilder};

use crate::store::row::{ReadError, ReadRow};
use crate::store::RejectedRow;

/// The columns [`read_rejected`] reads, in its order (a dialect may select more after
/// them).
pub(crate) const REJECTED_COLUMNS: &str =
    "source, position, event_id, reason, field, message, raw, received_at";

/// A refused item as the `rejected` table keeps it.
pub(crate) struct RejectedItem {
    pub source_label: mieruka_ingest::IdText,
    pub position: Position,
    pub rejection: Rejection,
    /// The raw text, masked by the guard (or the event's canonical JSON).
    pub raw: String,
}

impl RejectedItem {
    /// The event id the table shows: the rejection carries it only when the id itself
    /// passed the guard (also for a `personal_number` found elsewhere in the event), so a
    /// personal number never reaches the table unmasked.
    pub fn shown_event_id(&self) -> Option<&str> {
        self.rejection.event_id.as_deref()
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
        received_at_micros: r.int8(7)?,
    })
}

/// Which kept rejections to read: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RejectedFilter {
    /// The configured source label (`unknown` for events of no configured source).
    pub source: Option<String>,
    /// The reason code (`out_of_bounds`, …).
    pub reason: Option<String>,
    /// Received at or after this instant, in microseconds since the Unix epoch.
    pub since_micros: Option<i64>,
}

impl RejectedFilter {
    /// Appends ` WHERE …` for the conditions given (nothing when there are none), with
    /// bound values: the same text serves both dialects, whose placeholders the builder
    /// writes.
    pub(crate) fn push_where<'a, DB>(&'a self, qb: &mut QueryBuilder<'a, DB>)
    where
        DB: Database,
        &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        let mut and = " WHERE ";
        if let Some(source) = &self.source {
            qb.push(and).push("source = ").push_bind(source.as_str());
            and = " AND ";
        }
        if let Some(reason) = &self.reason {
            qb.push(and).push("reason = ").push_bind(reason.as_str());
            and = " AND ";
        }
        if let Some(since) = self.since_micros {
            qb.push(and).push("received_at >= ").push_bind(since);
        }
    }

    /// The newest rows that match, newest first.
    pub(crate) fn rows_query<'a, DB>(
        &'a self,
        extra_columns: &str,
        limit: i64,
    ) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {REJECTED_COLUMNS}{extra_columns} FROM rejected"
        ));
        self.push_where(&mut qb);
        qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        qb
    }

    /// How many rows match, by source and reason, the largest first.
    pub(crate) fn summary_query<'a, DB>(&'a self) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        let mut qb = QueryBuilder::new(
            "SELECT source, reason, count(*) AS n, min(received_at), max(received_at) FROM rejected",
        );
        self.push_where(&mut qb);
        qb.push(" GROUP BY source, reason ORDER BY n DESC, source, reason");
        qb
    }
}

/// The kept rejections of one source and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedCount {
    /// The configured source label.
    pub source: String,
    /// The reason code.
    pub reason: String,
    /// How many rows.
    pub count: i64,
    /// When the first and the last of them were received (microseconds since the epoch).
    pub first_micros: i64,
    /// See `first_micros`.
    pub last_micros: i64,
}

/// A row of [`RejectedFilter::summary_query`].
pub(crate) fn read_count(r: &impl ReadRow) -> Result<RejectedCount, ReadError> {
    Ok(RejectedCount {
        source: r.text(0)?.to_owned(),
        reason: r.text(1)?.to_owned(),
        count: r.int8(2)?,
        first_micros: r.int8(3)?,
        last_micros: r.int8(4)?,
    })
}
