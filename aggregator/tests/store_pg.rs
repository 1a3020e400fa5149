//! The PostgreSQL store against the pure engine: whatever the batching, and whatever the
//! interleaving of two replicas on one database, the tables hold the engine's ledger; a
//! consumer that lost its partition is fenced off without writing anything; rejected
//! events keep their Kafka offsets and masked raw text.
//!
//! Each test makes its own database on `DATABASE_URL` (default: the local PostgreSQL of
//! docs/architecture.md) and drops it at the end, even when the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use mieruka_aggregator::store::{
    KafkaOffset, PgError, PgStore, PlanCheck, SourcePosition, NOTIFY_CHANNEL,
};
use mieruka_aggregator::{Day, Plan};
use mieruka_ingest::{item, Item, Position, Status, Timestamp};
use mieruka_testkit::pg::TestDb;
use proptest::prelude::*;

use common::stores::{self, engine_over};
use common::{items, old_migrations, plan, poll_then_drop, raw, rt, void_target};
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};

/// A fresh database on the machine's PostgreSQL (`DATABASE_URL`), dropped with its
/// connections when the value goes out of scope, even when the test fails.
async fn fresh_db() -> TestDb {
    TestDb::create("mieruka_test").await.unwrap()
}

/// The id a Kafka key would carry: a void is keyed by its target.
fn key_of(id: u32) -> u32 {
    if id % 9 == 8 {
        void_target(id)
    } else {
        id
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn the_pg_store_folds_like_the_engine_whatever_the_batching(
        ids in proptest::collection::vec(0u32..60, 1..80),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let db = TestDb::create_blocking("mieruka_test").unwrap();
        stores::folds_like_the_engine::<PgStore>(db.url(), &ids, &cuts)?;
    }

    /// The same with a generation of the log sealed after every batch: a key re-sent or
    /// voided is found in whichever generation it was logged, by the store that logged
    /// it and by one opened later (whose filter of the sealed generations is read back).
    #[test]
    fn the_pg_store_folds_like_the_engine_across_generations_of_its_log(
        ids in proptest::collection::vec(0u32..60, 1..80),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let db = TestDb::create_blocking("mieruka_test").unwrap();
        stores::folds_like_the_engine_with::<PgStore>(db.url(), &ids, &cuts, |s| {
            s.seal_generations_at(1)
        })?;
        let batches = rt().block_on(generations(db.url())).len();
        prop_assert!(batches >= ids.len().min(2) - 1, "{batches} generations");
    }

    #[test]
    fn a_replay_equals_the_live_aggregates_and_rebuilds_them_under_a_changed_plan(
        ids in proptest::collection::vec(0u32..60, 1..80),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let db = TestDb::create_blocking("mieruka_test").unwrap();
        stores::replay_equals_live_and_rebuilds_a_changed_plan::<PgStore>(db.url(), &ids, &cuts)?;
    }

    #[test]
    fn after_a_close_late_events_never_change_the_final_figures_and_show_as_adjustments(
        early in proptest::collection::vec(0u32..60, 1..60),
        late in proptest::collection::vec(0u32..60, 1..40),
        cuts in proptest::collection::vec(1usize..20, 1..10),
    ) {
        let db = TestDb::create_blocking("mieruka_test").unwrap();
        stores::late_events_never_change_a_closed_years_final_figures::<PgStore>(
            db.url(), &early, &late, &cuts,
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
        let db = TestDb::create_blocking("mieruka_test").unwrap();
        let url = db.url().to_owned();
        stores::a_tampered_aggregate_row_is_found_and_fixed::<PgStore>(
            db.url(),
            shown,
            async move {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                let changed = sqlx::query(sql).execute(&mut conn).await.unwrap();
                assert_eq!(changed.rows_affected(), 1);
                conn.close().await.unwrap();
            },
        );
    }
}

#[test]
fn a_tampered_aggregate_row_is_found_by_a_replay_and_fixed_by_apply() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    let url = db.url().to_owned();
    stores::a_tampered_aggregate_row_is_found_and_fixed::<PgStore>(
        db.url(),
        "measure certificates_all",
        async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            let changed = sqlx::query(
                "UPDATE flows SET amount = amount + 7 WHERE measure = 'certificates_all' \
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

/// An aggregator still running the old plan after a replay rebuilt the store under a
/// new one never commits: its batch (with its source positions) is refused in its
/// transaction, naming the measure that changed, and nothing of it is written.
#[test]
fn a_writer_of_the_old_plan_is_fenced_after_a_replay_under_a_new_one() {
    rt().block_on(async {
        let db = fresh_db().await;
        let plan = plan();
        let old = PgStore::open(db.url(), plan.clone()).await.unwrap();
        old.submit_batch(items(&plan, &[0, 1, 2])).await.unwrap();
        let replayer = PgStore::open_with(db.url(), stores::edited_plan(), PlanCheck::Ignore)
            .await
            .unwrap();
        assert!(
            replayer
                .replay(true, Timestamp::from_unix_seconds(1_900_000_000))
                .await
                .unwrap()
                .applied
        );
        replayer.close().await;
        let logged = old.logged_events().await.unwrap();
        let position = SourcePosition {
            topic: "events".into(),
            partition: 0,
            expected: None,
            next: 10,
        };
        let err = old
            .submit_with_positions(&items(&plan, &[3, 4, 5]), &[position])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PgError::PlanChanged(m) if m.contains("certificates_konbini")),
            "{err}"
        );
        assert_eq!(old.logged_events().await.unwrap(), logged);
        assert!(old.positions("events").await.unwrap().is_empty());
        old.close().await;
    });
}

#[test]
fn explain_reads_every_page_of_the_log() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::explain_reads_every_page_of_the_log::<PgStore>(db.url());
}

#[test]
fn explain_takes_the_figures_apart() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::explain_takes_the_figures_apart::<PgStore>(db.url());
}

