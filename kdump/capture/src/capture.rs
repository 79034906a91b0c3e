//! One capture: from the hand-over to a dump on the device.

use core::fmt::Write;

use crashkit_dump_format::compressed::writer::{
    KdumpStats, LzoPages, PageEncoder, RawPages, ZlibPages, write_kdump,
};
use crashkit_dump_format::device::{BeginError, DeviceError, DeviceSink, Format};
use crashkit_dump_format::plan::{CpuState, DumpPlan, KernelImage, PhysRange};
use crashkit_dump_format::write::{DumpError, Progress, WriteOptions};
use crashkit_dump_format::{ControlState, PhysMemory, Registers, write_elf_dump};
use crashkit_kdump_handover::{DumpFormat, HandOver};
use crashkit_record_format::RecordView;

use crate::sector::{SectorDevice, SectorError, SectorSink, WINDOW};

/// The most CPUs a capture writes notes for.
pub const MAX_CPUS: usize = 256;
/// The most memory ranges after the reservation is cut out.
pub const MAX_RANGES: usize = 2 * crashkit_kdump_handover::block::MAX_RANGES;

/// The panicking CPU's control registers at the jump (the entry passes
/// them; see docs/kdump.md, "The entry contract").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryState {
    /// CR0.
    pub cr0: u64,
    /// CR3: the crashed kernel's page tables.
    pub cr3: u64,
    /// CR4 before the hand-over cleared PGE.
    pub cr4: u64,
}

/// What the capture kernel found and decided besides the block.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The checked block.
    pub block: &'a HandOver,
    /// The crash record's bytes.
    pub record: &'a [u8],
    /// VMCOREINFO text.
    pub vmcoreinfo: &'a [u8],
    /// The memory map (checked).
    pub memory_map: &'a [PhysRange],
    /// The panicking CPU's control registers.
    pub entry: EntryState,
    /// Ranges to leave out besides the record's exclusion slots (the
    /// in-place writer's own state; empty for a capture kernel).
    pub left_out: &'a [PhysRange],
    /// This dump's id.
    pub dump_id: [u8; 16],
    /// Seconds since 1970 (0: unknown).
    pub crash_time: u64,
}

/// How the capture went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Pages looked at.
    pub pages_total: u64,
    /// Pages written.
    pub pages_written: u64,
    /// Bytes of the dump file.
    pub data_len: u64,
    /// CPUs in the record (each has a note).
    pub cpus: usize,
    /// CPUs without saved registers (never answered the shootdown, or
    /// offline): their notes carry zeros; the record says why.
    pub cpus_without_registers: usize,
    /// Whether the record parsed (a dump is written either way).
    pub record_ok: bool,
    /// Whether the dump did not fit the device (marked incomplete).
    pub did_not_fit: bool,
}

/// Why a capture wrote no complete dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureError<E> {
    /// The device is too small for the layout's headers.
    DeviceTooSmall {
        /// Bytes.
        len: u64,
    },
    /// The device failed; the dump on it reads as torn.
    Device(SectorError<E>),
    /// The plan was refused (nothing written past the leading header).
    Plan(crashkit_dump_format::plan::PlanError),
    /// The writer ran out of program-header slots.
    SegmentTableFull,
}

/// The most exclusion ranges a capture passes to the writer; more are
/// merged (a merged range covers both, so more is left out, never less).
pub const MAX_EXCLUSIONS: usize = 64;

/// Ranges no byte of which may reach the device: the record's exclusion
/// slots (secrets, `docs/crash-record.md`) and `extra` (the in-place
/// writer's own state), sorted by start into `out`. Clamped to the
/// physical address space (a range from a damaged record that wraps is
/// cut at 2^52, never dropped); past [`MAX_EXCLUSIONS`], a range is merged
/// into its nearest neighbour.
pub fn exclusions_to_apply(
    record: Option<&RecordView<'_>>,
    extra: &[PhysRange],
    out: &mut [PhysRange; MAX_EXCLUSIONS],
) -> usize {
    /// x86_64's largest physical address width.
    const PHYS_LIMIT: u64 = 1 << 52;
    let mut count = 0usize;
    let recorded = record
        .into_iter()
        .flat_map(|view| view.exclusions())
        .map(|(start, len)| PhysRange::new(start, len));
    for range in recorded.chain(extra.iter().copied()) {
        if range.len == 0 || range.start >= PHYS_LIMIT {
            continue;
        }
        let end = range.start.saturating_add(range.len).min(PHYS_LIMIT);
        let range = PhysRange::new(range.start, end - range.start);
        insert_sorted(out, &mut count, range);
    }
    count
}

