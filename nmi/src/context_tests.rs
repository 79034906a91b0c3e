//! Tests of the context tracker, including the nesting-injection proof.
//!
//! The proof: for every starting depth `0..=MAX_NESTING`, for both operations
//! (enter and exit) and for every step of the operation, run the operation
//! with a nested enter/exit pair injected at that step, then check that
//! (1) the nested pair left depth and kinds exactly as it found them,
//! (2) the nested pair saw a consistent state (its level is one more than the
//!     depth it interrupted, or it overflowed at depth 15),
//! (3) the interrupted operation ends in the state it would reach without
//!     the injection, and overflows are counted, not wrapped.
//! The harness runs against any [`UnderTest`] implementation; two deliberately
//! broken trackers prove it can fail.

use super::*;
use crate::test_hook::{self, HookPoint};
use std::cell::Cell;
use std::rc::Rc;
use std::vec::Vec;

/// What the harness needs from a tracker design.
trait UnderTest {
    fn new() -> Self;
    /// Enter; `Ok(level)` or `Err(())` on overflow. The implementation must
    /// leave the context entered (no guard) so the harness controls exits.
    fn enter(&self, kind: ContextKind) -> Result<u8, ()>;
    fn exit(&self, level: u8, kind: ContextKind);
    fn depth(&self) -> u8;
    fn kind_at(&self, level: u8) -> Option<ContextKind>;
    fn overflows(&self) -> u64;
}

impl UnderTest for ContextTracker {
    fn new() -> Self {
        ContextTracker::new()
    }
    fn enter(&self, kind: ContextKind) -> Result<u8, ()> {
        match ContextTracker::enter(self, kind) {
            Ok(guard) => {
                let level = guard.level();
                core::mem::forget(guard);
                Ok(level)
            }
            Err(_) => Err(()),
        }
    }
    fn exit(&self, level: u8, kind: ContextKind) {
        ContextTracker::exit(self, level, kind)
    }
    fn depth(&self) -> u8 {
        self.snapshot().depth()
    }
    fn kind_at(&self, level: u8) -> Option<ContextKind> {
        self.snapshot().kind_at(level)
    }
    fn overflows(&self) -> u64 {
        self.snapshot().overflows()
    }
}

/// The full observable state: depth and the kind of every active level.
fn state<T: UnderTest>(tracker: &T) -> (u8, Vec<Option<ContextKind>>) {
    let depth = tracker.depth();
    let kinds = (1..=depth).map(|level| tracker.kind_at(level)).collect();
    (depth, kinds)
}

const KINDS: [ContextKind; 3] = [
    ContextKind::Nmi,
    ContextKind::MachineCheck,
    ContextKind::Debug,
];

fn kind_for_level(level: u8) -> ContextKind {
    KINDS[usize::from(level) % KINDS.len()]
}

#[derive(Clone, Copy, Debug)]
enum Operation {
    Enter,
    Exit,
}

const ENTER_STEPS: [Step; 4] = [
    Step::EnterBegin,
    Step::EnterLoaded,
    Step::EnterComputed,
    Step::EnterStored,
];
const EXIT_STEPS: [Step; 4] = [
    Step::ExitBegin,
    Step::ExitLoaded,
    Step::ExitComputed,
    Step::ExitStored,
];

/// Runs the whole injection matrix; returns the first violation found.
fn inject_everywhere<T: UnderTest + 'static>() -> Result<usize, String> {
    let mut cases = 0;
    for start_depth in 0..=MAX_NESTING {
        for operation in [Operation::Enter, Operation::Exit] {
            if matches!(operation, Operation::Exit) && start_depth == 0 {
                continue; // nothing to exit
            }
            let steps = match operation {
                Operation::Enter => ENTER_STEPS,
                Operation::Exit => EXIT_STEPS,
            };
            for at in steps {
                for nested_kind in KINDS {
                    inject_one::<T>(start_depth, operation, at, nested_kind)
                        .map_err(|e| format!("depth {start_depth}, {operation:?} at {at:?}, nested {nested_kind:?}: {e}"))?;
                    cases += 1;
                }
            }
        }
    }
    Ok(cases)
}

