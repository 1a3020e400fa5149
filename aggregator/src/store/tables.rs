//! The aggregate tables, described once: each table's name, key columns and value
//! columns, how a ledger entry becomes a row and how a row reads back into a ledger.
//! Both dialects build their SQL from these descriptions (SQLite's placeholders and
//! multi-row `VALUES`, PostgreSQL's typed arrays and `UNNEST`), so a column added to a
//! table is added here, once.
//!
//! A row that carries nothing (a zero flow, a count of zero, an empty level day) is
//! never kept: writers delete it, readers skip it, so the tables mirror the ledger,
//! which holds no such entries either.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use mieruka_ingest::Timestamp;

use crate::fiscal::{Day, FiscalYear};
use crate::ledger::{AsOf, Effect, Ledger, LevelDay, Snapshot};
use crate::plan::{KpiId, MeasureId, Plan};
use crate::store::row::{ReadError, ReadRow};

/// How a column is typed; each dialect spells the types its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    /// A day or a fiscal year.
    Int4,
    /// A count, or an instant in microseconds.
    Int8,
    /// A summed amount, an i128 read and written as decimal text: TEXT in SQLite (an
    /// i128 does not fit its INTEGER), NUMERIC(39, 0) in PostgreSQL.
    Sum,
}

/// A column of an aggregate table.
#[derive(Debug)]
pub(crate) struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether it may be NULL: a placeholder row (PostgreSQL's lock) leaves it NULL
    /// rather than zero.
    pub nullable: bool,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: false,
    }
}

const fn nullable(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: true,
    }
}

/// How a written row meets the row already stored under its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Merge {
    /// The written values replace the stored ones (the writer holds the row's lock).
    Replace,
    /// The greater value stays (`as_of` only grows, so it needs no lock).
    Greatest,
}

/// The SQL dialects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// An aggregate table: its key columns, then its value columns.
#[derive(Debug)]
pub(crate) struct Table {
    pub name: &'static str,
    pub keys: &'static [Column],
    pub values: &'static [Column],
    pub merge: Merge,
}

impl Table {
    /// Key columns, then value columns.
    pub fn columns(&self) -> impl Iterator<Item = &'static Column> {
        self.keys.iter().chain(self.values)
    }

    /// `measure, day`.
    pub fn key_list(&self) -> String {
        names(self.keys.iter())
    }

    /// Every column, comma-separated.
    pub fn column_list(&self) -> String {
        names(self.columns())
    }

    /// The columns as the shared reading expects them: sums as decimal text.
    pub fn select_list(&self, dialect: Dialect) -> String {
        let cast = |c: &Column| match (dialect, c.kind) {
            (Dialect::Postgres, Kind::Sum) => format!("{}::text", c.name),
            _ => c.name.to_owned(),
        };
        self.columns().map(cast).collect::<Vec<_>>().join(", ")
    }

    /// The `SET` list of an upsert's `ON CONFLICT (keys) DO UPDATE`.
    pub fn update_set(&self, dialect: Dialect) -> String {
        let set = |c: &Column| match (self.merge, dialect) {
            (Merge::Replace, _) => format!("{0} = excluded.{0}", c.name),
            (Merge::Greatest, Dialect::Sqlite) => format!("{0} = max({0}, excluded.{0})", c.name),
            (Merge::Greatest, Dialect::Postgres) => {
                format!("{0} = GREATEST({1}.{0}, excluded.{0})", c.name, self.name)
            }
        };
        self.values.iter().map(set).collect::<Vec<_>>().join(", ")
    }
}

fn names<'c>(columns: impl Iterator<Item = &'c Column>) -> String {
    columns.map(|c| c.name).collect::<Vec<_>>().join(", ")
}

const FLOWS: Table = Table {
    name: "flows",
    keys: &[col("measure", Kind::Text), col("day", Kind::Int4)],
    values: &[col("amount", Kind::Sum)],
    merge: Merge::Replace,
};

