//! Prometheus recording and alerting rules generated from the plan, so that the alerts
//! can never disagree with it (`mieruka rules`).
//!
//! The output is deterministic — KPIs in plan order, sources sorted, no timestamps — so
//! a test fails when the committed `deploy/prometheus/rules/mieruka.rules.yml` is stale.
//!
//! **Current fiscal year.** Rules never hard-code a year: the series of
//! `mieruka_kpi_elapsed_ratio` whose value is strictly between 0 and 1 is the fiscal
//! year in progress, and the recording rules `mieruka:kpi_<figure>:current_fy` keep the
//! KPI series of that year only (`and on (fiscal_year)`, which keeps the left-hand
//! values, unlike a multiplication). They also aggregate away `instance`/`job`
//! (`max by (kpi, fiscal_year)`), so two exporter replicas raise one alert, not two.
//!
//! **Which KPI gets which alert.** A KPI gets `MierukaKpiBehindPace` (warning past its
//! tolerance, critical past `critical_factor` × tolerance, both after
//! `alert.behind_for`) when the plan gives it a numeric target in at least one year;
//! `MierukaKpiProjectedMiss` too, except recurring duties (a once-a-year event projects
//! to 0 until it happens, which is not news). Milestones have no pace: they get one
//! `MierukaMilestoneOverdue` per year with a target stage instead. In a year whose
//! target is `"unset"` the figures are absent, so nothing fires.
//!
//! **Which job an alert reads.** Each role publishes only the health series that apply
//! to it (`crate::Role`), so the pipeline alerts select their job by the series they
//! read, whatever the scrape config names the jobs: `MierukaSnapshotStale`,
//! `MierukaFeedSilent` and `MierukaExporterAbsent` read series only the KPI roles
//! (`export`, `standalone`) publish, `MierukaConsumerLag` one only `aggregate` publishes,
//! and `MierukaRejectedEvents` sums `ingest`'s and `aggregate`'s counts, each outcome
//! being counted by one of them.
//!
//! YAML is written by hand: every string scalar is a JSON string, which is a valid YAML
//! double-quoted scalar, so no plan text can break the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mieruka_aggregator::plan::{Kpi, Plan, Stage};
use mieruka_aggregator::KpiKind;

mod texts;

/// The status page labels a milestone overdue from the same instant the alert fires.
pub use crate::status::milestone_due;

use texts::{feed_rules, kpi_rules, milestone_rules};

/// Where the runbook lives; each alert's `runbook_url` is this plus `#<anchor>`.
///
/// By default the runbook in the repository, by its path from the root: mieruka has no
/// public home to link to, and an invented URL would send an operator nowhere. A
/// deployment sets `[rules] runbook_base` to where it serves that file (its Git host's
/// page of `docs/runbook.md`, an intranet copy).
pub const DEFAULT_RUNBOOK_BASE: &str = "docs/runbook.md";

/// The rules file in the repository, relative to the workspace root.
pub const RULES_PATH: &str = "deploy/prometheus/rules/mieruka.rules.yml";

/// How long a source may be silent when the options do not name it: most line
/// systems send at least daily, and a weekend without counter issuance is normal.
pub const DEFAULT_CADENCE: &str = "2d";

/// Snapshot age past which the exporter is serving stale figures: the snapshot is
/// recomputed after each batch and every 60 s, so five minutes means it is stuck.
pub const SNAPSHOT_MAX_AGE_SECONDS: u64 = 300;

/// Every alert the generated rules can raise; each has a section in `docs/runbook.md`.
pub const ALERTS: &[&str] = &[
    "MierukaKpiBehindPace",
    "MierukaKpiProjectedMiss",
    "MierukaMilestoneOverdue",
    "MierukaFeedSilent",
    "MierukaRejectedEvents",
    "MierukaConsumerLag",
    "MierukaSnapshotStale",
    "MierukaExporterAbsent",
];

