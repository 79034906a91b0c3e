//! Step-injection tests of the registry: a walk at every step of every
//! writer (the panic path interrupting a register or unregister on its own
//! CPU, which then stays frozen), and a whole writer operation at every step
//! of a walk (another CPU editing while the walk reads), plus the resume's
//! no-progress guard.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::vec::Vec;

use crashkit_nmi::{CpuIndex, NmiSendError, Platform};

use crate::test_hook::{self, HookPoint};
use crate::{
    BodyResult, Cursor, EscalationPolicy, ListSummary, Notifier, NotifierList, NotifierRecorder,
    NotifierReport, PanicContext, PanicInputs, RegisterNotifierError, Registry, Resumed,
};

struct TestPlatform(AtomicU64);

impl Platform for TestPlatform {
    fn current_cpu(&self) -> CpuIndex {
        CpuIndex(0)
    }
    fn cpu_count(&self) -> usize {
        1
    }
    fn relax(&self) {}
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn send_nmi(&self, _: CpuIndex) -> Result<(), NmiSendError> {
        Err(NmiSendError::Unavailable)
    }
    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError> {
        Err(NmiSendError::Unavailable)
    }
    fn park(&self) -> ! {
        loop {
            std::thread::park();
        }
    }

    fn disable_interrupts(&self) {}
}

static PLATFORM: TestPlatform = TestPlatform(AtomicU64::new(0));

std::thread_local! {
    /// Names of the bodies run on this thread (tests run on their own
    /// threads, so they do not mix).
    static TRACE: RefCell<Vec<(&'static str, u64)>> = const { RefCell::new(Vec::new()) };
}

fn traced(ctx: &PanicContext<'_>) -> BodyResult {
    // The message carries nothing; the notifier's name is found by the
    // recorder. Bodies only need to prove they ran: count by list.
    let _ = ctx.list();
    BodyResult::Complete
}

struct Trace;
impl NotifierRecorder for Trace {
    fn record(&mut self, report: &NotifierReport) {
        TRACE.with(|trace| trace.borrow_mut().push((report.name, report.sequence)));
    }
}

/// The names run since the last call, in order.
fn take_trace() -> Vec<&'static str> {
    take_registrations()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The (name, registration number) pairs run since the last call.
fn take_registrations() -> Vec<(&'static str, u64)> {
    TRACE.with(|trace| core::mem::take(&mut *trace.borrow_mut()))
}

/// Every registration the walk reported is one that existed before or
/// after the edit: no torn (notifier, number) pair.
fn assert_real_registrations(
    reported: &[(&str, u64)],
    before: &[(&str, u64)],
    after: &[(&str, u64)],
    case: &str,
) {
    for pair in reported {
        assert!(
            before.contains(pair) || after.contains(pair),
            "{case}: {pair:?} is not a registration ({before:?} / {after:?})"
        );
    }
}

const LIST: NotifierList = NotifierList::Informational;
static P1: Notifier = Notifier::new("p1", LIST, 5, traced);
static P2: Notifier = Notifier::new("p2", LIST, 0, traced);
static P3: Notifier = Notifier::new("p3", LIST, 0, traced);
static OTHER: Notifier = Notifier::new("other", NotifierList::PostDump, 9, traced);
static E: Notifier = Notifier::new("e", LIST, 0, traced);
static F: Notifier = Notifier::new("f", LIST, 3, traced);

type Reg = Registry<6>;

fn walk(registry: &Reg) -> ListSummary {
    let inputs = PanicInputs::new(&PLATFORM, "injected");
    registry
        .run_list(LIST, &inputs, &mut Trace)
        .expect("no run in progress")
}

fn is_writer_point(point: HookPoint) -> bool {
    !matches!(
        point,
        HookPoint::SlotNumberRead(_) | HookPoint::SlotPointerRead(_)
    )
}

/// How often each name occurs in `trace`.
fn count(trace: &[&str], name: &str) -> usize {
    trace.iter().filter(|entry| **entry == name).count()
}

/// `trace` without the names in `skip`.
fn without<'a>(trace: &[&'a str], skip: &[&str]) -> Vec<&'a str> {
    trace
        .iter()
        .copied()
        .filter(|name| !skip.contains(name))
        .collect()
}

/// A fresh registry holding P1, P2, OTHER, (E if `with_e`), P3.
fn setup(with_e: bool) -> Reg {
    let registry = Reg::new(EscalationPolicy::NextNotifier);
    registry.register(&P1).unwrap();
    registry.register(&P2).unwrap();
    registry.register(&OTHER).unwrap();
    if with_e {
        registry.register(&E).unwrap();
    }
    registry.register(&P3).unwrap();
    registry
}

#[derive(Clone, Copy, Debug)]
enum Edit {
    RegisterE,
    UnregisterE,
    /// E leaves, F takes its slot (a new number in a reused slot).
    ReplaceEWithF,
    /// P2 leaves and comes back (same notifier, new number, new place).
    ReregisterP2,
}

impl Edit {
    const ALL: [Edit; 4] = [
        Edit::RegisterE,
        Edit::UnregisterE,
        Edit::ReplaceEWithF,
        Edit::ReregisterP2,
    ];

    fn needs_e(self) -> bool {
        matches!(self, Edit::UnregisterE | Edit::ReplaceEWithF)
    }

