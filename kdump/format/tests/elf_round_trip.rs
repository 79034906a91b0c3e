//! The ELF writer and reader against each other: every page of a synthetic
//! machine reads back in the state it was written in, and a dump cut or
//! failed at any write never reads as complete.

mod common;

use common::{DeviceError, DeviceSink, Machine, Memory, VecSink, standard_zero, write};
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::plan::PlanError;
use crashkit_dump_format::read::{Completeness, Incomplete, PageState, Producer};
use crashkit_dump_format::write::{DumpError, WriteOptions};
use crashkit_dump_format::{PAGE_SIZE, PhysRange, write_elf_dump};

/// Check every page of the machine's ranges against the dump.
fn check_pages(dump: &ElfDump<'_>, machine: &Machine, memory: &Memory, expect_zero_excluded: bool) {
    for range in &machine.ranges {
        for phys in (range.start..range.start + range.len).step_by(PAGE_SIZE as usize) {
            let secret = machine
                .exclusions
                .iter()
                .any(|e| e.start < phys + PAGE_SIZE && phys < e.start + e.len);
            let span = dump.classify(phys);
            let mut page = [0u8; 4096];
            if secret {
                assert_eq!(span.state, PageState::Excluded, "secret page {phys:#x}");
                assert!(dump.read_phys(phys, &mut page).is_err());
                continue;
            }
            let zero = standard_zero(phys);
            let expected_state = if zero && expect_zero_excluded {
                PageState::Zero
            } else {
                PageState::Present
            };
            assert_eq!(span.state, expected_state, "page {phys:#x}");
            dump.read_phys(phys, &mut page)
                .unwrap_or_else(|e| panic!("page {phys:#x}: {e}"));
            assert_eq!(page, memory.expected(phys), "bytes of page {phys:#x}");
        }
    }
}

#[test]
fn every_page_reads_back_in_its_state() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (file, stats) = write(&machine.plan(), &mut memory);
    let dump = ElfDump::parse(&file).expect("parse");
    assert_eq!(dump.damage(), &[], "no damage");
    assert_eq!(dump.producer(), Producer::Crashkit);
    assert_eq!(dump.completeness(), Completeness::Complete);
    assert!(stats.complete);
    assert_eq!(stats.total_length, file.len() as u64);
    check_pages(&dump, &machine, &memory, true);

    // Accounting: every page looked at is written, zero or secret.
    assert_eq!(
        stats.pages_written + stats.zero_pages_excluded + stats.secret_pages_excluded,
        stats.pages_total
    );
    // And the reader's counts, from the headers and the memory map alone,
    // say what classifying every page says (per physical page: the kernel
    // image's copy at its link addresses is the same memory).
    let counts = dump.page_counts();
    let top = machine
        .ranges
        .iter()
        .map(|r| r.start + r.len)
        .max()
        .unwrap();
    let mut tally = crashkit_dump_format::read::PageCounts::default();
    for phys in (0..top).step_by(4096) {
        tally.add(dump.classify(phys).state, 1);
    }
    assert_eq!(counts, tally);
    assert_eq!(counts.lost, 0);
    assert!(
        counts.present > 1000 && counts.zero > 100 && counts.excluded >= 1,
        "{counts:?}"
    );
    assert_eq!(
        stats.secret_pages_excluded, 2,
        "the secret, once as image and once as range"
    );
    assert_eq!(stats.segments as usize, dump.segments().len());

    // Holes: below, between and above the ranges.
    for hole in [0u64, 0xa0000, 0xf_f000, 0x50_0000, u64::MAX - 10] {
        assert_eq!(dump.classify(hole).state, PageState::Hole, "{hole:#x}");
    }
    assert_eq!(dump.classify(0xa0000).len, 0x10_0000 - 0xa0000);

    // The CPUs: the panicking one first, registers and control state.
    let cpus = dump.cpus();
    assert_eq!(cpus.len(), 4);
    assert_eq!(cpus.iter().map(|c| c.pid).collect::<Vec<_>>(), [3, 1, 2, 4]);
    for cpu in cpus {
        let index = cpu.pid - 1;
        let expected = common::cpu_state(index);
        assert_eq!(
            cpu.registers,
            crashkit_dump_format::read::CpuRegisters::X86_64(expected.registers)
        );
        assert_eq!(cpu.control, Some(expected.control));
        assert_eq!(cpu.cr3(), expected.control.cr3);
    }

    // VMCOREINFO, the record, the identity.
    let info = dump.vmcoreinfo().expect("vmcoreinfo");
    assert_eq!(info.get("OSRELEASE"), Some("crashkit-test"));
    let crashkit = dump.crashkit().expect("crashkit notes");
    assert_eq!(crashkit.crash_record, Some(&machine.record[..]));
    assert_eq!(crashkit.memory_map, machine.ranges);
    assert_eq!(crashkit.identity.panic_cpu, Some(2));
    assert_eq!(crashkit.identity.dump_id, *b"0123456789abcdef");

    // The kernel image is there at its link addresses: its first segment.
    let image = dump.segments()[0];
    assert_eq!(
        (image.paddr, image.vaddr),
        (0x10_0000, 0xffff_ffff_8010_0000)
    );
    // Range segments carry direct-map addresses.
    let direct = dump.segments().iter().find(|s| s.paddr == 0x1000).unwrap();
    assert_eq!(direct.vaddr, 0xffff_8880_0000_1000);
}

