//! The PC hardware a dump writer drives, shared by the capture kernel
//! (`crashkit-capture`) and the in-place writer that runs in the crashed
//! kernel (`crashkit-kdump-fallback`): the same disk driver writes the same
//! device whichever of them writes the dump.
//!
//! | module | what |
//! |--------|------|
//! | [`pci`] | configuration space: mechanism #1 (ports 0xCF8/0xCFC) or ECAM |
//! | [`virtio`] | the virtio-blk disk ([`virtio::open`]) as a `SectorDevice`, its DMA pool |
//! | [`clock`] | seconds since 1970 from the CMOS real-time clock |
//! | [`id`] | a dump id from RDRAND, the TSC and the boot id |
//!
//! Everything here runs in ring 0 on x86_64 with interrupts off, polls
//! (no interrupt is ever enabled), allocates nothing and waits a bounded
//! time. The host build compiles it (the workspace's tests link it) but
//! runs only the pure parts ([`clock::unix_seconds`]).

#![no_std]

pub mod clock;
pub mod id;
pub mod pci;
mod port;
pub mod virtio;
