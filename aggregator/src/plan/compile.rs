//! From the file as written to the model: the order of the steps, and the parts of the
//! plan that are the sum of its measures and KPIs (the ingest schema, milestone events,
//! snapshots).

use std::collections::{BTreeMap, HashMap};

use mieruka_ingest::schema::{EventTypeDecl, FieldIx, FieldKind, Schema};

use super::error::Errors;
use super::file::{Chapter, Header, KpiDecl, PlanFile};
use super::model::{Op, Plan};
use super::{checks, kpis, measures, HORIZON_YEARS};
use crate::fiscal::FiscalYear;

/// Checks and compiles a parsed plan file; `None` when a problem stops compilation
/// early (every problem is in `errs`).
pub(super) fn compile(raw: PlanFile, errs: &mut Errors<'_>) -> Option<Plan> {
    let h = raw.plan;
    checks::plan_years(&h, errs);
    let chapters: Vec<Chapter> = raw
        .chapters
        .into_iter()
        .map(|(id, c)| Chapter { id, ..c })
        .collect();
    let schema = schema(&raw.event_types, &raw.kpi, &h, errs)?;
    let (measures, routes) = measures::compile_measures(raw.measures, &schema, errs);
    let first = FiscalYear(h.first_year);
    let last = FiscalYear(h.last_year);
    let kpis = kpis::compile_kpis(raw.kpi, &chapters, &measures, (first, last), errs);
    let milestone_fields = milestone_fields(&schema);
    let is_snapshot = routes
        .iter()
        .map(|rs| rs.iter().any(|r| r.op == Op::Reset))
        .collect();
    Some(Plan {
        id: h.id,
        name_ja: h.name_ja,
        name_en: h.name_en,
        city: h.city,
        baseline_year: FiscalYear(h.baseline_year),
        first_year: first,
        last_year: last,
        chapters,
        schema,
        measures,
        kpis,
        routes,
        milestone_fields,
        is_snapshot,
    })
}

/// The ingest schema of the plan's event types, with the plan's time window.
fn schema(
    event_types: &BTreeMap<String, EventTypeDecl>,
    kpis: &[KpiDecl],
    h: &Header,
    errs: &mut Errors<'_>,
) -> Option<Schema> {
    // Milestone stages must be known to build the ingest schema.
    let stages: HashMap<String, Vec<String>> = kpis
        .iter()
        .filter(|k| k.kind.get_ref() == "milestone")
        .map(|k| {
            (
                k.id.get_ref().clone(),
                k.stages.iter().map(|s| s.id.clone()).collect(),
            )
        })
        .collect();
    let mut schema = match Schema::new(event_types, stages) {
        Ok(s) => s,
        Err(e) => {
            errs.at(None, format!("event_types.\"{}\"", e.event_type), e.message);
            return None;
        }
    };
    // Events older than the start of the fiscal year five years before the baseline
    // are out of the plan's horizon (docs/architecture.md, "Inputs have domains"); the config
    // (`horizon_start`) may move it.
    schema.set_window(mieruka_ingest::TimeWindow {
        earliest: FiscalYear(h.baseline_year.saturating_sub(HORIZON_YEARS)).start(),
        ..mieruka_ingest::TimeWindow::default()
    });
    Some(schema)
}

/// Milestone events: a type with a `stage` field feeds the milestone KPI it names.
fn milestone_fields(schema: &Schema) -> Vec<Option<(FieldIx, FieldIx)>> {
    schema
        .types()
        .iter()
        .map(|t| {
            t.fields.iter().enumerate().find_map(|(i, f)| match f.kind {
                FieldKind::Stage { of } => Some((of, i)),
                _ => None,
            })
        })
        .collect()
}
