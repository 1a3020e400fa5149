//! The measure fingerprints a store keeps (see `plan::fingerprint`): adopted by a fresh
//! store, compared at every open, checked by every batch, rewritten by a replay.
//!
//! Both dialects read and write the same two tables; only placeholders differ.

use sqlx::{Database, Executor, QueryBuilder};

use crate::plan::{fingerprints, plan_fingerprint, Fingerprints, Plan, PlanDrift};

/// Whether opening a store compares its fingerprints with the plan's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanCheck {
    /// Refuse a plan whose measures changed; a fresh store adopts the plan's (every role).
    Refuse,
    /// Open whatever the fingerprints say (`mieruka replay`, which rebuilds).
    Ignore,
}

/// The plan's fingerprints and their digest, as a store holds on to them.
#[derive(Clone, Debug)]
pub(crate) struct PlanPrints {
    pub each: Fingerprints,
    pub digest: String,
}

impl PlanPrints {
    pub fn of(plan: &Plan) -> Self {
        let each = fingerprints(plan);
        let digest = plan_fingerprint(&each);
        PlanPrints { each, digest }
    }
}

/// The stored fingerprints, by key.
pub(crate) async fn stored<'c, DB, E>(conn: E) -> Result<Fingerprints, sqlx::Error>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key, fingerprint FROM measure_fingerprints")
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// What an open decides: the drift of the plan from `stored`, if any. An empty `stored`
/// (a fresh store, or one from before fingerprints) has no drift: it adopts the plan's.
pub(crate) fn drift(stored: &Fingerprints, plan: &PlanPrints) -> Option<PlanDrift> {
    if stored.is_empty() {
        return None;
    }
    PlanDrift::between(stored, &plan.each)
}

/// The statements that record `prints` as the store's (after the stored ones are
/// deleted): the measures', then the digest.
pub(crate) fn inserts<DB: Database>(prints: &PlanPrints) -> [QueryBuilder<'_, DB>; 2]
where
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut each = QueryBuilder::new("INSERT INTO measure_fingerprints (key, fingerprint) ");
    each.push_values(&prints.each, |mut b, (k, v)| {
        b.push_bind(k.as_str()).push_bind(v.as_str());
    });
    let mut digest =
        QueryBuilder::new("INSERT INTO plan_fingerprint (id, fingerprint) VALUES (1, ");
    digest.push_bind(prints.digest.as_str());
    digest.push(")");
    [each, digest]
}

/// What an open finds of the stored fingerprints.
pub(crate) enum Verdict {
    /// They are the plan's.
    Same,
    /// None are stored (a fresh store): record the plan's.
    Adopt,
    /// They differ: the drift's message.
    Drift(String),
}

/// Compares the stored fingerprints with the plan's, in `conn`'s transaction.
pub(crate) async fn compare<DB>(
    conn: &mut DB::Connection,
    prints: &PlanPrints,
) -> Result<Verdict, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let stored = stored(&mut *conn).await?;
    Ok(match drift(&stored, prints) {
        Some(d) => Verdict::Drift(d.to_string()),
        None if stored.is_empty() => Verdict::Adopt,
        None => Verdict::Same,
    })
}

/// What a batch's fence reads: `None` when the store's digest (read by `select`, which
/// may lock it) is this plan's or absent, else the drift's message.
pub(crate) async fn fence<DB>(
    conn: &mut DB::Connection,
    prints: &PlanPrints,
    select: &str,
) -> Result<Option<String>, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let digest: Option<(String,)> = sqlx::query_as(select).fetch_optional(&mut *conn).await?;
    match digest {
        Some((d,)) if d != prints.digest => {
            let each = stored(&mut *conn).await?;
            Ok(Some(
                PlanDrift::between(&each, &prints.each)
                    .unwrap_or_default()
                    .to_string(),
            ))
        }
        _ => Ok(None),
    }
}
