//! A file opened for import in two passes, so that a file that cannot be read at all
//! imports nothing while memory stays flat: [`open_file`] reads it whole once (its
//! encoding detected over all of its bytes, then decoded, and a CSV file's syntax,
//! header, columns and every row's width checked), then opens it again for the rows
//! to stream from ([`FileRows`]). A workbook is read once: its sheet is in memory,
//! within the unpacking limit.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::{
    detect_encoding_in, CsvMapping, CsvRows, Encoding, ImportError, NdjsonRows, RawLine, Skipped,
    XlsxRows,
};
use crate::schema::Schema;

/// What kind of file an import reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// One JSON event per line.
    Ndjson,
    /// A header row, then one event per row (through a mapping).
    Csv,
    /// An Excel workbook's sheet (through a mapping).
    Xlsx,
}

impl Format {
    /// The format of a file by its extension: `.csv`/`.tsv`, `.xlsx`, else NDJSON.
    pub fn of(path: &Path) -> Self {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext.eq_ignore_ascii_case("csv") || ext.eq_ignore_ascii_case("tsv") {
            Format::Csv
        } else if ext.eq_ignore_ascii_case("xlsx") {
            Format::Xlsx
        } else {
            Format::Ndjson
        }
    }
}

type FileReader = BufReader<File>;

/// The rows of a file checked whole, as they stream in.
pub enum FileRows<'m> {
    /// An NDJSON file's lines.
    Ndjson(Box<NdjsonRows<FileReader>>),
    /// A CSV file's rows.
    Csv(Box<CsvRows<'m, FileReader>>),
    /// A workbook sheet's rows.
    Xlsx(Box<XlsxRows<'m>>),
}

impl FileRows<'_> {
    /// The next row's event; `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<RawLine>, ImportError> {
        match self {
            FileRows::Ndjson(r) => r.next_row(),
            FileRows::Csv(r) => r.next_row(),
            FileRows::Xlsx(r) => r.next_row(),
        }
    }

    /// The rows skipped so far.
    pub fn skipped(&self) -> Skipped {
        match self {
            FileRows::Ndjson(r) => r.skipped(),
            FileRows::Csv(r) => r.skipped(),
            FileRows::Xlsx(r) => r.skipped(),
        }
    }

    /// How far the import is: bytes read of a text file, rows read of a sheet (out of
    /// what [`open_file`] returned beside the rows).
    pub fn progress(&self) -> u64 {
        match self {
            FileRows::Ndjson(r) => r.bytes_read(),
            FileRows::Csv(r) => r.bytes_read(),
            FileRows::Xlsx(r) => r.rows_read(),
        }
    }
}

/// Opens `path` for import as `format` (CSV and workbooks through `mapping`, which
/// they need): checks it whole, then returns its rows to stream. `encoding` forces the
/// text's encoding, else it is detected. Also returns what [`FileRows::progress`]
/// counts up to.
pub fn open_file<'m>(
    path: &Path,
    format: Format,
    mapping: Option<&'m CsvMapping>,
    encoding: Option<Encoding>,
    schema: &'m Schema,
) -> Result<(FileRows<'m>, u64), ImportError> {
    let open = || {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| ImportError::Io(e.to_string()))
    };
    let need_mapping =
        || ImportError::Mapping("a CSV file or workbook needs a column mapping".to_owned());
    if format == Format::Xlsx {
        let file = File::open(path).map_err(|e| ImportError::Io(e.to_string()))?;
        let rows = XlsxRows::open(file, mapping.ok_or_else(need_mapping)?, schema)?;
        let total = rows.rows();
        return Ok((FileRows::Xlsx(Box::new(rows)), total));
    }
    let size = std::fs::metadata(path)
        .map_err(|e| ImportError::Io(e.to_string()))?
        .len();
    let encoding = match encoding {
        Some(e) => e,
        None => detect_encoding_in(open()?)?,
    };
    let rows = match format {
        Format::Csv => {
            let mapping = mapping.ok_or_else(need_mapping)?;
            CsvRows::new(open()?, encoding, mapping, schema)?.check_rest()?;
            FileRows::Csv(Box::new(CsvRows::new(open()?, encoding, mapping, schema)?))
        }
        _ => {
            NdjsonRows::new(open()?, encoding).check_rest()?;
            FileRows::Ndjson(Box::new(NdjsonRows::new(open()?, encoding)))
        }
    };
    Ok((rows, size))
}
