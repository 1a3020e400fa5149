//! The SQLite store against the pure engine: whatever the batching, the store's ledger
//! equals the engine's, survives a reopen, and keeps rejected events masked. The cases
//! both stores share are in `common::stores`; this file runs them on a SQLite file and
//! adds what is SQLite's own (the in-memory ledger of a batch that stops half-way).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mieruka_aggregator::{Day, Plan, SqliteStore};
use mieruka_ingest::Timestamp;
use proptest::prelude::*;
use sqlx::migrate::Migrator;
use sqlx::{Connection, SqliteConnection, SqlitePool};

use common::stores;
use common::{engine_of, items, old_migrations, plan, poll_then_drop, raw, rt};

/// A fresh SQLite file in a temporary folder (removed with it).
fn fresh_db(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(name);
    (dir, db)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_store_folds_like_the_engine_whatever_the_batching(
        ids in proptest::collection::vec(0u32..60, 1..80),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let (_dir, db) = fresh_db("s.db");
        stores::folds_like_the_engine::<SqliteStore>(&db, &ids, &cuts)?;
    }

    #[test]
    fn a_replay_equals_the_live_aggregates_and_rebuilds_them_under_a_changed_plan(
        ids in proptest::collection::vec(0u32..60, 1..80),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let (_dir, db) = fresh_db("p.db");
        stores::replay_equals_live_and_rebuilds_a_changed_plan::<SqliteStore>(&db, &ids, &cuts)?;
    }

    #[test]
    fn after_a_close_late_events_never_change_the_final_figures_and_show_as_adjustments(
        early in proptest::collection::vec(0u32..60, 1..60),
        late in proptest::collection::vec(0u32..60, 1..40),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let (_dir, db) = fresh_db("c.db");
        stores::late_events_never_change_a_closed_years_final_figures::<SqliteStore>(
            &db, &early, &late, &cuts,
        )?;
    }
}

/// Distinct values live in the store during a replay and are compared there: one
/// replaced by another (the set keeps its size, so no figure moves) is still found, one
/// deleted moves the measure; `--apply` copies the replayed values back in.
#[test]
fn a_tampered_distinct_value_is_found_by_a_replay_and_fixed_by_apply() {
    for (shown, sql) in [
        (
            "aggregate rows",
            "UPDATE distinct_values SET value = value || '-x' WHERE measure = 'telework_staff' \
             AND (fiscal_year, value) = (SELECT fiscal_year, value FROM distinct_values \
             WHERE measure = 'telework_staff' ORDER BY fiscal_year, value LIMIT 1)",
        ),
        (
            "measure telework_staff",
            "DELETE FROM distinct_values WHERE measure = 'telework_staff' \
             AND (fiscal_year, value) = (SELECT fiscal_year, value FROM distinct_values \
             WHERE measure = 'telework_staff' ORDER BY fiscal_year, value LIMIT 1)",
        ),
    ] {
        let (_dir, db) = fresh_db("d.db");
        let url = format!("sqlite://{}", db.display());
        stores::a_tampered_aggregate_row_is_found_and_fixed::<SqliteStore>(
            &db,
            shown,
            async move {
                let mut conn = SqliteConnection::connect(&url).await.unwrap();
                let changed = sqlx::query(sql).execute(&mut conn).await.unwrap();
                assert_eq!(changed.rows_affected(), 1);
                conn.close().await.unwrap();
            },
        );
    }
}

