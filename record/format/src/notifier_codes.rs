//! The notifier lists and the outcomes of a notifier's turn, with their
//! stable codes.
//!
//! One list per job, so that a notifier that flushes a log to the
//! hypervisor does not wait behind one that prints a summary, and the panic
//! path can decide per job whether it runs before or after the dump
//! hand-over (the split Guilherme Piccoli proposed for Linux in 2022, which
//! Linux itself never merged: it still has one list).
//!
//! The codes are stored in the crash record and read by the offline tool;
//! they never change meaning. They are defined here, in the record's format
//! crate, so that the offline tool reads them without linking the notifier
//! crate; `crashkit-notifiers` re-exports them and stores `code()` as it is.

code_enum! {
    /// Which list a notifier belongs to. Lists run in [`NotifierList::ALL`]
    /// order (code order) when the panic path runs them all.
    #[derive(PartialOrd, Ord)]
    pub enum NotifierList {
        /// Tell a hypervisor (or a BMC) that the guest panicked, or flush a log
        /// to it: first, because it is the most likely to reach a human and the
        /// least likely to disturb the dump.
        Hypervisor = 0,
        /// Print or store information (a summary, a ring buffer dump, the
        /// panic message on a display).
        Informational = 1,
        /// Just before the dump hand-over: quiesce what would corrupt the dump
        /// or the capture kernel (DMA engines, watchdogs).
        PreDump = 2,
        /// Only when the panic path goes on after the dump step (no capture
        /// kernel loaded, or the hand-over failed): jobs before a reboot or
        /// halt.
        PostDump = 3,
    }
}

impl NotifierList {
    /// The list that runs after this one in [`ALL`](Self::ALL), if any.
    pub const fn next(self) -> Option<Self> {
        match self {
            Self::Hypervisor => Some(Self::Informational),
            Self::Informational => Some(Self::PreDump),
            Self::PreDump => Some(Self::PostDump),
            Self::PostDump => None,
        }
    }

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hypervisor => "hypervisor",
            Self::Informational => "informational",
            Self::PreDump => "pre-dump",
            Self::PostDump => "post-dump",
        }
    }
}

code_enum! {
    /// How one notifier's turn went, as recorded.
    pub enum NotifierOutcome {
        /// The body ran to completion within its budget.
        Ran = 0,
        /// The body ran within its budget and said it did only part of its job
        /// (the notifier crate's `BodyResult::Degraded`).
        Degraded = 1,
        /// The notifier declared a lock ((`Notifier::locked` in the notifier crate))
        /// and the lock was held: the body was not called.
        SkippedLockBusy = 2,
        /// The body returned, but later than its budget allows. A body cannot
        /// be preempted, so this is measured after the fact. Takes precedence
        /// over `Ran` and `Degraded` (the record keeps the duration).
        OverBudget = 3,
        /// The body did not return: it panicked, and the panic path, re-entered,
        /// found it in the run cursor (`Registry::resume`).
        Panicked = 4,
        /// The notifier was not called: the escalation policy gave up on the
        /// rest of its list after another notifier panicked.
        NotRun = 5,
    }
}

impl NotifierOutcome {
    /// Whether the body was called (and returned or panicked).
    pub const fn body_called(self) -> bool {
        matches!(
            self,
            Self::Ran | Self::Degraded | Self::OverBudget | Self::Panicked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_round_trip() {
        let codes: [u32; 4] = NotifierList::ALL.map(NotifierList::code);
        assert_eq!(
            codes,
            [0, 1, 2, 3],
            "stored in crash records: never renumber"
        );
        for list in NotifierList::ALL {
            assert_eq!(NotifierList::from_code(list.code()), Some(list));
        }
        assert_eq!(NotifierList::from_code(4), None);
        assert_eq!(NotifierList::from_code(u32::MAX), None);
    }

    #[test]
    fn outcome_codes_are_stable_and_round_trip() {
        let codes = NotifierOutcome::ALL.map(NotifierOutcome::code);
        assert_eq!(
            codes,
            [0, 1, 2, 3, 4, 5],
            "stored in crash records: never renumber"
        );
        for outcome in NotifierOutcome::ALL {
            assert_eq!(NotifierOutcome::from_code(outcome.code()), Some(outcome));
        }
        assert_eq!(NotifierOutcome::from_code(6), None);
        assert_eq!(NotifierOutcome::from_code(u32::MAX), None);
    }

    #[test]
    fn next_follows_the_run_order() {
        let mut order = [NotifierList::Hypervisor; 4];
        let mut list = Some(NotifierList::Hypervisor);
        let mut count = 0;
        while let Some(current) = list {
            order[count] = current;
            count += 1;
            list = current.next();
        }
        assert_eq!(count, 4);
        assert_eq!(order, NotifierList::ALL);
    }
}
