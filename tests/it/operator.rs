//! An operator's day on `standalone` (issue 19): every refusal is findable with
//! `mieruka rejected` whatever path it came by, a snapshot is corrected the way the
//! refusals say, and requests refused whole are counted and logged with their peer.
//! (The production roles' side is in `kafka.rs`.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// `mieruka rejected --db DB ARGS…` on the SQLite store: exit code and standard output.
fn rejected(db: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("rejected")
        .arg("--db")
        .arg(db)
        .args(args)
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_CONFIG")
        // A DATABASE_URL of the environment would point the listing at PostgreSQL.
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The test config with an NDJSON inbox of the konbini line system.
fn config_with_inbox(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = write_config(dir);
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[inbox]]\ndir = '{}'\nname = \"drop\"\nsources = [\"konbini\"]\nsettle_seconds = 0\npoll_millis = 50\n",
        inbox.display()
    ));
    std::fs::write(&config, text).unwrap();
    (config, inbox)
}

#[test]
fn every_refusal_of_standalone_is_listed_filtered_and_summed_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let (config, inbox) = config_with_inbox(dir.path());
    let app = TestApp::start_configured(&db, &config, Stdio::inherit(), "warn");
    let at = "2026-05-01T10:00:00+09:00";

    // HTTP: a wrong value, and a personal number in a field (the id passed the guard).
    let personal = r#"{"event_id":"k-pn","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","memo":"1234-5678-9018"}}"#;
    let reply = app.post_events(
        KONBINI_TOKEN,
        &[cert("k-bad", "conbini", 1, at), personal.to_owned()],
    );
    assert_eq!(reply["rejected"][1]["event_id"], "k-pn", "{reply}");
    // An import beside the running process, and a file dropped into its inbox.
    let file = dir.path().join("counter.ndjson");
    std::fs::write(
        &file,
        format!("{}\nnot json\n", cert("c-1", "counter", 1, at)),
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("import")
        .arg(&file)
        .arg("--db")
        .arg(&db)
        .arg("--config")
        .arg(&config)
        .env("MIERUKA_LOG", "warn")
        .env_remove("KAFKA_BROKERS")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let part = inbox.join(".drop.ndjson.part");
    std::fs::write(&part, cert("d-1", "postal", 1, at)).unwrap();
    std::fs::rename(&part, inbox.join("drop.ndjson")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !inbox.join("done").join("drop.ndjson").exists() {
        assert!(Instant::now() < deadline, "the inbox did not take its file");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Everything is in the one table, newest first, with when it was received.
    let (code, all) = rejected(&db, &[]);
    assert_eq!(code, 0, "{all}");
    for needle in [
        "index 0 [unknown_value] data.channel",
        "index 1 [personal_number] data.memo",
        "event_id k-pn",
        "counter.ndjson:2 [not_json]",
        "drop.ndjson:1 [unknown_value]",
        "+09:00 ",
        "4 rejected in all (4 newest listed above), by source and reason:",
    ] {
        assert!(all.contains(needle), "{needle:?} not in:\n{all}");
    }
    assert!(
        !all.contains("5678"),
        "the personal number is masked:\n{all}"
    );

    // Filtered by source, reason and time, with the summary of what matched.
    let (_, values) = rejected(&db, &["--reason", "unknown_value"]);
    assert!(values.contains("index 0 [unknown_value]"), "{values}");
    assert!(values.contains("drop.ndjson:1 [unknown_value]"), "{values}");
    assert!(
        !values.contains("not_json") && !values.contains("k-pn"),
        "{values}"
    );
    assert!(values.contains("2 rejected in all"), "{values}");
    let (_, konbini) = rejected(&db, &["--source", "konbini", "--reason", "unknown_value"]);
    assert!(
        konbini.contains("event_id k-bad") && !konbini.contains("drop"),
        "{konbini}"
    );
    let summary = konbini
        .lines()
        .find(|l| l.trim_start().starts_with("konbini"));
    let summary: Vec<&str> = summary.unwrap_or_default().split_whitespace().collect();
    assert_eq!(summary[..3], ["konbini", "unknown_value", "1"], "{konbini}");
    let (_, recent) = rejected(&db, &["--since", "1h", "--limit", "1"]);
    assert!(
        recent.contains("4 rejected in all (1 newest listed above)"),
        "{recent}"
    );
    let (_, none) = rejected(&db, &["--since", "2099-01-01T00:00:00+09:00"]);
    assert!(
        none.contains("no rejected events since 2099-01-01 00:00:00+09:00"),
        "{none}"
    );
    let (code, bad) = rejected(&db, &["--reason", "bad_time"]);
    assert_eq!(code, 1, "{bad}");
    assert!(
        bad.contains("expected one of: not_json, personal_number"),
        "{bad}"
    );
    app.stop();
}

#[test]
fn a_snapshot_is_corrected_the_way_its_refusals_say() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path(), &dir.path().join("m.db"));
    let at = "2026-05-01T00:00:00+09:00";
    let holders = |id: &str, n: u64| {
        snapshot(
            id,
            "card",
            "mynumber_card.holders_snapshot",
            "holders",
            n,
            at,
        )
    };
    let population = snapshot(
        "p-1",
        "juki",
        "population.snapshot",
        "population",
        125_000,
        at,
    );
    app.post_events(CARD_TOKEN, &[holders("h-0501", 100_000), population]);
    let rate = |app: &TestApp| {
        app.metrics_after_commit()
            .kpi("value", "mynumber_card_holding_rate")
    };
    assert_eq!(rate(&app), Some(80.0));

    // The registry's figure was wrong: re-sent under its id, then voided. Both refused,
    // both pointing at the same way out — never at the path refused next.
    let void = r#"{"event_id":"v-1","source":"card","type":"event.voided","occurred_at":"2026-05-02T00:00:00+09:00","data":{},"voids":"h-0501"}"#;
    let reply = app.post_events(CARD_TOKEN, &[holders("h-0501", 105_000), void.to_owned()]);
    let way_out = "a snapshot is corrected by another snapshot under a new event_id";
    for (i, reason) in [(0, "conflicting_duplicate"), (1, "void_not_allowed")] {
        let r = &reply["rejected"][i];
        assert_eq!(r["reason"], reason, "{reply}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains(way_out), "{message}");
        assert!(!message.contains("event.voided"), "{message}");
    }
    assert_eq!(rate(&app), Some(80.0));

    // What they say: the same instant under a greater id (the suffix -r1) stands.
    let reply = app.post_events(CARD_TOKEN, &[holders("h-0501-r1", 105_000)]);
    assert_eq!(reply["accepted"], 1, "{reply}");
    assert_eq!(rate(&app), Some(84.0));
    // A smaller id at that instant is kept but does not stand: the choice is the ids',
    // not the arrival order's.
    let reply = app.post_events(CARD_TOKEN, &[holders("h-0500", 1)]);
    assert_eq!(reply["accepted"], 1, "{reply}");
    assert_eq!(rate(&app), Some(84.0));
    app.stop();
}

#[test]
fn requests_refused_whole_are_counted_by_reason_and_token_and_logged_with_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("standalone.log");
    let config = write_config(dir.path());
    let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
    let app = TestApp::start_configured(&dir.path().join("m.db"), &config, stderr, "warn");
    let one = cert("k-1", "konbini", 1, "2026-05-01T10:00:00+09:00");
    assert_eq!(app.post(None, "application/x-ndjson", &one).0, 401);
    let rotated = "t-konbini-rotated-away";
    assert_eq!(app.post(Some(rotated), "application/x-ndjson", &one).0, 401);
    assert_eq!(app.post(Some(rotated), "application/x-ndjson", &one).0, 401);
    assert_eq!(app.post(Some(KONBINI_TOKEN), "text/csv", &one).0, 415);
    assert_eq!(app.post(Some(CARD_TOKEN), "application/json", "[{").0, 400);
    let big = one.repeat(1 + 1_048_576 / one.len());
    assert_eq!(
        app.post(Some(KONBINI_TOKEN), "application/x-ndjson", &big)
            .0,
        413
    );
    assert_eq!(
        app.post(Some(KONBINI_TOKEN), "application/x-ndjson", &one)
            .0,
        200
    );

    let m = Metrics::parse(&app.scrape());
    let refused = |reason: &str, token: &str| {
        m.get(
            "mieruka_http_refused_total",
            &[("reason", reason), ("token", token)],
        )
    };
    assert_eq!(refused("missing_token", "unknown"), Some(1.0));
    assert_eq!(refused("unknown_token", "unknown"), Some(2.0));
    assert_eq!(refused("content_type", "konbini"), Some(1.0));
    assert_eq!(refused("not_framed", "card"), Some(1.0));
    assert_eq!(refused("too_large", "konbini"), Some(1.0));
    assert_eq!(refused("timeout", "card"), Some(0.0), "series start at 0");
    let auth = |reason: &str| {
        m.get(
            "mieruka_auth_failures_total",
            &[("token", "unknown"), ("reason", reason)],
        )
    };
    assert_eq!(
        (auth("missing_token"), auth("unknown_token")),
        (Some(1.0), Some(2.0))
    );
    app.stop();

    let text = without_colours(&std::fs::read_to_string(&log).unwrap());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Refused a request"))
        .collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines.iter().all(|l| l.contains("peer=127.0.0.1:")),
        "each names its peer:\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("token=konbini") && l.contains("reason=content_type")),
        "{text}"
    );
    assert!(
        !text.contains(rotated) && !text.contains(KONBINI_TOKEN),
        "never the secret:\n{text}"
    );
}

