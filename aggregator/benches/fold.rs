//! Decode + validate + fold of a realistic mix of Ome events, in one thread (so the
//! events/s it reports are per core). Targets (docs/architecture.md): decode + validate
//! ≥ 2,000,000 events/s per core, the full engine ≥ 1,500,000.
//!
//! Run: `cargo bench -p mieruka-aggregator --bench fold`; one bench alone with
//! `-- --exact fold::decode_validate_fold` (on some machines the full engine measures
//! steadier alone than after the decode bench in the same process: README, "Layout").

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use mieruka_aggregator::ledger::effects;
use mieruka_aggregator::{Engine, Ledger, Plan};
use mieruka_ingest::decode;

/// The allocator the `mieruka` binary runs with (src/main.rs): the bench measures the
/// engine as it runs there, where each event's strings are allocated and freed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

/// Events per iteration: enough that per-iteration overhead vanishes.
const N: usize = 100_000;

/// A mix shaped like a day of Ome's feeds: mostly certificates and applications, some
/// card issuance, telework, paper and snapshots. Ids are unique, ~250 bytes per event.
fn mix(n: usize) -> Vec<String> {
    let channels = ["konbini", "counter", "mail", "online"];
    let certs = ["juminhyo", "inkan", "koseki", "tax", "other"];
    (0..n)
        .map(|i| {
            let day = 1 + (i / 2000) % 28;
            let at = format!("2026-05-{day:02}T{:02}:{:02}:{:02}+09:00", 8 + (i / 3600) % 10, (i / 60) % 60, i % 60);
            match i % 20 {
                0..=8 => format!(
                    r#"{{"event_id":"konbini-202605-{i:08}","source":"konbini","type":"certificate.issued","occurred_at":"{at}","data":{{"channel":"{}","certificate":"{}","count":{}}}}}"#,
                    channels[i % 4],
                    certs[i % 5],
                    1 + i % 3
                ),
                9..=13 => format!(
                    r#"{{"event_id":"portal-202605-{i:08}","source":"portal","type":"application.submitted","occurred_at":"{at}","data":{{"procedure":"proc-{:03}","channel":"{}","count":1}}}}"#,
                    i % 300,
                    ["online", "counter", "mail"][i % 3]
                ),
                14..=15 => format!(
                    r#"{{"event_id":"card-202605-{i:08}","source":"card","type":"mynumber_card.issued","occurred_at":"{at}","data":{{"count":1,"kind":"{}"}}}}"#,
                    ["new", "renewal"][i % 2]
                ),
                16 => format!(
                    r#"{{"event_id":"hr-202605-{i:08}","source":"hr","type":"telework.day","occurred_at":"{at}","data":{{"staff":"st-{:06x}"}}}}"#,
                    (i * 2_654_435_761) % 1400
                ),
                17 => format!(
                    r#"{{"event_id":"docs-202605-{i:08}","source":"docmgmt","type":"document.approved","occurred_at":"{at}","data":{{"channel":"electronic","origin":"hatsui","count":1}}}}"#
                ),
                18 => format!(
                    r#"{{"event_id":"proc-202605-{i:08}","source":"procurement","type":"paper.purchased","occurred_at":"{at}","data":{{"size":"A4","sheets":2500}}}}"#
                ),
                _ if i % 1000 == 19 => format!(
                    r#"{{"event_id":"card-snap-{i:08}","source":"card","type":"mynumber_card.holders_snapshot","occurred_at":"{at}","data":{{"holders":{}}}}}"#,
                    107_000 + i / 1000
                ),
                _ => format!(
                    r#"{{"event_id":"card-s-{i:08}","source":"card","type":"mynumber_card.surrendered","occurred_at":"{at}","data":{{"count":1,"reason":"moved_out"}}}}"#
                ),
            }
        })
        .collect()
}

#[divan::bench(sample_count = 10)]
fn decode_validate(bencher: Bencher) {
    let plan = Plan::ome().unwrap_or_else(|e| panic!("{e}"));
    let lines = mix(N);
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        for l in &lines {
            let _ = black_box(decode(&plan.schema, l.as_bytes()));
        }
    });
}

#[divan::bench(sample_count = 10)]
fn decode_validate_fold(bencher: Bencher) {
    let plan = Plan::ome().unwrap_or_else(|e| panic!("{e}"));
    let lines = mix(N);
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        let mut engine = Engine::with_capacity(&plan, N);
        for l in &lines {
            if let Ok(event) = decode(&plan.schema, l.as_bytes()) {
                black_box(engine.apply(event));
            }
        }
        engine
    });
}

/// Decode + validate + fold into the measures alone (no duplicate or void bookkeeping:
/// in the pipeline that lives in the store's event log).
#[divan::bench(sample_count = 10)]
fn decode_validate_fold_measures(bencher: Bencher) {
    let plan = Plan::ome().unwrap_or_else(|e| panic!("{e}"));
    let lines = mix(N);
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        let mut ledger = Ledger::default();
        for l in &lines {
            if let Ok(event) = decode(&plan.schema, l.as_bytes()) {
                for eff in effects(&plan, &event) {
                    ledger.apply(&eff, 1, &mut |_, _, _| 0);
                }
            }
        }
        ledger
    });
}
