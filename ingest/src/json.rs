//! A strict JSON reader (RFC 8259) for events, written for the trust boundary.
//!
//! Why not a general-purpose parser: the guard must see every key, string and number as
//! *written* and as *meant* — a number's exact text (`1.23456789018e11` is the integer
//! 123456789018, and a decimal field must be read without going through `f64`), the
//! byte span of every token (so a masked raw text hides exactly what the guard found),
//! and each object's keys in order (a key given twice is refused, and a key is named by
//! its position when its text cannot be shown). Nothing here allocates per string or
//! number: strings and numbers borrow the input, and escapes are resolved only when a
//! caller asks for the decoded text.
//!
//! Limits: nesting deeper than [`MAX_DEPTH`] is a syntax error (an event is two levels
//! deep; a hostile body must not exhaust the stack). Errors name a byte offset and what
//! was expected, never the input.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Deepest nesting of arrays and objects accepted. An event is two levels deep (the
/// envelope and `data`); 64 leaves room for whatever a sender nests by mistake while
/// keeping recursion far from the stack's limit.
pub const MAX_DEPTH: usize = 64;

/// A JSON value, borrowing the text it was read from.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number<'a>),
    String(Str<'a>),
    Array(Vec<Json<'a>>),
    Object(Vec<Member<'a>>),
}

/// One `key: value` of an object, in the order written.
#[derive(Clone, Debug, PartialEq)]
pub struct Member<'a> {
    pub key: Str<'a>,
    pub value: Json<'a>,
}

/// A string as written: its content between the quotes, escapes unresolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Str<'a> {
    /// The text between the quotes.
    pub raw: &'a str,
    /// Byte offset of `raw` in the document.
    pub start: usize,
    /// Whether `raw` holds a backslash escape.
    pub escaped: bool,
}

/// A number as written (`-12.5e3`): its exact text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Number<'a> {
    /// The token's text.
    pub text: &'a str,
    /// Byte offset of `text` in the document.
    pub start: usize,
}

/// Why a text is not JSON: what was expected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the text.
    pub offset: usize,
    /// What is wrong, never quoting the input.
    pub what: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for SyntaxError {}

impl<'a> Json<'a> {
    /// What kind of value this is, for messages ("an object", "a string", …).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(n) if n.is_integer_notation() => "an integer",
            Json::Number(_) => "a number with a fraction or exponent",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'a> Str<'a> {
    /// The string's value, escapes resolved (borrowed when it has none).
    #[inline]
    pub fn decoded(&self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        Cow::Owned(self.unescaped())
    }

    /// The value of a string with escapes.
    fn unescaped(&self) -> String {
        let mut out = String::with_capacity(self.raw.len());
        let b = self.raw.as_bytes();
        let mut i = 0;
        let mut plain = 0;
        while i < b.len() {
            if b[i] != b'\\' {
                i += 1;
                continue;
            }
            out.push_str(&self.raw[plain..i]);
            let (c, len) = unescape(b, i).unwrap_or(('\u{FFFD}', 2));
            out.push(c);
            i += len;
            plain = i;
        }
        out.push_str(&self.raw[plain..]);
        out
    }

    /// The byte range of the string's content in the document.
    pub fn span(&self) -> Range<usize> {
        self.start..self.start + self.raw.len()
    }
}

/// The character a backslash escape at `b[i]` stands for, and the escape's length in
/// bytes (a surrogate pair counts as one escape of 12 bytes). `None` when it is not a
/// valid JSON escape.
pub fn unescape(b: &[u8], i: usize) -> Option<(char, usize)> {
    let c = match *b.get(i + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(b, i + 2)?;
            if (0xD800..0xDC00).contains(&hi) {
                if b.get(i + 6) != Some(&b'\\') || b.get(i + 7) != Some(&b'u') {
                    return None;
                }
                let lo = hex4(b, i + 8)?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return None;
                }
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return char::from_u32(c).map(|c| (c, 12));
            }
            return char::from_u32(hi).map(|c| (c, 6));
        }
        _ => return None,
    };
    Some((c, 2))
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    let mut v = 0u32;
    for &c in s {
        v = v * 16 + char::from(c).to_digit(16)?;
    }
    Some(v)
}

