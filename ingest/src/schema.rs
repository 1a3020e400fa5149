//! Event-type declarations, as written in the plan file, and their compiled form.
//!
//! The plan file's `[event_types.*]` tables deserialize into [`EventTypeDecl`]; the
//! aggregator hands them (and the milestone stages) to [`Schema::new`], so this crate
//! validates events without knowing anything about KPIs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};

use serde::Deserialize;

use crate::timestamp::Timestamp;

/// One event type as declared in the plan file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeDecl {
    /// What the event means, for people reading the plan.
    #[serde(default)]
    pub description: String,
    /// Its name in Japanese, for the event reference a city hands to vendors.
    #[serde(default)]
    pub name_ja: String,
    /// What the event means, in Japanese.
    #[serde(default)]
    pub description_ja: String,
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
    /// Inclusive lower bound of an `int` or `decimal` per event (default −10^9).
    pub min: Option<Bound>,
    /// Inclusive upper bound of an `int` or `decimal` per event (default 10^9).
    pub max: Option<Bound>,
    /// Decimal places of a `decimal` (sums stay exact in fixed point).
    pub scale: Option<u32>,
    /// The value when the field is absent (an `int` or an `enum` value).
    pub default: Option<serde_json::Value>,
    /// Whether the field must be present (default: yes, unless it has a default).
    pub required: Option<bool>,
    /// For a `stage`: the field naming the milestone KPI whose stages apply.
    pub of: Option<String>,
    /// Its name in Japanese, for the event reference.
    #[serde(default)]
    pub name_ja: String,
    /// What it holds, for people (English).
    #[serde(default)]
    pub description: String,
    /// The Japanese name of each value of an `enum`, by value.
    #[serde(default)]
    pub values_ja: BTreeMap<String, String>,
}

/// A bound as written in the plan: an integer, a TOML float (read by its shortest
/// decimal form, so `0.01` is exactly one hundredth) or a decimal string (`"0.01"`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Bound {
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Int(v) => write!(f, "{v}"),
            Bound::Float(v) => write!(f, "{v}"),
            Bound::Text(v) => write!(f, "{v:?}"),
        }
    }
}

impl Bound {
    /// The bound in units of `scale` decimal places, exactly, or why it cannot be one.
    fn scaled(&self, scale: u32) -> Result<i64, String> {
        let text = match self {
            Bound::Int(v) => v.to_string(),
            Bound::Float(v) if v.is_finite() => format!("{v}"),
            Bound::Float(_) => return Err("is not a finite number".to_owned()),
            Bound::Text(t) => t.trim().to_owned(),
        };
        let syntax_ok = matches!(crate::json::parse(&text), Ok(crate::json::Json::Number(_)));
        if !syntax_ok {
            return Err("is not a number".to_owned());
        }
        match crate::json::Decimal::of(&text).scaled(scale) {
            Ok(v) => {
                i64::try_from(v).map_err(|_| "is beyond the 64-bit range of a field".to_owned())
            }
            Err(crate::json::ScaleError::TooPrecise) if scale == 0 => {
                Err("is not a whole number (the field is an int)".to_owned())
            }
            Err(crate::json::ScaleError::TooPrecise) => Err(format!(
                "is finer than the field's scale ({scale} decimal places)"
            )),
            Err(crate::json::ScaleError::TooLarge) => {
                Err("is beyond the 64-bit range of a field".to_owned())
            }
        }
    }
}

/// The bound of a numeric field whose plan declares none: a billion per event. No
/// count, sheet or hour of one event comes near it, and a billion events of it still
/// sum far inside the ledger's 128-bit range.
pub const DEFAULT_BOUND: i64 = 1_000_000_000;

/// Which instants an event may carry in `occurred_at` (docs/architecture.md, "Inputs have domains").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// The earliest accepted instant (inclusive): by default the start of the fiscal year
    /// five years before the plan's baseline year.
    pub earliest: Timestamp,
    /// How far past "now" an event may lie, in microseconds (clocks of line systems
    /// drift; a day by default).
    pub max_future_skew_micros: i64,
    /// "Now" when pinned (`--now`); the wall clock otherwise.
    pub now: Option<Timestamp>,
}

/// The default `max_future_skew`: one day.
pub const DEFAULT_MAX_FUTURE_SKEW_MICROS: i64 = 86_400 * 1_000_000;

impl Default for TimeWindow {
    fn default() -> Self {
        Self {
            earliest: Timestamp::from_micros(i64::MIN),
            max_future_skew_micros: DEFAULT_MAX_FUTURE_SKEW_MICROS,
            now: None,
        }
    }
}

/// The latest reading of the wall clock any window took (µs since the epoch; `i64::MIN`
/// before the first). See [`TimeWindow::not_too_late`].
static CLOCK_SEEN: AtomicI64 = AtomicI64::new(i64::MIN);

