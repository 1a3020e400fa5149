//! The HTTP receiver: `POST /v1/events` with NDJSON or a JSON array.
//!
//! Replies (documented in the README):
//! - 200 with a per-event summary whenever the body can be framed, even if some events
//!   were rejected (a rejected NDJSON line that is not JSON is one `not_json` entry);
//! - 400 for a JSON array that does not parse, 401 for a missing or unknown token,
//!   413 over the size limit, 415 for another content type, 503 when the store is
//!   unavailable (nothing of the request was kept: retry it whole).
//!
//! Events are durable before the reply: the sink commits before `submit` returns.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::reject::{Reason, Rejection};
use crate::schema::Schema;
use crate::sink::{EventSink, Position, SinkError, Status};

/// Items per sink batch: a large request is committed in several transactions of this
/// size, so memory stays bounded; the reply comes after the last one.
pub const SINK_BATCH: usize = 10_000;

/// The label under which events of no configured source are counted.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// A bearer token of one line system, from the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The line system's name (for logs).
    pub name: String,
    /// The secret itself (prefer `token_env`).
    #[serde(default)]
    pub token: Option<String>,
    /// The environment variable holding the secret.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The `source` values this token may send.
    pub sources: Vec<String>,
    /// The event types it may send (empty: every type of the plan).
    #[serde(default)]
    pub types: Vec<String>,
}

impl Token {
    /// The secret, from the config or the environment.
    pub fn secret(&self) -> Option<String> {
        match (&self.token, &self.token_env) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(var)) => std::env::var(var).ok(),
            (None, None) => None,
        }
    }
}

/// What the receiver needs.
pub struct Receiver<S> {
    /// Where events go.
    pub sink: Arc<S>,
    /// What they are validated against.
    pub schema: Arc<Schema>,
    /// (secret, token) pairs.
    pub tokens: Vec<(String, Token)>,
}

/// The reply to `POST /v1/events`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    /// Events counted now.
    pub accepted: usize,
    /// Events already counted before (same source, id and body).
    pub duplicates: usize,
    /// Every refused event, with why.
    pub rejected: Vec<RejectedEntry>,
}

/// One refused event in a reply.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct RejectedEntry {
    /// 0-based index in the request (array element or NDJSON line).
    pub index: usize,
    /// 1-based NDJSON line, for NDJSON bodies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<usize>,
    /// The event's id, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_id: Option<String>,
    /// The reason code.
    pub reason: String,
    /// The JSON path at fault.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// The router serving `POST /v1/events`, with the body limit applied.
pub fn router<S: EventSink + 'static>(receiver: Receiver<S>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/events", post(post_events::<S>))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::new(receiver))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn post_events<S: EventSink + 'static>(
    State(rx): State<Arc<Receiver<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return (
            [(header::WWW_AUTHENTICATE, "Bearer")],
            error(
                StatusCode::UNAUTHORIZED,
                "missing bearer token (Authorization: Bearer <token>)",
            ),
        )
            .into_response();
    };
    let Some(token) = rx
        .tokens
        .iter()
        .find(|(secret, _)| constant_time_eq(secret.as_bytes(), presented.as_bytes()))
        .map(|(_, t)| t)
    else {
        return (
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
            error(StatusCode::UNAUTHORIZED, "unknown bearer token"),
        )
            .into_response();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let ndjson = match content_type.as_str() {
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => true,
        "application/json" => false,
        other => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type {other:?} is not accepted; send application/x-ndjson (one event per line) \
                     or application/json (an array of events)"
                ),
            )
        }
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                e.status(),
                format!("cannot read the body: {}", e.body_text()),
            )
        }
    };

    // Framing: the raw text of each event, with its NDJSON line.
    let mut raws: Vec<(&[u8], Option<usize>)> = Vec::new();
    let parsed_array: Vec<&RawValue>;
    if ndjson {
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            raws.push((line, Some(i + 1)));
        }
    } else {
        parsed_array = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not a JSON array of events: {e}"),
                )
            }
        };
        raws.extend(parsed_array.iter().map(|r| (r.get().as_bytes(), None)));
    }

    let single_source = (token.sources.len() == 1).then(|| token.sources[0].as_str());
    let mut items = Vec::with_capacity(raws.len());
    for (index, (raw, _)) in raws.iter().enumerate() {
        let mut item = crate::item(
            &rx.schema,
            raw,
            Position::Index(index),
            single_source.unwrap_or(UNKNOWN_SOURCE),
        );
        if let Ok(event) = &item.outcome {
            let type_name = &rx.schema.event_type(event.type_id).name;
            let refusal = if !token.sources.contains(&event.source) {
                Some((
                    "source",
                    format!(
                        "token {:?} may not send source {:?}",
                        token.name, event.source
                    ),
                ))
            } else if !token.types.is_empty() && !token.types.contains(type_name) {
                Some((
                    "type",
                    format!(
                        "token {:?} may not send events of type {type_name}",
                        token.name
                    ),
                ))
            } else {
                item.source_label = event.source.clone();
                None
            };
            if let Some((field, message)) = refusal {
                let r = Rejection::at(Reason::NotAllowed, field, message)
                    .with_event_id(Some(&event.id));
                item.raw_masked = Some(crate::mask_raw(raw));
                item.outcome = Err(r);
            }
        }
        items.push(item);
    }

    let mut reply = Reply {
        accepted: 0,
        duplicates: 0,
        rejected: Vec::new(),
    };
    let mut offset = 0;
    let mut remaining = items;
    while !remaining.is_empty() {
        let rest = remaining.split_off(remaining.len().min(SINK_BATCH));
        let statuses = match rx.sink.submit(remaining).await {
            Ok(s) => s,
            Err(SinkError::Unavailable(m)) => {
                // A broker may have written some messages whose acknowledgement it never
                // sent: say only what is known, and that re-sending is safe.
                let kept = if offset == 0 {
                    "this request's events may not have been kept; re-sending it is safe (an event id counts once)".to_owned()
                } else {
                    format!(
                        "the first {offset} events were kept, the rest may not have been; re-sending the whole request is safe (an event id counts once)"
                    )
                };
                return (
                    [(header::RETRY_AFTER, "5")],
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("store unavailable ({m}); {kept}; retry later"),
                    ),
                )
                    .into_response();
            }
            Err(SinkError::Fatal(m)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("store failed: {m}"),
                );
            }
        };
        for (i, status) in statuses.into_iter().enumerate() {
            match status {
                Status::Accepted => reply.accepted += 1,
                Status::Duplicate => reply.duplicates += 1,
                Status::Rejected(r) => reply.rejected.push(RejectedEntry {
                    index: offset + i,
                    line: raws[offset + i].1,
                    event_id: if r.reason == Reason::PersonalNumber {
                        None
                    } else {
                        r.event_id
                    },
                    reason: r.reason.as_str().to_owned(),
                    field: r.field,
                    message: r.message,
                }),
            }
        }
        offset += SINK_BATCH.min(raws.len() - offset);
        remaining = rest;
    }
    (StatusCode::OK, Json(reply)).into_response()
}
