//! The cases every store must pass, written once against the `Store` trait: each
//! dialect's test binary runs them on its own database (a SQLite file, a throw-away
//! PostgreSQL database), so both stores are held to the same facts.

use std::sync::Arc;

use mieruka_aggregator::ledger::{LevelDay, Snapshot};
use mieruka_aggregator::store::{PlanCheck, RejectedFilter, Store};
use mieruka_aggregator::{Day, Engine, Ledger, Plan};
use mieruka_ingest::{item, Position, Status, Timestamp};
use proptest::prelude::*;

use super::{
    assert_wide_figures, engine_of, items, plan, raw, raw_items, rt, wide_history, wide_plan,
    wide_raw, BIG,
};

/// The pure engine over the events of `ids`, in order.
pub fn engine_over<'p>(plan: &'p Plan, ids: impl IntoIterator<Item = u32>) -> Engine<'p> {
    let mut engine = Engine::new(plan);
    for id in ids {
        engine.apply(mieruka_ingest::decode(&plan.schema, raw(id).as_bytes()).unwrap());
    }
    engine
}

/// The ledger of a store opened afresh at `location`.
pub async fn fresh_ledger<S: Store>(location: &S::Location, plan: &Arc<Plan>) -> Ledger {
    let store = S::open(location, plan.clone()).await.unwrap();
    let ledger = store.ledger().await.unwrap();
    store.close().await;
    ledger
}

/// Whatever the batching (`ids` cut by `cuts`), the store reports the engine's statuses
/// and holds the engine's ledger, before and after a reopen.
pub fn folds_like_the_engine<S: Store>(
    location: &S::Location,
    ids: &[u32],
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    folds_like_the_engine_with::<S>(location, ids, cuts, |_| {})
}

/// [`folds_like_the_engine`] with each store opened set by `tune`, and opened again half
/// way through the batches (a store that starts on a log it did not write).
pub fn folds_like_the_engine_with<S: Store>(
    location: &S::Location,
    ids: &[u32],
    cuts: &[usize],
    tune: impl Fn(&S),
) -> Result<(), TestCaseError> {
    let plan = plan();
    let mut engine = Engine::new(&plan);
    let mut engine_statuses = Vec::new();
    for id in ids {
        let ev = mieruka_ingest::decode(&plan.schema, raw(*id).as_bytes()).unwrap();
        engine_statuses.push(engine.apply(ev));
    }
    let (ledger, statuses, reopened) = rt().block_on(async {
        let mut store = S::open(location, plan.clone()).await.unwrap();
        tune(&store);
        let mut statuses = Vec::new();
        let mut rest: &[u32] = ids;
        let mut c = 0;
        while !rest.is_empty() {
            let n = cuts[c % cuts.len()].min(rest.len());
            c += 1;
            statuses.extend(store.submit_batch(items(&plan, &rest[..n])).await.unwrap());
            rest = &rest[n..];
            if c == 2 {
                store.close().await;
                store = S::open(location, plan.clone()).await.unwrap();
                tune(&store);
            }
        }
        let ledger = store.ledger().await.unwrap();
        store.close().await;
        let reopened = fresh_ledger::<S>(location, &plan).await;
        (ledger, statuses, reopened)
    });
    prop_assert_eq!(&statuses, &engine_statuses);
    prop_assert_eq!(&ledger, engine.ledger());
    prop_assert_eq!(&reopened, engine.ledger());
    Ok(())
}

/// A refused event is kept with its reason, field and position, its personal number
/// masked, and nothing of it is logged.
pub fn rejected_events_are_kept_with_their_reason_and_masked_raw_text<S: Store>(
    location: &S::Location,
) {
    let plan = plan();
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let bad = r#"{"event_id":"k1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","memo":"my number 123456789018"}}"#;
        let it = item(&plan.schema, bad.as_bytes(), Position::Line { file: "f.ndjson".into(), line: 7 }, "konbini");
        let st = store.submit_batch(vec![it]).await.unwrap();
        assert!(matches!(&st[0], Status::Rejected(r) if r.reason.as_str() == "personal_number"));
        let rows = store.rejected(10).await.unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.reason.as_str(), r.field.as_deref(), r.position.as_str()), ("personal_number", Some("data.memo"), "f.ndjson:7"));
        assert!(r.raw.contains("************") && !r.raw.contains("123456789018"), "{}", r.raw);
        // The id passed the guard (the number is in `memo`): the row names the event.
        assert_eq!(r.event_id.as_deref(), Some("k1"));
        assert_eq!(store.logged_events().await.unwrap(), 0);
        store.close().await;
    });
}

