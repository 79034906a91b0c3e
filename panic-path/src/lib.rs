//! crashkit's panic path: what runs between `panic!` (or a fatal NMI or
//! exception) and the hand-over to the dump, in bounded time whatever the
//! other CPUs are doing, leaving a complete crash record.
//!
//! - [`panic()`] (from `#[panic_handler]`) and [`panic_in_exception`] (from an
//!   NMI or exception handler, with the interrupted frame) disable
//!   interrupts and decide the panic owner with one compare-and-swap on the
//!   NMI core's panic flag:
//!
//!   | claim | what this CPU does |
//!   |-------|--------------------|
//!   | first | runs the sequence below |
//!   | another CPU owns the panic | counts itself, waits (polling) for the shootdown to stop it, parks |
//!   | this CPU owns it already | escalates: records the failure, skips the failed step, continues |
//!
//!   A CPU without an index (not yet online) can own the panic too; it
//!   never escalates (see `docs/panic-path.md`).
//!
//! - The sequence ([`Step`]): record the owner's registers and the message;
//!   stop the other CPUs ([`crashkit_shootdown`]); the hypervisor, (if
//!   configured) informational and pre-dump notifier lists
//!   ([`crashkit_notifiers`]); the dump hand-over hook; the remaining lists;
//!   the final action (halt or reboot). Each step is written into the crash
//!   record ([`crashkit_record`]) before it starts.
//! - [`Kernel`] is the integrator's glue (statics and hooks), [`PanicConfig`]
//!   its choices.
//!
//! The protocol, the step table and the escalation table are in
//! `docs/panic-path.md`.
//!
//! # Invariants
//! - No allocation, no blocking lock, no `unwrap`: every step is bounded
//!   (the shootdown by its deadline, notifiers by try-locks and budgets) and
//!   every failure is recorded.
//! - A panic inside the path re-enters it on the same CPU and continues
//!   past the failed step; after [`Kernel::MAX_ESCALATIONS`] re-entries it
//!   parks at once.

#![cfg_attr(not(test), no_std)]

mod access;
mod entry;
mod kernel;
mod sequence;
pub mod step;

pub use access::{CrashLog, NotifierLists};
pub use entry::{DUMP_PANICKED, panic, panic_in_exception};
pub use kernel::{DumpAttempt, FinalChoice, Kernel, PanicConfig};
pub use step::{Progress, Step};
