//! `mieruka replay` on PostgreSQL: the log read through two cursors of one snapshot (the
//! level-moving types in day order, then every other row in whatever order a sequential
//! scan gives, which needs no sort), folded afresh, compared with the live aggregates
//! read in the same snapshot. With `apply`, one READ COMMITTED transaction first
//! rewrites the plan fingerprint row — waiting for the batches in flight, which hold it
//! shared, and holding back the next ones, which then find the new fingerprint and
//! refuse to commit — then reads the log (every committed batch included), swaps the
//! rebuilt aggregates in and records the fingerprints: readers, each in one snapshot,
//! see the old figures or the new, never a mix.
//!
//! Distinct values go, batch by batch between fetches, to a temporary table of the
//! transaction (`replay_distinct`, dropped at its end), compared with `distinct_values`
//! in SQL and copied into it by `apply`: they never all sit in memory.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use mieruka_ingest::Timestamp;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use super::log::{logged_body, LOGGED};
use super::{PgError, PgStore, TxError, NOTIFY_CHANNEL};

use crate::fiscal::FiscalYear;
use crate::ledger::Ledger;
use crate::plan::{MeasureId, Plan};
use crate::replay::{close_mismatches, level_types, Difference, DistinctBatch, Outcome, Replay};
use crate::store::close;
use crate::store::fingerprints;
use crate::store::tables::{Aggregate, Dialect, Keys};

/// Rows fetched from a cursor at a time.
const FETCH: usize = 5_000;

