//! The vendor contract (`mieruka schema`): the committed copies under docs/ are the
//! plan's, a maintained JSON Schema validator agrees with the receiver on the demo's
//! events, the examples and refused payloads, the OpenAPI document validates against
//! the OpenAPI 3.1 meta-schema (tests/fixtures/openapi-3.1.schema.json, the schema the
//! OpenAPI Initiative publishes, as shipped by the openapi-spec-validator package) and
//! every reply the receiver gives validates against the response it documents.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mieruka::commands::schema::{contract_files, SCHEMA_DIR};
use mieruka::demo::{generate, DemoOptions};
use mieruka_aggregator::plan::Plan;
use mieruka_ingest::contract::{event_schema, example_event, openapi::openapi};
use mieruka_ingest::{FieldKind, Schema, TimeWindow, Timestamp};
use serde_json::{json, Value};

use crate::helpers::{TestApp, KONBINI_TOKEN};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ome() -> Plan {
    Plan::ome().unwrap()
}

/// A validator of the schema at `pointer` inside `doc` (its `$ref`s resolved there).
fn validator_at(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$schema"] = json!(mieruka_ingest::contract::DIALECT);
    root["$ref"] = json!(format!("#{pointer}"));
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{pointer}: {e}"))
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The plan's schema with "now" pinned where the examples lie.
fn pinned(plan: &Plan) -> Schema {
    let mut schema = plan.schema.clone();
    schema.set_window(TimeWindow {
        now: Timestamp::parse_rfc3339("2026-10-01T00:00:00+09:00").ok(),
        ..*plan.schema.window()
    });
    schema
}

#[test]
fn the_committed_contract_under_docs_is_the_plans() {
    let docs = root().join("docs");
    let fix = "run `cargo run -- schema --out docs` and commit docs/";
    let files = contract_files(&ome());
    for (rel, want) in &files {
        let path = docs.join(rel);
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == *want,
            "{} is stale against plans/ome.toml: {fix}",
            path.display()
        );
    }
    let committed: BTreeSet<String> = std::fs::read_dir(docs.join(SCHEMA_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let generated: BTreeSet<String> = files
        .iter()
        .filter_map(|(p, _)| p.strip_prefix(SCHEMA_DIR).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        committed, generated,
        "docs/schema/ holds other files than the plan's types: {fix}"
    );
}

#[test]
fn a_schema_change_to_the_plan_changes_the_generated_contract() {
    // What the staleness test rests on: the plan, not a hand-kept list, is the source.
    let text = mieruka_aggregator::plan::OME_PLAN.replace(
        r#"values = ["konbini", "counter", "mail", "online"]"#,
        r#"values = ["konbini", "counter", "mail", "online", "kiosk"]"#,
    );
    let changed = Plan::parse("changed.toml", &text).unwrap();
    let before = contract_files(&ome());
    let after = contract_files(&changed);
    let differ: Vec<String> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0.display().to_string())
        .collect();
    assert_eq!(
        differ,
        [
            "schema/certificate.issued.json",
            "openapi.json",
            "events.md"
        ],
        "a new enum value must show in the type's schema, the OpenAPI document and events.md"
    );
}

#[test]
fn every_event_of_the_demo_validates_against_its_types_schema() {
    let plan = ome();
    let schemas: BTreeMap<String, jsonschema::Validator> = plan
        .schema
        .types()
        .iter()
        .map(|t| {
            let v = jsonschema::validator_for(&event_schema(&plan.schema, t)).unwrap();
            (t.name.clone(), v)
        })
        .collect();
    let now = Timestamp::parse_rfc3339(crate::helpers::NOW).unwrap();
    let events = generate(&plan, &DemoOptions { now, seed: 7 });
    assert!(events.len() > 10_000, "{}", events.len());
    // Every distinct (type, data) once: ids and times vary, but their checks are few.
    let mut seen = BTreeSet::new();
    let mut types = BTreeSet::new();
    for raw in &events {
        let event: Value = serde_json::from_str(raw).unwrap();
        let ty = event["type"].as_str().unwrap().to_owned();
        if !seen.insert((ty.clone(), event["data"].to_string())) {
            continue;
        }
        let errs = errors(&schemas[&ty], &event);
        assert!(errs.is_empty(), "{raw}: {errs:?}");
        types.insert(ty);
    }
    assert!(types.len() >= 20, "the demo sends most types: {types:?}");
}

#[test]
fn each_types_example_passes_the_schema_and_the_receiver() {
    let plan = ome();
    let schema = pinned(&plan);
    for ty in plan.schema.types() {
        let example = example_event(&plan.schema, ty);
        let v = jsonschema::validator_for(&event_schema(&plan.schema, ty)).unwrap();
        assert_eq!(errors(&v, &example), Vec::<String>::new(), "{}", ty.name);
        let decoded = mieruka_ingest::decode(&schema, example.to_string().as_bytes());
        assert!(decoded.is_ok(), "{}: {decoded:?}", ty.name);
    }
}

/// Refused payloads: each fails the schema and is refused by the receiver.
#[test]
fn payloads_the_receiver_refuses_fail_the_schema_too() {
    let plan = ome();
    let schema = pinned(&plan);
    let ty = |name: &str| plan.schema.event_type(plan.schema.type_id(name).unwrap());
    let cert = example_event(&plan.schema, ty("certificate.issued"));
    let stage = example_event(&plan.schema, ty("milestone.reached"));
    let mut cases: Vec<(&str, &str, Value)> = Vec::new();
    let mut bad = cert.clone();
    bad["data"]["channel"] = json!("conbini");
    cases.push(("a misspelt enum value", "unknown_value", bad));
    let mut bad = cert.clone();
    bad["data"].as_object_mut().unwrap().remove("channel");
    cases.push(("a missing required field", "missing_field", bad));
    let mut bad = cert.clone();
    bad["data"]["memo"] = json!("x");
    cases.push(("an undeclared field", "unknown_field", bad));
    let mut bad = cert.clone();
    bad["data"]["count"] = json!(0);
    cases.push(("a count below its minimum", "out_of_bounds", bad));
    let mut bad = cert.clone();
    bad["data"]["count"] = json!("1");
    cases.push(("a number as a string", "wrong_type", bad));
    let mut bad = cert.clone();
    bad["voids"] = json!("x-1");
    cases.push(("voids on a type that does not void", "unknown_field", bad));
    let mut bad = cert.clone();
    bad["event_id"] = json!("  ");
    cases.push(("a blank event_id", "empty_id", bad));
    let mut bad = cert;
    bad["source"] = json!("s".repeat(129));
    cases.push(("a source of 129 characters", "out_of_bounds", bad));
    let mut bad = stage;
    let kpi = bad["data"]["kpi"].as_str().unwrap().to_owned();
    let other = plan
        .schema
        .milestones()
        .into_iter()
        .find(|(k, _)| *k != kpi)
        .unwrap();
    bad["data"]["stage"] = json!(other.1.last().unwrap());
    cases.push(("a stage of another milestone KPI", "unknown_value", bad));
    for (what, reason, event) in cases {
        let name = event["type"].as_str().unwrap();
        let v = jsonschema::validator_for(&event_schema(&plan.schema, ty(name))).unwrap();
        assert!(!v.is_valid(&event), "the schema takes {what}: {event}");
        let refused = mieruka_ingest::decode(&schema, event.to_string().as_bytes()).unwrap_err();
        assert_eq!(refused.reason.as_str(), reason, "{what}: {refused}");
    }
}

#[test]
fn the_openapi_document_is_valid_openapi_3_1_and_its_examples_fit_their_schemas() {
    let plan = ome();
    let doc = openapi(&plan.schema, &plan.id);
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/openapi-3.1.schema.json")).unwrap(),
    )
    .unwrap();
    let meta = jsonschema::validator_for(&meta).unwrap();
    assert_eq!(errors(&meta, &doc), Vec::<String>::new());
    // Each schema of the components is itself a valid 2020-12 schema.
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        assert!(jsonschema::meta::is_valid(s), "components/schemas/{name}");
    }
    // Something the meta-schema must refuse, so the check above is not vacuous.
    let mut broken = doc.clone();
    broken["paths"]["/v1/events"]["post"]["responses"]["200"] = json!({ "content": {} });
    assert!(!meta.is_valid(&broken), "a response without a description");

    let post = &doc["paths"]["/v1/events"]["post"];
    let event = validator_at(&doc, "/components/schemas/Event");
    let content = &post["requestBody"]["content"];
    let array = content["application/json"]["example"].as_array().unwrap();
    assert!(!array.is_empty());
    for e in array {
        assert_eq!(errors(&event, e), Vec::<String>::new(), "{e}");
    }
    let ndjson = content["application/x-ndjson"]["example"].as_str().unwrap();
    for line in ndjson.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert_eq!(errors(&event, &e), Vec::<String>::new(), "{line}");
    }
    let reply = validator_at(&doc, "/components/schemas/Reply");
    let ok = &post["responses"]["200"]["content"]["application/json"]["example"];
    assert_eq!(errors(&reply, ok), Vec::<String>::new(), "{ok}");
    assert_eq!(ok["rejected"][0]["reason"], "unknown_value", "{ok}");
    let error = validator_at(&doc, "/components/schemas/Error");
    for (status, r) in post["responses"].as_object().unwrap() {
        if status == "200" {
            continue;
        }
        let examples = r["content"]["application/json"]["examples"]
            .as_object()
            .unwrap();
        for (name, ex) in examples {
            assert_eq!(
                errors(&error, &ex["value"]),
                Vec::<String>::new(),
                "{status} {name}"
            );
        }
    }
    // The reasons are the receiver's closed list.
    let reasons: Vec<&str> = mieruka_ingest::Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(
        doc["components"]["schemas"]["Reason"]["enum"],
        json!(reasons)
    );
}

