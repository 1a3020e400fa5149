//! The council report (`mieruka report`) on the demo store, read back in every format:
//! the xlsx's values are the numbers `/metrics` served (numbers, not text), the CSV's
//! too, the HTML has every KPI with the status page's label, and the PDF printed by
//! headless Chromium is rendered to PNG pages with pdftoppm, kept as test artefacts
//! (`<target dir>/test-artifacts/report-page-N.png`). From PostgreSQL (`--database-url`)
//! holding the demo's history the report reads the same as from the demo's SQLite store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use calamine::{open_workbook, Data, Reader, Xlsx};
use mieruka_aggregator::Plan;

use crate::browser::artifacts_dir;
use crate::helpers::*;

/// Runs `mieruka report` on `db` at the demo's "now"; returns the output file.
fn report(dir: &Path, db: &Path, format: &str, path: Option<&str>) -> (PathBuf, Output) {
    report_from(dir, db, format, path, None)
}

/// [`report`], from PostgreSQL when `database_url` is given.
fn report_from(
    dir: &Path,
    db: &Path,
    format: &str,
    path: Option<&str>,
    database_url: Option<&str>,
) -> (PathBuf, Output) {
    let out = dir.join(format!("report.{format}"));
    let mut cmd = Command::new(bin());
    cmd.args([
        "report", "--fy", "2026", "--now", DEMO_NOW, "--format", format,
    ])
    .arg("--db")
    .arg(db)
    .arg("--out")
    .arg(&out)
    .env("MIERUKA_LOG", "warn")
    .env_remove("MIERUKA_CONFIG")
    .env_remove("MIERUKA_PLAN")
    .env_remove("DATABASE_URL");
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    if let Some(url) = database_url {
        cmd.arg("--database-url").arg(url);
    }
    let output = cmd.output().unwrap();
    (out, output)
}

