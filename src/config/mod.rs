//! The config file (TOML) of every role, with defaults a newcomer never has to write,
//! and [`resolve`]: the one place where flag > environment > config file > default is
//! worked out, giving each role and command its [`Resolved`] settings.

mod resolve;
mod sources;

pub use resolve::{
    load_plan, load_plan_at, resolve, Flags, InboxSettings, KafkaSettings, Resolved, RoleKind,
};
pub use sources::{CalendarConfig, SourceConfig};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mieruka_aggregator::topic_allow::TopicAllow;
use mieruka_ingest::http::{KeyRing, Token};
use mieruka_ingest::import::CsvMapping;
use mieruka_ingest::Timestamp;
use serde::Deserialize;

/// Default address of the standalone HTTP server (events, metrics, status page), of
/// `demo` and of `export`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Default address of the `ingest` role.
pub const DEFAULT_INGEST_LISTEN: &str = "127.0.0.1:8080";

/// Default address of the `aggregate` role's health endpoints.
pub const DEFAULT_AGGREGATE_LISTEN: &str = "127.0.0.1:9465";

/// The source topic when the config names none.
pub const DEFAULT_TOPIC: &str = "mieruka.events";

/// The consumer group when the config names none.
pub const DEFAULT_GROUP_ID: &str = "mieruka-aggregators";

/// Default SQLite file of `standalone`, `import` and `rejected`.
pub const DEFAULT_DB: &str = "data/mieruka.db";

/// Default SQLite file of `demo` (recreated on each run).
pub const DEFAULT_DEMO_DB: &str = "data/demo.db";

/// Default request body limit: 16 MiB is ~60,000 events of 250 bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Default snapshot refresh interval while no batch arrives (pace moves with time).
pub const DEFAULT_REFRESH_SECONDS: u64 = 60;

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: Option<String>,
    /// SQLite database file (standalone, import).
    pub db: Option<PathBuf>,
    /// Plan file (default: the shipped Ome plan).
    pub plan: Option<PathBuf>,
    /// Seconds between snapshot refreshes while idle.
    pub refresh_seconds: Option<u64>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Most events in one request (413 past it; default 100,000).
    pub max_events_per_request: Option<usize>,
    /// Longest a request body may take to arrive, in seconds (408 past it; default 120).
    pub body_timeout_seconds: Option<u64>,
    /// A connection that sends nothing for this many seconds is dropped (default 30).
    pub idle_timeout_seconds: Option<u64>,
    /// How far past now an event's `occurred_at` may lie (a Prometheus-style duration,
    /// default `1d`): later is `out_of_bounds`.
    pub max_future_skew: Option<String>,
    /// The earliest `occurred_at` taken (`2020-04-01`, in Asia/Tokyo, or an RFC 3339
    /// instant); default: the start of the fiscal year five years before the plan's
    /// baseline year. Earlier is `out_of_bounds`.
    pub horizon_start: Option<String>,
    /// Bearer tokens, one per line system (two during a rollover).
    #[serde(default)]
    pub tokens: Vec<Token>,
    /// How often a receiving role looks at the config file for changed `[[tokens]]`, in
    /// seconds (default 2; 0: only on SIGHUP).
    pub tokens_reload_seconds: Option<u64>,
    /// CSV column mappings by name (`mieruka import --mapping NAME`).
    #[serde(default)]
    pub csv_mappings: BTreeMap<String, CsvMapping>,
    /// The Kafka side of the production roles.
    pub kafka: Option<KafkaConfig>,
    /// The PostgreSQL store of the production roles.
    pub store: Option<StoreConfig>,
    /// Options of `mieruka rules`.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Folders a line system drops files into (`standalone` and `ingest` import them).
    #[serde(default)]
    pub inbox: Vec<InboxConfig>,
    /// Office calendars by name: the days a line system works (docs/calendar.md).
    #[serde(default)]
    pub calendars: BTreeMap<String, CalendarConfig>,
    /// Per-source settings by source name: display name, cadence, calendar.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// HTTPS on the listener of `standalone` and `ingest` (none: plain HTTP).
    pub tls: Option<TlsConfig>,
}