#[test]
fn a_tampered_aggregate_row_is_found_by_a_replay_and_fixed_by_apply() {
    let (_dir, db) = fresh_db("t.db");
    let url = format!("sqlite://{}", db.display());
    stores::a_tampered_aggregate_row_is_found_and_fixed::<SqliteStore>(
        &db,
        "measure certificates_all",
        async move {
            let mut conn = SqliteConnection::connect(&url).await.unwrap();
            let changed = sqlx::query(
                "UPDATE flows SET amount = CAST(CAST(amount AS INTEGER) + 7 AS TEXT) \
             WHERE measure = 'certificates_all' \
             AND day = (SELECT min(day) FROM flows WHERE measure = 'certificates_all')",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            assert_eq!(changed.rows_affected(), 1);
            conn.close().await.unwrap();
        },
    );
}

#[test]
fn explain_reads_every_page_of_the_log() {
    let (_dir, db) = fresh_db("x.db");
    stores::explain_reads_every_page_of_the_log::<SqliteStore>(&db);
}

#[test]
fn explain_takes_the_figures_apart() {
    let (_dir, db) = fresh_db("x.db");
    stores::explain_takes_the_figures_apart::<SqliteStore>(&db);
}

#[test]
fn every_problem_of_a_rejected_event_is_kept() {
    let (_dir, db) = fresh_db("p.db");
    stores::every_problem_of_a_rejected_event_is_kept::<SqliteStore>(&db);
}

#[test]
fn rejected_events_are_kept_with_their_reason_and_masked_raw_text() {
    let (_dir, db) = fresh_db("r.db");
    stores::rejected_events_are_kept_with_their_reason_and_masked_raw_text::<SqliteStore>(&db);
}

#[test]
fn rejected_events_are_filtered_and_summed_up() {
    let (_dir, db) = fresh_db("r.db");
    stores::rejected_events_are_filtered_and_summed_up::<SqliteStore>(&db);
}

#[test]
fn two_stores_on_one_file_fold_on_top_of_each_other() {
    let (_dir, db) = fresh_db("two.db");
    stores::two_stores_on_one_database_fold_on_top_of_each_other::<SqliteStore>(&db);
}

#[test]
fn an_event_logged_by_an_earlier_batch_is_a_duplicate() {
    let (_dir, db) = fresh_db("dup.db");
    stores::an_event_logged_by_an_earlier_batch_is_a_duplicate::<SqliteStore>(&db);
}

#[test]
fn duplicates_are_counted_per_measure_and_day() {
    let (_dir, db) = fresh_db("dups.db");
    stores::duplicates_are_counted_per_measure_and_day::<SqliteStore>(&db);
}

#[test]
fn a_void_re_sent_after_its_target_arrived_as_a_snapshot_is_a_duplicate() {
    let (_dir, db) = fresh_db("void.db");
    stores::a_void_re_sent_after_its_target_arrived_as_a_snapshot_is_a_duplicate::<SqliteStore>(
        &db,
    );
}

async fn fresh_ledger(db: &Path, plan: &Arc<Plan>) -> mieruka_aggregator::Ledger {
    stores::fresh_ledger::<SqliteStore>(db, plan).await
}

fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

#[test]
fn sums_past_i64_max_are_exact_in_the_store_and_after_a_reopen() {
    let (_dir, db) = fresh_db("wide.db");
    rt().block_on(async {
        stores::fold_the_wide_history::<SqliteStore>(&db).await;

        // Kept as exact decimal text, never as a lossy REAL.
        let pool = SqlitePool::connect(&sqlite_url(&db)).await.unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT typeof(amount), amount FROM flows ORDER BY day")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            rows[0],
            ("text".to_owned(), "18000000000000000000".to_owned())
        );
        pool.close().await;

        stores::the_wide_history_survives_a_reopen::<SqliteStore>(&db).await;
    });
}

#[test]
fn a_database_of_the_old_schema_migrates_and_keeps_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
    let (apr_1, may_1) = (
        Day::of(at("2026-04-01T00:00:00+09:00")),
        Day::of(at("2026-05-01T00:00:00+09:00")),
    );
    let (max, min) = (i64::MAX, i64::MIN);
    rt().block_on(async {
        // The schema as it was (0001 alone), holding 64-bit integers at both ends of
        // their range, in every column that is summed.
        let old = old_migrations(dir.path(), "sqlite", &["0001_init.sql"]);
        let pool = SqlitePool::connect(&format!("{}?mode=rwc", sqlite_url(&db)))
            .await
            .unwrap();
        Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO flows (measure, day, amount) VALUES ('shipped', ?, ?), ('shipped', ?, ?)",
        )
        .bind(apr_1.0)
        .bind(min)
        .bind(may_1.0)
        .bind(max)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO level_days VALUES ('stock', ?, ?, ?, 'k0', ?, ?, 'k0', ?), \
             ('stock', ?, -12, NULL, NULL, NULL, NULL, NULL, NULL)",
        )
        .bind(apr_1.0)
        .bind(min)
        .bind(at("2026-04-01T00:00:00+09:00").micros())
        .bind(max)
        .bind(min)
        .bind(max)
        .bind(may_1.0)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        stores::the_old_numbers_are_kept_and_grow_past_64_bits::<SqliteStore>(&db).await;
    });
}

