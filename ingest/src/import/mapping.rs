//! The CSV mapping: the `[csv_mappings.NAME]` table of the config file, and that table
//! checked against the plan's schema ([`Plan`]), ready to turn rows into envelopes.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use super::time_format::{parse_zone, MonthAnchor, MonthDay, TimeError, TimeFormat};
use super::ImportError;
use crate::schema::{FieldKind, Schema};

/// A CSV column mapping: the `[csv_mappings.NAME]` table of the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvMapping {
    /// The envelope's `source`, constant for the file.
    pub source: String,
    /// The envelope's `type`, constant for the file.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The header of the column holding the event id (or give `event_id_columns`).
    #[serde(default)]
    pub event_id: Option<String>,
    /// For a file without an id column: the headers of the columns whose cells make a
    /// row's id (see `row_id`: a letters-only hash plus the occurrence index).
    #[serde(default)]
    pub event_id_columns: Vec<String>,
    /// The header of the column holding the time.
    pub occurred_at: String,
    /// `%Y %E %m %d %H %M %S %z %%` and literal characters (a space matches any run of
    /// spaces), or `rfc3339`; `%E` is a Japanese era year (`令和8`, `令和元`, `R8`, `H31`).
    #[serde(default = "default_time_format")]
    pub time_format: String,
    /// For a `time_format` without `%d` (a monthly export's `2026年10月`): the day of
    /// the month it stands for, `"last"` or a day number.
    #[serde(default)]
    pub month_day: Option<MonthDayKey>,
    /// For a month-only `time_format`: the time of day (`HH:MM:SS`, default `00:00:00`).
    #[serde(default)]
    pub month_time: Option<String>,
    /// The UTC offset of times without one (`+09:00`, `Z`, `Asia/Tokyo`).
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    /// Data field name → the header of the column holding it.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Data field name → a constant value for every row.
    #[serde(default)]
    pub constants: BTreeMap<String, Json>,
    /// Data field name → (cell text → value), e.g. `channel`: `コンビニ` → `konbini`.
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// The field delimiter (default `,`; an ASCII character).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Column header → cell texts that make a row skipped, not imported (totals rows:
    /// `{ "地区" = ["合計", "総計"] }`). Compared trimmed, full-width forms as ASCII.
    #[serde(default)]
    pub skip_when: BTreeMap<String, Vec<String>>,
    /// Column header → the only cell texts whose rows are imported; other rows are
    /// skipped (a city-wide snapshot from a file of districts: `{ "地区" = ["合計"] }`).
    /// Compared as `skip_when` is; a row must match every column given.
    #[serde(default)]
    pub keep_when: BTreeMap<String, Vec<String>>,
    /// For an `.xlsx` workbook: the sheet to read (default: the first).
    #[serde(default)]
    pub sheet: Option<String>,
    /// For an `.xlsx` workbook: the most MiB its parts may unpack to (default
    /// [`super::DEFAULT_MAX_UNPACKED_MIB`]); more is refused before it is parsed.
    #[serde(default)]
    pub max_unpacked_mib: Option<u64>,
}

/// Where a row's event id comes from.
pub(super) enum IdRule<'a> {
    /// The cell of this column.
    Column(&'a str),
    /// Built from the cells of these columns (`event_id_columns`).
    Columns(&'a [String]),
}

impl<'a> IdRule<'a> {
    /// Exactly one of `event_id` and `event_id_columns`, each column named once.
    fn of(m: &'a CsvMapping) -> Result<Self, ImportError> {
        match (&m.event_id, m.event_id_columns.as_slice()) {
            (Some(c), []) => Ok(IdRule::Column(c)),
            (None, cols) if !cols.is_empty() => {
                for (i, c) in cols.iter().enumerate() {
                    if cols[..i].contains(c) {
                        return Err(ImportError::Mapping(format!(
                            "event_id_columns names {c:?} twice"
                        )));
                    }
                }
                Ok(IdRule::Columns(cols))
            }
            (None, _) => Err(ImportError::Mapping(
                "needs event_id (the id column) or event_id_columns (the columns an id \
                 is built from)"
                    .to_owned(),
            )),
            (Some(_), _) => Err(ImportError::Mapping(
                "has both event_id and event_id_columns; give exactly one".to_owned(),
            )),
        }
    }
}

/// The `month_day` key: `"last"` or a day number (1–31).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum MonthDayKey {
    /// A day number.
    Day(u32),
    /// `"last"` (or a day number written as text).
    Word(String),
}

/// The mapping's `month_day`/`month_time` as a month anchor (`None` when neither is set).
fn month_anchor(m: &CsvMapping) -> Result<Option<MonthAnchor>, ImportError> {
    let bad = |what: String| ImportError::Mapping(what);
    let day = match &m.month_day {
        None if m.month_time.is_some() => {
            return Err(bad(
                "month_time needs month_day (\"last\" or a day number)".to_owned()
            ))
        }
        None => return Ok(None),
        Some(MonthDayKey::Word(w)) if w.trim().eq_ignore_ascii_case("last") => MonthDay::Last,
        Some(MonthDayKey::Word(w)) => match w.trim().parse::<u32>() {
            Ok(n) => MonthDay::Nth(n),
            Err(_) => {
                return Err(bad(format!(
                    "month_day {w:?} is neither \"last\" nor a day number"
                )))
            }
        },
        Some(MonthDayKey::Day(n)) => MonthDay::Nth(*n),
    };
    if let MonthDay::Nth(n) = day {
        if !(1..=31).contains(&n) {
            return Err(bad(format!(
                "month_day {n} is not a day of a month (1-31, or \"last\")"
            )));
        }
    }
    let time = match m.month_time.as_deref() {
        None => (0, 0, 0),
        Some(t) => parse_hms(t)
            .ok_or_else(|| bad(format!("month_time {t:?} is not a time like 00:00:00")))?,
    };
    Ok(Some(MonthAnchor { day, time }))
}

