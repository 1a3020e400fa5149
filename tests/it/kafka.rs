//! The production roles end to end, as separate processes of the real binary: `ingest`
//! (HTTP → Kafka), `aggregate` (Kafka → PostgreSQL) and `export` (PostgreSQL → /metrics),
//! on a real Kafka-protocol broker and a real PostgreSQL.
//!
//! Each test starts its own `tansu` broker on a free port (or uses `KAFKA_BROKERS`, with
//! topics and a group of its own) and makes its own database on `DATABASE_URL` (default:
//! the local PostgreSQL of docs/architecture.md), dropped at the end. Synchronisation is by polling
//! with deadlines; the only fixed waits are the lengths of injected faults.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bad_input::class;
use mieruka_ingest::kafka::rdkafka;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::{Connection, PgConnection};

use crate::helpers::{free_port, tail, Metrics, NOW};

pub(crate) const OFFICE_TOKEN: &str = "t-office";
pub(crate) const KONBINI: &str = "t-konbini";
const PARTITIONS: i32 = 4;

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

use mieruka_testkit::unique;

// ---------------------------------------------------------------------------------------
// The broker

/// A Kafka-protocol broker: a `tansu` process of this test, `KAFKA_BROKERS`, or
/// librdkafka's in-process mock cluster (for the faults a real broker cannot be made to
/// show on cue: brokers going down, a dead member's session expiring).
pub(crate) struct Broker {
    child: Option<Child>,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    pub(crate) brokers: String,
    log: PathBuf,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let log = dir.join("tansu.log");
        if let Ok(b) = std::env::var("KAFKA_BROKERS") {
            if !b.trim().is_empty() {
                return Broker {
                    child: None,
                    mock: None,
                    brokers: b,
                    log,
                };
            }
        }
        let tansu = mieruka_testkit::tansu::binary().unwrap_or_else(|| {
            panic!(
                "no `tansu` broker (looked in ~/.cargo/bin and PATH) and KAFKA_BROKERS is unset: \
                 run ./scripts/test.sh (it installs tansu), or \
                 `cargo install tansu --locked --features dynostore`"
            )
        });
        let port = free_port();
        let child = mieruka_testkit::tansu::command(&tansu, port)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        let broker = Broker {
            child: Some(child),
            mock: None,
            brokers: format!("127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen within 30 s:\n{}",
                tail(&broker.log, 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// A mock cluster of `count` brokers in this process, listening on loopback.
    fn mock(dir: &Path, count: i32) -> Broker {
        let mock = MockCluster::new(count).unwrap();
        Broker {
            child: None,
            brokers: mock.bootstrap_servers(),
            mock: Some(mock),
            log: dir.join("mock-cluster.log"),
        }
    }

    /// Creates topics (retrying while the broker comes up) and waits for their metadata.
    fn create_topics(&self, topics: &[(&str, i32)]) {
        if let Some(mock) = &self.mock {
            for (t, n) in topics {
                mock.create_topic(t, *n, 1).unwrap();
            }
            return;
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("broker.address.family", "v4")
            .create()
            .unwrap();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(1)))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let results = rt().block_on(admin.create_topics(
                &new,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ));
            let ok = match &results {
                Ok(rs) => rs.iter().all(|r| match r {
                    Ok(_) => true,
                    Err((_, e)) => *e == rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                }),
                Err(_) => false,
            };
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cannot create topics {topics:?}: {results:?}\n{}",
                tail(&self.log, 30)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The partitions are visible in the metadata.
        for (t, n) in topics {
            loop {
                let md = admin
                    .inner()
                    .fetch_metadata(Some(t), Duration::from_secs(5));
                if let Ok(md) = md {
                    if md
                        .topics()
                        .iter()
                        .any(|mt| mt.name() == *t && mt.partitions().len() == *n as usize)
                    {
                        break;
                    }
                }
                assert!(Instant::now() < deadline, "topic {t} has no metadata");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The database

/// A fresh database (testkit's, dropped with its connections when this goes out of
/// scope), with the queries these tests make of it.
pub(crate) struct TestDb {
    name: String,
    pub(crate) url: String,
    inner: mieruka_testkit::pg::TestDb,
}

impl TestDb {
    fn new() -> TestDb {
        let inner = mieruka_testkit::pg::TestDb::create_blocking("mieruka_kafka").unwrap();
        TestDb {
            name: inner.name().to_owned(),
            url: inner.url().to_owned(),
            inner,
        }
    }

    fn admin(&self, sql: &str) {
        self.inner.admin_blocking(sql).unwrap();
    }

    /// Makes the database refuse connections and ends the ones it has.
    fn cut_off(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            self.name
        ));
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ));
    }

    fn restore(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ));
    }

    /// Runs a statement, retrying for up to 30 s while it fails (e.g. until a role has
    /// migrated the database).
    fn exec_when_ready(&self, sql: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = rt().block_on(async {
                let mut conn = PgConnection::connect(&self.url).await?;
                sqlx::query(sql).execute(&mut conn).await?;
                conn.close().await
            });
            match r {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{sql}: {e}"),
            }
        }
    }

    /// Rows of a query returning (text, int8) pairs.
    pub(crate) fn rows(&self, sql: &str) -> Vec<(Option<String>, Option<i64>)> {
        rt().block_on(async {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            rows
        })
    }

    /// The sum of the stored next offsets (how far the aggregators have committed).
    fn committed_offsets(&self) -> i64 {
        rt().block_on(async {
            let Ok(mut conn) = PgConnection::connect(&self.url).await else {
                return 0;
            };
            let n: Option<i64> =
                sqlx::query_scalar("SELECT sum(next_offset)::int8 FROM source_positions")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or(None);
            let _ = conn.close().await;
            n.unwrap_or(0)
        })
    }
}

// ---------------------------------------------------------------------------------------
// The roles

