//! The kdump-compressed reader: makedumpfile's and QEMU's files, plain or
//! flattened, every header version, the legacy `DISKDUMP` signature.
//!
//! Opening reads the headers, both bitmaps and the notes, and builds a
//! prefix count of the dumpable bitmap per 4096 frames; it reads no page
//! descriptor and no page. A page is then found in O(1) plus one popcount
//! over at most 512 bytes: its descriptor's index is the number of
//! dumpable frames before it. Allocation is bounded by the file's size
//! (the bitmaps and the notes are in the file; the prefix table is 1/64 of
//! a bitmap).
//!
//! Page states: a frame past the bitmaps or clear in the first bitmap is a
//! *hole*; clear in the second, *excluded*; a descriptor that is missing or
//! has offset 0 (the writer stopped, `DUMP_DH_COMPRESSED_INCOMPLETE`), or
//! data past the end of the file, *lost*; data that does not decode to
//! exactly one page, *corrupt*. A `--split` part has descriptors only for
//! its own frame range; frames of other parts read as *in another part*
//! from it ([`PageState::InOtherPart`]), never as lost.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::codec::{self, DecodeError};
use super::flat::{FlatError, Source};
use super::header::{
    DESCRIPTOR_SIZE, DiskDumpHeader, HEADER_SIZE, PageDescriptor, SIGNATURE_DISKDUMP,
    SIGNATURE_KDUMP, STATUS_INCOMPLETE, SubHeader,
};
use crate::PAGE_SIZE;
use crate::elf::ProgramHeader;
use crate::notes::read::Notes;
use crate::read::PageCounts;
use crate::read::{
    Completeness, Cpu, CrashkitNotes, Damage, DamageKind, Incomplete, Machine, PageState, Span,
    Unreadable,
};
use crate::vmcoreinfo::VmcoreInfo;

/// Data-layout problems [`KdumpDump::data_layout_damage`] lists one by one.
pub const LAYOUT_PROBLEMS: usize = 16;
/// Frames per prefix-count block.
const BLOCK_FRAMES: u64 = 4096;
/// Newest header version this reader knows.
pub const KNOWN_VERSION: i32 = 6;

/// A file the reader cannot use, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdumpError {
    /// File offset (of the reassembled file, for a flattened one).
    pub offset: u64,
    /// What is wrong.
    pub kind: KdumpErrorKind,
}

/// What makes a kdump-compressed file unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdumpErrorKind {
    /// Neither `KDUMP   ` nor `DISKDUMP`.
    NotKdump,
    /// The flattened wrapper is malformed.
    Flattened(FlatError),
    /// Shorter than the header.
    TooShort,
    /// A header version newer than [`KNOWN_VERSION`] or negative.
    UnknownVersion(i32),
    /// A block size other than the 4096-byte page.
    UnsupportedBlockSize(i32),
    /// The sub-header is not in the file.
    SubHeaderMissing,
    /// The bitmaps' size or place is impossible, or they are not (all) in
    /// the file.
    BitmapsMissing,
}

impl core::fmt::Display for KdumpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.kind {
            KdumpErrorKind::NotKdump => {
                f.write_str("not a kdump-compressed file (no KDUMP signature)")?
            }
            KdumpErrorKind::Flattened(error) => return write!(f, "{error}"),
            KdumpErrorKind::TooShort => f.write_str("shorter than a kdump header")?,
            KdumpErrorKind::UnknownVersion(v) => write!(
                f,
                "header version {v} is not one this reader knows (0 to {KNOWN_VERSION})"
            )?,
            KdumpErrorKind::UnsupportedBlockSize(size) => {
                write!(f, "block size {size} is not the 4096-byte x86_64 page")?
            }
            KdumpErrorKind::SubHeaderMissing => f.write_str("the sub-header is not in the file")?,
            KdumpErrorKind::BitmapsMissing => {
                f.write_str("the bitmaps are not in the file or their size is impossible")?
            }
        }
        write!(f, ", at offset {:#x}", self.offset)
    }
}

impl core::error::Error for KdumpError {}

/// Why a page could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageProblem {
    /// The page's state.
    pub state: PageState,
    /// For a corrupt page, why.
    pub decode: Option<DecodeError>,
}

impl core::fmt::Display for PageProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "the page is {}", self.state.name())
    }
}

impl core::error::Error for PageProblem {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.decode
            .as_ref()
            .map(|error| error as &(dyn core::error::Error + 'static))
    }
}

/// An opened kdump-compressed file (one part of a split dump).
#[derive(Debug)]
pub struct KdumpDump<'a> {
    source: Source<'a>,
    header: DiskDumpHeader,
    sub: SubHeader,
    frames: u64,
    /// The bitmaps: borrowed from the file (copied only from a flattened
    /// stream whose records split them).
    present: Cow<'a, [u8]>,
    dumpable: Cow<'a, [u8]>,
    prefix: Vec<u64>,
    first_descriptor: u64,
    descriptors: u64,
    part: (u64, u64),
    part_base: u64,
    notes_region: Option<(u64, u64)>,
    notes_copy: Option<Vec<u8>>,
    cpus: Vec<Cpu>,
    completeness: Completeness,
    damage: Vec<Damage>,
}

/// Bits set in `bytes`, eight bytes at a time.
fn ones(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut count = 0u64;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        count += u64::from(u64::from_le_bytes(eight).count_ones());
    }
    count
        + words
            .remainder()
            .iter()
            .map(|b| u64::from(b.count_ones()))
            .sum::<u64>()
}

fn bit(bitmap: &[u8], frame: u64) -> bool {
    usize::try_from(frame / 8)
        .ok()
        .and_then(|byte| bitmap.get(byte))
        .is_some_and(|b| b & (1 << (frame % 8)) != 0)
}

