//! Why a KPI's value is what it is (`mieruka explain`, `GET /v1/kpis/<id>`): the
//! formula with its numbers, each measure's contributions by month and by source, the
//! events counted and voided, the snapshot a level starts from with the deltas since,
//! and pace and projection with their inputs.
//!
//! [`explain`] is the one function both the command and the endpoint call. The figure
//! is the one `/metrics` shows: [`crate::figures`] over the store's ledger (or, as of a
//! past date, over a ledger rebuilt from the event log with the events that occurred by
//! then, knowing today's voids and late arrivals). Months come from that ledger's days;
//! sources, counts and distinct values' first occurrences from the event log, read page
//! by page.

use mieruka_ingest::Timestamp;
use serde::Serialize;

use crate::close::{LateEvents, LateQuery};
use crate::figures::{figures, Figure};
use crate::fiscal::{Day, FiscalYear};
use crate::ledger::Ledger;
use crate::plan::{Kpi, KpiId, KpiKind, MeasureId, Plan};
use crate::store::{LogScan, Store};

mod parts;
mod tally;

pub use parts::{num, Derived, MilestonePart, Part, Share, SnapshotUsed, Start};
use tally::{Basis, Tally};

/// What to explain.
#[derive(Clone, Debug)]
pub struct Request {
    /// The KPI's id in the plan.
    pub kpi: String,
    /// The fiscal year [default: the year of `as_of`, else of `now`].
    pub year: Option<FiscalYear>,
    /// The value as it stood at the end of this day (JST) instead of at `now`.
    pub as_of: Option<Day>,
    /// The instant figures are computed at (the wall clock, or `--now`).
    pub now: Timestamp,
}

/// Why `explain` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError<E: std::error::Error> {
    /// The plan has no such KPI: the caller asked for the wrong thing.
    #[error("no KPI {0:?} in the plan (known: {1})")]
    UnknownKpi(String, String),
    /// The fiscal year is not one the plan exports.
    #[error("fiscal year {0} is outside the plan ({1} to {2})")]
    Year(i32, i32, i32),
    /// `--as-of` lies after now.
    #[error("--as-of {0} is in the future (now is {1})")]
    Future(Day, Timestamp),
    /// The store failed: retry later.
    #[error(transparent)]
    Store(E),
}

/// A KPI's figure in one fiscal year, taken apart.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub kpi: String,
    pub name_ja: String,
    pub name_en: String,
    pub unit: String,
    /// `measure`, `ratio`, `milestone` or `recurring`.
    pub kind: &'static str,
    pub fiscal_year: i32,
    /// The instant the figure is computed at (RFC 3339, UTC).
    pub at: String,
    /// The last day whose events count (JST); absent before the year starts.
    pub cutoff_day: Option<String>,
    /// `--as-of`, when given.
    pub as_of: Option<String>,
    /// The value, exactly as `/metrics` shows it.
    pub value: Option<f64>,
    /// The formula with the numbers in it.
    pub formula: String,
    /// The measures the value is made of.
    pub parts: Vec<parts::Part>,
    /// A milestone's stage reached.
    pub milestone: Option<parts::MilestonePart>,
    /// T, the target in force at `at` (the latest dated revision begun, else the plan's).
    pub target: Option<f64>,
    /// The year's targets over time: the plan's original, then each dated revision;
    /// empty when the plan sets the year no target.
    pub target_history: Vec<TargetStep>,
    /// B, where the year started, and where that comes from.
    pub start: parts::Start,
    /// f, the elapsed fraction of the year.
    pub elapsed: f64,
    pub pace: parts::Derived,
    pub projection: parts::Derived,
    pub attainment: Option<f64>,
    pub drift: Option<f64>,
    pub on_track: Option<bool>,
    pub tolerance: f64,
    /// Where duplicates are counted: each part's `duplicates_seen`, and what it leaves out.
    pub duplicates: &'static str,
    /// Log rows of these measures' types that no longer decode under the plan.
    pub undecodable_log_rows: u64,
    /// 速報値 (provisional) or 確定値 (final), with the close and its adjustments.
    pub finality: Finality,
}

