//! The mutation corpora of the dump readers: files derived from valid
//! dumps, each mutated one way (a field set to an extreme, a structure
//! duplicated or moved, a cut, a flipped bit), generated one at a time.
//! The format crate's tests check each against the outcome it must have;
//! the CLI's tests run every command over the same files
//! (`tools/crashkit-cli/tests/cli.rs` includes this module by path).

#![allow(dead_code)]

use super::kdump::{build, flatten, mixed_frames};
use super::{Machine, Memory, qemu_style_elf, standard_zero};
use crashkit_dump_format::PhysRange;
use crashkit_dump_format::elf::reader::{ElfDump, FormatErrorKind};
use crashkit_dump_format::notes::{self, prstatus};
use crashkit_dump_format::read::DamageKind;
use crashkit_dump_format::vmcoreinfo::TextProblem;

/// What a mutated file must give.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// A fatal error of this kind.
    Error(fn(&FormatErrorKind) -> bool),
    /// A partial result with this damage.
    Damage(fn(&DamageKind) -> bool),
    /// A result known to be incomplete.
    NotComplete,
    /// Either an error or a result that is not complete (truncations, flips).
    ErrorOrNotComplete,
}

/// A valid dump the ELF mutations start from.
pub struct Base {
    pub name: &'static str,
    pub file: Vec<u8>,
    pub memory: Memory,
    pub ranges: Vec<PhysRange>,
    pub crashkit: bool,
}

