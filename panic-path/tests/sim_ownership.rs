//! Panic ownership on the host simulation: two CPUs panicking at once, a
//! panic raised inside an NMI handler, and a second panicker that sits
//! inside an NMI handler (so the stop NMI cannot reach it). Each run's crash
//! record is read back as the offline tool would. And a panic on a thread
//! that is none of the machine's CPUs: a CPU without an index.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::{
    FULL_SEQUENCE, Hooks, Outcome, Plain, RUN_DEADLINE, RecList, assert_all_parked, assert_header,
    assert_message, assert_notifiers, assert_others_stopped_by_nmi, assert_owner, assert_shootdown,
    assert_stamps, assert_stopped, complete, parse, register,
};
use crashkit_nmi::{CpuIndex, NmiEvent, NmiHandler, NmiOutcome};
use crashkit_notifiers::{Notifier, NotifierList};
use crashkit_record::SlotFrame;
use crashkit_record::{CpuState, DumpResult, FinalAction, PanicPhase, RecordView, StopPath};
use crashkit_sim::EntryKind;

static PVPANIC: Notifier = Notifier::new("pvpanic", NotifierList::Hypervisor, 1, complete);
static LAST_WORDS: Notifier = Notifier::new("last-words", NotifierList::PostDump, 0, complete);

/// The sequence after the claim went as usual: notifiers, no dump, halt.
#[track_caller]
fn assert_completed(view: &RecordView<'_>) {
    assert_notifiers(
        view,
        &[
            (RecList::Hypervisor, "pvpanic", Outcome::Ran),
            (RecList::PostDump, "last-words", Outcome::Ran),
        ],
    );
    assert_stamps(view, &FULL_SEQUENCE, &[]);
    let panic = view.panic();
    assert_eq!(panic.dump_result().known(), Some(DumpResult::NotConfigured));
    assert_eq!(panic.phase().known(), Some(PanicPhase::Halted));
    assert_eq!(panic.final_action().known(), Some(FinalAction::Halt));
    assert_eq!((panic.escalations(), panic.reentries()), (0, 0));
}

/// Scenario 2 on one kernel: CPUs 0 and 1 are released together and both
/// panic; CPUs 2 and 3 run. Exactly one owns the panic; the other counts as
/// a second panicker and is stopped by the owner's shootdown, its registers
/// saved.
///
/// `hooks` holds the owner back, just before its shootdown, until the other
/// has claimed too (bounded): without it, a loaded host may deschedule the
/// loser until the stop NMI takes it before it ever panics, which is correct
/// but not this scenario. The loser then stops through the NMI or its own
/// poll, whichever reaches it first. With `block_nmis`, both racers panic
/// with NMIs blocked (as from an NMI handler), and no hook: the loser can
/// only stop through its poll, however the race goes.
macro_rules! simultaneous_panics {
    ($test:ident, $kernel:ident, hooks = $hooks:ident, block_nmis = $block:expr) => {
        test_kernel!($kernel, cpus = 4, hooks = $hooks);

        #[test]
        fn $test() {
            static ARRIVED: AtomicUsize = AtomicUsize::new(0);
            register($kernel::registry(), &[&PVPANIC, &LAST_WORDS]);
            let report = $kernel::machine().run(RUN_DEADLINE, |cpu| {
                let index = cpu.index().0;
                if index >= 2 {
                    return $kernel::busy(cpu);
                }
                if !$kernel::wait_ready(cpu, 2) {
                    return;
                }
                let _masked = $block.then(|| cpu.block_nmis());
                // The barrier: both arrive, then both go at once.
                ARRIVED.fetch_add(1, SeqCst);
                while ARRIVED.load(SeqCst) < 2 {
                    std::hint::spin_loop();
                }
                $kernel::panic_now(format_args!("cpu {index} panics"));
            });

            assert_all_parked(&report);
            let bytes = $kernel::snapshot();
            let view = parse(&bytes);
            assert_header(&view, 4);
            let owner = view.panic().owner_cpu().expect("an owner") as usize;
            assert!(owner < 2, "owner {owner}");
            let loser = 1 - owner;
            assert_owner(&view, owner, &$kernel::panic_frame(owner));
            assert_message(&view, &format!("cpu {owner} panics"));
            assert_eq!(view.panic().second_panickers(), 1);
            let slot = view.cpu(loser).unwrap();
            match slot.stop_path().known() {
                // Interrupted by the stop NMI in its wait loop.
                Some(StopPath::Nmi) if !$block => assert_stopped(&view, loser, StopPath::Nmi, 1),
                // Or saw the shootdown issued first and stopped itself (no
                // NMI context entered: depth 0), with the registers it
                // panicked with.
                _ => {
                    assert_stopped(&view, loser, StopPath::Poll, 0);
                    assert_eq!(slot.frame(), Some($kernel::panic_frame(loser)));
                }
            }
            assert_others_stopped_by_nmi(&view, 4, &[0, 1]);
            assert_shootdown(&view, 3, 0);
            assert_completed(&view);
        }
    };
}

