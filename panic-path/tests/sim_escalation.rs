//! Failures inside the panic path, on the host simulation: a notifier that
//! panics, a dump hook that panics, every notifier panicking (the escalation
//! limit), and notifiers whose lock a stopped CPU holds.
//!
//! A real `panic!` would unwind on the host (kernels abort), so a failing
//! notifier or hook calls the kernel's panic entry itself, as a kernel's
//! `#[panic_handler]` does: `panic_in_exception::<K>`. The re-entered panic
//! path then runs on a deeper stack frame and never returns into the
//! failed code, exactly as on a kernel.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use common::{
    Hooks, Outcome, RUN_DEADLINE, RecList, assert_all_parked, assert_header, assert_message,
    assert_notifiers, assert_others_stopped_by_nmi, assert_owner, assert_shootdown, assert_stamps,
    complete, parse, register,
};
use crashkit_notifiers::{
    BodyResult, LockedBody, Notifier, NotifierList, NotifierLock, PanicContext,
};
use crashkit_panic_path::{DUMP_PANICKED, DumpAttempt};
use crashkit_record::{
    DumpResult, FinalAction, PanicPhase, PhaseStamp, RecordView, Skipped, StopPath,
};

/// The escalation log holds exactly `count` entries, each a notifier
/// failure, in time order; the count and the skipped mask agree.
#[track_caller]
fn assert_escalations(view: &RecordView<'_>, phases: &[(PanicPhase, Skipped)], reentries: u32) {
    let panic = view.panic();
    assert_eq!(panic.escalations() as usize, phases.len());
    assert_eq!(panic.reentries(), reentries);
    let mut union = 0;
    let mut previous = panic.stamp_ns(PhaseStamp::PanicEntry);
    for (index, &(phase, skipped)) in phases.iter().enumerate().take(4) {
        let entry = panic.escalation(index).expect("a written log entry");
        assert_eq!(entry.phase.known(), Some(phase), "entry {index}");
        assert_eq!(entry.skipped, skipped, "entry {index}");
        assert!(entry.at_ns >= previous, "entry {index} out of order");
        previous = entry.at_ns;
        union |= skipped.0;
    }
    assert_eq!(panic.escalation(phases.len()), None);
    assert_eq!(panic.skipped().0, union);
}

// ----- a notifier that panics -----------------------------------------

test_kernel!(bad_notifier, cpus = 3);

fn panics(_: &PanicContext<'_>) -> BodyResult {
    bad_notifier::panic_now(format_args!("notifier panicked"))
}

static HV: Notifier = Notifier::new("hv", NotifierList::Hypervisor, 0, complete);
static PRE_1: Notifier = Notifier::new("pre-1", NotifierList::PreDump, 3, complete);
static PRE_BAD: Notifier = Notifier::new("pre-bad", NotifierList::PreDump, 2, panics);
static PRE_3: Notifier = Notifier::new("pre-3", NotifierList::PreDump, 1, complete);
static INFO: Notifier = Notifier::new("info", NotifierList::Informational, 0, complete);
static POST: Notifier = Notifier::new("post", NotifierList::PostDump, 0, complete);

/// Scenario 8: the second pre-dump notifier panics. The re-entered path
/// records one escalation (phase `Notifiers`, skipped `NOTIFIER`), the
/// notifier `Panicked`, then runs the rest of its list and the later lists,
/// and halts. The first panic's message and registers stay in the record.
#[test]
fn a_panicking_notifier_is_recorded_and_the_rest_runs() {
    register(
        bad_notifier::registry(),
        &[&POST, &PRE_3, &INFO, &PRE_BAD, &HV, &PRE_1],
    );
    let report = bad_notifier::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            return bad_notifier::busy(cpu);
        }
        if bad_notifier::wait_ready(cpu, 2) {
            bad_notifier::panic_now(format_args!("the first panic"));
        }
    });

    assert_all_parked(&report);
    let bytes = bad_notifier::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 3);
    assert_message(&view, "the first panic");
    assert_owner(&view, 0, &bad_notifier::panic_frame(0));
    assert_others_stopped_by_nmi(&view, 3, &[0]);
    assert_shootdown(&view, 2, 0);
    assert_notifiers(
        &view,
        &[
            (RecList::Hypervisor, "hv", Outcome::Ran),
            (RecList::PreDump, "pre-1", Outcome::Ran),
            (RecList::PreDump, "pre-bad", Outcome::Panicked),
            (RecList::PreDump, "pre-3", Outcome::Ran),
            (RecList::Informational, "info", Outcome::Ran),
            (RecList::PostDump, "post", Outcome::Ran),
        ],
    );
    assert_escalations(&view, &[(PanicPhase::Notifiers, Skipped::NOTIFIER)], 1);
    let escalated_at = view.panic().escalation(0).unwrap().at_ns;
    assert!(escalated_at >= view.panic().stamp_ns(PhaseStamp::NotifiersStart));
    assert!(escalated_at <= view.panic().stamp_ns(PhaseStamp::DumpHandoverStart));
    assert_stamps(&view, &common::FULL_SEQUENCE, &[]);
    let panic = view.panic();
    assert_eq!(panic.second_panickers(), 0);
    assert_eq!(panic.dump_result().known(), Some(DumpResult::NotConfigured));
    assert_eq!(panic.phase().known(), Some(PanicPhase::Halted));
    assert_eq!(panic.final_action().known(), Some(FinalAction::Halt));
}