/// Every reply of the receiver's golden transcript (ingest/src/http/replies.golden) has
/// its status documented, its headers among the documented ones, and a body that fits.
#[test]
fn every_reply_the_receiver_gives_is_documented_in_the_openapi_document() {
    let plan = ome();
    let doc = openapi(&plan.schema, &plan.id);
    let golden = std::fs::read_to_string(root().join("ingest/src/http/replies.golden")).unwrap();
    let responses = &doc["paths"]["/v1/events"]["post"]["responses"];
    let mut statuses = BTreeSet::new();
    for reply in golden.split("\n=====\n") {
        let (head, body) = reply.split_once("\n\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap();
        statuses.insert(status.to_owned());
        let documented = &responses[status];
        assert!(documented.is_object(), "status {status} is not documented");
        let schema = if status == "200" { "Reply" } else { "Error" };
        let v = validator_at(&doc, &format!("/components/schemas/{schema}"));
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(errors(&v, &body), Vec::<String>::new(), "{status}: {body}");
        for line in head.lines().skip(1) {
            let (name, value) = line.split_once(": ").unwrap();
            if ["content-type", "content-length", "connection"].contains(&name) {
                continue;
            }
            let allowed = &documented["headers"][name]["schema"]["enum"];
            assert!(
                allowed
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(value))),
                "{status}: header {name}: {value} is not documented"
            );
        }
    }
    assert!(statuses.len() >= 7, "{statuses:?}");
}

