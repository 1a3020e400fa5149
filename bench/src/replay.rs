//! `mieruka-bench replay`: fills a fresh store (SQLite, or PostgreSQL with
//! `--database-url`) with N synthetic events straight through the store's batches, then
//! times `mieruka replay`'s work on it — the log streamed in day order and folded afresh,
//! compared with the live aggregates — and reports events/s and the replay's peak RSS
//! (the fill's peak is reset first, so it is the replay's own).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mieruka_aggregator::store::{PgStore, PlanCheck, Store};
use mieruka_aggregator::SqliteStore;
use mieruka_ingest::{item, Position};

use crate::events::{bench_plan, event, rss_mib, BENCH_NOW};

/// Events per filling batch.
const FILL_BATCH: u64 = 20_000;

/// Where the bench's store lives.
pub enum Target<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

/// Fills a fresh store with `events` events and replays it.
pub async fn replay(target: Target<'_>, events: u64) -> anyhow::Result<()> {
    let plan = Arc::new(bench_plan()?);
    match target {
        Target::Sqlite(db) => {
            if db.exists() {
                anyhow::bail!("{} exists; the bench needs a fresh file", db.display());
            }
            let store = SqliteStore::open(db, plan.clone()).await?;
            fill(&store, &plan, events).await?;
            store.close().await;
            let store = SqliteStore::open_with(db, plan, PlanCheck::Ignore).await?;
            measure(&store, "sqlite").await
        }
        Target::Postgres(admin) => {
            let db = mieruka_testkit::pg::TestDb::create_on(admin, "mieruka_bench").await?;
            let store = PgStore::open(db.url(), plan.clone()).await?;
            fill(&store, &plan, events).await?;
            store.close().await;
            let store = PgStore::open_with(db.url(), plan, PlanCheck::Ignore).await?;
            measure(&store, "postgres").await
        }
    }
}

async fn fill<S: Store>(
    store: &S,
    plan: &mieruka_aggregator::Plan,
    events: u64,
) -> anyhow::Result<()>
where
    S::Error: std::error::Error,
{
    let t0 = Instant::now();
    let mut n = 0;
    while n < events {
        let end = (n + FILL_BATCH).min(events);
        let items = (n..end)
            .map(|i| {
                item(
                    &plan.schema,
                    event(i).as_bytes(),
                    Position::Index(i as usize),
                    "bench",
                )
            })
            .collect();
        store.submit_batch(items).await?;
        n = end;
    }
    println!(
        "filled {events} events in {:.1}s (peak RSS {:.1} MiB)",
        t0.elapsed().as_secs_f64(),
        rss_mib().0
    );
    Ok(())
}

async fn measure<S: Store>(store: &S, name: &str) -> anyhow::Result<()>
where
    S::Error: std::error::Error,
{
    // Resets VmHWM (Linux): the peak printed below is the replay's own.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = rss_mib().1;
    let t0 = Instant::now();
    let outcome = store.replay(false, BENCH_NOW).await?;
    let secs = t0.elapsed().as_secs_f64();
    let (peak, rss) = rss_mib();
    store.close().await;
    println!(
        "{name}: replayed {} events in {secs:.1}s: {:.0} events/s; RSS before {before:.1} MiB, \
         peak during the replay {peak:.1} MiB{}, after {rss:.1} MiB; {} differences, {} invalid",
        outcome.events,
        outcome.events as f64 / secs,
        if reset {
            ""
        } else {
            " (peak not reset: includes the fill)"
        },
        outcome.differences.len(),
        outcome.invalid,
    );
    Ok(())
}
