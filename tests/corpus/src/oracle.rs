//! The corpus's own page-table walk: the independent oracle the format
//! library's `paging` (and the CLI's `vtop` and virtual `rd`, which use it)
//! are checked against on the Linux guest's dumps. Deliberately small and
//! separate: 4-level paging, present bits and large pages, nothing shared
//! with the code under test.

use crashkit_dump_format::elf::reader::ElfDump;

/// `__START_KERNEL_map`: where x86_64 Linux maps its image (virtual =
/// physical - phys_base + this).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// Translate `virt` through 4-level page tables at `root` (physical),
/// reading the tables from the dump; `None` if an entry is missing or not
/// present. Written apart from the format library's `paging` on purpose:
/// the corpus checks `paging` (through the CLI's `vtop` and virtual `rd`)
/// against this, so the two must not share code.
pub fn translate(dump: &ElfDump<'_>, root: u64, virt: u64) -> Option<u64> {
    let mut table = root;
    for (level, shift) in [(4, 39u32), (3, 30), (2, 21), (1, 12)] {
        let index = (virt >> shift) & 511;
        let mut entry = [0u8; 8];
        dump.read_phys(table + index * 8, &mut entry).ok()?;
        let entry = u64::from_le_bytes(entry);
        if entry & 1 == 0 {
            return None;
        }
        let frame = entry & 0x000f_ffff_ffff_f000;
        let huge = entry & (1 << 7) != 0 && (level == 3 || level == 2);
        if huge || level == 1 {
            let size = 1u64 << shift;
            return Some((frame & !(size - 1)) | (virt & (size - 1)));
        }
        table = frame;
    }
    None
}

/// Linux's direct-map base (`page_offset_base`, randomised under KASLR),
/// found by translating VMCOREINFO's `SYMBOL(mem_section)` (a direct-map
/// pointer) through `init_top_pgt`.
pub fn page_offset(dump: &ElfDump<'_>) -> Result<u64, String> {
    let info = dump.vmcoreinfo().ok_or("no VMCOREINFO")?;
    if info.number("NUMBER(pgtable_l5_enabled)") == Some(1) {
        return Err("5-level paging: not handled by the corpus check".into());
    }
    let phys_base = info.number("NUMBER(phys_base)").ok_or("no phys_base")?;
    let top = info
        .number("SYMBOL(init_top_pgt)")
        .ok_or("no init_top_pgt")?;
    let root = top.wrapping_sub(START_KERNEL_MAP).wrapping_add(phys_base);
    let pointer = info.number("SYMBOL(mem_section)").ok_or("no mem_section")?;
    let phys = translate(dump, root, pointer)
        .ok_or_else(|| format!("mem_section {pointer:#x} does not translate"))?;
    let offset = pointer.wrapping_sub(phys);
    if offset & ((1 << 30) - 1) != 0 {
        return Err(format!("direct map at {offset:#x} is not 1 GiB aligned"));
    }
    Ok(offset)
}
