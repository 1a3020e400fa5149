//! The council report (進捗報告): the plan's KPIs for one fiscal year as of one instant,
//! chapter by chapter, for printing and handing out. The same figures, the same status
//! rule ([`crate::status`]), the same charts ([`crate::trend`]) and the same wording as
//! the status page; `mieruka report` turns it into HTML, PDF, xlsx or CSV.
//!
//! A figure is provisional (速報値) until its fiscal year is closed (`mieruka
//! close-year`), final (確定値) after: the row says which, from the figure itself.

use std::fmt::Write as _;

use mieruka_aggregator::plan::Chapter;
use mieruka_aggregator::{Figure, FiscalYear, Kpi, KpiId, Plan};
use mieruka_ingest::Timestamp;

use crate::feeds::SourceDirectory;
use crate::kpi_page::{measure_descriptions, write_chart_figure, write_note_and_measures};
use crate::status::{status, Status};
use crate::status_page::{cell, esc, jst, signed, STYLE};
use crate::trend::{chart, Size, Trends};
use crate::wareki::era_fiscal_year;

/// Whether a figure may still change: provisional until the fiscal year is closed
/// (`mieruka close-year`), final after.
pub use mieruka_aggregator::Finality;

/// One KPI's line of the report.
#[derive(Clone, Debug)]
pub struct Row<'a> {
    /// The KPI's id in the plan.
    pub id: KpiId,
    /// The plan's KPI.
    pub kpi: &'a Kpi,
    /// Its figure of the report's year, if the engine has one.
    pub fig: Option<&'a Figure>,
    /// The status page's label for it.
    pub status: Status,
    /// Provisional or final.
    pub finality: Finality,
}

impl Row<'_> {
    /// (Japanese, English) names of the five figures a row shows, with the figure.
    pub fn figures(&self) -> [(&'static str, &'static str, Option<f64>); 5] {
        let f = self.fig;
        [
            ("基準値", "Baseline", f.and_then(|f| f.baseline)),
            ("目標", "Target", f.and_then(|f| f.target)),
            ("値", "Value", f.and_then(|f| f.value)),
            ("ペース", "Pace", f.and_then(|f| f.pace)),
            ("見込み", "Projection", f.and_then(|f| f.projection)),
        ]
        .map(|(ja, en, x)| (ja, en, x.filter(|x| x.is_finite())))
    }
}

/// The report of `year` as of `at`: the plan, the engine's figures at `at` and the
/// months of the year (from [`crate::trend::trends_of_year`]).
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The fiscal year reported on.
    pub year: FiscalYear,
    /// The instant the figures are as of.
    pub at: Timestamp,
    /// The engine's figures at `at` (every year; the report picks its own).
    pub figures: &'a [Figure],
    /// The months of `year` up to `at`.
    pub trends: &'a Trends,
}

