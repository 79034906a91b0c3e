//! The kdump-compressed writer: one pass over memory, positional writes,
//! no allocation of its own (a codec may allocate: zlib's does, once).
//!
//! Layout, as makedumpfile writes it (header version 6): block 0 the
//! header; block 1 the sub-header and the same notes as the ELF writer
//! (CPUs, VMCOREINFO, crashkit's, the completion marker); both bitmaps;
//! the descriptors, reserved for every page of the plan's ranges; the page
//! data. Every zero page shares one descriptor and one written zero page;
//! a page is stored raw when its codec does not shrink it.
//!
//! Order of writes, so that a cut dump reads as incomplete, loses no more
//! than it must, and never pairs a frame with bytes that are not its own,
//! also over an older dump on the same device:
//! 1. block 0 zeroed (an older dump's header stops describing anything);
//!    flush;
//! 2. the sub-header, the notes with the marker zeroed, both bitmaps as
//!    planned (first: every frame of the plan's ranges; second: those that
//!    are not secret), the whole descriptor area as zeros (a descriptor
//!    never written reads as offset 0: *lost*); flush; the header with
//!    `DUMP_DH_COMPRESSED_INCOMPLETE` set; flush;
//! 3. per bitmap block (32,768 frames): the page filter and the memory
//!    decide which planned frames are dumpable; a block of the second
//!    bitmap that changed is rewritten and flushed before any descriptor
//!    of its frames (the bitmap is how a reader finds a frame's
//!    descriptor, so the two must agree whenever a descriptor exists);
//!    then the block's pages and descriptors. A page readable in the first
//!    look and not in the second keeps a zero descriptor (lost);
//! 4. the last descriptors; flush; the completion marker; flush; the
//!    header without the incomplete flag; flush.
//!
//! The marker's header checksum (see `docs/dump-formats.md`) covers, in
//! this order: the 464-byte header with the incomplete flag clear, the
//! 104-byte sub-header, the notes with the marker's descriptor as zeros,
//! then the CRC-32C of the first bitmap and of the second (little-endian
//! u32 each). Descriptors are not covered (they are a 170th of the data
//! and a reader would have to read them all to check).

use super::header::{
    DESCRIPTOR_SIZE, DiskDumpHeader, PageDescriptor, SIGNATURE_KDUMP, STATUS_INCOMPLETE,
    SUB_HEADER_SIZE, SubHeader,
};
use crate::PAGE_SIZE;
use crate::crc32c::Crc32c;
use crate::notes::crashkit::CompletionMarker;
use crate::notes::emit::{Piece, checksum_notes, emit_notes, write_notes};
use crate::plan::{DumpPlan, PlanError};
use crate::sink::{DumpSink, PageFilter, PhysMemory, with_retries};
use crate::write::{DumpError, Exclusions, WriteOptions, ZERO_PAGE, is_zero};
#[cfg(feature = "alloc")]
use alloc::boxed as alloc_box;

/// A page codec for the writer.
pub trait PageEncoder {
    /// The descriptor flag of its pages (`FLAG_ZLIB`, ...).
    fn flag(&self) -> u32;

    /// Compress `page` into `out`; the compressed size, or `None` when the
    /// result would not be smaller than the page (the page is then stored
    /// raw).
    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize>;
}

#[cfg(feature = "alloc")]
impl<E: PageEncoder + ?Sized> PageEncoder for alloc_box::Box<E> {
    fn flag(&self) -> u32 {
        (**self).flag()
    }

    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        (**self).encode(page, out)
    }
}

/// Every page raw (no codec).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawPages;

impl PageEncoder for RawPages {
    fn flag(&self) -> u32 {
        0
    }

    fn encode(&mut self, _page: &[u8], _out: &mut [u8]) -> Option<usize> {
        None
    }
}

/// LZO1X pages (crashkit's own encoder, [`super::lzo`]; no allocation).
#[derive(Clone, Debug, Default)]
pub struct LzoPages {
    encoder: super::lzo::Lzo1x,
}

impl LzoPages {
    /// An encoder (const, for a `static`).
    pub const fn new() -> Self {
        Self {
            encoder: super::lzo::Lzo1x::new(),
        }
    }
}

