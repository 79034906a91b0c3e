//! Fill a record through the writer API, take its bytes, parse them, and
//! compare every value; also the same through `as_bytes`, through `scan` in a
//! memory image, and through a record laid out by a "future" writer (bigger
//! header, bigger slots, an extra section) that a version-1 reader must
//! still read.

mod common;

use common::{MESSAGE, Record, TOTALS, fill, filled_bytes, frame, get_u32, put_u16, put_u32};

use crashkit_record::SlotFrame;
use crashkit_record::layout::{self, header, section_entry};
use crashkit_record::{
    ByteOrder, ChangedKind, ChangedRange, CpuState, Decoded, DumpOutcome, DumpPath, DumpResult,
    FallbackReason, FinalAction, NotifierList, NotifierOutcome, PanicPhase, PhaseStamp, RecordView,
    Skipped, StopPath, scan,
};

/// The exclusion and dump sections `fill` wrote.
fn check_filled_sections(view: &RecordView<'_>) {
    assert!(view.has_exclusions());
    assert_eq!(
        view.exclusions().collect::<Vec<_>>(),
        [(0x20_0000, 0x3000), (0x40_0000, 0x10)],
        "the removed range is not excluded; the slot it freed was reused"
    );
    let dump = view.dump().expect("the dump section");
    assert_eq!(dump.path(), Decoded::Known(DumpPath::InPlace));
    assert_eq!(dump.reason(), Decoded::Known(FallbackReason::ImageChanged));
    assert_eq!(dump.handover_error(), 3);
    assert_eq!(dump.outcome(), Decoded::Known(DumpOutcome::Complete));
    assert_eq!((dump.pages_written(), dump.data_bytes()), (1234, 0x10_0000));
    assert_eq!(dump.started_finished_ns(), (4_000, 4_500));
    let changed: Vec<_> = dump.changed().collect();
    assert_eq!(changed.len(), 2);
    assert_eq!(
        changed[1],
        ChangedRange {
            start: 0x9_0000,
            len: 0x6_0000,
            kind: Decoded::Known(ChangedKind::WriterState),
            left_out: true
        }
    );
}

/// Every value `fill` wrote, read back through the parser.
fn check_filled(view: &RecordView<'_>) {
    let header = view.header();
    assert_eq!(header.version, 1);
    assert_eq!(header.byte_order, ByteOrder::Little);
    assert_eq!(header.total_size as usize, view.bytes().len());

    let panic = view.panic();
    assert_eq!(panic.phase(), Decoded::Known(PanicPhase::Halted));
    assert_eq!(panic.owner_cpu(), Some(2));
    for (i, &which) in PhaseStamp::ALL.iter().enumerate() {
        assert_eq!(panic.stamp_ns(which), 1_000 * (i as u64 + 1), "{which:?}");
    }
    assert_eq!(panic.escalations(), 1);
    assert_eq!(panic.skipped(), Skipped::NOTIFIER);
    let escalation = panic.escalation(0).expect("one escalation entry");
    assert_eq!(escalation.phase, Decoded::Known(PanicPhase::Notifiers));
    assert_eq!(escalation.skipped, Skipped::NOTIFIER);
    assert_eq!(escalation.at_ns, 3_333);
    assert_eq!(panic.escalation(1), None);
    assert_eq!(panic.shootdown(), TOTALS);
    assert_eq!(panic.second_panickers(), 3);
    assert_eq!(panic.reentries(), 1);
    assert_eq!(panic.qspinlock_fallbacks(), 1);
    assert_eq!(panic.panic_lock_breaks(), 4);
    assert_eq!(panic.dump_result(), Decoded::Known(DumpResult::Failed));
    assert_eq!(panic.dump_detail(), 0x22);
    assert_eq!(panic.final_action(), Decoded::Known(FinalAction::Halt));
    assert_eq!(panic.notifiers_recorded(), 3);
    assert_eq!(panic.notifiers_dropped(), 1);
    let message = panic.message();
    assert_eq!(message.as_str(), Some(MESSAGE));
    assert!(!message.truncated());

    assert_eq!(view.cpu_count(), 4);
    let cpus: Vec<_> = view.cpus().collect();
    assert_eq!(cpus.len(), 4);
    let stopped = &cpus[0];
    assert_eq!(stopped.state(), Decoded::Known(CpuState::Stopped));
    assert_eq!(stopped.stop_path(), Decoded::Known(StopPath::Nmi));
    assert_eq!(
        (stopped.nmis_sent(), stopped.nmi_depth()),
        (1, 2),
        "one NMI, stopped two contexts deep"
    );
    assert_eq!(
        (stopped.first_nmi_ns(), stopped.stopped_ns()),
        (2_000, 2_100)
    );
    assert_eq!(stopped.frame(), Some(frame(0x1000)));
    assert_eq!(stopped.registers(), frame(0x1000).to_array());
    let control = stopped.control().expect("a stopped CPU's control state");
    assert_eq!(control.get("cr0"), Some(0x1000));
    assert_eq!(control.get("cr3"), Some(0x1002));
    assert_eq!(control.get("kernel_gs_base"), Some(0x1007));
    assert_eq!(control.selectors, Some([0x1008, 0x1009, 0x100a, 0x100b]));
    let late = &cpus[1];
    assert_eq!(late.state(), Decoded::Known(CpuState::Unresponsive));
    assert_eq!(late.nmis_sent(), 2);
    assert_eq!(late.frame(), None, "no registers without a stop");
    assert_eq!(late.control(), None, "no control state either");
    let owner = &cpus[2];
    assert_eq!(owner.state(), Decoded::Known(CpuState::PanicOwner));
    assert_eq!(owner.frame(), Some(frame(0x2000)));
    assert_eq!(owner.stopped_ns(), 1_500);
    assert_eq!(owner.control().and_then(|c| c.get("efer")), Some(0x2004));
    assert_eq!(cpus[3].state(), Decoded::Known(CpuState::Absent));
    assert!(view.cpu(4).is_none());

    check_filled_sections(view);

    assert_eq!(view.notifier_slot_count(), 3);
    let notifiers: Vec<_> = view.notifiers().collect();
    assert_eq!(notifiers.len(), 3);
    assert_eq!(
        notifiers[0].list(),
        Decoded::Known(NotifierList::Hypervisor)
    );
    assert_eq!(notifiers[0].outcome(), Decoded::Known(NotifierOutcome::Ran));
    assert_eq!(notifiers[0].priority(), 10);
    assert_eq!(notifiers[0].duration_ns(), 111);
    assert_eq!(notifiers[0].name().as_str(), Some("pvpanic"));
    assert_eq!(notifiers[1].list(), Decoded::Known(NotifierList::PreDump));
    assert_eq!(
        notifiers[1].outcome(),
        Decoded::Known(NotifierOutcome::SkippedLockBusy)
    );
    assert_eq!(notifiers[1].priority(), -5);
    assert_eq!(notifiers[1].name().as_str(), Some("dma-quiesce"));
    assert_eq!(notifiers[2].outcome(), Decoded::Unknown(77));
    assert_eq!(notifiers[2].priority(), i32::MIN);
    assert_eq!(notifiers[2].duration_ns(), u64::MAX);
    assert!(!notifiers[2].name().truncated());
    assert!(view.notifier(3).is_none());
}

