//! The event envelope, decoded and validated into a domain [`Event`] at the edge.
//!
//! The same checks for every event: the strict JSON reader ([`crate::json`]) reads the
//! whole document, the guard looks at every key, string and number of it, keys given
//! twice are refused, and only then is the envelope read and each `data` field converted
//! to its declared kind — numbers from their exact text (an integer field takes integer
//! notation only; a decimal field is fixed-point, never an `f64`), each within its
//! per-event bounds.
//!
//! An event of the usual shape (an envelope of strings, `data` an object of strings and
//! numbers) is read into buffers on the stack instead of a tree, and checked there in the
//! same order by the same code; anything else, and any event that fails a check, is
//! decided again from the tree, which alone words the rejections.

use std::borrow::Cow;
use std::io::Write as _;

use crate::guard;
use crate::json::{self, Json};
use crate::reject::{Problem, Reason, Rejection, MAX_PROBLEMS};
use crate::schema::{EventType, FieldKind, Schema, TimeWindow, TypeId};
use crate::timestamp::Timestamp;

mod data;

use data::{validate_data, Given};

/// Longest accepted `event_id`, `source` or `id` field, in characters.
pub(crate) const MAX_ID_CHARS: usize = 128;

/// A validated `data` value.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Value {
    /// An optional field that was not given and has no default.
    Absent,
    /// An integer.
    Int(i64),
    /// A fixed-point decimal, in units of the field's scale.
    Fixed(i64),
    /// An enum value, as its index in the field's declared values.
    Enum(u16),
    /// An identifier (or a milestone stage id).
    Id(Box<str>),
}

impl Value {
    /// The number an `int` or `decimal` holds (in units of its scale).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) | Value::Fixed(v) => Some(*v),
            _ => None,
        }
    }
}

/// An event's `event_id`, `source` or `voids`: text of up to 24 bytes (nearly every id
/// and source) is held in place, so decoding an event does not allocate for them and
/// the event log compares them without following a pointer.
pub type IdText = compact_str::CompactString;

/// A validated event: every field is known to be well-formed for its type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    /// Unique per event within its source, chosen by the line system.
    pub id: IdText,
    /// The line system that sent it.
    pub source: IdText,
    /// Its declared type.
    pub type_id: TypeId,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// One value per declared field of its type, in the type's field order.
    pub data: Vec<Value>,
    /// The `event_id` it retracts (`event.voided` only).
    pub voids: Option<IdText>,
}

/// Appends `s` as a JSON string. Writing into a Vec cannot fail, and serde_json escapes
/// without an intermediate allocation: this runs once per stored event.
fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The canonical JSON form of an event from its parts, `data` being its canonical `data`
/// object ([`Event::canonical_data_json`]): how a store that keeps the envelope in columns
/// rebuilds [`Event::canonical_json`].
pub fn canonical_body(
    id: &str,
    source: &str,
    type_name: &str,
    occurred_at: Timestamp,
    data: &str,
    voids: Option<&str>,
) -> String {
    write_canonical(
        id,
        source,
        type_name,
        occurred_at,
        |out| out.extend_from_slice(data.as_bytes()),
        voids,
    )
}

/// The canonical form's envelope around the `data` object that `data` writes.
fn write_canonical(
    id: &str,
    source: &str,
    type_name: &str,
    occurred_at: Timestamp,
    data: impl FnOnce(&mut Vec<u8>),
    voids: Option<&str>,
) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(224);
    out.extend_from_slice(b"{\"event_id\":");
    json_str(&mut out, id);
    out.extend_from_slice(b",\"source\":");
    json_str(&mut out, source);
    out.extend_from_slice(b",\"type\":");
    json_str(&mut out, type_name);
    let _ = write!(out, ",\"occurred_at\":\"{occurred_at}\",\"data\":");
    data(&mut out);
    if let Some(v) = voids {
        out.extend_from_slice(b",\"voids\":");
        json_str(&mut out, v);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// FNV-1a, 64 bits: the hash behind [`Event::fingerprint`]. It is stored in event
/// logs, so it never changes.
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    /// FNV-1a's offset basis.
    pub(crate) const START: u64 = 0xcbf2_9ce4_8422_2325;

    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A tagged, length-prefixed field.
    pub(crate) fn tag(&mut self, t: u8, b: &[u8]) {
        self.bytes(&[t]);
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }
}

/// The state of [`Event::fingerprint`]'s hash after an event's type (the first thing it
/// hashes): [`Schema`] keeps one per type.
pub(crate) fn fingerprint_seed(type_name: &str) -> u64 {
    let mut h = Fnv(Fnv::START);
    h.tag(b't', type_name.as_bytes());
    h.0
}

impl Event {
    /// The canonical JSON form: UTC timestamp, defaults filled in, fields sorted. Two
    /// deliveries with the same canonical form are the same event.
    pub fn canonical_json(&self, schema: &Schema) -> String {
        write_canonical(
            &self.id,
            &self.source,
            &schema.event_type(self.type_id).name,
            self.occurred_at,
            |out| self.write_canonical_data_json(schema, out),
            self.voids.as_deref(),
        )
    }

