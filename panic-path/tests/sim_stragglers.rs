//! The panic path with CPUs that do not simply take the stop NMI: one has
//! NMIs blocked and never polls, one spins inside an NMI handler on a lock
//! the panicking CPU holds, one loses its first NMI. The path goes on in
//! every case, and the crash record says what happened to each CPU.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use common::{
    FULL_SEQUENCE, Outcome, RESEND_NS, RUN_DEADLINE, RecList, SHOOTDOWN_DEADLINE_NS, SLACK_NS,
    assert_all_parked, assert_header, assert_message, assert_no_incident, assert_notifiers,
    assert_outcomes, assert_owner, assert_shootdown, assert_stamps, assert_stopped, complete,
    parse, register,
};
use crashkit_nmi::lock::QSpinLock;
use crashkit_nmi::{CpuIndex, NmiEvent, NmiHandler, NmiOutcome};
use crashkit_notifiers::{Notifier, NotifierList};
use crashkit_record::SlotFrame;
use crashkit_record::{CpuState, FinalAction, PanicPhase, PhaseStamp, RecordView, StopPath};
use crashkit_sim::{CpuOutcome, EntryKind};

static PVPANIC: Notifier = Notifier::new("pvpanic", NotifierList::Hypervisor, 1, complete);
static LAST_WORDS: Notifier = Notifier::new("last-words", NotifierList::PostDump, 0, complete);

/// The sequence went on after the shootdown: notifiers ran, halt.
#[track_caller]
fn assert_went_on(view: &RecordView<'_>) {
    assert_notifiers(
        view,
        &[
            (RecList::Hypervisor, "pvpanic", Outcome::Ran),
            (RecList::PostDump, "last-words", Outcome::Ran),
        ],
    );
    assert_stamps(view, &FULL_SEQUENCE, &[]);
    assert_no_incident(view);
    assert_eq!(view.panic().phase().known(), Some(PanicPhase::Halted));
    assert_eq!(view.panic().final_action().known(), Some(FinalAction::Halt));
}

test_kernel!(blocked, cpus = 4);

/// Scenario 4: CPU 2 blocks NMIs and spins without polling. The shootdown
/// waits its deadline (resending), records CPU 2 `Unresponsive` without
/// registers, and the path goes on. The record's shootdown stamps show the
/// deadline respected: at least the deadline, less than the deadline plus
/// generous slack.
#[test]
fn a_cpu_with_nmis_blocked_that_never_polls_is_unresponsive_at_the_deadline() {
    register(blocked::registry(), &[&PVPANIC, &LAST_WORDS]);
    let machine = blocked::machine();
    let platform = machine.platform().clone();
    let report = machine.run(RUN_DEADLINE, move |cpu| match cpu.index().0 {
        0 => {
            if blocked::wait_ready(cpu, 3) {
                blocked::panic_now(format_args!("with a deaf cpu"));
            }
        }
        2 => {
            let masked = cpu.block_nmis();
            blocked::READY.fetch_add(1, SeqCst);
            // Until the owner has halted: after that, nothing looks at us.
            while !cpu.stop_requested() && !platform.is_parked(CpuIndex(0)) {
                std::hint::spin_loop();
                std::thread::yield_now();
            }
            // Leave with NMIs still blocked: unblocking would deliver the
            // latched stop NMI and stop this CPU late (the shootdown's own
            // tests cover that), which is not this scenario.
            std::mem::forget(masked);
        }
        _ => blocked::busy(cpu),
    });

    assert_outcomes(
        &report,
        &[
            CpuOutcome::Parked,
            CpuOutcome::Parked,
            CpuOutcome::Finished,
            CpuOutcome::Parked,
        ],
    );
    let bytes = blocked::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 4);
    assert_message(&view, "with a deaf cpu");
    assert_owner(&view, 0, &blocked::panic_frame(0));
    assert_stopped(&view, 1, StopPath::Nmi, 1);
    assert_stopped(&view, 3, StopPath::Nmi, 1);
    let deaf = view.cpu(2).unwrap();
    assert_eq!(deaf.state().known(), Some(CpuState::Unresponsive));
    assert_eq!(deaf.stop_path().known(), Some(StopPath::None));
    assert_eq!(deaf.frame(), None, "an unresponsive CPU has no registers");
    assert_eq!(deaf.stopped_ns(), 0);
    assert!(deaf.first_nmi_ns() > 0);
    // Sent again every interval while the owner waited.
    assert!(deaf.nmis_sent() >= 2, "{deaf:?}");
    assert_shootdown(&view, 2, 1);
    let totals = view.panic().shootdown();
    assert!(totals.nmis_resent >= 1, "{totals:?}");
    assert_eq!(totals.nmis_sent, 3 + totals.nmis_resent, "{totals:?}");

    let panic = view.panic();
    let start = panic.stamp_ns(PhaseStamp::ShootdownStart);
    let end = panic.stamp_ns(PhaseStamp::ShootdownEnd);
    let took = end - start;
    assert!(took >= SHOOTDOWN_DEADLINE_NS, "{took} ns");
    assert!(took < SHOOTDOWN_DEADLINE_NS + SLACK_NS, "{took} ns");
    assert!(deaf.first_nmi_ns() >= start && deaf.first_nmi_ns() <= end);
    assert_went_on(&view);
    // The CPU never took a stop NMI (it never unblocked them).
    assert_eq!(report.stats[2].delivered(EntryKind::Nmi), 0, "{report}");
    assert!(report.stats[2].sent(EntryKind::Nmi) >= 2, "{report}");
}

