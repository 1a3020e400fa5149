#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The generated Prometheus rules and Grafana dashboards, checked against the plan and by
//! the tools that consume them: the committed files are fresh, `promtool check rules`
//! and `promtool test rules` (series in, exact alerts out), every dashboard is sound
//! JSON with one row per chapter and a stat per KPI, and `deploy/` validates
//! (`promtool check config`, `amtool check-config`, `docker-compose config`, and the
//! Kubernetes manifests through `deploy/k8s/check.py`).
//!
//! The tools are Debian packages that `scripts/test.sh` installs; a test that needs a
//! missing one fails and says so (it never skips silently).
//!
//! `MIERUKA_BLESS=1 cargo test -p mieruka-exporter --test rules` rewrites the generated
//! files instead of comparing them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mieruka_aggregator::{FiscalYear, Plan};
use mieruka_exporter::calendar::{Cadence, Calendar, Schedule};
use mieruka_exporter::dashboards::{self, dashboards};
use mieruka_exporter::rules::{
    self, alert_annotations, rules_yaml, RulesOptions, ScheduledSource, Slot,
};
use serde_json::Value;

const STALE: &str = "run `mieruka dashboards --out deploy/grafana/dashboards`";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn ome() -> Plan {
    Plan::ome().unwrap()
}

/// The tool's path, or a failure that says how to get it.
fn require(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed: run scripts/test.sh, which installs what the tests need \
             (here Debian's `{package}`: apt-get install -y --no-install-recommends {package})"
        )
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

// ---------------------------------------------------------------------------------------
// The committed generated files.

#[test]
fn generated_files_are_up_to_date() {
    let plan = ome();
    let root = root();
    let bless = std::env::var("MIERUKA_BLESS").is_ok_and(|v| v == "1");
    // The committed rules come from deploy/config/export.toml's [sources]; the root
    // crate's `calendar::the_committed_rules_are_generated_from_the_deploy_config` test
    // (tests/it/calendar.rs), which reads that config, keeps them fresh.
    let mut files = Vec::new();
    let dir = root.join(dashboards::DASHBOARDS_DIR);
    for (name, text) in dashboards(&plan) {
        files.push((dir.join(name), text));
    }
    let mut stale = Vec::new();
    for (path, text) in &files {
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        } else if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.strip_prefix(&root).unwrap().display().to_string());
        }
    }
    // A dashboard that is no longer generated must not linger in Grafana.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") && !files.iter().any(|(p, _)| *p == path) {
            stale.push(format!(
                "{} (no longer generated: delete it)",
                path.strip_prefix(&root).unwrap().display()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are stale against the plan: {}\n{STALE}",
        stale.join(", ")
    );
}

#[test]
fn every_alert_links_to_a_runbook_section() {
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).unwrap();
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for alert in rules::ALERTS {
        assert!(
            anchors.contains(&alert.to_ascii_lowercase()),
            "docs/runbook.md has no `## {alert}` section"
        );
    }
    let yaml = rules_yaml(&ome(), &RulesOptions::default());
    for line in yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
    {
        let url: String = serde_json::from_str(line).unwrap();
        let (base, anchor) = url.split_once('#').unwrap();
        assert_eq!(base, rules::DEFAULT_RUNBOOK_BASE);
        assert!(
            anchors.iter().any(|a| a == anchor),
            "{url}: no such section"
        );
    }
}

