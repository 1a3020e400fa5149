//! Japan's national holidays (国民の祝日), substitute holidays (振替休日) and citizens'
//! holidays (国民の休日), by the rules of 「国民の祝日に関する法律」 as in force since 2022.
//!
//! Source: 内閣府「国民の祝日について」
//! (<https://www8.cao.go.jp/chosei/shukujitsu/gaiyou.html>), which publishes each year's
//! dates. [`PUBLISHED`] copies the years published when this table was written; later
//! years are computed by the law's rules, and a test checks that the computation gives
//! exactly the published years. The equinox days (春分の日, 秋分の日) are fixed each
//! February by the Cabinet Office from the National Astronomical Observatory's
//! ephemeris; the standard approximation formula used here agrees with it throughout
//! 2000–2099, so a year whose equinox the formula gets wrong would have to be added to
//! [`PUBLISHED`]. Years outside [`YEARS`] have no holidays here (weekends and the
//! year-end closure still apply).

use std::ops::RangeInclusive;

use mieruka_ingest::timestamp::days_from_civil;

use super::weekday;

/// The years the rules are computed for: the law's current form dates from 2022 (the
/// 2020–2021 Olympic moves are over) and the equinox formula holds until 2099.
pub const YEARS: RangeInclusive<i32> = 2022..=2099;

/// The dates (month, day) published by the Cabinet Office, by year.
pub const PUBLISHED: &[(i32, &[(u32, u32)])] = &[
    (
        2025,
        &[
            (1, 1),
            (1, 13),
            (2, 11),
            (2, 23),
            (2, 24),
            (3, 20),
            (4, 29),
            (5, 3),
            (5, 4),
            (5, 5),
            (5, 6),
            (7, 21),
            (8, 11),
            (9, 15),
            (9, 23),
            (10, 13),
            (11, 3),
            (11, 23),
            (11, 24),
        ],
    ),
    (
        2026,
        &[
            (1, 1),
            (1, 12),
            (2, 11),
            (2, 23),
            (3, 20),
            (4, 29),
            (5, 3),
            (5, 4),
            (5, 5),
            (5, 6),
            (7, 20),
            (8, 11),
            (9, 21),
            (9, 22),
            (9, 23),
            (10, 12),
            (11, 3),
            (11, 23),
        ],
    ),
];

/// The holidays of `year`, as day numbers (days since 1970-01-01), sorted: the
/// published dates where the year is in [`PUBLISHED`], else the law's rules.
pub fn holidays(year: i32) -> Vec<i64> {
    match PUBLISHED.iter().find(|(y, _)| *y == year) {
        Some((_, dates)) => dates
            .iter()
            .map(|&(m, d)| days_from_civil(year, m, d))
            .collect(),
        None => computed(year),
    }
}

/// Whether the day number `day` of `year` is a holiday.
pub fn is_holiday(year: i32, day: i64) -> bool {
    holidays(year).binary_search(&day).is_ok()
}

/// The holidays of `year` by the law's rules (empty outside [`YEARS`]).
pub fn computed(year: i32) -> Vec<i64> {
    if !YEARS.contains(&year) {
        return Vec::new();
    }
    let on = |m: u32, d: u32| days_from_civil(year, m, d);
    let mut national = vec![
        on(1, 1),                          // 元日
        nth_monday(year, 1, 2),            // 成人の日
        on(2, 11),                         // 建国記念の日
        on(2, 23),                         // 天皇誕生日
        on(3, vernal_equinox_day(year)),   // 春分の日
        on(4, 29),                         // 昭和の日
        on(5, 3),                          // 憲法記念日
        on(5, 4),                          // みどりの日
        on(5, 5),                          // こどもの日
        nth_monday(year, 7, 3),            // 海の日
        on(8, 11),                         // 山の日
        nth_monday(year, 9, 3),            // 敬老の日
        on(9, autumnal_equinox_day(year)), // 秋分の日
        nth_monday(year, 10, 2),           // スポーツの日
        on(11, 3),                         // 文化の日
        on(11, 23),                        // 勤労感謝の日
    ];
    national.sort_unstable();
    let mut all = national.clone();
    // 振替休日: a holiday on a Sunday moves the day off to the next day that is not one.
    for &h in &national {
        if weekday(h) == 0 {
            let mut d = h + 1;
            while national.binary_search(&d).is_ok() {
                d += 1;
            }
            all.push(d);
        }
    }
    // 国民の休日: a day between two national holidays that is not one itself.
    for pair in national.windows(2) {
        if pair[1] - pair[0] == 2 && !all.contains(&(pair[0] + 1)) {
            all.push(pair[0] + 1);
        }
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// The `n`-th Monday of a month (Happy Monday holidays).
fn nth_monday(year: i32, month: u32, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    let to_monday = (8 - weekday(first)) % 7;
    first + to_monday + 7 * (n - 1)
}

/// 春分日 by the standard approximation (valid 1980–2099).
fn vernal_equinox_day(year: i32) -> u32 {
    equinox(20.8431, year)
}

/// 秋分日 by the standard approximation (valid 1980–2099).
fn autumnal_equinox_day(year: i32) -> u32 {
    equinox(23.2488, year)
}

fn equinox(base: f64, year: i32) -> u32 {
    let y = f64::from(year - 1980);
    (base + 0.242_194 * y - (y / 4.0).floor()).floor() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(year: i32, days: &[i64]) -> Vec<(u32, u32)> {
        days.iter()
            .map(|&d| {
                let (y, m, dd) = mieruka_ingest::timestamp::civil_from_days(d);
                assert_eq!(y, year);
                (m, dd)
            })
            .collect()
    }

    #[test]
    fn the_rules_give_exactly_the_published_years() {
        for (year, dates) in PUBLISHED {
            assert_eq!(md(*year, &computed(*year)), dates.to_vec(), "{year}");
        }
    }

    #[test]
    fn the_2026_holidays_include_a_substitute_and_a_citizens_holiday() {
        // 5/3 is a Sunday (振替休日 on 5/6); 9/22 lies between 敬老の日 and 秋分の日.
        let h = computed(2026);
        assert!(h.contains(&days_from_civil(2026, 5, 6)));
        assert!(h.contains(&days_from_civil(2026, 9, 22)));
        assert!(!h.contains(&days_from_civil(2026, 9, 24)));
    }

    #[test]
    fn later_years_follow_the_rules() {
        // 2027: 3/21 春分 (a Sunday, so 3/22 off), 9/23 秋分; 2028: 3/20, 9/22.
        let h27 = md(2027, &computed(2027));
        for d in [
            (1, 11),
            (3, 21),
            (3, 22),
            (7, 19),
            (9, 20),
            (9, 23),
            (10, 11),
        ] {
            assert!(h27.contains(&d), "2027 {d:?}");
        }
        let h28 = md(2028, &computed(2028));
        for d in [(1, 10), (3, 20), (7, 17), (9, 18), (9, 22), (10, 9)] {
            assert!(h28.contains(&d), "2028 {d:?}");
        }
        // 2029-03: 春分 on 3/20.
        assert!(md(2029, &computed(2029)).contains(&(3, 20)));
    }

    #[test]
    fn years_outside_the_rules_have_no_holidays() {
        assert!(computed(2021).is_empty());
        assert!(computed(2100).is_empty());
    }
}
