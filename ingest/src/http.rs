//! The HTTP receiver: `POST /v1/events` with NDJSON or a JSON array.
//!
//! Replies (documented in the README):
//! - 200 with a per-event summary whenever the body can be framed, even if some events
//!   were rejected (a rejected NDJSON line that is not JSON is one `not_json` entry);
//! - 400 for a JSON array that does not parse, 401 for a missing or unknown token,
//!   408 for a body that does not arrive in time, 413 over the size limit or the limit of
//!   events per request, 415 for another content type, 503 when the store is
//!   unavailable (nothing of the request was kept: retry it whole).
//!
//! Events are durable before the reply: the sink commits before `submit` returns.
//!
//! Hostile or broken clients are bounded: a UTF-8 byte order mark before the body (or an
//! NDJSON line) is skipped, a body is read within [`Limits::body_timeout`], and
//! [`IdleTimeoutListener`] drops connections that send nothing for a while (a client
//! that opens a connection and stalls, in its headers or its body, holds nothing for
//! long).

mod access;
mod error;
mod extract;
mod idle;
pub mod keys;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::reject::Rejection;
use crate::schema::Schema;
use crate::sink::{EventSink, Item, Position, SinkError, Status};

pub use access::{
    OnRefused, Peer, Refusal, AUTH_FAILURE_REASONS, NO_TOKEN_REASONS, REFUSAL_REASONS,
    UNKNOWN_TOKEN,
};
pub(crate) use error::DocumentedReply;
use error::RequestError;
use extract::{Caller, Framed};
pub use idle::{IdleTimeout, IdleTimeoutListener};
pub use keys::{KeyError, KeyRing, SharedKeys};

/// Items per sink batch: a large request is committed in several transactions of this
/// size, so memory stays bounded; the reply comes after the last one.
pub const SINK_BATCH: usize = 10_000;

pub use crate::UNKNOWN_SOURCE;

/// A bearer token of one line system, from the config file: exactly one of
/// `token_sha256`, `token` and `token_env` gives its key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The line system's name (for logs and the `token` label; the entries of a
    /// rollover usually share it).
    pub name: String,
    /// The SHA-256 of the secret, base64url without padding (`mieruka token new`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The secret itself (deprecated: use `token_sha256`).
    #[serde(default)]
    pub token: Option<String>,
    /// The environment variable holding the secret (deprecated: use `token_sha256`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// When the token stops being accepted (RFC 3339; none: never).
    #[serde(default)]
    pub expires: Option<String>,
    /// The `source` values this token may send.
    pub sources: Vec<String>,
    /// The event types it may send (empty: every type of the plan).
    #[serde(default)]
    pub types: Vec<String>,
}

impl Token {
    /// Refuses as `not_allowed` a valid event of a source or type this token may not
    /// send; else counts it under its own source.
    fn authorise(&self, schema: &Schema, item: &mut Item, raw: &[u8]) {
        let allowed = (Some(self.sources.as_slice()), self.types.as_slice());
        item.authorise(raw, schema, ("token", &self.name), allowed);
    }
}

/// The bounds a request must stay within.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body, in bytes (413 past it).
    pub max_body_bytes: usize,
    /// Most events in one body (413 past it): a body of tiny lines must not make a
    /// reply of millions of rejections.
    pub max_events: usize,
    /// Longest time a body may take to arrive, from the end of the headers (408 past it).
    pub body_timeout: Duration,
}

/// Default most events per request: 100,000 events of ~250 bytes is 25 MB, past the
/// default body limit, so only a body of tiny lines meets it.
pub const DEFAULT_MAX_EVENTS: usize = 100_000;

/// Default time a body may take to arrive: 16 MiB at 1 Mbit/s is ~2 minutes.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(120);

/// Default time a connection may send nothing before it is dropped.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_events: DEFAULT_MAX_EVENTS,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// What the receiver needs.
pub struct Receiver<S> {
    /// Where events go.
    pub sink: Arc<S>,
    /// What they are validated against.
    pub schema: Arc<Schema>,
    /// The tokens of the line systems (a reload swaps them).
    pub keys: SharedKeys,
    /// "Now" when pinned (`--now`), which expiries are judged against; `None`: the
    /// wall clock.
    pub now: Option<crate::Timestamp>,
    /// The bounds of a request.
    pub limits: Limits,
    /// What the role does with a request refused whole, besides the log line (counts
    /// it); `None`: only the log line.
    pub on_refused: Option<OnRefused>,
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
    /// Every problem of the event (the first is `reason`, `field` and `message` above),
    /// in the order the checks found them; at most [`crate::reject::MAX_PROBLEMS`].
    #[serde(default)]
    pub problems: Vec<ProblemEntry>,
}

