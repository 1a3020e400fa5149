//! How a binary of the project starts and ends: logs to standard error, filtered by
//! `MIERUKA_LOG`, as plain text (coloured only on a terminal) or as JSON lines with
//! `MIERUKA_LOG_FORMAT=json`; a multi-thread runtime; an error printed with its causes
//! and exit code 1. `mieruka` and `mieruka-bench` both start here.

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Starts logging (`MIERUKA_LOG`, else `default_filter`) and a runtime, runs `main` on
/// it, and turns its result into the process's exit code.
pub fn run<F>(default_filter: &str, main: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    init_logs(default_filter);
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

/// Logs to standard error: JSON lines when `MIERUKA_LOG_FORMAT=json` (for a log
/// collector), else text, with colour codes only when standard error is a terminal (a
/// file or a journal gets plain text).
fn init_logs(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIERUKA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let format = std::env::var("MIERUKA_LOG_FORMAT").unwrap_or_default();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.trim().to_ascii_lowercase().as_str() {
        "json" => logs.json().init(),
        other => {
            logs.with_ansi(std::io::stderr().is_terminal()).init();
            if !matches!(other, "" | "text") {
                tracing::warn!(
                    format = other,
                    "MIERUKA_LOG_FORMAT is neither text nor json; logging text."
                );
            }
        }
    }
}