impl PageEncoder for LzoPages {
    fn flag(&self) -> u32 {
        super::header::FLAG_LZO
    }

    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        self.encoder.compress(page, out)
    }
}

/// snappy pages (crashkit's own encoder, [`super::snappy`]; no allocation).
#[derive(Clone, Debug, Default)]
pub struct SnappyPages {
    encoder: super::snappy::Snappy,
}

impl PageEncoder for SnappyPages {
    fn flag(&self) -> u32 {
        super::header::FLAG_SNAPPY
    }

    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        self.encoder.compress(page, out)
    }
}

/// zstd pages (ruzstd's encoder at its fastest level; it allocates per
/// page, so it is slow: the capture kernel's choice only when zstd is
/// wanted by the reader).
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default)]
pub struct ZstdPages;

#[cfg(feature = "alloc")]
impl PageEncoder for ZstdPages {
    fn flag(&self) -> u32 {
        super::header::FLAG_ZSTD
    }

    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        let frame =
            ruzstd::encoding::compress_to_vec(page, ruzstd::encoding::CompressionLevel::Fastest);
        if frame.len() >= page.len() {
            return None;
        }
        out.get_mut(..frame.len())?.copy_from_slice(&frame);
        Some(frame.len())
    }
}

/// zlib pages from crashkit's page deflate ([`super::deflate`]), as
/// makedumpfile `-c` stores them (a zlib stream per page). Needs no
/// allocator; at most 84 KiB of state, so keep it in a static or a `Box`.
#[derive(Clone, Debug, Default)]
pub struct ZlibPages {
    deflate: super::deflate::Deflate,
}

impl ZlibPages {
    /// The level [`Self::new`] takes.
    pub const DEFAULT_LEVEL: u8 = super::deflate::Deflate::DEFAULT_LEVEL;
    /// The highest level (levels run from 1).
    pub const MAX_LEVEL: u8 = super::deflate::Deflate::MAX_LEVEL;

    /// An encoder at [`Self::DEFAULT_LEVEL`].
    pub const fn new() -> Self {
        Self::with_level(Self::DEFAULT_LEVEL)
    }

    /// An encoder at `level` (1 fastest to [`Self::MAX_LEVEL`] smallest;
    /// others are taken as the nearest).
    pub const fn with_level(level: u8) -> Self {
        Self {
            deflate: super::deflate::Deflate::with_level(level),
        }
    }

    /// Compress at `level` from the next page on (as [`Self::with_level`]
    /// takes it), in place: the state is too large to build on a small
    /// stack.
    pub fn set_level(&mut self, level: u8) {
        self.deflate.set_level(level);
    }
}

impl PageEncoder for ZlibPages {
    fn flag(&self) -> u32 {
        super::header::FLAG_ZLIB
    }

    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        self.deflate.compress(page, out)
    }
}

/// zlib pages from miniz_oxide's deflate at a chosen level (one compressor
/// reused page after page, zlib header and Adler-32 as `compress2` writes
/// them): smaller output than [`ZlibPages`] at levels above 1, several
/// times slower (docs/benchmarks.md).
#[cfg(feature = "alloc")]
pub struct MinizZlibPages {
    compressor: alloc::boxed::Box<miniz_oxide::deflate::core::CompressorOxide>,
}

#[cfg(feature = "alloc")]
impl core::fmt::Debug for MinizZlibPages {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MinizZlibPages")
    }
}

#[cfg(feature = "alloc")]
impl MinizZlibPages {
    /// A zlib encoder at `level` (1 fastest to 9 smallest).
    pub fn new(level: u8) -> Self {
        let flags = miniz_oxide::deflate::core::create_comp_flags_from_zip_params(
            i32::from(level.clamp(1, 9)),
            15,
            0,
        );
        Self {
            compressor: alloc::boxed::Box::new(miniz_oxide::deflate::core::CompressorOxide::new(
                flags,
            )),
        }
    }
}

#[cfg(feature = "alloc")]
impl PageEncoder for MinizZlibPages {
    fn flag(&self) -> u32 {
        super::header::FLAG_ZLIB
    }

    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        use miniz_oxide::deflate::core::{TDEFLFlush, TDEFLStatus, compress};
        self.compressor.reset();
        let (status, read, written) = compress(&mut self.compressor, page, out, TDEFLFlush::Finish);
        (status == TDEFLStatus::Done && read == page.len() && written < page.len())
            .then_some(written)
    }
}

