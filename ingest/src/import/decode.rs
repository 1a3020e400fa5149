//! Streaming text decoding for file import: a file's bytes read a buffer at a time,
//! decoded to UTF-8 (a UTF-8 byte order mark stripped), with the first malformed byte
//! reported by its offset in the file — and the 1-based line of any offset of the
//! decoded text, counted as it streams by. Memory stays flat whatever the file's size.

use std::io::{self, Read};

use encoding_rs::{Decoder, DecoderResult};

use super::{Encoding, ImportError, UTF8_BOM};

/// Bytes read from the file at a time, and the decoded buffer's size.
const CHUNK: usize = 64 * 1024;

/// Decoded text already counted for lines that is kept before it is dropped (so the
/// buffer is shifted rarely, not once per record).
const KEEP_COUNTED: usize = 256 * 1024;

/// Reads `inner` as text in `encoding`, handing out UTF-8 bytes. A malformed byte ends
/// the text with an I/O error whose cause is kept: [`Decoded::take_error`].
pub(crate) struct Decoded<R> {
    inner: R,
    decoder: Decoder,
    encoding: Encoding,
    input: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    /// The decoder has been told the input ended (it must not be used again).
    done: bool,
    /// File bytes given to the decoder so far.
    consumed: u64,
    /// Decoded text not yet handed out: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    error: Option<ImportError>,
    /// Lines are counted only for a reader that asks for them (CSV): the text since
    /// the last offset asked is kept until then.
    lines: Option<LineCounter>,
}

impl<R: Read> Decoded<R> {
    /// `inner` decoded, counting lines for [`Decoded::line_at`].
    pub(crate) fn with_lines(inner: R, encoding: Encoding) -> Self {
        Decoded {
            lines: Some(LineCounter::default()),
            ..Self::new(inner, encoding)
        }
    }

    /// `inner` decoded, not counting lines.
    pub(crate) fn new(inner: R, encoding: Encoding) -> Self {
        let decoder = match encoding {
            Encoding::Utf8 => encoding_rs::UTF_8.new_decoder_with_bom_removal(),
            Encoding::ShiftJis => encoding_rs::SHIFT_JIS.new_decoder_without_bom_handling(),
        };
        Decoded {
            inner,
            decoder,
            encoding,
            input: vec![0; CHUNK].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            eof: false,
            done: false,
            consumed: 0,
            out: Vec::with_capacity(CHUNK),
            out_pos: 0,
            error: None,
            lines: None,
        }
    }

    /// The file bytes read and decoded so far (for a progress bar).
    pub(crate) fn bytes_read(&self) -> u64 {
        self.consumed
    }

    /// The error that stopped the text (a malformed byte, or the file's own I/O error).
    pub(crate) fn take_error(&mut self) -> Option<ImportError> {
        self.error.take()
    }

    /// The 1-based line of the first non-newline character at or after `offset` of the
    /// decoded text (asked in increasing order). A line ends at `\n`, `\r\n` or a `\r`
    /// alone (old Mac exports), as the csv crate ends records.
    pub(crate) fn line_at(&mut self, offset: u64) -> u64 {
        self.lines.as_mut().map_or(0, |l| l.at(offset))
    }

    /// The line the counter last reached.
    pub(crate) fn current_line(&self) -> u64 {
        self.lines.as_ref().map_or(0, |l| l.line)
    }

    /// Decodes the next chunk into `out`; false at the end of the text.
    fn fill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() {
            if self.done {
                return Ok(false);
            }
            if self.in_start == self.in_end && !self.eof {
                let n = read_retrying(&mut self.inner, &mut self.input)?;
                self.in_start = 0;
                self.in_end = n;
                self.eof = n == 0;
            }
            let src = &self.input[self.in_start..self.in_end];
            self.out.resize(CHUNK, 0);
            let (result, read, written) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut self.out, self.eof);
            self.out.truncate(written);
            self.in_start += read;
            self.consumed += read as u64;
            match result {
                DecoderResult::Malformed(bad, after) => {
                    let offset = self
                        .consumed
                        .saturating_sub(u64::from(bad) + u64::from(after));
                    self.done = true;
                    self.error = Some(ImportError::Encoding {
                        encoding: self.encoding,
                        offset: usize::try_from(offset).unwrap_or(usize::MAX),
                    });
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed text"));
                }
                DecoderResult::InputEmpty if self.eof => self.done = true,
                DecoderResult::InputEmpty | DecoderResult::OutputFull => {}
            }
        }
        Ok(true)
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed text"));
        }
        if self.out_pos == self.out.len() {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    if self.error.is_none() {
                        self.error = Some(ImportError::Io(e.to_string()));
                    }
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        let chunk = &self.out[self.out_pos..self.out_pos + n];
        buf[..n].copy_from_slice(chunk);
        if let Some(lines) = &mut self.lines {
            lines.push(chunk);
        }
        self.out_pos += n;
        Ok(n)
    }
}

