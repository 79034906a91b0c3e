//! `bench-kdump CACHE [--rounds N] [--contender NAME]...`: issue 11's benchmark. crashkit's
//! kdump-compressed writer against makedumpfile on one 1 GiB memory image,
//! in one run, on one core.
//!
//! The image (made once, kept in `CACHE/kdump-bench/`; see [`image`]):
//! Debian's Linux booted with 1 GiB of RAM under QEMU and crashed with
//! SysRq-c, as the Linux corpus does (the packages are shared with it in
//! `CACHE/corpus/linux`). Every page the guest wrote stays as it is: the
//! running kernel's text and data, its page tables, `mem_map`, slab, the
//! unpacked initramfs, which is also what makedumpfile needs to read to
//! work at all. The pages the guest left zero are filled with a stated
//! mix (`Class`), so that the whole image has `ZERO_SHARE` zero pages.
//! It is written as an ELF vmcore with every page in the file and Linux's
//! VMCOREINFO, the way /proc/vmcore presents memory to makedumpfile.
//!
//! Measured (`measure`), after pinning this process (and so its
//! children) to one core: round after round, each contender once per
//! round, in the same order:
//! - crashkit: open and map the image, write a kdump-compressed dump of it
//!   (zero pages excluded: dump level 1) to a file through
//!   [`Coalescing`], close. The codecs are those a capture kernel can use:
//!   each builds for `x86_64-unknown-none` in `crashkit-dump-format`
//!   (zlib from crashkit's page deflate, LZO1X and snappy with no
//!   allocator; zstd (ruzstd) and zlib through miniz_oxide, the reference
//!   row, with `alloc`);
//! - makedumpfile `-c -d 1` (zlib) and `-l -d 1` (LZO1X-1), whole-process
//!   wall time.
//!
//! The outputs go to `/dev/shm` (memory), so the disk is not measured.
//! Round 0's outputs are read back, every page, by crashkit's kdump reader
//! and compared with the image, and every contender must keep the same
//! number of pages: the contenders did the same work. The report is a
//! Markdown table of medians with the ratios the issue sets targets for.

use std::cell::Cell;
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

use crashkit_corpus::linux;
use crashkit_qemu::rewrite;

/// Guest RAM, and so the image's size.
const RAM_MIB: u32 = 1024;

/// Share of zero pages in the whole image.
const ZERO_SHARE: f64 = 0.30;

/// Bump when the image's recipe changes: a cached image of another
/// version is rebuilt.
const IMAGE_VERSION: u32 = 1;

/// The coalescing buffer of crashkit's file sink.
const SINK_BUFFER: usize = 1 << 20;

/// Where the kernel's `direct map` starts on x86_64 without KASLR (for
/// the slab-like pages' pointers).
const DIRECT_MAP: u64 = 0xffff_8880_0000_0000;

/// What fills a page of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// A page the guest wrote, as it wrote it.
    Guest,
    /// A zero page.
    Zero,
    /// Kernel code and data: consecutive pages of Debian's kernel modules
    /// (`.ko` files of the same package: text, data, rodata, symbols).
    Kernel,
    /// Slab-like: objects of one size (64 to 512 bytes) with list links
    /// pointing into the page, pointers into the direct map and kernel
    /// text, small integers, flags and reference counts; 15% free objects.
    Slab,
    /// Text files (page cache of source and documentation): headers from
    /// /usr/include, /usr/share/doc, Python sources; no compressed files.
    Text,
    /// Random bytes (compressed or encrypted data).
    Random,
    /// Mostly zero: 1 to 16 random 8-byte words.
    Sparse,
}

impl Class {
    /// The classes the zero pages are filled with, weight of each in the
    /// non-zero fill.
    const FILL: [(Class, u64); 5] = [
        (Class::Kernel, 40),
        (Class::Slab, 20),
        (Class::Text, 12),
        (Class::Random, 12),
        (Class::Sparse, 16),
    ];

    const ALL: [Class; 7] = [
        Class::Guest,
        Class::Zero,
        Class::Kernel,
        Class::Slab,
        Class::Text,
        Class::Random,
        Class::Sparse,
    ];

    fn name(self) -> &'static str {
        match self {
            Class::Guest => "written by the Linux guest",
            Class::Zero => "zero",
            Class::Kernel => "kernel modules (code and data)",
            Class::Slab => "slab-like",
            Class::Text => "text",
            Class::Random => "random",
            Class::Sparse => "sparse",
        }
    }
}