#[test]
fn each_kpi_with_a_target_has_its_alerts_and_each_milestone_year_its_deadline() {
    let plan = ome();
    let yaml = rules_yaml(&plan, &RulesOptions::default());
    let count = |needle: &str| yaml.matches(needle).count();
    for kpi in &plan.kpis {
        let sel = format!("{{kpi=\\\"{}\\\"}}", kpi.id);
        let with_target = kpi.targets.values().any(Option::is_some);
        match kpi.stages() {
            None if with_target => assert!(
                yaml.contains(&format!("mieruka:kpi_drift:current_fy{sel} <")),
                "{}: no behind-pace rule",
                kpi.id
            ),
            None => assert!(!yaml.contains(&sel), "{}: rules without a target", kpi.id),
            Some(_) => {
                let years = kpi.targets.values().filter(|t| t.is_some()).count();
                assert_eq!(
                    count(&format!("mieruka_kpi_milestone_stage{sel}")),
                    years,
                    "{}: one overdue rule per year with a target stage",
                    kpi.id
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// promtool.

#[test]
fn promtool_accepts_the_generated_rules() {
    let promtool = require("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mieruka.rules.yml");
    std::fs::write(&file, rules_yaml(&ome(), &RulesOptions::default())).unwrap();
    let out = run(Command::new(&promtool).arg("check").arg("rules").arg(&file));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_accepts_the_prometheus_config_and_its_rule_files() {
    let promtool = require("promtool", "prometheus");
    let out = run(Command::new(&promtool)
        .arg("check")
        .arg("config")
        .arg(root().join("deploy/prometheus/prometheus.yml")));
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(
        out.contains("mieruka.rules.yml"),
        "the rules are not loaded:\n{out}"
    );
}

/// A `promtool test rules` file, written as YAML by hand (JSON strings are YAML).
struct UnitTests {
    rule_file: PathBuf,
    /// How often promtool evaluates the rules: coarse where alerts wait for days (each
    /// evaluation runs every rule), fine where they wait for minutes.
    evaluation_interval: &'static str,
    tests: Vec<String>,
}

struct Case {
    name: &'static str,
    /// Time between input samples: at most Prometheus' 5-minute lookback, or the
    /// rules evaluated between samples would see no data.
    interval: &'static str,
    series: Vec<(String, String)>,
    checks: Vec<String>,
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl Case {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            interval: "5m",
            series: Vec::new(),
            checks: Vec::new(),
        }
    }

    fn series(mut self, name: &str, values: &str) -> Self {
        self.series.push((name.to_owned(), values.to_owned()));
        self
    }

    /// The current fiscal year is FY2026, 30 % elapsed, for the whole test.
    fn fy2026(self) -> Self {
        self.series(
            "mieruka_kpi_elapsed_ratio{fiscal_year=\"2025\"}",
            "1+0x4800",
        )
        .series(
            "mieruka_kpi_elapsed_ratio{fiscal_year=\"2026\"}",
            "0.3+0x4800",
        )
        .series(
            "mieruka_kpi_elapsed_ratio{fiscal_year=\"2027\"}",
            "0+0x4800",
        )
    }

    /// One KPI's FY2026 figures; each value is a promtool series expression.
    fn kpi(mut self, kpi: &str, figures: &[(&str, &str)]) -> Self {
        for (figure, values) in figures {
            self = self.series(
                &format!("mieruka_kpi_{figure}{{kpi=\"{kpi}\",fiscal_year=\"2026\"}}"),
                values,
            );
        }
        self
    }

    /// At `eval_time`, exactly these alerts of `alertname` fire.
    fn expect(mut self, eval_time: &str, alertname: &str, alerts: &[Alert]) -> Self {
        let mut s = format!(
            "      - eval_time: {eval_time}\n        alertname: {alertname}\n        exp_alerts:"
        );
        if alerts.is_empty() {
            s.push_str(" []\n");
        } else {
            s.push('\n');
            for a in alerts {
                s.push_str("          - exp_labels:\n");
                for (k, v) in &a.labels {
                    s.push_str(&format!("              {k}: {}\n", q(v)));
                }
                s.push_str("            exp_annotations:\n");
                for (k, v) in &a.annotations {
                    s.push_str(&format!("              {k}: {}\n", q(v)));
                }
            }
        }
        self.checks.push(s);
        self
    }
}

impl UnitTests {
    fn add(&mut self, case: Case) {
        let mut s = format!(
            "  - name: {}\n    interval: {}\n    input_series:\n",
            q(case.name),
            case.interval
        );
        for (name, values) in &case.series {
            s.push_str(&format!(
                "      - series: {}\n        values: {}\n",
                q(name),
                q(values)
            ));
        }
        s.push_str("    alert_rule_test:\n");
        for c in &case.checks {
            s.push_str(c);
        }
        self.tests.push(s);
    }

    /// Runs `promtool test rules` and fails with its report.
    fn run(&self, dir: &Path, name: &str) {
        let promtool = require("promtool", "prometheus");
        let file = dir.join(name);
        let text = format!(
            // Without an order promtool evaluates the groups of one instant in random
            // order, and an alert evaluated before the recording rules it reads sees
            // nothing (Prometheus itself evaluates each group every minute, well within
            // the 5-minute lookback).
            "rule_files:\n  - {}\nevaluation_interval: {}\ngroup_eval_order: [{}]\ntests:\n{}",
            q(&self.rule_file.display().to_string()),
            self.evaluation_interval,
            rules::GROUPS
                .iter()
                .map(|g| q(g))
                .collect::<Vec<_>>()
                .join(", "),
            self.tests.concat()
        );
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(promtool)
            .arg("test")
            .arg("rules")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool test rules failed:\n{}{}\n--- test file ---\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An alert expected to fire: its labels and its annotations, the latter rendered from
/// the rules' own text with the figures the series imply.
struct Alert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The numbers a firing alert's text shows (already formatted as the template does).
#[derive(Default, Clone)]
struct Shown {
    value: &'static str,
    figures: &'static [(&'static str, &'static str)],
    duration: &'static str,
}

fn alert(
    plan: &Plan,
    opts: &RulesOptions,
    alertname: &str,
    labels: &[(&str, &str)],
    shown: &Shown,
) -> Alert {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // `alert_annotations` renders every rule with this fill and returns the one that
    // matches, so slots of other rules get whatever is at hand (their text is dropped).
    let fill = |slot: &Slot<'_>| -> String {
        match slot {
            Slot::Value { .. } => shown.value.to_owned(),
            Slot::ValueDuration => shown.duration.to_owned(),
            Slot::ValueStage { stages, ja } => shown
                .value
                .parse::<usize>()
                .ok()
                .and_then(|i| stages.get(i))
                .map(|s| {
                    if *ja {
                        s.name_ja.clone()
                    } else {
                        s.name_en.clone()
                    }
                })
                .unwrap_or_default(),
            Slot::Label(name) => labels.get(*name).cloned().unwrap_or_default(),
            Slot::Figure { figure, .. } => shown
                .figures
                .iter()
                .find(|(f, _)| f == figure)
                .map_or("–", |(_, v)| v)
                .to_owned(),
        }
    };
    let annotations = alert_annotations(plan, opts, alertname, &labels, &fill)
        .unwrap_or_else(|| panic!("no {alertname} rule for {labels:?}"));
    Alert {
        labels,
        annotations,
    }
}

const KONBINI: &str = "konbini_issuance_rate";

/// Konbini issuance 0.8 points behind pace (tolerance 0.5, critical past 1.0).
const KONBINI_BEHIND: Shown = Shown {
    value: "-0.80",
    figures: &[("value", "42.00"), ("pace", "42.80"), ("target", "43.70")],
    duration: "",
};

#[test]
fn promtool_rule_tests_fire_exactly_the_expected_alerts() {
    let plan = ome();
    let opts = RulesOptions::default();
    let dir = tempfile::tempdir().unwrap();
    let rule_file = dir.path().join("mieruka.rules.yml");
    std::fs::write(&rule_file, rules_yaml(&plan, &opts)).unwrap();
    let mut t = UnitTests {
        rule_file: rule_file.clone(),
        evaluation_interval: "6h",
        tests: Vec::new(),
    };
    let mut f = UnitTests {
        rule_file,
        evaluation_interval: "15m",
        tests: Vec::new(),
    };
    let fires = |name, kpi: &str, severity, shown: &Shown| {
        alert(
            &plan,
            &opts,
            name,
            &[
                ("kpi", kpi),
                ("fiscal_year", "2026"),
                ("severity", severity),
            ],
            shown,
        )
    };
    let behind_pace = "MierukaKpiBehindPace";
    let projected_miss = "MierukaKpiProjectedMiss";

    // On pace: a KPI ahead of its pace and projected past its target raises nothing.
    t.add(
        Case::new("on pace: nothing fires")
            .fy2026()
            .kpi(
                "mynumber_card_holding_rate",
                &[
                    ("value", "83.6+0x4800"),
                    ("target", "84.6+0x4800"),
                    ("pace", "82.8+0x4800"),
                    ("projection", "86+0x4800"),
                    ("drift", "0.8+0x4800"),
                    ("on_track", "1+0x4800"),
                    ("tolerance", "0.5+0x4800"),
                ],
            )
            .expect("8d", behind_pace, &[])
            .expect("8d", projected_miss, &[])
            .expect("8d", "MierukaExporterAbsent", &[]),
    );

    let konbini = |name: &'static str, drift: &str| {
        Case::new(name).fy2026().kpi(
            KONBINI,
            &[
                ("value", "42+0x4800"),
                ("target", "43.7+0x4800"),
                ("pace", "42.8+0x4800"),
                ("projection", "43.6+0x4800"),
                ("drift", drift),
                ("on_track", "1+0x4800"),
                ("tolerance", "0.5+0x4800"),
            ],
        )
    };

    // Behind pace beyond the tolerance: pending for 7 days (the plan's default
    // behind_for), then a warning; not critical at 0.8 < 2 × 0.5.
    t.add(
        konbini(
            "behind pace beyond tolerance for 7 days: warning",
            "-0.8+0x4800",
        )
        .expect("6d", behind_pace, &[])
        .expect(
            "7d1h",
            behind_pace,
            &[fires(behind_pace, KONBINI, "warning", &KONBINI_BEHIND)],
        )
        .expect("7d1h", projected_miss, &[]),
    );

    // Far behind: past twice the tolerance, warning and critical both fire (Alertmanager
    // inhibits the warning).
    let far = Shown {
        value: "-1.50",
        ..KONBINI_BEHIND
    };
    t.add(
        konbini("far behind pace: warning and critical", "-1.5+0x4800").expect(
            "7d1h",
            behind_pace,
            &[
                fires(behind_pace, KONBINI, "warning", &far),
                fires(behind_pace, KONBINI, "critical", &far),
            ],
        ),
    );

    // Recovered: behind for 8 days, then back within tolerance: the alert resolves.
    t.add(
        konbini("behind pace, then recovered", "-0.8+0x2304 0.2+0x2400")
            .expect(
                "7d1h",
                behind_pace,
                &[fires(behind_pace, KONBINI, "warning", &KONBINI_BEHIND)],
            )
            .expect("9d", behind_pace, &[]),
    );

    // Projected miss: off track for a day. Konbini's projection is 0.7 short (warning);
    // telework's is 5 points short, past 2 × 0.5 (critical too). A down-is-better KPI is
    // not in the plan's targets, so direction is covered by the drift sign.
    let konbini_miss = Shown {
        value: "-0.70",
        figures: &[
            ("value", "42.00"),
            ("pace", "42.00"),
            ("target", "43.70"),
            ("projection", "43.00"),
        ],
        duration: "",
    };
    let telework_miss = Shown {
        value: "-5.00",
        figures: &[
            ("value", "13.70"),
            ("pace", "13.70"),
            ("target", "20.00"),
            ("projection", "15.00"),
        ],
        duration: "",
    };
    t.add(
        Case::new("projected to miss the year's target")
            .fy2026()
            .kpi(
                KONBINI,
                &[
                    ("value", "42+0x4800"),
                    ("target", "43.7+0x4800"),
                    ("pace", "42+0x4800"),
                    ("projection", "43+0x4800"),
                    ("drift", "0+0x4800"),
                    ("on_track", "0+0x4800"),
                    ("tolerance", "0.5+0x4800"),
                ],
            )
            .kpi(
                "telework_rate",
                &[
                    ("value", "13.7+0x4800"),
                    ("target", "20+0x4800"),
                    ("pace", "13.7+0x4800"),
                    ("projection", "15+0x4800"),
                    ("drift", "0+0x4800"),
                    ("on_track", "0+0x4800"),
                    ("tolerance", "0.5+0x4800"),
                ],
            )
            .expect("12h", projected_miss, &[])
            .expect(
                "1d1h",
                projected_miss,
                &[
                    fires(projected_miss, KONBINI, "warning", &konbini_miss),
                    fires(projected_miss, "telework_rate", "critical", &telework_miss),
                    fires(projected_miss, "telework_rate", "warning", &telework_miss),
                ],
            )
            .expect("1d1h", behind_pace, &[]),
    );

    // A closed year's figures never alert: FY2025 behind pace is history.
    t.add(
        Case::new("a closed year does not alert")
            .fy2026()
            .series(
                &format!("mieruka_kpi_drift{{kpi=\"{KONBINI}\",fiscal_year=\"2025\"}}"),
                "-5+0x4800",
            )
            .expect("8d", behind_pace, &[]),
    );

    // Silent feed: konbini's last event is at the epoch; with the default 2-day cadence
    // it fires by day 3; card issuance sends hourly and stays quiet; when konbini sends
    // again the alert resolves.
    let silent = alert(
        &plan,
        &opts,
        "MierukaFeedSilent",
        &[("source", "konbini"), ("severity", "warning")],
        &Shown {
            duration: "3d 0h 0m 0s",
            ..Shown::default()
        },
    );
    f.add(
        Case::new("a silent feed, then recovered")
            .fy2026()
            .series(
                "mieruka_source_last_received_timestamp_seconds{source=\"konbini\"}",
                "0+0x864 259500+300x2400",
            )
            .series(
                "mieruka_source_last_received_timestamp_seconds{source=\"card\"}",
                "0+300x4800",
            )
            .expect("1d", "MierukaFeedSilent", &[])
            .expect("3d", "MierukaFeedSilent", &[silent])
            .expect("4d", "MierukaFeedSilent", &[]),
    );

    // Rejections: a nightly import rejecting 50 rows at once fires after 15 minutes.
    f.add(
        Case::new("rejected events above the rate")
            .series(
                "mieruka_events_total{source=\"konbini\",outcome=\"rejected\",reason=\"unknown_value\"}",
                "0+0x288 50+0x4800",
            )
            .expect("1d", "MierukaRejectedEvents", &[])
            .expect("1d30m", "MierukaRejectedEvents", &[fires_rejected(&plan, &opts)])
            .expect("2d", "MierukaRejectedEvents", &[]),
    );

    // The exporter gone: every KPI series absent for 10 minutes.
    f.add(
        Case::new("no exporter")
            .series("mieruka_snapshot_age_seconds", "10+0x10")
            .expect(
                "1h",
                "MierukaExporterAbsent",
                &[alert(
                    &plan,
                    &opts,
                    "MierukaExporterAbsent",
                    &[("severity", "critical")],
                    &Shown::default(),
                )],
            ),
    );

    // A stale snapshot.
    f.add(
        Case::new("stale snapshot")
            .fy2026()
            .series("mieruka_snapshot_age_seconds", "30+0x60 330+300x200")
            .expect("5h", "MierukaSnapshotStale", &[])
            .expect(
                "7h",
                "MierukaSnapshotStale",
                &[alert(
                    &plan,
                    &opts,
                    "MierukaSnapshotStale",
                    &[("severity", "warning")],
                    &Shown {
                        duration: "2h 0m 30s",
                        ..Shown::default()
                    },
                )],
            ),
    );

    // Consumer lag.
    f.add(
        Case::new("consumer lag")
            .fy2026()
            .series(
                "mieruka_consumer_lag{topic=\"mieruka.events\",partition=\"0\"}",
                "0+0x24 20000+0x1200",
            )
            .expect("2h", "MierukaConsumerLag", &[])
            .expect(
                "4h",
                "MierukaConsumerLag",
                &[alert(
                    &plan,
                    &opts,
                    "MierukaConsumerLag",
                    &[("topic", "mieruka.events"), ("severity", "warning")],
                    &Shown {
                        value: "20000",
                        ..Shown::default()
                    },
                )],
            ),
    );
    t.run(dir.path(), "kpis.test.yml");
    f.run(dir.path(), "feeds.test.yml");
}

fn fires_rejected(plan: &Plan, opts: &RulesOptions) -> Alert {
    // The 50 rows fall inside the hour's window; the counter starts at 0, so increase()
    // does not extrapolate past it.
    alert(
        plan,
        opts,
        "MierukaRejectedEvents",
        &[("source", "konbini"), ("severity", "warning")],
        &Shown {
            value: "50",
            ..Shown::default()
        },
    )
}

/// Options and plan fields that are not Ome's defaults: a per-source cadence and a
/// milestone due date, on a clock that starts at the Unix epoch.
#[test]
fn promtool_rule_tests_follow_cadences_and_due_dates() {
    let mut plan = ome();
    let k = plan
        .kpis
        .iter()
        .position(|k| k.id == "disposition_notice_online")
        .unwrap();
    // Due by the end of 1970-01-05 (JST), i.e. overdue from 1970-01-05T15:00Z = 4d15h.
    plan.kpis[k]
        .due
        .insert(FiscalYear(2026), "1970-01-05".parse().unwrap());
    let opts = RulesOptions {
        source_cadence: BTreeMap::from([("population".to_owned(), "10d".to_owned())]),
        ..RulesOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let rule_file = dir.path().join("mieruka.rules.yml");
    std::fs::write(&rule_file, rules_yaml(&plan, &opts)).unwrap();
    let mut t = UnitTests {
        rule_file,
        evaluation_interval: "1h",
        tests: Vec::new(),
    };
    let overdue = alert(
        &plan,
        &opts,
        "MierukaMilestoneOverdue",
        &[
            ("kpi", "disposition_notice_online"),
            ("fiscal_year", "2026"),
            ("severity", "warning"),
        ],
        &Shown {
            value: "0",
            ..Shown::default()
        },
    );
    t.add(
        Case::new("a milestone overdue, then reached")
            .fy2026()
            .series(
                "mieruka_kpi_milestone_stage{kpi=\"disposition_notice_online\",fiscal_year=\"2026\"}",
                "0+0x1727 1+0x1200",
            )
            .series(
                "mieruka_kpi_milestone_target_stage{kpi=\"disposition_notice_online\",fiscal_year=\"2026\"}",
                "1+0x4800",
            )
            .series(
                "mieruka_kpi_milestone_stage{kpi=\"invoice_online\",fiscal_year=\"2026\"}",
                "0+0x4800",
            )
            .expect("4d14h", "MierukaMilestoneOverdue", &[])
            .expect("5d", "MierukaMilestoneOverdue", &[overdue])
            .expect("6d1h", "MierukaMilestoneOverdue", &[]),
    );
    let silent_konbini = alert(
        &plan,
        &opts,
        "MierukaFeedSilent",
        &[("source", "konbini"), ("severity", "warning")],
        &Shown {
            duration: "3d 0h 0m 0s",
            ..Shown::default()
        },
    );
    let silent_population = alert(
        &plan,
        &opts,
        "MierukaFeedSilent",
        &[("source", "population"), ("severity", "warning")],
        &Shown {
            duration: "11d 0h 0m 0s",
            ..Shown::default()
        },
    );
    t.add(
        Case::new("a monthly feed has its own cadence")
            .series(
                "mieruka_source_last_received_timestamp_seconds{source=\"konbini\"}",
                "0+0x3200",
            )
            .series(
                "mieruka_source_last_received_timestamp_seconds{source=\"population\"}",
                "0+0x3200",
            )
            .expect("3d", "MierukaFeedSilent", &[silent_konbini])
            .expect(
                "11d",
                "MierukaFeedSilent",
                &[
                    alert(
                        &plan,
                        &opts,
                        "MierukaFeedSilent",
                        &[("source", "konbini"), ("severity", "warning")],
                        &Shown {
                            duration: "11d 0h 0m 0s",
                            ..Shown::default()
                        },
                    ),
                    silent_population,
                ],
            ),
    );
    t.run(dir.path(), "mieruka.test.yml");
}

/// The office calendar in promtool: the exporter's next-due instants (computed here by
/// the same code from a last arrival) against `time()`. Promtool's clock starts at 0, so
/// every instant is taken relative to T0 = 2026-02-05T00:00+09:00, a Thursday; the
/// rule only compares differences, so the shift changes nothing.
#[test]
fn promtool_silence_alerts_follow_the_office_calendar() {
    const T0: i64 = 1_770_217_200;
    let hour = |day: i64, h: i64| (T0 + day * 86_400 + h * 3600) as f64;
    let office = |cadence| Schedule {
        cadence,
        calendar: Calendar::office(),
    };
    let scheduled = |grace: &str| ScheduledSource {
        display_name: None,
        expected_ja: "予定".to_owned(),
        expected_en: "scheduled".to_owned(),
        grace: grace.to_owned(),
    };
    // Each source's last arrival (days from T0, hour) and the next-due instant it gives.
    let sources = [
        // Friday 2/6 18:00: due by the end of Monday 2/9, not Saturday.
        (
            "madoguchi",
            office(Cadence::BusinessDaily),
            hour(1, 18),
            "6h",
        ),
        // Tuesday 2/10 18:00: 2/11 is 建国記念の日, so due by the end of Thursday 2/12.
        ("docmgmt", office(Cadence::BusinessDaily), hour(5, 18), "6h"),
        // Friday 1/30, for January's month end (Saturday 1/31 → Monday 2/2): February's
        // is due at its end, Saturday 2/28 → Monday 3/2.
        ("juki", office(Cadence::Monthly(31)), hour(-6, 17), "1d"),
    ];
    let opts = RulesOptions {
        scheduled: sources
            .iter()
            .map(|(s, _, _, grace)| ((*s).to_owned(), scheduled(grace)))
            .collect(),
        ..RulesOptions::default()
    };
    let plan = ome();
    let dir = tempfile::tempdir().unwrap();
    let rule_file = dir.path().join("mieruka.rules.yml");
    std::fs::write(&rule_file, rules_yaml(&plan, &opts)).unwrap();
    let mut case = Case::new("weekends, a holiday and a month end");
    for (source, schedule, last, _) in &sources {
        let due = schedule.next_due(*last) - T0;
        case = case.series(
            &format!("mieruka_source_next_due_timestamp_seconds{{source=\"{source}\"}}"),
            &format!("{due}+0x8000"),
        );
    }
    let silent = |source: &str, duration: &'static str| {
        alert(
            &plan,
            &opts,
            "MierukaFeedSilent",
            &[("source", source), ("severity", "warning")],
            &Shown {
                duration,
                ..Shown::default()
            },
        )
    };
    let case = case
        // Monday 10:00 after the weekend: nothing is late.
        .expect("4d10h", "MierukaFeedSilent", &[])
        // Thursday 2/12 10:00: the counter's Monday feed never came; the e-approval
        // feed is not late, the holiday did not count.
        .expect(
            "7d10h",
            "MierukaFeedSilent",
            &[silent("madoguchi", "2d 10h 0m 0s")],
        )
        // Friday 2/13 09:00: now it is.
        .expect(
            "8d9h",
            "MierukaFeedSilent",
            &[
                silent("docmgmt", "9h 0m 0s"),
                silent("madoguchi", "3d 9h 0m 0s"),
            ],
        )
        // Tuesday 3/3 12:00: the month-end file is due by Monday 3/2, plus a day.
        .expect(
            "26d12h",
            "MierukaFeedSilent",
            &[
                silent("docmgmt", "18d 12h 0m 0s"),
                silent("madoguchi", "21d 12h 0m 0s"),
            ],
        )
        .expect(
            "27d3h",
            "MierukaFeedSilent",
            &[
                silent("docmgmt", "19d 3h 0m 0s"),
                silent("juki", "1d 3h 0m 0s"),
                silent("madoguchi", "22d 3h 0m 0s"),
            ],
        );
    let mut t = UnitTests {
        rule_file,
        evaluation_interval: "1h",
        tests: Vec::new(),
    };
    t.add(case);
    t.run(dir.path(), "calendar.test.yml");
}

// ---------------------------------------------------------------------------------------
// Dashboards.

fn panels_of(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"].as_array().unwrap().iter().collect()
}

#[test]
fn every_dashboard_is_sound_grafana_json() {
    let plan = ome();
    let all = dashboards(&plan);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "mieruka-overview.json",
            "mieruka-kpi.json",
            "mieruka-pipeline.json"
        ]
    );
    for (name, text) in &all {
        let d: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(format!("{}.json", d["uid"].as_str().unwrap()), *name);
        assert!(!d["title"].as_str().unwrap().is_empty());
        let mut ids = Vec::new();
        for p in panels_of(&d) {
            let title = p["title"].as_str().unwrap();
            ids.push(p["id"].as_u64().unwrap());
            let pos = &p["gridPos"];
            assert!(
                pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24,
                "{name}/{title}: off the grid"
            );
            if matches!(p["type"].as_str(), Some("row" | "text")) {
                continue;
            }
            assert!(
                !p["description"].as_str().unwrap_or("").is_empty(),
                "{name}/{title}: no English description"
            );
            assert_eq!(p["datasource"]["uid"], dashboards::DATASOURCE_UID);
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}/{title}: no query");
            for t in targets {
                let expr = t["expr"].as_str().unwrap();
                assert!(!expr.trim().is_empty(), "{name}/{title}: empty expr");
                assert_eq!(t["datasource"]["uid"], dashboards::DATASOURCE_UID);
                assert_eq!(
                    expr.matches('(').count(),
                    expr.matches(')').count(),
                    "{name}/{title}: unbalanced {expr}"
                );
            }
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "{name}: panel ids repeat");
    }
}

#[test]
fn the_overview_has_a_row_per_chapter_and_a_stat_per_kpi() {
    let plan = ome();
    let (_, text) = &dashboards(&plan)[0];
    let d: Value = serde_json::from_str(text).unwrap();
    let panels = panels_of(&d);
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "第1章 行政サービスを変える",
            "第2章 市役所を変える",
            "第3章 地域社会を変える"
        ]
    );
    // Each KPI's stat sits under its chapter's row, in plan order.
    let mut chapter = String::new();
    let mut seen = Vec::new();
    for p in &panels {
        if p["type"] == "row" {
            chapter = p["description"].as_str().unwrap().to_owned();
            continue;
        }
        let Some(kpi) = plan.kpis.iter().find(|k| p["title"] == k.name_ja.as_str()) else {
            continue;
        };
        assert_eq!(p["type"], "stat");
        assert!(
            chapter.starts_with(&format!("Chapter {}:", kpi.chapter)),
            "{} is under {chapter}",
            kpi.id
        );
        let exprs: Vec<&str> = p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap())
            .collect();
        assert!(
            exprs
                .iter()
                .all(|e| e.contains(&format!("{{kpi=\"{}\"}}", kpi.id))),
            "{}: {exprs:?}",
            kpi.id
        );
        if kpi.targets.values().any(Option::is_some) {
            assert!(
                exprs.iter().any(|e| e.contains("target")),
                "{}: no target",
                kpi.id
            );
        }
        seen.push(kpi.id.as_str());
    }
    let all: Vec<&str> = plan.kpis.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(seen, all);
}

