//! File import: NDJSON and CSV (UTF-8 or Shift_JIS) turned into raw events.
//!
//! Each event comes out as the raw JSON bytes of one envelope with the 1-based line it
//! started on, ready for [`crate::item`] with a [`crate::Position::Line`]: validation,
//! the personal-number guard and rejection reasons stay in one place, whatever the
//! transport. A CSV row is mapped to the envelope by a [`CsvMapping`] from the config
//! file (docs/architecture.md, "Transports"). Problems with the whole file (its encoding, its
//! header, its shape, the mapping itself) are an [`ImportError`]; a bad row is still
//! emitted, so validation rejects it with a reason and the rows beside it go on.
//!
//! Nothing here prints, logs or quotes the contents of a cell: a cell may hold a
//! personal number, and only the guard may decide what is shown.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::schema::Schema;

#[cfg(test)]
mod city_tests;
mod decode;
mod file;
mod mapping;
mod row;
mod row_id;
mod rows;
mod time_format;
mod xlsx;

pub use file::{open_file, FileRows, Format};
pub use mapping::{CsvMapping, MonthDayKey};
pub use rows::{CsvRows, NdjsonRows};
pub use xlsx::{XlsxRows, DEFAULT_MAX_UNPACKED_MIB};

/// The UTF-8 byte order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Text encodings a file may come in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Deserialize)]
#[serde(try_from = "String")]
pub enum Encoding {
    /// UTF-8, with or without a byte order mark.
    Utf8,
    /// Shift_JIS as Windows writes it (code page 932, the WHATWG `Shift_JIS`).
    ShiftJis,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::ShiftJis => "Shift_JIS",
        })
    }
}

impl FromStr for Encoding {
    type Err = ImportError;

    /// Parses `utf-8`/`utf8` or `shift_jis`/`shift-jis`/`sjis`/`cp932`/`windows-31j`
    /// (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "shift_jis" | "shift-jis" | "shiftjis" | "sjis" | "cp932" | "windows-31j" => {
                Ok(Encoding::ShiftJis)
            }
            _ => Err(ImportError::UnknownEncoding { name: s.to_owned() }),
        }
    }
}

impl TryFrom<String> for Encoding {
    type Error = ImportError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Whole-file problems: nothing of the file can be imported until they are fixed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bytes are not valid text in the encoding (the offset of the first bad byte).
    #[error(
        "the file is not valid {encoding}: malformed bytes at byte offset {offset} \
         (is it in another encoding?)"
    )]
    Encoding {
        /// The encoding the bytes were decoded as.
        encoding: Encoding,
        /// The 0-based offset of the first malformed byte in the file.
        offset: usize,
    },
    /// An encoding name that is not known.
    #[error("unknown encoding {name:?}; expected utf-8 or shift_jis (also sjis, cp932)")]
    UnknownEncoding {
        /// The name as given.
        name: String,
    },
    /// The file has no header row.
    #[error("the CSV file is empty: expected a header row")]
    NoHeader,
    /// The header lacks a column the mapping names.
    #[error("the CSV header has no column {column:?}; the columns found are: {}", found.join(", "))]
    MissingColumn {
        /// The column the mapping names.
        column: String,
        /// The header's columns, in file order, each masked by the guard: a header is
        /// a cell like any other, and may hold a personal number.
        found: Vec<String>,
    },
    /// The CSV cannot be split into rows of the header's width.
    #[error("CSV syntax error at line {line}: {message}")]
    Csv {
        /// The 1-based line of the row (the header is line 1).
        line: u64,
        /// What is wrong (never quotes a cell).
        message: String,
    },
    /// The mapping names an event type the plan does not declare.
    #[error("the CSV mapping names unknown event type {name:?}; the plan declares: {}", known.join(", "))]
    UnknownType {
        /// The type the mapping names.
        name: String,
        /// The types the plan declares, sorted.
        known: Vec<String>,
    },
    /// The mapping itself is inconsistent (an unknown field, a bad time format or offset).
    #[error("bad CSV mapping: {0}")]
    Mapping(String),
    /// The file cannot be read (an I/O error of the file system).
    #[error("cannot read the file: {0}")]
    Io(String),
    /// A workbook that cannot be read: not an `.xlsx`, no such sheet, a broken part.
    #[error("cannot read the workbook: {0}")]
    Xlsx(String),
    /// A workbook whose parts unpack to more than the limit (a zip bomb, or a sheet
    /// too large to import at once).
    #[error(
        "the workbook unpacks to more than {limit_mib} MiB (the limit; raise it with the \
         mapping's max_unpacked_mib, or export the sheet as CSV, which streams)"
    )]
    TooLarge {
        /// The limit, in MiB.
        limit_mib: u64,
    },
}