/// A small, fast, seedable generator (splitmix64): the image is the same
/// every time it is made from the same guest.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The benchmark: the image (made if missing), then the measurement.
pub fn run(cache: &Path, rounds: usize, only: &[String]) -> Result<String, String> {
    let cache = std::path::absolute(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let (image, mix) = image(&cache)?;
    pin_to_one_core()?;
    let contenders: Vec<Contender> = Contender::ALL
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|k| k == c.key()))
        .collect();
    if contenders.is_empty() {
        let keys: Vec<_> = Contender::ALL.iter().map(|c| c.key()).collect();
        return Err(format!(
            "no contender {only:?} (there are: {})",
            keys.join(", ")
        ));
    }
    let mut report = measure(&image, rounds, &contenders)?;
    report.push_str("\nImage: ");
    report.push_str(&mix);
    Ok(report)
}

/// The cached image and its mix (one line), made first if missing.
pub fn image(cache: &Path) -> Result<(PathBuf, String), String> {
    let work = cache.join("kdump-bench");
    let path = work.join(format!("image-v{IMAGE_VERSION}.elf"));
    let mix_path = work.join(format!("image-v{IMAGE_VERSION}.mix"));
    if path.is_file()
        && let Ok(mix) = std::fs::read_to_string(&mix_path)
    {
        println!("kdump bench: image {} (cached)", path.display());
        return Ok((path, mix));
    }
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let guest = linux::prepare(&cache.join("corpus/linux"))?;
    let guest_dir = work.join("guest");
    let qemu_elf = guest_dir.join("qemu.elf");
    println!("kdump bench: booting and crashing Linux with {RAM_MIB} MiB (a minute or two)");
    let outcome = linux::crash_and_dump(&guest, false, RAM_MIB, &guest_dir, &qemu_elf, None)?;
    let _ = std::fs::remove_file(&outcome.ram);
    let bytes = std::fs::read(&qemu_elf).map_err(|e| format!("{}: {e}", qemu_elf.display()))?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
    let limit = u64::from(RAM_MIB) << 20;

    // The guest's pages: how many it wrote decides how many of its zero
    // pages stay zero.
    let (mut total, mut written) = (0u64, 0u64);
    let mut page = vec![0u8; PAGE_SIZE as usize];
    for segment in dump.segments() {
        let end = (segment.paddr + segment.memsz).min(limit);
        for phys in (segment.paddr..end).step_by(PAGE_SIZE as usize) {
            dump.read_phys(phys, &mut page)
                .map_err(|e| format!("QEMU's dump: {e}"))?;
            total += 1;
            written += u64::from(page.iter().any(|&b| b != 0));
        }
    }
    let zero_wanted = (total as f64 * ZERO_SHARE) as u64;
    let guest_zero = total - written;
    if guest_zero < zero_wanted {
        return Err(format!(
            "the guest wrote {written} of {total} pages: fewer than {zero_wanted} zero pages are left"
        ));
    }
    // Per 2^32: the chance that a zero page of the guest stays zero.
    let keep_zero = ((zero_wanted as u128) << 32) / u128::from(guest_zero.max(1));

    let release = &guest.release;
    let modules = gather(
        &[cache
            .join("corpus/linux/unpacked/lib/modules")
            .join(release)],
        400 << 20,
        |path| path.extension().is_some_and(|e| e == "ko"),
    )?;
    let text = gather(
        &[
            PathBuf::from("/usr/include"),
            PathBuf::from("/usr/share/doc"),
            PathBuf::from("/usr/lib/python3"),
        ],
        160 << 20,
        is_text,
    )?;
    let counts: [Cell<u64>; 7] = Default::default();
    let (kernel_at, text_at) = (Cell::new(0usize), Cell::new(0usize));
    let fill = |phys: u64, page: &mut [u8; PAGE_SIZE as usize]| {
        let frame = phys / PAGE_SIZE;
        let mut rng = Rng(frame ^ 0x6b63_6b64_756d_7001);
        let class = if page.iter().any(|&b| b != 0) {
            Class::Guest
        } else if u128::from(rng.next_u64() >> 32) < keep_zero {
            Class::Zero
        } else {
            let mut pick = rng.next_u64() % 100;
            let mut chosen = Class::Sparse;
            for (class, weight) in Class::FILL {
                if pick < weight {
                    chosen = class;
                    break;
                }
                pick -= weight;
            }
            chosen
        };
        if let Some(count) = Class::ALL
            .iter()
            .position(|&c| c == class)
            .and_then(|i| counts.get(i))
        {
            count.set(count.get() + 1);
        }
        match class {
            Class::Guest | Class::Zero => {}
            Class::Kernel => copy_next(&modules, &kernel_at, page),
            Class::Text => copy_next(&text, &text_at, page),
            Class::Slab => slab_page(frame, &mut rng, page),
            Class::Random => page
                .chunks_exact_mut(8)
                .for_each(|word| word.copy_from_slice(&rng.next_u64().to_le_bytes())),
            Class::Sparse => {
                for _ in 0..rng.next_u64() % 16 + 1 {
                    let at = (rng.next_u64() % 512) as usize * 8;
                    page[at..at + 8].copy_from_slice(&(rng.next_u64() | 1).to_le_bytes());
                }
            }
        }
    };
    let vmcoreinfo = dump.vmcoreinfo().ok_or("QEMU's dump has no VMCOREINFO")?;
    let vmcoreinfo: Vec<u8> = vmcoreinfo
        .entries()
        .flat_map(|(key, value)| format!("{key}={value}\n").into_bytes())
        .collect();
    let direct_map = crashkit_corpus::oracle::page_offset(&dump)?;
    let partial = work.join("image.partial");
    rewrite::write(
        &dump,
        &rewrite::Rewrite {
            vmcoreinfo: &vmcoreinfo,
            direct_map: Some(direct_map),
            kernel_image: None,
            crash_record: &[],
            panic_cpu: None,
            crash_time: rewrite::now(),
            exclude_zero_pages: false,
            registers: &|_, live| live,
            below: Some(limit),
            fill: Some(&fill),
        },
        &partial,
    )?;
    let shares: Vec<String> = Class::ALL
        .iter()
        .zip(&counts)
        .map(|(class, count)| {
            format!(
                "{} {:.1}% ({} pages)",
                class.name(),
                100.0 * count.get() as f64 / total as f64,
                count.get()
            )
        })
        .collect();
    let mix = format!(
        "{total} pages of 4 KiB ({} MiB) from Debian's Linux {release} booted with {RAM_MIB} MiB \
         and crashed by SysRq-c, its zero pages filled: {}.\n",
        total >> 8,
        shares.join(", ")
    );
    std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&mix_path, &mix).map_err(|e| format!("{}: {e}", mix_path.display()))?;
    let _ = std::fs::remove_file(&qemu_elf);
    println!("kdump bench: image {} made; {mix}", path.display());
    Ok((path, mix))
}

