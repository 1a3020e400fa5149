//! When a feed is expected: office calendars (the days a line system is open) and each
//! source's cadence, from which the exporter publishes
//! `mieruka_source_next_due_timestamp_seconds` — the instant by which the next arrival
//! is due — so that `MierukaFeedSilent` stays quiet over weekends, national holidays
//! and the year-end closure, and lets a monthly feed be silent all month.
//!
//! Days are civil dates in Asia/Tokyo, held as day numbers (days since 1970-01-01). A
//! due day is open on its whole: the next arrival is due by the end of it (00:00 JST
//! of the day after).

pub mod holidays;

use std::collections::BTreeSet;

use mieruka_ingest::timestamp::{civil_from_days, days_from_civil, days_in_month};

/// Seconds Japan Standard Time is ahead of UTC (no daylight saving).
const JST_OFFSET_SECONDS: i64 = 9 * 3600;

/// Seconds in a day.
const DAY_SECONDS: i64 = 86_400;

/// Longest run of closed days a due day is moved over before the calendar is taken to
/// be wrong and the nominal day kept: the year-end closure plus a weekend and a few
/// city closures is well under this, while a calendar closed every day would otherwise
/// loop for ever.
const MAX_CLOSED_RUN: i64 = 60;

/// The weekday of a day number: 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday).
pub fn weekday(day: i64) -> i64 {
    (day + 4).rem_euclid(7)
}

/// The day number (JST) that a Unix instant falls on.
pub fn jst_day(unix_seconds: f64) -> i64 {
    (unix_seconds.floor() as i64 + JST_OFFSET_SECONDS).div_euclid(DAY_SECONDS)
}

/// The Unix instant at which the JST day `day` ends (00:00 JST of the next day).
pub fn end_of_jst_day(day: i64) -> i64 {
    (day + 1) * DAY_SECONDS - JST_OFFSET_SECONDS
}

/// The days a line system (and the office that runs it) works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// Closed on Saturdays and Sundays.
    pub weekends: bool,
    /// Closed on national holidays, substitute and citizens' holidays
    /// ([`holidays`]).
    pub holidays: bool,
    /// Closed over the year-end and new-year holidays, 12/29–1/3 (年末年始, by the
    /// city's ordinance on its offices' closed days).
    pub new_year: bool,
    /// The city's own closed days (day numbers), e.g. a system migration weekend.
    pub closures: BTreeSet<i64>,
}

impl Calendar {
    /// The city office's calendar: closed at weekends, on holidays and over 12/29–1/3.
    pub fn office() -> Self {
        Self {
            weekends: true,
            holidays: true,
            new_year: true,
            closures: BTreeSet::new(),
        }
    }

    /// Whether the line system works on `day`.
    pub fn is_open(&self, day: i64) -> bool {
        let (year, month, dom) = civil_from_days(day);
        let wd = weekday(day);
        !(self.weekends && (wd == 0 || wd == 6)
            || self.holidays && holidays::is_holiday(year, day)
            || self.new_year && (month == 12 && dom >= 29 || month == 1 && dom <= 3)
            || self.closures.contains(&day))
    }

    /// `day` if open, else the next open day.
    fn open_on_or_after(&self, day: i64) -> i64 {
        (day..day + MAX_CLOSED_RUN)
            .find(|&d| self.is_open(d))
            .unwrap_or(day)
    }
}

/// How often a source is expected to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// Every office working day (weekends and holidays closed, whatever the calendar
    /// says, plus the calendar's own closed days).
    BusinessDaily,
    /// Every open day of the source's calendar.
    Daily,
    /// A week after the last arrival, or every given weekday (0 = Sunday … 6).
    Weekly(Option<i64>),
    /// Every month on this day (31: the month's last day, whatever its length).
    Monthly(u32),
    /// Every year on this month and day.
    Yearly(u32, u32),
}

impl Cadence {
    /// How people say it, in Japanese and English (for alert texts).
    pub fn describe(&self) -> (String, String) {
        const JA: [&str; 7] = ["日", "月", "火", "水", "木", "金", "土"];
        const EN: [&str; 7] = [
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ];
        match *self {
            Cadence::BusinessDaily => ("開庁日ごと".into(), "every working day".into()),
            Cadence::Daily => ("毎日".into(), "daily".into()),
            Cadence::Weekly(None) => ("毎週".into(), "weekly".into()),
            Cadence::Weekly(Some(wd)) => {
                let i = wd.rem_euclid(7) as usize;
                (format!("毎週{}曜", JA[i]), format!("every {}", EN[i]))
            }
            Cadence::Monthly(31) => ("毎月末".into(), "at each month's end".into()),
            Cadence::Monthly(d) => (format!("毎月{d}日"), format!("monthly on day {d}")),
            Cadence::Yearly(m, d) => (
                format!("毎年{m}月{d}日"),
                format!("yearly on {m:02}-{d:02}"),
            ),
        }
    }
}

