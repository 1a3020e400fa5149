//! Measures, and the routes from event types to them: which events feed which measure,
//! through which field and filter.

use std::collections::BTreeMap;

use mieruka_ingest::schema::{EventType, FieldIx, FieldKind, Schema};
use toml::Spanned;

use super::error::Errors;
use super::file::{FilterValues, MeasureDecl, TermDecl};
use super::model::{Measure, MeasureId, MeasureKind, Op, Route};

/// Compiles the measures (in id order) and, per event type, the routes that feed them.
pub(super) fn compile_measures(
    decls: BTreeMap<String, MeasureDecl>,
    schema: &Schema,
    errs: &mut Errors<'_>,
) -> (Vec<Measure>, Vec<Vec<Route>>) {
    let mut measures = Vec::new();
    let mut routes: Vec<Vec<Route>> = vec![Vec::new(); schema.types().len()];
    for (ix, (id, m)) in decls.into_iter().enumerate() {
        let key = format!("measures.{id}");
        let Some(kind) = measure_kind(&m, &key, errs) else {
            continue;
        };
        let mut terms = Terms {
            schema,
            measure: MeasureId(ix),
            key: &key,
            scale: None,
            routes: &mut routes,
        };
        let complete = match kind {
            MeasureKind::Level => {
                level_terms(&m, &mut terms, errs);
                true
            }
            _ => flow_terms(&m, kind, &mut terms, errs),
        };
        // A flow without its type or field is not a measure: KPIs naming it are told so.
        if !complete {
            continue;
        }
        let scale = terms.scale;
        measures.push(Measure {
            id,
            kind,
            scale: scale.unwrap_or(0),
            description: m.description,
        });
    }
    (measures, routes)
}

fn measure_kind(m: &MeasureDecl, key: &str, errs: &mut Errors<'_>) -> Option<MeasureKind> {
    match m.kind.get_ref().as_str() {
        "events" => Some(MeasureKind::Events),
        "sum" => Some(MeasureKind::Sum),
        "distinct" => Some(MeasureKind::Distinct),
        "level" => Some(MeasureKind::Level),
        other => {
            errs.at(
                Some(m.kind.span()),
                format!("{key}.kind"),
                format!("unknown measure kind {other:?}; expected events, sum, distinct or level"),
            );
            None
        }
    }
}

/// The terms of one measure being compiled: where their routes go, and the decimal
/// scale they must share.
struct Terms<'a> {
    schema: &'a Schema,
    measure: MeasureId,
    key: &'a str,
    scale: Option<u32>,
    routes: &'a mut [Vec<Route>],
}

impl Terms<'_> {
    /// Compiles one term (`what` is its key: `type`, `increase`, …) into a route.
    fn add(&mut self, t: &TermDecl, op: Op, what: &str, errs: &mut Errors<'_>) {
        let key = format!("{}.{what}", self.key);
        let Some(route) = compile_route(
            self.schema,
            self.measure,
            op,
            t,
            &key,
            errs,
            &mut self.scale,
        ) else {
            return;
        };
        let ty = self
            .schema
            .type_id(t.event_type.get_ref())
            .map_or(0, |t| usize::from(t.0));
        self.routes[ty].push(route);
    }
}

/// A level: increase, decrease and reset terms.
fn level_terms(m: &MeasureDecl, terms: &mut Terms<'_>, errs: &mut Errors<'_>) {
    let key = terms.key;
    if m.event_type.is_some() || m.field.is_some() || !m.filter.is_empty() {
        errs.at(
            Some(m.kind.span()),
            key,
            "a level declares increase, decrease and reset, not type/field/where",
        );
    }
    for t in &m.increase {
        terms.add(t, Op::Add, "increase", errs);
    }
    for t in &m.decrease {
        terms.add(t, Op::Sub, "decrease", errs);
    }
    match &m.reset {
        Some(t) => terms.add(t, Op::Reset, "reset", errs),
        None => errs.at(
            Some(m.kind.span()),
            format!("{key}.reset"),
            "a level needs a reset snapshot type (deltas alone do not make a stock)",
        ),
    }
}

