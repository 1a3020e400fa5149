//! Health metrics: events by source, outcome and reason; closed label sets.

use std::collections::BTreeMap;

use mieruka_exporter::calendar::{Cadence, Calendar, Schedule};
use mieruka_ingest::{Reason, Rejection, Status};

use crate::helpers::{sample, TestApp};

fn events<'a>(source: &'a str, outcome: &'a str, reason: &'a str) -> [(&'a str, &'a str); 3] {
    [("source", source), ("outcome", outcome), ("reason", reason)]
}

#[tokio::test]
async fn a_rejected_event_is_counted_under_its_reason() {
    let app = TestApp::new();
    let rejected = Status::Rejected(Rejection::at(
        Reason::UnknownValue,
        "data.channel",
        "unknown value (expected one of: konbini, counter, mail, online)",
    ));
    app.exporter.health().record("konbini", &rejected);
    app.exporter.health().record("konbini", &rejected);
    app.exporter.health().record("konbini", &Status::Accepted);
    app.exporter.health().record("konbini", &Status::Duplicate);
    let text = app.scrape_metrics().await;
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("konbini", "rejected", "unknown_value")
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("konbini", "accepted", "")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("konbini", "duplicate", "")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("konbini", "rejected", "not_json")
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_source_that_is_not_configured_is_counted_as_unknown() {
    let app = TestApp::new();
    let health = app.exporter.health();
    health.record("evil\"source<script>", &Status::Accepted);
    health.record(
        "somebody-else",
        &Status::Rejected(Rejection::whole(Reason::NotJson, "not JSON")),
    );
    assert_eq!(health.source_label("konbini"), "konbini");
    assert_eq!(health.source_label("somebody-else"), "unknown");
    let text = app.scrape_metrics().await;
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("unknown", "accepted", "")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("unknown", "rejected", "not_json")
        ),
        Some(1.0)
    );
    assert!(!text.contains("evil") && !text.contains("somebody"));
}

#[tokio::test]
async fn every_configured_source_starts_at_zero_for_every_outcome_and_reason() {
    let app = TestApp::new();
    let text = app.scrape_metrics().await;
    let series = text
        .lines()
        .filter(|l| l.starts_with("mieruka_events_total{"))
        .count();
    let sources = crate::helpers::SOURCES.len() + 1; // + unknown
    assert_eq!(series, sources * (2 + Reason::ALL.len()));
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("dx_office", "rejected", "personal_number")
        ),
        Some(0.0)
    );
    // Nothing read from a store yet, so no last-received time (absent, not 0), and no lag.
    assert!(!text.contains("mieruka_source_last_received_timestamp_seconds{"));
    assert!(!text.contains("mieruka_consumer_lag{"));
}

#[tokio::test]
async fn the_last_heard_times_are_the_stores_whole_set() {
    let app = TestApp::new();
    let health = app.exporter.health();
    health.set_last_heard(&[("juki", 1_790_000_000.0), ("konbini", 1_790_000_100.5)]);
    let text = app.scrape_metrics().await;
    let heard = |s| {
        sample(
            &text,
            "mieruka_source_last_received_timestamp_seconds",
            &[("source", s)],
        )
    };
    assert_eq!(heard("juki"), Some(1_790_000_000.0));
    assert_eq!(heard("konbini"), Some(1_790_000_100.5));
    // A later read replaces the set: a source the store no longer lists disappears.
    health.set_last_heard(&[("konbini", 1_790_000_200.0)]);
    let text = app.scrape_metrics().await;
    assert!(!text.contains("source=\"juki\""), "{text}");
}

#[tokio::test]
async fn each_role_exports_only_the_health_series_that_apply_to_it() {
    use mieruka_exporter::{Exporter, Role};
    let plan = std::sync::Arc::new(mieruka_aggregator::Plan::ome().unwrap());
    let families = |role| {
        let e = Exporter::for_role(plan.clone(), vec!["konbini".to_owned()], role);
        e.health().set_consumer_lag("mieruka.events", 0, 3);
        e.health().set_last_heard(&[("konbini", 1.0)]);
        e.health().declare_inbox("drop");
        e.publish(&[], mieruka_ingest::Timestamp::from_micros(0));
        let text = e.render_metrics();
        [
            "mieruka_kpi_info",
            "mieruka_events_total",
            "mieruka_commit_duration_seconds",
            "mieruka_snapshot_age_seconds",
            "mieruka_source_last_received_timestamp_seconds",
            "mieruka_consumer_lag",
            "mieruka_inbox_files_total",
        ]
        .into_iter()
        .filter(|f| text.contains(&format!("# TYPE {f} ")))
        .collect::<Vec<_>>()
    };
    assert_eq!(
        families(Role::Standalone),
        [
            "mieruka_kpi_info",
            "mieruka_events_total",
            "mieruka_commit_duration_seconds",
            "mieruka_snapshot_age_seconds",
            "mieruka_source_last_received_timestamp_seconds",
            "mieruka_inbox_files_total",
        ]
    );
    assert_eq!(
        families(Role::Export),
        [
            "mieruka_kpi_info",
            "mieruka_snapshot_age_seconds",
            "mieruka_source_last_received_timestamp_seconds",
        ]
    );
    assert_eq!(
        families(Role::Ingest),
        [
            "mieruka_events_total",
            "mieruka_commit_duration_seconds",
            "mieruka_inbox_files_total",
        ]
    );
    assert_eq!(
        families(Role::Aggregate),
        [
            "mieruka_events_total",
            "mieruka_commit_duration_seconds",
            "mieruka_consumer_lag",
        ]
    );
}