/// One problem of a refused event in a reply.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ProblemEntry {
    /// The JSON path at fault.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// The reason code.
    pub reason: String,
    /// What is wrong.
    pub message: String,
}

impl RejectedEntry {
    /// The entry of the event at `index` (NDJSON `line`), refused for `r`.
    pub(crate) fn of(index: usize, line: Option<usize>, r: Rejection) -> Self {
        let problems = r
            .problems()
            .map(|(reason, field, message)| ProblemEntry {
                field: field.map(str::to_owned),
                reason: reason.as_str().to_owned(),
                message: message.to_owned(),
            })
            .collect();
        Self {
            index,
            line,
            // Set only when the id passed the guard.
            event_id: r.event_id,
            reason: r.reason.as_str().to_owned(),
            field: r.field,
            message: r.message,
            problems,
        }
    }
}

/// One example of every refusal of `POST /v1/events` under `limits`, with its reply:
/// what the OpenAPI document lists.
pub(crate) fn documented_replies(limits: &Limits) -> Vec<DocumentedReply> {
    RequestError::documented(limits)
}

/// The router serving `POST /v1/events` (the receiver's limits apply).
pub fn router<S: EventSink + 'static>(receiver: Receiver<S>) -> Router {
    Router::new()
        .route("/v1/events", post(post_events::<S>))
        .with_state(Arc::new(receiver))
}

