//! The invariants the fuzz targets check: each `check_*` takes one input and panics,
//! naming the invariant, when it does not hold.
//!
//! The ingest crate's `fuzz_regressions` test includes this file (`#[path]`) and replays
//! the inputs saved under `fuzz/regressions/` through the same functions, so a bug the
//! fuzzer found stays fixed under a plain `cargo test`. It therefore depends on nothing
//! but `mieruka_ingest`, `serde_json` and `encoding_rs`.

use mieruka_ingest::frame::{self, FrameError, RawEvent};
use mieruka_ingest::import::{self, CsvMapping, Encoding};
use mieruka_ingest::json::{self, Json};
use mieruka_ingest::{guard, Event, Position, Reason, Rejection, Schema};

/// Most events framed from one body: a fuzz input is small, and the limit's own error
/// is exercised as well.
pub const MAX_EVENTS: usize = 1000;

/// The separators the guard reads between groups of four digits (`guard.rs`).
pub const SEPARATORS: [char; 14] = [
    '-', ' ', '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
    '\u{FF0D}', '\u{30FC}', '\u{FF70}', '\u{3000}', '\u{00A0}',
];

/// `json::parse`'s error for nesting past [`json::MAX_DEPTH`].
const TOO_DEEP: &str = "nested deeper than 64 levels";

/// Panics when the guard finds a personal number in `text` (a field path, a message, an
/// id: text a person reads).
pub fn assert_text_shows_none(what: &str, text: &str) {
    let found = guard::find(text);
    assert!(
        found.is_empty(),
        "{what} holds a personal number (bytes {found:?}): {text:?}"
    );
}

/// Panics when the guard finds a personal number in a kept raw text: read as text, and,
/// when it is JSON (after any byte order marks, which decoding skips), in any key,
/// string or number.
pub fn assert_raw_shows_none(what: &str, text: &str) {
    assert_text_shows_none(what, text);
    if let Ok(doc) = json::parse(text.trim_start_matches('\u{FEFF}')) {
        let path = guard::scan_json(&doc, false).first;
        assert!(
            path.is_none(),
            "{what} is JSON with a personal number at {path:?}: {text:?}"
        );
    }
}

/// `json::parse` accepts exactly what serde_json accepts, but for two differences by
/// design: nesting deeper than [`json::MAX_DEPTH`] is refused here (serde_json allows
/// 128 levels), and a number beyond `f64`'s range is read exactly here (serde_json
/// without `arbitrary_precision` refuses it). Both refuse invalid UTF-8, control
/// characters in strings and lone surrogates, and both allow a key twice (`decode`
/// refuses that later, with a field path).
pub fn check_json_differential(bytes: &[u8]) {
    let theirs = serde_json::from_slice::<serde_json::Value>(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        assert!(
            theirs.is_err(),
            "serde_json accepts bytes that are not UTF-8: {bytes:?}"
        );
        return;
    };
    match (json::parse(text), theirs) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) if e.what == TOO_DEEP => {}
        (Ok(_), Err(e)) if e.to_string().starts_with("number out of range") => {}
        (Err(e), Ok(_)) => panic!("json::parse refuses what serde_json accepts ({e}): {text:?}"),
        (Ok(_), Err(e)) => panic!("json::parse accepts what serde_json refuses ({e}): {text:?}"),
    }
}

/// Frames a body and checks every event of it ([`check_event`]), the framing against
/// `json::parse` and every framed text against serde_json.
pub fn check_frame(schema: &Schema, body: &[u8], ndjson: bool) {
    let framed = frame::frame(body, ndjson, MAX_EVENTS);
    if let Err(e) = &framed {
        assert_text_shows_none("a framing error", &e.to_string());
    }
    if ndjson {
        check_ndjson_framing(&framed);
    } else {
        check_array_framing(body, &framed);
    }
    check_json_differential(body);
    for (raw, _) in framed.unwrap_or_default() {
        check_json_differential(raw);
        check_event(schema, raw);
    }
}

