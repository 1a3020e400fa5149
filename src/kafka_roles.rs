//! The Kafka roles: `ingest` (HTTP → Kafka) and `aggregate` (Kafka → PostgreSQL).
//!
//! `ingest` answers `POST /v1/events` once the broker has acknowledged every accepted
//! event (idempotent producer, `acks=all`); its reply means "accepted for processing":
//! duplicates are found by the aggregator. `aggregate` is one member of a consumer group
//! that commits each batch with its source offsets in PostgreSQL (see
//! `mieruka_aggregator::consumer` for the guarantees and what they rest on). Each role
//! also serves `/metrics`, `/healthz` and `/readyz` for its own health; the KPIs are
//! served by `export`.
//!
//! Each pipeline outcome is counted once across the roles: `ingest` counts the events
//! it refuses at the edge, `aggregate` counts what each commit accepted, found duplicate
//! or refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use mieruka_aggregator::consumer::{Aggregator, AggregatorOptions, Observer};
use mieruka_aggregator::store_pg::PgStore;
use mieruka_exporter::Exporter;
use mieruka_ingest::http::Receiver;
use mieruka_ingest::kafka::rdkafka::producer::Producer;
use mieruka_ingest::kafka::KafkaSink;
use mieruka_ingest::{EventSink, Item, SinkError, Status};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::Clock;
use crate::config::Config;
use crate::RoleOptions;

/// The source topic when the config names none.
pub const DEFAULT_TOPIC: &str = "mieruka.events";

/// The consumer group when the config names none.
pub const DEFAULT_GROUP_ID: &str = "mieruka-aggregators";

/// Default address of the `ingest` role.
pub const DEFAULT_INGEST_LISTEN: &str = "127.0.0.1:8080";

/// Default address of the `aggregate` role's health endpoints.
pub const DEFAULT_AGGREGATE_LISTEN: &str = "127.0.0.1:9465";

/// The Kafka sink, counting the events refused at the edge.
struct CountingSink {
    inner: KafkaSink,
    exporter: Arc<Exporter>,
    clock: Clock,
}

impl EventSink for CountingSink {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        let labels: Vec<String> = items.iter().map(|i| i.source_label.clone()).collect();
        let started = Instant::now();
        let statuses = self.inner.submit(items).await?;
        let health = self.exporter.health();
        health.observe_commit(started.elapsed().as_secs_f64());
        let now = self.clock.now().unix_seconds_f64();
        let mut last = None;
        for (label, status) in labels.iter().zip(&statuses) {
            if matches!(status, Status::Rejected(_)) {
                health.record(label, status);
            }
            if last != Some(label) {
                health.received(label, now);
                last = Some(label);
            }
        }
        Ok(statuses)
    }
}

/// Publishes an empty KPI snapshot, so `/readyz` depends only on the role's own inputs.
fn health_only(exporter: &Exporter, clock: Clock) {
    exporter.publish(&[], clock.now());
}

