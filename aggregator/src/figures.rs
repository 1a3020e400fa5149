//! KPI figures (value, target, pace, projection, attainment, drift, on track) computed
//! from the ledger at an instant, exactly as docs/architecture.md "KPI figures" defines them.

use mieruka_ingest::Timestamp;

use crate::close::Finality;
use crate::fiscal::{Day, FiscalYear};
use crate::ledger::{AsOf, Ledger};
use crate::plan::{Direction, Kpi, KpiId, KpiKind, MeasureId, MeasureKind, Plan};

/// Before this elapsed fraction of a year (its first month), no projection is made: the
/// first weeks are noise.
pub const MIN_FRACTION_FOR_PROJECTION: f64 = 1.0 / 12.0;

/// One KPI in one fiscal year. `None` means absent (not computable, or not applicable),
/// never zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The KPI.
    pub kpi: KpiId,
    /// The fiscal year.
    pub year: FiscalYear,
    /// Flows year to date; levels and ratios as of the end of the cut-off day.
    pub value: Option<f64>,
    /// The plan's target for the year in force at the figure's instant (the latest
    /// revision whose day has begun, else the original).
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
    /// Provisional, or final since the year's close (see [`crate::close`]).
    pub finality: Finality,
}

/// One measure's contribution to a KPI in a year.
struct Part {
    value: Option<f64>,
    /// The value at the start of the year when known for sure (flows: 0; levels: with a
    /// snapshot at or before the start).
    start: Option<f64>,
    flow: bool,
}

fn part(plan: &Plan, ledger: &Ledger, m: MeasureId, year: FiscalYear, cutoff: Day) -> Part {
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
    for (k, kpi) in plan.kpis_with_ids() {
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

/// What `core` needs about one KPI in one year.
struct At<'a> {
    plan: &'a Plan,
    ledger: &'a Ledger,
    kpi: &'a Kpi,
    year: FiscalYear,
    cut: Day,
    /// Elapsed fraction of the year.
    f: f64,
}

impl At<'_> {
    /// Whether enough of the year has passed to project.
    fn proj_ok(&self) -> bool {
        self.f >= MIN_FRACTION_FOR_PROJECTION
    }

    /// A level's projection from its value and start.
    fn level_proj(&self, v: Option<f64>, b: Option<f64>) -> Option<f64> {
        match (v, b) {
            (Some(v), Some(b)) if self.proj_ok() => Some(b + (v - b) / self.f),
            _ => None,
        }
    }

    /// Where the year started, when the ledger cannot tell for sure.
    fn start_else(&self, start: Option<f64>) -> Option<f64> {
        start
            .or_else(|| previous_final(self.plan, self.ledger, self.kpi, self.year))
            .or(self.kpi.baseline)
    }
}

fn core(at: &At<'_>, k: KpiId) -> Core {
    match &at.kpi.kind {
        KpiKind::Measure(m) | KpiKind::Recurring(m) => core_measure(at, *m),
        KpiKind::Ratio {
            numerator,
            denominator,
            scale,
        } => core_ratio(at, *numerator, *denominator, *scale),
        KpiKind::Milestone { .. } => core_milestone(at, k),
    }
}

/// A KPI that is one measure: a flow projects linearly, a level from its start.
fn core_measure(at: &At<'_>, m: MeasureId) -> Core {
    let p = part(at.plan, at.ledger, m, at.year, at.cut);
    if p.flow {
        let projection = p.value.filter(|_| at.proj_ok()).map(|v| v / at.f);
        Core {
            value: p.value,
            start: Some(0.0),
            projection,
            flow: true,
        }
    } else {
        let start = at.start_else(p.start);
        Core {
            value: p.value,
            start,
            projection: at.level_proj(p.value, start),
            flow: false,
        }
    }
}

/// A ratio: of flows it projects to itself; otherwise each part projects on its own.
fn core_ratio(at: &At<'_>, numerator: MeasureId, denominator: MeasureId, scale: f64) -> Core {
    let n = part(at.plan, at.ledger, numerator, at.year, at.cut);
    let d = part(at.plan, at.ledger, denominator, at.year, at.cut);
    let value = ratio(n.value, d.value, scale);
    let start = at.start_else(ratio(n.start, d.start, scale));
    let projection = if !at.proj_ok() {
        None
    } else if n.flow && d.flow {
        value
    } else {
        let proj_part = |p: &Part| {
            if p.flow {
                p.value.map(|v| v / at.f)
            } else {
                at.level_proj(p.value, p.start)
            }
        };
        ratio(proj_part(&n), proj_part(&d), scale).or_else(|| at.level_proj(value, start))
    };
    Core {
        value,
        start,
        projection,
        flow: false,
    }
}

/// A milestone: the highest stage reached (or the baseline's), never projected.
fn core_milestone(at: &At<'_>, k: KpiId) -> Core {
    let stage = |day: Day| at.ledger.stage_at(k, day).map(f64::from);
    let value = match (stage(at.cut), at.kpi.baseline) {
        (Some(s), Some(b)) => Some(s.max(b)),
        (s, b) => s.or(b),
    };
    let start = match (stage(Day(at.year.first_day().0 - 1)), at.kpi.baseline) {
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

/// A ratio's or level's final value of the previous year, when it can be computed with
/// the same certainty as a start (every level behind it had a snapshot).
fn previous_final(plan: &Plan, ledger: &Ledger, kpi: &Kpi, year: FiscalYear) -> Option<f64> {
    let prev = FiscalYear(year.0 - 1);
    let last = prev.last_day();
    let sure = |m: MeasureId| -> Option<f64> {
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
    k: KpiId,
    kpi: &Kpi,
    year: FiscalYear,
    now: Timestamp,
) -> Figure {
    // The target in force at `now`: a revision changes pace, attainment, drift and
    // on-track from its day on (docs/plan-format.md, "Target revisions").
    let target = kpi.target_at(year, now);
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
        as_of: as_of(ledger, k, kpi),
        finality: Finality::Provisional,
    };
    let Some(cut) = cutoff(year, now) else {
        return fig;
    };
    let f = fig.elapsed;
    let at = At {
        plan,
        ledger,
        kpi,
        year,
        cut,
        f,
    };
    let c = core(&at, k);
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

fn as_of(ledger: &Ledger, k: KpiId, kpi: &Kpi) -> Option<Timestamp> {
    let behind: Vec<AsOf> = match &kpi.kind {
        KpiKind::Measure(m) | KpiKind::Recurring(m) => vec![AsOf::Measure(*m)],
        KpiKind::Ratio {
            numerator,
            denominator,
            ..
        } => vec![AsOf::Measure(*numerator), AsOf::Measure(*denominator)],
        KpiKind::Milestone { .. } => vec![AsOf::Kpi(k)],
    };
    behind
        .iter()
        .filter_map(|m| ledger.as_of.get(m).copied())
        .max()
}
