//! The store: the event log, the aggregates and the rejected events, in SQLite (the
//! embedded default).
//!
//! A batch is one transaction: the batch's log entries, the aggregates it changed, its
//! rejections and a version bump commit together, so a crash at any moment leaves
//! either all of a batch or none of it, and a re-sent batch finds its events in the log
//! (duplicates) instead of counting them twice.
//!
//! The ledger lives in memory (it is small: measures × days) and is the source the
//! figures are computed from; the tables are its durable copy. Several processes may
//! share one file (`mieruka import` beside a running `standalone`): each batch starts by
//! bumping the version row, which takes SQLite's write lock, and a writer that finds the
//! version moved reloads its ledger before applying. A batch folds into the live ledger
//! (no copy per batch), so the ledger is marked inconsistent while it does: a batch that
//! fails, panics or is dropped half-way (an HTTP client that disconnects drops its
//! handler's future) leaves the mark, and the next access reloads from the database.
//!
//! Summed amounts (flows, level deltas, snapshots) are i128 and kept as decimal text: an
//! i128 does not fit SQLite's 64-bit INTEGER (see `migrations/sqlite/0002_wide_sums.sql`).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mieruka_ingest::{EventSink, Item, SinkError, Status, Timestamp};
use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;

use crate::close::{
    CloseRefusal, CloseRequest, ClosedYear, Closes, LateEvents, LateQuery, Reopened,
};
use crate::engine::{fold_tracked, BatchLog, EventLog, LogEntry};
use crate::fiscal::Day;
use crate::ledger::{Effect, Ledger};
use crate::plan::Plan;
use crate::store::close;
use crate::store::duplicates::{self, DuplicateCounts};
use crate::store::fingerprints::{self, PlanCheck, PlanPrints, Verdict};
use crate::store::freshness::{self, SourceFreshness};
use crate::store::rejected::{read_count, read_rejected, RejectedItem};
use crate::store::row::ReadError;
use crate::store::tables::{Aggregate, Dialect, Ids, Keys, Table, TableRow, Value};
use crate::store::{RejectedCount, RejectedFilter, RejectedRow, Store};

mod replay;

/// Rows per multi-row statement: SQLite allows 32,766 bound parameters; 500 rows of at
/// most 9 columns stays far below and keeps statements cacheable.
const ROWS_PER_STATEMENT: usize = 500;

/// Why the store failed. Every variant means nothing of the batch was committed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, migrated or written.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    /// A stored aggregate is not what this store writes (the file was edited by hand or
    /// damaged): an operator must look.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The plan's measures mean something else than the stored aggregates were folded
    /// with: nothing is written until `mieruka replay --apply` rebuilds them.
    #[error("refused: {0}")]
    PlanChanged(String),
}

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(sqlx::Error::Database(ref d))
                if d.message().contains("locked") =>
            {
                SinkError::Unavailable(e.to_string())
            }
            StoreError::Database(_) => SinkError::Unavailable(e.to_string()),
            other => SinkError::Fatal(other.to_string()),
        }
    }
}

impl From<ReadError> for StoreError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Database(e) => StoreError::Database(e),
            ReadError::Corrupt(m) => StoreError::Corrupt(m),
        }
    }
}

/// The in-memory ledger and which commit it mirrors.
struct State {
    ledger: Ledger,
    /// The `meta.version` of the commit the ledger was loaded at or made.
    version: i64,
    /// Whether `ledger` is exactly the database at `version`. Cleared before a batch
    /// folds into the ledger, set again only once the batch committed or the ledger was
    /// reloaded: whatever stops a batch half-way (an error, a panic, its future dropped)
    /// leaves it cleared, and the next access reloads.
    consistent: bool,
}

