//! Dispatch: what runs when an NMI arrives.
//!
//! Order on each NMI:
//! 1. back-to-back detection: the NMI is back to back when it interrupted
//!    the same RIP as the previous NMI on this CPU (the second of two NMIs,
//!    latched while the first was handled, arrives right after its `iretq`);
//!    a non-back-to-back NMI disarms any pending swallow;
//! 2. the emergency handler, if installed; if it handles the NMI, stop;
//! 3. every handler of the chain, in registration order (a sequence-lock
//!    walk, see the chain's module docs);
//! 4. if two or more handlers claimed it, arm a swallow: the next NMI, if
//!    back to back and claimed by nobody, is the latched duplicate;
//! 5. if nobody claimed it: swallow it when armed and back to back,
//!    otherwise count it as unknown and apply the [`UnknownNmiPolicy`].
//!
//! Per-CPU state is written only by its own CPU, from NMI context, which the
//! hardware does not nest (NMIs stay blocked until the handler's `iretq`).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{HandlerChain, MAX_WALKS, NmiEvent, NmiHandler, NmiOutcome};
use crate::{CpuIndex, Platform, RegisterFrame};

/// What to do with an NMI no handler claimed.
#[derive(Clone, Copy, Debug)]
pub enum UnknownNmiPolicy {
    /// Count it in the CPU's statistics and carry on.
    Count,
    /// Count it, then call the function (to log it, say). The function runs
    /// in NMI context.
    Report(fn(&NmiEvent<'_>)),
    /// Count it, then call the function, which does not return: typically
    /// the panic path's NMI entry.
    Escalate(fn(&NmiEvent<'_>) -> !),
}

/// The result of one dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// The emergency handler claimed the NMI; the chain did not run.
    Emergency,
    /// `claimed` chain handlers claimed the NMI.
    Handled {
        /// Number of handlers that answered [`NmiOutcome::Handled`].
        claimed: u32,
    },
    /// Unclaimed, but back to back after a multiply-claimed NMI: the latched
    /// duplicate of an event already handled.
    Swallowed,
    /// Unclaimed: counted, and the policy applied (unless it escalated).
    Unknown,
}

/// Statistics of one CPU's NMIs, as a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainCpuStats {
    /// NMIs dispatched on this CPU.
    pub received: u64,
    /// NMIs claimed by the emergency handler or at least one chain handler.
    pub handled: u64,
    /// Back-to-back NMIs swallowed after a multiply-claimed NMI.
    pub swallowed: u64,
    /// NMIs nobody claimed.
    pub unknown: u64,
    /// Extra chain walks because a writer changed the chain mid-walk.
    pub rewalks: u64,
    /// Dispatches whose walk never validated in [`MAX_WALKS`] tries (every
    /// handler still ran at most once; one may have been missed if a writer
    /// on another CPU kept editing).
    pub torn_walks: u64,
}

/// One CPU's dispatch state. Written only by that CPU in NMI context; read by
/// anyone for statistics. Every access is Relaxed: there is one writer, it
/// is never interrupted by itself (NMIs do not nest), and readers only want
/// counters.
#[derive(Debug)]
pub(crate) struct CpuChainState {
    last_rip: AtomicU64,
    swallow_armed: AtomicBool,
    received: AtomicU64,
    handled: AtomicU64,
    swallowed: AtomicU64,
    unknown: AtomicU64,
    rewalks: AtomicU64,
    torn_walks: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    // Relaxed: a statistic with one writer (see `CpuChainState`).
    counter.fetch_add(1, Ordering::Relaxed);
}

impl CpuChainState {
    pub(crate) const fn new() -> Self {
        Self {
            last_rip: AtomicU64::new(0),
            swallow_armed: AtomicBool::new(false),
            received: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            swallowed: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            rewalks: AtomicU64::new(0),
            torn_walks: AtomicU64::new(0),
        }
    }

    /// Record `rip` as the last interrupted RIP; whether it repeats the
    /// previous one. A fresh (non-back-to-back) NMI disarms the swallow.
    fn note_rip(&self, rip: u64) -> bool {
        // Relaxed: single writer, this CPU (see the type's docs).
        let previous = self.last_rip.swap(rip, Ordering::Relaxed);
        // 0 is the "forgotten" value `reset_back_to_back` stores.
        let back_to_back = rip != 0 && previous == rip;
        if !back_to_back {
            self.swallow_armed.store(false, Ordering::Relaxed);
        }
        back_to_back
    }

    fn snapshot(&self) -> ChainCpuStats {
        // Relaxed: statistics only.
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ChainCpuStats {
            received: load(&self.received),
            handled: load(&self.handled),
            swallowed: load(&self.swallowed),
            unknown: load(&self.unknown),
            rewalks: load(&self.rewalks),
            torn_walks: load(&self.torn_walks),
        }
    }
}

#[cfg(test)]
fn slot_read(index: usize) {
    crate::test_hook::at(crate::test_hook::HookPoint::ChainSlotRead(index));
}

#[cfg(not(test))]
#[inline(always)]
fn slot_read(_: usize) {}

impl<const SLOTS: usize, const CPUS: usize> HandlerChain<SLOTS, CPUS> {
    /// Handle one NMI on the calling CPU: call this from the NMI entry, after
    /// entering the NMI context, with the interrupted frame.
    ///
    /// Bounded: at most [`MAX_WALKS`] walks of `SLOTS` slots, plus the
    /// handlers' own time. With [`UnknownNmiPolicy::Escalate`] an unknown NMI
    /// does not return.
    pub fn dispatch<P: Platform + ?Sized>(
        &self,
        platform: &P,
        frame: &RegisterFrame,
    ) -> DispatchOutcome {
        let cpu = platform.current_cpu();
        let state = self.cpus.get(cpu.as_usize());
        let back_to_back = match state {
            Some(state) => {
                bump(&state.received);
                state.note_rip(frame.rip)
            }
            None => {
                // Relaxed: a statistic.
                self.unknown_cpu.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        let event = NmiEvent {
            cpu,
            frame,
            back_to_back,
        };
        let now = || platform.now_ns();

        if let Some(emergency) = self.emergency()
            && emergency.run(&event, now) == NmiOutcome::Handled
        {
            if let Some(state) = state {
                bump(&state.handled);
            }
            return DispatchOutcome::Emergency;
        }

        let claimed = self.walk(&event, platform, state);
        if claimed > 0 {
            if let Some(state) = state {
                bump(&state.handled);
                // Relaxed: single writer (see `CpuChainState`).
                state.swallow_armed.store(claimed > 1, Ordering::Relaxed);
            }
            return DispatchOutcome::Handled { claimed };
        }

        if let Some(state) = state {
            // Relaxed: single writer (see `CpuChainState`).
            if back_to_back && state.swallow_armed.swap(false, Ordering::Relaxed) {
                bump(&state.swallowed);
                return DispatchOutcome::Swallowed;
            }
            bump(&state.unknown);
        }
        match self.policy {
            UnknownNmiPolicy::Count => {}
            UnknownNmiPolicy::Report(report) => report(&event),
            UnknownNmiPolicy::Escalate(escalate) => escalate(&event),
        }
        DispatchOutcome::Unknown
    }

    /// Run every chain handler once; returns how many claimed the NMI.
    fn walk<P: Platform + ?Sized>(
        &self,
        event: &NmiEvent<'_>,
        platform: &P,
        state: Option<&CpuChainState>,
    ) -> u32 {
        let now = || platform.now_ns();
        let mut ran: heapless::Vec<*const NmiHandler, SLOTS> = heapless::Vec::new();
        let mut claimed = 0;
        for attempt in 0..MAX_WALKS {
            if attempt > 0 {
                if let Some(state) = state {
                    bump(&state.rewalks);
                }
                platform.relax();
            }
            // Acquire: pairs with `WriterEpoch::end`'s Release, so a walk that starts
            // after a writer finished sees all of its slot stores.
            let opened = self.epoch.load(Ordering::Acquire);
            for (index, slot) in self.slots.iter().enumerate() {
                // Acquire: pairs with the writers' Release slot stores. It
                // also keeps the closing epoch load below from moving above
                // this load: if we saw any store of a writer, we see its odd
                // epoch (or a later one) at the close and walk again.
                let current = slot.load(Ordering::Acquire);
                slot_read(index);
                if current.is_null() {
                    break;
                }
                if ran.contains(&current.cast_const()) {
                    continue;
                }
                if ran.push(current.cast_const()).is_err() {
                    // More distinct handlers than slots seen in one dispatch:
                    // writers churned under us. Skip rather than risk running
                    // one twice; the torn count below reports it.
                    continue;
                }
                // SAFETY: non-null slot values are only stored by the
                // registry's `append`/`remove`, always from a
                // `&'static NmiHandler`: valid forever and only read.
                let handler = unsafe { &*current };
                if handler.run(event, now) == NmiOutcome::Handled {
                    claimed += 1;
                }
            }
            // Acquire: orders this load after the slot loads above (see
            // there); an even, unchanged epoch means no writer overlapped.
            let closed = self.epoch.load(Ordering::Acquire);
            if opened == closed && opened & 1 == 0 {
                return claimed;
            }
        }
        if let Some(state) = state {
            bump(&state.torn_walks);
        }
        claimed
    }

    /// Forget the last interrupted RIP of `cpu`, like Linux's
    /// `local_touch_nmi()`: call it from the idle loop, where every NMI
    /// interrupts the same `hlt` and would otherwise look back to back.
    pub fn reset_back_to_back(&self, cpu: CpuIndex) {
        if let Some(state) = self.cpus.get(cpu.as_usize()) {
            // Relaxed: single writer, this CPU (see `CpuChainState`).
            state.last_rip.store(0, Ordering::Relaxed);
        }
    }

    /// Statistics of `cpu`, if the chain covers it.
    pub fn cpu_stats(&self, cpu: CpuIndex) -> Option<ChainCpuStats> {
        self.cpus.get(cpu.as_usize()).map(CpuChainState::snapshot)
    }

    /// NMIs dispatched on a CPU index the chain does not cover.
    pub fn unknown_cpu_nmis(&self) -> u64 {
        // Relaxed: a statistic.
        self.unknown_cpu.load(Ordering::Relaxed)
    }
}
