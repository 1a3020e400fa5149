//! `mieruka import FILE…`: NDJSON and CSV files through the same sink API as HTTP,
//! then a summary. Exit code 1 when any line was rejected.
//!
//! Where the events go follows the config: the embedded SQLite store (every rejection
//! kept in its `rejected` table), or — when Kafka brokers are resolved — the production
//! pipeline ([`pipeline`]: produced to the `[kafka]` topic as the `ingest` role does).
//! Either way a rejected CSV line names its file, line and the column of its bad cell.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use mieruka_aggregator::{Plan, SqliteStore};
use mieruka_ingest::import::{
    csv_events, decode_text, detect_encoding, ndjson_events, CsvMapping, Encoding, RawLine,
};
use mieruka_ingest::{item, EventSink, Item, Position, Status};

use crate::config::{Config, Resolved};

mod pipeline;

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

/// `mieruka import`: every file into the production pipeline when Kafka brokers are
/// resolved, else into the store of `settings.db`; then a summary.
pub async fn run(
    cfg: &Config,
    settings: &Resolved,
    files: &[PathBuf],
    mapping: Option<&str>,
    encoding: Option<Encoding>,
) -> anyhow::Result<ExitCode> {
    let mapping = csv_mapping(cfg, mapping)?;
    let opts = ImportOptions {
        mapping,
        encoding,
        progress: true,
    };
    if let Ok(brokers) = settings.brokers() {
        return pipeline::run(settings, brokers, files, &opts).await;
    }
    let db = &settings.db;
    let plan = settings.plan.clone();
    let store = Arc::new(
        SqliteStore::open(db, plan.clone())
            .await
            .with_context(|| format!("cannot open {}", db.display()))?,
    );
    let mut summary = Summary::default();
    for f in files {
        import_file(&plan, &*store, f, &opts, &mut summary).await?;
    }
    store.close().await;
    println!(
        "imported {} file(s) into {}: {} accepted, {} duplicate, {} rejected",
        files.len(),
        db.display(),
        summary.accepted,
        summary.duplicates,
        summary.rejected
    );
    summary.print_rejections(&format!("the `rejected` table of {}", db.display()));
    Ok(summary.exit_code())
}

/// The `[csv_mappings.NAME]` named by `--mapping`, or the only one of the config.
fn csv_mapping<'a>(cfg: &'a Config, name: Option<&str>) -> anyhow::Result<Option<&'a CsvMapping>> {
    Ok(match name {
        Some(name) => Some(cfg.csv_mappings.get(name).with_context(|| {
            format!(
                "no CSV mapping {name:?} in the config; it has: {}",
                cfg.csv_mappings
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?),
        None if cfg.csv_mappings.len() == 1 => cfg.csv_mappings.values().next(),
        None => None,
    })
}

/// Imports one file into `sink` (a store, or the Kafka producer).
pub async fn import_file<S: EventSink>(
    plan: &Plan,
    sink: &S,
    path: &Path,
    opts: &ImportOptions<'_>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let lines = read_lines(plan, path, opts)?;
    let file = path.display().to_string();
    let bar = progress_bar(opts.progress, lines.len(), &file);
    submit_lines(plan, sink, &file, &lines, summary, |_, _| {}, bar.as_ref()).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Submits a file's lines to `sink` in batches, each item named `file:line` and passed
/// through `admit` (which may refuse it, as an inbox refuses a source it may not send),
/// and counts each line's outcome into `summary`.
pub(crate) async fn submit_lines<S: EventSink>(
    plan: &Plan,
    sink: &S,
    file: &str,
    lines: &[RawLine],
    summary: &mut Summary,
    admit: impl Fn(&mut Item, &[u8]),
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<()> {
    for chunk in lines.chunks(BATCH) {
        let items: Vec<_> = chunk
            .iter()
            .map(|l| {
                let mut item = item(
                    &plan.schema,
                    &l.json,
                    Position::Line {
                        file: file.to_owned(),
                        line: l.line,
                    },
                    "import",
                );
                admit(&mut item, &l.json);
                note_column(&mut item, l);
                item
            })
            .collect();
        let statuses = sink
            .submit(items)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (line, status) in chunk.iter().zip(statuses) {
            summary.count(file, line, status);
        }
        if let Some(bar) = bar {
            bar.inc(chunk.len() as u64);
        }
    }
    Ok(())
}

/// Names the column of a CSV line's bad cell in its rejection's message, so that every
/// place the rejection is kept (the `rejected` tables, the dead-letter topic's `message`
/// header, the summary) says file, line and column. The column is the mapping's header
/// text, never the cell's content.
fn note_column(item: &mut Item, line: &RawLine) {
    if let (Err(r), Some((column, _))) = (&mut item.outcome, &line.column_error) {
        r.message = format!("column {column:?}: {}", r.message);
    }
}

/// The file's lines as events: decoded (its encoding forced or detected), CSV rows
/// through the mapping, NDJSON as is.
pub(crate) fn read_lines(
    plan: &Plan,
    path: &Path,
    opts: &ImportOptions<'_>,
) -> anyhow::Result<Vec<RawLine>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let encoding = opts.encoding.unwrap_or_else(|| detect_encoding(&bytes));
    let text = decode_text(&bytes, encoding)
        .with_context(|| format!("{}: cannot decode as {encoding}", path.display()))?;
    if !is_csv(path) {
        return Ok(ndjson_events(&text));
    }
    let Some(mapping) = opts.mapping else {
        bail!(
            "{} is a CSV file: name its column mapping with --mapping NAME (a [csv_mappings.NAME] table of the config)",
            path.display()
        );
    };
    csv_events(&text, mapping, &plan.schema).with_context(|| format!("{}", path.display()))
}

/// A progress bar on a terminal, for files of more than one batch.
fn progress_bar(wanted: bool, lines: usize, file: &str) -> Option<indicatif::ProgressBar> {
    (wanted && std::io::stderr().is_terminal() && lines > BATCH).then(|| {
        let bar = indicatif::ProgressBar::new(lines as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {wide_bar} {pos}/{len} lines ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(file.to_owned());
        bar
    })
}

impl Summary {
    /// Prints the first rejections, and where all of them are kept (`kept_in`).
    fn print_rejections(&self, kept_in: &str) {
        for r in &self.first_rejections {
            println!("  rejected {r}");
        }
        if self.rejected as usize > self.first_rejections.len() {
            println!("  … all rejections are in {kept_in}");
        }
    }

    /// 1 when any line was rejected.
    fn exit_code(&self) -> ExitCode {
        if self.rejected > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }

    /// Counts one line's outcome; the first rejections are kept with their place.
    fn count(&mut self, file: &str, line: &RawLine, status: Status) {
        match status {
            Status::Accepted => self.accepted += 1,
            Status::Duplicate => self.duplicates += 1,
            Status::Rejected(r) => {
                self.rejected += 1;
                if self.first_rejections.len() < SHOWN_REJECTIONS {
                    // A bad cell's column already leads the message (`note_column`).
                    let place = match (&line.column_error, &r.field) {
                        (Some(_), _) => String::new(),
                        (None, Some(field)) => format!("{field}: "),
                        (None, None) => "event: ".to_owned(),
                    };
                    // Then every other problem of the event, ` | field: message (reason)`.
                    self.first_rejections.push(format!(
                        "{file}:{} {place}{} ({}){}",
                        line.line,
                        r.message,
                        r.reason,
                        r.others_text()
                    ));
                }
            }
        }
    }
}
