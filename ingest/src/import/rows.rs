//! Rows of a file as they stream by: CSV records ([`CsvRows`]) and NDJSON lines
//! ([`NdjsonRows`]), each row mapped to a [`RawLine`] as it is read, so that memory
//! stays flat whatever the file's size. The columns a mapping reads and its skip rules
//! ([`Mapper`]) are shared with workbooks (`xlsx`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use super::decode::Decoded;
use super::mapping::{IdRule, Plan};
use super::row::{half_width, TimeCell};
use super::row_id::RowIds;
use super::{CsvMapping, Encoding, ImportError, RawLine, Skipped};
use crate::guard;
use crate::schema::Schema;

/// The csv crate's read buffer.
const CSV_BUFFER: usize = 64 * 1024;

/// A mapping resolved against a file's header: maps its rows (given cell by cell) to
/// raw events and counts the rows it skips.
pub(super) struct Mapper<'m> {
    plan: Plan<'m>,
    cols: Columns,
    ids: RowIds,
    /// The header's width.
    pub(super) width: usize,
    pub(super) skipped: Skipped,
}

impl<'m> Mapper<'m> {
    /// The mapping against `headers` (trimmed): every column it names must be there.
    pub(super) fn new(plan: Plan<'m>, headers: &[String]) -> Result<Self, ImportError> {
        if headers.iter().all(String::is_empty) {
            return Err(ImportError::NoHeader);
        }
        let cols = Columns::resolve(&plan, headers)?;
        Ok(Mapper {
            plan,
            cols,
            ids: RowIds::default(),
            width: headers.len(),
            skipped: Skipped::default(),
        })
    }

    /// Whether a row (its trimmed cells by index) is skipped by the mapping's
    /// `skip_when`/`keep_when` rules; a skipped row is counted.
    pub(super) fn skips<'c>(&mut self, cell: impl Fn(usize) -> &'c str) -> bool {
        let skipped = self.cols.skipped(cell);
        self.skipped.by_rule += u64::from(skipped);
        skipped
    }

    /// The event of a row that is not skipped, starting on `line`; `time_is_date` when
    /// the time cell is a workbook's date cell (then written `YYYY-MM-DDTHH:MM:SS`).
    pub(super) fn map<'c>(
        &mut self,
        line: u64,
        cell: impl Fn(usize) -> &'c str,
        time_is_date: bool,
    ) -> RawLine {
        let id_cells: Vec<&str> = self.cols.id.iter().map(|&i| cell(i)).collect();
        let id = self.plan.event_id(&mut self.ids, &id_cells);
        let text = cell(self.cols.time);
        let time = if time_is_date {
            TimeCell::Date(text)
        } else {
            TimeCell::Text(text)
        };
        let fields = &self.cols.fields;
        self.plan.row(line, id, time, |k| cell(fields[k]))
    }

    /// The index of the time column.
    pub(super) fn time_column(&self) -> usize {
        self.cols.time
    }
}

/// The columns (by index) a mapping reads in a file, and its skip rules.
struct Columns {
    /// The id column, or the columns an id is built from.
    id: Vec<usize>,
    time: usize,
    /// One per mapped field, in the plan's order.
    fields: Vec<usize>,
    /// A column and the cell texts (normalised) that make a row skipped.
    skip: Vec<(usize, Vec<String>)>,
    /// A column and the only cell texts (normalised) whose rows are kept.
    keep: Vec<(usize, Vec<String>)>,
}

impl Columns {
    /// Finds each column the mapping names in the header; a missing one is an error.
    fn resolve(plan: &Plan<'_>, headers: &[String]) -> Result<Self, ImportError> {
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h == name.trim())
                .ok_or_else(|| ImportError::MissingColumn {
                    column: name.to_owned(),
                    // A header cell is text from the file: a file without a header row has
                    // data there, so it is shown only as the guard lets it (and cut).
                    found: headers.iter().map(|h| shown_header(h)).collect(),
                })
        };
        let id = match &plan.id {
            IdRule::Column(h) => vec![column(h)?],
            IdRule::Columns(hs) => hs.iter().map(|h| column(h)).collect::<Result<_, _>>()?,
        };
        let time = column(&plan.mapping.occurred_at)?;
        let fields = plan
            .fields
            .iter()
            .map(|f| column(f.header))
            .collect::<Result<_, _>>()?;
        let rules = |table: &BTreeMap<String, Vec<String>>| {
            table
                .iter()
                .map(|(header, values)| {
                    let normalised = values.iter().map(|v| skip_key(v)).collect();
                    column(header).map(|i| (i, normalised))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Columns {
            id,
            time,
            fields,
            skip: rules(&plan.mapping.skip_when)?,
            keep: rules(&plan.mapping.keep_when)?,
        })
    }

    /// Whether a row (its trimmed cells by index) matches a skip rule or misses a keep rule.
    fn skipped<'c>(&self, cell: impl Fn(usize) -> &'c str) -> bool {
        let matches = |(i, values): &(usize, Vec<String>)| values.contains(&skip_key(cell(*i)));
        self.skip.iter().any(matches) || !self.keep.iter().all(matches)
    }
}

/// A cell or a `skip_when` value as compared: trimmed, full-width forms as ASCII.
fn skip_key(s: &str) -> String {
    half_width(s).trim().to_owned()
}

/// Longest header cell shown in an error, in characters.
const MAX_SHOWN_HEADER_CHARS: usize = 64;

