//! `mieruka replay [--apply]`: re-folds the whole event log of a store (PostgreSQL when
//! a database URL is given, else the SQLite file) with the current plan, compares the
//! result with the live aggregates and prints every difference; `--apply` swaps the
//! rebuilt aggregates in atomically and records the plan's measure fingerprints — the
//! one way to start the roles with a plan whose measures changed.
//!
//! It also re-derives each closed fiscal year's final figures from the events received
//! by its close and reports any that differ.
//!
//! Exit code: 0 when the live aggregates equal the replay (or `--apply` replaced them)
//! and every final figure is re-derived, 1 on any difference left in place, 2 on an
//! error.

use std::process::ExitCode;

use anyhow::Context;
use mieruka_aggregator::replay::{Difference, Outcome};
use mieruka_aggregator::store::{PgStore, PlanCheck};
use mieruka_aggregator::SqliteStore;
use mieruka_ingest::Timestamp;

use crate::config::Resolved;

/// Replays the store the settings point to; `apply` swaps the result in.
pub async fn run(settings: &Resolved, apply: bool) -> anyhow::Result<ExitCode> {
    let plan = settings.plan.clone();
    let now = Timestamp::wall_clock();
    let started = std::time::Instant::now();
    let (outcome, name) = if let Ok(url) = settings.database_url() {
        let store = PgStore::open_with(url, plan, PlanCheck::Ignore)
            .await
            .context("cannot open the PostgreSQL store")?;
        let outcome = store.replay(apply, now).await;
        let closes = store.rederive_closes().await;
        store.close().await;
        ((outcome?, closes?), "the PostgreSQL store".to_owned())
    } else {
        let db = &settings.db;
        if !db.exists() {
            anyhow::bail!(
                "no store at {} (pass --db, or --database-url for PostgreSQL)",
                db.display()
            );
        }
        let store = SqliteStore::open_with(db, plan, PlanCheck::Ignore).await?;
        let outcome = store.replay(apply, now).await;
        let closes = store.rederive_closes().await;
        store.close().await;
        ((outcome?, closes?), db.display().to_string())
    };
    let (outcome, closes) = outcome;
    print!("{}", report(&outcome, &name, started.elapsed()));
    print!("{}", closes_report(&closes));
    Ok(
        if outcome.applied || (outcome.differences.is_empty() && closes.is_empty()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// What the re-derivation of the closed years' final figures found.
pub fn closes_report(mismatches: &[Difference]) -> String {
    if mismatches.is_empty() {
        return "closed years: every final figure equals what the events received by its close give\n"
            .to_owned();
    }
    let mut out = format!(
        "closed years: {} final figures differ from what the events received by their close give \
         (final vs re-derived; expected after a change of the measures since the close):\n",
        mismatches.len()
    );
    for d in mismatches {
        out.push_str(&format!("  {d}\n"));
    }
    out
}

/// What a replay prints: what it read, what no longer decodes, every difference, and
/// what was done about them.
pub fn report(outcome: &Outcome, name: &str, took: std::time::Duration) -> String {
    let mut out = format!(
        "replayed {} logged events of {name} in {:.1}s\n",
        outcome.events,
        took.as_secs_f64()
    );
    if outcome.invalid > 0 {
        out.push_str(&format!(
            "{} logged events no longer validate under the current plan (kept in the log, \
             counted nowhere); for example:\n",
            outcome.invalid
        ));
        for e in &outcome.examples {
            out.push_str(&format!(
                "  {}/{}: {}\n    {}\n",
                e.source, e.event_id, e.message, e.body
            ));
        }
    }
    if outcome.differences.is_empty() {
        out.push_str("the live aggregates equal the replay\n");
        return out;
    }
    out.push_str(&format!(
        "{} differences (live vs replayed):\n",
        outcome.differences.len()
    ));
    for d in &outcome.differences {
        out.push_str(&format!("  {d}\n"));
    }
    out.push_str(if outcome.applied {
        "applied: the replayed aggregates replaced the live ones\n"
    } else {
        "not applied: run `mieruka replay --apply` to replace the live aggregates\n"
    });
    out
}