    /// The `data` object of [`Event::canonical_json`] alone (what a store keeps beside
    /// the envelope's own columns).
    pub fn canonical_data_json(&self, schema: &Schema) -> String {
        let mut out: Vec<u8> = Vec::with_capacity(96);
        self.write_canonical_data_json(schema, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends [`Event::canonical_data_json`] to `out` (UTF-8 JSON): how a store writes it
    /// straight into a batch's rows, without a string per event.
    pub fn write_canonical_data_json(&self, schema: &Schema, out: &mut Vec<u8>) {
        let ty = schema.event_type(self.type_id);
        out.push(b'{');
        let mut first = true;
        for (field, value) in ty.fields.iter().zip(&self.data) {
            if matches!(value, Value::Absent) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            json_str(out, &field.name);
            out.push(b':');
            match (value, &field.kind) {
                (Value::Absent, _) => {}
                (Value::Int(v), _) => {
                    out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes());
                }
                (Value::Fixed(v), FieldKind::Decimal { scale, .. }) => {
                    out.extend_from_slice(fixed_to_string(*v, *scale).as_bytes());
                }
                (Value::Fixed(v), _) => {
                    let _ = write!(out, "{v}");
                }
                (Value::Enum(i), FieldKind::Enum { values }) => {
                    json_str(out, values.get(usize::from(*i)).map_or("", String::as_str));
                }
                (Value::Enum(i), _) => {
                    let _ = write!(out, "{i}");
                }
                (Value::Id(s), _) => json_str(out, s),
            }
        }
        out.push(b'}');
    }

    /// A stable 64-bit fingerprint of the event's content (FNV-1a over its type,
    /// instant, values and void target), stored beside the event id to tell a
    /// duplicate from a conflicting one. Two deliveries with the same canonical form
    /// have the same fingerprint; it is computed without building that form.
    pub fn fingerprint(&self, schema: &Schema) -> i64 {
        // The type's tag is the same for every event of the type: the schema keeps the
        // hash's state after it, and each event goes on from there.
        let mut h = Fnv(schema.fingerprint_seed(self.type_id));
        h.tag(b'o', &self.occurred_at.micros().to_le_bytes());
        for v in &self.data {
            match v {
                Value::Absent => h.tag(b'_', &[]),
                Value::Int(i) => h.tag(b'i', &i.to_le_bytes()),
                Value::Fixed(i) => h.tag(b'f', &i.to_le_bytes()),
                Value::Enum(i) => h.tag(b'e', &i.to_le_bytes()),
                Value::Id(s) => h.tag(b's', s.as_bytes()),
            }
        }
        if let Some(v) = &self.voids {
            h.tag(b'v', v.as_bytes());
        }
        h.0 as i64
    }
}

/// A fixed-point number as a decimal string (`1250`, scale 2 → `12.5`).
pub fn fixed_to_string(v: i64, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let p = 10i64.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let (int, frac) = (v.unsigned_abs() / p as u64, v.unsigned_abs() % p as u64);
    let frac = format!("{frac:0width$}", width = scale as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// Longest value quoted in a message; a longer one is cut (a hostile sender must not
/// get its megabyte back in every reply).
const MAX_QUOTED_CHARS: usize = 64;

/// A value as a message may quote it: Rust's escaping (control characters visible),
/// cut to [`MAX_QUOTED_CHARS`]. Only values that passed the guard are quoted, and the
/// quote is masked by it again: a cut can shorten a 13-digit run to 12, and the
/// escaping can lengthen an 11-digit one (a NUL before it is written `\0`).
fn quoted(v: &str) -> String {
    let quote = if v.chars().count() <= MAX_QUOTED_CHARS {
        format!("{v:?}")
    } else {
        let cut: String = v.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{cut:?}… ({} characters)", v.chars().count())
    };
    guard::mask(&quote)
}

/// The UTF-8 byte order mark, which Windows tools write before text.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes and validates one event from its raw JSON bytes, at the edge: its
/// `occurred_at` must also lie in the schema's [`TimeWindow`](crate::schema::TimeWindow).
///
/// Checks run in the order docs/architecture.md fixes: framing (UTF-8, JSON) → the personal-number
/// guard over the whole document → envelope → type → data fields → cross-field rules.
/// A message never quotes a value that has not passed the guard.
pub fn decode(schema: &Schema, raw: &[u8]) -> Result<Event, Rejection> {
    decode_with(schema, raw, Domain::Edge)
}

/// Decodes an event the store logged earlier: every check but the domains of the edge
/// (the time window and the per-event bounds of numbers). An event accepted then stays
/// readable whatever "now" is and whatever bounds the plan declares today: a log row
/// that a tightened bound would hide could not be voided or summed again.
pub fn decode_logged(schema: &Schema, raw: &[u8]) -> Result<Event, Rejection> {
    decode_with(schema, raw, Domain::Logged)
}

/// Which domains a decode enforces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Domain {
    /// At the edge: the time window and the declared bounds.
    Edge,
    /// Reading the event log: only what a value's type can hold.
    Logged,
}

fn decode_with(schema: &Schema, raw: &[u8], domain: Domain) -> Result<Event, Rejection> {
    let raw = raw.strip_prefix(UTF8_BOM).unwrap_or(raw);
    let text = std::str::from_utf8(raw).map_err(|e| {
        Rejection::whole(
            Reason::NotJson,
            format!(
                "not JSON: not UTF-8 text (malformed byte at offset {}); send UTF-8",
                e.valid_up_to()
            ),
        )
    })?;
    match decode_flat(schema, text, domain) {
        Some(event) => Ok(event),
        None => decode_tree(schema, text, domain),
    }
}

/// The fast path of [`decode`] for an event of the usual shape (an envelope of strings,
/// `data` an object of strings and numbers) that passes every check: read into buffers
/// on the stack ([`json::parse_event`]), the guard run over every key, string and number
/// of it, keys given twice looked for, then the same envelope and data checks as
/// [`decode_tree`]. `None` as soon as anything is unusual or wrong: [`decode_tree`] then
/// decides again from the whole document and says why, so both paths accept the same
/// events, alike, and every rejection comes from one place.
fn decode_flat(schema: &Schema, text: &str, domain: Domain) -> Option<Event> {
    let mut members = [json::Pair::BLANK; json::EVENT_MEMBERS];
    let mut data = [json::Pair::BLANK; json::DATA_MEMBERS];
    let shape = json::parse_event(text, &mut members, &mut data)?;
    let members = &members[..shape.members];
    let data = &data[..shape.object_members];
    // The guard over every key, string and number, as over the tree.
    if members.iter().chain(data).any(guard::pair_holds) {
        return None;
    }
    if first_repeat(members, |p| p.key).is_some() || first_repeat(data, |p| p.key).is_some() {
        return None;
    }
    let mut env = Envelope::default();
    for (i, m) in members.iter().enumerate() {
        if m.key.escaped {
            return None;
        }
        if shape.object_at == Some(i) {
            if m.key.raw != "data" {
                return None;
            }
            env.data = Data::Flat(data);
            continue;
        }
        let json::Leaf::String(s) = &m.value else {
            return None;
        };
        let slot = match m.key.raw {
            "event_id" => &mut env.event_id,
            "source" => &mut env.source,
            "type" => &mut env.kind,
            "occurred_at" => &mut env.occurred_at,
            "voids" => &mut env.voids,
            _ => return None,
        };
        *slot = Some(s.decoded());
    }
    validate(schema, env, domain, &mut Problems::default()).ok()
}

/// [`decode`] from the whole document's tree: any event, and every rejection.
fn decode_tree(schema: &Schema, text: &str, domain: Domain) -> Result<Event, Rejection> {
    let doc = json::parse(text)
        .map_err(|e| Rejection::whole(Reason::NotJson, format!("not JSON: {e}")))?;
    if let Some(path) = guard::scan_json(&doc, false).first {
        // The id is named when it passed the guard itself (the number is elsewhere), so
        // the sender and the operator can find the event.
        return Err(Rejection::at(
            Reason::PersonalNumber,
            &path,
            "holds what looks like a personal number (マイナンバー: 12 digits with a valid check \
             digit); the value is not shown or stored",
        )
        .with_event_id(id_hint(&doc).as_deref()));
    }
    let Json::Object(members) = &doc else {
        return Err(Rejection::whole(
            Reason::WrongType,
            format!("an event is a JSON object, not {}", doc.kind_name()),
        ));
    };
    // The id is looked for only when the event is refused: a valid event's id is read
    // once, by the envelope.
    let fail = |r: Rejection| r.with_event_id(id_hint(&doc).as_deref());
    if let Some(path) = duplicate_key(&doc) {
        return Err(fail(Rejection::at(
            Reason::WrongType,
            &path,
            "given more than once (a key may appear once per object)",
        )));
    }
    let mut problems = Problems::default();
    envelope(members, &mut problems)
        .and_then(|env| validate(schema, env, domain, &mut problems))
        .map_err(|Stop| fail(problems.into_rejection()))
}

/// A validation stopped: its problems are in the [`Problems`] it was given.
struct Stop;

/// The field-level problems of one event found so far. A valid event never adds one
/// (nothing is allocated on its path); after the first, the checks go on and each adds
/// its own, up to [`MAX_PROBLEMS`], so a sender learns every problem in one round.
#[derive(Default)]
struct Problems {
    /// The first problem, the others in its `more`.
    first: Option<Rejection>,
}

impl Problems {
    /// Records `r`; stops the validation when the limit is reached.
    fn add(&mut self, r: Rejection) -> Result<(), Stop> {
        match &mut self.first {
            None => self.first = Some(r),
            Some(first) => first.more.push(Problem {
                reason: r.reason,
                field: r.field,
                message: r.message,
            }),
        }
        let found = self.first.as_ref().map_or(0, |f| 1 + f.more.len());
        if found >= MAX_PROBLEMS {
            return Err(Stop);
        }
        Ok(())
    }

    /// The value of a check that passed; `None` (its problem recorded) for one that did not.
    fn check<T>(&mut self, result: Result<T, Rejection>) -> Result<Option<T>, Stop> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(r) => self.add(r).map(|()| None),
        }
    }

