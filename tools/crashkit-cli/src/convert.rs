//! `crashkit convert DUMP OUT --to FORMAT [--codec CODEC] [--keep-zero]`:
//! any dump the reader opens, written again by the format library's writers
//! as an ELF vmcore, a kdump-compressed file or a flattened stream.
//!
//! What is carried over: every page the source has (a page it does not
//! have, excluded, lost or corrupt, is left out and counted), the CPUs'
//! registers and control state, VMCOREINFO, crashkit's crash record,
//! panicking CPU, crash time, direct map and kernel image where the source
//! says them (another producer's ELF says them in its segments' virtual
//! addresses), the CPUs' PIDs. Zero pages: an ELF keeps them as holes of a
//! sparse file (`--zero-tails` leaves them out as zero tails), a kdump file
//! shares one; `--keep-zero` writes them. The output is a new dump with its
//! own id and completion marker. The output file must not exist.

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
use crashkit_dump_format::read::{Cpu, Segment};
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

/// The page codec of a kdump-compressed output (`--codec`: `raw`, `zlib`,
/// `zlib:LEVEL`, `lzo`, `snappy`, `zstd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Pages stored as they are.
    Raw,
    /// zlib (makedumpfile `-c`), crashkit's page deflate at a level (1
    /// fastest, the default, to [`ZlibPages::MAX_LEVEL`] smallest).
    Zlib(u8),
    /// LZO1X (makedumpfile `-l`).
    Lzo,
    /// snappy (makedumpfile `-p`).
    Snappy,
    /// zstd (makedumpfile `-z`).
    Zstd,
}

impl std::str::FromStr for Codec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "raw" => Self::Raw,
            "zlib" => Self::Zlib(ZlibPages::DEFAULT_LEVEL),
            "lzo" => Self::Lzo,
            "snappy" => Self::Snappy,
            "zstd" => Self::Zstd,
            _ => {
                let level = text.strip_prefix("zlib:").ok_or_else(|| {
                    format!(
                        "{text:?} is no codec (raw, zlib, zlib:1 to zlib:{}, lzo, snappy, zstd)",
                        ZlibPages::MAX_LEVEL
                    )
                })?;
                match level.parse::<u8>() {
                    Ok(level) if (1..=ZlibPages::MAX_LEVEL).contains(&level) => Self::Zlib(level),
                    _ => {
                        return Err(format!(
                            "zlib's level is 1 (fastest) to {} (smallest), not {level:?}",
                            ZlibPages::MAX_LEVEL
                        ));
                    }
                }
            }
        })
    }
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

/// A new file written at offsets. `sparse`: a whole page of zeros that
/// lands past everything written so far is not written (the file is new,
/// so those bytes read as zeros already, and on most filesystems take no
/// space); a page written before is always written again.
struct FileSink {
    file: File,
    sparse: bool,
    /// One past the last byte written or skipped.
    frontier: u64,
}

impl FileSink {
    fn new(file: File, sparse: bool) -> Self {
        Self {
            file,
            sparse,
            frontier: 0,
        }
    }
}

impl DumpSink for FileSink {
    type Error = std::io::Error;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let end = offset.saturating_add(bytes.len() as u64);
        if !self.sparse {
            self.frontier = self.frontier.max(end);
            return self.file.write_all_at(bytes, offset);
        }
        // Cut at page boundaries of the file; write runs of pages that
        // must be written, skip fresh zero pages.
        let mut at = 0usize;
        let mut run_start = 0usize;
        while at < bytes.len() {
            let here = offset + at as u64;
            let page_end = (here / PAGE_SIZE + 1) * PAGE_SIZE;
            let next = at + (page_end - here).min((bytes.len() - at) as u64) as usize;
            let chunk = &bytes[at..next];
            let skip = here.is_multiple_of(PAGE_SIZE)
                && chunk.len() as u64 == PAGE_SIZE
                && here >= self.frontier
                && chunk.iter().all(|&b| b == 0);
            if skip {
                if run_start < at {
                    self.file
                        .write_all_at(&bytes[run_start..at], offset + run_start as u64)?;
                }
                run_start = next;
            }
            at = next;
        }
        if run_start < bytes.len() {
            self.file
                .write_all_at(&bytes[run_start..], offset + run_start as u64)?;
        }
        self.frontier = self.frontier.max(end);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Skipped zero pages at the end still count toward the length.
        if self.file.metadata()?.len() < self.frontier {
            self.file.set_len(self.frontier)?;
        }
        self.file.sync_data()
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
                elf.vmcoreinfo(),
                elf.crashkit().cloned(),
                elf.segments()
                    .iter()
                    .map(|s| PhysRange::new(s.paddr, s.memsz))
                    .collect(),
                0,
            ),
            Dump::Kdump(parts) => (
                parts[0].cpus(),
                parts[0].vmcoreinfo(),
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
    // As `info` reads it: crashkit's identity, the kdump header's
    // timestamp, VMCOREINFO's CRASHTIME (Linux's, in /proc/vmcore).
    let crash_time = identity
        .map(|i| i.crash_time)
        .filter(|&t| t > 0)
        .or(Some(timestamp).filter(|&t| t > 0))
        .or_else(|| vmcoreinfo.as_ref().and_then(|v| v.number("CRASHTIME")))
        .unwrap_or(0);
    // Virtual addresses: crashkit's identity says them; another producer's
    // ELF says them in its segments.
    let (direct_map, kernel_image) = match (identity, dump) {
        (Some(i), _) => (
            i.direct_map,
            i.kernel_image
                .map(|(phys_start, virt_start, len)| KernelImage {
                    phys_start,
                    virt_start,
                    len,
                }),
        ),
        (None, Dump::Elf(elf)) => virtual_layout(elf.segments()),
        (None, _) => (None, None),
    };
    Facts {
        ranges: pages(ranges),
        cpus: cpus
            .iter()
            .enumerate()
            .filter_map(|(index, cpu)| cpu.writer_state(index as u32))
            .collect(),
        vmcoreinfo: vmcoreinfo.map(text).unwrap_or_default(),
        crash_record: crashkit
            .as_ref()
            .and_then(|c| c.crash_record.map(<[u8]>::to_vec))
            .unwrap_or_default(),
        panic_cpu: identity.and_then(|i| i.panic_cpu),
        crash_time,
        direct_map,
        kernel_image,
    }
}

