//! RFC 3339 instants, parsed by hand because the event hot path parses one per event
//! and the format is small (a general date library costs more than the parse itself).

use std::fmt;

/// Microseconds in one second.
const MICROS: i64 = 1_000_000;

/// An instant, in microseconds since the Unix epoch (UTC).
///
/// Microseconds because line systems send at most millisecond stamps and ties at one
/// instant are meaningful (a snapshot applies before the deltas of its instant).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(i64);

/// Why a timestamp was refused; shown to the line system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("not an RFC 3339 timestamp (expected e.g. 2026-05-01T10:15:00+09:00)")]
    Syntax,
    #[error("RFC 3339 timestamp without a UTC offset (add +09:00 or Z)")]
    NoOffset,
    #[error("date or time out of range")]
    Range,
}

impl Timestamp {
    /// The instant `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The wall clock's instant (the epoch itself if the clock is set before it).
    pub fn wall_clock() -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        Self(micros)
    }

    /// The instant `secs` seconds after the Unix epoch.
    pub const fn from_unix_seconds(secs: i64) -> Self {
        Self(secs * MICROS)
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Seconds since the Unix epoch, as a float (Prometheus timestamps).
    pub fn unix_seconds_f64(self) -> f64 {
        self.0 as f64 / MICROS as f64
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(MICROS)
    }

    /// The instant at the given civil date and time with a fixed offset from UTC.
    pub fn from_civil(
        year: i32,
        month: u32,
        day: u32,
        hms: (u32, u32, u32),
        offset_seconds: i32,
    ) -> Result<Self, TimestampError> {
        let (hour, minute, second) = hms;
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(TimestampError::Range);
        }
        // A leap second is folded into the second before it: no line system depends on it.
        let second = second.min(59);
        let days = days_from_civil(year, month, day);
        let secs =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
                - i64::from(offset_seconds);
        Ok(Self(secs * MICROS))
    }

    /// Parses RFC 3339 (`2026-05-01T10:15:00+09:00`, `…Z`, fractional seconds allowed).
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimestampError> {
        let b = s.as_bytes();
        let Some(head) = b.first_chunk::<19>() else {
            return Err(TimestampError::Syntax);
        };
        let (year, month, day, hour, minute, second) = date_time(head)?;
        let (micros, i) = fraction(b, 19)?;
        let offset = match b.get(i..) {
            None | Some([]) => return Err(TimestampError::NoOffset),
            Some([b'Z' | b'z']) => 0,
            Some(&[sign @ (b'+' | b'-'), h0, h1, b':', m0, m1]) => {
                let [oh, om] = two_digit_numbers([h0, h1, m0, m1]).ok_or(TimestampError::Syntax)?;
                offset_seconds(sign, oh, om)?
            }
            Some(_) => return Err(TimestampError::Syntax),
        };
        let base = Self::from_civil(year, month, day, (hour, minute, second), offset)?;
        Ok(Self(base.0 + micros))
    }

    /// The civil date and time at a fixed offset: (year, month, day, hour, minute, second).
    pub fn to_civil(self, offset_seconds: i32) -> (i32, u32, u32, u32, u32, u32) {
        let secs = self.unix_seconds() + i64::from(offset_seconds);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with microseconds only when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.to_civil(0);
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        let frac = self.0.rem_euclid(MICROS);
        if frac != 0 {
            write!(f, ".{frac:06}")?;
        }
        f.write_str("Z")
    }
}

/// The fractional seconds that may follow the seconds at `at` (`.250`: 250,000 µs;
/// digits past the sixth count for nothing), and where the text goes on after them.
fn fraction(b: &[u8], at: usize) -> Result<(i64, usize), TimestampError> {
    if b.get(at) != Some(&b'.') {
        return Ok((0, at));
    }
    let start = at + 1;
    let (mut i, mut micros, mut scale) = (start, 0, 100_000);
    while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        micros += i64::from(c - b'0') * scale;
        scale /= 10;
        i += 1;
    }
    if i == start {
        return Err(TimestampError::Syntax);
    }
    Ok((micros, i))
}

/// A UTC offset `±HH:MM` in seconds, its sign the byte `-` or `+`.
fn offset_seconds(sign: u8, hours: u32, minutes: u32) -> Result<i32, TimestampError> {
    if hours > 23 || minutes > 59 {
        return Err(TimestampError::Range);
    }
    let off = (hours * 3600 + minutes * 60) as i32;
    Ok(if sign == b'-' { -off } else { off })
}

