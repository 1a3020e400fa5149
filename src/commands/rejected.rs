//! `mieruka rejected`: the newest rejected events kept in a store (reason, field, place,
//! raw text with personal numbers masked): PostgreSQL's when a database URL is given
//! (where the aggregators and a production `import` keep them), else the embedded
//! SQLite store's. One listing for both, through the [`Store`] trait.

use std::process::ExitCode;

use anyhow::Context;
use mieruka_aggregator::store::PgStore;
use mieruka_aggregator::store::Store;
use mieruka_aggregator::SqliteStore;

use crate::config::Resolved;

/// Prints the `limit` newest rejections of the store the settings point to.
pub async fn run(settings: &Resolved, limit: i64) -> anyhow::Result<ExitCode> {
    let plan = settings.plan.clone();
    if let Ok(url) = settings.database_url() {
        let store = PgStore::open(url, plan)
            .await
            .context("cannot open the PostgreSQL store")?;
        return list(&store, "the PostgreSQL store", limit).await;
    }
    let db = &settings.db;
    if !db.exists() {
        anyhow::bail!(
            "no store at {} (pass --db, or --database-url for PostgreSQL)",
            db.display()
        );
    }
    let store = SqliteStore::open(db, plan).await?;
    list(&store, &db.display().to_string(), limit).await
}

/// Prints the `limit` newest rejections of `store` (named `name` when there are none).
async fn list<S: Store>(store: &S, name: &str, limit: i64) -> anyhow::Result<ExitCode> {
    let rows = store.rejected(limit).await;
    store.close().await;
    let rows = rows?;
    if rows.is_empty() {
        println!("no rejected events in {name}");
    }
    for r in rows {
        println!(
            "{} [{}] {}: {} (source label {}, event_id {})\n    {}",
            r.position,
            r.reason,
            r.field.as_deref().unwrap_or("event"),
            r.message,
            r.source,
            r.event_id.as_deref().unwrap_or("-"),
            r.raw
        );
    }
    Ok(ExitCode::SUCCESS)
}
