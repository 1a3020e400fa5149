//! The `mieruka` binary: one program, several roles (see `mieruka --help`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mieruka::app::{App, Settings};
use mieruka::config::{self, Config};
use mieruka_ingest::import::Encoding;
use mieruka_ingest::Timestamp;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: the aggregator allocates and frees a few small
/// strings per event on several threads, and perf showed glibc's free lists
/// (`_int_free`, `malloc_consolidate`) among its largest costs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mieruka (見える化): folds a city's line-system events into the KPIs of its DX plan and
/// exports them to Prometheus, with pace and projection against each year's target.
#[derive(Parser, Debug)]
#[command(name = "mieruka", version, about, long_about = None)]
struct Cli {
    /// Config file (TOML): tokens, CSV mappings, defaults for the flags below.
    #[arg(long, short, global = true, env = "MIERUKA_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a synthetic history of the Ome plan (FY2025 to now), ingest it, and serve it
    /// like `standalone`: the newcomer's first command.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Seed of the synthetic history.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Ingest the history, print the summary and exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// All roles in one process on the embedded SQLite store: HTTP ingest, aggregation,
    /// /metrics and the status page.
    Standalone {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Import NDJSON or CSV files (UTF-8 or Shift_JIS) into the store.
    Import {
        /// Files to import (`.csv`/`.tsv` are CSV; anything else is NDJSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// SQLite file [default: data/mieruka.db].
        #[arg(long, env = "MIERUKA_DB")]
        db: Option<PathBuf>,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
        /// CSV column mapping: the name of a [csv_mappings.NAME] table in the config.
        #[arg(long)]
        mapping: Option<String>,
        /// Text encoding: utf-8 or shift_jis [default: detected].
        #[arg(long)]
        encoding: Option<Encoding>,
        /// Take this instant as "now" (RFC 3339) when judging whether an event lies in
        /// the future [default: the wall clock].
        #[arg(long, env = "MIERUKA_NOW", value_parser = parse_now)]
        now: Option<Timestamp>,
    },
    /// Show the most recent rejected events kept in the store (reason, field, place, raw
    /// text with personal numbers masked).
    Rejected {
        /// SQLite file [default: data/mieruka.db].
        #[arg(long, env = "MIERUKA_DB")]
        db: Option<PathBuf>,
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Plan files.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Write Prometheus recording and alerting rules generated from the plan (feed
    /// cadences and thresholds from the config's [rules] table).
    Rules {
        /// Output file [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
    },
    /// Write Grafana dashboards generated from the plan.
    Dashboards {
        /// Output directory.
        #[arg(long, default_value = "deploy/grafana/dashboards")]
        out: PathBuf,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
    },
    /// Benchmarks on this machine (figures for notes; nothing is asserted).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Production role: the HTTP receiver, producing to Kafka (idempotent, acks=all).
    Ingest {
        #[command(flatten)]
        role: RoleArgs,
    },
    /// Production role: Kafka consumer group folding into PostgreSQL, effectively once.
    Aggregate {
        #[command(flatten)]
        role: RoleArgs,
    },
    /// Production role: /metrics, health and the status page, served from PostgreSQL.
    Export {
        #[command(flatten)]
        role: RoleArgs,
    },
}

#[derive(Subcommand, Debug)]
enum PlanCommand {
    /// Validate a plan file and print a summary of its KPIs by chapter, with targets.
    Check {
        /// Plan file [default: the shipped Ome plan].
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
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
        /// PostgreSQL server on which a fresh bench database is created and dropped.
        #[arg(long, default_value = mieruka::bench_kafka::DEFAULT_DATABASE_URL)]
        database_url: String,
        /// Most events per aggregator transaction (the `[kafka] max_batch` of the role).
        #[arg(long, default_value_t = 20_000)]
        max_batch: usize,
        /// Aggregator batches committing at once (`[kafka] parallel_commits`).
        #[arg(long, default_value_t = 2)]
        parallel_commits: usize,
        /// Event ids in no order, like UUIDs [default: increasing within each source].
        #[arg(long)]
        random_ids: bool,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9464].
    #[arg(long, env = "MIERUKA_LISTEN")]
    listen: Option<String>,
    /// SQLite file [default: data/mieruka.db; demo: data/demo.db, recreated].
    #[arg(long, env = "MIERUKA_DB")]
    db: Option<PathBuf>,
    /// Plan file [default: the shipped Ome plan].
    #[arg(long, env = "MIERUKA_PLAN")]
    plan: Option<PathBuf>,
    /// Take this instant as "now" (RFC 3339) instead of the wall clock, for reproducible runs.
    #[arg(long, env = "MIERUKA_NOW", value_parser = parse_now)]
    now: Option<Timestamp>,
    /// Seconds between snapshot refreshes while no events arrive [default: 60].
    #[arg(long, env = "MIERUKA_REFRESH_SECONDS")]
    refresh_seconds: Option<u64>,
}

/// Flags of the production roles (the config file's `[kafka]` and `[store]` give the rest).
#[derive(Args, Debug, Clone)]
pub struct RoleArgs {
    /// Address to listen on [default: ingest 127.0.0.1:8080, aggregate 127.0.0.1:9465, export 127.0.0.1:9464].
    #[arg(long, env = "MIERUKA_LISTEN")]
    listen: Option<String>,
    /// PostgreSQL URL [default: the config's [store] url].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Kafka bootstrap servers [default: the config's [kafka] brokers].
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: Option<String>,
    /// Plan file [default: the shipped Ome plan].
    #[arg(long, env = "MIERUKA_PLAN")]
    plan: Option<PathBuf>,
    /// Take this instant as "now" (RFC 3339) instead of the wall clock.
    #[arg(long, env = "MIERUKA_NOW", value_parser = parse_now)]
    now: Option<Timestamp>,
    /// Seconds between snapshot refreshes (export) [default: 60].
    #[arg(long, env = "MIERUKA_REFRESH_SECONDS")]
    refresh_seconds: Option<u64>,
}

impl RoleArgs {
    fn into_options(self) -> mieruka::RoleOptions {
        mieruka::RoleOptions {
            listen: self.listen,
            database_url: self.database_url,
            brokers: self.brokers,
            plan: self.plan,
            now: self.now,
            refresh_seconds: self.refresh_seconds,
        }
    }
}

fn parse_now(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIERUKA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Plan {
            command: PlanCommand::Check { file },
        } => plan_check(file),
        Command::Standalone { serve } => {
            let (plan, settings) = settings(&cfg, serve, None)?;
            let app = App::build(plan, settings).await?;
            println!(
                "mieruka standalone: http://{}/ (metrics at /metrics)",
                app.local_addr()?
            );
            app.run(shutdown_on_signals()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            serve,
            seed,
            no_serve,
        } => {
            mieruka::run_demo(
                &cfg,
                serve_into(serve),
                seed,
                no_serve,
                shutdown_on_signals(),
            )
            .await
        }
        Command::Import {
            files,
            db,
            plan,
            mapping,
            encoding,
            now,
        } => {
            let plan = Arc::new(config::load_plan_at(&cfg, plan.as_deref(), now)?);
            let db = db
                .or(cfg.db.clone())
                .unwrap_or_else(|| config::DEFAULT_DB.into());
            let mapping = match &mapping {
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
            };
            mieruka::import_files(plan, &db, &files, mapping, encoding).await
        }
        Command::Rejected { db, limit } => {
            let db = db
                .or(cfg.db.clone())
                .unwrap_or_else(|| config::DEFAULT_DB.into());
            if !db.exists() {
                anyhow::bail!("no store at {} (pass --db)", db.display());
            }
            let plan = Arc::new(config::load_plan(cfg.plan.as_deref())?);
            let store = mieruka_aggregator::SqliteStore::open(&db, plan).await?;
            let rows = store.rejected(limit).await?;
            store.close().await;
            if rows.is_empty() {
                println!("no rejected events in {}", db.display());
            }
            for r in rows {
                println!(
                    "{} [{}] {}: {} (source label {}, event_id {})\n    {}",
                    r.position,
                    r.reason,
                    r.field.as_deref().unwrap_or("event"),
                    r.message,
                    r.source,
                    r.event_id.as_deref().unwrap_or("-"),
                    r.raw
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { out, plan } => {
            let plan = config::load_plan(plan.as_deref().or(cfg.plan.as_deref()))?;
            let opts = cfg.rules.options();
            opts.validate()
                .map_err(|e| anyhow::anyhow!("[rules] in the config: {e}"))?;
            let text = mieruka_exporter::rules::rules_yaml(&plan, &opts);
            write_out(out.as_deref(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dashboards { out, plan } => {
            let plan = config::load_plan(plan.as_deref().or(cfg.plan.as_deref()))?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            for (name, json) in mieruka_exporter::dashboards::dashboards(&plan) {
                let path = out.join(name);
                std::fs::write(&path, json)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Ingest {
                    events,
                    batch,
                    db,
                    connections,
                },
        } => {
            let checkpoints = [100_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000];
            mieruka::bench::ingest(&db, events, batch.max(1), connections, &checkpoints).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Kafka {
                    events,
                    partitions,
                    brokers,
                    database_url,
                    max_batch,
                    parallel_commits,
                    random_ids,
                },
        } => {
            mieruka::bench_kafka::kafka(mieruka::bench_kafka::KafkaBenchOptions {
                events,
                partitions,
                brokers,
                database_url,
                max_batch,
                parallel_commits,
                random_ids,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { role } => {
            mieruka::run_export(&cfg, role.into_options(), shutdown_on_signals()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { role } => {
            mieruka::kafka_roles::run_ingest(&cfg, role.into_options(), shutdown_on_signals())
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Aggregate { role } => {
            mieruka::kafka_roles::run_aggregate(&cfg, role.into_options(), shutdown_on_signals())
                .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_out(out: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn serve_into(s: ServeArgs) -> mieruka::ServeOptions {
    mieruka::ServeOptions {
        listen: s.listen,
        db: s.db,
        plan: s.plan,
        now: s.now,
        refresh_seconds: s.refresh_seconds,
    }
}

fn settings(
    cfg: &Config,
    serve: ServeArgs,
    default_db: Option<&str>,
) -> anyhow::Result<(Arc<mieruka_aggregator::Plan>, Settings)> {
    mieruka::settings(cfg, &serve_into(serve), default_db, Vec::new())
}

fn plan_check(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let plan = match config::load_plan(file.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    print!("{}", mieruka::plan_summary(&plan));
    Ok(ExitCode::SUCCESS)
}

/// Cancels the returned token on SIGTERM or Ctrl-C: only `main` knows about signals.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::terminate(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C stops the process.");
                    let _ = ctrl_c.await;
                    t.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("Shutdown requested; finishing the batch in flight.");
        t.cancel();
    });
    token
}