/// The rule groups, in the order they must be evaluated at one instant: the recording
/// rules of the current fiscal year first, since the KPI alerts read them.
pub const GROUPS: &[&str] = &[
    "mieruka.current_fy",
    "mieruka.kpi",
    "mieruka.milestones",
    "mieruka.pipeline",
];

/// The figures of the current fiscal year kept by recording rules, as
/// `mieruka:kpi_<figure>:current_fy` from `mieruka_kpi_<figure>`.
pub const CURRENT_FY_FIGURES: &[&str] = &[
    "value",
    "target",
    "baseline",
    "pace",
    "projection",
    "attainment_ratio",
    "drift",
    "on_track",
    "tolerance",
    "milestone_stage",
    "milestone_target_stage",
];

/// Knobs of the generated rules that are about the deployment, not the plan.
#[derive(Clone, Debug)]
pub struct RulesOptions {
    /// The runbook's URL without the anchor.
    pub runbook_base: String,
    /// Per source (the `source` label), how long it may be silent: a Prometheus
    /// duration such as `36h` or `35d` (a monthly snapshot feed).
    pub source_cadence: BTreeMap<String, String>,
    /// How long a source not in `source_cadence` nor `scheduled` may be silent.
    pub default_cadence: String,
    /// Per source (the `source` label), a cadence on a calendar: its alert compares
    /// `time()` with `mieruka_source_next_due_timestamp_seconds` instead.
    pub scheduled: BTreeMap<String, ScheduledSource>,
    /// Rejected events of one source in the last hour past which an alert fires.
    pub rejected_per_hour: f64,
    /// Messages a consumer group may lag behind on one topic before an alert fires.
    pub consumer_lag_max: u64,
}

/// A source with a cadence on a calendar, as its silence alert describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledSource {
    /// The name people know the line system by, shown beside the source id.
    pub display_name: Option<String>,
    /// Its cadence and calendar, in Japanese (e.g. `毎月末、office カレンダー`).
    pub expected_ja: String,
    /// Its cadence and calendar, in English (e.g. `at each month's end, office calendar`).
    pub expected_en: String,
    /// How long past the due instant before the alert fires (a Prometheus duration).
    pub grace: String,
}

impl Default for RulesOptions {
    fn default() -> Self {
        Self {
            runbook_base: DEFAULT_RUNBOOK_BASE.to_owned(),
            source_cadence: BTreeMap::new(),
            default_cadence: DEFAULT_CADENCE.to_owned(),
            scheduled: BTreeMap::new(),
            // A handful of bad rows a day is the DX office's routine; ten an hour,
            // sustained, is a line system sending something the plan does not accept.
            rejected_per_hour: 10.0,
            // Ome's whole year is well under a million events: ten thousand behind
            // means the aggregators are stuck, not busy.
            consumer_lag_max: 10_000,
        }
    }
}

impl RulesOptions {
    /// Checks every duration; `rules_yaml` expects options that pass.
    pub fn validate(&self) -> Result<(), String> {
        parse_duration(&self.default_cadence)
            .map_err(|e| format!("default cadence {:?}: {e}", self.default_cadence))?;
        for (source, cadence) in &self.source_cadence {
            parse_duration(cadence)
                .map_err(|e| format!("cadence of source {source:?} ({cadence:?}): {e}"))?;
        }
        for (source, s) in &self.scheduled {
            parse_duration(&s.grace)
                .map_err(|e| format!("grace of source {source:?} ({:?}): {e}", s.grace))?;
            if self.source_cadence.contains_key(source) {
                return Err(format!(
                    "source {source:?} has both a cadence and a schedule"
                ));
            }
        }
        if self.rejected_per_hour.is_nan() || self.rejected_per_hour < 0.0 {
            return Err("rejected_per_hour must be a number ≥ 0".to_owned());
        }
        Ok(())
    }
}

