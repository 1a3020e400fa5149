//! `mieruka close-year FY --note TEXT [--by NAME]` and `mieruka reopen-year FY --note
//! TEXT`: the fiscal-year close (see `mieruka_aggregator::close`), on PostgreSQL when a
//! URL is given, else on the SQLite file. The store does the work in one transaction;
//! this module opens it, prints what changed and logs it.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use mieruka_aggregator::close::{CloseRequest, Reopened};
use mieruka_aggregator::explain::num;
use mieruka_aggregator::store::{PgStore, Store};
use mieruka_aggregator::{ClosedYear, Plan, SqliteStore};

use crate::config::Resolved;

/// Closes `req.year` and prints its final figures.
pub async fn close(settings: &Resolved, req: &CloseRequest) -> anyhow::Result<ExitCode> {
    let closed = if let Ok(url) = settings.database_url() {
        let store = PgStore::open(url, settings.plan.clone())
            .await
            .context("cannot open the PostgreSQL store")?;
        close_in(&store, req).await?
    } else {
        let store = SqliteStore::open(super::existing_db(settings)?, settings.plan.clone()).await?;
        close_in(&store, req).await?
    };
    tracing::info!(
        year = closed.year.0,
        operator = %closed.operator,
        note = %closed.note,
        closed_at = %closed.closed_at,
        kpis = closed.finals.len(),
        "Fiscal year closed: its figures are final."
    );
    print!("{}", closed_text(&settings.plan, &closed));
    Ok(ExitCode::SUCCESS)
}

/// Reopens `req.year` and prints, per KPI, the final figure dropped and the live value.
pub async fn reopen(settings: &Resolved, req: &CloseRequest) -> anyhow::Result<ExitCode> {
    let reopened = if let Ok(url) = settings.database_url() {
        let store = PgStore::open(url, settings.plan.clone())
            .await
            .context("cannot open the PostgreSQL store")?;
        reopen_in(&store, req).await?
    } else {
        let store = SqliteStore::open(super::existing_db(settings)?, settings.plan.clone()).await?;
        reopen_in(&store, req).await?
    };
    tracing::info!(
        year = req.year.0,
        operator = %req.operator,
        note = %req.note,
        closed_at = %reopened.dropped.closed_at,
        "Fiscal year reopened: its figures are provisional again."
    );
    print!("{}", reopened_text(&settings.plan, req, &reopened));
    Ok(ExitCode::SUCCESS)
}

async fn close_in<S: Store>(store: &S, req: &CloseRequest) -> anyhow::Result<ClosedYear> {
    let r = store.close_year(req).await;
    store.close().await;
    let decided = r.with_context(|| format!("cannot close FY{}", req.year))?;
    decided.map_err(anyhow::Error::from)
}

async fn reopen_in<S: Store>(store: &S, req: &CloseRequest) -> anyhow::Result<Reopened> {
    let r = store.reopen_year(req).await;
    store.close().await;
    let decided = r.with_context(|| format!("cannot reopen FY{}", req.year))?;
    decided.map_err(anyhow::Error::from)
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "absent".to_owned(), num)
}

/// What a close froze, one KPI a line.
pub fn closed_text(plan: &Plan, c: &ClosedYear) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "FY{} closed at {} by {} ({:?}): its figures are final (確定値).",
        c.year, c.closed_at, c.operator, c.note
    );
    let _ = writeln!(
        o,
        "Events and voids of FY{} that arrive from now on are adjustments (確定後の修正): \
         they do not change these figures.",
        c.year
    );
    for f in &c.finals {
        let _ = writeln!(o, "  {}: {}", plan.kpis[f.kpi].id, opt(f.value));
    }
    o
}

/// What a reopen changed, one KPI a line.
pub fn reopened_text(plan: &Plan, req: &CloseRequest, r: &Reopened) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "FY{} reopened by {} ({:?}): the close of {} by {} is removed and its figures are \
         provisional (速報値) again.",
        req.year, req.operator, req.note, r.dropped.closed_at, r.dropped.operator
    );
    for live in &r.live {
        let fin = r
            .dropped
            .finals
            .iter()
            .find(|f| f.kpi == live.kpi)
            .and_then(|f| f.value);
        let change = match (live.value, fin) {
            (Some(l), Some(f)) if l != f => format!(" (changed by {})", num(l - f)),
            (Some(_), Some(_)) => " (unchanged)".to_owned(),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  {}: final {} dropped, live {} stands{change}",
            plan.kpis[live.kpi].id,
            opt(fin),
            opt(live.value)
        );
    }
    o
}
