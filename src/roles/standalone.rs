//! The standalone role: HTTP ingest, the aggregator on the embedded SQLite store, and the
//! exporter, in one process.
//!
//! [`Standalone::build`] opens the store, publishes a first snapshot and binds the socket
//! (port 0 allowed); [`Standalone::run`] serves until the shutdown token is cancelled,
//! then lets in-flight requests (and so the batch in flight) finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mieruka_aggregator::{figures, Plan, SqliteStore};
use mieruka_exporter::trend::trends;
use mieruka_exporter::Exporter;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Clock, Counted, CountingSink, Socket};
use crate::config::Resolved;

/// The store as the HTTP receiver and the demo see it: commits, then counts the
/// outcomes and wakes the snapshot refresher.
pub type PublishingSink = CountingSink<SqliteStore>;

/// The built standalone process, ready to serve.
pub struct Standalone {
    socket: Socket,
    store: Arc<SqliteStore>,
    exporter: Arc<Exporter>,
    sink: Arc<PublishingSink>,
    settings: Resolved,
}

impl Standalone {
    /// Opens the store, publishes a first snapshot and binds the socket.
    pub async fn build(settings: &Resolved) -> anyhow::Result<Standalone> {
        let plan = settings.plan.clone();
        let store = Arc::new(
            SqliteStore::open(&settings.db, plan.clone())
                .await
                .with_context(|| format!("cannot open the store at {}", settings.db.display()))?,
        );
        let exporter = Exporter::new(plan.clone(), settings.sources.clone());
        exporter.health().set_schedules(settings.schedules.clone());
        exporter.set_source_directory(settings.directory.clone());
        let clock = Clock(settings.now);
        let sink = Arc::new(CountingSink::new(
            store.clone(),
            exporter.clone(),
            Counted::All,
        ));
        store
            .declare_sources(&settings.sources)
            .await
            .context("cannot declare the configured sources in the store")?;
        refresh(&plan, &store, &exporter, clock).await?;
        super::inbox::prepare(&settings.inboxes)?;
        exporter.set_ready(true);
        let socket = Socket::bind(settings).await?;
        Ok(Standalone {
            socket,
            store,
            exporter,
            sink,
            settings: settings.clone(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The sink events go through (the demo feeds its history here).
    pub fn sink(&self) -> Arc<PublishingSink> {
        self.sink.clone()
    }

    /// Recomputes and publishes the snapshot now, as of `clock`.
    pub async fn refresh(&self, clock: Clock) -> anyhow::Result<()> {
        refresh(&self.settings.plan, &self.store, &self.exporter, clock).await
    }

    /// Closes the store without serving (the demo's `--no-serve`).
    pub async fn close(self) {
        self.store.close().await;
    }

    /// Serves until `shutdown` is cancelled; in-flight requests finish first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Standalone {
            socket,
            store,
            exporter,
            sink,
            settings,
        } = self;
        let receiver = super::receiver(&settings, sink.clone(), &exporter, &shutdown)?;
        let api = super::kpi_api::KpiApi::new(
            super::kpi_api::Stores::Sqlite(store.clone()),
            Clock(settings.now),
        );
        exporter.set_explainer(Arc::new(super::kpi_api::PageExplainer {
            api: api.clone(),
            plan: settings.plan.clone(),
        }));
        let app = mieruka_exporter::router(exporter.clone())
            .merge(super::kpi_api::router(api))
            .merge(mieruka_ingest::http::router(receiver))
            .merge(super::contract_router(&settings.plan));
        let wake = sink.committed.clone();
        let inboxes = super::inbox::spawn_all(
            &settings.inboxes,
            &settings.plan,
            &sink,
            &exporter,
            (Clock(settings.now), Arc::new(move || wake.notify_one())),
            &shutdown,
        );
        let refresher = tokio::spawn(refresh_loop(
            settings.plan.clone(),
            store.clone(),
            exporter,
            sink.committed.clone(),
            (Clock(settings.now), settings.refresh),
            shutdown.clone(),
        ));
        tracing::info!(addr = %socket.local_addr()?, tls = socket.tls.is_some(), "Serving events, metrics and the status page.");
        super::serve(socket, settings.idle_timeout, app, &shutdown).await?;
        shutdown.cancel();
        // The file in hand is finished before the store closes.
        inboxes.join_all().await;
        let _ = refresher.await;
        store.close().await;
        tracing::info!("Stopped.");
        Ok(())
    }
}

/// Refreshes the snapshot after each committed batch, and every `every` while idle.
async fn refresh_loop(
    plan: Arc<Plan>,
    store: Arc<SqliteStore>,
    exporter: Arc<Exporter>,
    committed: Arc<Notify>,
    (clock, every): (Clock, Duration),
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = committed.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
        if let Err(e) = refresh(&plan, &store, &exporter, clock).await {
            tracing::warn!(error = %e, "Snapshot refresh failed; serving the previous one.");
        }
    }
}

/// Recomputes every figure from the store's ledger and publishes it.
async fn refresh(
    plan: &Plan,
    store: &SqliteStore,
    exporter: &Exporter,
    clock: Clock,
) -> anyhow::Result<()> {
    let now = clock.now();
    let (mut figs, trends) = store
        .with_ledger(|ledger| (figures(plan, ledger, now), trends(plan, ledger, now)))
        .await?;
    // Closed years show their final figures; a close made by another process (the
    // `close-year` command) shows up at the next refresh.
    store.closes().await?.settle(&mut figs, now);
    // Freshness first: the pages rendered at publish show each feed's.
    super::publish_freshness(store, exporter).await?;
    exporter.publish_with_trends(&figs, &trends, now);
    Ok(())
}
