//! The CSV mapping: the `[csv_mappings.NAME]` table of the config file, and that table
//! checked against the plan's schema ([`Plan`]), ready to turn rows into envelopes.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use super::time_format::{parse_zone, TimeFormat};
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
    /// The header of the column holding the event id.
    pub event_id: String,
    /// The header of the column holding the time.
    pub occurred_at: String,
    /// `%Y %m %d %H %M %S %z %%` and literal characters (a space matches any run of spaces), or `rfc3339`.
    #[serde(default = "default_time_format")]
    pub time_format: String,
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
}

fn default_time_format() -> String {
    "%Y/%m/%d %H:%M:%S".to_owned()
}

fn default_utc_offset() -> String {
    "+09:00".to_owned()
}

/// A mapped data field, resolved against the schema.
pub(super) struct PlanField<'a> {
    pub(super) name: &'a str,
    pub(super) header: &'a str,
    pub(super) kind: &'a FieldKind,
    pub(super) values: Option<&'a BTreeMap<String, String>>,
}

/// A mapping checked against the schema, ready to turn rows into envelopes.
pub(super) struct Plan<'a> {
    pub(super) mapping: &'a CsvMapping,
    pub(super) delimiter: u8,
    pub(super) time: TimeFormat,
    pub(super) offset: String,
    pub(super) fields: Vec<PlanField<'a>>,
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
        let time = TimeFormat::parse(&mapping.time_format).map_err(ImportError::Mapping)?;
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
            offset,
            fields,
        })
    }
}
