//! KPI figures (value, target, pace, projection, attainment, drift, on track) computed
//! from the ledger at an instant, exactly as DESIGN.md "KPI figures" defines them.

use mieruka_ingest::Timestamp;

use crate::fiscal::{Day, FiscalYear};
use crate::ledger::Ledger;
use crate::plan::{Direction, Kpi, KpiKind, MeasureKind, Plan};

/// Before this elapsed fraction of a year (its first month), no projection is made: the
/// first weeks are noise.
pub const MIN_FRACTION_FOR_PROJECTION: f64 = 1.0 / 12.0;

/// One KPI in one fiscal year. `None` means absent (not computable, or not applicable),
/// never zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Index of the KPI in the plan.
    pub kpi: usize,
    /// The fiscal year.
    pub year: FiscalYear,
    /// Flows year to date; levels and ratios as of the end of the cut-off day.
    pub value: Option<f64>,
    /// The plan's target for the year.
    pub target: Option<f64>,
    /// The plan's reported baseline-year figure.
    pub baseline: Option<f64>,
    /// B: where the year started (0 for flows).
    pub start: Option<f64>,
    /// Where the KPI should be now to reach the target on a straight line.
    pub pace: Option<f64>,
    /// Where it will end at today's speed.
    pub projection: Option<f64>,
    /// How far from start to target it has come (1 = met).
    pub attainment: Option<f64>,
    /// dir × (value − pace): negative is behind.
    pub drift: Option<f64>,
    /// Whether the projection meets the target within tolerance.
    pub on_track: Option<bool>,
    /// The KPI's tolerance, in its unit.
    pub tolerance: f64,
    /// Elapsed fraction of the year.
    pub elapsed: f64,
    /// The latest `occurred_at` behind the value.
    pub as_of: Option<Timestamp>,
}

/// One measure's contribution to a KPI in a year.
struct Part {
    value: Option<f64>,
    /// The value at the start of the year when known for sure (flows: 0; levels: with a
    /// snapshot at or before the start).
    start: Option<f64>,
    flow: bool,
}

fn part(plan: &Plan, ledger: &Ledger, m: usize, year: FiscalYear, cutoff: Day) -> Part {
    let measure = &plan.measures[m];
    let unit = 10f64.powi(measure.scale as i32);
    match measure.kind {
        MeasureKind::Events | MeasureKind::Sum => Part {
            value: Some(ledger.flow_sum(m, year.first_day(), cutoff) as f64 / unit),
            start: Some(0.0),
            flow: true,
        },
        MeasureKind::Distinct => Part {
            value: Some(ledger.distinct_count(m, year) as f64),
            start: Some(0.0),
            flow: true,
        },
        MeasureKind::Level => Part {
            value: ledger.level_at(m, cutoff).map(|(v, _)| v as f64 / unit),
            start: ledger.level_at_start(m, year).map(|v| v as f64 / unit),
            flow: false,
        },
    }
}

fn ratio(num: Option<f64>, den: Option<f64>, scale: f64) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d * scale),
        _ => None,
    }
}

/// The last day whose events count at `now` for a year, or `None` before the year starts.
fn cutoff(year: FiscalYear, now: Timestamp) -> Option<Day> {
    if now < year.start() {
        None
    } else if now >= year.end() {
        Some(year.last_day())
    } else {
        Some(Day::of(now))
    }
}

/// Every KPI's figures for every exported year (baseline year to the plan's last).
pub fn figures(plan: &Plan, ledger: &Ledger, now: Timestamp) -> Vec<Figure> {
    let mut out = Vec::with_capacity(plan.kpis.len() * 4);
    for (k, kpi) in plan.kpis.iter().enumerate() {
        for year in plan.years() {
            out.push(figure(plan, ledger, k, kpi, year, now));
        }
    }
    out
}

/// The value and start (B) of a KPI in a year, and its projection given f.
struct Core {
    value: Option<f64>,
    start: Option<f64>,
    projection: Option<f64>,
    flow: bool,
}

