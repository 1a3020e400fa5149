//! Excel workbooks (`.xlsx`) through the same column mappings as CSV files: the first
//! sheet, or the one the mapping's `sheet` names; its first row is the header, and its
//! columns are found by their header text.
//!
//! Cells become the text a CSV export would hold: a whole number `128900` (never
//! `128900.0`), a fraction as written (`1234.5`), `TRUE`/`FALSE`, an error as Excel
//! shows it (`#N/A`). A date cell is written `YYYY-MM-DDTHH:MM:SS`; in the
//! `occurred_at` column it is read as that date and time at the mapping's `utc_offset`
//! whatever the `time_format` (which applies to text cells), and for a month-only
//! mapping as its month, at `month_day` and `month_time`.
//!
//! An `.xlsx` is a zip archive: before the workbook is parsed, every part of it is
//! unpacked once into nothing, counting bytes, and a workbook that unpacks to more than
//! the limit ([`DEFAULT_MAX_UNPACKED_MIB`], or the mapping's `max_unpacked_mib`) is
//! refused — memory grows by no more than a read buffer while counting, so a zip bomb
//! stops there. Rows are numbered as the sheet numbers them (its header on row 1 when
//! the sheet starts at A1).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};

use calamine::{Data, Range, Reader, Xlsx};

use super::mapping::Plan;
use super::rows::Mapper;
use super::{CsvMapping, ImportError, RawLine, Skipped};
use crate::guard;
use crate::schema::Schema;

/// How many MiB a workbook may unpack to, unless its mapping says otherwise.
pub const DEFAULT_MAX_UNPACKED_MIB: u64 = 256;

/// The data rows of a workbook's sheet, each mapped to a raw event.
pub struct XlsxRows<'m> {
    range: Range<Data>,
    /// The sheet's number of the range's first row (1-based).
    first_row: u64,
    /// The next row of the range to read (0 is the header).
    next: usize,
    mapper: Mapper<'m>,
    /// The row's cells as text, reused.
    cells: Vec<String>,
}

