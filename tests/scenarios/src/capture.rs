//! `--capture`: the panicking scenarios end in a dump written by the guest.
//!
//! The test kernel gets the capture kernel as boot module 0 (`-initrd`) and
//! a 64 MiB virtio-blk disk backed by a host file; it loads the capture
//! kernel at boot and its panic path hands over to it. The runner then
//! checks, for each boot:
//!
//! 1. the serial log: the capture kernel wrote the dump and reset;
//! 2. the record in guest RAM: the panic ended in the hand-over (the
//!    scenario's own check, in capture mode);
//! 3. `crashkit save` takes the dump off the disk image, `crashkit verify`
//!    passes it;
//! 4. the saved file against guest RAM read independently (the file-backed
//!    RAM): the crash record note is the record's bytes, every page of the
//!    memory map outside the reservation is in the dump and equal to RAM,
//!    the reservation is not; one CPU note per online CPU, the panicking
//!    CPU's first with the registers the record saved;
//! 5. tools nobody here wrote: an ELF dump with readelf (one `NT_PRSTATUS`
//!    per CPU) and gdb with the kernel's ELF (a thread per CPU; the selected
//!    one, the panicking CPU, in the panic path: its backtrace starts in
//!    `RegisterFrame::capture` inside `crashkit_panic_path::entry::panic`); a kdump-compressed dump with libkdumpfile (every page of
//!    the dump's memory equal to guest RAM,
//!    `src/libkdumpfile_ram.py`) and with makedumpfile: `crashkit convert`
//!    makes a flattened stream of it, `makedumpfile -R` reassembles it, and
//!    the result is the saved file's bytes but for crashkit's dump id and
//!    completion marker (a converted file is a new dump: 40 bytes in its
//!    notes), and reads complete with every page equal.
//!
//! The subset ([`SUBSET`]) covers every scenario kind whose point is
//! before the dump step (the owner on the boot CPU or an AP, two CPUs
//! panicking, a panic in NMI context, a CPU stopped by polling, an
//! unresponsive CPU, a warm shootdown), each CPU count (1, 2, 4, 8) and
//! each format the capture kernel writes. Scenarios whose point is after
//! the dump step (notifiers of the post-dump list: `notifier-panic`,
//! `notifier-lock`, `deep-nesting`) never get there with a capture kernel,
//! as Linux's post-kexec notifiers never run: they keep the path without
//! one (final action, exit "ran"), which the plain run checks for every
//! scenario.

use std::path::{Path, PathBuf};
use std::process::Command;

use crashkit_dump_format::read::{Completeness, CpuRegisters};
use crashkit_dump_format::{ElfDump, KdumpDump};
use crashkit_record::{RecordView, SlotFrame};

/// (scenario, -smp, dumpfmt=): the boots that hand over.
pub const SUBSET: &[(&str, u32, &str)] = &[
    ("panic-bsp", 1, "lzo"),
    ("panic-bsp", 8, "elf"),
    ("shootdown-warm", 4, "zlib"),
    ("panic-ap", 2, "lzo"),
    ("panic-ap", 4, "elf"),
    ("panic-ap", 8, "raw"),
    ("panic-two", 4, "lzo"),
    ("panic-in-nmi", 2, "elf"),
    ("nmi-spin", 8, "lzo"),
    ("unresponsive", 4, "lzo"),
];

/// (scenario, -smp, dumpfmt=) of the minimal kernel (`--minimal
/// --capture`), whose dump wiring is `kdump::load_identity`'s defaults:
/// always LZO1X, so `dumpfmt=` is only the label.
pub const MINIMAL_SUBSET: &[(&str, u32, &str)] = &[
    ("panic-bsp", 1, "lzo"),
    ("panic-ap", 4, "lzo"),
    ("unresponsive", 2, "lzo"),
];

/// The capture kernel as `cargo xtask` builds it (into the test kernels'
/// target directory, where the crates both link are built once).
pub fn capture_kernel() -> PathBuf {
    crashkit_qemu::workspace_root()
        .join("tests/kernel/target/x86_64-unknown-none/release/crashkit-capture")
}

