//! What the panic path hands the runner ([`PanicInputs`]) and what a
//! notifier body receives ([`PanicContext`]).
//!
//! `PanicContext` is a capability: it has no public constructor, so only
//! the runner ([`Registry::run_list`](crate::Registry::run_list) and
//! [`Registry::resume`](crate::Registry::resume)) can make one, and it is
//! only ever lent to a body for the duration of its call (`&PanicContext`
//! with a lifetime the body cannot extend). The panic-time accessor of a
//! [`NotifierLock`](crate::NotifierLock) requires it, so a body can only
//! *try* that lock, and code outside a notifier cannot use the panic-time
//! accessor at all.

use crashkit_nmi::{CpuIndex, Platform};

use crate::NotifierList;

/// The panic path's inputs to a notifier run: the platform (clock, CPU)
/// and the panic message.
#[derive(Clone, Copy)]
pub struct PanicInputs<'a> {
    platform: &'a dyn Platform,
    message: &'a str,
}

impl<'a> PanicInputs<'a> {
    /// Inputs for a run on `platform` for a panic with `message` (already
    /// formatted by the panic path into its fixed buffer).
    pub const fn new(platform: &'a dyn Platform, message: &'a str) -> Self {
        Self { platform, message }
    }

    /// The platform.
    pub fn platform(&self) -> &'a dyn Platform {
        self.platform
    }

    /// The panic message.
    pub fn message(&self) -> &'a str {
        self.message
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.platform.now_ns()
    }
}

impl core::fmt::Debug for PanicInputs<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PanicInputs")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// What a notifier body receives: proof that it runs under the notifier
/// runner during a panic, plus the panic's facts and its own time budget.
///
/// Only this crate constructs it (the fields are private and there is no
/// constructor), and the body gets `&PanicContext` for the call only.
///
/// ```compile_fail
/// // No way to make one outside the runner:
/// let ctx = crashkit_notifiers::PanicContext { list: todo!() };
/// ```
pub struct PanicContext<'a> {
    inputs: PanicInputs<'a>,
    list: NotifierList,
    started_ns: u64,
    budget_ns: u64,
}

impl<'a> PanicContext<'a> {
    /// The runner's constructor: the only one.
    pub(crate) fn new(
        inputs: PanicInputs<'a>,
        list: NotifierList,
        started_ns: u64,
        budget_ns: u64,
    ) -> Self {
        Self {
            inputs,
            list,
            started_ns,
            budget_ns,
        }
    }

    /// The CPU running the notifiers (the panic owner).
    pub fn cpu(&self) -> CpuIndex {
        self.inputs.platform.current_cpu()
    }

    /// The platform clock, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.inputs.now_ns()
    }

    /// The panic message.
    pub fn message(&self) -> &'a str {
        self.inputs.message
    }

    /// The list being run.
    pub fn list(&self) -> NotifierList {
        self.list
    }

    /// This notifier's budget, in nanoseconds.
    pub fn budget_ns(&self) -> u64 {
        self.budget_ns
    }

    /// Nanoseconds left of this notifier's budget (0 once it is spent): a
    /// body that loops should stop and answer
    /// [`BodyResult::Degraded`](crate::BodyResult::Degraded) when it runs
    /// out.
    pub fn remaining_ns(&self) -> u64 {
        let spent = self.now_ns().saturating_sub(self.started_ns);
        self.budget_ns.saturating_sub(spent)
    }
}

impl core::fmt::Debug for PanicContext<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PanicContext")
            .field("list", &self.list)
            .field("message", &self.inputs.message)
            .field("started_ns", &self.started_ns)
            .field("budget_ns", &self.budget_ns)
            .finish()
    }
}
