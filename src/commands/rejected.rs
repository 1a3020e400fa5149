//! `mieruka rejected`: the newest rejected events kept in the embedded store (reason,
//! field, place, raw text with personal numbers masked).

use std::process::ExitCode;

use crate::config::Resolved;

/// Prints the `limit` newest rejections of the store at `settings.db`.
pub async fn run(settings: &Resolved, limit: i64) -> anyhow::Result<ExitCode> {
    let db = &settings.db;
    if !db.exists() {
        anyhow::bail!("no store at {} (pass --db)", db.display());
    }
    let store = mieruka_aggregator::SqliteStore::open(db, settings.plan.clone()).await?;
    let rows = store.rejected(limit).await?;
    store.close().await;
    if rows.is_empty() {
        println!("no rejected events in {}", db.display());
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
