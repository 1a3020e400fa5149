//! The commands that are not long-running roles: each a function `main` dispatches to,
//! taking the [`Resolved`](crate::config::Resolved) settings (or the config, for what
//! only it holds) and returning the process's exit code.
//!
//! - [`demo`]: generate a synthetic history, ingest it, serve it like `standalone`.
//! - [`import`]: NDJSON and CSV files into the embedded store.
//! - [`rejected`]: the rejected events kept in a store (SQLite or PostgreSQL), filtered and summed up.
//! - [`replay`]: re-fold the event log with the current plan, compare, `--apply` to rebuild.
//! - [`plan`]: `plan check`, the one gate a plan file goes through.
//! - [`generate`]: Prometheus rules and Grafana dashboards from the plan.

pub mod demo;
pub mod generate;
pub mod import;
pub mod plan;
pub mod rejected;
pub mod replay;
