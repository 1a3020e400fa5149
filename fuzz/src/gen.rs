//! Structured inputs, built from the fuzzer's bytes with `arbitrary`: a personal number
//! written in one of the notations the guard must read, inside a text or inside an event
//! (or any JSON) at a chosen place, serialised with chosen whitespace and escapes.
//!
//! Skeleton texts hold no digit and skeleton numbers at most seven, so the only
//! personal number (and the only 12-digit run) of an input is the embedded one.

use std::fmt;

use arbitrary::{Arbitrary, Result, Unstructured};
use mieruka_ingest::event::fixed_to_string;
use mieruka_ingest::guard;
use mieruka_ingest::schema::FieldKind;

use crate::checks::{self, SEPARATORS};
use crate::plan::Ome;

/// What an embedded number is written between: characters that end a digit run and can
/// neither start a JSON escape nor be part of a `\u` one (no `\`, `u` or hex digit), so
/// the run can neither grow nor be swallowed by an escape before it.
pub const DELIMITERS: [char; 16] = [
    'x', '|', '/', ':', '(', ')', '_', '#', 'z', 'あ', '。', '%', 'k', '!', '"', '\u{FFFD}',
];

/// Skeleton characters: no digit, but separators, quotes, backslashes, control and
/// astral characters, a byte order mark, line separators.
const ALPHABET: [char; 30] = [
    'a', 'b', 'k', 'z', 'u', 'F', 'あ', 'ア', '漢', 'é', ' ', '-', '.', '"', '\\', '/', '\n', '\t',
    '\u{0}', '\u{1f}', '\u{7f}', '\u{2028}', '\u{FEFF}', '\u{3000}', 'ー', '😀', '\u{FFFD}', '{',
    '\u{A0}', '\u{FF0D}',
];

/// Keys of skeleton objects.
const KEYS: [&str; 10] = [
    "memo", "note", "ref", "x", "data", "event_id", "type", "kpi", "w", "",
];

/// A personal number: eleven digits and their check digit.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct PersonalNumber {
    first11: [u8; 11],
}

impl PersonalNumber {
    /// The twelve digits of the same number with 0 as its first digit.
    fn starting_with_zero(mut self) -> [u8; 12] {
        self.first11[0] = 0;
        self.digits()
    }

    /// Its twelve digits.
    pub fn digits(&self) -> [u8; 12] {
        let mut first = [0u8; 11];
        for (d, x) in first.iter_mut().zip(self.first11) {
            *d = x % 10;
        }
        let mut all = [0u8; 12];
        all[..11].copy_from_slice(&first);
        all[11] = guard::check_digit(&first);
        all
    }
}

/// How one digit is written.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum DigitForm {
    Ascii,
    FullWidth,
    /// `\u0031`
    Escaped,
    /// `\uff11`
    EscapedFullWidth,
    /// `\uFF11`
    EscapedFullWidthUpper,
}

/// How the digits of a number are written: all alike, or each its own way.
#[derive(Arbitrary, Clone, Debug)]
pub enum DigitStyle {
    Same(DigitForm),
    Mixed([DigitForm; 13]),
}

/// One of the guard's separators, plain or escaped.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Separator {
    which: u8,
    escaped: bool,
}

/// A number written as text: its digits' forms, and optionally grouped 4-4-4.
#[derive(Arbitrary, Clone, Debug)]
pub struct TextNotation {
    digits: DigitStyle,
    groups: Option<[Separator; 2]>,
}

