//! The shipped Ome plan's event types as an ingest schema, and the konbini CSV mapping
//! fixture: what the targets decode against.
//!
//! The aggregator (which compiles whole plans) needs Kafka to build, so the schema is
//! made here from the plan file's `[event_types]` and its milestone stages, as the
//! aggregator does. "Now" is pinned: a result must not depend on the day the fuzzer runs.
//!
//! The ingest crate's `fuzz_regressions` test includes this file too (`#[path]`), so it
//! depends on nothing but `mieruka_ingest`, `serde` and `toml`.

use std::collections::{BTreeMap, HashMap};

use mieruka_ingest::import::CsvMapping;
use mieruka_ingest::{EventTypeDecl, Schema, TimeWindow, Timestamp};
use serde::Deserialize;

/// The shipped plan, compiled in: the targets run from any directory.
const PLAN: &str = include_str!("../../plans/ome.toml");

/// The CSV mapping of the Shift_JIS fixture, as it appears in a config file.
const KONBINI_MAPPING: &str = include_str!("../../ingest/tests/fixtures/konbini.mapping.toml");

/// "Now" for every decode: the README's examples are of this day.
pub const NOW: &str = "2026-11-25T12:00:00+09:00";

/// The plan's horizon: the start of FY2020, five years before its baseline year (as the
/// aggregator sets it).
pub const EARLIEST: &str = "2020-04-01T00:00:00+09:00";

/// The parts of the plan file a schema needs; everything else is ignored.
#[derive(Deserialize)]
struct PlanFile {
    event_types: BTreeMap<String, EventTypeDecl>,
    #[serde(default)]
    kpi: Vec<KpiFile>,
}

#[derive(Deserialize)]
struct KpiFile {
    id: String,
    kind: String,
    #[serde(default)]
    stages: Vec<StageFile>,
}

#[derive(Deserialize)]
struct StageFile {
    id: String,
}

#[derive(Deserialize)]
struct MappingFile {
    csv_mappings: BTreeMap<String, CsvMapping>,
}

/// The Ome plan as the targets use it.
pub struct Ome {
    /// Its event types, with the time window pinned at [`NOW`].
    pub schema: Schema,
    /// Each milestone KPI and its stage ids, sorted by KPI id.
    pub milestones: Vec<(String, Vec<String>)>,
}

/// Compiles the shipped plan's event types (panics if the plan does not compile: the
/// targets would test nothing).
pub fn ome() -> Ome {
    let plan: PlanFile = toml::from_str(PLAN).unwrap_or_else(|e| panic!("plans/ome.toml: {e}"));
    let mut milestones: Vec<(String, Vec<String>)> = plan
        .kpi
        .into_iter()
        .filter(|k| k.kind == "milestone")
        .map(|k| (k.id, k.stages.into_iter().map(|s| s.id).collect()))
        .collect();
    milestones.sort();
    let stages: HashMap<String, Vec<String>> = milestones.iter().cloned().collect();
    let mut schema =
        Schema::new(&plan.event_types, stages).unwrap_or_else(|e| panic!("plans/ome.toml: {e}"));
    schema.set_window(TimeWindow {
        earliest: instant(EARLIEST),
        now: Some(instant(NOW)),
        ..TimeWindow::default()
    });
    Ome { schema, milestones }
}

/// The `[csv_mappings.konbini]` table of `ingest/tests/fixtures/konbini.mapping.toml`.
pub fn konbini_mapping() -> CsvMapping {
    let file: MappingFile =
        toml::from_str(KONBINI_MAPPING).unwrap_or_else(|e| panic!("konbini.mapping.toml: {e}"));
    file.csv_mappings
        .get("konbini")
        .cloned()
        .unwrap_or_else(|| panic!("konbini.mapping.toml has no [csv_mappings.konbini]"))
}

fn instant(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}
