//! The standalone role: HTTP ingest, the aggregator on the embedded SQLite store, and the
//! exporter, in one process.
//!
//! `App::build` binds the socket (port 0 allowed) and opens the store; `App::run` serves
//! until the shutdown token is cancelled, then lets in-flight requests (and so the
//! batch in flight) finish. `main` and the tests call the same two functions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mieruka_aggregator::{figures, Plan, SqliteStore};
use mieruka_exporter::Exporter;
use mieruka_ingest::http::{IdleTimeoutListener, Receiver, Token};
use mieruka_ingest::{EventSink, Item, SinkError, Status, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Everything the standalone role needs, resolved from flags, environment and config.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The SQLite file.
    pub db: PathBuf,
    /// Seconds between snapshot refreshes while idle.
    pub refresh: Duration,
    /// The bounds of a request.
    pub limits: mieruka_ingest::http::Limits,
    /// A connection that sends nothing this long is dropped.
    pub idle_timeout: Duration,
    /// (secret, token) pairs.
    pub tokens: Vec<(String, Token)>,
    /// Source labels for metrics.
    pub sources: Vec<String>,
    /// A fixed "now" for reproducible runs; `None` follows the wall clock.
    pub now: Option<Timestamp>,
}

/// The clock: fixed by `--now`, else the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock(pub Option<Timestamp>);

impl Clock {
    /// The current instant.
    pub fn now(self) -> Timestamp {
        self.0.unwrap_or_else(|| {
            let micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            Timestamp::from_micros(micros)
        })
    }
}

/// The store as the HTTP receiver and the demo see it: commits, then counts the
/// outcomes and wakes the snapshot refresher.
pub struct PublishingSink {
    /// The store.
    pub store: Arc<SqliteStore>,
    /// Health metrics and the snapshot.
    pub exporter: Arc<Exporter>,
    /// Woken after each committed batch.
    pub committed: Arc<Notify>,
    /// Stamps the last-received time of each source.
    pub clock: Clock,
}

impl EventSink for PublishingSink {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        let labels: Vec<String> = items.iter().map(|i| i.source_label.clone()).collect();
        let started = Instant::now();
        let statuses = self.store.submit(items).await?;
        let health = self.exporter.health();
        health.observe_commit(started.elapsed().as_secs_f64());
        let now = self.clock.now().unix_seconds_f64();
        let mut last = None;
        for (label, status) in labels.iter().zip(&statuses) {
            health.record(label, status);
            if last != Some(label) {
                health.received(label, now);
                last = Some(label);
            }
        }
        self.committed.notify_one();
        Ok(statuses)
    }
}

/// The built standalone process, ready to serve.
pub struct App {
    listener: TcpListener,
    /// The store, shared with the sink.
    pub store: Arc<SqliteStore>,
    /// The exporter.
    pub exporter: Arc<Exporter>,
    sink: Arc<PublishingSink>,
    settings: Settings,
    plan: Arc<Plan>,
}

impl App {
    /// Opens the store, publishes a first snapshot and binds the socket.
    pub async fn build(plan: Arc<Plan>, settings: Settings) -> anyhow::Result<App> {
        let store = Arc::new(
            SqliteStore::open(&settings.db, plan.clone())
                .await
                .with_context(|| format!("cannot open the store at {}", settings.db.display()))?,
        );
        let exporter = Exporter::new(plan.clone(), settings.sources.clone());
        let clock = Clock(settings.now);
        let sink = Arc::new(PublishingSink {
            store: store.clone(),
            exporter: exporter.clone(),
            committed: Arc::new(Notify::new()),
            clock,
        });
        refresh(&plan, &store, &exporter, clock).await?;
        exporter.set_ready(true);
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        Ok(App {
            listener,
            store,
            exporter,
            sink,
            settings,
            plan,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The sink events go through (the demo feeds its history here).
    pub fn sink(&self) -> Arc<PublishingSink> {
        self.sink.clone()
    }

    /// Serves until `shutdown` is cancelled; in-flight requests finish first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            listener,
            store,
            exporter,
            sink,
            settings,
            plan,
        } = self;
        let clock = Clock(settings.now);
        let receiver = Receiver {
            sink: sink.clone(),
            schema: Arc::new(plan.schema.clone()),
            tokens: settings.tokens,
            limits: settings.limits,
        };
        let app = mieruka_exporter::router(exporter.clone())
            .merge(mieruka_ingest::http::router(receiver));

        let refresher = {
            let (plan, store, exporter, shutdown) = (
                plan.clone(),
                store.clone(),
                exporter.clone(),
                shutdown.clone(),
            );
            let committed = sink.committed.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = committed.notified() => {}
                        () = tokio::time::sleep(settings.refresh) => {}
                    }
                    if let Err(e) = refresh(&plan, &store, &exporter, clock).await {
                        tracing::warn!(error = %e, "Snapshot refresh failed; serving the previous one.");
                    }
                }
            })
        };
        tracing::info!(addr = %listener.local_addr()?, "Serving events, metrics and the status page.");
        let listener = IdleTimeoutListener::new(listener, settings.idle_timeout);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await?;
        shutdown.cancel();
        let _ = refresher.await;
        store.close().await;
        tracing::info!("Stopped.");
        Ok(())
    }
}

/// Recomputes every figure from the store's ledger and publishes it.
pub async fn refresh(
    plan: &Plan,
    store: &SqliteStore,
    exporter: &Exporter,
    clock: Clock,
) -> anyhow::Result<()> {
    let now = clock.now();
    let figs = store
        .with_ledger(|ledger| figures(plan, ledger, now))
        .await?;
    exporter.publish(&figs, now);
    Ok(())
}
