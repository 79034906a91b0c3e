//! The dump section: which writer wrote the dump, why, how it ended, and
//! the memory the in-place writer changed while it wrote (so a reader knows
//! which pages of the dump are not as they were at the crash).
//!
//! Only the panic owner writes it, on the dump step:
//!
//! 1. [`DumpSection::choose_capture_kernel`] just before the jump, or
//! 2. [`DumpSection::choose_in_place`] (path, reason, hand-over error,
//!    start time), then one [`DumpSection::add_changed`] per range the
//!    writer will change, then the writer snapshots the record into the
//!    dump, writes, and [`DumpSection::finish`] stores the outcome, the
//!    counts and the end time.
//!
//! So the dump's own copy of the record (taken before the writing) says
//! `InPlace`, the reason and the changed ranges, with the outcome
//! `Running`; the record in memory (what a later dump or a debugger reads)
//! has the outcome too. `path` (Release) publishes the fields stored
//! before it, `changed_count` (Release) the entries below it, `outcome`
//! (Release) the counts and the end time.
//!
//! Layout: [`crate::layout::dump`] and `docs/crash-record.md` ("Dump
//! section").

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::layout::dump::changed::LEFT_OUT;
use crate::panic::Full;
use crashkit_record_format::{ChangedKind, Decoded, DumpOutcome, DumpPath, FallbackReason};

/// One changed range (24 bytes).
#[repr(C)]
struct ChangedEntry {
    start: AtomicU64,
    len: AtomicU64,
    kind: AtomicU32,
    flags: AtomicU32,
}

impl ChangedEntry {
    const fn new() -> Self {
        Self {
            start: AtomicU64::new(0),
            len: AtomicU64::new(0),
            kind: AtomicU32::new(0),
            flags: AtomicU32::new(0),
        }
    }
}

/// The dump section's one slot (`#[repr(C)]`, 248 bytes).
#[repr(C)]
pub struct DumpSection {
    path: AtomicU32,
    reason: AtomicU32,
    outcome: AtomicU32,
    changed_count: AtomicU32,
    handover_error: AtomicU32,
    reserved: AtomicU32,
    pages_written: AtomicU64,
    data_bytes: AtomicU64,
    started_ns: AtomicU64,
    finished_ns: AtomicU64,
    changed: [ChangedEntry; crate::layout::dump::CHANGED_CAPACITY],
}

impl core::fmt::Debug for DumpSection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DumpSection")
            .field("path", &self.path())
            .field("outcome", &self.outcome())
            .finish_non_exhaustive()
    }
}

impl Default for DumpSection {
    fn default() -> Self {
        Self::new()
    }
}

/// The words of the section, for the record's snapshot.
pub(crate) struct DumpWords {
    /// path, reason, outcome, changed_count, handover_error, reserved.
    pub words: [u32; 6],
    /// pages_written, data_bytes, started_ns, finished_ns.
    pub longs: [u64; 4],
    /// Each changed entry: start, len, kind, flags.
    pub changed: [(u64, u64, u32, u32); crate::layout::dump::CHANGED_CAPACITY],
}

impl DumpSection {
    /// Size in bytes (the record's format relies on it).
    pub const SIZE: usize = 248;

    /// Nothing chosen.
    pub const fn new() -> Self {
        Self {
            path: AtomicU32::new(DumpPath::None as u32),
            reason: AtomicU32::new(FallbackReason::None as u32),
            outcome: AtomicU32::new(DumpOutcome::Running as u32),
            changed_count: AtomicU32::new(0),
            handover_error: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            pages_written: AtomicU64::new(0),
            data_bytes: AtomicU64::new(0),
            started_ns: AtomicU64::new(0),
            finished_ns: AtomicU64::new(0),
            changed: [const { ChangedEntry::new() }; crate::layout::dump::CHANGED_CAPACITY],
        }
    }

    /// Control is about to leave for the capture kernel.
    pub fn choose_capture_kernel(&self, now_ns: u64) {
        // Relaxed: published by the Release store of `path`.
        self.started_ns.store(now_ns, Ordering::Relaxed);
        // Release: publishes the start time (the capture kernel reads the
        // record after the jump, which orders everything anyway).
        self.path
            .store(DumpPath::CaptureKernel as u32, Ordering::Release);
    }

    /// The in-place writer takes over, for `reason` (`handover_error`: the
    /// hand-over's own code, 0 none).
    pub fn choose_in_place(&self, reason: FallbackReason, handover_error: u32, now_ns: u64) {
        // Relaxed: published by the Release store of `path`.
        self.reason.store(reason as u32, Ordering::Relaxed);
        self.handover_error.store(handover_error, Ordering::Relaxed);
        self.started_ns.store(now_ns, Ordering::Relaxed);
        // Release: publishes the three stores above.
        self.path.store(DumpPath::InPlace as u32, Ordering::Release);
    }

    /// Record a range the writer changes (`left_out`: it is also left out
    /// of the dump). [`Full`] once every entry is used: the caller must
    /// then treat the range as unlisted (leave it out, or accept it).
    pub fn add_changed(
        &self,
        start: u64,
        len: u64,
        kind: ChangedKind,
        left_out: bool,
    ) -> Result<(), Full> {
        // Relaxed: the owner is the count's only writer.
        let index = self.changed_count.load(Ordering::Relaxed) as usize;
        let entry = self.changed.get(index).ok_or(Full)?;
        // Relaxed: published by the Release store of the count below.
        entry.start.store(start, Ordering::Relaxed);
        entry.len.store(len, Ordering::Relaxed);
        entry.kind.store(kind as u32, Ordering::Relaxed);
        entry
            .flags
            .store(if left_out { LEFT_OUT } else { 0 }, Ordering::Relaxed);
        // Release: publishes the entry. `index < CHANGED_CAPACITY`.
        self.changed_count
            .store(index as u32 + 1, Ordering::Release);
        Ok(())
    }

