//! Grafana dashboards generated from the plan (`mieruka dashboards`): the executives'
//! overview, a per-KPI drill-down and the pipeline's health.
//!
//! Like the rules they are deterministic (KPIs in plan order, no timestamps, no ids that
//! change between runs), so a test fails when the committed JSON under
//! `deploy/grafana/dashboards/` is stale against the plan.
//!
//! **Current fiscal year.** The overview reads the recording rules
//! `mieruka:kpi_<figure>:current_fy` of the generated rules file (the year whose
//! `mieruka_kpi_elapsed_ratio` is strictly between 0 and 1), so it needs no year. The
//! drill-down has a `fiscal_year` variable whose options are the years that have started,
//! newest first: it opens on the current year and can look back at closed ones. Both
//! need the generated rules loaded into Prometheus for the overview's colours.
//!
//! Titles are Japanese (the executives' language); descriptions carry the English.

use mieruka_aggregator::plan::{Kpi, Plan, Stage};
use serde_json::{json, Value};

use crate::precision::kpi_decimals;
use crate::rules;

/// The uid of the Prometheus datasource every panel queries (provisioned in
/// `deploy/grafana/provisioning/datasources/`).
pub const DATASOURCE_UID: &str = "prometheus";

/// Where the generated dashboards live, relative to the workspace root.
pub const DASHBOARDS_DIR: &str = "deploy/grafana/dashboards";

/// uid of the overview dashboard.
pub const OVERVIEW_UID: &str = "mieruka-overview";
/// uid of the per-KPI drill-down.
pub const KPI_UID: &str = "mieruka-kpi";
/// uid of the pipeline-health dashboard.
pub const PIPELINE_UID: &str = "mieruka-pipeline";

/// Grafana's dashboard schema version the JSON is written for (Grafana 10/11).
const SCHEMA_VERSION: u32 = 39;

/// Every generated dashboard as (file name, pretty JSON with a final newline):
/// the overview, the per-KPI drill-down (one dashboard with a `kpi` variable) and the
/// pipeline health. Deterministic.
pub fn dashboards(plan: &Plan) -> Vec<(String, String)> {
    [
        (format!("{OVERVIEW_UID}.json"), overview(plan)),
        (format!("{KPI_UID}.json"), drill_down(plan)),
        (format!("{PIPELINE_UID}.json"), pipeline()),
    ]
    .into_iter()
    .map(|(name, v)| {
        let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
        text.push('\n');
        (name, text)
    })
    .collect()
}

// ---------------------------------------------------------------------------------------
// Building blocks.

fn ds() -> Value {
    json!({ "type": "prometheus", "uid": DATASOURCE_UID })
}

fn target(ref_id: &str, expr: &str, legend: &str, instant: bool) -> Value {
    json!({
        "datasource": ds(),
        "refId": ref_id,
        "expr": expr,
        "legendFormat": legend,
        "instant": instant,
        "range": !instant,
        "editorMode": "code",
    })
}

fn ref_id(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}

/// Places panels on Grafana's 24-column grid, left to right, and numbers them.
struct Grid {
    next_id: u32,
    x: u32,
    y: u32,
    row_height: u32,
    panels: Vec<Value>,
}

impl Grid {
    fn new() -> Self {
        Self {
            next_id: 1,
            x: 0,
            y: 0,
            row_height: 0,
            panels: Vec::new(),
        }
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
            self.x = 0;
            self.row_height = 0;
        }
    }

    fn add(&mut self, w: u32, h: u32, mut panel: Value) {
        if self.x + w > 24 {
            self.newline();
        }
        panel["id"] = json!(self.next_id);
        panel["gridPos"] = json!({ "h": h, "w": w, "x": self.x, "y": self.y });
        self.next_id += 1;
        self.x += w;
        self.row_height = self.row_height.max(h);
        self.panels.push(panel);
    }

    fn row(&mut self, title: &str, description: &str) {
        self.newline();
        let panel = json!({
            "type": "row",
            "title": title,
            "description": description,
            "collapsed": false,
            "panels": [],
        });
        self.add(24, 1, panel);
        self.newline();
    }
}

