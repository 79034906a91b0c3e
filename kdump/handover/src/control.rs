//! The control area: the last [`CONTROL_LEN`] bytes of the reservation,
//! prepared at load time ([`prepare`]) so that the crash path only checks
//! and jumps. Pure data code: it writes bytes into the reservation's
//! mapping and returns a [`Ready`] that says where everything is.
//!
//! | page | what |
//! |------|------|
//! | 0 | the hand-over block ([`crate::block`]) |
//! | 1 | the memory map ([`crate::memory_map`]) |
//! | 2 | VMCOREINFO text |
//! | 3 | the trampoline ([`TRAMPOLINE`]) |
//! | 4-11 | page tables: the reservation identity-mapped in 2 MiB pages, and the trampoline's page also at the virtual address the crashed kernel reaches it by |
//! | 12-15 | the capture kernel's entry stack (16 KiB) |
//!
//! Pages 0-11 are covered by a CRC-32C kept in [`Ready`], checked again at
//! the crash with the image's SHA-256.

use crashkit_dump_format::PhysRange;
use crashkit_dump_format::crc32c;
use crashkit_kdump_load::Loaded;

use crate::block::{
    AfterDump, BLOCK_LEN, Device, DumpFormat, HandOver, KernelImage, MAX_VMCOREINFO,
};
use crate::memory_map::{self, MapError};

/// Page size.
const PAGE: u64 = 4096;
/// The control area's size: 16 pages.
pub const CONTROL_LEN: u64 = 16 * PAGE;
/// Page of the block.
const BLOCK_PAGE: u64 = 0;
/// Page of the memory map.
const MAP_PAGE: u64 = 1;
/// Page of the VMCOREINFO text.
const VMCOREINFO_PAGE: u64 = 2;
/// Page of the trampoline.
const TRAMPOLINE_PAGE: u64 = 3;
/// First page-table page.
const TABLES_PAGE: u64 = 4;
/// Number of page-table pages.
const TABLE_PAGES: u64 = 8;
/// First stack page; the stack runs to the area's end.
const STACK_PAGE: u64 = TABLES_PAGE + TABLE_PAGES;
/// Bytes the control checksum covers: every page but the stack.
const CHECKED_LEN: u64 = STACK_PAGE * PAGE;

/// The trampoline, position independent, entered at its first byte with
/// `rsi` = the page tables' physical address, `rcx` = the entry stack's top,
/// `rdx` = the capture kernel's entry and `rdi` = the block's physical
/// address (passed through):
///
/// ```text
/// 0f 22 de    mov  %rsi, %cr3     the control area's page tables
/// 48 89 cc    mov  %rcx, %rsp     the entry stack
/// 31 ed       xor  %ebp, %ebp     no caller frame
/// ff e2       jmp  *%rdx          the capture kernel, identity mapped
/// 0f 0b       ud2                 never reached
/// ```
///
/// After the CR3 write the next instruction is fetched through the new
/// tables, which map this page at the address the crashed kernel jumped to
/// as well as at its physical address. The bytes are checked against
/// objdump's disassembly in `tests/control.rs`.
pub const TRAMPOLINE: [u8; 12] = [
    0x0f, 0x22, 0xde, 0x48, 0x89, 0xcc, 0x31, 0xed, 0xff, 0xe2, 0x0f, 0x0b,
];

/// Page-table entry bits (Intel SDM vol. 3A, 4.5, tables 4-15 to 4-20):
/// present (bit 0), writable (bit 1), page size (bit 7, in a PD entry: a
/// 2 MiB page).
const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Bits 12-51 of an entry: the physical address it points at.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// 2 MiB.
const LARGE: u64 = 1 << 21;

/// What the integrator chooses for the dump, besides the image.
#[derive(Clone, Copy, Debug)]
pub struct Setup<'a> {
    /// The crash record's physical range.
    pub record: PhysRange,
    /// The RAM to dump (page aligned, sorted, not overlapping; the
    /// reservation may be inside, the capture kernel leaves it out).
    pub memory_map: &'a [PhysRange],
    /// The dump's format.
    pub format: DumpFormat,
    /// The codec level (zlib 1-9, else 0).
    pub level: u32,
    /// What the capture kernel does after the dump.
    pub after: AfterDump,
    /// Where it writes.
    pub device: Device,
    /// VMCOREINFO text (at most 4096 bytes; empty for none).
    pub vmcoreinfo: &'a [u8],
    /// The crashed kernel's direct-map offset.
    pub direct_map: Option<u64>,
    /// The crashed kernel's image at its link addresses.
    pub kernel_image: Option<KernelImage>,
    /// The crashed kernel's boot id.
    pub boot_id: u64,
}

