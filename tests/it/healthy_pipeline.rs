//! The shipped Prometheus configuration and rules (`deploy/prometheus/`), adapted only
//! to the test's addresses and a one-second interval, scrape the three production roles
//! (tansu + PostgreSQL) of a healthy pipeline: no pipeline alert is pending or firing,
//! and each health series comes from the one job it means something in.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::{cert, free_port};
use crate::kafka::{paper, wait_for_metrics, Setup, KONBINI, OFFICE_TOKEN};
use crate::prometheus::Prometheus;

/// The alerts about the pipeline itself (the rest are about the KPIs, which a few test
/// events leave behind pace: a business signal, not a fault of the pipeline).
const PIPELINE_ALERTS: &[&str] = &[
    "MierukaFeedSilent",
    "MierukaRejectedEvents",
    "MierukaConsumerLag",
    "MierukaSnapshotStale",
    "MierukaExporterAbsent",
];

/// `deploy/prometheus/prometheus.yml` with the roles at their test addresses, every
/// interval at one second, and its rules copied beside it.
fn shipped_config(dir: &Path, roles: [(&str, &str); 3], port: u16) -> String {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    for rule in std::fs::read_dir(deploy.join("rules")).unwrap() {
        let rule = rule.unwrap().path();
        std::fs::copy(&rule, dir.join("rules").join(rule.file_name().unwrap())).unwrap();
    }
    let mut config = std::fs::read_to_string(deploy.join("prometheus.yml")).unwrap();
    for (shipped, actual) in roles {
        assert!(
            config.contains(shipped),
            "the shipped config scrapes {shipped}"
        );
        config = config.replace(shipped, actual);
    }
    let replace = [
        ("scrape_interval: 30s", "scrape_interval: 1s".to_owned()),
        (
            "evaluation_interval: 1m",
            "evaluation_interval: 1s".to_owned(),
        ),
        ("localhost:9090", format!("127.0.0.1:{port}")),
        // Nobody listens there: the alerts stay in Prometheus, where the test reads them.
        ("alertmanager:9093", format!("127.0.0.1:{}", free_port())),
    ];
    for (shipped, adapted) in replace {
        assert!(config.contains(shipped), "the shipped config has {shipped}");
        config = config.replace(shipped, &adapted);
    }
    config
}

/// The jobs that have series of `metric`.
fn jobs_of(prom: &Prometheus, metric: &str) -> BTreeSet<String> {
    prom.query(&format!("count by (job) ({metric})"))
        .unwrap()
        .iter()
        .filter_map(|s| s["metric"]["job"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_shipped_prometheus_config_sees_no_pipeline_alert_on_a_healthy_pipeline() {
    let s = Setup::new();
    let ingest = s.start("ingest", "ingest");
    let aggregate = s.start("aggregate", "aggregate");
    let export = s.start("export", "export");
    for role in [&ingest, &aggregate, &export] {
        role.wait_ready(Duration::from_secs(60));
    }
    ingest.post(
        KONBINI,
        &[
            cert("k-1", "konbini", 2, "2026-09-01T10:00:00+09:00"),
            cert("k-2", "counter", 1, "2026-09-02T10:00:00+09:00"),
        ],
    );
    ingest.post(
        OFFICE_TOKEN,
        &[paper("p-1", "A4", 500, "2026-09-03T10:00:00+09:00")],
    );
    wait_for_metrics(
        &export,
        &[&ingest, &aggregate, &export],
        Duration::from_secs(60),
        "the export role sees both sources heard from",
        |m| {
            ["konbini", "office"].iter().all(|s| {
                m.get(
                    "mieruka_source_last_received_timestamp_seconds",
                    &[("source", s)],
                )
                .is_some()
            }) && m
                .get(
                    "mieruka_kpi_value",
                    &[("kpi", crate::kafka::A4), ("fiscal_year", "2026")],
                )
                .is_some()
        },
        |m| {
            format!(
                "{:?}",
                m.0.keys()
                    .filter(|(n, _)| n.contains("last_received"))
                    .collect::<Vec<_>>()
            )
        },
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let host = |r: &crate::kafka::Role| r.base.trim_start_matches("http://").to_owned();
    let (e, i, a) = (host(&export), host(&ingest), host(&aggregate));
    let config = shipped_config(
        dir.path(),
        [
            ("export:9464", &e),
            ("ingest:8080", &i),
            ("aggregate:9465", &a),
        ],
        port,
    );
    let prom = Prometheus::with_config(dir.path(), &config, port);

    // Every mieruka job up, a few samples, the rules evaluated on them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let jobs: BTreeSet<String> = ["mieruka-export", "mieruka-ingest", "mieruka-aggregate"]
        .map(str::to_owned)
        .into();
    loop {
        let up: BTreeSet<String> = prom
            .query("count_over_time(up{job=~\"mieruka-.*\"}[1m]) >= 5 and up == 1")
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s["metric"]["job"].as_str().map(str::to_owned))
            .collect();
        let recorded = prom
            .query("mieruka:kpi_value:current_fy")
            .is_ok_and(|r| !r.is_empty());
        if up == jobs && recorded {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the three roles were not scraped with rules evaluated within 60 s: up {up:?}, recorded {recorded}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let active: Vec<_> = prom
        .active_alerts()
        .into_iter()
        .filter(|(name, _, _)| PIPELINE_ALERTS.contains(&name.as_str()))
        .collect();
    assert!(
        active.is_empty(),
        "pipeline alerts on a healthy pipeline: {active:?}"
    );

    // Each health series comes from the role it means something in.
    let only = |job: &str| BTreeSet::from([job.to_owned()]);
    let counting = BTreeSet::from(["mieruka-aggregate".to_owned(), "mieruka-ingest".to_owned()]);
    assert_eq!(
        jobs_of(&prom, "mieruka_snapshot_age_seconds"),
        only("mieruka-export")
    );
    assert_eq!(
        jobs_of(&prom, "mieruka_source_last_received_timestamp_seconds"),
        only("mieruka-export")
    );
    assert_eq!(
        jobs_of(&prom, "mieruka_kpi_elapsed_ratio"),
        only("mieruka-export")
    );
    assert_eq!(jobs_of(&prom, "mieruka_kpi_info"), only("mieruka-export"));
    assert_eq!(jobs_of(&prom, "mieruka_events_total"), counting);
    // The aggregators count what they commit under the event's configured source.
    let accepted = prom
        .query("sum(mieruka_events_total{job=\"mieruka-aggregate\",source=\"konbini\",outcome=\"accepted\"})")
        .unwrap();
    assert_eq!(accepted[0]["value"][1], "2", "{accepted:?}");

    prom.stop();
    for role in [ingest, aggregate, export] {
        role.stop();
    }
}
