//! The IDT every CPU loads: filled once by the kernel on the boot CPU
//! ([`build`]), with the APIC's spurious vector 0xFF added here, then
//! loaded by each CPU as it comes up ([`crate::start_cpus`]).
//!
//! Vectors the kernel leaves empty stay absent: a CPU that takes one
//! double-faults (and the #DF entry, if the kernel installed one, reports
//! it).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

/// The IDT, in a cell: written once by [`build`] before any CPU loads it.
struct Idt(UnsafeCell<InterruptDescriptorTable>);

// SAFETY: written only by `build`, which runs once (checked by `BUILT`)
// before `start_cpus` loads the table on any CPU; afterwards only read (by
// the CPUs' IDT walks and `load`).
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new(InterruptDescriptorTable::new()));
/// Set once `build` has run.
static BUILT: AtomicBool = AtomicBool::new(false);

/// The spurious-interrupt vector's stub: nothing to do, no EOI.
///
/// Safety of the body: the CPU enters it through an interrupt gate for a
/// vector without error code, so `rsp` points at the hardware frame and
/// `iretq` returns to the interrupted code with every register untouched.
#[unsafe(naked)]
unsafe extern "C" fn spurious_stub() {
    core::arch::naked_asm!("iretq")
}

/// Fill the IDT: `fill` writes the kernel's entries, then vector 0xFF gets
/// the spurious stub. Boot CPU only, before [`crate::start_cpus`]. A failure
/// of `fill`, or a second call, ends the boot ([`crate::fail`]).
pub fn build<E: core::fmt::Debug>(
    fill: impl FnOnce(&mut InterruptDescriptorTable) -> Result<(), E>,
) {
    // Relaxed: only the boot CPU runs here; the flag guards against a
    // second call, not against a concurrent one.
    if BUILT.swap(true, Ordering::Relaxed) {
        crate::fail(format_args!("the IDT is built already"));
    }
    // SAFETY: the first and only call (above), before any CPU loads the
    // table (`start_cpus` loads it after this returns): this is the only
    // reference to it.
    let idt = unsafe { &mut *IDT.0.get() };
    if let Err(error) = fill(idt) {
        crate::fail(format_args!("filling the IDT: {error:?}"));
    }
    // SAFETY: the stub only returns, which is valid for a vector without
    // error code; the table is not loaded yet.
    unsafe {
        idt[0xFF].set_handler_addr(VirtAddr::new_truncate(
            spurious_stub as *const () as usize as u64,
        ));
    }
}

/// Load the IDT on the calling CPU.
///
/// # Safety
/// The calling CPU's TSS holds its IST stacks (`cpu::init_current`).
pub(crate) unsafe fn load() {
    // SAFETY: after `build` the table is only read; it lives in a static.
    let idt: &'static InterruptDescriptorTable = unsafe { &*IDT.0.get() };
    idt.load();
}
