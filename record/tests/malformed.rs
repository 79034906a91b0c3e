//! The parser against bytes that lie: truncated buffers, wrong magic,
//! version and byte order, section tables whose offsets, counts and sizes
//! point past the end, overlap, or are huge, lengths larger than their
//! buffers, unknown enum codes; then thousands of deterministic random
//! mutations, none of which may panic.

mod common;

use common::{Prng, Record, filled_bytes, get_u32, put_u16, put_u32};

use crashkit_record::SlotFrame;
use crashkit_record::layout::{self, header, section_entry, section_kind};
use crashkit_record::{CpuState, Decoded, ParseError, ParseErrorKind, RecordView, StopPath};

/// Byte offset of section table entry `index`'s field `field`.
fn entry(index: usize, field: usize) -> usize {
    header::SECTION_TABLE + index * layout::SECTION_ENTRY_SIZE + field
}

/// Parse `bytes` after `patch`, expecting an error.
fn error_after(patch: impl FnOnce(&mut Vec<u8>)) -> ParseError {
    let mut bytes = filled_bytes();
    patch(&mut bytes);
    match RecordView::parse(&bytes) {
        Ok(_) => panic!("the patched record parsed"),
        Err(error) => error,
    }
}

fn at(offset: usize, kind: ParseErrorKind) -> ParseError {
    ParseError { offset, kind }
}

#[test]
fn every_truncation_is_reported_not_read() {
    let bytes = filled_bytes();
    let total = bytes.len() as u64;
    for len in 0..bytes.len() {
        let error = RecordView::parse(&bytes[..len]).unwrap_err();
        let expected = if len < layout::HEADER_FIXED_SIZE {
            at(
                len,
                ParseErrorKind::Truncated {
                    needed: layout::HEADER_FIXED_SIZE as u64,
                    available: len as u64,
                },
            )
        } else {
            at(
                header::TOTAL_SIZE,
                ParseErrorKind::Truncated {
                    needed: total,
                    available: len as u64,
                },
            )
        };
        assert_eq!(error, expected, "length {len}");
    }
}

#[test]
fn identity_fields_are_checked() {
    assert_eq!(
        error_after(|b| b[3] = b'X'),
        at(0, ParseErrorKind::BadMagic)
    );
    assert_eq!(
        error_after(|b| put_u32(b, header::BYTE_ORDER, 0x0403_0201 ^ 0xFF)),
        at(
            header::BYTE_ORDER,
            ParseErrorKind::UnknownByteOrder {
                found: 0x0403_0201 ^ 0xFF
            }
        )
    );
    for version in [0u16, 2, u16::MAX] {
        assert_eq!(
            error_after(|b| put_u16(b, header::VERSION, version)),
            at(
                header::VERSION,
                ParseErrorKind::UnsupportedVersion { found: version }
            )
        );
    }
}

#[test]
fn header_sizes_that_lie_are_caught() {
    assert_eq!(
        error_after(|b| put_u16(b, header::HEADER_SIZE, 31)),
        at(
            header::HEADER_SIZE,
            ParseErrorKind::BadSize {
                field: "header_size",
                value: 31,
                minimum: 32
            }
        )
    );
    assert_eq!(
        error_after(|b| put_u32(b, header::TOTAL_SIZE, 79)),
        at(
            header::TOTAL_SIZE,
            ParseErrorKind::BadSize {
                field: "total_size",
                value: 79,
                minimum: 128
            }
        )
    );
    let huge = error_after(|b| put_u32(b, header::TOTAL_SIZE, u32::MAX));
    assert_eq!(huge.offset, header::TOTAL_SIZE);
    assert!(
        matches!(huge.kind, ParseErrorKind::Truncated { needed, .. } if needed == u32::MAX as u64)
    );
    // A header too small for its own table.
    assert_eq!(
        error_after(|b| put_u16(b, header::HEADER_SIZE, 64)),
        at(
            header::SECTION_TABLE_OFFSET,
            ParseErrorKind::SectionTableOutsideHeader {
                end: 128,
                header_size: 64
            }
        )
    );
    assert_eq!(
        error_after(|b| put_u16(b, header::SECTION_TABLE_OFFSET, 16)).kind,
        ParseErrorKind::BadSize {
            field: "section_table_offset",
            value: 16,
            minimum: 32
        }
    );
    assert_eq!(
        error_after(|b| put_u16(b, header::SECTION_ENTRY_SIZE, 8)),
        at(
            header::SECTION_ENTRY_SIZE,
            ParseErrorKind::SectionEntryTooSmall { entry_size: 8 }
        )
    );
    assert_eq!(
        error_after(|b| put_u32(b, header::SECTION_COUNT, u32::MAX)),
        at(
            header::SECTION_COUNT,
            ParseErrorKind::TooManySections { count: u32::MAX }
        )
    );
    assert_eq!(
        error_after(|b| put_u32(b, header::SECTION_COUNT, 7)).kind,
        ParseErrorKind::SectionTableOutsideHeader {
            end: 144,
            header_size: 128
        }
    );
    assert_eq!(
        error_after(|b| put_u32(b, header::SECTION_COUNT, 2)),
        at(
            header::SECTION_TABLE,
            ParseErrorKind::MissingSection {
                kind: section_kind::NOTIFIERS
            }
        )
    );
}