/// NDJSON lines come out in order, one line each, never blank.
fn check_ndjson_framing(framed: &Result<Vec<RawEvent<'_>>, FrameError>) {
    let Ok(raws) = framed else {
        assert!(
            matches!(framed, Err(FrameError::TooManyEvents { .. })),
            "NDJSON framing fails otherwise than by its limit: {framed:?}"
        );
        return;
    };
    let mut last = 0;
    for (raw, line) in raws {
        let line = line.unwrap_or_else(|| panic!("an NDJSON line without a line number"));
        assert!(line > last, "NDJSON lines out of order");
        last = line;
        assert!(!raw.contains(&b'\n'), "an NDJSON event spans lines");
        assert!(
            !raw.iter().all(u8::is_ascii_whitespace),
            "a blank NDJSON line is an event"
        );
    }
}

/// A JSON-array body frames when, and only when, it is a JSON array (one level deeper
/// is allowed: the array itself is not an event), into as many events as it has
/// elements, each of them JSON.
fn check_array_framing(body: &[u8], framed: &Result<Vec<RawEvent<'_>>, FrameError>) {
    let body = body.strip_prefix(frame::UTF8_BOM).unwrap_or(body);
    let Ok(text) = std::str::from_utf8(body) else {
        assert!(
            matches!(framed, Err(FrameError::NotUtf8 { .. })),
            "a body that is not UTF-8 frames: {framed:?}"
        );
        return;
    };
    match (json::parse(text), framed) {
        (Err(e), _) if e.what == TOO_DEEP => {}
        (Ok(Json::Array(items)), Ok(raws)) => assert_eq!(
            items.len(),
            raws.len(),
            "an array body frames into another number of events: {text:?}"
        ),
        (Ok(Json::Array(items)), Err(FrameError::TooManyEvents { .. }))
            if items.len() > MAX_EVENTS => {}
        (Ok(_), Err(FrameError::NotAnArray(_))) | (Err(_), Err(FrameError::NotAnArray(_))) => {}
        (parsed, framed) => {
            panic!("framing disagrees with json::parse ({parsed:?} / {framed:?}): {text:?}")
        }
    }
    for (raw, line) in framed.iter().flatten() {
        assert!(line.is_none(), "an array element with a line number");
        let raw = std::str::from_utf8(raw).unwrap_or_else(|e| panic!("a framed element: {e}"));
        if let Err(e) = json::parse(raw) {
            panic!("a framed element is not JSON ({e}): {raw:?}");
        }
    }
}

/// One raw event through [`mieruka_ingest::item`]: decoding is deterministic and agrees
/// with `decode_logged`; a rejection shows no personal number (raw text, field,
/// message, event id); an accepted event's canonical form holds none and decodes back
/// to the same event.
pub fn check_event(schema: &Schema, raw: &[u8]) {
    let item = mieruka_ingest::item(schema, raw, Position::Index(0), "fuzz");
    let again = mieruka_ingest::decode(schema, raw);
    assert_eq!(
        item.outcome.as_deref(),
        again.as_ref(),
        "decode is not deterministic"
    );
    let logged = mieruka_ingest::decode_logged(schema, raw);
    match &item.outcome {
        Ok(event) => {
            assert!(
                item.raw_masked.is_none(),
                "an accepted event keeps its raw text"
            );
            assert_eq!(
                logged.as_ref().ok(),
                Some(&**event),
                "decode_logged differs from decode"
            );
            check_accepted(schema, event);
        }
        Err(rejection) => {
            let masked = item
                .raw_masked
                .as_deref()
                .unwrap_or_else(|| panic!("a rejected event keeps no raw text"));
            assert_raw_shows_none("a rejected event's masked raw text", masked);
            check_rejection(rejection);
            check_logged_rejection(rejection, logged.as_ref().err());
        }
    }
}

/// The edge's domains are decode's own: decode_logged skips the time window and the
/// bounds of numbers (an `out_of_bounds` at `occurred_at` or a data field; ids keep
/// their limits in the log too). So the log's problems are the edge's, less those, and
/// the same first problem unless that one is of the edge's domains. A value refused only
/// at the edge is read in the log, so a cross-field rule may then add a problem; and
/// past `MAX_PROBLEMS` at the edge, the log may go on: then the edge's others are among
/// the log's.
fn check_logged_rejection(edge: &Rejection, logged: Option<&Rejection>) {
    let edge_only = |(reason, field, _): &(Reason, Option<&str>, &str)| {
        *reason == Reason::OutOfBounds
            && field.is_some_and(|f| f == "occurred_at" || f.starts_with("data."))
    };
    let first = (edge.reason, edge.field.as_deref(), edge.message.as_str());
    if edge_only(&first) {
        return;
    }
    let Some(logged) = logged else {
        panic!("decode_logged accepts what decode rejects ({edge})");
    };
    assert_eq!(
        logged.event_id, edge.event_id,
        "decode_logged names another event id"
    );
    let want: Vec<_> = edge.problems().filter(|p| !edge_only(p)).collect();
    let got: Vec<_> = logged.problems().collect();
    let exact = edge.problems().count() < mieruka_ingest::reject::MAX_PROBLEMS
        && !edge.problems().any(|p| edge_only(&p));
    if exact {
        assert_eq!(got, want, "decode_logged differs from decode");
    } else {
        assert_eq!(
            got.first(),
            want.first(),
            "decode_logged differs from decode"
        );
        assert!(
            want.iter().all(|p| got.contains(p)),
            "decode_logged differs from decode"
        );
    }
}