impl<'a> KdumpDump<'a> {
    /// Open the file in `data` (plain or flattened).
    pub fn parse(data: &'a [u8]) -> Result<Self, KdumpError> {
        let error = |offset, kind| KdumpError { offset, kind };
        let source =
            Source::new(data).map_err(|e| error(e.offset, KdumpErrorKind::Flattened(e)))?;
        let mut first = [0u8; HEADER_SIZE];
        source
            .read(0, &mut first)
            .map_err(|_| error(0, KdumpErrorKind::TooShort))?;
        let header = DiskDumpHeader::decode(&first).ok_or(error(0, KdumpErrorKind::TooShort))?;
        if &header.signature != SIGNATURE_KDUMP && &header.signature != SIGNATURE_DISKDUMP {
            return Err(error(0, KdumpErrorKind::NotKdump));
        }
        if !(0..=KNOWN_VERSION).contains(&header.header_version) {
            return Err(error(
                8,
                KdumpErrorKind::UnknownVersion(header.header_version),
            ));
        }
        if i64::from(header.block_size) != PAGE_SIZE as i64 {
            return Err(error(
                428,
                KdumpErrorKind::UnsupportedBlockSize(header.block_size),
            ));
        }
        let block = PAGE_SIZE;
        let kdump = &header.signature == SIGNATURE_KDUMP;
        let sub = if kdump {
            let mut bytes = [0u8; super::header::SUB_HEADER_SIZE];
            let available = source.len().saturating_sub(block).min(bytes.len() as u64) as usize;
            source
                .read(block, &mut bytes[..available])
                .map_err(|_| error(block, KdumpErrorKind::SubHeaderMissing))?;
            if available < 16 {
                return Err(error(block, KdumpErrorKind::SubHeaderMissing));
            }
            SubHeader::decode(&bytes, header.header_version)
                .ok_or(error(block, KdumpErrorKind::SubHeaderMissing))?
        } else {
            SubHeader::default()
        };
        let mut damage = Vec::new();
        let frames = if header.header_version >= 6 && sub.max_mapnr_64 != 0 {
            sub.max_mapnr_64
        } else {
            u64::from(header.max_mapnr)
        };
        // Both bitmaps, one after the other.
        let sub_blocks = u64::try_from(header.sub_hdr_size)
            .map_err(|_| error(432, KdumpErrorKind::BitmapsMissing))?;
        let bitmaps_at = (1 + sub_blocks)
            .checked_mul(block)
            .ok_or(error(432, KdumpErrorKind::BitmapsMissing))?;
        let bitmaps_len = u64::from(header.bitmap_blocks)
            .checked_mul(block)
            .ok_or(error(436, KdumpErrorKind::BitmapsMissing))?;
        let each = bitmaps_len / 2;
        if each == 0
            || bitmaps_at
                .checked_add(bitmaps_len)
                .is_none_or(|end| end > source.len())
        {
            return Err(error(bitmaps_at, KdumpErrorKind::BitmapsMissing));
        }
        let present = source
            .bytes(bitmaps_at, each)
            .ok_or(error(bitmaps_at, KdumpErrorKind::BitmapsMissing))?;
        let dumpable = source
            .bytes(bitmaps_at + each, each)
            .ok_or(error(bitmaps_at + each, KdumpErrorKind::BitmapsMissing))?;
        let covered = each * 8;
        let header_frames = frames;
        let frames = if frames > covered {
            damage.push(Damage {
                offset: 440,
                kind: DamageKind::BitmapShort { frames, covered },
            });
            covered
        } else {
            frames
        };
        // Dumpable frames before each block of BLOCK_FRAMES.
        let mut prefix = Vec::with_capacity((frames / BLOCK_FRAMES + 1) as usize);
        let mut running = 0u64;
        for chunk in dumpable.chunks((BLOCK_FRAMES / 8) as usize) {
            prefix.push(running);
            running += ones(chunk);
        }
        prefix.push(running);
        // A split part holds descriptors for its own frames only.
        let part = if sub.split != 0 {
            let (start, end) = if header.header_version >= 6 {
                (sub.start_pfn_64, sub.end_pfn_64)
            } else {
                (sub.start_pfn, sub.end_pfn)
            };
            (start.min(frames), end.min(frames))
        } else {
            (0, frames)
        };
        let mut dump = Self {
            source,
            header,
            sub,
            frames,
            present,
            dumpable,
            prefix,
            first_descriptor: bitmaps_at + bitmaps_len,
            descriptors: 0,
            part,
            part_base: 0,
            notes_region: None,
            notes_copy: None,
            cpus: Vec::new(),
            completeness: Completeness::Unknown,
            damage,
        };
        dump.part_base = dump.dumpable_before(part.0);
        dump.descriptors = dump.dumpable_before(part.1).saturating_sub(dump.part_base);
        dump.read_notes();
        dump.check_structure(header_frames);
        dump.completeness = dump.judge();
        Ok(dump)
    }

