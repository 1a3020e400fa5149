//! `mieruka replay` on SQLite: the log streamed in day order through one read
//! transaction, folded afresh, compared with the live aggregates; with `apply`, the whole
//! run is one write transaction that also swaps the rebuilt aggregates in and records
//! the plan's fingerprints, so readers see the old figures or the new, never a mix.

use futures_util::TryStreamExt;
use mieruka_ingest::Timestamp;
use sqlx::{Row, Sqlite, Transaction};

use super::{load_ledger, write_rows, SqliteStore, StoreError};
use std::collections::HashSet;

use crate::replay::{close_mismatches, Difference, Outcome, Replay};
use crate::store::close;
use crate::store::fingerprints;
use crate::store::tables::{Aggregate, Keys};

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
        let live = load_ledger(&mut tx, &self.plan).await?;
        let mut replay = Replay::new(&self.plan);
        {
            let mut rows = sqlx::query(
                "SELECT day, source, event_id, body, voided FROM event_log \
                 ORDER BY day, occurred_at, seq",
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                replay.push(
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get::<i64, _>(4)? != 0,
                );
            }
        }
        let outcome = Outcome::of(&replay, &live, now, apply);
        if apply {
            self.swap_in(&mut tx, &replay).await?;
        }
        tx.commit().await?;
        if apply {
            self.state.lock().await.consistent = false;
        }
        Ok(outcome)
    }

    /// Replaces every aggregate row by the replay's and records the plan's fingerprints
    /// (writers of another plan then refuse to commit).
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
