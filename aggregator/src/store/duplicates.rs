//! Duplicates seen per measure and day: what `explain` shows as "duplicates seen".
//!
//! A duplicate (the same key and the same body as a logged event) moves nothing, and is
//! not logged; but the measures its body feeds are its original's, so a batch counts it
//! once per (measure, day of its `occurred_at`) in its own transaction (with its Kafka
//! positions, for PostgreSQL): a re-delivered batch that rolled back counts nothing, a
//! committed one counts each of its duplicates exactly once. A conflicting duplicate
//! (same key, another body) is refused, not counted.
//!
//! The log has no trace of duplicates, so a replay cannot rebuild these counts: they are
//! an audit counter that `mieruka replay --apply` leaves as they are. Milestone stages
//! are not counted (a milestone KPI has no measure).

use std::collections::BTreeMap;

use mieruka_ingest::Event;
use sqlx::{PgConnection, QueryBuilder, SqliteConnection};

use crate::fiscal::Day;
use crate::ledger::{effects, Effect};
use crate::plan::Plan;

/// Rows per multi-row upsert (3 parameters a row: far below either dialect's limit).
const ROWS_PER_STATEMENT: usize = 500;

/// One upsert writer per dialect: the same SQL, which both dialects read alike.
macro_rules! write_fn {
    ($(#[$doc:meta])* $name:ident, $db:ty, $conn:ty) => {
        $(#[$doc])*
        pub async fn $name(&self, conn: &mut $conn) -> Result<(), sqlx::Error> {
            let rows: Vec<_> = self.0.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut q =
                    QueryBuilder::<$db>::new("INSERT INTO duplicate_counts (measure, day, n) ");
                q.push_values(chunk, |mut b, ((measure, day), n)| {
                    b.push_bind(measure.as_str()).push_bind(*day).push_bind(**n);
                });
                q.push(
                    " ON CONFLICT (measure, day) DO UPDATE SET n = duplicate_counts.n + excluded.n",
                );
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }
    };
}

/// A batch's duplicates, per (measure id, day): ordered by id, so that concurrent
/// PostgreSQL batches take the rows' locks in one order.
#[derive(Debug, Default)]
pub(crate) struct DuplicateCounts(BTreeMap<(String, i32), i64>);

impl DuplicateCounts {
    /// Counts a duplicate of `event`: 1 for each measure its body feeds, on its day.
    pub fn add(&mut self, plan: &Plan, event: &Event) {
        let day = Day::of(event.occurred_at).0;
        let mut seen = Vec::new();
        for eff in effects(plan, event) {
            let measure = match eff {
                Effect::Flow { measure, .. }
                | Effect::Distinct { measure, .. }
                | Effect::Delta { measure, .. }
                | Effect::Reset { measure, .. } => measure,
                Effect::Stage { .. } => continue,
            };
            // An event counts once per measure, whatever its routes.
            if !seen.contains(&measure) {
                seen.push(measure);
                *self
                    .0
                    .entry((plan.measures[measure].id.clone(), day))
                    .or_default() += 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    write_fn!(
        /// Adds the counts to the SQLite table, in the batch's transaction.
        write_sqlite,
        sqlx::Sqlite,
        SqliteConnection
    );
    write_fn!(
        /// Adds the counts to the PostgreSQL table, in the batch's transaction.
        write_pg,
        sqlx::Postgres,
        PgConnection
    );
}

/// Sums a measure's duplicates over days `from..=to` (SQLite).
pub(crate) async fn sum_sqlite(
    conn: &mut SqliteConnection,
    measure: &str,
    from: Day,
    to: Day,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(n), 0) FROM duplicate_counts \
         WHERE measure = ? AND day >= ? AND day <= ?",
    )
    .bind(measure)
    .bind(from.0)
    .bind(to.0)
    .fetch_one(conn)
    .await
}

/// Sums a measure's duplicates over days `from..=to` (PostgreSQL).
pub(crate) async fn sum_pg(
    conn: &mut PgConnection,
    measure: &str,
    from: Day,
    to: Day,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM duplicate_counts \
         WHERE measure = $1 AND day >= $2 AND day <= $3",
    )
    .bind(measure)
    .bind(from.0)
    .bind(to.0)
    .fetch_one(conn)
    .await
}
