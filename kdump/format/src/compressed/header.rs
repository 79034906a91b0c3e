//! The kdump-compressed headers: `disk_dump_header` and
//! `kdump_sub_header`, field by field (x86_64 layout, little-endian).
//!
//! `disk_dump_header` (block 0, 464 bytes used): `signature[8]` @0
//! (`"KDUMP   "`, or `"DISKDUMP"` for the legacy format), `header_version`
//! i32 @8, `utsname` (6 x 65 bytes: sysname, nodename, release, version,
//! machine, domainname) @12, 6 bytes of padding, `timestamp` (i64 seconds,
//! i64 microseconds) @408, `status` u32 @424, `block_size` i32 @428,
//! `sub_hdr_size` i32 @432 (blocks), `bitmap_blocks` u32 @436 (both
//! bitmaps), `max_mapnr` u32 @440 (32-bit, superseded by the sub-header's
//! from version 6), `total_ram_blocks` @444, `device_blocks` @448,
//! `written_blocks` @452, `current_cpu` @456, `nr_cpus` i32 @460.
//!
//! `kdump_sub_header` (block 1, 104 bytes in version 6): `phys_base` u64 @0,
//! `dump_level` i32 @8, `split` i32 @12 (v2), `start_pfn` u64 @16 and
//! `end_pfn` @24 (v2), `offset_vmcoreinfo` @32 and `size_vmcoreinfo` @40
//! (v3), `offset_note` @48 and `size_note` @56 (v4), `offset_eraseinfo` @64
//! and `size_eraseinfo` @72 (v5), `start_pfn_64` @80, `end_pfn_64` @88,
//! `max_mapnr_64` @96 (v6). Fields of versions above the header's are
//! absent.

use crate::bytes::{array_at, put, put_u32, put_u64, u32_at, u64_at};

/// Signature of makedumpfile's and QEMU's format.
pub const SIGNATURE_KDUMP: &[u8; 8] = b"KDUMP   ";
/// Signature of the legacy diskdump format.
pub const SIGNATURE_DISKDUMP: &[u8; 8] = b"DISKDUMP";
/// Size of `disk_dump_header`.
pub const HEADER_SIZE: usize = 464;
/// Size of a version-6 `kdump_sub_header`.
pub const SUB_HEADER_SIZE: usize = 104;
/// Size of one page descriptor.
pub const DESCRIPTOR_SIZE: usize = 24;

/// `status` and descriptor flag: zlib page.
pub const FLAG_ZLIB: u32 = 0x1;
/// `status` and descriptor flag: LZO1X page.
pub const FLAG_LZO: u32 = 0x2;
/// `status` and descriptor flag: snappy page.
pub const FLAG_SNAPPY: u32 = 0x4;
/// `status` flag: the dump is incomplete (the writer ran out of space).
pub const STATUS_INCOMPLETE: u32 = 0x8;
/// `status` flag: vmemmap pages were excluded.
pub const STATUS_EXCLUDED_VMEMMAP: u32 = 0x10;
/// `status` and descriptor flag: zstd page.
pub const FLAG_ZSTD: u32 = 0x20;

/// Length of one `utsname` field.
pub const UTS_FIELD: usize = 65;

/// The main header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskDumpHeader {
    /// `"KDUMP   "` or `"DISKDUMP"`.
    pub signature: [u8; 8],
    /// Format version (makedumpfile and QEMU write 6).
    pub header_version: i32,
    /// `utsname`: sysname, nodename, release, version, machine, domainname.
    pub utsname: [[u8; UTS_FIELD]; 6],
    /// Seconds and microseconds of the dump.
    pub timestamp: (i64, i64),
    /// `STATUS_*` and the codec flags in use.
    pub status: u32,
    /// The block (page) size.
    pub block_size: i32,
    /// Blocks of the sub-header and the notes after it.
    pub sub_hdr_size: i32,
    /// Blocks of both bitmaps together.
    pub bitmap_blocks: u32,
    /// Page frames covered (32-bit; see [`SubHeader::max_mapnr_64`]).
    pub max_mapnr: u32,
    /// Unused by makedumpfile's readers.
    pub total_ram_blocks: u32,
    /// Unused by makedumpfile's readers.
    pub device_blocks: u32,
    /// Unused by makedumpfile's readers.
    pub written_blocks: u32,
    /// The CPU that wrote the dump.
    pub current_cpu: u32,
    /// CPUs of the machine.
    pub nr_cpus: i32,
}