/// The ELF bases: a crashkit dump (every note, a kernel image) and a
/// QEMU-style one.
pub fn elf_bases() -> Vec<Base> {
    let mut machine = Machine::new();
    machine.ranges = vec![
        PhysRange::new(0x1000, 0x1f000),
        PhysRange::new(0x10_0000, 0x2_0000),
    ];
    machine.exclusions = vec![PhysRange::new(0x10_8000, 0x1000)];
    machine.kernel = Some(crashkit_dump_format::plan::KernelImage {
        phys_start: 0x10_0000,
        virt_start: 0xffff_ffff_8010_0000,
        len: 0x1_0000,
    });
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (file, _) = super::write(&machine.plan(), &mut memory);
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

pub fn put_u16(file: &mut [u8], at: usize, v: u16) {
    file[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(file: &mut [u8], at: usize, v: u32) {
    file[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(file: &mut [u8], at: usize, v: u64) {
    file[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
pub fn get_u64(file: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(file[at..at + 8].try_into().unwrap())
}

/// Every ELF mutation of `base`, one at a time: `case(file, expect, what)`.
pub fn elf_cases(base: &Base, mut case: impl FnMut(Vec<u8>, Expect, String)) {
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

    // Damage only the structures together show (each check has its case,
    // which fails when the check is removed).
    let mut file = base.file.clone();
    put_u64(&mut file, 32, 40);
    case(
        file,
        Expect::Damage(|k| matches!(k, DamageKind::ProgramHeadersInHeader { phoff: 40 })),
        "e_phoff inside the ELF header".into(),
    );
    let mut file = base.file.clone();
    put_u64(&mut file, 32, phoff as u64 + 4);
    case(
        file,
        Expect::Damage(|k| matches!(k, DamageKind::ProgramHeadersMisaligned { .. })),
        "e_phoff not 8-byte aligned".into(),
    );
    if original.header().e_phnum != 0xffff
        && let Some(first_note) = note_regions.iter().map(|&(offset, _)| offset).min()
        && first_note > phoff
    {
        // Enough headers to read two out of the notes.
        let reach = (first_note - phoff) / 56 + 2;
        let mut file = base.file.clone();
        put_u16(&mut file, 56, reach as u16);
        case(
            file,
            Expect::Damage(|k| matches!(k, DamageKind::ProgramHeadersOverlapData { .. })),
            format!("e_phnum {reach}: headers read out of the notes"),
        );
    }
    let p_types: Vec<(usize, u32)> = (0..phnum)
        .map(|i| {
            let at = phoff + i * 56;
            (
                at,
                u32::from_le_bytes(base.file[at..at + 4].try_into().unwrap()),
            )
        })
        .collect();
    for (wanted, what, expect) in [
        (
            1u32,
            "no PT_LOAD",
            Expect::Damage(|k| matches!(k, DamageKind::NoMemory)),
        ),
        (
            4,
            "no PT_NOTE",
            Expect::Damage(|k| matches!(k, DamageKind::NoNotes)),
        ),
    ] {
        let mut file = base.file.clone();
        for &(at, p_type) in &p_types {
            if p_type == wanted {
                put_u32(&mut file, at, 0); // PT_NULL
            }
        }
        case(file, expect, what.into());
    }
    if let Some(&(at, _)) = p_types.iter().find(|&&(_, p_type)| p_type == 1) {
        let mut file = base.file.clone();
        put_u32(&mut file, at, 0x101);
        case(
            file,
            Expect::Damage(|k| matches!(k, DamageKind::UnknownSegmentType { p_type: 0x101, .. })),
            "a PT_LOAD's p_type damaged".into(),
        );
    }
    if base.crashkit {
        // The identity note's name damaged: crashkit's other notes show it.
        let at = find(&base.file, b"CRASHKIT").unwrap();
        let mut file = base.file.clone();
        file[at + 3] ^= 0x20;
        case(
            file,
            Expect::Damage(|k| matches!(k, DamageKind::CrashkitIdentityMissing)),
            "the identity note's name damaged".into(),
        );
    }
    let loads: Vec<usize> = p_types
        .iter()
        .filter(|&&(_, p_type)| p_type == 1)
        .map(|&(at, _)| at)
        .collect();
    if let [first, second, ..] = loads[..] {
        let mut file = base.file.clone();
        put_u64(&mut file, first + 8, get_u64(&base.file, second + 8));
        case(
            file,
            Expect::Damage(|k| matches!(k, DamageKind::SharedFileBytes { .. })),
            "two PT_LOADs on the same file bytes".into(),
        );
    }
    if base.name == "qemu"
        && let Some(&(notes_at, _)) = note_regions.first()
    {
        // The first CPU note's type damaged: QEMU's count of CPU-state
        // notes shows the CPU that would vanish.
        let mut file = base.file.clone();
        put_u32(&mut file, notes_at + 8, 0x101);
        case(
            file,
            Expect::Damage(|k| matches!(k, DamageKind::QemuNoteCount { cpus: 1, states: 2 })),
            "a CPU note's type damaged".into(),
        );
    }
    if let Some(&(at, _)) = p_types.iter().find(|&&(_, p_type)| p_type == 1) {
        let mut file = base.file.clone();
        put_u64(&mut file, at + 24, 1 << 52);
        case(
            file,
            Expect::Damage(|k| {
                matches!(k, DamageKind::SegmentBeyondPhysicalWidth { bits: 52, .. })
            }),
            "a PT_LOAD past 52 physical address bits".into(),
        );
    }

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
                        DamageKind::ConflictingSegments { .. } | DamageKind::SegmentPastEnd { .. }
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
            let descsz = u32::from_le_bytes(base.file[at + 4..at + 8].try_into().unwrap()) as usize;
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
            let mut file = base.file.clone();
            put_u32(&mut file, at, 0);
            case(
                file,
                Expect::Damage(|k| {
                    matches!(k, DamageKind::Note(notes::NoteError::EmptyName { .. }))
                }),
                format!("note at {at:#x}: namesz 0"),
            );
            let mut file = base.file.clone();
            file[at..at + 12].fill(0);
            case(
                file,
                Expect::Damage(|k| {
                    matches!(k, DamageKind::Note(notes::NoteError::ZeroHeader { .. }))
                }),
                format!("note at {at:#x}: all-zero header"),
            );
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

    // The VMCOREINFO text, each way it can depart from Linux's form.
    if let Some(text_at) = find(&base.file, b"OSRELEASE=") {
        let text_len = base.file[text_at..].iter().position(|&b| b == 0).unwrap();
        let text = base.file[text_at..text_at + text_len].to_vec();
        let line = |key: &[u8]| find(&text, key).map(|at| text_at + at);
        let mut edits: Vec<(usize, Vec<u8>, Expect, &str)> = vec![
            (
                text_at + 9,
                b"X".to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::Vmcoreinfo(TextProblem::NotKeyValue))),
                "a line without =",
            ),
            (
                text_at + 11,
                b"\0".to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::Vmcoreinfo(TextProblem::NulByte))),
                "a NUL inside",
            ),
            (
                text_at + text_len - 1,
                b"x".to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::Vmcoreinfo(TextProblem::Unterminated))),
                "text after the last newline",
            ),
            (
                text_at + 8,
                b"X".to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::Vmcoreinfo(TextProblem::NoOsRelease))),
                "no OSRELEASE",
            ),
        ];
        if let Some(at) = line(b"PAGESIZE=") {
            edits.push((
                at + 7,
                b"X".to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::Vmcoreinfo(TextProblem::NoPageSize))),
                "no PAGESIZE",
            ));
            edits.push((
                at + 9,
                b"8192".to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::Vmcoreinfo(TextProblem::PageSize))),
                "PAGESIZE 8192",
            ));
        }
        if let Some(at) = line(b"CRASHTIME=") {
            edits.push((
                at + 11,
                b"x".to_vec(),
                Expect::Damage(|k| matches!(k, DamageKind::Vmcoreinfo(TextProblem::ValueForm))),
                "CRASHTIME not decimal",
            ));
        }
        for (at, bytes, expect, what) in edits {
            let mut file = base.file.clone();
            file[at..at + bytes.len()].copy_from_slice(&bytes);
            case(file, expect, format!("VMCOREINFO: {what}"));
        }
    }

    // A note segment that ends inside its last note.
    for (index, &(at, p_type)) in p_types.iter().enumerate() {
        if p_type != 4 {
            continue;
        }
        let mut file = base.file.clone();
        let filesz = get_u64(&file, at + 32);
        put_u64(&mut file, at + 32, filesz - 4);
        case(
            file,
            Expect::Damage(|k| {
                matches!(k, DamageKind::Note(notes::NoteError::PastSegmentEnd { .. }))
            }),
            format!("note segment {index} ends inside a note"),
        );
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

/// The notes of the kdump-compressed bases: one x86_64 `NT_PRSTATUS` and
/// a small VMCOREINFO.
pub fn kdump_notes() -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &[u8], n_type: u32, desc: &[u8]| {
        let (head, len) = notes::encode_head(name, n_type, desc.len() as u32);
        out.extend_from_slice(&head[..len]);
        out.extend_from_slice(desc);
        out.resize(out.len() + notes::pad4(desc.len()) - desc.len(), 0);
    };
    push(
        b"CORE",
        1,
        &prstatus::encode_x86_64(1, &super::registers(0)),
    );
    push(b"VMCOREINFO", 0, b"OSRELEASE=kdump-test\nPAGESIZE=4096\n");
    out
}

