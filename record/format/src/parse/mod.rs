//! Reading a crash record from bytes alone: [`RecordView::parse`] checks
//! the header and the section table against the buffer and gives typed,
//! bounds-checked access; [`scan`] finds records in a memory image.
//!
//! `no_std`, no allocation, never panics: every range is checked before it
//! is read, every size is computed in `u64` (no overflow), the work is
//! bounded by the buffer and by [`crate::layout::MAX_SECTIONS`]. An enum
//! code the reader does not know is reported as [`crate::Decoded::Unknown`],
//! not as an error. What the parser checks, in order, is the list in
//! `docs/crash-record.md`, "Reading a record".

mod bytes;
mod error;
mod summary;
mod view;

pub use bytes::ByteOrder;
pub use error::{ParseError, ParseErrorKind};
pub use summary::Summary;
pub use view::{
    ChangedRange, ControlView, CpuSlotView, DumpView, ExclusionView, NotifierView, PanicView,
    TextView,
};

use bytes::Bytes;

use crate::layout::{self, header, section_entry, section_kind};

/// The header's fields, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version (1).
    pub version: u16,
    /// The header's size, section table included.
    pub header_size: u16,
    /// The record's byte order.
    pub byte_order: ByteOrder,
    /// The record's size.
    pub total_size: u32,
    /// Where the section table starts.
    pub section_table_offset: u16,
    /// The size of one section table entry.
    pub section_entry_size: u16,
    /// Entries in the section table.
    pub section_count: u32,
}

/// One section table entry, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionDescriptor {
    /// A [`crate::layout::section_kind`] (or a kind this reader does not know).
    pub kind: u32,
    /// Where the section starts, from the record's start.
    pub offset: u32,
    /// Its slots.
    pub count: u32,
    /// The size of (stride between) its slots.
    pub slot_size: u32,
}

impl SectionDescriptor {
    fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.count) * u64::from(self.slot_size)
    }
}

/// A validated crash record in a byte buffer.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    bytes: Bytes<'a>,
    header: Header,
    panic: SectionDescriptor,
    cpus: SectionDescriptor,
    notifiers: SectionDescriptor,
    exclusions: Option<SectionDescriptor>,
    dump: Option<SectionDescriptor>,
    log: Option<SectionDescriptor>,
}

/// The section kinds this reader knows, with their smallest slot sizes;
/// the first [`REQUIRED`] of them every record has, the others only
/// records from writers that know them.
const KNOWN: [(u32, usize); 6] = [
    (section_kind::PANIC, layout::panic::SIZE),
    (section_kind::CPUS, layout::cpu::MIN_SIZE),
    (section_kind::NOTIFIERS, layout::notifier::SIZE),
    (section_kind::EXCLUSIONS, layout::exclusion::SIZE),
    (section_kind::DUMP, layout::dump::SIZE),
    (section_kind::LOG, layout::log::SIZE),
];

/// How many of [`KNOWN`]'s kinds a record must have.
const REQUIRED: usize = 3;

fn fail<T>(offset: usize, kind: ParseErrorKind) -> Result<T, ParseError> {
    Err(ParseError { offset, kind })
}