/// Every problem of a refused event is kept: the first in the reason and field columns,
/// the others after its message.
pub fn every_problem_of_a_rejected_event_is_kept<S: Store>(location: &S::Location) {
    let plan = plan();
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let bad = r#"{"event_id":"k2","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"fax","certificate":"juminhyo","count":0}}"#;
        let it = item(&plan.schema, bad.as_bytes(), Position::Line { file: "f.ndjson".into(), line: 8 }, "konbini");
        store.submit_batch(vec![it]).await.unwrap();
        let rows = store.rejected(10).await.unwrap();
        let r = &rows[0];
        assert_eq!((r.reason.as_str(), r.field.as_deref()), ("unknown_value", Some("data.channel")));
        assert!(
            r.message.starts_with("unknown value \"fax\"")
                && r.message.ends_with(" | data.count: 0 is below the minimum 1 (out_of_bounds)"),
            "{}",
            r.message
        );
        store.close().await;
    });
}

/// Kept rejections are read back by source, reason and time received, newest first,
/// and summed up by source and reason.
pub fn rejected_events_are_filtered_and_summed_up<S: Store>(location: &S::Location) {
    let plan = plan();
    let refused = |id: &str, channel: &str, source: &str| {
        let raw = format!(
            r#"{{"event_id":"{id}","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{{"channel":"{channel}","certificate":"juminhyo"}}}}"#
        );
        item(&plan.schema, raw.as_bytes(), Position::Index(0), source)
    };
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let before = Timestamp::wall_clock().micros();
        store
            .submit_batch(vec![
                refused("a", "conbini", "konbini"),
                refused("b", "conbini", "konbini"),
                item(&plan.schema, b"not json", Position::Index(2), "madoguchi"),
            ])
            .await
            .unwrap();
        let filter =
            |source: Option<&str>, reason: Option<&str>, since: Option<i64>| RejectedFilter {
                source: source.map(str::to_owned),
                reason: reason.map(str::to_owned),
                since_micros: since,
            };
        let ids = |rows: Vec<mieruka_aggregator::RejectedRow>| {
            rows.into_iter()
                .map(|r| (r.source, r.reason, r.event_id))
                .collect::<Vec<_>>()
        };
        let konbini = store
            .rejected_matching(&filter(Some("konbini"), None, None), 10)
            .await
            .unwrap();
        assert!(
            konbini.iter().all(|r| r.received_at_micros >= before),
            "{konbini:?}"
        );
        assert_eq!(
            ids(konbini),
            [
                ("konbini".into(), "unknown_value".into(), Some("b".into())),
                ("konbini".into(), "unknown_value".into(), Some("a".into())),
            ],
            "newest first"
        );
        let not_json = store
            .rejected_matching(&filter(None, Some("not_json"), Some(before)), 10)
            .await
            .unwrap();
        assert_eq!(
            ids(not_json),
            [("madoguchi".into(), "not_json".into(), None)]
        );
        let later = Timestamp::wall_clock().micros() + 60_000_000;
        let none = store
            .rejected_matching(&filter(None, None, Some(later)), 10)
            .await
            .unwrap();
        assert!(none.is_empty(), "{none:?}");
        let summary = store
            .rejected_summary(&filter(None, None, None))
            .await
            .unwrap();
        let counts: Vec<(&str, &str, i64)> = summary
            .iter()
            .map(|c| (c.source.as_str(), c.reason.as_str(), c.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("konbini", "unknown_value", 2),
                ("madoguchi", "not_json", 1)
            ]
        );
        assert!(summary
            .iter()
            .all(|c| c.first_micros >= before && c.last_micros >= c.first_micros));
        store.close().await;
    });
}

/// Two stores on one database each fold on top of what the other committed.
pub fn two_stores_on_one_database_fold_on_top_of_each_other<S: Store>(location: &S::Location) {
    let plan = plan();
    rt().block_on(async {
        let a = S::open(location, plan.clone()).await.unwrap();
        let b = S::open(location, plan.clone()).await.unwrap();
        a.submit_batch(items(&plan, &[0, 1])).await.unwrap();
        b.submit_batch(items(&plan, &[9 * 3, 10])).await.unwrap();
        a.submit_batch(items(&plan, &[18, 19])).await.unwrap();
        let mut engine = Engine::new(&plan);
        for id in [0, 1, 27, 10, 18, 19] {
            engine.apply(mieruka_ingest::decode(&plan.schema, raw(id).as_bytes()).unwrap());
        }
        assert_eq!(&a.ledger().await.unwrap(), engine.ledger());
        assert_eq!(&b.ledger().await.unwrap(), engine.ledger());
        a.close().await;
        b.close().await;
    });
}

