//! What the integrator tells the writer: [`DumpPlan`] and its checks.

use crate::PAGE_SIZE;
use crate::notes::crashkit::ControlState;
use crate::notes::prstatus::Registers;

/// A physical address range, `[start, start + len)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl PhysRange {
    /// The range `[start, start + len)`.
    pub const fn new(start: u64, len: u64) -> Self {
        Self { start, len }
    }

    /// One past the last byte, `None` if that overflows.
    pub const fn end(&self) -> Option<u64> {
        self.start.checked_add(self.len)
    }

    /// Whether `inner` lies wholly in this range (never, if either wraps).
    pub const fn contains(&self, inner: &PhysRange) -> bool {
        match (self.end(), inner.end()) {
            (Some(end), Some(inner_end)) => inner.start >= self.start && inner_end <= end,
            _ => false,
        }
    }

    /// Whether the two ranges share a byte (a wrapping range shares all:
    /// the careful answer for a range read from hostile bytes).
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        match (self.end(), other.end()) {
            (Some(end), Some(other_end)) => self.start < other_end && other.start < end,
            _ => true,
        }
    }
}

/// The kernel image, written a second time at its link addresses (as
/// Linux's `/proc/vmcore` does) so that gdb finds a higher-half kernel's
/// code and data by the addresses in its symbol table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelImage {
    /// Physical load address (page aligned).
    pub phys_start: u64,
    /// Virtual link address of the same byte (page aligned).
    pub virt_start: u64,
    /// Length in bytes (rounded up to pages).
    pub len: u64,
}

/// One CPU's saved state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// The `pr_reg` registers (an x86_64 `NT_PRSTATUS`).
    pub registers: Registers,
    /// Control registers; `control.cpu` is the CPU's index.
    pub control: ControlState,
    /// The `NT_PRSTATUS` note's `pr_pid`: `None` gives index + 1 (distinct
    /// and non-zero, so gdb shows one thread per CPU), the crash path's
    /// choice; `Some` keeps a value from elsewhere (`crashkit convert`
    /// keeps the source's, which for Linux is the task each CPU ran).
    pub pid: Option<u32>,
}

/// Everything the writer needs to know besides memory and the sink.
#[derive(Clone, Copy, Debug)]
pub struct DumpPlan<'a> {
    /// A random id naming this dump (the capture kernel draws it with
    /// RDRAND or from the TSC); the completion marker repeats it.
    pub dump_id: [u8; 16],
    /// Seconds since 1970 at the crash, 0 if unknown.
    pub crash_time: u64,
    /// The physical memory to dump: page aligned, sorted, not overlapping.
    pub ranges: &'a [PhysRange],
    /// Ranges never written in any form (secrets), sorted by start; each
    /// is rounded out to whole pages. They may overlap each other.
    pub exclusions: &'a [PhysRange],
    /// `virtual = physical + offset` for `ranges` (the direct map); without
    /// one, `p_vaddr` is 0.
    pub direct_map: Option<u64>,
    /// The kernel image, written first as its own segments at its link
    /// addresses, unless those are its direct-map addresses (an identity-
    /// or direct-mapped kernel), where its range already puts it.
    pub kernel_image: Option<KernelImage>,
    /// Every CPU's registers and control state.
    pub cpus: &'a [CpuState],
    /// The index (`control.cpu`) of the panicking CPU, whose note comes
    /// first so that gdb selects its thread.
    pub panic_cpu: Option<u32>,
    /// `VMCOREINFO` text (see [`crate::vmcoreinfo::VmcoreInfoWriter`]);
    /// empty for none.
    pub vmcoreinfo: &'a [u8],
    /// The crash record's bytes; empty for none.
    pub crash_record: &'a [u8],
    /// Leave zero pages out of the file (they read back as zeros).
    pub exclude_zero_pages: bool,
    /// Program header slots beyond the ones the plan needs in any case,
    /// for splits at zero runs and at filtered or unreadable pages.
    pub extra_segments: u32,
}

