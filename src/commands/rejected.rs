//! `mieruka rejected`: the rejected events kept in a store — when each was received, its
//! place, reason, field, message and raw text with personal numbers masked — filtered
//! by source, reason and time, then a summary by source and reason. PostgreSQL's store
//! when a database URL is given (where the `ingest` and `aggregate` roles and a
//! production `import` keep them), else the embedded SQLite store's (`standalone`,
//! `import` and inboxes). One listing for both, through the [`Store`] trait.

use std::process::ExitCode;

use anyhow::Context;
use mieruka_aggregator::store::{PgStore, RejectedCount, RejectedFilter, Store};
use mieruka_aggregator::{RejectedRow, SqliteStore};
use mieruka_ingest::{Reason, Timestamp};

use crate::config::Resolved;

/// What to list: the filter and how many rows at most.
#[derive(Clone, Debug)]
pub struct Query {
    /// Every condition the rows must meet.
    pub filter: RejectedFilter,
    /// Most rows listed, newest first (the summary counts them all).
    pub limit: i64,
}

impl Query {
    /// The query of the command line: `--source`, `--reason` (checked against the
    /// closed list) and `--since` (RFC 3339, or a duration back from `now` such as
    /// `24h` or `7d`).
    pub fn parse(
        source: Option<String>,
        reason: Option<String>,
        since: Option<&str>,
        limit: i64,
        now: Timestamp,
    ) -> anyhow::Result<Query> {
        if let Some(r) = &reason {
            if Reason::from_code(r).is_none() {
                let known: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
                anyhow::bail!(
                    "--reason {r:?} is not a rejection reason; expected one of: {}",
                    known.join(", ")
                );
            }
        }
        let since_micros = since.map(|s| since_micros(s, now)).transpose()?;
        Ok(Query {
            filter: RejectedFilter {
                source,
                reason,
                since_micros,
            },
            limit,
        })
    }
}

/// `--since`: an RFC 3339 instant, or a duration (`90m`, `24h`, `7d`) before `now`.
fn since_micros(s: &str, now: Timestamp) -> anyhow::Result<i64> {
    if let Ok(t) = Timestamp::parse_rfc3339(s) {
        return Ok(t.micros());
    }
    let secs = mieruka_exporter::rules::parse_duration(s).map_err(|e| {
        anyhow::anyhow!(
            "--since {s:?} is neither an RFC 3339 instant (2026-05-01T00:00:00+09:00) nor a duration (24h, 7d): {e}"
        )
    })?;
    let back = i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000))
        .context("--since: duration too long")?;
    Ok(now.micros().saturating_sub(back))
}

/// Lists the rejections of the store the settings point to that match `query`.
pub async fn run(settings: &Resolved, query: &Query) -> anyhow::Result<ExitCode> {
    let plan = settings.plan.clone();
    if let Ok(url) = settings.database_url() {
        let store = PgStore::open(url, plan)
            .await
            .context("cannot open the PostgreSQL store")?;
        return list(&store, "the PostgreSQL store", query).await;
    }
    let db = super::existing_db(settings)?;
    let store = SqliteStore::open(db, plan).await?;
    list(&store, &db.display().to_string(), query).await
}

/// Prints the matching rows of `store` (named `name`), newest first, then the summary.
async fn list<S: Store>(store: &S, name: &str, query: &Query) -> anyhow::Result<ExitCode> {
    let rows = store.rejected_matching(&query.filter, query.limit).await;
    let summary = store.rejected_summary(&query.filter).await;
    store.close().await;
    let (rows, summary) = (rows?, summary?);
    if rows.is_empty() {
        println!("no rejected events{} in {name}", described(&query.filter));
        return Ok(ExitCode::SUCCESS);
    }
    for r in &rows {
        println!("{}", row_text(r));
    }
    println!("{}", summary_text(&summary, rows.len()));
    Ok(ExitCode::SUCCESS)
}

/// One kept rejection: when, where, why, and the masked raw text on its own line.
fn row_text(r: &RejectedRow) -> String {
    format!(
        "{} {} [{}] {}: {} (source label {}, event_id {})\n    {}",
        jst(r.received_at_micros),
        r.position,
        r.reason,
        r.field.as_deref().unwrap_or("event"),
        r.message,
        r.source,
        r.event_id.as_deref().unwrap_or("-"),
        r.raw
    )
}

/// The counts by source and reason of every matching row (not only those listed).
fn summary_text(summary: &[RejectedCount], listed: usize) -> String {
    let total: i64 = summary.iter().map(|c| c.count).sum();
    let mut out =
        format!("\n{total} rejected in all ({listed} newest listed above), by source and reason:");
    for c in summary {
        out.push_str(&format!(
            "\n  {:<16} {:<22} {:>8}   first {}, last {}",
            c.source,
            c.reason,
            c.count,
            jst(c.first_micros),
            jst(c.last_micros)
        ));
    }
    out
}

/// The filter in words, for "no rejected events …".
fn described(f: &RejectedFilter) -> String {
    let mut out = String::new();
    if let Some(s) = &f.source {
        out.push_str(&format!(" of source {s}"));
    }
    if let Some(r) = &f.reason {
        out.push_str(&format!(" for {r}"));
    }
    if let Some(t) = f.since_micros {
        out.push_str(&format!(" since {}", jst(t)));
    }
    out
}

/// An instant as operators in Japan read it: `2026-05-01 10:15:00+09:00`.
fn jst(micros: i64) -> String {
    let (y, mo, d, h, mi, s) = Timestamp::from_micros(micros).to_civil(9 * 3600);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}+09:00")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-02T00:00:00+09:00").unwrap()
    }

    #[test]
    fn since_takes_an_instant_or_a_duration_back_from_now() {
        let day = 86_400 * 1_000_000;
        assert_eq!(since_micros("1d", now()).unwrap(), now().micros() - day);
        let t = "2026-05-01T00:00:00+09:00";
        assert_eq!(since_micros(t, now()).unwrap(), now().micros() - day);
        let err = since_micros("yesterday", now()).unwrap_err().to_string();
        assert!(err.contains("neither an RFC 3339 instant"), "{err}");
    }

    #[test]
    fn an_unknown_reason_is_refused_with_the_list() {
        let err = Query::parse(None, Some("bad_time".into()), None, 20, now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad_timestamp"), "{err}");
        assert!(Query::parse(None, Some("bad_timestamp".into()), None, 20, now()).is_ok());
    }

    #[test]
    fn received_times_read_in_japan_time() {
        assert_eq!(jst(now().micros()), "2026-05-02 00:00:00+09:00");
    }
}
