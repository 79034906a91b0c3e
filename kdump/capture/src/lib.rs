//! The capture kernel's work as a library (docs/kdump.md, "The capture
//! kernel"): what `crashkit-capture` does after it has its own page tables,
//! console and device, for kernels that bring their own capture kernel.
//!
//! [`capture`] takes the checked hand-over block, the crash record, the
//! memory map and a way to read physical memory; builds one note per CPU of
//! the record (a CPU without saved registers, one that never answered the
//! shootdown, gets zeros, and the record in the dump says why); leaves the
//! reservation out; and streams the dump onto a [`SectorDevice`] in the
//! dump-device layout, the completion marker and the headers last.
//!
//! | module | what |
//! |--------|------|
//! | [`sector`] | [`SectorSink`]: byte writes onto 512-byte sectors, gathered into 128 KiB requests |
//! | `capture` | [`capture`], its [`Inputs`], [`Outcome`] and errors |
//!
//! `no_std`, no allocation (the large state is a [`Scratch`] the caller
//! keeps in a `static`); runs on the host in the tests over a memory image
//! and a file-like device.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod capture;
pub mod sector;

pub use capture::{
    CaptureError, EntryState, Inputs, MAX_CPUS, MAX_EXCLUSIONS, MAX_RANGES, Outcome, Scratch,
    capture, exclusions_to_apply, ranges_to_dump,
};
pub use sector::{SectorDevice, SectorError, SectorSink};
