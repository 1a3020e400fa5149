//! An event's `data`: each field converted as its type declares (within its bounds at
//! the edge), defaults filled in, milestone stages and cross-field rules checked.

use super::{fixed_to_string, printable_id, quoted, Domain, Problems, Stop, Value, MAX_ID_CHARS};
use crate::guard;
use crate::json::{self, Json, ScaleError};
use crate::reject::{Reason, Rejection};
use crate::schema::{EventType, FieldKind, Schema};

/// The data fields of an event of type `ty`: each converted, defaults filled in, stages
/// and cross-field rules checked, every problem recorded in `p` (the values are then
/// meaningless).
pub(super) fn validate_data<'a>(
    schema: &Schema,
    ty: &EventType,
    data: impl Iterator<Item = (json::Str<'a>, Given<'a>)>,
    domain: Domain,
    p: &mut Problems,
) -> Result<Vec<Value>, Stop> {
    // One allocation per event: values start absent, a bit per field says "given" (keys
    // are unique: a key given twice was refused before), another "given but refused".
    // (`resize_with`, not `vec![Value::Absent; n]`: that clones a `Value` per field.)
    let mut values = Vec::with_capacity(ty.fields.len());
    values.resize_with(ty.fields.len(), || Value::Absent);
    let (mut given, mut refused): (u128, u128) = (0, 0);
    for (position, (key, value)) in data.enumerate() {
        let key = key.decoded();
        let Some(ix) = ty.field(&key) else {
            p.add(unknown_field(ty, &key, position))?;
            continue;
        };
        given |= 1u128 << (ix % 128);
        match convert(&ty.fields[ix].kind, value, domain) {
            Ok(v) => values[ix] = v,
            Err((r, m)) => {
                refused |= 1u128 << (ix % 128);
                p.add(Rejection::at(r, &format!("data.{key}"), m))?;
            }
        }
    }
    fill_defaults(ty, &mut values, given, p)?;
    check_stages(schema, ty, &values, refused, p)?;
    check_rules(ty, &values, p)?;
    Ok(values)
}

/// A data key that `ty` does not declare (`position`: where it is, for a key that cannot
/// be shown).
fn unknown_field(ty: &EventType, key: &str, position: usize) -> Rejection {
    let expected: Vec<&str> = ty.fields.iter().map(|f| f.name.as_str()).collect();
    let hint = if expected.is_empty() {
        format!("{} carries no data fields", ty.name)
    } else {
        format!("{} has fields {}", ty.name, expected.join(", "))
    };
    Rejection::at(
        Reason::UnknownField,
        &format!("data.{}", guard::key_label(key, position)),
        format!("unknown field; {hint}"),
    )
}

/// Fields not `given` take their default; a required one without a default is missing.
fn fill_defaults(
    ty: &EventType,
    values: &mut [Value],
    given: u128,
    p: &mut Problems,
) -> Result<(), Stop> {
    for (ix, field) in ty.fields.iter().enumerate() {
        if given & (1u128 << (ix % 128)) != 0 {
            continue;
        }
        match (&field.default, field.required) {
            (Some(d), _) => values[ix] = d.clone(),
            (None, true) => p.add(Rejection::at(
                Reason::MissingField,
                &format!("data.{}", field.name),
                format!("required by {}", ty.name),
            ))?,
            (None, false) => {}
        }
    }
    Ok(())
}

/// Each stage field names a stage of the milestone KPI its `of` field names (unless that
/// field was `refused`: its problem is recorded already).
fn check_stages(
    schema: &Schema,
    ty: &EventType,
    values: &[Value],
    refused: u128,
    p: &mut Problems,
) -> Result<(), Stop> {
    for (ix, field) in ty.fields.iter().enumerate() {
        if let (FieldKind::Stage { of }, Value::Id(stage)) = (&field.kind, &values[ix]) {
            if refused & (1u128 << (of % 128)) != 0 {
                continue;
            }
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
                p.add(Rejection::at(
                    Reason::UnknownValue,
                    &format!("data.{}", ty.fields[*of].name),
                    format!("{} is not a milestone KPI of the plan", quoted(&kpi)),
                ))?;
                continue;
            };
            if !stages.iter().any(|s| s.as_str() == &**stage) {
                p.add(Rejection::at(
                    Reason::UnknownValue,
                    &path,
                    format!(
                        "unknown value {}; {kpi} has stages {}",
                        quoted(stage),
                        stages.join(", ")
                    ),
                ))?;
            }
        }
    }
    Ok(())
}