fn dashboard(
    uid: &str,
    title: &str,
    description: &str,
    time_from: &str,
    panels: Vec<Value>,
    variables: Vec<Value>,
) -> Value {
    let others: Vec<Value> = [
        (OVERVIEW_UID, "KPI 概況 / overview"),
        (KPI_UID, "KPI 詳細 / drill-down"),
        (PIPELINE_UID, "パイプライン / pipeline"),
    ]
    .into_iter()
    .filter(|(u, _)| *u != uid)
    .map(|(u, t)| {
        json!({
            "type": "link", "title": t, "url": format!("/d/{u}"),
            "icon": "dashboard", "keepTime": false, "includeVars": false,
            "asDropdown": false, "targetBlank": false, "tags": [], "tooltip": "",
        })
    })
    .collect();
    json!({
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["mieruka"],
        "timezone": "Asia/Tokyo",
        // Grafana's fiscal year starts in April (0-based month), so `now/fy` is the FY.
        "fiscalYearStartMonth": 3,
        "editable": true,
        "graphTooltip": 1,
        "liveNow": false,
        "refresh": "5m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": { "from": time_from, "to": "now" },
        "timepicker": {},
        "annotations": { "list": [] },
        "links": others,
        "templating": { "list": variables },
        "panels": panels,
    })
}

/// Grafana's unit for a plan unit: percent for `%`, else the unit as a suffix.
fn grafana_unit(kpi: &Kpi) -> String {
    if kpi.is_percent() {
        "percent".to_owned()
    } else if kpi.unit.is_empty() {
        "none".to_owned()
    } else {
        format!("suffix: {}", kpi.unit)
    }
}

fn stage_mappings(stages: &[Stage]) -> Value {
    let options: serde_json::Map<String, Value> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (i.to_string(), json!({ "index": i, "text": s.name_ja })))
        .collect();
    json!([{ "type": "value", "options": options }])
}

fn field_override(name: &str, properties: Value) -> Value {
    json!({ "matcher": { "id": "byName", "options": name }, "properties": properties })
}

fn has_any_target(kpi: &Kpi) -> bool {
    kpi.targets.values().any(Option::is_some)
}

fn chapter_title(id: &str, name_ja: &str) -> String {
    format!("第{id}章 {name_ja}")
}

fn kpi_description(kpi: &Kpi) -> String {
    let better = match kpi.direction {
        mieruka_aggregator::Direction::Up => "higher is better",
        mieruka_aggregator::Direction::Down => "lower is better",
    };
    let mut d = format!("{} ({}; {better}).", kpi.name_en, kpi.unit);
    if !has_any_target(kpi) {
        d.push_str(" 目標未設定 / the plan gives no target.");
    }
    if !kpi.source.is_empty() {
        d.push_str(&format!(" Source: {}.", kpi.source));
    }
    d
}

// ---------------------------------------------------------------------------------------
// The executive overview.

fn status_override(name: &str, milestone: bool) -> Value {
    let options = if milestone {
        json!({
            "1": { "index": 0, "text": "進行中 / in progress", "color": "orange" },
            "2": { "index": 1, "text": "達成 / reached", "color": "green" },
        })
    } else {
        json!({
            "0": { "index": 0, "text": "未達見込み / projected miss", "color": "red" },
            "1": { "index": 1, "text": "ペース遅れ / behind pace", "color": "orange" },
            "2": { "index": 2, "text": "順調 / on pace", "color": "green" },
        })
    };
    field_override(
        name,
        json!([
            { "id": "unit", "value": "none" },
            { "id": "decimals", "value": 0 },
            { "id": "mappings", "value": [{ "type": "value", "options": options }] },
            { "id": "color", "value": { "mode": "thresholds" } },
        ]),
    )
}

