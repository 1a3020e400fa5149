//! The pieces of an explanation: each measure's part (value, snapshot and deltas since,
//! months, sources, events), a milestone's stage, and the formulas of the value, start,
//! pace and projection with their numbers.

use std::collections::BTreeMap;

use serde::Serialize;

use super::tally::{Basis, Tally};
use crate::figures::{Figure, MIN_FRACTION_FOR_PROJECTION};
use crate::fiscal::{Day, FiscalYear};
use crate::ledger::Ledger;
use crate::plan::{KpiId, KpiKind, MeasureId, MeasureKind, Plan};

/// An amount by month (`YYYY-MM`) or by source.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Share {
    pub key: String,
    pub value: f64,
}

/// The snapshot a level's value starts from.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotUsed {
    pub event_id: String,
    /// The source that sent it (absent when the log no longer has it).
    pub source: Option<String>,
    pub occurred_at: String,
    pub value: f64,
}

/// One measure of the KPI: the value, or its numerator or denominator.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// `value`, `numerator` or `denominator`.
    pub role: &'static str,
    pub measure: String,
    pub description: String,
    /// `events`, `sum`, `distinct` or `level`.
    pub kind: &'static str,
    pub value: Option<f64>,
    /// A level: the snapshot it starts from (absent: deltas alone, no stock known).
    pub snapshot: Option<SnapshotUsed>,
    /// A level: the sum of the deltas since that snapshot.
    pub deltas_since: Option<f64>,
    /// A flow: the year's amounts by month; a distinct measure: new values by month;
    /// a level: the deltas since the snapshot by month. They add up to the value (less
    /// the snapshot, for a level).
    pub by_month: Vec<Share>,
    /// The same by source (a distinct value belongs to the source that sent it first).
    pub by_source: Vec<Share>,
    /// Live events counted in the value.
    pub events_counted: i64,
    /// Voided events that would otherwise count (their voids took them back).
    pub events_voided: i64,
    /// Duplicates (the same key and body re-sent) of events feeding this measure that
    /// occurred in the year by the cut-off: counted once, in `events_counted`, and not
    /// again. An audit counter of the store, which a replay does not rebuild.
    pub duplicates_seen: i64,
}

/// A milestone's highest stage reached.
#[derive(Clone, Debug, Serialize)]
pub struct MilestonePart {
    /// 0-based index of the highest stage reached by the cut-off, if any.
    pub stage: Option<u16>,
    pub stage_id: Option<String>,
    pub stage_ja: Option<String>,
    /// The plan's baseline stage, which the value never falls below.
    pub baseline: Option<f64>,
    pub events_counted: i64,
    pub events_voided: i64,
}

/// B, the start of the year, and where it comes from.
#[derive(Clone, Debug, Serialize)]
pub struct Start {
    pub value: Option<f64>,
    /// `zero` (a flow), `year_start` (the value at the start of the year, snapshots
    /// behind it), `previous_year` (last year's final value) or `plan_baseline`.
    pub from: &'static str,
}

/// Pace or projection: its value, formula with numbers, and inputs.
#[derive(Clone, Debug, Serialize)]
pub struct Derived {
    pub value: Option<f64>,
    pub formula: String,
    pub inputs: BTreeMap<&'static str, Option<f64>>,
}

/// Everything the parts are computed from.
pub(super) struct Ctx<'a> {
    pub plan: &'a Plan,
    pub ledger: &'a Ledger,
    pub tally: &'a Tally<'a>,
    /// Duplicates seen per measure, over the year by the cut-off.
    pub duplicates: &'a BTreeMap<MeasureId, i64>,
    pub k: KpiId,
    pub year: FiscalYear,
    /// The last day that counts; `None` before the year starts.
    pub cut: Option<Day>,
}

/// A number as people read it: up to 4 decimals, no trailing zeros.
pub fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "absent".into(), num)
}

/// `YYYY-MM` of a day.
fn month(d: Day) -> String {
    let (y, m, _) = d.civil();
    format!("{y:04}-{m:02}")
}