/// Whether the figure is provisional or final; for a final one, the close and what
/// arrived since (確定後の修正).
#[derive(Clone, Debug, Serialize)]
pub struct Finality {
    /// `provisional` or `final`.
    pub status: &'static str,
    /// 速報値 or 確定値.
    pub ja: &'static str,
    /// When the year was closed (RFC 3339).
    pub closed_at: Option<String>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// The operator's note.
    pub note: Option<String>,
    /// The figure frozen at the close (what /metrics shows).
    pub final_value: Option<f64>,
    /// What the aggregates say now (what the parts add up to).
    pub live_value: Option<f64>,
    /// live − final.
    pub adjustment: Option<f64>,
    /// The events and voids of the KPI's types that arrived after the close.
    pub adjustments: Option<LateEvents>,
}

/// One of a year's targets: the plan's original, or a dated revision.
#[derive(Clone, Debug, Serialize)]
pub struct TargetStep {
    /// The day (JST) it is in force from; absent for the plan's original target.
    pub from: Option<String>,
    pub target: f64,
    /// The decision that revised it; absent for the original.
    pub decision: Option<String>,
    /// Whether it is the target in force at the explanation's instant.
    pub in_force: bool,
}

/// The targets of `year` over time, the one in force at `at` marked.
fn target_history(kpi: &Kpi, year: FiscalYear, at: Timestamp) -> Vec<TargetStep> {
    let Some(original) = kpi.target(year) else {
        return Vec::new();
    };
    let mut steps = vec![TargetStep {
        from: None,
        target: original,
        decision: None,
        in_force: false,
    }];
    steps.extend(kpi.revisions_of(year).map(|r| TargetStep {
        from: Some(r.from.to_string()),
        target: r.target,
        decision: Some(r.decision.clone()),
        in_force: false,
    }));
    let begun = kpi
        .revisions_of(year)
        .filter(|r| r.from.start() <= at)
        .count();
    steps[begun].in_force = true;
    steps
}

/// Explains `req.kpi` from `store`.
pub async fn explain<S: Store>(
    store: &S,
    req: &Request,
) -> Result<Explanation, ExplainError<S::Error>> {
    let plan: &Plan = store.plan();
    let Some(k) = plan.kpi_id(&req.kpi) else {
        let known: Vec<&str> = plan.kpis.iter().map(|k| k.id.as_str()).collect();
        return Err(ExplainError::UnknownKpi(req.kpi.clone(), known.join(", ")));
    };
    let at = match req.as_of {
        Some(d) if d.start() > req.now => return Err(ExplainError::Future(d, req.now)),
        // The end of the day: its last microsecond.
        Some(d) => Timestamp::from_micros(Day(d.0 + 1).start().micros() - 1).min(req.now),
        None => req.now,
    };
    let year = req.year.unwrap_or_else(|| FiscalYear::of(at));
    if year < plan.first_year.min(plan.baseline_year) || year > plan.last_year {
        let first = plan.first_year.min(plan.baseline_year).0;
        return Err(ExplainError::Year(year.0, first, plan.last_year.0));
    }
    let cut = if at < year.start() {
        None
    } else {
        Some(Day::of(
            at.min(Timestamp::from_micros(year.end().micros() - 1)),
        ))
    };
    let (ledger, tally) = match cut {
        Some(cut) => read(store, k, year, cut, req.as_of.is_some()).await?,
        None => (Ledger::default(), Tally::new(plan, year, Day(0), &[])),
    };
    let fig = figures(plan, &ledger, at)
        .into_iter()
        .find(|f| f.kpi == k && f.year == year);
    let finality = finality(store, k, year, at, fig.as_ref()).await?;
    let mut duplicates = std::collections::BTreeMap::new();
    if let Some(cut) = cut {
        for m in measures_of(plan, k) {
            let n = store
                .duplicates_seen(&plan.measures[m].id, year.first_day(), cut)
                .await
                .map_err(ExplainError::Store)?;
            duplicates.insert(m, n);
        }
    }
    let ctx = parts::Ctx {
        duplicates: &duplicates,
        plan,
        ledger: &ledger,
        tally: &tally,
        k,
        year,
        cut,
    };
    let mut e = assemble(&ctx, fig, at, req.as_of);
    if finality.status == "final" {
        // The value /metrics shows is the final one; the parts above explain the live
        // value, and the adjustments list what moved it since the close.
        e.value = finality.final_value;
    }
    e.finality = finality;
    Ok(e)
}

