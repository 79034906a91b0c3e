//! The simulation's own contract: signals behave like NMIs (delivered on the
//! target CPU, latched while blocked, not nested in themselves, nested by
//! machine checks), losses are counted, and every way a CPU can end is
//! reported in bounded time.
//!
//! Each test owns its statics (tests run in parallel threads of one process).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use crashkit_nmi::{CpuIndex, NmiSendError, Platform};
use crashkit_sim::{CpuOutcome, EntryKind, Machine, SimCpu};

const DEADLINE: Duration = Duration::from_secs(20);

/// Spin (yielding) until `done()` or a stop request; whether `done()` held.
fn wait_until(cpu: &SimCpu, done: impl Fn() -> bool) -> bool {
    while !done() {
        if cpu.stop_requested() {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

#[test]
fn nmi_runs_on_the_target_cpu_with_its_registers() {
    static TOOK: AtomicU32 = AtomicU32::new(u32::MAX);
    static RIP_SEEN: AtomicBool = AtomicBool::new(false);
    static READY: AtomicBool = AtomicBool::new(false);
    let machine = Machine::new(2, |cpu, kind, frame| {
        assert_eq!(kind, EntryKind::Nmi);
        assert_eq!(cpu.platform().current_cpu(), cpu.index());
        RIP_SEEN.store(frame.rip != 0 && frame.rsp != 0, SeqCst);
        TOOK.store(cpu.index().0, SeqCst);
    });
    let report = machine.run(DEADLINE, |cpu| match cpu.index().0 {
        0 => {
            assert!(wait_until(cpu, || READY.load(SeqCst)));
            cpu.platform().send_nmi(CpuIndex(1)).unwrap();
        }
        _ => {
            READY.store(true, SeqCst);
            assert!(wait_until(cpu, || TOOK.load(SeqCst) == 1));
        }
    });
    report.assert_all_finished();
    assert!(
        RIP_SEEN.load(SeqCst),
        "the frame carries the interrupted RIP and RSP"
    );
    assert_eq!(report.stats[1].sent(EntryKind::Nmi), 1);
    assert_eq!(report.stats[1].delivered(EntryKind::Nmi), 1);
    assert_eq!(report.stats[0].delivered(EntryKind::Nmi), 0);
}

#[test]
fn blocked_nmis_latch_one_and_coalesce_the_rest() {
    static DELIVERED: AtomicU32 = AtomicU32::new(0);
    static BLOCKED: AtomicBool = AtomicBool::new(false);
    static SENT: AtomicBool = AtomicBool::new(false);
    let machine = Machine::new(2, |_, _, _| {
        DELIVERED.fetch_add(1, SeqCst);
    });
    let report = machine.run(DEADLINE, |cpu| match cpu.index().0 {
        0 => {
            assert!(wait_until(cpu, || BLOCKED.load(SeqCst)));
            for _ in 0..5 {
                cpu.platform().send_nmi(CpuIndex(1)).unwrap();
            }
            SENT.store(true, SeqCst);
        }
        _ => {
            let block = cpu.block_nmis();
            BLOCKED.store(true, SeqCst);
            assert!(wait_until(cpu, || SENT.load(SeqCst)));
            assert_eq!(DELIVERED.load(SeqCst), 0, "blocked NMIs must not run");
            drop(block);
            // Unblocking delivers the pending signal before returning.
            assert_eq!(DELIVERED.load(SeqCst), 1, "exactly one NMI latched");
        }
    });
    report.assert_all_finished();
    assert_eq!(report.stats[1].sent(EntryKind::Nmi), 5);
    assert_eq!(report.stats[1].delivered(EntryKind::Nmi), 1);
}

#[test]
fn an_nmi_raised_inside_the_handler_comes_back_to_back() {
    static RIPS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
    static CALLS: AtomicU32 = AtomicU32::new(0);
    static INSIDE: AtomicBool = AtomicBool::new(false);
    let machine = Machine::new(1, |cpu, _, frame| {
        assert!(!INSIDE.swap(true, SeqCst), "an NMI nested inside an NMI");
        let call = CALLS.fetch_add(1, SeqCst) as usize;
        if let Some(rip) = RIPS.get(call) {
            rip.store(frame.rip, SeqCst);
        }
        if call == 0 {
            // Latches: delivered after this handler returns.
            cpu.platform().send_nmi(cpu.index()).unwrap();
            assert_eq!(CALLS.load(SeqCst), 1);
        }
        INSIDE.store(false, SeqCst);
    });
    let report = machine.run(DEADLINE, |cpu| {
        cpu.platform().send_nmi(cpu.index()).unwrap();
        assert!(wait_until(cpu, || CALLS.load(SeqCst) == 2));
    });
    report.assert_all_finished();
    assert_eq!(
        RIPS[0].load(SeqCst),
        RIPS[1].load(SeqCst),
        "the latched NMI interrupts the same instruction"
    );
}

#[test]
fn a_machine_check_nests_inside_an_nmi_and_vice_versa() {
    static DEPTH: AtomicU32 = AtomicU32::new(0);
    static MAX_DEPTH: AtomicU32 = AtomicU32::new(0);
    static ORDER: AtomicU32 = AtomicU32::new(0);
    let machine = Machine::new(1, |cpu, kind, _| {
        let depth = DEPTH.fetch_add(1, SeqCst) + 1;
        MAX_DEPTH.fetch_max(depth, SeqCst);
        let me = cpu.index();
        match (kind, depth, ORDER.load(SeqCst)) {
            (EntryKind::Nmi, 1, 0) => {
                cpu.platform().raise(me, EntryKind::MachineCheck).unwrap();
                // Not blocked by the NMI: it ran before send returned.
                assert_eq!(ORDER.fetch_add(1, SeqCst), 2);
            }
            (EntryKind::MachineCheck, 2, 0) => {
                ORDER.fetch_add(1, SeqCst);
                // An NMI is blocked here: the outer NMI has not returned.
                cpu.platform().send_nmi(me).unwrap();
                assert_eq!(ORDER.fetch_add(1, SeqCst), 1);
            }
            (EntryKind::Nmi, 1, 3) => {
                // The NMI latched inside the machine check, after the outer
                // NMI returned.
                ORDER.fetch_add(1, SeqCst);
            }
            other => panic!("unexpected entry {other:?}"),
        }
        DEPTH.fetch_sub(1, SeqCst);
    });
    let report = machine.run(DEADLINE, |cpu| {
        cpu.platform().send_nmi(cpu.index()).unwrap();
        // The NMI sent inside the MC latched and runs after the outer NMI.
        assert!(wait_until(cpu, || ORDER.load(SeqCst) == 4));
    });
    report.assert_all_finished();
    assert_eq!(MAX_DEPTH.load(SeqCst), 2);
    assert_eq!(report.stats[0].delivered(EntryKind::MachineCheck), 1);
    assert_eq!(report.stats[0].delivered(EntryKind::Nmi), 2);
}

#[test]
fn lost_nmis_are_counted_and_never_delivered() {
    static DELIVERED: AtomicU32 = AtomicU32::new(0);
    let machine = Machine::new(1, |_, _, _| {
        DELIVERED.fetch_add(1, SeqCst);
    });
    let platform = machine.platform().clone();
    platform.drop_next_nmis(CpuIndex(0), 2).unwrap();
    assert_eq!(
        platform.drop_next_nmis(CpuIndex(1), 1),
        Err(NmiSendError::NoSuchCpu(CpuIndex(1)))
    );
    let report = machine.run(DEADLINE, |cpu| {
        let me = cpu.index();
        for expected in [0, 0, 1] {
            // Sending to oneself delivers before `send_nmi` returns.
            cpu.platform().send_nmi(me).unwrap();
            assert_eq!(DELIVERED.load(SeqCst), expected);
        }
        cpu.platform().set_nmi_loss(1000, 1);
        cpu.platform().send_nmi(me).unwrap();
        assert_eq!(DELIVERED.load(SeqCst), 1, "loss 1000/1000 loses everything");
        cpu.platform().set_nmi_loss(500, 7);
        for _ in 0..1000 {
            cpu.platform().send_nmi(me).unwrap();
        }
        let delivered = DELIVERED.load(SeqCst) - 1;
        assert!(
            (400..600).contains(&delivered),
            "{delivered} of 1000 at 50% loss"
        );
    });
    report.assert_all_finished();
    let s = report.stats[0];
    assert_eq!(s.sent(EntryKind::Nmi) + s.nmis_dropped, 1004);
    assert_eq!(s.delivered(EntryKind::Nmi), s.sent(EntryKind::Nmi));
}

#[test]
fn broadcast_reaches_every_cpu_but_the_sender() {
    static HITS: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
    let machine = Machine::new(4, |cpu, _, _| {
        HITS[cpu.index().as_usize()].fetch_add(1, SeqCst);
    });
    let report = machine.run(DEADLINE, |cpu| {
        if cpu.index().0 == 2 {
            cpu.platform().send_nmi_all_but_self().unwrap();
        }
        let others = [0, 1, 3];
        if others.contains(&cpu.index().0) {
            assert!(wait_until(cpu, || HITS[cpu.index().as_usize()]
                .load(SeqCst)
                == 1));
        }
    });
    report.assert_all_finished();
    let hits: Vec<u32> = HITS.iter().map(|h| h.load(SeqCst)).collect();
    assert_eq!(hits, [1, 1, 0, 1]);
}

#[test]
fn parked_cpus_keep_their_nmis_pending() {
    static PARKED_FROM_NMI: AtomicBool = AtomicBool::new(false);
    let machine = Machine::new(3, |cpu, _, _| {
        if cpu.index().0 == 2 {
            PARKED_FROM_NMI.store(true, SeqCst);
            cpu.park();
        }
    });
    let report = machine.run(DEADLINE, |cpu| match cpu.index().0 {
        0 => {
            cpu.platform().send_nmi(CpuIndex(2)).unwrap();
            // Once both others are parked, NMI them: accepted (the threads
            // exist) but never delivered.
            let platform = cpu.platform();
            assert!(wait_until(cpu, || {
                platform.is_parked(CpuIndex(1)) && platform.is_parked(CpuIndex(2))
            }));
            assert!(PARKED_FROM_NMI.load(SeqCst));
            assert!(!platform.is_parked(CpuIndex(0)));
            cpu.platform().send_nmi(CpuIndex(1)).unwrap();
            cpu.platform().send_nmi(CpuIndex(2)).unwrap();
        }
        1 => cpu.park(),
        _ => {
            wait_until(cpu, || false);
        }
    });
    assert_eq!(
        report.outcomes,
        [CpuOutcome::Finished, CpuOutcome::Parked, CpuOutcome::Parked]
    );
    assert_eq!(report.stats[1].delivered(EntryKind::Nmi), 0);
    assert_eq!(report.stats[2].delivered(EntryKind::Nmi), 1);
}

#[test]
fn hung_and_panicking_cpus_are_reported_in_bounded_time() {
    let machine = Machine::new(3, |cpu, _, _| {
        if cpu.index().0 == 2 {
            panic!("entry exploded");
        }
    });
    // The deadline leaves the panicking CPUs time to unwind even on a loaded
    // machine: a panic prints its message (and, with RUST_BACKTRACE, a
    // symbolised backtrace, which takes a debug build hundreds of
    // milliseconds when both cores are busy); a CPU still unwinding at the
    // deadline would be reported hung. CPU 0 holds out to the deadline.
    let report = machine.run(Duration::from_millis(1500), |cpu| match cpu.index().0 {
        0 => {
            // Ignores everything until asked to stop: hung at the deadline.
            while !cpu.stop_requested() {
                std::thread::yield_now();
            }
        }
        1 => panic!("body exploded"),
        _ => {
            cpu.platform().send_nmi(cpu.index()).unwrap();
            unreachable!("the entry parks a CPU whose entry panicked");
        }
    });
    assert_eq!(report.outcomes[0], CpuOutcome::Hung);
    assert_eq!(
        report.outcomes[1],
        CpuOutcome::Panicked("body exploded".into())
    );
    assert_eq!(
        report.outcomes[2],
        CpuOutcome::Panicked("in Nmi entry: entry exploded".into())
    );
    assert!(report.elapsed >= Duration::from_millis(1500));
    assert!(!report.all_finished());
}

#[test]
fn sends_to_missing_or_finished_cpus_are_errors() {
    let machine = Machine::new(2, |_, _, _| {});
    let platform = machine.platform().clone();
    assert_eq!(
        platform.send_nmi(CpuIndex(2)),
        Err(NmiSendError::NoSuchCpu(CpuIndex(2)))
    );
    assert_eq!(
        platform.send_nmi(CpuIndex(0)),
        Err(NmiSendError::Unavailable),
        "not started yet"
    );
    assert_eq!(
        platform.current_cpu(),
        CpuIndex::UNKNOWN,
        "the test thread is no CPU"
    );
    let report = machine.run(DEADLINE, |cpu| {
        assert_eq!(cpu.platform().current_cpu(), cpu.index());
    });
    report.assert_all_finished();
    assert_eq!(
        platform.send_nmi(CpuIndex(1)),
        Err(NmiSendError::Unavailable)
    );
    assert_eq!(
        platform.raise(CpuIndex(0), EntryKind::MachineCheck),
        Err(NmiSendError::Unavailable)
    );
    assert!(platform.now_ns() > 0);
}

#[test]
fn every_kind_nests_once_so_a_cpu_can_be_five_contexts_deep() {
    static DEPTH: AtomicU32 = AtomicU32::new(0);
    static DEEPEST: AtomicU32 = AtomicU32::new(0);
    static PROBED: AtomicBool = AtomicBool::new(false);
    // Each entry raises the next kind on its own CPU; each is delivered at
    // once (a different signal, not blocked), so they stack up.
    let machine = Machine::new(1, |cpu, kind, _| {
        let depth = DEPTH.fetch_add(1, SeqCst) + 1;
        DEEPEST.fetch_max(depth, SeqCst);
        let next = EntryKind::ALL.get(kind.index() + 1);
        if PROBED.load(SeqCst) {
            // The second round: the kinds raised below, arriving in turn.
        } else if let Some(&next) = next {
            cpu.platform().raise(cpu.index(), next).unwrap();
        } else {
            PROBED.store(true, SeqCst);
            // Innermost: every kind is blocked by its own entry below.
            for kind in EntryKind::ALL {
                cpu.platform().raise(cpu.index(), kind).unwrap();
            }
            assert_eq!(DEPTH.load(SeqCst), 4, "nothing nests in a running kind");
        }
        DEPTH.fetch_sub(1, SeqCst);
    });
    let report = machine.run(DEADLINE, |cpu| {
        cpu.platform().send_nmi(cpu.index()).unwrap();
        assert_eq!(
            DEEPEST.load(SeqCst),
            4,
            "body + NMI + MC + debug + interrupt"
        );
    });
    report.assert_all_finished();
    let s = report.stats[0];
    // The four raised at the innermost level ran once each after their own
    // entries returned.
    for kind in EntryKind::ALL {
        assert_eq!(s.delivered(kind), 2, "{kind:?}: {s:?}");
    }
}

#[test]
fn disabled_interrupts_wait_and_nmis_do_not() {
    static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
    static NMIS: AtomicU32 = AtomicU32::new(0);
    let machine = Machine::new(1, |_, kind, _| {
        let counter = match kind {
            EntryKind::Interrupt => &INTERRUPTS,
            _ => &NMIS,
        };
        counter.fetch_add(1, SeqCst);
    });
    let report = machine.run(DEADLINE, |cpu| {
        let me = cpu.index();
        let irqs_off = cpu.disable_interrupts();
        for _ in 0..3 {
            cpu.platform().raise(me, EntryKind::Interrupt).unwrap();
        }
        cpu.platform().send_nmi(me).unwrap();
        assert_eq!(NMIS.load(SeqCst), 1, "NMIs are not masked by cli");
        assert_eq!(INTERRUPTS.load(SeqCst), 0);
        drop(irqs_off);
        // Interrupts queue (realtime signals): all three arrive.
        assert_eq!(INTERRUPTS.load(SeqCst), 3);
    });
    report.assert_all_finished();
}
