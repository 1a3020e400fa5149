//! HTTPS without a proxy: `standalone` with `[tls]` and a throw-away certificate takes
//! events over HTTPS (a rustls client that trusts only that certificate), refuses plain
//! HTTP on the same port, and refuses to start on a missing, empty or mismatched file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::helpers::{bin, cert, Metrics, NOW};

const TOKEN: &str = "tls-test-token";

/// A self-signed certificate for localhost and 127.0.0.1: (certificate PEM, key PEM, DER).
fn throw_away_certificate() -> (String, String, CertificateDer<'static>) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names).unwrap();
    (cert.pem(), key_pair.serialize_pem(), cert.der().clone())
}

/// A config with one token and `[tls]` on the given files.
fn write_config(dir: &Path, cert_file: &Path, key_file: &Path) -> std::path::PathBuf {
    let digest = mieruka_ingest::http::keys::token_sha256(TOKEN);
    let text = format!(
        "refresh_seconds = 1\n\
         [[tokens]]\nname = \"konbini\"\ntoken_sha256 = \"{digest}\"\nsources = [\"konbini\"]\n\
         [tls]\ncert = '{}'\nkey = '{}'\n",
        cert_file.display(),
        key_file.display()
    );
    let path = dir.join("mieruka.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn command(dir: &Path, config: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(["standalone", "--listen", "127.0.0.1:0", "--now", NOW])
        .arg("--db")
        .arg(dir.join("m.db"))
        .arg("--config")
        .arg(config)
        .env("MIERUKA_LOG", "warn");
    c
}

/// A client trusting only `ca`.
fn connector(ca: CertificateDer<'static>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 request over TLS; returns (status, body).
async fn https(
    tls: &TlsConnector,
    port: u16,
    method_path: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut s = tls.connect(name, tcp).await?;
    let req = format!(
        "{method_path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut reply = Vec::new();
    // A peer closing without close_notify still leaves the whole reply read.
    let _ = s.read_to_end(&mut reply).await;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Kills the process on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn events_are_posted_over_https_with_a_throw_away_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem, der) = throw_away_certificate();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert_pem).unwrap();
    std::fs::write(&key_file, key_pem).unwrap();
    let config = write_config(dir.path(), &cert_file, &key_file);
    let mut child = command(dir.path(), &config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let app = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in {line:?}"));
    let port: u16 = url
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tls = connector(der);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(https(&tls, port, "GET /readyz", "", "").await, Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "not ready over HTTPS within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let events = [
            cert("tls-1", "konbini", 2, "2026-09-01T10:00:00+09:00"),
            cert("tls-2", "online", 1, "2026-09-02T10:00:00+09:00"),
        ]
        .join("\n");
        let headers =
            format!("authorization: Bearer {TOKEN}\r\ncontent-type: application/x-ndjson\r\n");
        let (status, body) = https(&tls, port, "POST /v1/events", &headers, &events)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["accepted"], 2, "{reply}");

        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, text) = https(&tls, port, "GET /metrics", "", "").await.unwrap();
        assert_eq!(status, 200);
        let m = Metrics::parse(&text);
        let accepted = [
            ("source", "konbini"),
            ("outcome", "accepted"),
            ("reason", ""),
        ];
        assert_eq!(
            m.get("mieruka_events_total", &accepted),
            Some(2.0),
            "{text}"
        );

        // Plain HTTP on the same port gets no HTTP reply.
        let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = plain
            .write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut reply)).await;
        assert!(!reply.starts_with(b"HTTP/1.1 200"), "{reply:?}");
    });
    drop(app);
}

#[test]
fn a_missing_empty_or_mismatched_certificate_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem, _) = throw_away_certificate();
    let (_, other_key, _) = throw_away_certificate();
    let files = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (cert_file, key_file) = (files("cert.pem", &cert_pem), files("key.pem", &key_pem));
    let cases = [
        (
            dir.path().join("absent.pem"),
            key_file.clone(),
            "cannot read [tls] cert",
        ),
        (
            files("empty.pem", "not a certificate\n"),
            key_file.clone(),
            "holds no certificate",
        ),
        (
            cert_file.clone(),
            files("nokey.pem", &cert_pem),
            "holds no private key",
        ),
        (
            cert_file.clone(),
            files("other.pem", &other_key),
            "does not go with certificate",
        ),
    ];
    for (cert_path, key_path, want) in cases {
        let config = write_config(dir.path(), &cert_path, &key_path);
        let out = command(dir.path(), &config)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{want}: started anyway");
        assert!(err.contains(want), "{want}: {err}");
    }
}
