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
}
