//! The rings written and read back as a dump's reader sees them: wrap,
//! overwrite, frames split by the wrap, torn frames, damage and resync, and
//! the area header's checks.

use crashkit_log::read::{AreaError, AreaView, Damage, Item, RingSummary};
use crashkit_log::{LogContext, LogRings};

/// Message `n`'s bytes: its length and content follow from `n`, so a frame
/// read back is checked whole (and a mix of two shows).
fn message(n: u32) -> Vec<u8> {
    let len = (n as usize * 7) % 61;
    (0..len)
        .map(|i| {
            if (i + n as usize).is_multiple_of(5) {
                0
            } else {
                (n as usize * 31 + i) as u8
            }
        })
        .collect()
}

fn snapshot<const C: usize, const B: usize>(log: &LogRings<C, B>) -> Vec<u8> {
    let mut bytes = vec![0u8; LogRings::<C, B>::SIZE];
    assert_eq!(log.copy_to(&mut bytes), bytes.len());
    bytes
}

/// Read every ring: (cpu, context, summary, frames as (seq, stamp, bytes)).
type Read = (usize, LogContext, RingSummary, Vec<(u32, u64, Vec<u8>)>);

fn read_all(bytes: &[u8]) -> Vec<Read> {
    let area = AreaView::parse(bytes).expect("a valid area");
    area.rings()
        .map(|ring| {
            let mut frames = Vec::new();
            let summary = ring.read(|item| {
                if let Item::Frame(frame) = item {
                    frames.push((frame.seq, frame.stamp, frame.defmt.to_vec()));
                }
            });
            (ring.cpu, ring.context, summary, frames)
        })
        .collect()
}

#[test]
fn frames_read_back_whole_in_order_across_many_wraps() {
    let log: LogRings<2, 256> = LogRings::new();
    log.install(&[0xAB; 20], 0x1234_5000);
    let ring = log.ring(1, LogContext::Nmi).expect("CPU 1 has an NMI ring");
    for n in 0..1_000u32 {
        let began = ring.begin(u64::from(n) * 10);
        ring.write(began, &message(n));
        ring.end(began);
    }
    let bytes = snapshot(&log);
    let area = AreaView::parse(&bytes).expect("valid");
    assert_eq!(area.build_id(), Some(&[0xAB; 20][..]));
    assert_eq!(area.address(), 0x1234_5000);
    assert!(area.installed());
    for (cpu, context, summary, frames) in read_all(&bytes) {
        if (cpu, context) != (1, LogContext::Nmi) {
            assert!(frames.is_empty());
            assert_eq!(summary, RingSummary::default());
            continue;
        }
        // The window holds the newest frames, several of them split by
        // the wrap (256 bytes, frames of 15..80 encoded bytes).
        assert!(frames.len() >= 3, "{summary:?}");
        assert_eq!(summary.damaged, 0);
        assert_eq!(summary.missing, 0);
        assert_eq!(summary.torn_bytes, 0);
        assert_eq!(summary.overwritten, frames[0].0);
        assert_eq!(summary.overwritten + summary.frames, 1_000);
        for (i, (seq, stamp, defmt)) in frames.iter().enumerate() {
            assert_eq!(*seq, summary.overwritten + i as u32);
            assert_eq!(*stamp, u64::from(*seq) * 10);
            assert_eq!(*defmt, message(*seq), "frame {seq}");
        }
    }
}

#[test]
fn a_torn_frame_is_reported_not_decoded() {
    let log: LogRings<1, 1024> = LogRings::new();
    log.install(&[1; 20], 0);
    let ring = log.ring(0, LogContext::Normal).expect("ring");
    for n in 1..4 {
        let began = ring.begin(n);
        ring.write(began, &message(n as u32 + 10));
        ring.end(began);
    }
    // A writer stopped half way (its CPU was stopped by the shootdown).
    let torn = ring.begin(99);
    ring.write(torn, b"half a message");
    let (_, _, summary, frames) = read_all(&snapshot(&log)).remove(0);
    assert_eq!(frames.len(), 3);
    assert!(summary.torn_bytes > 0, "{summary:?}");
    assert_eq!(summary.missing, 0);
    assert!(frames.iter().all(|f| f.1 != 99));
}

