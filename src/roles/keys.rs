//! The tokens a receiving role takes, reloaded without a restart: when the config file
//! changes (looked at every [`POLL`]) and when `main` says so (SIGHUP). Only the
//! `[[tokens]]` are reloaded; every other setting needs a restart.
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

/// How often the config file is looked at: a rotated token is in force within seconds,
/// and reading one small file this often costs nothing.
pub const POLL: Duration = Duration::from_secs(2);

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
        tokio::spawn(reloader.run(settings.reload_keys.clone(), shutdown.clone()));
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
    async fn run(mut self, signal: Arc<Notify>, shutdown: CancellationToken) {
        // The first look only notes the text the role started with.
        self.seen = tokio::fs::read(&self.path).await.ok();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = signal.notified() => self.reload("signal").await,
                () = tokio::time::sleep(POLL) => {
                    let text = tokio::fs::read(&self.path).await.ok();
                    if text != self.seen {
                        self.seen = text;
                        self.reload("file changed").await;
                    }
                }
            }
        }
    }

    /// Puts the file's tokens in force, or keeps the current ones and says why.
    async fn reload(&mut self, cause: &'static str) {
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || load(&path)).await {
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

/// The tokens of the config file at `path`.
fn load(path: &Path) -> anyhow::Result<KeyRing> {
    let cfg = Config::load(Some(path))?;
    cfg.warn_secrets_in_clear();
    cfg.key_ring()
}
