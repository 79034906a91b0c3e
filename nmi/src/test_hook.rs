//! Test-only: run code at named points inside the lock-free algorithms.
//!
//! The context tracker and the handler chain call [`at`] between the steps
//! of their protocols. In test builds a test can install a hook for its own
//! thread and, at a chosen point, do what an interrupt or another CPU could
//! do there (enter and exit a nested context, unregister a handler). In other
//! builds the calls compile to nothing.

use std::boxed::Box;
use std::cell::RefCell;

use crate::context::Step;

/// A point a hook can fire at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HookPoint {
    /// Between two steps of a context enter or exit.
    Context(Step),
    /// The dispatcher has just read chain slot `n`.
    ChainSlotRead(usize),
}

type Hook = Box<dyn FnMut(HookPoint)>;

std::thread_local! {
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Called by the algorithms at every point; runs this thread's hook with the
/// hook removed, so the hook's own calls into the algorithm do not recurse.
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