#[test]
fn every_problem_of_a_rejected_event_is_kept() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::every_problem_of_a_rejected_event_is_kept::<PgStore>(db.url());
}

#[test]
fn rejected_events_are_kept_with_their_reason_and_masked_raw_text() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::rejected_events_are_kept_with_their_reason_and_masked_raw_text::<PgStore>(db.url());
}

#[test]
fn rejected_events_are_filtered_and_summed_up() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::rejected_events_are_filtered_and_summed_up::<PgStore>(db.url());
}

#[test]
fn two_stores_on_one_database_fold_on_top_of_each_other() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::two_stores_on_one_database_fold_on_top_of_each_other::<PgStore>(db.url());
}

/// Submits `ids` in batches of `size` as the consumer of `topic`/`partition`, committing
/// offsets (one per event) with each batch.
async fn consume(
    store: &PgStore,
    plan: &Plan,
    topic: &str,
    partition: i32,
    ids: &[u32],
    size: usize,
) {
    let mut expected = None;
    let mut offset = 0i64;
    for chunk in ids.chunks(size) {
        let batch: Vec<Item> = chunk
            .iter()
            .map(|id| {
                let it = item(
                    &plan.schema,
                    raw(*id).as_bytes(),
                    Position::Offset {
                        topic: topic.to_owned(),
                        partition,
                        offset,
                    },
                    "test",
                );
                offset += 1;
                it
            })
            .collect();
        let pos = SourcePosition {
            topic: topic.to_owned(),
            partition,
            expected,
            next: offset,
        };
        store
            .submit_with_positions(&batch, std::slice::from_ref(&pos))
            .await
            .unwrap();
        expected = Some(offset);
    }
}

