//! Folding validated events into the ledger, effectively once.
//!
//! [`fold`] holds the rules (duplicates, conflicting duplicates, voids before or after
//! their original, snapshots that cannot be voided but are superseded by newer ones); it reads and writes the event log
//! through the small [`EventLog`] trait, so the in-memory engine of the tests and the
//! store's per-batch overlay run the same code.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use foldhash::fast::RandomState;

use mieruka_ingest::{Event, Reason, Rejection, Status, Timestamp};

use crate::figures::{figures, Figure};
use crate::fiscal::Day;
use crate::ledger::{effects_into, Effect, Ledger};
use crate::plan::{MeasureId, Plan};

/// An accepted event as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Fingerprint of its canonical body: tells a duplicate from a conflict.
    pub fingerprint: i64,
    /// The event, shared with the batch that brought it (a log entry is not a copy).
    pub event: Arc<Event>,
    /// Whether a void has retracted it (its contribution is then out of the ledger).
    pub voided: bool,
}

/// The event log as the fold sees it.
pub trait EventLog {
    /// The logged event with this key.
    fn get(&self, source: &str, id: &str) -> Option<&LogEntry>;
    /// Whether a void for this key arrived before the event itself.
    fn has_pending_void(&self, source: &str, id: &str) -> bool;
    /// Logs an accepted event.
    fn insert(&mut self, entry: LogEntry);
    /// Logs an accepted event, saying whether it moves a level (so `events_on` must
    /// find it); the default ignores the hint.
    fn insert_with(&mut self, entry: LogEntry, moves_a_level: bool) {
        let _ = moves_a_level;
        self.insert(entry);
    }
    /// Marks a logged event as voided.
    fn set_voided(&mut self, source: &str, id: &str);
    /// Remembers a void whose original has not arrived.
    fn add_pending_void(&mut self, source: &str, target: &str);
    /// Live (not voided) events that occurred on `day`, at least those that move a
    /// level: the fold filters them again.
    fn events_on(&self, day: Day) -> Vec<&Event>;
}

/// Sum of the live deltas of a level on a day at or after an instant, from the log.
pub fn deltas_since<L: EventLog + ?Sized>(
    plan: &Plan,
    log: &L,
    measure: MeasureId,
    day: Day,
    at: Timestamp,
) -> i128 {
    let mut effs = Vec::new();
    let mut sum = 0;
    // Every effect of an event is at its `occurred_at`: earlier events are skipped
    // before their effects are worked out.
    for e in log
        .events_on(day)
        .into_iter()
        .filter(|e| e.occurred_at >= at)
    {
        effs.clear();
        effects_into(plan, e, &mut effs);
        for eff in &effs {
            if let Effect::Delta {
                measure: m, amount, ..
            } = eff
            {
                if *m == measure {
                    sum += amount;
                }
            }
        }
    }
    sum
}

/// Folds one validated event into the ledger and the log; reports its fate.
pub fn fold<L: EventLog + ?Sized>(
    plan: &Plan,
    ledger: &mut Ledger,
    log: &mut L,
    event: impl Into<Arc<Event>>,
) -> Status {
    fold_tracked(plan, ledger, log, event.into(), &mut Vec::new()).0
}

