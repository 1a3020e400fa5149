//! The `mieruka` binary's library: config and its precedence, the roles, the commands and
//! the demo generator. The pipeline's logic lives in the workspace crates (`ingest/`,
//! `aggregator/`, `exporter/`); this crate only puts them together, and only `main`
//! knows about signals. `docs/architecture.md` walks through the whole.

pub mod commands;
pub mod config;
pub mod demo;
pub mod events_doc;
pub mod process;
pub mod roles;
