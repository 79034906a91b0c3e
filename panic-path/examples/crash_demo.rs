//! A kernel panic on a simulated 4-CPU machine, from `panic!` to the crash
//! record: what `cargo xtask demo` shows until the QEMU demo exists.
//!
//! The machine is wired the way an integrator wires a kernel (statics for
//! the crash record, the shootdown over its CPU slots, the notifier
//! registry, the NMI handler chain with the stop handler in its emergency
//! slot, a lock domain whose `relax` polls the shootdown), and the CPUs are
//! in the states that make a crash path hard:
//!
//! - cpu0 holds the `DEVICE` lock and panics ("disk controller timed out");
//! - cpu1 runs ordinary code: the shootdown's NMI stops it;
//! - cpu2 holds the console's notifier lock when it is stopped, so the
//!   informational notifier that needs the console is skipped, not waited
//!   for;
//! - cpu3 is inside an NMI handler, spinning on `DEVICE` with NMIs blocked:
//!   the stop NMI cannot reach it, the lock's `relax` polls the shootdown and
//!   it stops itself;
//! - the post-dump "watchdog-disarm" notifier panics: the panic path
//!   re-enters, records the escalation and carries on with the next
//!   notifier.
//!
//! Then the demo takes the crash record's bytes as a dump would hold them,
//! parses them with nothing but the bytes (`RecordView::parse`) and prints
//! the summary. With a directory argument it writes `crash-record.bin` and
//! `crash-record.txt` there and prints their paths.
//!
//! Usage: `crash_demo [OUT_DIR]`. Exits non-zero if the record does not say
//! what the scenario must produce.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crashkit_nmi::lock::{CpuQueue, Mutex, QueueDomain};
use crashkit_nmi::{
    ContextKind, CpuContexts, CpuIndex, HandlerChain, NmiHandler, NmiOutcome, PanicFlag, Platform,
    RegisterFrame, UnknownNmiPolicy,
};
use crashkit_notifiers::{
    BodyResult, EscalationPolicy, LockedBody, Notifier, NotifierList, NotifierLock, PanicContext,
    Registry,
};
use crashkit_panic_path::{Kernel, PanicConfig, Progress};
use crashkit_record::{
    CpuState, CrashRecord, Decoded, NotifierOutcome, PanicPhase, RecordView, StopPath, Summary,
};
use crashkit_shootdown::{Shootdown, ShootdownConfig};
use crashkit_sim::{CpuOutcome, EntryKind, Machine, SimCpu, SimPlatform};

const CPUS: usize = 4;
type Record = CrashRecord<CPUS, 16>;

static RECORD: Record = CrashRecord::new();
static SHOOTDOWN: Shootdown = Shootdown::new(RECORD.cpu_slots());
static NOTIFIERS: Registry<8> = Registry::new(EscalationPolicy::NextNotifier);
static PROGRESS: Progress = Progress::new();
static PANIC: PanicFlag = PanicFlag::new();
static CONTEXTS: CpuContexts<CPUS> = CpuContexts::new();
static CHAIN: HandlerChain<4, CPUS> = HandlerChain::new(UnknownNmiPolicy::Count);
static QUEUES: [CpuQueue; CPUS] = [const { CpuQueue::new() }; CPUS];
static PLATFORM: OnceLock<SimPlatform> = OnceLock::new();

/// The shootdown's stop handler, installed in the chain's emergency slot by
/// the panic path.
static STOP: NmiHandler = NmiHandler::new("crashkit-stop", |event| {
    let Some(platform) = PLATFORM.get() else {
        return NmiOutcome::NotMine;
    };
    SHOOTDOWN.handle_nmi(platform, event, nmi_depth())
});

/// A device lock, shared by task and NMI context.
static DEVICE: Mutex<Locks, u64> = Mutex::new(0);
/// The console, shared by ordinary code and a notifier.
static CONSOLE: NotifierLock<Locks, u64> = NotifierLock::new(0);

static PVPANIC: Notifier = Notifier::new("pvpanic", NotifierList::Hypervisor, 10, |_| {
    BodyResult::Complete
});
static DMA_QUIESCE: Notifier = Notifier::new("dma-quiesce", NotifierList::PreDump, 0, |_| {
    BodyResult::Complete
});
static CONSOLE_FLUSH: Notifier = Notifier::locked(
    "console-flush",
    NotifierList::Informational,
    5,
    &LockedBody::new(&CONSOLE, |_, lines| {
        *lines += 1;
        BodyResult::Complete
    }),
);
static LOG_SUMMARY: Notifier = Notifier::new("log-summary", NotifierList::Informational, 0, |_| {
    BodyResult::Complete
});
static WATCHDOG_DISARM: Notifier = Notifier::new(
    "watchdog-disarm",
    NotifierList::PostDump,
    5,
    watchdog_disarm,
);
static LAST_WORDS: Notifier = Notifier::new("last-words", NotifierList::PostDump, 0, |_| {
    BodyResult::Complete
});