/// Everything one test's roles share.
pub(crate) struct Setup {
    dir: tempfile::TempDir,
    pub(crate) broker: Broker,
    pub(crate) db: TestDb,
    pub(crate) topic: String,
    pub(crate) dead_letter: String,
    pub(crate) config: PathBuf,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        Setup::with_kafka("")
    }

    /// With further `[kafka]` settings of the roles (`{topic}` stands for the source topic).
    fn with_kafka(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path());
        Setup::on(dir, broker, extra)
    }

    /// On librdkafka's mock cluster of `brokers` brokers.
    pub(crate) fn mocked(brokers: i32) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::mock(dir.path(), brokers);
        Setup::on(dir, broker, "")
    }

    fn on(dir: tempfile::TempDir, broker: Broker, kafka_extra: &str) -> Setup {
        let db = TestDb::new();
        let topic = unique("mieruka.events");
        let dead_letter = format!("{topic}.dead-letter");
        broker.create_topics(&[(&topic, PARTITIONS), (&dead_letter, 1)]);
        let kafka_extra = kafka_extra.replace("{topic}", &topic);
        let group = unique("mieruka-aggregators");
        let config = dir.path().join("mieruka.toml");
        std::fs::write(
            &config,
            format!(
                r#"
refresh_seconds = 1

[[tokens]]
name = "konbini"
token = "{KONBINI}"
sources = ["konbini"]
types = ["certificate.issued"]

[[tokens]]
name = "office"
token = "{OFFICE_TOKEN}"
sources = ["office"]

[kafka]
brokers = "{brokers}"
topic = "{topic}"
dead_letter_topic = "{dead_letter}"
group_id = "{group}"
{kafka_extra}

[store]
url = "{url}"
"#,
                brokers = broker.brokers,
                url = db.url,
            ),
        )
        .unwrap();
        Setup {
            dir,
            broker,
            db,
            topic,
            dead_letter,
            config,
        }
    }

    pub(crate) fn start(&self, role: &str, name: &str) -> Role {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut cmd = Command::new(crate::helpers::bin());
        cmd.arg(role)
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", "127.0.0.1:0", "--now", NOW])
            .args(["--database-url", &self.db.url])
            .args(["--brokers", &self.broker.brokers])
            // MIERUKA_TEST_LOG sets the roles' log filter (e.g. `info,librdkafka=debug`
            // with `[kafka.librdkafka] debug = "…"`) when a test needs a closer look.
            .env(
                "MIERUKA_LOG",
                std::env::var("MIERUKA_TEST_LOG")
                    .unwrap_or_else(|_| "info,sqlx=warn,librdkafka=warn".to_owned()),
            )
            .env_remove("MIERUKA_CONFIG")
            .env_remove("MIERUKA_PLAN")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        if role == "export" {
            cmd.args(["--refresh-seconds", "1"]);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut role = Role {
            child,
            base: String::new(),
            log,
            name: name.to_owned(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| {
                panic!(
                    "{name} printed no first line ({e}); its log:\n{}",
                    tail(&role.log, 40)
                )
            });
        role.base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {name}'s first line: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        role
    }
}

/// A running role process; killed on drop.
pub(crate) struct Role {
    child: Child,
    pub(crate) base: String,
    pub(crate) log: PathBuf,
    name: String,
}

impl Role {
    /// Fails with `what` and the log's tail unless the role's log holds `needle`.
    fn assert_logged(&self, needle: &str, what: &str) {
        self.assert_logged_any(&[needle], what);
    }

    /// Fails with `what` and the log's tail unless the role's log holds one of `needles`.
    fn assert_logged_any(&self, needles: &[&str], what: &str) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            needles.iter().any(|n| log.contains(n)),
            "{what}:\n{}",
            tail(&self.log, 30)
        );
    }

    pub(crate) fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = ureq::get(&format!("{}/readyz", self.base)).call() {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {within:?}; its log:\n{}",
                self.name,
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn scrape(&self) -> Option<Metrics> {
        let text = ureq::get(&format!("{}/metrics", self.base))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        Some(Metrics::parse(&text))
    }

    /// Posts NDJSON lines; returns the reply, expecting 200.
    pub(crate) fn post(&self, token: &str, lines: &[String]) -> serde_json::Value {
        let resp = ureq::post(&format!("{}/v1/events", self.base))
            .set("Content-Type", "application/x-ndjson")
            .set("Authorization", &format!("Bearer {token}"))
            .send_string(&lines.join("\n"));
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => panic!(
                "ingest answered {code}: {}\n{}",
                r.into_string().unwrap_or_default(),
                tail(&self.log, 30)
            ),
            Err(e) => panic!("cannot post to ingest: {e}"),
        };
        serde_json::from_str(&resp.into_string().unwrap()).unwrap()
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited with {status}; its log:\n{}",
                    self.name,
                    tail(&self.log, 40)
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within 30 s of SIGTERM:\n{}",
                self.name,
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls the exporter until `check` holds for its metrics, or fails with what it saw.
pub(crate) fn wait_for_metrics(
    export: &Role,
    logs: &[&Role],
    within: Duration,
    what: &str,
    check: impl Fn(&Metrics) -> bool,
    show: impl Fn(&Metrics) -> String,
) -> Metrics {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some(m) = export.scrape() {
            if check(&m) {
                return m;
            }
            last = Some(show(&m));
        }
        if Instant::now() > deadline {
            let logs: String = logs
                .iter()
                .map(|r| format!("--- {} ---\n{}\n", r.name, tail(&r.log, 25)))
                .collect();
            panic!("{what}: not reached within {within:?}; last seen: {last:?}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kpi_fy(m: &Metrics, kpi: &str, fy: &str) -> Option<f64> {
    m.get("mieruka_kpi_value", &[("kpi", kpi), ("fiscal_year", fy)])
}

// ---------------------------------------------------------------------------------------
// Events

pub(crate) fn paper(id: &str, size: &str, sheets: u64, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","source":"office","type":"paper.purchased","occurred_at":"{at}","data":{{"size":"{size}","sheets":{sheets}}}}}"#
    )
}

fn void(id: &str, target: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","source":"office","type":"event.voided","occurred_at":"{at}","data":{{}},"voids":"{target}"}}"#
    )
}

fn cert(id: &str, channel: &str, count: u32, at: &str) -> String {
    crate::helpers::cert(id, channel, count, at)
}

/// A stream of A4 purchases in chunks: every tenth event voids the one before it, and
/// each chunk re-sends the first 50 events of the previous chunk (duplicates).
/// Returns the chunks and the FY2026 total of A4 sheets they must add up to.
fn stream(chunks: usize, per_chunk: usize) -> (Vec<Vec<String>>, u64) {
    let event = |n: usize| -> (String, u64, bool) {
        let at = format!("2026-{:02}-{:02}T10:00:00+09:00", 4 + n % 6, 1 + n % 28);
        if n % 10 == 9 {
            (
                void(&format!("s-{n:06}"), &format!("s-{:06}", n - 1), &at),
                0,
                false,
            )
        } else {
            let sheets = 1 + (n % 7) as u64;
            (
                paper(&format!("s-{n:06}"), "A4", sheets, &at),
                sheets,
                n % 10 == 8,
            )
        }
    };
    let mut total = 0;
    let mut out = Vec::new();
    for c in 0..chunks {
        let mut lines = Vec::new();
        for i in 0..per_chunk {
            let n = c * per_chunk + i;
            let (line, sheets, voided) = event(n);
            if !voided {
                total += sheets;
            }
            lines.push(line);
        }
        if c > 0 {
            for i in 0..50.min(per_chunk) {
                lines.push(event((c - 1) * per_chunk + i).0);
            }
        }
        out.push(lines);
    }
    (out, total)
}

pub(crate) const A4: &str = "a4_paper_sheets_purchased";

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn events_flow_from_ingest_through_kafka_to_export_with_exact_values() {
    class("kafka-not-json");
    let started = Instant::now();
    let s = Setup::new();
    let ingest = s.start("ingest", "ingest");
    let aggregate = s.start("aggregate", "aggregate");
    let export = s.start("export", "export");
    ingest.wait_ready(Duration::from_secs(30));
    export.wait_ready(Duration::from_secs(30));
    // The vendor contract is served by both roles a vendor may reach.
    crate::contract::assert_serves_the_contract(&ingest.base);
    crate::contract::assert_serves_the_contract(&export.base);

    let personal = r#"{"event_id":"p-9","source":"office","type":"paper.purchased","occurred_at":"2026-05-01T10:00:00+09:00","data":{"size":"A4","sheets":1,"memo":"1234-5678-9018"}}"#;
    let reply = ingest.post(
        OFFICE_TOKEN,
        &[
            paper("p-1", "A4", 1000, "2026-05-01T10:00:00+09:00"),
            paper("p-2", "A4", 500, "2026-06-01T10:00:00+09:00"),
            paper("p-3", "A3", 300, "2026-06-01T10:00:00+09:00"),
            paper("p-4", "A4", 200, "2026-07-01T10:00:00+09:00"),
            void("v-4", "p-4", "2026-07-02T10:00:00+09:00"),
            // Late: it occurred in FY2025.
            paper("p-2025", "A4", 7000, "2026-03-15T10:00:00+09:00"),
            // A duplicate, and a conflicting re-use of an id: the edge cannot tell yet.
            paper("p-1", "A4", 1000, "2026-05-01T10:00:00+09:00"),
            paper("p-2", "A4", 999, "2026-06-01T10:00:00+09:00"),
            // Refused at the edge.
            "this is not json".to_owned(),
            paper("p-5", "A5", 1, "2026-06-01T10:00:00+09:00"),
            personal.to_owned(),
        ],
    );
    assert_eq!(reply["accepted"], 8, "{reply}");
    assert_eq!(reply["duplicates"], 0, "{reply}");
    let reasons: Vec<&str> = reply["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["not_json", "unknown_value", "personal_number"],
        "{reply}"
    );
    assert!(!reply.to_string().contains("5678"));
    let reply = ingest.post(
        KONBINI,
        &[
            cert("k-1", "konbini", 3, "2026-05-01T10:00:00+09:00"),
            cert("c-1", "counter", 1, "2026-05-01T10:00:00+09:00"),
        ],
    );
    assert_eq!(reply["accepted"], 2, "{reply}");

    // Poison produced straight to the source topic: the aggregator must step over it.
    let producer: FutureProducer = mieruka_ingest::kafka::producer_config(&s.broker.brokers)
        .create()
        .unwrap();
    rt().block_on(async {
        for (key, payload) in [
            ("office/x-1", &b"{\"broken\": "[..]),
            (
                "office/x-2",
                &br#"{"event_id":"x-2","source":"office","type":"paper.purchased","occurred_at":"2026-05-01T10:00:00+09:00","data":{"size":"A4","sheets":0}}"#[..],
            ),
            // Not UTF-8 (a Shift_JIS line): the dead letter keeps its bytes as they were.
            ("office/x-3", SHIFT_JIS_LINE),
        ] {
            producer
                .send(
                    FutureRecord::to(&s.topic).key(key).payload(payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    });
    // A valid event after them still counts.
    let reply = ingest.post(
        OFFICE_TOKEN,
        &[paper("p-6", "A4", 25, "2026-08-01T10:00:00+09:00")],
    );
    assert_eq!(reply["accepted"], 1, "{reply}");

    let m = wait_for_metrics(
        &export,
        &[&ingest, &aggregate, &export],
        Duration::from_secs(60),
        "exact KPI values",
        |m| {
            kpi_fy(m, A4, "2026") == Some(1525.0)
                && kpi_fy(m, A4, "2025") == Some(7000.0)
                && m.kpi("value", "konbini_issuance_rate") == Some(75.0)
        },
        |m| {
            format!(
                "a4 FY2026 {:?}, FY2025 {:?}, konbini {:?}",
                kpi_fy(m, A4, "2026"),
                kpi_fy(m, A4, "2025"),
                m.kpi("value", "konbini_issuance_rate")
            )
        },
    );
    assert!(!m
        .0
        .keys()
        .any(|(n, l)| n.contains("5678") || l.contains("5678")));

    // The aggregator counted the outcomes it decided.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let am = aggregate.scrape().unwrap();
        let count = |outcome: &str, reason: &str| {
            am.get(
                "mieruka_events_total",
                &[
                    ("source", "office"),
                    ("outcome", outcome),
                    ("reason", reason),
                ],
            )
        };
        if count("accepted", "") == Some(7.0)
            && count("duplicate", "") == Some(1.0)
            && count("rejected", "conflicting_duplicate") == Some(1.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "aggregate's counts: accepted {:?}, duplicate {:?}, conflicting {:?}",
            count("accepted", ""),
            count("duplicate", ""),
            count("rejected", "conflicting_duplicate")
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // It reports its lag on every partition (from librdkafka's statistics, every 5 s):
    // nothing is left to read.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let am = aggregate.scrape().unwrap();
        let lags: Vec<Option<f64>> = (0..PARTITIONS)
            .map(|p| {
                am.get(
                    "mieruka_consumer_lag",
                    &[("topic", &s.topic), ("partition", &p.to_string())],
                )
            })
            .collect();
        if lags.iter().all(|l| *l == Some(0.0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "aggregate's consumer lag by partition: {lags:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The rejected table holds the Kafka-side refusals with their offsets.
    let rows = s
        .db
        .rows("SELECT reason, kafka_offset FROM rejected WHERE topic IS NOT NULL ORDER BY reason");
    let reasons: Vec<&str> = rows.iter().map(|(r, _)| r.as_deref().unwrap()).collect();
    assert_eq!(
        reasons,
        [
            "conflicting_duplicate",
            "not_json",
            "not_json",
            "out_of_bounds"
        ],
        "{rows:?}"
    );
    assert!(rows.iter().all(|(_, o)| o.is_some()), "{rows:?}");

    // The dead-letter topic: the three edge refusals (masked) and the four Kafka-side ones.
    let letters = read_topic(
        &s.broker.brokers,
        &s.dead_letter,
        7,
        Duration::from_secs(30),
    );
    let by_reason = |reason: &str| {
        letters
            .iter()
            .filter(|l| l.header("reason").as_deref() == Some(reason))
            .collect::<Vec<_>>()
    };
    let personal = by_reason("personal_number");
    assert_eq!(personal.len(), 1, "{letters:?}");
    assert!(
        personal[0].payload.contains("****-****-****"),
        "{letters:?}"
    );
    assert!(!personal[0].payload.contains("5678"), "{letters:?}");
    assert_eq!(personal[0].header("field").as_deref(), Some("data.memo"));
    assert_eq!(personal[0].header("position").as_deref(), Some("index 10"));
    let oob = by_reason("out_of_bounds");
    assert_eq!(oob.len(), 1, "{letters:?}");
    assert_eq!(oob[0].header("topic").as_deref(), Some(s.topic.as_str()));
    assert!(oob[0].header("partition").is_some() && oob[0].header("offset").is_some());
    assert!(oob[0].payload.contains("\"sheets\":0"), "{letters:?}");
    assert_eq!(oob[0].header("payload").as_deref(), Some("original"));
    let not_json = by_reason("not_json");
    assert_eq!(not_json.len(), 3, "edge and Kafka: {letters:?}");
    assert!(not_json.iter().any(|l| l.payload == "{\"broken\": "));
    assert!(
        not_json.iter().any(|l| l.bytes == SHIFT_JIS_LINE),
        "the Shift_JIS line's original bytes: {letters:?}"
    );
    // Refused at commit time: the message as it was in the source topic.
    let conflicting = by_reason("conflicting_duplicate");
    assert_eq!(conflicting.len(), 1, "{letters:?}");
    assert_eq!(
        conflicting[0].header("payload").as_deref(),
        Some("original")
    );
    assert!(
        conflicting[0].payload.contains("\"sheets\":999"),
        "{letters:?}"
    );

    // The source topic declares nothing it may carry: said at start.
    aggregate.assert_logged(
        "The topic declares no sources or types it may carry",
        "the aggregator warns of a topic that carries anything",
    );

    export.stop();
    aggregate.stop();
    ingest.stop();
    eprintln!("flow test took {:.1?}", started.elapsed());
}

/// A valid personal number (the check digit of 12345678901 is 8), for tests only.
const PERSONAL: &str = "123456789018";

#[test]
fn a_topic_carries_only_the_sources_and_types_it_may_and_every_role_dead_letters_alike() {
    class("kafka-topic-not-allowed");
    class("kafka-key-personal-number");
    let started = Instant::now();
    let s = Setup::with_kafka(
        r#"
[kafka.topic_allow."{topic}"]
sources = ["office", "konbini"]
types = ["paper.purchased", "event.voided"]
"#,
    );
    let ingest = s.start("ingest", "ingest");
    let aggregate = s.start("aggregate", "aggregate");
    let export = s.start("export", "export");
    ingest.wait_ready(Duration::from_secs(30));
    export.wait_ready(Duration::from_secs(30));

    // Through the ingest role: one event its topic carries, one refused at the edge.
    let reply = ingest.post(
        OFFICE_TOKEN,
        &[
            paper("a-1", "A4", 100, "2026-05-01T10:00:00+09:00"),
            paper("a-bad", "A5", 1, "2026-05-01T10:00:00+09:00"),
        ],
    );
    assert_eq!(reply["accepted"], 1, "{reply}");
    // Straight to the source topic, as a line system that speaks Kafka.
    let personal_id = format!(
        r#"{{"event_id":"{PERSONAL}","source":"office","type":"paper.purchased","occurred_at":"2026-05-01T10:00:00+09:00","data":{{"size":"A4","sheets":1}}}}"#
    );
    let card = r#"{"event_id":"c-9","source":"card","type":"mynumber_card.issued","occurred_at":"2026-05-01T10:00:00+09:00","data":{"count":5}}"#;
    let carried = paper("d-1", "A4", 40, "2026-06-01T10:00:00+09:00");
    let wrong_type = cert("k-77", "konbini", 1, "2026-05-01T10:00:00+09:00");
    let konbini_key = format!("konbini/{PERSONAL}");
    let office_key = format!("office/{PERSONAL}");
    let producer: FutureProducer = mieruka_ingest::kafka::producer_config(&s.broker.brokers)
        .create()
        .unwrap();
    rt().block_on(async {
        for (key, payload) in [
            ("card/c-9", card),
            // A key that holds a personal number, on an event the topic may not carry.
            (konbini_key.as_str(), wrong_type.as_str()),
            (office_key.as_str(), personal_id.as_str()),
            ("office/d-1", carried.as_str()),
        ] {
            producer
                .send(
                    FutureRecord::to(&s.topic).key(key).payload(payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    });

    // What the topic carries counts; nothing else does.
    wait_for_metrics(
        &export,
        &[&ingest, &aggregate, &export],
        Duration::from_secs(60),
        "A4 from the carried events only",
        |m| kpi_fy(m, A4, "2026") == Some(140.0),
        |m| format!("a4 FY2026 {:?}", kpi_fy(m, A4, "2026")),
    );
    aggregate.assert_logged("Consuming.", "the aggregator started");
    let log = std::fs::read_to_string(&aggregate.log).unwrap();
    assert!(
        !log.contains("declares no sources"),
        "the topic declares what it carries:\n{log}"
    );

    // The refusals are in PostgreSQL's rejected table, with their offsets (committed
    // with their partitions' batches, which may come after the one that counted).
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = s.db.rows(
            "SELECT concat_ws(' | ', reason, field, source, event_id, message), kafka_offset \
             FROM rejected WHERE topic IS NOT NULL ORDER BY reason, field",
        );
        if rows.len() >= 3 || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_deref().unwrap()).collect();
    let topic = &s.topic;
    assert_eq!(
        texts,
        [
            format!("not_allowed | source | unknown | c-9 | topic \"{topic}\" may not carry source \"card\" (it carries konbini, office)"),
            format!("not_allowed | type | konbini | k-77 | topic \"{topic}\" may not carry events of type certificate.issued (it carries event.voided, paper.purchased)"),
            "personal_number | event_id | unknown | holds what looks like a personal number (マイナンバー: 12 digits with a valid check digit); the value is not shown or stored".to_owned(),
        ],
        "{rows:?}"
    );
    assert!(rows.iter().all(|(_, o)| o.is_some()), "{rows:?}");

    // The dead-letter topic: the edge refusal and the three read from the topic.
    let letters = read_topic(
        &s.broker.brokers,
        &s.dead_letter,
        4,
        Duration::from_secs(30),
    );
    let everything = format!("{letters:?}");
    assert!(!everything.contains(PERSONAL), "{everything}");
    let by = |reason: &str, field: &str| {
        let found: Vec<&Letter> = letters
            .iter()
            .filter(|l| {
                l.header("reason").as_deref() == Some(reason)
                    && l.header("field").as_deref() == Some(field)
            })
            .collect();
        assert_eq!(found.len(), 1, "{reason} at {field}: {letters:?}");
        found[0]
    };
    let source = by("not_allowed", "source");
    let headers: Vec<(&str, &str)> = source
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let offset = source.header("offset").unwrap();
    let partition = source.header("partition").unwrap();
    let position = format!("{topic}/{partition}@{offset}");
    let message =
        format!("topic \"{topic}\" may not carry source \"card\" (it carries konbini, office)");
    assert_eq!(
        headers,
        [
            ("reason", "not_allowed"),
            ("field", "source"),
            ("message", message.as_str()),
            ("event_id", "c-9"),
            ("source", "unknown"),
            ("position", position.as_str()),
            ("payload", "original"),
            ("topic", topic.as_str()),
            ("partition", partition.as_str()),
            ("offset", offset.as_str()),
        ]
    );
    assert_eq!(source.key.as_deref(), Some("card/c-9"));
    assert_eq!(source.payload, card);
    // The key held a personal number: masked.
    let wrong = by("not_allowed", "type");
    assert_eq!(wrong.key.as_deref(), Some("konbini/************"));
    assert_eq!(wrong.header("source").as_deref(), Some("konbini"));
    assert_eq!(wrong.payload, wrong_type);
    let personal = by("personal_number", "event_id");
    assert_eq!(personal.key.as_deref(), Some("office/************"));
    assert_eq!(personal.header("event_id"), None);
    assert_eq!(personal.header("payload").as_deref(), Some("masked"));
    // The ingest role's letter: the same headers, but where it was received; keyed as
    // source topics are.
    let edge = by("unknown_value", "data.size");
    let mut names = edge.names();
    names.extend(["topic", "partition", "offset"]);
    assert_eq!(names, source.names(), "{letters:?}");
    assert_eq!(edge.header("position").as_deref(), Some("index 1"));
    assert_eq!(edge.header("source").as_deref(), Some("office"));
    assert_eq!(edge.header("event_id").as_deref(), Some("a-bad"));
    assert_eq!(edge.header("payload").as_deref(), Some("original"));
    assert_eq!(edge.key.as_deref(), Some("office/a-bad"));
    assert!(edge.payload.contains("\"A5\""), "{letters:?}");

    export.stop();
    aggregate.stop();
    ingest.stop();
    eprintln!("topic allow test took {:.1?}", started.elapsed());
}

/// Issue 19: the refusals of both production roles are in PostgreSQL's one `rejected`
/// table, where `mieruka rejected` filters and sums them up; the ingest role counts and
/// logs the requests it refuses whole.
#[test]
fn every_refusal_of_the_production_roles_is_in_postgres_and_refused_requests_are_counted() {
    let s = Setup::new();
    // An NDJSON inbox of the office line system, watched by the ingest role.
    let inbox = s.config.with_file_name("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let config = std::fs::read_to_string(&s.config).unwrap();
    let watch = format!(
        "\n[[inbox]]\ndir = '{}'\nname = \"office\"\nsources = [\"office\"]\n\
         settle_seconds = 0\npoll_millis = 50\n",
        inbox.display()
    );
    std::fs::write(&s.config, config + &watch).unwrap();
    let ingest = s.start("ingest", "ingest");
    let aggregate = s.start("aggregate", "aggregate");
    ingest.wait_ready(Duration::from_secs(30));
    let at = "2026-05-01T10:00:00+09:00";
    let personal = format!(
        r#"{{"event_id":"a-pn","source":"office","type":"paper.purchased","occurred_at":"{at}","data":{{"size":"A4","sheets":{PERSONAL}}}}}"#
    );
    // Refused at the edge by the ingest role, and refused on reading by an aggregator.
    let reply = ingest.post(
        OFFICE_TOKEN,
        &[
            paper("a-1", "A4", 1, at),
            paper("a-bad", "A5", 1, at),
            personal,
        ],
    );
    assert_eq!(reply["accepted"], 1, "{reply}");
    let producer: FutureProducer = mieruka_ingest::kafka::producer_config(&s.broker.brokers)
        .create()
        .unwrap();
    rt().block_on(async {
        let record = FutureRecord::to(&s.topic)
            .key("office/x")
            .payload("not json");
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    });
    // A file dropped into the ingest role's inbox, with a line it refuses.
    let part = inbox.join(".drop.ndjson.part");
    std::fs::write(&part, format!("{}\nnot json\n", paper("f-1", "A4", 1, at))).unwrap();
    std::fs::rename(&part, inbox.join("drop.ndjson")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let kept = loop {
        let kept = s.db.rows(
            "SELECT concat_ws(' | ', reason, source, position, event_id, topic), count(*)::int8 \
             FROM rejected GROUP BY 1 ORDER BY 1",
        );
        if kept.len() >= 4 || Instant::now() > deadline {
            break kept;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let kept: Vec<&str> = kept.iter().map(|(t, _)| t.as_deref().unwrap()).collect();
    let topic = &s.topic;
    let logs = format!("{}\n{}", tail(&ingest.log, 20), tail(&aggregate.log, 20));
    assert_eq!(kept.len(), 4, "{kept:?}\n{logs}");
    let from_topic = format!("not_json | unknown | {topic}/");
    assert!(kept.iter().any(|k| k.starts_with(&from_topic)), "{kept:?}");
    assert!(
        kept.iter()
            .any(|k| k.starts_with("not_json | ") && k.contains("drop.ndjson:2")),
        "the inbox's refusal: {kept:?}"
    );
    for edge in [
        "personal_number | office | index 2 | a-pn",
        "unknown_value | office | index 1 | a-bad",
    ] {
        assert!(kept.contains(&edge), "{edge:?} not in {kept:?}");
    }

    // `mieruka rejected` reads them from PostgreSQL, filtered and summed up.
    let listed = |args: &[&str]| {
        let out = Command::new(crate::helpers::bin())
            .arg("rejected")
            .args(args)
            .args(["--config"])
            .arg(&s.config)
            .args(["--database-url", &s.db.url])
            .env("MIERUKA_LOG", "warn")
            .env_remove("MIERUKA_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let all = listed(&[]);
    for needle in [
        "index 2 [personal_number] data.sheets",
        "event_id a-pn",
        "index 1 [unknown_value]",
        "[not_json]",
        "drop.ndjson:2 [not_json]",
        "4 rejected in all",
    ] {
        assert!(all.contains(needle), "{needle:?} not in:\n{all}");
    }
    assert!(!all.contains(PERSONAL), "{all}");
    let office = listed(&["--source", "office", "--since", "1h"]);
    assert!(
        office.contains("2 rejected in all") && !office.contains("not_json"),
        "{office}"
    );

    // Requests refused whole: counted by reason and token name, logged with the peer.
    let post = |token: &str, content_type: &str| {
        let r = ureq::post(&format!("{}/v1/events", ingest.base))
            .set("Content-Type", content_type)
            .set("Authorization", &format!("Bearer {token}"))
            .send_string(&paper("a-2", "A4", 1, at));
        match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(post("t-rotated", "application/x-ndjson"), 401);
    assert_eq!(post(OFFICE_TOKEN, "text/csv"), 415);
    let m = ingest.scrape().unwrap();
    assert_eq!(
        m.get(
            "mieruka_auth_failures_total",
            &[("token", "unknown"), ("reason", "unknown_token")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "mieruka_http_refused_total",
            &[("reason", "content_type"), ("token", "office")]
        ),
        Some(1.0)
    );
    ingest.assert_logged("Refused a request to /v1/events.", "the refusal is logged");
    let log = std::fs::read_to_string(&ingest.log).unwrap();
    assert!(!log.contains("t-rotated"), "never the presented secret");
    aggregate.stop();
    ingest.stop();
}

/// 「用紙」 in Shift_JIS, then a broken JSON: a line a legacy system might produce.
const SHIFT_JIS_LINE: &[u8] = b"\x97\x70\x8e\x86 {\"sheets\": ";

/// One message read back from a topic.
#[derive(Debug)]
pub(crate) struct Letter {
    key: Option<String>,
    payload: String,
    bytes: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Letter {
    pub(crate) fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// The header names, in order.
    fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Reads `want` messages from partition 0 of `topic`, from the beginning.
pub(crate) fn read_topic(brokers: &str, topic: &str, want: usize, within: Duration) -> Vec<Letter> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("broker.address.family", "v4")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or(&[])).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Letter {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: String::from_utf8_lossy(m.payload().unwrap_or(&[])).into_owned(),
                bytes: m.payload().unwrap_or(&[]).to_vec(),
                headers,
            });
        }
    }
    assert_eq!(out.len(), want, "messages on {topic}: {out:?}");
    out
}

/// The aggregators' `session.timeout.ms` (see `mieruka_aggregator::consumer`), plus a margin.
///
/// tansu 0.6 keeps a member killed with -9 in the group, and a member that joins within
/// the dead one's session timeout is given nothing (the dead one keeps its partitions);
/// one that joins after it takes them over at once. So a replacement is started after
/// this much time: the length of the fault, not a synchronisation.
const SESSION_EXPIRY: Duration = Duration::from_secs(11);

/// Waits until the aggregators have committed at least `offsets` (the sum of the stored
/// next offsets), or fails with their logs.
fn wait_committed(s: &Setup, offsets: i64, within: Duration, logs: &[&Role]) {
    let deadline = Instant::now() + within;
    while s.db.committed_offsets() < offsets {
        let logs: String = logs
            .iter()
            .map(|r| format!("--- {} ---\n{}\n", r.name, tail(&r.log, 25)))
            .collect();
        assert!(
            Instant::now() < deadline,
            "{offsets} offsets not committed within {within:?}:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Posts `chunks` to ingest; after each chunk listed in `kill_after`, waits until the
/// aggregators make progress, kills one of them with -9 at a random instant, and starts
/// a replacement once the dead member's session has expired.
fn run_with_kills(
    s: &Setup,
    ingest: &Role,
    aggregators: &mut Vec<Role>,
    chunks: &[Vec<String>],
    kill_after: &[usize],
    next_name: &mut usize,
) {
    for (c, lines) in chunks.iter().enumerate() {
        let before = s.db.committed_offsets();
        if !kill_after.contains(&c) {
            let reply = ingest.post(OFFICE_TOKEN, lines);
            assert!(reply["rejected"].as_array().unwrap().is_empty(), "{reply}");
        } else {
            // Posted in small requests from another thread, so the kill lands while
            // events are still arriving and batches are being committed.
            let base = ingest.base.clone();
            let parts: Vec<Vec<String>> = lines.chunks(50).map(<[String]>::to_vec).collect();
            let poster = std::thread::spawn(move || {
                for part in parts {
                    let resp = ureq::post(&format!("{base}/v1/events"))
                        .set("Content-Type", "application/x-ndjson")
                        .set("Authorization", &format!("Bearer {OFFICE_TOKEN}"))
                        .send_string(&part.join("\n"));
                    assert_eq!(resp.map(|r| r.status()).ok(), Some(200));
                }
            });
            // Mid-stream: something committed since this chunk was posted.
            let logs: Vec<&Role> = aggregators.iter().collect();
            wait_committed(s, before + 1, Duration::from_secs(45), &logs);
            let jitter = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                % 50;
            std::thread::sleep(Duration::from_millis(u64::from(jitter)));
            let victim = (c + jitter as usize) % aggregators.len();
            let mut dead = aggregators.remove(victim);
            dead.kill9();
            eprintln!(
                "killed {} after chunk {c} (+{jitter} ms; {} of the stored offsets' sum committed)",
                dead.name,
                s.db.committed_offsets()
            );
            poster.join().unwrap();
            std::thread::sleep(SESSION_EXPIRY);
            *next_name += 1;
            let fresh = s.start("aggregate", &format!("aggregate-{next_name}"));
            aggregators.push(fresh);
        }
    }
}

fn wait_exact_a4(export: &Role, logs: &[&Role], total: u64) {
    wait_for_metrics(
        export,
        logs,
        Duration::from_secs(90),
        &format!("FY2026 A4 sheets = {total}"),
        |m| kpi_fy(m, A4, "2026") == Some(total as f64),
        |m| format!("{:?}", kpi_fy(m, A4, "2026")),
    );
}

#[test]
fn a_killed_aggregator_restarted_several_times_counts_exactly_once() {
    let started = Instant::now();
    let s = Setup::new();
    let ingest = s.start("ingest", "ingest");
    let export = s.start("export", "export");
    ingest.wait_ready(Duration::from_secs(30));
    let (chunks, total) = stream(12, 1000);
    let mut aggregators = vec![s.start("aggregate", "aggregate-0")];
    let mut next = 0;
    run_with_kills(
        &s,
        &ingest,
        &mut aggregators,
        &chunks,
        &[2, 5, 8],
        &mut next,
    );
    let logs: Vec<&Role> = aggregators.iter().chain([&ingest, &export]).collect();
    wait_exact_a4(&export, &logs, total);
    for a in aggregators {
        a.stop();
    }
    eprintln!("kill test took {:.1?}", started.elapsed());
}

#[test]
fn two_aggregators_in_one_group_with_one_killed_count_exactly_once() {
    let started = Instant::now();
    let s = Setup::new();
    let ingest = s.start("ingest", "ingest");
    let export = s.start("export", "export");
    ingest.wait_ready(Duration::from_secs(30));
    let (chunks, total) = stream(10, 1000);
    let mut aggregators = vec![
        s.start("aggregate", "aggregate-a"),
        s.start("aggregate", "aggregate-b"),
    ];
    let mut next = 0;
    run_with_kills(&s, &ingest, &mut aggregators, &chunks, &[4], &mut next);
    assert_eq!(aggregators.len(), 2);
    let logs: Vec<&Role> = aggregators.iter().chain([&ingest, &export]).collect();
    wait_exact_a4(&export, &logs, total);

    // Both survivors took part (each owns some partitions) and leave cleanly.
    for a in aggregators {
        a.stop();
    }
    eprintln!("two-aggregator test took {:.1?}", started.elapsed());
}

#[test]
fn postgres_unavailable_then_back_loses_nothing() {
    let started = Instant::now();
    // Small batches: the outage outlasts the few batches the aggregator reads ahead, so
    // it pauses its partitions, and on recovery resumes and seeks back to what it has
    // not read.
    let s = Setup::with_kafka("max_batch = 250");
    let ingest = s.start("ingest", "ingest");
    let export = s.start("export", "export");
    let aggregate = s.start("aggregate", "aggregate");
    ingest.wait_ready(Duration::from_secs(30));
    let (chunks, total) = stream(6, 1000);
    ingest.post(OFFICE_TOKEN, &chunks[0]);
    // The first chunk lands before the outage.
    wait_committed(&s, 1000, Duration::from_secs(60), &[&aggregate]);
    s.db.cut_off();
    for lines in &chunks[1..] {
        ingest.post(OFFICE_TOKEN, lines);
    }
    // The aggregator notices (its commits fail) and keeps retrying.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&aggregate.log)
        .unwrap_or_default()
        .contains("Cannot commit the batch")
    {
        assert!(
            Instant::now() < deadline,
            "the aggregator never saw the outage:\n{}",
            tail(&aggregate.log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The outage lasts a while (a fault's length, not a synchronisation).
    std::thread::sleep(Duration::from_secs(3));
    s.db.restore();
    let logs = [&aggregate, &ingest, &export];
    let reached = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_exact_a4(&export, &logs, total)
    }));
    if reached.is_err() {
        let positions = s
            .db
            .rows("SELECT partition::text, next_offset FROM source_positions ORDER BY partition");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &s.broker.brokers)
            .create()
            .unwrap();
        let marks: Vec<_> = (0..PARTITIONS)
            .map(|p| consumer.fetch_watermarks(&s.topic, p, Duration::from_secs(5)))
            .collect();
        let logged = s.db.rows("SELECT 'n', count(*) FROM event_log");
        panic!("stored positions {positions:?}; broker watermarks {marks:?}; logged {logged:?}");
    }
    aggregate.assert_logged(
        "partitions resumed",
        "the outage never paused the partitions",
    );
    aggregate.stop();
    eprintln!("outage test took {:.1?}", started.elapsed());
}

#[test]
fn a_stored_offset_inside_the_brokers_last_record_batch_is_read_on_from() {
    // Ten events in one record batch on partition 0, of which a previous owner counted
    // the first seven: the stored offset, 7, lies inside the partition's last record
    // batch. tansu 0.6 answers a fetch from there with nothing (it serves the batch after
    // the one holding the offset); the aggregator must still read offsets 7 to 9.
    let s = Setup::new();
    let lines: Vec<String> = (0..10u64)
        .map(|i| {
            paper(
                &format!("t-{i:02}"),
                "A4",
                1 + i,
                "2026-05-01T10:00:00+09:00",
            )
        })
        .collect();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.broker.brokers)
        .set("broker.address.family", "v4")
        .set("linger.ms", "200")
        .create()
        .unwrap();
    rt().block_on(async {
        let sends: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let key = format!("office/t-{i:02}");
                let record = FutureRecord::to(&s.topic)
                    .partition(0)
                    .key(&key)
                    .payload(l.as_str());
                producer.send_result(record).map_err(|(e, _)| e).unwrap()
            })
            .collect();
        for f in sends {
            let d = f.await.unwrap().map_err(|(e, _)| e).unwrap();
            assert_eq!((d.partition, d.offset < 10), (0, true), "{d:?}");
        }
    });
    // What the broker does with a fetch from offset 7 (tansu 0.6: nothing; Apache Kafka:
    // the batch, from which the client drops offsets 0 to 6). Either way the total below
    // must come out; on tansu the aggregator's probe is what gets it there.
    let plain: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.broker.brokers)
        .set("broker.address.family", "v4")
        .set("group.id", unique("plain"))
        .create()
        .unwrap();
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(&s.topic, 0, Offset::Offset(7))
        .unwrap();
    plain.assign(&at).unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    let mut first = None;
    while first.is_none() && Instant::now() < until {
        if let Some(Ok(m)) = plain.poll(Duration::from_millis(100)) {
            first = Some(m.offset());
        }
    }
    drop(plain);
    eprintln!("a plain consumer assigned at offset 7 read first: {first:?}");
    let export = s.start("export", "export");
    s.db.exec_when_ready(&format!(
        "INSERT INTO source_positions (topic, partition, next_offset) VALUES ('{}', 0, 7)",
        s.topic
    ));
    let aggregate = s.start("aggregate", "aggregate");
    wait_exact_a4(&export, &[&aggregate, &export], 8 + 9 + 10);
    aggregate.stop();
}

// ---------------------------------------------------------------------------------------
// Faults on librdkafka's mock cluster

#[test]
fn every_broker_down_mid_run_then_back_loses_nothing() {
    let started = Instant::now();
    let s = Setup::mocked(3);
    let mock = s.broker.mock.as_ref().unwrap();
    let ingest = s.start("ingest", "ingest");
    let export = s.start("export", "export");
    let aggregate = s.start("aggregate", "aggregate");
    ingest.wait_ready(Duration::from_secs(30));
    let (chunks, total) = stream(6, 1000);
    ingest.post(OFFICE_TOKEN, &chunks[0]);
    wait_committed(&s, 1000, Duration::from_secs(60), &[&aggregate]);
    // Three chunks on the topic, then the whole cluster goes away while the aggregator
    // is fetching and committing them.
    for lines in &chunks[1..4] {
        ingest.post(OFFICE_TOKEN, lines);
    }
    for b in 1..=3 {
        mock.broker_down(b).unwrap();
    }
    // The fault's length: the aggregator's fetches and the group's heartbeats fail.
    std::thread::sleep(Duration::from_secs(5));
    for b in 1..=3 {
        mock.broker_up(b).unwrap();
    }
    for lines in &chunks[4..] {
        ingest.post(OFFICE_TOKEN, lines);
    }
    wait_exact_a4(&export, &[&aggregate, &ingest, &export], total);
    // The aggregator did see the fault (and came through it): its connections failed
    // (all at once, or one of them only by timing out, as the mock cluster may leave one
    // connection open and silent). librdkafka reports whichever it notices first: a
    // transport failure of the fetch, all brokers down, or only the group coordinator's
    // connection closing or being refused (a loaded machine has shown each of these).
    aggregate.assert_logged_any(
        &[
            "BrokerTransportFailure",
            "AllBrokersDown",
            "Disconnected",
            "Connection refused",
        ],
        "the aggregator never saw the brokers down",
    );
    aggregate.stop();
    eprintln!("broker-down test took {:.1?}", started.elapsed());
}

#[test]
fn a_survivor_takes_over_a_killed_members_partitions_after_its_session_times_out() {
    let started = Instant::now();
    let s = Setup::mocked(1);
    let ingest = s.start("ingest", "ingest");
    let export = s.start("export", "export");
    ingest.wait_ready(Duration::from_secs(30));
    let (chunks, total) = stream(6, 1000);
    let survivor = s.start("aggregate", "survivor");
    let mut victim = s.start("aggregate", "victim");
    // Both members hold partitions once the victim has joined and committed some.
    ingest.post(OFFICE_TOKEN, &chunks[0]);
    let owns = |r: &Role| {
        std::fs::read_to_string(&r.log)
            .unwrap_or_default()
            .lines()
            .rfind(|l| l.contains("Partitions assigned"))
            .is_some_and(|l| l.contains(&s.topic))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(owns(&victim) && owns(&survivor) && s.db.committed_offsets() >= 1000) {
        assert!(
            Instant::now() < deadline,
            "the two members did not share the partitions:\n--- victim ---\n{}\n--- survivor ---\n{}",
            tail(&victim.log, 20),
            tail(&survivor.log, 20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ingest.post(OFFICE_TOKEN, &chunks[1]);
    let assignments = |r: &Role| {
        std::fs::read_to_string(&r.log)
            .unwrap_or_default()
            .matches("Partitions assigned")
            .count()
    };
    let before = assignments(&survivor);
    victim.kill9();
    // No replacement: the survivor alone must take over once the session expires.
    for lines in &chunks[2..] {
        ingest.post(OFFICE_TOKEN, lines);
    }
    wait_exact_a4(&export, &[&survivor, &ingest, &export], total);
    assert!(
        assignments(&survivor) > before,
        "the survivor was never re-assigned the victim's partitions:\n{}",
        tail(&survivor.log, 30)
    );
    survivor.stop();
    eprintln!("session-timeout test took {:.1?}", started.elapsed());
}
