//! The CPUs, from the ACPI MADT: `acpi` 5.2 (no allocator) over an identity
//! mapping, starting at the RSDP the PVH start info names.
//!
//! Each enabled (or online-capable) local APIC or local x2APIC entry is one
//! CPU; CPU indices are dense, in MADT order. No APIC ID is assumed: the BSP
//! finds its own index by its APIC ID. Past [`MAX_CPUS`] CPUs the rest are
//! counted and left alone.

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiError, AcpiHandler, AcpiTables, PhysicalMapping};

use crate::percpu::MAX_CPUS;

/// The identity mapping: physical address = virtual address (the boot stub
/// maps the first 4 GiB, where QEMU's ACPI tables live).
#[derive(Clone, Copy, Debug)]
struct IdentityMap;

impl AcpiHandler for IdentityMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        // ACPI never maps address 0; a dangling pointer there would only be
        // read as a table that fails its checksum.
        let virtual_start = NonNull::new(physical_address as *mut T).unwrap_or(NonNull::dangling());
        // SAFETY: the region is identity mapped (first 4 GiB) and read-only
        // to the acpi crate; nothing unmaps it.
        unsafe { PhysicalMapping::new(physical_address, virtual_start, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The CPUs the MADT lists.
#[derive(Clone, Copy, Debug)]
pub struct CpuList {
    apic_ids: [u32; MAX_CPUS],
    count: usize,
    /// Enabled CPUs past [`MAX_CPUS`], not used.
    pub ignored: usize,
    /// The local APIC's physical address the MADT gives.
    pub local_apic_address: u32,
}

impl CpuList {
    /// The APIC IDs, by CPU index.
    pub fn apic_ids(&self) -> &[u32] {
        self.apic_ids.get(..self.count).unwrap_or(&[])
    }

    /// The index of the CPU with `apic_id`.
    pub fn index_of(&self, apic_id: u32) -> Option<usize> {
        self.apic_ids().iter().position(|&id| id == apic_id)
    }

    fn push(&mut self, apic_id: u32) {
        match self.apic_ids.get_mut(self.count) {
            Some(slot) => {
                *slot = apic_id;
                self.count += 1;
            }
            None => self.ignored += 1,
        }
    }
}

/// Why the CPU list could not be read.
#[derive(Debug)]
pub enum MadtError {
    /// The start info named no RSDP.
    NoRsdp,
    /// The acpi crate refused the tables.
    Acpi(AcpiError),
    /// The MADT lists no enabled CPU.
    NoCpus,
}

impl core::fmt::Display for MadtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRsdp => f.write_str("the PVH start info names no RSDP"),
            Self::Acpi(error) => write!(f, "the acpi crate refused the tables: {error:?}"),
            Self::NoCpus => f.write_str("the MADT lists no enabled CPU"),
        }
    }
}

/// Local APIC flags: bit 0 enabled, bit 1 online capable (ACPI 6.5, 5.2.12.2).
const USABLE: u32 = 0b11;

/// Read the MADT reached from the RSDP at `rsdp`.
///
/// # Safety
/// `rsdp` is the RSDP address QEMU's start info gave, and the first 4 GiB
/// are identity mapped.
pub unsafe fn read_cpus(rsdp: u64) -> Result<CpuList, MadtError> {
    if rsdp == 0 {
        return Err(MadtError::NoRsdp);
    }
    // SAFETY: the caller guarantees `rsdp` is the firmware's RSDP in
    // identity-mapped memory; the handler maps by identity.
    let tables =
        unsafe { AcpiTables::from_rsdp(IdentityMap, rsdp as usize) }.map_err(MadtError::Acpi)?;
    let madt = tables.find_table::<Madt>().map_err(MadtError::Acpi)?;
    let madt = madt.get();
    let mut cpus = CpuList {
        apic_ids: [0; MAX_CPUS],
        count: 0,
        ignored: 0,
        local_apic_address: madt.local_apic_address,
    };
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(local) if { local.flags } & USABLE != 0 => {
                cpus.push(u32::from(local.apic_id));
            }
            MadtEntry::LocalX2Apic(local) if { local.flags } & USABLE != 0 => {
                cpus.push(local.x2apic_id);
            }
            _ => {}
        }
    }
    if cpus.count == 0 {
        return Err(MadtError::NoCpus);
    }
    Ok(cpus)
}
