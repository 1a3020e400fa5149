//! The personal-number guard: mieruka never takes in an individual number (マイナンバー).
//!
//! A personal number is 12 digits whose last is a check digit over the first eleven
//! (the rule is public: 行政手続における特定の個人を識別するための番号の利用等に関する法律
//! 施行令 第8条). The guard reads text the way a person would read it back:
//!
//! - **digits** are ASCII `0-9` or full-width `０-９`, written plainly or as JSON escapes
//!   (`\u0031`, `\uFF11`);
//! - a number is a run of exactly 12 digits, or three groups of exactly four digits with
//!   one separator between groups: `-`, a space, U+2010–U+2015 (hyphens and dashes),
//!   U+2212 (minus), U+FF0D (full-width hyphen-minus), U+30FC and U+FF70 (the long-vowel
//!   marks Japanese input produces for a dash), U+3000 (ideographic space) or U+00A0
//!   (no-break space), each plain or escaped;
//! - a JSON **number** is also read by its value, whatever its notation: the integer and
//!   fraction parts of its canonical decimal form (`1.23456789018e11` is 123456789018),
//!   found from mantissa and exponent without expanding them.
//!
//! Kanji numerals (一二三…) and comma grouping (`123,456,789,018`) are out of scope. About
//! one 12-digit number in eleven passes the check by chance (some `yyyymmddhhmm` stamps
//! do): that is by design, and line systems are told not to use 12-digit ids.
//!
//! The guard decides and masks from the same positions: whatever it found in a raw text
//! is what [`mask_raw`] hides there, every occurrence, in whatever form. It never
//! returns, logs or stores the value it found: only where it was.

use std::borrow::Cow;
use std::ops::Range;

use crate::json::{self, Json};
use crate::swar::{self, bytes_equal, each_word, pack, HIGH};

/// Longest key shown as written in a field path; longer ones are named by position.
const MAX_SHOWN_KEY_CHARS: usize = 64;

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

/// Whether 12 digits carry a valid check digit.
pub fn is_valid(d: &[u8]) -> bool {
    let Ok(d) = <&[u8; 12]>::try_from(d) else {
        return false;
    };
    let mut first = [0u8; 11];
    first.copy_from_slice(&d[..11]);
    check_digit(&first) == d[11]
}

/// How the guard reads one character.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Digit(u8),
    Separator,
    Other,
}

fn classify(c: char) -> Class {
    match c {
        '0'..='9' => Class::Digit(c as u8 - b'0'),
        '\u{FF10}'..='\u{FF19}' => Class::Digit((c as u32 - 0xFF10) as u8),
        '-'
        | ' '
        | '\u{2010}'..='\u{2015}'
        | '\u{2212}'
        | '\u{FF0D}'
        | '\u{30FC}'
        | '\u{FF70}'
        | '\u{3000}'
        | '\u{00A0}' => Class::Separator,
        _ => Class::Other,
    }
}

/// The characters of a text with their byte ranges, reading JSON escapes as the
/// character they stand for (`\u0031` is the digit 1; `\\` is one backslash, so the
/// `u0031` after it is plain text) — unless `escapes` is false: then every character is
/// itself (how a string's decoded value reads).
struct Chars<'a> {
    text: &'a str,
    i: usize,
    escapes: bool,
}

impl Iterator for Chars<'_> {
    type Item = (Range<usize>, Class);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.text.as_bytes();
        let start = self.i;
        let first = *b.get(start)?;
        if first == b'\\' && self.escapes {
            let (class, len) = match json::unescape(b, start) {
                Some((c, len)) => (classify(c), len),
                None => (Class::Other, 1),
            };
            self.i += len;
            return Some((start..self.i, class));
        }
        if first < 0x80 {
            self.i += 1;
            return Some((start..self.i, classify(char::from(first))));
        }
        let c = self.text[start..].chars().next()?;
        self.i += c.len_utf8();
        Some((start..self.i, classify(c)))
    }
}

/// A group of consecutive digits: its first 12 digits, how many there are, and where
/// its digits sit (a range over the run's digit positions).
#[derive(Clone, Debug)]
struct Group {
    digits: [u8; 12],
    len: usize,
    tokens: Range<usize>,
}

