//! The handler chain under real (simulated) NMIs: signals that latch while a
//! handler runs, come back to back at the same instruction, and arrive on
//! the CPU that was targeted.
//!
//! Each test has its own chain and handlers (tests run in parallel).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use common::{Log, wait_until};

use crashkit_nmi::{
    CpuIndex, DispatchOutcome, HandlerChain, NmiEvent, NmiHandler, NmiOutcome, Platform,
    UnknownNmiPolicy,
};
use crashkit_sim::{CpuOutcome, EntryKind, Machine};

const DEADLINE: Duration = Duration::from_secs(20);

/// `DispatchOutcome` as a log code.
fn code(outcome: DispatchOutcome) -> u32 {
    match outcome {
        DispatchOutcome::Emergency => 1,
        DispatchOutcome::Swallowed => 2,
        DispatchOutcome::Unknown => 3,
        DispatchOutcome::Handled { claimed } => 10 + claimed,
    }
}

/// Two sources raise an NMI at once; the second NMI latches while the first
/// is handled (both handlers claim the first), so the second is unclaimed
/// and back to back: swallowed. A later NMI from another CPU, interrupting a
/// different instruction, is a genuine unknown NMI and is reported.
#[test]
fn latched_duplicate_is_swallowed_and_a_stray_nmi_is_reported() {
    static SOURCE_A: AtomicBool = AtomicBool::new(false);
    static SOURCE_B: AtomicBool = AtomicBool::new(false);
    static REPORTED: AtomicU32 = AtomicU32::new(0);
    static OUTCOMES: Log<4> = Log::new();
    static SPINNING: AtomicBool = AtomicBool::new(false);
    fn source_a(_: &NmiEvent<'_>) -> NmiOutcome {
        claim(&SOURCE_A)
    }
    fn source_b(_: &NmiEvent<'_>) -> NmiOutcome {
        claim(&SOURCE_B)
    }
    fn claim(source: &AtomicBool) -> NmiOutcome {
        if source.swap(false, SeqCst) {
            NmiOutcome::Handled
        } else {
            NmiOutcome::NotMine
        }
    }
    fn report(event: &NmiEvent<'_>) {
        assert!(!event.back_to_back);
        REPORTED.fetch_add(1, SeqCst);
    }
    static A: NmiHandler = NmiHandler::new("source-a", source_a);
    static B: NmiHandler = NmiHandler::new("source-b", source_b);
    static CHAIN: HandlerChain<4, 2> = HandlerChain::new(UnknownNmiPolicy::Report(report));
    CHAIN.register(&A).unwrap();
    CHAIN.register(&B).unwrap();

    let machine = Machine::new(2, |cpu, _, frame| {
        let first = OUTCOMES.len() == 0;
        if first {
            // Source B's own NMI: raised while the first is being handled,
            // it latches and arrives right after this handler returns.
            cpu.platform().send_nmi(cpu.index()).unwrap();
        }
        let outcome = CHAIN.dispatch(cpu.platform(), frame);
        OUTCOMES.push(code(outcome));
    });
    let report = machine.run(DEADLINE, |cpu| match cpu.index().0 {
        0 => {
            SOURCE_A.store(true, SeqCst);
            SOURCE_B.store(true, SeqCst);
            cpu.platform().send_nmi(cpu.index()).unwrap();
            SPINNING.store(true, SeqCst);
            assert!(wait_until(cpu, || OUTCOMES.len() == 3));
        }
        _ => {
            assert!(wait_until(cpu, || SPINNING.load(SeqCst)));
            cpu.platform().send_nmi(CpuIndex(0)).unwrap();
        }
    });
    report.assert_all_finished();
    let expected = [
        DispatchOutcome::Handled { claimed: 2 },
        DispatchOutcome::Swallowed,
        DispatchOutcome::Unknown,
    ];
    assert_eq!(OUTCOMES.codes(), expected.map(code));
    let stats = CHAIN.cpu_stats(CpuIndex(0)).unwrap();
    assert_eq!((stats.received, stats.handled), (3, 1));
    assert_eq!((stats.swallowed, stats.unknown), (1, 1));
    assert_eq!(REPORTED.load(SeqCst), 1);
}