/// How many adjustments `explain` lists (all are counted).
const LATE_LISTED: i64 = 50;

/// Provisional, or final with the close and the adjustments since.
async fn finality<S: Store>(
    store: &S,
    k: KpiId,
    year: FiscalYear,
    at: Timestamp,
    live: Option<&Figure>,
) -> Result<Finality, ExplainError<S::Error>> {
    let plan: &Plan = store.plan();
    let closes = store.closes().await.map_err(ExplainError::Store)?;
    let provisional = Finality {
        status: "provisional",
        ja: "速報値",
        closed_at: None,
        closed_by: None,
        note: None,
        final_value: None,
        live_value: live.and_then(|f| f.value),
        adjustment: None,
        adjustments: None,
    };
    let Some(close) = closes.get(year).filter(|_| at >= year.end()) else {
        return Ok(provisional);
    };
    let Some(frozen) = close.finals.iter().find(|f| f.kpi == k) else {
        return Ok(provisional);
    };
    let measures = measures_of(plan, k);
    let (mut types, others) = types_of(plan, k, &measures);
    types.extend(others);
    // A level carries every earlier event into the year.
    let level = measures
        .iter()
        .any(|m| plan.measures[*m].kind == crate::plan::MeasureKind::Level);
    let q = LateQuery {
        types: &types,
        from: if level {
            Timestamp::from_micros(i64::MIN)
        } else {
            year.start()
        },
        before: year.end(),
        received_after: close.closed_at,
        limit: LATE_LISTED,
    };
    let late = store.late_events(&q).await.map_err(ExplainError::Store)?;
    let live_value = live.and_then(|f| f.value);
    Ok(Finality {
        status: "final",
        ja: "確定値",
        closed_at: Some(close.closed_at.to_string()),
        closed_by: Some(close.operator.clone()),
        note: Some(close.note.clone()),
        final_value: frozen.value,
        live_value,
        adjustment: match (live_value, frozen.value) {
            (Some(l), Some(f)) => Some(l - f),
            _ => None,
        },
        adjustments: Some(late),
    })
}

/// The KPI's measures (none for a milestone).
pub(crate) fn measures_of(plan: &Plan, k: KpiId) -> Vec<MeasureId> {
    plan.kpis[k].measures()
}

