//! crashkit's NMI shootdown: stop every other CPU, in bounded time, and
//! record each one.
//!
//! When a kernel panics, the panic owner must stop the other CPUs before it
//! runs notifiers or hands over to a capture kernel, whatever they are
//! doing, interrupts disabled or not. An NMI reaches them all; each one that
//! takes it saves its registers in its slot of the crash record and parks
//! for good. A [`Shootdown`] is the one-shot protocol object (a `static`)
//! that does this, with three entry points:
//!
//! - [`Shootdown::stop_other_cpus`], on the owner: publish the shootdown,
//!   mark and NMI every other CPU, wait with a deadline (1 s by default),
//!   resend to CPUs that have not answered (lost NMIs are recovered; Linux
//!   sends once), mark the rest `Unresponsive`. Returns a
//!   [`ShootdownSummary`].
//! - [`Shootdown::handle_nmi`], in the NMI handler on every CPU: the crash
//!   handler the integrator installs in the NMI core's emergency slot.
//! - [`Shootdown::poll`], in spin loops that can run with NMIs blocked: a
//!   CPU there cannot take the NMI, so it stops itself.
//!
//! State machines: the shootdown-wide one in [`ShootdownState`], the
//! per-CPU one in `crashkit_record::CpuSlot`; both are tabulated, with the
//! timing and what happens to late CPUs, in `docs/shootdown.md`.
//!
//! # Wiring it into a kernel
//!
//! ```no_run
//! use crashkit_nmi::arch::x86_64::{LocalApic, X86Platform};
//! use crashkit_nmi::lock::{CpuQueue, QueueDomain};
//! use crashkit_nmi::{CpuContexts, CpuIndex, HandlerChain, NmiHandler, Platform, UnknownNmiPolicy};
//! use crashkit_record::CpuSlot;
//! use crashkit_shootdown::{Shootdown, ShootdownConfig};
//!
//! // SAFETY: ring 0, the local APIC in x2APIC mode.
//! static PLATFORM: X86Platform<64> =
//!     X86Platform::new(unsafe { LocalApic::x2apic() }, 2_000_000_000);
//! static CONTEXTS: CpuContexts<64> = CpuContexts::new();
//! static CHAIN: HandlerChain<16, 64> = HandlerChain::new(UnknownNmiPolicy::Count);
//! static SLOTS: [CpuSlot; 64] = [const { CpuSlot::new() }; 64];
//! static SHOOTDOWN: Shootdown = Shootdown::new(&SLOTS);
//!
//! // The crash NMI handler: the NMI entry already entered its context, so
//! // the tracker's depth counts this NMI.
//! static CRASH_NMI: NmiHandler = NmiHandler::new("crash", |event| {
//!     let depth = CONTEXTS.get(event.cpu).map_or(1, |tracker| u32::from(tracker.depth()));
//!     SHOOTDOWN.handle_nmi(&PLATFORM, event, depth)
//! });
//!
//! // Locks poll, so a CPU spinning on one with NMIs blocked stops itself.
//! static QUEUES: [CpuQueue; 64] = [const { CpuQueue::new() }; 64];
//! struct Kernel;
//! impl QueueDomain for Kernel {
//!     fn queues() -> &'static [CpuQueue] { &QUEUES }
//!     fn current_cpu() -> CpuIndex { PLATFORM.current_cpu() }
//!     fn now_ns() -> u64 { PLATFORM.now_ns() }
//!     fn relax() {
//!         core::hint::spin_loop();
//!         if SHOOTDOWN.is_issued() {
//!             let depth = CONTEXTS.current(&PLATFORM).map_or(0, |t| u32::from(t.depth()));
//!             SHOOTDOWN.poll(&PLATFORM, depth);
//!         }
//!     }
//! }
//!
//! // At boot, or in the panic path before the shootdown: one atomic swap,
//! // no lock, legal in NMI context. Idle, the handler answers `NotMine` and
//! // the chain runs as usual.
//! CHAIN.set_emergency(Some(&CRASH_NMI));
//!
//! // In the panic path, on the owner, interrupts off:
//! let summary = SHOOTDOWN.stop_other_cpus(&PLATFORM, &ShootdownConfig::DEFAULT);
//! if !summary.all_stopped() { /* record summary.totals.unresponsive, carry on */ }
//! ```
//!
//! # Invariants
//! - `no_std`, no allocation, no lock: every step is an atomic on the state
//!   word or on a slot.
//! - Bounded: the owner's wait ends at the deadline on its clock, or after
//!   a fixed number of iterations if the clock is broken; every other loop
//!   is bounded by the slots or the platform's CPU count.
//! - The owner is never sent an NMI, and an NMI that reaches it anyway is
//!   swallowed by [`Shootdown::handle_nmi`].
//! - Nothing is silently dropped: CPUs that did not stop are
//!   `Unresponsive`, slots without a CPU `Absent`, refused sends counted.

#![cfg_attr(not(test), no_std)]

mod config;
mod owner;
mod shootdown;
mod state;
mod target;
#[cfg(test)]
mod tests;

pub use config::{ShootdownConfig, ShootdownStatus, ShootdownSummary};
/// The tally a [`ShootdownSummary`] carries and the record stores (defined
/// by the record's format, so the offline tool reads it without this crate).
pub use crashkit_record::ShootdownTotals;
pub use shootdown::Shootdown;
pub use state::ShootdownState;