impl TimeWindow {
    /// Whether `at` lies no later than now plus the skew; `Err(now)` when it does not.
    ///
    /// Unpinned, "now" is the latest reading of the wall clock this process took: an
    /// instant within the skew of that reading is taken without reading the clock again
    /// (most events happened before now, and a reading per event was a sixtieth of the
    /// decode). An instant past it reads the clock, so the answer is the clock's, except
    /// after the system clock was set back: until it catches up with its latest reading,
    /// that reading stands for now.
    pub fn not_too_late(&self, at: Timestamp) -> Result<(), Timestamp> {
        let check = |now: Timestamp| {
            if at > self.latest(now) {
                Err(now)
            } else {
                Ok(())
            }
        };
        if let Some(now) = self.now {
            return check(now);
        }
        let seen = CLOCK_SEEN.load(Ordering::Relaxed);
        if seen != i64::MIN && check(Timestamp::from_micros(seen)).is_ok() {
            return Ok(());
        }
        let now = Timestamp::wall_clock();
        CLOCK_SEEN.fetch_max(now.micros(), Ordering::Relaxed);
        check(now)
    }

    /// The latest accepted instant at `now` (inclusive).
    pub fn latest(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_micros(now.micros().saturating_add(self.max_future_skew_micros))
    }
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
    /// What the plan says of it, for the generated contract.
    pub doc: FieldDoc,
}

/// What the plan says of a field for people: the vendor contract is generated from it.
#[derive(Clone, Debug, Default)]
pub struct FieldDoc {
    /// Its name in Japanese (empty when the plan gives none).
    pub name_ja: String,
    /// What it holds (English; empty when the plan gives none).
    pub description: String,
    /// The default as the plan writes it (JSON), when it has one.
    pub default: Option<serde_json::Value>,
    /// The Japanese name of each enum value, in the order of the values (empty: none).
    pub values_ja: Vec<String>,
}

/// What the plan says of an event type for people.
#[derive(Clone, Debug, Default)]
pub struct TypeDoc {
    /// What it means (English).
    pub description: String,
    /// Its name in Japanese.
    pub name_ja: String,
    /// What it means in Japanese.
    pub description_ja: String,
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
    /// What the plan says of it, for the generated contract.
    pub doc: TypeDoc,
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
    /// Which `occurred_at` an event may carry (at the edge; the event log is read without it).
    window: TimeWindow,
    types: Vec<EventType>,
    by_name: HashMap<String, TypeId, foldhash::fast::RandomState>,
    /// Milestone KPI id → its stage ids, in order.
    stages: HashMap<String, Vec<String>>,
    /// Per type, the state of the event fingerprint's hash after the type's name (the
    /// same for every event of the type, so it is hashed once, here).
    fingerprint_seeds: Vec<u64>,
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
                let doc = field_doc(fname, f, &kind).map_err(err)?;
                fields.push(Field {
                    name: fname.clone(),
                    kind,
                    required,
                    default,
                    doc,
                });
            }
            let ty = EventType {
                name: name.clone(),
                fields,
                rules: Vec::new(),
                voids: decl.voids,
                doc: TypeDoc {
                    description: decl.description.clone(),
                    name_ja: decl.name_ja.clone(),
                    description_ja: decl.description_ja.clone(),
                },
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
            schema
                .fingerprint_seeds
                .push(crate::event::fingerprint_seed(name));
            schema.types.push(EventType { rules, ..ty });
        }
        Ok(schema)
    }

    /// Which `occurred_at` an event may carry.
    pub fn window(&self) -> &TimeWindow {
        &self.window
    }

    /// Sets which `occurred_at` an event may carry (the plan sets the earliest; the
    /// config and `--now` the rest).
    pub fn set_window(&mut self, window: TimeWindow) {
        self.window = window;
    }

    /// The type called `name`.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// The compiled type behind an id.
    pub fn event_type(&self, id: TypeId) -> &EventType {
        &self.types[usize::from(id.0)]
    }

    /// Where [`crate::Event::fingerprint`] starts for an event of type `id`.
    pub(crate) fn fingerprint_seed(&self, id: TypeId) -> u64 {
        self.fingerprint_seeds[usize::from(id.0)]
    }

    /// Every type, in id order.
    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    /// The stage ids of a milestone KPI.
    pub fn stages(&self, kpi: &str) -> Option<&[String]> {
        self.stages.get(kpi).map(Vec::as_slice)
    }

    /// Every milestone KPI with its stage ids, sorted by KPI id.
    pub fn milestones(&self) -> Vec<(&str, &[String])> {
        let mut v: Vec<(&str, &[String])> = self
            .stages
            .iter()
            .map(|(k, s)| (k.as_str(), s.as_slice()))
            .collect();
        v.sort_unstable();
        v
    }

    /// Type names, sorted, for error messages.
    pub fn type_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.types.iter().map(|t| t.name.as_str()).collect();
        v.sort_unstable();
        v
    }
}