/// Everything the crash path needs, kept by the crashed kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The loaded image (segments and SHA-256).
    pub loaded: Loaded,
    /// The virtual address the reservation is mapped at in the crashed
    /// kernel.
    pub reservation_virt: u64,
    /// CRC-32C of the control area's pages 0-11.
    pub control_crc: u32,
    /// The block's physical address (`rdi` at the entry).
    pub block: u64,
    /// The page tables' physical address (the entry's CR3).
    pub page_tables: u64,
    /// The entry stack's top (physical, 16-byte aligned).
    pub stack_top: u64,
    /// The trampoline's virtual address in the crashed kernel.
    pub trampoline_virt: u64,
}

impl Ready {
    /// The control area's physical range.
    pub fn control(&self) -> PhysRange {
        let reservation = self.loaded.reservation;
        PhysRange::new(
            reservation.start + reservation.len - CONTROL_LEN,
            CONTROL_LEN,
        )
    }
}

/// Why the control area cannot be prepared; nothing is jumped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrepareError {
    /// The reservation's bytes are not the reservation's length, or its
    /// virtual address is not page aligned or wraps.
    BadMapping,
    /// The reservation is smaller than the control area plus one page.
    ReservationTooSmall,
    /// A loaded segment reaches into the control area (the last
    /// [`CONTROL_LEN`] bytes of the reservation).
    ImageInControlArea,
    /// The memory map is refused.
    MemoryMap(MapError),
    /// The record is empty, wraps, or lies in the reservation.
    BadRecord,
    /// VMCOREINFO longer than 4096 bytes.
    VmcoreinfoTooLong,
    /// The reservation spans more than the eight page-table pages map.
    TooManyTables,
    /// The trampoline's virtual address is not canonical, or lies in a
    /// 2 MiB region the identity map covers at another address.
    TrampolineAliases,
    /// The block does not decode (a field out of range, see the message).
    Block(crate::block::BlockError),
}

impl core::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMapping => f.write_str(
                "the reservation's mapping is not its length, not page aligned, or wraps",
            ),
            Self::ReservationTooSmall => {
                f.write_str("the reservation has no room for the control area")
            }
            Self::ImageInControlArea => f.write_str(
                "a segment reaches into the reservation's last 64 KiB (the control area)",
            ),
            Self::MemoryMap(error) => write!(f, "memory map: {error}"),
            Self::BadRecord => {
                f.write_str("the record is empty, wraps, or lies in the reservation")
            }
            Self::VmcoreinfoTooLong => f.write_str("VMCOREINFO is longer than 4096 bytes"),
            Self::TooManyTables => {
                f.write_str("the reservation needs more than 8 page-table pages")
            }
            Self::TrampolineAliases => f.write_str(
                "the reservation's virtual address is not canonical or aliases the identity map",
            ),
            Self::Block(error) => write!(f, "hand-over block: {error}"),
        }
    }
}

impl core::error::Error for PrepareError {}

/// The page tables being built in the control area's table pages.
struct Tables<'r> {
    /// The reservation's bytes.
    bytes: &'r mut [u8],
    /// The reservation's physical start.
    base: u64,
    /// The first table page's physical address (the PML4).
    first: u64,
    /// Table pages used.
    used: u64,
}

