//! The kdump-compressed reader over files built by hand: every frame in its
//! state with its bytes, plain and flattened (records of any size), and
//! hostile input: hundreds of mutated files, none of which may panic, and
//! every error naming an offset.

mod common;

use common::kdump::{Frame, build, contents, flatten, mixed_frames};
use crashkit_dump_format::KdumpDump;
use crashkit_dump_format::compressed::codec::DecodeError;
use crashkit_dump_format::read::{Completeness, PageState};

fn notes() -> Vec<u8> {
    common::mutations::kdump_notes()
}

fn check_all(dump: &KdumpDump<'_>, frames: &[Frame]) {
    let mut page = vec![0u8; 4096];
    for (i, frame) in frames.iter().enumerate() {
        let result = dump.read_page(i as u64, &mut page);
        match (frame, contents(frame)) {
            (_, Some(expected)) => {
                result.unwrap_or_else(|p| panic!("frame {i}: {p:?}"));
                assert_eq!(page, expected, "frame {i}");
            }
            (Frame::Hole, None) => assert_eq!(result.unwrap_err().state, PageState::Hole),
            (_, None) => assert_eq!(result.unwrap_err().state, PageState::Excluded),
        }
    }
    assert_eq!(
        dump.classify(frames.len() as u64 * 4096).state,
        PageState::Hole
    );
}

#[test]
fn every_frame_reads_back_plain_and_flattened() {
    let frames = mixed_frames(300);
    let file = build(&frames, &notes());
    let dump = KdumpDump::parse(&file).unwrap();
    assert!(!dump.is_flattened());
    assert_eq!(dump.damage(), &[]);
    assert_eq!(dump.completeness(), Completeness::Unknown);
    assert_eq!(dump.cpus().len(), 1);
    assert_eq!(
        dump.vmcoreinfo().unwrap().get("OSRELEASE"),
        Some("kdump-test")
    );
    assert_eq!(dump.frames(), 300);
    check_all(&dump, &frames);
    let mut bytes = vec![0u8; 100];
    dump.read_phys(4096 * 3 - 50, &mut bytes).unwrap();
    assert_eq!(&bytes[..50], &contents(&frames[2]).unwrap()[4046..]);
    assert_eq!(&bytes[50..], &contents(&frames[3]).unwrap()[..50]);

    for chunk in [1000, 4096, 7777, 65536] {
        let flat = flatten(&file, chunk);
        let dump = KdumpDump::parse(&flat).unwrap();
        assert!(dump.is_flattened());
        assert_eq!(dump.completeness(), Completeness::Unknown, "chunk {chunk}");
        check_all(&dump, &frames);
        // Cut before the end marker: read what is there, say it is cut.
        let cut = KdumpDump::parse(&flat[..flat.len() - 16]).unwrap();
        assert_eq!(
            cut.completeness(),
            Completeness::Incomplete(crashkit_dump_format::read::Incomplete::StreamCut)
        );
    }
}

#[test]
fn zlib_bombs_and_damaged_pages_are_corrupt_not_wrong() {
    let frames = vec![Frame::Zlib(vec![7u8; 4096]), Frame::Raw(vec![1u8; 4096])];
    let file = build(&frames, &[]);
    let dump = KdumpDump::parse(&file).unwrap();
    let first = dump.descriptor(0).unwrap();
    // Flip every byte of the zlib data in turn: never a wrong page.
    let mut page = vec![0u8; 4096];
    for at in first.offset..first.offset + u64::from(first.size) {
        let mut bad = file.clone();
        bad[at as usize] ^= 0x5a;
        let dump = KdumpDump::parse(&bad).unwrap();
        match dump.read_page(0, &mut page) {
            Ok(()) => assert_eq!(page, vec![7u8; 4096], "flip at {at}"),
            Err(problem) => assert_eq!(problem.state, PageState::Corrupt),
        }
    }
    // A descriptor claiming more than a page is corrupt.
    let desc_at = dump_descriptor_offset(&file, 0);
    let mut big = file.clone();
    big[desc_at + 8..desc_at + 12].copy_from_slice(&5000u32.to_le_bytes());
    let dump = KdumpDump::parse(&big).unwrap();
    let problem = dump.read_page(0, &mut page).unwrap_err();
    assert_eq!(
        (problem.state, problem.decode),
        (PageState::Corrupt, Some(DecodeError::TooLong))
    );
    // Offset 0: lost (an incomplete dump's unwritten descriptor).
    let mut lost = file.clone();
    lost[desc_at..desc_at + 8].copy_from_slice(&0u64.to_le_bytes());
    let dump = KdumpDump::parse(&lost).unwrap();
    assert_eq!(
        dump.read_page(0, &mut page).unwrap_err().state,
        PageState::Lost
    );
}

