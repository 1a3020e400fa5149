//! The ledger: the aggregates every KPI figure is computed from, and how one event's
//! contribution moves them.
//!
//! Its size grows with measures × days × dimensions, never with the number of events:
//! flows are summed per day, levels keep per day the sum of their deltas and the day's
//! latest snapshot, distinct counts keep their values per fiscal year.
//!
//! Amounts are i128: one event's value is an i64 (whatever bounds a plan declares), and
//! a sum of fewer than 2^64 of them cannot overflow an i128, so no accepted history can
//! falsify a figure by wrapping or panicking. Counts of events stay i64.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::{Bound, RangeBounds};

use mieruka_ingest::{Event, Timestamp, Value};

use crate::fiscal::{Day, FiscalYear};
use crate::plan::{KpiId, MeasureId, MeasureKind, Op, Plan};

/// What one event contributes to the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Adds to a flow on a day.
    Flow {
        measure: MeasureId,
        day: Day,
        amount: i128,
    },
    /// Counts a value of a distinct measure in a fiscal year.
    Distinct {
        measure: MeasureId,
        year: FiscalYear,
        value: Box<str>,
    },
    /// Moves a level at an instant.
    Delta {
        measure: MeasureId,
        at: Timestamp,
        /// Already negated for a decrease: i128, as −i64::MIN is no i64.
        amount: i128,
    },
    /// Resets a level at an instant.
    Reset {
        measure: MeasureId,
        at: Timestamp,
        id: Box<str>,
        value: i128,
    },
    /// Reaches a milestone stage.
    Stage { kpi: KpiId, day: Day, stage: u16 },
}

/// The latest snapshot of a level on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// When it was taken.
    pub at: Timestamp,
    /// Its event id: breaks ties between snapshots of one instant (the greater wins).
    pub id: Box<str>,
    /// The absolute figure.
    pub value: i128,
    /// Sum of that day's deltas at or after `at`.
    pub after: i128,
}

/// One day of a level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelDay {
    /// Sum of every delta of the day.
    pub delta: i128,
    /// The day's latest snapshot.
    pub snapshot: Option<Snapshot>,
    /// A snapshot taken at exactly 00:00 of the day: the opening value of a fiscal year
    /// when the day is April 1.
    pub opening: Option<(Box<str>, i128)>,
}

/// The aggregates of a plan's measures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    /// Flow amounts per (measure, day).
    pub flows: PerDay<i128>,
    /// Distinct values per (measure, year), with how many live events carry each.
    pub distinct: HashMap<(MeasureId, FiscalYear), DistinctSet, Hasher>,
    /// The sizes of distinct sets whose values a store keeps instead of `distinct` (a
    /// replay's: its sets can hold millions of values, see `replay.rs`). Read by
    /// [`Ledger::distinct_count`] for a key that `distinct` has no set for; the live
    /// ledger leaves it empty.
    pub distinct_counts: HashMap<(MeasureId, FiscalYear), i64>,
    /// Level days per (measure, day).
    pub levels: PerDay<LevelDay>,
    /// Milestone stages reached per (kpi, day, stage), with how many live events say so.
    pub stages: BTreeMap<(KpiId, Day, u16), i64>,
    /// The latest `occurred_at` behind each measure and each milestone KPI.
    pub as_of: HashMap<AsOf, Timestamp, Hasher>,
}

/// The hasher of the ledger's maps, which the fold looks up once or more per event:
/// foldhash (seeded per process, so no crafted values flood it) is several times
/// cheaper than std's SipHash on these short keys.
pub type Hasher = foldhash::fast::RandomState;

/// The values of a distinct measure in a year, with how many live events carry each.
pub type DistinctSet = HashMap<Box<str>, i64, Hasher>;

/// A map per (measure, day), as flows and levels keep their days: ordered by
/// (measure, day) like a `BTreeMap` of those keys, with the same methods its readers use.
///
/// The fold touches one of these once or more per event, so it is laid out for that:
/// one vector per measure (indexed by `MeasureId`), its days sorted, so a lookup is an
/// index, then a comparison with the latest day (where most events land) or else a
/// binary search. Each entry keeps its whole key so iteration lends `&(MeasureId, Day)`
/// as a `BTreeMap` does.
#[derive(Clone)]
pub struct PerDay<V> {
    /// Per measure: its days, in order.
    measures: Vec<Vec<((MeasureId, Day), V)>>,
    /// Entries in all.
    len: usize,
}

