//! Hostile input, deterministically: hundreds of files derived from valid
//! dumps (crashkit's, a QEMU-style one), each with the class of outcome it
//! must have. No case may panic, hang or allocate beyond the file's size;
//! an error names an offset inside or at the end of the file; a dump that
//! still reads as complete returns only the original bytes.

mod common;

use common::mutations::{Base, Expect, elf_bases as bases, elf_cases, get_u64, put_u16, put_u64};
use common::{Memory, qemu_style_elf};
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::read::{Completeness, DamageKind, Incomplete, PageState, Producer};
use crashkit_dump_format::{PAGE_SIZE, PhysRange};

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

#[test]
fn mutated_dumps_give_their_expected_outcome() {
    let mut cases = 0usize;
    for base in bases() {
        let original = ElfDump::parse(&base.file).unwrap();
        assert_eq!(original.damage(), &[], "{}", base.name);
        elf_cases(&base, |file, expect, what| {
            check(&base, &file, expect, &format!("{}: {what}", base.name));
            cases += 1;
        });
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
    assert_eq!(dump.machine(), crashkit_dump_format::read::Machine::I386);
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
    // Append a kernel-text PT_LOAD in a new table at the end of the file,
    // with its own copy of two of the direct map's pages, as Linux writes.
    let new_phoff = file.len();
    let mut table = file[phoff..phoff + phnum * 56].to_vec();
    let mut text = load.clone();
    let direct = get_u64(&load, 8) as usize;
    let copy_at = new_phoff + (phnum + 1) * 56;
    text[8..16].copy_from_slice(&(copy_at as u64).to_le_bytes());
    text[16..24].copy_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
    text[24..32].copy_from_slice(&(get_u64(&load, 24) + 0x1000).to_le_bytes());
    text[32..40].copy_from_slice(&0x2000u64.to_le_bytes());
    text[40..48].copy_from_slice(&0x2000u64.to_le_bytes());
    table.extend_from_slice(&text);
    let pages = file[direct + 0x1000..direct + 0x3000].to_vec();
    file.extend_from_slice(&table);
    file.extend_from_slice(&pages);
    put_u64(&mut file, 32, new_phoff as u64);
    put_u16(&mut file, 56, (phnum + 1) as u16);
    let dump = ElfDump::parse(&file).unwrap();
    assert_eq!(dump.damage(), &[]);
    assert_eq!(dump.overlap_damage(), &[], "equal bytes in the overlap");
    let mut page = [0u8; 4096];
    dump.read_phys(0x100_1000, &mut page).unwrap();
    assert_eq!(page, memory.expected(0x100_1000));
    // One byte of the direct map's copy of the text changed: the two
    // segments disagree, and which is right cannot be told.
    let mut damaged = file.clone();
    damaged[direct + 0x1234] ^= 0x40;
    let dump = ElfDump::parse(&damaged).unwrap();
    assert_eq!(dump.damage(), &[], "opening reads no page data");
    let found = dump.overlap_damage();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].kind,
        DamageKind::OverlapDiffers {
            index: phnum as u32,
            other: 1,
            paddr: 0x100_1234
        }
    );
    assert!(found[0].to_string().contains("0x1001234"), "{}", found[0]);
    // Outside the overlap, a change is not visible (page bytes carry no
    // checksum).
    let mut outside = file.clone();
    outside[direct + 0x3000] ^= 0x40;
    assert_eq!(
        ElfDump::parse(&outside).unwrap().overlap_damage(),
        &[],
        "bytes outside the overlap are not compared"
    );

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

