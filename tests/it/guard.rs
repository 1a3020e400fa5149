//! The personal-number guard as a property: for any event and any place and notation of
//! a personal number in it, the event is refused as `personal_number`, and the number is
//! in no byte of what leaves the edge — the reply, the masked raw text, the rejection,
//! a dead letter of either role, the store's files, the logs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mieruka::config::{Resolved, RoleKind};
use mieruka::roles::standalone::Standalone;
use mieruka_aggregator::Plan;
use mieruka_ingest::http::{Limits, Token, DEFAULT_IDLE_TIMEOUT};
use mieruka_ingest::kafka::dead_letter;
use mieruka_ingest::{item, Position, Reason, Schema, TimeWindow, Timestamp};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

use crate::helpers::{cert, NOW};
use crate::personal::{case, leaks, twelve_digit_runs, Case};

/// The shipped Ome plan, "now" fixed at [`NOW`] (the generated events lie before it).
fn plan() -> Plan {
    let mut plan = Plan::ome().unwrap();
    let window = TimeWindow {
        now: Timestamp::parse_rfc3339(NOW).ok(),
        ..*plan.schema.window()
    };
    plan.schema.set_window(window);
    plan
}

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| plan().schema);

/// The event id a refusal names: the case's own, unless the number is in it (an id that
/// did not pass the guard is never named).
fn named_id(case: &Case) -> Option<String> {
    (case.field() != "event_id").then(|| case.base.id.clone())
}