#[test]
fn every_value_survives_snapshot_and_parse() {
    let bytes = filled_bytes();
    let view = RecordView::parse(&bytes).unwrap();
    check_filled(&view);
}

#[test]
fn as_bytes_gives_the_same_record() {
    let record = Record::new();
    fill(&record);
    // SAFETY: `record` is local to this thread; nothing writes it while
    // `bytes` lives.
    let bytes = unsafe { record.as_bytes() };
    assert_eq!(bytes.len(), Record::TOTAL_SIZE);
    check_filled(&RecordView::parse(bytes).unwrap());
    // The writer-side getters agree with the parser.
    let panic = record.panic();
    assert_eq!(panic.phase(), Decoded::Known(PanicPhase::Halted));
    assert_eq!(panic.message().as_str(), Some(MESSAGE));
    assert_eq!(panic.notifiers_dropped(), 1);
    assert_eq!(
        record.notifier(1).map(|n| n.outcome()),
        Some(Decoded::Known(NotifierOutcome::SkippedLockBusy))
    );
}

#[test]
fn the_parser_ignores_what_follows_the_record() {
    let mut bytes = filled_bytes();
    bytes.extend_from_slice(&[0xAA; 100]);
    let view = RecordView::parse(&bytes).unwrap();
    assert_eq!(view.bytes().len(), Record::TOTAL_SIZE);
    check_filled(&view);
}

#[test]
fn scan_finds_the_record_at_an_aligned_offset() {
    let record = filled_bytes();
    let mut memory = vec![0x5Au8; 8192];
    // A stray magic (no valid header after it), and one at an unaligned
    // offset, which a scan does not look at.
    memory[8..16].copy_from_slice(&layout::MAGIC);
    memory[101..109].copy_from_slice(&layout::MAGIC);
    memory[4096..4096 + record.len()].copy_from_slice(&record);
    let found: Vec<_> = scan(&memory).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, 8);
    assert!(found[0].1.is_err());
    assert_eq!(found[1].0, 4096);
    check_filled(found[1].1.as_ref().unwrap());
    // A record that ends exactly at the end of the image.
    let tail = memory.len() - record.len();
    let tail = tail - tail % 8;
    memory[tail..tail + record.len()].copy_from_slice(&record);
    let last = scan(&memory).last().unwrap();
    assert_eq!(last.0, tail);
    assert!(last.1.is_ok());
}

