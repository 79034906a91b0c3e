//! The hand-over block: the one thing the crashed kernel gives its capture
//! kernel (its physical address is in `rdi` at the entry). Written at load
//! time, checked by the crash path before the jump and by the capture kernel
//! after it. Its layout is an ABI, documented byte by byte in docs/kdump.md
//! ("The hand-over block"); every field is little-endian.
//!
//! [`HandOver::decode`] treats the bytes as hostile: the capture kernel runs
//! after a crash that may have written anywhere, so every field is checked
//! on its own and against the others, and a block that fails gets no dump
//! rather than a wrong one.

use crashkit_dump_format::PhysRange;
use crashkit_dump_format::crc32c;

/// The block's first eight bytes.
pub const MAGIC: [u8; 8] = *b"CKHANDOV";
/// The layout version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Bytes the checksum covers, and the block's size in version 1.
pub const BLOCK_LEN: usize = 256;
/// The most memory-map ranges a block can name (one page of 16-byte
/// entries).
pub const MAX_RANGES: usize = 256;
/// Bytes of one memory-map entry: start and length, u64 each.
pub const RANGE_ENTRY_LEN: usize = 16;
/// The most VMCOREINFO text a block can name (one page).
pub const MAX_VMCOREINFO: u64 = 4096;

/// Byte offsets of the fields (docs/kdump.md has the same table).
pub mod offset {
    /// `[u8; 8]` [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// u32 [`super::VERSION`].
    pub const VERSION: usize = 8;
    /// u32 bytes covered by the checksum ([`super::BLOCK_LEN`]).
    pub const SIZE: usize = 12;
    /// u32 CRC-32C of the block, this field read as zero.
    pub const CHECKSUM: usize = 16;
    /// u32 flags, none defined: must be 0.
    pub const FLAGS: usize = 20;
    /// u64, u64: the reservation.
    pub const RESERVATION: usize = 24;
    /// u64, u64: the control area (inside the reservation).
    pub const CONTROL: usize = 40;
    /// u64, u64: the crash record, in the crashed kernel's memory.
    pub const RECORD: usize = 56;
    /// u64 physical address, u32 count: the memory map to dump.
    pub const MEMORY_MAP: usize = 72;
    /// u32 [`super::DumpFormat`] code.
    pub const FORMAT: usize = 84;
    /// u32 codec level (zlib 1-9; 0 for the others).
    pub const LEVEL: usize = 88;
    /// u32 [`super::AfterDump`] code.
    pub const AFTER: usize = 92;
    /// u32 [`super::Device`] kind code.
    pub const DEVICE_KIND: usize = 96;
    /// u16 PCI segment, u8 bus, u8 device, u8 function, u8 "any" (1: the
    /// first device of the kind, the address ignored), 2 bytes zero.
    pub const DEVICE_PCI: usize = 100;
    /// u64 PCI ECAM base of the segment (0: configuration mechanism #1,
    /// ports 0xCF8/0xCFC).
    pub const DEVICE_ECAM: usize = 108;
    /// u64, u64: VMCOREINFO text (inside the control area; length 0: none).
    pub const VMCOREINFO: usize = 116;
    /// u64 flag (1: present), u64 offset: the crashed kernel's direct map,
    /// `virtual = physical + offset`.
    pub const DIRECT_MAP: usize = 132;
    /// u64 physical, u64 virtual, u64 length: the crashed kernel's image
    /// (length 0: not given).
    pub const KERNEL_IMAGE: usize = 148;
    /// u64: the capture kernel's entry point (physical).
    pub const ENTRY: usize = 172;
    /// `[u8; 32]`: SHA-256 of the loaded capture image.
    pub const DIGEST: usize = 180;
    /// u64: the panicking kernel's boot id (any value the kernel draws at
    /// boot; names the dump with the crash time).
    pub const BOOT_ID: usize = 212;
    /// Bytes from here to [`super::BLOCK_LEN`] are zero in version 1.
    pub const RESERVED: usize = 220;
}

/// Which dump the capture kernel writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// makedumpfile's kdump-compressed format, pages in LZO1X (the
    /// default: the fast codec Debian's makedumpfile also has).
    KdumpLzo,
    /// kdump-compressed, pages in zlib at the block's level.
    KdumpZlib,
    /// kdump-compressed, pages uncompressed.
    KdumpRaw,
    /// An ELF vmcore.
    Elf,
}

