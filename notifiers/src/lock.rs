//! `NotifierLock`: a lock shared between normal code and a notifier, which
//! the notifier can only *try* during a panic.
//!
//! # Why try-only
//! Notifiers run on the panic owner after the other CPUs were stopped. A
//! stopped CPU may have stopped while holding any lock, and it will never
//! release it; the panic owner itself may have panicked while holding it
//! (the panic interrupted its own critical section). A notifier that waits
//! for such a lock hangs the panic path (Linux's classic panic-notifier
//! deadlock; its 2022 fixes converted notifiers to `spin_trylock`). So the
//! panic-time accessor, [`NotifierLock::try_lock`], needs the
//! [`PanicContext`] only the runner makes, and never waits: a busy lock
//! costs the notifier its turn (`SkippedLockBusy`) or part of its job
//! (`Degraded`), never the panic.
//!
//! Better still, a notifier can *declare* its lock at registration
//! ([`Notifier::locked`](crate::Notifier::locked) with a
//! [`LockedBody`](crate::LockedBody)): the runner tries the lock and calls
//! the body with `&mut T` only when it got it, so the body never sees the
//! lock at all.
//!
//! # Normal context
//! Outside a panic, [`NotifierLock::lock`] is the ordinary blocking
//! [`QSpinLock`](crashkit_nmi::lock::QSpinLock) acquisition (queued, FIFO),
//! with the usual rule that a context must not take a lock held by the code
//! it interrupted. If it is nevertheless called on the panic owner during a
//! panic (a notifier body that names the lock's static directly, or code the
//! panic path calls), the lock's own panic rule bounds it: the owner spins
//! at most [`QueueDomain::PANIC_LOCK_WAIT_NS`] (10 ms by default), then
//! breaks the lock (see docs/qspinlock.md). Such calls are counted in
//! [`NotifierLock::panic_blocking_locks`] so the record can show the misuse.

use core::sync::atomic::{AtomicU64, Ordering};

use crashkit_nmi::lock::{Mutex, MutexGuard, QueueDomain};

use crate::PanicContext;

/// A lock whose data a notifier may use during a panic, by trying only.
///
/// Declare it as a static next to the data's normal users:
/// `static LOG: NotifierLock<Kernel, Log> = NotifierLock::new(Log::new());`
pub struct NotifierLock<D: QueueDomain, T> {
    mutex: Mutex<D, T>,
    /// Panic-time try-locks that found the lock busy.
    busy: AtomicU64,
    /// `lock()` calls made on the panic owner during a panic.
    panic_blocking: AtomicU64,
}

impl<D: QueueDomain, T> NotifierLock<D, T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        Self {
            mutex: Mutex::new(value),
            busy: AtomicU64::new(0),
            panic_blocking: AtomicU64::new(0),
        }
    }

    /// Normal-context access: wait for the lock (queued, FIFO).
    ///
    /// On the panic owner during a panic the wait is bounded by the lock's
    /// panic rule (see the module docs) and the call is counted in
    /// [`panic_blocking_locks`](Self::panic_blocking_locks); notifiers use
    /// [`try_lock`](Self::try_lock) instead.
    pub fn lock(&self) -> MutexGuard<'_, D, T> {
        if D::panic_flag().owner() == Some(D::current_cpu()) {
            // Relaxed: a statistic; nothing is inferred from it.
            self.panic_blocking.fetch_add(1, Ordering::Relaxed);
        }
        self.mutex.lock()
    }

    /// Panic-time access: take the lock if it is free, without waiting
    /// (a bounded number of compare-and-swaps); `None` if it is held.
    ///
    /// Needs the [`PanicContext`] only a running notifier has; the guard
    /// lives no longer than that context.
    pub fn try_lock<'c>(&'c self, _context: &'c PanicContext<'_>) -> Option<MutexGuard<'c, D, T>> {
        let guard = self.mutex.try_lock();
        if guard.is_none() {
            // Relaxed: a statistic; nothing is inferred from it.
            self.busy.fetch_add(1, Ordering::Relaxed);
        }
        guard
    }

    /// Normal-context access that does not wait (for code that would rather
    /// skip than wait); `None` if the lock is held.
    pub fn try_lock_now(&self) -> Option<MutexGuard<'_, D, T>> {
        self.mutex.try_lock()
    }

    /// Whether the lock is held now (it may change at once).
    pub fn is_locked(&self) -> bool {
        self.mutex.is_locked()
    }

    /// How many panic-time try-locks found the lock held.
    pub fn busy_skips(&self) -> u64 {
        // Relaxed: a statistic (see `try_lock`).
        self.busy.load(Ordering::Relaxed)
    }

    /// How many times [`lock`](Self::lock) was called on the panic owner
    /// during a panic: each is a notifier-discipline violation, bounded only
    /// by the lock's panic rule.
    pub fn panic_blocking_locks(&self) -> u64 {
        // Relaxed: a statistic (see `lock`).
        self.panic_blocking.load(Ordering::Relaxed)
    }
}

impl<D: QueueDomain, T> core::fmt::Debug for NotifierLock<D, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NotifierLock")
            .field("locked", &self.is_locked())
            .field("busy_skips", &self.busy_skips())
            .field("panic_blocking_locks", &self.panic_blocking_locks())
            .finish_non_exhaustive()
    }
}
