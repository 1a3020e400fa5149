//! Precedence, once: command-line flag (already merged with its environment variable by
//! clap) > config file > default. Every role and command gets its settings from
//! [`resolve`], and nothing else in the crate looks at a flag and the config together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mieruka_aggregator::topic_allow::TopicAllow;
use mieruka_aggregator::Plan;
use mieruka_exporter::calendar::Schedule;
use mieruka_exporter::feeds::SourceDirectory;
use mieruka_ingest::http::{Limits, Token};
use mieruka_ingest::import::{CsvMapping, Encoding};
use mieruka_ingest::Timestamp;

use super::{
    Config, DEFAULT_AGGREGATE_LISTEN, DEFAULT_DB, DEFAULT_DEMO_DB, DEFAULT_GROUP_ID,
    DEFAULT_INGEST_LISTEN, DEFAULT_LISTEN, DEFAULT_REFRESH_SECONDS, DEFAULT_TOPIC,
};

/// What the command line says (each flag already merged with its environment variable).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--listen` / `MIERUKA_LISTEN`.
    pub listen: Option<String>,
    /// `--db` / `MIERUKA_DB`.
    pub db: Option<PathBuf>,
    /// `--plan` / `MIERUKA_PLAN`.
    pub plan: Option<PathBuf>,
    /// `--now` / `MIERUKA_NOW`.
    pub now: Option<Timestamp>,
    /// `--refresh-seconds` / `MIERUKA_REFRESH_SECONDS`.
    pub refresh_seconds: Option<u64>,
    /// `--database-url` / `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--brokers` / `KAFKA_BROKERS`.
    pub brokers: Option<String>,
    /// `--config` / `MIERUKA_CONFIG`: the file the tokens are reloaded from.
    pub config: Option<PathBuf>,
}

/// Who the settings are for: each has its own defaults, and only what it uses is
/// resolved (an `export` never needs a token's secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    /// `mieruka standalone`.
    Standalone,
    /// `mieruka demo`: the standalone role on a database of its own.
    Demo,
    /// `mieruka ingest`.
    Ingest,
    /// `mieruka aggregate`.
    Aggregate,
    /// `mieruka export`.
    Export,
    /// `mieruka import`: into the embedded store, or — when Kafka brokers are given —
    /// produced to the `[kafka]` topic as `ingest` produces.
    Import,
    /// A command on a store (`rejected`) or on the plan alone (`rules`, `dashboards`).
    Command,
}

impl RoleKind {
    fn default_listen(self) -> &'static str {
        match self {
            RoleKind::Ingest => DEFAULT_INGEST_LISTEN,
            RoleKind::Aggregate => DEFAULT_AGGREGATE_LISTEN,
            _ => DEFAULT_LISTEN,
        }
    }

    fn default_db(self) -> &'static str {
        match self {
            RoleKind::Demo => DEFAULT_DEMO_DB,
            _ => DEFAULT_DB,
        }
    }

    /// Whether it receives events over HTTP, and so needs the tokens' secrets.
    fn receives(self) -> bool {
        matches!(
            self,
            RoleKind::Standalone | RoleKind::Demo | RoleKind::Ingest
        )
    }
}

/// The Kafka side of the production roles, defaults applied.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// The topic `ingest` produces to.
    pub topic: String,
    /// Every topic `aggregate` consumes (`topic`, then `topics`).
    pub source_topics: Vec<String>,
    /// Where rejected events go.
    pub dead_letter_topic: Option<String>,
    /// The aggregators' consumer group.
    pub group_id: String,
    /// What each source topic may carry (compiled against the plan; `aggregate` only).
    pub allow: Vec<TopicAllow>,
    /// The `[kafka.topic_allow]` entry of `topic`, for `ingest`'s warnings.
    pub ingest_allow: Option<super::TopicAllowConfig>,
    /// `[kafka.librdkafka]`, checked.
    pub librdkafka: Vec<(String, String)>,
    /// `[kafka] max_batch`, at least 1.
    pub max_batch: Option<usize>,
    /// `[kafka] parallel_commits`, at least 1.
    pub parallel_commits: Option<usize>,
    /// `[kafka] max_wait_ms`.
    pub max_wait: Option<Duration>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            topic: DEFAULT_TOPIC.to_owned(),
            source_topics: vec![DEFAULT_TOPIC.to_owned()],
            dead_letter_topic: None,
            group_id: DEFAULT_GROUP_ID.to_owned(),
            allow: Vec::new(),
            ingest_allow: None,
            librdkafka: Vec::new(),
            max_batch: None,
            parallel_commits: None,
            max_wait: None,
        }
    }
}

