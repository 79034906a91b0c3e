//! `QSpinLock`: a queued spinlock for every context a kernel has, NMI
//! included, that the crash path can always get past.
//!
//! # Design
//! One 32-bit word per lock: a *locked* bit and the queue *tail*, the last
//! waiter's (CPU, node index). Waiters queue through per-CPU nodes, four per
//! CPU so that each of four nested contexts on a CPU (task, soft interrupt,
//! hard interrupt, NMI, say) can wait at once. The CPU's nesting count picks
//! the node; a fifth nested waiter finds none and spins test-and-set on the
//! locked bit instead (counted in [`QueueStats::fallbacks`]).
//!
//! Waiters hand over in FIFO order: each spins on its own node until its
//! predecessor makes it the *head*; only the head watches the lock word.
//! Acquirers that do not queue (the fallback above, [`QSpinLock::try_lock`],
//! [`QSpinLock::lock_until`], the panic owner) may take the lock ahead of
//! the head; the head simply tries again.
//!
//! # The lock word
//!
//! | bits   | field                                  |
//! |--------|----------------------------------------|
//! | 0      | locked                                 |
//! | 1-15   | zero                                   |
//! | 16-17  | tail: node index (0..4)                |
//! | 18-31  | tail: CPU index + 1 (0 = no tail)      |
//!
//! Only whole-word atomic operations touch it (Rust's memory model does not
//! define mixed-size atomics on one location), which is why release is a
//! `fetch_and` rather than Linux's byte store.
//!
//! # Transitions (locked, tail) -> (locked, tail)
//!
//! | operation                          | from        | to          | how          |
//! |------------------------------------|-------------|-------------|--------------|
//! | fast lock                          | (0, 0)      | (1, 0)      | CAS          |
//! | queue (tail = me)                  | (l, t)      | (l, me)     | CAS loop     |
//! | head takes it, last in queue       | (0, me)     | (1, 0)      | CAS          |
//! | head takes it, others behind       | (0, t != me)| (1, t)      | CAS          |
//! | test-and-set (fallback, try, bounded, panic owner) | (0, t) | (1, t) | CAS |
//! | panic owner breaks a stuck lock    | (1, t)      | (1, t)      | `fetch_or`, counted |
//! | release                            | (1, t)      | (0, t)      | `fetch_and`  |
//!
//! Node hand-over, outside the word: a waiter that queued behind a tail
//! writes its own tail into the predecessor's `next`, then spins on its own
//! `head` flag; a head that took the lock with others behind waits for its
//! `next` to be written and sets the successor's `head` flag.
//!
//! # During a panic
//! The panic owner ([`crate::PanicFlag`], asked through the domain) never
//! queues: it spins test-and-set for at most
//! [`QueueDomain::PANIC_LOCK_WAIT_NS`], then *breaks* the lock (takes it
//! although it is held, on the grounds that its holder has been stopped) and
//! records the break. Every other CPU keeps the normal behaviour: it is
//! about to be stopped by the shootdown NMI, which interrupts any wait.
//!
//! The memory ordering of each access is argued where it happens
//! (`qspinlock.rs`).

mod domain;
mod qspinlock;
mod queue;
mod raw_mutex;
mod sync;
mod word;

#[cfg(test)]
mod tests;

pub use domain::QueueDomain;
pub use qspinlock::{Acquired, LockState, QSpinLock};
pub use queue::{CpuQueue, NODES_PER_CPU, QueueStats};
#[cfg(not(loom))]
pub use raw_mutex::{Deadline, Mutex, MutexGuard};
pub use word::MAX_QUEUE_CPUS;
