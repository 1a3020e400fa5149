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
