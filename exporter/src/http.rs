//! The exporter's HTTP routes. Every handler but one serves what was prepared
//! beforehand: none of them computes a figure, and none reads anything from the request
//! but the KPI id of `/kpi/<id>`. That page, where the role holds a store, carries the
//! figure's explanation, read from the store at the first request after each publish
//! (see [`Exporter::kpi_page_explained`]); `/metrics` never waits for it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::exporter::Exporter;

/// The `Content-Type` of `/metrics`: Prometheus text exposition format 0.0.4.
///
/// The charset is said because the KPI names in `mieruka_kpi_info` are Japanese.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes: `GET /metrics`, `GET /healthz`, `GET /readyz`, the status page `GET /`
/// and each KPI's page `GET /kpi/<id>`.
pub fn router(exporter: Arc<Exporter>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/kpi/{id}", get(kpi_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(exporter)
}

async fn metrics(State(exporter): State<Arc<Exporter>>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        exporter.render_metrics(),
    )
        .into_response()
}

/// Liveness: the process answers. It says nothing about the store or the snapshot, so
/// an orchestrator does not restart an exporter that is serving stale values on purpose.
async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(exporter): State<Arc<Exporter>>) -> Response {
    match exporter.readiness() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn status_page(State(exporter): State<Arc<Exporter>>) -> Html<String> {
    Html(exporter.status_page())
}

async fn kpi_page(State(exporter): State<Arc<Exporter>>, Path(id): Path<String>) -> Response {
    match exporter.kpi_page_explained(&id).await {
        Some(page) => Html(page).into_response(),
        None => (StatusCode::NOT_FOUND, "no such KPI, or no snapshot yet").into_response(),
    }
}
