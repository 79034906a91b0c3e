//! The ELF vmcore writer: one pass over memory, positional writes, no
//! allocation.
//!
//! The caller describes the dump in a [`DumpPlan`] (memory ranges, the
//! direct map and the kernel image for virtual addresses, exclusions, CPU
//! states, VMCOREINFO, the crash record), gives physical memory through
//! [`PhysMemory`] and a destination through [`DumpSink`], and calls
//! [`write_elf_dump`]. The file it writes:
//!
//! ```text
//! 0        ELF header (e_flags bit 0 set until the dump is complete)
//! 64       program headers: PT_NOTE, then `capacity` PT_LOAD slots
//!          [section header 0 when the slots need PN_XNUM]
//! notes    CORE/NT_PRSTATUS per CPU (the panicking CPU first), VMCOREINFO,
//!          CRASHKIT identity, control state per CPU, memory map, crash
//!          record, completion marker (zeros until the end)
//! data     page aligned: the pages of each segment, in segment order
//! ```
//!
//! Segments are found while streaming: a run of written pages, optionally
//! followed by a run of zero pages that are not written (`p_memsz >
//! p_filesz`, the identity note's [`FLAG_ZERO_TAILS`](crate::notes::crashkit::FLAG_ZERO_TAILS)). An excluded page
//! (a secret from [`DumpPlan::exclusions`], a page the [`PageFilter`]
//! rejects, an unreadable page) ends the segment: it is in no segment, and
//! the memory-map note tells a reader it is excluded rather than a hole.
//! Each segment's program header is written when it closes, and the open
//! one's every [`WriteOptions::checkpoint_pages`], so a dump cut at any
//! point describes what it holds. The order of writes, and why it makes a
//! torn dump detectable, is in [`crate::notes::crashkit::CompletionMarker`].
//!
//! The program header table is reserved before the first page: its size
//! is the segments the plan needs in any case (one per range and the
//! kernel image, two per exclusion) plus [`DumpPlan::extra_segments`] for
//! splits at zero runs, filtered and unreadable pages. When the extra
//! slots are used up, zero runs and filtered pages are written as data
//! (counted), and an unreadable page ends the dump with
//! [`DumpError::SegmentTableFull`].

use super::layout::Layout;
use crate::PAGE_SIZE;
use crate::crc32c::Crc32c;
use crate::elf::{self, E_FLAGS_INCOMPLETE};
use crate::notes::crashkit::CompletionMarker;
use crate::notes::emit::{checksum_notes, write_notes};
use crate::plan::{DumpPlan, PlanError};
use crate::sink::{DumpSink, PageFilter, PhysMemory, with_retries};
use crate::write::{DumpError, DumpStats, Exclusions, Progress, WriteOptions, ZERO_PAGE, is_zero};

enum Stop<E> {
    Sink { offset: u64, error: E },
    TableFull { phys: u64 },
}

/// The gap before the next segment: what it costs to open one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    /// No gap: a segment is open.
    None,
    /// A split the writer chose (zero run, filtered or unreadable page):
    /// costs an extra slot.
    Extra,
    /// A region start or a secret: paid for by the plan's reserved slots.
    Reserved,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    paddr: u64,
    vaddr: u64,
    offset: u64,
    file_pages: u64,
    zero_pages: u64,
}

impl Open {
    fn program_header(&self) -> [u8; elf::PROGRAM_HEADER_SIZE] {
        elf::encode_program_header(&elf::ProgramHeader {
            p_type: elf::PT_LOAD,
            p_flags: elf::PF_R | elf::PF_W | elf::PF_X,
            p_offset: self.offset,
            p_vaddr: self.vaddr,
            p_paddr: self.paddr,
            p_filesz: self.file_pages * PAGE_SIZE,
            p_memsz: (self.file_pages + self.zero_pages) * PAGE_SIZE,
            // 0, as Linux, QEMU and makedumpfile write it: crash takes a
            // vmcore whose first PT_LOAD has a page-aligned offset and a
            // non-zero p_align for the old netdump format, and refuses it
            // as a kdump ELF (`crash --osrelease` says "unknown").
            p_align: 0,
        })
    }
}

struct Writer<'w, 'a, S: DumpSink, F, P> {
    plan: &'w DumpPlan<'a>,
    layout: Layout,
    sink: &'w mut S,
    filter: &'w mut F,
    progress: P,
    options: WriteOptions,
    stats: DumpStats,
    extra_limit: u32,
    open: Option<Open>,
    gap: Gap,
    cursor: u64,
    table_crc: Crc32c,
    since_checkpoint: u64,
    pages_done: u64,
}

