//! The alerts of the generated rules with their bilingual (Japanese / English) texts:
//! per KPI (behind pace, projected to miss), per milestone (overdue) and on the feeds.
//!
//! Mostly a table of wording: what each alert says, with the slots Prometheus fills in
//! when it fires. The machinery (slots, templates, YAML) is the parent module's.

use mieruka_aggregator::plan::Kpi;
use mieruka_aggregator::{Direction, KpiKind};
use mieruka_ingest::Timestamp;

use crate::precision::kpi_decimals;

use super::{
    current, literal, milestone_due, num, parse_duration, promql_str, regex_escape, runbook, Fill,
    Rule, RulesOptions, ScheduledSource, Slot, DEFAULT_CADENCE, SNAPSHOT_MAX_AGE_SECONDS,
};

/// Text built from literal pieces and slots.
struct Text<'f> {
    fill: Fill<'f>,
    out: String,
}

impl<'f> Text<'f> {
    fn new(fill: Fill<'f>) -> Self {
        Self {
            fill,
            out: String::new(),
        }
    }
    fn t(mut self, s: &str) -> Self {
        self.out.push_str(&literal(s));
        self
    }
    fn s(mut self, slot: Slot<'_>) -> Self {
        self.out.push_str(&(self.fill)(&slot));
        self
    }
    fn done(self) -> String {
        self.out
    }
}

fn severity_words(severity: &str) -> (&'static str, &'static str) {
    match severity {
        "critical" => ("重大", "critical"),
        _ => ("注意", "warning"),
    }
}

/// What the alerts of one KPI share: its selector, thresholds, decimals and unit.
struct KpiText<'k> {
    kpi: &'k Kpi,
    /// Decimals of its figures.
    d: usize,
    /// `{kpi="<id>"}`.
    sel: String,
    tol: f64,
    factor: f64,
    /// critical_factor × tolerance.
    crit: f64,
    /// The unit with a leading space, or nothing.
    unit: String,
}

impl<'k> KpiText<'k> {
    fn new(kpi: &'k Kpi) -> Self {
        let factor = kpi.alert.critical_factor.get();
        Self {
            kpi,
            d: kpi_decimals(kpi),
            sel: format!("{{kpi={}}}", promql_str(&kpi.id)),
            tol: kpi.tolerance,
            factor,
            crit: factor * kpi.tolerance,
            unit: if kpi.unit.is_empty() {
                String::new()
            } else {
                format!(" {}", kpi.unit)
            },
        }
    }
}

impl KpiText<'_> {
    /// A current-year figure of the KPI, with its decimals.
    fn fig<'s>(&'s self, figure: &'s str) -> Slot<'s> {
        Slot::Figure {
            figure,
            kpi: &self.kpi.id,
            decimals: self.d,
        }
    }

    /// The labels that identify one of its alerts.
    fn key(&self, severity: &str) -> Vec<(&'static str, String)> {
        vec![
            ("kpi", self.kpi.id.clone()),
            ("severity", severity.to_owned()),
        ]
    }
}

pub(super) fn kpi_rules(kpi: &Kpi, opts: &RulesOptions, fill: Fill<'_>) -> Vec<Rule> {
    let k = KpiText::new(kpi);
    let mut rules = behind_pace_rules(&k, opts, fill);
    if !matches!(kpi.kind, KpiKind::Recurring(_)) {
        rules.extend(projected_miss_rules(&k, opts, fill));
    }
    rules
}

