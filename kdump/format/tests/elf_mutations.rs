//! Hostile input, deterministically: hundreds of files derived from valid
//! dumps (crashkit's, a QEMU-style one), each with the class of outcome it
//! must have. No case may panic, hang or allocate beyond the file's size;
//! an error names an offset inside or at the end of the file; a dump that
//! still reads as complete returns only the original bytes.

mod common;

use common::{Machine, Memory, qemu_style_elf, standard_zero};
use crashkit_dump_format::reader::{
    Completeness, DamageKind, ElfDump, FormatErrorKind, Incomplete, PageState, Producer,
};
use crashkit_dump_format::{PAGE_SIZE, PhysRange};

/// What a mutated file must give.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A fatal error of this kind.
    Error(fn(&FormatErrorKind) -> bool),
    /// A partial result with this damage.
    Damage(fn(&DamageKind) -> bool),
    /// A result known to be incomplete.
    NotComplete,
    /// Either an error or a result that is not complete (truncations, flips).
    ErrorOrNotComplete,
}

struct Base {
    name: &'static str,
    file: Vec<u8>,
    memory: Memory,
    ranges: Vec<PhysRange>,
    crashkit: bool,
}

fn bases() -> Vec<Base> {
    let mut machine = Machine::new();
    machine.ranges = vec![
        PhysRange::new(0x1000, 0x1f000),
        PhysRange::new(0x10_0000, 0x2_0000),
    ];
    machine.exclusions = vec![PhysRange::new(0x10_8000, 0x1000)];
    machine.kernel = Some(crashkit_dump_format::writer::KernelImage {
        phys_start: 0x10_0000,
        virt_start: 0xffff_ffff_8010_0000,
        len: 0x1_0000,
    });
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (file, _) = common::write(&machine.plan(), &mut memory);
    let qemu_ranges = vec![
        PhysRange::new(0, 0x1_0000),
        PhysRange::new(0x10_0000, 0x8000),
    ];
    let qemu_memory = Memory::patterned(&qemu_ranges, standard_zero);
    let qemu = qemu_style_elf(&qemu_ranges, &qemu_memory, 2, false);
    vec![
        Base {
            name: "crashkit",
            file,
            memory,
            ranges: machine.ranges.clone(),
            crashkit: true,
        },
        Base {
            name: "qemu",
            file: qemu,
            memory: qemu_memory,
            ranges: qemu_ranges,
            crashkit: false,
        },
    ]
}

/// Check one mutated file against its expectation and the invariants.
fn check(base: &Base, file: &[u8], expect: Expect, what: &str) {
    let len = file.len() as u64;
    match ElfDump::parse(file) {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("offset"),
                "{what}: error without offset: {message}"
            );
            assert!(
                error.offset <= len.max(64),
                "{what}: error offset past the file: {message}"
            );
            match expect {
                Expect::Error(kind) => assert!(kind(&error.kind), "{what}: wrong error {error:?}"),
                Expect::ErrorOrNotComplete => {}
                other => panic!("{what}: expected {other:?}, got error {message}"),
            }
        }
        Ok(dump) => {
            for damage in dump.damage() {
                assert!(damage.to_string().contains("offset"), "{what}: {damage}");
            }
            match expect {
                Expect::Error(_) => {
                    panic!("{what}: expected an error, parsed: {:?}", dump.damage())
                }
                Expect::Damage(kind) => assert!(
                    dump.damage().iter().any(|d| kind(&d.kind)),
                    "{what}: expected damage missing from {:?}",
                    dump.damage()
                ),
                Expect::NotComplete => assert!(
                    matches!(dump.completeness(), Completeness::Incomplete(_)),
                    "{what}: {:?}",
                    dump.completeness()
                ),
                Expect::ErrorOrNotComplete => {
                    if base.crashkit {
                        assert_ne!(dump.completeness(), Completeness::Complete, "{what}");
                    }
                }
            }
            // Every page: classified without panic; a complete dump gives
            // only the original bytes.
            let complete = dump.completeness() == Completeness::Complete;
            for range in &base.ranges {
                for phys in (range.start..range.start + range.len).step_by(PAGE_SIZE as usize) {
                    let span = dump.classify(phys);
                    assert!(span.len > 0, "{what}: empty span at {phys:#x}");
                    let mut page = [0u8; 4096];
                    if dump.read_phys(phys, &mut page).is_ok() && complete {
                        assert_eq!(page, base.memory.expected(phys), "{what}: page {phys:#x}");
                    }
                }
            }
            for cpu in dump.cpus() {
                let _ = (cpu.rip(), cpu.rsp(), cpu.cr3(), cpu.is_empty());
            }
            if let Some(info) = dump.vmcoreinfo() {
                let _ = (
                    info.entries().count(),
                    info.malformed_lines(),
                    info.number("PAGESIZE"),
                );
            }
        }
    }
}

