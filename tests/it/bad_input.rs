//! The catalogue of bad input (`docs/bad-input.md`), class by class, against the real
//! binary: each `class("…")` below is the test of the class of that id, and
//! `every_class_of_the_catalogue_has_a_test` keeps the page and the tests in step.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Names the catalogue class the code beside it tests (and returns it for messages).
pub fn class(id: &str) -> &str {
    id
}

const DX_TOKEN: &str = "t-dx";
const PORTAL_TOKEN: &str = "t-portal";

/// A standalone with small limits, logging at DEBUG into `dir/stderr.log`.
fn server(dir: &Path) -> (TestApp, PathBuf, PathBuf) {
    let config = dir.join("bad-input.toml");
    std::fs::write(
        &config,
        format!(
            r#"
refresh_seconds = 1
max_body_bytes = 1048576
max_events_per_request = 100
body_timeout_seconds = 2
idle_timeout_seconds = 4

[[tokens]]
name = "konbini"
token = "{KONBINI_TOKEN}"
sources = ["konbini"]
types = ["certificate.issued"]

[[tokens]]
name = "card"
token = "{CARD_TOKEN}"
sources = ["card", "juki"]
types = ["mynumber_card.issued", "mynumber_card.holders_snapshot", "population.snapshot", "event.voided"]

[[tokens]]
name = "dx"
token = "{DX_TOKEN}"
sources = ["dx_office"]
types = ["bpr.hours_saved"]

[[tokens]]
name = "portal"
token = "{PORTAL_TOKEN}"
sources = ["portal"]
types = ["procedure.catalog_snapshot"]
"#
        ),
    )
    .unwrap();
    let db = dir.join("m.db");
    let log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let app = TestApp::start_configured(&db, &config, Stdio::from(stderr), "debug");
    (app, db, log)
}

fn ev(id: &str, source: &str, ty: &str, at: &str, data: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","source":"{source}","type":"{ty}","occurred_at":"{at}","data":{data}}}"#
    )
}

fn konbini(id: &str, data: &str) -> String {
    ev(
        id,
        "konbini",
        "certificate.issued",
        "2026-05-01T10:00:00+09:00",
        data,
    )
}

