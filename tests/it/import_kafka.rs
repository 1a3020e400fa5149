//! `mieruka import` into the production pipeline: the Shift_JIS CSV fixture and an
//! NDJSON file produced to a real `tansu` broker, folded by an `aggregate` role into a
//! throw-away PostgreSQL database, with every rejected line kept (file, line, column)
//! in the dead-letter topic and in PostgreSQL's `rejected` table for `mieruka rejected`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{tail, Metrics, NOW};
use crate::kafka::{read_topic, wait_for_metrics, Role, Setup};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ingest/tests/fixtures")
        .join(name)
}

/// Runs `mieruka ARGS… --config … --brokers … --database-url …`: (exit code, stdout).
fn mieruka(s: &Setup, args: &[&str], files: &[&Path]) -> (i32, String) {
    let out = Command::new(crate::helpers::bin())
        .args(args)
        .args(files)
        .arg("--config")
        .arg(&s.config)
        .args(["--database-url", &s.db.url])
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_CONFIG")
        .env_remove("MIERUKA_PLAN")
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn import(s: &Setup, files: &[&Path]) -> (i32, String) {
    let brokers = s.broker.brokers.clone();
    mieruka(
        s,
        &[
            "import",
            "--mapping",
            "konbini",
            "--now",
            NOW,
            "--brokers",
            &brokers,
        ],
        files,
    )
}

/// The aggregator's count of konbini events with `outcome`.
fn counted(aggregate: &Role, outcome: &str) -> Option<f64> {
    aggregate.scrape()?.get(
        "mieruka_events_total",
        &[("source", "konbini"), ("outcome", outcome), ("reason", "")],
    )
}

/// Waits until the aggregator has counted `accepted` and `duplicate` konbini events.
fn wait_counted(aggregate: &Role, accepted: f64, duplicate: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = (
            counted(aggregate, "accepted"),
            counted(aggregate, "duplicate"),
        );
        let want = (Some(accepted), Some(duplicate));
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "aggregate's counts: {seen:?}, expected {want:?}\n{}",
            tail(&aggregate.log, 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn files_imported_into_kafka_count_once_and_their_rejections_are_listed_from_postgres() {
    let s = Setup::new();
    // The config gets the konbini CSV mapping beside its [kafka] and [store].
    let mapping = std::fs::read_to_string(fixture("konbini.mapping.toml")).unwrap();
    let config = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("{config}\n{mapping}")).unwrap();
    let csv = fixture("konbini_sjis.csv");
    let ndjson = s.config.with_file_name("counter.ndjson");
    std::fs::write(
        &ndjson,
        concat!(
            r#"{"event_id":"n-1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-02T09:00:00+09:00","data":{"channel":"counter","certificate":"juminhyo","count":5}}"#,
            "\nthis is not json\n"
        ),
    )
    .unwrap();

    let aggregate = s.start("aggregate", "aggregate");
    let export = s.start("export", "export");
    export.wait_ready(Duration::from_secs(30));

    let (code, out) = import(&s, &[&csv, &ndjson]);
    assert_eq!(code, 1, "rejections make the exit code 1: {out}");
    let head = format!(
        "imported 2 file(s) to topic {} on {}: 5 accepted for processing, 3 rejected",
        s.topic, s.broker.brokers
    );
    assert!(out.contains(&head), "{out}");
    assert!(
        out.contains("konbini_sjis.csv:6 column \"交付日時\"") && out.contains("counter.ndjson:2"),
        "{out}"
    );

    // konbini 1 + 2 + 1 (default count) of 1 + 2 + 1 + 1 (counter) + 5 (counter).
    let rate = |m: &Metrics| m.kpi("value", "konbini_issuance_rate");
    wait_for_metrics(
        &export,
        &[&aggregate, &export],
        Duration::from_secs(60),
        "the imported figures",
        |m| rate(m) == Some(40.0),
        |m| format!("{:?}", rate(m)),
    );
    wait_counted(&aggregate, 5.0, 0.0);

    // The same file again: accepted for processing by the import, a duplicate for the
    // aggregator, and the figures do not move.
    let (code, again) = import(&s, &[&csv]);
    assert_eq!(code, 1, "{again}");
    assert!(
        again.contains("4 accepted for processing, 2 rejected"),
        "{again}"
    );
    wait_counted(&aggregate, 5.0, 4.0);
    let m = export.scrape().unwrap();
    assert_eq!(rate(&m), Some(40.0));
    let logged =
        s.db.rows("SELECT NULL::text, count(*)::int8 FROM event_log");
    assert_eq!(logged, [(None, Some(5))], "each event logged once");

    // Every rejection is in PostgreSQL's `rejected` table, with file, line and column,
    // and `mieruka rejected` lists it from there.
    let (code, listed) = mieruka(&s, &["rejected", "--limit", "10"], &[]);
    assert_eq!(code, 0, "{listed}");
    for needle in [
        "konbini_sjis.csv:5 [unknown_value]",
        "column \"交付方法\"",
        "konbini_sjis.csv:6 [bad_timestamp]",
        "column \"交付日時\"",
        "counter.ndjson:2 [not_json]",
    ] {
        assert!(listed.contains(needle), "{needle:?} not in:\n{listed}");
    }
    let kept = s
        .db
        .rows("SELECT position, count(*)::int8 FROM rejected GROUP BY position ORDER BY position");
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(
        kept.iter().map(|(_, n)| n.unwrap()).sum::<i64>(),
        5,
        "3 + 2 rejected lines: {kept:?}"
    );

    // And in the dead-letter topic, in the one dead-letter format.
    let letters = read_topic(
        &s.broker.brokers,
        &s.dead_letter,
        5,
        Duration::from_secs(30),
    );
    let bad_time = letters
        .iter()
        .find(|l| l.header("line").as_deref() == Some("6"))
        .unwrap();
    assert!(bad_time
        .header("file")
        .unwrap()
        .ends_with("konbini_sjis.csv"));
    assert!(bad_time
        .header("position")
        .unwrap()
        .ends_with("konbini_sjis.csv:6"));
    assert_eq!(bad_time.header("reason").as_deref(), Some("bad_timestamp"));
    assert!(
        bad_time
            .header("message")
            .unwrap()
            .contains("column \"交付日時\""),
        "{:?}",
        bad_time.header("message")
    );
    aggregate.stop();
    export.stop();
}
