//! `[[inbox]]`: a line system drops files into a folder that `standalone` watches; each
//! file is imported once, then lands in `done/` (or `failed/`) beside its reports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::*;

fn fixture() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures/konbini_sjis.csv"),
    )
    .unwrap()
}

/// The test config with one inbox `konbini` (Shift_JIS CSV through the konbini
/// mapping), polled every 50 ms; returns the inbox folder.
fn config_with_inbox(dir: &Path, settle_seconds: u64) -> (PathBuf, PathBuf) {
    let config = write_config(dir);
    let inbox = dir.join("inbox").join("konbini");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "\n[[inbox]]\ndir = '{}'\nmapping = \"konbini\"\nencoding = \"shift_jis\"\n\
         sources = [\"konbini\"]\nsettle_seconds = {settle_seconds}\npoll_millis = 50\n",
        inbox.display()
    );
    std::fs::write(&config, text).unwrap();
    (config, inbox)
}

/// A fresh folder with the test config and its inbox (see [`config_with_inbox`]).
fn setup(settle_seconds: u64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (config, inbox) = config_with_inbox(dir.path(), settle_seconds);
    (dir, config, inbox)
}

fn start(dir: &Path, config: &Path) -> TestApp {
    replica(dir, config, "m.db")
}

/// Another `standalone` on the same config and folder, with a store of its own (`db`):
/// whatever it imported shows in its own counts.
fn replica(dir: &Path, config: &Path, db: &str) -> TestApp {
    TestApp::start_configured(&dir.join(db), config, Stdio::inherit(), "warn")
}

/// Writes `bytes` as `.NAME.part` and renames it into place, as a careful writer does.
fn drop_file(inbox: &Path, name: &str, bytes: &[u8]) {
    let part = inbox.join(format!(".{name}.part"));
    std::fs::write(&part, bytes).unwrap();
    std::fs::rename(&part, inbox.join(name)).unwrap();
}

