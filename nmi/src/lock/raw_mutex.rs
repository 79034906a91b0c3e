//! `lock_api` integration: [`QSpinLock`] as a `RawMutex` (and timed), so
//! integrators get `Mutex<T>` with guards the way `spin` offers them.

#![cfg(not(loom))]

use core::time::Duration;

use super::{QSpinLock, QueueDomain};

/// A mutex protecting a `T` with a [`QSpinLock`] of domain `D`.
pub type Mutex<D, T> = lock_api::Mutex<QSpinLock<D>, T>;

/// The guard of a [`Mutex`].
pub type MutexGuard<'a, D, T> = lock_api::MutexGuard<'a, QSpinLock<D>, T>;

/// A point in time on [`QueueDomain::now_ns`], for `try_lock_until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub u64);

// SAFETY: `lock`/`try_lock` return only once the locked bit was set by this
// caller's compare-and-swap (or, for the panic owner past its bound, taken
// by `fetch_or`: the documented break); `unlock` clears it and is only
// called by lock_api on a held guard. The bit is the only thing that grants
// the lock, so two guards never coexist outside a recorded panic break.
unsafe impl<D: QueueDomain> lock_api::RawMutex for QSpinLock<D> {
    #[allow(clippy::declare_interior_mutable_const)] // lock_api's required initialiser
    const INIT: Self = QSpinLock::new();

    // The guard holds no per-CPU state (the queue node is released before
    // `acquire` returns), so it may be released on another CPU.
    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        // How it was acquired is only of interest to raw users.
        let _ = self.acquire();
    }

    fn try_lock(&self) -> bool {
        QSpinLock::try_lock(self)
    }

    unsafe fn unlock(&self) {
        // SAFETY: lock_api calls `unlock` only for a lock this guard holds
        // (the trait's contract), which is `release`'s precondition.
        unsafe { self.release() }
    }

    fn is_locked(&self) -> bool {
        QSpinLock::is_locked(self)
    }
}

// SAFETY: the timed variants acquire only through `lock_until`, which sets
// the locked bit by compare-and-swap, or fail without touching the lock.
unsafe impl<D: QueueDomain> lock_api::RawMutexTimed for QSpinLock<D> {
    type Duration = Duration;
    type Instant = Deadline;

    fn try_lock_for(&self, timeout: Duration) -> bool {
        let timeout = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.lock_until(D::now_ns().saturating_add(timeout))
    }

    fn try_lock_until(&self, deadline: Deadline) -> bool {
        self.lock_until(deadline.0)
    }
}
