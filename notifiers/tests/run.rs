//! Running lists: declared and tried locks (free, held by a "stopped CPU"),
//! budgets, and resuming after a notifier panicked.
//!
//! A notifier that panics in a kernel never returns; here its panic unwinds
//! out of `run_list` into `catch_unwind`, which leaves the runner's frame
//! abandoned exactly like the kernel does, and the test then plays the
//! re-entered panic path by calling `resume`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{HostThreads, Reports, TEST_PANIC, TestPlatform};
use crashkit_nmi::lock::QueueDomain;
use crashkit_notifiers::{
    BodyResult, Cursor, DEFAULT_BUDGET_NS, EscalationPolicy, LockedBody, Notifier, NotifierList,
    NotifierLock, NotifierOutcome, PanicContext, PanicInputs, Registry, Resumed,
};

use NotifierOutcome::*;

fn complete(_: &PanicContext<'_>) -> BodyResult {
    BodyResult::Complete
}

#[test]
fn declared_lock_free_runs_the_body_with_the_data_held_skips_it() {
    static STATE: NotifierLock<HostThreads, u32> = NotifierLock::new(41);
    static SEEN: AtomicU32 = AtomicU32::new(0);
    fn bump(_: &PanicContext<'_>, state: &mut u32) -> BodyResult {
        *state += 1;
        SEEN.store(*state, SeqCst);
        BodyResult::Complete
    }
    static LOCKED: Notifier = Notifier::locked(
        "locked",
        NotifierList::Informational,
        1,
        &LockedBody::new(&STATE, bump),
    );
    static PLAIN: Notifier = Notifier::new("plain", NotifierList::Informational, 0, complete);
    let registry = Registry::<4>::new(EscalationPolicy::NextNotifier);
    registry.register(&LOCKED).unwrap();
    registry.register(&PLAIN).unwrap();
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "test");

    // Free: the runner took the lock, the body saw the data, the lock is
    // free again afterwards.
    let mut reports = Reports::default();
    registry
        .run_list(NotifierList::Informational, &inputs, &mut reports)
        .unwrap();
    assert_eq!(reports.outcomes(), [("locked", Ran), ("plain", Ran)]);
    assert_eq!(SEEN.load(SeqCst), 42);
    assert!(!STATE.is_locked());
    assert_eq!(*STATE.lock(), 42);

    // Held by a "stopped CPU": a thread that takes it and never releases.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let guard = STATE.lock();
        held_tx.send(()).unwrap();
        std::mem::forget(guard); // never released, like a stopped CPU
        loop {
            std::thread::park();
        }
    });
    held_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let started = Instant::now();
    let mut reports = Reports::default();
    let summary = registry
        .run_list(NotifierList::Informational, &inputs, &mut reports)
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the walk never waits for a lock"
    );
    assert_eq!(
        reports.outcomes(),
        [("locked", SkippedLockBusy), ("plain", Ran)],
        "the notifier after the busy one still runs"
    );
    assert_eq!(summary.count(SkippedLockBusy), 1);
    assert_eq!(SEEN.load(SeqCst), 42, "the body was not called");
    assert_eq!(STATE.busy_skips(), 1);
}

#[test]
fn a_body_that_tries_a_busy_lock_itself_reports_degraded() {
    static EXTRA: NotifierLock<HostThreads, [u8; 4]> = NotifierLock::new([0; 4]);
    fn partial(ctx: &PanicContext<'_>) -> BodyResult {
        match EXTRA.try_lock(ctx) {
            Some(mut extra) => {
                extra[0] = 1;
                BodyResult::Complete
            }
            None => BodyResult::Degraded,
        }
    }
    static PARTIAL: Notifier = Notifier::new("partial", NotifierList::PreDump, 0, partial);
    let registry = Registry::<2>::new(EscalationPolicy::NextNotifier);
    registry.register(&PARTIAL).unwrap();
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "test");

    let mut reports = Reports::default();
    registry
        .run_list(NotifierList::PreDump, &inputs, &mut reports)
        .unwrap();
    assert_eq!(reports.outcomes(), [("partial", Ran)]);
    assert_eq!(EXTRA.lock()[0], 1);

    let held = EXTRA.lock();
    let mut reports = Reports::default();
    registry
        .run_list(NotifierList::PreDump, &inputs, &mut reports)
        .unwrap();
    drop(held);
    assert_eq!(reports.outcomes(), [("partial", Degraded)]);
}