impl TextNotation {
    /// `digits` written in this notation (groups break before digits `breaks`), and the
    /// same with every digit as `*` (what masking makes of it).
    fn write(&self, digits: &[u8], breaks: [usize; 2]) -> (String, String) {
        let (mut text, mut masked) = (String::new(), String::new());
        for (i, &d) in digits.iter().enumerate() {
            if let Some(seps) = &self.groups {
                if let Some(k) = breaks.iter().position(|&b| b == i) {
                    let sep = seps[k];
                    let c = SEPARATORS[usize::from(sep.which) % SEPARATORS.len()];
                    let s = if sep.escaped {
                        format!("\\u{:04x}", u32::from(c))
                    } else {
                        c.to_string()
                    };
                    text.push_str(&s);
                    masked.push_str(&s);
                }
            }
            let form = match &self.digits {
                DigitStyle::Same(f) => *f,
                DigitStyle::Mixed(fs) => fs[i % fs.len()],
            };
            let fw = 0xFF10 + u32::from(d);
            match form {
                DigitForm::Ascii => text.push(char::from(b'0' + d)),
                DigitForm::FullWidth => text.push(char::from_u32(fw).unwrap_or('?')),
                DigitForm::Escaped => text.push_str(&format!("\\u{:04x}", 0x30 + u32::from(d))),
                DigitForm::EscapedFullWidth => text.push_str(&format!("\\u{fw:04x}")),
                DigitForm::EscapedFullWidthUpper => text.push_str(&format!("\\u{fw:04X}")),
            }
            masked.push('*');
        }
        (text, masked)
    }

    /// A personal number in this notation, and its masked form.
    pub fn personal_number(&self, digits: &[u8; 12]) -> (String, String) {
        self.write(digits, [4, 8])
    }

    /// A near miss in this notation: a run one digit longer or shorter than a personal
    /// number (see [`NearMiss`]).
    pub fn near_miss(&self, digits: &[u8; 12], kind: NearMiss) -> String {
        let mut d = digits.to_vec();
        match kind {
            NearMiss::Longer {
                extra,
                at_end: true,
            } => {
                d.push(extra % 10);
                self.write(&d, [4, 8]).0
            }
            NearMiss::Longer { extra, .. } => {
                d.insert(0, extra % 10);
                self.write(&d, [5, 9]).0
            }
            // In a JSON string: the escape of a NUL, then 11 digits (3-4-4 grouped).
            NearMiss::AfterNul => format!("\\u0000{}", self.write(&d[1..], [3, 7]).0),
            // In a JSON string: each digit an escape, escaped (`\\u0031`).
            NearMiss::EscapedTwice => d
                .iter()
                .map(|x| format!("\\\\u{:04x}", 0x30 + u32::from(*x)))
                .collect(),
        }
    }
}

/// A run of digits that is not a personal number but is one digit away from one.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum NearMiss {
    /// 13 digits: `extra` after the personal number (a cut after 12 digits leaves one)
    /// or before it; grouped 4-4-5 or 5-4-4.
    Longer { extra: u8, at_end: bool },
    /// A NUL, then the last 11 digits of a personal number whose first digit is 0
    /// (Rust's escaping writes a NUL as `\0`).
    AfterNul,
    /// Twelve digits each written as an escape in the string's value (`\u0031`, which
    /// is `\\u0031` in the JSON): not digits in the JSON, but digits to the guard
    /// reading the value as text.
    EscapedTwice,
}

/// How a number value is written in JSON.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum NumberNotation {
    /// `123456789018`
    Integer,
    /// `123456789018.000`
    TrailingZeros(u8),
    /// `1.23456789018e11`, `12345.6789018E+7`, `1.234567890180e11`
    Exponent {
        point: u8,
        zeros: u8,
        upper: bool,
        plus: bool,
    },
    /// `1234567890180e-1`
    NegativeExponent(u8),
    /// `0.123456789018`
    Fraction,
    /// `0.00123456789018e2`
    FractionExponent(u8),
}

/// A number value: its notation and sign.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct NumberSpec {
    notation: NumberNotation,
    negative: bool,
}

