//! `mieruka-bench`: benchmarks of mieruka on this machine, for the figures quoted in
//! notes and the README. Never a test (these machines are noisy, nothing is asserted on
//! a rate), and never part of the shipped `mieruka` binary.
//!
//! ```text
//! cargo run --release -p mieruka-bench -- ingest [--events N] [--batch N] [--connections N]
//! cargo run --release -p mieruka-bench -- kafka  [--events N] [--runs N] [--random-ids] [--brokers H:P] …
//! cargo run --release -p mieruka-bench -- inbox  [--rows N] [--dir DIR]
//! cargo run --release -p mieruka-bench -- replay [--events N] [--db FILE | --database-url URL]
//! ```
//!
//! The engine's per-core fold is a `cargo bench` of its own:
//! `cargo bench -p mieruka-aggregator --bench fold`.

mod cpu;
mod events;
mod inbox;
mod ingest;
mod kafka;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The allocator of the shipped binary, so the figures are its figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of mieruka on this machine (figures for notes; nothing is asserted).
#[derive(Parser, Debug)]
#[command(name = "mieruka-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// HTTP NDJSON ingest to durable on a fresh SQLite file: events/s and peak RSS.
    Ingest {
        /// Events to post.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events per request.
        #[arg(long, default_value_t = 10_000)]
        batch: u64,
        /// Fresh SQLite file to create.
        #[arg(long, default_value = "data/bench.db")]
        db: PathBuf,
        /// Concurrent HTTP connections (line systems posting at once).
        #[arg(long, default_value_t = 2)]
        connections: usize,
    },
    /// Kafka → aggregates committed in PostgreSQL, against a bare rdkafka consumer on the
    /// same topic and broker: events/s of both, their ratio, peak RSS.
    Kafka {
        /// Events to produce and drain.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Partitions of the bench topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// An existing Kafka-protocol broker (HOST:PORT) [default: start `tansu` here].
        #[arg(long)]
        brokers: Option<String>,
        /// PostgreSQL server on which a fresh bench database is created and dropped
        /// [default: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres].
        #[arg(long)]
        database_url: Option<String>,
        /// Most events per aggregator transaction (the `[kafka] max_batch` of the role).
        #[arg(long, default_value_t = 20_000)]
        max_batch: usize,
        /// Aggregator batches committing at once (`[kafka] parallel_commits`).
        #[arg(long, default_value_t = 2)]
        parallel_commits: usize,
        /// Event ids in no order, like UUIDs [default: increasing within each source].
        #[arg(long)]
        random_ids: bool,
        /// Times the topic is drained (bare consumer, then the aggregator on a fresh
        /// database); the events are produced once. Prints min / median / max of the
        /// ratio and of the CPU figures over the runs.
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Measures ideas for the event log's key index on the bench database (see
        /// bench/src/kafka.rs): `one-generation` (the log never sealed, as before its
        /// generations), `seal-16mib` and `seal-32mib` (larger generations), `md5-uuid`
        /// and `md5-int8` (a hashed unique key; the optimistic path only) and
        /// `source-first` (the key ordered generation, source, event_id, as before
        /// migration 0011). A comma-separated list taken in
        /// turn run after run, e.g. `none,one-generation` with `--runs 4`.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
        key_experiment: Vec<kafka::KeyExperiment>,
    },
    /// A Shift_JIS CSV export (Japanese headers, the README's konbini mapping) dropped
    /// into the `[[inbox]]` of a standalone on a fresh SQLite file: rows/s and peak RSS.
    Inbox {
        /// Rows of the export.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Fresh folder for the export, the inbox and the SQLite file.
        #[arg(long, default_value = "data/bench-inbox")]
        dir: PathBuf,
    },
    /// `mieruka replay` over a store filled with N events: events/s and peak RSS.
    Replay {
        /// Events to log before replaying.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Fresh SQLite file to create.
        #[arg(long, default_value = "data/bench-replay.db")]
        db: PathBuf,
        /// PostgreSQL server on which a fresh bench database is created and dropped
        /// (replays PostgreSQL's store instead of SQLite's).
        #[arg(long)]
        database_url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mieruka::process::run("warn", async {
        run(cli.command).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ingest {
            events,
            batch,
            db,
            connections,
        } => {
            let checkpoints = [100_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000];
            let opts = ingest::IngestOptions {
                events,
                batch: batch.max(1),
                connections,
            };
            ingest::ingest(&db, opts, &checkpoints).await
        }
        Command::Replay {
            events,
            db,
            database_url,
        } => {
            let target = match &database_url {
                Some(url) => replay::Target::Postgres(url),
                None => replay::Target::Sqlite(&db),
            };
            replay::replay(target, events).await
        }
        Command::Kafka {
            events,
            partitions,
            brokers,
            database_url,
            max_batch,
            parallel_commits,
            random_ids,
            runs,
            key_experiment,
        } => {
            kafka::kafka(kafka::KafkaBenchOptions {
                events,
                partitions,
                brokers,
                database_url: database_url.unwrap_or_else(mieruka_testkit::pg::admin_url),
                max_batch,
                parallel_commits,
                random_ids,
                runs,
                key_experiments: key_experiment,
            })
            .await
        }
        Command::Inbox { rows, dir } => inbox::inbox(&dir, rows).await,
    }
}