impl<'m> XlsxRows<'m> {
    /// Opens a workbook file, checks what it unpacks to, reads its sheet and resolves
    /// the mapping against the sheet's header row.
    pub fn open(
        file: File,
        mapping: &'m CsvMapping,
        schema: &'m Schema,
    ) -> Result<Self, ImportError> {
        let plan = Plan::new(mapping, schema)?;
        let limit_mib = mapping.max_unpacked_mib.unwrap_or(DEFAULT_MAX_UNPACKED_MIB);
        let mut file = BufReader::new(file);
        check_unpacked(&mut file, limit_mib)?;
        file.rewind().map_err(|e| ImportError::Io(e.to_string()))?;
        let mut book: Xlsx<_> = Xlsx::new(file).map_err(xlsx_error)?;
        let names = book.sheet_names();
        let sheet = match &mapping.sheet {
            Some(name) => names.iter().find(|n| *n == name).ok_or_else(|| {
                ImportError::Xlsx(format!(
                    "the workbook has no sheet {:?}; its sheets are: {}",
                    name,
                    names
                        .iter()
                        .map(|n| guard::mask(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
            None => names
                .first()
                .ok_or_else(|| ImportError::Xlsx("the workbook has no sheet".to_owned()))?,
        }
        .clone();
        let range = book.worksheet_range(&sheet).map_err(xlsx_error)?;
        let first_row = range.start().map_or(1, |(r, _)| u64::from(r) + 1);
        let headers: Vec<String> = range
            .rows()
            .next()
            .map(|row| row.iter().map(|c| cell_text(c).trim().to_owned()).collect())
            .unwrap_or_default();
        let mapper = Mapper::new(plan, &headers)?;
        Ok(XlsxRows {
            range,
            first_row,
            next: 1,
            mapper,
            cells: Vec::new(),
        })
    }

    /// The next row's event; `None` after the sheet's last row.
    pub fn next_row(&mut self) -> Result<Option<RawLine>, ImportError> {
        let time = self.mapper.time_column();
        let width = self.range.width();
        while self.next < self.range.height() {
            let r = self.next;
            let line = self.first_row + r as u64;
            self.next += 1;
            let range = &self.range;
            self.cells.clear();
            self.cells.extend((0..width).map(|c| {
                range
                    .get((r, c))
                    .map_or(String::new(), |d| cell_text(d).trim().to_owned())
            }));
            let cells = &self.cells;
            let cell = |i: usize| cells.get(i).map_or("", String::as_str);
            if cells.iter().all(String::is_empty) {
                self.mapper.skipped.blank += 1;
                continue;
            }
            if self.mapper.skips(cell) {
                continue;
            }
            let is_date =
                matches!(range.get((r, time)), Some(Data::DateTime(d)) if d.is_datetime());
            return Ok(Some(self.mapper.map(line, cell, is_date)));
        }
        Ok(None)
    }

    /// The rows skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.mapper.skipped
    }

    /// The rows read so far, the header included.
    pub fn rows_read(&self) -> u64 {
        self.next as u64
    }

    /// The sheet's rows, the header included.
    pub fn rows(&self) -> u64 {
        self.range.height() as u64
    }
}

/// A calamine error, masked: its text may quote a part of the workbook.
fn xlsx_error(e: calamine::XlsxError) -> ImportError {
    ImportError::Xlsx(guard::mask(&e.to_string()))
}

/// Unpacks every part of the zip archive into nothing, counting its bytes; more than
/// `limit_mib` MiB in all is [`ImportError::TooLarge`].
fn check_unpacked<R: Read + Seek>(read: R, limit_mib: u64) -> Result<(), ImportError> {
    let not_zip = |e: zip::result::ZipError| {
        ImportError::Xlsx(guard::mask(&format!(
            "not an .xlsx workbook (a zip archive): {e}"
        )))
    };
    let limit = limit_mib.saturating_mul(1 << 20);
    let mut zip = zip::ZipArchive::new(read).map_err(not_zip)?;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let part = zip.by_index(i).map_err(not_zip)?;
        let room = limit - total;
        if part.size() > room {
            return Err(ImportError::TooLarge { limit_mib });
        }
        // The declared size may lie: count what really comes out, one byte past the room.
        let n = io::copy(&mut part.take(room + 1), &mut io::sink())
            .map_err(|e| ImportError::Xlsx(guard::mask(&format!("a broken part: {e}"))))?;
        if n > room {
            return Err(ImportError::TooLarge { limit_mib });
        }
        total += n;
    }
    Ok(())
}

/// A cell as the text a CSV export would hold.
fn cell_text(c: &Data) -> String {
    match c {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Data::Error(e) => e.to_string(),
        Data::DateTime(d) if d.is_datetime() => {
            let (y, mo, day, h, mi, s, ms) = d.to_ymd_hms_milli();
            // Excel keeps milliseconds; a time rounds to the nearest second (within
            // its day).
            let secs = u32::from(h) * 3600 + u32::from(mi) * 60 + u32::from(s);
            let secs = (secs + u32::from(ms >= 500)).min(86_399);
            let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}")
        }
        // A duration (`[h]:mm:ss`) as its number of days.
        Data::DateTime(d) => number_text(d.as_f64()),
    }
}

/// A number as written in a cell: whole numbers without a fraction (`128900`).
fn number_text(f: f64) -> String {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() < EXACT {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_a_csv_export_writes_them() {
        assert_eq!(number_text(128_900.0), "128900");
        assert_eq!(number_text(-3.0), "-3");
        assert_eq!(number_text(1234.5), "1234.5");
        assert_eq!(number_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(cell_text(&Data::Bool(true)), "TRUE");
        assert_eq!(cell_text(&Data::Int(7)), "7");
    }

    #[test]
    fn date_cells_are_written_as_iso_dates_rounded_to_the_second() {
        use calamine::{ExcelDateTime, ExcelDateTimeType};
        let dt = |v| Data::DateTime(ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        // 2026-05-01 10:15:00 is serial 46143 + 10.25/24.
        assert_eq!(
            cell_text(&dt(46_143.0 + 10.25 / 24.0)),
            "2026-05-01T10:15:00"
        );
        assert_eq!(cell_text(&dt(46_143.0)), "2026-05-01T00:00:00");
    }
}