#[test]
fn a_dump_section_that_lies_is_caught() {
    let dump = Record::DUMP_OFFSET;
    assert_eq!(
        error_after(|b| put_u32(b, dump + layout::dump::CHANGED_COUNT, 9)),
        at(
            dump + layout::dump::CHANGED_COUNT,
            ParseErrorKind::TooLarge {
                field: "changed_count",
                value: 9,
                limit: 8
            }
        )
    );
    assert_eq!(
        error_after(|b| put_u32(b, entry(4, section_entry::COUNT), 0)),
        at(
            entry(4, section_entry::COUNT),
            ParseErrorKind::BadSlotCount {
                kind: section_kind::DUMP,
                count: 0
            }
        )
    );
    assert_eq!(
        error_after(|b| put_u32(b, entry(4, section_entry::SLOT_SIZE), 247)),
        at(
            entry(4, section_entry::SLOT_SIZE),
            ParseErrorKind::SlotTooSmall {
                kind: section_kind::DUMP,
                slot_size: 247,
                minimum: 248
            }
        )
    );
}

#[test]
fn a_record_without_the_newer_sections_reads() {
    // A writer from before the exclusion and dump sections: three table
    // entries. The reader has neither and says so.
    let mut bytes = filled_bytes();
    put_u32(&mut bytes, header::SECTION_COUNT, 3);
    let view = RecordView::parse(&bytes).unwrap();
    assert!(!view.has_exclusions());
    assert_eq!(view.exclusions().count(), 0);
    assert!(view.dump().is_none());
}

#[test]
fn sections_that_lie_are_caught() {
    let cpus = section_kind::CPUS;
    // Past the end, by offset and by a huge count (no overflow: u64 sums).
    let error = error_after(|b| put_u32(b, entry(1, section_entry::OFFSET), 1_700));
    assert_eq!(error.offset, entry(1, section_entry::OFFSET));
    assert!(matches!(
        error.kind,
        ParseErrorKind::SectionOutOfBounds { kind, end: 2_820, total_size: 2_672 } if kind == cpus
    ));
    let error = error_after(|b| put_u32(b, entry(1, section_entry::COUNT), u32::MAX));
    assert!(matches!(
        error.kind,
        ParseErrorKind::SectionOutOfBounds { end, .. } if end == 856 + u64::from(u32::MAX) * 280
    ));
    let error = error_after(|b| put_u32(b, entry(2, section_entry::SLOT_SIZE), u32::MAX));
    assert!(matches!(
        error.kind,
        ParseErrorKind::SectionOutOfBounds { .. }
    ));
    // Inside the header.
    assert_eq!(
        error_after(|b| put_u32(b, entry(0, section_entry::OFFSET), 0)),
        at(
            entry(0, section_entry::OFFSET),
            ParseErrorKind::SectionInsideHeader {
                kind: section_kind::PANIC,
                start: 0
            }
        )
    );
    // Overlapping: the CPU slots moved onto the panic section.
    assert_eq!(
        error_after(|b| put_u32(b, entry(1, section_entry::OFFSET), 400)),
        at(
            entry(1, section_entry::OFFSET),
            ParseErrorKind::SectionsOverlap {
                kind: cpus,
                other: section_kind::PANIC
            }
        )
    );
    // Slots smaller than version 1's.
    assert_eq!(
        error_after(|b| put_u32(b, entry(1, section_entry::SLOT_SIZE), 199)),
        at(
            entry(1, section_entry::SLOT_SIZE),
            ParseErrorKind::SlotTooSmall {
                kind: cpus,
                slot_size: 199,
                minimum: 200
            }
        )
    );
    // The panic section has exactly one slot.
    for count in [0, 2] {
        assert_eq!(
            error_after(|b| put_u32(b, entry(0, section_entry::COUNT), count)).kind,
            ParseErrorKind::BadSlotCount {
                kind: section_kind::PANIC,
                count
            }
        );
    }
    // The same kind twice.
    assert_eq!(
        error_after(|b| put_u32(b, entry(0, section_entry::KIND), cpus)),
        at(
            entry(1, section_entry::KIND),
            ParseErrorKind::DuplicateSection { kind: cpus }
        )
    );
    // An unknown kind replacing a required one.
    assert_eq!(
        error_after(|b| put_u32(b, entry(2, section_entry::KIND), 1234)).kind,
        ParseErrorKind::MissingSection {
            kind: section_kind::NOTIFIERS
        }
    );
}