/// Rows of a file left out of the import, and why.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Skipped {
    /// Rows whose cells are all blank (and blank NDJSON lines).
    pub blank: u64,
    /// Rows a `skip_when`/`keep_when` rule of the mapping leaves out.
    pub by_rule: u64,
}

/// One raw event cut from a file: its JSON envelope and the line it starts on.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RawLine {
    /// The 1-based line the event starts on (a CSV header is line 1).
    pub line: u64,
    /// The event as JSON bytes, for [`crate::decode`] / [`crate::item`].
    pub json: Vec<u8>,
    /// The CSV column (header text) and a message when a cell is known to be bad; never quotes the cell.
    pub column_error: Option<(String, String)>,
    /// The event field that bad cell becomes (`occurred_at`, `data.count`, `event_id`), to
    /// tell whether a rejection is about it.
    pub error_field: Option<String>,
}

/// Guesses a file's encoding: UTF-8 when it has a UTF-8 BOM or is valid UTF-8, else Shift_JIS.
pub fn detect_encoding(bytes: &[u8]) -> Encoding {
    if bytes.starts_with(UTF8_BOM) || std::str::from_utf8(bytes).is_ok() {
        Encoding::Utf8
    } else {
        Encoding::ShiftJis
    }
}

/// [`detect_encoding`] of a whole file read a chunk at a time (it stops at the first
/// byte that is not UTF-8).
pub fn detect_encoding_in(read: impl std::io::Read) -> Result<Encoding, ImportError> {
    decode::detect_encoding_in(read).map_err(|e| ImportError::Io(e.to_string()))
}

/// Decodes a file's bytes, stripping a UTF-8 BOM; malformed bytes are an error naming the first bad offset.
pub fn decode_text(bytes: &[u8], enc: Encoding) -> Result<String, ImportError> {
    match enc {
        Encoding::Utf8 => {
            let (skip, body) = match bytes.strip_prefix(UTF8_BOM) {
                Some(rest) => (UTF8_BOM.len(), rest),
                None => (0, bytes),
            };
            std::str::from_utf8(body)
                .map(str::to_owned)
                .map_err(|e| ImportError::Encoding {
                    encoding: enc,
                    offset: skip + e.valid_up_to(),
                })
        }
        Encoding::ShiftJis => decode_shift_jis(bytes),
    }
}

fn decode_shift_jis(bytes: &[u8]) -> Result<String, ImportError> {
    use encoding_rs::DecoderResult;
    let mut decoder = encoding_rs::SHIFT_JIS.new_decoder_without_bom_handling();
    let mut out = String::new();
    let mut read = 0;
    loop {
        let rest = &bytes[read..];
        let need = decoder
            .max_utf8_buffer_length_without_replacement(rest.len())
            .unwrap_or(rest.len().saturating_mul(3));
        out.reserve(need);
        let (result, n) = decoder.decode_to_string_without_replacement(rest, &mut out, true);
        read += n;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::OutputFull => continue,
            DecoderResult::Malformed(bad, after) => {
                let offset = read - usize::from(after) - usize::from(bad);
                return Err(ImportError::Encoding {
                    encoding: Encoding::ShiftJis,
                    offset,
                });
            }
        }
    }
}

