//! The plan file (TOML): event types, measures and KPIs, and their compiled form.
//!
//! The format is documented in `docs/plan-format.md`. Loading reports every problem it
//! finds at once, each naming the line and the key, so a broken plan is fixed in one pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use mieruka_ingest::schema::{EventTypeDecl, FieldIx, FieldKind, Schema, TypeId};
use serde::Deserialize;
use toml::Spanned;

use crate::fiscal::FiscalYear;

/// The shipped default plan: Ome City's Smart Local Ome Action Plan 2026–2028.
pub const OME_PLAN: &str = include_str!("../../plans/ome.toml");

/// How many fiscal years before its baseline year a plan takes events from: older
/// history than that is a mistake (a year 0001 or a swapped day and month), not data.
pub const HORIZON_YEARS: i32 = 5;

/// The file name under which the shipped plan is reported.
pub const OME_PLAN_NAME: &str = "plans/ome.toml";

// ---------------------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    plan: Header,
    chapters: BTreeMap<String, Chapter>,
    #[serde(default)]
    event_types: BTreeMap<String, EventTypeDecl>,
    #[serde(default)]
    measures: BTreeMap<String, MeasureDecl>,
    #[serde(default)]
    kpi: Vec<KpiDecl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    id: String,
    name_ja: String,
    name_en: String,
    #[serde(default)]
    city: String,
    baseline_year: i32,
    first_year: i32,
    last_year: i32,
}

