//! What a notifier run produces: the body's own answer, the recorded
//! outcome with its stable code, the per-notifier report, the recorder that
//! receives reports, and a list's summary.
//!
//! Outcome codes are stored in the crash record and read by the offline
//! tool; they never change meaning. [`NotifierOutcome`] is therefore defined
//! in the record's format crate (`crashkit-record-format`) and re-exported
//! here.

pub use crashkit_record_format::NotifierOutcome;

use crate::NotifierList;

/// What a notifier body says about its own run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum BodyResult {
    /// It did its whole job.
    Complete,
    /// It could only do part of its job (a lock it tried in passing was
    /// busy, a device did not answer in time, ...).
    Degraded,
}

/// One notifier's turn, as handed to the [`NotifierRecorder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifierReport {
    /// The list it ran in.
    pub list: NotifierList,
    /// Its name.
    pub name: &'static str,
    /// Its priority.
    pub priority: i32,
    /// Its registration number (the tie-breaker within a priority).
    pub sequence: u64,
    /// How its turn went.
    pub outcome: NotifierOutcome,
    /// Platform nanoseconds from just before the body (or the lock attempt)
    /// to just after; for `Panicked`, to when the panic path resumed; 0 for
    /// `NotRun`.
    pub duration_ns: u64,
    /// Its budget ([`Notifier::budget_ns`](crate::Notifier::budget_ns)).
    pub budget_ns: u64,
}

/// Receives one [`NotifierReport`] per notifier, in run order: the panic
/// path's adapter to the crash record.
///
/// It runs on the panic path: no allocation, no blocking lock, bounded
/// time. A panic inside `record` loses that one report (the run cursor has
/// already moved past the notifier).
pub trait NotifierRecorder {
    /// Record one notifier's turn.
    fn record(&mut self, report: &NotifierReport);
}

impl<F: FnMut(&NotifierReport)> NotifierRecorder for F {
    fn record(&mut self, report: &NotifierReport) {
        self(report);
    }
}

/// What one run of a list (or the rest of one, after a resume) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListSummary {
    /// The list.
    pub list: NotifierList,
    /// Reports handed to the recorder, per outcome, indexed by
    /// `outcome.code()` (see [`count`](Self::count)).
    pub outcomes: [u32; 6],
    /// The registry's writer epoch was odd at some point of the walk: a
    /// register or unregister was in progress, on another CPU or frozen
    /// (a CPU stopped mid-edit, or a writer this CPU interrupted). The walk
    /// completed anyway; notifiers that writer was adding or removing may
    /// or may not have run.
    pub writer_mid_edit: bool,
    /// The set of registrations changed between the start and the end of
    /// the walk (the writer epoch moved).
    pub changed_during_walk: bool,
    /// The walk stopped early: more distinct notifiers came and went during
    /// it than the registry has slots, so it could no longer guarantee that
    /// none runs twice. Only possible while writers churn concurrently.
    pub truncated: bool,
}

impl ListSummary {
    pub(crate) const fn new(list: NotifierList) -> Self {
        Self {
            list,
            outcomes: [0; 6],
            writer_mid_edit: false,
            changed_during_walk: false,
            truncated: false,
        }
    }

    /// How many notifiers had `outcome`.
    pub fn count(&self, outcome: NotifierOutcome) -> u32 {
        let index = outcome.code() as usize;
        self.outcomes.get(index).copied().unwrap_or(0)
    }

    /// How many notifiers were reported in total.
    pub fn total(&self) -> u32 {
        self.outcomes
            .iter()
            .fold(0, |sum, n| sum.saturating_add(*n))
    }

    pub(crate) fn add(&mut self, outcome: NotifierOutcome) {
        let index = outcome.code() as usize;
        if let Some(count) = self.outcomes.get_mut(index) {
            *count = count.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_per_outcome() {
        let mut summary = ListSummary::new(NotifierList::PreDump);
        summary.add(NotifierOutcome::Ran);
        summary.add(NotifierOutcome::Ran);
        summary.add(NotifierOutcome::NotRun);
        assert_eq!(summary.count(NotifierOutcome::Ran), 2);
        assert_eq!(summary.count(NotifierOutcome::NotRun), 1);
        assert_eq!(summary.count(NotifierOutcome::Panicked), 0);
        assert_eq!(summary.total(), 3);
    }
}
