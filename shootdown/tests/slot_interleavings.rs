//! The shootdown's per-CPU protocol on one `CpuSlot`: the owner's
//! transitions (`mark_nmi_sent`, resends, `mark_unresponsive`,
//! `mark_absent`) against the target's `record_stop`, in every order.
//!
//! Exhaustive at the granularity of whole operations: every interleaving of
//! the owner's sequence with the target's stop is run on a fresh slot and
//! checked, step by step, against the transition table of
//! `docs/shootdown.md` (written out again below as `expected`): each
//! operation's answer, the state after it, and at the end the registers,
//! stop path, NMI count and first-NMI time.
//!
//! Inside `record_stop` there is one more race (the owner's CAS between the
//! target's load of the state and its publishing CAS); the slot cannot be
//! paused there from outside the record crate, so the last test races the
//! two sides on real threads many times and checks the same end results.
//! A loom model is not practical: `CpuSlot` uses `core` atomics, which loom
//! cannot schedule.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use crashkit_nmi::{ControlRegisters, RegisterFrame};
use crashkit_record::{CpuSlot, CpuState, StopPath, StopRefused};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Owner: first stop NMI (at time 10).
    MarkNmiSent,
    /// Owner: one more NMI.
    Resend,
    /// Owner: the deadline passed.
    MarkUnresponsive,
    /// Owner: the platform has no such CPU.
    MarkAbsent,
    /// Target: record itself and stop (at time 20).
    Stop(StopPath),
}

/// What an operation answered: `bool` for the owner's marks, the
/// `record_stop` result for the target, nothing for a resend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Moved(bool),
    Stop(Result<(), StopRefused>),
    Counted,
}

/// The transition table: (state, step) -> (answer, next state).
fn expected(state: CpuState, step: Step) -> (Answer, CpuState) {
    use CpuState::*;
    match (step, state) {
        (Step::MarkNmiSent, Running) => (Answer::Moved(true), NmiSent),
        (Step::MarkNmiSent, _) => (Answer::Moved(false), state),
        (Step::Resend, _) => (Answer::Counted, state),
        (Step::MarkUnresponsive, NmiSent) => (Answer::Moved(true), Unresponsive),
        (Step::MarkUnresponsive, _) => (Answer::Moved(false), state),
        (Step::MarkAbsent, Running) => (Answer::Moved(true), Absent),
        (Step::MarkAbsent, _) => (Answer::Moved(false), state),
        (Step::Stop(_), Running | NmiSent | Unresponsive) => (Answer::Stop(Ok(())), Stopped),
        (Step::Stop(_), Stopped | PanicOwner | Absent) => {
            (Answer::Stop(Err(StopRefused::Final(state))), state)
        }
    }
}

fn frame() -> RegisterFrame {
    RegisterFrame {
        rip: 0xffff_8000_0012_3456,
        rsp: 0xffff_c900_0000_7f00,
        rbx: 0xb0b,
        ..RegisterFrame::ZERO
    }
}

fn apply(slot: &CpuSlot, step: Step) -> Answer {
    match step {
        Step::MarkNmiSent => Answer::Moved(slot.mark_nmi_sent(10)),
        Step::Resend => {
            slot.count_nmi_sent();
            Answer::Counted
        }
        Step::MarkUnresponsive => Answer::Moved(slot.mark_unresponsive()),
        Step::MarkAbsent => Answer::Moved(slot.mark_absent()),
        Step::Stop(path) => {
            Answer::Stop(slot.record_stop(&frame(), &ControlRegisters::NONE, path, 2, 20))
        }
    }
}

/// Every interleaving of `a` and `b` (each keeps its own order).
fn interleavings(a: &[Step], b: &[Step]) -> Vec<Vec<Step>> {
    match (a.split_first(), b.split_first()) {
        (None, _) => vec![b.to_vec()],
        (_, None) => vec![a.to_vec()],
        (Some((&first_a, rest_a)), Some((&first_b, rest_b))) => {
            let mut all = Vec::new();
            for mut tail in interleavings(rest_a, b) {
                tail.insert(0, first_a);
                all.push(tail);
            }
            for mut tail in interleavings(a, rest_b) {
                tail.insert(0, first_b);
                all.push(tail);
            }
            all
        }
    }
}

