//! The event envelope, decoded and validated into a domain [`Event`] at the edge.
//!
//! Decoding has a fast path (a borrowed, typed serde parse plus a byte scan for the
//! guard) and a slow path (a `serde_json::Value` walk) that runs only when the fast
//! path fails or the byte scan cannot rule out a personal number. The slow path is the
//! authority: it produces the precise rejection, in the order DESIGN.md fixes
//! (framing → guard → envelope → type → data fields → cross-field rules).

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::guard;
use crate::reject::{Reason, Rejection};
use crate::schema::{EventType, FieldKind, Schema, TypeId};
use crate::timestamp::Timestamp;

/// Longest accepted `event_id`, `source` or `id` field, in characters.
const MAX_ID_CHARS: usize = 128;

/// A validated `data` value.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Value {
    /// An optional field that was not given and has no default.
    Absent,
    /// An integer.
    Int(i64),
    /// A fixed-point decimal, in units of the field's scale.
    Fixed(i64),
    /// An enum value, as its index in the field's declared values.
    Enum(u16),
    /// An identifier (or a milestone stage id).
    Id(Box<str>),
}

impl Value {
    /// The number an `int` or `decimal` holds (in units of its scale).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) | Value::Fixed(v) => Some(*v),
            _ => None,
        }
    }
}

/// A validated event: every field is known to be well-formed for its type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    /// Unique per event within its source, chosen by the line system.
    pub id: String,
    /// The line system that sent it.
    pub source: String,
    /// Its declared type.
    pub type_id: TypeId,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// One value per declared field of its type, in the type's field order.
    pub data: Vec<Value>,
    /// The `event_id` it retracts (`event.voided` only).
    pub voids: Option<String>,
}

/// Appends `s` as a JSON string. Writing into a Vec cannot fail, and serde_json escapes
/// without an intermediate allocation: this runs once per stored event.
fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The canonical JSON form of an event from its parts, `data` being its canonical `data`
/// object ([`Event::canonical_data_json`]): how a store that keeps the envelope in columns
/// rebuilds [`Event::canonical_json`].
pub fn canonical_body(
    id: &str,
    source: &str,
    type_name: &str,
    occurred_at: Timestamp,
    data: &str,
    voids: Option<&str>,
) -> String {
    write_canonical(
        id,
        source,
        type_name,
        occurred_at,
        |out| out.extend_from_slice(data.as_bytes()),
        voids,
    )
}

