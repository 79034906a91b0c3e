//! The human-readable summary of a parsed record: every part of the record
//! shows up, and a record with unknown codes still prints.

mod common;

use common::{filled_bytes, put_u32};

use crashkit_record::layout;
use crashkit_record::{RecordView, Summary};

#[test]
fn the_summary_shows_every_part_of_a_filled_record() {
    let bytes = filled_bytes();
    let view = RecordView::parse(&bytes).expect("a filled record parses");
    let text = Summary(&view).to_string();
    println!("{text}");
    for expected in [
        "crash record v1",
        "panic on cpu2",
        "phase Halted",
        "message: ",
        "timeline (ms after the panic entry):",
        "shootdown:",
        "PanicOwner",
        "Stopped",
        "notifiers: ",
        "escalations: 1 (skipped: notifier)",
        "in Notifiers at",
        "counters: 3 second panickers, 1 re-entries",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let cpu_lines = text
        .lines()
        .filter(|line| line.contains("PanicOwner") || line.contains("Stopped"))
        .count();
    assert!(cpu_lines >= 2, "{text}");
}

#[test]
fn unknown_codes_print_as_unknown() {
    let mut bytes = filled_bytes();
    let phase = common::Record::PANIC_OFFSET + layout::panic::PHASE;
    put_u32(&mut bytes, phase, 0xbeef);
    let view = RecordView::parse(&bytes).expect("an unknown phase is not a parse error");
    let text = Summary(&view).to_string();
    assert!(text.contains("phase unknown(48879)"), "{text}");
}