/// Re-lay a version-1 record as a later writer might: 16 more bytes of
/// (unknown) header fields before the section table, 4 more bytes per table
/// entry, 8 more bytes at the end of every slot, and an extra section of an
/// unknown kind placed first. Version-1 readers must read it unchanged.
fn grown(v1: &[u8]) -> Vec<u8> {
    const EXTRA_FIXED: usize = 16;
    const ENTRY: usize = layout::SECTION_ENTRY_SIZE + 4;
    const SLOT_EXTRA: usize = 8;
    let table = layout::HEADER_FIXED_SIZE + EXTRA_FIXED;
    let sections = layout::SECTION_COUNT;
    let header_size = table + (sections + 1) * ENTRY;
    let mut out = vec![0u8; header_size];
    out[..layout::HEADER_FIXED_SIZE].copy_from_slice(&v1[..layout::HEADER_FIXED_SIZE]);
    out[layout::HEADER_FIXED_SIZE..table].fill(0xEE);
    // The unknown section: two 12-byte slots.
    let unknown_at = out.len();
    out.extend_from_slice(&[0x77; 24]);
    let mut entries = vec![(99u32, unknown_at as u32, 2u32, 12u32)];
    for index in 0..sections {
        let at = header::SECTION_TABLE + index * layout::SECTION_ENTRY_SIZE;
        let kind = get_u32(v1, at + section_entry::KIND);
        let offset = get_u32(v1, at + section_entry::OFFSET) as usize;
        let count = get_u32(v1, at + section_entry::COUNT) as usize;
        let slot = get_u32(v1, at + section_entry::SLOT_SIZE) as usize;
        let new_offset = out.len();
        for i in 0..count {
            out.extend_from_slice(&v1[offset + i * slot..offset + (i + 1) * slot]);
            out.extend_from_slice(&[0xEE; SLOT_EXTRA]);
        }
        entries.push((
            kind,
            new_offset as u32,
            count as u32,
            (slot + SLOT_EXTRA) as u32,
        ));
    }
    for (index, (kind, offset, count, slot)) in entries.into_iter().enumerate() {
        let at = table + index * ENTRY;
        put_u32(&mut out, at + section_entry::KIND, kind);
        put_u32(&mut out, at + section_entry::OFFSET, offset);
        put_u32(&mut out, at + section_entry::COUNT, count);
        put_u32(&mut out, at + section_entry::SLOT_SIZE, slot);
        put_u32(&mut out, at + 16, 0xEEEE_EEEE);
    }
    put_u16(&mut out, header::HEADER_SIZE, header_size as u16);
    put_u16(&mut out, header::SECTION_TABLE_OFFSET, table as u16);
    put_u16(&mut out, header::SECTION_ENTRY_SIZE, ENTRY as u16);
    put_u32(&mut out, header::SECTION_COUNT, sections as u32 + 1);
    let total = out.len();
    put_u32(&mut out, header::TOTAL_SIZE, total as u32);
    out
}

#[test]
fn a_grown_record_reads_the_same() {
    let bytes = grown(&filled_bytes());
    let view = RecordView::parse(&bytes).unwrap();
    check_filled(&view);
    let sections: Vec<_> = view.sections().collect();
    assert_eq!(sections.len(), layout::SECTION_COUNT + 1);
    assert_eq!(
        sections[0].kind, 99,
        "unknown kinds are listed, not refused"
    );
    assert_eq!(sections[2].slot_size as usize, layout::cpu::SIZE + 8);
}

#[test]
fn a_slot_from_before_the_control_state_has_none() {
    // A version-1 writer from before the control state wrote 200-byte CPU
    // slots; the reader takes the stride from the table and finds no
    // control state in them, rather than reading the next slot's bytes.
    let mut bytes = filled_bytes();
    let at = header::SECTION_TABLE + layout::SECTION_ENTRY_SIZE + section_entry::SLOT_SIZE;
    bytes[at..at + 4].copy_from_slice(&(layout::cpu::MIN_SIZE as u32).to_le_bytes());
    let view = RecordView::parse(&bytes).unwrap();
    let cpu = view.cpu(0).unwrap();
    assert_eq!(cpu.state(), Decoded::Known(CpuState::Stopped));
    assert!(cpu.has_registers());
    assert_eq!(cpu.control(), None);
}