/// Holds the owner's shootdown until the other racer counted itself.
macro_rules! wait_for_the_loser {
    ($hooks:ident, $kernel:ident) => {
        struct $hooks;

        impl Hooks for $hooks {
            fn before_shootdown() {
                let counted = common::wait_bounded(Duration::from_secs(5), || {
                    $kernel::record().panic().second_panickers() >= 1
                });
                assert!(counted, "the second racer never panicked");
            }
        }
    };
}

wait_for_the_loser!(RaceA, race_a);
simultaneous_panics!(
    two_cpus_panicking_at_once_have_one_owner,
    race_a,
    hooks = RaceA,
    block_nmis = false
);
wait_for_the_loser!(RaceB, race_b);
simultaneous_panics!(
    two_cpus_panicking_at_once_have_one_owner_again,
    race_b,
    hooks = RaceB,
    block_nmis = false
);
simultaneous_panics!(
    two_cpus_panicking_at_once_with_nmis_blocked_have_one_owner,
    race_blocked,
    hooks = Plain,
    block_nmis = true
);

test_kernel!(in_nmi, cpus = 3);

/// Scenario 3: CPU 2 takes an NMI nobody claims; the chain's policy panics
/// from inside the handler (`panic_in_exception` with the entry's frame).
/// The owner's slot holds the interrupted frame, not the handler's.
#[test]
fn a_panic_inside_an_nmi_handler_records_the_interrupted_frame() {
    register(in_nmi::registry(), &[&PVPANIC, &LAST_WORDS]);
    let report = in_nmi::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            return in_nmi::busy(cpu);
        }
        if in_nmi::wait_ready(cpu, 2) {
            // An unexplained NMI on CPU 2 (a watchdog's, say).
            cpu.platform()
                .raise(CpuIndex(2), EntryKind::Nmi)
                .expect("CPU 2 is running");
            in_nmi::busy(cpu);
        }
    });

    assert_all_parked(&report);
    let bytes = in_nmi::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 3);
    assert_message(&view, "unknown NMI on cpu2");
    let owner = view.cpu(2).unwrap();
    let frame = owner.frame().expect("the owner's registers");
    assert_eq!(owner.state().known(), Some(CpuState::PanicOwner));
    assert_eq!(view.panic().owner_cpu(), Some(2));
    // The frame the NMI entry got: the body's interrupted user-mode state.
    let rip = in_nmi::entry_rip(2);
    assert_ne!(rip, 0);
    assert_eq!(frame.rip, rip);
    assert_ne!(frame.rsp, 0);
    assert_eq!(
        frame.cs & 3,
        3,
        "cs {:#x}: not the interrupted user mode",
        frame.cs
    );
    assert_eq!(owner.nmis_sent(), 0);
    // CPU 2's only NMI was the one raised on it.
    assert_eq!(report.stats[2].sent(EntryKind::Nmi), 1, "{report}");
    assert_others_stopped_by_nmi(&view, 3, &[2]);
    assert_shootdown(&view, 2, 0);
    assert_eq!(view.panic().second_panickers(), 0);
    assert_completed(&view);
}

test_kernel!(nested_loser, cpus = 3);

/// Set by CPU 1's NMI handler once it runs.
static IN_HANDLER: AtomicBool = AtomicBool::new(false);

/// On CPU 1 only: wait, inside the NMI handler, until CPU 0 owns the panic,
/// then panic too. NMIs are blocked here, so the owner's stop NMI only
/// latches: the second panicker must stop itself through its poll.
fn panic_second_inside_nmi(event: &NmiEvent<'_>) -> NmiOutcome {
    if event.cpu.0 != 1 || IN_HANDLER.swap(true, SeqCst) {
        return NmiOutcome::NotMine;
    }
    while !nested_loser::PANIC.in_progress() {
        std::thread::yield_now();
    }
    crashkit_panic_path::panic_in_exception::<nested_loser::K>(
        format_args!("second, in NMI"),
        event.frame,
    )
}

static SECOND_IN_NMI: NmiHandler = NmiHandler::new("second-in-nmi", panic_second_inside_nmi);

