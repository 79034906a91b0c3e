//! What both dump readers answer in, whatever the format: who wrote the
//! dump and for which machine, the state of each page, whether the dump is
//! whole, and the damage a partial result carries. The readers are
//! [`crate::elf::reader::ElfDump`] and [`crate::compressed::reader::KdumpDump`];
//! the CPUs and notes they find are [`crate::notes::read`]'s.

mod complete;
mod damage;
mod pages;

pub use crate::notes::read::{Cpu, CpuRegisters, CrashkitNotes};
pub use complete::{Completeness, Incomplete};
pub use damage::{Damage, DamageKind, NoteKind};
pub use pages::{PageCounts, PageState, Span, Unreadable};

/// Who wrote a dump, as far as its notes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// crashkit (its identity note).
    Crashkit,
    /// QEMU `dump-guest-memory` (its `QEMU` CPU-state notes).
    Qemu,
    /// Linux's `/proc/vmcore`, or makedumpfile `-E` of one (`VMCOREINFO`
    /// with `CRASHTIME` and no QEMU notes).
    LinuxKdump,
    /// Something else.
    Unknown,
}

/// The machine of a dump's `e_machine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// `EM_X86_64`.
    X86_64,
    /// `EM_386` (QEMU, when CPU 0 was not in long mode).
    I386,
}

/// One `PT_LOAD` as the readers use it (the kdump-compressed reader's ELF
/// notes segment too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of its program header.
    pub index: u32,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_offset`.
    pub offset: u64,
    /// `p_filesz` (after the `p_filesz > p_memsz` repair).
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_flags`.
    pub flags: u32,
    /// Bytes of `filesz` that are inside the file.
    pub in_file: u64,
}
