//! Replay: the whole event log folded again, with the current plan, into a fresh ledger,
//! and how it differs from the live one.
//!
//! The stores read their log in two passes of one snapshot and hand each row to
//! [`Replay::push`]. Every logged row is an event accepted once (duplicates and refused
//! voids were never logged), and its `voided` flag is final, so a replay needs no log
//! lookups: an event whose flag is set is folded as one that arrived after its void (it
//! stands behind its measures' as-of time and counts for nothing).
//!
//! - The rows of the types that move a level under the current plan ([`level_types`])
//!   come first, ordered by day: the one thing the fold reads back is a snapshot's day,
//!   the live deltas of that day folded so far, which the replay keeps for the current
//!   day only.
//! - Every other row comes after, in whatever order the store reads fastest: flows,
//!   distinct values, milestone stages and as-of times are sums, counts and maxima, the
//!   same in any order.
//!
//! Distinct values are not kept in the replayed ledger: each push moves them into a
//! batch ([`Replay::take_distinct`]) that the store adds to a scratch table of the
//! replay's transaction, compares with its live `distinct_values` in SQL and, with
//! `--apply`, copies in; the ledger keeps only the sets' sizes
//! (`Ledger::distinct_counts`). Memory therefore holds the ledger without distinct
//! values, one day of level deltas and one batch, whatever the length of the log and
//! however many distinct values it holds. The engine is order-independent, so this
//! equals the live ledger built in arrival order.
//!
//! A logged event that no longer decodes under the current plan (its type or a field
//! was removed) is counted and a few examples kept, masked; it stays in the log.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use mieruka_ingest::{Event, Status, Timestamp};

use crate::close::ClosedYear;
use crate::engine::{fold, EventLog, LogEntry};
use crate::figures::{figures, Figure};
use crate::fiscal::{Day, FiscalYear};
use crate::ledger::Ledger;
use crate::plan::{KpiKind, MeasureId, MeasureKind, Op, Plan};

/// How many undecodable rows a replay shows.
pub const EXAMPLES: usize = 5;

/// How many distinct (measure, year, value) keys a replay holds before the store takes
/// them ([`Replay::distinct_due`]).
pub const DISTINCT_BATCH: usize = 20_000;

/// Distinct values counted by a replay and not yet taken by the store: per (measure,
/// fiscal year, value), how many live events carry it.
pub type DistinctBatch = BTreeMap<(MeasureId, FiscalYear, Box<str>), i64>;

/// The event types that move a level under `plan` (an increase, a decrease or a
/// snapshot): the rows a replay must read in day order. Every other type folds the same
/// in any order.
pub fn level_types(plan: &Plan) -> Vec<&str> {
    plan.schema
        .types()
        .iter()
        .zip(&plan.routes)
        .filter(|(_, routes)| {
            routes.iter().any(|r| {
                matches!(r.op, Op::Sub | Op::Reset)
                    || plan.measures[r.measure].kind == MeasureKind::Level
            })
        })
        .map(|(t, _)| t.name.as_str())
        .collect()
}

/// The log as a replay's fold sees it: nothing is ever logged before (each row is a
/// first arrival), the current row's `voided` flag stands for a void that came first,
/// and the day being replayed keeps its live level-moving events.
#[derive(Default)]
struct DayLog {
    day: Option<Day>,
    events: Vec<Arc<Event>>,
    voided: bool,
}

impl EventLog for DayLog {
    fn get(&self, _: &str, _: &str) -> Option<&LogEntry> {
        None
    }
    fn has_pending_void(&self, _: &str, _: &str) -> bool {
        self.voided
    }
    fn insert(&mut self, entry: LogEntry) {
        self.insert_with(entry, true);
    }
    fn insert_with(&mut self, entry: LogEntry, moves_a_level: bool) {
        if moves_a_level && !entry.voided {
            self.events.push(entry.event);
        }
    }
    fn set_voided(&mut self, _: &str, _: &str) {}
    fn add_pending_void(&mut self, _: &str, _: &str) {}
    fn events_on(&self, day: Day) -> Vec<&Event> {
        if self.day == Some(day) {
            self.events.iter().map(|e| &**e).collect()
        } else {
            Vec::new()
        }
    }
}

