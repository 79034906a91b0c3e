//! crashkit's dumps checked by tools nobody here wrote: binutils' `readelf`
//! lists every note and segment of an ELF vmcore as written, `gdb` opens it
//! with one thread per CPU and the registers written; libkdumpfile reads
//! crashkit's kdump-compressed files of every codec, and files whose pages
//! other encoders made (snap's snappy, libzstd at three settings), page for
//! page, as crashkit's reader does; `makedumpfile -R` reassembles
//! crashkit's flattened streams byte for byte.
//!
//! `cargo xtask test` installs `binutils` and `gdb` when they are missing;
//! run alone, these tests fail (never skip) without them.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Machine, Memory, standard_zero, write};
use crashkit_dump_format::elf::reader::ElfDump;

/// Run `program` with `args`, returning its standard output; fails the test
/// with what to install when the program is missing.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install it (cargo xtask test does, with apt)")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dump-format");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn readelf_lists_every_note_and_segment_as_written() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (file, _) = write(&machine.plan(), &mut memory);
    let path = scratch("readelf.vmcore");
    std::fs::write(&path, &file).unwrap();
    let dump = ElfDump::parse(&file).unwrap();

    let listing = run("readelf", &["-h", "-n", "-l", "-W", path.to_str().unwrap()]);
    assert!(listing.contains("CORE (Core file)"), "{listing}");
    assert!(
        listing.contains("Advanced Micro Devices X86-64"),
        "{listing}"
    );

    // Segments: readelf's LOAD lines, field by field, equal ours.
    let loads: Vec<Vec<u64>> = listing
        .lines()
        .filter(|line| line.trim_start().starts_with("LOAD"))
        .map(|line| {
            line.split_whitespace()
                .skip(1)
                .take(5)
                .map(|field| u64::from_str_radix(field.trim_start_matches("0x"), 16).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(loads.len(), dump.segments().len());
    for (load, segment) in loads.iter().zip(dump.segments()) {
        assert_eq!(
            load,
            &[
                segment.offset,
                segment.vaddr,
                segment.paddr,
                segment.filesz,
                segment.memsz
            ]
        );
    }
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.trim_start().starts_with("NOTE"))
            .count(),
        1
    );

    // Notes: names, types and sizes in order.
    let notes: Vec<(String, String)> = listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let owner = words.next()?;
            let size = words.next()?;
            let is_note =
                ["CORE", "VMCOREINFO", "CRASHKIT"].contains(&owner) && size.starts_with("0x");
            is_note.then(|| (owner.to_string(), size.to_string()))
        })
        .collect();
    let mut expected = vec![("CORE".to_string(), "0x00000150".to_string()); 4];
    expected.push((
        "VMCOREINFO".into(),
        format!("{:#010x}", machine.vmcoreinfo.len()),
    ));
    expected.push(("CRASHKIT".into(), "0x00000050".into()));
    expected.extend(vec![("CRASHKIT".into(), "0x00000060".into()); 4]);
    expected.push((
        "CRASHKIT".into(),
        format!("{:#010x}", machine.ranges.len() * 16),
    ));
    expected.push(("CRASHKIT".into(), format!("{:#010x}", machine.record.len())));
    expected.push(("CRASHKIT".into(), "0x00000030".into()));
    assert_eq!(notes, expected, "{listing}");
    // Only the CORE notes read as registers: crashkit's types keep clear
    // of the numbers readelf and gdb take for core-file notes.
    assert_eq!(
        listing.matches("NT_PRSTATUS (prstatus structure)").count(),
        4
    );
    assert_eq!(
        listing.matches("Unknown note type: (0x6b63").count(),
        8,
        "{listing}"
    );
}

