//! Event ids for files without an id column: built from the columns the mapping names
//! (`event_id_columns`).
//!
//! The id of a row is a stable hash of the mapping's `source` and `type`, the row's
//! named cells (trimmed, full-width forms as ASCII) and the occurrence index of that
//! same key in the file (0 for its first row, 1 for the next row with the same cells,
//! …), written as 32 letters `a`–`p` (4 bits each). So two identical rows stay two
//! events, and the same file imported again gives the same ids: its rows are
//! duplicates. Letters only, because a hex hash holds a 12-digit run that passes the
//! personal-number check digit about once in a few hundred rows, and the guard would
//! reject those rows.
//!
//! The hash is 128-bit FNV-1a over length-prefixed parts; it is part of the stored
//! data (an id once imported must come out the same forever), so it must never change.

use std::collections::HashMap;

use super::row::half_width;

/// The FNV-1a 128-bit offset basis.
const FNV_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
/// The FNV-1a 128-bit prime.
const FNV_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// Builds the ids of one file's rows, counting how often each key has been seen.
#[derive(Default)]
pub(super) struct RowIds {
    seen: HashMap<Vec<String>, u64>,
}

impl RowIds {
    /// The id of the next row whose named cells are `cells`.
    pub(super) fn next(&mut self, source: &str, event_type: &str, cells: &[&str]) -> String {
        let key: Vec<String> = cells.iter().map(|c| normalise(c)).collect();
        let count = self.seen.entry(key).or_insert(0);
        let occurrence = *count;
        *count += 1;
        let mut h = Fnv::default();
        h.part(source.as_bytes());
        h.part(event_type.as_bytes());
        h.part(&(cells.len() as u64).to_le_bytes());
        for c in cells {
            h.part(normalise(c).as_bytes());
        }
        h.part(&occurrence.to_le_bytes());
        letters(h.0)
    }
}

/// A named cell as it takes part in the key: trimmed, full-width forms as ASCII.
fn normalise(cell: &str) -> String {
    half_width(cell).trim().to_owned()
}

/// FNV-1a, 128 bits.
struct Fnv(u128);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(FNV_OFFSET)
    }
}

impl Fnv {
    /// Hashes a part, prefixed by its length so that parts cannot run into each other.
    fn part(&mut self, bytes: &[u8]) {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

/// 128 bits as 32 letters `a`–`p`, the most significant 4 bits first.
fn letters(v: u128) -> String {
    (0..32)
        .rev()
        .map(|i| char::from(b'a' + ((v >> (i * 4)) & 0xf) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_letters_stable_across_runs_and_count_repeats() {
        let mut ids = RowIds::default();
        let a = ids.next("juki", "population.snapshot", &["令和8年10月", "合計"]);
        let b = ids.next("juki", "population.snapshot", &["令和8年10月", "合計"]);
        let c = ids.next("juki", "population.snapshot", &["令和8年10月", "東町"]);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| (b'a'..=b'p').contains(&b)), "{a}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        let mut again = RowIds::default();
        assert_eq!(
            again.next("juki", "population.snapshot", &["令和8年10月", " 合計 "]),
            a
        );
        assert_eq!(
            again.next("juki", "population.snapshot", &["令和８年１０月", "合計"]),
            b
        );
        // Pinned: the id is stored data, so the rule must never change.
        assert_eq!(a, "beaanggidcdingnajnomblcidibmnepn");
    }

    #[test]
    fn source_type_and_cell_boundaries_are_part_of_the_id() {
        let id = |s: &str, t: &str, cells: &[&str]| RowIds::default().next(s, t, cells);
        let base = id("juki", "population.snapshot", &["ab", "c"]);
        assert_ne!(base, id("juki", "population.snapshot", &["a", "bc"]));
        assert_ne!(base, id("other", "population.snapshot", &["ab", "c"]));
        assert_ne!(base, id("juki", "staff.headcount_snapshot", &["ab", "c"]));
    }
}
