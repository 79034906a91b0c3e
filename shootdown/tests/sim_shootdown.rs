//! The shootdown on the host simulation: CPUs that take the NMI.
//!
//! Each test runs a machine whose CPUs (threads) spin in a busy body while
//! one of them, the owner, stops the others; the NMI is a real signal that
//! interrupts the body wherever it is. Checked each time: the summary, every
//! slot (state, stop path, NMIs sent, plausible registers), how each CPU
//! ended, and that the owner was never sent an NMI.

mod common;

use std::sync::OnceLock;
use std::sync::atomic::Ordering::SeqCst;

use common::{
    RUN_DEADLINE, Rig, assert_owner_finished_others_parked, assert_owner_never_sent_an_nmi,
    assert_stopped, cpu,
};
use crashkit_nmi::{
    ContextKind, CpuContexts, HandlerChain, NmiHandler, NmiOutcome, Platform, UnknownNmiPolicy,
};
use crashkit_record::{CpuSlot, CpuState, StopPath};
use crashkit_shootdown::{Shootdown, ShootdownConfig, ShootdownState, ShootdownStatus};
use crashkit_sim::{CpuOutcome, EntryKind, Machine, SimPlatform};

/// `cpus` CPUs, CPU `owner` stops the others (which are busy) with the
/// default configuration.
fn plain_shootdown(cpus: usize, owner: usize) {
    let rig = Rig::new(cpus);
    let machine = rig.machine(cpus);
    let report = machine.run(RUN_DEADLINE, move |cpu| {
        if cpu.index().as_usize() != owner {
            return rig.busy(cpu);
        }
        if rig.wait_ready(cpu, cpus - 1) {
            rig.keep(
                rig.shootdown
                    .stop_other_cpus(cpu.platform(), &ShootdownConfig::DEFAULT),
            );
        }
    });

    assert_owner_finished_others_parked(&report, owner);
    assert_owner_never_sent_an_nmi(&report, owner);
    let summary = rig.summary(&report);
    let others = u32::try_from(cpus - 1).unwrap();
    assert_eq!(summary.status, ShootdownStatus::AllStopped, "{summary:?}");
    assert_eq!(summary.owner, common::cpu(owner));
    assert!(summary.owner_known);
    assert_eq!(
        (
            summary.totals.stopped,
            summary.totals.unresponsive,
            summary.totals.absent
        ),
        (others, 0, 0)
    );
    assert_eq!(summary.stopped_by_poll, 0);
    assert_eq!(
        (summary.totals.send_errors, summary.broadcast_error),
        (0, None)
    );
    assert!(summary.totals.nmis_sent >= others, "{summary:?}");
    assert!(summary.elapsed_ns < ShootdownConfig::DEFAULT.deadline_ns);
    assert_eq!(
        rig.shootdown.state(),
        ShootdownState::Finished {
            owner: common::cpu(owner)
        }
    );
    for index in (0..cpus).filter(|&index| index != owner) {
        let slot = rig.slot(index);
        // The body runs outside any NMI context: depth 1 is the stop NMI.
        assert_stopped(slot, StopPath::Nmi, 1);
        assert!(slot.nmis_sent() >= 1, "{slot:?}");
        assert!(slot.first_nmi_ns() > 0 && slot.first_nmi_ns() <= slot.stopped_ns());
    }
    // The shootdown leaves the owner's own slot to the panic path.
    assert_eq!(rig.slot(owner).state(), Some(CpuState::Running));
    assert_eq!(rig.slot(owner).nmis_sent(), 0);
    assert_eq!(rig.handled.load(SeqCst), 0, "no NMI reached the owner");
}

#[test]
fn one_cpu_has_no_one_to_stop() {
    plain_shootdown(1, 0);
}

#[test]
fn two_cpus() {
    plain_shootdown(2, 0);
    plain_shootdown(2, 1);
}

#[test]
fn eight_cpus() {
    plain_shootdown(8, 5);
}