/// `[tls]`: the certificate and key the HTTP listener serves HTTPS with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM file of its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[[inbox]]`: one folder a line system drops its files into.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// The folder watched (it must exist; `processing/`, `done/` and `failed/` are made
    /// inside it).
    pub dir: PathBuf,
    /// The `[csv_mappings.NAME]` of its CSV files (NDJSON files need none).
    pub mapping: Option<String>,
    /// The label of its metrics and logs (default: the folder's last component).
    pub name: Option<String>,
    /// The `source` values its events may have (empty: any); others are `not_allowed`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// The event types its events may have (empty: every type of the plan).
    #[serde(default)]
    pub types: Vec<String>,
    /// Which file names are taken (`*` and `?` wildcards; default: every file).
    pub pattern: Option<String>,
    /// The files' encoding (default: detected, UTF-8 else Shift_JIS).
    pub encoding: Option<mieruka_ingest::import::Encoding>,
    /// How long a file's size and mtime must stay unchanged before it is taken
    /// (default 10).
    pub settle_seconds: Option<u64>,
    /// How often the folder is looked at, in milliseconds (default 1000; tests use less).
    pub poll_millis: Option<u64>,
}

/// `[rules]`: how `mieruka rules` judges feeds (the KPI alerts come from the plan).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The runbook's URL without the anchor.
    pub runbook_base: Option<String>,
    /// How long a source may be silent unless listed in `cadence` or given a cadence in
    /// `[sources.NAME]` (e.g. "2d").
    pub default_cadence: Option<String>,
    /// Per source, how long it may be silent (e.g. `juki = "35d"`): the short form of a
    /// `[sources.NAME]` cadence, counting calendar time.
    #[serde(default)]
    pub cadence: BTreeMap<String, String>,
    /// Rejected events of one source per hour past which an alert fires.
    pub rejected_per_hour: Option<f64>,
    /// Consumer lag (messages) past which an alert fires.
    pub consumer_lag_max: Option<u64>,
}

impl RulesConfig {
    /// The generator's options: the defaults, overridden by what the config sets.
    pub fn options(&self) -> mieruka_exporter::rules::RulesOptions {
        let mut o = mieruka_exporter::rules::RulesOptions::default();
        if let Some(v) = &self.runbook_base {
            o.runbook_base = v.clone();
        }
        if let Some(v) = &self.default_cadence {
            o.default_cadence = v.clone();
        }
        o.source_cadence.extend(self.cadence.clone());
        if let Some(v) = self.rejected_per_hour {
            o.rejected_per_hour = v;
        }
        if let Some(v) = self.consumer_lag_max {
            o.consumer_lag_max = v;
        }
        o
    }
}

/// `[kafka]`: brokers and topics of the `ingest` and `aggregate` roles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated (`KAFKA_BROKERS` overrides).
    pub brokers: String,
    /// The topic `ingest` produces to (and `aggregate` consumes, with `topics`).
    pub topic: Option<String>,
    /// Further source topics `aggregate` consumes.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Where the roles send the events they reject (the format is
    /// `mieruka_ingest::kafka::dead_letter`'s).
    pub dead_letter_topic: Option<String>,
    /// The sources and event types each source topic may carry
    /// (`[kafka.topic_allow."<topic>"]`), as a token may send; read by `aggregate`, which
    /// refuses anything else as `not_allowed`. A topic without one carries everything
    /// (and `aggregate` warns at start).
    #[serde(default)]
    pub topic_allow: BTreeMap<String, TopicAllowConfig>,
    /// The consumer group of the aggregators.
    pub group_id: Option<String>,
    /// Most messages `aggregate` folds and commits in one transaction (default 5,000).
    pub max_batch: Option<usize>,
    /// Longest a batch of `aggregate` waits for more messages, in milliseconds (default 100).
    pub max_wait_ms: Option<u64>,
    /// Transactions `aggregate` commits a batch in at once, each holding whole
    /// partitions (default 2).
    pub parallel_commits: Option<usize>,
    /// librdkafka properties for every Kafka client of the roles (the ingest producer,
    /// the aggregator's consumer and dead-letter producer), applied after mieruka's own:
    /// `security.protocol`, `sasl.*`, `ssl.*`, `debug`, … Keys that the guarantees rest
    /// on (`enable.idempotence`, `acks`, `enable.auto.commit`, `group.id`,
    /// `bootstrap.servers`, …) are refused. Values may be strings, numbers or booleans.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, toml::Value>,
}

