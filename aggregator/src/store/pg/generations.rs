//! The event log's generations on PostgreSQL (migration 0010).
//!
//! With event ids in no order (UUIDs), each insert into a key index over every logged
//! event lands on a random page of it; once that index outgrows PostgreSQL's buffers,
//! PostgreSQL spends most of its time moving its pages in and out of them, and writing
//! whole pages to the WAL after each checkpoint. So the log's unique key is
//! (`generation`, `event_id`, `source`), and a batch logs into the current generation
//! only: its part of the index is small ([`SEAL_AT`]) and stays in the buffers. (The id
//! comes before the source since migration 0011: the index's comparisons then end at
//! the column that tells keys apart.)
//!
//! A key stays unique across generations, exactly:
//! - in the current generation, by the index: a batch that logs a key logged there
//!   fails its `COPY` and runs again looking its keys up, as before generations;
//! - in the sealed generations, by a [`Filter`] of their keys' hashes, which each
//!   aggregator fills from `log_key_hashes` (the hashes every batch writes beside its
//!   rows, 8 bytes per key): a key the filter may hold is looked up in every generation
//!   before the batch decides anything, and a key it cannot hold is in none of them.
//!
//! Every batch holds a shared advisory lock ([`LOCK`]) from the start of its
//! transaction, and reads the current generation under it; the batch that fills the
//! generation seals it after its commit, taking that lock exclusively, so no batch is
//! logging into a generation when it is sealed, and every batch after the seal finds
//! the sealed generation's hashes committed. PostgreSQL's lock queue is fair: the seal
//! waits for the batches in flight, and the batches that come after wait for the seal.
//!
//! Memory stays flat in the number of events: the filter is a fixed 2^[`FILTER_BITS`]
//! bits (32 MiB, allocated when the first generation is sealed), in blocks of one cache
//! line. Its false positives cost a lookup, never a wrong decision: about 1 in 2,000 at
//! 10 million sealed keys, and 1 in 10 at 50 million (the unit tests measure both).

use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::{RwLock, RwLockReadGuard};

use super::{PgError, TxError, KEY_ORDER};

/// The advisory lock (shared by batches, exclusive by a seal): "mieruka log generation".
const LOCK: i64 = 0x6d69_6572_6c67_656e;

/// A generation is sealed once the keys logged in it take this much of the key index
/// (estimated as the keys' bytes plus [`ENTRY_OVERHEAD`] each): 8 MiB, which with
/// pages two thirds full (random inserts) is about 12 MiB of index, well inside
/// PostgreSQL's default 128 MiB of buffers; about 120,000 UUID keys. Measured against
/// 16 and 32 MiB with the Kafka bench's `--key-experiment` (README): the fewer pages a
/// generation's inserts touch, the fewer whole pages go to the WAL after a checkpoint.
/// Smaller generations make more of them for a void's lookup to visit.
pub(crate) const SEAL_AT: i64 = 8 << 20;

/// An index entry's bytes beyond its key's: tuple header, generation, line pointer,
/// lengths and alignment.
const ENTRY_OVERHEAD: i64 = 24;

/// Keys read per statement when the log logged before migration 0010 is hashed.
const HASH_PAGE: i64 = 100_000;

/// The filter's size in bits: 2^28 (32 MiB).
const FILTER_BITS: u32 = 28;
/// Bits set per key.
const FILTER_HASHES: u32 = 6;

/// The 64-bit hash of a log key that `log_key_hashes` stores and the [`Filter`] holds.
/// Stored: changing it needs a migration that hashes every key again.
pub(crate) fn key_hash(source: &str, id: &str) -> u64 {
    const M: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = ((source.len() as u64) << 32 | id.len() as u64) ^ 0x243f_6a88_85a3_08d3;
    for part in [source.as_bytes(), id.as_bytes()] {
        let mut words = part.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            h = (h ^ u64::from_le_bytes(b)).wrapping_mul(M).rotate_left(29);
        }
        let rest = words.remainder();
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(b) ^ 0xff)
            .wrapping_mul(M)
            .rotate_left(29);
    }
    // splitmix64's finalizer: every bit of the key moves every bit of the hash.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A bloom filter of the keys of the sealed generations.
#[derive(Default)]
pub(crate) struct Filter {
    /// Empty until a generation is sealed.
    bits: Vec<u64>,
    /// The generations below this one are in the filter.
    covered: i32,
}