#[test]
fn two_replicas_on_one_database_merge_into_the_engines_ledger() {
    let plan = plan();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Every id twice (duplicates), spread so both replicas hit the same konbini days and
    // the same card-holder level days (deltas on one side, snapshots on the other).
    let all: Vec<u32> = (0..60)
        .chain((0..60).rev())
        .chain((0..60).step_by(7))
        .collect();
    for round in 0..4u32 {
        // Kafka's keying: one owner per key, a void with its target.
        let owner = |id: u32| (key_of(id) / (round + 1)) % 2;
        let a_ids: Vec<u32> = all.iter().copied().filter(|id| owner(*id) == 0).collect();
        let b_ids: Vec<u32> = all.iter().copied().filter(|id| owner(*id) == 1).collect();
        let size = [1usize, 3, 7, 16][round as usize];
        let engine = engine_over(&plan, all.iter().copied());
        // The engine is order-independent: the replicas' interleaving cannot matter.
        assert_eq!(
            engine_over(&plan, a_ids.iter().chain(&b_ids).copied()).ledger(),
            engine.ledger()
        );
        let (ledger, pa, pb) = runtime.block_on(async {
            let db = fresh_db().await;
            let a = Arc::new(PgStore::open(db.url(), plan.clone()).await.unwrap());
            let b = Arc::new(PgStore::open(db.url(), plan.clone()).await.unwrap());
            let ta = {
                let (a, plan, ids) = (a.clone(), plan.clone(), a_ids.clone());
                tokio::spawn(async move { consume(&a, &plan, "events", 0, &ids, size).await })
            };
            let tb = {
                let (b, plan, ids) = (b.clone(), plan.clone(), b_ids.clone());
                tokio::spawn(async move { consume(&b, &plan, "events", 1, &ids, size).await })
            };
            let (ra, rb) = tokio::join!(ta, tb);
            ra.unwrap();
            rb.unwrap();
            let ledger = a.ledger().await.unwrap();
            assert_eq!(&b.ledger().await.unwrap(), &ledger);
            let pa = a.positions("events").await.unwrap();
            let pb = b.positions("other").await.unwrap();
            a.close().await;
            b.close().await;
            (ledger, pa, pb)
        });
        assert_eq!(&ledger, engine.ledger(), "round {round}");
        assert_eq!(
            pa,
            vec![(0, a_ids.len() as i64), (1, b_ids.len() as i64)],
            "round {round}"
        );
        assert!(pb.is_empty());
    }
}

#[test]
fn a_stale_offset_fences_the_whole_batch_off() {
    let plan = plan();
    rt().block_on(async {
        let db = fresh_db().await;
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let pos = |partition: i32, expected: Option<i64>, next: i64| SourcePosition {
            topic: "events".into(),
            partition,
            expected,
            next,
        };
        store
            .submit_with_positions(&items(&plan, &[0, 1, 2]), &[pos(0, None, 3), pos(1, None, 10)])
            .await
            .unwrap();
        assert_eq!(store.positions("events").await.unwrap(), vec![(0, 3), (1, 10)]);
        let ledger = store.ledger().await.unwrap();
        let logged = store.logged_events().await.unwrap();
        assert_eq!(logged, 3);

        // Stale offsets, a second "first" commit, and one good position beside a bad one:
        // each rolls the whole batch back.
        for (positions, bad) in [
            (vec![pos(0, Some(1), 5)], 0),
            (vec![pos(0, None, 5)], 0),
            (vec![pos(0, Some(3), 5), pos(1, Some(9), 12)], 1),
            (vec![pos(1, Some(10), 12), pos(2, Some(0), 1)], 2),
        ] {
            let err = store
                .submit_with_positions(&items(&plan, &[9, 10, 11, 13, 17]), &positions)
                .await
                .unwrap_err();
            match &err {
                PgError::Fenced { topic, partition } => {
                    assert_eq!((topic.as_str(), *partition), ("events", bad));
                }
                _ => panic!("expected fenced, got {err:?}"),
            }
            let sink_err: mieruka_ingest::SinkError = err.into();
            assert!(
                matches!(sink_err, mieruka_ingest::SinkError::Fatal(ref m) if m.contains("lost partition")),
                "{sink_err}"
            );
            assert_eq!(store.logged_events().await.unwrap(), logged);
            assert_eq!(store.positions("events").await.unwrap(), vec![(0, 3), (1, 10)]);
            assert_eq!(&store.ledger().await.unwrap(), &ledger);
        }

        // Two consumers that both believe they own partition 0: exactly one wins.
        let other = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let both = [pos(0, Some(3), 5)];
        let (b1, b2) = (items(&plan, &[9, 10]), items(&plan, &[9, 10]));
        let (r1, r2) = tokio::join!(
            store.submit_with_positions(&b1, &both),
            other.submit_with_positions(&b2, &both),
        );
        assert!(
            r1.is_ok() != r2.is_ok(),
            "exactly one may commit: {r1:?} / {r2:?}"
        );
        assert!(matches!(
            r1.err().or(r2.err()),
            Some(PgError::Fenced { partition: 0, .. })
        ));
        assert_eq!(store.positions("events").await.unwrap(), vec![(0, 5), (1, 10)]);
        assert_eq!(store.logged_events().await.unwrap(), logged + 2);
        assert_eq!(
            &store.ledger().await.unwrap(),
            engine_over(&plan, [0, 1, 2, 9, 10]).ledger()
        );
        // The rightful owner goes on from where it stands.
        store
            .submit_with_positions(&items(&plan, &[11]), &[pos(0, Some(5), 6)])
            .await
            .unwrap();
        assert_eq!(store.positions("events").await.unwrap(), vec![(0, 6), (1, 10)]);
        assert_eq!(store.positions("nothing").await.unwrap(), vec![]);
        other.close().await;
        store.close().await;
    });
}