/// Whether a text can hold a personal number at all. Plain ASCII text without escapes
/// (event ids, timestamps: most strings of an event) is decided on bytes in one pass:
/// only a digit run of exactly 12, or three runs of exactly four joined by single `-` or
/// spaces, can be one. Other text needs at least 12 bytes that are ASCII digits or
/// start a full-width character (every digit, plain, full-width or escaped, has one).
///
/// The count is taken first, as it is the cheaper pass (and most strings of an event —
/// types, sources, enum values — hold no digit at all): a text with fewer than 12 such
/// bytes cannot hold the run of 12 digits, or three of four, that the byte pass looks for.
fn may_hold(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 12 {
        return false;
    }
    if b.len() <= MASKED_BYTES {
        // A short text (ids, timestamps): its bytes classed a word at a time. Plain
        // ASCII without backslashes is decided on the digits alone when it has fewer
        // than 12 (most strings), or a run of exactly 12, or no three runs of four
        // digits five bytes apart (most ids and timestamps): only then do the joiners
        // between runs matter.
        let (digits, opaque) = ByteMasks::digits_of(b);
        if opaque == 0 {
            if digits.count_ones() < 12 {
                return false;
            }
            return ByteMasks::shape_by_digits(digits)
                .unwrap_or_else(|| ByteMasks::of(b, digits).shape());
        }
    }
    digitish(b) >= 12 && ascii_candidate(b).unwrap_or(true)
}

/// The longest text [`ByteMasks`] reads: one bit per byte in a `u64`.
const MASKED_BYTES: usize = 64;

/// One bit per byte of a text of at most [`MASKED_BYTES`] bytes (bit `i` for byte `i`):
/// which bytes are ASCII digits, which join runs (`-`, space), and which
/// [`ascii_candidate`] cannot judge alone (a backslash, a byte of a multi-byte character).
struct ByteMasks {
    digits: u64,
    joiners: u64,
    opaque: u64,
}

impl ByteMasks {
    /// The digit mask of a text of at most [`MASKED_BYTES`] bytes, and a word that is
    /// non-zero when a byte is opaque (not ASCII, or a backslash that may start an escape).
    fn digits_of(b: &[u8]) -> (u64, u64) {
        let (mut digits, mut opaque) = (0, 0);
        each_word(b, |w, at, _| {
            digits |= pack(swar::digits(w)) << at;
            opaque |= (w & HIGH) | bytes_equal(w, b'\\');
        });
        (digits, opaque)
    }

    /// What the digit mask alone tells of [`ByteMasks::shape`]: `Some(true)` for a
    /// maximal run of exactly 12 digits, `Some(false)` when no three runs of four digits
    /// start five bytes apart either (joiners between them cannot matter then), `None`
    /// when the joiners decide.
    fn shape_by_digits(digits: u64) -> Option<bool> {
        let r = Runs::of(digits);
        if r.twelve != 0 {
            return Some(true);
        }
        if r.starts & r.d4 & (r.d4 >> 5) & (r.d4 >> 10) == 0 {
            return Some(false);
        }
        None
    }

    /// The masks of a text of at most [`MASKED_BYTES`] bytes whose digit mask is `digits`.
    fn of(b: &[u8], digits: u64) -> ByteMasks {
        let mut m = ByteMasks {
            digits,
            joiners: 0,
            opaque: 0,
        };
        each_word(b, |w, at, _| {
            m.joiners |= pack(bytes_equal(w, b'-') | bytes_equal(w, b' ')) << at;
            m.opaque |= pack((w & HIGH) | bytes_equal(w, b'\\')) << at;
        });
        m
    }

    /// What [`ascii_candidate`] decides for a text without opaque bytes: whether a
    /// maximal run of digits is exactly 12 long, or three runs of exactly four are
    /// joined by single joiners. Bit `p` of each term below speaks of the run starting
    /// at byte `p`; bits past the text's end are no digit.
    fn shape(&self) -> bool {
        let Runs {
            not_digit,
            starts,
            d4,
            twelve,
        } = Runs::of(self.digits);
        let j = u128::from(self.joiners);
        let fours = starts & d4 & (j >> 4) & (d4 >> 5) & (j >> 9) & (d4 >> 10) & (not_digit >> 14);
        twelve | fours != 0
    }
}

/// The runs of digits a digit mask shows. Bit `p` of each term speaks of byte `p`, or of
/// the run starting there; bits past the text's end are no digit.
struct Runs {
    not_digit: u128,
    /// No digit just before `p` (the text's start counts as none).
    starts: u128,
    /// Four digits from `p` on.
    d4: u128,
    /// A maximal run of exactly twelve digits starts at `p`.
    twelve: u128,
}

impl Runs {
    fn of(digits: u64) -> Runs {
        let d = u128::from(digits);
        let not_digit = !d;
        let starts = (not_digit << 1) | 1;
        let d2 = d & (d >> 1);
        let d4 = d2 & (d2 >> 2);
        let d8 = d4 & (d4 >> 4);
        let d12 = d8 & (d4 >> 8);
        Runs {
            not_digit,
            starts,
            d4,
            twelve: starts & d12 & (not_digit >> 12),
        }
    }
}

/// How many bytes of `b` are ASCII digits or 0xEF (the first byte of every full-width
/// digit), eight at a time: each byte is flagged exactly (no carry crosses a byte).
fn digitish(b: &[u8]) -> usize {
    // The NUL padding of the last word is neither.
    let mut n = 0;
    each_word(b, |w, _, _| {
        n += (swar::digits(w) | bytes_equal(w, 0xEF)).count_ones() as usize;
    });
    n
}

