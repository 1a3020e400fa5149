//! `[calendars.NAME]` and `[sources.NAME]`: the days each line system works and how often
//! each source sends, from which the exporter publishes when a source is next due and
//! `mieruka rules` writes the silence alerts (see docs/calendar.md).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use mieruka_aggregator::Day;
use mieruka_exporter::calendar::{Cadence, Calendar, Schedule};
use mieruka_exporter::feeds::SourceDirectory;
use mieruka_exporter::rules::{parse_duration, RulesOptions, ScheduledSource};
use serde::Deserialize;

use super::Config;

/// The calendar a source gets when it names none, and the one built in under this name.
pub const OFFICE_CALENDAR: &str = "office";

/// A built-in calendar open every day (a feed that runs all year round).
pub const ALWAYS_CALENDAR: &str = "always";

/// How long past its due instant (the end of the due day, JST) a source may stay silent
/// before `MierukaFeedSilent` fires: a nightly batch that lands in the small hours is
/// not late, and the alert is there when the office opens.
pub const DEFAULT_GRACE: &str = "6h";

/// `[calendars.NAME]`: the days a line system works (every key defaults to the office's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// Closed on Saturdays and Sundays (default true).
    pub weekends: Option<bool>,
    /// Closed on Japan's national holidays (default true).
    pub holidays: Option<bool>,
    /// Closed over 12/29–1/3 (default true).
    pub new_year: Option<bool>,
    /// The city's own closed days, `YYYY-MM-DD`.
    #[serde(default)]
    pub closures: Vec<String>,
}

/// `[sources.NAME]`: one source's settings, which tokens, topics and inboxes refer to by
/// its name (the `source` of its events).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The name people know the line system by (e.g. "住民記録システム").
    pub name: Option<String>,
    /// `business-daily`, `daily`, `weekly`, `monthly` or `yearly`.
    pub cadence: Option<String>,
    /// `weekly`: the weekday it sends on (`mon` … `sun`; default: a week after the last).
    pub weekday: Option<String>,
    /// `monthly`, `yearly`: the day of the month (31: the month's last day).
    pub day: Option<u32>,
    /// `yearly`: the month.
    pub month: Option<u32>,
    /// A `[calendars.NAME]` or a built-in (`office`, `always`); default `office`.
    pub calendar: Option<String>,
    /// How long past the due day's end before the alert (default 6h).
    pub grace: Option<String>,
}

impl CalendarConfig {
    fn calendar(&self, name: &str) -> anyhow::Result<Calendar> {
        let office = Calendar::office();
        let mut closures = BTreeSet::new();
        for date in &self.closures {
            let day: Day = date.parse().with_context(|| {
                format!("[calendars.{name}] closures: {date:?} is not a date (YYYY-MM-DD)")
            })?;
            closures.insert(i64::from(day.0));
        }
        Ok(Calendar {
            weekends: self.weekends.unwrap_or(office.weekends),
            holidays: self.holidays.unwrap_or(office.holidays),
            new_year: self.new_year.unwrap_or(office.new_year),
            closures,
        })
    }
}

impl SourceConfig {
    /// The cadence, checked: each kind takes exactly the keys it needs.
    fn cadence(&self, source: &str) -> anyhow::Result<Option<Cadence>> {
        let Some(kind) = self.cadence.as_deref() else {
            return Ok(None);
        };
        let at = || format!("[sources.{source}]");
        let day = |max: u32| -> anyhow::Result<u32> {
            match self.day {
                Some(d) if (1..=max).contains(&d) => Ok(d),
                Some(d) => bail!("{}: day {d} is not between 1 and {max}", at()),
                None => bail!("{}: cadence {kind:?} needs a `day`", at()),
            }
        };
        let cadence = match kind {
            "business-daily" => Cadence::BusinessDaily,
            "daily" => Cadence::Daily,
            "weekly" => Cadence::Weekly(self.weekday.as_deref().map(weekday).transpose()?),
            "monthly" => Cadence::Monthly(day(31)?),
            "yearly" => match self.month {
                Some(m) if (1..=12).contains(&m) => Cadence::Yearly(m, day(31)?),
                _ => bail!("{}: cadence \"yearly\" needs a `month` (1–12)", at()),
            },
            other => bail!(
                "{}: unknown cadence {other:?} (expected one of: business-daily, daily, weekly, monthly, yearly)",
                at()
            ),
        };
        let stray = match cadence {
            Cadence::Weekly(_) => self.day.is_some() || self.month.is_some(),
            Cadence::Monthly(_) => self.weekday.is_some() || self.month.is_some(),
            Cadence::Yearly(..) => self.weekday.is_some(),
            Cadence::BusinessDaily | Cadence::Daily => {
                self.weekday.is_some() || self.day.is_some() || self.month.is_some()
            }
        };
        if stray {
            bail!(
                "{}: `weekday`, `day` or `month` does not fit cadence {kind:?}",
                at()
            );
        }
        Ok(Some(cadence))
    }
}

