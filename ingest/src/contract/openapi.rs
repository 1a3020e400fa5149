//! The OpenAPI 3.1 document of the receiver: `POST /v1/events` with both content types,
//! every reply code with its body (from the receiver's own refusals) and the rejection
//! reasons as an enum, plus the two documents the roles serve, `/v1/schema` and
//! `/v1/openapi.json`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::{event_schemas, example_event, example_line, pretty, DIALECT};
use crate::http::{documented_replies, Limits, RejectedEntry, Reply};
use crate::reject::Reason;
use crate::schema::{FieldKind, Schema, TimeWindow};
use crate::timestamp::Timestamp;

/// The OpenAPI document for a plan (`plan_id` names it) under the default limits.
pub fn openapi(schema: &Schema, plan_id: &str) -> Value {
    let schemas = event_schemas(schema);
    let mut components = Map::new();
    let mut refs = Vec::new();
    let mut mapping = Map::new();
    for (name, mut s) in schemas {
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
        }
        let reference = format!("#/components/schemas/{name}");
        refs.push(json!({ "$ref": reference }));
        mapping.insert(name.clone(), json!(reference));
        components.insert(name, s);
    }
    components.insert(
        "Event".into(),
        json!({
            "description": "One event: its `type` says which of the plan's event types, and so which schema, applies.",
            "oneOf": refs,
            "discriminator": { "propertyName": "type", "mapping": mapping },
        }),
    );
    components.insert(
        "Reason".into(),
        json!({
            "type": "string",
            "description": "Why an event was refused (docs/bad-input.md explains each).",
            "enum": Reason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        }),
    );
    components.insert("RejectedEntry".into(), rejected_entry_schema());
    components.insert("Reply".into(), reply_schema());
    components.insert("Error".into(), json!({
        "type": "object",
        "properties": { "error": { "type": "string", "description": "What is wrong and what to do, for a person." } },
        "required": ["error"],
        "additionalProperties": false,
    }));
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": DIALECT,
        "info": {
            "title": "mieruka event receiver",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("How a line system sends events of the plan `{plan_id}` to mieruka. Generated from the plan by `mieruka schema`; docs/events.md explains each event type in Japanese and English."),
        },
        "paths": {
            "/v1/events": { "post": post_events(schema) },
            "/v1/schema": { "get": document_get("The JSON Schema (2020-12) of every event type of the plan, by type.") },
            "/v1/schema/{type}": { "get": type_schema_get() },
            "/v1/openapi.json": { "get": document_get("This document.") },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "The token the city issued to the line system." } },
            "schemas": components,
        },
    })
}

fn rejected_entry_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "index": { "type": "integer", "minimum": 0, "description": "0-based index in the request (array element or NDJSON line)." },
            "line": { "type": "integer", "minimum": 1, "description": "1-based NDJSON line, for NDJSON bodies." },
            "event_id": { "type": "string", "description": "The event's id, when it could be read and passed the personal-number guard." },
            "reason": { "$ref": "#/components/schemas/Reason" },
            "field": { "type": "string", "description": "The JSON path at fault, such as data.channel." },
            "message": { "type": "string", "description": "What is wrong and what was expected." },
            "problems": {
                "type": "array",
                "maxItems": crate::reject::MAX_PROBLEMS,
                "description": "Every problem of the event in the order the checks found them, the first being reason, field and message above; an event holding a personal number has that one problem only.",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": { "type": "string", "description": "The JSON path at fault." },
                        "reason": { "$ref": "#/components/schemas/Reason" },
                        "message": { "type": "string", "description": "What is wrong." },
                    },
                    "required": ["reason", "message"],
                    "additionalProperties": false,
                },
            },
        },
        "required": ["index", "reason", "message", "problems"],
        "additionalProperties": false,
    })
}

fn reply_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "accepted": { "type": "integer", "minimum": 0, "description": "Events counted now." },
            "duplicates": { "type": "integer", "minimum": 0, "description": "Events counted before (same source, event_id and body)." },
            "rejected": { "type": "array", "items": { "$ref": "#/components/schemas/RejectedEntry" } },
        },
        "required": ["accepted", "duplicates", "rejected"],
        "additionalProperties": false,
    })
}

fn post_events(schema: &Schema) -> Value {
    // Two types: one with an enum field (its misspelling is the example rejection) and
    // one without, when the plan has both.
    let types: Vec<_> = [true, false]
        .into_iter()
        .filter_map(|with_enum| {
            schema.types().iter().find(|t| {
                !t.voids
                    && t.fields
                        .iter()
                        .any(|f| matches!(f.kind, FieldKind::Enum { .. }))
                        == with_enum
            })
        })
        .collect();
    let examples: Vec<Value> = types.iter().map(|t| example_event(schema, t)).collect();
    let ndjson: String = types
        .iter()
        .map(|t| example_line(schema, t) + "\n")
        .collect();
    let mut responses = Map::new();
    responses.insert("200".into(), json!({
        "description": "The body was framed: each event was counted, found a duplicate or refused (listed with why). Events are durable before this reply.",
        "content": { "application/json": {
            "schema": { "$ref": "#/components/schemas/Reply" },
            "example": reply_example(schema, &examples),
        } },
    }));
    let mut by_status: BTreeMap<u16, Vec<crate::http::DocumentedReply>> = BTreeMap::new();
    for r in documented_replies(&Limits::default()) {
        by_status.entry(r.status).or_default().push(r);
    }
    for (status, replies) in by_status {
        responses.insert(status.to_string(), refusal(&replies));
    }
    json!({
        "operationId": "postEvents",
        "summary": "Send events",
        "description": "Sends events as NDJSON (one event per line) or as a JSON array. Re-sending an event (same source, event_id and body) counts it once, so a request whose reply was lost is re-sent whole.",
        "security": [{ "bearer": [] }],
        "requestBody": {
            "required": true,
            "content": {
                "application/x-ndjson": {
                    "schema": { "type": "string", "description": "One event per line, each an Event (#/components/schemas/Event); application/ndjson and application/jsonl are taken too. Blank lines are skipped." },
                    "example": ndjson,
                },
                "application/json": {
                    "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } },
                    "example": examples,
                },
            },
        },
        "responses": responses,
    })
}