/// Reloads `state` from the database: the version and the ledger of one commit.
async fn reload(pool: &SqlitePool, plan: &Plan, state: &mut State) -> Result<(), StoreError> {
    state.consistent = false;
    // One read transaction, so another process's commit cannot fall between the two reads.
    let mut tx = pool.begin().await?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM meta WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let ledger = load_ledger(&mut tx, plan).await?;
    tx.commit().await?;
    *state = State {
        ledger,
        version,
        consistent: true,
    };
    Ok(())
}

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    plan: Arc<Plan>,
    /// What the plan's measures mean: checked by every batch against the store's.
    prints: PlanPrints,
    /// A tokio mutex: a batch holds it across its awaits on the database, and batches
    /// of one process must not interleave.
    state: Mutex<State>,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, migrates it and loads the ledger;
    /// refuses a plan whose measures changed ([`StoreError::PlanChanged`]).
    pub async fn open(path: &Path, plan: Arc<Plan>) -> Result<Self, StoreError> {
        Self::open_with(path, plan, PlanCheck::Refuse).await
    }

    /// [`SqliteStore::open`], comparing the plan's measure fingerprints with the store's
    /// or not (`mieruka replay` opens a store whatever they say, to rebuild it).
    #[tracing::instrument(skip(plan), err)]
    pub async fn open_with(
        path: &Path,
        plan: Arc<Plan>,
        check: PlanCheck,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit survives power loss, not only a killed process. One fsync
            // per batch, so batching keeps the cost small.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            // 64 MiB of page cache per connection: the event log's B-tree inserts stay
            // in memory instead of re-reading pages (the default is 2 MiB).
            .pragma("cache_size", "-65536")
            // Checkpoint the WAL every 16k pages instead of 1k: pages rewritten by
            // consecutive batches are copied back once.
            .pragma("wal_autocheckpoint", "16384")
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let prints = PlanPrints::of(&plan);
        if check == PlanCheck::Refuse {
            check_plan(&pool, &prints).await?;
        }
        let mut state = State {
            ledger: Ledger::default(),
            version: 0,
            consistent: false,
        };
        // The roles load the ledger now, so that a damaged store stops them at start. A
        // store opened for `replay` (`Ignore`) never reads it (a replay loads its own,
        // without the distinct values): loading it would hold every distinct value in
        // memory for nothing. Inconsistent, it is loaded on first use if ever.
        if check == PlanCheck::Refuse {
            reload(&pool, &plan, &mut state).await?;
        }
        Ok(Self {
            pool,
            plan,
            prints,
            state: Mutex::new(state),
        })
    }

    /// The plan the store folds with.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// A copy of the current ledger, reloaded first if another process wrote.
    pub async fn ledger(&self) -> Result<Ledger, StoreError> {
        self.with_ledger(Ledger::clone).await
    }

    /// Runs `f` on the current ledger (reloaded first if another process wrote, or if a
    /// batch stopped half-way), without copying it: how the exporter's snapshot is
    /// computed after each batch.
    pub async fn with_ledger<R>(&self, f: impl FnOnce(&Ledger) -> R) -> Result<R, StoreError> {
        let mut state = self.state.lock().await;
        let version: i64 = sqlx::query_scalar("SELECT version FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        if version != state.version || !state.consistent {
            reload(&self.pool, &self.plan, &mut state).await?;
        }
        Ok(f(&state.ledger))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The most recent rejected events, newest first.
    pub async fn rejected(&self, limit: i64) -> Result<Vec<RejectedRow>, StoreError> {
        Store::rejected_matching(self, &RejectedFilter::default(), limit).await
    }

    /// Declares the sources a role's configuration knows (see [`Store::declare_sources`]).
    pub async fn declare_sources(&self, sources: &[String]) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        freshness::declare_sqlite(&mut conn, sources, now_micros()).await?;
        Ok(())
    }

    /// When each declared source was last heard from, by source.
    pub async fn freshness(&self) -> Result<Vec<SourceFreshness>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(freshness::read_sqlite(&mut conn).await?)
    }

    /// Number of events in the log.
    pub async fn logged_events(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM event_log")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Every closed fiscal year with its final figures.
    pub async fn closes(&self) -> Result<Closes, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(close::sqlite::read(&mut conn, &self.plan).await?)
    }

    /// Closes a fiscal year (see [`crate::close`]): in one write transaction, which
    /// takes the lock every batch takes before it stamps its arrival time, the figures
    /// are computed from the ledger as committed and frozen, and the close instant is
    /// taken; so each batch's events are wholly in the final figures (received before)
    /// or wholly adjustments (received after).
    #[tracing::instrument(skip_all, fields(year = req.year.0), err)]
    pub async fn close_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<ClosedYear, CloseRefusal>, StoreError> {
        if let Err(refusal) = req.check(&self.plan) {
            return Ok(Err(refusal));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE meta SET version = version WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        self.fence_plan(&mut tx).await?;
        let closes = close::sqlite::read(&mut tx, &self.plan).await?;
        if let Some(c) = closes.get(req.year) {
            return Ok(Err(c.refusal()));
        }
        let ledger = load_ledger(&mut tx, &self.plan).await?;
        let closed_at = Timestamp::from_micros(now_micros());
        let (closed, changes) =
            close::freeze(&self.plan, &ledger, req, closed_at, &self.prints.digest);
        close::sqlite::insert(&mut tx, &self.plan, &closed, &changes).await?;
        tx.commit().await?;
        Ok(Ok(closed))
    }

    /// Removes a fiscal year's close and logs it; returns the close dropped and the
    /// live figures that stand now.
    #[tracing::instrument(skip_all, fields(year = req.year.0), err)]
    pub async fn reopen_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<Reopened, CloseRefusal>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE meta SET version = version WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let mut closes = close::sqlite::read(&mut tx, &self.plan).await?;
        let Some(dropped) = closes.years.remove(&req.year) else {
            return Ok(Err(CloseRefusal::NotClosed(req.year)));
        };
        let ledger = load_ledger(&mut tx, &self.plan).await?;
        let live = close::year_figures(&self.plan, &ledger, req.year, req.now.max(req.year.end()));
        let changes = close::reopen_changes(&self.plan, &dropped, &live);
        close::sqlite::delete(&mut tx, req, Timestamp::from_micros(now_micros()), &changes).await?;
        tx.commit().await?;
        Ok(Ok(Reopened { dropped, live }))
    }

    /// The events and voids that arrived after a close (see [`LateQuery`]).
    pub async fn late_events(&self, q: &LateQuery<'_>) -> Result<LateEvents, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(close::sqlite::late(&mut conn, q).await?)
    }

    /// Closes the pool (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Makes a batch durable; reports each item's fate in order.
    #[tracing::instrument(skip_all, fields(items = items.len()), err)]
    pub async fn submit_batch(&self, items: Vec<Item>) -> Result<Vec<Status>, StoreError> {
        self.submit_batch_hooked(items, std::future::ready(()))
            .await
    }

    /// [`SqliteStore::submit_batch`], awaiting `before_commit` once the batch is folded
    /// into the live ledger and written, before its transaction commits: where a test
    /// makes a batch panic, or holds it to drop it, while the ledger is ahead of the
    /// database.
    #[doc(hidden)]
    pub async fn submit_batch_hooked(
        &self,
        items: Vec<Item>,
        before_commit: impl Future<Output = ()>,
    ) -> Result<Vec<Status>, StoreError> {
        let mut state = self.state.lock().await;
        let result = self.fold_and_commit(&mut state, items, before_commit).await;
        if result.is_err() {
            // The transaction rolled back: bring the ledger back to what is committed now
            // rather than at the next access. Should that fail too, the ledger stays
            // marked inconsistent and the next access tries again.
            if let Err(e) = reload(&self.pool, &self.plan, &mut state).await {
                tracing::warn!(error = %e, "Reloading the ledger after a failed batch failed; the next access retries.");
            }
        }
        result
    }

    /// One batch's transaction, folding into the live ledger (no copy per batch). The
    /// ledger is marked inconsistent until the commit: if this stops anywhere before,
    /// by an error, a panic or a dropped future, the transaction rolls back and the
    /// mark makes the next access reload the ledger.
    async fn fold_and_commit(
        &self,
        state: &mut State,
        items: Vec<Item>,
        before_commit: impl Future<Output = ()>,
    ) -> Result<Vec<Status>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The first statement writes, so it takes the write lock before anything is read.
        let version: i64 = sqlx::query_scalar(
            "UPDATE meta SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut *tx)
        .await?;
        self.fence_plan(&mut tx).await?;
        if version - 1 != state.version || !state.consistent {
            state.ledger = load_ledger(&mut tx, &self.plan).await?;
        }
        state.consistent = false;
        let statuses = self.apply(&mut tx, &mut state.ledger, items).await?;
        before_commit.await;
        tx.commit().await?;
        state.version = version;
        state.consistent = true;
        Ok(statuses)
    }

    /// Refuses the batch when the store's plan fingerprint is not this store's plan's
    /// (a replay rebuilt the aggregates under another plan since this process opened).
    async fn fence_plan(&self, tx: &mut Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        let select = "SELECT fingerprint FROM plan_fingerprint WHERE id = 1";
        match fingerprints::fence::<Sqlite>(tx, &self.prints, select).await? {
            Some(message) => Err(StoreError::PlanChanged(message)),
            None => Ok(()),
        }
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        ledger: &mut Ledger,
        items: Vec<Item>,
    ) -> Result<Vec<Status>, StoreError> {
        let plan = &*self.plan;
        let received_at = now_micros();
        let mut overlay = BatchLog::default();
        overlay.prefetch(tx, plan, &items).await?;
        let heard = freshness::heard_from(&items);

        let mut statuses = Vec::with_capacity(items.len());
        let mut rejected: Vec<RejectedItem> = Vec::new();
        let mut dirty: Vec<Effect> = Vec::new();
        let mut duplicates = DuplicateCounts::default();
        for item in items {
            let Item {
                position,
                outcome,
                raw_masked,
                source_label,
                ..
            } = item;
            match outcome {
                Err(r) => {
                    statuses.push(Status::Rejected(r.clone()));
                    rejected.push(RejectedItem {
                        source_label,
                        position,
                        rejection: r,
                        raw: raw_masked.unwrap_or_default(),
                    });
                }
                Ok(event) => {
                    let (status, returned) =
                        fold_tracked(plan, ledger, &mut overlay, event, &mut dirty);
                    match (&status, returned) {
                        (Status::Rejected(r), Some(event)) => rejected.push(RejectedItem {
                            source_label,
                            position,
                            rejection: r.clone(),
                            raw: event.canonical_json(&plan.schema),
                        }),
                        (Status::Duplicate, Some(event)) => duplicates.add(plan, &event),
                        _ => {}
                    }
                    statuses.push(status);
                }
            }
        }
        overlay.write_sqlite(tx, plan, received_at).await?;
        write_rejected(tx, &rejected, received_at).await?;
        write_aggregates(tx, plan, ledger, dirty).await?;
        freshness::heard_sqlite(tx, &heard, received_at).await?;
        if !duplicates.is_empty() {
            duplicates.write_sqlite(tx).await?;
        }
        Ok(statuses)
    }
}