impl DiskDumpHeader {
    /// Decode the first [`HEADER_SIZE`] bytes; `None` if they are not all
    /// there. The caller checks the signature and the sizes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut utsname = [[0u8; UTS_FIELD]; 6];
        for (i, field) in utsname.iter_mut().enumerate() {
            *field = array_at(bytes, 12 + i * UTS_FIELD)?;
        }
        Some(Self {
            signature: array_at(bytes, 0)?,
            header_version: u32_at(bytes, 8)? as i32,
            utsname,
            timestamp: (u64_at(bytes, 408)? as i64, u64_at(bytes, 416)? as i64),
            status: u32_at(bytes, 424)?,
            block_size: u32_at(bytes, 428)? as i32,
            sub_hdr_size: u32_at(bytes, 432)? as i32,
            bitmap_blocks: u32_at(bytes, 436)?,
            max_mapnr: u32_at(bytes, 440)?,
            total_ram_blocks: u32_at(bytes, 444)?,
            device_blocks: u32_at(bytes, 448)?,
            written_blocks: u32_at(bytes, 452)?,
            current_cpu: u32_at(bytes, 456)?,
            nr_cpus: u32_at(bytes, 460)? as i32,
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        put(&mut b, 0, &self.signature);
        put_u32(&mut b, 8, self.header_version as u32);
        for (i, field) in self.utsname.iter().enumerate() {
            put(&mut b, 12 + i * UTS_FIELD, field);
        }
        put_u64(&mut b, 408, self.timestamp.0 as u64);
        put_u64(&mut b, 416, self.timestamp.1 as u64);
        put_u32(&mut b, 424, self.status);
        put_u32(&mut b, 428, self.block_size as u32);
        put_u32(&mut b, 432, self.sub_hdr_size as u32);
        put_u32(&mut b, 436, self.bitmap_blocks);
        put_u32(&mut b, 440, self.max_mapnr);
        put_u32(&mut b, 444, self.total_ram_blocks);
        put_u32(&mut b, 448, self.device_blocks);
        put_u32(&mut b, 452, self.written_blocks);
        put_u32(&mut b, 456, self.current_cpu);
        put_u32(&mut b, 460, self.nr_cpus as u32);
        b
    }

    /// `utsname` field `index` (4 is `machine`) as text up to its NUL.
    pub fn uts(&self, index: usize) -> &[u8] {
        let field = self.utsname.get(index).map_or(&[][..], |f| &f[..]);
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        field.get(..end).unwrap_or(&[])
    }
}

/// The sub-header; fields the header's version does not have are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are makedumpfile's of the same name
pub struct SubHeader {
    pub phys_base: u64,
    pub dump_level: i32,
    pub split: i32,
    pub start_pfn: u64,
    pub end_pfn: u64,
    pub offset_vmcoreinfo: u64,
    pub size_vmcoreinfo: u64,
    pub offset_note: u64,
    pub size_note: u64,
    pub offset_eraseinfo: u64,
    pub size_eraseinfo: u64,
    pub start_pfn_64: u64,
    pub end_pfn_64: u64,
    pub max_mapnr_64: u64,
}

impl SubHeader {
    /// Decode the fields `version` has, from a sub-header of `bytes`.
    pub fn decode(bytes: &[u8], version: i32) -> Option<Self> {
        let field = |at: usize, since: i32| -> Option<u64> {
            if version >= since {
                u64_at(bytes, at)
            } else {
                Some(0)
            }
        };
        Some(Self {
            phys_base: field(0, 0)?,
            dump_level: if version >= 1 {
                u32_at(bytes, 8)? as i32
            } else {
                0
            },
            split: if version >= 2 {
                u32_at(bytes, 12)? as i32
            } else {
                0
            },
            start_pfn: field(16, 2)?,
            end_pfn: field(24, 2)?,
            offset_vmcoreinfo: field(32, 3)?,
            size_vmcoreinfo: field(40, 3)?,
            offset_note: field(48, 4)?,
            size_note: field(56, 4)?,
            offset_eraseinfo: field(64, 5)?,
            size_eraseinfo: field(72, 5)?,
            start_pfn_64: field(80, 6)?,
            end_pfn_64: field(88, 6)?,
            max_mapnr_64: field(96, 6)?,
        })
    }

