//! `bench-cli CACHE [--rounds N] [--measure-only]`: issue 12's benchmark. The `crashkit`
//! CLI against the tools a kernel developer would otherwise use, as whole
//! processes (start-up included), on one core, in one run.
//!
//! The dumps (made once, kept in `CACHE/cli-bench/`; see `dumps`), all
//! from the 1 GiB image of a crashed Linux guest that `--kdump-bench`
//! makes (`CACHE/kdump-bench/`), so they carry Linux's VMCOREINFO and the
//! guest's CPU notes:
//! - **a 16 GiB machine as an ELF vmcore**: memory at 0-640 KiB, 1 MiB-3
//!   GiB and 4-17 GiB, every page in the file as /proc/vmcore and QEMU
//!   present memory (the guest's pages in the first GiB, zeros above),
//!   written by crashkit's ELF writer into a sparse file (zero runs are not
//!   written: 16 GiB long, about 1 GiB on disk), with the direct map as
//!   virtual addresses so gdb can read pages;
//! - **the same machine as a kdump-compressed file**: zlib, zero pages
//!   excluded (dump level 1), by crashkit's kdump writer;
//! - **a 1 GiB zlib dump** for `verify`: `makedumpfile -c -d 1` of the
//!   image (another producer's file, 182,359 pages).
//!
//! Measured, after pinning this process (and so its children) to one core,
//! round after round, each command once per round in the same order, with
//! one unmeasured run of each on every page first (the files are in the
//! page cache: warm). Each run is a whole process: wall time from spawn to exit, peak
//! resident memory from `wait4`'s rusage. Output goes to /dev/null. One
//! random page per round (the same for every tool; a page the guest wrote,
//! so present in both dumps) is what `rd` reads.
//!
//! Peers: gdb (`-batch -nx -ex 'info registers'` for `info` and `cpus` on
//! the ELF; `x/512xg` at the page's direct-map address for `rd`);
//! libkdumpfile through Debian's Python (open; open and read the page;
//! read every page for `verify`); drgn through Debian's Python (open;
//! open and read the page physically). Python's own start-up is part of
//! the peers' times and is measured alone (`python3 -c pass`) and stated.
//!
//! Also measured in this process, without process start-up: crashkit's
//! format library parsing the mapped 16 GiB dump and reading one page, the
//! work `rd` does once running.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crashkit_dump_format::compressed::writer::{ZlibPages, write_kdump};
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::plan::DumpPlan;
use crashkit_dump_format::read::PageState;
use crashkit_dump_format::sink::Coalescing;
use crashkit_dump_format::write::WriteOptions;
use crashkit_dump_format::{DumpSink, KdumpDump, PAGE_SIZE, PhysMemory, PhysRange};

use crate::kdump;

/// The 16 GiB machine's memory: the PC's low 640 KiB, 1 MiB to 3 GiB, and
/// 13 GiB above 4 GiB (the 32-bit PCI hole between), 16 GiB in all but
/// the 384 KiB below 1 MiB.
const RANGES: [(u64, u64); 3] = [
    (0, 0xa_0000),
    (0x10_0000, 0xc000_0000),
    (0x1_0000_0000, 0x4_4000_0000),
];

/// Linux's direct map without KASLR: the ELF's virtual addresses, so that
/// gdb (which reads a core by virtual address) can read a physical page.
const DIRECT_MAP: u64 = 0xffff_8880_0000_0000;

/// The image's memory ends here; above it, the machine's pages are zero.
const IMAGE_END: u64 = 1 << 30;

/// Version of the generated dumps; bump when the way they are made changes.
const VERSION: u32 = 2;

/// The dumps the benchmark reads.
struct Dumps {
    elf: PathBuf,
    kdump: PathBuf,
    verify: PathBuf,
}

