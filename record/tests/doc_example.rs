//! The worked example in `docs/crash-record.md` is this record's bytes: the
//! test renders them the way the document shows them and checks the
//! document contains exactly that, so the example cannot drift from the
//! format.

use core::fmt::Write as _;

use crashkit_nmi::{ControlRegisters, CpuIndex, RegisterFrame};
use crashkit_record::{
    CrashRecord, DumpResult, FinalAction, NotifierEntry, NotifierList, NotifierOutcome, PanicPhase,
    PhaseStamp, RecordView, ShootdownTotals,
};

/// One CPU (the owner), one notifier slot, one exclusion slot.
type Example = CrashRecord<1, 1, 1>;

fn example() -> Vec<u8> {
    let record = Example::new();
    // A secret at boot: 8 KiB at 2 MiB, left out of any dump.
    let _secret = record.exclude(0x20_0000, 0x2000).unwrap();
    let panic = record.panic();
    panic.stamp(PhaseStamp::PanicEntry, 0x1000);
    panic.set_owner(CpuIndex(0));
    panic.set_phase(PanicPhase::Claimed);
    let _ = panic.message_writer().write_str("oops");
    let frame = RegisterFrame {
        rip: 0xffff_ffff_8010_2030,
        cs: 0x08,
        rflags: 0x46,
        rsp: 0xffff_c900_0000_3f00,
        ss: 0x10,
        ..RegisterFrame::ZERO
    };
    // Only CR3 read (a platform that knows nothing else).
    let control = ControlRegisters {
        valid: crashkit_nmi::control::valid::CR3,
        cr3: 0x0010_3000,
        ..ControlRegisters::NONE
    };
    record.cpu_slots()[0]
        .record_owner(&frame, &control, 0, 0x1100)
        .unwrap();
    panic.set_phase(PanicPhase::StoppingCpus);
    panic.record_shootdown(&ShootdownTotals::default());
    panic.set_phase(PanicPhase::Notifiers);
    panic.stamp(PhaseStamp::NotifiersStart, 0x2000);
    record
        .record_notifier(&NotifierEntry::new(
            NotifierList::Informational,
            NotifierOutcome::Ran,
            5,
            0x300,
            "log",
        ))
        .unwrap();
    panic.stamp(PhaseStamp::NotifiersEnd, 0x2300);
    panic.set_phase(PanicPhase::DumpHandover);
    panic.set_dump_result(DumpResult::NotConfigured, 0);
    panic.set_phase(PanicPhase::FinalAction);
    panic.stamp(PhaseStamp::FinalAction, 0x2400);
    panic.set_final_action(FinalAction::Halt);
    panic.set_phase(PanicPhase::Halted);
    let mut bytes = vec![0; Example::TOTAL_SIZE];
    record.snapshot(&mut bytes).unwrap();
    bytes
}

/// `hexdump -C` style: offset, 16 bytes, ASCII; runs of all-zero lines
/// after the first are a `*` line.
fn render(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut in_zero_run = false;
    for (line, chunk) in bytes.chunks(16).enumerate() {
        let zero = chunk.iter().all(|&b| b == 0);
        if zero && in_zero_run {
            continue;
        }
        if zero && line > 0 && bytes[(line - 1) * 16..line * 16].iter().all(|&b| b == 0) {
            out.push_str("*\n");
            in_zero_run = true;
            continue;
        }
        in_zero_run = false;
        write!(out, "{:04x}:", line * 16).unwrap();
        for byte in chunk {
            write!(out, " {byte:02x}").unwrap();
        }
        out.push_str("  ");
        for &byte in chunk {
            out.push(if byte.is_ascii_graphic() {
                byte as char
            } else {
                '.'
            });
        }
        out.push('\n');
    }
    writeln!(out, "{:04x}:", bytes.len()).unwrap();
    out
}

#[test]
fn the_documented_example_is_this_record() {
    let bytes = example();
    let view = RecordView::parse(&bytes).unwrap();
    assert_eq!(view.panic().message().as_str(), Some("oops"));
    let control = view.cpu(0).and_then(|cpu| cpu.control()).unwrap();
    assert_eq!(
        (control.get("cr3"), control.get("cr0")),
        (Some(0x0010_3000), None)
    );
    let rendered = render(&bytes);
    let doc = include_str!("../../docs/crash-record.md");
    assert!(
        doc.contains(&rendered),
        "docs/crash-record.md's worked example differs; it should read:\n{rendered}"
    );
}