impl PgStore {
    /// Re-derives each closed year's final figures from the events received by its
    /// close (voids received after it set aside) and returns where they differ from the
    /// frozen ones (see [`crate::replay::close_mismatches`]). One snapshot.
    pub async fn rederive_closes(&self) -> Result<Vec<Difference>, PgError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let closes = close::pg::read(&mut tx, &self.plan).await?;
        let mut out = Vec::new();
        for closed in closes.years.values() {
            let at = closed.closed_at.micros();
            let late_voids: HashSet<(String, String)> = sqlx::query_as(&format!(
                "SELECT e.source, {v} FROM event_log e WHERE e.received_at > $1 AND {v} IS NOT NULL",
                v = close::VOIDS_PG
            ))
            .bind(at)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            let mut replay = Replay::new(&self.plan);
            let sql = format!(
                "SELECT {LOGGED}, day FROM event_log WHERE received_at <= $1 ORDER BY day, occurred_at"
            );
            let mut rows = sqlx::query(&sql).bind(at).fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                let body = logged_body(&r)?;
                let (source, id): (String, String) = (r.try_get(4)?, r.try_get(3)?);
                let voided =
                    r.try_get::<bool, _>(2)? && !late_voids.contains(&(source.clone(), id.clone()));
                replay.push(r.try_get(9)?, &source, &id, &body, voided);
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
    pub async fn replay(&self, apply: bool, now: Timestamp) -> Result<Outcome, PgError> {
        let mut tx = self.pool.begin().await?;
        if apply {
            sqlx::query(
                "INSERT INTO plan_fingerprint (id, fingerprint) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
            )
            .bind(&self.prints.digest)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "CREATE TEMP TABLE replay_distinct (measure TEXT NOT NULL, fiscal_year INTEGER \
             NOT NULL, value TEXT NOT NULL, n BIGINT NOT NULL, \
             PRIMARY KEY (measure, fiscal_year, value)) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await?;
        if !apply {
            // Read only from here on, but for the temporary table.
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let live = self.load_live(&mut tx).await?;
        let mut replay = Replay::new(&self.plan);
        let levels = level_types(&self.plan);
        let types = array_literal(&levels);
        self.replay_cursor(
            &mut tx,
            &mut replay,
            &format!(
                "SELECT {LOGGED}, day FROM event_log WHERE type = ANY ({types}) \
                 ORDER BY day, occurred_at"
            ),
        )
        .await?;
        self.replay_cursor(
            &mut tx,
            &mut replay,
            &format!("SELECT {LOGGED}, day FROM event_log WHERE type <> ALL ({types})"),
        )
        .await?;
        replay.ledger.distinct_counts = distinct_counts(
            &mut tx,
            &self.plan,
            "SELECT measure, fiscal_year, count(*) FROM replay_distinct WHERE n > 0 \
             GROUP BY measure, fiscal_year",
        )
        .await?;
        let differ = self.distinct_rows_differ(&mut tx).await?;
        let outcome = Outcome::of(&replay, &live, now, apply, differ);
        if apply {
            self.swap_in(&mut tx, &replay)
                .await
                .map_err(TxError::once)?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Folds the rows of `select` (the columns of [`LOGGED`], then `day`) through a
    /// cursor, writing the distinct values to the scratch table between fetches.
    async fn replay_cursor(
        &self,
        conn: &mut PgConnection,
        replay: &mut Replay<'_>,
        select: &str,
    ) -> Result<(), PgError> {
        let declare = format!("DECLARE replay_log NO SCROLL CURSOR FOR {select}");
        sqlx::query(&declare)
            .persistent(false)
            .execute(&mut *conn)
            .await?;
        let fetch = format!("FETCH FORWARD {FETCH} FROM replay_log");
        loop {
            let rows = sqlx::query(&fetch)
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
            for r in &rows {
                let body = logged_body(r)?;
                replay.push(
                    r.try_get(9)?,
                    r.try_get(4)?,
                    r.try_get(3)?,
                    &body,
                    r.try_get(2)?,
                );
            }
            if replay.distinct_due() || rows.len() < FETCH {
                write_distinct(&mut *conn, &self.plan, replay.take_distinct()).await?;
            }
            if rows.len() < FETCH {
                break;
            }
        }
        sqlx::query("CLOSE replay_log").execute(&mut *conn).await?;
        Ok(())
    }

    /// The live aggregates without their distinct values: only the sets' sizes, counted
    /// in SQL.
    async fn load_live(&self, conn: &mut PgConnection) -> Result<Ledger, PgError> {
        let mut ledger = Ledger::default();
        for agg in Aggregate::ALL {
            if agg == Aggregate::Distinct {
                continue;
            }
            for r in sqlx::query(&agg.select_all(Dialect::Postgres))
                .fetch_all(&mut *conn)
                .await?
            {
                agg.read(&self.ids, &self.plan, &r, &mut ledger)?;
            }
        }
        ledger.distinct_counts = distinct_counts(
            conn,
            &self.plan,
            "SELECT measure, fiscal_year, count(*) FROM distinct_values WHERE n > 0 \
             GROUP BY measure, fiscal_year",
        )
        .await?;
        Ok(ledger)
    }

    /// Whether the replayed distinct values differ from the live ones of the plan's
    /// measures (a value for another, same sizes: no figure shows it).
    async fn distinct_rows_differ(&self, conn: &mut PgConnection) -> Result<bool, PgError> {
        let measures: Vec<&str> = self.plan.measures.iter().map(|m| m.id.as_str()).collect();
        Ok(sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT measure, fiscal_year, value, n FROM replay_distinct \
             WHERE n > 0 EXCEPT SELECT measure, fiscal_year, value, n FROM distinct_values \
             WHERE n > 0) OR EXISTS (SELECT measure, fiscal_year, value, n \
             FROM distinct_values WHERE n > 0 AND measure = ANY ($1::text[]) \
             EXCEPT SELECT measure, fiscal_year, value, n FROM replay_distinct WHERE n > 0)",
        )
        .bind(&measures)
        .fetch_one(&mut *conn)
        .await?)
    }

    /// Replaces every aggregate row by the replay's (distinct values from the scratch
    /// table) and records the plan's fingerprints.
    async fn swap_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        replay: &Replay<'_>,
    ) -> Result<(), TxError> {
        for agg in Aggregate::ALL {
            sqlx::query(&format!("DELETE FROM {}", agg.table().name))
                .execute(&mut **tx)
                .await?;
        }
        self.write_aggregates(tx, &Keys::all(&replay.ledger), &replay.ledger)
            .await?;
        sqlx::query(
            "INSERT INTO distinct_values (measure, fiscal_year, value, n) \
             SELECT measure, fiscal_year, value, n FROM replay_distinct WHERE n > 0",
        )
        .execute(&mut **tx)
        .await?;
        for table in ["measure_fingerprints", "plan_fingerprint"] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut **tx)
                .await?;
        }
        for mut q in fingerprints::inserts::<Postgres>(&self.prints) {
            q.build().execute(&mut **tx).await?;
        }
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// `ARRAY['a', 'b']::text[]`: the plan's type names as a literal (a cursor's query takes
/// no parameters), each quoted.
fn array_literal(names: &[&str]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("'{}'", n.replace('\'', "''")))
        .collect();
    format!("ARRAY[{}]::text[]", quoted.join(", "))
}

/// The sizes of the distinct sets a query (`measure, fiscal_year, count`) reads, for
/// the measures the plan has.
async fn distinct_counts(
    conn: &mut PgConnection,
    plan: &Plan,
    sql: &str,
) -> Result<HashMap<(MeasureId, FiscalYear), i64>, PgError> {
    let mut out = HashMap::new();
    for r in sqlx::query(sql).fetch_all(&mut *conn).await? {
        if let Some(m) = plan.measure(r.try_get(0)?) {
            out.insert((m, FiscalYear(r.try_get(1)?)), r.try_get(2)?);
        }
    }
    Ok(out)
}

/// Adds a batch of distinct values to the scratch table, in one statement.
async fn write_distinct(
    conn: &mut PgConnection,
    plan: &Plan,
    batch: DistinctBatch,
) -> Result<(), PgError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (mut measures, mut years, mut values, mut counts) = (
        Vec::with_capacity(batch.len()),
        Vec::with_capacity(batch.len()),
        Vec::with_capacity(batch.len()),
        Vec::with_capacity(batch.len()),
    );
    for ((m, y, value), n) in batch {
        measures.push(plan.measures[m].id.as_str());
        years.push(y.0);
        values.push(value.into_string());
        counts.push(n);
    }
    sqlx::query(
        "INSERT INTO replay_distinct (measure, fiscal_year, value, n) \
         SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int8[]) \
         ON CONFLICT (measure, fiscal_year, value) DO UPDATE SET n = replay_distinct.n + excluded.n",
    )
    .bind(&measures)
    .bind(&years)
    .bind(&values)
    .bind(&counts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