const DISTINCT: Table = Table {
    name: "distinct_values",
    keys: &[
        col("measure", Kind::Text),
        col("fiscal_year", Kind::Int4),
        col("value", Kind::Text),
    ],
    values: &[col("n", Kind::Int8)],
    merge: Merge::Replace,
};

const LEVELS: Table = Table {
    name: "level_days",
    keys: &[col("measure", Kind::Text), col("day", Kind::Int4)],
    values: &[
        col("delta", Kind::Sum),
        nullable("snap_at", Kind::Int8),
        nullable("snap_id", Kind::Text),
        nullable("snap_value", Kind::Sum),
        nullable("snap_after", Kind::Sum),
        nullable("opening_id", Kind::Text),
        nullable("opening_value", Kind::Sum),
    ],
    merge: Merge::Replace,
};

const STAGES: Table = Table {
    name: "stages",
    keys: &[
        col("kpi", Kind::Text),
        col("day", Kind::Int4),
        col("stage", Kind::Text),
    ],
    values: &[col("n", Kind::Int8)],
    merge: Merge::Replace,
};

const AS_OF: Table = Table {
    name: "as_of",
    keys: &[col("key", Kind::Text)],
    values: &[col("at", Kind::Int8)],
    merge: Merge::Greatest,
};

/// A value bound to a column of [`Kind`] alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Value<'a> {
    Text(Option<Cow<'a, str>>),
    Int4(i32),
    Int8(Option<i64>),
    Sum(Option<i128>),
}

impl Value<'_> {
    fn text_of(s: &str) -> Value<'_> {
        Value::Text(Some(Cow::Borrowed(s)))
    }

    /// The value of a [`Kind::Text`] column.
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => t.as_deref(),
            _ => None,
        }
    }

    /// The value of a [`Kind::Int4`] column.
    pub fn int4(&self) -> Option<i32> {
        match self {
            Value::Int4(n) => Some(*n),
            _ => None,
        }
    }

    /// The value of a [`Kind::Int8`] column.
    pub fn int8(&self) -> Option<i64> {
        match self {
            Value::Int8(n) => *n,
            _ => None,
        }
    }

    /// The value of a [`Kind::Sum`] column, as the decimal text both dialects bind.
    pub fn sum(&self) -> Option<String> {
        match self {
            Value::Sum(a) => a.map(|a| a.to_string()),
            _ => None,
        }
    }
}

/// A row to write: its values in the table's column order.
#[derive(Debug)]
pub(crate) struct TableRow<'a> {
    pub values: Vec<Value<'a>>,
    /// Whether the row carries anything: one that does not is deleted, not written.
    pub live: bool,
}

impl<'a> TableRow<'a> {
    /// The key columns' values.
    pub fn key(&self, table: &Table) -> &[Value<'a>] {
        &self.values[..table.keys.len().min(self.values.len())]
    }
}

/// The aggregate tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Flows,
    Distinct,
    Levels,
    Stages,
    AsOf,
}

impl Aggregate {
    /// Every aggregate table.
    pub const ALL: [Aggregate; 5] = [
        Aggregate::Flows,
        Aggregate::Distinct,
        Aggregate::Levels,
        Aggregate::Stages,
        Aggregate::AsOf,
    ];

    /// The tables whose rows a writer locks before it folds (`as_of` only grows).
    pub const LOCKED: [Aggregate; 4] = [
        Aggregate::Flows,
        Aggregate::Distinct,
        Aggregate::Levels,
        Aggregate::Stages,
    ];