/// `[kafka.topic_allow."<topic>"]`: what one source topic may carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicAllowConfig {
    /// The `source` values its events may have (at least one).
    pub sources: Vec<String>,
    /// The event types it may carry (empty: every type of the plan).
    #[serde(default)]
    pub types: Vec<String>,
}

/// librdkafka properties that `[kafka.librdkafka]` may not override: the guarantees
/// (idempotent, fully acknowledged producing within the HTTP reply's delivery timeout;
/// offsets kept by PostgreSQL, read from the earliest when none is stored; every replica
/// one dynamic member of the group) rest on them, or another key of `[kafka]` sets them.
const RESERVED_LIBRDKAFKA: [&str; 13] = [
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "transactional.id",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "group.id",
    "group.instance.id",
    "bootstrap.servers",
    "metadata.broker.list",
];

impl KafkaConfig {
    /// The `[kafka.librdkafka]` properties, or an error naming one the guarantees rest on.
    pub fn librdkafka(&self) -> anyhow::Result<Vec<(String, String)>> {
        if let Some(k) = self
            .librdkafka
            .keys()
            .find(|k| RESERVED_LIBRDKAFKA.contains(&k.as_str()))
        {
            anyhow::bail!(
                "[kafka.librdkafka] may not set {k:?}: mieruka sets it (the guarantees rest on it, or [kafka] has a key for it)"
            );
        }
        self.librdkafka
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => anyhow::bail!(
                        "[kafka.librdkafka] {k:?} must be a string, a number or a boolean, not {}",
                        other.type_str()
                    ),
                };
                Ok((k.clone(), v))
            })
            .collect()
    }

    /// The compiled `[kafka.topic_allow]` lists, or an error naming the first list that
    /// is wrong: one of a topic not in `consumed` (a misspelt name would leave the real
    /// topic open while the config looks closed), with no sources, or with a type the
    /// plan does not declare.
    pub fn topic_allow(
        &self,
        schema: &mieruka_ingest::Schema,
        consumed: &[String],
    ) -> anyhow::Result<Vec<TopicAllow>> {
        self.topic_allow
            .iter()
            .map(|(topic, a)| {
                anyhow::ensure!(
                    consumed.contains(topic),
                    "[kafka.topic_allow] names topic {topic:?}, which this role does not consume (it consumes {})",
                    consumed.join(", ")
                );
                TopicAllow::new(schema, topic, &a.sources, &a.types)
                    .context("[kafka.topic_allow] is not valid")
            })
            .collect()
    }

    /// Every source topic: `topic` then `topics`, without repeats.
    pub fn source_topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .topic
            .iter()
            .cloned()
            .chain(self.topics.iter().cloned())
            .collect();
        v.dedup();
        v
    }
}

/// `[store]`: the PostgreSQL database of the production roles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// A `postgres://` URL (`DATABASE_URL` overrides).
    pub url: String,
}