impl<V> Default for PerDay<V> {
    fn default() -> Self {
        PerDay {
            measures: Vec::new(),
            len: 0,
        }
    }
}

/// Where `d` is (`Ok`) or would go (`Err`) in a measure's sorted days.
fn find<V>(days: &[((MeasureId, Day), V)], d: Day) -> Result<usize, usize> {
    match days.last() {
        None => Err(0),
        Some(((_, last), _)) if *last == d => Ok(days.len() - 1),
        Some(((_, last), _)) if *last < d => Err(days.len()),
        Some(_) => days.binary_search_by(|((_, x), _)| x.cmp(&d)),
    }
}

impl<V> PerDay<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn days(&self, m: MeasureId) -> &[((MeasureId, Day), V)] {
        self.measures.get(m.0).map_or(&[], Vec::as_slice)
    }

    /// A measure's days, made room for (measure ids are indices of the plan's measures).
    fn days_mut(&mut self, m: MeasureId) -> &mut Vec<((MeasureId, Day), V)> {
        if self.measures.len() <= m.0 {
            self.measures.resize_with(m.0 + 1, Vec::new);
        }
        &mut self.measures[m.0]
    }

    /// The value of a key.
    pub fn get(&self, key: &(MeasureId, Day)) -> Option<&V> {
        let days = self.days(key.0);
        find(days, key.1).ok().map(|i| &days[i].1)
    }

    /// The value of a key, to change.
    pub fn get_mut(&mut self, key: &(MeasureId, Day)) -> Option<&mut V> {
        let days = self.measures.get_mut(key.0 .0)?;
        let i = find(days, key.1).ok()?;
        Some(&mut days[i].1)
    }

    /// Whether a key has a value.
    pub fn contains_key(&self, key: &(MeasureId, Day)) -> bool {
        self.get(key).is_some()
    }

    /// Sets a key's value; returns the one it replaces.
    pub fn insert(&mut self, key: (MeasureId, Day), value: V) -> Option<V> {
        let days = self.days_mut(key.0);
        match find(days, key.1) {
            Ok(i) => Some(std::mem::replace(&mut days[i].1, value)),
            Err(i) => {
                days.insert(i, (key, value));
                self.len += 1;
                None
            }
        }
    }

    /// Removes a key; returns its value.
    pub fn remove(&mut self, key: &(MeasureId, Day)) -> Option<V> {
        let days = self.measures.get_mut(key.0 .0)?;
        let i = find(days, key.1).ok()?;
        self.len -= 1;
        Some(days.remove(i).1)
    }

    /// A key's value, set to the default first if it has none (`entry(key).or_default()`).
    pub fn get_or_default(&mut self, key: (MeasureId, Day)) -> &mut V
    where
        V: Default,
    {
        let days = self.days_mut(key.0);
        let i = match find(days, key.1) {
            Ok(i) => i,
            Err(i) => {
                days.insert(i, (key, V::default()));
                self.len += 1;
                i
            }
        };
        &mut self.measures[key.0 .0][i].1
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&(MeasureId, Day), &V)> {
        self.measures.iter().flatten().map(|(k, v)| (k, v))
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &(MeasureId, Day)> {
        self.iter().map(|(k, _)| k)
    }

    /// Every value, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// The keys and values within `range`, in key order (empty for an empty range, where
    /// a `BTreeMap` would panic).
    pub fn range<R: RangeBounds<(MeasureId, Day)>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = (&(MeasureId, Day), &V)> {
        let lo = range.start_bound().cloned();
        let hi = range.end_bound().cloned();
        let first = match lo {
            Bound::Included((m, _)) | Bound::Excluded((m, _)) => m.0,
            Bound::Unbounded => 0,
        };
        let end = match hi {
            Bound::Included((m, _)) | Bound::Excluded((m, _)) => m.0.saturating_add(1),
            Bound::Unbounded => usize::MAX,
        }
        .min(self.measures.len());
        self.measures[first.min(end)..end]
            .iter()
            .flat_map(move |days| {
                let from = match lo {
                    Bound::Included(k) => days.partition_point(|(x, _)| *x < k),
                    Bound::Excluded(k) => days.partition_point(|(x, _)| *x <= k),
                    Bound::Unbounded => 0,
                };
                let to = match hi {
                    Bound::Included(k) => days.partition_point(|(x, _)| *x <= k),
                    Bound::Excluded(k) => days.partition_point(|(x, _)| *x < k),
                    Bound::Unbounded => days.len(),
                };
                &days[from..to.max(from)]
            })
            .map(|(k, v)| (k, v))
    }
}

