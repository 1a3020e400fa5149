//! The pipeline's health: events accepted, rejected and duplicated, time since each
//! source's last event, consumer lag, commit time, the age of the exporter's figures,
//! and the requests refused whole (by reason and token).

use super::*;

// ---------------------------------------------------------------------------------------
// Pipeline health.

pub(super) fn pipeline() -> Value {
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
            "Rejected events in the last hour by source and reason code (the closed list of docs/architecture.md); MierukaRejectedEvents past the configured rate.",
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
            "description": "Time since each line system's last event; MierukaFeedSilent fires when a source with a [sources] cadence is past its next-due instant (mieruka_source_next_due_timestamp_seconds, from its office calendar) plus its grace, or when another is silent past its [rules] cadence (default 2 days).",
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
    grid.add(
        24,
        8,
        ts(
            "拒否されたリクエスト（理由・トークン別）",
            "Requests to /v1/events refused whole in the last hour, by reason and the configured name of the token presented (unknown when none matched): unknown_token after a token rotation, expired after a token's expires, content_type, too_large, … Nothing of them is kept; the ingest role logs each with the client's address (docs/runbook.md, MierukaFeedSilent).",
            vec![target(
                "A",
                "sum by (token, reason) (increase(mieruka_http_refused_total[1h]))",
                "{{token}} {{reason}}",
                false,
            )],
            "short",
        ),
    );
    dashboard(
        PIPELINE_UID,
        "パイプライン稼働状況",
        "Health of the event pipeline: events accepted, duplicate and rejected by source and reason, time since each line system's last event, Kafka consumer lag, commit latency, the age of the exported figures and the requests refused whole by reason and token. Generated by `mieruka dashboards`; do not edit.",
        "now-24h",
        grid.panels,
        Vec::new(),
    )
}