/// A Linux /proc/vmcore cut inside its RAM segment (section 3 of issue
/// 23): the headers and notes are whole, so the dump is truncated, not
/// "damaged"; a page the whole kernel-text segment still holds reads from
/// it; pages count present only for bytes in the file.
#[test]
fn a_cut_linux_vmcore_reads_overlapping_pages_from_the_whole_segment() {
    // Kernel text first in the file (as Linux writes it), then the direct
    // map of the same and more memory.
    let ranges = [
        PhysRange::new(0x100_1000, 0x2000),
        PhysRange::new(0x100_0000, 0x8000),
    ];
    let memory = Memory::patterned(&ranges, |_| false);
    let mut file = qemu_style_elf(&ranges, &memory, 1, false);
    let phoff = ElfDump::parse(&file).unwrap().header().e_phoff as usize;
    put_u64(&mut file, phoff + 56 + 16, 0xffff_ffff_8100_1000);
    let whole = ElfDump::parse(&file).unwrap();
    assert_eq!(whole.damage(), &[]);
    assert_eq!(whole.overlap_damage(), &[]);
    let direct = get_u64(&file, phoff + 112 + 8) as usize;
    let cut = direct + 0x1800;
    let dump = ElfDump::parse(&file[..cut]).unwrap();
    let kinds: Vec<_> = dump.damage().iter().map(|d| d.kind).collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [DamageKind::SegmentPastEnd { index: 2, .. }]
        ),
        "{kinds:?}"
    );
    assert_eq!(
        dump.completeness(),
        Completeness::Incomplete(Incomplete::Truncated {
            len: cut as u64,
            expected: file.len() as u64
        })
    );
    let mut page = [0u8; 4096];
    for phys in [0x100_0000u64, 0x100_1000, 0x100_2000] {
        dump.read_phys(phys, &mut page)
            .unwrap_or_else(|e| panic!("{phys:#x}: {e:?}"));
        assert_eq!(page, memory.expected(phys), "{phys:#x}");
    }
    assert_eq!(
        dump.read_phys(0x100_3000, &mut page).unwrap_err().state,
        PageState::Lost
    );
    let counts = dump.page_counts();
    assert_eq!((counts.present, counts.lost), (3, 5), "{counts:?}");
}

/// Unusual but legal (docs/cli.md lists them): bytes after the last
/// segment, a program header turned into PT_NULL, zero padding after the
/// last note. None is damage.
#[test]
fn legal_oddities_stay_valid() {
    for base in bases() {
        let original = ElfDump::parse(&base.file).unwrap();
        let completeness = original.completeness();
        let mut padded = base.file.clone();
        padded.extend_from_slice(&[0xa5; 4096]);
        let dump = ElfDump::parse(&padded).unwrap();
        assert_eq!(dump.damage(), &[], "{}: padding", base.name);
        assert_eq!(dump.completeness(), completeness, "{}: padding", base.name);

        // A PT_NULL in place of a PT_LOAD: that memory is gone (a hole),
        // but nothing is damaged.
        let phoff = original.header().e_phoff as usize;
        let load = (0..original.program_header_count() as usize)
            .map(|i| phoff + i * 56)
            .filter(|&at| u32::from_le_bytes(base.file[at..at + 4].try_into().unwrap()) == 1)
            .nth(1)
            .unwrap();
        let mut nulled = base.file.clone();
        nulled[load..load + 4].copy_from_slice(&0u32.to_le_bytes());
        let dump = ElfDump::parse(&nulled).unwrap();
        assert_eq!(dump.damage(), &[], "{}: PT_NULL", base.name);
    }
    // Zero padding after the last note.
    let ranges = [PhysRange::new(0, 0x4000)];
    let memory = Memory::patterned(&ranges, |_| false);
    let file = qemu_style_elf(&ranges, &memory, 2, false);
    let dump = ElfDump::parse(&file).unwrap();
    let phoff = dump.header().e_phoff as usize;
    let mut padded = file.clone();
    let filesz = get_u64(&file, phoff + 32);
    put_u64(&mut padded, phoff + 32, filesz + 64);
    // The 64 bytes after the notes are the first page's: make them zero.
    let end = (get_u64(&file, phoff + 8) + filesz) as usize;
    padded[end..end + 64].fill(0);
    let dump = ElfDump::parse(&padded).unwrap();
    assert_eq!(dump.damage(), &[], "zero padding after the notes");
}

