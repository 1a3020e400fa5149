//! Keys a city can manage, end to end with the real binary: `token new` makes a token
//! and the entry holding its SHA-256, a rollover accepts the old and the new token, an
//! expired token is refused 401 and counted under its name, and the token list reloads
//! without a restart, on a change of the config file and on SIGHUP.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{bin, cert, tail, Metrics, TestApp, NOW};

/// A fresh token of `name` from `mieruka token new`: (the token, the config entry).
fn token_new(name: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new(bin())
        .args(["token", "new", name, "--type", "certificate.issued"])
        .args(extra)
        .env_remove("MIERUKA_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let token = lines.next().unwrap().to_owned();
    let entry: String = lines.map(|l| format!("{l}\n")).collect();
    assert_eq!(token.len(), 43, "32 random bytes in base64url: {token}");
    assert!(!entry.contains(&token), "the entry holds only the digest");
    (token, entry)
}

/// Writes a config of `entries` (and `head`, the settings before them).
fn write(path: &Path, head: &str, entries: &[&str]) {
    std::fs::write(path, format!("{head}\n{}", entries.join("\n"))).unwrap();
}

/// The status of posting one certificate event with `token`.
fn post(app: &TestApp, token: &str, id: &str) -> (u16, serde_json::Value) {
    let line = cert(id, "konbini", 1, "2026-09-01T10:00:00+09:00");
    app.post(Some(token), "application/x-ndjson", &line)
}

/// Waits (up to 15 s) until posting with `token` answers `status`.
fn until_status(app: &TestApp, token: &str, status: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        n += 1;
        let (got, body) = post(app, token, &format!("wait-{status}-{n}"));
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {got} ({body}), not {status}, after 15 s; log:\n{}",
            tail(log, 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start(dir: &Path, config: &Path) -> (TestApp, std::path::PathBuf) {
    let log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let app = TestApp::start_configured(&dir.join("m.db"), config, Stdio::from(stderr), "info");
    (app, log)
}

#[test]
fn a_rollover_accepts_both_tokens_and_an_expired_one_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mieruka.toml");
    let head = "refresh_seconds = 1\ntokens_reload_seconds = 1\n";
    let (old, old_entry) = token_new("konbini", &[]);
    write(&config, head, &[&old_entry]);
    let (app, log) = start(dir.path(), &config);
    assert_eq!(post(&app, &old, "e-1").0, 200);

    // The rollover: a second entry of the same line system, taken from the changed file.
    let (new, new_entry) = token_new("konbini", &[]);
    assert_eq!(post(&app, &new, "e-2").0, 401, "not configured yet");
    write(&config, head, &[&old_entry, &new_entry]);
    until_status(&app, &new, 200, &log);
    assert_eq!(post(&app, &old, "e-3").0, 200, "the old token still works");

    // The old one is given an expiry, passed at the role's --now.
    assert!(NOW.starts_with("2026-10-01"));
    let expired = format!("{old_entry}expires = \"2026-09-30T23:59:59+09:00\"\n");
    write(&config, head, &[&expired, &new_entry]);
    until_status(&app, &old, 401, &log);
    let (status, body) = post(&app, &old, "e-4");
    assert_eq!(status, 401);
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert_eq!(post(&app, &new, "e-5").0, 200);

    let m = Metrics::parse(&app.scrape());
    let expired = [("token", "konbini"), ("reason", "expired")];
    assert!(m.get("mieruka_auth_failures_total", &expired).unwrap() >= 2.0);
    assert!(m.get("mieruka_http_refused_total", &expired).unwrap() >= 2.0);
    let unknown = [("token", "unknown"), ("reason", "unknown_token")];
    assert!(m.get("mieruka_auth_failures_total", &unknown).unwrap() >= 1.0);
    app.stop();

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("Reloaded the tokens."), "{log}");
    assert!(!log.contains("deprecated"), "token_sha256 alone: {log}");
    for secret in [&old, &new] {
        assert!(!log.contains(secret.as_str()), "a token in the log:\n{log}");
    }
}

#[test]
fn sighup_reloads_the_tokens_and_a_broken_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mieruka.toml");
    // No polling: only the signal reloads.
    let head = "refresh_seconds = 1\ntokens_reload_seconds = 0\n";
    let plain = "[[tokens]]\nname = \"legacy\"\ntoken = \"legacy-secret-in-clear\"\nsources = [\"konbini\"]\n";
    let (old, old_entry) = token_new("konbini", &["--source", "konbini"]);
    write(&config, head, &[&old_entry, plain]);
    let (app, log) = start(dir.path(), &config);
    assert_eq!(post(&app, "legacy-secret-in-clear", "e-0").0, 200);

    let (new, new_entry) = token_new("konbini-2027", &["--source", "konbini"]);
    write(&config, head, &[&old_entry, &new_entry]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        post(&app, &new, "e-1").0,
        401,
        "no reload without the signal"
    );
    let hup = |app: &TestApp| {
        let pid = app.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    };
    hup(&app);
    until_status(&app, &new, 200, &log);
    assert_eq!(
        post(&app, "legacy-secret-in-clear", "e-2").0,
        401,
        "dropped by the reload"
    );

    // A file that does not parse, or a token without a key, changes nothing.
    for broken in [
        "[[tokens]\n",
        "[[tokens]]\nname = \"x\"\nsources = [\"konbini\"]\n",
    ] {
        let was = std::fs::read_to_string(&log)
            .unwrap()
            .matches("not reloaded")
            .count();
        write(&config, head, &[broken]);
        hup(&app);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&log)
            .unwrap()
            .matches("not reloaded")
            .count()
            == was
        {
            assert!(
                Instant::now() < deadline,
                "no error logged:\n{}",
                tail(&log, 20)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(post(&app, &new, "e-3").0, 200);
        assert_eq!(post(&app, &old, "e-4").0, 200);
    }
    app.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("deprecated"),
        "a token in clear warns at start: {log}"
    );
    assert!(log.contains("has no key"), "the reason is logged: {log}");
    assert!(!log.contains("legacy-secret-in-clear"), "{log}");
}