/// How [`ascii_candidate`] reads a byte: plain ASCII that is no digit, a digit, or a
/// byte it cannot judge alone (a backslash, which may start an escape, or a byte of a
/// multi-byte character).
const PLAIN: u8 = 0;
const DIGIT: u8 = 1;
const OPAQUE: u8 = 2;
const BYTE_CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = if c >= 0x80 || c == b'\\' as usize {
            OPAQUE
        } else if c >= b'0' as usize && c <= b'9' as usize {
            DIGIT
        } else {
            PLAIN
        };
        c += 1;
    }
    t
};

/// In plain ASCII text: whether a maximal run of digits is exactly 12 long, or three
/// runs of exactly four follow each other joined by single separators (`-`, space) —
/// the shapes [`scan_runs`] then checks for a valid check digit. `None` when the text
/// is not plain ASCII without backslashes (then only a full scan can tell).
fn ascii_candidate(b: &[u8]) -> Option<bool> {
    // Lengths of the two runs before the current one in a chain of joined runs, and of
    // the current run of digits. One pass, a byte at a time.
    let (mut before, mut last, mut run) = (0usize, 0usize, 0usize);
    let shape = |run: usize, last: usize, before: usize| {
        run == 12 || (run == 4 && last == 4 && before == 4)
    };
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        let class = BYTE_CLASS[usize::from(c)];
        if class == DIGIT {
            run += 1;
            continue;
        }
        if run > 0 {
            if shape(run, last, before) {
                return Some(true);
            }
            let joined = matches!(c, b'-' | b' ') && b.get(i).is_some_and(u8::is_ascii_digit);
            (before, last) = if joined { (last, run) } else { (0, 0) };
            run = 0;
            if joined {
                continue;
            }
        }
        if class == OPAQUE {
            return None;
        }
        (before, last) = (0, 0);
    }
    Some(shape(run, last, before))
}

/// The byte ranges of the digits of every personal number in `text` (JSON escapes read
/// as what they stand for). Empty when there is none.
pub fn find(text: &str) -> Vec<Range<usize>> {
    let mut hits = Vec::new();
    if may_hold(text) {
        scan_runs(text, true, &mut hits);
    }
    hits
}

fn scan_runs(text: &str, escapes: bool, hits: &mut Vec<Range<usize>>) {
    // The digit positions of the current run, its finished groups, the group being
    // read, and whether a single separator was just read after a group.
    let mut tokens: Vec<Range<usize>> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut cur: Option<Group> = None;
    let mut pending_sep = false;
    for (range, class) in (Chars {
        text,
        i: 0,
        escapes,
    }) {
        match class {
            Class::Digit(d) => {
                if cur.is_none() && !pending_sep {
                    check_run(&groups, &tokens, hits);
                    groups.clear();
                    tokens.clear();
                }
                let g = cur.get_or_insert(Group {
                    digits: [0; 12],
                    len: 0,
                    tokens: tokens.len()..tokens.len(),
                });
                if g.len < 12 {
                    g.digits[g.len] = d;
                }
                g.len += 1;
                tokens.push(range);
                g.tokens.end = tokens.len();
                pending_sep = false;
            }
            Class::Separator if cur.is_some() && !pending_sep => {
                groups.extend(cur.take());
                pending_sep = true;
            }
            Class::Separator | Class::Other => {
                groups.extend(cur.take());
                pending_sep = false;
                check_run(&groups, &tokens, hits);
                groups.clear();
                tokens.clear();
            }
        }
    }
    groups.extend(cur.take());
    check_run(&groups, &tokens, hits);
}

fn check_run(groups: &[Group], tokens: &[Range<usize>], hits: &mut Vec<Range<usize>>) {
    for g in groups {
        if g.len == 12 && is_valid(&g.digits) {
            hits.extend(tokens[g.tokens.clone()].iter().cloned());
        }
    }
    for w in groups.windows(3) {
        if w.iter().all(|g| g.len == 4) {
            let mut d = [0u8; 12];
            for (k, g) in w.iter().enumerate() {
                d[k * 4..k * 4 + 4].copy_from_slice(&g.digits[..4]);
            }
            if is_valid(&d) {
                hits.extend(tokens[w[0].tokens.start..w[2].tokens.end].iter().cloned());
            }
        }
    }
}

/// Whether `text` holds a personal number anywhere.
pub fn contains(text: &str) -> bool {
    !find(text).is_empty()
}

/// The byte ranges of the digits of every personal number in `text` read character by
/// character, a backslash being only a backslash (the other reading [`mask`] makes).
pub fn find_unescaped(text: &str) -> Vec<Range<usize>> {
    let mut hits = Vec::new();
    if may_hold(text) {
        scan_runs(text, false, &mut hits);
    }
    hits
}