#[test]
fn progress_is_reported_in_order_up_to_the_total() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let mut reports = Vec::new();
    let options = WriteOptions {
        progress_pages: 100,
        ..WriteOptions::default()
    };
    let mut sink = VecSink::default();
    let stats = write_elf_dump(
        &machine.plan(),
        &mut memory,
        &mut sink,
        &mut |_| false,
        options,
        |p| reports.push(*p),
    )
    .unwrap();
    assert!(reports.len() as u64 >= stats.pages_total / 100);
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].pages_done <= w[1].pages_done && w[0].data_bytes <= w[1].data_bytes)
    );
    let last = reports.last().unwrap();
    assert_eq!(
        (last.pages_done, last.pages_total),
        (stats.pages_total, stats.pages_total)
    );
    assert_eq!(last.data_bytes, stats.pages_written * PAGE_SIZE);
}

#[test]
fn without_zero_exclusion_zero_pages_are_present() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let plan = crashkit_dump_format::DumpPlan {
        exclude_zero_pages: false,
        ..machine.plan()
    };
    let (file, stats) = write(&plan, &mut memory);
    assert_eq!(stats.zero_pages_excluded, 0);
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
    check_pages(&dump, &machine, &memory, false);
}

#[test]
fn filtered_and_unreadable_pages_are_excluded_and_never_written() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    memory.unreadable = vec![0x5000, 0x30_5000];
    let filtered = |phys: u64| (0x1_0000..0x1_4000).contains(&phys);
    let mut sink = VecSink::default();
    let stats = write_elf_dump(
        &machine.plan(),
        &mut memory,
        &mut sink,
        &mut |phys| filtered(phys),
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        (stats.filtered_pages_excluded, stats.unreadable_pages),
        (4, 2)
    );
    let dump = ElfDump::parse(&sink.bytes).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
    for phys in [0x5000, 0x30_5000, 0x1_0000, 0x1_3000] {
        assert_eq!(dump.classify(phys).state, PageState::Excluded, "{phys:#x}");
    }
    assert_eq!(dump.classify(0x1_4000).state, PageState::Present);
    // No excluded page's bytes appear anywhere in the file.
    for phys in [0x1_0000u64, 0x1_1000, 0x20_0000] {
        let secret = common::pattern(phys);
        assert!(
            !sink.bytes.windows(64).any(|w| w == &secret[..64]),
            "page {phys:#x} leaked into the file"
        );
    }
}

#[test]
fn with_no_extra_slot_zero_runs_are_written_and_reads_stay_right() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let plan = crashkit_dump_format::DumpPlan {
        extra_segments: 0,
        ..machine.plan()
    };
    let (file, stats) = write(&plan, &mut memory);
    assert!(stats.zero_pages_written > 0);
    assert_eq!(stats.extra_segments_used, 0);
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
    for range in &machine.ranges {
        for phys in (range.start..range.start + range.len).step_by(4096) {
            let mut page = [0u8; 4096];
            if dump.classify(phys).state == PageState::Excluded {
                continue;
            }
            dump.read_phys(phys, &mut page).unwrap();
            assert_eq!(page, memory.expected(phys));
        }
    }
}

