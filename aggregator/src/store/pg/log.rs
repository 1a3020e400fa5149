//! The event log on PostgreSQL: what a batch reads of it (its keys, its void targets,
//! its snapshots' days), how it logs its events (binary `COPY`) and keeps its rejected
//! events.

use std::collections::{BTreeSet, HashSet};

use mieruka_ingest::{Item, Position, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::generations::{key_hash, write_hashes, Current, Filter};
use super::{Lookup, TxError};
use crate::engine::{BatchLog, EventLog, LogEntry};
use crate::fiscal::Day;
use crate::plan::Plan;
use crate::store::rejected::RejectedItem;

/// A key of the event log: (`source`, `event_id`).
type LogKey<'a> = (&'a str, &'a str);

/// The columns of the log's unique key in the key index's order (migration 0011): what
/// a pass over the whole log pages by, in its `ORDER BY` and its `(…) > (…)` alike (the
/// values bound after the latter follow the same order).
pub(in crate::store) const KEY_ORDER: &str = "generation, event_id, source";

/// The columns [`logged_entry`] reads.
pub(in crate::store) const LOGGED: &str =
    "body, fingerprint, voided, event_id, source, type, occurred_at, data, voids";

impl BatchLog {
    /// The logged events and pending voids of the batch's keys and void targets; of the
    /// keys themselves, only the void targets and those a sealed generation may hold when
    /// `Optimistic` (see [`Lookup`]), and pending voids only of sources that have any. A
    /// key is looked up in the current generation of the log, and in every generation if
    /// the filter of the sealed ones may hold it (see [`super::generations`]).
    pub(super) async fn prefetch_keys(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        plan: &Plan,
        items: &[&Item],
        lookup: Lookup,
        current: Current,
        filter: &Filter,
    ) -> Result<(), TxError> {
        // The keys to look up in the log, and those to look up among pending voids; both
        // sorted, without repeats.
        let (mut logged, pending): (Vec<LogKey<'_>>, Vec<LogKey<'_>>) = match lookup {
            Lookup::Careful => {
                let keys = BatchLog::keys_needed(items);
                (keys.clone(), keys)
            }
            Lookup::Optimistic => optimistic_keys(tx, items).await?,
        };
        // The keys a sealed generation may hold are looked up in every generation.
        let mut sealed: Vec<LogKey<'_>> = Vec::new();
        if !filter.is_empty() {
            let may_hold = |&(s, i): &LogKey<'_>| filter.may_hold(key_hash(s, i));
            if lookup == Lookup::Optimistic {
                // The batch's own keys too: the current generation's index checks them
                // there, but nothing does in the sealed ones.
                let events = items.iter().filter_map(|i| i.outcome.as_ref().ok());
                sealed.extend(
                    events
                        .map(|e| (e.source.as_str(), e.id.as_str()))
                        .filter(may_hold),
                );
            }
            let (may, not): (Vec<LogKey<'_>>, Vec<LogKey<'_>>) =
                logged.into_iter().partition(may_hold);
            sealed.extend(may);
            sealed.sort_unstable();
            sealed.dedup();
            logged = not;
        }
        self.fetch_logged(tx, plan, &logged, &[current.generation])
            .await?;
        if !sealed.is_empty() {
            self.fetch_logged(tx, plan, &sealed, &current.all()).await?;
        }
        self.fetch_pending(tx, &pending).await
    }

    /// The logged events of `keys` (sorted by source) in `generations`.
    async fn fetch_logged(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        plan: &Plan,
        keys: &[LogKey<'_>],
        generations: &[i32],
    ) -> Result<(), TxError> {
        // One index scan per source (`event_id = ANY(…)`, the keys sorted): about half
        // the cost of joining an unnested list of pairs.
        for (source, ids) in by_source(keys) {
            let rows = sqlx::query(&format!(
                "SELECT {LOGGED} FROM event_log \
                 WHERE generation = ANY($3::int4[]) AND source = $1 AND event_id = ANY($2::text[])"
            ))
            .bind(source)
            .bind(&ids)
            .bind(generations)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                if let Some(entry) = logged_entry(plan, &r)? {
                    self.log.insert(entry);
                }
            }
        }
        Ok(())
    }

    /// The pending voids of `keys` (sorted by source).
    async fn fetch_pending(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        keys: &[LogKey<'_>],
    ) -> Result<(), TxError> {
        for (source, ids) in by_source(keys) {
            let rows = sqlx::query(
                "SELECT target_id FROM pending_voids \
                 WHERE source = $1 AND target_id = ANY($2::text[])",
            )
            .bind(source)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                self.log.add_pending_void(source, r.try_get(0)?);
            }
        }
        Ok(())
    }

    /// For each snapshot of the batch, the live level-moving events of its day. Called
    /// with the batch's level days locked: no writer can add or void such an event now.
    pub(super) async fn prefetch_days(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        plan: &Plan,
        items: &[&Item],
        level_types: &[String],
    ) -> Result<(), TxError> {
        let days: BTreeSet<i32> = items
            .iter()
            .filter_map(|i| i.outcome.as_ref().ok())
            .filter(|e| plan.is_snapshot[usize::from(e.type_id.0)])
            .map(|e| Day::of(e.occurred_at).0)
            .collect();
        if days.is_empty() || level_types.is_empty() {
            return Ok(());
        }
        let days: Vec<i32> = days.into_iter().collect();
        let rows = sqlx::query(&format!(
            "SELECT {LOGGED} FROM event_log \
             WHERE day = ANY($1::int4[]) AND moves_level AND NOT voided \
             AND type = ANY($2::text[])"
        ))
        .bind(&days)
        .bind(level_types)
        .fetch_all(&mut **tx)
        .await?;
        // The batch's own keys are in the overlay already, as they were before the batch
        // (the rows this transaction has just logged must not count twice).
        let own: HashSet<(&str, &str)> = BatchLog::keys_needed(items).into_iter().collect();
        for r in rows {
            if let Some(entry) = logged_entry(plan, &r)? {
                if !own.contains(&(entry.event.source.as_str(), entry.event.id.as_str())) {
                    self.add_fetched(entry);
                }
            }
        }
        Ok(())
    }

    /// Logs the batch's accepted events into the `current` generation with their key
    /// hashes, marks the events it voided, keeps its pending voids; returns the index
    /// bytes its keys add to the generation. An `Optimistic` batch that logs a key
    /// already logged fails with [`TxError::Logged`].
    pub(super) async fn write_pg(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        plan: &Plan,
        received_at: i64,
        lookup: Lookup,
        current: Current,
    ) -> Result<i64, TxError> {
        let mut entries = self.entries_to_write();
        // In key order: consecutive rows go to the same leaf of the log's key index.
        key_order(&mut entries);
        let mut added = 0;
        if !entries.is_empty() {
            copy_entries(tx, plan, &entries, received_at, lookup, current.generation).await?;
            let keys = entries
                .iter()
                .map(|e| (e.event.source.as_str(), e.event.id.as_str()));
            added = write_hashes(tx, current.generation, keys).await?;
        }
        // Events the batch logs and voids itself are logged voided already.
        let to_void = self.to_mark_voided();
        if !to_void.is_empty() {
            // Sorted by source: one statement per source, in every generation.
            let generations = current.all();
            for (source, ids) in by_source(&to_void) {
                sqlx::query(
                    "UPDATE event_log SET voided = TRUE \
                     WHERE generation = ANY($3::int4[]) AND source = $1 \
                     AND event_id = ANY($2::text[])",
                )
                .bind(source)
                .bind(&ids)
                .bind(&generations)
                .execute(&mut **tx)
                .await?;
            }
        }
        let pending: BTreeSet<&(String, String)> = self.new_pending.iter().collect();
        if !pending.is_empty() {
            let (s, t): (Vec<&str>, Vec<&str>) = pending
                .into_iter()
                .map(|(s, t)| (s.as_str(), t.as_str()))
                .unzip();
            sqlx::query(
                "INSERT INTO pending_voids (source, target_id) \
                 SELECT * FROM UNNEST($1::text[], $2::text[]) \
                 ON CONFLICT (source, target_id) DO NOTHING",
            )
            .bind(&s)
            .bind(&t)
            .execute(&mut **tx)
            .await?;
        }
        Ok(added)
    }
}

/// Keys sorted by source, as each source and its ids: one statement per source.
fn by_source<'k>(keys: &'k [LogKey<'k>]) -> impl Iterator<Item = (&'k str, Vec<&'k str>)> {
    keys.chunk_by(|a, b| a.0 == b.0).filter_map(|group| {
        let &(source, _) = group.first()?;
        Some((source, group.iter().map(|(_, id)| *id).collect()))
    })
}

/// The keys an `Optimistic` batch looks up (see [`Lookup`]): in the log, its voids and
/// their targets; among pending voids, its keys of the sources that have any.
async fn optimistic_keys<'i>(
    tx: &mut Transaction<'_, Postgres>,
    items: &'i [&'i Item],
) -> Result<(Vec<LogKey<'i>>, Vec<LogKey<'i>>), TxError> {
    let events = || items.iter().filter_map(|i| i.outcome.as_ref().ok());
    // A void's target, and the void itself: a void may be refused without being logged
    // (its target is a snapshot), so the primary key would not tell that it is a re-send.
    let targets: BTreeSet<(&str, &str)> = events()
        .filter_map(|e| Some((e.source.as_str(), e.voids.as_deref()?, e.id.as_str())))
        .flat_map(|(s, target, id)| [(s, target), (s, id)])
        .collect();
    // A batch comes from a few line systems: a short list beats hashing.
    let mut sources: Vec<&str> = Vec::new();
    for e in events() {
        if !sources.contains(&e.source.as_str()) {
            sources.push(&e.source);
        }
    }
    let with_pending: Vec<String> = if sources.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar(
            "SELECT s FROM UNNEST($1::text[]) AS s \
             WHERE EXISTS (SELECT 1 FROM pending_voids p WHERE p.source = s)",
        )
        .bind(&sources)
        .fetch_all(&mut **tx)
        .await?
    };
    let pending = if with_pending.is_empty() {
        Vec::new()
    } else {
        BatchLog::keys_needed(items)
            .into_iter()
            .filter(|(s, _)| with_pending.iter().any(|w| w == s))
            .collect()
    };
    Ok((targets.into_iter().collect(), pending))
}

