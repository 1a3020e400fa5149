//! The feeds behind the figures: each configured source (`[sources.NAME]`) with the name
//! people know it by, the event types it may send, how often it is expected, when it was
//! last heard from and when its next arrival is due — and which of them feed a KPI.
//!
//! The status page lists every source; a KPI's page lists the sources behind it: those
//! whose tokens, topics or inboxes are limited to event types feeding the KPI's measures,
//! and those the year's events actually came from (a source allowed every type, such as
//! the demo's, is known to feed a KPI only by what it sent). Rendering only reads what
//! was prepared; nothing here touches the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use mieruka_aggregator::{KpiId, KpiKind, Plan};
use mieruka_ingest::Timestamp;

use crate::status_page::{esc, jst};

/// What the configuration says about one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// The name people know the line system by (`[sources.NAME] name`).
    pub display_name: Option<String>,
    /// The event types it may send, the union over the tokens, topics and inboxes that
    /// name it; `None` when one of them allows every type of the plan.
    pub types: Option<BTreeSet<String>>,
    /// Its cadence and calendar as people say them, (Japanese, English); `None`: no
    /// cadence configured (no next-due instant, no silence alert).
    pub cadence: Option<(String, String)>,
}

/// Every configured source by its label (the `source` of its events).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceDirectory {
    /// By source label.
    pub sources: BTreeMap<String, SourceInfo>,
}

impl SourceDirectory {
    /// Records that `sources` may send `types` (empty: every type of the plan), as a
    /// token, a topic's allow list or an inbox says.
    pub fn allow(&mut self, sources: &[String], types: &[String]) {
        for source in sources {
            let any = types.is_empty();
            match self.sources.get_mut(source) {
                None => {
                    let types = (!any).then(|| types.iter().cloned().collect());
                    self.sources.insert(
                        source.clone(),
                        SourceInfo {
                            types,
                            ..SourceInfo::default()
                        },
                    );
                }
                Some(info) if any => info.types = None,
                Some(info) => {
                    if let Some(t) = info.types.as_mut() {
                        t.extend(types.iter().cloned());
                    }
                }
            }
        }
    }

    /// How a source is named on a page: its display name with the label beside it, or
    /// the label alone (escaped HTML).
    pub fn name_html(&self, source: &str) -> String {
        match self
            .sources
            .get(source)
            .and_then(|s| s.display_name.as_deref())
        {
            Some(name) => format!(
                "{} <span class=\"source-id\" lang=\"en\">{}</span>",
                esc(name),
                esc(source)
            ),
            None => esc(source),
        }
    }

    /// How a source is named in plain text (a spreadsheet, a footnote): `住民記録システム
    /// (juki)`, or the label alone.
    pub fn name_text(&self, source: &str) -> String {
        match self
            .sources
            .get(source)
            .and_then(|s| s.display_name.as_deref())
        {
            Some(name) => format!("{name} ({source})"),
            None => source.to_owned(),
        }
    }

    /// The sources behind KPI `k`, sorted: every configured source limited to types
    /// that feed it, and every source in `seen` (those its events came from).
    pub fn feeding(&self, plan: &Plan, k: KpiId, seen: &[String]) -> Vec<String> {
        let types = kpi_types(plan, k);
        let mut out: BTreeSet<String> = self
            .sources
            .iter()
            .filter(|(_, s)| {
                s.types
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| types.contains(t)))
            })
            .map(|(name, _)| name.clone())
            .collect();
        out.extend(seen.iter().cloned());
        out.into_iter().collect()
    }
}

/// The event types whose events feed KPI `k`: those routed to its measures, and for a
/// milestone the types that carry stages. `event.voided` is left out: it takes back
/// events of any type.
pub fn kpi_types(plan: &Plan, k: KpiId) -> BTreeSet<String> {
    let kpi = &plan.kpis[k];
    let measures = kpi.measures();
    let milestone = matches!(kpi.kind, KpiKind::Milestone { .. });
    plan.schema
        .types()
        .iter()
        .enumerate()
        .filter(|(t, _)| {
            plan.routes[*t]
                .iter()
                .any(|r| measures.contains(&r.measure))
                || milestone && plan.milestone_fields[*t].is_some()
        })
        .map(|(_, ty)| ty.name.clone())
        .collect()
}

/// How fresh a source is, as the serving role knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FeedState {
    /// When one of its events last arrived, or an inbox listing it last finished a file
    /// (Unix seconds); `None`: never.
    pub last_arrival: Option<f64>,
    /// When its next arrival is due (Unix seconds, as
    /// `mieruka_source_next_due_timestamp_seconds`); `None` without a cadence or before
    /// a first arrival.
    pub next_due: Option<i64>,
}

/// Whether a feed is late, on time, or not scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Past its next-due instant with nothing new.
    Overdue,
    /// Its next arrival is not due yet.
    OnTime,
    /// Never heard from.
    Never,
    /// Heard from, but no cadence is configured, so nothing is due.
    Unscheduled,
}

impl Freshness {
    /// The state of a feed at `now`.
    pub fn of(state: &FeedState, now: Timestamp) -> Freshness {
        match (state.last_arrival, state.next_due) {
            (_, Some(due)) if now.unix_seconds() >= due => Freshness::Overdue,
            (_, Some(_)) => Freshness::OnTime,
            (None, None) => Freshness::Never,
            (Some(_), None) => Freshness::Unscheduled,
        }
    }

