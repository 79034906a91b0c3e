//! The kdump-compressed writer against the reader: every page in its state
//! with its bytes, raw and zlib, and a dump cut anywhere never reads as
//! complete.

mod common;

use common::{Machine, Memory, VecSink, standard_zero};
use crashkit_dump_format::compressed::writer::{
    LzoPages, PageEncoder, RawPages, ZlibPages, write_kdump,
};
use crashkit_dump_format::reader::{Completeness, PageState};
use crashkit_dump_format::writer::WriteOptions;
use crashkit_dump_format::{KdumpDump, PAGE_SIZE};

/// Write the standard machine; a third of its pages compressible text.
fn write_with(encoder: &mut impl PageEncoder) -> (Machine, Memory, Vec<u8>) {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let text = b"crashkit writes kdump-compressed dumps; ".repeat(110);
    for (phys, page) in memory.pages.iter_mut() {
        if (phys / 4096) % 3 == 0 {
            page.copy_from_slice(&text[..4096]);
        }
    }
    let mut sink = VecSink::default();
    let stats = write_kdump(
        &machine.plan(),
        &mut memory,
        &mut sink,
        &mut |_| false,
        encoder,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(stats.complete);
    assert_eq!(stats.total_length, sink.bytes.len() as u64);
    assert_eq!(
        stats.pages_dumpable + stats.excluded_pages,
        stats.pages_total,
        "{stats:?}"
    );
    (machine, memory, sink.bytes)
}

fn check_pages(dump: &KdumpDump<'_>, machine: &Machine, memory: &Memory) {
    let mut page = vec![0u8; 4096];
    for range in &machine.ranges {
        for phys in (range.start..range.start + range.len).step_by(PAGE_SIZE as usize) {
            let secret = machine
                .exclusions
                .iter()
                .any(|e| e.start < phys + PAGE_SIZE && phys < e.start + e.len);
            match dump.read_page(phys / PAGE_SIZE, &mut page) {
                Ok(()) => {
                    assert!(!secret, "secret page {phys:#x} was written");
                    assert_eq!(page, memory.expected(phys), "page {phys:#x}");
                }
                Err(problem) => {
                    assert!(secret, "page {phys:#x}: {problem:?}");
                    assert_eq!(problem.state, PageState::Excluded);
                }
            }
        }
    }
    for hole in [0u64, 0xa0000, 0xf_f000] {
        assert_eq!(dump.classify(hole).state, PageState::Hole, "{hole:#x}");
    }
}

#[test]
fn raw_and_zlib_dumps_read_back_complete() {
    let (machine, memory, raw) = write_with(&mut RawPages);
    let dump = KdumpDump::parse(&raw).unwrap();
    assert_eq!(dump.damage(), &[]);
    assert_eq!(dump.completeness(), Completeness::Complete);
    assert_eq!(dump.cpus().len(), 4);
    assert_eq!(dump.cpus()[0].pid, 3, "the panicking CPU first");
    assert_eq!(
        dump.vmcoreinfo().unwrap().get("OSRELEASE"),
        Some("crashkit-test")
    );
    assert_eq!(
        dump.crashkit().unwrap().crash_record,
        Some(&machine.record[..])
    );
    check_pages(&dump, &machine, &memory);

    let (machine, memory, zlib) = write_with(&mut ZlibPages::new(1));
    let dump = KdumpDump::parse(&zlib).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
    assert_eq!(dump.header().status & 0x1, 0x1, "zlib named in the status");
    check_pages(&dump, &machine, &memory);
    assert!(
        zlib.len() < raw.len() * 8 / 10,
        "{} vs {}",
        zlib.len(),
        raw.len()
    );

    let (machine, memory, lzo) = write_with(&mut LzoPages::default());
    let dump = KdumpDump::parse(&lzo).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
    assert_eq!(dump.header().status & 0x2, 0x2, "LZO named in the status");
    check_pages(&dump, &machine, &memory);
    assert!(
        lzo.len() < raw.len() * 8 / 10,
        "{} vs {}",
        lzo.len(),
        raw.len()
    );
}

#[test]
fn a_cut_dump_never_reads_as_complete_and_keeps_its_pages() {
    let (machine, memory, file) = write_with(&mut ZlibPages::new(1));
    let mut page = vec![0u8; 4096];
    for cut in (0..file.len()).step_by(4093).chain([file.len() - 1]) {
        let Ok(dump) = KdumpDump::parse(&file[..cut]) else {
            continue;
        };
        assert_ne!(dump.completeness(), Completeness::Complete, "cut at {cut}");
        // What reads, reads right.
        for range in &machine.ranges {
            for phys in (range.start..range.start + range.len).step_by(4096 * 7) {
                if dump.read_page(phys / 4096, &mut page).is_ok() {
                    assert_eq!(page, memory.expected(phys), "cut at {cut}, page {phys:#x}");
                }
            }
        }
    }
}

#[test]
fn a_flipped_header_byte_fails_the_checksum() {
    let (_, _, file) = write_with(&mut RawPages);
    let dump = KdumpDump::parse(&file).unwrap();
    let bitmaps = (1 + dump.header().sub_hdr_size as usize) * 4096;
    for at in [12usize, 4096 + 8, bitmaps + 100] {
        let mut bad = file.clone();
        bad[at] ^= 0x20;
        if let Ok(dump) = KdumpDump::parse(&bad) {
            assert_ne!(dump.completeness(), Completeness::Complete, "flip at {at}");
        }
    }
}
