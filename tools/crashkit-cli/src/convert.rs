//! `crashkit convert DUMP OUT --to FORMAT [--codec CODEC] [--keep-zero]`:
//! any dump the reader opens, written again by the format library's writers
//! as an ELF vmcore, a kdump-compressed file or a flattened stream.
//!
//! What is carried over: every page the source has (a page it does not
//! have, excluded, lost or corrupt, is left out and counted), the CPUs'
//! registers and control state, VMCOREINFO, crashkit's crash record,
//! panicking CPU, crash time, direct map and kernel image where the source
//! says them. Zero pages are left out (ELF: zero tails; kdump: one shared
//! page) unless `--keep-zero`. The output is a new dump with its own id and
//! completion marker. The output file must not exist.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;

use crashkit_dump_format::compressed::flat_writer::{FlatSink, StreamSink};
use crashkit_dump_format::compressed::writer::{
    KdumpStats, LzoPages, PageEncoder, RawPages, SnappyPages, ZlibPages, ZstdPages, write_kdump,
};
use crashkit_dump_format::plan::{CpuState, DumpPlan, KernelImage};
use crashkit_dump_format::read::Cpu;
use crashkit_dump_format::sink::Coalescing;
use crashkit_dump_format::write::{Progress, WriteOptions};
use crashkit_dump_format::{DumpSink, PAGE_SIZE, PhysMemory, PhysRange, write_elf_dump};

use crate::open::Dump;

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An ELF vmcore.
    Elf,
    /// makedumpfile's kdump-compressed format.
    Kdump,
    /// The kdump-compressed format as a flattened stream.
    Flattened,
}

/// The page codec of a kdump-compressed output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// Pages stored as they are.
    Raw,
    /// zlib (makedumpfile `-c`), crashkit's page deflate.
    Zlib,
    /// LZO1X (makedumpfile `-l`).
    Lzo,
    /// snappy (makedumpfile `-p`).
    Snappy,
    /// zstd (makedumpfile `-z`).
    Zstd,
}

/// Physical memory read through the opened source dump.
struct Source<'d, 'a> {
    dump: &'d Dump<'a>,
    page: Box<[u8; PAGE_SIZE as usize]>,
}

impl PhysMemory for Source<'_, '_> {
    fn page(&mut self, phys: u64) -> Option<&[u8; PAGE_SIZE as usize]> {
        let read = match self.dump {
            Dump::Elf(elf) => elf.read_phys(phys, &mut self.page[..]).is_ok(),
            Dump::Kdump(_) => self
                .dump
                .part_for(phys / PAGE_SIZE)
                .is_some_and(|p| p.read_page(phys / PAGE_SIZE, &mut self.page[..]).is_ok()),
            Dump::Ram(_) => crate::rd::read_exact(self.dump, phys, PAGE_SIZE as usize)
                .map(|bytes| self.page.copy_from_slice(&bytes))
                .is_ok(),
        };
        read.then_some(&*self.page)
    }
}

/// A file written at offsets.
struct FileSink(File);

impl DumpSink for FileSink {
    type Error = std::io::Error;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }
}

/// A file written in order (the flattened stream).
struct StreamFile(BufWriter<File>);

impl StreamSink for StreamFile {
    type Error = std::io::Error;

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }
}

/// What the source says about the crash, owned so the plan can borrow it.
struct Facts {
    ranges: Vec<PhysRange>,
    cpus: Vec<CpuState>,
    vmcoreinfo: Vec<u8>,
    crash_record: Vec<u8>,
    panic_cpu: Option<u32>,
    crash_time: u64,
    direct_map: Option<u64>,
    kernel_image: Option<KernelImage>,
}

fn facts(dump: &Dump<'_>) -> Facts {
    let (cpus, vmcoreinfo, crashkit, ranges, timestamp): (&[Cpu], _, _, Vec<PhysRange>, u64) =
        match dump {
            Dump::Elf(elf) => (
                elf.cpus(),
                elf.vmcoreinfo().map(text),
                elf.crashkit().cloned(),
                elf.segments()
                    .iter()
                    .map(|s| PhysRange::new(s.paddr, s.memsz))
                    .collect(),
                0,
            ),
            Dump::Kdump(parts) => (
                parts[0].cpus(),
                parts[0].vmcoreinfo().map(text),
                parts[0].crashkit(),
                parts[0].memory_runs(),
                u64::try_from(parts[0].header().timestamp.0).unwrap_or(0),
            ),
            Dump::Ram(bytes) => (
                &[],
                None,
                None,
                vec![PhysRange::new(0, bytes.len() as u64)],
                0,
            ),
        };
    let identity = crashkit.as_ref().map(|c| c.identity);
    let crash_time = identity
        .map(|i| i.crash_time)
        .filter(|&t| t > 0)
        .unwrap_or(timestamp);
    Facts {
        ranges: pages(ranges),
        cpus: cpus
            .iter()
            .enumerate()
            .filter_map(|(index, cpu)| cpu.writer_state(index as u32))
            .collect(),
        vmcoreinfo: vmcoreinfo.unwrap_or_default(),
        crash_record: crashkit
            .as_ref()
            .and_then(|c| c.crash_record.map(<[u8]>::to_vec))
            .unwrap_or_default(),
        panic_cpu: identity.and_then(|i| i.panic_cpu),
        crash_time,
        direct_map: identity.and_then(|i| i.direct_map),
        kernel_image: identity
            .and_then(|i| i.kernel_image)
            .map(|(phys_start, virt_start, len)| KernelImage {
                phys_start,
                virt_start,
                len,
            }),
    }
}

