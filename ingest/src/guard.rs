//! The personal-number guard: mieruka never takes in an individual number (マイナンバー).
//!
//! A personal number is 12 digits whose last is a check digit over the first eleven
//! (the rule is public: 行政手続における特定の個人を識別するための番号の利用等に関する法律
//! 施行令 第8条). The guard looks at every JSON string, number and key of an event, in
//! ASCII or full-width digits, plain or grouped 4-4-4 by hyphens or spaces. About one
//! 12-digit number in eleven passes the check by chance; that is by design, and line
//! systems are told not to use 12-digit ids.
//!
//! The guard never returns, logs or stores the value it found: only where it was.

use serde_json::Value;

/// The digit value of a char, for ASCII and full-width (U+FF10..U+FF19) digits.
fn digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '\u{FF10}'..='\u{FF19}' => Some((c as u32 - 0xFF10) as u8),
        _ => None,
    }
}

/// The check digit of a personal number over its first eleven digits.
pub fn check_digit(first11: &[u8; 11]) -> u8 {
    let sum: u32 = (1..=11u32)
        .map(|n| {
            let p = u32::from(first11[11 - n as usize]);
            let q = if n <= 6 { n + 1 } else { n - 5 };
            p * q
        })
        .sum();
    let r = sum % 11;
    if r <= 1 {
        0
    } else {
        (11 - r) as u8
    }
}

fn is_valid(d: &[u8; 12]) -> bool {
    let mut first = [0u8; 11];
    first.copy_from_slice(&d[..11]);
    check_digit(&first) == d[11]
}

/// Byte ranges in `s` of every run that is a personal number.
///
/// A run is a maximal sequence of digits and single separators (`-` or space) between
/// digits. It holds a personal number when it is exactly 12 digits, or when it is
/// groups of digits of which three consecutive groups of four make one.
pub fn find(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut hits = Vec::new();
    // Groups of the current run: (start byte, end byte, digits).
    let mut groups: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut cur: Option<(usize, usize, Vec<u8>)> = None;
    let mut pending_sep = false;
    let flush = |groups: &mut Vec<(usize, usize, Vec<u8>)>, hits: &mut Vec<_>| {
        check_run(groups, hits);
        groups.clear();
    };
    for (i, c) in s.char_indices() {
        let end = i + c.len_utf8();
        if let Some(d) = digit(c) {
            match cur.as_mut() {
                Some(g) => {
                    g.1 = end;
                    g.2.push(d);
                }
                None => {
                    if !pending_sep {
                        flush(&mut groups, &mut hits);
                    }
                    cur = Some((i, end, vec![d]));
                }
            }
            pending_sep = false;
        } else if (c == '-' || c == ' ') && cur.is_some() && !pending_sep {
            if let Some(g) = cur.take() {
                groups.push(g);
            }
            pending_sep = true;
        } else {
            if let Some(g) = cur.take() {
                groups.push(g);
            }
            pending_sep = false;
            flush(&mut groups, &mut hits);
        }
    }
    if let Some(g) = cur.take() {
        groups.push(g);
    }
    check_run(&groups, &mut hits);
    hits
}

fn check_run(groups: &[(usize, usize, Vec<u8>)], hits: &mut Vec<std::ops::Range<usize>>) {
    for g in groups {
        if let Ok(d) = <[u8; 12]>::try_from(g.2.as_slice()) {
            if is_valid(&d) {
                hits.push(g.0..g.1);
            }
        }
    }
    for w in groups.windows(3) {
        if w.iter().all(|g| g.2.len() == 4) {
            let mut d = [0u8; 12];
            for (k, g) in w.iter().enumerate() {
                d[k * 4..k * 4 + 4].copy_from_slice(&g.2);
            }
            if is_valid(&d) {
                hits.push(w[0].0..w[2].1);
            }
        }
    }
}

/// Whether `s` holds a personal number anywhere.
pub fn contains(s: &str) -> bool {
    // Fast path: fewer than 12 digit-ish bytes cannot hold one. Full-width digits are
    // three bytes each, starting 0xEF, so they are counted too.
    let mut n = 0;
    for b in s.bytes() {
        if b.is_ascii_digit() || b == 0xEF {
            n += 1;
        }
    }
    n >= 12 && !find(s).is_empty()
}

/// The JSON path (e.g. `data.note`, `data.items[2]`) of the first string, number or
/// key in `value` that holds a personal number.
pub fn find_in_value(value: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => contains(s),
            Value::Number(n) => contains(&n.to_string()),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let hit = walk(item, path);
                if !hit {
                    path.truncate(len);
                }
                hit
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let hit = contains(k) || walk(item, path);
                if !hit {
                    path.truncate(len);
                }
                hit
            }),
            Value::Null | Value::Bool(_) => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| {
        if path.is_empty() {
            "$".to_owned()
        } else {
            path
        }
    })
}

/// `s` with the digits of every personal number replaced by `*`, for storing raw text
/// of a rejected event. Separators are kept so the shape stays readable.
pub fn mask(s: &str) -> String {
    let hits = find(s);
    if hits.is_empty() {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for r in hits {
        if r.start < last {
            continue;
        }
        out.push_str(&s[last..r.start]);
        for c in s[r.clone()].chars() {
            out.push(if digit(c).is_some() { '*' } else { c });
        }
        last = r.end;
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid personal number, for tests only: the check digit of 12345678901 is 8.
    const VALID: &str = "123456789018";

    #[test]
    fn the_public_check_digit_rule_holds_for_a_known_number() {
        assert_eq!(check_digit(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]), 8);
        assert!(contains(VALID));
        assert!(!contains("123456789017"));
    }

    #[test]
    fn grouped_and_full_width_forms_are_found() {
        assert!(contains("1234-5678-9018"));
        assert!(contains("id 1234 5678 9018 end"));
        assert!(contains("１２３４５６７８９０１８"));
        assert!(contains("ref:123456789018;"));
    }

    #[test]
    fn longer_or_shorter_runs_are_not_personal_numbers() {
        assert!(!contains("1123456789018"));
        assert!(!contains("23456789018"));
        assert!(!contains("2026-05-01T10:15:00+09:00"));
        assert!(!contains("konbini-20260501-000123"));
    }

    #[test]
    fn the_path_names_the_field_and_never_the_value() {
        let v: Value = serde_json::json!({"data": {"note": format!("x {VALID}"), "n": 1}});
        assert_eq!(find_in_value(&v).as_deref(), Some("data.note"));
        let v: Value = serde_json::json!({"data": {"items": [1, 123456789018u64]}});
        assert_eq!(find_in_value(&v).as_deref(), Some("data.items[1]"));
    }

    #[test]
    fn masking_hides_every_digit_of_the_number() {
        assert_eq!(mask("a 1234-5678-9018 b"), "a ****-****-**** b");
        assert_eq!(mask(&format!("\"{VALID}\"")), "\"************\"");
        assert_eq!(mask("nothing 42"), "nothing 42");
    }

    proptest! {
        #[test]
        fn every_number_with_a_valid_check_digit_is_found(first in proptest::array::uniform11(0u8..10)) {
            let mut s: String = first.iter().map(|d| char::from(b'0' + d)).collect();
            s.push(char::from(b'0' + check_digit(&first)));
            prop_assert!(contains(&s));
            prop_assert!(!mask(&s).chars().any(|c| c.is_ascii_digit()));
            let wrong = (check_digit(&first) + 1) % 10;
            s.pop();
            s.push(char::from(b'0' + wrong));
            prop_assert!(!contains(&s));
        }
    }
}