/// `MierukaKpiBehindPace`, warning past the tolerance and critical past
/// critical_factor × the tolerance, both after `behind_for`.
fn behind_pace_rules(k: &KpiText<'_>, opts: &RulesOptions, fill: Fill<'_>) -> Vec<Rule> {
    let (kpi, d, sel, tol, unit) = (k.kpi, k.d, &k.sel, k.tol, &k.unit);
    let (factor, crit, id) = (k.factor, k.crit, kpi.id.as_str());
    let fig = |figure| k.fig(figure);
    let key = |severity: &str| k.key(severity);
    let mut rules = Vec::new();
    for (severity, threshold) in [("warning", tol), ("critical", crit)] {
        let (sev_ja, sev_en) = severity_words(severity);
        let past_ja = if severity == "critical" {
            format!("許容の{}倍を超えて", num(factor))
        } else {
            "許容を超えて".to_owned()
        };
        let past_en = if severity == "critical" {
            format!("more than {} × the tolerance", num(factor))
        } else {
            "beyond the tolerance".to_owned()
        };
        let summary = Text::new(fill)
            .t(&format!(
                "【{sev_ja}】{}がペースを下回っています（",
                kpi.name_ja
            ))
            .s(Slot::Label("fiscal_year"))
            .t(&format!(
                "年度） / [{sev_en}] {} is behind pace (FY",
                kpi.name_en
            ))
            .s(Slot::Label("fiscal_year"))
            .t(")")
            .done();
        let description = Text::new(fill)
            .t(&format!("{}：実績 ", kpi.name_ja))
            .s(fig("value"))
            .t(&format!("{unit}、ペース "))
            .s(fig("pace"))
            .t("、目標 ")
            .s(fig("target"))
            .t("、差 ")
            .s(Slot::Value { decimals: d })
            .t(&format!(
                "（許容 {}{unit}）。{}ペースを下回った状態が{}続いています。 / {}: value ",
                num(tol),
                past_ja,
                kpi.alert.behind_for,
                kpi.name_en
            ))
            .s(fig("value"))
            .t(&format!("{unit}, pace "))
            .s(fig("pace"))
            .t(", target ")
            .s(fig("target"))
            .t(", drift ")
            .s(Slot::Value { decimals: d })
            .t(&format!(
                " (tolerance {}{unit}); behind pace {past_en} for {}.",
                num(tol),
                kpi.alert.behind_for
            ))
            .done();
        rules.push(Rule::Alert {
            alert: "MierukaKpiBehindPace",
            expr: format!("{}{sel} < {}", current("drift"), num(-threshold)),
            for_: kpi.alert.behind_for.to_string(),
            labels: vec![("kpi", id.to_owned()), ("severity", severity.to_owned())],
            key: key(severity),
            annotations: vec![
                ("summary", summary),
                ("description", description),
                ("runbook_url", runbook(opts, "MierukaKpiBehindPace")),
            ],
        });
    }

    rules
}

/// `MierukaKpiProjectedMiss`: warning when the engine says off track, critical when the
/// projection's gap is past critical_factor × the tolerance.
fn projected_miss_rules(k: &KpiText<'_>, opts: &RulesOptions, fill: Fill<'_>) -> Vec<Rule> {
    let (kpi, d, sel, tol, unit) = (k.kpi, k.d, &k.sel, k.tol, &k.unit);
    let (crit, id) = (k.crit, kpi.id.as_str());
    let fig = |figure| k.fig(figure);
    let key = |severity: &str| k.key(severity);
    let mut rules = Vec::new();
    // The gap, direction-aware: negative means the projection falls short.
    let gap = match kpi.direction {
        Direction::Up => format!(
            "({}{sel} - {}{sel})",
            current("projection"),
            current("target")
        ),
        Direction::Down => format!(
            "({}{sel} - {}{sel})",
            current("target"),
            current("projection")
        ),
    };
    for severity in ["warning", "critical"] {
        let (sev_ja, sev_en) = severity_words(severity);
        // Warning exactly when the engine says off track; critical when the gap is
        // past critical_factor × tolerance.
        let expr = if severity == "warning" {
            format!("{gap} and {}{sel} == 0", current("on_track"))
        } else {
            format!("{gap} < {}", num(-crit))
        };
        let summary = Text::new(fill)
            .t(&format!("【{sev_ja}】{}は", kpi.name_ja))
            .s(Slot::Label("fiscal_year"))
            .t(&format!(
                "年度の目標に届かない見通しです / [{sev_en}] {} is projected to miss its FY",
                kpi.name_en
            ))
            .s(Slot::Label("fiscal_year"))
            .t(" target")
            .done();
        let description = Text::new(fill)
            .t(&format!("{}：年度末の見通し ", kpi.name_ja))
            .s(fig("projection"))
            .t(&format!("{unit}、目標 "))
            .s(fig("target"))
            .t("、差 ")
            .s(Slot::Value { decimals: d })
            .t(&format!("（許容 {}{unit}）、実績 ", num(tol)))
            .s(fig("value"))
            .t("、ペース ")
            .s(fig("pace"))
            .t(&format!("。 / {}: projected ", kpi.name_en))
            .s(fig("projection"))
            .t(&format!("{unit} at the end of the year, target "))
            .s(fig("target"))
            .t(", gap ")
            .s(Slot::Value { decimals: d })
            .t(&format!(" (tolerance {}{unit}), value ", num(tol)))
            .s(fig("value"))
            .t(", pace ")
            .s(fig("pace"))
            .t(".")
            .done();
        rules.push(Rule::Alert {
            alert: "MierukaKpiProjectedMiss",
            expr,
            for_: "1d".to_owned(),
            labels: vec![("kpi", id.to_owned()), ("severity", severity.to_owned())],
            key: key(severity),
            annotations: vec![
                ("summary", summary),
                ("description", description),
                ("runbook_url", runbook(opts, "MierukaKpiProjectedMiss")),
            ],
        });
    }
    rules
}