impl Config {
    /// Reads a config file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Config::parse(&text, path)
    }

    /// Parses the text of the config file at `path` (named in the error).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
        toml::from_str(text).with_context(|| format!("config {} is not valid", path.display()))
    }

    /// The configured source labels (for metrics, and the sources whose silence is
    /// watched): every source of every token, of every topic's allow list, of every
    /// inbox, every source given a cadence in `[rules]`, and every `[sources.NAME]`.
    pub fn source_labels(&self) -> Vec<String> {
        let topics = self.kafka.iter().flat_map(|k| k.topic_allow.values());
        let mut v: Vec<String> = self
            .tokens
            .iter()
            .flat_map(|t| t.sources.clone())
            .chain(topics.flat_map(|a| a.sources.clone()))
            .chain(self.inbox.iter().flat_map(|i| i.sources.clone()))
            .chain(self.rules.cadence.keys().cloned())
            .chain(self.sources.keys().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The tokens by the digest of their key (the variables `token_env` names are read
    /// now), or why one cannot be used.
    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        KeyRing::new(&self.tokens).context("a [[tokens]] entry cannot be used")
    }

    /// Warns about each token whose secret itself is in the config or the environment
    /// (`token`, `token_env`): they still work, but `token_sha256` keeps the secret out
    /// of the file, its backups and the process's environment.
    pub fn warn_secrets_in_clear(&self) {
        for t in self.tokens.iter().filter(|t| t.holds_secret()) {
            tracing::warn!(token = %t.name, "A token's secret is in the config (token or token_env), which is deprecated: put its SHA-256 in token_sha256 instead (`mieruka token new`, or see the runbook's token rotation).");
        }
    }
}

impl Config {
    /// The bounds of a request to `POST /v1/events`.
    pub fn http_limits(&self) -> mieruka_ingest::http::Limits {
        let d = mieruka_ingest::http::Limits::default();
        mieruka_ingest::http::Limits {
            max_body_bytes: self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_events: self.max_events_per_request.unwrap_or(d.max_events).max(1),
            body_timeout: self
                .body_timeout_seconds
                .map_or(d.body_timeout, |s| std::time::Duration::from_secs(s.max(1))),
        }
    }

    /// How long a connection may send nothing before it is dropped.
    pub fn idle_timeout(&self) -> std::time::Duration {
        self.idle_timeout_seconds
            .map_or(mieruka_ingest::http::DEFAULT_IDLE_TIMEOUT, |s| {
                std::time::Duration::from_secs(s.max(1))
            })
    }

    /// The window of `occurred_at` events are taken in: the plan's, with the config's
    /// `max_future_skew` and `horizon_start`, and `now` when pinned.
    pub fn time_window(
        &self,
        plan: &mieruka_ingest::TimeWindow,
        now: Option<Timestamp>,
    ) -> anyhow::Result<mieruka_ingest::TimeWindow> {
        let mut w = *plan;
        w.now = now;
        if let Some(skew) = &self.max_future_skew {
            let secs = mieruka_exporter::rules::parse_duration(skew.trim())
                .map_err(|e| anyhow::anyhow!("max_future_skew {skew:?}: {e}"))?;
            w.max_future_skew_micros = i64::try_from(secs)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000))
                .context("max_future_skew is too large")?;
        }
        if let Some(start) = &self.horizon_start {
            w.earliest = parse_instant(start)
                .with_context(|| format!("horizon_start {start:?}: expected a date like 2020-04-01 or an RFC 3339 instant"))?;
        }
        Ok(w)
    }
}