/// A flow or a distinct count: one type, maybe a field and a filter. False when the
/// type or the field is missing (or a field is given to a count of events).
fn flow_terms(
    m: &MeasureDecl,
    kind: MeasureKind,
    terms: &mut Terms<'_>,
    errs: &mut Errors<'_>,
) -> bool {
    let key = terms.key;
    if !m.increase.is_empty() || !m.decrease.is_empty() || m.reset.is_some() {
        errs.at(
            Some(m.kind.span()),
            key,
            "only a level has increase/decrease/reset",
        );
    }
    let Some(event_type) = &m.event_type else {
        errs.at(
            Some(m.kind.span()),
            format!("{key}.type"),
            "required: the event type it folds",
        );
        return false;
    };
    let (op, needs_field) = match kind {
        MeasureKind::Events => (Op::Add, false),
        MeasureKind::Sum => (Op::Add, true),
        _ => (Op::Distinct, true),
    };
    if needs_field != m.field.is_some() {
        let msg = if needs_field {
            "required for this kind"
        } else {
            "an events measure counts events; drop the field or use kind = \"sum\""
        };
        errs.at(Some(m.kind.span()), format!("{key}.field"), msg);
        return false;
    }
    let t = TermDecl {
        event_type: event_type.clone(),
        field: m.field.clone(),
        filter: m.filter.clone(),
    };
    terms.add(&t, op, "type", errs);
    true
}

/// What events of one type do to `measure`, per one term.
fn compile_route(
    schema: &Schema,
    measure: MeasureId,
    op: Op,
    t: &TermDecl,
    key: &str,
    errs: &mut Errors<'_>,
    scale: &mut Option<u32>,
) -> Option<Route> {
    let Some(type_id) = schema.type_id(t.event_type.get_ref()) else {
        errs.at(
            Some(t.event_type.span()),
            key,
            format!(
                "{:?} is not a declared event type (see [event_types])",
                t.event_type.get_ref()
            ),
        );
        return None;
    };
    let ty = schema.event_type(type_id);
    let field = match &t.field {
        None => None,
        Some(f) => Some(route_field(ty, f, op, key, errs, scale)?),
    };
    if op == Op::Reset && field.is_none() {
        errs.at(
            Some(t.event_type.span()),
            key,
            "a reset names the snapshot's field",
        );
    }
    let filter = t
        .filter
        .iter()
        .filter_map(|(name, vals)| route_filter(ty, name, vals, key, errs))
        .collect();
    Some(Route {
        measure,
        op,
        field,
        filter,
    })
}

/// The numeric field a term adds (or the field whose values a distinct count counts);
/// every added field of a measure must have the same decimal scale.
fn route_field(
    ty: &EventType,
    f: &Spanned<String>,
    op: Op,
    key: &str,
    errs: &mut Errors<'_>,
    scale: &mut Option<u32>,
) -> Option<FieldIx> {
    let Some(ix) = ty.field(f.get_ref()) else {
        errs.at(
            Some(f.span()),
            key,
            format!("{} has no field {:?}", ty.name, f.get_ref()),
        );
        return None;
    };
    let this_scale = match (&ty.fields[ix].kind, op) {
        (_, Op::Distinct) => 0,
        (FieldKind::Int { .. }, _) => 0,
        (FieldKind::Decimal { scale, .. }, _) => *scale,
        _ => {
            errs.at(
                Some(f.span()),
                key,
                format!("{}.{} is not numeric", ty.name, f.get_ref()),
            );
            return None;
        }
    };
    if op != Op::Distinct {
        if scale.is_some_and(|s| s != this_scale) {
            errs.at(
                Some(f.span()),
                key,
                "every term of a measure must have the same decimal scale",
            );
        }
        *scale = Some(this_scale);
    }
    Some(ix)
}

/// A `where` entry: the enum field and the indices of its allowed values.
fn route_filter(
    ty: &EventType,
    name: &str,
    vals: &Spanned<FilterValues>,
    key: &str,
    errs: &mut Errors<'_>,
) -> Option<(FieldIx, Vec<u16>)> {
    let Some(ix) = ty.field(name) else {
        errs.at(
            Some(vals.span()),
            key,
            format!("where: {} has no field {name:?}", ty.name),
        );
        return None;
    };
    let FieldKind::Enum { values } = &ty.fields[ix].kind else {
        errs.at(
            Some(vals.span()),
            key,
            format!("where: {name} is not an enum field"),
        );
        return None;
    };
    let wanted = match vals.get_ref() {
        FilterValues::One(v) => vec![v.clone()],
        FilterValues::Many(v) => v.clone(),
    };
    let mut ixs = Vec::new();
    for w in wanted {
        match values.iter().position(|v| *v == w) {
            Some(i) => ixs.push(i as u16),
            None => errs.at(
                Some(vals.span()),
                key,
                format!(
                    "where: {w:?} is not a value of {name} (one of {})",
                    values.join(", ")
                ),
            ),
        }
    }
    Some((ix, ixs))
}
