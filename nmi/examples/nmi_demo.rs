//! The NMI core on a simulated 4-CPU machine: what `cargo xtask demo` runs
//! until the QEMU demo exists.
//!
//! Every CPU runs code that nests NMI-like contexts while the others hit it
//! with NMIs (5% of them lost on the way) and machine checks. Two simulated
//! NMI sources, a "PMU" and a "watchdog", raise their NMIs through the
//! handler chain; sometimes both fire at once, so one NMI latches behind the
//! other and must be swallowed; sometimes an NMI comes from nowhere and is
//! reported as unknown. Halfway through, CPU 1 installs an emergency handler
//! from inside an NMI handler. The report shows, per CPU and per handler,
//! what happened, and the run checks that the books balance.
//!
//! Usage: `nmi_demo [REPORT_PATH]` (prints the report; writes it to the path
//! too). Exits non-zero if an invariant failed.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use crashkit_nmi::{
    ContextKind, CpuContexts, CpuIndex, HandlerChain, MAX_NESTING, NmiEvent, NmiHandler,
    NmiOutcome, Platform, RegisterFrame, UnknownNmiPolicy,
};
use crashkit_sim::{EntryKind, Machine, Rng, SimCpu};

const CPUS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(2);

static CONTEXTS: CpuContexts<CPUS> = CpuContexts::new();
static CHAIN: HandlerChain<4, CPUS> = HandlerChain::new(UnknownNmiPolicy::Report(unknown_nmi));

/// Pending events of the two simulated sources, per CPU (set before the NMI
/// is sent; SeqCst so the handler that runs because of the NMI sees it).
static PMU_PENDING: [AtomicBool; CPUS] = [const { AtomicBool::new(false) }; CPUS];
static WATCHDOG_PENDING: [AtomicBool; CPUS] = [const { AtomicBool::new(false) }; CPUS];

static PMU: NmiHandler = NmiHandler::new("pmu", |e| take(&PMU_PENDING, e));
static WATCHDOG: NmiHandler = NmiHandler::new("watchdog", |e| take(&WATCHDOG_PENDING, e));
static EMERGENCY: NmiHandler = NmiHandler::new("emergency", |_| NmiOutcome::NotMine);

/// Tallies (Relaxed: statistics, read after the run).
static RAISED: AtomicU64 = AtomicU64::new(0);
static DOUBLES: AtomicU64 = AtomicU64::new(0);
static STRAYS: AtomicU64 = AtomicU64::new(0);
static REPORTED_UNKNOWN: AtomicU64 = AtomicU64::new(0);
static OVERFLOWS: AtomicU64 = AtomicU64::new(0);
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
static DEEPEST_ENTRY: AtomicU64 = AtomicU64::new(0);

fn take(pending: &[AtomicBool; CPUS], event: &NmiEvent<'_>) -> NmiOutcome {
    match pending.get(event.cpu.as_usize()) {
        Some(flag) if flag.swap(false, SeqCst) => NmiOutcome::Handled,
        _ => NmiOutcome::NotMine,
    }
}

fn unknown_nmi(_: &NmiEvent<'_>) {
    REPORTED_UNKNOWN.fetch_add(1, Relaxed);
}

/// Count a failed check instead of panicking in a signal handler.
fn check(ok: bool) {
    if !ok {
        VIOLATIONS.fetch_add(1, Relaxed);
    }
}