/// Whether text already decoded — a JSON string's value, such as a key shown in a field
/// path — holds a personal number: read character by character, as the guard read it in
/// its document, or with backslash escapes read, as [`mask`] also reads what it is
/// handed later. Read only with escapes, a decoded `\u123456789018` (from the raw
/// `\\u123456789018`: a backslash, a `u` and twelve digits) would hide its first four
/// digits in an escape and pass.
pub fn decoded_contains(text: &str) -> bool {
    contains(text) || !find_unescaped(text).is_empty()
}

/// Whether a JSON number holds a personal number: in the digits as written, or in the
/// integer or fraction part of its canonical decimal form.
#[inline]
pub fn number_holds(n: &json::Number<'_>) -> bool {
    // Without an exponent the canonical form's runs are no longer than the digits as
    // written: a token shorter than 12 bytes holds no run of 12 (most numbers of an
    // event are counts of a few digits).
    if n.text.len() < 12 && !n.text.bytes().any(|b| matches!(b, b'e' | b'E')) {
        return false;
    }
    contains(n.text)
        || n.decimal()
            .canonical_runs_of(12)
            .iter()
            .any(|d| is_valid(d))
}

/// `text` with every byte range in `ranges` replaced by one `*` (a digit, whether one
/// byte, a three-byte full-width digit or a six-byte escape, becomes one `*`).
pub fn mask_ranges(text: &str, ranges: &[Range<usize>]) -> String {
    if ranges.is_empty() {
        return text.to_owned();
    }
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| (r.start, r.end));
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in sorted {
        if r.start < last {
            continue;
        }
        let (Some(before), true) = (text.get(last..r.start), text.is_char_boundary(r.end)) else {
            continue;
        };
        out.push_str(before);
        out.push('*');
        last = r.end;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    out
}

/// `text` with the digits of every personal number replaced by `*` (separators kept, so
/// the shape stays readable): for any text a person may read back, such as a file name
/// or a message key. Text is read both with JSON escapes read (`\u0031` is a 1) and
/// character by character: a key made from a decoded id may hold `\u` before twelve
/// plain digits, which read only as an escape would hide four of them.
pub fn mask(text: &str) -> String {
    let mut ranges = find(text);
    ranges.extend(find_unescaped(text));
    mask_ranges(text, &ranges)
}

/// What the guard found in a JSON document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// The path of the first key, string or number holding a personal number
    /// (`data.memo`, `data.<key 2>`, `items[1]`; `$` for the document itself).
    pub first: Option<String>,
    /// The byte ranges to mask: the digits found in strings and keys, and every digit
    /// of a number that holds one.
    pub ranges: Vec<Range<usize>>,
}

/// Looks at every key, string and number of a document. With `all` false it stops at
/// the first finding (the decision); with `all` true it collects every range (the mask).
pub fn scan_json(doc: &Json<'_>, all: bool) -> Findings {
    let mut ranges = Vec::new();
    let first = walk(doc, &mut ranges, all).map(|trail| path_of(&trail));
    Findings { first, ranges }
}

/// Whether the guard finds a personal number in a key or a value that
/// [`json::parse_event`] read: what [`scan_json`] decides for that member of the tree
/// (the members of an object value are checked on their own).
#[inline]
pub(crate) fn pair_holds(p: &json::Pair<'_>) -> bool {
    !find_in_str(&p.key).is_empty()
        || match &p.value {
            json::Leaf::String(s) => !find_in_str(s).is_empty(),
            json::Leaf::Number(n) => number_holds(n),
            json::Leaf::Object => false,
        }
}

/// One step of the way to a value, innermost first: a key with its position in its
/// object, or an array index. Kept as found, named only when a path is needed.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    Key(json::Str<'a>, usize),
    Index(usize),
}

