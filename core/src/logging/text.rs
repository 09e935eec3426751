//! Text helpers both line formats share: where a string needs escaping, decided eight bytes
//! at a time (log lines are mostly text with nothing to escape), and integers in decimal
//! without the formatting machinery.

use std::fmt::{self, Write};

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH_BITS: u64 = ONES << 7;

/// Whether one of the word's bytes is zero.
fn has_zero_byte(word: u64) -> bool {
    word.wrapping_sub(ONES) & !word & HIGH_BITS != 0
}

/// Whether one of the word's bytes is below 0x20 (a control character).
fn has_control(word: u64) -> bool {
    word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS != 0
}

/// The slice's eight-byte words, read as numbers; the bytes after the last whole word are
/// `chunks.remainder()`.
fn words(chunks: &mut std::slice::ChunksExact<'_, u8>) -> impl Iterator<Item = u64> {
    chunks.map_while(|chunk| <[u8; 8]>::try_from(chunk).ok().map(u64::from_le_bytes))
}

/// Where the first byte JSON must escape (a control character, `"` or `\`) is. A word whose
/// bytes have none is skipped whole; the word that has one is searched byte by byte.
pub(super) fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    let mut chunks = bytes.chunks_exact(8);
    for word in words(&mut chunks) {
        if has_control(word)
            || has_zero_byte(word ^ (ONES * u64::from(b'"')))
            || has_zero_byte(word ^ (ONES * u64::from(b'\\')))
        {
            break;
        }
        from += 8;
    }
    bytes[from..]
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|at| from + at)
}

/// Whether every byte is printable ASCII (` ` to `~`): text a log line carries as it is.
pub(super) fn printable(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for word in words(&mut chunks) {
        if has_control(word) || word & HIGH_BITS != 0 || has_zero_byte(word ^ (ONES * 0x7f)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|b| (b' '..=b'~').contains(b))
}

/// Whether every byte is printable ASCII other than `"` and `\\`: text `Debug` quotes as it is.
/// One pass, eight bytes at a time.
pub(super) fn quotable(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for word in words(&mut chunks) {
        if has_control(word)
            || word & HIGH_BITS != 0
            || has_zero_byte(word ^ (ONES * 0x7f))
            || has_zero_byte(word ^ (ONES * u64::from(b'"')))
            || has_zero_byte(word ^ (ONES * u64::from(b'\\')))
        {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// `value` in decimal.
pub(super) fn decimal(writer: &mut impl Write, value: u64) -> fmt::Result {
    writer.write_str(digits(value, &mut [0; 20]))
}

/// `value` in decimal, written at the end of `digits`.
pub(crate) fn digits(value: u64, digits: &mut [u8; 20]) -> &str {
    let at = digits_at(value, digits);
    // Only ASCII digits were written.
    std::str::from_utf8(&digits[at..]).unwrap_or("0")
}

/// `value` in decimal, pushed onto `text` a digit at a time (no check that bytes are text).
pub(super) fn push_decimal(text: &mut String, value: u64) {
    // Most numbers in a line (a status, milliseconds) have three digits or fewer.
    if value < 1000 {
        let value = value as u16;
        if value >= 100 {
            text.push(char::from(b'0' + (value / 100) as u8));
        }
        if value >= 10 {
            text.push(char::from(b'0' + (value / 10 % 10) as u8));
        }
        text.push(char::from(b'0' + (value % 10) as u8));
        return;
    }
    text.push_str(digits(value, &mut [0; 20]));
}

/// `value`'s decimal digits written at the end of `digits`; where they start.
fn digits_at(value: u64, digits: &mut [u8; 20]) -> usize {
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `accepts` on text of every length up to 20: true for printable ASCII other than
    /// `refused`, false with any of `refused` at any place.
    fn accepts_exactly(accepts: fn(&[u8]) -> bool, refused: &[char]) {
        for length in 0..20 {
            let plain: String = (0..length)
                .map(|i| (b' ' + (i * 7 % 95) as u8) as char)
                .filter(|c| !refused.contains(c))
                .collect();
            assert!(accepts(plain.as_bytes()), "{plain:?}");
            for at in 0..length {
                for &c in refused {
                    let text: String = (0..length).map(|i| if i == at { c } else { '~' }).collect();
                    assert!(!accepts(text.as_bytes()), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn printable_is_printable_ascii_at_every_place() {
        accepts_exactly(
            printable,
            &['\u{0}', '\u{1f}', '\u{7f}', '\u{80}', 'é', '\x1b'],
        );
    }

    #[test]
    fn quotable_is_printable_without_quotes_or_backslashes_at_every_place() {
        accepts_exactly(quotable, &['"', '\\', '\u{0}', '\u{1f}', '\u{7f}', 'é']);
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for value in [
            0,
            7,
            10,
            99,
            100,
            101,
            999,
            1000,
            65_535,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut ours = String::new();
            decimal(&mut ours, value).unwrap();
            assert_eq!(ours, value.to_string());
            let mut pushed = "n=".to_owned();
            push_decimal(&mut pushed, value);
            assert_eq!(pushed, format!("n={value}"));
        }
    }
}