#[test]
fn transient_sink_failures_are_retried() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let mut sink = DeviceSink::new(8 << 20, 0);
    sink.transient_failures = 1;
    let stats = write_elf_dump(
        &machine.plan(),
        &mut memory,
        &mut sink,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    assert!(stats.sink_retries > 0);
    let dump = ElfDump::parse(&sink.bytes).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
    check_pages(&dump, &machine, &memory, true);
}

#[test]
fn a_full_device_leaves_a_readable_incomplete_dump() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let mut sink = DeviceSink::new(2 << 20, 0xaa);
    let options = WriteOptions {
        checkpoint_pages: 64,
        ..WriteOptions::default()
    };
    let error = write_elf_dump(
        &machine.plan(),
        &mut memory,
        &mut sink,
        &mut |_| false,
        options,
        |_| {},
    )
    .unwrap_err();
    let DumpError::Sink { error, stats, .. } = error else {
        panic!("expected a sink error, got {error:?}");
    };
    assert_eq!(error, DeviceError::NoSpace);
    assert!(!stats.complete);
    let dump = ElfDump::parse(&sink.bytes).unwrap();
    assert!(matches!(dump.completeness(), Completeness::Incomplete(_)));
    let mut present = 0;
    let mut lost = 0;
    for range in &machine.ranges {
        for phys in (range.start..range.start + range.len).step_by(4096) {
            let mut page = [0u8; 4096];
            match dump.classify(phys).state {
                PageState::Present | PageState::Zero => {
                    dump.read_phys(phys, &mut page).unwrap();
                    assert_eq!(page, memory.expected(phys), "page {phys:#x}");
                    present += 1;
                }
                PageState::Lost => lost += 1,
                PageState::Excluded => {}
                PageState::Hole | PageState::Corrupt | PageState::InOtherPart => {
                    panic!("a page of the map reads as a hole, corrupt or in another part")
                }
            }
        }
    }
    assert!(
        present > 100 && lost > 100,
        "present {present}, lost {lost}"
    );
}

