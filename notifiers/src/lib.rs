//! crashkit's panic notifiers: ordered lists of callbacks that the panic
//! owner runs after the other CPUs were stopped, which can only *try* to take
//! locks, and whose every outcome is recorded.
//!
//! # Nomenclature
//! - a **notifier** ([`Notifier`]) is a static: a name, a [`NotifierList`],
//!   a priority, a time budget and a body, optionally with the
//!   [`NotifierLock`] its state lives behind ([`Notifier::locked`]);
//! - the **registry** ([`Registry`]) holds up to `N` registered notifiers;
//!   normal code registers and unregisters them, the panic path *walks* it;
//! - a **run** of a list ([`Registry::run_list`]) calls every notifier of
//!   the list in order (higher priority first, ties in registration order)
//!   and hands a [`NotifierRecorder`] one [`NotifierReport`] per notifier,
//!   with a [`NotifierOutcome`];
//! - the **cursor** ([`Registry::cursor`]) says which notifier is running,
//!   so that the panic path, re-entered by a notifier that panicked, can
//!   record it and go on ([`Registry::resume`]).
//!
//! # Invariants
//! - The panic path never blocks here: the walk takes no lock and never
//!   waits for a writer (a writer frozen mid-edit is stepped over and
//!   reported); notifier bodies get a [`PanicContext`], and the only
//!   panic-time access to a [`NotifierLock`] is a bounded `try_lock` that
//!   needs it.
//! - No allocation: the crate has no `alloc` dependency; a walk's only state
//!   is on the stack, sized by `N`.
//! - No `unsafe` outside `static_ref.rs` (one dereference of a pointer
//!   that can only hold `&'static` references).
//! - Bad data (an unknown code, a slot changing under a read) is a defined
//!   result, never a panic.
//!
//! Design note: docs/notifiers.md.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

mod context;
mod cursor;
mod list;
mod lock;
mod notifier;
mod outcome;
mod registry;
mod run;
mod static_ref;
#[cfg(test)]
mod test_hook;
#[cfg(test)]
mod tests;

pub use context::{PanicContext, PanicInputs};
pub use cursor::Cursor;
pub use list::NotifierList;
pub use lock::NotifierLock;
pub use notifier::{BodyFn, DEFAULT_BUDGET_NS, LockedBody, LockedBodyFn, Notifier};
pub use outcome::{BodyResult, ListSummary, NotifierOutcome, NotifierRecorder, NotifierReport};
pub use registry::{ListPosition, MAX_SEQUENCE, RegisterNotifierError, Registry};
pub use run::{EscalationPolicy, Resumed, RunError};