/// File offset of descriptor `index` in a file from `build`.
fn dump_descriptor_offset(file: &[u8], index: usize) -> usize {
    let dump = KdumpDump::parse(file).unwrap();
    let header = dump.header();
    let block = header.block_size as usize;
    (1 + header.sub_hdr_size as usize) * block + header.bitmap_blocks as usize * block + index * 24
}

#[test]
fn mutated_files_never_panic_and_errors_name_offsets() {
    let mut cases = 0usize;
    common::mutations::kdump_cases(|name, file, what| {
        cases += 1;
        match KdumpDump::parse(file) {
            Err(error) => {
                let message = error.to_string();
                assert!(message.contains("offset"), "{name} {what}: {message}");
            }
            Ok(dump) => {
                for damage in dump.damage() {
                    assert!(damage.to_string().contains("offset"));
                }
                let _ = (
                    dump.cpus().len(),
                    dump.vmcoreinfo().map(|i| i.entries().count()),
                );
                let _ = dump.completeness().to_string();
                let mut page = vec![0u8; 4096];
                for frame in 0..dump.frames().min(200) + 2 {
                    let _ = dump.classify(frame * 4096);
                    let _ = dump.read_page(frame, &mut page);
                }
            }
        }
    });
    assert!(cases > 1000, "only {cases} mutated files");
}

#[test]
fn fuzzer_finds_stay_fixed() {
    // Found by the kdump_reader fuzz target: a flattened record at a huge
    // offset made the bitmaps look present and the reader allocate 5 TB.
    for name in ["kdump-flattened-far-record.bin"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/regressions")
            .join(name);
        let data = std::fs::read(&path).unwrap();
        if let Ok(dump) = KdumpDump::parse(&data) {
            let mut page = vec![0u8; 4096];
            for frame in 0..dump.frames().min(256) {
                let _ = dump.read_page(frame, &mut page);
            }
        }
    }
}

