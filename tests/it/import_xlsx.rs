//! `mieruka import` of Excel workbooks (`.xlsx`) through the CSV mappings: the same rows
//! as the CSV fixtures give the same events and figures; a zip bomb is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet};

use crate::helpers::*;
use crate::import::{
    assert_card_holding_rate_is_80, assert_konbini_issuance_rate_is_80, import_file, run_import,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures")
}

/// The rows of a Shift_JIS CSV fixture, cell by cell.
fn csv_rows(name: &str) -> Vec<Vec<String>> {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!bad);
    text.lines()
        .map(|l| {
            let mut r = csv_split(l);
            r.iter_mut().for_each(|c| *c = c.trim().to_owned());
            r
        })
        .collect()
}

/// Splits one CSV line of the fixtures (quoted cells hold commas, no newlines).
fn csv_split(line: &str) -> Vec<String> {
    let (mut cells, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

/// Writes a cell as a person typing it into Excel would store it: numbers (with or
/// without separators, half- or full-width) as numbers, `YYYY/MM/DD hh:mm:ss` as a date
/// cell, anything else as text.
fn write_cell(ws: &mut Worksheet, (r, c): (u32, u16), cell: &str, date: &Format) {
    let ascii: String = cell
        .chars()
        .map(|ch| match ch {
            '０'..='９' => char::from_u32(ch as u32 - 0xFEE0).unwrap(),
            '，' | ',' => ',',
            ch => ch,
        })
        .collect();
    if cell.is_empty() {
        return;
    }
    let is_date = ascii.len() == 19
        && ascii.bytes().zip(b"dddd/dd/dd dd:dd:dd").all(|(b, p)| {
            if *p == b'd' {
                b.is_ascii_digit()
            } else {
                b == *p
            }
        });
    if let Ok(n) = ascii.replace(',', "").parse::<f64>() {
        ws.write_number(r, c, n).unwrap();
    } else if is_date {
        let dt = ExcelDateTime::parse_from_str(&ascii.replace('/', "-")).unwrap();
        ws.write_datetime_with_format(r, c, &dt, date).unwrap();
    } else {
        ws.write_string(r, c, cell).unwrap();
    }
}

/// A workbook of `rows` on sheet `sheet`, after a first sheet `first` when given.
fn workbook(path: &Path, rows: &[Vec<String>], sheet: &str, first: Option<&str>) {
    let mut wb = Workbook::new();
    if let Some(name) = first {
        let ws = wb.add_worksheet();
        ws.set_name(name).unwrap();
        ws.write_string(0, 0, "この表は集計用です").unwrap();
    }
    let date = Format::new().set_num_format("yyyy/mm/dd hh:mm:ss");
    let ws = wb.add_worksheet();
    ws.set_name(sheet).unwrap();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            write_cell(ws, (r as u32, c as u16), cell, &date);
        }
    }
    wb.save(path).unwrap();
}

#[test]
fn a_workbook_with_the_rows_of_the_konbini_csv_gives_the_same_events_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let db = dir.path().join("m.db");
    let book = dir.path().join("konbini.xlsx");
    let rows = csv_rows("konbini_sjis.csv");
    workbook(&book, &rows, "Sheet1", None);

    let (code, out) = import_file(&book, &config, &db, &["--mapping", "konbini"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("4 accepted, 0 duplicate, 2 rejected, 0 skipped by rule"),
        "{out}"
    );
    // The sheet's row numbers, the header's text as the column.
    assert!(
        out.contains("konbini.xlsx:5 column \"交付方法\"") && out.contains("unknown_value"),
        "{out}"
    );
    assert!(
        out.contains("konbini.xlsx:6 column \"交付日時\" does not match time format"),
        "{out}"
    );
    // The same events: the CSV's rows are all duplicates of the workbook's.
    let csv = fixtures().join("konbini_sjis.csv");
    let (_, again) = import_file(&csv, &config, &db, &["--mapping", "konbini"]);
    assert!(
        again.contains("0 accepted, 4 duplicate, 2 rejected"),
        "{again}"
    );

    assert_konbini_issuance_rate_is_80(dir.path(), &db);
}

