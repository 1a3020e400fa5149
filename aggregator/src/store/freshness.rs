//! When each source was last heard from (`source_freshness`), shared by both dialects:
//! which sources a batch heard from, and how a kept row reads back.
//!
//! Written where events are committed — one statement per batch, one row per source —
//! so that every transport (HTTP, Kafka, `mieruka import`, the inboxes) moves it alike,
//! and read by the roles that serve the KPIs, so that
//! `mieruka_source_last_received_timestamp_seconds` survives restarts.

use mieruka_ingest::Item;
use sqlx::{PgConnection, SqliteConnection};

use crate::store::row::ReadRow;

/// The columns a row is read from, in [`SourceFreshness`]'s order.
const COLUMNS: &str = "source, known_since, last_received";

/// A source's row: when it was last heard from, or since when it is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFreshness {
    /// The configured source label.
    pub source: String,
    /// When a role's configuration first declared it (µs since the Unix epoch).
    pub known_since_micros: i64,
    /// When one of its events last arrived, whatever became of it (µs); `None`: never.
    pub last_received_micros: Option<i64>,
}

impl SourceFreshness {
    /// The instant a silence is counted from, in Unix seconds: the last arrival, or, for
    /// a source never heard from, when it was declared (a configured line system that has
    /// never sent is as silent as one that stopped).
    pub fn last_heard_unix_seconds(&self) -> f64 {
        self.last_received_micros.unwrap_or(self.known_since_micros) as f64 / 1e6
    }
}

/// The sources a batch heard from, sorted and distinct: an event's own `source` when it
/// decoded, else the item's configured label. Request data may name any source, which
/// is why a batch only moves the rows of sources already declared.
pub(crate) fn heard_from<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<String> {
    let mut sources: Vec<&str> = Vec::new();
    for item in items {
        let source = match &item.outcome {
            Ok(event) => event.source.as_str(),
            Err(_) => item.source_label.as_str(),
        };
        // Batches are mostly runs of one source: compare with the last one first.
        if sources.last() != Some(&source) {
            sources.push(source);
        }
    }
    sources.sort_unstable();
    sources.dedup();
    sources.into_iter().map(str::to_owned).collect()
}

/// SQLite: declares `sources` (known from now on, unless known already).
pub(crate) async fn declare_sqlite(
    conn: &mut SqliteConnection,
    sources: &[String],
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO source_freshness (source, known_since) \
               SELECT value, ?1 FROM json_each(?2) WHERE true ON CONFLICT (source) DO NOTHING";
    sqlx::query(sql)
        .bind(now_micros)
        .bind(json_list(sources))
        .execute(conn)
        .await
        .map(drop)
}

/// SQLite: the batch heard from `sources` at `received_micros` (declared ones only).
pub(crate) async fn heard_sqlite(
    conn: &mut SqliteConnection,
    sources: &[String],
    received_micros: i64,
) -> Result<(), sqlx::Error> {
    if sources.is_empty() {
        return Ok(());
    }
    let sql = "UPDATE source_freshness SET last_received = max(coalesce(last_received, ?1), ?1) \
               WHERE source IN (SELECT value FROM json_each(?2))";
    sqlx::query(sql)
        .bind(received_micros)
        .bind(json_list(sources))
        .execute(conn)
        .await
        .map(drop)
}

/// SQLite: every declared source's row, by source.
pub(crate) async fn read_sqlite(
    conn: &mut SqliteConnection,
) -> Result<Vec<SourceFreshness>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM source_freshness ORDER BY source"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(read_row).collect()
}

/// PostgreSQL: declares `sources` (known from now on, unless known already).
pub(crate) async fn declare_pg(
    conn: &mut PgConnection,
    sources: &[String],
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO source_freshness (source, known_since) \
               SELECT s, $1 FROM UNNEST($2::text[]) AS s ORDER BY s ON CONFLICT (source) DO NOTHING";
    sqlx::query(sql)
        .bind(now_micros)
        .bind(sources)
        .execute(conn)
        .await
        .map(drop)
}

/// PostgreSQL: the batch heard from `sources` at `received_micros` (declared ones only).
///
/// The rows are locked in source order, as every replica does, so two batches that
/// heard from the same sources queue instead of deadlocking; a batch writes them last,
/// just before it commits, to hold them briefly.
pub(crate) async fn heard_pg(
    conn: &mut PgConnection,
    sources: &[String],
    received_micros: i64,
) -> Result<(), sqlx::Error> {
    if sources.is_empty() {
        return Ok(());
    }
    let sql = "WITH locked AS (SELECT source FROM source_freshness WHERE source = ANY($2) \
                                ORDER BY source FOR UPDATE) \
               UPDATE source_freshness f \
               SET last_received = GREATEST(coalesce(f.last_received, $1), $1) \
               FROM locked WHERE f.source = locked.source";
    sqlx::query(sql)
        .bind(received_micros)
        .bind(sources)
        .execute(conn)
        .await
        .map(drop)
}

/// PostgreSQL: every declared source's row, by source.
pub(crate) async fn read_pg(conn: &mut PgConnection) -> Result<Vec<SourceFreshness>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM source_freshness ORDER BY source"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(read_row).collect()
}

/// A row of [`COLUMNS`].
fn read_row(r: &impl ReadRow) -> Result<SourceFreshness, sqlx::Error> {
    Ok(SourceFreshness {
        source: r.text(0)?.to_owned(),
        known_since_micros: r.int8(1)?,
        last_received_micros: r.opt_int8(2)?,
    })
}

/// A JSON array of strings, for SQLite's `json_each`.
fn json_list(sources: &[String]) -> String {
    serde_json::to_string(sources).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_never_heard_from_counts_its_silence_from_when_it_was_declared() {
        let row = SourceFreshness {
            source: "juki".into(),
            known_since_micros: 1_700_000_000_000_000,
            last_received_micros: None,
        };
        assert_eq!(row.last_heard_unix_seconds(), 1_700_000_000.0);
        let heard = SourceFreshness {
            last_received_micros: Some(1_800_000_000_500_000),
            ..row
        };
        assert_eq!(heard.last_heard_unix_seconds(), 1_800_000_000.5);
    }
}