/// Folds [`wide_history`] in batches of three (the late snapshot and the void find their
/// events in the log): sums past `i64::MAX` are exact in the ledger. The store is closed
/// after, so the caller can look at how its dialect keeps the sums.
pub async fn fold_the_wide_history<S: Store>(location: &S::Location) {
    let plan = wide_plan();
    let history = wide_history();
    let engine = engine_of(&plan, &history);
    let store = S::open(location, plan.clone()).await.unwrap();
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
}

/// After [`fold_the_wide_history`], a reopened store reads the same exact sums back.
pub async fn the_wide_history_survives_a_reopen<S: Store>(location: &S::Location) {
    let plan = wide_plan();
    let engine = engine_of(&plan, &wide_history());
    let reopened = fresh_ledger::<S>(location, &plan).await;
    assert_eq!(&reopened, engine.ledger());
    assert_wide_figures(&plan, &reopened);
}

/// After a dialect wrote the old schema's extreme 64-bit values (`i64::MIN` on April
/// 1st, `i64::MAX` on May 1st, a level day with a snapshot and an opening) and the
/// store migrated them: the numbers are kept, and grow past 64 bits exactly.
pub async fn the_old_numbers_are_kept_and_grow_past_64_bits<S: Store>(location: &S::Location) {
    let plan = wide_plan();
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
    let store = S::open(location, plan.clone()).await.unwrap();
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
    let reopened = fresh_ledger::<S>(location, &plan).await;
    assert_eq!(
        reopened.flows.get(&(shipped, may_1)),
        Some(&(i128::from(max) + i128::from(BIG)))
    );
    assert_eq!(reopened.levels, expected.levels);
}

/// An event logged by an earlier batch is a duplicate when re-sent, a conflict when
/// re-sent changed, and the rest of its batch and the batches after it count as usual.
/// (On PostgreSQL a batch does not look its own keys up unless a batch before it met a
/// logged key: the log's primary key catches the re-send and the batch runs again
/// looking its keys up.)
pub fn an_event_logged_by_an_earlier_batch_is_a_duplicate<S: Store>(location: &S::Location) {
    let plan = plan();
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let first: Vec<u32> = (0..10).collect();
        let st = store.submit_batch(items(&plan, &first)).await.unwrap();
        assert!(st.iter().all(|s| *s == Status::Accepted), "{st:?}");

        // Id 0 is a konbini certificate with "count":1; the same id with another count
        // is a conflicting duplicate.
        let changed = raw(0).replace(r#""count":1"#, r#""count":3"#);
        assert_ne!(changed, raw(0));
        let mut second = items(&plan, &[3, 10, 11]);
        second.push(item(&plan.schema, changed.as_bytes(), Position::Index(3), "test"));
        let st = store.submit_batch(second).await.unwrap();
        assert_eq!(st[0], Status::Duplicate);
        assert_eq!(st[1..3], [Status::Accepted, Status::Accepted]);
        assert!(
            matches!(&st[3], Status::Rejected(r) if r.reason == mieruka_ingest::Reason::ConflictingDuplicate),
            "{:?}",
            st[3]
        );

        // The batches after it count as usual.
        for chunk in (12..60).collect::<Vec<u32>>().chunks(4) {
            let st = store.submit_batch(items(&plan, chunk)).await.unwrap();
            assert!(st.iter().all(|s| *s == Status::Accepted), "{st:?}");
        }
        let st = store.submit_batch(items(&plan, &[5, 59])).await.unwrap();
        assert_eq!(st, [Status::Duplicate, Status::Duplicate]);

        assert_eq!(store.logged_events().await.unwrap(), 60);
        assert_eq!(
            store.ledger().await.unwrap(),
            *engine_over(&plan, 0..60).ledger()
        );
        let rejected = store.rejected(10).await.unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].reason, "conflicting_duplicate");
        store.close().await;
    });
}

/// A void re-sent after its target turned out to be a snapshot is a duplicate, as the
/// engine says, not a refused void (on PostgreSQL: the void itself is looked up even
/// when a batch does not look its other keys up).
pub fn a_void_re_sent_after_its_target_arrived_as_a_snapshot_is_a_duplicate<S: Store>(
    location: &S::Location,
) {
    let plan = plan();
    let void = r#"{"event_id":"v1","source":"juki","type":"event.voided","occurred_at":"2026-05-02T09:00:00+09:00","data":{},"voids":"s1"}"#;
    let snapshot = r#"{"event_id":"s1","source":"juki","type":"population.snapshot","occurred_at":"2026-05-01T09:00:00+09:00","data":{"population":130000}}"#;
    let one = |raw: &str| {
        vec![item(
            &plan.schema,
            raw.as_bytes(),
            Position::Index(0),
            "test",
        )]
    };
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let mut engine = Engine::new(&plan);
        for raw in [void, snapshot, void] {
            let expected =
                engine.apply(mieruka_ingest::decode(&plan.schema, raw.as_bytes()).unwrap());
            let st = store.submit_batch(one(raw)).await.unwrap();
            assert_eq!(st, [expected]);
        }
        assert_eq!(
            store.submit_batch(one(void)).await.unwrap(),
            [Status::Duplicate]
        );
        assert_eq!(store.ledger().await.unwrap(), *engine.ledger());
        assert!(store.rejected(10).await.unwrap().is_empty());
        store.close().await;
    });
}