#[test]
fn blocking_lock_on_the_panic_owner_is_counted() {
    static LOCK: NotifierLock<HostThreads, u8> = NotifierLock::new(0);
    *LOCK.lock() += 1;
    assert_eq!(LOCK.panic_blocking_locks(), 0);
    // This thread becomes the panic owner of the test domain's flag.
    assert_eq!(
        TEST_PANIC.claim(HostThreads::current_cpu()),
        crashkit_nmi::PanicClaim::First
    );
    *LOCK.lock() += 1;
    assert_eq!(LOCK.panic_blocking_locks(), 1);
    assert_eq!(*LOCK.try_lock_now().unwrap(), 2);
}

#[test]
fn over_budget_is_measured_and_recorded_with_the_duration() {
    static PLATFORM: TestPlatform = TestPlatform::new();
    fn slow(_: &PanicContext<'_>) -> BodyResult {
        PLATFORM.advance(2_000_001);
        BodyResult::Complete
    }
    fn slow_degraded(ctx: &PanicContext<'_>) -> BodyResult {
        PLATFORM.advance(500);
        assert_eq!(ctx.remaining_ns(), 500);
        BodyResult::Degraded
    }
    fn default_budget(ctx: &PanicContext<'_>) -> BodyResult {
        assert_eq!(ctx.budget_ns(), DEFAULT_BUDGET_NS);
        PLATFORM.advance(DEFAULT_BUDGET_NS); // exactly the budget: fine
        BodyResult::Complete
    }
    static SLOW: Notifier =
        Notifier::new("slow", NotifierList::PostDump, 3, slow).with_budget(2_000_000);
    static TIGHT: Notifier =
        Notifier::new("tight", NotifierList::PostDump, 2, slow_degraded).with_budget(1_000);
    static DEFAULT: Notifier = Notifier::new("default", NotifierList::PostDump, 1, default_budget);
    let registry = Registry::<4>::new(EscalationPolicy::NextNotifier);
    for n in [&SLOW, &TIGHT, &DEFAULT] {
        registry.register(n).unwrap();
    }
    let inputs = PanicInputs::new(&PLATFORM, "test");
    let mut reports = Reports::default();
    let summary = registry
        .run_list(NotifierList::PostDump, &inputs, &mut reports)
        .unwrap();
    assert_eq!(
        reports.outcomes(),
        [("slow", OverBudget), ("tight", Degraded), ("default", Ran)]
    );
    let durations: Vec<(u64, u64)> = reports
        .0
        .iter()
        .map(|r| (r.duration_ns, r.budget_ns))
        .collect();
    assert_eq!(
        durations,
        [
            (2_000_001, 2_000_000),
            (500, 1_000),
            (DEFAULT_BUDGET_NS, DEFAULT_BUDGET_NS)
        ]
    );
    assert_eq!(summary.count(OverBudget), 1);
    assert_eq!(summary.total(), 3);
}

/// Four notifiers, the second panics (when `ARMED`).
mod panicking {
    use super::*;
    pub static ARMED: AtomicBool = AtomicBool::new(true);
    pub static SECOND_ARMED: AtomicBool = AtomicBool::new(false);
    fn bad(_: &PanicContext<'_>) -> BodyResult {
        if ARMED.swap(false, SeqCst) {
            panic!("notifier bug");
        }
        BodyResult::Complete
    }
    fn bad_too(_: &PanicContext<'_>) -> BodyResult {
        if SECOND_ARMED.swap(false, SeqCst) {
            panic!("another notifier bug");
        }
        BodyResult::Complete
    }
    pub static A: Notifier = Notifier::new("a", NotifierList::Hypervisor, 4, complete);
    pub static B: Notifier = Notifier::new("b", NotifierList::Hypervisor, 3, bad);
    pub static C: Notifier = Notifier::new("c", NotifierList::Hypervisor, 2, bad_too);
    pub static D: Notifier = Notifier::new("d", NotifierList::Hypervisor, 1, complete);
    pub static OTHER_LIST: Notifier = Notifier::new("x", NotifierList::Informational, 9, complete);
}

/// Run `body`, expecting it to panic (a notifier's panic unwinding out of
/// the runner, as if the kernel's panic handler were re-entered).
fn expect_panic(body: impl FnOnce()) {
    assert!(catch_unwind(AssertUnwindSafe(body)).is_err());
}

