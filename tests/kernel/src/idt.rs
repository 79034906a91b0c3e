//! The IDT, shared by every CPU: NMI, #DF and #MC through the NMI core's
//! entry stubs on IST stacks (see [`crate::cpu`]), the other CPU exceptions
//! a kernel bug would raise on the current stack, and the APIC's spurious
//! vector 0xFF.
//!
//! | vector | stub | handler does |
//! |--------|------|--------------|
//! | NMI 2 | `nmi_entry_stub!`, IST [`NMI_IST`] | [`crate::crash::on_nmi`]: NMI context, handler chain (the shootdown's stop handler in its emergency slot at panic time) |
//! | #DF 8 | `nmi_entry_stub_with_error_code!`, IST [`DOUBLE_FAULT_IST`] | panic through `panic_in_exception` |
//! | #MC 18 | `nmi_entry_stub!`, IST [`MACHINE_CHECK_IST`] | machine-check context, panic through `panic_in_exception` |
//! | #DE 0, #UD 6, #NP 11, #SS 12, #GP 13, #PF 14 | current stack | panic through `panic_in_exception` (a kernel bug) |
//! | 0x40-0x43 | `nmi_entry_stub!`, current stack | the `deep-nesting` scenario's nesting levels 2-5 (raised with `int`) |
//! | 0xFF | returns at once | spurious APIC interrupts need no EOI |
//!
//! Every other vector is absent: no maskable interrupt source is enabled
//! (PIC masked, local APIC LVT entries masked).

use core::cell::UnsafeCell;

use crashkit_nmi::RegisterFrame;
use crashkit_nmi::arch::x86_64::entry::{self, InstallError};
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

use crate::cpu::{DOUBLE_FAULT_IST, MACHINE_CHECK_IST, NMI_IST};
use crate::crash;

/// The IDT, in a cell: written once by the BSP before any CPU loads it.
struct Idt(UnsafeCell<InterruptDescriptorTable>);

// SAFETY: written only by `build`, whose contract says no CPU has loaded the
// table yet; afterwards only read (by the CPUs' IDT walks and `load`).
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new(InterruptDescriptorTable::new()));

crashkit_nmi::nmi_entry_stub!(fn nmi_stub => on_nmi);
crashkit_nmi::nmi_entry_stub_with_error_code!(fn double_fault_stub => on_double_fault);
crashkit_nmi::nmi_entry_stub!(fn machine_check_stub => on_machine_check);
crashkit_nmi::nmi_entry_stub!(fn divide_error_stub => on_divide_error);
crashkit_nmi::nmi_entry_stub!(fn invalid_opcode_stub => on_invalid_opcode);
crashkit_nmi::nmi_entry_stub_with_error_code!(fn segment_not_present_stub => on_segment_not_present);
crashkit_nmi::nmi_entry_stub_with_error_code!(fn stack_segment_stub => on_stack_segment);
crashkit_nmi::nmi_entry_stub_with_error_code!(fn general_protection_stub => on_general_protection);
crashkit_nmi::nmi_entry_stub_with_error_code!(fn page_fault_stub => on_page_fault);

crashkit_nmi::nmi_entry_stub!(fn nest_stub_0 => on_nest_0);
crashkit_nmi::nmi_entry_stub!(fn nest_stub_1 => on_nest_1);
crashkit_nmi::nmi_entry_stub!(fn nest_stub_2 => on_nest_2);
crashkit_nmi::nmi_entry_stub!(fn nest_stub_3 => on_nest_3);

/// First of the software-interrupt vectors the `deep-nesting` scenario
/// raises with `int` (one per nesting level above the NMI).
pub const NEST_VECTOR: u8 = 0x40;

/// The spurious-interrupt vector's stub: nothing to do, no EOI.
///
/// Safety of the body: the CPU enters it through an interrupt gate for a
/// vector without error code, so `rsp` points at the hardware frame and
/// `iretq` returns to the interrupted code with every register untouched.
#[unsafe(naked)]
unsafe extern "C" fn spurious_stub() {
    core::arch::naked_asm!("iretq")
}

extern "C" fn on_nmi(frame: &mut RegisterFrame) {
    crash::on_nmi(frame);
}

extern "C" fn on_nest_0(_frame: &mut RegisterFrame) {
    crate::scenario::nest_level(2);
}

