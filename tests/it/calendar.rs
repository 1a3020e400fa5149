//! Office calendars end to end: a source's `[sources]` cadence and calendar give its
//! next-due instant on /metrics, and the committed Prometheus rules are exactly what
//! `mieruka rules` writes from the deploy config, whose `[sources]` give the Ome sources
//! their cadences and calendars.
//!
//! `MIERUKA_BLESS=1 cargo test --test it calendar` rewrites the rules file instead.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::helpers::{cert, write_config, TestApp, KONBINI_TOKEN};

/// The end of Monday 2026-10-05 in JST (2026-10-05T15:00Z).
const END_OF_MONDAY: f64 = 1_791_212_400.0;

#[test]
fn a_scheduled_source_is_next_due_after_closed_days() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    // The tests' "now" is Thursday 2026-10-01 00:00 JST; the city closes Friday 10/2.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[calendars.city]\nclosures = [\"2026-10-02\"]\n\n\
         [sources.konbini]\nname = \"コンビニ交付\"\ncadence = \"daily\"\ncalendar = \"city\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let app =
        TestApp::start_configured(&dir.path().join("m.db"), &config, Stdio::inherit(), "warn");
    app.post_events(
        KONBINI_TOKEN,
        &[cert("k-1", "konbini", 1, "2026-09-30T10:00:00+09:00")],
    );
    let m = app.metrics_after_commit();
    let next_due = "mieruka_source_next_due_timestamp_seconds";
    // Friday is closed, then the weekend: due by the end of Monday.
    assert_eq!(
        m.get(next_due, &[("source", "konbini")]),
        Some(END_OF_MONDAY)
    );
    // The card system has no cadence, so no due instant.
    assert_eq!(m.get(next_due, &[("source", "card")]), None);
    app.stop();
}

const RULES: &str = "deploy/prometheus/rules/mieruka.rules.yml";
const CONFIG: &str = "deploy/config/ingest.toml";

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
