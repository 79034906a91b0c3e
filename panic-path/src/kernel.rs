//! [`Kernel`]: how the panic path finds the integrator's statics, and
//! [`PanicConfig`]: what the integrator chooses.
//!
//! `#[panic_handler]` takes no argument beyond the `PanicInfo`, so, as the
//! lock's `QueueDomain` does, the panic path is generic over a zero-sized
//! type whose associated functions name the kernel's statics: platform,
//! crash record, shootdown, notifier registry, NMI handler chain, and the
//! hooks (dump hand-over, reboot).

use crashkit_nmi::{PanicFlag, Platform};
use crashkit_shootdown::{Shootdown, ShootdownConfig};

use crate::access::{CrashLog, NotifierLists};
use crate::step::Progress;

/// What the panic path does at the end, when no dump took over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalChoice {
    /// Park the panicking CPU for good ([`Platform::park`]).
    Halt,
    /// Call [`Kernel::reboot`].
    Reboot,
}

/// The integrator's choices. `PanicConfig::DEFAULT` is what Linux does by
/// default, with a halt at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PanicConfig {
    /// Timing of the shootdown (deadline, resend interval).
    pub shootdown: ShootdownConfig,
    /// Run the informational notifier list before the dump hand-over
    /// rather than after a failed one (Linux's `crash_kexec_post_notifiers`).
    pub informational_before_dump: bool,
    /// The final action.
    pub final_action: FinalChoice,
    /// How long a CPU that panicked second waits for the owner's shootdown
    /// to stop it, before it parks on its own (its slot then stays as the
    /// owner's shootdown left it: `Unresponsive`, or `Running` if the owner
    /// never got that far).
    pub second_panicker_wait_ns: u64,
}

impl PanicConfig {
    /// Shootdown defaults (1 s deadline, 10 ms resends), informational list
    /// after the dump, halt, second panickers wait 5 s.
    pub const DEFAULT: Self = Self {
        shootdown: ShootdownConfig::DEFAULT,
        informational_before_dump: false,
        final_action: FinalChoice::Halt,
        second_panicker_wait_ns: 5_000_000_000,
    };
}

impl Default for PanicConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What [`Kernel::dump`] reports when it returns (a successful hand-over
/// does not return: the capture kernel runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpAttempt {
    /// No capture kernel or dump writer is configured.
    NotConfigured,
    /// The hand-over failed; the code is the hook's own, stored in the
    /// record's `dump_detail`.
    Failed(u32),
    /// The hand-over did not happen and the in-place writer wrote the dump
    /// in this kernel; the code is its `DumpOutcome`, stored in
    /// `dump_detail` (the record's dump section says why and how). The
    /// post-dump notifiers and the final action run next, as after a
    /// failed hand-over.
    WrittenInPlace(u32),
}

/// The integrator's glue: one zero-sized type per kernel.
///
/// Everything it returns is `'static` and usable from any context with
/// interrupts off: no allocation, no lock.
pub trait Kernel: 'static {
    /// The platform (CPU index, clock, NMIs, park).
    type Platform: Platform;
    /// The crash record (any `crashkit_record::CrashRecord<CPUS, NOTIFIERS>`).
    type Record: CrashLog;
    /// The notifier registry (any `crashkit_notifiers::Registry<N>`).
    type Notifiers: NotifierLists;

    /// The integrator's choices.
    const CONFIG: PanicConfig = PanicConfig::DEFAULT;

    /// Re-entries of the panic path on the owner after which it stops
    /// escalating and parks at once (each re-entry costs stack).
    const MAX_ESCALATIONS: u32 = 4;

    /// The platform.
    fn platform() -> &'static Self::Platform;

    /// The crash record.
    fn record() -> &'static Self::Record;

    /// The shootdown, built on the record's CPU slots.
    fn shootdown() -> &'static Shootdown;

    /// The notifier registry.
    fn notifiers() -> &'static Self::Notifiers;

    /// Where the panic path keeps its progress (a `static` of the
    /// integrator's: a generic function cannot own one per kernel).
    fn progress() -> &'static Progress;

    /// Put the shootdown's stop handler in the NMI handler chain's emergency
    /// slot (`HandlerChain::set_emergency`, one atomic swap, no lock).
    fn install_stop_handler();

    /// The panic flag; the machine's [`crashkit_nmi::PANIC`] unless a test
    /// substitutes its own.
    fn panic_flag() -> &'static PanicFlag {
        &crashkit_nmi::PANIC
    }

    /// NMI-like contexts the calling CPU is in (its `ContextTracker`'s
    /// depth), for the record and the shootdown's poll; 0 if unknown.
    fn nmi_depth() -> u32 {
        0
    }

    /// QSpinLock fallbacks and panic lock breaks so far, summed over CPUs
    /// (the lock domain's `CpuQueue` statistics), for the record.
    fn lock_events() -> (u32, u32) {
        (0, 0)
    }

    /// Hand over to the capture kernel. Returns only if that failed or none
    /// is configured. The default: none.
    fn dump() -> DumpAttempt {
        DumpAttempt::NotConfigured
    }

    /// The reboot callback, when [`PanicConfig::final_action`] is
    /// [`FinalChoice::Reboot`]. The default parks the CPU.
    fn reboot() -> ! {
        Self::platform().park()
    }
}
