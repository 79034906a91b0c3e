//! Who owns the panic: one word that says whether a panic is in progress and
//! on which CPU, owned by the NMI core so every crate can ask.
//!
//! The panic path claims it once (a compare-and-swap from "no owner"); a
//! second panic on the owner CPU (an NMI that panics while the owner is
//! already panicking) re-enters, and panics on other CPUs learn they lost.
//! Locks ask it to decide how long they may wait (see [`crate::lock`]).
//!
//! | from          | to            | by                        |
//! |---------------|---------------|---------------------------|
//! | no owner      | owner = `cpu` | [`PanicFlag::claim`]      |
//! | no owner      | owner = [`PanicFlag::UNREGISTERED_OWNER`] | [`PanicFlag::claim`] by a CPU without an index |
//!
//! A CPU without an index (the platform's `current_cpu` gave `u32::MAX`:
//! it panicked before the kernel brought it online) can own the panic too,
//! so that its panic is recorded and the other CPUs are stopped. Such an
//! owner cannot tell itself from another CPU without an index, so for it
//! there is no re-entry: a second claim by any CPU without an index is
//! [`PanicClaim::OwnedBy`] (its panic path then waits and parks instead of
//! escalating; the record keeps what the first pass wrote).
//!
//! There is no way back within a boot: a panic does not end.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::CpuIndex;

const NO_OWNER: u32 = u32::MAX;
/// The owner word of a CPU without an index (see the module docs).
const UNREGISTERED: u32 = u32::MAX - 1;

/// The panic owner of one machine. [`PANIC`] is the one the kernel uses;
/// tests make their own.
#[derive(Debug)]
pub struct PanicFlag {
    owner: AtomicU32,
}

/// The result of [`PanicFlag::claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicClaim {
    /// This CPU is now the panic owner.
    First,
    /// This CPU already owned the panic (a panic inside the panic path, or
    /// in an NMI on the owner).
    Reentered,
    /// Another CPU owns the panic.
    OwnedBy(CpuIndex),
}

impl Default for PanicFlag {
    fn default() -> Self {
        Self::new()
    }
}

impl PanicFlag {
    /// No panic in progress.
    pub const fn new() -> Self {
        Self {
            owner: AtomicU32::new(NO_OWNER),
        }
    }

    /// What [`owner`](Self::owner) says when the owner had no index. No
    /// CPU has this index.
    pub const UNREGISTERED_OWNER: CpuIndex = CpuIndex(UNREGISTERED);

    /// Try to make `cpu` the panic owner.
    ///
    /// `CpuIndex(u32::MAX)` (a platform's "this CPU has no index", and
    /// [`UNREGISTERED_OWNER`](Self::UNREGISTERED_OWNER) itself) claims as a
    /// CPU without an index: the owner becomes `UNREGISTERED_OWNER`, and a
    /// later claim of theirs is never [`PanicClaim::Reentered`].
    pub fn claim(&self, cpu: CpuIndex) -> PanicClaim {
        let unregistered = cpu.0 == NO_OWNER || cpu.0 == UNREGISTERED;
        let word = if unregistered { UNREGISTERED } else { cpu.0 };
        // AcqRel: the Release half publishes what the owner wrote before
        // claiming to CPUs that read the owner with Acquire (`owner`); the
        // Acquire half (failure ordering too) lets a losing CPU see the
        // winner's writes.
        match self
            .owner
            .compare_exchange(NO_OWNER, word, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => PanicClaim::First,
            Err(owner) if owner == word && !unregistered => PanicClaim::Reentered,
            Err(owner) => PanicClaim::OwnedBy(CpuIndex(owner)),
        }
    }

    /// The owner CPU, if a panic is in progress.
    pub fn owner(&self) -> Option<CpuIndex> {
        // Acquire: pairs with the Release half of `claim`. A caller that
        // only compares the owner with its own index could use Relaxed (a
        // CPU always sees its own claim), but the difference is one load.
        match self.owner.load(Ordering::Acquire) {
            NO_OWNER => None,
            owner => Some(CpuIndex(owner)),
        }
    }

    /// Whether a panic is in progress.
    pub fn in_progress(&self) -> bool {
        self.owner().is_some()
    }
}

/// The machine's panic flag: the panic path claims it, everything else
/// reads it.
pub static PANIC: PanicFlag = PanicFlag::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_claim_wins_reentry_is_recognised() {
        let flag = PanicFlag::new();
        assert_eq!(flag.owner(), None);
        assert_eq!(flag.claim(CpuIndex(2)), PanicClaim::First);
        assert_eq!(flag.claim(CpuIndex(2)), PanicClaim::Reentered);
        assert_eq!(flag.claim(CpuIndex(0)), PanicClaim::OwnedBy(CpuIndex(2)));
        assert_eq!(flag.owner(), Some(CpuIndex(2)));
        assert!(flag.in_progress());
    }

    #[test]
    fn a_cpu_without_an_index_owns_the_panic_but_never_reenters() {
        let flag = PanicFlag::new();
        let no_index = CpuIndex(u32::MAX);
        assert_eq!(flag.claim(no_index), PanicClaim::First);
        assert_eq!(flag.owner(), Some(PanicFlag::UNREGISTERED_OWNER));
        assert!(flag.in_progress());
        // Another CPU without an index (or the same one again): it cannot
        // know which, so it is never a re-entry.
        assert_eq!(
            flag.claim(no_index),
            PanicClaim::OwnedBy(PanicFlag::UNREGISTERED_OWNER)
        );
        assert_eq!(
            flag.claim(PanicFlag::UNREGISTERED_OWNER),
            PanicClaim::OwnedBy(PanicFlag::UNREGISTERED_OWNER)
        );
        // A CPU with an index lost.
        assert_eq!(
            flag.claim(CpuIndex(0)),
            PanicClaim::OwnedBy(PanicFlag::UNREGISTERED_OWNER)
        );
    }

    #[test]
    fn a_cpu_without_an_index_loses_to_an_owner() {
        let flag = PanicFlag::new();
        assert_eq!(flag.claim(CpuIndex(1)), PanicClaim::First);
        assert_eq!(
            flag.claim(CpuIndex(u32::MAX)),
            PanicClaim::OwnedBy(CpuIndex(1))
        );
    }
}
