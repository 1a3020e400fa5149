//! `mieruka-bench kafka`: Kafka → aggregates committed in PostgreSQL, end to end, side by
//! side with a bare rdkafka consumer draining the same topic from the same broker, so the
//! ratio of the two rates comes from one run on one machine (docs/architecture.md's target: the
//! aggregator reaches ≥ 0.8 of the bare consumer's rate). A benchmark, never a test:
//! nothing is asserted on the figures, only on the correctness of the result.
//!
//! Steps: start a `tansu` broker (memory engine) on a free port unless `--brokers` is
//! given; create a fresh PostgreSQL database; create a topic; produce the synthetic events
//! of [`crate::events::event`] (idempotent, `acks=all`, batched); then drain the topic
//! (1) with a bare `BaseConsumer` in a fresh group and (2) with the `aggregate` role's
//! [`Aggregator`] in another fresh group, until the offsets stored in PostgreSQL reach the
//! end of every partition; finally check the ledger against sums computed while producing.
//! The broker (if started here) and the database are removed at the end, on error too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mieruka_aggregator::consumer::{consumer_config, Aggregator, AggregatorOptions, NoObserver};
use mieruka_aggregator::store::PgStore;
use mieruka_aggregator::Plan;
use mieruka_ingest::kafka::rdkafka;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use tokio_util::sync::CancellationToken;

use crate::cpu::{own_seconds, PgCpu, PgSeconds};
use crate::events::{bench_plan, event, event_with_random_id, rss_mib};
use mieruka_testkit::pg::TestDb;
use mieruka_testkit::tansu::Tansu;

/// How long a phase may go without progress before the bench gives up.
const STALL: Duration = Duration::from_secs(120);

/// What `mieruka-bench kafka` is asked to do.
#[derive(Debug, Clone)]
pub struct KafkaBenchOptions {
    /// Events to produce and drain.
    pub events: u64,
    /// Partitions of the bench topic.
    pub partitions: i32,
    /// An existing broker (`HOST:PORT`, comma-separated); none: start `tansu` here.
    pub brokers: Option<String>,
    /// PostgreSQL URL whose server gets the fresh bench database.
    pub database_url: String,
    /// Most events per aggregator transaction.
    pub max_batch: usize,
    /// Aggregator batches committing at once.
    pub parallel_commits: usize,
    /// Event ids in no order (like UUIDs) instead of increasing within each source.
    pub random_ids: bool,
    /// Times the topic is drained (by a bare consumer, then by the aggregator on a fresh
    /// database); the events are produced once.
    pub runs: usize,
    /// Experiments on the log's key index, applied to each fresh bench database before
    /// the aggregator starts (see [`KeyExperiment`]), taken in turn run after run.
    pub key_experiments: Vec<KeyExperiment>,
}

/// Experiments on the event log's key index, to measure an idea before building it: the
/// bench database's log gets another unique key in place of its primary key
/// (`source`, `event_id`). Only the aggregator's optimistic path (every key new, as in
/// the bench) is exercised; looking keys up is not, so these are measurements, not stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum KeyExperiment {
    /// The store as it is.
    None,
    /// The log in one generation, never sealed: one key index over every logged event,
    /// as before the log had generations (migration 0010).
    OneGeneration,
    /// Generations sealed at 32 MiB of keys instead of 8.
    #[value(name = "seal-32mib")]
    Seal32Mib,
    /// Generations sealed at 16 MiB of keys instead of 8.
    #[value(name = "seal-16mib")]
    Seal16Mib,
    /// A 128-bit hash of source and id (`md5(…)::uuid`, 16 bytes) as the unique key.
    Md5Uuid,
    /// A 64-bit hash (8 bytes) as the unique key: the floor of what a compact key gives.
    Md5Int8,
    /// The unique key ordered (generation, source, event_id), as before migration 0011.
    SourceFirst,
}

