//! Dated target revisions (`[[kpi.revisions]]`): the binary serves the target in force
//! at its `--now` (and pace from it), and the history shows in the report (HTML and
//! xlsx), on the KPI's page and in `explain`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use calamine::{open_workbook, Data, Reader, Xlsx};
use mieruka_aggregator::plan::OME_PLAN;

use crate::helpers::*;

const KPI: &str = "mynumber_card_holding_rate";
const DECISION: &str = "令和8年第3回定例会で改定";
/// The KPI after the holding rate in the Ome plan: a `[[kpi.revisions]]` table belongs
/// to the `[[kpi]]` above it, so the revisions go right before this one.
const NEXT_KPI: &str = "[[kpi]]\nid = \"konbini_issuance_rate\"";

/// The Ome plan with the holding rate's FY2026 target revised from 84.6 to 86.0 on
/// 2026-09-01, and its FY2027 target revised on a day still to come.
fn write_revised_plan(dir: &Path) -> PathBuf {
    let revisions = format!(
        "[[kpi.revisions]]\nfiscal_year = 2026\ntarget = 86.0\nfrom = \"2026-09-01\"\ndecision = \"{DECISION}\"\n\
         [[kpi.revisions]]\nfiscal_year = 2027\ntarget = 87.0\nfrom = \"2027-06-15\"\ndecision = \"令和9年第2回定例会で改定\"\n\n{NEXT_KPI}"
    );
    let text = OME_PLAN.replacen(NEXT_KPI, &revisions, 1);
    assert_ne!(text, OME_PLAN, "the konbini KPI moved in the Ome plan");
    let path = dir.join("revised.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `mieruka standalone` with the revised plan at `now`, ready.
fn serve(db: &Path, config: &Path, plan: &Path, now: &str) -> TestApp {
    let child = Command::new(bin())
        .args(["standalone", "--listen", "127.0.0.1:0", "--now", now])
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .arg("--plan")
        .arg(plan)
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_PLAN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    TestApp::attach(child, config.to_owned())
}

fn target(m: &Metrics, fy: &str) -> Option<f64> {
    m.get("mieruka_kpi_target", &[("kpi", KPI), ("fiscal_year", fy)])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A `mieruka` command on the store, with the revised plan at `now`.
fn run(args: &[&str], db: &Path, plan: &Path, now: &str) -> Output {
    let out = Command::new(bin())
        .args(args)
        .arg("--db")
        .arg(db)
        .arg("--plan")
        .arg(plan)
        .args(["--now", now])
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_CONFIG")
        .env_remove("MIERUKA_PLAN")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mieruka {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn metrics_serve_the_target_in_force_and_the_report_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let (db, config) = (dir.path().join("m.db"), write_config(dir.path()));
    let plan = write_revised_plan(dir.path());

    // Before the revision's day: the original target, and pace towards it. The year
    // starts at 100,000 / 120,000 = 83.3 % (snapshots before April 1).
    let before = "2026-08-15T12:00:00+09:00";
    let app = serve(&db, &config, &plan, before);
    let at = "2026-03-31T12:00:00+09:00";
    app.post_events(
        CARD_TOKEN,
        &[
            snapshot(
                "h1",
                "card",
                "mynumber_card.holders_snapshot",
                "holders",
                100_000,
                at,
            ),
            snapshot(
                "p1",
                "juki",
                "population.snapshot",
                "population",
                120_000,
                at,
            ),
        ],
    );
    let m = app.metrics_after_commit();
    assert_eq!(target(&m, "2026"), Some(84.6));
    assert_eq!(target(&m, "2027"), Some(85.8));
    assert_pace_towards(&m, 84.6);
    app.stop();

    // After it: the revised target, and pace towards it; FY2027's revision has not
    // begun, so its target is still the original.
    let app = serve(&db, &config, &plan, NOW);
    let m = Metrics::parse(&app.scrape());
    assert_eq!(target(&m, "2026"), Some(86.0));
    assert_eq!(target(&m, "2027"), Some(85.8));
    assert_eq!(
        m.get(
            "mieruka_kpi_target",
            &[("kpi", "konbini_issuance_rate"), ("fiscal_year", "2026")]
        ),
        Some(plans_konbini_target()),
        "a KPI without revisions keeps its target"
    );
    assert_pace_towards(&m, 86.0);
    let page = ureq::get(&format!("{}/kpi/{KPI}", app.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("目標値の改定"), "{page}");
    assert!(
        page.contains(DECISION) && page.contains("2026-09-01"),
        "{page}"
    );
    app.stop();

    report_html(dir.path(), &db, &plan);
    report_xlsx(dir.path(), &db, &plan);
    explain(&db, &plan);
}

/// The konbini issuance rate's FY2026 target in the shipped plan.
fn plans_konbini_target() -> f64 {
    let plan = mieruka_aggregator::Plan::ome().unwrap();
    plan.kpi("konbini_issuance_rate")
        .unwrap()
        .target(mieruka_aggregator::FiscalYear(2026))
        .unwrap()
}

/// Pace is B + (T − B)·f with B = 83.3 % (the year's opening snapshots) and T `t`.
fn assert_pace_towards(m: &Metrics, t: f64) {
    let b = 100_000.0 / 120_000.0 * 100.0;
    let f = m
        .get("mieruka_kpi_elapsed_ratio", &[("fiscal_year", "2026")])
        .unwrap();
    let pace = m.kpi("pace", KPI).unwrap();
    assert!(close(pace, b + (t - b) * f), "pace {pace}, want toward {t}");
}

fn report_html(dir: &Path, db: &Path, plan: &Path) {
    let out = dir.join("report.html");
    let mut args = vec!["report", "--fy", "2026", "--format", "html", "--out"];
    let out_s = out.to_str().unwrap();
    args.push(out_s);
    run(&args, db, plan, NOW);
    let html = std::fs::read_to_string(&out).unwrap();
    let section = &html[html
        .find("id=\"target-revisions\"")
        .expect("no revisions section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("目標値の改定"), "{section}");
    let fy2026 = section
        .split("<tr data-kpi=")
        .find(|r| r.contains("data-fiscal-year=\"2026\""))
        .unwrap();
    assert!(
        fy2026.contains("84.6") && fy2026.contains("86.0"),
        "{fy2026}"
    );
    assert!(fy2026.contains("2026-09-01") && fy2026.contains(DECISION));
    assert!(fy2026.contains("適用済み"), "{fy2026}");
    let fy2027 = section
        .split("<tr data-kpi=")
        .find(|r| r.contains("data-fiscal-year=\"2027\""))
        .unwrap();
    assert!(fy2027.contains("適用前"), "{fy2027}");
}

fn report_xlsx(dir: &Path, db: &Path, plan: &Path) {
    let out = dir.join("report.xlsx");
    let args = [
        "report",
        "--fy",
        "2026",
        "--format",
        "xlsx",
        "--out",
        out.to_str().unwrap(),
    ];
    run(&args, db, plan, NOW);
    let mut book: Xlsx<_> = open_workbook(&out).unwrap();
    // The KPI's row on its chapter sheet shows the target in force (column 2, 目標).
    let mut in_force = None;
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name).unwrap();
        for row in range.rows() {
            if row.first() == Some(&Data::String(KPI.to_owned())) && !name.contains("Revisions") {
                in_force = row.get(2).cloned();
            }
        }
    }
    assert_eq!(in_force, Some(Data::Float(86.0)));
    let range = book.worksheet_range("目標値の改定 Revisions").unwrap();
    let rows: Vec<Vec<Data>> = range
        .rows()
        .filter(|r| r.first() == Some(&Data::String(KPI.to_owned())))
        .map(<[Data]>::to_vec)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][3], Data::Float(2026.0));
    assert_eq!(
        (&rows[0][4], &rows[0][5]),
        (&Data::Float(84.6), &Data::Float(86.0))
    );
    assert_eq!(rows[0][6], Data::String("2026-09-01".into()));
    assert_eq!(rows[0][7], Data::String(DECISION.into()));
    assert_eq!(rows[1][8], Data::String("適用前 Not yet in force".into()));
}

fn explain(db: &Path, plan: &Path) {
    let out = run(&["explain", KPI, "--fy", "2026"], db, plan, NOW);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("target T = 86\n"), "{text}");
    assert!(text.contains("target history (FY2026):"), "{text}");
    assert!(text.contains("the plan's original: 84.6\n"), "{text}");
    assert!(
        text.contains(&format!("from 2026-09-01: 86 ({DECISION}) ← in force")),
        "{text}"
    );
    // As of a day before the revision, the original target was in force.
    let out = run(
        &["explain", KPI, "--as-of", "2026-08-31", "--json"],
        db,
        plan,
        NOW,
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["target"], 84.6);
    let history = e["target_history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["in_force"], true);
    assert_eq!(history[1]["from"], "2026-09-01");
    assert_eq!(history[1]["in_force"], false);
}