/// The `crashkit` CLI as `cargo xtask` builds it (release).
pub fn crashkit_cli() -> PathBuf {
    crashkit_qemu::workspace_root().join("target/release/crashkit")
}

/// The test kernel's reservation (its `crash::RESERVATION`): never dumped.
const RESERVATION: (u64, u64) = (0x400_0000, 0x100_0000);
/// The same, for the fault checks.
pub const RESERVATION_RANGE: (u64, u64) = RESERVATION;
/// The dump disk's size.
const DISK_BYTES: u64 = 64 << 20;

/// Make the boot's disk (sparse, zero) and return QEMU's extra arguments.
pub fn disk(work_dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(work_dir).map_err(|e| format!("{}: {e}", work_dir.display()))?;
    disk_at(&work_dir.join("disk.img"), DISK_BYTES, false)
}

/// The disk at `path`, `bytes` long (sparse, zero; made anew unless
/// `keep` and it exists), as QEMU's extra arguments: a virtio-blk PCI
/// function.
pub fn disk_at(path: &Path, bytes: u64, keep: bool) -> Result<Vec<String>, String> {
    if !keep || !path.exists() {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.set_len(bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(vec![
        "-drive".to_owned(),
        format!("file={},format=raw,if=none,id=dump", path.display()),
        "-device".to_owned(),
        "virtio-blk-pci,drive=dump".to_owned(),
    ])
}

/// The [`Opened`] of either reader (their methods share names, not a
/// trait).
macro_rules! opened {
    ($dump:ident) => {
        Opened {
            completeness: $dump.completeness(),
            record: $dump
                .crashkit()
                .and_then(|c| c.crash_record)
                .map(<[u8]>::to_vec),
            cpus: $dump.cpus().len(),
            first_rip: $dump.cpus().first().and_then(|c| rip(&c.registers)),
            by_index: $dump
                .cpus()
                .iter()
                .filter_map(|c| Some((c.control?.cpu, rip(&c.registers)?, all_zero(&c.registers))))
                .collect(),
            read: Box::new(move |phys, page: &mut [u8]| $dump.read_phys(phys, page).is_ok()),
        }
    };
}

/// A saved dump (`crashkit save`'s file), ELF or kdump-compressed.
pub fn open(file: &[u8]) -> Result<Opened<'_>, String> {
    if file.starts_with(b"\x7fELF") {
        let dump = ElfDump::parse(file).map_err(|e| format!("the saved ELF: {e}"))?;
        Ok(opened!(dump))
    } else {
        let dump = KdumpDump::parse(file).map_err(|e| format!("the saved kdump file: {e}"))?;
        Ok(opened!(dump))
    }
}

/// What the checks need of a saved dump, whichever its format.
pub struct Opened<'a> {
    pub completeness: Completeness,
    /// The crash record note's bytes.
    pub record: Option<Vec<u8>>,
    /// CPU notes.
    pub cpus: usize,
    /// The first CPU note's RIP.
    pub first_rip: Option<u64>,
    /// Each CPU note by its control state's CPU index: (index, RIP,
    /// whether every register is zero).
    pub by_index: Vec<(u32, u64, bool)>,
    /// Read a physical page; false where the dump has none.
    pub read: PageReader<'a>,
}

/// Reads a physical page into the buffer; false where the dump has none.
pub type PageReader<'a> = Box<dyn Fn(u64, &mut [u8]) -> bool + 'a>;

/// Whether a note's registers are all zero (a CPU without saved ones).
fn all_zero(registers: &CpuRegisters) -> bool {
    match registers {
        CpuRegisters::X86_64(r) => r.to_array().iter().all(|&v| v == 0),
        CpuRegisters::I386(r) => r.to_array().iter().all(|&v| v == 0),
    }
}

