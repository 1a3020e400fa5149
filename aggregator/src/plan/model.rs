//! The compiled plan: the checked types every other part of mieruka reads.

use std::collections::BTreeMap;
use std::ops::Index;

use mieruka_ingest::schema::{FieldIx, Schema, TypeId};
use mieruka_ingest::Timestamp;

use super::alert::Alert;
use super::file::Chapter;
use crate::fiscal::{Day, FiscalYear};

/// A measure of a plan: its index in `Plan::measures` (the plan's id order).
///
/// Measures and KPIs are counted apart; the types keep one from standing for the other.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MeasureId(pub usize);

/// A KPI of a plan: its index in `Plan::kpis` (the file's order).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KpiId(pub usize);

// Bridges for code that still holds raw indices (`Plan::measure`, positions found by
// hand): an index converts to an id and compares with one.
impl Index<MeasureId> for Vec<Measure> {
    type Output = Measure;

    fn index(&self, m: MeasureId) -> &Measure {
        &self[m.0]
    }
}

impl Index<KpiId> for Vec<Kpi> {
    type Output = Kpi;

    fn index(&self, k: KpiId) -> &Kpi {
        &self[k.0]
    }
}

/// Whether more is better or less is better.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    /// +1 for up, −1 for down: multiplies differences so that positive is good.
    pub fn sign(self) -> f64 {
        match self {
            Direction::Up => 1.0,
            Direction::Down => -1.0,
        }
    }

    /// `up` or `down`, as in the plan and the `direction` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// How a measure folds its events.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MeasureKind {
    /// Number of events per fiscal year (a flow).
    Events,
    /// Sum of a numeric field per fiscal year (a flow).
    Sum,
    /// Distinct values of a field per fiscal year (exact).
    Distinct,
    /// A stock: moved by deltas, reset by snapshots, carried across years.
    Level,
}

impl MeasureKind {
    /// Whether the measure restarts at zero each fiscal year.
    pub fn is_flow(self) -> bool {
        !matches!(self, MeasureKind::Level)
    }
}

/// A measure: one number per fiscal year (or per instant, for a level).
#[derive(Clone, Debug)]
pub struct Measure {
    /// Its id in the plan.
    pub id: String,
    /// How it folds.
    pub kind: MeasureKind,
    /// Decimal places of the summed field: values are kept in units of 10^-scale.
    pub scale: u32,
    /// What it counts, for people.
    pub description: String,
}

/// What an event of one type does to one measure.
#[derive(Clone, Debug)]
pub struct Route {
    /// The measure it feeds.
    pub measure: MeasureId,
    /// How.
    pub op: Op,
    /// The numeric field to add (None: 1 per event).
    pub field: Option<FieldIx>,
    /// Only events whose enum fields hold one of these values (by index).
    pub filter: Vec<(FieldIx, Vec<u16>)>,
}

/// The operation of a route.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// Add to a flow, or increase a level.
    Add,
    /// Decrease a level.
    Sub,
    /// Reset a level to a snapshot.
    Reset,
    /// Count a distinct value.
    Distinct,
}

/// What a KPI's value is made of.
#[derive(Clone, Debug)]
pub enum KpiKind {
    /// The value of one measure.
    Measure(MeasureId),
    /// numerator / denominator × scale.
    Ratio {
        numerator: MeasureId,
        denominator: MeasureId,
        scale: f64,
    },
    /// Ordered stages; the value is the index of the highest stage reached.
    Milestone { stages: Vec<Stage> },
    /// A duty done every fiscal year: a per-year count whose target is at least 1.
    Recurring(MeasureId),
}

/// A milestone stage.
#[derive(Clone, Debug)]
pub struct Stage {
    /// ASCII id sent by events.
    pub id: String,
    /// The plan's wording.
    pub name_ja: String,
    /// English gloss.
    pub name_en: String,
}

/// A KPI of the plan.
#[derive(Clone, Debug)]
pub struct Kpi {
    /// The id used in the `kpi` label.
    pub id: String,
    /// The plan's name.
    pub name_ja: String,
    /// English name.
    pub name_en: String,
    /// The chapter id (`1`, `2`, `3` in the Ome plan).
    pub chapter: String,
    /// Unit as shown (`%`, `people / FY`, …).
    pub unit: String,
    /// The Japanese counter word (助数詞) written after a count: 人, 件, 枚, 時間, 回,
    /// 社. `None` for percentages and stages, or where the plan gives none.
    pub counter_ja: Option<String>,
    /// Whether up or down is better.
    pub direction: Direction,
    /// How its value is computed.
    pub kind: KpiKind,
    /// The plan's reported figure for the baseline year (a stage index for milestones).
    pub baseline: Option<f64>,
    /// The plan's original target per fiscal year; `None` where the plan gives no
    /// number. Figures use [`Kpi::target_at`], which applies the revisions.
    pub targets: BTreeMap<FiscalYear, Option<f64>>,
    /// Dated revisions of the targets (council decisions), by year, then date.
    pub revisions: Vec<Revision>,
    /// How far behind pace still counts as on pace, in the KPI's unit.
    pub tolerance: f64,
    /// Milestones: the day (JST) by which each year's target stage is due.
    pub due: BTreeMap<FiscalYear, Day>,
    /// Alerting knobs.
    pub alert: Alert,
    /// Which line system feeds it.
    pub source: String,
    /// Definitions to confirm, and where the numbers come from.
    pub note: String,
}