#[test]
fn a_dump_cut_at_any_write_over_an_older_one_never_reads_as_complete() {
    // A small machine, so that every prefix of the write sequence is tried.
    let ranges = [
        PhysRange::new(0x10_0000, 0x8000),
        PhysRange::new(0x20_0000, 0x4000),
    ];
    let older_memory = Memory::patterned(&ranges, |p| p == 0x10_3000);
    let newer_memory = Memory::patterned(&ranges, |p| p == 0x20_1000 || p == 0x10_5000);
    let mut machine = Machine::new();
    machine.ranges = ranges.to_vec();
    machine.exclusions.clear();
    machine.kernel = None;

    // The older dump fills the device first.
    let mut device = DeviceSink::new(1 << 20, 0);
    let mut older = older_memory;
    write_elf_dump(
        &machine.plan(),
        &mut older,
        &mut device,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    let old_image = device.bytes.clone();
    assert_eq!(
        ElfDump::parse(&old_image).unwrap().completeness(),
        Completeness::Complete
    );

    // Count the newer dump's writes, then replay every prefix of them.
    struct Recorder(Vec<(u64, Vec<u8>)>);
    impl crashkit_dump_format::DumpSink for Recorder {
        type Error = ();
        fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ()> {
            self.0.push((offset, bytes.to_vec()));
            Ok(())
        }
    }
    let newer_plan = crashkit_dump_format::DumpPlan {
        dump_id: *b"fedcba9876543210",
        ..machine.plan()
    };
    let mut recorder = Recorder(Vec::new());
    let mut newer = newer_memory;
    write_elf_dump(
        &newer_plan,
        &mut newer,
        &mut recorder,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    let writes = recorder.0;
    assert!(writes.len() > 20);
    for done in 0..=writes.len() {
        let mut image = old_image.clone();
        for (offset, bytes) in &writes[..done] {
            image[*offset as usize..*offset as usize + bytes.len()].copy_from_slice(bytes);
        }
        let Ok(dump) = ElfDump::parse(&image) else {
            continue;
        };
        let id = dump.crashkit().map(|c| c.identity.dump_id);
        match dump.completeness() {
            Completeness::Complete => assert!(
                (done == 0 && id == Some(*b"0123456789abcdef"))
                    || (done == writes.len() && id == Some(*b"fedcba9876543210")),
                "prefix of {done} of {} writes reads as complete",
                writes.len()
            ),
            Completeness::Incomplete(_) => {}
            Completeness::Unknown => panic!("a crashkit dump is never of unknown completeness"),
        }
        // Whatever it says, present pages hold the newer dump's bytes once
        // its identity is in place.
        if id == Some(*b"fedcba9876543210") {
            for phys in (0x10_0000..0x10_8000)
                .chain(0x20_0000..0x20_4000)
                .step_by(4096)
            {
                let mut page = [0u8; 4096];
                if dump.read_phys(phys, &mut page).is_ok() {
                    assert_eq!(page, newer.expected(phys), "prefix {done}, page {phys:#x}");
                }
            }
        }
    }
    // The file cut at every byte (the newer dump alone) never reads as complete.
    let mut sink = VecSink::default();
    let mut newer_again = Memory::patterned(&ranges, |p| p == 0x20_1000 || p == 0x10_5000);
    write_elf_dump(
        &newer_plan,
        &mut newer_again,
        &mut sink,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    let whole = sink.bytes;
    for cut in (0..whole.len()).step_by(7).chain([whole.len() - 1]) {
        if let Ok(dump) = ElfDump::parse(&whole[..cut]) {
            assert_ne!(dump.completeness(), Completeness::Complete, "cut at {cut}");
        }
    }
    assert_eq!(
        ElfDump::parse(&whole).unwrap().completeness(),
        Completeness::Complete
    );
}

#[test]
fn a_stale_marker_names_the_older_dump() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (mut file, _) = write(&machine.plan(), &mut memory);
    // Rewrite the identity with another dump id, as a newer dump's header
    // area would: the marker no longer matches.
    let dump = ElfDump::parse(&file).unwrap();
    let identity_desc = dump.crashkit().unwrap().identity_offset as usize + 12 + 12;
    file[identity_desc + 8] ^= 0xff;
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(
        dump.completeness(),
        Completeness::Incomplete(Incomplete::StaleMarker)
    );
    // A changed program header fails the header checksum.
    let (mut file, _) = write(&machine.plan(), &mut memory);
    file[64 + 56 + 24] ^= 0x10;
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(
        dump.completeness(),
        Completeness::Incomplete(Incomplete::HeaderChecksum)
    );
}

#[test]
fn crashkit_notes_in_another_tools_headers_do_not_vouch_for_zeros() {
    // As makedumpfile -E does: keep every note, write its own program
    // headers (here: a segment's last page left out as `p_memsz > p_filesz`).
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (mut file, _) = write(&machine.plan(), &mut memory);
    let dump = ElfDump::parse(&file).unwrap();
    assert!(dump.crashkit_segments_trusted());
    let (index, segment) = dump
        .segments()
        .iter()
        .enumerate()
        .find(|(_, s)| s.filesz >= 2 * PAGE_SIZE && s.paddr < 0x10_0000)
        .map(|(i, s)| (i, *s))
        .unwrap();
    let last_page = segment.paddr + segment.filesz - PAGE_SIZE;
    let filesz_at = 64 + 56 * (index + 1) + 32;
    file[filesz_at..filesz_at + 8].copy_from_slice(&(segment.filesz - PAGE_SIZE).to_le_bytes());
    let dump = ElfDump::parse(&file).unwrap();
    assert!(!dump.crashkit_segments_trusted());
    assert_eq!(
        dump.completeness(),
        Completeness::Incomplete(Incomplete::HeaderChecksum)
    );
    assert_eq!(
        dump.classify(last_page).state,
        PageState::Excluded,
        "not zero"
    );
    assert!(
        dump.crashkit().unwrap().crash_record.is_some(),
        "the notes are still read"
    );
}

#[test]
fn more_than_65534_segments_use_pn_xnum() {
    // 70,000 one-page ranges, 2 pages apart: one segment each.
    let ranges: Vec<PhysRange> = (0..70_000u64)
        .map(|i| PhysRange::new(0x10_0000 + i * 0x2000, 0x1000))
        .collect();
    let mut memory = Memory::patterned(&ranges, |p| (p / 0x2000) % 2 == 0);
    let mut machine = Machine::new();
    machine.ranges = ranges.clone();
    machine.exclusions.clear();
    machine.kernel = None;
    let (file, stats) = write(&machine.plan(), &mut memory);
    assert_eq!(stats.segments, 70_000);
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(dump.header().e_phnum, 0xffff);
    assert_eq!(dump.program_header_count(), 70_001);
    assert_eq!(dump.segments().len(), 70_000);
    assert_eq!(dump.completeness(), Completeness::Complete);
    for range in ranges.iter().step_by(997) {
        let mut page = [0u8; 4096];
        dump.read_phys(range.start, &mut page).unwrap();
        assert_eq!(page, memory.expected(range.start));
    }
}

#[test]
fn bad_plans_are_refused_before_any_write() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let cases: [(Vec<PhysRange>, Vec<PhysRange>, PlanError); 4] = [
        (
            vec![PhysRange::new(0x1001, 0x1000)],
            vec![],
            PlanError::BadRange { index: 0 },
        ),
        (
            vec![
                PhysRange::new(0x2000, 0x2000),
                PhysRange::new(0x3000, 0x1000),
            ],
            vec![],
            PlanError::RangesNotSorted { index: 1 },
        ),
        (
            vec![PhysRange::new(u64::MAX - 0xfff, 0x1000)],
            vec![],
            PlanError::BadRange { index: 0 },
        ),
        (
            vec![PhysRange::new(0x1000, 0x1000)],
            vec![PhysRange::new(0x5000, 1), PhysRange::new(0x1000, 1)],
            PlanError::BadExclusion { index: 1 },
        ),
    ];
    for (ranges, exclusions, expected) in cases {
        let plan = crashkit_dump_format::DumpPlan {
            ranges: &ranges,
            exclusions: &exclusions,
            kernel_image: None,
            ..machine.plan()
        };
        let mut sink = VecSink::default();
        let error = write_elf_dump(
            &plan,
            &mut memory,
            &mut sink,
            &mut |_| false,
            WriteOptions::default(),
            |_| {},
        )
        .unwrap_err();
        assert_eq!(error, DumpError::Plan(expected));
        assert_eq!(sink.writes, 0);
    }
}

/// crash takes an ELF vmcore whose first `PT_LOAD` has a page-aligned
/// offset and a non-zero `p_align` for the netdump format and will not
/// open it as a kdump vmcore: every `PT_LOAD` has `p_align` 0, as Linux's,
/// QEMU's and makedumpfile's. (`p_align` is the last u64 of the 56-byte
/// `Elf64_Phdr`, @48; `e_phoff` @32, `e_phnum` @56 of the header.)
#[test]
fn every_load_segment_has_p_align_0() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (file, _) = write(&machine.plan(), &mut memory);
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    let phoff = u64_at(32) as usize;
    let phnum = u16::from_le_bytes([file[56], file[57]]) as usize;
    let mut loads = 0;
    for i in 0..phnum {
        let ph = phoff + i * 56;
        if u32::from_le_bytes(file[ph..ph + 4].try_into().unwrap()) == 1 {
            assert_eq!(u64_at(ph + 48), 0, "PT_LOAD {i}");
            loads += 1;
        }
    }
    assert!(loads > 2, "{loads} PT_LOADs");
}

/// A plan's PIDs are written as given (`crashkit convert` keeps Linux's,
/// where idle CPUs repeat PID 0), and each CPU still gets its own control
/// state: the reader pairs control-state notes with CPU notes by position.
#[test]
fn given_pids_are_kept_and_control_states_pair_by_position() {
    let mut machine = Machine::new();
    for (cpu, pid) in machine.cpus.iter_mut().zip([0, 0, 731, 0]) {
        cpu.pid = Some(pid);
    }
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (file, _) = write(&machine.plan(), &mut memory);
    let dump = ElfDump::parse(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(dump.damage().is_empty(), "{:?}", dump.damage());
    // The panicking CPU (2) first, then the others in order.
    let read: Vec<(u32, Option<u32>)> = dump
        .cpus()
        .iter()
        .map(|c| (c.pid, c.control.map(|s| s.cpu)))
        .collect();
    assert_eq!(
        read,
        [(731, Some(2)), (0, Some(0)), (0, Some(1)), (0, Some(3))]
    );
    for cpu in dump.cpus() {
        let index = cpu.control.map(|s| s.cpu).unwrap_or(u32::MAX) as usize;
        assert_eq!(cpu.control, Some(machine.cpus[index].control));
    }
}
