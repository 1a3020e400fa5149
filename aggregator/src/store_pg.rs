//! The store on PostgreSQL: the same event log, aggregates and rejected events as the
//! SQLite store, shared by several aggregator replicas that write at once, plus the Kafka
//! source positions that commit in the same transaction as the batch they end.
//!
//! Why concurrent replicas cannot corrupt the numbers. Kafka messages are keyed by
//! `source/event_id` (a void by its target), so every event of one key, and every void
//! of it, reaches one partition, which one consumer owns: the log rows of a key (its
//! entry, its `voided` flag, its pending void) have one writer, and a batch reads them up
//! front without locks. The consumer proves it still owns its partitions by moving their
//! stored offsets with a conditional update, first thing in the transaction; one that
//! lost a partition in a rebalance finds the offset moved (or waits for the new owner's
//! commit, then finds it moved), and its whole batch rolls back ([`PgError::Fenced`]).
//! The aggregate rows (today's konbini flow, a level's day) are shared by every replica,
//! so a batch, in one READ COMMITTED transaction, locks exactly the rows it can touch
//! (the effects of its events and of the logged originals its voids retract), creating
//! missing ones as zero placeholders, then `SELECT … ORDER BY key FOR UPDATE`: one sorted
//! order for every replica, so replicas queue rather than deadlock (a deadlock or a row
//! deleted under the lock is retried with the whole transaction). It folds into a partial
//! ledger built from the locked rows and writes back absolute values, which is right
//! because nobody else can move those rows until it commits. A snapshot needs the live
//! deltas of its day from the log; they are read after the lock on that level day is
//! held, and every writer of such a delta holds the same lock until it commits, so none
//! is missing. Replicas thus serialise only on the aggregate rows they share, and since
//! the engine is order-independent the tables end as the engine's ledger over all events,
//! whatever the interleaving. The one-writer-per-key argument rests on the Kafka keying:
//! two writers that take the same key at the same instant (two HTTP receivers sharing
//! one database) could race a void against its original.
//!
//! The store keeps no folded state between batches (each attempt folds into a partial
//! ledger of the rows it locked, dropped with the attempt; readers load the tables), so a
//! batch that fails, panics or is dropped half-way leaves only a transaction that rolls
//! back, on a connection that is closed rather than reused (`CloseIfDropped`).
//!
//! Summed amounts are i128, in NUMERIC(39, 0) columns read and written as decimal text
//! (see `migrations/postgres/0004_wide_sums.sql`).

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mieruka_ingest::{EventSink, Item, Position, Reason, Rejection, SinkError, Status, Timestamp};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};

use crate::engine::{fold, fold_tracked, BatchLog, EventLog, LogEntry, MemoryLog};
use crate::fiscal::{Day, FiscalYear};
use crate::ledger::{AsOf, Effect, Ledger, LevelDay, Snapshot};
use crate::plan::{KpiId, MeasureId, MeasureKind, Op, Plan};
use crate::store::{parse_amount, RejectedRow};

/// The channel notified (on commit) after every committed batch.
pub const NOTIFY_CHANNEL: &str = "mieruka_committed";

/// Attempts of one batch before a deadlock or a lost race is reported as contention.
const MAX_ATTEMPTS: u32 = 8;

/// Batches that look their keys up first after one found a key already logged: a stream
/// that re-sends events is not made to fail its optimistic attempt batch after batch.
const CAREFUL_AFTER_CONFLICT: u32 = 16;

/// Why the PostgreSQL store failed. Every variant means nothing of the batch was committed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The database could not be reached, read or written.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another consumer committed past the offset this one expected: it lost the partition.
    #[error(
        "fenced: this consumer lost partition {partition} of topic {topic} (its stored offset \
         moved past the one this consumer expected); the batch was rolled back"
    )]
    Fenced {
        /// The topic.
        topic: String,
        /// The partition this consumer no longer owns.
        partition: i32,
    },
    /// The store's two passes over a batch disagreed: a bug, reported rather than
    /// committed.
    #[error("internal inconsistency, batch not committed: {0}")]
    Inconsistent(String),
    /// A stored aggregate is not what this store writes (edited by hand or damaged): an
    /// operator must look.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The batch kept losing races against other replicas (deadlocks, concurrent deletes).
    #[error("gave up after {attempts} attempts against concurrent writers: {reason}")]
    Contention {
        /// How many times the batch was tried.
        attempts: u32,
        /// The last reason to retry.
        reason: String,
    },
}

impl From<PgError> for SinkError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Database(_) | PgError::Contention { .. } => {
                SinkError::Unavailable(e.to_string())
            }
            // Fenced: retrying cannot help; the consumer must drop the partition (and
            // seek anew from `positions()` if it is assigned again).
            PgError::Fenced { .. }
            | PgError::Migrate(_)
            | PgError::Inconsistent(_)
            | PgError::Corrupt(_) => SinkError::Fatal(e.to_string()),
        }
    }
}

/// A Kafka partition's offsets, committed with a batch: the fence of the `aggregate` role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset this consumer believes is stored; `None`: no row yet.
    pub expected: Option<i64>,
    /// The next offset to consume after this batch.
    pub next: i64,
}

/// Where a rejected event was read in Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The message's offset.
    pub offset: i64,
}

/// Plan ids resolved once: rows are keyed by ids, the ledger by positions.
struct Ids {
    measure: HashMap<String, MeasureId>,
    kpi: HashMap<String, KpiId>,
    /// Names of the types whose events can move a level (what a snapshot's day needs).
    level_types: Vec<String>,
}

impl Ids {
    fn new(plan: &Plan) -> Self {
        let level_types = plan
            .schema
            .types()
            .iter()
            .enumerate()
            .filter(|(t, _)| {
                plan.routes.get(*t).into_iter().flatten().any(|r| {
                    r.op == Op::Sub
                        || (r.op != Op::Reset
                            && plan.measures[r.measure].kind == MeasureKind::Level)
                })
            })
            .map(|(_, ty)| ty.name.clone())
            .collect();
        Self {
            measure: plan
                .measures
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), MeasureId(i)))
                .collect(),
            kpi: plan
                .kpis
                .iter()
                .enumerate()
                .map(|(i, k)| (k.id.clone(), KpiId(i)))
                .collect(),
            level_types,
        }
    }

    fn stage(&self, plan: &Plan, kpi: &str, stage: &str) -> Option<(KpiId, u16)> {
        let k = *self.kpi.get(kpi)?;
        let s = plan.kpis[k].stages()?.iter().position(|s| s.id == stage)?;
        Some((k, u16::try_from(s).ok()?))
    }

    fn as_of(&self, plan: &Plan, key: &str) -> Option<AsOf> {
        if let Some(m) = key.strip_prefix("m:") {
            self.measure.get(m).copied().map(AsOf::Measure)
        } else {
            let _ = plan;
            self.kpi
                .get(key.strip_prefix("k:")?)
                .copied()
                .map(AsOf::Kpi)
        }
    }
}