pub(super) fn milestone_rules(kpi: &Kpi, opts: &RulesOptions, fill: Fill<'_>) -> Vec<Rule> {
    let Some(stages) = kpi.stages() else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    for (fy, target) in &kpi.targets {
        let Some(target) = target else { continue };
        let ix = *target as usize;
        let Some(stage) = stages.get(ix) else {
            continue;
        };
        let due = milestone_due(kpi, *fy);
        let (y, m, d, ..) = Timestamp::from_micros(due.micros() - 1)
            .to_civil(mieruka_aggregator::fiscal::JST_OFFSET_SECONDS);
        let due_date = format!("{y:04}-{m:02}-{d:02}");
        let stage_en = if stage.name_en.is_empty() {
            &stage.name_ja
        } else {
            &stage.name_en
        };
        let summary = Text::new(fill)
            .t(&format!(
                "{}：{}年度の目標段階「{}」が期限（{due_date}）を過ぎても未達です / {}: the FY{} target stage \"{stage_en}\" was not reached by {due_date}",
                kpi.name_ja, fy.0, stage.name_ja, kpi.name_en, fy.0
            ))
            .done();
        let description = Text::new(fill)
            .t(&format!("{}：現在の段階は「", kpi.name_ja))
            .s(Slot::ValueStage { stages, ja: true })
            .t(&format!(
                "」（{}段階中）、{}年度の目標は「{}」（期限 {due_date}）。 / {}: the current stage is \"",
                stages.len(),
                fy.0,
                stage.name_ja,
                kpi.name_en
            ))
            .s(Slot::ValueStage { stages, ja: false })
            .t(&format!(
                "\" (of {} stages); the FY{} target is \"{stage_en}\", due {due_date}.",
                stages.len(),
                fy.0
            ))
            .done();
        rules.push(Rule::Alert {
            alert: "MierukaMilestoneOverdue",
            // The highest stage reached in any year: a stage reached late still
            // resolves the alert.
            expr: format!(
                "max by (kpi) (mieruka_kpi_milestone_stage{{kpi={}}}) < {ix} and on () (vector(time()) >= {})",
                promql_str(&kpi.id),
                due.unix_seconds()
            ),
            for_: "1h".to_owned(),
            labels: vec![
                ("fiscal_year", fy.0.to_string()),
                ("kpi", kpi.id.clone()),
                ("severity", "warning".to_owned()),
            ],
            key: vec![
                ("fiscal_year", fy.0.to_string()),
                ("kpi", kpi.id.clone()),
                ("severity", "warning".to_owned()),
            ],
            annotations: vec![
                ("summary", summary),
                ("description", description),
                ("runbook_url", runbook(opts, "MierukaMilestoneOverdue")),
            ],
        });
    }
    rules
}

pub(super) fn feed_rules(opts: &RulesOptions, fill: Fill<'_>) -> Vec<Rule> {
    let mut rules = feed_silent_rules(opts, fill);
    rules.extend([
        rejected_rule(opts, fill),
        consumer_lag_rule(opts, fill),
        snapshot_stale_rule(opts, fill),
        exporter_absent_rule(opts),
    ]);
    rules
}

/// `MierukaFeedSilent`: one rule per source with a schedule, one per source with its own
/// cadence, and one for the rest.
fn feed_silent_rules(opts: &RulesOptions, fill: Fill<'_>) -> Vec<Rule> {
    let mut rules: Vec<Rule> = opts
        .scheduled
        .iter()
        .map(|(source, s)| feed_overdue(opts, fill, source, s))
        .collect();
    for (source, cadence) in &opts.source_cadence {
        rules.push(feed_silent(
            opts,
            fill,
            format!("{{source={}}}", promql_str(source)),
            cadence,
            vec![
                ("severity", "warning".to_owned()),
                ("source", source.clone()),
            ],
        ));
    }
    let named: Vec<&String> = opts
        .source_cadence
        .keys()
        .chain(opts.scheduled.keys())
        .collect();
    let others = if named.is_empty() {
        String::new()
    } else {
        let mut alternatives: Vec<String> = named.iter().map(|s| regex_escape(s)).collect();
        alternatives.sort();
        format!("{{source!~{}}}", promql_str(&alternatives.join("|")))
    };
    rules.push(feed_silent(
        opts,
        fill,
        others,
        &opts.default_cadence,
        vec![("severity", "warning".to_owned())],
    ));
    rules
}