/// Everything a role or command needs, with precedence applied. Its `Debug` shows how
/// many tokens there are, never their secrets.
#[derive(Clone)]
pub struct Resolved {
    /// Who these are for.
    pub kind: RoleKind,
    /// The plan, taking events in the config's time window around `now`.
    pub plan: Arc<Plan>,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The SQLite file of the embedded store.
    pub db: PathBuf,
    /// Seconds between snapshot refreshes while idle.
    pub refresh: Duration,
    /// A fixed "now" for reproducible runs; `None` follows the wall clock.
    pub now: Option<Timestamp>,
    /// The bounds of a request to `POST /v1/events`.
    pub limits: Limits,
    /// A connection that sends nothing this long is dropped.
    pub idle_timeout: Duration,
    /// The tokens of the roles that receive events, as configured (each checked: it
    /// has a key, and its expiry parses).
    pub tokens: Vec<Token>,
    /// The config file the tokens are reloaded from (on a change of it, or on
    /// `reload_keys`); `None`: they are never reloaded.
    pub config_path: Option<PathBuf>,
    /// How often the config file is looked at for changed tokens; `None`: never (only
    /// on `reload_keys`).
    pub keys_poll: Option<Duration>,
    /// Woken to reload the tokens now (`main` wires SIGHUP to it).
    pub reload_keys: Arc<tokio::sync::Notify>,
    /// Where the HTTP listener gets its certificate and key; `None`: plain HTTP.
    pub tls: Option<super::TlsConfig>,
    /// Source labels for the metrics.
    pub sources: Vec<String>,
    /// The sources with a cadence (`[sources.NAME]`), for their next-due instants.
    pub schedules: BTreeMap<String, Schedule>,
    /// Every configured source as the pages name it: display name, types, cadence.
    pub directory: SourceDirectory,
    /// The Kafka side.
    pub kafka: KafkaSettings,
    /// The `[[inbox]]` folders this role imports dropped files from (`standalone` and
    /// `ingest` only).
    pub inboxes: Vec<InboxSettings>,
    database_url: Option<String>,
    brokers: Option<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("kind", &self.kind)
            .field("plan", &self.plan.id)
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("refresh", &self.refresh)
            .field("now", &self.now)
            .field("tokens", &self.tokens.len())
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Resolved {
    /// The defaults of `kind` around `plan`, as with no flag and an empty config (tests
    /// and benchmarks start here and set what they need).
    pub fn new(plan: Arc<Plan>, kind: RoleKind) -> Resolved {
        Resolved {
            kind,
            plan,
            listen: kind.default_listen().to_owned(),
            db: kind.default_db().into(),
            refresh: Duration::from_secs(DEFAULT_REFRESH_SECONDS),
            now: None,
            limits: Config::default().http_limits(),
            idle_timeout: Config::default().idle_timeout(),
            tokens: Vec::new(),
            config_path: None,
            keys_poll: Some(DEFAULT_KEYS_POLL),
            reload_keys: Arc::default(),
            tls: None,
            sources: Vec::new(),
            schedules: BTreeMap::new(),
            directory: SourceDirectory::default(),
            kafka: KafkaSettings::default(),
            inboxes: Vec::new(),
            database_url: None,
            brokers: None,
        }
    }

    /// The PostgreSQL URL, or an error saying the three ways to give one.
    pub fn database_url(&self) -> anyhow::Result<&str> {
        self.database_url.as_deref().context(
            "no PostgreSQL URL: pass --database-url, set DATABASE_URL, or add [store] url to the config",
        )
    }

    /// The Kafka bootstrap servers, or an error saying the three ways to give them.
    pub fn brokers(&self) -> anyhow::Result<&str> {
        self.brokers.as_deref().context(
            "no Kafka brokers: pass --brokers, set KAFKA_BROKERS, or add [kafka] brokers to the config",
        )
    }

    /// Adds a token (the demo's) to those the config gives, and its sources to the labels.
    pub fn add_token(&mut self, token: Token) {
        self.sources.extend(token.sources.iter().cloned());
        self.sources.sort();
        self.sources.dedup();
        self.directory.allow(&token.sources, &token.types);
        self.tokens.push(token);
    }
}

/// How often the config file is looked at for changed tokens unless the config says: a
/// rotated token is in force within seconds, and reading one small file this often
/// costs nothing.
pub const DEFAULT_KEYS_POLL: Duration = Duration::from_secs(2);

/// The settings of `kind`: each flag, else the config file, else the default.
pub fn resolve(cfg: &Config, flags: &Flags, kind: RoleKind) -> anyhow::Result<Resolved> {
    let plan = Arc::new(load_plan_at(cfg, flags.plan.as_deref(), flags.now)?);
    let mut r = Resolved::new(plan, kind);
    r.listen = first(&flags.listen, &cfg.listen).unwrap_or(r.listen);
    r.db = first(&flags.db, &cfg.db).unwrap_or(r.db);
    if let Some(s) = flags.refresh_seconds.or(cfg.refresh_seconds) {
        r.refresh = Duration::from_secs(s.max(1));
    }
    r.now = flags.now;
    r.limits = cfg.http_limits();
    r.idle_timeout = cfg.idle_timeout();
    r.sources = cfg.source_labels();
    r.schedules = cfg.schedules()?;
    r.directory = cfg.source_directory()?;
    if kind.receives() {
        cfg.key_ring()?;
        cfg.warn_secrets_in_clear();
        r.tokens = cfg.tokens.clone();
        // The demo adds a token of its own, which a reload from the file would drop.
        if kind != RoleKind::Demo {
            r.config_path = flags.config.clone();
        }
        r.keys_poll = match cfg.tokens_reload_seconds {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
            None => Some(DEFAULT_KEYS_POLL),
        };
    }
    if kind.receives() || kind == RoleKind::Export {
        r.tls = cfg.tls.clone();
    }
    r.database_url = first(
        &flags.database_url,
        &cfg.store.as_ref().map(|s| s.url.clone()),
    );
    r.brokers = first(
        &flags.brokers,
        &cfg.kafka.as_ref().map(|k| k.brokers.clone()),
    );
    if matches!(kind, RoleKind::Standalone | RoleKind::Ingest) {
        r.inboxes = cfg
            .inbox
            .iter()
            .map(|i| inbox_settings(cfg, i, &r.plan))
            .collect::<anyhow::Result<_>>()?;
        let mut names: Vec<&str> = r.inboxes.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            anyhow::bail!(
                "two [[inbox]] tables are named {:?} (their metrics would mix): give one a `name`",
                w[0]
            );
        }
    }
    if let Some(k) = &cfg.kafka {
        if matches!(
            kind,
            RoleKind::Ingest | RoleKind::Aggregate | RoleKind::Import
        ) {
            r.kafka = kafka_settings(k, &r.plan, kind)?;
        }
    }
    Ok(r)
}

