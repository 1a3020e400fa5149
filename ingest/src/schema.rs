//! Event-type declarations, as written in the plan file, and their compiled form.
//!
//! The plan file's `[event_types.*]` tables deserialize into [`EventTypeDecl`]; the
//! aggregator hands them (and the milestone stages) to [`Schema::new`], so this crate
//! validates events without knowing anything about KPIs.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// One event type as declared in the plan file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeDecl {
    /// What the event means, for people reading the plan.
    #[serde(default)]
    pub description: String,
    /// The `data` fields, by name.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldDecl>,
    /// Cross-field rules (`online ≤ in_scope`).
    #[serde(default)]
    pub rules: Vec<RuleDecl>,
    /// Whether the envelope's `voids` is required (the `event.voided` type).
    #[serde(default)]
    pub voids: bool,
}

/// One `data` field as declared in the plan file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDecl {
    /// `int`, `decimal`, `enum`, `id` or `stage`.
    pub kind: FieldKindDecl,
    /// Allowed values of an `enum`.
    #[serde(default)]
    pub values: Vec<String>,
    /// Inclusive lower bound of an `int` or `decimal`.
    pub min: Option<f64>,
    /// Inclusive upper bound of an `int` or `decimal`.
    pub max: Option<f64>,
    /// Decimal places of a `decimal` (sums stay exact in fixed point).
    pub scale: Option<u32>,
    /// The value when the field is absent (an `int` or an `enum` value).
    pub default: Option<serde_json::Value>,
    /// Whether the field must be present (default: yes, unless it has a default).
    pub required: Option<bool>,
    /// For a `stage`: the field naming the milestone KPI whose stages apply.
    pub of: Option<String>,
}

/// The kind of a `data` field.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FieldKindDecl {
    Int,
    Decimal,
    Enum,
    Id,
    Stage,
}

/// A cross-field rule: `field` ≤ `le`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDecl {
    pub field: String,
    pub le: String,
}

/// Index of an event type in the schema.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TypeId(pub u16);

/// Index of a field within its event type.
pub type FieldIx = usize;

/// A compiled field.
#[derive(Clone, Debug)]
pub struct Field {
    /// Its name in `data`.
    pub name: String,
    /// What it holds.
    pub kind: FieldKind,
    /// Whether it must be present.
    pub required: bool,
    /// Its value when absent.
    pub default: Option<crate::Value>,
}

/// What a compiled field holds.
#[derive(Clone, Debug)]
pub enum FieldKind {
    /// An integer within bounds.
    Int { min: i64, max: i64 },
    /// A fixed-point number with `scale` decimal places, bounds in units of the scale.
    Decimal { scale: u32, min: i64, max: i64 },
    /// One of a closed set of values.
    Enum { values: Vec<String> },
    /// An opaque identifier (non-empty, printable, at most 128 characters).
    Id,
    /// A stage id of the milestone KPI named by field `of`.
    Stage { of: FieldIx },
}

/// A compiled event type.
#[derive(Clone, Debug)]
pub struct EventType {
    /// Its name, e.g. `certificate.issued`.
    pub name: String,
    /// Its fields, sorted by name.
    pub fields: Vec<Field>,
    /// Cross-field rules as (field, must be ≤ field).
    pub rules: Vec<(FieldIx, FieldIx)>,
    /// Whether `voids` is required (and `data` must be empty).
    pub voids: bool,
}

impl EventType {
    /// The index of the field called `name`.
    pub fn field(&self, name: &str) -> Option<FieldIx> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// Why a set of declarations does not make a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event type {event_type:?}: {message}")]
pub struct SchemaError {
    pub event_type: String,
    pub message: String,
}

/// The compiled event types a plan declares: what ingest validates against.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    types: Vec<EventType>,
    by_name: HashMap<String, TypeId, foldhash::fast::RandomState>,
    /// Milestone KPI id → its stage ids, in order.
    stages: HashMap<String, Vec<String>>,
}