// ----- a dump hook that panics ---------------------------------------

struct DumpPanics;

impl Hooks for DumpPanics {
    fn dump() -> DumpAttempt {
        bad_dump::panic_now(format_args!("dump hook panicked"))
    }
}

test_kernel!(bad_dump, cpus = 2, hooks = DumpPanics);

static BD_PRE: Notifier = Notifier::new("prepare", NotifierList::PreDump, 0, complete);
static BD_INFO: Notifier = Notifier::new("print", NotifierList::Informational, 0, complete);
static BD_POST: Notifier = Notifier::new("last-words", NotifierList::PostDump, 0, complete);

/// The dump hook panics instead of returning: escalation "dump", the dump
/// result `Failed` with `DUMP_PANICKED`, and the lists that run after a
/// failed dump still run. The hand-over never returned, so it has no end
/// stamp.
#[test]
fn a_panicking_dump_hook_is_a_failed_dump_and_the_later_lists_run() {
    register(bad_dump::registry(), &[&BD_POST, &BD_INFO, &BD_PRE]);
    let report = bad_dump::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 1 {
            return bad_dump::busy(cpu);
        }
        if bad_dump::wait_ready(cpu, 1) {
            bad_dump::panic_now(format_args!("before the dump"));
        }
    });

    assert_all_parked(&report);
    let bytes = bad_dump::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 2);
    assert_message(&view, "before the dump");
    assert_owner(&view, 1, &bad_dump::panic_frame(1));
    assert_others_stopped_by_nmi(&view, 2, &[1]);
    assert_shootdown(&view, 1, 0);
    assert_notifiers(
        &view,
        &[
            (RecList::PreDump, "prepare", Outcome::Ran),
            (RecList::Informational, "print", Outcome::Ran),
            (RecList::PostDump, "last-words", Outcome::Ran),
        ],
    );
    assert_escalations(
        &view,
        &[(PanicPhase::DumpHandover, Skipped::DUMP_HANDOVER)],
        1,
    );
    let panic = view.panic();
    assert_eq!(panic.dump_result().known(), Some(DumpResult::Failed));
    assert_eq!(panic.dump_detail(), DUMP_PANICKED);
    assert_stamps(
        &view,
        &[
            PhaseStamp::PanicEntry,
            PhaseStamp::ShootdownStart,
            PhaseStamp::ShootdownEnd,
            PhaseStamp::NotifiersStart,
            PhaseStamp::DumpHandoverStart,
            PhaseStamp::NotifiersEnd,
            PhaseStamp::FinalAction,
        ],
        &[PhaseStamp::DumpHandoverEnd],
    );
    let escalated_at = panic.escalation(0).unwrap().at_ns;
    assert!(escalated_at >= panic.stamp_ns(PhaseStamp::DumpHandoverStart));
    assert_eq!(panic.phase().known(), Some(PanicPhase::Halted));
    assert_eq!(panic.final_action().known(), Some(FinalAction::Halt));
}

// ----- every notifier panics -----------------------------------------

test_kernel!(all_bad, cpus = 2);

fn all_panic(context: &PanicContext<'_>) -> BodyResult {
    all_bad::panic_now(format_args!("in {:?}", context.list()))
}