/// Cuts NDJSON text into raw events: one per non-blank line, with its 1-based line number.
pub fn ndjson_events(text: &str) -> Vec<RawLine> {
    let mut rows = NdjsonRows::new(text.as_bytes(), Encoding::Utf8);
    // Text is valid UTF-8: decoding it cannot fail.
    std::iter::from_fn(|| rows.next_row().ok().flatten()).collect()
}

/// Maps CSV text (first row the header) to raw events, one per data row; blank rows and
/// rows the mapping's rules skip are left out. The whole text is read before any row
/// is returned: a file is imported whole or not at all.
pub fn csv_events(
    text: &str,
    mapping: &CsvMapping,
    schema: &Schema,
) -> Result<Vec<RawLine>, ImportError> {
    let mut rows = CsvRows::new(text.as_bytes(), Encoding::Utf8, mapping, schema)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next_row()? {
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value as Json;

    use super::time_format::{parse_zone, TimeFormat};
    use super::*;
    use crate::guard;
    use crate::schema::FieldKind;
    use crate::{decode, Reason, Value};

    fn schema() -> Schema {
        let decls = serde_json::json!({
            "certificate.issued": {
                "description": "a certificate was issued",
                "fields": {
                    "channel": {"kind": "enum", "values": ["konbini", "counter", "mail", "online"]},
                    "certificate": {"kind": "enum", "values": ["juminhyo", "inkan", "koseki", "tax", "other"]},
                    "count": {"kind": "int", "min": 1, "default": 1}
                }
            },
            "bpr.hours_saved": {
                "fields": {
                    "hours": {"kind": "decimal", "scale": 2, "min": 0.01},
                    "initiative": {"kind": "id"}
                }
            }
        });
        let decls = serde_json::from_value(decls).unwrap();
        Schema::new(&decls, HashMap::new()).unwrap()
    }

    fn mapping() -> CsvMapping {
        serde_json::from_value(serde_json::json!({
            "source": "konbini",
            "type": "certificate.issued",
            "event_id": "受付番号",
            "occurred_at": "交付日時",
            "fields": {"channel": "交付方法", "certificate": "証明書種別", "count": "枚数"},
            "values": {
                "channel": {"コンビニ": "konbini", "窓口": "counter", "郵送": "mail"},
                "certificate": {
                    "住民票の写し": "juminhyo",
                    "印鑑登録証明書": "inkan",
                    "戸籍全部事項証明書": "koseki",
                    "課税証明書": "tax"
                }
            }
        }))
        .unwrap()
    }

    const HEADER: &str = "受付番号,交付日時,交付方法,証明書種別,枚数\r\n";

    fn csv(rows: &[&str]) -> String {
        let mut s = HEADER.to_owned();
        for r in rows {
            s.push_str(r);
            s.push_str("\r\n");
        }
        s
    }

    fn json(raw: &RawLine) -> Json {
        serde_json::from_slice(&raw.json).unwrap()
    }

    fn enum_value(schema: &Schema, field: &str, v: &Value) -> String {
        let ty = schema.event_type(schema.type_id("certificate.issued").unwrap());
        let ix = ty.field(field).unwrap();
        match (&ty.fields[ix].kind, v) {
            (FieldKind::Enum { values }, Value::Enum(i)) => values[usize::from(*i)].clone(),
            other => panic!("not an enum value: {other:?}"),
        }
    }

    #[test]
    fn a_shift_jis_file_with_a_japanese_header_maps_to_events() {
        let schema = schema();
        let text = csv(&[
            "K-0001,2026/05/01 10:15:00,コンビニ,住民票の写し,1",
            "K-0002,2026/05/01 10:42:13,窓口,印鑑登録証明書,2",
        ]);
        let (bytes, _, lossy) = encoding_rs::SHIFT_JIS.encode(&text);
        assert!(!lossy);
        assert!(std::str::from_utf8(&bytes).is_err(), "really Shift_JIS");
        assert_eq!(detect_encoding(&bytes), Encoding::ShiftJis);
        let decoded = decode_text(&bytes, Encoding::ShiftJis).unwrap();
        assert_eq!(decoded, text);

        let rows = csv_events(&decoded, &mapping(), &schema).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[0].column_error, None);
        assert_eq!(
            json(&rows[0]),
            serde_json::json!({
                "event_id": "K-0001", "source": "konbini", "type": "certificate.issued",
                "occurred_at": "2026-05-01T10:15:00+09:00",
                "data": {"channel": "konbini", "certificate": "juminhyo", "count": 1}
            })
        );

        let ev = decode(&schema, &rows[1].json).unwrap();
        assert_eq!(ev.id, "K-0002");
        assert_eq!(ev.source, "konbini");
        assert_eq!(ev.occurred_at.to_string(), "2026-05-01T01:42:13Z");
        assert_eq!(enum_value(&schema, "channel", &ev.data[0]), "counter");
        assert_eq!(enum_value(&schema, "certificate", &ev.data[1]), "inkan");
        assert_eq!(ev.data[2], Value::Int(2));
    }

    #[test]
    fn a_utf8_file_with_or_without_a_bom_is_detected_and_the_bom_is_stripped() {
        let text = csv(&["K-0001,2026/05/01 10:15:00,コンビニ,住民票の写し,1"]);
        let mut with_bom = UTF8_BOM.to_vec();
        with_bom.extend_from_slice(text.as_bytes());
        assert_eq!(detect_encoding(&with_bom), Encoding::Utf8);
        assert_eq!(detect_encoding(text.as_bytes()), Encoding::Utf8);
        let decoded = decode_text(&with_bom, Encoding::Utf8).unwrap();
        assert_eq!(decoded, text);
        let rows = csv_events(&decoded, &mapping(), &schema()).unwrap();
        assert!(decode(&schema(), &rows[0].json).is_ok());

        // A BOM left in the text (decoded elsewhere) does not hide the first header.
        let rows = csv_events(&format!("\u{FEFF}{text}"), &mapping(), &schema()).unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn malformed_bytes_are_reported_at_the_first_bad_offset() {
        let mut sjis = encoding_rs::SHIFT_JIS
            .encode("受付番号,交付日時\n")
            .0
            .into_owned();
        let bad_at = sjis.len();
        sjis.extend_from_slice(b"\x82\xFF,x\n\x82");
        match decode_text(&sjis, Encoding::ShiftJis) {
            Err(ImportError::Encoding {
                encoding: Encoding::ShiftJis,
                offset,
            }) => assert_eq!(offset, bad_at),
            other => panic!("expected an encoding error, got {other:?}"),
        }

        let mut utf8 = UTF8_BOM.to_vec();
        utf8.extend_from_slice("番号,".as_bytes());
        let bad_at = utf8.len();
        utf8.extend_from_slice(b"\xE3\x81,\xFF");
        assert_eq!(detect_encoding(&utf8), Encoding::Utf8, "a BOM says UTF-8");
        let err = decode_text(&utf8, Encoding::Utf8).unwrap_err();
        assert!(matches!(err, ImportError::Encoding { offset, .. } if offset == bad_at));
        assert!(err.to_string().contains(&format!("offset {bad_at}")));
    }

    #[test]
    fn encoding_names_parse_case_insensitively() {
        for n in ["utf-8", "UTF8"] {
            assert_eq!(n.parse::<Encoding>().unwrap(), Encoding::Utf8);
        }
        for n in ["shift_jis", "Shift_JIS", "sjis", "CP932"] {
            assert_eq!(n.parse::<Encoding>().unwrap(), Encoding::ShiftJis);
        }
        assert!(matches!(
            "latin1".parse::<Encoding>(),
            Err(ImportError::UnknownEncoding { .. })
        ));
        let e: Encoding = serde_json::from_str("\"sjis\"").unwrap();
        assert_eq!(e, Encoding::ShiftJis);
    }

    #[test]
    fn a_missing_header_column_names_it_and_lists_the_headers_found() {
        let text = "受付番号,日時,交付方法,証明書種別,枚数\n K-1,2026/05/01 10:15:00,コンビニ,住民票の写し,1\n";
        let err = csv_events(text, &mapping(), &schema()).unwrap_err();
        match &err {
            ImportError::MissingColumn { column, found } => {
                assert_eq!(column, "交付日時");
                assert_eq!(
                    found,
                    &["受付番号", "日時", "交付方法", "証明書種別", "枚数"]
                );
            }
            other => panic!("expected a missing column, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("交付日時") && msg.contains("受付番号, 日時, 交付方法"));
        assert!(matches!(
            csv_events("", &mapping(), &schema()),
            Err(ImportError::NoHeader)
        ));
    }

    #[test]
    fn a_header_row_that_is_data_is_shown_masked() {
        // A file without its header: the first row's cells are taken as headers.
        let text = "1234-5678-9018,2026/05/01 10:15:00,コンビニ,住民票の写し,1\n";
        let msg = csv_events(text, &mapping(), &schema())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("****-****-****"), "{msg}");
        assert!(!msg.contains("5678"), "{msg}");
    }

    #[test]
    fn the_headers_listed_for_a_missing_column_are_masked() {
        let text = "受付番号,番号 123456789018,交付方法,証明書種別,枚数\n";
        let err = csv_events(text, &mapping(), &schema()).unwrap_err();
        match &err {
            ImportError::MissingColumn { found, .. } => {
                assert_eq!(found[1], "番号 ************");
            }
            other => panic!("expected a missing column, got {other:?}"),
        }
        assert!(!guard::contains(&err.to_string()), "{err}");
    }

    #[test]
    fn a_time_cell_that_does_not_match_the_format_is_kept_and_rejected_as_bad_timestamp() {
        let schema = schema();
        let text = csv(&[
            "K-0001,2026-05-01 10:15,コンビニ,住民票の写し,1",
            "K-0002,2026/02/30 10:15:00,コンビニ,住民票の写し,1",
            "K-0003,,コンビニ,住民票の写し,1",
        ]);
        let rows = csv_events(&text, &mapping(), &schema).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(json(&rows[0])["occurred_at"], "2026-05-01 10:15");
        assert_eq!(
            rows[0].column_error,
            Some((
                "交付日時".to_owned(),
                "does not match time format %Y/%m/%d %H:%M:%S".to_owned()
            ))
        );
        for r in &rows {
            assert_eq!(r.column_error.as_ref().unwrap().0, "交付日時");
            let rej = decode(&schema, &r.json).unwrap_err();
            assert_eq!(rej.reason, Reason::BadTimestamp);
        }
    }

    #[test]
    fn error_messages_never_quote_a_cell() {
        let secret = "123456789018";
        let text = csv(&[&format!("K-1,{secret},{secret},{secret},{secret}")]);
        let rows = csv_events(&text, &mapping(), &schema()).unwrap();
        let (col, msg) = rows[0].column_error.clone().unwrap();
        assert!(!col.contains(secret) && !msg.contains(secret));
        let text = format!("{HEADER}K-1,{secret}\n");
        let err = csv_events(&text, &mapping(), &schema()).unwrap_err();
        assert!(!err.to_string().contains(secret));
    }

    #[test]
    fn an_unmapped_channel_value_is_kept_and_rejected_as_unknown_value() {
        let schema = schema();
        let text = csv(&["K-0004,2026/05/01 13:20:00,郵便局,住民票の写し,1"]);
        let rows = csv_events(&text, &mapping(), &schema).unwrap();
        assert_eq!(json(&rows[0])["data"]["channel"], "郵便局");
        assert_eq!(rows[0].column_error.as_ref().unwrap().0, "交付方法");
        let rej = decode(&schema, &rows[0].json).unwrap_err();
        assert_eq!(rej.reason, Reason::UnknownValue);
    }

    #[test]
    fn numbers_are_normalised_and_non_numbers_are_rejected_as_wrong_type() {
        let schema = schema();
        let text = csv(&[
            "K-1,2026/05/01 10:15:00,コンビニ,住民票の写し,２",
            "K-2,2026/05/01 10:15:00,コンビニ,住民票の写し,\"1,200\"",
            "K-3,2026/05/01 10:15:00,コンビニ,住民票の写し, 3 ",
            "K-4,2026/05/01 10:15:00,コンビニ,住民票の写し,二枚",
            "K-5,2026/05/01 10:15:00,コンビニ,住民票の写し,1.5",
            "K-6,2026/05/01 10:15:00,コンビニ,住民票の写し,\"1,2\"",
        ]);
        let rows = csv_events(&text, &mapping(), &schema).unwrap();
        let counts: Vec<Json> = rows
            .iter()
            .map(|r| json(r)["data"]["count"].clone())
            .collect();
        assert_eq!(
            counts,
            [
                serde_json::json!(2),
                serde_json::json!(1200),
                serde_json::json!(3),
                serde_json::json!("二枚"),
                serde_json::json!(1.5),
                serde_json::json!("1,2"),
            ]
        );
        for r in &rows[..3] {
            assert_eq!(r.column_error, None);
            assert!(decode(&schema, &r.json).is_ok());
        }
        for r in &rows[3..] {
            assert_eq!(r.column_error.as_ref().unwrap().0, "枚数");
            assert_eq!(
                decode(&schema, &r.json).unwrap_err().reason,
                Reason::WrongType
            );
        }
    }

    #[test]
    fn decimal_fields_become_json_numbers_and_ids_stay_strings() {
        let schema = schema();
        let m: CsvMapping = serde_json::from_value(serde_json::json!({
            "source": "bpr", "type": "bpr.hours_saved",
            "event_id": "id", "occurred_at": "date", "time_format": "%Y年%m月%d日",
            "fields": {"hours": "時間", "initiative": "取組"},
            "delimiter": "\t"
        }))
        .unwrap();
        let text = "id\tdate\t時間\t取組\nB-1\t２０２６年５月１日\t１,２３４.５\tRPA-01\n";
        let rows = csv_events(text, &m, &schema).unwrap();
        let j = json(&rows[0]);
        assert_eq!(j["occurred_at"], "2026-05-01T00:00:00+09:00");
        assert_eq!(j["data"]["hours"], serde_json::json!(1234.5));
        assert_eq!(j["data"]["initiative"], "RPA-01");
        let ev = decode(&schema, &rows[0].json).unwrap();
        assert_eq!(ev.data[0], Value::Fixed(123_450));
    }

    #[test]
    fn empty_cells_are_omitted_so_defaults_apply_and_constants_fill_fields() {
        let schema = schema();
        let mut m = mapping();
        m.fields.remove("channel");
        m.values.remove("channel");
        m.constants
            .insert("channel".to_owned(), serde_json::json!("konbini"));
        let text = csv(&["K-1,2026/05/01 10:15:00,窓口,住民票の写し,"]);
        let rows = csv_events(&text, &m, &schema).unwrap();
        let j = json(&rows[0]);
        assert_eq!(
            j["data"],
            serde_json::json!({"channel": "konbini", "certificate": "juminhyo"})
        );
        let ev = decode(&schema, &rows[0].json).unwrap();
        assert_eq!(ev.data[2], Value::Int(1));
    }

    #[test]
    fn line_numbers_count_the_header_as_line_one_and_blank_rows_are_skipped() {
        let text = "受付番号,交付日時,交付方法,証明書種別,枚数\n\
                    K-1,2026/05/01 10:15:00,コンビニ,住民票の写し,1\n\
                    \n\
                    ,,,,\n\
                    \"K-\n2\",2026/05/01 10:15:00,コンビニ,住民票の写し,1\n\
                    K-3,2026/05/01 10:15:00,コンビニ,住民票の写し,1\n";
        for text in [
            text.to_owned(),
            text.replace('\n', "\r\n"),
            text.replace('\n', "\r"),
        ] {
            let rows = csv_events(&text, &mapping(), &schema()).unwrap();
            let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, [2, 5, 7], "{text:?}");
        }
    }

    #[test]
    fn streamed_line_numbers_stay_exact_across_read_and_buffer_boundaries() {
        // Far more text than the line counter keeps, every kind of line end, quoted
        // newlines and blank rows; read a few bytes at a time and all at once.
        let ends = ["\n", "\r\n", "\r"];
        let mut text = HEADER.to_owned();
        let (mut line, mut expected) = (2, Vec::new());
        for i in 0..20_000 {
            let end = ends[i % 3];
            if i % 7 == 0 {
                text.push_str(&format!(",,,,{end}"));
                line += 1;
            }
            let id = if i % 5 == 0 {
                format!("\"K-{i}{end}x\"")
            } else {
                format!("K-{i}")
            };
            text.push_str(&format!(
                "{id},2026/05/01 10:15:00,コンビニ,住民票の写し,1{end}"
            ));
            expected.push(line);
            line += if i % 5 == 0 { 2 } else { 1 };
        }
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
        let (m, schema) = (mapping(), schema());
        for step in [1 << 20, 4093, 61] {
            let reader = decode::Trickle(&sjis, step);
            let mut rows = CsvRows::new(reader, Encoding::ShiftJis, &m, &schema).unwrap();
            let mut lines = Vec::new();
            while let Some(r) = rows.next_row().unwrap() {
                lines.push(r.line);
            }
            assert_eq!(lines, expected, "reads of {step} bytes");
            assert_eq!(rows.skipped().blank, 20_000 / 7 + 1);
        }
    }

    #[test]
    fn a_row_of_the_wrong_width_is_a_csv_error_naming_its_line() {
        let text = csv(&[
            "K-1,2026/05/01 10:15:00,コンビニ,住民票の写し,1",
            "K-2,2026/05/01 10:15:00,コンビニ,住民票の写し",
        ]);
        match csv_events(&text, &mapping(), &schema()) {
            Err(ImportError::Csv { line, message }) => {
                assert_eq!(line, 3);
                assert!(message.contains("4 fields"), "{message}");
            }
            other => panic!("expected a CSV error, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_type_or_field_in_the_mapping_is_a_whole_file_error() {
        let mut m = mapping();
        m.event_type = "certificate.printed".to_owned();
        let err = csv_events(HEADER, &m, &schema()).unwrap_err();
        assert!(
            matches!(&err, ImportError::UnknownType { name, .. } if name == "certificate.printed")
        );
        assert!(err.to_string().contains("certificate.issued"));

        let mut m = mapping();
        m.fields.insert("colour".to_owned(), "色".to_owned());
        let err = csv_events(HEADER, &m, &schema()).unwrap_err();
        assert!(matches!(&err, ImportError::Mapping(msg) if msg.contains("fields.colour")));

        let mut m = mapping();
        m.time_format = "%Y/%m/%d %I:%M".to_owned();
        let err = csv_events(HEADER, &m, &schema()).unwrap_err();
        assert!(matches!(&err, ImportError::Mapping(msg) if msg.contains("%I")));

        let mut m = mapping();
        m.utc_offset = "Tokyo".to_owned();
        assert!(matches!(
            csv_events(HEADER, &m, &schema()),
            Err(ImportError::Mapping(_))
        ));
    }

    #[test]
    fn time_formats_take_unpadded_fields_offsets_and_rfc3339() {
        let fmt = TimeFormat::parse("%Y/%m/%d %H:%M:%S").unwrap();
        assert_eq!(
            fmt.apply("2026/5/1 9:05:00", "+09:00").as_deref(),
            Some("2026-05-01T09:05:00+09:00")
        );
        assert_eq!(
            fmt.apply("２０２６／０５／０１　１０：１５：００", "+09:00")
                .as_deref(),
            Some("2026-05-01T10:15:00+09:00")
        );
        assert_eq!(fmt.apply("2026/05/01 10:15:00 extra", "+09:00"), None);
        assert_eq!(fmt.apply("2026/05/01 24:00:00", "+09:00"), None);

        let with_z = TimeFormat::parse("%Y-%m-%d %H:%M:%S%z").unwrap();
        assert_eq!(
            with_z
                .apply("2026-05-01 10:15:00+0000", "+09:00")
                .as_deref(),
            Some("2026-05-01T10:15:00+00:00")
        );

        let rfc = TimeFormat::parse("RFC3339").unwrap();
        assert_eq!(
            rfc.apply("2026-05-01T10:15:00Z", "+09:00").as_deref(),
            Some("2026-05-01T10:15:00Z")
        );
        assert_eq!(
            rfc.apply("2026-05-01T10:15:00", "+09:00").as_deref(),
            Some("2026-05-01T10:15:00+09:00")
        );
        assert_eq!(rfc.apply("2026/05/01", "+09:00"), None);
        assert_eq!(parse_zone("Asia/Tokyo").as_deref(), Some("+09:00"));
        assert_eq!(parse_zone("-0330").as_deref(), Some("-03:30"));
    }

    #[test]
    fn ndjson_events_are_one_per_non_blank_line_with_their_line_numbers() {
        let text = "\u{FEFF}{\"a\":1}\r\n\r\n   \n{\"b\":2}\n";
        let rows = ndjson_events(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].line, rows[0].json.as_slice()),
            (1, &b"{\"a\":1}"[..])
        );
        assert_eq!(
            (rows[1].line, rows[1].json.as_slice()),
            (4, &b"{\"b\":2}"[..])
        );
    }

    #[test]
    fn the_konbini_fixture_imports_with_its_mapping() {
        let schema = schema();
        let bytes = include_bytes!("../tests/fixtures/konbini_sjis.csv");
        assert_eq!(detect_encoding(bytes), Encoding::ShiftJis);
        let text = decode_text(bytes, detect_encoding(bytes)).unwrap();
        // The same mapping as tests/fixtures/konbini.mapping.toml.
        let m: CsvMapping = serde_json::from_value(serde_json::json!({
            "source": "konbini",
            "type": "certificate.issued",
            "event_id": "受付番号",
            "occurred_at": "交付日時",
            "time_format": "%Y/%m/%d %H:%M:%S",
            "utc_offset": "+09:00",
            "fields": {"channel": "交付方法", "certificate": "証明書種別", "count": "枚数"},
            "values": {
                "channel": {"コンビニ": "konbini", "窓口": "counter", "郵送": "mail", "オンライン": "online"},
                "certificate": {
                    "住民票の写し": "juminhyo", "印鑑登録証明書": "inkan",
                    "戸籍全部事項証明書": "koseki", "戸籍個人事項証明書": "koseki",
                    "課税証明書": "tax", "非課税証明書": "tax", "所得証明書": "tax"
                }
            }
        }))
        .unwrap();
        let rows = csv_events(&text, &m, &schema).unwrap();
        let outcomes: Vec<(u64, Option<Reason>)> = rows
            .iter()
            .map(|r| (r.line, decode(&schema, &r.json).err().map(|e| e.reason)))
            .collect();
        assert_eq!(
            outcomes,
            [
                (2, None),
                (3, None),
                (4, None),
                (5, Some(Reason::UnknownValue)),
                (6, Some(Reason::BadTimestamp)),
                (7, None),
            ]
        );
        assert_eq!(rows[3].column_error.as_ref().unwrap().0, "交付方法");
        assert_eq!(rows[4].column_error.as_ref().unwrap().0, "交付日時");
    }
}
