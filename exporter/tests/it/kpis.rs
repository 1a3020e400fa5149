//! `render_kpis`: the KPI part of the exposition, as the dashboards and rules read it.

use mieruka_aggregator::{FiscalYear, Plan};
use mieruka_exporter::render_kpis;

use crate::helpers::{figures, kpi_year, now, sample};

fn rendered() -> (Plan, String) {
    let plan = Plan::ome().unwrap();
    let text = render_kpis(&plan, &figures(&plan));
    (plan, text)
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn the_card_holding_rate_has_its_target_baseline_and_tolerance_as_exact_lines() {
    let (_, text) = rendered();
    for line in [
        r#"mieruka_kpi_target{fiscal_year="2026",kpi="mynumber_card_holding_rate"} 84.6"#,
        r#"mieruka_kpi_target{fiscal_year="2027",kpi="mynumber_card_holding_rate"} 85.8"#,
        r#"mieruka_kpi_target{fiscal_year="2028",kpi="mynumber_card_holding_rate"} 86.8"#,
        r#"mieruka_kpi_baseline{fiscal_year="2026",kpi="mynumber_card_holding_rate"} 82"#,
        r#"mieruka_kpi_tolerance{fiscal_year="2026",kpi="mynumber_card_holding_rate"} 0.5"#,
        r#"mieruka_kpi_on_track{fiscal_year="2026",kpi="mynumber_card_holding_rate"} 1"#,
        r#"mieruka_kpi_value{fiscal_year="2026",kpi="konbini_issuance_rate"} 44"#,
    ] {
        assert!(has_line(&text, line), "missing line {line}\n{text}");
    }
}

#[test]
fn the_card_holding_rate_is_holders_over_population_and_paced_from_the_year_start() {
    let (_, text) = rendered();
    let get = |name| sample(&text, name, &kpi_year("mynumber_card_holding_rate", "2026")).unwrap();
    let f = FiscalYear(2026).elapsed_fraction(now());
    assert!((get("mieruka_kpi_value") - 84.8).abs() < 1e-9);
    // B is the value at the year's start (both levels had a snapshot then): 82.4.
    let pace = 82.4 + (84.6 - 82.4) * f;
    assert!((get("mieruka_kpi_pace") - pace).abs() < 1e-9);
    assert!((get("mieruka_kpi_drift") - (84.8 - pace)).abs() < 1e-9);
    assert!((get("mieruka_kpi_attainment_ratio") - (84.8 - 82.4) / (84.6 - 82.4)).abs() < 1e-9);
    assert!(get("mieruka_kpi_projection") <= 100.0);
}

#[test]
fn a_kpi_without_a_target_has_a_value_but_no_target_pace_attainment_drift_or_on_track() {
    let (_, text) = rendered();
    let labels = kpi_year("a4_paper_sheets_purchased", "2026");
    assert_eq!(sample(&text, "mieruka_kpi_value", &labels), Some(250_000.0));
    for absent in [
        "mieruka_kpi_target",
        "mieruka_kpi_pace",
        "mieruka_kpi_attainment_ratio",
        "mieruka_kpi_drift",
        "mieruka_kpi_on_track",
    ] {
        assert_eq!(
            sample(&text, absent, &labels),
            None,
            "{absent} should be absent"
        );
    }
    assert!(
        !text.contains(r#"mieruka_kpi_target{fiscal_year="2026",kpi="a4_paper_sheets_purchased"}"#)
    );
    // Nor in any year: the plan sets none.
    assert!(!text
        .lines()
        .any(|l| l.starts_with("mieruka_kpi_target{") && l.contains("a4_paper_sheets_purchased")));
}

#[test]
fn a_year_not_yet_started_has_its_target_but_no_value() {
    let (_, text) = rendered();
    let labels = kpi_year("umepon_registrations", "2027");
    assert_eq!(sample(&text, "mieruka_kpi_target", &labels), Some(10_000.0));
    assert_eq!(sample(&text, "mieruka_kpi_value", &labels), None);
}

#[test]
fn every_kpi_has_one_info_series_with_the_plans_names() {
    let (plan, text) = rendered();
    for kpi in &plan.kpis {
        let info = [
            ("kpi", kpi.id.as_str()),
            ("name_ja", kpi.name_ja.as_str()),
            ("name_en", kpi.name_en.as_str()),
            ("unit", kpi.unit.as_str()),
            ("direction", kpi.direction.as_str()),
            ("chapter", kpi.chapter.as_str()),
        ];
        assert_eq!(
            sample(&text, "mieruka_kpi_info", &info),
            Some(1.0),
            "{}",
            kpi.id
        );
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("mieruka_kpi_info{"))
            .count(),
        plan.kpis.len()
    );
    assert!(has_line(
        &text,
        r#"mieruka_kpi_info{chapter="1",direction="up",kpi="mynumber_card_holding_rate",name_en="My Number card holding rate",name_ja="マイナンバーカード保有率",unit="%"} 1"#
    ));
}

#[test]
fn a_milestone_exports_its_stage_and_target_stage_as_indices() {
    let (_, text) = rendered();
    let labels = kpi_year("disposition_notice_online", "2026");
    assert_eq!(
        sample(&text, "mieruka_kpi_milestone_stage", &labels),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "mieruka_kpi_milestone_target_stage", &labels),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_kpi_milestone_target_stage",
            &kpi_year("disposition_notice_online", "2028")
        ),
        Some(3.0)
    );
    // A milestone whose target is unset has a stage but no target stage.
    let library = kpi_year("library_card_with_mynumber", "2026");
    assert_eq!(
        sample(&text, "mieruka_kpi_milestone_stage", &library),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "mieruka_kpi_milestone_target_stage", &library),
        None
    );
    // Stages are for milestones only.
    assert_eq!(
        sample(
            &text,
            "mieruka_kpi_milestone_stage",
            &kpi_year("konbini_issuance_rate", "2026")
        ),
        None
    );
}