/// One `[[inbox]]` folder, defaults applied.
#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// The label of its metrics, reports and logs.
    pub name: String,
    /// The folder watched.
    pub dir: PathBuf,
    /// The column mapping of its CSV files.
    pub mapping: Option<CsvMapping>,
    /// The sources its events may have (empty: any).
    pub sources: Vec<String>,
    /// The event types its events may have (empty: any).
    pub types: Vec<String>,
    /// Which file names are taken (`*`, `?`); `None`: every file.
    pub pattern: Option<String>,
    /// The files' encoding; `None`: detected.
    pub encoding: Option<Encoding>,
    /// How long a file must stay unchanged before it is taken.
    pub settle: Duration,
    /// How often the folder is looked at.
    pub poll: Duration,
}

/// A file must be unchanged this long before it is taken, unless the config says.
const DEFAULT_SETTLE_SECONDS: u64 = 10;

/// The folder is looked at this often, unless the config says: a second is quick for
/// a person and nothing for the file system.
const DEFAULT_POLL_MILLIS: u64 = 1000;

/// `[[inbox]]` with its defaults, checked at start: a folder that does not exist, an
/// unknown mapping or an event type the plan does not declare stops the role.
fn inbox_settings(
    cfg: &Config,
    i: &super::InboxConfig,
    plan: &Plan,
) -> anyhow::Result<InboxSettings> {
    let dir = &i.dir;
    anyhow::ensure!(
        dir.is_dir(),
        "[[inbox]] dir {} is not a folder (create it, or fix the path)",
        dir.display()
    );
    let name = match &i.name {
        Some(n) => n.clone(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| format!("[[inbox]] dir {}: give it a `name`", dir.display()))?,
    };
    let mapping = match &i.mapping {
        Some(m) => Some(cfg.csv_mappings.get(m).cloned().with_context(|| {
            let known: Vec<&str> = cfg.csv_mappings.keys().map(String::as_str).collect();
            format!(
                "[[inbox]] {name:?}: no CSV mapping {m:?} in the config; it has: {}",
                known.join(", ")
            )
        })?),
        None => None,
    };
    for ty in &i.types {
        anyhow::ensure!(
            plan.schema.type_id(ty).is_some(),
            "[[inbox]] {name:?}: type {ty:?} is not an event type of the plan"
        );
    }
    Ok(InboxSettings {
        name,
        dir: dir.clone(),
        mapping,
        sources: i.sources.clone(),
        types: i.types.clone(),
        pattern: i.pattern.clone(),
        encoding: i.encoding,
        settle: Duration::from_secs(i.settle_seconds.unwrap_or(DEFAULT_SETTLE_SECONDS)),
        poll: Duration::from_millis(i.poll_millis.unwrap_or(DEFAULT_POLL_MILLIS).max(10)),
    })
}

