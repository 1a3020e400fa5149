//! The committed Prometheus rules are exactly what `mieruka rules` writes from the
//! deploy config, whose `[sources]` give the Ome sources their cadences and calendars.
//!
//! `MIERUKA_BLESS=1 cargo test --test it deploy_rules` rewrites the file instead.

use std::path::Path;
use std::process::Command;

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
