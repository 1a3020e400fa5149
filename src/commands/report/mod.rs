//! `mieruka report`: the council report (進捗報告) of one fiscal year as of one instant,
//! from the store the settings point to (PostgreSQL's when a URL is given, else the
//! embedded SQLite file), as HTML, PDF (the HTML printed by headless Chromium), xlsx
//! (one sheet per chapter) or CSV (one row per KPI). The content is
//! [`mieruka_exporter::report::Report`]: the status page's figures, rule and charts.

mod pdf;
mod xlsx;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use mieruka_aggregator::store::{PgStore, Store};
use mieruka_aggregator::{figures, Day, Figure, FiscalYear, Ledger, Plan, SqliteStore};
use mieruka_exporter::report::Report;
use mieruka_exporter::trend::{trends_of_year, Trends};
use mieruka_ingest::Timestamp;

use crate::config::Resolved;

/// The report's file formats.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// One self-contained HTML file.
    Html,
    /// The HTML printed to PDF by headless Chromium.
    Pdf,
    /// An Excel workbook, one sheet per chapter.
    Xlsx,
    /// One row per KPI, UTF-8 with a byte-order mark.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "html" => Ok(Format::Html),
            "pdf" => Ok(Format::Pdf),
            "xlsx" => Ok(Format::Xlsx),
            "csv" => Ok(Format::Csv),
            _ => Err(format!(
                "{s:?} is not a report format: pdf, html, xlsx or csv"
            )),
        }
    }
}

/// What to report on.
#[derive(Clone, Debug)]
pub struct Request {
    /// The fiscal year (`--fy 2026`).
    pub year: FiscalYear,
    /// The day (JST) whose end the figures are as of (`--as-of`); default: now.
    pub as_of: Option<Day>,
    /// The format.
    pub format: Format,
}

impl Request {
    /// The request of the command line: `--as-of` is a day, `YYYY-MM-DD`.
    pub fn parse(fy: i32, as_of: Option<&str>, format: Format) -> anyhow::Result<Request> {
        let as_of = as_of
            .map(|d| {
                d.parse::<Day>()
                    .map_err(|e| anyhow::anyhow!("--as-of {d:?} is not a day (YYYY-MM-DD): {e}"))
            })
            .transpose()?;
        Ok(Request {
            year: FiscalYear(fy),
            as_of,
            format,
        })
    }
}