impl Filter {
    /// The bits of a key: [`FILTER_HASHES`] bits in one 512-bit block (one cache line,
    /// so a lookup costs one miss rather than one per bit), as word index and mask.
    fn positions(hash: u64) -> impl Iterator<Item = (usize, u64)> {
        let block = (hash >> (64 - (FILTER_BITS - 9))) as usize;
        // The other bits make the positions in the block (Kirsch and Mitzenmacher).
        let (a, b) = (hash as u32, (hash >> 23) as u32 | 1);
        (0..FILTER_HASHES).map(move |i| {
            let bit = (a.wrapping_add(i.wrapping_mul(b)) & 511) as usize;
            (block * 8 + bit / 64, 1u64 << (bit % 64))
        })
    }

    fn insert(&mut self, hash: u64) {
        if self.bits.is_empty() {
            self.bits = vec![0; 1 << (FILTER_BITS - 6)];
        }
        for (word, mask) in Self::positions(hash) {
            self.bits[word] |= mask;
        }
    }

    /// Whether a sealed generation may hold the key of `hash` (false: none does).
    pub(crate) fn may_hold(&self, hash: u64) -> bool {
        !self.bits.is_empty()
            && Self::positions(hash).all(|(word, mask)| self.bits[word] & mask != 0)
    }

    /// Whether no generation is sealed (nothing to look up).
    pub(crate) fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Whether the filter holds every generation below `current`.
    fn covers(&self, current: i32) -> bool {
        self.covered >= current
    }

    /// Adds the hashes of the generations from the last covered one up to `current`
    /// (sealed, so no batch adds to them any more).
    async fn fill(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        current: i32,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT hashes FROM log_key_hashes WHERE generation >= $1 AND generation < $2",
        )
        .bind(self.covered)
        .bind(current)
        .fetch_all(&mut **tx)
        .await?;
        for hashes in rows {
            for h in hashes.chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(h);
                self.insert(u64::from_be_bytes(b));
            }
        }
        self.covered = current;
        Ok(())
    }
}

/// The generation a batch logs into, as it read it holding the shared lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Current {
    pub(crate) generation: i32,
    /// The index bytes its keys take so far (estimated, see [`SEAL_AT`]).
    pub(crate) filled: i64,
}

impl Current {
    /// Every generation, the current one included.
    pub(crate) fn all(&self) -> Vec<i32> {
        (0..=self.generation).collect()
    }
}

/// Takes the shared lock and reads the current generation. Called first in a batch's
/// transaction, so a batch waiting behind a seal holds nothing.
pub(crate) async fn enter(tx: &mut Transaction<'_, Postgres>) -> Result<Current, TxError> {
    // Two statements: a statement reads as of its start (READ COMMITTED), so one that
    // waited for the lock behind a seal would still see the generation before it.
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(LOCK)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query(
        "SELECT g.current, g.hashed, \
           (SELECT COALESCE(sum(h.key_bytes + $1 * h.keys), 0)::int8 \
              FROM log_key_hashes h WHERE h.generation = g.current) \
         FROM log_generation g WHERE g.id = 1",
    )
    .bind(ENTRY_OVERHEAD)
    .fetch_one(&mut **tx)
    .await?;
    if !row.try_get::<bool, _>(1)? {
        return Err(TxError::Fail(PgError::Inconsistent(
            "the event log logged before generations is not hashed yet: \
             open the store with this version to hash it"
                .into(),
        )));
    }
    Ok(Current {
        generation: row.try_get(0)?,
        filled: row.try_get(2)?,
    })
}

/// The filter in `lock`, holding every generation below `current` (filled from the
/// hashes in the batch's transaction `tx` if it lags behind a seal).
pub(crate) async fn covering<'f>(
    lock: &'f RwLock<Filter>,
    tx: &mut Transaction<'_, Postgres>,
    current: Current,
) -> Result<RwLockReadGuard<'f, Filter>, sqlx::Error> {
    let filter = lock.read().await;
    if filter.covers(current.generation) {
        return Ok(filter);
    }
    drop(filter);
    let mut filter = lock.write().await;
    if !filter.covers(current.generation) {
        filter.fill(tx, current.generation).await?;
    }
    Ok(filter.downgrade())
}