/// The flag's value, else the config's.
fn first<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

/// `[kafka]` with its defaults, checked: a wrong allow list, a reserved librdkafka key or
/// a zero batch stops the role before it waits on anything.
fn kafka_settings(
    k: &super::KafkaConfig,
    plan: &Plan,
    kind: RoleKind,
) -> anyhow::Result<KafkaSettings> {
    let topic = k.topic.clone().unwrap_or_else(|| DEFAULT_TOPIC.to_owned());
    let mut source_topics = k.source_topics();
    if source_topics.is_empty() {
        source_topics.push(DEFAULT_TOPIC.to_owned());
    }
    let allow = match kind {
        RoleKind::Aggregate => k.topic_allow(&plan.schema, &source_topics)?,
        _ => Vec::new(),
    };
    if kind == RoleKind::Aggregate && k.max_batch == Some(0) {
        anyhow::bail!("[kafka] max_batch must be at least 1");
    }
    if kind == RoleKind::Aggregate && k.parallel_commits == Some(0) {
        anyhow::bail!("[kafka] parallel_commits must be at least 1");
    }
    Ok(KafkaSettings {
        ingest_allow: k.topic_allow.get(&topic).cloned(),
        topic,
        source_topics,
        dead_letter_topic: k.dead_letter_topic.clone(),
        group_id: k
            .group_id
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP_ID.to_owned()),
        allow,
        librdkafka: k.librdkafka()?,
        max_batch: k.max_batch,
        parallel_commits: k.parallel_commits,
        max_wait: k.max_wait_ms.map(Duration::from_millis),
    })
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

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_flag_beats_the_config_file_which_beats_the_default() {
        let none = resolve(&Config::default(), &Flags::default(), RoleKind::Export).unwrap();
        assert_eq!(none.listen, DEFAULT_LISTEN);
        assert_eq!(none.db, PathBuf::from(DEFAULT_DB));
        assert_eq!(none.refresh, Duration::from_secs(DEFAULT_REFRESH_SECONDS));
        assert!(none.database_url().is_err());
        assert!(none.brokers().is_err());

        let cfg = config(
            "listen = \"127.0.0.1:7000\"\ndb = \"file.db\"\nrefresh_seconds = 5\n\
             [store]\nurl = \"postgres://file\"\n[kafka]\nbrokers = \"file:9092\"\n",
        );
        let file = resolve(&cfg, &Flags::default(), RoleKind::Export).unwrap();
        assert_eq!(file.listen, "127.0.0.1:7000");
        assert_eq!(file.db, PathBuf::from("file.db"));
        assert_eq!(file.refresh, Duration::from_secs(5));
        assert_eq!(file.database_url().unwrap(), "postgres://file");
        assert_eq!(file.brokers().unwrap(), "file:9092");

        let flags = Flags {
            listen: Some("127.0.0.1:7001".into()),
            db: Some("flag.db".into()),
            refresh_seconds: Some(0),
            database_url: Some("postgres://flag".into()),
            brokers: Some("flag:9092".into()),
            ..Flags::default()
        };
        let flag = resolve(&cfg, &flags, RoleKind::Export).unwrap();
        assert_eq!(flag.listen, "127.0.0.1:7001");
        assert_eq!(flag.db, PathBuf::from("flag.db"));
        assert_eq!(flag.refresh, Duration::from_secs(1), "at least a second");
        assert_eq!(flag.database_url().unwrap(), "postgres://flag");
        assert_eq!(flag.brokers().unwrap(), "flag:9092");
    }

    #[test]
    fn each_role_has_its_own_default_address_and_the_demo_its_own_database() {
        let cfg = Config::default();
        let listen = |kind| resolve(&cfg, &Flags::default(), kind).unwrap().listen;
        assert_eq!(listen(RoleKind::Standalone), DEFAULT_LISTEN);
        assert_eq!(listen(RoleKind::Export), DEFAULT_LISTEN);
        assert_eq!(listen(RoleKind::Ingest), DEFAULT_INGEST_LISTEN);
        assert_eq!(listen(RoleKind::Aggregate), DEFAULT_AGGREGATE_LISTEN);
        let demo = resolve(&cfg, &Flags::default(), RoleKind::Demo).unwrap();
        assert_eq!(demo.db, PathBuf::from(DEFAULT_DEMO_DB));
    }

    #[test]
    fn an_inbox_resolves_its_defaults_and_a_missing_folder_or_unknown_mapping_stops_the_role() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("konbini");
        std::fs::create_dir(&inbox).unwrap();
        let text = |dir: &Path, mapping: &str| {
            format!(
                "[csv_mappings.konbini]\nsource = \"konbini\"\ntype = \"certificate.issued\"\n\
                 event_id = \"id\"\noccurred_at = \"at\"\n\
                 [[inbox]]\ndir = '{}'\nmapping = \"{mapping}\"\n",
                dir.display()
            )
        };
        let r = resolve(
            &config(&text(&inbox, "konbini")),
            &Flags::default(),
            RoleKind::Standalone,
        )
        .unwrap();
        let i = &r.inboxes[0];
        assert_eq!(i.name, "konbini");
        assert!(i.mapping.is_some());
        assert_eq!(i.settle, Duration::from_secs(DEFAULT_SETTLE_SECONDS));
        // Only the roles that watch folders look at them.
        let export = resolve(
            &config(&text(&inbox, "konbini")),
            &Flags::default(),
            RoleKind::Export,
        )
        .unwrap();
        assert!(export.inboxes.is_empty());

        let err = |text: String| {
            format!(
                "{:#}",
                resolve(&config(&text), &Flags::default(), RoleKind::Ingest).unwrap_err()
            )
        };
        let e = err(text(&inbox, "konbni"));
        assert!(e.contains("no CSV mapping \"konbni\""), "{e}");
        let e = err(text(&dir.path().join("nowhere"), "konbini"));
        assert!(e.contains("is not a folder"), "{e}");
        let twice = format!(
            "{}[[inbox]]\ndir = '{}'\n",
            text(&inbox, "konbini"),
            inbox.display()
        );
        let e = err(twice);
        assert!(
            e.contains("two [[inbox]] tables are named \"konbini\""),
            "{e}"
        );
    }

    #[test]
    fn only_the_roles_that_receive_events_need_the_tokens_secrets() {
        let cfg = config(
            "[[tokens]]\nname = \"konbini\"\ntoken_env = \"MIERUKA_TEST_NO_SUCH_VARIABLE\"\nsources = [\"konbini\"]\n",
        );
        for kind in [RoleKind::Standalone, RoleKind::Demo, RoleKind::Ingest] {
            let err = resolve(&cfg, &Flags::default(), kind).unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains("MIERUKA_TEST_NO_SUCH_VARIABLE named by token_env is not set"),
                "{kind:?}: {err}"
            );
        }
        for kind in [RoleKind::Aggregate, RoleKind::Export, RoleKind::Command] {
            let r = resolve(&cfg, &Flags::default(), kind).unwrap();
            assert!(r.tokens.is_empty(), "{kind:?}");
            assert_eq!(
                r.sources,
                ["konbini"],
                "{kind:?}: labels come from the config"
            );
        }
    }

    #[test]
    fn kafka_settings_take_their_defaults_and_refuse_a_zero_batch_for_the_aggregators() {
        let cfg = config("[kafka]\nbrokers = \"b:9092\"\nmax_batch = 0\n");
        let ingest = resolve(&cfg, &Flags::default(), RoleKind::Ingest).unwrap();
        assert_eq!(ingest.kafka.topic, DEFAULT_TOPIC);
        assert_eq!(ingest.kafka.source_topics, [DEFAULT_TOPIC]);
        assert_eq!(ingest.kafka.group_id, DEFAULT_GROUP_ID);
        let err = resolve(&cfg, &Flags::default(), RoleKind::Aggregate).unwrap_err();
        assert!(
            err.to_string().contains("max_batch must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn an_import_resolves_the_kafka_side_as_ingest_does() {
        let cfg = config(
            "[kafka]\nbrokers = \"b:9092\"\ntopic = \"t\"\ndead_letter_topic = \"dlq\"\n\
             [kafka.librdkafka]\n\"linger.ms\" = \"1\"\n",
        );
        let import = resolve(&cfg, &Flags::default(), RoleKind::Import).unwrap();
        let ingest = resolve(&cfg, &Flags::default(), RoleKind::Ingest).unwrap();
        assert_eq!(import.brokers().unwrap(), "b:9092");
        assert_eq!(import.kafka.topic, ingest.kafka.topic);
        assert_eq!(import.kafka.dead_letter_topic.as_deref(), Some("dlq"));
        assert_eq!(import.kafka.librdkafka, ingest.kafka.librdkafka);
        assert!(import.tokens.is_empty(), "an import needs no token");
        let none = resolve(&Config::default(), &Flags::default(), RoleKind::Import).unwrap();
        assert!(none.brokers().is_err(), "no brokers: the embedded store");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let cfg = config(
            "[[tokens]]\nname = \"konbini\"\ntoken = \"s3cret-token\"\nsources = [\"konbini\"]\n",
        );
        let r = resolve(&cfg, &Flags::default(), RoleKind::Standalone).unwrap();
        assert_eq!(r.tokens.len(), 1);
        assert!(!format!("{r:?}").contains("s3cret"), "{r:?}");
    }
}
