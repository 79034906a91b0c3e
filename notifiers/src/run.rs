//! Running a list, and resuming after a notifier panicked.
//!
//! # A run
//! `run_list(L)` claims the run cursor, then repeatedly picks the next
//! notifier of L (the registry's selection scan), marks it `Running` in the
//! cursor, calls its body (through its declared lock, if any), marks it done,
//! and hands the recorder one [`NotifierReport`]. The outcome:
//!
//! | what happened                                   | outcome           |
//! |-------------------------------------------------|-------------------|
//! | declared lock held                              | `SkippedLockBusy` (body not called) |
//! | body returned after more than its budget        | `OverBudget`      |
//! | body returned `Complete` within its budget      | `Ran`             |
//! | body returned `Degraded` within its budget      | `Degraded`        |
//! | body did not return (panic, found by `resume`)  | `Panicked`        |
//! | skipped by the escalation policy after a panic  | `NotRun`          |
//!
//! # Re-entry
//! A notifier that panics never returns; the panic handler runs again on
//! the same CPU. The panic path then calls [`Registry::resume`], which
//! reads the cursor: `Running(n)` means `n` panicked: it is recorded
//! `Panicked` and the run goes on after it ([`EscalationPolicy`]);
//! `Between(p)` means the runner itself (or the recorder) panicked between
//! notifiers: the run goes on after `p`. A resume that finds the cursor
//! exactly where the previous resume found it made no progress (it panics
//! itself): it gives the list up instead of looping.

use core::sync::atomic::Ordering;

use crate::cursor::Cursor;
use crate::notifier::Body;
use crate::registry::{Candidate, RanSet};
use crate::{
    BodyResult, ListPosition, ListSummary, NotifierList, NotifierOutcome, NotifierRecorder,
    NotifierReport, PanicContext, PanicInputs, Registry,
};

/// What `resume` does after recording a notifier as `Panicked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscalationPolicy {
    /// Go on with the next notifier of the same list (one bad notifier
    /// costs only itself).
    NextNotifier,
    /// Record the rest of the list `NotRun` and give the list up (a list
    /// whose notifiers share state that the panic may have left broken).
    NextList,
}

/// Why [`Registry::run_list`] did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    /// A run of `list` started and did not finish: a notifier (or the
    /// runner) panicked and [`Registry::resume`] was not called yet, or
    /// another CPU is running a list right now (only the panic owner should
    /// run notifiers).
    RunInProgress {
        /// The cursor as found.
        cursor: Cursor,
    },
}

impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::RunInProgress { cursor } => write!(
                f,
                "a run of the notifier lists started and did not finish (cursor {cursor:?})"
            ),
        }
    }
}

impl core::error::Error for RunError {}

/// What [`Registry::resume`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// No list was interrupted: nothing to do.
    Nothing,
    /// The interrupted list was finished (the panicked notifier recorded,
    /// the rest run or recorded `NotRun` by the policy). The panic path goes
    /// on with the list after `summary.list`.
    Finished {
        /// What this resume did in the interrupted list (the part before
        /// the panic was reported by the interrupted run itself).
        summary: ListSummary,
    },
    /// The previous resume was interrupted at the same cursor position (the
    /// runner or recorder panics there): the list was given up.
    GaveUp {
        /// The list given up.
        list: NotifierList,
    },
}

/// The cursor word no resume has started from (not a valid encoding: list
/// code + 1 = 7).
pub(crate) const NO_RESUME: u64 = u64::MAX;

impl<const N: usize> Registry<N> {
    /// Run every notifier of `list` in order, on the panic owner, after the
    /// other CPUs were stopped. Never blocks: declared locks are only tried,
    /// writers mid-edit are stepped over and reported.
    pub fn run_list(
        &self,
        list: NotifierList,
        inputs: &PanicInputs<'_>,
        recorder: &mut impl NotifierRecorder,
    ) -> Result<ListSummary, RunError> {
        self.cursor
            .claim(list)
            .map_err(|cursor| RunError::RunInProgress { cursor })?;
        self.reset_resume_marker();
        let mut summary = ListSummary::new(list);
        self.walk(list, None, inputs, recorder, &mut summary, Action::Run);
        self.cursor.finish(list);
        Ok(summary)
    }

    /// The run cursor now: which notifier is running, or where the run is.
    pub fn cursor(&self) -> Cursor {
        self.cursor.read()
    }

