//! `mieruka explain` and `GET /v1/kpis/<id>`: the parts of every figure add up to the
//! value `/metrics` shows, the command and the endpoint say the same, and `--as-of`
//! counts what occurred by then, late arrivals included, without what was voided since.

use std::path::Path;
use std::process::Command;

use mieruka_aggregator::{KpiKind, Plan};
use serde_json::Value;

use crate::helpers::*;

/// `mieruka explain --json` on the SQLite file `db`, at `now`.
fn explain_cli(db: &Path, now: &str, args: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("explain")
        .args(args)
        .arg("--json")
        .arg("--db")
        .arg(db)
        .env("MIERUKA_NOW", now)
        .env_remove("MIERUKA_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "explain {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `GET /v1/kpis/<id>?<query>`: (status, body).
fn explain_http(base: &str, id: &str, query: &str) -> (u16, String) {
    match ureq::get(&format!("{base}/v1/kpis/{id}?{query}")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn sum(shares: &Value) -> f64 {
    shares
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

/// Each part's months and sources add up to its value (less its snapshot, for a
/// level), and the parts make the KPI's value by its formula.
fn assert_adds_up(e: &Value, scale: Option<f64>) {
    let id = &e["kpi"];
    let parts = e["parts"].as_array().unwrap();
    for p in parts {
        let Some(v) = p["value"].as_f64() else {
            continue;
        };
        let base = p["snapshot"]["value"].as_f64().unwrap_or(0.0);
        for key in ["by_month", "by_source"] {
            let total = base + sum(&p[key]);
            assert!(
                close(total, v),
                "{id} {}: {key} adds to {total}, not {v}: {p}",
                p["measure"]
            );
        }
        if p["kind"] == "level" {
            let since = p["deltas_since"].as_f64().unwrap();
            assert!(
                close(base + since, v),
                "{id}: snapshot + deltas since ≠ value: {p}"
            );
        }
    }
    let Some(value) = e["value"].as_f64() else {
        return;
    };
    let made = match (scale, parts.as_slice()) {
        (Some(s), [n, d]) => n["value"].as_f64().unwrap() / d["value"].as_f64().unwrap() * s,
        (None, [p]) => p["value"].as_f64().unwrap(),
        _ => panic!("{id}: unexpected parts {parts:?}"),
    };
    assert!(
        close(made, value),
        "{id}: the parts make {made}, the value is {value}"
    );
}

#[test]
fn every_numeric_kpi_of_the_demo_is_explained_by_parts_that_add_up_to_its_metric() {
    let plan = Plan::ome().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path());
    let m = Metrics::parse(&demo.scrape());
    let mut kinds = std::collections::BTreeSet::new();
    for kpi in &plan.kpis {
        let scale = match kpi.kind {
            KpiKind::Milestone { .. } => continue,
            KpiKind::Ratio { scale, .. } => Some(scale),
            _ => None,
        };
        let (status, body) = explain_http(&demo.base, &kpi.id, "fy=2026");
        assert_eq!(status, 200, "{}: {body}", kpi.id);
        let e: Value = serde_json::from_str(&body).unwrap();
        let shown = m.kpi("value", &kpi.id);
        match (e["value"].as_f64(), shown) {
            (Some(a), Some(b)) => assert!(close(a, b), "{}: explain {a}, /metrics {b}", kpi.id),
            (a, b) => assert_eq!(a, b, "{}: explain and /metrics disagree", kpi.id),
        }
        assert_adds_up(&e, scale);
        for p in e["parts"].as_array().unwrap() {
            kinds.insert(p["kind"].as_str().unwrap().to_owned());
        }
        assert!(e["pace"]["formula"].as_str().is_some_and(|f| !f.is_empty()));
    }
    // The demo must exercise every kind of measure the sums are checked for.
    for kind in ["sum", "distinct", "level"] {
        assert!(
            kinds.contains(kind),
            "no {kind} measure explained: {kinds:?}"
        );
    }
    // The command says what the endpoint says: one function behind both.
    let cli = explain_cli(
        &dir.path().join("demo.db"),
        DEMO_NOW,
        &["mynumber_card_holding_rate"],
    );
    let (_, body) = explain_http(&demo.base, "mynumber_card_holding_rate", "");
    assert_eq!(cli, serde_json::from_str::<Value>(&body).unwrap());
    assert!(cli["parts"][0]["snapshot"]["event_id"].is_string(), "{cli}");
    // Each KPI's page links to its explanation (`/kpi/<id>` → `/v1/kpis/<id>`).
    let page = ureq::get(&format!("{}/kpi/telework_rate", demo.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("href=\"../v1/kpis/telework_rate\""), "{page}");
    // Wrong requests are named.
    assert_eq!(explain_http(&demo.base, "no_such_kpi", "").0, 404);
    assert_eq!(explain_http(&demo.base, "telework_rate", "fy=soon").0, 400);
    assert_eq!(explain_http(&demo.base, "telework_rate", "fy=1999").0, 400);
    assert_eq!(
        explain_http(&demo.base, "telework_rate", "as_of=2026-13-01").0,
        400
    );
    demo.stop();
}

fn issued(id: &str, count: u32, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","source":"card","type":"mynumber_card.issued","occurred_at":"{at}","data":{{"count":{count},"kind":"new"}}}}"#
    )
}

#[test]
fn as_of_counts_late_arrivals_that_occurred_by_then_and_leaves_out_what_was_voided() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let app = TestApp::start(dir.path(), &db);
    app.post_events(
        CARD_TOKEN,
        &[
            snapshot(
                "h-0331",
                "card",
                "mynumber_card.holders_snapshot",
                "holders",
                100_000,
                "2026-03-31T12:00:00+09:00",
            ),
            snapshot(
                "p-0331",
                "juki",
                "population.snapshot",
                "population",
                125_000,
                "2026-03-31T12:00:00+09:00",
            ),
            issued("i-1", 500, "2026-05-01T10:00:00+09:00"),
            issued("i-june", 1_000, "2026-06-15T10:00:00+09:00"),
        ],
    );
    let holders = |e: &Value| e["parts"][0]["value"].as_f64().unwrap();
    let before = explain_cli(
        &db,
        NOW,
        &["mynumber_card_holding_rate", "--as-of", "2026-05-31"],
    );
    assert_eq!(holders(&before), 100_500.0, "{before}");
    assert_eq!(before["fiscal_year"], 2026);

    // Late: an issue of May arrives in October, and the May 1 issue is voided. The
    // June issue is re-sent twice as it was (duplicates) and once with another count
    // (a conflicting duplicate: refused, not counted as a duplicate).
    let reply = app.post_events(
        CARD_TOKEN,
        &[
            issued("i-late", 200, "2026-05-20T10:00:00+09:00"),
            r#"{"event_id":"v-1","source":"card","type":"event.voided","occurred_at":"2026-09-30T10:00:00+09:00","voids":"i-1","data":{}}"#.to_owned(),
            issued("i-june", 1_000, "2026-06-15T10:00:00+09:00"),
            issued("i-june", 999, "2026-06-15T10:00:00+09:00"),
        ],
    );
    assert_eq!(reply["duplicates"], 1, "{reply}");
    app.post_events(
        CARD_TOKEN,
        &[issued("i-june", 1_000, "2026-06-15T10:00:00+09:00")],
    );
    let after = explain_cli(
        &db,
        NOW,
        &["mynumber_card_holding_rate", "--as-of", "2026-05-31"],
    );
    let part = &after["parts"][0];
    assert_eq!(holders(&after), 100_200.0, "{after}");
    assert_eq!(part["snapshot"]["value"], 100_000.0);
    assert_eq!(part["snapshot"]["source"], "card");
    assert_eq!(part["events_counted"], 1, "{part}");
    assert_eq!(part["events_voided"], 1, "{part}");
    // The June duplicates occurred after the cut-off.
    assert_eq!(part["duplicates_seen"], 0, "{part}");
    assert_eq!(
        part["by_month"],
        serde_json::json!([{"key": "2026-05", "value": 200.0}])
    );
    assert!(close(
        after["value"].as_f64().unwrap(),
        100_200.0 / 125_000.0 * 100.0
    ));
    assert_adds_up(&after, Some(100.0));

    // Today, the June issue counts too, as /metrics shows; the endpoint agrees.
    let m = app.metrics_after_commit();
    let (status, body) = explain_http(&app.base, "mynumber_card_holding_rate", "as_of=2026-05-31");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), after);
    let today = explain_cli(&db, NOW, &["mynumber_card_holding_rate"]);
    assert_eq!(holders(&today), 101_200.0, "{today}");
    // Counted once in the value, seen twice more as duplicates of card_holders.
    assert_eq!(today["parts"][0]["measure"], "card_holders", "{today}");
    assert_eq!(today["parts"][0]["duplicates_seen"], 2, "{today}");
    assert_eq!(today["parts"][1]["duplicates_seen"], 0, "{today}");
    let text = Command::new(bin())
        .args(["explain", "mynumber_card_holding_rate", "--db"])
        .arg(&db)
        .env("MIERUKA_NOW", NOW)
        .env_remove("MIERUKA_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("events counted: 2, voided: 1, duplicates seen: 2"),
        "{text}"
    );
    assert_eq!(
        today["value"].as_f64(),
        m.kpi("value", "mynumber_card_holding_rate")
    );
    app.stop();
}

#[test]
fn the_export_role_explains_from_postgresql_as_the_command_does() {
    use mieruka_aggregator::store::PgStore;
    use mieruka_ingest::{item, Position};
    use std::process::Stdio;

    let db = mieruka_testkit::pg::TestDb::create_blocking("mieruka_explain").unwrap();
    let plan = std::sync::Arc::new(Plan::ome().unwrap());
    let lines = [
        snapshot(
            "h-0331",
            "card",
            "mynumber_card.holders_snapshot",
            "holders",
            100_000,
            "2026-03-31T12:00:00+09:00",
        ),
        snapshot(
            "p-0331",
            "juki",
            "population.snapshot",
            "population",
            125_000,
            "2026-03-31T12:00:00+09:00",
        ),
        issued("i-1", 500, "2026-05-01T10:00:00+09:00"),
        issued("i-2", 700, "2026-07-01T10:00:00+09:00"),
    ];
    let items = lines
        .iter()
        .enumerate()
        .map(|(i, l)| item(&plan.schema, l.as_bytes(), Position::Index(i), "test"))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        store.submit_batch(items).await.unwrap();
        store.close().await;
    });
    let child = Command::new(bin())
        .args([
            "export",
            "--listen",
            "127.0.0.1:0",
            "--now",
            NOW,
            "--database-url",
        ])
        .arg(db.url())
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_CONFIG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let app = TestApp::attach(child, Default::default());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        let (status, body) = explain_http(&app.base, "mynumber_card_holding_rate", "fy=2026");
        if status == 200 || std::time::Instant::now() > deadline {
            assert_eq!(status, 200, "{body}");
            break body;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["parts"][0]["value"], 101_200.0, "{e}");
    assert_eq!(
        e["parts"][0]["by_source"],
        serde_json::json!([{"key": "card", "value": 1200.0}])
    );
    assert_adds_up(&e, Some(100.0));
    let out = Command::new(bin())
        .args([
            "explain",
            "mynumber_card_holding_rate",
            "--json",
            "--database-url",
        ])
        .arg(db.url())
        .env("MIERUKA_NOW", NOW)
        .env_remove("MIERUKA_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), e);
    // The KPI's page shows the same explanation, read from PostgreSQL, and names the
    // source its events came from.
    let page = ureq::get(&format!("{}/kpi/mynumber_card_holding_rate", app.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let formula = e["formula"].as_str().unwrap();
    assert!(page.contains("class=\"explanation\""), "{page}");
    assert!(page.contains(formula), "no {formula:?} on the page");
    assert!(page.contains("<tr data-source=\"card\""), "{page}");
    app.stop();
}