/// Logs `entries` with one binary `COPY`.
async fn copy_entries(
    tx: &mut Transaction<'_, Postgres>,
    plan: &Plan,
    entries: &[&LogEntry],
    received_at: i64,
    lookup: Lookup,
    generation: i32,
) -> Result<(), TxError> {
    // COPY, not INSERT: PostgreSQL writes the rows page by page (the log is most of a
    // batch's work). The keys are new when they were looked up, as one consumer owns
    // each key (a racing writer makes COPY fail with 23505, and the retry sees its
    // rows); an optimistic batch learns of a logged key from the same failure.
    let mut rows = CopyBinary::with_capacity(entries.len() * 200);
    for e in entries {
        let ev = &e.event;
        rows.row(12);
        rows.text(&ev.source);
        rows.text(&ev.id);
        rows.int8(e.fingerprint);
        rows.text(&plan.schema.event_type(ev.type_id).name);
        rows.int8(ev.occurred_at.micros());
        rows.int4(Day::of(ev.occurred_at).0);
        rows.field_with(|out| ev.write_canonical_data_json(&plan.schema, out));
        match &ev.voids {
            Some(v) => rows.text(v),
            None => rows.null(),
        }
        rows.bool(e.voided);
        rows.bool(plan.moves_a_level(ev.type_id));
        rows.int8(received_at);
        rows.int4(generation);
    }
    let copied = async {
        let mut copy = tx
            .copy_in_raw(
                "COPY event_log (source, event_id, fingerprint, type, occurred_at, \
                 day, data, voids, voided, moves_level, received_at, generation) \
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        copy.send(rows.finish()).await?;
        copy.finish().await
    }
    .await;
    match copied {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(d))
            if lookup == Lookup::Optimistic && d.code().as_deref() == Some("23505") =>
        {
            Err(TxError::Logged)
        }
        Err(e) => Err(e.into()),
    }
}