/// The canonical form's envelope around the `data` object that `data` writes.
fn write_canonical(
    id: &str,
    source: &str,
    type_name: &str,
    occurred_at: Timestamp,
    data: impl FnOnce(&mut Vec<u8>),
    voids: Option<&str>,
) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(224);
    out.extend_from_slice(b"{\"event_id\":");
    json_str(&mut out, id);
    out.extend_from_slice(b",\"source\":");
    json_str(&mut out, source);
    out.extend_from_slice(b",\"type\":");
    json_str(&mut out, type_name);
    let _ = write!(out, ",\"occurred_at\":\"{occurred_at}\",\"data\":");
    data(&mut out);
    if let Some(v) = voids {
        out.extend_from_slice(b",\"voids\":");
        json_str(&mut out, v);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

impl Event {
    /// The canonical JSON form: UTC timestamp, defaults filled in, fields sorted. Two
    /// deliveries with the same canonical form are the same event.
    pub fn canonical_json(&self, schema: &Schema) -> String {
        write_canonical(
            &self.id,
            &self.source,
            &schema.event_type(self.type_id).name,
            self.occurred_at,
            |out| self.write_data(schema, out),
            self.voids.as_deref(),
        )
    }

    /// The `data` object of [`Event::canonical_json`] alone (what a store keeps beside
    /// the envelope's own columns).
    pub fn canonical_data_json(&self, schema: &Schema) -> String {
        let mut out: Vec<u8> = Vec::with_capacity(96);
        self.write_data(schema, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the canonical `data` object: the type's fields in order, defaults filled in.
    fn write_data(&self, schema: &Schema, out: &mut Vec<u8>) {
        let ty = schema.event_type(self.type_id);
        out.push(b'{');
        let mut first = true;
        for (field, value) in ty.fields.iter().zip(&self.data) {
            if matches!(value, Value::Absent) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            json_str(out, &field.name);
            out.push(b':');
            match (value, &field.kind) {
                (Value::Absent, _) => {}
                (Value::Int(v), _) => {
                    let _ = write!(out, "{v}");
                }
                (Value::Fixed(v), FieldKind::Decimal { scale, .. }) => {
                    out.extend_from_slice(fixed_to_string(*v, *scale).as_bytes());
                }
                (Value::Fixed(v), _) => {
                    let _ = write!(out, "{v}");
                }
                (Value::Enum(i), FieldKind::Enum { values }) => {
                    json_str(out, values.get(usize::from(*i)).map_or("", String::as_str));
                }
                (Value::Enum(i), _) => {
                    let _ = write!(out, "{i}");
                }
                (Value::Id(s), _) => json_str(out, s),
            }
        }
        out.push(b'}');
    }

    /// A stable 64-bit fingerprint of the event's content (FNV-1a over its type,
    /// instant, values and void target), stored beside the event id to tell a
    /// duplicate from a conflicting one. Two deliveries with the same canonical form
    /// have the same fingerprint; it is computed without building that form.
    pub fn fingerprint(&self, schema: &Schema) -> i64 {
        struct Fnv(u64);
        impl Fnv {
            fn bytes(&mut self, b: &[u8]) {
                for x in b {
                    self.0 ^= u64::from(*x);
                    self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            fn tag(&mut self, t: u8, b: &[u8]) {
                self.bytes(&[t]);
                self.bytes(&(b.len() as u64).to_le_bytes());
                self.bytes(b);
            }
        }
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.tag(b't', schema.event_type(self.type_id).name.as_bytes());
        h.tag(b'o', &self.occurred_at.micros().to_le_bytes());
        for v in &self.data {
            match v {
                Value::Absent => h.tag(b'_', &[]),
                Value::Int(i) => h.tag(b'i', &i.to_le_bytes()),
                Value::Fixed(i) => h.tag(b'f', &i.to_le_bytes()),
                Value::Enum(i) => h.tag(b'e', &i.to_le_bytes()),
                Value::Id(s) => h.tag(b's', s.as_bytes()),
            }
        }
        if let Some(v) = &self.voids {
            h.tag(b'v', v.as_bytes());
        }
        h.0 as i64
    }
}

/// A fixed-point number as a decimal string (`1250`, scale 2 → `12.5`).
pub fn fixed_to_string(v: i64, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let p = 10i64.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let (int, frac) = (v.unsigned_abs() / p as u64, v.unsigned_abs() % p as u64);
    let frac = format!("{frac:0width$}", width = scale as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// A scalar as it came in `data`, before it is checked against the field's kind.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An object or array: never a valid field value.
    Nested,
}

impl Scalar<'_> {
    fn kind_name(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) => "an integer",
            Scalar::Float(_) => "a number with a fraction",
            Scalar::Str(_) => "a string",
            Scalar::Nested => "an object or array",
        }
    }
}

/// The envelope with `data` flattened to scalars: the common ground of both paths.
#[derive(Debug, Default)]
struct Envelope<'a> {
    event_id: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    occurred_at: Option<Cow<'a, str>>,
    data: Vec<(Cow<'a, str>, Scalar<'a>)>,
    voids: Option<Cow<'a, str>>,
}

/// The fast path's typed view of the envelope.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastEnvelope<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(borrow, default)]
    data: DataMap<'a>,
    #[serde(borrow, default)]
    voids: Option<Cow<'a, str>>,
}

#[derive(Default)]
struct DataMap<'a>(Vec<(Cow<'a, str>, Scalar<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for DataMap<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = DataMap<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(4);
                while let Some(k) = m.next_key::<CowStr<'a>>()? {
                    out.push((k.0, m.next_value::<Scalar<'a>>()?));
                }
                Ok(DataMap(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cow::<'a, str>::deserialize(d).map(CowStr)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Decodes and validates one event from its raw JSON bytes.
pub fn decode(schema: &Schema, raw: &[u8]) -> Result<Event, Rejection> {
    if !guard_may_hit(raw) {
        if let Ok(fast) = serde_json::from_slice::<FastEnvelope<'_>>(raw) {
            let env = Envelope {
                event_id: Some(fast.event_id),
                source: Some(fast.source),
                kind: Some(fast.kind),
                occurred_at: Some(fast.occurred_at),
                data: fast.data.0,
                voids: fast.voids,
            };
            return validate(schema, env);
        }
    }
    decode_slow(schema, raw)
}

/// Whether the raw bytes might hold a personal number (a conservative byte scan: any
/// full-width digit or `\u` escape sends the event to the exact, slower check).
fn guard_may_hit(raw: &[u8]) -> bool {
    let n = raw.len();
    let is_d = |i: usize| i < n && raw[i].is_ascii_digit();
    let run = |i: usize| {
        let mut j = i;
        while is_d(j) {
            j += 1;
        }
        j - i
    };
    let mut i = 0;
    while i < n {
        let b = raw[i];
        if b == 0xEF || (b == b'\\' && raw.get(i + 1) == Some(&b'u')) {
            return true;
        }
        if b.is_ascii_digit() && (i == 0 || !raw[i - 1].is_ascii_digit()) {
            let len = run(i);
            if len == 12 && guard::contains(&String::from_utf8_lossy(&raw[i..i + 12])) {
                return true;
            }
            if len == 4 {
                let sep = |k: usize| k < n && (raw[k] == b'-' || raw[k] == b' ');
                let (a, b2) = (i + 5, i + 10);
                if sep(i + 4) && run(a) == 4 && sep(a + 4) && run(b2) == 4 {
                    return true;
                }
            }
            i += len;
            continue;
        }
        i += 1;
    }
    false
}

fn decode_slow(schema: &Schema, raw: &[u8]) -> Result<Event, Rejection> {
    let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| {
        Rejection::whole(
            Reason::NotJson,
            format!("not JSON: {}", describe_json_error(&e)),
        )
    })?;
    if let Some(path) = guard::find_in_value(&value) {
        return Err(Rejection::at(
            Reason::PersonalNumber,
            &path,
            "holds what looks like a personal number (マイナンバー: 12 digits with a valid check \
             digit); the value is not shown or stored",
        ));
    }
    let serde_json::Value::Object(map) = value else {
        return Err(Rejection::whole(
            Reason::WrongType,
            "an event is a JSON object",
        ));
    };
    let mut env = Envelope::default();
    let id_hint = map
        .get("event_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let fail = |r: Rejection| r.with_event_id(id_hint.as_deref());
    for (key, v) in &map {
        let slot =
            match key.as_str() {
                "event_id" => &mut env.event_id,
                "source" => &mut env.source,
                "type" => &mut env.kind,
                "occurred_at" => &mut env.occurred_at,
                "voids" => &mut env.voids,
                "data" => {
                    let serde_json::Value::Object(data) = v else {
                        return Err(fail(Rejection::at(
                            Reason::WrongType,
                            "data",
                            format!("expected an object, got {}", json_kind(v)),
                        )));
                    };
                    env.data = data
                        .iter()
                        .map(|(k, v)| (Cow::Owned(k.clone()), scalar_of(v)))
                        .collect();
                    continue;
                }
                other => return Err(fail(Rejection::at(
                    Reason::UnknownField,
                    other,
                    "unknown envelope field; expected event_id, source, type, occurred_at, data, \
                     voids",
                ))),
            };
        match v {
            serde_json::Value::String(s) => *slot = Some(Cow::Owned(s.clone())),
            other => {
                return Err(fail(Rejection::at(
                    Reason::WrongType,
                    key,
                    format!("expected a string, got {}", json_kind(other)),
                )))
            }
        }
    }
    validate(schema, env)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json's messages name positions, never quote input: safe to show.
    e.to_string()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    scalar_of(v).kind_name()
}

fn scalar_of(v: &serde_json::Value) -> Scalar<'static> {
    match v {
        serde_json::Value::Null => Scalar::Null,
        serde_json::Value::Bool(b) => Scalar::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Scalar::Str(Cow::Owned(s.clone())),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => Scalar::Nested,
    }
}

/// Whether an id is at most [`MAX_ID_CHARS`] characters, none of them control
/// characters. ASCII ids (nearly all) are checked on bytes.
fn printable_id(v: &str) -> bool {
    if v.is_ascii() {
        v.len() <= MAX_ID_CHARS && !v.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        v.chars().count() <= MAX_ID_CHARS && !v.chars().any(char::is_control)
    }
}

fn check_id(field: &str, v: Option<Cow<'_, str>>) -> Result<String, Rejection> {
    let v = v.ok_or_else(|| Rejection::at(Reason::MissingField, field, "required"))?;
    if v.trim().is_empty() {
        return Err(Rejection::at(Reason::EmptyId, field, "must not be empty"));
    }
    if !printable_id(&v) {
        return Err(Rejection::at(
            Reason::OutOfBounds,
            field,
            format!("must be at most {MAX_ID_CHARS} printable characters"),
        ));
    }
    Ok(v.into_owned())
}

fn validate(schema: &Schema, env: Envelope<'_>) -> Result<Event, Rejection> {
    let id_hint = env.event_id.as_deref().map(str::to_owned);
    validate_inner(schema, env).map_err(|r| r.with_event_id(id_hint.as_deref()))
}

fn validate_inner(schema: &Schema, env: Envelope<'_>) -> Result<Event, Rejection> {
    let id = check_id("event_id", env.event_id)?;
    let source = check_id("source", env.source)?;
    let kind = env
        .kind
        .ok_or_else(|| Rejection::at(Reason::MissingField, "type", "required"))?;
    let type_id = schema.type_id(&kind).ok_or_else(|| {
        Rejection::at(
            Reason::UnknownType,
            "type",
            format!(
                "unknown event type {kind:?}; the plan declares: {}",
                schema.type_names().join(", ")
            ),
        )
    })?;
    let ty = schema.event_type(type_id);
    let occurred_at = env
        .occurred_at
        .ok_or_else(|| Rejection::at(Reason::MissingField, "occurred_at", "required"))?;
    let occurred_at = Timestamp::parse_rfc3339(&occurred_at)
        .map_err(|e| Rejection::at(Reason::BadTimestamp, "occurred_at", e.to_string()))?;
    let voids = match (ty.voids, env.voids) {
        (true, None) => {
            return Err(Rejection::at(
                Reason::MissingField,
                "voids",
                format!("required for {}: the event_id to retract", ty.name),
            ))
        }
        (true, Some(v)) => Some(check_id("voids", Some(v))?),
        (false, Some(_)) => {
            return Err(Rejection::at(
                Reason::UnknownField,
                "voids",
                format!("only a voiding type may carry voids, not {}", ty.name),
            ))
        }
        (false, None) => None,
    };
    let data = validate_data(schema, ty, env.data)?;
    Ok(Event {
        id,
        source,
        type_id,
        occurred_at,
        data,
        voids,
    })
}

fn validate_data(
    schema: &Schema,
    ty: &EventType,
    data: Vec<(Cow<'_, str>, Scalar<'_>)>,
) -> Result<Vec<Value>, Rejection> {
    // One allocation per event: values start absent, a bit per field says "given".
    let mut values = vec![Value::Absent; ty.fields.len()];
    let mut given: u128 = 0;
    for (key, scalar) in data {
        let path = || format!("data.{key}");
        let Some(ix) = ty.field(&key) else {
            let expected: Vec<&str> = ty.fields.iter().map(|f| f.name.as_str()).collect();
            let hint = if expected.is_empty() {
                format!("{} carries no data fields", ty.name)
            } else {
                format!("{} has fields {}", ty.name, expected.join(", "))
            };
            return Err(Rejection::at(
                Reason::UnknownField,
                &path(),
                format!("unknown field; {hint}"),
            ));
        };
        let bit = 1u128 << (ix % 128);
        if given & bit != 0 {
            return Err(Rejection::at(
                Reason::WrongType,
                &path(),
                "given more than once",
            ));
        }
        given |= bit;
        values[ix] =
            convert(&ty.fields[ix].kind, &scalar).map_err(|(r, m)| Rejection::at(r, &path(), m))?;
    }
    for (ix, field) in ty.fields.iter().enumerate() {
        if given & (1u128 << (ix % 128)) != 0 {
            continue;
        }
        match (&field.default, field.required) {
            (Some(d), _) => values[ix] = d.clone(),
            (None, true) => {
                return Err(Rejection::at(
                    Reason::MissingField,
                    &format!("data.{}", field.name),
                    format!("required by {}", ty.name),
                ))
            }
            (None, false) => {}
        }
    }
    for (ix, field) in ty.fields.iter().enumerate() {
        if let (FieldKind::Stage { of }, Value::Id(stage)) = (&field.kind, &values[ix]) {
            let kpi = match &values[*of] {
                Value::Id(k) => k.to_string(),
                Value::Enum(i) => match &ty.fields[*of].kind {
                    FieldKind::Enum { values } => {
                        values.get(usize::from(*i)).cloned().unwrap_or_default()
                    }
                    _ => String::new(),
                },
                _ => String::new(),
            };
            let path = format!("data.{}", field.name);
            let Some(stages) = schema.stages(&kpi) else {
                return Err(Rejection::at(
                    Reason::UnknownValue,
                    &format!("data.{}", ty.fields[*of].name),
                    format!("{kpi:?} is not a milestone KPI of the plan"),
                ));
            };
            if !stages.iter().any(|s| s.as_str() == &**stage) {
                return Err(Rejection::at(
                    Reason::UnknownValue,
                    &path,
                    format!(
                        "unknown value {stage:?}; {kpi} has stages {}",
                        stages.join(", ")
                    ),
                ));
            }
        }
    }
    for &(a, b) in &ty.rules {
        if let (Some(x), Some(y)) = (values[a].as_i64(), values[b].as_i64()) {
            if x > y {
                return Err(Rejection::at(
                    Reason::CrossField,
                    &format!("data.{}", ty.fields[a].name),
                    format!("{x} is greater than data.{} ({y})", ty.fields[b].name),
                ));
            }
        }
    }
    Ok(values)
}

fn convert(kind: &FieldKind, s: &Scalar<'_>) -> Result<Value, (Reason, String)> {
    let wrong = |expected: &str| {
        (
            Reason::WrongType,
            format!("expected {expected}, got {}", s.kind_name()),
        )
    };
    let bounds = |v: i64, min: i64, max: i64, shown: &dyn Fn(i64) -> String| {
        if v < min {
            Err((
                Reason::OutOfBounds,
                format!("{} is below the minimum {}", shown(v), shown(min)),
            ))
        } else if v > max {
            Err((
                Reason::OutOfBounds,
                format!("{} is above the maximum {}", shown(v), shown(max)),
            ))
        } else {
            Ok(())
        }
    };
    match kind {
        FieldKind::Int { min, max } => {
            let Scalar::Int(v) = *s else {
                return Err(wrong("an integer"));
            };
            bounds(v, *min, *max, &|x| x.to_string())?;
            Ok(Value::Int(v))
        }
        FieldKind::Decimal { scale, min, max } => {
            let p = 10i64.pow(*scale);
            let v = match *s {
                Scalar::Int(v) => v.checked_mul(p).ok_or_else(|| wrong("a smaller number"))?,
                Scalar::Float(f) => {
                    let x = f * p as f64;
                    if !x.is_finite() || (x - x.round()).abs() > 1e-6 * x.abs().max(1.0) {
                        return Err((
                            Reason::WrongType,
                            format!("expected a number with at most {scale} decimal places"),
                        ));
                    }
                    x.round() as i64
                }
                _ => return Err(wrong("a number")),
            };
            bounds(v, *min, *max, &|x| fixed_to_string(x, *scale))?;
            Ok(Value::Fixed(v))
        }
        FieldKind::Enum { values } => {
            let Scalar::Str(v) = s else {
                return Err(wrong("a string"));
            };
            match values.iter().position(|x| x == v) {
                Some(i) => Ok(Value::Enum(i as u16)),
                None => Err((
                    Reason::UnknownValue,
                    format!("unknown value {v:?}; expected one of {}", values.join(", ")),
                )),
            }
        }
        FieldKind::Id | FieldKind::Stage { .. } => {
            let Scalar::Str(v) = s else {
                return Err(wrong("a string"));
            };
            if v.trim().is_empty() {
                return Err((Reason::EmptyId, "must not be empty".to_owned()));
            }
            if !printable_id(v) {
                return Err((
                    Reason::OutOfBounds,
                    format!("must be at most {MAX_ID_CHARS} printable characters"),
                ));
            }
            Ok(Value::Id(v.as_ref().into()))
        }
    }
}
