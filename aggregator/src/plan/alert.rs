//! A KPI's alerting knobs as checked values: how long it must stay behind pace
//! (`behind_for`, a Prometheus duration) and the multiple of the tolerance past which
//! the alert is critical (`critical_factor`). Both are parsed at load, so a plan that
//! `mieruka plan check` accepts never yields rules that promtool rejects.

use std::fmt;

/// Prometheus duration units, longest first (the order they must appear in), in ms.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A positive Prometheus duration such as `6h`, `2d` or `1h30m`: kept as written (the
/// rules file shows it as the plan does) together with its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromDuration {
    text: String,
    millis: u64,
}

impl PromDuration {
    /// Parses Prometheus' syntax: `[0-9]+` and a unit (`y`, `w`, `d`, `h`, `m`, `s`,
    /// `ms`), repeated with each unit at most once and longest first; more than zero
    /// in total and no longer than Prometheus can hold (int64 milliseconds).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty duration; expected e.g. 6h, 2d or 1h30m".to_owned());
        }
        let mut millis: u64 = 0;
        let mut rest = s;
        let mut allowed = &UNITS[..];
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!(
                    "{s:?}: expected a number at {rest:?} (e.g. 6h, 2d, 1h30m)"
                ));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{s:?}: {:?} is too large", &rest[..digits]))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            let Some(at) = allowed.iter().position(|(u, _)| *u == unit) else {
                return Err(if UNITS.iter().any(|(u, _)| *u == unit) {
                    format!("{s:?}: units go longest first, each once (e.g. 1d12h, 1h30m)")
                } else {
                    format!("{s:?}: unknown unit {unit:?} (use y, w, d, h, m, s or ms)")
                });
            };
            millis = n
                .checked_mul(allowed[at].1)
                .and_then(|x| x.checked_add(millis))
                .filter(|x| i64::try_from(*x).is_ok())
                .ok_or_else(|| format!("{s:?} is longer than Prometheus can hold"))?;
            allowed = &allowed[at + 1..];
            rest = &rest[unit_len..];
        }
        if millis == 0 {
            return Err(format!(
                "{s:?} is zero; the alert needs a positive duration"
            ));
        }
        Ok(Self {
            text: s.to_owned(),
            millis,
        })
    }

    /// Its length in milliseconds (always > 0).
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// The duration as written in the plan.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<&str> for PromDuration {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

/// The multiple of a KPI's tolerance past which being behind is critical: finite and
/// greater than 1, so that the critical threshold lies strictly beyond the warning one
/// (at 1 the two alerts would fire together, below 1 critical would fire first).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CriticalFactor(f64);

impl CriticalFactor {
    /// Checks a factor from the plan.
    pub fn new(x: f64) -> Result<Self, String> {
        if x.is_finite() && x > 1.0 {
            Ok(Self(x))
        } else {
            Err(format!(
                "{x}: must be a finite number greater than 1 (critical lies beyond the warning at 1 × the tolerance)"
            ))
        }
    }

    /// The factor.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A KPI's checked alerting knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// How long a KPI must stay behind pace before the alert fires.
    pub behind_for: PromDuration,
    /// Severity becomes critical past this multiple of the tolerance.
    pub critical_factor: CriticalFactor,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations_parse_alone_and_combined() {
        assert_eq!(
            PromDuration::parse("6h").map(|d| d.millis()),
            Ok(21_600_000)
        );
        assert_eq!(
            PromDuration::parse("2d").map(|d| d.millis()),
            Ok(172_800_000)
        );
        assert_eq!(
            PromDuration::parse("30m").map(|d| d.millis()),
            Ok(1_800_000)
        );
        assert_eq!(
            PromDuration::parse("1h30m").map(|d| d.millis()),
            Ok(5_400_000)
        );
        assert_eq!(
            PromDuration::parse("1s500ms").map(|d| d.millis()),
            Ok(1_500)
        );
        assert_eq!(
            PromDuration::parse("14d").map(|d| d.to_string()),
            Ok("14d".to_owned())
        );
    }

    #[test]
    fn a_duration_without_a_unit_or_with_an_unknown_one_is_refused() {
        for bad in ["", "6", "h", "6 h", "2days", "1.5h", "-1h", "6H"] {
            assert!(PromDuration::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_duration_is_positive_ordered_and_fits_in_int64_milliseconds() {
        assert!(PromDuration::parse("0s").is_err());
        assert!(PromDuration::parse("0h0m").is_err());
        assert!(PromDuration::parse("30m1h").is_err());
        assert!(PromDuration::parse("1h1h").is_err());
        assert!(PromDuration::parse("99999999999999999999y").is_err());
        assert!(PromDuration::parse("300000000y").is_err());
    }

    #[test]
    fn a_critical_factor_is_finite_and_beyond_the_warning() {
        assert_eq!(CriticalFactor::new(2.0).map(CriticalFactor::get), Ok(2.0));
        assert!(CriticalFactor::new(1.5).is_ok());
        for bad in [1.0, 0.5, 0.0, -2.0, f64::NAN, f64::INFINITY] {
            assert!(CriticalFactor::new(bad).is_err(), "{bad}");
        }
    }
}
