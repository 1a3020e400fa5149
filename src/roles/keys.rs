//! The tokens a receiving role takes, reloaded without a restart: when the config file
//! changes (looked at every `tokens_reload_seconds`, 2 by default) and when `main` says
//! so (SIGHUP). Only the `[[tokens]]` are reloaded; every other setting needs a restart.
//!
//! A reload that fails (the file does not parse, a token has no key) keeps the tokens
//! in force and logs why, once per change of the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mieruka_exporter::Access;
use mieruka_ingest::http::{KeyRing, SharedKeys};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Resolved};

/// The role's tokens, shared with its receiver, and the task keeping them current
/// until `shutdown`.
pub(super) fn watch(
    settings: &Resolved,
    access: Access,
    shutdown: &CancellationToken,
) -> anyhow::Result<SharedKeys> {
    let ring = KeyRing::new(&settings.tokens).context("a [[tokens]] entry cannot be used")?;
    let keys = SharedKeys::new(ring);
    if let Some(path) = settings.config_path.clone() {
        let reloader = Reloader {
            path,
            keys: keys.clone(),
            access,
            seen: None,
        };
        let signal = settings.reload_keys.clone();
        tokio::spawn(reloader.run(signal, settings.keys_poll, shutdown.clone()));
    }
    Ok(keys)
}

/// Reloads the tokens from one config file.
struct Reloader {
    path: PathBuf,
    keys: SharedKeys,
    access: Access,
    /// The file's text when last looked at (`None` before the first look): a reload
    /// happens when it changes, whatever its mtime says.
    seen: Option<Vec<u8>>,
}

impl Reloader {
    /// Reloads on each `signal`, and every `poll` if the file changed, until `shutdown`.
    async fn run(
        mut self,
        signal: Arc<Notify>,
        poll: Option<Duration>,
        shutdown: CancellationToken,
    ) {
        // The first look only notes the text the role started with.
        self.seen = tokio::fs::read(&self.path).await.ok();
        let poll = poll.unwrap_or(Duration::MAX);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = signal.notified() => self.reload("signal").await,
                () = tokio::time::sleep(poll) => {
                    let text = tokio::fs::read(&self.path).await.ok();
                    if text != self.seen {
                        self.reload("file changed").await;
                    }
                }
            }
        }
    }

    /// Puts the file's tokens in force, or keeps the current ones and says why. The text
    /// read becomes the one the next look compares with, so a signal and the poll do
    /// not both reload one change.
    async fn reload(&mut self, cause: &'static str) {
        let text = tokio::fs::read(&self.path).await;
        self.seen = text.as_ref().ok().cloned();
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let text = text.with_context(|| format!("cannot read config {}", path.display()))?;
            load(&String::from_utf8_lossy(&text), &path)
        });
        match loaded.await {
            Ok(Ok(ring)) => {
                let names = ring.names();
                let count = ring.len();
                self.keys.replace(ring);
                self.access.set_tokens(&names);
                tracing::info!(cause, tokens = count, "Reloaded the tokens.");
            }
            Ok(Err(e)) => tracing::error!(
                cause,
                path = %self.path.display(),
                error = format!("{e:#}"),
                "The tokens were not reloaded; the previous ones stay in force."
            ),
            Err(e) => tracing::error!(cause, error = %e, "The tokens were not reloaded."),
        }
    }
}

/// The tokens of `text`, the config file at `path`.
fn load(text: &str, path: &Path) -> anyhow::Result<KeyRing> {
    let cfg = Config::parse(text, path)?;
    cfg.warn_secrets_in_clear();
    cfg.key_ring()
}
