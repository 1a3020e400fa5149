//! The exporter as Prometheus, a probe and a person see it: the KPI exposition of the
//! Ome plan, the health metrics, the HTTP routes and the status page.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod exposition;
mod health;
mod helpers;
mod kpis;
mod routes;
mod status_page;
mod trend;