impl<'a> Report<'a> {
    /// The rows of one chapter, in plan order.
    pub fn rows(&self, chapter: &Chapter) -> Vec<Row<'a>> {
        self.plan
            .kpis_with_ids()
            .filter(|(_, kpi)| kpi.chapter == chapter.id)
            .map(|(k, kpi)| {
                let fig = self
                    .figures
                    .iter()
                    .find(|f| f.kpi == k && f.year == self.year);
                Row {
                    id: k,
                    kpi,
                    fig,
                    status: status(self.plan, kpi, fig, self.at),
                    finality: fig.map_or(Finality::Provisional, |f| f.finality),
                }
            })
            .collect()
    }

    /// `令和8年度（FY2026）`, or `FY2026` before the eras known.
    pub fn year_name(&self) -> String {
        let fy = self.year;
        match era_fiscal_year(fy) {
            Some(era) => format!("{era}（FY{fy}）"),
            None => format!("{fy}年度（FY{fy}）"),
        }
    }

    /// The instant the figures are as of, in JST (`2026-11-25 12:00 JST`).
    pub fn as_of_jst(&self) -> String {
        jst(self.at)
    }

    /// The whole report as one self-contained HTML document (inline CSS and SVG, no
    /// script, nothing fetched), laid out for A4 when printed.
    pub fn html(&self) -> String {
        self.html_with_sources(&SourceDirectory::default())
    }

    /// [`Report::html`] naming, in each definition, the configured sources that feed
    /// the KPI by their display names.
    pub fn html_with_sources(&self, sources: &SourceDirectory) -> String {
        let mut h = String::with_capacity(128 * 1024);
        self.write_cover(&mut h);
        for chapter in &self.plan.chapters {
            self.write_chapter(&mut h, chapter);
        }
        crate::revisions::write_report_section(&mut h, self.plan, self.at);
        self.write_definitions(&mut h, sources);
        h.push_str("</main>\n</body>\n</html>\n");
        h
    }

    fn write_cover(&self, h: &mut String) {
        let plan = self.plan;
        let (notice_ja, notice_en) = self.finality_notice();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>進捗報告 {} — {}</title>\n<style>{STYLE}{PRINT_STYLE}</style>\n</head>\n<body>\n\
             <header class=\"cover\">\n<p class=\"city\">{}</p>\n\
             <h1>{}<span class=\"en\" lang=\"en\">{}</span></h1>\n\
             <p class=\"title\">進捗報告 <span lang=\"en\">KPI progress report</span></p>\n\
             <p class=\"year\" data-year=\"{}\">{}</p>\n\
             <p>集計時点 <span lang=\"en\">As of</span>: <span data-as-of>{}</span> · 経過 \
             <span lang=\"en\">elapsed</span> {:.1}%</p>\n\
             <p class=\"notice\">{}<span lang=\"en\">{}</span></p>\n</header>\n<main>\n",
            esc(&self.year_name()),
            esc(&plan.name_ja),
            esc(&plan.city),
            esc(&plan.name_ja),
            esc(&plan.name_en),
            self.year,
            esc(&self.year_name()),
            self.as_of_jst(),
            self.year.elapsed_fraction(self.at) * 100.0,
            notice_ja,
            notice_en,
        );
    }

    /// Whether the year's figures are final, as the cover says it: (Japanese, English).
    pub fn finality_notice(&self) -> (String, String) {
        let closed = self.figures.iter().find_map(|f| match f.finality {
            Finality::Final { closed_at, .. } if f.year == self.year => Some(closed_at),
            _ => None,
        });
        match closed {
            Some(at) => (
                format!("数値は確定値です（{} 確定）。", jst(at)),
                format!(
                    "The figures are final: the fiscal year was closed on {}.",
                    jst(at)
                ),
            ),
            None => (
                "数値はすべて速報値です（年度の確定前）。".to_owned(),
                "Every figure is provisional: the fiscal year has not been closed.".to_owned(),
            ),
        }
    }

    /// One chapter: a heading, then a table and the chart of each KPI.
    fn write_chapter(&self, h: &mut String, chapter: &Chapter) {
        let _ = writeln!(
            h,
            "<section class=\"chapter\" id=\"chapter-{}\">\n<h2>{}. {}<span class=\"en\" lang=\"en\">{}</span></h2>",
            esc(&chapter.id),
            esc(&chapter.id),
            esc(&chapter.name_ja),
            esc(&chapter.name_en),
        );
        for row in self.rows(chapter) {
            self.write_kpi(h, &row);
        }
        h.push_str("</section>\n");
    }

    fn write_kpi(&self, h: &mut String, row: &Row<'_>) {
        let kpi = row.kpi;
        let st = row.status;
        let _ = write!(
            h,
            "<article class=\"kpi\" data-kpi=\"{}\" data-status=\"{}\">\n<h3>{}<span class=\"en\" lang=\"en\">{}</span></h3>\n\
             <table class=\"report\"><thead><tr>",
            esc(&kpi.id),
            st.id(),
            esc(&kpi.name_ja),
            esc(&kpi.name_en),
        );
        let figures = row.figures();
        for (ja, en, _) in &figures {
            let _ = write!(h, "<th>{ja}<small>{en}</small></th>");
        }
        h.push_str("<th>状況<small>Status</small></th><th>速報/確定<small>Provisional/final</small></th></tr></thead>\n<tbody><tr>");
        for (ja, en, x) in &figures {
            let _ = write!(
                h,
                "<td class=\"num\" data-label=\"{ja} {en}\">{}</td>",
                cell(kpi, *x)
            );
        }
        let _ = writeln!(
            h,
            "<td><span class=\"badge {}\">{}<small lang=\"en\">{}</small></span></td>\
             <td>{}<small lang=\"en\">{}</small>{}</td></tr></tbody></table>",
            st.id(),
            st.ja(),
            st.en(),
            row.finality.ja(),
            row.finality.en(),
            adjustment_html(kpi, row.fig),
        );
        let svg = self
            .trends
            .of(row.id)
            .and_then(|s| chart(kpi, row.fig, s, Size::Large));
        if let Some(svg) = svg {
            write_chart_figure(h, "report-chart", &svg);
        }
        h.push_str("</article>\n");
    }

    /// The plan's definitions and footnotes: each KPI's note, what its measures count
    /// and the line system that feeds it.
    fn write_definitions(&self, h: &mut String, sources: &SourceDirectory) {
        h.push_str(
            "<section class=\"definitions\">\n<h2>定義と注記<span class=\"en\" lang=\"en\">Definitions and footnotes</span></h2>\n",
        );
        for (k, kpi) in self.plan.kpis_with_ids() {
            let _ = writeln!(
                h,
                "<div class=\"definition\"><h3>{}<span class=\"en\" lang=\"en\">{} ({})</span></h3>",
                esc(&kpi.name_ja),
                esc(&kpi.name_en),
                esc(&kpi.id),
            );
            write_note_and_measures(h, kpi, &measure_descriptions(self.plan, kpi));
            let _ = write!(
                h,
                "<p>データ元 <span lang=\"en\">Feed</span>: {}",
                esc(&kpi.source)
            );
            let feeding = sources.feeding(self.plan, k, &[]);
            if !feeding.is_empty() {
                let names: Vec<String> = feeding.iter().map(|s| sources.name_html(s)).collect();
                let _ = write!(
                    h,
                    "<br>送信元 <span lang=\"en\">Sources</span>: {}",
                    names.join("、")
                );
            }
            h.push_str("</p></div>\n");
        }
        h.push_str("</section>\n");
    }
}

