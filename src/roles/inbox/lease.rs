//! Leases of the files in `processing/`: which replica is importing a file, so that
//! another one — on this machine or on another machine of a shared folder — neither
//! imports it at the same time nor leaves it there when that replica has died.
//!
//! The replica that claims `processing/NAME` writes `processing/.NAME.lease` (its
//! holder id and a beat count) and a thread of its own rewrites it every poll interval
//! while it imports. Any replica that finds a file in `processing/` it does not hold
//! reads the lease at each poll: a lease whose content has not changed for
//! [`STALE_POLLS`] poll intervals, *as this replica saw it*, is stale, and the file is
//! taken over (its lease renamed away, a new one created exclusively — of several
//! replicas, one wins). Staleness is judged by what a replica observes over its own
//! monotonic clock, never by comparing a file's mtime with its wall clock, so the
//! clocks of the machines sharing the folder need not agree. A file in `processing/`
//! without a lease (written by an older version, or a crash right after the claim) is
//! stale the same way once nothing has appeared for that long. A lease naming a process
//! of this kernel and pid namespace that no longer runs is stale at once: a process
//! restarted after a crash resumes its file without waiting.
//!
//! A replica that stopped beating for that long (a stopped VM resumed, say) finds
//! another holder in the lease at its next beat and gives the file up; at worst both
//! imported some of it for a moment, and the event ids make the second copy of every
//! line a duplicate.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

/// A lease unchanged for this many poll intervals is stale: 20 beats missed in a row
/// (20 s at the default poll of one second) is a dead or frozen replica, not a slow
/// disk or a busy machine.
pub const STALE_POLLS: u32 = 20;

/// The first line of every lease, so a file of another kind is never taken for one.
const MAGIC: &str = "mieruka inbox lease";

/// This process, as its leases name it: host, process id and start instant, so two
/// processes never share an id even with the same pid on two machines; then where the
/// process runs (the kernel's boot id and the pid namespace) and its start time in the
/// kernel's ticks, so a replica on the same kernel and pid namespace can tell at once
/// that the holder is gone.
#[derive(Debug, Clone)]
pub struct Holder {
    id: String,
    /// A token for this holder's temporary file names (no host name in a file name).
    tmp: String,
    /// The boot id and pid namespace of this process: `None` where they cannot be read.
    here: Option<String>,
}

/// `/proc/PID/stat`'s start time (field 22), which tells a process from a later one
/// given the same pid.
fn start_time(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: count the fields after its closing parenthesis.
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(19).map(str::to_owned)
}

/// The boot id and pid namespace of this process, as one word.
fn kernel_and_namespace() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}/{}", boot.trim(), ns.to_str()?))
}

impl Holder {
    /// The holder id of this process.
    pub fn this_process() -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
            .unwrap_or_else(|| "unknown-host".into());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let pid = std::process::id();
        let here = kernel_and_namespace();
        let local = here
            .as_deref()
            .zip(start_time("self"))
            .map_or(String::new(), |(h, t)| format!(" {h} {t}"));
        Holder {
            id: format!("{host} {pid} {nanos}{local}"),
            tmp: format!("{pid}_{nanos}"),
            here,
        }
    }

    /// Whether the lease `text` names a process of this kernel and pid namespace that
    /// no longer runs (its pid is free, or taken by a later process): a restart after a
    /// crash resumes its file at once instead of waiting for the lease to go stale.
    fn is_gone_here(&self, text: &str) -> bool {
        let Some(here) = self.here.as_deref() else {
            return false;
        };
        let Some(id) = holder_of(text) else {
            return false;
        };
        match id.split(' ').collect::<Vec<_>>()[..] {
            [_, pid, _, place, started] if place == here => {
                start_time(pid).is_none_or(|now| now != started)
            }
            _ => false,
        }
    }

    fn lease(&self, beat: u64) -> String {
        format!("{MAGIC}\nholder: {}\nbeat: {beat}\n", self.id)
    }
}

/// `processing/.NAME.lease`.
pub fn path(processing: &Path, name: &str) -> PathBuf {
    processing.join(format!(".{name}.lease"))
}