/// `text` without terminal colour codes (`ESC [ … m`), whichever way the log was written.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_shipped_configs_hold_every_key_the_readme_calls_required() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for role in ["ingest", "aggregate", "export"] {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `mieruka {role}` |")))
            .unwrap_or_else(|| panic!("no row for {role} in the README's role table"));
        let needs = row.split('|').nth(2).unwrap_or_default();
        let path = root.join(format!("deploy/config/{role}.toml"));
        let config: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut checked = 0;
        // Code spans: `[section] key, key/alternative`, `[[array]]`, `[a.b."<name>"]`.
        for span in needs.split('`').skip(1).step_by(2) {
            let missing = |what: &str| panic!("{}: the README requires {what}", path.display());
            if let Some(array) = span.strip_prefix("[[").and_then(|s| s.strip_suffix("]]")) {
                let entries = config.get(array).and_then(toml::Value::as_array);
                if entries.is_none_or(Vec::is_empty) {
                    missing(span);
                }
            } else if let Some((section, keys)) =
                span.strip_prefix('[').and_then(|s| s.split_once(']'))
            {
                // A table per name (`[kafka.topic_allow."<topic>"]`): at least one.
                let path: Vec<&str> = section
                    .split('.')
                    .take_while(|p| !p.starts_with('"'))
                    .collect();
                let table = path
                    .iter()
                    .try_fold(&config, |t, p| t.get(*p).and_then(toml::Value::as_table))
                    .unwrap_or_else(|| missing(span));
                for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    if !key.split('/').any(|k| table.contains_key(k)) {
                        missing(&format!("{key} in [{section}]"));
                    }
                }
            } else {
                continue;
            }
            checked += 1;
        }
        assert!(checked >= 1, "{role}: no required key found in {row}");
    }
}