#[test]
fn a_big_endian_record_reads_the_same() {
    // Byte-swap every integer field of the filled record, as a big-endian
    // writer would have laid it out.
    let le = filled_bytes();
    let mut be = le.clone();
    let swap = |bytes: &mut [u8], at: usize, width: usize| bytes[at..at + width].reverse();
    let mut fields: Vec<(usize, usize)> = vec![
        (header::VERSION, 2),
        (header::HEADER_SIZE, 2),
        (header::BYTE_ORDER, 4),
        (header::TOTAL_SIZE, 4),
        (header::SECTION_TABLE_OFFSET, 2),
        (header::SECTION_ENTRY_SIZE, 2),
        (header::SECTION_COUNT, 4),
    ];
    for i in 0..layout::SECTION_COUNT * 4 {
        fields.push((header::SECTION_TABLE + i * 4, 4));
    }
    let panic = Record::PANIC_OFFSET;
    for i in 0..22 {
        fields.push((panic + i * 4, 4));
    }
    for i in 0..layout::panic::STAMP_COUNT {
        fields.push((panic + layout::panic::STAMPS + i * 8, 8));
    }
    for i in 0..layout::panic::ESCALATION_LOG_LEN {
        let at = panic + layout::panic::ESCALATION_LOG + i * 16;
        fields.extend([(at, 4), (at + 4, 4), (at + 8, 8)]);
    }
    for c in 0..4 {
        let at = Record::CPUS_OFFSET + c * layout::cpu::SIZE;
        fields.extend([(at, 4), (at + 4, 4), (at + 8, 4), (at + 12, 4)]);
        for i in 0..2 + 21 {
            fields.push((at + 16 + i * 8, 8));
        }
        fields.extend([(at + layout::cpu::CONTROL_VALID, 4), (at + 204, 4)]);
        for i in 0..layout::cpu::CONTROL_COUNT {
            fields.push((at + layout::cpu::CONTROL + i * 8, 8));
        }
        for i in 0..4 {
            fields.push((at + layout::cpu::SELECTORS + i * 2, 2));
        }
    }
    for n in 0..3 {
        let at = Record::NOTIFIERS_OFFSET + n * layout::notifier::SIZE;
        fields.extend([(at, 4), (at + 4, 4), (at + 8, 4), (at + 12, 4)]);
        fields.extend([(at + 16, 8), (at + 24, 4), (at + 28, 4)]);
    }
    let dump = Record::DUMP_OFFSET;
    for i in 0..6 {
        fields.push((dump + i * 4, 4));
    }
    for i in 0..4 {
        fields.push((dump + layout::dump::PAGES_WRITTEN + i * 8, 8));
    }
    for i in 0..layout::dump::CHANGED_CAPACITY {
        let at = dump + layout::dump::CHANGED + i * layout::dump::changed::SIZE;
        fields.extend([(at, 8), (at + 8, 8), (at + 16, 4), (at + 20, 4)]);
    }
    for i in 0..crashkit_record::DEFAULT_EXCLUSIONS {
        let at = Record::EXCLUSIONS_OFFSET + i * layout::exclusion::SIZE;
        fields.extend([(at, 4), (at + 4, 4), (at + 8, 8), (at + 16, 8)]);
    }
    for (at, width) in fields {
        swap(&mut be, at, width);
    }
    let view = RecordView::parse(&be).unwrap();
    check_filled_sections(&view);
    assert_eq!(view.header().byte_order, ByteOrder::Big);
    let panic = view.panic();
    assert_eq!(panic.phase(), Decoded::Known(PanicPhase::Halted));
    assert_eq!(panic.message().as_str(), Some(MESSAGE));
    assert_eq!(view.cpu(0).and_then(|c| c.frame()), Some(frame(0x1000)));
    assert_eq!(view.notifier(1).map(|n| n.priority()), Some(-5));
}

#[test]
fn an_owner_without_a_cpu_index_reads_as_unregistered() {
    let record = Record::new();
    let panic = record.panic();
    assert!(
        !RecordView::parse(&snapshot(&record))
            .unwrap()
            .panic()
            .owner_unregistered()
    );
    panic.set_owner(crashkit_nmi::CpuIndex::UNKNOWN);
    assert_eq!(panic.owner(), Some(crashkit_nmi::CpuIndex::UNKNOWN));
    panic.set_phase(PanicPhase::Claimed);
    let bytes = snapshot(&record);
    let view = RecordView::parse(&bytes).unwrap();
    assert_eq!(view.panic().owner_cpu(), None);
    assert!(view.panic().owner_unregistered());
    let summary = crashkit_record::Summary(&view).to_string();
    assert!(
        summary.contains("panic on a CPU without an index"),
        "{summary}"
    );
}

fn snapshot(record: &Record) -> Vec<u8> {
    let mut bytes = vec![0; Record::TOTAL_SIZE];
    record.snapshot(&mut bytes).unwrap();
    bytes
}
