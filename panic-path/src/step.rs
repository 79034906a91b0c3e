//! The panic sequence as a list of steps, and where a re-entered panic
//! continues.
//!
//! The owner runs the steps in order, skipping those the configuration
//! leaves out, and writes the step it is about to run into [`Progress`]
//! first. A panic on the owner while a step runs cannot return into it
//! (kernels abort; nothing unwinds), so the re-entered panic handler reads
//! the step that failed and continues with the one after it:
//!
//! | failed step | continue with |
//! |-------------|---------------|
//! | `Claim` | `StopCpus` |
//! | `StopCpus` | `Hypervisor` |
//! | a notifier list | the same list after the notifier that panicked (the registry's cursor says which), then the following steps |
//! | `DumpHandover` | the step after it |
//! | `FinalAction` | `Park` |
//! | `Park` | `Park` |
//!
//! [`Step::after`] is that table for every step but the notifier lists,
//! whose resumption the sequence handles with the registry's cursor.

use core::sync::atomic::{AtomicU32, Ordering, compiler_fence};

/// One step of the panic sequence, in order. The values are stored in
/// [`Progress`] and are not part of the crash record's format (the record
/// has its own phase codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Step {
    /// Record the owner's registers and the panic message.
    Claim = 0,
    /// Install the stop handler and shoot the other CPUs down.
    StopCpus = 1,
    /// The hypervisor notifier list.
    Hypervisor = 2,
    /// The informational list, when configured to run before the dump.
    InformationalBeforeDump = 3,
    /// The pre-dump list.
    PreDump = 4,
    /// The dump hook (returns only if the hand-over failed).
    DumpHandover = 5,
    /// The informational list, when it did not run before the dump.
    InformationalAfterDump = 6,
    /// The post-dump list.
    PostDump = 7,
    /// Halt or the integrator's reboot callback.
    FinalAction = 8,
    /// Park the CPU for good: where everything ends, escalation included.
    Park = 9,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 10] = [
        Step::Claim,
        Step::StopCpus,
        Step::Hypervisor,
        Step::InformationalBeforeDump,
        Step::PreDump,
        Step::DumpHandover,
        Step::InformationalAfterDump,
        Step::PostDump,
        Step::FinalAction,
        Step::Park,
    ];

    /// The step a stored value encodes; an unknown value (memory
    /// corruption) reads as `Park`, the one step that cannot go wrong.
    pub const fn from_raw(raw: u32) -> Step {
        match raw {
            0 => Step::Claim,
            1 => Step::StopCpus,
            2 => Step::Hypervisor,
            3 => Step::InformationalBeforeDump,
            4 => Step::PreDump,
            5 => Step::DumpHandover,
            6 => Step::InformationalAfterDump,
            7 => Step::PostDump,
            8 => Step::FinalAction,
            _ => Step::Park,
        }
    }

    /// The step after this one in the sequence, before the configuration
    /// skips any (see [`Step::runs`]). `Park` is last and follows itself.
    pub const fn after(self) -> Step {
        Step::from_raw(self as u32 + 1)
    }

    /// Whether the step runs at all with `informational_before_dump`
    /// (Linux's `crash_kexec_post_notifiers`): the informational list runs
    /// either before the dump or after it, never both.
    pub const fn runs(self, informational_before_dump: bool) -> bool {
        match self {
            Step::InformationalBeforeDump => informational_before_dump,
            Step::InformationalAfterDump => !informational_before_dump,
            _ => true,
        }
    }

    /// Whether the step runs a notifier list.
    pub const fn is_notifier_list(self) -> bool {
        matches!(
            self,
            Step::Hypervisor
                | Step::InformationalBeforeDump
                | Step::PreDump
                | Step::InformationalAfterDump
                | Step::PostDump
        )
    }
}

/// How far the owner got, and how often it re-entered: the state a
/// re-entered panic resumes from.
///
/// Only the panic owner reads and writes it, always on its own CPU (a
/// re-entry is a panic on the same CPU, in a nested frame or an NMI), so
/// the accesses are Relaxed; compiler fences keep the compiler from moving
/// a step's work across the store that announces it.
#[derive(Debug)]
pub struct Progress {
    step: AtomicU32,
    escalations: AtomicU32,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Nothing run yet.
    pub const fn new() -> Self {
        Self {
            step: AtomicU32::new(Step::Claim as u32),
            escalations: AtomicU32::new(0),
        }
    }

    /// Announce that `step` starts now.
    pub fn enter(&self, step: Step) {
        // Nothing of the step may be moved above the announcement, or a
        // panic in it would be blamed on the step before.
        compiler_fence(Ordering::SeqCst);
        // Relaxed: read only by this CPU (see the type's docs).
        self.step.store(step as u32, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }

    /// The step that was running (the one a re-entered panic blames).
    pub fn current(&self) -> Step {
        // Relaxed: written only by this CPU.
        Step::from_raw(self.step.load(Ordering::Relaxed))
    }

    /// Count one more re-entry and return how many there have been.
    pub fn escalate(&self) -> u32 {
        // Relaxed: written only by this CPU. Saturating: a counter that
        // wrapped would let the escalation limit pass again.
        let previous = self
            .escalations
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap_or(u32::MAX);
        previous.saturating_add(1)
    }

    /// Re-entries so far.
    pub fn escalations(&self) -> u32 {
        // Relaxed: written only by this CPU.
        self.escalations.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_and_follow_each_other() {
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(*step as usize, i);
            assert_eq!(Step::from_raw(*step as u32), *step);
        }
        for pair in Step::ALL.windows(2) {
            assert_eq!(pair[0].after(), pair[1]);
        }
        assert_eq!(Step::Park.after(), Step::Park);
        assert_eq!(Step::from_raw(77), Step::Park);
    }

    #[test]
    fn the_informational_list_runs_once_either_side_of_the_dump() {
        for before in [false, true] {
            let informational = [Step::InformationalBeforeDump, Step::InformationalAfterDump]
                .iter()
                .filter(|s| s.runs(before))
                .count();
            assert_eq!(informational, 1);
            assert_eq!(Step::InformationalBeforeDump.runs(before), before);
        }
        assert!(
            Step::ALL
                .iter()
                .filter(|s| !s.is_notifier_list())
                .all(|s| s.runs(false) && s.runs(true))
        );
    }

    #[test]
    fn progress_counts_escalations_and_remembers_the_step() {
        let progress = Progress::new();
        assert_eq!(progress.current(), Step::Claim);
        progress.enter(Step::PreDump);
        assert_eq!(progress.current(), Step::PreDump);
        assert_eq!(progress.escalate(), 1);
        assert_eq!(progress.escalate(), 2);
        assert_eq!(progress.escalations(), 2);
    }
}