extern "C" fn on_nest_1(_frame: &mut RegisterFrame) {
    crate::scenario::nest_level(3);
}

extern "C" fn on_nest_2(_frame: &mut RegisterFrame) {
    crate::scenario::nest_level(4);
}

extern "C" fn on_nest_3(_frame: &mut RegisterFrame) {
    crate::scenario::nest_level(5);
}

extern "C" fn on_double_fault(frame: &mut RegisterFrame) {
    crash::fatal_exception("double fault", frame, None);
}

extern "C" fn on_machine_check(frame: &mut RegisterFrame) {
    crash::on_machine_check(frame);
}

extern "C" fn on_divide_error(frame: &mut RegisterFrame) {
    crash::fatal_exception("divide error", frame, None);
}

extern "C" fn on_invalid_opcode(frame: &mut RegisterFrame) {
    crash::fatal_exception("invalid opcode", frame, None);
}

extern "C" fn on_segment_not_present(frame: &mut RegisterFrame) {
    crash::fatal_exception("segment not present", frame, None);
}

extern "C" fn on_stack_segment(frame: &mut RegisterFrame) {
    crash::fatal_exception("stack-segment fault", frame, None);
}

extern "C" fn on_general_protection(frame: &mut RegisterFrame) {
    crash::fatal_exception("general protection fault", frame, None);
}

extern "C" fn on_page_fault(frame: &mut RegisterFrame) {
    let address = x86_64::registers::control::Cr2::read_raw();
    crash::fatal_exception("page fault", frame, Some(address));
}

/// Fill the IDT.
///
/// # Safety
/// Called once, by the BSP, before any CPU loads the IDT ([`load`]); the
/// calling CPU's TSS has the IST stacks (`cpu::init_current`) before it
/// loads the IDT.
pub unsafe fn build() -> Result<(), InstallError> {
    // SAFETY: the caller guarantees that no CPU uses the table yet and that
    // this runs once: this is the only reference to it.
    let idt = unsafe { &mut *IDT.0.get() };
    // SAFETY: (all installs) each stub comes from the macro matching its
    // vector's error-code behaviour (no code: NMI, #MC, #DE, #UD; a code:
    // #DF, #NP, #SS, #GP, #PF; none for the software vectors 0x40-0x43,
    // only ever raised by `int`); IST slots 0-2 hold per-CPU stacks reserved
    // for NMI, #DF and #MC respectively (`cpu` module), which cannot nest
    // into each other's stack; the table is not loaded yet. The spurious
    // vector's stub only returns, valid for a vector without error code.
    unsafe {
        entry::install(&mut idt.non_maskable_interrupt, nmi_stub, Some(NMI_IST))?;
        entry::install(
            &mut idt.double_fault,
            double_fault_stub,
            Some(DOUBLE_FAULT_IST),
        )?;
        entry::install(
            &mut idt.machine_check,
            machine_check_stub,
            Some(MACHINE_CHECK_IST),
        )?;
        entry::install(&mut idt.divide_error, divide_error_stub, None)?;
        entry::install(&mut idt.invalid_opcode, invalid_opcode_stub, None)?;
        entry::install(&mut idt.segment_not_present, segment_not_present_stub, None)?;
        entry::install(&mut idt.stack_segment_fault, stack_segment_stub, None)?;
        entry::install(
            &mut idt.general_protection_fault,
            general_protection_stub,
            None,
        )?;
        entry::install(&mut idt.page_fault, page_fault_stub, None)?;
        for (offset, stub) in [nest_stub_0, nest_stub_1, nest_stub_2, nest_stub_3]
            .into_iter()
            .enumerate()
        {
            let vector = NEST_VECTOR + offset as u8;
            entry::install(&mut idt[vector], stub, None)?;
        }
        idt[0xFF].set_handler_addr(VirtAddr::new_truncate(
            spurious_stub as *const () as usize as u64,
        ));
    }
    Ok(())
}

/// Load the IDT on the calling CPU.
///
/// # Safety
/// [`build`] ran before, and the calling CPU's TSS holds its IST stacks.
pub unsafe fn load() {
    // SAFETY: after `build` the table is only read; it lives in a static.
    let idt: &'static InterruptDescriptorTable = unsafe { &*IDT.0.get() };
    idt.load();
}
