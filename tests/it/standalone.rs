//! Posting events to a running standalone and reading exact KPI values back.

use crate::helpers::*;

fn card_history() -> Vec<String> {
    vec![
        snapshot("h-0331", "card", "mynumber_card.holders_snapshot", "holders", 100_000, "2026-03-31T12:00:00+09:00"),
        r#"{"event_id":"i-1","source":"card","type":"mynumber_card.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"count":500,"kind":"new"}}"#.to_owned(),
        r#"{"event_id":"i-2","source":"card","type":"mynumber_card.issued","occurred_at":"2026-05-02T10:00:00+09:00","data":{"count":300,"kind":"renewal"}}"#.to_owned(),
        snapshot("p-0331", "juki", "population.snapshot", "population", 125_000, "2026-03-31T12:00:00+09:00"),
    ]
}

#[test]
fn posted_events_become_exact_kpi_values() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path(), &dir.path().join("m.db"));

    let reply = app.post_events(
        KONBINI_TOKEN,
        &[
            cert("k-1", "konbini", 1, "2026-05-01T10:00:00+09:00"),
            cert("k-2", "konbini", 1, "2026-05-01T11:00:00+09:00"),
            cert("k-3", "konbini", 2, "2026-06-01T11:00:00+09:00"),
            cert("c-1", "counter", 1, "2026-06-01T11:00:00+09:00"),
            cert("k-2025", "konbini", 41, "2025-10-01T10:00:00+09:00"),
            cert("c-2025", "counter", 59, "2025-10-01T10:00:00+09:00"),
        ],
    );
    assert_eq!(reply["accepted"], 6, "{reply}");
    let reply = app.post_events(KONBINI_TOKEN, &card_history()[..0]);
    assert_eq!(reply["accepted"], 0);
    let reply = app.post_events(CARD_TOKEN, &card_history());
    assert_eq!(reply["accepted"], 4, "{reply}");

    let m = app.metrics_after_commit();
    assert_eq!(m.kpi("value", "konbini_issuance_rate"), Some(80.0));
    assert_eq!(m.kpi("target", "konbini_issuance_rate"), Some(43.7));
    assert_eq!(
        m.get(
            "mieruka_kpi_value",
            &[("kpi", "konbini_issuance_rate"), ("fiscal_year", "2025")]
        ),
        Some(41.0)
    );
    // Renewals do not add holders: (100,000 + 500) / 125,000.
    assert_eq!(m.kpi("value", "mynumber_card_holding_rate"), Some(80.4));
    assert_eq!(m.kpi("target", "mynumber_card_holding_rate"), Some(84.6));
    assert!(m.kpi("pace", "mynumber_card_holding_rate").is_some());
    assert_eq!(
        m.kpi("target", "a4_paper_sheets_purchased"),
        None,
        "an unset target is absent, not 0"
    );
    assert_eq!(
        m.get(
            "mieruka_events_total",
            &[
                ("source", "konbini"),
                ("outcome", "accepted"),
                ("reason", "")
            ]
        ),
        Some(6.0)
    );
    app.stop();
}

