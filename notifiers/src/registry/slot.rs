//! One registry slot: a registration number and a notifier, read without a
//! lock by validating the number around the pointer.
//!
//! # States
//!
//! | state      | `sequence` | `notifier`            | a reader gets                 |
//! |------------|------------|-----------------------|-------------------------------|
//! | `Empty`    | 0          | `None` (or, mid-fill, the incoming notifier) | nothing |
//! | `Live(s)`  | s > 0      | the registered notifier | `(notifier, s)` if `sequence` read `s` before and after the pointer |
//!
//! # Transitions (only by the writer holding the registry's epoch)
//!
//! | operation  | from      | to        | steps                                              |
//! |------------|-----------|-----------|----------------------------------------------------|
//! | `fill`     | `Empty`   | `Live(s)` | store notifier (Release), then store `s` (Release)  |
//! | `clear`    | `Live(s)` | `Empty`   | store 0 (Relaxed), then store `None` (Release)      |
//!
//! Each transition becomes visible to readers with a single store of
//! `sequence`, so a writer frozen between its two steps (stopped by the
//! shootdown, or interrupted by the panic path on its own CPU) leaves the
//! slot in a state readers understand: `fill` frozen after its first step is
//! still `Empty`; `clear` frozen after its first step is already `Empty`.
//!
//! Registration numbers are never reused (the registry counts them up), so
//! a reader that sees the same number before and after loading the pointer
//! knows the pointer belongs to that registration: a slot that was cleared
//! and refilled in between would show a different number.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::Notifier;
use crate::static_ref::AtomicStaticRef;

/// What a lock-free read of a slot found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SlotRead {
    /// No registration.
    Empty,
    /// A registration, read consistently.
    Live(&'static Notifier, u64),
    /// A writer changed the slot during the read; treated as absent (the
    /// registration it removed or added overlapped the read).
    Changing,
}

#[cfg(test)]
use crate::test_hook::{self, HookPoint};

pub(crate) struct Slot {
    /// 0 = empty; otherwise the registration number.
    sequence: AtomicU64,
    notifier: AtomicStaticRef<Notifier>,
}

impl Slot {
    pub(crate) const fn empty() -> Self {
        Self {
            sequence: AtomicU64::new(0),
            notifier: AtomicStaticRef::none(),
        }
    }

    /// `Live(sequence)` from the start: a registration made at compile
    /// time (`Registry::with_notifiers`), before any reader or writer.
    pub(crate) const fn live(notifier: &'static Notifier, sequence: u64) -> Self {
        Self {
            sequence: AtomicU64::new(sequence),
            notifier: AtomicStaticRef::some(notifier),
        }
    }

    /// Lock-free read, from any CPU and any context.
    pub(crate) fn read(&self, _index: usize) -> SlotRead {
        // Acquire: pairs with `fill`'s Release store of the number, so
        // seeing `s` makes `fill`'s notifier store visible below.
        let before = self.sequence.load(Ordering::Acquire);
        if before == 0 {
            return SlotRead::Empty;
        }
        #[cfg(test)]
        test_hook::at(HookPoint::SlotNumberRead(_index));
        // Acquire: pairs with the Release notifier stores of `fill` and
        // `clear`. If this load returns a notifier stored by a *later*
        // writer than the one that stored `before`, that writer's (or an
        // earlier one's) store of a different number happened before it,
        // so the load below cannot return `before` again. It also keeps the
        // load below from being performed before this one.
        let notifier = self.notifier.load(Ordering::Acquire);
        #[cfg(test)]
        test_hook::at(HookPoint::SlotPointerRead(_index));
        // Relaxed: ordered after the Acquire load above, which is all the
        // validation needs (see there).
        let after = self.sequence.load(Ordering::Relaxed);
        match notifier {
            Some(notifier) if after == before => SlotRead::Live(notifier, before),
            _ => SlotRead::Changing,
        }
    }

    /// The registration number, for the writer holding the epoch.
    pub(crate) fn writer_sequence(&self) -> u64 {
        // Relaxed: only writers store, they serialise on the epoch, whose
        // Acquire made every earlier writer's stores visible to us.
        self.sequence.load(Ordering::Relaxed)
    }

    /// The notifier, for the writer holding the epoch (valid when
    /// `writer_sequence() != 0`).
    pub(crate) fn writer_notifier(&self) -> Option<&'static Notifier> {
        // Relaxed: as in `writer_sequence`.
        self.notifier.load(Ordering::Relaxed)
    }

    /// `Empty` -> `Live(sequence)`. Writer holding the epoch only.
    pub(crate) fn fill(&self, notifier: &'static Notifier, sequence: u64) {
        // Release: orders this store after the earlier `clear` of this slot
        // (its number store), for readers that validate (see `read`).
        self.notifier.store(Some(notifier), Ordering::Release);
        #[cfg(test)]
        test_hook::at(HookPoint::FillPointerStored);
        // Release: publishes the notifier store above to readers that load
        // this number with Acquire.
        self.sequence.store(sequence, Ordering::Release);
        #[cfg(test)]
        test_hook::at(HookPoint::FillPublished);
    }

    /// `Live(s)` -> `Empty`. Writer holding the epoch only.
    pub(crate) fn clear(&self) {
        // Relaxed: it publishes nothing; what readers need is that it comes
        // before the pointer store below, which that store's Release gives.
        self.sequence.store(0, Ordering::Relaxed);
        #[cfg(test)]
        test_hook::at(HookPoint::ClearUnpublished);
        // Release: see `fill`'s first store; a reader that loads this
        // `None` sees the number change and discards its read.
        self.notifier.store(None, Ordering::Release);
        #[cfg(test)]
        test_hook::at(HookPoint::ClearPointerCleared);
    }
}

impl core::fmt::Debug for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.read(usize::MAX) {
            SlotRead::Empty => f.write_str("Empty"),
            SlotRead::Live(notifier, sequence) => f
                .debug_tuple("Live")
                .field(&notifier.name())
                .field(&sequence)
                .finish(),
            SlotRead::Changing => f.write_str("Changing"),
        }
    }
}
