//! `bench-kdump CACHE [--rounds N] [--image NAME]... [--contender NAME]...`:
//! crashkit's kdump-compressed writers against makedumpfile on a set of
//! 1 GiB memory images, one core, one run (issues 11 and 31).
//!
//! The set ([`image::SET`], made once and kept in `CACHE/kdump-bench/`):
//! one crashed Linux guest's real memory, alone and with its zero pages
//! filled by one kind of page at a time (kernel modules, executables and
//! libraries, text, slab-like objects, random, sparse), and two mixes.
//! Real files come from pinned Debian packages ([`sources`]).
//!
//! Measured (`measure`), image after image, after pinning this process
//! (and so its children) to one core: round after round, each contender
//! once per round, in the same order, so crashkit and makedumpfile run
//! interleaved:
//! - crashkit: open and map the image, write a kdump-compressed dump of it
//!   (zero pages excluded: dump level 1) to a file through
//!   [`Coalescing`], close. The codecs are those a capture kernel can use:
//!   each builds for `x86_64-unknown-none` in `crashkit-dump-format`
//!   (zlib from crashkit's page deflate at its levels, LZO1X and snappy
//!   with no allocator; zstd (ruzstd) and zlib through miniz_oxide, the
//!   reference row, with `alloc`);
//! - makedumpfile `-c -d 1` (zlib) and `-l -d 1` (LZO1X-1), whole-process
//!   wall time.
//!
//! The outputs go to `/dev/shm` (memory), so the disk is not measured.
//! Round 0's outputs are read back, every page: all of them by crashkit's
//! kdump reader and crashkit's also by libkdumpfile
//! (`libkdumpfile_pages.py`), each compared with the image; and every
//! contender must keep the same number of pages: the contenders did the
//! same work. The report is a Markdown table per image (medians, spread,
//! throughput, size, the ratios the issues set targets for) and a summary
//! of the targets over the set.

pub mod image;
pub mod sources;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crashkit_dump_format::compressed::writer::{
    KdumpStats, LzoPages, MinizZlibPages, PageEncoder, RawPages, SnappyPages, ZlibPages, ZstdPages,
    write_kdump,
};
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::plan::{CpuState, DumpPlan};
use crashkit_dump_format::read::PageState;
use crashkit_dump_format::sink::Coalescing;
use crashkit_dump_format::write::WriteOptions;
use crashkit_dump_format::{DumpSink, KdumpDump, PAGE_SIZE, PhysMemory, PhysRange};

use crashkit_qemu::rewrite;

pub use image::{Recipe, Rng, SET};

/// The coalescing buffer of crashkit's file sink.
const SINK_BUFFER: usize = 1 << 20;

/// The image the other benchmarks make their dumps from (issue 11's mix:
/// kernel memory heavy); its path and description.
pub fn image(cache: &Path) -> Result<(PathBuf, String), String> {
    image::image(cache, &SET[7])
}