#[test]
fn a_batch_that_panics_before_its_commit_leaves_the_ledger_as_the_database_has_it() {
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("panic.db");
    let raws = |ids: &[u32]| ids.iter().map(|i| raw(*i)).collect::<Vec<_>>();
    rt().block_on(async {
        let store = Arc::new(SqliteStore::open(&db, plan.clone()).await.unwrap());
        store
            .submit_batch(items(&plan, &[0, 1, 2, 3, 4]))
            .await
            .unwrap();
        // The batch is folded into the live ledger and written, but not committed, when
        // it panics.
        let (s, batch) = (store.clone(), items(&plan, &[10, 11, 12, 13]));
        let joined = tokio::spawn(async move {
            s.submit_batch_hooked(batch, async {
                panic!("a bug between the fold and the commit")
            })
            .await
        })
        .await;
        assert!(joined.is_err_and(|e| e.is_panic()));
        let fresh = fresh_ledger(&db, &plan).await;
        assert_eq!(&fresh, engine_of(&plan, &raws(&[0, 1, 2, 3, 4])).ledger());
        assert_eq!(store.ledger().await.unwrap(), fresh);
        // The store goes on from what is committed.
        store
            .submit_batch(items(&plan, &[10, 11, 12, 13]))
            .await
            .unwrap();
        assert_eq!(
            &store.ledger().await.unwrap(),
            engine_of(&plan, &raws(&[0, 1, 2, 3, 4, 10, 11, 12, 13])).ledger()
        );
    });
}

#[test]
fn a_batch_dropped_before_its_commit_leaves_the_ledger_as_the_database_has_it() {
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dropped.db");
    let raws = |ids: &[u32]| ids.iter().map(|i| raw(*i)).collect::<Vec<_>>();
    rt().block_on(async {
        let store = SqliteStore::open(&db, plan.clone()).await.unwrap();
        store
            .submit_batch(items(&plan, &[0, 1, 2, 3, 4]))
            .await
            .unwrap();
        // The batch is folded into the live ledger and written, but not committed, when
        // its future is dropped (a client that went away).
        let (reached, wait) = tokio::sync::oneshot::channel();
        let hold = async {
            let _ = reached.send(());
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = store.submit_batch_hooked(items(&plan, &[10, 11, 12, 13]), hold) => {
                panic!("the batch cannot commit past its hook")
            }
            _ = wait => {}
        }
        let fresh = fresh_ledger(&db, &plan).await;
        assert_eq!(&fresh, engine_of(&plan, &raws(&[0, 1, 2, 3, 4])).ledger());
        assert_eq!(store.ledger().await.unwrap(), fresh);
        store
            .submit_batch(items(&plan, &[10, 11, 12, 13]))
            .await
            .unwrap();
        assert_eq!(
            &store.ledger().await.unwrap(),
            engine_of(&plan, &raws(&[0, 1, 2, 3, 4, 10, 11, 12, 13])).ledger()
        );
    });
}

#[test]
fn a_batch_dropped_at_any_await_leaves_the_ledger_as_the_database_has_it() {
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("drop.db");
    let all: Vec<String> = (0..40).map(raw).collect();
    rt().block_on(async {
        let store = SqliteStore::open(&db, plan.clone()).await.unwrap();
        store
            .submit_batch(items(&plan, &(0..20).collect::<Vec<_>>()))
            .await
            .unwrap();
        let batch: Vec<u32> = (20..40).collect();
        // Drop the batch's future after 1, 2, 3, … polls, until one finishes: every
        // await of a batch is a place where a client can go away. (Where each poll
        // stops depends on how fast the database answers: a sweep, not a proof.)
        let mut polls = 1;
        loop {
            let done = poll_then_drop(store.submit_batch(items(&plan, &batch)), polls).await;
            // A dropped transaction rolls back (or its commit lands) on its connection:
            // take and release the write lock, so the database has settled.
            let mut conn = SqliteConnection::connect(&sqlite_url(&db)).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            let fresh = fresh_ledger(&db, &plan).await;
            assert_eq!(
                store.ledger().await.unwrap(),
                fresh,
                "dropped after {polls} polls"
            );
            if done.is_some() {
                break;
            }
            polls += 1;
        }
        assert!(polls > 5, "the batch finished after {polls} polls");
        assert_eq!(
            &store.ledger().await.unwrap(),
            engine_of(&plan, &all).ledger()
        );
    });
}

