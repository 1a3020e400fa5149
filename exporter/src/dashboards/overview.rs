//! The executives' overview: one stat per KPI of the current fiscal year, coloured by
//! its standing, grouped by chapter.

use super::*;

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

pub(super) fn overview(plan: &Plan) -> Value {
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
