//! The moves of a file through an inbox folder, each safe against a crash at any point
//! and against other replicas watching the same (possibly shared) folder.
//!
//! - *Claim*: `NAME` → `processing/NAME` without ever replacing a file of that name
//!   already in `processing/` (the same name dropped again while the first is imported
//!   waits in the folder until the name is free).
//! - *Commit*: the two reports are written into `processing/` as `.NAME.result.json`
//!   and `.NAME.result.txt`, then the commit marker `.NAME.committed`, which holds where the
//!   file goes (`done/NAME`, `done/NAME.1`, `failed/NAME` …). Only then are the reports
//!   and the file moved there and the marker removed. A file found in `processing/`
//!   with its marker was imported already: it is only moved, never imported again.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The folders inside an inbox, in the order a file passes through them.
pub const PROCESSING: &str = "processing";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// The kinds of report beside each finished file: `NAME.result.json`, `NAME.result.txt`.
pub const REPORTS: [&str; 2] = ["json", "txt"];

/// What became of a move that may not replace its target.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// The file is at its new name.
    Yes,
    /// The target name is taken; the file stays where it was.
    Busy,
    /// The file was gone (another replica moved it first).
    Gone,
}

/// Moves `from` to `to` unless `to` exists. A hard link refuses an existing name
/// atomically (local disks, NFS, SMB with Unix extensions), then `from` is removed.
/// Where the file system has no hard links the move is a rename after checking that
/// `to` is free: two files of one name claimed in the same instant by two replicas
/// could then meet, which the link rules out.
pub fn move_no_replace(from: &Path, to: &Path) -> std::io::Result<Moved> {
    use std::io::ErrorKind::{AlreadyExists, NotFound};
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == NotFound => return Ok(Moved::Gone),
        Err(e) if e.kind() == AlreadyExists => {
            // The same file under both names: a claim stopped between its link and its
            // removal (or another replica is between the two now). It is claimed.
            if same_file(from, to) {
                remove_if_there(from)?;
                return Ok(Moved::Gone);
            }
            return Ok(Moved::Busy);
        }
        Err(error) => {
            tracing::debug!(path = %to.display(), %error, "No hard link here; moving by a rename to a free name.");
            if std::fs::symlink_metadata(to).is_ok() {
                return Ok(Moved::Busy);
            }
            return match std::fs::rename(from, to) {
                Ok(()) => Ok(Moved::Yes),
                Err(e) if e.kind() == NotFound => Ok(Moved::Gone),
                Err(e) => Err(e),
            };
        }
    }
    remove_if_there(from)?;
    Ok(Moved::Yes)
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Claims `dir/NAME` into `processing/NAME`. A commit marker left of an earlier file of
/// that name (all moved, the marker not yet removed) is removed, so it is not taken
/// for this file's.
pub fn claim(dir: &Path, name: &str) -> std::io::Result<Moved> {
    let processing = dir.join(PROCESSING);
    let moved = move_no_replace(&dir.join(name), &processing.join(name))?;
    if moved == Moved::Yes {
        remove_if_there(&marker(&processing, name))?;
    }
    Ok(moved)
}

/// `processing/.NAME.committed`.
fn marker(processing: &Path, name: &str) -> PathBuf {
    processing.join(format!(".{name}.committed"))
}

/// `processing/.NAME.result.EXT`.
fn report_in_processing(processing: &Path, name: &str, ext: &str) -> PathBuf {
    processing.join(format!(".{name}.result.{ext}"))
}

/// `PLACE.result.EXT` beside a finished file.
pub fn report_beside(place: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.result.{ext}", place.display()))
}

/// Writes `bytes` to `path` and waits until they are on disk.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Commits `processing/NAME` to `to` (`done/X` or `failed/X`, inside `dir`) with its
/// reports (`(ext, text)` for each of [`REPORTS`]), then moves them all there.
pub fn commit(dir: &Path, name: &str, to: &str, reports: &[(&str, String)]) -> std::io::Result<()> {
    let processing = dir.join(PROCESSING);
    for (ext, text) in reports {
        write_synced(
            &report_in_processing(&processing, name, ext),
            text.as_bytes(),
        )?;
    }
    let tmp = processing.join(format!(".{name}.committed.tmp"));
    write_synced(&tmp, to.as_bytes())?;
    std::fs::rename(&tmp, marker(&processing, name))?;
    complete(dir, name).map(|_| ())
}

/// Finishes the moves of a committed `processing/NAME`: its reports, then the file,
/// then the marker. Where it went (`done/X`), or `None` when it has no marker (it was
/// not committed: it must be imported).
pub fn complete(dir: &Path, name: &str) -> std::io::Result<Option<String>> {
    let processing = dir.join(PROCESSING);
    let at = marker(&processing, name);
    let to = match std::fs::read_to_string(&at) {
        Ok(to) => to,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let place = checked_place(dir, &to).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the commit marker {} names no place of the inbox",
                at.display()
            ),
        )
    })?;
    let moves = REPORTS
        .iter()
        .map(|ext| {
            (
                report_in_processing(&processing, name, ext),
                report_beside(&place, ext),
            )
        })
        .chain([(processing.join(name), place.clone())]);
    for (from, to) in moves {
        match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    remove_if_there(&at)?;
    Ok(Some(to))
}

