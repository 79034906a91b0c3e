//! CPU indices: the toolkit's name for "which CPU".
//!
//! Every per-CPU table in crashkit is an array indexed by a dense CPU index in
//! `0..cpu_count`. How an index maps to hardware (an APIC ID, a thread of the
//! host simulation) is the [`Platform`](crate::Platform)'s business.
//!
//! Per-CPU tables are always read with `get`-style bounds checks, never with
//! `[]`: an out-of-range index (a CPU without an index, a corrupted value on
//! the crash path) must become a recorded error, not a panic.
//!
//! **A CPU without an index** is one the platform cannot name: on x86_64, a
//! CPU the kernel started but has not brought online (its APIC ID is not
//! registered); in the host simulation, a thread that is not one of the
//! machine's CPUs. [`Platform::current_cpu`](crate::Platform::current_cpu)
//! returns [`CpuIndex::UNKNOWN`] for it, and every crate asks
//! [`CpuIndex::is_unknown`]; nothing else spells the value. (The crash
//! record stores an owner without an index with a code of its own, its
//! format's business: `crashkit-record` translates.)

/// A dense CPU index in `0..cpu_count`, or [`CpuIndex::UNKNOWN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuIndex(pub u32);

impl CpuIndex {
    /// The index of a CPU without an index (see the module docs): what
    /// [`Platform::current_cpu`](crate::Platform::current_cpu) returns on a
    /// CPU it cannot name. No CPU has it: it is past every per-CPU table.
    pub const UNKNOWN: Self = Self(u32::MAX);

    /// Whether this is [`UNKNOWN`](Self::UNKNOWN): the calling CPU had no
    /// index.
    pub const fn is_unknown(self) -> bool {
        self.0 == Self::UNKNOWN.0
    }

    /// The index as a `usize`, for indexing per-CPU tables with `get`.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

/// A kernel's CPU number that cannot be a [`CpuIndex`]: it does not fit the
/// index's `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuIndexOutOfRange(pub usize);

impl core::fmt::Display for CpuIndexOutOfRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CPU number {} does not fit a CPU index (u32)", self.0)
    }
}

impl core::error::Error for CpuIndexOutOfRange {}

/// A kernel's CPU number (usually a `usize`) as an index: checked, since an
/// index is a `u32`. Whether it is below the kernel's CPU capacity is
/// checked where the index is used (`cpu_online` refuses one that is not).
impl TryFrom<usize> for CpuIndex {
    type Error = CpuIndexOutOfRange;

    fn try_from(cpu: usize) -> Result<Self, Self::Error> {
        u32::try_from(cpu)
            .map(CpuIndex)
            .map_err(|_| CpuIndexOutOfRange(cpu))
    }
}

impl From<u32> for CpuIndex {
    fn from(cpu: u32) -> Self {
        CpuIndex(cpu)
    }
}

impl From<CpuIndex> for usize {
    fn from(cpu: CpuIndex) -> Self {
        cpu.as_usize()
    }
}

impl core::fmt::Display for CpuIndex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_unknown() {
            f.write_str("a CPU without an index")
        } else {
            write!(f, "cpu{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernels_cpu_number_converts_when_it_fits() {
        assert_eq!(CpuIndex::try_from(0usize), Ok(CpuIndex(0)));
        assert_eq!(CpuIndex::try_from(7usize), Ok(CpuIndex(7)));
        assert_eq!(
            CpuIndex::try_from(u32::MAX as usize),
            Ok(CpuIndex(u32::MAX))
        );
        assert_eq!(usize::from(CpuIndex(5)), 5);
        assert_eq!(CpuIndex::from(3u32), CpuIndex(3));
    }

    #[test]
    fn unknown_is_one_value_past_every_table() {
        assert!(CpuIndex::UNKNOWN.is_unknown());
        assert!(!CpuIndex(0).is_unknown());
        assert!(!CpuIndex(u32::MAX - 1).is_unknown());
        // Past any per-CPU table a kernel can declare.
        assert_eq!(CpuIndex::UNKNOWN.as_usize(), u32::MAX as usize);
        assert_eq!(CpuIndex(2).to_string(), "cpu2");
        assert_eq!(CpuIndex::UNKNOWN.to_string(), "a CPU without an index");
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_cpu_number_past_u32_is_an_error_not_a_truncation() {
        let too_big = u32::MAX as usize + 1;
        assert_eq!(
            CpuIndex::try_from(too_big),
            Err(CpuIndexOutOfRange(too_big))
        );
        assert_eq!(
            CpuIndexOutOfRange(too_big).to_string(),
            "CPU number 4294967296 does not fit a CPU index (u32)"
        );
    }
}
