//! The serial console on COM1 (I/O port 0x3F8), 115200 8N1, polled.
//!
//! Every CPU prints, in any context (NMI and panic path included), so the
//! console's lock is a *bounded* try: [`print`] waits a limited number of
//! turns for the CPU that holds it, then writes anyway (lines may
//! interleave, nothing ever deadlocks; a CPU stopped while printing cannot
//! silence the panic path). Sending a byte waits (bounded) for the
//! transmitter to be empty.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::instructions::port::Port;

/// COM1's base port.
const COM1: u16 = 0x3F8;
/// Turns of the wait for the transmit holding register to be empty before a
/// byte is written anyway (QEMU's UART is always ready).
const TRANSMIT_WAIT: u32 = 100_000;
/// How long a CPU waits for the console lock before printing without it,
/// in microseconds (a time, not a number of turns: under a paravirtual KVM
/// a turn of the spin costs a VM exit, and a million turns took seconds
/// per line while a stopped CPU held the lock).
const LOCK_WAIT_US: u64 = 20_000;

/// Whether some CPU is printing.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Program COM1: 115200 baud (divisor 1), 8 data bits, no parity, one stop
/// bit, FIFOs on, interrupts off. Called once by the BSP before any output.
pub fn init() {
    const SETUP: [(u16, u8); 7] = [
        (1, 0x00), // interrupts off
        (3, 0x80), // DLAB on
        (0, 0x01), // divisor low: 115200 baud
        (1, 0x00), // divisor high
        (3, 0x03), // 8N1, DLAB off
        (2, 0xC7), // FIFOs on, cleared, 14-byte threshold
        (4, 0x03), // DTR, RTS
    ];
    for (offset, value) in SETUP {
        let mut port: Port<u8> = Port::new(COM1 + offset);
        // SAFETY: COM1's registers; only this module touches ports
        // 0x3F8..0x3FF, and `init` runs once on the BSP before any output.
        unsafe { port.write(value) };
    }
}

fn write_byte(byte: u8) {
    let mut status: Port<u8> = Port::new(COM1 + 5);
    let mut data: Port<u8> = Port::new(COM1);
    for _ in 0..TRANSMIT_WAIT {
        // SAFETY: reads COM1's line status register; no side effect.
        if unsafe { status.read() } & 0x20 != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: writes one byte to COM1's transmit register; callers hold the
    // console lock or gave up waiting for it (then lines may interleave).
    unsafe { data.write(byte) };
}

/// A `core::fmt::Write` into COM1 (`\n` becomes `\r\n`).
#[derive(Debug)]
pub struct Serial;

impl Write for Serial {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                write_byte(b'\r');
            }
            write_byte(byte);
        }
        Ok(())
    }
}

/// Print `arguments` under the console lock (bounded, see the module docs).
pub fn print(arguments: fmt::Arguments<'_>) {
    let mut locked = false;
    let deadline = crate::time::tsc_after_us(LOCK_WAIT_US);
    while !crate::time::tsc_passed(deadline) {
        // Acquire: pairs with the Release store below, so this CPU's output
        // starts after the previous holder's bytes went out.
        if BUSY
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            locked = true;
            break;
        }
        core::hint::spin_loop();
    }
    let _ = Serial.write_fmt(arguments);
    if locked {
        // Release: publishes this CPU's bytes before the next holder's.
        BUSY.store(false, Ordering::Release);
    }
}

/// `print!` to COM1.
#[macro_export]
macro_rules! print {
    ($($argument:tt)*) => { $crate::serial::print(format_args!($($argument)*)) };
}

/// `println!` to COM1.
#[macro_export]
macro_rules! println {
    () => { $crate::serial::print(format_args!("\n")) };
    ($($argument:tt)*) => {
        $crate::serial::print(format_args!("{}\n", format_args!($($argument)*)))
    };
}
