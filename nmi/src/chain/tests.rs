//! Unit tests of the handler chain (single-threaded; the multi-CPU tests run
//! on the host simulation in `nmi/tests/`).

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::vec::Vec;

use super::*;
use crate::test_hook::{self, HookPoint};
use crate::{CpuIndex, NmiSendError, Platform, RegisterFrame};

/// A one-CPU-at-a-time platform with a clock the tests move by hand.
struct TestPlatform {
    cpu: AtomicU32,
    clock: AtomicU64,
}

impl TestPlatform {
    const fn new() -> Self {
        Self {
            cpu: AtomicU32::new(0),
            clock: AtomicU64::new(0),
        }
    }
}

impl Platform for TestPlatform {
    fn current_cpu(&self) -> CpuIndex {
        CpuIndex(self.cpu.load(Ordering::Relaxed))
    }
    fn cpu_count(&self) -> usize {
        4
    }
    fn relax(&self) {}
    fn now_ns(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }
    fn send_nmi(&self, _: CpuIndex) -> Result<(), NmiSendError> {
        Err(NmiSendError::Unavailable)
    }
    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError> {
        Err(NmiSendError::Unavailable)
    }
    fn park(&self) -> ! {
        panic!("TestPlatform::park: the chain tests never stop a CPU")
    }

    fn disable_interrupts(&self) {}
}

/// An append-only record of which handlers ran, for one test.
struct Trace {
    entries: [AtomicU8; 32],
    len: AtomicUsize,
}

impl Trace {
    const fn new() -> Self {
        Self {
            entries: [const { AtomicU8::new(0) }; 32],
            len: AtomicUsize::new(0),
        }
    }
    fn push(&self, id: u8) {
        let index = self.len.fetch_add(1, Ordering::Relaxed);
        self.entries[index].store(id, Ordering::Relaxed);
    }
    fn take(&self) -> Vec<u8> {
        let len = self.len.swap(0, Ordering::Relaxed);
        self.entries[..len]
            .iter()
            .map(|entry| entry.load(Ordering::Relaxed))
            .collect()
    }
}

fn frame_at(rip: u64) -> RegisterFrame {
    RegisterFrame {
        rip,
        ..RegisterFrame::ZERO
    }
}

type Chain = HandlerChain<4, 4>;

/// Tests that share a handler module's trace hold this while they run.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

mod order {
    use super::*;
    pub static TRACE: Trace = Trace::new();
    pub static FIRST: NmiHandler = NmiHandler::new("first", |_| {
        TRACE.push(1);
        NmiOutcome::NotMine
    });
    pub static SECOND: NmiHandler = NmiHandler::new("second", |_| {
        TRACE.push(2);
        NmiOutcome::Handled
    });
    pub static THIRD: NmiHandler = NmiHandler::new("third", |_| {
        TRACE.push(3);
        NmiOutcome::NotMine
    });
    pub static EMERGENCY_PASS: NmiHandler = NmiHandler::new("emergency", |_| {
        TRACE.push(9);
        NmiOutcome::NotMine
    });
    pub static EMERGENCY_TAKE: NmiHandler = NmiHandler::new("emergency", |_| {
        TRACE.push(8);
        NmiOutcome::Handled
    });
}

#[test]
fn handlers_run_in_registration_order_after_the_emergency_handler() {
    use order::*;
    let _serial = serial();
    let platform = TestPlatform::new();
    let chain = Chain::new(UnknownNmiPolicy::Count);
    chain.register(&SECOND).expect("register");
    chain.register(&FIRST).expect("register");
    chain.register(&THIRD).expect("register");
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x1000)),
        DispatchOutcome::Handled { claimed: 1 }
    );
    assert_eq!(TRACE.take(), [2, 1, 3]);

    assert!(chain.set_emergency(Some(&EMERGENCY_PASS)).is_none());
    chain.dispatch(&platform, &frame_at(0x1004));
    assert_eq!(
        TRACE.take(),
        [9, 2, 1, 3],
        "emergency runs first, then the chain"
    );

    let previous = chain
        .set_emergency(Some(&EMERGENCY_TAKE))
        .map(NmiHandler::name);
    assert_eq!(previous, Some("emergency"));
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x1008)),
        DispatchOutcome::Emergency
    );
    assert_eq!(
        TRACE.take(),
        [8],
        "a claiming emergency handler ends the NMI"
    );
    assert_eq!(EMERGENCY_TAKE.stats().claimed(), 1);

    chain.unregister(&SECOND).expect("unregister");
    chain.set_emergency(None);
    chain.dispatch(&platform, &frame_at(0x100c));
    assert_eq!(TRACE.take(), [1, 3], "removal keeps the others' order");
    let names: Vec<_> = chain.handlers().iter().map(|h| h.name()).collect();
    assert_eq!(names, ["first", "third"]);
}