/// Everything of one case that leaves the edge, in process: the item's masked raw text,
/// the rejection, and the dead letters of the `ingest` role (an HTTP item: text only, no
/// key) and of the `aggregate` role (a message read from a source topic, with its key and
/// bytes). Fails unless the case is refused as `personal_number` at its field.
fn leaves_the_edge(schema: &Schema, case: &Case) -> Result<Vec<(String, Vec<u8>)>, TestCaseError> {
    let raw = case.event();
    let http = item(schema, raw.as_bytes(), Position::Index(3), "konbini");
    let rejection = match &http.outcome {
        Err(r) => r.clone(),
        Ok(_) => return Err(TestCaseError::fail(format!("accepted: {raw}"))),
    };
    prop_assert_eq!(rejection.reason, Reason::PersonalNumber, "{}", raw);
    let field = case.field();
    prop_assert_eq!(rejection.field.as_deref(), Some(field.as_str()), "{}", raw);
    prop_assert_eq!(rejection.event_id.clone(), named_id(case), "{}", raw);

    let mut out: Vec<(String, Vec<u8>)> = vec![
        (
            "raw_masked".into(),
            http.raw_masked.clone().unwrap_or_default().into(),
        ),
        (
            "field".into(),
            rejection.field.clone().unwrap_or_default().into(),
        ),
        ("message".into(), rejection.message.clone().into()),
    ];
    let mut letter = |name: &str, l: mieruka_ingest::kafka::DeadLetter<'_>| {
        out.push((format!("{name} payload"), l.payload.to_vec()));
        out.push((
            format!("{name} key"),
            l.key.map(|k| k.to_vec()).unwrap_or_default(),
        ));
        for (header, value) in l.headers {
            out.push((format!("{name} header {header}"), value.into_bytes()));
        }
    };
    letter(
        "ingest dead letter",
        dead_letter(&http, &rejection, None, None),
    );
    let position = Position::Offset {
        topic: "mieruka.events".into(),
        partition: 2,
        offset: 41,
    };
    let kafka = item(schema, raw.as_bytes(), position, "konbini");
    for (i, key) in case.message_keys().iter().enumerate() {
        // Else the check of the key would prove nothing.
        prop_assert!(leaks(key.as_bytes(), &case.digits), "{}", key);
        letter(
            &format!("aggregate dead letter (key {i})"),
            dead_letter(
                &kafka,
                &rejection,
                Some(key.as_bytes()),
                Some(raw.as_bytes()),
            ),
        );
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_personal_number_anywhere_in_any_notation_is_refused_and_never_leaves_the_edge(
        case in case()
    ) {
        let raw = case.event();
        // Else a masked text would prove nothing.
        prop_assert!(leaks(raw.as_bytes(), &case.digits), "{}", raw);
        for (what, bytes) in leaves_the_edge(&SCHEMA, &case)? {
            prop_assert!(
                !leaks(&bytes, &case.digits),
                "{} holds the number: {:?}\nevent: {}",
                what,
                String::from_utf8_lossy(&bytes),
                raw
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The guard decides on the first number it meets, but masks every one (docs/architecture.md):
    /// a second number, in its own notation, after the first.
    #[test]
    fn every_personal_number_of_an_event_is_masked_not_only_the_first(
        first in case(),
        second in case()
    ) {
        let event = first.event();
        let also = second.notation.json(&second.digits);
        let raw = format!("{},\"also\":{also}}}", &event[..event.len() - 1]);
        let http = item(&SCHEMA, raw.as_bytes(), Position::Index(0), "konbini");
        let Err(rejection) = &http.outcome else {
            return Err(TestCaseError::fail(format!("accepted: {raw}")));
        };
        let field = first.field();
        prop_assert_eq!(rejection.field.as_deref(), Some(field.as_str()), "{}", raw);
        let letter = dead_letter(&http, rejection, None, Some(raw.as_bytes()));
        for digits in [&first.digits, &second.digits] {
            prop_assert!(leaks(raw.as_bytes(), digits), "{}", raw);
            prop_assert!(!leaks(&letter.payload, digits), "{:?}\nevent: {}", digits, raw);
        }
    }
}

/// Whether a capture is on: the subscriber writes nothing otherwise.
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// What the process logged while a capture was on.
static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// The logs of the whole process at DEBUG and above, from [`LogCapture::start`] to
/// [`LogCapture::finish`]. The subscriber is global, set once for the test binary: the
/// app logs from the runtime's worker threads and from SQLite's connection threads,
/// where a thread-local subscriber would not reach. One capture at a time (only one test
/// takes one); other tests' logs written meanwhile land in it too, harmlessly.
struct LogCapture;

/// Appends to the capture buffer.
struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn start() -> LogCapture {
        let buffer = CAPTURED.get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let sink = buffer.clone();
            // A dynamic filter: asked at every event, so that turning the capture on
            // and off takes effect at once (a static one is cached per call site).
            let filter = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
                CAPTURING.load(Ordering::SeqCst) && *meta.level() <= tracing::Level::DEBUG
            });
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || BufferWriter(sink.clone()))
                .with_filter(filter);
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other global subscriber in this test binary");
            buffer
        });
        buffer.lock().unwrap().clear();
        CAPTURING.store(true, Ordering::SeqCst);
        LogCapture
    }

    fn finish(self) -> Vec<u8> {
        CAPTURING.store(false, Ordering::SeqCst);
        let buffer = CAPTURED.get().expect("started");
        std::mem::take(&mut *buffer.lock().unwrap())
    }
}

/// Cases posted to one running standalone: every place and notation many times over, in
/// a few seconds of a debug build.
const SERVER_CASES: usize = 128;

/// Cases per request, beside one valid event: a reply, a batch of the store and its log
/// lines each hold several numbers.
const PER_REQUEST: usize = 8;

/// The token of the test's line system.
const TOKEN: &str = "t-guard";