/// When each source was last heard from: only declared sources are kept (request data
/// names any source), a batch moves them to its commit time whatever became of its
/// events (a rejected event's source was heard from too), a declared source never heard
/// from counts from when it was declared, re-declaring changes nothing, and all of it
/// survives a reopen.
pub fn freshness_is_kept_for_declared_sources_only<S: Store>(location: &S::Location) {
    let plan = plan();
    let micros = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let declared_at = micros();
        let sources = ["juki".to_owned(), "konbini".to_owned()];
        store.declare_sources(&sources).await.unwrap();
        let before = store.freshness().await.unwrap();
        assert_eq!(
            before.iter().map(|f| f.source.as_str()).collect::<Vec<_>>(),
            ["juki", "konbini"]
        );
        assert!(before.iter().all(|f| f.last_received_micros.is_none()
            && f.known_since_micros >= declared_at));
        let konbini = r#"{"event_id":"k1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo"}}"#;
        let stranger = r#"{"event_id":"s1","source":"stranger","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo"}}"#;
        let at = |i| Position::Index(i);
        let batch = vec![
            item(&plan.schema, konbini.as_bytes(), at(0), "import"),
            item(&plan.schema, stranger.as_bytes(), at(1), "import"),
            // Not JSON: heard from under its configured label.
            item(&plan.schema, b"{oops", at(2), "juki"),
        ];
        let sent = micros();
        store.submit_batch(batch).await.unwrap();
        let after = store.freshness().await.unwrap();
        assert_eq!(after.len(), 2, "{after:?}");
        for f in &after {
            let t = f.last_received_micros.unwrap_or_else(|| panic!("{f:?} heard"));
            assert!(t >= sent && t <= micros(), "{f:?}");
            assert_eq!(f.known_since_micros, before.iter().find(|b| b.source == f.source).unwrap().known_since_micros);
        }
        // Declared again (a restart): nothing moves.
        store.declare_sources(&sources).await.unwrap();
        store.close().await;
        let reopened = S::open(location, plan.clone()).await.unwrap();
        assert_eq!(reopened.freshness().await.unwrap(), after);
        // An older arrival never moves it back; a batch heard from nobody declared
        // moves nothing.
        reopened
            .submit_batch(vec![item(&plan.schema, stranger.as_bytes(), at(0), "x")])
            .await
            .unwrap();
        assert_eq!(reopened.freshness().await.unwrap(), after);
        reopened.close().await;
    });
}

/// `explain` reads the store's log back: for every numeric KPI, its value is the
/// figure of the engine's ledger, and its months and sources add up to each part; as
/// of a past day, it is the figure of the events that occurred by then (every void
/// known today).
pub fn explain_takes_the_figures_apart<S: Store>(location: &S::Location) {
    use mieruka_aggregator::explain::{explain, Request};
    use mieruka_aggregator::{figures, FiscalYear, KpiKind};

    let plan = plan();
    let ids: Vec<u32> = (0..60).collect();
    let now = Timestamp::parse_rfc3339("2026-10-01T00:00:00+09:00").unwrap();
    let as_of: Day = "2025-06-30".parse().unwrap();
    let end = Day(as_of.0 + 1).start();
    let by_then: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|id| {
            let e = mieruka_ingest::decode(&plan.schema, raw(*id).as_bytes()).unwrap();
            e.voids.is_some() || e.occurred_at < end
        })
        .collect();
    let (today, then) = (engine_over(&plan, ids.clone()), engine_over(&plan, by_then));
    let mut as_of_moved = 0;
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        store.submit_batch(items(&plan, &ids)).await.unwrap();
        for (k, kpi) in plan.kpis_with_ids() {
            if matches!(kpi.kind, KpiKind::Milestone { .. }) {
                continue;
            }
            for (year, day, ledger) in [
                (2025, None, today.ledger()),
                (2026, None, today.ledger()),
                (2025, Some(as_of), then.ledger()),
            ] {
                let req = Request {
                    kpi: kpi.id.clone(),
                    year: Some(FiscalYear(year)),
                    as_of: day,
                    now,
                };
                let e = explain(&store, &req).await.unwrap();
                let at = day.map_or(now, |_| Timestamp::from_micros(end.micros() - 1));
                let want = figures(&plan, ledger, at)
                    .into_iter()
                    .find(|f| f.kpi == k && f.year == FiscalYear(year))
                    .unwrap();
                assert_eq!(e.value, want.value, "{} FY{year} as of {day:?}", kpi.id);
                let final_value = figures(&plan, today.ledger(), now)
                    .into_iter()
                    .find(|f| f.kpi == k && f.year == FiscalYear(year))
                    .and_then(|f| f.value);
                as_of_moved += usize::from(day.is_some() && e.value != final_value);
                assert_eq!(e.pace.value, want.pace, "{}", kpi.id);
                for p in &e.parts {
                    let Some(v) = p.value else { continue };
                    let base = p.snapshot.as_ref().map_or(0.0, |s| s.value);
                    for shares in [&p.by_month, &p.by_source] {
                        let total: f64 = base + shares.iter().map(|s| s.value).sum::<f64>();
                        assert!(
                            (total - v).abs() < 1e-9,
                            "{} {}: {total} ≠ {v}",
                            kpi.id,
                            p.measure
                        );
                    }
                }
            }
        }
        store.close().await;
    });
    assert!(
        as_of_moved > 0,
        "no figure differs as of {as_of}: the case tests nothing"
    );
}

