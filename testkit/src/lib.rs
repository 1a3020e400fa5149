//! Test scaffolding shared by the workspace's tests and benchmarks, and never by the
//! shipped binary: throw-away PostgreSQL databases ([`pg`]), the `tansu` Kafka-protocol
//! broker ([`tansu`]), unique names and free loopback ports.
//!
//! Everything here talks to real components (the machine's PostgreSQL, a real broker
//! process); nothing fakes one.

pub mod pg;
pub mod tansu;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other test of any process on this machine uses at the same time:
/// `<prefix>_<pid>_<nanos>_<n>` (lowercase ASCII, digits and `_`, so it is a valid SQL
/// identifier and Kafka topic name when `prefix` is).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loopback port free at the time of the call.
pub fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|a| a.port())
}

/// A current-thread runtime for blocking callers (a sync test, a `Drop`).
pub fn rt() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