/// The emergency handler is installed from inside an NMI handler (as the
/// panic path does when a CPU panics in NMI context) and from then on runs
/// first; claiming, it keeps the chain from running.
#[test]
fn emergency_handler_installed_from_nmi_context_runs_first() {
    const REGULAR_RAN: u32 = 1;
    const EMERGENCY_RAN: u32 = 2;
    static ORDER: Log<8> = Log::new();
    static NMIS: AtomicU32 = AtomicU32::new(0);
    static DONE: AtomicBool = AtomicBool::new(false);
    fn regular(_: &NmiEvent<'_>) -> NmiOutcome {
        ORDER.push(REGULAR_RAN);
        NmiOutcome::NotMine
    }
    fn emergency(event: &NmiEvent<'_>) -> NmiOutcome {
        ORDER.push(EMERGENCY_RAN);
        // Claims NMIs aimed at CPU 1 only, so both paths are exercised.
        if event.cpu == CpuIndex(1) {
            NmiOutcome::Handled
        } else {
            NmiOutcome::NotMine
        }
    }
    static REGULAR: NmiHandler = NmiHandler::new("regular", regular);
    static EMERGENCY: NmiHandler = NmiHandler::new("emergency", emergency);
    static CHAIN: HandlerChain<2, 2> = HandlerChain::new(UnknownNmiPolicy::Count);
    CHAIN.register(&REGULAR).unwrap();

    let machine = Machine::new(2, |cpu, _, frame| {
        let outcome = CHAIN.dispatch(cpu.platform(), frame);
        if NMIS.fetch_add(1, SeqCst) == 0 {
            assert_eq!(outcome, DispatchOutcome::Unknown);
            assert!(CHAIN.set_emergency(Some(&EMERGENCY)).is_none());
        }
    });
    let report = machine.run(DEADLINE, |cpu| {
        if cpu.index().0 == 0 {
            let others = CpuIndex(1);
            for expected in 1..=3 {
                cpu.platform().send_nmi(others).unwrap();
                assert!(wait_until(cpu, || NMIS.load(SeqCst) == expected));
            }
            cpu.platform().send_nmi(cpu.index()).unwrap();
            assert_eq!(NMIS.load(SeqCst), 4);
            DONE.store(true, SeqCst);
        } else {
            // Stay online (a CPU whose body returned takes no NMIs).
            assert!(wait_until(cpu, || DONE.load(SeqCst)));
        }
    });
    report.assert_all_finished();
    assert_eq!(
        ORDER.codes(),
        [
            REGULAR_RAN,
            EMERGENCY_RAN,
            EMERGENCY_RAN,
            EMERGENCY_RAN,
            REGULAR_RAN
        ],
    );
    assert_eq!(CHAIN.cpu_stats(CpuIndex(1)).unwrap().handled, 2);
    assert_eq!(EMERGENCY.stats().calls(), 3);
    assert_eq!(EMERGENCY.stats().claimed(), 2);
}

/// With the escalate policy an unknown NMI does not return: here the
/// escalation panics, and the simulation reports the CPU as panicked in its
/// NMI entry (on hardware it would be the panic path).
#[test]
fn escalated_unknown_nmi_does_not_return() {
    fn escalate(event: &NmiEvent<'_>) -> ! {
        panic!("unknown NMI on {}", event.cpu)
    }
    static CHAIN: HandlerChain<1, 1> = HandlerChain::new(UnknownNmiPolicy::Escalate(escalate));
    let machine = Machine::new(1, |cpu, kind, frame| {
        assert_eq!(kind, EntryKind::Nmi);
        CHAIN.dispatch(cpu.platform(), frame);
    });
    let report = machine.run(DEADLINE, |cpu| {
        cpu.platform().send_nmi(cpu.index()).unwrap();
        unreachable!("the escalation parks this CPU");
    });
    assert_eq!(
        report.outcomes,
        [CpuOutcome::Panicked(
            "in Nmi entry: unknown NMI on cpu0".into()
        )]
    );
    assert_eq!(CHAIN.cpu_stats(CpuIndex(0)).unwrap().unknown, 1);
}
