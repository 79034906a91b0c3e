//! The machine around the capture: halt and reset (the dump id and the
//! wall clock are `crashkit-kdump-pc`'s).

use crate::serial::outb;

/// Halt for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: interrupts stay off; HLT waits for an NMI or reset.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Reset the machine: the keyboard controller's pulse (command 0xFE on
/// port 0x64), then the reset control register (0x06 to port 0xCF9), then
/// a triple fault (an empty IDT and a breakpoint).
pub fn reset() -> ! {
    outb(0x64, 0xFE);
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
    outb(0xCF9, 0x02);
    outb(0xCF9, 0x06);
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
    let empty: [u8; 10] = [0; 10];
    // SAFETY: loading an empty IDT and raising #BP triple-faults the CPU,
    // which resets the machine; nothing runs after it.
    unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) empty.as_ptr(), options(nostack)) };
    halt()
}