/// The next page of `source` (wrapping), at `*at`.
fn copy_next(source: &[u8], at: &Cell<usize>, page: &mut [u8; PAGE_SIZE as usize]) {
    let pages = source.len() / PAGE_SIZE as usize;
    let index = at.get() % pages.max(1);
    let start = index * PAGE_SIZE as usize;
    if let Some(bytes) = source.get(start..start + PAGE_SIZE as usize) {
        page.copy_from_slice(bytes);
    }
    at.set(at.get() + 1);
}

/// A page of slab objects (see [`Class::Slab`]).
fn slab_page(frame: u64, rng: &mut Rng, page: &mut [u8; PAGE_SIZE as usize]) {
    const SIZES: [usize; 6] = [64, 96, 128, 192, 256, 512];
    let size = SIZES[(rng.next_u64() % SIZES.len() as u64) as usize];
    let page_va = DIRECT_MAP + frame * PAGE_SIZE;
    for (index, object) in page.chunks_mut(size).enumerate() {
        let object_va = page_va + (index * size) as u64;
        if rng.next_u64() % 100 < 15 {
            // Free: the free-list pointer to the next object, the rest
            // zero.
            object.fill(0);
            if let Some(word) = object.get_mut(..8) {
                word.copy_from_slice(&(object_va + size as u64).to_le_bytes());
            }
            continue;
        }
        for (slot, word) in object.chunks_exact_mut(8).enumerate() {
            let value = match slot % 8 {
                // A list head linking to a neighbour in the same page.
                0 | 1 => page_va + (rng.next_u64() % (PAGE_SIZE / 64)) * 64 + 8 * (slot as u64 % 2),
                // A pointer to another object somewhere in RAM.
                2 => DIRECT_MAP + ((rng.next_u64() % (1 << 30)) & !63),
                3 => rng.next_u64() % 4096,
                4 => rng.next_u64() & 0xff,
                5 => 0,
                // A function pointer into kernel text.
                6 => 0xffff_ffff_8100_0000 + (rng.next_u64() % (16 << 20)),
                _ => 1 + rng.next_u64() % 2,
            };
            word.copy_from_slice(&value.to_le_bytes());
        }
    }
}

