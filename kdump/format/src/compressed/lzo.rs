//! An LZO1X encoder for 4 KiB pages, written here (every LZO crate is GPL).
//!
//! It emits the LZO1X (version 0) stream that liblzo2's decompressor, and so
//! makedumpfile `-l` files, libkdumpfile and crash, read: instructions as
//! listed in [`super::codec`]. The matches come from [`super::matcher`]
//! (greedy, one pass, a hash table of 4-byte sequences, no allocation).
//!
//! Instructions used (all distances within a page, so below 4096):
//! - a first literal run: byte `17 + n` for n <= 238, else `0000LLLL`;
//! - a literal run of 4 or more after a match: `0000LLLL`, length 3 + L,
//!   L = 0 meaning 15 + an extension (zero bytes of 255, a final non-zero
//!   byte); 1 to 3 literals ride in the previous match's two `S` bits;
//! - a match of 3 to 8 bytes within 2048: `01LDDDSS` (3-4) or `1LLDDDSS`
//!   (5-8), then one byte H, distance = (H << 3) + D + 1;
//! - any other match: `001LLLLL`, length 2 + L (L = 0: 31 + extension),
//!   then a little-endian u16 `(D << 2) | S`, distance = D + 1;
//! - the end: `0x11 0x00 0x00` (a `0001` match of distance 16384).

use crate::PAGE_SIZE;

/// LZO1X page encoder state (the hash table), reused page after page.
#[derive(Clone)]
pub struct Lzo1x {
    table: super::matcher::Table,
}

impl core::fmt::Debug for Lzo1x {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Lzo1x")
    }
}

impl Default for Lzo1x {
    fn default() -> Self {
        Self::new()
    }
}

use core::ops::Range;

use super::matcher::{Emit, Out};

/// LZO's length extension of `value` (> 0): zero bytes worth 255 each,
/// then a non-zero final byte.
fn extension(out: &mut Out<'_>, mut value: usize) -> Option<()> {
    while value > 255 {
        out.byte(0)?;
        value -= 255;
    }
    out.byte(value as u8)
}

impl Lzo1x {
    /// A fresh encoder.
    pub const fn new() -> Self {
        Self {
            table: super::matcher::Table::new(),
        }
    }

    /// Compress `page` (at most a page) into `out`; the length, or `None`
    /// if the stream would not be shorter than the page.
    pub fn compress(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        if page.len() > PAGE_SIZE as usize {
            return None;
        }
        let limit = page.len().saturating_sub(1).min(out.len());
        let mut stream = Stream {
            out: Out {
                buf: out,
                at: 0,
                limit,
            },
            page,
            last_s: None,
        };
        super::matcher::greedy(&mut self.table, page, &mut stream)?;
        stream.out.bytes(&[0x11, 0, 0])?;
        Some(stream.out.at)
    }
}

/// The LZO1X stream being written for one page.
struct Stream<'o, 'p> {
    out: Out<'o>,
    page: &'p [u8],
    /// Where the previous match's S bits are, to carry 1-3 literals (none:
    /// the stream's start).
    last_s: Option<usize>,
}

impl Emit for Stream<'_, '_> {
    #[inline(always)]
    fn matched(&mut self, literals: Range<usize>, distance: usize, length: usize) -> Option<()> {
        self.literals(literals)?;
        self.last_s = Some(self.copy(distance, length)?);
        Some(())
    }

    #[inline(always)]
    fn end(&mut self, literals: Range<usize>) -> Option<()> {
        self.literals(literals)
    }
}

impl Stream<'_, '_> {
    /// The literals `page[literals]`.
    #[inline(always)]
    fn literals(&mut self, literals: Range<usize>) -> Option<()> {
        let n = literals.len();
        if n == 0 {
            return Some(());
        }
        let out = &mut self.out;
        match self.last_s {
            None if n <= 238 => out.byte(17 + n as u8)?,
            Some(s) if n <= 3 => {
                // The count rides in the previous instruction's S bits.
                *out.buf.get_mut(s)? |= n as u8;
            }
            _ => {
                // `0000LLLL`: 3 + L literals, L = 0 for 15 + an extension.
                if n - 3 <= 15 {
                    out.byte((n - 3) as u8)?;
                } else {
                    out.byte(0)?;
                    extension(out, n - 3 - 15)?;
                }
            }
        }
        out.copy_short(self.page, literals)
    }