/// A log row read back (the columns of [`LOGGED`]). Rows logged since migration 0003
/// keep the envelope in its columns and only `data` (and the void target) as text: the
/// canonical body is rebuilt from them; older rows have it whole.
pub(in crate::store) fn logged_entry(
    plan: &Plan,
    r: &PgRow,
) -> Result<Option<LogEntry>, sqlx::Error> {
    let body = logged_body(r)?;
    Ok(LogEntry::from_stored(
        plan,
        &body,
        r.try_get(1)?,
        r.try_get(2)?,
    ))
}

/// A log row's canonical body (the columns of [`LOGGED`]), as logged or rebuilt from
/// its envelope columns.
pub(super) fn logged_body(r: &PgRow) -> Result<String, sqlx::Error> {
    let body: Option<String> = r.try_get(0)?;
    Ok(match body {
        Some(b) => b,
        None => mieruka_ingest::event::canonical_body(
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            Timestamp::from_micros(r.try_get(6)?),
            r.try_get::<Option<&str>, _>(7)?.unwrap_or("{}"),
            r.try_get(8)?,
        ),
    })
}

/// Rows in COPY's binary format: no text to escape or parse on either side (the text
/// format's parsing was a tenth of PostgreSQL's time on the log).
struct CopyBinary(Vec<u8>);