#[test]
fn lengths_larger_than_their_buffers_are_caught() {
    let panic = Record::PANIC_OFFSET;
    let message_len = panic + layout::panic::MESSAGE_LEN;
    assert_eq!(
        error_after(|b| put_u32(b, message_len, 513)),
        at(
            message_len,
            ParseErrorKind::TooLarge {
                field: "message_len",
                value: 513,
                limit: 512
            }
        )
    );
    let recorded = panic + layout::panic::NOTIFIERS_RECORDED;
    assert_eq!(
        error_after(|b| put_u32(b, recorded, 4)),
        at(
            recorded,
            ParseErrorKind::TooLarge {
                field: "notifiers_recorded",
                value: 4,
                limit: 3
            }
        )
    );
    let name_len = Record::NOTIFIERS_OFFSET + layout::notifier::SIZE + layout::notifier::NAME_LEN;
    assert_eq!(
        error_after(|b| put_u32(b, name_len, 49)),
        at(
            name_len,
            ParseErrorKind::TooLarge {
                field: "name_len",
                value: 49,
                limit: 48
            }
        )
    );
    // An unused slot's length is not read, so not checked.
    let mut bytes = filled_bytes();
    put_u32(&mut bytes, recorded, 1);
    put_u32(&mut bytes, name_len, u32::MAX);
    assert!(RecordView::parse(&bytes).is_ok());
}

#[test]
fn unknown_codes_are_reported_as_unknown() {
    let mut bytes = filled_bytes();
    let panic = Record::PANIC_OFFSET;
    put_u32(&mut bytes, panic + layout::panic::PHASE, 99);
    put_u32(&mut bytes, panic + layout::panic::DUMP_RESULT, 50);
    put_u32(&mut bytes, panic + layout::panic::FINAL_ACTION, 7);
    put_u32(&mut bytes, Record::CPUS_OFFSET + layout::cpu::STATE, 42);
    put_u32(&mut bytes, Record::CPUS_OFFSET + layout::cpu::STOP_PATH, 9);
    put_u32(
        &mut bytes,
        Record::NOTIFIERS_OFFSET + layout::notifier::LIST,
        8,
    );
    // The log's first entry, and an unwritten one inside the count.
    let log = panic + layout::panic::ESCALATION_LOG;
    put_u32(&mut bytes, log, 1000);
    put_u32(&mut bytes, panic + layout::panic::ESCALATIONS, 2);
    let view = RecordView::parse(&bytes).unwrap();
    let p = view.panic();
    assert_eq!(p.phase(), Decoded::Unknown(99));
    assert_eq!(p.dump_result(), Decoded::Unknown(50));
    assert_eq!(p.final_action(), Decoded::Unknown(7));
    assert_eq!(
        p.escalation(0).map(|e| e.phase),
        Some(Decoded::Unknown(1000))
    );
    assert_eq!(p.escalation(1), None, "reserved, never written");
    let cpu = view.cpu(0).unwrap();
    assert_eq!(cpu.state(), Decoded::<CpuState>::Unknown(42));
    assert_eq!(cpu.stop_path(), Decoded::<StopPath>::Unknown(9));
    assert_eq!(cpu.frame(), None, "unknown state: registers not trusted");
    assert_eq!(view.notifier(0).unwrap().list(), Decoded::Unknown(8));
}