/// `explain` reads a log longer than one page (5,000 rows) whole: every event counts once.
pub fn explain_reads_every_page_of_the_log<S: Store>(location: &S::Location) {
    use mieruka_aggregator::explain::{explain, Request};

    let plan = plan();
    let n = 12_001;
    let raws: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"event_id":"k{i}","source":"konbini","type":"certificate.issued","occurred_at":"2026-0{}-0{}T10:00:00+09:00","data":{{"channel":"konbini","certificate":"juminhyo","count":1}}}}"#,
                4 + i % 3,
                1 + i % 9
            )
        })
        .collect();
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        for chunk in raws.chunks(4_000) {
            store.submit_batch(raw_items(&plan, chunk)).await.unwrap();
        }
        let req = Request {
            kpi: "konbini_issuance_rate".into(),
            year: None,
            as_of: None,
            now: Timestamp::parse_rfc3339("2026-10-01T00:00:00+09:00").unwrap(),
        };
        let e = explain(&store, &req).await.unwrap();
        store.close().await;
        let numerator = &e.parts[0];
        assert_eq!(numerator.events_counted, n);
        assert_eq!(numerator.value, Some(n as f64));
        let by_source: Vec<(String, f64)> = numerator
            .by_source
            .iter()
            .map(|s| (s.key.clone(), s.value))
            .collect();
        assert_eq!(by_source, [("konbini".to_owned(), n as f64)]);
        assert_eq!(numerator.by_month.len(), 3, "{:?}", numerator.by_month);
    });
}

/// The Ome plan with the konbini certificates measure filtering on another channel: a
/// plan edit that changes what a measure means.
pub fn edited_plan() -> Arc<Plan> {
    let text = mieruka_aggregator::plan::OME_PLAN.replacen(
        "where = { channel = \"konbini\" }",
        "where = { channel = \"counter\" }",
        1,
    );
    Arc::new(Plan::parse("edited.toml", &text).unwrap())
}

/// Replay facts over a history (`ids` cut by `cuts`): the replay equals the live
/// aggregates; a plan whose measure changed is refused at open, and after a replay with
/// `--apply` under it the store holds what the engine folds under the new plan, and
/// opens with it.
pub fn replay_equals_live_and_rebuilds_a_changed_plan<S: Store>(
    location: &S::Location,
    ids: &[u32],
    cuts: &[usize],
) -> Result<(), TestCaseError>
where
    S::Error: std::fmt::Display,
{
    let (plan, edited) = (plan(), edited_plan());
    let now = Timestamp::from_unix_seconds(1_900_000_000);
    let mut under_edited = Engine::new(&edited);
    for id in ids {
        under_edited.apply(mieruka_ingest::decode(&edited.schema, raw(*id).as_bytes()).unwrap());
    }
    let (outcome, refused, rebuilt, after) = rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let mut rest: &[u32] = ids;
        let mut c = 0;
        while !rest.is_empty() {
            let n = cuts[c % cuts.len()].min(rest.len());
            c += 1;
            store.submit_batch(items(&plan, &rest[..n])).await.unwrap();
            rest = &rest[n..];
        }
        let outcome = store.replay(false, now).await.unwrap();
        store.close().await;
        let refused = S::open(location, edited.clone())
            .await
            .err()
            .map(|e| e.to_string());
        let replayer = S::open_with(location, edited.clone(), PlanCheck::Ignore)
            .await
            .unwrap();
        let rebuilt = replayer.replay(true, now).await.unwrap();
        replayer.close().await;
        let reopened = S::open(location, edited.clone()).await.unwrap();
        let after = reopened.replay(false, now).await.unwrap();
        let ledger = reopened.ledger().await.unwrap();
        reopened.close().await;
        (outcome, refused, rebuilt, (after, ledger))
    });
    prop_assert!(outcome.differences.is_empty(), "{:?}", outcome.differences);
    prop_assert_eq!(outcome.invalid, 0);
    let refused = refused.unwrap_or_default();
    prop_assert!(
        refused.contains("certificates_konbini") && refused.contains("replay --apply"),
        "{}",
        refused
    );
    prop_assert!(rebuilt.applied);
    prop_assert!(after.0.differences.is_empty(), "{:?}", after.0.differences);
    prop_assert_eq!(&after.1, under_edited.ledger());
    Ok(())
}