impl CopyBinary {
    fn with_capacity(bytes: usize) -> Self {
        let mut out = Vec::with_capacity(bytes + 21);
        // Signature, flags (no OIDs), no header extension.
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        CopyBinary(out)
    }

    /// Starts a row of `fields` fields.
    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Fields are short (ids, a small JSON object); a length past i32 cannot be sent.
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    /// A field that `write` appends, its length filled in after.
    fn field_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.0.len();
        self.0.extend_from_slice(&0i32.to_be_bytes());
        write(&mut self.0);
        let len = i32::try_from(self.0.len() - at - 4).unwrap_or(i32::MAX);
        if let Some(slot) = self.0.get_mut(at..at + 4) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
    }

    fn text(&mut self, value: &str) {
        self.field(value.as_bytes());
    }

    fn int8(&mut self, value: i64) {
        self.field(&value.to_be_bytes());
    }

    fn int4(&mut self, value: i32) {
        self.field(&value.to_be_bytes());
    }

    fn bool(&mut self, value: bool) {
        self.field(&[u8::from(value)]);
    }

    fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// The rows and the trailer.
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

/// The `rejected` table's columns, as arrays for `UNNEST`.
#[derive(Default)]
struct RejectedColumns<'a> {
    source: Vec<&'a str>,
    position: Vec<String>,
    event_id: Vec<Option<&'a str>>,
    reason: Vec<&'a str>,
    field: Vec<Option<&'a str>>,
    /// Each rejection's full message: every problem of the event (`Rejection::full_message`).
    message: Vec<String>,
    raw: Vec<&'a str>,
    topic: Vec<Option<&'a str>>,
    partition: Vec<Option<i32>>,
    offset: Vec<Option<i64>>,
}

impl<'a> RejectedColumns<'a> {
    fn push(&mut self, item: &'a RejectedItem) {
        let r = &item.rejection;
        self.source.push(&item.source_label);
        self.position.push(item.position.to_string());
        self.event_id.push(item.shown_event_id());
        self.reason.push(r.reason.as_str());
        self.field.push(r.field.as_deref());
        self.message.push(r.full_message().into_owned());
        self.raw.push(&item.raw);
        let (topic, partition, offset) = match &item.position {
            Position::Offset {
                topic,
                partition,
                offset,
            } => (Some(topic.as_str()), Some(*partition), Some(*offset)),
            _ => (None, None, None),
        };
        self.topic.push(topic);
        self.partition.push(partition);
        self.offset.push(offset);
    }
}

