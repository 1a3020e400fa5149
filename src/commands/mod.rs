//! The commands that are not long-running roles: each a function `main` dispatches to,
//! taking the [`Resolved`](crate::config::Resolved) settings (or the config, for what
//! only it holds) and returning the process's exit code.
//!
//! - [`demo`]: generate a synthetic history, ingest it, serve it like `standalone`.
//! - [`import`]: NDJSON and CSV files into the embedded store.
//! - [`rejected`]: the rejected events kept in a store (SQLite or PostgreSQL), filtered and summed up.
//! - [`explain`]: why a KPI's value is what it is, from either store.
//! - [`report`]: the council report (進捗報告) as HTML, PDF, xlsx or CSV.
//! - [`close`]: `close-year` / `reopen-year`, the fiscal-year close (確定値).
//! - [`replay`]: re-fold the event log with the current plan, compare, `--apply` to rebuild.
//! - [`plan`]: `plan check`, the one gate a plan file goes through.
//! - [`generate`]: Prometheus rules and Grafana dashboards from the plan.
//! - [`schema`]: the vendor contract (JSON Schemas, OpenAPI, events.md) from the plan.
//! - [`token`]: `token new`, a line system's key and its config entry.

pub mod close;
pub mod demo;
pub mod explain;
pub mod generate;
pub mod import;
pub mod plan;
pub mod rejected;
pub mod replay;
pub mod report;
pub mod schema;
pub mod token;

/// The SQLite file of `settings`, which a command that only reads must find: it is not
/// created (opening would make an empty store and report nothing).
pub fn existing_db(settings: &crate::config::Resolved) -> anyhow::Result<&std::path::Path> {
    let db = &settings.db;
    if !db.exists() {
        anyhow::bail!(
            "no store at {} (pass --db, or --database-url for PostgreSQL)",
            db.display()
        );
    }
    Ok(db)
}
