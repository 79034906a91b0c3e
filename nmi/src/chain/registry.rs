//! Registration, removal and the emergency slot: the chain's writers.
//!
//! Writers serialise on the chain's epoch (even = idle, odd = a writer is
//! editing): a compare-and-swap from even to odd instead of a lock, with a
//! bounded spin, so no writer ever waits forever and NMI context can call in
//! safely (it gets [`RegisterHandlerError::Busy`] if it interrupted a writer on its
//! own CPU). The emergency slot needs no epoch at all: it is one atomic
//! pointer swap.
//!
//! Slot invariant kept by every writer: live handlers are a prefix of the
//! slots, in registration order, and at every instant each live handler is
//! in at least one slot.

use core::ptr;
use core::sync::atomic::Ordering;

use super::{HandlerChain, NmiHandler};

/// Why a handler could not be registered or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterHandlerError {
    /// Every slot holds a handler.
    Full,
    /// The handler is registered already (each runs once per NMI).
    AlreadyRegistered,
    /// The handler is not registered.
    NotRegistered,
    /// Another writer held the chain for the whole bounded wait (or this call
    /// interrupted a writer on its own CPU). Retry from ordinary context.
    Busy,
}

impl core::fmt::Display for RegisterHandlerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Full => "every slot of the NMI handler chain holds a handler",
            Self::AlreadyRegistered => "the NMI handler is registered already",
            Self::NotRegistered => "the NMI handler is not registered",
            Self::Busy => "another writer held the NMI handler chain for the whole wait",
        })
    }
}

impl core::error::Error for RegisterHandlerError {}

/// How many times a writer retries the epoch before reporting `Busy`.
const WRITER_SPINS: u32 = 1 << 16;

fn as_ptr(handler: &'static NmiHandler) -> *mut NmiHandler {
    // The chain only ever reads through these pointers; `cast_mut` is for
    // `AtomicPtr`'s type only.
    ptr::from_ref(handler).cast_mut()
}

impl<const SLOTS: usize, const CPUS: usize> HandlerChain<SLOTS, CPUS> {
    /// Register `handler` at the end of the chain, waiting a bounded time for
    /// another writer to finish.
    ///
    /// Safe to call from any context; see [`RegisterHandlerError::Busy`].
    pub fn register(&self, handler: &'static NmiHandler) -> Result<(), RegisterHandlerError> {
        let epoch = self
            .epoch
            .try_begin(WRITER_SPINS)
            .ok_or(RegisterHandlerError::Busy)?;
        let result = self.append(handler);
        self.epoch.end(epoch);
        result
    }

    /// Like [`register`](Self::register) but gives up at once if another
    /// writer is active.
    pub fn try_register(&self, handler: &'static NmiHandler) -> Result<(), RegisterHandlerError> {
        let epoch = self.epoch.try_begin(1).ok_or(RegisterHandlerError::Busy)?;
        let result = self.append(handler);
        self.epoch.end(epoch);
        result
    }

    fn append(&self, handler: &'static NmiHandler) -> Result<(), RegisterHandlerError> {
        let new = as_ptr(handler);
        for slot in &self.slots {
            // Relaxed: we hold the writer epoch, whose Acquire made every
            // earlier writer's slot stores visible; no one else stores.
            let current = slot.load(Ordering::Relaxed);
            if current == new {
                return Err(RegisterHandlerError::AlreadyRegistered);
            }
            if current.is_null() {
                // Release pairs with the dispatcher's Acquire slot load: a
                // dispatcher that sees the pointer also sees the odd epoch
                // (so it re-validates) and the handler's contents.
                slot.store(new, Ordering::Release);
                return Ok(());
            }
        }
        Err(RegisterHandlerError::Full)
    }

    /// Remove `handler`, keeping the order of the others. A dispatch already
    /// in progress on another CPU may still run it once; handlers are
    /// `'static`, so that is memory-safe.
    pub fn unregister(&self, handler: &'static NmiHandler) -> Result<(), RegisterHandlerError> {
        let epoch = self
            .epoch
            .try_begin(WRITER_SPINS)
            .ok_or(RegisterHandlerError::Busy)?;
        let result = self.remove(handler);
        self.epoch.end(epoch);
        result
    }

    fn remove(&self, handler: &'static NmiHandler) -> Result<(), RegisterHandlerError> {
        let target = as_ptr(handler);
        // Relaxed loads: we hold the writer epoch (see `append`).
        let Some(index) = self
            .slots
            .iter()
            .take_while(|slot| !slot.load(Ordering::Relaxed).is_null())
            .position(|slot| slot.load(Ordering::Relaxed) == target)
        else {
            return Err(RegisterHandlerError::NotRegistered);
        };
        // Shift the tail down one slot, copying each entry before the slot
        // it came from is overwritten, so every live handler stays visible.
        // [A X B C -] -> [A B B C -] -> [A B C C -] -> [A B C - -]
        for position in index..SLOTS {
            let next = match self.slots.get(position + 1) {
                // Relaxed: writer-only read under the epoch.
                Some(next) => next.load(Ordering::Relaxed),
                None => ptr::null_mut(),
            };
            if let Some(slot) = self.slots.get(position) {
                // Release: as in `append`, pairs with the dispatcher's
                // Acquire slot loads.
                slot.store(next, Ordering::Release);
            }
            if next.is_null() {
                break;
            }
        }
        Ok(())
    }

    /// Install `handler` in the emergency slot (or empty it with `None`) and
    /// return the previous one. One atomic swap: callable from any context,
    /// NMI included, with no lock and no wait.
    pub fn set_emergency(
        &self,
        handler: Option<&'static NmiHandler>,
    ) -> Option<&'static NmiHandler> {
        let new = handler.map_or(ptr::null_mut(), as_ptr);
        // AcqRel: the Release half publishes whatever the installer prepared
        // before installing (e.g. the shootdown's target state) to the
        // dispatcher's Acquire load in `dispatch`; the Acquire half makes the
        // previous handler we return fully visible.
        let previous = self.emergency.swap(new, Ordering::AcqRel);
        // SAFETY: every non-null value stored in `emergency` came from a
        // `&'static NmiHandler` (this function is the only writer), so it is
        // valid for 'static and only ever read through shared references.
        unsafe { previous.as_ref() }
    }

    /// The handler in the emergency slot.
    pub fn emergency(&self) -> Option<&'static NmiHandler> {
        // Acquire: pairs with the Release half of `set_emergency`.
        let current = self.emergency.load(Ordering::Acquire);
        // SAFETY: as in `set_emergency`: non-null values are `&'static`
        // handlers stored only by `set_emergency`.
        unsafe { current.as_ref() }
    }

    /// The registered handlers in chain order (a snapshot; a concurrent
    /// writer may make it stale at once).
    pub fn handlers(&self) -> heapless::Vec<&'static NmiHandler, SLOTS> {
        let mut handlers = heapless::Vec::new();
        for slot in &self.slots {
            // Acquire: pairs with the writers' Release slot stores.
            let current = slot.load(Ordering::Acquire);
            // SAFETY: non-null slot values come only from `append` and
            // `remove`, which store `&'static NmiHandler` pointers (or copies
            // of them); they are valid forever and only read.
            match unsafe { current.as_ref() } {
                Some(handler) => {
                    if handlers.push(handler).is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        handlers
    }
}