impl EventSink for SqliteStore {
    async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
        self.submit_batch(items).await.map_err(SinkError::from)
    }
}

/// Each method calls the inherent one of the same name (inherent methods win a path).
impl Store for SqliteStore {
    type Error = StoreError;
    type Location = Path;

    async fn open(location: &Path, plan: Arc<Plan>) -> Result<Self, StoreError> {
        SqliteStore::open(location, plan).await
    }

    fn plan(&self) -> &Arc<Plan> {
        SqliteStore::plan(self)
    }

    async fn open_with(
        location: &Path,
        plan: Arc<Plan>,
        check: PlanCheck,
    ) -> Result<Self, StoreError> {
        SqliteStore::open_with(location, plan, check).await
    }

    async fn replay(
        &self,
        apply: bool,
        now: mieruka_ingest::Timestamp,
    ) -> Result<crate::replay::Outcome, StoreError> {
        SqliteStore::replay(self, apply, now).await
    }

    async fn ledger(&self) -> Result<Ledger, StoreError> {
        SqliteStore::ledger(self).await
    }

    async fn submit_batch(&self, items: Vec<Item>) -> Result<Vec<Status>, StoreError> {
        SqliteStore::submit_batch(self, items).await
    }

    async fn rejected(&self, limit: i64) -> Result<Vec<RejectedRow>, StoreError> {
        SqliteStore::rejected(self, limit).await
    }