/// Nothing a rejection shows holds a personal number.
pub fn check_rejection(r: &Rejection) {
    assert_text_shows_none("a rejection's field", r.field.as_deref().unwrap_or(""));
    assert_text_shows_none("a rejection's message", &r.message);
    assert_text_shows_none(
        "a rejection's event id",
        r.event_id.as_deref().unwrap_or(""),
    );
    assert_text_shows_none("a rejection", &r.to_string());
    assert_text_shows_none("a rejection's kept message", &r.full_message());
}

/// An accepted event's canonical form holds no personal number (the guard leaves it as
/// it is) and is a fixed point: it decodes to the same event, with the same form and
/// fingerprint.
pub fn check_accepted(schema: &Schema, event: &Event) {
    let canonical = event.canonical_json(schema);
    assert_eq!(
        guard::mask_raw(canonical.as_bytes()),
        canonical,
        "the guard finds a personal number in an accepted event's canonical form"
    );
    let again = mieruka_ingest::decode(schema, canonical.as_bytes()).unwrap_or_else(|r| {
        panic!("the canonical form of an accepted event is rejected ({r}): {canonical}")
    });
    assert_eq!(
        &again, event,
        "the canonical form decodes to another event: {canonical}"
    );
    assert_eq!(again.canonical_json(schema), canonical);
    assert_eq!(again.fingerprint(schema), event.fingerprint(schema));
    let data = format!(",\"data\":{},", event.canonical_data_json(schema));
    let data = data.trim_end_matches(',');
    assert!(
        canonical.contains(data),
        "canonical_data_json is not the data of canonical_json: {canonical}"
    );
}

/// How many mapping variants a `csv_import` input may pick ([`csv_mappings`]).
pub const CSV_MAPPINGS: usize = 8;

/// How a `csv_import` input is read: its first byte picks the encoding path (low two
/// bits) and a variant of the mapping (the next three), the rest is the file.
pub fn check_csv_input(schema: &Schema, mappings: &[CsvMapping; CSV_MAPPINGS], data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mapping = &mappings[usize::from(mode >> 2) % CSV_MAPPINGS];
    // The size of the streaming reads: from one byte on, to cut characters and lines.
    let step = 1 + usize::from(mode >> 5) * 7;
    match mode % 4 {
        // Raw bytes, encoding detected as `mieruka import` does.
        0 => check_csv(schema, mapping, rest, None, step),
        // Raw bytes read as UTF-8 (`--encoding utf-8`).
        1 => check_csv(schema, mapping, rest, Some(Encoding::Utf8), step),
        // The text, written in Shift_JIS (`--encoding shift_jis`).
        2 => {
            let text = String::from_utf8_lossy(rest);
            let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
            check_csv(schema, mapping, &sjis, Some(Encoding::ShiftJis), step);
        }
        // The text in Shift_JIS, encoding detected.
        _ => {
            let text = String::from_utf8_lossy(rest);
            let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
            check_csv(schema, mapping, &sjis, None, step);
        }
    }
}

