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

/// The monthly mapping without an id column: ids from 集計月 and 地区, totals skipped.
fn by_district(extra: Json) -> CsvMapping {
    let mut base = serde_json::json!({
        "event_id": null,
        "event_id_columns": ["集計月", "地区"],
        "skip_when": {"地区": ["合計", "総計"]}
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    monthly(base)
}

const DISTRICTS: &str = "集計月,地区,人口\r\n\
    令和8年10月,東町,\"1,200\"\r\n\
    \r\n\
    ,,\r\n\
    令和8年10月,西町,800\r\n\
    令和8年10月,合計,\"2,000\"\r\n\
    令和8年10月,西町,800\r\n\
    令和8年10月,総計,\"2,000\"\r\n";

#[test]
fn totals_rows_and_blank_lines_are_skipped_by_rule_and_line_numbers_stay_right() {
    let r = rows(DISTRICTS, &by_district(serde_json::json!({})));
    let lines: Vec<u64> = r.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 5, 7]);
    assert!(r.iter().all(|r| r.column_error.is_none()));

    let no_rule = by_district(serde_json::json!({"skip_when": {}}));
    assert_eq!(
        rows(DISTRICTS, &no_rule).len(),
        5,
        "blank lines skip without a rule"
    );

    let unknown = by_district(serde_json::json!({"skip_when": {"区分": ["合計"]}}));
    let err = csv_events(DISTRICTS, &unknown, &schema()).unwrap_err();
    assert!(matches!(err, ImportError::MissingColumn { .. }), "{err}");
}