/// [`fold`], also reporting the effects it moved into `touched` (an accepted event's
/// own, or the original's for a void) and handing a rejected event back (it is not
/// logged; the caller keeps it with the rejection), or a duplicate (the caller counts
/// it for the measures its body feeds).
///
/// The effects are appended to `touched` (and worked from there), so a caller that
/// reuses one buffer allocates nothing per event for them.
pub fn fold_tracked<L: EventLog + ?Sized>(
    plan: &Plan,
    ledger: &mut Ledger,
    log: &mut L,
    event: Arc<Event>,
    touched: &mut Vec<Effect>,
) -> (Status, Option<Arc<Event>>) {
    let schema = &plan.schema;
    let fingerprint = event.fingerprint(schema);
    if let Some(seen) = log.get(&event.source, &event.id) {
        if seen.fingerprint == fingerprint {
            return (Status::Duplicate, Some(event));
        }
        let message = format!(
            "this source sent the same event_id earlier with a different body; the first \
             one stands ({})",
            how_to_correct(plan, &seen.event)
        );
        let r = Rejection::at(Reason::ConflictingDuplicate, "event_id", message)
            .with_event_id(Some(&event.id));
        return (Status::Rejected(r), Some(event));
    }
    if schema.event_type(event.type_id).voids {
        return fold_void(plan, ledger, log, event, fingerprint, touched);
    }
    let voided = log.has_pending_void(&event.source, &event.id) && !not_voidable(plan, &event);
    let start = touched.len();
    effects_into(plan, &event, touched);
    let effs = &touched[start..];
    ledger.touch(plan, effs, event.occurred_at);
    if !voided {
        for eff in effs {
            ledger.apply(eff, 1, &mut |m, d, t| deltas_since(plan, log, m, d, t));
        }
    }
    let moves_a_level = effs.iter().any(|e| matches!(e, Effect::Delta { .. }));
    log.insert_with(
        LogEntry {
            fingerprint,
            event,
            voided,
        },
        moves_a_level,
    );
    (Status::Accepted, None)
}

/// A void: retracts its original's contribution if the original is logged and
/// voidable, else remembers it for when the original arrives; then logs the void.
fn fold_void<L: EventLog + ?Sized>(
    plan: &Plan,
    ledger: &mut Ledger,
    log: &mut L,
    event: Arc<Event>,
    fingerprint: i64,
    touched: &mut Vec<Effect>,
) -> (Status, Option<Arc<Event>>) {
    let target = event.voids.clone().unwrap_or_default();
    if target == event.id {
        return (
            reject_void(&event, "an event cannot void itself"),
            Some(event),
        );
    }
    match log.get(&event.source, &target) {
        Some(original) if not_voidable(plan, &original.event) => {
            let message = format!(
                "a {} cannot be voided ({})",
                if is_snapshot(plan, &original.event) {
                    "snapshot"
                } else {
                    "void"
                },
                how_to_correct(plan, &original.event)
            );
            return (reject_void(&event, &message), Some(event));
        }
        Some(original) if !original.voided => {
            let start = touched.len();
            effects_into(plan, &original.event, touched);
            for eff in &touched[start..] {
                ledger.apply(eff, -1, &mut |m, d, t| deltas_since(plan, log, m, d, t));
            }
            log.set_voided(&event.source, &target);
        }
        Some(_) => {}
        None => log.add_pending_void(&event.source, &target),
    }
    log.insert_with(
        LogEntry {
            fingerprint,
            event,
            voided: false,
        },
        false,
    );
    (Status::Accepted, None)
}

/// Snapshots and voids cannot be voided.
fn not_voidable(plan: &Plan, e: &Event) -> bool {
    is_snapshot(plan, e) || plan.schema.event_type(e.type_id).voids
}

/// Whether `e` resets a level (a snapshot).
fn is_snapshot(plan: &Plan, e: &Event) -> bool {
    plan.is_snapshot[usize::from(e.type_id.0)]
}

/// The one way to correct a logged event, as every refusal that concerns it says
/// (docs/bad-input.md, "Correcting what was sent"): a snapshot is superseded by a newer
/// snapshot; a void is final; any other event is voided and sent again.
fn how_to_correct(plan: &Plan, logged: &Event) -> &'static str {
    if is_snapshot(plan, logged) {
        "a snapshot is corrected by another snapshot under a new event_id: a later \
         occurred_at supersedes it, and at the same occurred_at the greater event_id \
         stands, e.g. the same id with the suffix -r1"
    } else if plan.schema.event_type(logged.type_id).voids {
        "a void is final; to count the event again, send it under a new event_id"
    } else {
        "to correct it, send an event.voided of this event_id, then the corrected event \
         under a new event_id"
    }
}

fn reject_void(event: &Event, message: &str) -> Status {
    Status::Rejected(
        Rejection::at(Reason::VoidNotAllowed, "voids", message).with_event_id(Some(&event.id)),
    )
}

