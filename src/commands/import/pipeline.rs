//! `mieruka import` into the production pipeline: each accepted line is produced to the
//! `[kafka]` topic through the `ingest` role's [`KafkaSink`] (same producer settings,
//! keys, canonical payload and delivery wait), so the aggregators fold it effectively
//! once like any event received over HTTP. What the import can know is what `ingest`
//! knows: "accepted for processing" and rejected; duplicates show in the aggregators'
//! counts.
//!
//! A rejected line goes to the dead-letter topic (when configured) in the one
//! dead-letter format, and — when a PostgreSQL URL is resolved — into PostgreSQL's
//! `rejected` table beside the aggregators' refusals, where `mieruka rejected` lists it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use mieruka_aggregator::store::PgStore;
use mieruka_ingest::kafka::rdkafka::producer::Producer;
use mieruka_ingest::kafka::KafkaSink;
use mieruka_ingest::{EventSink, Item, SinkError, Status};

use super::{import_file, ImportOptions, Summary};
use crate::config::Resolved;

/// How long the end of an import waits for the producer to flush (every batch has
/// already waited for its deliveries; this covers nothing but stragglers).
const FLUSH: Duration = Duration::from_secs(10);

/// The `ingest` role's producer, and where refusals are kept besides the dead letters.
struct PipelineSink {
    kafka: KafkaSink,
    rejected: Option<PgStore>,
}

impl EventSink for PipelineSink {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        // The refused items only (with their masked raw text), before the producer takes
        // the batch.
        let refused: Vec<Item> = match &self.rejected {
            Some(_) => items
                .iter()
                .filter(|i| i.outcome.is_err())
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let statuses = self.kafka.submit(items).await?;
        if let Some(store) = &self.rejected {
            store.record_rejected(&refused).await?;
        }
        Ok(statuses)
    }
}

/// Every file into the `[kafka]` topic on `brokers`, then the summary.
pub(super) async fn run(
    settings: &Resolved,
    brokers: &str,
    files: &[PathBuf],
    opts: &ImportOptions<'_>,
) -> anyhow::Result<ExitCode> {
    let plan = settings.plan.clone();
    let sink = PipelineSink {
        kafka: crate::roles::ingest::kafka_sink(settings, brokers)?,
        rejected: match settings.database_url() {
            Ok(url) => Some(
                PgStore::open(url, plan.clone())
                    .await
                    .context("cannot open the PostgreSQL store for the rejected lines")?,
            ),
            Err(_) => None,
        },
    };
    let mut summary = Summary::default();
    let mut outcome = Ok(());
    for f in files {
        outcome = import_file(&plan, &sink, f, opts, &mut summary).await;
        if outcome.is_err() {
            break;
        }
    }
    let PipelineSink { kafka, rejected } = sink;
    if let Some(store) = &rejected {
        store.close().await;
    }
    let flushed = tokio::task::spawn_blocking(move || kafka.producer().flush(FLUSH)).await;
    outcome?;
    if !matches!(flushed, Ok(Ok(()))) {
        anyhow::bail!("the broker did not acknowledge every produced message within {FLUSH:?}");
    }
    println!(
        "imported {} file(s) to topic {} on {brokers}: {} accepted for processing, {} rejected{}",
        files.len(),
        settings.kafka.topic,
        summary.accepted,
        summary.rejected,
        summary.skipped_text(),
    );
    summary.print_rejections(&kept_in(settings));
    Ok(summary.exit_code())
}

/// Where all the rejections of a production import are kept, for the summary.
fn kept_in(settings: &Resolved) -> String {
    let dead_letter = settings.kafka.dead_letter_topic.as_deref();
    match (dead_letter, settings.database_url().is_ok()) {
        (Some(t), true) => {
            format!(
                "the dead-letter topic {t} and PostgreSQL's `rejected` table (`mieruka rejected`)"
            )
        }
        (Some(t), false) => format!("the dead-letter topic {t}"),
        (None, true) => "PostgreSQL's `rejected` table (`mieruka rejected`)".to_owned(),
        (None, false) => {
            "nowhere else: configure [kafka] dead_letter_topic or a database URL to keep them"
                .to_owned()
        }
    }
}
