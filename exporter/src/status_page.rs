//! The status page (`GET /`): one server-rendered, bilingual HTML page showing each KPI
//! of the current fiscal year against its target, chapter by chapter. No JavaScript: it
//! is read on office PCs and wall displays, and refreshes itself with a meta tag.

use std::collections::BTreeMap;
use std::fmt::Write;

use mieruka_aggregator::fiscal::JST_OFFSET_SECONDS;
use mieruka_aggregator::plan::Chapter;
use mieruka_aggregator::{Figure, Finality, FiscalYear, Kpi, Plan};
use mieruka_ingest::Timestamp;

use crate::feeds::{write_feeds_table, FeedState, SourceDirectory};
use crate::health::InboxLast;
use crate::kpi_explain::EXPLAIN_STYLE;
use crate::precision::kpi_decimals;
use crate::status::{status, Status};
use crate::trend::{chart, Size, Trends};
use crate::wareki::era_fiscal_year;

/// Seconds between the page's own refreshes: the snapshot is republished on a 60 s
/// timer, so refreshing faster shows nothing new.
const REFRESH_SECONDS: u32 = 60;

/// The fiscal year the status page is about at `now`.
///
/// The plan year in progress (elapsed fraction strictly between 0 and 1), else the
/// latest plan year already started, else the plan's first exported (baseline) year.
pub fn current_year(plan: &Plan, now: Timestamp) -> FiscalYear {
    let mut started = None;
    for year in plan.years() {
        let f = year.elapsed_fraction(now);
        if f > 0.0 && f < 1.0 {
            return year;
        }
        if f > 0.0 {
            started = Some(year);
        }
    }
    started.unwrap_or(plan.baseline_year)
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `x` with `decimals` places and thousands separators: 4331 → "4,331".
pub(crate) fn grouped(x: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::with_capacity(text.len() + int.len() / 3 + 1);
    if x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A figure of `kpi` as people read it: a stage's name, or the number with the decimals
/// of [`kpi_decimals`] (those of the alert texts and dashboards) and its counter word
/// (`4,331人`), else its unit.
fn display(kpi: &Kpi, x: f64) -> String {
    if let Some(stages) = kpi.stages() {
        let i = x.round();
        return match stages.get(i.max(0.0) as usize) {
            Some(stage) if i >= 0.0 => stage.name_ja.clone(),
            _ => format!("{} {}", grouped(x, 0), kpi.unit),
        };
    }
    let number = grouped(x, kpi_decimals(kpi));
    match &kpi.counter_ja {
        Some(counter) => format!("{number}{counter}"),
        None if kpi.is_percent() => format!("{number} %"),
        None if kpi.unit.is_empty() => number,
        None => format!("{number} {}", kpi.unit),
    }
}

/// A change in the KPI's unit with its sign (`+35.0 %`, `-2人`); a milestone's in
/// stages, as its value is a stage's name.
pub(crate) fn signed(kpi: &Kpi, a: f64) -> String {
    let sign = if a > 0.0 { "+" } else { "" };
    if a == 0.0 {
        return "0".to_owned();
    }
    match kpi.stages() {
        Some(_) => format!("{sign}{} 段階 stages", grouped(a, 0)),
        None => format!("{sign}{}", display(kpi, a)),
    }
}

pub(crate) fn cell(kpi: &Kpi, x: Option<f64>) -> String {
    match x.filter(|x| x.is_finite()) {
        Some(x) => esc(&display(kpi, x)),
        None => "—".to_owned(),
    }
}

pub(crate) fn jst(t: Timestamp) -> String {
    let (y, mo, d, h, mi, _) = t.to_civil(JST_OFFSET_SECONDS);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} JST")
}

pub(crate) const STYLE: &str = "\
body{font-family:system-ui,'Hiragino Sans','Noto Sans JP','Yu Gothic',sans-serif;margin:0;color:#1f2328;background:#f6f8fa}\
header,main,footer{max-width:72rem;margin:0 auto;padding:1rem 1.5rem}\
header{padding-top:1.5rem}\
h1{font-size:1.5rem;margin:0 0 .25rem}\
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}\
.en{display:block;font-size:.8em;font-weight:normal;color:#57606a}\
h2 .en{display:inline;margin-left:.5em}\
.year{font-size:1.1rem;margin:.5rem 0 0}\
.notice{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem 1rem;border-radius:6px}\
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d0d7de}\
th,td{padding:.5rem .75rem;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}\
th{background:#eaeef2;font-size:.9rem}\
th small,td small{display:block;font-size:.75rem;font-weight:normal;color:#57606a}\
td:first-child{min-width:14rem}\
td.num{text-align:right;width:11%}\
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:bold;white-space:nowrap}\
.badge small{display:inline;margin-left:.4em;color:inherit;font-weight:normal}\
.on-pace,.target-met,.on-track{background:#dafbe1;color:#116329}\
.target-met{font-weight:900}\
.behind-pace,.projected-miss,.overdue,.behind{background:#ffebe9;color:#a40e26}\
.no-target{background:#eaeef2;color:#424a53}\
.no-data{background:#fff8c5;color:#7d4e00}\
footer{font-size:.85rem;color:#57606a}\
a{color:#0969da}\
td.trend{width:10rem;padding:.3rem .5rem}\
svg.chart{display:block;width:100%;height:auto}\
svg.small{max-width:10rem;height:3rem}\
figure.large-chart{max-width:48rem;margin:0 0 1rem;background:#fff;border:1px solid #d0d7de;padding:.5rem}\
.key{margin-right:1em;font-size:.85rem;white-space:nowrap}\
.key::before{content:'';display:inline-block;width:1.2em;height:0;margin-right:.3em;vertical-align:middle;border-top:2px solid}\
.key.value::before{border-color:#0969da}.key.pace::before{border-top:1px dashed #57606a}\
.key.target::before{border-top:1px dashed #a40e26}.key.last-year::before{border-color:#afb8c1}\
table.figures{max-width:32rem}\
@media (max-width:40rem){header,main,footer{padding:.75rem}\
table,thead,tbody,tr,th,td{display:block;width:auto}\
thead{display:none}\
table.figures tr{display:flex;justify-content:space-between}table.figures th{background:none}\
tr{border-bottom:1px solid #d0d7de;padding:.4rem 0}\
td,th{border:0;padding:.15rem .75rem}\
td:first-child{min-width:0;font-weight:bold}\
td.num{width:auto;text-align:left}\
td[data-label]::before{content:attr(data-label);display:inline-block;min-width:7.5rem;font-size:.8rem;color:#57606a}\
td.trend{width:auto}}";

/// Renders the status page for the figures of a snapshot taken at `snapshot`.
///
/// With `None` (nothing published yet) every KPI shows データなし No data. Every KPI of
/// the plan has a row, marked `data-kpi="<id>"`.
pub fn render_status_page(plan: &Plan, figures: &[Figure], snapshot: Option<Timestamp>) -> String {
    render_status_page_with_inboxes(plan, figures, snapshot, &[])
}

/// [`render_status_page`] with a section listing each watched folder (`[[inbox]]`) and
/// what its last file came to; without inboxes the page is the same.
pub fn render_status_page_with_inboxes(
    plan: &Plan,
    figures: &[Figure],
    snapshot: Option<Timestamp>,
    inboxes: &[(String, Option<InboxLast>)],
) -> String {
    render_status_page_with(plan, figures, &Trends::default(), snapshot, inboxes)
}

/// The whole status page: [`render_status_page_with_inboxes`] with each KPI's chart of
/// the year by month from `trends` (a dash where there is none) and a link to its page.
pub fn render_status_page_with(
    plan: &Plan,
    figures: &[Figure],
    trends: &Trends,
    snapshot: Option<Timestamp>,
    inboxes: &[(String, Option<InboxLast>)],
) -> String {
    render_status_page_full(plan, figures, trends, snapshot, (inboxes, None))
}

/// The configured sources and how fresh each is, for the page's feeds section.
pub type FeedsShown<'a> = (&'a SourceDirectory, &'a BTreeMap<String, FeedState>);

/// [`render_status_page_with`] with a section listing every configured source by its
/// display name, when it last sent, when it is next due and whether it is overdue.
pub fn render_status_page_full(
    plan: &Plan,
    figures: &[Figure],
    trends: &Trends,
    snapshot: Option<Timestamp>,
    (inboxes, feeds): (&[(String, Option<InboxLast>)], Option<FeedsShown<'_>>),
) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let year = snapshot.map(|now| (current_year(plan, now), now));
    write_header(&mut h, plan, year);
    for chapter in &plan.chapters {
        write_chapter(&mut h, plan, chapter, (figures, trends), year);
    }
    write_closed_years(&mut h, plan, figures);
    write_inboxes(&mut h, inboxes);
    if let (Some((directory, states)), Some(now)) = (feeds, snapshot) {
        write_feeds(&mut h, directory, states, now);
    }
    write_footer(&mut h, figures, snapshot);
    h.push_str("</footer>\n</body>\n</html>\n");
    h
}

// `write!` into a String cannot fail; the results below are ignored on purpose.

/// The city, the year both ways and how much of it has passed: `青梅市 · 2026年度（令和8年度）
/// FY2026 · 経過 elapsed 65.2%`.
pub(crate) fn year_name(plan: &Plan, fy: FiscalYear, now: Timestamp) -> String {
    format!(
        "{}{fy}年度{} <span lang=\"en\">FY{fy}</span> · 経過 <span lang=\"en\">elapsed</span> {:.1}%",
        if plan.city.is_empty() {
            String::new()
        } else {
            format!("{} · ", esc(&plan.city))
        },
        era_fiscal_year(fy).map_or(String::new(), |era| format!("（{era}）")),
        fy.elapsed_fraction(now) * 100.0,
    )
}

/// The document's head and the page header: the plan, the year and how far it is.
fn write_header(h: &mut String, plan: &Plan, year: Option<(FiscalYear, Timestamp)>) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
         <title>{} — {}</title>\n<style>{STYLE}{EXPLAIN_STYLE}</style>\n</head>\n<body>\n<header>\n\
         <h1>{}<span class=\"en\" lang=\"en\">{}</span></h1>\n",
        esc(&plan.name_ja),
        esc(&plan.name_en),
        esc(&plan.name_ja),
        esc(&plan.name_en),
    );
    match year {
        Some((fy, now)) => {
            let _ = writeln!(h, "<p class=\"year\">{}</p>", year_name(plan, fy, now));
        }
        None => {
            h.push_str(
                "<p class=\"notice\">まだ集計されていません。<span lang=\"en\">No snapshot \
                 has been published yet.</span></p>\n",
            );
        }
    }
    h.push_str("</header>\n<main>\n");
}