/// cpu3 is in its NMI handler, spinning on `DEVICE`.
static CPU3_SPINNING: AtomicBool = AtomicBool::new(false);
/// cpu2 holds the console.
static CPU2_HOLDS_CONSOLE: AtomicBool = AtomicBool::new(false);
/// cpu1 and cpu3 are running their bodies.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// NMIs cpu3's entry should turn into a `DEVICE` wait.
static SPIN_IN_NMI: AtomicUsize = AtomicUsize::new(0);

/// The demo kernel.
struct Demo;

impl Kernel for Demo {
    type Platform = SimPlatform;
    type Record = Record;
    type Notifiers = Registry<8>;

    const CONFIG: PanicConfig = PanicConfig {
        shootdown: ShootdownConfig {
            deadline_ns: 500_000_000,
            ..ShootdownConfig::DEFAULT
        },
        ..PanicConfig::DEFAULT
    };

    fn platform() -> &'static SimPlatform {
        match PLATFORM.get() {
            Some(platform) => platform,
            None => panic!("the demo kernel runs on its machine only"),
        }
    }

    fn record() -> &'static Record {
        &RECORD
    }

    fn shootdown() -> &'static Shootdown {
        &SHOOTDOWN
    }

    fn notifiers() -> &'static Registry<8> {
        &NOTIFIERS
    }

    fn progress() -> &'static Progress {
        &PROGRESS
    }

    fn install_stop_handler() {
        let _previous = CHAIN.set_emergency(Some(&STOP));
    }

    fn panic_flag() -> &'static PanicFlag {
        &PANIC
    }

    fn nmi_depth() -> u32 {
        nmi_depth()
    }

    fn lock_events() -> (u32, u32) {
        let stats = QUEUES.iter().map(CpuQueue::stats);
        let (fallbacks, breaks) = stats.fold((0u64, 0u64), |(f, b), s| {
            (f + s.fallbacks, b + s.panic_breaks)
        });
        (
            u32::try_from(fallbacks).unwrap_or(u32::MAX),
            u32::try_from(breaks).unwrap_or(u32::MAX),
        )
    }
}

/// The kernel's lock domain: simulated CPUs, and a `relax` that polls the
/// shootdown so that a CPU spinning with NMIs blocked stops itself.
struct Locks;

impl QueueDomain for Locks {
    fn queues() -> &'static [CpuQueue] {
        &QUEUES
    }

    fn current_cpu() -> CpuIndex {
        crashkit_sim::current_cpu().unwrap_or(CpuIndex(u32::MAX))
    }

    fn now_ns() -> u64 {
        PLATFORM.get().map_or(0, Platform::now_ns)
    }

    fn relax() {
        std::thread::yield_now();
        if let Some(platform) = PLATFORM.get() {
            SHOOTDOWN.poll(platform, nmi_depth());
        }
    }

    fn panic_flag() -> &'static PanicFlag {
        &PANIC
    }
}

fn nmi_depth() -> u32 {
    PLATFORM
        .get()
        .and_then(|platform| CONTEXTS.current(platform))
        .map_or(0, |tracker| u32::from(tracker.depth()))
}

/// The panicking post-dump notifier: a kernel's `panic!` here re-enters
/// the panic handler; on the host, where `panic!` would unwind, it calls
/// the kernel's panic entry as `#[panic_handler]` would.
fn watchdog_disarm(_: &PanicContext<'_>) -> BodyResult {
    crashkit_panic_path::panic_in_exception::<Demo>(
        format_args!("watchdog-disarm: register write timed out"),
        &RegisterFrame::capture(),
    )
}

/// The NMI entry: enter the NMI context; on cpu3, the first NMI takes the
/// device lock (a handler that needs it); every NMI goes to the chain.
fn entry(cpu: &SimCpu, kind: EntryKind, frame: &mut RegisterFrame) {
    if kind != EntryKind::Nmi {
        return;
    }
    let _context = CONTEXTS.enter_current(cpu.platform(), ContextKind::Nmi);
    if cpu.index() == CpuIndex(3) && SPIN_IN_NMI.swap(0, SeqCst) > 0 {
        CPU3_SPINNING.store(true, SeqCst);
        let mut device = DEVICE.lock();
        *device += 1;
        return;
    }
    let _outcome = CHAIN.dispatch(cpu.platform(), frame);
}