impl NumberSpec {
    /// The personal number as a JSON number token. Forms of an integer value need a
    /// first digit that is not 0 (else the value has 11 digits); a fraction written
    /// with an exponent needs a last digit that is not 0 (else it has 11): the guard
    /// reads numbers by value, so those fall back to `0.` and the digits.
    pub fn write(&self, d: &[u8; 12]) -> String {
        let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
        let integer_form = !matches!(
            self.notation,
            NumberNotation::Fraction | NumberNotation::FractionExponent(_)
        );
        let notation = match self.notation {
            _ if integer_form && d[0] == 0 => NumberNotation::Fraction,
            NumberNotation::FractionExponent(_) if d[11] == 0 => NumberNotation::Fraction,
            n => n,
        };
        let body = match notation {
            NumberNotation::Integer => s,
            NumberNotation::TrailingZeros(z) => {
                format!("{s}.{}", "0".repeat(1 + usize::from(z % 3)))
            }
            NumberNotation::Exponent {
                point,
                zeros,
                upper,
                plus,
            } => {
                let k = 1 + usize::from(point) % 12;
                let zeros = "0".repeat(usize::from(zeros % 3));
                let frac = format!("{}{zeros}", &s[k..]);
                let mantissa = if frac.is_empty() {
                    s[..k].to_owned()
                } else {
                    format!("{}.{frac}", &s[..k])
                };
                let e = if upper { "E" } else { "e" };
                let sign = if plus { "+" } else { "" };
                format!("{mantissa}{e}{sign}{}", 12 - k)
            }
            NumberNotation::NegativeExponent(m) => {
                let m = 1 + usize::from(m % 4);
                format!("{s}{}e-{m}", "0".repeat(m))
            }
            NumberNotation::Fraction => format!("0.{s}"),
            NumberNotation::FractionExponent(shift) => {
                let shift = 1 + usize::from(shift % 3);
                format!("0.{}{s}e{shift}", "0".repeat(shift))
            }
        };
        if self.negative {
            format!("-{body}")
        } else {
            body
        }
    }
}

/// A JSON skeleton, with at most one embedded personal number (or near miss).
#[derive(Clone, Debug)]
pub enum J {
    Null,
    Bool(bool),
    /// A number token, at most seven digits.
    Num(String),
    /// A string (its value; the writer escapes it).
    Str(String),
    /// An embedded string: text, the number as written (already JSON), text.
    Embedded(String, String, String),
    /// An embedded number token.
    EmbeddedNum(String),
    Arr(Vec<J>),
    Obj(Vec<(Key, J)>),
}

/// An object key.
#[derive(Clone, Debug)]
pub enum Key {
    Text(String),
    /// An embedded key: text, the number as written, text.
    Embedded(String, String, String),
}

/// Whitespace and escaping choices, taken in turn (and cycled).
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct Style {
    ws: Vec<u8>,
    esc: Vec<u8>,
}

/// Where the embedded value goes.
#[derive(Arbitrary, Clone, Debug)]
pub struct Placement {
    /// Replace a skeleton string (a string embedding only) rather than add a member.
    replace: bool,
    /// Which container (or string, when replacing), in document order, cycled.
    target: u16,
    /// Position among the container's members or elements.
    at: u8,
    /// The key of an added member.
    key: u8,
    /// Arrays and objects around the embedded value, innermost first.
    wraps: Vec<Wrap>,
}

/// One level around an embedded value.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Wrap {
    /// `[null, …, value]` with `before % 3` nulls first.
    Array(u8),
    /// `{"w": value}`
    Object,
}

/// What is embedded, and where in a string or key.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A personal number as a string, with text around it.
    Str(String, String, String),
    /// A personal number as a key, with text around it.
    Key(String, String, String),
    /// A personal number as a number token.
    Num(String),
}

/// A skeleton text: up to `max` characters of [`ALPHABET`].
fn text(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| u.choose(&ALPHABET).copied()).collect()
}

/// Text ending (or starting) with a delimiter, around an embedded number.
fn around(u: &mut Unstructured<'_>, max: usize, delimiter_last: bool) -> Result<String> {
    let t = text(u, max)?;
    let d = *u.choose(&DELIMITERS)?;
    Ok(if delimiter_last {
        format!("{t}{d}")
    } else {
        format!("{d}{t}")
    })
}

/// A skeleton number: at most seven digits.
fn small_number(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=99_999u32)?;
    let sign = if u.arbitrary()? { "-" } else { "" };
    Ok(match u.int_in_range(0..=3u8)? {
        0 => format!("{sign}{n}"),
        1 => format!("{sign}{}.{}", n / 100, n % 100 + 1),
        2 => format!("{sign}{}e{}", n % 1000, n % 7),
        _ => format!("{sign}{}.5E-{}", n % 100, n % 5),
    })
}

