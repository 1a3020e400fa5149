//! kill -9 in the middle of a stream of posted batches: after a restart and a re-post of
//! everything not acknowledged, the KPI values equal those of a clean run, exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::*;

const BATCHES: usize = 30;
const PER_BATCH: usize = 2_000;

fn batch(b: usize) -> Vec<String> {
    let channels = ["konbini", "counter", "mail", "online", "konbini"];
    (0..PER_BATCH)
        .map(|i| {
            let n = b * PER_BATCH + i;
            let day = 1 + n % 28;
            cert(
                &format!("k-{n:07}"),
                channels[n % 5],
                1 + (n % 3) as u32,
                &format!("2026-{:02}-{day:02}T10:00:00+09:00", 4 + n % 6),
            )
        })
        .collect()
}

fn kpi_values(m: &Metrics) -> Vec<((String, String), f64)> {
    m.0.iter()
        .filter(|((name, _), _)| name.starts_with("mieruka_kpi_"))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn clean_run() -> Vec<((String, String), f64)> {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path(), &dir.path().join("clean.db"));
    for b in 0..BATCHES {
        app.post_events(KONBINI_TOKEN, &batch(b));
    }
    let m = app.metrics_after_commit();
    app.stop();
    kpi_values(&m)
}

#[test]
fn a_kill_9_mid_stream_loses_nothing_acknowledged_and_counts_nothing_twice() {
    let expected = clean_run();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut acked = [false; BATCHES];
    // Kill at several points of the stream, restarting each time.
    for kill_after in [3usize, 11, 19] {
        let app = TestApp::start(dir.path(), &db);
        let base = app.base.clone();
        let pending: Vec<usize> = (0..BATCHES).filter(|b| !acked[*b]).collect();
        let done = Arc::new(AtomicUsize::new(0));
        let poster = {
            let done = done.clone();
            let pending = pending.clone();
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                for b in pending {
                    let body = batch(b).join("\n");
                    let r = ureq::post(&format!("{base}/v1/events"))
                        .set("Authorization", &format!("Bearer {KONBINI_TOKEN}"))
                        .set("Content-Type", "application/x-ndjson")
                        .timeout(Duration::from_secs(30))
                        .send_string(&body);
                    match r {
                        Ok(resp) if resp.status() == 200 => {
                            ok.push(b);
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => break,
                    }
                }
                ok
            })
        };
        while done.load(Ordering::SeqCst) < kill_after.min(pending.len()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Let the next batch get under way, then pull the plug.
        std::thread::sleep(Duration::from_millis(15));
        app.kill9();
        for b in poster.join().unwrap() {
            acked[b] = true;
        }
    }
    // Restart and re-post everything that was not acknowledged.
    let app = TestApp::start(dir.path(), &db);
    for b in (0..BATCHES).filter(|b| !acked[*b]) {
        app.post_events(KONBINI_TOKEN, &batch(b));
    }
    let m = app.metrics_after_commit();
    app.stop();
    assert_eq!(kpi_values(&m), expected);
}
