//! Per-CPU tracking of NMI-like contexts (NMI, machine check, debug traps).
//!
//! x86_64 has several entries that can interrupt anything, including each
//! other: an NMI can take a debug trap, a machine check can arrive inside an
//! NMI handler, and the IST stacks they run on are not reentrant. Code that
//! must behave differently there (a lock that must not queue, a shootdown
//! that must stop a CPU spinning inside an NMI handler) asks the
//! [`ContextTracker`] of its CPU: [`in_nmi`](ContextTracker::in_nmi), the
//! nesting [`depth`](ContextTracker::depth), which kinds are active, and whether
//! an entry is the *outermost* one.
//!
//! # Design: one word, written only by its own CPU
//!
//! A CPU's nesting state is one `AtomicU64`:
//!
//! | bits  | meaning                                                        |
//! |-------|----------------------------------------------------------------|
//! | 0-3   | depth, `0..=15`                                                |
//! | 4-33  | kind of level 1..=15, two bits each (level n at `4 + 2(n-1)`)  |
//!
//! Enter and exit are each *load word, compute, store word*. Only the CPU the
//! tracker belongs to writes the word, from any of its nested contexts. The
//! property we need (the one Linux's `rcu_nmi_enter`/`rcu_nmi_exit` comments
//! argue for their nesting counter) is:
//!
//! > a nested enter/exit pair that arrives between any two steps of an enter
//! > or an exit leaves the word exactly as it found it.
//!
//! With one word it holds by construction: a nested pair's enter loads the
//! same word the interrupted step saw (or will see), stores its own value, and
//! its exit stores the original word back; the interrupted code then stores a
//! value it computed from an identical word. A design that kept the kind stack
//! in a second location, written before the depth is published, would lose
//! the outer kind to a nested entry arriving between the two stores (the
//! `nesting_injection` tests run exactly that design and see it fail).
//!
//! Events are kept *outside* that word, in counters changed by single atomic
//! read-modify-write instructions, which an interrupt cannot split: an enter
//! at depth 15 fails, leaves the word alone and adds one to the overflow
//! count (overflow is reported, never a silent wrap); an exit that does not
//! match the innermost entry (guards dropped out of order) sets the sticky
//! *unbalanced* flag and still pops one level, so the depth stays bounded and
//! the defect is visible. (An overflow count kept inside the word would be
//! lost to a nested overflowing enter that lands between an outer overflow's
//! load and store: the injection test caught exactly that in an earlier
//! version.)
//!
//! # Memory ordering
//!
//! Every access is `Relaxed`. The writer is always the owning CPU, and a
//! nested context on that CPU observes the interrupted code's stores to each
//! location in program order (single-location coherence; an interrupt on
//! the same CPU is not a second thread). Other CPUs only read the words for
//! diagnostics (crash records); they get *a* recent value of each, never a
//! torn one, and nothing else is published through them.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Deepest supported nesting of NMI-like contexts on one CPU.
pub const MAX_NESTING: u8 = 15;

const DEPTH_MASK: u64 = 0xF;
const KIND_SHIFT: u32 = 4;
const KIND_BITS: u32 = 2;
const KIND_MASK: u64 = 0b11;

/// The kind of an NMI-like context.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextKind {
    /// Non-maskable interrupt (vector 2).
    Nmi = 1,
    /// Machine check exception (vector 18).
    MachineCheck = 2,
    /// Debug exception or breakpoint taken on an IST stack (vectors 1, 3).
    Debug = 3,
}

impl ContextKind {
    const fn from_bits(bits: u64) -> Option<Self> {
        match bits {
            1 => Some(Self::Nmi),
            2 => Some(Self::MachineCheck),
            3 => Some(Self::Debug),
            _ => None,
        }
    }
}

/// Entering would exceed [`MAX_NESTING`]; the tracker counted it and is
/// unchanged otherwise. No guard exists, so there is nothing to exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NestingOverflow {
    /// The context that could not be entered.
    pub kind: ContextKind,
}

impl core::fmt::Display for NestingOverflow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "cannot enter {:?}: the CPU is {} NMI-like contexts deep already",
            self.kind,
            crate::MAX_NESTING
        )
    }
}

impl core::error::Error for NestingOverflow {}

/// A decoded copy of a tracker's state at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextSnapshot {
    word: u64,
    overflows: u64,
    unbalanced: bool,
}

impl ContextSnapshot {
    /// Number of NMI-like contexts currently entered, `0..=MAX_NESTING`.
    pub const fn depth(&self) -> u8 {
        (self.word & DEPTH_MASK) as u8
    }

    /// Kind of nesting level `level` (1 = outermost), if that level is active.
    pub const fn kind_at(&self, level: u8) -> Option<ContextKind> {
        if level == 0 || level > self.depth() {
            return None;
        }
        ContextKind::from_bits((self.word >> kind_shift(level)) & KIND_MASK)
    }

    /// Kind of the innermost active context.
    pub const fn innermost(&self) -> Option<ContextKind> {
        self.kind_at(self.depth())
    }

    /// Whether any active level is of `kind`.
    pub fn contains(&self, kind: ContextKind) -> bool {
        (1..=self.depth()).any(|level| self.kind_at(level) == Some(kind))
    }

    /// How many enters failed with [`NestingOverflow`].
    pub const fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Whether an exit ever failed to match the innermost entry.
    pub const fn unbalanced(&self) -> bool {
        self.unbalanced
    }

    /// The raw nesting word, for crash records (layout in the module
    /// documentation).
    pub const fn raw(&self) -> u64 {
        self.word
    }
}

const fn kind_shift(level: u8) -> u32 {
    KIND_SHIFT + KIND_BITS * (level as u32 - 1)
}