/// The mapping variants a `csv_import` input may pick: the fixture's own; the same
/// with a tab delimiter, RFC 3339 times, a Japanese date format, Japanese era dates
/// (`%E`), month-only dates (a monthly export's `2026年10月`), totals rows skipped by
/// rule and only some rows kept, and an id built from columns.
pub fn csv_mappings(base: &CsvMapping) -> [CsvMapping; CSV_MAPPINGS] {
    let with = |f: &dyn Fn(&mut CsvMapping)| {
        let mut m = base.clone();
        f(&mut m);
        m
    };
    [
        base.clone(),
        with(&|m| m.delimiter = Some('\t')),
        with(&|m| m.time_format = "rfc3339".to_owned()),
        with(&|m| {
            m.time_format = "%Y年%m月%d日 %H時%M分".to_owned();
            m.utc_offset = "Asia/Tokyo".to_owned();
        }),
        with(&|m| m.time_format = "%E年%m月%d日".to_owned()),
        with(&|m| {
            m.time_format = "%E.%m".to_owned();
            m.month_day = Some(import::MonthDayKey::Word("last".to_owned()));
            m.month_time = Some("23:59:59".to_owned());
        }),
        with(&|m| {
            m.skip_when.insert(
                "受付番号".to_owned(),
                vec!["合計".to_owned(), "総計".to_owned()],
            );
            m.keep_when.insert(
                "交付方法".to_owned(),
                vec!["コンビニ".to_owned(), "窓口".to_owned()],
            );
        }),
        with(&|m| {
            m.event_id = None;
            m.event_id_columns = vec!["受付番号".to_owned(), "交付日時".to_owned()];
            m.time_format = "%Y年%m月".to_owned();
            m.month_day = Some(import::MonthDayKey::Day(1));
        }),
    ]
}

/// A CSV file through decoding, the mapping and [`check_event`]: no error and no row
/// shows a personal number; rows come out in line order, each of them JSON, on lines of
/// the file. Streaming the file in reads of `step` bytes gives exactly what decoding it
/// whole does: the same rows, or the same error.
pub fn check_csv(
    schema: &Schema,
    mapping: &CsvMapping,
    bytes: &[u8],
    enc: Option<Encoding>,
    step: usize,
) {
    let enc = enc.unwrap_or_else(|| import::detect_encoding(bytes));
    assert_eq!(
        import::detect_encoding_in(Trickle(bytes, step)).ok(),
        Some(import::detect_encoding(bytes)),
        "streamed encoding detection differs"
    );
    let whole = import::decode_text(bytes, enc)
        .and_then(|text| import::csv_events(&text, mapping, schema).map(|rows| (rows, text)));
    let streamed = stream_csv(schema, mapping, bytes, enc, step);
    let (rows, text) = match whole {
        Ok(rows) => rows,
        Err(e) => {
            // Streaming may meet a CSV error before a malformed byte further on: the
            // file is refused either way. Any other error is the same one.
            let streamed = streamed.err().map(|e| e.to_string());
            match e {
                import::ImportError::Encoding { .. } => {
                    assert!(streamed.is_some(), "a file that is not text streams")
                }
                _ => assert_eq!(streamed, Some(e.to_string()), "streaming fails otherwise"),
            }
            if let Some(s) = &streamed {
                assert_text_shows_none("a streamed import error", s);
            }
            return assert_text_shows_none("an import error", &e.to_string());
        }
    };
    match &streamed {
        Ok(s) => assert_eq!(
            s, &rows,
            "streamed rows differ from the rows of the whole text"
        ),
        Err(e) => panic!("streaming fails ({e}) where the whole text does not"),
    }
    // A line is at most one past the file's last (a record may end at the very end).
    let lines = text.bytes().filter(|&b| b == b'\n' || b == b'\r').count() as u64 + 1;
    let mut last = 1;
    for row in &rows {
        assert!(row.line > last, "CSV rows out of line order");
        assert!(row.line <= lines, "a row past the file's last line");
        last = row.line;
        if let Some((column, message)) = &row.column_error {
            assert_text_shows_none("a row's column", column);
            assert_text_shows_none("a row's column message", message);
        }
        check_json_differential(&row.json);
        check_event(schema, &row.json);
    }
}

/// A CSV file's rows as `mieruka import` streams them, in reads of `step` bytes.
fn stream_csv(
    schema: &Schema,
    mapping: &CsvMapping,
    bytes: &[u8],
    enc: Encoding,
    step: usize,
) -> Result<Vec<import::RawLine>, import::ImportError> {
    let mut rows = import::CsvRows::new(Trickle(bytes, step), enc, mapping, schema)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next_row()? {
        out.push(row);
    }
    Ok(out)
}