impl<'a> RecordView<'a> {
    /// Validate the record that starts at `bytes[0]` (the buffer may go on
    /// past its end) and give access to it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let available = bytes.len() as u64;
        if bytes.len() < layout::HEADER_FIXED_SIZE {
            return fail(
                bytes.len(),
                ParseErrorKind::Truncated {
                    needed: layout::HEADER_FIXED_SIZE as u64,
                    available,
                },
            );
        }
        if bytes.get(..8) != Some(&layout::MAGIC[..]) {
            return fail(header::MAGIC, ParseErrorKind::BadMagic);
        }
        let mark = bytes.get(header::BYTE_ORDER..header::BYTE_ORDER + 4);
        let order = if mark == Some(&layout::BYTE_ORDER_MARK.to_le_bytes()[..]) {
            ByteOrder::Little
        } else if mark == Some(&layout::BYTE_ORDER_MARK.to_be_bytes()[..]) {
            ByteOrder::Big
        } else {
            let found = Bytes {
                data: bytes,
                order: ByteOrder::Little,
            }
            .u32(header::BYTE_ORDER);
            return fail(
                header::BYTE_ORDER,
                ParseErrorKind::UnknownByteOrder { found },
            );
        };
        let b = Bytes { data: bytes, order };
        let version = b.u16(header::VERSION);
        if version != layout::VERSION {
            return fail(
                header::VERSION,
                ParseErrorKind::UnsupportedVersion { found: version },
            );
        }
        let header_size = b.u16(header::HEADER_SIZE);
        if usize::from(header_size) < layout::HEADER_FIXED_SIZE {
            return fail(
                header::HEADER_SIZE,
                ParseErrorKind::BadSize {
                    field: "header_size",
                    value: header_size.into(),
                    minimum: layout::HEADER_FIXED_SIZE as u64,
                },
            );
        }
        let total_size = b.u32(header::TOTAL_SIZE);
        if total_size < u32::from(header_size) {
            return fail(
                header::TOTAL_SIZE,
                ParseErrorKind::BadSize {
                    field: "total_size",
                    value: total_size.into(),
                    minimum: header_size.into(),
                },
            );
        }
        let Some(data) = bytes.get(..total_size as usize) else {
            return fail(
                header::TOTAL_SIZE,
                ParseErrorKind::Truncated {
                    needed: total_size.into(),
                    available,
                },
            );
        };
        let b = Bytes { data, order };
        let header = Header {
            version,
            header_size,
            byte_order: order,
            total_size,
            section_table_offset: b.u16(header::SECTION_TABLE_OFFSET),
            section_entry_size: b.u16(header::SECTION_ENTRY_SIZE),
            section_count: b.u32(header::SECTION_COUNT),
        };
        let [panic, cpus, notifiers, exclusions, dump, log] = read_table(b, &header)?;
        let required = |section: Option<SectionDescriptor>| {
            section.unwrap_or(SectionDescriptor {
                kind: 0,
                offset: 0,
                count: 0,
                slot_size: 0,
            })
        };
        let view = Self {
            bytes: b,
            header,
            panic: required(panic),
            cpus: required(cpus),
            notifiers: required(notifiers),
            exclusions,
            dump,
            log,
        };
        view.check_lengths()?;
        Ok(view)
    }

    /// Lengths and counts inside the sections must not exceed what they
    /// count (the views rely on it).
    fn check_lengths(&self) -> Result<(), ParseError> {
        let panic = self.panic.offset as usize;
        let too_large = |offset, field, value, limit| {
            fail(
                offset,
                ParseErrorKind::TooLarge {
                    field,
                    value,
                    limit,
                },
            )
        };
        let message_len = self.bytes.u32(panic + layout::panic::MESSAGE_LEN);
        let capacity = layout::panic::MESSAGE_CAPACITY as u32;
        if message_len > capacity {
            return too_large(
                panic + layout::panic::MESSAGE_LEN,
                "message_len",
                message_len,
                capacity,
            );
        }
        let recorded = self.bytes.u32(panic + layout::panic::NOTIFIERS_RECORDED);
        if recorded > self.notifiers.count {
            return too_large(
                panic + layout::panic::NOTIFIERS_RECORDED,
                "notifiers_recorded",
                recorded,
                self.notifiers.count,
            );
        }
        for index in 0..recorded as usize {
            let at = self.slot_offset(&self.notifiers, index) + layout::notifier::NAME_LEN;
            let name_len = self.bytes.u32(at);
            let capacity = layout::notifier::NAME_CAPACITY as u32;
            if name_len > capacity {
                return too_large(at, "name_len", name_len, capacity);
            }
        }
        if let Some(dump) = &self.dump {
            if dump.count != 1 {
                return fail(
                    self.section_entry_at(section_kind::DUMP) + section_entry::COUNT,
                    ParseErrorKind::BadSlotCount {
                        kind: dump.kind,
                        count: dump.count,
                    },
                );
            }
            let at = dump.offset as usize + layout::dump::CHANGED_COUNT;
            let count = self.bytes.u32(at);
            let capacity = layout::dump::CHANGED_CAPACITY as u32;
            if count > capacity {
                return too_large(at, "changed_count", count, capacity);
            }
        }
        Ok(())
    }

    /// The byte offset of the first section table entry of `kind` (for
    /// error offsets; the table start if there is none).
    fn section_entry_at(&self, kind: u32) -> usize {
        let table = usize::from(self.header.section_table_offset);
        let stride = usize::from(self.header.section_entry_size);
        (0..self.header.section_count as usize)
            .map(|index| table + index * stride)
            .find(|&at| self.bytes.u32(at + section_entry::KIND) == kind)
            .unwrap_or(table)
    }

    fn slot_offset(&self, section: &SectionDescriptor, index: usize) -> usize {
        (section.offset as usize).saturating_add(index.saturating_mul(section.slot_size as usize))
    }

    fn slot(&self, section: &SectionDescriptor, index: usize) -> Option<Bytes<'a>> {
        if index >= section.count as usize {
            return None;
        }
        let at = self.slot_offset(section, index);
        let data = self.bytes.slice(at, section.slot_size as usize);
        (!data.is_empty()).then_some(Bytes {
            data,
            order: self.bytes.order,
        })
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The record's bytes (`total_size` of them).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes.data
    }

    /// Every section table entry, known kinds or not, in table order.
    pub fn sections(&self) -> impl Iterator<Item = SectionDescriptor> + use<'a> {
        let (bytes, header) = (self.bytes, self.header);
        (0..header.section_count as usize).map(move |index| entry(bytes, &header, index))
    }

    /// The panic section.
    pub fn panic(&self) -> PanicView<'a> {
        // Validated: the panic section has exactly one slot of at least
        // version 1's size; an empty slice would only make every field 0.
        PanicView::new(self.slot(&self.panic, 0).unwrap_or(Bytes {
            data: &[],
            order: self.bytes.order,
        }))
    }

    /// CPU slots in the record.
    pub fn cpu_count(&self) -> usize {
        self.cpus.count as usize
    }

    /// CPU slot `index` (the CPU index).
    pub fn cpu(&self, index: usize) -> Option<CpuSlotView<'a>> {
        self.slot(&self.cpus, index).map(CpuSlotView::new)
    }

    /// Every CPU slot, by CPU index.
    pub fn cpus(&self) -> impl Iterator<Item = CpuSlotView<'a>> + use<'a> {
        let view = *self;
        (0..view.cpu_count()).filter_map(move |index| view.cpu(index))
    }

    /// Notifier slots in the record (used or not).
    pub fn notifier_slot_count(&self) -> usize {
        self.notifiers.count as usize
    }

    /// Notifier outcomes recorded (at most [`Self::notifier_slot_count`]).
    pub fn notifier_count(&self) -> usize {
        self.panic().notifiers_recorded() as usize
    }

    /// Recorded notifier outcome `index` (run order).
    pub fn notifier(&self, index: usize) -> Option<NotifierView<'a>> {
        if index >= self.notifier_count() {
            return None;
        }
        self.slot(&self.notifiers, index).map(NotifierView::new)
    }

    /// Every recorded notifier outcome, in run order.
    pub fn notifiers(&self) -> impl Iterator<Item = NotifierView<'a>> + use<'a> {
        let view = *self;
        (0..view.notifier_count()).filter_map(move |index| view.notifier(index))
    }

    /// Whether the record has an exclusion section (writers from before it
    /// have none).
    pub fn has_exclusions(&self) -> bool {
        self.exclusions.is_some()
    }

    /// Every exclusion slot, in slot order, used or not.
    pub fn exclusion_slots(&self) -> impl Iterator<Item = ExclusionView> + use<'a> {
        let view = *self;
        let section = self.exclusions;
        let count = section.map_or(0, |s| s.count as usize);
        (0..count).filter_map(move |index| {
            let slot = view.slot(section.as_ref()?, index)?;
            Some(ExclusionView::new(slot))
        })
    }

    /// The ranges a dump must leave out: every slot being written or
    /// registered that holds a non-empty range (see
    /// [`layout::exclusion::WRITING`]), as `(start, len)`.
    pub fn exclusions(&self) -> impl Iterator<Item = (u64, u64)> + use<'a> {
        self.exclusion_slots().filter_map(|slot| slot.range())
    }

    /// Where the kernel's crash log is, `(address, size)`, if the record
    /// has a log section and the kernel installed a log.
    pub fn log(&self) -> Option<(u64, u64)> {
        let section = self.log?;
        let at = self.slot_offset(&section, 0);
        let address = self.bytes.u64(at + layout::log::ADDRESS);
        let size = self.bytes.u64(at + layout::log::SIZE_BYTES);
        (address != 0 && size != 0).then_some((address, size))
    }

    /// The dump section, if the record has one.
    pub fn dump(&self) -> Option<DumpView<'a>> {
        let section = self.dump?;
        self.slot(&section, 0).map(DumpView::new)
    }
}

