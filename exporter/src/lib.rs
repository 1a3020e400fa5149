//! mieruka's window: it owns what Prometheus scrapes (`/metrics`: the plan's KPI
//! figures and the pipeline's health), the liveness and readiness probes, and the
//! bilingual status page. The KPI part of `/metrics` and the status page are rendered
//! once per published snapshot and served as cached text. It also knows the office
//! calendars (`calendar`): when each scheduled source's next arrival is due, computed
//! at each arrival, never at scrape.
//!
//! It must never compute on the scrape path (a scrape only copies cached text and reads
//! a few counters, so it stays well under 5 ms for the whole plan), and it must never
//! take a label value from request data: `kpi`, `chapter` and the names come from the
//! plan file, `reason` from the closed list of rejection reasons, and `source` from the
//! configured sources, anything else being counted as `unknown`.

mod access;
pub mod calendar;
mod exporter;
pub mod feeds;
mod health;
mod http;
pub mod kpi_explain;
mod kpi_page;
mod kpis;
pub mod precision;
pub mod report;
pub mod revisions;
pub mod status;
mod status_page;
pub mod trend;
pub mod wareki;

pub use access::Access;
pub use exporter::Exporter;
pub use health::{Health, InboxLast, Role, UNKNOWN_SOURCE};
pub use http::{router, METRICS_CONTENT_TYPE};
pub use kpi_page::{render_kpi_page, render_kpi_page_with, PageExtras};
pub use kpis::render_kpis;
pub use status_page::{
    current_year, render_status_page, render_status_page_full, render_status_page_with,
    render_status_page_with_inboxes,
};

pub mod dashboards;
pub mod rules;