/// Parses a Prometheus duration (`90s`, `36h`, `1h30m`, `2d`, `1w`, `1y`) into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at {rest:?} (e.g. 36h, 2d)"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "number too large".to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_seconds = match &rest[..unit_len] {
            "ms" => {
                // Sub-second cadences make no sense here; round down like Prometheus
                // would compare them anyway.
                total = total.saturating_add(n / 1000);
                rest = &rest[unit_len..];
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            other => return Err(format!("unknown unit {other:?} (use ms, s, m, h, d, w, y)")),
        };
        total = total.saturating_add(n.saturating_mul(unit_seconds));
        rest = &rest[unit_len..];
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------
// What an alert's text shows.

/// A placeholder in an alert's `summary` or `description`, filled in by Prometheus when
/// the alert fires. `rules_yaml` turns each into a template snippet; a test turns each
/// into the text it expects, and so states exactly what a firing alert says.
#[derive(Clone, Copy, Debug)]
pub enum Slot<'a> {
    /// `$value` with this many decimals (drift, projection gap, rejected count, lag).
    Value {
        /// Digits after the point.
        decimals: usize,
    },
    /// `$value` as a duration in seconds (`humanizeDuration`: `3d 0h 0m 0s`).
    ValueDuration,
    /// `$value` as the name of the milestone stage with that index.
    ValueStage {
        /// The KPI's stages.
        stages: &'a [Stage],
        /// Japanese names (else English).
        ja: bool,
    },
    /// A label of the alert, e.g. `fiscal_year` or `source`.
    Label(&'a str),
    /// A current-year figure of a KPI, read from `mieruka:kpi_<figure>:current_fy`;
    /// `–` when absent.
    Figure {
        /// `value`, `target`, `pace`, `projection`, …
        figure: &'a str,
        /// The KPI id.
        kpi: &'a str,
        /// Digits after the point.
        decimals: usize,
    },
}