    /// Whether a problem was found.
    fn any(&self) -> bool {
        self.first.is_some()
    }

    /// The rejection of the event: the first problem, the others in its `more`.
    fn into_rejection(self) -> Rejection {
        self.first
            .unwrap_or_else(|| Rejection::whole(Reason::WrongType, "not a valid event"))
    }
}

/// The event's id as a rejection may name it: a non-empty, printable string `event_id`
/// of a top-level object that holds nothing the guard would refuse.
fn id_hint(doc: &Json<'_>) -> Option<String> {
    let Json::Object(members) = doc else {
        return None;
    };
    members
        .iter()
        .find(|m| m.key.decoded() == "event_id")
        .and_then(|m| match &m.value {
            Json::String(s) => Some(s.decoded()),
            _ => None,
        })
        // The guard passed the id as JSON; as the plain text a rejection keeps, an
        // escape written in it (`\u0031`, sent as `\\u0031`) reads as a digit, and a
        // written `\u` before twelve digits must not hide four of them in an escape:
        // both readings of the decoded id.
        .filter(|id| !id.trim().is_empty() && printable_id(id) && !guard::decoded_contains(id))
        .map(|id| id.into_owned())
}

/// The path of the first key given twice in one object, at any depth.
fn duplicate_key(doc: &Json<'_>) -> Option<String> {
    /// The trail (innermost first) to the first repeated key; allocates only on a find.
    fn walk<'a>(v: &Json<'a>) -> Option<Vec<guard::Step<'a>>> {
        match v {
            Json::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let mut trail = walk(item)?;
                trail.push(guard::Step::Index(i));
                Some(trail)
            }),
            Json::Object(members) => {
                if let Some(i) = first_repeat(members, |m| m.key) {
                    return Some(vec![guard::Step::Key(members[i].key, i)]);
                }
                members.iter().enumerate().find_map(|(i, m)| {
                    if !matches!(m.value, Json::Array(_) | Json::Object(_)) {
                        return None;
                    }
                    let mut trail = walk(&m.value)?;
                    trail.push(guard::Step::Key(m.key, i));
                    Some(trail)
                })
            }
            _ => None,
        }
    }
    walk(doc).map(|trail| guard::path_of(&trail))
}

/// The position of the first key of an object that an earlier key already gave
/// (compared as decoded: `"c\u006funt"` is `"count"`); `key` reads a member's key.
fn first_repeat<'a, T>(members: &[T], key: impl Fn(&T) -> json::Str<'a>) -> Option<usize> {
    let same = |a: &json::Str<'_>, b: &json::Str<'_>| {
        if a.escaped || b.escaped {
            a.decoded() == b.decoded()
        } else {
            a.raw == b.raw
        }
    };
    if members.len() <= 16 {
        return (1..members.len()).find(|&i| {
            let k = key(&members[i]);
            members[..i].iter().any(|m| same(&key(m), &k))
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    (0..members.len()).find(|&i| !seen.insert(key(&members[i]).decoded()))
}

/// The envelope's fields as given, `data` as its members (borrowed, not copied).
#[derive(Default)]
struct Envelope<'a> {
    event_id: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    occurred_at: Option<Cow<'a, str>>,
    data: Data<'a>,
    voids: Option<Cow<'a, str>>,
    /// The keys given with the wrong JSON type (a problem already recorded, so not
    /// "missing" too): bits of [`Key`].
    broken: u8,
}

/// An event's `data` members, from the tree or from [`json::parse_event`]'s buffer.
#[derive(Clone, Copy)]
enum Data<'a> {
    Tree(&'a [json::Member<'a>]),
    Flat(&'a [json::Pair<'a>]),
}