/// "No structural mutation verifies unless docs/cli.md lists its class as
/// legal", for the ELF bases: no mutation of crashkit's dump verifies (its
/// completion marker's checksum covers the metadata); a mutation of the
/// QEMU-style dump that verifies changed only fields nothing reads or can
/// check: ELF header fields other than the ones the reader uses, the
/// section header QEMU writes (read only under PN_XNUM), `p_flags`,
/// `p_vaddr`, `p_align`, a `PT_NOTE`'s `p_paddr` and `p_memsz`, a
/// `PT_LOAD`'s `p_memsz` grown (makedumpfile's excluded tail), note names'
/// padding and note descriptors (register values).
#[test]
fn a_mutation_that_verifies_changed_only_what_no_reader_relies_on() {
    use crashkit_dump_format::notes::Notes;
    for base in bases() {
        let dump = ElfDump::parse(&base.file).unwrap();
        let phoff = dump.header().e_phoff as usize;
        let phnum = dump.program_header_count() as usize;
        let p_type = |i: usize| {
            u32::from_le_bytes(
                base.file[phoff + i * 56..phoff + i * 56 + 4]
                    .try_into()
                    .unwrap(),
            )
        };
        let mut note_content: Vec<(usize, usize)> = Vec::new();
        let mut note_regions = Vec::new();
        for i in (0..phnum).filter(|&i| p_type(i) == 4) {
            let offset = get_u64(&base.file, phoff + i * 56 + 8) as usize;
            let len = get_u64(&base.file, phoff + i * 56 + 32) as usize;
            note_regions.push(offset..offset + len);
            for note in Notes::new(&base.file[offset..offset + len], offset as u64).flatten() {
                let name_end = note.offset as usize + 12 + note.name.len() + 1;
                note_content.push((name_end, note.desc_offset as usize));
                let desc = note.desc_offset as usize;
                note_content.push((desc, desc + note.desc.len()));
            }
        }
        let legal = |at: usize, file: &[u8]| -> bool {
            if at < 64 {
                // Used: magic, class, data (0..6), e_type, e_machine (16..20),
                // e_phoff, e_shoff (32..48), e_flags' bit 0 (48),
                // e_phentsize, e_phnum (54..58).
                let used = matches!(at, 0..6 | 16..20 | 32..48 | 54..58);
                let incomplete_bit = at == 48 && (file[48] ^ base.file[48]) & 1 != 0;
                return !(used || incomplete_bit);
            }
            if at < phoff {
                return true;
            }
            if at < phoff + phnum * 56 {
                let (i, field) = ((at - phoff) / 56, (at - phoff) % 56);
                let memsz_grew =
                    get_u64(file, phoff + i * 56 + 40) >= get_u64(&base.file, phoff + i * 56 + 40);
                return match (p_type(i), field) {
                    (_, 4..8 | 16..24 | 48..56) => true,
                    (4, 24..32 | 40..48) => true,
                    (1, 40..48) => memsz_grew,
                    _ => false,
                };
            }
            if note_regions.iter().any(|r| r.contains(&at)) {
                return note_content
                    .iter()
                    .any(|&(start, end)| (start..end).contains(&at));
            }
            true // page data
        };
        let (mut verified, mut cases) = (0, 0);
        elf_cases(&base, |file, _, what| {
            if file.len() != base.file.len() {
                return;
            }
            cases += 1;
            let Ok(dump) = ElfDump::parse(&file) else {
                return;
            };
            if !dump.damage().is_empty()
                || !dump.overlap_damage().is_empty()
                || matches!(dump.completeness(), Completeness::Incomplete(_))
            {
                return;
            }
            verified += 1;
            assert!(!base.crashkit, "{}: {what} verifies", base.name);
            for at in (0..file.len()).filter(|&at| file[at] != base.file[at]) {
                assert!(
                    legal(at, &file),
                    "{}: {what}: verifies although byte {at} changed",
                    base.name
                );
            }
        });
        println!(
            "{}: {verified} of {cases} same-length mutations verify",
            base.name
        );
    }
}