fn inject_one<T: UnderTest + 'static>(
    start_depth: u8,
    operation: Operation,
    at: Step,
    nested_kind: ContextKind,
) -> Result<(), String> {
    let tracker: &'static T = Box::leak(Box::new(T::new()));
    for level in 1..=start_depth {
        let entered = tracker.enter(kind_for_level(level));
        if entered != Ok(level) {
            test_hook::clear();
            return Err(format!("setup enter of level {level} returned {entered:?}"));
        }
    }
    let before = state(tracker);
    let overflows_before = tracker.overflows();

    let fired = Rc::new(Cell::new(false));
    let nested_overflowed = Rc::new(Cell::new(false));
    let violation: Rc<Cell<Option<&'static str>>> = Rc::new(Cell::new(None));
    {
        let (fired, nested_overflowed, violation) =
            (fired.clone(), nested_overflowed.clone(), violation.clone());
        test_hook::set(move |now| {
            if now != HookPoint::Context(at) || fired.get() {
                return;
            }
            fired.set(true);
            let found = state(tracker);
            match tracker.enter(nested_kind) {
                Ok(level) => {
                    if level != found.0 + 1 {
                        violation.set(Some("nested enter got the wrong level"));
                    }
                    if tracker.kind_at(level) != Some(nested_kind) {
                        violation.set(Some("nested enter did not record its kind"));
                    }
                    tracker.exit(level, nested_kind);
                }
                Err(()) => {
                    if found.0 != MAX_NESTING {
                        violation.set(Some("nested enter overflowed below the limit"));
                    }
                    nested_overflowed.set(true);
                }
            }
            if state(tracker) != found {
                violation.set(Some("nested pair did not leave the state as it found it"));
            }
        });
    }

    let outer_kind = kind_for_level(start_depth + 1);
    let outer = match operation {
        Operation::Enter => Some(tracker.enter(outer_kind)),
        Operation::Exit => {
            tracker.exit(start_depth, kind_for_level(start_depth));
            None
        }
    };
    test_hook::clear();

    if !fired.get() {
        return Err("the injection point was never reached".into());
    }
    if let Some(v) = violation.get() {
        return Err(v.into());
    }
    let mut expected = before.clone();
    let mut expected_overflows = overflows_before + u64::from(nested_overflowed.get());
    match (operation, outer) {
        (Operation::Enter, Some(result)) => {
            if start_depth == MAX_NESTING {
                if result.is_ok() {
                    return Err("enter beyond the limit succeeded (silent wrap?)".into());
                }
                expected_overflows += 1;
            } else {
                if result != Ok(start_depth + 1) {
                    return Err(format!("outer enter returned {result:?}"));
                }
                expected.0 += 1;
                expected.1.push(Some(outer_kind));
            }
        }
        _ => {
            expected.0 -= 1;
            expected.1.pop();
        }
    }
    let after = state(tracker);
    if after != expected {
        return Err(format!("final state {after:?}, expected {expected:?}"));
    }
    if tracker.overflows() != expected_overflows {
        return Err(format!(
            "overflow count {}, expected {expected_overflows}",
            tracker.overflows()
        ));
    }
    Ok(())
}

#[test]
fn nested_pair_at_every_step_and_depth_leaves_state_intact() {
    let cases = inject_everywhere::<ContextTracker>().unwrap_or_else(|e| panic!("{e}"));
    // 16 depths x 4 enter steps + 15 depths x 4 exit steps, x 3 nested kinds.
    assert_eq!(cases, (16 * 4 + 15 * 4) * 3);
}

/// A plausible but broken design: the kind stack lives in its own array and
/// is written before the depth is published, so a nested entry arriving
/// between the two stores overwrites the outer entry's kind.
struct SplitKindTracker {
    depth: core::sync::atomic::AtomicU8,
    kinds: [core::sync::atomic::AtomicU8; 16],
    overflows: core::sync::atomic::AtomicU64,
}

