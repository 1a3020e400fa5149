//! The fiscal-year close records (see [`crate::close`]): `closed_years`, their frozen
//! `final_figures` and the append-only `year_close_log`, read and written alike by both
//! dialects. The SQL is the same text for both (`$N` placeholders, which SQLite reads
//! too); the one difference, where a void's target lives in a log row, is a parameter.
//!
//! What each dialect adds is the lock the close is taken under (`sqlite.rs`, `pg.rs`):
//! the one every batch's write takes, so that the close instant falls between batches.

use std::collections::BTreeMap;

use mieruka_ingest::Timestamp;

use crate::close::{
    Change, CloseRequest, ClosedYear, Closes, Frozen, LateEvent, LateEvents, LateQuery,
};
use crate::figures::{figures, Figure};
use crate::fiscal::FiscalYear;
use crate::ledger::Ledger;
use crate::plan::Plan;

/// The year's close, frozen from `ledger`: the figures of the year (which has ended at
/// `req.now`, so they are the whole year's whatever `now` is), and one change per KPI.
pub(crate) fn freeze(
    plan: &Plan,
    ledger: &Ledger,
    req: &CloseRequest,
    closed_at: Timestamp,
    plan_fingerprint: &str,
) -> (ClosedYear, Vec<Change>) {
    let finals: Vec<Figure> = year_figures(plan, ledger, req.year, req.now)
        .into_iter()
        .map(|f| {
            let (k, y) = (f.kpi, f.year);
            Frozen::of(&f).thaw(k, y, closed_at)
        })
        .collect();
    let changes = finals
        .iter()
        .map(|f| Change {
            kpi: plan.kpis[f.kpi].id.clone(),
            final_value: f.value,
            live_value: f.value,
        })
        .collect();
    let close = ClosedYear {
        year: req.year,
        closed_at,
        operator: req.operator.clone(),
        note: req.note.clone(),
        plan_fingerprint: plan_fingerprint.to_owned(),
        finals,
    };
    (close, changes)
}

/// The live figures of one year at `now`.
pub(crate) fn year_figures(
    plan: &Plan,
    ledger: &Ledger,
    year: FiscalYear,
    now: Timestamp,
) -> Vec<Figure> {
    figures(plan, ledger, now)
        .into_iter()
        .filter(|f| f.year == year)
        .collect()
}

/// What a reopen changes: per KPI, the final figure dropped and the live value.
pub(crate) fn reopen_changes(plan: &Plan, dropped: &ClosedYear, live: &[Figure]) -> Vec<Change> {
    live.iter()
        .map(|l| Change {
            kpi: plan.kpis[l.kpi].id.clone(),
            final_value: dropped
                .finals
                .iter()
                .find(|f| f.kpi == l.kpi)
                .and_then(|f| f.value),
            live_value: l.value,
        })
        .collect()
}

/// Where a void's target lives in a log row: SQLite keeps the canonical body; PostgreSQL
/// a `voids` column (rows since its migration 0003) or the body (older rows).
pub(crate) const VOIDS_SQLITE: &str = "json_extract(e.body, '$.voids')";
/// See [`VOIDS_SQLITE`].
pub(crate) const VOIDS_PG: &str = "COALESCE(e.voids, e.body::json ->> 'voids')";

/// The `WHERE` of the late events: received after the close, and either an event of the
/// KPI's types that occurred in the window, or a void whose original is one.
/// `generations` narrows the original's lookup to the log's generations (PostgreSQL,
/// whose key index leads with the generation), or is empty.
fn late_where(voids: &str, generations: &str) -> String {
    let o_voids = voids.replace("e.", "o.");
    format!(
        "e.received_at > $1 AND ( \
           ({voids} IS NULL AND e.occurred_at >= $2 AND e.occurred_at < $3 \
              AND e.type IN (SELECT value FROM json_each($4))) \
           OR ({voids} IS NOT NULL AND EXISTS (SELECT 1 FROM event_log o \
              WHERE {generations}o.source = e.source AND o.event_id = {voids} AND {o_voids} IS NULL \
                AND o.occurred_at >= $2 AND o.occurred_at < $3 \
                AND o.type IN (SELECT value FROM json_each($4)))))"
    )
}