/// Write an ELF vmcore of `plan` from `memory` to `sink`.
///
/// `filter` leaves pages out (`&mut |_| false` keeps all); `progress` is
/// called every [`WriteOptions::progress_pages`] pages. Never allocates,
/// never panics; every wait is the sink's own.
///
/// ```
/// use crashkit_dump_format::plan::{CpuState, DumpPlan};
/// use crashkit_dump_format::write::WriteOptions;
/// use crashkit_dump_format::{DumpSink, PhysMemory, PhysRange, write_elf_dump};
///
/// /// 64 KiB of "physical memory" at 1 MiB.
/// struct Ram(Vec<[u8; 4096]>);
/// impl PhysMemory for Ram {
///     fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
///         self.0.get(usize::try_from(phys.checked_sub(0x10_0000)? / 4096).ok()?)
///     }
/// }
/// /// A file in memory (a kernel's sink writes to a disk or a reserved region).
/// struct Image(Vec<u8>);
/// impl DumpSink for Image {
///     type Error = ();
///     fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ()> {
///         let start = usize::try_from(offset).map_err(|_| ())?;
///         if self.0.len() < start + bytes.len() {
///             self.0.resize(start + bytes.len(), 0);
///         }
///         self.0[start..start + bytes.len()].copy_from_slice(bytes);
///         Ok(())
///     }
/// }
///
/// let mut ram = Ram(vec![[0xab; 4096]; 16]);
/// let ranges = [PhysRange::new(0x10_0000, 16 * 4096)];
/// let cpus = [CpuState::default()];
/// let plan = DumpPlan {
///     dump_id: *b"an id per dump!!", // the capture kernel draws it (RDRAND)
///     crash_time: 0,
///     ranges: &ranges,
///     exclusions: &[],
///     direct_map: Some(0xffff_8000_0000_0000),
///     kernel_image: None,
///     cpus: &cpus,
///     panic_cpu: Some(0),
///     vmcoreinfo: b"OSRELEASE=example\nPAGESIZE=4096\n",
///     crash_record: &[],
///     exclude_zero_pages: true,
///     extra_segments: 64,
/// };
/// let mut image = Image(Vec::new());
/// let stats = write_elf_dump(&plan, &mut ram, &mut image, &mut |_| false,
///                            WriteOptions::default(), |_| {}).unwrap();
/// assert!(stats.complete);
/// assert_eq!(stats.pages_written, 16);
/// ```
pub fn write_elf_dump<S, M, F, P>(
    plan: &DumpPlan<'_>,
    memory: &mut M,
    sink: &mut S,
    filter: &mut F,
    options: WriteOptions,
    progress: P,
) -> Result<DumpStats, DumpError<S::Error>>
where
    S: DumpSink,
    M: PhysMemory,
    F: PageFilter,
    P: FnMut(&Progress),
{
    plan.validate().map_err(DumpError::Plan)?;
    let capacity = plan.segment_capacity().map_err(DumpError::Plan)?;
    let layout = Layout::new(plan, capacity).ok_or(DumpError::Plan(PlanError::NoteTooLarge))?;
    let pages_total = plan
        .ranges
        .iter()
        .map(|r| r.len / PAGE_SIZE)
        .chain(
            plan.kernel_image
                .filter(|k| plan.direct_map != Some(k.virt_start.wrapping_sub(k.phys_start)))
                .map(|k| k.len.div_ceil(PAGE_SIZE)),
        )
        .fold(0u64, u64::saturating_add);
    let mut writer = Writer {
        plan,
        layout,
        sink,
        filter,
        progress,
        options,
        stats: DumpStats {
            pages_total,
            ..DumpStats::default()
        },
        extra_limit: plan.extra_segments,
        open: None,
        gap: Gap::Reserved,
        cursor: layout.data_offset,
        table_crc: Crc32c::new(),
        since_checkpoint: 0,
        pages_done: 0,
    };
    match writer.run(memory) {
        Ok(()) => Ok(writer.stats),
        Err(stop) => {
            writer.salvage();
            let stats = writer.stats;
            Err(match stop {
                Stop::Sink { offset, error } => DumpError::Sink {
                    offset,
                    error,
                    stats,
                },
                Stop::TableFull { phys } => DumpError::SegmentTableFull { phys, stats },
            })
        }
    }
}

