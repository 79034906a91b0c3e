//! loom model of [`Slot`], the hand-over's `Capture` (= `Slot<Ready>`):
//! one CPU arms while another panics and reads, and a second arm races the
//! first. Every interleaving: the reader sees nothing or the whole value,
//! never a torn one, and exactly one arm wins. Run by `cargo xtask test`
//! with `--cfg loom`, under which the crate builds `armed` alone (see
//! tools/xtask).

#![cfg(loom)]

use crashkit_kdump_handover::Slot;
use loom::sync::Arc;
use loom::thread;

/// A value as wide as the tearing it must not show: four words, each
/// carrying the same tag.
type Value = [u64; 4];

#[test]
fn a_reader_sees_nothing_or_the_whole_value_and_one_arm_wins() {
    let first: Value = [1; 4];
    let second: Value = [2; 4];
    loom::model(move || {
        let slot = Arc::new(Slot::<Value>::new());
        let armer = {
            let slot = Arc::clone(&slot);
            // SAFETY: a model; nothing is handed over.
            thread::spawn(move || unsafe { slot.arm(first) }.is_ok())
        };
        let rival = {
            let slot = Arc::clone(&slot);
            // SAFETY: as above.
            thread::spawn(move || unsafe { slot.arm(second) }.is_ok())
        };
        let seen = slot.ready();
        assert!(seen.is_none() || seen == Some(first) || seen == Some(second));
        let won = [armer.join().unwrap(), rival.join().unwrap()];
        assert_eq!(
            won.iter().filter(|&&w| w).count(),
            1,
            "exactly one arm wins"
        );
        let winner = if won[0] { first } else { second };
        if let Some(seen) = seen {
            assert_eq!(seen, winner);
        }
        assert_eq!(slot.ready(), Some(winner));
    });
}