fn entry(cpu: &SimCpu, kind: EntryKind, frame: &mut RegisterFrame) {
    let Some(tracker) = CONTEXTS.get(cpu.index()) else {
        return check(false);
    };
    let before = tracker.snapshot();
    let context = match kind {
        EntryKind::Nmi => ContextKind::Nmi,
        EntryKind::MachineCheck => ContextKind::MachineCheck,
        EntryKind::Debug => ContextKind::Debug,
        // Not an NMI-like context, and this demo raises none.
        EntryKind::Interrupt => return,
    };
    let guard = tracker.enter(context);
    match &guard {
        Ok(guard) => {
            check(tracker.depth() == before.depth() + 1);
            DEEPEST_ENTRY.fetch_max(u64::from(guard.level()), Relaxed);
        }
        Err(_) => {
            check(before.depth() == MAX_NESTING);
            OVERFLOWS.fetch_add(1, Relaxed);
        }
    }
    if kind == EntryKind::Nmi {
        CHAIN.dispatch(cpu.platform(), frame);
        let received = CHAIN.cpu_stats(cpu.index()).map_or(0, |s| s.received);
        if cpu.index() == CpuIndex(1) && received == 1000 {
            check(CHAIN.set_emergency(Some(&EMERGENCY)).is_none());
        }
    }
    drop(guard);
    check(tracker.snapshot().raw() == before.raw());
}

fn body(cpu: &SimCpu) {
    let platform = cpu.platform();
    let Some(tracker) = CONTEXTS.get(cpu.index()) else {
        return check(false);
    };
    let mut rng = Rng::new(0xC0FFEE + u64::from(cpu.index().0));
    let kinds = [
        ContextKind::Nmi,
        ContextKind::MachineCheck,
        ContextKind::Debug,
    ];
    while !cpu.stop_requested() && platform.now_ns() < RUN_FOR.as_nanos() as u64 {
        // Nest to a random depth (sometimes the limit), then unwind.
        let depth = if rng.chance(100) {
            MAX_NESTING
        } else {
            rng.below(6) as u8
        };
        let mut guards: heapless::Vec<_, 16> = heapless::Vec::new();
        for _ in 0..depth {
            match tracker.enter(kinds[rng.below(3) as usize]) {
                Ok(guard) => check(guards.push(guard).is_ok()),
                Err(_) => check(false),
            }
        }
        check(tracker.depth() == depth);
        // Meanwhile, raise NMIs at another CPU.
        let target = CpuIndex(rng.below(CPUS as u64) as u32);
        let (Some(pmu), Some(watchdog)) = (
            PMU_PENDING.get(target.as_usize()),
            WATCHDOG_PENDING.get(target.as_usize()),
        ) else {
            return check(false);
        };
        match rng.below(100) {
            0..=59 => {
                pmu.store(true, SeqCst);
                RAISED.fetch_add(1, Relaxed);
                let _ = platform.send_nmi(target);
            }
            60..=69 => {
                // Both sources at once: two NMIs, of which one may latch
                // behind the other (or be coalesced, or lost).
                pmu.store(true, SeqCst);
                watchdog.store(true, SeqCst);
                DOUBLES.fetch_add(1, Relaxed);
                let _ = platform.send_nmi(target);
                let _ = platform.send_nmi(target);
            }
            70..=72 => {
                STRAYS.fetch_add(1, Relaxed);
                let _ = platform.send_nmi(target);
            }
            73..=75 => {
                let _ = platform.raise(target, EntryKind::MachineCheck);
            }
            _ => {}
        }
        while let Some(guard) = guards.pop() {
            drop(guard);
        }
        check(tracker.depth() == 0);
        platform.relax();
    }
}

fn main() -> ExitCode {
    let path = std::env::args().nth(1);
    if CHAIN.register(&PMU).is_err() || CHAIN.register(&WATCHDOG).is_err() {
        eprintln!("nmi_demo: could not register the handlers");
        return ExitCode::FAILURE;
    }
    let machine = Machine::new(CPUS, entry);
    machine.platform().set_nmi_loss(50, 0xD1CE);
    let report = machine.run(RUN_FOR + Duration::from_secs(30), body);

    let mut out = String::new();
    let failures = write_report(&mut out, &report);
    print!("{out}");
    if let Some(path) = path {
        if let Err(error) = std::fs::write(&path, &out) {
            eprintln!("nmi_demo: cannot write the report to {path}: {error}");
            return ExitCode::FAILURE;
        }
        println!("report written to {path}");
    }
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("nmi_demo: {failures} check(s) failed");
        ExitCode::FAILURE
    }
}