/// Keeps the batch's rejected events, with their Kafka offsets when they came from Kafka.
pub(super) async fn write_rejected(
    tx: &mut Transaction<'_, Postgres>,
    rejected: &[RejectedItem],
    received_at: i64,
) -> Result<(), TxError> {
    if rejected.is_empty() {
        return Ok(());
    }
    let mut c = RejectedColumns::default();
    for item in rejected {
        c.push(item);
    }
    sqlx::query(
        "INSERT INTO rejected (received_at, source, position, event_id, reason, field, message, \
         raw, topic, kafka_partition, kafka_offset) \
         SELECT $11, * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::int4[], $10::int8[])",
    )
    .bind(&c.source)
    .bind(&c.position)
    .bind(&c.event_id)
    .bind(&c.reason)
    .bind(&c.field)
    .bind(&c.message)
    .bind(&c.raw)
    .bind(&c.topic)
    .bind(&c.partition)
    .bind(&c.offset)
    .bind(received_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sources a batch is grouped by before [`key_order`] falls back to one sort.
const FEW_SOURCES: usize = 16;

/// Sorts `entries` by key (source, then event id) in about linear time for the usual
/// batch: a few sources, interleaved, each sending its ids in increasing order. Groups the
/// entries by source (a counting sort on the source's rank), then sorts a source's ids
/// only if they are out of order. Sorting them all at once was most of the cost of
/// writing the log on the client side.
fn key_order(entries: &mut Vec<&LogEntry>) {
    let mut sources: Vec<&str> = Vec::new();
    let mut of: Vec<u8> = Vec::with_capacity(entries.len());
    for e in entries.iter() {
        let source = e.event.source.as_str();
        // Runs of one source are usual: try the last one met first.
        let at = match sources.iter().rposition(|s| *s == source) {
            Some(at) => at,
            None if sources.len() < FEW_SOURCES => {
                sources.push(source);
                sources.len() - 1
            }
            None => {
                entries.sort_unstable_by(|a, b| {
                    (a.event.source.as_str(), a.event.id.as_str())
                        .cmp(&(b.event.source.as_str(), b.event.id.as_str()))
                });
                return;
            }
        };
        of.push(at as u8);
    }
    // Where each source's entries start, sources in order.
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_unstable_by_key(|&i| sources[i]);
    let mut counts = vec![0usize; sources.len()];
    for &i in &of {
        counts[usize::from(i)] += 1;
    }
    let mut starts = vec![0usize; sources.len()];
    let mut next = 0;
    for &i in &order {
        starts[i] = next;
        next += counts[i];
    }
    let mut grouped: Vec<&LogEntry> = entries.clone();
    let mut fill = starts.clone();
    for (e, &i) in entries.iter().zip(&of) {
        let slot = &mut fill[usize::from(i)];
        grouped[*slot] = e;
        *slot += 1;
    }
    for &i in &order {
        let group = &mut grouped[starts[i]..starts[i] + counts[i]];
        if !group.is_sorted_by(|a, b| a.event.id <= b.event.id) {
            group.sort_unstable_by(|a, b| a.event.id.cmp(&b.event.id));
        }
    }
    *entries = grouped;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A field written in place carries its length like one copied in, whatever its
    /// size, and the fields after it start where they should.
    #[test]
    fn a_field_written_in_place_is_the_field_copied_in() {
        for text in [
            "",
            "{}",
            r#"{"count":12,"channel":"konbini"}"#,
            &"x".repeat(70_000),
        ] {
            let mut copied = CopyBinary::with_capacity(0);
            copied.row(2);
            copied.text(text);
            copied.int4(7);
            let mut written = CopyBinary::with_capacity(0);
            written.row(2);
            written.field_with(|out| out.extend_from_slice(text.as_bytes()));
            written.int4(7);
            assert_eq!(written.finish(), copied.finish(), "{} bytes", text.len());
        }
    }

    fn entry(source: &str, id: &str) -> LogEntry {
        let body = format!(
            r#"{{"event_id":"{id}","source":"{source}","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{{"channel":"konbini","certificate":"juminhyo","count":1}}}}"#
        );
        let plan = Plan::ome().unwrap_or_else(|e| panic!("the Ome plan: {e:?}"));
        let event = mieruka_ingest::decode_logged(&plan.schema, body.as_bytes())
            .unwrap_or_else(|e| panic!("{body}: {e:?}"));
        LogEntry {
            fingerprint: 0,
            event: Arc::new(event),
            voided: false,
        }
    }

    fn keys(entries: &[&LogEntry]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|e| (e.event.source.to_string(), e.event.id.to_string()))
            .collect()
    }

    /// The log is written in key order whatever the batch's: interleaved sources with
    /// ids in order, ids out of order, and more sources than are grouped.
    #[test]
    fn entries_are_put_in_key_order() {
        let mut made = Vec::new();
        for n in 0..300u32 {
            // Two sources interleaved with increasing ids, one with ids in no order.
            made.push(entry(
                ["konbini", "portal"][(n % 2) as usize],
                &format!("k-{n:04}"),
            ));
            made.push(entry("hr", &format!("h-{:04}", (n * 7919) % 300)));
        }
        for n in 0..(FEW_SOURCES as u32 + 3) {
            made.push(entry(&format!("s{}", 40 - n), &format!("x-{n}")));
        }
        for (label, take) in [("few sources", 600), ("many sources", made.len())] {
            let mut entries: Vec<&LogEntry> = made.iter().take(take).collect();
            let mut expected = keys(&entries);
            expected.sort();
            key_order(&mut entries);
            assert_eq!(keys(&entries), expected, "{label}");
        }
    }
}