impl KeyExperiment {
    /// What the run's lines call it.
    fn label(self) -> &'static str {
        match self {
            KeyExperiment::None => "the store as it is",
            KeyExperiment::OneGeneration => "EXPERIMENT: the log in one generation, never sealed",
            KeyExperiment::Seal32Mib => "EXPERIMENT: generations sealed at 32 MiB of keys",
            KeyExperiment::Seal16Mib => "EXPERIMENT: generations sealed at 16 MiB of keys",
            KeyExperiment::Md5Uuid => "EXPERIMENT: the log's unique key is md5(source/id)::uuid",
            KeyExperiment::Md5Int8 => "EXPERIMENT: the log's unique key is a 64-bit md5 prefix",
            KeyExperiment::SourceFirst => {
                "EXPERIMENT: the log's key ordered (generation, source, event_id), as before 0011"
            }
        }
    }

    /// The statements that swap the log's unique key.
    fn statements(self) -> &'static [&'static str] {
        match self {
            KeyExperiment::None
            | KeyExperiment::OneGeneration
            | KeyExperiment::Seal32Mib
            | KeyExperiment::Seal16Mib => &[],
            KeyExperiment::Md5Uuid => &[
                "ALTER TABLE event_log ADD COLUMN key UUID \
                 GENERATED ALWAYS AS (md5(source || '/' || event_id)::uuid) STORED",
                "ALTER TABLE event_log DROP CONSTRAINT event_log_key",
                "ALTER TABLE event_log ADD CONSTRAINT event_log_key UNIQUE (generation, key)",
            ],
            KeyExperiment::Md5Int8 => &[
                "ALTER TABLE event_log ADD COLUMN key BIGINT GENERATED ALWAYS AS \
                 (('x' || substr(md5(source || '/' || event_id), 1, 16))::bit(64)::bigint) STORED",
                "ALTER TABLE event_log DROP CONSTRAINT event_log_key",
                "ALTER TABLE event_log ADD CONSTRAINT event_log_key UNIQUE (generation, key)",
            ],
            KeyExperiment::SourceFirst => &[
                "ALTER TABLE event_log DROP CONSTRAINT event_log_key",
                "ALTER TABLE event_log ADD CONSTRAINT event_log_key \
                 UNIQUE (generation, source, event_id)",
            ],
        }
    }
}

/// Runs the bench and prints its tables; cleans up the broker and databases whatever
/// happens.
pub async fn kafka(opts: KafkaBenchOptions) -> anyhow::Result<()> {
    if opts.events == 0
        || opts.partitions < 1
        || opts.max_batch == 0
        || opts.parallel_commits == 0
        || opts.runs == 0
        || opts.key_experiments.is_empty()
    {
        bail!(
            "--events, --partitions, --max-batch, --parallel-commits and --runs must be at least 1"
        );
    }
    let suffix = mieruka_testkit::unique("bench");
    let log = std::env::temp_dir().join(format!("mieruka-bench-tansu-{suffix}.log"));
    let tansu = match &opts.brokers {
        Some(_) => None,
        None => Some(Tansu::start(&log)?),
    };
    let broker = Broker {
        brokers: opts
            .brokers
            .clone()
            .or_else(|| tansu.as_ref().map(Tansu::brokers))
            .unwrap_or_default(),
        started_here: tansu.is_some(),
    };
    let result = run(&opts, &broker, &suffix).await;
    drop(tansu);
    let _ = std::fs::remove_file(&log);
    result
}

/// The broker the bench runs against.
struct Broker {
    /// `bootstrap.servers`.
    brokers: String,
    /// Whether this process started it (`tansu`, memory engine).
    started_here: bool,
}

/// One phase's figures.
struct Row {
    name: &'static str,
    events: u64,
    seconds: f64,
    /// Seconds until the first message (consumers) or the first commit (aggregator).
    first: Option<f64>,
    peak_mib: f64,
    rss_mib: f64,
}