/// Whether `path` looks like a text file (not compressed, no NUL near its
/// start).
fn is_text(path: &Path) -> bool {
    let compressed = ["gz", "xz", "bz2", "zst", "zip", "png", "jpg", "pyc", "so"];
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| compressed.contains(&e))
    {
        return false;
    }
    let mut head = [0u8; 1024];
    File::open(path)
        .and_then(|file| file.read_at(&mut head, 0))
        .is_ok_and(|n| n > 0 && !head[..n].contains(&0))
}

/// Up to `want` bytes of the files under `roots` that `keep` accepts, in
/// path order.
fn gather(roots: &[PathBuf], want: usize, keep: impl Fn(&Path) -> bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = roots.iter().rev().cloned().collect();
    while let Some(path) = stack.pop() {
        if out.len() >= want {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
                entries.sort();
                stack.extend(entries.into_iter().rev());
            }
        } else if meta.is_file()
            && keep(&path)
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.extend_from_slice(&bytes);
        }
    }
    out.truncate(want);
    if out.len() < PAGE_SIZE as usize {
        return Err(format!("no files to fill the image with under {roots:?}"));
    }
    Ok(out)
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
#[derive(Clone, Copy)]
enum Contender {
    Crashkit(Codec),
    Makedumpfile(&'static str),
}

/// crashkit's codecs.
#[derive(Clone, Copy, Debug)]
enum Codec {
    Raw,
    Zlib,
    Miniz,
    Lzo,
    Snappy,
    Zstd,
}

impl Contender {
    const ALL: [Contender; 9] = [
        Contender::Makedumpfile(""),
        Contender::Crashkit(Codec::Raw),
        Contender::Makedumpfile("-c"),
        Contender::Crashkit(Codec::Zlib),
        Contender::Crashkit(Codec::Miniz),
        Contender::Makedumpfile("-l"),
        Contender::Crashkit(Codec::Lzo),
        Contender::Crashkit(Codec::Snappy),
        Contender::Crashkit(Codec::Zstd),
    ];

    /// The short name `--contender` takes.
    fn key(self) -> &'static str {
        match self {
            Contender::Crashkit(Codec::Raw) => "raw",
            Contender::Crashkit(Codec::Zlib) => "zlib",
            Contender::Crashkit(Codec::Miniz) => "miniz",
            Contender::Crashkit(Codec::Lzo) => "lzo",
            Contender::Crashkit(Codec::Snappy) => "snappy",
            Contender::Crashkit(Codec::Zstd) => "zstd",
            Contender::Makedumpfile("-c") => "makedumpfile-c",
            Contender::Makedumpfile("-l") => "makedumpfile-l",
            Contender::Makedumpfile(_) => "makedumpfile",
        }
    }

    fn name(self) -> String {
        match self {
            Contender::Crashkit(Codec::Raw) => "crashkit, no compression".into(),
            Contender::Makedumpfile("") => "makedumpfile -d 1 (no compression)".into(),
            Contender::Crashkit(Codec::Zlib) => "crashkit zlib (crashkit's page deflate)".into(),
            Contender::Crashkit(Codec::Miniz) => {
                "crashkit zlib through miniz_oxide, level 1".into()
            }
            Contender::Crashkit(Codec::Lzo) => "crashkit LZO1X (crashkit's encoder)".into(),
            Contender::Crashkit(Codec::Snappy) => "crashkit snappy (crashkit's encoder)".into(),
            Contender::Crashkit(Codec::Zstd) => "crashkit zstd (ruzstd, fastest)".into(),
            Contender::Makedumpfile(flag) => format!("makedumpfile {flag} -d 1"),
        }
    }