/// Turns a slot into text.
pub type Fill<'f> = &'f dyn Fn(&Slot<'_>) -> String;

/// The Prometheus template snippet of a slot (what `rules_yaml` writes).
pub fn template_snippet(slot: &Slot<'_>) -> String {
    match slot {
        Slot::Value { decimals } => format!("{{{{ $value | printf \"%.{decimals}f\" }}}}"),
        Slot::ValueDuration => "{{ $value | humanizeDuration }}".to_owned(),
        Slot::ValueStage { stages, ja } => {
            let mut s = String::new();
            for (i, stage) in stages.iter().enumerate() {
                let name = if *ja || stage.name_en.is_empty() {
                    &stage.name_ja
                } else {
                    &stage.name_en
                };
                let kw = if i == 0 { "if" } else { "else if" };
                let _ = write!(s, "{{{{ {kw} eq $value {i}.0 }}}}{}", literal(name));
            }
            s.push_str("{{ else }}{{ $value }}{{ end }}");
            s
        }
        Slot::Label(name) => format!("{{{{ $labels.{name} }}}}"),
        Slot::Figure {
            figure,
            kpi,
            decimals,
        } => format!(
            "{{{{ with query \"mieruka:kpi_{figure}:current_fy{{kpi='{kpi}'}}\" }}}}\
             {{{{ . | first | value | printf \"%.{decimals}f\" }}}}{{{{ else }}}}–{{{{ end }}}}"
        ),
    }
}

/// Plan text placed in a template: `{{` would start an action.
fn literal(s: &str) -> String {
    // The braces are written as escapes (`\u{7b}` is `{`, `\u{7d}` is `}`) so that
    // brace-counting tools (notes/longfns.py) do not see this function as unclosed.
    const OPEN: &str = "\u{7b}\u{7b}";
    const QUOTED_OPEN: &str = "\u{7b}\u{7b} \"\u{7b}\u{7b}\" \u{7d}\u{7d}";
    s.replace(OPEN, QUOTED_OPEN)
}

// ---------------------------------------------------------------------------------------
// The rules, as data.

struct Group {
    name: &'static str,
    rules: Vec<Rule>,
}

enum Rule {
    Record {
        record: String,
        expr: String,
    },
    Alert {
        alert: &'static str,
        expr: String,
        for_: String,
        /// Static labels (always `severity`).
        labels: Vec<(&'static str, String)>,
        /// Labels that identify this rule's alerts (static ones plus those the
        /// expression carries, such as `kpi`), for `alert_annotations`.
        key: Vec<(&'static str, String)>,
        annotations: Vec<(&'static str, String)>,
    },
}

/// A number as PromQL and people read it (`0.5`, `1`, `200`).
fn num(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else {
        format!("{x}")
    }
}

/// A PromQL double-quoted string.
fn promql_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A regular expression matching exactly `s` (RE2 syntax).
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn anchor(alert: &str) -> String {
    alert.to_ascii_lowercase()
}

fn runbook(opts: &RulesOptions, alert: &str) -> String {
    format!("{}#{}", opts.runbook_base, anchor(alert))
}

fn current(figure: &str) -> String {
    format!("mieruka:kpi_{figure}:current_fy")
}

fn has_numeric_target(kpi: &Kpi) -> bool {
    kpi.targets.values().any(Option::is_some)
}

fn build(plan: &Plan, opts: &RulesOptions, fill: Fill<'_>) -> Vec<Group> {
    let mut groups = vec![current_fy_group(plan)];
    groups.push(Group {
        name: GROUPS[1],
        rules: plan
            .kpis
            .iter()
            .filter(|k| k.stages().is_none() && has_numeric_target(k))
            .flat_map(|k| kpi_rules(k, opts, fill))
            .collect(),
    });
    groups.push(Group {
        name: GROUPS[2],
        rules: plan
            .kpis
            .iter()
            .flat_map(|k| milestone_rules(k, opts, fill))
            .collect(),
    });
    groups.push(Group {
        name: GROUPS[3],
        rules: feed_rules(opts, fill),
    });
    groups
}

fn current_fy_group(plan: &Plan) -> Group {
    const CURRENT_FY: &str = "(mieruka_kpi_elapsed_ratio > 0 < 1)";
    let mut rules = vec![Rule::Record {
        record: "mieruka:kpi_elapsed_ratio:current_fy".to_owned(),
        expr: format!("max by (fiscal_year) {CURRENT_FY}"),
    }];
    for figure in CURRENT_FY_FIGURES {
        rules.push(Rule::Record {
            record: current(figure),
            expr: format!(
                "max by (kpi, fiscal_year) (mieruka_kpi_{figure} and on (fiscal_year) {CURRENT_FY})"
            ),
        });
    }
    // For the overview's colours: 2 on pace, 1 behind pace, 0 projected to miss (a
    // projection exists from the second month on; before that, pace alone decides) —
    // the status page's rule (`crate::status`): recurring duties are never projected to
    // miss, as they have no MierukaKpiProjectedMiss (they project to 0 until they happen).
    let behind = format!("({} < bool -{})", current("drift"), current("tolerance"));
    let recurring: Vec<String> = plan
        .kpis
        .iter()
        .filter(|k| matches!(k.kind, KpiKind::Recurring(_)))
        .map(|k| regex_escape(&k.id))
        .collect();
    let on_track = if recurring.is_empty() {
        current("on_track")
    } else {
        format!(
            "{}{{kpi!~{}}}",
            current("on_track"),
            promql_str(&recurring.join("|"))
        )
    };
    rules.push(Rule::Record {
        record: current("status"),
        expr: format!("(2 - {behind}) * {on_track} or (2 - {behind})"),
    });
    // Milestones: 2 target stage reached, 1 not yet (overdue is the alert's business).
    rules.push(Rule::Record {
        record: current("milestone_status"),
        expr: format!(
            "({} >= bool {}) + 1",
            current("milestone_stage"),
            current("milestone_target_stage")
        ),
    });
    Group {
        name: GROUPS[0],
        rules,
    }
}

// ---------------------------------------------------------------------------------------
// Output.

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The rules file for a plan: recording rules for the current fiscal year, alerts per
/// KPI and milestone from the plan, and alerts on the feeds. Deterministic.
pub fn rules_yaml(plan: &Plan, opts: &RulesOptions) -> String {
    let groups = build(plan, opts, &template_snippet);
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# GENERATED by `mieruka rules` from the plan {} ({}). Do not edit:\n\
         # change the plan file and run `mieruka rules --out {RULES_PATH}`.\n\
         # Alerts are explained in docs/runbook.md.",
        plan.id.replace('\n', " "),
        plan.name_en.replace('\n', " ")
    );
    y.push_str("groups:\n");
    for g in &groups {
        let _ = writeln!(y, "  - name: {}", q(g.name));
        if g.rules.is_empty() {
            y.push_str("    rules: []\n");
            continue;
        }
        y.push_str("    rules:\n");
        for r in &g.rules {
            match r {
                Rule::Record { record, expr } => {
                    let _ = writeln!(y, "      - record: {}", q(record));
                    let _ = writeln!(y, "        expr: {}", q(expr));
                }
                Rule::Alert {
                    alert,
                    expr,
                    for_,
                    labels,
                    annotations,
                    ..
                } => {
                    let _ = writeln!(y, "      - alert: {}", q(alert));
                    let _ = writeln!(y, "        expr: {}", q(expr));
                    let _ = writeln!(y, "        for: {}", q(for_));
                    y.push_str("        labels:\n");
                    for (k, v) in labels {
                        let _ = writeln!(y, "          {k}: {}", q(v));
                    }
                    y.push_str("        annotations:\n");
                    for (k, v) in annotations {
                        let _ = writeln!(y, "          {k}: {}", q(v));
                    }
                }
            }
        }
    }
    y
}

/// What a firing alert's annotations say, with each slot filled by `fill`: the rule is
/// found by name and by `labels` (every identifying label of the rule must be given
/// with the same value: `kpi` and `severity` for KPI alerts, plus `fiscal_year` for
/// milestones, `source` for a source with its own cadence). `None` if no rule matches.
pub fn alert_annotations(
    plan: &Plan,
    opts: &RulesOptions,
    alert: &str,
    labels: &BTreeMap<String, String>,
    fill: Fill<'_>,
) -> Option<BTreeMap<String, String>> {
    build(plan, opts, fill)
        .into_iter()
        .flat_map(|g| g.rules)
        .find_map(|r| match r {
            Rule::Alert {
                alert: name,
                key,
                annotations,
                ..
            } if name == alert
                && key
                    .iter()
                    .all(|(k, v)| labels.get(*k).is_some_and(|l| l == v)) =>
            {
                Some(
                    annotations
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("1h30m"), Ok(5_400));
        assert_eq!(parse_duration("1w"), Ok(604_800));
        assert!(parse_duration("2 days").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn the_rules_are_deterministic_and_name_no_year() {
        let plan = Plan::ome().unwrap();
        let a = rules_yaml(&plan, &RulesOptions::default());
        assert_eq!(a, rules_yaml(&plan, &RulesOptions::default()));
        assert!(!a.contains("fiscal_year=\\\"2026"));
    }

    #[test]
    fn the_overview_status_never_calls_a_recurring_duty_projected_to_miss() {
        let plan = Plan::ome().unwrap();
        let yaml = rules_yaml(&plan, &RulesOptions::default());
        let status = yaml
            .split("record: \"mieruka:kpi_status:current_fy\"")
            .nth(1)
            .and_then(|r| r.lines().nth(1))
            .unwrap();
        assert!(
            status.contains(
                r#"mieruka:kpi_on_track:current_fy{kpi!~\"security_measures|esports_events\"}"#
            ),
            "{status}"
        );
    }

    #[test]
    fn regex_escaping_quotes_metacharacters() {
        assert_eq!(regex_escape("a.b|c"), "a\\.b\\|c");
    }
}
