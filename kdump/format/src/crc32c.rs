//! CRC-32C (Castagnoli), the checksum of crashkit's completion marker.
//!
//! Polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial value and final
//! XOR 0xFFFFFFFF: the CRC of iSCSI, ext4 and Btrfs metadata, so any
//! language has it (`crc32c` in Python's `crcmod`, `google-crc32c`). The
//! table is built at compile time; one byte per step is fast enough for
//! headers (a few KiB to a few MiB per dump), which is all it covers.

const POLYNOMIAL: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// A running CRC-32C: feed bytes with [`update`](Self::update), read the
/// checksum with [`finish`](Self::finish).
#[derive(Clone, Copy, Debug)]
pub struct Crc32c {
    state: u32,
}

impl Crc32c {
    /// A CRC over no bytes yet.
    pub const fn new() -> Self {
        Self { state: !0 }
    }

    /// Add `bytes` to the checksum.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.state;
        for &byte in bytes {
            crc = TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
        }
        self.state = crc;
    }

    /// Add `count` zero bytes (reserved, never-written space).
    pub fn update_zeros(&mut self, mut count: u64) {
        const ZEROS: [u8; 256] = [0; 256];
        while count > 0 {
            let step = count.min(ZEROS.len() as u64);
            // `step` <= 256, so the slice is in range.
            self.update(ZEROS.get(..step as usize).unwrap_or(&[]));
            count -= step;
        }
    }

    /// The checksum of everything fed so far.
    pub const fn finish(&self) -> u32 {
        !self.state
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-32C of one byte string.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(bytes);
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_check_values() {
        // RFC 3720 (iSCSI) appendix B.4 test vectors and the catalogue's
        // "123456789" check value for CRC-32C.
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        assert_eq!(checksum(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(checksum(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(checksum(&ascending), 0x46DD_794E);
    }

    #[test]
    fn split_updates_and_zero_runs_equal_one_update() {
        let mut crc = Crc32c::new();
        crc.update(b"12345");
        crc.update_zeros(1000);
        crc.update(b"6789");
        let mut whole = b"12345".to_vec();
        whole.extend(std::iter::repeat_n(0u8, 1000));
        whole.extend(b"6789");
        assert_eq!(crc.finish(), checksum(&whole));
    }
}