/// `HH:MM:SS` or `HH:MM` as (hour, minute, second).
fn parse_hms(t: &str) -> Option<(u32, u32, u32)> {
    let mut parts = t.trim().split(':').map(|p| {
        (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    });
    let h = parts.next()??;
    let m = parts.next()??;
    let s = parts.next().unwrap_or(Some(0))?;
    (parts.next().is_none() && h <= 23 && m <= 59 && s <= 59).then_some((h, m, s))
}

fn default_time_format() -> String {
    "%Y/%m/%d %H:%M:%S".to_owned()
}

fn default_utc_offset() -> String {
    "+09:00".to_owned()
}

/// How a workbook's date cell is written for the mapping to read (`xlsx`).
const DATE_CELL: &str = "%Y-%m-%dT%H:%M:%S";
/// The part of [`DATE_CELL`] a month-only mapping reads.
const DATE_CELL_MONTH: &str = "%Y-%m";

/// A mapped data field, resolved against the schema.
pub(super) struct PlanField<'a> {
    pub(super) name: &'a str,
    pub(super) header: &'a str,
    pub(super) kind: &'a FieldKind,
    /// The field's path in a rejection: `data.NAME`.
    pub(super) path: String,
    pub(super) values: Option<&'a BTreeMap<String, String>>,
}

/// A mapping checked against the schema, ready to turn rows into envelopes.
pub(super) struct Plan<'a> {
    pub(super) mapping: &'a CsvMapping,
    pub(super) delimiter: u8,
    pub(super) time: TimeFormat,
    /// How a workbook's date cell (written `YYYY-MM-DDTHH:MM:SS`) is read: as the date
    /// and time it holds, or — for a month-only `time_format` — as its month, at the
    /// mapping's `month_day` and `month_time`.
    date_cells: TimeFormat,
    pub(super) offset: String,
    pub(super) fields: Vec<PlanField<'a>>,
    pub(super) id: IdRule<'a>,
}

impl<'a> Plan<'a> {
    pub(super) fn new(mapping: &'a CsvMapping, schema: &'a Schema) -> Result<Self, ImportError> {
        let type_id =
            schema
                .type_id(&mapping.event_type)
                .ok_or_else(|| ImportError::UnknownType {
                    name: mapping.event_type.clone(),
                    known: schema.type_names().into_iter().map(str::to_owned).collect(),
                })?;
        let ty = schema.event_type(type_id);
        let declared = || {
            let names: Vec<&str> = ty.fields.iter().map(|f| f.name.as_str()).collect();
            if names.is_empty() {
                format!("{} carries no data fields", ty.name)
            } else {
                format!("{} has fields {}", ty.name, names.join(", "))
            }
        };
        let unknown = |section: &str, name: &str| {
            ImportError::Mapping(format!(
                "{section}.{name}: not a field of {}; {}",
                ty.name,
                declared()
            ))
        };
        let mut fields = Vec::with_capacity(mapping.fields.len());
        for (name, header) in &mapping.fields {
            let ix = ty.field(name).ok_or_else(|| unknown("fields", name))?;
            if mapping.constants.contains_key(name) {
                return Err(ImportError::Mapping(format!(
                    "{name} is both a column (fields.{name}) and a constant (constants.{name})"
                )));
            }
            fields.push(PlanField {
                name,
                header,
                kind: &ty.fields[ix].kind,
                path: format!("data.{name}"),
                values: mapping.values.get(name),
            });
        }
        for name in mapping.constants.keys() {
            ty.field(name).ok_or_else(|| unknown("constants", name))?;
        }
        for name in mapping.values.keys() {
            if !mapping.fields.contains_key(name) {
                return Err(ImportError::Mapping(format!(
                    "values.{name}: a value map needs a column, but fields.{name} is not set"
                )));
            }
        }
        let delimiter = match mapping.delimiter {
            None => b',',
            Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => c as u8,
            Some(c) => {
                return Err(ImportError::Mapping(format!(
                    "delimiter {c:?} is not a usable ASCII character"
                )))
            }
        };
        let id = IdRule::of(mapping)?;
        let anchor = month_anchor(mapping)?;
        let time =
            TimeFormat::parse_with(&mapping.time_format, anchor).map_err(ImportError::Mapping)?;
        let date_cells = match anchor {
            Some(_) => TimeFormat::parse_with(DATE_CELL_MONTH, anchor),
            None => TimeFormat::parse_with(DATE_CELL, None),
        }
        .map_err(ImportError::Mapping)?;
        let offset = parse_zone(&mapping.utc_offset).ok_or_else(|| {
            ImportError::Mapping(format!(
                "utc_offset {:?} is not an offset like +09:00 (or Z, UTC, Asia/Tokyo)",
                mapping.utc_offset
            ))
        })?;
        Ok(Plan {
            mapping,
            delimiter,
            time,
            date_cells,
            offset,
            fields,
            id,
        })
    }
}

impl Plan<'_> {
    /// A workbook's date cell (`YYYY-MM-DDTHH:MM:SS`) as RFC 3339 at the mapping's
    /// offset; a month-only mapping reads its year and month alone.
    pub(super) fn date_cell_time(&self, cell: &str) -> Result<String, TimeError> {
        let cell = match self.date_cells {
            TimeFormat::Pattern(_, Some(_)) => cell.get(.."YYYY-MM".len()).unwrap_or(cell),
            _ => cell,
        };
        self.date_cells.convert(cell, &self.offset)
    }
}