/// The type's cross-field rules: each `(a, b)` says data.a ≤ data.b when both are given.
fn check_rules(ty: &EventType, values: &[Value], p: &mut Problems) -> Result<(), Stop> {
    for &(a, b) in &ty.rules {
        if let (Some(x), Some(y)) = (values[a].as_i64(), values[b].as_i64()) {
            if x > y {
                p.add(Rejection::at(
                    Reason::CrossField,
                    &format!("data.{}", ty.fields[a].name),
                    format!("{x} is greater than data.{} ({y})", ty.fields[b].name),
                ))?;
            }
        }
    }
    Ok(())
}

/// A number for a message: its text when short, else how long it is.
fn shown_number(text: &str) -> String {
    if text.len() <= 24 {
        text.to_owned()
    } else {
        format!("a number of {} characters", text.len())
    }
}

/// Why a value is refused, and the message (the caller adds the field's path).
type Refusal = (Reason, String);

/// A data field's value as [`convert`] reads it: a string, a number, or what else it is.
#[derive(Clone, Copy)]
pub(super) enum Given<'a> {
    String(json::Str<'a>),
    Number(json::Number<'a>),
    /// Another kind of value: its name for a message ("an object", "null", …).
    Other(&'static str),
}

impl<'a> Given<'a> {
    /// A value of the document's tree.
    pub(super) fn of(v: &Json<'a>) -> Self {
        match v {
            Json::String(s) => Given::String(*s),
            Json::Number(n) => Given::Number(*n),
            other => Given::Other(other.kind_name()),
        }
    }

    /// A value [`json::parse_event`] read.
    pub(super) fn of_leaf(v: json::Leaf<'a>) -> Self {
        match v {
            json::Leaf::String(s) => Given::String(s),
            json::Leaf::Number(n) => Given::Number(n),
            json::Leaf::Object => Given::Other("an object"),
        }
    }

    /// What kind of value it is, for messages ([`Json::kind_name`]).
    fn kind_name(&self) -> &'static str {
        match self {
            Given::String(_) => "a string",
            Given::Number(n) => Json::Number(*n).kind_name(),
            Given::Other(kind) => kind,
        }
    }
}

/// A JSON value of a data field as the field's kind says, within its bounds (at the edge).
fn convert(kind: &FieldKind, v: Given<'_>, domain: Domain) -> Result<Value, Refusal> {
    match kind {
        FieldKind::Int { min, max } => {
            let Given::Number(n) = v else {
                return Err(wrong("an integer", v));
            };
            convert_int(&n, bounded(domain, *min, *max)).map(Value::Int)
        }
        FieldKind::Decimal { scale, min, max } => {
            let Given::Number(n) = v else {
                return Err(wrong("a number", v));
            };
            convert_decimal(&n, *scale, bounded(domain, *min, *max)).map(Value::Fixed)
        }
        FieldKind::Enum { values } => {
            let Given::String(s) = v else {
                return Err(wrong("a string", v));
            };
            convert_enum(&s.decoded(), values)
        }
        FieldKind::Id | FieldKind::Stage { .. } => {
            let Given::String(s) = v else {
                return Err(wrong("a string", v));
            };
            convert_id(&s.decoded())
        }
    }
}

/// The bounds a value must lie in: the declared ones at the edge; in the log, which keeps
/// what the edge accepted, only the 64 bits of a value.
fn bounded(domain: Domain, min: i64, max: i64) -> (i64, i64) {
    match domain {
        Domain::Edge => (min, max),
        Domain::Logged => (i64::MIN, i64::MAX),
    }
}

fn wrong(expected: &str, v: Given<'_>) -> Refusal {
    (
        Reason::WrongType,
        format!("expected {expected}, got {}", v.kind_name()),
    )
}

/// `v` (written `text`) within `(min, max)`, inclusive, compared in 128 bits (nothing
/// wraps); `shown` writes a bound for the message.
fn within(
    v: i128,
    text: &str,
    (min, max): (i64, i64),
    shown: &dyn Fn(i64) -> String,
) -> Result<i64, Refusal> {
    if v < i128::from(min) {
        Err((
            Reason::OutOfBounds,
            format!("{} is below the minimum {}", shown_number(text), shown(min)),
        ))
    } else if v > i128::from(max) {
        Err((
            Reason::OutOfBounds,
            format!("{} is above the maximum {}", shown_number(text), shown(max)),
        ))
    } else {
        Ok(v as i64)
    }
}

fn convert_int(n: &json::Number<'_>, bounds: (i64, i64)) -> Result<i64, Refusal> {
    if !n.is_integer_notation() {
        return Err((
            Reason::WrongType,
            "expected an integer, written without a fraction or exponent (1, not 1.0 or 1e0)"
                .to_owned(),
        ));
    }
    // Integer notation has no fraction: only the magnitude can fail. A count of up to
    // 18 digits (nearly every one) is read directly, exactly as the decimal reads it.
    let value = match small_int(n.text) {
        Some(x) => x,
        None => match n.decimal().scaled(0) {
            Ok(x) => x,
            Err(_) if n.text.starts_with('-') => i128::MIN,
            Err(_) => i128::MAX,
        },
    };
    within(value, n.text, bounds, &|x| x.to_string())
}

/// An integer written as an optional `-` and at most 18 digits (its value then fits an
/// `i64` whatever the digits); `None` for any other text.
fn small_int(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for c in digits.bytes() {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(i128::from(if negative { -v } else { v }))
}

fn convert_decimal(n: &json::Number<'_>, scale: u32, bounds: (i64, i64)) -> Result<i64, Refusal> {
    let value = match n.decimal().scaled(scale) {
        Ok(x) => x,
        Err(ScaleError::TooPrecise) => {
            return Err((
                Reason::WrongType,
                format!("expected a number with at most {scale} decimal places"),
            ))
        }
        Err(ScaleError::TooLarge) if n.text.starts_with('-') => i128::MIN,
        Err(ScaleError::TooLarge) => i128::MAX,
    };
    within(value, n.text, bounds, &|x| fixed_to_string(x, scale))
}

fn convert_enum(s: &str, values: &[String]) -> Result<Value, Refusal> {
    match values.iter().position(|x| *x == *s) {
        Some(i) => Ok(Value::Enum(i as u16)),
        None => Err((
            Reason::UnknownValue,
            format!(
                "unknown value {}; expected one of {}",
                quoted(s),
                values.join(", ")
            ),
        )),
    }
}

fn convert_id(s: &str) -> Result<Value, Refusal> {
    if super::is_blank(s) {
        return Err((Reason::EmptyId, "must not be empty".to_owned()));
    }
    if !printable_id(s) {
        return Err((
            Reason::OutOfBounds,
            format!("must be at most {MAX_ID_CHARS} printable characters"),
        ));
    }
    Ok(Value::Id(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_integer_is_read_directly_as_the_decimal_reads_it() {
        for text in [
            "0",
            "-0",
            "7",
            "-42",
            "1000000000",
            "999999999999999999",
            "-999999999999999999",
        ] {
            let exact = json::Decimal::of(text).scaled(0);
            assert_eq!(small_int(text).ok_or(()), exact.map_err(drop), "{text}");
        }
        // Longer, or not an integer: left to the decimal.
        for text in ["1000000000000000000", "-", "", "1.5", "1e3", "+1", "1-"] {
            assert_eq!(small_int(text), None, "{text}");
        }
    }
}
