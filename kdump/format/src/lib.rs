//! crashkit's dump formats: pure data code that writes and reads dumps.
//!
//! One library serves three users: the capture kernel that writes a dump (it
//! has an allocator), the in-place fallback that writes one from the crashed
//! kernel (no allocator), and the offline `crashkit` tool that reads dumps
//! (std, over a memory map). So this crate has no target code (no inline
//! assembly, no hand-over, no MMIO), builds for `x86_64-unknown-none` and for
//! the host, and its writer never allocates. The reader needs `alloc` (the
//! `alloc` feature) for its segment index and CPU list.
//!
//! # Nomenclature
//! - a **dump** is one file (or device extent) holding a machine's memory
//!   and CPU state at a crash; an **ELF vmcore** is a dump in ELF64 core
//!   format (`ET_CORE`), as Linux's `/proc/vmcore`, QEMU's
//!   `dump-guest-memory` and makedumpfile `-E` write;
//! - a **segment** is one `PT_LOAD` program header: a run of physical
//!   memory (`p_paddr`), its virtual address (`p_vaddr`) and its bytes in
//!   the file (`p_offset`, `p_filesz`); past `p_filesz` up to `p_memsz` the
//!   memory is not in the file;
//! - a **note** is one ELF note (`Elf64_Nhdr`, a name, a type, a
//!   descriptor) in the `PT_NOTE` segment: `CORE`/`NT_PRSTATUS` per CPU,
//!   `VMCOREINFO`, QEMU's CPU state, and crashkit's own notes
//!   ([`notes::crashkit`]);
//! - a page of a dump is **present** (its bytes are in the file), **zero**
//!   (known to be all zeros, not stored), **excluded** (deliberately left
//!   out: a secret, a filtered page), a **hole** (not memory the dump
//!   covers) or **lost** (meant to be in the dump but not there: the write
//!   failed or the file is cut short), see `read::PageState`;
//! - the **completion marker** is crashkit's note written last, naming this
//!   dump; a dump is **complete** only when it matches the dump's identity
//!   and header checksum (`read::Completeness`).
//!
//! The byte-level layouts are in `docs/dump-formats.md`.
//!
//! # Map
//! By format, with what the formats share named as such:
//!
//! | module | what |
//! |--------|------|
//! | [`elf`] | the ELF vmcore: ELF64 structs, [`elf::writer`] (`write_elf_dump`), `elf::reader` (`ElfDump`, feature `alloc`) |
//! | [`compressed`] | makedumpfile's kdump-compressed format and its flattened form: headers, page codecs, writer, reader |
//! | [`notes`] | the ELF notes every format carries: the note encoding, `NT_PRSTATUS` registers, QEMU's and crashkit's notes, their one producer (`notes::emit`) and a dump's notes read (`notes::read`) |
//! | [`device`] | the dump device: the dump file between two headers written after it, so a torn dump never reads as whole ([`device::DeviceSink`], [`device::DeviceDump`]) |
//! | [`plan`] | what a writer is told to write: ranges, exclusions, CPUs, VMCOREINFO, the crash record |
//! | [`sink`] | where a writer reads and writes: physical memory, the sink, the page filter, write coalescing |
//! | [`write`](mod@write) | what both writers share: options, progress, statistics, the error that stops a dump |
//! | `read` | what both readers answer in: producer, machine, page states, completeness, damage (feature `alloc`) |
//! | [`vmcoreinfo`], [`paging`], [`crc32c`] | VMCOREINFO text, x86_64 page-table walks over any reader, the checksum of crashkit's notes |
//!
//! # Invariants
//! - No panics on any input: every size, count and offset read from a file
//!   is checked before use; arithmetic on them is checked; a problem is a
//!   format's error (`elf::reader::FormatError`,
//!   `compressed::reader::KdumpError`) or a `read::Damage` with its file
//!   offset.
//! - No allocation in the writer; the reader allocates only in proportion
//!   to counts it has checked against the file's size.
//! - The writer never writes an excluded page in any form.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod bytes;
pub mod compressed;
pub mod crc32c;
pub mod device;
pub mod elf;
pub mod notes;
pub mod paging;
pub mod plan;
#[cfg(feature = "alloc")]
pub mod read;
pub mod sink;
pub mod vmcoreinfo;
pub mod write;

#[cfg(feature = "alloc")]
pub use compressed::reader::KdumpDump;
#[cfg(feature = "alloc")]
pub use elf::reader::ElfDump;
pub use elf::writer::write_elf_dump;
pub use notes::crashkit::ControlState;
pub use notes::prstatus::{I386Registers, Registers};
pub use plan::{DumpPlan, PhysRange};
#[cfg(feature = "alloc")]
pub use read::{Completeness, PageState};
pub use sink::{DumpSink, PhysMemory};

/// The page size of every dump crashkit writes, and the unit of exclusion.
pub const PAGE_SIZE: u64 = 4096;