    /// The writing ended.
    pub fn finish(&self, outcome: DumpOutcome, pages_written: u64, data_bytes: u64, now_ns: u64) {
        // Relaxed: published by the Release store of `outcome`.
        self.pages_written.store(pages_written, Ordering::Relaxed);
        self.data_bytes.store(data_bytes, Ordering::Relaxed);
        self.finished_ns.store(now_ns, Ordering::Relaxed);
        // Release: publishes the three stores above.
        self.outcome.store(outcome as u32, Ordering::Release);
    }

    /// The path chosen.
    pub fn path(&self) -> Decoded<DumpPath> {
        // Acquire: pairs with the Release stores of `path`.
        Decoded::from_code(self.path.load(Ordering::Acquire))
    }

    /// How the in-place writing ended.
    pub fn outcome(&self) -> Decoded<DumpOutcome> {
        // Acquire: pairs with the Release store in `finish`.
        Decoded::from_code(self.outcome.load(Ordering::Acquire))
    }

    /// The ranges recorded, as `(start, len, kind code, left out)`.
    pub fn changed(&self) -> impl Iterator<Item = (u64, u64, u32, bool)> + '_ {
        // Acquire: pairs with the Release store in `add_changed`.
        let count = self.changed_count.load(Ordering::Acquire) as usize;
        // Relaxed: ordered after the Acquire load of the count.
        self.changed.iter().take(count).map(|entry| {
            (
                entry.start.load(Ordering::Relaxed),
                entry.len.load(Ordering::Relaxed),
                entry.kind.load(Ordering::Relaxed),
                entry.flags.load(Ordering::Relaxed) & LEFT_OUT != 0,
            )
        })
    }

    /// Every word, publication words first (Acquire), for the snapshot.
    pub(crate) fn words(&self) -> DumpWords {
        // Acquire on the publication words, Relaxed after them.
        let path = self.path.load(Ordering::Acquire);
        let outcome = self.outcome.load(Ordering::Acquire);
        let count = self.changed_count.load(Ordering::Acquire);
        let relaxed32 = |word: &AtomicU32| word.load(Ordering::Relaxed);
        let relaxed64 = |word: &AtomicU64| word.load(Ordering::Relaxed);
        DumpWords {
            words: [
                path,
                relaxed32(&self.reason),
                outcome,
                count,
                relaxed32(&self.handover_error),
                relaxed32(&self.reserved),
            ],
            longs: [
                relaxed64(&self.pages_written),
                relaxed64(&self.data_bytes),
                relaxed64(&self.started_ns),
                relaxed64(&self.finished_ns),
            ],
            changed: core::array::from_fn(|index| {
                let entry = &self.changed[index];
                (
                    relaxed64(&entry.start),
                    relaxed64(&entry.len),
                    relaxed32(&entry.kind),
                    relaxed32(&entry.flags),
                )
            }),
        }
    }
}

const _: () = assert!(core::mem::size_of::<DumpSection>() == DumpSection::SIZE);
const _: () = assert!(DumpSection::SIZE == crate::layout::dump::SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_documented_one() {
        use crate::layout::dump as l;
        use core::mem::offset_of;
        assert_eq!(offset_of!(DumpSection, path), l::PATH);
        assert_eq!(offset_of!(DumpSection, reason), l::REASON);
        assert_eq!(offset_of!(DumpSection, outcome), l::OUTCOME);
        assert_eq!(offset_of!(DumpSection, changed_count), l::CHANGED_COUNT);
        assert_eq!(offset_of!(DumpSection, handover_error), l::HANDOVER_ERROR);
        assert_eq!(offset_of!(DumpSection, pages_written), l::PAGES_WRITTEN);
        assert_eq!(offset_of!(DumpSection, data_bytes), l::DATA_BYTES);
        assert_eq!(offset_of!(DumpSection, started_ns), l::STARTED_NS);
        assert_eq!(offset_of!(DumpSection, finished_ns), l::FINISHED_NS);
        assert_eq!(offset_of!(DumpSection, changed), l::CHANGED);
        assert_eq!(offset_of!(ChangedEntry, kind), l::changed::KIND);
        assert_eq!(offset_of!(ChangedEntry, flags), l::changed::FLAGS);
    }

    #[test]
    fn the_changed_list_holds_eight_and_says_full() {
        let dump = DumpSection::new();
        dump.choose_in_place(FallbackReason::ImageChanged, 3, 10);
        for index in 0..8u64 {
            assert_eq!(
                dump.add_changed(index << 12, 4096, ChangedKind::Stack, index % 2 == 0),
                Ok(())
            );
        }
        assert_eq!(
            dump.add_changed(0, 1, ChangedKind::Record, false),
            Err(Full)
        );
        assert_eq!(dump.changed().count(), 8);
        assert_eq!(dump.changed().nth(1), Some((0x1000, 4096, 1, false)));
        assert_eq!(dump.path(), Decoded::Known(DumpPath::InPlace));
        assert_eq!(dump.outcome(), Decoded::Known(DumpOutcome::Running));
        dump.finish(DumpOutcome::Complete, 5, 6, 11);
        assert_eq!(dump.outcome(), Decoded::Known(DumpOutcome::Complete));
    }
}
