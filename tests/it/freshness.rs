//! When each source was last heard from survives a restart, and the silence alert that
//! rests on it keeps firing, under a real Prometheus evaluating the rules `mieruka rules`
//! generates with a per-source cadence; a file import (`mieruka import`, not HTTP) resets
//! it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::helpers::*;
use crate::prometheus::Prometheus;

const LAST_RECEIVED: &str = "mieruka_source_last_received_timestamp_seconds";

/// The resident registry's cadence in the test: short enough to wait for, long enough
/// that an import clears the alert well before it could come back.
const JUKI_CADENCE_SECONDS: u64 = 15;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The tests' config with a cadence for `juki` and a source (`madoguchi`) that only the
/// rules name: a source known to the config, never heard from.
fn config(dir: &Path) -> std::path::PathBuf {
    let path = write_config(dir);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[rules]\ncadence = {{ juki = \"{JUKI_CADENCE_SECONDS}s\", madoguchi = \"35d\" }}\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn population(id: &str) -> String {
    snapshot(
        id,
        "juki",
        "population.snapshot",
        "population",
        131_000,
        "2026-09-30T09:00:00+09:00",
    )
}

fn heard(app: &TestApp, source: &str) -> Option<f64> {
    Metrics::parse(&app.scrape()).get(LAST_RECEIVED, &[("source", source)])
}

/// `MierukaFeedSilent` pending or firing for `source`.
fn silent(prom: &Prometheus, source: &str) -> bool {
    prom.active_alerts()
        .iter()
        .any(|(name, labels, _)| name == "MierukaFeedSilent" && labels["source"] == source)
}

fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_silent_feed_still_alerts_after_a_restart_and_a_file_import_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let db = dir.path().join("m.db");
    let start = || TestApp::start_configured(&db, &config, Stdio::inherit(), "warn");

    // 1. The resident registry sends once over HTTP.
    let app = start();
    // Configured, never heard from: counted from when it was declared (at the start).
    let declared = heard(&app, "juki").expect("a configured source is exported");
    let before = unix_now();
    app.post_events(CARD_TOKEN, &[population("juki-1")]);
    wait_until(
        Duration::from_secs(10),
        "juki's arrival in the snapshot",
        || heard(&app, "juki") != Some(declared),
    );
    let sent = heard(&app, "juki").unwrap();
    assert!(
        (before - 1.0..unix_now() + 1.0).contains(&sent),
        "{sent} not within the post ({before})"
    );
    // Configured and never heard from: present, counted from when it was declared.
    let konbini = heard(&app, "konbini").expect("a configured source is exported");
    let madoguchi = heard(&app, "madoguchi").expect("a source named only by [rules]");
    app.stop();

    // 2. Restarted: the first scrape already has every source, as before.
    let app = start();
    assert_eq!(heard(&app, "juki"), Some(sent), "juki after the restart");
    assert_eq!(heard(&app, "konbini"), Some(konbini));
    assert_eq!(heard(&app, "madoguchi"), Some(madoguchi));

    // 3. The rules generated with juki's cadence, under a real Prometheus: the silence
    //    alert comes although the role restarted since the last event.
    let rules = dir.path().join("mieruka.rules.yml");
    let out = Command::new(bin())
        .args(["rules", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let prom = Prometheus::with_config(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: mieruka\n    static_configs:\n      - targets: [{}]\n",
            quote(&rules.display().to_string()),
            quote(app.base.trim_start_matches("http://")),
        ),
        free_port(),
    );
    wait_until(
        Duration::from_secs(60),
        "MierukaFeedSilent for juki after the restart",
        || silent(&prom, "juki"),
    );
    assert!(
        unix_now() - sent > JUKI_CADENCE_SECONDS as f64,
        "the alert came before juki's cadence had passed"
    );
    assert!(
        !silent(&prom, "konbini") && !silent(&prom, "madoguchi"),
        "sources within their cadence are not silent: {:?}",
        prom.active_alerts()
    );

    // 4. The monthly file arrives through `mieruka import` (beside the running role):
    //    the source is heard from again, and the alert ends.
    let file = dir.path().join("juki-2026-10.ndjson");
    std::fs::write(&file, population("juki-2") + "\n").unwrap();
    let imported_at = unix_now();
    let (code, summary) = crate::import::import_file(&file, &config, &db, &[]);
    assert!(code == 0 && summary.contains("1 accepted"), "{summary}");
    wait_until(
        Duration::from_secs(10),
        "juki's arrival from the import",
        || heard(&app, "juki").is_some_and(|t| t >= imported_at - 1.0),
    );
    wait_until(
        Duration::from_secs(10),
        "MierukaFeedSilent for juki to end after the import",
        || !silent(&prom, "juki"),
    );
    prom.stop();
    app.stop();
}