/// A logged event that the current plan no longer accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Its source and event id.
    pub source: String,
    pub event_id: String,
    /// Why it does not decode.
    pub message: String,
    /// Its logged body, personal numbers masked.
    pub body: String,
}

/// A replay in progress, then its result.
pub struct Replay<'p> {
    plan: &'p Plan,
    /// The rebuilt aggregates.
    pub ledger: Ledger,
    log: DayLog,
    /// Rows folded.
    pub events: u64,
    /// Rows that no longer decode.
    pub invalid: u64,
    /// The first [`EXAMPLES`] of them.
    pub examples: Vec<Invalid>,
    /// Distinct values counted since the store last took them.
    distinct: DistinctBatch,
}

impl<'p> Replay<'p> {
    /// A replay with nothing folded yet.
    pub fn new(plan: &'p Plan) -> Self {
        Replay {
            plan,
            ledger: Ledger::default(),
            log: DayLog::default(),
            events: 0,
            invalid: 0,
            examples: Vec::new(),
            distinct: DistinctBatch::new(),
        }
    }

    /// Whether the store should take the distinct values counted so far.
    pub fn distinct_due(&self) -> bool {
        self.distinct.len() >= DISTINCT_BATCH
    }

    /// The distinct values counted since the last call, for the store's scratch table
    /// (which adds up the counts of a key taken twice).
    pub fn take_distinct(&mut self) -> DistinctBatch {
        std::mem::take(&mut self.distinct)
    }

    /// Moves the distinct values not taken back into the ledger, as the live ledger
    /// keeps them: for a caller that folds the log in memory, without a scratch table
    /// (its memory then grows with the distinct values).
    pub fn keep_distinct_in_ledger(&mut self) {
        for ((m, y, value), n) in self.take_distinct() {
            if n > 0 {
                self.ledger
                    .distinct
                    .entry((m, y))
                    .or_default()
                    .insert(value, n);
            }
        }
    }

    /// Folds one logged row (rows must come in order of `day`). `source` and `event_id`
    /// name it if it does not decode.
    pub fn push(&mut self, day: i32, source: &str, event_id: &str, body: &str, voided: bool) {
        if self.log.day != Some(Day(day)) {
            self.log.day = Some(Day(day));
            self.log.events.clear();
        }
        let event = match mieruka_ingest::decode_logged(&self.plan.schema, body.as_bytes()) {
            Ok(e) => e,
            Err(r) => {
                self.invalid += 1;
                if self.examples.len() < EXAMPLES {
                    self.examples.push(Invalid {
                        source: source.to_owned(),
                        event_id: mieruka_ingest::guard::mask(event_id),
                        message: mieruka_ingest::guard::mask(&r.message),
                        body: mieruka_ingest::mask_raw(body.as_bytes()),
                    });
                }
                return;
            }
        };
        self.log.voided = voided;
        let status = fold(self.plan, &mut self.ledger, &mut self.log, event);
        debug_assert_eq!(status, Status::Accepted, "a logged row is a first arrival");
        self.events += 1;
        if !self.ledger.distinct.is_empty() {
            for ((m, y), set) in std::mem::take(&mut self.ledger.distinct) {
                for (value, n) in set {
                    *self.distinct.entry((m, y, value)).or_default() += n;
                }
            }
        }
    }
}

