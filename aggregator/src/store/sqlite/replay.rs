//! `mieruka replay` on SQLite: the log read in two passes of one read transaction (the
//! level-moving types in day order, then every other row page by page in `seq` order,
//! which needs no sort), folded afresh and compared with the live aggregates; with
//! `apply`, the whole run is one write transaction that also swaps the rebuilt
//! aggregates in and records the plan's fingerprints, so readers see the old figures or
//! the new, never a mix.
//!
//! Distinct values go to a temporary table of the replay's connection
//! (`temp.replay_distinct`, on disk: SQLite's temporary files), compared with
//! `distinct_values` in SQL and copied into it by `apply`. The rows of the level pass
//! stream through the connection, which cannot write meanwhile: distinct values of a
//! type that also moves a level (none in the Ome plan) are held in memory until that
//! pass ends.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use mieruka_ingest::Timestamp;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, Transaction};

use super::{write_rows, SqliteStore, StoreError};

use crate::fiscal::FiscalYear;
use crate::ledger::Ledger;
use crate::plan::{MeasureId, Plan};
use crate::replay::{close_mismatches, level_types, Difference, DistinctBatch, Outcome, Replay};
use crate::store::close;
use crate::store::fingerprints;
use crate::store::tables::{Aggregate, Dialect, Ids, Keys};

/// Rows of the log read per page in the second pass.
const PAGE: i64 = 10_000;

/// Rows per statement when a distinct batch is written.
const ROWS_PER_INSERT: usize = 500;