    /// (CSS class, Japanese, English).
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Freshness::Overdue => ("overdue", "期限超過", "Overdue"),
            Freshness::OnTime => ("on-track", "期限内", "On time"),
            Freshness::Never => ("no-data", "未受信", "Never received"),
            Freshness::Unscheduled => ("no-target", "頻度未設定", "No cadence"),
        }
    }
}

/// A table of `sources` (labels): display name, last arrival, cadence, next due and
/// whether it is overdue at `now` (`data-source="<label>"` and `data-freshness` on each
/// row). Writes a sentence instead when there are none.
pub fn write_feeds_table(
    h: &mut String,
    directory: &SourceDirectory,
    states: &BTreeMap<String, FeedState>,
    sources: &[String],
    now: Timestamp,
) {
    if sources.is_empty() {
        h.push_str(
            "<p>設定された送信元はありません。<span lang=\"en\">No configured source.</span></p>\n",
        );
        return;
    }
    h.push_str(
        "<table class=\"feeds\">\n<thead><tr><th>送信元<small>Source</small></th>\
         <th>最終受信<small>Last arrival</small></th><th>頻度<small>Cadence</small></th>\
         <th>次の期限<small>Next due</small></th><th>鮮度<small>Freshness</small></th></tr></thead>\n<tbody>\n",
    );
    for source in sources {
        let state = states.get(source).copied().unwrap_or_default();
        let fresh = Freshness::of(&state, now);
        let (class, ja, en) = fresh.words();
        let instant = |t: Option<f64>| {
            t.map_or_else(
                || "—".to_owned(),
                |s| jst(Timestamp::from_micros((s * 1e6) as i64)),
            )
        };
        let cadence = directory
            .sources
            .get(source)
            .and_then(|s| s.cadence.as_ref())
            .map_or_else(
                || "—".to_owned(),
                |(ja, en)| format!("{}<small lang=\"en\">{}</small>", esc(ja), esc(en)),
            );
        let _ = writeln!(
            h,
            "<tr data-source=\"{}\" data-freshness=\"{class}\"><td>{}</td>\
             <td data-label=\"最終受信 Last arrival\">{}</td>\
             <td data-label=\"頻度 Cadence\">{cadence}</td>\
             <td data-label=\"次の期限 Next due\">{}</td>\
             <td><span class=\"badge {class}\">{ja}<small lang=\"en\">{en}</small></span></td></tr>",
            esc(source),
            directory.name_html(source),
            instant(state.last_arrival),
            instant(state.next_due.map(|d| d as f64)),
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_kpi_is_fed_by_the_sources_limited_to_its_types_and_those_it_heard_from() {
        let plan = Plan::ome().unwrap();
        let k = plan.kpi_id("umepon_registrations").unwrap();
        assert!(kpi_types(&plan, k).contains("app.registered"));
        let mut directory = SourceDirectory::default();
        let only = |t: &[&str]| Some(t.iter().map(|s| (*s).to_owned()).collect());
        directory.sources.insert(
            "apps".into(),
            SourceInfo {
                display_name: Some("市公式アプリ".into()),
                types: only(&["app.registered", "app.users_snapshot"]),
                cadence: None,
            },
        );
        directory.sources.insert(
            "juki".into(),
            SourceInfo {
                types: only(&["population.snapshot"]),
                ..SourceInfo::default()
            },
        );
        directory
            .sources
            .insert("anything".into(), SourceInfo::default());
        assert_eq!(directory.feeding(&plan, k, &[]), ["apps"]);
        assert_eq!(
            directory.feeding(&plan, k, &["anything".to_owned()]),
            ["anything", "apps"]
        );
        assert_eq!(directory.name_text("apps"), "市公式アプリ (apps)");
        assert_eq!(directory.name_text("juki"), "juki");
    }

    #[test]
    fn a_milestone_is_fed_by_the_types_that_carry_stages() {
        let plan = Plan::ome().unwrap();
        let k = plan.kpi_id("el_qr_public_funds").unwrap();
        assert!(kpi_types(&plan, k).contains("milestone.reached"));
    }

    #[test]
    fn a_feed_is_overdue_from_its_due_instant() {
        let due = ts("2026-11-26T00:00:00+09:00").unix_seconds();
        let state = FeedState {
            last_arrival: Some(due as f64 - 86_400.0),
            next_due: Some(due),
        };
        let before = ts("2026-11-25T23:59:59+09:00");
        assert_eq!(Freshness::of(&state, before), Freshness::OnTime);
        let at = ts("2026-11-26T00:00:00+09:00");
        assert_eq!(Freshness::of(&state, at), Freshness::Overdue);
        assert_eq!(Freshness::of(&FeedState::default(), at), Freshness::Never);
        let mut h = String::new();
        let directory = SourceDirectory::default();
        let states = BTreeMap::from([("apps".to_owned(), state)]);
        write_feeds_table(&mut h, &directory, &states, &["apps".to_owned()], at);
        assert!(h.contains("data-freshness=\"overdue\""), "{h}");
        assert!(
            h.contains("期限超過") && h.contains("2026-11-26 00:00 JST"),
            "{h}"
        );
    }
}