/// The SQLite files of the store at `db`: the database, its WAL and shared memory.
fn store_files(db: &Path, when: &str) -> Vec<(String, Vec<u8>)> {
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .map(|e| {
            let what = format!("{} {when}", e.file_name().to_string_lossy());
            (what, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn post(base: &str, content_type: &str, body: &str) -> (u16, String) {
    let reply = ureq::post(&format!("{base}/v1/events"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .set("Content-Type", content_type)
        .send_string(body);
    match reply {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("POST failed: {e}"),
    }
}

#[test]
fn a_personal_number_leaves_no_trace_in_the_reply_the_store_or_the_logs() {
    let started = Instant::now();
    let logs = LogCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let token = Token {
        name: "guard".into(),
        token: Some(TOKEN.into()),
        sources: vec!["konbini".into()],
        types: vec!["certificate.issued".into()],
        ..Token::default()
    };
    let mut settings = Resolved::new(Arc::new(plan()), RoleKind::Standalone);
    settings.listen = "127.0.0.1:0".into();
    settings.db = db.clone();
    settings.refresh = Duration::from_secs(60);
    settings.limits = Limits::default();
    settings.idle_timeout = DEFAULT_IDLE_TIMEOUT;
    settings.add_token(token);
    settings.sources = vec!["konbini".into()];
    settings.now = Timestamp::parse_rfc3339(NOW).ok();
    let app = rt.block_on(Standalone::build(&settings)).unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = rt.spawn(app.run(shutdown.clone()));

    // The cases of a property, drawn by proptest's runner (PROPTEST_RNG_SEED fixes them);
    // one server for all, so no shrinking: a failure prints the events at fault whole.
    let mut runner = TestRunner::default();
    let strategy = case();
    let cases: Vec<Case> = (0..SERVER_CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();

    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (n, batch) in cases.chunks(PER_REQUEST).enumerate() {
        let mut events: Vec<String> = batch.iter().map(Case::event).collect();
        events.push(cert(
            &format!("guard-{n}"),
            "konbini",
            1,
            "2026-05-01T10:00:00+09:00",
        ));
        // NDJSON and JSON arrays in turn: the receiver frames each its own way.
        let (content_type, body) = if n % 2 == 0 {
            ("application/x-ndjson", events.join("\n"))
        } else {
            ("application/json", format!("[{}]", events.join(",")))
        };
        let (status, text) = post(&base, content_type, &body);
        assert_eq!(status, 200, "{text}");
        let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rejected: HashMap<u64, &serde_json::Value> = reply["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| (entry["index"].as_u64().unwrap(), entry))
            .collect();
        if reply["accepted"] != 1 || rejected.contains_key(&(batch.len() as u64)) {
            failures.push(format!(
                "the valid event beside them was not accepted: {reply}"
            ));
        }
        for (i, case) in batch.iter().enumerate() {
            let Some(entry) = rejected.get(&(i as u64)) else {
                failures.push(format!("not refused\n  event: {}", case.event()));
                continue;
            };
            let expected = serde_json::json!({
                "reason": "personal_number",
                "field": case.field(),
            });
            if entry["reason"] != expected["reason"]
                || entry["field"] != expected["field"]
                || entry
                    .get("event_id")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    != named_id(case)
            {
                failures.push(format!(
                    "reply entry {entry}, expected {expected}\n  event: {}",
                    case.event()
                ));
            }
        }
        haystacks.push((format!("reply {n}"), text.into_bytes()));
    }
    let metrics = ureq::get(&format!("{base}/metrics")).call().unwrap();
    haystacks.push((
        "/metrics".into(),
        metrics.into_string().unwrap().into_bytes(),
    ));
    haystacks.extend(store_files(&db, "while serving"));

    shutdown.cancel();
    rt.block_on(server).unwrap().unwrap();
    drop(rt);
    let stored = store_files(&db, "after stopping");
    let logged = logs.finish();

    // Not vacuous: the rejections are in the file looked at, and the logs hold the app's
    // lines down to DEBUG, from the SQLite connection threads too.
    let main_file = &stored
        .iter()
        .find(|(n, _)| n.starts_with("m.db "))
        .unwrap()
        .1;
    assert!(
        main_file
            .windows(b"personal_number".len())
            .any(|w| w == b"personal_number"),
        "no rejection in the store"
    );
    let log_text = String::from_utf8_lossy(&logged);
    assert!(log_text.contains("Serving events"), "{log_text}");
    assert!(log_text.contains("INSERT INTO rejected"), "{log_text}");
    haystacks.extend(stored);
    haystacks.push(("logs".into(), logged));

    for (what, bytes) in &haystacks {
        let runs: HashSet<[u8; 12]> = twelve_digit_runs(bytes);
        for case in cases.iter().filter(|c| runs.contains(&c.digits)) {
            failures.push(format!(
                "{what} holds the number {:?} of\n  event: {}",
                case.digits,
                case.event()
            ));
        }
    }
    eprintln!(
        "{} cases through a standalone in {:.1?}; {} haystacks, {} bytes",
        cases.len(),
        started.elapsed(),
        haystacks.len(),
        haystacks.iter().map(|(_, b)| b.len()).sum::<usize>()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
