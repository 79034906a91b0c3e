//! Test kernels for the panic path's host-simulation tests, and the checks
//! that read their crash record back the way the offline tool does.
//!
//! [`test_kernel!`] declares one kernel as a module, with the glue a kernel
//! gets: `crashkit::kernel!` on the simulated platform (a
//! `crashkit_sim::Socket` the test's machine plugs into), so the statics, the
//! `Kernel` impl, the lock domain, the stop handler and the NMI entry's body
//! are the ones an x86_64 kernel runs. Each kernel has its own `PanicFlag`
//! (tests run in parallel: never the machine-wide `crashkit_nmi::PANIC`);
//! every kernel serves one test (a panic does not end: the flag, the record
//! and the shootdown are one-shot).
//!
//! The machine's entry function is the simulated IDT: an NMI goes to
//! `K::on_nmi` (NMI context, then the chain). The chain's unknown-NMI policy
//! escalates to `K::panic_on_unknown_nmi` (the "panic on unknown NMI"
//! configuration), which is how a test makes a CPU panic from inside an NMI
//! handler. The entry neither allocates nor locks (it runs in a signal
//! handler).
//!
//! Checks ([`assert_header`], [`assert_owner`], [`assert_stopped`],
//! [`assert_notifiers`], [`assert_stamps`], ...) take a `RecordView` parsed
//! from a snapshot of the record: the bytes a dump would hold.

#![allow(dead_code)] // each test file uses a subset

use std::time::Duration;

use crashkit_nmi::RegisterFrame;
use crashkit_notifiers::{BodyResult, Notifier, PanicContext, Registry};
use crashkit_panic_path::{DumpAttempt, PanicConfig};
use crashkit_record::SlotFrame;
use crashkit_record::{CpuState, PhaseStamp, RecordView, StopPath};
use crashkit_shootdown::ShootdownConfig;
use crashkit_sim::{CpuOutcome, RunReport};

pub use crashkit_record::{NotifierList as RecList, NotifierOutcome as Outcome};

/// Deadline of every simulated run: far above what any test needs, so a
/// hang is reported rather than waited for.
pub const RUN_DEADLINE: Duration = Duration::from_secs(30);

/// The test kernels' shootdown deadline: short, so that a test with an
/// unresponsive CPU stays quick.
pub const SHOOTDOWN_DEADLINE_NS: u64 = 250_000_000;

/// The test kernels' resend interval (a lost NMI is resent this much later).
pub const RESEND_NS: u64 = 20_000_000;

/// Slack over a deadline for "the deadline was respected": a loaded 2-core
/// host may deschedule the owner for a while.
pub const SLACK_NS: u64 = 5_000_000_000;

/// Notifier slots in the test kernels' crash record.
pub const NOTIFIER_SLOTS: usize = 16;

/// The test kernels' configuration: Linux's defaults (informational list
/// after the dump, halt), with a short shootdown and second-panicker wait.
pub const FAST: PanicConfig = PanicConfig {
    shootdown: ShootdownConfig {
        deadline_ns: SHOOTDOWN_DEADLINE_NS,
        resend_interval_ns: RESEND_NS,
        ..ShootdownConfig::DEFAULT
    },
    second_panicker_wait_ns: 3_000_000_000,
    ..PanicConfig::DEFAULT
};

/// What a test changes of its kernel: the configuration and the dump hook.
pub trait Hooks: 'static {
    /// The kernel's `Kernel::CONFIG`.
    const CONFIG: PanicConfig = FAST;

    /// The kernel's `Kernel::dump`.
    fn dump() -> DumpAttempt {
        DumpAttempt::NotConfigured
    }

    /// Runs in `Kernel::install_stop_handler`, just before the shootdown:
    /// where a test holds the owner back until another CPU got somewhere.
    /// Must be bounded.
    fn before_shootdown() {}
}

/// [`FAST`], no dump configured.
pub struct Plain;

impl Hooks for Plain {}

