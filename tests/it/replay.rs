//! A plan edit that changes what a measure counts: refused at start, shown by `mieruka
//! replay`, rebuilt by `replay --apply`, after which the KPI equals a fresh import under
//! the new plan.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// The Ome plan with the konbini measure counting counter certificates instead, and a
/// config naming it.
fn edited_config(dir: &Path) -> PathBuf {
    let ome = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/ome.toml"))
        .unwrap();
    let edited = ome.replacen(
        "where = { channel = \"konbini\" }",
        "where = { channel = \"counter\" }",
        1,
    );
    assert_ne!(edited, ome);
    let plan = dir.join("edited.toml");
    std::fs::write(&plan, edited).unwrap();
    let base = std::fs::read_to_string(write_config(dir)).unwrap();
    let config = dir.join("edited.config.toml");
    std::fs::write(
        &config,
        format!("plan = {:?}\n{base}", plan.display().to_string()),
    )
    .unwrap();
    config
}

/// Runs the binary with `args`; returns (exit code, stdout, stderr).
fn run(args: &[&str], config: &Path, db: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .env("MIERUKA_LOG", "warn")
        .env_remove("KAFKA_BROKERS")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `standalone` on `db` must stop by itself, refusing to start; returns its stderr.
fn refused_standalone(config: &Path, db: &Path) -> String {
    let mut child = Command::new(bin())
        .args(["standalone", "--listen", "127.0.0.1:0", "--now", NOW])
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .env("MIERUKA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "standalone started with a changed plan");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("standalone started with a changed plan (still running after 30 s)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn konbini_rate(config: &Path, db: &Path) -> Option<f64> {
    let app = TestApp::start_configured(db, config, Stdio::inherit(), "warn");
    Metrics::parse(&app.scrape()).kpi("value", "konbini_issuance_rate")
}

#[test]
fn a_plan_edit_changing_a_filter_is_refused_until_replay_apply_and_then_equals_a_fresh_import() {
    let dir = tempfile::tempdir().unwrap();
    let (config, edited) = (write_config(dir.path()), edited_config(dir.path()));
    let events = dir.path().join("certs.ndjson");
    let lines = [
        cert("k1", "konbini", 2, "2026-05-01T10:00:00+09:00"),
        cert("k2", "konbini", 2, "2026-06-01T10:00:00+09:00"),
        cert("k3", "konbini", 2, "2026-07-01T10:00:00+09:00"),
        cert("c1", "counter", 5, "2026-05-02T10:00:00+09:00"),
        cert("c2", "counter", 5, "2026-08-02T10:00:00+09:00"),
    ];
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let file = events.to_str().unwrap();
    let (live, fresh) = (dir.path().join("live.db"), dir.path().join("fresh.db"));

    let (code, out, err) = run(&["import", file], &config, &live);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(konbini_rate(&config, &live), Some(37.5));

    let refusal = refused_standalone(&edited, &live);
    assert!(
        refusal.contains("changed: measure certificates_konbini")
            && refusal.contains("mieruka replay --apply"),
        "{refusal}"
    );

    let (code, out, _) = run(&["replay"], &edited, &live);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("measure certificates_konbini"), "{out}");
    assert!(out.contains("live 6, replayed 10"), "{out}");
    let (code, out, _) = run(&["replay", "--apply"], &edited, &live);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("applied"), "{out}");
    let (code, out, _) = run(&["replay"], &edited, &live);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the live aggregates equal the replay"),
        "{out}"
    );

    let (code, out, err) = run(&["import", file], &edited, &fresh);
    assert_eq!(code, 0, "{out}{err}");
    let rebuilt = konbini_rate(&edited, &live);
    assert_eq!(rebuilt, Some(62.5));
    assert_eq!(rebuilt, konbini_rate(&edited, &fresh));
}