fn stage_id(plan: &Plan, kpi: KpiId, stage: u16) -> &str {
    plan.kpis[kpi]
        .stages()
        .and_then(|st| st.get(usize::from(stage)))
        .map_or("", |st| st.id.as_str())
}

fn as_of_key(plan: &Plan, ix: AsOf) -> String {
    ix.key(plan)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// How one attempt of a batch ended without committing.
enum TxError {
    /// Lost a race against another replica: try the whole batch again.
    Retry(String),
    /// An optimistic attempt met a key already logged: try again looking the keys up.
    Logged,
    /// Give up.
    Fail(PgError),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        // 40P01 deadlock, 40001 serialization failure, 23505 unique violation (two
        // writers logging one key at once: the retry finds it and reports a duplicate).
        let transient = matches!(
            &e,
            sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001" | "23505"))
        );
        if transient {
            TxError::Retry(e.to_string())
        } else {
            TxError::Fail(PgError::Database(e))
        }
    }
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    plan: Arc<Plan>,
    ids: Ids,
    /// Batches still to look their keys up before logging (see [`Lookup`]).
    careful: AtomicU32,
}

/// How a batch learns which of its own keys are logged already.
///
/// Most batches hold only new events: re-sends are rare, and a redelivery after a crash
/// starts at the stored offsets. An `Optimistic` batch therefore looks up only what it
/// cannot learn otherwise — its voids and their targets, and pending voids of sources
/// that have any — and lets the log's primary key catch an event logged before: the `COPY` fails
/// (unique violation), the transaction rolls back, and the batch runs again `Careful`,
/// which looks every key up first (as do the next [`CAREFUL_AFTER_CONFLICT`] batches).
/// Either way a key is decided against the log as committed, so the figures are the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    Optimistic,
    Careful,
}

