//! Walks on one thread while other threads register and unregister: every
//! notifier runs at most once per walk, and none registered for the whole
//! walk is lost or reordered. Bounded by a deadline.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::TestPlatform;
use crashkit_notifiers::{
    BodyResult, EscalationPolicy, Notifier, NotifierList, NotifierReport, PanicContext,
    PanicInputs, Registry,
};

fn complete(_: &PanicContext<'_>) -> BodyResult {
    BodyResult::Complete
}

const LIST: NotifierList = NotifierList::Informational;
const STEADY: [&str; 4] = ["s0", "s1", "s2", "s3"];

#[test]
fn walks_under_concurrent_registration_run_each_notifier_at_most_once() {
    static REGISTRY: Registry<16> = Registry::new(EscalationPolicy::NextNotifier);
    static STOP: AtomicBool = AtomicBool::new(false);
    static EDITS: AtomicU64 = AtomicU64::new(0);
    // Steady notifiers, registered for the whole test (run order s0..s3).
    static S: [Notifier; 4] = [
        Notifier::new("s0", LIST, 30, complete),
        Notifier::new("s1", LIST, 20, complete),
        Notifier::new("s2", LIST, 20, complete),
        Notifier::new("s3", LIST, -10, complete),
    ];
    for steady in &S {
        REGISTRY.register(steady).unwrap();
    }
    // Churn notifiers in the same list, priorities interleaved with the
    // steady ones, plus some in another list.
    static C: [Notifier; 8] = [
        Notifier::new("c0", LIST, 40, complete),
        Notifier::new("c1", LIST, 30, complete),
        Notifier::new("c2", LIST, 20, complete),
        Notifier::new("c3", LIST, 0, complete),
        Notifier::new("c4", LIST, -10, complete),
        Notifier::new("c5", LIST, -20, complete),
        Notifier::new("c6", NotifierList::PreDump, 0, complete),
        Notifier::new("c7", NotifierList::PreDump, 0, complete),
    ];
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            std::thread::spawn(move || {
                let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ writer;
                while !STOP.load(SeqCst) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let churn = &C[(state % 8) as usize];
                    // Errors are expected (the other writer has it, or is
                    // editing); only successes are counted.
                    if REGISTRY.register(churn).is_ok() {
                        EDITS.fetch_add(1, SeqCst);
                    }
                    if state & 0x10 == 0 {
                        std::thread::yield_now();
                    }
                    if REGISTRY.unregister(churn).is_ok() {
                        EDITS.fetch_add(1, SeqCst);
                    }
                }
            })
        })
        .collect();

    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "stress");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut walks = 0u32;
    let mut changed = 0u32;
    let mut churn_runs = 0u32;
    while walks < 3_000 && Instant::now() < deadline {
        let mut names: Vec<&'static str> = Vec::with_capacity(16);
        let mut recorder = |report: &NotifierReport| names.push(report.name);
        let summary = REGISTRY.run_list(LIST, &inputs, &mut recorder).unwrap();
        walks += 1;
        changed += u32::from(summary.changed_during_walk);
        assert!(!summary.truncated);
        let steady: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| name.starts_with('s'))
            .collect();
        assert_eq!(steady, STEADY, "walk {walks}: {names:?}");
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            names.len(),
            "walk {walks} ran one twice: {names:?}"
        );
        assert!(!names.contains(&"c6") && !names.contains(&"c7"));
        churn_runs += u32::try_from(names.len() - STEADY.len()).unwrap();
    }
    STOP.store(true, SeqCst);
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(walks >= 100, "only {walks} walks before the deadline");
    assert!(EDITS.load(SeqCst) > 0, "the writers never got in");
    eprintln!(
        "{walks} walks, {changed} overlapped an edit, {churn_runs} churn runs, {} edits",
        EDITS.load(SeqCst)
    );
}