    /// Checks across the headers, bitmaps, notes and descriptor table (each
    /// alone may look right), as damage with the offset of the field that
    /// shows it. `header_frames` is the frame count the header names.
    fn check_structure(&mut self, header_frames: u64) {
        let mut found = Vec::new();
        let at = |offset: u64, kind| Damage { offset, kind };
        // Where the two bitmaps are: the descriptors follow them directly.
        let each_len = self.present.len() as u64;
        let bitmaps_at = self.first_descriptor.saturating_sub(2 * each_len);
        // The bitmaps' size: two equal halves, each rounded up to whole
        // blocks from the frame count, as makedumpfile and QEMU size them.
        // More than that runs the bitmaps into the descriptors' place.
        let blocks = u64::from(self.header.bitmap_blocks);
        let each_needed = header_frames.div_ceil(8).div_ceil(PAGE_SIZE);
        if !blocks.is_multiple_of(2) || blocks / 2 > each_needed.max(1) {
            found.push(at(
                436,
                DamageKind::BitmapBlocks {
                    blocks: self.header.bitmap_blocks,
                    frames: header_frames,
                },
            ));
        }
        // Version 6's 64-bit frame count, and the 32-bit one beside it
        // (both writers store the 64-bit count capped at u32::MAX).
        if self.header.header_version >= 6
            && u64::from(self.header.max_mapnr) != self.sub.max_mapnr_64.min(u64::from(u32::MAX))
        {
            found.push(at(
                440,
                DamageKind::MaxMapnrMismatch {
                    max_mapnr: self.header.max_mapnr,
                    max_mapnr_64: self.sub.max_mapnr_64,
                },
            ));
        }
        // The machine the header names: the reader knows x86's layouts
        // (QEMU writes "i686" for a 32-bit target).
        let machine = self.header.utsname.get(4).map(|field| {
            let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            field.get(..end).unwrap_or(&[])
        });
        if !matches!(
            machine,
            Some(b"x86_64" | b"i686" | b"i386" | b"i586" | b"i486")
        ) {
            found.push(at(12 + 4 * 65, DamageKind::NotX86Machine));
        }
        // Sub-header fields the header's version does not have must be
        // zero (both writers zero the whole sub-header first): a version
        // lowered by damage would hide the notes and ranges silently.
        if let Some(end) = sub_header_fields_end(self.header.header_version)
            && self.header.signature == *SIGNATURE_KDUMP
        {
            let mut raw = [0u8; super::header::SUB_HEADER_SIZE];
            if self.source.read(PAGE_SIZE, &mut raw).is_ok()
                && let Some(first) = raw
                    .get(end..)
                    .and_then(|rest| rest.iter().position(|&b| b != 0))
            {
                found.push(at(
                    PAGE_SIZE + (end + first) as u64,
                    DamageKind::FieldsPastVersion {
                        version: self.header.header_version,
                    },
                ));
            }
        }
        // The eraseinfo (version 5 on) must be in the file, after the
        // descriptor table (makedumpfile appends it after the pages).
        if self.header.header_version >= 5
            && self.sub.size_eraseinfo > 0
            && (self.sub.offset_eraseinfo < self.first_descriptor
                || !self
                    .source
                    .covers(self.sub.offset_eraseinfo, self.sub.size_eraseinfo))
        {
            found.push(at(PAGE_SIZE + 64, DamageKind::EraseinfoMissing));
        }
        // Split fields in a whole dump; in a part, both copies of the
        // range the same (version 6 writes both) and the range not empty.
        let split_fields = [
            self.sub.start_pfn,
            self.sub.end_pfn,
            self.sub.start_pfn_64,
            self.sub.end_pfn_64,
        ];
        if self.sub.split == 0 && split_fields.iter().any(|&v| v != 0) {
            found.push(at(
                PAGE_SIZE + 12,
                DamageKind::SplitRange {
                    start: self.sub.start_pfn_64.max(self.sub.start_pfn),
                    end: self.sub.end_pfn_64.max(self.sub.end_pfn),
                    frames: header_frames,
                },
            ));
        }
        if self.sub.split != 0 {
            let (start, end, field) = if self.header.header_version >= 6 {
                (self.sub.start_pfn_64, self.sub.end_pfn_64, 80)
            } else {
                (self.sub.start_pfn, self.sub.end_pfn, 16)
            };
            let copies_differ = self.header.header_version >= 6
                && (self.sub.start_pfn, self.sub.end_pfn) != (start, end);
            if start >= end || end > header_frames || copies_differ {
                found.push(at(
                    PAGE_SIZE + field,
                    DamageKind::SplitRange {
                        start,
                        end,
                        frames: header_frames,
                    },
                ));
            }
        }
        // Notes (version 4 on): QEMU and makedumpfile always write them.
        if self.header.header_version >= 4 && self.sub.size_note == 0 {
            found.push(at(PAGE_SIZE + 56, DamageKind::NoNotes));
        }
        // The CPU count against the notes.
        if self.header.header_version >= 4
            && self.notes_region.is_some()
            && i64::from(self.header.nr_cpus) != self.cpus.len() as i64
        {
            found.push(at(
                460,
                DamageKind::CpuCount {
                    header: self.header.nr_cpus,
                    notes: self.cpus.len() as u32,
                },
            ));
        }
        // The sub-header's VMCOREINFO copy beside the notes (version 4 on;
        // in version 3 it is the notes region itself): in the file, and the
        // same text as the note's.
        if self.header.header_version >= 4 && self.sub.size_vmcoreinfo > 0 {
            let copy = self
                .source
                .to_vec(self.sub.offset_vmcoreinfo, self.sub.size_vmcoreinfo);
            match copy {
                None => found.push(at(PAGE_SIZE + 32, DamageKind::VmcoreinfoMissing)),
                Some(copy) => {
                    let note = self.notes(&mut Vec::new()).and_then(|n| n.vmcoreinfo);
                    if note.is_some_and(|note| {
                        without_trailing_nuls(note) != without_trailing_nuls(&copy)
                    }) {
                        found.push(at(PAGE_SIZE + 32, DamageKind::VmcoreinfoCopyDiffers));
                    }
                }
            }
        }
        // No bit past the frames the header names, in either bitmap: the
        // writers leave them clear, so a set one is damage (of the bitmap,
        // or of max_mapnr, which then hides frames).
        let past = |bitmap: &[u8]| -> Option<u64> {
            let first_byte = usize::try_from(header_frames / 8).ok()?;
            let partial = (header_frames % 8) as u32;
            (first_byte..bitmap.len()).find_map(|byte| {
                let mut bits = *bitmap.get(byte)?;
                if byte == first_byte && partial > 0 {
                    bits &= !((1u8 << partial) - 1);
                }
                (bits != 0).then(|| byte as u64 * 8 + u64::from(bits.trailing_zeros()))
            })
        };
        for (bitmap, at_bitmap) in [
            (&self.present, bitmaps_at),
            (&self.dumpable, bitmaps_at + each_len),
        ] {
            if let Some(frame) = past(bitmap) {
                found.push(at(
                    at_bitmap + frame / 8,
                    DamageKind::BitPastMaxMapnr { frame },
                ));
                break;
            }
        }
        // Dumpable frames must be present ones.
        let mut first_bad = None;
        let mut bad = 0u64;
        for (index, (&p, &d)) in self.present.iter().zip(self.dumpable.iter()).enumerate() {
            let stray = d & !p;
            if stray != 0 {
                bad += u64::from(stray.count_ones());
                first_bad.get_or_insert(index as u64 * 8 + u64::from(stray.trailing_zeros()));
            }
        }
        if let Some(frame) = first_bad {
            found.push(at(
                bitmaps_at + each_len + frame / 8,
                DamageKind::DumpableNotPresent { frame, count: bad },
            ));
        }
        if let Some(kind) = self.descriptor_table_damage() {
            found.push(at(self.first_descriptor, kind));
        }
        if let Some(damage) = self.cut() {
            found.push(damage);
        }
        self.damage.extend(found);
    }