impl PgStore {
    /// Connects to the database at `url` and migrates it.
    #[tracing::instrument(skip_all, err)]
    pub async fn open(url: &str, plan: Arc<Plan>) -> Result<Self, PgError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let ids = Ids::new(&plan);
        Ok(Self {
            pool,
            plan,
            ids,
            careful: AtomicU32::new(0),
        })
    }

    /// The plan the store folds with.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// A copy of the whole ledger, loaded from the tables.
    pub async fn ledger(&self) -> Result<Ledger, PgError> {
        self.with_ledger(Ledger::clone).await
    }

    /// Loads the whole ledger from the tables (one consistent snapshot) and runs `f` on it.
    pub async fn with_ledger<R>(&self, f: impl FnOnce(&Ledger) -> R) -> Result<R, PgError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let ledger = self.load_ledger(&mut tx).await?;
        tx.commit().await?;
        Ok(f(&ledger))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The most recent rejected events, newest first.
    pub async fn rejected(&self, limit: i64) -> Result<Vec<RejectedRow>, PgError> {
        Ok(self
            .rejected_with_offsets(limit)
            .await?
            .into_iter()
            .map(|(row, _)| row)
            .collect())
    }

    /// The most recent rejected events, newest first, with their Kafka offset if any.
    pub async fn rejected_with_offsets(
        &self,
        limit: i64,
    ) -> Result<Vec<(RejectedRow, Option<KafkaOffset>)>, PgError> {
        let rows = sqlx::query(
            "SELECT source, position, event_id, reason, field, message, raw, \
             topic, kafka_partition, kafka_offset \
             FROM rejected ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let offset = match (
                    r.get::<Option<String>, _>(7),
                    r.get::<Option<i32>, _>(8),
                    r.get::<Option<i64>, _>(9),
                ) {
                    (Some(topic), Some(partition), Some(offset)) => Some(KafkaOffset {
                        topic,
                        partition,
                        offset,
                    }),
                    _ => None,
                };
                let row = RejectedRow {
                    source: r.get(0),
                    position: r.get(1),
                    event_id: r.get(2),
                    reason: r.get(3),
                    field: r.get(4),
                    message: r.get(5),
                    raw: r.get(6),
                };
                (row, offset)
            })
            .collect())
    }

    /// Number of events in the log.
    pub async fn logged_events(&self) -> Result<i64, PgError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM event_log")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The stored next offset of each partition of `topic`, by partition: where to seek
    /// on assignment.
    pub async fn positions(&self, topic: &str) -> Result<Vec<(i32, i64)>, PgError> {
        Ok(sqlx::query_as(
            "SELECT partition, next_offset FROM source_positions WHERE topic = $1 ORDER BY partition",
        )
        .bind(topic)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Makes a batch durable; reports each item's fate in order.
    pub async fn submit_batch(&self, items: Vec<Item>) -> Result<Vec<Status>, PgError> {
        self.submit_with_positions(&items, &[]).await
    }

    /// Makes a batch durable together with its source positions (one per partition),
    /// or nothing of it: [`PgError::Fenced`] when a stored offset is not the expected one.
    #[tracing::instrument(skip_all, fields(items = items.len(), positions = positions.len()), err)]
    pub async fn submit_with_positions<I: Borrow<Item>>(
        &self,
        items: &[I],
        positions: &[SourcePosition],
    ) -> Result<Vec<Status>, PgError> {
        let items: Vec<&Item> = items.iter().map(Borrow::borrow).collect();
        let careful = self
            .careful
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let mut lookup = if careful {
            Lookup::Careful
        } else {
            Lookup::Optimistic
        };
        let mut attempt = 1;
        loop {
            match self.attempt(&items, positions, lookup).await {
                Ok(statuses) => return Ok(statuses),
                Err(TxError::Fail(e)) => return Err(e),
                Err(TxError::Logged) => {
                    tracing::debug!("An optimistic batch met a logged key; looking its keys up.");
                    self.careful
                        .store(CAREFUL_AFTER_CONFLICT, Ordering::Relaxed);
                    lookup = Lookup::Careful;
                }
                Err(TxError::Retry(reason)) if attempt >= MAX_ATTEMPTS => {
                    return Err(PgError::Contention {
                        attempts: attempt,
                        reason,
                    });
                }
                Err(TxError::Retry(reason)) => {
                    tracing::debug!(attempt, %reason, "batch lost a race; retrying");
                    // Back off a little, differently per replica, so racers part ways.
                    let jitter = (now_micros() % 1000) as u64;
                    let base = 5u64 << attempt.min(6);
                    tokio::time::sleep(Duration::from_micros(base * 1000 + jitter * base)).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(
        &self,
        items: &[&Item],
        positions: &[SourcePosition],
        lookup: Lookup,
    ) -> Result<Vec<Status>, TxError> {
        let mut conn = CloseIfDropped {
            conn: self.pool.acquire().await?,
            ended: false,
        };
        let result = self
            .attempt_on(&mut conn.conn, items, positions, lookup)
            .await;
        conn.ended = true;
        result
    }

    /// One attempt of a batch, in one transaction on `conn`.
    async fn attempt_on(
        &self,
        conn: &mut PgConnection,
        items: &[&Item],
        positions: &[SourcePosition],
        lookup: Lookup,
    ) -> Result<Vec<Status>, TxError> {
        let plan = &*self.plan;
        let received_at = now_micros();
        let t0 = std::time::Instant::now();
        let mut tx = conn.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *tx)
            .await?;
        // 1. The fence: this consumer still owns its partitions, and holds their rows.
        fence(&mut tx, positions).await?;
        // 2. The log rows of the batch's keys (one writer per key: no lock needed).
        // Sized for the batch: most of its events are logged in it.
        let mut overlay = BatchLog {
            log: MemoryLog::with_capacity(items.len()),
            ..BatchLog::default()
        };
        overlay.prefetch_keys(&mut tx, plan, items, lookup).await?;
        let t_keys = t0.elapsed();
        // 3. The log first. What a batch logs (and each event's fate) depends on the log
        //    alone, never on the aggregates: decide it on a copy of the overlay and write
        //    it before any aggregate row is locked, so that replicas and parallel commits
        //    overlap their heaviest work and hold the shared rows only briefly.
        let mut decided = overlay.clone();
        let mut scratch = Ledger::default();
        let mut moved = Vec::new();
        let mut statuses = Vec::with_capacity(items.len());
        let mut rejected: Vec<(&Item, Rejection, String)> = Vec::new();
        for &item in items {
            match &item.outcome {
                Err(r) => {
                    statuses.push(Status::Rejected(r.clone()));
                    let raw = item.raw_masked.clone().unwrap_or_default();
                    rejected.push((item, r.clone(), raw));
                }
                Ok(event) => {
                    let (status, _) =
                        fold_tracked(plan, &mut scratch, &mut decided, event.clone(), &mut moved);
                    if let Status::Rejected(r) = &status {
                        rejected.push((item, r.clone(), event.canonical_json(&plan.schema)));
                    }
                    statuses.push(status);
                }
            }
        }
        drop(scratch);
        let t_decided = t0.elapsed();
        decided.write_pg(&mut tx, plan, received_at, lookup).await?;
        write_rejected(&mut tx, &rejected, received_at).await?;
        let t_log = t0.elapsed();
        // 4. Lock every aggregate row the batch moves (as the log step's fold found them:
        //    the fold below decides alike), and read it.
        let keys = Keys::of(moved);
        let mut ledger = self.lock(&mut tx, &keys).await?;
        // 4b. The days of the batch's snapshots, read under the lock of their level days.
        overlay
            .prefetch_days(&mut tx, plan, items, &self.ids.level_types)
            .await?;
        let t_read = t0.elapsed();
        // 5. Fold into the aggregates, exactly as the SQLite store does; the log's
        //    decisions come out as they were written in step 3.
        let mut fates = statuses.iter();
        for item in items {
            let decided_fate = fates.next();
            if let Ok(event) = &item.outcome {
                let status = fold(plan, &mut ledger, &mut overlay, event.clone());
                if decided_fate != Some(&status) {
                    return Err(TxError::Fail(PgError::Inconsistent(format!(
                        "event {} of source {}: the log decided {decided_fate:?}, the fold {status:?}",
                        event.id, event.source
                    ))));
                }
            }
        }
        if !overlay.logged_alike(&decided) {
            return Err(TxError::Fail(PgError::Inconsistent(
                "the fold logged other events than the log step wrote".to_owned(),
            )));
        }
        debug_assert!(
            keys.covers(&ledger),
            "the fold moved an aggregate row it had not locked"
        );
        let t_fold = t0.elapsed();
        // 6. Write back: one statement per table.
        self.write_aggregates(&mut tx, &keys, &ledger).await?;
        // 7. Tell listeners, on commit.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *tx)
            .await?;
        let t_write = t0.elapsed();
        tx.commit().await?;
        tracing::debug!(
            items = items.len(),
            keys = ?t_keys,
            decide = ?(t_decided - t_keys),
            log = ?(t_log - t_decided),
            lock = ?(t_read - t_log),
            fold = ?(t_fold - t_read),
            aggregates = ?(t_write - t_fold),
            commit = ?(t0.elapsed() - t_write),
            "Batch transaction."
        );
        Ok(statuses)
    }

    /// Locks the aggregate rows of `keys` (creating zero placeholders) in key order and
    /// returns them as a partial ledger.
    async fn lock(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        keys: &Keys,
    ) -> Result<Ledger, TxError> {
        let plan = &*self.plan;
        let mid = |m: MeasureId| plan.measures[m].id.as_str();
        let mut ledger = Ledger::default();
        let lost = || TxError::Retry("an aggregate row was deleted while being locked".into());

        if !keys.flows.is_empty() {
            let m: Vec<&str> = keys.flows.iter().map(|(m, _)| mid(*m)).collect();
            let d: Vec<i32> = keys.flows.iter().map(|(_, d)| d.0).collect();
            sqlx::query(
                "INSERT INTO flows (measure, day, amount) \
                 SELECT m, d, 0 FROM UNNEST($1::text[], $2::int4[]) AS k(m, d) ORDER BY m, d \
                 ON CONFLICT (measure, day) DO NOTHING",
            )
            .bind(&m)
            .bind(&d)
            .execute(&mut **tx)
            .await?;
            let rows = sqlx::query(
                "SELECT measure, day, amount::text FROM flows \
                 WHERE (measure, day) IN (SELECT m, d FROM UNNEST($1::text[], $2::int4[]) AS k(m, d)) \
                 ORDER BY measure, day FOR UPDATE OF flows",
            )
            .bind(&m)
            .bind(&d)
            .fetch_all(&mut **tx)
            .await?;
            if rows.len() != keys.flows.len() {
                return Err(lost());
            }
            for r in rows {
                let amount = amount(&r, 2, "flows.amount").map_err(TxError::Fail)?;
                if let (Some(&m), true) = (self.ids.measure.get(r.get::<&str, _>(0)), amount != 0) {
                    ledger.flows.insert((m, Day(r.get(1))), amount);
                }
            }
        }

        if !keys.distinct.is_empty() {
            let m: Vec<&str> = keys.distinct.iter().map(|(m, _, _)| mid(*m)).collect();
            let y: Vec<i32> = keys.distinct.iter().map(|(_, y, _)| y.0).collect();
            let v: Vec<&str> = keys.distinct.iter().map(|(_, _, v)| &**v).collect();
            sqlx::query(
                "INSERT INTO distinct_values (measure, fiscal_year, value, n) \
                 SELECT m, y, v, 0 FROM UNNEST($1::text[], $2::int4[], $3::text[]) AS k(m, y, v) \
                 ORDER BY m, y, v \
                 ON CONFLICT (measure, fiscal_year, value) DO NOTHING",
            )
            .bind(&m)
            .bind(&y)
            .bind(&v)
            .execute(&mut **tx)
            .await?;
            let rows = sqlx::query(
                "SELECT measure, fiscal_year, value, n FROM distinct_values \
                 WHERE (measure, fiscal_year, value) IN \
                 (SELECT m, y, v FROM UNNEST($1::text[], $2::int4[], $3::text[]) AS k(m, y, v)) \
                 ORDER BY measure, fiscal_year, value FOR UPDATE OF distinct_values",
            )
            .bind(&m)
            .bind(&y)
            .bind(&v)
            .fetch_all(&mut **tx)
            .await?;
            if rows.len() != keys.distinct.len() {
                return Err(lost());
            }
            for r in rows {
                let n: i64 = r.get(3);
                if let (Some(&m), true) = (self.ids.measure.get(r.get::<&str, _>(0)), n > 0) {
                    ledger
                        .distinct
                        .entry((m, FiscalYear(r.get(1))))
                        .or_default()
                        .insert(r.get::<String, _>(2).into(), n);
                }
            }
        }

        if !keys.levels.is_empty() {
            let m: Vec<&str> = keys.levels.iter().map(|(m, _)| mid(*m)).collect();
            let d: Vec<i32> = keys.levels.iter().map(|(_, d)| d.0).collect();
            sqlx::query(
                "INSERT INTO level_days (measure, day, delta) \
                 SELECT m, d, 0 FROM UNNEST($1::text[], $2::int4[]) AS k(m, d) ORDER BY m, d \
                 ON CONFLICT (measure, day) DO NOTHING",
            )
            .bind(&m)
            .bind(&d)
            .execute(&mut **tx)
            .await?;
            let rows = sqlx::query(&format!(
                "SELECT {LEVEL_DAY} FROM level_days \
                 WHERE (measure, day) IN (SELECT m, d FROM UNNEST($1::text[], $2::int4[]) AS k(m, d)) \
                 ORDER BY measure, day FOR UPDATE OF level_days"
            ))
            .bind(&m)
            .bind(&d)
            .fetch_all(&mut **tx)
            .await?;
            if rows.len() != keys.levels.len() {
                return Err(lost());
            }
            for r in rows {
                if let Some(&m) = self.ids.measure.get(r.get::<&str, _>(0)) {
                    let day = level_day(&r).map_err(TxError::Fail)?;
                    if day != LevelDay::default() {
                        ledger.levels.insert((m, Day(r.get(1))), day);
                    }
                }
            }
        }

        if !keys.stages.is_empty() {
            let k: Vec<&str> = keys
                .stages
                .iter()
                .map(|(k, _, _)| plan.kpis[*k].id.as_str())
                .collect();
            let d: Vec<i32> = keys.stages.iter().map(|(_, d, _)| d.0).collect();
            let s: Vec<&str> = keys
                .stages
                .iter()
                .map(|(k, _, s)| stage_id(plan, *k, *s))
                .collect();
            sqlx::query(
                "INSERT INTO stages (kpi, day, stage, n) \
                 SELECT k, d, s, 0 FROM UNNEST($1::text[], $2::int4[], $3::text[]) AS x(k, d, s) \
                 ORDER BY k, d, s \
                 ON CONFLICT (kpi, day, stage) DO NOTHING",
            )
            .bind(&k)
            .bind(&d)
            .bind(&s)
            .execute(&mut **tx)
            .await?;
            let rows = sqlx::query(
                "SELECT kpi, day, stage, n FROM stages \
                 WHERE (kpi, day, stage) IN \
                 (SELECT k, d, s FROM UNNEST($1::text[], $2::int4[], $3::text[]) AS x(k, d, s)) \
                 ORDER BY kpi, day, stage FOR UPDATE OF stages",
            )
            .bind(&k)
            .bind(&d)
            .bind(&s)
            .fetch_all(&mut **tx)
            .await?;
            // Distinct keys may share a row when a plan's stage id is unknown (""); compare
            // against the distinct rows asked for.
            let asked: HashSet<(&str, i32, &str)> = k
                .iter()
                .zip(&d)
                .zip(&s)
                .map(|((k, d), s)| (*k, *d, *s))
                .collect();
            if rows.len() != asked.len() {
                return Err(lost());
            }
            for r in rows {
                let n: i64 = r.get(3);
                let key = self.ids.stage(plan, r.get(0), r.get(2));
                if let (Some((k, s)), true) = (key, n > 0) {
                    ledger.stages.insert((k, Day(r.get(1)), s), n);
                }
            }
        }
        Ok(ledger)
    }

    /// Writes the locked rows back with their absolute new values (deleting the rows that
    /// became empty), and the batch's `as_of` times.
    async fn write_aggregates(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        keys: &Keys,
        ledger: &Ledger,
    ) -> Result<(), TxError> {
        let plan = &*self.plan;
        let mid = |m: MeasureId| plan.measures[m].id.as_str();

        let (mut um, mut ud, mut ua, mut dm, mut dd) = (vec![], vec![], vec![], vec![], vec![]);
        for (m, d) in &keys.flows {
            match ledger.flows.get(&(*m, *d)) {
                Some(&a) if a != 0 => {
                    um.push(mid(*m));
                    ud.push(d.0);
                    ua.push(a.to_string());
                }
                _ => {
                    dm.push(mid(*m));
                    dd.push(d.0);
                }
            }
        }
        if !um.is_empty() {
            sqlx::query(
                "INSERT INTO flows (measure, day, amount) \
                 SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[]::numeric[]) \
                 ON CONFLICT (measure, day) DO UPDATE SET amount = excluded.amount",
            )
            .bind(&um)
            .bind(&ud)
            .bind(&ua)
            .execute(&mut **tx)
            .await?;
        }
        if !dm.is_empty() {
            sqlx::query(
                "DELETE FROM flows WHERE (measure, day) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::int4[]))",
            )
            .bind(&dm)
            .bind(&dd)
            .execute(&mut **tx)
            .await?;
        }

        let (mut um, mut uy, mut uv, mut un) = (vec![], vec![], vec![], vec![]);
        let (mut dm, mut dy, mut dv) = (vec![], vec![], vec![]);
        for (m, y, v) in &keys.distinct {
            let n = ledger
                .distinct
                .get(&(*m, *y))
                .and_then(|s| s.get(v))
                .copied()
                .unwrap_or(0);
            if n > 0 {
                um.push(mid(*m));
                uy.push(y.0);
                uv.push(&**v);
                un.push(n);
            } else {
                dm.push(mid(*m));
                dy.push(y.0);
                dv.push(&**v);
            }
        }
        if !um.is_empty() {
            sqlx::query(
                "INSERT INTO distinct_values (measure, fiscal_year, value, n) \
                 SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int8[]) \
                 ON CONFLICT (measure, fiscal_year, value) DO UPDATE SET n = excluded.n",
            )
            .bind(&um)
            .bind(&uy)
            .bind(&uv)
            .bind(&un)
            .execute(&mut **tx)
            .await?;
        }
        if !dm.is_empty() {
            sqlx::query(
                "DELETE FROM distinct_values WHERE (measure, fiscal_year, value) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[]))",
            )
            .bind(&dm)
            .bind(&dy)
            .bind(&dv)
            .execute(&mut **tx)
            .await?;
        }

        let mut up = LevelColumns::default();
        let (mut dm, mut dd) = (vec![], vec![]);
        for (m, d) in &keys.levels {
            match ledger.levels.get(&(*m, *d)) {
                Some(l) if *l != LevelDay::default() => up.push(mid(*m), *d, l),
                _ => {
                    dm.push(mid(*m));
                    dd.push(d.0);
                }
            }
        }
        if !up.measure.is_empty() {
            sqlx::query(
                "INSERT INTO level_days (measure, day, delta, snap_at, snap_id, snap_value, \
                 snap_after, opening_id, opening_value) \
                 SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[]::numeric[], $4::int8[], \
                 $5::text[], $6::text[]::numeric[], $7::text[]::numeric[], $8::text[], \
                 $9::text[]::numeric[]) \
                 ON CONFLICT (measure, day) DO UPDATE SET delta = excluded.delta, \
                 snap_at = excluded.snap_at, snap_id = excluded.snap_id, \
                 snap_value = excluded.snap_value, snap_after = excluded.snap_after, \
                 opening_id = excluded.opening_id, opening_value = excluded.opening_value",
            )
            .bind(&up.measure)
            .bind(&up.day)
            .bind(&up.delta)
            .bind(&up.snap_at)
            .bind(&up.snap_id)
            .bind(&up.snap_value)
            .bind(&up.snap_after)
            .bind(&up.opening_id)
            .bind(&up.opening_value)
            .execute(&mut **tx)
            .await?;
        }
        if !dm.is_empty() {
            sqlx::query(
                "DELETE FROM level_days WHERE (measure, day) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::int4[]))",
            )
            .bind(&dm)
            .bind(&dd)
            .execute(&mut **tx)
            .await?;
        }

        let (mut uk, mut ud, mut us, mut un) = (vec![], vec![], vec![], vec![]);
        let (mut dk, mut dd, mut ds) = (vec![], vec![], vec![]);
        for (k, d, s) in &keys.stages {
            let n = ledger.stages.get(&(*k, *d, *s)).copied().unwrap_or(0);
            let (kid, sid) = (plan.kpis[*k].id.as_str(), stage_id(plan, *k, *s));
            if n > 0 {
                uk.push(kid);
                ud.push(d.0);
                us.push(sid);
                un.push(n);
            } else {
                dk.push(kid);
                dd.push(d.0);
                ds.push(sid);
            }
        }
        if !uk.is_empty() {
            sqlx::query(
                "INSERT INTO stages (kpi, day, stage, n) \
                 SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int8[]) \
                 ON CONFLICT (kpi, day, stage) DO UPDATE SET n = excluded.n",
            )
            .bind(&uk)
            .bind(&ud)
            .bind(&us)
            .bind(&un)
            .execute(&mut **tx)
            .await?;
        }
        if !dk.is_empty() {
            sqlx::query(
                "DELETE FROM stages WHERE (kpi, day, stage) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[]))",
            )
            .bind(&dk)
            .bind(&dd)
            .bind(&ds)
            .execute(&mut **tx)
            .await?;
        }

        // as_of only grows: GREATEST commutes, so it needs no lock taken in advance.
        let mut as_of: Vec<(String, i64)> = ledger
            .as_of
            .iter()
            .map(|(k, t)| (as_of_key(plan, *k), t.micros()))
            .collect();
        if !as_of.is_empty() {
            as_of.sort();
            let (k, t): (Vec<String>, Vec<i64>) = as_of.into_iter().unzip();
            sqlx::query(
                "INSERT INTO as_of (key, at) \
                 SELECT * FROM UNNEST($1::text[], $2::int8[]) AS x(k, t) ORDER BY k \
                 ON CONFLICT (key) DO UPDATE SET at = GREATEST(as_of.at, excluded.at)",
            )
            .bind(&k)
            .bind(&t)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn load_ledger(&self, conn: &mut PgConnection) -> Result<Ledger, PgError> {
        let plan = &*self.plan;
        let ids = &self.ids;
        let mut ledger = Ledger::default();
        for r in sqlx::query("SELECT measure, day, amount::text FROM flows WHERE amount <> 0")
            .fetch_all(&mut *conn)
            .await?
        {
            if let Some(&m) = ids.measure.get(r.get::<&str, _>(0)) {
                ledger
                    .flows
                    .insert((m, Day(r.get(1))), amount(&r, 2, "flows.amount")?);
            }
        }
        for r in
            sqlx::query("SELECT measure, fiscal_year, value, n FROM distinct_values WHERE n > 0")
                .fetch_all(&mut *conn)
                .await?
        {
            if let Some(&m) = ids.measure.get(r.get::<&str, _>(0)) {
                ledger
                    .distinct
                    .entry((m, FiscalYear(r.get(1))))
                    .or_default()
                    .insert(r.get::<String, _>(2).into(), r.get(3));
            }
        }
        for r in sqlx::query(&format!("SELECT {LEVEL_DAY} FROM level_days"))
            .fetch_all(&mut *conn)
            .await?
        {
            if let Some(&m) = ids.measure.get(r.get::<&str, _>(0)) {
                let day = level_day(&r)?;
                if day != LevelDay::default() {
                    ledger.levels.insert((m, Day(r.get(1))), day);
                }
            }
        }
        for r in sqlx::query("SELECT kpi, day, stage, n FROM stages WHERE n > 0")
            .fetch_all(&mut *conn)
            .await?
        {
            if let Some((k, s)) = ids.stage(plan, r.get(0), r.get(2)) {
                ledger.stages.insert((k, Day(r.get(1)), s), r.get(3));
            }
        }
        for r in sqlx::query("SELECT key, at FROM as_of")
            .fetch_all(&mut *conn)
            .await?
        {
            if let Some(ix) = ids.as_of(plan, r.get(0)) {
                ledger.as_of.insert(ix, Timestamp::from_micros(r.get(1)));
            }
        }
        Ok(ledger)
    }
}

impl EventSink for PgStore {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        self.submit_batch(items).await.map_err(SinkError::from)
    }
}

/// The columns of a `level_days` row that [`level_day`] reads, amounts as decimal text.
const LEVEL_DAY: &str = "measure, day, delta::text, snap_at, snap_id, snap_value::text, \
                         snap_after::text, opening_id, opening_value::text";

/// A `level_days` row (the columns of [`LEVEL_DAY`]) as a ledger day.
fn level_day(r: &PgRow) -> Result<LevelDay, PgError> {
    let snapshot = match (r.get::<Option<i64>, _>(3), r.get::<Option<String>, _>(4)) {
        (Some(at), Some(id)) => Some(Snapshot {
            at: Timestamp::from_micros(at),
            id: id.into(),
            value: optional_amount(r, 5, "level_days.snap_value")?.unwrap_or(0),
            after: optional_amount(r, 6, "level_days.snap_after")?.unwrap_or(0),
        }),
        _ => None,
    };
    let opening = match (
        r.get::<Option<String>, _>(7),
        optional_amount(r, 8, "level_days.opening_value")?,
    ) {
        (Some(id), Some(v)) => Some((id.into(), v)),
        _ => None,
    };
    Ok(LevelDay {
        delta: amount(r, 2, "level_days.delta")?,
        snapshot,
        opening,
    })
}

/// A summed amount of a row, read as `column::text`.
fn amount(r: &PgRow, ix: usize, column: &str) -> Result<i128, PgError> {
    parse_amount(column, r.try_get(ix)?).map_err(PgError::Corrupt)
}

/// A summed amount of a row that may be NULL, read as `column::text`.
fn optional_amount(r: &PgRow, ix: usize, column: &str) -> Result<Option<i128>, PgError> {
    r.try_get::<Option<&str>, _>(ix)?
        .map(|t| parse_amount(column, t).map_err(PgError::Corrupt))
        .transpose()
}

/// The columns of `level_days` rows to upsert, as arrays for `UNNEST`.
#[derive(Default)]
struct LevelColumns<'a> {
    measure: Vec<&'a str>,
    day: Vec<i32>,
    // Amounts as decimal text, cast to NUMERIC in the statement.
    delta: Vec<String>,
    snap_at: Vec<Option<i64>>,
    snap_id: Vec<Option<&'a str>>,
    snap_value: Vec<Option<String>>,
    snap_after: Vec<Option<String>>,
    opening_id: Vec<Option<&'a str>>,
    opening_value: Vec<Option<String>>,
}

impl<'a> LevelColumns<'a> {
    fn push(&mut self, measure: &'a str, day: Day, l: &'a LevelDay) {
        let s = l.snapshot.as_ref();
        self.measure.push(measure);
        self.day.push(day.0);
        self.delta.push(l.delta.to_string());
        self.snap_at.push(s.map(|s| s.at.micros()));
        self.snap_id.push(s.map(|s| &*s.id));
        self.snap_value.push(s.map(|s| s.value.to_string()));
        self.snap_after.push(s.map(|s| s.after.to_string()));
        self.opening_id.push(l.opening.as_ref().map(|o| &*o.0));
        self.opening_value
            .push(l.opening.as_ref().map(|o| o.1.to_string()));
    }
}

/// Fences the batch's source positions: each stored offset must be the expected one.
async fn fence(
    tx: &mut Transaction<'_, Postgres>,
    positions: &[SourcePosition],
) -> Result<(), TxError> {
    let mut sorted: Vec<&SourcePosition> = positions.iter().collect();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let (stored, fresh): (Vec<&SourcePosition>, Vec<&SourcePosition>) =
        sorted.into_iter().partition(|p| p.expected.is_some());
    let fenced = |p: &SourcePosition| {
        TxError::Fail(PgError::Fenced {
            topic: p.topic.clone(),
            partition: p.partition,
        })
    };
    if !stored.is_empty() {
        let moved: HashSet<(String, i32)> = sqlx::query_as(
            "UPDATE source_positions s SET next_offset = v.next \
             FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::int8[]) AS v(topic, part, expected, next) \
             WHERE s.topic = v.topic AND s.partition = v.part AND s.next_offset = v.expected \
             RETURNING s.topic, s.partition",
        )
        .bind(stored.iter().map(|p| p.topic.as_str()).collect::<Vec<_>>())
        .bind(stored.iter().map(|p| p.partition).collect::<Vec<_>>())
        .bind(stored.iter().map(|p| p.expected.unwrap_or(0)).collect::<Vec<_>>())
        .bind(stored.iter().map(|p| p.next).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
        if let Some(p) = stored
            .iter()
            .find(|p| !moved.contains(&(p.topic.clone(), p.partition)))
        {
            return Err(fenced(p));
        }
    }
    if !fresh.is_empty() {
        let made: HashSet<(String, i32)> = sqlx::query_as(
            "INSERT INTO source_positions (topic, partition, next_offset) \
             SELECT * FROM UNNEST($1::text[], $2::int4[], $3::int8[]) AS v(t, p, n) ORDER BY t, p \
             ON CONFLICT (topic, partition) DO NOTHING RETURNING topic, partition",
        )
        .bind(fresh.iter().map(|p| p.topic.as_str()).collect::<Vec<_>>())
        .bind(fresh.iter().map(|p| p.partition).collect::<Vec<_>>())
        .bind(fresh.iter().map(|p| p.next).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
        if let Some(p) = fresh
            .iter()
            .find(|p| !made.contains(&(p.topic.clone(), p.partition)))
        {
            return Err(fenced(p));
        }
    }
    Ok(())
}

/// The aggregate rows a batch can touch, sorted.
#[derive(Default)]
struct Keys {
    flows: BTreeSet<(MeasureId, Day)>,
    distinct: BTreeSet<(MeasureId, FiscalYear, Box<str>)>,
    levels: BTreeSet<(MeasureId, Day)>,
    stages: BTreeSet<(KpiId, Day, u16)>,
}

impl Keys {
    /// The aggregate rows that `effects` move.
    fn of(effects: Vec<Effect>) -> Self {
        let mut keys = Keys::default();
        keys.add(effects);
        keys
    }

    fn add(&mut self, effs: Vec<Effect>) {
        for e in effs {
            match e {
                Effect::Flow { measure, day, .. } => {
                    self.flows.insert((measure, day));
                }
                Effect::Distinct {
                    measure,
                    year,
                    value,
                } => {
                    self.distinct.insert((measure, year, value));
                }
                Effect::Delta { measure, at, .. } | Effect::Reset { measure, at, .. } => {
                    self.levels.insert((measure, Day::of(at)));
                }
                Effect::Stage { kpi, day, stage } => {
                    self.stages.insert((kpi, day, stage));
                }
            }
        }
    }

    /// Whether every aggregate of `ledger` is one of these keys (a partial ledger must
    /// hold only locked rows).
    fn covers(&self, ledger: &Ledger) -> bool {
        ledger.flows.keys().all(|k| self.flows.contains(k))
            && ledger.levels.keys().all(|k| self.levels.contains(k))
            && ledger.stages.keys().all(|k| self.stages.contains(k))
            && ledger.distinct.iter().all(|((m, y), set)| {
                set.keys()
                    .all(|v| self.distinct.contains(&(*m, *y, v.clone())))
            })
    }
}

impl BatchLog {
    /// The logged events and pending voids of the batch's keys and void targets; of the
    /// keys themselves, only the void targets when `Optimistic` (see [`Lookup`]), and
    /// pending voids only of sources that have any.
    async fn prefetch_keys(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        plan: &Plan,
        items: &[&Item],
        lookup: Lookup,
    ) -> Result<(), TxError> {
        // The keys to look up in the log, and those to look up among pending voids; both
        // sorted, without repeats.
        let (logged, pending): (Vec<LogKey<'_>>, Vec<LogKey<'_>>) = match lookup {
            Lookup::Careful => {
                let keys = BatchLog::keys_needed(items);
                (keys.clone(), keys)
            }
            Lookup::Optimistic => {
                let events = || items.iter().filter_map(|i| i.outcome.as_ref().ok());
                // A void's target, and the void itself: a void may be refused without
                // being logged (its target is a snapshot), so the primary key would not
                // tell that it is a re-send.
                let targets: BTreeSet<(&str, &str)> = events()
                    .filter_map(|e| Some((e.source.as_str(), e.voids.as_deref()?, e.id.as_str())))
                    .flat_map(|(s, target, id)| [(s, target), (s, id)])
                    .collect();
                // A batch comes from a few line systems: a short list beats hashing.
                let mut sources: Vec<&str> = Vec::new();
                for e in events() {
                    if !sources.contains(&e.source.as_str()) {
                        sources.push(&e.source);
                    }
                }
                let with_pending: Vec<String> = if sources.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query_scalar(
                        "SELECT s FROM UNNEST($1::text[]) AS s \
                         WHERE EXISTS (SELECT 1 FROM pending_voids p WHERE p.source = s)",
                    )
                    .bind(&sources)
                    .fetch_all(&mut **tx)
                    .await?
                };
                let pending = if with_pending.is_empty() {
                    Vec::new()
                } else {
                    BatchLog::keys_needed(items)
                        .into_iter()
                        .filter(|(s, _)| with_pending.iter().any(|w| w == s))
                        .collect()
                };
                (targets.into_iter().collect(), pending)
            }
        };
        // One index scan per source (`event_id = ANY(…)`, the keys sorted): about half
        // the cost of joining an unnested list of pairs.
        for group in logged.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(source, _)) = group.first() else {
                continue;
            };
            let ids: Vec<&str> = group.iter().map(|(_, id)| *id).collect();
            let rows = sqlx::query(&format!(
                "SELECT {LOGGED} FROM event_log \
                 WHERE source = $1 AND event_id = ANY($2::text[])"
            ))
            .bind(source)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                if let Some(entry) = logged_entry(plan, &r) {
                    self.log.insert(entry);
                }
            }
        }
        for group in pending.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(source, _)) = group.first() else {
                continue;
            };
            let ids: Vec<&str> = group.iter().map(|(_, id)| *id).collect();
            let rows = sqlx::query(
                "SELECT target_id FROM pending_voids \
                 WHERE source = $1 AND target_id = ANY($2::text[])",
            )
            .bind(source)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                self.log.add_pending_void(source, r.get(0));
            }
        }
        Ok(())
    }

    /// For each snapshot of the batch, the live level-moving events of its day. Called
    /// with the batch's level days locked: no writer can add or void such an event now.
    async fn prefetch_days(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        plan: &Plan,
        items: &[&Item],
        level_types: &[String],
    ) -> Result<(), TxError> {
        let days: BTreeSet<i32> = items
            .iter()
            .filter_map(|i| i.outcome.as_ref().ok())
            .filter(|e| plan.is_snapshot[usize::from(e.type_id.0)])
            .map(|e| Day::of(e.occurred_at).0)
            .collect();
        if days.is_empty() || level_types.is_empty() {
            return Ok(());
        }
        let days: Vec<i32> = days.into_iter().collect();
        let rows = sqlx::query(&format!(
            "SELECT {LOGGED} FROM event_log \
             WHERE day = ANY($1::int4[]) AND moves_level AND NOT voided \
             AND type = ANY($2::text[])"
        ))
        .bind(&days)
        .bind(level_types)
        .fetch_all(&mut **tx)
        .await?;
        // The batch's own keys are in the overlay already, as they were before the batch
        // (the rows this transaction has just logged must not count twice).
        let own: HashSet<(&str, &str)> = BatchLog::keys_needed(items).into_iter().collect();
        for r in rows {
            if let Some(entry) = logged_entry(plan, &r) {
                if !own.contains(&(entry.event.source.as_str(), entry.event.id.as_str())) {
                    self.add_fetched(entry);
                }
            }
        }
        Ok(())
    }

    /// Logs the batch's accepted events, marks the events it voided, keeps its pending
    /// voids. An `Optimistic` batch that logs a key already logged fails with
    /// [`TxError::Logged`].
    async fn write_pg(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        plan: &Plan,
        received_at: i64,
        lookup: Lookup,
    ) -> Result<(), TxError> {
        let mut entries = self.entries_to_write();
        // In key order: consecutive rows go to the same leaf of the log's key index, which
        // stays in PostgreSQL's buffers once the index is larger than they are.
        entries.sort_unstable_by(|a, b| {
            (a.event.source.as_str(), a.event.id.as_str())
                .cmp(&(b.event.source.as_str(), b.event.id.as_str()))
        });
        if !entries.is_empty() {
            // COPY, not INSERT: PostgreSQL writes the rows page by page (the log is most
            // of a batch's work). The keys are new when they were looked up, as one
            // consumer owns each key (a racing writer makes COPY fail with 23505, and the
            // retry sees its rows); an optimistic batch learns of a logged key from the
            // same failure.
            let mut rows = CopyBinary::with_capacity(entries.len() * 200);
            for e in &entries {
                let ev = &e.event;
                rows.row(11);
                rows.text(&ev.source);
                rows.text(&ev.id);
                rows.int8(e.fingerprint);
                rows.text(&plan.schema.event_type(ev.type_id).name);
                rows.int8(ev.occurred_at.micros());
                rows.int4(Day::of(ev.occurred_at).0);
                rows.text(&ev.canonical_data_json(&plan.schema));
                match &ev.voids {
                    Some(v) => rows.text(v),
                    None => rows.null(),
                }
                rows.bool(e.voided);
                rows.bool(plan.moves_a_level(ev.type_id));
                rows.int8(received_at);
            }
            let copied = async {
                let mut copy = tx
                    .copy_in_raw(
                        "COPY event_log (source, event_id, fingerprint, type, occurred_at, \
                         day, data, voids, voided, moves_level, received_at) \
                         FROM STDIN (FORMAT binary)",
                    )
                    .await?;
                copy.send(rows.finish()).await?;
                copy.finish().await
            }
            .await;
            match copied {
                Ok(_) => {}
                Err(sqlx::Error::Database(d))
                    if lookup == Lookup::Optimistic && d.code().as_deref() == Some("23505") =>
                {
                    return Err(TxError::Logged);
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Events the batch logs and voids itself are logged voided already.
        let to_void = self.to_mark_voided();
        if !to_void.is_empty() {
            let (s, i): (Vec<&str>, Vec<&str>) = to_void.into_iter().unzip();
            sqlx::query(
                "UPDATE event_log SET voided = TRUE \
                 WHERE (source, event_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
            )
            .bind(&s)
            .bind(&i)
            .execute(&mut **tx)
            .await?;
        }
        let pending: BTreeSet<&(String, String)> = self.new_pending.iter().collect();
        if !pending.is_empty() {
            let (s, t): (Vec<&str>, Vec<&str>) = pending
                .into_iter()
                .map(|(s, t)| (s.as_str(), t.as_str()))
                .unzip();
            sqlx::query(
                "INSERT INTO pending_voids (source, target_id) \
                 SELECT * FROM UNNEST($1::text[], $2::text[]) \
                 ON CONFLICT (source, target_id) DO NOTHING",
            )
            .bind(&s)
            .bind(&t)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// A batch's pooled connection, closed rather than returned to the pool when the attempt
/// stops before it ends (its caller went away, as an HTTP client that disconnects drops
/// its handler's future, or it panicked): sqlx's `COPY` is not cancel-safe, and a
/// connection dropped in the middle of one answers its next query out of step
/// ("expected ParseComplete, got CommandComplete"). Closing it ends the session, which
/// rolls the transaction back. An attempt that ends, even with an error, returns it to
/// the pool as usual.
struct CloseIfDropped {
    conn: PoolConnection<Postgres>,
    /// Set once the attempt returned.
    ended: bool,
}

impl Drop for CloseIfDropped {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.close_on_drop();
        }
    }
}

/// A key of the event log: (`source`, `event_id`).
type LogKey<'a> = (&'a str, &'a str);

/// The columns [`logged_entry`] reads.
const LOGGED: &str = "body, fingerprint, voided, event_id, source, type, occurred_at, data, voids";

/// A log row read back (the columns of [`LOGGED`]). Rows logged since migration 0003
/// keep the envelope in its columns and only `data` (and the void target) as text: the
/// canonical body is rebuilt from them; older rows have it whole.
fn logged_entry(plan: &Plan, r: &PgRow) -> Option<LogEntry> {
    let body: Option<String> = r.get(0);
    let body = match body {
        Some(b) => b,
        None => mieruka_ingest::event::canonical_body(
            r.get(3),
            r.get(4),
            r.get(5),
            Timestamp::from_micros(r.get(6)),
            r.get::<Option<&str>, _>(7).unwrap_or("{}"),
            r.get(8),
        ),
    };
    LogEntry::from_stored(plan, &body, r.get(1), r.get(2))
}

/// Rows in COPY's binary format: no text to escape or parse on either side (the text
/// format's parsing was a tenth of PostgreSQL's time on the log).
struct CopyBinary(Vec<u8>);

impl CopyBinary {
    fn with_capacity(bytes: usize) -> Self {
        let mut out = Vec::with_capacity(bytes + 21);
        // Signature, flags (no OIDs), no header extension.
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        CopyBinary(out)
    }

    /// Starts a row of `fields` fields.
    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Fields are short (ids, a small JSON object); a length past i32 cannot be sent.
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    fn text(&mut self, value: &str) {
        self.field(value.as_bytes());
    }

    fn int8(&mut self, value: i64) {
        self.field(&value.to_be_bytes());
    }

    fn int4(&mut self, value: i32) {
        self.field(&value.to_be_bytes());
    }

    fn bool(&mut self, value: bool) {
        self.field(&[u8::from(value)]);
    }

    fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// The rows and the trailer.
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

/// Keeps the batch's rejected events, with their Kafka offsets when they came from Kafka.
async fn write_rejected(
    tx: &mut Transaction<'_, Postgres>,
    rejected: &[(&Item, Rejection, String)],
    received_at: i64,
) -> Result<(), TxError> {
    if rejected.is_empty() {
        return Ok(());
    }
    fn kafka(item: &Item) -> (Option<&str>, Option<i32>, Option<i64>) {
        match &item.position {
            Position::Offset {
                topic,
                partition,
                offset,
            } => (Some(topic.as_str()), Some(*partition), Some(*offset)),
            _ => (None, None, None),
        }
    }
    sqlx::query(
        "INSERT INTO rejected (received_at, source, position, event_id, reason, field, message, \
         raw, topic, kafka_partition, kafka_offset) \
         SELECT $11, * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::int4[], $10::int8[])",
    )
    .bind(
        rejected
            .iter()
            .map(|(i, _, _)| i.source_label.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(i, _, _)| i.position.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            // The event id is shown only when the event passed the guard (the rejection
            // carries it then); a personal number never reaches this table unmasked.
            .map(|(_, r, _)| {
                (r.reason != Reason::PersonalNumber)
                    .then_some(r.event_id.as_deref())
                    .flatten()
            })
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(_, r, _)| r.reason.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(_, r, _)| r.field.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(_, r, _)| r.message.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(_, _, raw)| raw.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(i, _, _)| kafka(i).0)
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(i, _, _)| kafka(i).1)
            .collect::<Vec<_>>(),
    )
    .bind(
        rejected
            .iter()
            .map(|(i, _, _)| kafka(i).2)
            .collect::<Vec<_>>(),
    )
    .bind(received_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