/// A plan the writer cannot follow; nothing has been written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// `ranges[index]` is empty, not page aligned, or wraps.
    BadRange {
        /// Index in [`DumpPlan::ranges`].
        index: usize,
    },
    /// `ranges[index]` starts before the previous range ends.
    RangesNotSorted {
        /// Index in [`DumpPlan::ranges`].
        index: usize,
    },
    /// `exclusions[index]` wraps, or starts before the previous one.
    BadExclusion {
        /// Index in [`DumpPlan::exclusions`].
        index: usize,
    },
    /// The kernel image is empty, not page aligned, or wraps (physically or
    /// virtually).
    BadKernelImage,
    /// The direct-map offset makes a range's virtual addresses wrap.
    DirectMapWraps {
        /// Index in [`DumpPlan::ranges`].
        index: usize,
    },
    /// More program headers than an ELF file can hold (`u32::MAX`).
    TooManySegments,
    /// A note would be larger than 4 GiB.
    NoteTooLarge,
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadRange { index } => {
                write!(f, "memory range {index} is empty, unaligned or wraps")
            }
            Self::RangesNotSorted { index } => write!(
                f,
                "memory range {index} starts before the previous one ends"
            ),
            Self::BadExclusion { index } => write!(
                f,
                "exclusion {index} wraps or starts before the previous one"
            ),
            Self::BadKernelImage => f.write_str("kernel image is empty, unaligned or wraps"),
            Self::DirectMapWraps { index } => {
                write!(f, "the direct-map offset makes memory range {index} wrap")
            }
            Self::TooManySegments => f.write_str("more program headers than ELF can hold"),
            Self::NoteTooLarge => f.write_str("a note would exceed 4 GiB"),
        }
    }
}

impl core::error::Error for PlanError {}

const fn aligned(value: u64) -> bool {
    value.is_multiple_of(PAGE_SIZE)
}

impl DumpPlan<'_> {
    /// Check the plan; an integrator calls this at boot so that the crash
    /// path meets no surprise. [`write_elf_dump`](super::write_elf_dump)
    /// calls it first too.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut previous_end = 0u64;
        for (index, range) in self.ranges.iter().enumerate() {
            let Some(end) = range.end() else {
                return Err(PlanError::BadRange { index });
            };
            if range.len == 0 || !aligned(range.start) || !aligned(range.len) {
                return Err(PlanError::BadRange { index });
            }
            if index > 0 && range.start < previous_end {
                return Err(PlanError::RangesNotSorted { index });
            }
            if let Some(offset) = self.direct_map
                && range
                    .start
                    .checked_add(offset)
                    .and_then(|v| v.checked_add(range.len))
                    .is_none()
            {
                return Err(PlanError::DirectMapWraps { index });
            }
            previous_end = end;
        }
        let mut previous_start = 0u64;
        for (index, exclusion) in self.exclusions.iter().enumerate() {
            let rounded = exclusion
                .end()
                .and_then(|end| crate::bytes::align_up(end, PAGE_SIZE));
            if rounded.is_none() || exclusion.start < previous_start {
                return Err(PlanError::BadExclusion { index });
            }
            previous_start = exclusion.start;
        }
        if let Some(image) = self.kernel_image {
            let fits = image.phys_start.checked_add(image.len).is_some()
                && image
                    .virt_start
                    .checked_add(image.len)
                    .and_then(|end| crate::bytes::align_up(end, PAGE_SIZE))
                    .is_some();
            if image.len == 0 || !aligned(image.phys_start) || !aligned(image.virt_start) || !fits {
                return Err(PlanError::BadKernelImage);
            }
        }
        if self.vmcoreinfo.len() > u32::MAX as usize - 8
            || self.crash_record.len() > u32::MAX as usize - 8
            || self.ranges.len() > (u32::MAX as usize) / 16
        {
            return Err(PlanError::NoteTooLarge);
        }
        self.segment_capacity().map(|_| ())
    }

    /// The PT_LOAD slots reserved: one per range, one for the kernel
    /// image, two per exclusion, plus [`extra_segments`](Self::extra_segments).
    pub fn segment_capacity(&self) -> Result<u32, PlanError> {
        let needed = self
            .ranges
            .len()
            .checked_add(usize::from(self.kernel_image.is_some()))
            .and_then(|n| n.checked_add(self.exclusions.len().checked_mul(2)?))
            .and_then(|n| u32::try_from(n).ok())
            .and_then(|n| n.checked_add(self.extra_segments))
            // One more for the PT_NOTE in front of them.
            .filter(|n| *n < u32::MAX);
        needed.ok_or(PlanError::TooManySegments)
    }
}
