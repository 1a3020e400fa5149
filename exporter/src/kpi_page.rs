//! A KPI's own page (`GET /kpi/<id>`): the large chart of the year by month, its figures
//! and status, its definition, the feeds behind it with how fresh each is, and — where
//! the role holds a store — the explanation of the figure. Rendered at publish, like the
//! status page, and again with the explanation when the page is asked for; no
//! JavaScript.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mieruka_aggregator::explain::Explanation;
use mieruka_aggregator::{Figure, Kpi, KpiId, KpiKind, Plan};
use mieruka_ingest::Timestamp;

use crate::feeds::{write_feeds_table, FeedState, SourceDirectory};
use crate::kpi_explain::{write_explanation, EXPLAIN_STYLE};

use crate::status::status;
use crate::status_page::{cell, current_year, esc, jst, year_name, STYLE};
use crate::trend::{chart, Size, Trends};

/// What a KPI's page shows beyond the snapshot's figures: the configured sources, how
/// fresh each is, and the figure's explanation.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageExtras<'a> {
    /// The configured sources (display names, types, cadences); none: only the plan's
    /// description of the feed.
    pub directory: Option<&'a SourceDirectory>,
    /// Each source's last arrival and next due instant.
    pub states: Option<&'a BTreeMap<String, FeedState>>,
    /// The explanation (`Err`: why it could not be computed); `None`: the role cannot
    /// explain (no store), so the page links to the command.
    pub explanation: Option<Result<&'a Explanation, &'a str>>,
}

/// Renders the page of KPI `k` for a snapshot taken at `now`.
pub fn render_kpi_page(
    plan: &Plan,
    k: KpiId,
    figures: &[Figure],
    trends: &Trends,
    now: Timestamp,
) -> String {
    render_kpi_page_with(plan, k, figures, trends, now, PageExtras::default())
}

/// [`render_kpi_page`] with the feeds behind the KPI and the explanation of its figure.
pub fn render_kpi_page_with(
    plan: &Plan,
    k: KpiId,
    figures: &[Figure],
    trends: &Trends,
    now: Timestamp,
    extras: PageExtras<'_>,
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
         <title>{} — {}</title>\n<style>{STYLE}{EXPLAIN_STYLE}</style>\n</head>\n<body>\n<header>\n\
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
    crate::revisions::write_kpi_list(&mut h, kpi, now);
    write_definition(&mut h, plan, (k, kpi), fig, now, extras);
    let _ = write!(
        h,
        "</main>\n<footer><p>集計時点 <span lang=\"en\">Snapshot</span>: {}</p></footer>\n</body>\n</html>\n",
        jst(now)
    );
    h
}

/// What the KPI is, where its numbers come from and how fresh they are, and why the
/// figure is what it is.
fn write_definition(
    h: &mut String,
    plan: &Plan,
    (k, kpi): (KpiId, &Kpi),
    fig: Option<&Figure>,
    now: Timestamp,
    extras: PageExtras<'_>,
) {
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
    write_feeds(h, plan, k, now, extras);
    if has_distinct(plan, kpi) {
        h.push_str(DISTINCT_FOOTNOTE);
    }
    match extras.explanation {
        Some(Ok(e)) => {
            h.push_str("</section>\n");
            write_explanation(
                h,
                e,
                extras.directory.unwrap_or(&SourceDirectory::default()),
            );
            return;
        }
        Some(Err(why)) => {
            let _ = writeln!(
                h,
                "<h2>内訳 <span lang=\"en\">Why this figure</span></h2>\n<p class=\"notice\">内訳を計算できませんでした。\
                 <span lang=\"en\">The explanation could not be computed: {}</span></p>",
                esc(why)
            );
        }
        None => {
            // A role without a store cannot read the events back: it names the command.
            let _ = writeln!(
                h,
                "<h2>内訳 <span lang=\"en\">Why this figure</span></h2>\n<p>計算式・月別・送信元別の内訳 \
                 <span lang=\"en\">formula, months and sources</span>: \
                 <a class=\"explain\" href=\"../v1/kpis/{id}\">/v1/kpis/{id}</a> (JSON), \
                 <code>mieruka explain {id}</code></p>",
                id = esc(&kpi.id)
            );
        }
    }
    h.push_str("</section>\n");
}

/// Why a distinct count has no months on the chart, and where they are instead.
const DISTINCT_FOOTNOTE: &str = "<p class=\"footnote\" id=\"distinct-months\">※ 人数（重複なしの数）は年度単位で\
    集計しているため、グラフは年度累計の現在値のみを示します。月ごとの新規人数は内訳（月別）にあります。\
    <span lang=\"en\">A distinct count is kept per fiscal year, not per month, so the chart shows only \
    the year so far; the people first counted in each month are in the explanation, by month.</span></p>\n";

/// Whether a KPI's value involves a `distinct` measure (its chart has no months).
fn has_distinct(plan: &Plan, kpi: &Kpi) -> bool {
    kpi.measures().iter().any(|m| {
        plan.measures
            .get(m.0)
            .is_some_and(|m| m.kind == mieruka_aggregator::MeasureKind::Distinct)
    })
}

/// The configured sources behind the KPI, with their freshness (nothing without a
/// source directory).
fn write_feeds(h: &mut String, plan: &Plan, k: KpiId, now: Timestamp, extras: PageExtras<'_>) {
    let Some(directory) = extras.directory else {
        return;
    };
    let seen: Vec<String> = match extras.explanation {
        Some(Ok(e)) => e
            .parts
            .iter()
            .flat_map(|p| p.by_source.iter().map(|s| s.key.clone()))
            .chain(
                e.parts
                    .iter()
                    .filter_map(|p| p.snapshot.as_ref().and_then(|s| s.source.clone())),
            )
            .collect(),
        _ => Vec::new(),
    };
    let sources = directory.feeding(plan, k, &seen);
    let empty = BTreeMap::new();
    h.push_str("<h3>送信元と鮮度 <span lang=\"en\">Sources and freshness</span></h3>\n");
    write_feeds_table(h, directory, extras.states.unwrap_or(&empty), &sources, now);
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