/// The direct-map offset and kernel image of another producer's ELF, from
/// its segments' `p_vaddr - p_paddr`: the offset most bytes share is the
/// direct map (Linux's page offset), and one page-aligned segment at another
/// offset is the kernel image (Linux's kernel-text segment at
/// `__START_KERNEL_map`). Segments with `p_vaddr` 0 say nothing, and an
/// offset of 0 is no direct map: QEMU writes `p_vaddr` = `p_paddr` when it
/// knows no virtual addresses, and makedumpfile, taking those for kernel
/// addresses, cannot find the kernel's page tables (`p_vaddr` 0 sends it to
/// VMCOREINFO's `phys_base`). More than one other offset keeps the direct
/// map only: the writers have one kernel image.
fn virtual_layout(segments: &[Segment]) -> (Option<u64>, Option<KernelImage>) {
    let mapped: Vec<(u64, &Segment)> = segments
        .iter()
        .filter(|s| s.vaddr != 0 && s.memsz > 0)
        .map(|s| (s.vaddr.wrapping_sub(s.paddr), s))
        .collect();
    let mut bytes_at: Vec<(u64, u64)> = Vec::new();
    for &(delta, segment) in &mapped {
        match bytes_at.iter_mut().find(|(d, _)| *d == delta) {
            Some((_, bytes)) => *bytes = bytes.saturating_add(segment.memsz),
            None => bytes_at.push((delta, segment.memsz)),
        }
    }
    let Some(&(direct, _)) = bytes_at.iter().max_by_key(|(_, bytes)| *bytes) else {
        return (None, None);
    };
    let others: Vec<&Segment> = mapped
        .iter()
        .filter(|(delta, _)| *delta != direct)
        .map(|(_, s)| *s)
        .collect();
    let image = match others.as_slice() {
        [one] if one.paddr % PAGE_SIZE == 0 && one.vaddr % PAGE_SIZE == 0 => Some(KernelImage {
            phys_start: one.paddr,
            virt_start: one.vaddr,
            len: one.memsz.div_ceil(PAGE_SIZE) * PAGE_SIZE,
        }),
        _ => None,
    };
    (Some(direct).filter(|&offset| offset != 0), image)
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

/// How an output holds zero pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroPages {
    /// ELF: in the segments, as holes of a sparse file (every reader reads
    /// zeros; they take no disk space); kdump: one shared page.
    Holes,
    /// ELF: left out of the file as zero tails (`p_memsz > p_filesz`, as
    /// crashkit's crash path writes them); kdump: one shared page.
    Tails,
    /// Written as they are.
    Written,
}

