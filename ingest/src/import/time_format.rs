//! Times in CSV cells: the mapping's time format (`%Y/%m/%d %H:%M:%S`, `rfc3339`, …) and
//! its UTC offset, turned into RFC 3339 text. A format may take a Japanese era year
//! (`%E`: `令和8`, `令和元`, `R8`, `H31`) and may leave out the day (a monthly export's
//! `2026年10月`), when the mapping declares which day and time of the month it means.

use super::row::half_width;
use crate::timestamp::Timestamp;

/// An offset as `+HH:MM` (from `+09:00`, `+0900`, `Z`, `UTC`, `JST`, `Asia/Tokyo`).
pub(super) fn parse_zone(s: &str) -> Option<String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some("+00:00".to_owned());
    }
    if s == "Asia/Tokyo" || s.eq_ignore_ascii_case("jst") {
        return Some("+09:00".to_owned());
    }
    let chars: Vec<char> = s.chars().collect();
    let mut it = chars.iter().copied().peekable();
    let offset = parse_offset(&mut it)?;
    it.next().is_none().then_some(offset)
}

/// Reads `Z`, `±HH:MM` or `±HHMM` from `it`, as `+HH:MM` (`Z` as `+00:00`).
fn parse_offset(it: &mut std::iter::Peekable<impl Iterator<Item = char>>) -> Option<String> {
    let sign = match it.next()? {
        'Z' | 'z' => return Some("+00:00".to_owned()),
        c @ ('+' | '-') => c,
        _ => return None,
    };
    let hh = take_digits(it, 2, 2)?;
    if it.peek() == Some(&':') {
        it.next();
    }
    let mm = take_digits(it, 2, 2)?;
    (hh <= 23 && mm <= 59).then(|| format!("{sign}{hh:02}:{mm:02}"))
}

/// Reads between `min` and `max` ASCII digits (greedily) as a number.
fn take_digits(
    it: &mut std::iter::Peekable<impl Iterator<Item = char>>,
    min: usize,
    max: usize,
) -> Option<u32> {
    let mut v = 0u32;
    let mut n = 0;
    while n < max {
        match it.peek().and_then(|c| c.to_digit(10)) {
            Some(d) => {
                v = v * 10 + d;
                n += 1;
                it.next();
            }
            _ => break,
        }
    }
    (n >= min).then_some(v)
}

/// One element of a time format.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Tok {
    Year,
    /// An era name (`令和`, `平成`, `昭和`, or `R`, `H`, `S`) and its year (`元` is 1).
    EraYear,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Offset,
    Space,
    Lit(char),
}

/// The Japanese eras a date may be written in: names, first day, last day (inclusive).
/// Older eras are not in the line systems' exports; a date outside every era here
/// does not parse.
const ERAS: [Era; 3] = [
    Era {
        names: ["令和", "R"],
        first: (2019, 5, 1),
        last: None,
    },
    Era {
        names: ["平成", "H"],
        first: (1989, 1, 8),
        last: Some((2019, 4, 30)),
    },
    Era {
        names: ["昭和", "S"],
        first: (1926, 12, 25),
        last: Some((1989, 1, 7)),
    },
];

/// A Japanese era: its names (kanji, then the one-letter abbreviation) and its span.
struct Era {
    names: [&'static str; 2],
    first: (u32, u32, u32),
    last: Option<(u32, u32, u32)>,
}

/// The day a month-only date (`%Y年%m月`, no `%d`) stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MonthDay {
    /// The month's last day.
    Last,
    /// That day of the month (1–31; past the month's end is a cell error).
    Nth(u32),
}

/// Which day and time of the month a month-only date stands for (the mapping's
/// `month_day` and `month_time`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MonthAnchor {
    pub(super) day: MonthDay,
    pub(super) time: (u32, u32, u32),
}

/// Why a time cell did not become a time; the message never quotes the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimeError {
    /// The cell does not have the format's shape.
    NoMatch,
    /// The shape fits but there is no such date or time (month 13, 2 月 30 日, 25 時).
    NoSuchDate,
    /// An era year of 0, or a date outside the era (平成32年, 令和元年4月).
    OutsideEra,
    /// The mapping's `month_day` is past the end of the cell's month.
    PastMonthEnd,
}