/// One chapter's table: a row per KPI of the chapter, in plan order.
fn write_chapter(
    h: &mut String,
    plan: &Plan,
    chapter: &Chapter,
    (figures, trends): (&[Figure], &Trends),
    year: Option<(FiscalYear, Timestamp)>,
) {
    let _ = write!(
        h,
        "<section id=\"chapter-{}\">\n<h2>{}. {}<span class=\"en\" lang=\"en\">{}</span></h2>\n\
         <table>\n<thead><tr><th>KPI</th><th>値<small>Value</small></th>\
         <th>目標<small>Target</small></th><th>ペース<small>Pace</small></th>\
         <th>見込み<small>Projection</small></th><th>状況<small>Status</small></th>\
         <th>推移<small>Trend</small></th></tr></thead>\n<tbody>\n",
        esc(&chapter.id),
        esc(&chapter.id),
        esc(&chapter.name_ja),
        esc(&chapter.name_en),
    );
    for (k, kpi) in plan.kpis_with_ids() {
        if kpi.chapter != chapter.id {
            continue;
        }
        let fig = year.and_then(|(fy, _)| figures.iter().find(|f| f.kpi == k && f.year == fy));
        let st = year.map_or(Status::NoData, |(_, now)| status(plan, kpi, fig, now));
        let (id, ja, en) = (st.id(), st.ja(), st.en());
        let svg = trends
            .of(k)
            .and_then(|s| chart(kpi, fig, s, Size::Small))
            .unwrap_or_else(|| "—".to_owned());
        let _ = writeln!(
            h,
            "<tr data-kpi=\"{}\" data-status=\"{id}\"><td><a href=\"kpi/{}\">{}</a>\
             <small lang=\"en\">{}</small></td>\
             <td class=\"num\" data-label=\"値 Value\">{}</td>\
             <td class=\"num\" data-label=\"目標 Target\">{}</td>\
             <td class=\"num\" data-label=\"ペース Pace\">{}</td>\
             <td class=\"num\" data-label=\"見込み Projection\">{}</td>\
             <td><span class=\"badge {id}\">{ja}<small lang=\"en\">{en}</small></span>{}</td>\
             <td class=\"trend\">{svg}</td></tr>",
            esc(&kpi.id),
            esc(&kpi.id),
            esc(&kpi.name_ja),
            esc(&kpi.name_en),
            cell(kpi, fig.and_then(|f| f.value)),
            cell(kpi, fig.and_then(|f| f.target)),
            cell(kpi, fig.and_then(|f| f.pace)),
            cell(kpi, fig.and_then(|f| f.projection)),
            finality_html(fig.map_or(Finality::Provisional, |f| f.finality)),
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// `速報値 Provisional` or `確定値 Final` beside a figure.
pub(crate) fn finality_html(f: Finality) -> String {
    format!(
        "<small class=\"finality\" data-finality=\"{}\">{}<span lang=\"en\"> {}</span></small>",
        f.en().to_lowercase(),
        f.ja(),
        f.en()
    )
}

/// The closed years (確定値): each KPI's final figure and the change since the close
/// (確定後の修正) from events that arrived after it. Nothing while no year is closed.
fn write_closed_years(h: &mut String, plan: &Plan, figures: &[Figure]) {
    let mut years: Vec<FiscalYear> = figures
        .iter()
        .filter(|f| f.finality.is_final())
        .map(|f| f.year)
        .collect();
    years.sort_unstable();
    years.dedup();
    for fy in years.into_iter().rev() {
        let closed_at = figures.iter().find_map(|f| match f.finality {
            Finality::Final { closed_at, .. } if f.year == fy => Some(closed_at),
            _ => None,
        });
        let _ = writeln!(
            h,
            "<section class=\"closed-year\" data-closed-year=\"{fy}\">\n<h2>{fy}年度{} 確定値<span class=\"en\" lang=\"en\">FY{fy} final figures</span></h2>\n\
             <p>確定 <span lang=\"en\">Closed</span>: {}</p>\n<table>\n<thead><tr><th>KPI</th>\
             <th>確定値<small>Final</small></th><th>目標<small>Target</small></th>\
             <th>確定後の修正<small>Adjusted since the close</small></th></tr></thead>\n<tbody>",
            era_fiscal_year(fy).map_or(String::new(), |era| format!("（{era}）")),
            closed_at.map_or_else(|| "—".to_owned(), jst),
        );
        for fig in figures.iter().filter(|f| f.year == fy) {
            let Some(kpi) = plan.kpis.get(fig.kpi.0) else {
                continue;
            };
            let adjustment = fig
                .adjustment()
                .map_or_else(|| "—".to_owned(), |a| esc(&signed(kpi, a)));
            let _ = writeln!(
                h,
                "<tr data-kpi=\"{}\"><td>{}<small lang=\"en\">{}</small></td>\
                 <td class=\"num\" data-label=\"確定値 Final\">{}{}</td>\
                 <td class=\"num\" data-label=\"目標 Target\">{}</td>\
                 <td class=\"num adjustment\" data-label=\"確定後の修正 Adjusted\">{adjustment}</td></tr>",
                esc(&kpi.id),
                esc(&kpi.name_ja),
                esc(&kpi.name_en),
                cell(kpi, fig.value),
                finality_html(fig.finality),
                cell(kpi, fig.target),
            );
        }
        h.push_str("</tbody>\n</table>\n</section>\n");
    }
}

/// The watched folders: each inbox, when its last file was finished, and what it came
/// to (`data-inbox="<name>"` on each row). Nothing without inboxes.
fn write_inboxes(h: &mut String, inboxes: &[(String, Option<InboxLast>)]) {
    if inboxes.is_empty() {
        return;
    }
    h.push_str(
        "<section class=\"inboxes\">\n<h2>受信フォルダ <span lang=\"en\">Inboxes</span></h2>\n<table>\n\
         <thead><tr><th>フォルダ <span lang=\"en\">Inbox</span></th>\
         <th>最終ファイル <span lang=\"en\">Last file</span></th>\
         <th>結果 <span lang=\"en\">Outcome</span></th>\
         <th class=\"num\">受理 <span lang=\"en\">Accepted</span></th>\
         <th class=\"num\">重複 <span lang=\"en\">Duplicates</span></th>\
         <th class=\"num\">却下 <span lang=\"en\">Rejected</span></th></tr></thead>\n<tbody>\n",
    );
    for (name, last) in inboxes {
        let _ = write!(h, "<tr data-inbox=\"{}\"><td>{}</td>", esc(name), esc(name));
        match last {
            None => h.push_str(
                "<td>—</td><td><span class=\"badge no-data\">まだなし <span lang=\"en\">None yet</span></span></td>\
                 <td class=\"num\">—</td><td class=\"num\">—</td><td class=\"num\">—</td></tr>\n",
            ),
            Some(last) => {
                let at = Timestamp::from_micros((last.at_unix_seconds * 1e6) as i64);
                let (class, words) = if last.outcome == "done" {
                    ("on-track", "取込済 <span lang=\"en\">Done</span>")
                } else {
                    ("behind", "失敗 <span lang=\"en\">Failed</span>")
                };
                let [accepted, duplicates, rejected] = last.lines;
                let _ = writeln!(
                    h,
                    "<td>{}</td><td><span class=\"badge {class}\">{words}</span></td>\
                     <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    jst(at),
                    grouped(accepted as f64, 0),
                    grouped(duplicates as f64, 0),
                    grouped(rejected as f64, 0),
                );
            }
        }
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// Every configured source: its display name, last arrival, cadence, next due and
/// whether it is overdue (nothing when no source is configured).
fn write_feeds(
    h: &mut String,
    directory: &SourceDirectory,
    states: &BTreeMap<String, FeedState>,
    now: Timestamp,
) {
    if directory.sources.is_empty() {
        return;
    }
    let sources: Vec<String> = directory.sources.keys().cloned().collect();
    h.push_str(
        "<section class=\"feeds\" id=\"feeds\">\n<h2>データ元の鮮度 <span lang=\"en\">Feeds</span></h2>\n",
    );
    write_feeds_table(h, directory, states, &sources, now);
    h.push_str("</section>\n");
}

/// The footer: when the snapshot was taken and the latest data behind it.
fn write_footer(h: &mut String, figures: &[Figure], snapshot: Option<Timestamp>) {
    h.push_str("</main>\n<footer>\n");
    match snapshot {
        Some(now) => {
            let latest = figures.iter().filter_map(|f| f.as_of).max();
            let _ = write!(
                h,
                "<p>集計時点 <span lang=\"en\">Snapshot</span>: {}",
                jst(now)
            );
            if let Some(t) = latest {
                let _ = write!(
                    h,
                    " · 最新データ <span lang=\"en\">Latest data</span>: {}",
                    jst(t)
                );
            }
            h.push_str("</p>\n");
        }
        None => h.push_str("<p>集計時点 <span lang=\"en\">Snapshot</span>: —</p>\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_year_lists_its_final_figures_and_the_adjustments_since() {
        let plan = Plan::ome().unwrap();
        let k = plan.kpi_id("konbini_issuance_rate").unwrap();
        let open = crate::status::test_figure(k, Some(43.7), 1.0);
        let closed = Figure {
            year: FiscalYear(2025),
            value: Some(30.0),
            finality: Finality::Final {
                closed_at: ts("2026-06-20T10:00:00+09:00"),
                live: Some(65.0),
            },
            ..open.clone()
        };
        let page = render_status_page(
            &plan,
            &[closed, open.clone()],
            Some(ts("2026-10-01T00:00:00+09:00")),
        );
        let section = page.split("data-closed-year=\"2025\"").nth(1).unwrap();
        assert!(section.contains("確定後の修正"), "{section}");
        assert!(section.contains("2026-06-20 10:00 JST"), "{section}");
        assert!(
            section.contains("+35.00 %") && section.contains("30.00 %"),
            "{section}"
        );
        // The current year's row says provisional; no closed year, no section.
        assert!(page.contains("data-finality=\"provisional\""));
        let none = render_status_page(&plan, &[open], Some(ts("2026-10-01T00:00:00+09:00")));
        assert!(!none.contains("data-closed-year"));
    }

    #[test]
    fn inboxes_are_listed_with_their_last_file_and_absent_without_any() {
        let plan = Plan::ome().unwrap();
        let without = render_status_page(&plan, &[], None);
        assert!(!without.contains("data-inbox"));
        let done = InboxLast {
            outcome: "done".into(),
            lines: [1234, 0, 2],
            at_unix_seconds: 1_796_000_000.0,
        };
        let inboxes = vec![
            ("juki".to_owned(), None),
            ("konbini".to_owned(), Some(done)),
        ];
        let page = render_status_page_with_inboxes(&plan, &[], None, &inboxes);
        let row = |name: &str| {
            page.split(&format!("<tr data-inbox=\"{name}\">"))
                .nth(1)
                .and_then(|r| r.split("</tr>").next())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(row("juki").contains("まだなし"), "{}", row("juki"));
        let konbini = row("konbini");
        assert!(
            konbini.contains("取込済") && konbini.contains(">1,234<"),
            "{konbini}"
        );
        assert!(konbini.contains(">2<"), "{konbini}");
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(4331.0, 0), "4,331");
        assert_eq!(grouped(84.6, 1), "84.6");
        assert_eq!(grouped(1_234_567.25, 1), "1,234,567.2");
        assert_eq!(grouped(-1234.0, 0), "-1,234");
        assert_eq!(grouped(-0.01, 1), "0.0");
        assert_eq!(grouped(999.0, 0), "999");
    }

    #[test]
    fn figures_are_shown_with_the_alerts_decimals_and_their_counter_word() {
        let plan = Plan::ome().unwrap();
        let rate = plan.kpi("mynumber_card_holding_rate").unwrap();
        assert_eq!(display(rate, 84.6), "84.60 %");
        let users = plan.kpi("umepon_registrations").unwrap();
        assert_eq!(display(users, 4331.0), "4,331人");
        assert_eq!(display(users, 4331.44), "4,331人");
        let reviews = plan.kpi("security_measures").unwrap();
        // A tolerance of half an event gives recurring duties the alerts' two decimals.
        assert_eq!(display(reviews, 1.0), "1.00回");
        let mut bare = users.clone();
        bare.counter_ja = None;
        assert_eq!(display(&bare, 4331.0), "4,331 people");
        let notices = plan.kpi("disposition_notice_online").unwrap();
        assert_eq!(display(notices, 1.0), "導入に向けた調査・研究");
    }

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_current_year_is_the_one_in_progress_else_the_latest_started() {
        let plan = Plan::ome().unwrap();
        assert_eq!(
            current_year(&plan, ts("2026-10-01T00:00:00+09:00")),
            FiscalYear(2026)
        );
        assert_eq!(
            current_year(&plan, ts("2026-04-01T00:00:00+09:00")),
            FiscalYear(2025)
        );
        assert_eq!(
            current_year(&plan, ts("2031-01-01T00:00:00+09:00")),
            FiscalYear(2028)
        );
        assert_eq!(
            current_year(&plan, ts("2020-01-01T00:00:00+09:00")),
            FiscalYear(2025)
        );
    }

    #[test]
    fn before_any_snapshot_every_kpi_shows_no_data() {
        let plan = Plan::ome().unwrap();
        let page = render_status_page(&plan, &[], None);
        assert_eq!(page.matches("data-kpi=").count(), plan.kpis.len());
        assert_eq!(page.matches("データなし").count(), plan.kpis.len());
        assert!(page.contains("No snapshot has been published yet"));
    }
}
