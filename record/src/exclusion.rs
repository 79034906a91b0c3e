//! The exclusion slots: memory a dump must leave out (keys, passwords,
//! anything a kernel would rather lose than write to a disk), registered
//! and removed at run time from any context, NMI included, without a lock.
//!
//! Both dump writers read them at the crash: the capture kernel from the
//! record's bytes, the in-place writer from the static. A registered range
//! never reaches the dump device: the writers leave out every page it
//! touches, before any codec sees the page.
//!
//! # The per-slot state machine
//!
//! | from      | to        | by | how |
//! |-----------|-----------|----|-----|
//! | `FREE`    | `WRITING` | [`CrashRecord::exclude`](crate::CrashRecord::exclude), claiming a slot | CAS (Relaxed) |
//! | `WRITING` | `ACTIVE`  | the same call, after storing `start` and `len` | store (Release) |
//! | `ACTIVE`  | `WRITING` | [`CrashRecord::include_again`](crate::CrashRecord::include_again), with the slot's [`Exclusion`] | CAS (Acquire) |
//! | `WRITING` | `FREE`    | the same call, after zeroing `len` then `start` | store (Release) |
//!
//! Only the holder of a slot (the CPU that won its `FREE -> WRITING` CAS,
//! or that holds its [`Exclusion`] and won `ACTIVE -> WRITING`) stores to
//! `start` and `len`, so two writers never race on one slot.
//!
//! # What a dump writer reads
//! A slot in `ACTIVE` *or* `WRITING` with a non-zero `len` is left out
//! (`ExclusionView::range` in the format crate). A CPU the shootdown stopped
//! in the middle of registering or removing leaves the slot in `WRITING`
//! with the old range, the new one, or `len` 0: leaving out a range that
//! is being registered is what the caller wants, one being removed costs a
//! page that was a secret a moment ago, and `len` 0 means the range is not
//! written yet (the caller registers *before* it writes the secret, so
//! nothing is lost). `start` is stored before `len` on registration and
//! `len` is cleared before `start` on removal, so a non-zero `len` is never
//! paired with a `start` of another registration. Leaving out too much is
//! the safe mistake.
//!
//! The order a caller keeps: register, then write the secret; wipe the
//! secret, then remove. Layout: [`crate::layout::exclusion`] and
//! `docs/crash-record.md` ("Exclusion slots").

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::layout::exclusion::{ACTIVE, FREE, WRITING};

/// One exclusion slot (`#[repr(C)]`, 24 bytes).
#[repr(C)]
pub struct ExclusionSlot {
    state: AtomicU32,
    reserved: AtomicU32,
    start: AtomicU64,
    len: AtomicU64,
}

impl core::fmt::Debug for ExclusionSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExclusionSlot")
            .field("range", &self.range())
            .finish_non_exhaustive()
    }
}

/// A registered exclusion: the right to remove it (not `Clone`: one
/// removal per registration).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an exclusion that is dropped stays registered for good"]
pub struct Exclusion {
    index: usize,
}

impl Exclusion {
    /// The slot this exclusion holds.
    pub fn slot(&self) -> usize {
        self.index
    }
}

/// Why [`CrashRecord::exclude`](crate::CrashRecord::exclude) registered
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExcludeError {
    /// The range is empty or wraps past the end of the address space.
    BadRange {
        /// Its start.
        start: u64,
        /// Its length.
        len: u64,
    },
    /// Every slot is in use.
    Full {
        /// Slots the record has.
        slots: usize,
    },
}

impl core::fmt::Display for ExcludeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadRange { start, len } => {
                write!(f, "cannot exclude {len:#x} bytes at {start:#x}")
            }
            Self::Full { slots } => write!(f, "all {slots} exclusion slots are in use"),
        }
    }
}

impl core::error::Error for ExcludeError {}

impl Default for ExclusionSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl ExclusionSlot {
    /// Size of a slot in bytes (the record's format relies on it).
    pub const SIZE: usize = 24;

