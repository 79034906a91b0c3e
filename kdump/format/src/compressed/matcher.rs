//! The match finder the page encoders share (LZO1X, snappy): greedy, one
//! pass over a page, an 8192-entry hash table of 4-byte sequences holding
//! positions in the page (as `u16`, no allocation), and a skip that grows
//! over data that does not match, so incompressible pages cost little
//! before they are stored raw.
//!
//! The inner loop is what the fast codecs' speed is made of, so it is kept
//! to the work the format needs: load four bytes, hash, swap the table
//! entry, compare four bytes at the candidate. A whole page is read as a
//! `[u8; 4096]` (a shorter input is first copied into a buffer of that
//! size) and every position is clamped (or, in an array with spare bytes,
//! masked) to the array, which changes nothing for the positions the loop
//! uses but lets the compiler prove every read in bounds, so no check (and
//! no panic path) is left in the loop. The table is cleared for every
//! page, so an entry is always an earlier position of the same page (an
//! empty entry reads as position 0, also earlier: its four bytes are
//! compared like any other candidate's). Not clearing it and rejecting
//! entries at or after the current position instead was 20% slower (an
//! unpredictable branch more per position).

use core::ops::Range;

use crate::PAGE_SIZE;

const HASH_BITS: u32 = 13;
/// A page's length; positions are masked with `PAGE - 1`.
const PAGE: usize = PAGE_SIZE as usize;
/// Spare bytes after the page in the buffer (a `u64` read at the last
/// position stays inside).
const SPARE: usize = 8;
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
    #[inline]
    pub fn byte(&mut self, b: u8) -> Option<()> {
        self.bytes(&[b])
    }

    /// `source[range]`: short runs (most literal runs) as one fixed
    /// 16-byte copy when both sides have room (the bytes past the run are
    /// overwritten by what follows, or lie past the stream's end).
    #[inline(always)]
    pub fn copy_short(&mut self, source: &[u8], range: Range<usize>) -> Option<()> {
        let n = range.len();
        if n <= 16
            && self.at + n <= self.limit
            && let (Some(dst), Some(src)) = (
                self.buf.get_mut(self.at..self.at + 16),
                source.get(range.start..range.start + 16),
            )
        {
            dst.copy_from_slice(src);
            self.at += n;
            return Some(());
        }
        self.bytes(source.get(range)?)
    }

    #[inline]
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

/// The matcher's state, reused page after page: the hash table (the last
/// position of each 4-byte sequence's hash) and the page's padded copy.
#[derive(Clone)]
pub struct Table {
    entries: [u16; 1 << HASH_BITS],
    page: [u8; PAGE + SPARE],
}

impl core::fmt::Debug for Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Table")
    }
}

impl Table {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            entries: [0; 1 << HASH_BITS],
            page: [0; PAGE + SPARE],
        }
    }
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the matcher's findings go, in page order (a page encoder's
/// output format). Either call returning `None` stops the matcher.
pub trait Emit {
    /// The literals `literals` (possibly empty), then `length` bytes
    /// (at least [`MIN_MATCH`]) copied from `distance` (at least 1) back.
    fn matched(&mut self, literals: Range<usize>, distance: usize, length: usize) -> Option<()>;

    /// The last literals (possibly empty); nothing follows.
    fn end(&mut self, literals: Range<usize>) -> Option<()>;
}

/// `at` made provably in bounds for a read of `width` bytes from a
/// `[u8; N]`, unchanged for the positions callers use (`at + width <= len
/// <= N`, `at < PAGE`): a mask when the array has spare bytes after a page
/// (one instruction), else a clamp.
#[inline(always)]
fn bound<const N: usize>(at: usize, width: usize) -> usize {
    if N >= PAGE + width {
        at & (PAGE - 1)
    } else {
        at.min(N - width)
    }
}

/// The four bytes at `at` of `page` (see [`bound`]).
#[inline(always)]
pub(super) fn load32<const N: usize>(page: &[u8; N], at: usize) -> u32 {
    let at = bound::<N>(at, 4);
    u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
}

/// The eight bytes at `at` of `page` (see [`bound`]).
#[inline(always)]
pub(super) fn load64<const N: usize>(page: &[u8; N], at: usize) -> u64 {
    let at = bound::<N>(at, 8);
    let mut word = [0u8; 8];
    word.copy_from_slice(&page[at..at + 8]);
    u64::from_le_bytes(word)
}