/// The latest snapshot of a level by the end of `cut`.
pub(super) fn basis(ledger: &Ledger, m: MeasureId, cut: Day) -> Option<Basis> {
    ledger
        .levels
        .range((m, Day(i32::MIN))..=(m, cut))
        .rev()
        .find_map(|((_, day), d)| {
            d.snapshot.as_ref().map(|s| Basis {
                day: *day,
                at: s.at,
            })
        })
}

fn shares(map: BTreeMap<String, i128>, unit: f64) -> Vec<Share> {
    map.into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(key, v)| Share {
            key,
            value: v as f64 / unit,
        })
        .collect()
}

impl Ctx<'_> {
    /// The KPI's parts, in formula order.
    pub fn parts(&self) -> Vec<Part> {
        let Some(cut) = self.cut else {
            return Vec::new();
        };
        let roles: Vec<(&'static str, MeasureId)> = match &self.plan.kpis[self.k].kind {
            KpiKind::Measure(m) | KpiKind::Recurring(m) => vec![("value", *m)],
            KpiKind::Ratio {
                numerator,
                denominator,
                ..
            } => vec![("numerator", *numerator), ("denominator", *denominator)],
            KpiKind::Milestone { .. } => Vec::new(),
        };
        roles
            .into_iter()
            .map(|(role, m)| self.part(role, m, cut))
            .collect()
    }

    fn part(&self, role: &'static str, m: MeasureId, cut: Day) -> Part {
        let measure = &self.plan.measures[m];
        let unit = 10f64.powi(measure.scale as i32);
        let tally = self.tally.measures.get(&m).map(|(t, _)| t);
        let by_source = tally.map(|t| t.by_source.clone()).unwrap_or_default();
        let mut part = Part {
            role,
            measure: measure.id.clone(),
            description: measure.description.clone(),
            kind: "events",
            value: None,
            snapshot: None,
            deltas_since: None,
            by_month: Vec::new(),
            by_source: shares(by_source, unit),
            events_counted: tally.map_or(0, |t| t.counted),
            events_voided: tally.map_or(0, |t| t.voided),
            duplicates_seen: self.duplicates.get(&m).copied().unwrap_or(0),
        };
        match measure.kind {
            MeasureKind::Events | MeasureKind::Sum => {
                part.kind = if measure.kind == MeasureKind::Sum {
                    "sum"
                } else {
                    "events"
                };
                let days = self
                    .ledger
                    .flows
                    .range((m, self.year.first_day())..=(m, cut));
                let mut months = BTreeMap::<String, i128>::new();
                for ((_, d), v) in days {
                    *months.entry(month(*d)).or_default() += v;
                }
                part.value =
                    Some(self.ledger.flow_sum(m, self.year.first_day(), cut) as f64 / unit);
                part.by_month = shares(months, unit);
            }
            MeasureKind::Distinct => self.distinct_part(&mut part, m),
            MeasureKind::Level => self.level_part(&mut part, m, cut, unit),
        }
        part
    }

    /// A distinct measure: each value counted in the month and source it was first seen.
    fn distinct_part(&self, part: &mut Part, m: MeasureId) {
        part.kind = "distinct";
        part.value = Some(self.ledger.distinct_count(m, self.year) as f64);
        let (mut months, mut sources) = (BTreeMap::new(), BTreeMap::new());
        if let Some((t, _)) = self.tally.measures.get(&m) {
            for (at, source) in t.first_seen.values() {
                *months.entry(month(Day::of(*at))).or_default() += 1;
                *sources.entry(source.clone()).or_default() += 1;
            }
        }
        part.by_month = shares(months, 1.0);
        part.by_source = shares(sources, 1.0);
    }

    /// A level: the snapshot it starts from, plus the deltas since, by month.
    fn level_part(&self, part: &mut Part, m: MeasureId, cut: Day, unit: f64) {
        part.kind = "level";
        part.value = self.ledger.level_at(m, cut).map(|(v, _)| v as f64 / unit);
        let start = basis(self.ledger, m, cut);
        let mut months = BTreeMap::<String, i128>::new();
        let from = start.map_or(Day(i32::MIN), |b| Day(b.day.0 + 1));
        if from <= cut {
            for ((_, d), day) in self.ledger.levels.range((m, from)..=(m, cut)) {
                *months.entry(month(*d)).or_default() += day.delta;
            }
        }
        if let Some(b) = start {
            if let Some(s) = self
                .ledger
                .levels
                .get(&(m, b.day))
                .and_then(|d| d.snapshot.as_ref())
            {
                *months.entry(month(b.day)).or_default() += s.after;
                part.snapshot = Some(SnapshotUsed {
                    event_id: s.id.to_string(),
                    source: self.tally.snapshot_sources.get(&(m, s.id.clone())).cloned(),
                    occurred_at: s.at.to_string(),
                    value: s.value as f64 / unit,
                });
            }
        }
        let since: i128 = months.values().sum();
        part.deltas_since = Some(since as f64 / unit);
        part.by_month = shares(months, unit);
    }

    /// A milestone's stage reached by the cut-off.
    pub fn milestone(&self) -> Option<MilestonePart> {
        let kpi = &self.plan.kpis[self.k];
        let stages = kpi.stages()?;
        let stage = self.cut.and_then(|c| self.ledger.stage_at(self.k, c));
        let named = stage.and_then(|s| stages.get(usize::from(s)));
        Some(MilestonePart {
            stage,
            stage_id: named.map(|s| s.id.clone()),
            stage_ja: named.map(|s| s.name_ja.clone()),
            baseline: kpi.baseline,
            events_counted: self.tally.stage_events.0,
            events_voided: self.tally.stage_events.1,
        })
    }

    /// The value's formula with its numbers.
    pub fn formula(&self, fig: &Figure, parts: &[Part], ms: Option<&MilestonePart>) -> String {
        if self.cut.is_none() {
            return format!("no value: FY{} has not started", self.year.0);
        }
        let v = opt(fig.value);
        if let Some(ms) = ms {
            return format!(
                "value = max(stage reached {}, baseline {}) = {v}",
                ms.stage.map_or_else(|| "none".into(), |s| s.to_string()),
                opt(ms.baseline)
            );
        }
        match (&self.plan.kpis[self.k].kind, parts) {
            (KpiKind::Ratio { scale, .. }, [n, d]) => format!(
                "value = {} / {} × {} = {} / {} × {} = {v}",
                n.measure,
                d.measure,
                num(*scale),
                opt(n.value),
                opt(d.value),
                num(*scale)
            ),
            (_, [p]) => part_formula(p, self.year),
            _ => format!("value = {v}"),
        }
    }

    /// B and where it comes from.
    pub fn start(&self, fig: &Figure) -> Start {
        let kpi = &self.plan.kpis[self.k];
        let from = match &kpi.kind {
            KpiKind::Measure(m) | KpiKind::Recurring(m)
                if self.plan.measures[*m].kind.is_flow() =>
            {
                "zero"
            }
            _ if fig.start.is_none() => "none",
            _ if self.sure_start() => "year_start",
            _ if fig.start == kpi.baseline => "plan_baseline",
            _ => "previous_year",
        };
        Start {
            value: fig.start,
            from,
        }
    }

    /// Whether every level of the KPI had a snapshot by the start of the year.
    fn sure_start(&self) -> bool {
        let levels: Vec<MeasureId> = super::measures_of(self.plan, self.k)
            .into_iter()
            .filter(|m| self.plan.measures[*m].kind == MeasureKind::Level)
            .collect();
        !levels.is_empty()
            && levels
                .iter()
                .all(|m| self.ledger.level_at_start(*m, self.year).is_some())
    }

    /// Pace with its inputs.
    pub fn pace(&self, fig: &Figure) -> Derived {
        let flow = self.is_flow();
        let (t, f, b) = (fig.target, fig.elapsed, fig.start);
        let milestone = matches!(self.plan.kpis[self.k].kind, KpiKind::Milestone { .. });
        let formula = match (fig.pace, t) {
            _ if milestone => "absent: a milestone has no pace".into(),
            (_, None) => "absent: the plan sets no target for the year".into(),
            (None, _) => "absent: no start (B) is known".into(),
            (Some(p), Some(t)) if flow => format!("T × f = {} × {} = {}", num(t), num(f), num(p)),
            (Some(p), Some(t)) => format!(
                "B + (T − B) × f = {b} + ({t} − {b}) × {f} = {p}",
                b = opt(b),
                t = num(t),
                f = num(f),
                p = num(p)
            ),
        };
        Derived {
            value: fig.pace,
            formula,
            inputs: [("T", t), ("f", Some(f)), ("B", if flow { None } else { b })].into(),
        }
    }

    /// Projection with its inputs.
    pub fn projection(&self, fig: &Figure, parts: &[Part]) -> Derived {
        let (v, f, b) = (fig.value, fig.elapsed, fig.start);
        let ratio = matches!(self.plan.kpis[self.k].kind, KpiKind::Ratio { .. });
        let levels = parts.iter().any(|p| p.kind == "level");
        let milestone = matches!(self.plan.kpis[self.k].kind, KpiKind::Milestone { .. });
        let formula = match fig.projection {
            _ if milestone => "absent: a milestone is not projected".into(),
            _ if f < MIN_FRACTION_FOR_PROJECTION => {
                "absent: less than a month of the year has passed (f < 1/12)".into()
            }
            None => "absent: no value (or no start) to project from".into(),
            Some(p) if ratio && !levels => format!("the year-to-date ratio = {}", num(p)),
            Some(p) if ratio => format!(
                "projected numerator / projected denominator (flows v/f, levels B + (v − B)/f) = {}",
                num(p)
            ),
            Some(p) if self.is_flow() => format!("v / f = {} / {} = {}", opt(v), num(f), num(p)),
            Some(p) => format!(
                "B + (v − B) / f = {b} + ({v} − {b}) / {f} = {p}",
                b = opt(b),
                v = opt(v),
                f = num(f),
                p = num(p)
            ),
        };
        let capped = self.plan.kpis[self.k].is_percent() && fig.projection == Some(100.0);
        Derived {
            value: fig.projection,
            formula: if capped {
                format!("{formula} (a percentage is capped at 100)")
            } else {
                formula
            },
            inputs: [("v", v), ("f", Some(f)), ("B", b)].into(),
        }
    }

    fn is_flow(&self) -> bool {
        match &self.plan.kpis[self.k].kind {
            KpiKind::Measure(m) | KpiKind::Recurring(m) => self.plan.measures[*m].kind.is_flow(),
            _ => false,
        }
    }
}