#[test]
fn gdb_shows_one_thread_per_cpu_with_the_registers_written() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let (file, _) = write(&machine.plan(), &mut memory);
    let path = scratch("gdb.vmcore");
    std::fs::write(&path, &file).unwrap();

    let mut args = vec![
        "-batch",
        "-nx",
        "-ex",
        "set architecture i386:x86-64",
        "-core",
        path.to_str().unwrap(),
        "-ex",
        "info threads",
    ];
    let per_thread: Vec<String> = (1..=4)
        .flat_map(|thread| {
            [
                format!("thread {thread}"),
                "info registers rip rsp rbx r15 cs fs_base gs_base".to_string(),
            ]
        })
        .collect();
    for command in &per_thread {
        args.extend(["-ex", command.as_str()]);
    }
    let output = run("gdb", &args);

    // One thread per CPU, LWP = pr_pid = CPU index + 1, the panicking CPU
    // (index 2, LWP 3) first and selected.
    for lwp in 1..=4 {
        assert!(
            output.contains(&format!("LWP {lwp}")),
            "LWP {lwp} missing:\n{output}"
        );
    }
    let first_thread = output
        .lines()
        .find(|l| l.trim_start().starts_with("* 1"))
        .unwrap_or_else(|| panic!("no selected thread 1:\n{output}"));
    assert!(first_thread.contains("LWP 3"), "{first_thread}");

    // Registers, per thread in note order (CPUs 2, 0, 1, 3).
    let values: Vec<u64> = output
        .lines()
        .filter(|l| {
            let name = l.split_whitespace().next().unwrap_or("");
            ["rip", "rsp", "rbx", "r15", "cs", "fs_base", "gs_base"].contains(&name)
        })
        .map(|l| {
            let hex = l.split_whitespace().nth(1).unwrap();
            u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
        })
        .collect();
    let mut expected = Vec::new();
    for cpu in [2u32, 0, 1, 3] {
        let r = common::registers(cpu);
        expected.extend([r.rip, r.rsp, r.rbx, r.r15, r.cs, r.fs_base, r.gs_base]);
    }
    assert_eq!(values, expected, "{output}");
}

/// The machine the libkdumpfile checks write, its memory (pages of several
/// shapes, different in every frame, so that every codec path, matches
/// near and far, literal runs, raw pages, is met), and the file of what
/// every page must read as, for `tests/libkdumpfile_check.py`, named after
/// the test (tests run at once: each writes and reads its own file).
fn libkdumpfile_case(test: &str) -> (Machine, Memory, PathBuf) {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let text = b"libkdumpfile reads what crashkit writes; page after page. ".repeat(100);
    for (phys, page) in memory.pages.iter_mut() {
        let frame = (phys / 4096) as usize;
        match frame % 4 {
            0 => page.copy_from_slice(&text[frame % 57..frame % 57 + 4096]),
            1 => {
                for (i, word) in page.chunks_mut(8).enumerate() {
                    let value = if i % 5 == 0 {
                        0
                    } else {
                        0xffff_8880_0000_0000u64 + (frame * 512 + i * 64) as u64
                    };
                    word.copy_from_slice(&value.to_le_bytes());
                }
            }
            2 => {
                let seed = page[0];
                page.fill(0);
                for i in (0..4096).step_by(61 + frame % 7) {
                    page[i] = seed.wrapping_add(i as u8) | 1;
                }
            }
            _ => {} // the pattern: incompressible, stored raw
        }
    }
    // What every page must read as: present with its bytes, or excluded.
    let mut expected = Vec::new();
    for range in &machine.ranges {
        for phys in (range.start..range.start + range.len).step_by(4096) {
            let secret = machine
                .exclusions
                .iter()
                .any(|e| e.start < phys + 4096 && phys < e.start + e.len);
            expected.extend_from_slice(&phys.to_le_bytes());
            if secret {
                expected.push(2);
            } else {
                expected.push(1);
                expected.extend_from_slice(&memory.expected(phys));
            }
        }
    }
    let expected_path = scratch(&format!("libkdumpfile-{test}.expected"));
    std::fs::write(&expected_path, &expected).unwrap();
    (machine, memory, expected_path)
}

/// Write the case with `encoder`; crashkit's reader and libkdumpfile must
/// both read every page as `expected` says (and, with `arch`, libkdumpfile
/// must know the architecture). libkdumpfile's summary line.
fn write_and_read_back(
    name: &str,
    encoder: &mut impl crashkit_dump_format::compressed::writer::PageEncoder,
    case: &mut (Machine, Memory, PathBuf),
) -> String {
    write_and_read_back_as(name, encoder, case, None)
}