/// The holder a complete lease names; `None` for a partial or foreign file.
fn holder_of(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
    let (line, rest) = rest.split_once('\n')?;
    let holder = line.strip_prefix("holder: ")?;
    rest.starts_with("beat: ")
        .then_some(())
        .filter(|()| rest.ends_with('\n'))?;
    Some(holder)
}

/// Writes `text` beside `to` and renames it over `to`, so a reader never sees half of it.
fn write_replacing(to: &Path, text: &str, holder: &Holder) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.{}.tmp", to.display(), holder.tmp));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, to).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Creates `to` with `text` unless it exists (`Ok(false)` then).
fn create_new(to: &Path, text: &str) -> std::io::Result<bool> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
    {
        Ok(mut f) => f.write_all(text.as_bytes()).map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// A lease this process holds: a thread rewrites it every `beat` until it is released.
pub struct Held {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    lost: CancellationToken,
    path: PathBuf,
    holder: Holder,
}

impl Held {
    /// Starts holding `path` just after claiming its file: the lease is written at once.
    pub fn claimed(path: PathBuf, holder: &Holder, beat: Duration) -> std::io::Result<Held> {
        write_replacing(&path, &holder.lease(0), holder)?;
        Ok(Held::beating(path, holder, beat))
    }

    /// Takes over a file whose lease was seen unchanged as `seen` (`None`: no lease) for
    /// the stale time. `None` when the lease moved meanwhile or another replica took it
    /// over first.
    pub fn take_over(
        path: PathBuf,
        holder: &Holder,
        seen: Option<&[u8]>,
        beat: Duration,
    ) -> std::io::Result<Option<Held>> {
        if std::fs::read(&path).ok().as_deref() != seen {
            return Ok(None);
        }
        if seen.is_some() {
            // Of several replicas renaming the stale lease away, one succeeds.
            let away = PathBuf::from(format!("{}.{}.stale", path.display(), holder.tmp));
            match std::fs::rename(&path, &away) {
                Ok(()) => std::fs::remove_file(&away)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        if !create_new(&path, &holder.lease(0))? {
            return Ok(None);
        }
        Ok(Some(Held::beating(path, holder, beat)))
    }

    fn beating(path: PathBuf, holder: &Holder, beat: Duration) -> Held {
        let (stop, stopped) = mpsc::channel::<()>();
        let lost = CancellationToken::new();
        let thread = {
            let (path, holder, lost) = (path.clone(), holder.clone(), lost.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(beat) {
                    n += 1;
                    if !renew(&path, &holder, n) {
                        lost.cancel();
                        return;
                    }
                }
            })
        };
        Held {
            stop: Some(stop),
            thread: Some(thread),
            lost,
            path,
            holder: holder.clone(),
        }
    }

    /// Cancelled when another replica has taken the file over.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops beating and removes the lease, if it is still this process's.
    pub fn release(mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .is_some_and(|t| holder_of(&t) == Some(self.holder.id.as_str()));
        if ours {
            if let Err(error) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), %error, "Cannot remove the lease of a finished file.");
            }
        }
    }
}

/// One beat: rewrites the lease while it is ours; false once another holder has it.
fn renew(path: &Path, holder: &Holder, n: u64) -> bool {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // Renamed away by a replica taking it over: it must create it anew, exclusively.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return create_new(path, &holder.lease(n)).is_ok();
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "Cannot read the lease of the file in hand; trying again at the next beat.");
            return true;
        }
    };
    match holder_of(&text) {
        Some(h) if h == holder.id => {
            if let Err(error) = write_replacing(path, &holder.lease(n), holder) {
                tracing::warn!(path = %path.display(), %error, "Cannot renew the lease of the file in hand; trying again at the next beat.");
            }
            true
        }
        Some(_) => false,
        // Being written by another replica: read it again at the next beat.
        None => true,
    }
}

/// What this replica has seen of the leases of files it does not hold: the content and
/// since when it has not changed.
#[derive(Default)]
pub struct Observed {
    seen: HashMap<String, (Option<Vec<u8>>, Instant)>,
}

