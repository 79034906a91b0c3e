//! `QSpinLock`: a queued spinlock for every context a kernel has, NMI
//! included, that the crash path can always get past.
//!
//! # Design
//! One 32-bit word per lock: a *locked* bit, a *pending* bit and the queue
//! *tail*, the last waiter's (CPU, node index). The second contender for a
//! held lock that nobody waits for sets the pending bit and spins on the
//! word itself, without a node: two CPUs trading a lock never touch the
//! queue (Linux's pending-bit optimisation; [`QueueDomain::PENDING_WAITER`]
//! turns it off). Later waiters queue through per-CPU nodes, four per
//! CPU so that each of four nested contexts on a CPU (task, soft interrupt,
//! hard interrupt, NMI, say) can wait at once. The CPU's nesting count picks
//! the node; a fifth nested waiter finds none and spins test-and-set on the
//! locked bit instead (counted in [`QueueStats::fallbacks`]).
//!
//! Waiters hand over in FIFO order: the pending waiter first (it came before
//! any queued one), then each queued waiter, which spins on its own node
//! until its predecessor makes it the *head*; only the head (and the
//! pending waiter) watch the lock word, and the head waits for the pending
//! bit to clear as well as the locked bit.
//! Acquirers that do not queue (the fallback above, [`QSpinLock::try_lock`],
//! [`QSpinLock::lock_until`], the panic owner) may take the lock ahead of
//! the head; the head simply tries again.
//!
//! # The lock word
//!
//! | bits   | field                                  |
//! |--------|----------------------------------------|
//! | 0      | locked                                 |
//! | 1-7    | zero                                   |
//! | 8      | pending                                |
//! | 9-15   | zero                                   |
//! | 16-17  | tail: node index (0..4)                |
//! | 18-31  | tail: CPU index + 1 (0 = no tail)      |
//!
//! Only whole-word atomic operations touch it (Rust's memory model does not
//! define mixed-size atomics on one location), which is why release is a
//! `fetch_and` rather than Linux's byte store.
//!
//! # Transitions (locked, pending, tail) -> (locked, pending, tail)
//!
//! | operation                          | from          | to            | how          |
//! |------------------------------------|---------------|---------------|--------------|
//! | fast lock                          | (0, 0, 0)     | (1, 0, 0)     | CAS          |
//! | become the pending waiter          | (1, 0, 0)     | (1, 1, 0)     | CAS          |
//! | pending waiter takes it            | (0, 1, t)     | (1, 0, t)     | CAS          |
//! | queue (tail = me)                  | (l, p, t)     | (l, p, me)    | CAS loop     |
//! | head takes it, last in queue       | (0, 0, me)    | (1, 0, 0)     | CAS          |
//! | head takes it, others behind       | (0, 0, t != me)| (1, 0, t)    | CAS          |
//! | test-and-set (fallback, try, bounded, panic owner) | (0, p, t) | (1, p, t) | CAS |
//! | panic owner breaks a stuck lock    | (1, p, t)     | (1, p, t)     | `fetch_or`, counted |
//! | release                            | (1, p, t)     | (0, p, t)     | `fetch_and`  |
//!
//! The pending bit is set only from (1, 0, 0), so there is at most one
//! pending waiter and it is ahead of every queued waiter; only that waiter
//! clears it, in the claim that takes the lock. A contender that finds
//! anything but (0, 0, 0) or (1, 0, 0) queues (as does one that saw the word
//! change between those two states four times running).
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