impl<V: PartialEq> PartialEq for PerDay<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<V: Eq> Eq for PerDay<V> {}

impl<V: fmt::Debug> fmt::Debug for PerDay<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> FromIterator<((MeasureId, Day), V)> for PerDay<V> {
    fn from_iter<I: IntoIterator<Item = ((MeasureId, Day), V)>>(iter: I) -> Self {
        let mut map = PerDay::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

/// What an `as_of` time stands behind: a measure, or a milestone KPI (whose stages are
/// no measure). Measures and KPIs are counted apart, so each has its own variant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AsOf {
    /// A measure's events.
    Measure(MeasureId),
    /// A milestone KPI's stage events.
    Kpi(KpiId),
}

impl AsOf {
    /// Its key in a store: `m:<measure id>` or `k:<KPI id>` (ids of the plan, so a
    /// store outlives the plan's order).
    pub fn key(self, plan: &Plan) -> String {
        match self {
            AsOf::Measure(m) => format!("m:{}", plan.measures[m].id),
            AsOf::Kpi(k) => format!("k:{}", plan.kpis[k].id),
        }
    }

    /// Reads a store's key; `None` for what the plan no longer has.
    pub fn from_key(plan: &Plan, key: &str) -> Option<AsOf> {
        match key.strip_prefix("m:") {
            Some(m) => plan.measure(m).map(AsOf::Measure),
            None => plan.kpi_id(key.strip_prefix("k:")?).map(AsOf::Kpi),
        }
    }
}

/// The contributions of an event, per the plan's routes.
pub fn effects(plan: &Plan, event: &Event) -> Vec<Effect> {
    let mut out = Vec::new();
    effects_into(plan, event, &mut out);
    out
}

/// [`effects`], appended to `out`: the fold reuses one buffer instead of allocating a
/// vector per event.
pub fn effects_into(plan: &Plan, event: &Event, out: &mut Vec<Effect>) {
    let at = event.occurred_at;
    for route in &plan.routes[usize::from(event.type_id.0)] {
        let passes = route.filter.iter().all(|(ix, allowed)| {
            matches!(event.data.get(*ix), Some(Value::Enum(v)) if allowed.contains(v))
        });
        if !passes {
            continue;
        }
        let amount = match route.field {
            None => 1,
            Some(ix) => match event.data.get(ix) {
                Some(Value::Int(v) | Value::Fixed(v)) => i128::from(*v),
                Some(Value::Id(v)) if route.op == Op::Distinct => {
                    out.push(Effect::Distinct {
                        measure: route.measure,
                        year: FiscalYear::of(at),
                        value: v.clone(),
                    });
                    continue;
                }
                _ => continue,
            },
        };
        let measure = route.measure;
        out.push(match (route.op, plan.measures[measure].kind) {
            (Op::Reset, _) => Effect::Reset {
                measure,
                at,
                id: event.id.as_str().into(),
                value: amount,
            },
            (Op::Sub, _) => Effect::Delta {
                measure,
                at,
                amount: -amount,
            },
            (_, MeasureKind::Level) => Effect::Delta {
                measure,
                at,
                amount,
            },
            _ => Effect::Flow {
                measure,
                day: Day::of(at),
                amount,
            },
        });
    }
    if let Some((kpi_field, stage_field)) = plan.milestone_fields[usize::from(event.type_id.0)] {
        if let (Some(Value::Id(kpi)), Some(Value::Id(stage))) =
            (event.data.get(kpi_field), event.data.get(stage_field))
        {
            if let Some((k, stages)) = plan
                .kpis_with_ids()
                .find_map(|(i, k)| (k.id == **kpi).then_some((i, k.stages()?)))
            {
                if let Some(s) = stages.iter().position(|s| s.id == **stage) {
                    out.push(Effect::Stage {
                        kpi: k,
                        day: Day::of(at),
                        stage: s as u16,
                    });
                }
            }
        }
    }
}

/// The measure (or milestone KPI) an effect touches.
fn as_of_key(e: &Effect) -> AsOf {
    match e {
        Effect::Flow { measure, .. }
        | Effect::Distinct { measure, .. }
        | Effect::Delta { measure, .. }
        | Effect::Reset { measure, .. } => AsOf::Measure(*measure),
        Effect::Stage { kpi, .. } => AsOf::Kpi(*kpi),
    }
}

impl Ledger {
    /// Applies an effect with `sign` +1 (an event counted) or −1 (an event voided).
    ///
    /// `deltas_since(measure, day, at)` must return the sum of the live deltas of that
    /// level on that day at or after `at`, excluding the effect being applied: a
    /// snapshot that becomes the day's latest needs it, and only the event log has it.
    pub fn apply(
        &mut self,
        effect: &Effect,
        sign: i64,
        deltas_since: &mut dyn FnMut(MeasureId, Day, Timestamp) -> i128,
    ) {
        match effect {
            Effect::Flow {
                measure,
                day,
                amount,
            } => self.apply_flow((*measure, *day), i128::from(sign) * amount),
            Effect::Distinct {
                measure,
                year,
                value,
            } => self.apply_distinct((*measure, *year), value, sign),
            Effect::Delta {
                measure,
                at,
                amount,
            } => self.apply_delta(*measure, *at, i128::from(sign) * amount),
            Effect::Reset {
                measure,
                at,
                id,
                value,
            } => self.apply_reset(*measure, *at, id, *value, deltas_since),
            Effect::Stage { kpi, day, stage } => self.apply_stage((*kpi, *day, *stage), sign),
        }
    }

