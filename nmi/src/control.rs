//! [`ControlRegisters`]: a CPU's control state at the moment it stopped.
//!
//! The general registers ([`RegisterFrame`](crate::RegisterFrame)) say where
//! a CPU was; these say how it saw memory there. A dump reader needs CR3 (the
//! page tables), CR0 and CR4 (paging on, PAE, LA57) and EFER (long mode,
//! NX) to translate the CPU's virtual addresses; CR2 is the address of the
//! last page fault; the FS and GS bases and the data segment selectors fill
//! the last six slots of an ELF core's `NT_PRSTATUS` `pr_reg` array.
//!
//! A value is meaningful only if its bit in [`ControlRegisters::valid`] is
//! set: a platform that cannot read a register (the host simulation reads
//! none of them: they are privileged) leaves its bit clear, and a reader
//! shows the register as unknown rather than as zero.
//!
//! The layout is part of the crash record's CPU slot (`docs/crash-record.md`,
//! "Control state"): `#[repr(C)]`, 80 bytes, no padding.

/// Bits of [`ControlRegisters::valid`]. Bits 0 to 7 are the same as the
/// valid mask of the dump's `ControlState` note (docs/dump-formats.md), so a
/// writer copies the mask.
pub mod valid {
    /// [`ControlRegisters::cr0`](super::ControlRegisters::cr0).
    pub const CR0: u32 = 1 << 0;
    /// [`ControlRegisters::cr2`](super::ControlRegisters::cr2).
    pub const CR2: u32 = 1 << 1;
    /// [`ControlRegisters::cr3`](super::ControlRegisters::cr3).
    pub const CR3: u32 = 1 << 2;
    /// [`ControlRegisters::cr4`](super::ControlRegisters::cr4).
    pub const CR4: u32 = 1 << 3;
    /// [`ControlRegisters::efer`](super::ControlRegisters::efer).
    pub const EFER: u32 = 1 << 4;
    /// [`ControlRegisters::fs_base`](super::ControlRegisters::fs_base).
    pub const FS_BASE: u32 = 1 << 5;
    /// [`ControlRegisters::gs_base`](super::ControlRegisters::gs_base).
    pub const GS_BASE: u32 = 1 << 6;
    /// [`ControlRegisters::kernel_gs_base`](super::ControlRegisters::kernel_gs_base).
    pub const KERNEL_GS_BASE: u32 = 1 << 7;
    /// The four selectors `ds`, `es`, `fs`, `gs`.
    pub const SELECTORS: u32 = 1 << 16;
    /// Everything an x86_64 kernel in ring 0 reads
    /// ([`ControlRegisters::capture`](super::ControlRegisters::capture)).
    pub const ALL: u32 =
        CR0 | CR2 | CR3 | CR4 | EFER | FS_BASE | GS_BASE | KERNEL_GS_BASE | SELECTORS;
}

/// Control registers, the FS/GS bases and the data segment selectors of one
/// CPU, with a mask of which were read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the architectural registers of the same name
pub struct ControlRegisters {
    /// [`valid`] bits: which of the fields below hold a value read from the
    /// CPU.
    pub valid: u32,
    /// Zero.
    pub reserved: u32,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    /// `IA32_KERNEL_GS_BASE`, the value `swapgs` exchanges with GS base.
    pub kernel_gs_base: u64,
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
}

impl ControlRegisters {
    /// Size in bytes (the crash record's CPU slot relies on it).
    pub const SIZE: usize = 80;

    /// Nothing read: every valid bit clear, every field zero.
    pub const NONE: Self = Self {
        valid: 0,
        reserved: 0,
        cr0: 0,
        cr2: 0,
        cr3: 0,
        cr4: 0,
        efer: 0,
        fs_base: 0,
        gs_base: 0,
        kernel_gs_base: 0,
        ds: 0,
        es: 0,
        fs: 0,
        gs: 0,
    };

    /// Whether every bit of `mask` is set in [`valid`](Self::valid).
    pub const fn has(&self, mask: u32) -> bool {
        self.valid & mask == mask
    }
}

const _: () = assert!(core::mem::size_of::<ControlRegisters>() == ControlRegisters::SIZE);
const _: () = assert!(core::mem::align_of::<ControlRegisters>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_padding() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(ControlRegisters, valid), 0);
        assert_eq!(offset_of!(ControlRegisters, cr0), 8);
        assert_eq!(offset_of!(ControlRegisters, kernel_gs_base), 64);
        assert_eq!(offset_of!(ControlRegisters, ds), 72);
        assert_eq!(offset_of!(ControlRegisters, gs), 78);
    }

    #[test]
    fn none_has_nothing() {
        assert!(!ControlRegisters::NONE.has(valid::CR3));
        assert!(ControlRegisters::NONE.has(0));
    }
}