/// Section table entry `index` (the table was checked to fit the header).
fn entry(bytes: Bytes<'_>, header: &Header, index: usize) -> SectionDescriptor {
    let at = usize::from(header.section_table_offset)
        .saturating_add(index.saturating_mul(header.section_entry_size.into()));
    SectionDescriptor {
        kind: bytes.u32(at + section_entry::KIND),
        offset: bytes.u32(at + section_entry::OFFSET),
        count: bytes.u32(at + section_entry::COUNT),
        slot_size: bytes.u32(at + section_entry::SLOT_SIZE),
    }
}

/// Check the section table and return the known sections, in [`KNOWN`]'s
/// order (the required ones always `Some`).
fn read_table(
    b: Bytes<'_>,
    header: &Header,
) -> Result<[Option<SectionDescriptor>; KNOWN.len()], ParseError> {
    let table = usize::from(header.section_table_offset);
    if table < layout::HEADER_FIXED_SIZE {
        return fail(
            header::SECTION_TABLE_OFFSET,
            ParseErrorKind::BadSize {
                field: "section_table_offset",
                value: table as u64,
                minimum: layout::HEADER_FIXED_SIZE as u64,
            },
        );
    }
    if usize::from(header.section_entry_size) < layout::SECTION_ENTRY_SIZE {
        return fail(
            header::SECTION_ENTRY_SIZE,
            ParseErrorKind::SectionEntryTooSmall {
                entry_size: header.section_entry_size,
            },
        );
    }
    if header.section_count > layout::MAX_SECTIONS {
        return fail(
            header::SECTION_COUNT,
            ParseErrorKind::TooManySections {
                count: header.section_count,
            },
        );
    }
    let end = table as u64 + u64::from(header.section_count) * u64::from(header.section_entry_size);
    if end > u64::from(header.header_size) {
        return fail(
            header::SECTION_TABLE_OFFSET,
            ParseErrorKind::SectionTableOutsideHeader {
                end,
                header_size: header.header_size,
            },
        );
    }
    let mut found: [Option<SectionDescriptor>; KNOWN.len()] = [None; KNOWN.len()];
    let count = header.section_count as usize;
    for index in 0..count {
        let at = table + index * usize::from(header.section_entry_size);
        let section = entry(b, header, index);
        check_section(&section, at, header)?;
        if let Some(position) = KNOWN.iter().position(|&(kind, _)| kind == section.kind)
            && let Some(slot) = found.get_mut(position)
        {
            if slot.is_some() {
                return fail(
                    at + section_entry::KIND,
                    ParseErrorKind::DuplicateSection { kind: section.kind },
                );
            }
            *slot = Some(section);
        }
        for earlier in 0..index {
            let other = entry(b, header, earlier);
            if overlap(&section, &other) {
                return fail(
                    at + section_entry::OFFSET,
                    ParseErrorKind::SectionsOverlap {
                        kind: section.kind,
                        other: other.kind,
                    },
                );
            }
        }
    }
    for (found, &(kind, _)) in found.iter().zip(&KNOWN).take(REQUIRED) {
        if found.is_none() {
            return fail(table, ParseErrorKind::MissingSection { kind });
        }
    }
    Ok(found)
}