#[test]
fn crashkit_notes_copied_from_an_elf_dump_make_a_foreign_dump_not_a_broken_one() {
    // What makedumpfile does with a crashkit ELF as input: its own
    // kdump-compressed file, carrying the input's notes (completion marker
    // included) after its sub-header.
    let machine = common::Machine::new();
    let mut memory = common::Memory::patterned(&machine.ranges, common::standard_zero);
    let (elf, _) = common::write(&machine.plan(), &mut memory);
    let elf_dump = crashkit_dump_format::ElfDump::parse(&elf).unwrap();
    let note_segment = crashkit_dump_format::elf::decode_program_header(&elf, 64).unwrap();
    let notes = &elf
        [note_segment.p_offset as usize..(note_segment.p_offset + note_segment.p_filesz) as usize];
    assert!(elf_dump.crashkit().unwrap().completion.is_some());
    let file = build(&mixed_frames(16), notes);
    let dump = KdumpDump::parse(&file).unwrap();
    assert!(dump.crashkit().is_some(), "the notes were kept");
    assert!(dump.notes_copied());
    assert_eq!(dump.completeness(), Completeness::Unknown);
    // crashkit's own kdump file keeps its notes where its marker says.
    let mut sink = common::VecSink::default();
    crashkit_dump_format::compressed::writer::write_kdump(
        &machine.plan(),
        &mut memory,
        &mut sink,
        &mut |_| false,
        &mut crashkit_dump_format::compressed::writer::RawPages,
        crashkit_dump_format::write::WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    let own = KdumpDump::parse(&sink.bytes).unwrap();
    assert!(!own.notes_copied());
    assert_eq!(own.completeness(), Completeness::Complete);
    // Its header damaged: still its own notes, so incomplete, not foreign.
    let mut damaged = sink.bytes.clone();
    damaged[4096 + 16] ^= 1; // the sub-header, inside the checksum
    let damaged = KdumpDump::parse(&damaged).unwrap();
    assert!(!damaged.notes_copied());
    assert!(matches!(
        damaged.completeness(),
        Completeness::Incomplete(_)
    ));
}

/// Notes with one `NT_PRSTATUS` per layout given (`true`: i386, 144 bytes,
/// `pr_pid` at 24; `false`: x86_64), then a small VMCOREINFO: what QEMU
/// writes into a kdump-compressed file when the guest's CPU 0 is (or is
/// not) in long mode.
fn notes_with_layouts(i386: &[bool]) -> Vec<u8> {
    use crashkit_dump_format::notes::{self, prstatus};
    let mut out = Vec::new();
    let mut push = |name: &[u8], n_type: u32, desc: &[u8]| {
        let (head, len) = notes::encode_head(name, n_type, desc.len() as u32);
        out.extend_from_slice(&head[..len]);
        out.extend_from_slice(desc);
        out.resize(out.len() + notes::pad4(desc.len()) - desc.len(), 0);
    };
    for (cpu, &small) in i386.iter().enumerate() {
        let pid = cpu as u32 + 1;
        if small {
            let mut desc = [0u8; prstatus::PRSTATUS_I386_SIZE];
            desc[24..28].copy_from_slice(&pid.to_le_bytes());
            push(b"CORE", notes::NT_PRSTATUS, &desc);
        } else {
            let desc = prstatus::encode_x86_64(pid, &common::registers(pid - 1));
            push(b"CORE", notes::NT_PRSTATUS, &desc);
        }
    }
    push(b"VMCOREINFO", 0, b"OSRELEASE=kdump-test\nPAGESIZE=4096\n");
    out
}

/// QEMU's kdump-compressed dump of a guest whose CPU 0 was not in long
/// mode: every CPU note is i386 while the header says x86_64. That is a
/// valid file (QEMU's ELF dumps say `EM_386` in that case): no damage, the
/// CPUs read as i386, plain and flattened.
#[test]
fn qemu_s_i386_cpu_notes_in_a_kdump_file_are_not_damage() {
    use crashkit_dump_format::read::CpuRegisters;
    let frames = mixed_frames(16);
    let file = build(&frames, &notes_with_layouts(&[true, true]));
    for (what, bytes) in [("plain", file.clone()), ("flattened", flatten(&file, 3000))] {
        let dump = KdumpDump::parse(&bytes).unwrap();
        assert_eq!(dump.damage(), &[], "{what}");
        assert_eq!(dump.completeness(), Completeness::Unknown, "{what}");
        assert_eq!(dump.cpus().len(), 2, "{what}");
        assert!(
            dump.cpus()
                .iter()
                .all(|cpu| matches!(cpu.registers, CpuRegisters::I386(_))),
            "{what}"
        );
        check_all(&dump, &frames);
    }
}

/// A file that mixes the two layouts is damaged, whichever comes first.
#[test]
fn mixed_cpu_note_layouts_in_a_kdump_file_are_damage() {
    use crashkit_dump_format::read::DamageKind;
    let frames = mixed_frames(4);
    for (layouts, expected) in [
        ([false, true], DamageKind::I386NoteInX86_64Dump),
        ([true, false], DamageKind::X86_64NoteInI386Dump),
    ] {
        let file = build(&frames, &notes_with_layouts(&layouts));
        let dump = KdumpDump::parse(&file).unwrap();
        let kinds: Vec<_> = dump.damage().iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [expected], "{layouts:?}");
        assert_eq!(
            dump.completeness(),
            Completeness::Incomplete(crashkit_dump_format::read::Incomplete::Damaged)
        );
    }
}

/// Each structural class of a kdump-compressed file is found (by opening,
/// or by `data_layout_damage` for the data layout), and the base has
/// none: a test per class that fails when its check is removed.
#[test]
fn each_structural_class_is_found() {
    let base = common::mutations::kdump_class_base();
    let dump = KdumpDump::parse(&base).unwrap();
    assert_eq!(dump.damage(), &[]);
    assert_eq!(dump.data_layout_damage(), &[]);
    assert!(dump.vmcoreinfo().is_some());
    let mut classes = 0;
    common::mutations::kdump_class_cases(|file, expected, what| {
        classes += 1;
        let dump = KdumpDump::parse(&file).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut found = dump.damage().to_vec();
        found.extend(dump.data_layout_damage());
        assert!(
            found.iter().any(|d| expected(&d.kind)),
            "{what}: expected damage missing from {found:?}"
        );
        for damage in &found {
            assert!(damage.to_string().contains("offset"), "{what}: {damage}");
        }
        assert_ne!(dump.completeness(), Completeness::Complete, "{what}");
    });
    assert!(classes >= 23, "{classes}");
}