/// The key of a logged event: its source and its `event_id`.
///
/// The log's map is keyed by [`Logged`] (which borrows both from the shared event) and
/// looked up by `(&str, &str)`: both borrow as `dyn LogKey`, which hashes and compares
/// alike for either, so a lookup builds no key and copies no string.
trait LogKey {
    fn source(&self) -> &str;
    fn id(&self) -> &str;
}

impl LogKey for (&str, &str) {
    fn source(&self) -> &str {
        self.0
    }
    fn id(&self) -> &str {
        self.1
    }
}

// Only the id is hashed (one short string per lookup, not two): the few sources that
// share an id are told apart by `eq`.
impl Hash for dyn LogKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl PartialEq for dyn LogKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id() && self.source() == other.source()
    }
}

impl Eq for dyn LogKey + '_ {}

/// A logged event as the key of the log's map: its source and `event_id`, borrowed
/// from the shared event rather than copied (a batch logs tens of thousands).
#[derive(Clone, Debug)]
struct Logged(Arc<Event>);

impl LogKey for Logged {
    fn source(&self) -> &str {
        &self.0.source
    }
    fn id(&self) -> &str {
        &self.0.id
    }
}

impl<'a> Borrow<dyn LogKey + 'a> for Logged {
    fn borrow(&self) -> &(dyn LogKey + 'a) {
        self
    }
}

// Hashes and compares as the `dyn LogKey` it borrows, as `Borrow` requires.
impl Hash for Logged {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn LogKey).hash(state);
    }
}

impl PartialEq for Logged {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn LogKey) == (other as &dyn LogKey)
    }
}

impl Eq for Logged {}

/// An event log held in memory: for tests, benchmarks and a batch's view of the store.
///
/// One map keyed (source, id), hashed once per lookup.
#[derive(Default, Debug, Clone)]
pub struct MemoryLog {
    // foldhash: seeded per process (no hash flooding from crafted ids) and several
    // times faster than SipHash on short keys, which these lookups are per event.
    entries: HashMap<Logged, LogEntry, RandomState>,
    pending: HashMap<String, HashSet<String, RandomState>, RandomState>,
    /// Events with level deltas, by day: what a late snapshot needs.
    by_day: HashMap<Day, Vec<Arc<Event>>, RandomState>,
}

impl MemoryLog {
    /// A log sized for about `events` events, so it does not rehash while they arrive.
    pub fn with_capacity(events: usize) -> Self {
        MemoryLog {
            entries: HashMap::with_capacity_and_hasher(events, RandomState::default()),
            ..MemoryLog::default()
        }
    }

    /// Logs an entry, indexing it by day when it moves a level.
    pub fn insert_indexed(&mut self, entry: LogEntry, moves_a_level: bool) {
        if moves_a_level {
            self.by_day
                .entry(Day::of(entry.event.occurred_at))
                .or_default()
                .push(entry.event.clone());
        }
        self.entries.insert(Logged(entry.event.clone()), entry);
    }

    fn entry_mut(&mut self, source: &str, id: &str) -> Option<&mut LogEntry> {
        self.entries.get_mut(&(source, id) as &dyn LogKey)
    }
}

impl EventLog for MemoryLog {
    fn get(&self, source: &str, id: &str) -> Option<&LogEntry> {
        self.entries.get(&(source, id) as &dyn LogKey)
    }

    fn has_pending_void(&self, source: &str, id: &str) -> bool {
        !self.pending.is_empty() && self.pending.get(source).is_some_and(|ids| ids.contains(id))
    }

    fn insert(&mut self, entry: LogEntry) {
        // Without the plan at hand every event is indexed; the fold calls
        // `insert_indexed` through `EventLog::insert_with` when it knows better.
        self.insert_indexed(entry, true);
    }

    fn insert_with(&mut self, entry: LogEntry, moves_a_level: bool) {
        self.insert_indexed(entry, moves_a_level);
    }

    fn set_voided(&mut self, source: &str, id: &str) {
        if let Some(e) = self.entry_mut(source, id) {
            e.voided = true;
        }
    }

    fn add_pending_void(&mut self, source: &str, target: &str) {
        self.pending
            .entry(source.to_owned())
            .or_default()
            .insert(target.to_owned());
    }