impl<'a> Number<'a> {
    /// Whether it is written as an integer: no fraction, no exponent.
    pub fn is_integer_notation(&self) -> bool {
        !self.text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
    }

    /// The byte range of the token in the document.
    pub fn span(&self) -> Range<usize> {
        self.start..self.start + self.text.len()
    }

    /// Its value as an exact decimal (mantissa digits and a power of ten).
    pub fn decimal(&self) -> Decimal<'a> {
        Decimal::of(self.text)
    }
}

/// A number's exact value, read from its text without expanding it: `1e999999999` stays
/// a few bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal<'a> {
    /// Whether it has a minus sign.
    pub negative: bool,
    /// The digits before the point.
    int: &'a str,
    /// The digits after the point.
    frac: &'a str,
    /// The exponent, saturated far beyond any meaningful value.
    exp: i64,
}

/// Exponents are saturated at this magnitude: far past any figure (i128 holds 38 digits)
/// and far from overflowing the arithmetic on positions.
const EXP_LIMIT: i64 = 1 << 40;

/// Why a decimal does not fit a fixed-point field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleError {
    /// It has nonzero digits past the field's scale.
    TooPrecise,
    /// Its magnitude is beyond 38 digits.
    TooLarge,
}

impl<'a> Decimal<'a> {
    /// Reads a number token's text (assumed to be valid JSON number syntax).
    pub fn of(text: &'a str) -> Self {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], parse_exp(&rest[i + 1..])),
            None => (rest, 0),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        Self {
            negative,
            int,
            frac,
            exp,
        }
    }

    fn digit(&self, i: usize) -> u8 {
        let b = if i < self.int.len() {
            self.int.as_bytes()[i]
        } else {
            self.frac.as_bytes()[i - self.int.len()]
        };
        b - b'0'
    }

    /// The significant digits as a range over `int ++ frac` (no leading or trailing
    /// zeros; empty for zero), and the position of the point relative to their start.
    fn significant(&self) -> (Range<usize>, i64) {
        let n = self.int.len() + self.frac.len();
        let lead = (0..n).find(|&i| self.digit(i) != 0).unwrap_or(n);
        let trail = (lead..n)
            .rev()
            .find(|&i| self.digit(i) != 0)
            .map_or(lead, |i| i + 1);
        let point = self.int.len() as i64 + self.exp - lead as i64;
        (lead..trail, point)
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.significant().0.is_empty()
    }

    /// The value × 10^`scale` as an integer, exactly, or why it cannot be one.
    pub fn scaled(&self, scale: u32) -> Result<i128, ScaleError> {
        let (sig, point) = self.significant();
        if sig.is_empty() {
            return Ok(0);
        }
        let s = sig.len() as i64;
        // value = S × 10^(point − s); × 10^scale.
        let k = point - s + i64::from(scale);
        if k < 0 {
            return Err(ScaleError::TooPrecise);
        }
        if s + k > 38 {
            return Err(ScaleError::TooLarge);
        }
        let mut v: i128 = 0;
        for i in sig {
            v = v * 10 + i128::from(self.digit(i));
        }
        for _ in 0..k {
            v *= 10;
        }
        Ok(if self.negative { -v } else { v })
    }

    /// The digit runs of the canonical decimal form (`123456789018` for
    /// `1.23456789018e11`, `0.5` for `5e-1`) that are exactly `n` digits long: the
    /// integer part and the fraction part, materialised only when that long.
    pub fn canonical_runs_of(&self, n: usize) -> Vec<Vec<u8>> {
        let (sig, point) = self.significant();
        let s = sig.len() as i64;
        let digits = |r: Range<usize>| r.map(|i| self.digit(i)).collect::<Vec<u8>>();
        let mut out = Vec::new();
        let n = n as i64;
        if sig.is_empty() {
            if n == 1 {
                out.push(vec![0]);
            }
            return out;
        }
        // Integer part: "0" when point ≤ 0, else S[..point] padded with zeros.
        let int_len = point.max(1);
        if int_len == n {
            if point <= 0 {
                out.push(vec![0]);
            } else {
                let take = point.min(s) as usize;
                let mut d = digits(sig.start..sig.start + take);
                d.resize(n as usize, 0);
                out.push(d);
            }
        }
        // Fraction part: zeros then S when point ≤ 0, else S[point..].
        if point < s && s - point == n {
            if point <= 0 {
                let mut d = vec![0u8; (-point) as usize];
                d.extend(digits(sig.clone()));
                out.push(d);
            } else {
                out.push(digits(sig.start + point as usize..sig.end));
            }
        }
        out
    }
}

