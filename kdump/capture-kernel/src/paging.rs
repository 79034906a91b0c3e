//! This kernel's page tables: everything it reads identity mapped. The
//! entry's tables map only the reservation; these map the first 4 GiB (RAM
//! write-back, the rest uncacheable: MMIO, the local APIC, ECAM), the memory
//! map's ranges above it, and later the device's BARs. 2 MiB pages (Intel
//! SDM vol. 3A 4.5: PD entries with PS, bit 7), tables from a pool in .bss.

use crashkit_dump_format::PhysRange;

/// Entry bits: present, writable, write-through (PWT, bit 3), cache
/// disable (PCD, bit 4), page size (bit 7).
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
const LARGE: u64 = 1 << 21;
/// Table pages in the pool: a PML4, and PDPTs and PDs for about 250 GiB.
const POOL_PAGES: usize = 256;
/// Where the first 2 MiB of physical memory are mapped a second time, so
/// that page 0 can be read through a non-null pointer (a reference to
/// address 0 cannot exist in Rust): 1 TiB, far above any identity mapping
/// this kernel makes of a machine it can dump (a PML4 slot of its own).
pub const LOW_ALIAS: u64 = 1 << 40;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut POOL: [Table; POOL_PAGES] = [const { Table([0; 512]) }; POOL_PAGES];

/// Why a mapping failed.
#[derive(Clone, Copy, Debug)]
pub struct PoolExhausted;

/// The page tables being built (one instance, in `capture_main`).
#[derive(Debug)]
pub struct Mapper {
    used: usize,
}

impl Mapper {
    /// The tables, with an empty PML4.
    ///
    /// # Safety
    /// Called once; the pool is then this mapper's alone.
    pub unsafe fn new() -> Self {
        Self { used: 1 }
    }

    fn table(index: usize) -> *mut Table {
        // SAFETY: `index` < POOL_PAGES (callers check); taking the address
        // does not read or write.
        unsafe { core::ptr::addr_of_mut!(POOL[index]) }
    }

    fn next(&mut self, table: *mut Table, index: usize) -> Result<*mut Table, PoolExhausted> {
        // SAFETY: `table` is a pool page (identity mapped, phys = virt);
        // the mapper is the pool's only user, so no other reference exists.
        let entry = unsafe { &mut (*table).0[index] };
        if *entry & PRESENT != 0 {
            return Ok((*entry & ADDRESS) as *mut Table);
        }
        if self.used == POOL_PAGES {
            return Err(PoolExhausted);
        }
        let page = Self::table(self.used);
        self.used += 1;
        *entry = page as u64 | PRESENT | WRITABLE;
        Ok(page)
    }

    /// Map the 2 MiB region at `region` to itself (first mapping wins).
    pub fn map_large(&mut self, region: u64, uncached: bool) -> Result<(), PoolExhausted> {
        self.map_large_at(region, region, uncached)
    }

    /// Map the 2 MiB region at physical `region` at virtual `virt` (first
    /// mapping wins).
    pub fn map_large_at(
        &mut self,
        virt: u64,
        region: u64,
        uncached: bool,
    ) -> Result<(), PoolExhausted> {
        let pml4 = Self::table(0);
        let pdpt = self.next(pml4, ((virt >> 39) & 511) as usize)?;
        let pd = self.next(pdpt, ((virt >> 30) & 511) as usize)?;
        // SAFETY: as in `next`.
        let entry = unsafe { &mut (*pd).0[((virt >> 21) & 511) as usize] };
        if *entry & PRESENT == 0 {
            let cache = if uncached { PCD | PWT } else { 0 };
            *entry = (region & !(LARGE - 1)) | PRESENT | WRITABLE | PS | cache;
        }
        Ok(())
    }

    /// Map `range` to itself in 2 MiB pages (rounded out).
    pub fn map_range(&mut self, range: PhysRange, uncached: bool) -> Result<(), PoolExhausted> {
        let start = range.start & !(LARGE - 1);
        let end = range
            .start
            .saturating_add(range.len)
            .next_multiple_of(LARGE);
        let mut region = start;
        while region < end {
            self.map_large(region, uncached)?;
            region += LARGE;
        }
        Ok(())
    }

    /// Load the tables into CR3, with CR4.PCIDE cleared (PCIDs are the
    /// crashed kernel's; clearing it needs CR3[11:0] = 0, true of a page
    /// address) and CR4.PGE set again.
    pub fn activate(&self) {
        let pml4 = Self::table(0) as u64;
        // SAFETY: the tables map this image, its stack and the control
        // area (the reservation lies in the first 4 GiB or in the memory
        // map's ranges, all mapped before this call), so execution goes on
        // at the same addresses. Clearing PCIDE first (SDM: allowed when
        // CR3[11:0] = 0) then loading CR3 flushes the old translations.
        unsafe {
            core::arch::asm!(
                "mov {tmp}, cr3",
                "and {tmp}, {mask}",
                "mov cr3, {tmp}",
                "mov {tmp}, cr4",
                "btr {tmp}, 17",
                "mov cr4, {tmp}",
                "mov cr3, {pml4}",
                "mov {tmp}, cr4",
                "bts {tmp}, 7",
                "mov cr4, {tmp}",
                tmp = out(reg) _,
                mask = in(reg) ADDRESS,
                pml4 = in(reg) pml4,
                options(nostack),
            );
        }
    }
}