/// `確定後の修正 +3` after a final figure that events arriving since the close moved;
/// nothing otherwise.
pub fn adjustment_html(kpi: &Kpi, fig: Option<&Figure>) -> String {
    match fig.and_then(Figure::adjustment) {
        Some(a) if a != 0.0 => format!(
            "<br><span class=\"adjustment\">確定後の修正 <small lang=\"en\">Adjusted since the close</small> {}</span>",
            esc(&signed(kpi, a))
        ),
        _ => String::new(),
    }
}

/// An instant as the report writes it: `2026-11-25 12:00 JST`.
pub fn jst_text(t: Timestamp) -> String {
    jst(t)
}

/// The report's own layout on top of the status page's style: a cover page, each
/// chapter on a new page when printed (A4), KPIs not split across pages.
const PRINT_STYLE: &str = "\
.cover{padding-top:3rem}.cover .city{font-size:1.1rem;margin:0}.cover .title{font-size:1.4rem;font-weight:bold}\
h3{font-size:1rem;margin:1rem 0 .4rem}h3 .en{display:inline;margin-left:.5em}\
article.kpi{break-inside:avoid;margin-bottom:1rem}\
table.report td.num{width:auto;white-space:nowrap}table.report td:first-child{min-width:0}\
figure.report-chart{max-width:24rem;margin:.5rem 0;background:#fff;border:1px solid #d0d7de;padding:.4rem}\
.definition{break-inside:avoid}.definition p{margin:.2rem 0;font-size:.85rem}\
@page{size:A4;margin:14mm}\
@media print{body{background:#fff}header,main{max-width:none;padding:0}\
.cover{break-after:page}section.chapter,section.definitions{break-before:page}}";

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn every_kpi_has_its_table_and_definition_and_every_figure_is_provisional() {
        let plan = Plan::ome().unwrap();
        let trends = Trends::default();
        let report = Report {
            plan: &plan,
            year: FiscalYear(2026),
            at: ts("2026-11-25T12:00:00+09:00"),
            figures: &[],
            trends: &trends,
        };
        let html = report.html();
        assert_eq!(
            html.matches("<article class=\"kpi\"").count(),
            plan.kpis.len()
        );
        assert_eq!(
            html.matches("<div class=\"definition\">").count(),
            plan.kpis.len()
        );
        // Without figures each KPI is データなし, as on the status page.
        assert_eq!(
            html.matches("data-status=\"no-data\"").count(),
            plan.kpis.len()
        );
        assert_eq!(html.matches("速報値<small").count(), plan.kpis.len());
        assert!(html.contains("令和8年度（FY2026）") && html.contains("2026-11-25 12:00 JST"));
        assert!(html.contains(&esc(&plan.city)) && !html.contains("<script"));
        for chapter in &plan.chapters {
            assert!(html.contains(&format!("id=\"chapter-{}\"", chapter.id)));
        }
        assert!(!html.contains("送信元"));
    }

    #[test]
    fn a_definition_names_the_configured_sources_by_their_display_names() {
        let plan = Plan::ome().unwrap();
        let trends = Trends::default();
        let report = Report {
            plan: &plan,
            year: FiscalYear(2026),
            at: ts("2026-11-25T12:00:00+09:00"),
            figures: &[],
            trends: &trends,
        };
        let mut sources = SourceDirectory::default();
        sources.allow(&["apps".to_owned()], &["app.registered".to_owned()]);
        if let Some(apps) = sources.sources.get_mut("apps") {
            apps.display_name = Some("市公式アプリ".to_owned());
        }
        let html = report.html_with_sources(&sources);
        let umepon = html
            .split("(umepon_registrations)")
            .nth(1)
            .and_then(|d| d.split("</div>").next())
            .unwrap();
        assert!(
            umepon.contains("送信元") && umepon.contains("市公式アプリ"),
            "{umepon}"
        );
        assert_eq!(
            html.matches("市公式アプリ").count(),
            2,
            "umekko and umepon only"
        );
    }

    #[test]
    fn a_row_takes_the_figure_of_the_report_year_only() {
        let plan = Plan::ome().unwrap();
        let k = plan.kpi_id("umekko_new_registrations").unwrap();
        let mut this = crate::status::test_figure(KpiId(k.0), Some(450.0), 1.0);
        this.value = Some(120.0);
        this.year = FiscalYear(2026);
        let mut last = this.clone();
        last.year = FiscalYear(2025);
        last.value = Some(999.0);
        let figures = [last, this];
        let trends = Trends::default();
        let report = Report {
            plan: &plan,
            year: FiscalYear(2026),
            at: ts("2026-10-01T00:00:00+09:00"),
            figures: &figures,
            trends: &trends,
        };
        let chapter = plan
            .chapters
            .iter()
            .find(|c| c.id == plan.kpis[k].chapter)
            .unwrap();
        let rows = report.rows(chapter);
        let row = rows.iter().find(|r| r.id == KpiId(k.0)).unwrap();
        assert_eq!(row.figures()[2], ("値", "Value", Some(120.0)));
        assert_eq!(row.figures()[1].2, Some(450.0));
        assert_eq!(row.finality, Finality::Provisional);
    }

    #[test]
    fn a_closed_year_is_reported_final_with_its_adjustment() {
        let plan = Plan::ome().unwrap();
        let k = plan.kpi_id("umekko_new_registrations").unwrap();
        let mut fig = crate::status::test_figure(KpiId(k.0), Some(450.0), 1.0);
        fig.year = FiscalYear(2025);
        fig.value = Some(400.0);
        fig.elapsed = 1.0;
        fig.finality = Finality::Final {
            closed_at: ts("2026-06-20T10:00:00+09:00"),
            live: Some(403.0),
        };
        let figures = [fig];
        let trends = Trends::default();
        let report = Report {
            plan: &plan,
            year: FiscalYear(2025),
            at: ts("2026-10-01T00:00:00+09:00"),
            figures: &figures,
            trends: &trends,
        };
        let chapter = plan
            .chapters
            .iter()
            .find(|c| c.id == plan.kpis[k].chapter)
            .unwrap();
        let rows = report.rows(chapter);
        let row = rows.iter().find(|r| r.id == KpiId(k.0)).unwrap();
        assert!(row.finality.is_final());
        let html = report.html();
        assert!(
            html.contains("数値は確定値です（2026-06-20 10:00 JST 確定）"),
            "{html}"
        );
        assert_eq!(html.matches("確定値<small").count(), 1, "{html}");
        assert!(
            html.contains("確定後の修正") && html.contains("+3人"),
            "{html}"
        );
    }
}
