//! Cross-checks: rules that relate a part of the plan to another (years to years, a KPI
//! to the other KPIs and to the chapters, targets to the kind of KPI).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::alert::{Alert, CriticalFactor, PromDuration};
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

/// The alerting knobs parse: `behind_for` is a positive Prometheus duration and
/// `critical_factor` a finite number above 1. `None` after reporting each bad one.
pub(super) fn kpi_alert(k: &KpiDecl, key: &KpiKey, errs: &mut Errors<'_>) -> Option<Alert> {
    let behind_for = PromDuration::parse(&k.alert.behind_for);
    if let Err(e) = &behind_for {
        errs.at(Some(k.id.span()), key.of("alert.behind_for"), e.clone());
    }
    let critical_factor = CriticalFactor::new(k.alert.critical_factor);
    if let Err(e) = &critical_factor {
        errs.at(
            Some(k.id.span()),
            key.of("alert.critical_factor"),
            e.clone(),
        );
    }
    Some(Alert {
        behind_for: behind_for.ok()?,
        critical_factor: critical_factor.ok()?,
    })
}

/// The longest counter word a plan may give (時間 is two; a few more for words such as
/// データセット would read badly after a number, but are not wrong).
const COUNTER_MAX_CHARS: usize = 6;

/// A KPI's `counter_ja`, written right after its numbers (`450人`): a short word without
/// spaces or digits, and only for counts (a percentage or a stage has none). `None`
/// where absent or refused (after reporting it).
pub(super) fn kpi_counter(k: &KpiDecl, key: &KpiKey, errs: &mut Errors<'_>) -> Option<String> {
    let counter = k.counter_ja.as_ref()?;
    let word = counter.get_ref();
    let problem = if k.unit == "%" || k.kind.get_ref() == "milestone" {
        Some("only counts have a counter word (not percentages or stages)")
    } else if word.is_empty() || word.chars().count() > COUNTER_MAX_CHARS {
        Some("a counter word has 1 to 6 characters (e.g. 人, 件, 枚, 時間, 回)")
    } else if word
        .chars()
        .any(|c| c.is_whitespace() || c.is_numeric() || c.is_control())
    {
        Some("a counter word has no spaces or digits (e.g. 人, 件, 枚, 時間, 回)")
    } else {
        None
    };
    match problem {
        Some(message) => {
            errs.at(Some(counter.span()), key.of("counter_ja"), message);
            None
        }
        None => Some(word.clone()),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::{Plan, PlanError, OME_PLAN};

    /// The problems of the Ome plan with `extra` added to the KPI `id`.
    fn errors_with(id: &str, extra: &str) -> Vec<PlanError> {
        let line = format!("id = \"{id}\"\n");
        assert_eq!(OME_PLAN.matches(&line).count(), 1, "{id}");
        let text = OME_PLAN.replacen(&line, &format!("{line}{extra}\n"), 1);
        match Plan::parse("broken.toml", &text) {
            Ok(_) => panic!("the plan with {extra:?} loaded"),
            Err(e) => e.errors,
        }
    }

    fn assert_one(errors: &[PlanError], key: &str, says: &str) {
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, key, "{}", errors[0]);
        assert!(errors[0].message.contains(says), "{}", errors[0]);
    }

    #[test]
    fn a_behind_for_that_is_no_prometheus_duration_is_refused_naming_the_kpi() {
        for bad in ["6 hours", "2days", "1.5h", "h", "30m1h"] {
            let errors = errors_with(
                "mynumber_card_holding_rate",
                &format!("alert = {{ behind_for = {bad:?} }}"),
            );
            assert_one(
                &errors,
                "kpi[0] (mynumber_card_holding_rate).alert.behind_for",
                bad,
            );
        }
    }

    #[test]
    fn a_zero_behind_for_is_refused() {
        let errors = errors_with(
            "mynumber_card_holding_rate",
            "alert = { behind_for = \"0s\" }",
        );
        assert_one(
            &errors,
            "kpi[0] (mynumber_card_holding_rate).alert.behind_for",
            "positive",
        );
    }

    #[test]
    fn a_critical_factor_not_beyond_the_warning_or_not_finite_is_refused() {
        for bad in ["1.0", "0.5", "-2.0", "nan", "inf"] {
            let errors = errors_with(
                "mynumber_card_holding_rate",
                &format!("alert = {{ critical_factor = {bad} }}"),
            );
            assert_one(
                &errors,
                "kpi[0] (mynumber_card_holding_rate).alert.critical_factor",
                "greater than 1",
            );
        }
    }

    #[test]
    fn both_bad_alert_knobs_are_reported_at_once() {
        let errors = errors_with(
            "mynumber_card_holding_rate",
            "alert = { behind_for = \"7 days\", critical_factor = 0.0 }",
        );
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "kpi[0] (mynumber_card_holding_rate).alert.behind_for",
                "kpi[0] (mynumber_card_holding_rate).alert.critical_factor"
            ]
        );
    }

    #[test]
    fn a_counter_word_is_refused_on_a_percentage_or_with_spaces() {
        let errors = errors_with("mynumber_card_holding_rate", "counter_ja = \"人\"");
        assert_one(
            &errors,
            "kpi[0] (mynumber_card_holding_rate).counter_ja",
            "only counts",
        );
        let text = OME_PLAN.replacen("counter_ja = \"人\"", "counter_ja = \"人 / 年\"", 1);
        let errors = match Plan::parse("broken.toml", &text) {
            Ok(_) => panic!("a counter with spaces loaded"),
            Err(e) => e.errors,
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].key.ends_with(".counter_ja"), "{}", errors[0]);
    }

    #[test]
    fn a_due_date_that_is_no_calendar_day_is_refused() {
        let errors = errors_with(
            "disposition_notice_online",
            "due = { 2026 = \"2027-02-30\" }",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0]
            .key
            .ends_with("(disposition_notice_online).due.2026"));
        assert!(errors[0].message.contains("YYYY-MM-DD"), "{}", errors[0]);
    }

    #[test]
    fn a_valid_due_date_is_kept_as_a_day() {
        let text = OME_PLAN.replacen(
            "id = \"disposition_notice_online\"\n",
            "id = \"disposition_notice_online\"\ndue = { 2026 = \"2026-09-30\" }\n",
            1,
        );
        let plan = Plan::parse("p.toml", &text).unwrap();
        let kpi = plan.kpi("disposition_notice_online").unwrap();
        let due = kpi.due.get(&crate::FiscalYear(2026)).copied();
        assert_eq!(due, "2026-09-30".parse().ok());
    }
}
