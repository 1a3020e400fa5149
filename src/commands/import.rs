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
use mieruka_ingest::import::{open_file, CsvMapping, Encoding, FileRows, Format, RawLine};
use mieruka_ingest::{item, EventSink, Item, Position, Rejection, Status};

use crate::config::{Config, Resolved};

mod pipeline;

/// Lines per store transaction.
const BATCH: usize = 10_000;

/// Files smaller than this (in bytes) get no progress bar.
const BAR_BYTES: u64 = 4 << 20;

/// How many rejections the summary prints (all of them are in the store).
const SHOWN_REJECTIONS: usize = 10;

/// What one import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rows a `skip_when`/`keep_when` rule of the mapping left out.
    pub skipped: u64,
    /// Blank rows (and blank NDJSON lines) left out.
    pub blank: u64,
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
        "imported {} file(s) into {}: {} accepted, {} duplicate, {} rejected{}",
        files.len(),
        db.display(),
        summary.accepted,
        summary.duplicates,
        summary.rejected,
        summary.skipped_text(),
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
    let bar = progress_bar(opts.progress, &lines, &file);
    submit_lines(plan, sink, &file, lines, summary, |_, _| {}, bar.as_ref()).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// A file checked whole and ready to stream its events ([`read_lines`]).
pub(crate) struct Lines<'m> {
    rows: FileRows<'m>,
    path: PathBuf,
    /// What `rows.progress()` counts up to (bytes of a text file, rows of a sheet).
    total: u64,
}

/// Submits a file's lines to `sink` in batches of [`BATCH`] as they are read, each
/// item named `file:line` and passed through `admit` (which may refuse it, as an inbox
/// refuses a source it may not send), and counts each line's outcome and the rows
/// skipped into `summary`.
pub(crate) async fn submit_lines<S: EventSink>(
    plan: &Plan,
    sink: &S,
    file: &str,
    mut lines: Lines<'_>,
    summary: &mut Summary,
    admit: impl Fn(&mut Item, &[u8]),
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        while batch.len() < BATCH {
            match lines.rows.next_row() {
                Ok(Some(line)) => batch.push(line),
                Ok(None) => break,
                // Checked whole before: the file changed, or the disk failed, since.
                Err(e) => {
                    return Err(e).with_context(|| format!("{}", lines.path.display()));
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        let items: Vec<_> = batch
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
        for (line, status) in batch.iter().zip(statuses) {
            summary.count(file, line, status);
        }
        if let Some(bar) = bar {
            bar.set_position(lines.rows.progress());
        }
    }
    let skipped = lines.rows.skipped();
    summary.skipped += skipped.by_rule;
    summary.blank += skipped.blank;
    Ok(())
}

/// The bad cell a line's rejection is about: its column (header text) and what is
/// wrong with it, when the mapping noted one for the field the rejection names.
fn bad_cell<'l>(r: &Rejection, line: &'l RawLine) -> Option<&'l (String, String)> {
    let cell = line.column_error.as_ref()?;
    (r.field.is_some() && r.field == line.error_field).then_some(cell)
}

/// Names the column of a CSV line's bad cell, and what is wrong with it, in its
/// rejection's message, so that every place the rejection is kept (the `rejected`
/// tables, the dead-letter topic's `message` header, the summary) says file, line and
/// column. The column is the mapping's header text, never the cell's content.
fn note_column(item: &mut Item, line: &RawLine) {
    if let Err(r) = &mut item.outcome {
        if let Some((column, message)) = bad_cell(r, line) {
            r.message = format!("column {column:?} {message}");
        }
    }
}

/// The file checked whole, ready to stream its events: decoded (its encoding forced or
/// detected), CSV rows and workbook sheets through the mapping, NDJSON as is. A file
/// that cannot be read at all is an error here, before any of it is imported.
pub(crate) fn read_lines<'m>(
    plan: &'m Plan,
    path: &Path,
    opts: &ImportOptions<'m>,
) -> anyhow::Result<Lines<'m>> {
    let format = Format::of(path);
    if format != Format::Ndjson && opts.mapping.is_none() {
        bail!(
            "{} is a CSV file or workbook: name its column mapping with --mapping NAME (a [csv_mappings.NAME] table of the config)",
            path.display()
        );
    }
    let (rows, total) = open_file(path, format, opts.mapping, opts.encoding, &plan.schema)
        .with_context(|| format!("{}", path.display()))?;
    Ok(Lines {
        rows,
        path: path.to_owned(),
        total,
    })
}

/// A progress bar on a terminal, for files of more than one batch.
fn progress_bar(wanted: bool, lines: &Lines<'_>, file: &str) -> Option<indicatif::ProgressBar> {
    let big = match lines.rows {
        FileRows::Xlsx(_) => lines.total > BATCH as u64,
        _ => lines.total > BAR_BYTES,
    };
    (wanted && std::io::stderr().is_terminal() && big).then(|| {
        let bar = indicatif::ProgressBar::new(lines.total);
        let template = match lines.rows {
            FileRows::Xlsx(_) => "{msg} {wide_bar} {pos}/{len} rows ({per_sec}, eta {eta})",
            _ => "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(file.to_owned());
        bar
    })
}

impl Summary {
    /// The rows left out, for the summary line: `, 3 skipped by rule, 1 blank`.
    pub(crate) fn skipped_text(&self) -> String {
        format!(", {} skipped by rule, {} blank", self.skipped, self.blank)
    }

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
                    let place = match (bad_cell(&r, line), &r.field) {
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
