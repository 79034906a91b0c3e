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
//! | no owner      | owner = `cpu` | [`PanicFlag::claim`] (`cpu` may be [`CpuIndex::UNKNOWN`]) |
//!
//! A CPU without an index ([`CpuIndex::is_unknown`]: it panicked before the
//! kernel brought it online) can own the panic too, so that its panic is
//! recorded and the other CPUs are stopped; [`PanicFlag::owner`] then says
//! `CpuIndex::UNKNOWN`. Such an owner cannot tell itself from another CPU
//! without an index, so for it there is no re-entry: a second claim by any
//! CPU without an index is [`PanicClaim::OwnedBy`] (its panic path then
//! waits and parks instead of escalating; the record keeps what the first
//! pass wrote).
//!
//! There is no way back within a boot: a panic does not end.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::CpuIndex;

/// The owner word while nobody owns the panic: outside the `u32` range, so
/// every `CpuIndex`, `UNKNOWN` included, is an owner of its own.
const NO_OWNER: u64 = u64::MAX;

/// The panic owner of one machine. [`PANIC`] is the one the kernel uses;
/// tests make their own.
#[derive(Debug)]
pub struct PanicFlag {
    /// [`NO_OWNER`], or the owner's `CpuIndex` zero-extended.
    owner: AtomicU64,
}

/// The result of [`PanicFlag::claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicClaim {
    /// This CPU is now the panic owner.
    First,
    /// This CPU already owned the panic (a panic inside the panic path, or
    /// in an NMI on the owner).
    Reentered,
    /// Another CPU owns the panic ([`CpuIndex::UNKNOWN`]: one without an
    /// index).
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
            owner: AtomicU64::new(NO_OWNER),
        }
    }

    /// Try to make `cpu` the panic owner. A CPU without an index
    /// ([`CpuIndex::UNKNOWN`]) can win, but a later claim of one is never
    /// [`PanicClaim::Reentered`] (see the module docs).
    pub fn claim(&self, cpu: CpuIndex) -> PanicClaim {
        let word = u64::from(cpu.0);
        // AcqRel: the Release half publishes what the owner wrote before
        // claiming to CPUs that read the owner with Acquire (`owner`); the
        // Acquire half (failure ordering too) lets a losing CPU see the
        // winner's writes.
        match self
            .owner
            .compare_exchange(NO_OWNER, word, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => PanicClaim::First,
            Err(owner) if owner == word && !cpu.is_unknown() => PanicClaim::Reentered,
            Err(owner) => PanicClaim::OwnedBy(Self::index(owner)),
        }
    }

    /// The owner CPU, if a panic is in progress ([`CpuIndex::UNKNOWN`] if
    /// the owner had no index).
    pub fn owner(&self) -> Option<CpuIndex> {
        // Acquire: pairs with the Release half of `claim`. A caller that
        // only compares the owner with its own index could use Relaxed (a
        // CPU always sees its own claim), but the difference is one load.
        match self.owner.load(Ordering::Acquire) {
            NO_OWNER => None,
            owner => Some(Self::index(owner)),
        }
    }

    /// Whether a panic is in progress.
    pub fn in_progress(&self) -> bool {
        self.owner().is_some()
    }

    /// An owner word other than [`NO_OWNER`] back to its index: only
    /// `claim` stores one, from a `u32`.
    fn index(owner: u64) -> CpuIndex {
        u32::try_from(owner).map_or(CpuIndex::UNKNOWN, CpuIndex)
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
    fn every_index_up_to_the_last_below_unknown_owns_as_itself() {
        let flag = PanicFlag::new();
        let last = CpuIndex(u32::MAX - 1);
        assert_eq!(flag.claim(last), PanicClaim::First);
        assert_eq!(flag.owner(), Some(last));
        assert_eq!(flag.claim(last), PanicClaim::Reentered);
    }

    #[test]
    fn a_cpu_without_an_index_owns_the_panic_but_never_reenters() {
        let flag = PanicFlag::new();
        assert_eq!(flag.claim(CpuIndex::UNKNOWN), PanicClaim::First);
        assert_eq!(flag.owner(), Some(CpuIndex::UNKNOWN));
        assert!(flag.in_progress());
        // Another CPU without an index (or the same one again): it cannot
        // know which, so it is never a re-entry.
        assert_eq!(
            flag.claim(CpuIndex::UNKNOWN),
            PanicClaim::OwnedBy(CpuIndex::UNKNOWN)
        );
        // A CPU with an index lost.
        assert_eq!(
            flag.claim(CpuIndex(0)),
            PanicClaim::OwnedBy(CpuIndex::UNKNOWN)
        );
    }

    #[test]
    fn a_cpu_without_an_index_loses_to_an_owner() {
        let flag = PanicFlag::new();
        assert_eq!(flag.claim(CpuIndex(1)), PanicClaim::First);
        assert_eq!(
            flag.claim(CpuIndex::UNKNOWN),
            PanicClaim::OwnedBy(CpuIndex(1))
        );
    }
}
