//! A KPI's numbers over the years: its baseline, its target per year (numbers, or stage
//! ids for a milestone) and a milestone's due dates.

use std::collections::BTreeMap;

use toml::Spanned;

use super::error::Errors;
use super::file::{KpiDecl, TargetDecl};
use super::kpis::KpiKey;
use super::model::KpiKind;
use crate::fiscal::{Day, FiscalYear};

/// The compiled baseline, targets and due dates of one KPI.
pub(super) struct Figures {
    pub(super) baseline: Option<f64>,
    pub(super) targets: BTreeMap<FiscalYear, Option<f64>>,
    pub(super) due: BTreeMap<FiscalYear, Day>,
}

/// Compiles a KPI's numbers; `years` is the plan's (first, last) year.
pub(super) fn compile_targets(
    k: &KpiDecl,
    kind: &KpiKind,
    years: (FiscalYear, FiscalYear),
    key: &KpiKey,
    errs: &mut Errors<'_>,
) -> Figures {
    let stage_names: Option<Vec<String>> = match kind {
        KpiKind::Milestone { stages } => Some(stages.iter().map(|s| s.id.clone()).collect()),
        _ => None,
    };
    let stages = stage_names.as_deref();
    let baseline = k
        .baseline
        .as_ref()
        .and_then(|b| number(b, stages, &key.of("baseline"), errs));
    let targets = targets(k, stages, years, key, errs);
    let due = due(k, stages.is_some(), years, key, errs);
    Figures {
        baseline,
        targets,
        due,
    }
}

/// A target per year of the plan (`None` where the plan gives no number).
fn targets(
    k: &KpiDecl,
    stages: Option<&[String]>,
    (first, last): (FiscalYear, FiscalYear),
    key: &KpiKey,
    errs: &mut Errors<'_>,
) -> BTreeMap<FiscalYear, Option<f64>> {
    let mut targets = BTreeMap::new();
    for (year, v) in &k.targets {
        let fy = match year.parse::<i32>() {
            Ok(y) if (first.0..=last.0).contains(&y) => FiscalYear(y),
            _ => {
                errs.at(
                    Some(v.span()),
                    key.of(&format!("targets.{year}")),
                    format!(
                        "the plan runs FY{}–FY{}; {year} is outside it",
                        first.0, last.0
                    ),
                );
                continue;
            }
        };
        targets.insert(
            fy,
            number(v, stages, &key.of(&format!("targets.{year}")), errs),
        );
    }
    for y in first.0..=last.0 {
        targets.entry(FiscalYear(y)).or_insert(None);
    }
    targets
}

/// A baseline or target: a number, a stage id for a milestone (its index), or
/// `"unset"` (`None`).
fn number(
    v: &Spanned<TargetDecl>,
    stages: Option<&[String]>,
    key: &str,
    errs: &mut Errors<'_>,
) -> Option<f64> {
    match (v.get_ref(), stages) {
        (TargetDecl::Text(t), _) if t == "unset" => None,
        (TargetDecl::Number(x), None) => Some(*x),
        (TargetDecl::Text(t), Some(stages)) => match stages.iter().position(|s| s == t) {
            Some(i) => Some(i as f64),
            None => {
                errs.at(
                    Some(v.span()),
                    key,
                    format!(
                        "{t:?} is not a stage of this milestone; stages: {}",
                        stages.join(", ")
                    ),
                );
                None
            }
        },
        (TargetDecl::Number(_), Some(_)) => {
            errs.at(
                Some(v.span()),
                key,
                "a milestone's baseline and targets are stage ids",
            );
            None
        }
        (TargetDecl::Text(t), None) => {
            errs.at(
                Some(v.span()),
                key,
                format!("{t:?}: expected a number or \"unset\""),
            );
            None
        }
    }
}

/// A milestone's due date per year of the plan.
fn due(
    k: &KpiDecl,
    is_milestone: bool,
    (first, last): (FiscalYear, FiscalYear),
    key: &KpiKey,
    errs: &mut Errors<'_>,
) -> BTreeMap<FiscalYear, Day> {
    let mut due = BTreeMap::new();
    for (year, d) in &k.due {
        let ok_year = year
            .parse::<i32>()
            .ok()
            .filter(|y| (first.0..=last.0).contains(y));
        let date = d.get_ref().parse::<Day>();
        match (ok_year, date, is_milestone) {
            (Some(y), Ok(day), true) => {
                due.insert(FiscalYear(y), day);
            }
            (_, _, false) => errs.at(
                Some(d.span()),
                key.of("due"),
                "only a milestone has due dates",
            ),
            (None, _, _) => errs.at(
                Some(d.span()),
                key.of(&format!("due.{year}")),
                "not a year of the plan",
            ),
            (_, Err(_), _) => errs.at(
                Some(d.span()),
                key.of(&format!("due.{year}")),
                "expected a date YYYY-MM-DD",
            ),
        }
    }
    due
}
