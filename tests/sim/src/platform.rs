//! [`SimPlatform`]: the simulated machine as code under test sees it
//! ([`Platform`]), plus the knobs tests turn (lost NMIs, machine checks,
//! stop requests) and the delivery counters they read.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crashkit_nmi::{ControlRegisters, CpuIndex, NmiSendError, Platform};

use crate::rng::mix;
use crate::signals::{CURRENT, signal_of};
use crate::slot::{Counters, CpuSlot, CpuState};
use crate::{EntryFn, EntryKind, SimCpu};

/// The machine's shared state; every [`SimPlatform`] clone and every CPU
/// thread holds it.
pub(crate) struct Shared {
    slots: Box<[CpuSlot]>,
    entry: Box<EntryFn>,
    booted: Instant,
    stop: AtomicBool,
    /// Probability of losing an NMI, in 1/1000.
    loss_per_mille: AtomicU32,
    /// SplitMix64 state for loss draws, advanced atomically.
    loss_draws: AtomicU64,
}

/// Delivery counters of one simulated CPU. Per-kind arrays are indexed by
/// [`EntryKind::index`]; [`sent`](Self::sent) and
/// [`delivered`](Self::delivered) read them by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimCpuStats {
    /// Signals sent to the CPU's thread, per kind (lost NMIs excluded).
    pub sent: [u64; EntryKind::ALL.len()],
    /// Entries that ran, per kind. Lower than `sent` when NMIs or machine
    /// checks coalesced in the latch, or signals were still pending when
    /// the CPU parked or left.
    pub delivered: [u64; EntryKind::ALL.len()],
    /// NMIs the platform lost on purpose.
    pub nmis_dropped: u64,
}

impl SimCpuStats {
    /// Signals of `kind` sent.
    pub fn sent(&self, kind: EntryKind) -> u64 {
        self.sent.get(kind.index()).copied().unwrap_or(0)
    }

    /// Entries of `kind` that ran.
    pub fn delivered(&self, kind: EntryKind) -> u64 {
        self.delivered.get(kind.index()).copied().unwrap_or(0)
    }
}

/// The simulated machine's [`Platform`]. Cheap to clone; clones share the
/// machine.
#[derive(Clone)]
pub struct SimPlatform {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for SimPlatform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimPlatform")
            .field("cpus", &self.shared.slots.len())
            .field("stop", &self.stop_requested())
            .finish_non_exhaustive()
    }
}