/// A one-measure KPI's formula.
fn part_formula(p: &Part, year: FiscalYear) -> String {
    let v = opt(p.value);
    match (p.kind, &p.snapshot) {
        ("level", Some(s)) => format!(
            "value = snapshot {} ({} at {}) + deltas since {} = {v}",
            num(s.value),
            s.event_id,
            s.occurred_at,
            opt(p.deltas_since)
        ),
        ("level", None) => format!(
            "value = sum of the deltas ({} events; no snapshot yet, so no stock is known) = {v}",
            p.events_counted
        ),
        ("distinct", _) => format!(
            "value = distinct values of {} in FY{} = {v}",
            p.measure, year.0
        ),
        _ => format!(
            "value = {} of {} over FY{} to date ({} events) = {v}",
            if p.kind == "sum" { "sum" } else { "count" },
            p.measure,
            year.0,
            p.events_counted
        ),
    }
}

/// A figure with nothing in it, for a year the figures do not cover.
pub(super) fn empty_figure(ctx: &Ctx<'_>, at: mieruka_ingest::Timestamp) -> Figure {
    let kpi = &ctx.plan.kpis[ctx.k];
    Figure {
        kpi: ctx.k,
        year: ctx.year,
        value: None,
        target: kpi.target_at(ctx.year, at),
        baseline: kpi.baseline,
        start: None,
        pace: None,
        projection: None,
        attainment: None,
        drift: None,
        on_track: None,
        tolerance: kpi.tolerance,
        elapsed: ctx.year.elapsed_fraction(at),
        as_of: None,
        finality: crate::close::Finality::Provisional,
    }
}