    /// The table's description.
    pub fn table(self) -> &'static Table {
        match self {
            Aggregate::Flows => &FLOWS,
            Aggregate::Distinct => &DISTINCT,
            Aggregate::Levels => &LEVELS,
            Aggregate::Stages => &STAGES,
            Aggregate::AsOf => &AS_OF,
        }
    }

    /// `SELECT` of every row, columns as [`Aggregate::read`] takes them.
    pub fn select_all(self, dialect: Dialect) -> String {
        let t = self.table();
        format!("SELECT {} FROM {}", t.select_list(dialect), t.name)
    }

    /// The rows of `keys` with their values in `ledger` (every `as_of` of `ledger`,
    /// whatever the keys), sorted by key.
    pub fn rows<'a>(self, plan: &'a Plan, keys: &'a Keys, ledger: &'a Ledger) -> Vec<TableRow<'a>> {
        let mid = |m: MeasureId| Value::text_of(plan.measures[m].id.as_str());
        match self {
            Aggregate::Flows => keys
                .flows
                .iter()
                .map(|&(m, d)| {
                    let a = ledger.flows.get(&(m, d)).copied().unwrap_or(0);
                    let values = vec![mid(m), Value::Int4(d.0), Value::Sum(Some(a))];
                    TableRow {
                        values,
                        live: a != 0,
                    }
                })
                .collect(),
            Aggregate::Distinct => keys
                .distinct
                .iter()
                .map(|(m, y, v)| {
                    let set = ledger.distinct.get(&(*m, *y));
                    let n = set.and_then(|s| s.get(v)).copied().unwrap_or(0);
                    let values = vec![
                        mid(*m),
                        Value::Int4(y.0),
                        Value::text_of(v),
                        Value::Int8(Some(n)),
                    ];
                    TableRow {
                        values,
                        live: n > 0,
                    }
                })
                .collect(),
            Aggregate::Levels => keys
                .levels
                .iter()
                .map(|&(m, d)| level_row(mid(m), d, ledger.levels.get(&(m, d))))
                .collect(),
            Aggregate::Stages => keys
                .stages
                .iter()
                .map(|&(k, d, s)| {
                    let n = ledger.stages.get(&(k, d, s)).copied().unwrap_or(0);
                    let values = vec![
                        Value::text_of(plan.kpis[k].id.as_str()),
                        Value::Int4(d.0),
                        Value::text_of(stage_id(plan, k, s)),
                        Value::Int8(Some(n)),
                    ];
                    TableRow {
                        values,
                        live: n > 0,
                    }
                })
                .collect(),
            Aggregate::AsOf => {
                let mut rows: Vec<TableRow<'a>> = ledger
                    .as_of
                    .iter()
                    .map(|(k, t)| TableRow {
                        values: vec![
                            Value::Text(Some(Cow::Owned(k.key(plan)))),
                            Value::Int8(Some(t.micros())),
                        ],
                        live: true,
                    })
                    .collect();
                rows.sort_by(|a, b| {
                    a.values
                        .first()
                        .map(Value::text)
                        .cmp(&b.values.first().map(Value::text))
                });
                rows
            }
        }
    }

    /// Reads a row of this table (the columns of [`Table::select_list`]) into `ledger`;
    /// a row of an id the plan no longer has, or one that carries nothing, is skipped.
    pub fn read(
        self,
        ids: &Ids,
        plan: &Plan,
        r: &impl ReadRow,
        ledger: &mut Ledger,
    ) -> Result<(), ReadError> {
        match self {
            Aggregate::Flows => {
                if let Some(&m) = ids.measure.get(r.text(0)?) {
                    let amount = r.sum(2, "flows.amount")?;
                    if amount != 0 {
                        ledger.flows.insert((m, Day(r.int4(1)?)), amount);
                    }
                }
            }
            Aggregate::Distinct => {
                let n = r.int8(3)?;
                if let (Some(&m), true) = (ids.measure.get(r.text(0)?), n > 0) {
                    ledger
                        .distinct
                        .entry((m, FiscalYear(r.int4(1)?)))
                        .or_default()
                        .insert(r.text(2)?.into(), n);
                }
            }
            Aggregate::Levels => {
                if let Some(&m) = ids.measure.get(r.text(0)?) {
                    let day = read_level_day(r)?;
                    if day != LevelDay::default() {
                        ledger.levels.insert((m, Day(r.int4(1)?)), day);
                    }
                }
            }
            Aggregate::Stages => {
                let n = r.int8(3)?;
                if let (Some((k, s)), true) = (ids.stage(plan, r.text(0)?, r.text(2)?), n > 0) {
                    ledger.stages.insert((k, Day(r.int4(1)?), s), n);
                }
            }
            Aggregate::AsOf => {
                if let Some(ix) = ids.as_of(r.text(0)?) {
                    ledger.as_of.insert(ix, Timestamp::from_micros(r.int8(1)?));
                }
            }
        }
        Ok(())
    }
}

