//! Write the fuzz targets' seed corpora: small valid ELF vmcores of each
//! kind the reader knows (crashkit's with every note, a QEMU-style one in
//! x86_64 and in i386 form) in `DIR/elf_reader`, and kdump-compressed
//! files (every codec, plain and flattened) in `DIR/kdump_reader`, so that
//! fuzzing starts from real structure.
//!
//! Usage: `cargo run -p crashkit-dump-format --example seed_corpus -- DIR`
//! (`cargo xtask fuzz` runs it).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Machine, Memory, qemu_style_elf};
use crashkit_dump_format::PhysRange;
use crashkit_dump_format::plan::KernelImage;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: seed_corpus DIR");
        std::process::exit(2);
    };
    let root = std::path::PathBuf::from(dir);
    let dir = root.join("elf_reader");
    std::fs::create_dir_all(&dir)?;

    // Small pages keep seeds small: a few pages per range, most of them zero.
    let mut machine = Machine::new();
    machine.ranges = vec![
        PhysRange::new(0x1000, 0x3000),
        PhysRange::new(0x10_0000, 0x4000),
    ];
    machine.exclusions = vec![PhysRange::new(0x10_2000, 0x10)];
    machine.kernel = Some(KernelImage {
        phys_start: 0x10_0000,
        virt_start: 0xffff_ffff_8010_0000,
        len: 0x2000,
    });
    machine.cpus.truncate(2);
    let mut memory = Memory::patterned(&machine.ranges, |phys| phys % 0x2000 == 0);
    let plan = crashkit_dump_format::DumpPlan {
        panic_cpu: Some(1),
        extra_segments: 8,
        ..machine.plan()
    };
    let (crashkit, _) = common::write(&plan, &mut memory);
    std::fs::write(dir.join("crashkit.vmcore"), &crashkit)?;
    std::fs::write(
        dir.join("crashkit-cut.vmcore"),
        &crashkit[..crashkit.len() / 2],
    )?;

    let ranges = [PhysRange::new(0, 0x2000), PhysRange::new(0x10_0000, 0x1000)];
    let memory = Memory::patterned(&ranges, |phys| phys == 0x1000);
    std::fs::write(
        dir.join("qemu.vmcore"),
        qemu_style_elf(&ranges, &memory, 2, false),
    )?;
    std::fs::write(
        dir.join("qemu-i386.vmcore"),
        qemu_style_elf(&ranges, &memory, 1, true),
    )?;
    let kdump_dir = root.join("kdump_reader");
    std::fs::create_dir_all(&kdump_dir)?;
    let frames = common::kdump::mixed_frames(24);
    let kdump = common::kdump::build(&frames, &[]);
    std::fs::write(kdump_dir.join("mixed.kdump"), &kdump)?;
    std::fs::write(
        kdump_dir.join("mixed.flat"),
        common::kdump::flatten(&kdump, 5000),
    )?;
    // crashkit's own kdump file: notes, completion marker, shared zero page.
    let mut sink = common::VecSink::default();
    let mut memory = Memory::patterned(&machine.ranges, |phys| phys % 0x2000 == 0);
    if let Err(error) = crashkit_dump_format::compressed::writer::write_kdump(
        &plan,
        &mut memory,
        &mut sink,
        &mut |_| false,
        &mut crashkit_dump_format::compressed::writer::ZlibPages::new(),
        crashkit_dump_format::write::WriteOptions::default(),
        |_| {},
    ) {
        eprintln!("seed_corpus: the crashkit kdump seed failed: {error:?}");
        std::process::exit(1);
    }
    std::fs::write(kdump_dir.join("crashkit-zlib.kdump"), &sink.bytes)?;
    // The page encoders: a mode byte, then bytes stretched to a page.
    let encoders_dir = root.join("page_encoders");
    std::fs::create_dir_all(&encoders_dir)?;
    let text = b"crash_kexec(regs); panic(\"Fatal exception\"); ".repeat(100);
    let seeds: [(&str, Vec<u8>); 4] = [
        ("text", [&[0u8][..], &text[..4096]].concat()),
        ("zero-run", vec![0; 64]),
        (
            "slab",
            (0..512u64)
                .flat_map(|i| (0xffff_8880_0000_0000 + i * 64).to_le_bytes())
                .collect(),
        ),
        ("short", [&[1u8][..], &text[..700]].concat()),
    ];
    for (name, bytes) in seeds {
        std::fs::write(encoders_dir.join(name), bytes)?;
    }
    println!("seed corpora written to {}", root.display());
    Ok(())
}