#[test]
fn as_of_is_the_latest_occurrence_behind_the_value_and_elapsed_covers_every_year() {
    let (plan, text) = rendered();
    let as_of = crate::helpers::ts("2026-09-01T12:00:00+09:00").unix_seconds_f64();
    assert_eq!(
        sample(
            &text,
            "mieruka_kpi_as_of_timestamp_seconds",
            &[("kpi", "mynumber_card_holding_rate")]
        ),
        Some(as_of)
    );
    assert_eq!(
        sample(
            &text,
            "mieruka_kpi_as_of_timestamp_seconds",
            &[("kpi", "generative_ai_tools")]
        ),
        None
    );
    for year in plan.years() {
        let y = year.0.to_string();
        let f = sample(
            &text,
            "mieruka_kpi_elapsed_ratio",
            &[("fiscal_year", y.as_str())],
        )
        .unwrap();
        assert!((f - year.elapsed_fraction(now())).abs() < 1e-12);
    }
}

#[test]
fn every_exported_year_is_named_in_the_japanese_era() {
    let (plan, text) = rendered();
    for (year, era) in [
        ("2025", "令和7年度"),
        ("2026", "令和8年度"),
        ("2028", "令和10年度"),
    ] {
        let v = sample(
            &text,
            "mieruka_fiscal_year_info",
            &[("fiscal_year", year), ("era_ja", era)],
        );
        assert_eq!(v, Some(1.0), "FY{year}");
    }
    let n = text
        .lines()
        .filter(|l| l.starts_with("mieruka_fiscal_year_info{"))
        .count();
    assert_eq!(n, plan.years().count());
}

#[test]
fn every_family_has_english_help() {
    let (_, text) = rendered();
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP ")).collect();
    assert_eq!(types, helps.len());
    assert!(
        helps
            .iter()
            .all(|h| h.split(' ').count() > 6 && h.is_ascii()),
        "{helps:#?}"
    );
}

#[test]
fn rendering_is_deterministic() {
    let (plan, text) = rendered();
    assert_eq!(render_kpis(&plan, &figures(&plan)), text);
}
