//! The per-CPU table of context trackers that every crashkit crate shares.
//!
//! An integrator declares one `static CONTEXTS: CpuContexts<N>` sized for the
//! most CPUs it supports, calls [`CpuContexts::enter_current`] in every
//! NMI-like entry (NMI, #MC, IST #DB), and hands `&CONTEXTS` to the crates that
//! need to know whether a CPU is in NMI context (locks, shootdown).

use crate::{ContextGuard, ContextKind, ContextTracker, CpuIndex, NestingOverflow, Platform};

/// Why [`CpuContexts::enter_current`] could not enter a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnterError {
    /// The platform reported a CPU index outside the table.
    UnknownCpu(CpuIndex),
    /// The CPU is already [`MAX_NESTING`](crate::MAX_NESTING) deep.
    Overflow(NestingOverflow),
}

impl core::fmt::Display for EnterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownCpu(cpu) => write!(f, "{cpu} has no NMI-context tracker"),
            Self::Overflow(overflow) => overflow.fmt(f),
        }
    }
}

impl core::error::Error for EnterError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::UnknownCpu(_) => None,
            Self::Overflow(overflow) => Some(overflow),
        }
    }
}

/// One [`ContextTracker`] per CPU.
#[derive(Debug)]
pub struct CpuContexts<const CPUS: usize> {
    trackers: [ContextTracker; CPUS],
}

impl<const CPUS: usize> Default for CpuContexts<CPUS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize> CpuContexts<CPUS> {
    /// A table with every CPU outside NMI-like contexts.
    pub const fn new() -> Self {
        Self {
            trackers: [const { ContextTracker::new() }; CPUS],
        }
    }

    /// The tracker of `cpu`, if the table covers it.
    pub fn get(&self, cpu: CpuIndex) -> Option<&ContextTracker> {
        self.trackers.get(cpu.as_usize())
    }

    /// The tracker of the calling CPU, if the table covers it.
    pub fn current<P: Platform + ?Sized>(&self, platform: &P) -> Option<&ContextTracker> {
        self.get(platform.current_cpu())
    }

    /// Enter an NMI-like context on the calling CPU.
    pub fn enter_current<P: Platform + ?Sized>(
        &self,
        platform: &P,
        kind: ContextKind,
    ) -> Result<ContextGuard<'_>, EnterError> {
        let cpu = platform.current_cpu();
        let tracker = self.get(cpu).ok_or(EnterError::UnknownCpu(cpu))?;
        tracker.enter(kind).map_err(EnterError::Overflow)
    }

    /// Number of CPUs the table covers.
    pub const fn len(&self) -> usize {
        CPUS
    }

    /// Whether the table covers no CPU at all.
    pub const fn is_empty(&self) -> bool {
        CPUS == 0
    }
}