fn put_u16(file: &mut [u8], at: usize, v: u16) {
    file[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(file: &mut [u8], at: usize, v: u32) {
    file[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(file: &mut [u8], at: usize, v: u64) {
    file[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u64(file: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(file[at..at + 8].try_into().unwrap())
}

#[test]
fn mutated_dumps_give_their_expected_outcome() {
    let mut cases = 0usize;
    for base in bases() {
        let original = ElfDump::parse(&base.file).unwrap();
        assert_eq!(original.damage(), &[], "{}", base.name);
        let phoff = original.header().e_phoff as usize;
        let phnum = original.program_header_count() as usize;
        let note_regions: Vec<(usize, usize)> = (0..phnum)
            .filter_map(|i| {
                let at = phoff + i * 56;
                let p_type = u32::from_le_bytes(base.file[at..at + 4].try_into().unwrap());
                (p_type == 4).then(|| {
                    (
                        get_u64(&base.file, at + 8) as usize,
                        get_u64(&base.file, at + 32) as usize,
                    )
                })
            })
            .collect();
        let mut case = |file: Vec<u8>, expect: Expect, what: String| {
            check(&base, &file, expect, &format!("{}: {what}", base.name));
            cases += 1;
        };

        // Header fields.
        let mut header_cases: Vec<(usize, Vec<u8>, Expect)> = vec![
            (
                0,
                b"\x7fELG".to_vec(),
                Expect::Error(|k| *k == FormatErrorKind::NotElf),
            ),
            (
                4,
                vec![1],
                Expect::Error(|k| matches!(k, FormatErrorKind::NotElf64(1))),
            ),
            (
                5,
                vec![2],
                Expect::Error(|k| matches!(k, FormatErrorKind::NotLittleEndian(2))),
            ),
            (
                16,
                2u16.to_le_bytes().to_vec(),
                Expect::Error(|k| matches!(k, FormatErrorKind::NotCore(2))),
            ),
            (
                18,
                40u16.to_le_bytes().to_vec(),
                Expect::Error(|k| matches!(k, FormatErrorKind::UnsupportedMachine(40))),
            ),
            (
                54,
                64u16.to_le_bytes().to_vec(),
                Expect::Error(|k| matches!(k, FormatErrorKind::BadProgramHeaderSize(64))),
            ),
            (
                32,
                u64::MAX.to_le_bytes().to_vec(),
                Expect::Error(|k| matches!(k, FormatErrorKind::NoProgramHeaders { .. })),
            ),
            (
                56,
                0xfffeu16.to_le_bytes().to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::ProgramHeadersCut { .. })),
            ),
        ];
        if original.header().e_phnum != 0xffff {
            header_cases.push((
                56,
                0xffffu16.to_le_bytes().to_vec(),
                Expect::Error(|k| *k == FormatErrorKind::ExtendedCountMissing),
            ));
        }
        for (at, bytes, expect) in header_cases {
            let mut file = base.file.clone();
            file[at..at + bytes.len()].copy_from_slice(&bytes);
            if at == 56 && bytes == [0xff, 0xff] {
                put_u64(&mut file, 40, u64::MAX - 8);
            }
            case(file, expect, format!("header bytes {at}"));
        }
        // makedumpfile's incomplete flag.
        let mut file = base.file.clone();
        file[48] |= 1;
        case(file, Expect::NotComplete, "e_flags".into());

        // Each program header, each way it can be wrong.
        for index in 0..phnum {
            let at = phoff + index * 56;
            let p_type = u32::from_le_bytes(base.file[at..at + 4].try_into().unwrap());
            if p_type != 1 {
                continue;
            }
            let filesz = get_u64(&base.file, at + 32);
            let mutations: [(&str, usize, u64, Expect); 5] = [
                (
                    "offset wraps",
                    at + 8,
                    u64::MAX - 10,
                    Expect::Damage(|k| matches!(k, DamageKind::SegmentWraps { .. })),
                ),
                (
                    "paddr wraps",
                    at + 24,
                    u64::MAX - 10,
                    Expect::Damage(|k| matches!(k, DamageKind::SegmentWraps { .. })),
                ),
                (
                    "past the end",
                    at + 32,
                    filesz + (1 << 40),
                    Expect::Damage(|k| matches!(k, DamageKind::SegmentPastEnd { .. })),
                ),
                (
                    "filesz > memsz",
                    at + 40,
                    filesz / 2,
                    Expect::Damage(|k| matches!(k, DamageKind::FileSizeAboveMemorySize { .. })),
                ),
                (
                    "offset moved",
                    at + 8,
                    get_u64(&base.file, at + 8) + 4096,
                    Expect::NotComplete,
                ),
            ];
            for (what, field, value, expect) in mutations {
                if what == "filesz > memsz" && filesz == 0 {
                    continue;
                }
                let mut file = base.file.clone();
                put_u64(&mut file, field, value);
                let expect = match expect {
                    Expect::NotComplete if !base.crashkit => Expect::ErrorOrNotComplete,
                    other => other,
                };
                case(file, expect, format!("segment {index}: {what}"));
            }
            // Duplicate: this header copied over the next PT_LOAD.
            if index + 1 < phnum {
                let mut file = base.file.clone();
                let (this, next) = (at, at + 56);
                let copy = base.file[this..this + 56].to_vec();
                file[next..next + 56].copy_from_slice(&copy);
                case(
                    file,
                    Expect::Damage(|k| matches!(k, DamageKind::DuplicateSegment { .. })),
                    format!("segment {index} duplicated"),
                );
                // Conflict: same mapping of overlapping memory from other bytes.
                let mut file = base.file.clone();
                let mut copy = copy.clone();
                let offset = get_u64(&copy, 8);
                copy[8..16].copy_from_slice(&(offset + 4096).to_le_bytes());
                file[next..next + 56].copy_from_slice(&copy);
                case(
                    file,
                    Expect::Damage(|k| {
                        matches!(
                            k,
                            DamageKind::ConflictingSegments { .. }
                                | DamageKind::SegmentPastEnd { .. }
                        )
                    }),
                    format!("segment {index} conflicting"),
                );
            }
        }

        // Each note: sizes out of range, the wrong prstatus layout.
        for &(offset, len) in &note_regions {
            let mut at = offset;
            while at + 12 <= offset + len {
                let namesz = u32::from_le_bytes(base.file[at..at + 4].try_into().unwrap()) as usize;
                let descsz =
                    u32::from_le_bytes(base.file[at + 4..at + 8].try_into().unwrap()) as usize;
                let name = base.file[at + 12..at + 12 + namesz].to_vec();
                for (what, field, value) in [
                    ("descsz huge", at + 4, u32::MAX),
                    ("namesz huge", at, u32::MAX - 2),
                    ("descsz past the segment", at + 4, (len + 1) as u32),
                ] {
                    let mut file = base.file.clone();
                    put_u32(&mut file, field, value);
                    case(
                        file,
                        Expect::Damage(|k| matches!(k, DamageKind::Note(_))),
                        format!("note at {at:#x}: {what}"),
                    );
                }
                if name.starts_with(b"CORE") {
                    // An i386-sized descriptor: shrink it and shift nothing
                    // (the walk then misreads what follows, as a bad file would).
                    let mut file = base.file.clone();
                    put_u32(&mut file, at + 4, 144);
                    case(
                        file,
                        Expect::Damage(|k| matches!(k, DamageKind::I386NoteInX86_64Dump)),
                        format!("note at {at:#x}: i386 size"),
                    );
                    let mut file = base.file.clone();
                    put_u32(&mut file, at + 4, 100);
                    case(
                        file,
                        Expect::Damage(|k| matches!(k, DamageKind::NoteSize { .. })),
                        format!("note at {at:#x}: odd size"),
                    );
                }
                at += 12 + namesz.div_ceil(4) * 4 + descsz.div_ceil(4) * 4;
            }
        }

        // Truncation at every 64th byte of the metadata and every 1021st
        // of the data, plus the last byte.
        let metadata_end = note_regions.iter().map(|(o, l)| o + l).max().unwrap_or(64);
        let cuts = (0..metadata_end + 64)
            .step_by(64)
            .chain((metadata_end..base.file.len()).step_by(1021))
            .chain([base.file.len() - 1]);
        for cut in cuts {
            let expect = if base.crashkit || cut < metadata_end {
                Expect::ErrorOrNotComplete
            } else {
                Expect::Damage(|k| matches!(k, DamageKind::SegmentPastEnd { .. }))
            };
            case(base.file[..cut].to_vec(), expect, format!("cut at {cut}"));
        }

        // Seeded random byte flips in the metadata in use (the ELF header,
        // the program headers in use, the notes; not the unused reserved
        // slots): any outcome but a panic, and a crashkit dump never reads
        // as complete (the header checksum covers the metadata; the
        // marker's own checksum covers itself).
        let mut covered: Vec<usize> = (0..phoff + phnum * 56).collect();
        for &(offset, len) in &note_regions {
            covered.extend(offset..offset + len);
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for flip in 0..300 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = covered[(state as usize) % covered.len()];
            let mut file = base.file.clone();
            file[at] ^= 1 << (flip % 8);
            case(file, Expect::ErrorOrNotComplete, format!("flip at {at}"));
        }
    }
    assert!(cases > 600, "only {cases} mutated files");
    println!("{cases} mutated files checked");
}

#[test]
fn qemu_quirks_are_read() {
    let ranges = [PhysRange::new(0, 0x4000)];
    let memory = Memory::patterned(&ranges, |_| false);
    let file = qemu_style_elf(&ranges, &memory, 2, false);
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(dump.header().e_ehsize, 8);
    assert_eq!(dump.producer(), Producer::Qemu);
    assert_eq!(dump.completeness(), Completeness::Unknown);
    assert_eq!(dump.cpus().len(), 2);
    assert_eq!(dump.cpus()[1].qemu.unwrap().cr[3], 0xa000);
    assert_eq!(dump.cpus()[1].cr3(), Some(0xa000));
    assert_eq!(dump.classify(0x1000).state, PageState::Present);
    assert_eq!(dump.classify(0x4000).state, PageState::Hole);

    let i386 = qemu_style_elf(&ranges, &memory, 2, true);
    let dump = ElfDump::parse(&i386).unwrap();
    assert_eq!(
        dump.damage(),
        &[],
        "i386 notes in an EM_386 file are expected"
    );
    assert_eq!(dump.machine(), crashkit_dump_format::reader::Machine::I386);
    assert_eq!(dump.cpus()[1].rip(), 0x7c01);
}

#[test]
fn linux_style_overlap_and_makedumpfile_exclusion() {
    // A direct-map segment and a kernel-text segment of the same physical
    // pages at another virtual address (Linux's /proc/vmcore): not damage.
    let ranges = [PhysRange::new(0x100_0000, 0x4000)];
    let memory = Memory::patterned(&ranges, |_| false);
    let mut file = qemu_style_elf(&ranges, &memory, 1, false);
    let dump = ElfDump::parse(&file).unwrap();
    let phoff = dump.header().e_phoff as usize;
    let phnum = dump.program_header_count() as usize;
    let load = file[phoff + 56..phoff + 112].to_vec();
    // Append a kernel-text PT_LOAD in a new table at the end of the file.
    let new_phoff = file.len();
    let mut table = file[phoff..phoff + phnum * 56].to_vec();
    let mut text = load.clone();
    text[16..24].copy_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
    text[32..40].copy_from_slice(&0x2000u64.to_le_bytes());
    text[40..48].copy_from_slice(&0x2000u64.to_le_bytes());
    table.extend_from_slice(&text);
    file.extend_from_slice(&table);
    put_u64(&mut file, 32, new_phoff as u64);
    put_u16(&mut file, 56, (phnum + 1) as u16);
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(dump.damage(), &[]);
    let mut page = [0u8; 4096];
    dump.read_phys(0x100_1000, &mut page).unwrap();
    assert_eq!(page, memory.expected(0x100_1000));

    // makedumpfile -E: p_memsz > p_filesz is excluded, not zero.
    let mut file = qemu_style_elf(&ranges, &memory, 1, false);
    let at = phoff + 56;
    put_u64(&mut file, at + 32, 0x2000);
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(dump.classify(0x100_3000).state, PageState::Excluded);
    assert_eq!(dump.classify(0x100_1000).state, PageState::Present);
    // And makedumpfile's e_flags bit says incomplete.
    file[48] |= 1;
    assert_eq!(
        ElfDump::parse(&file).unwrap().completeness(),
        Completeness::Incomplete(Incomplete::FlagSet)
    );
}