impl SqliteStore {
    /// Re-derives each closed year's final figures from the events received by its
    /// close (voids received after it set aside) and returns where they differ from the
    /// frozen ones (see [`crate::replay::close_mismatches`]). One read transaction.
    pub async fn rederive_closes(&self) -> Result<Vec<Difference>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let closes = close::sqlite::read(&mut tx, &self.plan).await?;
        let mut out = Vec::new();
        for closed in closes.years.values() {
            let at = closed.closed_at.micros();
            let late_voids: HashSet<(String, String)> = sqlx::query_as(&format!(
                "SELECT e.source, {v} FROM event_log e WHERE e.received_at > $1 AND {v} IS NOT NULL",
                v = close::VOIDS_SQLITE
            ))
            .bind(at)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            let mut replay = Replay::new(&self.plan);
            let mut rows = sqlx::query(
                "SELECT day, source, event_id, body, voided FROM event_log \
                 WHERE received_at <= $1 ORDER BY day, occurred_at, seq",
            )
            .bind(at)
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                let (source, id): (String, String) = (r.try_get(1)?, r.try_get(2)?);
                let voided = r.try_get::<i64, _>(4)? != 0
                    && !late_voids.contains(&(source.clone(), id.clone()));
                replay.push(r.try_get(0)?, &source, &id, r.try_get(3)?, voided);
            }
            drop(rows);
            // The figures are read from the ledger: distinct values stay in it here.
            replay.keep_distinct_in_ledger();
            out.extend(close_mismatches(&self.plan, closed, &replay.ledger));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Replays the whole log with the store's plan and compares; with `apply`, replaces
    /// the aggregates with the replayed ones. `now` is the instant the figures compared
    /// are computed at.
    pub async fn replay(&self, apply: bool, now: Timestamp) -> Result<Outcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        if apply {
            // Takes the write lock first; the version bump makes every other process
            // reload its ledger, and fences writers with another plan (see below).
            sqlx::query("UPDATE meta SET version = version + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
        }
        // A temporary table is the connection's own: creating and filling it takes no
        // lock on the store, so a replay without `apply` never holds writers back.
        sqlx::query("DROP TABLE IF EXISTS temp.replay_distinct")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TEMP TABLE replay_distinct (measure TEXT NOT NULL, fiscal_year INTEGER \
             NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL, \
             PRIMARY KEY (measure, fiscal_year, value)) WITHOUT ROWID",
        )
        .execute(&mut *tx)
        .await?;
        let live = load_live(&mut tx, &self.plan).await?;
        let mut replay = Replay::new(&self.plan);
        let levels = level_types(&self.plan);
        let types_list = placeholders(levels.len());
        if !levels.is_empty() {
            let sql = format!(
                "SELECT day, source, event_id, body, voided FROM event_log \
                 WHERE type IN ({types_list}) ORDER BY day, occurred_at, seq"
            );
            let mut q = sqlx::query(&sql);
            for t in &levels {
                q = q.bind(*t);
            }
            let mut rows = q.fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                push(&mut replay, &r)?;
            }
        }
        write_distinct(&mut tx, &self.plan, replay.take_distinct()).await?;
        let sql = format!(
            "SELECT day, source, event_id, body, voided, seq FROM event_log \
             WHERE seq > ? AND type NOT IN ({types_list}) ORDER BY seq LIMIT {PAGE}"
        );
        let mut after = i64::MIN;
        loop {
            let mut q = sqlx::query(&sql).bind(after);
            for t in &levels {
                q = q.bind(*t);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            for r in &rows {
                push(&mut replay, r)?;
                if replay.distinct_due() {
                    write_distinct(&mut tx, &self.plan, replay.take_distinct()).await?;
                }
            }
            match rows.last() {
                Some(r) if rows.len() as i64 == PAGE => after = r.try_get(5)?,
                _ => break,
            }
        }
        write_distinct(&mut tx, &self.plan, replay.take_distinct()).await?;
        replay.ledger.distinct_counts = distinct_counts(
            &mut tx,
            &self.plan,
            "SELECT measure, fiscal_year, count(*) FROM temp.replay_distinct WHERE n > 0 \
             GROUP BY measure, fiscal_year",
        )
        .await?;
        let differ = distinct_rows_differ(&mut tx, &self.plan).await?;
        let outcome = Outcome::of(&replay, &live, now, apply, differ);
        if apply {
            self.swap_in(&mut tx, &replay).await?;
        }
        sqlx::query("DROP TABLE temp.replay_distinct")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if apply {
            self.state.lock().await.consistent = false;
        }
        Ok(outcome)
    }

    /// Replaces every aggregate row by the replay's (distinct values from the scratch
    /// table) and records the plan's fingerprints (writers of another plan then refuse
    /// to commit).
    async fn swap_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        replay: &Replay<'_>,
    ) -> Result<(), StoreError> {
        for agg in Aggregate::ALL {
            sqlx::query(&format!("DELETE FROM {}", agg.table().name))
                .execute(&mut **tx)
                .await?;
        }
        write_rows(tx, &self.plan, &replay.ledger, &Keys::all(&replay.ledger)).await?;
        sqlx::query(
            "INSERT INTO distinct_values (measure, fiscal_year, value, n) \
             SELECT measure, fiscal_year, value, n FROM temp.replay_distinct WHERE n > 0",
        )
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM measure_fingerprints")
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM plan_fingerprint")
            .execute(&mut **tx)
            .await?;
        for mut q in fingerprints::inserts::<Sqlite>(&self.prints) {
            q.build().execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// `n` SQL placeholders, comma-separated (none for 0: SQLite takes `x NOT IN ()`, true).
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Folds one row (`day, source, event_id, body, voided`).
fn push(replay: &mut Replay<'_>, r: &sqlx::sqlite::SqliteRow) -> Result<(), sqlx::Error> {
    replay.push(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get::<i64, _>(4)? != 0,
    );
    Ok(())
}

/// The live aggregates without their distinct values: only the sets' sizes, counted in
/// SQL.
async fn load_live(conn: &mut SqliteConnection, plan: &Plan) -> Result<Ledger, StoreError> {
    let ids = Ids::new(plan);
    let mut ledger = Ledger::default();
    for agg in Aggregate::ALL {
        if agg == Aggregate::Distinct {
            continue;
        }
        for r in sqlx::query(&agg.select_all(Dialect::Sqlite))
            .fetch_all(&mut *conn)
            .await?
        {
            agg.read(&ids, plan, &r, &mut ledger)?;
        }
    }
    ledger.distinct_counts = distinct_counts(
        conn,
        plan,
        "SELECT measure, fiscal_year, count(*) FROM distinct_values WHERE n > 0 \
         GROUP BY measure, fiscal_year",
    )
    .await?;
    Ok(ledger)
}

/// The sizes of the distinct sets a query (`measure, fiscal_year, count`) reads, for
/// the measures the plan has.
async fn distinct_counts(
    conn: &mut SqliteConnection,
    plan: &Plan,
    sql: &str,
) -> Result<HashMap<(MeasureId, FiscalYear), i64>, StoreError> {
    let mut out = HashMap::new();
    for r in sqlx::query(sql).fetch_all(&mut *conn).await? {
        if let Some(m) = plan.measure(r.try_get(0)?) {
            out.insert((m, FiscalYear(r.try_get(1)?)), r.try_get(2)?);
        }
    }
    Ok(out)
}

/// Adds a batch of distinct values to the scratch table.
async fn write_distinct(
    conn: &mut SqliteConnection,
    plan: &Plan,
    batch: DistinctBatch,
) -> Result<(), StoreError> {
    let rows: Vec<_> = batch.into_iter().collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO temp.replay_distinct (measure, fiscal_year, value, n) ",
        );
        q.push_values(chunk, |mut b, ((m, y, value), n)| {
            b.push_bind(plan.measures[*m].id.as_str())
                .push_bind(y.0)
                .push_bind(&**value)
                .push_bind(*n);
        });
        q.push(" ON CONFLICT (measure, fiscal_year, value) DO UPDATE SET n = n + excluded.n");
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Whether the replayed distinct values differ from the live ones of the plan's
/// measures (a value for another, same sizes: no figure shows it).
async fn distinct_rows_differ(
    conn: &mut SqliteConnection,
    plan: &Plan,
) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT EXISTS (SELECT measure, fiscal_year, value, n FROM temp.replay_distinct \
         WHERE n > 0 EXCEPT SELECT measure, fiscal_year, value, n FROM distinct_values \
         WHERE n > 0) OR EXISTS (SELECT measure, fiscal_year, value, n FROM distinct_values \
         WHERE n > 0 AND measure IN ({}) EXCEPT SELECT measure, fiscal_year, value, n \
         FROM temp.replay_distinct WHERE n > 0)",
        placeholders(plan.measures.len())
    );
    let mut q = sqlx::query_scalar::<_, i64>(&sql);
    for m in &plan.measures {
        q = q.bind(m.id.as_str());
    }
    Ok(q.fetch_one(&mut *conn).await? != 0)
}