/// `mieruka ingest`: the HTTP receiver producing to Kafka.
pub async fn run_ingest(
    cfg: &Config,
    opts: RoleOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let plan = opts.load_plan(cfg)?;
    let brokers = opts.brokers(cfg)?;
    let kafka = cfg.kafka.clone();
    let topic = kafka
        .as_ref()
        .and_then(|k| k.topic.clone())
        .unwrap_or_else(|| DEFAULT_TOPIC.to_owned());
    let dead_letter = kafka.as_ref().and_then(|k| k.dead_letter_topic.clone());
    let tokens = cfg.secrets()?;
    if let Some(allow) = kafka.as_ref().and_then(|k| k.topic_allow.get(&topic)) {
        warn_not_carried(&topic, allow, &tokens);
    }
    let mut sources = cfg.source_labels();
    sources.extend(tokens.iter().flat_map(|(_, t)| t.sources.clone()));
    sources.sort();
    sources.dedup();
    let clock = Clock(opts.now);
    let schema = Arc::new(plan.schema.clone());
    let mut producer = mieruka_ingest::kafka::producer_config(&brokers);
    for (k, v) in librdkafka(cfg)? {
        producer.set(k, v);
    }
    let sink = KafkaSink::with_config(producer, &topic, dead_letter.as_deref(), schema.clone())
        .context("cannot create the Kafka producer")?;
    let exporter = Exporter::new(plan.clone(), sources);
    health_only(&exporter, clock);
    let (listener, addr) = bind(&opts, cfg, DEFAULT_INGEST_LISTEN).await?;
    println!("mieruka ingest: http://{addr}/ (POST /v1/events; produces to {topic} on {brokers})");

    let sink = Arc::new(CountingSink {
        inner: sink,
        exporter: exporter.clone(),
        clock,
    });
    // Ready while the broker answers for the topic.
    let readiness = {
        let (sink, exporter, shutdown, topic) = (
            sink.clone(),
            exporter.clone(),
            shutdown.clone(),
            topic.clone(),
        );
        tokio::spawn(async move {
            let mut was = None;
            loop {
                let probe = {
                    let sink = sink.clone();
                    let topic = topic.clone();
                    tokio::task::spawn_blocking(move || {
                        sink.inner
                            .producer()
                            .client()
                            .fetch_metadata(Some(&topic), Duration::from_secs(3))
                            .map(|m| m.topics().iter().any(|t| t.error().is_none()))
                    })
                    .await
                };
                let ok = matches!(probe, Ok(Ok(true)));
                exporter.set_ready(ok);
                if was != Some(ok) {
                    if ok {
                        tracing::info!(%topic, "The broker answers for the topic; ready.");
                    } else {
                        tracing::warn!(%topic, "The broker does not answer for the topic; not ready.");
                    }
                    was = Some(ok);
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(if ok { 10 } else { 1 })) => {}
                }
            }
        })
    };
    let receiver = Receiver {
        sink: sink.clone(),
        schema,
        tokens,
        limits: cfg.http_limits(),
    };
    let app =
        mieruka_exporter::router(exporter.clone()).merge(mieruka_ingest::http::router(receiver));
    let listener = mieruka_ingest::http::IdleTimeoutListener::new(listener, cfg.idle_timeout());
    tracing::info!(%addr, %topic, "Receiving events for Kafka.");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
    shutdown.cancel();
    let _ = readiness.await;
    let flushed =
        tokio::task::spawn_blocking(move || sink.inner.producer().flush(Duration::from_secs(10)))
            .await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::warn!("Some produced events were not acknowledged before stopping; their requests were not answered 2xx.");
    }
    tracing::info!("Stopped.");
    Ok(())
}

/// Warns about each source and type a token may send that the topic it goes to may not
/// carry (when the config says what it carries): the aggregators would refuse those
/// events as `not_allowed` after this role accepted them.
fn warn_not_carried(
    topic: &str,
    allow: &crate::config::TopicAllowConfig,
    tokens: &[(String, mieruka_ingest::http::Token)],
) {
    for (_, token) in tokens {
        for source in token.sources.iter().filter(|s| !allow.sources.contains(s)) {
            tracing::warn!(token = %token.name, %source, %topic, "A token may send a source its topic does not carry ([kafka.topic_allow]); the aggregators will refuse those events.");
        }
        if allow.types.is_empty() {
            continue;
        }
        if token.types.is_empty() {
            tracing::warn!(token = %token.name, %topic, "A token may send every type, and its topic carries only some ([kafka.topic_allow]); the aggregators will refuse the others.");
        }
        for ty in token.types.iter().filter(|t| !allow.types.contains(t)) {
            tracing::warn!(token = %token.name, r#type = %ty, %topic, "A token may send a type its topic does not carry ([kafka.topic_allow]); the aggregators will refuse those events.");
        }
    }
}

/// Counts each commit's outcomes into the role's health metrics.
struct HealthObserver {
    exporter: Arc<Exporter>,
    clock: Clock,
}

impl Observer for HealthObserver {
    fn committed(&self, labels: &[&str], statuses: &[Status], elapsed: Duration) {
        let health = self.exporter.health();
        health.observe_commit(elapsed.as_secs_f64());
        let now = self.clock.now().unix_seconds_f64();
        let mut last = None;
        for (label, status) in labels.iter().zip(statuses) {
            health.record(label, status);
            if last != Some(label) {
                health.received(label, now);
                last = Some(label);
            }
        }
    }

    fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.exporter
            .health()
            .set_consumer_lag(topic, partition, lag);
    }
}

