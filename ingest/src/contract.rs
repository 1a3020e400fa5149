//! The contract a line system's vendor builds against, generated from the plan's event
//! types: a JSON Schema (2020-12) per type and, with the receiver, the OpenAPI document
//! of `POST /v1/events` ([`openapi`]). Nothing here is written by hand per type: a type,
//! field or value added to the plan appears in the contract when it is regenerated
//! (`mieruka schema --out docs`), and a test fails while the committed copy is stale.
//!
//! A schema says what the receiver takes as far as JSON Schema can say it. What it
//! cannot say is in each schema's `description` and checked only by the receiver: an
//! integer written `1.0` (JSON Schema calls it an integer; the receiver `wrong_type`),
//! more decimals than a decimal field's scale, `occurred_at` outside the accepted
//! window, the cross-field rules (kept as `x-mieruka-rules`), and the personal-number
//! guard over every value.

#[cfg(feature = "http")]
pub mod openapi;

use serde_json::{json, Map, Value};

use crate::event::{fixed_to_string, MAX_ID_CHARS};
use crate::schema::{EventType, Field, FieldKind, Schema};

/// The dialect of every generated schema.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// What an id (`event_id`, `source`, `voids`, an `id` field) must match: not blank,
/// no control characters (the length is `maxLength`).
const ID_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

/// The file name of a type's schema: `certificate.issued.json`.
pub fn file_name(type_name: &str) -> String {
    format!("{type_name}.json")
}

/// The JSON Schema of one event type: the envelope, its `data` and, for the voiding
/// type, `voids`.
pub fn event_schema(schema: &Schema, ty: &EventType) -> Value {
    let mut properties = Map::new();
    properties.insert("event_id".into(), id_schema("Unique per event within its source, chosen by the line system; re-sending the same id and body counts once."));
    properties.insert(
        "source".into(),
        id_schema("The line system that sends the event, one of the sources its token may send."),
    );
    properties.insert("type".into(), json!({ "const": ty.name }));
    properties.insert(
        "occurred_at".into(),
        json!({
            "type": "string",
            "format": "date-time",
            "description": "When it happened: RFC 3339 with an offset (2026-05-01T10:15:00+09:00 or …Z). Not earlier than the plan's horizon, not more than the configured skew (default one day) in the future.",
        }),
    );
    properties.insert("data".into(), data_schema(schema, ty));
    let mut required = vec!["event_id", "source", "type", "occurred_at", "data"];
    if ty.voids {
        properties.insert(
            "voids".into(),
            id_schema(
                "The event_id of the earlier event of the same source that this event retracts.",
            ),
        );
        required.push("voids");
    }
    let mut out = json!({
        "$schema": DIALECT,
        "title": ty.name,
        "description": type_description(ty),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    if !ty.rules.is_empty() {
        let rules: Vec<Value> = ty
            .rules
            .iter()
            .map(|&(a, b)| json!({ "field": ty.fields[a].name, "le": ty.fields[b].name }))
            .collect();
        out["x-mieruka-rules"] = Value::Array(rules);
    }
    out
}

/// Every type's schema, in the plan's (sorted) order, as (type name, schema).
pub fn event_schemas(schema: &Schema) -> Vec<(String, Value)> {
    let mut types: Vec<&EventType> = schema.types().iter().collect();
    types.sort_by(|a, b| a.name.cmp(&b.name));
    types
        .into_iter()
        .map(|ty| (ty.name.clone(), event_schema(schema, ty)))
        .collect()
}

fn type_description(ty: &EventType) -> String {
    let mut text = ty.doc.description.clone();
    if !ty.doc.name_ja.is_empty() {
        text = format!("{}: {text}", ty.doc.name_ja);
    }
    let rules: Vec<String> = ty
        .rules
        .iter()
        .map(|&(a, b)| format!("data.{} ≤ data.{}", ty.fields[a].name, ty.fields[b].name))
        .collect();
    if !rules.is_empty() {
        text.push_str(&format!(
            " The receiver also requires {} (cross_field).",
            rules.join(", ")
        ));
    }
    text
}

fn id_schema(description: &str) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_CHARS,
        "pattern": ID_PATTERN,
        "description": description,
    })
}

fn data_schema(schema: &Schema, ty: &EventType) -> Value {
    let properties: Map<String, Value> = ty
        .fields
        .iter()
        .map(|f| (f.name.clone(), field_schema(schema, ty, f)))
        .collect();
    let required: Vec<&str> = ty
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name.as_str())
        .collect();
    let mut out = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    let stages = stage_conditions(schema, ty);
    if !stages.is_empty() {
        out["allOf"] = Value::Array(stages);
    }
    if ty.voids {
        out["description"] = json!("Empty: a voiding event carries no data.");
    }
    out
}

/// A number given in units of `scale` decimal places, as JSON.
fn scaled_number(v: i64, scale: u32) -> Value {
    serde_json::from_str(&fixed_to_string(v, scale)).unwrap_or(Value::Null)
}

