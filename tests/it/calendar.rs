//! Office calendars end to end: a source's `[sources]` cadence and calendar give its
//! next-due instant on /metrics, and the committed Prometheus rules are exactly what
//! `mieruka rules` writes from the deploy config, whose `[sources]` give the Ome sources
//! their cadences and calendars.
//!
//! `MIERUKA_BLESS=1 cargo test --test it calendar` rewrites the rules file instead.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use mieruka_exporter::calendar::{end_of_jst_day, jst_day, Cadence, Calendar, Schedule};
use mieruka_ingest::timestamp::civil_from_days;

use crate::helpers::{cert, write_config, TestApp, KONBINI_TOKEN};

const RULES: &str = "deploy/prometheus/rules/mieruka.rules.yml";
const CONFIG: &str = "deploy/config/export.toml";

#[test]
fn a_scheduled_source_is_next_due_after_closed_days() {
    // The store keeps the wall-clock instant a source was heard from: close the city
    // for the three days after today (JST), so the next open day is at least four away.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let today = jst_day(now);
    let closed: Vec<i64> = (1..=3).map(|k| today + k).collect();
    let dates: Vec<String> = closed
        .iter()
        .map(|&d| {
            let (y, m, dd) = civil_from_days(d);
            format!("\"{y:04}-{m:02}-{dd:02}\"")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[calendars.city]\nweekends = false\nholidays = false\nclosures = [{}]\n\n\
         [sources.konbini]\nname = \"コンビニ交付\"\ncadence = \"daily\"\ncalendar = \"city\"\n",
        dates.join(", ")
    ));
    std::fs::write(&config, text).unwrap();
    let app =
        TestApp::start_configured(&dir.path().join("m.db"), &config, Stdio::inherit(), "warn");
    app.post_events(
        KONBINI_TOKEN,
        &[cert("k-1", "konbini", 1, "2026-09-30T10:00:00+09:00")],
    );
    let m = app.metrics_after_commit();
    let heard = m
        .get(
            "mieruka_source_last_received_timestamp_seconds",
            &[("source", "konbini")],
        )
        .unwrap();
    let due = m
        .get(
            "mieruka_source_next_due_timestamp_seconds",
            &[("source", "konbini")],
        )
        .unwrap();
    let schedule = Schedule {
        cadence: Cadence::Daily,
        calendar: Calendar {
            weekends: false,
            holidays: false,
            new_year: true,
            closures: closed.iter().copied().collect(),
        },
    };
    assert_eq!(due, schedule.next_due(heard) as f64);
    // The closures counted: not due before the end of the last closed day's next day.
    assert!(due >= end_of_jst_day(today + 4) as f64, "{due}");
    // The card system has no cadence, so no due instant.
    assert_eq!(
        m.get(
            "mieruka_source_next_due_timestamp_seconds",
            &[("source", "card")]
        ),
        None
    );
    app.stop();
}

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_mieruka"))
        .current_dir(root)
        .args(["rules", "--config", CONFIG])
        .env_remove("MIERUKA_PLAN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mieruka rules failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_committed_rules_are_generated_from_the_deploy_config() {
    let text = generate();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES);
    if std::env::var("MIERUKA_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == text,
        "{RULES} is stale: run `mieruka rules --config {CONFIG} --out {RULES}`"
    );
    // Every Ome source is judged by its calendar, none by the 2-day default.
    for source in ["konbini", "madoguchi", "juki", "dx_office"] {
        assert!(
            text.contains(&format!(
                "mieruka_source_next_due_timestamp_seconds{{source=\\\"{source}\\\"}}"
            )),
            "{source} has no due-based silence alert"
        );
    }
}