#[tokio::test]
async fn commit_durations_fill_the_histogram() {
    let app = TestApp::new();
    app.exporter.health().observe_commit(0.003);
    app.exporter.health().observe_commit(0.2);
    let text = app.scrape_metrics().await;
    assert_eq!(
        sample(&text, "mieruka_commit_duration_seconds_count", &[]),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_commit_duration_seconds_bucket",
            &[("le", "0.005")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_commit_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_snapshot_age_appears_with_the_first_publish_and_is_measured_at_scrape() {
    let app = TestApp::new();
    let before = app.scrape_metrics().await;
    assert_eq!(sample(&before, "mieruka_snapshot_age_seconds", &[]), None);
    app.publish();
    let first = sample(
        &app.scrape_metrics().await,
        "mieruka_snapshot_age_seconds",
        &[],
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = sample(
        &app.scrape_metrics().await,
        "mieruka_snapshot_age_seconds",
        &[],
    )
    .unwrap();
    assert!((0.0..5.0).contains(&first), "{first}");
    assert!(second >= first + 0.015, "{first} then {second}");
}

#[tokio::test]
async fn a_source_declared_by_another_role_is_labelled_as_itself_from_then_on() {
    let app = TestApp::new();
    let health = app.exporter.health();
    health.record("juki-feed", &Status::Accepted);
    health.add_sources(&["juki-feed"]);
    health.record("juki-feed", &Status::Accepted);
    let text = app.scrape_metrics().await;
    let count = |source| {
        sample(
            &text,
            "mieruka_events_total",
            &events(source, "accepted", ""),
        )
    };
    assert_eq!(count("unknown"), Some(1.0));
    assert_eq!(count("juki-feed"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "mieruka_events_total",
            &events("juki-feed", "rejected", "not_json")
        ),
        Some(0.0)
    );
}

/// 2026-02-06 (a Friday) 18:00 JST.
const FRIDAY_EVENING: f64 = 1_770_368_400.0;
/// The end of Monday 2026-02-09 in JST (2026-02-09T15:00Z).
const END_OF_MONDAY: f64 = 1_770_649_200.0;

fn office_schedule(cadence: Cadence) -> Schedule {
    Schedule {
        cadence,
        calendar: Calendar::office(),
    }
}

#[tokio::test]
async fn a_scheduled_source_is_next_due_after_the_weekend() {
    let app = TestApp::new();
    let health = app.exporter.health();
    health.set_schedules(BTreeMap::from([(
        "konbini".to_owned(),
        office_schedule(Cadence::BusinessDaily),
    )]));
    health.set_last_heard(&[("konbini", FRIDAY_EVENING), ("counter", FRIDAY_EVENING)]);
    let text = app.scrape_metrics().await;
    let next_due = "mieruka_source_next_due_timestamp_seconds";
    assert_eq!(
        sample(&text, next_due, &[("source", "konbini")]),
        Some(END_OF_MONDAY)
    );
    // A source without a schedule has no next-due instant.
    assert_eq!(sample(&text, next_due, &[("source", "counter")]), None);
}

#[tokio::test]
async fn an_inbox_file_counts_as_an_arrival_of_its_sources() {
    let app = TestApp::new();
    let health = app.exporter.health();
    health.declare_inbox("konbini-drop");
    health.set_inbox_sources("konbini-drop", &["konbini".to_owned()]);
    // Scheduled after an arrival: the arrival is not lost.
    health.inbox_file("konbini-drop", "done", [3, 0, 0], FRIDAY_EVENING);
    health.set_schedules(BTreeMap::from([(
        "konbini".to_owned(),
        office_schedule(Cadence::BusinessDaily),
    )]));
    let text = app.scrape_metrics().await;
    assert_eq!(
        sample(
            &text,
            "mieruka_source_next_due_timestamp_seconds",
            &[("source", "konbini")]
        ),
        Some(END_OF_MONDAY)
    );
}
