//! KPIs: what each one's value is made of (a measure, a ratio, stages), and its
//! direction; its targets are `targets`' business, its cross-checks `checks`'.

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use super::error::Errors;
use super::file::{Chapter, KpiDecl};
use super::model::{Direction, Kpi, KpiKind, Measure, MeasureId, Stage};
use super::{checks, revisions, targets};
use crate::fiscal::FiscalYear;

/// The key of a field of one KPI in errors: `kpi[3] (telework).numerator`.
pub(super) struct KpiKey(String);

impl KpiKey {
    /// The key of field `f`.
    pub(super) fn of(&self, f: &str) -> String {
        format!("{}.{f}", self.0)
    }
}

/// Compiles the KPIs, in file order; `years` is the plan's (first, last) year.
pub(super) fn compile_kpis(
    decls: Vec<KpiDecl>,
    chapters: &[Chapter],
    measures: &[Measure],
    years: (FiscalYear, FiscalYear),
    errs: &mut Errors<'_>,
) -> Vec<Kpi> {
    let measure_ix: HashMap<&str, MeasureId> = measures
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), MeasureId(i)))
        .collect();
    let chapter_ids: HashSet<&str> = chapters.iter().map(|c| c.id.as_str()).collect();
    let mut seen_ids: HashMap<String, usize> = HashMap::new();
    let mut kpis = Vec::new();
    for (n, k) in decls.into_iter().enumerate() {
        let key = KpiKey(format!("kpi[{n}] ({})", k.id.get_ref()));
        checks::kpi_identity(&k, n, &key, &mut seen_ids, errs);
        checks::kpi_chapter(&k, &key, &chapter_ids, errs);
        let direction = direction(&k, &key, errs);
        let Some(kind) = kind(&k, &key, &measure_ix, errs) else {
            continue;
        };
        let figures = targets::compile_targets(&k, &kind, years, &key, errs);
        checks::kpi_figures(&k, &kind, &figures.targets, &key, errs);
        let revisions =
            revisions::compile_revisions(&k, &kind, &figures.targets, years, &key, errs);
        let Some(alert) = checks::kpi_alert(&k, &key, errs) else {
            continue;
        };
        let counter_ja = checks::kpi_counter(&k, &key, errs);
        kpis.push(Kpi {
            id: k.id.into_inner(),
            name_ja: k.name_ja,
            name_en: k.name_en,
            chapter: k.chapter.into_inner(),
            unit: k.unit,
            counter_ja,
            direction,
            kind,
            baseline: figures.baseline,
            targets: figures.targets,
            revisions,
            tolerance: k.tolerance,
            due: figures.due,
            alert,
            source: k.source,
            note: k.note,
        });
    }
    kpis
}

fn direction(k: &KpiDecl, key: &KpiKey, errs: &mut Errors<'_>) -> Direction {
    match k.direction.get_ref().as_str() {
        "up" => Direction::Up,
        "down" => Direction::Down,
        other => {
            errs.at(
                Some(k.direction.span()),
                key.of("direction"),
                format!("{other:?}: expected up or down"),
            );
            Direction::Up
        }
    }
}

/// What the KPI's value is made of; `None` after reporting what is missing or wrong.
fn kind(
    k: &KpiDecl,
    key: &KpiKey,
    measure_ix: &HashMap<&str, MeasureId>,
    errs: &mut Errors<'_>,
) -> Option<KpiKind> {
    let measure_ref = |f: &str, v: &Option<Spanned<String>>, errs: &mut Errors<'_>| {
        measure_ref(k, key, measure_ix, f, v, errs)
    };
    match k.kind.get_ref().as_str() {
        "measure" => measure_ref("measure", &k.measure, errs).map(KpiKind::Measure),
        "recurring" => measure_ref("measure", &k.measure, errs).map(KpiKind::Recurring),
        "ratio" => {
            let num = measure_ref("numerator", &k.numerator, errs);
            let den = measure_ref("denominator", &k.denominator, errs);
            match (num, den) {
                (Some(numerator), Some(denominator)) => Some(KpiKind::Ratio {
                    numerator,
                    denominator,
                    scale: k.scale.unwrap_or(if k.unit == "%" { 100.0 } else { 1.0 }),
                }),
                _ => None,
            }
        }
        "milestone" => Some(milestone(k, key, errs)),
        other => {
            errs.at(
                Some(k.kind.span()),
                key.of("kind"),
                format!(
                    "unknown KPI kind {other:?}; expected measure, ratio, milestone or recurring"
                ),
            );
            None
        }
    }
}

/// The measure a KPI's field `f` names.
fn measure_ref(
    k: &KpiDecl,
    key: &KpiKey,
    measure_ix: &HashMap<&str, MeasureId>,
    f: &str,
    v: &Option<Spanned<String>>,
    errs: &mut Errors<'_>,
) -> Option<MeasureId> {
    let Some(s) = v else {
        errs.at(
            Some(k.kind.span()),
            key.of(f),
            "required for this kind of KPI",
        );
        return None;
    };
    match measure_ix.get(s.get_ref().as_str()) {
        Some(&i) => Some(i),
        None => {
            errs.at(
                Some(s.span()),
                key.of(f),
                format!(
                    "{:?} is not a declared measure (see [measures])",
                    s.get_ref()
                ),
            );
            None
        }
    }
}

/// A milestone's ordered stages, each listed once.
fn milestone(k: &KpiDecl, key: &KpiKey, errs: &mut Errors<'_>) -> KpiKind {
    if k.stages.is_empty() {
        errs.at(
            Some(k.kind.span()),
            key.of("stages"),
            "a milestone needs its ordered stages",
        );
    }
    let mut ids = HashSet::new();
    for s in &k.stages {
        if !ids.insert(s.id.as_str()) {
            errs.at(
                Some(k.kind.span()),
                key.of("stages"),
                format!("stage {:?} is listed twice", s.id),
            );
        }
    }
    KpiKind::Milestone {
        stages: k
            .stages
            .iter()
            .map(|s| Stage {
                id: s.id.clone(),
                name_ja: s.name_ja.clone(),
                name_en: s.name_en.clone(),
            })
            .collect(),
    }
}
