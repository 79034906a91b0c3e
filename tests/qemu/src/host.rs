//! What both dump corpora (`corpus.rs`, `linux.rs`) use: running a host
//! tool, and comparing a dump's pages (ELF or kdump-compressed) with the
//! guest's RAM file.

use std::process::Command;

use crashkit_dump_format::KdumpDump;
use crashkit_dump_format::PAGE_SIZE;
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::read::PageState;

/// Run `command`; its standard output, or what went wrong with its
/// standard error.
pub fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?} ({e}): cargo xtask test installs it"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every page of every segment that lies in guest RAM, read through the
/// dump, equals the RAM file; the number of pages compared.
pub fn compare_with_ram(dump: &ElfDump<'_>, ram: &[u8], what: &str) -> Result<u64, String> {
    let mut compared = 0;
    let mut page = vec![0u8; PAGE_SIZE as usize];
    for segment in dump.segments() {
        let end = segment.paddr + segment.memsz;
        for phys in (segment.paddr..end).step_by(PAGE_SIZE as usize) {
            let Some(expected) = ram.get(phys as usize..(phys + PAGE_SIZE) as usize) else {
                continue; // outside RAM (QEMU's BIOS ROM segment)
            };
            dump.read_phys(phys, &mut page)
                .map_err(|e| format!("{what}: page {phys:#x}: {e}"))?;
            if page != expected {
                return Err(format!("{what}: page {phys:#x} differs from guest RAM"));
            }
            compared += 1;
        }
    }
    if compared == 0 {
        return Err(format!("{what}: no page in guest RAM"));
    }
    Ok(compared)
}

/// Every frame of guest RAM in a kdump-compressed dump: present and equal
/// to the RAM file, or excluded or a hole (left out by its producer), never
/// different, lost or corrupt. The counts of present and left-out frames.
pub fn compare_kdump_with_ram(kdump: &KdumpDump<'_>, ram: &[u8]) -> Result<(u64, u64), String> {
    let (mut present, mut absent) = (0u64, 0u64);
    let mut page = vec![0u8; PAGE_SIZE as usize];
    let frames = (ram.len() as u64 / PAGE_SIZE).min(kdump.frames());
    for frame in 0..frames {
        let phys = frame * PAGE_SIZE;
        let expected = ram
            .get(phys as usize..(phys + PAGE_SIZE) as usize)
            .unwrap_or(&[]);
        match kdump.read_page(frame, &mut page) {
            Ok(()) if page == expected => present += 1,
            Ok(()) => return Err(format!("page {phys:#x} differs from guest RAM")),
            Err(problem) if matches!(problem.state, PageState::Excluded | PageState::Hole) => {
                absent += 1;
            }
            Err(problem) => {
                return Err(format!(
                    "page {phys:#x} is {} ({:?})",
                    problem.state.name(),
                    problem.decode
                ));
            }
        }
    }
    if present == 0 {
        return Err("no page of guest RAM in the dump".into());
    }
    Ok((present, absent))
}