fn parse_exp(s: &str) -> i64 {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = (v * 10 + i64::from(b - b'0')).min(EXP_LIMIT);
    }
    if neg {
        -v
    } else {
        v
    }
}

/// Parses a whole document: one value, with only whitespace around it.
pub fn parse(text: &str) -> Result<Json<'_>, SyntaxError> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i < p.b.len() {
        return Err(p.err("unexpected text after the value"));
    }
    Ok(v)
}

/// A value [`parse_event`] reads: a string, a number, or (in the envelope) the one
/// object, whose members are read apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leaf<'a> {
    String(Str<'a>),
    Number(Number<'a>),
    Object,
}

/// One `key: value` [`parse_event`] reads (plain data: buffers of them cost nothing to
/// fill or drop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pair<'a> {
    pub key: Str<'a>,
    pub value: Leaf<'a>,
}

impl Pair<'static> {
    /// A buffer's filler.
    pub(crate) const BLANK: Self = Pair {
        key: Str {
            raw: "",
            start: 0,
            escaped: false,
        },
        value: Leaf::Object,
    };
}

/// Most members of an event's envelope [`parse_event`] reads.
pub(crate) const EVENT_MEMBERS: usize = 8;
/// Most members of an event's `data` object [`parse_event`] reads.
pub(crate) const DATA_MEMBERS: usize = 12;

/// An event read by [`parse_event`]: the envelope's members and those of its one
/// object-valued member, each in the buffers it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EventShape {
    /// How many envelope members were read.
    pub members: usize,
    /// Which envelope member holds an object ([`Leaf::Object`]), if one does.
    pub object_at: Option<usize>,
    /// How many members that object has.
    pub object_members: usize,
}

/// Reads the shape nearly every event has — one object whose values are strings, and at
/// most one object of strings and numbers — into fixed buffers, without building a tree
/// (nothing is allocated). `None` when the text has any other shape (arrays, literals,
/// deeper nesting, more members than the buffers hold, a number in the envelope) or is
/// not JSON: [`parse`] then reads it in full. Every token is read by the same code as
/// [`parse`]'s, so what this accepts, [`parse`] accepts with the same members.
pub(crate) fn parse_event<'a>(
    text: &'a str,
    members: &mut [Pair<'a>; EVENT_MEMBERS],
    object: &mut [Pair<'a>; DATA_MEMBERS],
) -> Option<EventShape> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let mut shape = EventShape {
        members: 0,
        object_at: None,
        object_members: 0,
    };
    p.ws();
    if p.peek() != Some(b'{') {
        return None;
    }
    p.i += 1;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            let key = p.key()?;
            let value = match p.peek() {
                Some(b'"') => Leaf::String(p.string().ok()?),
                Some(b'{') if shape.object_at.is_none() => {
                    p.i += 1;
                    shape.object_at = Some(shape.members);
                    shape.object_members = p.scalar_members(object)?;
                    Leaf::Object
                }
                _ => return None,
            };
            *members.get_mut(shape.members)? = Pair { key, value };
            shape.members += 1;
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b'}') => {
                    p.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    p.ws();
    (p.i == p.b.len()).then_some(shape)
}

/// The byte ranges of the elements of a top-level array (`[e0, e1, …]`), each checked to
/// be well-formed JSON, without building them: how a JSON-array body is cut into events.
pub fn array_elements(text: &str) -> Result<Vec<Range<usize>>, SyntaxError> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    p.ws();
    if p.peek() != Some(b'[') {
        return Err(p.err("expected '[' (a JSON array of events)"));
    }
    p.i += 1;
    let mut out = Vec::new();
    p.ws();
    if p.peek() == Some(b']') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let start = p.i;
            p.skip_value(1)?;
            out.push(start..p.i);
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b']') => {
                    p.i += 1;
                    break;
                }
                _ => return Err(p.err("expected ',' or ']' in the array")),
            }
        }
    }
    p.ws();
    if p.i < p.b.len() {
        return Err(p.err("unexpected text after the array"));
    }
    Ok(out)
}

