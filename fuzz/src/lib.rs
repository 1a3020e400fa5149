//! Fuzz targets for mieruka's event contract: framing and decoding (`frame_decode`),
//! personal numbers embedded in events (`decode_embedded`), CSV import (`csv_import`)
//! and the personal-number guard itself (`guard_mask`).
//!
//! Each target checks invariants ([`checks`]), not just the absence of panics: above
//! all, that nothing kept or shown of a refused event holds a personal number.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

pub mod checks;
pub mod gen;
pub mod plan;

/// The shipped plan, compiled once per process.
pub fn ome() -> &'static plan::Ome {
    static OME: OnceLock<plan::Ome> = OnceLock::new();
    OME.get_or_init(plan::ome)
}

/// The konbini mapping fixture and its variants ([`checks::csv_mappings`]), once.
pub fn konbini_mappings() -> &'static [mieruka_ingest::import::CsvMapping; checks::CSV_MAPPINGS]
{
    static MAPPINGS: OnceLock<[mieruka_ingest::import::CsvMapping; checks::CSV_MAPPINGS]> =
        OnceLock::new();
    MAPPINGS.get_or_init(|| checks::csv_mappings(&plan::konbini_mapping()))
}
