//! `mieruka explain KPI [--fy YEAR] [--as-of DATE] [--json]`: why a KPI's value is what
//! it is, from the store the settings point to (PostgreSQL when a URL is given, else
//! the embedded SQLite file). The explanation itself is built by
//! [`mieruka_aggregator::explain::explain`], the same function `GET /v1/kpis/<id>`
//! answers with; this module only opens the store and prints it.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use mieruka_aggregator::explain::{explain, num, Explanation, Part, Request};
use mieruka_aggregator::store::{PgStore, Store};
use mieruka_aggregator::SqliteStore;

use crate::config::Resolved;

/// Explains `req` from the store of `settings`, printed as text or JSON.
pub async fn run(settings: &Resolved, req: &Request, json: bool) -> anyhow::Result<ExitCode> {
    let plan = settings.plan.clone();
    let e = if let Ok(url) = settings.database_url() {
        let store = PgStore::open(url, plan)
            .await
            .context("cannot open the PostgreSQL store")?;
        from(&store, req).await?
    } else {
        let store = SqliteStore::open(super::existing_db(settings)?, plan).await?;
        from(&store, req).await?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", text(&e));
    }
    Ok(ExitCode::SUCCESS)
}

async fn from<S: Store>(store: &S, req: &Request) -> anyhow::Result<Explanation> {
    let e = explain(store, req).await;
    store.close().await;
    Ok(e?)
}

/// The explanation as people read it, one fact a line.
pub fn text(e: &Explanation) -> String {
    let mut o = String::new();
    let opt = |x: Option<f64>| x.map_or_else(|| "absent".to_owned(), num);
    let _ = writeln!(
        o,
        "{} {} ({}), FY{}, unit {}",
        e.kpi, e.name_ja, e.name_en, e.fiscal_year, e.unit
    );
    let _ = writeln!(
        o,
        "as of {}{}: events that occurred through {} (JST)",
        e.at,
        e.as_of.as_ref().map_or(String::new(), |d| format!(
            " (--as-of {d}, with today's voids and late arrivals)"
        )),
        e.cutoff_day
            .as_deref()
            .unwrap_or("(the year has not started)")
    );
    finality_text(&mut o, e);
    let _ = writeln!(o, "\n{}", e.formula);
    for p in &e.parts {
        part_text(&mut o, p);
    }
    if let Some(m) = &e.milestone {
        let _ = writeln!(
            o,
            "\nstage reached: {} {} ({} events, {} voided)",
            m.stage_id.as_deref().unwrap_or("none"),
            m.stage_ja.as_deref().unwrap_or(""),
            m.events_counted,
            m.events_voided
        );
    }
    let _ = writeln!(o, "\nstart B = {} ({})", opt(e.start.value), e.start.from);
    let _ = writeln!(o, "target T = {}", opt(e.target));
    if e.target_history.len() > 1 {
        // Only a revised target has a history worth a line each.
        let _ = writeln!(o, "target history (FY{}):", e.fiscal_year);
        for s in &e.target_history {
            let when = s
                .from
                .as_deref()
                .map_or_else(|| "the plan's original".to_owned(), |d| format!("from {d}"));
            let _ = writeln!(
                o,
                "  {when}: {}{}{}",
                num(s.target),
                s.decision
                    .as_deref()
                    .map_or_else(String::new, |d| format!(" ({d})")),
                if s.in_force { " ← in force" } else { "" }
            );
        }
    }
    let _ = writeln!(o, "elapsed f = {}", num(e.elapsed));
    let _ = writeln!(o, "pace: {}", e.pace.formula);
    let _ = writeln!(o, "projection: {}", e.projection.formula);
    let _ = writeln!(
        o,
        "attainment {}, drift {} (tolerance {}), on track: {}",
        opt(e.attainment),
        opt(e.drift),
        num(e.tolerance),
        e.on_track
            .map_or("absent", |b| if b { "yes" } else { "no" })
    );
    let _ = writeln!(o, "duplicates: {}", e.duplicates);
    if e.undecodable_log_rows > 0 {
        let _ = writeln!(
            o,
            "warning: {} logged events of these measures no longer decode under the plan and are left out",
            e.undecodable_log_rows
        );
    }
    o
}

/// 速報値 or 確定値; for a final figure, the close, the adjustment and what arrived since.
fn finality_text(o: &mut String, e: &Explanation) {
    let f = &e.finality;
    let opt = |x: Option<f64>| x.map_or_else(|| "absent".to_owned(), num);
    if f.status != "final" {
        let _ = writeln!(
            o,
            "{} provisional: FY{} is not closed (`mieruka close-year` makes its figures final)",
            f.ja, e.fiscal_year
        );
        return;
    }
    let _ = writeln!(
        o,
        "{} final: FY{} closed at {} by {} ({:?}); final value {}",
        f.ja,
        e.fiscal_year,
        f.closed_at.as_deref().unwrap_or("?"),
        f.closed_by.as_deref().unwrap_or("?"),
        f.note.as_deref().unwrap_or(""),
        opt(f.final_value)
    );
    let _ = writeln!(
        o,
        "live value now {} (what the parts below add up to); 確定後の修正 adjustment since the close: {}",
        opt(f.live_value),
        opt(f.adjustment)
    );
    if let Some(late) = &f.adjustments {
        let _ = writeln!(
            o,
            "events and voids that arrived after the close: {}{}",
            late.total,
            if (late.listed.len() as i64) < late.total {
                format!(" (the first {} listed)", late.listed.len())
            } else {
                String::new()
            }
        );
        for l in &late.listed {
            let _ = writeln!(
                o,
                "  received {}: {}/{} {} occurred {}{}",
                l.received_at,
                l.source,
                l.event_id,
                l.event_type,
                l.occurred_at,
                l.voids
                    .as_ref()
                    .map_or(String::new(), |v| format!(" (voids {v})"))
            );
        }
    }
}

/// One measure: its value, snapshot, events, months and sources.
fn part_text(o: &mut String, p: &Part) {
    let _ = writeln!(
        o,
        "\n{}: {} ({}, {}) = {}",
        p.role,
        p.measure,
        p.kind,
        p.description,
        p.value.map_or_else(|| "absent".to_owned(), num)
    );
    if let Some(s) = &p.snapshot {
        let _ = writeln!(
            o,
            "  snapshot {} = {} at {} from {}",
            s.event_id,
            num(s.value),
            s.occurred_at,
            s.source.as_deref().unwrap_or("(source not in the log)")
        );
    }
    if let Some(d) = p.deltas_since {
        let _ = writeln!(o, "  deltas since: {}", num(d));
    }
    let _ = writeln!(
        o,
        "  events counted: {}, voided: {}, duplicates seen: {}",
        p.events_counted, p.events_voided, p.duplicates_seen
    );
    for (name, shares) in [("by month", &p.by_month), ("by source", &p.by_source)] {
        let list: Vec<String> = shares
            .iter()
            .map(|s| format!("{} {}", s.key, num(s.value)))
            .collect();
        let _ = writeln!(
            o,
            "  {name}: {}",
            if list.is_empty() {
                "—".to_owned()
            } else {
                list.join(", ")
            }
        );
    }
}