    /// Call on re-entry into the panic path (same CPU): if a list run was
    /// interrupted, record the notifier that was running as `Panicked` and
    /// finish the list according to the [`EscalationPolicy`]; see the
    /// module docs of `run`.
    pub fn resume(
        &self,
        inputs: &PanicInputs<'_>,
        recorder: &mut impl NotifierRecorder,
    ) -> Resumed {
        let word = self.cursor.word();
        let cursor = self.cursor.read();
        let Some(list) = cursor.list().filter(|_| cursor.is_in_list()) else {
            return Resumed::Nothing;
        };
        if self.swap_resume_marker(word) == word {
            // The previous resume started here and never moved the cursor.
            self.cursor.finish(list);
            return Resumed::GaveUp { list };
        }
        let mut summary = ListSummary::new(list);
        match cursor {
            Cursor::Running {
                notifier,
                position,
                started_ns,
                ..
            } => {
                // Move past it first: a panic in the recorder then loses
                // this report rather than repeating it forever.
                self.cursor.done_with(list, position);
                summary.add(NotifierOutcome::Panicked);
                record(
                    recorder,
                    &NotifierReport {
                        list,
                        name: notifier.name(),
                        priority: position.priority,
                        sequence: position.sequence,
                        outcome: NotifierOutcome::Panicked,
                        duration_ns: inputs.now_ns().saturating_sub(started_ns),
                        budget_ns: notifier.budget_ns(),
                    },
                );
                let action = match self.policy {
                    EscalationPolicy::NextNotifier => Action::Run,
                    EscalationPolicy::NextList => {
                        self.cursor.finish(list);
                        Action::MarkNotRun
                    }
                };
                self.walk(list, Some(position), inputs, recorder, &mut summary, action);
            }
            Cursor::Between { after, .. } => {
                self.walk(list, after, inputs, recorder, &mut summary, Action::Run);
            }
            Cursor::Idle | Cursor::Finished { .. } | Cursor::Moving => {}
        }
        self.cursor.finish(list);
        Resumed::Finished { summary }
    }

    fn reset_resume_marker(&self) {
        // Relaxed: the marker is only read and written by the runner on
        // the panic owner (a run, then its re-entries), in program order.
        self.resumed_from.store(NO_RESUME, Ordering::Relaxed);
    }

    fn swap_resume_marker(&self, word: u64) -> u64 {
        // Relaxed: as in `reset_resume_marker`.
        self.resumed_from.swap(word, Ordering::Relaxed)
    }

    /// Walk `list` after `after`, running (or marking) each notifier.
    fn walk(
        &self,
        list: NotifierList,
        mut after: Option<ListPosition>,
        inputs: &PanicInputs<'_>,
        recorder: &mut impl NotifierRecorder,
        summary: &mut ListSummary,
        action: Action,
    ) {
        let opened = self.epoch_now();
        let mut ran = RanSet::<N>::new();
        loop {
            let scan = self.scan(list, after, &ran);
            summary.writer_mid_edit |= scan.writer_mid_edit;
            let Some(candidate) = scan.next else {
                break;
            };
            if !ran.insert(candidate.notifier) {
                summary.truncated = true;
                break;
            }
            after = Some(candidate.position);
            match action {
                Action::Run => self.run_one(list, candidate, inputs, recorder, summary),
                Action::MarkNotRun => {
                    summary.add(NotifierOutcome::NotRun);
                    record(
                        recorder,
                        &report(list, candidate, NotifierOutcome::NotRun, 0),
                    );
                }
            }
        }
        let closed = self.epoch_now();
        summary.writer_mid_edit |= closed & 1 == 1;
        summary.changed_during_walk |= closed != opened;
    }

    fn run_one(
        &self,
        list: NotifierList,
        candidate: Candidate,
        inputs: &PanicInputs<'_>,
        recorder: &mut impl NotifierRecorder,
        summary: &mut ListSummary,
    ) {
        let notifier = candidate.notifier;
        let started = inputs.now_ns();
        self.cursor
            .start(list, notifier, candidate.position.sequence, started);
        let context = PanicContext::new(*inputs, list, started, notifier.budget_ns());
        let result = match notifier.body() {
            Body::Plain(body) => Some(body(&context)),
            Body::Locked(body) => body.call(&context),
        };
        let duration = inputs.now_ns().saturating_sub(started);
        self.cursor.done_with(list, candidate.position);
        let outcome = match result {
            None => NotifierOutcome::SkippedLockBusy,
            Some(_) if duration > notifier.budget_ns() => NotifierOutcome::OverBudget,
            Some(BodyResult::Complete) => NotifierOutcome::Ran,
            Some(BodyResult::Degraded) => NotifierOutcome::Degraded,
        };
        summary.add(outcome);
        record(recorder, &report(list, candidate, outcome, duration));
    }
}

#[derive(Clone, Copy)]
enum Action {
    Run,
    MarkNotRun,
}

fn report(
    list: NotifierList,
    candidate: Candidate,
    outcome: NotifierOutcome,
    duration_ns: u64,
) -> NotifierReport {
    NotifierReport {
        list,
        name: candidate.notifier.name(),
        priority: candidate.position.priority,
        sequence: candidate.position.sequence,
        outcome,
        duration_ns,
        budget_ns: candidate.notifier.budget_ns(),
    }
}

/// Hand `report` to the recorder, and (feature `defmt`) to the crash log.
fn record(recorder: &mut impl NotifierRecorder, report: &NotifierReport) {
    #[cfg(feature = "defmt")]
    defmt::info!(
        "notifier {=str} ({=str} list): {=str} in {=u64} ns",
        report.name,
        report.list.variant_name(),
        report.outcome.variant_name(),
        report.duration_ns
    );
    recorder.record(report);
}