/// The benchmark: the dumps (made if missing), then the measurement in a
/// fresh process of this program (`--measure-only`): Linux counts a
/// process's peak memory from the address space it was started from (the
/// one `exec` replaces), so the children of a process that once mapped the
/// 1 GiB image would all report at least that much. The measuring process
/// maps only what it reads.
pub fn run(cache: &Path, rounds: usize) -> Result<String, String> {
    let cache = std::path::absolute(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let (image, _) = kdump::image(&cache)?;
    dumps(&image, &cache.join("cli-bench"))?;
    let output =
        Command::new(std::env::current_exe().map_err(|e| format!("where this runner is: {e}"))?)
            .arg("--measure-only")
            .arg(&cache)
            .args(["--rounds", &rounds.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("starting the measuring process: {e}"))?;
    if !output.status.success() {
        return Err(format!("the measuring process failed ({})", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `--measure-only`: the measurement, on dumps [`run`] made.
pub fn measure_only(cache: &Path, rounds: usize) -> Result<String, String> {
    let dir = cache.join("cli-bench");
    let (image, _) = kdump::image(cache)?;
    let dumps = Dumps::at(&dir);
    for path in [&dumps.elf, &dumps.kdump, &dumps.verify, &image] {
        if !path.is_file() {
            return Err(format!(
                "{} is missing (`--cli-bench` makes it)",
                path.display()
            ));
        }
    }
    kdump::pin_to_one_core()?;
    let crashkit = std::env::current_exe()
        .map_err(|e| format!("where this runner is: {e}"))?
        .with_file_name("crashkit");
    if !crashkit.is_file() {
        return Err(format!(
            "{} is missing: build it first (`cargo build --release -p crashkit-cli`; \
             `cargo xtask bench-cli` does)",
            crashkit.display()
        ));
    }
    let scripts = scripts(&dir)?;
    let pages = random_pages(&image, rounds.max(1))?;
    measure(&crashkit, &dumps, &scripts, &pages)
}

impl Dumps {
    fn at(dir: &Path) -> Self {
        Self {
            elf: dir.join(format!("machine-16g-v{VERSION}.elf")),
            kdump: dir.join(format!("machine-16g-v{VERSION}.kdump")),
            verify: dir.join(format!("linux-1g-v{VERSION}.kdump-zlib")),
        }
    }
}

/// Map `path` for reading.
fn map(path: &Path) -> Result<memmap2::Mmap, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: the benchmark's own files in its cache, each written once and
    // renamed into place before it is read; nothing writes them while they
    // are mapped (the callers hold each map only while they read it).
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("mapping {}: {e}", path.display()))
}

/// Make the dumps that are missing.
fn dumps(image: &Path, dir: &Path) -> Result<Dumps, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dumps = Dumps::at(dir);
    for (path, elf) in [(&dumps.elf, true), (&dumps.kdump, false)] {
        if path.is_file() {
            continue;
        }
        println!("cli-bench: writing {}", path.display());
        let partial = path.with_extension("partial");
        write_machine(image, &partial, elf)?;
        std::fs::rename(&partial, path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if !dumps.verify.is_file() {
        println!(
            "cli-bench: writing {} (makedumpfile)",
            dumps.verify.display()
        );
        let partial = dumps.verify.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        crashkit_qemu::host::run(
            Command::new("makedumpfile")
                .args(["-c", "-d", "1", "--message-level", "4"])
                .arg(image)
                .arg(&partial),
        )?;
        std::fs::rename(&partial, &dumps.verify)
            .map_err(|e| format!("{}: {e}", dumps.verify.display()))?;
    }
    Ok(dumps)
}

/// The 16 GiB machine's memory: the image's pages below [`IMAGE_END`],
/// zeros elsewhere.
struct Machine<'d, 'a> {
    image: &'d ElfDump<'a>,
    zero: [u8; PAGE_SIZE as usize],
}

impl PhysMemory for Machine<'_, '_> {
    fn page(&mut self, phys: u64) -> Option<&[u8; PAGE_SIZE as usize]> {
        if phys < IMAGE_END {
            let span = self.image.classify(phys);
            if span.state == PageState::Present && span.len >= PAGE_SIZE {
                let at = usize::try_from(span.file_offset?).ok()?;
                return self
                    .image
                    .bytes()
                    .get(at..at + PAGE_SIZE as usize)?
                    .try_into()
                    .ok();
            }
        }
        Some(&self.zero)
    }
}

/// A file written at offsets in which runs of zeros are not written (the
/// file system keeps them as holes); its length is set at the end.
struct SparseSink {
    file: File,
    len: u64,
}

impl DumpSink for SparseSink {
    type Error = std::io::Error;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.len = self.len.max(offset + bytes.len() as u64);
        if bytes.iter().all(|&b| b == 0) {
            // A fresh file reads zeros where nothing was written; the
            // writers write each byte of a new file once, or zeros first
            // and data over them (the kdump header block), never data and
            // then zeros.
            return Ok(());
        }
        self.file.write_all_at(bytes, offset)
    }
}

/// Write the 16 GiB machine from `image` to `out`: an ELF vmcore with every
/// page, or a zlib kdump-compressed file without zero pages.
fn write_machine(image: &Path, out: &Path, elf: bool) -> Result<(), String> {
    let file = File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    // SAFETY: the image is the kdump benchmark's own file in the cache;
    // nothing writes it while it is mapped (it is replaced only by a
    // rename, which leaves this mapping's inode alone). The map lives until
    // the end of this function, past the last read through `dump`.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| format!("mapping {}: {e}", image.display()))?;
    let dump = ElfDump::parse(&map).map_err(|e| format!("{}: {e}", image.display()))?;
    let ranges: Vec<PhysRange> = RANGES
        .iter()
        .map(|&(start, end)| PhysRange::new(start, end - start))
        .collect();
    let (cpus, vmcoreinfo) = kdump::cpus_and_vmcoreinfo(&dump);
    let plan = DumpPlan {
        dump_id: [0x16; 16],
        crash_time: 1_796_457_600,
        ranges: &ranges,
        exclusions: &[],
        direct_map: Some(DIRECT_MAP),
        kernel_image: None,
        cpus: &cpus,
        panic_cpu: None,
        vmcoreinfo: &vmcoreinfo,
        crash_record: &[],
        // The ELF has every page (as /proc/vmcore); the kdump file leaves
        // zero pages out (dump level 1).
        exclude_zero_pages: !elf,
        extra_segments: 0,
    };
    let mut memory = Machine {
        image: &dump,
        zero: [0; PAGE_SIZE as usize],
    };
    let output = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    if elf {
        let mut sink = SparseSink {
            file: output,
            len: 0,
        };
        crashkit_dump_format::write_elf_dump(
            &plan,
            &mut memory,
            &mut sink,
            &mut |_| false,
            WriteOptions::default(),
            |_| {},
        )
        .map_err(|e| format!("writing {}: {}", out.display(), crashkit_qemu::causes(&e)))?;
        sink.file
            .set_len(sink.len)
            .map_err(|e| format!("{}: {e}", out.display()))?;
    } else {
        let mut sink: Box<Coalescing<kdump::FileSink, { 1 << 20 }>> =
            Box::new(Coalescing::new(kdump::FileSink(output)));
        write_kdump(
            &plan,
            &mut memory,
            &mut *sink,
            &mut |_| false,
            &mut ZlibPages::new(),
            WriteOptions::default(),
            |_| {},
        )
        .map_err(|e| format!("writing {}: {}", out.display(), crashkit_qemu::causes(&e)))?;
    }
    Ok(())
}

/// The peers' Python scripts.
struct Scripts {
    libkdumpfile: PathBuf,
    drgn: PathBuf,
}

/// Write the peers' scripts next to the dumps.
fn scripts(dir: &Path) -> Result<Scripts, String> {
    let libkdumpfile = dir.join("libkdumpfile_peer.py");
    std::fs::write(
        &libkdumpfile,
        "import sys, kdumpfile\n\
         k = kdumpfile.kdumpfile(sys.argv[2])\n\
         mode = sys.argv[1]\n\
         if mode == 'open':\n\
         \x20   print(k.attr['file.format'], k.attr['max_pfn'])\n\
         elif mode == 'read':\n\
         \x20   print(bytes(k.read(kdumpfile.KDUMP_MACHPHYSADDR, int(sys.argv[3], 0), 4096)).hex())\n\
         elif mode == 'every':\n\
         \x20   end = int(sys.argv[3], 0)\n\
         \x20   read = 0\n\
         \x20   for addr in range(0, end, 4096):\n\
         \x20       try:\n\
         \x20           k.read(kdumpfile.KDUMP_MACHPHYSADDR, addr, 4096)\n\
         \x20           read += 1\n\
         \x20       except kdumpfile.exceptions.NoDataException:\n\
         \x20           pass\n\
         \x20   print(read)\n",
    )
    .map_err(|e| format!("{}: {e}", libkdumpfile.display()))?;
    let drgn = dir.join("drgn_peer.py");
    std::fs::write(
        &drgn,
        "import sys, drgn\n\
         prog = drgn.Program()\n\
         prog.set_core_dump(sys.argv[2])\n\
         if sys.argv[1] == 'read':\n\
         \x20   print(prog.read(int(sys.argv[3], 0), 4096, True).hex())\n",
    )
    .map_err(|e| format!("{}: {e}", drgn.display()))?;
    Ok(Scripts { libkdumpfile, drgn })
}

/// `count` physical addresses of pages the guest wrote (not zero), spread
/// over the image by a fixed seed: the pages `rd` reads, one per round.
fn random_pages(image: &Path, count: usize) -> Result<Vec<u64>, String> {
    let bytes = map(image)?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut rng = kdump::Rng(0x5eed_c11b);
    let mut page = vec![0u8; PAGE_SIZE as usize];
    let mut pages = Vec::new();
    for _ in 0..count * 1000 {
        if pages.len() == count {
            break;
        }
        let phys = (0x10_0000 + rng.next_u64() % (IMAGE_END - 0x10_0000)) & !(PAGE_SIZE - 1);
        if dump.read_phys(phys, &mut page).is_ok() && page.iter().any(|&b| b != 0) {
            pages.push(phys);
        }
    }
    if pages.len() < count {
        return Err("too few written pages in the image".into());
    }
    Ok(pages)
}

/// One whole-process run: wall time and peak resident memory.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) wall: Duration,
    pub(crate) max_rss_kib: u64,
}

/// Run `command` to its end with its output discarded; its wall time and
/// peak memory. A failing command is an error: a benchmark of a failure
/// measures nothing.
pub(crate) fn sample(command: &mut Command) -> Result<Sample, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = command.spawn().map_err(|e| format!("{command:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is a plain C struct this frame owns; wait4 writes it
    // and `status` and reaps `pid`, our own child, which nothing else waits
    // for (the `Child` is only read from below and dropped, which does not
    // wait).
    let (reaped, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let reaped = libc::wait4(pid, &mut status, 0, &mut usage);
        (reaped, usage)
    };
    let wall = started.elapsed();
    let stderr = child
        .stderr
        .map(|mut pipe| {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        })
        .unwrap_or_default();
    if reaped != pid {
        return Err(format!(
            "{command:?}: wait4: {}",
            std::io::Error::last_os_error()
        ));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{command:?} failed (status {status:#x}): {stderr}"));
    }
    Ok(Sample {
        wall,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// The median of `values` (sorted in place).
fn median<T: Copy + Ord>(values: &mut [T]) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

/// A command to benchmark, built for round `round`'s page.
type Maker<'a> = Box<dyn Fn(u64) -> Command + 'a>;

/// One row: what it measures, crashkit's command and its peer's.
struct Row<'a> {
    dump: &'static str,
    what: &'static str,
    crashkit: Maker<'a>,
    peer_name: &'static str,
    peer: Maker<'a>,
    /// The target: crashkit's wall time at most this, and at least `ratio`
    /// times faster than the peer.
    target: Option<(Duration, f64)>,
}

fn measure(
    crashkit: &Path,
    dumps: &Dumps,
    scripts: &Scripts,
    pages: &[u64],
) -> Result<String, String> {
    let python = "/usr/bin/python3";
    let ck = |args: Vec<String>| -> Maker<'_> {
        Box::new(move |_page| {
            let mut command = Command::new(crashkit);
            command.args(&args);
            command
        })
    };
    let ck_rd = |dump: &Path| -> Maker<'_> {
        let dump = dump.to_path_buf();
        Box::new(move |page| {
            let mut command = Command::new(crashkit);
            command
                .arg("rd")
                .arg(&dump)
                .args(["-p", &format!("{page:#x}"), "4096"]);
            command
        })
    };
    let py = |script: &Path, mode: &'static str, dump: &Path, with_page: bool| -> Maker<'_> {
        let (script, dump) = (script.to_path_buf(), dump.to_path_buf());
        Box::new(move |page| {
            let mut command = Command::new(python);
            command.arg(&script).arg(mode).arg(&dump);
            if with_page {
                command.arg(format!("{page:#x}"));
            }
            command
        })
    };
    let gdb = |dump: &Path, read: bool| -> Maker<'_> {
        let dump = dump.to_path_buf();
        Box::new(move |page| {
            let mut command = Command::new("gdb");
            command.args(["-batch", "-nx", "-c"]).arg(&dump);
            if read {
                command.args(["-ex", &format!("x/512xg {:#x}", DIRECT_MAP + page)]);
            } else {
                command.args(["-ex", "info registers"]);
            }
            command
        })
    };
    let s = |p: &Path| p.display().to_string();
    let ms = Duration::from_millis;
    let rows: Vec<Row<'_>> = vec![
        Row {
            dump: "16 GiB ELF",
            what: "info",
            crashkit: ck(vec!["info".into(), s(&dumps.elf)]),
            peer_name: "gdb info registers",
            peer: gdb(&dumps.elf, false),
            target: Some((ms(100), 10.0)),
        },
        Row {
            dump: "16 GiB ELF",
            what: "cpus",
            crashkit: ck(vec!["cpus".into(), s(&dumps.elf)]),
            peer_name: "gdb info registers",
            peer: gdb(&dumps.elf, false),
            target: Some((ms(100), 10.0)),
        },
        Row {
            dump: "16 GiB ELF",
            what: "rd -p, one page",
            crashkit: ck_rd(&dumps.elf),
            peer_name: "gdb x/512xg",
            peer: gdb(&dumps.elf, true),
            target: Some((ms(1), 10.0)),
        },
        Row {
            dump: "16 GiB ELF",
            what: "info",
            crashkit: ck(vec!["info".into(), s(&dumps.elf)]),
            peer_name: "drgn open",
            peer: py(&scripts.drgn, "open", &dumps.elf, false),
            target: Some((ms(100), 10.0)),
        },
        Row {
            dump: "16 GiB ELF",
            what: "rd -p, one page",
            crashkit: ck_rd(&dumps.elf),
            peer_name: "drgn open, read",
            peer: py(&scripts.drgn, "read", &dumps.elf, true),
            target: Some((ms(1), 10.0)),
        },
        Row {
            dump: "16 GiB kdump zlib",
            what: "info",
            crashkit: ck(vec!["info".into(), s(&dumps.kdump)]),
            peer_name: "libkdumpfile open",
            peer: py(&scripts.libkdumpfile, "open", &dumps.kdump, false),
            target: Some((ms(100), 10.0)),
        },
        Row {
            dump: "16 GiB kdump zlib",
            what: "cpus",
            crashkit: ck(vec!["cpus".into(), s(&dumps.kdump)]),
            peer_name: "libkdumpfile open",
            peer: py(&scripts.libkdumpfile, "open", &dumps.kdump, false),
            target: Some((ms(100), 10.0)),
        },
        Row {
            dump: "16 GiB kdump zlib",
            what: "rd -p, one page",
            crashkit: ck_rd(&dumps.kdump),
            peer_name: "libkdumpfile open, read",
            peer: py(&scripts.libkdumpfile, "read", &dumps.kdump, true),
            target: Some((ms(1), 10.0)),
        },
        Row {
            dump: "16 GiB kdump zlib",
            what: "rd -p, one page",
            crashkit: ck_rd(&dumps.kdump),
            peer_name: "drgn open, read",
            peer: py(&scripts.drgn, "read", &dumps.kdump, true),
            target: Some((ms(1), 10.0)),
        },
    ];
    let mut report = String::from(
        "| dump | command | crashkit: wall, peak memory | peer | peer: wall, peak memory | peer / crashkit | target | met |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    // Start-up alone: Python's, stated with the peers that run in it, and
    // crashkit's (`--version`: the process, the loader and clap).
    let alone = |command: &mut dyn FnMut() -> Command| -> Result<Duration, String> {
        let mut walls = Vec::new();
        for round in 0..=pages.len().max(10) {
            let sample = sample(&mut command())?;
            if round > 0 {
                walls.push(sample.wall);
            }
        }
        Ok(median(&mut walls))
    };
    let python_alone = alone(&mut || {
        let mut command = Command::new(python);
        command.args(["-c", "pass"]);
        command
    })?;
    // The peak memory a process that does nothing reports when started
    // from here: the floor under every peak-memory figure (Linux counts a
    // child's peak from the spawning process's address space too).
    let floor_kib = {
        let mut peaks = Vec::new();
        for _ in 0..5 {
            peaks.push(sample(&mut Command::new("/bin/true"))?.max_rss_kib);
        }
        median(&mut peaks)
    };
    let true_alone = alone(&mut || Command::new("/bin/true"))?;
    let crashkit_alone = alone(&mut || {
        let mut command = Command::new(crashkit);
        command.arg("--version");
        command
    })?;
    for row in &rows {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut our_rss, mut their_rss) = (Vec::new(), Vec::new());
        // One unmeasured run of each per page first (page cache, dynamic
        // loader): every measured run finds its files warm.
        for &page in pages {
            sample(&mut (row.crashkit)(page))?;
            sample(&mut (row.peer)(page))?;
        }
        for &page in pages {
            let a = sample(&mut (row.crashkit)(page))?;
            let b = sample(&mut (row.peer)(page))?;
            ours.push(a.wall);
            our_rss.push(a.max_rss_kib);
            theirs.push(b.wall);
            their_rss.push(b.max_rss_kib);
        }
        eprintln!(
            "cli-bench: {} {} against {}",
            row.dump, row.what, row.peer_name
        );
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        let (our_rss, their_rss) = (median(&mut our_rss), median(&mut their_rss));
        let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
        let (target, met) = match row.target {
            Some((most, at_least)) => (
                format!("< {} ms, >= {at_least}x", most.as_secs_f64() * 1e3),
                if ours < most && ratio >= at_least {
                    "yes"
                } else {
                    "**no**"
                },
            ),
            None => ("-".into(), "-"),
        };
        // At the floor, the figure says only that it is no more.
        let peak = |kib: u64| {
            let mib = kib as f64 / 1024.0;
            if kib <= floor_kib {
                format!("<= {mib:.1} MiB")
            } else {
                format!("{mib:.1} MiB")
            }
        };
        report.push_str(&format!(
            "| {} | `{}` | {:.2} ms, {} | {} | {:.1} ms, {} | {ratio:.1}x | {target} | {met} |\n",
            row.dump,
            row.what,
            ours.as_secs_f64() * 1e3,
            peak(our_rss),
            row.peer_name,
            theirs.as_secs_f64() * 1e3,
            peak(their_rss),
        ));
    }
    report.push_str(&format!(
        "\nStart-up alone (median): a process that does nothing (`/bin/true`), {:.2} ms; Python \
         (`/usr/bin/python3 -c pass`), part of every libkdumpfile and drgn time, {:.2} ms; \
         crashkit (`crashkit --version`: the process, the loader, clap), part of every crashkit time, {:.2} ms.\n",
        true_alone.as_secs_f64() * 1e3,
        python_alone.as_secs_f64() * 1e3,
        crashkit_alone.as_secs_f64() * 1e3
    ));
    report.push_str(&format!(
        "Peak memory floor: `/bin/true` started the same way reports {:.1} MiB (the measuring process's own address space counts toward its children's peak).\n",
        floor_kib as f64 / 1024.0
    ));
    report.push_str(&in_process(dumps, pages)?);
    report.push_str(&verify(crashkit, dumps, scripts)?);
    Ok(report)
}

/// crashkit's format library in this process: parse the mapped dump and
/// read one page, the work `rd` does once running (no process start-up,
/// no output). Median of many.
fn in_process(dumps: &Dumps, pages: &[u64]) -> Result<String, String> {
    let mut out = String::from(
        "\nIn this process (parse the mapped dump, read one page; median of 200):\n\n",
    );
    for (name, path, elf) in [
        ("16 GiB ELF", &dumps.elf, true),
        ("16 GiB kdump zlib", &dumps.kdump, false),
    ] {
        let map = map(path)?;
        let mut page = vec![0u8; PAGE_SIZE as usize];
        let mut times = Vec::new();
        for round in 0..200 {
            let phys = pages[round % pages.len()];
            let started = Instant::now();
            let read = if elf {
                let dump = ElfDump::parse(&map).map_err(|e| e.to_string())?;
                dump.read_phys(phys, &mut page).is_ok()
            } else {
                let dump = KdumpDump::parse(&map).map_err(|e| e.to_string())?;
                dump.read_phys(phys, &mut page).is_ok()
            };
            times.push(started.elapsed());
            if !read {
                return Err(format!("{name}: page {phys:#x} did not read"));
            }
        }
        out.push_str(&format!(
            "- {name}: {:.1} µs\n",
            median(&mut times).as_secs_f64() * 1e6
        ));
    }
    Ok(out)
}

/// `crashkit verify` on the 1 GiB zlib dump against libkdumpfile reading
/// every page: throughput in the dump's dumpable pages per second.
fn verify(crashkit: &Path, dumps: &Dumps, scripts: &Scripts) -> Result<String, String> {
    let bytes =
        std::fs::read(&dumps.verify).map_err(|e| format!("{}: {e}", dumps.verify.display()))?;
    let dump = KdumpDump::parse(&bytes).map_err(|e| e.to_string())?;
    let counts = dump.page_counts();
    let pages = counts.present;
    let end = dump.frames() * PAGE_SIZE;
    drop(dump);
    drop(bytes);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..4 {
        let a = sample(Command::new(crashkit).arg("verify").arg(&dumps.verify))?;
        let b = sample(
            Command::new("/usr/bin/python3")
                .arg(&scripts.libkdumpfile)
                .arg("every")
                .arg(&dumps.verify)
                .arg(format!("{end:#x}")),
        )?;
        // Round 0 warms the page cache.
        if round > 0 {
            ours.push(a);
            theirs.push(b);
        }
    }
    let mb = |s: &Sample| (pages * PAGE_SIZE) as f64 / s.wall.as_secs_f64() / 1e6;
    ours.sort_by_key(|s| s.wall);
    theirs.sort_by_key(|s| s.wall);
    let (a, b) = (ours[ours.len() / 2], theirs[theirs.len() / 2]);
    let ratio = b.wall.as_secs_f64() / a.wall.as_secs_f64();
    Ok(format!(
        "\n`verify` on the 1 GiB zlib dump (makedumpfile -c -d 1, {pages} dumpable pages, median of 3):\n\n\
         | | wall | peak memory | pages/s | MB/s of pages |\n|---|---|---|---|---|\n\
         | crashkit verify | {:.2} s | {:.1} MiB | {:.0} | {:.0} |\n\
         | libkdumpfile, every page | {:.2} s | {:.1} MiB | {:.0} | {:.0} |\n\n\
         crashkit / libkdumpfile: {ratio:.2}x (target: at least 1x: {})\n",
        a.wall.as_secs_f64(),
        a.max_rss_kib as f64 / 1024.0,
        pages as f64 / a.wall.as_secs_f64(),
        mb(&a),
        b.wall.as_secs_f64(),
        b.max_rss_kib as f64 / 1024.0,
        pages as f64 / b.wall.as_secs_f64(),
        mb(&b),
        if ratio >= 1.0 { "met" } else { "**not met**" }
    ))
}