/// `dir/done/X` or `dir/failed/X` for a marker's `done/X` or `failed/X`; `None` for
/// anything else (a marker is read from a shared folder).
fn checked_place(dir: &Path, to: &str) -> Option<PathBuf> {
    let (outcome, file) = to.split_once('/')?;
    let plain = !file.is_empty() && !file.contains('/') && file != "." && file != "..";
    ([DONE, FAILED].contains(&outcome) && plain).then(|| dir.join(outcome).join(file))
}

/// The names in `processing/`: its files, and the committed ones whose file has moved
/// already but whose marker is still there.
pub fn in_processing(processing: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(processing)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if let Some(committed) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".committed"))
        {
            names.push(committed.to_owned());
        } else if !name.starts_with('.') && e.metadata().is_ok_and(|m| m.is_file()) {
            names.push(name);
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// `dir/file`, or `dir/file.N` for the first N free (a name dropped again keeps the
/// earlier file and its reports).
pub fn unique(dir: &Path, file: &str) -> String {
    let mut to = file.to_owned();
    let mut n = 1;
    while dir.join(&to).exists() || report_beside(&dir.join(&to), "json").exists() {
        to = format!("{file}.{n}");
        n += 1;
    }
    to
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in [PROCESSING, DONE, FAILED] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        dir
    }

    #[test]
    fn a_claim_never_replaces_a_file_of_the_same_name_in_processing() {
        let dir = inbox();
        let d = dir.path();
        std::fs::write(d.join("a.csv"), "first").unwrap();
        assert_eq!(claim(d, "a.csv").unwrap(), Moved::Yes);
        std::fs::write(d.join("a.csv"), "second").unwrap();
        assert_eq!(claim(d, "a.csv").unwrap(), Moved::Busy);
        assert_eq!(
            std::fs::read_to_string(d.join("processing/a.csv")).unwrap(),
            "first"
        );
        assert_eq!(std::fs::read_to_string(d.join("a.csv")).unwrap(), "second");
        assert_eq!(claim(d, "b.csv").unwrap(), Moved::Gone);
    }

    #[test]
    fn a_claim_stopped_between_link_and_removal_is_finished_not_claimed_twice() {
        let dir = inbox();
        let d = dir.path();
        std::fs::write(d.join("a.csv"), "x").unwrap();
        std::fs::hard_link(d.join("a.csv"), d.join("processing/a.csv")).unwrap();
        assert_eq!(claim(d, "a.csv").unwrap(), Moved::Gone);
        assert!(!d.join("a.csv").exists());
        assert!(d.join("processing/a.csv").exists());
    }

    #[test]
    fn a_committed_file_is_moved_with_its_reports_even_after_a_stop_midway() {
        let dir = inbox();
        let d = dir.path();
        std::fs::write(d.join("processing/a.csv"), "rows").unwrap();
        assert_eq!(complete(d, "a.csv").unwrap(), None, "not committed");
        let reports = [("json", "{}".to_owned()), ("txt", "ok".to_owned())];
        // A stop right after the marker: reports and marker in processing/.
        for (ext, text) in &reports {
            std::fs::write(
                report_in_processing(&d.join(PROCESSING), "a.csv", ext),
                text,
            )
            .unwrap();
        }
        std::fs::write(marker(&d.join(PROCESSING), "a.csv"), "done/a.csv.1").unwrap();
        // … and after the json report had moved.
        std::fs::rename(
            report_in_processing(&d.join(PROCESSING), "a.csv", "json"),
            d.join("done/a.csv.1.result.json"),
        )
        .unwrap();
        assert_eq!(in_processing(&d.join(PROCESSING)).unwrap(), ["a.csv"]);
        assert_eq!(
            complete(d, "a.csv").unwrap().as_deref(),
            Some("done/a.csv.1")
        );
        assert_eq!(
            std::fs::read_to_string(d.join("done/a.csv.1")).unwrap(),
            "rows"
        );
        assert!(d.join("done/a.csv.1.result.txt").exists());
        assert!(in_processing(&d.join(PROCESSING)).unwrap().is_empty());
    }

    #[test]
    fn a_marker_naming_a_place_outside_the_inbox_is_refused() {
        let dir = inbox();
        let d = dir.path();
        std::fs::write(marker(&d.join(PROCESSING), "a.csv"), "done/../../etc").unwrap();
        assert!(complete(d, "a.csv").is_err());
        assert_eq!(checked_place(d, "failed/x"), Some(d.join("failed/x")));
        assert_eq!(checked_place(d, "processing/x"), None);
    }
}