#[test]
fn random_damage_resyncs_and_never_decodes_as_another_message() {
    let log: LogRings<1, 4096> = LogRings::new();
    log.install(&[2; 20], 0);
    let ring = log.ring(0, LogContext::Normal).expect("ring");
    for n in 0..300u32 {
        let began = ring.begin(u64::from(n));
        ring.write(began, &message(n));
        ring.end(began);
    }
    let clean = snapshot(&log);
    let data = 128 + 64..128 + 64 + 4096;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..500 {
        let mut bytes = clean.clone();
        for _ in 0..1 + round % 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = data.start + (x as usize % data.len());
            bytes[at] = (x >> 32) as u8;
        }
        let (_, _, summary, frames) = read_all(&bytes).remove(0);
        for (seq, stamp, defmt) in &frames {
            assert_eq!(*stamp, u64::from(*seq), "round {round}");
            assert_eq!(
                *defmt,
                message(*seq),
                "round {round}: frame {seq} decoded wrong"
            );
        }
        // At most a few frames per damaged byte are lost; the rest are read.
        let whole = read_all(&clean).remove(0).2.frames;
        assert!(
            summary.frames + 3 * 8 * 2 >= whole,
            "round {round}: {summary:?}"
        );
    }
}

#[test]
fn a_nested_writer_in_the_same_context_is_counted_and_leaves_no_trace() {
    let log: LogRings<1, 256> = LogRings::new();
    let ring = log.ring(0, LogContext::Normal).expect("ring");
    let outer = ring.begin(5);
    ring.write(outer, &message(7)[..3]);
    let inner = ring.begin(6);
    ring.write(inner, b"inner bytes must not appear");
    ring.end(inner);
    ring.write(outer, &message(7)[3..]);
    ring.end(outer);
    let (_, _, summary, frames) = read_all(&snapshot(&log)).remove(0);
    assert_eq!(frames, vec![(0, 5, message(7))]);
    assert_eq!(summary.frames, 1);
    assert_eq!(
        log.ring(0, LogContext::Normal).map(|r| r.dropped()),
        Some(1)
    );
}

#[test]
fn an_oversized_message_is_cut_and_said_so() {
    let log: LogRings<1, 4096> = LogRings::new();
    let ring = log.ring(0, LogContext::Normal).expect("ring");
    let began = ring.begin(1);
    ring.write(began, &[7u8; 2000]);
    ring.end(began);
    let (_, _, summary, frames) = read_all(&snapshot(&log)).remove(0);
    assert_eq!(summary.cut, 1);
    assert_eq!(frames[0].2.len(), crashkit_log::layout::MAX_DEFMT_BYTES);
}

#[test]
fn the_header_is_checked_field_by_field() {
    let log: LogRings<2, 512> = LogRings::new();
    let bytes = snapshot(&log);
    assert!(AreaView::parse(&bytes).is_ok());
    assert!(
        !AreaView::parse(&bytes)
            .map(|a| a.installed())
            .unwrap_or(true)
    );
    assert_eq!(
        AreaView::parse(&bytes[..100]).err(),
        Some(AreaError::Truncated {
            need: 128,
            have: 100
        })
    );
    assert!(matches!(
        AreaView::parse(&bytes[..bytes.len() - 1]),
        Err(AreaError::Truncated { .. })
    ));
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    assert_eq!(AreaView::parse(&bad).err(), Some(AreaError::Magic));
    // Every byte of the checked fields is covered by the CRC.
    for at in 8..32 {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        assert!(
            AreaView::parse(&bad).is_err(),
            "byte {at} changed unnoticed"
        );
    }
    let mut bad = bytes.clone();
    bad[36] = 33;
    assert!(matches!(
        AreaView::parse(&bad),
        Err(AreaError::Field {
            name: "build_id_len",
            ..
        })
    ));
}

#[test]
fn a_damaged_ring_header_is_reported() {
    let log: LogRings<1, 256> = LogRings::new();
    log.install(&[3; 20], 0);
    let ring = log.ring(0, LogContext::Normal).expect("ring");
    for n in 0..5 {
        let began = ring.begin(n);
        ring.write(began, &message(n as u32));
        ring.end(began);
    }
    let mut bytes = snapshot(&log);
    // committed beyond head.
    bytes[128 + 8..128 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    let (_, _, summary, frames) = read_all(&bytes).remove(0);
    assert!(summary.header_damaged);
    assert_eq!(frames.len(), 5);
    // The ring's CPU field names another CPU.
    let mut bytes = snapshot(&log);
    bytes[128 + 44] = 7;
    let area = AreaView::parse(&bytes).expect("valid header");
    assert!(area.rings().next().is_some_and(|r| r.misnamed));
    let _ = Damage::Crc;
}
