//! Port I/O, for the few ports this crate drives: the PCI configuration
//! address and data ports (0xCF8, 0xCFC) and the CMOS index and data
//! ports (0x70, 0x71).

/// Write a byte to `port`.
pub(crate) fn outb(port: u16, value: u8) {
    // SAFETY: port I/O in ring 0 (the crate's contract); the callers use
    // the CMOS index port only, which touches no memory.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Read a byte from `port`.
pub(crate) fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as in `outb`; the CMOS data port, no effect on memory.
    unsafe {
        core::arch::asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Write a double word to `port`.
pub(crate) fn outl(port: u16, value: u32) {
    // SAFETY: port I/O in ring 0 to the PCI configuration address and data
    // ports; configuration space is not memory the program uses.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Read a double word from `port`.
pub(crate) fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as in `outl`.
    unsafe {
        core::arch::asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}