#[inline(always)]
fn hash(word: u32) -> usize {
    (word.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// How many bytes from `a` and from `b` (`a < b`) are equal, `b` not
/// going past `len` (`len <= N`): eight bytes per step, then the rest.
/// The deflate encoder uses it too.
#[inline(always)]
pub(super) fn common_length<const N: usize>(
    page: &[u8; N],
    len: usize,
    a: usize,
    b: usize,
) -> usize {
    let mut n = 0;
    while b + n + 8 <= len {
        let diff = load64(page, a + n) ^ load64(page, b + n);
        if diff != 0 {
            return n + (diff.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while b + n < len && page[bound::<N>(a + n, 1)] == page[bound::<N>(b + n, 1)] {
        n += 1;
    }
    n
}

/// Find the matches of `page` (at most 4096 bytes) and hand them to
/// `emit` in order; stops with `None` as soon as `emit` returns `None`
/// (or at once for a longer input). A whole page is read where it is; a
/// shorter input is copied into the table's buffer first.
#[inline(always)]
pub fn greedy(table: &mut Table, page: &[u8], emit: &mut impl Emit) -> Option<()> {
    table.entries.fill(0);
    match <&[u8; PAGE]>::try_from(page) {
        Ok(whole) => run(&mut table.entries, whole, PAGE, emit),
        Err(_) => {
            let len = page.len();
            table.page.get_mut(..len)?.copy_from_slice(page);
            run(&mut table.entries, &table.page, len, emit)
        }
    }
}

/// The matcher over the first `len` bytes of `buf` (`len <= N`).
#[inline(always)]
fn run<const N: usize>(
    entries: &mut [u16; 1 << HASH_BITS],
    buf: &[u8; N],
    len: usize,
    emit: &mut impl Emit,
) -> Option<()> {
    let end = len.saturating_sub(TAIL);
    let mut literal_start = 0usize;
    // Position 0 is in the table already: every entry reads as 0.
    let mut i = 1usize;
    while i < end {
        let (at, start) = if i + 8 <= len {
            // Two positions per step: their table loads are independent,
            // so they overlap instead of waiting for each other.
            let eight = load64(buf, i);
            let (first, second) = (eight as u32, (eight >> 8) as u32);
            let (slot, next_slot) = (hash(first), hash(second));
            let candidate = usize::from(entries[slot]);
            entries[slot] = i as u16;
            let next_candidate = usize::from(entries[next_slot]);
            entries[next_slot] = (i + 1) as u16;
            if load32(buf, candidate) == first {
                (i, candidate)
            } else if i + 1 < end && load32(buf, next_candidate) == second {
                (i + 1, next_candidate)
            } else {
                // Over data that does not match, look at fewer and fewer
                // positions: one in 2 after 32 misses, one in 3 after 64...
                i += 2 + ((i - literal_start) >> 5);
                continue;
            }
        } else {
            // The last few positions, one at a time.
            let word = load32(buf, i);
            let slot = hash(word);
            let candidate = usize::from(entries[slot]);
            entries[slot] = i as u16;
            if load32(buf, candidate) != word {
                i += 1 + ((i - literal_start) >> 5);
                continue;
            }
            (i, candidate)
        };
        let length = MIN_MATCH + common_length(buf, len, start + MIN_MATCH, at + MIN_MATCH);
        emit.matched(literal_start..at, at - start, length)?;
        i = at + length;
        literal_start = i;
    }
    emit.end(literal_start..len)
}

/// Test pages for the encoders: `count` pages assembled from random-length
/// pieces (fresh random bytes, copies of earlier bytes at random distances,
/// runs of one byte), the same ones for the same `seed`.
#[cfg(test)]
pub(crate) fn generated_pages(seed: u64, count: usize) -> std::vec::Vec<std::vec::Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let mut page = std::vec::Vec::with_capacity(PAGE);
            while page.len() < PAGE {
                let len = (next() % 300) as usize + 1;
                match next() % 3 {
                    0 => page.extend((0..len).map(|_| next() as u8)),
                    1 if !page.is_empty() => {
                        let distance = (next() as usize % page.len()) + 1;
                        for _ in 0..len {
                            page.push(page[page.len() - distance]);
                        }
                    }
                    _ => page.extend(core::iter::repeat_n(next() as u8, len)),
                }
            }
            page.truncate(PAGE);
            page
        })
        .collect()
}