/// The ledger the figure comes from and the log's tally: two passes over the log,
/// snapshots first (so a level's basis is known before its deltas are counted).
async fn read<'p, S: Store>(
    store: &'p S,
    k: KpiId,
    year: FiscalYear,
    cut: Day,
    rebuild: bool,
) -> Result<(Ledger, Tally<'p>), ExplainError<S::Error>> {
    let plan: &Plan = store.plan();
    let measures = measures_of(plan, k);
    let mut tally = Tally::new(plan, year, cut, &measures);
    let ledger = if rebuild {
        tally.rebuild = Some(Ledger::default());
        None
    } else {
        Some(store.ledger().await.map_err(ExplainError::Store)?)
    };
    let (snapshots, others) = types_of(plan, k, &measures);
    let before = Day(cut.0 + 1).start();
    let scan = LogScan {
        types: &snapshots,
        before,
    };
    let mut undecoded = store
        .scan_log(scan, &mut |e| tally.snapshot(e))
        .await
        .map_err(ExplainError::Store)?;
    let basis_from = ledger.as_ref().or(tally.rebuild.as_ref());
    let bases: Vec<(MeasureId, Option<Basis>)> = measures
        .iter()
        .map(|m| (*m, basis_from.and_then(|l| parts::basis(l, *m, cut))))
        .collect();
    for (m, b) in bases {
        if let Some(slot) = tally.measures.get_mut(&m) {
            slot.1 = b;
        }
    }
    let scan = LogScan {
        types: &others,
        before,
    };
    undecoded += store
        .scan_log(scan, &mut |e| tally.event(e))
        .await
        .map_err(ExplainError::Store)?;
    tally.undecoded = undecoded;
    let ledger = match ledger {
        Some(l) => l,
        None => tally.rebuild.take().unwrap_or_default(),
    };
    Ok((ledger, tally))
}

/// The names of the event types feeding the KPI: (snapshots, everything else).
fn types_of(plan: &Plan, k: KpiId, measures: &[MeasureId]) -> (Vec<String>, Vec<String>) {
    let (mut snapshots, mut others) = (Vec::new(), Vec::new());
    for (t, ty) in plan.schema.types().iter().enumerate() {
        let feeds = plan.routes[t].iter().any(|r| measures.contains(&r.measure));
        let stages = matches!(plan.kpis[k].kind, KpiKind::Milestone { .. })
            && plan.milestone_fields[t].is_some();
        if plan.is_snapshot[t] && feeds {
            snapshots.push(ty.name.clone());
        } else if feeds || stages {
            others.push(ty.name.clone());
        }
    }
    (snapshots, others)
}

/// Puts the explanation together.
fn assemble(
    ctx: &parts::Ctx<'_>,
    fig: Option<Figure>,
    at: Timestamp,
    as_of: Option<Day>,
) -> Explanation {
    let kpi = &ctx.plan.kpis[ctx.k];
    let fig = fig.unwrap_or_else(|| parts::empty_figure(ctx, at));
    let parts = ctx.parts();
    let milestone = ctx.milestone();
    let kind = match kpi.kind {
        KpiKind::Measure(_) => "measure",
        KpiKind::Ratio { .. } => "ratio",
        KpiKind::Milestone { .. } => "milestone",
        KpiKind::Recurring(_) => "recurring",
    };
    Explanation {
        kpi: kpi.id.clone(),
        name_ja: kpi.name_ja.clone(),
        name_en: kpi.name_en.clone(),
        unit: kpi.unit.clone(),
        kind,
        fiscal_year: ctx.year.0,
        at: at.to_string(),
        cutoff_day: ctx.cut.map(|d| d.to_string()),
        as_of: as_of.map(|d| d.to_string()),
        value: fig.value,
        formula: ctx.formula(&fig, &parts, milestone.as_ref()),
        milestone,
        start: ctx.start(&fig),
        pace: ctx.pace(&fig),
        projection: ctx.projection(&fig, &parts),
        parts,
        target: fig.target,
        target_history: target_history(kpi, ctx.year, at),
        elapsed: fig.elapsed,
        attainment: fig.attainment,
        drift: fig.drift,
        on_track: fig.on_track,
        tolerance: fig.tolerance,
        duplicates: "counted once in the value; each part's duplicates seen are the re-sent \
                     events (same key, same body) of its measure that occurred in the year \
                     by the cut-off, an audit counter that replay does not rebuild \
                     (milestone stages are not counted; every duplicate at ingest: \
                     mieruka_events_total{outcome=\"duplicate\"})",
        undecodable_log_rows: ctx.tally.undecoded,
        finality: Finality {
            status: "provisional",
            ja: "速報値",
            closed_at: None,
            closed_by: None,
            note: None,
            final_value: None,
            live_value: fig.value,
            adjustment: None,
            adjustments: None,
        },
    }
}