    /// Adds a signed amount to a flow's day; a day back at zero is dropped.
    fn apply_flow(&mut self, key: (MeasureId, Day), signed: i128) {
        let v = self.flows.get_or_default(key);
        *v += signed;
        if *v == 0 {
            self.flows.remove(&key);
        }
    }

    /// Counts a value of a distinct measure once more (or once less).
    fn apply_distinct(&mut self, key: (MeasureId, FiscalYear), value: &str, sign: i64) {
        let set = self.distinct.entry(key).or_default();
        // A value seen before is found by `&str`: no key is built for it.
        let n = match set.get_mut(value) {
            Some(n) => n,
            None => set.entry(value.into()).or_default(),
        };
        *n += sign;
        if *n <= 0 {
            set.remove(value);
        }
        if set.is_empty() {
            self.distinct.remove(&key);
        }
    }

    /// Moves a level's day by a signed delta, and the day's snapshot if it is not later.
    fn apply_delta(&mut self, measure: MeasureId, at: Timestamp, signed: i128) {
        let key = (measure, Day::of(at));
        let day = self.levels.get_or_default(key);
        day.delta += signed;
        if let Some(s) = day.snapshot.as_mut().filter(|s| at >= s.at) {
            s.after += signed;
        }
        // A day whose deltas cancel out and that has no snapshot says nothing
        // about the stock; dropping it keeps the ledger independent of order.
        if *day == LevelDay::default() {
            self.levels.remove(&key);
        }
    }

