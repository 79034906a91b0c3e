//! The crash path's last steps (docs/kdump.md, "At the crash"): check,
//! shut the local APIC down, jump.

use crashkit_nmi::arch::x86_64::LocalApic;

use crate::HandOverError;
use crate::control::{Ready, check};

impl crate::Capture {
    /// Hand over to the armed capture kernel: check the reservation
    /// (image SHA-256, control-area CRC-32C), shut the calling CPU's local
    /// APIC down, and jump through the trampoline. Returns only if there
    /// is nothing to jump to, saying why; the APIC is then untouched.
    ///
    /// Called by the panic path's dump step (the facade's `dump:` hook) in
    /// ring 0, interrupts off, the other CPUs stopped: the contract of
    /// [`arm`](Self::arm), without which nothing is armed and this returns
    /// [`HandOverError::NotArmed`]. Bounded: the checks read the image and
    /// the control area once.
    pub fn hand_over(&self, apic: &LocalApic) -> HandOverError {
        let Some(ready) = self.ready() else {
            return HandOverError::NotArmed;
        };
        let Ok(len) = usize::try_from(ready.loaded.reservation.len) else {
            return HandOverError::Check(crate::CheckError::BadMapping);
        };
        #[allow(unsafe_code)]
        // SAFETY: `arm`'s contract (1): the reservation is mapped readable
        // and contiguous at `reservation_virt` for the kernel's life and
        // nothing writes it, so these `len` bytes are valid for reads and
        // not mutated while the slice lives. The load-time writers
        // (`crashkit_kdump_load::load`, `prepare`) ran before `arm`.
        let reservation = unsafe {
            core::slice::from_raw_parts(
                core::ptr::with_exposed_provenance::<u8>(ready.reservation_virt as usize),
                len,
            )
        };
        if let Err(error) = check(&ready, reservation) {
            return HandOverError::Check(error);
        }
        apic.shut_down();
        #[allow(unsafe_code)]
        // SAFETY: `arm`'s contract (2): ring 0, interrupts off, the other
        // CPUs stopped; the reservation was just checked to hold the image
        // and control area `prepare` wrote for `ready`.
        unsafe {
            jump(&ready)
        }
    }
}

/// Keep CR0, CR3 and CR4 in r9, r10 and r11 for the capture kernel (the
/// panicking CPU's control state in the dump), clear CR4.PGE (flushing
/// global TLB entries, which a CR3 write keeps), then jump to the
/// trampoline at its virtual address with the entry registers loaded (see
/// `control::TRAMPOLINE`, which leaves r9-r11 alone).
///
/// # Safety
/// Ring 0, interrupts off; `ready` describes a checked control area whose
/// trampoline page is mapped executable at `ready.trampoline_virt`.
#[allow(unsafe_code)]
unsafe fn jump(ready: &Ready) -> ! {
    // SAFETY: the caller's contract. CR4.PGE off and on again is the SDM's
    // way to flush global translations (vol. 3A 4.10.4.1); leaving it off
    // is harmless, the capture kernel sets its own CR4. Nothing after the
    // jump uses this kernel's stack or memory; the trampoline loads CR3
    // and RSP from rsi and rcx and jumps to rdx with rdi kept.
    unsafe {
        core::arch::asm!(
            "cli",
            "mov r9, cr0",
            "mov r10, cr3",
            "mov rax, cr4",
            "mov r11, rax",
            "btr rax, 7",
            "mov cr4, rax",
            "jmp r8",
            in("rdi") ready.block,
            in("rsi") ready.page_tables,
            in("rdx") ready.loaded.entry,
            in("rcx") ready.stack_top,
            in("r8") ready.trampoline_virt,
            options(noreturn, nostack),
        )
    }
}