test_kernel!(spinning, cpus = 4);

/// The lock the panicking CPU holds when it panics.
static HELD_BY_OWNER: QSpinLock<spinning::Locks> = QSpinLock::new();
/// Set once CPU 1's NMI handler is about to wait for the lock.
static WAITING: AtomicBool = AtomicBool::new(false);

/// On CPU 1: wait for `HELD_BY_OWNER` inside the NMI handler, where NMIs
/// are blocked. Claims the NMI (it was raised for this).
fn lock_in_nmi(event: &NmiEvent<'_>) -> NmiOutcome {
    if event.cpu.0 != 1 || WAITING.swap(true, SeqCst) {
        return NmiOutcome::NotMine;
    }
    let _acquired = HELD_BY_OWNER.acquire();
    // The owner never releases it: CPU 1 stops inside `acquire`.
    NmiOutcome::Handled
}

static LOCK_IN_NMI: NmiHandler = NmiHandler::new("lock-in-nmi", lock_in_nmi);

/// Scenario 5: CPU 1 spins inside an NMI handler on a `QSpinLock` the
/// panicking CPU holds. The stop NMI only latches; the lock domain's `relax`
/// polls the shootdown, so CPU 1 stops there: `Poll`, at depth 1, with the
/// poll site's registers, and the shootdown never waits for its deadline.
#[test]
fn a_cpu_spinning_in_nmi_on_the_owners_lock_stops_through_the_poll() {
    register(spinning::registry(), &[&PVPANIC, &LAST_WORDS]);
    spinning::chain().register(&LOCK_IN_NMI).unwrap();
    let report = spinning::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            return spinning::busy(cpu);
        }
        if !spinning::wait_ready(cpu, 3) {
            return;
        }
        let _held = HELD_BY_OWNER.acquire();
        cpu.platform().raise(CpuIndex(1), EntryKind::Nmi).unwrap();
        if !common::wait_until(cpu, || WAITING.load(SeqCst)) {
            return;
        }
        // Let CPU 1 get into the lock's wait loop.
        std::thread::sleep(Duration::from_millis(20));
        spinning::panic_now(format_args!("holding the lock"));
    });

    assert_all_parked(&report);
    let bytes = spinning::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 4);
    assert_message(&view, "holding the lock");
    assert_owner(&view, 0, &spinning::panic_frame(0));
    assert_stopped(&view, 1, StopPath::Poll, 1);
    assert!(view.cpu(1).unwrap().nmis_sent() >= 1);
    assert_stopped(&view, 2, StopPath::Nmi, 1);
    assert_stopped(&view, 3, StopPath::Nmi, 1);
    assert_shootdown(&view, 3, 0);
    let panic = view.panic();
    let took =
        panic.stamp_ns(PhaseStamp::ShootdownEnd) - panic.stamp_ns(PhaseStamp::ShootdownStart);
    assert!(
        took < SHOOTDOWN_DEADLINE_NS,
        "{took} ns: waited for the deadline"
    );
    assert_went_on(&view);
    // CPU 1 took the raised NMI only: the stop NMI latched behind it.
    assert_eq!(report.stats[1].delivered(EntryKind::Nmi), 1, "{report}");
    assert!(HELD_BY_OWNER.is_locked());
}

test_kernel!(lossy, cpus = 4);

/// Scenario 6: CPU 3's first stop NMI is lost; the owner sends it again one
/// interval later and CPU 3 stops through the NMI like the others.
#[test]
fn a_lost_first_nmi_is_recovered_by_a_resend() {
    register(lossy::registry(), &[&PVPANIC, &LAST_WORDS]);
    let machine = lossy::machine();
    machine.platform().drop_next_nmis(CpuIndex(3), 1).unwrap();
    let report = machine.run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            return lossy::busy(cpu);
        }
        if lossy::wait_ready(cpu, 3) {
            lossy::panic_now(format_args!("lossy"));
        }
    });

    assert_all_parked(&report);
    let bytes = lossy::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 4);
    assert_message(&view, "lossy");
    assert_owner(&view, 0, &lossy::panic_frame(0));
    for index in 1..4 {
        assert_stopped(&view, index, StopPath::Nmi, 1);
    }
    assert_shootdown(&view, 3, 0);
    let totals = view.panic().shootdown();
    assert!(totals.nmis_resent >= 1, "{totals:?}");
    assert!(totals.nmis_sent >= 4, "{totals:?}");
    let recovered = view.cpu(3).unwrap();
    assert!(recovered.nmis_sent() >= 2, "{recovered:?}");
    assert!(
        recovered.stopped_ns() >= recovered.first_nmi_ns() + RESEND_NS,
        "{recovered:?}"
    );
    assert_eq!(report.stats[3].nmis_dropped, 1, "{report}");
    let panic = view.panic();
    let took =
        panic.stamp_ns(PhaseStamp::ShootdownEnd) - panic.stamp_ns(PhaseStamp::ShootdownStart);
    assert!(took >= RESEND_NS, "{took} ns: no resend interval passed");
    assert!(
        took < SHOOTDOWN_DEADLINE_NS,
        "{took} ns: waited for the deadline"
    );
    assert_went_on(&view);
}