    async fn declare_sources(&self, sources: &[String]) -> Result<(), StoreError> {
        SqliteStore::declare_sources(self, sources).await
    }

    async fn freshness(&self) -> Result<Vec<SourceFreshness>, StoreError> {
        SqliteStore::freshness(self).await
    }

    async fn rejected_matching(
        &self,
        filter: &RejectedFilter,
        limit: i64,
    ) -> Result<Vec<RejectedRow>, StoreError> {
        let rows = filter
            .rows_query::<Sqlite>("", limit)
            .build()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(read_rejected).collect::<Result<_, _>>()?)
    }

    async fn rejected_summary(
        &self,
        filter: &RejectedFilter,
    ) -> Result<Vec<RejectedCount>, StoreError> {
        let rows = filter
            .summary_query::<Sqlite>()
            .build()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(read_count).collect::<Result<_, _>>()?)
    }

    async fn scan_log(
        &self,
        scan: crate::store::LogScan<'_>,
        each: crate::store::OnEntry<'_>,
    ) -> Result<u64, StoreError> {
        Ok(crate::store::scan::scan_sqlite(&self.pool, &self.plan, scan, each).await?)
    }

    async fn logged_events(&self) -> Result<i64, StoreError> {
        SqliteStore::logged_events(self).await
    }

    async fn closes(&self) -> Result<Closes, StoreError> {
        SqliteStore::closes(self).await
    }

    async fn rederive_closes(&self) -> Result<Vec<crate::replay::Difference>, StoreError> {
        SqliteStore::rederive_closes(self).await
    }

    async fn close_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<ClosedYear, CloseRefusal>, StoreError> {
        SqliteStore::close_year(self, req).await
    }

    async fn reopen_year(
        &self,
        req: &CloseRequest,
    ) -> Result<Result<Reopened, CloseRefusal>, StoreError> {
        SqliteStore::reopen_year(self, req).await
    }

    async fn late_events(&self, q: &LateQuery<'_>) -> Result<LateEvents, StoreError> {
        SqliteStore::late_events(self, q).await
    }

    async fn duplicates_seen(&self, measure: &str, from: Day, to: Day) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(duplicates::sum_sqlite(&mut conn, measure, from, to).await?)
    }

    async fn ping(&self) -> bool {
        SqliteStore::ping(self).await
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}

