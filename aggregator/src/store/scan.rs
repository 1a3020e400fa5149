//! Reading the event log back, page by page, for `explain`: every logged event of some
//! types that occurred before an instant, voided or not, handed to a callback one at a
//! time. Keyset pages of [`PAGE`] rows keep memory flat in the size of the log, and no
//! transaction is held open between pages (a reader must not hold writers back).

use mieruka_ingest::Timestamp;
use sqlx::{PgPool, Row, SqlitePool};

use crate::engine::LogEntry;
use crate::plan::Plan;

/// Rows read per query: large enough that round trips do not dominate, small enough
/// that a page of ~250-byte bodies is a few MB at most.
const PAGE: i64 = 5_000;

/// What to read back: the event types, and the instant events must have occurred before.
#[derive(Clone, Copy, Debug)]
pub struct LogScan<'a> {
    /// Names of the event types wanted.
    pub types: &'a [String],
    /// Only events that occurred strictly before this instant.
    pub before: Timestamp,
}

/// Handed each logged event read back.
pub type OnEntry<'a> = &'a mut (dyn FnMut(&LogEntry) + Send);

/// The SQLite dialect: pages by the log's `seq`.
pub(crate) async fn scan_sqlite(
    pool: &SqlitePool,
    plan: &Plan,
    scan: LogScan<'_>,
    each: OnEntry<'_>,
) -> Result<u64, sqlx::Error> {
    let types = serde_json::to_string(scan.types).unwrap_or_else(|_| "[]".into());
    let (mut after, mut undecoded) = (i64::MIN, 0);
    loop {
        let rows = sqlx::query(
            "SELECT seq, body, fingerprint, voided FROM event_log \
             WHERE seq > ? AND occurred_at < ? AND type IN (SELECT value FROM json_each(?)) \
             ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(scan.before.micros())
        .bind(&types)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        for r in &rows {
            after = r.try_get(0)?;
            let voided = r.try_get::<i64, _>(3)? != 0;
            match LogEntry::from_stored(plan, r.try_get(1)?, r.try_get(2)?, voided) {
                Some(entry) => each(&entry),
                None => undecoded += 1,
            }
        }
        if (rows.len() as i64) < PAGE {
            return Ok(undecoded);
        }
    }
}

/// The PostgreSQL dialect: pages by the log's unique key (`generation`, `event_id`,
/// `source`).
pub(crate) async fn scan_pg(
    pool: &PgPool,
    plan: &Plan,
    scan: LogScan<'_>,
    each: OnEntry<'_>,
) -> Result<u64, sqlx::Error> {
    let mut after: Option<(i32, String, String)> = None;
    let mut undecoded = 0;
    loop {
        let key = super::pg::KEY_ORDER;
        let sql = format!(
            "SELECT {}, generation FROM event_log \
             WHERE type = ANY($1::text[]) AND occurred_at < $2 {} \
             ORDER BY {key} LIMIT $3",
            super::pg::LOGGED,
            if after.is_some() {
                format!("AND ({key}) > ($4, $5, $6)")
            } else {
                String::new()
            }
        );
        let mut q = sqlx::query(&sql)
            .bind(scan.types)
            .bind(scan.before.micros())
            .bind(PAGE);
        if let Some((generation, id, source)) = &after {
            q = q.bind(*generation).bind(id.clone()).bind(source.clone());
        }
        let rows = q.fetch_all(pool).await?;
        for r in &rows {
            match super::pg::logged_entry(plan, r)? {
                Some(entry) => each(&entry),
                None => undecoded += 1,
            }
        }
        match rows.last() {
            // The generation after LOGGED's columns, and its columns 3 and 4 (the id
            // and the source): the key the pages follow.
            Some(last) if rows.len() as i64 == PAGE => {
                after = Some((last.try_get(9)?, last.try_get(3)?, last.try_get(4)?));
            }
            _ => return Ok(undecoded),
        }
    }
}
