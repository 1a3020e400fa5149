//! The `mieruka` binary: one program, several roles (see `mieruka --help`). This file
//! only parses the command line, starts logging and the runtime, and dispatches; the
//! command line is in `cli.rs`, settings come from `mieruka::config::resolve`, and each
//! role and command lives in a room of its own (`mieruka::roles`, `mieruka::commands`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use mieruka::commands;
use mieruka::config::{self, Config, Flags, Resolved, RoleKind};
use mieruka::roles::aggregate::AggregateRole;
use mieruka::roles::export::ExportRole;
use mieruka::roles::ingest::IngestRole;
use mieruka::roles::standalone::Standalone;
use mieruka_ingest::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, PlanCommand, TokenCommand};

/// mimalloc instead of glibc's malloc: the aggregator allocates and frees a few small
/// strings per event on several threads, and perf showed glibc's free lists
/// (`_int_free`, `malloc_consolidate`) among its largest costs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    mieruka::process::run("info,sqlx=warn", run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(cli.config.as_deref())?;
    let config_path = cli.config.clone();
    let resolve = |flags: Flags, kind| {
        let flags = Flags {
            config: config_path.clone(),
            ..flags
        };
        config::resolve(&cfg, &flags, kind)
    };
    match cli.command {
        Command::Token {
            command:
                TokenCommand::New {
                    name,
                    expires,
                    sources,
                    types,
                },
        } => commands::token::new(&name, expires.as_deref(), &sources, &types),
        Command::Plan {
            command: PlanCommand::Check { file },
        } => commands::plan::check(file.as_deref()),
        Command::Standalone { serve } => {
            standalone(resolve(serve.flags(), RoleKind::Standalone)?).await
        }
        Command::Demo {
            serve,
            seed,
            no_serve,
        } => {
            let settings = resolve(serve.flags(), RoleKind::Demo)?;
            commands::demo::run(settings, seed, no_serve, shutdown_on_signals()).await
        }
        Command::Import {
            files,
            db,
            plan,
            mapping,
            encoding,
            now,
            brokers,
            database_url,
        } => {
            let flags = Flags {
                db,
                plan,
                now,
                brokers,
                database_url,
                ..Flags::default()
            };
            let settings = resolve(flags, RoleKind::Import)?;
            commands::import::run(&cfg, &settings, &files, mapping.as_deref(), encoding).await
        }
        Command::Rejected {
            db,
            database_url,
            source,
            reason,
            since,
            limit,
        } => {
            let flags = Flags {
                db,
                database_url,
                ..Flags::default()
            };
            let now = Timestamp::wall_clock();
            let query =
                commands::rejected::Query::parse(source, reason, since.as_deref(), limit, now)?;
            commands::rejected::run(&resolve(flags, RoleKind::Command)?, &query).await
        }
        Command::Replay {
            db,
            database_url,
            plan,
            apply,
        } => {
            let flags = Flags {
                db,
                database_url,
                plan,
                ..Flags::default()
            };
            commands::replay::run(&resolve(flags, RoleKind::Command)?, apply).await
        }
        Command::Explain {
            kpi,
            fy,
            as_of,
            json,
            store,
        } => {
            let settings = resolve(store.flags(), RoleKind::Command)?;
            let req = mieruka_aggregator::explain::Request {
                kpi,
                year: fy.map(mieruka_aggregator::FiscalYear),
                as_of,
                now: settings.now.unwrap_or_else(Timestamp::wall_clock),
            };
            commands::explain::run(&settings, &req, json).await
        }
        Command::Report {
            fy,
            as_of,
            format,
            out,
            store,
        } => {
            let req = commands::report::Request::parse(fy, as_of.as_deref(), format)?;
            commands::report::run(&resolve(store.flags(), RoleKind::Command)?, &req, &out).await
        }
        Command::CloseYear { fy, who, store } => {
            let settings = resolve(store.flags(), RoleKind::Command)?;
            let req = who.request(fy, settings.now.unwrap_or_else(Timestamp::wall_clock))?;
            commands::close::close(&settings, &req).await
        }
        Command::ReopenYear { fy, who, store } => {
            let settings = resolve(store.flags(), RoleKind::Command)?;
            let req = who.request(fy, settings.now.unwrap_or_else(Timestamp::wall_clock))?;
            commands::close::reopen(&settings, &req).await
        }
        Command::Rules { out, plan } => {
            let flags = Flags {
                plan,
                ..Flags::default()
            };
            let settings = resolve(flags, RoleKind::Command)?;
            commands::generate::rules(&cfg, &settings, out.as_deref())
        }
        Command::Dashboards { out, plan } => {
            let flags = Flags {
                plan,
                ..Flags::default()
            };
            commands::generate::dashboards(&resolve(flags, RoleKind::Command)?, &out)
        }
        Command::Schema { out, plan } => {
            let flags = Flags {
                plan,
                ..Flags::default()
            };
            commands::schema::write(&resolve(flags, RoleKind::Command)?.plan, &out)
        }
        Command::Ingest { role } => ingest(resolve(role.flags(), RoleKind::Ingest)?).await,
        Command::Aggregate { role } => aggregate(resolve(role.flags(), RoleKind::Aggregate)?).await,
        Command::Export { role } => export(resolve(role.flags(), RoleKind::Export)?).await,
    }
}

async fn standalone(settings: Resolved) -> anyhow::Result<ExitCode> {
    let settings = reload_keys_on_hangup(settings);
    let app = Standalone::build(&settings).await?;
    println!(
        "mieruka standalone: {}://{}/ (metrics at /metrics)",
        scheme(&settings),
        app.local_addr()?
    );
    app.run(shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn ingest(settings: Resolved) -> anyhow::Result<ExitCode> {
    let settings = reload_keys_on_hangup(settings);
    let role = IngestRole::build(&settings).await?;
    println!(
        "mieruka ingest: {}://{}/ (POST /v1/events; produces to {} on {})",
        scheme(&settings),
        role.local_addr()?,
        role.topic(),
        settings.brokers()?
    );
    role.run(shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn aggregate(settings: Resolved) -> anyhow::Result<ExitCode> {
    let role = AggregateRole::build(&settings).await?;
    println!(
        "mieruka aggregate: http://{}/ (health at /metrics; consuming {} as group {})",
        role.local_addr()?,
        role.topics(),
        role.group_id()
    );
    role.run(shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn export(settings: Resolved) -> anyhow::Result<ExitCode> {
    let role = ExportRole::build(&settings).await?;
    println!(
        "mieruka export: {}://{}/ (metrics at /metrics)",
        scheme(&settings),
        role.local_addr()?
    );
    role.run(shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `https` when the role serves TLS, else `http`.
fn scheme(settings: &Resolved) -> &'static str {
    if settings.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// Wakes the role's token reloader on each SIGHUP: only `main` knows about signals.
fn reload_keys_on_hangup(settings: Resolved) -> Resolved {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let wake = settings.reload_keys.clone();
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the tokens.");
                        wake.notify_one();
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGHUP; the tokens reload only when the config file changes.");
            }
        }
    }
    settings
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
