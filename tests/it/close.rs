//! `mieruka close-year` and `reopen-year` on a running standalone's SQLite file: after
//! the close, a late event of the closed year leaves its final figure as it was and
//! shows as an adjustment on /metrics, on the status page and in `explain`; the refusals
//! say why; a reopen puts the live figures back and says what it changed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// `mieruka <args> --db DB` at [`NOW`].
fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--db")
        .arg(db)
        .env("MIERUKA_NOW", NOW)
        .env_remove("MIERUKA_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn fy2025(m: &Metrics, figure: &str) -> Option<f64> {
    m.get(
        &format!("mieruka_kpi_{figure}"),
        &[("kpi", "konbini_issuance_rate"), ("fiscal_year", "2025")],
    )
}

/// Scrapes until `done` holds (the standalone refreshes every second); the last scrape.
fn metrics_until(app: &TestApp, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = Metrics::parse(&app.scrape());
        if done(&m) || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_closed_year_keeps_its_final_figure_and_shows_late_events_as_adjustments() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let app = TestApp::start(dir.path(), &db);
    app.post_events(
        KONBINI_TOKEN,
        &[
            cert("c-1", "konbini", 3, "2025-06-01T10:00:00+09:00"),
            cert("c-2", "counter", 7, "2025-07-01T10:00:00+09:00"),
        ],
    );
    let m = app.metrics_after_commit();
    assert_eq!(fy2025(&m, "value"), Some(30.0));
    assert_eq!(
        fy2025(&m, "final"),
        Some(0.0),
        "an ended year is provisional until closed"
    );

    // Refusals: a year not ended, a year not closed.
    let early = run(
        &db,
        &["close-year", "2026", "--note", "too soon", "--by", "tanaka"],
    );
    assert!(!early.status.success());
    assert!(
        text(&early).contains("FY2026 has not ended"),
        "{}",
        text(&early)
    );
    let not_closed = run(
        &db,
        &["reopen-year", "2025", "--note", "n", "--by", "tanaka"],
    );
    assert!(!not_closed.status.success());
    assert!(
        text(&not_closed).contains("FY2025 is not closed"),
        "{}",
        text(&not_closed)
    );

    let closed = run(
        &db,
        &["close-year", "2025", "--note", "決算確定", "--by", "tanaka"],
    );
    assert!(closed.status.success(), "{}", text(&closed));
    assert!(
        text(&closed).contains("FY2025 closed at"),
        "{}",
        text(&closed)
    );
    assert!(
        text(&closed).contains("konbini_issuance_rate: 30"),
        "{}",
        text(&closed)
    );
    let again = run(
        &db,
        &["close-year", "2025", "--note", "twice", "--by", "tanaka"],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("FY2025 is already closed"),
        "{}",
        text(&again)
    );

    // A late konbini issue of FY2025: the live rate is 13/20 = 65 %, the final stays 30 %.
    app.post_events(
        KONBINI_TOKEN,
        &[cert("c-late", "konbini", 10, "2025-08-01T10:00:00+09:00")],
    );
    let m = metrics_until(&app, |m| fy2025(m, "adjustment").is_some());
    assert_eq!(fy2025(&m, "final"), Some(1.0));
    assert_eq!(fy2025(&m, "value"), Some(30.0), "the final figure moved");
    assert_eq!(fy2025(&m, "adjustment"), Some(35.0));
    assert_eq!(m.kpi("final", "konbini_issuance_rate"), Some(0.0));
    assert_eq!(m.kpi("adjustment", "konbini_issuance_rate"), None);

    let page = ureq::get(&format!("{}/", app.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("data-closed-year=\"2025\""), "{page}");
    assert!(
        page.contains("確定後の修正") && page.contains("+35"),
        "{page}"
    );

    let out = run(
        &db,
        &["explain", "konbini_issuance_rate", "--fy", "2025", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["value"], 30.0, "{e}");
    let f = &e["finality"];
    assert_eq!(f["status"], "final", "{f}");
    assert_eq!(f["closed_by"], "tanaka");
    assert_eq!(f["note"], "決算確定");
    assert_eq!(f["live_value"], 65.0);
    assert_eq!(f["adjustment"], 35.0);
    assert_eq!(f["adjustments"]["total"], 1, "{f}");
    assert_eq!(f["adjustments"]["listed"][0]["event_id"], "c-late");
    assert_eq!(f["adjustments"]["listed"][0]["source"], "konbini");
    let words = run(&db, &["explain", "konbini_issuance_rate", "--fy", "2025"]);
    assert!(
        text(&words).contains("確定値 final: FY2025 closed at"),
        "{}",
        text(&words)
    );
    assert!(text(&words).contains("konbini/c-late"), "{}", text(&words));

    let reopened = run(
        &db,
        &["reopen-year", "2025", "--note", "訂正", "--by", "sato"],
    );
    assert!(reopened.status.success(), "{}", text(&reopened));
    assert!(
        text(&reopened).contains("konbini_issuance_rate: final 30 dropped, live 65 stands"),
        "{}",
        text(&reopened)
    );
    let m = metrics_until(&app, |m| fy2025(m, "final") == Some(0.0));
    assert_eq!(fy2025(&m, "final"), Some(0.0));
    assert_eq!(fy2025(&m, "value"), Some(65.0));
    assert_eq!(fy2025(&m, "adjustment"), None);
    app.stop();
}
