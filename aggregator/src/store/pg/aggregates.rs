//! A batch's aggregate rows on PostgreSQL: locked in one key order before the fold
//! (missing ones created as zero placeholders), written back with absolute values after
//! it. The SQL is built from the shared table descriptions: columns travel as typed
//! arrays through `UNNEST`, sums as decimal text cast to NUMERIC.

use std::collections::HashSet;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Transaction};

use super::{PgStore, TxError};
use crate::ledger::Ledger;
use crate::store::tables::{Aggregate, Column, Dialect, Keys, Kind, TableRow, Value};

impl PgStore {
    /// Locks the aggregate rows of `keys` (creating zero placeholders) in key order and
    /// returns them as a partial ledger.
    pub(super) async fn lock(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        keys: &Keys,
    ) -> Result<Ledger, TxError> {
        let mut ledger = Ledger::default();
        // The rows of the keys with nothing in them: only their key columns are used.
        let nothing = Ledger::default();
        for agg in Aggregate::LOCKED {
            let rows = agg.rows(&self.plan, keys, &nothing);
            if rows.is_empty() {
                continue;
            }
            let table = agg.table();
            let keys_sql = table.key_list();
            let arrays = arrays(table.keys.iter());
            // Placeholders start at zero where a column cannot be NULL.
            let zeros = table.values.iter().filter(|c| !c.nullable);
            let zero_names: String = zeros.clone().map(|c| format!(", {}", c.name)).collect();
            let zero_values: String = zeros.map(|_| ", 0").collect();
            let sql = format!(
                "INSERT INTO {name} ({keys_sql}{zero_names}) \
                 SELECT k.*{zero_values} FROM UNNEST({arrays}) AS k({keys_sql}) ORDER BY {keys_sql} \
                 ON CONFLICT ({keys_sql}) DO NOTHING",
                name = table.name,
            );
            bind(sqlx::query(&sql), table.keys.iter(), &rows)
                .execute(&mut **tx)
                .await?;
            let sql = format!(
                "SELECT {select} FROM {name} WHERE ({keys_sql}) IN (SELECT * FROM UNNEST({arrays})) \
                 ORDER BY {keys_sql} FOR UPDATE OF {name}",
                select = table.select_list(Dialect::Postgres),
                name = table.name,
            );
            let locked = bind(sqlx::query(&sql), table.keys.iter(), &rows)
                .fetch_all(&mut **tx)
                .await?;
            // Distinct keys may share a row when a plan's stage id is unknown (""); compare
            // against the distinct rows asked for.
            let asked: HashSet<&[Value<'_>]> = rows.iter().map(|r| r.key(table)).collect();
            if locked.len() != asked.len() {
                return Err(TxError::Retry(
                    "an aggregate row was deleted while being locked".into(),
                ));
            }
            for r in &locked {
                agg.read(&self.ids, &self.plan, r, &mut ledger)?;
            }
        }
        Ok(ledger)
    }

    /// Writes the locked rows back with their absolute new values (deleting the rows that
    /// became empty), and the batch's `as_of` times.
    pub(super) async fn write_aggregates(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        keys: &Keys,
        ledger: &Ledger,
    ) -> Result<(), TxError> {
        for agg in Aggregate::ALL {
            let table = agg.table();
            let (live, empty): (Vec<TableRow<'_>>, Vec<TableRow<'_>>) = agg
                .rows(&self.plan, keys, ledger)
                .into_iter()
                .partition(|r| r.live);
            if !live.is_empty() {
                // In key order: as_of rows are not locked beforehand (GREATEST commutes),
                // and writers that meet on one must queue rather than deadlock.
                let sql = format!(
                    "INSERT INTO {name} ({columns}) SELECT * FROM UNNEST({arrays}) AS x({columns}) \
                     ORDER BY {keys_sql} ON CONFLICT ({keys_sql}) DO UPDATE SET {set}",
                    name = table.name,
                    columns = table.column_list(),
                    arrays = arrays(table.columns()),
                    keys_sql = table.key_list(),
                    set = table.update_set(Dialect::Postgres),
                );
                bind(sqlx::query(&sql), table.columns(), &live)
                    .execute(&mut **tx)
                    .await?;
            }
            if !empty.is_empty() {
                let sql = format!(
                    "DELETE FROM {name} WHERE ({keys_sql}) IN (SELECT * FROM UNNEST({arrays}))",
                    name = table.name,
                    keys_sql = table.key_list(),
                    arrays = arrays(table.keys.iter()),
                );
                bind(sqlx::query(&sql), table.keys.iter(), &empty)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }
}

/// `$1::text[], $2::int4[], …`: one typed array per column, sums as text cast to NUMERIC.
fn arrays<'c>(columns: impl Iterator<Item = &'c Column>) -> String {
    columns
        .enumerate()
        .map(|(i, c)| {
            let ty = match c.kind {
                Kind::Text => "text[]",
                Kind::Int4 => "int4[]",
                Kind::Int8 => "int8[]",
                Kind::Sum => "text[]::numeric[]",
            };
            format!("${}::{ty}", i + 1)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds the first columns of `rows` (those of `columns`, in order) as one array each.
fn bind<'q, 'c>(
    mut query: Query<'q, Postgres, PgArguments>,
    columns: impl Iterator<Item = &'c Column>,
    rows: &'q [TableRow<'_>],
) -> Query<'q, Postgres, PgArguments> {
    for (ix, c) in columns.enumerate() {
        let at = move |r: &'q TableRow<'_>| r.values.get(ix);
        query = match c.kind {
            Kind::Text => query.bind(
                rows.iter()
                    .map(|r| at(r).and_then(Value::text))
                    .collect::<Vec<_>>(),
            ),
            Kind::Int4 => query.bind(
                rows.iter()
                    .map(|r| at(r).and_then(Value::int4))
                    .collect::<Vec<_>>(),
            ),
            Kind::Int8 => query.bind(
                rows.iter()
                    .map(|r| at(r).and_then(Value::int8))
                    .collect::<Vec<_>>(),
            ),
            Kind::Sum => query.bind(
                rows.iter()
                    .map(|r| at(r).and_then(Value::sum))
                    .collect::<Vec<_>>(),
            ),
        };
    }
    query
}
