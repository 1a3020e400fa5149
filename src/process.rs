//! How a binary of the project starts and ends: logs to standard error, filtered by
//! `MIERUKA_LOG`; a multi-thread runtime; an error printed with its causes and exit
//! code 1. `mieruka` and `mieruka-bench` both start here.

use std::future::Future;
use std::process::ExitCode;

/// Starts logging (`MIERUKA_LOG`, else `default_filter`) and a runtime, runs `main` on
/// it, and turns its result into the process's exit code.
pub fn run<F>(default_filter: &str, main: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIERUKA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
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
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