impl Schema {
    /// Compiles declarations; `stages` maps each milestone KPI id to its stage ids.
    pub fn new(
        decls: &BTreeMap<String, EventTypeDecl>,
        stages: HashMap<String, Vec<String>>,
    ) -> Result<Self, SchemaError> {
        let mut schema = Schema {
            stages,
            ..Schema::default()
        };
        for (name, decl) in decls {
            let err = |message: String| SchemaError {
                event_type: name.clone(),
                message,
            };
            if decl.fields.len() > 128 {
                return Err(err("at most 128 data fields per event type".into()));
            }
            let names: Vec<&String> = decl.fields.keys().collect();
            let mut fields = Vec::new();
            for (fname, f) in &decl.fields {
                let kind = compile_kind(fname, f, &names).map_err(err)?;
                let default = match &f.default {
                    None => None,
                    Some(v) => Some(default_value(&kind, v).ok_or_else(|| {
                        err(format!(
                            "field {fname:?}: default {v} does not fit the field"
                        ))
                    })?),
                };
                let required = f.required.unwrap_or(default.is_none());
                fields.push(Field {
                    name: fname.clone(),
                    kind,
                    required,
                    default,
                });
            }
            let ty = EventType {
                name: name.clone(),
                fields,
                rules: Vec::new(),
                voids: decl.voids,
            };
            let mut rules = Vec::new();
            for r in &decl.rules {
                let a = ty.field(&r.field);
                let b = ty.field(&r.le);
                match (a, b) {
                    (Some(a), Some(b)) => rules.push((a, b)),
                    _ => {
                        return Err(err(format!(
                            "rule {} <= {} names a field the type does not declare",
                            r.field, r.le
                        )))
                    }
                }
            }
            if decl.voids && !decl.fields.is_empty() {
                return Err(err("a voiding type carries no data fields".into()));
            }
            let id = TypeId(schema.types.len() as u16);
            schema.by_name.insert(name.clone(), id);
            schema.types.push(EventType { rules, ..ty });
        }
        Ok(schema)
    }

    /// The type called `name`.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// The compiled type behind an id.
    pub fn event_type(&self, id: TypeId) -> &EventType {
        &self.types[usize::from(id.0)]
    }

    /// Every type, in id order.
    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    /// The stage ids of a milestone KPI.
    pub fn stages(&self, kpi: &str) -> Option<&[String]> {
        self.stages.get(kpi).map(Vec::as_slice)
    }

    /// Type names, sorted, for error messages.
    pub fn type_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.types.iter().map(|t| t.name.as_str()).collect();
        v.sort_unstable();
        v
    }
}

fn compile_kind(name: &str, f: &FieldDecl, names: &[&String]) -> Result<FieldKind, String> {
    let bound = |b: Option<f64>, dflt: i64, scale: u32| -> Result<i64, String> {
        match b {
            None => Ok(dflt),
            Some(x) => {
                let v = x * 10f64.powi(scale as i32);
                if (v - v.round()).abs() > 1e-6 {
                    Err(format!(
                        "field {name:?}: bound {x} is finer than the field's scale"
                    ))
                } else {
                    Ok(v.round() as i64)
                }
            }
        }
    };
    Ok(match f.kind {
        FieldKindDecl::Int => FieldKind::Int {
            min: bound(f.min, i64::MIN, 0)?,
            max: bound(f.max, i64::MAX, 0)?,
        },
        FieldKindDecl::Decimal => {
            let scale = f
                .scale
                .ok_or_else(|| format!("field {name:?}: a decimal needs a scale"))?;
            if scale > 6 {
                return Err(format!("field {name:?}: scale {scale} is over 6"));
            }
            FieldKind::Decimal {
                scale,
                min: bound(f.min, i64::MIN, scale)?,
                max: bound(f.max, i64::MAX, scale)?,
            }
        }
        FieldKindDecl::Enum => {
            if f.values.is_empty() {
                return Err(format!("field {name:?}: an enum needs values"));
            }
            FieldKind::Enum {
                values: f.values.clone(),
            }
        }
        FieldKindDecl::Id => FieldKind::Id,
        FieldKindDecl::Stage => {
            let of =
                f.of.as_deref()
                    .ok_or_else(|| format!("field {name:?}: a stage needs `of`"))?;
            let ix = names
                .iter()
                .position(|n| n.as_str() == of)
                .ok_or_else(|| format!("field {name:?}: `of` names no field {of:?}"))?;
            FieldKind::Stage { of: ix }
        }
    })
}

fn default_value(kind: &FieldKind, v: &serde_json::Value) -> Option<crate::Value> {
    match kind {
        FieldKind::Int { .. } => v.as_i64().map(crate::Value::Int),
        FieldKind::Enum { values } => {
            let s = v.as_str()?;
            values
                .iter()
                .position(|x| x == s)
                .map(|i| crate::Value::Enum(i as u16))
        }
        _ => None,
    }
}
