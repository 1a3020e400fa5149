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
