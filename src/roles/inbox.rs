//! The `[[inbox]]` folders: a line system that cannot call anything drops its files into
//! a shared folder, and the `standalone` and `ingest` roles import them through their own
//! sink, as `mieruka import` would.
//!
//! A file is taken once its size and mtime have stayed the same for `settle_seconds`
//! (writers may also write a dotfile, `*.tmp` or `*.part` and rename it into place: those
//! names are never taken). It is claimed into `processing/` without replacing anything
//! there ([`folder`]), so of several replicas watching one folder exactly one gets it,
//! and a file dropped again under the name of one being imported waits until that one
//! has left. While it imports a file, a replica renews its lease ([`lease`]); a file in
//! `processing/` whose lease has stopped moving (its replica died) is taken over by a
//! replica that sees it so, at start or at any poll. The reports are committed in
//! `processing/` before the file moves to `done/` beside `NAME.result.json` and
//! `NAME.result.txt`, so a file that was imported but not yet moved is only moved; a
//! file that cannot be read at all (encoding, not CSV, no mapping, missing columns)
//! goes to `failed/` with the same two reports saying why. A file taken over before its
//! commit is imported again, and its event ids make the lines already taken duplicates.
//! Reports quote no cell: only the import's counts and its rejection messages
//! (positions, columns, reasons).

mod folder;
mod lease;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mieruka_aggregator::Plan;
use mieruka_exporter::Exporter;
use mieruka_ingest::{EventSink, Item};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::folder::{Moved, DONE, FAILED, PROCESSING};
use self::lease::{Held, Holder, Observed};
use super::Clock;
use crate::commands::import::{read_lines, submit_lines, ImportOptions, Summary};
use crate::config::InboxSettings;

/// What a watcher needs besides its folder: the plan, the role's sink, the metrics.
pub struct Watcher<S> {
    pub inbox: InboxSettings,
    pub plan: Arc<Plan>,
    pub sink: Arc<S>,
    pub exporter: Arc<Exporter>,
    pub clock: Clock,
    /// Called after each finished file, so the status page shows it (the standalone
    /// wakes its refresher; the ingest role republishes its empty snapshot).
    pub on_file: OnFile,
}

/// What a role does after an inbox finished a file.
pub type OnFile = Arc<dyn Fn() + Send + Sync>;