impl Default for Data<'_> {
    fn default() -> Self {
        Data::Tree(&[])
    }
}

/// The envelope's keys, as bits of [`Envelope::broken`].
#[derive(Clone, Copy)]
#[repr(u8)]
enum Key {
    EventId = 1,
    Source = 2,
    Type = 4,
    OccurredAt = 8,
    Voids = 16,
    Data = 32,
}

fn envelope<'a>(
    members: &'a [json::Member<'a>],
    problems: &mut Problems,
) -> Result<Envelope<'a>, Stop> {
    let mut env = Envelope::default();
    for (i, m) in members.iter().enumerate() {
        let key = m.key.decoded();
        let (slot, bit) = match &*key {
            "event_id" => (&mut env.event_id, Key::EventId),
            "source" => (&mut env.source, Key::Source),
            "type" => (&mut env.kind, Key::Type),
            "occurred_at" => (&mut env.occurred_at, Key::OccurredAt),
            "voids" => (&mut env.voids, Key::Voids),
            "data" => {
                let Json::Object(data) = &m.value else {
                    env.broken |= Key::Data as u8;
                    problems.add(Rejection::at(
                        Reason::WrongType,
                        "data",
                        format!("expected an object, got {}", m.value.kind_name()),
                    ))?;
                    continue;
                };
                env.data = Data::Tree(data);
                continue;
            }
            other => {
                problems.add(Rejection::at(
                    Reason::UnknownField,
                    &guard::key_label(other, i),
                    "unknown envelope field; expected event_id, source, type, occurred_at, data, \
                     voids",
                ))?;
                continue;
            }
        };
        match &m.value {
            Json::String(s) => *slot = Some(s.decoded()),
            other => {
                env.broken |= bit as u8;
                problems.add(Rejection::at(
                    Reason::WrongType,
                    &key,
                    format!("expected a string, got {}", other.kind_name()),
                ))?;
            }
        }
    }
    Ok(env)
}

/// Whether an id is at most [`MAX_ID_CHARS`] characters, none of them control
/// characters. ASCII ids (nearly all) are checked on bytes.
fn printable_id(v: &str) -> bool {
    let b = v.as_bytes();
    // Printable ASCII (0x20..0x7f), a word at a time, is the whole answer.
    if b.len() <= MAX_ID_CHARS && crate::swar::all_printable_ascii(b) {
        true
    } else if v.is_ascii() {
        false
    } else {
        v.chars().count() <= MAX_ID_CHARS && !v.chars().any(char::is_control)
    }
}

/// Whether a text is empty or all white space (`str::trim` leaves nothing), decided at
/// the first byte for the usual id that starts with a visible ASCII character.
pub(crate) fn is_blank(v: &str) -> bool {
    match v.as_bytes().first() {
        Some(c) if c.is_ascii_graphic() => false,
        _ => v.trim().is_empty(),
    }
}

fn check_id(field: &str, v: Option<Cow<'_, str>>) -> Result<IdText, Rejection> {
    let v = v.ok_or_else(|| Rejection::at(Reason::MissingField, field, "required"))?;
    if is_blank(&v) {
        return Err(Rejection::at(Reason::EmptyId, field, "must not be empty"));
    }
    if !printable_id(&v) {
        return Err(Rejection::at(
            Reason::OutOfBounds,
            field,
            format!("must be at most {MAX_ID_CHARS} printable characters"),
        ));
    }
    Ok(IdText::from(&*v))
}

/// The envelope's fields and the data checked, every problem recorded in `problems`
/// (a key given with the wrong JSON type was recorded by [`envelope`]; data is checked
/// only when the type is known).
fn validate(
    schema: &Schema,
    env: Envelope<'_>,
    domain: Domain,
    problems: &mut Problems,
) -> Result<Event, Stop> {
    let p = problems;
    let usable = |key: Key| env.broken & key as u8 == 0;
    let id = if usable(Key::EventId) {
        p.check(check_id("event_id", env.event_id))?
    } else {
        None
    };
    let source = if usable(Key::Source) {
        p.check(check_id("source", env.source))?
    } else {
        None
    };
    let type_id = if usable(Key::Type) {
        p.check(type_of(schema, env.kind))?
    } else {
        None
    };
    let occurred_at = if usable(Key::OccurredAt) {
        p.check(check_occurred_at(schema, env.occurred_at, domain))?
    } else {
        None
    };
    let Some(type_id) = type_id else {
        return Err(Stop);
    };
    let ty = schema.event_type(type_id);
    let voids = if usable(Key::Voids) {
        p.check(voids_of(ty, env.voids))?.flatten()
    } else {
        None
    };
    let data = if usable(Key::Data) {
        let data = match env.data {
            Data::Tree(members) => {
                let given = members.iter().map(|m| (m.key, Given::of(&m.value)));
                validate_data(schema, ty, given, domain, p)?
            }
            Data::Flat(pairs) => {
                let given = pairs.iter().map(|m| (m.key, Given::of_leaf(m.value)));
                validate_data(schema, ty, given, domain, p)?
            }
        };
        Some(data)
    } else {
        None
    };
    match (id, source, occurred_at, data) {
        (Some(id), Some(source), Some(occurred_at), Some(data)) if !p.any() => Ok(Event {
            id,
            source,
            type_id,
            occurred_at,
            data,
            voids,
        }),
        _ => Err(Stop),
    }
}

/// The declared type `kind` names.
fn type_of(schema: &Schema, kind: Option<Cow<'_, str>>) -> Result<TypeId, Rejection> {
    let kind = kind.ok_or_else(|| Rejection::at(Reason::MissingField, "type", "required"))?;
    schema.type_id(&kind).ok_or_else(|| {
        Rejection::at(
            Reason::UnknownType,
            "type",
            format!(
                "unknown event type {}; the plan declares: {}",
                quoted(&kind),
                schema.type_names().join(", ")
            ),
        )
    })
}

