//! One status, the same everywhere: on `mieruka demo`, each KPI's label on the status
//! page is the one the alert rules' figures in `/metrics` give it, the page shows the
//! figures with the alerts' decimals, and the fiscal year carries its 令和 name.
//!
//! The expected label is worked out here from the scraped series alone (value, target,
//! on_track, drift, tolerance, milestone stages) and from the generated rules (which KPI
//! has a projected-miss alert), never by calling the page's own function.

use std::collections::BTreeMap;

use mieruka_aggregator::{FiscalYear, Plan};
use mieruka_exporter::precision::kpi_decimals;
use mieruka_exporter::rules::{milestone_due, rules_yaml, RulesOptions};
use mieruka_ingest::Timestamp;

use crate::helpers::*;

/// Each row's `data-kpi` → (`data-status`, the row's HTML).
fn rows(page: &str) -> BTreeMap<String, (String, String)> {
    page.split("<tr data-kpi=\"")
        .skip(1)
        .map(|rest| {
            let (kpi, rest) = rest.split_once('"').unwrap();
            let status = rest
                .split_once("data-status=\"")
                .and_then(|(_, s)| s.split_once('"'))
                .map(|(s, _)| s.to_owned())
                .unwrap_or_default();
            let row = rest.split("</tr>").next().unwrap_or_default().to_owned();
            (kpi.to_owned(), (status, row))
        })
        .collect()
}

/// The label the alerts' rule gives a KPI, from the metrics of FY2026 at `now`.
fn expected(plan: &Plan, m: &Metrics, yaml: &str, id: &str, now: Timestamp) -> &'static str {
    let kpi = plan.kpi(id).unwrap();
    let Some(value) = m.kpi("value", id) else {
        return "no-data";
    };
    let Some(target) = m.kpi("target", id) else {
        return "no-target";
    };
    if kpi.stages().is_some() {
        let stage = m.kpi("milestone_stage", id).unwrap();
        let target_stage = m.kpi("milestone_target_stage", id).unwrap();
        return if stage >= target_stage {
            "target-met"
        } else if now >= milestone_due(kpi, FiscalYear(2026)) {
            "overdue"
        } else {
            "on-pace"
        };
    }
    let info =
        m.0.keys()
            .find(|(n, l)| n == "mieruka_kpi_info" && l.contains(&format!("kpi=\"{id}\"")))
            .unwrap();
    assert!(
        info.1.contains("direction=\"up\""),
        "{id}: a down-is-better KPI with a target: extend this test (a flow meets it only at the year's end)"
    );
    if value >= target {
        return "target-met";
    }
    let has_projected_miss_alert = yaml.contains(&format!(
        "mieruka:kpi_on_track:current_fy{{kpi=\\\"{id}\\\"}} == 0"
    ));
    if m.kpi("on_track", id) == Some(0.0) && has_projected_miss_alert {
        return "projected-miss";
    }
    let drift = m.kpi("drift", id).unwrap();
    if drift < -m.kpi("tolerance", id).unwrap() {
        return "behind-pace";
    }
    "on-pace"
}

#[test]
fn every_kpi_of_the_demo_carries_the_label_its_metrics_give_it() {
    let plan = Plan::ome().unwrap();
    let yaml = rules_yaml(&plan, &RulesOptions::default());
    let now = Timestamp::parse_rfc3339(DEMO_NOW).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path());
    let metrics_text = demo.scrape();
    let m = Metrics::parse(&metrics_text);
    let page = ureq::get(&format!("{}/", demo.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    demo.stop();

    let elapsed = m.get("mieruka_kpi_elapsed_ratio", &[("fiscal_year", "2026")]);
    assert!(
        elapsed.is_some_and(|f| f > 1.0 / 12.0 && f < 1.0),
        "{elapsed:?}"
    );
    let rows = rows(&page);
    assert_eq!(rows.len(), plan.kpis.len());
    let mut seen = BTreeMap::<&str, Vec<&str>>::new();
    for kpi in &plan.kpis {
        let want = expected(&plan, &m, &yaml, &kpi.id, now);
        let (got, row) = &rows[&kpi.id];
        assert_eq!(
            got, want,
            "{}: the page says {got}, the metrics {want}; row: {row}",
            kpi.id
        );
        seen.entry(want).or_default().push(&kpi.id);
    }
    eprintln!("labels of the demo: {seen:?}");
    // The demo must exercise the rule, not only its first steps.
    for status in ["no-data", "no-target", "on-pace"] {
        assert!(seen.contains_key(status), "no KPI is {status}: {seen:?}");
    }
    assert!(
        seen.contains_key("projected-miss") || seen.contains_key("behind-pace"),
        "no KPI is behind in the demo: {seen:?}"
    );

    // The alerts' decimals: a percentage reads 84.80 on the page as in an alert's text.
    for kpi in plan.kpis.iter().filter(|k| k.stages().is_none()) {
        let Some(v) = m.kpi("value", &kpi.id) else {
            continue;
        };
        let text = format!("{:.*}", kpi_decimals(kpi), v);
        let digits: String = rows[&kpi.id].1.chars().filter(|c| *c != ',').collect();
        assert!(
            digits.contains(&format!(">{text}")),
            "{}: no {text} in {}",
            kpi.id,
            rows[&kpi.id].1
        );
    }

    // 令和, on the page and in /metrics; counts read with their counter words.
    assert!(
        metrics_text
            .contains("mieruka_fiscal_year_info{era_ja=\"令和8年度\",fiscal_year=\"2026\"} 1"),
        "no era series for FY2026"
    );
    assert!(
        page.contains("2026年度（令和8年度）"),
        "no 令和 year on the page"
    );
    for unit in ["reviews / FY", "events / FY", "people / FY"] {
        assert!(!page.contains(unit), "the page still reads {unit:?}");
    }
}