/// `mieruka aggregate`: the Kafka consumer folding into PostgreSQL.
pub async fn run_aggregate(
    cfg: &Config,
    opts: RoleOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let plan = opts.load_plan(cfg)?;
    let brokers = opts.brokers(cfg)?;
    let database_url = opts.database_url(cfg)?;
    let kafka = cfg.kafka.clone();
    let mut topics = kafka
        .as_ref()
        .map(|k| k.source_topics())
        .unwrap_or_default();
    if topics.is_empty() {
        topics.push(DEFAULT_TOPIC.to_owned());
    }
    // Checked before anything waits on the store or the broker: a wrong list stops the
    // role at once.
    let allow = match &kafka {
        Some(k) => k.topic_allow(&plan.schema, &topics)?,
        None => Vec::new(),
    };
    let group_id = kafka
        .as_ref()
        .and_then(|k| k.group_id.clone())
        .unwrap_or_else(|| DEFAULT_GROUP_ID.to_owned());
    let clock = Clock(opts.now);
    let exporter = Exporter::new(plan.clone(), cfg.source_labels());
    health_only(&exporter, clock);
    let (listener, addr) = bind(&opts, cfg, DEFAULT_AGGREGATE_LISTEN).await?;
    println!(
        "mieruka aggregate: http://{addr}/ (health at /metrics; consuming {} as group {group_id})",
        topics.join(",")
    );
    let server = {
        let (exporter, shutdown) = (exporter.clone(), shutdown.clone());
        tokio::spawn(async move {
            axum::serve(listener, mieruka_exporter::router(exporter))
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    };

    let open = || PgStore::open(&database_url, plan.clone());
    let store = tokio::select! {
        r = open
            .retry(ExponentialBuilder::default().with_max_delay(Duration::from_secs(5)).without_max_times())
            .notify(|e, wait| tracing::warn!(error = %e, ?wait, "PostgreSQL unreachable; retrying.")) => r?,
        () = shutdown.cancelled() => {
            let _ = server.await;
            return Ok(());
        }
    };
    let mut options = AggregatorOptions::new(&brokers, &group_id, topics);
    options.allow = allow;
    options.dead_letter_topic = kafka.as_ref().and_then(|k| k.dead_letter_topic.clone());
    options.client_config = librdkafka(cfg)?;
    if let Some(n) = kafka.as_ref().and_then(|k| k.max_batch) {
        anyhow::ensure!(n > 0, "[kafka] max_batch must be at least 1");
        options.max_batch = n;
    }
    if let Some(n) = kafka.as_ref().and_then(|k| k.parallel_commits) {
        anyhow::ensure!(n > 0, "[kafka] parallel_commits must be at least 1");
        options.parallel_commits = n;
    }
    if let Some(ms) = kafka.as_ref().and_then(|k| k.max_wait_ms) {
        options.max_wait = std::time::Duration::from_millis(ms);
    }
    let observer = Arc::new(HealthObserver {
        exporter: exporter.clone(),
        clock,
    });
    let aggregator = Aggregator::build(store, options, observer)
        .await
        .context("cannot create the Kafka consumer")?;
    exporter.set_ready(true);
    let result = aggregator.run(shutdown.clone().cancelled_owned()).await;
    exporter.set_ready(false);
    shutdown.cancel();
    let _ = server.await;
    result.context("the consumer stopped")?;
    tracing::info!("Stopped.");
    Ok(())
}

/// The `[kafka.librdkafka]` properties of the config (none without a `[kafka]` table).
fn librdkafka(cfg: &Config) -> anyhow::Result<Vec<(String, String)>> {
    Ok(match &cfg.kafka {
        Some(k) => k.librdkafka()?,
        None => Vec::new(),
    })
}

/// Listens where the flags, else the config, else `default` say.
async fn bind(
    opts: &RoleOptions,
    cfg: &Config,
    default: &str,
) -> anyhow::Result<(TcpListener, std::net::SocketAddr)> {
    let listen = opts
        .listen
        .clone()
        .or(cfg.listen.clone())
        .unwrap_or_else(|| default.to_owned());
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