/// Writes the report `req` asks for to `out`.
pub async fn run(settings: &Resolved, req: &Request, out: &Path) -> anyhow::Result<ExitCode> {
    let plan = settings.plan.clone();
    let now = settings.now.unwrap_or_else(Timestamp::wall_clock);
    let at = instant(&plan, req, now)?;
    let (figs, trends) = load(settings, &plan, req.year, at).await?;
    let report = Report {
        plan: &plan,
        year: req.year,
        at,
        figures: &figs,
        trends: &trends,
    };
    let bytes = match req.format {
        Format::Html => report.html_with_sources(&settings.directory).into_bytes(),
        Format::Pdf => pdf::print(&report.html_with_sources(&settings.directory))?,
        Format::Xlsx => xlsx::workbook(&report)?,
        Format::Csv => csv(&report)?,
    };
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "mieruka report: {} {} as of {} → {}",
        report.year_name(),
        format!("{:?}", req.format).to_lowercase(),
        report.as_of_jst(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The instant of the report: the end of `--as-of` (JST), never later than `now`; a
/// year outside the plan, or one not started by then, is refused.
fn instant(plan: &Plan, req: &Request, now: Timestamp) -> anyhow::Result<Timestamp> {
    if !plan.years().any(|y| y == req.year) {
        let years: Vec<String> = plan.years().map(|y| y.to_string()).collect();
        anyhow::bail!(
            "--fy {}: the plan has no such year (its years: {})",
            req.year,
            years.join(", ")
        );
    }
    let at = match req.as_of {
        Some(day) => {
            let end = Timestamp::from_micros(Day(day.0 + 1).start().micros() - 1);
            end.min(now)
        }
        None => now,
    };
    if at < req.year.start() {
        anyhow::bail!(
            "FY{} has not started by {}: nothing to report",
            req.year,
            mieruka_exporter::report::jst_text(at)
        );
    }
    Ok(at)
}

/// The figures at `at` and the months of `year`, from PostgreSQL when a URL is given,
/// else from the SQLite file (which must exist: a report never creates a store).
async fn load(
    settings: &Resolved,
    plan: &std::sync::Arc<Plan>,
    year: FiscalYear,
    at: Timestamp,
) -> anyhow::Result<(Vec<Figure>, Trends)> {
    let compute = |l: &Ledger| (figures(plan, l, at), trends_of_year(plan, l, year, at));
    if let Ok(url) = settings.database_url() {
        let store = PgStore::open(url, plan.clone())
            .await
            .context("cannot open the PostgreSQL store")?;
        let r = settled(&store, compute, at).await;
        store.close().await;
        return r;
    }
    let db = &settings.db;
    if !db.exists() {
        anyhow::bail!(
            "no store at {} (pass --db, or --database-url for PostgreSQL)",
            db.display()
        );
    }
    let store = SqliteStore::open(db, plan.clone()).await?;
    let r = settled(&store, compute, at).await;
    store.close().await;
    r
}

/// The figures and trends of `compute` over the store's ledger, the closed years'
/// figures made final.
async fn settled<S: Store>(
    store: &S,
    compute: impl FnOnce(&Ledger) -> (Vec<Figure>, Trends),
    at: Timestamp,
) -> anyhow::Result<(Vec<Figure>, Trends)> {
    let (mut figs, trends) = compute(&store.ledger().await?);
    store.closes().await?.settle(&mut figs, at);
    Ok((figs, trends))
}

/// One row per KPI, numbers as plain decimals in the KPI's unit, UTF-8 with a
/// byte-order mark so that Excel reads the Japanese right.
fn csv(report: &Report<'_>) -> anyhow::Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    w.write_record([
        "chapter",
        "kpi",
        "name_ja",
        "name_en",
        "unit",
        "baseline",
        "target",
        "value",
        "pace",
        "projection",
        "status",
        "status_ja",
        "status_en",
        "finality",
        "fiscal_year",
        "as_of",
    ])?;
    let (year, as_of) = (report.year.to_string(), report.as_of_jst());
    for chapter in &report.plan.chapters {
        for row in report.rows(chapter) {
            let mut rec = vec![
                chapter.id.clone(),
                row.kpi.id.clone(),
                row.kpi.name_ja.clone(),
                row.kpi.name_en.clone(),
                row.kpi.unit.clone(),
            ];
            rec.extend(
                row.figures()
                    .iter()
                    .map(|(_, _, x)| x.map_or(String::new(), |x| x.to_string())),
            );
            rec.extend([
                row.status.id().to_owned(),
                row.status.ja().to_owned(),
                row.status.en().to_owned(),
                row.finality.en().to_lowercase(),
                year.clone(),
                as_of.clone(),
            ]);
            w.write_record(&rec)?;
        }
    }
    w.into_inner().context("cannot write the CSV")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn req(fy: i32, as_of: Option<&str>) -> Request {
        Request::parse(fy, as_of, Format::Html).unwrap()
    }

    #[test]
    fn as_of_is_the_end_of_the_day_in_jst_and_never_after_now() {
        let plan = Plan::ome().unwrap();
        let now = ts("2026-11-25T12:00:00+09:00");
        let end_of_september = ts("2026-10-01T00:00:00+09:00").micros() - 1;
        let at = instant(&plan, &req(2026, Some("2026-09-30")), now).unwrap();
        assert_eq!(at.micros(), end_of_september);
        assert_eq!(instant(&plan, &req(2026, None), now).unwrap(), now);
        let today = instant(&plan, &req(2026, Some("2026-11-25")), now).unwrap();
        assert_eq!(today, now);
    }

    #[test]
    fn a_year_outside_the_plan_or_not_started_is_refused() {
        let plan = Plan::ome().unwrap();
        let now = ts("2026-11-25T12:00:00+09:00");
        let err = instant(&plan, &req(2040, None), now).unwrap_err();
        assert!(err.to_string().contains("no such year"), "{err}");
        let err = instant(&plan, &req(2027, None), now).unwrap_err();
        assert!(err.to_string().contains("has not started"), "{err}");
        let err = Request::parse(2026, Some("2026-13-01"), Format::Csv).unwrap_err();
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        assert_eq!("PDF".parse::<Format>(), Ok(Format::Pdf));
        assert!("docx".parse::<Format>().is_err());
    }
}