/// `POST /v1/events`: the caller, then the framed body (each may refuse the request
/// whole: logged with the peer and counted); each event is decoded, authorised for the
/// caller and committed; the reply sums up each event's fate.
async fn post_events<S: EventSink + 'static>(
    State(rx): State<Arc<Receiver<S>>>,
    req: Request,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(addr))| *addr);
    let (mut parts, body) = req.into_parts();
    let token = match Caller::from_request_parts(&mut parts, &rx).await {
        Ok(Caller(token)) => token,
        Err(e) => {
            let name = e.token_name().unwrap_or(UNKNOWN_TOKEN).to_owned();
            return refuse(&rx, e, &name, peer);
        }
    };
    let raws = match Framed::from_request(Request::from_parts(parts, body), &rx).await {
        Ok(Framed(raws)) => raws,
        Err(e) => return refuse(&rx, e, &token.name, peer),
    };
    match take(&rx, &token, raws).await {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The reply to a request refused whole, logged and reported first when the request
/// (not the store) is at fault.
fn refuse<S>(
    rx: &Receiver<S>,
    e: RequestError,
    token: &str,
    peer: Option<std::net::SocketAddr>,
) -> Response {
    if let Some(reason) = e.refusal_reason() {
        let refusal = Refusal {
            status: e.status().as_u16(),
            reason,
            token,
            peer,
        };
        access::report(&refusal, rx.on_refused.as_ref());
    }
    e.into_response()
}

/// Decodes and authorises each framed event for `token`, commits them, and sums up.
async fn take<S: EventSink>(
    rx: &Receiver<S>,
    token: &Token,
    raws: Vec<(axum::body::Bytes, Option<usize>)>,
) -> Result<Reply, RequestError> {
    let single_source = (token.sources.len() == 1).then(|| token.sources[0].as_str());
    let label = single_source.unwrap_or(UNKNOWN_SOURCE);
    let items = raws
        .iter()
        .enumerate()
        .map(|(index, (raw, _))| {
            let mut item = crate::item(&rx.schema, raw, Position::Index(index), label);
            token.authorise(&rx.schema, &mut item, raw);
            item
        })
        .collect();
    let lines: Vec<Option<usize>> = raws.iter().map(|(_, line)| *line).collect();
    // The body is not needed past decoding: free it before the (long) commits.
    drop(raws);
    submit(&*rx.sink, items, &lines).await
}

/// Commits `items` in batches of [`SINK_BATCH`] (memory stays bounded), in order, and
/// sums up their fates; `lines` holds each item's NDJSON line.
async fn submit<S: EventSink>(
    sink: &S,
    mut remaining: Vec<Item>,
    lines: &[Option<usize>],
) -> Result<Reply, RequestError> {
    let mut reply = Reply {
        accepted: 0,
        duplicates: 0,
        rejected: Vec::new(),
    };
    let mut offset = 0;
    while !remaining.is_empty() {
        let rest = remaining.split_off(remaining.len().min(SINK_BATCH));
        let statuses = sink.submit(remaining).await.map_err(|e| match e {
            SinkError::Unavailable(message) => RequestError::Unavailable {
                message,
                kept: offset,
            },
            SinkError::Fatal(m) => RequestError::StoreFailed(m),
        })?;
        for (i, status) in statuses.into_iter().enumerate() {
            match status {
                Status::Accepted => reply.accepted += 1,
                Status::Duplicate => reply.duplicates += 1,
                Status::Rejected(r) => reply.rejected.push(RejectedEntry::of(
                    offset + i,
                    lines.get(offset + i).copied().flatten(),
                    r,
                )),
            }
        }
        offset += SINK_BATCH.min(lines.len() - offset);
        remaining = rest;
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    //! Every reply of `POST /v1/events`, byte for byte (less the `date` header), through a
    //! real socket: what clients see must not move when the handler is reorganised.
    use std::collections::{BTreeMap, HashMap};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::schema::EventTypeDecl;

    /// What the test sink does with each call to `submit`.
    #[derive(Clone, Copy)]
    enum Script {
        /// Accepts valid events (`dup-…` ids are duplicates), refuses the rest.
        Take,
        /// Takes the first batch, then is unavailable.
        FailSecond,
        Unavailable,
        Fatal,
    }

    struct TestSink {
        script: Script,
        calls: AtomicUsize,
    }

    impl EventSink for TestSink {
        async fn submit(&self, items: Vec<Item>) -> Result<Vec<Status>, SinkError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            match (self.script, call) {
                (Script::Unavailable, _) | (Script::FailSecond, 1..) => {
                    return Err(SinkError::Unavailable("broker down".to_owned()))
                }
                (Script::Fatal, _) => return Err(SinkError::Fatal("bug".to_owned())),
                _ => {}
            }
            Ok(items
                .into_iter()
                .map(|i| match i.outcome {
                    Ok(e) if e.id.starts_with("dup-") => Status::Duplicate,
                    Ok(_) => Status::Accepted,
                    Err(r) => Status::Rejected(r),
                })
                .collect())
        }
    }

    fn schema() -> Schema {
        let decls: BTreeMap<String, EventTypeDecl> = serde_json::from_str(
            r#"{
              "cert": {"fields": {"channel": {"kind": "enum", "values": ["konbini", "counter"]}}},
              "bpr": {"fields": {"hours": {"kind": "int", "min": 1}}}
            }"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Schema::new(&decls, HashMap::new()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    async fn serve(script: Script) -> std::net::SocketAddr {
        serve_with(script, None).await
    }

    async fn serve_with(script: Script, on_refused: Option<OnRefused>) -> std::net::SocketAddr {
        let token = Token {
            name: "counter".to_owned(),
            token: Some("s3cret".to_owned()),
            sources: vec!["konbini".to_owned()],
            types: vec!["cert".to_owned()],
            ..Token::default()
        };
        let receiver = Receiver {
            sink: Arc::new(TestSink {
                script,
                calls: AtomicUsize::new(0),
            }),
            schema: Arc::new(schema()),
            keys: SharedKeys::new(KeyRing::new(&[token]).unwrap_or_else(|e| panic!("{e}"))),
            now: None,
            limits: Limits {
                max_body_bytes: 4096,
                max_events: 3,
                body_timeout: Duration::from_millis(300),
            },
            on_refused,
        };
        let receiver = Receiver {
            limits: Limits {
                max_events: if matches!(script, Script::FailSecond) {
                    SINK_BATCH + 1
                } else {
                    3
                },
                max_body_bytes: if matches!(script, Script::FailSecond) {
                    1 << 20
                } else {
                    4096
                },
                ..receiver.limits
            },
            ..receiver
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let app = router(receiver).into_make_service_with_connect_info::<Peer>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// The raw reply to a request of `headers` and `body` (`declared`: a Content-Length
    /// longer than the body, for a body that never ends), less its `date` header.
    async fn raw(
        addr: std::net::SocketAddr,
        headers: &str,
        body: &[u8],
        declared: usize,
    ) -> String {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{headers}content-length: {declared}\r\n\r\n"
        );
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body).await;
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply).await;
        String::from_utf8_lossy(&reply)
            .split("\r\n")
            .filter(|l| !l.starts_with("date:"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn post(addr: std::net::SocketAddr, headers: &str, body: &str) -> String {
        raw(addr, headers, body.as_bytes(), body.len()).await
    }

    const AUTH: &str = "authorization: Bearer s3cret\r\n";
    const NDJSON: &str = "authorization: Bearer s3cret\r\ncontent-type: application/x-ndjson\r\n";
    const JSON: &str =
        "authorization: Bearer s3cret\r\ncontent-type: Application/JSON; charset=utf-8\r\n";

    fn cert(id: &str, source: &str, ty: &str) -> String {
        let data = if ty == "cert" {
            r#"{"channel":"konbini"}"#
        } else {
            r#"{"hours":2}"#
        };
        format!(
            r#"{{"event_id":"{id}","source":"{source}","type":"{ty}","occurred_at":"2026-05-01T10:00:00+09:00","data":{data}}}"#
        )
    }

    /// Every reply, in order, separated by a line of `=`.
    async fn transcript() -> String {
        let mut replies = Vec::new();
        let addr = serve(Script::Take).await;
        let one = cert("e-1", "konbini", "cert");
        replies.push(post(addr, "", &one).await);
        replies.push(post(addr, "authorization: Basic czNjcmV0\r\n", &one).await);
        replies.push(post(addr, "authorization: Bearer wrong\r\n", &one).await);
        replies.push(post(addr, AUTH, &one).await);
        let csv = "authorization: Bearer s3cret\r\ncontent-type: text/csv\r\n";
        replies.push(post(addr, csv, &one).await);
        replies.push(post(addr, NDJSON, &"x".repeat(5000)).await);
        replies.push(post(addr, JSON, "[{").await);
        replies.push(post(addr, JSON, "[1,2,3,4]").await);
        replies.push(post(addr, NDJSON, "1\n2\n3\n4\n").await);
        replies.push(raw(addr, NDJSON, b"{", 100).await);

        let body = format!(
            "{}\n\nnot json\r\n{}\n",
            cert("dup-1", "konbini", "cert"),
            cert("e-2", "card", "cert"),
        );
        replies.push(post(addr, NDJSON, &body).await);
        let body = format!(
            "[{},{}]",
            cert("e-3", "konbini", "bpr"),
            cert("e-4", "konbini", "cert")
        );
        replies.push(post(addr, JSON, &body).await);
        // Every problem of one event, the first also as `reason`/`field`/`message`.
        let two = r#"{"event_id":"e-5","source":"konbini","type":"cert","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"fax","count":2}}"#;
        replies.push(post(addr, NDJSON, two).await);

        let addr = serve(Script::Unavailable).await;
        replies.push(post(addr, NDJSON, &one).await);
        let addr = serve(Script::Fatal).await;
        replies.push(post(addr, NDJSON, &one).await);
        let addr = serve(Script::FailSecond).await;
        let many = "x\n".repeat(SINK_BATCH + 1);
        replies.push(post(addr, NDJSON, &many).await);
        replies.join("\n=====\n")
    }

    #[tokio::test]
    async fn every_reply_stays_byte_for_byte_what_clients_know() {
        let got = transcript().await;
        let want = include_str!("http/replies.golden");
        assert_eq!(got, want, "\n--- got:\n{got}\n--- want:\n{want}");
    }

    #[tokio::test]
    async fn every_request_refused_whole_is_reported_with_its_token_name_and_peer() {
        let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let on_refused: OnRefused = {
            let seen = seen.clone();
            Arc::new(move |r: &Refusal<'_>| {
                let peer_ip = r.peer.map(|p| p.ip().to_string());
                if let Ok(mut seen) = seen.lock() {
                    seen.push(format!("{} {} {} {peer_ip:?}", r.status, r.reason, r.token));
                }
            })
        };
        let addr = serve_with(Script::Take, Some(on_refused)).await;
        let one = cert("e-1", "konbini", "cert");
        post(addr, "", &one).await;
        post(addr, "authorization: Bearer wrong\r\n", &one).await;
        post(
            addr,
            "authorization: Bearer s3cret\r\ncontent-type: text/csv\r\n",
            &one,
        )
        .await;
        post(addr, NDJSON, &"x".repeat(5000)).await;
        post(addr, JSON, "[{").await;
        post(addr, NDJSON, "1\n2\n3\n4\n").await;
        raw(addr, NDJSON, b"{", 100).await;
        // Accepted requests, and events refused one by one, are no refusal of the request.
        post(addr, NDJSON, &one).await;
        post(addr, NDJSON, "not json").await;
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        let ip = "Some(\"127.0.0.1\")";
        assert_eq!(
            seen,
            [
                format!("401 missing_token unknown {ip}"),
                format!("401 unknown_token unknown {ip}"),
                format!("415 content_type counter {ip}"),
                format!("413 too_large counter {ip}"),
                format!("400 not_framed counter {ip}"),
                format!("413 too_many_events counter {ip}"),
                format!("408 timeout counter {ip}"),
            ]
        );
        // The presented secret is in no report.
        assert!(seen
            .iter()
            .all(|s| !s.contains("wrong") && !s.contains("s3cret")));
    }
}
