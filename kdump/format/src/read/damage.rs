//! What can be wrong with a dump, in every format: the [`Damage`] a
//! partial result carries, each with its file offset. (What makes a file
//! unusable is each format's own: `elf::reader::FormatError`,
//! `compressed::reader::KdumpError`.)

use core::fmt;

use crate::notes::NoteError;

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
    /// An x86_64 `NT_PRSTATUS` in a dump whose CPU notes are i386 (an ELF
    /// dump with `EM_386`, a kdump-compressed file whose first CPU note is
    /// i386): the layouts are mixed.
    X86_64NoteInI386Dump,
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
    /// The program header table starts inside the ELF header (`e_phoff`
    /// below 64).
    ProgramHeadersInHeader {
        /// `e_phoff`.
        phoff: u64,
    },
    /// The program header table is not 8-byte aligned (every producer
    /// aligns it; a shifted `e_phoff` reads headers out of their bytes).
    ProgramHeadersMisaligned {
        /// `e_phoff`.
        phoff: u64,
    },
    /// The program header table, as `e_phoff` and `e_phnum` give it, runs
    /// into a segment's bytes (notes or page data): headers read from data.
    ProgramHeadersOverlapData {
        /// The segment whose bytes the table covers.
        index: u32,
    },
    /// Segments `index` and `other` map the same physical memory (at
    /// different virtual addresses, as Linux's kernel text and direct map
    /// do) but their file bytes differ from physical address `paddr` on:
    /// one of them is damaged, and which cannot be told. Found by
    /// comparing page data (`ElfDump::overlap_damage`), not at opening.
    OverlapDiffers {
        /// Program header index of the later-starting segment.
        index: u32,
        /// The earlier segment (the one reads use).
        other: u32,
        /// The first physical address where they differ.
        paddr: u64,
    },
    /// The `VMCOREINFO` text is not as Linux writes it (the offset is
    /// the line's or the byte's).
    Vmcoreinfo(crate::vmcoreinfo::TextProblem),
    /// More `VMCOREINFO` problems than are listed one by one.
    VmcoreinfoMore {
        /// Problems not listed.
        more: u32,
    },
    /// A kdump-compressed file's `bitmap_blocks` is odd, or sizes each
    /// bitmap beyond the blocks `max_mapnr` needs: the bitmaps run into
    /// the place of the descriptors.
    BitmapBlocks {
        /// `bitmap_blocks`.
        blocks: u32,
        /// The frame count the header names.
        frames: u64,
    },
    /// `max_mapnr` is not `max_mapnr_64` capped at `u32::MAX`.
    MaxMapnrMismatch {
        /// The 32-bit count.
        max_mapnr: u32,
        /// The 64-bit count (the one used).
        max_mapnr_64: u64,
    },
    /// A split part's frame range starts after it ends, or ends past the
    /// frames the header names.
    SplitRange {
        /// First frame.
        start: u64,
        /// End frame (exclusive).
        end: u64,
        /// The frame count.
        frames: u64,
    },
    /// `nr_cpus` differs from the number of `NT_PRSTATUS` notes.
    CpuCount {
        /// `nr_cpus`.
        header: i32,
        /// CPU notes read.
        notes: u32,
    },
    /// The sub-header's `VMCOREINFO` copy is not in the file.
    VmcoreinfoMissing,
    /// The sub-header's `VMCOREINFO` copy differs from the note's text.
    VmcoreinfoCopyDiffers,
    /// A bitmap bit is set for `frame`, at or past the frame count the
    /// header names (`max_mapnr`).
    BitPastMaxMapnr {
        /// The first such frame.
        frame: u64,
    },
    /// Frames set in the second (dumpable) bitmap but clear in the first
    /// (present): `count` of them, the first `frame`.
    DumpableNotPresent {
        /// The first such frame.
        frame: u64,
        /// How many.
        count: u64,
    },
    /// The descriptor table, sized by the second bitmap's population
    /// (`descriptors`), does not end where the page data starts (the first
    /// descriptor's data at `first_data`, with only zeros between): a
    /// bitmap bit was set or cleared by damage, and every frame after it
    /// reads another frame's data.
    DescriptorTableEnd {
        /// Descriptors the second bitmap counts.
        descriptors: u64,
        /// Where the first descriptor's data is.
        first_data: u64,
    },
    /// Page descriptor `index` (of this file's table) points its data
    /// into the headers, bitmaps or descriptor table.
    DataInMetadata {
        /// The descriptor's index in the table.
        index: u64,
    },
    /// Page descriptor `index`'s data overlaps descriptor `other`'s
    /// (only the shared zero page may be used twice, whole).
    DataOverlap {
        /// The descriptor's index.
        index: u64,
        /// The other descriptor's index.
        other: u64,
    },
    /// A kdump-compressed file ends at `len`, before its descriptor table
    /// or its page data ends (at `needed` at least): it is cut, and the
    /// pages whose bytes are past the end are lost.
    FileCut {
        /// The file's length.
        len: u64,
        /// Where the table or the data reaches, at least.
        needed: u64,
    },
    /// A kdump-compressed header whose `utsname.machine` is not an x86 one
    /// (`x86_64`, `i686`, ...): the reader's layouts do not apply.
    NotX86Machine,
    /// Sub-header fields of a later header version than `version` are
    /// set: the version is damaged, or the fields are.
    FieldsPastVersion {
        /// `header_version`.
        version: i32,
    },
    /// The sub-header's eraseinfo (`offset_eraseinfo`, `size_eraseinfo`)
    /// is not in the file, or lies in the headers or bitmaps.
    EraseinfoMissing,
    /// More data-layout problems than are listed one by one.
    DataLayoutMore {
        /// Problems not listed.
        more: u64,
    },
    /// Program header `index` has a `p_type` no vmcore producer writes
    /// (only `PT_LOAD`, `PT_NOTE` and `PT_NULL` are): it is ignored.
    UnknownSegmentType {
        /// Program header index.
        index: u32,
        /// The type found.
        p_type: u32,
    },
    /// A QEMU dump's CPU notes and CPU-state notes differ in number (QEMU
    /// writes one of each per CPU).
    QemuNoteCount {
        /// `NT_PRSTATUS` notes read.
        cpus: u32,
        /// QEMU CPU-state notes.
        states: u32,
    },
    /// crashkit notes without crashkit's identity note: the identity's
    /// name or type is damaged (the dump cannot be judged as crashkit's).
    CrashkitIdentityMissing,
    /// Segments `index` and `other` read the same file bytes as different
    /// physical memory.
    SharedFileBytes {
        /// Program header index.
        index: u32,
        /// The segment whose bytes it shares.
        other: u32,
    },
    /// No `PT_LOAD` segment, or none that describes any memory.
    NoMemory,
    /// No `PT_NOTE` segment, or a kdump-compressed file (header version
    /// 4 on) with `size_note` 0: every vmcore producer writes notes (CPUs,
    /// `VMCOREINFO`).
    NoNotes,
    /// A `PT_LOAD` whose physical range ends past the machine's physical
    /// address width (`NUMBER(MAX_PHYSMEM_BITS)` of `VMCOREINFO`, else 52
    /// bits).
    SegmentBeyondPhysicalWidth {
        /// The segment's program header index.
        index: u32,
        /// The width, in bits.
        bits: u32,
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
            DamageKind::X86_64NoteInI386Dump => {
                f.write_str("x86_64 NT_PRSTATUS note in a dump of i386 CPU notes")?
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
                crate::notes::crashkit::FORMAT_VERSION
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
            DamageKind::BitmapBlocks { blocks, frames } => write!(
                f,
                "bitmap_blocks {blocks} does not fit {frames} frames (two equal bitmaps, \
                 each of the blocks max_mapnr needs)"
            )?,
            DamageKind::MaxMapnrMismatch {
                max_mapnr,
                max_mapnr_64,
            } => write!(
                f,
                "max_mapnr {max_mapnr} disagrees with max_mapnr_64 {max_mapnr_64}"
            )?,
            DamageKind::SplitRange { start, end, frames } => write!(
                f,
                "split range {start}..{end}: empty, reversed, past the {frames} frames, in a \
                 dump that is not split, or its two copies differ"
            )?,
            DamageKind::CpuCount { header, notes } => write!(
                f,
                "nr_cpus {header} but {notes} NT_PRSTATUS notes"
            )?,
            DamageKind::VmcoreinfoMissing => f.write_str(
                "the sub-header's VMCOREINFO (offset_vmcoreinfo, size_vmcoreinfo) is not in the file",
            )?,
            DamageKind::VmcoreinfoCopyDiffers => f.write_str(
                "the sub-header's VMCOREINFO copy differs from the VMCOREINFO note",
            )?,
            DamageKind::BitPastMaxMapnr { frame } => write!(
                f,
                "a bitmap bit is set for frame {frame:#x}, past the frames max_mapnr names"
            )?,
            DamageKind::DumpableNotPresent { frame, count } => write!(
                f,
                "{count} frames set in the dumpable bitmap are clear in the present one \
                 (the first: frame {frame:#x})"
            )?,
            DamageKind::DescriptorTableEnd {
                descriptors,
                first_data,
            } => write!(
                f,
                "the descriptor table ({descriptors} descriptors by the dumpable bitmap) does not \
                 end where the page data starts ({first_data:#x}): frames read other frames' data"
            )?,
            DamageKind::DataInMetadata { index } => write!(
                f,
                "page descriptor {index} points into the headers, bitmaps or descriptor table"
            )?,
            DamageKind::DataOverlap { index, other } => write!(
                f,
                "page descriptor {index}'s data overlaps descriptor {other}'s"
            )?,
            DamageKind::FileCut { len, needed } => write!(
                f,
                "the file is cut: it ends at {len:#x}, its descriptors and page data reach \
                 {needed:#x} at least"
            )?,
            DamageKind::NotX86Machine => {
                f.write_str("utsname.machine is not an x86 machine")?
            }
            DamageKind::FieldsPastVersion { version } => write!(
                f,
                "sub-header fields of a version later than header_version {version} are set"
            )?,
            DamageKind::EraseinfoMissing => f.write_str(
                "the eraseinfo (offset_eraseinfo, size_eraseinfo) is not in the file, or lies in \
                 the headers or bitmaps",
            )?,
            DamageKind::DataLayoutMore { more } => {
                write!(f, "{more} more page descriptors misplaced or overlapping")?
            }
            DamageKind::Vmcoreinfo(problem) => write!(f, "VMCOREINFO: {problem}")?,
            DamageKind::VmcoreinfoMore { more } => write!(f, "VMCOREINFO: {more} more problems")?,
            DamageKind::OverlapDiffers {
                index,
                other,
                paddr,
            } => write!(
                f,
                "segments {other} and {index} map physical {paddr:#x} with different bytes"
            )?,
            DamageKind::ProgramHeadersInHeader { phoff } => write!(
                f,
                "program header table at {phoff:#x}, inside the 64-byte ELF header (e_phoff)"
            )?,
            DamageKind::ProgramHeadersMisaligned { phoff } => write!(
                f,
                "program header table at {phoff:#x} is not 8-byte aligned (e_phoff)"
            )?,
            DamageKind::ProgramHeadersOverlapData { index } => write!(
                f,
                "the program header table (e_phoff, e_phnum) runs into segment {index}'s bytes"
            )?,
            DamageKind::NoMemory => f.write_str("no PT_LOAD segment describes any memory")?,
            DamageKind::UnknownSegmentType { index, p_type } => write!(
                f,
                "program header {index} has type {p_type:#x}, which no vmcore producer writes; \
                 ignored"
            )?,
            DamageKind::QemuNoteCount { cpus, states } => write!(
                f,
                "{cpus} CPU notes but {states} QEMU CPU-state notes (QEMU writes one of each per CPU)"
            )?,
            DamageKind::CrashkitIdentityMissing => f.write_str(
                "crashkit notes without crashkit's identity note (its name or type is damaged)",
            )?,
            DamageKind::SharedFileBytes { index, other } => write!(
                f,
                "segments {other} and {index} read the same file bytes as different memory"
            )?,
            DamageKind::NoNotes => f.write_str(
                "no notes (no PT_NOTE segment, or size_note 0): every vmcore producer writes them",
            )?,
            DamageKind::SegmentBeyondPhysicalWidth { index, bits } => write!(
                f,
                "segment {index} ends past the {bits}-bit physical address width (p_paddr, p_memsz)"
            )?,
        }
        write!(f, ", at offset {:#x}", self.offset)
    }
}
