//! What can be wrong with a dump: fatal [`FormatError`]s and the
//! [`Damage`] a partial result carries, each with its file offset.

use core::fmt;

use crate::note::NoteError;

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

/// Something wrong that leaves the rest of the dump usable: the reader
/// reports it and gives what it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// File offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub kind: DamageKind,
}

/// Which note a size problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// `CORE`/`NT_PRSTATUS`.
    Prstatus,
    /// QEMU's CPU state.
    QemuCpuState,
    /// A crashkit note of this type.
    Crashkit(u32),
}

/// What is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// The program header table is cut: only `present` of `wanted` are in
    /// the file.
    ProgramHeadersCut {
        /// Headers the ELF header announces.
        wanted: u64,
        /// Headers inside the file.
        present: u64,
    },
    /// Program header `index` has an offset or address range that wraps
    /// around 2^64; the segment is ignored.
    SegmentWraps {
        /// Program header index.
        index: u32,
    },
    /// Program header `index` has `p_filesz > p_memsz`; `p_filesz` is used
    /// for both.
    FileSizeAboveMemorySize {
        /// Program header index.
        index: u32,
    },
    /// Segment `index`'s bytes run past the end of the file: `missing`
    /// bytes are lost.
    SegmentPastEnd {
        /// Program header index.
        index: u32,
        /// Bytes of `p_filesz` not in the file.
        missing: u64,
    },
    /// Segment `index` repeats segment `of` exactly; it is ignored.
    DuplicateSegment {
        /// Program header index.
        index: u32,
        /// The earlier identical one.
        of: u32,
    },
    /// Segments `index` and `other` give the same virtual mapping of
    /// overlapping physical memory from different file bytes: which is
    /// right cannot be told; `other` (the earlier) is used. (Overlaps with
    /// different virtual addresses, as Linux's kernel-text segment, are
    /// normal and not reported.)
    ConflictingSegments {
        /// Program header index.
        index: u32,
        /// The earlier segment that wins.
        other: u32,
    },
    /// A note segment runs past the end of the file by `missing` bytes;
    /// the notes inside the file are read.
    NotesPastEnd {
        /// Program header index.
        index: u32,
        /// Bytes not in the file.
        missing: u64,
    },
    /// A note in a note segment is malformed; the notes after it in the
    /// same segment are not read.
    Note(NoteError),
    /// A note's descriptor has the wrong size for its kind; it is ignored.
    NoteSize {
        /// Which note.
        note: NoteKind,
        /// The size expected (at least this, for growing crashkit notes).
        expected: u32,
        /// The size found.
        found: u32,
    },
    /// An i386 `NT_PRSTATUS` in a dump whose machine is x86_64; its
    /// registers are read as i386 ones.
    I386NoteInX86_64Dump,
    /// A second note of a kind there must be one of; the first is used.
    DuplicateNote {
        /// Which note (`CRASHKIT` type, or 0 for `VMCOREINFO`).
        kind: NoteKind,
    },
    /// crashkit's memory map is not sorted ascending without overlap, or
    /// has a partial entry; the entries before the problem are used.
    BadMemoryMap,
    /// A crashkit note says format version `found`, newer than this
    /// reader's; fields it does not know are ignored.
    NewerFormat {
        /// The version in the dump.
        found: u32,
    },
    /// A kdump-compressed file's bitmaps cover fewer page frames than its
    /// header says; frames past them are holes.
    BitmapShort {
        /// Frames the header names.
        frames: u64,
        /// Frames the bitmaps cover.
        covered: u64,
    },
    /// A kdump-compressed file's notes are not in the file.
    NotesMissing,
    /// The number of crashkit control-state notes differs from the number
    /// of CPUs; control state is matched by CPU index where possible.
    ControlStateCount {
        /// `CORE` notes.
        cpus: u32,
        /// Control-state notes.
        controls: u32,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DamageKind::ProgramHeadersCut { wanted, present } => write!(
                f,
                "program header table cut short: {present} of {wanted} headers in the file"
            )?,
            DamageKind::SegmentWraps { index } => write!(
                f,
                "segment {index} wraps past the end of the address or file space; ignored"
            )?,
            DamageKind::FileSizeAboveMemorySize { index } => {
                write!(f, "segment {index} has p_filesz > p_memsz")?
            }
            DamageKind::SegmentPastEnd { index, missing } => write!(
                f,
                "segment {index} runs {missing} bytes past the end of the file (those pages are lost)"
            )?,
            DamageKind::DuplicateSegment { index, of } => {
                write!(f, "segment {index} duplicates segment {of}; ignored")?
            }
            DamageKind::ConflictingSegments { index, other } => write!(
                f,
                "segment {index} maps the same addresses as segment {other} from other file bytes; \
                 segment {other} is used"
            )?,
            DamageKind::NotesPastEnd { index, missing } => write!(
                f,
                "note segment {index} runs {missing} bytes past the end of the file"
            )?,
            DamageKind::Note(error) => write!(f, "{error}")?,
            DamageKind::NoteSize {
                note,
                expected,
                found,
            } => write!(
                f,
                "{note:?} note has a {found}-byte descriptor, {expected} expected; ignored"
            )?,
            DamageKind::I386NoteInX86_64Dump => {
                f.write_str("i386 NT_PRSTATUS note in an x86_64 dump")?
            }
            DamageKind::DuplicateNote { kind } => {
                write!(f, "second {kind:?} note; the first is used")?
            }
            DamageKind::BadMemoryMap => {
                f.write_str("crashkit memory map is unsorted, overlapping or cut")?
            }
            DamageKind::NewerFormat { found } => write!(
                f,
                "crashkit format version {found} is newer than this reader's ({})",
                crate::crashkit_note::FORMAT_VERSION
            )?,
            DamageKind::ControlStateCount { cpus, controls } => {
                write!(f, "{controls} crashkit control-state notes for {cpus} CPUs")?
            }
            DamageKind::BitmapShort { frames, covered } => write!(
                f,
                "the bitmaps cover {covered} page frames of the {frames} the header names"
            )?,
            DamageKind::NotesMissing => {
                f.write_str("the notes the sub-header points at are not in the file")?
            }
        }
        write!(f, ", at offset {:#x}", self.offset)
    }
}
