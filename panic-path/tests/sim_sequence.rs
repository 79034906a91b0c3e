//! The panic sequence on the host simulation, without incidents: one CPU
//! panics while the others run, and the crash record is read back as the
//! offline tool would (snapshot, parse, field by field).
//!
//! Scenarios: a plain panic on 4 CPUs with notifiers in every list (the
//! order hypervisor, pre-dump, dump hand-over, informational, post-dump);
//! the same on 1 and on 8 CPUs; `informational_before_dump`; a reboot final
//! action.

mod common;

use common::{
    FULL_SEQUENCE, Hooks, Outcome, RUN_DEADLINE, RecList, assert_all_parked, assert_header,
    assert_message, assert_no_incident, assert_notifiers, assert_others_stopped_by_nmi,
    assert_owner, assert_shootdown, assert_stamps, complete, parse, register,
};
use crashkit_notifiers::{Notifier, NotifierList};
use crashkit_panic_path::PanicConfig;
use crashkit_record::{DumpResult, FinalAction, PanicPhase, PhaseStamp, RecordView};

static PVPANIC: Notifier = Notifier::new("pvpanic", NotifierList::Hypervisor, 1, complete);
static QUIESCE: Notifier = Notifier::new("quiesce-dma", NotifierList::PreDump, 0, complete);
static WATCHDOG: Notifier = Notifier::new("watchdog-off", NotifierList::PreDump, 3, complete);
static PRINT_LOG: Notifier = Notifier::new("print-log", NotifierList::Informational, 0, complete);
static PRINT_REGS: Notifier = Notifier::new("print-regs", NotifierList::Informational, 5, complete);
static LAST_WORDS: Notifier = Notifier::new("last-words", NotifierList::PostDump, 0, complete);

/// Every notifier, registered out of run order (the registry orders them).
const EVERY_LIST: [&Notifier; 6] = [
    &LAST_WORDS,
    &PRINT_LOG,
    &QUIESCE,
    &PVPANIC,
    &PRINT_REGS,
    &WATCHDOG,
];

/// The outcomes of [`EVERY_LIST`] with the default configuration.
const DEFAULT_ORDER: [(RecList, &str, Outcome); 6] = [
    (RecList::Hypervisor, "pvpanic", Outcome::Ran),
    (RecList::PreDump, "watchdog-off", Outcome::Ran),
    (RecList::PreDump, "quiesce-dma", Outcome::Ran),
    (RecList::Informational, "print-regs", Outcome::Ran),
    (RecList::Informational, "print-log", Outcome::Ran),
    (RecList::PostDump, "last-words", Outcome::Ran),
];

/// What every plain panic leaves, whatever the machine: the owner and the
/// message, every other CPU stopped by the NMI, the shootdown tally, no
/// incident, no dump configured.
#[track_caller]
fn assert_plain(view: &RecordView<'_>, cpus: usize, owner: usize, message: &str) {
    assert_header(view, cpus);
    assert_message(view, message);
    assert_others_stopped_by_nmi(view, cpus, &[owner]);
    let others = u32::try_from(cpus - 1).unwrap();
    assert_shootdown(view, others, 0);
    assert_no_incident(view);
    let panic = view.panic();
    assert_eq!(panic.dump_result().known(), Some(DumpResult::NotConfigured));
    assert_eq!(panic.dump_detail(), 0);
    // The shootdown returned before its deadline (everyone answered).
    let shootdown =
        panic.stamp_ns(PhaseStamp::ShootdownEnd) - panic.stamp_ns(PhaseStamp::ShootdownStart);
    assert!(shootdown < common::SHOOTDOWN_DEADLINE_NS, "{shootdown} ns");
}

test_kernel!(four, cpus = 4);

/// Scenario 1: CPU 1 panics while CPUs 0, 2 and 3 run; notifiers in every
/// list run in the default order; the final action is a halt.
#[test]
fn a_plain_panic_runs_the_sequence_in_order() {
    register(four::registry(), &EVERY_LIST);
    let report = four::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 1 {
            return four::busy(cpu);
        }
        if four::wait_ready(cpu, 3) {
            four::panic_now(format_args!("plain panic on cpu {}", 1));
        }
    });

    assert_all_parked(&report);
    let bytes = four::snapshot();
    let view = parse(&bytes);
    assert_plain(&view, 4, 1, "plain panic on cpu 1");
    assert_owner(&view, 1, &four::panic_frame(1));
    assert_notifiers(&view, &DEFAULT_ORDER);
    assert_stamps(&view, &FULL_SEQUENCE, &[]);
    let panic = view.panic();
    assert_eq!(panic.phase().known(), Some(PanicPhase::Halted));
    assert_eq!(panic.final_action().known(), Some(FinalAction::Halt));
    // The owner stopped nobody late: every stop is before the shootdown's
    // end.
    let end = panic.stamp_ns(PhaseStamp::ShootdownEnd);
    for index in [0, 2, 3] {
        let slot = view.cpu(index).unwrap();
        assert!(slot.stopped_ns() <= end, "cpu{index}: {slot:?}");
        assert!(
            slot.first_nmi_ns() >= panic.stamp_ns(PhaseStamp::ShootdownStart),
            "cpu{index}: {slot:?}"
        );
    }
    assert_eq!(four::reboots(), 0);
}

test_kernel!(single, cpus = 1);