mod registry_errors {
    use super::*;
    fn nothing(_: &NmiEvent<'_>) -> NmiOutcome {
        NmiOutcome::NotMine
    }
    pub static A: NmiHandler = NmiHandler::new("a", nothing);
    pub static B: NmiHandler = NmiHandler::new("b", nothing);
    pub static C: NmiHandler = NmiHandler::new("c", nothing);
}

#[test]
fn registration_errors_are_reported() {
    use registry_errors::*;
    let chain: HandlerChain<2, 1> = HandlerChain::new(UnknownNmiPolicy::Count);
    assert_eq!(
        chain.unregister(&A),
        Err(RegisterHandlerError::NotRegistered)
    );
    chain.register(&A).expect("register");
    assert_eq!(
        chain.register(&A),
        Err(RegisterHandlerError::AlreadyRegistered)
    );
    chain.try_register(&B).expect("register");
    assert_eq!(chain.register(&C), Err(RegisterHandlerError::Full));
    chain.unregister(&A).expect("unregister");
    chain.register(&C).expect("a freed slot is reused");
    let names: Vec<_> = chain.handlers().iter().map(|h| h.name()).collect();
    assert_eq!(names, ["b", "c"]);

    // A writer that never finishes (stopped mid-edit): everyone else gets
    // Busy in bounded time instead of waiting forever.
    let _frozen = chain.epoch.try_begin(1).expect("no writer yet");
    assert_eq!(chain.try_register(&A), Err(RegisterHandlerError::Busy));
    assert_eq!(chain.register(&A), Err(RegisterHandlerError::Busy));
    assert_eq!(chain.unregister(&B), Err(RegisterHandlerError::Busy));
    // The emergency slot needs no writer epoch.
    assert!(chain.set_emergency(Some(&A)).is_none());
}

mod swallow {
    use super::*;
    use core::sync::atomic::AtomicBool;
    pub static CLAIM: AtomicBool = AtomicBool::new(false);
    fn claim_if_asked(_: &NmiEvent<'_>) -> NmiOutcome {
        if CLAIM.load(Ordering::Relaxed) {
            NmiOutcome::Handled
        } else {
            NmiOutcome::NotMine
        }
    }
    pub static PMU: NmiHandler = NmiHandler::new("pmu", claim_if_asked);
    pub static WATCHDOG: NmiHandler = NmiHandler::new("watchdog", claim_if_asked);
}