/// Build a test kernel as module `$name` (see the module docs). Its items:
/// `K` (the kernel, also its lock domain; `Locks` is another name for it),
/// `PANIC` (its panic flag), `CPUS`, `Record`, `registry()`, `chain()`,
/// `record()`, `machine()`, `busy`, `wait_ready`, `READY`, `panic_now`,
/// `panic_frame`, `entry_rip`, `reboots`, `snapshot()`. With
/// `final_action = reboot` its final action calls `K::reboot`, which counts
/// the call and parks.
#[macro_export]
macro_rules! test_kernel {
    ($name:ident, cpus = $cpus:expr) => {
        $crate::test_kernel!($name, cpus = $cpus, hooks = $crate::common::Plain);
    };
    ($name:ident, cpus = $cpus:expr, hooks = $hooks:ty) => {
        $crate::test_kernel!(@kernel $name, $cpus, $hooks, halt);
    };
    ($name:ident, cpus = $cpus:expr, hooks = $hooks:ty, final_action = reboot) => {
        $crate::test_kernel!(@kernel $name, $cpus, $hooks, reboot(reboot));
    };
    (@kernel $name:ident, $cpus:expr, $hooks:ty, $final:ident $(($reboot:path))?) => {
        #[allow(dead_code)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            use std::sync::OnceLock;
            use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};

            use crashkit::nmi::{HandlerChain, PanicFlag, Platform, RegisterFrame, UnknownNmiPolicy};
            use crashkit::notifiers::Registry;
            use crashkit::panic_path::{DumpAttempt, Kernel};
            use crashkit::record::CrashRecord;
            use crashkit_sim::{EntryKind, Machine, SimCpu, Socket};

            /// CPUs of the machine (and slots of the record).
            pub const CPUS: usize = $cpus;

            /// The crash record's type.
            pub type Record = CrashRecord<CPUS, { $crate::common::NOTIFIER_SLOTS }>;

            /// The kernel's panic flag (its own: see the module docs).
            pub static PANIC: PanicFlag = PanicFlag::new();

            crashkit::kernel! {
                /// The test kernel.
                pub struct K;
                cpus: CPUS,
                notifiers: $crate::common::NOTIFIER_SLOTS,
                platform: Socket = Socket::new(),
                final_action: $final $(($reboot))?,
                unknown_nmi: UnknownNmiPolicy::Escalate(K::panic_on_unknown_nmi),
                panic_flag: PANIC,
                nmi_handlers: 4,
                config: <$hooks as $crate::common::Hooks>::CONFIG,
                dump: dump,
                before_stop: before_shootdown,
            }

            /// The lock domain: the kernel itself, as `kernel!` makes it.
            pub type Locks = K;

            /// Bodies that are running (see `busy`).
            pub static READY: AtomicUsize = AtomicUsize::new(0);
            /// Calls of `K::reboot`.
            static REBOOTS: AtomicU32 = AtomicU32::new(0);
            /// `rip` of the last frame each CPU's NMI entry got.
            static ENTRY_RIP: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
            /// The frame each CPU passed to `panic_now`.
            static PANIC_FRAMES: [OnceLock<RegisterFrame>; CPUS] =
                [const { OnceLock::new() }; CPUS];

            fn dump() -> DumpAttempt {
                <$hooks as $crate::common::Hooks>::dump()
            }

            fn before_shootdown() {
                <$hooks as $crate::common::Hooks>::before_shootdown();
            }

            /// The reboot: counted, then the CPU parks (a thread that is not
            /// one of the machine's CPUs sleeps for good instead: it has no
            /// CPU to park).
            fn reboot() -> ! {
                REBOOTS.fetch_add(1, SeqCst);
                if crashkit_sim::current_cpu().is_some() {
                    K::state().platform().park()
                }
                loop {
                    std::thread::park();
                }
            }

            /// The notifier registry.
            pub fn registry() -> &'static Registry<{ $crate::common::NOTIFIER_SLOTS }> {
                K::state().notifiers()
            }

            /// The NMI handler chain.
            pub fn chain() -> &'static HandlerChain<4, CPUS> {
                K::state().chain()
            }

            /// The crash record.
            pub fn record() -> &'static Record {
                <K as Kernel>::record()
            }

            /// The simulated IDT: an NMI goes to the kernel's NMI entry body,
            /// its `rip` kept for `entry_rip`.
            fn entry(cpu: &SimCpu, kind: EntryKind, frame: &mut RegisterFrame) {
                if kind != EntryKind::Nmi {
                    return;
                }
                if let Some(rip) = ENTRY_RIP.get(cpu.index().as_usize()) {
                    rip.store(frame.rip, SeqCst);
                }
                K::on_nmi(frame);
            }

            /// The machine this kernel runs on (one per kernel).
            pub fn machine() -> Machine {
                let machine = Machine::new(CPUS, entry);
                if let Err(error) = K::state().platform().plug(machine.platform()) {
                    panic!("{error}");
                }
                machine
            }

            /// A body that is ready at once and spins (yielding) until its
            /// stop NMI parks it or the run winds down.
            pub fn busy(cpu: &SimCpu) {
                READY.fetch_add(1, SeqCst);
                while !cpu.stop_requested() {
                    for _ in 0..1_000 {
                        std::hint::spin_loop();
                    }
                    std::thread::yield_now();
                }
            }

            /// Wait until `count` bodies are ready; false on a stop request.
            pub fn wait_ready(cpu: &SimCpu, count: usize) -> bool {
                $crate::common::wait_until(cpu, || READY.load(SeqCst) >= count)
            }

            /// Panic on the calling CPU (a body, not an entry) with its
            /// registers here, kept for `panic_frame`: what a kernel's
            /// `#[panic_handler]` does.
            pub fn panic_now(message: core::fmt::Arguments<'_>) -> ! {
                let frame = RegisterFrame::capture();
                if let Some(cpu) = crashkit_sim::current_cpu()
                    && let Some(kept) = PANIC_FRAMES.get(cpu.as_usize())
                {
                    let _ = kept.set(frame);
                }
                K::panic_in_exception(message, &frame)
            }

            /// The frame CPU `cpu` first passed to `panic_now`.
            #[track_caller]
            pub fn panic_frame(cpu: usize) -> RegisterFrame {
                match PANIC_FRAMES.get(cpu).and_then(OnceLock::get) {
                    Some(frame) => *frame,
                    None => panic!("cpu{cpu} never called panic_now"),
                }
            }

            /// `rip` of the last frame CPU `cpu`'s NMI entry got.
            pub fn entry_rip(cpu: usize) -> u64 {
                ENTRY_RIP.get(cpu).map_or(0, |rip| rip.load(SeqCst))
            }

            /// Calls of `K::reboot`.
            pub fn reboots() -> u32 {
                REBOOTS.load(SeqCst)
            }

            /// The record as a dump would hold it.
            pub fn snapshot() -> Vec<u8> {
                let mut bytes = vec![0; Record::TOTAL_SIZE];
                let written = record().snapshot(&mut bytes).expect("a buffer of TOTAL_SIZE");
                bytes.truncate(written);
                bytes
            }
        }
    };
}