/// Run one order on a fresh slot, checking every step and the end state.
fn check(order: &[Step]) {
    let slot = CpuSlot::new();
    let mut state = CpuState::Running;
    let mut sent = 0;
    let mut first_nmi_sent = false;
    let mut stopped_by = None;
    for &step in order {
        let (answer, next) = expected(state, step);
        assert_eq!(apply(&slot, step), answer, "{step:?} in {order:?}");
        assert_eq!(slot.state(), Some(next), "after {step:?} in {order:?}");
        if matches!(step, Step::MarkNmiSent | Step::Resend) {
            sent += 1;
        }
        // The first mark stamps the first NMI, whether or not it moved the
        // state (a CPU that stopped through a poll still got its NMI).
        if step == Step::MarkNmiSent {
            first_nmi_sent = true;
        }
        if let (Step::Stop(path), Answer::Stop(Ok(()))) = (step, answer) {
            stopped_by = Some(path);
        }
        state = next;
    }
    assert_eq!(slot.nmis_sent(), sent, "{order:?}");
    assert_eq!(slot.first_nmi_ns(), if first_nmi_sent { 10 } else { 0 });
    match stopped_by {
        Some(path) => {
            assert_eq!(slot.registers(), Some(frame()), "{order:?}");
            assert_eq!(slot.stop_path(), Some(path));
            assert_eq!((slot.nmi_depth(), slot.stopped_ns()), (2, 20));
        }
        None => {
            assert_eq!(slot.registers(), None, "{order:?}");
            assert_eq!(slot.stop_path(), Some(StopPath::None));
        }
    }
}

const OWNER_SEQUENCES: [&[Step]; 5] = [
    // The CPU answers in time (the owner's last mark then fails) or late.
    &[Step::MarkNmiSent, Step::MarkUnresponsive],
    // With resends on the way.
    &[
        Step::MarkNmiSent,
        Step::Resend,
        Step::Resend,
        Step::MarkUnresponsive,
    ],
    // Answered before the deadline: no unresponsive mark at all.
    &[Step::MarkNmiSent, Step::Resend],
    // A slot the platform has no CPU for (a confused CPU stops anyway).
    &[Step::MarkAbsent],
    // A resend only (the first send raced a poll) then the deadline.
    &[Step::MarkNmiSent, Step::MarkUnresponsive, Step::Resend],
];

#[test]
fn every_order_of_owner_marks_and_target_stop_ends_as_the_table_says() {
    let mut orders = 0;
    for owner in OWNER_SEQUENCES {
        for path in [StopPath::Nmi, StopPath::Poll] {
            for order in interleavings(owner, &[Step::Stop(path)]) {
                check(&order);
                orders += 1;
            }
        }
    }
    // (2+1) + (4+1) + (2+1) + (1+1) + (3+1) orders, for each path.
    assert_eq!(orders, 2 * (3 + 5 + 3 + 2 + 4));
}

/// The outcomes the protocol relies on, spelled out for the orders that
/// matter (the exhaustive test above covers them too).
#[test]
fn the_orders_that_matter() {
    // In time: stopped, the deadline mark fails.
    check(&[
        Step::MarkNmiSent,
        Step::Stop(StopPath::Nmi),
        Step::MarkUnresponsive,
    ]);
    // Late: unresponsive first, then stopped all the same.
    check(&[
        Step::MarkNmiSent,
        Step::MarkUnresponsive,
        Step::Stop(StopPath::Nmi),
    ]);
    // Poll before the NMI went out: the mark fails, the NMI is counted.
    check(&[Step::Stop(StopPath::Poll), Step::MarkNmiSent]);
    let slot = CpuSlot::new();
    assert_eq!(apply(&slot, Step::MarkAbsent), Answer::Moved(true));
    assert_eq!(
        apply(&slot, Step::Stop(StopPath::Nmi)),
        Answer::Stop(Err(StopRefused::Final(CpuState::Absent)))
    );
}

/// The race inside `record_stop`, on real threads: the owner marks and
/// (after a varying delay) declares the deadline while the target records
/// itself. Whatever the timing: `Stopped`, the target's registers, one NMI
/// counted, and the owner's answers consistent with one of the orders.
#[test]
fn owner_and_target_racing_on_threads_agree_with_the_table() {
    const ROUNDS: u32 = 2_000;
    for round in 0..ROUNDS {
        let slot = CpuSlot::new();
        let go = AtomicU32::new(0);
        let (marked, unresponsive) = std::thread::scope(|scope| {
            let owner = scope.spawn(|| {
                go.fetch_add(1, SeqCst);
                while go.load(SeqCst) < 2 {
                    std::hint::spin_loop();
                }
                let marked = slot.mark_nmi_sent(10);
                for _ in 0..round % 64 {
                    std::hint::spin_loop();
                }
                (marked, slot.mark_unresponsive())
            });
            go.fetch_add(1, SeqCst);
            while go.load(SeqCst) < 2 {
                std::hint::spin_loop();
            }
            for _ in 0..round % 7 {
                std::hint::spin_loop();
            }
            assert_eq!(
                slot.record_stop(&frame(), &ControlRegisters::NONE, StopPath::Nmi, 2, 20),
                Ok(())
            );
            owner.join().expect("the owner thread")
        });
        assert_eq!(slot.state(), Some(CpuState::Stopped), "round {round}");
        assert_eq!(slot.registers(), Some(frame()), "round {round}");
        assert_eq!(slot.nmis_sent(), 1);
        assert_eq!(slot.first_nmi_ns(), 10, "the owner's mark always stamps");
        // Unresponsive can only have been marked after a successful first
        // mark (NmiSent) and before the stop.
        assert!(!unresponsive || marked, "round {round}");
    }
}
