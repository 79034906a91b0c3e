//! A first measurement of the kdump writer's codecs (not yet the issue's
//! 1 GiB benchmark): builds a memory image of a stated mix, writes it as a
//! kdump-compressed file with each codec, and reports input throughput and
//! output size; with `--elf FILE` it also writes the image as an ELF
//! vmcore (every page, as /proc/vmcore has them) for makedumpfile to be
//! timed on the same memory.
//!
//! Mix (per 4 KiB page, shuffled by frame): 35% zero; 25% real binaries
//! from /usr/bin and /usr/lib; 10% text from /usr/share/doc; 10% slab-like
//! (kernel pointers, list links, small integers); 10% random; 10% sparse
//! (a few non-zero words).
//!
//! Usage: `cargo run --release -p crashkit-dump-format --example codec_speed -- [MiB] [--elf FILE] [--vmcoreinfo FILE] [--base ELF]`
//! (makedumpfile refuses an ELF without a Linux VMCOREINFO).

use std::time::Instant;

use crashkit_dump_format::compressed::writer::{
    KdumpStats, LzoPages, MinizZlibPages, PageEncoder, RawPages, SnappyPages, ZlibPages,
    write_kdump,
};
use crashkit_dump_format::plan::DumpPlan;
use crashkit_dump_format::write::WriteOptions;
use crashkit_dump_format::{DumpSink, PhysMemory, PhysRange};

struct Image(Vec<u8>);

impl PhysMemory for Image {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        let at = usize::try_from(phys).ok()?;
        self.0.get(at..at + 4096)?.try_into().ok()
    }
}

/// Counts bytes, keeps nothing (the sink costs next to nothing).
struct Counting(u64);

impl DumpSink for Counting {
    type Error = std::convert::Infallible;
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0 = self.0.max(offset + bytes.len() as u64);
        Ok(())
    }
}

struct FileSink(std::fs::File);

impl DumpSink for FileSink {
    type Error = std::io::Error;
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, bytes, offset)
    }
}