fn kpi_stat(kpi: &Kpi) -> Value {
    let sel = format!("{{kpi=\"{}\"}}", kpi.id);
    let cur = |figure: &str| format!("mieruka:kpi_{figure}:current_fy{sel}");
    let mut queries: Vec<(String, &str)> = Vec::new();
    let mut overrides = Vec::new();
    let (unit, decimals, mappings) = match kpi.stages() {
        Some(stages) => {
            if has_any_target(kpi) {
                queries.push((cur("milestone_status"), "状況"));
                overrides.push(status_override("状況", true));
            }
            queries.push((cur("milestone_stage"), "段階"));
            if has_any_target(kpi) {
                queries.push((cur("milestone_target_stage"), "目標段階"));
            }
            ("none".to_owned(), 0, stage_mappings(stages))
        }
        None => {
            if has_any_target(kpi) {
                queries.push((cur("status"), "状況"));
                overrides.push(status_override("状況", false));
            }
            queries.push((cur("value"), "実績"));
            if has_any_target(kpi) {
                queries.push((cur("target"), "目標"));
                queries.push((cur("attainment_ratio"), "達成率"));
                overrides.push(field_override(
                    "達成率",
                    json!([
                        { "id": "unit", "value": "percentunit" },
                        { "id": "decimals", "value": 0 },
                    ]),
                ));
            }
            (grafana_unit(kpi), kpi_decimals(kpi), json!([]))
        }
    };
    let targets: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (expr, legend))| target(&ref_id(i), expr, legend, true))
        .collect();
    json!({
        "type": "stat",
        "title": kpi.name_ja,
        "description": kpi_description(kpi),
        "datasource": ds(),
        "targets": targets,
        "links": [{
            "title": "詳細 / drill-down",
            "url": format!("/d/{KPI_UID}?var-kpi={}", kpi.id),
        }],
        "options": {
            "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
            "orientation": "horizontal",
            "textMode": "value_and_name",
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "wideLayout": true,
            "showPercentChange": false,
        },
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "decimals": decimals,
                "mappings": mappings,
                "color": { "mode": "fixed", "fixedColor": "transparent" },
                "thresholds": { "mode": "absolute", "steps": [{ "color": "green", "value": null }] },
                "noValue": "–",
            },
            "overrides": overrides,
        },
    })
}

fn overview(plan: &Plan) -> Value {
    let mut grid = Grid::new();
    grid.add(
        12,
        4,
        json!({
            "type": "text",
            "title": plan.name_ja,
            "description": plan.name_en,
            "options": {
                "mode": "markdown",
                "content": format!(
                    "各KPIの今年度の実績・目標・達成率。色は状況：緑＝順調、橙＝ペース遅れ（許容を超えて）、赤＝年度末に目標未達の見込み。パネルをクリックすると詳細へ。\n\n\
                     *{}: this fiscal year's value, target and attainment of each KPI. Colour: green on pace, orange behind pace beyond the tolerance, red projected to miss the year's target. Click a panel for its drill-down.*",
                    plan.name_en
                ),
            },
        }),
    );
    grid.add(
        6,
        4,
        json!({
            "type": "stat",
            "title": "今年度",
            "description": "The fiscal year in progress (April to March) and how much of it has elapsed.",
            "datasource": ds(),
            "targets": [target("A", "mieruka:kpi_elapsed_ratio:current_fy", "{{fiscal_year}}年度 経過", true)],
            "options": {
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "textMode": "value_and_name", "colorMode": "none", "graphMode": "none",
                "justifyMode": "auto", "orientation": "auto", "wideLayout": true,
                "showPercentChange": false,
            },
            "fieldConfig": { "defaults": { "unit": "percentunit", "decimals": 0 }, "overrides": [] },
        }),
    );
    grid.add(
        6,
        4,
        json!({
            "type": "stat",
            "title": "ペース遅れ・未達見込みのKPI",
            "description": "KPIs behind pace beyond their tolerance (orange) or projected to miss the year's target (red), now.",
            "datasource": ds(),
            "targets": [
                target("A", "count(mieruka:kpi_status:current_fy == 1) or vector(0)", "ペース遅れ", true),
                target("B", "count(mieruka:kpi_status:current_fy == 0) or vector(0)", "未達見込み", true),
            ],
            "options": {
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "textMode": "value_and_name", "colorMode": "background", "graphMode": "none",
                "justifyMode": "auto", "orientation": "auto", "wideLayout": true,
                "showPercentChange": false,
            },
            "fieldConfig": {
                "defaults": {
                    "unit": "none", "decimals": 0,
                    "color": { "mode": "thresholds" },
                    "thresholds": { "mode": "absolute", "steps": [
                        { "color": "green", "value": null },
                        { "color": "orange", "value": 1 },
                    ]},
                },
                "overrides": [field_override("未達見込み", json!([
                    { "id": "thresholds", "value": { "mode": "absolute", "steps": [
                        { "color": "green", "value": null },
                        { "color": "red", "value": 1 },
                    ]}},
                ]))],
            },
        }),
    );
    for chapter in &plan.chapters {
        grid.row(
            &chapter_title(&chapter.id, &chapter.name_ja),
            &format!("Chapter {}: {}", chapter.id, chapter.name_en),
        );
        for kpi in plan.kpis.iter().filter(|k| k.chapter == chapter.id) {
            grid.add(8, 6, kpi_stat(kpi));
        }
    }
    dashboard(
        OVERVIEW_UID,
        "KPI 概況（今年度）",
        &format!(
            "{} — each KPI of the plan against this fiscal year's target, one row per chapter. Generated from the plan {} by `mieruka dashboards`; do not edit.",
            plan.name_en, plan.id
        ),
        "now/fy",
        grid.panels,
        Vec::new(),
    )
}

