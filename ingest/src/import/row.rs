//! A CSV row turned into the JSON envelope of one event, as its mapping says. A cell
//! known to be bad is noted by its column (never quoted) and still emitted, so that
//! validation rejects the event with a reason.

use serde_json::{Map, Number, Value as Json};

use super::mapping::{IdRule, Plan, PlanField};
use super::row_id::RowIds;
use super::RawLine;
use crate::schema::FieldKind;

/// The first bad cell of a row: its column (header text), what is wrong, and the
/// event field the cell becomes.
#[derive(Default)]
struct FirstError(Option<(String, String)>, Option<String>);

impl FirstError {
    /// Notes a bad cell of `column`, which becomes the event's `field`, unless one was
    /// noted before.
    fn note(&mut self, column: &str, field: &str, message: String) {
        if self.0.is_none() {
            self.0 = Some((column.to_owned(), message));
            self.1 = Some(field.to_owned());
        }
    }
}

/// A row's time cell: text, or a workbook's date cell written `YYYY-MM-DDTHH:MM:SS`.
#[derive(Clone, Copy)]
pub(super) enum TimeCell<'c> {
    Text(&'c str),
    Date(&'c str),
}

/// A row's event id, and the header of its first empty id cell, if any.
pub(super) struct RowId<'h> {
    pub(super) id: String,
    pub(super) empty: Option<&'h str>,
}

impl Plan<'_> {
    /// The event id of a row whose id cells (trimmed; one per `event_id` /
    /// `event_id_columns` column, in order) are `cells`.
    pub(super) fn event_id(&self, ids: &mut RowIds, cells: &[&str]) -> RowId<'_> {
        let empty_at = cells.iter().position(|c| c.is_empty());
        match &self.id {
            IdRule::Column(h) => RowId {
                id: cells.first().copied().unwrap_or("").to_owned(),
                empty: empty_at.map(|_| *h),
            },
            // An empty id cell gives an empty id, so that validation rejects the row
            // (`empty_id`) rather than import it under a key that lacks a part.
            IdRule::Columns(hs) => match empty_at {
                Some(i) => RowId {
                    id: String::new(),
                    empty: hs.get(i).map(String::as_str),
                },
                None => RowId {
                    id: ids.next(&self.mapping.source, &self.mapping.event_type, cells),
                    empty: None,
                },
            },
        }
    }

    /// One envelope from a row's (trimmed) cells; `field` gives the cell of the k-th mapped field.
    pub(super) fn row<'c>(
        &self,
        line: u64,
        id: RowId<'_>,
        time: TimeCell<'_>,
        field: impl Fn(usize) -> &'c str,
    ) -> RawLine {
        let m = self.mapping;
        let mut errors = FirstError::default();
        if let Some(header) = id.empty {
            let message = match self.id {
                IdRule::Column(_) => "is empty: every row needs an event id",
                IdRule::Columns(_) => {
                    "is empty: it is one of event_id_columns, which make the event id"
                }
            };
            errors.note(header, "event_id", message.to_owned());
        }
        let id = id.id;
        let occurred_at = self.occurred_at(time, &mut errors);
        let mut data: Map<String, Json> = m
            .constants
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, f) in self.fields.iter().enumerate() {
            let cell = field(k);
            if cell.is_empty() {
                continue;
            }
            data.insert(f.name.to_owned(), cell_value(f, cell, &mut errors));
        }
        let event = serde_json::json!({
            "event_id": id,
            "source": m.source,
            "type": m.event_type,
            "occurred_at": occurred_at,
            "data": data,
        });
        RawLine {
            line,
            json: event.to_string().into_bytes(),
            column_error: errors.0,
            error_field: errors.1,
        }
    }

    /// The time cell as RFC 3339 text; as it is (and noted) when it does not match the
    /// mapping's time format.
    fn occurred_at(&self, time: TimeCell<'_>, errors: &mut FirstError) -> String {
        let m = self.mapping;
        let (text, converted) = match time {
            TimeCell::Text(t) => (t, self.time.convert(t, &self.offset)),
            TimeCell::Date(t) => (t, self.date_cell_time(t)),
        };
        match converted {
            Ok(t) => t,
            Err(e) => {
                let message = if text.is_empty() {
                    format!("is empty; expected time format {}", m.time_format)
                } else {
                    e.message(&m.time_format)
                };
                errors.note(&m.occurred_at, "occurred_at", message);
                text.to_owned()
            }
        }
    }
}

/// A (non-empty) cell of field `f` as the JSON value its kind takes, after the mapping's
/// value map; a cell that cannot be one is noted and passed on as text.
fn cell_value(f: &PlanField<'_>, cell: &str, errors: &mut FirstError) -> Json {
    let mapped = f
        .values
        .and_then(|vm| vm.get(cell))
        .map_or(cell, String::as_str);
    match f.kind {
        FieldKind::Int { .. } => match number(mapped) {
            Some(n) if n.is_i64() => Json::Number(n),
            Some(n) => {
                errors.note(
                    f.header,
                    &f.path,
                    format!("is not a whole number ({})", f.name),
                );
                Json::Number(n)
            }
            None => {
                errors.note(f.header, &f.path, format!("is not a number ({})", f.name));
                Json::String(mapped.to_owned())
            }
        },
        FieldKind::Decimal { .. } => match number(mapped) {
            Some(n) => Json::Number(n),
            None => {
                errors.note(f.header, &f.path, format!("is not a number ({})", f.name));
                Json::String(mapped.to_owned())
            }
        },
        FieldKind::Enum { values } => {
            if !values.iter().any(|v| v == mapped) {
                let (name, allowed) = (f.name, values.join(", "));
                errors.note(
                    f.header,
                    &f.path,
                    if f.values.is_some() {
                        format!(
                            "is neither a key of the mapping's value map for {name} \
                             nor one of its values ({allowed})"
                        )
                    } else {
                        format!("is not one of the values of {name} ({allowed})")
                    },
                );
            }
            Json::String(mapped.to_owned())
        }
        FieldKind::Id | FieldKind::Stage { .. } => Json::String(mapped.to_owned()),
    }
}

/// Full-width ASCII forms (０-９, Ａ-Ｚ, ／, ：, ，, －, …) and the ideographic space as ASCII.
pub(super) fn half_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '\u{2212}' => '-',
            _ => c,
        })
        .collect()
}

/// A cell as a JSON number: full-width digits normalised, thousands commas stripped.
fn number(cell: &str) -> Option<Number> {
    let s = half_width(cell);
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let int = if int.contains(',') {
        let mut groups = int.split(',');
        let first = groups.next().unwrap_or("");
        let grouped = (1..=3).contains(&first.len())
            && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
        if !grouped {
            return None;
        }
        int.replace(',', "")
    } else {
        int.to_owned()
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(&int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let sign = if neg { "-" } else { "" };
    match frac {
        None => match format!("{sign}{int}").parse::<i64>() {
            Ok(v) => Some(Number::from(v)),
            Err(_) => format!("{sign}{int}")
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64),
        },
        Some(f) => format!("{sign}{int}.{f}")
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64),
    }
}
