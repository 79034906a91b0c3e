//! What makes a file unusable as an ELF vmcore, and where.

use core::fmt;

/// A file the reader cannot use at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// File offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub kind: FormatErrorKind,
}

/// What makes a file unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatErrorKind {
    /// Shorter than an ELF64 header.
    TooShort {
        /// The file's length.
        len: u64,
    },
    /// No ELF magic.
    NotElf,
    /// An ELF file, but not ELF64 (`EI_CLASS` as found).
    NotElf64(u8),
    /// Not little-endian (`EI_DATA` as found).
    NotLittleEndian(u8),
    /// `e_type` is not `ET_CORE`.
    NotCore(u16),
    /// `e_machine` is neither `EM_X86_64` nor `EM_386`.
    UnsupportedMachine(u16),
    /// `e_phentsize` is not 56.
    BadProgramHeaderSize(u16),
    /// `e_phnum` is `PN_XNUM` but section header 0 is not in the file.
    ExtendedCountMissing,
    /// No program header is inside the file.
    NoProgramHeaders {
        /// `e_phoff`.
        phoff: u64,
        /// The count the header gives.
        phnum: u64,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FormatErrorKind::TooShort { len } => {
                write!(f, "file is {len} bytes, shorter than an ELF64 header (64)")?
            }
            FormatErrorKind::NotElf => f.write_str("not an ELF file (no \\x7fELF magic)")?,
            FormatErrorKind::NotElf64(class) => {
                write!(f, "ELF class {class} is not ELF64 (2)")?
            }
            FormatErrorKind::NotLittleEndian(data) => {
                write!(f, "ELF data encoding {data} is not little-endian (1)")?
            }
            FormatErrorKind::NotCore(e_type) => {
                write!(f, "ELF type {e_type} is not a core file (ET_CORE, 4)")?
            }
            FormatErrorKind::UnsupportedMachine(machine) => write!(
                f,
                "machine {machine} is neither x86_64 (62) nor i386 (3)"
            )?,
            FormatErrorKind::BadProgramHeaderSize(size) => {
                write!(f, "program header size {size} is not 56")?
            }
            FormatErrorKind::ExtendedCountMissing => f.write_str(
                "e_phnum is PN_XNUM but section header 0, which holds the count, is not in the file",
            )?,
            FormatErrorKind::NoProgramHeaders { phoff, phnum } => write!(
                f,
                "none of the {phnum} program headers at {phoff:#x} is inside the file"
            )?,
        }
        write!(f, ", at offset {:#x}", self.offset)
    }
}

impl core::error::Error for FormatError {}
