//! The per-KPI drill-down: a KPI's figures over a fiscal year, chosen by variables.

use super::*;

// ---------------------------------------------------------------------------------------
// The per-KPI drill-down.

pub(super) fn drill_down(plan: &Plan) -> Value {
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
