//! The explanation of a KPI's figure on its page (`GET /kpi/<id>`): what `mieruka
//! explain` and `GET /v1/kpis/<id>` say — the formula with its numbers, each measure's
//! contributions by month and by source, the events counted and voided and the duplicates
//! seen, the snapshot a level starts from, and pace and projection with their inputs — as
//! server-rendered HTML that fits a phone.
//!
//! The explanation reads the KPI's events back from the log, so it is computed by the
//! role that holds the store, when the page is asked for (see [`Explainer`]), never at
//! publish nor on the scrape path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

use mieruka_aggregator::explain::{num, Derived, Explanation, Part};
use mieruka_ingest::Timestamp;

use crate::feeds::SourceDirectory;
use crate::status_page::{esc, grouped, jst};

/// The boxed future an [`Explainer`] answers with.
pub type ExplainFuture = Pin<Box<dyn Future<Output = Result<Explanation, String>> + Send>>;

/// Explains a KPI's figure of the year in progress at a snapshot's instant: implemented
/// by the roles that hold a store (`standalone`, `export`) with
/// [`mieruka_aggregator::explain::explain`], the function `mieruka explain` calls.
pub trait Explainer: Send + Sync {
    /// The explanation of KPI `kpi` at `now` (the snapshot's instant), or why there is
    /// none (the store is unreachable).
    fn explain(&self, kpi: &str, now: Timestamp) -> ExplainFuture;
}

/// Extra style of the feeds and explanation sections, on top of the status page's.
pub(crate) const EXPLAIN_STYLE: &str = "\
.source-id{font-size:.8em;color:#57606a;margin-left:.3em}\
code.formula{display:block;white-space:normal;overflow-wrap:anywhere;background:#fff;border:1px solid #d0d7de;padding:.4rem .6rem;font-size:.85rem}\
.explanation table{max-width:40rem;margin:.3rem 0 1rem}\
.explanation h3{font-size:1rem;margin:1rem 0 .3rem}\
.explanation td{overflow-wrap:anywhere}\
.explanation td.num{width:auto;white-space:nowrap}.explanation table.explain-part th{width:45%}\
p.footnote{font-size:.85rem;color:#57606a}";

