//! [`reset`]: a final action for `final_action: reboot(crashkit::reset)` on
//! PC-compatible x86_64 machines (QEMU's `pc` and `q35` included), so that a
//! crashed kernel restarts instead of halting.
//!
//! Three ways, each tried only if the one before did not take effect:
//!
//! | step | what | where it works |
//! |------|------|----------------|
//! | 1 | the 8042 keyboard controller's "pulse reset line" command, `0xFE` to port `0x64`, once its input buffer is empty (a bounded wait) | PCs with an 8042 or its emulation; QEMU's `pc` and `q35` |
//! | 2 | the reset control register at port `0xCF9`: `0x02` (system reset armed), then `0x06` (hard reset) | Intel PIIX/ICH chipsets and most since; QEMU's `q35` (ICH9) and `pc` (PIIX3) |
//! | 3 | a triple fault: an empty IDT, then `int3` (a #GP for want of a gate, then a double fault, then the CPU resets) | every x86 CPU |
//!
//! Under QEMU, run with `-no-reboot`: the reset then ends QEMU (status 0)
//! instead of booting the kernel again. The test kernel's `reset` scenario
//! ends this way, and the runner checks it.

use x86_64::VirtAddr;
use x86_64::instructions::port::Port;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

/// The 8042's status register (read) and command register (write).
const KBC_STATUS_COMMAND: u16 = 0x64;
/// Status bit 1: the input buffer is full (the controller has not taken
/// the last byte yet).
const KBC_INPUT_FULL: u8 = 1 << 1;
/// The 8042 command that pulses the CPU's reset line.
const KBC_PULSE_RESET: u8 = 0xFE;
/// Turns of the wait for the 8042's input buffer (an absent controller
/// reads 0xFF: "full" for good, so the wait must end).
const KBC_WAIT_TURNS: u32 = 100_000;
/// The reset control register (PCI configuration mechanism's neighbour).
const RESET_CONTROL: u16 = 0xCF9;
/// Turns of a short pause between the attempts.
const SETTLE_TURNS: u32 = 1_000_000;

/// Reset the machine; never returns. Interrupts are turned off first. Safe
/// to call from the panic path (no lock, no allocation, bounded waits): it
/// only writes the reset ports of a PC (see the module docs), which reset
/// the machine or, where absent, do nothing.
pub fn reset() -> ! {
    x86_64::instructions::interrupts::disable();
    let mut kbc: Port<u8> = Port::new(KBC_STATUS_COMMAND);
    for _ in 0..KBC_WAIT_TURNS {
        // SAFETY: reading the 8042's status register has no side effect;
        // nothing else runs on this CPU, and a kernel resetting the machine
        // no longer cares what another CPU does with the controller.
        if unsafe { kbc.read() } & KBC_INPUT_FULL == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: 0xFE to port 0x64 asks the 8042 to pulse the reset line: the
    // machine resets, which is this function's purpose; without an 8042 the
    // write goes nowhere.
    unsafe { kbc.write(KBC_PULSE_RESET) };
    settle();
    let mut control: Port<u8> = Port::new(RESET_CONTROL);
    // SAFETY: the reset control register: 0x02 arms a system reset, 0x06
    // performs a hard one. It only resets the machine (or, absent, does
    // nothing).
    unsafe {
        control.write(0x02);
        control.write(0x06);
    }
    settle();
    let empty = DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::zero(),
    };
    // SAFETY: an IDT with no gate makes the next exception a triple fault,
    // which resets the CPU: that is the intent. Interrupts are off, and an
    // NMI arriving now also ends in the reset.
    unsafe {
        lidt(&empty);
        core::arch::asm!("int3", options(nomem, nostack));
    }
    loop {
        x86_64::instructions::hlt();
    }
}

/// A pause for a reset to take effect before the next attempt.
fn settle() {
    for _ in 0..SETTLE_TURNS {
        core::hint::spin_loop();
    }
}