    fn file(self) -> &'static str {
        match self {
            Contender::Crashkit(Codec::Raw) => "crashkit-raw.kdump",
            Contender::Makedumpfile("") => "makedumpfile-raw.kdump",
            Contender::Crashkit(Codec::Zlib) => "crashkit-zlib.kdump",
            Contender::Crashkit(Codec::Miniz) => "crashkit-miniz.kdump",
            Contender::Crashkit(Codec::Lzo) => "crashkit-lzo.kdump",
            Contender::Crashkit(Codec::Snappy) => "crashkit-snappy.kdump",
            Contender::Crashkit(Codec::Zstd) => "crashkit-zstd.kdump",
            Contender::Makedumpfile("-c") => "makedumpfile-c.kdump",
            Contender::Makedumpfile("-l") => "makedumpfile-l.kdump",
            Contender::Makedumpfile(_) => "makedumpfile-other.kdump",
        }
    }

    /// The makedumpfile run this one is compared with, if any, and the
    /// targets: throughput at least `speed` times the peer's, output at
    /// most `size` times the peer's.
    fn target(self) -> Option<(Contender, f64, f64)> {
        match self {
            Contender::Crashkit(Codec::Zlib) => Some((Contender::Makedumpfile("-c"), 2.0, 1.0)),
            Contender::Crashkit(Codec::Lzo | Codec::Snappy) => {
                Some((Contender::Makedumpfile("-l"), 1.0, 1.05))
            }
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

/// Times every contender `rounds` times; the report.
fn measure(image: &Path, rounds: usize, contenders: &[Contender]) -> Result<String, String> {
    let out_dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm/crashkit-kdump-bench")
    } else {
        image.with_file_name("out")
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let input_len = std::fs::metadata(image)
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len();
    // Both tools read the image through the page cache: load it there
    // before the first timed run.
    std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;

    let mut runs: Vec<Vec<Run>> = contenders.iter().map(|_| Vec::new()).collect();
    let mut memory_bytes = 0u64;
    for round in 0..rounds {
        for (index, &contender) in contenders.iter().enumerate() {
            let out = out_dir.join(contender.file());
            let _ = std::fs::remove_file(&out);
            let started = Instant::now();
            match contender {
                Contender::Crashkit(codec) => {
                    memory_bytes = write_crashkit(image, codec, &out)?.pages_total * PAGE_SIZE;
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
                "round {round}: {:42} {:6.2} s, {:7.1} MB",
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
        }
    }
    for contender in contenders {
        let _ = std::fs::remove_file(out_dir.join(contender.file()));
    }
    Ok(report(contenders, &runs, memory_bytes, input_len, rounds))
}

/// The Markdown table.
fn report(
    contenders: &[Contender],
    runs: &[Vec<Run>],
    memory_bytes: u64,
    input_len: u64,
    rounds: usize,
) -> String {
    let median = |runs: &[Run]| -> (f64, u64) {
        let mut times: Vec<f64> = runs.iter().map(|r| r.elapsed.as_secs_f64()).collect();
        times.sort_by(f64::total_cmp);
        let time = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        (time, runs.first().map_or(0, |r| r.output_len))
    };
    let index_of = |c: Contender| contenders.iter().position(|&d| d.key() == c.key());
    let mut table = format!(
        "kdump writers, one core, {rounds} rounds, medians; input: {:.1} MB of memory \
         ({input_len} bytes of ELF)\n\n\
         | writer | time | input throughput | output | vs peer: throughput | vs peer: output | target |\n\
         |---|--:|--:|--:|--:|--:|---|\n",
        memory_bytes as f64 / 1e6
    );
    for (index, &contender) in contenders.iter().enumerate() {
        let (time, size) = median(&runs[index]);
        let throughput = memory_bytes as f64 / 1e6 / time;
        let peer = contender
            .target()
            .and_then(|(peer, speed, size)| Some((peer, speed, size, index_of(peer)?)));
        let (speed, output, target) = match peer {
            Some((peer, want_speed, want_size, peer_index)) => {
                let (peer_time, peer_size) = median(&runs[peer_index]);
                let speed = peer_time / time;
                let output = size as f64 / peer_size as f64;
                let met = speed >= want_speed && output <= want_size;
                (
                    format!("{speed:.2}x"),
                    format!("{output:.3}x"),
                    format!(
                        ">= {want_speed}x, <= {want_size}x of {}: {}",
                        peer.name(),
                        if met { "**met**" } else { "**missed**" }
                    ),
                )
            }
            None => (String::new(), String::new(), String::new()),
        };
        table.push_str(&format!(
            "| {} | {time:.2} s | {throughput:.0} MB/s | {:.1} MB | {speed} | {output} | {target} |\n",
            contender.name(),
            size as f64 / 1e6
        ));
    }
    table
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
        Codec::Zlib => Box::new(ZlibPages::new()),
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