impl Observed {
    /// Looks at the leases of `names` (files in `processing/` this replica does not
    /// hold) and returns those unchanged for `stale`, or whose holder `here` sees gone,
    /// with the content last seen.
    pub fn stale(
        &mut self,
        processing: &Path,
        names: &[String],
        (stale, here): (Duration, &Holder),
    ) -> Vec<(String, Option<Vec<u8>>)> {
        self.seen.retain(|n, _| names.contains(n));
        let mut out = Vec::new();
        for name in names {
            let now = std::fs::read(path(processing, name)).ok();
            let entry = self
                .seen
                .entry(name.clone())
                .or_insert_with(|| (now.clone(), Instant::now()));
            let gone = now
                .as_deref()
                .and_then(|t| std::str::from_utf8(t).ok())
                .is_some_and(|t| here.is_gone_here(t));
            if entry.0 != now && !gone {
                *entry = (now, Instant::now());
            } else if gone || entry.1.elapsed() >= stale {
                out.push((name.clone(), now));
            }
        }
        out
    }

    /// Forgets a name, so it is observed afresh (after this replica took it over).
    pub fn forget(&mut self, name: &str) {
        self.seen.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_names_its_holder_only_when_complete() {
        let h = Holder::this_process();
        let text = h.lease(3);
        assert_eq!(holder_of(&text), Some(h.id.as_str()));
        assert_eq!(holder_of(&text[..text.len() - 1]), None);
        assert_eq!(holder_of("holder: x\nbeat: 1\n"), None);
    }

    #[test]
    fn a_stale_lease_is_taken_over_by_one_replica_and_its_holder_gives_the_file_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "a.csv");
        let beat = Duration::from_millis(20);
        let (first, second) = (Holder::this_process(), Holder::this_process());
        let held = Held::claimed(p.clone(), &first, Duration::from_secs(3600)).unwrap();
        let seen = std::fs::read(&p).unwrap();
        let taken = Held::take_over(p.clone(), &second, Some(&seen), beat)
            .unwrap()
            .unwrap();
        // A third replica that saw the same stale lease comes too late.
        let third = Holder::this_process();
        assert!(Held::take_over(p.clone(), &third, Some(&seen), beat)
            .unwrap()
            .is_none());
        // The first holder's next beat finds the second in the lease.
        assert!(!renew(&p, &first, 1));
        held.release();
        assert!(
            p.exists(),
            "the first holder removed the new holder's lease"
        );
        taken.release();
        assert!(!p.exists());
    }

    #[test]
    fn a_lease_of_a_process_gone_from_this_machine_is_stale_at_once() {
        let h = Holder::this_process();
        // This process: alive.
        assert!(!h.is_gone_here(&h.lease(1)));
        // The same process id and place with another start time: a later process.
        let mut words: Vec<&str> = h.id.split(' ').collect();
        assert_eq!(words.len(), 5, "{}", h.id);
        words[4] = "1";
        let later = Holder {
            id: words.join(" "),
            ..h.clone()
        };
        assert!(h.is_gone_here(&later.lease(1)));
        // Another machine or pid namespace: only its lease's beats can tell.
        words[3] = "another-boot/pid:[1]";
        let elsewhere = Holder {
            id: words.join(" "),
            ..h.clone()
        };
        assert!(!h.is_gone_here(&elsewhere.lease(1)));
    }

    #[test]
    fn a_lease_that_keeps_beating_is_never_stale() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "a.csv");
        let h = Holder::this_process();
        let held = Held::claimed(p, &h, Duration::from_millis(10)).unwrap();
        let mut seen = Observed::default();
        let names = vec!["a.csv".to_owned()];
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            assert!(seen
                .stale(dir.path(), &names, (Duration::from_millis(100), &h))
                .is_empty());
            std::thread::sleep(Duration::from_millis(5));
        }
        held.release();
        let until = Instant::now() + Duration::from_secs(5);
        while seen
            .stale(dir.path(), &names, (Duration::from_millis(100), &h))
            .is_empty()
        {
            assert!(
                Instant::now() < until,
                "a file with no lease never went stale"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
