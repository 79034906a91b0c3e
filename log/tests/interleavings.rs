//! The ring's writer protocol, exhaustively at the granularity of its
//! steps (`begin`, each `write`, `end`): a nested writer of the same ring
//! (an NMI in a half-written frame of its own context, a message logged
//! while formatting one) injected at every point of an owner's frame, at
//! every offset of the ring (so across the wrap); a writer stopped after
//! every prefix of its frame; and two CPUs on one ring (a kernel's
//! mistake) ending in either order. Each case is read back as a dump's
//! reader reads it.
//!
//! Between two steps is the only place another writer can land that
//! matters: a nested writer touches nothing but `depth` and `dropped`,
//! both with single atomic read-modify-writes, so landing inside a step
//! (between the owner's `fetch_add` and its first byte, say) behaves as
//! landing after it.

use crashkit_log::read::{AreaView, Item, RingSummary};
use crashkit_log::{Begin, LogContext, LogRings};

type Rings = LogRings<1, 256>;

/// Frame `n`'s bytes (some zeros, length from 0 to 22).
fn message(n: u64) -> Vec<u8> {
    (0..(n * 7 % 23))
        .map(|i| ((n + i) % 5 * 40) as u8)
        .collect()
}

/// A ring's read: its summary, its frames (seq, stamp, bytes), its drops.
type Read = (RingSummary, Vec<(u32, u64, Vec<u8>)>, u32);

fn read(rings: &Rings) -> Read {
    let mut bytes = vec![0u8; Rings::SIZE];
    rings.copy_to(&mut bytes);
    let area = AreaView::parse(&bytes).expect("a valid area");
    let ring = area.rings().next().expect("one ring");
    let mut frames = Vec::new();
    let summary = ring.read(|item| match item {
        Item::Frame(frame) => frames.push((frame.seq, frame.stamp, frame.defmt.to_vec())),
        Item::Damaged { why, .. } => panic!("a damaged frame: {why}"),
    });
    (summary, frames, ring.dropped)
}

/// `shift` whole frames first, so the case's frame starts at another
/// offset of the ring (and wraps for some).
fn prefilled(shift: u64) -> Rings {
    let rings = Rings::new();
    let ring = rings.ring(0, LogContext::Normal).expect("ring");
    for n in 0..shift {
        let began = ring.begin(n);
        ring.write(began, &message(n));
        ring.end(began);
    }
    rings
}

/// Every frame read is the one its stamp names, in order.
fn check_frames(frames: &[(u32, u64, Vec<u8>)], what: &str) {
    for window in frames.windows(2) {
        assert_eq!(window[1].0, window[0].0 + 1, "{what}: out of order");
    }
    for (_, stamp, bytes) in frames {
        assert_eq!(
            *bytes,
            message(*stamp),
            "{what}: frame {stamp} is not whole"
        );
    }
}

#[test]
fn a_nested_writer_at_every_point_drops_and_the_frame_stays_whole() {
    let mut cases = 0;
    for shift in 0..40 {
        let outer_stamp = 1000 + shift;
        let outer = message(outer_stamp);
        // Points: 0 before begin (the nested writer is then the owner of
        // its own frame, and the outer one follows), 1 after begin, 2 + i
        // after the i-th byte, last after end.
        for point in 0..=outer.len() + 2 {
            let rings = prefilled(shift);
            let ring = rings.ring(0, LogContext::Normal).expect("ring");
            let nested = |stamp: u64| {
                let began = ring.begin(stamp);
                ring.write(began, &message(stamp));
                ring.end(began);
                began
            };
            let mut nested_result = None;
            if point == 0 {
                nested_result = Some(nested(5000));
            }
            let began = ring.begin(outer_stamp);
            assert_eq!(began, Begin::Owner);
            for (i, byte) in outer.iter().enumerate() {
                if point == 1 + i {
                    nested_result = Some(nested(5000));
                }
                ring.write(began, &[*byte]);
            }
            if point == outer.len() + 1 {
                nested_result = Some(nested(5000));
            }
            ring.end(began);
            if point == outer.len() + 2 {
                nested_result = Some(nested(5000));
            }
            let (summary, frames, dropped) = read(&rings);
            let what = format!("shift {shift}, nested writer at point {point}");
            check_frames(&frames, &what);
            let stamps: Vec<u64> = frames.iter().map(|f| f.1).collect();
            let inside = point >= 1 && point <= outer.len() + 1;
            assert_eq!(
                nested_result,
                Some(if inside { Begin::Dropped } else { Begin::Owner }),
                "{what}"
            );
            assert_eq!(dropped, u32::from(inside), "{what}");
            assert!(stamps.contains(&outer_stamp), "{what}: the frame is lost");
            assert_eq!(stamps.contains(&5000), !inside, "{what}");
            assert_eq!((summary.missing, summary.torn_bytes), (0, 0), "{what}");
            cases += 1;
        }
    }
    assert!(cases > 400, "{cases}");
}

#[test]
fn a_writer_stopped_after_every_prefix_leaves_a_torn_frame_that_never_decodes() {
    for shift in 0..40 {
        let stamp = 2000 + shift;
        let bytes = message(stamp);
        for prefix in 0..=bytes.len() {
            let rings = prefilled(shift);
            let ring = rings.ring(0, LogContext::Normal).expect("ring");
            let stopped = ring.begin(stamp);
            ring.write(stopped, &bytes[..prefix]);
            let (summary, frames, _) = read(&rings);
            let what = format!("shift {shift}, stopped after {prefix} bytes");
            check_frames(&frames, &what);
            assert!(
                frames.iter().all(|f| f.1 != stamp),
                "{what}: a torn frame decoded"
            );
            // Every frame before it is read or counted as overwritten.
            assert_eq!(
                summary.frames + summary.overwritten,
                shift as u32,
                "{what}: {summary:?}"
            );
            assert_eq!(summary.missing, 0, "{what}");
        }
    }
}

#[test]
fn two_cpus_on_one_ring_never_mix_whichever_ends_first() {
    for shift in 0..20 {
        for owner_ends_first in [true, false] {
            let rings = prefilled(shift);
            let ring = rings.ring(0, LogContext::Normal).expect("ring");
            let a = ring.begin(3000);
            let b = ring.begin(3001);
            assert_eq!((a, b), (Begin::Owner, Begin::Dropped));
            let bytes = message(3000);
            let (first, second) = bytes.split_at(bytes.len() / 2);
            ring.write(a, first);
            // B, dropped, writes too: nothing of it goes in.
            ring.write(b, &message(3001));
            if owner_ends_first {
                ring.write(a, second);
                ring.end(a);
                ring.end(b);
            } else {
                ring.end(b);
                ring.write(a, second);
                ring.end(a);
            }
            let (summary, frames, dropped) = read(&rings);
            let what = format!("shift {shift}, owner ends first: {owner_ends_first}");
            check_frames(&frames, &what);
            assert_eq!(dropped, 1, "{what}");
            assert!(frames.iter().any(|f| f.1 == 3000), "{what}");
            // Ended in this order, B's `end` counted, and the ring is idle.
            assert_eq!(ring.begin(3002), Begin::Owner, "{what}");
            assert_eq!(summary.missing, 0, "{what}");
        }
    }
}
