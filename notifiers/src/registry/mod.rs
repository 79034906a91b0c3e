//! The notifier registry: fixed capacity, changed from normal context,
//! walked by the panic owner without ever blocking.
//!
//! # Design
//! - **Slots**: `N` slots, each an atomic registration number plus an
//!   atomic `&'static Notifier` (see `slot.rs` for the slot's state table).
//!   A registration takes a free slot and keeps it until it is removed:
//!   nothing ever moves, so a reader never has to chase a notifier from one
//!   slot to another.
//! - **Order is computed, not stored**: within a list, notifiers run by
//!   [`ListPosition`]: higher priority first, then lower registration
//!   number (registration order). The walk picks, at every step, the live
//!   notifier of the list with the smallest position after the last one it
//!   ran (a selection scan, `N` slot reads per notifier run; `N` is small).
//! - **Writers** (register, unregister) serialise on a writer *epoch*
//!   (even = idle, odd = a writer edits), taken with a compare-and-swap and
//!   a bounded spin, never a lock: a writer that cannot take it in time gets
//!   [`RegisterNotifierError::Busy`]. The epoch makes "already registered" and "full"
//!   exact and hands out registration numbers; it is the pattern of the NMI
//!   handler chain (`crashkit_nmi`, docs/nmi.md).
//! - **Readers** (the walk) never look at the epoch for correctness: each
//!   slot read validates itself (number, pointer, number again). The walk
//!   reads the epoch only to *report* that a writer was mid-edit.
//!
//! # Registry state machine
//!
//! | epoch | meaning            | who moves it                                          |
//! |-------|--------------------|-------------------------------------------------------|
//! | even  | no writer          | a writer: CAS even -> odd (Acquire), bounded spin, else `Busy` |
//! | odd   | a writer edits     | that writer: store odd -> next even (Release)         |
//!
//! Under the odd epoch a writer does exactly one slot transition (`fill`
//! or `clear`, two stores each, see `slot.rs`). A writer frozen with the
//! epoch odd (a CPU stopped mid-edit, or a writer the panic path interrupted
//! on its own CPU) costs later writers `Busy`, and costs the walk nothing
//! but a `writer_mid_edit` note in its summary.
//!
//! # What a walk guarantees (for one walk of one list)
//! 1. No notifier runs twice: positions strictly increase along the walk,
//!    and a set of the notifiers already run (`N` entries on the walker's
//!    stack) excludes one that was removed and registered again meanwhile.
//! 2. A notifier registered for the whole walk runs: its slot reads
//!    `Live` at every scan, and the walk cannot step past its position
//!    without choosing it.
//! 3. A notifier added or removed during the walk runs at most once (an
//!    unregister that returns while a walk on another CPU has already chosen
//!    the notifier does not stop that one call; notifiers are `'static`, so
//!    that is memory-safe).
//! 4. The walk is bounded: at most `N` notifiers while nothing churns (each
//!    scan `N` slot reads); under churn, at most `N` distinct notifiers, then
//!    it stops and reports `truncated`.

mod slot;
mod walk;
mod writer;

use core::sync::atomic::AtomicU64;

use crashkit_nmi::WriterEpoch;

pub use writer::RegisterNotifierError;

use crate::cursor::RunCursor;
use crate::{EscalationPolicy, Notifier};
use slot::Slot;
pub(crate) use slot::SlotRead;
pub(crate) use walk::{Candidate, RanSet};

/// Where a notifier stands in its list: higher priority first, then lower
/// registration number. `Ord` orders by run order (`a < b`: `a` runs first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListPosition {
    /// The notifier's priority.
    pub priority: i32,
    /// Its registration number (unique within the registry, never reused).
    pub sequence: u64,
}

impl Ord for ListPosition {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then(self.sequence.cmp(&other.sequence))
    }
}

impl PartialOrd for ListPosition {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The largest registration number: the cursor keeps 59 bits of it. At one
/// registration per nanosecond it lasts 18 years; past it, `register`
/// answers [`RegisterNotifierError::Full`].
pub const MAX_SEQUENCE: u64 = (1 << 59) - 1;

/// A registry of up to `N` notifiers across all lists, with the run
/// cursor. Const-constructible for a static.
///
/// ```
/// use crashkit_notifiers::{EscalationPolicy, Registry};
/// static NOTIFIERS: Registry<32> = Registry::new(EscalationPolicy::NextNotifier);
/// ```
pub struct Registry<const N: usize> {
    slots: [Slot; N],
    /// Writer epoch: odd while a writer edits a slot.
    epoch: WriterEpoch,
    /// The next registration number; read and written under the epoch only.
    next_sequence: AtomicU64,
    pub(crate) cursor: RunCursor,
    /// The cursor word the last `resume` started from (see `run.rs`).
    pub(crate) resumed_from: AtomicU64,
    pub(crate) policy: EscalationPolicy,
}

impl<const N: usize> Registry<N> {
    /// An empty registry; a notifier that panics is handled by `policy`.
    pub const fn new(policy: EscalationPolicy) -> Self {
        Self::with_notifiers(policy, &[])
    }

    /// A registry with `notifiers` registered from the start, in that order
    /// (registration numbers 1, 2, ...), so they run even for a panic before
    /// the kernel registers anything at run time. More notifiers than `N`
    /// fail to compile in a `static` (a panic in const evaluation). Give
    /// each notifier once: a notifier given twice would run twice (the
    /// run-time [`register`](Self::register) refuses that; a `const fn`
    /// cannot compare the references).
    pub const fn with_notifiers(policy: EscalationPolicy, notifiers: &[&'static Notifier]) -> Self {
        assert!(
            notifiers.len() <= N,
            "Registry::with_notifiers: more notifiers than slots"
        );
        let mut slots = [const { Slot::empty() }; N];
        let mut index = 0;
        while index < notifiers.len() {
            // `index < N` (asserted above); numbers start at 1 (0 is empty).
            slots[index] = Slot::live(notifiers[index], index as u64 + 1);
            index += 1;
        }
        Self {
            slots,
            epoch: WriterEpoch::new(),
            next_sequence: AtomicU64::new(notifiers.len() as u64 + 1),
            cursor: RunCursor::new(),
            resumed_from: AtomicU64::new(crate::run::NO_RESUME),
            policy,
        }
    }

    /// The escalation policy chosen at construction.
    pub fn policy(&self) -> EscalationPolicy {
        self.policy
    }

    /// How many notifiers are registered now (all lists; a snapshot).
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .enumerate()
            .filter(|(index, slot)| matches!(slot.read(*index), SlotRead::Live(..)))
            .count()
    }

    /// Whether no notifier is registered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Whether `notifier` is registered now (a snapshot).
    pub fn is_registered(&self, notifier: &'static Notifier) -> bool {
        self.slots.iter().enumerate().any(|(index, slot)| {
            matches!(slot.read(index), SlotRead::Live(found, _) if core::ptr::eq(found, notifier))
        })
    }
}

impl<const N: usize> core::fmt::Debug for Registry<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registry")
            .field("slots", &self.slots)
            .field("policy", &self.policy)
            .field("cursor", &self.cursor())
            .finish_non_exhaustive()
    }
}
