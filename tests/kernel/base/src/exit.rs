//! Leaving QEMU through `isa-debug-exit` (`-device
//! isa-debug-exit,iobase=0xf4,iosize=0x04`): writing `v` to port 0xf4 exits
//! QEMU with status `(v << 1) | 1`.
//!
//! | code | QEMU status | meaning for the runner |
//! |------|-------------|------------------------|
//! | [`ExitCode::Ran`] 0x10 | 33 | the scenario ran as designed (for a crash scenario: the panic path reached its final action); the runner then checks the crash record |
//! | [`ExitCode::Failed`] 0x11 | 35 | the kernel itself found a failure (bring-up failed, unknown scenario, a panic a scenario did not ask for, ...); serial says what |
//! | (triple fault) | 0 with `-no-reboot` | failure |
//! | (hang) | killed by the runner's timeout | failure |

use x86_64::instructions::port::Port;

/// The `isa-debug-exit` I/O port.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What the kernel tells the runner when it leaves QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The scenario ran as designed (QEMU status 33).
    Ran = 0x10,
    /// The kernel found a failure (QEMU status 35).
    Failed = 0x11,
}

/// Exit QEMU with `code`. If the exit device is missing the write does
/// nothing: the CPU then halts for good and the runner's timeout reports it.
pub fn exit(code: ExitCode) -> ! {
    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is the isa-debug-exit device in every QEMU command
    // line the runner uses; without it the write goes nowhere (no other
    // device is at 0xf4 on q35 or pc). Nothing else in the kernel uses it.
    unsafe { port.write(code as u32) };
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}
