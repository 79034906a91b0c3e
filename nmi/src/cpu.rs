//! CPU indices: the toolkit's name for "which CPU".
//!
//! Every per-CPU table in crashkit is an array indexed by a dense CPU index in
//! `0..cpu_count`. How an index maps to hardware (an APIC ID, a thread of the
//! host simulation) is the [`Platform`](crate::Platform)'s business.
//!
//! Per-CPU tables are always read with [`CpuIndex::get`]-style bounds checks,
//! never with `[]`: an out-of-range index (an unregistered CPU, a corrupted
//! value on the crash path) must become a recorded error, not a panic.

/// A dense CPU index in `0..cpu_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuIndex(pub u32);

impl CpuIndex {
    /// The index as a `usize`, for indexing per-CPU tables with `get`.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl core::fmt::Display for CpuIndex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}
