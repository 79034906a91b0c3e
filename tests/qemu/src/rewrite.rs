//! A crashkit ELF vmcore written from another producer's dump: memory read
//! through crashkit's reader, CPUs from QEMU's notes (registers replaced
//! where the caller knows better, e.g. from a crash record), written by
//! crashkit's writer. Both corpora use it: the test kernel's (to check
//! crashkit's dumps with gdb and the kernel ELF) and the Linux guest's (to
//! give makedumpfile an ELF it reads: it cannot read QEMU 7.2's).

use std::os::unix::fs::FileExt;
use std::path::Path;

use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::plan::{CpuState, DumpPlan, KernelImage};
use crashkit_dump_format::write::{DumpStats, WriteOptions};
use crashkit_dump_format::{DumpSink, PAGE_SIZE, PhysMemory, PhysRange, Registers, write_elf_dump};

/// Rewrites the page at a physical address in place.
pub type PageFill<'a> = dyn Fn(u64, &mut [u8; PAGE_SIZE as usize]) + 'a;

/// What the new dump gets besides the source's memory and CPUs.
#[allow(missing_debug_implementations)] // it holds closures
pub struct Rewrite<'a> {
    /// VMCOREINFO text.
    pub vmcoreinfo: &'a [u8],
    /// `virtual = physical + this` for the memory ranges.
    pub direct_map: Option<u64>,
    /// The kernel image at its link addresses.
    pub kernel_image: Option<KernelImage>,
    /// The crash record's bytes (empty: none).
    pub crash_record: &'a [u8],
    /// The panicking CPU.
    pub panic_cpu: Option<u32>,
    /// Seconds since 1970.
    pub crash_time: u64,
    /// Leave zero pages out (`p_memsz > p_filesz` tails). makedumpfile
    /// 1.7.2 cannot take such an ELF as input ("Can't convert physaddr to
    /// an offset"): it expects every page in the file, as /proc/vmcore has.
    pub exclude_zero_pages: bool,
    /// CPU `index`'s registers from the source's live ones.
    pub registers: &'a dyn Fn(usize, Registers) -> Registers,
    /// Keep only memory below this physical address (`None`: all of the
    /// source's segments; the benchmark image keeps guest RAM and drops
    /// QEMU's framebuffer and BIOS ROM).
    pub below: Option<u64>,
    /// Rewrite each page read from the source before it is written (the
    /// benchmark image fills the guest's zero pages with its mix).
    pub fill: Option<&'a PageFill<'a>>,
}

/// Seconds since 1970, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Physical memory read through an opened dump.
struct DumpMemory<'d, 'a> {
    dump: &'d ElfDump<'a>,
    page: Box<[u8; PAGE_SIZE as usize]>,
    fill: Option<&'d PageFill<'d>>,
}

impl PhysMemory for DumpMemory<'_, '_> {
    fn page(&mut self, phys: u64) -> Option<&[u8; PAGE_SIZE as usize]> {
        self.dump.read_phys(phys, &mut self.page[..]).ok()?;
        if let Some(fill) = self.fill {
            fill(phys, &mut self.page);
        }
        Some(&self.page)
    }
}

/// A file written at offsets.
struct FileSink(std::fs::File);

impl DumpSink for FileSink {
    type Error = std::io::Error;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }
}

/// Write `source` as a crashkit ELF vmcore at `out`.
pub fn write(source: &ElfDump<'_>, rewrite: &Rewrite<'_>, out: &Path) -> Result<DumpStats, String> {
    // Memory: the source's segments, page aligned, merged.
    let mut ranges: Vec<PhysRange> = Vec::new();
    let mut segments: Vec<_> = source.segments().to_vec();
    segments.sort_by_key(|s| s.paddr);
    let below = rewrite.below.unwrap_or(u64::MAX);
    for segment in segments {
        let start = segment.paddr & !(PAGE_SIZE - 1);
        let end = (segment.paddr + segment.memsz).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let end = end.min(below);
        if start >= end {
            continue;
        }
        match ranges.last_mut() {
            Some(last) if last.start + last.len >= start => {
                last.len = last.len.max(end - last.start);
            }
            _ => ranges.push(PhysRange::new(start, end - start)),
        }
    }
    let cpus = cpu_states(source, rewrite.registers)?;
    let mut dump_id = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut dump_id))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let plan = DumpPlan {
        dump_id,
        crash_time: rewrite.crash_time,
        ranges: &ranges,
        exclusions: &[],
        direct_map: rewrite.direct_map,
        kernel_image: rewrite.kernel_image,
        cpus: &cpus,
        panic_cpu: rewrite.panic_cpu,
        vmcoreinfo: rewrite.vmcoreinfo,
        crash_record: rewrite.crash_record,
        exclude_zero_pages: rewrite.exclude_zero_pages,
        extra_segments: 16384,
    };
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut memory = DumpMemory {
        dump: source,
        page: Box::new([0; PAGE_SIZE as usize]),
        fill: rewrite.fill,
    };
    write_elf_dump(
        &plan,
        &mut memory,
        &mut FileSink(file),
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .map_err(|e| format!("writing {}: {}", out.display(), crate::causes(&e)))
}

/// The CPUs of `source` (QEMU's notes) as the writers take them, with
/// `registers` choosing each CPU's registers from its live ones.
pub fn cpu_states(
    source: &ElfDump<'_>,
    registers: &dyn Fn(usize, Registers) -> Registers,
) -> Result<Vec<CpuState>, String> {
    let mut cpus = Vec::new();
    for (index, cpu) in source.cpus().iter().enumerate() {
        if cpu.qemu.is_none() {
            return Err(format!("cpu {index}: no QEMU CPU state"));
        }
        // QEMU's notes come in CPU-index order, which on q35 is APIC-ID
        // order: the test kernel numbers CPUs from the MADT, which lists
        // them the same way.
        let mut state = cpu
            .writer_state(index as u32)
            .ok_or(format!("cpu {index}: the source has i386 registers"))?;
        state.registers = registers(index, state.registers);
        cpus.push(state);
    }
    Ok(cpus)
}