// ---------------------------------------------------------------------------------------
// The per-KPI drill-down.

fn drill_down(plan: &Plan) -> Value {
    // Grafana's custom variable: "text : value" pairs separated by commas.
    let clean = |s: &str| s.replace(',', "、").replace(" : ", "：");
    let query = plan
        .kpis
        .iter()
        .map(|k| format!("{} : {}", clean(&k.name_ja), k.id))
        .collect::<Vec<_>>()
        .join(",");
    let options: Vec<Value> = plan
        .kpis
        .iter()
        .enumerate()
        .map(|(i, k)| json!({ "text": clean(&k.name_ja), "value": k.id, "selected": i == 0 }))
        .collect();
    let first = plan.kpis.first();
    let kpi_var = json!({
        "type": "custom",
        "name": "kpi",
        "label": "KPI",
        "description": "The KPI to show (the plan's Japanese name).",
        "query": query,
        "options": options,
        "current": first.map_or(json!({}), |k| json!({ "text": clean(&k.name_ja), "value": k.id, "selected": true })),
        "multi": false,
        "includeAll": false,
        "hide": 0,
        "skipUrlSync": false,
    });
    let fy_query = "query_result(max by (fiscal_year) (mieruka_kpi_elapsed_ratio > 0))";
    let fy_var = json!({
        "type": "query",
        "name": "fiscal_year",
        "label": "年度",
        "description": "Fiscal years that have started, newest (the current one) first.",
        "datasource": ds(),
        "definition": fy_query,
        "query": { "query": fy_query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 3 },
        "regex": "/fiscal_year=\"(\\d+)\"/",
        "sort": 4,
        "refresh": 1,
        "current": {},
        "options": [],
        "multi": false,
        "includeAll": false,
        "hide": 0,
        "skipUrlSync": false,
    });

    let sel = "kpi=\"$kpi\",fiscal_year=\"$fiscal_year\"";
    let fig = |figure: &str| format!("max(mieruka_kpi_{figure}{{{sel}}})");
    let mut grid = Grid::new();
    grid.add(
        18,
        5,
        json!({
            "type": "stat",
            "title": "${kpi:text}（${fiscal_year}年度）",
            "description": "The KPI's figures in the chosen fiscal year: value, target, pace (where it should be now on a straight line to the target), projection (where it will end at today's speed), attainment (1 = target met) and drift (value − pace, direction-aware: negative is behind).",
            "datasource": ds(),
            "targets": [
                target("A", &fig("value"), "実績", true),
                target("B", &fig("target"), "目標", true),
                target("C", &fig("pace"), "ペース", true),
                target("D", &fig("projection"), "見通し", true),
                target("E", &fig("attainment_ratio"), "達成率", true),
                target("F", &fig("drift"), "ドリフト", true),
            ],
            "options": {
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "textMode": "value_and_name", "colorMode": "none", "graphMode": "none",
                "justifyMode": "auto", "orientation": "auto", "wideLayout": true,
                "showPercentChange": false,
            },
            "fieldConfig": {
                "defaults": { "unit": "none", "decimals": 2, "noValue": "–" },
                "overrides": [field_override("達成率", json!([
                    { "id": "unit", "value": "percentunit" }, { "id": "decimals", "value": 0 },
                ]))],
            },
        }),
    );
    grid.add(
        6,
        5,
        json!({
            "type": "stat",
            "title": "単位・データ時点",
            "description": "The KPI's English name, unit and direction, and the latest event time behind its value (monthly and yearly feeds are as of a date).",
            "datasource": ds(),
            "targets": [
                target("A", "max by (name_en, unit, direction) (mieruka_kpi_info{kpi=\"$kpi\"})", "{{name_en}} ({{unit}}, {{direction}})", true),
                target("B", "max(mieruka_kpi_as_of_timestamp_seconds{kpi=\"$kpi\"}) * 1000", "データ時点 / as of", true),
            ],
            "options": {
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "textMode": "name", "colorMode": "none", "graphMode": "none",
                "justifyMode": "auto", "orientation": "horizontal", "wideLayout": true,
                "showPercentChange": false,
            },
            "fieldConfig": {
                "defaults": { "unit": "none" },
                "overrides": [field_override("データ時点 / as of", json!([
                    { "id": "unit", "value": "dateTimeAsIso" },
                ]))],
            },
        }),
    );
    let line = |dash: bool, color: &str| {
        let mut props =
            vec![json!({ "id": "color", "value": { "mode": "fixed", "fixedColor": color } })];
        if dash {
            props.push(
                json!({ "id": "custom.lineStyle", "value": { "fill": "dash", "dash": [10, 10] } }),
            );
        }
        Value::Array(props)
    };
    let timeseries = |title: &str,
                      description: &str,
                      targets: Vec<Value>,
                      unit: &str,
                      overrides: Vec<Value>,
                      step: bool| {
        json!({
            "type": "timeseries",
            "title": title,
            "description": description,
            "datasource": ds(),
            "targets": targets,
            "options": {
                "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": [] },
                "tooltip": { "mode": "multi", "sort": "none" },
            },
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "custom": {
                        "drawStyle": "line",
                        "lineInterpolation": if step { "stepAfter" } else { "linear" },
                        "lineWidth": 2, "fillOpacity": 0, "showPoints": "never", "spanNulls": false,
                    },
                },
                "overrides": overrides,
            },
        })
    };
    grid.add(
        24,
        10,
        timeseries(
            "実績・目標・ペース・見通し",
            "Value over time in the chosen fiscal year, with the year's target, the pace line (where the value should be on a straight line from the year's start to the target) and the projection (where it ends at today's speed; none in the first month).",
            vec![
                target("A", &fig("value"), "実績 / value", false),
                target("B", &fig("target"), "目標 / target", false),
                target("C", &fig("pace"), "ペース / pace", false),
                target("D", &fig("projection"), "見通し / projection", false),
            ],
            "none",
            vec![
                field_override("目標 / target", line(true, "red")),
                field_override("ペース / pace", line(true, "yellow")),
                field_override("見通し / projection", line(true, "blue")),
            ],
            false,
        ),
    );
    grid.add(
        12,
        8,
        timeseries(
            "ペースとの差（ドリフト）",
            "Drift = direction × (value − pace): negative is behind. Below the −tolerance line for longer than the KPI's behind_for, MierukaKpiBehindPace fires.",
            vec![
                target("A", &fig("drift"), "ドリフト / drift", false),
                target("B", &format!("-{}", fig("tolerance")), "許容下限 / −tolerance", false),
            ],
            "none",
            vec![field_override("許容下限 / −tolerance", line(true, "red"))],
            false,
        ),
    );
    grid.add(
        12,
        8,
        timeseries(
            "達成率",
            "Attainment: how far from the year's start to the target the KPI has come (1 = target met).",
            vec![target("A", &fig("attainment_ratio"), "達成率 / attainment", false)],
            "percentunit",
            Vec::new(),
            false,
        ),
    );
    grid.add(
        12,
        8,
        timeseries(
            "マイルストーン段階",
            "Milestone KPIs only: the index of the highest stage reached (0 = the first stage) and the year's target stage.",
            vec![
                target("A", &fig("milestone_stage"), "段階 / stage", false),
                target("B", &fig("milestone_target_stage"), "目標段階 / target stage", false),
            ],
            "none",
            vec![field_override("目標段階 / target stage", line(true, "red"))],
            true,
        ),
    );
    let by_year =
        |figure: &str| format!("max by (fiscal_year) (mieruka_kpi_{figure}{{kpi=\"$kpi\"}})");
    let table_target = |r: &str, figure: &str| {
        let mut t = target(r, &by_year(figure), "", true);
        t["format"] = json!("table");
        t
    };
    grid.add(
        12,
        8,
        json!({
            "type": "table",
            "title": "年度別の実績と目標",
            "description": "Every exported fiscal year: value (a closed year keeps its final value), target and the plan's baseline.",
            "datasource": ds(),
            "targets": [
                table_target("A", "value"),
                table_target("B", "target"),
                table_target("C", "baseline"),
            ],
            "transformations": [
                { "id": "merge", "options": {} },
                { "id": "organize", "options": {
                    "excludeByName": { "Time": true },
                    "renameByName": {
                        "fiscal_year": "年度 / FY",
                        "Value #A": "実績 / value",
                        "Value #B": "目標 / target",
                        "Value #C": "基準値 / baseline",
                    },
                    "indexByName": {},
                }},
                { "id": "sortBy", "options": { "sort": [{ "field": "年度 / FY", "desc": false }] } },
            ],
            "options": { "showHeader": true, "cellHeight": "sm", "footer": { "show": false, "reducer": ["sum"], "fields": "" } },
            "fieldConfig": { "defaults": { "decimals": 2, "noValue": "–" }, "overrides": [] },
        }),
    );
    dashboard(
        KPI_UID,
        "KPI 詳細",
        "One KPI of the plan over time: value against the fiscal year's target, the pace line and the projection. Pick the KPI and the fiscal year above. Generated from the plan by `mieruka dashboards`; do not edit.",
        "now/fy",
        grid.panels,
        vec![kpi_var, fy_var],
    )
}