impl Row {
    /// A phase's row, with this process's memory as it is now.
    fn now(name: &'static str, events: u64, drained: &Drained) -> Row {
        let (peak_mib, rss_mib) = rss_mib();
        Row {
            name,
            events,
            seconds: drained.seconds,
            first: drained.first,
            peak_mib,
            rss_mib,
        }
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    /// The rate once flowing: events over the time after the first message / commit.
    fn steady(&self) -> Option<f64> {
        let first = self.first?;
        let span = self.seconds - first;
        (span > 0.0).then(|| self.events as f64 / span)
    }

    fn print(&self) {
        let first = self.first.map_or("-".to_owned(), |f| format!("{f:.2}"));
        let steady = self.steady().map_or("-".to_owned(), |s| format!("{s:.0}"));
        println!(
            "{:<34} {:>10} {:>9.2} {:>12.0} {:>9} {:>12} {:>9.1} {:>9.1}",
            self.name,
            self.events,
            self.seconds,
            self.rate(),
            first,
            steady,
            self.peak_mib,
            self.rss_mib
        );
    }
}

/// The bench once the broker is there: produce once, then per run drain twice (a bare
/// consumer, the aggregator on a fresh database) and verify; then the runs' spread.
async fn run(opts: &KafkaBenchOptions, broker: &Broker, suffix: &str) -> anyhow::Result<()> {
    let topic = format!("mieruka.bench.{suffix}");
    let brokers = broker.brokers.clone();
    create_topic(&brokers, &topic, opts.partitions).await?;
    print_header(opts, broker, &topic);
    let (produced, produce_row) = produce_phase(opts, &brokers, &topic).await?;
    compare_watermarks(opts, &brokers, &topic, &produced).await?;
    let plan = Arc::new(bench_plan()?);
    let mut runs = Vec::with_capacity(opts.runs);
    for n in 1..=opts.runs {
        let load_before = load_average();
        let db = TestDb::create_on(&opts.database_url, "mieruka_bench").await?;
        let experiment = opts.key_experiments[(n - 1) % opts.key_experiments.len()];
        if experiment != KeyExperiment::None {
            println!("run {n}/{}: {}", opts.runs, experiment.label());
        }
        let figures = one_run(
            opts,
            experiment,
            &brokers,
            &topic,
            &format!("{suffix}-{n}"),
            &db,
            &plan,
            &produced,
        )
        .await;
        drop(db);
        let (bare_row, agg_row, cpu) = figures?;
        let load = (load_before, load_average());
        let figures = RunFigures::new(&bare_row, &agg_row, &cpu, load);
        figures.print(n, opts.runs, &produce_row);
        runs.push((experiment, figures));
    }
    let mut experiments = opts.key_experiments.clone();
    experiments.sort_unstable();
    experiments.dedup();
    for experiment in experiments {
        let of: Vec<&RunFigures> = runs
            .iter()
            .filter(|(e, _)| *e == experiment)
            .map(|(_, f)| f)
            .collect();
        if !of.is_empty() {
            print_spread(experiment, &of);
        }
    }
    Ok(())
}

/// One run: a bare consumer and the aggregator drain the topic, each in a fresh group;
/// the aggregator's ledger is checked.
#[allow(clippy::too_many_arguments)]
async fn one_run(
    opts: &KafkaBenchOptions,
    experiment: KeyExperiment,
    brokers: &str,
    topic: &str,
    suffix: &str,
    db: &TestDb,
    plan: &Arc<Plan>,
    produced: &Produced,
) -> anyhow::Result<(Row, Row, Cpu)> {
    // A bare rdkafka consumer drains the topic.
    let bare = {
        let (b, t, n) = (brokers.to_owned(), topic.to_owned(), opts.events);
        let group = format!("mieruka-bench-bare-{suffix}");
        tokio::task::spawn_blocking(move || drain_bare(&b, &group, &t, n))
            .await
            .context("the bare consumer thread panicked")??
    };
    let bare_row = Row::now("bare rdkafka consumer", opts.events, &bare);
    bare_row.print();

    // The aggregator folds the topic into PostgreSQL.
    let agg = aggregate(
        brokers,
        &format!("mieruka-bench-aggregators-{suffix}"),
        topic,
        db,
        plan.clone(),
        &produced.ends,
        (opts.max_batch, opts.parallel_commits),
        experiment,
    )
    .await?;
    let agg_row = Row::now("mieruka aggregate → PostgreSQL", opts.events, &agg);
    agg_row.print();
    verify(opts, db.url(), plan.clone(), produced).await?;
    let cpu = Cpu {
        bare: bare.cpu,
        aggregator: agg.cpu,
        postgres: agg.postgres,
    };
    Ok((bare_row, agg_row, cpu))
}

/// CPU-seconds of a run's phases.
struct Cpu {
    /// This process while the bare consumer drained the topic.
    bare: f64,
    /// This process while the aggregator drained it (the aggregator runs in-process).
    aggregator: f64,
    /// The PostgreSQL cluster meanwhile, when it runs on this machine.
    postgres: Option<PgSeconds>,
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`).
fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [f64::NAN; 3];
    for (o, v) in out.iter_mut().zip(text.split_whitespace()) {
        *o = v.parse().unwrap_or(f64::NAN);
    }
    out
}

/// A run's figures; CPU per million events equals microseconds per event.
struct RunFigures {
    ratio: f64,
    steady: Option<f64>,
    /// CPU-seconds per million events of each part.
    bare_cpu: f64,
    aggregator_cpu: f64,
    pg: Option<PgSeconds>,
    /// The machine's 1-minute load average before and after the run.
    load: ([f64; 3], [f64; 3]),
}

impl RunFigures {
    fn new(bare: &Row, agg: &Row, cpu: &Cpu, load: ([f64; 3], [f64; 3])) -> RunFigures {
        let per_million = |s: f64| s * 1e6 / agg.events as f64;
        RunFigures {
            ratio: agg.rate() / bare.rate(),
            steady: agg.steady().zip(bare.steady()).map(|(a, b)| a / b),
            bare_cpu: per_million(cpu.bare),
            aggregator_cpu: per_million(cpu.aggregator),
            pg: cpu.postgres.map(|p| PgSeconds {
                bench: per_million(p.bench),
                background: per_million(p.background),
                other: per_million(p.other),
            }),
            load,
        }
    }

    /// Aggregator + PostgreSQL (bench database's backends and background processes):
    /// CPU-seconds per million events, µs per event.
    fn all_in(&self) -> Option<f64> {
        self.pg
            .map(|p| self.aggregator_cpu + p.bench + p.background)
    }

    fn print(&self, n: usize, runs: usize, produce_row: &Row) {
        let steady = self.steady.map_or("-".to_owned(), |s| format!("{s:.2}"));
        println!(
            "run {n}/{runs}: ratio aggregate / bare: {:.2} wall clock, {steady} steady \
             (target ≥ 0.80); produce {:.0} events/s",
            self.ratio,
            produce_row.rate()
        );
        print!(
            "run {n}/{runs}: CPU-s per million events (= µs per event): aggregator {:.2} \
             (bare consumer {:.2})",
            self.aggregator_cpu, self.bare_cpu
        );
        match (self.pg, self.all_in()) {
            (Some(p), Some(all)) => println!(
                "; PostgreSQL: bench database's backends {:.2} + background processes {:.2}; \
                 all in {all:.2} (target ≤ 5); other databases' backends meanwhile {:.2} (not counted)",
                p.bench, p.background, p.other
            ),
            _ => println!("; PostgreSQL: not measured (its processes are not on this machine)"),
        }
        let [b1, b5, b15] = self.load.0;
        let [a1, a5, a15] = self.load.1;
        println!(
            "run {n}/{runs}: load average before {b1:.2} {b5:.2} {b15:.2}, after {a1:.2} {a5:.2} {a15:.2} \
             ({} cores)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "peak RSS is this one process (producer, bare consumer and the in-process aggregator \
             together); VmHWM only grows, so each row's peak includes the phases before it."
        );
    }
}

/// One figure of a run, if it has it.
type Figure = dyn Fn(&RunFigures) -> Option<f64>;

/// Min / median / max of each figure over the runs.
fn print_spread(experiment: KeyExperiment, runs: &[&RunFigures]) {
    let spread = |mut v: Vec<f64>| -> String {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return "-".to_owned();
        }
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        format!("{:.2} / {median:.2} / {:.2}", v[0], v[v.len() - 1])
    };
    let col =
        |f: &dyn Fn(&RunFigures) -> Option<f64>| spread(runs.iter().filter_map(|r| f(r)).collect());
    println!(
        "over {} run(s) ({}), min / median / max:",
        runs.len(),
        experiment.label()
    );
    let lines: [(&str, &Figure); 10] = [
        ("ratio aggregate / bare, wall clock", &|r| Some(r.ratio)),
        ("ratio aggregate / bare, steady", &|r| r.steady),
        ("CPU µs/event, aggregator", &|r| Some(r.aggregator_cpu)),
        ("CPU µs/event, PostgreSQL bench backends", &|r| {
            r.pg.map(|p| p.bench)
        }),
        ("CPU µs/event, PostgreSQL background", &|r| {
            r.pg.map(|p| p.background)
        }),
        ("CPU µs/event, all in", &RunFigures::all_in),
        ("CPU µs/event, bare consumer", &|r| Some(r.bare_cpu)),
        ("CPU µs/event, other databases (not counted)", &|r| {
            r.pg.map(|p| p.other)
        }),
        ("load average (1 min) before", &|r| Some(r.load.0[0])),
        ("load average (1 min) after", &|r| Some(r.load.1[0])),
    ];
    for (name, f) in lines {
        println!("  {name:<46} {}", col(f));
    }
}

/// What the run is about, and the table's head.
fn print_header(opts: &KafkaBenchOptions, broker: &Broker, topic: &str) {
    println!(
        "bench kafka: {} events, topic {topic} ({} partitions) on {} ({}), {} run(s), each on a fresh PostgreSQL database",
        opts.events,
        opts.partitions,
        broker.brokers,
        if broker.started_here {
            "tansu started here, memory engine"
        } else {
            "given with --brokers"
        },
        opts.runs
    );
    println!(
        "aggregator: batches of up to {} events, up to {} committing at once; event ids {}{}",
        opts.max_batch,
        opts.parallel_commits,
        if opts.random_ids {
            "in no order (--random-ids)"
        } else {
            "increasing within each source"
        },
        if opts.key_experiments == [KeyExperiment::None] {
            String::new()
        } else {
            format!(
                "; log keys, run after run: {}",
                opts.key_experiments
                    .iter()
                    .map(|k| k.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    println!(
        "{:<34} {:>10} {:>9} {:>12} {:>9} {:>12} {:>9} {:>9}",
        "phase", "events", "seconds", "events/s", "first s", "steady ev/s", "peak MiB", "rss MiB"
    );
}

/// Produces the events and checks the delivery reports cover every one.
async fn produce_phase(
    opts: &KafkaBenchOptions,
    brokers: &str,
    topic: &str,
) -> anyhow::Result<(Produced, Row)> {
    let produced = {
        let (b, t, n, r) = (
            brokers.to_owned(),
            topic.to_owned(),
            opts.events,
            opts.random_ids,
        );
        tokio::task::spawn_blocking(move || produce(&b, &t, n, r))
            .await
            .context("the producer thread panicked")??
    };
    let row = Row::now(
        "produce (idempotent, acks=all)",
        opts.events,
        &Drained {
            seconds: produced.seconds,
            first: None,
            cpu: 0.0,
            postgres: None,
        },
    );
    row.print();
    let delivered: i64 = produced.ends.values().map(|(count, _)| *count).sum();
    if u64::try_from(delivered).ok() != Some(opts.events) {
        bail!(
            "delivery reports cover {delivered} messages of {} ({:?})",
            opts.events,
            produced.ends
        );
    }
    Ok((produced, row))
}

/// The end of each partition comes from the delivery reports; the broker's own high
/// watermarks are only compared (tansu 0.6 answers ListOffsets(latest) with the last
/// batch's base offset + 1, short of the real end).
async fn compare_watermarks(
    opts: &KafkaBenchOptions,
    brokers: &str,
    topic: &str,
    produced: &Produced,
) -> anyhow::Result<()> {
    let highs = {
        let (b, t, p) = (brokers.to_owned(), topic.to_owned(), opts.partitions);
        tokio::task::spawn_blocking(move || watermarks(&b, &t, p))
            .await
            .context("the watermark thread panicked")??
    };
    let mismatched: Vec<String> = produced
        .ends
        .iter()
        .filter(|(p, (_, end))| highs.get(p).map(|(_, h)| h) != Some(end))
        .map(|(p, (_, end))| {
            let high = highs
                .get(p)
                .map_or("none".to_owned(), |(_, h)| h.to_string());
            format!("{p}: delivered up to {end}, high watermark {high}")
        })
        .collect();
    if !mismatched.is_empty() {
        println!(
            "note: the broker's high watermarks disagree with its delivery reports ({}); \
             the bench uses the delivery reports",
            mismatched.join("; ")
        );
    }
    Ok(())
}

/// Correctness: the committed ledger holds exactly what was produced.
async fn verify(
    opts: &KafkaBenchOptions,
    url: &str,
    plan: Arc<Plan>,
    produced: &Produced,
) -> anyhow::Result<()> {
    let store = PgStore::open(url, plan.clone()).await?;
    let logged = store.logged_events().await?;
    let measure = |id: &str| {
        plan.measure(id)
            .with_context(|| format!("the Ome plan has no measure {id}"))
    };
    let (certs, apps) = (measure("certificates_all")?, measure("applications_all")?);
    let (cert_sum, app_sum) = store
        .with_ledger(|l| {
            let sum = |m| -> i128 {
                l.flows
                    .iter()
                    .filter(|((k, _), _)| *k == m)
                    .map(|(_, v)| *v)
                    .sum()
            };
            (sum(certs), sum(apps))
        })
        .await?;
    let rejected = store.rejected(5).await?;
    store.close().await;
    let mut problems = String::new();
    if cert_sum != i128::from(produced.certificates) {
        let _ = write!(
            problems,
            " certificates_all {cert_sum} ≠ {} expected;",
            produced.certificates
        );
    }
    if app_sum != i128::from(produced.applications) {
        let _ = write!(
            problems,
            " applications_all {app_sum} ≠ {} expected;",
            produced.applications
        );
    }
    if u64::try_from(logged).ok() != Some(opts.events) {
        let _ = write!(problems, " {logged} events logged ≠ {};", opts.events);
    }
    if let Some(r) = rejected.first() {
        let _ = write!(
            problems,
            " rejected events, e.g. {}: {};",
            r.reason, r.message
        );
    }
    if !problems.is_empty() {
        bail!("NOT verified:{problems}");
    }
    println!(
        "verified: certificates_all = {cert_sum}, applications_all = {app_sum} (as produced), \
         {logged} events logged, none rejected"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Producing

/// What the produce phase made.
struct Produced {
    seconds: f64,
    /// Σ `count` of the `certificate.issued` events (the `certificates_all` measure).
    certificates: i64,
    /// Σ `count` of the `application.submitted` events (the `applications_all` measure).
    applications: i64,
    /// Per partition: messages delivered, and the offset after the last one.
    ends: BTreeMap<i32, (i64, i64)>,
}

/// The few fields of a synthetic event the bench needs: its key and its counts.
#[derive(serde::Deserialize)]
struct Light<'a> {
    event_id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    data: LightData,
}

#[derive(serde::Deserialize)]
struct LightData {
    count: Option<i64>,
}

/// Counts delivery reports, and where they put the messages.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    /// Per partition: messages delivered, and the offset after the last one.
    ends: Mutex<BTreeMap<i32, (i64, i64)>>,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
                let e = ends.entry(m.partition()).or_insert((0, 0));
                e.0 += 1;
                e.1 = e.1.max(m.offset() + 1);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl Deliveries {
    fn check(&self) -> anyhow::Result<()> {
        if self.failed.load(Ordering::Relaxed) > 0 {
            let e = self
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            bail!(
                "{} message(s) failed to deliver; first: {e}",
                self.failed.load(Ordering::Relaxed)
            );
        }
        Ok(())
    }
}

/// Produces `events` synthetic events keyed `source/event_id` (the ingest role's key,
/// [`mieruka_ingest::kafka::kafka_key`], for events that void nothing), with mieruka's
/// producer settings plus a longer linger and bigger queues for throughput.
fn produce(brokers: &str, topic: &str, events: u64, random_ids: bool) -> anyhow::Result<Produced> {
    let mut cfg = mieruka_ingest::kafka::producer_config(brokers);
    cfg.set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000");
    let producer: BaseProducer<Deliveries> = cfg
        .create_with_context(Deliveries::default())
        .context("cannot create the producer")?;
    let (mut certificates, mut applications) = (0i64, 0i64);
    let mut key = String::with_capacity(64);
    let started = Instant::now();
    for n in 0..events {
        let payload = if random_ids {
            event_with_random_id(n)
        } else {
            event(n)
        };
        let light: Light<'_> = serde_json::from_str(&payload)
            .with_context(|| format!("cannot read the synthetic event {payload}"))?;
        match light.kind {
            "certificate.issued" => certificates += light.data.count.unwrap_or(1),
            "application.submitted" => applications += light.data.count.unwrap_or(1),
            _ => {}
        }
        key.clear();
        let _ = write!(key, "{}/{}", light.source, light.event_id);
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_str());
        let full_since = Instant::now();
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                    producer.context().check()?;
                    if full_since.elapsed() > STALL {
                        bail!("the producer queue stayed full for {STALL:?}: is the broker up?");
                    }
                }
                Err((e, _)) => bail!("cannot produce: {e}"),
            }
        }
        if n % 1024 == 0 {
            producer.poll(Duration::ZERO);
            producer.context().check()?;
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .context("cannot flush the producer")?;
    let seconds = started.elapsed().as_secs_f64();
    producer.context().check()?;
    let ok = producer.context().ok.load(Ordering::Relaxed);
    if ok != events {
        bail!("{ok} of {events} messages acknowledged");
    }
    let ends = producer
        .context()
        .ends
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(Produced {
        seconds,
        certificates,
        applications,
        ends,
    })
}

/// The low and high watermark of each partition.
fn watermarks(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let consumer: BaseConsumer = base_config(brokers).create()?;
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let w = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .with_context(|| format!("cannot read the watermarks of {topic}/{p}"))?;
        out.insert(p, w);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Draining

/// How a drain went.
struct Drained {
    seconds: f64,
    first: Option<f64>,
    /// CPU-seconds of this process meanwhile.
    cpu: f64,
    /// CPU-seconds of the PostgreSQL cluster meanwhile, when measured.
    postgres: Option<PgSeconds>,
}

/// A bare `BaseConsumer` in a fresh group, with the aggregator's own consumer settings
/// ([`consumer_config`], so the ratio measures what mieruka does with the messages, not
/// a different fetch policy): counts the messages and reads every payload byte.
fn drain_bare(brokers: &str, group: &str, topic: &str, events: u64) -> anyhow::Result<Drained> {
    let started = Instant::now();
    let cpu = own_seconds();
    let cfg = consumer_config(&AggregatorOptions::new(
        brokers,
        group,
        vec![topic.to_owned()],
    ));
    let consumer: BaseConsumer = cfg.create().context("cannot create the bare consumer")?;
    consumer.subscribe(&[topic])?;
    let (mut count, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    let mut first = None;
    let mut last_progress = Instant::now();
    while count < events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or(&[]);
                bytes += payload.len() as u64;
                sum = payload
                    .iter()
                    .fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
                count += 1;
                first.get_or_insert_with(|| started.elapsed().as_secs_f64());
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "Bare consumer error."),
        }
        if last_progress.elapsed() > STALL {
            bail!("the bare consumer read {count} of {events} messages and then nothing for {STALL:?}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = own_seconds() - cpu;
    std::hint::black_box((bytes, sum));
    consumer.unsubscribe();
    Ok(Drained {
        seconds,
        first,
        cpu,
        postgres: None,
    })
}

/// The `aggregate` role's consumer in a fresh group on a fresh store, run until the
/// offsets committed in PostgreSQL reach every partition's end (`ends`: partition →
/// (messages, next offset)); then shut down. This process's CPU time and the PostgreSQL
/// cluster's are measured from the start to the last commit.
#[allow(clippy::too_many_arguments)]
async fn aggregate(
    brokers: &str,
    group: &str,
    topic: &str,
    db: &TestDb,
    plan: Arc<Plan>,
    ends: &BTreeMap<i32, (i64, i64)>,
    (max_batch, parallel_commits): (usize, usize),
    key_experiment: KeyExperiment,
) -> anyhow::Result<Drained> {
    let url = db.url();
    let store = PgStore::open(url, plan.clone())
        .await
        .context("cannot open the bench database")?;
    let watch = PgStore::open(url, plan)
        .await
        .context("cannot open the bench database")?;
    for sql in key_experiment.statements() {
        mieruka_testkit::pg::admin(url, sql).await?;
    }
    match key_experiment {
        KeyExperiment::OneGeneration => store.seal_generations_at(i64::MAX),
        KeyExperiment::Seal32Mib => store.seal_generations_at(32 << 20),
        KeyExperiment::Seal16Mib => store.seal_generations_at(16 << 20),
        _ => {}
    }
    // Both stores are connected: the cluster is found through their backends' titles.
    let pg = PgCpu::start(db.name());
    let started = Instant::now();
    let cpu = own_seconds();
    let mut opts = AggregatorOptions::new(brokers, group, vec![topic.to_owned()]);
    opts.max_batch = max_batch;
    opts.parallel_commits = parallel_commits;
    let aggregator = Aggregator::build(store, opts, Arc::new(NoObserver)).await?;
    let stop = CancellationToken::new();
    let mut running = tokio::spawn(aggregator.run(stop.clone().cancelled_owned()));
    let mut first = None;
    let mut last = (0i64, Instant::now());
    let outcome = loop {
        tokio::select! {
            r = &mut running => {
                break Err(match r {
                    Ok(Ok(())) => anyhow::anyhow!("the aggregator stopped before the end of the topic"),
                    Ok(Err(e)) => anyhow::Error::new(e).context("the aggregator failed"),
                    Err(e) => anyhow::Error::new(e).context("the aggregator task panicked"),
                });
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let stored: BTreeMap<i32, i64> = match watch.positions(topic).await {
            Ok(p) => p.into_iter().collect(),
            Err(e) => break Err(anyhow::Error::new(e).context("cannot read the stored offsets")),
        };
        if !stored.is_empty() {
            first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        }
        let done = ends
            .iter()
            .all(|(p, (_, end))| stored.get(p).is_some_and(|next| next >= end));
        if done {
            break Ok((started.elapsed().as_secs_f64(), own_seconds() - cpu));
        }
        let progress: i64 = stored.values().sum();
        if progress != last.0 {
            last = (progress, Instant::now());
        } else if last.1.elapsed() > STALL {
            break Err(anyhow::anyhow!(
                "the aggregator committed offsets {stored:?} of {ends:?} and then nothing for {STALL:?}"
            ));
        }
    };
    let postgres = pg.map(PgCpu::stop);
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(60), &mut running).await;
    watch.close().await;
    let (seconds, cpu) = outcome?;
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(anyhow::Error::new(e).context("the aggregator failed")),
        Ok(Err(e)) => return Err(anyhow::Error::new(e).context("the aggregator task panicked")),
        Err(_) => bail!("the aggregator did not stop within 60 s"),
    }
    Ok(Drained {
        seconds,
        first,
        cpu,
        postgres,
    })
}

// ---------------------------------------------------------------------------------------
// The broker, the topic, the database

fn base_config(brokers: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4");
    cfg
}

/// Creates the topic (retrying while the broker comes up) and waits for its partitions
/// to show in the metadata (tansu 0.6 does not auto-create topics).
async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(brokers)
        .create()
        .context("cannot create the admin client")?;
    let new = [NewTopic::new(topic, partitions, TopicReplication::Fixed(1))];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let results = admin
            .create_topics(
                &new,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await;
        let ok = match &results {
            Ok(rs) => rs.iter().all(|r| match r {
                Ok(_) => true,
                Err((_, e)) => *e == RDKafkaErrorCode::TopicAlreadyExists,
            }),
            Err(_) => false,
        };
        if ok {
            break;
        }
        if Instant::now() > deadline {
            bail!("cannot create the topic {topic} on {brokers}: {results:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let consumer: BaseConsumer = base_config(&b).create()?;
        loop {
            if let Ok(md) = consumer.fetch_metadata(Some(&t), Duration::from_secs(5)) {
                if md
                    .topics()
                    .iter()
                    .any(|mt| mt.name() == t && mt.partitions().len() == partitions as usize)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("the topic {t} has no metadata for {partitions} partitions");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .context("the metadata thread panicked")?
}