/// `mon` … `sun` as 1 … 6, 0.
fn weekday(s: &str) -> anyhow::Result<i64> {
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|i| i as i64)
        .with_context(|| {
            format!(
                "unknown weekday {s:?} (expected one of: {})",
                DAYS.join(", ")
            )
        })
}

impl Config {
    /// Each calendar by name: the built-ins, then the config's (which may redefine them).
    fn calendars(&self) -> anyhow::Result<BTreeMap<String, Calendar>> {
        let always = Calendar {
            weekends: false,
            holidays: false,
            new_year: false,
            closures: BTreeSet::new(),
        };
        let mut all = BTreeMap::from([
            (OFFICE_CALENDAR.to_owned(), Calendar::office()),
            (ALWAYS_CALENDAR.to_owned(), always),
        ]);
        for (name, c) in &self.calendars {
            all.insert(name.clone(), c.calendar(name)?);
        }
        Ok(all)
    }

    /// The sources with a cadence, each with its schedule and the calendar's name.
    fn scheduled(&self) -> anyhow::Result<BTreeMap<String, (Schedule, String)>> {
        let calendars = self.calendars()?;
        let mut out = BTreeMap::new();
        for (source, s) in &self.sources {
            let Some(cadence) = s.cadence(source)? else {
                continue;
            };
            if self.rules.cadence.contains_key(source) {
                bail!("source {source:?} has a cadence in both [sources.{source}] and [rules] cadence: keep one");
            }
            let name = s
                .calendar
                .clone()
                .unwrap_or_else(|| OFFICE_CALENDAR.to_owned());
            let calendar = calendars.get(&name).cloned().with_context(|| {
                format!("[sources.{source}] calendar {name:?} is not defined (add [calendars.{name}], or use office or always)")
            })?;
            out.insert(source.clone(), (Schedule { cadence, calendar }, name));
        }
        Ok(out)
    }

    /// Every configured source as the pages name it: the types its tokens, topics and
    /// inboxes allow, its `[sources.NAME]` display name, and its cadence and calendar.
    pub fn source_directory(&self) -> anyhow::Result<SourceDirectory> {
        let mut d = SourceDirectory::default();
        for t in &self.tokens {
            d.allow(&t.sources, &t.types);
        }
        for a in self.kafka.iter().flat_map(|k| k.topic_allow.values()) {
            d.allow(&a.sources, &a.types);
        }
        for i in &self.inbox {
            d.allow(&i.sources, &i.types);
        }
        for source in self.rules.cadence.keys() {
            d.sources.entry(source.clone()).or_default();
        }
        let scheduled = self.scheduled()?;
        for (source, s) in &self.sources {
            let info = d.sources.entry(source.clone()).or_default();
            info.display_name.clone_from(&s.name);
            if let Some((schedule, calendar)) = scheduled.get(source) {
                let (ja, en) = schedule.cadence.describe();
                info.cadence = Some((
                    format!("{ja}（{calendar} カレンダー）"),
                    format!("{en}, {calendar} calendar"),
                ));
            }
        }
        Ok(d)
    }

    /// Each scheduled source's schedule, for the exporter's next-due instants.
    pub fn schedules(&self) -> anyhow::Result<BTreeMap<String, Schedule>> {
        Ok(self
            .scheduled()?
            .into_iter()
            .map(|(source, (schedule, _))| (source, schedule))
            .collect())
    }

