//! Times in CSV cells: the mapping's time format (`%Y/%m/%d %H:%M:%S`, `rfc3339`, …) and
//! its UTC offset, turned into RFC 3339 text.

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
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Offset,
    Space,
    Lit(char),
}

/// A compiled `time_format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TimeFormat {
    Rfc3339,
    Pattern(Vec<Tok>),
}

impl TimeFormat {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("rfc3339") {
            return Ok(TimeFormat::Rfc3339);
        }
        let mut toks = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let tok = match c {
                '%' => match chars.next() {
                    Some('Y') => Tok::Year,
                    Some('m') => Tok::Month,
                    Some('d') => Tok::Day,
                    Some('H') => Tok::Hour,
                    Some('M') => Tok::Minute,
                    Some('S') => Tok::Second,
                    Some('z') => Tok::Offset,
                    Some('%') => Tok::Lit('%'),
                    other => {
                        return Err(format!(
                            "time_format {s:?}: unsupported directive %{}; supported: %Y %m %d \
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
        for (need, name) in [(Tok::Year, "%Y"), (Tok::Month, "%m"), (Tok::Day, "%d")] {
            if !toks.contains(&need) {
                return Err(format!("time_format {s:?}: needs {name}"));
            }
        }
        Ok(TimeFormat::Pattern(toks))
    }

    /// The cell as RFC 3339, or `None` when it does not match (or is not a real date).
    pub(super) fn apply(&self, cell: &str, default_offset: &str) -> Option<String> {
        let s = half_width(cell);
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let toks = match self {
            TimeFormat::Rfc3339 => {
                return match Timestamp::parse_rfc3339(s) {
                    Ok(_) => Some(s.to_owned()),
                    Err(crate::timestamp::TimestampError::NoOffset) => {
                        let with = format!("{s}{default_offset}");
                        Timestamp::parse_rfc3339(&with).ok().map(|_| with)
                    }
                    Err(_) => None,
                }
            }
            TimeFormat::Pattern(toks) => toks,
        };
        let mut it = s.chars().peekable();
        let (mut y, mut mo, mut d, mut h, mut mi, mut sec) = (0, 0, 0, 0, 0, 0);
        let mut offset = None;
        for tok in toks {
            match tok {
                Tok::Year => y = take_digits(&mut it, 4, 4)?,
                Tok::Month => mo = take_digits(&mut it, 1, 2)?,
                Tok::Day => d = take_digits(&mut it, 1, 2)?,
                Tok::Hour => h = take_digits(&mut it, 1, 2)?,
                Tok::Minute => mi = take_digits(&mut it, 1, 2)?,
                Tok::Second => sec = take_digits(&mut it, 1, 2)?,
                Tok::Offset => offset = Some(parse_offset(&mut it)?),
                Tok::Space => {
                    if !it.peek().is_some_and(|c| c.is_whitespace()) {
                        return None;
                    }
                    while it.peek().is_some_and(|c| c.is_whitespace()) {
                        it.next();
                    }
                }
                Tok::Lit(c) => {
                    if it.next()? != *c {
                        return None;
                    }
                }
            }
        }
        if it.next().is_some() {
            return None;
        }
        let year = i32::try_from(y).ok()?;
        Timestamp::from_civil(year, mo, d, (h, mi, sec), 0).ok()?;
        let offset = offset.as_deref().unwrap_or(default_offset);
        Some(format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{offset}"
        ))
    }
}