fn ok(format: &str, output: &Output) {
    assert!(
        output.status.success(),
        "mieruka report --format {format}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Each KPI's `data-status` on an HTML page (the status page or the report).
fn labels(html: &str) -> BTreeMap<String, String> {
    html.split("data-kpi=\"")
        .skip(1)
        .filter_map(|rest| {
            let (id, rest) = rest.split_once('"')?;
            let tag = rest.split('>').next()?;
            let status = tag.split_once("data-status=\"")?.1.split('"').next()?;
            Some((id.to_owned(), status.to_owned()))
        })
        .collect()
}

/// (KPI id → the value cell) of every chapter sheet: the row whose first cell is a
/// KPI's id, fourth column (基準値, 目標, 値 …).
fn xlsx_values(path: &Path, plan: &Plan) -> BTreeMap<String, Data> {
    let mut book: Xlsx<_> = open_workbook(path).unwrap();
    let sheets = book.sheet_names();
    assert_eq!(sheets.len(), plan.chapters.len() + 1, "{sheets:?}");
    let mut values = BTreeMap::new();
    for name in &sheets[1..] {
        let range = book.worksheet_range(name).unwrap();
        for row in range.rows() {
            if let Some(Data::String(id)) = row.first() {
                if plan.kpi(id).is_some() {
                    let v = row.get(3).cloned().unwrap_or(Data::Empty);
                    assert!(values.insert(id.clone(), v).is_none(), "{id} twice");
                }
            }
        }
    }
    values
}

#[test]
fn the_council_report_says_what_metrics_and_the_status_page_say() {
    let plan = Plan::ome().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path());
    let metrics = Metrics::parse(&demo.scrape());
    let status = ureq::get(&format!("{}/", demo.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    demo.stop();
    let db = dir.path().join("demo.db");

    // xlsx: every KPI's value cell is the number /metrics serves, or empty where it
    // serves none.
    let (xlsx, output) = report(dir.path(), &db, "xlsx", None);
    ok("xlsx", &output);
    let values = xlsx_values(&xlsx, &plan);
    assert_eq!(values.len(), plan.kpis.len());
    let mut numbers = 0;
    for kpi in &plan.kpis {
        match (metrics.kpi("value", &kpi.id), &values[&kpi.id]) {
            (Some(m), Data::Float(x)) => {
                assert!(
                    (m - x).abs() <= 1e-9 * m.abs().max(1.0),
                    "{}: xlsx {x}, /metrics {m}",
                    kpi.id
                );
                numbers += 1;
            }
            (None, Data::Empty) => {}
            (m, x) => panic!("{}: xlsx {x:?}, /metrics {m:?}", kpi.id),
        }
    }
    assert!(numbers >= plan.kpis.len() / 2, "only {numbers} values");

    // CSV: a byte-order mark, then one row per KPI with the same values.
    let (csv, output) = report(dir.path(), &db, "csv", None);
    ok("csv", &output);
    let text = std::fs::read(&csv).unwrap();
    assert!(text.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    let mut rows = csv::Reader::from_reader(&text[3..]);
    let mut n = 0;
    for rec in rows.records() {
        let rec = rec.unwrap();
        let m = metrics.kpi("value", &rec[1]);
        assert_eq!(rec[7].parse::<f64>().ok(), m, "{rec:?}");
        n += 1;
    }
    assert_eq!(n, plan.kpis.len());

    // HTML: every KPI, with the status page's label, the year in 令和, no script.
    let (html, output) = report(dir.path(), &db, "html", None);
    ok("html", &output);
    let html = std::fs::read_to_string(html).unwrap();
    let (ours, page) = (labels(&html), labels(&status));
    assert_eq!(ours.len(), plan.kpis.len());
    assert_eq!(
        ours, page,
        "the report's labels differ from the status page's"
    );
    for kpi in &plan.kpis {
        assert!(
            html.contains(&kpi.name_ja.replace('&', "&amp;")),
            "{}",
            kpi.id
        );
    }
    assert!(html.contains("令和8年度") && html.contains("2026-11-25 12:00 JST"));
    assert!(html.contains("速報値") && html.contains("<svg class=\"chart large\""));
    assert!(!html.contains("<script") && !html.contains("src=\"http"));

    pdf_pages(dir.path(), &db);
}

/// The PDF, rendered to PNG pages kept as artefacts.
fn pdf_pages(dir: &Path, db: &Path) {
    let (pdf, output) = report(dir, db, "pdf", None);
    ok("pdf", &output);
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    let artifacts = artifacts_dir();
    for old in std::fs::read_dir(&artifacts).unwrap().flatten() {
        if old.file_name().to_string_lossy().starts_with("report-page") {
            let _ = std::fs::remove_file(old.path()); // never judge stale pages
        }
    }
    let status = Command::new("pdftoppm")
        .args(["-r", "60", "-png"])
        .arg(&pdf)
        .arg(artifacts.join("report-page"))
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run pdftoppm ({e}): run ./scripts/test.sh (it installs poppler-utils)")
        });
    assert!(status.success(), "pdftoppm exited with {status}");
    let pages: Vec<u64> = std::fs::read_dir(&artifacts)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("report-page"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    eprintln!(
        "report: {} PDF pages in {}",
        pages.len(),
        artifacts.display()
    );
    // A cover, at least a page per chapter, the definitions.
    assert!(pages.len() >= 5, "{} pages", pages.len());
    assert!(pages.iter().all(|&n| n > 5_000), "a blank page? {pages:?}");
}

#[test]
fn a_pdf_without_a_browser_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    // A store with nothing in it is enough: the browser is looked for before printing.
    let app = TestApp::start(dir.path(), &db);
    app.stop();
    let empty = dir.path().join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let (out, output) = report(dir.path(), &db, "pdf", Some(empty.to_str().unwrap()));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("install Chromium"), "{stderr}");
    assert!(!out.exists());
    // Without a store at all, nothing is created.
    let (_, output) = report(dir.path(), &dir.path().join("none.db"), "html", None);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no store at"));
}

#[test]
fn the_report_reads_a_postgresql_store_when_given_its_url() {
    use mieruka::demo::{generate, DemoOptions};
    use mieruka_aggregator::store::PgStore;
    use mieruka_ingest::{item, Position, Timestamp};

    let plan = std::sync::Arc::new(Plan::ome().unwrap());
    let pg = mieruka_testkit::pg::TestDb::create_blocking("mieruka_report").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The demo's history, as `mieruka demo` generates it (same now, same default seed),
    // written into a fresh PostgreSQL database through the store's own API …
    let now = Timestamp::parse_rfc3339(DEMO_NOW).unwrap();
    let lines = generate(&plan, &DemoOptions { now, seed: 2026 });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = PgStore::open(pg.url(), plan.clone()).await.unwrap();
        const BATCH: usize = 5_000;
        for (n, chunk) in lines.chunks(BATCH).enumerate() {
            let items = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    item(
                        &plan.schema,
                        l.as_bytes(),
                        Position::Index(n * BATCH + i),
                        "demo",
                    )
                })
                .collect();
            store.submit_batch(items).await.unwrap();
        }
        store.close().await;
    });
    // … and by `mieruka demo` itself into SQLite.
    let db = dir.path().join("demo.db");
    let output = Command::new(bin())
        .args(["demo", "--no-serve", "--now", DEMO_NOW, "--db"])
        .arg(&db)
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_CONFIG")
        .env_remove("MIERUKA_PLAN")
        .output()
        .unwrap();
    ok("demo", &output);

    // No SQLite file at all: only PostgreSQL can answer.
    let none = dir.path().join("none.db");
    let (csv, output) = report_from(dir.path(), &none, "csv", None, Some(pg.url()));
    ok("csv", &output);
    let from_pg = std::fs::read(&csv).unwrap();
    assert!(!none.exists(), "the report created a SQLite file");
    // The SQLite run (whose values are /metrics', see the test above) says the same, row
    // for row: values, targets, pace, projections and labels.
    let (csv, output) = report(dir.path(), &db, "csv", None);
    ok("csv", &output);
    let from_sqlite = std::fs::read(&csv).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_pg),
        String::from_utf8_lossy(&from_sqlite)
    );
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(&from_pg[3..])
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), plan.kpis.len());
    // Not two empty stores agreeing: most KPIs have a value.
    let valued = rows.iter().filter(|r| !r[7].is_empty()).count();
    assert!(
        valued >= plan.kpis.len() / 2,
        "only {valued} values from PostgreSQL"
    );
}
