//! PCI configuration access for virtio-drivers: mechanism #1 (ports
//! 0xCF8/0xCFC, PCI Local Bus spec 3.0, 3.2.2.3.2) or ECAM (PCIe base spec,
//! 7.2.2: `base + bus << 20 | device << 15 | function << 12 | offset`).

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

use crate::port::{inl, outl};

/// How configuration space is reached.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    /// Ports 0xCF8 (address) and 0xCFC (data).
    Ports,
    /// Memory-mapped at this base: its 256 MiB (every bus) mapped
    /// uncacheable at the same address (the caller maps it).
    Ecam(u64),
}

impl Access {
    fn port_address(function: DeviceFunction, offset: u8) -> u32 {
        0x8000_0000
            | u32::from(function.bus) << 16
            | u32::from(function.device & 31) << 11
            | u32::from(function.function & 7) << 8
            | u32::from(offset & 0xFC)
    }

    fn ecam_address(base: u64, function: DeviceFunction, offset: u8) -> u64 {
        base + (u64::from(function.bus) << 20
            | u64::from(function.device & 31) << 15
            | u64::from(function.function & 7) << 12
            | u64::from(offset & 0xFC))
    }
}

impl ConfigurationAccess for Access {
    fn read_word(&self, function: DeviceFunction, offset: u8) -> u32 {
        match *self {
            Self::Ports => {
                outl(0xCF8, Self::port_address(function, offset));
                inl(0xCFC)
            }
            Self::Ecam(base) => {
                let address = Self::ecam_address(base, function, offset);
                // SAFETY: `Ecam`'s contract: the window is mapped
                // uncacheable at its address (the capture kernel's page
                // tables, or the crashed kernel's); an aligned 32-bit read
                // of configuration space has no side effect on memory.
                unsafe { core::ptr::read_volatile(address as *const u32) }
            }
        }
    }

    fn write_word(&mut self, function: DeviceFunction, offset: u8, data: u32) {
        match *self {
            Self::Ports => {
                outl(0xCF8, Self::port_address(function, offset));
                outl(0xCFC, data);
            }
            Self::Ecam(base) => {
                let address = Self::ecam_address(base, function, offset);
                // SAFETY: as in `read_word`; writes reach configuration
                // space only.
                unsafe { core::ptr::write_volatile(address as *mut u32, data) }
            }
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}