/// `occurred_at` read, and within the time window at the edge.
fn check_occurred_at(
    schema: &Schema,
    v: Option<Cow<'_, str>>,
    domain: Domain,
) -> Result<Timestamp, Rejection> {
    let v = v.ok_or_else(|| Rejection::at(Reason::MissingField, "occurred_at", "required"))?;
    let at = Timestamp::parse_rfc3339(&v)
        .map_err(|e| Rejection::at(Reason::BadTimestamp, "occurred_at", e.to_string()))?;
    if domain == Domain::Edge {
        check_window(schema.window(), at)?;
    }
    Ok(at)
}

/// `voids`: required by a voiding type, refused on any other.
fn voids_of(ty: &EventType, v: Option<Cow<'_, str>>) -> Result<Option<IdText>, Rejection> {
    match (ty.voids, v) {
        (true, None) => Err(Rejection::at(
            Reason::MissingField,
            "voids",
            format!("required for {}: the event_id to retract", ty.name),
        )),
        (true, Some(v)) => check_id("voids", Some(v)).map(Some),
        (false, Some(_)) => Err(Rejection::at(
            Reason::UnknownField,
            "voids",
            format!("only a voiding type may carry voids, not {}", ty.name),
        )),
        (false, None) => Ok(None),
    }
}

/// `occurred_at` must lie between the window's earliest instant and now plus the skew.
fn check_window(w: &TimeWindow, at: Timestamp) -> Result<(), Rejection> {
    if at < w.earliest {
        return Err(Rejection::at(
            Reason::OutOfBounds,
            "occurred_at",
            format!(
                "{at} is earlier than the plan's horizon ({}); events this old are not taken",
                w.earliest
            ),
        ));
    }
    if let Err(now) = w.not_too_late(at) {
        return Err(Rejection::at(
            Reason::OutOfBounds,
            "occurred_at",
            format!(
                "{at} is in the future: later than now ({now}) plus the allowed clock skew of {}",
                skew_text(w.max_future_skew_micros)
            ),
        ));
    }
    Ok(())
}

