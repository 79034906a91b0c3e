//! Hostile input, deterministically: hundreds of files derived from valid
//! dumps (crashkit's, a QEMU-style one), each with the class of outcome it
//! must have. No case may panic, hang or allocate beyond the file's size;
//! an error names an offset inside or at the end of the file; a dump that
//! still reads as complete returns only the original bytes.

mod common;

use common::mutations::{Base, Expect, elf_bases as bases, elf_cases, put_u16, put_u64};
use common::{Memory, qemu_style_elf};
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::read::{Completeness, Incomplete, PageState, Producer};
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
