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
//!
//! There is no way back within a boot: a panic does not end.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::CpuIndex;

const NO_OWNER: u32 = u32::MAX;

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

    /// Try to make `cpu` the panic owner.
    ///
    /// `cpu` must not be `CpuIndex(u32::MAX)` (the "no owner" encoding); such
    /// a claim is refused as [`PanicClaim::OwnedBy`] itself.
    pub fn claim(&self, cpu: CpuIndex) -> PanicClaim {
        if cpu.0 == NO_OWNER {
            return PanicClaim::OwnedBy(cpu);
        }
        // AcqRel: the Release half publishes what the owner wrote before
        // claiming to CPUs that read the owner with Acquire (`owner`); the
        // Acquire half (failure ordering too) lets a losing CPU see the
        // winner's writes.
        match self
            .owner
            .compare_exchange(NO_OWNER, cpu.0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => PanicClaim::First,
            Err(owner) if owner == cpu.0 => PanicClaim::Reentered,
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
    fn the_no_owner_encoding_cannot_claim() {
        let flag = PanicFlag::new();
        let bogus = CpuIndex(u32::MAX);
        assert_eq!(flag.claim(bogus), PanicClaim::OwnedBy(bogus));
        assert!(!flag.in_progress());
    }
}