/// A reader handing out at most `n` bytes per read.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// `find`, `contains` and `mask` agree: what is masked holds nothing more, masking is
/// idempotent, and a text without a finding is left as it is.
pub fn check_guard_text(text: &str) {
    let found = guard::find(text);
    for r in &found {
        assert!(
            r.start < r.end && text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
            "a finding that is not a character: {r:?} in {text:?}"
        );
    }
    assert_eq!(guard::contains(text), !found.is_empty());
    let masked = guard::mask(text);
    assert!(
        guard::find(&masked).is_empty() && guard::find_unescaped(&masked).is_empty(),
        "a masked text still holds a personal number: {text:?} → {masked:?}"
    );
    assert_eq!(guard::mask(&masked), masked, "mask is not idempotent");
    // `mask` reads the text both ways: with escapes (`find`) and as itself.
    if found.is_empty() && guard::find_unescaped(text).is_empty() {
        assert_eq!(masked, text, "mask changes a text without a finding");
    }
}

/// Raw bytes as they would be kept: `guard::mask_raw` and the crate's `mask_raw` (which
/// also cuts) leave nothing the guard finds, whatever the bytes. With `cut`, padding in
/// front places the 64 KiB cut that many bytes into them.
pub fn check_mask_raw(bytes: &[u8], cut: Option<usize>) {
    assert_raw_shows_none("guard::mask_raw", &guard::mask_raw(bytes));
    assert_raw_shows_none("mask_raw", &mieruka_ingest::mask_raw(bytes));
    if let Some(keep) = cut {
        let keep = keep % (bytes.len() + 1);
        let mut padded = vec![b' '; mieruka_ingest::MAX_RAW_KEPT - keep];
        padded.extend_from_slice(bytes);
        assert_raw_shows_none("mask_raw (cut)", &mieruka_ingest::mask_raw(&padded));
    }
}

/// How a raw `guard_mask` input is read (first byte even): the rest as text, as a JSON
/// number, and as raw bytes. One UTF-8 input in eight is also cut, its first byte's
/// high half saying where (64 KiB of padding is slow to read: the fuzzer would spend
/// most of its time there).
pub fn check_guard_input(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    check_guard_text(&text);
    check_number_reading(&text);
    let utf8 = matches!(text, std::borrow::Cow::Borrowed(_));
    let cut = (utf8 && mode & 0b1110 == 0).then_some(usize::from(mode >> 4));
    check_mask_raw(rest, cut);
}

/// A JSON number holds a personal number exactly when its text does, or the integer or
/// fraction part of its value written out in full does (computed here the slow way).
pub fn check_number_reading(text: &str) {
    let Ok(Json::Number(n)) = json::parse(text) else {
        return;
    };
    let Some((int, frac)) = expand(n.text) else {
        return;
    };
    let part_holds = |p: &str| p.len() == 12 && guard::contains(p);
    let expected = guard::contains(n.text) || part_holds(&int) || part_holds(&frac);
    assert_eq!(
        guard::number_holds(&n),
        expected,
        "number_holds disagrees with the number written out ({int}.{frac}): {text:?}"
    );
}

