use super::*;

fn d(y: i32, m: u32, dd: u32) -> i64 {
    days_from_civil(y, m, dd)
}

/// A Unix instant at `h`:00 JST on a date.
fn at(y: i32, m: u32, dd: u32, h: i64) -> f64 {
    ((d(y, m, dd) * DAY_SECONDS) + h * 3600 - JST_OFFSET_SECONDS) as f64
}

fn due(cadence: Cadence, calendar: Calendar, last: f64) -> (i32, u32, u32) {
    let s = Schedule { cadence, calendar };
    let end = s.next_due(last);
    // The due instant is the end of a JST day: the day is the one just before it.
    civil_from_days(jst_day((end - 1) as f64))
}

fn konbini() -> Calendar {
    Calendar {
        weekends: false,
        holidays: false,
        ..Calendar::office()
    }
}

#[test]
fn a_business_daily_feed_sent_on_friday_is_next_due_on_monday() {
    // 2026-02-06 is a Friday.
    let last = at(2026, 2, 6, 18);
    assert_eq!(
        due(Cadence::BusinessDaily, Calendar::office(), last),
        (2026, 2, 9)
    );
}

#[test]
fn a_holiday_moves_the_due_day_to_the_next_open_one() {
    // 2026-02-10 (Tue) → 2/11 建国記念の日 → due 2/12.
    let last = at(2026, 2, 10, 18);
    assert_eq!(
        due(Cadence::BusinessDaily, Calendar::office(), last),
        (2026, 2, 12)
    );
    // Golden Week 2026: 4/30 (Thu) → 5/1 (Fri) open.
    let last = at(2026, 5, 1, 18);
    assert_eq!(
        due(Cadence::BusinessDaily, Calendar::office(), last),
        (2026, 5, 7)
    );
}

#[test]
fn business_daily_closes_weekends_even_on_an_open_calendar() {
    let last = at(2026, 2, 6, 18);
    assert_eq!(due(Cadence::BusinessDaily, konbini(), last), (2026, 2, 9));
}

#[test]
fn a_convenience_store_feed_runs_at_weekends_but_not_over_the_new_year() {
    let last = at(2026, 2, 6, 18);
    assert_eq!(due(Cadence::Daily, konbini(), last), (2026, 2, 7));
    let last = at(2026, 12, 28, 23);
    assert_eq!(due(Cadence::Daily, konbini(), last), (2027, 1, 4));
}

#[test]
fn a_city_closure_is_skipped() {
    let mut cal = Calendar::office();
    cal.closures.insert(d(2026, 2, 9));
    let last = at(2026, 2, 6, 18);
    assert_eq!(due(Cadence::Daily, cal, last), (2026, 2, 10));
}

#[test]
fn a_month_end_feed_is_due_on_the_next_month_end_or_the_open_day_after() {
    // 2026-01-31 is a Saturday: January's file is due Monday 2/2; sent Friday 1/30 it
    // answers that, and February's is due 2/28, a Saturday, so Monday 3/2.
    let last = at(2026, 1, 30, 17);
    assert_eq!(
        due(Cadence::Monthly(31), Calendar::office(), last),
        (2026, 3, 2)
    );
    // Sent late, on 2/3, it still answers January's.
    let last = at(2026, 2, 3, 10);
    assert_eq!(
        due(Cadence::Monthly(31), Calendar::office(), last),
        (2026, 3, 2)
    );
}

#[test]
fn a_monthly_feed_sent_early_or_late_counts_for_its_own_month() {
    // Due on the 5th: sent 2026-06-03 or 2026-06-10, the next is due 7/6 (7/5 is a Sunday).
    for day in [3, 5, 10] {
        let last = at(2026, 6, day, 12);
        assert_eq!(
            due(Cadence::Monthly(5), Calendar::office(), last),
            (2026, 7, 6),
            "{day}"
        );
    }
}

#[test]
fn weekly_and_yearly_feeds() {
    // Every Monday: sent Monday 2026-02-09, next 2/16; sent the Tuesday 2/24 after a
    // holiday Monday (2/23), next is 3/2.
    let last = at(2026, 2, 9, 9);
    assert_eq!(
        due(Cadence::Weekly(Some(1)), Calendar::office(), last),
        (2026, 2, 16)
    );
    let last = at(2026, 2, 24, 9);
    assert_eq!(
        due(Cadence::Weekly(Some(1)), Calendar::office(), last),
        (2026, 3, 2)
    );
    // A week after: sent Thursday 2026-04-30, due 5/7 (5/6 is a substitute holiday anyway).
    let last = at(2026, 4, 30, 9);
    assert_eq!(
        due(Cadence::Weekly(None), Calendar::office(), last),
        (2026, 5, 7)
    );
    // Once a year by 4/30: sent 2026-04-28, next 2027-04-30.
    let last = at(2026, 4, 28, 9);
    assert_eq!(
        due(Cadence::Yearly(4, 30), Calendar::office(), last),
        (2027, 4, 30)
    );
}

#[test]
fn the_due_instant_is_the_end_of_the_jst_day() {
    let s = Schedule {
        cadence: Cadence::Daily,
        calendar: konbini(),
    };
    // Sent 2026-02-06 23:30 JST: due by 2026-02-08 00:00 JST = 2026-02-07T15:00Z.
    let end = s.next_due(at(2026, 2, 6, 23) + 1800.0);
    assert_eq!(end, d(2026, 2, 7) * DAY_SECONDS + 15 * 3600);
}