/// Spin (yielding) until `done()` or `limit` passed; whether `done()` held.
/// For test kernels' hooks, which run on the panic path and must be bounded.
pub fn wait_bounded(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// Spin (yielding) until `done()` or a stop request; whether `done()` held.
pub fn wait_until(cpu: &crashkit_sim::SimCpu, done: impl Fn() -> bool) -> bool {
    while !done() {
        if cpu.stop_requested() {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// A notifier body that does its job.
pub fn complete(_: &PanicContext<'_>) -> BodyResult {
    BodyResult::Complete
}

/// Register `notifiers` in that order.
#[track_caller]
pub fn register<const N: usize>(registry: &Registry<N>, notifiers: &[&'static Notifier]) {
    for notifier in notifiers {
        registry
            .register(notifier)
            .unwrap_or_else(|error| panic!("registering {}: {error}", notifier.name()));
    }
}

/// Parse a snapshot as the offline tool does; panics with the parser's
/// error (offset and kind) if the writer produced a malformed record.
#[track_caller]
pub fn parse(bytes: &[u8]) -> RecordView<'_> {
    match RecordView::parse(bytes) {
        Ok(view) => view,
        Err(error) => panic!("the snapshot does not parse: {error}"),
    }
}

/// Every CPU's run ended as `expected` says (index: CPU).
#[track_caller]
pub fn assert_outcomes(report: &RunReport, expected: &[CpuOutcome]) {
    assert_eq!(report.outcomes, expected, "\n{report}");
}

/// Every CPU parked (the owner at its final action, the others stopped).
#[track_caller]
pub fn assert_all_parked(report: &RunReport) {
    let parked = vec![CpuOutcome::Parked; report.outcomes.len()];
    assert_outcomes(report, &parked);
}

/// A version-1 record of `cpus` CPU slots and the test kernels' notifier
/// slots, nothing dropped.
#[track_caller]
pub fn assert_header(view: &RecordView<'_>, cpus: usize) {
    assert_eq!(view.header().version, 1);
    assert_eq!(view.cpu_count(), cpus);
    assert_eq!(view.notifier_slot_count(), NOTIFIER_SLOTS);
    assert_eq!(view.panic().notifiers_dropped(), 0);
}

/// The message reads `expected`, whole.
#[track_caller]
pub fn assert_message(view: &RecordView<'_>, expected: &str) {
    let message = view.panic().message();
    assert_eq!(message.as_str(), Some(expected));
    assert!(!message.truncated());
}

/// `owner` owns the panic: the panic section names it, its slot is
/// `PanicOwner` with exactly `frame`, stamped at or after the panic entry,
/// and no stop NMI was ever addressed to it.
#[track_caller]
pub fn assert_owner(view: &RecordView<'_>, owner: usize, frame: &RegisterFrame) {
    assert_eq!(view.panic().owner_cpu(), Some(owner as u32));
    let slot = view.cpu(owner).expect("the owner's slot");
    assert_eq!(slot.state().known(), Some(CpuState::PanicOwner), "{slot:?}");
    assert_eq!(slot.frame().as_ref(), Some(frame), "the owner's registers");
    assert_eq!(slot.nmis_sent(), 0, "{slot:?}");
    assert_eq!(slot.first_nmi_ns(), 0, "{slot:?}");
    assert!(
        slot.stopped_ns() >= view.panic().stamp_ns(PhaseStamp::PanicEntry),
        "{slot:?}"
    );
}

/// CPU `index` stopped through `path` at NMI depth `depth`, with registers
/// of a running user-mode thread, at a time, after its first NMI if it was
/// sent one.
#[track_caller]
pub fn assert_stopped(view: &RecordView<'_>, index: usize, path: StopPath, depth: u32) {
    let slot = view.cpu(index).expect("a slot");
    assert_eq!(slot.state().known(), Some(CpuState::Stopped), "cpu{index}");
    assert_eq!(slot.stop_path().known(), Some(path), "cpu{index}");
    assert_eq!(slot.nmi_depth(), depth, "cpu{index}");
    let frame = slot.frame().expect("a stopped slot has registers");
    assert_ne!(frame.rip, 0, "rip of cpu{index}");
    assert_ne!(frame.rsp, 0, "rsp of cpu{index}");
    assert_eq!(
        frame.cs & 3,
        3,
        "cs {:#x} of cpu{index}: not user mode",
        frame.cs
    );
    assert!(slot.stopped_ns() > 0, "cpu{index}");
    if path == StopPath::Nmi {
        // Marked `NmiSent` (stamped) before any stop NMI went out, and
        // stamped its stop when it took one.
        assert!(
            slot.nmis_sent() >= 1,
            "cpu{index} stopped by an NMI never sent"
        );
        assert!(slot.first_nmi_ns() > 0, "cpu{index}: no first NMI time");
        assert!(
            slot.first_nmi_ns() <= slot.stopped_ns(),
            "cpu{index}: stopped before its first NMI"
        );
    }
    // A CPU that stops itself through a poll races the owner's marks: it
    // reads its clock before its compare-and-swap, the owner its own before
    // marking, so either time may be the earlier one, and if it stopped
    // before the mark its NMI is counted without a first-NMI time.
}

/// The shootdown tally: `stopped`, `unresponsive`, no absent slot, no
/// refused send, and `nmis_sent` the sum of the slots' counters (the
/// summary's definition).
#[track_caller]
pub fn assert_shootdown(view: &RecordView<'_>, stopped: u32, unresponsive: u32) {
    let totals = view.panic().shootdown();
    assert_eq!(
        (totals.stopped, totals.unresponsive, totals.absent),
        (stopped, unresponsive, 0),
        "{totals:?}"
    );
    assert_eq!(totals.send_errors, 0, "{totals:?}");
    let per_slot: u32 = view.cpus().map(|slot| slot.nmis_sent()).sum();
    assert_eq!(totals.nmis_sent, per_slot, "{totals:?}");
    assert!(totals.nmis_sent >= stopped + unresponsive, "{totals:?}");
    assert!(totals.nmis_resent <= totals.nmis_sent, "{totals:?}");
}

/// The recorded notifier outcomes are exactly `expected`, in run order:
/// (list, name, outcome). `NotRun` has no duration; `Panicked` has one
/// (from its start to the resume).
#[track_caller]
pub fn assert_notifiers(view: &RecordView<'_>, expected: &[(RecList, &str, Outcome)]) {
    let recorded: Vec<(Option<RecList>, Option<&str>, Option<Outcome>)> = view
        .notifiers()
        .map(|n| (n.list().known(), n.name().as_str(), n.outcome().known()))
        .collect();
    let expected: Vec<_> = expected
        .iter()
        .map(|&(list, name, outcome)| (Some(list), Some(name), Some(outcome)))
        .collect();
    assert_eq!(recorded, expected);
    assert_eq!(view.panic().notifiers_recorded() as usize, expected.len());
    for notifier in view.notifiers() {
        let name = notifier.name().as_str().unwrap_or("?");
        match notifier.outcome().known() {
            // `SkippedLockBusy` keeps the lock attempt's duration.
            Some(Outcome::NotRun) => assert_eq!(notifier.duration_ns(), 0, "{name}"),
            Some(Outcome::Panicked) => assert!(notifier.duration_ns() > 0, "{name}"),
            _ => {}
        }
        assert!(!notifier.name().truncated(), "{name}");
    }
}

/// The stamps of `present` are set and in that order (non-decreasing); those
/// of `absent` are 0.
#[track_caller]
pub fn assert_stamps(view: &RecordView<'_>, present: &[PhaseStamp], absent: &[PhaseStamp]) {
    let panic = view.panic();
    let mut previous = (PhaseStamp::PanicEntry, 0);
    for &which in present {
        let at = panic.stamp_ns(which);
        assert_ne!(at, 0, "{which:?} not stamped");
        assert!(
            at >= previous.1,
            "{which:?} ({at}) before {:?} ({})",
            previous.0,
            previous.1
        );
        previous = (which, at);
    }
    for &which in absent {
        assert_eq!(panic.stamp_ns(which), 0, "{which:?} stamped");
    }
}

/// Every stamp of a sequence without escalation, default configuration:
/// entry, shootdown, notifiers, dump hand-over (not configured), notifiers
/// after it, final action.
pub const FULL_SEQUENCE: [PhaseStamp; 8] = [
    PhaseStamp::PanicEntry,
    PhaseStamp::ShootdownStart,
    PhaseStamp::ShootdownEnd,
    PhaseStamp::NotifiersStart,
    PhaseStamp::DumpHandoverStart,
    PhaseStamp::DumpHandoverEnd,
    PhaseStamp::NotifiersEnd,
    PhaseStamp::FinalAction,
];

/// No escalation, re-entry, second panicker or lock event.
#[track_caller]
pub fn assert_no_incident(view: &RecordView<'_>) {
    let panic = view.panic();
    assert_eq!(panic.escalations(), 0);
    assert_eq!(panic.skipped().0, 0);
    assert_eq!(panic.escalation(0), None);
    assert_eq!(panic.reentries(), 0);
    assert_eq!(panic.second_panickers(), 0);
    assert_eq!(panic.qspinlock_fallbacks(), 0);
    assert_eq!(panic.panic_lock_breaks(), 0);
}

/// The other CPUs, `0..cpus` but `except`: each stopped by the NMI,
/// interrupted in its body (depth 1).
#[track_caller]
pub fn assert_others_stopped_by_nmi(view: &RecordView<'_>, cpus: usize, except: &[usize]) {
    for index in (0..cpus).filter(|index| !except.contains(index)) {
        assert_stopped(view, index, StopPath::Nmi, 1);
    }
}