/// A `level_days` row of a measure's day.
fn level_row<'a>(measure: Value<'a>, day: Day, l: Option<&'a LevelDay>) -> TableRow<'a> {
    let (delta, s, o) = match l {
        Some(l) => (l.delta, l.snapshot.as_ref(), l.opening.as_ref()),
        None => (0, None, None),
    };
    let text = |t: Option<&'a str>| Value::Text(t.map(Cow::Borrowed));
    TableRow {
        values: vec![
            measure,
            Value::Int4(day.0),
            Value::Sum(Some(delta)),
            Value::Int8(s.map(|s| s.at.micros())),
            text(s.map(|s| &*s.id)),
            Value::Sum(s.map(|s| s.value)),
            Value::Sum(s.map(|s| s.after)),
            text(o.map(|o| &*o.0)),
            Value::Sum(o.map(|o| o.1)),
        ],
        live: delta != 0 || s.is_some() || o.is_some(),
    }
}

/// The value columns of a `level_days` row as a ledger day.
fn read_level_day(r: &impl ReadRow) -> Result<LevelDay, ReadError> {
    let snapshot = match (r.opt_int8(3)?, r.opt_text(4)?) {
        (Some(at), Some(id)) => Some(Snapshot {
            at: Timestamp::from_micros(at),
            id: id.into(),
            value: r.opt_sum(5, "level_days.snap_value")?.unwrap_or(0),
            after: r.opt_sum(6, "level_days.snap_after")?.unwrap_or(0),
        }),
        _ => None,
    };
    let opening = match (r.opt_text(7)?, r.opt_sum(8, "level_days.opening_value")?) {
        (Some(id), Some(v)) => Some((id.into(), v)),
        _ => None,
    };
    Ok(LevelDay {
        delta: r.sum(2, "level_days.delta")?,
        snapshot,
        opening,
    })
}

/// Plan ids resolved once: rows are keyed by ids, the ledger by positions.
pub(crate) struct Ids {
    measure: HashMap<String, MeasureId>,
    kpi: HashMap<String, KpiId>,
}

impl Ids {
    pub fn new(plan: &Plan) -> Self {
        Self {
            measure: plan
                .measures
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), MeasureId(i)))
                .collect(),
            kpi: plan
                .kpis
                .iter()
                .enumerate()
                .map(|(i, k)| (k.id.clone(), KpiId(i)))
                .collect(),
        }
    }

    fn stage(&self, plan: &Plan, kpi: &str, stage: &str) -> Option<(KpiId, u16)> {
        let k = *self.kpi.get(kpi)?;
        let s = plan.kpis[k].stages()?.iter().position(|s| s.id == stage)?;
        Some((k, u16::try_from(s).ok()?))
    }

    fn as_of(&self, key: &str) -> Option<AsOf> {
        match key.strip_prefix("m:") {
            Some(m) => self.measure.get(m).copied().map(AsOf::Measure),
            None => self
                .kpi
                .get(key.strip_prefix("k:")?)
                .copied()
                .map(AsOf::Kpi),
        }
    }
}

fn stage_id(plan: &Plan, kpi: KpiId, stage: u16) -> &str {
    plan.kpis[kpi]
        .stages()
        .and_then(|st| st.get(usize::from(stage)))
        .map_or("", |st| st.id.as_str())
}

/// The aggregate rows a batch can touch, sorted.
#[derive(Default)]
pub(crate) struct Keys {
    flows: BTreeSet<(MeasureId, Day)>,
    distinct: BTreeSet<(MeasureId, FiscalYear, Box<str>)>,
    levels: BTreeSet<(MeasureId, Day)>,
    stages: BTreeSet<(KpiId, Day, u16)>,
}

