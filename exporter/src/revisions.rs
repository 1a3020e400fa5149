//! The history of the plan's targets (目標値の改定): each dated revision with the target
//! it replaced, its day and the decision behind it, as the council report and a KPI's
//! page list them. The figures themselves use the target in force
//! ([`mieruka_aggregator::Kpi::target_at`]); this only shows how it got there.

use std::fmt::Write as _;

use mieruka_aggregator::{Kpi, Plan, Revision, RevisionStep};
use mieruka_ingest::Timestamp;

use crate::status_page::{cell, esc};
use crate::wareki::era_fiscal_year;

/// Whether a revision has begun by `at` (its day, JST, has started).
pub fn has_begun(r: &Revision, at: Timestamp) -> bool {
    r.from.start() <= at
}

/// Every revision of the plan, KPI by KPI in plan order, each with the target it
/// replaced.
pub fn plan_revisions(plan: &Plan) -> Vec<(&Kpi, RevisionStep<'_>)> {
    plan.kpis
        .iter()
        .flat_map(|k| k.revision_steps().into_iter().map(move |s| (k, s)))
        .collect()
}

/// `令和9年度（FY2027）`, or `FY2027` outside the known eras.
fn year_text(r: &Revision) -> String {
    match era_fiscal_year(r.year) {
        Some(era) => format!("{era}（FY{}）", r.year),
        None => format!("FY{}", r.year),
    }
}

/// 適用済み (in force since its day, or since superseded) or 適用前 (not yet).
fn state(r: &Revision, at: Timestamp) -> (&'static str, &'static str) {
    if has_begun(r, at) {
        ("適用済み", "Applied")
    } else {
        ("適用前", "Not yet in force")
    }
}

/// The report's section listing every revision of the plan as of `at`; nothing when
/// the plan has none.
pub fn write_report_section(h: &mut String, plan: &Plan, at: Timestamp) {
    let all = plan_revisions(plan);
    if all.is_empty() {
        return;
    }
    h.push_str(
        "<section class=\"revisions\" id=\"target-revisions\">\n<h2>目標値の改定<span class=\"en\" lang=\"en\">Target revisions</span></h2>\n\
         <p>計画の目標値は、次の決定により改定されました。表の目標・ペース・達成状況は、集計時点で適用されている目標によります。\
         <span lang=\"en\">The plan's targets were revised by these decisions; the targets, pace and status above use the target in force at the as-of instant.</span></p>\n\
         <table class=\"report revisions\"><thead><tr><th>KPI</th><th>年度<small>Fiscal year</small></th>\
         <th>改定前<small>Previous</small></th><th>改定後<small>Revised</small></th><th>適用日<small>In force from</small></th>\
         <th>決定<small>Decision</small></th><th>状態<small>At the as-of</small></th></tr></thead>\n<tbody>\n",
    );
    for (kpi, step) in all {
        let r = step.revision;
        let (ja, en) = state(r, at);
        let _ = writeln!(
            h,
            "<tr data-kpi=\"{}\" data-fiscal-year=\"{}\" data-from=\"{}\"><td>{}<small lang=\"en\">{}</small></td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{ja}<small lang=\"en\">{en}</small></td></tr>",
            esc(&kpi.id),
            r.year,
            r.from,
            esc(&kpi.name_ja),
            esc(&kpi.name_en),
            esc(&year_text(r)),
            cell(kpi, step.previous),
            cell(kpi, Some(r.target)),
            r.from,
            esc(&r.decision),
        );
    }
    h.push_str("</tbody></table>\n</section>\n");
}

/// A KPI page's short list of its revisions (`FY2027 44.0% → 46.0%（2027-06-15から、
/// decision）`); nothing when it has none.
pub fn write_kpi_list(h: &mut String, kpi: &Kpi, at: Timestamp) {
    let steps = kpi.revision_steps();
    if steps.is_empty() {
        return;
    }
    h.push_str(
        "<section class=\"revisions\">\n<h2>目標値の改定 <span lang=\"en\">Target revisions</span></h2>\n<ul>\n",
    );
    for step in steps {
        let r = step.revision;
        let (ja, en) = state(r, at);
        let _ = writeln!(
            h,
            "<li data-fiscal-year=\"{}\" data-from=\"{}\">{}: {} → {}（{}から <span lang=\"en\">from {}</span>、{}）{ja} <span lang=\"en\">{en}</span></li>",
            r.year,
            r.from,
            esc(&year_text(r)),
            cell(kpi, step.previous),
            cell(kpi, Some(r.target)),
            r.from,
            r.from,
            esc(&r.decision),
        );
    }
    h.push_str("</ul>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use mieruka_aggregator::plan::OME_PLAN;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    /// The Ome plan with the holding rate's FY2026 target revised twice.
    fn revised() -> Plan {
        // A revision table belongs to the [[kpi]] above it: right before the next KPI.
        let next = "[[kpi]]\nid = \"konbini_issuance_rate\"";
        let text = OME_PLAN.replacen(
            next,
            &format!(
                "[[kpi.revisions]]\nfiscal_year = 2026\ntarget = 86.0\nfrom = \"2026-09-01\"\ndecision = \"A & <B>\"\n\
                 [[kpi.revisions]]\nfiscal_year = 2026\ntarget = 87.0\nfrom = \"2027-01-10\"\ndecision = \"C\"\n\n{next}"
            ),
            1,
        );
        Plan::parse("revised.toml", &text).unwrap()
    }

    #[test]
    fn the_report_lists_each_revision_with_the_target_it_replaced() {
        let plan = revised();
        let mut h = String::new();
        write_report_section(&mut h, &plan, ts("2026-10-01T00:00:00+09:00"));
        let rows: Vec<&str> = h.split("<tr data-kpi=").skip(1).collect();
        assert_eq!(rows.len(), 2, "{h}");
        assert!(
            rows[0].contains("84.6") && rows[0].contains("86.0"),
            "{}",
            rows[0]
        );
        assert!(rows[0].contains("A &amp; &lt;B&gt;") && rows[0].contains("適用済み"));
        assert!(
            rows[1].contains("86.0") && rows[1].contains("87.0"),
            "{}",
            rows[1]
        );
        assert!(rows[1].contains("適用前"), "{}", rows[1]);
        assert!(h.contains("令和8年度（FY2026）"));
    }

    #[test]
    fn a_plan_without_revisions_adds_nothing() {
        let plan = Plan::ome().unwrap();
        assert!(plan_revisions(&plan).is_empty());
        let mut h = String::new();
        write_report_section(&mut h, &plan, ts("2026-10-01T00:00:00+09:00"));
        for kpi in &plan.kpis {
            write_kpi_list(&mut h, kpi, ts("2026-10-01T00:00:00+09:00"));
        }
        assert_eq!(h, "");
    }

    #[test]
    fn a_kpi_page_lists_its_own_revisions_briefly() {
        let plan = revised();
        let mut h = String::new();
        let kpi = plan.kpi("mynumber_card_holding_rate").unwrap();
        write_kpi_list(&mut h, kpi, ts("2027-02-01T00:00:00+09:00"));
        assert_eq!(h.matches("<li ").count(), 2, "{h}");
        assert!(!h.contains("適用前"), "both have begun by February: {h}");
    }
}