fn real_bytes(dirs: &[&str], want: usize) -> Vec<u8> {
    // `want` comes from the image size asked for on the command line, not
    // from a file.
    let mut out = Vec::with_capacity(want);
    let mut stack: Vec<std::path::PathBuf> = dirs.iter().map(Into::into).collect();
    while let Some(path) = stack.pop() {
        if out.len() >= want {
            break;
        }
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
                entries.sort();
                stack.extend(entries);
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
    out.resize(want, 0x90);
    out
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("codec_speed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut mib = 256usize;
    let mut elf = None;
    // An ELF dump whose memory fills the image's low part (real kernel
    // memory, so that makedumpfile can read the kernel it describes).
    let mut base: Option<String> = None;
    // An ELF dump to take every page from instead of the synthetic mix
    // (the kdump benchmark's image: `cargo xtask bench-kdump` makes it).
    let mut image_path: Option<String> = None;
    let mut only: Vec<String> = Vec::new();
    let mut vmcoreinfo = b"OSRELEASE=codec-speed\nPAGESIZE=4096\n".to_vec();
    while let Some(arg) = args.next() {
        if arg == "--elf" {
            elf = args.next();
        } else if arg == "--base" {
            base = args.next();
        } else if arg == "--image" {
            image_path = args.next();
        } else if arg == "--codec" {
            only.extend(args.next());
        } else if arg == "--vmcoreinfo" {
            // makedumpfile needs a Linux VMCOREINFO to run at all.
            let path = args.next().ok_or("--vmcoreinfo needs a FILE")?;
            vmcoreinfo = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        } else if let Ok(n) = arg.parse() {
            mib = n;
        }
    }
    let pages = mib * 256;
    let binaries = real_bytes(
        &["/usr/bin", "/usr/lib/x86_64-linux-gnu"],
        pages / 4 * 4096 + 4096,
    );
    let text = real_bytes(&["/usr/share/doc"], pages / 10 * 4096 + 4096);
    // The image's size is the command line's MiB, not a file's field.
    let mut image = vec![0u8; pages * 4096];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut bin_at, mut text_at) = (0usize, 0usize);
    for (frame, page) in image.chunks_mut(4096).enumerate() {
        let class = (frame.wrapping_mul(2654435761) >> 7) % 100;
        match class {
            0..=34 => {}
            35..=59 => {
                let at = bin_at % (binaries.len() - 4096);
                page.copy_from_slice(&binaries[at..at + 4096]);
                bin_at += 4096;
            }
            60..=69 => {
                let at = text_at % (text.len() - 4096);
                page.copy_from_slice(&text[at..at + 4096]);
                text_at += 4096;
            }
            70..=79 => {
                for (i, word) in page.chunks_mut(8).enumerate() {
                    let value = match (i + frame) % 8 {
                        0 | 1 => 0xffff_8880_0000_0000 + (next() % (1 << 28)) * 64,
                        2 => next() % 4096,
                        3 if next() % 7 == 0 => 0,
                        _ => 0xffff_8880_0000_0000 + ((frame * 512 + i) as u64) * 8,
                    };
                    word.copy_from_slice(&value.to_le_bytes());
                }
            }
            80..=89 => page.iter_mut().for_each(|b| *b = next() as u8),
            _ => {
                for _ in 0..(next() % 16 + 1) {
                    let at = (next() % 512) as usize * 8;
                    page[at..at + 8].copy_from_slice(&next().to_le_bytes());
                }
            }
        }
    }
    if let Some(path) = &base {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let dump =
            crashkit_dump_format::ElfDump::parse(&bytes).map_err(|e| format!("{path}: {e}"))?;
        let mut copied = 0;
        for (frame, page) in image.chunks_mut(4096).enumerate() {
            if dump.read_phys(frame as u64 * 4096, page).is_ok() {
                copied += 1;
            }
        }
        if let Some(info) = dump.vmcoreinfo() {
            vmcoreinfo = info
                .entries()
                .flat_map(|(k, v)| format!("{k}={v}\n").into_bytes())
                .collect();
        }
        println!("base: {copied} pages from {path}");
    }
    if let Some(path) = &image_path {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let dump =
            crashkit_dump_format::ElfDump::parse(&bytes).map_err(|e| format!("{path}: {e}"))?;
        // The image is held in memory from address 0: its end comes from
        // the file, so it is checked and bounded before anything is
        // allocated.
        const MOST: u64 = 64 << 30;
        let mut end = 0u64;
        for segment in dump.segments() {
            let segment_end = segment
                .paddr
                .checked_add(segment.memsz)
                .filter(|&e| e <= MOST)
                .ok_or_else(|| format!("{path}: segment {} ends past {MOST:#x}", segment.index))?;
            end = end.max(segment_end);
        }
        image = vec![0u8; usize::try_from(end).map_err(|_| "image too large")?];
        for segment in dump.segments() {
            let (start, len) = (segment.paddr as usize, segment.memsz as usize);
            dump.read_phys(segment.paddr, &mut image[start..start + len])
                .map_err(|e| format!("{path}: {e}"))?;
        }
        mib = image.len() >> 20;
        println!("image: every page of {path}");
    }
    let pages = image.len() / 4096;
    let ranges = [PhysRange::new(0, (pages * 4096) as u64)];
    let plan = DumpPlan {
        dump_id: [7; 16],
        crash_time: 0,
        ranges: &ranges,
        exclusions: &[],
        direct_map: Some(0xffff_8880_0000_0000),
        kernel_image: None,
        cpus: &[],
        panic_cpu: None,
        vmcoreinfo: &vmcoreinfo,
        crash_record: &[],
        exclude_zero_pages: true,
        extra_segments: 0,
    };
    let mut memory = Image(image);
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if let Some(path) = elf {
        let file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
        let all = DumpPlan {
            exclude_zero_pages: false,
            ..plan
        };
        crashkit_dump_format::write_elf_dump(
            &all,
            &mut memory,
            &mut FileSink(file),
            &mut |_| false,
            WriteOptions::default(),
            |_| {},
        )
        .map_err(|e| format!("writing {path}: {e:?}"))?;
        println!("ELF vmcore of the image written to {path}");
    }
    let input_mb = (pages * 4096) as f64 / 1e6;
    println!("image: {mib} MiB, {pages} pages");
    let measure = |name: &str,
                   encoder: &mut dyn FnMut(&mut Image) -> KdumpStats,
                   memory: &mut Image| {
        let mut best = f64::MAX;
        let mut stats = KdumpStats::default();
        for _ in 0..3 {
            let started = Instant::now();
            stats = encoder(memory);
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!(
            "{name:6}: {:7.0} MB/s input, output {:6.1} MB ({} compressed, {} raw, {} zero pages)",
            input_mb / best,
            stats.total_length as f64 / 1e6,
            stats.compressed_pages,
            stats.raw_pages,
            stats.zero_pages
        );
    };
    fn write_with<E: PageEncoder>(
        plan: &DumpPlan<'_>,
        memory: &mut Image,
        encoder: &mut E,
    ) -> KdumpStats {
        write_kdump(
            plan,
            memory,
            &mut Counting(0),
            &mut |_| false,
            encoder,
            WriteOptions::default(),
            |_| {},
        )
        // Unreachable by input: the plan is built above from the command
        // line and valid, and the counting sink cannot fail.
        .expect("a valid plan into an infallible sink")
    }
    if wanted("raw") {
        measure(
            "raw",
            &mut |m| write_with(&plan, m, &mut RawPages),
            &mut memory,
        );
    }
    if wanted("lzo") {
        measure(
            "lzo",
            &mut |m| write_with(&plan, m, &mut LzoPages::default()),
            &mut memory,
        );
    }
    if wanted("snappy") {
        measure(
            "snappy",
            &mut |m| write_with(&plan, m, &mut SnappyPages::default()),
            &mut memory,
        );
    }
    if wanted("zlib") {
        measure(
            "zlib",
            &mut |m| write_with(&plan, m, &mut ZlibPages::new()),
            &mut memory,
        );
    }
    for level in 1..=ZlibPages::MAX_LEVEL {
        let name = format!("zlib:{level}");
        if wanted(&name) {
            measure(
                &name,
                &mut |m| write_with(&plan, m, &mut ZlibPages::with_level(level)),
                &mut memory,
            );
        }
    }
    for level in 1..=3u8 {
        let name = format!("miniz{level}");
        if wanted(&name) {
            measure(
                &name,
                &mut |m| write_with(&plan, m, &mut MinizZlibPages::new(level)),
                &mut memory,
            );
        }
    }
    Ok(())
}
