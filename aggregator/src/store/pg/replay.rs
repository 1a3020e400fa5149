//! `mieruka replay` on PostgreSQL: the log streamed in day order, folded afresh,
//! compared with the live aggregates read in the same snapshot. With `apply`, one READ
//! COMMITTED transaction first rewrites the plan fingerprint row — waiting for the
//! batches in flight, which hold it shared, and holding back the next ones, which then
//! find the new fingerprint and refuse to commit — then reads the log (every committed
//! batch included), swaps the rebuilt aggregates in and records the fingerprints:
//! readers, each in one snapshot, see the old figures or the new, never a mix.

use futures_util::TryStreamExt;
use mieruka_ingest::Timestamp;
use sqlx::{Postgres, Row, Transaction};

use super::log::{logged_body, LOGGED};
use super::{PgError, PgStore, TxError, NOTIFY_CHANNEL};
use std::collections::HashSet;

use crate::replay::{close_mismatches, Difference, Outcome, Replay};
use crate::store::close;
use crate::store::fingerprints;
use crate::store::tables::{Aggregate, Keys};

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
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let live = self.load_ledger(&mut tx).await?;
        let mut replay = Replay::new(&self.plan);
        {
            let sql = format!("SELECT {LOGGED}, day FROM event_log ORDER BY day, occurred_at");
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                let body = logged_body(&r)?;
                replay.push(
                    r.try_get(9)?,
                    r.try_get(4)?,
                    r.try_get(3)?,
                    &body,
                    r.try_get(2)?,
                );
            }
        }
        let outcome = Outcome::of(&replay, &live, now, apply);
        if apply {
            self.swap_in(&mut tx, &replay)
                .await
                .map_err(TxError::once)?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Replaces every aggregate row by the replay's and records the plan's fingerprints.
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