/// The date and time of an RFC 3339 stamp's first 19 bytes, `YYYY-MM-DDTHH:MM:SS`
/// (`t` or a space also separate date and time): year, month, day, hour, minute, second.
/// The event hot path reads one per event, so the layout is matched at once rather
/// than field by field.
fn date_time(head: &[u8; 19]) -> Result<(i32, u32, u32, u32, u32, u32), TimestampError> {
    let [y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T' | b't' | b' ', h0, h1, b':', mi0, mi1, b':', s0, s1] =
        *head
    else {
        return Err(TimestampError::Syntax);
    };
    let [century, year, month, day, hour, minute, second] =
        two_digit_numbers([y0, y1, y2, y3, mo0, mo1, d0, d1, h0, h1, mi0, mi1, s0, s1])
            .ok_or(TimestampError::Syntax)?;
    Ok((
        (century * 100 + year) as i32,
        month,
        day,
        hour,
        minute,
        second,
    ))
}

/// Pairs of ASCII digits as the numbers they write (`b"0509"` is `[5, 9]`); `None` unless
/// every byte is a digit.
#[inline(always)]
fn two_digit_numbers<const N: usize, const P: usize>(digits: [u8; N]) -> Option<[u32; P]> {
    const { assert!(2 * P == N) };
    let values = digits.map(|c| c.wrapping_sub(b'0'));
    // One test for all: a byte that is no digit wraps to 10 or more.
    if values.iter().fold(0, |worst, &v| worst.max(v)) > 9 {
        return None;
    }
    Some(std::array::from_fn(|i| {
        u32::from(values[2 * i]) * 10 + u32::from(values[2 * i + 1])
    }))
}

/// Whether `year` is a Gregorian leap year.
pub const fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in a month of the Gregorian calendar.
pub const fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_offset_timestamp_to_utc() {
        let t = Timestamp::parse_rfc3339("2026-05-01T10:15:00+09:00").unwrap();
        assert_eq!(t.to_string(), "2026-05-01T01:15:00Z");
    }

    #[test]
    fn zulu_and_fractions_are_accepted() {
        let t = Timestamp::parse_rfc3339("2027-03-31T15:00:00.250Z").unwrap();
        assert_eq!(t.micros() % MICROS, 250_000);
        assert_eq!(t.to_string(), "2027-03-31T15:00:00.250000Z");
    }

    #[test]
    fn a_timestamp_without_offset_is_refused_as_such() {
        assert_eq!(
            Timestamp::parse_rfc3339("2026-05-01T10:15:00"),
            Err(TimestampError::NoOffset)
        );
    }

    #[test]
    fn garbage_and_impossible_dates_are_refused() {
        assert_eq!(
            Timestamp::parse_rfc3339("yesterday"),
            Err(TimestampError::Syntax)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026/05/01 10:15:00+09:00"),
            Err(TimestampError::Syntax)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-02-29T00:00:00Z"),
            Err(TimestampError::Range)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-13-01T00:00:00Z"),
            Err(TimestampError::Range)
        );
        assert!(Timestamp::parse_rfc3339("2028-02-29T00:00:00Z").is_ok());
    }

    /// The parser before its layout was matched at once, field by field (its fraction
    /// and offset read by the same [`fraction`] and [`offset_seconds`]): the new one must accept and refuse exactly as it
    /// did, with the same errors.
    fn field_by_field(s: &str) -> Result<Timestamp, TimestampError> {
        fn digits(b: &[u8], at: usize, n: usize) -> Result<u32, TimestampError> {
            let mut v = 0u32;
            for i in at..at + n {
                let c = *b.get(i).ok_or(TimestampError::Syntax)?;
                if !c.is_ascii_digit() {
                    return Err(TimestampError::Syntax);
                }
                v = v * 10 + u32::from(c - b'0');
            }
            Ok(v)
        }
        let b = s.as_bytes();
        if b.len() < 19 {
            return Err(TimestampError::Syntax);
        }
        let year = digits(b, 0, 4)? as i32;
        let month = digits(b, 5, 2)?;
        let day = digits(b, 8, 2)?;
        let hour = digits(b, 11, 2)?;
        let minute = digits(b, 14, 2)?;
        let second = digits(b, 17, 2)?;
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(TimestampError::Syntax);
        }
        let (micros, i) = fraction(b, 19)?;
        let offset = match b.get(i) {
            None => return Err(TimestampError::NoOffset),
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = digits(b, i + 1, 2)?;
                let om = digits(b, i + 4, 2)?;
                offset_seconds(sign, oh, om)?
            }
            _ => return Err(TimestampError::Syntax),
        };
        let base = Timestamp::from_civil(year, month, day, (hour, minute, second), offset)?;
        Ok(Timestamp(base.0 + micros))
    }

    /// Stamps near the usual shapes with every byte in turn changed to each byte that
    /// matters to the grammar (or any other), cut there, or a byte added there: the
    /// parser decides each exactly as the field-by-field reading did.
    #[test]
    fn the_layout_is_read_as_field_by_field() {
        let bases = [
            "2026-05-01T10:15:00+09:00",
            "2027-03-31T15:00:00.250Z",
            "2028-02-29 23:59:60-00:30",
            "1999-12-31t00:00:00.1234567z",
            "2026-02-29T00:00:00Z",
            "2026-05-01T10:15:00+24:00",
        ];
        let bytes = b"0123456789-:Tt Zz+.x/\x7f\x00";
        let mut tried = 0;
        for base in bases {
            for at in 0..=base.len() {
                let mut variants = vec![base.as_bytes()[..at].to_vec()];
                for &c in bytes {
                    let mut changed = base.as_bytes().to_vec();
                    if at < changed.len() {
                        changed[at] = c;
                        variants.push(changed.clone());
                    }
                    let mut added = base.as_bytes().to_vec();
                    added.insert(at, c);
                    variants.push(added);
                }
                for v in variants {
                    let s = std::str::from_utf8(&v).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(Timestamp::parse_rfc3339(s), field_by_field(s), "{s:?}");
                    tried += 1;
                }
            }
        }
        assert!(tried > 5_000, "{tried}");
    }

    #[test]
    fn civil_days_round_trip() {
        for days in [-800_000, -1, 0, 1, 20_000, 20_544, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