#[test]
fn back_to_back_nmi_after_a_double_claim_is_swallowed_once() {
    use swallow::*;
    let platform = TestPlatform::new();
    let chain = Chain::new(UnknownNmiPolicy::Count);
    chain.register(&PMU).expect("register");
    chain.register(&WATCHDOG).expect("register");
    let cpu = CpuIndex(0);

    CLAIM.store(true, Ordering::Relaxed);
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x2000)),
        DispatchOutcome::Handled { claimed: 2 }
    );
    CLAIM.store(false, Ordering::Relaxed);
    // The latched duplicate interrupts the same instruction.
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x2000)),
        DispatchOutcome::Swallowed
    );
    // A third one there is genuinely unknown: one latch, one swallow.
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x2000)),
        DispatchOutcome::Unknown
    );

    // Double claim, then an unclaimed NMI elsewhere: not back to back.
    CLAIM.store(true, Ordering::Relaxed);
    chain.dispatch(&platform, &frame_at(0x3000));
    CLAIM.store(false, Ordering::Relaxed);
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x3008)),
        DispatchOutcome::Unknown
    );
    // ... and the swallow is disarmed even if the next one repeats 0x3008.
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x3008)),
        DispatchOutcome::Unknown
    );

    // The idle loop forgets the RIP: a repeat after reset is not back to back.
    CLAIM.store(true, Ordering::Relaxed);
    chain.dispatch(&platform, &frame_at(0x4000));
    CLAIM.store(false, Ordering::Relaxed);
    chain.reset_back_to_back(cpu);
    assert_eq!(
        chain.dispatch(&platform, &frame_at(0x4000)),
        DispatchOutcome::Unknown
    );

    let stats = chain.cpu_stats(cpu).expect("cpu 0 is covered");
    assert_eq!(
        stats,
        ChainCpuStats {
            received: 8,
            handled: 3,
            swallowed: 1,
            unknown: 4,
            rewalks: 0,
            torn_walks: 0,
        }
    );
    assert_eq!(PMU.stats().calls(), 8);
    assert_eq!(PMU.stats().claimed(), 3);
}

mod policies {
    use super::*;
    pub static REPORTED: AtomicU64 = AtomicU64::new(0);
    pub fn report(event: &NmiEvent<'_>) {
        REPORTED.store(event.frame.rip, Ordering::Relaxed);
    }
    pub fn escalate(event: &NmiEvent<'_>) -> ! {
        panic!("escalated unknown NMI at {:#x}", event.frame.rip);
    }
}

#[test]
fn unknown_nmi_policies() {
    use policies::*;
    let platform = TestPlatform::new();

    let counting = Chain::new(UnknownNmiPolicy::Count);
    assert_eq!(
        counting.dispatch(&platform, &frame_at(0x10)),
        DispatchOutcome::Unknown
    );
    assert_eq!(counting.cpu_stats(CpuIndex(0)).map(|s| s.unknown), Some(1));

    let reporting = Chain::new(UnknownNmiPolicy::Report(report));
    assert_eq!(
        reporting.dispatch(&platform, &frame_at(0x20)),
        DispatchOutcome::Unknown
    );
    assert_eq!(REPORTED.load(Ordering::Relaxed), 0x20);

    let escalating = Chain::new(UnknownNmiPolicy::Escalate(escalate));
    let result = std::panic::catch_unwind(|| escalating.dispatch(&platform, &frame_at(0x30)));
    let message = result
        .expect_err("escalation must not return")
        .downcast::<std::string::String>()
        .map(|m| *m)
        .unwrap_or_default();
    assert_eq!(message, "escalated unknown NMI at 0x30");
    assert_eq!(
        escalating.cpu_stats(CpuIndex(0)).map(|s| s.unknown),
        Some(1)
    );
}

#[test]
fn an_nmi_on_an_unknown_cpu_still_runs_the_handlers() {
    use order::*;
    let _serial = serial();
    let platform = TestPlatform::new();
    platform.cpu.store(7, Ordering::Relaxed); // the chain covers 4 CPUs
    let chain = Chain::new(UnknownNmiPolicy::Count);
    chain.register(&THIRD).expect("register");
    chain.dispatch(&platform, &frame_at(0x40));
    assert_eq!(chain.unknown_cpu_nmis(), 1);
    assert_eq!(chain.cpu_stats(CpuIndex(7)), None);
    assert_eq!(TRACE.take(), [3]);
}

mod timing {
    use super::*;
    pub static PLATFORM: TestPlatform = TestPlatform::new();
    pub static SLOW: NmiHandler = NmiHandler::new("slow", |event| {
        // Pretend the handler ran for rip nanoseconds.
        PLATFORM.clock.fetch_add(event.frame.rip, Ordering::Relaxed);
        NmiOutcome::Handled
    });
}

#[test]
fn handler_time_accounting_keeps_the_longest_run() {
    use timing::*;
    let chain = Chain::new(UnknownNmiPolicy::Count);
    chain.register(&SLOW).expect("register");
    for duration in [300, 1_200, 700] {
        chain.dispatch(&PLATFORM, &frame_at(duration));
    }
    assert_eq!(SLOW.stats().longest_ns(), 1_200);
    assert_eq!(SLOW.stats().calls(), 3);
}

