//! `mieruka schema --out DIR`: the vendor contract generated from the plan — a JSON
//! Schema per event type (`DIR/schema/TYPE.json`), the OpenAPI document of the receiver
//! (`DIR/openapi.json`) and the event reference (`DIR/events.md`). docs/ holds the
//! copies for the shipped plan; a test fails while they are stale.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use mieruka_aggregator::plan::Plan;
use mieruka_ingest::contract::{self, openapi};

/// The folder under `--out` that holds one schema per event type.
pub const SCHEMA_DIR: &str = "schema";

/// Every file of the contract, as (path under `--out`, content).
pub fn contract_files(plan: &Plan) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = contract::event_schemas(&plan.schema)
        .into_iter()
        .map(|(name, s)| {
            (
                Path::new(SCHEMA_DIR).join(contract::file_name(&name)),
                contract::pretty(&s),
            )
        })
        .collect();
    files.push((
        PathBuf::from("openapi.json"),
        contract::pretty(&openapi::openapi(&plan.schema, &plan.id)),
    ));
    files.push((
        PathBuf::from("events.md"),
        crate::events_doc::events_md(plan),
    ));
    files
}

/// Writes the contract under `out`; schema files of types the plan no longer declares
/// are removed, so the folder is exactly the plan's.
pub fn write(plan: &Plan, out: &Path) -> anyhow::Result<ExitCode> {
    let files = contract_files(plan);
    let schema_dir = out.join(SCHEMA_DIR);
    std::fs::create_dir_all(&schema_dir)
        .with_context(|| format!("cannot create {}", schema_dir.display()))?;
    for entry in std::fs::read_dir(&schema_dir)
        .with_context(|| format!("cannot read {}", schema_dir.display()))?
    {
        let path = entry?.path();
        let ours = files.iter().any(|(p, _)| out.join(p) == path);
        if !ours && path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            println!("removed {}", path.display());
        }
    }
    for (rel, text) in &files {
        let path = out.join(rel);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "wrote {} files of the contract under {} (schema/, openapi.json, events.md)",
        files.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
