//! mieruka's heart: the plan model and its file format, the fiscal calendar, the pure
//! KPI engine (events → measures → KPI figures), and the store that keeps aggregates,
//! the event log and the effectively-once bookkeeping.
//!
//! The engine never reads the wall clock and does no I/O: it takes events and a `now`
//! and returns figures, so every rule of docs/architecture.md is tested without a database.

pub mod close;
pub mod consumer;
pub mod engine;
pub mod explain;
pub mod figures;
pub mod fiscal;
pub mod ledger;
pub mod plan;
pub mod replay;
pub mod topic_allow;

pub use close::{ClosedYear, Closes, Finality};
pub use engine::{fold, fold_tracked, BatchLog, Engine, EventLog, LogEntry, MemoryLog};
pub use figures::{figures, Figure};
pub use fiscal::{Day, FiscalYear};
pub use ledger::{AsOf, Effect, Ledger, PerDay};
pub use plan::{
    Direction, Kpi, KpiId, KpiKind, Measure, MeasureId, MeasureKind, Plan, PlanError, PlanErrors,
    Revision, RevisionStep,
};
pub mod store;
pub use store::{RejectedRow, SqliteStore, StoreError};