    /// Descriptors read from the end of the table to find where the page
    /// data ends.
    const CUT_SCAN: u64 = 4096;

    /// Whether the file ends before its descriptor table, or before the
    /// data of its last descriptors: the data is written in frame order
    /// (the shared zero page excepted, which comes first), so the furthest
    /// data end among the last [`Self::CUT_SCAN`] descriptors is where a
    /// whole file's data reaches at least. A cut file is then counted
    /// descriptor by descriptor ([`Self::page_counts`]), so a page is
    /// present only when its bytes are in the file.
    fn cut(&self) -> Option<Damage> {
        let len = self.source.len();
        let table_end = self
            .descriptors
            .saturating_mul(DESCRIPTOR_SIZE as u64)
            .saturating_add(self.first_descriptor);
        if table_end > len {
            return Some(Damage {
                offset: len,
                kind: DamageKind::FileCut {
                    len,
                    needed: table_end,
                },
            });
        }
        let first = self.descriptors.saturating_sub(Self::CUT_SCAN);
        let needed = (first..self.descriptors)
            .filter_map(|index| self.table_descriptor(index))
            .filter(|d| d.offset != 0)
            .map(|d| d.offset.saturating_add(u64::from(d.size)))
            .max()
            .unwrap_or(0);
        (needed > len).then_some(Damage {
            offset: len,
            kind: DamageKind::FileCut { len, needed },
        })
    }

    /// Where the page data starts against where the descriptor table, as
    /// the second bitmap's population sizes it, ends. Every producer writes
    /// the data right after the table: makedumpfile and QEMU either the
    /// first page's data or the shared zero page first (4096 zero bytes),
    /// so the first descriptor's data is at the table's end or one zero
    /// page after it; crashkit after the descriptors it reserved for every
    /// planned page (zeros where a page was excluded after planning), so
    /// any run of zeros may come between (its own files' bitmaps are also
    /// under the header checksum). A bitmap bit flipped by damage moves
    /// the table's end by one descriptor and every later frame onto another
    /// frame's data, which would otherwise decode without complaint.
    /// (The bitmaps are the same in every part of a split dump, so a flip
    /// there is found in every part.)
    fn descriptor_table_damage(&self) -> Option<DamageKind> {
        if self.descriptors == 0 {
            return None;
        }
        let first = self.table_descriptor(0)?;
        if first.offset == 0 {
            // Never written (an incomplete dump): nothing to compare.
            return None;
        }
        let table_end = self.reserved_table_end();
        let damage = DamageKind::DescriptorTableEnd {
            descriptors: self.dumpable_before(self.frames),
            first_data: first.offset,
        };
        let Some(gap) = first.offset.checked_sub(table_end) else {
            return Some(damage);
        };
        let reserved_gap = self.crashkit().is_some() && !self.notes_copied();
        if !(reserved_gap || gap == 0 || gap == PAGE_SIZE) {
            return Some(damage);
        }
        // The gap, read in pieces (it is at most the reserved descriptors
        // or one zero page in a whole file; a damaged one may be larger).
        let mut offset = table_end;
        let mut piece = [0u8; 4096];
        while offset < first.offset {
            let len = (first.offset - offset).min(piece.len() as u64) as usize;
            let buf = piece.get_mut(..len)?;
            // Bytes past the end of a cut file are not judged here.
            self.source.read(offset, buf).ok()?;
            if buf.iter().any(|&b| b != 0) {
                return Some(damage);
            }
            offset += len as u64;
        }
        None
    }

    /// File offset of descriptor `index` of this file's table.
    fn descriptor_offset(&self, index: u64) -> Option<u64> {
        index
            .checked_mul(DESCRIPTOR_SIZE as u64)?
            .checked_add(self.first_descriptor)
    }

    /// Descriptor `index` of this file's table as written (offset 0 when
    /// never written); `None` when it is not in the file.
    fn table_descriptor(&self, index: u64) -> Option<PageDescriptor> {
        let mut bytes = [0u8; DESCRIPTOR_SIZE];
        self.source
            .read(self.descriptor_offset(index)?, &mut bytes)
            .ok()?;
        PageDescriptor::decode(&bytes)
    }

