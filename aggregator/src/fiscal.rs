//! The Japanese fiscal calendar: FY N runs from April 1 of N to March 31 of N+1,
//! counted in Asia/Tokyo (UTC+9, no daylight saving time).

use std::fmt;
use std::str::FromStr;

use mieruka_ingest::timestamp::{civil_from_days, days_from_civil, Timestamp};

/// Asia/Tokyo's offset from UTC, in seconds. Japan has no DST, so a fixed offset is exact.
pub const JST_OFFSET_SECONDS: i32 = 9 * 3600;

const DAY_MICROS: i64 = 86_400 * 1_000_000;
const JST_MICROS: i64 = JST_OFFSET_SECONDS as i64 * 1_000_000;

/// A Japanese fiscal year, named by the calendar year in which it starts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct FiscalYear(pub i32);

/// A calendar day in Asia/Tokyo, as days since 1970-01-01 (JST).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Day(pub i32);

impl FiscalYear {
    /// The fiscal year an instant falls in.
    pub fn of(t: Timestamp) -> Self {
        Day::of(t).fiscal_year()
    }

    /// The first instant of the year: April 1, 00:00 JST.
    pub fn start(self) -> Timestamp {
        self.first_day().start()
    }

    /// The first instant after the year: April 1 of the next year, 00:00 JST.
    pub fn end(self) -> Timestamp {
        FiscalYear(self.0 + 1).start()
    }

    /// April 1.
    pub fn first_day(self) -> Day {
        Day(days_from_civil(self.0, 4, 1) as i32)
    }

    /// March 31 of the next calendar year.
    pub fn last_day(self) -> Day {
        Day(FiscalYear(self.0 + 1).first_day().0 - 1)
    }

    /// How much of the year has elapsed at `now`, in seconds, clamped to [0, 1].
    pub fn elapsed_fraction(self, now: Timestamp) -> f64 {
        let (start, end) = (self.start().micros(), self.end().micros());
        ((now.micros() - start) as f64 / (end - start) as f64).clamp(0.0, 1.0)
    }
}

impl fmt::Display for FiscalYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Day {
    /// The JST day an instant falls on.
    pub fn of(t: Timestamp) -> Self {
        Day((t.micros() + JST_MICROS).div_euclid(DAY_MICROS) as i32)
    }

    /// 00:00 JST of this day.
    pub fn start(self) -> Timestamp {
        Timestamp::from_micros(i64::from(self.0) * DAY_MICROS - JST_MICROS)
    }

    /// The fiscal year this day belongs to.
    pub fn fiscal_year(self) -> FiscalYear {
        let (y, m, _) = civil_from_days(i64::from(self.0));
        FiscalYear(if m >= 4 { y } else { y - 1 })
    }

    /// (year, month, day) in the calendar.
    pub fn civil(self) -> (i32, u32, u32) {
        civil_from_days(i64::from(self.0))
    }
}

/// A day written `YYYY-MM-DD` (a date in the plan) that is not a calendar day.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected a date YYYY-MM-DD")]
pub struct DayError(pub String);

impl FromStr for Day {
    type Err = DayError;

    /// Reads `YYYY-MM-DD`; only a real calendar day written in that form is one.
    fn from_str(s: &str) -> Result<Self, DayError> {
        Timestamp::parse_rfc3339(&format!("{s}T00:00:00+09:00"))
            .map(Day::of)
            .ok()
            .filter(|d| format!("{d}").as_str() == s)
            .ok_or_else(|| DayError(s.to_owned()))
    }
}

/// A day equals its `YYYY-MM-DD` text (as the plan writes it).
impl PartialEq<str> for Day {
    fn eq(&self, other: &str) -> bool {
        format!("{self}").as_str() == other
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn the_last_second_of_march_31_in_tokyo_belongs_to_the_previous_fiscal_year() {
        assert_eq!(
            FiscalYear::of(ts("2027-03-31T23:59:59+09:00")),
            FiscalYear(2026)
        );
    }

    #[test]
    fn fifteen_hundred_utc_on_march_31_is_already_april_in_tokyo() {
        assert_eq!(FiscalYear::of(ts("2027-03-31T15:00:00Z")), FiscalYear(2027));
        assert_eq!(FiscalYear::of(ts("2027-03-31T14:59:59Z")), FiscalYear(2026));
    }

    #[test]
    fn a_fiscal_year_starts_at_midnight_tokyo_on_april_1() {
        assert_eq!(FiscalYear(2026).start(), ts("2026-04-01T00:00:00+09:00"));
        assert_eq!(FiscalYear(2026).end(), ts("2027-04-01T00:00:00+09:00"));
        assert_eq!(FiscalYear(2026).last_day().to_string(), "2027-03-31");
    }

    #[test]
    fn the_elapsed_fraction_counts_seconds_and_fy2027_has_366_days() {
        let fy = FiscalYear(2027);
        let days = fy.last_day().0 - fy.first_day().0 + 1;
        assert_eq!(days, 366);
        let half = Timestamp::from_micros((fy.start().micros() + fy.end().micros()) / 2);
        assert!((fy.elapsed_fraction(half) - 0.5).abs() < 1e-12);
        assert_eq!(fy.elapsed_fraction(ts("2020-01-01T00:00:00Z")), 0.0);
        assert_eq!(fy.elapsed_fraction(ts("2030-01-01T00:00:00Z")), 1.0);
    }

    #[test]
    fn a_plan_date_is_a_day_and_only_a_real_one() {
        let day: Day = "2027-03-31".parse().unwrap();
        assert_eq!(day, FiscalYear(2026).last_day());
        assert!(day == *"2027-03-31");
        for bad in [
            "2027-02-30",
            "2027-3-31",
            "31.03.2027",
            "2027-03-31T00:00",
            "",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_instant_lies_inside_its_fiscal_year(secs in 0i64..4_102_444_800) {
            let t = Timestamp::from_unix_seconds(secs);
            let fy = FiscalYear::of(t);
            prop_assert!(fy.start() <= t && t < fy.end());
            let day = Day::of(t);
            prop_assert!(day.start() <= t && t < Day(day.0 + 1).start());
            prop_assert_eq!(day.fiscal_year(), fy);
        }
    }
}
