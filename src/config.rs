//! The config file (TOML) of every role, with defaults a newcomer never has to write.
//!
//! Precedence: command-line flag > environment variable (`MIERUKA_*`, see `--help`) >
//! config file > default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mieruka_ingest::http::Token;
use mieruka_ingest::import::CsvMapping;
use mieruka_ingest::Timestamp;
use serde::Deserialize;

/// Default address of the standalone HTTP server (events, metrics, status page).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Default SQLite file of `standalone` and `import`.
pub const DEFAULT_DB: &str = "data/mieruka.db";

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
    /// Bearer tokens, one per line system.
    #[serde(default)]
    pub tokens: Vec<Token>,
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
}

/// `[rules]`: how `mieruka rules` judges feeds (the KPI alerts come from the plan).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The runbook's URL without the anchor.
    pub runbook_base: Option<String>,
    /// How long a source may be silent unless listed in `cadence` (e.g. "2d").
    pub default_cadence: Option<String>,
    /// Per source, how long it may be silent (e.g. `juki = "35d"` for a monthly feed).
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
    /// Where `aggregate` sends events it rejects (original bytes, reason in headers).
    pub dead_letter_topic: Option<String>,
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
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))
    }

    /// The configured source labels (for metrics): every source of every token.
    pub fn source_labels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tokens.iter().flat_map(|t| t.sources.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// (secret, token) pairs; a token whose secret is missing is an error.
    pub fn secrets(&self) -> anyhow::Result<Vec<(String, Token)>> {
        self.tokens
            .iter()
            .map(|t| {
                let secret = t.secret().with_context(|| {
                    format!(
                        "token {:?} has no secret: set `token` or the environment variable named by `token_env`",
                        t.name
                    )
                })?;
                Ok((secret, t.clone()))
            })
            .collect()
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

/// The plan to run with (a file, or the shipped Ome plan), taking events in the window
/// the config and `now` give.
pub fn load_plan_at(
    cfg: &Config,
    path: Option<&Path>,
    now: Option<Timestamp>,
) -> anyhow::Result<mieruka_aggregator::Plan> {
    let mut plan = load_plan(path.or(cfg.plan.as_deref()))?;
    let window = cfg.time_window(plan.schema.window(), now)?;
    plan.schema.set_window(window);
    Ok(plan)
}

/// The plan to run with: a file, or the shipped Ome plan.
pub fn load_plan(path: Option<&Path>) -> anyhow::Result<mieruka_aggregator::Plan> {
    match path {
        None => Ok(mieruka_aggregator::Plan::ome()?),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read plan {}", p.display()))?;
            Ok(mieruka_aggregator::Plan::parse(
                &p.display().to_string(),
                &text,
            )?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(toml_text: &str) -> KafkaConfig {
        let cfg: Config = toml::from_str(toml_text).unwrap();
        cfg.kafka.unwrap()
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
