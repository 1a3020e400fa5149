//! Why a request is refused whole, and the reply each refusal is (the README documents
//! them; clients rely on the status, the body and the headers).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::frame::FrameError;

/// A request refused whole: each variant is one documented reply.
#[derive(Debug, thiserror::Error)]
pub(super) enum RequestError {
    /// No `Authorization: Bearer …` header (401).
    #[error("missing bearer token (Authorization: Bearer <token>)")]
    MissingToken,
    /// A bearer token no line system holds (401).
    #[error("unknown bearer token")]
    UnknownToken,
    /// The token of a line system past its `expires` (401); the token's name.
    #[error("the bearer token has expired; use the new token of this line system")]
    ExpiredToken(String),
    /// A content type that is neither NDJSON nor JSON (415); the type as sent, lowercased.
    #[error(
        "content type {0:?} is not accepted; send application/x-ndjson (one event per line) \
         or application/json (an array of events)"
    )]
    ContentType(String),
    /// A body over the size limit (413).
    #[error("the body is larger than {max_bytes} bytes; split it into several requests")]
    TooLarge {
        /// The limit, in bytes.
        max_bytes: usize,
    },
    /// A body that broke off while it was read (400).
    #[error("cannot read the body: {0}")]
    Unreadable(String),
    /// A body that did not arrive in time (408).
    #[error("the body did not arrive within {secs} s; send it faster or in smaller requests")]
    Timeout {
        /// The limit, in whole seconds.
        secs: u64,
    },
    /// A body that cannot be cut into events (413 for too many, else 400).
    #[error("{0}")]
    Frame(FrameError),
    /// The store is unavailable (503): `kept` events of the request were kept first.
    #[error("store unavailable ({message}); {}; retry later", kept_text(*.kept))]
    Unavailable {
        /// What the sink said.
        message: String,
        /// How many events of the request were committed before it failed.
        kept: usize,
    },
    /// The store failed in a way a retry does not fix (500).
    #[error("store failed: {0}")]
    StoreFailed(String),
}

/// What a client may assume of a request the store failed part way through.
fn kept_text(kept: usize) -> String {
    // A broker may have written some messages whose acknowledgement it never sent: say
    // only what is known, and that re-sending is safe.
    if kept == 0 {
        "this request's events may not have been kept; re-sending it is safe (an event id counts once)".to_owned()
    } else {
        format!(
            "the first {kept} events were kept, the rest may not have been; re-sending the whole request is safe (an event id counts once)"
        )
    }
}