/// One figure that differs between the live aggregates and the replayed ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// What differs: `KPI <id>` or `measure <id>` (with the KPIs built on it).
    pub what: String,
    /// The fiscal year.
    pub year: FiscalYear,
    /// The live figure (`None`: absent).
    pub live: Option<f64>,
    /// The replayed figure.
    pub replayed: Option<f64>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<f64>| v.map_or_else(|| "absent".to_owned(), |v| format!("{v}"));
        write!(
            f,
            "{} FY{}: live {}, replayed {}",
            self.what,
            self.year.0,
            show(self.live),
            show(self.replayed)
        )
    }
}

/// A measure's figure in a year (flows over the year, a level at its end, a distinct
/// count), as the figures read it.
fn measure_value(plan: &Plan, ledger: &Ledger, m: MeasureId, year: FiscalYear) -> Option<f64> {
    let unit = 10f64.powi(plan.measures[m].scale as i32);
    match plan.measures[m].kind {
        MeasureKind::Events | MeasureKind::Sum => {
            Some(ledger.flow_sum(m, year.first_day(), year.last_day()) as f64 / unit)
        }
        MeasureKind::Distinct => Some(ledger.distinct_count(m, year) as f64),
        MeasureKind::Level => ledger
            .level_at(m, year.last_day())
            .map(|(v, _)| v as f64 / unit),
    }
}

/// The KPIs whose value reads measure `m`.
fn kpis_of(plan: &Plan, m: MeasureId) -> Vec<&str> {
    plan.kpis
        .iter()
        .filter(|k| match &k.kind {
            KpiKind::Measure(x) | KpiKind::Recurring(x) => *x == m,
            KpiKind::Ratio {
                numerator,
                denominator,
                ..
            } => *numerator == m || *denominator == m,
            KpiKind::Milestone { .. } => false,
        })
        .map(|k| k.id.as_str())
        .collect()
}

/// Every difference between `live` and `replayed`: each KPI figure (value and start) at
/// `now`, then each measure per year. Aggregate rows that differ without moving any of
/// these (an as-of time, a level's day behind a later snapshot, a distinct value
/// replaced by another: `distinct_rows_differ`, as the store compared them) are reported
/// as one last difference, so that no difference goes unseen.
pub fn differences(
    plan: &Plan,
    live: &Ledger,
    replayed: &Ledger,
    now: Timestamp,
    distinct_rows_differ: bool,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let (a, b) = (figures(plan, live, now), figures(plan, replayed, now));
    for (x, y) in a.iter().zip(&b) {
        let key = |f: &Figure| (f.value, f.start);
        if key(x) != key(y) {
            out.push(Difference {
                what: format!("KPI {}", plan.kpis[x.kpi].id),
                year: x.year,
                live: x.value,
                replayed: y.value,
            });
        }
    }
    for (m, measure) in plan.measures.iter().enumerate() {
        for year in plan.years() {
            let (l, r) = (
                measure_value(plan, live, MeasureId(m), year),
                measure_value(plan, replayed, MeasureId(m), year),
            );
            if l != r {
                let kpis = kpis_of(plan, MeasureId(m));
                out.push(Difference {
                    what: format!("measure {} (KPI {})", measure.id, kpis.join(", ")),
                    year,
                    live: l,
                    replayed: r,
                });
            }
        }
    }
    if out.is_empty() && (live != replayed || distinct_rows_differ) {
        out.push(Difference {
            what: "aggregate rows (no figure moves: as-of times or superseded days)".into(),
            year: plan.last_year,
            live: None,
            replayed: None,
        });
    }
    out
}

/// Where a closed year's final figures differ from what the events received by its
/// close fold to (`rederived`): a close is reproducible from the log, since an event's
/// arrival time against the close instant says which side of it the event is on. Under
/// a plan whose measures changed since the close, differences are expected: the final
/// figures keep the definition they were closed under.
pub fn close_mismatches(plan: &Plan, closed: &ClosedYear, rederived: &Ledger) -> Vec<Difference> {
    let again = figures(plan, rederived, closed.year.end());
    closed
        .finals
        .iter()
        .filter_map(|f| {
            let r = again
                .iter()
                .find(|g| g.kpi == f.kpi && g.year == closed.year)?;
            (r.value != f.value).then(|| Difference {
                what: format!(
                    "final KPI {} (closed at {})",
                    plan.kpis[f.kpi].id, closed.closed_at
                ),
                year: closed.year,
                live: f.value,
                replayed: r.value,
            })
        })
        .collect()
}