    /// A match of `length` at `distance`; returns the index of the byte
    /// whose low two bits carry the following literal count.
    #[inline(always)]
    fn copy(&mut self, distance: usize, length: usize) -> Option<usize> {
        let out = &mut self.out;
        let d = distance - 1;
        if distance <= 2048 && length <= 8 {
            let (opcode, l) = if length <= 4 {
                (0b0100_0000, length - 3)
            } else {
                (0b1000_0000, length - 5)
            };
            let s = out.at;
            out.bytes(&[
                opcode | (l << 5) as u8 | ((d & 7) << 2) as u8,
                (d >> 3) as u8,
            ])?;
            return Some(s);
        }
        let [low, high] = ((d << 2) as u16).to_le_bytes();
        if length - 2 <= 31 {
            out.bytes(&[0b0010_0000 | (length - 2) as u8, low, high])?;
        } else {
            out.byte(0b0010_0000)?;
            extension(out, length - 2 - 31)?;
            out.bytes(&[low, high])?;
        }
        Some(out.at - 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compressed::codec::decode_page;
    use crate::compressed::header::FLAG_LZO;

    fn round_trip(page: &[u8]) -> Option<usize> {
        let mut encoder = Lzo1x::new();
        let mut out = [0u8; 4096];
        let n = encoder.compress(page, &mut out)?;
        let mut back = vec![0u8; page.len()];
        decode_page(FLAG_LZO, &out[..n], &mut back).unwrap();
        assert_eq!(back, page);
        Some(n)
    }

    #[test]
    fn pages_of_every_shape_round_trip() {
        let text = b"The quick brown fox jumps over the lazy dog; 0123456789. ".repeat(80);
        assert!(round_trip(&text[..4096]).unwrap() < 300);
        let mut slab = vec![0u8; 4096];
        for (i, chunk) in slab.chunks_mut(64).enumerate() {
            chunk[..8].copy_from_slice(&(0xffff_8880_0000_0000u64 + i as u64 * 64).to_le_bytes());
            chunk[8..16].copy_from_slice(&(0xffff_8880_0010_0000u64 + i as u64 * 64).to_le_bytes());
            chunk[16] = i as u8;
        }
        assert!(round_trip(&slab).unwrap() < 2048);
        let zero = vec![0u8; 4096];
        assert!(round_trip(&zero).unwrap() < 40);
        let mut state = 12345u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 33) as u8
            })
            .collect();
        assert_eq!(round_trip(&random), None, "incompressible: stored raw");
        // Long literal runs and long matches (length extensions).
        let mut mixed = random.clone();
        mixed[1000..3000].fill(7);
        round_trip(&mixed).unwrap();
        let mut sparse = vec![0u8; 4096];
        for i in (0..4096).step_by(97) {
            sparse[i] = (i % 251) as u8 + 1;
        }
        round_trip(&sparse).unwrap();
    }

    #[test]
    fn two_thousand_generated_pages_round_trip() {
        let mut compressed = 0;
        for page in crate::compressed::matcher::generated_pages(0x2545_f491_4f6c_dd1d, 2000) {
            if round_trip(&page).is_some() {
                compressed += 1;
            }
        }
        assert!(compressed > 1000, "only {compressed} pages compressed");
    }

    #[test]
    fn every_short_literal_count_after_a_match() {
        for gap in 0..40 {
            let mut page = vec![0u8; 4096];
            let mut state = gap as u64 + 1;
            for (i, b) in page.iter_mut().enumerate() {
                if i % (16 + gap) < 8 {
                    *b = (i % 8) as u8 + 1;
                } else {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    *b = (state >> 40) as u8;
                }
            }
            let _ = round_trip(&page);
        }
    }
}
