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
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mieruka_ingest::{EventSink, Item, SinkError, Status};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};

use crate::close::{
    CloseRefusal, CloseRequest, ClosedYear, Closes, LateEvents, LateQuery, Reopened,
};
use crate::engine::{fold, fold_tracked, BatchLog, MemoryLog};
use crate::ledger::{Effect, Ledger};
use crate::plan::{MeasureKind, Op, Plan};
use crate::store::close;
use crate::store::duplicates::{self, DuplicateCounts};
use crate::store::fingerprints::{self, PlanCheck, PlanPrints, Verdict};
use crate::store::freshness::{self, SourceFreshness};
use crate::store::rejected::{read_count, read_rejected, RejectedItem};
use crate::store::row::ReadError;
use crate::store::tables::{Aggregate, Dialect, Ids, Keys};
use crate::store::{RejectedCount, RejectedFilter, RejectedRow, Store};

mod aggregates;
mod generations;
mod log;
mod replay;

use log::write_rejected;
pub(in crate::store) use log::{logged_entry, KEY_ORDER, LOGGED};

/// The channel notified (on commit) after every committed batch: the one definition of
/// it, which listeners (the export role) name too.
pub const NOTIFY_CHANNEL: &str = "mieruka_committed";

/// Tells listeners (the export role) that something they show changed, on commit.
async fn notify(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

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
    /// The plan's measures mean something else than the stored aggregates were folded
    /// with: nothing is written until `mieruka replay --apply` rebuilds them.
    #[error("refused: {0}")]
    PlanChanged(String),
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
            | PgError::PlanChanged(_)
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

impl From<ReadError> for PgError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Database(e) => PgError::Database(e),
            ReadError::Corrupt(m) => PgError::Corrupt(m),
        }
    }
}

impl From<ReadError> for TxError {
    fn from(e: ReadError) -> Self {
        TxError::Fail(e.into())
    }
}