/// What a kdump-compressed dump wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KdumpStats {
    /// Pages looked at.
    pub pages_total: u64,
    /// Pages with a descriptor (dumpable).
    pub pages_dumpable: u64,
    /// Zero pages (one shared descriptor).
    pub zero_pages: u64,
    /// Pages stored compressed.
    pub compressed_pages: u64,
    /// Pages stored raw (the codec did not shrink them).
    pub raw_pages: u64,
    /// Pages left out: secrets, filtered, unreadable.
    pub excluded_pages: u64,
    /// Bytes of page data written.
    pub data_bytes: u64,
    /// The dump's length.
    pub total_length: u64,
    /// Whether the completion marker was written.
    pub complete: bool,
}

/// Frames per bitmap block (4096 bytes of bits).
const FRAMES_PER_BLOCK: u64 = PAGE_SIZE * 8;
/// Descriptors buffered before a write.
const DESCRIPTORS_PER_WRITE: usize = PAGE_SIZE as usize / DESCRIPTOR_SIZE;

struct Layout {
    sub_blocks: u64,
    notes_offset: u64,
    notes_len: u64,
    completion_desc: u64,
    /// File offset of the VMCOREINFO note's descriptor, if the plan has one.
    vmcoreinfo_desc: Option<u64>,
    frames: u64,
    bitmap_each: u64,
    bitmaps_at: u64,
    descriptors_at: u64,
    data_at: u64,
}

impl Layout {
    fn new(plan: &DumpPlan<'_>) -> Option<Self> {
        let notes_offset = PAGE_SIZE + SUB_HEADER_SIZE as u64;
        let mut notes_len = 0u64;
        let mut completion = None;
        let mut vmcoreinfo_desc = None;
        emit_notes(plan, |piece| {
            match piece {
                Piece::CompletionDesc => completion = Some(notes_offset + notes_len),
                // The descriptor is handed on as the plan's own slice.
                Piece::Bytes(bytes)
                    if !plan.vmcoreinfo.is_empty() && core::ptr::eq(bytes, plan.vmcoreinfo) =>
                {
                    vmcoreinfo_desc = Some(notes_offset + notes_len);
                }
                _ => {}
            }
            notes_len += piece.len() as u64;
            Ok::<(), ()>(())
        })
        .ok()?;
        let sub_blocks = (SUB_HEADER_SIZE as u64 + notes_len).div_ceil(PAGE_SIZE);
        let frames = plan
            .ranges
            .last()
            .and_then(|r| r.end())
            .map_or(0, |end| end / PAGE_SIZE);
        let bitmap_each = frames.div_ceil(8).div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let bitmaps_at = (1 + sub_blocks) * PAGE_SIZE;
        let descriptors_at = bitmaps_at.checked_add(2 * bitmap_each)?;
        let pages: u64 = plan.ranges.iter().map(|r| r.len / PAGE_SIZE).sum();
        let data_at = descriptors_at.checked_add(pages.checked_mul(DESCRIPTOR_SIZE as u64)?)?;
        Some(Self {
            sub_blocks,
            notes_offset,
            notes_len,
            completion_desc: completion?,
            vmcoreinfo_desc,
            frames,
            bitmap_each,
            bitmaps_at,
            descriptors_at,
            data_at,
        })
    }
}

enum Stop<E> {
    Sink { offset: u64, error: E },
}

struct Writer<'w, 'a, S: DumpSink, E> {
    plan: &'w DumpPlan<'a>,
    layout: Layout,
    sink: &'w mut S,
    encoder: &'w mut E,
    options: WriteOptions,
    stats: KdumpStats,
    header: DiskDumpHeader,
    sub: SubHeader,
    /// The bitmap block being worked on, both bitmaps.
    present: [u8; PAGE_SIZE as usize],
    dumpable: [u8; PAGE_SIZE as usize],
    present_crc: Crc32c,
    dumpable_crc: Crc32c,
    descriptors: [u8; DESCRIPTORS_PER_WRITE * DESCRIPTOR_SIZE],
    buffered: usize,
    descriptors_written: u64,
    cursor: u64,
    zero_page: Option<u64>,
    out: [u8; PAGE_SIZE as usize],
}

