//! The command line: every subcommand and flag, with its environment variable. Turning
//! flags into settings is `config::resolve`'s job; running them is `main`'s.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mieruka::config::Flags;
use mieruka_aggregator::close::CloseRequest;
use mieruka_aggregator::FiscalYear;
use mieruka_ingest::import::Encoding;
use mieruka_ingest::Timestamp;

/// mieruka (見える化): folds a city's line-system events into the KPIs of its DX plan and
/// exports them to Prometheus, with pace and projection against each year's target.
#[derive(Parser, Debug)]
#[command(
    name = "mieruka",
    version,
    about,
    long_about = None,
    after_help = "Logs go to standard error: MIERUKA_LOG sets the filter (default \"info,sqlx=warn\"); \
                  MIERUKA_LOG_FORMAT=json writes one JSON object per line, otherwise plain text \
                  (coloured only on a terminal)."
)]
pub struct Cli {
    /// Config file (TOML): tokens (a receiving role reloads them when the file changes,
    /// or on SIGHUP), [tls], CSV mappings, defaults for the flags below.
    #[arg(long, short, global = true, env = "MIERUKA_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a synthetic history of the Ome plan (FY2025 to now), ingest it, and serve it
    /// like `standalone`: the newcomer's first command.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Seed of the synthetic history.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Ingest the history, print the summary and exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// All roles in one process on the embedded SQLite store: HTTP ingest, aggregation,
    /// /metrics and the status page (HTTPS when the config has [tls]).
    Standalone {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Import NDJSON or CSV files (UTF-8 or Shift_JIS, streamed in flat memory) and
    /// Excel workbooks (.xlsx) into the store, or into the production pipeline (the
    /// `[kafka]` topic) when Kafka brokers are given.
    Import {
        /// Files to import (`.csv`/`.tsv` are CSV, `.xlsx` a workbook; anything else is
        /// NDJSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// SQLite file [default: data/mieruka.db].
        #[arg(long, env = "MIERUKA_DB")]
        db: Option<PathBuf>,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
        /// Column mapping of CSV files and workbooks: the name of a [csv_mappings.NAME]
        /// table in the config.
        #[arg(long)]
        mapping: Option<String>,
        /// Text encoding: utf-8 or shift_jis [default: detected].
        #[arg(long)]
        encoding: Option<Encoding>,
        /// Take this instant as "now" (RFC 3339) when judging whether an event lies in
        /// the future [default: the wall clock].
        #[arg(long, env = "MIERUKA_NOW", value_parser = parse_now)]
        now: Option<Timestamp>,
        /// Kafka bootstrap servers: produce to the `[kafka]` topic instead of the SQLite
        /// store [default: the config's [kafka] brokers].
        #[arg(long, env = "KAFKA_BROKERS")]
        brokers: Option<String>,
        /// PostgreSQL URL where a production import keeps its rejected lines (written
        /// before the batch is produced) [default: the config's [store] url].
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Show the rejected events kept in the store, newest first (when received, place,
    /// reason, field, raw text with personal numbers masked), then a summary by source
    /// and reason: PostgreSQL's when a URL is given, else SQLite's.
    Rejected {
        /// SQLite file [default: data/mieruka.db].
        #[arg(long, env = "MIERUKA_DB")]
        db: Option<PathBuf>,
        /// PostgreSQL URL [default: the config's [store] url].
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        /// Only this source label (`unknown` for events of no configured source).
        #[arg(long)]
        source: Option<String>,
        /// Only this reason (not_json, personal_number, out_of_bounds, …).
        #[arg(long)]
        reason: Option<String>,
        /// Only those received since: RFC 3339 (2026-05-01T00:00:00+09:00), or a
        /// duration back from now (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// How many to list, newest first (the summary counts every match).
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Re-fold the whole event log with the current plan into fresh aggregates, compare
    /// them with the live ones and print every difference (exit 1 if any). With
    /// --apply, swap the rebuilt aggregates in (atomically: readers see the old figures
    /// or the new) and record the plan's measure fingerprints: how a plan whose measures
    /// changed is put in service (stop the aggregators first). PostgreSQL's store when a
    /// URL is given, else SQLite's.
    Replay {
        /// SQLite file [default: data/mieruka.db].
        #[arg(long, env = "MIERUKA_DB")]
        db: Option<PathBuf>,
        /// PostgreSQL URL [default: the config's [store] url].
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
        /// Replace the live aggregates with the replayed ones.
        #[arg(long)]
        apply: bool,
    },
    /// Why a KPI's value is what it is: the formula with its numbers (numerator and
    /// denominator, or the snapshot a level starts from and the deltas since), the
    /// contributions by month and by source, the events counted and voided and the
    /// duplicates seen, and pace and projection with their inputs. Reads PostgreSQL when a URL is given, else the
    /// SQLite file. The same explanation is served as JSON at /v1/kpis/<id>.
    Explain {
        /// The KPI's id in the plan (e.g. mynumber_card_holding_rate).
        kpi: String,
        /// Fiscal year [default: the year of --as-of, else the current one].
        #[arg(long)]
        fy: Option<i32>,
        /// The value as it stood at the end of this day (YYYY-MM-DD, JST), counting the
        /// events that occurred by then, with today's knowledge of voids and late
        /// arrivals.
        #[arg(long, value_parser = parse_day)]
        as_of: Option<mieruka_aggregator::Day>,
        /// Print JSON (the body of GET /v1/kpis/<id>) instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the council report (進捗報告) of a fiscal year: a cover, each chapter's KPIs
    /// (baseline, target, value, pace, projection, status, provisional/final) with their
    /// trend charts, and the plan's definitions and footnotes; from PostgreSQL when a URL
    /// is given, else the SQLite file.
    #[command(
        after_help = "Formats: html is one self-contained file (inline CSS and SVG); \
                      pdf is that HTML printed by headless Chromium (chromium, chromium-browser \
                      or google-chrome on PATH); xlsx has a cover sheet and one sheet per \
                      chapter, numbers as numbers with the unit in each header; csv has one \
                      row per KPI, UTF-8 with a byte-order mark (BOM) so that Excel opens \
                      it with the Japanese intact. A figure is provisional (速報値) until its \
                      fiscal year is closed (`mieruka close-year`), final (確定値) after."
    )]
    Report {
        /// Fiscal year (April to March): 2026 is 令和8年度.
        #[arg(long)]
        fy: i32,
        /// Report the figures as of the end of this day (JST, YYYY-MM-DD) [default: now].
        #[arg(long)]
        as_of: Option<String>,
        /// html, pdf, xlsx or csv.
        #[arg(long)]
        format: mieruka::commands::report::Format,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Close a fiscal year that has ended: freeze its figures as final (確定値) with the
    /// instant, the operator and a note. Events and voids of the year that arrive after
    /// the close no longer change its figures: they show as adjustments (確定後の修正,
    /// `mieruka_kpi_adjustment`), and `explain` lists them. PostgreSQL's store when a URL
    /// is given, else SQLite's; safe while the roles run.
    CloseYear {
        /// Fiscal year (April to March): 2025 is 令和7年度.
        fy: i32,
        #[command(flatten)]
        who: CloseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a fiscal year's close (logged): its figures are provisional (速報値) again,
    /// and the command prints, per KPI, the final figure dropped and the live value that
    /// now stands.
    ReopenYear {
        /// Fiscal year (April to March).
        fy: i32,
        #[command(flatten)]
        who: CloseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Keys of the line systems: `token new NAME` makes one.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Plan files.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Write Prometheus recording and alerting rules generated from the plan (feed
    /// cadences and calendars from the config's [sources] and [calendars] tables,
    /// thresholds from [rules]; see docs/calendar.md).
    Rules {
        /// Output file [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
    },
    /// Write Grafana dashboards generated from the plan.
    Dashboards {
        /// Output directory.
        #[arg(long, default_value = "deploy/grafana/dashboards")]
        out: PathBuf,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
    },
    /// Write the vendor contract generated from the plan: a JSON Schema per event type
    /// (OUT/schema/), the OpenAPI document of POST /v1/events (OUT/openapi.json) and the
    /// event reference in Japanese and English (OUT/events.md).
    Schema {
        /// Output directory.
        #[arg(long, default_value = "docs")]
        out: PathBuf,
        /// Plan file [default: the shipped Ome plan].
        #[arg(long, env = "MIERUKA_PLAN")]
        plan: Option<PathBuf>,
    },
    /// Production role: the HTTP receiver, producing to Kafka (idempotent, acks=all);
    /// its refusals also go to PostgreSQL's `rejected` table when a URL is given. HTTPS
    /// when the config has [tls]; the [[tokens]] reload on a change of the file or SIGHUP.
    Ingest {
        #[command(flatten)]
        role: RoleArgs,
    },
    /// Production role: Kafka consumer group folding into PostgreSQL, effectively once.
    Aggregate {
        #[command(flatten)]
        role: RoleArgs,
    },
    /// Production role: /metrics, health and the status page, served from PostgreSQL.
    Export {
        #[command(flatten)]
        role: RoleArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a fresh random token (256 bits from the operating system) once, and the
    /// [[tokens]] entry to paste into the config: it holds only the token's SHA-256, so
    /// the token itself lives only with the line system. A role in service takes the
    /// entry within seconds of the file's change (or on SIGHUP), without a restart.
    New {
        /// The line system's name (logs, and the `token` label of the refusal metrics;
        /// a rollover's new entry may keep the old one's name).
        name: String,
        /// When the token stops being accepted (RFC 3339, e.g. 2027-03-31T23:59:59+09:00)
        /// [default: never].
        #[arg(long, value_parser = parse_instant_text)]
        expires: Option<String>,
        /// The `source` values it may send [default: NAME]; repeat or separate by commas.
        #[arg(long = "source", value_delimiter = ',')]
        sources: Vec<String>,
        /// The event types it may send [default: every type of the plan]; repeat or
        /// separate by commas.
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Validate a plan file and print a summary of its KPIs by chapter, with targets.
    Check {
        /// Plan file [default: the shipped Ome plan].
        file: Option<PathBuf>,
    },
}

/// Flags every serving role shares: the plan, the clock and how often figures move.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Plan file [default: the shipped Ome plan].
    #[arg(long, env = "MIERUKA_PLAN")]
    pub plan: Option<PathBuf>,
    /// Take this instant as "now" (RFC 3339) instead of the wall clock, for reproducible runs.
    #[arg(long, env = "MIERUKA_NOW", value_parser = parse_now)]
    pub now: Option<Timestamp>,
    /// Seconds between snapshot refreshes while no events arrive [default: 60].
    #[arg(long, env = "MIERUKA_REFRESH_SECONDS")]
    pub refresh_seconds: Option<u64>,
}

/// Flags of `standalone` and `demo`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9464].
    #[arg(long, env = "MIERUKA_LISTEN")]
    pub listen: Option<String>,
    /// SQLite file [default: data/mieruka.db; demo: data/demo.db, recreated].
    #[arg(long, env = "MIERUKA_DB")]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// Flags of the production roles (the config file's `[kafka]` and `[store]` give the rest).
#[derive(Args, Debug, Clone)]
pub struct RoleArgs {
    /// Address to listen on [default: ingest 127.0.0.1:8080, aggregate 127.0.0.1:9465, export 127.0.0.1:9464].
    #[arg(long, env = "MIERUKA_LISTEN")]
    pub listen: Option<String>,
    /// PostgreSQL URL [default: the config's [store] url]; `ingest` keeps its refusals
    /// there.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Kafka bootstrap servers [default: the config's [kafka] brokers].
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// Who closes or reopens a fiscal year, and why (kept in the store's close log).
#[derive(Args, Debug)]
pub struct CloseArgs {
    /// Why, in the operator's words (e.g. "決算確定 council 2026-06-20").
    #[arg(long)]
    pub note: String,
    /// Who does it [default: $USER, else $LOGNAME].
    #[arg(long)]
    pub by: Option<String>,
}

impl CloseArgs {
    /// The request for `fy` at `now`; `--by`, else `$USER`, names the operator.
    pub fn request(self, fy: i32, now: Timestamp) -> anyhow::Result<CloseRequest> {
        let operator = match self
            .by
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
        {
            Some(name) if !name.trim().is_empty() => name,
            _ => anyhow::bail!("who does it? pass --by NAME (neither $USER nor $LOGNAME is set)"),
        };
        if self.note.trim().is_empty() {
            anyhow::bail!("--note is empty: say why the year is closed or reopened");
        }
        Ok(CloseRequest {
            year: FiscalYear(fy),
            now,
            operator,
            note: self.note,
        })
    }
}

/// Where a command that reads the figures finds them: the SQLite file, or PostgreSQL
/// when a URL is given; the plan; and "now".
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// SQLite file [default: data/mieruka.db].
    #[arg(long, env = "MIERUKA_DB")]
    pub db: Option<PathBuf>,
    /// PostgreSQL URL [default: the config's [store] url].
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Plan file [default: the shipped Ome plan].
    #[arg(long, env = "MIERUKA_PLAN")]
    pub plan: Option<PathBuf>,
    /// Take this instant as "now" (RFC 3339) instead of the wall clock.
    #[arg(long, env = "MIERUKA_NOW", value_parser = parse_now)]
    pub now: Option<Timestamp>,
}

impl StoreArgs {
    /// These flags, for [`mieruka::config::resolve`].
    pub fn flags(self) -> Flags {
        Flags {
            db: self.db,
            database_url: self.database_url,
            plan: self.plan,
            now: self.now,
            ..Flags::default()
        }
    }
}

impl PlanArgs {
    /// These flags, for [`mieruka::config::resolve`].
    fn flags(&self) -> Flags {
        Flags {
            plan: self.plan.clone(),
            now: self.now,
            refresh_seconds: self.refresh_seconds,
            ..Flags::default()
        }
    }
}

impl ServeArgs {
    /// The flags, for [`mieruka::config::resolve`].
    pub fn flags(&self) -> Flags {
        Flags {
            listen: self.listen.clone(),
            db: self.db.clone(),
            ..self.plan.flags()
        }
    }
}

impl RoleArgs {
    /// The flags, for [`mieruka::config::resolve`].
    pub fn flags(&self) -> Flags {
        Flags {
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            brokers: self.brokers.clone(),
            ..self.plan.flags()
        }
    }
}

/// `--expires`: an RFC 3339 instant, kept as written (its offset is the reader's).
pub fn parse_instant_text(s: &str) -> Result<String, String> {
    parse_now(s).map(|_| s.trim().to_owned())
}

/// `--now`: an RFC 3339 instant.
pub fn parse_now(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| e.to_string())
}

/// `--as-of`: a calendar day, `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Result<mieruka_aggregator::Day, String> {
    s.parse()
        .map_err(|e: mieruka_aggregator::fiscal::DayError| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// The `mieruka …` command lines of the README's shell examples, continuation lines
    /// joined and comments cut, with the program name first.
    fn readme_commands() -> Vec<Vec<String>> {
        let readme = include_str!("../README.md");
        let mut commands = Vec::new();
        let mut in_shell = false;
        let mut pending = String::new();
        for line in readme.lines() {
            if line.starts_with("```") {
                in_shell = matches!(line.trim(), "```sh" | "```bash" | "```console");
                continue;
            }
            if !in_shell {
                continue;
            }
            let code = line.split(" #").next().unwrap_or("").trim_end();
            if let Some(head) = code.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(code);
            let words: Vec<String> = pending.split_whitespace().map(str::to_owned).collect();
            pending.clear();
            let args = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["mieruka", ..] => words[1..].to_vec(),
                ["cargo", "run", "--release", "--", ..] => words[4..].to_vec(),
                _ => continue,
            };
            let mut argv = vec!["mieruka".to_owned()];
            argv.extend(args);
            commands.push(argv);
        }
        commands
    }

    #[test]
    fn every_command_line_of_the_readme_parses() {
        let commands = readme_commands();
        assert!(commands.len() >= 8, "too few commands found: {commands:?}");
        for argv in commands {
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("the README's `{}` does not parse:\n{e}", argv.join(" "));
            }
        }
    }
}