/// A random JSON value, at most `6 - depth` levels deep.
fn tree(u: &mut Unstructured<'_>, depth: u32) -> Result<J> {
    let kinds = if depth >= 6 { 3 } else { 5 };
    Ok(match u.int_in_range(0..=kinds)? {
        0 => J::Null,
        1 => J::Bool(u.arbitrary()?),
        2 => J::Num(small_number(u)?),
        3 => J::Str(text(u, 12)?),
        4 => {
            let n = u.int_in_range(0..=4)?;
            J::Arr((0..n).map(|_| tree(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                let key = if u.arbitrary()? {
                    (*u.choose(&KEYS)?).to_owned()
                } else {
                    text(u, 8)?
                };
                members.push((Key::Text(key), tree(u, depth + 1)?));
            }
            J::Obj(members)
        }
    })
}

/// A valid event of a random type of the plan: every field within its domain, members
/// in a random order.
fn envelope(u: &mut Unstructured<'_>, ome: &Ome) -> Result<J> {
    let ty = u.choose(ome.schema.types())?;
    let source = *u.choose(&["konbini", "juki", "portal", "hr"])?;
    let id = format!("{source}-{}", u.int_in_range(0..=999_999u32)?);
    let at = format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}",
        u.int_in_range(2021..=2025u32)?,
        u.int_in_range(1..=12u32)?,
        u.int_in_range(1..=28u32)?,
        u.int_in_range(0..=23u32)?,
        u.int_in_range(0..=59u32)?,
        u.int_in_range(0..=59u32)?,
        *u.choose(&["", ".5", ".123"])?,
        *u.choose(&["+09:00", "Z", "-05:00", "+00:00"])?,
    );
    let mut ints: Vec<Option<i64>> = vec![None; ty.fields.len()];
    let mut values: Vec<Option<J>> = vec![None; ty.fields.len()];
    for (ix, f) in ty.fields.iter().enumerate() {
        if !f.required && u.arbitrary()? {
            continue;
        }
        let value = match &f.kind {
            FieldKind::Int { min, max } => {
                let lo = (*min).max(0).min(*max);
                let v = u.int_in_range(lo..=(*max).min(lo + 1000))?;
                ints[ix] = Some(v);
                J::Num(v.to_string())
            }
            FieldKind::Decimal { scale, min, max } => {
                let lo = (*min).max(0).min(*max);
                let v = u.int_in_range(lo..=(*max).min(lo + 100_000))?;
                J::Num(fixed_to_string(v, *scale))
            }
            FieldKind::Enum { values } => J::Str(u.choose(values)?.clone()),
            FieldKind::Id => J::Str(format!(
                "{}-{}",
                u.choose(&["rpa", "staff", "ds"])?,
                u.int_in_range(0..=999_999u32)?
            )),
            FieldKind::Stage { of } => {
                let (kpi, stages) = u.choose(&ome.milestones)?;
                values[*of] = Some(J::Str(kpi.clone()));
                J::Str(u.choose(stages)?.clone())
            }
        };
        values[ix] = Some(value);
    }
    for &(a, b) in &ty.rules {
        if let (Some(x), Some(y)) = (ints[a], ints[b]) {
            if x > y {
                values[a] = Some(J::Num(y.to_string()));
            }
        }
    }
    let data = ty
        .fields
        .iter()
        .zip(values)
        .filter_map(|(f, v)| Some((Key::Text(f.name.clone()), v?)))
        .collect();
    let mut members = vec![
        (Key::Text("event_id".into()), J::Str(id)),
        (Key::Text("source".into()), J::Str(source.into())),
        (Key::Text("type".into()), J::Str(ty.name.clone())),
        (Key::Text("occurred_at".into()), J::Str(at)),
        (Key::Text("data".into()), J::Obj(data)),
    ];
    if ty.voids {
        let voided = format!("{source}-{}", u.int_in_range(0..=999_999u32)?);
        members.push((Key::Text("voids".into()), J::Str(voided)));
    }
    for i in (1..members.len()).rev() {
        let j = u.int_in_range(0..=i)?;
        members.swap(i, j);
    }
    Ok(J::Obj(members))
}

/// The `n`-th (cycled) array or object of a tree, in document order.
fn nth_container(j: &mut J, n: usize) -> Option<&mut J> {
    let pick = |j: &J| matches!(j, J::Arr(_) | J::Obj(_));
    match count(j, &pick) {
        0 => None,
        count => find_nth(j, &mut (n % count), &pick),
    }
}

