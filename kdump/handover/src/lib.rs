//! The hand-over from a crashed kernel to its capture kernel
//! (docs/kdump.md, "The hand-over"): its ABI, what is prepared at load time,
//! and the crash path's last steps.
//!
//! At load time, after `crashkit_kdump_load::load` has copied the capture
//! image into the reservation, [`prepare`] writes the **control area** (the
//! reservation's last 64 KiB): the **hand-over block** ([`HandOver`]), the
//! memory map to dump, VMCOREINFO, page tables that identity-map the
//! reservation, a 12-byte trampoline and the entry stack. The kernel then
//! [`arms`](Capture::arm) its [`Capture`] slot with the [`Ready`] that
//! `prepare` returns.
//!
//! At the crash, the panic path's dump step calls [`Capture::hand_over`]:
//! the image's SHA-256 and the control area's CRC-32C are checked, the
//! local APIC is shut down, and the CPU jumps through the trampoline into
//! the capture kernel with the block's address in `rdi`. It returns only if
//! there is nothing to jump to, with the reason.
//!
//! The capture kernel reads the block back with [`HandOver::decode`] and the
//! memory map with [`memory_map::read`], which treat both as hostile bytes.
//!
//! | module | what |
//! |--------|------|
//! | [`block`] | the hand-over block: layout, encoding, checked decoding |
//! | [`memory_map`] | the memory map's entries |
//! | `control` | the control area: [`prepare`] at load time, [`check`] at the crash |
//! | [`armed`] | [`Slot`]: a value published once to every CPU; [`Capture`] is the hand-over's |
//! | `enter` | the crash-time shutdown and jump (x86_64) |
//!
//! Built with `--cfg loom` (the model of [`Slot`]), only `armed` is
//! compiled, and none of the dependencies.
//!
//! # Invariants
//! - Nothing allocates; the crash-time half takes no lock, waits for
//!   nothing and returns its failure rather than panicking.
//! - The block and control area are written only at load time; the crash
//!   path only reads them.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod armed;
#[cfg(not(loom))]
pub mod block;
#[cfg(not(loom))]
mod control;
#[cfg(all(target_arch = "x86_64", not(loom)))]
mod enter;
#[cfg(not(loom))]
pub mod memory_map;

pub use armed::{AlreadyArmed, Slot};
#[cfg(not(loom))]
pub use block::{AfterDump, BlockError, Device, DumpFormat, HandOver, KernelImage, PciAddress};
#[cfg(not(loom))]
pub use control::{
    CONTROL_LEN, CheckError, PrepareError, Ready, Setup, TRAMPOLINE, check, prepare,
};

/// The prepared hand-over of one kernel (a `static`), armed once with what
/// [`prepare`] returned.
#[cfg(not(loom))]
pub type Capture = Slot<Ready>;

/// Why the hand-over did not happen (the panic path stores
/// [`code`](Self::code) in the record's `dump_detail`).
#[cfg(not(loom))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOverError {
    /// No capture kernel was armed (or arming had not finished).
    NotArmed,
    /// The reservation no longer holds what was prepared.
    Check(CheckError),
}

#[cfg(not(loom))]
impl HandOverError {
    /// The stored code (docs/kdump.md lists them): 1 not armed, 2 the
    /// reservation's mapping is wrong, 3 the image changed, 4 the control
    /// area changed.
    pub const fn code(self) -> u32 {
        match self {
            Self::NotArmed => 1,
            Self::Check(CheckError::BadMapping) => 2,
            Self::Check(CheckError::ImageChanged) => 3,
            Self::Check(CheckError::ControlChanged) => 4,
        }
    }
}