    /// Where the descriptor table ends as reserved: room for every
    /// dumpable frame of the dump. A split part's table too: makedumpfile
    /// reserves the whole table in each part and fills its own frames'
    /// descriptors from the start.
    fn reserved_table_end(&self) -> u64 {
        self.dumpable_before(self.frames)
            .saturating_mul(DESCRIPTOR_SIZE as u64)
            .saturating_add(self.first_descriptor)
    }

    /// Dumpable frames in `[0, frame)`.
    fn dumpable_before(&self, frame: u64) -> u64 {
        let frame = frame.min(self.frames);
        let block = frame / BLOCK_FRAMES;
        let base = self.prefix.get(block as usize).copied().unwrap_or(0);
        let from = block * BLOCK_FRAMES;
        let whole = ((frame - from) / 8) as usize;
        let start = (from / 8) as usize;
        let bytes = self.dumpable.get(start..start + whole).unwrap_or(&[]);
        let mut count = base + bytes.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
        let rest = (frame - from) % 8;
        if rest > 0
            && let Some(byte) = self.dumpable.get(start + whole)
        {
            count += u64::from((byte & ((1u8 << rest) - 1)).count_ones());
        }
        count
    }

    fn read_notes(&mut self) {
        let (offset, size) = if self.header.header_version >= 4 && self.sub.size_note > 0 {
            (self.sub.offset_note, self.sub.size_note)
        } else if self.header.header_version >= 3 && self.sub.size_vmcoreinfo > 0 {
            // Version 3 has VMCOREINFO's text alone; no CPUs.
            (self.sub.offset_vmcoreinfo, self.sub.size_vmcoreinfo)
        } else {
            return;
        };
        if offset
            .checked_add(size)
            .is_none_or(|end| end > self.source.len())
        {
            self.damage.push(Damage {
                offset: PAGE_SIZE + 48,
                kind: DamageKind::NotesMissing,
            });
            return;
        }
        self.notes_region = Some((offset, size));
        if self.source.slice(offset, size).is_none() {
            self.notes_copy = self.source.to_vec(offset, size);
            if self.notes_copy.is_none() {
                self.notes_region = None;
                self.damage.push(Damage {
                    offset: PAGE_SIZE + 48,
                    kind: DamageKind::NotesMissing,
                });
                return;
            }
        }
        if self.header.header_version >= 4 {
            let mut damage = Vec::new();
            let cpus = self.notes(&mut damage).map(|notes| notes.cpus);
            self.cpus = cpus.unwrap_or_default();
            self.damage.extend(damage);
        }
    }

    /// The bytes of the notes region (the sub-header's notes, or the
    /// version-3 VMCOREINFO): borrowed from the file, or the copy made at
    /// opening when they span flattened records.
    fn notes_bytes(&self) -> Option<&[u8]> {
        let (offset, size) = self.notes_region?;
        match &self.notes_copy {
            Some(copy) => Some(copy),
            None => self.source.slice(offset, size),
        }
    }