    /// Records a snapshot: the day's opening if taken at 00:00, and the day's latest if
    /// newer than the one kept.
    fn apply_reset(
        &mut self,
        measure: MeasureId,
        at: Timestamp,
        id: &str,
        value: i128,
        deltas_since: &mut dyn FnMut(MeasureId, Day, Timestamp) -> i128,
    ) {
        // Snapshots are never voided (docs/architecture.md), so only sign +1 arrives here.
        let d = Day::of(at);
        let day = self.levels.get_or_default((measure, d));
        if at == d.start() && day.opening.as_ref().is_none_or(|(oid, _)| **oid < *id) {
            day.opening = Some((id.into(), value));
        }
        let newer = day
            .snapshot
            .as_ref()
            .is_none_or(|s| (s.at, &*s.id) < (at, id));
        if newer {
            let after = deltas_since(measure, d, at);
            let day = self.levels.get_or_default((measure, d));
            day.snapshot = Some(Snapshot {
                at,
                id: id.into(),
                value,
                after,
            });
        }
    }

    /// Counts one more (or one less) live event saying a milestone stage was reached.
    fn apply_stage(&mut self, key: (KpiId, Day, u16), sign: i64) {
        let v = self.stages.entry(key).or_default();
        *v += sign;
        if *v <= 0 {
            self.stages.remove(&key);
        }
    }