impl DumpFormat {
    /// The stored code.
    pub const fn code(self) -> u32 {
        match self {
            Self::KdumpLzo => 1,
            Self::KdumpZlib => 2,
            Self::KdumpRaw => 3,
            Self::Elf => 4,
        }
    }

    /// The format of a stored code.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::KdumpLzo),
            2 => Some(Self::KdumpZlib),
            3 => Some(Self::KdumpRaw),
            4 => Some(Self::Elf),
            _ => None,
        }
    }
}

/// What the capture kernel does once the dump is written (or refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterDump {
    /// Halt every CPU it runs on (the machine stays off the air).
    Halt,
    /// Reset the machine (keyboard controller, then port 0xCF9, then a
    /// triple fault).
    Reset,
}

impl AfterDump {
    /// The stored code.
    pub const fn code(self) -> u32 {
        match self {
            Self::Halt => 1,
            Self::Reset => 2,
        }
    }

    /// The action of a stored code.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Halt),
            2 => Some(Self::Reset),
            _ => None,
        }
    }
}

/// A PCI function's address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciAddress {
    /// Segment (PCI domain).
    pub segment: u16,
    /// Bus.
    pub bus: u8,
    /// Device, 0-31.
    pub device: u8,
    /// Function, 0-7.
    pub function: u8,
}

/// The dump device the integrator named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// A virtio-blk disk over PCI (the disk a cloud VM has).
    VirtioBlkPci {
        /// Its address; `None`: the first virtio-blk function found.
        address: Option<PciAddress>,
        /// The segment's ECAM base; `None`: configuration mechanism #1
        /// (ports 0xCF8/0xCFC, segment 0 only).
        ecam: Option<u64>,
    },
}

/// Device kind code of [`Device::VirtioBlkPci`].
const DEVICE_VIRTIO_BLK_PCI: u32 = 1;

/// The crashed kernel's image at its link addresses (see
/// `crashkit_dump_format::plan::KernelImage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelImage {
    /// Physical load address.
    pub phys: u64,
    /// Virtual link address of the same byte.
    pub virt: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The hand-over block's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandOver {
    /// The reservation the capture kernel runs in (never dumped).
    pub reservation: PhysRange,
    /// The control area, inside the reservation: this block, the memory
    /// map, VMCOREINFO, the page tables, the trampoline, the entry stack.
    pub control: PhysRange,
    /// The crash record in the crashed kernel's memory.
    pub record: PhysRange,
    /// The memory map's physical address (inside the control area).
    pub memory_map: u64,
    /// Its number of ranges.
    pub memory_map_count: u32,
    /// The dump's format.
    pub format: DumpFormat,
    /// The codec level (zlib 1-9; 0 otherwise).
    pub level: u32,
    /// What to do after the dump.
    pub after: AfterDump,
    /// Where to write it.
    pub device: Device,
    /// VMCOREINFO text (inside the control area); `len` 0 for none.
    pub vmcoreinfo: PhysRange,
    /// The crashed kernel's direct-map offset, if it has one.
    pub direct_map: Option<u64>,
    /// The crashed kernel's image at its link addresses, if given.
    pub kernel_image: Option<KernelImage>,
    /// The capture kernel's entry (physical).
    pub entry: u64,
    /// SHA-256 of the loaded capture image.
    pub digest: [u8; 32],
    /// The crashed kernel's boot id.
    pub boot_id: u64,
}