/// A cut file (section 3 of issue 23: a 62 MB dump cut to 1 MB read as
/// "65390 present, 4 lost" with no warning): it says where it is cut, is
/// incomplete as truncated, and counts a page present only when its data
/// is in the file.
#[test]
fn a_cut_file_counts_only_the_pages_it_holds() {
    use crashkit_dump_format::read::{DamageKind, Incomplete};
    let frames = mixed_frames(64);
    let file = build(&frames, &notes());
    let whole = KdumpDump::parse(&file).unwrap();
    let dumpable = whole.page_counts().present;
    let table = dump_descriptor_offset(&file, 0);
    let descriptors: Vec<(u64, u64)> = (0..dumpable as usize)
        .map(|i| {
            let at = table + 24 * i;
            let offset = u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
            let size = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap());
            (offset, u64::from(size))
        })
        .collect();
    let data_start = table + 24 * dumpable as usize;
    for cut in [
        data_start + (file.len() - data_start) / 2,
        table + 24 * 7 + 5,
    ] {
        let dump = KdumpDump::parse(&file[..cut]).unwrap();
        let kinds: Vec<_> = dump.damage().iter().map(|d| d.kind).collect();
        assert!(
            matches!(kinds.as_slice(), [DamageKind::FileCut { len, .. }] if *len == cut as u64),
            "cut at {cut}: {kinds:?}"
        );
        assert!(dump.damage()[0].to_string().contains("cut"));
        assert!(
            matches!(
                dump.completeness(),
                Completeness::Incomplete(Incomplete::Truncated { len, expected })
                    if len == cut as u64 && expected > len
            ),
            "cut at {cut}: {:?}",
            dump.completeness()
        );
        let in_file = descriptors
            .iter()
            .enumerate()
            .filter(|(i, (offset, size))| {
                table + 24 * (i + 1) <= cut && offset + size <= cut as u64
            })
            .count() as u64;
        let counts = dump.page_counts();
        assert_eq!(counts.present, in_file, "cut at {cut}");
        assert_eq!(counts.lost, dumpable - in_file, "cut at {cut}");
        assert!(in_file < dumpable);
    }
}

/// What `crashkit verify` checks, in the library: no damage found opening
/// or in the data layout, not known incomplete, every frame of the part
/// read whole or left out.
fn verifies(file: &[u8]) -> bool {
    let Ok(dump) = KdumpDump::parse(file) else {
        return false;
    };
    if !dump.damage().is_empty()
        || !dump.data_layout_damage().is_empty()
        || matches!(dump.completeness(), Completeness::Incomplete(_))
    {
        return false;
    }
    let mut page = vec![0u8; 4096];
    let (first, end) = dump.part();
    (first..end.min(dump.frames())).all(|frame| match dump.read_page(frame, &mut page) {
        Ok(()) => true,
        Err(problem) => matches!(problem.state, PageState::Hole | PageState::Excluded),
    })
}

/// "No structural mutation verifies unless docs/cli.md lists its class as
/// legal": every mutation of the plain base that still verifies changed
/// only bytes nothing checks or can check (the header's free text and
/// informational fields, padding, note contents, page data, `page_flags`,
/// a first-bitmap bit of a frame that is not dumpable, hole against
/// excluded), each region as docs/cli.md lists it.
#[test]
fn a_mutation_that_verifies_changed_only_what_no_reader_relies_on() {
    use crashkit_dump_format::notes::Notes;
    let base = build(&mixed_frames(64), &notes());
    let dump = KdumpDump::parse(&base).unwrap();
    let header = *dump.header();
    let sub = *dump.sub_header();
    let bitmaps = (1 + header.sub_hdr_size as usize) * 4096;
    let each = header.bitmap_blocks as usize / 2 * 4096;
    let table = bitmaps + 2 * each;
    let data = table + 24 * dump.descriptor_count() as usize;
    let (notes_at, notes_len) = (sub.offset_note as usize, sub.size_note as usize);
    // Note descriptors: content (register values, VMCOREINFO text of the
    // right form; the form itself is checked).
    let descriptors: Vec<(usize, usize)> = Notes::new(&base[notes_at..notes_at + notes_len], 0)
        .flatten()
        .map(|n| {
            let at = notes_at + n.desc_offset as usize;
            (at, at + n.desc.len())
        })
        .collect();
    let dumpable = |frame: usize| base[bitmaps + each + frame / 8] & (1 << (frame % 8)) != 0;
    let machine = 12 + 4 * 65..12 + 4 * 65 + b"x86_64\0".len();
    let legal = |at: usize, file: &[u8]| -> bool {
        let field_u64 =
            |offset: usize| u64::from_le_bytes(file[offset..offset + 8].try_into().unwrap());
        match at {
            _ if machine.contains(&at) => false,
            // utsname, timestamp, status, total_ram_blocks, device_blocks,
            // written_blocks, current_cpu, padding to the sub-header.
            12..428 | 444..460 | 464..4096 => true,
            // phys_base, dump_level.
            4096..4108 => true,
            // An offset whose size is 0 points at nothing.
            4128..4136 => field_u64(4136) == 0,
            4160..4168 => field_u64(4168) == 0,
            _ if (notes_at..notes_at + notes_len).contains(&at) => descriptors
                .iter()
                .any(|&(start, end)| (start..end).contains(&at)),
            // After the sub-header and notes, to the bitmaps: padding.
            _ if at >= notes_at + notes_len && at < bitmaps => true,
            // The first bitmap's bit of a frame that is not dumpable.
            _ if (bitmaps..bitmaps + each).contains(&at) => {
                let byte = at - bitmaps;
                (0..8).all(|bit| {
                    base[at] & (1 << bit) == file[at] & (1 << bit) || !dumpable(byte * 8 + bit)
                })
            }
            // page_flags of a descriptor.
            _ if (table..data).contains(&at) => (at - table) % 24 >= 16,
            _ => at >= data,
        }
    };
    let (mut verified, mut cases) = (0, 0);
    common::mutations::kdump_cases(|name, file, what| {
        if name != "plain" || file.len() != base.len() {
            return;
        }
        cases += 1;
        if !verifies(file) {
            return;
        }
        verified += 1;
        for at in (0..file.len()).filter(|&at| file[at] != base[at]) {
            assert!(
                legal(at, file),
                "{what}: verifies although byte {at} changed ({:#x} -> {:#x})",
                base[at],
                file[at]
            );
        }
    });
    assert!(cases > 1000, "{cases}");
    println!("{verified} of {cases} same-length mutations verify, each in a legal region");
}

