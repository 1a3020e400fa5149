//! The HTTP routes, through `oneshot` and once over a real socket.

use axum::http::{header, StatusCode};
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
