//! The capture kernel's ELF image, checked before anything is copied.
//!
//! Every size, count and offset in the image is checked against the
//! others, as for a dump file: the image comes from a boot module or a
//! file, and a wrong one must be refused at load time, not found at the
//! crash.

pub use crashkit_dump_format::PhysRange;
use crashkit_dump_format::elf::{
    self, EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, HEADER_SIZE,
    PROGRAM_HEADER_SIZE, PT_LOAD,
};

/// The most `PT_LOAD` segments an image may have (a kernel has a handful).
pub const MAX_SEGMENTS: usize = 16;

/// `e_type` of an executable.
const ET_EXEC: u16 = 2;

/// One `PT_LOAD` of the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Where in the image file its bytes are.
    pub file_offset: u64,
    /// Bytes in the file.
    pub file_len: u64,
    /// Where it is loaded (`p_paddr`), and how much (`p_memsz`; past the
    /// file bytes, zeros).
    pub memory: PhysRange,
}

/// Why an image cannot be loaded; each names the field that shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Not an ELF64 little-endian file (magic, class or data encoding).
    NotElf64,
    /// `e_machine` is not x86_64.
    NotX86_64 {
        /// The machine found.
        machine: u16,
    },
    /// `e_type` is not an executable.
    NotExecutable {
        /// The type found.
        e_type: u16,
    },
    /// The program header table is not inside the file, or its entry size
    /// is not 56.
    BadProgramHeaders,
    /// No `PT_LOAD` segment.
    NoSegments,
    /// More `PT_LOAD` segments than [`MAX_SEGMENTS`].
    TooManySegments,
    /// A segment's file bytes run past the end of the image.
    SegmentPastFile {
        /// Index of its program header.
        index: usize,
    },
    /// A segment has more file bytes than memory (`p_filesz > p_memsz`), or
    /// its range wraps.
    BadSegment {
        /// Index of its program header.
        index: usize,
    },
    /// A segment is not wholly inside the reservation.
    OutsideReservation {
        /// Index of its program header.
        index: usize,
    },
    /// Two segments overlap.
    SegmentsOverlap {
        /// Index of the earlier program header.
        first: usize,
        /// Index of the later one.
        second: usize,
    },
    /// The entry point is not inside a loaded segment.
    EntryNotLoaded {
        /// `e_entry`.
        entry: u64,
    },
    /// The reservation is empty, not page aligned, or wraps.
    BadReservation,
    /// The reservation overlaps memory the running kernel keeps (so would
    /// a segment: every segment must be inside the reservation).
    ReservationOverlapsKernel {
        /// The kernel range it overlaps.
        kernel: PhysRange,
    },
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotElf64 => f.write_str("not an ELF64 little-endian image"),
            Self::NotX86_64 { machine } => write!(f, "e_machine {machine}, not x86_64 (62)"),
            Self::NotExecutable { e_type } => write!(f, "e_type {e_type}, not an executable (2)"),
            Self::BadProgramHeaders => f.write_str("the program header table is not in the image"),
            Self::NoSegments => f.write_str("no PT_LOAD segment"),
            Self::TooManySegments => {
                write!(f, "more than {MAX_SEGMENTS} PT_LOAD segments")
            }
            Self::SegmentPastFile { index } => {
                write!(
                    f,
                    "program header {index}: its bytes run past the image's end"
                )
            }
            Self::BadSegment { index } => write!(
                f,
                "program header {index}: p_filesz above p_memsz, or its range wraps"
            ),
            Self::OutsideReservation { index } => {
                write!(f, "program header {index}: not inside the reservation")
            }
            Self::SegmentsOverlap { first, second } => {
                write!(f, "program headers {first} and {second} overlap")
            }
            Self::EntryNotLoaded { entry } => {
                write!(f, "entry point {entry:#x} is in no loaded segment")
            }
            Self::BadReservation => {
                f.write_str("the reservation is empty, not page aligned, or wraps")
            }
            Self::ReservationOverlapsKernel { kernel } => write!(
                f,
                "the reservation overlaps the running kernel's {:#x}..{:#x}",
                kernel.start,
                kernel.start.wrapping_add(kernel.len)
            ),
        }
    }
}

impl core::error::Error for LoadError {}

/// A capture kernel image that passed every check, ready to copy.
#[derive(Clone, Copy, Debug)]
pub struct CaptureImage<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) reservation: PhysRange,
    pub(crate) entry: u64,
    pub(crate) segments: [Segment; MAX_SEGMENTS],
    pub(crate) count: usize,
}

