//! A kernel panic on a simulated 4-CPU machine, from `panic!` to the crash
//! record: what `cargo xtask demo` shows until the QEMU demo exists.
//!
//! The kernel is declared as an integrator declares one, with
//! `crashkit::kernel!` (the crash record, the shootdown over its CPU slots,
//! the notifier registry, the NMI handler chain with the stop handler for
//! its emergency slot, a lock domain whose `relax` polls the shootdown), on
//! the simulated machine's platform. The CPUs are in the states that make a
//! crash path hard:
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crashkit::prelude::*;
use crashkit_record::{
    CpuState, CrashRecord, Decoded, NotifierOutcome, PanicPhase, RecordView, StopPath, Summary,
};
use crashkit_sim::{CpuOutcome, EntryKind, Machine, SimCpu, Socket};

const CPUS: usize = 4;
const NOTIFIERS: usize = 16;
type Record = CrashRecord<CPUS, NOTIFIERS>;

crashkit::kernel! {
    /// The demo kernel: the glue an x86_64 kernel gets, on the simulated
    /// machine's platform.
    struct Demo;
    cpus: CPUS,
    notifiers: NOTIFIERS,
    platform: Socket = Socket::new(),
    final_action: halt,
    config: PanicConfig {
        shootdown: ShootdownConfig {
            deadline_ns: 500_000_000,
            ..ShootdownConfig::DEFAULT
        },
        ..PanicConfig::DEFAULT
    },
}

/// A device lock, shared by task and NMI context.
static DEVICE: Mutex<Demo, u64> = Mutex::new(0);
/// The console, shared by ordinary code and a notifier.
static CONSOLE: NotifierLock<Demo, u64> = NotifierLock::new(0);

/// A handler of the kernel's own that needs the device lock: on cpu3, the
/// first NMI after the body asked for it takes the lock (the entry has put
/// the CPU in NMI context).
static DEVICE_NMI: NmiHandler = NmiHandler::new("device", |event| {
    if event.cpu != CpuIndex(3) || SPIN_IN_NMI.swap(0, SeqCst) == 0 {
        return NmiOutcome::NotMine;
    }
    CPU3_SPINNING.store(true, SeqCst);
    let mut device = DEVICE.lock();
    *device += 1;
    NmiOutcome::Handled
});

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
/// NMIs cpu3's device handler should turn into a `DEVICE` wait.
static SPIN_IN_NMI: AtomicUsize = AtomicUsize::new(0);

/// The panicking post-dump notifier: a kernel's `panic!` here re-enters
/// the panic handler; on the host, where `panic!` would unwind, it calls
/// the kernel's panic entry as `#[panic_handler]` would.
fn watchdog_disarm(_: &PanicContext<'_>) -> BodyResult {
    Demo::panic_in_exception(
        format_args!("watchdog-disarm: register write timed out"),
        &RegisterFrame::capture(),
    )
}

/// The simulated IDT: an NMI goes to the kernel's NMI entry body (NMI
/// context, the handler chain).
fn entry(_: &SimCpu, kind: EntryKind, frame: &mut RegisterFrame) {
    if kind == EntryKind::Nmi {
        Demo::on_nmi(frame);
    }
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
            Demo::panic_in_exception(
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
        if let Err(error) = Demo::state().notifiers().register(notifier) {
            eprintln!("crash demo: registering {}: {error}", notifier.name());
            return ExitCode::FAILURE;
        }
    }
    if let Err(error) = Demo::state().chain().register(&DEVICE_NMI) {
        eprintln!("crash demo: registering the device's NMI handler: {error}");
        return ExitCode::FAILURE;
    }
    let machine = Machine::new(CPUS, entry);
    if let Err(error) = Demo::state().platform().plug(machine.platform()) {
        eprintln!("crash demo: {error}");
        return ExitCode::FAILURE;
    }
    let report = machine.run(Duration::from_secs(30), body);
    if report.outcomes.iter().any(|o| *o != CpuOutcome::Parked) {
        eprintln!("crash demo: every CPU should have ended parked:\n{report}");
        return ExitCode::FAILURE;
    }

    let mut bytes = vec![0u8; Record::TOTAL_SIZE];
    let taken = match <Demo as Kernel>::record().snapshot(&mut bytes) {
        Ok(len) => len,
        Err(error) => {
            eprintln!("crash demo: snapshot: {error}");
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