/// Insert `range` into the sorted `out[..count]`; when full, widen the
/// entry nearest to it to cover both.
fn insert_sorted(out: &mut [PhysRange; MAX_EXCLUSIONS], count: &mut usize, range: PhysRange) {
    let used = &mut out[..*count];
    let at = used.partition_point(|r| r.start <= range.start);
    if *count == MAX_EXCLUSIONS {
        // The neighbour before `at` (or the first), widened.
        let index = at.saturating_sub(1).min(MAX_EXCLUSIONS - 1);
        let near = out[index];
        let start = near.start.min(range.start);
        let end = near
            .start
            .saturating_add(near.len)
            .max(range.start.saturating_add(range.len));
        out[index] = PhysRange::new(start, end - start);
        return;
    }
    out.copy_within(at..*count, at + 1);
    out[at] = range;
    *count += 1;
}

/// The memory map with the reservation cut out, into `out`.
pub fn ranges_to_dump(
    memory_map: &[PhysRange],
    reservation: PhysRange,
    out: &mut [PhysRange; MAX_RANGES],
) -> usize {
    let mut count = 0;
    let cut_end = reservation.start.saturating_add(reservation.len);
    let mut push = |range: PhysRange| {
        if range.len > 0
            && let Some(slot) = out.get_mut(count)
        {
            *slot = range;
            count += 1;
        }
    };
    for range in memory_map {
        let end = range.start.saturating_add(range.len);
        if end <= reservation.start || range.start >= cut_end {
            push(*range);
            continue;
        }
        if range.start < reservation.start {
            push(PhysRange::new(range.start, reservation.start - range.start));
        }
        if end > cut_end {
            push(PhysRange::new(cut_end, end - cut_end));
        }
    }
    count
}

/// The CPU notes from the record: one per CPU slot but those the record
/// calls absent (no such CPU), registers and control state where the record
/// has them (zeros and "unknown" otherwise: unresponsive, or not yet reached
/// by the shootdown). The panicking CPU's CR0, CR3 and CR4 the record lacks
/// come from the entry (the values at the jump). Returns the count, how many
/// had no registers, and the panicking CPU.
fn cpu_states(
    record: &RecordView<'_>,
    entry: EntryState,
    out: &mut [CpuState; MAX_CPUS],
) -> (usize, usize, Option<u32>) {
    let owner = record.panic().owner_cpu();
    let mut count = 0;
    let mut without = 0;
    let present = record
        .cpus()
        .enumerate()
        .filter(|(_, slot)| slot.state().known() != Some(crashkit_record_format::CpuState::Absent));
    for ((index, slot), state) in present.zip(out.iter_mut()) {
        let mut frame = [0u64; Registers::NAMES.len()];
        match slot.saved_registers() {
            Some(saved) => {
                for (to, from) in frame.iter_mut().zip(saved) {
                    *to = from;
                }
            }
            None => without += 1,
        }
        let mut control = ControlState::unknown(index as u32);
        if let Some(saved) = slot.control() {
            fill_control(&mut control, &mut frame, &saved);
        }
        if owner == Some(index as u32) {
            control.cr0 = control.cr0.or(Some(entry.cr0));
            control.cr3 = control.cr3.or(Some(entry.cr3));
            control.cr4 = control.cr4.or(Some(entry.cr4));
        }
        *state = CpuState {
            registers: Registers::from_array(frame),
            control,
            pid: None,
        };
        count += 1;
    }
    (count, without, owner)
}

