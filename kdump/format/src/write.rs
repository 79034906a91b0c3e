//! What both dump writers share: their options, progress and statistics,
//! the error that stops a dump, the zero page, the zero test and the
//! exclusion cursor. The ELF writer is [`crate::elf::writer`], the
//! kdump-compressed one [`crate::compressed::writer`].

use crate::PAGE_SIZE;
use crate::plan::{PhysRange, PlanError};

/// Knobs of one dump.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// How many times a failed sink write is retried before the dump
    /// stops (0: no retry).
    pub sink_retries: u32,
    /// Every this many pages of an open segment, flush the sink and write
    /// the segment's program header so far (0: only when it closes).
    pub checkpoint_pages: u64,
    /// Call the progress callback every this many pages (0: never).
    pub progress_pages: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            sink_retries: 3,
            checkpoint_pages: 4096,
            progress_pages: 1024,
        }
    }
}

/// How far a dump is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Pages looked at (the kernel image's pages count twice: once as the
    /// image, once in their range).
    pub pages_done: u64,
    /// Pages to look at.
    pub pages_total: u64,
    /// Data bytes written so far.
    pub data_bytes: u64,
}

/// What a dump wrote and left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Pages looked at (see [`Progress::pages_done`]).
    pub pages_total: u64,
    /// Pages written to the file, zero pages written as data included.
    pub pages_written: u64,
    /// Zero pages left out (they read back as zeros).
    pub zero_pages_excluded: u64,
    /// Zero pages written because no program header slot was left to split.
    pub zero_pages_written: u64,
    /// Pages of [`DumpPlan::exclusions`](crate::plan::DumpPlan::exclusions), never written.
    pub secret_pages_excluded: u64,
    /// Pages the page filter left out.
    pub filtered_pages_excluded: u64,
    /// Pages the filter rejected but that were written for lack of a slot.
    pub filtered_pages_written: u64,
    /// Pages [`PhysMemory::page`](crate::sink::PhysMemory::page) could not read.
    pub unreadable_pages: u64,
    /// PT_LOAD program headers written.
    pub segments: u32,
    /// Of which split off because of a zero run, filter or unreadable page.
    pub extra_segments_used: u32,
    /// Sink writes retried.
    pub sink_retries: u64,
    /// The dump's length in bytes (what a device must hold).
    pub total_length: u64,
    /// Whether the completion marker was written.
    pub complete: bool,
}

/// Why a dump stopped. Everything written before the failure stays valid:
/// the program headers of the segments written so far are in place, and the
/// dump reads as incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpError<E> {
    /// The plan is wrong; nothing was written.
    Plan(PlanError),
    /// The sink failed at `offset` after the retries.
    Sink {
        /// Where the failed write was.
        offset: u64,
        /// The sink's last error.
        error: E,
        /// What was done until then.
        stats: DumpStats,
    },
    /// An unreadable page needed a program header slot and none was left.
    SegmentTableFull {
        /// The page.
        phys: u64,
        /// What was done until then.
        stats: DumpStats,
    },
}

/// What stopped the dump; the cause (the plan's error, the sink's) is its
/// [`source`](core::error::Error::source).
impl<E> core::fmt::Display for DumpError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Plan(_) => f.write_str("the dump plan is wrong; nothing was written"),
            Self::Sink { offset, stats, .. } => write!(
                f,
                "the device failed at offset {offset:#x}, after {} of {} pages",
                stats.pages_written, stats.pages_total
            ),
            Self::SegmentTableFull { phys, stats } => write!(
                f,
                "no program header left for the unreadable page at {phys:#x}, after {} of {} pages",
                stats.pages_written, stats.pages_total
            ),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for DumpError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Plan(error) => Some(error),
            Self::Sink { error, .. } => Some(error),
            Self::SegmentTableFull { .. } => None,
        }
    }
}

/// A page of zeros for every writer that writes zeros.
pub(crate) static ZERO_PAGE: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// Whether a page is all zeros: 64-byte blocks of eight 8-byte words
/// OR-folded, with an early exit per block. Words, not bytes: a bare-metal
/// target has no SIMD to vectorise a byte loop with, and under QEMU's TCG a
/// byte loop costs eight times the instructions (a capture kernel scans
/// every page of the machine).
pub(crate) fn is_zero(page: &[u8]) -> bool {
    let mut blocks = page.chunks_exact(64);
    let words_zero = blocks.by_ref().all(|block| {
        block
            .chunks_exact(8)
            .map(|word| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(word);
                u64::from_ne_bytes(bytes)
            })
            .fold(0u64, |acc, word| acc | word)
            == 0
    });
    words_zero && blocks.remainder().iter().all(|&b| b == 0)
}

/// A cursor over the sorted exclusions for one ascending walk.
pub(crate) struct Exclusions<'a> {
    ranges: &'a [PhysRange],
    next: usize,
}

impl<'a> Exclusions<'a> {
    pub(crate) fn new(ranges: &'a [PhysRange]) -> Self {
        Self { ranges, next: 0 }
    }

    /// Whether the page at `phys` touches an exclusion (exclusions are
    /// rounded out to whole pages). Calls must come in ascending order of
    /// `phys`. Exclusions are sorted by start: one that ends at or before
    /// `phys` can never touch a later page, so the cursor passes it; the
    /// first one left either touches this page or starts after it, and so
    /// does every one after it.
    pub(crate) fn contains(&mut self, phys: u64) -> bool {
        let page_end = phys.saturating_add(PAGE_SIZE);
        while let Some(range) = self.ranges.get(self.next) {
            let end = range.end().unwrap_or(u64::MAX);
            if end <= phys {
                self.next += 1;
                continue;
            }
            return range.start < page_end;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_with_one_byte_set_anywhere_is_not_zero() {
        let mut page = [0u8; 4096];
        assert!(super::is_zero(&page));
        for at in 0..page.len() {
            page[at] = 0x80;
            assert!(!super::is_zero(&page), "byte {at}");
            page[at] = 0;
        }
        // A length that is not a multiple of 64 checks its tail too.
        assert!(!super::is_zero(&[0, 0, 0, 1]));
        assert!(super::is_zero(&[0; 100]));
    }
}
