//! [`Slot`]: a value written once by one CPU and read by any CPU in any
//! context afterwards; the prepared hand-over lives in one
//! ([`Capture`](crate::Capture) = `Slot<Ready>`), written by the CPU that
//! loads the capture kernel and read by whichever CPU panics.
//!
//! Generic and free of the crate's other modules, so its loom model
//! (`tests/loom_capture.rs`) builds this file alone.
//!
//! State machine (one `AtomicU8`):
//!
//! ```text
//! Empty --arm: CAS Empty->Arming--> Arming --arm: store Armed--> Armed
//! ```
//!
//! There is no way back: once `Armed`, the value never changes, so a
//! reader that saw `Armed` reads it without further care. A crash while
//! another CPU is in `Arming` (stopped by the shootdown half way) finds no
//! capture kernel rather than a half-written one. Reloading a capture
//! kernel at run time is not supported yet (docs/kdump.md).

use core::mem::MaybeUninit;

#[cfg(not(loom))]
use core::cell::UnsafeCell;
#[cfg(not(loom))]
use core::sync::atomic::{AtomicU8, Ordering};
#[cfg(loom)]
use loom::cell::UnsafeCell;
#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const ARMING: u8 = 1;
const ARMED: u8 = 2;

/// Why [`Slot::arm`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyArmed;

impl core::fmt::Display for AlreadyArmed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a capture kernel is already armed (or being armed)")
    }
}

/// A value armed once (a `static`).
pub struct Slot<T: Copy> {
    state: AtomicU8,
    ready: UnsafeCell<MaybeUninit<T>>,
}

impl<T: Copy + core::fmt::Debug> core::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot")
            .field("ready", &self.ready())
            .finish()
    }
}

// SAFETY: `ready` is written only by the one `arm` call that won the
// Empty->Arming CAS, before the Release store of Armed; it is read only
// after an Acquire load saw Armed, and never written again. So no access
// races with a write, from any CPU or any context.
// `T: Send`: the value is written on one CPU and read on others.
#[allow(unsafe_code)]
unsafe impl<T: Copy + Send> Sync for Slot<T> {}

impl<T: Copy> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> Slot<T> {
    /// An empty slot.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            ready: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// An empty slot (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            ready: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Arm the slot with `ready`. Once only.
    ///
    /// # Safety
    /// What the value's readers rely on. For [`Capture`](crate::Capture),
    /// `ready` being what [`prepare`](crate::prepare) returned, for the
    /// rest of the kernel's life, on every CPU:
    /// 1. the reservation (`ready.loaded.reservation`) is mapped readable
    ///    at `ready.reservation_virt`, contiguously, and nothing writes it
    ///    (the kernel neither allocates from it nor maps it elsewhere
    ///    writable); the trampoline's page in that mapping is executable;
    /// 2. `Capture::hand_over` is called only in ring 0 with interrupts
    ///    off, by the panic path once the other CPUs are stopped (it jumps
    ///    to the capture kernel and never comes back).
    #[allow(unsafe_code)]
    pub unsafe fn arm(&self, ready: T) -> Result<(), AlreadyArmed> {
        // Relaxed: winning the CAS publishes nothing (no data is written
        // before it); it only makes this call the one writer of `ready`.
        if self
            .state
            .compare_exchange(EMPTY, ARMING, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Err(AlreadyArmed);
        }
        self.write(ready);
        // Release: publishes the write above; pairs with the Acquire load
        // in `ready`.
        self.state.store(ARMED, Ordering::Release);
        Ok(())
    }

    /// The armed value, if arming has finished.
    pub fn ready(&self) -> Option<T> {
        // Acquire: pairs with `arm`'s Release store, so the `Ready` written
        // before it is visible here.
        if self.state.load(Ordering::Acquire) != ARMED {
            return None;
        }
        Some(self.read())
    }

    /// The one write of `ready`, by the `arm` call that won the CAS.
    /// The armed value, by reference (for a `T` too large to copy onto a
    /// crash path's stack); `None` until [`arm`](Self::arm) completed.
    #[cfg(not(loom))]
    pub fn get(&self) -> Option<&T> {
        // Acquire: pairs with the Release store of ARMED in `arm`, so the
        // value written before it is visible.
        if self.state.load(Ordering::Acquire) != ARMED {
            return None;
        }
        #[allow(unsafe_code)]
        // SAFETY: ARMED is stored (Release) after the one write of the
        // value, and no code writes it afterwards (`arm` refuses once the
        // state left EMPTY); the Acquire above makes the write visible, so
        // a shared reference for as long as `self` lives is sound.
        Some(unsafe { (*self.ready.get()).assume_init_ref() })
    }

    #[allow(unsafe_code)]
    fn write(&self, ready: T) {
        #[cfg(not(loom))]
        // SAFETY: only the `arm` call that won the Empty->Arming CAS gets
        // here, once; readers read only after seeing ARMED, stored after
        // this write.
        unsafe {
            (*self.ready.get()).write(ready);
        }
        #[cfg(loom)]
        self.ready.with_mut(|slot| {
            // SAFETY: as above; loom checks that no read overlaps it.
            unsafe { (*slot).write(ready) };
        });
    }

    /// A read of `ready`, after an Acquire load saw ARMED.
    #[allow(unsafe_code)]
    fn read(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: ARMED was stored (Release) after the one write of
        // `ready`, and the caller's Acquire load saw it, so the value is
        // initialized and this read races with no write (none follows).
        unsafe {
            (*self.ready.get()).assume_init_read()
        }
        #[cfg(loom)]
        self.ready.with(|slot| {
            // SAFETY: as above; loom checks it.
            unsafe { (*slot).assume_init_read() }
        })
    }
}
