//! HTTPS on a role's listener, for a deployment with no reverse proxy in front
//! (`[tls] cert`, `key`): rustls with the `ring` provider (aws-lc-rs would need cmake to
//! build). The certificate and key are read once at start; a renewed certificate needs
//! a restart (a proxy that renews them itself is the better place when that matters).
//!
//! Handshakes run beside the accept loop, each within [`HANDSHAKE_TIMEOUT`], so a
//! client that stalls in its handshake delays no other.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mieruka_ingest::http::{IdleTimeout, IdleTimeoutListener, Peer};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// Longest a client may take over its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections handshaken but not yet taken by the server: a few, since the server
/// takes each at once.
const BACKLOG: usize = 64;

/// The acceptor of `[tls]`, or an error naming the file at fault and how.
pub fn acceptor(tls: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let certs = read_certs(&tls.cert)?;
    let key = read_key(&tls.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS provider offers no protocol version")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "[tls] key {} does not go with certificate {}",
                tls.key.display(),
                tls.cert.display()
            )
        })?;
    // The server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The certificate chain in the PEM file at `path`.
fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read [tls] cert {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("[tls] cert {} is not valid PEM", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "[tls] cert {} holds no certificate (expected a PEM block \"BEGIN CERTIFICATE\")",
        path.display()
    );
    Ok(certs)
}

/// The private key in the PEM file at `path`.
fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read [tls] key {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).with_context(|| {
        format!(
            "[tls] key {} holds no private key (expected a PEM block \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")",
            path.display()
        )
    })
}

/// A listener of TLS connections whose handshake is done, for `axum::serve`. Its
/// address type is [`Peer`], so each request knows the client's address.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<IdleTimeout<TcpStream>>, Peer)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `inner` until `shutdown`, handshaking each connection beside the loop.
    pub fn spawn(
        mut inner: IdleTimeoutListener,
        acceptor: TlsAcceptor,
        shutdown: &CancellationToken,
    ) -> std::io::Result<TlsListener> {
        use axum::serve::Listener;
        let local = inner.local_addr()?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = tokio::select! {
                    () = shutdown.cancelled() => break,
                    accepted = inner.accept() => accepted,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, Peer(addr))).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "A TLS handshake failed.");
                        }
                        Err(_) => tracing::debug!(peer = %addr, "A TLS handshake timed out."),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<IdleTimeout<TcpStream>>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer(self.local))
    }
}