#[test]
fn resume_records_the_panicked_notifier_and_runs_the_rest_once() {
    use panicking::*;
    // Serial: the panicking notifiers are armed by statics.
    let registry = Registry::<8>::new(EscalationPolicy::NextNotifier);
    for n in [&A, &B, &C, &D, &OTHER_LIST] {
        registry.register(n).unwrap();
    }
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "test");
    ARMED.store(true, SeqCst);
    SECOND_ARMED.store(true, SeqCst);

    let mut before = Reports::default();
    expect_panic(|| {
        let _ = registry.run_list(NotifierList::Hypervisor, &inputs, &mut before);
    });
    assert_eq!(before.outcomes(), [("a", Ran)]);
    let Cursor::Running { notifier, list, .. } = registry.cursor() else {
        panic!("cursor: {:?}", registry.cursor());
    };
    assert_eq!((notifier.name(), list), ("b", NotifierList::Hypervisor));

    // Re-entry 1: records b, runs c, which panics too.
    platform.advance(777);
    let mut first = Reports::default();
    expect_panic(|| {
        let _ = registry.resume(&inputs, &mut first);
    });
    assert_eq!(first.outcomes(), [("b", Panicked)]);
    assert_eq!(first.0[0].duration_ns, 777, "from its start to the resume");

    // Re-entry 2: records c, runs d, finishes the list.
    let mut second = Reports::default();
    let resumed = registry.resume(&inputs, &mut second);
    assert_eq!(second.outcomes(), [("c", Panicked), ("d", Ran)]);
    let Resumed::Finished { summary } = resumed else {
        panic!("{resumed:?}");
    };
    assert_eq!(summary.list, NotifierList::Hypervisor);
    assert_eq!((summary.count(Panicked), summary.count(Ran)), (1, 1));
    assert_eq!(
        registry.cursor(),
        Cursor::Finished {
            list: NotifierList::Hypervisor
        }
    );

    // Nothing left to resume; the next list runs normally.
    assert_eq!(
        registry.resume(&inputs, &mut Reports::default()),
        Resumed::Nothing
    );
    let mut next = Reports::default();
    registry
        .run_list(NotifierList::Informational, &inputs, &mut next)
        .unwrap();
    assert_eq!(next.outcomes(), [("x", Ran)]);
}

#[test]
fn next_list_policy_marks_the_rest_not_run() {
    static ARMED: AtomicBool = AtomicBool::new(true);
    fn bad(_: &PanicContext<'_>) -> BodyResult {
        if ARMED.swap(false, SeqCst) {
            panic!("notifier bug");
        }
        BodyResult::Complete
    }
    static FIRST: Notifier = Notifier::new("first", NotifierList::PreDump, 2, bad);
    static REST1: Notifier = Notifier::new("rest1", NotifierList::PreDump, 1, complete);
    static REST2: Notifier = Notifier::new("rest2", NotifierList::PreDump, 1, complete);
    let registry = Registry::<4>::new(EscalationPolicy::NextList);
    for n in [&FIRST, &REST1, &REST2] {
        registry.register(n).unwrap();
    }
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "test");
    expect_panic(|| {
        let _ = registry.run_list(NotifierList::PreDump, &inputs, &mut Reports::default());
    });
    let mut reports = Reports::default();
    let resumed = registry.resume(&inputs, &mut reports);
    assert_eq!(
        reports.outcomes(),
        [("first", Panicked), ("rest1", NotRun), ("rest2", NotRun)]
    );
    assert!(reports.0[1..].iter().all(|r| r.duration_ns == 0));
    assert!(matches!(resumed, Resumed::Finished { summary } if summary.count(NotRun) == 2));
}

#[test]
fn a_recorder_panic_between_notifiers_resumes_after_the_last_one() {
    static R1: Notifier = Notifier::new("r1", NotifierList::Informational, 2, complete);
    static R2: Notifier = Notifier::new("r2", NotifierList::Informational, 1, complete);
    let registry = Registry::<4>::new(EscalationPolicy::NextNotifier);
    registry.register(&R1).unwrap();
    registry.register(&R2).unwrap();
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "test");
    expect_panic(|| {
        let mut recorder = |_: &crashkit_notifiers::NotifierReport| panic!("recorder bug");
        let _ = registry.run_list(NotifierList::Informational, &inputs, &mut recorder);
    });
    assert!(matches!(
        registry.cursor(),
        Cursor::Between { after: Some(p), .. } if p.priority == 2
    ));
    let mut reports = Reports::default();
    registry.resume(&inputs, &mut reports);
    assert_eq!(reports.outcomes(), [("r2", Ran)], "r1 is not run again");
}