/// A kdump-compressed base for the structural classes: 64 mixed frames,
/// the notes of [`kdump_notes`], and the sub-header's VMCOREINFO copy
/// pointing at the note's text (as makedumpfile and QEMU write it).
pub fn kdump_class_base() -> Vec<u8> {
    let mut file = build(&mixed_frames(64), &kdump_notes());
    let text = find(&file, b"OSRELEASE=").unwrap();
    let len = file[text..].iter().position(|&b| b == 0).unwrap();
    put_u64(&mut file, 4096 + 32, text as u64);
    put_u64(&mut file, 4096 + 40, len as u64);
    file
}

/// Each structural class of a kdump-compressed file, one mutation each
/// of [`kdump_class_base`]: `case(file, expected damage, what)`. The
/// damage is in what opening finds or, for the data layout, in
/// `data_layout_damage` (`verify`'s check).
pub fn kdump_class_cases(mut case: impl FnMut(Vec<u8>, fn(&DamageKind) -> bool, &str)) {
    use crashkit_dump_format::KdumpDump;
    let base = kdump_class_base();
    let dump = KdumpDump::parse(&base).unwrap();
    let header = *dump.header();
    let bitmaps = (1 + header.sub_hdr_size as usize) * 4096;
    let each = header.bitmap_blocks as usize / 2 * 4096;
    let table = bitmaps + 2 * each;
    let frames = mixed_frames(64);
    let frame_of = |want: fn(&super::kdump::Frame) -> bool| frames.iter().position(want).unwrap();
    let set_bit =
        |file: &mut Vec<u8>, at: usize, frame: usize| file[at + frame / 8] |= 1 << (frame % 8);
    let clear_bit =
        |file: &mut Vec<u8>, at: usize, frame: usize| file[at + frame / 8] &= !(1 << (frame % 8));
    use super::kdump::Frame;

    let mut file = base.clone();
    put_u32(&mut file, 436, header.bitmap_blocks + 2);
    case(
        file,
        |k| matches!(k, DamageKind::BitmapBlocks { .. }),
        "bitmap_blocks too large",
    );
    let mut file = base.clone();
    put_u32(&mut file, 436, header.bitmap_blocks + 1);
    case(
        file,
        |k| matches!(k, DamageKind::BitmapBlocks { .. }),
        "bitmap_blocks odd",
    );
    let mut file = base.clone();
    put_u32(&mut file, 460, 7);
    case(
        file,
        |k| {
            matches!(
                k,
                DamageKind::CpuCount {
                    header: 7,
                    notes: 1
                }
            )
        },
        "nr_cpus",
    );
    let mut file = base.clone();
    put_u32(&mut file, 440, 63);
    case(
        file,
        |k| matches!(k, DamageKind::MaxMapnrMismatch { .. }),
        "max_mapnr",
    );
    let mut file = base.clone();
    put_u64(&mut file, 4096 + 32, base.len() as u64 - 10);
    case(
        file,
        |k| matches!(k, DamageKind::VmcoreinfoMissing),
        "offset_vmcoreinfo past the end",
    );
    let mut file = base.clone();
    put_u64(&mut file, 4096 + 40, u64::MAX - 4096);
    case(
        file,
        |k| matches!(k, DamageKind::VmcoreinfoMissing),
        "size_vmcoreinfo huge",
    );
    let mut file = base.clone();
    let copy = get_u64(&file, 4096 + 32);
    put_u64(&mut file, 4096 + 32, copy + 1);
    case(
        file,
        |k| matches!(k, DamageKind::VmcoreinfoCopyDiffers),
        "VMCOREINFO copy differs",
    );
    let mut file = base.clone();
    put_u64(&mut file, 4096 + 56, 0);
    case(file, |k| matches!(k, DamageKind::NoNotes), "size_note 0");
    let mut file = base.clone();
    put_u64(&mut file, 4096 + 56, get_u64(&base, 4096 + 56) + (1 << 40));
    case(
        file,
        |k| matches!(k, DamageKind::NotesMissing),
        "size_note past the end",
    );
    for (start, end, what) in [
        (10u64, 5u64, "split range reversed"),
        (0, 65, "split range past max_mapnr"),
    ] {
        let mut file = base.clone();
        put_u32(&mut file, 4096 + 12, 1);
        put_u64(&mut file, 4096 + 80, start);
        put_u64(&mut file, 4096 + 88, end);
        case(file, |k| matches!(k, DamageKind::SplitRange { .. }), what);
    }
    let mut file = base.clone();
    put_u64(&mut file, 4096 + 80, 3);
    case(
        file,
        |k| matches!(k, DamageKind::SplitRange { .. }),
        "split fields in a whole dump",
    );
    let mut file = base.clone();
    put_u32(&mut file, 4096 + 12, 1);
    put_u64(&mut file, 4096 + 16, 0);
    put_u64(&mut file, 4096 + 24, 64);
    put_u64(&mut file, 4096 + 80, 0);
    put_u64(&mut file, 4096 + 88, 32);
    case(
        file,
        |k| matches!(k, DamageKind::SplitRange { .. }),
        "split range copies differ",
    );
    let mut file = base.clone();
    put_u32(&mut file, 4096 + 12, 1);
    case(
        file,
        |k| matches!(k, DamageKind::SplitRange { .. }),
        "split part with an empty range",
    );
    let mut file = base.clone();
    put_u32(&mut file, 8, 3);
    case(
        file,
        |k| matches!(k, DamageKind::FieldsPastVersion { version: 3 }),
        "header_version lowered",
    );
    let mut file = base.clone();
    put_u64(&mut file, 4096 + 72, 4096);
    put_u64(&mut file, 4096 + 64, base.len() as u64);
    case(
        file,
        |k| matches!(k, DamageKind::EraseinfoMissing),
        "eraseinfo past the end",
    );
    let mut file = base.clone();
    put_u64(&mut file, 4096 + 72, 100);
    case(
        file,
        |k| matches!(k, DamageKind::EraseinfoMissing),
        "eraseinfo in the header",
    );
    let mut file = base.clone();
    file[12 + 4 * 65..12 + 4 * 65 + 6].copy_from_slice(b"arm64\0");
    case(
        file,
        |k| matches!(k, DamageKind::NotX86Machine),
        "utsname.machine not x86",
    );
    let mut file = base.clone();
    set_bit(&mut file, bitmaps, 64 + 9);
    case(
        file,
        |k| matches!(k, DamageKind::BitPastMaxMapnr { frame: 73 }),
        "a present bit past max_mapnr",
    );
    let hole = frame_of(|f| matches!(f, Frame::Hole));
    let mut file = base.clone();
    set_bit(&mut file, bitmaps + each, hole);
    case(
        file,
        |k| matches!(k, DamageKind::DumpableNotPresent { .. }),
        "a hole set dumpable",
    );
    // The second bitmap's population against the table: a bit set on an
    // excluded frame, a bit cleared on a dumpable one.
    let excluded = frame_of(|f| matches!(f, Frame::Excluded));
    let mut file = base.clone();
    set_bit(&mut file, bitmaps + each, excluded);
    case(
        file,
        |k| matches!(k, DamageKind::DescriptorTableEnd { .. }),
        "an excluded frame set dumpable",
    );
    let dumpable = frame_of(|f| matches!(f, Frame::Raw(_)));
    let mut file = base.clone();
    clear_bit(&mut file, bitmaps + each, dumpable);
    case(
        file,
        |k| matches!(k, DamageKind::DescriptorTableEnd { .. }),
        "a dumpable frame cleared",
    );
    // Descriptors: data in the metadata, data over other data.
    let mut file = base.clone();
    put_u64(&mut file, table + 24 * 5, 4096);
    case(
        file,
        |k| matches!(k, DamageKind::DataInMetadata { index: 5 }),
        "data in the sub-header",
    );
    let mut file = base.clone();
    put_u64(&mut file, table + 24 * 5, table as u64 + 24);
    case(
        file,
        |k| matches!(k, DamageKind::DataInMetadata { index: 5 }),
        "data in the descriptor table",
    );
    let mut file = base.clone();
    let fourth = get_u64(&base, table + 24 * 4);
    put_u64(&mut file, table + 24 * 5, fourth + 1);
    case(
        file,
        |k| matches!(k, DamageKind::DataOverlap { .. }),
        "data over other data",
    );
    let mut file = base.clone();
    put_u64(&mut file, table + 24 * 5, fourth);
    case(
        file,
        |k| matches!(k, DamageKind::DataOverlap { .. }),
        "two pages on one compressed page",
    );
}