/// The `n`-th (cycled) string of a tree, in document order.
fn nth_string(j: &mut J, n: usize) -> Option<&mut J> {
    let pick = |j: &J| matches!(j, J::Str(_));
    match count(j, &pick) {
        0 => None,
        count => find_nth(j, &mut (n % count), &pick),
    }
}

fn count(j: &J, pick: &dyn Fn(&J) -> bool) -> usize {
    usize::from(pick(j))
        + match j {
            J::Arr(items) => items.iter().map(|i| count(i, pick)).sum(),
            J::Obj(members) => members.iter().map(|(_, v)| count(v, pick)).sum(),
            _ => 0,
        }
}

fn find_nth<'a>(j: &'a mut J, n: &mut usize, pick: &dyn Fn(&J) -> bool) -> Option<&'a mut J> {
    if pick(j) {
        if *n == 0 {
            return Some(j);
        }
        *n -= 1;
    }
    match j {
        J::Arr(items) => items.iter_mut().find_map(|i| find_nth(i, n, pick)),
        J::Obj(members) => members.iter_mut().find_map(|(_, v)| find_nth(v, n, pick)),
        _ => None,
    }
}

/// Puts `payload` into `tree` at `placement`.
fn embed(tree: &mut J, payload: Payload, p: &Placement) {
    if let (true, Payload::Str(a, n, b)) = (p.replace, &payload) {
        if let Some(s) = nth_string(tree, usize::from(p.target)) {
            *s = J::Embedded(a.clone(), n.clone(), b.clone());
            return;
        }
    }
    // An embedded key goes straight into an object when nothing wraps it.
    let direct_member = matches!(payload, Payload::Key(..)) && p.wraps.is_empty();
    let mut value = match payload {
        Payload::Str(a, n, b) => J::Embedded(a, n, b),
        Payload::Num(n) => J::EmbeddedNum(n),
        Payload::Key(a, n, b) => J::Obj(vec![(Key::Embedded(a, n, b), J::Num("1".into()))]),
    };
    for w in p.wraps.iter().take(6) {
        value = match *w {
            Wrap::Array(before) => {
                let mut items = vec![J::Null; usize::from(before % 3)];
                items.push(value);
                J::Arr(items)
            }
            Wrap::Object => J::Obj(vec![(Key::Text("w".into()), value)]),
        };
    }
    match nth_container(tree, usize::from(p.target)) {
        Some(J::Obj(members)) => {
            let at = usize::from(p.at) % (members.len() + 1);
            let member = match value {
                J::Obj(mut inner) if direct_member => inner.remove(0),
                v => (
                    Key::Text(KEYS[usize::from(p.key) % KEYS.len()].to_owned()),
                    v,
                ),
            };
            members.insert(at, member);
        }
        Some(J::Arr(items)) => {
            let at = usize::from(p.at) % (items.len() + 1);
            items.insert(at, value);
        }
        _ => *tree = value,
    }
}

/// Writes a tree as JSON text, with the style's whitespace and escapes, noting the
/// guard's path of the embedded value.
struct Writer<'s> {
    out: String,
    style: &'s Style,
    ws: usize,
    esc: usize,
    path: String,
    found: Option<String>,
}

