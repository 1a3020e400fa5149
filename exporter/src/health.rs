//! Pipeline health: what happened to the events each source sent, when each source was
//! last heard from, how long commits take, how stale the served snapshot is, and (in
//! the Kafka role) how far the consumers lag.
//!
//! Each role exports only the series that mean something in it ([`Role`]): a series that
//! a role cannot move (a snapshot age where no snapshot is computed, counters that stay
//! at zero) would be read by rules and dashboards as a fact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError, RwLock};

use mieruka_ingest::{Reason, Status};

use crate::calendar::Schedule;
use crate::feeds::FeedState;
use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};

/// The `source` label of events from a source that is not configured (defined once, in
/// the ingest crate: the label comes from configuration, never from request data).
pub use mieruka_ingest::UNKNOWN_SOURCE;

/// Commit latency buckets, in seconds: a batch commit on SQLite or PostgreSQL takes a
/// millisecond when all is well and seconds when the disk or the database struggles;
/// past 10 s the feed is effectively stopped and the count above the last bucket says so.
const COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The role a process plays, which decides the health series it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process on SQLite: receives, commits, serves the KPIs.
    Standalone,
    /// HTTP (and inboxes) to Kafka: counts its refusals and produce latency.
    Ingest,
    /// Kafka to PostgreSQL: counts what it commits, commit latency, consumer lag.
    Aggregate,
    /// Serves the KPIs from PostgreSQL: snapshot age, when each source was last heard from.
    Export,
}

impl Role {
    /// Whether the role serves the KPI figures (and so their snapshot and freshness).
    pub fn serves_kpis(self) -> bool {
        matches!(self, Role::Standalone | Role::Export)
    }

    /// Whether the role decides what becomes of events (counts and commit latency).
    fn counts_events(self) -> bool {
        !matches!(self, Role::Export)
    }

    /// Whether the role takes files from `[[inbox]]` folders.
    fn takes_files(self) -> bool {
        matches!(self, Role::Standalone | Role::Ingest)
    }
}

/// The pipeline's health metrics, in a registry of their own.
///
/// The KPI part of the exposition is rendered separately, once per snapshot.
pub struct Health {
    registry: Registry,
    /// Configured source labels, `unknown` included: the only values `source` may take.
    /// A std lock: held only to look a label up or add sources, never across an await.
    sources: RwLock<BTreeSet<String>>,
    /// Whether this role counts events (and so starts their series at 0).
    counts_events: bool,
    events: IntCounterVec,
    last_received: GaugeVec,
    commit_duration: Histogram,
    /// Label-less vector rather than a plain gauge, so that the series is absent (not 0)
    /// until a snapshot has been published.
    snapshot_age: GaugeVec,
    consumer_lag: GaugeVec,
    /// Files of each `[[inbox]]` by outcome (done, failed).
    inbox_files: IntCounterVec,
    /// Lines of each `[[inbox]]`'s files by outcome (accepted, duplicate, rejected).
    inbox_lines: IntCounterVec,
    /// When each `[[inbox]]` last finished a file.
    inbox_last_file: GaugeVec,
    /// Each `[[inbox]]` and what its last finished file came to, for the status page.
    inbox_last: Mutex<BTreeMap<String, Option<InboxLast>>>,
    /// When each scheduled source's next arrival is due (roles that serve the KPIs).
    next_due: GaugeVec,
    /// What the next-due instants are computed from; a std lock, because nothing awaits
    /// while it is held.
    feeds: Mutex<Feeds>,
}

/// The sources with a schedule, and their arrivals.
#[derive(Default)]
struct Feeds {
    /// Per source, its cadence on its calendar (`[sources.NAME]`).
    schedules: BTreeMap<String, Schedule>,
    /// Per inbox, the sources its files count as an arrival of.
    inbox_sources: BTreeMap<String, Vec<String>>,
    /// Per source, when it was last heard from, as the store keeps it.
    heard: BTreeMap<String, f64>,
    /// Per source, when an inbox listing it last finished a file (even an empty or
    /// unreadable one, which leaves the store's time alone).
    inbox_arrivals: BTreeMap<String, f64>,
    /// Per source, when one of its events last arrived as the store keeps it (`None`:
    /// never), for the pages (`heard` counts a never-heard source from its declaration).
    received: BTreeMap<String, Option<f64>>,
}