    /// Records that an accepted event stands behind its measures as of its time, even
    /// when it is voided (so the record does not depend on arrival order).
    /// (`_plan` is no longer needed since `AsOf` keys need no measure count; it stays so
    /// that callers are unchanged.)
    pub fn touch(&mut self, _plan: &Plan, effects: &[Effect], at: Timestamp) {
        for e in effects {
            let slot = self.as_of.entry(as_of_key(e)).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// A flow's total over days `from..=to`.
    pub fn flow_sum(&self, measure: impl Into<MeasureId>, from: Day, to: Day) -> i128 {
        let measure = measure.into();
        if to < from {
            return 0;
        }
        self.flows
            .range((measure, from)..=(measure, to))
            .map(|(_, v)| *v)
            .sum()
    }

    /// A distinct measure's count for a year.
    pub fn distinct_count(&self, measure: impl Into<MeasureId>, year: FiscalYear) -> i64 {
        let measure = measure.into();
        match self.distinct.get(&(measure, year)) {
            Some(set) => set.len() as i64,
            None => self
                .distinct_counts
                .get(&(measure, year))
                .copied()
                .unwrap_or(0),
        }
    }

    /// A level at the end of `day`: its value, and whether a snapshot stands behind it.
    /// `None` when nothing has touched the level by then.
    pub fn level_at(&self, measure: impl Into<MeasureId>, day: Day) -> Option<(i128, bool)> {
        let measure = measure.into();
        let range = self.levels.range((measure, Day(i32::MIN))..=(measure, day));
        let mut sum: i128 = 0;
        let mut any = false;
        for (_, d) in range.rev() {
            any = true;
            if let Some(s) = &d.snapshot {
                return Some((s.value + s.after + sum, true));
            }
            sum += d.delta;
        }
        any.then_some((sum, false))
    }

    /// A level at the start of a fiscal year (its opening snapshot, or the end of the
    /// previous day), when a snapshot stands behind it.
    pub fn level_at_start(&self, measure: impl Into<MeasureId>, year: FiscalYear) -> Option<i128> {
        let measure = measure.into();
        let first = year.first_day();
        if let Some((_, v)) = self
            .levels
            .get(&(measure, first))
            .and_then(|d| d.opening.as_ref())
        {
            return Some(*v);
        }
        match self.level_at(measure, Day(first.0 - 1)) {
            Some((v, true)) => Some(v),
            _ => None,
        }
    }

    /// The highest stage index of a milestone KPI reached by the end of `day`.
    pub fn stage_at(&self, kpi: impl Into<KpiId>, day: Day) -> Option<u16> {
        let kpi = kpi.into();
        self.stages
            .range((kpi, Day(i32::MIN), 0)..=(kpi, day, u16::MAX))
            .map(|((_, _, s), _)| *s)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::KpiKind;

    #[test]
    fn the_first_measure_and_the_first_kpi_are_different_as_of_keys() {
        let mut ledger = Ledger::default();
        let t = Timestamp::from_unix_seconds(1_800_000_000);
        ledger.as_of.insert(AsOf::Measure(MeasureId(0)), t);
        ledger.as_of.insert(AsOf::Kpi(KpiId(0)), t);
        assert_eq!(ledger.as_of.len(), 2);
    }

    #[test]
    fn an_as_of_key_reads_back_as_itself_and_names_the_plan_id() {
        let plan = Plan::ome().unwrap();
        let milestone = plan
            .kpis_with_ids()
            .find(|(_, k)| matches!(k.kind, KpiKind::Milestone { .. }))
            .map(|(k, _)| k)
            .unwrap();
        for key in [AsOf::Measure(MeasureId(0)), AsOf::Kpi(milestone)] {
            let text = key.key(&plan);
            assert!(text.starts_with("m:") || text.starts_with("k:"), "{text}");
            assert_eq!(AsOf::from_key(&plan, &text), Some(key));
        }
        assert_eq!(AsOf::from_key(&plan, "m:no_such_measure"), None);
        assert_eq!(AsOf::from_key(&plan, "x:whatever"), None);
    }

    /// One operation on a per-day map, as the fold and the store's readers do them.
    #[derive(Clone, Debug)]
    enum Op {
        Insert(usize, i32, i64),
        Remove(usize, i32),
        Add(usize, i32, i64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Few measures and days, so keys repeat, land before, between and after others.
        let key = (0usize..4, -3i32..12);
        prop_oneof![
            (key.clone(), -2i64..3).prop_map(|((m, d), v)| Op::Insert(m, d, v)),
            key.clone().prop_map(|(m, d)| Op::Remove(m, d)),
            (key, -2i64..3).prop_map(|((m, d), v)| Op::Add(m, d, v)),
        ]
    }

    proptest::proptest! {
        /// `PerDay` answers every reader exactly as the `BTreeMap` it replaces would:
        /// the same values, order, ranges (forwards and backwards), length and equality.
        #[test]
        fn a_per_day_map_behaves_as_a_btree_map_of_its_keys(
            ops in proptest::collection::vec(op(), 0..80),
            (m1, d1, m2, d2) in (0usize..5, -4i32..13, 0usize..5, -4i32..13),
        ) {
            let mut fast: PerDay<i64> = PerDay::new();
            let mut model: BTreeMap<(MeasureId, Day), i64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(m, d, v) => {
                        let k = (MeasureId(m), Day(d));
                        proptest::prop_assert_eq!(fast.insert(k, v), model.insert(k, v));
                    }
                    Op::Remove(m, d) => {
                        let k = (MeasureId(m), Day(d));
                        proptest::prop_assert_eq!(fast.remove(&k), model.remove(&k));
                    }
                    Op::Add(m, d, v) => {
                        let k = (MeasureId(m), Day(d));
                        *fast.get_or_default(k) += v;
                        *model.entry(k).or_default() += v;
                        if model[&k] == 0 {
                            fast.remove(&k);
                            model.remove(&k);
                        }
                    }
                }
            }
            proptest::prop_assert_eq!(fast.len(), model.len());
            proptest::prop_assert_eq!(fast.is_empty(), model.is_empty());
            proptest::prop_assert!(fast.iter().eq(model.iter()));
            proptest::prop_assert_eq!(format!("{fast:?}"), format!("{model:?}"));
            let (a, b) = ((MeasureId(m1), Day(d1)), (MeasureId(m2), Day(d2)));
            for m in 0..5 {
                for d in -4..13 {
                    let k = (MeasureId(m), Day(d));
                    proptest::prop_assert_eq!(fast.get(&k), model.get(&k));
                }
            }
            if a <= b {
                proptest::prop_assert!(fast.range(a..=b).eq(model.range(a..=b)));
                proptest::prop_assert!(fast.range(a..=b).rev().eq(model.range(a..=b).rev()));
                proptest::prop_assert!(fast.range(a..b).eq(model.range(a..b)));
                proptest::prop_assert!(fast.range(..=b).eq(model.range(..=b)));
                proptest::prop_assert!(fast.range(a..).rev().eq(model.range(a..).rev()));
            } else {
                proptest::prop_assert_eq!(fast.range(a..=b).count(), 0);
            }
            // Equality does not depend on a measure's days having been emptied.
            let rebuilt: PerDay<i64> = model.iter().map(|(k, v)| (*k, *v)).collect();
            proptest::prop_assert_eq!(&rebuilt, &fast);
        }
    }
}
