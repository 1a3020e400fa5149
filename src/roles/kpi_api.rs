//! `GET /v1/kpis/<id>?fy=YEAR[&as_of=YYYY-MM-DD]`: a KPI's explanation as JSON, for the
//! status page and scripts — the body `mieruka explain --json` prints, built by the same
//! function ([`mieruka_aggregator::explain::explain`]) from the role's own store.
//!
//! Unlike `/metrics`, this is computed per request: it reads the KPI's events back from
//! the log (page by page), so it costs a scan of those events and is meant for people
//! and scripts, not for scrapes.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mieruka_aggregator::explain::{explain, ExplainError, Explanation, Request};
use mieruka_aggregator::store::{PgStore, Store};
use mieruka_aggregator::{Day, FiscalYear, Plan, SqliteStore};
use mieruka_exporter::current_year;
use mieruka_exporter::kpi_explain::{ExplainFuture, Explainer};
use mieruka_ingest::Timestamp;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::Clock;

/// The store a role explains from.
pub enum Stores {
    /// `standalone`: its open SQLite store.
    Sqlite(Arc<SqliteStore>),
    /// `export`: PostgreSQL, connected at the first request (the role itself starts
    /// while the database may still be down) and kept; boxed, as a store is large.
    Pg {
        url: String,
        plan: Arc<Plan>,
        store: Box<OnceCell<PgStore>>,
    },
}

/// What the route needs: the store and the role's clock.
pub struct KpiApi {
    stores: Stores,
    clock: Clock,
}

impl KpiApi {
    /// The API over `stores`, computing figures at `clock`'s now.
    pub fn new(stores: Stores, clock: Clock) -> Arc<KpiApi> {
        Arc::new(KpiApi { stores, clock })
    }

    async fn explain(&self, req: &Request) -> Result<Explanation, (StatusCode, String)> {
        match &self.stores {
            Stores::Sqlite(s) => answer(&**s, req).await,
            Stores::Pg { url, plan, store } => {
                let s = store
                    .get_or_try_init(|| PgStore::open(url, plan.clone()))
                    .await
                    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                answer(s, req).await
            }
        }
    }
}

async fn answer<S: Store>(s: &S, req: &Request) -> Result<Explanation, (StatusCode, String)> {
    explain(s, req).await.map_err(|e| {
        let status = match &e {
            ExplainError::UnknownKpi(..) => StatusCode::NOT_FOUND,
            ExplainError::Year(..) | ExplainError::Future(..) => StatusCode::BAD_REQUEST,
            ExplainError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, e.to_string())
    })
}

/// The explanation on each KPI's page (`GET /kpi/<id>`): the route's answer for the
/// year the page shows, at the instant of the snapshot the page's figures come from.
pub struct PageExplainer {
    /// The route's store and clock.
    pub api: Arc<KpiApi>,
    /// The plan, for the year a page shows.
    pub plan: Arc<Plan>,
}

impl Explainer for PageExplainer {
    fn explain(&self, kpi: &str, now: Timestamp) -> ExplainFuture {
        let api = self.api.clone();
        let req = Request {
            kpi: kpi.to_owned(),
            year: Some(current_year(&self.plan, now)),
            as_of: None,
            now,
        };
        Box::pin(async move { api.explain(&req).await.map_err(|(_, e)| e) })
    }
}

/// The query string: both optional, read as text so that a bad one is named.
#[derive(Deserialize, Debug)]
struct Params {
    fy: Option<String>,
    as_of: Option<String>,
}

/// The route `GET /v1/kpis/{id}`.
pub fn router(api: Arc<KpiApi>) -> Router {
    Router::new()
        .route("/v1/kpis/{id}", get(kpi))
        .with_state(api)
}

async fn kpi(
    State(api): State<Arc<KpiApi>>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let year = match q.fy.as_deref().map(str::parse::<i32>).transpose() {
        Ok(y) => y.map(FiscalYear),
        Err(_) => {
            return (StatusCode::BAD_REQUEST, "fy: expected a year such as 2026").into_response()
        }
    };
    let as_of = match q.as_of.as_deref().map(str::parse::<Day>).transpose() {
        Ok(d) => d,
        Err(_) => {
            return (StatusCode::BAD_REQUEST, "as_of: expected a date YYYY-MM-DD").into_response()
        }
    };
    let req = Request {
        kpi: id,
        year,
        as_of,
        now: api.clock.now(),
    };
    match api.explain(&req).await {
        Ok(e) => Json(e).into_response(),
        Err(r) => r.into_response(),
    }
}
