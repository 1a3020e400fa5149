//! `TestApp`: the Ome plan, an engine fed a small story of events, and an exporter
//! with its router, all at a fixed `now`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mieruka_aggregator::{Engine, Figure, Plan};
use mieruka_exporter::{router, Exporter};
use mieruka_ingest::{decode, Event, Status, Timestamp};
use tower::ServiceExt;

/// Half-way through FY2026 (183 of its 365 days have elapsed).
pub const NOW: &str = "2026-10-01T00:00:00+09:00";

/// The configured sources of the test exporter.
pub const SOURCES: &[&str] = &[
    "card_registry",
    "resident_registry",
    "konbini",
    "counter",
    "procurement",
    "dx_office",
    "umepon",
];

pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

pub fn now() -> Timestamp {
    ts(NOW)
}

/// Decodes one event of the Ome plan (panics on a rejection: the story is valid).
pub fn event(plan: &Plan, id: &str, source: &str, ty: &str, at: &str, data: &str) -> Event {
    let raw = format!(
        r#"{{"event_id":"{id}","source":"{source}","type":"{ty}","occurred_at":"{at}","data":{data}}}"#
    );
    decode(&plan.schema, raw.as_bytes()).unwrap_or_else(|r| panic!("{raw}: {r}"))
}

/// The story: card holders and population known at the start of FY2026 and again in
/// September; 44 of 100 certificates issued at convenience stores; A4 paper bought
/// (a KPI without a target); the disposition-notice milestone at its FY2026 stage; and
/// うめPON's users, far behind pace.
pub fn story(plan: &Plan) -> Vec<Event> {
    let e = |id, source, ty, at, data| event(plan, id, source, ty, at, data);
    vec![
        e(
            "pop-1",
            "resident_registry",
            "population.snapshot",
            "2026-03-31T12:00:00+09:00",
            r#"{"population":125000}"#,
        ),
        e(
            "hold-1",
            "card_registry",
            "mynumber_card.holders_snapshot",
            "2026-03-31T12:00:00+09:00",
            r#"{"holders":103000}"#,
        ),
        e(
            "hold-2",
            "card_registry",
            "mynumber_card.holders_snapshot",
            "2026-09-01T12:00:00+09:00",
            r#"{"holders":106000}"#,
        ),
        e(
            "k-1",
            "konbini",
            "certificate.issued",
            "2026-05-01T10:15:00+09:00",
            r#"{"channel":"konbini","certificate":"juminhyo","count":44}"#,
        ),
        e(
            "c-1",
            "counter",
            "certificate.issued",
            "2026-05-02T10:15:00+09:00",
            r#"{"channel":"counter","certificate":"juminhyo","count":56}"#,
        ),
        e(
            "paper-1",
            "procurement",
            "paper.purchased",
            "2026-06-10T09:00:00+09:00",
            r#"{"size":"A4","sheets":250000}"#,
        ),
        e(
            "ms-1",
            "dx_office",
            "milestone.reached",
            "2026-06-01T09:00:00+09:00",
            r#"{"kpi":"disposition_notice_online","stage":"research"}"#,
        ),
        e(
            "um-1",
            "umepon",
            "app.users_snapshot",
            "2026-09-01T00:00:00+09:00",
            r#"{"app":"umepon","users":4331}"#,
        ),
    ]
}

/// The Ome plan's figures at [`NOW`] after the story.
pub fn figures(plan: &Plan) -> Vec<Figure> {
    let mut engine = Engine::new(plan);
    let statuses = engine.apply_all(story(plan));
    assert!(
        statuses.iter().all(|s| *s == Status::Accepted),
        "{statuses:?}"
    );
    engine.figures(now())
}

pub struct TestApp {
    pub plan: Arc<Plan>,
    pub exporter: Arc<Exporter>,
    pub router: Router,
}

impl TestApp {
    /// An exporter that has published nothing and is not declared ready.
    pub fn new() -> Self {
        let plan = Arc::new(Plan::ome().unwrap());
        let exporter = Exporter::new(
            Arc::clone(&plan),
            SOURCES.iter().map(|s| (*s).to_owned()).collect(),
        );
        let router = router(Arc::clone(&exporter));
        Self {
            plan,
            exporter,
            router,
        }
    }

    /// An exporter that is ready and has published the story's figures.
    pub fn published() -> Self {
        let app = Self::new();
        app.exporter.set_ready(true);
        app.publish();
        app
    }

    pub fn publish(&self) {
        self.exporter.publish(&figures(&self.plan), now());
    }

    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    pub async fn scrape_metrics(&self) -> String {
        let (status, _, body) = self.get("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        body
    }
}

/// One parsed sample line: `name{labels} value`.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses one sample line of the text exposition format strictly (no timestamps:
/// mieruka writes none), or says what is wrong with it.
pub fn parse_sample(line: &str) -> Result<Sample, String> {
    let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_name = |c: char| is_name_start(c) || c.is_ascii_digit();
    let mut chars = line.char_indices().peekable();
    let name_end = loop {
        match chars.peek() {
            Some(&(i, c)) if (i == 0 && is_name_start(c)) || (i > 0 && is_name(c)) => {
                chars.next();
            }
            Some(&(i, _)) => break i,
            None => return Err("no value".into()),
        }
    };
    if name_end == 0 {
        return Err("no metric name".into());
    }
    let name = line[..name_end].to_owned();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let label = &rest[..eq];
            if label.is_empty()
                || !label.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("bad label name {label:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut it = rest.char_indices();
            let close = loop {
                match it.next() {
                    Some((_, '\\')) => match it.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            labels.push((label.to_owned(), value));
            rest = &rest[close + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("expected , or } after a label".into());
            }
        }
    }
    let number = rest
        .strip_prefix(' ')
        .ok_or("expected one space before the value")?;
    let value = match number {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        n if n.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) && !n.is_empty() => {
            n.parse::<f64>().map_err(|e| format!("value {n:?}: {e}"))?
        }
        n => return Err(format!("value {n:?} is not a number")),
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// The value of the one series `name{labels}` (labels in any order), if present.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| parse_sample(l).unwrap())
        .find(|s| {
            let mut got = s.labels.clone();
            got.sort();
            s.name == name && got == want
        })
        .map(|s| s.value)
}

/// Labels of a KPI series for a year.
pub fn kpi_year<'a>(kpi: &'a str, year: &'a str) -> [(&'a str, &'a str); 2] {
    [("kpi", kpi), ("fiscal_year", year)]
}

/// `s` as the status page writes it (HTML-escaped): the Ome plan's names hold `&`.
pub fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