/// What a replay of `store` (not applied) finds different.
async fn differences<S: Store>(store: &S, now: Timestamp) -> Vec<String> {
    let outcome = store.replay(false, now).await.unwrap();
    assert!(!outcome.applied);
    outcome.differences.iter().map(|d| d.to_string()).collect()
}

/// An aggregate row changed behind the store's back (`tamper`, run after a history is
/// folded) is found by a replay, whose differences include one that starts with
/// `shown` (the measure, or the aggregate rows when no figure moves); `--apply` fixes
/// it: the next replay finds nothing, and the ledger is the engine's again.
pub fn a_tampered_aggregate_row_is_found_and_fixed<S: Store>(
    location: &S::Location,
    shown_first: &str,
    tamper: impl std::future::Future<Output = ()>,
) {
    let plan = plan();
    let ids: Vec<u32> = (0..60).collect();
    let engine = engine_over(&plan, ids.iter().copied());
    let now = Timestamp::from_unix_seconds(1_900_000_000);
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        store.submit_batch(items(&plan, &ids)).await.unwrap();
        assert!(differences(&store, now).await.is_empty());
        tamper.await;
        let shown = differences(&store, now).await;
        assert!(
            shown.iter().any(|d| d.starts_with(shown_first)),
            "{shown:?}"
        );
        let fixed = store.replay(true, now).await.unwrap();
        assert!(fixed.applied);
        assert_eq!(fixed.differences.len(), shown.len());
        assert!(differences(&store, now).await.is_empty());
        assert_eq!(&store.ledger().await.unwrap(), engine.ledger());
        store.close().await;
    });
}

/// Submits `ids` in batches cut by `cuts`; each item's fate, in order.
async fn submit_cut<S: Store>(store: &S, plan: &Plan, ids: &[u32], cuts: &[usize]) -> Vec<Status> {
    let mut statuses = Vec::new();
    let mut rest: &[u32] = ids;
    let mut c = 0;
    while !rest.is_empty() {
        let n = cuts[c % cuts.len()].min(rest.len());
        c += 1;
        statuses.extend(store.submit_batch(items(plan, &rest[..n])).await.unwrap());
        rest = &rest[n..];
    }
    statuses
}