/// The bytes that end a run of plain string content: `"`, `\\` and control characters.
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Where the run of string bytes that need no attention (not `"`, `\\` or a control
/// character) starting at `b[i]` ends: most of an event is plain string content.
///
/// Eight bytes at a time: a word's bytes are tested at once for `"`, `\\` and bytes
/// below 0x20 (the usual bit tricks; the lowest flagged byte is always a true one, as a
/// borrow only carries upwards), the last few byte by byte.
#[inline]
fn plain_run(b: &[u8], mut i: usize) -> usize {
    use crate::swar::{any_below, ONES};
    while let Some(word) = b.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let w = u64::from_le_bytes(bytes);
        let stop = any_below(w ^ (ONES * u64::from(b'"')), 1)
            | any_below(w ^ (ONES * u64::from(b'\\')), 1)
            | any_below(w, 0x20);
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(c) = b.get(i) {
        if STRING_STOP[usize::from(*c)] {
            break;
        }
        i += 1;
    }
    i
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, what: &'static str) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self
                .err("expected a value (an object, array, string, number, true, false or null)"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json<'a>, SyntaxError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Json::Number),
            Some(b't') => self.literal(b"true").map(|()| Json::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Json::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Json::Null),
            None => Err(self.err("unexpected end of the text")),
            Some(_) => Err(self
                .err("expected a value (an object, array, string, number, true, false or null)")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json<'a>, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested deeper than 64 levels"));
        }
        self.i += 1;
        // An event's envelope has six members: one allocation, not three.
        let mut members = Vec::with_capacity(8);
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key (a string in double quotes)"));
            }
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':' after the key"));
            }
            self.i += 1;
            self.ws();
            let value = self.value(depth)?;
            members.push(Member { key, value });
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.err("expected ',' or '}' in the object")),
            }
        }
    }

    /// A key and its colon, with the whitespace around them ([`parse_event`]'s
    /// reading; `None` where [`Parser::object`] would report an error). Inlined into the
    /// fast decode's loops: an event has about eight keys, and a call costs as much as
    /// reading a short key.
    #[inline(always)]
    fn key(&mut self) -> Option<Str<'a>> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        let key = self.string().ok()?;
        // The colon usually follows the key at once.
        if self.peek() != Some(b':') {
            self.ws();
            if self.peek() != Some(b':') {
                return None;
            }
        }
        self.i += 1;
        self.ws();
        Some(key)
    }

    /// The members of an object whose values are all strings or numbers, after its `{`,
    /// into `out`; their count. `None` for any other object (or one too long for `out`).
    fn scalar_members<const N: usize>(&mut self, out: &mut [Pair<'a>; N]) -> Option<usize> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(0);
        }
        let mut n = 0;
        loop {
            let key = self.key()?;
            let value = match self.peek() {
                Some(b'"') => Leaf::String(self.string().ok()?),
                Some(b'-' | b'0'..=b'9') => Leaf::Number(self.number().ok()?),
                _ => return None,
            };
            *out.get_mut(n)? = Pair { key, value };
            n += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Some(n);
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json<'a>, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested deeper than 64 levels"));
        }
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']' in the array")),
            }
        }
    }

    /// Checks a value's syntax without building it.
    fn skip_value(&mut self, depth: usize) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(b'{') | Some(b'[') => {
                if depth > MAX_DEPTH {
                    return Err(self.err("nested deeper than 64 levels"));
                }
                let close = if self.peek() == Some(b'{') {
                    b'}'
                } else {
                    b']'
                };
                let is_obj = close == b'}';
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if is_obj {
                        if self.peek() != Some(b'"') {
                            return Err(self.err("expected a key (a string in double quotes)"));
                        }
                        self.string()?;
                        self.ws();
                        if self.peek() != Some(b':') {
                            return Err(self.err("expected ':' after the key"));
                        }
                        self.i += 1;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ if is_obj => return Err(self.err("expected ',' or '}' in the object")),
                        _ => return Err(self.err("expected ',' or ']' in the array")),
                    }
                }
            }
            _ => self.value(depth).map(drop),
        }
    }

    #[inline(always)]
    fn string(&mut self) -> Result<Str<'a>, SyntaxError> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = plain_run(b, i);
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    match unescape(b, i) {
                        Some((_, len)) => i += len,
                        None => {
                            self.i = i;
                            return Err(self.err(
                                "invalid escape in a string (or a lone surrogate in a \\u escape)",
                            ));
                        }
                    }
                }
                None => {
                    self.i = i;
                    return Err(self.err("unterminated string"));
                }
                // `plain_run` stops at nothing else: a control character.
                Some(_) => {
                    self.i = i;
                    return Err(self.err("control character in a string (escape it)"));
                }
            }
        }
        let raw = &self.s[start..i];
        self.i = i + 1;
        Ok(Str {
            raw,
            start,
            escaped,
        })
    }

    fn number(&mut self) -> Result<Number<'a>, SyntaxError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.err("a number may not have leading zeros"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected a digit after the decimal point"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected a digit in the exponent"));
            }
            self.digits();
        }
        Ok(Number {
            text: &self.s[start..self.i],
            start,
        })
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Decimal<'_> {
        Decimal::of(s)
    }

    #[test]
    fn an_event_parses_with_the_spans_of_its_tokens() {
        let text = r#" {"a": "x\u0031", "b": [1, -2.5e3, true, null]} "#;
        let Json::Object(m) = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(m[0].key.raw, "a");
        let Json::String(s) = &m[0].value else {
            panic!()
        };
        assert_eq!(s.decoded(), "x1");
        assert_eq!(&text[s.span()], "x\\u0031");
        let Json::Array(items) = &m[1].value else {
            panic!()
        };
        let Json::Number(n) = &items[1] else { panic!() };
        assert_eq!(&text[n.span()], "-2.5e3");
        assert_eq!(n.decimal().scaled(0), Ok(-2500));
    }

    #[test]
    fn what_is_not_json_is_refused_with_a_position() {
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "{\"a\" 1}",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "1e",
            "-",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"a\nb\"",
            "tru",
            "{} {}",
            "NaN",
            "'a'",
            "{a:1}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse("[1,]").unwrap_err().offset, 3);
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            parse(&deep).unwrap_err().what,
            "nested deeper than 64 levels"
        );
        let deep = "[".repeat(1_000_000);
        assert!(parse(&deep).is_err());
        assert!(array_elements(&deep).is_err());
    }

    #[test]
    fn an_array_body_is_cut_into_its_elements() {
        let text = "[ {\"a\":1} , [2,3],\"x\" ]";
        let parts: Vec<&str> = array_elements(text)
            .unwrap()
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(parts, ["{\"a\":1}", "[2,3]", "\"x\""]);
        assert!(array_elements("{}").is_err());
        assert!(array_elements("[{\"a\":1},").is_err());
        assert_eq!(array_elements(" [ ] ").unwrap(), Vec::<Range<usize>>::new());
    }

    #[test]
    fn decimals_are_exact_whatever_the_notation() {
        assert_eq!(num("5000.005").scaled(2), Err(ScaleError::TooPrecise));
        assert_eq!(num("50.005").scaled(2), Err(ScaleError::TooPrecise));
        assert_eq!(num("12.50").scaled(2), Ok(1250));
        assert_eq!(num("12.500").scaled(2), Ok(1250));
        assert_eq!(num("1.25e1").scaled(2), Ok(1250));
        assert_eq!(num("125e-1").scaled(2), Ok(1250));
        assert_eq!(num("-0").scaled(2), Ok(0));
        assert_eq!(num("0.0e99999999999999999999").scaled(2), Ok(0));
        assert_eq!(num("1e30").scaled(2), Ok(10i128.pow(32)));
        assert_eq!(num("1e999999999").scaled(0), Err(ScaleError::TooLarge));
        assert_eq!(num("1e-999999999").scaled(6), Err(ScaleError::TooPrecise));
        assert_eq!(
            num("99999999999999999999").scaled(0),
            Ok(99_999_999_999_999_999_999)
        );
    }

    #[test]
    fn canonical_runs_are_found_without_expanding_the_number() {
        let d = |v: &[u8]| v.to_vec();
        let pn = d(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 8]);
        assert_eq!(
            num("1.23456789018e11").canonical_runs_of(12),
            vec![pn.clone()]
        );
        assert_eq!(num("123456789018").canonical_runs_of(12), vec![pn.clone()]);
        assert_eq!(
            num("1234567890180e-1").canonical_runs_of(12),
            vec![pn.clone()]
        );
        assert_eq!(
            num("0.123456789018").canonical_runs_of(12),
            vec![pn.clone()]
        );
        assert_eq!(
            num("1.23456789018e-1").canonical_runs_of(12),
            vec![pn.clone()]
        );
        assert_eq!(num("-123456789018.75").canonical_runs_of(12), vec![pn]);
        assert_eq!(
            num("12e10").canonical_runs_of(12),
            vec![d(&[1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]
        );
        assert!(num("1e999999999").canonical_runs_of(12).is_empty());
        assert!(num("1e-999999999").canonical_runs_of(12).is_empty());
        assert!(num("42").canonical_runs_of(12).is_empty());
    }

    #[test]
    fn a_string_ends_at_its_first_quote_backslash_or_control_character_wherever_it_lies() {
        // String bodies are scanned eight bytes at a time: put each stop at every offset
        // of a word, and near the end of the text.
        for len in 0..20 {
            let body = "a".repeat(len);
            for tail in ["", " ", "        ", "       x"] {
                let text = format!("\"{body}\"{tail}");
                let Ok(Json::String(s)) = parse(text.trim_end_matches('x')) else {
                    panic!("{text:?}")
                };
                assert_eq!(s.raw, body);
                let escaped = format!("\"{body}\\n{body}\"{tail}");
                let Ok(Json::String(s)) = parse(escaped.trim_end_matches('x')) else {
                    panic!("{escaped:?}")
                };
                assert!(s.escaped && s.raw.len() == 2 * len + 2);
                for ctl in ['\u{0}', '\u{1f}', '\n'] {
                    let bad = format!("\"{body}{ctl}{body}\"{tail}");
                    let e = parse(bad.trim_end_matches('x')).unwrap_err();
                    assert_eq!(e.offset, 1 + len, "{bad:?}");
                }
            }
            let bytes_above = format!("\"{body}\u{7f}é\u{ff}\"");
            assert!(parse(&bytes_above).is_ok());
        }
    }

    #[test]
    fn the_event_shape_is_read_as_the_tree_reads_it_and_nothing_else() {
        let mut m = [Pair::BLANK; EVENT_MEMBERS];
        let mut d = [Pair::BLANK; DATA_MEMBERS];
        let text = r#" {"a":"x\u0031","data":{"n":-2.5e3,"s":"y"},"b":""} "#;
        let shape = parse_event(text, &mut m, &mut d).unwrap();
        assert_eq!(
            shape,
            EventShape {
                members: 3,
                object_at: Some(1),
                object_members: 2
            }
        );
        let Json::Object(tree) = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(
            m[0].value,
            Leaf::String(match tree[0].value {
                Json::String(s) => s,
                _ => panic!(),
            })
        );
        assert_eq!(d[0].key.raw, "n");
        let Leaf::Number(n) = d[0].value else {
            panic!()
        };
        assert_eq!(&text[n.span()], "-2.5e3");
        for other in [
            "[]",
            "{\"a\":1}",
            "{\"a\":true}",
            "{\"a\":{\"b\":{}}}",
            "{\"a\":{\"b\":[1]}}",
            "{\"a\":{},\"b\":{}}",
            "{\"a\":\"x\"} x",
            "{\"a\":\"x\",}",
            "{\"a\":{\"b\":01}}",
            "{\"a\":\"\\x\"}",
        ] {
            assert_eq!(parse_event(other, &mut m, &mut d), None, "{other}");
        }
        let many: Vec<String> = (0..=DATA_MEMBERS)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect();
        let text = format!("{{\"data\":{{{}}}}}", many.join(","));
        assert!(parse(&text).is_ok());
        assert_eq!(parse_event(&text, &mut m, &mut d), None);
    }
}
