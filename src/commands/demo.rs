//! `mieruka demo`: generate a synthetic history of the plan, ingest it through the
//! standalone role's sink, then serve it: the newcomer's first command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use mieruka_aggregator::Plan;
use mieruka_ingest::http::{Token, SINK_BATCH};
use mieruka_ingest::{item, EventSink, Position, Status, UNKNOWN_SOURCE};
use tokio_util::sync::CancellationToken;

use crate::config::Resolved;
use crate::demo;
use crate::roles::standalone::{PublishingSink, Standalone};
use crate::roles::Clock;

/// The bearer token the demo's line systems use (printed by `mieruka demo`).
pub const DEMO_TOKEN: &str = "demo-token";

/// Generates, ingests, and serves until `shutdown` (or stops after ingesting with
/// `no_serve`).
pub async fn run(
    mut settings: Resolved,
    seed: u64,
    no_serve: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    settings.add_token(demo_token());
    // The demo's one token may send every type, but each of its line systems sends only
    // its own: the pages list a KPI's feeds from these.
    for (source, types) in demo::demo_sources() {
        if let Some(info) = settings.directory.sources.get_mut(source) {
            info.types = Some(types.iter().map(|t| (*t).to_owned()).collect());
        }
    }
    // The demo's database is rebuilt each run, so the same seed gives the same numbers.
    remove_database(&settings.db)?;
    let now = Clock(settings.now).now();
    let started = Instant::now();
    let plan = settings.plan.clone();
    let lines = demo::generate(&plan, &demo::DemoOptions { now, seed });
    eprintln!(
        "Generated {} synthetic events (FY2025 to {now}) in {:.1?}.",
        lines.len(),
        started.elapsed()
    );
    let app = Standalone::build(&settings).await?;
    let ingest_started = Instant::now();
    let (accepted, duplicates, rejected) = ingest(&plan, &app.sink(), &lines).await?;
    app.refresh(Clock(Some(now))).await?;
    eprintln!(
        "Ingested in {:.1?}: {accepted} accepted, {duplicates} duplicates, {rejected} rejected.",
        ingest_started.elapsed()
    );
    if no_serve {
        app.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let addr = app.local_addr()?;
    println!("mieruka demo is serving the Ome plan:");
    println!("  status page  http://{addr}/");
    println!("  metrics      http://{addr}/metrics");
    println!("  post events  curl -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Content-Type: application/x-ndjson' --data-binary @events.ndjson http://{addr}/v1/events");
    println!("Press Ctrl-C to stop.");
    app.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The demo's line systems: one token for every source of the synthetic history.
fn demo_token() -> Token {
    Token {
        name: "demo".into(),
        // The demo's well-known secret, in clear on purpose: it is printed below.
        token: Some(DEMO_TOKEN.into()),
        sources: demo::demo_sources()
            .into_iter()
            .map(|(s, _)| s.to_owned())
            .collect(),
        ..Token::default()
    }
}

/// Removes the SQLite file and its journals, when they exist.
fn remove_database(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p)
                .with_context(|| format!("cannot remove the old demo database {}", p.display()))?;
        }
    }
    Ok(())
}

/// Submits the history in batches, as HTTP would; returns (accepted, duplicates,
/// rejected).
async fn ingest(
    plan: &Plan,
    sink: &PublishingSink,
    lines: &[String],
) -> anyhow::Result<(u64, u64, u64)> {
    let (mut accepted, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    for (n, chunk) in lines.chunks(SINK_BATCH).enumerate() {
        let items: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let position = Position::Index(n * SINK_BATCH + i);
                let mut it = item(&plan.schema, l.as_bytes(), position, UNKNOWN_SOURCE);
                if let Ok(e) = &it.outcome {
                    it.source_label = e.source.clone();
                }
                it
            })
            .collect();
        for s in sink
            .submit(items)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            match s {
                Status::Accepted => accepted += 1,
                Status::Duplicate => duplicates += 1,
                Status::Rejected(_) => rejected += 1,
            }
        }
    }
    Ok((accepted, duplicates, rejected))
}