impl<S: DumpSink, F: PageFilter, P: FnMut(&Progress)> Writer<'_, '_, S, F, P> {
    fn run<M: PhysMemory>(&mut self, memory: &mut M) -> Result<(), Stop<S::Error>> {
        // 1. The header area: ELF header marked incomplete, the PT_NOTE,
        //    the notes with the completion marker zeroed. Then a flush, so
        //    no page can be durable before the marker of an earlier dump in
        //    the same place is gone.
        self.write_count(E_FLAGS_INCOMPLETE)?;
        let note_header = self.layout.note_program_header();
        self.put(64, &note_header)?;
        self.table_crc.update(&note_header);
        let plan = self.plan;
        write_notes(plan, self.layout.notes_offset, |at, bytes| {
            self.put(at, bytes)
        })?;
        self.flush()?;

        // 2. The pages: the kernel image at its link addresses, then every
        //    range at its direct-map addresses.
        // The image is written on its own only when its link addresses are
        // not the direct map's: an identity-mapped or direct-mapped kernel
        // is already at the right virtual addresses in its range.
        let image = plan.kernel_image.filter(|image| {
            plan.direct_map != Some(image.virt_start.wrapping_sub(image.phys_start))
        });
        if let Some(image) = image {
            let pages = image.len.div_ceil(PAGE_SIZE);
            self.region(memory, image.phys_start, pages, Some(image.virt_start))?;
        }
        for range in plan.ranges {
            let vaddr = plan
                .direct_map
                .map(|offset| range.start.wrapping_add(offset));
            self.region(memory, range.start, range.len / PAGE_SIZE, vaddr)?;
        }
        self.close()?;
        self.report_progress();

        // 3. Everything durable, then the marker, then the header flag.
        self.flush()?;
        let header_checksum = self.header_checksum();
        self.stats.total_length = if self.cursor > self.layout.data_offset {
            self.cursor
        } else {
            self.layout.header_extent()
        };
        let marker = CompletionMarker {
            dump_id: plan.dump_id,
            total_length: self.stats.total_length,
            header_extent: self.layout.header_extent(),
            header_checksum,
            state: CompletionMarker::COMPLETE,
        };
        self.put(self.layout.completion_desc, &marker.encode())?;
        self.flush()?;
        self.write_count(0)?;
        self.flush()?;
        self.stats.complete = true;
        Ok(())
    }

    /// Walk `pages` pages from `start`, the first at virtual `vaddr`.
    fn region<M: PhysMemory>(
        &mut self,
        memory: &mut M,
        start: u64,
        pages: u64,
        vaddr: Option<u64>,
    ) -> Result<(), Stop<S::Error>> {
        self.gap(Gap::Reserved)?;
        let mut exclusions = Exclusions::new(self.plan.exclusions);
        for index in 0..pages {
            let phys = start + index * PAGE_SIZE;
            let virt = vaddr.map_or(0, |v| v.wrapping_add(index * PAGE_SIZE));
            self.tick();
            if exclusions.contains(phys) {
                self.stats.secret_pages_excluded += 1;
                self.gap(Gap::Reserved)?;
                continue;
            }
            let filtered = self.filter.exclude(phys);
            if filtered {
                if self.can_split() {
                    self.stats.filtered_pages_excluded += 1;
                    self.gap(Gap::Extra)?;
                    continue;
                }
                self.stats.filtered_pages_written += 1;
            }
            let Some(page) = memory.page(phys) else {
                if !self.can_split() {
                    return Err(Stop::TableFull { phys });
                }
                self.stats.unreadable_pages += 1;
                self.gap(Gap::Extra)?;
                continue;
            };
            if self.plan.exclude_zero_pages && is_zero(page) {
                self.stats.zero_pages_excluded += 1;
                match &mut self.open {
                    Some(open) => open.zero_pages += 1,
                    None => {
                        self.open_segment(phys, virt)?;
                        if let Some(open) = &mut self.open {
                            open.zero_pages = 1;
                        }
                    }
                }
                continue;
            }
            if self.open.is_some_and(|open| open.zero_pages > 0) {
                if self.can_split() {
                    self.gap(Gap::Extra)?;
                } else {
                    self.write_zero_tail()?;
                }
            }
            if self.open.is_none() {
                self.open_segment(phys, virt)?;
            }
            self.write_page(page)?;
        }
        Ok(())
    }

    /// Whether the writer may split here: the gap it would open is paid
    /// for already, or an extra slot is left.
    fn can_split(&self) -> bool {
        self.gap != Gap::None || self.stats.extra_segments_used < self.extra_limit
    }

    /// End the open segment (if any); the next one costs `kind`.
    fn gap(&mut self, kind: Gap) -> Result<(), Stop<S::Error>> {
        self.close()?;
        self.gap = self.gap.max(kind);
        Ok(())
    }

    fn open_segment(&mut self, phys: u64, virt: u64) -> Result<(), Stop<S::Error>> {
        let capacity_left = self.stats.segments < self.layout.capacity;
        match self.gap {
            Gap::Extra if capacity_left && self.stats.extra_segments_used < self.extra_limit => {
                self.stats.extra_segments_used += 1;
            }
            Gap::Reserved | Gap::None if capacity_left => {}
            _ => return Err(Stop::TableFull { phys }),
        }
        self.gap = Gap::None;
        self.open = Some(Open {
            paddr: phys,
            vaddr: virt,
            offset: self.cursor,
            file_pages: 0,
            zero_pages: 0,
        });
        Ok(())
    }