// ---------------------------------------------------------------------------------------
// Pipeline health.

fn pipeline() -> Value {
    let mut grid = Grid::new();
    let ts = |title: &str, description: &str, targets: Vec<Value>, unit: &str| {
        json!({
            "type": "timeseries",
            "title": title,
            "description": description,
            "datasource": ds(),
            "targets": targets,
            "options": {
                "legend": { "displayMode": "table", "placement": "right", "showLegend": true, "calcs": ["lastNotNull"] },
                "tooltip": { "mode": "multi", "sort": "desc" },
            },
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "custom": { "drawStyle": "line", "lineInterpolation": "linear", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false },
                },
                "overrides": [],
            },
        })
    };
    let stat = |title: &str, description: &str, expr: &str, unit: &str, steps: Value| {
        json!({
            "type": "stat",
            "title": title,
            "description": description,
            "datasource": ds(),
            "targets": [target("A", expr, "", true)],
            "options": {
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "textMode": "value", "colorMode": "background", "graphMode": "area",
                "justifyMode": "auto", "orientation": "auto", "wideLayout": true,
                "showPercentChange": false,
            },
            "fieldConfig": {
                "defaults": {
                    "unit": unit, "noValue": "–",
                    "color": { "mode": "thresholds" },
                    "thresholds": { "mode": "absolute", "steps": steps },
                },
                "overrides": [],
            },
        })
    };
    let silent_after = rules::parse_duration(rules::DEFAULT_CADENCE).unwrap_or(172_800);
    grid.add(
        6,
        5,
        stat(
            "KPI数値の経過時間",
            "Age of the exporter's figures (recomputed after each batch and every 60 s); MierukaSnapshotStale past 5 minutes.",
            "max(mieruka_snapshot_age_seconds)",
            "s",
            json!([{ "color": "green", "value": null }, { "color": "red", "value": rules::SNAPSHOT_MAX_AGE_SECONDS }]),
        ),
    );
    grid.add(
        6,
        5,
        stat(
            "拒否（直近24時間）",
            "Events rejected in the last 24 hours, all sources (each rejection names its reason; see the panel below).",
            "sum(increase(mieruka_events_total{outcome=\"rejected\"}[24h])) or vector(0)",
            "none",
            json!([{ "color": "green", "value": null }, { "color": "orange", "value": 1 }]),
        ),
    );
    grid.add(
        6,
        5,
        stat(
            "重複（直近24時間）",
            "Duplicate deliveries in the last 24 hours (same source and event id, same body): counted once, reported, harmless.",
            "sum(increase(mieruka_events_total{outcome=\"duplicate\"}[24h])) or vector(0)",
            "none",
            json!([{ "color": "green", "value": null }]),
        ),
    );
    grid.add(
        6,
        5,
        stat(
            "受理（直近24時間）",
            "Events accepted in the last 24 hours, all sources.",
            "sum(increase(mieruka_events_total{outcome=\"accepted\"}[24h])) or vector(0)",
            "none",
            json!([{ "color": "green", "value": null }]),
        ),
    );
    grid.add(
        12,
        9,
        ts(
            "受信イベント（連携元・結果別）",
            "Events per second by source and outcome (accepted, duplicate, rejected).",
            vec![target(
                "A",
                "sum by (source, outcome) (rate(mieruka_events_total[5m]))",
                "{{source}} {{outcome}}",
                false,
            )],
            "short",
        ),
    );
    grid.add(
        12,
        9,
        ts(
            "拒否理由（1時間あたり）",
            "Rejected events in the last hour by source and reason code (the closed list of DESIGN.md); MierukaRejectedEvents past the configured rate.",
            vec![target(
                "A",
                "sum by (source, reason) (increase(mieruka_events_total{outcome=\"rejected\"}[1h]))",
                "{{source}} {{reason}}",
                false,
            )],
            "short",
        ),
    );
    grid.add(
        12,
        9,
        json!({
            "type": "bargauge",
            "title": "最終受信からの経過時間（連携元別）",
            "description": "Time since each line system's last event; MierukaFeedSilent fires past its expected cadence (default 2 days).",
            "datasource": ds(),
            "targets": [target("A", "time() - max by (source) (mieruka_source_last_received_timestamp_seconds)", "{{source}}", true)],
            "options": {
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "orientation": "horizontal", "displayMode": "basic", "showUnfilled": true,
                "valueMode": "color", "namePlacement": "left", "sizing": "auto",
                "minVizHeight": 16, "minVizWidth": 8, "maxVizHeight": 300,
            },
            "fieldConfig": {
                "defaults": {
                    "unit": "s", "min": 0,
                    "color": { "mode": "thresholds" },
                    "thresholds": { "mode": "absolute", "steps": [
                        { "color": "green", "value": null },
                        { "color": "orange", "value": silent_after / 2 },
                        { "color": "red", "value": silent_after },
                    ]},
                },
                "overrides": [],
            },
        }),
    );
    grid.add(
        12,
        9,
        ts(
            "Kafka 消費遅延",
            "Messages not yet consumed by the aggregators, per topic and partition (Kafka roles only; absent in standalone).",
            vec![target(
                "A",
                "sum by (topic, partition) (mieruka_consumer_lag)",
                "{{topic}}/{{partition}}",
                false,
            )],
            "short",
        ),
    );
    grid.add(
        24,
        8,
        ts(
            "コミット所要時間",
            "Time to commit a batch of aggregates with its source positions in one transaction (p50 and p99 over 5 minutes).",
            vec![
                target(
                    "A",
                    "histogram_quantile(0.5, sum by (le) (rate(mieruka_commit_duration_seconds_bucket[5m])))",
                    "p50",
                    false,
                ),
                target(
                    "B",
                    "histogram_quantile(0.99, sum by (le) (rate(mieruka_commit_duration_seconds_bucket[5m])))",
                    "p99",
                    false,
                ),
            ],
            "s",
        ),
    );
    dashboard(
        PIPELINE_UID,
        "パイプライン稼働状況",
        "Health of the event pipeline: events accepted, duplicate and rejected by source and reason, time since each line system's last event, Kafka consumer lag, commit latency and the age of the exported figures. Generated by `mieruka dashboards`; do not edit.",
        "now-24h",
        grid.panels,
        Vec::new(),
    )
}