mod concurrent_edit {
    use super::*;
    pub static TRACE: Trace = Trace::new();
    pub static H1: NmiHandler = NmiHandler::new("h1", |_| {
        TRACE.push(1);
        NmiOutcome::NotMine
    });
    pub static H2: NmiHandler = NmiHandler::new("h2", |_| {
        TRACE.push(2);
        NmiOutcome::NotMine
    });
    pub static H3: NmiHandler = NmiHandler::new("h3", |_| {
        TRACE.push(3);
        NmiOutcome::NotMine
    });
    pub static H4: NmiHandler = NmiHandler::new("h4", |_| {
        TRACE.push(4);
        NmiOutcome::NotMine
    });
}

/// Run one dispatch while `edit` runs (as another CPU would) right after the
/// dispatcher reads slot `at`.
fn dispatch_with_edit_at(
    chain: &'static Chain,
    at: usize,
    edit: impl FnOnce(&'static Chain) + 'static,
) -> DispatchOutcome {
    let platform = TestPlatform::new();
    let mut edit = Some(edit);
    test_hook::set(move |point| {
        if point == HookPoint::ChainSlotRead(at)
            && let Some(edit) = edit.take()
        {
            edit(chain);
        }
    });
    let outcome = chain.dispatch(&platform, &frame_at(0x5000));
    test_hook::clear();
    outcome
}

#[test]
fn a_removal_during_a_walk_neither_skips_nor_repeats_a_handler() {
    use concurrent_edit::*;
    let _serial = serial();
    let chain: &'static Chain = Box::leak(Box::new(Chain::new(UnknownNmiPolicy::Count)));
    for handler in [&H1, &H2, &H3] {
        chain.register(handler).expect("register");
    }
    // After the dispatcher read slot 0 (H1), "another CPU" removes H1: H2
    // and H3 shift down, so a plain walk would find H3 in slot 1 and skip H2.
    dispatch_with_edit_at(chain, 0, |chain| {
        chain.unregister(&H1).expect("unregister");
    });
    let mut ran = TRACE.take();
    ran.sort_unstable();
    assert_eq!(ran, [1, 2, 3], "every handler ran exactly once");
    let stats = chain.cpu_stats(CpuIndex(0)).expect("covered");
    assert_eq!(stats.rewalks, 1);
    assert_eq!(stats.torn_walks, 0);
}

#[test]
fn a_registration_during_a_walk_is_picked_up_by_the_rewalk() {
    use concurrent_edit::*;
    let _serial = serial();
    let chain: &'static Chain = Box::leak(Box::new(Chain::new(UnknownNmiPolicy::Count)));
    chain.register(&H1).expect("register");
    dispatch_with_edit_at(chain, 1, |chain| {
        chain.register(&H4).expect("register");
    });
    assert_eq!(TRACE.take(), [1, 4]);
}

#[test]
fn a_walk_over_a_chain_frozen_mid_edit_runs_everyone_once() {
    use concurrent_edit::*;
    let _serial = serial();
    let chain: &'static Chain = Box::leak(Box::new(Chain::new(UnknownNmiPolicy::Count)));
    for handler in [&H1, &H2, &H3] {
        chain.register(handler).expect("register");
    }
    // A writer on this CPU, interrupted by the NMI halfway through removing
    // H1: slots read [H2, H2, H3] and the epoch is odd.
    let h2 = core::ptr::from_ref(&H2).cast_mut();
    chain.slots[0].store(h2, Ordering::Relaxed);
    let _frozen = chain.epoch.try_begin(1).expect("no writer yet");
    let platform = TestPlatform::new();
    chain.dispatch(&platform, &frame_at(0x6000));
    assert_eq!(TRACE.take(), [2, 3], "the duplicate entry ran once");
    let stats = chain.cpu_stats(CpuIndex(0)).expect("covered");
    assert_eq!(stats.rewalks, (MAX_WALKS - 1) as u64);
    assert_eq!(stats.torn_walks, 1, "an unvalidated walk is reported");
}