/// A CPU that panics second from inside an NMI handler cannot take the stop
/// NMI: its wait loop polls the shootdown and it stops there (path `Poll`,
/// at the depth of the NMI it is in), counted as a second panicker.
#[test]
fn a_second_panicker_inside_an_nmi_handler_stops_through_its_poll() {
    register(nested_loser::registry(), &[&PVPANIC, &LAST_WORDS]);
    nested_loser::chain().register(&SECOND_IN_NMI).unwrap();
    let report = nested_loser::machine().run(RUN_DEADLINE, |cpu| match cpu.index().0 {
        0 => {
            if !nested_loser::wait_ready(cpu, 2) {
                return;
            }
            cpu.platform().raise(CpuIndex(1), EntryKind::Nmi).unwrap();
            if common::wait_until(cpu, || IN_HANDLER.load(SeqCst)) {
                nested_loser::panic_now(format_args!("first"));
            }
        }
        _ => nested_loser::busy(cpu),
    });

    assert_all_parked(&report);
    let bytes = nested_loser::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 3);
    assert_owner(&view, 0, &nested_loser::panic_frame(0));
    assert_message(&view, "first");
    assert_eq!(view.panic().second_panickers(), 1);
    assert_stopped(&view, 1, StopPath::Poll, 1);
    // With the frame it panicked with: the one its NMI entry got.
    let loser = view.cpu(1).unwrap();
    assert_eq!(
        loser.frame().map(|frame| frame.rip),
        Some(nested_loser::entry_rip(1))
    );
    // It was sent the stop NMI (latched, never delivered).
    assert!(loser.nmis_sent() >= 1);
    assert_eq!(report.stats[1].delivered(EntryKind::Nmi), 1, "{report}");
    assert_stopped(&view, 2, StopPath::Nmi, 1);
    assert_shootdown(&view, 2, 0);
    assert_completed(&view);
}

test_kernel!(no_index, cpus = 3, hooks = Plain, final_action = reboot);

/// The owner was spawned by CPU 0 and is on its way.
static UNNAMED_STARTED: AtomicBool = AtomicBool::new(false);

/// A panic on a CPU without an index: a thread that is not one of the
/// machine's CPUs (as on x86_64 a CPU the kernel started but never brought
/// online), so the platform says `CpuIndex::UNKNOWN`. It owns the panic, the
/// record says so (`owner_unregistered`, no owner index, no slot of its
/// own), its message is recorded, and its shootdown stops every CPU of the
/// machine, the one that started it included; the notifiers and the final
/// action run on it.
#[test]
fn a_panic_on_a_cpu_without_an_index_owns_and_stops_every_cpu() {
    register(no_index::registry(), &[&PVPANIC, &LAST_WORDS]);
    let report = no_index::machine().run(RUN_DEADLINE, |cpu| {
        if cpu.index().0 != 0 {
            return no_index::busy(cpu);
        }
        if no_index::wait_ready(cpu, 2) {
            UNNAMED_STARTED.store(true, SeqCst);
            // Never joined: it ends in the final action, asleep for good.
            std::thread::spawn(|| {
                assert_eq!(crashkit_sim::current_cpu(), None);
                no_index::panic_now(format_args!("bring-up of an AP failed"))
            });
            no_index::busy(cpu);
        }
    });
    assert!(UNNAMED_STARTED.load(SeqCst), "{report}");
    // The run ends once every CPU parked; the owner's notifiers and final
    // action may still be under way.
    assert!(
        common::wait_bounded(RUN_DEADLINE, || no_index::reboots() == 1),
        "the owner never reached its final action"
    );

    assert_all_parked(&report);
    let bytes = no_index::snapshot();
    let view = parse(&bytes);
    assert_header(&view, 3);
    assert_message(&view, "bring-up of an AP failed");
    let panic = view.panic();
    assert!(panic.owner_unregistered());
    assert_eq!(panic.owner_cpu(), None);
    assert_eq!(no_index::PANIC.owner(), Some(CpuIndex::UNKNOWN));
    // No slot is the owner's: every CPU of the machine was a target.
    assert!(
        view.cpus()
            .all(|slot| slot.state().known() != Some(CpuState::PanicOwner))
    );
    assert_others_stopped_by_nmi(&view, 3, &[]);
    assert_shootdown(&view, 3, 0);
    assert_notifiers(
        &view,
        &[
            (RecList::Hypervisor, "pvpanic", Outcome::Ran),
            (RecList::PostDump, "last-words", Outcome::Ran),
        ],
    );
    assert_stamps(&view, &FULL_SEQUENCE, &[]);
    assert_eq!(panic.final_action().known(), Some(FinalAction::Reboot));
    assert_eq!((panic.escalations(), panic.reentries()), (0, 0));
    assert_eq!(panic.second_panickers(), 0);
}
