//! The generated Grafana dashboards and Prometheus rules against a real Prometheus
//! (Debian's `prometheus`, on a free loopback port) scraping `mieruka demo`:
//!
//! - every panel query of every dashboard under `deploy/grafana/dashboards/` (and the
//!   PromQL of the templating variables) returns data, for every KPI of the plan where
//!   the query uses `$kpi`, except the series that are absent by design
//!   ([`absent_by_design`]: docs/architecture.md's list, plus what the engine never computes for
//!   milestones);
//! - the committed rules (`deploy/prometheus/rules/mieruka.rules.yml`) load, their
//!   recording rules have data, and `MierukaKpiBehindPace` is pending or firing exactly
//!   for the KPIs whose FY2026 drift (from the demo's `/metrics`) is below −tolerance.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mieruka_aggregator::{FiscalYear, Kpi, Plan};
use serde_json::Value;

use crate::helpers::*;

/// The fiscal year of `DEMO_NOW`.
const FY: FiscalYear = FiscalYear(2026);

/// The recording rule the wait checks: the rules are loaded and evaluated on scraped data.
const RECORDED: &str = "mieruka:kpi_value:current_fy";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A running Prometheus; killed on drop, and its log's tail printed if the test failed.
pub(crate) struct Prometheus {
    child: Child,
    pub(crate) base: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir` scraping `target` (host:port) every second, with the
    /// committed rules evaluated every second.
    fn start(dir: &Path, target: &str) -> Prometheus {
        let rules = workspace().join("deploy/prometheus/rules/mieruka.rules.yml");
        assert!(rules.is_file(), "{} is missing", rules.display());
        // JSON strings are YAML double-quoted strings.
        let quote = |s: &str| serde_json::to_string(s).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: mieruka\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [{}]\n",
            quote(&rules.display().to_string()),
            quote(target),
        );
        Prometheus::with_config(dir, &config, free_port())
    }

    /// Starts Prometheus in `dir` with `config` (its `prometheus.yml`; relative rule
    /// paths are read from `dir`), listening on loopback port `port`.
    pub(crate) fn with_config(dir: &Path, config: &str, port: u16) -> Prometheus {
        if Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            panic!("prometheus is not installed: run ./scripts/test.sh (it installs Debian's prometheus)");
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("prometheus.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let prom = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        // Its API answers once it is ready (which the callers' first query needs).
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{}/-/ready", prom.base)).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prom
    }

    /// GET an API path; the JSON body, or an error text (transport error or non-200).
    pub(crate) fn api(&self, path: &str, query: Option<&str>) -> Result<Value, String> {
        let mut req = ureq::get(&format!("{}{path}", self.base)).timeout(Duration::from_secs(10));
        if let Some(q) = query {
            req = req.query("query", q);
        }
        match req.call() {
            Ok(r) => serde_json::from_str(&r.into_string().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string()),
            Err(ureq::Error::Status(code, r)) => Err(format!(
                "HTTP {code}: {}",
                r.into_string().unwrap_or_default()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// An instant query's `data.result`.
    pub(crate) fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let body = self.api("/api/v1/query", Some(expr))?;
        match body["data"]["result"].as_array() {
            Some(r) if body["status"] == "success" => Ok(r.clone()),
            _ => Err(format!("unexpected reply: {body}")),
        }
    }

    /// Waits until the demo is scraped (target up, a few samples) and the recording
    /// rules have data.
    fn wait_for_data(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            let up = self.api("/api/v1/targets", None).map(|t| {
                t["data"]["activeTargets"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|t| t["health"] == "up"))
            });
            let non_empty = |q: &str| self.query(q).is_ok_and(|r| !r.is_empty());
            match up {
                // Three samples, so rate() and increase() over them have two.
                Ok(true) if non_empty(RECORDED) && non_empty("count_over_time(up[1m]) >= 3") => {
                    return
                }
                Ok(true) => last = format!("target up, but no {RECORDED} or too few samples yet"),
                Ok(false) => last = "target not up yet".into(),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus had no data within 60 s ({last}); is `{RECORDED}` still recorded by the rules?");
    }

    /// The alerts pending or firing now: (alert name, its labels, state).
    pub(crate) fn active_alerts(&self) -> Vec<(String, Value, String)> {
        let alerts = self.api("/api/v1/alerts", None).unwrap();
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "pending" || a["state"] == "firing")
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"].clone(),
                    a["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Stops it with SIGTERM and waits (up to 20 s, then SIGKILL).
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "prometheus exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus did not stop within 20 s of SIGTERM");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {}:\n{}",
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}

/// One query of a dashboard, before Grafana's variables are substituted.
struct DashboardQuery {
    dashboard: String,
    panel: String,
    expr: String,
}

/// Every panel target's `expr` (rows' nested panels included) and the PromQL of the
/// templating variables, of every dashboard JSON in `deploy/grafana/dashboards/`.
fn dashboard_queries() -> Vec<DashboardQuery> {
    fn walk(dashboard: &str, panels: &Value, out: &mut Vec<DashboardQuery>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                    out.push(DashboardQuery {
                        dashboard: dashboard.to_owned(),
                        panel: p["title"].as_str().unwrap_or("").to_owned(),
                        expr: expr.to_owned(),
                    });
                }
            }
            walk(dashboard, &p["panels"], out);
        }
    }
    let dir = workspace().join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        walk(&name, &d["panels"], &mut out);
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" {
                continue; // custom and constant variables carry no PromQL
            }
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .or(v["definition"].as_str())
                .unwrap_or("");
            // Grafana's variable functions, as plain PromQL.
            let expr = if let Some(inner) = q.strip_prefix("query_result(") {
                inner.strip_suffix(')').unwrap_or(inner).to_owned()
            } else if let Some(args) = q.strip_prefix("label_values(") {
                match args.strip_suffix(')').unwrap_or(args).rsplit_once(',') {
                    Some((metric, label)) => format!("count by ({}) ({metric})", label.trim()),
                    None => continue, // label_values(label): every series, nothing to check
                }
            } else {
                q.to_owned()
            };
            out.push(DashboardQuery {
                dashboard: name.clone(),
                panel: format!("variable ${}", v["name"].as_str().unwrap_or("?")),
                expr,
            });
        }
    }
    out
}

/// Grafana's variables: `$kpi` (given), `$fiscal_year` → 2026, the interval macros.
fn substitute(expr: &str, kpi: Option<&str>) -> String {
    let mut e = expr.to_owned();
    if let Some(k) = kpi {
        e = e.replace("${kpi}", k).replace("$kpi", k);
    }
    e.replace("${fiscal_year}", "2026")
        .replace("$fiscal_year", "2026")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// The KPI figure an expression reads: `value` of `mieruka_kpi_value{…}` or of
/// `mieruka:kpi_value:current_fy{…}`.
fn figure_of(expr: &str) -> Option<&str> {
    let at = ["mieruka_kpi_", "mieruka:kpi_"]
        .iter()
        .filter_map(|p| expr.find(p).map(|i| i + p.len()))
        .min()?;
    let rest = &expr[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The `kpi="…"` an expression selects.
fn kpi_label_of(expr: &str) -> Option<&str> {
    let rest = &expr[expr.find("kpi=\"")? + 5..];
    Some(&rest[..rest.find('"')?])
}

/// Why a dashboard query may return nothing on the demo, or `None` when it must return
/// data. docs/architecture.md ("Commands and checks") exempts the figures of a KPI whose target is
/// unset and the Kafka-only consumer lag; the engine (`aggregator/src/figures.rs`) also
/// leaves out, by construction, a milestone's pace, projection and drift, and a value
/// where nothing gives one (no baseline and no event).
fn absent_by_design(expr: &str, kpi: Option<&Kpi>) -> Option<&'static str> {
    if expr.contains("mieruka_consumer_lag") {
        return Some("consumer lag is Kafka-only; the demo is standalone");
    }
    let (Some(kpi), Some(figure)) = (kpi, figure_of(expr)) else {
        return None;
    };
    let milestone = kpi.stages().is_some();
    let target_unset = if expr.contains("fiscal_year=\"") || expr.contains(":current_fy") {
        kpi.target(FY).is_none()
    } else {
        kpi.targets.values().all(Option::is_none)
    };
    // The figures that need a target (status and milestone_status are recorded from them).
    const NEED_TARGET: &[&str] = &[
        "target",
        "pace",
        "attainment_ratio",
        "drift",
        "on_track",
        "status",
        "milestone_target_stage",
        "milestone_status",
    ];
    let is = |names: &[&str]| names.contains(&figure);
    if target_unset && is(NEED_TARGET) {
        Some("the plan sets no target")
    } else if milestone && is(&["pace", "projection", "drift", "on_track", "status"]) {
        Some("a milestone has no pace, projection or drift")
    } else if !milestone
        && is(&[
            "milestone_stage",
            "milestone_target_stage",
            "milestone_status",
        ])
    {
        Some("not a milestone (the panel is for milestones only)")
    } else if milestone
        && kpi.baseline.is_none()
        && is(&[
            "value",
            "milestone_stage",
            "milestone_status",
            "as_of_timestamp_seconds",
        ])
    {
        Some("a milestone without a baseline stage has no value before its first stage event")
    } else if milestone && figure == "as_of_timestamp_seconds" {
        Some("a milestone still at its baseline stage has no event behind it")
    } else if figure == "baseline" && kpi.baseline.is_none() {
        Some("the plan gives no baseline")
    } else {
        None
    }
}

#[test]
fn every_dashboard_query_returns_data_and_behind_kpis_alert_under_a_real_prometheus() {
    let started = Instant::now();
    let plan = Plan::ome().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path());
    let demo_started = started.elapsed();
    let prom = Prometheus::start(dir.path(), demo.base.trim_start_matches("http://"));
    prom.wait_for_data();
    eprintln!(
        "prometheus at {} has data after {:.1?} (demo ready after {demo_started:.1?})",
        prom.base,
        started.elapsed()
    );

    // a. Every dashboard query returns data, unless absent by design.
    let queries = dashboard_queries();
    let (mut ok, mut checked) = (0usize, 0usize);
    let mut failures = Vec::new();
    let mut exempt: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut only_nan = BTreeSet::new();
    for q in &queries {
        let kpis: Vec<Option<&Kpi>> = if q.expr.contains("$kpi") || q.expr.contains("${kpi}") {
            plan.kpis.iter().map(Some).collect()
        } else {
            let kpi = kpi_label_of(&q.expr).and_then(|id| plan.kpis.iter().find(|k| k.id == id));
            vec![kpi]
        };
        for kpi in kpis {
            let expr = substitute(&q.expr, kpi.map(|k| k.id.as_str()));
            checked += 1;
            match prom.query(&expr) {
                Ok(r) if !r.is_empty() => {
                    ok += 1;
                    if r.iter().all(|s| s["value"][1] == "NaN") {
                        only_nan.insert(expr);
                    }
                }
                Ok(_) => match absent_by_design(&expr, kpi) {
                    Some(reason) => {
                        exempt.entry(reason).or_default().insert(format!(
                            "{}:{}",
                            kpi.map_or("-", |k| k.id.as_str()),
                            figure_of(&expr).unwrap_or(&expr)
                        ));
                    }
                    None => failures.push(format!(
                        "{} / {}: no data\n    expr: {}\n    sent: {expr}",
                        q.dashboard, q.panel, q.expr
                    )),
                },
                Err(e) => failures.push(format!(
                    "{} / {}: {e}\n    expr: {}\n    sent: {expr}",
                    q.dashboard, q.panel, q.expr
                )),
            }
        }
    }
    eprintln!(
        "{} dashboard queries, {checked} after substitution: {ok} returned data, {} empty and exempt, {} failed",
        queries.len(),
        exempt.values().map(BTreeSet::len).sum::<usize>(),
        failures.len()
    );
    for (reason, which) in &exempt {
        let which: Vec<&str> = which.iter().map(String::as_str).collect();
        eprintln!("  empty, exempt ({reason}): {}", which.join(", "));
    }
    for e in &only_nan {
        eprintln!("  note: data, but only NaN: {e}");
    }
    assert!(
        failures.is_empty(),
        "{} dashboard queries returned no data or failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("dashboard queries checked after {:.1?}", started.elapsed());

    // b. MierukaKpiBehindPace is pending or firing for the KPIs behind pace, and only them.
    let m = Metrics::parse(&demo.scrape());
    let (mut behind, mut not_behind, mut ahead) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for k in &plan.kpis {
        let (Some(drift), Some(tol)) = (m.kpi("drift", &k.id), m.kpi("tolerance", &k.id)) else {
            continue;
        };
        if drift < -tol {
            behind.insert(k.id.clone());
        } else {
            not_behind.insert(k.id.clone());
            if drift >= 0.0 {
                ahead.insert(k.id.clone());
            }
        }
    }
    assert!(
        !behind.is_empty() && !ahead.is_empty(),
        "the demo should have KPIs behind pace and ahead of it: behind {behind:?}, ahead {ahead:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let alerting = loop {
        let alerts = prom.api("/api/v1/alerts", None).unwrap();
        let alerting: BTreeSet<String> = alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["labels"]["alertname"] == "MierukaKpiBehindPace"
                    && (a["state"] == "pending" || a["state"] == "firing")
            })
            .filter_map(|a| a["labels"]["kpi"].as_str().map(str::to_owned))
            .collect();
        if behind.is_subset(&alerting) || Instant::now() > deadline {
            break alerting;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("behind pace: {behind:?}\nahead of pace: {ahead:?}\nMierukaKpiBehindPace pending or firing: {alerting:?}");
    let missing: Vec<_> = behind.difference(&alerting).collect();
    assert!(
        missing.is_empty(),
        "no MierukaKpiBehindPace within 30 s for KPIs behind pace: {missing:?}"
    );
    let wrong: Vec<_> = alerting.intersection(&not_behind).collect();
    assert!(
        wrong.is_empty(),
        "MierukaKpiBehindPace for KPIs within tolerance or ahead of pace: {wrong:?}"
    );

    prom.stop();
    demo.stop();
    eprintln!("done in {:.1?}", started.elapsed());
}