/// Every CPU slot of the record but the absent ones has a note: a CPU that
/// never answered the shootdown (`Unresponsive`) with zero registers (the
/// record says why), every CPU with saved registers with its own RIP.
pub fn every_cpu_as_the_record_says(
    view: &RecordView<'_>,
    by_index: &[(u32, u64, bool)],
) -> Result<(), String> {
    use crashkit_record::{CpuState, Decoded};
    for (index, slot) in view.cpus().enumerate() {
        let state = slot.state();
        if state == Decoded::Known(CpuState::Absent) {
            continue;
        }
        let note = by_index.iter().find(|(cpu, _, _)| *cpu as usize == index);
        let Some(&(_, note_rip, zero)) = note else {
            return Err(format!("CPU {index} ({state:?} in the record) has no note"));
        };
        match slot.frame() {
            Some(frame) if frame.rip != note_rip => {
                return Err(format!(
                    "CPU {index}'s note has RIP {note_rip:#x}, the record {:#x}",
                    frame.rip
                ));
            }
            Some(_) => {}
            None if !zero => {
                return Err(format!(
                    "CPU {index} has no registers in the record ({state:?}) but its note has some"
                ));
            }
            None => {}
        }
    }
    Ok(())
}

fn rip(registers: &CpuRegisters) -> Option<u64> {
    match registers {
        CpuRegisters::X86_64(r) => Some(r.rip),
        CpuRegisters::I386(_) => None,
    }
}

/// Run `command`; its output (standard output, then error), and whether
/// it exited with success.
pub fn output(command: &mut Command, what: &str) -> Result<(bool, String), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok((true, text))
    } else {
        Ok((false, format!("{what}: {}\n{text}", output.status)))
    }
}

/// Run `command`, which must succeed; its output.
pub fn run(command: &mut Command, what: &str) -> Result<String, String> {
    match output(command, what)? {
        (true, text) => Ok(text),
        (false, why) => Err(why),
    }
}

/// Run `command`, which must fail; its output.
pub fn run_failing(command: &mut Command, what: &str) -> Result<String, String> {
    match output(command, what)? {
        (true, text) => Err(format!("{what} succeeded but must not:\n{text}")),
        (false, why) => Ok(why),
    }
}

/// Checks 1, 3 and 4 of the module docs (2 is the scenario's own).
#[allow(clippy::too_many_arguments)]
pub fn check(
    work_dir: &Path,
    kernel: &Path,
    serial: &str,
    memory: &[u8],
    ram_path: &Path,
    record_at: usize,
    view: &RecordView<'_>,
    cpus: u32,
) -> Result<(), String> {
    for line in [
        "crashkit-capture: dump written",
        "crashkit-capture: resetting",
    ] {
        if !serial.contains(line) {
            return Err(format!("serial lacks {line:?}"));
        }
    }
    let disk = work_dir.join("disk.img");
    let saved = work_dir.join("vmcore");
    let cli = crashkit_cli();
    // A file from an earlier run would make `save` refuse.
    let _ = std::fs::remove_file(&saved);
    run(
        Command::new(&cli).arg("save").arg(&disk).arg(&saved),
        "crashkit save",
    )?;
    run(
        Command::new(&cli).arg("verify").arg(&saved),
        "crashkit verify",
    )?;
    let file = std::fs::read(&saved).map_err(|e| format!("{}: {e}", saved.display()))?;
    let record = &memory[record_at..][..view.bytes().len()];
    let Opened {
        completeness,
        record: notes_record,
        cpus: cpu_notes,
        first_rip,
        by_index,
        read,
    } = open(&file)?;
    if completeness != Completeness::Complete {
        return Err(format!("the saved dump is {completeness:?}"));
    }
    if notes_record.as_deref() != Some(record) {
        return Err("the dump's crash record note is not the record in guest RAM".to_owned());
    }
    if cpu_notes != cpus as usize {
        return Err(format!("{cpu_notes} CPU notes for -smp {cpus}"));
    }
    every_cpu_as_the_record_says(view, &by_index)?;
    let owner = view.panic().owner_cpu().ok_or("the record has no owner")?;
    let saved_rip = view
        .cpu(owner as usize)
        .and_then(|cpu| cpu.frame())
        .map(|frame| frame.rip);
    if first_rip != saved_rip {
        return Err(format!(
            "the first CPU note's RIP {first_rip:x?} is not the owner's saved {saved_rip:x?}"
        ));
    }
    // Every page: RAM below the guest's top, outside the reservation, in
    // the dump and equal; the reservation left out. QEMU's RAM file is the
    // guest's physical memory from 0 (128 MiB, below the PCI hole).
    let mut page = vec![0u8; 4096];
    let mut compared = 0u64;
    for (index, ram) in memory.chunks_exact(4096).enumerate() {
        let phys = index as u64 * 4096;
        let reserved = (RESERVATION.0..RESERVATION.0 + RESERVATION.1).contains(&phys);
        let in_dump = read(phys, &mut page);
        if reserved {
            if in_dump && page.iter().any(|&b| b != 0) {
                return Err(format!("page {phys:#x} of the reservation is in the dump"));
            }
            continue;
        }
        if !in_dump {
            // The memory map leaves out what firmware keeps (0x9f000-
            // 0xfffff and the top pages); those are holes, not losses.
            continue;
        }
        if page != ram {
            return Err(format!("page {phys:#x} differs from guest RAM"));
        }
        compared += 1;
    }
    // 128 MiB less the reservation and the firmware's holes.
    if compared < 27_000 {
        return Err(format!(
            "only {compared} pages of guest RAM are in the dump"
        ));
    }
    every_cpu_translates(&cli, &saved, view)?;
    let stopped = stopped_cpus(view);
    crashkit_qemu::crash_log::check(
        &cli,
        &saved,
        kernel,
        &crashkit_qemu::crash_log::Expected {
            owner: u64::from(owner),
            stopped: &stopped,
            found_by: "record",
            after_handover: &[],
            live: false,
        },
    )?;
    if file.starts_with(b"\x7fELF") {
        elf_tools(&saved, kernel, cpus)
    } else {
        kdump_tools(work_dir, &saved, &file, ram_path)
    }
}

