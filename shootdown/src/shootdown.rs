//! [`Shootdown`]: the one-shot protocol object, a `static` in the kernel.
//!
//! It holds the shootdown-wide state word (see [`crate::ShootdownState`]) and
//! the crash record's per-CPU slots, whose state machine
//! (`crashkit_record::CpuSlot`) tracks each CPU. The owner's half is in
//! `owner.rs` ([`Shootdown::stop_other_cpus`]), the other CPUs' half in
//! `target.rs` ([`Shootdown::handle_nmi`], [`Shootdown::poll`]).

use core::sync::atomic::{AtomicU64, Ordering};

use crashkit_nmi::CpuIndex;
use crashkit_record::CpuSlot;

use crate::ShootdownState;

/// An NMI shootdown over the CPUs of `slots` (slot `i` is CPU `i`).
///
/// ```
/// use crashkit_record::CpuSlot;
/// use crashkit_shootdown::{Shootdown, ShootdownState};
///
/// static SLOTS: [CpuSlot; 4] = [const { CpuSlot::new() }; 4];
/// static SHOOTDOWN: Shootdown = Shootdown::new(&SLOTS);
///
/// assert_eq!(SHOOTDOWN.state(), ShootdownState::Idle);
/// ```
///
/// How the kernel wires it to the NMI entry and to its locks: the crate
/// docs and `docs/shootdown.md`.
#[derive(Debug)]
pub struct Shootdown {
    /// [`ShootdownState`] as stored (`ShootdownState::to_raw`).
    state: AtomicU64,
    slots: &'static [CpuSlot],
}

impl Shootdown {
    /// A shootdown that has not been issued, over `slots` (one per CPU
    /// index; usually the crash record's).
    pub const fn new(slots: &'static [CpuSlot]) -> Self {
        Self {
            state: AtomicU64::new(ShootdownState::IDLE_RAW),
            slots,
        }
    }

    /// The per-CPU slots.
    pub fn slots(&self) -> &'static [CpuSlot] {
        self.slots
    }

    /// The slot of `cpu`, if there is one.
    pub fn slot(&self, cpu: CpuIndex) -> Option<&'static CpuSlot> {
        self.slots.get(cpu.as_usize())
    }

    /// Where the shootdown is. A corrupted state word (no writer stores
    /// such a value) reads as `Idle`, which stops no one.
    pub fn state(&self) -> ShootdownState {
        ShootdownState::from_raw(self.load_raw()).unwrap_or(ShootdownState::Idle)
    }

    /// Whether a shootdown was issued (`Issued` or `Finished`): one load,
    /// for spin loops that want to skip work before calling
    /// [`poll`](Self::poll).
    #[inline]
    pub fn is_issued(&self) -> bool {
        self.load_raw() != ShootdownState::IDLE_RAW
    }

    /// The state word as stored.
    pub(crate) fn load_raw(&self) -> u64 {
        // Acquire: pairs with the Release half of the owner's claim (and
        // with `finish`), so a CPU that sees the shootdown issued also sees
        // what the owner wrote before issuing it (the panic path's record
        // entries, say). The stop itself needs nothing from it: the slot's
        // own compare-and-swap orders the stop against the owner's marks.
        // On x86_64 an Acquire load is a plain `mov`, so the poll stays one
        // load.
        self.state.load(Ordering::Acquire)
    }

    /// `Idle -> Issued(owner)`; on failure, the state that was there.
    pub(crate) fn claim(&self, owner: CpuIndex) -> Result<(), ShootdownState> {
        let issued = ShootdownState::Issued { owner }.to_raw();
        // AcqRel on success: the Release half publishes the owner's earlier
        // writes to targets' Acquire `load_raw` (and the send that follows
        // is ordered after this store by the platform, see
        // `Platform::send_nmi`); the Acquire half is for symmetry with a
        // previous owner's `finish` (there is none: only `Idle` succeeds).
        // Acquire on failure: the losing caller reads the first owner.
        self.state
            .compare_exchange(
                ShootdownState::IDLE_RAW,
                issued,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
            .map_err(|raw| ShootdownState::from_raw(raw).unwrap_or(ShootdownState::Idle))
    }

    /// `Issued(owner) -> Finished(owner)`, by the owner only.
    pub(crate) fn finish(&self, owner: CpuIndex) {
        // Release: a reader that sees `Finished` sees the owner's final
        // `Unresponsive` marks. A plain store suffices: only the owner
        // writes the word once it is `Issued`.
        self.state.store(
            ShootdownState::Finished { owner }.to_raw(),
            Ordering::Release,
        );
    }
}