/// The header's `utsname`: every field filled, because readers take the
/// structure only when none is empty (libkdumpfile ignores it otherwise,
/// and then knows no architecture, so drgn refuses the file). `machine` is
/// `x86_64`; `release` is VMCOREINFO's `OSRELEASE`; `sysname` is `Linux`
/// when VMCOREINFO names `init_uts_ns` (where Linux keeps its own
/// utsname), else `unknown`, as `version` is (VMCOREINFO does not carry
/// it); `nodename` and `domainname` are `(none)`, Linux's value when unset.
/// Each field keeps at least one NUL (64 bytes of text at most).
fn utsname(plan: &DumpPlan<'_>) -> [[u8; super::header::UTS_FIELD]; 6] {
    let info = crate::vmcoreinfo::VmcoreInfo::new(plan.vmcoreinfo);
    let linux = info.get("SYMBOL(init_uts_ns)").is_some();
    let fields: [&[u8]; 6] = [
        if linux { b"Linux" } else { b"unknown" },
        b"(none)",
        info.get("OSRELEASE")
            .filter(|release| !release.is_empty())
            .map_or(&b"unknown"[..], str::as_bytes),
        b"unknown",
        b"x86_64",
        b"(none)",
    ];
    let mut utsname = [[0u8; super::header::UTS_FIELD]; 6];
    for (field, text) in utsname.iter_mut().zip(fields) {
        for (to, &from) in field
            .iter_mut()
            .zip(text.iter().take(super::header::UTS_FIELD - 1))
        {
            *to = from;
        }
    }
    utsname
}

/// The sub-header's `phys_base`: VMCOREINFO's `NUMBER(phys_base)` (a Linux
/// kernel's physical load offset, negative under KASLR, stored as its two's
/// complement as makedumpfile stores it), else 0. makedumpfile and crash
/// translate kernel-text addresses of a kdump-compressed file with it.
fn phys_base(plan: &DumpPlan<'_>) -> u64 {
    crate::vmcoreinfo::VmcoreInfo::new(plan.vmcoreinfo)
        .number("NUMBER(phys_base)")
        .unwrap_or(0)
}

/// Write a kdump-compressed dump of `plan` from `memory` to `sink`, pages
/// compressed by `encoder` (zero pages shared, a page that does not shrink
/// stored raw). `filter` and the plan's exclusions leave pages out; the
/// plan's kernel image and direct map do not apply (the format has no
/// virtual addresses). Never panics; allocates nothing itself.
pub fn write_kdump<S, M, F, E, P>(
    plan: &DumpPlan<'_>,
    memory: &mut M,
    sink: &mut S,
    filter: &mut F,
    encoder: &mut E,
    options: WriteOptions,
    mut progress: P,
) -> Result<KdumpStats, DumpError<S::Error>>
where
    S: DumpSink,
    M: PhysMemory,
    F: PageFilter,
    E: PageEncoder,
    P: FnMut(&crate::write::Progress),
{
    plan.validate().map_err(DumpError::Plan)?;
    let layout = Layout::new(plan).ok_or(DumpError::Plan(PlanError::NoteTooLarge))?;
    let header = DiskDumpHeader {
        signature: *SIGNATURE_KDUMP,
        header_version: 6,
        utsname: utsname(plan),
        timestamp: (plan.crash_time as i64, 0),
        status: encoder.flag() | STATUS_INCOMPLETE,
        block_size: PAGE_SIZE as i32,
        sub_hdr_size: layout.sub_blocks as i32,
        bitmap_blocks: (2 * layout.bitmap_each / PAGE_SIZE) as u32,
        max_mapnr: layout.frames.min(u64::from(u32::MAX)) as u32,
        total_ram_blocks: 0,
        device_blocks: 0,
        written_blocks: 0,
        current_cpu: plan.panic_cpu.unwrap_or(0),
        nr_cpus: plan.cpus.len() as i32,
    };
    let sub = SubHeader {
        phys_base: phys_base(plan),
        dump_level: if plan.exclude_zero_pages { 1 } else { 0 },
        // makedumpfile and crash take VMCOREINFO from here, not from the
        // notes: the field points at the note's descriptor, as
        // makedumpfile's own files do.
        offset_vmcoreinfo: layout.vmcoreinfo_desc.unwrap_or(0),
        size_vmcoreinfo: layout
            .vmcoreinfo_desc
            .map_or(0, |_| plan.vmcoreinfo.len() as u64),
        offset_note: layout.notes_offset,
        size_note: layout.notes_len,
        max_mapnr_64: layout.frames,
        ..SubHeader::default()
    };
    let mut writer = Writer {
        plan,
        sink,
        encoder,
        options,
        stats: KdumpStats::default(),
        header,
        sub,
        present: [0; PAGE_SIZE as usize],
        dumpable: [0; PAGE_SIZE as usize],
        present_crc: Crc32c::new(),
        dumpable_crc: Crc32c::new(),
        descriptors: [0; DESCRIPTORS_PER_WRITE * DESCRIPTOR_SIZE],
        buffered: 0,
        descriptors_written: 0,
        cursor: layout.data_at,
        zero_page: None,
        out: [0; PAGE_SIZE as usize],
        layout,
    };
    match writer.run(memory, filter, &mut progress) {
        Ok(()) => Ok(writer.stats),
        Err(Stop::Sink { offset, error }) => {
            let _ = writer.sink.flush();
            writer.stats.total_length = writer.cursor;
            let stats = crate::write::DumpStats {
                pages_total: writer.stats.pages_total,
                pages_written: writer.stats.pages_dumpable,
                total_length: writer.cursor,
                ..crate::write::DumpStats::default()
            };
            Err(DumpError::Sink {
                offset,
                error,
                stats,
            })
        }
    }
}