impl Tables<'_> {
    fn entry(&self, table: u64, index: u64) -> u64 {
        let at = (table - self.base + index * 8) as usize;
        let mut word = [0u8; 8];
        if let Some(bytes) = self.bytes.get(at..at + 8) {
            word.copy_from_slice(bytes);
        }
        u64::from_le_bytes(word)
    }

    fn set(&mut self, table: u64, index: u64, value: u64) {
        let at = (table - self.base + index * 8) as usize;
        if let Some(bytes) = self.bytes.get_mut(at..at + 8) {
            bytes.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// The next-level table under `table[index]`, made if absent; `None`
    /// if the pages are used up or the entry maps a large page.
    fn next(&mut self, table: u64, index: u64) -> Result<u64, PrepareError> {
        let entry = self.entry(table, index);
        if entry & PRESENT != 0 {
            if entry & PAGE_SIZE_BIT != 0 {
                return Err(PrepareError::TrampolineAliases);
            }
            return Ok(entry & ADDRESS_MASK);
        }
        if self.used == TABLE_PAGES {
            return Err(PrepareError::TooManyTables);
        }
        let page = self.first + self.used * PAGE;
        self.used += 1;
        self.set(table, index, page | PRESENT | WRITABLE);
        Ok(page)
    }
}

/// The four table indices of a virtual address (PML4, PDPT, PD, PT).
const fn indices(virt: u64) -> [u64; 4] {
    [
        (virt >> 39) & 511,
        (virt >> 30) & 511,
        (virt >> 21) & 511,
        (virt >> 12) & 511,
    ]
}

/// Whether `virt` is canonical with 4-level paging (bits 47-63 equal).
const fn canonical(virt: u64) -> bool {
    let top = virt >> 47;
    top == 0 || top == 0x1_ffff
}

/// Prepare the control area of a reservation into which `loaded` was
/// loaded: `reservation` is its bytes, mapped at `reservation_virt` in the
/// running kernel. Writes pages 0-11 of the control area (the stack pages
/// are left alone), then decodes the block it wrote, as the capture kernel
/// will. Allocates nothing.
pub fn prepare(
    loaded: &Loaded,
    setup: &Setup<'_>,
    reservation: &mut [u8],
    reservation_virt: u64,
) -> Result<Ready, PrepareError> {
    let res = loaded.reservation;
    if reservation.len() as u64 != res.len
        || !reservation_virt.is_multiple_of(PAGE)
        || reservation_virt.checked_add(res.len).is_none()
    {
        return Err(PrepareError::BadMapping);
    }
    if res.len < CONTROL_LEN + PAGE {
        return Err(PrepareError::ReservationTooSmall);
    }
    let control = PhysRange::new(res.start + res.len - CONTROL_LEN, CONTROL_LEN);
    if loaded
        .segments()
        .iter()
        .any(|s| s.end().is_none_or(|end| end > control.start))
    {
        return Err(PrepareError::ImageInControlArea);
    }
    memory_map::check(setup.memory_map).map_err(PrepareError::MemoryMap)?;
    if setup.vmcoreinfo.len() as u64 > MAX_VMCOREINFO {
        return Err(PrepareError::VmcoreinfoTooLong);
    }
    let record = setup.record;
    if record.len == 0 || record.end().is_none() || record.overlaps(&res) {
        return Err(PrepareError::BadRecord);
    }
    let control_at = (control.start - res.start) as usize;
    let page_phys = |page: u64| control.start + page * PAGE;
    let page_at = |page: u64| control_at + (page * PAGE) as usize;

    // Clear pages 0-11, so nothing of an earlier load survives.
    if let Some(area) = reservation.get_mut(control_at..control_at + CHECKED_LEN as usize) {
        area.fill(0);
    }

    // The memory map and VMCOREINFO.
    let map_at = page_at(MAP_PAGE);
    let map_buffer = reservation
        .get_mut(map_at..map_at + PAGE as usize)
        .ok_or(PrepareError::BadMapping)?;
    memory_map::write(setup.memory_map, map_buffer).map_err(PrepareError::MemoryMap)?;
    let info_at = page_at(VMCOREINFO_PAGE);
    reservation
        .get_mut(info_at..info_at + setup.vmcoreinfo.len())
        .ok_or(PrepareError::BadMapping)?
        .copy_from_slice(setup.vmcoreinfo);

    // The trampoline.
    let tramp_at = page_at(TRAMPOLINE_PAGE);
    reservation
        .get_mut(tramp_at..tramp_at + TRAMPOLINE.len())
        .ok_or(PrepareError::BadMapping)?
        .copy_from_slice(&TRAMPOLINE);
    let trampoline_phys = page_phys(TRAMPOLINE_PAGE);
    let trampoline_virt = reservation_virt + (trampoline_phys - res.start);

    // The page tables: the reservation identity-mapped in 2 MiB pages
    // (rounded out), then the trampoline's page at its virtual address.
    let mut tables = Tables {
        bytes: reservation,
        base: res.start,
        first: page_phys(TABLES_PAGE),
        used: 1,
    };
    let pml4 = tables.first;
    let first_region = res.start & !(LARGE - 1);
    let end_region = (res.start + res.len).next_multiple_of(LARGE);
    if !canonical(end_region - 1) {
        return Err(PrepareError::TooManyTables);
    }
    let mut region = first_region;
    while region < end_region {
        let [l4, l3, l2, _] = indices(region);
        let pdpt = tables.next(pml4, l4)?;
        let pd = tables.next(pdpt, l3)?;
        tables.set(pd, l2, region | PRESENT | WRITABLE | PAGE_SIZE_BIT);
        region += LARGE;
    }
    if trampoline_virt != trampoline_phys {
        if !canonical(trampoline_virt) {
            return Err(PrepareError::TrampolineAliases);
        }
        let [l4, l3, l2, l1] = indices(trampoline_virt);
        let pdpt = tables.next(pml4, l4)?;
        let pd = tables.next(pdpt, l3)?;
        let pt = tables.next(pd, l2)?;
        tables.set(pt, l1, trampoline_phys | PRESENT | WRITABLE);
    }
    let reservation = tables.bytes;

    // The block last: it names everything above.
    let block = HandOver {
        reservation: res,
        control,
        record,
        memory_map: page_phys(MAP_PAGE),
        memory_map_count: setup.memory_map.len() as u32,
        format: setup.format,
        level: setup.level,
        after: setup.after,
        device: setup.device,
        vmcoreinfo: if setup.vmcoreinfo.is_empty() {
            PhysRange::default()
        } else {
            PhysRange::new(page_phys(VMCOREINFO_PAGE), setup.vmcoreinfo.len() as u64)
        },
        direct_map: setup.direct_map,
        kernel_image: setup.kernel_image,
        entry: loaded.entry,
        digest: loaded.digest,
        boot_id: setup.boot_id,
    };
    let encoded = block.encode();
    let block_at = page_at(BLOCK_PAGE);
    reservation
        .get_mut(block_at..block_at + BLOCK_LEN)
        .ok_or(PrepareError::BadMapping)?
        .copy_from_slice(&encoded);
    HandOver::decode(&encoded).map_err(PrepareError::Block)?;

    let checked = reservation
        .get(control_at..control_at + CHECKED_LEN as usize)
        .ok_or(PrepareError::BadMapping)?;
    Ok(Ready {
        loaded: *loaded,
        reservation_virt,
        control_crc: crc32c::checksum(checked),
        block: page_phys(BLOCK_PAGE),
        page_tables: pml4,
        stack_top: control.start + CONTROL_LEN,
        trampoline_virt,
    })
}

/// Why the crash path does not jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The reservation's bytes are not the reservation's length.
    BadMapping,
    /// The capture image's SHA-256 does not match the one taken at load.
    ImageChanged,
    /// The control area's CRC-32C does not match.
    ControlChanged,
}

impl CheckError {
    /// The code stored in the record's `dump_detail`.
    pub const fn code(self) -> u32 {
        match self {
            Self::BadMapping => 1,
            Self::ImageChanged => 2,
            Self::ControlChanged => 3,
        }
    }
}

/// At the crash: whether `reservation` (its bytes, mapped) still holds the
/// image and control area `ready` describes. Time proportional to the
/// image; no allocation.
pub fn check(ready: &Ready, reservation: &[u8]) -> Result<(), CheckError> {
    let res = ready.loaded.reservation;
    if reservation.len() as u64 != res.len {
        return Err(CheckError::BadMapping);
    }
    let control_at = (ready.control().start - res.start) as usize;
    let checked = reservation
        .get(control_at..control_at + CHECKED_LEN as usize)
        .ok_or(CheckError::BadMapping)?;
    if crc32c::checksum(checked) != ready.control_crc {
        return Err(CheckError::ControlChanged);
    }
    if !ready.loaded.matches(reservation) {
        return Err(CheckError::ImageChanged);
    }
    Ok(())
}
