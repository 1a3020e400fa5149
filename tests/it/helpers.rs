//! `TestApp`: a running `mieruka standalone` process and the helpers tests speak through.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// "Now" for every test: mid-FY2026, so pace and projection are defined.
pub const NOW: &str = "2026-10-01T00:00:00+09:00";

/// The tokens every test config carries.
pub const KONBINI_TOKEN: &str = "t-konbini";
pub const CARD_TOKEN: &str = "t-card";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mieruka")
}

/// A config file with two line systems: konbini (certificates only) and the card
/// system (card events and population snapshots), plus the konbini CSV mapping.
pub fn write_config(dir: &Path) -> PathBuf {
    let mapping = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures/konbini.mapping.toml"),
    )
    .unwrap();
    // The config holds only each token's SHA-256, as `mieruka token new` writes it.
    let konbini = mieruka_ingest::http::keys::token_sha256(KONBINI_TOKEN);
    let card = mieruka_ingest::http::keys::token_sha256(CARD_TOKEN);
    let text = format!(
        r#"
refresh_seconds = 1
max_body_bytes = 1048576

[[tokens]]
name = "konbini"
token_sha256 = "{konbini}"
sources = ["konbini"]
types = ["certificate.issued"]

[[tokens]]
name = "card"
token_sha256 = "{card}"
sources = ["card", "juki"]
types = ["mynumber_card.issued", "mynumber_card.surrendered", "mynumber_card.holders_snapshot", "population.snapshot", "event.voided"]

{mapping}
"#
    );
    let path = dir.join("mieruka.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `mieruka standalone`.
pub struct TestApp {
    pub child: Child,
    pub base: String,
    pub config: PathBuf,
}

impl TestApp {
    /// Starts the binary on a free port with the given database and waits until ready.
    pub fn start(dir: &Path, db: &Path) -> TestApp {
        let config = write_config(dir);
        TestApp::start_configured(db, &config, Stdio::inherit(), "warn")
    }

    /// Starts `standalone` with a config file of the test's, its standard error going to
    /// `stderr` at log level `log`, and waits until ready.
    pub fn start_configured(db: &Path, config: &Path, stderr: Stdio, log: &str) -> TestApp {
        let config = config.to_owned();
        let child = Command::new(bin())
            .args(["standalone", "--listen", "127.0.0.1:0", "--now", NOW])
            .arg("--db")
            .arg(db)
            .arg("--config")
            .arg(&config)
            .env("MIERUKA_LOG", log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        TestApp::attach(child, config)
    }

    /// A started role whose standard output is piped: its address from the first line it
    /// prints, once it is ready.
    pub fn attach(mut child: Child, config: PathBuf) -> TestApp {
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in the first line: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        let app = TestApp {
            child,
            base,
            config,
        };
        app.wait_ready();
        app
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = ureq::get(&format!("{}/readyz", self.base)).call() {
                if r.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not ready within 30 s");
    }

    /// Posts an NDJSON body with a token; returns (status, body).
    pub fn post(
        &self,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        self.post_bytes(token, content_type, body.as_bytes())
    }

    /// Posts a body of raw bytes; returns (status, body as JSON, or as a string).
    pub fn post_bytes(
        &self,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let mut req =
            ureq::post(&format!("{}/v1/events", self.base)).set("Content-Type", content_type);
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Posts NDJSON lines with a token and expects 200.
    pub fn post_events(&self, token: &str, lines: &[String]) -> serde_json::Value {
        let (status, body) = self.post(Some(token), "application/x-ndjson", &lines.join("\n"));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The /metrics text.
    pub fn scrape(&self) -> String {
        ureq::get(&format!("{}/metrics", self.base))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// Waits for the snapshot after a committed batch (it refreshes right after each).
    pub fn metrics_after_commit(&self) -> Metrics {
        std::thread::sleep(Duration::from_millis(300));
        Metrics::parse(&self.scrape())
    }

    /// Stops the process with SIGTERM and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "standalone exited with {status}");
    }

    /// Kills the process with SIGKILL: no chance to finish anything.
    pub fn kill9(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parsed Prometheus text: (metric name, sorted labels) → value.
pub struct Metrics(pub BTreeMap<(String, String), f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut map = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut labels: Vec<&str> = split_labels(labels);
            labels.sort_unstable();
            map.insert(
                (name.to_owned(), labels.join(",")),
                value.parse::<f64>().unwrap(),
            );
        }
        Metrics(map)
    }

    /// The value of a series, labels given as `k="v"` pairs in any order.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        l.sort();
        self.0.get(&(name.to_owned(), l.join(","))).copied()
    }

    /// A KPI figure for FY2026.
    pub fn kpi(&self, figure: &str, kpi: &str) -> Option<f64> {
        self.get(
            &format!("mieruka_kpi_{figure}"),
            &[("kpi", kpi), ("fiscal_year", "2026")],
        )
    }
}

fn split_labels(s: &str) -> Vec<&str> {
    // Label values here never contain `",`; splitting on it is enough for tests.
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("\",") {
        out.push(&rest[..=i]);
        rest = &rest[i + 2..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// A certificate event of the konbini system.
pub fn cert(id: &str, channel: &str, count: u32, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","source":"konbini","type":"certificate.issued","occurred_at":"{at}","data":{{"channel":"{channel}","certificate":"juminhyo","count":{count}}}}}"#
    )
}

/// A snapshot of the card system or the resident registry.
pub fn snapshot(id: &str, source: &str, ty: &str, field: &str, value: u64, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","source":"{source}","type":"{ty}","occurred_at":"{at}","data":{{"{field}":{value}}}}}"#
    )
}

/// "Now" for `mieruka demo` in tests: late in FY2026 (65 % elapsed), so every figure of
/// the synthetic history is defined and some KPIs are behind pace.
pub const DEMO_NOW: &str = "2026-11-25T12:00:00+09:00";

/// Starts `mieruka demo` on a free port with its database in `dir` and waits until it
/// serves (it ingests ~360k synthetic events first: up to a minute in a debug build).
/// The returned `TestApp` kills the process on drop; `stop()` ends it with SIGTERM.
pub fn start_demo(dir: &Path) -> TestApp {
    start_demo_with_config(dir, None)
}

/// [`start_demo`] with a config file of this text (e.g. `[sources.NAME]` tables).
pub fn start_demo_with_config(dir: &Path, config: Option<&str>) -> TestApp {
    let mut cmd = Command::new(bin());
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--now", DEMO_NOW])
        .arg("--db")
        .arg(dir.join("demo.db"))
        .env("MIERUKA_LOG", "warn")
        .env_remove("MIERUKA_CONFIG")
        .env_remove("MIERUKA_PLAN");
    if let Some(text) = config {
        let path = dir.join("demo-config.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // From here on the process is killed on drop, whatever happens.
    let mut app = TestApp {
        child,
        base: String::new(),
        config: PathBuf::new(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps draining stdout after the URL is found, so the pipe never fills.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(180);
    let mut seen = Vec::new();
    app.base = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                // "  status page  http://127.0.0.1:PORT/", "  metrics      http://…/metrics"
                if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                    let authority = url["http://".len()..].split('/').next().unwrap_or("");
                    break format!("http://{authority}");
                }
                seen.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("mieruka demo printed no URL within 180 s; stdout so far: {seen:?}")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                "mieruka demo exited ({:?}) before printing its URL; stdout: {seen:?}",
                app.child.try_wait()
            ),
        }
    };
    app.wait_ready();
    eprintln!(
        "mieruka demo serving at {} after {:.1?}",
        app.base,
        started.elapsed()
    );
    app
}

/// A free loopback port: bound, read and released (a server started right after takes it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The last `n` lines of a log file (for a failed test's output).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
