//! Fixed-capacity UTF-8 text in the record (the panic message, notifier
//! names): truncation at a character boundary, byte stores, and copies out.
//!
//! A text buffer is an array of `AtomicU8` plus a length word. The writer
//! stores the bytes (Relaxed) and then the length (Release); a reader loads
//! the length (Acquire) and then reads that many bytes. Atomic bytes cost
//! nothing on x86_64 (a byte store is a byte store) and mean a racing
//! writer (a nested panic on the owner writing the same buffer) can garble
//! the text but never cause undefined behaviour.

use core::sync::atomic::{AtomicU8, Ordering};

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary (never splits a multi-byte character).
pub fn utf8_prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    // A UTF-8 character is at most 4 bytes, so this steps back at most 3
    // times; index 0 is always a boundary.
    let end = (0..=max)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0);
    text.get(..end).unwrap_or("")
}

/// Store `bytes` into `buffer` starting at `start`; bytes past the buffer's
/// end are dropped (callers size them first). Returns how many were stored.
pub fn store_bytes(buffer: &[AtomicU8], start: usize, bytes: &[u8]) -> usize {
    let mut stored = 0;
    for (cell, &byte) in buffer.iter().skip(start).zip(bytes) {
        // Relaxed: the bytes are published by the Release store of the
        // buffer's length that the caller does next.
        cell.store(byte, Ordering::Relaxed);
        stored += 1;
    }
    stored
}

/// A copy of a text buffer's valid bytes, taken in-process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Text<N> {
    /// Copy the first `len` bytes of `buffer` (`len` was loaded with
    /// Acquire by the caller, so those bytes are published).
    pub(crate) fn copy(buffer: &[AtomicU8; N], len: usize, truncated: bool) -> Self {
        let mut bytes = [0; N];
        let len = len.min(N);
        for (out, cell) in bytes.iter_mut().zip(buffer).take(len) {
            // Relaxed: ordered after the caller's Acquire load of the length.
            *out = cell.load(Ordering::Relaxed);
        }
        Self {
            bytes,
            len,
            truncated,
        }
    }

    /// The valid bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// The text, if the bytes are valid UTF-8 (they are unless a nested
    /// writer raced the owner).
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }

    /// Whether the writer cut the text short.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_never_splits_a_character() {
        // 'é' is 2 bytes, '€' 3, '😀' 4.
        let text = "aé€😀";
        let expected = [
            "",
            "a",
            "a",
            "aé",
            "aé",
            "aé",
            "aé€",
            "aé€",
            "aé€",
            "aé€",
            "aé€😀",
        ];
        for (max, want) in expected.iter().enumerate() {
            assert_eq!(utf8_prefix(text, max), *want, "max {max}");
        }
        assert_eq!(utf8_prefix(text, 100), text);
    }

    #[test]
    fn store_drops_what_does_not_fit() {
        let buffer: [AtomicU8; 4] = [const { AtomicU8::new(0) }; 4];
        assert_eq!(store_bytes(&buffer, 2, b"xyz"), 2);
        let copy = Text::copy(&buffer, 4, false);
        assert_eq!(copy.as_bytes(), b"\0\0xy");
        assert_eq!(Text::copy(&buffer, 9, true).as_bytes().len(), 4);
    }
}
