//! The parts of `POST /v1/events` read before any event is: who calls (the bearer
//! token), how the body is framed (the content type), and the body cut into events.
//! Axum runs them in that order, so a request is refused for the first thing wrong.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;

use super::error::RequestError;
use super::keys::Lookup;
use super::{Limits, Receiver, Token};
use crate::sink::EventSink;
use crate::Timestamp;

/// The secret of an `Authorization: Bearer …` header, trimmed.
pub(super) struct BearerToken(pub String);

impl<St: Send + Sync> FromRequestParts<St> for BearerToken {
    type Rejection = RequestError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|s| BearerToken(s.trim().to_owned()))
            .ok_or(RequestError::MissingToken)
    }
}

/// The line system calling: the token its bearer secret belongs to.
pub(super) struct Caller(pub Token);

impl<S: EventSink + 'static> FromRequestParts<Arc<Receiver<S>>> for Caller {
    type Rejection = RequestError;

    async fn from_request_parts(
        parts: &mut Parts,
        rx: &Arc<Receiver<S>>,
    ) -> Result<Self, Self::Rejection> {
        let BearerToken(presented) = BearerToken::from_request_parts(parts, rx).await?;
        let now = rx.now.unwrap_or_else(Timestamp::wall_clock);
        match rx.keys.current().find(&presented, now) {
            Lookup::Valid(t) => Ok(Caller(t.clone())),
            Lookup::Expired(t) => Err(RequestError::ExpiredToken(t.name.clone())),
            Lookup::Unknown => Err(RequestError::UnknownToken),
        }
    }
}

/// How a body is cut into events, from its content type (parameters ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// One event per line.
    Ndjson,
    /// A JSON array of events.
    Array,
}

impl<St: Send + Sync> FromRequestParts<St> for Framing {
    type Rejection = RequestError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let content_type = parts
            .headers
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
        match content_type.as_str() {
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Ok(Framing::Ndjson)
            }
            "application/json" => Ok(Framing::Array),
            _ => Err(RequestError::ContentType(content_type)),
        }
    }
}

/// The body cut into the raw text of each event, with its 1-based NDJSON line: read
/// within the receiver's limits, framed as its content type says.
pub(super) struct Framed(pub Vec<(Bytes, Option<usize>)>);

impl<S: EventSink + 'static> FromRequest<Arc<Receiver<S>>> for Framed {
    type Rejection = RequestError;

    async fn from_request(req: Request, rx: &Arc<Receiver<S>>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let framing = Framing::from_request_parts(&mut parts, rx).await?;
        let body = read_body(body, &rx.limits).await?;
        let raws = crate::frame::frame(&body, framing == Framing::Ndjson, rx.limits.max_events)
            .map_err(RequestError::Frame)?;
        // Each raw text is a slice of `body` (framing only cuts), so `slice_ref` shares it.
        Ok(Framed(
            raws.into_iter()
                .map(|(raw, line)| (body.slice_ref(raw), line))
                .collect(),
        ))
    }
}

/// Reads a body within the limits.
async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, RequestError> {
    let limited = http_body_util::Limited::new(body, limits.max_body_bytes);
    match tokio::time::timeout(
        limits.body_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await
    {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(RequestError::TooLarge {
                max_bytes: limits.max_body_bytes,
            })
        }
        Ok(Err(e)) => Err(RequestError::Unreadable(e.to_string())),
        Err(_) => Err(RequestError::Timeout {
            secs: limits.body_timeout.as_secs(),
        }),
    }
}
