//! The event generator shared by the store tests (SQLite and PostgreSQL): a raw event
//! whose body is decided by its id, so re-sending an id is a duplicate.
#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use mieruka_aggregator::Plan;
use mieruka_ingest::{item, Position};

pub fn plan() -> Arc<Plan> {
    Arc::new(Plan::ome().unwrap())
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn raw(id: u32) -> String {
    let day = [3u32, 40, 200, 380, 500][(id % 5) as usize] + id % 2;
    let (y, doy) = if day < 365 {
        (2025, day)
    } else {
        (2026, day - 365)
    };
    let month = 4 + doy / 31;
    let (yy, mm) = if month > 12 {
        (y + 1, month - 12)
    } else {
        (y, month)
    };
    let at = format!(
        "{yy}-{mm:02}-{:02}T{:02}:00:00+09:00",
        1 + doy % 28,
        9 + id % 3
    );
    let e = |src: &str, ty: &str, data: String| {
        format!(
            r#"{{"event_id":"e{id}","source":"{src}","type":"{ty}","occurred_at":"{at}","data":{data}}}"#
        )
    };
    match id % 9 {
        0 | 1 => e(
            "konbini",
            "certificate.issued",
            format!(
                r#"{{"channel":"{}","certificate":"juminhyo","count":{}}}"#,
                ["konbini", "counter"][(id % 2) as usize],
                1 + id % 4
            ),
        ),
        2 => e(
            "card",
            "mynumber_card.issued",
            format!(r#"{{"count":{}}}"#, 1 + id % 7),
        ),
        3 => e(
            "card",
            "mynumber_card.surrendered",
            format!(r#"{{"count":{},"reason":"moved_out"}}"#, 1 + id % 3),
        ),
        4 => e(
            "card",
            "mynumber_card.holders_snapshot",
            format!(r#"{{"holders":{}}}"#, 100_000 + id),
        ),
        5 => e(
            "hr",
            "telework.day",
            format!(r#"{{"staff":"st-{}"}}"#, id % 11),
        ),
        6 => e(
            "dx",
            "milestone.reached",
            r#"{"kpi":"disposition_notice_online","stage":"research"}"#.to_owned(),
        ),
        7 => e(
            "juki",
            "population.snapshot",
            format!(r#"{{"population":{}}}"#, 130_000 - id),
        ),
        _ => {
            let target = void_target(id);
            let src = match target % 9 {
                0 | 1 => "konbini",
                2..=4 => "card",
                5 => "hr",
                6 => "dx",
                7 => "juki",
                _ => "x",
            };
            format!(
                r#"{{"event_id":"e{id}","source":"{src}","type":"event.voided","occurred_at":"{at}","data":{{}},"voids":"e{target}"}}"#
            )
        }
    }
}

pub fn void_target(id: u32) -> u32 {
    (id * 7) % 60
}

pub fn items(plan: &Plan, ids: &[u32]) -> Vec<mieruka_ingest::Item> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            item(
                &plan.schema,
                raw(*id).as_bytes(),
                Position::Index(i),
                "test",
            )
        })
        .collect()
}

/// The pure engine over raw events, in order.
pub fn engine_of<'p>(plan: &'p Plan, raws: &[String]) -> mieruka_aggregator::Engine<'p> {
    let mut engine = mieruka_aggregator::Engine::new(plan);
    for r in raws {
        engine.apply(mieruka_ingest::decode(&plan.schema, r.as_bytes()).unwrap());
    }
    engine
}

/// Polls `fut` at most `polls` times (each time the runtime wakes it), then drops it
/// unfinished, as a server drops a request's future when its client disconnects. `Some`
/// with its output when it finished first.
pub async fn poll_then_drop<F: std::future::Future>(fut: F, polls: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut n = 0;
    std::future::poll_fn(|cx| {
        if n == polls {
            return std::task::Poll::Ready(None);
        }
        n += 1;
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}