    /// Registered before the edit, in run order.
    fn before(self) -> &'static [&'static str] {
        if self.needs_e() {
            &["p1", "p2", "e", "p3"]
        } else {
            &["p1", "p2", "p3"]
        }
    }

    fn apply(self, registry: &Reg) {
        match self {
            Edit::RegisterE => registry.register(&E).unwrap(),
            Edit::UnregisterE => registry.unregister(&E).unwrap(),
            Edit::ReplaceEWithF => {
                registry.unregister(&E).unwrap();
                registry.register(&F).unwrap();
            }
            Edit::ReregisterP2 => {
                registry.unregister(&P2).unwrap();
                registry.register(&P2).unwrap();
            }
        }
    }

    /// The notifiers this edit touches (they may or may not run).
    fn touched(self) -> &'static [&'static str] {
        match self {
            Edit::RegisterE | Edit::UnregisterE => &["e"],
            Edit::ReplaceEWithF => &["e", "f"],
            Edit::ReregisterP2 => &["p2"],
        }
    }
}

/// The panic path interrupts a writer on its own CPU at each of its steps
/// and walks the list while the writer stays frozen there.
#[test]
fn walk_at_every_writer_step_completes_and_reports_the_writer() {
    let mut cases = 0;
    for edit in Edit::ALL {
        for target in 0.. {
            let registry: &'static Reg = Box::leak(Box::new(setup(edit.needs_e())));
            let mut seen = 0;
            let summary: &'static RefCell<Option<ListSummary>> =
                Box::leak(Box::new(RefCell::new(None)));
            test_hook::set(move |point| {
                if !is_writer_point(point) {
                    return;
                }
                if seen == target {
                    // A writer from this "CPU" cannot get in: the frozen one
                    // holds the epoch.
                    assert_eq!(registry.try_register(&F), Err(RegisterNotifierError::Busy));
                    *summary.borrow_mut() = Some(walk(registry));
                }
                seen += 1;
            });
            edit.apply(registry);
            test_hook::clear();
            let Some(summary) = summary.borrow_mut().take() else {
                break; // `target` is past the last step
            };
            let trace = take_trace();
            assert!(summary.writer_mid_edit, "{edit:?} step {target}");
            let touched = edit.touched();
            let expected: Vec<&str> = without(edit.before(), touched);
            assert_eq!(without(&trace, touched), expected, "{edit:?} step {target}");
            for name in ["p1", "p2", "p3", "e", "f"] {
                assert!(
                    count(&trace, name) <= 1,
                    "{name} twice: {edit:?} step {target}"
                );
            }
            assert!(!trace.contains(&"other"), "lists stay separate");
            // The edit finished after the walk: the registry is coherent.
            let after = walk(registry);
            assert!(!after.writer_mid_edit && !after.changed_during_walk);
            take_trace();
            cases += 1;
        }
    }
    assert!(cases >= 16, "every edit has several steps ({cases} cases)");
}

/// Another CPU performs a whole edit at each step of the walk's slot reads.
#[test]
fn edit_at_every_walk_step_runs_nothing_twice_and_loses_no_steady_notifier() {
    let mut cases = 0;
    for edit in Edit::ALL {
        for target in 0.. {
            let registry: &'static Reg = Box::leak(Box::new(setup(edit.needs_e())));
            walk(registry);
            let before = take_registrations();
            let mut seen = 0;
            let fired: &'static RefCell<bool> = Box::leak(Box::new(RefCell::new(false)));
            test_hook::set(move |point| {
                if is_writer_point(point) {
                    return;
                }
                if seen == target {
                    edit.apply(registry);
                    *fired.borrow_mut() = true;
                }
                seen += 1;
            });
            let summary = walk(registry);
            test_hook::clear();
            let reported = take_registrations();
            let trace: Vec<&str> = reported.iter().map(|(name, _)| *name).collect();
            if !*fired.borrow() {
                break;
            }
            walk(registry);
            let after = take_registrations();
            assert_real_registrations(
                &reported,
                &before,
                &after,
                &format!("{edit:?} at read {target}"),
            );
            let touched = edit.touched();
            let steady: Vec<&str> = without(edit.before(), touched);
            assert_eq!(
                without(&trace, touched),
                steady,
                "{edit:?} at read {target}: {trace:?}"
            );
            for name in ["p1", "p2", "p3", "e", "f"] {
                assert!(
                    count(&trace, name) <= 1,
                    "{name} twice: {edit:?} at read {target}: {trace:?}"
                );
            }
            assert!(summary.changed_during_walk);
            assert!(!summary.truncated);
            cases += 1;
        }
    }
    assert!(cases >= 16, "{cases} cases");
}

/// A resume that finds the cursor where the previous resume found it (the
/// runner itself panics there) gives the list up instead of looping.
#[test]
fn resume_without_progress_gives_the_list_up() {
    let registry = setup(false);
    let inputs = PanicInputs::new(&PLATFORM, "injected");
    assert_eq!(registry.resume(&inputs, &mut Trace), Resumed::Nothing);
    registry.cursor.claim(LIST).unwrap();
    // First re-entry at `Between(start)`: pretend it panicked before moving
    // the cursor, by marking it as started and restoring the cursor.
    registry
        .resumed_from
        .store(registry.cursor.word(), Ordering::Relaxed);
    assert_eq!(
        registry.resume(&inputs, &mut Trace),
        Resumed::GaveUp { list: LIST }
    );
    assert!(take_trace().is_empty());
    assert_eq!(registry.cursor(), Cursor::Finished { list: LIST });
    // A normal run after that works.
    walk(&registry);
    assert_eq!(take_trace(), ["p1", "p2", "p3"]);
}