#[test]
fn rejected_events_keep_their_kafka_offset_and_masked_raw_text() {
    let plan = plan();
    rt().block_on(async {
        let db = fresh_db().await;
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let at = |offset: i64| Position::Offset {
            topic: "events".into(),
            partition: 3,
            offset,
        };
        let personal = r#"{"event_id":"k1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","memo":"my number 123456789018"}}"#;
        let first = r#"{"event_id":"k2","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","count":1}}"#;
        let conflicting = first.replace(r#""count":1"#, r#""count":2"#);
        let batch = vec![
            item(&plan.schema, personal.as_bytes(), at(41), "konbini"),
            item(&plan.schema, first.as_bytes(), at(42), "konbini"),
            item(&plan.schema, conflicting.as_bytes(), at(43), "konbini"),
            item(&plan.schema, b"not json", Position::Line { file: "f.ndjson".into(), line: 7 }, "import"),
        ];
        let st = store.submit_batch(batch).await.unwrap();
        assert!(matches!(&st[0], Status::Rejected(r) if r.reason.as_str() == "personal_number"));
        assert_eq!(st[1], Status::Accepted);
        assert!(matches!(&st[2], Status::Rejected(r) if r.reason.as_str() == "conflicting_duplicate"));
        assert!(matches!(&st[3], Status::Rejected(r) if r.reason.as_str() == "not_json"));

        let rows = store.rejected_with_offsets(10).await.unwrap();
        assert_eq!(rows.len(), 3);
        // Newest first.
        let (r, off) = &rows[0];
        assert_eq!((r.reason.as_str(), r.position.as_str(), r.source.as_str()), ("not_json", "f.ndjson:7", "import"));
        assert_eq!(off, &None);
        let (r, off) = &rows[1];
        assert_eq!((r.reason.as_str(), r.event_id.as_deref()), ("conflicting_duplicate", Some("k2")));
        assert!(r.raw.contains(r#""count":2"#), "{}", r.raw);
        assert_eq!(off, &Some(KafkaOffset { topic: "events".into(), partition: 3, offset: 43 }));
        let (r, off) = &rows[2];
        assert_eq!(
            (r.reason.as_str(), r.field.as_deref(), r.position.as_str(), r.event_id.as_deref()),
            // The id passed the guard (the number is in `memo`): named.
            ("personal_number", Some("data.memo"), "events/3@41", Some("k1"))
        );
        assert!(r.raw.contains("************") && !r.raw.contains("123456789018"), "{}", r.raw);
        assert_eq!(off, &Some(KafkaOffset { topic: "events".into(), partition: 3, offset: 41 }));

        let plain = store.rejected(2).await.unwrap();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[1].reason, "conflicting_duplicate");
        assert_eq!(store.logged_events().await.unwrap(), 1);
        assert!(store.ping().await);
        store.close().await;
        assert!(!store.ping().await);
    });
}

#[test]
fn a_committed_batch_notifies_listeners_and_survives_a_reopen() {
    let plan = plan();
    rt().block_on(async {
        let db = fresh_db().await;
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let mut listener = sqlx::postgres::PgListener::connect(db.url()).await.unwrap();
        listener.listen(NOTIFY_CHANNEL).await.unwrap();
        let ids: Vec<u32> = (0..40).collect();
        store.submit_batch(items(&plan, &ids[..20])).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("a notification after the commit")
            .unwrap();
        assert_eq!(n.channel(), NOTIFY_CHANNEL);
        // Through the EventSink trait, as the standalone wiring uses it.
        mieruka_ingest::EventSink::submit(&store, items(&plan, &ids[20..]))
            .await
            .unwrap();
        let ledger = store.ledger().await.unwrap();
        assert_eq!(&ledger, engine_over(&plan, ids.iter().copied()).ledger());
        store.close().await;
        let reopened = PgStore::open(db.url(), plan.clone()).await.unwrap();
        assert_eq!(reopened.ledger().await.unwrap(), ledger);
        assert_eq!(
            reopened.with_ledger(|l| l.flows.len()).await.unwrap(),
            ledger.flows.len()
        );
        reopened.close().await;
        listener.unlisten_all().await.unwrap();
    });
}

/// A batch does not look its own keys up unless a batch before it met a logged key; the
/// log's primary key catches a re-sent event, and the batch runs again looking its keys
/// up: the re-send is a duplicate, a changed body a conflict, and the rest of the batch
/// counts as usual, in that batch and in the ones after it.
#[test]
fn an_event_logged_by_an_earlier_batch_is_caught_without_looking_every_key_up() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::an_event_logged_by_an_earlier_batch_is_a_duplicate::<PgStore>(db.url());
}

#[test]
fn duplicates_are_counted_per_measure_and_day() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::duplicates_are_counted_per_measure_and_day::<PgStore>(db.url());
}

