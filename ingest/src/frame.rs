//! Framing: a request body cut into the raw text of each event, before any event is read.
//!
//! NDJSON is one event per line (a `\r` before the `\n` and blank lines are ignored); a
//! JSON body is an array of events, each element kept as its raw text. A UTF-8 byte
//! order mark (what Windows tools write) before the body or before an NDJSON line is
//! skipped. A line that is not JSON is not a framing error: it becomes one `not_json`
//! rejection when it is decoded, and the lines beside it go on.

use std::fmt;

use crate::json;

/// The UTF-8 byte order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a body cannot be cut into events (the whole body is refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More events than one request may carry.
    TooManyEvents {
        /// The limit.
        max: usize,
    },
    /// A JSON body that is not UTF-8 text.
    NotUtf8 {
        /// Offset of the first malformed byte.
        offset: usize,
    },
    /// A JSON body that is not an array of well-formed JSON values.
    NotAnArray(json::SyntaxError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooManyEvents { max } => write!(
                f,
                "more than {max} events in one request; split it into several requests"
            ),
            FrameError::NotUtf8 { offset } => write!(
                f,
                "the body is not a JSON array of events: not UTF-8 text (malformed byte at offset {offset})"
            ),
            FrameError::NotAnArray(e) => write!(
                f,
                "the body is not a JSON array of events: {e} (for one event per line, send application/x-ndjson)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// One event of a body: its raw text, and its 1-based line in an NDJSON body.
pub type RawEvent<'b> = (&'b [u8], Option<usize>);

/// The raw text of each event of a body, with its 1-based NDJSON line (`None` for an
/// array element), at most `max_events` of them.
pub fn frame(
    body: &[u8],
    ndjson: bool,
    max_events: usize,
) -> Result<Vec<RawEvent<'_>>, FrameError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    if ndjson {
        let mut raws = Vec::new();
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if raws.len() == max_events {
                return Err(FrameError::TooManyEvents { max: max_events });
            }
            raws.push((line, Some(i + 1)));
        }
        return Ok(raws);
    }
    let text = std::str::from_utf8(body).map_err(|e| FrameError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let elements = json::array_elements(text).map_err(FrameError::NotAnArray)?;
    if elements.len() > max_events {
        return Err(FrameError::TooManyEvents { max: max_events });
    }
    Ok(elements.into_iter().map(|r| (&body[r], None)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_keep_their_numbers_and_lose_boms_and_carriage_returns() {
        let body = b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \n\xEF\xBB\xBF{\"b\":2}\nnot json";
        let raws = frame(body, true, 10).unwrap();
        let got: Vec<RawEvent<'_>> = raws;
        assert_eq!(
            got,
            vec![
                (&b"{\"a\":1}"[..], Some(1)),
                (&b"{\"b\":2}"[..], Some(4)),
                (&b"not json"[..], Some(5)),
            ]
        );
    }

    #[test]
    fn an_array_body_is_cut_into_its_elements_and_other_bodies_are_refused() {
        let raws = frame(b"\xEF\xBB\xBF [{\"a\":1}, [2]] ", false, 10).unwrap();
        assert_eq!(raws, vec![(&b"{\"a\":1}"[..], None), (&b"[2]"[..], None)]);
        assert!(matches!(
            frame(b"{\"a\":1}", false, 10),
            Err(FrameError::NotAnArray(_))
        ));
        assert!(matches!(
            frame(b"[\x82\xa0]", false, 10),
            Err(FrameError::NotUtf8 { offset: 1 })
        ));
    }

    #[test]
    fn a_body_of_more_events_than_allowed_is_refused_whole() {
        assert_eq!(
            frame(b"1\n2\n3\n", true, 2),
            Err(FrameError::TooManyEvents { max: 2 })
        );
        assert_eq!(
            frame(b"[1,2,3]", false, 2),
            Err(FrameError::TooManyEvents { max: 2 })
        );
        assert_eq!(frame(b"1\n2\n", true, 2).map(|r| r.len()), Ok(2));
    }
}