/// A date (`2020-04-01`, the start of that day in Asia/Tokyo) or an RFC 3339 instant.
fn parse_instant(s: &str) -> anyhow::Result<Timestamp> {
    let s = s.trim();
    if s.len() == 10 {
        let t = Timestamp::parse_rfc3339(&format!("{s}T00:00:00+09:00"))?;
        return Ok(t);
    }
    Ok(Timestamp::parse_rfc3339(s)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ```toml example of the README is a config this version reads. An empty
    /// `[csv_mappings.konbini]` there stands for the mapping of the fixture it names.
    #[test]
    fn every_config_example_of_the_readme_parses() {
        let readme = include_str!("../../README.md");
        let mapping = include_str!("../../ingest/tests/fixtures/konbini.mapping.toml");
        let blocks: Vec<String> = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap_or("").to_owned())
            .collect();
        assert!(blocks.len() >= 3, "{} blocks", blocks.len());
        for block in blocks {
            let mut text = block.replace("[csv_mappings.konbini]", "[csv_mappings.readme_stub]");
            if text.contains("mapping = \"konbini\"") {
                text = text.replace("[csv_mappings.readme_stub]", "");
                text.push_str(mapping);
            }
            let text = text.replace("[csv_mappings.readme_stub]", "");
            if let Err(e) = Config::parse(&text, Path::new("README.md")) {
                panic!("a README config example does not parse: {e:#}\n{text}");
            }
        }
    }

    fn kafka(toml_text: &str) -> KafkaConfig {
        let cfg: Config = toml::from_str(toml_text).unwrap();
        cfg.kafka.unwrap()
    }

    fn ome() -> mieruka_ingest::Schema {
        mieruka_aggregator::Plan::ome().unwrap().schema
    }

    #[test]
    fn a_topic_allow_list_compiles_and_its_sources_are_labels() {
        let cfg: Config = toml::from_str(
            r#"
[kafka]
brokers = "b:9092"
topic = "mieruka.events"
topics = ["card.events"]
[kafka.topic_allow."mieruka.events"]
sources = ["konbini", "madoguchi"]
types = ["certificate.issued"]
[kafka.topic_allow."card.events"]
sources = ["card"]
"#,
        )
        .unwrap();
        let k = cfg.kafka.as_ref().unwrap();
        let allow = k.topic_allow(&ome(), &k.source_topics()).unwrap();
        let topics: Vec<&str> = allow.iter().map(TopicAllow::topic).collect();
        assert_eq!(topics, ["card.events", "mieruka.events"]);
        assert_eq!(allow[1].sources(), ["konbini", "madoguchi"]);
        assert_eq!(cfg.source_labels(), ["card", "konbini", "madoguchi"]);
    }

    #[test]
    fn a_topic_allow_list_of_a_topic_not_consumed_or_of_an_unknown_type_is_an_error() {
        let k = kafka(
            "[kafka]\nbrokers = \"b\"\ntopic = \"mieruka.events\"\n\
             [kafka.topic_allow.\"mieruka.event\"]\nsources = [\"konbini\"]\n",
        );
        let err = k.topic_allow(&ome(), &k.source_topics()).unwrap_err();
        assert!(
            err.to_string().contains("names topic \"mieruka.event\", which this role does not consume (it consumes mieruka.events)"),
            "{err:#}"
        );
        let k = kafka(
            "[kafka]\nbrokers = \"b\"\ntopic = \"t\"\n\
             [kafka.topic_allow.t]\nsources = [\"konbini\"]\ntypes = [\"certificate.isued\"]\n",
        );
        let err = format!(
            "{:#}",
            k.topic_allow(&ome(), &k.source_topics()).unwrap_err()
        );
        assert!(
            err.contains("type \"certificate.isued\" is not an event type of the plan"),
            "{err}"
        );
    }

    #[test]
    fn the_deployed_aggregate_config_is_valid_and_closes_its_topic() {
        let cfg: Config =
            toml::from_str(include_str!("../../deploy/config/aggregate.toml")).unwrap();
        let k = cfg.kafka.as_ref().unwrap();
        assert!(
            k.dead_letter_topic.is_some(),
            "the aggregate role needs a dead-letter topic"
        );
        let allow = k.topic_allow(&ome(), &k.source_topics()).unwrap();
        assert_eq!(
            allow.len(),
            k.source_topics().len(),
            "every topic declares what it carries"
        );
        // The ingest role produces every token's events to its topic: the topic carries them.
        let ingest: Config =
            toml::from_str(include_str!("../../deploy/config/ingest.toml")).unwrap();
        let topic = ingest.kafka.as_ref().unwrap().topic.clone().unwrap();
        let a = allow.iter().find(|a| a.topic() == topic).unwrap();
        for source in ingest.source_labels() {
            assert!(a.carries_source(&source), "{topic} does not carry {source}");
        }
    }

    #[test]
    fn librdkafka_properties_pass_through_and_guarantee_keys_are_refused() {
        let k = kafka(
            r#"
[kafka]
brokers = "b:9092"
[kafka.librdkafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"socket.keepalive.enable" = true
"reconnect.backoff.max.ms" = 5000
"#,
        );
        assert_eq!(
            k.librdkafka().unwrap(),
            vec![
                ("reconnect.backoff.max.ms".to_owned(), "5000".to_owned()),
                ("sasl.mechanism".to_owned(), "SCRAM-SHA-512".to_owned()),
                ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
                ("socket.keepalive.enable".to_owned(), "true".to_owned()),
            ]
        );
        let nested = kafka("[kafka]\nbrokers = \"b\"\n[kafka.librdkafka]\ndebug = [\"all\"]\n");
        let err = nested.librdkafka().unwrap_err().to_string();
        assert!(err.contains("\"debug\" must be a string"), "{err}");
        for key in [
            "enable.idempotence",
            "acks",
            "enable.auto.commit",
            "group.id",
            "auto.offset.reset",
            "group.instance.id",
            "message.timeout.ms",
        ] {
            let k = kafka(&format!(
                "[kafka]\nbrokers = \"b:9092\"\n[kafka.librdkafka]\n\"{key}\" = \"x\"\n"
            ));
            let err = k.librdkafka().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
