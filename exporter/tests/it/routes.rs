//! The HTTP routes, through `oneshot` and once over a real socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use mieruka_exporter::kpi_explain::{ExplainFuture, Explainer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{html, kpi_year, sample, TestApp};

#[tokio::test]
async fn metrics_serves_the_published_kpis_and_health_as_text_exposition() {
    let app = TestApp::published();
    let (status, headers, body) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let ct = headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(
        sample(
            &body,
            "mieruka_kpi_target",
            &kpi_year("mynumber_card_holding_rate", "2026")
        ),
        Some(84.6)
    );
    assert!(body.contains("mieruka_events_total{"));
    assert!(body.contains("mieruka_snapshot_age_seconds "));
}

#[tokio::test]
async fn metrics_before_any_publish_has_health_but_no_kpis() {
    let app = TestApp::new();
    let body = app.scrape_metrics().await;
    assert!(!body.contains("mieruka_kpi_"));
    assert!(body.contains("mieruka_events_total{"));
}

#[tokio::test]
async fn a_publish_replaces_the_served_snapshot() {
    let app = TestApp::published();
    app.exporter.publish(&[], crate::helpers::now());
    let body = app.scrape_metrics().await;
    assert!(!body.contains("mieruka_kpi_value{"));
    // The plan's descriptions stay: they do not depend on figures.
    assert!(body.contains("mieruka_kpi_info{"));
    assert!(app.exporter.figures().is_empty());
}

#[tokio::test]
async fn healthz_answers_ok_whatever_the_state() {
    let app = TestApp::new();
    let (status, _, body) = app.get("/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn readyz_needs_both_the_roles_word_and_a_published_snapshot() {
    let app = TestApp::new();
    let (status, _, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("not ready"), "{body}");

    app.exporter.set_ready(true);
    let (status, _, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("no KPI snapshot"), "{body}");

    app.publish();
    let (status, _, _) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);

    app.exporter.set_ready(false);
    let (status, _, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("declared"), "{body}");
}

#[tokio::test]
async fn the_status_page_is_html_with_every_kpi() {
    let app = TestApp::published();
    let (status, headers, body) = app.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    for kpi in &app.plan.kpis {
        assert!(
            body.contains(&format!("data-kpi=\"{}\"", kpi.id)),
            "{}",
            kpi.id
        );
        assert!(body.contains(&html(&kpi.name_ja)), "{}", kpi.name_ja);
    }
}

#[tokio::test]
async fn an_unknown_path_is_not_found() {
    let app = TestApp::published();
    let (status, _, _) = app.get("/v1/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_router_serves_metrics_over_a_real_socket() {
    let app = TestApp::published();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app.router).await.unwrap();
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut reply),
    )
    .await
    .unwrap()
    .unwrap();
    server.abort();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:.200}");
    assert!(reply.contains("text/plain; version=0.0.4"));
    assert!(reply.contains(
        r#"mieruka_kpi_target{fiscal_year="2026",kpi="mynumber_card_holding_rate"} 84.6"#
    ));
}

/// The explanation of a real store (`explain` over a SQLite file holding certificates),
/// counting how often it is asked.
struct CountingExplainer {
    store: Arc<mieruka_aggregator::SqliteStore>,
    calls: Arc<AtomicUsize>,
}

impl Explainer for CountingExplainer {
    fn explain(&self, kpi: &str, now: mieruka_ingest::Timestamp) -> ExplainFuture {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let store = Arc::clone(&self.store);
        let req = mieruka_aggregator::explain::Request {
            kpi: kpi.to_owned(),
            year: None,
            as_of: None,
            now,
        };
        Box::pin(async move {
            mieruka_aggregator::explain::explain(&*store, &req)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[tokio::test]
async fn a_kpi_page_shows_its_explanation_computed_once_per_publish() {
    use mieruka_exporter::feeds::{SourceDirectory, SourceInfo};

    let app = TestApp::published();
    let dir = tempfile::tempdir().unwrap();
    let store = mieruka_aggregator::SqliteStore::open(&dir.path().join("s.db"), app.plan.clone())
        .await
        .unwrap();
    let lines = [
        r#"{"event_id":"k-1","source":"konbini","type":"certificate.issued","occurred_at":"2026-05-01T10:15:00+09:00","data":{"channel":"konbini","certificate":"juminhyo","count":44}}"#,
        r#"{"event_id":"c-1","source":"counter","type":"certificate.issued","occurred_at":"2026-06-02T10:15:00+09:00","data":{"channel":"counter","certificate":"juminhyo","count":56}}"#,
    ];
    let items = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            mieruka_ingest::item(
                &app.plan.schema,
                l.as_bytes(),
                mieruka_ingest::Position::Index(i),
                "test",
            )
        })
        .collect();
    store.submit_batch(items).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    app.exporter.set_explainer(Arc::new(CountingExplainer {
        store: Arc::new(store),
        calls: Arc::clone(&calls),
    }));
    let mut directory = SourceDirectory::default();
    directory.sources.insert(
        "konbini".into(),
        SourceInfo {
            display_name: Some("コンビニ交付".into()),
            ..SourceInfo::default()
        },
    );
    app.exporter.set_source_directory(directory);
    app.publish();

    let (status, _, page) = app.get("/kpi/konbini_issuance_rate").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("class=\"explanation\""), "{page}");
    assert!(
        page.contains("2026-05") && page.contains("2026-06"),
        "by month"
    );
    // Its sources: those its events came from, by display name where one is configured.
    let feed = page
        .split("<tr data-source=\"konbini\"")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap();
    assert!(feed.contains("コンビニ交付"), "{feed}");
    assert!(page.contains("data-source=\"counter\""));
    assert!(!page.contains(
        "href=\"../v1/kpis/konbini_issuance_rate\">/v1/kpis/konbini_issuance_rate</a> (JSON)"
    ));

    let (_, _, again) = app.get("/kpi/konbini_issuance_rate").await;
    assert_eq!(again, page);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "explained again before a publish"
    );
    app.publish();
    app.get("/kpi/konbini_issuance_rate").await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "not explained again after a publish"
    );
}