impl Writer<'_> {
    fn pick(v: &[u8], i: &mut usize) -> u8 {
        if v.is_empty() {
            return 0;
        }
        let b = v[*i % v.len()];
        *i += 1;
        b
    }

    fn ws(&mut self) {
        let s = match Self::pick(&self.style.ws, &mut self.ws) % 8 {
            0..=3 => "",
            4 => " ",
            5 => "\n",
            6 => "\t",
            _ => "\r\n  ",
        };
        self.out.push_str(s);
    }

    fn note(&mut self) {
        self.found = Some(if self.path.is_empty() {
            "$".to_owned()
        } else {
            self.path.clone()
        });
    }

    fn char(&mut self, c: char) {
        let how = Self::pick(&self.style.esc, &mut self.esc) % 4;
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\n' => Some("\\n"),
            '\t' => Some("\\t"),
            '\r' => Some("\\r"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            _ => None,
        };
        let must = c == '"' || c == '\\' || c < ' ';
        match (how, short) {
            (1, Some(s)) => self.out.push_str(s),
            (0, _) if !must => self.out.push(c),
            (1, None) if !must => self.out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if how == 3 {
                        self.out.push_str(&format!("\\u{unit:04X}"));
                    } else {
                        self.out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
    }

    fn text(&mut self, s: &str) {
        for c in s.chars() {
            self.char(c);
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        self.text(s);
        self.out.push('"');
    }

    fn embedded(&mut self, before: &str, number: &str, after: &str) {
        self.note();
        self.out.push('"');
        self.text(before);
        self.out.push_str(number);
        self.text(after);
        self.out.push('"');
    }

    fn value(&mut self, j: &J) {
        match j {
            J::Null => self.out.push_str("null"),
            J::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => self.out.push_str(n),
            J::Str(s) => self.string(s),
            J::Embedded(a, n, b) => self.embedded(a, n, b),
            J::EmbeddedNum(n) => {
                self.note();
                self.out.push_str(n);
            }
            J::Arr(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    self.ws();
                    if i > 0 {
                        self.out.push(',');
                        self.ws();
                    }
                    let len = self.path.len();
                    self.path.push_str(&format!("[{i}]"));
                    self.value(item);
                    self.path.truncate(len);
                }
                self.ws();
                self.out.push(']');
            }
            J::Obj(members) => {
                self.out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    self.ws();
                    if i > 0 {
                        self.out.push(',');
                        self.ws();
                    }
                    let len = self.path.len();
                    if !self.path.is_empty() {
                        self.path.push('.');
                    }
                    match k {
                        Key::Text(t) => {
                            self.path.push_str(&guard::key_label(t, i));
                            self.string(t);
                        }
                        Key::Embedded(a, n, b) => {
                            self.path.push_str(&format!("<key {i}>"));
                            self.embedded(a, n, b);
                        }
                    }
                    self.ws();
                    self.out.push(':');
                    self.ws();
                    self.value(v);
                    self.path.truncate(len);
                }
                self.ws();
                self.out.push('}');
            }
        }
    }
}

/// A tree as JSON text (with a byte order mark first when `bom`), and the path of its
/// embedded value.
fn write(tree: &J, style: &Style, bom: bool) -> (String, Option<String>) {
    let mut w = Writer {
        out: String::new(),
        style,
        ws: 0,
        esc: 0,
        path: String::new(),
        found: None,
    };
    if bom {
        w.out.push('\u{FEFF}');
    }
    w.ws();
    w.value(tree);
    w.ws();
    (w.out, w.found)
}

/// What an [`EmbeddedEvent`] holds.
#[derive(Clone, Debug)]
enum Kind {
    /// A personal number: the event must be rejected as `personal_number`.
    PersonalNumber([u8; 12]),
    /// A 13-digit run: the event must not be.
    NearMiss,
}

/// A skeleton (a valid event of the plan, or any JSON value) with a personal number or a
/// 13-digit near miss embedded, written out.
pub struct EmbeddedEvent {
    /// The skeleton alone, and whether it is a valid event.
    skeleton: (String, bool),
    /// The skeleton with the embedded value.
    raw: String,
    /// The guard's path of the embedded value.
    field: String,
    kind: Kind,
}

impl<'a> Arbitrary<'a> for EmbeddedEvent {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let ome = crate::ome();
        let valid = u.arbitrary::<bool>()?;
        let mut tree = if valid {
            envelope(u, ome)?
        } else {
            tree(u, 0)?
        };
        let style: Style = u.arbitrary()?;
        let bom = u.ratio(1, 8)?;
        let (skeleton, _) = write(&tree, &style, bom);
        let pn = u.arbitrary::<PersonalNumber>()?;
        let near_miss = u.ratio(1, 4)?;
        let placement: Placement = u.arbitrary()?;
        let (payload, kind) = if near_miss {
            let notation: TextNotation = u.arbitrary()?;
            let kind: NearMiss = u.arbitrary()?;
            let pn = match kind {
                NearMiss::AfterNul => pn.starting_with_zero(),
                NearMiss::Longer { .. } | NearMiss::EscapedTwice => pn.digits(),
            };
            let run = notation.near_miss(&pn, kind);
            // Long enough text before it that a value cut at 64 characters may cut the run.
            let (a, b) = (around(u, 70, true)?, around(u, 12, false)?);
            let payload = if u.arbitrary()? {
                Payload::Str(a, run, b)
            } else {
                Payload::Key(a, run, b)
            };
            (payload, Kind::NearMiss)
        } else {
            let pn = pn.digits();
            let payload = match u.int_in_range(0..=2u8)? {
                0 => {
                    let (n, _) = u.arbitrary::<TextNotation>()?.personal_number(&pn);
                    Payload::Str(around(u, 12, true)?, n, around(u, 12, false)?)
                }
                1 => {
                    let (n, _) = u.arbitrary::<TextNotation>()?.personal_number(&pn);
                    Payload::Key(around(u, 12, true)?, n, around(u, 12, false)?)
                }
                _ => Payload::Num(u.arbitrary::<NumberSpec>()?.write(&pn)),
            };
            (payload, Kind::PersonalNumber(pn))
        };
        embed(&mut tree, payload, &placement);
        let (raw, field) = write(&tree, &style, bom);
        Ok(EmbeddedEvent {
            skeleton: (skeleton, valid),
            raw,
            field: field.unwrap_or_default(),
            kind,
        })
    }
}