/// The fiscal-year close over a history: `early` is folded, FY2025 is closed, `late`
/// arrives. The final figures are what `early` alone folds to and never move; each
/// adjustment is the live value (all events) minus the final one; FY2026, not closed,
/// moves with the late events like any open year (a level carries them); and the late
/// events of FY2025 (and the voids of its events) are exactly those listed as arriving
/// after the close; the final figures are what the events received by the close fold to
/// (as `replay` re-derives them). Closing again is refused; a reopen restores the live
/// figures.
pub fn late_events_never_change_a_closed_years_final_figures<S: Store>(
    location: &S::Location,
    early: &[u32],
    late: &[u32],
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    use mieruka_aggregator::close::{CloseRefusal, CloseRequest, LateQuery};
    use mieruka_aggregator::{figures, FiscalYear};
    use std::collections::BTreeSet;

    let plan = plan();
    let fy25 = FiscalYear(2025);
    let now = Timestamp::from_unix_seconds(1_900_000_000);
    let strip = |f: &mieruka_aggregator::Figure| mieruka_aggregator::Figure {
        finality: Default::default(),
        ..f.clone()
    };
    let before = engine_over(&plan, early.iter().copied()).figures(now);
    let after = engine_over(&plan, early.iter().chain(late).copied()).figures(now);
    let req = CloseRequest {
        year: fy25,
        now,
        operator: "tanaka".into(),
        note: "決算確定".into(),
    };
    let types: Vec<String> = plan.schema.types().iter().map(|t| t.name.clone()).collect();
    let (closed, again, shown, listed, reopened, live) = rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let early_statuses = submit_cut(&store, &plan, early, cuts).await;
        let closed = store.close_year(&req).await.unwrap().unwrap();
        let late_statuses = submit_cut(&store, &plan, late, cuts).await;
        let again = store.close_year(&req).await.unwrap().err();
        let mut shown = figures(&plan, &store.ledger().await.unwrap(), now);
        store.closes().await.unwrap().settle(&mut shown, now);
        let q = LateQuery {
            types: &types,
            from: fy25.start(),
            before: fy25.end(),
            received_after: closed.closed_at,
            limit: 1_000,
        };
        let listed = store.late_events(&q).await.unwrap();
        let rederived = store.rederive_closes().await.unwrap();
        assert!(rederived.is_empty(), "{rederived:?}");
        let reopened = store.reopen_year(&req).await.unwrap().unwrap();
        let mut live = figures(&plan, &store.ledger().await.unwrap(), now);
        store.closes().await.unwrap().settle(&mut live, now);
        store.close().await;
        let accepted = |ids: &[u32], st: &[Status]| -> BTreeSet<u32> {
            ids.iter()
                .zip(st)
                .filter(|(_, s)| matches!(s, Status::Accepted))
                .map(|(i, _)| *i)
                .collect()
        };
        let logged = (
            accepted(early, &early_statuses),
            accepted(late, &late_statuses),
        );
        (closed, again, shown, (listed, logged), reopened, live)
    });
    // The close froze the early history's FY2025 figures.
    let frozen: Vec<_> = closed.finals.iter().map(strip).collect();
    let expected: Vec<_> = before.iter().filter(|f| f.year == fy25).cloned().collect();
    prop_assert_eq!(&frozen, &expected);
    let refused = matches!(again, Some(CloseRefusal::AlreadyClosed { .. }));
    prop_assert!(refused, "closing twice: {:?}", again);
    for fig in &shown {
        let all = after
            .iter()
            .find(|f| f.kpi == fig.kpi && f.year == fig.year)
            .unwrap();
        if fig.year == fy25 {
            let fin = before
                .iter()
                .find(|f| f.kpi == fig.kpi && f.year == fy25)
                .unwrap();
            prop_assert_eq!(&strip(fig), fin, "a final figure moved");
            prop_assert!(fig.finality.is_final());
            let adjustment = match (all.value, fin.value) {
                (Some(l), Some(f)) => Some(l - f),
                _ => None,
            };
            prop_assert_eq!(fig.adjustment(), adjustment);
        } else {
            prop_assert_eq!(fig, all, "an open year did not move with the late events");
        }
    }
    // The adjustments listed are the late events of FY2025 and the voids of its events.
    let (list, (early_ok, late_ok)) = listed;
    let in_fy25 = |id: u32| {
        let e = mieruka_ingest::decode(&plan.schema, raw(id).as_bytes()).unwrap();
        FiscalYear::of(e.occurred_at) == fy25
    };
    let is_void = |id: u32| id % 9 == 8;
    let logged_original =
        |id: u32| !is_void(id) && (early_ok.contains(&id) || late_ok.contains(&id)) && in_fy25(id);
    let expected: BTreeSet<String> = late_ok
        .iter()
        .filter(|id| {
            if is_void(**id) {
                logged_original(super::void_target(**id))
            } else {
                in_fy25(**id)
            }
        })
        .map(|id| format!("e{id}"))
        .collect();
    let got: BTreeSet<String> = list.listed.iter().map(|l| l.event_id.clone()).collect();
    prop_assert_eq!(list.total as usize, list.listed.len());
    prop_assert_eq!(got, expected);
    // Reopened: the live figures stand again, provisional.
    prop_assert_eq!(reopened.dropped.year, fy25);
    for fig in &live {
        prop_assert!(!fig.finality.is_final());
    }
    prop_assert_eq!(&live, &after);
    Ok(())
}

/// A close taken while batches commit falls between two of them: the final figures are
/// exactly what the events received by the close fold to (as `replay` re-derives them),
/// whichever batch the close lands after.
pub fn a_close_among_running_batches_falls_between_them<S: Store>(location: &S::Location)
where
    S::Error: std::fmt::Debug,
{
    use mieruka_aggregator::close::CloseRequest;
    use mieruka_aggregator::FiscalYear;

    let plan = plan();
    let req = CloseRequest {
        year: FiscalYear(2025),
        now: Timestamp::from_unix_seconds(1_900_000_000),
        operator: "tanaka".into(),
        note: "while the aggregator runs".into(),
    };
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        let ids: Vec<u32> = (0..60).collect();
        let writer = async {
            for chunk in ids.chunks(2) {
                store.submit_batch(items(&plan, chunk)).await.unwrap();
            }
        };
        let closer = async {
            // Let a few batches go first.
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            store.close_year(&req).await.unwrap().unwrap()
        };
        let ((), closed) = tokio::join!(writer, closer);
        assert_eq!(closed.finals.len(), plan.kpis.len());
        let mismatches = store.rederive_closes().await.unwrap();
        assert!(mismatches.is_empty(), "{mismatches:?}");
        store.close().await;
    });
}