/// A dated revision of one year's target: from `from` on, the year's target is
/// `target`, by the council decision `decision`.
#[derive(Clone, Debug, PartialEq)]
pub struct Revision {
    /// The fiscal year whose target it revises.
    pub year: FiscalYear,
    /// The revised target, in the KPI's unit.
    pub target: f64,
    /// The day (JST) from whose start the revised target is in force; never after the
    /// year's last day.
    pub from: Day,
    /// The decision that revised it (e.g. 令和9年第2回定例会で改定).
    pub decision: String,
}

/// One revision as the report and the pages list it: the target it replaced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RevisionStep<'a> {
    /// The revision.
    pub revision: &'a Revision,
    /// The target in force just before it: the original, or the previous revision's.
    pub previous: Option<f64>,
}

impl Kpi {
    /// The plan's original target for a year, if it gives one (before any revision).
    pub fn target(&self, fy: FiscalYear) -> Option<f64> {
        self.targets.get(&fy).copied().flatten()
    }

    /// The target in force for year `fy` at `now`: the latest revision of that year
    /// whose `from` day has begun (JST), else the original target.
    ///
    /// A revision never dates after its year's last day, so once a year has ended its
    /// target in force is its final one, whatever `now` is.
    pub fn target_at(&self, fy: FiscalYear, now: Timestamp) -> Option<f64> {
        self.revisions_of(fy)
            .rfind(|r| r.from.start() <= now)
            .map(|r| r.target)
            .or_else(|| self.target(fy))
    }

    /// The revisions of year `fy`, oldest first.
    pub fn revisions_of(&self, fy: FiscalYear) -> impl DoubleEndedIterator<Item = &Revision> {
        self.revisions.iter().filter(move |r| r.year == fy)
    }

    /// Every revision with the target it replaced, by year then date.
    pub fn revision_steps(&self) -> Vec<RevisionStep<'_>> {
        let mut out: Vec<RevisionStep<'_>> = Vec::with_capacity(self.revisions.len());
        for r in &self.revisions {
            let previous = match out.last() {
                Some(prev) if prev.revision.year == r.year => Some(prev.revision.target),
                _ => self.target(r.year),
            };
            out.push(RevisionStep {
                revision: r,
                previous,
            });
        }
        out
    }

    /// The measures its value is made of, in formula order (none for a milestone).
    pub fn measures(&self) -> Vec<MeasureId> {
        match &self.kind {
            KpiKind::Measure(m) | KpiKind::Recurring(m) => vec![*m],
            KpiKind::Ratio {
                numerator,
                denominator,
                ..
            } => vec![*numerator, *denominator],
            KpiKind::Milestone { .. } => Vec::new(),
        }
    }

    /// Whether the unit is a percentage (projections are capped at 100).
    pub fn is_percent(&self) -> bool {
        self.unit == "%"
    }

    /// The stages, for a milestone KPI.
    pub fn stages(&self) -> Option<&[Stage]> {
        match &self.kind {
            KpiKind::Milestone { stages } => Some(stages),
            _ => None,
        }
    }
}

/// A loaded, checked plan: what every other part of mieruka reads.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The plan's id.
    pub id: String,
    /// Its Japanese title.
    pub name_ja: String,
    /// Its English title.
    pub name_en: String,
    /// The city.
    pub city: String,
    /// The year of the plan's reported baseline ("現在地").
    pub baseline_year: FiscalYear,
    /// The first year with targets.
    pub first_year: FiscalYear,
    /// The last year with targets.
    pub last_year: FiscalYear,
    /// Chapters, in id order.
    pub chapters: Vec<Chapter>,
    /// The event types, compiled for ingest.
    pub schema: Schema,
    /// Measures, in id order.
    pub measures: Vec<Measure>,
    /// KPIs, in file order.
    pub kpis: Vec<Kpi>,
    /// Per event type (by `TypeId`), what it feeds.
    pub routes: Vec<Vec<Route>>,
    /// Per event type: the (kpi field, stage field) of a milestone event, if it is one.
    pub milestone_fields: Vec<Option<(FieldIx, FieldIx)>>,
    /// Per event type: whether it resets a level (a snapshot, which cannot be voided).
    pub is_snapshot: Vec<bool>,
}

impl Plan {
    /// The id of the measure called `id`.
    pub fn measure(&self, id: &str) -> Option<MeasureId> {
        self.measures.iter().position(|m| m.id == id).map(MeasureId)
    }

    /// The id of the KPI called `id`.
    pub fn kpi_id(&self, id: &str) -> Option<KpiId> {
        self.kpis.iter().position(|k| k.id == id).map(KpiId)
    }

    /// Every KPI with its id, in file order.
    pub fn kpis_with_ids(&self) -> impl Iterator<Item = (KpiId, &Kpi)> {
        self.kpis.iter().enumerate().map(|(i, k)| (KpiId(i), k))
    }

    /// The KPI called `id`.
    pub fn kpi(&self, id: &str) -> Option<&Kpi> {
        self.kpis.iter().find(|k| k.id == id)
    }

    /// Every fiscal year the plan exports: the baseline year to the last year.
    pub fn years(&self) -> impl Iterator<Item = FiscalYear> {
        (self.baseline_year.0..=self.last_year.0).map(FiscalYear)
    }

    /// Whether events of a type can move a level (some route adds to or takes from a
    /// stock): what a late snapshot must find in the log.
    pub fn moves_a_level(&self, ty: TypeId) -> bool {
        self.routes[usize::from(ty.0)]
            .iter()
            .any(|r| r.op != Op::Reset && self.measures[r.measure].kind == MeasureKind::Level)
    }

    /// The event types that feed a measure (through any route).
    pub fn types_feeding(&self, measure: MeasureId) -> Vec<TypeId> {
        (0..self.routes.len())
            .filter(|t| self.routes[*t].iter().any(|r| r.measure == measure))
            .map(|t| TypeId(t as u16))
            .collect()
    }
}