fn write_and_read_back_as(
    name: &str,
    encoder: &mut impl crashkit_dump_format::compressed::writer::PageEncoder,
    case: &mut (Machine, Memory, PathBuf),
    arch: Option<&str>,
) -> String {
    let (machine, memory, expected_path) = case;
    let mut sink = common::VecSink::default();
    crashkit_dump_format::compressed::writer::write_kdump(
        &machine.plan(),
        memory,
        &mut sink,
        &mut |_| false,
        encoder,
        crashkit_dump_format::write::WriteOptions::default(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let dump = crashkit_dump_format::KdumpDump::parse(&sink.bytes)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut page = vec![0u8; 4096];
    for range in &machine.ranges {
        for phys in (range.start..range.start + range.len).step_by(4096) {
            if dump.read_page(phys / 4096, &mut page).is_ok() {
                assert_eq!(page, memory.expected(phys), "{name}: page {phys:#x}");
            }
        }
    }
    let path = scratch(&format!("crashkit-{name}.kdump"));
    std::fs::write(&path, &sink.bytes).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libkdumpfile_check.py");
    let mut args = vec![
        script.to_str().unwrap(),
        path.to_str().unwrap(),
        expected_path.to_str().unwrap(),
    ];
    args.extend(arch);
    let output = run("/usr/bin/python3", &args);
    assert!(output.contains("pages equal"), "{name}: {output}");
    output
}

/// A dump of a Linux kernel (its VMCOREINFO names `init_uts_ns`) gets a
/// header utsname libkdumpfile takes: sysname `Linux` and no field empty,
/// so it knows the architecture (drgn, on libkdumpfile, refuses a kdump
/// file whose architecture it does not know).
#[test]
fn libkdumpfile_knows_the_architecture_of_a_linux_kdump_file() {
    let mut case = libkdumpfile_case("linux");
    case.0
        .vmcoreinfo
        .extend_from_slice(b"SYMBOL(init_uts_ns)=ffffffff82bfb000\n");
    let mut encoder = crashkit_dump_format::compressed::writer::RawPages;
    let output = write_and_read_back_as("linux", &mut encoder, &mut case, Some("x86_64"));
    println!("{output}");
}

#[test]
fn libkdumpfile_reads_crashkit_kdump_files_of_every_codec() {
    use crashkit_dump_format::compressed::writer::{
        LzoPages, PageEncoder, RawPages, SnappyPages, ZlibPages, ZstdPages,
    };
    let mut case = libkdumpfile_case("every-codec");
    let levels: Vec<String> = (1..=ZlibPages::MAX_LEVEL)
        .map(|level| format!("zlib-{level}"))
        .collect();
    let mut encoders: Vec<(&str, Box<dyn PageEncoder>)> = vec![
        ("raw", Box::new(RawPages)),
        // crashkit's own LZO1X encoder, decoded by liblzo2 inside libkdumpfile.
        ("lzo", Box::new(LzoPages::default())),
        // crashkit's own snappy encoder; zstd through ruzstd's encoder.
        ("snappy", Box::new(SnappyPages::default())),
        ("zstd", Box::new(ZstdPages)),
    ];
    // crashkit's page deflate at every level, inflated by zlib inside
    // libkdumpfile.
    for (level, name) in (1..=ZlibPages::MAX_LEVEL).zip(&levels) {
        encoders.push((name, Box::new(ZlibPages::with_level(level))));
    }
    for (name, mut encoder) in encoders {
        let output = write_and_read_back(name, &mut encoder, &mut case);
        println!("{name}: {output}");
    }
}

/// Pages compressed by encoders nobody here wrote, test-only: the `snap`
/// crate's snappy and the reference zstd library (through the `zstd`
/// crate) at levels whose streams differ in kind (level 19 uses compressed
/// literals and sequences and repeat offsets ruzstd's fastest level never
/// writes; one stream with a content checksum).
/// A page in, its compressed bytes out.
type Compress = Box<dyn FnMut(&[u8]) -> Vec<u8>>;

struct Foreign {
    flag: u32,
    compress: Compress,
}

impl crashkit_dump_format::compressed::writer::PageEncoder for Foreign {
    fn flag(&self) -> u32 {
        self.flag
    }

    fn encode(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        let compressed = (self.compress)(page);
        (compressed.len() < page.len()).then(|| {
            out[..compressed.len()].copy_from_slice(&compressed);
            compressed.len()
        })
    }
}

#[test]
fn crashkit_and_libkdumpfile_read_snappy_and_zstd_pages_of_other_encoders() {
    use crashkit_dump_format::compressed::header::{FLAG_SNAPPY, FLAG_ZSTD};
    let mut case = libkdumpfile_case("foreign");
    let zstd_at = |level: i32, checksum: bool| -> Compress {
        let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
        compressor.include_checksum(checksum).unwrap();
        Box::new(move |page| compressor.compress(page).unwrap())
    };
    let mut snap = snap::raw::Encoder::new();
    let foreign: Vec<(&str, Foreign)> = vec![
        (
            "snap",
            Foreign {
                flag: FLAG_SNAPPY,
                compress: Box::new(move |page| snap.compress_vec(page).unwrap()),
            },
        ),
        (
            "libzstd-1",
            Foreign {
                flag: FLAG_ZSTD,
                compress: zstd_at(1, false),
            },
        ),
        (
            "libzstd-19",
            Foreign {
                flag: FLAG_ZSTD,
                compress: zstd_at(19, false),
            },
        ),
        (
            "libzstd-3-checksum",
            Foreign {
                flag: FLAG_ZSTD,
                compress: zstd_at(3, true),
            },
        ),
    ];
    for (name, mut encoder) in foreign {
        let output = write_and_read_back(name, &mut encoder, &mut case);
        println!("{name}: {output}");
    }
}

/// An appending sink for the flattened writer.
struct Stream(Vec<u8>);

impl crashkit_dump_format::compressed::flat_writer::StreamSink for Stream {
    type Error = std::convert::Infallible;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[test]
fn makedumpfile_reassembles_crashkit_flattened_streams_byte_for_byte() {
    use crashkit_dump_format::compressed::flat_writer::FlatSink;
    use crashkit_dump_format::compressed::writer::{ZlibPages, write_kdump};
    use crashkit_dump_format::write::WriteOptions;
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let text = b"flattened, then reassembled. ".repeat(150);
    for (phys, page) in memory.pages.iter_mut() {
        if (phys / 4096) % 2 == 0 {
            page.copy_from_slice(&text[..4096]);
        }
    }
    // The same dump to a seekable sink and as a stream, both formats.
    let mut plain_kdump = common::VecSink::default();
    let mut flat_kdump = FlatSink::new(Stream(Vec::new()));
    for sink in [&mut plain_kdump as &mut dyn DynSink, &mut flat_kdump] {
        write_kdump(
            &machine.plan(),
            &mut memory,
            &mut SinkRef(sink),
            &mut |_| false,
            &mut ZlibPages::new(),
            WriteOptions::default(),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    }
    let flat_kdump = flat_kdump.finish().unwrap().0;
    let mut plain_elf = common::VecSink::default();
    let mut flat_elf = FlatSink::new(Stream(Vec::new()));
    for sink in [&mut plain_elf as &mut dyn DynSink, &mut flat_elf] {
        crashkit_dump_format::write_elf_dump(
            &machine.plan(),
            &mut memory,
            &mut SinkRef(sink),
            &mut |_| false,
            WriteOptions::default(),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    }
    let flat_elf = flat_elf.finish().unwrap().0;
    for (name, flat, plain) in [
        ("kdump", flat_kdump, plain_kdump.bytes),
        ("elf", flat_elf, plain_elf.bytes),
    ] {
        let flat_path = scratch(&format!("crashkit-{name}.flat"));
        let out_path = scratch(&format!("crashkit-{name}.reassembled"));
        std::fs::write(&flat_path, &flat).unwrap();
        let _ = std::fs::remove_file(&out_path);
        let input = std::fs::File::open(&flat_path).unwrap();
        let status = Command::new("makedumpfile")
            .arg("-R")
            .arg(&out_path)
            .stdin(input)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run makedumpfile ({e}): cargo xtask test installs it")
            });
        assert!(
            status.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let reassembled = std::fs::read(&out_path).unwrap();
        assert!(
            reassembled == plain,
            "{name}: makedumpfile -R differs from the positional file"
        );
        // crashkit's reader takes the stream as it is.
        if name == "kdump" {
            let dump = crashkit_dump_format::KdumpDump::parse(&flat).unwrap();
            assert!(dump.is_flattened());
            assert_eq!(
                dump.completeness(),
                crashkit_dump_format::read::Completeness::Complete
            );
        }
    }
}

/// Object-safe view of the two sinks the test drives.
trait DynSink {
    fn write_at(&mut self, offset: u64, bytes: &[u8]);
}

impl DynSink for common::VecSink {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) {
        let _ = crashkit_dump_format::DumpSink::write_at(self, offset, bytes);
    }
}

impl DynSink for crashkit_dump_format::compressed::flat_writer::FlatSink<Stream> {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) {
        let _ = crashkit_dump_format::DumpSink::write_at(self, offset, bytes);
    }
}

struct SinkRef<'a>(&'a mut dyn DynSink);

impl crashkit_dump_format::DumpSink for SinkRef<'_> {
    type Error = std::convert::Infallible;
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write_at(offset, bytes);
        Ok(())
    }
}