impl UnderTest for SplitKindTracker {
    fn new() -> Self {
        Self {
            depth: Default::default(),
            kinds: Default::default(),
            overflows: Default::default(),
        }
    }
    fn enter(&self, kind: ContextKind) -> Result<u8, ()> {
        step(Step::EnterBegin);
        let depth = self.depth.load(Ordering::Relaxed);
        step(Step::EnterLoaded);
        if depth >= MAX_NESTING {
            self.overflows.fetch_add(1, Ordering::Relaxed);
            step(Step::EnterComputed);
            step(Step::EnterStored);
            return Err(());
        }
        self.kinds[usize::from(depth)].store(kind as u8, Ordering::Relaxed);
        step(Step::EnterComputed);
        self.depth.store(depth + 1, Ordering::Relaxed);
        step(Step::EnterStored);
        Ok(depth + 1)
    }
    fn exit(&self, _level: u8, _kind: ContextKind) {
        step(Step::ExitBegin);
        let depth = self.depth.load(Ordering::Relaxed);
        step(Step::ExitLoaded);
        step(Step::ExitComputed);
        self.depth.store(depth - 1, Ordering::Relaxed);
        step(Step::ExitStored);
    }
    fn depth(&self) -> u8 {
        self.depth.load(Ordering::Relaxed)
    }
    fn kind_at(&self, level: u8) -> Option<ContextKind> {
        if level == 0 || level > self.depth() {
            return None;
        }
        ContextKind::from_bits(u64::from(
            self.kinds[usize::from(level - 1)].load(Ordering::Relaxed),
        ))
    }
    fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }
}

/// Another broken design: one word, but the depth wraps at 16 instead of
/// reporting overflow.
struct WrappingTracker(ContextTracker);

impl UnderTest for WrappingTracker {
    fn new() -> Self {
        Self(ContextTracker::new())
    }
    fn enter(&self, kind: ContextKind) -> Result<u8, ()> {
        step(Step::EnterBegin);
        let word = self.0.word.load(Ordering::Relaxed);
        step(Step::EnterLoaded);
        let level = (((word & DEPTH_MASK) + 1) & DEPTH_MASK) as u8;
        let new = (word & !DEPTH_MASK) | u64::from(level);
        let new = if level == 0 {
            new
        } else {
            let shift = kind_shift(level);
            (new & !(KIND_MASK << shift)) | ((kind as u64) << shift)
        };
        step(Step::EnterComputed);
        self.0.word.store(new, Ordering::Relaxed);
        step(Step::EnterStored);
        Ok(level)
    }
    fn exit(&self, level: u8, kind: ContextKind) {
        self.0.exit(level, kind)
    }
    fn depth(&self) -> u8 {
        self.0.depth()
    }
    fn kind_at(&self, level: u8) -> Option<ContextKind> {
        self.0.snapshot().kind_at(level)
    }
    fn overflows(&self) -> u64 {
        self.0.snapshot().overflows()
    }
}

/// The regression that the harness caught in development: the overflow
/// count kept in the nesting word. A nested overflowing enter between an outer
/// overflowing enter's load and store loses one count.
struct OverflowInWordTracker(AtomicU64);

const WORD_OVERFLOW_SHIFT: u32 = 34;

impl OverflowInWordTracker {
    fn decode(&self) -> ContextSnapshot {
        let word = self.0.load(Ordering::Relaxed);
        ContextSnapshot {
            word: word & ((1 << WORD_OVERFLOW_SHIFT) - 1),
            overflows: word >> WORD_OVERFLOW_SHIFT,
            unbalanced: false,
        }
    }
}