impl TimeError {
    /// What is wrong, for a rejection naming the column.
    pub(super) fn message(self, format: &str) -> String {
        match self {
            TimeError::NoMatch => format!("does not match time format {format}"),
            TimeError::NoSuchDate => format!("matches time format {format} but is not a real date or time"),
            TimeError::OutsideEra => "has an era year that is not a date of that era (no year 0, nor a year after the era ended)".to_owned(),
            TimeError::PastMonthEnd => "is a month that has no such day as the mapping's month_day".to_owned(),
        }
    }
}

/// A compiled `time_format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TimeFormat {
    Rfc3339,
    /// The tokens, and for a format without `%d` the day and time of the month it means.
    Pattern(Vec<Tok>, Option<MonthAnchor>),
}

impl TimeFormat {
    /// A format that names a day (`%d`), or `rfc3339`.
    #[cfg(test)]
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        Self::parse_with(s, None)
    }

    /// A format; `month` is the mapping's `month_day`/`month_time`, which a format
    /// without `%d` needs and one with it must not have.
    pub(super) fn parse_with(s: &str, month: Option<MonthAnchor>) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("rfc3339") {
            if month.is_some() {
                return Err(
                    "month_day/month_time go with a time_format without %d, not rfc3339".to_owned(),
                );
            }
            return Ok(TimeFormat::Rfc3339);
        }
        let mut toks = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let tok = match c {
                '%' => match chars.next() {
                    Some('Y') => Tok::Year,
                    Some('E') => Tok::EraYear,
                    Some('m') => Tok::Month,
                    Some('d') => Tok::Day,
                    Some('H') => Tok::Hour,
                    Some('M') => Tok::Minute,
                    Some('S') => Tok::Second,
                    Some('z') => Tok::Offset,
                    Some('%') => Tok::Lit('%'),
                    other => {
                        return Err(format!(
                            "time_format {s:?}: unsupported directive %{}; supported: %Y %E %m %d \
                             %H %M %S %z %% (or the whole format \"rfc3339\")",
                            other.map(String::from).unwrap_or_default()
                        ))
                    }
                },
                c if c.is_whitespace() => {
                    if toks.last() == Some(&Tok::Space) {
                        continue;
                    }
                    Tok::Space
                }
                c => Tok::Lit(c),
            };
            if tok != Tok::Space && !matches!(tok, Tok::Lit(_)) && toks.contains(&tok) {
                return Err(format!("time_format {s:?}: a directive appears twice"));
            }
            toks.push(tok);
        }
        check_directives(s, &toks, month)?;
        Ok(TimeFormat::Pattern(toks, month))
    }

    /// The cell as RFC 3339, or `None` when it does not match (or is not a real date).
    #[cfg(test)]
    pub(super) fn apply(&self, cell: &str, default_offset: &str) -> Option<String> {
        self.convert(cell, default_offset).ok()
    }

    /// The cell as RFC 3339, or why it is not a time.
    pub(super) fn convert(&self, cell: &str, default_offset: &str) -> Result<String, TimeError> {
        let s = half_width(cell);
        let s = s.trim();
        if s.is_empty() {
            return Err(TimeError::NoMatch);
        }
        let (toks, month) = match self {
            TimeFormat::Rfc3339 => return rfc3339(s, default_offset),
            TimeFormat::Pattern(toks, month) => (toks, month),
        };
        let c = read_civil(toks, s).ok_or(TimeError::NoMatch)?;
        let year = match c.era {
            None => i32::try_from(c.year).map_err(|_| TimeError::NoSuchDate)?,
            Some((era, n)) => {
                if n == 0 {
                    return Err(TimeError::OutsideEra);
                }
                i32::try_from(era.first.0 + n - 1).map_err(|_| TimeError::NoSuchDate)?
            }
        };
        let (mut d, mut hms) = (c.day, c.hms);
        if let Some(anchor) = month {
            if !(1..=12).contains(&c.month) {
                return Err(TimeError::NoSuchDate);
            }
            let last = crate::timestamp::days_in_month(year, c.month);
            d = match anchor.day {
                MonthDay::Last => last,
                MonthDay::Nth(n) if n <= last => n,
                MonthDay::Nth(_) => return Err(TimeError::PastMonthEnd),
            };
            hms = anchor.time;
        }
        Timestamp::from_civil(year, c.month, d, hms, 0).map_err(|_| TimeError::NoSuchDate)?;
        if let Some((era, _)) = c.era {
            // `year` fits u32: it is the era's first year plus a positive count.
            let date = (year.unsigned_abs(), c.month, d);
            if date < era.first || era.last.is_some_and(|last| date > last) {
                return Err(TimeError::OutsideEra);
            }
        }
        let offset = c.offset.as_deref().unwrap_or(default_offset);
        let (h, mi, sec) = hms;
        let mo = c.month;
        Ok(format!(
            "{year:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{offset}"
        ))
    }
}