/// Convert `dump` into `out`; `progress(done, total)` now and then.
pub fn convert(
    dump: &Dump<'_>,
    out: &Path,
    format: Format,
    codec: Codec,
    zero: ZeroPages,
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
        // An ELF's zero tails are read wrongly by makedumpfile 1.7 (its
        // mmap path takes the file bytes after a segment's data for its
        // tail) and as no data by libkdumpfile, so by default an ELF keeps
        // its zero pages, as holes; a kdump file shares one zero page.
        exclude_zero_pages: !matches!(
            (format, zero),
            (_, ZeroPages::Written) | (Format::Elf, ZeroPages::Holes)
        ),
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
        Codec::Zlib(level) => Box::new(ZlibPages::with_level(level)),
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
            let sparse = zero == ZeroPages::Holes;
            let mut sink: Box<Coalescing<FileSink, { 1 << 20 }>> =
                Box::new(Coalescing::new(FileSink::new(file, sparse)));
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
                Box::new(Coalescing::new(FileSink::new(file, false)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_and_zlib_levels_parse_and_bad_ones_say_why() {
        assert_eq!("lzo".parse(), Ok(Codec::Lzo));
        assert_eq!("zlib".parse(), Ok(Codec::Zlib(ZlibPages::DEFAULT_LEVEL)));
        for level in 1..=ZlibPages::MAX_LEVEL {
            assert_eq!(format!("zlib:{level}").parse(), Ok(Codec::Zlib(level)));
        }
        let too_high = format!("zlib:{}", ZlibPages::MAX_LEVEL + 1);
        for bad in ["zlib:0", too_high.as_str(), "zlib:", "zlib:x", "gzip"] {
            let why = bad.parse::<Codec>().unwrap_err();
            assert!(
                why.contains("zlib") || why.contains("codec"),
                "{bad}: {why}"
            );
        }
    }

    fn segment(paddr: u64, vaddr: u64, memsz: u64) -> Segment {
        Segment {
            index: 0,
            paddr,
            vaddr,
            offset: 0x1000,
            filesz: memsz,
            memsz,
            flags: 7,
            in_file: memsz,
        }
    }

    /// The three program headers of the genuine `/proc/vmcore` in the
    /// corpus (readelf): kernel text, then two direct-map ranges.
    #[test]
    fn linux_segments_give_the_direct_map_and_the_kernel_image() {
        let segments = [
            segment(0x15c0_0000, 0xffff_ffff_9ec0_0000, 0x343_0000),
            segment(0x10_0000, 0xffff_8a25_c010_0000, 0xcf0_0000),
            segment(0x1500_0000, 0xffff_8a25_d500_0000, 0xafd_c000),
        ];
        assert_eq!(
            virtual_layout(&segments),
            (
                Some(0xffff_8a25_c000_0000),
                Some(KernelImage {
                    phys_start: 0x15c0_0000,
                    virt_start: 0xffff_ffff_9ec0_0000,
                    len: 0x343_0000,
                })
            )
        );
    }

    /// QEMU's ELF (readelf of the corpus's): `p_vaddr` = `p_paddr`, or 0.
    #[test]
    fn qemu_identity_addresses_are_no_virtual_addresses() {
        let segments = [
            segment(0, 0, 0xa_0000),
            segment(0xc_0000, 0xc_0000, 0xff4_0000),
            segment(0xfd00_0000, 0xfd00_0000, 0x100_0000),
        ];
        assert_eq!(virtual_layout(&segments), (None, None));
        assert_eq!(virtual_layout(&[segment(0, 0, 0x1000)]), (None, None));
    }

    /// Two segments at two other offsets: which is the kernel is unknown,
    /// so only the direct map is kept.
    #[test]
    fn more_than_one_odd_segment_keeps_only_the_direct_map() {
        let segments = [
            segment(0x10_0000, 0xffff_8880_0010_0000, 0x1000_0000),
            segment(0x200_0000, 0xffff_ffff_8100_0000, 0x10_0000),
            segment(0x300_0000, 0xffff_ffff_c000_0000, 0x10_0000),
        ];
        assert_eq!(
            virtual_layout(&segments),
            (Some(0xffff_8880_0000_0000), None)
        );
    }

    /// The sparse sink skips only fresh zero pages: a zero page over bytes
    /// written before is written, and skipped pages at the end still make
    /// the file long enough.
    #[test]
    fn the_sparse_sink_skips_only_fresh_zero_pages() {
        let dir = std::env::temp_dir().join(format!("crashkit-sparse-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&dir)
            .unwrap();
        let mut sink = FileSink::new(file, true);
        let page = PAGE_SIZE as usize;
        let mut bytes = vec![0u8; 4 * page];
        bytes[page..2 * page].fill(0xaa);
        sink.write_at(0, &bytes).unwrap();
        // Zeros over the page of 0xaa: must land.
        sink.write_at(PAGE_SIZE, &vec![0u8; page]).unwrap();
        // A fresh zero page past the end: skipped, but the length counts.
        sink.write_at(6 * PAGE_SIZE, &vec![0u8; page]).unwrap();
        sink.flush().unwrap();
        let written = std::fs::read(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(written.len(), 7 * page);
        assert!(written.iter().all(|&b| b == 0));
    }
}
