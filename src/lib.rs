//! The `mieruka` binary's wiring: config, the standalone role, file import and the demo.
//! The roles' logic lives in the workspace crates (`ingest/`, `aggregator/`,
//! `exporter/`); this crate only puts them together, and only `main` knows signals.

pub mod app;
pub mod bench;
pub mod bench_kafka;
pub mod config;
pub mod demo;
pub mod export_role;
pub mod import;
pub mod kafka_roles;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mieruka_aggregator::{KpiKind, Plan, SqliteStore};
use mieruka_ingest::http::Token;
use mieruka_ingest::import::{CsvMapping, Encoding};
use mieruka_ingest::{item, EventSink, Position, Status, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Settings};
use crate::config::Config;

/// The serving flags shared by `standalone` and `demo`.
#[derive(Debug, Default, Clone)]
pub struct ServeOptions {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub plan: Option<PathBuf>,
    pub now: Option<Timestamp>,
    pub refresh_seconds: Option<u64>,
}

/// Resolves flags (already merged with the environment by clap) over the config file.
pub fn settings(
    cfg: &Config,
    serve: &ServeOptions,
    default_db: Option<&str>,
    extra_tokens: Vec<(String, Token)>,
) -> anyhow::Result<(Arc<Plan>, Settings)> {
    let plan = Arc::new(config::load_plan_at(cfg, serve.plan.as_deref(), serve.now)?);
    let mut tokens = cfg.secrets()?;
    tokens.extend(extra_tokens);
    let mut sources = cfg.source_labels();
    sources.extend(tokens.iter().flat_map(|(_, t)| t.sources.clone()));
    sources.sort();
    sources.dedup();
    let settings = Settings {
        listen: serve
            .listen
            .clone()
            .or(cfg.listen.clone())
            .unwrap_or_else(|| config::DEFAULT_LISTEN.into()),
        db: serve
            .db
            .clone()
            .or(cfg.db.clone())
            .unwrap_or_else(|| default_db.unwrap_or(config::DEFAULT_DB).into()),
        refresh: Duration::from_secs(
            serve
                .refresh_seconds
                .or(cfg.refresh_seconds)
                .unwrap_or(config::DEFAULT_REFRESH_SECONDS)
                .max(1),
        ),
        limits: cfg.http_limits(),
        idle_timeout: cfg.idle_timeout(),
        tokens,
        sources,
        now: serve.now,
    };
    Ok((plan, settings))
}

/// The flags of the production roles, merged with the environment by clap.
#[derive(Debug, Default, Clone)]
pub struct RoleOptions {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub brokers: Option<String>,
    pub plan: Option<PathBuf>,
    pub now: Option<Timestamp>,
    pub refresh_seconds: Option<u64>,
}

impl RoleOptions {
    /// The PostgreSQL URL: flag or `DATABASE_URL`, else the config's `[store] url`.
    pub fn database_url(&self, cfg: &Config) -> anyhow::Result<String> {
        self.database_url
            .clone()
            .or_else(|| cfg.store.as_ref().map(|s| s.url.clone()))
            .context("no PostgreSQL URL: pass --database-url, set DATABASE_URL, or add [store] url to the config")
    }

    /// The Kafka brokers: flag or `KAFKA_BROKERS`, else the config's `[kafka] brokers`.
    pub fn brokers(&self, cfg: &Config) -> anyhow::Result<String> {
        self.brokers
            .clone()
            .or_else(|| cfg.kafka.as_ref().map(|k| k.brokers.clone()))
            .context("no Kafka brokers: pass --brokers, set KAFKA_BROKERS, or add [kafka] brokers to the config")
    }

    /// The plan: flag, else the config's, else the shipped Ome plan; taking events in
    /// the config's time window around `--now`.
    pub fn load_plan(&self, cfg: &Config) -> anyhow::Result<Arc<Plan>> {
        Ok(Arc::new(config::load_plan_at(
            cfg,
            self.plan.as_deref(),
            self.now,
        )?))
    }
}

