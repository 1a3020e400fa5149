//! Eight bytes at a time in a `u64` ("SIMD within a register"): the bit tricks the
//! hot byte scans share (the string lexer, the guard, the id check). Each test flags a
//! byte by its high bit (0x80).

/// 0x01 in every byte.
pub(crate) const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// 0x7F in every byte.
pub(crate) const LOW7: u64 = u64::from_ne_bytes([0x7F; 8]);
/// 0x80 in every byte.
pub(crate) const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// The word at `at` (little-endian: byte `at` in the low bits); 0 past the end.
#[inline(always)]
pub(crate) fn word_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Calls `f` with each word of `b` (little-endian), the index of its first byte and how
/// many of its bytes are `b`'s: whole words, then the last bytes in the low end of a word
/// whose top is NUL (read as `b`'s last eight, the bytes already seen shifted out).
#[inline(always)]
pub(crate) fn each_word(b: &[u8], mut f: impl FnMut(u64, usize, usize)) {
    let mut i = 0;
    while i + 8 <= b.len() {
        f(word_at(b, i), i, 8);
        i += 8;
    }
    let tail = b.len() - i;
    if tail == 0 {
        return;
    }
    let w = if b.len() >= 8 {
        word_at(b, b.len() - 8) >> (8 * (8 - tail))
    } else {
        let mut bytes = [0u8; 8];
        if let (Some(to), Some(from)) = (bytes.get_mut(..tail), b.get(i..)) {
            to.copy_from_slice(from);
        }
        u64::from_le_bytes(bytes)
    };
    f(w, i, tail);
}

/// The high bits of the first `n` bytes of a word (all of them from 8 on).
#[inline(always)]
pub(crate) fn first_bytes(n: usize) -> u64 {
    if n >= 8 {
        HIGH
    } else {
        HIGH & ((1u64 << (8 * n)) - 1)
    }
}

/// The high bit of each byte of `w` that equals `c` (exact: no carry crosses a byte).
#[inline(always)]
pub(crate) fn bytes_equal(w: u64, c: u8) -> u64 {
    let u = w ^ (ONES * u64::from(c));
    !(((u & LOW7).wrapping_add(LOW7)) | u) & HIGH
}

/// Non-zero when some byte of `w` is below `n` (`n` ≤ 128). Exact as a yes or no, and
/// the lowest flagged byte is a true one (a borrow only carries upwards); a flag above
/// it may be false.
#[inline(always)]
pub(crate) fn any_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
}

/// The high bit of each byte of `w` that is an ASCII digit (exact).
#[inline(always)]
pub(crate) fn digits(w: u64) -> u64 {
    // A digit: w ^ 0x30 below 10 (its high bit clear, its low seven bits < 10).
    let t = w ^ (ONES * 0x30);
    !((t | HIGH).wrapping_sub(ONES * 10)) & !t & HIGH
}

/// The high bits of a word's bytes gathered into its low eight bits, byte 0 first.
#[inline(always)]
pub(crate) fn pack(flags: u64) -> u64 {
    (flags >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Whether every byte of `b` is printable ASCII (0x20 to 0x7E).
pub(crate) fn all_printable_ascii(b: &[u8]) -> bool {
    let mut bad = 0;
    each_word(b, |w, _, n| {
        // The NUL padding of the last word is below 0x20, so only the text's own bytes
        // count; it sits above them, and a borrow only carries upwards: a flag among
        // the text's bytes is a true one.
        bad |= ((w & HIGH) | any_below(w, 0x20) | bytes_equal(w, 0x7F)) & first_bytes(n);
    });
    bad == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(0x7F),
                Just(0x20),
                Just(0x1F),
                Just(b'0'),
                Just(b'9')
            ],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn each_test_flags_exactly_its_bytes(b in proptest::array::uniform8(any::<u8>()), c in any::<u8>()) {
            let w = u64::from_le_bytes(b);
            let flagged = |mask: u64| (0..8).map(|i| mask >> (8 * i + 7) & 1 == 1).collect::<Vec<_>>();
            prop_assert_eq!(flagged(bytes_equal(w, c)), b.iter().map(|x| *x == c).collect::<Vec<_>>());
            prop_assert_eq!(flagged(digits(w)), b.iter().map(u8::is_ascii_digit).collect::<Vec<_>>());
            let packed = pack(digits(w));
            prop_assert_eq!((0..8).map(|i| packed >> i & 1 == 1).collect::<Vec<_>>(), flagged(digits(w)));
            prop_assert_eq!(any_below(w, 0x20) != 0, b.iter().any(|x| *x < 0x20));
        }

        #[test]
        fn the_words_hold_the_text_in_order_padded_with_nul(b in bytes()) {
            let mut seen = Vec::new();
            each_word(&b, |w, at, n| {
                assert_eq!(at, seen.len());
                let bytes = w.to_le_bytes();
                seen.extend_from_slice(&bytes[..n]);
                assert!(bytes[n..].iter().all(|c| *c == 0));
                assert_eq!(first_bytes(n).count_ones() as usize, n);
            });
            prop_assert_eq!(seen, b);
        }

        #[test]
        fn printable_ascii_is_decided_as_byte_by_byte(b in bytes()) {
            prop_assert_eq!(all_printable_ascii(&b), b.iter().all(|c| (0x20..0x7F).contains(c)));
        }
    }
}