/// Scenario 9a: a machine of one CPU: nobody to stop, the rest as usual.
#[test]
fn a_panic_on_one_cpu() {
    register(single::registry(), &[&PVPANIC, &LAST_WORDS]);
    let report = single::machine().run(RUN_DEADLINE, |_| {
        single::panic_now(format_args!("alone"));
    });

    assert_all_parked(&report);
    let bytes = single::snapshot();
    let view = parse(&bytes);
    assert_plain(&view, 1, 0, "alone");
    assert_owner(&view, 0, &single::panic_frame(0));
    assert_eq!(view.panic().shootdown().nmis_sent, 0);
    assert_notifiers(
        &view,
        &[
            (RecList::Hypervisor, "pvpanic", Outcome::Ran),
            (RecList::PostDump, "last-words", Outcome::Ran),
        ],
    );
    assert_stamps(&view, &FULL_SEQUENCE, &[]);
    assert_eq!(view.panic().phase().known(), Some(PanicPhase::Halted));
    assert_eq!(view.panic().final_action().known(), Some(FinalAction::Halt));
    assert_eq!(report.stats[0].sent(crashkit_sim::EntryKind::Nmi), 0);
}

test_kernel!(eight, cpus = 8);

/// Scenario 9b: eight CPUs, the last one panics, no notifier registered.
#[test]
fn a_panic_on_eight_cpus() {
    let report = eight::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 7 {
            return eight::busy(cpu);
        }
        if eight::wait_ready(cpu, 7) {
            eight::panic_now(format_args!("cpu {} of {}", 7, 8));
        }
    });

    assert_all_parked(&report);
    let bytes = eight::snapshot();
    let view = parse(&bytes);
    assert_plain(&view, 8, 7, "cpu 7 of 8");
    assert_owner(&view, 7, &eight::panic_frame(7));
    assert_notifiers(&view, &[]);
    assert_eq!(view.panic().phase().known(), Some(PanicPhase::Halted));
    assert_eq!(view.panic().final_action().known(), Some(FinalAction::Halt));
    // The lists ran (empty): their stamps are there all the same.
    assert_stamps(&view, &FULL_SEQUENCE, &[]);
    assert_eq!(report.stats[7].sent(crashkit_sim::EntryKind::Nmi), 0);
}

/// `informational_before_dump` (Linux's `crash_kexec_post_notifiers`).
struct InformationalFirst;

impl Hooks for InformationalFirst {
    const CONFIG: PanicConfig = PanicConfig {
        informational_before_dump: true,
        ..common::FAST
    };
}

test_kernel!(informational_first, cpus = 2, hooks = InformationalFirst);

/// The informational list moves before the dump hand-over (after the
/// hypervisor list, before the pre-dump one, which prepares the hand-over
/// itself); the post-dump list stays after it.
#[test]
fn informational_before_dump_moves_the_informational_list() {
    register(informational_first::registry(), &EVERY_LIST);
    let report = informational_first::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            return informational_first::busy(cpu);
        }
        if informational_first::wait_ready(cpu, 1) {
            informational_first::panic_now(format_args!("post notifiers"));
        }
    });

    assert_all_parked(&report);
    let bytes = informational_first::snapshot();
    let view = parse(&bytes);
    assert_plain(&view, 2, 0, "post notifiers");
    assert_owner(&view, 0, &informational_first::panic_frame(0));
    assert_notifiers(
        &view,
        &[
            (RecList::Hypervisor, "pvpanic", Outcome::Ran),
            (RecList::Informational, "print-regs", Outcome::Ran),
            (RecList::Informational, "print-log", Outcome::Ran),
            (RecList::PreDump, "watchdog-off", Outcome::Ran),
            (RecList::PreDump, "quiesce-dma", Outcome::Ran),
            (RecList::PostDump, "last-words", Outcome::Ran),
        ],
    );
    assert_stamps(&view, &FULL_SEQUENCE, &[]);
    assert_eq!(view.panic().final_action().known(), Some(FinalAction::Halt));
}

// A reboot at the end.
test_kernel!(
    rebooting,
    cpus = 2,
    hooks = common::Plain,
    final_action = reboot
);

/// `FinalChoice::Reboot` calls `Kernel::reboot` once, after everything else;
/// the record says `Reboot`, in the `FinalAction` phase (the halt's
/// `Halted` phase is not reached).
#[test]
fn a_reboot_final_action_calls_the_kernels_reboot() {
    register(rebooting::registry(), &[&LAST_WORDS]);
    let report = rebooting::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 1 {
            return rebooting::busy(cpu);
        }
        if rebooting::wait_ready(cpu, 1) {
            rebooting::panic_now(format_args!("reboot me"));
        }
    });

    // The test kernel's reboot parks the CPU after counting the call.
    assert_all_parked(&report);
    assert_eq!(rebooting::reboots(), 1);
    let bytes = rebooting::snapshot();
    let view = parse(&bytes);
    assert_plain(&view, 2, 1, "reboot me");
    assert_owner(&view, 1, &rebooting::panic_frame(1));
    assert_notifiers(&view, &[(RecList::PostDump, "last-words", Outcome::Ran)]);
    assert_stamps(&view, &FULL_SEQUENCE, &[]);
    assert_eq!(view.panic().phase().known(), Some(PanicPhase::FinalAction));
    assert_eq!(
        view.panic().final_action().known(),
        Some(FinalAction::Reboot)
    );
}
