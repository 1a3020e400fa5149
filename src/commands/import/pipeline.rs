//! `mieruka import` into the production pipeline: each accepted line is produced to the
//! `[kafka]` topic through the `ingest` role's `KafkaSink` (same producer settings,
//! keys, canonical payload and delivery wait), so the aggregators fold it effectively
//! once like any event received over HTTP. What the import can know is what `ingest`
//! knows: "accepted for processing" and rejected; duplicates show in the aggregators'
//! counts.
//!
//! A rejected line goes to the dead-letter topic (when configured) in the one
//! dead-letter format, and — when a PostgreSQL URL is resolved — into PostgreSQL's
//! `rejected` table beside the aggregators' refusals, where `mieruka rejected` lists it
//! (the `ingest` role's [`KeepRefused`], written before the batch is produced).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mieruka_ingest::kafka::rdkafka::producer::Producer;

use super::{import_file, ImportOptions, Summary};
use crate::config::Resolved;
use crate::roles::ingest::KeepRefused;

/// How long the end of an import waits for the producer to flush (every batch has
/// already waited for its deliveries; this covers nothing but stragglers).
const FLUSH: Duration = Duration::from_secs(10);

/// Every file into the `[kafka]` topic on `brokers`, then the summary.
pub(super) async fn run(
    settings: &Resolved,
    brokers: &str,
    files: &[PathBuf],
    opts: &ImportOptions<'_>,
) -> anyhow::Result<ExitCode> {
    let plan = settings.plan.clone();
    let kafka = Arc::new(crate::roles::ingest::kafka_sink(settings, brokers)?);
    // The `ingest` role's producer, refusals kept in PostgreSQL first as that role does.
    let sink = KeepRefused::open(kafka.clone(), settings).await?;
    let mut summary = Summary::default();
    let mut outcome = Ok(());
    for f in files {
        outcome = import_file(&plan, &sink, f, opts, &mut summary).await;
        if outcome.is_err() {
            break;
        }
    }
    sink.close().await;
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
