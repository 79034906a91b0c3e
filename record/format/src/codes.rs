//! The enums the record stores as `u32` codes, and [`Decoded`], which keeps
//! a code a reader does not know instead of failing on it.
//!
//! Codes are stable: a value, once given a meaning, keeps it in every
//! version of the format. New values may be added without a version change;
//! readers report them as [`Decoded::Unknown`] (see `docs/crash-record.md`,
//! "Versioning").

/// An enum stored in the record as a `u32` code.
pub trait Code: Copy {
    /// The value a stored code encodes; `None` for a code this version of
    /// the crate does not know.
    fn from_code(code: u32) -> Option<Self>;
    /// The stored code.
    fn code(self) -> u32;
}

/// A stored code, decoded if this reader knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A code this reader knows.
    Known(T),
    /// A code this reader does not know (a newer writer, or corruption).
    Unknown(u32),
}

impl<T: Code> Decoded<T> {
    /// Decode `code`.
    pub fn from_code(code: u32) -> Self {
        T::from_code(code).map_or(Self::Unknown(code), Self::Known)
    }

    /// The known value, if any.
    pub fn known(self) -> Option<T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Unknown(_) => None,
        }
    }

    /// The stored code.
    pub fn code(self) -> u32 {
        match self {
            Self::Known(value) => value.code(),
            Self::Unknown(code) => code,
        }
    }
}

code_enum! {
    /// How far the panic path got (the panic section's `phase`). The panic
    /// owner sets each phase before it starts the step.
    ///
    /// | from | to | when |
    /// |------|----|------|
    /// | `Idle` | `Claimed` | the owner won the panic flag |
    /// | any phase | a later phase | the next step starts, or an escalation skipped the steps between |
    /// | `DumpHandover` | `Notifiers` | the hand-over returned (failed or absent): the lists that run after the dump |
    /// | `FinalAction` | `Halted` | the final action was to halt: the owner parks |
    ///
    /// The record stores what it is told (`PanicSection::set_phase`
    /// does not refuse a transition): it is an observer, and a refused
    /// store would hide what happened.
    pub enum PanicPhase {
        /// No panic (a fresh record reads this way).
        Idle = 0,
        /// An owner claimed the panic; it records its registers and the
        /// message.
        Claimed = 1,
        /// The shootdown of the other CPUs runs.
        StoppingCpus = 2,
        /// Notifier lists run (before or after the dump hand-over).
        Notifiers = 3,
        /// The capture kernel hand-over runs; on success nothing follows.
        DumpHandover = 4,
        /// The final action (halt or reboot) runs.
        FinalAction = 5,
        /// The owner halted for good; nothing follows.
        Halted = 6,
    }
}

code_enum! {
    /// Which timestamp of the panic section's `stamps` array (index = code).
    pub enum PhaseStamp {
        /// The panic path was entered (before the claim).
        PanicEntry = 0,
        /// The shootdown started.
        ShootdownStart = 1,
        /// The shootdown returned.
        ShootdownEnd = 2,
        /// The first notifier list started.
        NotifiersStart = 3,
        /// The last notifier list ended.
        NotifiersEnd = 4,
        /// The dump hand-over started.
        DumpHandoverStart = 5,
        /// The dump hand-over returned (it failed).
        DumpHandoverEnd = 6,
        /// The final action started.
        FinalAction = 7,
    }
}

code_enum! {
    /// What the capture-kernel hand-over did (`dump_result`).
    pub enum DumpResult {
        /// The panic path has not reached the hand-over.
        NotAttempted = 0,
        /// The hand-over started; written just before control leaves for
        /// the capture kernel, so a capture kernel reads this value.
        Started = 1,
        /// No dump hook or no capture kernel is configured.
        NotConfigured = 2,
        /// The hook returned: the hand-over failed (`dump_detail` says why,
        /// in the hook's own codes).
        Failed = 3,
        /// An escalation skipped the hand-over.
        Skipped = 4,
        /// The hand-over did not happen and the in-place writer wrote the
        /// dump in the crashed kernel (`dump_detail` is its `DumpOutcome`
        /// code; the dump section says why and how).
        WrittenInPlace = 5,
    }
}

code_enum! {
    /// The action the panic path ended with (`final_action`).
    pub enum FinalAction {
        /// The panic path has not reached its final action.
        NotReached = 0,
        /// Halt: the owner parks for good.
        Halt = 1,
        /// The integrator's reboot callback.
        Reboot = 2,
        /// The final action failed or the escalation limit was reached; the
        /// owner parked without running any callback.
        HaltAfterFailure = 3,
    }
}

/// What an escalation skipped: a set of bits (`skipped` in the panic
/// section and in each escalation log entry). Unknown bits are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Skipped(pub u32);

impl Skipped {
    /// Nothing.
    pub const NONE: Self = Self(0);
    /// The rest of the claim step (owner registers or message).
    pub const CLAIM: Self = Self(1 << 0);
    /// The rest of the shootdown.
    pub const SHOOTDOWN: Self = Self(1 << 1);
    /// The notifier that was running (its outcome is `Panicked`).
    pub const NOTIFIER: Self = Self(1 << 2);
    /// The dump hand-over.
    pub const DUMP_HANDOVER: Self = Self(1 << 3);
    /// The final action's callback.
    pub const FINAL_ACTION: Self = Self(1 << 4);
    /// Every remaining step (the escalation limit was reached).
    pub const REMAINING_STEPS: Self = Self(1 << 5);

    /// Every bit with a name for reports, in bit order.
    pub const NAMED: [(Skipped, &'static str); 6] = [
        (Self::CLAIM, "claim"),
        (Self::SHOOTDOWN, "shootdown"),
        (Self::NOTIFIER, "notifier"),
        (Self::DUMP_HANDOVER, "dump hand-over"),
        (Self::FINAL_ACTION, "final action"),
        (Self::REMAINING_STEPS, "remaining steps"),
    ];

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Skipped {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// One entry of the escalation log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escalation {
    /// The phase the owner was in when it panicked again.
    pub phase: Decoded<PanicPhase>,
    /// What this escalation skipped.
    pub skipped: Skipped,
    /// When (platform nanoseconds).
    pub at_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Code + PartialEq + core::fmt::Debug>(all: &[T]) {
        for (index, &value) in all.iter().enumerate() {
            assert_eq!(value.code(), index as u32, "codes are dense from 0");
            assert_eq!(T::from_code(value.code()), Some(value));
            assert_eq!(Decoded::<T>::from_code(value.code()), Decoded::Known(value));
        }
        let next = all.len() as u32;
        assert_eq!(Decoded::<T>::from_code(next), Decoded::Unknown(next));
        assert_eq!(Decoded::<T>::from_code(u32::MAX).code(), u32::MAX);
    }

    #[test]
    fn every_code_round_trips_and_the_next_one_is_unknown() {
        round_trips(&PanicPhase::ALL);
        round_trips(&PhaseStamp::ALL);
        round_trips(&DumpResult::ALL);
        round_trips(&FinalAction::ALL);
        round_trips(&crate::NotifierList::ALL);
        round_trips(&crate::NotifierOutcome::ALL);
    }

    #[test]
    fn skipped_bits_combine() {
        let both = Skipped::NOTIFIER | Skipped::DUMP_HANDOVER;
        assert!(both.contains(Skipped::NOTIFIER));
        assert!(!both.contains(Skipped::CLAIM));
        assert_eq!(both.0, 0b1100);
    }
}
