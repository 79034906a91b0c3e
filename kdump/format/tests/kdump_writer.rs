//! The kdump-compressed writer against the reader: every page in its state
//! with its bytes, raw and zlib, and a dump cut anywhere never reads as
//! complete.

mod common;

use common::{DeviceSink, Machine, Memory, VecSink, standard_zero};
use crashkit_dump_format::compressed::writer::{
    LzoPages, PageEncoder, RawPages, ZlibPages, write_kdump,
};
use crashkit_dump_format::read::{Completeness, PageState};
use crashkit_dump_format::sink::Coalescing;
use crashkit_dump_format::write::WriteOptions;
use crashkit_dump_format::{KdumpDump, PAGE_SIZE};

/// The standard machine's memory; a third of its pages compressible text.
fn memory_of(machine: &Machine) -> Memory {
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let text = b"crashkit writes kdump-compressed dumps; ".repeat(110);
    for (phys, page) in memory.pages.iter_mut() {
        if (phys / 4096) % 3 == 0 {
            page.copy_from_slice(&text[..4096]);
        }
    }
    memory
}

/// Write the standard machine (see [`memory_of`]).
fn write_with(encoder: &mut impl PageEncoder) -> (Machine, Memory, Vec<u8>) {
    let machine = Machine::new();
    let mut memory = memory_of(&machine);
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

    let (machine, memory, zlib) = write_with(&mut ZlibPages::new());
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
    let (machine, memory, file) = write_with(&mut ZlibPages::new());
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

#[test]
fn a_coalescing_sink_writes_the_same_file_in_few_writes() {
    let machine = Machine::new();
    fn write<S: crashkit_dump_format::DumpSink>(machine: &Machine, sink: &mut S)
    where
        S::Error: std::fmt::Debug,
    {
        write_kdump(
            &machine.plan(),
            &mut memory_of(machine),
            sink,
            &mut |_| false,
            &mut ZlibPages::new(),
            WriteOptions::default(),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    }
    let mut direct = VecSink::default();
    write(&machine, &mut direct);
    let mut buffered = Coalescing::<_, 65536>::new(VecSink::default());
    write(&machine, &mut buffered);
    let buffered = buffered.into_inner();
    assert!(
        buffered.bytes == direct.bytes,
        "the same bytes through the buffer"
    );
    assert!(
        buffered.writes * 10 < direct.writes,
        "{} writes through the buffer, {} without",
        buffered.writes,
        direct.writes
    );
    assert_eq!(
        buffered.flushes, direct.flushes,
        "the protocol's flushes reach the inner sink"
    );
}

#[test]
fn a_coalescing_sink_on_a_full_device_leaves_an_incomplete_dump_that_reads_right() {
    let machine = Machine::new();
    let memory = memory_of(&machine);
    let (_, _, whole) = write_with(&mut LzoPages::default());
    let mut page = vec![0u8; 4096];
    for size in [whole.len() / 3, whole.len() * 2 / 3, whole.len() - 100] {
        let mut device = Coalescing::<_, 16384>::new(DeviceSink::new(size, 0xa5));
        device.get_mut().transient_failures = 1;
        let result = write_kdump(
            &machine.plan(),
            &mut memory_of(&machine),
            &mut device,
            &mut |_| false,
            &mut LzoPages::default(),
            WriteOptions::default(),
            |_| {},
        );
        assert!(
            result.is_err(),
            "a device of {size} bytes cannot hold {}",
            whole.len()
        );
        let bytes = device.into_inner().bytes;
        let dump = KdumpDump::parse(&bytes).unwrap_or_else(|e| panic!("{size}: {e}"));
        assert_ne!(
            dump.completeness(),
            Completeness::Complete,
            "device of {size}"
        );
        let mut present = 0;
        for range in &machine.ranges {
            for phys in (range.start..range.start + range.len).step_by(4096) {
                if dump.read_page(phys / 4096, &mut page).is_ok() {
                    assert_eq!(
                        page,
                        memory.expected(phys),
                        "device of {size}, page {phys:#x}"
                    );
                    present += 1;
                }
            }
        }
        assert!(
            present > 0,
            "device of {size}: the pages before the end are kept"
        );
    }
}

/// Every write, in order.
#[derive(Default)]
struct WriteLog(Vec<(u64, Vec<u8>)>);

impl crashkit_dump_format::DumpSink for WriteLog {
    type Error = std::convert::Infallible;
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.push((offset, bytes.to_vec()));
        Ok(())
    }
}

#[test]
fn every_prefix_of_a_dump_over_an_older_one_reads_only_its_own_pages() {
    let machine = Machine::new();
    // The older dump: the same machine a while before, every page different.
    let mut older_memory = memory_of(&machine);
    for page in older_memory.pages.values_mut() {
        page.iter_mut().for_each(|b| *b = !*b);
    }
    let mut older = VecSink::default();
    write_kdump(
        &machine.plan(),
        &mut older_memory,
        &mut older,
        &mut |_| false,
        &mut LzoPages::default(),
        WriteOptions::default(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let memory = memory_of(&machine);
    let mut log = WriteLog::default();
    write_kdump(
        &machine.plan(),
        &mut memory_of(&machine),
        &mut log,
        &mut |_| false,
        &mut LzoPages::default(),
        WriteOptions::default(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let mut page = vec![0u8; 4096];
    let writes = log.0.len();
    let mut device = older.bytes.clone();
    let mut checked = 0;
    for (index, (offset, bytes)) in log.0.iter().enumerate() {
        let end = *offset as usize + bytes.len();
        if device.len() < end {
            device.resize(end, 0);
        }
        device[*offset as usize..end].copy_from_slice(bytes);
        let applied = index + 1;
        // Every write near the start and the end, every 7th in between.
        if applied > 40 && applied + 40 < writes && applied % 7 != 0 {
            continue;
        }
        checked += 1;
        let Ok(dump) = KdumpDump::parse(&device) else {
            continue;
        };
        if applied < writes {
            assert_ne!(
                dump.completeness(),
                Completeness::Complete,
                "after {applied} of {writes} writes"
            );
        }
        for range in &machine.ranges {
            for phys in (range.start..range.start + range.len).step_by(4096) {
                if dump.read_page(phys / 4096, &mut page).is_ok() {
                    assert_eq!(
                        page,
                        memory.expected(phys),
                        "after {applied} of {writes} writes: page {phys:#x}"
                    );
                }
            }
        }
    }
    assert!(checked > 80, "{checked} prefixes checked");
    let dump = KdumpDump::parse(&device).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
}

#[test]
fn page_counts_come_from_the_bitmaps_and_match_what_was_written() {
    let machine = Machine::new();
    let mut sink = VecSink::default();
    let stats = write_kdump(
        &machine.plan(),
        &mut memory_of(&machine),
        &mut sink,
        &mut |_| false,
        &mut LzoPages::default(),
        WriteOptions::default(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let dump = KdumpDump::parse(&sink.bytes).unwrap();
    let counts = dump.page_counts();
    assert_eq!(counts.present, stats.pages_dumpable, "{counts:?} {stats:?}");
    assert_eq!(counts.excluded, stats.excluded_pages);
    assert_eq!(counts.lost, 0);
    assert_eq!(
        counts.present + counts.excluded + counts.hole,
        dump.frames()
    );
    // Cut inside the page data: the header still says incomplete, and the
    // descriptors never written count as lost, the rest as present.
    let cut = &sink.bytes[..sink.bytes.len() * 2 / 3];
    let dump = KdumpDump::parse(cut).unwrap();
    let cut_counts = dump.page_counts();
    assert!(cut_counts.lost > 0, "{cut_counts:?}");
    assert_eq!(cut_counts.present + cut_counts.lost, counts.present);
}

#[test]
fn memory_runs_are_the_ranges_written_whatever_their_alignment() {
    use crashkit_dump_format::PhysRange;
    // Ranges that start and end inside a bitmap byte, next to each other
    // across a byte, and a single frame: the byte-at-a-time walk must give
    // exactly these back.
    for ranges in [
        vec![
            PhysRange::new(0x1000, 0x9f000),
            PhysRange::new(0x10_0000, 0x40_0000),
        ],
        vec![
            PhysRange::new(0x3000, 0x5000),
            PhysRange::new(0x9000, 0x1000),
            PhysRange::new(0x11000, 0x17000),
        ],
        vec![PhysRange::new(0, 0x8000), PhysRange::new(0x9000, 0x7000)],
    ] {
        let mut machine = Machine::new();
        machine.ranges = ranges.clone();
        machine.exclusions.clear();
        let mut sink = VecSink::default();
        write_kdump(
            &machine.plan(),
            &mut memory_of(&machine),
            &mut sink,
            &mut |_| false,
            &mut LzoPages::default(),
            WriteOptions::default(),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let dump = KdumpDump::parse(&sink.bytes).unwrap();
        let runs: Vec<(u64, u64)> = dump
            .memory_runs()
            .iter()
            .map(|r| (r.start, r.len))
            .collect();
        let want: Vec<(u64, u64)> = ranges.iter().map(|r| (r.start, r.len)).collect();
        assert_eq!(runs, want);
    }
}

/// `machine` written with raw pages into a fresh file.
fn write_raw(machine: &Machine, memory: &mut Memory) -> Vec<u8> {
    let mut sink = VecSink::default();
    write_kdump(
        &machine.plan(),
        memory,
        &mut sink,
        &mut |_| false,
        &mut RawPages,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    sink.bytes
}

/// makedumpfile and crash read VMCOREINFO through the sub-header's
/// `offset_vmcoreinfo`/`size_vmcoreinfo`, and translate kernel-text
/// addresses with its `phys_base`: a Linux kernel's VMCOREINFO (its
/// `NUMBER(phys_base)` negative under KASLR) must land there. Offsets from
/// makedumpfile's `struct kdump_sub_header` (docs/dump-formats.md section
/// 5), not from the writer's own encoder: `phys_base` @0, `offset_vmcoreinfo`
/// @32, `size_vmcoreinfo` @40, in the block after the header.
#[test]
fn the_sub_header_points_at_vmcoreinfo_and_carries_its_phys_base() {
    let mut machine = Machine::new();
    let mut info = [0u8; 512];
    let mut writer = crashkit_dump_format::vmcoreinfo::VmcoreInfoWriter::new(&mut info);
    writer
        .os_release("6.1.0-57-amd64")
        .page_size(4096)
        .symbol("init_uts_ns", 0xffff_ffff_a07f_b000)
        .number("phys_base", -150_994_944)
        .crash_time(1_796_582_573);
    machine.vmcoreinfo = writer.as_bytes().to_vec();
    let mut memory = memory_of(&machine);
    let file = write_raw(&machine, &mut memory);
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    let sub = 4096;
    assert_eq!(u64_at(sub), (-150_994_944i64) as u64, "phys_base");
    let offset = u64_at(sub + 32) as usize;
    let size = u64_at(sub + 40) as usize;
    assert_eq!(size, machine.vmcoreinfo.len());
    assert_eq!(&file[offset..offset + size], &machine.vmcoreinfo[..]);
    // The same bytes as the VMCOREINFO note's descriptor: one copy.
    assert_eq!(&file[offset - 12..offset], b"VMCOREINFO\0\0");

    // No VMCOREINFO: no pointer, phys_base 0.
    machine.vmcoreinfo.clear();
    let file = write_raw(&machine, &mut memory);
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    assert_eq!((u64_at(sub), u64_at(sub + 32), u64_at(sub + 40)), (0, 0, 0));
    let dump = KdumpDump::parse(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(dump.damage().is_empty(), "{:?}", dump.damage());
}
