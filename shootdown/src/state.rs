//! The shootdown-wide state machine: one 64-bit word says whether a
//! shootdown was issued, by which CPU, and whether its owner still waits.
//!
//! | from              | to                 | by                        | how |
//! |-------------------|--------------------|---------------------------|-----|
//! | `Idle`            | `Issued(owner)`    | the owner, before any NMI | CAS (`claim`), AcqRel |
//! | `Issued(owner)`   | `Finished(owner)`  | the owner, wait over      | store (`finish`), Release |
//! | any but `Idle`    | (unchanged)        | a second `stop_other_cpus`| the failed CAS reports the owner |
//!
//! `Issued` and `Finished` mean the same to every other CPU: stop. There is
//! no way back to `Idle`; a shootdown is a one-time thing, like the panic it
//! serves (Linux keeps its crash handler installed after the wait for the
//! same reason: a CPU may answer late).
//!
//! Word layout: bits 0-31 the phase (0 `Idle`, 1 `Issued`, 2 `Finished`),
//! bits 32-63 the owner's CPU index. One word, so a single load tells a CPU
//! both whether to stop and whether it is the owner.

use crashkit_nmi::CpuIndex;

/// Where a [`Shootdown`](crate::Shootdown) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShootdownState {
    /// No shootdown yet; the NMI handler and the poll do nothing.
    Idle,
    /// `owner` published the shootdown and is sending NMIs or waiting for
    /// the other CPUs to stop.
    Issued {
        /// The CPU that issued it (the panic owner).
        owner: CpuIndex,
    },
    /// `owner`'s wait is over (every CPU stopped, or the deadline passed).
    /// CPUs that answer now still stop and record themselves (late).
    Finished {
        /// The CPU that issued it.
        owner: CpuIndex,
    },
}

const PHASE_MASK: u64 = 0xffff_ffff;
const PHASE_IDLE: u64 = 0;
const PHASE_ISSUED: u64 = 1;
const PHASE_FINISHED: u64 = 2;
const OWNER_SHIFT: u32 = 32;

impl ShootdownState {
    /// The stored value of `Idle` (a zeroed word).
    pub(crate) const IDLE_RAW: u64 = PHASE_IDLE;

    /// The state as stored.
    pub(crate) const fn to_raw(self) -> u64 {
        match self {
            Self::Idle => PHASE_IDLE,
            Self::Issued { owner } => PHASE_ISSUED | (owner.0 as u64) << OWNER_SHIFT,
            Self::Finished { owner } => PHASE_FINISHED | (owner.0 as u64) << OWNER_SHIFT,
        }
    }

    /// The state a stored value encodes; `None` for a value no writer
    /// stores (the word was corrupted).
    pub(crate) const fn from_raw(raw: u64) -> Option<Self> {
        let owner = CpuIndex((raw >> OWNER_SHIFT) as u32);
        match raw & PHASE_MASK {
            PHASE_IDLE if raw == PHASE_IDLE => Some(Self::Idle),
            PHASE_ISSUED => Some(Self::Issued { owner }),
            PHASE_FINISHED => Some(Self::Finished { owner }),
            _ => None,
        }
    }

    /// The CPU that issued the shootdown, unless it is `Idle`.
    pub const fn owner(self) -> Option<CpuIndex> {
        match self {
            Self::Idle => None,
            Self::Issued { owner } | Self::Finished { owner } => Some(owner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips() {
        for owner in [0, 1, 63, u32::MAX - 1, u32::MAX] {
            let owner = CpuIndex(owner);
            for state in [
                ShootdownState::Issued { owner },
                ShootdownState::Finished { owner },
            ] {
                assert_eq!(ShootdownState::from_raw(state.to_raw()), Some(state));
                assert_eq!(state.owner(), Some(owner));
            }
        }
        assert_eq!(
            ShootdownState::from_raw(ShootdownState::IDLE_RAW),
            Some(ShootdownState::Idle)
        );
        assert_eq!(ShootdownState::Idle.owner(), None);
    }

    #[test]
    fn values_no_writer_stores_are_rejected() {
        assert_eq!(ShootdownState::from_raw(3), None);
        assert_eq!(ShootdownState::from_raw(u64::from(u32::MAX)), None);
        // Idle with an owner: never stored.
        assert_eq!(ShootdownState::from_raw(1 << OWNER_SHIFT), None);
    }
}
