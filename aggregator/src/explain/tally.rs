//! What the event log says about one KPI's measures: contributions by source, events
//! counted and voided, which source sent each snapshot, and for a distinct measure
//! where each value was first seen. Fed one logged event at a time (memory grows with
//! sources, snapshots and distinct values, never with events).

use std::collections::{BTreeMap, HashMap};

use mieruka_ingest::Timestamp;

use crate::engine::LogEntry;
use crate::fiscal::{Day, FiscalYear};
use crate::ledger::{effects, Effect, Ledger};
use crate::plan::{MeasureId, Plan};

/// The snapshot a level's value starts from: its day and instant (the deltas that count
/// on top of it are those after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Basis {
    pub day: Day,
    pub at: Timestamp,
}

/// One measure's tally.
#[derive(Clone, Debug, Default)]
pub(super) struct MeasureTally {
    /// Amounts (in the measure's units of 10^-scale) by source.
    pub by_source: BTreeMap<String, i128>,
    /// Live events that contributed.
    pub counted: i64,
    /// Voided events that would have contributed.
    pub voided: i64,
    /// Distinct measures: each value's first occurrence (instant, source).
    pub first_seen: HashMap<Box<str>, (Timestamp, String)>,
}

/// The scope of the tally: one KPI's measures in one fiscal year up to a cut-off day.
#[derive(Debug)]
pub(super) struct Tally<'p> {
    plan: &'p Plan,
    year: FiscalYear,
    cut: Day,
    /// The measures explained, with the snapshot each level starts from.
    pub measures: BTreeMap<MeasureId, (MeasureTally, Option<Basis>)>,
    /// Source of each snapshot by (measure, event id).
    pub snapshot_sources: HashMap<(MeasureId, Box<str>), String>,
    /// Events of a milestone KPI's stages that count by the cut-off (live, voided).
    pub stage_events: (i64, i64),
    /// Log rows that no longer decode under the plan.
    pub undecoded: u64,
    /// When rebuilding as of a date: the ledger the scanned events fold into.
    pub rebuild: Option<Ledger>,
}

impl<'p> Tally<'p> {
    /// An empty tally of `measures` in `year` up to `cut`.
    pub fn new(plan: &'p Plan, year: FiscalYear, cut: Day, measures: &[MeasureId]) -> Self {
        Tally {
            plan,
            year,
            cut,
            measures: measures
                .iter()
                .map(|m| (*m, (MeasureTally::default(), None)))
                .collect(),
            snapshot_sources: HashMap::new(),
            stage_events: (0, 0),
            undecoded: 0,
            rebuild: None,
        }
    }

    /// Pass one: a snapshot. Its source is remembered; when rebuilding it is folded
    /// first (no delta is folded yet, so none is "since" it).
    pub fn snapshot(&mut self, entry: &LogEntry) {
        let effs = effects(self.plan, &entry.event);
        for eff in &effs {
            if let Effect::Reset { measure, id, .. } = eff {
                if self.measures.contains_key(measure) {
                    self.snapshot_sources
                        .insert((*measure, id.clone()), entry.event.source.to_string());
                }
            }
        }
        self.fold(entry, &effs);
    }

    /// Pass two: any other event, counted where it falls in the scope.
    pub fn event(&mut self, entry: &LogEntry) {
        let effs = effects(self.plan, &entry.event);
        let source = entry.event.source.as_str();
        let mut seen: Vec<MeasureId> = Vec::new();
        for eff in &effs {
            let (measure, amount) = match eff {
                Effect::Stage { day, .. } if *day <= self.cut => {
                    let slot = if entry.voided {
                        &mut self.stage_events.1
                    } else {
                        &mut self.stage_events.0
                    };
                    *slot += 1;
                    continue;
                }
                Effect::Flow {
                    measure,
                    day,
                    amount,
                } if self.year.first_day() <= *day && *day <= self.cut => (*measure, *amount),
                Effect::Delta {
                    measure,
                    at,
                    amount,
                } if self.after_basis(*measure, *at) => (*measure, *amount),
                Effect::Distinct {
                    measure,
                    year,
                    value,
                } if *year == self.year => {
                    if let Some((t, _)) = self.measures.get_mut(measure).filter(|_| !entry.voided) {
                        let at = entry.event.occurred_at;
                        let first = t
                            .first_seen
                            .entry(value.clone())
                            .or_insert_with(|| (at, source.to_owned()));
                        if (at, source) < (first.0, first.1.as_str()) {
                            *first = (at, source.to_owned());
                        }
                    }
                    (*measure, 0)
                }
                _ => continue,
            };
            let Some((t, _)) = self.measures.get_mut(&measure) else {
                continue;
            };
            if seen.contains(&measure) {
                // An event counts once per measure, whatever its routes.
            } else if entry.voided {
                t.voided += 1;
            } else {
                t.counted += 1;
            }
            seen.push(measure);
            if !entry.voided && amount != 0 {
                *t.by_source.entry(source.to_owned()).or_default() += amount;
            }
        }
        self.fold(entry, &effs);
    }

    /// Whether a level's delta at `at` counts on top of the snapshot the value starts
    /// from (at one instant the snapshot applies first, so a delta of that instant does).
    fn after_basis(&self, measure: MeasureId, at: Timestamp) -> bool {
        let day = Day::of(at);
        if day > self.cut {
            return false;
        }
        match self.measures.get(&measure) {
            Some((_, Some(b))) => day > b.day || (day == b.day && at >= b.at),
            Some((_, None)) => true,
            None => false,
        }
    }

    /// Folds a live event into the ledger being rebuilt, if any.
    fn fold(&mut self, entry: &LogEntry, effs: &[Effect]) {
        let Some(ledger) = self.rebuild.as_mut() else {
            return;
        };
        ledger.touch(self.plan, effs, entry.event.occurred_at);
        if entry.voided {
            return;
        }
        for eff in effs {
            // Snapshots come first (pass one), so no delta is folded before any of
            // them: the deltas since a snapshot are added by `apply` itself afterwards.
            ledger.apply(eff, 1, &mut |_, _, _| 0);
        }
    }
}