fn hours(id: &str, hours: &str) -> String {
    ev(
        id,
        "dx_office",
        "bpr.hours_saved",
        "2026-05-01T10:00:00+09:00",
        &format!(r#"{{"hours":{hours},"initiative":"bpr-1"}}"#),
    )
}

/// Posts NDJSON bytes and returns the reply, expecting 200.
fn post_ok(app: &TestApp, token: &str, body: &[u8]) -> serde_json::Value {
    let (status, reply) = app.post_bytes(Some(token), "application/x-ndjson", body);
    assert_eq!(status, 200, "{reply}");
    reply
}

/// Posts one line; returns its single rejection (reason, field, message, whole entry).
fn refused(
    app: &TestApp,
    token: &str,
    line: &[u8],
    id: &str,
) -> (String, String, serde_json::Value) {
    let reply = post_ok(app, token, line);
    let rejected = reply["rejected"].as_array().unwrap();
    assert_eq!(
        (reply["accepted"].as_u64(), rejected.len()),
        (Some(0), 1),
        "{id}: {reply}"
    );
    let r = rejected[0].clone();
    (
        r["reason"].as_str().unwrap_or("").to_owned(),
        r["field"].as_str().unwrap_or("").to_owned(),
        r,
    )
}

fn accepted(app: &TestApp, token: &str, lines: &[String], id: &str) {
    let reply = post_ok(app, token, lines.join("\n").as_bytes());
    assert_eq!(
        reply["accepted"].as_u64(),
        Some(lines.len() as u64),
        "{id}: {reply}"
    );
}

/// `mieruka rejected` on the store: the kept rows as the operator sees them.
fn rejected_rows(db: &Path) -> String {
    let out = Command::new(bin())
        .args(["rejected", "--limit", "1000", "--db"])
        .arg(db)
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_CONFIG")
        // A DATABASE_URL of the environment (the Kafka tests may use one) would point
        // the listing at PostgreSQL.
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_class_of_the_catalogue_has_a_test() {
    let catalogue = include_str!("../../docs/bad-input.md");
    let tests = [include_str!("bad_input.rs"), include_str!("kafka.rs")].concat();
    let ids: Vec<&str> = catalogue
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(ids.len() >= 30, "{} classes", ids.len());
    let missing: Vec<&&str> = ids
        .iter()
        .filter(|id| !tests.contains(&format!("class(\"{id}\")")))
        .collect();
    assert!(missing.is_empty(), "classes without a test: {missing:?}");
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "a class id is listed twice");
}

#[test]
fn requests_out_of_bounds_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (app, db, _) = server(dir.path());
    let one = konbini("k-1", r#"{"channel":"konbini","certificate":"juminhyo"}"#);

    let id = class("http-no-token");
    let (status, body) = app.post(None, "application/x-ndjson", &one);
    assert_eq!(status, 401, "{id}: {body}");
    let id = class("http-unknown-token");
    let (status, body) = app.post(Some("rotated-last-week"), "application/x-ndjson", &one);
    assert_eq!(status, 401, "{id}: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown bearer token"),
        "{id}"
    );

    let id = class("http-content-type");
    let (status, body) = app.post(Some(KONBINI_TOKEN), "text/plain", &one);
    assert_eq!(status, 415, "{id}: {body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("application/x-ndjson") && msg.contains("application/json"),
        "{id}: {msg}"
    );

    let id = class("http-body-too-large");
    let big = one.repeat(1 + 1_048_576 / one.len());
    let (status, body) = app.post(Some(KONBINI_TOKEN), "application/x-ndjson", &big);
    assert_eq!(status, 413, "{id}: {body}");

    let id = class("http-too-many-events");
    let tiny = "1\n".repeat(101);
    let (status, body) = app.post(Some(KONBINI_TOKEN), "application/x-ndjson", &tiny);
    assert_eq!(status, 413, "{id}: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("more than 100 events"),
        "{id}: {body}"
    );
    let (status, body) = app.post(
        Some(KONBINI_TOKEN),
        "application/json",
        &format!("[{}]", ["1"; 101].join(",")),
    );
    assert_eq!(status, 413, "{id}: {body}");

    let id = class("http-array-broken");
    for broken in ["[{\"a\": 1},", "{\"event_id\":\"x\"}", "[1] [2]"] {
        let (status, body) = app.post(Some(KONBINI_TOKEN), "application/json", broken);
        assert_eq!(status, 400, "{id}: {broken}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("at byte"),
            "{id}: {body}"
        );
    }

    let id = class("http-bom");
    let body = format!(
        "\u{FEFF}{}\n\u{FEFF}{}",
        konbini("b-1", r#"{"channel":"konbini","certificate":"juminhyo"}"#),
        konbini("b-2", r#"{"channel":"konbini","certificate":"juminhyo"}"#)
    );
    let reply = post_ok(&app, KONBINI_TOKEN, body.as_bytes());
    assert_eq!(reply["accepted"], 2, "{id}: {reply}");
    let (status, reply) = app.post(
        Some(KONBINI_TOKEN),
        "application/json",
        &format!(
            "\u{FEFF}[{}]",
            konbini("b-3", r#"{"channel":"konbini","certificate":"juminhyo"}"#)
        ),
    );
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (200, Some(1)),
        "{id}: {reply}"
    );

    let id = class("http-crlf-blank-lines");
    let body = format!(
        "{}\r\n\r\n   \r\nnot json\r\n{}\r\n",
        konbini("c-1", r#"{"channel":"konbini","certificate":"juminhyo"}"#),
        konbini("c-2", r#"{"channel":"konbini","certificate":"juminhyo"}"#)
    );
    let reply = post_ok(&app, KONBINI_TOKEN, body.as_bytes());
    assert_eq!(reply["accepted"], 2, "{id}: {reply}");
    assert_eq!(reply["rejected"][0]["line"], 4, "{id}: {reply}");

    // What was refused whole left nothing behind: only the one not-JSON line is kept.
    app.stop();
    let rows = rejected_rows(&db);
    assert_eq!(rows.matches("[not_json]").count(), 1, "{rows}");
}

#[test]
fn stalled_clients_hold_nothing_for_long() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _, _) = server(dir.path());
    let addr = app.base.trim_start_matches("http://").to_owned();

    let id = class("http-stalled-body");
    let started = Instant::now();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KONBINI_TOKEN}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{{\"event_i"
    )
    .unwrap();
    // Meanwhile the server answers others.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(app.post(None, "application/x-ndjson", "{}").0, 401, "{id}");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let waited = started.elapsed();
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{id}: {reply}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "{id}: held for {waited:?}"
    );

    let id = class("http-stalled-headers");
    let started = Instant::now();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"POST /v1/eve").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(app.post(None, "application/x-ndjson", "{}").0, 401, "{id}");
    let mut buf = Vec::new();
    // The connection ends (EOF or a reset) when the server drops it.
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(10),
        "{id}: dropped after {waited:?}"
    );
    app.stop();
}

