//! The `aggregate` role: one member of a Kafka consumer group that folds each batch into
//! PostgreSQL and commits it with its source offsets in one transaction, so every event
//! counts once whatever crashes (see `mieruka_aggregator::consumer` for the guarantees
//! and what they rest on). It serves `/metrics`, `/healthz` and `/readyz` for its own
//! health; the KPIs are served by `export`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use mieruka_aggregator::consumer::{Aggregator, AggregatorOptions, Observer};
use mieruka_aggregator::store::PgStore;
use mieruka_exporter::{Exporter, Role};
use mieruka_ingest::Status;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{bind, record_batch, Clock, Counted};
use crate::config::Resolved;

/// Counts each commit's outcomes into the role's health metrics.
struct HealthObserver {
    exporter: Arc<Exporter>,
}

impl Observer for HealthObserver {
    fn committed(&self, labels: &[&str], statuses: &[Status], elapsed: Duration) {
        record_batch(&self.exporter, labels, statuses, elapsed, Counted::All);
    }

    fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.exporter
            .health()
            .set_consumer_lag(topic, partition, lag);
    }
}

/// The built `aggregate` role.
pub struct AggregateRole {
    listener: TcpListener,
    exporter: Arc<Exporter>,
    options: AggregatorOptions,
    database_url: String,
    settings: Resolved,
}

impl AggregateRole {
    /// Checks the settings and binds the health endpoints; PostgreSQL and the broker are
    /// reached in `run` (and retried), so the role answers `/healthz` meanwhile.
    pub async fn build(settings: &Resolved) -> anyhow::Result<AggregateRole> {
        let brokers = settings.brokers()?;
        let database_url = settings.database_url()?.to_owned();
        let kafka = &settings.kafka;
        let mut options =
            AggregatorOptions::new(brokers, &kafka.group_id, kafka.source_topics.clone());
        options.allow = kafka.allow.clone();
        options.dead_letter_topic = kafka.dead_letter_topic.clone();
        options.client_config = kafka.librdkafka.clone();
        if let Some(n) = kafka.max_batch {
            options.max_batch = n;
        }
        if let Some(n) = kafka.parallel_commits {
            options.parallel_commits = n;
        }
        if let Some(wait) = kafka.max_wait {
            options.max_wait = wait;
        }
        let exporter = Exporter::for_role(
            settings.plan.clone(),
            settings.sources.clone(),
            Role::Aggregate,
        );
        // An empty KPI snapshot, so /readyz depends only on the role's own inputs.
        exporter.publish(&[], Clock(settings.now).now());
        let (listener, _) = bind(&settings.listen).await?;
        Ok(AggregateRole {
            listener,
            exporter,
            options,
            database_url,
            settings: settings.clone(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Consumes until `shutdown` is cancelled; the batch in flight commits first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let AggregateRole {
            listener,
            exporter,
            options,
            database_url,
            settings,
        } = self;
        let server = {
            let (exporter, shutdown) = (exporter.clone(), shutdown.clone());
            tokio::spawn(async move {
                axum::serve(listener, mieruka_exporter::router(exporter))
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
            })
        };
        let open = || PgStore::open(&database_url, settings.plan.clone());
        let store = tokio::select! {
            r = open
                .retry(ExponentialBuilder::default().with_max_delay(Duration::from_secs(5)).without_max_times())
                .notify(|e, wait| tracing::warn!(error = %e, ?wait, "PostgreSQL unreachable; retrying.")) => r?,
            () = shutdown.cancelled() => {
                let _ = server.await;
                return Ok(());
            }
        };
        // The sources this member's topics carry: their arrivals are kept from now on.
        // Every source a role of the deployment declared is a configured source here too,
        // so this member labels its counts alike whatever its own config lists.
        store
            .declare_sources(&settings.sources)
            .await
            .context("cannot declare the configured sources in PostgreSQL")?;
        let declared = store
            .freshness()
            .await
            .context("cannot read the declared sources from PostgreSQL")?;
        let declared: Vec<&str> = declared.iter().map(|f| f.source.as_str()).collect();
        exporter.health().add_sources(&declared);
        let observer = Arc::new(HealthObserver {
            exporter: exporter.clone(),
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

    /// The topics consumed, comma-separated.
    pub fn topics(&self) -> String {
        self.options.topics.join(",")
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        &self.options.group_id
    }
}
