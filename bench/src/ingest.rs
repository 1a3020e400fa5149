//! `mieruka-bench ingest`: HTTP NDJSON ingest to durable, measured end to end on this
//! machine — a real `standalone` on a fresh SQLite file, a client posting batches over
//! loopback, events/s and peak RSS reported at checkpoints. A benchmark, never a test:
//! these machines are noisy, so no assertion is made on the figures.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::events::{bench_plan, event, rss_mib, BENCH_NOW};
use mieruka::config::{Resolved, RoleKind};
use mieruka::roles::standalone::Standalone;

/// The bench's bearer token.
const TOKEN: &str = "bench-token";

/// A keep-alive HTTP/1.1 client for one connection: enough for the bench, no more.
struct Client {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    async fn post_ndjson(&mut self, body: &[u8]) -> anyhow::Result<(u16, String)> {
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut headers = Vec::new();
        loop {
            let b = self.stream.read_u8().await?;
            headers.push(b);
            if headers.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&headers);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len: usize = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut reply = vec![0; len];
        self.stream.read_exact(&mut reply).await?;
        Ok((status, String::from_utf8_lossy(&reply).into_owned()))
    }
}

/// What one run posts.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Events to post.
    pub events: u64,
    /// Events per request.
    pub batch: u64,
    /// Concurrent HTTP connections.
    pub connections: usize,
}

/// Posts `events` synthetic events in batches of `batch` to a fresh standalone on `db`,
/// printing throughput and peak RSS at each checkpoint.
pub async fn ingest(db: &Path, opts: IngestOptions, checkpoints: &[u64]) -> anyhow::Result<()> {
    if db.exists() {
        bail!(
            "{} exists; the bench needs a fresh database file",
            db.display()
        );
    }
    let app = Standalone::build(&settings(db)?).await?;
    let addr = app.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    println!(
        "bench ingest: {} events in batches of {} over {} HTTP connection(s) to {} (SQLite, synchronous=FULL)",
        opts.events,
        opts.batch,
        opts.connections,
        db.display()
    );
    println!(
        "{:>12} {:>12} {:>14} {:>12} {:>12}",
        "events", "seconds", "events/s", "peak MiB", "rss MiB"
    );
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let tasks = post_all(addr, opts, &progress).await?;
    report(started, opts.events, checkpoints, &progress, &tasks).await;
    for t in tasks {
        t.await??;
    }
    println!(
        "accepted {} of {}",
        progress.accepted.load(SeqCst),
        opts.events
    );
    shutdown.cancel();
    server.await??;
    Ok(())
}

/// A standalone on a fresh SQLite file at `db`, on a free port, taking the bench's token.
pub(crate) fn settings(db: &Path) -> anyhow::Result<Resolved> {
    let sources = vec!["konbini".to_owned(), "portal".to_owned()];
    let token = mieruka_ingest::http::Token {
        name: "bench".into(),
        token: Some(TOKEN.into()),
        sources: sources.clone(),
        ..mieruka_ingest::http::Token::default()
    };
    let mut r = Resolved::new(Arc::new(bench_plan()?), RoleKind::Standalone);
    r.listen = "127.0.0.1:0".into();
    r.db = db.to_owned();
    r.limits.max_body_bytes = 64 * 1024 * 1024;
    r.tokens = vec![token];
    r.sources = sources;
    r.now = Some(BENCH_NOW);
    Ok(r)
}

/// Counters the posting connections share.
#[derive(Default)]
struct Progress {
    /// The first event of the next batch to post: batches are numbered, each connection
    /// takes the next free number, so the events are the same whatever the connections.
    next: AtomicU64,
    /// Events whose request was answered.
    done: AtomicU64,
    /// Events the replies counted accepted.
    accepted: AtomicU64,
}

/// Opens the connections and starts each posting batches until none is left.
async fn post_all(
    addr: std::net::SocketAddr,
    opts: IngestOptions,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    let mut tasks = Vec::new();
    for _ in 0..opts.connections.max(1) {
        let mut client = Client::connect(addr)
            .await
            .context("cannot connect to the bench server")?;
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = Vec::with_capacity(opts.batch as usize * 260);
            loop {
                let first = progress.next.fetch_add(opts.batch, SeqCst);
                if first >= opts.events {
                    return Ok::<(), anyhow::Error>(());
                }
                let n = opts.batch.min(opts.events - first);
                body.clear();
                for i in first..first + n {
                    body.extend_from_slice(event(i).as_bytes());
                    body.push(b'\n');
                }
                let (status, reply) = client.post_ndjson(&body).await?;
                if status != 200 {
                    bail!("HTTP {status}: {reply}");
                }
                let v: serde_json::Value = serde_json::from_str(&reply)?;
                progress
                    .accepted
                    .fetch_add(v["accepted"].as_u64().unwrap_or(0), SeqCst);
                progress.done.fetch_add(n, SeqCst);
            }
        }));
    }
    Ok(tasks)
}

/// Prints a line at each checkpoint below `events`, and at the end.
async fn report(
    started: Instant,
    events: u64,
    checkpoints: &[u64],
    progress: &Progress,
    tasks: &[tokio::task::JoinHandle<anyhow::Result<()>>],
) {
    let mut marks: Vec<u64> = checkpoints
        .iter()
        .copied()
        .filter(|c| *c < events)
        .collect();
    marks.push(events);
    for mark in marks {
        while progress.done.load(SeqCst) < mark && !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let sent = progress.done.load(SeqCst);
        let secs = started.elapsed().as_secs_f64();
        let (peak, rss) = rss_mib();
        println!(
            "{sent:>12} {secs:>12.1} {:>14.0} {peak:>12.1} {rss:>12.1}",
            sent as f64 / secs
        );
    }
}