/// Why a block is refused; each names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// Fewer than [`BLOCK_LEN`] bytes.
    Short,
    /// The magic is not [`MAGIC`].
    BadMagic,
    /// A version this crate does not read.
    UnknownVersion(u32),
    /// The size field is not [`BLOCK_LEN`].
    BadSize(u32),
    /// The checksum does not match the bytes.
    BadChecksum {
        /// Stored.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// A flag or reserved byte that version 1 leaves zero is not.
    ReservedNotZero {
        /// Byte offset.
        offset: usize,
    },
    /// The reservation is empty, not page aligned, or wraps.
    BadReservation,
    /// The control area is not page aligned or not inside the reservation.
    BadControl,
    /// The record is empty, wraps, or lies in the reservation.
    BadRecord,
    /// The memory map is not inside the control area, or has more than
    /// [`MAX_RANGES`] ranges.
    BadMemoryMap,
    /// An unknown format code, or a level the format does not take.
    BadFormat {
        /// The format code.
        code: u32,
        /// The level.
        level: u32,
    },
    /// An unknown after-dump code.
    BadAfter(u32),
    /// An unknown device kind, or a PCI address out of range.
    BadDevice,
    /// VMCOREINFO longer than [`MAX_VMCOREINFO`] or outside the control
    /// area.
    BadVmcoreinfo,
    /// The direct-map flag is neither 0 nor 1.
    BadDirectMap,
    /// The kernel image wraps.
    BadKernelImage,
    /// The entry point is not inside the reservation, or is inside the
    /// control area.
    BadEntry,
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Short => write!(f, "fewer than {BLOCK_LEN} bytes"),
            Self::BadMagic => f.write_str("bad magic (not a hand-over block)"),
            Self::UnknownVersion(v) => write!(f, "version {v}, this reader knows {VERSION}"),
            Self::BadSize(size) => write!(f, "size {size}, version 1 is {BLOCK_LEN}"),
            Self::BadChecksum { stored, computed } => write!(
                f,
                "checksum {stored:#010x} stored, {computed:#010x} computed"
            ),
            Self::ReservedNotZero { offset } => {
                write!(f, "byte {offset}: reserved, not zero")
            }
            Self::BadReservation => f.write_str("reservation empty, unaligned or wrapping"),
            Self::BadControl => f.write_str("control area unaligned or outside the reservation"),
            Self::BadRecord => f.write_str("record empty, wrapping or inside the reservation"),
            Self::BadMemoryMap => {
                f.write_str("memory map outside the control area or over 256 ranges")
            }
            Self::BadFormat { code, level } => write!(f, "format {code} at level {level}"),
            Self::BadAfter(code) => write!(f, "after-dump action {code}"),
            Self::BadDevice => f.write_str("unknown device kind or PCI address out of range"),
            Self::BadVmcoreinfo => f.write_str("VMCOREINFO too long or outside the control area"),
            Self::BadDirectMap => f.write_str("direct-map flag neither 0 nor 1"),
            Self::BadKernelImage => f.write_str("kernel image wraps"),
            Self::BadEntry => f.write_str("entry outside the image's memory"),
        }
    }
}

impl core::error::Error for BlockError {}