/// A chapter of the plan (the `chapter` label of each KPI).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chapter {
    /// Japanese title, e.g. 行政サービスを変える.
    pub name_ja: String,
    /// English title.
    pub name_en: String,
    /// Filled in from the table key.
    #[serde(skip)]
    pub id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasureDecl {
    kind: Spanned<String>,
    #[serde(rename = "type")]
    event_type: Option<Spanned<String>>,
    field: Option<Spanned<String>>,
    #[serde(default, rename = "where")]
    filter: BTreeMap<String, Spanned<FilterValues>>,
    #[serde(default)]
    increase: Vec<TermDecl>,
    #[serde(default)]
    decrease: Vec<TermDecl>,
    reset: Option<TermDecl>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermDecl {
    #[serde(rename = "type")]
    event_type: Spanned<String>,
    field: Option<Spanned<String>>,
    #[serde(default, rename = "where")]
    filter: BTreeMap<String, Spanned<FilterValues>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum FilterValues {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiDecl {
    id: Spanned<String>,
    name_ja: String,
    name_en: String,
    chapter: Spanned<String>,
    unit: String,
    direction: Spanned<String>,
    kind: Spanned<String>,
    measure: Option<Spanned<String>>,
    numerator: Option<Spanned<String>>,
    denominator: Option<Spanned<String>>,
    scale: Option<f64>,
    baseline: Option<Spanned<TargetDecl>>,
    #[serde(default)]
    targets: BTreeMap<String, Spanned<TargetDecl>>,
    #[serde(default)]
    tolerance: f64,
    #[serde(default)]
    stages: Vec<StageDecl>,
    #[serde(default)]
    due: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    alert: AlertDecl,
    #[serde(default)]
    source: String,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum TargetDecl {
    Number(f64),
    Text(String),
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct StageDecl {
    id: String,
    name_ja: String,
    #[serde(default)]
    name_en: String,
}

/// Alerting knobs of a KPI (all optional; the defaults are documented in the format).
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct AlertDecl {
    /// How long a KPI must stay behind pace before the alert fires (Prometheus duration).
    #[serde(default = "default_for")]
    pub behind_for: String,
    /// Severity becomes critical past this multiple of the tolerance.
    #[serde(default = "default_critical")]
    pub critical_factor: f64,
}

fn default_for() -> String {
    "7d".to_owned()
}

fn default_critical() -> f64 {
    2.0
}

impl Default for AlertDecl {
    fn default() -> Self {
        Self {
            behind_for: default_for(),
            critical_factor: default_critical(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The compiled plan.

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
    pub measure: usize,
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
    Measure(usize),
    /// numerator / denominator × scale.
    Ratio {
        numerator: usize,
        denominator: usize,
        scale: f64,
    },
    /// Ordered stages; the value is the index of the highest stage reached.
    Milestone { stages: Vec<Stage> },
    /// A duty done every fiscal year: a per-year count whose target is at least 1.
    Recurring(usize),
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
    /// Whether up or down is better.
    pub direction: Direction,
    /// How its value is computed.
    pub kind: KpiKind,
    /// The plan's reported figure for the baseline year (a stage index for milestones).
    pub baseline: Option<f64>,
    /// Target per fiscal year of the plan; `None` where the plan gives no number.
    pub targets: BTreeMap<FiscalYear, Option<f64>>,
    /// How far behind pace still counts as on pace, in the KPI's unit.
    pub tolerance: f64,
    /// Milestones: the date by which each year's target stage is due (JST, `YYYY-MM-DD`).
    pub due: BTreeMap<FiscalYear, String>,
    /// Alerting knobs.
    pub alert: AlertDecl,
    /// Which line system feeds it.
    pub source: String,
    /// Definitions to confirm, and where the numbers come from.
    pub note: String,
}

impl Kpi {
    /// The target for a year, if the plan gives one.
    pub fn target(&self, fy: FiscalYear) -> Option<f64> {
        self.targets.get(&fy).copied().flatten()
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

/// One problem in a plan file, with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key at fault, e.g. `kpi[3].numerator`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}, {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem found in a plan file.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{file}: {} problem(s):\n{}", errors.len(), errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct PlanErrors {
    /// The file name as given.
    pub file: String,
    /// The problems, in file order.
    pub errors: Vec<PlanError>,
}

struct Errors<'a> {
    text: &'a str,
    list: Vec<PlanError>,
}

impl Errors<'_> {
    fn at(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| {
            self.text[..s.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        });
        self.list.push(PlanError {
            line,
            key: key.into(),
            message: message.into(),
        });
    }
}

impl Plan {
    /// The shipped Ome plan.
    pub fn ome() -> Result<Plan, PlanErrors> {
        Plan::parse(OME_PLAN_NAME, OME_PLAN)
    }

    /// Parses and checks a plan file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Plan, PlanErrors> {
        let fail = |list: Vec<PlanError>| PlanErrors {
            file: file.to_owned(),
            errors: list,
        };
        let raw: PlanFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            fail(vec![PlanError {
                line,
                key: "(syntax)".into(),
                message: e.message().to_owned(),
            }])
        })?;
        let mut errs = Errors {
            text,
            list: Vec::new(),
        };
        let plan = compile(raw, &mut errs);
        if errs.list.is_empty() {
            if let Some(plan) = plan {
                return Ok(plan);
            }
        }
        errs.list.sort_by_key(|e| e.line.unwrap_or(0));
        Err(fail(errs.list))
    }

    /// The measure called `id`.
    pub fn measure(&self, id: &str) -> Option<usize> {
        self.measures.iter().position(|m| m.id == id)
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
    pub fn types_feeding(&self, measure: usize) -> Vec<TypeId> {
        (0..self.routes.len())
            .filter(|t| self.routes[*t].iter().any(|r| r.measure == measure))
            .map(|t| TypeId(t as u16))
            .collect()
    }
}

fn compile(raw: PlanFile, errs: &mut Errors<'_>) -> Option<Plan> {
    let h = raw.plan;
    if !(h.baseline_year < h.first_year && h.first_year <= h.last_year) {
        errs.at(
            None,
            "plan",
            "years must satisfy baseline_year < first_year <= last_year",
        );
    }
    let chapters: Vec<Chapter> = raw
        .chapters
        .into_iter()
        .map(|(id, c)| Chapter { id, ..c })
        .collect();

    // Milestone stages must be known to build the ingest schema.
    let stages: HashMap<String, Vec<String>> = raw
        .kpi
        .iter()
        .filter(|k| k.kind.get_ref() == "milestone")
        .map(|k| {
            (
                k.id.get_ref().clone(),
                k.stages.iter().map(|s| s.id.clone()).collect(),
            )
        })
        .collect();
    let mut schema = match Schema::new(&raw.event_types, stages) {
        Ok(s) => s,
        Err(e) => {
            errs.at(None, format!("event_types.\"{}\"", e.event_type), e.message);
            return None;
        }
    };
    // Events older than the start of the fiscal year five years before the baseline
    // are out of the plan's horizon (DESIGN.md, "Inputs have domains"); the config
    // (`horizon_start`) may move it.
    schema.set_window(mieruka_ingest::TimeWindow {
        earliest: FiscalYear(h.baseline_year.saturating_sub(HORIZON_YEARS)).start(),
        ..mieruka_ingest::TimeWindow::default()
    });

    // Measures and the routes from event types to them.
    let mut measures = Vec::new();
    let mut routes: Vec<Vec<Route>> = vec![Vec::new(); schema.types().len()];
    for (ix, (id, m)) in raw.measures.into_iter().enumerate() {
        let key = format!("measures.{id}");
        let kind = match m.kind.get_ref().as_str() {
            "events" => MeasureKind::Events,
            "sum" => MeasureKind::Sum,
            "distinct" => MeasureKind::Distinct,
            "level" => MeasureKind::Level,
            other => {
                errs.at(
                    Some(m.kind.span()),
                    format!("{key}.kind"),
                    format!(
                        "unknown measure kind {other:?}; expected events, sum, distinct or level"
                    ),
                );
                continue;
            }
        };
        let mut scale = None;
        let mut term = |t: &TermDecl, op: Op, errs: &mut Errors<'_>, what: &str| {
            if let Some(route) = compile_route(
                &schema,
                ix,
                op,
                t,
                &format!("{key}.{what}"),
                errs,
                &mut scale,
            ) {
                let ty = schema
                    .type_id(t.event_type.get_ref())
                    .map_or(0, |t| usize::from(t.0));
                routes[ty].push(route);
            }
        };
        match kind {
            MeasureKind::Level => {
                if m.event_type.is_some() || m.field.is_some() || !m.filter.is_empty() {
                    errs.at(
                        Some(m.kind.span()),
                        key.clone(),
                        "a level declares increase, decrease and reset, not type/field/where",
                    );
                }
                for t in &m.increase {
                    term(t, Op::Add, errs, "increase");
                }
                for t in &m.decrease {
                    term(t, Op::Sub, errs, "decrease");
                }
                match &m.reset {
                    Some(t) => term(t, Op::Reset, errs, "reset"),
                    None => errs.at(
                        Some(m.kind.span()),
                        format!("{key}.reset"),
                        "a level needs a reset snapshot type (deltas alone do not make a stock)",
                    ),
                }
            }
            _ => {
                if !m.increase.is_empty() || !m.decrease.is_empty() || m.reset.is_some() {
                    errs.at(
                        Some(m.kind.span()),
                        key.clone(),
                        "only a level has increase/decrease/reset",
                    );
                }
                let Some(event_type) = &m.event_type else {
                    errs.at(
                        Some(m.kind.span()),
                        format!("{key}.type"),
                        "required: the event type it folds",
                    );
                    continue;
                };
                let (op, needs_field) = match kind {
                    MeasureKind::Events => (Op::Add, false),
                    MeasureKind::Sum => (Op::Add, true),
                    _ => (Op::Distinct, true),
                };
                if needs_field != m.field.is_some() {
                    let msg = if needs_field {
                        "required for this kind"
                    } else {
                        "an events measure counts events; drop the field or use kind = \"sum\""
                    };
                    errs.at(Some(m.kind.span()), format!("{key}.field"), msg);
                    continue;
                }
                let t = TermDecl {
                    event_type: event_type.clone(),
                    field: m.field.clone(),
                    filter: m.filter.clone(),
                };
                term(&t, op, errs, "type");
            }
        }
        measures.push(Measure {
            id,
            kind,
            scale: scale.unwrap_or(0),
            description: m.description,
        });
    }
    let measure_ix: HashMap<&str, usize> = measures
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();

    // KPIs.
    let first = FiscalYear(h.first_year);
    let last = FiscalYear(h.last_year);
    let chapter_ids: HashSet<&str> = chapters.iter().map(|c| c.id.as_str()).collect();
    let mut seen_ids: HashMap<String, usize> = HashMap::new();
    let mut kpis = Vec::new();
    for (n, k) in raw.kpi.into_iter().enumerate() {
        let key = |f: &str| format!("kpi[{n}] ({}).{f}", k.id.get_ref());
        if let Some(prev) = seen_ids.insert(k.id.get_ref().clone(), n) {
            errs.at(
                Some(k.id.span()),
                key("id"),
                format!("duplicate KPI id (first used by kpi[{prev}])"),
            );
        }
        if !k
            .id
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            errs.at(
                Some(k.id.span()),
                key("id"),
                "ids are snake_case ASCII (they become metric labels)",
            );
        }
        if !chapter_ids.contains(k.chapter.get_ref().as_str()) {
            errs.at(
                Some(k.chapter.span()),
                key("chapter"),
                format!(
                    "no chapter {:?} is declared under [chapters]",
                    k.chapter.get_ref()
                ),
            );
        }
        let direction = match k.direction.get_ref().as_str() {
            "up" => Direction::Up,
            "down" => Direction::Down,
            other => {
                errs.at(
                    Some(k.direction.span()),
                    key("direction"),
                    format!("{other:?}: expected up or down"),
                );
                Direction::Up
            }
        };
        let measure_ref =
            |f: &str, v: &Option<Spanned<String>>, errs: &mut Errors<'_>| -> Option<usize> {
                match v {
                    None => {
                        errs.at(Some(k.kind.span()), key(f), "required for this kind of KPI");
                        None
                    }
                    Some(s) => match measure_ix.get(s.get_ref().as_str()) {
                        Some(&i) => Some(i),
                        None => {
                            errs.at(
                                Some(s.span()),
                                key(f),
                                format!(
                                    "{:?} is not a declared measure (see [measures])",
                                    s.get_ref()
                                ),
                            );
                            None
                        }
                    },
                }
            };
        let kind = match k.kind.get_ref().as_str() {
            "measure" => measure_ref("measure", &k.measure, errs).map(KpiKind::Measure),
            "recurring" => measure_ref("measure", &k.measure, errs).map(KpiKind::Recurring),
            "ratio" => {
                let num = measure_ref("numerator", &k.numerator, errs);
                let den = measure_ref("denominator", &k.denominator, errs);
                match (num, den) {
                    (Some(numerator), Some(denominator)) => Some(KpiKind::Ratio {
                        numerator,
                        denominator,
                        scale: k.scale.unwrap_or(if k.unit == "%" { 100.0 } else { 1.0 }),
                    }),
                    _ => None,
                }
            }
            "milestone" => {
                if k.stages.is_empty() {
                    errs.at(
                        Some(k.kind.span()),
                        key("stages"),
                        "a milestone needs its ordered stages",
                    );
                }
                let mut ids = HashSet::new();
                for s in &k.stages {
                    if !ids.insert(s.id.as_str()) {
                        errs.at(
                            Some(k.kind.span()),
                            key("stages"),
                            format!("stage {:?} is listed twice", s.id),
                        );
                    }
                }
                Some(KpiKind::Milestone {
                    stages: k
                        .stages
                        .iter()
                        .map(|s| Stage {
                            id: s.id.clone(),
                            name_ja: s.name_ja.clone(),
                            name_en: s.name_en.clone(),
                        })
                        .collect(),
                })
            }
            other => {
                errs.at(
                    Some(k.kind.span()),
                    key("kind"),
                    format!("unknown KPI kind {other:?}; expected measure, ratio, milestone or recurring"),
                );
                None
            }
        };
        let Some(kind) = kind else { continue };
        let stage_names: Option<Vec<String>> = match &kind {
            KpiKind::Milestone { stages } => Some(stages.iter().map(|s| s.id.clone()).collect()),
            _ => None,
        };
        let number = |f: &str, v: &Spanned<TargetDecl>, errs: &mut Errors<'_>| -> Option<f64> {
            match (v.get_ref(), &stage_names) {
                (TargetDecl::Text(t), _) if t == "unset" => None,
                (TargetDecl::Number(x), None) => Some(*x),
                (TargetDecl::Text(t), Some(stages)) => match stages.iter().position(|s| s == t) {
                    Some(i) => Some(i as f64),
                    None => {
                        errs.at(
                            Some(v.span()),
                            key(f),
                            format!(
                                "{t:?} is not a stage of this milestone; stages: {}",
                                stages.join(", ")
                            ),
                        );
                        None
                    }
                },
                (TargetDecl::Number(_), Some(_)) => {
                    errs.at(
                        Some(v.span()),
                        key(f),
                        "a milestone's baseline and targets are stage ids",
                    );
                    None
                }
                (TargetDecl::Text(t), None) => {
                    errs.at(
                        Some(v.span()),
                        key(f),
                        format!("{t:?}: expected a number or \"unset\""),
                    );
                    None
                }
            }
        };
        let baseline = k
            .baseline
            .as_ref()
            .and_then(|b| number("baseline", b, errs));
        let mut targets = BTreeMap::new();
        for (year, v) in &k.targets {
            let fy = match year.parse::<i32>() {
                Ok(y) if (first.0..=last.0).contains(&y) => FiscalYear(y),
                _ => {
                    errs.at(
                        Some(v.span()),
                        key(&format!("targets.{year}")),
                        format!(
                            "the plan runs FY{}–FY{}; {year} is outside it",
                            first.0, last.0
                        ),
                    );
                    continue;
                }
            };
            targets.insert(fy, number(&format!("targets.{year}"), v, errs));
        }
        for y in first.0..=last.0 {
            targets.entry(FiscalYear(y)).or_insert(None);
        }
        if matches!(kind, KpiKind::Recurring(_)) && targets.values().flatten().any(|t| *t < 1.0) {
            errs.at(
                Some(k.kind.span()),
                key("targets"),
                "a recurring duty's target is at least 1 per year",
            );
        }
        let mut due = BTreeMap::new();
        for (year, d) in &k.due {
            let ok_year = year
                .parse::<i32>()
                .ok()
                .filter(|y| (first.0..=last.0).contains(y));
            let ok_date = mieruka_ingest::Timestamp::parse_rfc3339(&format!(
                "{}T00:00:00+09:00",
                d.get_ref()
            ))
            .is_ok();
            match (ok_year, ok_date, &stage_names) {
                (Some(y), true, Some(_)) => {
                    due.insert(FiscalYear(y), d.get_ref().clone());
                }
                (_, _, None) => {
                    errs.at(Some(d.span()), key("due"), "only a milestone has due dates")
                }
                (None, _, _) => errs.at(
                    Some(d.span()),
                    key(&format!("due.{year}")),
                    "not a year of the plan",
                ),
                (_, false, _) => errs.at(
                    Some(d.span()),
                    key(&format!("due.{year}")),
                    "expected a date YYYY-MM-DD",
                ),
            }
        }
        if k.tolerance < 0.0 {
            errs.at(Some(k.id.span()), key("tolerance"), "must not be negative");
        }
        kpis.push(Kpi {
            id: k.id.into_inner(),
            name_ja: k.name_ja,
            name_en: k.name_en,
            chapter: k.chapter.into_inner(),
            unit: k.unit,
            direction,
            kind,
            baseline,
            targets,
            tolerance: k.tolerance,
            due,
            alert: k.alert,
            source: k.source,
            note: k.note,
        });
    }

    // Milestone events: a type with a `stage` field feeds the milestone KPI it names.
    let milestone_fields = schema
        .types()
        .iter()
        .map(|t| {
            t.fields.iter().enumerate().find_map(|(i, f)| match f.kind {
                FieldKind::Stage { of } => Some((of, i)),
                _ => None,
            })
        })
        .collect();
    let is_snapshot = routes
        .iter()
        .map(|rs| rs.iter().any(|r| r.op == Op::Reset))
        .collect();
    Some(Plan {
        id: h.id,
        name_ja: h.name_ja,
        name_en: h.name_en,
        city: h.city,
        baseline_year: FiscalYear(h.baseline_year),
        first_year: first,
        last_year: last,
        chapters,
        schema,
        measures,
        kpis,
        routes,
        milestone_fields,
        is_snapshot,
    })
}

fn compile_route(
    schema: &Schema,
    measure: usize,
    op: Op,
    t: &TermDecl,
    key: &str,
    errs: &mut Errors<'_>,
    scale: &mut Option<u32>,
) -> Option<Route> {
    let Some(type_id) = schema.type_id(t.event_type.get_ref()) else {
        errs.at(
            Some(t.event_type.span()),
            key,
            format!(
                "{:?} is not a declared event type (see [event_types])",
                t.event_type.get_ref()
            ),
        );
        return None;
    };
    let ty = schema.event_type(type_id);
    let field = match &t.field {
        None => None,
        Some(f) => {
            let Some(ix) = ty.field(f.get_ref()) else {
                errs.at(
                    Some(f.span()),
                    key,
                    format!("{} has no field {:?}", ty.name, f.get_ref()),
                );
                return None;
            };
            let this_scale = match (&ty.fields[ix].kind, op) {
                (_, Op::Distinct) => 0,
                (FieldKind::Int { .. }, _) => 0,
                (FieldKind::Decimal { scale, .. }, _) => *scale,
                _ => {
                    errs.at(
                        Some(f.span()),
                        key,
                        format!("{}.{} is not numeric", ty.name, f.get_ref()),
                    );
                    return None;
                }
            };
            if op != Op::Distinct {
                if scale.is_some_and(|s| s != this_scale) {
                    errs.at(
                        Some(f.span()),
                        key,
                        "every term of a measure must have the same decimal scale",
                    );
                }
                *scale = Some(this_scale);
            }
            Some(ix)
        }
    };
    if op == Op::Reset && field.is_none() {
        errs.at(
            Some(t.event_type.span()),
            key,
            "a reset names the snapshot's field",
        );
    }
    let mut filter = Vec::new();
    for (name, vals) in &t.filter {
        let Some(ix) = ty.field(name) else {
            errs.at(
                Some(vals.span()),
                key,
                format!("where: {} has no field {name:?}", ty.name),
            );
            continue;
        };
        let FieldKind::Enum { values } = &ty.fields[ix].kind else {
            errs.at(
                Some(vals.span()),
                key,
                format!("where: {name} is not an enum field"),
            );
            continue;
        };
        let wanted = match vals.get_ref() {
            FilterValues::One(v) => vec![v.clone()],
            FilterValues::Many(v) => v.clone(),
        };
        let mut ixs = Vec::new();
        for w in wanted {
            match values.iter().position(|v| *v == w) {
                Some(i) => ixs.push(i as u16),
                None => errs.at(
                    Some(vals.span()),
                    key,
                    format!(
                        "where: {w:?} is not a value of {name} (one of {})",
                        values.join(", ")
                    ),
                ),
            }
        }
        filter.push((ix, ixs));
    }
    Some(Route {
        measure,
        op,
        field,
        filter,
    })
}