/// The integer part (no leading zeros, `0` for none) and the fraction part (no trailing
/// zeros) of a JSON number written out; `None` for exponents too large to write out.
fn expand(text: &str) -> Option<(String, String)> {
    let t = text.trim_start_matches('-');
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    if exp.abs() > 400 {
        return None;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exp;
    let (int, frac) = if point <= 0 {
        ("0".to_owned(), "0".repeat((-point) as usize) + &digits)
    } else if point as usize >= digits.len() {
        let pad = "0".repeat(point as usize - digits.len());
        (digits + &pad, String::new())
    } else {
        let (i, f) = digits.split_at(point as usize);
        (i.to_owned(), f.to_owned())
    };
    let int = match int.trim_start_matches('0') {
        "" => "0".to_owned(),
        i => i.to_owned(),
    };
    Some((int, frac.trim_end_matches('0').to_owned()))
}

/// A personal number written `notation` between a text ending with a delimiter and one
/// starting with one is found, and masking the whole text is masking each part alone:
/// the number's digits become `*` (`masked`), the rest is what the parts hold.
pub fn check_embedded_text(before: &str, notation: &str, masked: &str, after: &str) {
    let text = format!("{before}{notation}{after}");
    assert!(
        guard::contains(notation),
        "a personal number is not found alone: {notation:?}"
    );
    assert!(
        guard::contains(&text),
        "a personal number is not found: {text:?}"
    );
    // `mask` also reads a backslash as itself (not as an escape): across a backslash the
    // parts can join into a run the whole text holds, so only text without one must mask
    // part by part.
    if !text.contains('\\') {
        assert_eq!(
            guard::mask(&text),
            format!("{}{masked}{}", guard::mask(before), guard::mask(after)),
            "masking a text is not masking its parts: {text:?}"
        );
    }
    check_guard_text(&text);
}

/// A run one digit longer than a personal number (`near_miss`) between delimiters is
/// not one: masking the whole text leaves it as it is.
pub fn check_near_miss_text(before: &str, near_miss: &str, after: &str) {
    let text = format!("{before}{near_miss}{after}");
    assert!(
        !guard::contains(near_miss),
        "a 13-digit run is taken for a personal number: {near_miss:?}"
    );
    if !text.contains('\\') {
        assert_eq!(
            guard::mask(&text),
            format!("{}{near_miss}{}", guard::mask(before), guard::mask(after)),
            "masking a text is not masking its parts: {text:?}"
        );
    }
    check_guard_text(&text);
}

/// An event holding the personal number `digits` (anywhere, in any notation) is
/// rejected as `personal_number` at `field`, and the digits show in no form (ASCII,
/// full-width, escaped, plain or grouped) in anything kept or shown of it.
pub fn check_embedded_event(schema: &Schema, raw: &[u8], digits: &[u8; 12], field: &str) {
    check_event(schema, raw);
    let item = mieruka_ingest::item(schema, raw, Position::Index(0), "fuzz");
    let text = String::from_utf8_lossy(raw);
    let r = match &item.outcome {
        Err(r) => r,
        Ok(_) => panic!("an event holding a personal number is accepted: {text}"),
    };
    assert_eq!(
        (r.reason, r.field.as_deref()),
        (Reason::PersonalNumber, Some(field)),
        "an event holding a personal number is rejected otherwise ({r}): {text}"
    );
    let masked = item.raw_masked.as_deref().unwrap_or("");
    for (what, shown) in [
        ("the masked raw text", masked),
        ("the field", r.field.as_deref().unwrap_or("")),
        ("the message", &r.message),
        ("the event id", r.event_id.as_deref().unwrap_or("")),
    ] {
        assert!(
            !shows_digits(shown, digits),
            "{what} shows the personal number: {shown:?} (from {text})"
        );
    }
}

/// An event holding a 13-digit run (not a personal number) is not rejected as one, and
/// what is kept or shown of it holds none ([`check_event`]). A value that holds an
/// escaped backslash (`\\u0031`) is read a second time with its own escapes (the guard
/// refuses a value whose stored text reads as a personal number that way), so such
/// events may rightly be refused.
pub fn check_near_miss_event(schema: &Schema, raw: &[u8]) {
    check_event(schema, raw);
    if raw.windows(2).any(|w| w == b"\\\\") {
        return;
    }
    if let Err(r) = mieruka_ingest::decode(schema, raw) {
        assert_ne!(
            r.reason,
            Reason::PersonalNumber,
            "a 13-digit run is taken for a personal number ({r}): {}",
            String::from_utf8_lossy(raw)
        );
    }
}

/// How a text reads, character by character, JSON escapes resolved.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    Digit(u8),
    Separator,
    Other,
}

fn read(text: &str) -> Vec<Read> {
    let class = |c: char| match c {
        '0'..='9' => Read::Digit(c as u8 - b'0'),
        '\u{FF10}'..='\u{FF19}' => Read::Digit((c as u32 - 0xFF10) as u8),
        c if SEPARATORS.contains(&c) => Read::Separator,
        _ => Read::Other,
    };
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some((c, len)) = json::unescape(b, i) {
                out.push(class(c));
                i += len;
                continue;
            }
        }
        let c = text[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(class(c));
        i += c.len_utf8().max(1);
    }
    out
}

/// Whether `digits` appear in `text` in a form a person could read back: 12 digits in
/// a row (inside a longer run too), or 4-4-4 with one separator between groups.
fn shows_digits(text: &str, digits: &[u8; 12]) -> bool {
    let r = read(text);
    let plain: Vec<Read> = digits.iter().map(|d| Read::Digit(*d)).collect();
    let mut grouped = plain.clone();
    grouped.insert(8, Read::Separator);
    grouped.insert(4, Read::Separator);
    r.windows(12).any(|w| w == plain.as_slice()) || r.windows(14).any(|w| w == grouped.as_slice())
}