impl Keys {
    /// The aggregate rows that `effects` move.
    pub fn of(effects: Vec<Effect>) -> Self {
        let mut keys = Keys::default();
        for e in effects {
            match e {
                Effect::Flow { measure, day, .. } => {
                    keys.flows.insert((measure, day));
                }
                Effect::Distinct {
                    measure,
                    year,
                    value,
                } => {
                    keys.distinct.insert((measure, year, value));
                }
                Effect::Delta { measure, at, .. } | Effect::Reset { measure, at, .. } => {
                    keys.levels.insert((measure, Day::of(at)));
                }
                Effect::Stage { kpi, day, stage } => {
                    keys.stages.insert((kpi, day, stage));
                }
            }
        }
        keys
    }

    /// The keys of every aggregate row of `ledger` (a replay writes them all).
    pub fn all(ledger: &Ledger) -> Self {
        Keys {
            flows: ledger.flows.keys().copied().collect(),
            distinct: ledger
                .distinct
                .iter()
                .flat_map(|((m, y), set)| set.keys().map(move |v| (*m, *y, v.clone())))
                .collect(),
            levels: ledger.levels.keys().copied().collect(),
            stages: ledger.stages.keys().copied().collect(),
        }
    }

    /// Whether every aggregate of `ledger` is one of these keys (a partial ledger must
    /// hold only locked rows).
    pub fn covers(&self, ledger: &Ledger) -> bool {
        ledger.flows.keys().all(|k| self.flows.contains(k))
            && ledger.levels.keys().all(|k| self.levels.contains(k))
            && ledger.stages.keys().all(|k| self.stages.contains(k))
            && ledger.distinct.iter().all(|((m, y), set)| {
                set.keys()
                    .all(|v| self.distinct.contains(&(*m, *y, v.clone())))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row a table maps from the ledger has one value per column, of its kind.
    #[test]
    fn each_tables_rows_match_its_columns() {
        let plan = Plan::ome().unwrap_or_else(|e| panic!("{e}"));
        let at = Timestamp::from_micros(1_780_000_000_000_000);
        let day = Day::of(at);
        let effects = vec![
            Effect::Flow {
                measure: MeasureId(0),
                day,
                amount: 1,
            },
            Effect::Distinct {
                measure: MeasureId(0),
                year: FiscalYear(2026),
                value: "v".into(),
            },
            Effect::Reset {
                measure: MeasureId(0),
                at,
                id: "k".into(),
                value: 3,
            },
            Effect::Stage {
                kpi: KpiId(0),
                day,
                stage: 0,
            },
        ];
        let mut ledger = Ledger::default();
        ledger.flows.insert((MeasureId(0), day), 5);
        ledger.levels.insert(
            (MeasureId(0), day),
            LevelDay {
                delta: 1,
                snapshot: Some(Snapshot {
                    at,
                    id: "k".into(),
                    value: 3,
                    after: 0,
                }),
                opening: Some(("k".into(), 3)),
            },
        );
        ledger.as_of.insert(AsOf::Measure(MeasureId(0)), at);
        let keys = Keys::of(effects);
        for agg in Aggregate::ALL {
            let t = agg.table();
            let rows = agg.rows(&plan, &keys, &ledger);
            assert_eq!(rows.len(), 1, "{}", t.name);
            for row in rows {
                assert_eq!(row.values.len(), t.columns().count(), "{}", t.name);
                for (v, c) in row.values.iter().zip(t.columns()) {
                    let fits = match c.kind {
                        Kind::Text => matches!(v, Value::Text(_)),
                        Kind::Int4 => matches!(v, Value::Int4(_)),
                        Kind::Int8 => matches!(v, Value::Int8(_)),
                        Kind::Sum => matches!(v, Value::Sum(_)),
                    };
                    assert!(fits, "{}.{}: {v:?}", t.name, c.name);
                }
            }
        }
    }
}
