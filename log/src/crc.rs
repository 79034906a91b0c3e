//! CRC-32C (Castagnoli), one byte at a time: the frame check, updated as
//! the writer streams a frame's bytes, and the header check.
//!
//! Polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial value and final
//! XOR 0xFFFFFFFF, as iSCSI and ext4 use it (Python's `crcmod`
//! `crc-32c`). One 1 KiB table built at compile time: a frame is tens of
//! bytes, so the dump format's sixteen-table version would buy nothing here
//! and cost 16 KiB in every kernel.

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

/// The running value before any byte.
pub const INIT: u32 = 0xFFFF_FFFF;

/// The running value after one more byte.
pub const fn update(crc: u32, byte: u8) -> u32 {
    TABLE[((crc ^ byte as u32) & 0xFF) as usize] ^ (crc >> 8)
}

/// The CRC-32C of a running value (its final XOR).
pub const fn finish(crc: u32) -> u32 {
    crc ^ 0xFFFF_FFFF
}

/// The CRC-32C of `bytes`.
pub const fn checksum(bytes: &[u8]) -> u32 {
    let mut crc = INIT;
    let mut index = 0;
    while index < bytes.len() {
        crc = update(crc, bytes[index]);
        index += 1;
    }
    finish(crc)
}

#[cfg(test)]
mod tests {
    /// The check value every CRC-32C catalogue lists (RFC 3720 B.4 and
    /// the "CRC RevEng" catalogue's `CRC-32/ISCSI`, check = 0xE3069283).
    #[test]
    fn the_catalogue_check_value() {
        assert_eq!(super::checksum(b"123456789"), 0xE306_9283);
    }

    /// RFC 3720 B.4: 32 bytes of zeros.
    #[test]
    fn rfc_3720_zeros() {
        assert_eq!(super::checksum(&[0u8; 32]), 0x8A91_36AA);
    }
}
