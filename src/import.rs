//! `mieruka import FILE…`: NDJSON and CSV files through the same store API as HTTP.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use mieruka_aggregator::{Plan, SqliteStore};
use mieruka_ingest::import::{
    csv_events, decode_text, detect_encoding, ndjson_events, CsvMapping, Encoding, RawLine,
};
use mieruka_ingest::{item, EventSink, Position, Status};

/// Lines per store transaction.
const BATCH: usize = 10_000;

/// How many rejections the summary prints (all of them are in the store).
const SHOWN_REJECTIONS: usize = 10;

/// What one import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// The first rejections: "file:line, column X: message (reason)".
    pub first_rejections: Vec<String>,
}

/// The options of one import run.
pub struct ImportOptions<'a> {
    /// The CSV mapping, for CSV files.
    pub mapping: Option<&'a CsvMapping>,
    /// Forced encoding (else detected).
    pub encoding: Option<Encoding>,
    /// Whether to draw a progress bar (only on a terminal).
    pub progress: bool,
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("tsv"))
}

/// Imports one file into the store.
pub async fn import_file(
    plan: &Plan,
    store: &Arc<SqliteStore>,
    path: &Path,
    opts: &ImportOptions<'_>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let encoding = opts.encoding.unwrap_or_else(|| detect_encoding(&bytes));
    let text = decode_text(&bytes, encoding)
        .with_context(|| format!("{}: cannot decode as {encoding}", path.display()))?;
    let lines: Vec<RawLine> = if is_csv(path) {
        let Some(mapping) = opts.mapping else {
            bail!(
                "{} is a CSV file: name its column mapping with --mapping NAME (a [csv_mappings.NAME] table of the config)",
                path.display()
            );
        };
        csv_events(&text, mapping, &plan.schema).with_context(|| format!("{}", path.display()))?
    } else {
        ndjson_events(&text)
    };
    let file = path.display().to_string();
    let bar =
        (opts.progress && std::io::stderr().is_terminal() && lines.len() > BATCH).then(|| {
            let bar = indicatif::ProgressBar::new(lines.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {wide_bar} {pos}/{len} lines ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(file.clone());
            bar
        });
    for chunk in lines.chunks(BATCH) {
        let items: Vec<_> = chunk
            .iter()
            .map(|l| {
                item(
                    &plan.schema,
                    &l.json,
                    Position::Line {
                        file: file.clone(),
                        line: l.line,
                    },
                    "import",
                )
            })
            .collect();
        let statuses = store
            .submit(items)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (line, status) in chunk.iter().zip(statuses) {
            match status {
                Status::Accepted => summary.accepted += 1,
                Status::Duplicate => summary.duplicates += 1,
                Status::Rejected(r) => {
                    summary.rejected += 1;
                    if summary.first_rejections.len() < SHOWN_REJECTIONS {
                        let place = match (&line.column_error, &r.field) {
                            (Some((column, _)), _) => format!("column {column:?}"),
                            (None, Some(field)) => field.clone(),
                            (None, None) => "event".to_owned(),
                        };
                        summary.first_rejections.push(format!(
                            "{file}:{} {place}: {} ({})",
                            line.line, r.message, r.reason
                        ));
                    }
                }
            }
        }
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}