/// The monthly population export as a workbook: 集計月 typed as Excel dates (the 1st of
/// each month), figures as numbers, on a named sheet after another one.
#[test]
fn a_workbook_sheet_named_by_the_mapping_with_date_cells_as_months_sets_the_same_rate() {
    let dir = tempfile::tempdir().unwrap();
    // Beside the test app's own config (which it writes again at start).
    let config = dir.path().join("juki.toml");
    let mapping = std::fs::read_to_string(fixtures().join("population.mapping.toml")).unwrap();
    let mapping = mapping.replace("keep_when = {", "sheet = \"人口\"\nkeep_when = {");
    let text = std::fs::read_to_string(write_config(dir.path())).unwrap() + &mapping;
    std::fs::write(&config, text).unwrap();
    let mut rows = csv_rows("population_monthly_sjis.csv");
    for row in rows.iter_mut().skip(1) {
        if let Some(month) = row.first_mut() {
            *month = month
                .replace("令和8年8月", "2026/08/01 00:00:00")
                .replace("令和8年9月", "2026/09/01 00:00:00");
        }
    }
    let book = dir.path().join("population.xlsx");
    workbook(&book, &rows, "人口", Some("表紙"));
    let db = dir.path().join("m.db");

    let (code, out) = import_file(&book, &config, &db, &["--mapping", "juki_monthly"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("2 accepted, 0 duplicate, 0 rejected, 9 skipped by rule, 1 blank"),
        "{out}"
    );

    // 令和8年9月's 合計 (128,900, at the month's last day, 23:59:59) as from the CSV.
    assert_card_holding_rate_is_80(dir.path(), &db);

    // A sheet the workbook does not have is a whole-file error naming the sheets.
    let other = std::fs::read_to_string(&config)
        .unwrap()
        .replace("sheet = \"人口\"", "sheet = \"世帯\"");
    std::fs::write(&config, other).unwrap();
    let out = run_import(&book, &config, &db, &["--mapping", "juki_monthly"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("no sheet \"世帯\"") && err.contains("表紙, 人口"),
        "{err}"
    );
}

#[test]
fn a_workbook_that_unpacks_past_the_limit_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[csv_mappings.konbini]\n",
        "[csv_mappings.konbini]\nmax_unpacked_mib = 1\n",
    );
    std::fs::write(&config, text).unwrap();
    // A real workbook, then the same with 8 MiB of padding in its sheet: a thousand
    // to one, as a zip bomb is.
    let book = dir.path().join("ok.xlsx");
    workbook(&book, &csv_rows("konbini_sjis.csv"), "Sheet1", None);
    let bomb = dir.path().join("bomb.xlsx");
    pad_sheet(&book, &bomb, 8 << 20);
    let db = dir.path().join("m.db");

    let out = run_import(&bomb, &config, &db, &["--mapping", "konbini"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unpacks to more than 1 MiB"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    // The workbook itself is within the limit.
    let (code, out) = import_file(&book, &config, &db, &["--mapping", "konbini"]);
    assert!(code == 1 && out.contains("4 accepted"), "{out}");
}

/// Copies the workbook `from` to `to`, its first sheet padded with `pad` spaces.
fn pad_sheet(from: &Path, to: &Path, pad: usize) {
    let mut src = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut dst = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for i in 0..src.len() {
        let mut part = src.by_index(i).unwrap();
        let name = part.name().to_owned();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut part, &mut body).unwrap();
        if name == "xl/worksheets/sheet1.xml" {
            let at = body.windows(11).position(|w| w == b"<sheetData>").unwrap();
            body.splice(at..at, std::iter::repeat_n(b' ', pad));
        }
        dst.start_file(name, deflated).unwrap();
        dst.write_all(&body).unwrap();
    }
    dst.finish().unwrap();
}