/// An RFC 3339 cell as it is, with the default offset added when it has none.
fn rfc3339(s: &str, default_offset: &str) -> Result<String, TimeError> {
    match Timestamp::parse_rfc3339(s) {
        Ok(_) => Ok(s.to_owned()),
        Err(crate::timestamp::TimestampError::NoOffset) => {
            let with = format!("{s}{default_offset}");
            Timestamp::parse_rfc3339(&with)
                .map(|_| with)
                .map_err(|_| TimeError::NoSuchDate)
        }
        Err(crate::timestamp::TimestampError::Range) => Err(TimeError::NoSuchDate),
        Err(_) => Err(TimeError::NoMatch),
    }
}

/// A format's directives: a year (`%Y` or `%E`, not both) and a month; a day, or the
/// mapping's month anchor instead (and then no time of day in the cell).
fn check_directives(s: &str, toks: &[Tok], month: Option<MonthAnchor>) -> Result<(), String> {
    let has = |t: Tok| toks.contains(&t);
    match (has(Tok::Year), has(Tok::EraYear)) {
        (false, false) => return Err(format!("time_format {s:?}: needs %Y or %E")),
        (true, true) => return Err(format!("time_format {s:?}: has both %Y and %E")),
        _ => {}
    }
    if !has(Tok::Month) {
        return Err(format!("time_format {s:?}: needs %m"));
    }
    match (has(Tok::Day), month) {
        (true, Some(_)) => Err(format!(
            "time_format {s:?} has %d, so month_day/month_time do not apply; \
             drop them, or drop %d for a month-only date"
        )),
        (false, None) => Err(format!(
            "time_format {s:?}: needs %d, or month_day (\"last\" or a day number) \
             for a month-only date"
        )),
        (false, Some(_))
            if [Tok::Hour, Tok::Minute, Tok::Second]
                .iter()
                .any(|t| has(*t)) =>
        {
            Err(format!(
                "time_format {s:?}: a month-only date takes its time from month_time, \
                 not from %H/%M/%S"
            ))
        }
        _ => Ok(()),
    }
}