/// A skew for a message: `1d`, `12h`, `90s`.
fn skew_text(micros: i64) -> String {
    let s = micros / 1_000_000;
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::schema::EventTypeDecl;

    const NOW: &str = "2026-10-01T00:00:00+09:00";

    fn schema() -> Schema {
        let decls: BTreeMap<String, EventTypeDecl> = serde_json::from_str(
            r#"{
              "cert": {"fields": {
                 "channel": {"kind": "enum", "values": ["konbini", "counter"]},
                 "count": {"kind": "int", "min": 1, "default": 1}}},
              "bpr": {"fields": {"hours": {"kind": "decimal", "scale": 2, "min": 0.01}}},
              "wide": {"fields": {"n": {"kind": "int", "min": 0, "max": 9000000000000000000}}}
            }"#,
        )
        .unwrap();
        let mut s = Schema::new(&decls, HashMap::new()).unwrap();
        s.set_window(TimeWindow {
            earliest: Timestamp::parse_rfc3339("2020-04-01T00:00:00+09:00").unwrap(),
            now: Some(Timestamp::parse_rfc3339(NOW).unwrap()),
            ..TimeWindow::default()
        });
        s
    }

    fn event(ty: &str, at: &str, data: &str) -> String {
        format!(
            r#"{{"event_id":"e-1","source":"s","type":"{ty}","occurred_at":"{at}","data":{data}}}"#
        )
    }

    fn reject(raw: &str) -> Rejection {
        decode(&schema(), raw.as_bytes()).unwrap_err()
    }

    fn at(r: &Rejection) -> (Reason, Option<&str>) {
        (r.reason, r.field.as_deref())
    }

    #[test]
    fn the_fingerprint_is_the_one_event_logs_already_store() {
        // FNV-1a over (tag, length, bytes) of the type, the instant and each value,
        // computed apart from this code: fingerprints stored in logs must keep matching.
        let s = schema();
        let e = decode(
            &s,
            event("cert", NOW, r#"{"channel":"konbini"}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(e.fingerprint(&s), 5_822_053_560_574_312_338);
        let e = decode(&s, event("bpr", NOW, r#"{"hours":12.5}"#).as_bytes()).unwrap();
        assert_eq!(e.fingerprint(&s), 115_849_697_851_245_452);
    }

    #[test]
    fn an_integer_field_takes_integer_notation_only() {
        for n in ["1.0", "1e0", "1E3", "0.5"] {
            let r = reject(&event(
                "cert",
                NOW,
                &format!(r#"{{"channel":"konbini","count":{n}}}"#),
            ));
            assert_eq!(at(&r), (Reason::WrongType, Some("data.count")), "{n}");
        }
        let r = reject(&event("cert", NOW, r#"{"channel":"konbini","count":"5"}"#));
        assert_eq!(at(&r), (Reason::WrongType, Some("data.count")));
    }

    #[test]
    fn numbers_past_their_bounds_are_out_of_bounds_whatever_their_size() {
        for n in [
            "1000000001",
            "1000000000000000",
            "5000000000000000000",
            "99999999999999999999999",
            "0",
            "-7",
        ] {
            let r = reject(&event(
                "cert",
                NOW,
                &format!(r#"{{"channel":"konbini","count":{n}}}"#),
            ));
            assert_eq!(at(&r), (Reason::OutOfBounds, Some("data.count")), "{n}");
        }
        let ok = decode(
            &schema(),
            event("cert", NOW, r#"{"channel":"konbini","count":1000000000}"#).as_bytes(),
        );
        assert_eq!(ok.unwrap().data[1], Value::Int(1_000_000_000));
        let wide = decode(
            &schema(),
            event("wide", NOW, r#"{"n":9000000000000000000}"#).as_bytes(),
        );
        assert_eq!(wide.unwrap().data[0], Value::Int(9_000_000_000_000_000_000));
    }

    #[test]
    fn decimals_are_exact_and_never_rounded() {
        for n in ["50.005", "5000.005", "0.001", "1e-3"] {
            let r = reject(&event("bpr", NOW, &format!(r#"{{"hours":{n}}}"#)));
            assert_eq!(at(&r), (Reason::WrongType, Some("data.hours")), "{n}");
        }
        for n in ["1e30", "1e999999999", "1000000000.01"] {
            let r = reject(&event("bpr", NOW, &format!(r#"{{"hours":{n}}}"#)));
            assert_eq!(at(&r), (Reason::OutOfBounds, Some("data.hours")), "{n}");
        }
        for (n, units) in [
            ("12.5", 1250),
            ("12.50", 1250),
            ("1.25e1", 1250),
            ("0.01", 1),
            ("7", 700),
        ] {
            let e = decode(
                &schema(),
                event("bpr", NOW, &format!(r#"{{"hours":{n}}}"#)).as_bytes(),
            )
            .unwrap();
            assert_eq!(e.data[0], Value::Fixed(units), "{n}");
        }
    }

    #[test]
    fn a_key_given_twice_at_any_depth_is_refused() {
        let r = reject(
            r#"{"event_id":"a","event_id":"b","source":"s","type":"cert","occurred_at":"2026-05-01T00:00:00Z","data":{"channel":"konbini"}}"#,
        );
        assert_eq!(at(&r), (Reason::WrongType, Some("event_id")));
        let r = reject(&event(
            "cert",
            NOW,
            r#"{"channel":"konbini","count":1,"count":2}"#,
        ));
        assert_eq!(at(&r), (Reason::WrongType, Some("data.count")));
        let r = reject(&event(
            "cert",
            NOW,
            r#"{"channel":"konbini","c\u006funt":1,"count":2}"#,
        ));
        assert_eq!(at(&r), (Reason::WrongType, Some("data.count")));
        let r = reject(&event("cert", NOW, r#"{"x":[{"a":1,"a":2}]}"#));
        assert_eq!(at(&r), (Reason::WrongType, Some("data.x[0].a")));
    }

    #[test]
    fn framing_problems_say_what_they_are() {
        let r = reject(r#"[{"event_id":"a"}]"#);
        assert_eq!(r.reason, Reason::WrongType);
        assert!(r.message.contains("not an array"), "{}", r.message);
        let r = reject("\u{FEFF}{oops");
        assert_eq!(r.reason, Reason::NotJson);
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(reject(&deep)
            .message
            .contains("nested deeper than 64 levels"));
        let bom = format!("\u{FEFF}{}", event("cert", NOW, r#"{"channel":"konbini"}"#));
        assert!(decode(&schema(), bom.as_bytes()).is_ok());
        let sjis = b"{\"event_id\":\"\x82\xa0\"}";
        assert!(decode(&schema(), sjis)
            .unwrap_err()
            .message
            .contains("not UTF-8"));
    }

    #[test]
    fn occurred_at_lies_between_the_horizon_and_now_plus_the_skew() {
        for t in ["0001-01-01T00:00:00Z", "2020-03-31T23:59:59+09:00"] {
            let r = reject(&event("cert", t, r#"{"channel":"konbini"}"#));
            assert_eq!(at(&r), (Reason::OutOfBounds, Some("occurred_at")), "{t}");
            assert!(r.message.contains("horizon"), "{}", r.message);
        }
        for t in ["9999-12-31T23:59:59Z", "2026-10-02T00:00:01+09:00"] {
            let r = reject(&event("cert", t, r#"{"channel":"konbini"}"#));
            assert_eq!(at(&r), (Reason::OutOfBounds, Some("occurred_at")), "{t}");
            assert!(r.message.contains("future"), "{}", r.message);
        }
        for t in ["2020-04-01T00:00:00+09:00", "2026-10-02T00:00:00+09:00"] {
            assert!(
                decode(
                    &schema(),
                    event("cert", t, r#"{"channel":"konbini"}"#).as_bytes()
                )
                .is_ok(),
                "{t}"
            );
        }
    }

    #[test]
    fn the_log_is_read_back_whatever_the_window_and_bounds_are_today() {
        let s = schema();
        let old = event(
            "cert",
            "2001-01-01T00:00:00Z",
            r#"{"channel":"konbini","count":5000000000}"#,
        );
        assert!(decode(&s, old.as_bytes()).is_err());
        let e = decode_logged(&s, old.as_bytes()).unwrap();
        assert_eq!(e.data[1], Value::Int(5_000_000_000));
    }

    #[test]
    fn a_quoted_value_whose_escaping_makes_a_personal_number_is_masked() {
        // A NUL and 11 digits: Rust's Debug writes `\0` and the digits, and 023456789013
        // has a valid check digit.
        let r = reject(&event("cert", NOW, r#"{"channel":"\u000023456789013"}"#));
        assert_eq!(r.reason, Reason::UnknownValue);
        assert!(!r.message.contains("23456789013"), "{}", r.message);
    }

    #[test]
    fn messages_never_echo_long_values_or_invalid_ids() {
        let long = "x".repeat(10_000);
        let r = reject(&event("cert", NOW, &format!(r#"{{"channel":"{long}"}}"#)));
        assert_eq!(r.reason, Reason::UnknownValue);
        assert!(r.message.len() < 300, "{}", r.message);
        let r = reject(&format!(
            r#"{{"event_id":"{long}","source":"s","type":"cert","occurred_at":"{NOW}","data":{{}}}}"#
        ));
        assert_eq!(at(&r), (Reason::OutOfBounds, Some("event_id")));
        assert_eq!(r.event_id, None);
        let r = reject(&event("cert", NOW, &format!(r#"{{"{long}":1}}"#)));
        assert_eq!(at(&r), (Reason::UnknownField, Some("data.<key 0>")));
    }

    #[test]
    fn a_quote_shows_no_personal_number_its_cut_or_escaping_made() {
        // 123456789018 is valid: cut after it, the 13-digit run would show one.
        let long = format!("{}1234567890185", "a".repeat(MAX_QUOTED_CHARS - 12));
        assert!(!guard::contains(&long));
        assert!(!guard::contains(&quoted(&long)), "{}", quoted(&long));
        // 048884211444 is valid: `\0` and the eleven digits after it would show one.
        let nul = "\u{0}48884211444";
        assert!(!guard::contains(nul));
        assert!(!guard::contains(&quoted(nul)), "{}", quoted(nul));
        assert_eq!(quoted("konbini"), "\"konbini\"");
    }

    #[test]
    fn a_rejection_names_no_event_id_whose_text_reads_as_a_personal_number() {
        let schema = Schema::default();
        // The id's value is the text \u0031\u0032… (each backslash escaped in JSON).
        let escaped: String = "123456789018"
            .chars()
            .map(|c| format!("\\\\u{:04x}", u32::from(c)))
            .collect();
        let raw = format!(r#"{{"event_id":"{escaped}","type":"x"}}"#);
        let r = decode(&schema, raw.as_bytes()).unwrap_err();
        // Read with its own escapes, the id's text is a personal number: refused as one.
        assert_eq!(r.reason, Reason::PersonalNumber);
        assert_eq!(r.event_id, None);
        let raw = r#"{"event_id":"k-1","type":"x"}"#;
        let r = decode(&schema, raw.as_bytes()).unwrap_err();
        assert_eq!(r.event_id.as_deref(), Some("k-1"));
    }

    #[test]
    fn a_personal_number_rejection_names_the_event_id_that_passed_the_guard() {
        let schema = Schema::default();
        let raw = r#"{"event_id":"k-7","type":"x","data":{"memo":"1234-5678-9018"}}"#;
        let r = decode(&schema, raw.as_bytes()).unwrap_err();
        assert_eq!(r.reason, Reason::PersonalNumber);
        assert_eq!(r.event_id.as_deref(), Some("k-7"));
        // The number in the id itself: no id is named.
        let raw = r#"{"event_id":"123456789018","type":"x"}"#;
        let r = decode(&schema, raw.as_bytes()).unwrap_err();
        assert_eq!((r.reason, r.event_id), (Reason::PersonalNumber, None));
    }

    fn problems(r: &Rejection) -> Vec<(Reason, Option<&str>)> {
        r.problems()
            .map(|(reason, field, _)| (reason, field))
            .collect()
    }

    #[test]
    fn every_problem_of_an_event_is_reported_the_first_as_today() {
        let raw = format!(
            r#"{{"event_id":"e-1","type":"cert","occurred_at":"{NOW}","data":{{"channel":"fax","count":0,"memo":"x"}}}}"#
        );
        let r = reject(&raw);
        // The first problem is the rejection's own reason and field, as before.
        assert_eq!(at(&r), (Reason::MissingField, Some("source")));
        assert_eq!(
            problems(&r),
            [
                (Reason::MissingField, Some("source")),
                (Reason::UnknownValue, Some("data.channel")),
                (Reason::OutOfBounds, Some("data.count")),
                (Reason::UnknownField, Some("data.memo")),
            ]
        );
        assert_eq!(r.event_id.as_deref(), Some("e-1"));
        // The order is the checks' order, whatever the order of the keys.
        let raw = r#"{"data":{"count":0,"channel":"fax"},"occurred_at":"1999-01-01T00:00:00Z","type":"cert","event_id":"e-1","source":"s"}"#;
        assert_eq!(
            problems(&reject(raw)),
            [
                (Reason::OutOfBounds, Some("occurred_at")),
                (Reason::OutOfBounds, Some("data.count")),
                (Reason::UnknownValue, Some("data.channel")),
            ]
        );
        let shown = reject(raw).to_string();
        assert!(
            shown.starts_with("occurred_at: 1999-01-01T00:00:00Z is earlier")
                && shown.contains(" | data.count: 0 is below the minimum 1 (out_of_bounds) | "),
            "{shown}"
        );
    }

    #[test]
    fn a_problem_is_reported_once_not_again_as_its_consequences() {
        // A key of the wrong JSON type is not also missing; data that is no object
        // misses no field; an unknown type leaves data unchecked.
        let raw = format!(
            r#"{{"event_id":"e-1","source":7,"type":"cert","occurred_at":"{NOW}","data":[]}}"#
        );
        assert_eq!(
            problems(&reject(&raw)),
            [
                (Reason::WrongType, Some("source")),
                (Reason::WrongType, Some("data")),
            ]
        );
        let r = reject(&event("nope", NOW, r#"{"x":1}"#));
        assert_eq!(problems(&r), [(Reason::UnknownType, Some("type"))]);
        // A refused field is not also missing, and a valid event has no problem list.
        let r = reject(&event("cert", NOW, r#"{"channel":1}"#));
        assert_eq!(problems(&r), [(Reason::WrongType, Some("data.channel"))]);
        assert!(r.more.is_empty());
    }

    #[test]
    fn at_most_max_problems_are_reported() {
        let keys: Vec<String> = (0..50).map(|i| format!(r#""k{i:02}":1"#)).collect();
        let r = reject(&event("cert", NOW, &format!("{{{}}}", keys.join(","))));
        let found = problems(&r);
        assert_eq!(found.len(), MAX_PROBLEMS);
        assert_eq!(found[0], (Reason::UnknownField, Some("data.k00")));
        assert_eq!(
            found[MAX_PROBLEMS - 1],
            (Reason::UnknownField, Some("data.k19"))
        );
    }

    #[test]
    fn an_id_whose_number_hides_behind_a_written_backslash_u_is_never_named() {
        // Sent as `\\u1234-…`: the id is a backslash, a `u` and a 4-4-4 number. Read
        // with escapes, `\u1234` is one character and the number's first group is gone;
        // a person reading the id sees all twelve digits.
        for id in [
            r"x\\u1234-5678-9018",
            r"\\u123456789018",
            r"ab\\u1234 5678 9018",
        ] {
            let raw = format!(
                r#"{{"event_id":"{id}","type":"cert","occurred_at":"{NOW}","data":{{"channel":"fax"}}}}"#
            );
            let r = reject(&raw);
            assert_eq!(at(&r), (Reason::PersonalNumber, Some("event_id")), "{raw}");
            assert_eq!(r.event_id, None, "{raw}");
        }
    }

    #[test]
    fn a_personal_number_stays_the_only_problem_reported() {
        let raw = format!(
            r#"{{"event_id":"e-1","type":"cert","occurred_at":"{NOW}","data":{{"channel":"fax","memo":"123456789018"}}}}"#
        );
        let r = reject(&raw);
        assert_eq!(problems(&r), [(Reason::PersonalNumber, Some("data.memo"))]);
        assert!(!r.to_string().contains("123456789018"), "{r}");
    }

    /// `decode` as it was before the flat path: the tree alone.
    fn by_tree(s: &Schema, raw: &str) -> Result<Event, Rejection> {
        decode_tree(s, raw, Domain::Edge)
    }

    #[test]
    fn the_usual_event_is_read_without_a_tree_and_as_the_tree_reads_it() {
        let s = schema();
        for raw in [
            event("cert", NOW, r#"{"channel":"konbini","count":3}"#),
            event("cert", NOW, r#"{"channel":"counter"}"#),
            event("cert", NOW, r#"{"ch\u0061nnel":"k\u006fnbini"}"#),
            event("bpr", NOW, r#"{"hours":1.25e1}"#),
            event("wide", NOW, r#"{"n":9000000000000000000}"#),
            format!(
                " {{ \"data\" : {{ \"count\" : 2 , \"channel\" : \"konbini\" }} ,\n\"occurred_at\":\"{NOW}\",\"type\":\"cert\",\"source\":\"s\\u0031\",\"event_id\":\"e\\\\1\"}}\t"
            ),
        ] {
            let flat = decode_flat(&s, &raw, Domain::Edge);
            assert!(flat.is_some(), "{raw}");
            assert_eq!(flat.map(Ok), Some(by_tree(&s, &raw)), "{raw}");
        }
    }

    #[test]
    fn what_the_flat_reading_does_not_accept_the_tree_decides() {
        let s = schema();
        let pn = "123456789018";
        for raw in [
            // Refused for what the guard finds, in every place and notation.
            event("cert", NOW, &format!(r#"{{"channel":"{pn}"}}"#)),
            event(
                "cert",
                NOW,
                r#"{"channel":"konbini","count":1.23456789018e11}"#,
            ),
            event("cert", NOW, &format!(r#"{{"channel":"konbini","{pn}":1}}"#)),
            event("cert", NOW, r#"{"channel":"\u0031\u0032345678901\u0038"}"#),
            format!(
                r#"{{"event_id":"1234-5678-9018","source":"s","type":"cert","occurred_at":"{NOW}","data":{{"channel":"konbini"}}}}"#
            ),
            // Keys given twice, plainly or escaped.
            event(
                "cert",
                NOW,
                r#"{"channel":"konbini","count":1,"c\u006funt":2}"#,
            ),
            format!(
                r#"{{"event_id":"a","event_id":"b","source":"s","type":"cert","occurred_at":"{NOW}","data":{{"channel":"konbini"}}}}"#
            ),
            format!(
                r#"{{"event_id":"a","source":"s","type":"cert","occurred_at":"{NOW}","data":{{"channel":"konbini"}},"data":{{}}}}"#
            ),
            // Shapes it leaves to the tree, valid or not.
            event("cert", NOW, r#"{"channel":"konbini","count":null}"#),
            event("cert", NOW, r#"{"channel":["konbini"]}"#),
            event("cert", NOW, r#"{"channel":{"a":1}}"#),
            format!(
                r#"{{"event_id":"a","source":"s","type":"cert","occurred_at":"{NOW}","d\u0061ta":{{"channel":"konbini"}}}}"#
            ),
            format!(
                r#"{{"event_id":"a","source":"s","type":"cert","occurred_at":"{NOW}","other":{{"channel":"konbini"}}}}"#
            ),
            format!(
                r#"{{"event_id":1,"source":"s","type":"cert","occurred_at":"{NOW}","data":{{"channel":"konbini"}}}}"#
            ),
            event(
                "cert",
                NOW,
                &format!(
                    "{{{}}}",
                    (0..13)
                        .map(|i| format!(r#""k{i}":1"#))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ),
            // Not JSON, or not valid.
            event("cert", NOW, r#"{"channel":"konbini","count":01}"#),
            event(
                "cert",
                NOW,
                r#"{"channel":"kon
bini"}"#,
            ),
            format!("{} x", event("cert", NOW, r#"{"channel":"konbini"}"#)),
            event("cert", NOW, r#"{"channel":"fax","count":0}"#),
            event("cert", "2001-01-01T00:00:00Z", r#"{"channel":"konbini"}"#),
            event("nope", NOW, r#"{"channel":"konbini"}"#),
        ] {
            let flat = decode_flat(&s, &raw, Domain::Edge);
            let tree = by_tree(&s, &raw);
            match flat {
                Some(e) => assert_eq!(Ok(e), tree, "{raw}"),
                None => assert_eq!(decode(&s, raw.as_bytes()), tree, "{raw}"),
            }
        }
        // The ones the guard refuses are refused as before.
        let r = reject(&event(
            "cert",
            NOW,
            r#"{"channel":"konbini","count":1.23456789018e11}"#,
        ));
        assert_eq!(at(&r), (Reason::PersonalNumber, Some("data.count")));
    }

    proptest::proptest! {
        #[test]
        fn the_flat_reading_accepts_only_what_the_tree_accepts_alike(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(r#""event_id":"e-1""#.to_owned()),
                    proptest::strategy::Just(r#""source":"s""#.to_owned()),
                    proptest::strategy::Just(r#""type":"cert""#.to_owned()),
                    proptest::strategy::Just(format!(r#""occurred_at":"{NOW}""#)),
                    proptest::strategy::Just(r#""data":{"channel":"konbini","count":2}"#.to_owned()),
                    proptest::strategy::Just(r#""data":{"channel":"counter"}"#.to_owned()),
                    proptest::strategy::Just(r#""data":{"channel":"konbini","count":1234567890180e-1}"#.to_owned()),
                    "\"[a-z_]{1,12}\":\"[ -~]{0,16}\"",
                    "\"[a-z_]{1,12}\":[0-9.e-]{1,14}",
                ],
                0..8,
            ),
            junk in "[ ,:{}\\[\\]\"\\\\0-9a-z]{0,3}",
        ) {
            let s = schema();
            let raw = format!("{{{}}}{junk}", parts.join(","));
            let tree = by_tree(&s, &raw);
            if let Some(e) = decode_flat(&s, &raw, Domain::Edge) {
                proptest::prop_assert_eq!(Ok(e), tree.clone(), "{}", raw);
            }
            proptest::prop_assert_eq!(decode(&s, raw.as_bytes()), tree, "{}", raw);
        }
    }
}