    /// The notes, parsed from the file's copy of them. Offsets in them are
    /// relative to the notes region.
    fn notes(&self, damage: &mut Vec<Damage>) -> Option<Notes<'_>> {
        let (offset, _) = self.notes_region?;
        if self.header.header_version < 4 {
            return None;
        }
        let bytes = self.notes_bytes()?;
        let segment = ProgramHeader {
            p_type: crate::elf::PT_NOTE,
            p_flags: 0,
            p_offset: 0,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: bytes.len() as u64,
            p_memsz: bytes.len() as u64,
            p_align: 4,
        };
        Some(Notes::read(
            bytes,
            notes_machine(bytes),
            &[(0, offset, segment)],
            damage,
        ))
    }

    fn judge(&self) -> Completeness {
        if let Some(crashkit) = self.crashkit() {
            return self.judge_crashkit(&crashkit);
        }
        self.not_whole()
            .map_or(Completeness::Unknown, Completeness::Incomplete)
    }

    /// What any producer's file tells of being cut or damaged: the
    /// incomplete status flag, a flattened stream without its end marker,
    /// damage found while opening.
    fn not_whole(&self) -> Option<Incomplete> {
        if self.header.status & STATUS_INCOMPLETE != 0 {
            return Some(Incomplete::FlagSet);
        }
        if let Source::Flattened(_, index) = &self.source
            && !index.complete
        {
            return Some(Incomplete::StreamCut);
        }
        let mut cut = None;
        for damage in &self.damage {
            match damage.kind {
                DamageKind::FileCut { len, needed } => {
                    cut = Some(Incomplete::Truncated {
                        len,
                        expected: needed,
                    })
                }
                _ => return Some(Incomplete::Damaged),
            }
        }
        cut
    }

    /// A crashkit-written file: its completion marker checked as the
    /// writer defines it (`compressed::writer`).
    fn judge_crashkit(&self, crashkit: &CrashkitNotes<'_>) -> Completeness {
        let Some(marker) = crashkit
            .completion
            .filter(|m| m.state == crate::notes::crashkit::CompletionMarker::COMPLETE)
        else {
            return Completeness::Incomplete(Incomplete::NoMarker);
        };
        if marker.dump_id != crashkit.identity.dump_id {
            return Completeness::Incomplete(Incomplete::StaleMarker);
        }
        if self.header_checksum(crashkit) != Some(marker.header_checksum) {
            // Notes copied from another file (makedumpfile keeps its
            // input's notes): the marker describes that file; judge this
            // one as any producer's.
            if self.notes_copied() {
                return self
                    .not_whole()
                    .map_or(Completeness::Unknown, Completeness::Incomplete);
            }
            return Completeness::Incomplete(Incomplete::HeaderChecksum);
        }
        if self.source.len() < marker.total_length {
            return Completeness::Incomplete(Incomplete::Truncated {
                len: self.source.len(),
                expected: marker.total_length,
            });
        }
        self.not_whole()
            .map_or(Completeness::Complete, Completeness::Incomplete)
    }

    /// The header checksum of `compressed::writer`: header (incomplete flag
    /// clear), sub-header, notes with the marker zeroed, then the CRC-32C of
    /// each bitmap.
    fn header_checksum(&self, crashkit: &CrashkitNotes<'_>) -> Option<u32> {
        use crate::crc32c::{Crc32c, checksum};
        let mut crc = Crc32c::new();
        let mut header = self.header;
        header.status &= !STATUS_INCOMPLETE;
        crc.update(&header.encode());
        let mut sub = [0u8; super::header::SUB_HEADER_SIZE];
        self.source.read(PAGE_SIZE, &mut sub).ok()?;
        crc.update(&sub);
        let notes = self.notes_bytes()?;
        // The marker's offset is relative to the notes' bytes.
        let marker = usize::try_from(crashkit.completion_desc_offset?).ok()?;
        let size = crate::notes::crashkit::CompletionMarker::SIZE;
        crc.update(notes.get(..marker)?);
        crc.update_zeros(size as u64);
        crc.update(notes.get(marker.checked_add(size)?..)?);
        crc.update(&checksum(&self.present).to_le_bytes());
        crc.update(&checksum(&self.dumpable).to_le_bytes());
        Some(crc.finish())
    }

    /// Every descriptor of this file's table against the file's layout:
    /// data inside the headers, bitmaps or descriptor table
    /// ([`DamageKind::DataInMetadata`]), and data overlapping other data
    /// ([`DamageKind::DataOverlap`]; only the shared zero page, 4096 raw
    /// zero bytes, may be named by many descriptors). Reads the whole table
    /// (24 bytes per dumpable page, no page data), so [`Self::parse`] does
    /// not; `verify` does. The first [`LAYOUT_PROBLEMS`] are listed, then
    /// one [`DamageKind::DataLayoutMore`] counts the rest.
    pub fn data_layout_damage(&self) -> Vec<Damage> {
        let mut found = Vec::new();
        let mut more = 0u64;
        let mut report = |damage: Damage| {
            if found.len() < LAYOUT_PROBLEMS {
                found.push(damage);
            } else {
                more += 1;
            }
        };
        let table_end = self.reserved_table_end();
        // (data offset, size, flags, index): one per descriptor read from
        // the file, so at most one per 24 bytes of it.
        let mut data = Vec::new();
        for index in 0..self.descriptors {
            let (Some(at), Some(d)) = (self.descriptor_offset(index), self.table_descriptor(index))
            else {
                break; // A cut table: the pages are lost, counted by reads.
            };
            if d.offset == 0 {
                continue; // Never written: lost, not misplaced.
            }
            if d.offset < table_end {
                report(Damage {
                    offset: at,
                    kind: DamageKind::DataInMetadata { index },
                });
                continue;
            }
            data.push((d.offset, d.size, d.flags, index));
        }
        data.sort_unstable();
        let zero_page = |size: u32, flags: u32| u64::from(size) == PAGE_SIZE && flags == 0;
        let mut shared: Option<u64> = None;
        let mut previous: Option<(u64, u32, u32, u64)> = None;
        for entry in data {
            let (offset, size, flags, index) = entry;
            if let Some((p_offset, p_size, p_flags, p_index)) = previous {
                let same = (p_offset, p_size, p_flags) == (offset, size, flags);
                let overlaps = p_offset.saturating_add(u64::from(p_size)) > offset;
                // One shared zero page (4096 raw bytes, all zero) is
                // legal; anything else overlapping is not.
                let legal = same
                    && zero_page(size, flags)
                    && match shared {
                        Some(at) => at == offset,
                        None => self.is_zero_data(offset),
                    };
                if legal {
                    shared = Some(offset);
                } else if overlaps {
                    report(Damage {
                        offset: self.first_descriptor + index * DESCRIPTOR_SIZE as u64,
                        kind: DamageKind::DataOverlap {
                            index,
                            other: p_index,
                        },
                    });
                }
            }
            // The entry reaching furthest stays the one compared with.
            previous = match previous {
                Some(p) if p.0 + u64::from(p.1) >= offset + u64::from(size) => Some(p),
                _ => Some(entry),
            };
        }
        if more > 0 {
            found.push(Damage {
                offset: self.first_descriptor,
                kind: DamageKind::DataLayoutMore { more },
            });
        }
        found
    }

    /// The notes region's bytes (the sub-header's notes, or version 3's
    /// VMCOREINFO), for comparing the parts of a split dump.
    pub(crate) fn notes_region_bytes(&self) -> Option<&[u8]> {
        self.notes_bytes()
    }

    /// Both bitmaps, for comparing the parts of a split dump.
    pub(crate) fn bitmaps(&self) -> (&[u8], &[u8]) {
        (&self.present, &self.dumpable)
    }

    /// Whether the page of data at `offset` is in the file and all zero.
    fn is_zero_data(&self, offset: u64) -> bool {
        // A fixed page on the stack: nothing sized by the file.
        let mut page = [0u8; PAGE_SIZE as usize];
        self.source.read(offset, &mut page).is_ok() && page.iter().all(|&b| b == 0)
    }

    /// The main header.
    pub fn header(&self) -> &DiskDumpHeader {
        &self.header
    }

    /// The sub-header (zero for a legacy `DISKDUMP` file).
    pub fn sub_header(&self) -> &SubHeader {
        &self.sub
    }

    /// Whether the file is in the flattened form.
    pub fn is_flattened(&self) -> bool {
        matches!(self.source, Source::Flattened(..))
    }

    /// Page frames the bitmaps cover.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Page descriptors this file (part) holds.
    pub fn descriptor_count(&self) -> u64 {
        self.descriptors
    }

    /// The frame range `[start, end)` this file holds descriptors for.
    pub fn part(&self) -> (u64, u64) {
        self.part
    }

    /// The CPUs of the notes (header version 4 and later).
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus
    }

    /// `VMCOREINFO`: from the notes, or the version-3 copy.
    pub fn vmcoreinfo(&self) -> Option<VmcoreInfo<'_>> {
        if self.header.header_version >= 4 {
            return self.notes(&mut Vec::new())?.vmcoreinfo.map(VmcoreInfo::new);
        }
        Some(VmcoreInfo::new(self.notes_bytes()?))
    }

    /// crashkit's notes, when a crashkit kernel's notes are in the file.
    pub fn crashkit(&self) -> Option<CrashkitNotes<'_>> {
        self.notes(&mut Vec::new())?.crashkit
    }

    /// Whether crashkit's notes were copied here from another file by
    /// another tool (makedumpfile keeps its input's notes): a completion
    /// marker whose header area does not end where this file's notes do
    /// (`offset_note + size_note`). Such a dump is judged as another
    /// producer's, and its producer is not crashkit.
    pub fn notes_copied(&self) -> bool {
        let Some(marker) = self.crashkit().and_then(|c| c.completion) else {
            return false;
        };
        self.sub.offset_note.checked_add(self.sub.size_note) != Some(marker.header_extent)
    }

    /// Whether the dump is complete, incomplete or cannot tell.
    pub fn completeness(&self) -> Completeness {
        self.completeness
    }

    /// What was found wrong while opening.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The memory the dump covers: runs of frames set in the first bitmap,
    /// as physical ranges, in order.
    pub fn memory_runs(&self) -> Vec<crate::PhysRange> {
        let mut runs: Vec<crate::PhysRange> = Vec::new();
        let mut start: Option<u64> = None;
        let mut frame = 0u64;
        while frame < self.frames {
            // 64 or 8 frames in one state are passed at once (a 16 GiB
            // machine has 4 Mi frames and a handful of runs).
            if frame.is_multiple_of(64)
                && frame + 64 <= self.frames
                && let Some(word) = usize::try_from(frame / 8)
                    .ok()
                    .and_then(|i| self.present.get(i..i + 8))
            {
                let same = if start.is_some() { 0xff } else { 0 };
                if word.iter().all(|&b| b == same) {
                    frame += 64;
                    continue;
                }
            }
            let byte = usize::try_from(frame / 8)
                .ok()
                .and_then(|i| self.present.get(i))
                .copied()
                .unwrap_or(0);
            if frame.is_multiple_of(8)
                && frame + 8 <= self.frames
                && matches!((byte, start), (0xff, Some(_)) | (0, None))
            {
                frame += 8;
                continue;
            }
            let present = byte & (1 << (frame % 8)) != 0;
            match (present, start) {
                (true, None) => start = Some(frame),
                (false, Some(first)) => {
                    runs.push(crate::PhysRange::new(
                        first * PAGE_SIZE,
                        (frame - first) * PAGE_SIZE,
                    ));
                    start = None;
                }
                _ => {}
            }
            frame += 1;
        }
        if let Some(first) = start {
            runs.push(crate::PhysRange::new(
                first * PAGE_SIZE,
                (self.frames - first) * PAGE_SIZE,
            ));
        }
        runs
    }

    /// Pages per state, from the bitmaps, up to the last frame they cover.
    /// When the dump is known incomplete (its header says so, or it is cut
    /// or damaged) the descriptors are read too: one never written, or
    /// whose data is not in the file, is lost. A split part counts the
    /// dumpable frames of other parts as in other parts; [`Self::part`] says which
    /// are its own.
    pub fn page_counts(&self) -> PageCounts {
        let mut counts = PageCounts::default();
        let incomplete = self.header.status & super::header::STATUS_INCOMPLETE != 0
            || matches!(self.completeness, Completeness::Incomplete(_));
        let mut index = 0usize;
        while let (Some(&present), Some(&dumpable)) =
            (self.present.get(index), self.dumpable.get(index))
        {
            let first = index as u64 * 8;
            if first >= self.frames {
                break;
            }
            // Fast path: 64 frames a step where all are in range and the
            // part's own in a whole dump (a 16 GiB machine is 4 Mi frames).
            if let (Some(p), Some(d)) = (
                self.present.get(index..index + 8),
                self.dumpable.get(index..index + 8),
            ) && first + 64 <= self.frames
                && first >= self.part.0
                && first + 64 <= self.part.1
                && !incomplete
            {
                let word = |bytes: &[u8]| {
                    let mut eight = [0u8; 8];
                    eight.copy_from_slice(bytes);
                    u64::from_le_bytes(eight)
                };
                let (present, dumpable) = (word(p), word(d));
                let dumpable = dumpable & present;
                counts.add(PageState::Hole, u64::from((!present).count_ones()));
                counts.add(
                    PageState::Excluded,
                    u64::from((present & !dumpable).count_ones()),
                );
                counts.add(PageState::Present, u64::from(dumpable.count_ones()));
                index += 8;
                continue;
            }
            index += 1;
            let valid = (self.frames - first).min(8) as u32;
            let mask = if valid == 8 { 0xff } else { (1u8 << valid) - 1 };
            let (present, dumpable) = (present & mask, dumpable & present & mask);
            counts.add(PageState::Hole, u64::from(valid - present.count_ones()));
            counts.add(
                PageState::Excluded,
                u64::from((present & !dumpable).count_ones()),
            );
            if dumpable == 0 {
                continue;
            }
            let own = first >= self.part.0 && first + 8 <= self.part.1;
            if own && !incomplete {
                counts.add(PageState::Present, u64::from(dumpable.count_ones()));
                continue;
            }
            for bit in 0..8 {
                if dumpable & (1 << bit) != 0 {
                    let state = match self.descriptor(first + bit) {
                        Ok(d) if self.source.covers(d.offset, u64::from(d.size)) => {
                            PageState::Present
                        }
                        Ok(_) => PageState::Lost,
                        Err(state) => state,
                    };
                    counts.add(state, 1);
                }
            }
        }
        counts
    }

    /// The state of frame `frame` before its data is looked at.
    fn frame_state(&self, frame: u64) -> Result<u64, PageState> {
        if frame >= self.frames || !bit(&self.present, frame) {
            return Err(PageState::Hole);
        }
        if !bit(&self.dumpable, frame) {
            return Err(PageState::Excluded);
        }
        if frame < self.part.0 || frame >= self.part.1 {
            return Err(PageState::InOtherPart);
        }
        Ok(self.dumpable_before(frame) - self.part_base)
    }

    /// The descriptor of frame `frame`.
    pub fn descriptor(&self, frame: u64) -> Result<PageDescriptor, PageState> {
        let index = self.frame_state(frame)?;
        let descriptor = self.table_descriptor(index).ok_or(PageState::Lost)?;
        if descriptor.offset == 0 {
            return Err(PageState::Lost);
        }
        Ok(descriptor)
    }

    /// Read frame `frame` into `page` (4096 bytes).
    pub fn read_page(&self, frame: u64, page: &mut [u8]) -> Result<(), PageProblem> {
        let problem = |state| PageProblem {
            state,
            decode: None,
        };
        let descriptor = self.descriptor(frame).map_err(problem)?;
        if u64::from(descriptor.size) > PAGE_SIZE {
            return Err(PageProblem {
                state: PageState::Corrupt,
                decode: Some(DecodeError::TooLong),
            });
        }
        let size = u64::from(descriptor.size);
        let corrupt = |error| PageProblem {
            state: PageState::Corrupt,
            decode: Some(error),
        };
        match self.source.slice(descriptor.offset, size) {
            Some(data) => codec::decode_page(descriptor.flags, data, page).map_err(corrupt),
            None => {
                let mut data = [0u8; PAGE_SIZE as usize];
                let data = data
                    .get_mut(..size as usize)
                    .ok_or(problem(PageState::Corrupt))?;
                self.source
                    .read(descriptor.offset, data)
                    .map_err(|_| problem(PageState::Lost))?;
                codec::decode_page(descriptor.flags, data, page).map_err(corrupt)
            }
        }
    }

    /// The state of physical address `addr` (from the bitmaps and the
    /// descriptor; the page's data is not decoded) and how far it lasts
    /// (to the end of its page).
    pub fn classify(&self, addr: u64) -> Span {
        let frame = addr / PAGE_SIZE;
        let len = PAGE_SIZE - addr % PAGE_SIZE;
        let state = match self.descriptor(frame) {
            Ok(_) => PageState::Present,
            Err(state) => state,
        };
        Span {
            state,
            len,
            file_offset: None,
        }
    }

    /// Read physical memory at `addr` into `buf`, decoding pages; the first
    /// address whose page is not present (or is corrupt) stops the read.
    pub fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let mut page = [0u8; PAGE_SIZE as usize];
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            let frame = at / PAGE_SIZE;
            let within = (at % PAGE_SIZE) as usize;
            self.read_page(frame, &mut page).map_err(|p| Unreadable {
                addr: at,
                state: p.state,
            })?;
            let step = (PAGE_SIZE as usize - within).min(buf.len() - done);
            let (Some(dst), Some(src)) = (
                buf.get_mut(done..done + step),
                page.get(within..within + step),
            ) else {
                break;
            };
            dst.copy_from_slice(src);
            done += step;
        }
        Ok(())
    }
}

