//! The event generator shared by the store tests (SQLite and PostgreSQL): a raw event
//! whose body is decided by its id, so re-sending an id is a duplicate.
#![allow(dead_code)] // each test binary uses its own subset

pub mod stores;

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

/// The widest value the wide plan allows per event, 9·10^18: an i64 holds 9.22·10^18,
/// so two of them sum past `i64::MAX`.
pub const BIG: i64 = 9_000_000_000_000_000_000;

/// A plan whose fields declare bounds of ±[`BIG`] (far wider than the default): a flow,
/// a level with its increases, decreases and snapshots, and a KPI on each.
pub const WIDE_PLAN: &str = r#"
[plan]
id = "wide"
name_ja = "広い和"
name_en = "Wide sums"
baseline_year = 2025
first_year = 2026
last_year = 2027

[chapters."1"]
name_ja = "一"
name_en = "One"

[event_types.shipped.fields]
amount = { kind = "int", min = -9000000000000000000, max = 9000000000000000000 }
[event_types.received.fields]
count = { kind = "int", min = 0, max = 9000000000000000000 }
[event_types.retired.fields]
count = { kind = "int", min = 0, max = 9000000000000000000 }
[event_types.stock.fields]
stock = { kind = "int", min = 0, max = 9000000000000000000 }
[event_types.void]
voids = true

[measures.shipped]
kind = "sum"
type = "shipped"
field = "amount"
[measures.stock]
kind = "level"
increase = [{ type = "received", field = "count" }]
decrease = [{ type = "retired", field = "count" }]
reset = { type = "stock", field = "stock" }

[[kpi]]
id = "shipped_total"
name_ja = "出荷"
name_en = "Shipped"
chapter = "1"
unit = "units"
direction = "up"
kind = "measure"
measure = "shipped"
targets = { 2026 = 3.0e19 }
tolerance = 1

[[kpi]]
id = "stock_level"
name_ja = "在庫"
name_en = "Stock"
chapter = "1"
unit = "units"
direction = "up"
kind = "measure"
measure = "stock"
targets = { 2026 = 3.0e19 }
tolerance = 1
"#;

pub fn wide_plan() -> Arc<Plan> {
    Arc::new(Plan::parse("wide.toml", WIDE_PLAN).unwrap())
}

/// A raw event of the wide plan, from source `w`; `value` fills the type's one field
/// (a void has none, and `value` is then the id it voids).
pub fn wide_raw(id: &str, ty: &str, at: &str, value: &str) -> String {
    let field = match ty {
        "shipped" => "amount",
        "stock" => "stock",
        "void" => {
            return format!(
                r#"{{"event_id":"{id}","source":"w","type":"void","occurred_at":"{at}","data":{{}},"voids":"{value}"}}"#
            )
        }
        _ => "count",
    };
    format!(
        r#"{{"event_id":"{id}","source":"w","type":"{ty}","occurred_at":"{at}","data":{{"{field}":{value}}}}}"#
    )
}

/// A history whose sums pass `i64::MAX` wherever a ledger sums: a flow's day (two
/// shipments of [`BIG`] on May 1st), a level's deltas (two receipts on May 2nd) and a
/// snapshot's `after` (the May 2nd snapshot arrives after that day's later receipts),
/// with an opening snapshot on April 1st, a decrease and a void (read back from the log).
/// FY2026 ends with 2·BIG shipped and a stock of 2·BIG.
pub fn wide_history() -> Vec<String> {
    let big = BIG.to_string();
    [
        ("k0", "stock", "2026-04-01T00:00:00+09:00", big.as_str()),
        ("s1", "shipped", "2026-05-01T10:00:00+09:00", &big),
        ("s2", "shipped", "2026-05-01T11:00:00+09:00", &big),
        ("s3", "shipped", "2026-06-01T10:00:00+09:00", &big),
        ("r1", "received", "2026-05-02T10:00:00+09:00", &big),
        ("r2", "received", "2026-05-02T11:00:00+09:00", &big),
        ("k1", "stock", "2026-05-02T09:00:00+09:00", &big),
        ("t1", "retired", "2026-05-03T10:00:00+09:00", &big),
        ("v1", "void", "2026-06-02T10:00:00+09:00", "s3"),
    ]
    .iter()
    .map(|(id, ty, at, v)| wide_raw(id, ty, at, v))
    .collect()
}

/// Items of raw events, positioned by index.
pub fn raw_items(plan: &Plan, raws: &[String]) -> Vec<mieruka_ingest::Item> {
    raws.iter()
        .enumerate()
        .map(|(i, r)| item(&plan.schema, r.as_bytes(), Position::Index(i), "test"))
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

/// What [`wide_history`] must leave: 2·BIG, exactly, as a flow total and as a level, and
/// as the KPI values of FY2026 (positive, never wrapped).
pub fn assert_wide_figures(plan: &Plan, ledger: &mieruka_aggregator::Ledger) {
    use mieruka_aggregator::{figures, Day, FiscalYear};
    use mieruka_ingest::Timestamp;
    let two_big = 2 * i128::from(BIG);
    let fy = FiscalYear(2026);
    let (shipped, stock) = (
        plan.measure("shipped").unwrap(),
        plan.measure("stock").unwrap(),
    );
    assert_eq!(
        ledger.flow_sum(shipped, fy.first_day(), fy.last_day()),
        two_big
    );
    let may_1 = Day::of(Timestamp::parse_rfc3339("2026-05-01T00:00:00+09:00").unwrap());
    assert_eq!(ledger.flows.get(&(shipped, may_1)), Some(&two_big));
    assert_eq!(ledger.level_at(stock, fy.last_day()), Some((two_big, true)));
    assert_eq!(ledger.level_at_start(stock, fy), Some(i128::from(BIG)));
    let now = Timestamp::parse_rfc3339("2026-10-01T00:00:00+09:00").unwrap();
    let figs = figures(plan, ledger, now);
    for kpi in ["shipped_total", "stock_level"] {
        let k = plan.kpi_id(kpi).unwrap();
        let f = figs.iter().find(|f| f.kpi == k && f.year == fy).unwrap();
        let v = f.value.unwrap_or_else(|| panic!("{kpi}: no value"));
        assert!((v - 1.8e19).abs() <= 1.8e19 * 1e-12, "{kpi}: {v} != 1.8e19");
    }
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

/// A copy of the given migration files in a folder of their own: a database migrated with
/// them alone has the schema as it was before the later ones.
pub fn old_migrations(dir: &std::path::Path, kind: &str, files: &[&str]) -> std::path::PathBuf {
    let to = dir.join(format!("migrations-{kind}"));
    std::fs::create_dir_all(&to).unwrap();
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(kind);
    for f in files {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    to
}