/// The 200 reply to the examples plus one misspelt enum value: the rejection is the
/// receiver's own, from decoding that event.
fn reply_example(schema: &Schema, examples: &[Value]) -> Value {
    let mut pinned = schema.clone();
    pinned.set_window(TimeWindow {
        now: Timestamp::parse_rfc3339("2026-05-02T00:00:00+09:00").ok(),
        ..TimeWindow::default()
    });
    let bad = examples.first().and_then(|e| misspelt(&pinned, e));
    let rejected: Vec<RejectedEntry> = bad
        .into_iter()
        .filter_map(|raw| crate::decode(&pinned, raw.to_string().as_bytes()).err())
        .map(|r| RejectedEntry::of(examples.len(), Some(examples.len() + 1), r))
        .collect();
    let reply = Reply {
        accepted: examples.len(),
        duplicates: 0,
        rejected,
    };
    serde_json::to_value(reply).unwrap_or(Value::Null)
}

/// `event` with its first enum value misspelt.
fn misspelt(schema: &Schema, event: &Value) -> Option<Value> {
    let ty = schema.event_type(schema.type_id(event["type"].as_str()?)?);
    let f = ty
        .fields
        .iter()
        .find(|f| matches!(f.kind, FieldKind::Enum { .. }))?;
    let mut bad = event.clone();
    bad["event_id"] = json!(format!("{}-typo", bad["event_id"].as_str()?));
    let value = format!("{}_typo", bad["data"][&f.name].as_str()?);
    bad["data"][&f.name] = json!(value);
    Some(bad)
}

fn refusal(replies: &[crate::http::DocumentedReply]) -> Value {
    let when: Vec<&str> = replies.iter().map(|r| r.when).collect();
    let examples: Map<String, Value> = replies
        .iter()
        .map(|r| {
            (
                r.name.to_owned(),
                json!({ "summary": r.when, "value": r.body }),
            )
        })
        .collect();
    let mut headers = Map::new();
    for r in replies {
        for (name, value) in &r.headers {
            let values = headers
                .entry(name.clone())
                .or_insert_with(|| json!({ "schema": { "type": "string", "enum": [] } }));
            if let Some(list) = values["schema"]["enum"].as_array_mut() {
                if !list.iter().any(|v| v == value) {
                    list.push(json!(value));
                }
            }
        }
    }
    let mut out = json!({
        "description": when.join(" "),
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" }, "examples": examples } },
    });
    if !headers.is_empty() {
        out["headers"] = Value::Object(headers);
    }
    out
}

fn document_get(description: &str) -> Value {
    json!({
        "summary": description,
        "responses": { "200": { "description": description, "content": { "application/json": { "schema": { "type": "object" } } } } },
    })
}

fn type_schema_get() -> Value {
    json!({
        "summary": "The JSON Schema of one event type.",
        "parameters": [{ "name": "type", "in": "path", "required": true, "schema": { "type": "string" }, "description": "The event type, e.g. certificate.issued (a trailing .json is taken too)." }],
        "responses": {
            "200": { "description": "The type's JSON Schema (2020-12).", "content": { "application/json": { "schema": { "type": "object" } } } },
            "404": { "description": "The plan declares no such type.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        },
    })
}

/// The contract documents, rendered once.
struct Documents {
    index: String,
    by_type: BTreeMap<String, String>,
    openapi: String,
}

/// The router serving the contract: `GET /v1/schema` (every type's schema, by type),
/// `GET /v1/schema/{type}` and `GET /v1/openapi.json`. Every role with an HTTP port
/// merges it, so a vendor reads the contract of the plan the receiver runs.
pub fn router(schema: &Schema, plan_id: &str) -> Router {
    let schemas = event_schemas(schema);
    let index = json!({
        "plan": plan_id,
        "schemas": schemas.iter().cloned().collect::<Map<String, Value>>(),
    });
    let docs = Documents {
        index: pretty(&index),
        by_type: schemas
            .iter()
            .map(|(n, s)| (n.clone(), pretty(s)))
            .collect(),
        openapi: pretty(&openapi(schema, plan_id)),
    };
    Router::new()
        .route(
            "/v1/schema",
            get(|State(d): State<Arc<Documents>>| async move { json_reply(d.index.clone()) }),
        )
        .route("/v1/schema/{type}", get(type_schema))
        .route(
            "/v1/openapi.json",
            get(|State(d): State<Arc<Documents>>| async move { json_reply(d.openapi.clone()) }),
        )
        .with_state(Arc::new(docs))
}

async fn type_schema(State(d): State<Arc<Documents>>, Path(name): Path<String>) -> Response {
    let name = name.strip_suffix(".json").unwrap_or(&name);
    match d.by_type.get(name) {
        Some(text) => json_reply(text.clone()),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "the plan declares no such event type; GET /v1/schema lists them" })),
        )
            .into_response(),
    }
}

fn json_reply(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}
