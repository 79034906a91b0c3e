//! Per-CPU queue nodes: where a CPU's waiters wait, and what its nested
//! acquirers did.

use core::sync::atomic::{AtomicU64, Ordering};

use super::sync::AtomicU32;

/// Queue nodes per CPU: one per nested context that can wait at once. A
/// fifth nested waiter spins test-and-set instead.
pub const NODES_PER_CPU: usize = 4;

/// `next` of a node with no successor linked yet.
pub(crate) const NO_SUCCESSOR: u32 = 0;

/// One waiter's node.
#[derive(Debug)]
pub(crate) struct QueueNode {
    /// The successor's tail, written by the successor once it has queued
    /// behind this node; [`NO_SUCCESSOR`] until then.
    pub next: AtomicU32,
    /// Non-zero once the predecessor made this waiter the head of the queue.
    pub head: AtomicU32,
}

/// One CPU's queue nodes and lock statistics. Put one per CPU in a static
/// table and return it from [`QueueDomain::queues`](super::QueueDomain::queues).
///
/// Only its own CPU uses its nodes for waiting; other CPUs write into them
/// to link themselves or to hand the queue over.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct CpuQueue {
    /// How many contexts of this CPU are inside a queued acquisition; the
    /// next one uses node `nesting`. Only this CPU touches it, and nested
    /// contexts restore it before returning, so a plain counter works.
    pub(crate) nesting: core::sync::atomic::AtomicU32,
    pub(crate) nodes: [QueueNode; NODES_PER_CPU],
    fallbacks: AtomicU64,
    panic_breaks: AtomicU64,
}

/// What the lock did on one CPU, as a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Acquisitions that found all [`NODES_PER_CPU`] nodes in use (a fifth
    /// nested context) and spun test-and-set.
    pub fallbacks: u64,
    /// Locks the panic owner took by force after waiting the panic bound.
    pub panic_breaks: u64,
}

impl QueueNode {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self {
            next: AtomicU32::new(NO_SUCCESSOR),
            head: AtomicU32::new(0),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self {
            next: AtomicU32::new(NO_SUCCESSOR),
            head: AtomicU32::new(0),
        }
    }
}

impl CpuQueue {
    /// A CPU with no waiter and no statistics yet.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            nesting: core::sync::atomic::AtomicU32::new(0),
            nodes: [const { QueueNode::new() }; NODES_PER_CPU],
            fallbacks: AtomicU64::new(0),
            panic_breaks: AtomicU64::new(0),
        }
    }

    /// A CPU with no waiter and no statistics yet (loom build: not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            nesting: core::sync::atomic::AtomicU32::new(0),
            nodes: core::array::from_fn(|_| QueueNode::new()),
            fallbacks: AtomicU64::new(0),
            panic_breaks: AtomicU64::new(0),
        }
    }

    /// This CPU's statistics.
    pub fn stats(&self) -> QueueStats {
        // Relaxed: statistics, nothing is published through them.
        QueueStats {
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            panic_breaks: self.panic_breaks.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_fallback(&self) {
        // Relaxed: a statistic.
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_panic_break(&self) {
        // Relaxed: a statistic.
        self.panic_breaks.fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for CpuQueue {
    fn default() -> Self {
        Self::new()
    }
}

// One cache line per CPU: the nodes a CPU's waiters spin on are not shared
// with another CPU's.
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<CpuQueue>() == 64);
