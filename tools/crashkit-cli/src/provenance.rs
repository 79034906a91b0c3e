//! Who wrote a dump, and what it was made from where that can be told.
//!
//! A tool that rewrites a dump (makedumpfile filtering, compressing or
//! splitting it) copies its notes, so the notes alone name the first
//! producer, not the file's writer. Each writer leaves its own marks in the
//! headers (facts from ../shared/notes/dump-producers.md, checked on the
//! corpus's files):
//!
//! | file | marks |
//! |---|---|
//! | crashkit's ELF or kdump file | its identity note, and headers its completion marker vouches for |
//! | QEMU's ELF | `QEMU` notes; program headers after one section header (`e_phoff` 192, not 64) |
//! | QEMU's kdump file (also its flattened stream after `makedumpfile -R`) | a header whose utsname has only `machine` |
//! | Linux's `/proc/vmcore` | `CRASHTIME` in VMCOREINFO; notes and segment data page aligned |
//! | makedumpfile's ELF (`-E`) | program headers at 64, the first segment's data right after the notes |
//! | makedumpfile's kdump file | a header with a full utsname (from the kernel's `init_uts_ns`) |
//!
//! makedumpfile's files are then said to be made from the producer their
//! notes name: crashkit's notes, QEMU's, or Linux's `CRASHTIME`.

use serde::Serialize;

use crashkit_dump_format::elf::{PROGRAM_HEADER_SIZE, PT_LOAD, PT_NOTE, decode_program_header};
use crashkit_dump_format::read::Producer;
use crashkit_dump_format::{ElfDump, KdumpDump};

use crate::open::Dump;

/// A dump's writer and origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// Who wrote the file: `crashkit`, `qemu`, `linux` (`/proc/vmcore`),
    /// `makedumpfile`, `unknown`.
    pub producer: &'static str,
    /// What the writer made it from, where its notes say: `crashkit`,
    /// `qemu`, `linux`; `None` for a file its producer wrote from memory.
    pub made_from: Option<&'static str>,
}

impl Provenance {
    const fn new(producer: &'static str, made_from: Option<&'static str>) -> Self {
        Self {
            producer,
            made_from,
        }
    }

    /// `makedumpfile, from a QEMU dump`, or the producer alone.
    pub fn describe(&self) -> String {
        match self.made_from {
            None => self.producer.to_owned(),
            Some(from) => format!(
                "{}, from {}",
                self.producer,
                match from {
                    "crashkit" => "a crashkit dump",
                    "qemu" => "a QEMU dump",
                    "linux" => "Linux's /proc/vmcore",
                    other => other,
                }
            ),
        }
    }
}

/// The provenance of `dump` (a raw RAM image has none: `unknown`).
pub fn of(dump: &Dump<'_>) -> Provenance {
    match dump {
        Dump::Elf(elf) => elf_provenance(elf),
        Dump::Kdump(parts) => kdump_provenance(&parts[0]),
        Dump::Ram(_) => Provenance::new("unknown", None),
    }
}

fn elf_provenance(elf: &ElfDump<'_>) -> Provenance {
    let makedumpfile = makedumpfile_elf_layout(elf);
    let rewriter = if makedumpfile {
        "makedumpfile"
    } else {
        "unknown"
    };
    match elf.producer() {
        Producer::Crashkit if !elf.notes_copied() => Provenance::new("crashkit", None),
        Producer::Crashkit => Provenance::new(rewriter, Some("crashkit")),
        Producer::Qemu if elf.header().e_phoff != 64 => Provenance::new("qemu", None),
        Producer::Qemu => Provenance::new(rewriter, Some("qemu")),
        Producer::LinuxKdump if makedumpfile => Provenance::new("makedumpfile", Some("linux")),
        Producer::LinuxKdump => Provenance::new("linux", None),
        Producer::Unknown => Provenance::new("unknown", None),
    }
}

/// makedumpfile's ELF layout: program headers right after the 64-byte ELF
/// header, a `PT_NOTE` first, and the first `PT_LOAD`'s data starting
/// where the notes end (Linux page-aligns both; QEMU's program headers
/// follow a section header).
fn makedumpfile_elf_layout(elf: &ElfDump<'_>) -> bool {
    let header = elf.header();
    if header.e_phoff != 64 {
        return false;
    }
    let bytes = elf.bytes();
    let at = |i: u64| {
        usize::try_from(header.e_phoff + i * PROGRAM_HEADER_SIZE as u64)
            .ok()
            .and_then(|offset| decode_program_header(bytes, offset))
    };
    let (Some(note), Some(load)) = (at(0), at(1)) else {
        return false;
    };
    note.p_type == PT_NOTE
        && load.p_type == PT_LOAD
        && note.p_offset.checked_add(note.p_filesz) == Some(load.p_offset)
}

fn kdump_provenance(first: &KdumpDump<'_>) -> Provenance {
    let crashkit = first.crashkit();
    if crashkit.is_some() && !first.notes_copied() {
        return Provenance::new("crashkit", None);
    }
    let utsname = &first.header().utsname;
    let empty = |field: &[u8]| field.iter().all(|&b| b == 0);
    // QEMU fills only `machine` (index 4); makedumpfile copies the whole
    // of the kernel's utsname.
    let qemu_header = utsname
        .iter()
        .enumerate()
        .all(|(i, field)| (i == 4) != empty(field));
    if qemu_header {
        return Provenance::new("qemu", None);
    }
    let made_from = if crashkit.is_some() {
        Some("crashkit")
    } else if first.cpus().iter().any(|c| c.qemu.is_some()) {
        Some("qemu")
    } else if first
        .vmcoreinfo()
        .is_some_and(|info| info.get("CRASHTIME").is_some())
    {
        Some("linux")
    } else {
        None
    };
    Provenance::new("makedumpfile", made_from)
}