#[test]
fn the_ome_plan_names_every_type_field_and_value_in_japanese() {
    let plan = ome();
    for ty in plan.schema.types() {
        assert!(!ty.doc.name_ja.is_empty(), "{}: name_ja", ty.name);
        assert!(
            !ty.doc.description_ja.is_empty(),
            "{}: description_ja",
            ty.name
        );
        for f in &ty.fields {
            assert!(!f.doc.name_ja.is_empty(), "{}.{}: name_ja", ty.name, f.name);
            if let FieldKind::Enum { values } = &f.kind {
                assert_eq!(
                    f.doc.values_ja.len(),
                    values.len(),
                    "{}.{}",
                    ty.name,
                    f.name
                );
                assert!(
                    f.doc.values_ja.iter().all(|n| !n.is_empty()),
                    "{}.{}",
                    ty.name,
                    f.name
                );
            }
        }
    }
}

/// What a role serves at /v1/schema and /v1/openapi.json is the generated contract;
/// an unknown type is a 404.
pub(crate) fn assert_serves_the_contract(base: &str) {
    let plan = ome();
    let get = |path: &str| -> Value {
        let r = ureq::get(&format!("{base}{path}")).call().unwrap();
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        serde_json::from_str(&r.into_string().unwrap()).unwrap()
    };
    assert_eq!(get("/v1/openapi.json"), openapi(&plan.schema, &plan.id));
    let index = get("/v1/schema");
    assert_eq!(index["plan"], json!(plan.id));
    for ty in plan.schema.types() {
        assert_eq!(index["schemas"][&ty.name], event_schema(&plan.schema, ty));
    }
    let one = get("/v1/schema/certificate.issued.json");
    assert_eq!(one["properties"]["type"]["const"], "certificate.issued");
    match ureq::get(&format!("{base}/v1/schema/no.such_type")).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("an unknown type: {:?}", other.map(|r| r.status())),
    }
}

#[test]
fn standalone_serves_the_contract_and_its_replies_fit_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path(), &dir.path().join("m.db"));
    assert_serves_the_contract(&app.base);
    let plan = ome();
    let doc = openapi(&plan.schema, &plan.id);
    let reply = validator_at(&doc, "/components/schemas/Reply");
    let error = validator_at(&doc, "/components/schemas/Error");
    let ty = plan
        .schema
        .event_type(plan.schema.type_id("certificate.issued").unwrap());
    let mut good = example_event(&plan.schema, ty);
    good["source"] = json!("konbini");
    let mut bad = good.clone();
    bad["event_id"] = json!("typo-1");
    bad["data"]["channel"] = json!("conbini");
    let body = format!("{good}\n{bad}\nnot json\n");
    let (status, body) = app.post(Some(KONBINI_TOKEN), "application/x-ndjson", &body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(errors(&reply, &body), Vec::<String>::new(), "{body}");
    let (status, body) = app.post(
        Some(KONBINI_TOKEN),
        "application/json",
        &format!("[{good}]"),
    );
    assert_eq!((status, &body["duplicates"]), (200, &json!(1)), "{body}");
    let (status, body) = app.post(None, "application/json", "[]");
    assert_eq!(status, 401);
    assert_eq!(errors(&error, &body), Vec::<String>::new(), "{body}");
    app.stop();
}