/// A source's cadence on its calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// How often it sends.
    pub cadence: Cadence,
    /// The days it works; a due day that falls on a closed one moves to the next open one.
    pub calendar: Calendar,
}

impl Schedule {
    /// The Unix instant by which the next arrival is due after one at `last_arrival`.
    ///
    /// Daily cadences: the end of the first open day after the arrival's day. A weekly
    /// cadence without a weekday: the end of the open day on or after a week later.
    /// Cadences on fixed days (a weekday, a day of the month, of the year): the arrival
    /// answers the due day nearest to it (so a monthly file sent two days early or five
    /// days late counts for its own month), and the next one is due after that.
    pub fn next_due(&self, last_arrival: f64) -> i64 {
        let day = jst_day(last_arrival);
        let due = match self.cadence {
            Cadence::BusinessDaily => self.open_on_or_after(day + 1),
            Cadence::Daily => self.calendar.open_on_or_after(day + 1),
            Cadence::Weekly(None) => self.calendar.open_on_or_after(day + 7),
            _ => self.after_nearest_due(day),
        };
        end_of_jst_day(due)
    }

    /// `day` if it is open (for business-daily, also a weekday and not a holiday), else
    /// the next such day.
    fn open_on_or_after(&self, day: i64) -> i64 {
        let office = Calendar::office();
        (day..day + MAX_CLOSED_RUN)
            .find(|&d| self.calendar.is_open(d) && office.is_open(d))
            .unwrap_or(day)
    }

    /// For cadences on fixed days: the due day after the one nearest to `day`.
    fn after_nearest_due(&self, day: i64) -> i64 {
        // Start a period and a closed run before `day`, so the due day before it is seen.
        let mut nominal = self.nominal_after(day - self.period_days() - MAX_CLOSED_RUN);
        let mut previous: Option<i64> = None;
        loop {
            let due = self.calendar.open_on_or_after(nominal);
            if due >= day {
                let nearest_is_previous = previous.is_some_and(|p| day - p < due - day);
                if nearest_is_previous {
                    return due;
                }
                // `due` is answered: the next distinct due day is the one expected.
                let mut n = nominal;
                loop {
                    n = self.nominal_after(n);
                    let next = self.calendar.open_on_or_after(n);
                    if next > due {
                        return next;
                    }
                }
            }
            previous = Some(due);
            nominal = self.nominal_after(nominal);
        }
    }

    /// The longest gap between two nominal due days.
    fn period_days(&self) -> i64 {
        match self.cadence {
            Cadence::BusinessDaily | Cadence::Daily => 1,
            Cadence::Weekly(_) => 7,
            Cadence::Monthly(_) => 31,
            Cadence::Yearly(..) => 366,
        }
    }

    /// The first nominal due day strictly after `day` (fixed-day cadences).
    fn nominal_after(&self, day: i64) -> i64 {
        let (year, month, _) = civil_from_days(day);
        match self.cadence {
            Cadence::Weekly(Some(wd)) => day + 1 + (wd - weekday(day + 1)).rem_euclid(7),
            Cadence::Monthly(dom) => {
                let this = month_day(year, month, dom);
                if this > day {
                    this
                } else {
                    let (y, m) = if month == 12 {
                        (year + 1, 1)
                    } else {
                        (year, month + 1)
                    };
                    month_day(y, m, dom)
                }
            }
            Cadence::Yearly(m, d) => {
                let this = month_day(year, m, d);
                if this > day {
                    this
                } else {
                    month_day(year + 1, m, d)
                }
            }
            Cadence::BusinessDaily | Cadence::Daily | Cadence::Weekly(None) => day + 1,
        }
    }
}

/// Day `dom` of a month, clamped to its last day.
fn month_day(year: i32, month: u32, dom: u32) -> i64 {
    days_from_civil(year, month, dom.min(days_in_month(year, month)))
}

#[cfg(test)]
mod tests;
