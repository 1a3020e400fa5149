//! The report as an Excel workbook: a cover sheet, then one sheet per chapter where each
//! KPI is a small table — its names, a header row whose figures carry the KPI's unit,
//! and one row of numbers (numbers, not text, so they can be summed and charted).

use anyhow::Context;
use mieruka_aggregator::Kpi;
use mieruka_exporter::report::{Report, Row};
use mieruka_exporter::revisions::{has_begun, plan_revisions};
use rust_xlsxwriter::{Format, Workbook, Worksheet};

/// The longest sheet name Excel accepts.
const SHEET_NAME_MAX: usize = 31;

/// The workbook's bytes.
pub fn workbook(report: &Report<'_>) -> anyhow::Result<Vec<u8>> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    cover(book.add_worksheet(), report, &bold)?;
    for chapter in &report.plan.chapters {
        let sheet = book.add_worksheet();
        sheet.set_name(sheet_name(&chapter.id, &chapter.name_ja))?;
        sheet.write_string_with_format(
            0,
            0,
            format!("{}. {} {}", chapter.id, chapter.name_ja, chapter.name_en),
            &bold,
        )?;
        sheet.set_column_width(0, 34)?;
        for c in 1..=7 {
            sheet.set_column_width(c, 20)?;
        }
        let mut r = 2;
        for row in report.rows(chapter) {
            r = kpi_table(sheet, r, &row, &bold)? + 1;
        }
    }
    if !plan_revisions(report.plan).is_empty() {
        revisions(book.add_worksheet(), report, &bold)?;
    }
    book.save_to_buffer()
        .context("cannot build the xlsx workbook")
}

/// The first sheet: the plan, the year both ways and the as-of instant.
fn cover(sheet: &mut Worksheet, report: &Report<'_>, bold: &Format) -> anyhow::Result<()> {
    let plan = report.plan;
    sheet.set_name("表紙 Cover")?;
    sheet.set_column_width(0, 28)?;
    sheet.set_column_width(1, 60)?;
    let lines = [
        ("市 City", plan.city.clone()),
        ("計画 Plan", format!("{} / {}", plan.name_ja, plan.name_en)),
        ("報告 Report", "進捗報告 KPI progress report".to_owned()),
        ("年度 Fiscal year", report.year_name()),
        ("集計時点 As of", report.as_of_jst()),
        ("速報/確定 Provisional/final", {
            let (ja, en) = report.finality_notice();
            format!("{ja} {en}")
        }),
    ];
    for (r, (k, v)) in lines.iter().enumerate() {
        sheet.write_string_with_format(r as u32, 0, *k, bold)?;
        sheet.write_string(r as u32, 1, v)?;
    }
    Ok(())
}

/// One KPI at row `r`: names, headers with the unit, the numbers. Returns the next
/// free row.
fn kpi_table(sheet: &mut Worksheet, r: u32, row: &Row<'_>, bold: &Format) -> anyhow::Result<u32> {
    let kpi = row.kpi;
    sheet.write_string_with_format(r, 0, format!("{} {}", kpi.name_ja, kpi.name_en), bold)?;
    sheet.write_string_with_format(r + 1, 0, "KPI", bold)?;
    let unit = unit_label(kpi);
    let figures = row.figures();
    for (c, (ja, en, _)) in figures.iter().enumerate() {
        let header = format!("{ja} {en} ({unit})");
        sheet.write_string_with_format(r + 1, c as u16 + 1, header, bold)?;
    }
    sheet.write_string_with_format(r + 1, 6, "状況 Status", bold)?;
    sheet.write_string_with_format(r + 1, 7, "速報/確定 Provisional/final", bold)?;
    sheet.write_string(r + 2, 0, &kpi.id)?;
    for (c, (_, _, x)) in figures.iter().enumerate() {
        if let Some(x) = x {
            sheet.write_number(r + 2, c as u16 + 1, *x)?;
        }
    }
    let st = row.status;
    sheet.write_string(r + 2, 6, format!("{} {}", st.ja(), st.en()))?;
    sheet.write_string(
        r + 2,
        7,
        format!("{} {}", row.finality.ja(), row.finality.en()),
    )?;
    Ok(r + 3)
}

/// The last sheet, when the plan has revised targets (目標値の改定): one row per
/// revision, with the target it replaced, its day, the decision and whether it is in
/// force at the report's instant.
fn revisions(sheet: &mut Worksheet, report: &Report<'_>, bold: &Format) -> anyhow::Result<()> {
    sheet.set_name("目標値の改定 Revisions")?;
    sheet.write_string_with_format(0, 0, "目標値の改定 Target revisions", bold)?;
    let headers = [
        "KPI",
        "名称 Name",
        "単位 Unit",
        "年度 Fiscal year",
        "改定前 Previous",
        "改定後 Revised",
        "適用日 In force from",
        "決定 Decision",
        "状態 At the as-of",
    ];
    for (c, head) in headers.iter().enumerate() {
        sheet.write_string_with_format(2, c as u16, *head, bold)?;
        sheet.set_column_width(c as u16, if c == 7 { 40 } else { 18 })?;
    }
    for (i, (kpi, step)) in plan_revisions(report.plan).into_iter().enumerate() {
        let (r, rev) = (i as u32 + 3, step.revision);
        sheet.write_string(r, 0, &kpi.id)?;
        sheet.write_string(r, 1, format!("{} {}", kpi.name_ja, kpi.name_en))?;
        sheet.write_string(r, 2, unit_label(kpi))?;
        sheet.write_number(r, 3, f64::from(rev.year.0))?;
        if let Some(p) = step.previous {
            sheet.write_number(r, 4, p)?;
        }
        sheet.write_number(r, 5, rev.target)?;
        sheet.write_string(r, 6, rev.from.to_string())?;
        sheet.write_string(r, 7, &rev.decision)?;
        let state = if has_begun(rev, report.at) {
            "適用済み Applied"
        } else {
            "適用前 Not yet in force"
        };
        sheet.write_string(r, 8, state)?;
    }
    Ok(())
}

/// The unit a KPI's numbers are in, for a header: `%`, `人 people / FY`, or the stage
/// index of a milestone (0 is its first stage).
fn unit_label(kpi: &Kpi) -> String {
    if kpi.stages().is_some() {
        return "段階番号 stage index".to_owned();
    }
    match &kpi.counter_ja {
        Some(c) => format!("{c} {}", kpi.unit),
        None => kpi.unit.clone(),
    }
}

/// `1 市民サービスのDX` cut to Excel's 31 characters, without the characters a sheet
/// name may not hold.
fn sheet_name(id: &str, name: &str) -> String {
    format!("{id} {name}")
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
        .take(SHEET_NAME_MAX)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_fit_excel() {
        let long = "あ".repeat(40);
        assert_eq!(sheet_name("1", &long).chars().count(), SHEET_NAME_MAX);
        assert_eq!(sheet_name("2", "a/b:c"), "2 abc");
    }
}