/// The integrator's wiring from the crate docs: statics only, the crash
/// handler in the chain's emergency slot (installed before the shootdown,
/// answering `NotMine` while idle so a chain handler still gets the NMIs
/// sent before), the NMI entry entering its context and dispatching.
#[test]
fn through_the_emergency_slot_of_the_handler_chain() {
    const CPUS: usize = 8;
    static PLATFORM: OnceLock<SimPlatform> = OnceLock::new();
    static CONTEXTS: CpuContexts<CPUS> = CpuContexts::new();
    static CHAIN: HandlerChain<4, CPUS> = HandlerChain::new(UnknownNmiPolicy::Count);
    static SLOTS: [CpuSlot; CPUS] = [const { CpuSlot::new() }; CPUS];
    static SHOOTDOWN: Shootdown = Shootdown::new(&SLOTS);
    static CRASH_NMI: NmiHandler = NmiHandler::new("crash", |event| {
        let Some(platform) = PLATFORM.get() else {
            return NmiOutcome::NotMine;
        };
        let depth = CONTEXTS
            .get(event.cpu)
            .map_or(1, |tracker| u32::from(tracker.depth()));
        SHOOTDOWN.handle_nmi(platform, event, depth)
    });
    static EARLY: NmiHandler = NmiHandler::new("early", |_| NmiOutcome::Handled);

    let machine = Machine::new(CPUS, |cpu, kind, frame| {
        if kind == EntryKind::Nmi {
            let _context = CONTEXTS.enter_current(cpu.platform(), ContextKind::Nmi);
            CHAIN.dispatch(cpu.platform(), frame);
        }
    });
    PLATFORM.set(machine.platform().clone()).unwrap();
    CHAIN.register(&EARLY).unwrap();
    assert!(CHAIN.set_emergency(Some(&CRASH_NMI)).is_none());
    static READY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static SUMMARY: OnceLock<crashkit_shootdown::ShootdownSummary> = OnceLock::new();

    let report = machine.run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            READY.fetch_add(1, SeqCst);
            while !cpu.stop_requested() {
                std::thread::yield_now();
            }
            return;
        }
        if !common::wait_until(cpu, || READY.load(SeqCst) == CPUS - 1) {
            return;
        }
        // Before the shootdown, an NMI is the chain's business.
        cpu.platform().send_nmi(common::cpu(1)).unwrap();
        if !common::wait_until(cpu, || EARLY.stats().calls() == 1) {
            return;
        }
        let _ = SUMMARY.set(SHOOTDOWN.stop_other_cpus(cpu.platform(), &ShootdownConfig::DEFAULT));
    });

    assert_owner_finished_others_parked(&report, 0);
    assert_owner_never_sent_an_nmi(&report, 0);
    let summary = SUMMARY.get().expect("a summary");
    assert!(summary.all_stopped(), "{summary:?}");
    assert_eq!(summary.totals.stopped, 7);
    for slot in &SLOTS[1..] {
        assert_stopped(slot, StopPath::Nmi, 1);
    }
    assert_eq!(EARLY.stats().calls(), 1, "the chain stopped running");
    // A handler's statistics are counted when it returns: only the early
    // NMI's `NotMine` did; the seven stopped CPUs never returned.
    assert_eq!(CRASH_NMI.stats().calls(), 1, "{:?}", CRASH_NMI.stats());
    assert_eq!(CRASH_NMI.stats().claimed(), 0);
}

/// A second shootdown, from the owner or from a thread that is no CPU, is
/// a no-op that names the first owner; the first one's slots are intact.
#[test]
fn a_second_shootdown_is_a_no_op() {
    let rig = Rig::new(3);
    let machine = rig.machine(3);
    let platform = machine.platform().clone();
    static SECOND: OnceLock<crashkit_shootdown::ShootdownSummary> = OnceLock::new();
    let report = machine.run(RUN_DEADLINE, move |cpu| {
        if cpu.index().0 != 2 {
            return rig.busy(cpu);
        }
        if rig.wait_ready(cpu, 2) {
            let config = ShootdownConfig::DEFAULT;
            rig.keep(rig.shootdown.stop_other_cpus(cpu.platform(), &config));
            let _ = SECOND.set(rig.shootdown.stop_other_cpus(cpu.platform(), &config));
        }
    });
    assert_owner_finished_others_parked(&report, 2);
    let first = rig.summary(&report);
    assert!(first.all_stopped(), "{first:?}");
    let second = SECOND.get().expect("a second summary");
    assert_eq!(
        second.status,
        ShootdownStatus::AlreadyIssued { owner: cpu(2) }
    );
    assert_eq!(
        (
            second.totals.stopped,
            second.totals.nmis_sent,
            second.wait_iterations
        ),
        (0, 0, 0)
    );

    // From the test thread, which the platform does not know.
    let third = rig
        .shootdown
        .stop_other_cpus(&platform, &ShootdownConfig::DEFAULT);
    assert_eq!(
        third.status,
        ShootdownStatus::AlreadyIssued { owner: cpu(2) }
    );
    assert_eq!(third.owner, crashkit_nmi::CpuIndex::UNKNOWN);

    // The later calls sent nothing: the slots hold what the first tallied.
    let nmis: u32 = (0..2).map(|index| rig.slot(index).nmis_sent()).sum();
    assert_eq!(nmis, first.totals.nmis_sent);
    for index in 0..2 {
        assert_stopped(rig.slot(index), StopPath::Nmi, 1);
    }
    assert_eq!(
        rig.shootdown.state(),
        ShootdownState::Finished { owner: cpu(2) }
    );
}

/// NMIs that reach the owner: before the shootdown they are not the
/// shootdown's (`NotMine`); during and after it they are swallowed
/// (`Handled`) and the owner carries on.
#[test]
fn an_nmi_on_the_owner_is_swallowed() {
    let rig = Rig::new(2);
    let machine = rig.machine(2);
    static SEEN_DURING: OnceLock<(u32, u32)> = OnceLock::new();
    let report = machine.run(RUN_DEADLINE, move |cpu| {
        if cpu.index().0 != 0 {
            return rig.busy(cpu);
        }
        if !rig.wait_ready(cpu, 1) {
            return;
        }
        let me = cpu.index();
        cpu.platform().send_nmi(me).unwrap();
        if !common::wait_until(cpu, || rig.not_mine.load(SeqCst) == 1) {
            return;
        }
        rig.keep(
            rig.shootdown
                .stop_other_cpus(cpu.platform(), &ShootdownConfig::DEFAULT),
        );
        // A stray NMI after the shootdown (a watchdog, say).
        cpu.platform().send_nmi(me).unwrap();
        if common::wait_until(cpu, || rig.handled.load(SeqCst) == 1) {
            let _ = SEEN_DURING.set((rig.not_mine.load(SeqCst), rig.handled.load(SeqCst)));
        }
    });
    assert_owner_finished_others_parked(&report, 0);
    assert_eq!(SEEN_DURING.get(), Some(&(1, 1)), "{report}");
    assert!(rig.summary(&report).all_stopped());
    assert_eq!(rig.slot(0).state(), Some(CpuState::Running));
    assert_eq!(report.outcomes[0], CpuOutcome::Finished);
    assert_stopped(rig.slot(1), StopPath::Nmi, 1);
}
