//! Personal numbers hidden in events, for the guard's property tests: a random valid
//! number, the notations the guard reads (docs/architecture.md, "Rejections and the personal-number
//! guard"), the places of an event it may sit in, and [`leaks`], which says whether bytes
//! still hold a number in any of those forms.
//!
//! The forms are written down here from the design, not asked of the guard: a test that
//! took its notion of a personal number from the guard could not notice the guard
//! forgetting one.

use std::collections::HashSet;

use mieruka_ingest::guard::check_digit;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// The separators the guard reads between groups of four digits: ASCII hyphen-minus and
/// space, the hyphens and dashes U+2010–U+2015, the minus sign, the full-width
/// hyphen-minus, the long-vowel marks Japanese input produces for a dash, the ideographic
/// space and the no-break space (the guard's module docs).
pub const SEPARATORS: [char; 14] = [
    '-', ' ', '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
    '\u{FF0D}', '\u{30FC}', '\u{FF70}', '\u{3000}', '\u{00A0}',
];

/// A valid personal number: eleven random digits and their check digit.
pub fn personal_number() -> BoxedStrategy<[u8; 12]> {
    proptest::array::uniform11(0u8..10)
        .prop_map(|first| {
            let mut d = [0; 12];
            d[..11].copy_from_slice(&first);
            d[11] = check_digit(&first);
            d
        })
        .boxed()
}

/// How one digit of a string is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digit {
    Ascii,
    FullWidth,
    /// A JSON escape of the ASCII or the full-width digit, in upper- or lower-case hex.
    Escaped {
        full_width: bool,
        upper: bool,
    },
}

/// How a separator between groups of four is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Separator {
    pub ch: char,
    /// `Some(upper)`: as a JSON escape, in that case of hex.
    pub escaped: Option<bool>,
}

/// A personal number written in a JSON string (or key): each digit in its form, plainly
/// or grouped 4-4-4.
#[derive(Clone, Debug)]
pub struct Text {
    pub digits: [Digit; 12],
    pub groups: Option<[Separator; 2]>,
}

/// How the exponent of a number is written, when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exponent {
    pub upper: bool,
    pub plus: bool,
}

/// A personal number written as a JSON number, read by its value: the integer part
/// (`123456789018`, `1.23456789018e11`, `12345678901.8E+1`, `1234567890180e-1`,
/// `123456789018.000`) or the fraction part (`0.123456789018`, `1.23456789018e-1`,
/// `123456789018e-12`) of its canonical decimal form, maybe negative.
#[derive(Clone, Copy, Debug)]
pub struct Number {
    pub negative: bool,
    /// The fraction part rather than the integer part (always when the number starts
    /// with 0: a JSON integer has no leading zeros).
    pub fraction: bool,
    /// Trailing zeros written after the digits (they change nothing).
    pub zeros: usize,
    /// Where the decimal point goes, taken modulo the places there are (the exponent
    /// makes up for it).
    pub point: usize,
    /// How the exponent is written. With a style, one is written even when the value
    /// needs none (`e0`); without, it is written `e` when needed.
    pub exponent: Option<Exponent>,
}

/// A personal number in a notation.
#[derive(Clone, Debug)]
pub enum Notation {
    /// In a string or a key, with text around it (raw JSON: escapes as written). The
    /// text next to the number is never a digit or a separator, so it cannot merge with
    /// the number: a 13-digit run is by design not a personal number.
    Text {
        text: Text,
        before: String,
        after: String,
    },
    /// A JSON number.
    Number(Number),
}