/// Rows logged before migration 0003 hold the whole canonical body; rows logged since hold
/// the `data` object beside the envelope's columns. Both read back as the same event: a
/// void finds its original, a snapshot its day's deltas, a re-send its duplicate.
#[test]
fn log_rows_with_a_whole_body_and_rows_with_only_data_read_back_alike() {
    let plan = plan();
    rt().block_on(async {
        let db = fresh_db().await;
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let first: Vec<u32> = (0..10).collect();
        store.submit_batch(items(&plan, &first)).await.unwrap();
        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        let (data_rows,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM event_log WHERE body IS NULL AND data IS NOT NULL",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(data_rows, 10, "new rows keep only their data");
        // Ids 0..5 become rows as migration 0002 wrote them.
        for id in 0..5u32 {
            let ev = mieruka_ingest::decode(&plan.schema, raw(id).as_bytes()).unwrap();
            sqlx::query(
                "UPDATE event_log SET body = $1, data = NULL, voids = NULL WHERE event_id = $2",
            )
            .bind(ev.canonical_json(&plan.schema))
            .bind(format!("e{id}"))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();

        // 26 voids e2 (a card issued, an old row), 3 is re-sent (an old row), 13 is a
        // holders snapshot on the day of 3 (a surrender, an old row), 8 voids e56 (not
        // logged: pending), 7 is re-sent (a new row).
        let second = [26, 3, 13, 8, 7];
        let st = store.submit_batch(items(&plan, &second)).await.unwrap();
        let mut engine = engine_over(&plan, first.iter().copied());
        let expected: Vec<Status> = second
            .iter()
            .map(|id| {
                engine.apply(mieruka_ingest::decode(&plan.schema, raw(*id).as_bytes()).unwrap())
            })
            .collect();
        assert_eq!(st, expected);
        assert_eq!(st[1], Status::Duplicate);
        assert_eq!(st[4], Status::Duplicate);
        assert_eq!(store.ledger().await.unwrap(), *engine.ledger());
        store.close().await;
    });
}

#[test]
fn a_void_re_sent_after_its_target_arrived_as_a_snapshot_is_a_duplicate() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::a_void_re_sent_after_its_target_arrived_as_a_snapshot_is_a_duplicate::<PgStore>(
        db.url(),
    );
}

#[test]
fn sums_past_i64_max_are_exact_in_postgres_and_after_a_reopen() {
    rt().block_on(async {
        let db = fresh_db().await;
        stores::fold_the_wide_history::<PgStore>(db.url()).await;

        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        let (ty, amount): (String, String) = sqlx::query_as(
            "SELECT pg_typeof(amount)::text, amount::text FROM flows ORDER BY day LIMIT 1",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            (ty.as_str(), amount.as_str()),
            ("numeric", "18000000000000000000")
        );
        conn.close().await.unwrap();

        stores::the_wide_history_survives_a_reopen::<PgStore>(db.url()).await;
    });
}

#[test]
fn a_postgres_database_of_the_old_schema_migrates_and_keeps_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
    let (apr_1, may_1) = (
        Day::of(at("2026-04-01T00:00:00+09:00")),
        Day::of(at("2026-05-01T00:00:00+09:00")),
    );
    let (max, min) = (i64::MAX, i64::MIN);
    rt().block_on(async {
        let db = fresh_db().await;
        // The schema as it was (0001 to 0003), holding BIGINTs at both ends of their
        // range in every column that is summed.
        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        migrate_up_to(dir.path(), &mut conn, 3).await;
        sqlx::query("INSERT INTO flows (measure, day, amount) VALUES ('shipped', $1, $2), ('shipped', $3, $4)")
            .bind(apr_1.0)
            .bind(min)
            .bind(may_1.0)
            .bind(max)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO level_days VALUES ('stock', $1, $2, $3, 'k0', $4, $5, 'k0', $6), \
             ('stock', $7, -12, NULL, NULL, NULL, NULL, NULL, NULL)",
        )
        .bind(apr_1.0)
        .bind(min)
        .bind(at("2026-04-01T00:00:00+09:00").micros())
        .bind(max)
        .bind(min)
        .bind(max)
        .bind(may_1.0)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();

        stores::the_old_numbers_are_kept_and_grow_past_64_bits::<PgStore>(db.url()).await;
    });
}

