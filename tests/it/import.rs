//! `mieruka import` of a Shift_JIS CSV with a Japanese header, then serving the result.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures/konbini_sjis.csv")
}

fn import(config: &Path, db: &Path, extra: &[&str]) -> (i32, String) {
    import_file(&fixture(), config, db, extra)
}

pub(crate) fn import_file(file: &Path, config: &Path, db: &Path, extra: &[&str]) -> (i32, String) {
    let out = run_import(file, config, db, extra);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `mieruka import FILE --db DB --config CONFIG EXTRA…` into the SQLite file.
pub(crate) fn run_import(
    file: &Path,
    config: &Path,
    db: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(bin())
        .arg("import")
        .arg(file)
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("MIERUKA_LOG", "warn")
        // Into the SQLite file: brokers in the environment would send it to Kafka.
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap()
}

#[test]
fn a_shift_jis_csv_imports_with_line_and_column_for_each_rejection_and_reimport_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let db = dir.path().join("m.db");

    let (code, out) = import(&config, &db, &["--mapping", "konbini"]);
    assert_eq!(code, 1, "rejections make the exit code 1: {out}");
    assert!(out.contains("4 accepted, 0 duplicate, 2 rejected"), "{out}");
    assert!(
        out.contains("konbini_sjis.csv:5") && out.contains("unknown_value"),
        "{out}"
    );
    // The bad cell's own message, not validation's generic one.
    assert!(
        out.contains(
            "konbini_sjis.csv:6 column \"交付日時\" does not match time format %Y/%m/%d %H:%M:%S (bad_timestamp)"
        ),
        "{out}"
    );

    let (_, again) = import(
        &config,
        &db,
        &["--mapping", "konbini", "--encoding", "shift_jis"],
    );
    assert!(
        again.contains("0 accepted, 4 duplicate, 2 rejected"),
        "{again}"
    );

    assert_konbini_issuance_rate_is_80(dir.path(), &db);
}

/// Serves `db` (the konbini fixture's rows imported) and checks the issuance rate:
/// konbini 1 + 2 + 1 (default count) of 5 certificates.
pub(crate) fn assert_konbini_issuance_rate_is_80(dir: &Path, db: &Path) {
    let app = TestApp::start(dir, db);
    let m = Metrics::parse(&app.scrape());
    assert_eq!(m.kpi("value", "konbini_issuance_rate"), Some(80.0));
    app.stop();
}

#[test]
fn an_import_beside_a_running_standalone_shows_at_its_next_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let app = TestApp::start(dir.path(), &db);
    app.post_events(
        KONBINI_TOKEN,
        &[cert("live-1", "counter", 5, "2026-05-01T10:00:00+09:00")],
    );
    let (_, out) = import(&app.config, &db, &["--mapping", "konbini"]);
    assert!(out.contains("4 accepted"), "{out}");
    // The refresh interval of the test config is 1 s.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let m = Metrics::parse(&app.scrape());
    assert_eq!(m.kpi("value", "konbini_issuance_rate"), Some(40.0));
    // And a post after the import folds on top of it, not over it.
    app.post_events(
        KONBINI_TOKEN,
        &[cert("live-2", "konbini", 1, "2026-05-01T10:00:00+09:00")],
    );
    let m = app.metrics_after_commit();
    let v = m.kpi("value", "konbini_issuance_rate").unwrap();
    assert!((v - 5.0 / 11.0 * 100.0).abs() < 1e-9, "{v}");
    app.stop();
}

/// docs/csv-mapping.md's worked example: a monthly population export by district in
/// CP932, era months, no id column, the 合計 row taken as the city's population.
#[test]
fn the_worked_monthly_population_export_imports_its_totals_and_sets_the_card_holding_rate() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures");
    let mapping = std::fs::read_to_string(fixtures.join("population.mapping.toml")).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&mapping);
    std::fs::write(&config, text).unwrap();
    let db = dir.path().join("m.db");
    let file = fixtures.join("population_monthly_sjis.csv");

    let (code, out) = import_file(&file, &config, &db, &["--mapping", "juki_monthly"]);
    assert_eq!(code, 0, "{out}");
    // Two months' 合計 rows; the district rows and the 総計 row are skipped by rule (and
    // the empty line is no row at all).
    assert!(
        out.contains("2 accepted, 0 duplicate, 0 rejected, 9 skipped by rule, 0 blank"),
        "{out}"
    );
    let (code, again) = import_file(&file, &config, &db, &["--mapping", "juki_monthly"]);
    assert_eq!(code, 0, "{again}");
    assert!(
        again.contains("0 accepted, 2 duplicate, 0 rejected"),
        "{again}"
    );

    assert_card_holding_rate_is_80(dir.path(), &db);
}

/// Serves `db`, posts 103,120 card holders for September 2026, and checks the holding
/// rate: 80 % of 128,900 residents (令和8年9月's 合計 in the population fixture, the
/// latest snapshot).
pub(crate) fn assert_card_holding_rate_is_80(dir: &Path, db: &Path) {
    let app = TestApp::start(dir, db);
    let reply = app.post_events(
        CARD_TOKEN,
        &[snapshot(
            "holders-2026-09",
            "card",
            "mynumber_card.holders_snapshot",
            "holders",
            103_120,
            "2026-09-30T12:00:00+09:00",
        )],
    );
    assert_eq!(reply["accepted"], 1, "{reply}");
    let m = app.metrics_after_commit();
    let v = m.kpi("value", "mynumber_card_holding_rate").unwrap();
    assert!((v - 80.0).abs() < 1e-9, "{v}");
    app.stop();
}

/// A file streams in batches, but one that cannot be read whole imports nothing: its
/// last row of the wrong width, or a malformed byte at its very end, is found by the
/// first pass, before any of its 25,000 good rows (more than two batches) is sent.
#[test]
fn a_large_file_broken_at_its_end_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let db = dir.path().join("m.db");
    let mut text = "受付番号,交付日時,交付方法,証明書種別,枚数\r\n".to_owned();
    for i in 0..25_000 {
        text.push_str(&format!(
            "K-{i},2026/05/01 10:15:00,コンビニ,住民票の写し,1\r\n"
        ));
    }
    let good = encoding_rs::SHIFT_JIS.encode(&text).0.into_owned();
    let file = dir.path().join("big.csv");
    for (tail, says) in [
        (&b"K-x,2026/05/01 10:15:00\r\n"[..], "line 25002"),
        (
            &b"K-y,2026/05/01 10:15:00,\x82\xFF,x,1\r\n"[..],
            "malformed bytes at byte offset",
        ),
    ] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(tail);
        std::fs::write(&file, &bytes).unwrap();
        let out = run_import(
            &file,
            &config,
            &db,
            &["--mapping", "konbini", "--encoding", "sjis"],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(says), "{err}");
    }
    // Nothing of it was imported: the good rows alone are all new.
    std::fs::write(&file, &good).unwrap();
    let (code, out) = import_file(&file, &config, &db, &["--mapping", "konbini"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("25000 accepted, 0 duplicate, 0 rejected"),
        "{out}"
    );
}
