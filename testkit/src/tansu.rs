//! The `tansu` Kafka-protocol broker (installed by `scripts/test.sh` with
//! `cargo install tansu --locked --features dynostore`), started on a free loopback port
//! with its in-memory storage engine.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install the broker, for error messages.
pub const INSTALL_HINT: &str =
    "run ./scripts/test.sh (it installs tansu), or `cargo install tansu --locked --features dynostore`";

/// The `tansu` binary: in `~/.cargo/bin` or on `PATH`.
pub fn binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let in_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("tansu"))
        .collect::<Vec<_>>();
    home.iter()
        .map(|h| h.join(".cargo/bin/tansu"))
        .chain(in_path)
        .find(|p| p.is_file())
}

/// `tansu broker` with the memory engine on 127.0.0.1:`port`, logging warnings only;
/// the caller sets its stdio.
pub fn command(tansu: &Path, port: u16) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(tansu);
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        "memory://tansu/",
    ])
    .env("RUST_LOG", "warn");
    cmd
}

/// A running broker process, killed when this is dropped.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tansu {
    /// Starts the broker on a free port, its output appended to `log`, and waits (up to
    /// 30 s) until it listens.
    pub fn start(log: &Path) -> anyhow::Result<Tansu> {
        let Some(tansu) = binary() else {
            bail!("no `tansu` broker in ~/.cargo/bin or PATH: {INSTALL_HINT}");
        };
        let port = crate::free_port().context("cannot find a free port")?;
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command(&tansu, port)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("cannot start {}", tansu.display()))?;
        let broker = Tansu {
            child,
            port,
            log: log.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() >= deadline {
                bail!(
                    "tansu did not listen on 127.0.0.1:{port} within 30 s:\n{}",
                    tail(&broker.log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file the broker logs to.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a log file (for a failure's message).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