#[test]
fn the_drill_down_offers_every_kpi_and_draws_target_and_pace() {
    let plan = ome();
    let (_, text) = &dashboards(&plan)[1];
    let d: Value = serde_json::from_str(text).unwrap();
    let vars = d["templating"]["list"].as_array().unwrap();
    let kpi = vars.iter().find(|v| v["name"] == "kpi").unwrap();
    let values: Vec<&str> = kpi["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = plan.kpis.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(values, all);
    assert!(vars.iter().any(|v| v["name"] == "fiscal_year"));
    let exprs: Vec<String> = panels_of(&d)
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    for figure in ["value", "target", "pace", "projection"] {
        assert!(
            exprs
                .iter()
                .any(|e| e.contains(&format!("mieruka_kpi_{figure}{{"))),
            "no {figure} line"
        );
    }
}

// ---------------------------------------------------------------------------------------
// deploy/.

#[test]
fn alertmanager_config_is_valid() {
    let amtool = require("amtool", "prometheus-alertmanager");
    let out = run(Command::new(amtool)
        .arg("check-config")
        .arg(root().join("deploy/alertmanager/alertmanager.yml")));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn docker_compose_config_is_valid() {
    let compose = require("docker-compose", "docker-compose");
    let deploy = root().join("deploy");
    let out = run(Command::new(compose)
        .current_dir(&deploy)
        .arg("-f")
        .arg(deploy.join("docker-compose.yml"))
        .arg("config"));
    for service in [
        "kafka",
        "postgres",
        "ingest",
        "aggregate",
        "export",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(
            out.contains(&format!("\n  {service}:\n")),
            "docker-compose.yml has no service {service}:\n{out}"
        );
    }
}

#[test]
fn kubernetes_manifests_pass_their_checks() {
    let python = require("python3", "python3");
    let probe = Command::new(&python)
        .arg("-c")
        .arg("import yaml")
        .status()
        .unwrap();
    assert!(
        probe.success(),
        "PyYAML is missing: run scripts/test.sh, which installs Debian's `python3-yaml`"
    );
    let out = run(Command::new(python).arg(root().join("deploy/k8s/check.py")));
    assert!(out.contains("ok"), "{out}");
}

/// The image builds with the toolchain the workspace declares (an older one refuses the
/// workspace) and ships the release build, the one the benches measure: whole-program
/// optimised.
#[test]
fn the_image_builds_the_release_profile_with_the_declared_toolchain() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim().trim_matches('"'))
        .expect("Cargo.toml declares a rust-version");
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|tag| tag.split('-').next())
        .expect("deploy/Dockerfile builds FROM rust:<version>-…");
    assert_eq!(
        image, declared,
        "deploy/Dockerfile's Rust image is not the workspace's rust-version"
    );
    let release: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[profile.release]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::trim)
        .collect();
    for setting in ["lto = \"fat\"", "codegen-units = 1"] {
        assert!(
            release.contains(&setting),
            "the release profile lacks {setting}: {release:?}"
        );
    }
    assert!(
        dockerfile.contains("cargo build --release --locked --bin mieruka")
            && dockerfile.contains("COPY --from=build /src/target/release/mieruka "),
        "the image does not ship the release build"
    );
}