/// Where in the event the number sits.
#[derive(Clone, Debug)]
pub enum Place {
    /// The value of an envelope field (`event_id`, `source`, `type`, `occurred_at`).
    Envelope(&'static str),
    /// A key of the envelope, inserted at `index` among its members.
    EnvelopeKey { index: usize },
    /// The value of an envelope field that does not exist, inserted at `index`.
    EnvelopeExtra { key: String, index: usize },
    /// The value of a declared field of `data` (`channel`, `certificate`, `count`), of
    /// the right type or not.
    Data { field: &'static str },
    /// Inside `data`, through the objects and arrays of `steps` (or in `data` itself,
    /// after its declared fields, when there are none): as a key, or as the value of
    /// `leaf_key` (an array element in an array), after `fillers` other members or
    /// elements.
    Nested {
        steps: Vec<Step>,
        leaf_key: String,
        fillers: usize,
        as_key: bool,
    },
}

/// One level of nesting inside `data`: an object or an array, with `fillers` members or
/// elements before the one that goes deeper.
#[derive(Clone, Debug)]
pub struct Step {
    /// The key it is reached by when the level above is an object.
    pub key: String,
    pub array: bool,
    pub fillers: usize,
}

/// The rest of a valid `certificate.issued` event of the konbini system.
#[derive(Clone, Debug)]
pub struct Base {
    pub id: String,
    pub occurred_at: String,
    pub channel: &'static str,
    pub certificate: &'static str,
    pub count: u8,
}

/// One generated event: a valid event of the Ome plan with a personal number in it.
#[derive(Clone, Debug)]
pub struct Case {
    pub digits: [u8; 12],
    pub notation: Notation,
    pub place: Place,
    pub base: Base,
}

fn digit() -> BoxedStrategy<Digit> {
    prop_oneof![
        Just(Digit::Ascii),
        Just(Digit::FullWidth),
        (any::<bool>(), any::<bool>())
            .prop_map(|(full_width, upper)| Digit::Escaped { full_width, upper }),
    ]
    .boxed()
}

fn separator() -> BoxedStrategy<Separator> {
    (select(&SEPARATORS[..]), proptest::option::of(any::<bool>()))
        .prop_map(|(ch, escaped)| Separator { ch, escaped })
        .boxed()
}

fn text() -> BoxedStrategy<Text> {
    let digits = prop_oneof![
        digit().prop_map(|d| [d; 12]),
        proptest::array::uniform12(digit()),
    ];
    (
        digits,
        proptest::option::of(proptest::array::uniform2(separator())),
    )
        .prop_map(|(digits, groups)| Text { digits, groups })
        .boxed()
}

/// Text that may sit next to a number, as raw JSON string content: words, kana and
/// kanji, short digit runs (at most two digits each and four pieces a side, so no
/// stray 12-digit run or 4-4-4 group forms), separators, and escapes — among them an
/// escaped backslash, which decoded reads as the start of an escape.
fn filler_text() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        "[a-zA-Z]{1,6}",
        "[0-9]{1,2}",
        "[ぁ-ゖ]{1,3}",
        "[一-龠]{1,2}",
        select(vec![" ", "-", "\u{3000}", "ー", ".", ","]).prop_map(str::to_owned),
        select(vec![
            r"\n",
            r"\t",
            r#"\""#,
            r"\\",
            r"\/",
            r"\u00e9",
            r"\u3042",
            r"\uD83D\uDE00",
        ])
        .prop_map(str::to_owned),
    ];
    vec(piece, 0..=4).prop_map(|p| p.concat()).boxed()
}

/// What separates the number from the text before it: never a digit or a separator.
/// `\\u` decodes to a backslash and a `u`, which read again as an escape would swallow
/// the first four digits.
fn delimiter_before() -> impl Strategy<Value = &'static str> {
    select(vec![
        ":", "#", "(", "x", "=", "/", "_", "é", "号", r"\\u", r"\\", r#"\""#,
    ])
}

