//! The console: COM1 (I/O port 0x3F8), 115200 8N1, polled. The capture
//! kernel prints every step here; QEMU's `-serial` shows it.

use core::fmt;

const COM1: u16 = 0x3F8;

/// Write `value` to I/O port `port`.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O in ring 0; the ports written are COM1's, the PCI
    // configuration address and data ports, the CMOS index port, the reset
    // ports: none touches memory.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Read I/O port `port`.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as in `outb`; reads have no effect on memory.
    unsafe {
        core::arch::asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// COM1.
#[derive(Debug)]
pub struct Serial;

impl Serial {
    /// Program COM1: 115200 baud (divisor 1), 8N1, FIFOs on, interrupts off.
    pub fn init() {
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x80);
        outb(COM1, 0x01);
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03);
        outb(COM1 + 2, 0xC7);
        outb(COM1 + 4, 0x03);
    }

    fn put(byte: u8) {
        // Bounded wait for the transmit holding register (line status bit
        // 5); a missing UART must not hang the capture.
        for _ in 0..100_000 {
            if inb(COM1 + 5) & 0x20 != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        outb(COM1, byte);
    }
}

impl fmt::Write for Serial {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                Self::put(b'\r');
            }
            Self::put(byte);
        }
        Ok(())
    }
}

/// `println!` on COM1.
#[macro_export]
macro_rules! println {
    ($($argument:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::serial::Serial, format_args!($($argument)*));
        let _ = core::fmt::Write::write_str(&mut $crate::serial::Serial, "\n");
    }};
}