/// A split set checked as a whole (`compressed::split::check_set`), on
/// parts made from one file by setting each one's range (the set check
/// reads headers, notes, bitmaps and ranges, not descriptors): the whole
/// set passes; a missing, doubled, overlapping or foreign part, or a whole
/// dump among parts, is named.
#[test]
fn split_sets_are_checked_as_a_whole() {
    use crashkit_dump_format::compressed::split::{SetProblem, check_set};
    let whole = build(&mixed_frames(64), &notes());
    let part = |start: u64, end: u64| {
        let mut file = whole.clone();
        file[4096 + 12..4096 + 16].copy_from_slice(&1u32.to_le_bytes());
        for (at, value) in [(16, start), (24, end), (80, start), (88, end)] {
            file[4096 + at..4096 + at + 8].copy_from_slice(&value.to_le_bytes());
        }
        file
    };
    let (a, b, c) = (part(0, 20), part(20, 40), part(40, 64));
    let mut foreign = b.clone();
    let text = common::mutations::find(&foreign, b"kdump-test").unwrap();
    foreign[text] = b'K';
    let check = |files: &[&Vec<u8>]| {
        let parts: Vec<KdumpDump<'_>> =
            files.iter().map(|f| KdumpDump::parse(f).unwrap()).collect();
        check_set(&parts)
    };
    assert_eq!(check(&[&a, &b, &c]), vec![]);
    assert_eq!(check(&[&c, &a, &b]), vec![], "in any order");
    assert_eq!(check(&[&whole]), vec![], "a whole dump alone");
    assert_eq!(
        check(&[&a, &c]),
        vec![SetProblem::Missing { start: 20, end: 40 }]
    );
    assert_eq!(
        check(&[&b]),
        vec![
            SetProblem::Missing { start: 0, end: 20 },
            SetProblem::Missing { start: 40, end: 64 }
        ]
    );
    assert_eq!(
        check(&[&a, &b, &b, &c]),
        vec![SetProblem::Doubled { part: 2, of: 1 }]
    );
    let wide = part(10, 40);
    assert_eq!(
        check(&[&a, &wide, &c]),
        vec![SetProblem::Overlap { part: 1, other: 0 }]
    );
    let problems = check(&[&a, &foreign, &c]);
    assert_eq!(
        problems,
        vec![
            SetProblem::Foreign {
                part: 1,
                first: 0,
                what: "notes"
            },
            SetProblem::Missing { start: 20, end: 40 }
        ]
    );
    assert!(
        problems[0]
            .to_string()
            .contains("part 2 is not of the same dump as part 1")
    );
    assert_eq!(
        check(&[&a, &whole]),
        vec![
            SetProblem::NotSplit { part: 1 },
            SetProblem::Missing { start: 20, end: 64 }
        ]
    );
}