/// Makes `processing/`, `done/` and `failed/` inside each inbox (at build, so a folder
/// the role may not write to stops it at start).
pub fn prepare(inboxes: &[InboxSettings]) -> anyhow::Result<()> {
    for inbox in inboxes {
        for sub in [PROCESSING, DONE, FAILED] {
            let d = inbox.dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| {
                anyhow::anyhow!(
                    "[[inbox]] {:?}: cannot create {}: {e}",
                    inbox.name,
                    d.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Starts one watcher per inbox; each stops when `shutdown` is cancelled (after the
/// file in hand).
pub fn spawn_all<S: EventSink + 'static>(
    inboxes: &[InboxSettings],
    plan: &Arc<Plan>,
    sink: &Arc<S>,
    exporter: &Arc<Exporter>,
    (clock, on_file): (Clock, OnFile),
    shutdown: &CancellationToken,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for inbox in inboxes {
        let w = Watcher {
            inbox: inbox.clone(),
            plan: plan.clone(),
            sink: sink.clone(),
            exporter: exporter.clone(),
            clock,
            on_file: on_file.clone(),
        };
        set.spawn(w.run(shutdown.clone()));
    }
    set
}

/// A file seen in the folder: its size and mtime, and since when they have not moved.
type Seen = (u64, Option<SystemTime>, Instant);

impl<S: EventSink> Watcher<S> {
    /// Polls the folder until `shutdown`: at each poll, first the files of `processing/`
    /// whose lease has gone stale (left by a stopped replica, or by this one before a
    /// restart), then the settled files of the folder.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.inbox.name.clone();
        self.exporter.health().declare_inbox(&name);
        // Each file counts as an arrival of its sources, for their next-due instants.
        self.exporter
            .health()
            .set_inbox_sources(&name, &self.inbox.sources);
        (self.on_file)();
        tracing::info!(inbox = %name, dir = %self.inbox.dir.display(), "Watching the inbox folder.");
        let holder = Holder::this_process();
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut leases = Observed::default();
        loop {
            self.take_over_stale(&holder, &mut leases, &shutdown).await;
            self.take_settled(&holder, &mut seen, &shutdown).await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.inbox.poll) => {}
            }
        }
    }

    /// Claims and imports the files of the folder that have settled.
    async fn take_settled(
        &self,
        holder: &Holder,
        seen: &mut HashMap<String, Seen>,
        shutdown: &CancellationToken,
    ) {
        let files = self.files(&self.inbox.dir);
        seen.retain(|n, _| files.iter().any(|f| &f.0 == n));
        for (file, size, mtime) in files {
            let now = Instant::now();
            let entry = seen.entry(file.clone()).or_insert((size, mtime, now));
            if (entry.0, entry.1) != (size, mtime) {
                *entry = (size, mtime, now);
            }
            if entry.2.elapsed() < self.inbox.settle || shutdown.is_cancelled() {
                continue;
            }
            // A file whose name is busy in processing/ stays settled, to be claimed as
            // soon as the name is free.
            match self.claim(&file) {
                Moved::Busy => continue,
                Moved::Gone => {}
                Moved::Yes => {
                    let lease = lease::path(&self.inbox.dir.join(PROCESSING), &file);
                    match Held::claimed(lease, holder, self.inbox.poll) {
                        Ok(held) => self.import_held(&file, held).await,
                        Err(error) => {
                            tracing::error!(inbox = %self.inbox.name, %error, "Cannot write the lease of a claimed file; it is imported once its lease counts as stale.");
                        }
                    }
                }
            }
            seen.remove(&file);
        }
    }

    /// Takes over the files of `processing/` whose lease has not moved for
    /// [`lease::STALE_POLLS`] polls: a committed one is only moved to `done/` or
    /// `failed/`, any other is imported again.
    async fn take_over_stale(
        &self,
        holder: &Holder,
        leases: &mut Observed,
        shutdown: &CancellationToken,
    ) {
        let processing = self.inbox.dir.join(PROCESSING);
        let names = match folder::in_processing(&processing) {
            Ok(names) => names,
            Err(error) => {
                tracing::warn!(inbox = %self.inbox.name, dir = %processing.display(), %error, "Cannot list processing/; trying again at the next poll.");
                return;
            }
        };
        let stale = self.inbox.poll * lease::STALE_POLLS;
        for (file, seen) in leases.stale(&processing, &names, (stale, holder)) {
            if shutdown.is_cancelled() {
                return;
            }
            leases.forget(&file);
            let path = lease::path(&processing, &file);
            let held = match Held::take_over(path, holder, seen.as_deref(), self.inbox.poll) {
                Ok(Some(held)) => held,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(inbox = %self.inbox.name, %error, "Cannot take over a stale lease in processing/; trying again later.");
                    continue;
                }
            };
            let shown = mieruka_ingest::mask_raw(file.as_bytes());
            match folder::complete(&self.inbox.dir, &file) {
                Ok(Some(to)) => {
                    let to = mieruka_ingest::mask_raw(to.as_bytes());
                    tracing::info!(inbox = %self.inbox.name, file = %shown, %to, "Moved a file imported before a stop out of processing/; it was not imported again.");
                }
                // Finished by another replica meanwhile: nothing is left to do.
                Ok(None) if !processing.join(&file).exists() => {}
                Ok(None) => {
                    tracing::info!(inbox = %self.inbox.name, file = %shown, "Importing a file left in processing/ again (its lease had stopped moving).");
                    self.import_held(&file, held).await;
                    continue;
                }
                Err(error) => {
                    tracing::error!(inbox = %self.inbox.name, file = %shown, %error, "Cannot move a committed file out of processing/; trying again once its lease is stale.");
                }
            }
            held.release();
        }
    }

    /// Imports `processing/FILE` under its lease; gives it up if another replica took it
    /// over (this one had stopped renewing the lease for too long).
    async fn import_held(&self, file: &str, held: Held) {
        let lost = held.lost();
        tokio::select! {
            () = self.import(file) => {}
            () = lost.cancelled() => {
                let shown = mieruka_ingest::mask_raw(file.as_bytes());
                tracing::warn!(inbox = %self.inbox.name, file = %shown, "Another replica took over the file in hand (this one had not renewed its lease in time); leaving it to that one.");
            }
        }
        held.release();
    }

    /// The files of `dir` this inbox takes (name, size, mtime), by name.
    fn files(&self, dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(inbox = %self.inbox.name, dir = %dir.display(), %error, "Cannot list the inbox folder; trying again at the next poll.");
                return Vec::new();
            }
        };
        let mut v: Vec<_> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
                let name = e.file_name().into_string().ok()?;
                self.takes(&name)
                    .then(|| (name, meta.len(), meta.modified().ok()))
            })
            .collect();
        v.sort();
        v
    }

    /// Whether a file name is one to take: never a dotfile, `*.tmp` or `*.part` (files
    /// being written), else when it matches the pattern.
    fn takes(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if name.starts_with('.') || lower.ends_with(".tmp") || lower.ends_with(".part") {
            return false;
        }
        self.inbox
            .pattern
            .as_deref()
            .is_none_or(|p| glob(p.as_bytes(), name.as_bytes()))
    }

    /// Claims a settled file into `processing/`, never over a file of the same name.
    fn claim(&self, file: &str) -> Moved {
        match folder::claim(&self.inbox.dir, file) {
            Ok(moved) => moved,
            Err(error) => {
                tracing::warn!(inbox = %self.inbox.name, dir = %self.inbox.dir.display(), %error, "Cannot claim a file of the inbox; trying again at the next poll.");
                Moved::Busy
            }
        }
    }

    /// Imports `processing/FILE`, then moves it to `done/` or `failed/` with its reports.
    /// When the sink fails (the store or the broker is down) the file goes back to the
    /// folder, to be taken again: its ids make what was taken duplicates.
    async fn import(&self, file: &str) {
        let path = self.inbox.dir.join(PROCESSING).join(file);
        let opts = ImportOptions {
            mapping: self.inbox.mapping.as_ref(),
            encoding: self.inbox.encoding,
            progress: false,
        };
        // The name as reports, positions and logs show it: a name is outside data too,
        // so the guard masks any personal number in it.
        let shown = mieruka_ingest::mask_raw(file.as_bytes());
        let mut summary = Summary::default();
        let lines = match read_lines(&self.plan, &path, &opts) {
            Ok(lines) => lines,
            Err(e) => {
                // The file is named as it was dropped, not by its place in processing/.
                let reason = format!("{e:#}").replace(&path.display().to_string(), &shown);
                let reason = mieruka_ingest::mask_raw(reason.as_bytes());
                return self.finish((file, &shown), FAILED, &summary, Some(reason));
            }
        };
        let admit = |item: &mut Item, raw: &[u8]| self.admit(item, raw);
        let sent = submit_lines(
            &self.plan,
            &*self.sink,
            &shown,
            lines,
            &mut summary,
            admit,
            None,
        );
        if let Err(error) = sent.await {
            tracing::warn!(inbox = %self.inbox.name, path = %path.display(), error = %format!("{error:#}"), "The sink failed while importing a file; it goes back to the folder to be taken again.");
            let back = folder::move_no_replace(&path, &self.inbox.dir.join(file));
            if !matches!(back, Ok(Moved::Yes)) {
                tracing::error!(inbox = %self.inbox.name, path = %path.display(), ?back, "Cannot put the file back (or a new one of its name waits there); it stays in processing/ and is taken over once its lease is stale.");
            }
            return;
        }
        self.finish((file, &shown), DONE, &summary, None);
    }

    /// Refuses as `not_allowed` an event of a source or type the inbox may not send;
    /// else counts it under its own source.
    fn admit(&self, item: &mut Item, raw: &[u8]) {
        let sources = (!self.inbox.sources.is_empty()).then_some(self.inbox.sources.as_slice());
        let allowed = (sources, self.inbox.types.as_slice());
        item.authorise(raw, &self.plan.schema, ("inbox", &self.inbox.name), allowed);
    }

    /// Commits the two reports in `processing/`, moves them and the file to `done/` or
    /// `failed/` and counts it. `file` is the name on disk, and the name as shown.
    fn finish(
        &self,
        (file, shown): (&str, &str),
        outcome: &str,
        summary: &Summary,
        reason: Option<String>,
    ) {
        let name = &self.inbox.name;
        let to = format!(
            "{outcome}/{}",
            folder::unique(&self.inbox.dir.join(outcome), file)
        );
        let now = self.clock.now().unix_seconds_f64();
        let report = Report {
            inbox: name,
            file: shown,
            outcome,
            reason: reason.as_deref(),
            accepted: summary.accepted,
            duplicates: summary.duplicates,
            rejected: summary.rejected,
            skipped_by_rule: summary.skipped,
            blank: summary.blank,
            first_rejections: &summary.first_rejections,
            finished_at_unix_seconds: now,
        };
        let reports = [("json", report.json()), ("txt", report.text())];
        if let Err(error) = folder::commit(&self.inbox.dir, file, &to, &reports) {
            tracing::error!(inbox = %name, file = shown, %error, "Cannot commit a finished file with its reports; it stays in processing/ and is taken over once its lease is stale.");
        }
        let lines = [summary.accepted, summary.duplicates, summary.rejected];
        self.exporter.health().inbox_file(name, outcome, lines, now);
        (self.on_file)();
        match reason {
            None => {
                tracing::info!(inbox = %name, file = shown, accepted = summary.accepted, duplicates = summary.duplicates, rejected = summary.rejected, "Imported a file of the inbox.")
            }
            Some(reason) => {
                tracing::error!(inbox = %name, file = shown, %reason, "A file of the inbox cannot be read; it is in failed/ with a report.")
            }
        }
    }
}

