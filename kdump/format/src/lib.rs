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
//!   ([`crashkit_note`]);
//! - a page of a dump is **present** (its bytes are in the file), **zero**
//!   (known to be all zeros, not stored), **excluded** (deliberately left
//!   out: a secret, a filtered page), a **hole** (not memory the dump
//!   covers) or **lost** (meant to be in the dump but not there: the write
//!   failed or the file is cut short), see `reader::PageState`;
//! - the **completion marker** is crashkit's note written last, naming this
//!   dump; a dump is **complete** only when it matches the dump's identity
//!   and header checksum (`reader::Completeness`).
//!
//! The byte-level layouts are in `docs/dump-formats.md`.
//!
//! # Invariants
//! - No panics on any input: every size, count and offset read from a file
//!   is checked before use; arithmetic on them is checked; a problem is a
//!   `reader::FormatError` or a `reader::Damage` with its file offset.
//! - No allocation in the writer; the reader allocates only in proportion
//!   to counts it has checked against the file's size.
//! - The writer never writes an excluded page in any form.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod bytes;
pub mod compressed;
pub mod crashkit_note;
pub mod crc32c;
pub mod elf;
pub mod note;
pub mod paging;
pub mod prstatus;
pub mod qemu_note;
pub mod vmcoreinfo;
pub mod writer;

#[cfg(feature = "alloc")]
pub mod reader;

#[cfg(feature = "alloc")]
pub use compressed::reader::KdumpDump;
pub use crashkit_note::ControlState;
pub use prstatus::{I386Registers, Registers};
#[cfg(feature = "alloc")]
pub use reader::{Completeness, ElfDump, PageState};
pub use writer::{DumpPlan, DumpSink, PhysMemory, PhysRange, write_elf_dump};

/// The page size of every dump crashkit writes, and the unit of exclusion.
pub const PAGE_SIZE: u64 = 4096;