impl<S: DumpSink, E: PageEncoder> Writer<'_, '_, S, E> {
    fn run<M: PhysMemory, F: PageFilter>(
        &mut self,
        memory: &mut M,
        filter: &mut F,
        progress: &mut impl FnMut(&crate::write::Progress),
    ) -> Result<(), Stop<S::Error>> {
        // 1. Whatever the device held before stops being a dump: no reader
        //    may see an older dump's header over this dump's metadata.
        self.put(0, &ZERO_PAGE)?;
        self.flush()?;

        // 2. Sub-header, notes (marker zeroed), both bitmaps as planned,
        //    the descriptor area zeroed; then the header, still incomplete.
        self.put(PAGE_SIZE, &self.sub.encode())?;
        let plan = self.plan;
        write_notes(plan, self.layout.notes_offset, |at, bytes| {
            self.put(at, bytes)
        })?;
        // The rest of the sub-header's last block: zeros, not what the
        // device held before (an older dump's bytes would be carried in
        // the new file's slack).
        let notes_end = self.layout.notes_offset + self.layout.notes_len;
        let slack = (1 + self.layout.sub_blocks) * PAGE_SIZE - notes_end;
        let slack = ZERO_PAGE.get(..slack as usize).unwrap_or(&[]);
        self.put(notes_end, slack)?;
        let blocks = self.layout.bitmap_each / PAGE_SIZE;
        for block in 0..blocks {
            self.planned(block);
            let (present, dumpable) = (self.present, self.dumpable);
            let at = self.layout.bitmaps_at + block * PAGE_SIZE;
            self.put(at, &present)?;
            self.put(at + self.layout.bitmap_each, &dumpable)?;
        }
        let mut at = self.layout.descriptors_at;
        while at < self.layout.data_at {
            let n = (self.layout.data_at - at).min(PAGE_SIZE);
            self.put(at, ZERO_PAGE.get(..n as usize).unwrap_or(&[]))?;
            at += n;
        }
        self.flush()?;
        self.put(0, &self.header.encode())?;
        self.flush()?;

        // 3. Block by block: which planned pages can be dumped (the filter,
        //    readable memory), that block of the second bitmap if it
        //    changed, then the pages.
        let total: u64 = plan.ranges.iter().map(|r| r.len / PAGE_SIZE).sum();
        let mut done = 0u64;
        for block in 0..blocks {
            self.planned(block);
            let planned = self.dumpable;
            for frame in frames_in(plan, block) {
                if bit(&self.dumpable, frame)
                    && (filter.exclude(frame * PAGE_SIZE)
                        || memory.page(frame * PAGE_SIZE).is_none())
                {
                    clear_bit(&mut self.dumpable, frame);
                }
            }
            if self.dumpable != planned {
                let dumpable = self.dumpable;
                let at = self.layout.bitmaps_at + self.layout.bitmap_each + block * PAGE_SIZE;
                self.put(at, &dumpable)?;
                // The block's bits are on the device before any descriptor
                // they index: a reader never pairs a frame with another
                // frame's descriptor.
                self.flush()?;
            }
            self.present_crc.update(&self.present);
            self.dumpable_crc.update(&self.dumpable);
            for frame in frames_in(plan, block) {
                self.stats.pages_total += 1;
                done += 1;
                if self.options.progress_pages > 0
                    && done.is_multiple_of(self.options.progress_pages)
                {
                    progress(&crate::write::Progress {
                        pages_done: done,
                        pages_total: total,
                        data_bytes: self.stats.data_bytes,
                    });
                }
                if !bit(&self.dumpable, frame) {
                    self.stats.excluded_pages += 1;
                    continue;
                }
                match memory.page(frame * PAGE_SIZE) {
                    Some(page) => self.page(page)?,
                    // Readable a moment ago, not now: its descriptor stays
                    // zero, which a reader reports as lost.
                    None => self.descriptor(&[0; DESCRIPTOR_SIZE])?,
                }
            }
        }

        // 4. The last descriptors; the marker; the header, complete.
        self.flush_descriptors()?;
        self.flush()?;
        self.stats.total_length = self.cursor;
        let marker = CompletionMarker {
            dump_id: plan.dump_id,
            total_length: self.cursor,
            header_extent: self.layout.notes_offset + self.layout.notes_len,
            header_checksum: self.header_checksum(),
            state: CompletionMarker::COMPLETE,
        };
        self.put(self.layout.completion_desc, &marker.encode())?;
        self.flush()?;
        self.header.status &= !STATUS_INCOMPLETE;
        self.put(0, &self.header.encode())?;
        self.flush()?;
        progress(&crate::write::Progress {
            pages_done: done,
            pages_total: total,
            data_bytes: self.stats.data_bytes,
        });
        self.stats.complete = true;
        Ok(())
    }