impl UnderTest for OverflowInWordTracker {
    fn new() -> Self {
        Self(AtomicU64::new(0))
    }
    fn enter(&self, kind: ContextKind) -> Result<u8, ()> {
        step(Step::EnterBegin);
        let word = self.0.load(Ordering::Relaxed);
        step(Step::EnterLoaded);
        let depth = (word & DEPTH_MASK) as u8;
        let (new, result) = if depth >= MAX_NESTING {
            (word + (1 << WORD_OVERFLOW_SHIFT), Err(()))
        } else {
            let level = depth + 1;
            let new =
                (word & !DEPTH_MASK) | u64::from(level) | ((kind as u64) << kind_shift(level));
            (new, Ok(level))
        };
        step(Step::EnterComputed);
        self.0.store(new, Ordering::Relaxed);
        step(Step::EnterStored);
        result
    }
    fn exit(&self, _level: u8, _kind: ContextKind) {
        step(Step::ExitBegin);
        let word = self.0.load(Ordering::Relaxed);
        step(Step::ExitLoaded);
        let depth = word & DEPTH_MASK;
        let new = (word & !DEPTH_MASK & !(KIND_MASK << kind_shift(depth as u8))) | (depth - 1);
        step(Step::ExitComputed);
        self.0.store(new, Ordering::Relaxed);
        step(Step::ExitStored);
    }
    fn depth(&self) -> u8 {
        self.decode().depth()
    }
    fn kind_at(&self, level: u8) -> Option<ContextKind> {
        self.decode().kind_at(level)
    }
    fn overflows(&self) -> u64 {
        self.decode().overflows()
    }
}

#[test]
fn harness_catches_an_overflow_count_inside_the_word() {
    let err = inject_everywhere::<OverflowInWordTracker>().expect_err("broken design passed");
    assert!(
        err.contains("overflow count 1, expected 2"),
        "unexpected first failure: {err}"
    );
}

#[test]
fn harness_catches_a_kind_stack_outside_the_word() {
    let err = inject_everywhere::<SplitKindTracker>().expect_err("broken design passed");
    assert!(
        err.contains("EnterComputed"),
        "unexpected first failure: {err}"
    );
}

#[test]
fn harness_catches_a_depth_that_wraps() {
    let err = inject_everywhere::<WrappingTracker>().expect_err("broken design passed");
    // First caught where a nested enter wraps the depth to 0.
    assert!(
        err.contains("depth 14, Enter at EnterStored"),
        "unexpected first failure: {err}"
    );
}

#[test]
fn guards_nest_and_report_outermost() {
    let tracker = ContextTracker::new();
    assert!(!tracker.in_nmi());
    let nmi = tracker.enter(ContextKind::Nmi).expect("enter");
    assert!(nmi.is_outermost());
    assert!(tracker.in_nmi());
    {
        let mce = tracker.enter(ContextKind::MachineCheck).expect("enter");
        assert!(!mce.is_outermost());
        assert_eq!(mce.level(), 2);
        let snap = tracker.snapshot();
        assert_eq!(snap.innermost(), Some(ContextKind::MachineCheck));
        assert!(snap.contains(ContextKind::Nmi));
        assert!(!snap.contains(ContextKind::Debug));
    }
    assert_eq!(tracker.depth(), 1);
    drop(nmi);
    assert_eq!(tracker.depth(), 0);
    assert!(!tracker.snapshot().unbalanced());
}

#[test]
fn overflow_is_reported_and_recoverable() {
    let tracker = ContextTracker::new();
    let mut guards = Vec::new();
    for _ in 0..MAX_NESTING {
        guards.push(tracker.enter(ContextKind::Debug).expect("below the limit"));
    }
    for _ in 0..3 {
        assert_eq!(
            tracker.enter(ContextKind::Nmi).map(|_| ()),
            Err(NestingOverflow {
                kind: ContextKind::Nmi
            })
        );
    }
    assert_eq!(tracker.depth(), MAX_NESTING);
    assert_eq!(tracker.snapshot().overflows(), 3);
    while let Some(guard) = guards.pop() {
        drop(guard);
    }
    assert_eq!(tracker.depth(), 0);
    assert!(tracker.enter(ContextKind::Nmi).is_ok());
}

#[test]
fn out_of_order_exit_is_flagged_and_depth_stays_bounded() {
    let tracker = ContextTracker::new();
    let outer = tracker.enter(ContextKind::Nmi).expect("enter");
    let inner = tracker.enter(ContextKind::Debug).expect("enter");
    drop(outer); // wrong order
    assert!(tracker.snapshot().unbalanced());
    assert_eq!(tracker.depth(), 1);
    drop(inner);
    assert_eq!(tracker.depth(), 0);
}
