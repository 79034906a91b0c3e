//! Test-only: run code at named points between the steps of the registry's
//! writers and readers.
//!
//! A test installs a hook for its own thread and, at a chosen point, does
//! what the panic path interrupting this CPU (a walk) or another CPU (a
//! whole register or unregister) could do there. In other builds the calls
//! do not exist.

use std::boxed::Box;
use std::cell::RefCell;

/// A point a hook can fire at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HookPoint {
    /// A writer took the epoch and has not touched a slot yet.
    WriterHoldsEpoch,
    /// `fill` stored the notifier, not yet the number.
    FillPointerStored,
    /// `fill` published the number (epoch still odd).
    FillPublished,
    /// `clear` stored 0, not yet cleared the notifier.
    ClearUnpublished,
    /// `clear` cleared the notifier (epoch still odd).
    ClearPointerCleared,
    /// A reader loaded slot `n`'s number (non-zero), not yet its notifier.
    SlotNumberRead(usize),
    /// A reader loaded slot `n`'s notifier, not yet the number again.
    SlotPointerRead(usize),
}

type Hook = Box<dyn FnMut(HookPoint)>;

std::thread_local! {
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Called at every point; runs this thread's hook with the hook removed, so
/// the hook's own calls into the registry do not recurse.
pub(crate) fn at(point: HookPoint) {
    let hook = HOOK.with(|slot| slot.borrow_mut().take());
    if let Some(mut hook) = hook {
        hook(point);
        HOOK.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(hook);
            }
        });
    }
}

/// Install `hook` for this thread until [`clear`].
pub(crate) fn set(hook: impl FnMut(HookPoint) + 'static) {
    HOOK.with(|slot| *slot.borrow_mut() = Some(Box::new(hook)));
}

/// Remove this thread's hook.
pub(crate) fn clear() {
    HOOK.with(|slot| *slot.borrow_mut() = None);
}