    /// The options of `mieruka rules`: `[rules]`, and a silence alert on the next-due
    /// instant for each source with a cadence in `[sources]`.
    pub fn rules_options(&self) -> anyhow::Result<RulesOptions> {
        let mut o = self.rules.options();
        for (source, (schedule, calendar)) in self.scheduled()? {
            let s = &self.sources[&source];
            let grace = s.grace.clone().unwrap_or_else(|| DEFAULT_GRACE.to_owned());
            parse_duration(&grace)
                .map_err(|e| anyhow::anyhow!("[sources.{source}] grace {grace:?}: {e}"))?;
            let (ja, en) = schedule.cadence.describe();
            o.scheduled.insert(
                source,
                ScheduledSource {
                    display_name: s.name.clone(),
                    expected_ja: format!("{ja}、{calendar} カレンダー"),
                    expected_en: format!("{en}, {calendar} calendar"),
                    grace,
                },
            );
        }
        o.validate()
            .map_err(|e| anyhow::anyhow!("[rules] in the config: {e}"))?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mieruka_ingest::timestamp::days_from_civil;

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_month_end_source_on_the_office_calendar() {
        let cfg = config("[sources.juki]\nname = \"住民記録\"\ncadence = \"monthly\"\nday = 31\n");
        let s = &cfg.schedules().unwrap()["juki"];
        assert_eq!(s.cadence, Cadence::Monthly(31));
        assert_eq!(s.calendar, Calendar::office());
        let o = cfg.rules_options().unwrap();
        assert_eq!(o.scheduled["juki"].grace, DEFAULT_GRACE);
        assert_eq!(
            o.scheduled["juki"].display_name.as_deref(),
            Some("住民記録")
        );
    }

    #[test]
    fn a_convenience_store_calendar_opens_weekends_and_holidays() {
        let cfg = config(
            "[calendars.konbini]\nweekends = false\nholidays = false\nclosures = [\"2026-06-15\"]\n\
             [sources.konbini]\ncadence = \"daily\"\ncalendar = \"konbini\"\n",
        );
        let cal = &cfg.schedules().unwrap()["konbini"].calendar;
        assert!(!cal.weekends && !cal.holidays && cal.new_year);
        assert!(cal.closures.contains(&days_from_civil(2026, 6, 15)));
    }

    #[test]
    fn the_pages_name_each_source_with_its_types_and_cadence() {
        let cfg = config(
            "[[tokens]]\nname = \"apps\"\ntoken = \"x\"\nsources = [\"apps\"]\ntypes = [\"app.registered\"]\n\
             [[tokens]]\nname = \"all\"\ntoken = \"y\"\nsources = [\"portal\"]\n\
             [sources.apps]\nname = \"市公式アプリ\"\ncadence = \"weekly\"\nweekday = \"mon\"\n",
        );
        let d = cfg.source_directory().unwrap();
        let apps = &d.sources["apps"];
        assert_eq!(apps.display_name.as_deref(), Some("市公式アプリ"));
        assert_eq!(
            apps.types
                .as_ref()
                .map(|t| t.iter().cloned().collect::<Vec<_>>()),
            Some(vec!["app.registered".to_owned()])
        );
        let (ja, en) = apps.cadence.clone().unwrap();
        assert!(
            ja.contains("毎週月曜") && en.contains("every Monday"),
            "{ja} {en}"
        );
        assert_eq!(d.sources["portal"].types, None);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("[sources.a]\ncadence = \"fortnightly\"\n", "unknown cadence \"fortnightly\""),
            ("[sources.a]\ncadence = \"monthly\"\n", "needs a `day`"),
            ("[sources.a]\ncadence = \"monthly\"\nday = 32\n", "day 32"),
            ("[sources.a]\ncadence = \"yearly\"\nday = 1\n", "needs a `month`"),
            ("[sources.a]\ncadence = \"daily\"\nday = 1\n", "does not fit"),
            ("[sources.a]\ncadence = \"weekly\"\nweekday = \"monday\"\n", "unknown weekday"),
            ("[sources.a]\ncadence = \"daily\"\ncalendar = \"shop\"\n", "calendar \"shop\" is not defined"),
            ("[calendars.c]\nclosures = [\"2026-02-30\"]\n[sources.a]\ncadence = \"daily\"\ncalendar = \"c\"\n", "not a date"),
            ("[sources.a]\ncadence = \"daily\"\n[rules]\ncadence = { a = \"2d\" }\n", "keep one"),
            ("[sources.a]\ncadence = \"daily\"\ngrace = \"soon\"\n", "grace"),
        ] {
            let e = format!("{:#}", config(text).rules_options().unwrap_err());
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