/// Names of the types whose events can move a level (what a snapshot's day needs).
fn level_types(plan: &Plan) -> Vec<String> {
    plan.schema
        .types()
        .iter()
        .enumerate()
        .filter(|(t, _)| {
            plan.routes.get(*t).into_iter().flatten().any(|r| {
                r.op == Op::Sub
                    || (r.op != Op::Reset && plan.measures[r.measure].kind == MeasureKind::Level)
            })
        })
        .map(|(_, ty)| ty.name.clone())
        .collect()
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

impl TxError {
    /// The error of a transaction tried once (outside a batch's retry loop).
    fn once(self) -> PgError {
        match self {
            TxError::Fail(e) => e,
            TxError::Retry(reason) => PgError::Contention {
                attempts: 1,
                reason,
            },
            TxError::Logged => {
                PgError::Inconsistent("a write outside a batch met a logged key".to_owned())
            }
        }
    }
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
    /// Names of the types whose events can move a level (what a snapshot's day needs).
    level_types: Vec<String>,
    /// Batches still to look their keys up before logging (see [`Lookup`]).
    careful: AtomicU32,
    /// What the plan's measures mean: checked by every batch against the store's.
    prints: PlanPrints,
    /// The event types whose batches fold once (see [`Additive`]).
    additive: Additive,
    /// The keys of the log's sealed generations (see [`generations`]).
    filter: tokio::sync::RwLock<generations::Filter>,
    /// When a generation of the log is sealed (index bytes; see [`generations::SEAL_AT`]).
    seal_at: AtomicI64,
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
    /// Connects to the database at `url` and migrates it; refuses a plan whose measures
    /// changed ([`PgError::PlanChanged`]).
    pub async fn open(url: &str, plan: Arc<Plan>) -> Result<Self, PgError> {
        Self::open_with(url, plan, PlanCheck::Refuse).await
    }

    /// [`PgStore::open`], comparing the plan's measure fingerprints with the store's or
    /// not (`mieruka replay` opens a store whatever they say, to rebuild it).
    #[tracing::instrument(skip_all, err)]
    pub async fn open_with(url: &str, plan: Arc<Plan>, check: PlanCheck) -> Result<Self, PgError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        generations::hash_old_log(&pool).await?;
        let prints = PlanPrints::of(&plan);
        if check == PlanCheck::Refuse {
            check_plan(&pool, &prints).await?;
        }
        let (ids, level_types) = (Ids::new(&plan), level_types(&plan));
        let additive = Additive::of(&plan);
        Ok(Self {
            pool,
            plan,
            ids,
            level_types,
            careful: AtomicU32::new(0),
            prints,
            additive,
            filter: tokio::sync::RwLock::default(),
            seal_at: AtomicI64::new(generations::SEAL_AT),
        })
    }

    /// Seals a generation of the log once its keys take `bytes` of the key index
    /// instead of [`generations::SEAL_AT`]: for tests and experiments, which need
    /// generations without logging millions of events.
    #[doc(hidden)]
    pub fn seal_generations_at(&self, bytes: i64) {
        self.seal_at.store(bytes, Ordering::Relaxed);
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

    /// Keeps the refused items of `items` in the `rejected` table, in the same shape as a
    /// batch's refusals, and folds nothing: for refusals that never reach an aggregator
    /// (`mieruka import` into the production pipeline refuses lines before Kafka).
    /// Items that were not refused are skipped; the declared sources of those that were
    /// are heard from now (`source_freshness`).
    pub async fn record_rejected(&self, items: &[Item]) -> Result<(), PgError> {
        let rejected: Vec<RejectedItem> = items
            .iter()
            .filter_map(|item| {
                let rejection = item.outcome.as_ref().err()?;
                Some(RejectedItem {
                    source_label: item.source_label.clone(),
                    position: item.position.clone(),
                    rejection: rejection.clone(),
                    raw: item.raw_masked.clone().unwrap_or_default(),
                })
            })
            .collect();
        if rejected.is_empty() {
            return Ok(());
        }
        let received_at = now_micros();
        let mut tx = self.pool.begin().await?;
        match write_rejected(&mut tx, &rejected, received_at).await {
            Ok(()) => {}
            Err(TxError::Fail(e)) => return Err(e),
            Err(TxError::Retry(reason)) => {
                return Err(PgError::Contention {
                    attempts: 1,
                    reason,
                })
            }
            Err(TxError::Logged) => {
                return Err(PgError::Inconsistent(
                    "writing rejected rows met a logged key".to_owned(),
                ))
            }
        }
        // Refused before Kafka, so no aggregator batch will say these sources were heard.
        let heard = freshness::heard_from(items.iter().filter(|i| i.outcome.is_err()));
        freshness::heard_pg(&mut tx, &heard, received_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The most recent rejected events, newest first.
    pub async fn rejected(&self, limit: i64) -> Result<Vec<RejectedRow>, PgError> {
        Store::rejected_matching(self, &RejectedFilter::default(), limit).await
    }

    /// The most recent rejected events, newest first, with their Kafka offset if any.
    pub async fn rejected_with_offsets(
        &self,
        limit: i64,
    ) -> Result<Vec<(RejectedRow, Option<KafkaOffset>)>, PgError> {
        self.rejected_with_offsets_matching(&RejectedFilter::default(), limit)
            .await
    }

    /// The most recent rejected events that match `filter`, newest first, with each
    /// row's Kafka offset if any.
    async fn rejected_with_offsets_matching(
        &self,
        filter: &RejectedFilter,
        limit: i64,
    ) -> Result<Vec<(RejectedRow, Option<KafkaOffset>)>, PgError> {
        let rows = filter
            .rows_query::<Postgres>(", topic, kafka_partition, kafka_offset", limit)
            .build()
            .fetch_all(&self.pool)
            .await?;
        let with_offset = |r: &PgRow| -> Result<_, PgError> {
            let offset = match (r.try_get(8)?, r.try_get(9)?, r.try_get(10)?) {
                (Some(topic), Some(partition), Some(offset)) => Some(KafkaOffset {
                    topic,
                    partition,
                    offset,
                }),
                _ => None,
            };
            Ok((read_rejected(r)?, offset))
        };
        rows.iter().map(with_offset).collect()
    }

    /// Declares the sources a role's configuration knows (see [`Store::declare_sources`]).
    pub async fn declare_sources(&self, sources: &[String]) -> Result<(), PgError> {
        let mut conn = self.pool.acquire().await?;
        freshness::declare_pg(&mut conn, sources, now_micros()).await?;
        Ok(())
    }

    /// When each declared source was last heard from, by source.
    pub async fn freshness(&self) -> Result<Vec<SourceFreshness>, PgError> {
        let mut conn = self.pool.acquire().await?;
        Ok(freshness::read_pg(&mut conn).await?)
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
        drop(conn);
        let (statuses, full) = result?;
        // The batch filled its generation: seal it, now that the batch has committed
        // (a seal waits for every batch logging into the generation). A failed seal
        // loses nothing (the next batch to find the generation full seals it).
        if let Some(generation) = full {
            let seal_at = self.seal_at.load(Ordering::Relaxed);
            if let Err(e) = generations::seal(&self.pool, generation, seal_at).await {
                tracing::warn!(generation, error = %e, "Could not seal a generation of the event log.");
            }
        }
        Ok(statuses)
    }

    /// One attempt of a batch, in one transaction on `conn`.
    async fn attempt_on(
        &self,
        conn: &mut PgConnection,
        items: &[&Item],
        positions: &[SourcePosition],
        lookup: Lookup,
    ) -> Result<(Vec<Status>, Option<i32>), TxError> {
        let plan = &*self.plan;
        let t0 = std::time::Instant::now();
        let mut tx = conn.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *tx)
            .await?;
        // 0. The log's current generation, and the keys of the sealed ones (see
        //    [`generations`]): first, so that a batch waiting for a seal holds nothing.
        let current = generations::enter(&mut tx).await?;
        let filter = generations::covering(&self.filter, &mut tx, current).await?;
        // 1. The fences: the store's aggregates are of this plan (held shared until the
        //    commit, so a replay waits for this batch or this batch for the replay), and
        //    this consumer still owns its partitions, and holds their rows.
        self.fence_plan(&mut tx).await?;
        // The arrival time is stamped once the plan row is held shared: a fiscal-year
        // close holds it exclusively while it takes its instant, so a batch stamped
        // before the close has committed before it (and is in the final figures), and
        // one stamped after commits after it (an adjustment).
        let received_at = now_micros();
        fence(&mut tx, positions).await?;
        // 2. The log rows of the batch's keys (one writer per key: no lock needed).
        // Sized for the batch: most of its events are logged in it.
        let mut overlay = BatchLog {
            log: MemoryLog::with_capacity(items.len()),
            ..BatchLog::default()
        };
        overlay
            .prefetch_keys(&mut tx, plan, items, lookup, current, &filter)
            .await?;
        drop(filter);
        let t_keys = t0.elapsed();
        // 3. The log first. What a batch logs (and each event's fate) depends on the log
        //    alone, never on the aggregates: decide it on a copy of the overlay and write
        //    it before any aggregate row is locked, so that replicas and parallel commits
        //    overlap their heaviest work and hold the shared rows only briefly.
        // A batch whose events can only add to flows, distinct sets and stages is folded
        // once: its fold on an empty ledger is added to the locked rows in step 5 (see
        // [`Additive`]). Any other folds again on the locked rows, from a copy of the
        // overlay as prefetched.
        let additive = self.additive.all(items);
        let mut decided = if additive {
            Decided::of(plan, std::mem::take(&mut overlay), items, true)
        } else {
            Decided::of(plan, overlay.clone(), items, false)
        };
        let t_decided = t0.elapsed();
        let added = decided
            .log
            .write_pg(&mut tx, plan, received_at, lookup, current)
            .await?;
        write_rejected(&mut tx, &decided.rejected, received_at).await?;
        let t_log = t0.elapsed();
        // 4. Lock every aggregate row the batch moves (as the log step's fold found them:
        //    the fold below decides alike), and read it.
        let keys = decided.keys(additive);
        let mut ledger = self.lock(&mut tx, &keys).await?;
        let t_read;
        if additive {
            t_read = t0.elapsed();
            // 5. The batch's fold, added to the locked rows: what folding it on them
            //    gives (see [`Additive`]).
            add_batch(&mut ledger, &decided.scratch)?;
        } else {
            // 4b. The days of the batch's snapshots, read under the lock of their level
            //     days.
            overlay
                .prefetch_days(&mut tx, plan, items, &self.level_types)
                .await?;
            t_read = t0.elapsed();
            // 5. Fold into the aggregates, exactly as the SQLite store does; the log's
            //    decisions come out as they were written in step 3.
            fold_as_decided(plan, &mut ledger, &mut overlay, items, &decided.statuses)?;
            if !overlay.logged_alike(&decided.log) {
                return Err(TxError::Fail(PgError::Inconsistent(
                    "the fold logged other events than the log step wrote".to_owned(),
                )));
            }
        }
        debug_assert!(
            keys.covers(&ledger),
            "the fold moved an aggregate row it had not locked"
        );
        let t_fold = t0.elapsed();
        // 6. Write back: one statement per table.
        self.write_aggregates(&mut tx, &keys, &ledger).await?;
        // 6b. The duplicates seen, after the aggregates and in key order (as every batch
        //     does: no lock cycle); none in most batches.
        if !decided.duplicates.is_empty() {
            decided.duplicates.write_pg(&mut tx).await?;
        }
        // 7. When each source was last heard from: last, to hold its rows briefly.
        freshness::heard_pg(
            &mut tx,
            &freshness::heard_from(items.iter().copied()),
            received_at,
        )
        .await?;
        // 8. Tell listeners, on commit.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *tx)
            .await?;
        let t_write = t0.elapsed();
        tx.commit().await?;
        let seal_at = self.seal_at.load(Ordering::Relaxed);
        let full = (current.filled + added >= seal_at).then_some(current.generation);
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
        Ok((decided.statuses, full))
    }

    /// Refuses the batch when the store's plan fingerprint is not this store's plan's (a
    /// replay rebuilt the aggregates under another plan since this process opened).
    async fn fence_plan(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), TxError> {
        let select = "SELECT fingerprint FROM plan_fingerprint WHERE id = 1 FOR SHARE";
        match fingerprints::fence::<Postgres>(tx, &self.prints, select).await? {
            Some(message) => Err(TxError::Fail(PgError::PlanChanged(message))),
            None => Ok(()),
        }
    }

    /// Every closed fiscal year with its final figures.
    pub async fn closes(&self) -> Result<Closes, PgError> {
        let mut conn = self.pool.acquire().await?;
        Ok(close::pg::read(&mut conn, &self.plan).await?)
    }

    /// Closes a fiscal year (see [`crate::close`]) in one transaction that first takes
    /// the plan fingerprint row exclusively: it waits for the batches in flight (each
    /// holds the row shared until it commits) and holds back the next ones, so the
    /// ledger it freezes is every batch committed before its instant, and every batch
    /// stamped later is an adjustment. Other processes' exporters are notified.
    #[tracing::instrument(skip_all, fields(year = req.year.0), err)]
    pub async fn close_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<ClosedYear, CloseRefusal>, PgError> {
        if let Err(refusal) = req.check(&self.plan) {
            return Ok(Err(refusal));
        }
        let mut tx = self.pool.begin().await?;
        self.lock_plan(&mut tx).await?;
        let closes = close::pg::read(&mut tx, &self.plan).await?;
        if let Some(c) = closes.get(req.year) {
            return Ok(Err(c.refusal()));
        }
        let ledger = self.load_ledger(&mut tx).await?;
        let closed_at = mieruka_ingest::Timestamp::from_micros(now_micros());
        let (closed, changes) =
            close::freeze(&self.plan, &ledger, req, closed_at, &self.prints.digest);
        close::pg::insert(&mut tx, &self.plan, &closed, &changes).await?;
        notify(&mut tx).await?;
        tx.commit().await?;
        Ok(Ok(closed))
    }

    /// Removes a fiscal year's close and logs it; returns the close dropped and the
    /// live figures that stand now.
    #[tracing::instrument(skip_all, fields(year = req.year.0), err)]
    pub async fn reopen_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<Reopened, CloseRefusal>, PgError> {
        let mut tx = self.pool.begin().await?;
        self.lock_plan(&mut tx).await?;
        let mut closes = close::pg::read(&mut tx, &self.plan).await?;
        let Some(dropped) = closes.years.remove(&req.year) else {
            return Ok(Err(CloseRefusal::NotClosed(req.year)));
        };
        let ledger = self.load_ledger(&mut tx).await?;
        let live = close::year_figures(&self.plan, &ledger, req.year, req.now.max(req.year.end()));
        let changes = close::reopen_changes(&self.plan, &dropped, &live);
        let at = mieruka_ingest::Timestamp::from_micros(now_micros());
        close::pg::delete(&mut tx, req, at, &changes).await?;
        notify(&mut tx).await?;
        tx.commit().await?;
        Ok(Ok(Reopened { dropped, live }))
    }

    /// The events and voids that arrived after a close (see [`LateQuery`]).
    pub async fn late_events(&self, q: &LateQuery<'_>) -> Result<LateEvents, PgError> {
        let mut conn = self.pool.acquire().await?;
        Ok(close::pg::late(&mut conn, q).await?)
    }

    /// Takes the plan fingerprint row exclusively (see [`PgStore::close_year`]),
    /// refusing a plan whose measures are not the store's.
    async fn lock_plan(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), PgError> {
        let select = "SELECT fingerprint FROM plan_fingerprint WHERE id = 1 FOR UPDATE";
        match fingerprints::fence::<Postgres>(tx, &self.prints, select).await? {
            Some(message) => Err(PgError::PlanChanged(message)),
            None => Ok(()),
        }
    }

    async fn load_ledger(&self, conn: &mut PgConnection) -> Result<Ledger, PgError> {
        let mut ledger = Ledger::default();
        for agg in Aggregate::ALL {
            for r in sqlx::query(&agg.select_all(Dialect::Postgres))
                .fetch_all(&mut *conn)
                .await?
            {
                agg.read(&self.ids, &self.plan, &r, &mut ledger)?;
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

/// Each method calls the inherent one of the same name (inherent methods win a path).
impl Store for PgStore {
    type Error = PgError;
    type Location = str;

    async fn open(location: &str, plan: Arc<Plan>) -> Result<Self, PgError> {
        PgStore::open(location, plan).await
    }

    fn plan(&self) -> &Arc<Plan> {
        PgStore::plan(self)
    }

    async fn open_with(location: &str, plan: Arc<Plan>, check: PlanCheck) -> Result<Self, PgError> {
        PgStore::open_with(location, plan, check).await
    }

    async fn replay(
        &self,
        apply: bool,
        now: mieruka_ingest::Timestamp,
    ) -> Result<crate::replay::Outcome, PgError> {
        PgStore::replay(self, apply, now).await
    }

    async fn ledger(&self) -> Result<Ledger, PgError> {
        PgStore::ledger(self).await
    }

    async fn submit_batch(&self, items: Vec<Item>) -> Result<Vec<Status>, PgError> {
        PgStore::submit_batch(self, items).await
    }

    async fn rejected(&self, limit: i64) -> Result<Vec<RejectedRow>, PgError> {
        PgStore::rejected(self, limit).await
    }

    async fn declare_sources(&self, sources: &[String]) -> Result<(), PgError> {
        PgStore::declare_sources(self, sources).await
    }

    async fn freshness(&self) -> Result<Vec<SourceFreshness>, PgError> {
        PgStore::freshness(self).await
    }

    async fn rejected_matching(
        &self,
        filter: &RejectedFilter,
        limit: i64,
    ) -> Result<Vec<RejectedRow>, PgError> {
        let rows = self.rejected_with_offsets_matching(filter, limit).await?;
        Ok(rows.into_iter().map(|(row, _)| row).collect())
    }

    async fn rejected_summary(
        &self,
        filter: &RejectedFilter,
    ) -> Result<Vec<RejectedCount>, PgError> {
        let rows = filter
            .summary_query::<Postgres>()
            .build()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(read_count).collect::<Result<_, _>>()?)
    }

    async fn scan_log(
        &self,
        scan: crate::store::LogScan<'_>,
        each: crate::store::OnEntry<'_>,
    ) -> Result<u64, PgError> {
        Ok(crate::store::scan::scan_pg(&self.pool, &self.plan, scan, each).await?)
    }

    async fn logged_events(&self) -> Result<i64, PgError> {
        PgStore::logged_events(self).await
    }

    async fn closes(&self) -> Result<Closes, PgError> {
        PgStore::closes(self).await
    }

    async fn rederive_closes(&self) -> Result<Vec<crate::replay::Difference>, PgError> {
        PgStore::rederive_closes(self).await
    }

    async fn close_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<ClosedYear, CloseRefusal>, PgError> {
        PgStore::close_year(self, req).await
    }

    async fn reopen_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<Reopened, CloseRefusal>, PgError> {
        PgStore::reopen_year(self, req).await
    }

    async fn late_events(&self, q: &LateQuery<'_>) -> Result<LateEvents, PgError> {
        PgStore::late_events(self, q).await
    }

    async fn duplicates_seen(
        &self,
        measure: &str,
        from: crate::fiscal::Day,
        to: crate::fiscal::Day,
    ) -> Result<i64, PgError> {
        let mut conn = self.pool.acquire().await?;
        Ok(duplicates::sum_pg(&mut conn, measure, from, to).await?)
    }

    async fn ping(&self) -> bool {
        PgStore::ping(self).await
    }

    async fn close(&self) {
        PgStore::close(self).await;
    }
}

/// What the log step (step 3 of an attempt) decided of a batch, folding on a scratch
/// ledger: the log as it must be written, each item's fate, the rejected items, and the
/// aggregate rows the batch moves.
struct Decided {
    log: BatchLog,
    /// The batch folded on an empty ledger: what [`add_batch`] adds to the locked rows
    /// of a batch of [`Additive`] events.
    scratch: Ledger,
    statuses: Vec<Status>,
    rejected: Vec<RejectedItem>,
    moved: Vec<Effect>,
    /// The batch's duplicates, per measure and day they would feed.
    duplicates: DuplicateCounts,
}

impl Decided {
    /// Folds `items` on `log` (the overlay as prefetched, or a copy of it).
    ///
    /// The rows an [`Additive`] batch moves are those its fold left something in (a
    /// flow whose amounts cancel out stays as it was): the effects are not collected
    /// one by one.
    fn of(plan: &Plan, log: BatchLog, items: &[&Item], additive: bool) -> Self {
        let mut decided = Decided {
            log,
            scratch: Ledger::default(),
            statuses: Vec::with_capacity(items.len()),
            rejected: Vec::new(),
            moved: Vec::new(),
            duplicates: DuplicateCounts::default(),
        };
        for &item in items {
            if additive {
                decided.moved.clear();
            }
            let (status, raw) = match &item.outcome {
                Err(r) => (
                    Status::Rejected(r.clone()),
                    item.raw_masked.clone().unwrap_or_default(),
                ),
                Ok(event) => {
                    let (status, returned) = fold_tracked(
                        plan,
                        &mut decided.scratch,
                        &mut decided.log,
                        event.clone(),
                        &mut decided.moved,
                    );
                    if let (Status::Duplicate, Some(event)) = (&status, returned) {
                        decided.duplicates.add(plan, &event);
                    }
                    // The canonical text is kept for a refusal only: most events are
                    // accepted, and writing it out for each was over a third of this pass.
                    let raw = match &status {
                        Status::Rejected(_) => event.canonical_json(&plan.schema),
                        _ => String::new(),
                    };
                    (status, raw)
                }
            };
            if let Status::Rejected(r) = &status {
                decided.rejected.push(RejectedItem {
                    source_label: item.source_label.clone(),
                    position: item.position.clone(),
                    rejection: r.clone(),
                    raw,
                });
            }
            decided.statuses.push(status);
        }
        decided
    }

    /// The aggregate rows the batch moves.
    fn keys(&mut self, additive: bool) -> Keys {
        if additive {
            Keys::all(&self.scratch)
        } else {
            Keys::of(std::mem::take(&mut self.moved))
        }
    }
}

/// The event types that can only add to flows, distinct sets and milestone stages: no
/// route of theirs moves or resets a level, and they are not voids (a void retracts its
/// original, and may move a level).
///
/// A batch of such events is folded once, on an empty ledger, before any aggregate row is
/// locked (step 3), and that fold is then added to the locked rows ([`add_batch`])
/// instead of folding the batch again on them. Both give the same rows: without
/// retractions every count only grows (a distinct value's, a stage's), so adding up
/// never meets the removal of a count at zero; flows are sums whatever their sign; an
/// `as_of` is the latest time seen. Levels are not additive (a snapshot records the
/// deltas logged after it on its day, read from the log as it stands), so a batch with
/// any event that could move one is folded twice, as before.
struct Additive(Vec<bool>);

impl Additive {
    fn of(plan: &Plan) -> Self {
        let types = plan.schema.types();
        Additive(
            (0..types.len())
                .map(|t| {
                    let routes = plan.routes.get(t).map_or(&[][..], Vec::as_slice);
                    !types[t].voids
                        && routes.iter().all(|r| {
                            !matches!(r.op, Op::Reset | Op::Sub)
                                && plan.measures[r.measure].kind != MeasureKind::Level
                        })
                })
                .collect(),
        )
    }

    /// Whether every decoded event of `items` is of an additive type.
    fn all(&self, items: &[&Item]) -> bool {
        items.iter().all(|i| match &i.outcome {
            Ok(e) => self.0.get(usize::from(e.type_id.0)) == Some(&true),
            Err(_) => true,
        })
    }
}

/// Step 5 of an attempt of an [`Additive`] batch: adds `batch` (its fold on an empty
/// ledger) to the locked rows, through the ledger's own `apply`, each key once with
/// the batch's total.
fn add_batch(ledger: &mut Ledger, batch: &Ledger) -> Result<(), TxError> {
    if !batch.levels.is_empty() || !batch.distinct_counts.is_empty() {
        return Err(TxError::Fail(PgError::Inconsistent(
            "a batch of additive events moved a level".to_owned(),
        )));
    }
    // Never called: no flow, distinct value or stage reads the log.
    let mut no_deltas = |_, _, _| 0;
    for (&(measure, day), &amount) in batch.flows.iter() {
        ledger.apply(
            &Effect::Flow {
                measure,
                day,
                amount,
            },
            1,
            &mut no_deltas,
        );
    }
    for (&(measure, year), values) in &batch.distinct {
        for (value, &count) in values {
            let value = value.clone();
            ledger.apply(
                &Effect::Distinct {
                    measure,
                    year,
                    value,
                },
                count,
                &mut no_deltas,
            );
        }
    }
    for (&(kpi, day, stage), &count) in &batch.stages {
        ledger.apply(&Effect::Stage { kpi, day, stage }, count, &mut no_deltas);
    }
    for (&key, &at) in &batch.as_of {
        let slot = ledger.as_of.entry(key).or_insert(at);
        *slot = (*slot).max(at);
    }
    Ok(())
}

/// Step 5 of an attempt: folds the batch into the locked rows; each event's fate must be
/// the one the log step decided (and wrote).
fn fold_as_decided(
    plan: &Plan,
    ledger: &mut Ledger,
    overlay: &mut BatchLog,
    items: &[&Item],
    decided: &[Status],
) -> Result<(), TxError> {
    let mut fates = decided.iter();
    for item in items {
        let decided_fate = fates.next();
        if let Ok(event) = &item.outcome {
            let status = fold(plan, ledger, overlay, event.clone());
            if decided_fate != Some(&status) {
                return Err(TxError::Fail(PgError::Inconsistent(format!(
                    "event {} of source {}: the log decided {decided_fate:?}, the fold {status:?}",
                    event.id, event.source
                ))));
            }
        }
    }
    Ok(())
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

/// Compares the store's measure fingerprints with the plan's; a fresh store adopts the
/// plan's (two processes adopting at once: the first insert wins, the other compares).
async fn check_plan(pool: &PgPool, prints: &PlanPrints) -> Result<(), PgError> {
    let mut tx = pool.begin().await?;
    // Serialises adopters: the second waits, then finds the first one's rows.
    sqlx::query("LOCK TABLE measure_fingerprints IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    match fingerprints::compare::<Postgres>(&mut tx, prints).await? {
        Verdict::Drift(message) => return Err(PgError::PlanChanged(message)),
        Verdict::Adopt => {
            for mut q in fingerprints::inserts::<Postgres>(prints) {
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
        }
        Verdict::Same => {}
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mieruka_ingest::Event;

    use crate::engine::EventLog;

    use super::*;

    fn event(plan: &Plan, id: &str, source: &str, ty: &str, data: &str) -> Arc<Event> {
        let body = format!(
            r#"{{"event_id":"{id}","source":"{source}","type":"{ty}","occurred_at":"2026-05-01T10:00:00+09:00","data":{data}}}"#
        );
        let event = mieruka_ingest::decode_logged(&plan.schema, body.as_bytes())
            .unwrap_or_else(|e| panic!("{body}: {e:?}"));
        Arc::new(event)
    }

    fn type_ix(plan: &Plan, name: &str) -> usize {
        plan.schema
            .types()
            .iter()
            .position(|t| t.name == name)
            .unwrap_or_else(|| panic!("no type {name}"))
    }

    /// A batch of additive events folded once on an empty ledger and added to the locked
    /// rows leaves them as folding the batch on them does: flows, distinct values and
    /// stages already there or new, duplicates, and an event voided on arrival.
    #[test]
    fn an_additive_batch_added_to_the_locked_rows_is_what_folding_it_on_them_gives() {
        let plan = Plan::ome().unwrap_or_else(|e| panic!("the Ome plan: {e:?}"));
        let cert = |id: &str, channel: &str, count: u32| {
            let data =
                format!(r#"{{"channel":"{channel}","certificate":"juminhyo","count":{count}}}"#);
            event(&plan, id, "konbini", "certificate.issued", &data)
        };
        let staff = |id: &str, who: &str| {
            let data = format!(r#"{{"staff":"{who}"}}"#);
            event(&plan, id, "hr", "telework.day", &data)
        };
        let stage = |id: &str, stage: &str| {
            let data = format!(r#"{{"kpi":"library_card_with_mynumber","stage":"{stage}"}}"#);
            event(&plan, id, "dx", "milestone.reached", &data)
        };
        let earlier = [
            cert("c-1", "konbini", 2),
            cert("c-2", "mail", 1),
            staff("t-1", "stf-a"),
            stage("m-1", "not_introduced"),
        ];
        let batch = [
            cert("c-3", "konbini", 1),
            cert("c-1", "konbini", 2), // a re-send of a logged event
            cert("c-4", "online", 5),
            cert("c-4", "online", 5),  // a re-send within the batch
            cert("c-5", "konbini", 7), // voided before it arrived
            staff("t-2", "stf-a"),
            staff("t-3", "stf-b"),
            stage("m-2", "not_introduced"),
            stage("m-3", "preparing_and_introducing"),
        ];
        let additive = Additive::of(&plan);
        for e in earlier.iter().chain(&batch) {
            assert!(additive.0[usize::from(e.type_id.0)], "{}", e.id);
        }
        let (mut locked, mut log) = (Ledger::default(), MemoryLog::default());
        for e in &earlier {
            fold(&plan, &mut locked, &mut log, e.clone());
        }
        log.add_pending_void("konbini", "c-5");

        let (mut folded, mut folded_log) = (locked.clone(), log.clone());
        let (mut scratch, mut scratch_log) = (Ledger::default(), log);
        for e in &batch {
            let twice = fold(&plan, &mut folded, &mut folded_log, e.clone());
            assert_eq!(
                fold(&plan, &mut scratch, &mut scratch_log, e.clone()),
                twice
            );
        }
        let mut added = locked.clone();
        assert!(add_batch(&mut added, &scratch).is_ok());
        assert_ne!(added, locked, "the batch moved the rows");
        assert_eq!(added, folded);
    }

    /// Voids, and the types that move or reset a level, are folded twice.
    #[test]
    fn voids_and_level_events_are_not_additive() {
        let plan = Plan::ome().unwrap_or_else(|e| panic!("the Ome plan: {e:?}"));
        let additive = Additive::of(&plan);
        for ty in [
            "event.voided",
            "mynumber_card.issued",
            "mynumber_card.surrendered",
            "mynumber_card.holders_snapshot",
            "population.snapshot",
        ] {
            assert!(!additive.0[type_ix(&plan, ty)], "{ty}");
        }
        for ty in [
            "certificate.issued",
            "application.submitted",
            "telework.day",
        ] {
            assert!(additive.0[type_ix(&plan, ty)], "{ty}");
        }
        // A level in the scratch ledger is refused, not added.
        let mut levels = Ledger::default();
        levels.levels.insert(
            (crate::plan::MeasureId(0), crate::fiscal::Day(0)),
            crate::ledger::LevelDay {
                delta: 1,
                ..Default::default()
            },
        );
        assert!(add_batch(&mut Ledger::default(), &levels).is_err());
    }
}