/// NMI-like context state of one CPU. Put one per CPU in a static table.
#[derive(Debug)]
pub struct ContextTracker {
    /// Depth and kinds; see the module docs.
    word: AtomicU64,
    /// Failed enters; changed only by `fetch_add`.
    overflows: AtomicU64,
    /// Sticky; set only by a single store.
    unbalanced: AtomicBool,
}

impl Default for ContextTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextTracker {
    /// A tracker for a CPU in no NMI-like context.
    pub const fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            unbalanced: AtomicBool::new(false),
        }
    }

    /// Enter an NMI-like context of `kind` on the CPU owning this tracker.
    ///
    /// Must be called on that CPU. The guard exits the context when dropped.
    /// At [`MAX_NESTING`] the enter fails, is counted, and leaves the depth
    /// unchanged.
    pub fn enter(&self, kind: ContextKind) -> Result<ContextGuard<'_>, NestingOverflow> {
        step(Step::EnterBegin);
        // Relaxed: only this CPU writes the word (module docs).
        let word = self.word.load(Ordering::Relaxed);
        step(Step::EnterLoaded);
        let depth = (word & DEPTH_MASK) as u8;
        if depth >= MAX_NESTING {
            step(Step::EnterComputed);
            // One read-modify-write instruction: a nested context cannot
            // split it. Relaxed: a counter, nothing is published through it.
            self.overflows.fetch_add(1, Ordering::Relaxed);
            step(Step::EnterStored);
            return Err(NestingOverflow { kind });
        }
        let level = depth + 1;
        let shift = kind_shift(level);
        let new = (word & !DEPTH_MASK & !(KIND_MASK << shift))
            | u64::from(level)
            | ((kind as u64) << shift);
        step(Step::EnterComputed);
        // Relaxed: same-CPU coherence is all a nested context needs.
        self.word.store(new, Ordering::Relaxed);
        step(Step::EnterStored);
        Ok(ContextGuard {
            tracker: self,
            level,
            kind,
            _per_cpu: PhantomData,
        })
    }

    fn exit(&self, level: u8, kind: ContextKind) {
        step(Step::ExitBegin);
        // Relaxed: only this CPU writes the word (module docs).
        let word = self.word.load(Ordering::Relaxed);
        step(Step::ExitLoaded);
        let depth = (word & DEPTH_MASK) as u8;
        let innermost = if depth == 0 {
            None
        } else {
            ContextKind::from_bits((word >> kind_shift(depth)) & KIND_MASK)
        };
        if depth != level || innermost != Some(kind) {
            // A single store of a sticky flag: nesting cannot lose it.
            // Relaxed: a diagnostic flag, nothing is published through it.
            self.unbalanced.store(true, Ordering::Relaxed);
        }
        let new = if depth == 0 {
            word
        } else {
            (word & !DEPTH_MASK & !(KIND_MASK << kind_shift(depth))) | u64::from(depth - 1)
        };
        step(Step::ExitComputed);
        // Relaxed: same-CPU coherence is all a nested context needs.
        self.word.store(new, Ordering::Relaxed);
        step(Step::ExitStored);
    }

    /// The current state, decoded.
    pub fn snapshot(&self) -> ContextSnapshot {
        // Relaxed: diagnostic reads; nothing else is published through these
        // words (module docs). The three are read separately, so a snapshot
        // taken by another CPU may mix moments; each value is whole.
        ContextSnapshot {
            word: self.word.load(Ordering::Relaxed),
            overflows: self.overflows.load(Ordering::Relaxed),
            unbalanced: self.unbalanced.load(Ordering::Relaxed),
        }
    }

    /// Nesting depth without reading the event counters.
    fn depth_only(&self) -> u8 {
        // Relaxed: see `snapshot`.
        (self.word.load(Ordering::Relaxed) & DEPTH_MASK) as u8
    }

    /// Whether the CPU is inside any NMI-like context (NMI, machine check,
    /// debug trap), like Linux's `in_nmi()`.
    pub fn in_nmi(&self) -> bool {
        self.depth_only() > 0
    }

    /// Current nesting depth, `0..=MAX_NESTING`.
    pub fn depth(&self) -> u8 {
        self.depth_only()
    }
}

/// Proof of having entered an NMI-like context; dropping it exits.
///
/// Not `Send`: a context is exited on the CPU that entered it.
#[derive(Debug)]
#[must_use = "dropping the guard exits the context at once"]
pub struct ContextGuard<'a> {
    tracker: &'a ContextTracker,
    level: u8,
    kind: ContextKind,
    _per_cpu: PhantomData<*const ()>,
}

impl ContextGuard<'_> {
    /// Nesting level of this context, 1 = outermost.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Whether this is the outermost NMI-like context on its CPU: the one
    /// that interrupted ordinary code.
    pub fn is_outermost(&self) -> bool {
        self.level == 1
    }

    /// The kind this guard entered.
    pub fn kind(&self) -> ContextKind {
        self.kind
    }
}

impl Drop for ContextGuard<'_> {
    fn drop(&mut self) {
        self.tracker.exit(self.level, self.kind);
    }
}

/// The points between the steps of enter and exit. Test builds let a test
/// run code (a nested enter/exit pair) at each of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    EnterBegin,
    EnterLoaded,
    EnterComputed,
    EnterStored,
    ExitBegin,
    ExitLoaded,
    ExitComputed,
    ExitStored,
}

#[cfg(not(test))]
#[inline(always)]
fn step(_: Step) {}

#[cfg(test)]
fn step(at: Step) {
    crate::test_hook::at(crate::test_hook::HookPoint::Context(at));
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