    /// The version-6 bytes.
    pub fn encode(&self) -> [u8; SUB_HEADER_SIZE] {
        let mut b = [0u8; SUB_HEADER_SIZE];
        put_u64(&mut b, 0, self.phys_base);
        put_u32(&mut b, 8, self.dump_level as u32);
        put_u32(&mut b, 12, self.split as u32);
        for (at, value) in [
            (16, self.start_pfn),
            (24, self.end_pfn),
            (32, self.offset_vmcoreinfo),
            (40, self.size_vmcoreinfo),
            (48, self.offset_note),
            (56, self.size_note),
            (64, self.offset_eraseinfo),
            (72, self.size_eraseinfo),
            (80, self.start_pfn_64),
            (88, self.end_pfn_64),
            (96, self.max_mapnr_64),
        ] {
            put_u64(&mut b, at, value);
        }
        b
    }
}

/// One page descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageDescriptor {
    /// File offset of the page's data; 0 for a page lost when the dump was
    /// cut short.
    pub offset: u64,
    /// Bytes of data.
    pub size: u32,
    /// The codec flag, or 0 for a raw page.
    pub flags: u32,
    /// The page's `page.flags` (unused by readers).
    pub page_flags: u64,
}

impl PageDescriptor {
    /// Decode 24 bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            offset: u64_at(bytes, 0)?,
            size: u32_at(bytes, 8)?,
            flags: u32_at(bytes, 12)?,
            page_flags: u64_at(bytes, 16)?,
        })
    }

    /// The 24 bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut b = [0u8; DESCRIPTOR_SIZE];
        put_u64(&mut b, 0, self.offset);
        put_u32(&mut b, 8, self.size);
        put_u32(&mut b, 12, self.flags);
        put_u64(&mut b, 16, self.page_flags);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_at_their_offsets() {
        let mut utsname = [[0u8; UTS_FIELD]; 6];
        utsname[4][..6].copy_from_slice(b"x86_64");
        let header = DiskDumpHeader {
            signature: *SIGNATURE_KDUMP,
            header_version: 6,
            utsname,
            timestamp: (1_733_000_000, 5),
            status: FLAG_ZLIB,
            block_size: 4096,
            sub_hdr_size: 1,
            bitmap_blocks: 2,
            max_mapnr: 0x8000,
            total_ram_blocks: 0,
            device_blocks: 0,
            written_blocks: 0,
            current_cpu: 1,
            nr_cpus: 2,
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..8], b"KDUMP   ");
        assert_eq!(u32_at(&bytes, 428), Some(4096));
        assert_eq!(DiskDumpHeader::decode(&bytes), Some(header));
        assert_eq!(header.uts(4), b"x86_64");
        let sub = SubHeader {
            phys_base: 0x100_0000,
            dump_level: 31,
            max_mapnr_64: 0x8000,
            offset_note: 4096 + 104,
            ..SubHeader::default()
        };
        assert_eq!(SubHeader::decode(&sub.encode(), 6), Some(sub));
        let old = SubHeader::decode(&sub.encode(), 3).unwrap();
        assert_eq!(
            (old.offset_note, old.max_mapnr_64),
            (0, 0),
            "v3 has neither"
        );
        let desc = PageDescriptor {
            offset: 0x1_0000,
            size: 1234,
            flags: FLAG_LZO,
            page_flags: 7,
        };
        assert_eq!(PageDescriptor::decode(&desc.encode()), Some(desc));
    }
}