    fn write_page(&mut self, page: &[u8]) -> Result<(), Stop<S::Error>> {
        self.put(self.cursor, page)?;
        self.cursor += PAGE_SIZE;
        self.stats.pages_written += 1;
        if let Some(open) = &mut self.open {
            open.file_pages += 1;
        }
        self.since_checkpoint += 1;
        if self.options.checkpoint_pages > 0
            && self.since_checkpoint >= self.options.checkpoint_pages
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Write the open segment's zero tail as data: no slot is left to
    /// split it from the data that follows.
    fn write_zero_tail(&mut self) -> Result<(), Stop<S::Error>> {
        let tail = self.open.map_or(0, |open| open.zero_pages);
        if let Some(open) = &mut self.open {
            open.zero_pages = 0;
        }
        for _ in 0..tail {
            self.stats.zero_pages_excluded -= 1;
            self.stats.zero_pages_written += 1;
            self.write_page(&ZERO_PAGE)?;
        }
        Ok(())
    }

    /// Make the open segment visible as far as it is written.
    fn checkpoint(&mut self) -> Result<(), Stop<S::Error>> {
        self.since_checkpoint = 0;
        let Some(open) = self.open else {
            return Ok(());
        };
        self.flush()?;
        self.put(
            self.layout.slot_offset(self.stats.segments),
            &open.program_header(),
        )?;
        self.stats.segments += 1;
        let written = self.write_count(E_FLAGS_INCOMPLETE);
        self.stats.segments -= 1;
        written
    }

    fn close(&mut self) -> Result<(), Stop<S::Error>> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let header = open.program_header();
        self.put(self.layout.slot_offset(self.stats.segments), &header)?;
        self.table_crc.update(&header);
        self.stats.segments += 1;
        self.write_count(E_FLAGS_INCOMPLETE)
    }

    /// Write the ELF header (and section header 0 under PN_XNUM) for the
    /// closed segments.
    fn write_count(&mut self, flags: u32) -> Result<(), Stop<S::Error>> {
        let (header, section) = self.layout.elf_header(self.stats.segments, flags);
        if let Some((offset, bytes)) = section {
            self.put(offset, &bytes)?;
        }
        self.put(0, &header)
    }

    /// The completion marker's header checksum (see
    /// [`CompletionMarker`]): the used program headers, section header 0
    /// under PN_XNUM, the notes with the marker zeroed, the final ELF
    /// header.
    fn header_checksum(&self) -> u32 {
        let mut crc = self.table_crc;
        let (header, section) = self.layout.elf_header(self.stats.segments, 0);
        if let Some((_, bytes)) = section {
            crc.update(&bytes);
        }
        checksum_notes(self.plan, &mut crc);
        crc.update(&header);
        crc.finish()
    }

    /// After a failure: describe the open segment as far as it was written
    /// (best effort; the sink may refuse).
    fn salvage(&mut self) {
        if let Some(open) = self.open.take() {
            let slot = self.layout.slot_offset(self.stats.segments);
            if self.sink.write_at(slot, &open.program_header()).is_ok() {
                self.stats.segments += 1;
                let (header, section) = self
                    .layout
                    .elf_header(self.stats.segments, E_FLAGS_INCOMPLETE);
                if let Some((offset, bytes)) = section {
                    let _ = self.sink.write_at(offset, &bytes);
                }
                let _ = self.sink.write_at(0, &header);
            }
        }
        let _ = self.sink.flush();
        self.stats.total_length = self.cursor;
    }

    fn tick(&mut self) {
        self.pages_done += 1;
        if self.options.progress_pages > 0
            && self.pages_done.is_multiple_of(self.options.progress_pages)
        {
            self.report_progress();
        }
    }

    fn report_progress(&mut self) {
        let progress = Progress {
            pages_done: self.pages_done,
            pages_total: self.stats.pages_total,
            data_bytes: self.cursor - self.layout.data_offset,
        };
        (self.progress)(&progress);
    }

    /// One write with the retry policy.
    fn put(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Stop<S::Error>> {
        let retries = &mut self.stats.sink_retries;
        let sink = &mut *self.sink;
        with_retries(
            self.options.sink_retries,
            || *retries += 1,
            || sink.write_at(offset, bytes),
        )
        .map_err(|error| Stop::Sink { offset, error })
    }

    fn flush(&mut self) -> Result<(), Stop<S::Error>> {
        let retries = &mut self.stats.sink_retries;
        let sink = &mut *self.sink;
        with_retries(self.options.sink_retries, || *retries += 1, || sink.flush()).map_err(
            |error| Stop::Sink {
                offset: self.cursor,
                error,
            },
        )
    }
}
