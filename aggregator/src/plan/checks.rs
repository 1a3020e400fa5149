//! Cross-checks: rules that relate a part of the plan to another (years to years, a KPI
//! to the other KPIs and to the chapters, targets to the kind of KPI).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::error::Errors;
use super::file::{Header, KpiDecl};
use super::kpis::KpiKey;
use super::model::KpiKind;
use crate::fiscal::FiscalYear;

/// The baseline year comes before the first year with targets, which is not after the last.
pub(super) fn plan_years(h: &Header, errs: &mut Errors<'_>) {
    if !(h.baseline_year < h.first_year && h.first_year <= h.last_year) {
        errs.at(
            None,
            "plan",
            "years must satisfy baseline_year < first_year <= last_year",
        );
    }
}

/// A KPI's id is unique (`n` is its index in the file) and can be a metric label.
pub(super) fn kpi_identity(
    k: &KpiDecl,
    n: usize,
    key: &KpiKey,
    seen_ids: &mut HashMap<String, usize>,
    errs: &mut Errors<'_>,
) {
    if let Some(prev) = seen_ids.insert(k.id.get_ref().clone(), n) {
        errs.at(
            Some(k.id.span()),
            key.of("id"),
            format!("duplicate KPI id (first used by kpi[{prev}])"),
        );
    }
    if !k
        .id
        .get_ref()
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        errs.at(
            Some(k.id.span()),
            key.of("id"),
            "ids are snake_case ASCII (they become metric labels)",
        );
    }
}

/// A KPI's chapter is declared under `[chapters]`.
pub(super) fn kpi_chapter(
    k: &KpiDecl,
    key: &KpiKey,
    chapter_ids: &HashSet<&str>,
    errs: &mut Errors<'_>,
) {
    if !chapter_ids.contains(k.chapter.get_ref().as_str()) {
        errs.at(
            Some(k.chapter.span()),
            key.of("chapter"),
            format!(
                "no chapter {:?} is declared under [chapters]",
                k.chapter.get_ref()
            ),
        );
    }
}

/// A recurring duty's targets are at least 1, and a tolerance is not negative.
pub(super) fn kpi_figures(
    k: &KpiDecl,
    kind: &KpiKind,
    targets: &BTreeMap<FiscalYear, Option<f64>>,
    key: &KpiKey,
    errs: &mut Errors<'_>,
) {
    if matches!(kind, KpiKind::Recurring(_)) && targets.values().flatten().any(|t| *t < 1.0) {
        errs.at(
            Some(k.kind.span()),
            key.of("targets"),
            "a recurring duty's target is at least 1 per year",
        );
    }
    if k.tolerance < 0.0 {
        errs.at(
            Some(k.id.span()),
            key.of("tolerance"),
            "must not be negative",
        );
    }
}
