//! The NMI handler chain: a fixed-capacity, lock-free registry of handlers.
//!
//! # Hardware facts this follows
//! NMIs are edge-triggered and a CPU latches at most one while it is
//! handling another: two sources raising an NMI at nearly the same time
//! produce one or two NMIs, not one per source. So every NMI runs *every*
//! handler, and when more than one claims an NMI, the next NMI (which
//! interrupts the same instruction, "back to back") may be the latched
//! duplicate whose event was already handled: it is *swallowed* rather than
//! reported as unknown. An NMI nobody claims goes to the integrator's
//! [`UnknownNmiPolicy`].
//!
//! # Layout and concurrency
//! - An **emergency slot** (`AtomicPtr`) runs before the chain. It is set
//!   with one atomic swap, so it can be installed from any context, NMI
//!   included; the panic path uses it for the shootdown handler. If the
//!   emergency handler answers [`NmiOutcome::Handled`], the chain is not
//!   walked.
//! - **Slots** hold `&'static NmiHandler` pointers; live handlers are always
//!   a prefix of the slots, in registration order.
//! - **Writers** (register, unregister) never block on a lock: they take a
//!   writer *epoch* from even to odd with a compare-and-swap, edit the slots,
//!   and release it (odd to the next even). A writer that finds the epoch odd
//!   gets [`RegisterHandlerError::Busy`] after a bounded spin, so a writer in NMI
//!   context that interrupted a writer on its own CPU gets an error, not a
//!   deadlock.
//! - **The dispatcher** (NMI context) reads the slots without any lock, as a
//!   sequence-lock reader: it walks, then checks that the epoch did not move
//!   and was even. If it moved, it walks again, running only handlers it has
//!   not run yet (at most [`MAX_WALKS`] walks; a walk that never validates is
//!   counted as *torn*). Writers keep every live handler in at least one
//!   slot at every instant (unregister copies the next entry down before
//!   clearing), so a walk over a frozen array (a writer interrupted on this
//!   CPU) still sees every handler once. The only cost of a concurrent write
//!   is that a retried walk may run a handler out of registration order.
//!
//! Memory ordering of the epoch and slots is argued at each access, see
//! `registry.rs` and `dispatch.rs`.

mod dispatch;
mod handler;
mod registry;
#[cfg(test)]
mod tests;

use core::sync::atomic::{AtomicPtr, AtomicU64};

use crate::WriterEpoch;

use dispatch::CpuChainState;
pub use dispatch::{ChainCpuStats, DispatchOutcome, UnknownNmiPolicy};
pub use handler::{HandlerFn, HandlerStats, NmiEvent, NmiHandler, NmiOutcome};
pub use registry::RegisterHandlerError;

/// How many walks one dispatch makes at most while writers keep changing
/// the chain under it.
pub const MAX_WALKS: usize = 3;

/// The NMI handler chain for up to `SLOTS` handlers and `CPUS` CPUs.
///
/// Const-constructible for a static. Dispatch with
/// [`dispatch`](HandlerChain::dispatch) from the NMI entry.
#[derive(Debug)]
pub struct HandlerChain<const SLOTS: usize, const CPUS: usize> {
    emergency: AtomicPtr<NmiHandler>,
    slots: [AtomicPtr<NmiHandler>; SLOTS],
    /// Writer epoch: odd while a writer edits `slots`.
    epoch: WriterEpoch,
    policy: UnknownNmiPolicy,
    cpus: [CpuChainState; CPUS],
    /// NMIs dispatched on a CPU index outside `0..CPUS`.
    unknown_cpu: AtomicU64,
}

impl<const SLOTS: usize, const CPUS: usize> HandlerChain<SLOTS, CPUS> {
    /// An empty chain that treats unclaimed NMIs according to `policy`.
    pub const fn new(policy: UnknownNmiPolicy) -> Self {
        Self {
            emergency: AtomicPtr::new(core::ptr::null_mut()),
            slots: [const { AtomicPtr::new(core::ptr::null_mut()) }; SLOTS],
            epoch: WriterEpoch::new(),
            policy,
            cpus: [const { CpuChainState::new() }; CPUS],
            unknown_cpu: AtomicU64::new(0),
        }
    }

    /// The unknown-NMI policy chosen at construction.
    pub fn policy(&self) -> UnknownNmiPolicy {
        self.policy
    }
}