macro_rules! dialect {
    ($module:ident, $conn:ty, $voids:expr, $json_each:expr, $generations:expr) => {
        /// The close records in this dialect.
        pub(crate) mod $module {
            use super::*;
            use sqlx::Row;

            /// Every closed year with its frozen figures (KPIs the plan no longer has are
            /// left out).
            pub(crate) async fn read(conn: &mut $conn, plan: &Plan) -> Result<Closes, sqlx::Error> {
                let years = sqlx::query(
                    "SELECT fiscal_year, closed_at, operator, note, plan_fingerprint FROM closed_years",
                )
                .fetch_all(&mut *conn)
                .await?;
                let mut out = BTreeMap::new();
                for r in &years {
                    let year = FiscalYear(r.try_get::<i32, _>(0)?);
                    out.insert(
                        year,
                        ClosedYear {
                            year,
                            closed_at: Timestamp::from_micros(r.try_get(1)?),
                            operator: r.try_get(2)?,
                            note: r.try_get(3)?,
                            plan_fingerprint: r.try_get(4)?,
                            finals: Vec::new(),
                        },
                    );
                }
                let rows = sqlx::query(
                    "SELECT fiscal_year, kpi, figure FROM final_figures ORDER BY fiscal_year, kpi",
                )
                .fetch_all(&mut *conn)
                .await?;
                for r in &rows {
                    let year = FiscalYear(r.try_get::<i32, _>(0)?);
                    let id: String = r.try_get(1)?;
                    let text: String = r.try_get(2)?;
                    let (Some(close), Some(k)) = (out.get_mut(&year), plan.kpi_id(&id)) else {
                        continue;
                    };
                    let frozen: Frozen = serde_json::from_str(&text).map_err(|e| {
                        sqlx::Error::Decode(
                            format!("final_figures row FY{year} {id}: {e}").into(),
                        )
                    })?;
                    close.finals.push(frozen.thaw(k, year, close.closed_at));
                }
                Ok(Closes { years: out })
            }

            /// Records `close` and its log line.
            pub(crate) async fn insert(
                conn: &mut $conn,
                plan: &Plan,
                close: &ClosedYear,
                changes: &[Change],
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO closed_years (fiscal_year, closed_at, operator, note, plan_fingerprint) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(close.year.0)
                .bind(close.closed_at.micros())
                .bind(&close.operator)
                .bind(&close.note)
                .bind(&close.plan_fingerprint)
                .execute(&mut *conn)
                .await?;
                for f in &close.finals {
                    let figure = serde_json::to_string(&Frozen::of(f))
                        .map_err(|e| sqlx::Error::Encode(e.into()))?;
                    sqlx::query(
                        "INSERT INTO final_figures (fiscal_year, kpi, value, figure) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(close.year.0)
                    .bind(plan.kpis[f.kpi].id.as_str())
                    .bind(f.value.filter(|v| v.is_finite()))
                    .bind(figure)
                    .execute(&mut *conn)
                    .await?;
                }
                log(conn, close.year, "close", close.closed_at, &close.operator, &close.note, changes).await
            }

            /// Removes the close of `year` and logs the reopen.
            pub(crate) async fn delete(
                conn: &mut $conn,
                req: &CloseRequest,
                at: Timestamp,
                changes: &[Change],
            ) -> Result<(), sqlx::Error> {
                for table in ["final_figures", "closed_years"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE fiscal_year = $1"))
                        .bind(req.year.0)
                        .execute(&mut *conn)
                        .await?;
                }
                log(conn, req.year, "reopen", at, &req.operator, &req.note, changes).await
            }

            async fn log(
                conn: &mut $conn,
                year: FiscalYear,
                action: &str,
                at: Timestamp,
                operator: &str,
                note: &str,
                changes: &[Change],
            ) -> Result<(), sqlx::Error> {
                let changed =
                    serde_json::to_string(changes).map_err(|e| sqlx::Error::Encode(e.into()))?;
                sqlx::query(
                    "INSERT INTO year_close_log (fiscal_year, action, at, operator, note, changed) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(year.0)
                .bind(action)
                .bind(at.micros())
                .bind(operator)
                .bind(note)
                .bind(changed)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// The events and voids of `q` that arrived after the close: how many, and
            /// the first `q.limit` by arrival.
            pub(crate) async fn late(
                conn: &mut $conn,
                q: &LateQuery<'_>,
            ) -> Result<LateEvents, sqlx::Error> {
                let voids: &str = $voids;
                let filter = late_where(voids, $generations).replace("SELECT value FROM json_each($4)", $json_each);
                let types = serde_json::to_string(q.types).unwrap_or_else(|_| "[]".into());
                let count = format!("SELECT count(*) FROM event_log e WHERE {filter}");
                let total: i64 = sqlx::query_scalar(&count)
                    .bind(q.received_after.micros())
                    .bind(q.from.micros())
                    .bind(q.before.micros())
                    .bind(&types)
                    .fetch_one(&mut *conn)
                    .await?;
                let list = format!(
                    "SELECT e.source, e.event_id, e.type, e.occurred_at, e.received_at, {voids} \
                     FROM event_log e WHERE {filter} \
                     ORDER BY e.received_at, e.source, e.event_id LIMIT $5"
                );
                let rows = sqlx::query(&list)
                    .bind(q.received_after.micros())
                    .bind(q.from.micros())
                    .bind(q.before.micros())
                    .bind(&types)
                    .bind(q.limit)
                    .fetch_all(&mut *conn)
                    .await?;
                let mut listed = Vec::with_capacity(rows.len());
                for r in &rows {
                    listed.push(LateEvent {
                        source: r.try_get(0)?,
                        event_id: r.try_get(1)?,
                        event_type: r.try_get(2)?,
                        occurred_at: Timestamp::from_micros(r.try_get(3)?).to_string(),
                        received_at: Timestamp::from_micros(r.try_get(4)?).to_string(),
                        voids: r.try_get(5)?,
                    });
                }
                Ok(LateEvents { total, listed })
            }
        }
    };
}

dialect!(
    sqlite,
    sqlx::SqliteConnection,
    VOIDS_SQLITE,
    "SELECT value FROM json_each($4)",
    ""
);
dialect!(
    pg,
    sqlx::PgConnection,
    VOIDS_PG,
    "SELECT json_array_elements_text($4::json)",
    "o.generation = ANY (ARRAY(SELECT generate_series(0, current) FROM log_generation)) AND "
);
