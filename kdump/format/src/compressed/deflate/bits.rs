//! The bit writer: least significant bit first, as deflate packs them.
//!
//! Bits gather in a 64-bit accumulator ([`Bits::put`], no branch) and go
//! out whole bytes at a time ([`Bits::flush`]). With room to spare after
//! the stream (`fast`), a flush stores all eight bytes of the accumulator
//! and moves on by the whole bytes among them: no branch on how many bits
//! are pending, which a per-put check of a 32-bit threshold took at random
//! (a mispredicted branch every two or three codes). Without that room it
//! writes byte by byte, checked.

/// A Huffman code as [`super::huffman`] gives it (`code | length << 16`)
/// followed by `extra_bits` bits of `extra`, as one value and its number
/// of bits (for [`Bits::put`]).
#[inline(always)]
pub(super) fn code_bits(code: u32, extra: u64, extra_bits: u32) -> (u64, u32) {
    let length = code >> 16;
    (
        u64::from(code & 0xffff) | extra << length,
        length + extra_bits,
    )
}

/// Two values with their numbers of bits as one, the first's bits first
/// (together at most 63). Codes joined this way before they are put do
/// not wait for the accumulator, whose every put depends on the last.
#[inline(always)]
pub(super) fn join((a, n): (u64, u32), (b, m): (u64, u32)) -> (u64, u32) {
    (a | b << n, n + m)
}

/// Bits out, least significant first, into a fixed buffer.
pub(super) struct Bits<'o> {
    out: &'o mut [u8],
    at: usize,
    acc: u64,
    /// Bits pending in `acc`: at most 7 after a flush, at most 63 before.
    count: u32,
    /// Whether `out` has 8 bytes to spare after the stream's last byte.
    fast: bool,
}

impl<'o> Bits<'o> {
    /// A writer filling `out` from its start; `fast` when `out` is at
    /// least 8 bytes longer than the stream will be (the caller knows the
    /// stream's size before writing it). The bytes of `out` past the
    /// stream's end are left unspecified.
    pub(super) fn new(out: &'o mut [u8], fast: bool) -> Self {
        Self {
            out,
            at: 0,
            acc: 0,
            count: 0,
            fast,
        }
    }

    /// Append the low `n` bits of `value` (no bit above them set). The
    /// bits pending plus `n` must stay at most 63: callers flush after at
    /// most 56 bits.
    #[inline(always)]
    pub(super) fn put(&mut self, value: u64, n: u32) {
        self.acc |= value << self.count;
        self.count += n;
    }

    /// Append a Huffman code as [`super::huffman`] gives it (`code |
    /// length << 16`), then `extra_bits` bits of `extra` (its extra bits,
    /// or 0 and 0).
    #[inline(always)]
    pub(super) fn put_code(&mut self, code: u32, extra: u64, extra_bits: u32) {
        let (value, n) = code_bits(code, extra, extra_bits);
        self.put(value, n);
    }

    /// Write the whole bytes pending.
    #[inline(always)]
    pub(super) fn flush(&mut self) -> Option<()> {
        if self.fast {
            self.out
                .get_mut(self.at..self.at + 8)?
                .copy_from_slice(&self.acc.to_le_bytes());
            // At most 63 bits pending: at most 7 whole bytes, so the shift
            // stays below 64.
            let bytes = self.count / 8;
            self.at += bytes as usize;
            self.acc >>= bytes * 8;
            self.count -= bytes * 8;
        } else {
            while self.count >= 8 {
                *self.out.get_mut(self.at)? = self.acc as u8;
                self.at += 1;
                self.acc >>= 8;
                self.count -= 8;
            }
        }
        Some(())
    }

    /// Pad to a byte and write what is left; the length written.
    pub(super) fn finish(mut self) -> Option<usize> {
        self.flush()?;
        if self.count > 0 {
            *self.out.get_mut(self.at)? = self.acc as u8;
            self.at += 1;
        }
        Some(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same codes through both ways of writing give the same bytes,
    /// packed least significant bit first.
    #[test]
    fn fast_and_checked_writers_agree() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut codes = Vec::new();
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % 29) as u32;
            codes.push((state >> 32 & ((1u64 << n) - 1), n));
        }
        let total_bits: u32 = codes.iter().map(|&(_, n)| n).sum();
        let len = total_bits.div_ceil(8) as usize;
        let mut written = Vec::new();
        for fast in [false, true] {
            let mut out = vec![0u8; len + if fast { 8 } else { 0 }];
            let mut bits = Bits::new(&mut out, fast);
            for pair in codes.chunks(2) {
                for &(value, n) in pair {
                    bits.put(value, n);
                }
                bits.flush().unwrap();
            }
            assert_eq!(bits.finish(), Some(len));
            out.truncate(len);
            written.push(out);
        }
        assert_eq!(written[0], written[1]);
        // Bit by bit.
        let mut at = 0usize;
        for &(value, n) in &codes {
            for bit in 0..n {
                let got = written[0][at / 8] >> (at % 8) & 1;
                assert_eq!(u64::from(got), value >> bit & 1);
                at += 1;
            }
        }
    }

    #[test]
    fn a_full_buffer_is_refused_not_overrun() {
        let mut out = [0u8; 2];
        let mut bits = Bits::new(&mut out, false);
        bits.put(0xffff, 16);
        assert_eq!(bits.flush(), Some(()));
        bits.put(1, 1);
        assert_eq!(bits.finish(), None);
    }
}
