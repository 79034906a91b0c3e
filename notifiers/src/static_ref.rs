//! `AtomicStaticRef`: an atomic `Option<&'static T>`, the crate's only
//! `unsafe`.
//!
//! The registry's slots and the run cursor hold references to `'static`
//! notifiers that other CPUs (or a panic path re-entered on this CPU) read
//! without a lock. `core` has no atomic reference type, only `AtomicPtr`,
//! whose loads give a raw pointer. This wrapper accepts only `&'static T`
//! on the way in, so every non-null pointer it ever holds is a valid
//! `'static` shared reference, and it hands out `&'static T` on the way out.
//! The rest of the crate is `unsafe`-free (`#![deny(unsafe_code)]` at the
//! root; this module alone is allowed).

#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// An atomic `Option<&'static T>`.
///
/// `Sync` exactly when `&'static T` may be shared between threads (`T:
/// Sync`), through the marker; `AtomicPtr` alone would be `Sync` for any
/// `T`.
pub(crate) struct AtomicStaticRef<T: 'static> {
    pointer: AtomicPtr<T>,
    _shares: PhantomData<&'static T>,
}

impl<T: 'static> AtomicStaticRef<T> {
    /// Holding nothing.
    pub(crate) const fn none() -> Self {
        Self {
            pointer: AtomicPtr::new(ptr::null_mut()),
            _shares: PhantomData,
        }
    }

    /// Holding `value` from the start (for a registry built with its
    /// notifiers in a `static`).
    pub(crate) const fn some(value: &'static T) -> Self {
        Self {
            // `cast_mut` only satisfies `AtomicPtr`'s type, as in `store`.
            pointer: AtomicPtr::new(ptr::from_ref(value).cast_mut()),
            _shares: PhantomData,
        }
    }

    /// Store `value`. The caller chooses and argues the ordering.
    pub(crate) fn store(&self, value: Option<&'static T>, order: Ordering) {
        let pointer = value.map_or(ptr::null_mut(), |value| ptr::from_ref(value).cast_mut());
        // `cast_mut` only satisfies `AtomicPtr`'s type: nothing is ever
        // written through these pointers (see `load`).
        self.pointer.store(pointer, order);
    }

    /// Load the reference. The caller chooses and argues the ordering.
    pub(crate) fn load(&self, order: Ordering) -> Option<&'static T> {
        let pointer = self.pointer.load(order);
        // SAFETY: `store` is the only writer of `pointer` (the field is
        // private, `none` starts it null and `some` from a `&'static T`),
        // and it only stores null or a pointer made from a `&'static T`. So a non-null value points to a
        // `T` that lives forever and is only ever accessed through shared
        // references (this module never writes through the pointer, and
        // the `&'static T` it came from forbids anyone else to mutate it
        // except through `T`'s own interior mutability). Handing it out
        // to another thread is allowed because the type is `Sync` only when
        // `T: Sync` (the `PhantomData<&'static T>` marker).
        unsafe { pointer.as_ref() }
    }
}

impl<T: 'static> core::fmt::Debug for AtomicStaticRef<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Relaxed: a diagnostic print of the address only.
        f.debug_tuple("AtomicStaticRef")
            .field(&self.pointer.load(Ordering::Relaxed))
            .finish()
    }
}