/// `read`, again when interrupted.
fn read_retrying(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Line numbers of offsets of a text that streams by: the text handed out since the
/// last offset asked is kept until it is counted.
struct LineCounter {
    /// Decoded text from offset `base` on.
    text: Vec<u8>,
    base: u64,
    /// The offset counted up to, and its line.
    byte: u64,
    line: u64,
}

impl Default for LineCounter {
    fn default() -> Self {
        LineCounter {
            text: Vec::new(),
            base: 0,
            byte: 0,
            line: 1,
        }
    }
}

impl LineCounter {
    fn push(&mut self, chunk: &[u8]) {
        let counted = usize::try_from(self.byte - self.base).unwrap_or(usize::MAX);
        if counted >= KEEP_COUNTED && counted >= self.text.len() / 2 {
            self.text.drain(..counted);
            self.base = self.byte;
        }
        self.text.extend_from_slice(chunk);
    }

    fn at(&mut self, offset: u64) -> u64 {
        let rel = |o: u64| usize::try_from(o.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let text = &self.text;
        let mut end = rel(offset).min(text.len());
        while matches!(text.get(end), Some(b'\r' | b'\n')) {
            end += 1;
        }
        let from = rel(self.byte);
        if end > from {
            let newlines = (from..end)
                .filter(|&i| {
                    text[i] == b'\n' || (text[i] == b'\r' && text.get(i + 1) != Some(&b'\n'))
                })
                .count();
            self.line += newlines as u64;
            self.byte = self.base + end as u64;
        }
        self.line
    }
}

/// Guesses a file's encoding from all of its bytes, reading them a chunk at a time:
/// UTF-8 when it starts with a UTF-8 BOM or is valid UTF-8 throughout, else Shift_JIS.
/// Stops at the first byte that is not UTF-8.
pub(crate) fn detect_encoding_in(mut r: impl Read) -> io::Result<Encoding> {
    let mut buf = vec![0; CHUNK];
    let mut carry = 0;
    let mut first = true;
    loop {
        let mut end = carry;
        while end < buf.len() {
            match read_retrying(&mut r, &mut buf[end..])? {
                0 => break,
                n => end += n,
            }
        }
        if first && buf[..end].starts_with(UTF8_BOM) {
            return Ok(Encoding::Utf8);
        }
        first = false;
        let at_end = end < buf.len();
        match std::str::from_utf8(&buf[..end]) {
            Ok(_) => carry = 0,
            // A character cut by the chunk's end: carried into the next chunk.
            Err(e) if e.error_len().is_none() && !at_end => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..end, 0);
                carry = end - valid;
            }
            Err(_) => return Ok(Encoding::ShiftJis),
        }
        if at_end {
            return Ok(Encoding::Utf8);
        }
    }
}

/// A reader handing out at most `n` bytes per read, to cut characters and lines.
#[cfg(test)]
pub(super) struct Trickle<'a>(pub(super) &'a [u8], pub(super) usize);

#[cfg(test)]
impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], enc: Encoding, step: usize) -> Result<String, ImportError> {
        let mut d = Decoded::new(Trickle(bytes, step), enc);
        let mut out = Vec::new();
        match d.read_to_end(&mut out) {
            Ok(_) => {
                // Read again at the end (as a BufReader does): still the end.
                assert_eq!(d.read(&mut [0; 8]).unwrap(), 0);
                Ok(String::from_utf8(out).unwrap())
            }
            Err(_) => Err(d.take_error().unwrap()),
        }
    }

    #[test]
    fn decoding_in_small_reads_gives_the_whole_text_and_the_first_bad_offset() {
        let text = "受付番号,交付日時\r\n①㈱,令和８年\n".repeat(50);
        let (sjis, _, lossy) = encoding_rs::SHIFT_JIS.encode(&text);
        assert!(!lossy);
        let mut bom = UTF8_BOM.to_vec();
        bom.extend_from_slice(text.as_bytes());
        for step in [1, 2, 3, 7, 4096] {
            assert_eq!(decode_all(&sjis, Encoding::ShiftJis, step).unwrap(), text);
            assert_eq!(decode_all(&bom, Encoding::Utf8, step).unwrap(), text);
            assert_eq!(
                detect_encoding_in(Trickle(&sjis, step)).unwrap(),
                Encoding::ShiftJis
            );
            assert_eq!(
                detect_encoding_in(Trickle(&bom, step)).unwrap(),
                Encoding::Utf8
            );
            assert_eq!(
                detect_encoding_in(Trickle(text.as_bytes(), step)).unwrap(),
                Encoding::Utf8
            );
            let mut bad = bom.clone();
            let at = bad.len() - 1;
            bad[at] = 0xFF;
            match decode_all(&bad, Encoding::Utf8, step) {
                Err(ImportError::Encoding { offset, .. }) => assert_eq!(offset, at, "{step}"),
                other => panic!("expected an encoding error, got {other:?}"),
            }
        }
        // A file cut inside a character is not UTF-8.
        let cut = &text.as_bytes()[..4];
        assert_eq!(detect_encoding_in(cut).unwrap(), Encoding::ShiftJis);
    }

    #[test]
    fn a_long_utf8_file_with_characters_across_chunks_is_detected_as_utf8() {
        let text = "あ".repeat(CHUNK);
        let shifted = format!("x{text}");
        assert_eq!(detect_encoding_in(text.as_bytes()).unwrap(), Encoding::Utf8);
        assert_eq!(
            detect_encoding_in(shifted.as_bytes()).unwrap(),
            Encoding::Utf8
        );
    }
}
