//! crashkit's crash log: what the kernel said just before it crashed, in
//! memory that survives into the dump.
//!
//! # Nomenclature
//! - The **area** ([`LogRings`]) is one `static`: a header (magic, version,
//!   the kernel's build-id, the clock, the geometry, a CRC-32C) and then
//!   one **ring** per CPU per **context** ([`LogContext`]).
//! - A **frame** is one message: a sequence number, a stamp, the bytes
//!   defmt produced for it, a CRC-32C and an end marker, encoded with
//!   rzCOBS ([`rzcobs`]) and ended by a `0x00`, so a reader resyncs after
//!   damage at the next zero.
//! - A **writer** is one `begin` / `write`* / `end` sequence on a ring
//!   ([`Ring`]); one writer owns a ring at a time, and a writer that finds
//!   it owned (re-entry in the same context) drops its message and counts
//!   it. No writer waits, allocates or panics.
//!
//! The rings are written by the kernel (`crashkit`'s defmt global logger,
//! feature `defmt`, or a kernel's own logger teeing into them) and read
//! from a dump by `crashkit log` through [`read`]. The layout is
//! [`layout`], documented byte by byte in docs/crash-log.md.

#![cfg_attr(not(test), no_std)]
// The rings are atomics and the reader plain bytes: no `unsafe` anywhere
// (one test views a ring's memory to check the copy against it).
#![deny(unsafe_code)]

mod area;
pub mod crc;
pub mod layout;
pub mod read;
mod ring;
pub mod rzcobs;

pub use area::LogRings;
pub use ring::{Begin, Ring};

/// Which of a CPU's rings a writer uses: the context it runs in.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogContext {
    /// Everything that is not NMI-like: threads, interrupt handlers and
    /// the panic path. crashkit's writer holds maskable interrupts off for
    /// one frame, so an interrupt handler never finds this ring half
    /// written by its own CPU.
    Normal = 0,
    /// NMIs, and debug traps on an IST stack.
    Nmi = 1,
    /// Machine checks.
    MachineCheck = 2,
}

impl LogContext {
    /// The contexts in ring order.
    pub const ALL: [Self; layout::CONTEXTS] = [Self::Normal, Self::Nmi, Self::MachineCheck];

    /// The context's name as the CLI prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Nmi => "nmi",
            Self::MachineCheck => "mce",
        }
    }
}