    fn events_on(&self, day: Day) -> Vec<&Event> {
        self.by_day
            .get(&day)
            .into_iter()
            .flatten()
            .filter_map(|e| self.get(&e.source, &e.id))
            .filter(|e| !e.voided)
            .map(|e| &*e.event)
            .collect()
    }
}

/// The event log as one store batch sees it: the rows it needs, fetched up front, plus
/// what the batch adds — which the store then writes in its transaction.
#[derive(Default, Clone)]
pub struct BatchLog {
    /// Fetched rows and the batch's own entries.
    pub log: MemoryLog,
    /// Events the batch logged (to insert), in the order it logged them.
    pub new_entries: Vec<Arc<Event>>,
    /// Keys of entries the batch voided (to update).
    pub voided_now: Vec<(String, String)>,
    /// Voids the batch left pending (to insert).
    pub new_pending: Vec<(String, String)>,
}

impl EventLog for BatchLog {
    fn get(&self, source: &str, id: &str) -> Option<&LogEntry> {
        self.log.get(source, id)
    }
    fn has_pending_void(&self, source: &str, id: &str) -> bool {
        self.log.has_pending_void(source, id)
    }
    fn insert(&mut self, entry: LogEntry) {
        self.insert_with(entry, true);
    }
    fn insert_with(&mut self, entry: LogEntry, moves_a_level: bool) {
        self.new_entries.push(entry.event.clone());
        self.log.insert_with(entry, moves_a_level);
    }
    fn set_voided(&mut self, source: &str, id: &str) {
        self.voided_now.push((source.to_owned(), id.to_owned()));
        self.log.set_voided(source, id);
    }
    fn add_pending_void(&mut self, source: &str, target: &str) {
        self.new_pending
            .push((source.to_owned(), target.to_owned()));
        self.log.add_pending_void(source, target);
    }
    fn events_on(&self, day: Day) -> Vec<&Event> {
        self.log.events_on(day)
    }
}

impl BatchLog {
    /// The log keys a batch must look up: each decoded event's own key and the key its
    /// void targets, sorted and without repeats.
    pub fn keys_needed<I: std::borrow::Borrow<mieruka_ingest::Item>>(
        items: &[I],
    ) -> Vec<(&str, &str)> {
        let mut keys = std::collections::BTreeSet::new();
        for e in items
            .iter()
            .filter_map(|i| i.borrow().outcome.as_ref().ok())
        {
            keys.insert((e.source.as_str(), e.id.as_str()));
            if let Some(v) = &e.voids {
                keys.insert((e.source.as_str(), v.as_str()));
            }
        }
        keys.into_iter().collect()
    }

    /// Adds a row fetched from the store, unless the batch already holds that key.
    pub fn add_fetched(&mut self, entry: LogEntry) {
        if self.log.get(&entry.event.source, &entry.event.id).is_none() {
            self.log.insert(entry);
        }
    }

    /// The entries the batch logged, to insert into the store's event log.
    pub fn entries_to_write(&self) -> Vec<&LogEntry> {
        self.new_entries
            .iter()
            .filter_map(|e| self.log.get(&e.source, &e.id))
            .collect()
    }

    /// The logged events the batch voided, to mark in the store's log: sorted, without
    /// repeats, and without those the batch logged itself (it writes them voided).
    pub fn to_mark_voided(&self) -> Vec<(&str, &str)> {
        if self.voided_now.is_empty() {
            // Most batches void nothing: no set of their keys is built.
            return Vec::new();
        }
        let new: HashSet<(&str, &str)> = self
            .new_entries
            .iter()
            .map(|e| (e.source.as_str(), e.id.as_str()))
            .collect();
        let marked: std::collections::BTreeSet<(&str, &str)> = self
            .voided_now
            .iter()
            .map(|(s, i)| (s.as_str(), i.as_str()))
            .filter(|k| !new.contains(k))
            .collect();
        marked.into_iter().collect()
    }