fn text(info: crashkit_dump_format::vmcoreinfo::VmcoreInfo<'_>) -> Vec<u8> {
    info.entries()
        .flat_map(|(key, value)| format!("{key}={value}\n").into_bytes())
        .collect()
}

/// `ranges` rounded out to whole pages, sorted and merged (the writers'
/// plan wants page-aligned, ordered, disjoint ranges).
fn pages(mut ranges: Vec<PhysRange>) -> Vec<PhysRange> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<PhysRange> = Vec::new();
    for range in ranges {
        if range.len == 0 {
            continue;
        }
        let start = range.start & !(PAGE_SIZE - 1);
        let end = range
            .start
            .saturating_add(range.len)
            .saturating_add(PAGE_SIZE - 1)
            & !(PAGE_SIZE - 1);
        match merged.last_mut() {
            Some(last) if last.start + last.len >= start => {
                last.len = last.len.max(end - last.start);
            }
            _ => merged.push(PhysRange::new(start, end - start)),
        }
    }
    merged
}

/// What a conversion wrote.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    /// Pages of the source's memory looked at.
    pub pages_total: u64,
    /// Pages written (zero pages shared or left out count here for kdump).
    pub pages_written: u64,
    /// Pages left out: not in the source (excluded, lost, corrupt).
    pub pages_left_out: u64,
    /// The output's length.
    pub bytes: u64,
}

/// Convert `dump` into `out`; `progress(done, total)` now and then.
pub fn convert(
    dump: &Dump<'_>,
    out: &Path,
    format: Format,
    codec: Codec,
    keep_zero: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Written> {
    let facts = facts(dump);
    let mut dump_id = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut r| std::io::Read::read_exact(&mut r, &mut dump_id))
        .context("reading a new dump id from /dev/urandom")?;
    let plan = DumpPlan {
        dump_id,
        crash_time: facts.crash_time,
        ranges: &facts.ranges,
        exclusions: &[],
        direct_map: facts.direct_map,
        kernel_image: facts.kernel_image,
        cpus: &facts.cpus,
        panic_cpu: facts.panic_cpu,
        vmcoreinfo: &facts.vmcoreinfo,
        crash_record: &facts.crash_record,
        exclude_zero_pages: !keep_zero,
        // Room to split segments at every run of left-out pages.
        extra_segments: 65_536,
    };
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    let mut memory = Source {
        dump,
        page: Box::new([0; PAGE_SIZE as usize]),
    };
    let options = WriteOptions {
        progress_pages: 4096,
        ..WriteOptions::default()
    };
    let report = |p: &Progress| progress(p.pages_done, p.pages_total);
    let mut encoder: Box<dyn PageEncoder> = match codec {
        Codec::Raw => Box::new(RawPages),
        Codec::Zlib => Box::new(ZlibPages::new()),
        Codec::Lzo => Box::new(LzoPages::default()),
        Codec::Snappy => Box::new(SnappyPages::default()),
        Codec::Zstd => Box::new(ZstdPages),
    };
    let kdump_written = |stats: KdumpStats| Written {
        pages_total: stats.pages_total,
        pages_written: stats.pages_dumpable,
        pages_left_out: stats.excluded_pages,
        bytes: stats.total_length,
    };
    let written = match format {
        Format::Elf => {
            let mut sink: Box<Coalescing<FileSink, { 1 << 20 }>> =
                Box::new(Coalescing::new(FileSink(file)));
            let stats = write_elf_dump(
                &plan,
                &mut memory,
                &mut *sink,
                &mut |_| false,
                options,
                report,
            )
            .with_context(|| format!("writing {}", out.display()))?;
            Written {
                pages_total: stats.pages_total,
                pages_written: stats.pages_written,
                pages_left_out: stats.unreadable_pages,
                bytes: stats.total_length,
            }
        }
        Format::Kdump => {
            let mut sink: Box<Coalescing<FileSink, { 1 << 20 }>> =
                Box::new(Coalescing::new(FileSink(file)));
            let stats = write_kdump(
                &plan,
                &mut memory,
                &mut *sink,
                &mut |_| false,
                &mut encoder,
                options,
                report,
            )
            .with_context(|| format!("writing {}", out.display()))?;
            kdump_written(stats)
        }
        Format::Flattened => {
            let mut sink = FlatSink::new(StreamFile(BufWriter::with_capacity(1 << 20, file)));
            let stats = write_kdump(
                &plan,
                &mut memory,
                &mut sink,
                &mut |_| false,
                &mut encoder,
                options,
                report,
            )
            .with_context(|| format!("writing {}", out.display()))?;
            let mut stream = sink
                .finish()
                .with_context(|| format!("finishing {}", out.display()))?;
            stream
                .0
                .flush()
                .with_context(|| format!("writing {}", out.display()))?;
            let mut written = kdump_written(stats);
            written.bytes = std::fs::metadata(out).map_or(written.bytes, |m| m.len());
            written
        }
    };
    Ok(written)
}

/// The text summary.
pub fn render(out: &Path, format: Format, written: &Written) -> String {
    format!(
        "wrote {} ({}): {} pages looked at, {} written, {} not in the source and left out; {} bytes\n",
        out.display(),
        match format {
            Format::Elf => "ELF vmcore",
            Format::Kdump => "kdump-compressed",
            Format::Flattened => "flattened kdump-compressed",
        },
        written.pages_total,
        written.pages_written,
        written.pages_left_out,
        written.bytes
    )
}