#[test]
fn ids_built_from_columns_keep_identical_rows_apart_and_repeat_on_reimport() {
    let m = by_district(serde_json::json!({}));
    let ids: Vec<String> = rows(DISTRICTS, &m)
        .iter()
        .map(|r| json(r)["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_ne!(ids[1], ids[2], "two identical rows stay two events");
    assert!(ids
        .iter()
        .all(|id| id.len() == 32 && id.bytes().all(|b| (b'a'..=b'p').contains(&b))));
    let again: Vec<String> = rows(DISTRICTS, &m)
        .iter()
        .map(|r| json(r)["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, again, "the same file gives the same ids");
    for r in rows(DISTRICTS, &m) {
        assert!(decode(&schema(), &r.json).is_ok());
    }
}

#[test]
fn an_empty_id_cell_names_its_column_and_the_id_rule_must_be_exactly_one() {
    let m = by_district(serde_json::json!({"skip_when": {}}));
    let r = rows("集計月,地区,人口\n令和8年10月,,5\n", &m);
    assert_eq!(r[0].column_error.as_ref().unwrap().0, "地区");
    assert_eq!(
        decode(&schema(), &r[0].json).unwrap_err().reason,
        crate::Reason::EmptyId
    );

    let schema = schema();
    for extra in [
        serde_json::json!({"event_id": "集計月"}),
        serde_json::json!({"event_id_columns": []}),
        serde_json::json!({"event_id_columns": ["地区", "地区"]}),
    ] {
        let err = csv_events(DISTRICTS, &by_district(extra.clone()), &schema);
        assert!(matches!(err, Err(ImportError::Mapping(_))), "{extra}");
    }
}

#[test]
fn grouped_and_full_width_numbers_parse_and_a_bad_grouping_is_a_cell_error() {
    let m = monthly(serde_json::json!({}));
    let text = "番号,集計月,人口\n\
        1,令和8年10月,\"128,900\"\n\
        2,令和8年10月,１２８，９００\n\
        3,令和8年10月,\"1,28,900\"\n\
        4,令和8年10月,\"1,2890\"\n";
    let r = rows(text, &m);
    assert_eq!(json(&r[0])["data"]["population"], 128_900);
    assert_eq!(json(&r[1])["data"]["population"], 128_900);
    for bad in &r[2..] {
        assert_eq!(bad.column_error.as_ref().unwrap().0, "人口");
    }

    let hours: CsvMapping = serde_json::from_value(serde_json::json!({
        "source": "bpr", "type": "bpr.hours_saved", "event_id": "id",
        "occurred_at": "日付", "time_format": "%E.%m.%d",
        "fields": {"hours": "時間"}
    }))
    .unwrap();
    let r = rows(
        "id,日付,時間\na,R8.5.1,\"1,234.5\"\nb,R8.5.1,１．２５\n",
        &hours,
    );
    assert_eq!(json(&r[0])["data"]["hours"], 1234.5);
    assert_eq!(json(&r[1])["data"]["hours"], 1.25);
}

#[test]
fn cp932_nec_and_ibm_extensions_decode_and_map_through_a_value_map() {
    // ① and ㈱ (NEC row 13: 0x8740, 0x878A), 髙 as an IBM extension (0xFBFC) and as
    // its NEC-selected copy (0xEEE0): bytes plain Shift_JIS (JIS X 0208) lacks.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&encoding_rs::SHIFT_JIS.encode("id,日付,時間,取組\r\n").0);
    bytes.extend_from_slice(b"a,R8.5.1,1,");
    bytes.extend_from_slice(&[0x87, 0x40, 0x87, 0x8A, 0xFB, 0xFC, 0xEE, 0xE0]);
    bytes.extend_from_slice(b"\r\n");
    assert_eq!(detect_encoding(&bytes), Encoding::ShiftJis);
    let text = decode_text(&bytes, Encoding::ShiftJis).unwrap();
    assert!(text.contains("①㈱髙髙"), "{text}");

    let m: CsvMapping = serde_json::from_value(serde_json::json!({
        "source": "bpr", "type": "bpr.hours_saved", "event_id": "id",
        "occurred_at": "日付", "time_format": "%E.%m.%d",
        "fields": {"hours": "時間", "initiative": "取組"},
        "values": {"initiative": {"①㈱髙髙": "nec_ibm"}}
    }))
    .unwrap();
    let r = rows(&text, &m);
    assert_eq!(r[0].column_error, None);
    assert_eq!(json(&r[0])["data"]["initiative"], "nec_ibm");
}

#[test]
fn keep_when_imports_only_the_rows_it_names() {
    let m = by_district(serde_json::json!({"skip_when": {}, "keep_when": {"地区": ["合計"]}}));
    let r = rows(DISTRICTS, &m);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].line, 6);
    assert_eq!(json(&r[0])["data"]["population"], 2000);
}

#[test]
fn the_worked_population_fixture_maps_its_two_totals_rows() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    #[derive(serde::Deserialize)]
    struct File {
        csv_mappings: std::collections::BTreeMap<String, CsvMapping>,
    }
    let toml_text = std::fs::read_to_string(dir.join("population.mapping.toml")).unwrap();
    let file: File = toml::from_str(&toml_text).unwrap();
    let bytes = std::fs::read(dir.join("population_monthly_sjis.csv")).unwrap();
    assert_eq!(detect_encoding(&bytes), Encoding::ShiftJis);
    let text = decode_text(&bytes, Encoding::ShiftJis).unwrap();
    let r = rows(&text, &file.csv_mappings["juki_monthly"]);
    let got: Vec<(u64, Json, Json)> = r
        .iter()
        .map(|r| {
            let j = json(r);
            (
                r.line,
                j["occurred_at"].clone(),
                j["data"]["population"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (6, "2026-08-31T23:59:59+09:00".into(), 129_012.into()),
            (12, "2026-09-30T23:59:59+09:00".into(), 128_900.into()),
        ]
    );
}

#[test]
fn a_quoted_cell_with_commas_and_a_line_break_is_one_cell_and_later_lines_stay_right() {
    let m = by_district(serde_json::json!({"skip_when": {}}));
    let text = "集計月,地区,人口\r\n\
        令和8年9月,\"東町,\r\n西町\",\"1,000\"\r\n\
        令和8年9月,南町,900\r\n";
    let r = rows(text, &m);
    assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 4]);
    assert!(r.iter().all(|r| r.column_error.is_none()));
    assert_eq!(json(&r[0])["data"]["population"], 1000);
}