/// `MierukaFeedSilent` for a source with a schedule: past its next-due instant (from its
/// last arrival, cadence and calendar, published by the exporter) by more than its grace.
/// `$value` is how long past the due instant.
fn feed_overdue(opts: &RulesOptions, fill: Fill<'_>, source: &str, s: &ScheduledSource) -> Rule {
    // An invalid grace is refused by `RulesOptions::validate`.
    let grace = parse_duration(&s.grace).unwrap_or(0);
    let shown = match &s.display_name {
        Some(name) => format!("{name}（{source}）"),
        None => source.to_owned(),
    };
    let (ja, en) = (&s.expected_ja, &s.expected_en);
    let summary = Text::new(fill)
        .t(&format!(
            "連携元 {shown} の受信予定を過ぎています（{ja}） / Source {shown} is overdue ({en})"
        ))
        .done();
    let description = Text::new(fill)
        .t(&format!("連携元 {shown} の次の受信予定（{ja}）から "))
        .s(Slot::ValueDuration)
        .t(&format!(
            " 経過しました（猶予 {}）。 / The next arrival from source {shown} ({en}) is ",
            s.grace
        ))
        .s(Slot::ValueDuration)
        .t(&format!(" past due (grace {}).", s.grace))
        .done();
    let key = vec![
        ("severity", "warning".to_owned()),
        ("source", source.to_owned()),
    ];
    let expr = format!(
        "time() - max by (source) (mieruka_source_next_due_timestamp_seconds{{source={}}}) > {grace}",
        promql_str(source)
    );
    feed_silent_alert(opts, expr, key, summary, description)
}

