//! The SQLite store against the pure engine: whatever the batching, the store's ledger
//! equals the engine's, survives a reopen, and keeps rejected events masked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use mieruka_aggregator::ledger::{LevelDay, Snapshot};
use mieruka_aggregator::{Day, Engine, Ledger, Plan, SqliteStore};
use mieruka_ingest::{item, Position, Status, Timestamp};
use proptest::prelude::*;
use sqlx::migrate::Migrator;
use sqlx::{Connection, SqliteConnection, SqlitePool};

use common::{
    assert_wide_figures, engine_of, items, old_migrations, plan, poll_then_drop, raw, raw_items,
    rt, wide_history, wide_plan, wide_raw, BIG,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_store_folds_like_the_engine_whatever_the_batching(
        ids in proptest::collection::vec(0u32..60, 1..80),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let plan = plan();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut engine = Engine::new(&plan);
        let mut engine_statuses = Vec::new();
        for id in &ids {
            let ev = mieruka_ingest::decode(&plan.schema, raw(*id).as_bytes()).unwrap();
            engine_statuses.push(engine.apply(ev));
        }
        let (ledger, statuses, reopened) = rt().block_on(async {
            let store = SqliteStore::open(&db, plan.clone()).await.unwrap();
            let mut statuses = Vec::new();
            let mut rest: &[u32] = &ids;
            let mut c = 0;
            while !rest.is_empty() {
                let n = cuts[c % cuts.len()].min(rest.len());
                c += 1;
                statuses.extend(store.submit_batch(items(&plan, &rest[..n])).await.unwrap());
                rest = &rest[n..];
            }
            let ledger = store.ledger().await.unwrap();
            store.close().await;
            let store = SqliteStore::open(&db, plan.clone()).await.unwrap();
            let reopened = store.ledger().await.unwrap();
            store.close().await;
            (ledger, statuses, reopened)
        });
        prop_assert_eq!(&statuses, &engine_statuses);
        prop_assert_eq!(&ledger, engine.ledger());
        prop_assert_eq!(&reopened, engine.ledger());
    }
}

#[test]
fn rejected_events_are_kept_with_their_reason_and_masked_raw_text() {
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = SqliteStore::open(&dir.path().join("r.db"), plan.clone()).await.unwrap();
        let bad = r#"{"event_id":"k1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","memo":"my number 123456789018"}}"#;
        let it = item(&plan.schema, bad.as_bytes(), Position::Line { file: "f.ndjson".into(), line: 7 }, "konbini");
        let st = store.submit_batch(vec![it]).await.unwrap();
        assert!(matches!(&st[0], Status::Rejected(r) if r.reason.as_str() == "personal_number"));
        let rows = store.rejected(10).await.unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.reason.as_str(), r.field.as_deref(), r.position.as_str()), ("personal_number", Some("data.memo"), "f.ndjson:7"));
        assert!(r.raw.contains("************") && !r.raw.contains("123456789018"), "{}", r.raw);
        assert_eq!(store.logged_events().await.unwrap(), 0);
        store.close().await;
    });
}

#[test]
fn two_stores_on_one_file_fold_on_top_of_each_other() {
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("two.db");
    rt().block_on(async {
        let a = SqliteStore::open(&db, plan.clone()).await.unwrap();
        let b = SqliteStore::open(&db, plan.clone()).await.unwrap();
        a.submit_batch(items(&plan, &[0, 1])).await.unwrap();
        b.submit_batch(items(&plan, &[9 * 3, 10])).await.unwrap();
        a.submit_batch(items(&plan, &[18, 19])).await.unwrap();
        let mut engine = Engine::new(&plan);
        for id in [0, 1, 27, 10, 18, 19] {
            engine.apply(mieruka_ingest::decode(&plan.schema, raw(id).as_bytes()).unwrap());
        }
        assert_eq!(&a.ledger().await.unwrap(), engine.ledger());
        assert_eq!(&b.ledger().await.unwrap(), engine.ledger());
    });
}

async fn fresh_ledger(db: &std::path::Path, plan: &Arc<Plan>) -> Ledger {
    let store = SqliteStore::open(db, plan.clone()).await.unwrap();
    let ledger = store.ledger().await.unwrap();
    store.close().await;
    ledger
}

fn sqlite_url(db: &std::path::Path) -> String {
    format!("sqlite://{}", db.display())
}

#[test]
fn sums_past_i64_max_are_exact_in_the_store_and_after_a_reopen() {
    let plan = wide_plan();
    let history = wide_history();
    let engine = engine_of(&plan, &history);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wide.db");
    rt().block_on(async {
        let store = SqliteStore::open(&db, plan.clone()).await.unwrap();
        // Batches of three: the late snapshot and the void find their events in the log.
        for chunk in history.chunks(3) {
            let statuses = store.submit_batch(raw_items(&plan, chunk)).await.unwrap();
            assert!(
                statuses.iter().all(|s| *s == Status::Accepted),
                "{statuses:?}"
            );
        }
        let ledger = store.ledger().await.unwrap();
        assert_eq!(&ledger, engine.ledger());
        assert_wide_figures(&plan, &ledger);
        store.close().await;

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

        let reopened = fresh_ledger(&db, &plan).await;
        assert_eq!(&reopened, engine.ledger());
        assert_wide_figures(&plan, &reopened);
    });
}

#[test]
fn a_database_of_the_old_schema_migrates_and_keeps_its_numbers() {
    let plan = wide_plan();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let (shipped, stock) = (
        plan.measure("shipped").unwrap(),
        plan.measure("stock").unwrap(),
    );
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

        let store = SqliteStore::open(&db, plan.clone()).await.unwrap();
        let mut expected = Ledger::default();
        expected.flows.insert((shipped, apr_1), min.into());
        expected.flows.insert((shipped, may_1), max.into());
        expected.levels.insert(
            (stock, apr_1),
            LevelDay {
                delta: min.into(),
                snapshot: Some(Snapshot {
                    at: at("2026-04-01T00:00:00+09:00"),
                    id: "k0".into(),
                    value: max.into(),
                    after: min.into(),
                }),
                opening: Some(("k0".into(), max.into())),
            },
        );
        expected.levels.insert(
            (stock, may_1),
            LevelDay {
                delta: -12,
                ..LevelDay::default()
            },
        );
        assert_eq!(store.ledger().await.unwrap(), expected);

        // The old i64::MAX grows past 64 bits, exactly, and stays so through a reopen.
        let more = [wide_raw(
            "s9",
            "shipped",
            "2026-05-01T10:00:00+09:00",
            &BIG.to_string(),
        )];
        store.submit_batch(raw_items(&plan, &more)).await.unwrap();
        store.close().await;
        let reopened = fresh_ledger(&db, &plan).await;
        assert_eq!(
            reopened.flows.get(&(shipped, may_1)),
            Some(&(i128::from(max) + i128::from(BIG)))
        );
        assert_eq!(reopened.levels, expected.levels);
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