/// The PostgreSQL store keeps no folded state between batches: a batch dropped at any
/// await leaves a transaction that rolls back (or a commit that lands whole), and the
/// tables hold all of the batch or nothing of it.
#[test]
fn a_batch_dropped_at_any_await_leaves_all_of_it_or_nothing() {
    let plan = plan();
    rt().block_on(async {
        let db = fresh_db().await;
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        store
            .submit_batch(items(&plan, &(0..20).collect::<Vec<_>>()))
            .await
            .unwrap();
        let (before, after) = (engine_over(&plan, 0..20), engine_over(&plan, 0..40));
        let batch: Vec<u32> = (20..40).collect();
        let mut polls = 1;
        loop {
            let done = poll_then_drop(store.submit_batch(items(&plan, &batch)), polls).await;
            // Wait until no other session is in a transaction: the dropped one has
            // rolled back or committed.
            let mut conn = PgConnection::connect(db.url()).await.unwrap();
            for _ in 0..500 {
                let busy: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND (state = 'active' OR state LIKE 'idle in transaction%')",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                if busy == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            conn.close().await.unwrap();
            let ledger = store.ledger().await.unwrap();
            assert!(
                ledger == *before.ledger() || ledger == *after.ledger(),
                "dropped after {polls} polls: part of the batch is in the tables"
            );
            if done.is_some() {
                break;
            }
            polls += 1;
        }
        assert!(polls > 5, "the batch finished after {polls} polls");
        assert_eq!(store.ledger().await.unwrap(), *after.ledger());
        store.close().await;
    });
}

#[test]
fn freshness_is_kept_for_declared_sources_only() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::freshness_is_kept_for_declared_sources_only::<PgStore>(db.url());
}