/// Write the report; returns the number of failed checks.
fn write_report(out: &mut String, report: &crashkit_sim::RunReport) -> u64 {
    let l = |c: &AtomicU64| c.load(Relaxed);
    let _ = writeln!(
        out,
        "crashkit NMI core on a simulated {CPUS}-CPU machine ({:.2?}, 5% of NMIs lost)\n",
        report.elapsed
    );
    let _ = writeln!(
        out,
        "cpu  outcome    NMIs sent  lost  delivered | received handled swallowed unknown \
         rewalks torn | MCEs | overflows"
    );
    let mut failures = l(&VIOLATIONS);
    let mut totals = [0u64; 4];
    for (i, (outcome, sim)) in report.outcomes.iter().zip(&report.stats).enumerate() {
        let cpu = CpuIndex(i as u32);
        let chain = CHAIN.cpu_stats(cpu).unwrap_or_default();
        let overflows = CONTEXTS.get(cpu).map_or(0, |t| t.snapshot().overflows());
        let _ = writeln!(
            out,
            "{i:>3}  {:<9} {:>10} {:>5} {:>10} | {:>8} {:>7} {:>9} {:>7} {:>7} {:>4} | {:>4} | {:>9}",
            format!("{outcome:?}"),
            sim.sent(EntryKind::Nmi),
            sim.nmis_dropped,
            sim.delivered(EntryKind::Nmi),
            chain.received,
            chain.handled,
            chain.swallowed,
            chain.unknown,
            chain.rewalks,
            chain.torn_walks,
            sim.delivered(EntryKind::MachineCheck),
            overflows,
        );
        // Books: every NMI that arrived was dispatched and ended up handled,
        // swallowed or unknown.
        if chain.received != sim.delivered(EntryKind::Nmi)
            || chain.handled + chain.swallowed + chain.unknown != chain.received
        {
            failures += 1;
        }
        for (t, v) in totals.iter_mut().zip([
            chain.received,
            chain.handled,
            chain.swallowed,
            chain.unknown,
        ]) {
            *t += v;
        }
    }
    let _ = writeln!(out, "\nhandler     calls  claimed  longest");
    for handler in [&EMERGENCY, &PMU, &WATCHDOG] {
        let s = handler.stats();
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>8} {:>6} ns",
            handler.name(),
            s.calls(),
            s.claimed(),
            s.longest_ns()
        );
    }
    let _ = writeln!(
        out,
        "\nraised: {} PMU events, {} double events, {} stray NMIs",
        l(&RAISED),
        l(&DOUBLES),
        l(&STRAYS)
    );
    let _ = writeln!(
        out,
        "dispatched {} NMIs: {} handled, {} swallowed as latched duplicates, {} unknown \
         ({} reported by the policy callback)",
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        l(&REPORTED_UNKNOWN)
    );
    let _ = writeln!(
        out,
        "contexts: deepest entry at level {}, {} entries refused at depth {MAX_NESTING} \
         (counted, no wrap)",
        l(&DEEPEST_ENTRY),
        l(&OVERFLOWS)
    );
    let _ = writeln!(
        out,
        "(unknown NMIs exceed the stray ones: when two raises of one source meet \
         before the target runs, one NMI handles both events and the other finds \
         nothing pending, the way real sources share a status register)"
    );
    let emergency_installed = CHAIN.emergency().is_some();
    let _ = writeln!(
        out,
        "emergency handler installed from NMI context on cpu1: {}",
        if emergency_installed { "yes" } else { "no" }
    );
    if totals[3] != l(&REPORTED_UNKNOWN) || !emergency_installed || !report.all_finished() {
        failures += 1;
    }
    let _ = writeln!(
        out,
        "checks: {}",
        if failures == 0 {
            "all passed".to_owned()
        } else {
            format!("{failures} FAILED")
        }
    );
    failures
}