/// Whether `name` matches `pattern` (`*` any run, `?` any one byte, else literal).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// What became of one file, as `NAME.result.json` says it.
#[derive(Serialize)]
struct Report<'a> {
    inbox: &'a str,
    file: &'a str,
    /// `done` or `failed`.
    outcome: &'a str,
    /// Why a failed file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    /// Rows a `skip_when`/`keep_when` rule of the mapping left out.
    skipped_by_rule: u64,
    /// Blank rows left out.
    blank: u64,
    /// The first rejections: "file:line, column X: message (reason)".
    first_rejections: &'a [String],
    finished_at_unix_seconds: f64,
}

impl Report<'_> {
    fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The short report for a person, in Japanese and English.
    fn text(&self) -> String {
        let mut t = format!("ファイル / file: {}\n", self.file);
        if let Some(reason) = self.reason {
            t += "結果 / outcome: 読み込めませんでした / failed (nothing was imported)\n";
            t += &format!("理由 / reason: {reason}\n");
            return t;
        }
        t += "結果 / outcome: 取り込み済み / done\n";
        t += &format!("受理 / accepted: {}\n", self.accepted);
        t += &format!("重複 / duplicates: {}\n", self.duplicates);
        t += &format!("却下 / rejected: {}\n", self.rejected);
        t += &format!("規則で除外 / skipped by rule: {}\n", self.skipped_by_rule);
        t += &format!("空行 / blank rows: {}\n", self.blank);
        if !self.first_rejections.is_empty() {
            t += "最初の却下 / first rejections:\n";
            for r in self.first_rejections {
                t += &format!("  {r}\n");
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn a_pattern_matches_with_star_and_question_mark() {
        assert!(glob(b"*.csv", b"konbini_0501.csv"));
        assert!(!glob(b"*.csv", b"konbini_0501.csv.part"));
        assert!(glob(b"k?nbini*", b"konbini.ndjson"));
        assert!(!glob(b"k?nbini*", b"juki.csv"));
    }
}