impl BatchLog {
    async fn prefetch(
        &mut self,
        tx: &mut Transaction<'static, Sqlite>,
        plan: &Plan,
        items: &[Item],
    ) -> Result<(), StoreError> {
        let keys = BatchLog::keys_needed(items);
        let snapshot_days: BTreeSet<i32> = items
            .iter()
            .filter_map(|i| i.outcome.as_ref().ok())
            .filter(|e| plan.is_snapshot[usize::from(e.type_id.0)])
            .map(|e| Day::of(e.occurred_at).0)
            .collect();
        for chunk in keys.chunks(ROWS_PER_STATEMENT * 4) {
            let json = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".into());
            let rows = sqlx::query(
                "SELECT body, fingerprint, voided FROM event_log \
                 WHERE (source, event_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
            )
            .bind(&json)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                if let Some(entry) = LogEntry::from_stored(
                    plan,
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get::<i64, _>(2)? != 0,
                ) {
                    self.log.insert(entry);
                }
            }
            let pending = sqlx::query(
                "SELECT source, target_id FROM pending_voids \
                 WHERE (source, target_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
            )
            .bind(&json)
            .fetch_all(&mut **tx)
            .await?;
            for r in pending {
                self.log.add_pending_void(r.try_get(0)?, r.try_get(1)?);
            }
        }
        // A snapshot that becomes its day's latest needs that day's deltas.
        for day in snapshot_days {
            let rows = sqlx::query(
                "SELECT body, fingerprint, voided FROM event_log WHERE day = ? AND moves_level = 1 AND voided = 0",
            )
            .bind(day)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                if let Some(entry) =
                    LogEntry::from_stored(plan, r.try_get(0)?, r.try_get(1)?, false)
                {
                    self.add_fetched(entry);
                }
            }
        }
        Ok(())
    }

    async fn write_sqlite(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        plan: &Plan,
        received_at: i64,
    ) -> Result<(), StoreError> {
        let entries = self.entries_to_write();
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO event_log (source, event_id, fingerprint, type, occurred_at, day, body, voided, moves_level, received_at) ",
            );
            qb.push_values(chunk, |mut b, e| {
                let ev = &e.event;
                b.push_bind(ev.source.as_str())
                    .push_bind(ev.id.as_str())
                    .push_bind(e.fingerprint)
                    .push_bind(plan.schema.event_type(ev.type_id).name.as_str())
                    .push_bind(ev.occurred_at.micros())
                    .push_bind(Day::of(ev.occurred_at).0)
                    .push_bind(ev.canonical_json(&plan.schema))
                    .push_bind(i64::from(e.voided))
                    .push_bind(i64::from(plan.moves_a_level(ev.type_id)))
                    .push_bind(received_at);
            });
            qb.build().execute(&mut **tx).await?;
        }
        let to_void = self.to_mark_voided();
        for chunk in to_void.chunks(ROWS_PER_STATEMENT * 4) {
            let json = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "UPDATE event_log SET voided = 1 \
                 WHERE (source, event_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
            )
            .bind(json)
            .execute(&mut **tx)
            .await?;
        }
        for chunk in self.new_pending.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR IGNORE INTO pending_voids (source, target_id) ");
            qb.push_values(chunk, |mut b, (s, t)| {
                b.push_bind(s.as_str()).push_bind(t.as_str());
            });
            qb.build().execute(&mut **tx).await?;
        }
        Ok(())
    }
}