/// Writes the explanation section: `e` explains the page's figure; `directory` names
/// the sources.
pub(crate) fn write_explanation(h: &mut String, e: &Explanation, directory: &SourceDirectory) {
    h.push_str(
        "<section class=\"explanation\" id=\"explanation\">\n\
         <h2>内訳 <span lang=\"en\">Why this figure</span></h2>\n",
    );
    let _ = writeln!(
        h,
        "<p>計算式 <span lang=\"en\">Formula</span></p>\n<code class=\"formula\" lang=\"en\">{}</code>",
        esc(&e.formula)
    );
    for part in &e.parts {
        write_part(h, part);
    }
    if let Some(ms) = &e.milestone {
        let stage = ms.stage_ja.as_deref().map_or_else(|| "—".to_owned(), esc);
        let _ = writeln!(
            h,
            "<table class=\"explain-part\"><tbody>\
             <tr><th>到達段階<small>Stage reached</small></th><td>{stage}</td></tr>\
             <tr><th>計上件数<small>Events counted</small></th><td class=\"num\">{}</td></tr>\
             <tr><th>取消済み<small>Voided</small></th><td class=\"num\">{}</td></tr>\
             </tbody></table>",
            grouped(ms.events_counted as f64, 0),
            grouped(ms.events_voided as f64, 0),
        );
    }
    write_shares(h, e, "月別", "By month", |p| &p.by_month, &|m| esc(m));
    write_shares(h, e, "送信元別", "By source", |p| &p.by_source, &|s| {
        directory.name_html(s)
    });
    let (from_ja, from_en) = match e.start.from {
        "zero" => (
            "0（年度ごとに数え直す値）",
            "zero: a flow restarts each year",
        ),
        "year_start" => ("年度当初の値", "the value at the start of the year"),
        "previous_year" => ("前年度の最終値", "last year's final value"),
        "plan_baseline" => ("計画の基準値", "the plan's baseline"),
        _ => ("なし", "none"),
    };
    let _ = writeln!(
        h,
        "<h3>起点 <span lang=\"en\">Start (B)</span></h3>\n<p>{} — {from_ja} <span lang=\"en\">{from_en}</span></p>",
        opt(e.start.value)
    );
    write_derived(h, "ペース", "Pace", &e.pace);
    write_derived(h, "見込み", "Projection", &e.projection);
    let _ = writeln!(
        h,
        "<p class=\"footnote\">経過率 <span lang=\"en\">elapsed</span> f = {} · 許容幅 <span lang=\"en\">tolerance</span> {} · \
         集計時点 <span lang=\"en\">computed at</span> {}</p>",
        num(e.elapsed),
        num(e.tolerance),
        Timestamp::parse_rfc3339(&e.at).map_or_else(|_| esc(&e.at), jst),
    );
    if e.undecodable_log_rows > 0 {
        let _ = writeln!(
            h,
            "<p class=\"notice\">計画と合わない記録 {} 件は数えていません。<span lang=\"en\">{} log rows \
             no longer decode under the plan and are not counted.</span></p>",
            e.undecodable_log_rows, e.undecodable_log_rows
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"footnote\">重複は保存されず一度だけ数えます。<span lang=\"en\">Duplicates are counted once \
         and not kept.</span> JSON: <a class=\"explain\" href=\"../v1/kpis/{id}\">/v1/kpis/{id}</a>, \
         <code>mieruka explain {id}</code></p>",
        id = esc(&e.kpi)
    );
    h.push_str("</section>\n");
}

/// The role of a part, both ways.
fn role_words(role: &str) -> (&'static str, &'static str) {
    match role {
        "numerator" => ("分子", "numerator"),
        "denominator" => ("分母", "denominator"),
        _ => ("値", "value"),
    }
}

/// One measure: its value, events counted and voided, duplicates seen, and a level's
/// snapshot.
fn write_part(h: &mut String, p: &Part) {
    let (ja, en) = role_words(p.role);
    let _ = writeln!(
        h,
        "<h3>{ja} <span lang=\"en\">{en}</span>: {}</h3>\n<table class=\"explain-part\" data-part=\"{}\"><tbody>\
         <tr><th>値<small>Value</small></th><td class=\"num\">{}</td></tr>\
         <tr><th>計上件数<small>Events counted</small></th><td class=\"num\">{}</td></tr>\
         <tr><th>取消済み<small>Voided</small></th><td class=\"num\">{}</td></tr>\
         <tr><th>重複受信<small>Duplicates seen</small></th><td class=\"num\">{}</td></tr>",
        esc(&p.description),
        esc(p.role),
        opt(p.value),
        grouped(p.events_counted as f64, 0),
        grouped(p.events_voided as f64, 0),
        grouped(p.duplicates_seen as f64, 0),
    );
    if let Some(s) = &p.snapshot {
        let at = Timestamp::parse_rfc3339(&s.occurred_at).map_or_else(|_| esc(&s.occurred_at), jst);
        let _ = write!(
            h,
            "<tr><th>起点スナップショット<small>Snapshot</small></th><td>{} ({at}, {})</td></tr>",
            opt(Some(s.value)),
            esc(&s.event_id),
        );
    }
    if p.kind == "level" {
        let _ = write!(
            h,
            "<tr><th>以降の増減<small>Deltas since</small></th><td class=\"num\">{}</td></tr>",
            opt(p.deltas_since)
        );
    }
    h.push_str("</tbody></table>\n");
}

/// A table of the parts' shares (by month or by source), one column per part.
fn write_shares(
    h: &mut String,
    e: &Explanation,
    ja: &str,
    en: &str,
    shares: impl Fn(&Part) -> &Vec<mieruka_aggregator::explain::Share>,
    key_html: &dyn Fn(&str) -> String,
) {
    let mut rows: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    for (i, part) in e.parts.iter().enumerate() {
        for s in shares(part) {
            rows.entry(s.key.as_str())
                .or_insert_with(|| vec![None; e.parts.len()])[i] = Some(s.value);
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h3>{ja} <span lang=\"en\">{en}</span></h3>\n<table class=\"shares\" data-shares=\"{}\"><thead><tr><th></th>",
        esc(en)
    );
    for part in &e.parts {
        let (ja, en) = role_words(part.role);
        let _ = write!(h, "<th>{ja}<small>{en}</small></th>");
    }
    h.push_str("</tr></thead><tbody>\n");
    for (key, values) in rows {
        let _ = write!(h, "<tr><td>{}</td>", key_html(key));
        for (part, v) in e.parts.iter().zip(values) {
            let (ja, en) = role_words(part.role);
            let _ = write!(
                h,
                "<td class=\"num\" data-label=\"{ja} {en}\">{}</td>",
                opt(v)
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

/// Pace or projection: its formula with numbers and its inputs.
fn write_derived(h: &mut String, ja: &str, en: &str, d: &Derived) {
    let inputs: Vec<String> = d
        .inputs
        .iter()
        .map(|(k, v)| format!("{k} = {}", opt(*v)))
        .collect();
    let _ = writeln!(
        h,
        "<h3>{ja} <span lang=\"en\">{en}</span>: {}</h3>\n<code class=\"formula\" lang=\"en\">{}</code>\n\
         <p class=\"footnote\">入力 <span lang=\"en\">inputs</span>: {}</p>",
        opt(d.value),
        esc(&d.formula),
        esc(&inputs.join(", "))
    );
}

/// A number of the explanation: grouped by thousands, up to 4 decimals; a dash when
/// absent.
fn opt(x: Option<f64>) -> String {
    match x.filter(|x| x.is_finite()) {
        Some(x) if x.fract() == 0.0 => grouped(x, 0),
        Some(x) => num(x),
        None => "—".to_owned(),
    }
}
