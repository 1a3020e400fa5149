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
//!
//! What they share lives here: the clock, the socket, and how a committed batch is
//! counted into the health metrics.

pub mod aggregate;
pub mod export;
pub mod inbox;
pub mod ingest;
pub mod standalone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mieruka_exporter::{Access, Exporter};
use mieruka_ingest::http::{IdleTimeoutListener, Peer, Receiver};
use mieruka_ingest::{EventSink, Item, SinkError, Status, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::Notify;

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

/// Listens on `listen` (`127.0.0.1:0` picks a free port).
async fn bind(listen: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The HTTP receiver of a role (`standalone`, `ingest`): events into `sink`, validated
/// against the plan, for the configured tokens within the limits; requests refused
/// whole are counted in the role's health registry (`mieruka_http_refused_total`,
/// `mieruka_auth_failures_total`).
fn receiver<S>(
    settings: &Resolved,
    sink: Arc<S>,
    exporter: &Exporter,
) -> anyhow::Result<Receiver<S>> {
    let names: Vec<&str> = settings
        .tokens
        .iter()
        .map(|(_, t)| t.name.as_str())
        .collect();
    let access = Access::register(exporter.health().registry(), &names)
        .context("cannot register the metrics of refused requests")?;
    Ok(Receiver {
        sink,
        schema: Arc::new(settings.plan.schema.clone()),
        tokens: settings.tokens.clone(),
        limits: settings.limits,
        on_refused: Some(access.on_refused()),
    })
}

/// Serves `app` on `listener` (connections idle past `idle` are dropped) until
/// `shutdown`; each request knows its peer's address, which refusals are logged with.
async fn serve(
    listener: TcpListener,
    idle: Duration,
    app: axum::Router,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let listener = IdleTimeoutListener::new(listener, idle);
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
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
        let labels: Vec<String> = items.iter().map(|i| i.source_label.clone()).collect();
        let started = Instant::now();
        let statuses = self.inner.submit(items).await?;
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
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
    Ok(())
}
