//! Who was refused, and why: every request refused whole (400, 401, 408, 413, 415) is
//! logged with the peer's address and the token's configured name, and reported to the
//! role, which counts it. The presented secret is never logged, counted or kept.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

use super::IdleTimeoutListener;

/// The address a connection came from, as the receiver logs it. Serve the router with
/// `into_make_service_with_connect_info::<Peer>()` so each request carries it; without
/// it a refusal is logged with `peer="unknown"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

// A listener of its own (the roles' TLS listener) may give `Peer` as its address:
// axum's blanket impl then serves it as the connect info.
impl Connected<IncomingStream<'_, IdleTimeoutListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, IdleTimeoutListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Why a request was refused whole: the closed list of the `reason` label.
pub const REFUSAL_REASONS: [&str; 9] = [
    "missing_token",
    "unknown_token",
    "expired",
    "content_type",
    "too_large",
    "too_many_events",
    "not_framed",
    "unreadable",
    "timeout",
];

/// Of [`REFUSAL_REASONS`], those that are authentication failures (401).
pub const AUTH_FAILURE_REASONS: [&str; 3] = ["missing_token", "unknown_token", "expired"];

/// Of [`REFUSAL_REASONS`], those where no token matched, so their `token` is always
/// [`UNKNOWN_TOKEN`] (an `expired` one names its token).
pub const NO_TOKEN_REASONS: [&str; 2] = ["missing_token", "unknown_token"];

/// The `token` of a refusal that no configured token matched.
pub const UNKNOWN_TOKEN: &str = "unknown";

/// A request refused whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal<'a> {
    /// The reply's status code.
    pub status: u16,
    /// One of [`REFUSAL_REASONS`].
    pub reason: &'static str,
    /// The configured name of the token the request presented, or [`UNKNOWN_TOKEN`].
    pub token: &'a str,
    /// Where it came from, when the server was given connection info.
    pub peer: Option<SocketAddr>,
}

/// What a role does with each refusal besides the log line (the roles count it).
pub type OnRefused = Arc<dyn Fn(&Refusal<'_>) + Send + Sync>;

/// Logs `refusal` (a sentence, fields first; WARN, because a line system whose token
/// was rotated, or that sends the wrong content type, loses every event until someone
/// acts) and hands it to `on_refused`.
pub(super) fn report(refusal: &Refusal<'_>, on_refused: Option<&OnRefused>) {
    let peer = refusal
        .peer
        .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    tracing::warn!(
        %peer,
        token = %refusal.token,
        status = refusal.status,
        reason = %refusal.reason,
        "Refused a request to /v1/events."
    );
    if let Some(f) = on_refused {
        f(refusal);
    }
}
