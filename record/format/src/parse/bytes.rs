//! Reading integers out of record bytes in the record's byte order, without
//! ever panicking: a read outside the buffer gives 0 (the parser validated
//! every range it reads, so that only happens on a bug, and then it is a
//! wrong value, not a crash).

/// The byte order of a record, from its header's byte-order mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// Mark bytes `04 03 02 01` (x86_64).
    Little,
    /// Mark bytes `01 02 03 04`.
    Big,
}

/// A byte slice and the order to read its integers in.
#[derive(Clone, Copy)]
pub(crate) struct Bytes<'a> {
    pub data: &'a [u8],
    pub order: ByteOrder,
}

impl core::fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The length, not the bytes: a record is kilobytes.
        f.debug_struct("Bytes")
            .field("len", &self.data.len())
            .field("order", &self.order)
            .finish()
    }
}

impl<'a> Bytes<'a> {
    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        let end = at.checked_add(N)?;
        self.data.get(at..end)?.try_into().ok()
    }

    pub fn u16(&self, at: usize) -> u16 {
        self.array(at).map_or(0, |bytes| match self.order {
            ByteOrder::Little => u16::from_le_bytes(bytes),
            ByteOrder::Big => u16::from_be_bytes(bytes),
        })
    }

    pub fn u32(&self, at: usize) -> u32 {
        self.array(at).map_or(0, |bytes| match self.order {
            ByteOrder::Little => u32::from_le_bytes(bytes),
            ByteOrder::Big => u32::from_be_bytes(bytes),
        })
    }

    pub fn u64(&self, at: usize) -> u64 {
        self.array(at).map_or(0, |bytes| match self.order {
            ByteOrder::Little => u64::from_le_bytes(bytes),
            ByteOrder::Big => u64::from_be_bytes(bytes),
        })
    }

    pub fn i32(&self, at: usize) -> i32 {
        self.u32(at) as i32
    }

    /// `len` bytes at `at`, or an empty slice if they are not all there.
    pub fn slice(&self, at: usize, len: usize) -> &'a [u8] {
        at.checked_add(len)
            .and_then(|end| self.data.get(at..end))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders_and_never_panics_out_of_range() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8];
        let little = Bytes {
            data: &data,
            order: ByteOrder::Little,
        };
        let big = Bytes {
            data: &data,
            order: ByteOrder::Big,
        };
        assert_eq!(little.u32(0), 0x0403_0201);
        assert_eq!(big.u32(0), 0x0102_0304);
        assert_eq!(big.u16(6), 0x0708);
        assert_eq!(little.u64(0), 0x0807_0605_0403_0201);
        assert_eq!(little.u32(6), 0, "past the end");
        assert_eq!(little.u64(usize::MAX), 0, "offset overflow");
        assert_eq!(little.slice(4, 4), &[5, 6, 7, 8]);
        assert_eq!(little.slice(5, 4), &[] as &[u8]);
    }
}
