//! `mieruka-bench replay`: fills a fresh store (SQLite, or PostgreSQL with
//! `--database-url`) with N synthetic events straight through the store's batches — a
//! quarter of them `telework.day` events of distinct staff, so the distinct measure
//! `telework_staff` holds N/4 values — then times `mieruka replay`'s work on it (the log
//! read and folded afresh, compared with the live aggregates) and reports events/s,
//! CPU-seconds (this process, and for PostgreSQL the bench database's backends) with
//! events/s per CPU-second, and the replay's peak RSS (the fill's peak is reset first,
//! so it is the replay's own).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mieruka_aggregator::store::{PgStore, PlanCheck, Store};
use mieruka_aggregator::SqliteStore;
use mieruka_ingest::{item, Position};

use crate::events::{bench_plan, cpu_seconds, event_with_distinct, rss_mib, BENCH_NOW};

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
            measure(&store, "sqlite", None).await
        }
        Target::Postgres(admin) => {
            let db = mieruka_testkit::pg::TestDb::create_on(admin, "mieruka_bench").await?;
            let store = PgStore::open(db.url(), plan.clone()).await?;
            fill(&store, &plan, events).await?;
            store.close().await;
            let store = PgStore::open_with(db.url(), plan, PlanCheck::Ignore).await?;
            let backends = Backends::of(admin, db.name()).await?;
            measure(&store, "postgres", Some(backends)).await
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
                    event_with_distinct(i).as_bytes(),
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

/// The backends of the bench's database (PostgreSQL on this machine): the CPU they use
/// while the replay runs is part of its cost.
struct Backends {
    /// A connection to the server that lists them.
    admin: sqlx::PgPool,
    /// The bench database's name.
    database: String,
}

impl Backends {
    async fn of(admin: &str, database: &str) -> anyhow::Result<Self> {
        Ok(Backends {
            admin: sqlx::PgPool::connect(admin).await?,
            database: database.to_owned(),
        })
    }

    /// CPU-seconds used so far by each backend of the database, by process id.
    async fn cpu(&self) -> anyhow::Result<Vec<(i32, f64)>> {
        let pids: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
                .bind(&self.database)
                .fetch_all(&self.admin)
                .await?;
        Ok(pids
            .into_iter()
            .filter_map(|p| Some((p, cpu_seconds(&p.to_string())?)))
            .collect())
    }
}

async fn measure<S: Store>(store: &S, name: &str, backends: Option<Backends>) -> anyhow::Result<()>
where
    S::Error: std::error::Error,
{
    // Resets VmHWM (Linux): the peak printed below is the replay's own.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = rss_mib().1;
    let server_before = match &backends {
        Some(b) => b.cpu().await?,
        None => Vec::new(),
    };
    let cpu_before = cpu_seconds("self").unwrap_or(0.0);
    let t0 = Instant::now();
    let outcome = store.replay(false, BENCH_NOW).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self").unwrap_or(0.0) - cpu_before;
    let (peak, rss) = rss_mib();
    // Backends still open after the replay (the pool keeps its connections): what each
    // used since, counting from zero one that was opened during the replay.
    let server = match &backends {
        Some(b) => Some(
            b.cpu()
                .await?
                .iter()
                .map(|(p, t)| {
                    t - server_before
                        .iter()
                        .find(|(q, _)| q == p)
                        .map_or(0.0, |(_, t0)| *t0)
                })
                .sum::<f64>(),
        ),
        None => None,
    };
    store.close().await;
    if let Some(b) = backends {
        b.admin.close().await;
    }
    let events = outcome.events as f64;
    let cpu_all = cpu + server.unwrap_or(0.0);
    println!(
        "{name}: replayed {} events in {secs:.1}s: {:.0} events/s; CPU {cpu:.1}s in the replay \
         process{}: {:.0} events per CPU-second; RSS before {before:.1} MiB, peak during the \
         replay {peak:.1} MiB{}, after {rss:.1} MiB; {} differences, {} invalid",
        outcome.events,
        events / secs,
        server.map_or_else(String::new, |s| format!(
            " + {s:.1}s in PostgreSQL's backends"
        )),
        events / cpu_all,
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