static AB_HV_1: Notifier = Notifier::new("hv-1", NotifierList::Hypervisor, 1, all_panic);
static AB_HV_2: Notifier = Notifier::new("hv-2", NotifierList::Hypervisor, 0, all_panic);
static AB_PRE_1: Notifier = Notifier::new("pre-1", NotifierList::PreDump, 1, all_panic);
static AB_PRE_2: Notifier = Notifier::new("pre-2", NotifierList::PreDump, 0, all_panic);
static AB_INFO_1: Notifier = Notifier::new("info-1", NotifierList::Informational, 1, all_panic);
static AB_INFO_2: Notifier = Notifier::new("info-2", NotifierList::Informational, 0, all_panic);
static AB_POST_1: Notifier = Notifier::new("post-1", NotifierList::PostDump, 1, all_panic);

/// Every notifier panics. Each of the first `MAX_ESCALATIONS` (4) re-entries
/// records its notifier `Panicked` and goes on; the fifth parks the CPU at
/// once: final action `HaltAfterFailure`, phase `Halted`, the notifier that
/// caused it unrecorded, no final-action step. The path ends: the run does
/// not hang.
#[test]
fn every_notifier_panicking_ends_at_the_escalation_limit() {
    register(
        all_bad::registry(),
        &[
            &AB_HV_1, &AB_HV_2, &AB_PRE_1, &AB_PRE_2, &AB_INFO_1, &AB_INFO_2, &AB_POST_1,
        ],
    );
    let report = all_bad::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            return all_bad::busy(cpu);
        }
        if all_bad::wait_ready(cpu, 1) {
            all_bad::panic_now(format_args!("first of many"));
        }
    });

    assert_all_parked(&report);
    let bytes = all_bad::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 2);
    assert_message(&view, "first of many");
    assert_owner(&view, 0, &all_bad::panic_frame(0));
    assert_stopped_by_nmi(&view);
    assert_notifiers(
        &view,
        &[
            (RecList::Hypervisor, "hv-1", Outcome::Panicked),
            (RecList::Hypervisor, "hv-2", Outcome::Panicked),
            (RecList::PreDump, "pre-1", Outcome::Panicked),
            (RecList::PreDump, "pre-2", Outcome::Panicked),
        ],
    );
    let notifier = (PanicPhase::Notifiers, Skipped::NOTIFIER);
    assert_escalations(&view, &[notifier; 4], 5);
    let panic = view.panic();
    // The dump step ran between the pre-dump and informational lists.
    assert_eq!(panic.dump_result().known(), Some(DumpResult::NotConfigured));
    assert_eq!(panic.phase().known(), Some(PanicPhase::Halted));
    assert_eq!(
        panic.final_action().known(),
        Some(FinalAction::HaltAfterFailure)
    );
    assert_stamps(
        &view,
        &[
            PhaseStamp::PanicEntry,
            PhaseStamp::ShootdownStart,
            PhaseStamp::ShootdownEnd,
            PhaseStamp::NotifiersStart,
            // The pre-dump list, finished by the fourth escalation's resume.
            PhaseStamp::NotifiersEnd,
            PhaseStamp::DumpHandoverStart,
            PhaseStamp::DumpHandoverEnd,
        ],
        &[PhaseStamp::FinalAction],
    );
}

#[track_caller]
fn assert_stopped_by_nmi(view: &RecordView<'_>) {
    common::assert_stopped(view, 1, StopPath::Nmi, 1);
    assert_shootdown(view, 1, 0);
}

// ----- notifier locks held by a stopped CPU ---------------------------

test_kernel!(busy_lock, cpus = 3);

/// State a notifier shares with normal code.
static CONSOLE: NotifierLock<busy_lock::Locks, u32> = NotifierLock::new(0);
/// Set once CPU 2 holds `CONSOLE`.
static HOLDING: AtomicBool = AtomicBool::new(false);

fn flush_console(_: &PanicContext<'_>, lines: &mut u32) -> BodyResult {
    *lines += 1;
    BodyResult::Complete
}

static BL_HV: Notifier = Notifier::new("hv", NotifierList::Hypervisor, 0, complete);
static BL_CONSOLE: Notifier = Notifier::locked(
    "console",
    NotifierList::Informational,
    1,
    &LockedBody::new(&CONSOLE, flush_console),
);
static BL_LOG: Notifier = Notifier::new("log", NotifierList::Informational, 0, complete);
static BL_POST: Notifier = Notifier::new("last-words", NotifierList::PostDump, 0, complete);