/// One entry's bounds, slot size and count (entry at byte `at`).
fn check_section(
    section: &SectionDescriptor,
    at: usize,
    header: &Header,
) -> Result<(), ParseError> {
    if section.offset < u32::from(header.header_size) {
        return fail(
            at + section_entry::OFFSET,
            ParseErrorKind::SectionInsideHeader {
                kind: section.kind,
                start: section.offset,
            },
        );
    }
    if section.end() > u64::from(header.total_size) {
        return fail(
            at + section_entry::OFFSET,
            ParseErrorKind::SectionOutOfBounds {
                kind: section.kind,
                end: section.end(),
                total_size: header.total_size,
            },
        );
    }
    if let Some(&(_, minimum)) = KNOWN.iter().find(|&&(kind, _)| kind == section.kind)
        && (section.slot_size as usize) < minimum
    {
        return fail(
            at + section_entry::SLOT_SIZE,
            ParseErrorKind::SlotTooSmall {
                kind: section.kind,
                slot_size: section.slot_size,
                minimum: minimum as u32,
            },
        );
    }
    if section.kind == section_kind::PANIC && section.count != 1 {
        return fail(
            at + section_entry::COUNT,
            ParseErrorKind::BadSlotCount {
                kind: section.kind,
                count: section.count,
            },
        );
    }
    Ok(())
}

/// Whether two sections share a byte (empty sections share none).
fn overlap(a: &SectionDescriptor, b: &SectionDescriptor) -> bool {
    let (a_start, b_start) = (u64::from(a.offset), u64::from(b.offset));
    a_start < b.end() && b_start < a.end()
}

/// Records found in a memory image by [`scan`]: each candidate's offset in
/// the image and what parsing it gave.
#[derive(Clone, Debug)]
pub struct Scan<'a> {
    memory: &'a [u8],
    next: usize,
}

/// Find crash records in `memory` (a dump's image of the old kernel's
/// memory): every 8-byte-aligned offset (relative to `memory`'s start)
/// where the magic is, with the result of parsing there. A reader keeps
/// the candidates that parse.
pub fn scan(memory: &[u8]) -> Scan<'_> {
    Scan { memory, next: 0 }
}

impl<'a> Iterator for Scan<'a> {
    type Item = (usize, Result<RecordView<'a>, ParseError>);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(rest) = self.memory.get(self.next..) {
            let at = self.next;
            self.next = self.next.saturating_add(8);
            if rest.len() < layout::MAGIC.len() {
                self.next = self.memory.len().saturating_add(1);
                return None;
            }
            if rest.starts_with(&layout::MAGIC) {
                return Some((at, RecordView::parse(rest)));
            }
        }
        None
    }
}