/// The record's control state into the note's fields and the `pr_reg`
/// slots past the record's 21 registers (`fs_base`, `gs_base`, `ds`, `es`,
/// `fs`, `gs`).
fn fill_control(
    control: &mut ControlState,
    frame: &mut [u64; Registers::NAMES.len()],
    saved: &crashkit_record_format::ControlView,
) {
    control.cr0 = saved.get("cr0");
    control.cr2 = saved.get("cr2");
    control.cr3 = saved.get("cr3");
    control.cr4 = saved.get("cr4");
    control.efer = saved.get("efer");
    control.fs_base = saved.get("fs_base");
    control.gs_base = saved.get("gs_base");
    control.kernel_gs_base = saved.get("kernel_gs_base");
    let mut set = |name: &str, value: Option<u64>| {
        if let (Some(value), Some(at)) = (value, Registers::NAMES.iter().position(|n| *n == name))
            && let Some(slot) = frame.get_mut(at)
        {
            *slot = value;
        }
    };
    set("fs_base", control.fs_base);
    set("gs_base", control.gs_base);
    if let Some(selectors) = saved.selectors {
        for (name, value) in ["ds", "es", "fs", "gs"].into_iter().zip(selectors) {
            set(name, Some(u64::from(value)));
        }
    }
}

/// Write the dump the block asks for onto `device`, in the dump-device
/// layout, reading memory through `memory`. `window` gathers the writes
/// (memory the device can reach). `console` gets progress lines.
#[allow(clippy::too_many_arguments)]
pub fn capture<M, D, C>(
    inputs: &Inputs<'_>,
    memory: &mut M,
    device: D,
    window: &mut [u8; WINDOW],
    scratch: &mut Scratch,
    console: &mut C,
) -> Result<Outcome, CaptureError<D::Error>>
where
    M: PhysMemory,
    D: SectorDevice,
    C: Write,
{
    let block = inputs.block;
    let (record, record_ok) = match RecordView::parse(inputs.record) {
        Ok(view) => (Some(view), true),
        Err(error) => {
            let _ = writeln!(
                console,
                "crashkit-capture: the crash record does not parse ({error}); dumping memory without CPU notes"
            );
            (None, false)
        }
    };
    // The panic line, on this console too: a kernel whose console
    // notifier runs after the dump step has not printed it yet.
    if let Some(view) = &record {
        let panic = view.panic();
        let message = panic.message();
        let _ = writeln!(
            console,
            "crashkit-capture: the crashed kernel's panic (cpu {}): {}{}",
            panic.owner_cpu().map_or(-1, i64::from),
            message.as_str().unwrap_or("(not UTF-8)"),
            if message.truncated() {
                " [truncated]"
            } else {
                ""
            }
        );
    }
    let (cpus, without, panic_cpu) = match &record {
        Some(view) => cpu_states(view, inputs.entry, &mut scratch.cpus),
        None => (0, 0, None),
    };
    let range_count = ranges_to_dump(inputs.memory_map, block.reservation, &mut scratch.ranges);
    let exclusion_count =
        exclusions_to_apply(record.as_ref(), inputs.left_out, &mut scratch.exclusions);
    let plan = DumpPlan {
        dump_id: inputs.dump_id,
        crash_time: inputs.crash_time,
        ranges: &scratch.ranges[..range_count],
        exclusions: &scratch.exclusions[..exclusion_count],
        direct_map: block.direct_map,
        kernel_image: block.kernel_image.map(|k| KernelImage {
            phys_start: k.phys,
            virt_start: k.virt,
            len: k.len,
        }),
        cpus: &scratch.cpus[..cpus],
        panic_cpu,
        vmcoreinfo: inputs.vmcoreinfo,
        crash_record: inputs.record,
        exclude_zero_pages: true,
        extra_segments: 256,
    };
    plan.validate().map_err(CaptureError::Plan)?;
    let format = match block.format {
        DumpFormat::Elf => Format::Elf,
        _ => Format::Kdump,
    };
    let sink = SectorSink::new(device, window);
    let device_len = sink.len();
    let pages: u64 = plan.ranges.iter().map(|r| r.len / 4096).sum();
    let _ = writeln!(
        console,
        "crashkit-capture: writing a {} dump of {} pages in {} ranges, {} CPUs, to a {} MiB device",
        match block.format {
            DumpFormat::KdumpLzo => "kdump-compressed (LZO1X)",
            DumpFormat::KdumpZlib => "kdump-compressed (zlib)",
            DumpFormat::KdumpRaw => "kdump-compressed (raw)",
            DumpFormat::Elf => "ELF",
        },
        pages,
        range_count,
        cpus,
        device_len >> 20
    );
    let mut sink = DeviceSink::begin(sink, device_len, format, inputs.dump_id, inputs.crash_time)
        .map_err(|error| match error {
        BeginError::TooSmall { .. } => CaptureError::DeviceTooSmall { len: device_len },
        BeginError::Device(error) => CaptureError::Device(error),
    })?;
    let mut last_tenth = 0;
    let mut progress = |p: &Progress| {
        let tenth = p.pages_done.saturating_mul(10) / p.pages_total.max(1);
        if tenth > last_tenth {
            last_tenth = tenth;
            let _ = writeln!(
                console,
                "crashkit-capture: {}% ({} of {} pages, {} KiB written)",
                tenth * 10,
                p.pages_done,
                p.pages_total,
                p.data_bytes >> 10
            );
        }
    };
    let options = WriteOptions::default();
    let mut keep_all = |_: u64| false;
    // The block's zlib level (1 to 9, checked when it was read); levels
    // above the page deflate's highest are its highest.
    scratch
        .zlib
        .set_level(u8::try_from(block.level).unwrap_or(u8::MAX));
    let written = match block.format {
        DumpFormat::Elf => write_elf_dump(
            &plan,
            memory,
            &mut sink,
            &mut keep_all,
            options,
            &mut progress,
        )
        .map(|stats| (stats.pages_total, stats.pages_written, stats.total_length)),
        DumpFormat::KdumpLzo => kdump(
            &plan,
            memory,
            &mut sink,
            &mut scratch.lzo,
            options,
            &mut progress,
        ),
        DumpFormat::KdumpZlib => kdump(
            &plan,
            memory,
            &mut sink,
            &mut scratch.zlib,
            options,
            &mut progress,
        ),
        DumpFormat::KdumpRaw => kdump(
            &plan,
            memory,
            &mut sink,
            &mut RawPages,
            options,
            &mut progress,
        ),
    };
    let (pages_total, pages_written, data_len) = match written {
        Ok(done) => done,
        Err(DumpError::Sink {
            error: DeviceError::Full { .. },
            stats,
            ..
        }) => (stats.pages_total, stats.pages_written, 0),
        Err(DumpError::Sink {
            error: DeviceError::Device(error),
            ..
        }) => return Err(CaptureError::Device(error)),
        Err(DumpError::Plan(error)) => return Err(CaptureError::Plan(error)),
        Err(DumpError::SegmentTableFull { .. }) => return Err(CaptureError::SegmentTableFull),
    };
    let did_not_fit = sink.did_not_fit();
    let (_, header) = sink.finish(data_len).map_err(CaptureError::Device)?;
    Ok(Outcome {
        pages_total,
        pages_written,
        data_len: header.data_len,
        cpus,
        cpus_without_registers: without,
        record_ok,
        did_not_fit,
    })
}