fn put(block: &mut [u8; BLOCK_LEN], at: usize, bytes: &[u8]) {
    if let Some(target) = block.get_mut(at..at + bytes.len()) {
        target.copy_from_slice(bytes);
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(source) = bytes.get(at..at + 8) {
        word.copy_from_slice(source);
    }
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(source) = bytes.get(at..at + 4) {
        word.copy_from_slice(source);
    }
    u32::from_le_bytes(word)
}

fn range_at(bytes: &[u8], at: usize) -> PhysRange {
    PhysRange::new(u64_at(bytes, at), u64_at(bytes, at + 8))
}

const PAGE: u64 = 4096;

fn page_aligned(range: PhysRange) -> bool {
    range.len > 0
        && range.start.is_multiple_of(PAGE)
        && range.len.is_multiple_of(PAGE)
        && range.end().is_some()
}

impl HandOver {
    /// The block's bytes, checksum included.
    pub fn encode(&self) -> [u8; BLOCK_LEN] {
        let mut block = [0u8; BLOCK_LEN];
        put(&mut block, offset::MAGIC, &MAGIC);
        put(&mut block, offset::VERSION, &VERSION.to_le_bytes());
        put(&mut block, offset::SIZE, &(BLOCK_LEN as u32).to_le_bytes());
        let ranges = [
            (offset::RESERVATION, self.reservation),
            (offset::CONTROL, self.control),
            (offset::RECORD, self.record),
            (offset::VMCOREINFO, self.vmcoreinfo),
        ];
        for (at, range) in ranges {
            put(&mut block, at, &range.start.to_le_bytes());
            put(&mut block, at + 8, &range.len.to_le_bytes());
        }
        put(
            &mut block,
            offset::MEMORY_MAP,
            &self.memory_map.to_le_bytes(),
        );
        put(
            &mut block,
            offset::MEMORY_MAP + 8,
            &self.memory_map_count.to_le_bytes(),
        );
        put(
            &mut block,
            offset::FORMAT,
            &self.format.code().to_le_bytes(),
        );
        put(&mut block, offset::LEVEL, &self.level.to_le_bytes());
        put(&mut block, offset::AFTER, &self.after.code().to_le_bytes());
        match self.device {
            Device::VirtioBlkPci { address, ecam } => {
                put(
                    &mut block,
                    offset::DEVICE_KIND,
                    &DEVICE_VIRTIO_BLK_PCI.to_le_bytes(),
                );
                let pci = address.unwrap_or_default();
                put(&mut block, offset::DEVICE_PCI, &pci.segment.to_le_bytes());
                put(
                    &mut block,
                    offset::DEVICE_PCI + 2,
                    &[
                        pci.bus,
                        pci.device,
                        pci.function,
                        u8::from(address.is_none()),
                    ],
                );
                put(
                    &mut block,
                    offset::DEVICE_ECAM,
                    &ecam.unwrap_or(0).to_le_bytes(),
                );
            }
        }
        if let Some(offset) = self.direct_map {
            put(&mut block, offset::DIRECT_MAP, &1u64.to_le_bytes());
            put(&mut block, offset::DIRECT_MAP + 8, &offset.to_le_bytes());
        }
        let image = self.kernel_image.unwrap_or_default();
        put(&mut block, offset::KERNEL_IMAGE, &image.phys.to_le_bytes());
        put(
            &mut block,
            offset::KERNEL_IMAGE + 8,
            &image.virt.to_le_bytes(),
        );
        put(
            &mut block,
            offset::KERNEL_IMAGE + 16,
            &image.len.to_le_bytes(),
        );
        put(&mut block, offset::ENTRY, &self.entry.to_le_bytes());
        put(&mut block, offset::DIGEST, &self.digest);
        put(&mut block, offset::BOOT_ID, &self.boot_id.to_le_bytes());
        let sum = crc32c::checksum(&block);
        put(&mut block, offset::CHECKSUM, &sum.to_le_bytes());
        block
    }

    /// Read and check a block: every field on its own and against the
    /// others (see [`BlockError`]). The memory map's entries are checked by
    /// [`crate::memory_map::read`].
    pub fn decode(bytes: &[u8]) -> Result<Self, BlockError> {
        let bytes = bytes.get(..BLOCK_LEN).ok_or(BlockError::Short)?;
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err(BlockError::BadMagic);
        }
        let version = u32_at(bytes, offset::VERSION);
        if version != VERSION {
            return Err(BlockError::UnknownVersion(version));
        }
        let size = u32_at(bytes, offset::SIZE);
        if size as usize != BLOCK_LEN {
            return Err(BlockError::BadSize(size));
        }
        let stored = u32_at(bytes, offset::CHECKSUM);
        let mut zeroed = [0u8; BLOCK_LEN];
        zeroed.copy_from_slice(bytes);
        put(&mut zeroed, offset::CHECKSUM, &[0; 4]);
        let computed = crc32c::checksum(&zeroed);
        if stored != computed {
            return Err(BlockError::BadChecksum { stored, computed });
        }
        let zero_fields = [
            (offset::FLAGS, 4),
            (offset::DEVICE_PCI + 6, 2),
            (offset::RESERVED, BLOCK_LEN - offset::RESERVED),
        ];
        for (at, len) in zero_fields {
            if let Some(i) = bytes
                .get(at..at + len)
                .and_then(|b| b.iter().position(|&x| x != 0))
            {
                return Err(BlockError::ReservedNotZero { offset: at + i });
            }
        }

        let reservation = range_at(bytes, offset::RESERVATION);
        if !page_aligned(reservation) {
            return Err(BlockError::BadReservation);
        }
        let control = range_at(bytes, offset::CONTROL);
        if !page_aligned(control) || !reservation.contains(&control) {
            return Err(BlockError::BadControl);
        }
        let record = range_at(bytes, offset::RECORD);
        if record.len == 0 || record.end().is_none() || record.overlaps(&reservation) {
            return Err(BlockError::BadRecord);
        }
        let memory_map = u64_at(bytes, offset::MEMORY_MAP);
        let memory_map_count = u32_at(bytes, offset::MEMORY_MAP + 8);
        let map_bytes = u64::from(memory_map_count) * RANGE_ENTRY_LEN as u64;
        if memory_map_count as usize > MAX_RANGES
            || !control.contains(&PhysRange::new(memory_map, map_bytes))
            || !memory_map.is_multiple_of(8)
        {
            return Err(BlockError::BadMemoryMap);
        }
        let code = u32_at(bytes, offset::FORMAT);
        let level = u32_at(bytes, offset::LEVEL);
        let format = DumpFormat::from_code(code)
            .filter(|&format| match format {
                DumpFormat::KdumpZlib => (1..=9).contains(&level),
                _ => level == 0,
            })
            .ok_or(BlockError::BadFormat { code, level })?;
        let after_code = u32_at(bytes, offset::AFTER);
        let after = AfterDump::from_code(after_code).ok_or(BlockError::BadAfter(after_code))?;
        let device = match u32_at(bytes, offset::DEVICE_KIND) {
            DEVICE_VIRTIO_BLK_PCI => {
                let pci = PciAddress {
                    segment: u16::from_le_bytes([
                        bytes[offset::DEVICE_PCI],
                        bytes[offset::DEVICE_PCI + 1],
                    ]),
                    bus: bytes[offset::DEVICE_PCI + 2],
                    device: bytes[offset::DEVICE_PCI + 3],
                    function: bytes[offset::DEVICE_PCI + 4],
                };
                let any = bytes[offset::DEVICE_PCI + 5];
                let ecam = u64_at(bytes, offset::DEVICE_ECAM);
                let address = match any {
                    0 if pci.device < 32 && pci.function < 8 => Some(pci),
                    1 if pci == PciAddress::default() => None,
                    _ => return Err(BlockError::BadDevice),
                };
                // Mechanism #1 reaches segment 0 only; ECAM is 1 MiB
                // aligned per bus range (PCI Firmware spec, MCFG).
                let ecam = match ecam {
                    0 if pci.segment == 0 => None,
                    0 => return Err(BlockError::BadDevice),
                    base if base.is_multiple_of(1 << 20) => Some(base),
                    _ => return Err(BlockError::BadDevice),
                };
                Device::VirtioBlkPci { address, ecam }
            }
            _ => return Err(BlockError::BadDevice),
        };
        let vmcoreinfo = range_at(bytes, offset::VMCOREINFO);
        if vmcoreinfo.len > MAX_VMCOREINFO
            || (vmcoreinfo.len > 0 && !control.contains(&vmcoreinfo))
            || (vmcoreinfo.len == 0 && vmcoreinfo.start != 0)
        {
            return Err(BlockError::BadVmcoreinfo);
        }
        let direct_map = match u64_at(bytes, offset::DIRECT_MAP) {
            0 if u64_at(bytes, offset::DIRECT_MAP + 8) == 0 => None,
            1 => Some(u64_at(bytes, offset::DIRECT_MAP + 8)),
            _ => return Err(BlockError::BadDirectMap),
        };
        let image = KernelImage {
            phys: u64_at(bytes, offset::KERNEL_IMAGE),
            virt: u64_at(bytes, offset::KERNEL_IMAGE + 8),
            len: u64_at(bytes, offset::KERNEL_IMAGE + 16),
        };
        let kernel_image = if image == KernelImage::default() {
            None
        } else if image.len == 0
            || image.phys.checked_add(image.len).is_none()
            || image.virt.checked_add(image.len).is_none()
        {
            return Err(BlockError::BadKernelImage);
        } else {
            Some(image)
        };
        let entry = u64_at(bytes, offset::ENTRY);
        if !reservation.contains(&PhysRange::new(entry, 1))
            || control.contains(&PhysRange::new(entry, 1))
        {
            return Err(BlockError::BadEntry);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[offset::DIGEST..offset::DIGEST + 32]);
        Ok(Self {
            reservation,
            control,
            record,
            memory_map,
            memory_map_count,
            format,
            level,
            after,
            device,
            vmcoreinfo,
            direct_map,
            kernel_image,
            entry,
            digest,
            boot_id: u64_at(bytes, offset::BOOT_ID),
        })
    }
}
