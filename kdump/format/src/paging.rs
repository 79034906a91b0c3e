//! x86_64 page-table walks over a dump's physical memory: a virtual
//! address to the physical one the dumped tables map it to, entry by entry,
//! with 4- or 5-level paging and 2 MiB and 1 GiB pages.
//!
//! The walk reads one 8-byte entry per level through [`TableMemory`] (a
//! dump reader, whatever its format), so it is bounded by construction: at
//! most five reads, no loop over table contents, no allocation. Everything
//! it met is kept ([`Walk::steps`]) so a tool can show the walk, and why it
//! stopped is a value ([`Outcome`]): an address that is not canonical, an
//! entry that is not present, a table the dump does not have (excluded,
//! lost, a hole), or an entry with bits a CPU would fault on.
//!
//! Facts used (Intel SDM vol. 3A, 4.5): CR3 bits 12-51 locate the top
//! table (the low 12 are PCID or flags); an entry's bit 0 is Present, bit 7
//! (PS) in a PDPTE or PDE maps a 1 GiB or 2 MiB page and is reserved in a
//! PML5E or PML4E; bits 12-51 hold the next table or the page frame; bit
//! 63 is no-execute. 4-level paging translates 48-bit canonical addresses
//! (bits 63-47 equal), 5-level (CR4.LA57) 57-bit ones (bits 63-56 equal).

/// Memory the walk reads entries from: the dump's physical memory.
pub trait TableMemory {
    /// Why an entry cannot be read (the dump's page state).
    type Error: Copy + core::fmt::Debug;

    /// The 8-byte little-endian entry at physical address `phys`.
    fn entry(&self, phys: u64) -> Result<u64, Self::Error>;
}

/// How many levels the tables have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// PML4, PDPT, PD, PT: 48-bit virtual addresses.
    FourLevel,
    /// PML5 above those (CR4.LA57): 57-bit virtual addresses.
    FiveLevel,
}

/// A table level, named as the SDM names its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Page-map level 5 (5-level paging only).
    Pml5,
    /// Page-map level 4.
    Pml4,
    /// Page-directory-pointer table (PS: a 1 GiB page).
    Pdpt,
    /// Page directory (PS: a 2 MiB page).
    Pd,
    /// Page table (a 4 KiB page).
    Pt,
}

impl Level {
    /// The entry's short name: `PML5E`, `PML4E`, `PDPTE`, `PDE`, `PTE`.
    pub const fn entry_name(self) -> &'static str {
        match self {
            Level::Pml5 => "PML5E",
            Level::Pml4 => "PML4E",
            Level::Pdpt => "PDPTE",
            Level::Pd => "PDE",
            Level::Pt => "PTE",
        }
    }

    /// The lowest bit of the virtual address this level's index starts at.
    const fn shift(self) -> u32 {
        match self {
            Level::Pml5 => 48,
            Level::Pml4 => 39,
            Level::Pdpt => 30,
            Level::Pd => 21,
            Level::Pt => 12,
        }
    }
}

/// Bits 12-51: the next table's or the page's physical address.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Entry bit 0.
pub const PRESENT: u64 = 1;
/// Entry bit 1.
pub const WRITABLE: u64 = 1 << 1;
/// Entry bit 2.
pub const USER: u64 = 1 << 2;
/// Entry bit 7: a large page in a PDPTE or PDE; reserved above.
pub const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Entry bit 63.
pub const NO_EXECUTE: u64 = 1 << 63;

/// One entry the walk read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its level.
    pub level: Level,
    /// The physical address of the table it is in.
    pub table: u64,
    /// Its index in that table (0-511).
    pub index: u16,
    /// The entry.
    pub entry: u64,
}

impl Step {
    /// The entry's physical address.
    pub const fn entry_address(&self) -> u64 {
        self.table + self.index as u64 * 8
    }
}

/// Where a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<E> {
    /// The address maps to `phys`, in a page of `page_size` bytes (4 KiB,
    /// 2 MiB or 1 GiB) whose last entry is the last step.
    Mapped {
        /// The physical address.
        phys: u64,
        /// The size of the page it is in.
        page_size: u64,
    },
    /// The address is not canonical for the paging mode: no table maps it.
    NotCanonical,
    /// The entry at `level` is not present: the address is not mapped.
    NotPresent {
        /// Where.
        level: Level,
    },
    /// The entry at `level` (at `entry_address`) is not in the dump.
    Unreadable {
        /// The table level whose entry could not be read.
        level: Level,
        /// The entry's physical address.
        entry_address: u64,
        /// Why (the dump's page state).
        error: E,
    },
    /// The entry at `level` sets a reserved bit a CPU would fault on (PS in
    /// a PML5E or PML4E): the tables are malformed.
    Reserved {
        /// Where.
        level: Level,
    },
}