/// `text` without the NULs that pad it to its note's or field's size.
fn without_trailing_nuls(text: &[u8]) -> &[u8] {
    let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    text.get(..end).unwrap_or(&[])
}

/// Where the sub-header fields of header version `version` end (the
/// fields of later versions follow, up to 104 bytes); `None` for version
/// 6, which has them all.
fn sub_header_fields_end(version: i32) -> Option<usize> {
    match version {
        ..=1 => Some(12),
        2 => Some(32),
        3 => Some(48),
        4 => Some(64),
        5 => Some(80),
        _ => None,
    }
}

/// The machine a kdump-compressed file's CPU notes are written for. The
/// header names no machine of its own that QEMU fills in by CPU mode: when
/// the guest's CPU 0 is not in long mode (an early-boot crash, a 32-bit
/// guest), QEMU writes every `NT_PRSTATUS` note in the i386 layout, as it
/// does in its ELF dumps, which then say `EM_386`. So the notes are i386
/// when their first `NT_PRSTATUS` is (a file that mixes layouts has the
/// others flagged, [`DamageKind::X86_64NoteInI386Dump`]); x86_64 otherwise.
fn notes_machine(bytes: &[u8]) -> Machine {
    let first = crate::notes::Notes::new(bytes, 0)
        .map_while(Result::ok)
        .find(|note| {
            note.name == crate::notes::NAME_CORE && note.n_type == crate::notes::NT_PRSTATUS
        });
    match first {
        Some(note) if note.desc.len() == crate::notes::prstatus::PRSTATUS_I386_SIZE => {
            Machine::I386
        }
        _ => Machine::X86_64,
    }
}