/// The parts of a cell read by a format, before they are checked as a date.
struct Civil {
    year: u32,
    era: Option<(&'static Era, u32)>,
    month: u32,
    day: u32,
    hms: (u32, u32, u32),
    offset: Option<String>,
}

/// Reads the cell by the format's tokens; `None` when it does not have their shape.
fn read_civil(toks: &[Tok], s: &str) -> Option<Civil> {
    let mut it = s.chars().peekable();
    let mut c = Civil {
        year: 0,
        era: None,
        month: 0,
        day: 0,
        hms: (0, 0, 0),
        offset: None,
    };
    for tok in toks {
        match tok {
            Tok::Year => c.year = take_digits(&mut it, 4, 4)?,
            Tok::EraYear => c.era = Some(take_era_year(&mut it)?),
            Tok::Month => c.month = take_digits(&mut it, 1, 2)?,
            Tok::Day => c.day = take_digits(&mut it, 1, 2)?,
            Tok::Hour => c.hms.0 = take_digits(&mut it, 1, 2)?,
            Tok::Minute => c.hms.1 = take_digits(&mut it, 1, 2)?,
            Tok::Second => c.hms.2 = take_digits(&mut it, 1, 2)?,
            Tok::Offset => c.offset = Some(parse_offset(&mut it)?),
            Tok::Space => {
                if !it.peek().is_some_and(|c| c.is_whitespace()) {
                    return None;
                }
                while it.peek().is_some_and(|c| c.is_whitespace()) {
                    it.next();
                }
            }
            Tok::Lit(l) => {
                if it.next()? != *l {
                    return None;
                }
            }
        }
    }
    it.next().is_none().then_some(c)
}

/// Reads an era name (kanji, or its letter in either case) and its year (`元` is 1).
fn take_era_year(
    it: &mut std::iter::Peekable<impl Iterator<Item = char> + Clone>,
) -> Option<(&'static Era, u32)> {
    let starts_with = |name: &str| {
        let mut probe = it.clone();
        name.chars()
            .all(|n| probe.next().is_some_and(|c| c.to_ascii_uppercase() == n))
    };
    let (era, name) = ERAS
        .iter()
        .find_map(|era| era.names.iter().find(|n| starts_with(n)).map(|n| (era, *n)))?;
    for _ in name.chars() {
        it.next();
    }
    if it.peek() == Some(&'元') {
        it.next();
        return Some((era, 1));
    }
    Some((era, take_digits(it, 1, 2)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn era(format: &str, cell: &str) -> Result<String, TimeError> {
        TimeFormat::parse(format).unwrap().convert(cell, "+09:00")
    }

    #[test]
    fn era_years_in_kanji_or_letters_with_gannen_and_full_width_digits_parse() {
        let f = "%E年%m月%d日";
        assert_eq!(
            era(f, "令和8年11月1日").unwrap(),
            "2026-11-01T00:00:00+09:00"
        );
        assert_eq!(
            era(f, "令和元年5月1日").unwrap(),
            "2019-05-01T00:00:00+09:00"
        );
        assert_eq!(
            era(f, "令和８年１１月１日").unwrap(),
            "2026-11-01T00:00:00+09:00"
        );
        assert_eq!(
            era(f, "平成31年4月30日").unwrap(),
            "2019-04-30T00:00:00+09:00"
        );
        assert_eq!(
            era(f, "昭和64年1月7日").unwrap(),
            "1989-01-07T00:00:00+09:00"
        );
        assert_eq!(
            era("%E.%m.%d", "R8.11.1").unwrap(),
            "2026-11-01T00:00:00+09:00"
        );
        assert_eq!(
            era("%E.%m.%d", "H31.4.30").unwrap(),
            "2019-04-30T00:00:00+09:00"
        );
        assert_eq!(
            era("%E.%m.%d", "ｒ８．１１．１").unwrap(),
            "2026-11-01T00:00:00+09:00"
        );
        assert_eq!(
            era("%E/%m/%d %H:%M", "R8/5/1 9:30").unwrap(),
            "2026-05-01T09:30:00+09:00"
        );
    }

    #[test]
    fn an_era_year_outside_its_era_is_a_cell_error_of_its_own() {
        let f = "%E年%m月%d日";
        assert_eq!(era(f, "平成32年1月1日"), Err(TimeError::OutsideEra));
        assert_eq!(era(f, "平成31年5月1日"), Err(TimeError::OutsideEra));
        assert_eq!(era(f, "令和0年5月1日"), Err(TimeError::OutsideEra));
        assert_eq!(era(f, "令和元年4月30日"), Err(TimeError::OutsideEra));
        assert_eq!(era(f, "令和8年2月30日"), Err(TimeError::NoSuchDate));
        assert_eq!(era(f, "大正5年1月1日"), Err(TimeError::NoMatch));
        assert_eq!(era(f, "2026年1月1日"), Err(TimeError::NoMatch));
        let m = TimeError::OutsideEra.message(f);
        assert!(!m.contains("平成32"), "{m}");
    }

    #[test]
    fn a_format_needs_one_year_a_month_and_a_day() {
        assert!(TimeFormat::parse("%E年%m月%d日").is_ok());
        assert!(TimeFormat::parse("%Y%E/%m/%d").is_err());
        assert!(TimeFormat::parse("%m/%d").is_err());
        assert!(TimeFormat::parse("%Y/%d").is_err());
        assert!(TimeFormat::parse("%Y/%m").is_err());
    }
}