fn field_schema(schema: &Schema, ty: &EventType, f: &Field) -> Value {
    let mut out = match &f.kind {
        FieldKind::Int { min, max } => json!({
            "type": "integer",
            "minimum": min,
            "maximum": max,
            "description": "An integer in integer notation (1, not 1.0 or 1e0).",
        }),
        FieldKind::Decimal { scale, min, max } => json!({
            "type": "number",
            "minimum": scaled_number(*min, *scale),
            "maximum": scaled_number(*max, *scale),
            "x-mieruka-scale": scale,
            "description": format!("A decimal number with at most {scale} decimal places (more is refused, never rounded)."),
        }),
        FieldKind::Enum { values } => json!({ "type": "string", "enum": values }),
        FieldKind::Id => {
            let mut id = id_schema("An opaque identifier: never a person's name or number.");
            if let Some(kpis) = milestone_of(ty, f) {
                id["enum"] = json!(kpis_of(schema));
                id["description"] = json!(format!(
                    "The id of a milestone KPI of the plan; {kpis} names one of its stages."
                ));
            }
            id
        }
        FieldKind::Stage { of } => {
            let mut all: Vec<&String> = schema
                .milestones()
                .into_iter()
                .flat_map(|(_, s)| s)
                .collect();
            all.sort_unstable();
            all.dedup();
            json!({
                "type": "string",
                "enum": all,
                "description": format!("A stage id of the milestone KPI named by data.{}.", ty.fields[*of].name),
            })
        }
    };
    if let Some(d) = &f.doc.default {
        out["default"] = d.clone();
    }
    let title = match (f.doc.name_ja.is_empty(), f.doc.description.is_empty()) {
        (false, false) => Some(format!("{} — {}", f.doc.name_ja, f.doc.description)),
        (false, true) => Some(f.doc.name_ja.clone()),
        (true, false) => Some(f.doc.description.clone()),
        (true, true) => None,
    };
    if let Some(t) = title {
        out["title"] = json!(t);
    }
    out
}

/// For an `id` field that a stage field names as its `of`: that stage field's name.
fn milestone_of<'a>(ty: &'a EventType, f: &Field) -> Option<&'a str> {
    ty.fields.iter().find_map(|g| match g.kind {
        FieldKind::Stage { of } if ty.fields[of].name == f.name => Some(g.name.as_str()),
        _ => None,
    })
}

fn kpis_of(schema: &Schema) -> Vec<&str> {
    schema.milestones().into_iter().map(|(k, _)| k).collect()
}

/// One `if`/`then` per milestone KPI: a stage field takes only that KPI's stages.
fn stage_conditions(schema: &Schema, ty: &EventType) -> Vec<Value> {
    let mut out = Vec::new();
    for f in &ty.fields {
        let FieldKind::Stage { of } = f.kind else {
            continue;
        };
        let kpi_field = &ty.fields[of].name;
        for (kpi, stages) in schema.milestones() {
            out.push(json!({
                "if": { "properties": { kpi_field: { "const": kpi } }, "required": [kpi_field] },
                "then": { "properties": { f.name.clone(): { "enum": stages } } },
            }));
        }
    }
    out
}

/// An example event of `ty` that the receiver accepts (given a window that takes
/// `2026-05-01`): the value each field is shown with in the documents.
pub fn example_event(schema: &Schema, ty: &EventType) -> Value {
    let data: Map<String, Value> = ty
        .fields
        .iter()
        .map(|f| (f.name.clone(), example_value(schema, ty, f)))
        .collect();
    // An id per type: two examples in one request must not share (source, event_id).
    let id = |n: u32| format!("{}-{n:06}", ty.name.replace(['.', '_'], "-"));
    let mut out = json!({
        "event_id": id(123),
        "source": "line-system-a",
        "type": ty.name,
        "occurred_at": "2026-05-01T10:15:00+09:00",
        "data": data,
    });
    if ty.voids {
        out["voids"] = json!(id(122));
    }
    out
}

/// [`example_event`] as one NDJSON line, its keys in the envelope's order (serde_json
/// would sort them, putting `data` first).
pub fn example_line(schema: &Schema, ty: &EventType) -> String {
    let event = example_event(schema, ty);
    let keys = ["event_id", "source", "type", "occurred_at", "data", "voids"];
    let members: Vec<String> = keys
        .iter()
        .filter(|k| event.get(**k).is_some())
        .map(|k| format!("{}:{}", json!(k), event[*k]))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// The example value of a field: its default, else a small value inside its bounds.
pub fn example_value(schema: &Schema, ty: &EventType, f: &Field) -> Value {
    if let Some(d) = &f.doc.default {
        return d.clone();
    }
    match &f.kind {
        FieldKind::Int { min, max } => json!(1.max(*min).min(*max)),
        FieldKind::Decimal { scale, min, max } => {
            let p = 10i64.pow(*scale);
            scaled_number((p + p / 2).max(*min).min(*max), *scale)
        }
        FieldKind::Enum { values } => json!(values.first()),
        FieldKind::Id if milestone_of(ty, f).is_some() => json!(kpis_of(schema).first()),
        FieldKind::Id => json!(format!("{}-a1", f.name)),
        FieldKind::Stage { .. } => {
            let first = schema.milestones().into_iter().next();
            json!(first.and_then(|(_, s)| s.first()))
        }
    }
}

/// A document as committed under docs/: pretty JSON with a final newline.
pub fn pretty(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_default();
    text.push('\n');
    text
}
