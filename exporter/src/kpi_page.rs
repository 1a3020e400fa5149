//! A KPI's own page (`GET /kpi/<id>`): the large chart of the year by month, its figures
//! and status, its definition, and the feed behind it with how fresh its data is.
//! Rendered at publish, like the status page; no JavaScript.

use std::fmt::Write as _;

use mieruka_aggregator::{Figure, Kpi, KpiId, KpiKind, Plan};
use mieruka_ingest::Timestamp;

use crate::status::status;
use crate::status_page::{cell, current_year, esc, jst, year_name, STYLE};
use crate::trend::{chart, Size, Trends};

/// Renders the page of KPI `k` for a snapshot taken at `now`.
pub fn render_kpi_page(
    plan: &Plan,
    k: KpiId,
    figures: &[Figure],
    trends: &Trends,
    now: Timestamp,
) -> String {
    let kpi = &plan.kpis[k];
    let fy = current_year(plan, now);
    let fig = figures.iter().find(|f| f.kpi == k && f.year == fy);
    let st = status(plan, kpi, fig, now);
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n\
         <p><a href=\"../\">← 一覧 <span lang=\"en\">All KPIs</span></a></p>\n\
         <h1>{}<span class=\"en\" lang=\"en\">{}</span></h1>\n<p class=\"year\">{}</p>\n\
         </header>\n<main>\n",
        esc(&kpi.name_ja),
        esc(&plan.name_ja),
        esc(&kpi.name_ja),
        esc(&kpi.name_en),
        year_name(plan, fy, now),
    );
    let svg = trends.of(k).and_then(|s| chart(kpi, fig, s, Size::Large));
    if let Some(svg) = svg {
        write_chart_figure(&mut h, "large-chart", &svg);
    }
    let _ = write!(
        h,
        "<table class=\"figures\"><tbody>\n\
         <tr><th>状況<small>Status</small></th><td data-status=\"{}\"><span class=\"badge {}\">{}<small lang=\"en\">{}</small></span>{}</td></tr>\n",
        st.id(),
        st.id(),
        st.ja(),
        st.en(),
        crate::status_page::finality_html(fig.map_or(Default::default(), |f| f.finality)),
    );
    for (ja, en, x) in [
        ("値", "Value", fig.and_then(|f| f.value)),
        ("目標", "Target", fig.and_then(|f| f.target)),
        ("ペース", "Pace", fig.and_then(|f| f.pace)),
        ("見込み", "Projection", fig.and_then(|f| f.projection)),
        ("基準値（現在地）", "Baseline", fig.and_then(|f| f.baseline)),
    ] {
        let _ = writeln!(
            h,
            "<tr><th>{ja}<small>{en}</small></th><td class=\"num\">{}</td></tr>",
            cell(kpi, x)
        );
    }
    h.push_str("</tbody></table>\n");
    write_definition(&mut h, plan, kpi, fig, now);
    let _ = write!(
        h,
        "</main>\n<footer><p>集計時点 <span lang=\"en\">Snapshot</span>: {}</p></footer>\n</body>\n</html>\n",
        jst(now)
    );
    h
}

/// What the KPI is, and where its numbers come from and how fresh they are.
fn write_definition(h: &mut String, plan: &Plan, kpi: &Kpi, fig: Option<&Figure>, now: Timestamp) {
    let measures = measure_descriptions(plan, kpi);
    h.push_str(
        "<section class=\"definition\">\n<h2>定義 <span lang=\"en\">Definition</span></h2>\n",
    );
    write_note_and_measures(h, kpi, &measures);
    let _ = write!(
        h,
        "<h2>データ元 <span lang=\"en\">Feed</span></h2>\n<p>{}</p>\n<p>最新データ <span lang=\"en\">Latest data</span>: ",
        esc(&kpi.source)
    );
    match fig.and_then(|f| f.as_of) {
        Some(t) => {
            let days = (now.micros() - t.micros()).max(0) / 86_400_000_000;
            let _ = write!(
                h,
                "{}（{days}日前 <span lang=\"en\">{days} days before the snapshot</span>）",
                jst(t)
            );
        }
        None => h.push('—'),
    }
    h.push_str("</p>\n");
    // The explanation reads the KPI's events back from the log: too costly to render
    // for every KPI at every publish, so the page links to it (served by the roles
    // that hold a store: `standalone`, `export`).
    let _ = writeln!(
        h,
        "<h2>内訳 <span lang=\"en\">Why this figure</span></h2>\n<p>計算式・月別・送信元別の内訳 \
         <span lang=\"en\">formula, months and sources</span>: \
         <a class=\"explain\" href=\"../v1/kpis/{id}\">/v1/kpis/{id}</a> (JSON), \
         <code>mieruka explain {id}</code></p>",
        id = esc(&kpi.id)
    );
    h.push_str("</section>\n");
}

/// The descriptions of the measures a KPI's value is made of: one, or a ratio's
/// numerator and denominator (none for a milestone).
pub(crate) fn measure_descriptions<'p>(plan: &'p Plan, kpi: &Kpi) -> Vec<&'p str> {
    match &kpi.kind {
        KpiKind::Measure(m) | KpiKind::Recurring(m) => vec![plan.measures[*m].description.as_str()],
        KpiKind::Ratio {
            numerator,
            denominator,
            ..
        } => vec![
            plan.measures[*numerator].description.as_str(),
            plan.measures[*denominator].description.as_str(),
        ],
        KpiKind::Milestone { .. } => Vec::new(),
    }
}

/// The plan's note on a KPI and what its measures count, as paragraphs.
pub(crate) fn write_note_and_measures(h: &mut String, kpi: &Kpi, measures: &[&str]) {
    if !kpi.note.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", esc(&kpi.note));
    }
    if let [num, den] = measures {
        let _ = writeln!(
            h,
            "<p>分子 <span lang=\"en\">numerator</span>: {}<br>分母 <span lang=\"en\">denominator</span>: {}</p>",
            esc(num),
            esc(den)
        );
    } else if let [one] = measures {
        let _ = writeln!(h, "<p>{}</p>", esc(one));
    }
}

/// A large chart in a `<figure>` of class `class`, with the key to its lines.
pub(crate) fn write_chart_figure(h: &mut String, class: &str, svg: &str) {
    let _ = writeln!(
        h,
        "<figure class=\"{class}\">{svg}<figcaption>\
         <span class=\"key value\">実績 <span lang=\"en\">value</span></span> \
         <span class=\"key pace\">ペース <span lang=\"en\">pace</span></span> \
         <span class=\"key target\">目標 <span lang=\"en\">target</span></span> \
         <span class=\"key last-year\">前年度 <span lang=\"en\">last year</span></span>\
         </figcaption></figure>"
    );
}