fn core(
    plan: &Plan,
    ledger: &Ledger,
    k: usize,
    kpi: &Kpi,
    year: FiscalYear,
    cut: Day,
    f: f64,
) -> Core {
    let proj_ok = f >= MIN_FRACTION_FOR_PROJECTION;
    let level_proj = |v: Option<f64>, b: Option<f64>| match (v, b) {
        (Some(v), Some(b)) if proj_ok => Some(b + (v - b) / f),
        _ => None,
    };
    match &kpi.kind {
        KpiKind::Measure(m) | KpiKind::Recurring(m) => {
            let p = part(plan, ledger, *m, year, cut);
            if p.flow {
                let projection = p.value.filter(|_| proj_ok).map(|v| v / f);
                Core {
                    value: p.value,
                    start: Some(0.0),
                    projection,
                    flow: true,
                }
            } else {
                let start = p
                    .start
                    .or_else(|| previous_final(plan, ledger, k, kpi, year))
                    .or(kpi.baseline);
                Core {
                    value: p.value,
                    start,
                    projection: level_proj(p.value, start),
                    flow: false,
                }
            }
        }
        KpiKind::Ratio {
            numerator,
            denominator,
            scale,
        } => {
            let n = part(plan, ledger, *numerator, year, cut);
            let d = part(plan, ledger, *denominator, year, cut);
            let value = ratio(n.value, d.value, *scale);
            let start = ratio(n.start, d.start, *scale)
                .or_else(|| previous_final(plan, ledger, k, kpi, year))
                .or(kpi.baseline);
            let projection = if !proj_ok {
                None
            } else if n.flow && d.flow {
                value
            } else {
                let proj_part = |p: &Part| {
                    if p.flow {
                        p.value.map(|v| v / f)
                    } else {
                        level_proj(p.value, p.start)
                    }
                };
                ratio(proj_part(&n), proj_part(&d), *scale).or_else(|| level_proj(value, start))
            };
            Core {
                value,
                start,
                projection,
                flow: false,
            }
        }
        KpiKind::Milestone { .. } => {
            let stage = |day: Day| ledger.stage_at(k, day).map(f64::from);
            let value = match (stage(cut), kpi.baseline) {
                (Some(s), Some(b)) => Some(s.max(b)),
                (s, b) => s.or(b),
            };
            let start = match (stage(Day(year.first_day().0 - 1)), kpi.baseline) {
                (Some(s), Some(b)) => Some(s.max(b)),
                (s, b) => s.or(b),
            };
            Core {
                value,
                start,
                projection: None,
                flow: false,
            }
        }
    }
}

/// A ratio's or level's final value of the previous year, when it can be computed with
/// the same certainty as a start (every level behind it had a snapshot).
fn previous_final(
    plan: &Plan,
    ledger: &Ledger,
    _k: usize,
    kpi: &Kpi,
    year: FiscalYear,
) -> Option<f64> {
    let prev = FiscalYear(year.0 - 1);
    let last = prev.last_day();
    let sure = |m: usize| -> Option<f64> {
        let p = part(plan, ledger, m, prev, last);
        if p.flow {
            p.value
        } else {
            match ledger.level_at(m, last) {
                Some((_, true)) => p.value,
                _ => None,
            }
        }
    };
    match &kpi.kind {
        KpiKind::Ratio {
            numerator,
            denominator,
            scale,
        } => ratio(sure(*numerator), sure(*denominator), *scale),
        KpiKind::Measure(m) | KpiKind::Recurring(m) => sure(*m),
        KpiKind::Milestone { .. } => None,
    }
}

fn figure(
    plan: &Plan,
    ledger: &Ledger,
    k: usize,
    kpi: &Kpi,
    year: FiscalYear,
    now: Timestamp,
) -> Figure {
    let target = kpi.target(year);
    let mut fig = Figure {
        kpi: k,
        year,
        value: None,
        target,
        baseline: kpi.baseline,
        start: None,
        pace: None,
        projection: None,
        attainment: None,
        drift: None,
        on_track: None,
        tolerance: kpi.tolerance,
        elapsed: year.elapsed_fraction(now),
        as_of: as_of(plan, ledger, k, kpi),
    };
    let Some(cut) = cutoff(year, now) else {
        return fig;
    };
    let f = fig.elapsed;
    let c = core(plan, ledger, k, kpi, year, cut, f);
    let percent_cap = |x: f64| if kpi.is_percent() { x.min(100.0) } else { x };
    fig.value = c.value;
    fig.start = c.start;
    fig.projection = c.projection.map(percent_cap);
    let milestone = matches!(kpi.kind, KpiKind::Milestone { .. });
    let Some(t) = target else { return fig };
    let dir = kpi.direction.sign();
    fig.pace = if milestone {
        None
    } else if c.flow {
        Some(t * f)
    } else {
        c.start.map(|b| b + (t - b) * f)
    };
    if let Some(v) = c.value {
        fig.attainment = if c.flow && kpi.direction == Direction::Down {
            (v > 0.0).then(|| t * f / v)
        } else {
            match c.start {
                Some(b) if (t - b).abs() > f64::EPSILON => Some((v - b) / (t - b)),
                _ => Some(if dir * (v - t) >= 0.0 { 1.0 } else { 0.0 }),
            }
        };
        fig.drift = fig.pace.map(|p| dir * (v - p));
    }
    fig.on_track = fig.projection.map(|p| dir * (p - t) >= -kpi.tolerance);
    fig
}

fn as_of(plan: &Plan, ledger: &Ledger, k: usize, kpi: &Kpi) -> Option<Timestamp> {
    let measures: Vec<usize> = match &kpi.kind {
        KpiKind::Measure(m) | KpiKind::Recurring(m) => vec![*m],
        KpiKind::Ratio {
            numerator,
            denominator,
            ..
        } => vec![*numerator, *denominator],
        KpiKind::Milestone { .. } => vec![plan.measures.len() + k],
    };
    measures
        .iter()
        .filter_map(|m| ledger.as_of.get(m).copied())
        .max()
}
