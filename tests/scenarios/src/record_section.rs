//! Where a kernel's linker put crashkit's `.crash_record` section when its
//! linker script does not name it (the minimal kernel's case): the section
//! must be loaded from the file (not zero-filled), outside the range the
//! boot stub zeroes (`__bss_start..__bss_end`), and start with the record's
//! magic, so the record is in RAM, intact, at the section's address from
//! the first instruction. The runner then checks that the record it finds
//! in guest RAM is at that address.

use std::fmt;
use std::path::Path;

use goblin::elf::Elf;
use goblin::elf::program_header::PT_LOAD;
use goblin::elf::section_header::SHT_PROGBITS;

/// The section as the ELF has it.
#[derive(Debug)]
pub struct RecordSection {
    /// Its address (the kernel is identity mapped: also its physical one).
    pub address: u64,
    size: u64,
    after: String,
    bss: (u64, u64),
}

impl fmt::Display for RecordSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crash record: section .crash_record at {:#x} ({} bytes, after {}), \
             loaded from the file, outside .bss {:#x}..{:#x}, starts with the magic",
            self.address, self.size, self.after, self.bss.0, self.bss.1
        )
    }
}

/// Find and check the section.
pub fn find(kernel: &Path) -> Result<RecordSection, String> {
    let bytes = std::fs::read(kernel).map_err(|e| format!("reading it: {e}"))?;
    let elf = Elf::parse(&bytes).map_err(|e| format!("not an ELF: {e}"))?;
    let name = |index: usize| elf.shdr_strtab.get_at(index).unwrap_or("?");
    let (index, section) = elf
        .section_headers
        .iter()
        .enumerate()
        .find(|(_, s)| name(s.sh_name) == ".crash_record")
        .ok_or("no .crash_record section")?;
    if section.sh_type != SHT_PROGBITS {
        return Err(format!(
            "type {} (not PROGBITS: not loaded from the file)",
            section.sh_type
        ));
    }
    let symbol = |wanted: &str| {
        elf.syms
            .iter()
            .find(|s| elf.strtab.get_at(s.st_name) == Some(wanted))
            .map(|s| s.st_value)
            .ok_or(format!("no symbol {wanted}"))
    };
    let bss = (symbol("__bss_start")?, symbol("__bss_end")?);
    let (start, end) = (section.sh_addr, section.sh_addr + section.sh_size);
    if start < bss.1 && bss.0 < end {
        return Err(format!(
            "{start:#x}..{end:#x} overlaps .bss {:#x}..{:#x}, which the boot stub zeroes",
            bss.0, bss.1
        ));
    }
    let loaded = elf.program_headers.iter().any(|p| {
        p.p_type == PT_LOAD
            && p.p_vaddr <= start
            && end <= p.p_vaddr + p.p_filesz
            && p.p_paddr == p.p_vaddr
    });
    if !loaded {
        return Err(format!(
            "{start:#x}..{end:#x} is not inside the file part of an identity-mapped PT_LOAD segment"
        ));
    }
    let offset = usize::try_from(section.sh_offset).map_err(|e| e.to_string())?;
    let magic = bytes
        .get(offset..offset + crashkit_record::layout::MAGIC.len())
        .ok_or("the section's bytes are past the file's end")?;
    if magic != crashkit_record::layout::MAGIC {
        return Err(format!("it starts with {magic:02x?}, not the magic"));
    }
    let after = index
        .checked_sub(1)
        .and_then(|previous| elf.section_headers.get(previous))
        .map_or("nothing".to_owned(), |s| name(s.sh_name).to_owned());
    Ok(RecordSection {
        address: start,
        size: section.sh_size,
        after,
        bss,
    })
}
