//! The match finder the page encoders share (LZO1X, snappy): greedy, one
//! pass over a page, a 4096-entry hash table of 4-byte sequences holding
//! positions in the page (as `u16`, no allocation), and a skip that grows
//! over data that does not match, so incompressible pages cost little
//! before they are stored raw.

use core::ops::Range;

const HASH_BITS: u32 = 12;
/// Shortest match reported.
pub const MIN_MATCH: usize = 4;
/// Bytes at the end never started as a match (room for the 4-byte read).
const TAIL: usize = 4;

/// A page encoder's output: fails (rather than grow) when the output would
/// reach `limit`; the page is then stored raw.
pub(crate) struct Out<'a> {
    pub buf: &'a mut [u8],
    pub at: usize,
    pub limit: usize,
}

impl Out<'_> {
    pub fn byte(&mut self, b: u8) -> Option<()> {
        self.bytes(&[b])
    }

    pub fn bytes(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        if end > self.limit {
            return None;
        }
        self.buf.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }
}

/// The hash table: position + 1 of the last 4-byte sequence with each
/// hash (0: none), reset for every page.
#[derive(Clone)]
pub struct Table([u16; 1 << HASH_BITS]);

impl core::fmt::Debug for Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Table")
    }
}

impl Table {
    /// An empty table.
    pub const fn new() -> Self {
        Self([0; 1 << HASH_BITS])
    }
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

/// What the matcher found, in page order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The literals `literals`, then `length` bytes copied from `distance`
    /// back.
    Match {
        /// Literal bytes before the match (possibly empty).
        literals: Range<usize>,
        /// How far back the copy starts (at least 1).
        distance: usize,
        /// Bytes copied (at least [`MIN_MATCH`]).
        length: usize,
    },
    /// The last literals (possibly empty); nothing follows.
    End {
        /// Literal bytes to the end of the page.
        literals: Range<usize>,
    },
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(bytes) = data.get(at..at + 4) {
        word.copy_from_slice(bytes);
    }
    u32::from_le_bytes(word)
}

fn hash(word: u32) -> usize {
    (word.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// Find the matches of `page` (at most 65535 bytes) and hand them to
/// `emit` in order; stops with `None` as soon as `emit` returns `None`.
pub fn greedy(
    table: &mut Table,
    page: &[u8],
    mut emit: impl FnMut(Event) -> Option<()>,
) -> Option<()> {
    table.0.fill(0);
    if page.len() > usize::from(u16::MAX) {
        return None;
    }
    let end = page.len().saturating_sub(TAIL);
    let mut literal_start = 0usize;
    let mut i = 1usize;
    let mut misses = 0usize;
    while i < end {
        let word = read_u32(page, i);
        let slot = hash(word);
        let candidate = usize::from(table.0.get(slot).copied().unwrap_or(0));
        if let Some(entry) = table.0.get_mut(slot) {
            *entry = (i + 1) as u16;
        }
        if candidate == 0 || read_u32(page, candidate - 1) != word {
            misses += 1;
            i += 1 + (misses >> 5);
            continue;
        }
        misses = 0;
        let start = candidate - 1;
        let mut length = MIN_MATCH;
        while i + length < page.len() && page.get(start + length) == page.get(i + length) {
            length += 1;
        }
        emit(Event::Match {
            literals: literal_start..i,
            distance: i - start,
            length,
        })?;
        i += length;
        literal_start = i;
    }
    emit(Event::End {
        literals: literal_start..page.len(),
    })
}