impl Feeds {
    /// Each scheduled source's next-due instant (Unix seconds), from its latest arrival.
    fn next_due(&self) -> BTreeMap<&str, i64> {
        let mut out = BTreeMap::new();
        for (source, schedule) in &self.schedules {
            let heard = self.heard.get(source).copied();
            let filed = self.inbox_arrivals.get(source).copied();
            let last = match (heard, filed) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(last) = last {
                out.insert(source.as_str(), schedule.next_due(last));
            }
        }
        out
    }
}

/// What an inbox's last finished file came to.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxLast {
    /// `done` or `failed`.
    pub outcome: String,
    /// Its lines: accepted, duplicate, rejected.
    pub lines: [u64; 3],
    /// When it was finished.
    pub at_unix_seconds: f64,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Health metrics of the standalone role for the configured `sources` (`unknown` is
    /// always added).
    pub fn new<S: AsRef<str>>(sources: &[S]) -> Self {
        Self::for_role(Role::Standalone, sources)
    }

    /// Health metrics of `role` for the configured `sources` (`unknown` is always added).
    ///
    /// Every (source, outcome, reason) series of `mieruka_events_total` starts at 0, so
    /// that rates and alerts see the first event.
    pub fn for_role<S: AsRef<str>>(role: Role, sources: &[S]) -> Self {
        // Names, help texts and label sets are static and every test builds a Health:
        // a failure here is a bug in this file, not a condition to handle at run time.
        #[allow(clippy::expect_used)]
        let health = Self::build(role, sources).expect("health metrics are statically valid");
        health
    }

    fn build<S: AsRef<str>>(role: Role, sources: &[S]) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let sources: BTreeSet<String> = sources
            .iter()
            .map(|s| s.as_ref().to_owned())
            .chain([UNKNOWN_SOURCE.to_owned()])
            .collect();
        let events = IntCounterVec::new(
            Opts::new(
                "mieruka_events_total",
                "Events received, by configured source (unknown when not configured), outcome (accepted, duplicate, rejected) and rejection reason (empty unless rejected).",
            ),
            &["source", "outcome", "reason"],
        )?;
        let last_received = GaugeVec::new(
            Opts::new(
                "mieruka_source_last_received_timestamp_seconds",
                "Unix time at which the last event from the source was received (whatever became of it), kept in the store; for a configured source never heard from, when it was first configured. A feed gone silent stops moving it.",
            ),
            &["source"],
        )?;
        let commit_duration = Histogram::with_opts(
            HistogramOpts::new(
                "mieruka_commit_duration_seconds",
                "Time to make a batch of events durable (the store's commit), in seconds.",
            )
            .buckets(COMMIT_BUCKETS.to_vec()),
        )?;
        let snapshot_age = GaugeVec::new(
            Opts::new(
                "mieruka_snapshot_age_seconds",
                "Seconds since the KPI snapshot being served was published; it grows while the store or the broker is down.",
            ),
            &[],
        )?;
        let consumer_lag = GaugeVec::new(
            Opts::new(
                "mieruka_consumer_lag",
                "Messages between the aggregator's committed offset and the end of the partition (Kafka role only).",
            ),
            &["topic", "partition"],
        )?;
        let next_due = GaugeVec::new(
            Opts::new(
                "mieruka_source_next_due_timestamp_seconds",
                "Unix time by which the source's next arrival is due, from its last arrival (as the store keeps it, or an inbox's last file), its cadence and its calendar; only sources with a cadence in [sources.NAME] have one.",
            ),
            &["source"],
        )?;
        let (inbox_files, inbox_lines, inbox_last_file) = inbox_metrics()?;
        if role.counts_events() {
            registry.register(Box::new(events.clone()))?;
            registry.register(Box::new(commit_duration.clone()))?;
        }
        if role.serves_kpis() {
            registry.register(Box::new(last_received.clone()))?;
            registry.register(Box::new(next_due.clone()))?;
            registry.register(Box::new(snapshot_age.clone()))?;
        }
        if role == Role::Aggregate {
            registry.register(Box::new(consumer_lag.clone()))?;
        }
        if role.takes_files() {
            registry.register(Box::new(inbox_files.clone()))?;
            registry.register(Box::new(inbox_lines.clone()))?;
            registry.register(Box::new(inbox_last_file.clone()))?;
        }
        if role.counts_events() {
            for source in &sources {
                start_at_zero(&events, source)?;
            }
        }
        Ok(Self {
            registry,
            sources: RwLock::new(sources),
            counts_events: role.counts_events(),
            events,
            last_received,
            commit_duration,
            snapshot_age,
            consumer_lag,
            inbox_files,
            inbox_lines,
            inbox_last_file,
            inbox_last: Mutex::new(BTreeMap::new()),
            next_due,
            feeds: Mutex::new(Feeds::default()),
        })
    }

    /// Gives sources a cadence on a calendar (`[sources.NAME]`): from then on
    /// `mieruka_source_next_due_timestamp_seconds` follows their arrivals.
    pub fn set_schedules(&self, schedules: BTreeMap<String, Schedule>) {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        feeds.schedules = schedules;
        self.refresh_next_due(&feeds);
    }

    /// Makes each file an inbox finishes count as an arrival of these sources.
    pub fn set_inbox_sources(&self, inbox: &str, sources: &[String]) {
        self.feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .inbox_sources
            .insert(inbox.to_owned(), sources.to_vec());
    }

    /// Sets each scheduled source's next-due instant from its latest arrival.
    fn refresh_next_due(&self, feeds: &Feeds) {
        self.next_due.reset();
        for (source, due) in feeds.next_due() {
            self.next_due.with_label_values(&[source]).set(due as f64);
        }
    }

    /// Sets when each source's events last arrived, as the store keeps it (`None`:
    /// never), which the pages show beside the next-due instant.
    pub fn set_received<S: AsRef<str>>(&self, sources: &[(S, Option<f64>)]) {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        feeds.received = sources
            .iter()
            .map(|(s, at)| (s.as_ref().to_owned(), *at))
            .collect();
    }

    /// Each source's last arrival (an event, or a file of an inbox listing it) and next
    /// due instant, as `/metrics` publishes them: what the pages show of a feed.
    pub fn feed_states(&self) -> BTreeMap<String, FeedState> {
        let feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        let due = feeds.next_due();
        let mut out: BTreeMap<String, FeedState> = BTreeMap::new();
        let sources = feeds
            .received
            .keys()
            .chain(feeds.inbox_arrivals.keys())
            .chain(feeds.schedules.keys());
        for source in sources {
            let received = feeds.received.get(source).copied().flatten();
            let filed = feeds.inbox_arrivals.get(source).copied();
            let last_arrival = match (received, filed) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            out.insert(
                source.clone(),
                FeedState {
                    last_arrival,
                    next_due: due.get(source.as_str()).copied(),
                },
            );
        }
        out
    }

    /// Starts every series of an inbox (named in the config) at 0.
    pub fn declare_inbox(&self, inbox: &str) {
        self.inbox_last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(inbox.to_owned())
            .or_insert(None);
        for outcome in ["done", "failed"] {
            self.inbox_files.with_label_values(&[inbox, outcome]);
        }
        for outcome in ["accepted", "duplicate", "rejected"] {
            self.inbox_lines.with_label_values(&[inbox, outcome]);
        }
    }

    /// Counts one finished file of an inbox: its outcome (`done`, `failed`), its lines
    /// (accepted, duplicate, rejected) and when.
    pub fn inbox_file(&self, inbox: &str, outcome: &str, lines: [u64; 3], at_unix_seconds: f64) {
        self.inbox_files.with_label_values(&[inbox, outcome]).inc();
        for (o, n) in ["accepted", "duplicate", "rejected"].iter().zip(lines) {
            self.inbox_lines.with_label_values(&[inbox, o]).inc_by(n);
        }
        self.inbox_last_file
            .with_label_values(&[inbox])
            .set(at_unix_seconds);
        let last = InboxLast {
            outcome: outcome.to_owned(),
            lines,
            at_unix_seconds,
        };
        self.inbox_last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(inbox.to_owned(), Some(last));
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        for source in feeds.inbox_sources.get(inbox).cloned().unwrap_or_default() {
            let at = feeds
                .inbox_arrivals
                .entry(source)
                .or_insert(at_unix_seconds);
            *at = at.max(at_unix_seconds);
        }
        self.refresh_next_due(&feeds);
    }

    /// Every declared inbox, by name, with what its last finished file came to.
    pub fn inboxes(&self) -> Vec<(String, Option<InboxLast>)> {
        self.inbox_last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The label for `source`: itself when configured, else `unknown`.
    pub fn source_label(&self, source: &str) -> String {
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        sources
            .get(source)
            .map_or(UNKNOWN_SOURCE, String::as_str)
            .to_owned()
    }

    /// Adds configured sources learnt after start (those another role declared in the
    /// store), their series starting at 0.
    pub fn add_sources<S: AsRef<str>>(&self, more: &[S]) {
        let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
        for source in more {
            if sources.insert(source.as_ref().to_owned()) && self.counts_events {
                if let Err(error) = start_at_zero(&self.events, source.as_ref()) {
                    tracing::error!(%error, "A source's event counters could not start at 0.");
                }
            }
        }
    }

    /// Counts one event's fate under its source's label.
    pub fn record(&self, source: &str, status: &Status) {
        let (outcome, reason) = match status {
            Status::Accepted => ("accepted", ""),
            Status::Duplicate => ("duplicate", ""),
            Status::Rejected(r) => ("rejected", r.reason.as_str()),
        };
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        let label = sources.get(source).map_or(UNKNOWN_SOURCE, String::as_str);
        self.events
            .with_label_values(&[label, outcome, reason])
            .inc();
    }

    /// Sets when each source was last heard from, `(source, Unix seconds)`, as the store
    /// keeps it (its sources are the configured ones of every role): the whole set, so a
    /// source the store no longer lists disappears.
    pub fn set_last_heard<S: AsRef<str>>(&self, sources: &[(S, f64)]) {
        self.last_received.reset();
        for (source, at) in sources {
            self.last_received
                .with_label_values(&[source.as_ref()])
                .set(*at);
        }
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        feeds.heard = sources
            .iter()
            .map(|(s, at)| (s.as_ref().to_owned(), *at))
            .collect();
        self.refresh_next_due(&feeds);
    }

    /// Observes one batch commit's duration.
    pub fn observe_commit(&self, seconds: f64) {
        self.commit_duration.observe(seconds);
    }

    /// Sets a partition's consumer lag (the Kafka role; `topic` comes from its config).
    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, partition.to_string().as_str()])
            .set(lag as f64);
    }

    /// The registry, for other health metrics of the process to join.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets the age of the served snapshot (at render time, from its publish instant).
    pub(crate) fn set_snapshot_age(&self, seconds: f64) {
        let no_labels: [&str; 0] = [];
        self.snapshot_age.with_label_values(&no_labels).set(seconds);
    }

    /// Appends the health exposition to `out`.
    pub(crate) fn encode_into(&self, out: &mut String) {
        if let Err(error) = TextEncoder::new().encode_utf8(&self.registry.gather(), out) {
            // Only a bug gets here: the registry skips empty families and names are static.
            tracing::error!(%error, "Health metrics could not be rendered.");
        }
    }
}