/// Scenario 7: CPU 2 holds the console's `NotifierLock` when the shootdown
/// stops it, for good. The console notifier is recorded `SkippedLockBusy`
/// (its body never called), and every other notifier, the next one of the
/// same list included, still runs.
#[test]
fn a_notifier_whose_lock_a_stopped_cpu_holds_is_skipped() {
    register(
        busy_lock::registry(),
        &[&BL_POST, &BL_LOG, &BL_CONSOLE, &BL_HV],
    );
    let report = busy_lock::machine().run(RUN_DEADLINE, |cpu| match cpu.index().0 {
        0 => {
            if busy_lock::wait_ready(cpu, 2) && common::wait_until(cpu, || HOLDING.load(SeqCst)) {
                busy_lock::panic_now(format_args!("console stuck"));
            }
        }
        2 => {
            let mut lines = CONSOLE.lock();
            *lines += 100;
            HOLDING.store(true, SeqCst);
            busy_lock::busy(cpu);
            drop(lines);
        }
        _ => busy_lock::busy(cpu),
    });

    assert_all_parked(&report);
    let bytes = busy_lock::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 3);
    assert_message(&view, "console stuck");
    assert_owner(&view, 0, &busy_lock::panic_frame(0));
    assert_others_stopped_by_nmi(&view, 3, &[0]);
    assert_shootdown(&view, 2, 0);
    assert_notifiers(
        &view,
        &[
            (RecList::Hypervisor, "hv", Outcome::Ran),
            (RecList::Informational, "console", Outcome::SkippedLockBusy),
            (RecList::Informational, "log", Outcome::Ran),
            (RecList::PostDump, "last-words", Outcome::Ran),
        ],
    );
    common::assert_no_incident(&view);
    assert_stamps(&view, &common::FULL_SEQUENCE, &[]);
    assert_eq!(view.panic().final_action().known(), Some(FinalAction::Halt));
    assert_eq!(CONSOLE.busy_skips(), 1);
    assert!(CONSOLE.is_locked(), "the stopped CPU still holds it");
}

test_kernel!(rude_notifier, cpus = 2);

/// State a misbehaving notifier takes with the blocking `lock()`.
static SERIAL: NotifierLock<rude_notifier::Locks, u32> = NotifierLock::new(0);
/// Set once CPU 1 holds `SERIAL`.
static SERIAL_HELD: AtomicBool = AtomicBool::new(false);

/// Names the lock's static and waits for it: a notifier-discipline
/// violation, bounded only by the lock's panic rule.
fn rude(_: &PanicContext<'_>) -> BodyResult {
    *SERIAL.lock() += 1;
    BodyResult::Complete
}

/// A budget above the lock's 10 ms panic bound, so the outcome stays `Ran`.
static RUDE: Notifier =
    Notifier::new("rude", NotifierList::PostDump, 0, rude).with_budget(5_000_000_000);

/// A notifier that calls the blocking `lock()` on a lock a stopped CPU
/// holds: the lock's panic rule (the owner waits its bound, then breaks the
/// lock) ends the wait, the notifier runs, and the record's lock counters,
/// taken from the lock domain at the final action, show the break.
#[test]
fn a_blocking_lock_in_a_notifier_is_broken_and_counted() {
    register(rude_notifier::registry(), &[&RUDE]);
    let report = rude_notifier::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 == 1 {
            let held = SERIAL.lock();
            SERIAL_HELD.store(true, SeqCst);
            rude_notifier::busy(cpu);
            drop(held);
            return;
        }
        if common::wait_until(cpu, || SERIAL_HELD.load(SeqCst)) {
            rude_notifier::panic_now(format_args!("serial stuck"));
        }
    });

    assert_all_parked(&report);
    let bytes = rude_notifier::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 2);
    assert_owner(&view, 0, &rude_notifier::panic_frame(0));
    assert_others_stopped_by_nmi(&view, 2, &[0]);
    assert_notifiers(&view, &[(RecList::PostDump, "rude", Outcome::Ran)]);
    let panic = view.panic();
    assert_eq!(panic.panic_lock_breaks(), 1);
    assert_eq!(panic.qspinlock_fallbacks(), 0);
    assert_eq!((panic.escalations(), panic.reentries()), (0, 0));
    let took = view.notifier(0).unwrap().duration_ns();
    assert!(
        took >= 10_000_000,
        "{took} ns: did not wait the panic bound"
    );
    assert_eq!(SERIAL.panic_blocking_locks(), 1);
    assert_eq!(panic.final_action().known(), Some(FinalAction::Halt));
}