impl EmbeddedEvent {
    /// Checks the skeleton (a valid event is accepted, whatever its whitespace and
    /// escapes) and the event with the embedded value.
    pub fn check(&self, ome: &Ome) {
        let (skeleton, valid) = &self.skeleton;
        if *valid {
            if let Err(r) = mieruka_ingest::decode(&ome.schema, skeleton.as_bytes()) {
                panic!("a valid event is rejected ({r}): {skeleton}");
            }
        }
        checks::check_event(&ome.schema, skeleton.as_bytes());
        match &self.kind {
            Kind::PersonalNumber(digits) => {
                checks::check_embedded_event(&ome.schema, self.raw.as_bytes(), digits, &self.field)
            }
            Kind::NearMiss => checks::check_near_miss_event(&ome.schema, self.raw.as_bytes()),
        }
    }
}

/// The replay form (`fuzz/regressions/decode_embedded/*.json`): what `cargo fuzz fmt`
/// prints for a crash, to be saved as a regression.
impl fmt::Debug for EmbeddedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replay = match &self.kind {
            Kind::PersonalNumber(d) => serde_json::json!({
                "raw": self.raw,
                "digits": d.iter().map(|x| char::from(b'0' + x)).collect::<String>(),
                "field": self.field,
            }),
            Kind::NearMiss => serde_json::json!({"raw": self.raw, "near_miss": true}),
        };
        write!(f, "{replay:#}")
    }
}

/// A text with a personal number (or a 13-digit near miss) between delimiters, for the
/// guard alone.
pub struct TextCase {
    before: String,
    number: String,
    masked: String,
    after: String,
    near_miss: bool,
}

impl<'a> Arbitrary<'a> for TextCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let before = format!("{}{}", String::arbitrary(u)?, u.choose(&DELIMITERS)?);
        let after = format!("{}{}", u.choose(&DELIMITERS)?, String::arbitrary(u)?);
        let pn = u.arbitrary::<PersonalNumber>()?.digits();
        let notation: TextNotation = u.arbitrary()?;
        let near_miss = u.ratio(1, 4)?;
        let (number, masked) = if near_miss {
            let kind = NearMiss::Longer {
                extra: u.arbitrary()?,
                at_end: u.arbitrary()?,
            };
            let run = notation.near_miss(&pn, kind);
            (run.clone(), run)
        } else {
            notation.personal_number(&pn)
        };
        Ok(TextCase {
            before,
            number,
            masked,
            after,
            near_miss,
        })
    }
}

impl TextCase {
    /// Checks the guard on it ([`checks::check_embedded_text`] or
    /// [`checks::check_near_miss_text`]).
    pub fn check(&self) {
        if self.near_miss {
            checks::check_near_miss_text(&self.before, &self.number, &self.after);
        } else {
            checks::check_embedded_text(&self.before, &self.number, &self.masked, &self.after);
        }
    }
}

/// The replay form (`fuzz/regressions/guard_mask/*.json`).
impl fmt::Debug for TextCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replay = serde_json::json!({
            "before": self.before,
            "number": self.number,
            "masked": self.masked,
            "after": self.after,
            "near_miss": self.near_miss,
        });
        write!(f, "{replay:#}")
    }
}
