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

mod drill_down;
mod overview;
mod pipeline;

use drill_down::drill_down;
use overview::overview;
use pipeline::pipeline;

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
