//! The few things crashkit needs from a CPU, as one trait.
//!
//! Everything above the NMI core (shootdown, locks, the panic path) is written
//! against [`Platform`] so the same protocol code runs on x86_64 hardware
//! ([`crate::arch::x86_64::X86Platform`]) and in the host simulation
//! (`crashkit-sim`, threads as CPUs and POSIX signals as NMIs).
//!
//! Every method must be callable from NMI context and on the panic path: no
//! allocation, no lock, bounded time.

use crate::{ControlRegisters, CpuIndex};

/// Why an NMI could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NmiSendError {
    /// The target index is not a CPU this platform knows.
    NoSuchCpu(CpuIndex),
    /// The interrupt controller did not accept the IPI in bounded time
    /// (xAPIC: the ICR delivery-status bit stayed set).
    DeliveryTimeout,
    /// The platform cannot send NMIs (no local APIC configured, a simulated
    /// CPU that has exited, ...).
    Unavailable,
}

impl core::fmt::Display for NmiSendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSuchCpu(cpu) => write!(f, "no CPU {cpu} to send an NMI to"),
            Self::DeliveryTimeout => {
                f.write_str("the interrupt controller did not accept the NMI in time")
            }
            Self::Unavailable => f.write_str("this platform cannot send NMIs now"),
        }
    }
}

impl core::error::Error for NmiSendError {}

/// CPU services the toolkit relies on. Implementations must be usable from
/// any context (NMI included): no allocation, no lock, bounded time.
pub trait Platform: Sync {
    /// Index of the CPU executing the call.
    ///
    /// `< cpu_count()`, or [`CpuIndex::UNKNOWN`] on a CPU the
    /// implementation cannot name (an unregistered APIC ID, a thread that is
    /// not a simulated CPU): never another out-of-range value. Callers look
    /// per-CPU state up with bounds checks, and ask
    /// [`CpuIndex::is_unknown`] where a CPU without an index is treated
    /// apart (the panic flag, the console's line).
    fn current_cpu(&self) -> CpuIndex;

    /// Number of CPUs the toolkit manages; valid indices are `0..cpu_count()`.
    fn cpu_count(&self) -> usize;

    /// Spin-wait hint for busy loops (`pause` on x86_64).
    fn relax(&self);

    /// A monotonic timestamp in nanoseconds. Only differences are meaningful.
    fn now_ns(&self) -> u64;

    /// Send an NMI to one CPU. Sending to the calling CPU is allowed where the
    /// hardware allows it; protocols in crashkit never do.
    ///
    /// A send is ordered after the caller's earlier memory writes: a CPU that
    /// takes the NMI sees them (the shootdown publishes its owner this way).
    /// x86_64 gives this for free for xAPIC MMIO (stores leave in order) and
    /// with the `mfence` before the x2APIC `wrmsr`; the simulation's
    /// `pthread_kill` is a system call.
    fn send_nmi(&self, target: CpuIndex) -> Result<(), NmiSendError>;

    /// Send an NMI to every CPU except the caller, ordered after the
    /// caller's earlier writes like [`send_nmi`](Self::send_nmi).
    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError>;

    /// Stop the calling CPU for good: the state of a CPU stopped by the
    /// shootdown. It never returns and never runs kernel code again.
    ///
    /// Called from NMI context (the shootdown's NMI handler, which therefore
    /// never returns with `iretq`, so NMIs stay blocked on the CPU) or from a
    /// poll in a spin loop. x86_64: maskable interrupts off and `hlt` in a
    /// loop (an NMI, SMI or machine check that wakes the CPU sends it back to
    /// `hlt`). The simulation parks the calling simulated CPU's thread.
    fn park(&self) -> !;

    /// Disable maskable interrupts on the calling CPU, for good: the panic
    /// path's first act, so that no interrupt handler runs on the panicking
    /// CPU (and takes a lock it holds) while it works. NMIs and machine
    /// checks still arrive. x86_64: `cli`. The simulation blocks the
    /// calling thread's interrupt signal.
    fn disable_interrupts(&self);

    /// Mask maskable interrupts on the calling CPU for a short section
    /// and say whether they were enabled, for
    /// [`restore_interrupts`](Self::restore_interrupts): the crash log's
    /// normal-context writer holds them off for one frame. x86_64:
    /// `pushfq`'s IF, then `cli`. The simulation blocks the interrupt
    /// signal. The default masks nothing and says "disabled", so the
    /// restore does nothing: a platform that cannot mask leaves an
    /// interrupt free to find a frame half written (its message is then
    /// dropped and counted, never mixed in).
    fn save_and_disable_interrupts(&self) -> bool {
        false
    }

    /// Undo [`save_and_disable_interrupts`](Self::save_and_disable_interrupts):
    /// enable maskable interrupts if `enabled` (they were on before).
    fn restore_interrupts(&self, enabled: bool) {
        let _ = enabled;
    }

    /// The calling CPU's control state ([`ControlRegisters`]), saved with its
    /// registers when it stops or panics. x86_64 in ring 0 reads them all;
    /// the default reads none (every valid bit clear), which a platform
    /// that cannot read them (the host simulation: they are privileged)
    /// keeps or replaces with what it knows.
    fn control_registers(&self) -> ControlRegisters {
        ControlRegisters::NONE
    }
}
