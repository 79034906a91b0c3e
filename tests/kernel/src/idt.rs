//! The test kernel's IDT entries (kernel-base owns the table, loads it on
//! every CPU and adds the APIC's spurious vector 0xFF):
//!
//! | vector | stub | handler does |
//! |--------|------|--------------|
//! | #DF 8, #MC 18 | crashkit's (`K::install_entries`), IST 1 and 2 | panic through `panic_in_exception` (#MC in a machine-check context) |
//! | NMI 2 | this kernel's `nmi_entry_stub!`, IST 0 | [`crate::crash::on_nmi`]: count the NMI, then crashkit's NMI entry (NMI context, handler chain; the shootdown's stop handler in its emergency slot at panic time) |
//! | #DE 0, #UD 6, #NP 11, #SS 12, #GP 13, #PF 14 | current stack | panic through `panic_in_exception` (a kernel bug) |
//! | 0x20-0x2F | `nmi_entry_stub!`, current stack | the 8259 PICs' IRQs 0-15 (kernel-base remaps them there): [`crate::scenario::on_pic_irq`] counts them and ends them (EOI); the `pic-timer` scenario unmasks IRQ 0 |
//! | #UD 6 in `deep-nesting` | (the #UD entry above) | that scenario's nesting levels 2-5 on cpu 1 (raised with `ud2`, each inside the last; see `scenario`) |
//!
//! Every other vector is absent: no other maskable interrupt source is
//! enabled (the PICs masked unless a scenario unmasks a line, the local
//! APIC's timer, error and performance-counter entries left masked).

use crashkit::nmi::arch::x86_64::entry::{self, InstallError};
use crashkit::prelude::*;
use kernel_base::NMI_IST;
use x86_64::structures::idt::InterruptDescriptorTable;

use crate::crash::{self, K};

crashkit::nmi_entry_stub!(fn nmi_stub => on_nmi);
crashkit::nmi_entry_stub!(fn divide_error_stub => on_divide_error);
crashkit::nmi_entry_stub!(fn invalid_opcode_stub => on_invalid_opcode);
crashkit::nmi_entry_stub_with_error_code!(fn segment_not_present_stub => on_segment_not_present);
crashkit::nmi_entry_stub_with_error_code!(fn stack_segment_stub => on_stack_segment);
crashkit::nmi_entry_stub_with_error_code!(fn general_protection_stub => on_general_protection);
crashkit::nmi_entry_stub_with_error_code!(fn page_fault_stub => on_page_fault);

/// The PICs' 16 IRQ stubs (vectors 0x20-0x2F), each calling
/// `scenario::on_pic_irq` with its IRQ number.
macro_rules! pic_stubs {
    ($($irq:literal => $stub:ident, $handler:ident;)*) => {
        $(
            crashkit::nmi_entry_stub!(fn $stub => $handler);
            extern "C" fn $handler(_frame: &mut RegisterFrame) {
                crate::scenario::on_pic_irq($irq);
            }
        )*
        /// The stubs, by IRQ.
        const PIC_STUBS: [unsafe extern "C" fn(); 16] = [$($stub),*];
    };
}

pic_stubs! {
    0 => pic_stub_0, on_pic_0;
    1 => pic_stub_1, on_pic_1;
    2 => pic_stub_2, on_pic_2;
    3 => pic_stub_3, on_pic_3;
    4 => pic_stub_4, on_pic_4;
    5 => pic_stub_5, on_pic_5;
    6 => pic_stub_6, on_pic_6;
    7 => pic_stub_7, on_pic_7;
    8 => pic_stub_8, on_pic_8;
    9 => pic_stub_9, on_pic_9;
    10 => pic_stub_10, on_pic_10;
    11 => pic_stub_11, on_pic_11;
    12 => pic_stub_12, on_pic_12;
    13 => pic_stub_13, on_pic_13;
    14 => pic_stub_14, on_pic_14;
    15 => pic_stub_15, on_pic_15;
}

extern "C" fn on_nmi(frame: &mut RegisterFrame) {
    crash::on_nmi(frame);
}

extern "C" fn on_divide_error(frame: &mut RegisterFrame) {
    crash::fatal_exception("divide error", frame, None);
}

extern "C" fn on_invalid_opcode(frame: &mut RegisterFrame) {
    // The `deep-nesting` scenario's levels 2-5 are `ud2`s; any other #UD
    // is a kernel bug.
    if !crate::scenario::nest_on_invalid_opcode() {
        crash::fatal_exception("invalid opcode", frame, None);
    }
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

/// Fill the IDT (kernel-base's `idt::build` calls this once, on the BSP,
/// before any CPU loads the table).
pub fn fill(idt: &mut InterruptDescriptorTable) -> Result<(), InstallError> {
    // SAFETY: kernel-base's TSS gives every CPU its own stacks in IST slots
    // 0-2 for NMI, #DF and #MC (IstSlots::DEFAULT), and the table is not
    // loaded yet.
    unsafe { K::install_entries(idt, &IstSlots::DEFAULT)? };
    // SAFETY: (all installs) each stub comes from the macro matching its
    // vector's error-code behaviour (no code: NMI, #DE, #UD; a code: #NP,
    // #SS, #GP, #PF; none for the PICs' vectors 0x20-0x2F, external
    // interrupts); the NMI's IST slot holds a per-CPU stack reserved
    // for it (replacing crashkit's own NMI stub there, on the same stack);
    // the table is not loaded yet.
    unsafe {
        entry::install(&mut idt.non_maskable_interrupt, nmi_stub, Some(NMI_IST))?;
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
        for (irq, stub) in PIC_STUBS.into_iter().enumerate() {
            let vector = kernel_base::pic::MASTER_VECTOR + irq as u8;
            entry::install(&mut idt[vector], stub, None)?;
        }
    }
    Ok(())
}