/// The JSON report of `outcome/NAME`, once the file is there (60 s at most: the big
/// files of these tests on a loaded machine).
fn report(inbox: &Path, outcome: &str, name: &str) -> serde_json::Value {
    let path = inbox.join(outcome).join(format!("{name}.result.json"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !inbox.join(outcome).join(name).exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn counts(r: &serde_json::Value) -> (u64, u64, u64) {
    (
        r["accepted"].as_u64().unwrap(),
        r["duplicates"].as_u64().unwrap(),
        r["rejected"].as_u64().unwrap(),
    )
}

fn kpi_eventually(app: &TestApp, kpi: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = Metrics::parse(&app.scrape()).kpi("value", kpi);
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{kpi} is {got:?}, not {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` certificates `PREFIX-0` … as NDJSON: a file big enough to be caught mid-import.
fn certs(prefix: &str, n: usize) -> Vec<u8> {
    let body: Vec<String> = (0..n)
        .map(|i| {
            cert(
                &format!("{prefix}-{i}"),
                "konbini",
                1,
                "2026-05-01T10:00:00+09:00",
            )
        })
        .collect();
    body.join("\n").into_bytes()
}

/// Waits until `what` holds (30 s at most).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn a_shift_jis_csv_dropped_into_the_inbox_is_imported_once_and_lands_in_done_with_its_reports() {
    let (dir, config, inbox) = setup(0);
    let app = start(dir.path(), &config);

    drop_file(&inbox, "konbini_0501.csv", &fixture());
    let r = report(&inbox, "done", "konbini_0501.csv");
    assert_eq!(counts(&r), (4, 0, 2), "{r}");
    let first = r["first_rejections"].to_string();
    assert!(
        first.contains("konbini_0501.csv:5") && first.contains("unknown_value"),
        "{first}"
    );
    assert!(
        first.contains("konbini_0501.csv:6") && first.contains("交付日時"),
        "{first}"
    );
    let text = std::fs::read_to_string(inbox.join("done/konbini_0501.csv.result.txt")).unwrap();
    assert!(
        text.contains("受理 / accepted: 4") && text.contains("却下 / rejected: 2"),
        "{text}"
    );
    wait_for("processing/ emptied", || {
        is_empty(&inbox.join("processing"))
    });

    // konbini 1 + 2 + 1 (default count) of 5 certificates, as `mieruka import` gives.
    kpi_eventually(&app, "konbini_issuance_rate", 80.0);
    let m = Metrics::parse(&app.scrape());
    let files = |o| {
        m.get(
            "mieruka_inbox_files_total",
            &[("inbox", "konbini"), ("outcome", o)],
        )
    };
    let lines = |o| {
        m.get(
            "mieruka_inbox_lines_total",
            &[("inbox", "konbini"), ("outcome", o)],
        )
    };
    assert_eq!(files("done"), Some(1.0));
    assert_eq!(files("failed"), Some(0.0));
    assert_eq!(lines("accepted"), Some(4.0));
    assert_eq!(lines("rejected"), Some(2.0));
    assert!(m
        .get(
            "mieruka_inbox_last_file_timestamp_seconds",
            &[("inbox", "konbini")]
        )
        .is_some());
    // The status page lists the inbox with what its last file came to.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = ureq::get(&format!("{}/", app.base))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let row = page
            .split("<tr data-inbox=\"konbini\">")
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .map(str::to_owned);
        if let Some(row) = row.filter(|r| r.contains("取込済")) {
            assert!(row.contains(">4<") && row.contains(">2<"), "{row}");
            break;
        }
        assert!(Instant::now() < deadline, "no done konbini row on the page");
        std::thread::sleep(Duration::from_millis(100));
    }
    app.stop();
}

#[test]
fn a_file_still_being_written_is_not_taken_until_it_has_settled() {
    let (dir, config, inbox) = setup(1);
    let app = start(dir.path(), &config);

    let bytes = fixture();
    let (head, rest) = bytes.split_at(bytes.len() / 2);
    let path = inbox.join("slow.csv");
    std::fs::write(&path, head).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(path.exists(), "taken before it settled");
    let mut all = head.to_vec();
    all.extend_from_slice(rest);
    std::fs::write(&path, &all).unwrap();

    let r = report(&inbox, "done", "slow.csv");
    assert_eq!(counts(&r), (4, 0, 2), "{r}");
    app.stop();
}

#[test]
fn the_same_file_dropped_again_under_another_name_counts_nothing_twice() {
    let (dir, config, inbox) = setup(0);
    let app = start(dir.path(), &config);

    drop_file(&inbox, "a.csv", &fixture());
    assert_eq!(counts(&report(&inbox, "done", "a.csv")), (4, 0, 2));
    drop_file(&inbox, "b.csv", &fixture());
    assert_eq!(counts(&report(&inbox, "done", "b.csv")), (0, 4, 2));
    kpi_eventually(&app, "konbini_issuance_rate", 80.0);
    app.stop();
}

#[test]
fn a_file_that_cannot_be_read_lands_in_failed_with_its_reason() {
    let (dir, config, inbox) = setup(0);
    let app = start(dir.path(), &config);

    drop_file(&inbox, "other.csv", b"a,b\n1,2\n");
    let r = report(&inbox, "failed", "other.csv");
    assert_eq!(r["outcome"], "failed", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("受付番号"), "{reason}");
    let text = std::fs::read_to_string(inbox.join("failed/other.csv.result.txt")).unwrap();
    assert!(text.contains("理由 / reason:"), "{text}");

    assert!(reason.starts_with("other.csv: "), "{reason}");

    // Bytes that are not Shift_JIS, the inbox's declared encoding.
    drop_file(&inbox, "garbled.csv", b"\x81\x20,\x81\x0a\n");
    let r = report(&inbox, "failed", "garbled.csv");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("not valid Shift_JIS"), "{reason}");
    assert!(inbox.join("failed/garbled.csv").exists());

    std::thread::sleep(Duration::from_millis(200));
    let m = Metrics::parse(&app.scrape());
    assert_eq!(
        m.get(
            "mieruka_inbox_files_total",
            &[("inbox", "konbini"), ("outcome", "failed")]
        ),
        Some(2.0)
    );
    app.stop();
}

#[test]
fn a_file_left_in_processing_is_imported_at_start() {
    let (dir, config, inbox) = setup(0);
    std::fs::create_dir_all(inbox.join("processing")).unwrap();
    std::fs::write(inbox.join("processing/left.csv"), fixture()).unwrap();
    let app = start(dir.path(), &config);

    assert_eq!(counts(&report(&inbox, "done", "left.csv")), (4, 0, 2));
    kpi_eventually(&app, "konbini_issuance_rate", 80.0);
    app.stop();
}

#[test]
fn the_ingest_role_produces_a_dropped_file_to_kafka_and_the_aggregators_count_it_once() {
    use crate::kafka::{wait_for_metrics, Setup};

    let s = Setup::new();
    let inbox = s.config.with_file_name("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mapping = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures/konbini.mapping.toml"),
    )
    .unwrap();
    let config = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{config}\n{mapping}\n[[inbox]]\ndir = '{}'\nname = \"konbini\"\nmapping = \"konbini\"\n\
             settle_seconds = 0\npoll_millis = 50\n",
            inbox.display()
        ),
    )
    .unwrap();
    let aggregate = s.start("aggregate", "aggregate");
    let export = s.start("export", "export");
    let ingest = s.start("ingest", "ingest");
    ingest.wait_ready(Duration::from_secs(30));

    drop_file(&inbox, "a.csv", &fixture());
    // "accepted" is "accepted for processing" in front of Kafka.
    assert_eq!(counts(&report(&inbox, "done", "a.csv")), (4, 0, 2));
    drop_file(&inbox, "b.csv", &fixture());
    assert_eq!(counts(&report(&inbox, "done", "b.csv")), (4, 0, 2));

    let counted = |m: &Metrics, outcome| {
        m.get(
            "mieruka_events_total",
            &[("source", "konbini"), ("outcome", outcome), ("reason", "")],
        )
    };
    wait_for_metrics(
        &aggregate,
        &[&aggregate, &ingest],
        Duration::from_secs(60),
        "the second file counted as duplicates",
        |m| counted(m, "accepted") == Some(4.0) && counted(m, "duplicate") == Some(4.0),
        |m| format!("{:?}", (counted(m, "accepted"), counted(m, "duplicate"))),
    );
    let rate = |m: &Metrics| m.kpi("value", "konbini_issuance_rate");
    wait_for_metrics(
        &export,
        &[&aggregate, &export],
        Duration::from_secs(60),
        "the imported figures",
        |m| rate(m) == Some(80.0),
        |m| format!("{:?}", rate(m)),
    );
    let m = ingest.scrape().unwrap();
    assert_eq!(
        m.get(
            "mieruka_inbox_lines_total",
            &[("inbox", "konbini"), ("outcome", "accepted")]
        ),
        Some(8.0)
    );
    aggregate.stop();
    export.stop();
    ingest.stop();
}

#[test]
fn a_process_killed_mid_file_imports_it_again_at_start_without_counting_a_line_twice() {
    const LINES: usize = 100_000;
    let (dir, config, inbox) = setup(0);
    let app = start(dir.path(), &config);

    let file = dir.path().join("big.ndjson");
    std::fs::write(&file, certs("big", LINES)).unwrap();
    drop_file(&inbox, "big.ndjson", &std::fs::read(&file).unwrap());
    // Killed once a first batch is committed (each batch is counted as it commits).
    let deadline = Instant::now() + Duration::from_secs(20);
    let committed = loop {
        let n = accepted(&app);
        if n > 0.0 {
            break n as u64;
        }
        assert!(Instant::now() < deadline, "no batch was committed");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mid_file = inbox.join("processing/big.ndjson").exists();
    app.kill9();

    let app = start(dir.path(), &config);
    let (accepted, duplicates, rejected) = counts(&report(&inbox, "done", "big.ndjson"));
    assert_eq!(rejected, 0);
    if mid_file {
        // What the killed process committed comes again as duplicates.
        assert!(duplicates >= committed, "{duplicates} < {committed}");
    }
    assert_eq!(
        accepted + duplicates,
        LINES as u64,
        "every line once in the report"
    );
    app.stop();

    // Every line is in the store, once: importing the file again finds only duplicates.
    let out = std::process::Command::new(bin())
        .arg("import")
        .arg(&file)
        .arg("--db")
        .arg(dir.path().join("m.db"))
        .arg("--config")
        .arg(&config)
        .env("MIERUKA_LOG", "warn")
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains(&format!("0 accepted, {LINES} duplicate, 0 rejected")),
        "{out}"
    );
}

#[test]
fn an_event_of_a_source_the_inbox_may_not_send_is_refused_as_not_allowed() {
    let (dir, config, inbox) = setup(0);
    let app = start(dir.path(), &config);

    let lines = [
        cert("nd-1", "konbini", 1, "2026-05-01T10:00:00+09:00"),
        snapshot(
            "nd-2",
            "card",
            "mynumber_card.holders_snapshot",
            "holders",
            10,
            "2026-05-01T10:00:00+09:00",
        ),
    ];
    drop_file(&inbox, "mixed.ndjson", lines.join("\n").as_bytes());
    let r = report(&inbox, "done", "mixed.ndjson");
    assert_eq!(counts(&r), (1, 0, 1), "{r}");
    let first = r["first_rejections"].to_string();
    assert!(
        first.contains("mixed.ndjson:2") && first.contains("not_allowed"),
        "{first}"
    );
    app.stop();
}

/// Events of `konbini` the app has accepted into its store.
fn accepted(app: &TestApp) -> f64 {
    Metrics::parse(&app.scrape())
        .get(
            "mieruka_events_total",
            &[
                ("source", "konbini"),
                ("outcome", "accepted"),
                ("reason", ""),
            ],
        )
        .unwrap_or(0.0)
}

#[test]
fn a_file_dropped_again_under_the_name_of_one_being_imported_waits_and_replaces_nothing() {
    const LINES: usize = 200_000;
    let (dir, config, inbox) = setup(0);
    // Two replicas on the folder: while one imports, the other is free to claim.
    let a = start(dir.path(), &config);
    let b = replica(dir.path(), &config, "b.db");

    let big = certs("first", LINES);
    drop_file(&inbox, "day.ndjson", &big);
    let in_flight = inbox.join("processing/day.ndjson");
    wait_for("the first file claimed", || in_flight.exists());
    drop_file(&inbox, "day.ndjson", &certs("second", 3));
    // Many polls later the second still waits in the folder, the first still imports.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        inbox.join("day.ndjson").exists(),
        "the second file was claimed while the first was in processing/"
    );
    assert!(
        in_flight.exists(),
        "the first file was imported before the test could drop the second: make it bigger"
    );
    assert_eq!(
        std::fs::metadata(&in_flight).unwrap().len(),
        big.len() as u64
    );

    assert_eq!(
        counts(&report(&inbox, "done", "day.ndjson")),
        (LINES as u64, 0, 0)
    );
    assert_eq!(std::fs::read(inbox.join("done/day.ndjson")).unwrap(), big);
    // Then the second, under the next free name in done/.
    assert_eq!(counts(&report(&inbox, "done", "day.ndjson.1")), (3, 0, 0));
    wait_for("processing/ emptied", || {
        is_empty(&inbox.join("processing"))
    });
    assert_eq!(accepted(&a) + accepted(&b), (LINES + 3) as f64);
    a.stop();
    b.stop();
}

#[test]
fn a_replica_started_while_another_imports_a_file_leaves_that_file_to_it() {
    const LINES: usize = 300_000;
    let (dir, config, inbox) = setup(0);
    let first = start(dir.path(), &config);

    drop_file(&inbox, "big.ndjson", &certs("big", LINES));
    let in_flight = inbox.join("processing/big.ndjson");
    wait_for("the file claimed", || in_flight.exists());
    let second = replica(dir.path(), &config, "second.db");
    assert!(
        in_flight.exists(),
        "the first replica finished before the second started: make the file bigger"
    );

    assert_eq!(
        counts(&report(&inbox, "done", "big.ndjson")),
        (LINES as u64, 0, 0)
    );
    // Past the lease's stale time (20 polls of 50 ms) the second has still taken nothing.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(accepted(&second), 0.0);
    assert!(!inbox.join("done/big.ndjson.1").exists());
    assert_eq!(accepted(&first), LINES as f64);
    first.stop();
    second.stop();
}

#[test]
fn a_running_replica_takes_over_the_file_of_one_killed_mid_file() {
    const LINES: usize = 200_000;
    let (dir, config, inbox) = setup(0);
    let a = start(dir.path(), &config);
    let b = replica(dir.path(), &config, "b.db");

    drop_file(&inbox, "big.ndjson", &certs("big", LINES));
    // Whichever replica claimed it names itself in the lease: kill that one.
    let lease = inbox.join("processing/.big.ndjson.lease");
    let mut holder = String::new();
    wait_for("a lease naming its holder", || {
        holder = std::fs::read_to_string(&lease).unwrap_or_default();
        holder.contains("holder: ")
    });
    let pid = |app: &TestApp| format!(" {} ", app.child.id());
    let (killed, survivor) = if holder.contains(&pid(&a)) {
        (a, b)
    } else {
        assert!(holder.contains(&pid(&b)), "{holder}");
        (b, a)
    };
    killed.kill9();
    assert!(
        inbox.join("processing/big.ndjson").exists(),
        "the file was imported before its holder was killed: make it bigger"
    );

    // The survivor sees the lease stop moving and imports the file in full: its own
    // store had none of it.
    let r = report(&inbox, "done", "big.ndjson");
    assert_eq!(counts(&r), (LINES as u64, 0, 0), "{r}");
    assert_eq!(accepted(&survivor), LINES as f64);
    wait_for("processing/ emptied", || {
        is_empty(&inbox.join("processing"))
    });
    survivor.stop();
}

#[test]
fn a_file_committed_before_a_stop_is_only_moved_at_start_not_imported_again() {
    let (dir, config, inbox) = setup(0);
    // What a process killed between writing the reports and moving the file leaves.
    let processing = inbox.join("processing");
    std::fs::create_dir_all(&processing).unwrap();
    std::fs::write(processing.join("day.csv"), fixture()).unwrap();
    let planted = r#"{"outcome": "done", "accepted": 4, "duplicates": 0, "rejected": 2}"#;
    std::fs::write(processing.join(".day.csv.result.json"), planted).unwrap();
    std::fs::write(
        processing.join(".day.csv.result.txt"),
        "受理 / accepted: 4\n",
    )
    .unwrap();
    std::fs::write(processing.join(".day.csv.committed"), "done/day.csv").unwrap();
    let app = start(dir.path(), &config);

    assert_eq!(counts(&report(&inbox, "done", "day.csv")), (4, 0, 2));
    assert_eq!(
        std::fs::read_to_string(inbox.join("done/day.csv.result.json")).unwrap(),
        planted,
        "the report was written again: the file was imported again"
    );
    assert!(inbox.join("done/day.csv.result.txt").exists());
    assert_eq!(
        std::fs::read(inbox.join("done/day.csv")).unwrap(),
        fixture()
    );
    wait_for("processing/ emptied", || is_empty(&processing));
    assert_eq!(accepted(&app), 0.0, "the committed file was imported again");
    app.stop();
}

/// The fenced block of `lang` that follows `heading` in the README.
fn readme_block(heading: &str, lang: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split(heading).nth(1).unwrap();
    let block = section.split(&format!("```{lang}\n")).nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

/// Whether `line` is `want`, where each `…` of `want` stands for any text.
fn matches_elided(want: &str, line: &str) -> bool {
    let parts: Vec<&str> = want.split('…').collect();
    if parts.len() == 1 {
        return want == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || !line.ends_with(last) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_readme_worked_example_of_an_inbox_runs_as_written() {
    const HEADING: &str = "### A line system that drops files";
    const DIR: &str = "/srv/mieruka/inbox/konbini";
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox/konbini");
    std::fs::create_dir_all(&inbox).unwrap();
    let here = |text: &str| text.replace(DIR, &inbox.display().to_string());

    // The README's [[inbox]] after the test config (which has the konbini mapping); a
    // shorter settle time than the default's 10 s is the one change.
    let config = write_config(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &here(&readme_block(HEADING, "toml"));
    text += "settle_seconds = 1\npoll_millis = 50\n";
    std::fs::write(&config, text).unwrap();
    let app = start(dir.path(), &config);

    // The gateway's copy under a .part name and its rename, as the README writes them.
    let script = here(&readme_block(HEADING, "sh"));
    let (gateway, expected) = script.split_once("# ~10 s later").unwrap();
    let gateway: String = gateway
        .lines()
        .filter(|l| !l.starts_with("mieruka "))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("konbini_sjis.csv"), fixture()).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&gateway)
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{gateway}");

    report(&inbox, "done", "konbini_0501.csv");
    let (cat, shown) = expected
        .split_once('\n')
        .unwrap()
        .1
        .split_once('\n')
        .unwrap();
    let path = cat.strip_prefix("cat ").unwrap();
    let got = std::fs::read_to_string(path).unwrap();
    let want: Vec<&str> = shown
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(want.len(), got.len(), "{got:#?}");
    for (w, g) in want.iter().zip(&got) {
        assert!(matches_elided(w, g), "README: {w}\nactual: {g}");
    }
    app.stop();
}

#[test]
fn a_process_restarted_on_the_same_machine_resumes_its_file_at_once() {
    const LINES: usize = 100_000;
    let (dir, config, inbox) = setup(0);
    // Polls of a second: a lease whose beats stopped is stale only after 20 s.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("poll_millis = 50", "poll_millis = 1000"),
    )
    .unwrap();
    let app = start(dir.path(), &config);

    drop_file(&inbox, "big.ndjson", &certs("big", LINES));
    let lease = inbox.join("processing/.big.ndjson.lease");
    wait_for("the file claimed", || lease.exists());
    app.kill9();
    assert!(inbox.join("processing/big.ndjson").exists());

    // The lease names a process of this machine that is gone: no 20 s wait.
    let restarted = Instant::now();
    let app = start(dir.path(), &config);
    let pid = format!(" {} ", app.child.id());
    wait_for("the restarted process holding the file", || {
        std::fs::read_to_string(&lease).is_ok_and(|l| l.contains(&pid))
            || inbox.join("done/big.ndjson").exists()
    });
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "resumed only after {:?}",
        restarted.elapsed()
    );
    let (accepted, duplicates, _) = counts(&report(&inbox, "done", "big.ndjson"));
    assert_eq!(accepted + duplicates, LINES as u64);
    app.stop();
}
