//! The roles of the one binary, each a room of its own built the same way:
//! `build(&Resolved) -> Result<Self>` binds its socket and checks its settings,
//! `local_addr()` says where it listens, `run(self, CancellationToken)` serves until the
//! token is cancelled. `main` and the tests call the same three.
//!
//! - [`standalone`]: HTTP ingest, aggregation on the embedded SQLite store, /metrics and
//!   the status page in one process (also what `demo` serves).
//! - [`ingest`]: HTTP → Kafka (idempotent, `acks=all`).
//! - [`aggregate`]: Kafka → PostgreSQL, effectively once, in a consumer group.
//! - [`export`]: /metrics and the status page from PostgreSQL.
//! - [`kpi_api`]: `GET /v1/kpis/<id>`, a KPI's explanation, which `standalone` and
//!   `export` serve beside their metrics.
//!
//! What they share lives here: the clock, the socket, and how a committed batch is
//! counted into the health metrics.

pub mod aggregate;
pub mod export;
pub mod inbox;
pub mod ingest;
pub mod keys;
pub mod kpi_api;
pub mod standalone;
pub mod tls;

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mieruka_exporter::{Access, Exporter};
use mieruka_ingest::http::{IdleTimeoutListener, Peer, Receiver};
use mieruka_ingest::{EventSink, Item, SinkError, Status, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Resolved;

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

/// The vendor contract of the plan (`/v1/schema`, `/v1/openapi.json`), which every role
/// a line system's vendor may reach serves beside its own routes (standalone, ingest,
/// export), so the contract read is the one of the plan that runs.
fn contract_router(plan: &mieruka_aggregator::plan::Plan) -> axum::Router {
    mieruka_ingest::contract::openapi::router(&plan.schema, &plan.id)
}

/// Listens on `listen` (`127.0.0.1:0` picks a free port).
async fn bind(listen: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The HTTP receiver of a role (`standalone`, `ingest`): events into `sink`, validated
/// against the plan, for the configured tokens (kept current until `shutdown`, see
/// [`keys`]) within the limits; requests refused whole are counted in the role's health
/// registry (`mieruka_http_refused_total`, `mieruka_auth_failures_total`).
fn receiver<S>(
    settings: &Resolved,
    sink: Arc<S>,
    exporter: &Exporter,
    shutdown: &CancellationToken,
) -> anyhow::Result<Receiver<S>> {
    let names: Vec<&str> = settings.tokens.iter().map(|t| t.name.as_str()).collect();
    let access = Access::register(exporter.health().registry(), &names)
        .context("cannot register the metrics of refused requests")?;
    let on_refused = access.on_refused();
    let keys = keys::watch(settings, access, shutdown)?;
    Ok(Receiver {
        sink,
        schema: Arc::new(settings.plan.schema.clone()),
        keys,
        now: settings.now,
        limits: settings.limits,
        on_refused: Some(on_refused),
    })
}

/// A role's socket: bound, and ready to serve HTTPS when `[tls]` says so (the
/// certificate and key are read and checked here, at build).
pub(crate) struct Socket {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Socket {
    /// Binds `settings.listen` and loads `[tls]`.
    async fn bind(settings: &Resolved) -> anyhow::Result<Socket> {
        let tls = settings.tls.as_ref().map(tls::acceptor).transpose()?;
        let (listener, _) = bind(&settings.listen).await?;
        Ok(Socket { listener, tls })
    }

    /// The address actually bound.
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }
}

/// Serves `app` on `socket` (connections idle past `idle` are dropped; HTTPS when it
/// has a certificate) until `shutdown`; each request knows its peer's address, which
/// refusals are logged with.
async fn serve(
    socket: Socket,
    idle: Duration,
    app: axum::Router,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let listener = IdleTimeoutListener::new(socket.listener, idle);
    let stopped = shutdown.clone().cancelled_owned();
    let app = app.into_make_service_with_connect_info::<Peer>();
    match socket.tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await?
        }
        Some(acceptor) => {
            // `tap_io` (doing nothing) brings axum's connect info of a listener's own
            // address type, which for this listener is `Peer`.
            let listener = tls::TlsListener::spawn(listener, acceptor, shutdown)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await?;
        }
    }
    Ok(())
}

/// Which outcomes of a batch a role counts: each outcome is counted once across the
/// roles, so `ingest` counts only what it refuses at the edge (the aggregators count
/// the rest when they commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counted {
    /// Every outcome: the role that commits.
    All,
    /// Refusals only: the role in front of Kafka.
    Refusals,
}

/// A sink that counts what each batch it commits came to into the health metrics, and
/// wakes whoever waits for commits (the snapshot refresher).
pub struct CountingSink<S> {
    inner: Arc<S>,
    exporter: Arc<Exporter>,
    counted: Counted,
    committed: Arc<Notify>,
}

impl<S: EventSink> CountingSink<S> {
    fn new(inner: Arc<S>, exporter: Arc<Exporter>, counted: Counted) -> Self {
        CountingSink {
            inner,
            exporter,
            counted,
            committed: Arc::new(Notify::new()),
        }
    }
}

impl<S: EventSink> EventSink for CountingSink<S> {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        let labels: Vec<mieruka_ingest::IdText> =
            items.iter().map(|i| i.source_label.clone()).collect();
        let started = Instant::now();
        let statuses = self.inner.submit(items).await?;
        let labels: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
        let elapsed = started.elapsed();
        record_batch(&self.exporter, &labels, &statuses, elapsed, self.counted);
        self.committed.notify_one();
        Ok(statuses)
    }
}

/// Records one committed batch into the health metrics: how long the commit took and
/// each outcome by source label. (When each source was last heard from is kept by the
/// store, in the batch's transaction, and read back with the figures.)
fn record_batch(
    exporter: &Exporter,
    labels: &[&str],
    statuses: &[Status],
    elapsed: Duration,
    counted: Counted,
) {
    let health = exporter.health();
    health.observe_commit(elapsed.as_secs_f64());
    for (label, status) in labels.iter().zip(statuses) {
        if counted == Counted::All || matches!(status, Status::Rejected(_)) {
            health.record(label, status);
        }
    }
}

/// Publishes when each source was last heard from, as `store` keeps it.
async fn publish_freshness<S: mieruka_aggregator::store::Store>(
    store: &S,
    exporter: &Exporter,
) -> Result<(), S::Error> {
    let rows = store.freshness().await?;
    let heard: Vec<(&str, f64)> = rows
        .iter()
        .map(|r| (r.source.as_str(), r.last_heard_unix_seconds()))
        .collect();
    exporter.health().set_last_heard(&heard);
    let received: Vec<(&str, Option<f64>)> = rows
        .iter()
        .map(|r| {
            let at = r.last_received_micros.map(|us| us as f64 / 1e6);
            (r.source.as_str(), at)
        })
        .collect();
    exporter.health().set_received(&received);
    Ok(())
}