impl<'a> CaptureImage<'a> {
    /// Check `image` for loading into `reservation` (physical, page
    /// aligned) while the running kernel occupies `kernel` (its image and
    /// anything else it must keep; empty ranges are ignored).
    pub fn check(
        image: &'a [u8],
        reservation: PhysRange,
        kernel: &[PhysRange],
    ) -> Result<Self, LoadError> {
        const PAGE: u64 = 4096;
        let reservation_ok = reservation.len > 0
            && reservation.start.is_multiple_of(PAGE)
            && reservation.len.is_multiple_of(PAGE)
            && reservation.end().is_some();
        if !reservation_ok {
            return Err(LoadError::BadReservation);
        }
        // Segments are checked to lie inside the reservation, so this
        // keeps every segment off the running kernel too.
        if let Some(&kernel) = kernel
            .iter()
            .find(|k| k.len > 0 && k.overlaps(&reservation))
        {
            return Err(LoadError::ReservationOverlapsKernel { kernel });
        }
        let header_bytes = image.get(..HEADER_SIZE).ok_or(LoadError::NotElf64)?;
        if header_bytes.get(..4) != Some(&ELFMAG[..])
            || header_bytes.get(EI_CLASS) != Some(&ELFCLASS64)
            || header_bytes.get(EI_DATA) != Some(&ELFDATA2LSB)
        {
            return Err(LoadError::NotElf64);
        }
        let header = elf::decode_header(header_bytes).ok_or(LoadError::NotElf64)?;
        if header.e_machine != EM_X86_64 {
            return Err(LoadError::NotX86_64 {
                machine: header.e_machine,
            });
        }
        if header.e_type != ET_EXEC {
            return Err(LoadError::NotExecutable {
                e_type: header.e_type,
            });
        }
        let table_len = u64::from(header.e_phnum) * PROGRAM_HEADER_SIZE as u64;
        let table_fits = header
            .e_phoff
            .checked_add(table_len)
            .is_some_and(|end| end <= image.len() as u64);
        if usize::from(header.e_phentsize) != PROGRAM_HEADER_SIZE || !table_fits {
            return Err(LoadError::BadProgramHeaders);
        }
        let mut segments = [Segment::default(); MAX_SEGMENTS];
        let mut indexes = [0usize; MAX_SEGMENTS];
        let mut count = 0;
        for index in 0..usize::from(header.e_phnum) {
            let at = usize::try_from(header.e_phoff)
                .ok()
                .and_then(|base| base.checked_add(index * PROGRAM_HEADER_SIZE))
                .ok_or(LoadError::BadProgramHeaders)?;
            let ph = elf::decode_program_header(image, at).ok_or(LoadError::BadProgramHeaders)?;
            if ph.p_type != PT_LOAD || ph.p_memsz == 0 {
                continue;
            }
            let memory = PhysRange::new(ph.p_paddr, ph.p_memsz);
            if ph.p_filesz > ph.p_memsz || memory.end().is_none() {
                return Err(LoadError::BadSegment { index });
            }
            if ph
                .p_offset
                .checked_add(ph.p_filesz)
                .is_none_or(|end| end > image.len() as u64)
            {
                return Err(LoadError::SegmentPastFile { index });
            }
            if !reservation.contains(&memory) {
                return Err(LoadError::OutsideReservation { index });
            }
            if let Some(earlier) = segments[..count]
                .iter()
                .position(|s| s.memory.overlaps(&memory))
            {
                return Err(LoadError::SegmentsOverlap {
                    first: indexes[earlier],
                    second: index,
                });
            }
            let slot = segments.get_mut(count).ok_or(LoadError::TooManySegments)?;
            *slot = Segment {
                file_offset: ph.p_offset,
                file_len: ph.p_filesz,
                memory,
            };
            indexes[count] = index;
            count += 1;
        }
        if count == 0 {
            return Err(LoadError::NoSegments);
        }
        let entry = header.e_entry;
        let loaded = segments[..count]
            .iter()
            .any(|s| s.memory.contains(&PhysRange::new(entry, 1)));
        if !loaded {
            return Err(LoadError::EntryNotLoaded { entry });
        }
        Ok(Self {
            bytes: image,
            reservation,
            entry,
            segments,
            count,
        })
    }

    /// The physical entry point.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The segments to load, in program header order.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }

    /// The reservation it was checked for.
    pub fn reservation(&self) -> PhysRange {
        self.reservation
    }
}
