//! The ELF vmcore writer: one pass over memory, positional writes, no
//! allocation.
//!
//! The caller describes the dump in a [`DumpPlan`] (memory ranges, the
//! direct map and the kernel image for virtual addresses, exclusions, CPU
//! states, VMCOREINFO, the crash record), gives physical memory through
//! [`PhysMemory`] and a destination through [`DumpSink`], and calls
//! [`write_elf_dump`]. The file it writes:
//!
//! ```text
//! 0        ELF header (e_flags bit 0 set until the dump is complete)
//! 64       program headers: PT_NOTE, then `capacity` PT_LOAD slots
//!          [section header 0 when the slots need PN_XNUM]
//! notes    CORE/NT_PRSTATUS per CPU (the panicking CPU first), VMCOREINFO,
//!          CRASHKIT identity, control state per CPU, memory map, crash
//!          record, completion marker (zeros until the end)
//! data     page aligned: the pages of each segment, in segment order
//! ```
//!
//! Segments are found while streaming: a run of written pages, optionally
//! followed by a run of zero pages that are not written (`p_memsz >
//! p_filesz`, the identity note's [`FLAG_ZERO_TAILS`]). An excluded page
//! (a secret from [`DumpPlan::exclusions`], a page the [`PageFilter`]
//! rejects, an unreadable page) ends the segment: it is in no segment, and
//! the memory-map note tells a reader it is excluded rather than a hole.
//! Each segment's program header is written when it closes, and the open
//! one's every [`WriteOptions::checkpoint_pages`], so a dump cut at any
//! point describes what it holds. The order of writes, and why it makes a
//! torn dump detectable, is in [`crate::crashkit_note::CompletionMarker`].
//!
//! The program header table is reserved before the first page: its size
//! is the segments the plan needs in any case (one per range and the
//! kernel image, two per exclusion) plus [`DumpPlan::extra_segments`] for
//! splits at zero runs, filtered and unreadable pages. When the extra
//! slots are used up, zero runs and filtered pages are written as data
//! (counted), and an unreadable page ends the dump with
//! [`DumpError::SegmentTableFull`].

mod coalesce;
pub(crate) mod layout;
mod plan;
mod stream;

pub use coalesce::Coalescing;
pub use plan::{CpuState, DumpPlan, KernelImage, PhysRange, PlanError};
pub use stream::{DumpError, DumpStats, Progress, WriteOptions, write_elf_dump};

pub use crate::crashkit_note::FLAG_ZERO_TAILS;
pub(crate) use stream::{Exclusions, ZERO_PAGE, is_zero};

/// Run a sink operation, retrying it up to `retries` more times after a
/// failure (the writers' bounded retry policy); `on_retry` counts each
/// retry. The last error is returned when all attempts fail.
pub(crate) fn with_retries<E>(
    retries: u32,
    mut on_retry: impl FnMut(),
    mut op: impl FnMut() -> Result<(), E>,
) -> Result<(), E> {
    let mut attempts_left = retries;
    loop {
        match op() {
            Ok(()) => return Ok(()),
            Err(error) if attempts_left == 0 => return Err(error),
            Err(_) => {
                attempts_left -= 1;
                on_retry();
            }
        }
    }
}

/// Where the dump goes: positional writes, so headers can be completed
/// after the pages. A sink buffers as it likes; [`flush`](Self::flush) is
/// the ordering point the completion protocol relies on (everything written
/// before it is durable before anything written after it).
pub trait DumpSink {
    /// The sink's error.
    type Error;

    /// Write `bytes` at `offset` from the start of the dump.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error>;

    /// Make every earlier write durable before any later one.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Physical memory of the crashed machine, a page at a time.
pub trait PhysMemory {
    /// The page at physical address `phys` (page aligned), or `None` if it
    /// cannot be read (it is then left out and counted).
    fn page(&mut self, phys: u64) -> Option<&[u8; crate::PAGE_SIZE as usize]>;
}

/// The integrator's page filter: `true` leaves the page out (free pages,
/// user pages: what makedumpfile's dump levels do for Linux).
pub trait PageFilter {
    /// Whether the page at `phys` is left out of the dump.
    fn exclude(&mut self, phys: u64) -> bool;
}

impl<F: FnMut(u64) -> bool> PageFilter for F {
    fn exclude(&mut self, phys: u64) -> bool {
        self(phys)
    }
}