/// `mieruka export`: serve /metrics from PostgreSQL until cancelled.
pub async fn run_export(
    cfg: &Config,
    opts: RoleOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let plan = opts.load_plan(cfg)?;
    let settings = export_role::ExportSettings {
        listen: opts
            .listen
            .clone()
            .or(cfg.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:9464".into()),
        database_url: opts.database_url(cfg)?,
        refresh: Duration::from_secs(
            opts.refresh_seconds
                .or(cfg.refresh_seconds)
                .unwrap_or(config::DEFAULT_REFRESH_SECONDS)
                .max(1),
        ),
        now: opts.now,
        sources: cfg.source_labels(),
    };
    let role = export_role::ExportRole::build(plan, settings).await?;
    println!(
        "mieruka export: http://{}/ (metrics at /metrics)",
        role.local_addr()?
    );
    role.run(shutdown).await
}

/// The bearer token the demo's line systems use (printed by `mieruka demo`).
pub const DEMO_TOKEN: &str = "demo-token";

/// `mieruka demo`: generate, ingest through the standalone sink, then serve.
pub async fn run_demo(
    cfg: &Config,
    serve: ServeOptions,
    seed: u64,
    no_serve: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let demo_token = Token {
        name: "demo".into(),
        token: Some(DEMO_TOKEN.into()),
        token_env: None,
        sources: demo::demo_sources()
            .into_iter()
            .map(|(s, _)| s.to_owned())
            .collect(),
        types: Vec::new(),
    };
    let (plan, settings) = settings(
        cfg,
        &serve,
        Some("data/demo.db"),
        vec![(DEMO_TOKEN.into(), demo_token)],
    )?;
    // The demo's database is rebuilt each run, so the same seed gives the same numbers.
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", settings.db.display()));
        if p.exists() {
            std::fs::remove_file(&p)
                .with_context(|| format!("cannot remove the old demo database {}", p.display()))?;
        }
    }
    let now = app::Clock(settings.now).now();
    let started = Instant::now();
    let lines = demo::generate(&plan, &demo::DemoOptions { now, seed });
    eprintln!(
        "Generated {} synthetic events (FY2025 to {now}) in {:.1?}.",
        lines.len(),
        started.elapsed()
    );
    let app = App::build(plan.clone(), settings).await?;
    let sink = app.sink();
    let (mut accepted, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    let ingest_started = Instant::now();
    for (n, chunk) in lines.chunks(mieruka_ingest::http::SINK_BATCH).enumerate() {
        let items: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut it = item(
                    &plan.schema,
                    l.as_bytes(),
                    Position::Index(n * mieruka_ingest::http::SINK_BATCH + i),
                    "unknown",
                );
                if let Ok(e) = &it.outcome {
                    it.source_label = e.source.clone();
                }
                it
            })
            .collect();
        for s in sink
            .submit(items)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            match s {
                Status::Accepted => accepted += 1,
                Status::Duplicate => duplicates += 1,
                Status::Rejected(_) => rejected += 1,
            }
        }
    }
    app::refresh(&plan, &app.store, &app.exporter, app::Clock(Some(now))).await?;
    eprintln!(
        "Ingested in {:.1?}: {accepted} accepted, {duplicates} duplicates, {rejected} rejected.",
        ingest_started.elapsed()
    );
    if no_serve {
        app.store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let addr = app.local_addr()?;
    println!("mieruka demo is serving the Ome plan:");
    println!("  status page  http://{addr}/");
    println!("  metrics      http://{addr}/metrics");
    println!("  post events  curl -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Content-Type: application/x-ndjson' --data-binary @events.ndjson http://{addr}/v1/events");
    println!("Press Ctrl-C to stop.");
    app.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// `mieruka import`: every file into the store, then a summary. Exit code 1 when any
/// line was rejected (all rejections are kept in the store's `rejected` table).
pub async fn import_files(
    plan: Arc<Plan>,
    db: &Path,
    files: &[PathBuf],
    mapping: Option<&CsvMapping>,
    encoding: Option<Encoding>,
) -> anyhow::Result<ExitCode> {
    let store = Arc::new(
        SqliteStore::open(db, plan.clone())
            .await
            .with_context(|| format!("cannot open {}", db.display()))?,
    );
    let mut summary = import::Summary::default();
    let opts = import::ImportOptions {
        mapping,
        encoding,
        progress: true,
    };
    for f in files {
        import::import_file(&plan, &store, f, &opts, &mut summary).await?;
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
    for r in &summary.first_rejections {
        println!("  rejected {r}");
    }
    if summary.rejected as usize > summary.first_rejections.len() {
        println!(
            "  … all rejections are in the `rejected` table of {}",
            db.display()
        );
    }
    Ok(if summary.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The text `mieruka plan check` prints for a valid plan.
pub fn plan_summary(plan: &Plan) -> String {
    let mut out = String::new();
    let years: Vec<_> = (plan.first_year.0..=plan.last_year.0).collect();
    let _ = writeln!(out, "{} — {} ({})", plan.name_ja, plan.name_en, plan.id);
    let _ = writeln!(
        out,
        "OK: {} event types, {} measures, {} KPIs; baseline FY{}, targets FY{}–FY{}",
        plan.schema.types().len(),
        plan.measures.len(),
        plan.kpis.len(),
        plan.baseline_year.0,
        plan.first_year.0,
        plan.last_year.0
    );
    for ch in &plan.chapters {
        let _ = writeln!(out, "\n第{}章 {} / {}", ch.id, ch.name_ja, ch.name_en);
        let head: Vec<String> = years.iter().map(|y| format!("FY{y}")).collect();
        let _ = writeln!(
            out,
            "  {:<40} {:>10} {:>12} {}",
            "KPI",
            "unit",
            "baseline",
            head.iter().map(|h| format!("{h:>12}")).collect::<String>()
        );
        for k in plan.kpis.iter().filter(|k| k.chapter == ch.id) {
            let show = |v: Option<f64>| -> String {
                match (v, k.stages()) {
                    (None, _) => "unset".into(),
                    (Some(x), Some(stages)) => {
                        stages.get(x as usize).map_or("?".into(), |s| s.id.clone())
                    }
                    (Some(x), None) => format!("{x}"),
                }
            };
            let kind = match k.kind {
                KpiKind::Milestone { .. } => " (milestone)",
                KpiKind::Recurring(_) => " (recurring)",
                _ => "",
            };
            let targets: String = years
                .iter()
                .map(|y| format!("{:>12}", show(k.target(mieruka_aggregator::FiscalYear(*y)))))
                .collect();
            let _ = writeln!(
                out,
                "  {:<40} {:>10} {:>12} {targets}",
                format!("{}{kind}", k.id),
                k.unit,
                show(k.baseline)
            );
            let _ = writeln!(out, "    {} / {}", k.name_ja, k.name_en);
        }
    }
    out
}