impl SimPlatform {
    pub(crate) fn new(cpus: usize, entry: Box<EntryFn>) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots: (0..cpus).map(|_| CpuSlot::new()).collect(),
                entry,
                booted: Instant::now(),
                stop: AtomicBool::new(false),
                loss_per_mille: AtomicU32::new(0),
                loss_draws: AtomicU64::new(0),
            }),
        }
    }

    /// The slot of a CPU known to exist (a `SimCpu`'s own index).
    pub(crate) fn slot(&self, cpu: CpuIndex) -> &CpuSlot {
        match self.shared.slots.get(cpu.as_usize()) {
            Some(slot) => slot,
            None => unreachable!("SimCpu {cpu} outside its machine"),
        }
    }

    pub(crate) fn slots(&self) -> &[CpuSlot] {
        &self.shared.slots
    }

    pub(crate) fn entry(&self) -> &EntryFn {
        &*self.shared.entry
    }

    /// Ask every CPU to wind down ([`SimCpu::stop_requested`](crate::SimCpu::stop_requested)).
    pub fn request_stop(&self) {
        // Relaxed: a hint polled in loops; nothing is published with it.
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        // Relaxed: see `request_stop`.
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// Lose the next `count` NMIs sent to `cpu` (they look sent to the
    /// sender and are counted as dropped).
    pub fn drop_next_nmis(&self, cpu: CpuIndex, count: u32) -> Result<(), NmiSendError> {
        let slot = self.slot_checked(cpu)?;
        // Relaxed: a counter consumed by `fetch_update` in `lose_nmi`; no
        // other data depends on it.
        slot.drop_next.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// Lose each NMI with probability `per_mille / 1000` (clamped to 1000),
    /// drawing from a generator seeded with `seed`.
    pub fn set_nmi_loss(&self, per_mille: u32, seed: u64) {
        // Relaxed: independent knobs; a draw racing with the change may use
        // the old probability, which is harmless.
        self.shared.loss_draws.store(seed, Ordering::Relaxed);
        self.shared
            .loss_per_mille
            .store(per_mille.min(1000), Ordering::Relaxed);
    }

    /// Raise `kind` on `cpu`: an NMI as [`Platform::send_nmi`] does
    /// (possibly lost), any other kind always delivered.
    pub fn raise(&self, cpu: CpuIndex, kind: EntryKind) -> Result<(), NmiSendError> {
        let slot = self.slot_checked(cpu)?;
        if kind == EntryKind::Nmi {
            return self.send_nmi_to(slot);
        }
        match slot.with_live_thread(|thread| signal(thread, signal_of(kind))) {
            Some(true) => {
                Counters::bump_kind(&slot.counters.sent, kind);
                Ok(())
            }
            Some(false) | None => Err(NmiSendError::Unavailable),
        }
    }

    /// Whether `cpu` has parked ([`SimCpu::park`](crate::SimCpu::park), or a
    /// panic in its entry). Parking is final, so `true` stays `true`.
    pub fn is_parked(&self, cpu: CpuIndex) -> bool {
        self.shared
            .slots
            .get(cpu.as_usize())
            .is_some_and(|slot| slot.state() == CpuState::Parked)
    }

    /// Delivery counters of `cpu`.
    pub fn stats(&self, cpu: CpuIndex) -> Option<SimCpuStats> {
        let slot = self.shared.slots.get(cpu.as_usize())?;
        let c = &slot.counters;
        // Relaxed: statistics (see `Counters`).
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Some(SimCpuStats {
            sent: c.sent.each_ref().map(load),
            delivered: c.delivered.each_ref().map(load),
            nmis_dropped: load(&c.nmis_dropped),
        })
    }

    fn slot_checked(&self, cpu: CpuIndex) -> Result<&CpuSlot, NmiSendError> {
        self.shared
            .slots
            .get(cpu.as_usize())
            .ok_or(NmiSendError::NoSuchCpu(cpu))
    }

    /// Whether the next NMI to `slot` is lost: first the explicit drops,
    /// then the random loss.
    fn lose_nmi(&self, slot: &CpuSlot) -> bool {
        // Relaxed: see `drop_next_nmis`.
        let explicit = slot
            .drop_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if explicit.is_ok() {
            return true;
        }
        // Relaxed: see `set_nmi_loss`.
        let per_mille = self.shared.loss_per_mille.load(Ordering::Relaxed);
        if per_mille == 0 {
            return false;
        }
        // SplitMix64 with an atomic state: each draw advances the state by
        // the golden gamma exactly once, so concurrent draws get distinct
        // values. Relaxed: only the atomicity of the add matters.
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let state = self.shared.loss_draws.fetch_add(GAMMA, Ordering::Relaxed);
        mix(state.wrapping_add(GAMMA)) % 1000 < u64::from(per_mille)
    }

    fn send_nmi_to(&self, slot: &CpuSlot) -> Result<(), NmiSendError> {
        let sent = slot.with_live_thread(|thread| {
            if self.lose_nmi(slot) {
                Counters::bump(&slot.counters.nmis_dropped);
                return true;
            }
            let sent = signal(thread, signal_of(EntryKind::Nmi));
            if sent {
                Counters::bump_kind(&slot.counters.sent, EntryKind::Nmi);
            }
            sent
        });
        match sent {
            Some(true) => Ok(()),
            Some(false) | None => Err(NmiSendError::Unavailable),
        }
    }
}

/// `pthread_kill`, true on success.
fn signal(thread: libc::pthread_t, signal: libc::c_int) -> bool {
    // SAFETY: callers pass a thread id obtained through
    // `CpuSlot::with_live_thread`, which guarantees the thread has not
    // exited and will not until the call returns.
    unsafe { libc::pthread_kill(thread, signal) == 0 }
}

/// The simulated CPU the calling thread is, on whichever machine; `None` on
/// a thread that is not a simulated CPU. For code that finds its CPU through
/// a static function rather than a [`Platform`] value (a lock's queue
/// domain, say).
pub fn current_cpu() -> Option<CpuIndex> {
    let current = CURRENT.with(Cell::get);
    // SAFETY: a non-null `CURRENT` points to the live `SimCpu` of this very
    // thread (see `signals::CURRENT`).
    unsafe { current.as_ref() }.map(SimCpu::index)
}

/// The CR3 a simulated CPU reports ([`Platform::control_registers`]): a
/// made-up page-table address, different per CPU (`0x10_0000 + index *
/// 0x1000`), so a test can tell that each CPU's control state landed in its
/// own slot. User-mode threads cannot read the real control registers.
pub const fn simulated_cr3(cpu: CpuIndex) -> u64 {
    0x10_0000 + cpu.0 as u64 * 0x1000
}

impl Platform for SimPlatform {
    /// The CPU whose thread calls; [`CpuIndex::UNKNOWN`] (as the trait
    /// asks) on a thread that is not one of this machine's CPUs.
    fn current_cpu(&self) -> CpuIndex {
        let current = CURRENT.with(Cell::get);
        // SAFETY: a non-null `CURRENT` points to the live `SimCpu` of this
        // very thread (see `signals::CURRENT`).
        match unsafe { current.as_ref() } {
            Some(cpu) if Arc::ptr_eq(&cpu.platform().shared, &self.shared) => cpu.index(),
            _ => CpuIndex::UNKNOWN,
        }
    }

    fn cpu_count(&self) -> usize {
        self.shared.slots.len()
    }

    /// Yield the thread: simulated CPUs outnumber the host's cores, and a
    /// spinning thread must let the CPU it waits for run.
    fn relax(&self) {
        std::thread::yield_now();
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.shared.booted.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Signal the CPU's thread; [`NmiSendError::Unavailable`] if it is not
    /// running (not started, or its body returned). A parked CPU accepts the
    /// NMI, which stays pending.
    fn send_nmi(&self, target: CpuIndex) -> Result<(), NmiSendError> {
        self.send_nmi_to(self.slot_checked(target)?)
    }

    /// Signal every CPU but the caller's. Like the APIC broadcast, CPUs that
    /// are not running simply do not receive it: never an error.
    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError> {
        let me = self.current_cpu();
        for (index, slot) in self.shared.slots.iter().enumerate() {
            if index != me.as_usize() {
                let _ = self.send_nmi_to(slot);
            }
        }
        Ok(())
    }

    /// Only CR3, made up ([`simulated_cr3`]); nothing on a thread that is
    /// not one of this machine's CPUs.
    fn control_registers(&self) -> ControlRegisters {
        let cpu = self.current_cpu();
        if cpu.is_unknown() {
            return ControlRegisters::NONE;
        }
        ControlRegisters {
            valid: crashkit_nmi::control::valid::CR3,
            cr3: simulated_cr3(cpu),
            ..ControlRegisters::NONE
        }
    }

    /// Blocks the interrupt signal on the calling thread (a simulated CPU,
    /// or any other thread: harmless there) and never unblocks it.
    fn disable_interrupts(&self) {
        let _previous = crate::signals::mask(
            crate::signals::signals_of(&[EntryKind::Interrupt]).as_slice(),
            true,
        );
    }

    /// Block the interrupt signal; whether it was unblocked before.
    fn save_and_disable_interrupts(&self) -> bool {
        crate::signals::save_and_block_interrupts()
    }

    /// Unblock the interrupt signal if it was unblocked before.
    fn restore_interrupts(&self, enabled: bool) {
        if enabled {
            crate::signals::unblock_interrupts();
        }
    }

    /// Park the calling simulated CPU ([`SimCpu::park`]): every simulation
    /// signal blocked, the thread asleep for good, the run reports it
    /// [`CpuOutcome::Parked`](crate::CpuOutcome::Parked).
    ///
    /// # Panics
    /// On a thread that is not one of this machine's CPUs (the test thread,
    /// say): test scaffolding that would otherwise hang that thread forever
    /// without a word.
    fn park(&self) -> ! {
        let current = CURRENT.with(Cell::get);
        // SAFETY: a non-null `CURRENT` points to the live `SimCpu` of this
        // very thread (see `signals::CURRENT`).
        match unsafe { current.as_ref() } {
            Some(cpu) if Arc::ptr_eq(&cpu.platform().shared, &self.shared) => cpu.park(),
            Some(cpu) => panic!(
                "SimPlatform::park called on {} of another simulated machine",
                cpu.index()
            ),
            None => panic!(
                "SimPlatform::park called on thread {:?}, which is not a simulated CPU",
                std::thread::current().name().unwrap_or("<unnamed>")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{CpuOutcome, Machine};

    #[test]
    fn park_through_the_platform_parks_the_calling_cpu() {
        let machine = Machine::new(2, |_, _, _| {});
        let report = machine.run(Duration::from_secs(20), |cpu| {
            if cpu.index() == CpuIndex(1) {
                let platform: &dyn Platform = cpu.platform();
                platform.park();
            }
        });
        assert_eq!(
            report.outcomes,
            [CpuOutcome::Finished, CpuOutcome::Parked],
            "{report}"
        );
    }

    #[test]
    fn park_on_a_thread_that_is_no_cpu_panics_and_says_why() {
        let machine = Machine::new(1, |_, _, _| {});
        let platform = machine.platform().clone();
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || platform.park()))
            .expect_err("park returned on a thread that is no CPU");
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        assert!(
            message.contains("not a simulated CPU"),
            "unclear panic message: {message:?}"
        );
    }
}