/// A walk: the entries read, in order, and where it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk<E> {
    steps: [Option<Step>; 5],
    /// Where it ended.
    pub outcome: Outcome<E>,
}

impl<E> Walk<E> {
    /// The entries read, top level first (up to five).
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().flatten()
    }

    /// The physical address, if the address is mapped.
    pub fn phys(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Mapped { phys, .. } => Some(phys),
            _ => None,
        }
    }
}

/// Whether `virt` is canonical under `paging`.
pub const fn is_canonical(virt: u64, paging: Paging) -> bool {
    let bits = match paging {
        Paging::FourLevel => 48,
        Paging::FiveLevel => 57,
    };
    // Sign-extend from the top implemented bit and compare.
    let shift = 64 - bits;
    (((virt << shift) as i64) >> shift) as u64 == virt
}

/// Translate `virt` through the tables whose top is at CR3 value `cr3`.
pub fn walk<M: TableMemory>(memory: &M, cr3: u64, paging: Paging, virt: u64) -> Walk<M::Error> {
    let mut walk = Walk {
        steps: [None; 5],
        outcome: Outcome::NotCanonical,
    };
    if !is_canonical(virt, paging) {
        return walk;
    }
    let levels: &[Level] = match paging {
        Paging::FiveLevel => &[Level::Pml5, Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt],
        Paging::FourLevel => &[Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt],
    };
    let mut table = cr3 & ADDRESS_MASK;
    for (slot, &level) in walk.steps.iter_mut().zip(levels) {
        let index = ((virt >> level.shift()) & 0x1ff) as u16;
        let entry_address = table + u64::from(index) * 8;
        let entry = match memory.entry(entry_address) {
            Ok(entry) => entry,
            Err(error) => {
                walk.outcome = Outcome::Unreadable {
                    level,
                    entry_address,
                    error,
                };
                return walk;
            }
        };
        *slot = Some(Step {
            level,
            table,
            index,
            entry,
        });
        if entry & PRESENT == 0 {
            walk.outcome = Outcome::NotPresent { level };
            return walk;
        }
        let large = entry & PAGE_SIZE_BIT != 0;
        match level {
            Level::Pml5 | Level::Pml4 if large => {
                walk.outcome = Outcome::Reserved { level };
                return walk;
            }
            Level::Pdpt | Level::Pd if large => {
                let page_size = 1u64 << level.shift();
                let frame = entry & ADDRESS_MASK & !(page_size - 1);
                walk.outcome = Outcome::Mapped {
                    phys: frame | (virt & (page_size - 1)),
                    page_size,
                };
                return walk;
            }
            Level::Pt => {
                walk.outcome = Outcome::Mapped {
                    phys: (entry & ADDRESS_MASK) | (virt & 0xfff),
                    page_size: 4096,
                };
                return walk;
            }
            _ => table = entry & ADDRESS_MASK,
        }
    }
    walk
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables in a small map from physical address to entry; anything else
    /// reads as "not in the dump".
    struct Tables(std::collections::BTreeMap<u64, u64>);

    impl TableMemory for Tables {
        type Error = &'static str;
        fn entry(&self, phys: u64) -> Result<u64, &'static str> {
            self.0.get(&phys).copied().ok_or("excluded")
        }
    }

    fn index(virt: u64, shift: u32) -> u64 {
        (virt >> shift) & 0x1ff
    }

    /// Four levels: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at
    /// 0x4000; `virt` mapped by a 4 KiB page at 0x7000_0000, a 2 MiB page
    /// and a 1 GiB page next to it.
    fn tables(virt: u64) -> Tables {
        let mut map = std::collections::BTreeMap::new();
        map.insert(0x1000 + index(virt, 39) * 8, 0x2000 | PRESENT | WRITABLE);
        map.insert(0x2000 + index(virt, 30) * 8, 0x3000 | PRESENT);
        map.insert(0x3000 + index(virt, 21) * 8, 0x4000 | PRESENT);
        map.insert(
            0x4000 + index(virt, 12) * 8,
            0x7000_0000 | PRESENT | NO_EXECUTE,
        );
        Tables(map)
    }

    #[test]
    fn four_kib_two_mib_and_one_gib_pages_translate() {
        let virt = 0xffff_8880_1234_5678u64;
        let mut memory = tables(virt);
        let walk = walk(&memory, 0x1000 | 0x18, Paging::FourLevel, virt);
        assert_eq!(
            walk.outcome,
            Outcome::Mapped {
                phys: 0x7000_0678,
                page_size: 4096
            }
        );
        assert_eq!(walk.steps().count(), 4);
        let levels: Vec<Level> = walk.steps().map(|s| s.level).collect();
        assert_eq!(levels, [Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt]);
        // The PDE becomes a 2 MiB page.
        let pde = 0x3000 + index(virt, 21) * 8;
        memory.0.insert(pde, 0x4060_0000 | PRESENT | PAGE_SIZE_BIT);
        let two = super::walk(&memory, 0x1000, Paging::FourLevel, virt);
        assert_eq!(
            two.outcome,
            Outcome::Mapped {
                phys: 0x4060_0000 | (virt & 0x1f_ffff),
                page_size: 2 << 20
            }
        );
        // The PDPTE becomes a 1 GiB page (address bits below 30 ignored).
        let pdpte = 0x2000 + index(virt, 30) * 8;
        memory
            .0
            .insert(pdpte, 0x8000_0000 | 0x1000 | PRESENT | PAGE_SIZE_BIT);
        let one = super::walk(&memory, 0x1000, Paging::FourLevel, virt);
        assert_eq!(
            one.outcome,
            Outcome::Mapped {
                phys: 0x8000_0000 | (virt & 0x3fff_ffff),
                page_size: 1 << 30
            }
        );
        assert_eq!(one.steps().count(), 2);
    }

    #[test]
    fn five_levels_add_a_table_above() {
        let virt = 0xff11_2233_4455_6000u64;
        let mut memory = tables(virt);
        // A PML5 at 0x9000 pointing at the PML4 of four levels.
        memory
            .0
            .insert(0x9000 + index(virt, 48) * 8, 0x1000 | PRESENT);
        let walk = walk(&memory, 0x9000, Paging::FiveLevel, virt);
        assert_eq!(walk.phys(), Some(0x7000_0000));
        assert_eq!(walk.steps().next().map(|s| s.level), Some(Level::Pml5));
        // Not canonical with four levels.
        assert_eq!(
            super::walk(&memory, 0x1000, Paging::FourLevel, virt).outcome,
            Outcome::NotCanonical
        );
    }

    #[test]
    fn every_way_to_stop_is_said() {
        let virt = 0xffff_8880_1234_5678u64;
        let mut memory = tables(virt);
        // Not present at the PD.
        let pde = 0x3000 + index(virt, 21) * 8;
        memory.0.insert(pde, 0x4000);
        assert_eq!(
            walk(&memory, 0x1000, Paging::FourLevel, virt).outcome,
            Outcome::NotPresent { level: Level::Pd }
        );
        // The PT's page is not in the dump.
        memory.0.insert(pde, 0x5000 | PRESENT);
        assert_eq!(
            walk(&memory, 0x1000, Paging::FourLevel, virt).outcome,
            Outcome::Unreadable {
                level: Level::Pt,
                entry_address: 0x5000 + index(virt, 12) * 8,
                error: "excluded"
            }
        );
        // PS in a PML4E is reserved.
        let pml4e = 0x1000 + index(virt, 39) * 8;
        memory.0.insert(pml4e, 0x2000 | PRESENT | PAGE_SIZE_BIT);
        assert_eq!(
            walk(&memory, 0x1000, Paging::FourLevel, virt).outcome,
            Outcome::Reserved { level: Level::Pml4 }
        );
        // Not canonical.
        assert_eq!(
            walk(&memory, 0x1000, Paging::FourLevel, 0x0000_8000_0000_0000).outcome,
            Outcome::NotCanonical
        );
    }

    #[test]
    fn canonical_forms() {
        assert!(is_canonical(0x0000_7fff_ffff_ffff, Paging::FourLevel));
        assert!(is_canonical(0xffff_8000_0000_0000, Paging::FourLevel));
        assert!(!is_canonical(0x0000_8000_0000_0000, Paging::FourLevel));
        assert!(is_canonical(0x00ff_ffff_ffff_ffff, Paging::FiveLevel));
        assert!(is_canonical(0xff00_0000_0000_0000, Paging::FiveLevel));
        assert!(!is_canonical(0x0100_0000_0000_0000, Paging::FiveLevel));
    }
}