/// What a replay found: the rows it folded, those that no longer decode, and the
/// differences from the live aggregates.
pub struct Outcome {
    /// Rows folded.
    pub events: u64,
    /// Rows that no longer decode, with a few examples.
    pub invalid: u64,
    pub examples: Vec<Invalid>,
    /// How the live figures differ from the replayed ones.
    pub differences: Vec<Difference>,
    /// Whether the rebuilt aggregates replaced the live ones.
    pub applied: bool,
}

impl Outcome {
    /// The outcome of `replay` against `live`; `distinct_rows_differ` says whether the
    /// store found the replay's distinct values different from its live ones (the
    /// ledgers hold only the sets' sizes).
    pub fn of(
        replay: &Replay<'_>,
        live: &Ledger,
        now: Timestamp,
        applied: bool,
        distinct_rows_differ: bool,
    ) -> Self {
        Outcome {
            events: replay.events,
            invalid: replay.invalid,
            examples: replay.examples.clone(),
            differences: differences(replay.plan, live, &replay.ledger, now, distinct_rows_differ),
            applied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(id: u32, ty: &str, data: &str) -> String {
        format!(
            r#"{{"event_id":"e{id}","source":"hr","type":"{ty}","occurred_at":"2026-05-0{}T09:00:00+09:00","data":{data}}}"#,
            1 + id % 9
        )
    }

    #[test]
    fn level_types_are_those_that_move_a_level_and_no_other() {
        let plan = Plan::ome().unwrap();
        let types = level_types(&plan);
        for t in [
            "mynumber_card.issued",
            "mynumber_card.surrendered",
            "mynumber_card.holders_snapshot",
            "staff.headcount_snapshot",
            "opendata.withdrawn",
        ] {
            assert!(types.contains(&t), "{t} moves a level: {types:?}");
        }
        for t in ["certificate.issued", "telework.day", "event.voided"] {
            assert!(!types.contains(&t), "{t} moves no level: {types:?}");
        }
    }

    #[test]
    fn distinct_values_leave_the_ledger_for_the_store_with_their_counts() {
        let plan = Plan::ome().unwrap();
        let mut replay = Replay::new(&plan);
        for (id, staff) in [(1, "a"), (2, "b"), (3, "a")] {
            let body = logged(id, "telework.day", &format!(r#"{{"staff":"{staff}"}}"#));
            replay.push(20_000, "hr", &format!("e{id}"), &body, false);
        }
        let voided = logged(4, "telework.day", r#"{"staff":"c"}"#);
        replay.push(20_000, "hr", "e4", &voided, true);
        assert_eq!(replay.events, 4);
        assert!(
            replay.ledger.distinct.is_empty(),
            "{:?}",
            replay.ledger.distinct
        );
        assert!(!replay.distinct_due());
        let m = plan.measure("telework_staff").unwrap();
        let taken: Vec<(String, i64)> = replay
            .take_distinct()
            .into_iter()
            .map(|((mm, y, v), n)| {
                assert_eq!((mm, y), (m, FiscalYear(2026)));
                (v.into_string(), n)
            })
            .collect();
        assert_eq!(taken, [("a".to_owned(), 2), ("b".to_owned(), 1)]);
        assert!(replay.take_distinct().is_empty());
        let body = logged(5, "telework.day", r#"{"staff":"d"}"#);
        replay.push(20_000, "hr", "e5", &body, false);
        replay.keep_distinct_in_ledger();
        assert_eq!(replay.ledger.distinct_count(m, FiscalYear(2026)), 1);
    }
}
