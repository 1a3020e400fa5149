//! `mieruka bench ingest`: HTTP NDJSON ingest to durable, measured end to end on this
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

use crate::app::{App, Settings};

/// The bench's bearer token.
const TOKEN: &str = "bench-token";

/// "Now" for the benches: after every synthetic event (they lie in FY2026, April to
/// December), so the edge's time window takes them whatever the wall clock says.
pub const BENCH_NOW: mieruka_ingest::Timestamp =
    mieruka_ingest::Timestamp::from_unix_seconds(1_798_729_200); // 2027-01-01T00:00:00+09:00

/// The Ome plan, taking events as of [`BENCH_NOW`].
pub fn bench_plan() -> anyhow::Result<mieruka_aggregator::Plan> {
    let mut plan = mieruka_aggregator::Plan::ome()?;
    let window = mieruka_ingest::TimeWindow {
        now: Some(BENCH_NOW),
        ..*plan.schema.window()
    };
    plan.schema.set_window(window);
    Ok(plan)
}

/// One synthetic event, ~250 bytes, with a unique id; a realistic mix of certificate
/// channels and applications over FY2026.
pub fn event(n: u64) -> String {
    let channels = ["konbini", "counter", "mail", "online", "konbini"];
    let certs = ["juminhyo", "inkan", "koseki", "tax", "other"];
    let month = 4 + (n / 1000) % 9;
    let day = 1 + (n / 37) % 28;
    let (h, m, s) = (8 + n % 10, (n / 10) % 60, (n / 600) % 60);
    let at = format!("2026-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}+09:00");
    if n % 3 == 2 {
        format!(
            r#"{{"event_id":"portal-{n:010}","source":"portal","type":"application.submitted","occurred_at":"{at}","data":{{"procedure":"proc-{:03}","channel":"{}","count":1}}}}"#,
            n % 300,
            ["online", "counter", "mail"][(n % 3) as usize]
        )
    } else {
        format!(
            r#"{{"event_id":"konbini-{n:010}","source":"konbini","type":"certificate.issued","occurred_at":"{at}","data":{{"channel":"{}","certificate":"{}","count":{}}}}}"#,
            channels[(n % 5) as usize],
            certs[(n / 5 % 5) as usize],
            1 + n % 2
        )
    }
}

/// [`event`] with an id in no order (a bijective mix of `n`, so still unique), like a
/// UUID: such ids land anywhere in the event log's key index, not at its end. Written
/// with the letters a–p, one per 4 bits: a run of 12 digits could pass the
/// personal-number check and be rejected, as DESIGN.md intends.
pub fn event_with_random_id(n: u64) -> String {
    let mut x = n;
    // splitmix64's finalizer: a bijection on u64.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let id: String = (0..16)
        .rev()
        .map(|i| char::from(b'a' + ((x >> (4 * i)) & 0xf) as u8))
        .collect();
    event(n).replacen(&format!("-{n:010}\""), &format!("-{id}\""), 1)
}

/// Peak and current resident set size of this process, in MiB (Linux).
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

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

/// Posts `events` synthetic events in batches of `batch` to a fresh standalone on `db`,
/// printing throughput and peak RSS at each checkpoint.
pub async fn ingest(
    db: &Path,
    events: u64,
    batch: u64,
    connections: usize,
    checkpoints: &[u64],
) -> anyhow::Result<()> {
    if db.exists() {
        bail!(
            "{} exists; the bench needs a fresh database file",
            db.display()
        );
    }
    let now = Some(BENCH_NOW);
    let plan = Arc::new(bench_plan()?);
    let token = mieruka_ingest::http::Token {
        name: "bench".into(),
        token: Some(TOKEN.into()),
        token_env: None,
        sources: vec!["konbini".into(), "portal".into()],
        types: Vec::new(),
    };
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        db: db.to_owned(),
        refresh: std::time::Duration::from_secs(60),
        limits: mieruka_ingest::http::Limits {
            max_body_bytes: 64 * 1024 * 1024,
            ..Default::default()
        },
        idle_timeout: mieruka_ingest::http::DEFAULT_IDLE_TIMEOUT,
        tokens: vec![(TOKEN.into(), token)],
        sources: vec!["konbini".into(), "portal".into()],
        now,
    };
    let app = App::build(plan, settings).await?;
    let addr = app.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    println!(
        "bench ingest: {events} events in batches of {batch} over {connections} HTTP connection(s) to {} (SQLite, synchronous=FULL)",
        db.display()
    );
    println!(
        "{:>12} {:>12} {:>14} {:>12} {:>12}",
        "events", "seconds", "events/s", "peak MiB", "rss MiB"
    );
    let started = Instant::now();
    // Batches are numbered; each connection takes the next free number, so the events
    // are the same whatever the number of connections.
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (next, done, accepted) = (next.clone(), done.clone(), accepted.clone());
        let mut client = Client::connect(addr)
            .await
            .context("cannot connect to the bench server")?;
        tasks.push(tokio::spawn(async move {
            let mut body = Vec::with_capacity(batch as usize * 260);
            loop {
                let first = next.fetch_add(batch, SeqCst);
                if first >= events {
                    return Ok::<(), anyhow::Error>(());
                }
                let n = batch.min(events - first);
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
                accepted.fetch_add(v["accepted"].as_u64().unwrap_or(0), SeqCst);
                done.fetch_add(n, SeqCst);
            }
        }));
    }
    let mut marks: Vec<u64> = checkpoints
        .iter()
        .copied()
        .filter(|c| *c < events)
        .collect();
    marks.push(events);
    for mark in marks {
        while done.load(SeqCst) < mark && !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let sent = done.load(SeqCst);
        let secs = started.elapsed().as_secs_f64();
        let (peak, rss) = rss_mib();
        println!(
            "{sent:>12} {secs:>12.1} {:>14.0} {peak:>12.1} {rss:>12.1}",
            sent as f64 / secs
        );
    }
    for t in tasks {
        t.await??;
    }
    println!("accepted {} of {events}", accepted.load(SeqCst));
    shutdown.cancel();
    server.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_unique_out_of_order_and_change_nothing_else() {
        let ids: Vec<String> = (0..2_000)
            .map(|n| {
                let e: serde_json::Value = serde_json::from_str(&event_with_random_id(n))
                    .unwrap_or_else(|err| panic!("event {n}: {err}"));
                let plain: serde_json::Value =
                    serde_json::from_str(&event(n)).unwrap_or_else(|err| panic!("{err}"));
                for field in ["source", "type", "occurred_at", "data"] {
                    assert_eq!(e[field], plain[field], "event {n}, {field}");
                }
                assert_ne!(e["event_id"], plain["event_id"]);
                let id = e["event_id"].as_str().unwrap_or_default();
                assert!(!id.contains(|c: char| c.is_ascii_digit()), "{id}");
                e["event_id"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let mut sorted = ids.clone();
        sorted.sort();
        assert_ne!(sorted, ids, "ids in no order");
    }
}
