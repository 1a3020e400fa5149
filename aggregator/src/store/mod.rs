//! The stores: the event log, the aggregates and the rejected events, durable. Two
//! dialects keep the same tables with the same guarantees — SQLite ([`SqliteStore`],
//! the embedded default) and PostgreSQL ([`PgStore`], shared by replicas) — behind one
//! interface, [`Store`].
//!
//! What the dialects share lives here: the description of the aggregate tables and
//! how a ledger row maps to a table row and back (`tables`), the decoding of rejected
//! rows. What differs stays in each dialect: placeholders, upsert and locking syntax,
//! how summed amounts are typed (TEXT in SQLite, NUMERIC in PostgreSQL), how a batch
//! is made exactly-once against other writers.
//!
//! A store never decides what an event means: the engine folds, the store makes the
//! fold durable.

use std::future::Future;
use std::sync::Arc;

use mieruka_ingest::{Item, SinkError, Status, Timestamp};

use crate::close::{
    CloseRefusal, CloseRequest, ClosedYear, Closes, LateEvents, LateQuery, Reopened,
};
use crate::ledger::Ledger;
use crate::plan::Plan;
use crate::replay::Outcome;

pub(crate) mod close;
mod duplicates;
mod fingerprints;
mod freshness;
pub mod pg;
mod rejected;
mod row;
pub mod scan;
pub mod sqlite;
mod tables;

pub use fingerprints::PlanCheck;
pub use freshness::SourceFreshness;
pub use pg::{KafkaOffset, PgError, PgStore, SourcePosition, NOTIFY_CHANNEL};
pub use rejected::{RejectedCount, RejectedFilter};
pub use scan::{LogScan, OnEntry};
pub use sqlite::{SqliteStore, StoreError};

/// What every store offers: open, fold batches in exactly once, read the ledger and the
/// rejected events back, close. The dialects add their own (the SQLite store's
/// `with_ledger`, the PostgreSQL store's source positions).
///
/// The methods mirror each store's inherent ones, so callers that name a concrete store
/// need not import this trait.
pub trait Store: Send + Sync + Sized {
    /// Why the store failed; every error means nothing of the batch was committed.
    type Error: std::error::Error + Into<SinkError> + Send + Sync + 'static;
    /// Where the store lives: a file path for SQLite, a URL for PostgreSQL.
    type Location: ?Sized + Sync;

    /// Opens the store at `location` (creating and migrating it as needed).
    fn open(
        location: &Self::Location,
        plan: Arc<Plan>,
    ) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Opens the store, comparing the plan's measure fingerprints with the store's
    /// (`PlanCheck::Refuse`, what `open` does) or not (`Ignore`: a replay).
    fn open_with(
        location: &Self::Location,
        plan: Arc<Plan>,
        check: PlanCheck,
    ) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// The plan the store folds with.
    fn plan(&self) -> &Arc<Plan>;

    /// Re-folds the whole event log with the store's plan and compares the result with
    /// the live aggregates at `now`; with `apply`, swaps it in and records the plan's
    /// measure fingerprints, in one transaction.
    fn replay(
        &self,
        apply: bool,
        now: Timestamp,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;

    /// A copy of the whole ledger as committed.
    fn ledger(&self) -> impl Future<Output = Result<Ledger, Self::Error>> + Send;

    /// Makes a batch durable; reports each item's fate in order.
    fn submit_batch(
        &self,
        items: Vec<Item>,
    ) -> impl Future<Output = Result<Vec<Status>, Self::Error>> + Send;

    /// The most recent rejected events, newest first.
    fn rejected(
        &self,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RejectedRow>, Self::Error>> + Send;

    /// Declares the sources a role's configuration knows: from now on their arrivals
    /// are kept, and a source never heard from counts its silence from now.
    fn declare_sources(
        &self,
        sources: &[String],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// When each declared source was last heard from, by source.
    fn freshness(&self) -> impl Future<Output = Result<Vec<SourceFreshness>, Self::Error>> + Send;

    /// The most recent rejected events that match `filter`, newest first.
    fn rejected_matching(
        &self,
        filter: &RejectedFilter,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RejectedRow>, Self::Error>> + Send;

    /// How many rejected events match `filter`, by source and reason.
    fn rejected_summary(
        &self,
        filter: &RejectedFilter,
    ) -> impl Future<Output = Result<Vec<RejectedCount>, Self::Error>> + Send;

    /// Reads back, page by page (memory stays flat in the size of the log), every
    /// logged event of `scan.types` that occurred before `scan.before`, voided or not,
    /// handing each to `each`; returns how many rows no longer decode under the plan
    /// (they are left out, and counted so that a caller can say so).
    fn scan_log(
        &self,
        scan: LogScan<'_>,
        each: OnEntry<'_>,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Number of events in the log.
    fn logged_events(&self) -> impl Future<Output = Result<i64, Self::Error>> + Send;

    /// Each closed year's final figures re-derived from the events received by its
    /// close: where they differ from the frozen ones (`mieruka replay` reports them).
    fn rederive_closes(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::replay::Difference>, Self::Error>> + Send;

    /// Every closed fiscal year with its final figures.
    fn closes(&self) -> impl Future<Output = Result<Closes, Self::Error>> + Send;

    /// Closes a fiscal year: freezes its figures as final, under the lock every batch
    /// takes (see [`crate::close`]); refused for a year not ended or already closed.
    fn close_year(
        &self,
        req: &CloseRequest,
    ) -> impl Future<Output = Result<Result<ClosedYear, CloseRefusal>, Self::Error>> + Send;

    /// Removes a fiscal year's close and logs it; refused for a year not closed.
    fn reopen_year(
        &self,
        req: &CloseRequest,
    ) -> impl Future<Output = Result<Result<Reopened, CloseRefusal>, Self::Error>> + Send;

    /// The events and voids that arrived after a close (the adjustments `explain` lists).
    fn late_events(
        &self,
        q: &LateQuery<'_>,
    ) -> impl Future<Output = Result<LateEvents, Self::Error>> + Send;

    /// How many duplicates (same key, same body) of events feeding `measure` (its id)
    /// that occurred on days `from..=to` the store has seen. An audit counter: the log
    /// keeps no duplicates, so a replay leaves it as it is.
    fn duplicates_seen(
        &self,
        measure: &str,
        from: crate::fiscal::Day,
        to: crate::fiscal::Day,
    ) -> impl Future<Output = Result<i64, Self::Error>> + Send;

    /// Whether the database answers.
    fn ping(&self) -> impl Future<Output = bool> + Send;

    /// Closes the store's connections.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// A rejected event as kept in the store.
#[derive(Clone, Debug)]
pub struct RejectedRow {
    pub source: String,
    pub position: String,
    pub event_id: Option<String>,
    pub reason: String,
    pub field: Option<String>,
    pub message: String,
    pub raw: String,
    /// When it was received, in microseconds since the Unix epoch.
    pub received_at_micros: i64,
}

/// A summed amount as the stores keep it (decimal text), back to an i128.
pub(crate) fn parse_amount(column: &str, text: &str) -> Result<i128, String> {
    text.parse()
        .map_err(|_| format!("{column} holds {text:?}, which is not a decimal integer within i128"))
}