    /// Both bitmaps' block `block` as the plan has them, in `self.present`
    /// and `self.dumpable`: present, every frame of the plan's ranges;
    /// dumpable, those that are not secret.
    fn planned(&mut self, block: u64) {
        self.present = [0; PAGE_SIZE as usize];
        self.dumpable = [0; PAGE_SIZE as usize];
        let mut secrets = Exclusions::new(self.plan.exclusions);
        for frame in frames_in(self.plan, block) {
            set_bit(&mut self.present, frame);
            if !secrets.contains(frame * PAGE_SIZE) {
                set_bit(&mut self.dumpable, frame);
            }
        }
    }

    /// Store one dumpable page: its data and its descriptor.
    fn page(&mut self, page: &[u8; PAGE_SIZE as usize]) -> Result<(), Stop<S::Error>> {
        self.stats.pages_dumpable += 1;
        let zero = is_zero(page);
        let descriptor = if zero && self.plan.exclude_zero_pages {
            self.stats.zero_pages += 1;
            let offset = match self.zero_page {
                Some(offset) => offset,
                None => {
                    let offset = self.cursor;
                    self.put(offset, &ZERO_PAGE)?;
                    self.cursor += PAGE_SIZE;
                    self.stats.data_bytes += PAGE_SIZE;
                    self.zero_page = Some(offset);
                    offset
                }
            };
            PageDescriptor {
                offset,
                size: PAGE_SIZE as u32,
                flags: 0,
                page_flags: 0,
            }
        } else {
            let encoded = self.encoder.encode(page, &mut self.out);
            let (bytes, flags): (&[u8], u32) = match encoded.and_then(|n| self.out.get(..n)) {
                Some(compressed) => {
                    self.stats.compressed_pages += 1;
                    (compressed, self.encoder.flag())
                }
                None => {
                    self.stats.raw_pages += 1;
                    (page, 0)
                }
            };
            let offset = self.cursor;
            // The page's bytes borrow `self.out`: written through the
            // sink field directly, not through `self.put`.
            put(&mut *self.sink, self.options.sink_retries, offset, bytes)?;
            self.cursor += bytes.len() as u64;
            self.stats.data_bytes += bytes.len() as u64;
            PageDescriptor {
                offset,
                size: bytes.len() as u32,
                flags,
                page_flags: 0,
            }
        };
        self.descriptor(&descriptor.encode())
    }