#[test]
fn duplicates_bad_events_and_foreign_types_are_reported_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path(), &dir.path().join("m.db"));
    app.post_events(
        KONBINI_TOKEN,
        &[cert("k-1", "konbini", 1, "2026-05-01T10:00:00+09:00")],
    );

    let personal = r#"{"event_id":"k-9","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","memo":"1234-5678-9018"}}"#;
    let reply = app.post_events(
        KONBINI_TOKEN,
        &[
            cert("k-1", "konbini", 1, "2026-05-01T10:00:00+09:00"),
            "this is not json".to_owned(),
            cert("k-2", "conbini", 1, "2026-05-01T10:00:00+09:00"),
            personal.to_owned(),
            r#"{"event_id":"x-1","source":"konbini","type":"mynumber_card.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"count":1}}"#.to_owned(),
            cert("k-1", "konbini", 5, "2026-05-01T10:00:00+09:00"),
            cert("k-3", "konbini", 1, "2026-05-01T10:00:00"),
        ],
    );
    assert_eq!(reply["accepted"], 0, "{reply}");
    assert_eq!(reply["duplicates"], 1, "{reply}");
    let rejected = reply["rejected"].as_array().unwrap();
    let find = |index: u64| {
        rejected
            .iter()
            .find(|r| r["index"] == index)
            .unwrap_or_else(|| panic!("{reply}"))
    };
    assert_eq!(find(1)["reason"], "not_json");
    assert_eq!(find(1)["line"], 2);
    assert_eq!(find(2)["reason"], "unknown_value");
    assert_eq!(find(2)["field"], "data.channel");
    assert!(find(2)["message"]
        .as_str()
        .unwrap()
        .contains("expected one of konbini, counter, mail, online"));
    assert_eq!(find(3)["reason"], "personal_number");
    assert_eq!(find(3)["field"], "data.memo");
    assert_eq!(find(4)["reason"], "not_allowed");
    assert_eq!(find(5)["reason"], "conflicting_duplicate");
    assert_eq!(find(6)["reason"], "bad_timestamp");
    assert!(
        !reply.to_string().contains("5678"),
        "the personal number is never echoed: {reply}"
    );

    let m = app.metrics_after_commit();
    assert_eq!(m.kpi("value", "konbini_issuance_rate"), Some(100.0));
    assert_eq!(
        m.get(
            "mieruka_events_total",
            &[
                ("source", "konbini"),
                ("outcome", "rejected"),
                ("reason", "personal_number")
            ]
        ),
        Some(1.0)
    );
    assert!(!app.scrape().contains("5678"));
    app.stop();
}

#[test]
fn body_level_problems_get_4xx_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path(), &dir.path().join("m.db"));
    let one = cert("k-1", "konbini", 1, "2026-05-01T10:00:00+09:00");
    assert_eq!(app.post(None, "application/x-ndjson", &one).0, 401);
    assert_eq!(app.post(Some("wrong"), "application/x-ndjson", &one).0, 401);
    let (status, body) = app.post(Some(KONBINI_TOKEN), "text/plain", &one);
    assert_eq!(status, 415);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("application/x-ndjson"));
    let (status, body) = app.post(Some(KONBINI_TOKEN), "application/json", "[{\"a\": 1},");
    assert_eq!(status, 400, "{body}");
    let big = one.repeat(1 + 1_048_576 / one.len());
    assert_eq!(
        app.post(Some(KONBINI_TOKEN), "application/x-ndjson", &big)
            .0,
        413
    );
    let (status, body) = app.post(Some(KONBINI_TOKEN), "application/json", &format!("[{one}]"));
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
    app.stop();
}

#[test]
fn values_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let app = TestApp::start(dir.path(), &db);
    app.post_events(CARD_TOKEN, &card_history());
    app.post_events(
        KONBINI_TOKEN,
        &[
            cert("k-1", "konbini", 3, "2026-05-01T10:00:00+09:00"),
            cert("c-1", "mail", 1, "2026-05-01T10:00:00+09:00"),
        ],
    );
    let before = app.metrics_after_commit();
    app.stop();

    let app = TestApp::start(dir.path(), &db);
    let after = Metrics::parse(&app.scrape());
    for kpi in ["konbini_issuance_rate", "mynumber_card_holding_rate"] {
        for figure in ["value", "pace", "projection", "target"] {
            assert_eq!(
                before.kpi(figure, kpi),
                after.kpi(figure, kpi),
                "{figure} of {kpi}"
            );
        }
    }
    assert_eq!(after.kpi("value", "konbini_issuance_rate"), Some(75.0));
    app.stop();
}

#[test]
fn the_status_page_lists_every_kpi() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path(), &dir.path().join("m.db"));
    let page = ureq::get(&format!("{}/", app.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let plan = mieruka_aggregator::Plan::ome().unwrap();
    for k in &plan.kpis {
        assert!(
            page.contains(&format!("data-kpi=\"{}\"", k.id)),
            "{} missing",
            k.id
        );
        assert!(page.contains(&k.name_ja), "{} missing", k.name_ja);
    }
    app.stop();
}
