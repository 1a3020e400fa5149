//! Files the way cities have them: era dates, monthly exports, grouped numbers,
//! totals rows, rows without an id column, CP932 extensions.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::*;
use crate::decode;

fn schema() -> Schema {
    let decls = serde_json::json!({
        "population.snapshot": {
            "fields": {"population": {"kind": "int", "min": 1}}
        },
        "bpr.hours_saved": {
            "fields": {
                "hours": {"kind": "decimal", "scale": 2, "min": 0.01},
                "initiative": {"kind": "enum", "values": ["nec_ibm", "plain"]}
            }
        }
    });
    let decls = serde_json::from_value(decls).unwrap();
    Schema::new(&decls, HashMap::new()).unwrap()
}

/// A monthly population export's mapping, with `extra` keys merged in.
fn monthly(extra: Json) -> CsvMapping {
    let mut m = serde_json::json!({
        "source": "juki",
        "type": "population.snapshot",
        "event_id": "番号",
        "occurred_at": "集計月",
        "time_format": "%E年%m月",
        "month_day": "last",
        "month_time": "23:59:59",
        "fields": {"population": "人口"}
    });
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    serde_json::from_value(m).unwrap()
}

fn json(raw: &RawLine) -> Json {
    serde_json::from_slice(&raw.json).unwrap()
}

fn rows(text: &str, m: &CsvMapping) -> Vec<RawLine> {
    csv_events(text, m, &schema()).unwrap()
}

#[test]
fn a_month_only_date_stands_for_the_declared_day_and_time_of_its_month() {
    let text = "番号,集計月,人口\n1,令和8年10月,\"128,900\"\n2,令和8年2月,128000\n";
    let r = rows(text, &monthly(serde_json::json!({})));
    assert_eq!(json(&r[0])["occurred_at"], "2026-10-31T23:59:59+09:00");
    assert_eq!(json(&r[1])["occurred_at"], "2026-02-28T23:59:59+09:00");
    assert!(r.iter().all(|r| r.column_error.is_none()));

    let first = monthly(serde_json::json!({"month_day": 1, "month_time": null}));
    let r = rows("番号,集計月,人口\n1,令和8年10月,5\n", &first);
    assert_eq!(json(&r[0])["occurred_at"], "2026-10-01T00:00:00+09:00");

    let western = monthly(serde_json::json!({"time_format": "%Y年%m月", "month_day": "15"}));
    let r = rows("番号,集計月,人口\n1,２０２６年１０月,5\n", &western);
    assert_eq!(json(&r[0])["occurred_at"], "2026-10-15T23:59:59+09:00");
}

#[test]
fn a_month_day_past_the_months_end_is_a_cell_error_and_bad_month_keys_are_mapping_errors() {
    let m = monthly(serde_json::json!({"month_day": 31}));
    let r = rows("番号,集計月,人口\n1,令和8年10月,5\n2,令和8年11月,5\n", &m);
    assert!(r[0].column_error.is_none());
    let (col, msg) = r[1].column_error.clone().unwrap();
    assert_eq!(col, "集計月");
    assert!(msg.contains("month_day"), "{msg}");

    let schema = schema();
    for extra in [
        serde_json::json!({"month_day": null}),
        serde_json::json!({"month_day": 0}),
        serde_json::json!({"month_day": "first"}),
        serde_json::json!({"month_time": "24:00"}),
        serde_json::json!({"time_format": "%E年%m月%d日"}),
        serde_json::json!({"time_format": "%E年%m月 %H時"}),
    ] {
        let err = csv_events("番号,集計月,人口\n", &monthly(extra.clone()), &schema);
        assert!(matches!(err, Err(ImportError::Mapping(_))), "{extra}");
    }
}

#[test]
fn an_impossible_era_date_names_the_column_and_never_quotes_the_cell() {
    let m = monthly(
        serde_json::json!({"time_format": "%E年%m月%d日", "month_day": null, "month_time": null}),
    );
    let r = rows(
        "番号,集計月,人口\n1,平成32年1月1日,5\n2,令和0年5月1日,5\n",
        &m,
    );
    for row in &r {
        let (col, msg) = row.column_error.clone().unwrap();
        assert_eq!(col, "集計月");
        assert!(msg.contains("era"), "{msg}");
        assert!(!msg.contains("32") && !msg.contains("令和0"), "{msg}");
        assert_eq!(
            decode(&schema(), &row.json).unwrap_err().reason,
            crate::Reason::BadTimestamp
        );
    }
}