#[test]
fn refusals_kept_before_kafka_say_their_source_was_heard_from() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    let plan = plan();
    rt().block_on(async {
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        store
            .declare_sources(&["konbini".to_owned(), "juki".to_owned()])
            .await
            .unwrap();
        // The ingest role's refusal of a line of the konbini token: not JSON.
        let refused = item(&plan.schema, b"{oops", Position::Index(0), "konbini");
        store.record_rejected(&[refused]).await.unwrap();
        let heard: Vec<(String, bool)> = store
            .freshness()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.source, f.last_received_micros.is_some()))
            .collect();
        assert_eq!(
            heard,
            [("juki".to_owned(), false), ("konbini".to_owned(), true)]
        );
        store.close().await;
    });
}

#[test]
fn a_close_among_running_batches_falls_between_them() {
    let db = TestDb::create_blocking("mieruka_test").unwrap();
    stores::a_close_among_running_batches_falls_between_them::<PgStore>(db.url());
}

/// The rows of the log per generation, in generation order.
async fn generations(url: &str) -> Vec<(i32, i64)> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT generation, count(*) FROM event_log GROUP BY generation ORDER BY generation",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    rows
}

/// A key logged in a sealed generation of the log is found whenever it comes back, by
/// a store that did not log it: re-sent alike it is a duplicate, changed a conflict,
/// voided it is retracted; new keys beside them are logged into the current generation.
#[test]
fn a_key_of_a_sealed_generation_is_found_by_a_store_that_did_not_log_it() {
    let plan = plan();
    rt().block_on(async {
        let db = fresh_db().await;
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        store.seal_generations_at(1);
        for chunk in [&[0u32, 1, 2, 3, 4][..], &[5, 6, 7], &[9, 10, 11]] {
            let st = store.submit_batch(items(&plan, chunk)).await.unwrap();
            assert!(st.iter().all(|s| *s == Status::Accepted), "{st:?}");
        }
        store.close().await;
        assert_eq!(generations(db.url()).await, [(0, 5), (1, 3), (2, 3)]);

        // A store that logged nothing: its filter comes from the sealed generations'
        // hashes. Id 26 voids id 2 (generation 0); id 0 comes back alike, id 9 changed.
        assert_eq!(void_target(26), 2);
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        store.seal_generations_at(1);
        let changed = raw(9).replace(r#""count":2"#, r#""count":5"#);
        assert_ne!(changed, raw(9));
        let mut batch = items(&plan, &[0, 12, 26]);
        batch.push(item(&plan.schema, changed.as_bytes(), Position::Index(3), "test"));
        let st = store.submit_batch(batch).await.unwrap();
        assert_eq!(st[..3], [Status::Duplicate, Status::Accepted, Status::Accepted]);
        assert!(
            matches!(&st[3], Status::Rejected(r) if r.reason == mieruka_ingest::Reason::ConflictingDuplicate),
            "{:?}",
            st[3]
        );
        // And again later, in a batch that looks only the filter's keys up.
        let st = store.submit_batch(items(&plan, &[13, 6, 5])).await.unwrap();
        assert_eq!(st, [Status::Accepted, Status::Duplicate, Status::Duplicate]);
        assert_eq!(
            store.ledger().await.unwrap(),
            *engine_over(&plan, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 26, 13]).ledger()
        );
        store.close().await;
        assert_eq!(
            generations(db.url()).await,
            [(0, 5), (1, 3), (2, 3), (3, 2), (4, 1)]
        );
        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        let voided: Vec<String> =
            sqlx::query_scalar("SELECT event_id FROM event_log WHERE voided ORDER BY event_id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(voided.len(), 1, "{voided:?}");
        conn.close().await.unwrap();
    });
}

/// `conn`'s database migrated as far as the PostgreSQL migrations numbered up to `last`
/// take it: a store of an older version (its migrations copied under `dir`).
async fn migrate_up_to(dir: &std::path::Path, conn: &mut PgConnection, last: u32) {
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<String> = std::fs::read_dir(all)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| {
            f.get(..4)
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= last)
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), last as usize, "{files:?}");
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let old = old_migrations(dir, "postgres", &files);
    Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(conn)
        .await
        .unwrap();
}