#[test]
fn invalid_utf8_is_reported_not_trusted() {
    let mut bytes = filled_bytes();
    bytes[Record::PANIC_OFFSET + layout::panic::MESSAGE] = 0xFF;
    let view = RecordView::parse(&bytes).unwrap();
    let message = view.panic().message();
    assert_eq!(message.as_str(), None);
    assert_eq!(message.as_bytes()[0], 0xFF);
}

#[test]
fn errors_say_what_and_where() {
    let error = error_after(|b| put_u16(b, header::VERSION, 7));
    assert_eq!(
        error.to_string(),
        "crash record, byte 8: format version 7, this reader reads version 1"
    );
    let error = error_after(|b| put_u32(b, entry(1, section_entry::OFFSET), 400));
    assert_eq!(
        error.to_string(),
        "crash record, byte 52: sections of kinds 2 and 1 overlap"
    );
}

/// Read every field a view offers, the way a tool would print it.
fn touch_everything(view: &RecordView<'_>) -> u64 {
    let mut sum = 0u64;
    let header = view.header();
    assert!(header.total_size as usize == view.bytes().len());
    sum += view.sections().map(|s| u64::from(s.count)).sum::<u64>();
    let panic = view.panic();
    sum += u64::from(panic.phase().code()) + u64::from(panic.owner_cpu().unwrap_or(0));
    for index in 0..8 {
        if let Some(e) = panic.escalation(index) {
            sum += e.at_ns % 7 + u64::from(e.skipped.0 % 3);
        }
    }
    let message = panic.message();
    assert!(message.as_bytes().len() <= layout::panic::MESSAGE_CAPACITY);
    sum += message.as_str().map_or(0, |s| s.len() as u64);
    sum += u64::from(panic.shootdown().nmis_sent % 5) + u64::from(panic.dump_detail() % 3);
    for cpu in view.cpus() {
        sum += u64::from(cpu.state().code() % 3) + cpu.registers()[16] % 11;
        if let Some(frame) = cpu.frame() {
            sum += frame.rip % 13;
        }
    }
    assert!(view.notifier_count() <= view.notifier_slot_count());
    for notifier in view.notifiers() {
        let name = notifier.name();
        assert!(name.as_bytes().len() <= layout::notifier::NAME_CAPACITY);
        sum += u64::from(notifier.outcome().code() % 3) + name.as_str().map_or(1, |_| 2);
    }
    sum
}

/// Values that make header and table fields interesting.
const EDGES: [u32; 12] = [
    0,
    1,
    3,
    16,
    32,
    80,
    200,
    728,
    1_848,
    0x8000_0000,
    0xFFFF_FFFF,
    0xFFFF,
];

#[test]
fn random_mutations_never_panic() {
    let base = filled_bytes();
    let mut rng = Prng::new(0x00C0_FFEE);
    let (mut parsed, mut refused) = (0u32, 0u32);
    for case in 0..20_000 {
        let mut bytes = base.clone();
        let mutations = 1 + rng.below(4);
        for _ in 0..mutations {
            match rng.below(4) {
                // A random byte anywhere.
                0 => {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next_u64() as u8;
                }
                // An edge value into a header, table or panic-section word.
                1 | 2 => {
                    let word = rng.below((Record::CPUS_OFFSET + 64) / 4) * 4;
                    let value = EDGES[rng.below(EDGES.len())];
                    let value = if rng.below(2) == 0 {
                        value
                    } else {
                        value.wrapping_add(rng.below(9) as u32).wrapping_sub(4)
                    };
                    put_u32(&mut bytes, word, value);
                }
                // A random word anywhere in the header.
                _ => {
                    let word = rng.below(layout::HEADER_SIZE / 4) * 4;
                    put_u32(&mut bytes, word, rng.next_u64() as u32);
                }
            }
        }
        if rng.below(4) == 0 {
            bytes.truncate(rng.below(bytes.len() + 1));
        }
        match RecordView::parse(&bytes) {
            Ok(view) => {
                parsed += 1;
                std::hint::black_box(touch_everything(&view));
            }
            Err(error) => {
                refused += 1;
                assert!(!error.to_string().is_empty(), "case {case}");
            }
        }
    }
    // Both sides of the parser were exercised.
    assert!(parsed > 1_000, "parsed {parsed}");
    assert!(refused > 1_000, "refused {refused}");
    // The base record is untouched by all this (a sanity check of the PRNG
    // loop itself): it still parses.
    assert!(RecordView::parse(&base).is_ok());
    assert_eq!(get_u32(&base, header::TOTAL_SIZE) as usize, base.len());
}
