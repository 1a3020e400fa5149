//! Logs written to a file are plain text (no terminal colour codes), and JSON lines with
//! `MIERUKA_LOG_FORMAT=json`.

use std::process::{Command, Stdio};

use crate::helpers::*;

/// Starts `standalone` with its standard error in a file and `format`, waits until it
/// serves, stops it, and returns what it logged.
fn logged(format: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log = dir.path().join("standalone.log");
    let mut cmd = Command::new(bin());
    cmd.args(["standalone", "--listen", "127.0.0.1:0", "--now", NOW])
        .arg("--db")
        .arg(dir.path().join("m.db"))
        .arg("--config")
        .arg(&config)
        .env("MIERUKA_LOG", "info,sqlx=warn")
        .env_remove("MIERUKA_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(f) = format {
        cmd.env("MIERUKA_LOG_FORMAT", f);
    }
    let app = TestApp::attach(cmd.spawn().unwrap(), config);
    app.post_events(KONBINI_TOKEN, &["{oops".to_owned()]);
    app.stop();
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn logs_to_a_file_are_plain_text() {
    let text = logged(None);
    assert!(
        text.contains("Serving events, metrics and the status page."),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
}

#[test]
fn logs_are_json_lines_on_request() {
    let text = logged(Some("json"));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"] == "Serving events, metrics and the status page."),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
}