#[test]
fn malformed_events_are_refused_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let (app, db, _) = server(dir.path());
    let good = |id: &str| konbini(id, r#"{"channel":"konbini","certificate":"juminhyo"}"#);

    let id = class("event-not-json");
    for bad in ["this is not json", "{\"broken\": ", "NaN", "{'a': 1}"] {
        let body = format!(
            "{}\n{bad}\n{}",
            good(&format!("nj-a-{}", bad.len())),
            good(&format!("nj-b-{}", bad.len()))
        );
        let reply = post_ok(&app, KONBINI_TOKEN, body.as_bytes());
        assert_eq!(reply["accepted"], 2, "{id}: {reply}");
        assert_eq!(reply["rejected"][0]["reason"], "not_json", "{id}: {reply}");
        assert_eq!(reply["rejected"][0]["line"], 2, "{id}: {reply}");
        assert!(
            reply["rejected"][0]["message"]
                .as_str()
                .unwrap()
                .contains("at byte"),
            "{id}: {reply}"
        );
    }

    let id = class("event-not-utf8");
    let latin1 = b"{\"event_id\":\"caf\xe9\"}";
    let (reason, _, r) = refused(&app, KONBINI_TOKEN, latin1, id);
    assert_eq!(reason, "not_json", "{id}");
    assert!(
        r["message"].as_str().unwrap().contains("not UTF-8"),
        "{id}: {r}"
    );

    let id = class("event-utf16");
    let utf16: Vec<u8> = good("u16-1")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let (reason, _, _) = refused(&app, KONBINI_TOKEN, &utf16, id);
    assert_eq!(reason, "not_json", "{id}");

    let id = class("event-control-characters");
    let tab = konbini(
        "cc-1",
        "{\"channel\":\"kon\tbini\",\"certificate\":\"juminhyo\"}",
    );
    assert_eq!(
        refused(&app, KONBINI_TOKEN, tab.as_bytes(), id).0,
        "not_json",
        "{id}"
    );
    assert_eq!(
        refused(&app, KONBINI_TOKEN, b"\0\0\0", id).0,
        "not_json",
        "{id}"
    );
    let bell = konbini(
        "cc\\u0007-2",
        r#"{"channel":"konbini","certificate":"juminhyo"}"#,
    );
    let (reason, field, _) = refused(&app, KONBINI_TOKEN, bell.as_bytes(), id);
    assert_eq!(
        (reason.as_str(), field.as_str()),
        ("out_of_bounds", "event_id"),
        "{id}"
    );

    let id = class("event-deep-nesting");
    let deep = konbini(
        "dn-1",
        &format!(r#"{{"x":{}{}}}"#, "[".repeat(100), "]".repeat(100)),
    );
    let (reason, _, r) = refused(&app, KONBINI_TOKEN, deep.as_bytes(), id);
    assert_eq!(reason, "not_json", "{id}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 64 levels"),
        "{id}: {r}"
    );

    let id = class("event-duplicate-key");
    for (line, at) in [
        (konbini("dk-1", r#"{"channel":"konbini","certificate":"juminhyo","count":1,"count":9}"#), "data.count"),
        (konbini("dk-2", r#"{"channel":"konbini","certificate":"juminhyo","c\u006funt":1,"count":9}"#), "data.count"),
        (r#"{"event_id":"dk-3","event_id":"dk-4","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo"}}"#.to_owned(), "event_id"),
        (konbini("dk-5", r#"{"x":{"y":[{"z":1,"z":2}]}}"#), "data.x.y[0].z"),
    ] {
        let (reason, field, _) = refused(&app, KONBINI_TOKEN, line.as_bytes(), id);
        assert_eq!((reason.as_str(), field.as_str()), ("wrong_type", at), "{id}: {line}");
    }

    let id = class("event-not-an-object");
    for (line, kind) in [
        ("[1, 2]", "an array"),
        ("42", "an integer"),
        ("\"x\"", "a string"),
    ] {
        let (reason, _, r) = refused(&app, KONBINI_TOKEN, line.as_bytes(), id);
        assert_eq!(reason, "wrong_type", "{id}: {line}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains(&format!("not {kind}")),
            "{id}: {r}"
        );
    }

    let id = class("event-schema");
    for (line, want, at) in [
        (r#"{"event_id":"s-1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo"},"extra":1}"#.to_owned(), "unknown_field", "extra"),
        (konbini("s-2", r#"{"channel":"konbini","certificate":"juminhyo","memo":"x"}"#), "unknown_field", "data.memo"),
        (ev("s-3", "konbini", "certificate.issud", "2026-05-01T10:00:00+09:00", "{}"), "unknown_type", "type"),
        (konbini("s-4", r#"{"channel":"conbini","certificate":"juminhyo"}"#), "unknown_value", "data.channel"),
        (konbini("s-5", r#"{"certificate":"juminhyo"}"#), "missing_field", "data.channel"),
    ] {
        let (reason, field, _) = refused(&app, KONBINI_TOKEN, line.as_bytes(), id);
        assert_eq!((reason.as_str(), field.as_str()), (want, at), "{id}: {line}");
    }

    let id = class("event-wrong-types");
    for (data, at, got) in [
        (
            r#"{"channel":"konbini","certificate":"juminhyo","count":"5"}"#,
            "data.count",
            "a string",
        ),
        (
            r#"{"channel":"konbini","certificate":"juminhyo","count":null}"#,
            "data.count",
            "null",
        ),
        (
            r#"{"channel":"konbini","certificate":"juminhyo","count":{}}"#,
            "data.count",
            "an object",
        ),
        (
            r#"{"channel":1,"certificate":"juminhyo"}"#,
            "data.channel",
            "an integer",
        ),
    ] {
        let (reason, field, r) = refused(&app, KONBINI_TOKEN, konbini("wt", data).as_bytes(), id);
        assert_eq!(
            (reason.as_str(), field.as_str()),
            ("wrong_type", at),
            "{id}: {data}"
        );
        assert!(r["message"].as_str().unwrap().contains(got), "{id}: {r}");
    }
    let line = r#"{"event_id":"wt-2","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":[]}"#;
    let (reason, field, r) = refused(&app, KONBINI_TOKEN, line.as_bytes(), id);
    assert_eq!(
        (reason.as_str(), field.as_str()),
        ("wrong_type", "data"),
        "{id}"
    );
    assert!(
        r["message"].as_str().unwrap().contains("an array"),
        "{id}: {r}"
    );

    let id = class("event-empty-id");
    for empty in ["", "   "] {
        let (reason, field, _) = refused(&app, KONBINI_TOKEN, good(empty).as_bytes(), id);
        assert_eq!(
            (reason.as_str(), field.as_str()),
            ("empty_id", "event_id"),
            "{id}"
        );
    }

    let id = class("event-huge-id");
    let huge = "i".repeat(10_000);
    let reply = post_ok(&app, KONBINI_TOKEN, good(&huge).as_bytes());
    assert_eq!(reply["rejected"][0]["reason"], "out_of_bounds", "{id}");
    assert_eq!(reply["rejected"][0]["field"], "event_id", "{id}");
    assert!(
        reply.to_string().len() < 1_000,
        "{id}: the reply quotes the id"
    );

    let id = class("event-huge-line");
    let line = konbini(
        "hl-1",
        &format!(
            r#"{{"channel":"konbini","certificate":"juminhyo","memo":"{}"}}"#,
            "m".repeat(900_000)
        ),
    );
    let reply = post_ok(&app, KONBINI_TOKEN, line.as_bytes());
    assert_eq!(reply["rejected"][0]["reason"], "unknown_field", "{id}");
    assert!(
        reply.to_string().len() < 1_000,
        "{id}: the reply quotes the line"
    );

    app.stop();
    let rows = rejected_rows(&db);
    assert!(
        rows.contains("[cut: "),
        "{}: the kept text is cut",
        class("event-huge-line")
    );
    assert!(rows.len() < 200_000, "{} bytes kept", rows.len());
}

#[test]
fn numbers_have_a_domain() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _, _) = server(dir.path());
    let cert = |id: &str, count: &str| {
        konbini(
            id,
            &format!(r#"{{"channel":"konbini","certificate":"juminhyo","count":{count}}}"#),
        )
    };
    accepted(&app, KONBINI_TOKEN, &[cert("base", "3")], "base");

    let id = class("number-integer-notation");
    for n in ["1.0", "1e0", "1E3"] {
        let (reason, field, _) = refused(&app, KONBINI_TOKEN, cert("in", n).as_bytes(), id);
        assert_eq!(
            (reason.as_str(), field.as_str()),
            ("wrong_type", "data.count"),
            "{id}: {n}"
        );
    }
    let id = class("number-too-large");
    for n in [
        "1000000000000000",
        "5000000000000000000",
        "99999999999999999999999",
    ] {
        let (reason, field, _) = refused(&app, KONBINI_TOKEN, cert("tl", n).as_bytes(), id);
        assert_eq!(
            (reason.as_str(), field.as_str()),
            ("out_of_bounds", "data.count"),
            "{id}: {n}"
        );
    }
    let id = class("number-below-minimum");
    for n in ["0", "-1"] {
        let (reason, _, r) = refused(&app, KONBINI_TOKEN, cert("bm", n).as_bytes(), id);
        assert_eq!(reason, "out_of_bounds", "{id}: {n}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("below the minimum 1"),
            "{id}: {r}"
        );
    }
    let id = class("number-at-bounds");
    accepted(&app, KONBINI_TOKEN, &[cert("ab-1", "1000000000")], id);
    assert_eq!(
        refused(
            &app,
            KONBINI_TOKEN,
            cert("ab-2", "1000000001").as_bytes(),
            id
        )
        .0,
        "out_of_bounds",
        "{id}"
    );

    let id = class("number-decimal-precision");
    for n in ["50.005", "5000.005"] {
        let (reason, field, r) = refused(&app, DX_TOKEN, hours("dp", n).as_bytes(), id);
        assert_eq!(
            (reason.as_str(), field.as_str()),
            ("wrong_type", "data.hours"),
            "{id}: {n}"
        );
        assert!(
            r["message"].as_str().unwrap().contains("2 decimal places"),
            "{id}: {r}"
        );
    }
    let id = class("number-decimal-huge");
    for n in ["1e30", "1e999999999"] {
        let started = Instant::now();
        let (reason, _, _) = refused(&app, DX_TOKEN, hours("dh", n).as_bytes(), id);
        assert_eq!(reason, "out_of_bounds", "{id}: {n}");
        assert!(started.elapsed() < Duration::from_secs(5), "{id}: {n}");
    }
    let id = class("number-decimal-exact");
    accepted(
        &app,
        DX_TOKEN,
        &[
            hours("de-1", "0.1"),
            hours("de-2", "0.1"),
            hours("de-3", "0.1"),
            hours("de-4", "1.25e1"),
        ],
        id,
    );

    let m = app.metrics_after_commit();
    assert_eq!(m.kpi("value", "bpr_hours_saved"), Some(12.8), "{id}");
    // The refused counts moved nothing: 3 + 10^9 certificates, all at convenience stores.
    assert_eq!(
        m.kpi("value", "konbini_issuance_rate"),
        Some(100.0),
        "{}",
        class("number-too-large")
    );
    app.stop();
}

#[test]
fn time_has_a_domain() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _, _) = server(dir.path());
    let at = |id: &str, t: &str| {
        ev(
            id,
            "konbini",
            "certificate.issued",
            t,
            r#"{"channel":"konbini","certificate":"juminhyo"}"#,
        )
    };
    let id = class("time-no-offset");
    let (reason, _, r) = refused(
        &app,
        KONBINI_TOKEN,
        at("t1", "2026-05-01T10:15:00").as_bytes(),
        id,
    );
    assert_eq!(reason, "bad_timestamp", "{id}");
    assert!(
        r["message"].as_str().unwrap().contains("offset"),
        "{id}: {r}"
    );
    let id = class("time-impossible");
    for t in [
        "2026-02-30T10:00:00+09:00",
        "2026-05-01T25:00:00+09:00",
        "2026/05/01 10:00",
    ] {
        assert_eq!(
            refused(&app, KONBINI_TOKEN, at("t2", t).as_bytes(), id).0,
            "bad_timestamp",
            "{id}: {t}"
        );
    }
    let id = class("time-too-old");
    for t in ["0001-01-01T00:00:00Z", "2020-03-31T23:59:59+09:00"] {
        let (reason, field, r) = refused(&app, KONBINI_TOKEN, at("t3", t).as_bytes(), id);
        assert_eq!(
            (reason.as_str(), field.as_str()),
            ("out_of_bounds", "occurred_at"),
            "{id}: {t}"
        );
        assert!(
            r["message"].as_str().unwrap().contains("horizon"),
            "{id}: {r}"
        );
    }
    accepted(
        &app,
        KONBINI_TOKEN,
        &[at("t3-ok", "2020-04-01T00:00:00+09:00")],
        id,
    );
    let id = class("time-future");
    for t in ["9999-12-31T23:59:59Z", "2026-10-03T00:00:00+09:00"] {
        let (reason, field, r) = refused(&app, KONBINI_TOKEN, at("t4", t).as_bytes(), id);
        assert_eq!(
            (reason.as_str(), field.as_str()),
            ("out_of_bounds", "occurred_at"),
            "{id}: {t}"
        );
        assert!(
            r["message"].as_str().unwrap().contains("future"),
            "{id}: {r}"
        );
    }
    accepted(
        &app,
        KONBINI_TOKEN,
        &[at("t4-ok", "2026-10-01T12:00:00+09:00")],
        id,
    );
    let m = app.metrics_after_commit();
    let as_of =
        m.0.iter()
            .filter(|((name, _), _)| name == "mieruka_kpi_as_of_timestamp_seconds")
            .map(|(_, v)| *v)
            .fold(0.0, f64::max);
    // 2026-10-01T12:00:00+09:00: the accepted event, never the year 9999.
    assert_eq!(as_of, 1_790_823_600.0, "{id}");
    app.stop();
}

/// Every form in which a personal number could leak: its digits in ASCII or full-width,
/// each `\u`-escaped, or grouped 4-4-4 by the separators these tests use.
fn leak_forms(digits: &str) -> Vec<Vec<u8>> {
    let full: String = digits
        .chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap())
        .collect();
    let escaped_lower: String = digits.chars().map(|c| format!("\\u003{c}")).collect();
    let mut forms = vec![
        digits.as_bytes().to_vec(),
        full.as_bytes().to_vec(),
        escaped_lower.as_bytes().to_vec(),
    ];
    for sep in ["-", " ", "\u{FF0D}", "\u{30FC}", "\u{2010}", "\u{3000}"] {
        let grouped = format!(
            "{}{sep}{}{sep}{}",
            &digits[..4],
            &digits[4..8],
            &digits[8..]
        );
        forms.push(grouped.into_bytes());
    }
    forms
}

fn assert_no_leak(what: &str, haystack: &[u8], numbers: &[&str]) {
    for n in numbers {
        for form in leak_forms(n) {
            assert!(
                !haystack.windows(form.len()).any(|w| w == form.as_slice()),
                "{what} holds {n} as {:?}",
                String::from_utf8_lossy(&form)
            );
        }
    }
}

#[test]
fn personal_numbers_never_get_in_or_out() {
    let dir = tempfile::tempdir().unwrap();
    let (app, db, log) = server(dir.path());
    let memo = |id: &str, memo: &str| {
        konbini(
            id,
            &format!(r#"{{"channel":"konbini","certificate":"juminhyo","memo":"{memo}"}}"#),
        )
    };
    let mut replies = String::new();
    let mut check =
        |token: &str, line: &[u8], class_id: &str, want_reason: &str, want_field: Option<&str>| {
            let (reason, field, r) = refused(&app, token, line, class_id);
            assert_eq!(reason, want_reason, "{class_id}: {r}");
            if let Some(f) = want_field {
                assert_eq!(field, f, "{class_id}: {r}");
            }
            if want_reason == "personal_number" && field == "event_id" {
                // The id is named only when it passed the guard itself.
                assert!(r.get("event_id").is_none(), "{class_id}: {r}");
            }
            replies.push_str(&r.to_string());
        };

    let k = KONBINI_TOKEN;
    check(
        k,
        memo("p1", "ref 123456789018").as_bytes(),
        class("pn-plain"),
        "personal_number",
        Some("data.memo"),
    );
    check(
        k,
        memo("p2", "memo 9876 5432 1093 111122223333").as_bytes(),
        class("pn-grouped-and-plain"),
        "personal_number",
        Some("data.memo"),
    );
    check(
        k,
        konbini("p3", r#"{"555544443331":"x","channel":"konbini"}"#).as_bytes(),
        class("pn-key"),
        "personal_number",
        Some("data.<key 0>"),
    );
    for n in ["3.14159265352e11", "271828182840.000", "1618033988720e-1"] {
        let line = hours("p4", n);
        check(
            DX_TOKEN,
            line.as_bytes(),
            class("pn-number-notation"),
            "personal_number",
            Some("data.hours"),
        );
    }
    let escaped: String = "141421356230"
        .chars()
        .map(|c| format!("\\u003{c}"))
        .collect();
    check(
        k,
        memo("p5", &format!("{escaped} and 123456789018")).as_bytes(),
        class("pn-escaped"),
        "personal_number",
        Some("data.memo"),
    );
    let twice: String = "141421356230"
        .chars()
        .map(|c| format!("\\\\u003{c}"))
        .collect();
    check(
        k,
        konbini(&twice, r#"{"channel":"konbini","certificate":"juminhyo"}"#).as_bytes(),
        class("pn-escaped"),
        "personal_number",
        Some("event_id"),
    );
    for text in [
        "２０２６０５０１１０１４",
        "9876－5432－1093",
        "1111ー2222ー3333",
        "5555‐4444‐3331",
        "3141　5926　5352",
    ] {
        check(
            k,
            memo("p6", text).as_bytes(),
            class("pn-japanese-input"),
            "personal_number",
            Some("data.memo"),
        );
    }
    check(
        k,
        konbini(
            "314159265352",
            r#"{"channel":"konbini","certificate":"juminhyo"}"#,
        )
        .as_bytes(),
        class("pn-in-id"),
        "personal_number",
        Some("event_id"),
    );
    check(
        k,
        b"memo 1234-5678-9018 {",
        class("pn-in-not-json"),
        "not_json",
        None,
    );
    let sjis_line = memo("p9", "番号 ２７１８２８１８２８４０");
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&sjis_line);
    check(k, &sjis, class("pn-shift-jis"), "not_json", None);
    let utf16: Vec<u8> = memo("p10", "161803398872")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    check(k, &utf16, class("event-utf16"), "not_json", None);

    let numbers = [
        "123456789018",
        "987654321093",
        "111122223333",
        "555544443331",
        "314159265352",
        "271828182840",
        "161803398872",
        "141421356230",
        "202605011014",
    ];
    assert_no_leak("the replies", replies.as_bytes(), &numbers);
    let rows = rejected_rows(&db);
    assert!(
        rows.contains("memo **** **** **** ************"),
        "{}: {rows}",
        class("pn-grouped-and-plain")
    );
    assert!(
        rows.contains("番号 ************"),
        "{}: {rows}",
        class("pn-shift-jis")
    );
    assert!(!rows.contains("event_id 314159265352"), "{rows}");
    assert!(
        !app.scrape().contains("5678"),
        "the metrics never carry request data"
    );
    app.stop();
    assert_no_leak("`mieruka rejected`", rows.as_bytes(), &numbers);
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            assert_no_leak(&path.display().to_string(), &bytes, &numbers);
        }
    }
    let logs = std::fs::read(&log).unwrap();
    assert!(!logs.is_empty(), "the DEBUG log was captured");
    assert_no_leak("the logs", &logs, &numbers);
}

#[test]
fn who_may_send_what() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _, _) = server(dir.path());
    let id = class("auth-foreign-source");
    let line = ev(
        "a1",
        "card",
        "certificate.issued",
        "2026-05-01T10:00:00+09:00",
        r#"{"channel":"konbini","certificate":"juminhyo"}"#,
    );
    let (reason, field, _) = refused(&app, KONBINI_TOKEN, line.as_bytes(), id);
    assert_eq!(
        (reason.as_str(), field.as_str()),
        ("not_allowed", "source"),
        "{id}"
    );
    let id = class("auth-foreign-type");
    let line = ev(
        "a2",
        "konbini",
        "mynumber_card.issued",
        "2026-05-01T10:00:00+09:00",
        r#"{"count":1}"#,
    );
    let (reason, field, _) = refused(&app, KONBINI_TOKEN, line.as_bytes(), id);
    assert_eq!(
        (reason.as_str(), field.as_str()),
        ("not_allowed", "type"),
        "{id}"
    );
    let id = class("auth-label-from-config");
    let line = ev(
        "a3",
        "<script>",
        "certificate.issued",
        "2026-05-01T10:00:00+09:00",
        r#"{"channel":"konbini","certificate":"juminhyo"}"#,
    );
    assert_eq!(
        refused(&app, KONBINI_TOKEN, line.as_bytes(), id).0,
        "not_allowed",
        "{id}"
    );
    let text = app.scrape();
    assert!(!text.contains("<script>"), "{id}");
    let m = Metrics::parse(&text);
    assert_eq!(
        m.get(
            "mieruka_events_total",
            &[
                ("source", "konbini"),
                ("outcome", "rejected"),
                ("reason", "not_allowed")
            ]
        ),
        Some(3.0),
        "{id}"
    );
    app.stop();
}

#[test]
fn corrections_that_cannot_be_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _, _) = server(dir.path());
    let id = class("dup-conflicting");
    let c = |count: u32| cert("d-1", "konbini", count, "2026-05-01T10:00:00+09:00");
    accepted(&app, KONBINI_TOKEN, &[c(1)], id);
    let (reason, field, _) = refused(&app, KONBINI_TOKEN, c(5).as_bytes(), id);
    assert_eq!(
        (reason.as_str(), field.as_str()),
        ("conflicting_duplicate", "event_id"),
        "{id}"
    );

    let id = class("void-snapshot");
    accepted(
        &app,
        CARD_TOKEN,
        &[snapshot(
            "h-1",
            "card",
            "mynumber_card.holders_snapshot",
            "holders",
            1000,
            "2026-05-01T10:00:00+09:00",
        )],
        id,
    );
    let void = r#"{"event_id":"v-1","source":"card","type":"event.voided","occurred_at":"2026-05-02T10:00:00+09:00","data":{},"voids":"h-1"}"#;
    assert_eq!(
        refused(&app, CARD_TOKEN, void.as_bytes(), id).0,
        "void_not_allowed",
        "{id}"
    );

    let id = class("cross-field");
    let line = ev(
        "x-1",
        "portal",
        "procedure.catalog_snapshot",
        "2026-05-01T10:00:00+09:00",
        r#"{"in_scope":10,"online":11}"#,
    );
    let (reason, field, _) = refused(&app, PORTAL_TOKEN, line.as_bytes(), id);
    assert_eq!(
        (reason.as_str(), field.as_str()),
        ("cross_field", "data.online"),
        "{id}"
    );
    app.stop();
}

/// `mieruka import` with the konbini mapping: (exit code, stdout, stderr).
fn import(dir: &Path, file: &Path, extra: &[&str]) -> (i32, String, String) {
    let config = write_config(dir);
    let out = Command::new(bin())
        .arg("import")
        .arg(file)
        .arg("--db")
        .arg(dir.join("import.db"))
        .arg("--config")
        .arg(&config)
        .args(["--now", NOW])
        .args(extra)
        .env("MIERUKA_LOG", "warn")
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEADER: &str = "受付番号,交付日時,交付方法,証明書種別,枚数";

#[test]
fn files_with_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let row = |id: &str, cells: &str| format!("{id},2026/05/01 10:15:00,{cells}");

    let id = class("import-encoding");
    let sjis = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures/konbini_sjis.csv"),
    )
    .unwrap();
    let f = file("sjis.csv", &sjis);
    let (code, out, err) = import(d, &f, &["--mapping", "konbini", "--encoding", "utf-8"]);
    assert_ne!(code, 0, "{id}: {out}");
    assert!(err.contains("byte offset 0"), "{id}: {err}");

    let id = class("import-missing-column");
    let f = file(
        "headless.csv",
        format!(
            "{}\n{}\n",
            row("1234-5678-9018", "コンビニ,住民票の写し,1"),
            row("K-2", "コンビニ,住民票の写し,1")
        )
        .as_bytes(),
    );
    let (code, _, err) = import(d, &f, &["--mapping", "konbini"]);
    assert_ne!(code, 0, "{id}");
    assert!(
        err.contains("has no column") && err.contains("****-****-****"),
        "{id}: {err}"
    );
    assert_no_leak(id, err.as_bytes(), &["123456789018"]);

    let id = class("import-ragged-row");
    let f = file(
        "ragged.csv",
        format!(
            "{HEADER}\n{}\n{},extra\n",
            row("K-1", "コンビニ,住民票の写し,1"),
            row("K-2", "コンビニ,住民票の写し,1")
        )
        .as_bytes(),
    );
    let (code, _, err) = import(d, &f, &["--mapping", "konbini"]);
    assert_ne!(code, 0, "{id}");
    assert!(err.contains("line 3"), "{id}: {err}");

    let id = class("import-bad-cell");
    let f = file(
        "badcell.csv",
        format!(
            "{HEADER}\n{}\n{}\n",
            row("K-B1", "郵便局,住民票の写し,1"),
            row("K-B2", "コンビニ,住民票の写し,1")
        )
        .as_bytes(),
    );
    let (code, out, _) = import(d, &f, &["--mapping", "konbini"]);
    assert_eq!(code, 1, "{id}: {out}");
    assert!(
        out.contains("1 accepted, 0 duplicate, 1 rejected"),
        "{id}: {out}"
    );
    assert!(
        out.contains("badcell.csv:2 column \"交付方法\""),
        "{id}: {out}"
    );

    let id = class("import-personal-number-cell");
    let f = file(
        "pn.csv",
        format!(
            "{HEADER}\n{}\n{}\n",
            row("K-P1", "コンビニ,住民票の写し,1234-5678-9018"),
            row("K-P2", "コンビニ,住民票の写し,1")
        )
        .as_bytes(),
    );
    let (code, out, err) = import(d, &f, &["--mapping", "konbini"]);
    assert_eq!(code, 1, "{id}: {out}");
    assert!(out.contains("personal_number"), "{id}: {out}");
    assert_no_leak(id, format!("{out}{err}").as_bytes(), &["123456789018"]);
    let rows = rejected_rows(&d.join("import.db"));
    assert!(rows.contains("****-****-****"), "{id}: {rows}");
    assert_no_leak(id, rows.as_bytes(), &["123456789018"]);

    let id = class("import-bom-crlf");
    let ndjson = format!(
        "\u{FEFF}{}\r\n\r\n{}\r\n",
        cert("N-1", "konbini", 1, "2026-05-01T10:00:00+09:00"),
        cert("N-2", "konbini", 1, "2026-05-01T10:00:00+09:00")
    );
    let f = file("bom.ndjson", ndjson.as_bytes());
    let (code, out, _) = import(d, &f, &[]);
    assert_eq!(code, 0, "{id}: {out}");
    assert!(out.contains("2 accepted"), "{id}: {out}");
    let csv = format!(
        "\u{FEFF}{HEADER}\r\n{}\r\n",
        row("K-C1", "コンビニ,住民票の写し,1")
    );
    let f = file("bom.csv", csv.as_bytes());
    let (code, out, _) = import(d, &f, &["--mapping", "konbini"]);
    assert_eq!(code, 0, "{id}: {out}");
    assert!(out.contains("1 accepted"), "{id}: {out}");
}

/// `mieruka import` with the worked monthly population mapping (docs/csv-mapping.md):
/// (exit code, stdout).
fn import_juki(dir: &Path, file: &Path) -> (i32, String) {
    let config = write_config(dir);
    let mapping = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures/population.mapping.toml"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&mapping);
    std::fs::write(&config, text).unwrap();
    let out = Command::new(bin())
        .arg("import")
        .arg(file)
        .arg("--db")
        .arg(dir.join("juki.db"))
        .arg("--config")
        .arg(&config)
        .args(["--now", NOW, "--mapping", "juki_monthly"])
        .env("MIERUKA_LOG", "warn")
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn monthly_exports_with_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("juki.csv");
    std::fs::write(
        &f,
        "集計月,地区,人口\r\n\
         令和8年8月,合計,\"129,012\"\r\n\
         平成32年8月,合計,\"129,000\"\r\n\
         令和8年9月,東町,\"1,000\"\r\n\
         \r\n\
         令和8年9月,合計,\"1,28,900\"\r\n\
         令和8年9月,総計,\"128,900\"\r\n",
    )
    .unwrap();
    let (code, out) = import_juki(d, &f);
    assert_eq!(code, 1, "{out}");

    let id = class("import-skipped-row");
    assert!(
        out.contains("1 accepted, 0 duplicate, 2 rejected"),
        "{id}: {out}"
    );

    let id = class("import-era-date");
    assert!(
        out.contains("juki.csv:3 column \"集計月\"") && out.contains("bad_timestamp"),
        "{id}: {out}"
    );
    assert!(!out.contains("平成32"), "{id}: {out}");

    let id = class("import-bad-grouping");
    assert!(
        out.contains("juki.csv:6 column \"人口\"") && out.contains("wrong_type"),
        "{id}: {out}"
    );
}

#[test]
fn every_problem_of_one_event_is_reported_at_once() {
    let id = class("event-many-problems");
    let dir = tempfile::tempdir().unwrap();
    let (app, db, _log) = server(dir.path());
    // An unknown channel, a count below its minimum and an unknown field, in one event.
    let line = konbini(
        "mp-1",
        r#"{"channel":"fax","certificate":"juminhyo","count":0,"memo":"x"}"#,
    );
    let want = [
        ("unknown_value", "data.channel"),
        ("out_of_bounds", "data.count"),
        ("unknown_field", "data.memo"),
    ];
    let (reason, field, r) = refused(&app, KONBINI_TOKEN, line.as_bytes(), id);
    // The first problem stays the entry's own reason and field.
    assert_eq!((reason.as_str(), field.as_str()), want[0], "{id}: {r}");
    let listed: Vec<(&str, &str)> = r["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let s = |k: &str| p[k].as_str().unwrap_or("");
                    (s("reason"), s("field"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(listed, want, "{id}: {r}");
    app.stop();

    // The `rejected` table keeps them all, in the order of the reply.
    let rows = rejected_rows(&db);
    let row = rows
        .lines()
        .find(|l| l.contains("event_id mp-1"))
        .unwrap_or("");
    assert!(
        row.contains("[unknown_value] data.channel: "),
        "{id}: {rows}"
    );
    let (Some(a), Some(b)) = (
        row.find(" | data.count: 0 is below the minimum 1 (out_of_bounds)"),
        row.find(" | data.memo: unknown field"),
    ) else {
        panic!("{id}: {rows}")
    };
    assert!(a < b, "{id}: {row}");

    // So does the import summary.
    let file = dir.path().join("many.ndjson");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let (code, out, err) = import(dir.path(), &file, &[]);
    assert_eq!(code, 1, "{id}: {out}{err}");
    let summary = out
        .lines()
        .find(|l| l.contains("many.ndjson:1"))
        .unwrap_or("");
    assert!(
        summary.contains("data.channel: ")
            && summary.contains("(unknown_value) | data.count: 0 is below the minimum 1 (out_of_bounds) | data.memo: unknown field"),
        "{id}: {out}"
    );
}