    /// Append the next frame's descriptor.
    fn descriptor(&mut self, encoded: &[u8; DESCRIPTOR_SIZE]) -> Result<(), Stop<S::Error>> {
        let at = self.buffered * DESCRIPTOR_SIZE;
        if let Some(slot) = self.descriptors.get_mut(at..at + DESCRIPTOR_SIZE) {
            slot.copy_from_slice(encoded);
        }
        self.buffered += 1;
        if self.buffered == DESCRIPTORS_PER_WRITE {
            self.flush_descriptors()?;
        }
        Ok(())
    }

    fn flush_descriptors(&mut self) -> Result<(), Stop<S::Error>> {
        if self.buffered == 0 {
            return Ok(());
        }
        let at = self.layout.descriptors_at + self.descriptors_written * DESCRIPTOR_SIZE as u64;
        let bytes = self.descriptors;
        self.put(
            at,
            bytes.get(..self.buffered * DESCRIPTOR_SIZE).unwrap_or(&[]),
        )?;
        self.descriptors_written += self.buffered as u64;
        self.buffered = 0;
        Ok(())
    }

    fn header_checksum(&self) -> u32 {
        let mut crc = Crc32c::new();
        let mut header = self.header;
        header.status &= !STATUS_INCOMPLETE;
        crc.update(&header.encode());
        crc.update(&self.sub.encode());
        checksum_notes(self.plan, &mut crc);
        crc.update(&self.present_crc.finish().to_le_bytes());
        crc.update(&self.dumpable_crc.finish().to_le_bytes());
        crc.finish()
    }

    fn put(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Stop<S::Error>> {
        put(&mut *self.sink, self.options.sink_retries, offset, bytes)
    }

    fn flush(&mut self) -> Result<(), Stop<S::Error>> {
        let sink = &mut *self.sink;
        with_retries(self.options.sink_retries, || {}, || sink.flush()).map_err(|error| {
            Stop::Sink {
                offset: self.cursor,
                error,
            }
        })
    }
}

/// Write `bytes` at `offset` with the writers' bounded retries.
fn put<S: DumpSink>(
    sink: &mut S,
    retries: u32,
    offset: u64,
    bytes: &[u8],
) -> Result<(), Stop<S::Error>> {
    with_retries(retries, || {}, || sink.write_at(offset, bytes))
        .map_err(|error| Stop::Sink { offset, error })
}

/// The frames of the plan's ranges in bitmap block `block`, ascending.
fn frames_in<'p>(plan: &'p DumpPlan<'_>, block: u64) -> impl Iterator<Item = u64> + 'p {
    let first = block.saturating_mul(FRAMES_PER_BLOCK);
    let last = first.saturating_add(FRAMES_PER_BLOCK);
    plan.ranges.iter().flat_map(move |range| {
        let start = (range.start / PAGE_SIZE).max(first);
        let end = range.end().map_or(0, |end| end / PAGE_SIZE).min(last);
        start..end.max(start)
    })
}

/// Frame `frame`'s bit in its bitmap block.
fn bit(block: &[u8; PAGE_SIZE as usize], frame: u64) -> bool {
    let bit = frame % FRAMES_PER_BLOCK;
    block
        .get((bit / 8) as usize)
        .is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
}

fn set_bit(block: &mut [u8; PAGE_SIZE as usize], frame: u64) {
    let bit = frame % FRAMES_PER_BLOCK;
    if let Some(byte) = block.get_mut((bit / 8) as usize) {
        *byte |= 1 << (bit % 8);
    }
}

fn clear_bit(block: &mut [u8; PAGE_SIZE as usize], frame: u64) {
    let bit = frame % FRAMES_PER_BLOCK;
    if let Some(byte) = block.get_mut((bit / 8) as usize) {
        *byte &= !(1 << (bit % 8));
    }
}