    /// A free slot.
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(FREE),
            reserved: AtomicU32::new(0),
            start: AtomicU64::new(0),
            len: AtomicU64::new(0),
        }
    }

    /// Claim this slot for `(start, len)`: `FREE -> WRITING -> ACTIVE`.
    /// False if the slot was not free.
    pub(crate) fn claim(&self, start: u64, len: u64) -> bool {
        // Relaxed: winning the CAS makes this CPU the slot's only writer;
        // nothing written before it needs publishing (the range is
        // published by the Release store below).
        if self
            .state
            .compare_exchange(FREE, WRITING, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if stopped_here() {
            return true;
        }
        // Relaxed: published by the Release store of ACTIVE. `start`
        // before `len` (see the module docs: a non-zero `len` is never
        // paired with another registration's `start`); on x86 stores leave
        // in program order, and the dump reads after this CPU stopped.
        self.start.store(start, Ordering::Relaxed);
        if stopped_here() {
            return true;
        }
        self.len.store(len, Ordering::Relaxed);
        if stopped_here() {
            return true;
        }
        // Release: publishes `start` and `len` to a reader's Acquire load
        // of the state (`range`).
        self.state.store(ACTIVE, Ordering::Release);
        true
    }

    /// Release this slot: `ACTIVE -> WRITING -> FREE`. False if it was not
    /// active (never, for a slot named by an [`Exclusion`]).
    pub(crate) fn release(&self) -> bool {
        // Acquire: this CPU may not be the one that registered; it must see
        // the registration's stores before it overwrites them.
        if self
            .state
            .compare_exchange(ACTIVE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if stopped_here() {
            return true;
        }
        // Relaxed: published by the Release store of FREE; `len` first (see
        // the module docs).
        self.len.store(0, Ordering::Relaxed);
        if stopped_here() {
            return true;
        }
        self.start.store(0, Ordering::Relaxed);
        if stopped_here() {
            return true;
        }
        // Release: the caller wiped the secret before removing it; a reader
        // that sees FREE (Acquire) and then reads that memory sees the
        // wipe, and the cleared range.
        self.state.store(FREE, Ordering::Release);
        true
    }

    /// The range a dump must leave out, read as a dump writer reads it
    /// (see the module docs): `ACTIVE` or `WRITING` with a non-zero `len`.
    pub fn range(&self) -> Option<(u64, u64)> {
        // Acquire: pairs with the Release stores in `claim` and `release`,
        // so the range read below is at least as new as the state.
        let state = self.state.load(Ordering::Acquire);
        if state == FREE {
            return None;
        }
        // Relaxed: ordered after the Acquire load above.
        let start = self.start.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Relaxed);
        (len != 0).then_some((start, len))
    }

    /// The raw words, for the record's snapshot: state, start, len.
    pub(crate) fn words(&self) -> (u32, u64, u64) {
        // Acquire as in `range`; Relaxed after it.
        let state = self.state.load(Ordering::Acquire);
        (
            state,
            self.start.load(Ordering::Relaxed),
            self.len.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
std::thread_local! {
    /// Test builds: steps this thread may still take inside `claim` and
    /// `release` before it behaves as a CPU the shootdown stopped there
    /// (it returns at once and never finishes); `None`: no limit.
    static STEPS_LEFT: core::cell::Cell<Option<u32>> = const { core::cell::Cell::new(None) };
    /// Test builds: set when this thread stopped (see `STEPS_LEFT`).
    static STOPPED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether the calling CPU stops here (test builds only: see
/// `STEPS_LEFT`; always false otherwise).
#[inline(always)]
fn stopped_here() -> bool {
    #[cfg(test)]
    {
        STEPS_LEFT.with(|left| match left.get() {
            Some(0) => {
                STOPPED.with(|stopped| stopped.set(true));
                true
            }
            Some(n) => {
                left.set(Some(n - 1));
                false
            }
            None => false,
        })
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// Register `(start, len)` in the first free slot of `slots`.
pub(crate) fn exclude(
    slots: &[ExclusionSlot],
    start: u64,
    len: u64,
) -> Result<Exclusion, ExcludeError> {
    if len == 0 || start.checked_add(len).is_none() {
        return Err(ExcludeError::BadRange { start, len });
    }
    // Bounded: one CAS per slot, no retry (a slot lost to another CPU is
    // in use, so the next one is tried).
    slots
        .iter()
        .position(|slot| slot.claim(start, len))
        .map(|index| Exclusion { index })
        .ok_or(ExcludeError::Full { slots: slots.len() })
}

const _: () = assert!(core::mem::size_of::<ExclusionSlot>() == ExclusionSlot::SIZE);
const _: () = assert!(core::mem::align_of::<ExclusionSlot>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_and_remove() {
        let slots = [const { ExclusionSlot::new() }; 2];
        let a = exclude(&slots, 0x1000, 0x2000).unwrap();
        let b = exclude(&slots, 0x8000, 0x10).unwrap();
        assert_eq!((a.slot(), b.slot()), (0, 1));
        assert_eq!(
            exclude(&slots, 0x9000, 1),
            Err(ExcludeError::Full { slots: 2 })
        );
        assert_eq!(slots[0].range(), Some((0x1000, 0x2000)));
        assert!(slots[a.slot()].release());
        assert_eq!(slots[0].range(), None);
        assert!(!slots[0].release(), "a free slot is not released twice");
        let c = exclude(&slots, 0x9000, 1).unwrap();
        assert_eq!(c.slot(), 0);
        assert_eq!(slots[0].range(), Some((0x9000, 1)));
    }

    /// Every point at which a CPU can be stopped inside a registration, a
    /// removal and a second registration of one slot (the exhaustive
    /// interleaving of one writer with the dump, which reads after the
    /// writer stopped): what the dump reads is never a range that mixes
    /// two registrations, a registered secret is excluded from the moment
    /// its registration returns until its removal starts, and an
    /// unfinished registration excludes its own range or nothing.
    #[test]
    fn a_cpu_stopped_at_any_step_leaves_a_slot_a_dump_reads_safely() {
        const A: (u64, u64) = (0x1000, 0x2000);
        const B: (u64, u64) = (0x9000, 0x10);
        // Steps: claim A (3 stops), release (3), claim B (3), plus the end.
        for budget in 0..=10u32 {
            let slot = ExclusionSlot::new();
            STEPS_LEFT.with(|left| left.set(Some(budget)));
            let mut finished = Vec::new();
            // Each operation runs only if the previous ones finished (a
            // stopped CPU runs nothing more).
            STOPPED.with(|stopped| stopped.set(false));
            let running = || !STOPPED.with(|stopped| stopped.get());
            if slot.claim(A.0, A.1) && running() {
                finished.push("claim A");
                if slot.release() && running() {
                    finished.push("release");
                    if slot.claim(B.0, B.1) && running() {
                        finished.push("claim B");
                    }
                }
            }
            STEPS_LEFT.with(|left| left.set(None));
            let read = slot.range();
            assert!(
                [None, Some(A), Some(B)].contains(&read),
                "budget {budget}: the dump reads {read:x?}, a mix"
            );
            let allowed: &[Option<(u64, u64)>] = match finished.as_slice() {
                // Stopped inside the first registration: its range or
                // nothing yet (its secret is not written yet either).
                [] => &[None, Some(A)],
                // Stopped inside the removal: still excluded, or gone
                // (the caller wiped it before removing).
                ["claim A"] => &[Some(A), None],
                // Stopped inside the second registration.
                ["claim A", "release"] => &[None, Some(B)],
                _ => &[Some(B)],
            };
            assert!(
                allowed.contains(&read),
                "budget {budget}, finished {finished:?}: read {read:x?}"
            );
            if budget == 3 {
                // The registration returned; the removal stopped before it
                // cleared anything: the secret is still left out.
                assert_eq!(read, Some(A));
            }
        }
    }

    #[test]
    fn bad_ranges_are_refused() {
        let slots = [const { ExclusionSlot::new() }; 1];
        assert!(matches!(
            exclude(&slots, 0, 0),
            Err(ExcludeError::BadRange { .. })
        ));
        assert!(matches!(
            exclude(&slots, u64::MAX, 2),
            Err(ExcludeError::BadRange { .. })
        ));
        assert_eq!(slots[0].range(), None);
    }

    #[test]
    fn layout_is_the_documented_one() {
        use crate::layout::exclusion as l;
        assert_eq!(core::mem::offset_of!(ExclusionSlot, state), l::STATE);
        assert_eq!(core::mem::offset_of!(ExclusionSlot, reserved), l::RESERVED);
        assert_eq!(core::mem::offset_of!(ExclusionSlot, start), l::START);
        assert_eq!(core::mem::offset_of!(ExclusionSlot, len), l::LEN);
        assert_eq!(ExclusionSlot::SIZE, l::SIZE);
    }
}