/// The CPUs the record says the shootdown stopped.
pub fn stopped_cpus(view: &RecordView<'_>) -> Vec<u64> {
    view.cpus()
        .enumerate()
        .filter(|(_, slot)| {
            slot.state() == crashkit_record::Decoded::Known(crashkit_record::CpuState::Stopped)
        })
        .map(|(index, _)| index as u64)
        .collect()
}

/// `crashkit vtop --cpu N` for every CPU the record saved registers for
/// (the panicking CPU and every stopped one): the walk uses that CPU's CR3
/// from the record's control state and maps its stack pointer to itself
/// (the test kernel identity-maps its first 4 GiB).
fn every_cpu_translates(cli: &Path, saved: &Path, view: &RecordView<'_>) -> Result<(), String> {
    let mut checked = 0;
    for (index, cpu) in view.cpus().enumerate() {
        let (Some(frame), Some(control)) = (cpu.frame(), cpu.control()) else {
            continue;
        };
        let cr3 = control
            .get("cr3")
            .ok_or(format!("CPU {index} stopped without a CR3 in the record"))?;
        let what = format!("crashkit vtop --cpu {index}");
        let out = run(
            Command::new(cli)
                .args(["vtop", "--json", "--cpu", &index.to_string()])
                .arg(saved)
                .arg(format!("{:#x}", frame.rsp)),
            &what,
        )?;
        let json: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("{what}: not JSON ({e}): {out}"))?;
        let vtop = &json["vtop"];
        if vtop["space"]["cr3"].as_u64() != Some(cr3)
            || vtop["result"] != "mapped"
            || vtop["phys"].as_u64() != Some(frame.rsp)
        {
            return Err(format!(
                "{what} of rsp {:#x}: expected a walk through CR3 {cr3:#x} to itself, got {out}",
                frame.rsp
            ));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err("no CPU of the record has a control state".to_owned());
    }
    Ok(())
}