    /// Whether two folds of the same batch logged the same events, voided the same and
    /// left the same voids pending.
    pub fn logged_alike(&self, other: &BatchLog) -> bool {
        self.new_entries.len() == other.new_entries.len()
            && self
                .new_entries
                .iter()
                .zip(&other.new_entries)
                .all(|(a, b)| Arc::ptr_eq(a, b) || (a.source == b.source && a.id == b.id))
            && self.voided_now == other.voided_now
            && self.new_pending == other.new_pending
    }
}

impl LogEntry {
    /// A logged row read back: its body is canonical JSON written by a store, so it
    /// decodes unless the plan changed under it (then it no longer means anything to
    /// the plan, and `None` leaves it out).
    pub fn from_stored(
        plan: &Plan,
        body: &str,
        fingerprint: i64,
        voided: bool,
    ) -> Option<LogEntry> {
        mieruka_ingest::decode_logged(&plan.schema, body.as_bytes())
            .ok()
            .map(|event| LogEntry {
                fingerprint,
                event: Arc::new(event),
                voided,
            })
    }
}

/// The pure KPI engine over an in-memory log: events and a clock in, figures out.
pub struct Engine<'p> {
    plan: &'p Plan,
    ledger: Ledger,
    log: MemoryLog,
    /// The effects of the event being folded: one buffer for every event.
    scratch: Vec<Effect>,
}

impl<'p> Engine<'p> {
    /// An engine with nothing folded yet.
    pub fn new(plan: &'p Plan) -> Self {
        Self {
            plan,
            ledger: Ledger::default(),
            log: MemoryLog::default(),
            scratch: Vec::new(),
        }
    }

    /// An engine whose log is sized for about `events` events (a replay of a known
    /// history), so it rehashes less while folding.
    pub fn with_capacity(plan: &'p Plan, events: usize) -> Self {
        Self {
            plan,
            ledger: Ledger::default(),
            log: MemoryLog::with_capacity(events),
            scratch: Vec::new(),
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, event: impl Into<Arc<Event>>) -> Status {
        self.scratch.clear();
        fold_tracked(
            self.plan,
            &mut self.ledger,
            &mut self.log,
            event.into(),
            &mut self.scratch,
        )
        .0
    }

    /// Folds many events.
    pub fn apply_all(&mut self, events: impl IntoIterator<Item = Event>) -> Vec<Status> {
        events.into_iter().map(|e| self.apply(e)).collect()
    }

    /// The aggregates so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Every KPI's figures for every exported year, at `now`.
    pub fn figures(&self, now: Timestamp) -> Vec<Figure> {
        figures(self.plan, &self.ledger, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mieruka_ingest::decode;

    fn entry(plan: &Plan, source: &str, id: &str) -> LogEntry {
        let line = format!(
            r#"{{"event_id":"{id}","source":"{source}","type":"paper.purchased","occurred_at":"2026-05-01T10:00:00+09:00","data":{{"size":"A4","sheets":10}}}}"#
        );
        let event = decode(&plan.schema, line.as_bytes()).unwrap_or_else(|r| panic!("{r:?}"));
        LogEntry {
            fingerprint: event.fingerprint(&plan.schema),
            event: Arc::new(event),
            voided: false,
        }
    }

    /// The log's map hashes the id alone: one id in two sources is still two events,
    /// each found, voided and told apart by its own source.
    #[test]
    fn one_event_id_in_two_sources_is_two_log_entries() {
        let plan = Plan::ome().unwrap_or_else(|e| panic!("{e}"));
        let mut log = MemoryLog::with_capacity(4);
        log.insert(entry(&plan, "procurement", "e-1"));
        assert!(log.get("procurement", "e-1").is_some());
        assert!(log.get("docmgmt", "e-1").is_none());
        log.insert(entry(&plan, "docmgmt", "e-1"));
        log.set_voided("docmgmt", "e-1");
        let of = |s: &str| {
            log.get(s, "e-1")
                .map(|e| (e.event.source.clone(), e.voided))
        };
        assert_eq!(of("procurement"), Some(("procurement".into(), false)));
        assert_eq!(of("docmgmt"), Some(("docmgmt".into(), true)));
        assert!(log.get("procurement", "e-2").is_none());
    }
}