/// The benchmark: each image of the set `images` names (all when empty;
/// made if missing), then the measurement; the report.
pub fn run(
    cache: &Path,
    rounds: usize,
    images: &[String],
    only: &[String],
) -> Result<String, String> {
    let cache = std::path::absolute(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let contenders: Vec<Contender> = if only.is_empty() {
        Contender::DEFAULT.to_vec()
    } else {
        only.iter()
            .map(|key| {
                Contender::parse(key).ok_or_else(|| {
                    format!(
                        "no contender {key:?} (there are: makedumpfile, makedumpfile-c, \
                         makedumpfile-l, raw, zlib, zlib:1 to zlib:{}, miniz, lzo, snappy, zstd)",
                        ZlibPages::MAX_LEVEL
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    let recipes: Vec<&Recipe> = if images.is_empty() {
        SET.iter().collect()
    } else {
        images
            .iter()
            .map(|name| {
                image::recipe(name).ok_or_else(|| {
                    let names: Vec<_> = SET.iter().map(|r| r.name).collect();
                    format!("no image {name:?} (there are: {})", names.join(", "))
                })
            })
            .collect::<Result<_, _>>()?
    };
    // Every image first (the making is not measured).
    let mut made = Vec::new();
    for recipe in &recipes {
        made.push(image::image(&cache, recipe)?);
    }
    pin_to_one_core()?;
    let mut sections = String::new();
    let mut results = Vec::new();
    for ((path, mix), recipe) in made.iter().zip(&recipes) {
        println!("kdump bench: image {}", recipe.name);
        let measured = measure(path, rounds, &contenders)?;
        sections.push_str(&format!("### {}\n\n{mix}\n", recipe.name));
        sections.push_str(&table(&contenders, &measured, rounds));
        sections.push('\n');
        results.push((recipe.name, measured));
    }
    let mut report = summary(&contenders, &results, rounds);
    report.push('\n');
    report.push_str(&sections);
    Ok(report)
}

/// Run this process, and the processes it starts, on one core (the last
/// one: the first takes most interrupts).
pub fn pin_to_one_core() -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: `set` is a plain bit set owned by this frame; CPU_ZERO and
    // CPU_SET only write inside it, and sched_setaffinity reads
    // `size_of::<cpu_set_t>()` bytes of it. Nothing else touches it.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cores - 1, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result != 0 {
        return Err(format!(
            "pinning to core {}: {}",
            cores - 1,
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// One contender of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Crashkit(Codec),
    /// makedumpfile with this flag ("" for none).
    Makedumpfile(&'static str),
}

/// crashkit's codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Raw,
    /// crashkit's page deflate at a level.
    Zlib(u8),
    Miniz,
    Lzo,
    Snappy,
    Zstd,
}

impl Contender {
    /// What runs without `--contender`: the two codecs with targets beside
    /// their peers.
    const DEFAULT: [Contender; 4] = [
        Contender::Makedumpfile("-c"),
        Contender::Crashkit(Codec::Zlib(ZlibPages::DEFAULT_LEVEL)),
        Contender::Makedumpfile("-l"),
        Contender::Crashkit(Codec::Lzo),
    ];

    /// The contender `--contender` names `key`.
    fn parse(key: &str) -> Option<Contender> {
        Some(match key {
            "makedumpfile" => Contender::Makedumpfile(""),
            "makedumpfile-c" => Contender::Makedumpfile("-c"),
            "makedumpfile-l" => Contender::Makedumpfile("-l"),
            "raw" => Contender::Crashkit(Codec::Raw),
            "zlib" => Contender::Crashkit(Codec::Zlib(ZlibPages::DEFAULT_LEVEL)),
            "miniz" => Contender::Crashkit(Codec::Miniz),
            "lzo" => Contender::Crashkit(Codec::Lzo),
            "snappy" => Contender::Crashkit(Codec::Snappy),
            "zstd" => Contender::Crashkit(Codec::Zstd),
            _ => {
                let level: u8 = key.strip_prefix("zlib:")?.parse().ok()?;
                (1..=ZlibPages::MAX_LEVEL)
                    .contains(&level)
                    .then_some(Contender::Crashkit(Codec::Zlib(level)))?
            }
        })
    }

    fn name(self) -> String {
        match self {
            Contender::Crashkit(Codec::Raw) => "crashkit, no compression".into(),
            Contender::Makedumpfile("") => "makedumpfile -d 1 (no compression)".into(),
            Contender::Crashkit(Codec::Zlib(level)) => {
                format!("crashkit zlib:{level} (crashkit's page deflate)")
            }
            Contender::Crashkit(Codec::Miniz) => {
                "crashkit zlib through miniz_oxide, level 1".into()
            }
            Contender::Crashkit(Codec::Lzo) => "crashkit LZO1X (crashkit's encoder)".into(),
            Contender::Crashkit(Codec::Snappy) => "crashkit snappy (crashkit's encoder)".into(),
            Contender::Crashkit(Codec::Zstd) => "crashkit zstd (ruzstd, fastest)".into(),
            Contender::Makedumpfile(flag) => format!("makedumpfile {flag} -d 1"),
        }
    }

    /// A short name for the summary's columns.
    fn short(self) -> String {
        match self {
            Contender::Crashkit(Codec::Zlib(level)) => format!("zlib:{level}"),
            Contender::Crashkit(Codec::Lzo) => "LZO1X".into(),
            Contender::Crashkit(codec) => format!("{codec:?}").to_lowercase(),
            Contender::Makedumpfile(flag) => format!("makedumpfile {flag}"),
        }
    }

    fn file(self) -> String {
        match self {
            Contender::Crashkit(Codec::Zlib(level)) => format!("crashkit-zlib{level}.kdump"),
            Contender::Crashkit(codec) => format!("crashkit-{codec:?}.kdump").to_lowercase(),
            Contender::Makedumpfile(flag) => format!("makedumpfile{flag}.kdump"),
        }
    }

    /// The makedumpfile run this one is compared with, if any, and the
    /// targets: throughput at least `speed` times the peer's, output at
    /// most `size` times the peer's (issue 31: every image).
    fn target(self) -> Option<(Contender, f64, f64)> {
        match self {
            Contender::Crashkit(Codec::Zlib(_)) => Some((Contender::Makedumpfile("-c"), 2.0, 1.0)),
            Contender::Crashkit(Codec::Lzo) => Some((Contender::Makedumpfile("-l"), 1.0, 1.0)),
            Contender::Crashkit(Codec::Snappy) => Some((Contender::Makedumpfile("-l"), 1.0, 1.05)),
            Contender::Crashkit(Codec::Raw) => Some((Contender::Makedumpfile(""), 1.0, 1.0)),
            _ => None,
        }
    }
}

/// What one run of a contender did.
struct Run {
    elapsed: Duration,
    output_len: u64,
}

/// One image's runs: per contender, per round.
struct Measured {
    runs: Vec<Vec<Run>>,
    memory_bytes: u64,
}

impl Measured {
    /// Median, fastest and slowest time of a contender, and its output's
    /// size (the same every round: the image is fixed).
    fn stats(&self, index: usize) -> (f64, f64, f64, u64) {
        let runs = &self.runs[index];
        let mut times: Vec<f64> = runs.iter().map(|r| r.elapsed.as_secs_f64()).collect();
        times.sort_by(f64::total_cmp);
        let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        let min = times.first().copied().unwrap_or(f64::NAN);
        let max = times.last().copied().unwrap_or(f64::NAN);
        (median, min, max, runs.first().map_or(0, |r| r.output_len))
    }

    /// A contender's ratios to its peer: throughput (peer's median time /
    /// its own) and size; the targets and whether both hold.
    fn against_peer(
        &self,
        contenders: &[Contender],
        index: usize,
    ) -> Option<(f64, f64, Contender, f64, f64, bool)> {
        let (peer, want_speed, want_size) = contenders[index].target()?;
        let peer_index = contenders.iter().position(|&c| c == peer)?;
        let (time, _, _, size) = self.stats(index);
        let (peer_time, _, _, peer_size) = self.stats(peer_index);
        let speed = peer_time / time;
        let output = size as f64 / peer_size as f64;
        let met = speed >= want_speed && output <= want_size;
        Some((speed, output, peer, want_speed, want_size, met))
    }
}

/// Times every contender `rounds` times on `image`.
fn measure(image: &Path, rounds: usize, contenders: &[Contender]) -> Result<Measured, String> {
    let out_dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm/crashkit-kdump-bench")
    } else {
        image.with_file_name("out")
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    // Both tools read the image through the page cache: load it there
    // before the first timed run (and count its memory).
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let memory_bytes: u64 = ElfDump::parse(&bytes)
        .map_err(|e| format!("{}: {e}", image.display()))?
        .segments()
        .iter()
        .map(|s| s.memsz)
        .sum();
    drop(bytes);

    let mut runs: Vec<Vec<Run>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (index, &contender) in contenders.iter().enumerate() {
            let out = out_dir.join(contender.file());
            let _ = std::fs::remove_file(&out);
            let started = Instant::now();
            match contender {
                Contender::Crashkit(codec) => {
                    write_crashkit(image, codec, &out)?;
                }
                Contender::Makedumpfile(flag) => {
                    let mut command = Command::new("makedumpfile");
                    if !flag.is_empty() {
                        command.arg(flag);
                    }
                    crashkit_qemu::host::run(
                        command
                            .args(["-d", "1", "--message-level", "4"])
                            .arg(image)
                            .arg(&out),
                    )?;
                }
            }
            let elapsed = started.elapsed();
            let output_len = std::fs::metadata(&out)
                .map_err(|e| format!("{}: {e}", out.display()))?
                .len();
            println!(
                "round {round}: {:44} {:6.2} s, {:7.1} MB",
                contender.name(),
                elapsed.as_secs_f64(),
                output_len as f64 / 1e6
            );
            runs[index].push(Run {
                elapsed,
                output_len,
            });
        }
        if round == 0 {
            check_outputs(image, &out_dir, contenders)?;
            check_with_libkdumpfile(image, &out_dir, contenders)?;
        }
    }
    for contender in contenders {
        let _ = std::fs::remove_file(out_dir.join(contender.file()));
    }
    Ok(Measured { runs, memory_bytes })
}

/// One image's Markdown table.
fn table(contenders: &[Contender], measured: &Measured, rounds: usize) -> String {
    let mut table = format!(
        "{rounds} rounds; input: {:.1} MB of memory.\n\n\
         | writer | time (median) | spread (fastest to slowest) | input throughput | output | \
         vs peer: throughput | vs peer: output | target |\n\
         |---|--:|--:|--:|--:|--:|--:|---|\n",
        measured.memory_bytes as f64 / 1e6
    );
    for (index, &contender) in contenders.iter().enumerate() {
        let (time, min, max, size) = measured.stats(index);
        let throughput = measured.memory_bytes as f64 / 1e6 / time;
        let (speed, output, target) = match measured.against_peer(contenders, index) {
            Some((speed, output, peer, want_speed, want_size, met)) => (
                format!("{speed:.2}x"),
                format!("{output:.4}x"),
                format!(
                    ">= {want_speed}x, <= {want_size}x of {}: {}",
                    peer.name(),
                    if met { "met" } else { "**missed**" }
                ),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        table.push_str(&format!(
            "| {} | {time:.2} s | {min:.2} to {max:.2} s ({:+.0}%/{:+.0}%) | {throughput:.0} MB/s \
             | {:.1} MB | {speed} | {output} | {target} |\n",
            contender.name(),
            100.0 * (min / time - 1.0),
            100.0 * (max / time - 1.0),
            size as f64 / 1e6
        ));
    }
    table
}

/// The targets over the set: per image, each contender that has one,
/// throughput and size against its peer.
fn summary(contenders: &[Contender], results: &[(&str, Measured)], rounds: usize) -> String {
    let targeted: Vec<usize> = (0..contenders.len())
        .filter(|&i| {
            results
                .first()
                .is_some_and(|(_, m)| m.against_peer(contenders, i).is_some())
        })
        .collect();
    let mut out = format!(
        "kdump writers against makedumpfile, one core, {rounds} rounds per image, medians; \
         each cell: throughput and output against the peer (target met or missed)\n\n| image |"
    );
    for &i in &targeted {
        out.push_str(&format!(" {} |", contenders[i].short()));
    }
    out.push_str("\n|---|");
    for _ in &targeted {
        out.push_str("--:|");
    }
    out.push('\n');
    let mut all_met = vec![true; targeted.len()];
    for (name, measured) in results {
        out.push_str(&format!("| {name} |"));
        for (column, &i) in targeted.iter().enumerate() {
            match measured.against_peer(contenders, i) {
                Some((speed, output, _, _, _, met)) => {
                    all_met[column] &= met;
                    out.push_str(&format!(
                        " {speed:.2}x, {output:.4}x {} |",
                        if met { "met" } else { "**missed**" }
                    ));
                }
                None => out.push_str(" |"),
            }
        }
        out.push('\n');
    }
    out.push_str("| **every image** |");
    for met in all_met {
        out.push_str(if met { " met |" } else { " **missed** |" });
    }
    out.push('\n');
    out
}

/// Physical memory read from the mapped image (no copy).
struct Mapped<'d, 'a> {
    dump: &'d ElfDump<'a>,
}

impl PhysMemory for Mapped<'_, '_> {
    fn page(&mut self, phys: u64) -> Option<&[u8; PAGE_SIZE as usize]> {
        let span = self.dump.classify(phys);
        if span.state != PageState::Present || span.len < PAGE_SIZE {
            return None;
        }
        let at = usize::try_from(span.file_offset?).ok()?;
        self.dump
            .bytes()
            .get(at..at + PAGE_SIZE as usize)?
            .try_into()
            .ok()
    }
}

/// A file written at offsets, never synced (makedumpfile does not sync
/// either; the outputs are in memory).
#[derive(Debug)]
pub struct FileSink(pub File);

impl DumpSink for FileSink {
    type Error = std::io::Error;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }
}

/// Map `image`, write it as a kdump-compressed file at `out` with
/// `codec`, dump level 1.
fn write_crashkit(image: &Path, codec: Codec, out: &Path) -> Result<KdumpStats, String> {
    let file = File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    // SAFETY: the image is this benchmark's own file in the cache; nothing
    // writes it while it is mapped (it is replaced only by a rename, which
    // leaves this mapping's inode alone). The map is dropped at the end of
    // this function, after the last read through `dump`. Populated at
    // once: one call maps the whole file instead of a fault per 64 KiB.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| format!("mapping {}: {e}", image.display()))?;
    let dump = ElfDump::parse(&map).map_err(|e| format!("{}: {e}", image.display()))?;
    let ranges: Vec<PhysRange> = dump
        .segments()
        .iter()
        .map(|s| PhysRange::new(s.paddr, s.memsz))
        .collect();
    let (cpus, vmcoreinfo) = cpus_and_vmcoreinfo(&dump);
    let plan = DumpPlan {
        dump_id: [0x6b; 16],
        crash_time: rewrite::now(),
        ranges: &ranges,
        exclusions: &[],
        direct_map: None,
        kernel_image: None,
        cpus: &cpus,
        panic_cpu: None,
        vmcoreinfo: &vmcoreinfo,
        crash_record: &[],
        exclude_zero_pages: true,
        extra_segments: 0,
    };
    let mut encoder: Box<dyn PageEncoder> = match codec {
        Codec::Raw => Box::new(RawPages),
        Codec::Zlib(level) => Box::new(ZlibPages::with_level(level)),
        Codec::Miniz => Box::new(MinizZlibPages::new(1)),
        Codec::Lzo => Box::new(LzoPages::default()),
        Codec::Snappy => Box::new(SnappyPages::default()),
        Codec::Zstd => Box::new(ZstdPages),
    };
    let output = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut sink: Box<Coalescing<FileSink, SINK_BUFFER>> =
        Box::new(Coalescing::new(FileSink(output)));
    write_kdump(
        &plan,
        &mut Mapped { dump: &dump },
        &mut *sink,
        &mut |_| false,
        &mut encoder,
        WriteOptions::default(),
        |_| {},
    )
    .map_err(|e| format!("writing {}: {}", out.display(), crashkit_qemu::causes(&e)))
}

/// The image's CPUs (crashkit's notes: registers and control state), as a
/// capture kernel passes the crashed CPUs' states, and its VMCOREINFO text
/// (Linux's), for a plan that writes the image again.
pub fn cpus_and_vmcoreinfo(dump: &ElfDump<'_>) -> (Vec<CpuState>, Vec<u8>) {
    let cpus = dump
        .cpus()
        .iter()
        .enumerate()
        .filter_map(|(index, cpu)| cpu.writer_state(index as u32))
        .collect();
    let vmcoreinfo = dump
        .vmcoreinfo()
        .map(|info| {
            info.entries()
                .flat_map(|(key, value)| format!("{key}={value}\n").into_bytes())
                .collect()
        })
        .unwrap_or_default();
    (cpus, vmcoreinfo)
}

/// Every output of round 0 read back by crashkit's kdump reader: every
/// page of the image that is not zero is present and equal, every zero
/// page is zero or excluded, and all outputs keep the same pages.
fn check_outputs(image: &Path, out_dir: &Path, contenders: &[Contender]) -> Result<(), String> {
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let source = ElfDump::parse(&bytes).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut expected = vec![0u8; PAGE_SIZE as usize];
    let mut page = vec![0u8; PAGE_SIZE as usize];
    let mut kept_by = Vec::new();
    for contender in contenders {
        let path = out_dir.join(contender.file());
        let output = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let dump = KdumpDump::parse(&output).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut kept = 0u64;
        for segment in source.segments() {
            for phys in (segment.paddr..segment.paddr + segment.memsz).step_by(PAGE_SIZE as usize) {
                source
                    .read_phys(phys, &mut expected)
                    .map_err(|e| format!("{}: {e}", image.display()))?;
                let zero = expected.iter().all(|&b| b == 0);
                match dump.read_page(phys / PAGE_SIZE, &mut page) {
                    Ok(()) if page == expected => kept += u64::from(!zero),
                    Err(problem) if zero && problem.state == PageState::Excluded => {}
                    other => {
                        return Err(format!(
                            "{}: page {phys:#x} reads as {other:?}, not as the image has it",
                            contender.name()
                        ));
                    }
                }
            }
        }
        kept_by.push(format!("{}: {kept}", contender.name()));
        if !kept_by
            .first()
            .is_some_and(|first| first.ends_with(&format!(": {kept}")))
        {
            return Err(format!(
                "the contenders kept different pages: {}",
                kept_by.join(", ")
            ));
        }
    }
    println!(
        "outputs read back, every page equal to the image; non-zero pages kept: {}",
        kept_by.join(", ")
    );
    Ok(())
}

/// Round 0's crashkit outputs read by libkdumpfile, every page compared
/// with the image (`libkdumpfile_pages.py`, Debian's Python).
fn check_with_libkdumpfile(
    image: &Path,
    out_dir: &Path,
    contenders: &[Contender],
) -> Result<(), String> {
    let outputs: Vec<PathBuf> = contenders
        .iter()
        .filter(|c| matches!(c, Contender::Crashkit(_)))
        .map(|c| out_dir.join(c.file()))
        .collect();
    if outputs.is_empty() {
        return Ok(());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kdump/libkdumpfile_pages.py");
    let text = crashkit_qemu::host::run(
        Command::new("/usr/bin/python3")
            .arg(script)
            .arg(image)
            .args(&outputs),
    )?;
    print!("libkdumpfile: {text}");
    if text.lines().count() != outputs.len() {
        return Err(format!("libkdumpfile_pages.py said too little:\n{text}"));
    }
    Ok(())
}
