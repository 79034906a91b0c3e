//! A snappy (raw format) encoder for 4 KiB pages, written here (the `snap`
//! crate needs std): a varint of the page's length, then literal and copy
//! elements, matches from [`super::matcher`]. No allocation.
//!
//! Elements used: a literal of n bytes, tag `(n - 1) << 2` for n <= 60, or
//! tag `60 << 2` / `61 << 2` with n - 1 in one / two following bytes; a copy
//! of 4 to 11 bytes within 2048, tag `(offset >> 8) << 5 | (len - 4) << 2 |
//! 1` then the offset's low byte; any other copy in pieces of at most 64
//! bytes, tag `(len - 1) << 2 | 2` then the offset as little-endian u16.

use crate::PAGE_SIZE;

/// Snappy page encoder state (the match table), reused page after page.
#[derive(Clone, Default)]
pub struct Snappy {
    table: super::matcher::Table,
}

impl core::fmt::Debug for Snappy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Snappy")
    }
}

use super::matcher::Out;

/// Snappy's elements on the shared bounded output.
trait Elements {
    fn literals(&mut self, bytes: &[u8]) -> Option<()>;
    fn copy(&mut self, distance: usize, length: usize) -> Option<()>;
}

impl Elements for Out<'_> {
    #[inline(always)]
    fn literals(&mut self, bytes: &[u8]) -> Option<()> {
        let n = bytes.len();
        if n == 0 {
            return Some(());
        }
        let m = n - 1;
        if m < 60 {
            self.bytes(&[(m as u8) << 2])?;
        } else if m < 256 {
            self.bytes(&[60 << 2, m as u8])?;
        } else {
            let [low, high] = (m as u16).to_le_bytes();
            self.bytes(&[61 << 2, low, high])?;
        }
        self.bytes(bytes)
    }

    #[inline(always)]
    fn copy(&mut self, distance: usize, mut length: usize) -> Option<()> {
        while length > 0 {
            if distance < 2048 && (4..=11).contains(&length) {
                let tag = ((distance >> 8) << 5) as u8 | ((length - 4) << 2) as u8 | 1;
                return self.bytes(&[tag, distance as u8]);
            }
            // Leave at least 4 for a last piece that may use the short form.
            let piece = if length > 64 {
                (length - 4).min(64)
            } else {
                length
            };
            let [low, high] = (distance as u16).to_le_bytes();
            self.bytes(&[(((piece - 1) << 2) | 2) as u8, low, high])?;
            length -= piece;
        }
        Some(())
    }
}

/// The snappy stream being written for one page.
struct Stream<'s, 'o, 'p> {
    out: &'s mut Out<'o>,
    page: &'p [u8],
}

impl super::matcher::Emit for Stream<'_, '_, '_> {
    #[inline(always)]
    fn matched(
        &mut self,
        literals: core::ops::Range<usize>,
        distance: usize,
        length: usize,
    ) -> Option<()> {
        self.out.literals(self.page.get(literals)?)?;
        self.out.copy(distance, length)
    }

    #[inline(always)]
    fn end(&mut self, literals: core::ops::Range<usize>) -> Option<()> {
        self.out.literals(self.page.get(literals)?)
    }
}

impl Snappy {
    /// A fresh encoder.
    pub const fn new() -> Self {
        Self {
            table: super::matcher::Table::new(),
        }
    }

    /// Compress `page` (at most a page) into `out`; the length, or `None`
    /// if the result would not be shorter than the page.
    pub fn compress(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        if page.len() > PAGE_SIZE as usize {
            return None;
        }
        let limit = page.len().saturating_sub(1).min(out.len());
        let mut out = Out {
            buf: out,
            at: 0,
            limit,
        };
        let mut n = page.len();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.bytes(&[byte])?;
                break;
            }
            out.bytes(&[byte | 0x80])?;
        }
        super::matcher::greedy(
            &mut self.table,
            page,
            &mut Stream {
                out: &mut out,
                page,
            },
        )?;
        Some(out.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compressed::codec::decode_page;
    use crate::compressed::header::FLAG_SNAPPY;

    #[test]
    fn generated_pages_round_trip() {
        let mut encoder = Snappy::new();
        let mut compressed = 0;
        for page in crate::compressed::matcher::generated_pages(0x1234_5678_9abc_def1, 2000) {
            let mut out = [0u8; 4096];
            if let Some(n) = encoder.compress(&page, &mut out) {
                let mut back = vec![0u8; 4096];
                decode_page(FLAG_SNAPPY, &out[..n], &mut back).unwrap();
                assert_eq!(back, page);
                compressed += 1;
            }
        }
        assert!(compressed > 1000, "only {compressed} compressed");
        let zero = [0u8; 4096];
        let mut out = [0u8; 4096];
        assert!(encoder.compress(&zero, &mut out).unwrap() < 300);
    }
}