/// Every kdump-compressed mutation, plain and flattened, one at a time:
/// `case(base name, file, what)`. Every 32-bit field of the header and
/// sub-header set to extremes, byte flips across the metadata, cuts.
pub fn kdump_cases(mut case: impl FnMut(&str, &[u8], String)) {
    let frames = mixed_frames(64);
    let plain = build(&frames, &kdump_notes());
    let bases = [
        ("plain", plain.clone()),
        ("flattened", flatten(&plain, 3000)),
    ];
    for (name, base) in &bases {
        // Every 32-bit field of the header and sub-header set to extremes.
        for at in (0..512).step_by(4).chain((4096..4096 + 104).step_by(4)) {
            for value in [0u32, 1, 0x7fff_ffff, u32::MAX, 4097] {
                let mut file = base.clone();
                let at = if *name == "flattened" {
                    at + 4096 + 16
                } else {
                    at
                };
                if at + 4 <= file.len() {
                    file[at..at + 4].copy_from_slice(&value.to_le_bytes());
                    case(name, &file, format!("field at {at} = {value:#x}"));
                }
            }
        }
        // Byte flips across the metadata (bitmaps, descriptors, records).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..400 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % base.len().min(4096 * 6);
            let mut file = base.clone();
            file[at] ^= 1 << (state >> 61);
            case(name, &file, format!("flip at {at}"));
        }
        // Truncations.
        for cut in (0..base.len()).step_by(997) {
            case(name, &base[..cut], format!("cut at {cut}"));
        }
    }
    // The structural classes.
    kdump_class_cases(|file, _, what| case("classes", &file, format!("class: {what}")));
}