/// A batch that empties an aggregate row (a void retracting the only event of a day)
/// deletes the row: the tables hold exactly the ledger's entries, never a zero.
#[test]
fn rows_a_batch_empties_are_deleted_not_kept_as_zeros() {
    let plan = plan();
    let (_dir, db) = fresh_db("empty.db");
    rt().block_on(async {
        let store = SqliteStore::open(&db, plan.clone()).await.unwrap();
        // A certificate, then its void in a batch of its own: the flow row goes.
        let void = r#"{"event_id":"v0","source":"konbini","type":"event.voided","occurred_at":"2026-05-02T09:00:00+09:00","data":{},"voids":"e0"}"#;
        store.submit_batch(items(&plan, &[0])).await.unwrap();
        assert!(!store.ledger().await.unwrap().flows.is_empty());
        let st = store
            .submit_batch(common::raw_items(&plan, &[void.to_owned()]))
            .await
            .unwrap();
        assert_eq!(st, [mieruka_ingest::Status::Accepted]);
        assert!(store.ledger().await.unwrap().flows.is_empty());
        let pool = SqlitePool::connect(&sqlite_url(&db)).await.unwrap();
        let flows: i64 = sqlx::query_scalar("SELECT count(*) FROM flows")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(flows, 0);
        pool.close().await;
        // Then the rest one by one, so each void's retraction is a batch of its own.
        for id in 1..60 {
            store.submit_batch(items(&plan, &[id])).await.unwrap();
        }
        let ledger = store.ledger().await.unwrap();
        store.close().await;
        let pool = SqlitePool::connect(&sqlite_url(&db)).await.unwrap();
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let zeros = count(
            "SELECT (SELECT count(*) FROM flows WHERE amount = '0') \
             + (SELECT count(*) FROM distinct_values WHERE n <= 0) \
             + (SELECT count(*) FROM stages WHERE n <= 0) \
             + (SELECT count(*) FROM level_days \
                WHERE delta = '0' AND snap_at IS NULL AND opening_id IS NULL)",
        )
        .await;
        assert_eq!(zeros, 0);
        let flows = count("SELECT count(*) FROM flows").await;
        assert_eq!(flows, ledger.flows.len() as i64);
        let levels = count("SELECT count(*) FROM level_days").await;
        assert_eq!(levels, ledger.levels.len() as i64);
        pool.close().await;
    });
}

#[test]
fn freshness_is_kept_for_declared_sources_only() {
    let (_dir, db) = fresh_db("fresh.db");
    stores::freshness_is_kept_for_declared_sources_only::<SqliteStore>(&db);
}

/// A process still holding the old plan after a replay rebuilt the file under a new one
/// (a `standalone` left running) never commits: its batch is refused in its write
/// transaction, naming the measure that changed, and nothing of it is logged.
#[test]
fn a_writer_of_the_old_plan_is_fenced_after_a_replay_under_a_new_one() {
    let (_dir, db) = fresh_db("f.db");
    rt().block_on(async {
        let plan = plan();
        let old = SqliteStore::open(&db, plan.clone()).await.unwrap();
        old.submit_batch(items(&plan, &[0, 1, 2])).await.unwrap();
        let replayer = SqliteStore::open_with(
            &db,
            stores::edited_plan(),
            mieruka_aggregator::store::PlanCheck::Ignore,
        )
        .await
        .unwrap();
        let now = Timestamp::from_unix_seconds(1_900_000_000);
        assert!(replayer.replay(true, now).await.unwrap().applied);
        replayer.close().await;
        let logged = old.logged_events().await.unwrap();
        let err = old.submit_batch(items(&plan, &[3, 4, 5])).await.unwrap_err();
        assert!(
            matches!(&err, mieruka_aggregator::StoreError::PlanChanged(m) if m.contains("certificates_konbini")),
            "{err}"
        );
        assert_eq!(old.logged_events().await.unwrap(), logged);
        old.close().await;
    });
}

#[test]
fn a_close_among_running_batches_falls_between_them() {
    let (_dir, db) = fresh_db("r.db");
    stores::a_close_among_running_batches_falls_between_them::<SqliteStore>(&db);
}