/// A header cell as an error may show it: personal numbers masked, cut to 64 characters.
fn shown_header(h: &str) -> String {
    let masked = guard::mask(h);
    if masked.chars().count() <= MAX_SHOWN_HEADER_CHARS {
        masked
    } else {
        // Masked again: the cut can leave 12 digits of a longer run.
        let cut: String = masked.chars().take(MAX_SHOWN_HEADER_CHARS).collect();
        format!("{}…", guard::mask(&cut))
    }
}

/// The data rows of a CSV file (first row the header) as they are read, each mapped to
/// a raw event; blank rows and rows the mapping's rules skip are counted, not emitted.
pub struct CsvRows<'m, R: Read> {
    reader: csv::Reader<Decoded<R>>,
    mapper: Mapper<'m>,
    record: csv::StringRecord,
}

impl<'m, R: Read> CsvRows<'m, R> {
    /// Reads the header of `read` (bytes in `encoding`) and resolves the mapping
    /// against it.
    pub fn new(
        read: R,
        encoding: Encoding,
        mapping: &'m CsvMapping,
        schema: &'m Schema,
    ) -> Result<Self, ImportError> {
        let plan = Plan::new(mapping, schema)?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(plan.delimiter)
            .has_headers(true)
            .flexible(true)
            .buffer_capacity(CSV_BUFFER)
            .from_reader(Decoded::with_lines(read, encoding));
        let headers: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(|h| h.trim().to_owned()).collect(),
            Err(e) => return Err(csv_error(&e, reader.get_mut())),
        };
        let mapper = Mapper::new(plan, &headers)?;
        Ok(CsvRows {
            reader,
            mapper,
            record: csv::StringRecord::new(),
        })
    }

    /// The next record that is not skipped, checked for its width; its line.
    fn advance(&mut self) -> Result<Option<u64>, ImportError> {
        loop {
            let start = self.reader.position().byte();
            match self.reader.read_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => return Err(csv_error(&e, self.reader.get_mut())),
            }
            let at = self.record.position().map_or(start, csv::Position::byte);
            let line = self.reader.get_mut().line_at(at);
            let record = &self.record;
            if record.iter().all(|c| c.trim().is_empty()) {
                self.mapper.skipped.blank += 1;
                continue;
            }
            if record.len() != self.mapper.width {
                return Err(ImportError::Csv {
                    line,
                    message: format!(
                        "the row has {} fields but the header has {}",
                        record.len(),
                        self.mapper.width
                    ),
                });
            }
            if !self.mapper.skips(|i| record.get(i).unwrap_or("").trim()) {
                return Ok(Some(line));
            }
        }
    }

    /// The next row's event; `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<RawLine>, ImportError> {
        let Some(line) = self.advance()? else {
            return Ok(None);
        };
        let record = &self.record;
        Ok(Some(self.mapper.map(
            line,
            |i| record.get(i).unwrap_or("").trim(),
            false,
        )))
    }

    /// Reads the rest of the file without mapping its rows: whether it can be read
    /// whole (encoding, CSV syntax, every row of the header's width).
    pub fn check_rest(mut self) -> Result<Skipped, ImportError> {
        while self.advance()?.is_some() {}
        Ok(self.mapper.skipped)
    }

    /// The rows skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.mapper.skipped
    }

    /// The file bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.get_ref().bytes_read()
    }
}

/// A csv crate error as an [`ImportError`]: the decoder's own error when the text
/// stopped at a malformed byte, else the CSV error at its line.
fn csv_error<R: Read>(e: &csv::Error, text: &mut Decoded<R>) -> ImportError {
    if let Some(cause) = text.take_error() {
        return cause;
    }
    let line = e
        .position()
        .map_or(text.current_line(), |p| text.line_at(p.byte()));
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields but the header has {expected_len}"),
        // The csv crate's messages name positions and lengths, never cell contents.
        _ => e.to_string(),
    };
    ImportError::Csv { line, message }
}

/// The events of an NDJSON file as they are read: one per non-blank line, with its
/// 1-based line number.
pub struct NdjsonRows<R: Read> {
    reader: BufReader<Decoded<R>>,
    line: u64,
    buf: Vec<u8>,
    skipped: Skipped,
}

impl<R: Read> NdjsonRows<R> {
    /// The lines of `read`, bytes in `encoding`.
    pub fn new(read: R, encoding: Encoding) -> Self {
        NdjsonRows {
            reader: BufReader::with_capacity(CSV_BUFFER, Decoded::new(read, encoding)),
            line: 0,
            buf: Vec::new(),
            skipped: Skipped::default(),
        }
    }

    /// The next non-blank line's event; `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<RawLine>, ImportError> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => {
                    let cause = self.reader.get_mut().take_error();
                    return Err(cause.unwrap_or_else(|| ImportError::Io(e.to_string())));
                }
            }
            self.line += 1;
            // Decoded text: a `\n` byte always ends a character.
            let text = String::from_utf8_lossy(&self.buf);
            let text = if self.line == 1 {
                text.trim_start_matches('\u{FEFF}')
            } else {
                &text
            };
            let trimmed = text.trim();
            if trimmed.is_empty() {
                self.skipped.blank += 1;
                continue;
            }
            return Ok(Some(RawLine {
                line: self.line,
                json: trimmed.as_bytes().to_vec(),
                column_error: None,
                error_field: None,
            }));
        }
    }

    /// Reads the rest of the file: whether it can be decoded whole.
    pub fn check_rest(mut self) -> Result<Skipped, ImportError> {
        while self.next_row()?.is_some() {}
        Ok(self.skipped)
    }

    /// The blank lines so far.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }

    /// The file bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.get_ref().bytes_read()
    }
}