async fn write_rejected(
    tx: &mut Transaction<'static, Sqlite>,
    rejected: &[RejectedItem],
    received_at: i64,
) -> Result<(), StoreError> {
    for chunk in rejected.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO rejected (received_at, source, position, event_id, reason, field, message, raw) ",
        );
        qb.push_values(chunk, |mut b, item| {
            let r = &item.rejection;
            b.push_bind(received_at)
                .push_bind(item.source_label.as_str())
                .push_bind(item.position.to_string())
                .push_bind(item.shown_event_id())
                .push_bind(r.reason.as_str())
                .push_bind(r.field.as_deref())
                // Every problem of the event, the first one's fields in their columns.
                .push_bind(r.full_message().into_owned())
                .push_bind(item.raw.as_str());
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes the ledger rows the batch touched (absolute values: the write lock is held),
/// deleting those that became empty, and every `as_of`.
async fn write_aggregates(
    tx: &mut Transaction<'static, Sqlite>,
    plan: &Plan,
    ledger: &Ledger,
    dirty: Vec<Effect>,
) -> Result<(), StoreError> {
    write_rows(tx, plan, ledger, &Keys::of(dirty)).await
}

/// Writes the ledger rows of `keys`, deleting those that are empty, and every `as_of`.
async fn write_rows(
    tx: &mut Transaction<'static, Sqlite>,
    plan: &Plan,
    ledger: &Ledger,
    keys: &Keys,
) -> Result<(), StoreError> {
    for agg in Aggregate::ALL {
        let (live, empty): (Vec<TableRow<'_>>, Vec<TableRow<'_>>) = agg
            .rows(plan, keys, ledger)
            .into_iter()
            .partition(|r| r.live);
        upsert(tx, agg.table(), &live).await?;
        delete(tx, agg.table(), &empty).await?;
    }
    Ok(())
}

/// Writes `rows` whole, over the rows of their keys.
async fn upsert(
    tx: &mut Transaction<'static, Sqlite>,
    table: &Table,
    rows: &[TableRow<'_>],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "INSERT INTO {} ({}) ",
            table.name,
            table.column_list()
        ));
        qb.push_values(chunk, |mut b, row| {
            for v in &row.values {
                push_value(&mut b, v);
            }
        });
        qb.push(format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            table.key_list(),
            table.update_set(Dialect::Sqlite)
        ));
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Deletes the rows of the keys of `rows`.
async fn delete(
    tx: &mut Transaction<'static, Sqlite>,
    table: &Table,
    rows: &[TableRow<'_>],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "DELETE FROM {} WHERE ({}) IN (",
            table.name,
            table.key_list()
        ));
        qb.push_values(chunk, |mut b, row| {
            for v in row.key(table) {
                push_value(&mut b, v);
            }
        });
        qb.push(")");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Binds a value as SQLite keeps it (a sum as decimal text).
fn push_value<'a>(b: &mut Separated<'_, 'a, Sqlite, &'static str>, v: &'a Value<'_>) {
    match v {
        Value::Text(t) => b.push_bind(t.as_deref()),
        Value::Int4(n) => b.push_bind(*n),
        Value::Int8(n) => b.push_bind(*n),
        Value::Sum(a) => b.push_bind(a.map(|a| a.to_string())),
    };
}

/// The whole ledger, as the tables hold it.
async fn load_ledger(conn: &mut sqlx::SqliteConnection, plan: &Plan) -> Result<Ledger, StoreError> {
    let ids = Ids::new(plan);
    let mut ledger = Ledger::default();
    for agg in Aggregate::ALL {
        for r in sqlx::query(&agg.select_all(Dialect::Sqlite))
            .fetch_all(&mut *conn)
            .await?
        {
            agg.read(&ids, plan, &r, &mut ledger)?;
        }
    }
    Ok(ledger)
}

/// Compares the store's measure fingerprints with the plan's, under the write lock (two
/// processes opening a fresh store agree on one plan); a fresh store adopts the plan's.
async fn check_plan(pool: &SqlitePool, prints: &PlanPrints) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE meta SET version = version WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    match fingerprints::compare::<Sqlite>(&mut tx, prints).await? {
        Verdict::Drift(message) => return Err(StoreError::PlanChanged(message)),
        Verdict::Adopt => {
            for mut q in fingerprints::inserts::<Sqlite>(prints) {
                q.build().execute(&mut *tx).await?;
            }
        }
        Verdict::Same => {}
    }
    tx.commit().await?;
    Ok(())
}
