//! The `export` role: `/metrics`, health and the status page, served from PostgreSQL.
//!
//! The snapshot is recomputed on an interval and whenever an aggregator commits (a
//! `NOTIFY mieruka_committed` in its transaction), so several aggregators and exporters
//! run side by side. While PostgreSQL is down the role keeps serving the last snapshot
//! and `mieruka_snapshot_age_seconds` says how old it is; it reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use mieruka_aggregator::store::{PgError, PgStore, NOTIFY_CHANNEL};
use mieruka_aggregator::{figures, Plan};
use mieruka_exporter::trend::trends;
use mieruka_exporter::{Exporter, Role};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{Clock, Socket};
use crate::config::Resolved;

/// What the refresher needs.
#[derive(Clone, Debug)]
struct ExportSettings {
    database_url: String,
    /// The sources this role's configuration knows (declared in the store at connect).
    sources: Vec<String>,
    /// Refresh interval while no commit is notified.
    refresh: Duration,
    now: Option<mieruka_ingest::Timestamp>,
}

/// The built export role.
pub struct ExportRole {
    socket: Socket,
    idle_timeout: Duration,
    exporter: Arc<Exporter>,
    plan: Arc<Plan>,
    settings: ExportSettings,
}

impl ExportRole {
    /// Binds the socket. The database is reached in `run` (and retried), so the role
    /// starts, and answers `/healthz`, even while PostgreSQL is still coming up.
    pub async fn build(resolved: &Resolved) -> anyhow::Result<ExportRole> {
        let settings = ExportSettings {
            database_url: resolved.database_url()?.to_owned(),
            sources: resolved.sources.clone(),
            refresh: resolved.refresh,
            now: resolved.now,
        };
        let plan = resolved.plan.clone();
        let exporter = Exporter::for_role(plan.clone(), resolved.sources.clone(), Role::Export);
        exporter.health().set_schedules(resolved.schedules.clone());
        exporter.set_source_directory(resolved.directory.clone());
        let socket = Socket::bind(resolved).await?;
        Ok(ExportRole {
            socket,
            idle_timeout: resolved.idle_timeout,
            exporter,
            plan,
            settings,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let ExportRole {
            socket,
            idle_timeout,
            exporter,
            plan,
            settings,
        } = self;
        let refresher = tokio::spawn(refresh_loop(
            plan.clone(),
            exporter.clone(),
            settings.clone(),
            shutdown.clone(),
        ));
        let api = super::kpi_api::KpiApi::new(
            super::kpi_api::Stores::Pg {
                url: settings.database_url.clone(),
                plan: plan.clone(),
                store: Box::default(),
            },
            Clock(settings.now),
        );
        exporter.set_explainer(Arc::new(super::kpi_api::PageExplainer {
            api: api.clone(),
            plan: plan.clone(),
        }));
        let app = mieruka_exporter::router(exporter)
            .merge(super::kpi_api::router(api))
            .merge(super::contract_router(&plan));
        tracing::info!(addr = %socket.local_addr()?, tls = socket.tls.is_some(), "Serving metrics from PostgreSQL.");
        super::serve(socket, idle_timeout, app, &shutdown).await?;
        shutdown.cancel();
        match refresher.await {
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("cannot serve the store's figures")),
            _ => Ok(()),
        }
    }
}

/// The store and its listener, retried while PostgreSQL is unreachable; `Ok(None)` when
/// shut down first. A plan whose measures changed is not retried: the role stops.
async fn connect(
    plan: &Arc<Plan>,
    settings: &ExportSettings,
    shutdown: &CancellationToken,
) -> Result<Option<(PgStore, Option<PgListener>)>, PgError> {
    let url = settings.database_url.as_str();
    let attempt = || async {
        let store = PgStore::open(url, plan.clone()).await?;
        store.declare_sources(&settings.sources).await?;
        let mut listener = PgListener::connect(url).await.ok();
        if let Some(l) = listener.as_mut() {
            if l.listen(NOTIFY_CHANNEL).await.is_err() {
                listener = None;
            }
        }
        Ok::<_, PgError>((store, listener))
    };
    let retry = attempt
        .retry(ExponentialBuilder::default().with_max_delay(Duration::from_secs(10)).without_max_times())
        .when(|e| !matches!(e, PgError::PlanChanged(_)))
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "PostgreSQL unreachable; serving the last snapshot."));
    tokio::select! {
        r = retry => r.map(Some),
        () = shutdown.cancelled() => Ok(None),
    }
}

async fn refresh_loop(
    plan: Arc<Plan>,
    exporter: Arc<Exporter>,
    settings: ExportSettings,
    shutdown: CancellationToken,
) -> Result<(), PgError> {
    let clock = Clock(settings.now);
    'reconnect: loop {
        let connected = connect(&plan, &settings, &shutdown).await;
        if connected.is_err() {
            // The role stops: the figures of this plan cannot be read from this store.
            shutdown.cancel();
        }
        let Some((store, mut listener)) = connected? else {
            return Ok(());
        };
        loop {
            let now = clock.now();
            let refreshed = async {
                let (mut figs, trends) = store
                    .with_ledger(|l| (figures(&plan, l, now), trends(&plan, l, now)))
                    .await?;
                // Closed years show their final figures (a close notifies, too).
                store.closes().await?.settle(&mut figs, now);
                // Freshness first: the pages rendered at publish show each feed's.
                super::publish_freshness(&store, &exporter).await?;
                exporter.publish_with_trends(&figs, &trends, now);
                Ok::<(), PgError>(())
            };
            match refreshed.await {
                Ok(()) => exporter.set_ready(true),
                Err(e) => {
                    tracing::warn!(error = %e, "Snapshot refresh failed; serving the last snapshot.");
                    store.close().await;
                    continue 'reconnect;
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()).map_err(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => { store.close().await; return Ok(()); }
                () = tokio::time::sleep(settings.refresh) => {}
                r = notified => {
                    if r.is_err() {
                        listener = None;
                    }
                    // Coalesce a burst of commits into one refresh.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