/// The row an older store logged for event `id` (a whole body: the oldest layout), with
/// `generation` when its schema has one (migration 0010). `Err` is PostgreSQL's refusal.
async fn log_as_an_older_store(
    conn: &mut PgConnection,
    plan: &Plan,
    id: u32,
    generation: Option<i32>,
) -> Result<(), sqlx::Error> {
    let body = raw(id);
    let ev = mieruka_ingest::decode(&plan.schema, body.as_bytes()).unwrap();
    let (column, value) = match generation {
        Some(_) => (", generation", ", $8"),
        None => ("", ""),
    };
    let sql = format!(
        "INSERT INTO event_log (source, event_id, fingerprint, type, occurred_at, day, \
         body, voided, received_at, moves_level{column}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, 0, FALSE{value})"
    );
    let mut q = sqlx::query(&sql)
        .bind(ev.source.as_str())
        .bind(ev.id.as_str())
        .bind(ev.fingerprint(&plan.schema))
        .bind(&plan.schema.event_type(ev.type_id).name)
        .bind(ev.occurred_at.micros())
        .bind(Day::of(ev.occurred_at).0)
        .bind(&body);
    if let Some(g) = generation {
        q = q.bind(g);
    }
    q.execute(conn).await.map(|_| ())
}

/// Migration 0011 rebuilds the log's unique key over a log that holds events, with the
/// id before the source (the index's comparisons then end at the column that tells keys
/// apart): the keys logged before are still found, and a key cannot be logged twice.
#[test]
fn the_log_key_is_rebuilt_id_first_and_its_keys_are_still_found() {
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let db = fresh_db().await;
        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        migrate_up_to(dir.path(), &mut conn, 10).await;
        let key_columns = "SELECT string_agg(a.attname, ',' ORDER BY k.i) \
             FROM pg_constraint c \
             CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, i) \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
             WHERE c.conname = 'event_log_key'";
        let columns: String = sqlx::query_scalar(key_columns)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(columns, "generation,source,event_id");
        // Rows as a store of 0010 logged them, in its current generation (0: the log was
        // empty when 0010 ran).
        for id in 0..5u32 {
            log_as_an_older_store(&mut conn, &plan, id, Some(0))
                .await
                .unwrap();
        }
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let columns: String = sqlx::query_scalar(key_columns)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(columns, "generation,event_id,source");
        let st = store.submit_batch(items(&plan, &[3, 7])).await.unwrap();
        assert_eq!(st, [Status::Duplicate, Status::Accepted]);
        store.close().await;
        match log_as_an_older_store(&mut conn, &plan, 1, Some(0)).await {
            Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("23505")),
            other => panic!("a key logged twice: {other:?}"),
        }
        conn.close().await.unwrap();
    });
}

/// A log logged before generations (migration 0010) becomes generation 0, sealed: the
/// first store that opens it hashes its keys, and a key of it re-sent is found.
#[test]
fn a_log_from_before_generations_is_hashed_once_and_its_keys_are_found() {
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let db = fresh_db().await;
        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        migrate_up_to(dir.path(), &mut conn, 9).await;
        for id in 0..5u32 {
            log_as_an_older_store(&mut conn, &plan, id, None)
                .await
                .unwrap();
        }
        let state =
            "SELECT current, hashed, (SELECT COALESCE(sum(keys), 0)::int8 FROM log_key_hashes) \
                     FROM log_generation";
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let (current, hashed, keys): (i32, bool, i64) =
            sqlx::query_as(state).fetch_one(&mut conn).await.unwrap();
        assert_eq!((current, hashed, keys), (1, true, 5));
        let st = store.submit_batch(items(&plan, &[3, 7])).await.unwrap();
        assert_eq!(st, [Status::Duplicate, Status::Accepted]);
        store.close().await;
        // Opened again, nothing is hashed twice.
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        store.close().await;
        let (current, hashed, keys): (i32, bool, i64) =
            sqlx::query_as(state).fetch_one(&mut conn).await.unwrap();
        assert_eq!((current, hashed, keys), (1, true, 6));
        assert_eq!(generations(db.url()).await, [(0, 5), (1, 1)]);
        conn.close().await.unwrap();
    });
}
