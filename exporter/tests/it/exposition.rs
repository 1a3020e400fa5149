//! The whole `/metrics` answer is valid text exposition, line by line.

use std::collections::{HashMap, HashSet};

use mieruka_ingest::{Reason, Rejection, Status};

use crate::helpers::{parse_sample, TestApp};

/// The family a sample belongs to: histograms write `_bucket`, `_sum` and `_count`.
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| {
            types
                .get(*base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        })
}

#[tokio::test]
async fn every_line_of_metrics_is_a_comment_or_a_well_formed_sample() {
    let app = TestApp::published();
    let health = app.exporter.health();
    health.record("konbini", &Status::Accepted);
    health.record(
        "konbini",
        &Status::Rejected(Rejection::at(Reason::UnknownValue, "data.channel", "x")),
    );
    health.set_last_heard(&[("konbini", 1_790_000_000.5)]);
    health.observe_commit(0.004);
    let text = app.scrape_metrics().await;

    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut series: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = 0;
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", n + 1);
        assert!(!line.is_empty(), "{at}: empty line");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(&at);
            assert!(!help.is_empty(), "{at}");
            assert!(
                helps.insert(name.to_owned()),
                "{at}: second HELP for {name}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect(&at);
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{at}"
            );
            // A family appears once: the KPI text and the health text never share one.
            assert!(
                types.insert(name.to_owned(), ty.to_owned()).is_none(),
                "{at}: family split"
            );
            current = Some(name.to_owned());
        } else {
            assert!(!line.starts_with('#'), "{at}: unknown comment");
            let s = parse_sample(line).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert!(
                s.value.is_finite() || s.labels.iter().any(|(k, _)| k == "le"),
                "{at}"
            );
            let fam = family(&s.name, &types).unwrap_or_else(|| panic!("{at}: no TYPE"));
            assert_eq!(
                current.as_deref(),
                Some(fam),
                "{at}: sample outside its family"
            );
            let mut labels = s.labels.clone();
            labels.sort();
            let key = format!("{}{labels:?}", s.name);
            assert!(series.insert(key), "{at}: duplicate series");
            samples += 1;
        }
    }
    assert!(text.ends_with('\n'));
    assert!(samples > 200, "only {samples} samples");
    for family in [
        "mieruka_kpi_value",
        "mieruka_kpi_target",
        "mieruka_kpi_baseline",
        "mieruka_kpi_pace",
        "mieruka_kpi_projection",
        "mieruka_kpi_attainment_ratio",
        "mieruka_kpi_drift",
        "mieruka_kpi_on_track",
        "mieruka_kpi_tolerance",
        "mieruka_kpi_milestone_stage",
        "mieruka_kpi_milestone_target_stage",
        "mieruka_kpi_info",
        "mieruka_kpi_as_of_timestamp_seconds",
        "mieruka_kpi_elapsed_ratio",
        // 0 for every exported figure until its year is closed.
        "mieruka_kpi_final",
        "mieruka_events_total",
        "mieruka_source_last_received_timestamp_seconds",
        "mieruka_commit_duration_seconds",
        "mieruka_snapshot_age_seconds",
        // (mieruka_consumer_lag is the aggregate role's: tests/it/health.rs)
    ] {
        assert!(types.contains_key(family), "no family {family}");
        assert!(helps.contains(family), "no help for {family}");
    }
}

#[test]
fn the_sample_parser_refuses_what_prometheus_would() {
    for bad in [
        "1abc 1",
        "name{a=\"1\"}1",
        "name{a=1} 1",
        "name{a=\"1\" 1",
        "name{a=\"1\",} x",
        "name 1 2 3",
        "name inf",
        "name",
    ] {
        assert!(parse_sample(bad).is_err(), "{bad:?} should be refused");
    }
    let s = parse_sample(r#"a_b:c{x="q\"\\",y=""} -1.5e3"#).unwrap();
    assert_eq!(
        s.labels,
        vec![("x".into(), "q\"\\".into()), ("y".into(), String::new())]
    );
    assert_eq!(s.value, -1500.0);
}