/// Spin (yielding) until `done` or the run winds down.
fn wait(cpu: &SimCpu, done: impl Fn() -> bool) -> bool {
    while !done() {
        if cpu.stop_requested() {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

fn body(cpu: &SimCpu) {
    match cpu.index().0 {
        0 => {
            let mut device = DEVICE.lock();
            *device += 1;
            // Everybody in place before the NMI to cpu3, and cpu3 in its
            // handler before the panic.
            if !wait(cpu, || {
                CPU2_HOLDS_CONSOLE.load(SeqCst) && RUNNING.load(SeqCst) == 2
            }) {
                return;
            }
            SPIN_IN_NMI.store(1, SeqCst);
            if cpu.platform().raise(CpuIndex(3), EntryKind::Nmi).is_err()
                || !wait(cpu, || CPU3_SPINNING.load(SeqCst))
            {
                return;
            }
            crashkit_panic_path::panic_in_exception::<Demo>(
                format_args!("demo: disk controller timed out (status {:#x})", 0x51),
                &RegisterFrame::capture(),
            )
        }
        2 => {
            let mut console = CONSOLE.lock();
            CPU2_HOLDS_CONSOLE.store(true, SeqCst);
            while !cpu.stop_requested() {
                *console += 1;
                std::thread::yield_now();
            }
        }
        _ => {
            RUNNING.fetch_add(1, SeqCst);
            while !cpu.stop_requested() {
                std::thread::yield_now();
            }
        }
    }
}

/// What the scenario must have produced; the first thing that is not so.
fn check(view: &RecordView<'_>) -> Result<(), String> {
    let panic = view.panic();
    let expect = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    expect(panic.owner_cpu() == Some(0), "cpu0 owns the panic")?;
    expect(
        panic.phase() == Decoded::Known(PanicPhase::Halted),
        "the path halted",
    )?;
    let stop = |cpu: usize, path: StopPath| {
        view.cpu(cpu).is_some_and(|slot| {
            slot.state() == Decoded::Known(CpuState::Stopped)
                && slot.stop_path() == Decoded::Known(path)
        })
    };
    expect(stop(1, StopPath::Nmi), "cpu1 stopped by its NMI")?;
    expect(stop(2, StopPath::Nmi), "cpu2 stopped by its NMI")?;
    expect(
        stop(3, StopPath::Poll),
        "cpu3 stopped itself through the poll",
    )?;
    let outcome = |name: &str| {
        view.notifiers()
            .find(|n| n.name().as_str() == Some(name))
            .map(|n| n.outcome())
    };
    let is = |name: &str, wanted: NotifierOutcome| outcome(name) == Some(Decoded::Known(wanted));
    expect(is("pvpanic", NotifierOutcome::Ran), "pvpanic ran")?;
    expect(
        is("console-flush", NotifierOutcome::SkippedLockBusy),
        "console-flush was skipped (console held by stopped cpu2)",
    )?;
    expect(
        is("watchdog-disarm", NotifierOutcome::Panicked),
        "watchdog-disarm recorded as panicked",
    )?;
    expect(
        is("last-words", NotifierOutcome::Ran),
        "last-words ran after the escalation",
    )?;
    expect(panic.escalations() == 1, "one escalation")?;
    Ok(())
}

fn main() -> ExitCode {
    let out_dir = std::env::args_os().nth(1).map(PathBuf::from);
    for notifier in [
        &PVPANIC,
        &DMA_QUIESCE,
        &CONSOLE_FLUSH,
        &LOG_SUMMARY,
        &WATCHDOG_DISARM,
        &LAST_WORDS,
    ] {
        if let Err(error) = NOTIFIERS.register(notifier) {
            eprintln!("crash demo: registering {}: {error:?}", notifier.name());
            return ExitCode::FAILURE;
        }
    }
    let machine = Machine::new(CPUS, entry);
    if PLATFORM.set(machine.platform().clone()).is_err() {
        eprintln!("crash demo: the platform was already set");
        return ExitCode::FAILURE;
    }
    let report = machine.run(Duration::from_secs(30), body);
    if report.outcomes.iter().any(|o| *o != CpuOutcome::Parked) {
        eprintln!("crash demo: every CPU should have ended parked:\n{report}");
        return ExitCode::FAILURE;
    }

    let mut bytes = vec![0u8; Record::TOTAL_SIZE];
    let taken = match RECORD.snapshot(&mut bytes) {
        Ok(len) => len,
        Err(error) => {
            eprintln!("crash demo: snapshot: {error:?}");
            return ExitCode::FAILURE;
        }
    };
    let bytes = &bytes[..taken];
    let view = match RecordView::parse(bytes) {
        Ok(view) => view,
        Err(error) => {
            eprintln!("crash demo: the record does not parse: {error}");
            return ExitCode::FAILURE;
        }
    };
    let summary = Summary(&view).to_string();
    println!("{summary}");
    if let Some(dir) = out_dir {
        let (bin, txt) = (dir.join("crash-record.bin"), dir.join("crash-record.txt"));
        if let Err(error) = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&bin, bytes))
            .and_then(|()| std::fs::write(&txt, &summary))
        {
            eprintln!("crash demo: writing to {}: {error}", dir.display());
            return ExitCode::FAILURE;
        }
        println!(
            "\ncrash record (raw bytes, layout in docs/crash-record.md): {}",
            bin.display()
        );
        println!("summary: {}", txt.display());
    }
    match check(&view) {
        Ok(()) => ExitCode::SUCCESS,
        Err(what) => {
            eprintln!("crash demo: the record does not show what the scenario produced: {what}");
            ExitCode::FAILURE
        }
    }
}