fn delimiter_after() -> impl Strategy<Value = &'static str> {
    select(vec![")", ";", "x", "/", "号", r"\n", r"\\", r#"\""#])
}

fn text_notation() -> BoxedStrategy<Notation> {
    let around = prop_oneof![
        Just((String::new(), String::new())),
        (
            filler_text(),
            delimiter_before(),
            delimiter_after(),
            filler_text(),
            any::<(bool, bool)>()
        )
            .prop_map(|(a, da, db, b, (with_a, with_b))| {
                (
                    if with_a {
                        format!("{a}{da}")
                    } else {
                        String::new()
                    },
                    if with_b {
                        format!("{db}{b}")
                    } else {
                        String::new()
                    },
                )
            }),
    ];
    (text(), around)
        .prop_map(|(text, (before, after))| Notation::Text {
            text,
            before,
            after,
        })
        .boxed()
}

fn number_notation() -> BoxedStrategy<Notation> {
    (
        any::<bool>(),
        any::<bool>(),
        0usize..=3,
        0usize..16,
        proptest::option::of(any::<(bool, bool)>()),
    )
        .prop_map(|(negative, fraction, zeros, point, exponent)| {
            Notation::Number(Number {
                negative,
                fraction,
                zeros,
                point,
                exponent: exponent.map(|(upper, plus)| Exponent { upper, plus }),
            })
        })
        .boxed()
}

fn key_name() -> impl Strategy<Value = String> {
    "[a-z_]{1,8}"
}

/// Places for a value, weighted by how many kinds each stands for (four envelope
/// fields, three declared fields, nesting up to three levels deep).
fn place_for_value() -> BoxedStrategy<Place> {
    prop_oneof![
        4 => select(vec!["event_id", "source", "type", "occurred_at"]).prop_map(Place::Envelope),
        1 => (key_name(), 0usize..=5).prop_map(|(key, index)| Place::EnvelopeExtra { key, index }),
        3 => select(vec!["channel", "certificate", "count"]).prop_map(|field| Place::Data { field }),
        4 => nested_place(false),
    ].boxed()
}

fn place_for_key() -> BoxedStrategy<Place> {
    prop_oneof![
        1 => (0usize..=5).prop_map(|index| Place::EnvelopeKey { index }),
        4 => nested_place(true),
    ]
    .boxed()
}

fn nested_place(as_key: bool) -> BoxedStrategy<Place> {
    let step = (key_name(), any::<bool>(), 0usize..=2).prop_map(|(key, array, fillers)| Step {
        key,
        array,
        fillers,
    });
    (vec(step, 0..=3), key_name(), 0usize..=2)
        .prop_map(move |(steps, leaf_key, fillers)| Place::Nested {
            steps,
            leaf_key,
            fillers,
            as_key,
        })
        .boxed()
}

fn base() -> BoxedStrategy<Base> {
    (
        "[a-z]{2,6}-[0-9]{1,6}",
        (4u8..=9, 1u8..=28, 0u8..=23, 0u8..=59),
        select(vec!["konbini", "counter", "mail", "online"]),
        select(vec!["juminhyo", "inkan", "koseki", "tax", "other"]),
        1u8..=5,
    )
        .prop_map(
            |(id, (month, day, hour, minute), channel, certificate, count)| Base {
                id: format!("konbini-{id}"),
                occurred_at: format!("2026-{month:02}-{day:02}T{hour:02}:{minute:02}:00+09:00"),
                channel,
                certificate,
                count,
            },
        )
        .boxed()
}

/// An event of the shipped Ome plan with a valid personal number somewhere in it, in
/// some notation. The strategies here are boxed: nested unboxed, their value trees are
/// built in stack frames that took 1.5 MiB of a test thread's 2 MiB in a debug build,
/// and two cases overflowed it.
pub fn case() -> BoxedStrategy<Case> {
    let placed = prop_oneof![
        1 => (text_notation(), place_for_key()),
        2 => (
            prop_oneof![text_notation(), number_notation()],
            place_for_value()
        ),
    ];
    (personal_number(), placed, base())
        .prop_map(|(digits, (notation, place), base)| Case {
            digits,
            notation,
            place,
            base,
        })
        .boxed()
}

fn push_escape(out: &mut String, c: u32, upper: bool) {
    if upper {
        out.push_str(&format!("\\u{c:04X}"));
    } else {
        out.push_str(&format!("\\u{c:04x}"));
    }
}

impl Text {
    /// The digits written in this notation, as raw JSON string content.
    pub fn render(&self, d: &[u8; 12]) -> String {
        let mut out = String::new();
        for (i, (&digit, form)) in d.iter().zip(self.digits).enumerate() {
            if let (Some(groups), 4 | 8) = (&self.groups, i) {
                let sep = groups[i / 4 - 1];
                match sep.escaped {
                    Some(upper) => push_escape(&mut out, u32::from(sep.ch), upper),
                    None => out.push(sep.ch),
                }
            }
            match form {
                Digit::Ascii => out.push(char::from(b'0' + digit)),
                Digit::FullWidth => {
                    out.push(char::from_u32(0xFF10 + u32::from(digit)).unwrap_or('?'))
                }
                Digit::Escaped { full_width, upper } => {
                    let base = if full_width { 0xFF10 } else { 0x30 };
                    push_escape(&mut out, base + u32::from(digit), upper);
                }
            }
        }
        out
    }
}

impl Number {
    /// The digits as a JSON number in this notation. A notation that cannot carry them
    /// (an integer part starting with 0; a fraction ending in 0, which its canonical
    /// form drops) writes the fraction out instead: `0.` and the twelve digits.
    pub fn render(&self, d: &[u8; 12]) -> String {
        let digits: String = d.iter().map(|x| char::from(b'0' + x)).collect();
        let sign = if self.negative { "-" } else { "" };
        let zeros = "0".repeat(self.zeros);
        // The mantissa's digits, the point after `k` of them, and the exponent that puts
        // the value back. Integer part: d ‖ zeros with the point after k digits is
        // d × 10^(k − 12), so the exponent is 12 − k. Fraction part: S ‖ zeros (S the
        // digits without their `lead` leading zeros) with the point after k digits is
        // 0.d × 10^(lead + k), so the exponent is −lead − k.
        let (mantissa, k, exp) = if self.fraction || d[0] == 0 {
            let lead = d.iter().take_while(|x| **x == 0).count();
            let len = 12 - lead + self.zeros;
            let k = self.point % (len + 1);
            if d[11] == 0 {
                return format!("{sign}0.{digits}");
            }
            if k == 0 {
                return format!("{sign}0.{digits}{zeros}");
            }
            (
                format!("{}{zeros}", &digits[lead..]),
                k,
                -(lead as i64) - k as i64,
            )
        } else {
            let len = 12 + self.zeros;
            let k = 1 + self.point % len;
            (format!("{digits}{zeros}"), k, 12 - k as i64)
        };
        let mut out = format!("{sign}{}", &mantissa[..k]);
        if k < mantissa.len() {
            out.push('.');
            out.push_str(&mantissa[k..]);
        }
        if exp != 0 || self.exponent.is_some() {
            let style = self.exponent.unwrap_or(Exponent {
                upper: false,
                plus: false,
            });
            out.push(if style.upper { 'E' } else { 'e' });
            if style.plus && exp >= 0 {
                out.push('+');
            }
            out.push_str(&exp.to_string());
        }
        out
    }
}

impl Notation {
    /// The number in this notation as a JSON value: a string, or a number.
    pub fn json(&self, d: &[u8; 12]) -> String {
        match self {
            Notation::Text {
                text,
                before,
                after,
            } => format!("\"{before}{}{after}\"", text.render(d)),
            Notation::Number(n) => n.render(d),
        }
    }
}

/// Values for filler array elements.
const FILLERS: [&str; 6] = ["1", "\"x\"", "null", "true", "{}", "[]"];

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

impl Case {
    /// The event's raw JSON.
    pub fn event(&self) -> String {
        self.render().0
    }

    /// The field the guard must name: the path of the place, a key holding the number
    /// named by its position (`data.a[1].<key 0>`).
    pub fn field(&self) -> String {
        self.render().1
    }

    /// Message keys as a source topic's producer may write them, holding the number
    /// too: `konbini/` and the number in the same notation, escapes as written; and
    /// `konbini/` and the string's value, as a key `source/event_id` is made from the
    /// decoded id. A JSON number goes by its sign and digits: a key is text, not JSON.
    pub fn message_keys(&self) -> Vec<String> {
        match &self.notation {
            Notation::Text {
                text,
                before,
                after,
            } => {
                let written = text.render(&self.digits);
                let raw = format!("\"{before}{written}{after}\"");
                let decoded: String = serde_json::from_str(&raw).unwrap_or_default();
                vec![format!("konbini/{written}"), format!("konbini/{decoded}")]
            }
            Notation::Number(n) => {
                let digits: String = self.digits.iter().map(|x| char::from(b'0' + x)).collect();
                let sign = if n.negative { "-" } else { "" };
                vec![format!("konbini/{sign}{digits}")]
            }
        }
    }

    fn render(&self) -> (String, String) {
        let b = &self.base;
        let value = self.notation.json(&self.digits);
        let mut data = vec![
            (quoted("channel"), quoted(b.channel)),
            (quoted("certificate"), quoted(b.certificate)),
            (quoted("count"), b.count.to_string()),
        ];
        let mut field = None;
        match &self.place {
            Place::Data { field: name } => {
                for (k, v) in &mut data {
                    if *k == quoted(name) {
                        v.clone_from(&value);
                    }
                }
                field = Some(format!("data.{name}"));
            }
            Place::Nested {
                steps,
                leaf_key,
                fillers,
                as_key,
            } => {
                let (members, path) = nested(&data, steps, leaf_key, *fillers, *as_key, &value);
                data = members;
                field = Some(format!("data{path}"));
            }
            _ => {}
        }
        let data_json = object(&data);
        let mut envelope = vec![
            (quoted("event_id"), quoted(&b.id)),
            (quoted("source"), quoted("konbini")),
            (quoted("type"), quoted("certificate.issued")),
            (quoted("occurred_at"), quoted(&b.occurred_at)),
            (quoted("data"), data_json),
        ];
        match &self.place {
            Place::Envelope(name) => {
                for (k, v) in &mut envelope {
                    if *k == quoted(name) {
                        v.clone_from(&value);
                    }
                }
                field = Some((*name).to_owned());
            }
            Place::EnvelopeKey { index } => {
                let i = (*index).min(envelope.len());
                envelope.insert(i, (value.clone(), "1".to_owned()));
                field = Some(format!("<key {i}>"));
            }
            Place::EnvelopeExtra { key, index } => {
                let i = (*index).min(envelope.len());
                envelope.insert(i, (quoted(key), value.clone()));
                field = Some(key.clone());
            }
            _ => {}
        }
        (object(&envelope), field.unwrap_or_default())
    }
}

fn object(members: &[(String, String)]) -> String {
    let inner: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// `data`'s members with the number nested through `steps`, and its path below `data`.
/// Level 0 is `data` itself; level i ≥ 1 is `steps[i − 1]`, inside level i − 1.
fn nested(
    declared: &[(String, String)],
    steps: &[Step],
    leaf_key: &str,
    data_fillers: usize,
    as_key: bool,
    value: &str,
) -> (Vec<(String, String)>, String) {
    let n = steps.len();
    let array = |i: usize| i > 0 && steps[i - 1].array;
    let fillers = |i: usize| {
        if i == 0 {
            data_fillers
        } else {
            steps[i - 1].fillers
        }
    };
    // The child of level i: its JSON, its path below it, and whether it is a member whose
    // key is the number (only as the leaf of an object).
    let (mut json, mut below, mut key_is_number) = if as_key && array(n) {
        (format!("{{{value}:1}}"), ".<key 0>".to_owned(), false)
    } else {
        (value.to_owned(), String::new(), as_key)
    };
    let mut members = Vec::new();
    for i in (0..=n).rev() {
        let child_key = if i == n { leaf_key } else { &steps[i].key };
        if array(i) {
            let mut elements: Vec<&str> = (0..fillers(i)).map(|j| FILLERS[j % 6]).collect();
            elements.push(&json);
            below = format!("[{}]{below}", fillers(i));
            json = format!("[{}]", elements.join(","));
        } else {
            members = if i == 0 {
                declared.to_vec()
            } else {
                Vec::new()
            };
            members
                .extend((0..fillers(i)).map(|j| (quoted(&format!("filler{j}")), "1".to_owned())));
            let label = if key_is_number {
                members.push((json.clone(), "1".to_owned()));
                format!("<key {}>", members.len() - 1)
            } else {
                members.push((quoted(child_key), json.clone()));
                child_key.to_owned()
            };
            below = format!(".{label}{below}");
            json = object(&members);
        }
        key_is_number = false;
    }
    (members, below)
}

/// Whether `haystack` holds the personal number `digits` in any form: ASCII or full-width
/// digits, each maybe escaped (`\u0031`, `\uFF11`, `\uff11`, or Rust's `\u{ff11}` of a
/// debug-printed log field), with any of the [`SEPARATORS`] (plain or escaped) or a
/// decimal point between them, or none; or a number whose value has them in its integer
/// or fraction part (`1.2345678905e-2` holds 012345678905). Stricter than the guard on
/// purpose: a number cut anywhere by a separator still counts, and so does one inside a
/// longer run.
pub fn leaks(haystack: &[u8], digits: &[u8; 12]) -> bool {
    twelve_digit_runs(haystack).contains(digits)
}

/// Every run of 12 digits `haystack` holds, read as [`leaks`] reads it: to look for
/// many numbers in one large haystack at once.
pub fn twelve_digit_runs(haystack: &[u8]) -> HashSet<[u8; 12]> {
    let mut runs = HashSet::new();
    add_runs(&digit_stream(haystack), &mut runs);
    for token in number_tokens(haystack) {
        if let Some(plain) = plain_decimal(token) {
            add_runs(&digit_stream(plain.as_bytes()), &mut runs);
        }
    }
    runs
}

fn add_runs(stream: &[u8], runs: &mut HashSet<[u8; 12]>) {
    runs.extend(
        stream
            .windows(12)
            .filter_map(|w| <[u8; 12]>::try_from(w).ok())
            .filter(|w| w.iter().all(|d| *d < 10)),
    );
}

/// The runs of the bytes a JSON number is made of that start as one does.
fn number_tokens(h: &[u8]) -> impl Iterator<Item = &[u8]> {
    h.split(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .filter(|t| t.first().is_some_and(|b| b.is_ascii_digit() || *b == b'-'))
}

/// A number's value written out in plain decimal, without its sign (`1.23456789018e-1`
/// is `0.123456789018`): when `token` is a number, with an exponent of at most 64.
fn plain_decimal(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    let text = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    if exp.abs() > 64 {
        return None;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let point = int.len() as i32 + exp;
    Some(if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (i, f) = digits.split_at(point as usize);
        format!("{i}.{f}")
    })
}

/// What [`digit_stream`] makes of a character.
enum Token {
    Digit(u8),
    Separator,
    Other,
}

fn token_of(c: char) -> Token {
    match c {
        '0'..='9' => Token::Digit(c as u8 - b'0'),
        '\u{FF10}'..='\u{FF19}' => Token::Digit((c as u32 - 0xFF10) as u8),
        '.' => Token::Separator,
        c if SEPARATORS.contains(&c) => Token::Separator,
        _ => Token::Other,
    }
}

/// `haystack` with every digit, in any form, as its value 0–9, separators and decimal
/// points dropped, and anything else as a break (255).
fn digit_stream(h: &[u8]) -> Vec<u8> {
    const BREAK: u8 = 255;
    let mut out = Vec::with_capacity(h.len());
    let mut i = 0;
    while i < h.len() {
        let (token, len) = escape_at(h, i)
            .filter(|(t, _)| !matches!(t, Token::Other))
            .or_else(|| char_at(h, i).map(|(c, len)| (token_of(c), len)))
            .unwrap_or((Token::Other, 1));
        match token {
            Token::Digit(d) => out.push(d),
            Token::Separator => {}
            Token::Other => out.push(BREAK),
        }
        i += len;
    }
    out
}

/// A `\uXXXX` (JSON) or `\u{X…}` (Rust debug) escape at `h[i]`, in either case of hex,
/// and its length. Any number of backslashes may lead it: an escape written as text and
/// escaped again (`\\u0031` in a JSON reply) still reads as its character.
fn escape_at(h: &[u8], i: usize) -> Option<(Token, usize)> {
    let slashes = h[i..].iter().take_while(|b| **b == b'\\').count();
    let u = i + slashes;
    if slashes == 0 || h.get(u) != Some(&b'u') {
        return None;
    }
    let (hex, end) = if h.get(u + 1) == Some(&b'{') {
        let close = (u + 2..h.len().min(u + 10)).find(|&j| h[j] == b'}')?;
        (&h[u + 2..close], close + 1)
    } else {
        (h.get(u + 1..u + 5)?, u + 5)
    };
    let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    Some((token_of(char::from_u32(code)?), end - i))
}

/// The UTF-8 character at `h[i]`, and its length.
fn char_at(h: &[u8], i: usize) -> Option<(char, usize)> {
    let len = match h[i] {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(h.get(i..i + len)?)
        .ok()?
        .chars()
        .next()?;
    Some((c, len))
}

const PN: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 8];

#[test]
fn leaks_finds_every_form_of_a_number() {
    let mut forms = vec![
        "123456789018".to_owned(),
        "１２３４５６７８９０１８".to_owned(),
        r"\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038\u0039\u0030\u0031\u0038".to_owned(),
        r"\uFF11\uff12\uFF13\uff14\uFF15\uFF16\uFF17\uFF18\uFF19\uFF10\uff11\uFF18".to_owned(),
        r"1\u0032３\uff14567890１8".to_owned(),
        r#"{"memo":"\\u0031\\u00323456789018"}"#.to_owned(),
        r"1234\u{3000}5678\u{2010}9018".to_owned(),
        "x 1234 5678 9018 y".to_owned(),
        "1.23456789018e11".to_owned(),
        "12345678901.8E+1".to_owned(),
        "1234567890180e-1".to_owned(),
        "0.123456789018".to_owned(),
        "123456789018.000".to_owned(),
        "-123456789018".to_owned(),
        "123456-789018".to_owned(),
        "1.23456789018E-1".to_owned(),
        "123456789018e-12".to_owned(),
    ];
    for sep in SEPARATORS {
        forms.push(format!("1234{sep}5678{sep}9018"));
        forms.push(format!("１２３４{sep}５６７８{sep}９０１８"));
        forms.push(format!(
            "1234\\u{:04x}5678\\u{:04X}9018",
            sep as u32, sep as u32
        ));
    }
    for form in forms {
        assert!(leaks(form.as_bytes(), &PN), "{form}");
        assert!(leaks(format!("log: {form} end").as_bytes(), &PN), "{form}");
    }
}

#[test]
fn leaks_does_not_fire_on_masked_or_other_numbers() {
    for text in [
        "************",
        "****-****-****",
        "*.***********e**",
        r"\u002a\u002a\u002a",
        "123456789017",
        "12345678901",
        "123456x789018",
        r"1234\u00415678",
        "",
    ] {
        assert!(!leaks(text.as_bytes(), &PN), "{text}");
    }
    assert!(!leaks(&[0xFF, 0xEF, 0xBC, b'1', 0x80], &PN));
    assert!(!leaks(b"1e999999999 2026-10-01T00:00:00+09:00", &PN));
}

#[test]
fn leaks_reads_a_number_by_its_value() {
    let leading = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 5];
    for form in ["1.2345678905e-2", "12345678905E-12", "-0.012345678905"] {
        assert!(leaks(form.as_bytes(), &leading), "{form}");
    }
    assert!(!leaks(b"1.2345678904e-2", &leading));
}

#[test]
fn numbers_are_written_in_the_notations_of_the_design() {
    let n = |negative, fraction, zeros, point, exponent: Option<(bool, bool)>| Number {
        negative,
        fraction,
        zeros,
        point,
        exponent: exponent.map(|(upper, plus)| Exponent { upper, plus }),
    };
    assert_eq!(n(false, false, 0, 11, None).render(&PN), "123456789018");
    assert_eq!(n(false, false, 0, 0, None).render(&PN), "1.23456789018e11");
    assert_eq!(
        n(false, false, 0, 10, Some((true, true))).render(&PN),
        "12345678901.8E+1"
    );
    assert_eq!(n(false, false, 1, 12, None).render(&PN), "1234567890180e-1");
    assert_eq!(n(false, false, 3, 11, None).render(&PN), "123456789018.000");
    assert_eq!(n(true, false, 0, 11, None).render(&PN), "-123456789018");
    assert_eq!(n(false, true, 0, 0, None).render(&PN), "0.123456789018");
    assert_eq!(n(false, true, 1, 0, None).render(&PN), "0.1234567890180");
    assert_eq!(n(false, true, 0, 1, None).render(&PN), "1.23456789018e-1");
    assert_eq!(n(false, true, 0, 12, None).render(&PN), "123456789018e-12");
    let leading = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 5];
    assert_eq!(
        n(false, false, 0, 0, None).render(&leading),
        "0.012345678905"
    );
    assert_eq!(
        n(false, false, 0, 1, None).render(&leading),
        "1.2345678905e-2"
    );
    let trailing = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 0];
    assert_eq!(
        n(false, true, 2, 3, None).render(&trailing),
        "0.123456789010"
    );
}

#[test]
fn text_is_written_digit_by_digit_and_grouped() {
    let text = Text {
        digits: [
            Digit::Ascii,
            Digit::FullWidth,
            Digit::Escaped {
                full_width: false,
                upper: false,
            },
            Digit::Escaped {
                full_width: true,
                upper: true,
            },
            Digit::Ascii,
            Digit::Ascii,
            Digit::Ascii,
            Digit::Ascii,
            Digit::Ascii,
            Digit::Ascii,
            Digit::Ascii,
            Digit::Escaped {
                full_width: true,
                upper: false,
            },
        ],
        groups: Some([
            Separator {
                ch: '\u{3000}',
                escaped: Some(false),
            },
            Separator {
                ch: '-',
                escaped: None,
            },
        ]),
    };
    assert_eq!(text.render(&PN), r"1２\u0033\uFF14\u30005678-901\uff18");
}
