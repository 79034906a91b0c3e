//! crashkit's NMI core: the foundation every crash-path crate stands on.
//!
//! When a kernel panics, crashkit stops the other CPUs with NMIs, and those
//! CPUs may themselves be inside NMI-like contexts (an NMI handler, a machine
//! check, a debug trap on an IST stack) when the shootdown arrives. This crate
//! owns the pieces all of that shares:
//!
//! - [`ContextTracker`]: per-CPU tracking of NMI-like contexts, nesting up to
//!   [`MAX_NESTING`] deep, safe against a nested enter/exit pair arriving
//!   between any two steps of an enter or exit;
//! - [`HandlerChain`]: the NMI handler registry: every handler runs on every
//!   NMI, back-to-back NMIs are detected and swallowed, unknown NMIs follow an
//!   integrator-chosen policy, and an emergency slot runs first and can be
//!   installed from any context without a lock;
//! - [`lock::QSpinLock`]: the queued spinlock every crate uses, with a
//!   test-and-set fallback past four nested waiters and a bounded path for
//!   the panic owner ([`PANIC`]);
//! - [`Platform`]: the few CPU services the toolkit needs, implemented for
//!   x86_64 in [`arch::x86_64`] and for the host simulation in `crashkit-sim`.
//!
//! # Invariants
//! - No allocation anywhere (the crate has no `alloc` dependency).
//! - Nothing here takes a lock that NMI context could hold: NMI-context code
//!   only uses single-word atomics written by its own CPU or lock-free reads.
//! - Bad input (an unknown CPU index, nesting deeper than the limit) is a
//!   reported condition with a defined result, never a panic or UB.

#![cfg_attr(not(test), no_std)]

pub mod arch;
mod chain;
mod context;
pub mod control;
mod cpu;
mod cpu_contexts;
mod frame;
pub mod lock;
mod panic_flag;
mod platform;
#[cfg(test)]
mod test_hook;
mod writer_epoch;

pub use chain::{
    ChainCpuStats, DispatchOutcome, HandlerChain, HandlerFn, HandlerStats, MAX_WALKS, NmiEvent,
    NmiHandler, NmiOutcome, RegisterHandlerError, UnknownNmiPolicy,
};
pub use context::{
    ContextGuard, ContextKind, ContextSnapshot, ContextTracker, MAX_NESTING, NestingOverflow,
};
pub use control::ControlRegisters;
pub use cpu::{CpuIndex, CpuIndexOutOfRange};
pub use cpu_contexts::{CpuContexts, EnterError};
pub use frame::RegisterFrame;
pub use panic_flag::{PANIC, PanicClaim, PanicFlag};
pub use platform::{NmiSendError, Platform};
pub use writer_epoch::WriterEpoch;
