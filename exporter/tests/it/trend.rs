//! The year by month behind the charts, and the pages that draw it.

use mieruka_aggregator::{Engine, FiscalYear, Plan};
use mieruka_exporter::render_kpi_page;
use mieruka_exporter::trend::trends;

use crate::helpers::{now, story, TestApp};

#[test]
fn each_kpis_last_point_is_the_snapshots_value_and_last_year_is_whole() {
    let plan = Plan::ome().unwrap();
    let mut engine = Engine::new(&plan);
    engine.apply_all(story(&plan));
    let trends = trends(&plan, engine.ledger(), now());
    let figures = engine.figures(now());
    assert_eq!(trends.year, Some(FiscalYear(2026)));
    for (k, kpi) in plan.kpis_with_ids() {
        let s = trends.of(k).unwrap();
        // April to October: `now` is October 1, 00:00, the first instant of October.
        assert_eq!(s.this_year.len(), 7, "{}", kpi.id);
        assert_eq!(s.last_year.len(), 12, "{}", kpi.id);
        let fig = figures
            .iter()
            .find(|f| f.kpi == k && f.year == FiscalYear(2026))
            .unwrap();
        assert_eq!(*s.this_year.last().unwrap(), fig.value, "{}", kpi.id);
    }
    let umepon = plan.kpi_id("umepon_registrations").unwrap();
    let page = render_kpi_page(&plan, umepon, &figures, &trends, now());
    assert!(page.contains("<svg class=\"chart large\""), "{page}");
    assert!(page.contains("4,331人"), "the value is missing");
    assert!(page.contains("2026年度（令和8年度）"));
    assert!(!page.contains("<script"));
}

#[tokio::test]
async fn a_kpi_page_is_served_by_id_and_an_unknown_id_is_not_found() {
    let app = TestApp::published();
    let (status, _, page) = app.get("/kpi/umepon_registrations").await;
    assert_eq!(status, 200);
    assert!(page.contains("うめPON登録者数"));
    let (status, _, _) = app.get("/kpi/no_such_kpi").await;
    assert_eq!(status, 404);
}