/// A `MierukaFeedSilent` rule; `key` is also its labels (a source with its own cadence or
/// schedule carries its name, so the rule is unique).
fn feed_silent_alert(
    opts: &RulesOptions,
    expr: String,
    key: Vec<(&'static str, String)>,
    summary: String,
    description: String,
) -> Rule {
    Rule::Alert {
        alert: "MierukaFeedSilent",
        expr,
        for_: "5m".to_owned(),
        labels: key.clone(),
        key,
        annotations: vec![
            ("summary", summary),
            ("description", description),
            ("runbook_url", runbook(opts, "MierukaFeedSilent")),
        ],
    }
}

/// `MierukaFeedSilent` for the sources `selector` picks, silent for longer than `cadence`.
fn feed_silent(
    opts: &RulesOptions,
    fill: Fill<'_>,
    selector: String,
    cadence: &str,
    key: Vec<(&'static str, String)>,
) -> Rule {
    // An invalid cadence is refused by `RulesOptions::validate`; here it falls back
    // to the default rather than writing a rule that never fires.
    let seconds = parse_duration(cadence)
        .or_else(|_| parse_duration(DEFAULT_CADENCE))
        .unwrap_or(172_800);
    let summary = Text::new(fill)
        .t("連携元 ")
        .s(Slot::Label("source"))
        .t(&format!(
            " から {cadence} 以上イベントが届いていません / No events from source "
        ))
        .s(Slot::Label("source"))
        .t(&format!(" for more than {cadence}"))
        .done();
    let description = Text::new(fill)
        .t("連携元 ")
        .s(Slot::Label("source"))
        .t(" の最後の受信から ")
        .s(Slot::ValueDuration)
        .t(&format!(
            " 経過しました（想定間隔 {cadence}）。 / The last event from source "
        ))
        .s(Slot::Label("source"))
        .t(" arrived ")
        .s(Slot::ValueDuration)
        .t(&format!(" ago (expected at least every {cadence})."))
        .done();
    let expr = format!(
        "time() - max by (source) (mieruka_source_last_received_timestamp_seconds{selector}) > {seconds}"
    );
    feed_silent_alert(opts, expr, key, summary, description)
}

/// `MierukaRejectedEvents`: a source's rejections in the last hour past the threshold.
fn rejected_rule(opts: &RulesOptions, fill: Fill<'_>) -> Rule {
    let thr = num(opts.rejected_per_hour);
    Rule::Alert {
        alert: "MierukaRejectedEvents",
        // increase over an hour, not a 5-minute rate: a nightly CSV import rejects its
        // bad rows in one burst, which a short window would forget before `for` ends.
        expr: format!(
            "sum by (source) (increase(mieruka_events_total{{outcome=\"rejected\"}}[1h])) > {thr}"
        ),
        for_: "15m".to_owned(),
        labels: vec![("severity", "warning".to_owned())],
        key: vec![("severity", "warning".to_owned())],
        annotations: vec![
            (
                "summary",
                Text::new(fill)
                    .t("連携元 ")
                    .s(Slot::Label("source"))
                    .t(" のイベントが拒否されています / Events from source ")
                    .s(Slot::Label("source"))
                    .t(" are being rejected")
                    .done(),
            ),
            (
                "description",
                Text::new(fill)
                    .t("直近1時間に約 ")
                    .s(Slot::Value { decimals: 0 })
                    .t(&format!(
                        " 件のイベントが拒否されました（閾値 {thr} 件/時）。理由は reason ラベルと拒否イベント一覧で確認してください。 / About "
                    ))
                    .s(Slot::Value { decimals: 0 })
                    .t(&format!(
                        " events were rejected in the last hour (threshold {thr} an hour); the reason label and the rejected-events table say why."
                    ))
                    .done(),
            ),
            ("runbook_url", runbook(opts, "MierukaRejectedEvents")),
        ],
    }
}

/// `MierukaConsumerLag`: the aggregators behind on a topic.
fn consumer_lag_rule(opts: &RulesOptions, fill: Fill<'_>) -> Rule {
    let lag = opts.consumer_lag_max;
    Rule::Alert {
        alert: "MierukaConsumerLag",
        expr: format!("sum by (topic) (mieruka_consumer_lag) > {lag}"),
        for_: "15m".to_owned(),
        labels: vec![("severity", "warning".to_owned())],
        key: vec![("severity", "warning".to_owned())],
        annotations: vec![
            (
                "summary",
                Text::new(fill)
                    .t("Kafka トピック ")
                    .s(Slot::Label("topic"))
                    .t(" の集計が遅れています / The aggregators are behind on Kafka topic ")
                    .s(Slot::Label("topic"))
                    .done(),
            ),
            (
                "description",
                Text::new(fill)
                    .t("未処理のメッセージが ")
                    .s(Slot::Value { decimals: 0 })
                    .t(&format!(" 件あります（閾値 {lag} 件、15分以上継続）。 / "))
                    .s(Slot::Value { decimals: 0 })
                    .t(&format!(
                        " messages are waiting (threshold {lag}, for 15 minutes or more)."
                    ))
                    .done(),
            ),
            ("runbook_url", runbook(opts, "MierukaConsumerLag")),
        ],
    }
}

/// `MierukaSnapshotStale`: the exporter's figures are not being refreshed.
fn snapshot_stale_rule(opts: &RulesOptions, fill: Fill<'_>) -> Rule {
    let age = SNAPSHOT_MAX_AGE_SECONDS;
    Rule::Alert {
        alert: "MierukaSnapshotStale",
        expr: format!("mieruka_snapshot_age_seconds > {age}"),
        for_: "2m".to_owned(),
        labels: vec![("severity", "warning".to_owned())],
        key: vec![("severity", "warning".to_owned())],
        annotations: vec![
            (
                "summary",
                "KPIの数値が更新されていません / The KPI figures are not being refreshed"
                    .to_owned(),
            ),
            (
                "description",
                Text::new(fill)
                    .t("エクスポーターが最後に計算した数値は ")
                    .s(Slot::ValueDuration)
                    .t(" 前のものです（データベースに接続できない可能性）。 / The exporter's figures were computed ")
                    .s(Slot::ValueDuration)
                    .t(" ago (it may not reach the database).")
                    .done(),
            ),
            ("runbook_url", runbook(opts, "MierukaSnapshotStale")),
        ],
    }
}

/// `MierukaExporterAbsent`: no KPI figures reach Prometheus.
fn exporter_absent_rule(opts: &RulesOptions) -> Rule {
    Rule::Alert {
        alert: "MierukaExporterAbsent",
        expr: "absent(mieruka_kpi_elapsed_ratio)".to_owned(),
        for_: "10m".to_owned(),
        labels: vec![("severity", "critical".to_owned())],
        key: vec![("severity", "critical".to_owned())],
        annotations: vec![
            (
                "summary",
                "KPIの数値を取得できません / No KPI figures reach Prometheus".to_owned(),
            ),
            (
                "description",
                "Prometheus に mieruka_kpi_elapsed_ratio がありません：エクスポーターが停止しているか、スクレイプできていません。ダッシュボードもアラートも止まっています。 / Prometheus has no mieruka_kpi_elapsed_ratio: the exporter is down or not scraped, so dashboards and KPI alerts are blind."
                    .to_owned(),
            ),
            ("runbook_url", runbook(opts, "MierukaExporterAbsent")),
        ],
    }
}
