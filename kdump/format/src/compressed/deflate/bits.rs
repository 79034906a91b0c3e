//! The bit writer: least significant bit first, as deflate packs them.

/// Bits out, least significant first, into a fixed buffer.
pub(super) struct Bits<'o> {
    out: &'o mut [u8],
    at: usize,
    acc: u64,
    count: u32,
}

impl<'o> Bits<'o> {
    /// A writer filling `out` from its start.
    pub(super) fn new(out: &'o mut [u8]) -> Self {
        Self {
            out,
            at: 0,
            acc: 0,
            count: 0,
        }
    }

    /// Append the low `n` bits of `value` (`n` at most 32).
    #[inline(always)]
    pub(super) fn put(&mut self, value: u32, n: u32) -> Option<()> {
        self.acc |= u64::from(value) << self.count;
        self.count += n;
        if self.count >= 32 {
            self.out
                .get_mut(self.at..self.at + 4)?
                .copy_from_slice(&(self.acc as u32).to_le_bytes());
            self.at += 4;
            self.acc >>= 32;
            self.count -= 32;
        }
        Some(())
    }

    /// Pad to a byte and write what is left; the length written.
    pub(super) fn finish(mut self) -> Option<usize> {
        while self.count > 0 {
            *self.out.get_mut(self.at)? = self.acc as u8;
            self.at += 1;
            self.acc >>= 8;
            self.count = self.count.saturating_sub(8);
        }
        Some(self.at)
    }
}