/// A duplicate (same key, same body) counts 1 for each measure its body feeds, on the
/// day it occurred, in its batch; a conflicting duplicate counts nothing; a replay with
/// `--apply` leaves the counts as they are (the log has no trace of duplicates); and
/// explain shows them per part.
pub fn duplicates_are_counted_per_measure_and_day<S: Store>(location: &S::Location) {
    use mieruka_aggregator::explain::{explain, Request};
    use mieruka_aggregator::FiscalYear;

    let plan = plan();
    let fy = FiscalYear(2025);
    let (first, last) = (fy.first_day(), fy.last_day());
    let day_of = |id: u32| {
        Day::of(
            mieruka_ingest::decode(&plan.schema, raw(id).as_bytes())
                .unwrap()
                .occurred_at,
        )
    };
    rt().block_on(async {
        let store = S::open(location, plan.clone()).await.unwrap();
        // 0: a konbini certificate (certificates_konbini and certificates_all); 1: one at
        // the counter (certificates_all only); 2: a card issued (card_holders).
        let st = store.submit_batch(items(&plan, &[0, 1, 2])).await.unwrap();
        assert!(st.iter().all(|s| *s == Status::Accepted), "{st:?}");
        let seen = |m: &'static str, from: Day, to: Day| {
            let store = &store;
            async move { store.duplicates_seen(m, from, to).await.unwrap() }
        };
        assert_eq!(seen("certificates_all", first, last).await, 0);

        let conflicting = raw(0).replace(r#""count":1"#, r#""count":3"#);
        let mut second = items(&plan, &[0, 1]);
        second.push(item(
            &plan.schema,
            conflicting.as_bytes(),
            Position::Index(2),
            "test",
        ));
        let st = store.submit_batch(second).await.unwrap();
        assert_eq!(st[..2], [Status::Duplicate, Status::Duplicate]);
        assert!(matches!(&st[2], Status::Rejected(_)), "{:?}", st[2]);
        let st = store.submit_batch(items(&plan, &[1, 3])).await.unwrap();
        assert_eq!(st, [Status::Duplicate, Status::Accepted]);

        async fn counts<S: Store>(store: &S, first: Day, last: Day) -> Vec<i64> {
            let mut out = Vec::new();
            for m in ["certificates_konbini", "certificates_all", "card_holders"] {
                out.push(store.duplicates_seen(m, first, last).await.unwrap());
            }
            out
        }
        // The conflicting re-send of 0 is refused and not counted.
        assert_eq!(counts(&store, first, last).await, [1, 3, 0]);
        // Per day: 0 and 1 occurred on different days.
        assert_ne!(day_of(0), day_of(1));
        assert_eq!(seen("certificates_all", day_of(0), day_of(0)).await, 1);
        assert_eq!(seen("certificates_all", day_of(1), day_of(1)).await, 2);
        let fy26 = FiscalYear(2026);
        assert_eq!(
            seen("certificates_all", fy26.first_day(), fy26.last_day()).await,
            0
        );

        let now = Timestamp::parse_rfc3339("2026-10-01T00:00:00+09:00").unwrap();
        let req = Request {
            kpi: "konbini_issuance_rate".into(),
            year: Some(fy),
            as_of: None,
            now,
        };
        let e = explain(&store, &req).await.unwrap();
        let dups: Vec<(&str, i64)> = e
            .parts
            .iter()
            .map(|p| (p.measure.as_str(), p.duplicates_seen))
            .collect();
        assert_eq!(
            dups,
            [("certificates_konbini", 1), ("certificates_all", 3)],
            "{e:?}"
        );
        // As of the day before 1 occurred, only 0's duplicate counts.
        let req = Request {
            as_of: Some(Day(day_of(1).0 - 1)),
            ..req
        };
        let e = explain(&store, &req).await.unwrap();
        assert_eq!(e.parts[1].duplicates_seen, 1, "{e:?}");
        store.close().await;

        // A replay rebuilds the aggregates from the log, and leaves the counts alone.
        let replayer = S::open_with(location, plan.clone(), PlanCheck::Ignore)
            .await
            .unwrap();
        replayer.replay(true, now).await.unwrap();
        assert_eq!(counts(&replayer, first, last).await, [1, 3, 0]);
        replayer.close().await;
    });
}