/// Run the kdump writer with `encoder`, answering as the ELF writer does.
fn kdump<S, M, E, P>(
    plan: &DumpPlan<'_>,
    memory: &mut M,
    sink: &mut S,
    encoder: &mut E,
    options: WriteOptions,
    progress: P,
) -> Result<(u64, u64, u64), DumpError<S::Error>>
where
    S: crashkit_dump_format::DumpSink,
    M: PhysMemory,
    E: PageEncoder,
    P: FnMut(&Progress),
{
    let mut keep_all = |_: u64| false;
    write_kdump(
        plan,
        memory,
        sink,
        &mut keep_all,
        encoder,
        options,
        progress,
    )
    .map(|stats: KdumpStats| {
        (
            stats.pages_total,
            stats.compressed_pages + stats.raw_pages,
            stats.total_length,
        )
    })
}

/// The capture's large state, kept out of the stack (a `static` in the
/// capture kernel, a `Box` on the host).
#[derive(Debug)]
pub struct Scratch {
    cpus: [CpuState; MAX_CPUS],
    ranges: [PhysRange; MAX_RANGES],
    exclusions: [PhysRange; MAX_EXCLUSIONS],
    lzo: LzoPages,
    zlib: ZlibPages,
}

impl Scratch {
    /// Empty state.
    pub const fn new() -> Self {
        Self {
            cpus: [CpuState {
                registers: Registers::from_array([0; Registers::NAMES.len()]),
                control: ControlState::unknown(0),
                pid: None,
            }; MAX_CPUS],
            ranges: [PhysRange::new(0, 0); MAX_RANGES],
            exclusions: [PhysRange::new(0, 0); MAX_EXCLUSIONS],
            lzo: LzoPages::new(),
            zlib: ZlibPages::new(),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}