/// readelf and gdb on an ELF dump.
fn elf_tools(saved: &Path, kernel: &Path, cpus: u32) -> Result<(), String> {
    let listing = run(
        Command::new("readelf").args(["-n", "-l", "-W"]).arg(saved),
        "readelf",
    )?;
    let prstatus = listing.matches("NT_PRSTATUS").count();
    if prstatus != cpus as usize {
        return Err(format!(
            "readelf lists {prstatus} NT_PRSTATUS notes, {cpus} expected"
        ));
    }
    let output = run(
        Command::new("gdb")
            .args(["-batch", "-nx"])
            .arg(kernel)
            .arg("-core")
            .arg(saved)
            .args(["-ex", "info threads", "-ex", "bt 8"]),
        "gdb",
    )?;
    // The `info threads` table's rows: `[*]  ID   LWP N   FRAME`.
    let threads = output
        .lines()
        .filter(|line| {
            let row = line.trim_start_matches('*').trim_start();
            row.starts_with(|c: char| c.is_ascii_digit()) && row.contains(" LWP ")
        })
        .count();
    if threads != cpus as usize {
        return Err(format!(
            "gdb shows {threads} threads, {cpus} expected:\n{output}"
        ));
    }
    let frames: Vec<&str> = output.lines().filter(|l| l.starts_with('#')).collect();
    let in_panic = frames
        .first()
        .is_some_and(|f| f.contains("RegisterFrame::capture"))
        && frames
            .iter()
            .any(|f| f.contains("crashkit_panic_path::entry::panic"));
    if !in_panic {
        return Err(format!(
            "gdb's backtrace of the panicking CPU is not the panic path:\n{output}"
        ));
    }
    Ok(())
}

/// libkdumpfile and makedumpfile -R on a kdump-compressed dump.
fn kdump_tools(work_dir: &Path, saved: &Path, file: &[u8], ram: &Path) -> Result<(), String> {
    let dump = KdumpDump::parse(file).map_err(|e| format!("the saved kdump file: {e}"))?;
    let ranges: Vec<String> = dump
        .memory_runs()
        .iter()
        .map(|r| format!("{:x}-{:x}", r.start, r.start + r.len))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/libkdumpfile_ram.py");
    // Debian's python3-libkdumpfile is seen by /usr/bin/python3 only.
    run(
        Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(saved)
            .arg(ram)
            .arg(ranges.join(",")),
        "libkdumpfile",
    )?;
    let flat = work_dir.join("vmcore.flat");
    let reassembled = work_dir.join("vmcore.reassembled");
    let _ = std::fs::remove_file(&reassembled);
    let _ = std::fs::remove_file(&flat);
    run(
        Command::new(crashkit_cli())
            .arg("convert")
            .arg(saved)
            .arg(&flat)
            .args(["--to", "flattened", "--codec", "lzo"]),
        "crashkit convert --to flattened",
    )?;
    let stream = std::fs::File::open(&flat).map_err(|e| format!("{}: {e}", flat.display()))?;
    run(
        Command::new("makedumpfile")
            .arg("-R")
            .arg(&reassembled)
            .stdin(stream),
        "makedumpfile -R",
    )?;
    let again =
        std::fs::read(&reassembled).map_err(|e| format!("{}: {e}", reassembled.display()))?;
    let lzo = dump.header().status & crashkit_dump_format::compressed::header::FLAG_LZO != 0;
    if lzo {
        // The same writer, codec and plan: the same bytes, but for the
        // converted file's own dump id and completion marker.
        let notes_end = dump.sub_header().offset_note + dump.sub_header().size_note;
        let differing: Vec<usize> = file
            .iter()
            .zip(&again)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(at, _)| at)
            .collect();
        if again.len() != file.len()
            || differing.len() > 40
            || differing.iter().any(|&at| at as u64 >= notes_end)
        {
            return Err(format!(
                "makedumpfile -R of the flattened copy: {} bytes, {} differ from the saved file's {} (first at {:?})",
                again.len(),
                differing.len(),
                file.len(),
                differing.first()
            ));
        }
    }
    let copy = KdumpDump::parse(&again).map_err(|e| format!("makedumpfile -R's file: {e}"))?;
    if copy.completeness() != Completeness::Complete {
        return Err(format!(
            "makedumpfile -R's file is {:?}",
            copy.completeness()
        ));
    }
    let mut a = vec![0u8; 4096];
    let mut b = vec![0u8; 4096];
    for span in dump.memory_runs() {
        for phys in (span.start..span.start + span.len).step_by(4096) {
            let both = dump.read_phys(phys, &mut a).is_ok() && copy.read_phys(phys, &mut b).is_ok();
            if !both || a != b {
                return Err(format!("makedumpfile -R's file: page {phys:#x} differs"));
            }
        }
    }
    Ok(())
}
