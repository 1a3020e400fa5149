//! The status page as a person reads it: every KPI, its figures with units, its status.

use mieruka_aggregator::{FiscalYear, Plan};
use mieruka_exporter::render_status_page;

use crate::helpers::{figures, html, now, TestApp};

fn page() -> String {
    let plan = Plan::ome().unwrap();
    render_status_page(&plan, &figures(&plan), Some(now()))
}

/// The table row of one KPI.
fn row<'a>(page: &'a str, kpi: &str) -> &'a str {
    let start = page
        .find(&format!("<tr data-kpi=\"{kpi}\""))
        .unwrap_or_else(|| panic!("no row for {kpi}"));
    let end = start + page[start..].find("</tr>").unwrap();
    &page[start..end]
}

#[test]
fn the_page_is_japanese_utf8_html_titled_with_the_plan() {
    let page = page();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<html lang=\"ja\">"));
    assert!(page.contains("<meta charset=\"utf-8\">"));
    assert!(page.contains("<title>デジタル推シン・オウメ — スマートローカル青梅アクションプラン2026-2028 — Smart Local Ome Action Plan 2026–2028</title>"));
    assert!(!page.contains("<script"));
}

#[test]
fn the_page_says_which_fiscal_year_and_how_much_of_it_has_elapsed() {
    let page = page();
    assert!(page.contains("2026年度"), "no year");
    assert!(page.contains("FY2026"));
    assert!(page.contains("50.1%"));
    assert!(page.contains("集計時点 <span lang=\"en\">Snapshot</span>: 2026-10-01 00:00 JST"));
    assert!(page.contains("2026-09-01 12:00 JST"), "latest data");
}

#[test]
fn every_chapter_has_a_section_and_every_kpi_a_row() {
    let plan = Plan::ome().unwrap();
    let page = page();
    for chapter in &plan.chapters {
        assert!(page.contains(&html(&chapter.name_ja)) && page.contains(&html(&chapter.name_en)));
    }
    assert_eq!(page.matches("<section").count(), plan.chapters.len());
    for kpi in &plan.kpis {
        let row = row(&page, &kpi.id);
        assert!(
            row.contains(&html(&kpi.name_ja)) && row.contains(&html(&kpi.name_en)),
            "{}",
            kpi.id
        );
    }
    assert_eq!(page.matches("<tr data-kpi=").count(), plan.kpis.len());
    for header in [
        "値<small>Value",
        "目標<small>Target",
        "ペース<small>Pace",
        "見込み<small>Projection",
        "状況<small>Status",
    ] {
        assert_eq!(
            page.matches(header).count(),
            plan.chapters.len(),
            "{header}"
        );
    }
}

#[test]
fn each_kpi_shows_its_status_in_both_languages_with_the_alerts_decimals() {
    let page = page();
    let holding = row(&page, "mynumber_card_holding_rate");
    assert!(
        holding.contains("84.80 %") && holding.contains("84.60 %"),
        "{holding}"
    );
    assert!(
        holding.contains("data-status=\"target-met\"")
            && holding.contains("達成")
            && holding.contains("Target met"),
        "{holding}"
    );

    let umepon = row(&page, "umepon_registrations");
    assert!(
        umepon.contains("4,331人") && umepon.contains("7,500人"),
        "{umepon}"
    );
    assert!(
        umepon.contains("未達見込み") && umepon.contains("Projected to miss"),
        "{umepon}"
    );

    let paper = row(&page, "a4_paper_sheets_purchased");
    assert!(paper.contains("250,000枚"), "{paper}");
    assert!(
        paper.contains("目標未設定") && paper.contains("No target"),
        "{paper}"
    );

    let ai = row(&page, "generative_ai_tools");
    assert!(ai.contains("データなし") && ai.contains("No data"), "{ai}");
    assert!(!page.contains(" / FY<"), "a unit in English after a count");
}

#[test]
fn the_year_is_also_named_in_the_reiwa_era() {
    assert!(page().contains("2026年度（令和8年度） <span lang=\"en\">FY2026</span>"));
}

#[test]
fn a_milestone_is_behind_only_past_its_due_date() {
    let page = page();
    let notices = row(&page, "disposition_notice_online");
    assert!(notices.contains("導入に向けた調査・研究"), "{notices}");
    assert!(notices.contains("達成"), "{notices}");
    // eL-QR sits at its baseline stage, below its FY2026 target stage, but that stage is
    // due only at the end of the year.
    let el_qr = row(&page, "el_qr_public_funds");
    assert!(el_qr.contains("対象となる税について導入済"), "{el_qr}");
    assert!(
        el_qr.contains("介護保険料・後期高齢者医療保険料の利用開始"),
        "{el_qr}"
    );
    assert!(el_qr.contains("data-status=\"on-pace\""), "{el_qr}");
    // Due the day before the snapshot: overdue, as MierukaMilestoneOverdue says.
    let mut plan = Plan::ome().unwrap();
    let kpi = plan
        .kpis
        .iter_mut()
        .find(|k| k.id == "el_qr_public_funds")
        .unwrap();
    kpi.due
        .insert(FiscalYear(2026), "2026-09-30".parse().unwrap());
    let page = render_status_page(&plan, &figures(&plan), Some(now()));
    let el_qr = row(&page, "el_qr_public_funds");
    assert!(
        el_qr.contains("data-status=\"overdue\"") && el_qr.contains("期限超過"),
        "{el_qr}"
    );
}

#[test]
fn text_from_the_plan_is_escaped() {
    let mut plan = Plan::ome().unwrap();
    plan.kpis[0].name_en = "<b>\"bold\" & 'brave'</b>".to_owned();
    let page = render_status_page(&plan, &[], None);
    assert!(page.contains("&lt;b&gt;&quot;bold&quot; &amp; &#39;brave&#39;&lt;/b&gt;"));
    assert!(!page.contains("<b>"));
}

#[tokio::test]
async fn the_served_page_is_the_one_rendered_at_publish() {
    let app = TestApp::new();
    let (_, _, before) = app.get("/").await;
    assert!(before.contains("No snapshot has been published yet"));
    assert_eq!(before.matches("<tr data-kpi=").count(), app.plan.kpis.len());
    app.publish();
    let (_, _, after) = app.get("/").await;
    assert_eq!(after, page());
}
