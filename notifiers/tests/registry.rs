//! The registry from normal context: order within a list, separation of the
//! lists, capacity and every error, and a writer frozen mid-edit.

mod common;

use common::{Reports, TestPlatform};
use crashkit_notifiers::{
    BodyResult, Cursor, EscalationPolicy, Notifier, NotifierList, NotifierOutcome, PanicContext,
    PanicInputs, RegisterNotifierError, Registry, RunError,
};

fn complete(_: &PanicContext<'_>) -> BodyResult {
    BodyResult::Complete
}

fn notifier(name: &'static str, list: NotifierList, priority: i32) -> &'static Notifier {
    Box::leak(Box::new(Notifier::new(name, list, priority, complete)))
}

fn run(registry: &Registry<16>, list: NotifierList) -> Reports {
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "test panic");
    let mut reports = Reports::default();
    let summary = registry
        .run_list(list, &inputs, &mut reports)
        .expect("no run in progress");
    assert_eq!(summary.list, list);
    assert_eq!(summary.total() as usize, reports.0.len());
    assert!(!summary.writer_mid_edit && !summary.truncated);
    reports
}

#[test]
fn higher_priority_first_ties_in_registration_order() {
    let registry = Registry::<16>::new(EscalationPolicy::NextNotifier);
    let list = NotifierList::Informational;
    for (name, priority) in [
        ("low-a", -5),
        ("mid-a", 0),
        ("high", 100),
        ("mid-b", 0),
        ("low-b", -5),
        ("mid-c", 0),
        ("max", i32::MAX),
        ("min", i32::MIN),
    ] {
        registry.register(notifier(name, list, priority)).unwrap();
    }
    let reports = run(&registry, list);
    assert_eq!(
        reports.names(),
        [
            "max", "high", "mid-a", "mid-b", "mid-c", "low-a", "low-b", "min"
        ]
    );
    assert!(
        reports
            .0
            .iter()
            .all(|report| report.outcome == NotifierOutcome::Ran && report.list == list)
    );
    let sequences: Vec<u64> = reports.0.iter().map(|report| report.sequence).collect();
    assert_eq!(
        sequences,
        [7, 3, 2, 4, 6, 1, 5, 8],
        "registration numbers are the tie-breaker"
    );
}

#[test]
fn a_notifier_registered_again_goes_to_the_back_of_its_priority() {
    let registry = Registry::<16>::new(EscalationPolicy::NextNotifier);
    let list = NotifierList::PreDump;
    let a = notifier("a", list, 1);
    let b = notifier("b", list, 1);
    let c = notifier("c", list, 1);
    for n in [a, b, c] {
        registry.register(n).unwrap();
    }
    registry.unregister(a).unwrap();
    registry.register(a).unwrap();
    assert_eq!(run(&registry, list).names(), ["b", "c", "a"]);
}

#[test]
fn lists_are_separate() {
    let registry = Registry::<16>::new(EscalationPolicy::NextNotifier);
    for list in NotifierList::ALL {
        registry.register(notifier(list.name(), list, 0)).unwrap();
        registry
            .register(notifier("shared-name", list, -1))
            .unwrap();
    }
    for list in NotifierList::ALL {
        let reports = run(&registry, list);
        assert_eq!(reports.names(), [list.name(), "shared-name"]);
        assert!(reports.0.iter().all(|report| report.list == list));
    }
    let empty = Registry::<16>::new(EscalationPolicy::NextNotifier);
    assert!(run(&empty, NotifierList::Hypervisor).0.is_empty());
}

#[test]
fn capacity_and_every_error() {
    let registry = Registry::<3>::new(EscalationPolicy::NextNotifier);
    assert_eq!(registry.capacity(), 3);
    assert!(registry.is_empty());
    let a = notifier("a", NotifierList::Hypervisor, 0);
    let b = notifier("b", NotifierList::PostDump, 0);
    let c = notifier("c", NotifierList::PostDump, 0);
    let d = notifier("d", NotifierList::PostDump, 0);
    assert_eq!(
        registry.unregister(a),
        Err(RegisterNotifierError::NotRegistered)
    );
    registry.register(a).unwrap();
    assert_eq!(
        registry.register(a),
        Err(RegisterNotifierError::AlreadyRegistered)
    );
    registry.register(b).unwrap();
    registry.register(c).unwrap();
    assert_eq!(registry.len(), 3);
    assert_eq!(registry.register(d), Err(RegisterNotifierError::Full));
    assert_eq!(
        registry.register(a),
        Err(RegisterNotifierError::AlreadyRegistered),
        "duplicate is reported even when full"
    );
    registry.unregister(b).unwrap();
    assert_eq!(
        registry.unregister(b),
        Err(RegisterNotifierError::NotRegistered)
    );
    assert!(!registry.is_registered(b));
    registry.register(d).unwrap();
    assert!(registry.is_registered(d));
    assert_eq!(registry.len(), 3);
    assert_eq!(registry.try_register(b), Err(RegisterNotifierError::Full));
}

#[test]
fn run_list_refuses_while_a_run_is_unfinished() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    static REGISTRY: Registry<4> = Registry::new(EscalationPolicy::NextNotifier);
    fn explode(_: &PanicContext<'_>) -> BodyResult {
        panic!("notifier panics");
    }
    static BAD: Notifier = Notifier::new("bad", NotifierList::Hypervisor, 0, explode);
    REGISTRY.register(&BAD).unwrap();
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "test panic");
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _ = REGISTRY.run_list(NotifierList::Hypervisor, &inputs, &mut Reports::default());
    }));
    assert!(unwound.is_err());
    let refused = REGISTRY.run_list(
        NotifierList::Informational,
        &inputs,
        &mut Reports::default(),
    );
    assert!(matches!(
        refused,
        Err(RunError::RunInProgress {
            cursor: Cursor::Running {
                list: NotifierList::Hypervisor,
                ..
            }
        })
    ));
}

static FIRST: Notifier = Notifier::new("first", NotifierList::Informational, 0, complete);
static SECOND: Notifier = Notifier::new("second", NotifierList::PreDump, 0, complete);
/// Built with two notifiers in a `static`, as `crashkit::kernel!` builds
/// the console's.
static BUILT_WITH_TWO: Registry<16> =
    Registry::with_notifiers(EscalationPolicy::NextNotifier, &[&FIRST, &SECOND]);

#[test]
fn notifiers_given_at_construction_are_registered_from_the_start() {
    let registry = &BUILT_WITH_TWO;
    assert_eq!(registry.len(), 2);
    let reports = run(registry, NotifierList::Informational);
    assert_eq!(reports.names(), ["first"]);
    assert_eq!(reports.0[0].sequence, 1);
    assert_eq!(run(registry, NotifierList::PreDump).names(), ["second"]);
    // They are ordinary registrations: a second registration is refused,
    // numbering goes on after them, and they can be removed.
    assert_eq!(
        registry.register(&FIRST),
        Err(RegisterNotifierError::AlreadyRegistered)
    );
    let late = notifier("late", NotifierList::Informational, 0);
    registry.register(late).unwrap();
    let reports = run(registry, NotifierList::Informational);
    assert_eq!(reports.names(), ["first", "late"]);
    assert_eq!(reports.0[1].sequence, 3);
    registry.unregister(&FIRST).unwrap();
    assert_eq!(run(registry, NotifierList::Informational).names(), ["late"]);
}