/// Starts every (outcome, reason) series of `source` at 0, so that rates and alerts see
/// its first event.
fn start_at_zero(events: &IntCounterVec, source: &str) -> prometheus::Result<()> {
    for outcome in ["accepted", "duplicate"] {
        events.get_metric_with_label_values(&[source, outcome, ""])?;
    }
    for reason in Reason::ALL {
        events.get_metric_with_label_values(&[source, "rejected", reason.as_str()])?;
    }
    Ok(())
}

/// The metrics of the `[[inbox]]` folders: files and lines by outcome, and when each
/// last finished a file.
fn inbox_metrics() -> prometheus::Result<(IntCounterVec, IntCounterVec, GaugeVec)> {
    let inbox_files = IntCounterVec::new(
        Opts::new(
            "mieruka_inbox_files_total",
            "Files taken from an inbox folder, by inbox and outcome (done: imported; failed: could not be read at all).",
        ),
        &["inbox", "outcome"],
    )?;
    let inbox_lines = IntCounterVec::new(
        Opts::new(
            "mieruka_inbox_lines_total",
            "Lines of the files of an inbox folder, by inbox and outcome (accepted — for processing, in the ingest role —, duplicate, rejected).",
        ),
        &["inbox", "outcome"],
    )?;
    let inbox_last_file = GaugeVec::new(
        Opts::new(
            "mieruka_inbox_last_file_timestamp_seconds",
            "Unix time at which the inbox last finished a file (done or failed).",
        ),
        &["inbox"],
    )?;
    Ok((inbox_files, inbox_lines, inbox_last_file))
}