/// The field path of a trail of steps given innermost first (`data.memo`,
/// `data.<key 2>`, `items[1]`; `$` for the document itself).
pub fn path_of(trail: &[Step<'_>]) -> String {
    let mut path = String::new();
    for step in trail.iter().rev() {
        match step {
            Step::Key(key, i) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key_label(&key.decoded(), *i));
            }
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    if path.is_empty() {
        path.push('$');
    }
    path
}

/// The ranges (in the document) of what the guard finds in a string or key: in its
/// value, escapes read; and — when its value itself holds backslashes (sent as `\\`) —
/// in that value read once more with escapes, as a person or a tool reading the stored
/// text back might (`\\u0031…` is stored as the text `\u0031…`). What that second
/// reading finds cannot be placed exactly in the raw text: every digit of the string
/// is masked then.
#[inline]
fn find_in_str(s: &json::Str<'_>) -> Vec<Range<usize>> {
    // Twelve digits take at least twelve bytes, as written and decoded alike (a decoded
    // value is never longer than its raw text): most keys and values are shorter, and
    // are decided where they are read, without a call.
    if s.raw.len() < 12 {
        return Vec::new();
    }
    find_in_long_str(s)
}

/// [`find_in_str`] for a string of 12 bytes or more.
fn find_in_long_str(s: &json::Str<'_>) -> Vec<Range<usize>> {
    let found: Vec<Range<usize>> = find(s.raw)
        .into_iter()
        .map(|r| r.start + s.start..r.end + s.start)
        .collect();
    if !s.escaped {
        return found;
    }
    // The second reading is made whatever the first found: both must be masked.
    let value = s.decoded();
    if !value.contains('\\') || find(&value).is_empty() {
        return found;
    }
    s.raw
        .char_indices()
        .filter(|(_, c)| matches!(classify(*c), Class::Digit(_)) || c.is_ascii_hexdigit())
        .map(|(i, c)| s.start + i..s.start + i + c.len_utf8())
        .collect()
}

/// Walks a value, adding the ranges to mask; returns the trail (innermost first) to the
/// first finding. Nothing is allocated or named unless something is found.
fn walk<'a>(v: &Json<'a>, ranges: &mut Vec<Range<usize>>, all: bool) -> Option<Vec<Step<'a>>> {
    match v {
        Json::String(s) => {
            let found = find_in_str(s);
            (!found.is_empty()).then(|| {
                ranges.extend(found);
                Vec::new()
            })
        }
        Json::Number(n) => number_holds(n).then(|| {
            let digits = n
                .text
                .bytes()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_digit());
            ranges.extend(digits.map(|(i, _)| n.start + i..n.start + i + 1));
            Vec::new()
        }),
        Json::Array(items) => {
            let mut first = None;
            for (i, item) in items.iter().enumerate() {
                if let Some(mut trail) = walk(item, ranges, all) {
                    trail.push(Step::Index(i));
                    first.get_or_insert(trail);
                    if !all {
                        break;
                    }
                }
            }
            first
        }
        Json::Object(members) => {
            let mut first = None;
            for (i, m) in members.iter().enumerate() {
                let found = find_in_str(&m.key);
                let in_key = !found.is_empty();
                ranges.extend(found);
                // A key that holds one is the finding; its value is still walked for
                // the ranges to mask when all are wanted.
                let in_value = if in_key && !all {
                    None
                } else {
                    walk(&m.value, ranges, all)
                };
                let trail = if in_key { Some(Vec::new()) } else { in_value };
                if let Some(mut trail) = trail {
                    trail.push(Step::Key(m.key, i));
                    first.get_or_insert(trail);
                    if !all {
                        break;
                    }
                }
            }
            first
        }
        Json::Null | Json::Bool(_) => None,
    }
}

/// How a key (decoded) is named in a field path: as written when a person may see it (it
/// passes the guard however it is read, is at most 64 characters and has no control
/// characters), else by its 0-based position in its object as written (`<key 3>`).
pub fn key_label(key: &str, index: usize) -> Cow<'_, str> {
    let shown = key.chars().count() <= MAX_SHOWN_KEY_CHARS
        && !key.chars().any(char::is_control)
        && !decoded_contains(key);
    if shown {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("<key {index}>"))
    }
}

/// The raw text of a refused event as it may be kept or shown: every personal number the
/// guard can find in it masked. Valid JSON is read as JSON (keys, strings with their
/// escapes, numbers by their value) *and* as plain text; anything else as plain text.
/// Bytes that are not UTF-8 are also read as the encodings line systems write (UTF-16
/// with or without a byte order mark, Shift_JIS, EUC-JP), so a number in full-width
/// Shift_JIS digits is found too: the text kept is then that reading, masked, in UTF-8.
/// When the guard finds nothing there, the text is the bytes as UTF-8 (malformed bytes
/// replaced) — masked in its turn, as that is another reading (bytes taken for UTF-16
/// may hold ASCII digits) — so "nothing was masked" is
/// `mask_raw(raw) == String::from_utf8_lossy(raw)`.
pub fn mask_raw(raw: &[u8]) -> String {
    let text = readable(raw);
    let ranges = findings(&text);
    if !ranges.is_empty() {
        return mask_ranges(&text, &ranges);
    }
    let utf8 = String::from_utf8_lossy(raw);
    let ranges = if utf8 == text {
        ranges
    } else {
        findings(&utf8)
    };
    mask_ranges(&utf8, &ranges)
}

/// What [`mask_raw`] masks in one reading of a raw text: what the guard finds in it as
/// text, and — when it is a JSON document after any byte order marks (`decode` skips
/// one, so a number in exponent notation behind it is a personal number there too) —
/// in its keys, strings and numbers.
fn findings(text: &str) -> Vec<Range<usize>> {
    // Both readings of the text (escapes read, and every character as itself: a
    // backslash followed by `u1234…` shows digits to a person whatever JSON says).
    let mut ranges = find(text);
    ranges.extend(find_unescaped(text));
    let doc = text.trim_start_matches('\u{FEFF}');
    if let Ok(parsed) = json::parse(doc) {
        let skipped = text.len() - doc.len();
        ranges.extend(
            scan_json(&parsed, true)
                .ranges
                .into_iter()
                .map(|r| r.start + skipped..r.end + skipped),
        );
    }
    ranges
}

