//! NMI handlers: what a handler is, what it is told, what it answers.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{CpuIndex, RegisterFrame};

/// What a handler receives for one NMI.
#[derive(Debug)]
pub struct NmiEvent<'a> {
    /// The CPU taking the NMI.
    pub cpu: CpuIndex,
    /// The interrupted context's registers.
    pub frame: &'a RegisterFrame,
    /// Whether this NMI interrupted the same instruction as the previous NMI
    /// on this CPU, the sign of two NMIs arriving back to back (the second
    /// one latched while the first was being handled).
    pub back_to_back: bool,
}

/// A handler's answer: did this NMI (also) come from its source?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NmiOutcome {
    /// Not this handler's source.
    NotMine,
    /// This handler's source raised the NMI and the handler dealt with it.
    Handled,
}

/// A handler function. It runs in NMI context: no allocation, no lock that
/// ordinary code could hold, bounded time.
pub type HandlerFn = fn(&NmiEvent<'_>) -> NmiOutcome;

/// An NMI handler as registered: a name for reports, the function, and its
/// statistics.
///
/// Declare handlers as statics (`static PMU: NmiHandler = NmiHandler::new(..)`)
/// and register `&PMU`. The statistics live in the handler, so a handler
/// registered in two chains accumulates both.
#[derive(Debug)]
pub struct NmiHandler {
    name: &'static str,
    handle: HandlerFn,
    stats: HandlerStats,
}

impl NmiHandler {
    /// A handler named `name` that runs `handle`.
    pub const fn new(name: &'static str, handle: HandlerFn) -> Self {
        Self {
            name,
            handle,
            stats: HandlerStats::new(),
        }
    }

    /// The handler's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Calls, claims and the longest run so far.
    pub fn stats(&self) -> &HandlerStats {
        &self.stats
    }

    /// Run the handler and account for it: one call, a claim if it handled
    /// the NMI, and its duration against the longest so far.
    pub(crate) fn run(&self, event: &NmiEvent<'_>, now_ns: impl Fn() -> u64) -> NmiOutcome {
        let start = now_ns();
        let outcome = (self.handle)(event);
        let elapsed = now_ns().saturating_sub(start);
        self.stats.record(elapsed, outcome);
        outcome
    }
}

/// Per-handler counters. Updated with relaxed atomics from every CPU.
#[derive(Debug)]
pub struct HandlerStats {
    calls: AtomicU64,
    claimed: AtomicU64,
    longest_ns: AtomicU64,
}

impl HandlerStats {
    const fn new() -> Self {
        Self {
            calls: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            longest_ns: AtomicU64::new(0),
        }
    }

    // Relaxed everywhere: these are independent statistics; no reader infers
    // anything about other memory from them.
    fn record(&self, elapsed_ns: u64, outcome: NmiOutcome) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if outcome == NmiOutcome::Handled {
            self.claimed.fetch_add(1, Ordering::Relaxed);
        }
        self.longest_ns.fetch_max(elapsed_ns, Ordering::Relaxed);
    }

    /// How many times the handler ran.
    pub fn calls(&self) -> u64 {
        // Relaxed: statistics only (see `record`).
        self.calls.load(Ordering::Relaxed)
    }

    /// How many times it answered [`NmiOutcome::Handled`].
    pub fn claimed(&self) -> u64 {
        // Relaxed: statistics only (see `record`).
        self.claimed.load(Ordering::Relaxed)
    }

    /// Its longest single run, in the platform's nanoseconds.
    pub fn longest_ns(&self) -> u64 {
        // Relaxed: statistics only (see `record`).
        self.longest_ns.load(Ordering::Relaxed)
    }
}