fn compile_kind(name: &str, f: &FieldDecl, names: &[&String]) -> Result<FieldKind, String> {
    let bound = |b: &Option<Bound>, dflt: i64, scale: u32| -> Result<i64, String> {
        match b {
            None => Ok(dflt.saturating_mul(10i64.pow(scale))),
            Some(x) => x
                .scaled(scale)
                .map_err(|e| format!("field {name:?}: bound {x} {e}")),
        }
    };
    let bounds = |scale: u32| -> Result<(i64, i64), String> {
        let min = bound(&f.min, -DEFAULT_BOUND, scale)?;
        let max = bound(&f.max, DEFAULT_BOUND, scale)?;
        if min > max {
            return Err(format!("field {name:?}: min is greater than max"));
        }
        Ok((min, max))
    };
    Ok(match f.kind {
        FieldKindDecl::Int => {
            let (min, max) = bounds(0)?;
            FieldKind::Int { min, max }
        }
        FieldKindDecl::Decimal => {
            let scale = f
                .scale
                .ok_or_else(|| format!("field {name:?}: a decimal needs a scale"))?;
            if scale > 6 {
                return Err(format!("field {name:?}: scale {scale} is over 6"));
            }
            let (min, max) = bounds(scale)?;
            FieldKind::Decimal { scale, min, max }
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

/// The documentation of a field; Japanese names are only given to values it declares.
fn field_doc(name: &str, f: &FieldDecl, kind: &FieldKind) -> Result<FieldDoc, String> {
    let values_ja = match kind {
        FieldKind::Enum { values } => {
            if let Some(stray) = f.values_ja.keys().find(|k| !values.contains(k)) {
                return Err(format!(
                    "field {name:?}: values_ja names {stray:?}, which is not one of its values"
                ));
            }
            let names: Vec<String> = values
                .iter()
                .map(|v| f.values_ja.get(v).cloned().unwrap_or_default())
                .collect();
            if names.iter().all(String::is_empty) {
                Vec::new()
            } else {
                names
            }
        }
        _ if !f.values_ja.is_empty() => {
            return Err(format!("field {name:?}: only an enum takes values_ja"))
        }
        _ => Vec::new(),
    };
    Ok(FieldDoc {
        name_ja: f.name_ja.clone(),
        description: f.description.clone(),
        default: f.default.clone(),
        values_ja,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(fields: &str) -> Result<Schema, SchemaError> {
        let decls: BTreeMap<String, EventTypeDecl> =
            serde_json::from_str(&format!(r#"{{"t": {{"fields": {fields}}}}}"#))
                .unwrap_or_else(|e| panic!("{e}"));
        Schema::new(&decls, HashMap::new())
    }

    #[test]
    fn an_unpinned_window_takes_the_clock_for_instants_past_its_latest_reading() {
        let skew = 60 * 1_000_000;
        let w = TimeWindow {
            max_future_skew_micros: skew,
            ..TimeWindow::default()
        };
        let before = Timestamp::wall_clock();
        let at = |from: Timestamp, micros: i64| Timestamp::from_micros(from.micros() + micros);
        assert_eq!(w.not_too_late(at(before, -3_600_000_000)), Ok(()));
        assert_eq!(w.not_too_late(at(before, skew - 1_000_000)), Ok(()));
        // Past the skew of any reading taken so far: refused, with a fresh "now".
        let Err(now) = w.not_too_late(at(before, skew + 3_600_000_000)) else {
            panic!("an instant an hour past the skew was taken");
        };
        assert!(now >= before);
        // Pinned, the pinned instant is now, whatever the clock says.
        let pinned = TimeWindow {
            now: Some(at(before, -86_400_000_000)),
            ..w
        };
        assert_eq!(
            pinned.not_too_late(at(before, 0)),
            Err(at(before, -86_400_000_000))
        );
    }

    #[test]
    fn japanese_value_names_line_up_with_the_values() {
        let schema = compile(
            r#"{"channel": {"kind": "enum", "values": ["konbini", "counter"], "name_ja": "交付方法", "values_ja": {"counter": "窓口"}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = &schema.types()[0].fields[0];
        assert_eq!(f.doc.name_ja, "交付方法");
        assert_eq!(f.doc.values_ja, ["", "窓口"]);
    }

    #[test]
    fn a_japanese_name_for_a_value_the_field_does_not_have_is_an_error() {
        let err = compile(
            r#"{"channel": {"kind": "enum", "values": ["konbini"], "values_ja": {"conbini": "コンビニ"}}}"#,
        )
        .err()
        .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(r#"field "channel": values_ja names "conbini", which is not one of its values"#)
        );
        let err = compile(r#"{"n": {"kind": "int", "values_ja": {"1": "一"}}}"#).err();
        assert!(err.is_some_and(|e| e.message.contains("only an enum takes values_ja")));
    }
}
