//! The plan file as written: the serde structs of its TOML, before any checking.
//!
//! Nothing here is trusted: `compile` turns these into the model, reporting every
//! problem with its line. Strings stay `Spanned` where an error must point at them.

use std::collections::BTreeMap;

use mieruka_ingest::schema::EventTypeDecl;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanFile {
    pub(super) plan: Header,
    pub(super) chapters: BTreeMap<String, Chapter>,
    #[serde(default)]
    pub(super) event_types: BTreeMap<String, EventTypeDecl>,
    #[serde(default)]
    pub(super) measures: BTreeMap<String, MeasureDecl>,
    #[serde(default)]
    pub(super) kpi: Vec<KpiDecl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub(super) id: String,
    pub(super) name_ja: String,
    pub(super) name_en: String,
    #[serde(default)]
    pub(super) city: String,
    pub(super) baseline_year: i32,
    pub(super) first_year: i32,
    pub(super) last_year: i32,
}

/// A chapter of the plan (the `chapter` label of each KPI).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chapter {
    /// Japanese title, e.g. 行政サービスを変える.
    pub name_ja: String,
    /// English title.
    pub name_en: String,
    /// Filled in from the table key.
    #[serde(skip)]
    pub id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MeasureDecl {
    pub(super) kind: Spanned<String>,
    #[serde(rename = "type")]
    pub(super) event_type: Option<Spanned<String>>,
    pub(super) field: Option<Spanned<String>>,
    #[serde(default, rename = "where")]
    pub(super) filter: BTreeMap<String, Spanned<FilterValues>>,
    #[serde(default)]
    pub(super) increase: Vec<TermDecl>,
    #[serde(default)]
    pub(super) decrease: Vec<TermDecl>,
    pub(super) reset: Option<TermDecl>,
    #[serde(default)]
    pub(super) description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TermDecl {
    #[serde(rename = "type")]
    pub(super) event_type: Spanned<String>,
    pub(super) field: Option<Spanned<String>>,
    #[serde(default, rename = "where")]
    pub(super) filter: BTreeMap<String, Spanned<FilterValues>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum FilterValues {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KpiDecl {
    pub(super) id: Spanned<String>,
    pub(super) name_ja: String,
    pub(super) name_en: String,
    pub(super) chapter: Spanned<String>,
    pub(super) unit: String,
    pub(super) counter_ja: Option<Spanned<String>>,
    pub(super) direction: Spanned<String>,
    pub(super) kind: Spanned<String>,
    pub(super) measure: Option<Spanned<String>>,
    pub(super) numerator: Option<Spanned<String>>,
    pub(super) denominator: Option<Spanned<String>>,
    pub(super) scale: Option<f64>,
    pub(super) baseline: Option<Spanned<TargetDecl>>,
    #[serde(default)]
    pub(super) targets: BTreeMap<String, Spanned<TargetDecl>>,
    #[serde(default)]
    pub(super) tolerance: f64,
    #[serde(default)]
    pub(super) stages: Vec<StageDecl>,
    #[serde(default)]
    pub(super) due: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) revisions: Vec<RevisionDecl>,
    #[serde(default)]
    pub(super) alert: AlertDecl,
    #[serde(default)]
    pub(super) source: String,
    #[serde(default)]
    pub(super) note: String,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum TargetDecl {
    Number(f64),
    Text(String),
}

/// A `[[kpi.revisions]]` entry: a year's target revised from a date on. Every field is
/// spanned (or optional) so that `revisions` reports what is wrong with its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevisionDecl {
    pub(super) fiscal_year: Spanned<i64>,
    pub(super) target: Spanned<f64>,
    /// A quoted `"YYYY-MM-DD"` or a bare TOML local date.
    pub(super) from: Spanned<toml::Value>,
    pub(super) decision: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct StageDecl {
    pub(super) id: String,
    pub(super) name_ja: String,
    #[serde(default)]
    pub(super) name_en: String,
}

/// Alerting knobs of a KPI (all optional; the defaults are documented in the format).
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct AlertDecl {
    /// How long a KPI must stay behind pace before the alert fires (Prometheus duration).
    #[serde(default = "default_for")]
    pub behind_for: String,
    /// Severity becomes critical past this multiple of the tolerance.
    #[serde(default = "default_critical")]
    pub critical_factor: f64,
}

fn default_for() -> String {
    "7d".to_owned()
}

fn default_critical() -> f64 {
    2.0
}

impl Default for AlertDecl {
    fn default() -> Self {
        Self {
            behind_for: default_for(),
            critical_factor: default_critical(),
        }
    }
}