/// The bytes as text a person could read: UTF-8 as it is; UTF-16 (a byte order mark,
/// or NUL bytes between ASCII characters), Shift_JIS or EUC-JP decoded when the bytes
/// are valid in it; else UTF-8 with malformed bytes replaced.
fn readable(raw: &[u8]) -> Cow<'_, str> {
    if let Some(utf16) = utf16(raw) {
        return Cow::Owned(utf16);
    }
    if let Ok(text) = std::str::from_utf8(raw) {
        return Cow::Borrowed(text);
    }
    for enc in [encoding_rs::SHIFT_JIS, encoding_rs::EUC_JP] {
        if let Some(text) = enc.decode_without_bom_handling_and_without_replacement(raw) {
            return Cow::Owned(text.into_owned());
        }
    }
    String::from_utf8_lossy(raw)
}

/// The bytes read as UTF-16 when they look like it: a byte order mark, or a NUL in at
/// least a quarter of the bytes (ASCII text in UTF-16 is every other byte NUL).
fn utf16(raw: &[u8]) -> Option<String> {
    let (le, body) = match raw {
        [0xFF, 0xFE, rest @ ..] => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        _ => {
            let nul_even = raw.iter().step_by(2).filter(|b| **b == 0).count();
            let nul_odd = raw.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
            if raw.len() < 4 || (nul_even + nul_odd) * 4 < raw.len() {
                return None;
            }
            (nul_odd >= nul_even, raw)
        }
    };
    let units = body.chunks(2).map(|c| {
        let pair = [c[0], c.get(1).copied().unwrap_or(0)];
        if le {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        }
    });
    Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or('\u{FFFD}'))
            .filter(|c| *c != '\0')
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid personal number, for tests only: the check digit of 12345678901 is 8.
    const VALID: &str = "123456789018";

    fn path_of(text: &str) -> Option<String> {
        scan_json(&json::parse(text).unwrap(), false).first
    }

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
        for sep in [
            "-", " ", "\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}", "\u{2015}",
            "\u{2212}", "\u{FF0D}", "\u{30FC}", "\u{FF70}", "\u{3000}", "\u{00A0}",
        ] {
            assert!(contains(&format!("1234{sep}5678{sep}9018")), "{sep:?}");
            assert!(
                contains(&format!("１２３４{sep}５６７８{sep}９０１８")),
                "{sep:?}"
            );
        }
        assert!(contains("1234-５６７８\u{3000}9018"));
    }

    #[test]
    fn escaped_digits_and_separators_are_read_as_what_they_stand_for() {
        assert!(contains(r"\u0031\u0032\u0033\u0034567890\u00318"));
        assert!(contains(r"1234\u002D5678\u30009018"));
        assert!(contains(
            r"\uFF11\uff12\uFF13\uFF14\uFF15\uFF16\uFF17\uFF18\uFF19\uFF10\uFF11\uFF18"
        ));
        // An escaped backslash: the `u0031` after it is plain text, not a digit.
        assert!(!contains(r"12345678901\\u0038"));
    }

    #[test]
    fn longer_or_shorter_runs_are_not_personal_numbers() {
        assert!(!contains("1123456789018"));
        assert!(!contains("23456789018"));
        assert!(!contains("2026-05-01T10:15:00+09:00"));
        assert!(!contains("konbini-20260501-000123"));
        assert!(!contains("1234--5678-9018"));
        assert!(!contains("12345-5678-9018"));
        assert!(
            !contains("123,456,789,018"),
            "comma grouping is out of scope"
        );
    }

    #[test]
    fn numbers_are_read_by_their_value_whatever_the_notation() {
        for n in [
            "123456789018",
            "1.23456789018e11",
            "1.23456789018E+11",
            "12345678901.8e1",
            "1234567890180e-1",
            "0.123456789018",
            "-123456789018",
            "123456789018.000",
        ] {
            let Json::Number(num) = json::parse(n).unwrap() else {
                panic!()
            };
            assert!(number_holds(&num), "{n}");
        }
        for n in ["123456789017", "1e999999999", "1.5", "1e-999999999"] {
            let Json::Number(num) = json::parse(n).unwrap() else {
                panic!()
            };
            assert!(!number_holds(&num), "{n}");
        }
    }

    #[test]
    fn a_value_that_reads_as_a_personal_number_once_its_own_escapes_are_read_is_one() {
        // The id's value is the text \u0031\u0032… (each backslash escaped in JSON).
        let escaped: String = VALID
            .chars()
            .map(|c| format!("\\\\u{:04x}", u32::from(c)))
            .collect();
        let doc = format!(r#"{{"event_id":"{escaped}","k":1}}"#);
        assert_eq!(path_of(&doc).as_deref(), Some("event_id"));
        let masked = mask_raw(doc.as_bytes());
        assert!(!masked.contains("0031"), "{masked}");
        // Both readings are masked when both find one (a plain number beside it).
        let doc = format!(r#"{{"event_id":"{escaped} 0.987654321093","k":1}}"#);
        let masked = mask_raw(doc.as_bytes());
        assert!(
            !masked.contains("0031") && !masked.contains("9876"),
            "{masked}"
        );
        // A lone escaped backslash before text without a number is nothing.
        assert_eq!(path_of(r#"{"a":"C:\\data\\2026"}"#), None);
    }

    #[test]
    fn the_path_names_the_field_and_never_the_value() {
        assert_eq!(
            path_of(&format!(r#"{{"data": {{"note": "x {VALID}", "n": 1}}}}"#)).as_deref(),
            Some("data.note")
        );
        assert_eq!(
            path_of(r#"{"data": {"items": [1, 123456789018]}}"#).as_deref(),
            Some("data.items[1]")
        );
        assert_eq!(
            path_of(r#"{"data": {"a": 1, "b": 2, "123456789018": "x"}}"#).as_deref(),
            Some("data.<key 2>")
        );
        assert_eq!(
            path_of(r#"{"data": {"hours": 1.23456789018e11}}"#).as_deref(),
            Some("data.hours")
        );
        assert_eq!(path_of(r#""1234 5678 9018""#).as_deref(), Some("$"));
    }

    #[test]
    fn a_key_whose_decoded_text_holds_a_number_is_named_by_its_position() {
        // The raw key `\\u123456789018` is a backslash, a `u` and twelve digits: the guard
        // finds them. Decoded, it reads `\u123456789018`, which read again as an escape
        // would hide four digits: the path must not show it either way.
        assert_eq!(
            path_of(r#"{"data": {"a": 1, "x \\u1234-5678-9018": 1}}"#).as_deref(),
            Some("data.<key 1>")
        );
        assert_eq!(
            path_of(r#"{"\\u123456789018": {"n": 1}, "b": "123456789018"}"#).as_deref(),
            Some("<key 0>")
        );
        assert_eq!(key_label(r"\u123456789018", 2), "<key 2>");
        // And a key whose text reads as escapes of a number is not shown either.
        assert_eq!(
            key_label(r"\u0031\u0032\u0033\u0034567890\u00318", 0),
            "<key 0>"
        );
        assert_eq!(key_label(r"\u1234", 0), r"\u1234");
    }

    #[test]
    fn masking_hides_every_form_found_in_a_raw_text() {
        assert_eq!(mask("a 1234-5678-9018 b"), "a ****-****-**** b");
        assert_eq!(mask(&format!("\"{VALID}\"")), "\"************\"");
        assert_eq!(mask("nothing 42"), "nothing 42");
        assert_eq!(
            mask("memo 9876 5432 1093 123456789018"),
            "memo **** **** **** ************"
        );
        // A key made from a decoded id: the digits after `\u` are plain digits, and the
        // escapes of a number are masked as ever.
        assert_eq!(mask(r"konbini/\u123456789018"), r"konbini/\u************");
        assert_eq!(mask(r"k/x\u1234-5678-9018"), r"k/x\u****-****-****");
        assert_eq!(
            mask(r"konbini/\u0031\u0032\u0033\u0034567890\u00318"),
            "konbini/************"
        );
        let raw = r#"{"a":"\u0031\u0032345678901\u0038","b":"123456789018","k":1.23456789018e11,"123456789018":0}"#;
        let masked = mask_raw(raw.as_bytes());
        assert_eq!(
            masked,
            r#"{"a":"************","b":"************","k":*.***********e**,"************":0}"#
        );
    }

    #[test]
    fn text_in_other_encodings_is_read_before_it_is_masked() {
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("番号 １２３４５６７８９０１８");
        let masked = mask_raw(&sjis);
        assert_eq!(masked, "番号 ************");
        let utf16: Vec<u8> = "id 123456789018"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(mask_raw(&utf16), "id ************");
    }

    /// Runs of digits (of 1 to 13, mostly 4 or 12, some valid personal numbers) joined by
    /// separators, letters or nothing: the shapes the byte prefilter must never miss.
    fn runs() -> impl Strategy<Value = String> {
        let run = prop_oneof![
            proptest::array::uniform11(0u8..10).prop_map(|first| {
                let mut s: String = first.iter().map(|d| char::from(b'0' + d)).collect();
                s.push(char::from(b'0' + check_digit(&first)));
                s
            }),
            "[0-9]{4}",
            "[0-9]{1,13}",
        ];
        let join = prop_oneof![Just("-"), Just(" "), Just("--"), Just("a"), Just("")];
        proptest::collection::vec((run, join), 0..8)
            .prop_map(|parts| parts.into_iter().map(|(r, j)| format!("{r}{j}")).collect())
    }

    #[test]
    fn a_document_behind_a_byte_order_mark_is_read_as_json() {
        let raw = "\u{FEFF}{\"n\": 1.23456789018e11}";
        assert_eq!(
            mask_raw(raw.as_bytes()),
            "\u{FEFF}{\"n\": *.***********e**}"
        );
    }

    #[test]
    fn bytes_taken_for_utf16_are_masked_in_their_utf8_reading_too() {
        // A quarter of the bytes are NUL, so they read as UTF-16 (where they hold no
        // digit); the text kept is their UTF-8 reading, which holds one.
        let raw = b"\0\0\0\0\0\0id 123456789018";
        assert_eq!(mask_raw(raw), "\0\0\0\0\0\0id ************");
    }

    /// The masks of a text of at most [`MASKED_BYTES`] bytes.
    fn masked(b: &[u8]) -> ByteMasks {
        ByteMasks::of(b, ByteMasks::digits_of(b).0)
    }

    #[test]
    fn the_word_masks_find_runs_of_twelve_and_three_joined_fours_anywhere() {
        let at_end = |tail: &str| format!("{}{tail}", "x".repeat(MASKED_BYTES - tail.len()));
        for (text, shape) in [
            ("123456789012".to_owned(), true),
            ("a123456789012b".to_owned(), true),
            ("1234-5678-9012".to_owned(), true),
            ("id 1234 5678 9012.".to_owned(), true),
            ("1-1234-5678-9012".to_owned(), true),
            (at_end("1234-5678-9012"), true),
            (at_end("123456789012"), true),
            ("1234567890123".to_owned(), false),
            ("12345-5678-9012".to_owned(), false),
            ("1234-5678-90123".to_owned(), false),
            ("1234--5678-9012".to_owned(), false),
            ("1234-5678:9012".to_owned(), false),
            ("2026-05-01T08:00:00+09:00".to_owned(), false),
            (at_end("1234-5678-901"), false),
        ] {
            assert_eq!(masked(text.as_bytes()).shape(), shape, "{text:?}");
            assert_eq!(ascii_candidate(text.as_bytes()), Some(shape), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn digit_bytes_are_counted_exactly_a_word_at_a_time(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let slow = b.iter().filter(|c| c.is_ascii_digit() || **c == 0xEF).count();
            prop_assert_eq!(digitish(&b), slow);
        }

        #[test]
        fn the_word_masks_decide_as_the_byte_loop(
            b in proptest::collection::vec(
                prop_oneof![Just(b'1'), Just(b'0'), Just(b'9'), Just(b'-'), Just(b' '), Just(b'a'),
                    Just(b'/'), Just(b':'), Just(b'\\'), Just(0xEFu8), Just(0x80u8)],
                0..=MASKED_BYTES,
            ),
        ) {
            let masks = masked(&b);
            let slow = ascii_candidate(&b);
            prop_assert_eq!(masks.digits.count_ones() as usize, b.iter().filter(|c| c.is_ascii_digit()).count());
            if masks.opaque == 0 {
                prop_assert_eq!(Some(masks.shape()), slow, "{:?}", String::from_utf8_lossy(&b));
            } else {
                // The byte loop also stops at the first opaque byte, unless a shape came before.
                prop_assert!(slow != Some(false), "{:?}", String::from_utf8_lossy(&b));
            }
        }

        #[test]
        fn the_word_masks_find_the_shapes_of_runs(text in runs()) {
            if text.len() <= MASKED_BYTES {
                let masks = masked(text.as_bytes());
                prop_assert_eq!(Some(masks.shape()), ascii_candidate(text.as_bytes()), "{:?}", text);
                if let Some(shape) = ByteMasks::shape_by_digits(masks.digits) {
                    prop_assert_eq!(shape, masks.shape(), "{:?}", text);
                }
            }
        }

        /// The digits alone decide only what the joiners would have decided alike.
        #[test]
        fn the_digits_alone_decide_as_the_whole_masks(
            b in proptest::collection::vec(
                prop_oneof![4 => Just(b'1'), 2 => Just(b'0'), 1 => Just(b'-'), 1 => Just(b' '), 1 => Just(b'a'), 1 => Just(b':')],
                0..=MASKED_BYTES,
            ),
        ) {
            let masks = masked(&b);
            if let Some(shape) = ByteMasks::shape_by_digits(masks.digits) {
                prop_assert_eq!(shape, masks.shape(), "{:?}", String::from_utf8_lossy(&b));
            }
        }

        #[test]
        fn the_byte_prefilter_never_hides_what_the_scan_finds(text in runs()) {
            let mut hits = Vec::new();
            scan_runs(&text, true, &mut hits);
            prop_assert!(hits.is_empty() || may_hold(&text), "{text:?}");
        }

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
