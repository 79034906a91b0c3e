//! [`ControlRegisters::capture`]: the calling CPU's control state, read in
//! ring 0.
//!
//! Control registers through the `x86_64` crate (`mov` from CR0, CR2, CR3,
//! CR4), model-specific registers by number with `rdmsr`, the selectors with
//! `mov` from the segment registers. The MSR numbers are architectural
//! (Intel SDM vol. 4, table 2-2; AMD APM vol. 2, appendix A); the host test
//! `control_msrs_are_the_manuals` checks them against a table copied from
//! the manual.
//!
//! In the stop NMI's handler the values are the interrupted context's, with
//! two provisos a kernel must know: crashkit's entry stubs do not `swapgs`
//! (so GS base is whatever the interrupted code had), and a kernel that
//! switches CR3 on kernel entry (page-table isolation) gives its NMI
//! handler's CR3, not the interrupted user context's.

use x86_64::instructions::segmentation::{DS, ES, FS, GS, Segment};
use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};
use x86_64::registers::model_specific::Msr;

use crate::ControlRegisters;
use crate::control::valid;

/// `IA32_EFER`.
pub const MSR_EFER: u32 = 0xC000_0080;
/// `IA32_FS_BASE`.
pub const MSR_FS_BASE: u32 = 0xC000_0100;
/// `IA32_GS_BASE`.
pub const MSR_GS_BASE: u32 = 0xC000_0101;
/// `IA32_KERNEL_GS_BASE`.
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;

impl ControlRegisters {
    /// The calling CPU's control state, every [`valid::ALL`] bit set.
    ///
    /// No memory but the returned value is written; no lock; a fixed
    /// sequence of register reads, callable from NMI context.
    ///
    /// # Safety
    /// The caller runs in ring 0 of a 64-bit kernel: `mov` from a control
    /// register and `rdmsr` fault (#GP) at any other privilege level, and
    /// the four MSRs exist only on CPUs with long mode (every x86_64 CPU).
    #[inline]
    pub unsafe fn capture() -> Self {
        let (frame, flags) = Cr3::read_raw();
        let msr = |number: u32| {
            // SAFETY: the caller is in ring 0 on an x86_64 CPU (this
            // function's contract), where `rdmsr` of these four
            // architectural MSRs neither faults nor has a side effect;
            // nothing else is touched.
            unsafe { Msr::new(number).read() }
        };
        Self {
            valid: valid::ALL,
            reserved: 0,
            cr0: Cr0::read_raw(),
            cr2: Cr2::read_raw(),
            cr3: frame.start_address().as_u64() | u64::from(flags),
            cr4: Cr4::read_raw(),
            efer: msr(MSR_EFER),
            fs_base: msr(MSR_FS_BASE),
            gs_base: msr(MSR_GS_BASE),
            kernel_gs_base: msr(MSR_KERNEL_GS_BASE),
            ds: DS::get_reg().0,
            es: ES::get_reg().0,
            fs: FS::get_reg().0,
            gs: GS::get_reg().0,
        }
    }
}

#[cfg(test)]
mod tests {
    /// Intel SDM vol. 4 ("Model-Specific Registers"), table 2-2
    /// "IA-32 Architectural MSRs", copied by hand: address (hex) and
    /// architectural name. AMD's APM vol. 2, appendix A.2, gives the same
    /// numbers (EFER, FS.Base, GS.Base, KernelGSbase).
    const MANUAL: [(u32, &str); 4] = [
        (0xC000_0080, "IA32_EFER"),
        (0xC000_0100, "IA32_FS_BASE"),
        (0xC000_0101, "IA32_GS_BASE"),
        (0xC000_0102, "IA32_KERNEL_GS_BASE"),
    ];

    #[test]
    fn control_msrs_are_the_manuals() {
        let code = [
            (super::MSR_EFER, "IA32_EFER"),
            (super::MSR_FS_BASE, "IA32_FS_BASE"),
            (super::MSR_GS_BASE, "IA32_GS_BASE"),
            (super::MSR_KERNEL_GS_BASE, "IA32_KERNEL_GS_BASE"),
        ];
        assert_eq!(code, MANUAL);
    }

    #[test]
    fn the_valid_mask_matches_the_dump_notes_bits() {
        // docs/dump-formats.md, ControlState note: CR0 bit 0, CR2 1, CR3 2,
        // CR4 3, EFER 4, FS base 5, GS base 6, kernel GS base 7.
        use crate::control::valid;
        let bits = [
            valid::CR0,
            valid::CR2,
            valid::CR3,
            valid::CR4,
            valid::EFER,
            valid::FS_BASE,
            valid::GS_BASE,
            valid::KERNEL_GS_BASE,
        ];
        for (bit, mask) in bits.into_iter().enumerate() {
            assert_eq!(mask, 1 << bit);
        }
    }
}