/// The body of every refusal: `{"error": "…"}`.
#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl RequestError {
    /// Why the request was refused, from [`super::REFUSAL_REASONS`]; `None` when the
    /// fault is the store's, not the request's (503, 500).
    pub(super) fn refusal_reason(&self) -> Option<&'static str> {
        Some(match self {
            RequestError::MissingToken => "missing_token",
            RequestError::UnknownToken => "unknown_token",
            RequestError::ExpiredToken(_) => "expired",
            RequestError::ContentType(_) => "content_type",
            RequestError::TooLarge { .. } => "too_large",
            RequestError::Frame(FrameError::TooManyEvents { .. }) => "too_many_events",
            RequestError::Frame(_) => "not_framed",
            RequestError::Unreadable(_) => "unreadable",
            RequestError::Timeout { .. } => "timeout",
            RequestError::Unavailable { .. } | RequestError::StoreFailed(_) => return None,
        })
    }

    /// The configured name of the token the request presented, when one matched.
    pub(super) fn token_name(&self) -> Option<&str> {
        match self {
            RequestError::ExpiredToken(name) => Some(name),
            _ => None,
        }
    }

    pub(super) fn status(&self) -> StatusCode {
        match self {
            RequestError::MissingToken
            | RequestError::UnknownToken
            | RequestError::ExpiredToken(_) => StatusCode::UNAUTHORIZED,
            RequestError::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestError::TooLarge { .. }
            | RequestError::Frame(FrameError::TooManyEvents { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            RequestError::Unreadable(_) | RequestError::Frame(_) => StatusCode::BAD_REQUEST,
            RequestError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RequestError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::StoreFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        // The headers follow the body's own (`content-type`), as clients have seen them.
        match self {
            RequestError::MissingToken => {
                ([(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
            }
            RequestError::UnknownToken => (
                [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
                body,
            )
                .into_response(),
            RequestError::ExpiredToken(_) => (
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer error=\"invalid_token\", error_description=\"the token expired\"",
                )],
                body,
            )
                .into_response(),
            RequestError::Unavailable { .. } => {
                ([(header::RETRY_AFTER, "5")], body).into_response()
            }
            _ => body,
        }
    }
}

/// One documented refusal: what the OpenAPI document says of a reply code.
#[derive(Debug)]
pub(crate) struct DocumentedReply {
    /// Its HTTP status.
    pub status: u16,
    /// An example name (the variant's, in snake case).
    pub name: &'static str,
    /// When it is sent.
    pub when: &'static str,
    /// The headers it carries besides `content-type`, as sent.
    pub headers: Vec<(String, String)>,
    /// Its body, as sent.
    pub body: serde_json::Value,
}

impl RequestError {
    /// When each refusal is sent, by variant: a new variant does not compile until it is
    /// documented here, so the OpenAPI document cannot miss one.
    fn when(&self) -> (&'static str, &'static str) {
        match self {
            RequestError::MissingToken => ("missing_token", "No `Authorization: Bearer …` header."),
            RequestError::UnknownToken => ("unknown_token", "A bearer token no line system holds."),
            RequestError::ExpiredToken(_) => ("expired_token", "The token of a line system past its `expires`: use the new token the city issued."),
            RequestError::ContentType(_) => ("content_type", "A content type other than application/x-ndjson (or application/ndjson, application/jsonl) and application/json."),
            RequestError::TooLarge { .. } => ("too_large", "A body over the size limit: split it."),
            RequestError::Unreadable(_) => ("unreadable", "A body that broke off while it was read."),
            RequestError::Timeout { .. } => ("timeout", "A body that did not arrive within the body timeout."),
            RequestError::Frame(FrameError::TooManyEvents { .. }) => ("too_many_events", "More events in one request than the limit: split it."),
            RequestError::Frame(_) => ("not_an_array", "An application/json body that is not a JSON array of events."),
            RequestError::Unavailable { .. } => ("unavailable", "The store is unavailable; the message says how much of the request was kept. Re-sending the whole request is safe (an event id counts once)."),
            RequestError::StoreFailed(_) => ("store_failed", "The store failed in a way a retry does not fix: tell the operator."),
        }
    }

    /// One example of every refusal, with the reply the client gets.
    pub(crate) fn documented(limits: &super::Limits) -> Vec<DocumentedReply> {
        let examples = [
            RequestError::MissingToken,
            RequestError::UnknownToken,
            RequestError::ExpiredToken("konbini".to_owned()),
            RequestError::ContentType("text/csv".to_owned()),
            RequestError::TooLarge {
                max_bytes: limits.max_body_bytes,
            },
            RequestError::Unreadable("connection reset".to_owned()),
            RequestError::Timeout {
                secs: limits.body_timeout.as_secs(),
            },
            RequestError::Frame(FrameError::TooManyEvents {
                max: limits.max_events,
            }),
            RequestError::Frame(FrameError::NotUtf8 { offset: 0 }),
            RequestError::Unavailable {
                message: "broker down".to_owned(),
                kept: 0,
            },
            RequestError::StoreFailed("disk full".to_owned()),
        ];
        examples
            .into_iter()
            .map(|e| {
                let (name, when) = e.when();
                let body = serde_json::json!({ "error": e.to_string() });
                let response = e.into_response();
                let headers = response
                    .headers()
                    .iter()
                    .filter(|(k, _)| *k != header::CONTENT_TYPE)
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                DocumentedReply {
                    status: response.status().as_u16(),
                    name,
                    when,
                    headers,
                    body,
                }
            })
            .collect()
    }
}
