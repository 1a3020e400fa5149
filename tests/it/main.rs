//! End-to-end tests of the `mieruka` binary: the real process, on a temporary SQLite
//! file, driven over HTTP on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod bad_input;
mod browser;
mod calendar;
mod close;
mod contract;
mod crash;
mod explain;
mod freshness;
mod guard;
mod healthy_pipeline;
mod helpers;
mod import;
mod import_kafka;
mod import_xlsx;
mod inbox;
mod kafka;
mod keys;
mod logs;
mod operator;
mod personal;
mod plan;
mod prometheus;
mod replay;
mod report;
mod revisions;
mod standalone;
mod status_label;
mod tls;
