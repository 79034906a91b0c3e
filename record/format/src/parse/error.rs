//! What [`crate::RecordView::parse`] found wrong, and where.

use core::fmt;

/// A record that cannot be read: what is wrong ([`ParseErrorKind`]) and at
/// which byte offset from the record's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Offset of the field (or data) at fault, from the record's start.
    pub offset: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The buffer ends before `needed` bytes (it has `available`).
    Truncated {
        /// Bytes the record needs.
        needed: u64,
        /// Bytes the buffer has.
        available: u64,
    },
    /// The first eight bytes are not `CRASHKIT`.
    BadMagic,
    /// The byte-order mark is neither `04 03 02 01` nor `01 02 03 04`.
    UnknownByteOrder {
        /// The mark, read little-endian.
        found: u32,
    },
    /// A format version this reader does not read.
    UnsupportedVersion {
        /// The stored version.
        found: u16,
    },
    /// `header_size` is smaller than the fixed header, or `total_size`
    /// smaller than `header_size`.
    BadSize {
        /// Which size field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The least it may be.
        minimum: u64,
    },
    /// The section table is not inside the header.
    SectionTableOutsideHeader {
        /// Where the table ends.
        end: u64,
        /// Where the header ends.
        header_size: u16,
    },
    /// Section table entries are smaller than version 1's.
    SectionEntryTooSmall {
        /// The stored entry size.
        entry_size: u16,
    },
    /// More section table entries than a reader accepts.
    TooManySections {
        /// The stored count.
        count: u32,
    },
    /// Two table entries describe the same known section.
    DuplicateSection {
        /// The section kind.
        kind: u32,
    },
    /// A section version 1 requires is not in the table.
    MissingSection {
        /// The section kind.
        kind: u32,
    },
    /// A section starts inside the header.
    SectionInsideHeader {
        /// The section kind.
        kind: u32,
        /// Where it starts.
        start: u32,
    },
    /// A section ends past the record's `total_size`.
    SectionOutOfBounds {
        /// The section kind.
        kind: u32,
        /// Where it would end (`offset + count * slot_size`).
        end: u64,
        /// The record's size.
        total_size: u32,
    },
    /// Two sections share bytes.
    SectionsOverlap {
        /// One section's kind.
        kind: u32,
        /// The other's.
        other: u32,
    },
    /// A known section's slots are smaller than version 1's.
    SlotTooSmall {
        /// The section kind.
        kind: u32,
        /// The stored slot size.
        slot_size: u32,
        /// Version 1's slot size.
        minimum: u32,
    },
    /// A section's slot count is impossible (the panic section has one).
    BadSlotCount {
        /// The section kind.
        kind: u32,
        /// The stored count.
        count: u32,
    },
    /// A stored length or count is larger than what it counts.
    TooLarge {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u32,
        /// The most it may be.
        limit: u32,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crash record, byte {}: {}", self.offset, self.kind)
    }
}

impl core::error::Error for ParseError {}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, available } => write!(
                f,
                "truncated: the record needs {needed} bytes, the buffer has {available}"
            ),
            Self::BadMagic => write!(f, "no CRASHKIT magic"),
            Self::UnknownByteOrder { found } => {
                write!(f, "unknown byte-order mark {found:#010x}")
            }
            Self::UnsupportedVersion { found } => write!(
                f,
                "format version {found}, this reader reads version {}",
                crate::layout::VERSION
            ),
            Self::BadSize {
                field,
                value,
                minimum,
            } => write!(f, "{field} is {value}, less than {minimum}"),
            Self::SectionTableOutsideHeader { end, header_size } => write!(
                f,
                "the section table ends at {end}, past the header's {header_size} bytes"
            ),
            Self::SectionEntryTooSmall { entry_size } => write!(
                f,
                "section entries of {entry_size} bytes, less than {}",
                crate::layout::SECTION_ENTRY_SIZE
            ),
            Self::TooManySections { count } => write!(
                f,
                "{count} sections, more than {}",
                crate::layout::MAX_SECTIONS
            ),
            Self::DuplicateSection { kind } => write!(f, "section kind {kind} appears twice"),
            Self::MissingSection { kind } => write!(f, "no section of kind {kind}"),
            Self::SectionInsideHeader { kind, start } => {
                write!(
                    f,
                    "section kind {kind} starts at {start}, inside the header"
                )
            }
            Self::SectionOutOfBounds {
                kind,
                end,
                total_size,
            } => write!(
                f,
                "section kind {kind} ends at {end}, past the record's {total_size} bytes"
            ),
            Self::SectionsOverlap { kind, other } => {
                write!(f, "sections of kinds {kind} and {other} overlap")
            }
            Self::SlotTooSmall {
                kind,
                slot_size,
                minimum,
            } => write!(
                f,
                "section kind {kind} has {slot_size}-byte slots, less than {minimum}"
            ),
            Self::BadSlotCount { kind, count } => {
                write!(f, "section kind {kind} has {count} slots")
            }
            Self::TooLarge {
                field,
                value,
                limit,
            } => write!(f, "{field} is {value}, more than {limit}"),
        }
    }
}
