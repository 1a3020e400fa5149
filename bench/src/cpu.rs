//! CPU time of the bench's own process and of the PostgreSQL cluster's processes, from
//! `/proc/PID/stat` (user + system time), so the Kafka bench can say what an event costs
//! all in: the aggregator's work and PostgreSQL's (the log write, its index, the
//! aggregate rows, and the background processes that write them out).
//!
//! The cluster is found through its processes' titles: the postmaster is the parent of
//! the backend whose title names the bench database. Its children are read from
//! `/proc/PID/task/PID/children` every [`SAMPLE`] and sorted by title: the bench
//! database's backends, background processes (checkpointer, background writer,
//! walwriter, autovacuum, the postmaster itself…), and backends of other databases, which
//! are not counted (other programs share the server) but reported, so a reader sees how
//! busy the server was. A process that exits between two samples loses its last
//! [`SAMPLE`] of CPU; the postmaster's `cutime` (its reaped children, other databases'
//! connections included) is not counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, fixed at 100 by Linux's ABI).
const USER_HZ: f64 = 100.0;

/// How often the cluster's processes are read.
const SAMPLE: Duration = Duration::from_millis(100);

/// A process's parent and its user + system CPU time in clock ticks.
fn stat(pid: &str) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15), numbered from pid = 1.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// This process's CPU time so far, in seconds.
pub fn own_seconds() -> f64 {
    stat("self").map_or(0.0, |(_, t)| t as f64 / USER_HZ)
}

/// A process's title (`postgres: …` for PostgreSQL's), its arguments joined by spaces.
fn title(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// What a process of the cluster is, for the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A backend connected to the bench database.
    Bench,
    /// The postmaster and the processes that serve every database.
    Background,
    /// A backend connected to another database.
    OtherDatabase,
}

/// A backend's title is `postgres: [cluster: ]user database host(port) state`; the
/// background processes' are names (`checkpointer`, `walwriter`, `autovacuum worker`…).
fn kind(title: &str, database: &str) -> Kind {
    let words: Vec<&str> = title.split_whitespace().collect();
    let is_client = |w: &[&str]| {
        w.get(2)
            .is_some_and(|h| h.ends_with(')') || h.starts_with("[local]"))
    };
    // With and without a `cluster_name` prefix.
    for skip in [1, 2] {
        let w = words.get(skip..).unwrap_or(&[]);
        if is_client(w) {
            return if w.get(1) == Some(&database) {
                Kind::Bench
            } else {
                Kind::OtherDatabase
            };
        }
    }
    Kind::Background
}

/// One process's ticks: when first seen and when last seen.
struct Seen {
    kind: Kind,
    first: u64,
    last: u64,
}

/// The sampler's tally.
#[derive(Default)]
struct Tally {
    seen: HashMap<u32, Seen>,
}

/// CPU-seconds the cluster's processes used while [`PgCpu`] ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgSeconds {
    /// Backends of the bench database.
    pub bench: f64,
    /// The postmaster and the background processes.
    pub background: f64,
    /// Backends of other databases (not counted; shows how busy the server was).
    pub other: f64,
}

/// Samples the cluster's processes on a thread of its own until [`PgCpu::stop`].
pub struct PgCpu {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Tally>,
}

impl PgCpu {
    /// Starts sampling the cluster serving `database`, found through the title of one
    /// of its backends (connect to it first); `None` when no such process is on this
    /// machine (a remote server: its CPU is not measured).
    pub fn start(database: &str) -> Option<PgCpu> {
        let postmaster = find_postmaster(database)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let database = database.to_owned();
        let handle = std::thread::spawn(move || {
            let mut tally = Tally::default();
            let mut first = true;
            loop {
                sample(&mut tally, postmaster, &database, first);
                first = false;
                if flag.load(Ordering::Relaxed) {
                    return tally;
                }
                std::thread::sleep(SAMPLE);
            }
        });
        Some(PgCpu { stop, handle })
    }

    /// Takes a last sample and sums the CPU used since [`PgCpu::start`].
    pub fn stop(self) -> PgSeconds {
        self.stop.store(true, Ordering::Relaxed);
        let tally = self.handle.join().unwrap_or_default();
        let mut out = PgSeconds::default();
        for s in tally.seen.values() {
            let used = s.last.saturating_sub(s.first) as f64 / USER_HZ;
            match s.kind {
                Kind::Bench => out.bench += used,
                Kind::Background => out.background += used,
                Kind::OtherDatabase => out.other += used,
            }
        }
        out
    }
}

/// The parent of the process whose title names `database` as a backend's.
fn find_postmaster(database: &str) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| {
            title(pid).starts_with("postgres:") && kind(&title(pid), database) == Kind::Bench
        })
        .and_then(|pid| stat(&pid.to_string()).map(|(ppid, _)| ppid))
}

/// Reads the postmaster and its children once. Processes there at the first sample
/// count from their ticks then; those that appear later from zero (they started since).
fn sample(tally: &mut Tally, postmaster: u32, database: &str, first: bool) {
    let children =
        std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children"))
            .unwrap_or_default();
    let pids = std::iter::once(postmaster).chain(
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok()),
    );
    for pid in pids {
        let Some((_, ticks)) = stat(&pid.to_string()) else {
            continue;
        };
        match tally.seen.get_mut(&pid) {
            Some(s) => s.last = s.last.max(ticks),
            None => {
                let kind = if pid == postmaster {
                    Kind::Background
                } else {
                    kind(&title(pid), database)
                };
                let start = if first { ticks } else { 0 };
                tally.seen.insert(
                    pid,
                    Seen {
                        kind,
                        first: start,
                        last: ticks,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_sort_backends_by_database_and_the_rest_as_background() {
        let db = "mieruka_bench_1";
        for (title, want) in [
            (
                "postgres: 15/main: postgres mieruka_bench_1 127.0.0.1(5432) idle",
                Kind::Bench,
            ),
            (
                "postgres: postgres mieruka_bench_1 127.0.0.1(5432) COPY",
                Kind::Bench,
            ),
            (
                "postgres: 15/main: postgres other_db [local] idle",
                Kind::OtherDatabase,
            ),
            ("postgres: 15/main: checkpointer", Kind::Background),
            ("postgres: walwriter", Kind::Background),
            ("postgres: 15/main: background writer", Kind::Background),
            (
                "postgres: 15/main: autovacuum worker mieruka_bench_1",
                Kind::Background,
            ),
        ] {
            assert_eq!(kind(title, db), want, "{title}");
        }
    }

    #[test]
    fn own_cpu_time_is_read_and_grows() {
        let before = own_seconds();
        let mut x = 0u64;
        let mut spent = 0.0;
        // Burn at least a few clock ticks of CPU (no wall-clock assertion: CPU only;
        // bounded, so a reader that always says 0 fails instead of spinning).
        for _ in 0..100_000 {
            if spent >= 0.05 {
                break;
            }
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            spent = own_seconds() - before;
        }
        std::hint::black_box(x);
        assert!(spent >= 0.05);
    }
}