/// Keeps the hashes of the keys a batch logged into `generation`, and returns the index
/// bytes they add.
pub(crate) async fn write_hashes<'k>(
    tx: &mut Transaction<'_, Postgres>,
    generation: i32,
    keys: impl ExactSizeIterator<Item = (&'k str, &'k str)>,
) -> Result<i64, sqlx::Error> {
    let n = keys.len();
    if n == 0 {
        return Ok(0);
    }
    let mut hashes = Vec::with_capacity(n * 8);
    let mut key_bytes = 0i64;
    for (source, id) in keys {
        hashes.extend_from_slice(&key_hash(source, id).to_be_bytes());
        key_bytes += (source.len() + id.len()) as i64;
    }
    sqlx::query(
        "INSERT INTO log_key_hashes (generation, keys, key_bytes, hashes) VALUES ($1, $2, $3, $4)",
    )
    .bind(generation)
    .bind(i32::try_from(n).unwrap_or(i32::MAX))
    .bind(key_bytes)
    .bind(hashes)
    .execute(&mut **tx)
    .await?;
    Ok(key_bytes + ENTRY_OVERHEAD * n as i64)
}

/// Seals `generation` if it is still the current one and is full: batches log into the
/// next one from then on. Waits for the batches logging into it to commit.
pub(crate) async fn seal(
    pool: &PgPool,
    generation: i32,
    seal_at: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    let sealed = sqlx::query(
        "UPDATE log_generation SET current = current + 1 \
         WHERE id = 1 AND current = $1 AND (SELECT COALESCE(sum(key_bytes + $2 * keys), 0) \
           FROM log_key_hashes WHERE generation = $1) >= $3",
    )
    .bind(generation)
    .bind(ENTRY_OVERHEAD)
    .bind(seal_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    if sealed {
        tracing::info!(generation, "Sealed a generation of the event log.");
    }
    Ok(sealed)
}

/// Hashes the keys of a log logged before migration 0010 (its generation 0), once, in
/// one transaction holding the lock exclusively (batches wait for it). Logs its
/// progress: 3.5 s for a million keys on a 2-core machine.
pub(crate) async fn hash_old_log(pool: &PgPool) -> Result<(), sqlx::Error> {
    hash_old_log_in_pages(pool, HASH_PAGE).await
}

/// [`hash_old_log`], reading `page` keys per statement.
async fn hash_old_log_in_pages(pool: &PgPool, page: i64) -> Result<(), sqlx::Error> {
    let hashed: bool = sqlx::query_scalar("SELECT hashed FROM log_generation WHERE id = 1")
        .fetch_one(pool)
        .await?;
    if hashed {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    let hashed: bool = sqlx::query_scalar("SELECT hashed FROM log_generation WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    if hashed {
        return tx.commit().await;
    }
    tracing::info!("Hashing the keys of the event log logged before generations (once).");
    let mut after: Option<(String, String)> = None;
    let mut total = 0usize;
    loop {
        // Pages in the order of the key index, from the last key of the page before.
        let (source, id) = after
            .as_ref()
            .map_or(("", ""), |(s, i)| (s.as_str(), i.as_str()));
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT source, event_id FROM event_log \
             WHERE generation = 0 AND ({KEY_ORDER}) > (0, $1, $2) \
             ORDER BY {KEY_ORDER} LIMIT $3",
        ))
        .bind(id)
        .bind(source)
        .bind(page)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last().cloned() else {
            break;
        };
        total += rows.len();
        write_hashes(
            &mut tx,
            0,
            rows.iter().map(|(s, i)| (s.as_str(), i.as_str())),
        )
        .await?;
        tracing::info!(keys = total, "Hashed keys of the event log.");
        after = Some(last);
    }
    sqlx::query("UPDATE log_generation SET hashed = TRUE WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use mieruka_ingest::{item, Position, Status};
    use mieruka_testkit::pg::TestDb;

    use super::*;
    use crate::store::PgStore;
    use crate::Plan;

    /// A batch that waits for a seal in progress logs into the generation after it, not
    /// into the sealed one (whose keys the other stores' filters may have read already).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_waits_for_a_seal_logs_into_the_next_generation() {
        let db = TestDb::create("mieruka_test").await.unwrap();
        let plan = Arc::new(Plan::ome().unwrap());
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let pool = store.pool.clone();
        // A seal in progress: the lock held exclusively, the generation moved, not
        // committed yet.
        let mut sealing = pool.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK)
            .execute(&mut *sealing)
            .await
            .unwrap();
        sqlx::query("UPDATE log_generation SET current = 1")
            .execute(&mut *sealing)
            .await
            .unwrap();
        let raw = r#"{"event_id":"k-1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","count":1}}"#;
        let batch = vec![item(
            &plan.schema,
            raw.as_bytes(),
            Position::Index(0),
            "test",
        )];
        let submitted = tokio::spawn(async move { store.submit_batch(batch).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !submitted.is_finished(),
            "the batch did not wait for the seal"
        );
        sealing.commit().await.unwrap();
        let statuses = submitted.await.unwrap().unwrap();
        assert_eq!(statuses, [Status::Accepted]);
        let generations: Vec<i32> = sqlx::query_scalar("SELECT generation FROM event_log")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(generations, [1]);
    }

    /// The pass over a log logged before generations reads it page by page from the
    /// last key of the page before: with pages of 4 keys, and one event id in several
    /// sources (so pages end between the sources of one id), every key is hashed once.
    #[tokio::test]
    async fn the_old_log_is_hashed_page_by_page_every_key_once() {
        let db = TestDb::create("mieruka_test").await.unwrap();
        let plan = Arc::new(Plan::ome().unwrap());
        let store = PgStore::open(db.url(), plan.clone()).await.unwrap();
        let pool = store.pool.clone();
        let mut keys = Vec::new();
        for n in 0..9 {
            for source in ["card", "konbini", "portal"].iter().take(1 + n % 3) {
                keys.push((source.to_string(), format!("e-{n}")));
            }
        }
        assert_eq!(keys.len(), 18);
        for (source, id) in &keys {
            sqlx::query(
                "INSERT INTO event_log (generation, source, event_id, fingerprint, type, \
                 occurred_at, day, data, voided, moves_level, received_at) \
                 VALUES (0, $1, $2, 0, 'paper.purchased', 0, 0, '{}', FALSE, FALSE, 0)",
            )
            .bind(source)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE log_generation SET current = 1, hashed = FALSE")
            .execute(&pool)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), hash_old_log_in_pages(&pool, 4))
            .await
            .expect("the pass ends")
            .unwrap();
        let pages: Vec<(i32, i32, Vec<u8>)> =
            sqlx::query_as("SELECT generation, keys, hashes FROM log_key_hashes")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(pages.len(), 5, "18 keys in pages of 4");
        let mut hashed: Vec<u64> = pages
            .iter()
            .flat_map(|(generation, n, hashes)| {
                assert_eq!((*generation, hashes.len()), (0, 8 * *n as usize));
                hashes
                    .chunks_exact(8)
                    .map(|h| u64::from_be_bytes(h.try_into().unwrap()))
            })
            .collect();
        hashed.sort_unstable();
        let mut expected: Vec<u64> = keys.iter().map(|(s, i)| key_hash(s, i)).collect();
        expected.sort_unstable();
        assert_eq!(hashed, expected);
        let done: bool = sqlx::query_scalar("SELECT hashed FROM log_generation")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(done);
    }

    /// The hash is stored: these values must never change.
    #[test]
    fn the_key_hash_is_stable() {
        assert_eq!(key_hash("konbini", "k-1"), key_hash("konbini", "k-1"));
        let pinned = [
            key_hash("", ""),
            key_hash("konbini", "k-1"),
            key_hash("konbini", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ];
        assert_eq!(pinned, PINNED, "{pinned:#x?}");
        // The split between source and id is part of the key.
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
    }

    const PINNED: [u64; 3] = [
        0xe390_3f05_57bf_e1f5,
        0xc595_6d43_fdd5_f7e5,
        0x90c3_9809_f532_5ce7,
    ];

    /// The rate of false positives as the sealed keys grow (hashes drawn uniformly, as
    /// the key hash gives them): what the module's documentation says.
    #[test]
    fn false_positives_stay_rare_up_to_ten_million_keys() {
        let uniform = |mut z: u64| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut f = Filter::default();
        let mut inserted = 0u64;
        for (keys, most) in [(10_000_000u64, 0.001), (50_000_000, 0.2)] {
            while inserted < keys {
                f.insert(uniform(inserted));
                inserted += 1;
            }
            let probes = 200_000u64;
            let positives = (0..probes)
                .filter(|n| f.may_hold(uniform(u64::MAX / 2 + n)))
                .count();
            let rate = positives as f64 / probes as f64;
            assert!(rate < most, "{keys} keys: {rate}");
            eprintln!("{keys} keys: false positive rate {rate}");
        }
    }

    /// A key inserted is always held; a filter holds few keys it was not given.
    #[test]
    fn the_filter_holds_what_it_was_given_and_little_else() {
        let mut f = Filter::default();
        assert!(f.is_empty() && !f.may_hold(key_hash("s", "x")));
        for n in 0..100_000u32 {
            f.insert(key_hash("s", &format!("in-{n}")));
        }
        assert!((0..100_000u32).all(|n| f.may_hold(key_hash("s", &format!("in-{n}")))));
        let false_positives = (0..100_000u32)
            .filter(|n| f.may_hold(key_hash("s", &format!("out-{n}"))))
            .count();
        assert!(false_positives < 5, "{false_positives} false positives");
    }
}
