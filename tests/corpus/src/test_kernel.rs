//! `crashkit-corpus test-kernel DIR`: real dumps of the crashed test
//! kernel, made and checked.
//!
//! For each case the test kernel boots with `halt` on its command line: it
//! crashes as the scenario says, then halts instead of exiting. The runner
//! takes QEMU's ELF dump over QMP (`dump-guest-memory`, `paging: false`),
//! quits QEMU and keeps the file-backed guest RAM. Then it checks, against
//! that RAM read independently:
//!
//! 1. QEMU's ELF through crashkit's reader: QEMU's producer quirks, one
//!    CPU per `-smp`, each with QEMU's CPU state, and every page of every
//!    segment inside RAM equal to the RAM file; QEMU's kdump-compressed
//!    dumps (flattened: kdump-zlib, kdump-lzo, kdump-snappy, those this
//!    QEMU offers) through crashkit's kdump reader, read in place, every
//!    frame of RAM present and equal to the RAM file, or not in the dump;
//! 2. a crashkit ELF vmcore written by crashkit's writer from that dump:
//!    memory from QEMU's dump, registers from the crash record the kernel's
//!    panic path left in RAM (QEMU's live registers for a CPU the record
//!    has none for), control state from QEMU's CPU notes, the kernel image
//!    at its link addresses, VMCOREINFO with the kernel ELF's build-id.
//!    Read back, every page equals the RAM file; `readelf` lists it; `gdb`
//!    with the kernel ELF shows one thread per CPU and names the function
//!    of the panicking CPU's instruction pointer.
//!
//! 3. QEMU's dump of a machine still at reset (3 GiB of RAM, `-S`): an ELF64
//!    with `EM_386` and i386 CPU notes, compared with RAM, then deleted.
//!
//! Everything else stays in `DIR` (a cache outside the repository).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::plan::KernelImage;
use crashkit_dump_format::read::{Completeness, CpuRegisters, PageState, Producer};
use crashkit_dump_format::vmcoreinfo::VmcoreInfoWriter;
use crashkit_dump_format::write::DumpStats;
use crashkit_dump_format::{PAGE_SIZE, Registers, elf, notes};
use crashkit_record::{Decoded, RecordView, scan};

use crate::cli_check;
use crashkit_qemu::host::{compare_with_ram, run};
use crashkit_qemu::qemu::Boot;
use crashkit_qemu::qmp::{Qmp, wait_for_line};
use crashkit_qemu::rewrite;

/// The serial line the kernel prints when it halts after the crash (the
/// kernel's `crash::HALTED`).
const HALTED: &str = "crashkit-test: halted after the crash";

/// The corpus: `(scenario, CPUs)`.
const CASES: &[(&str, u32)] = &[("panic-bsp", 4), ("panic-ap", 2), ("unresponsive", 2)];

/// Make and check every case; a summary line per case.
pub fn make_and_check(kernel: &Path, dir: &Path) -> Result<Vec<String>, String> {
    let kernel_elf =
        std::fs::read(kernel).map_err(|e| format!("reading {}: {e}", kernel.display()))?;
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::write(dir.join("kernel.elf"), &kernel_elf)
        .map_err(|e| format!("writing the kernel ELF into {}: {e}", dir.display()))?;
    let mut lines = Vec::new();
    for &(scenario, cpus) in CASES {
        let name = format!("{scenario}-smp{cpus}");
        let work = dir.join(&name);
        let line = one_case(kernel, &kernel_elf, scenario, cpus, &work)
            .map_err(|why| format!("corpus case {name} ({}): {why}", work.display()))?;
        lines.push(format!("{name}: {line}"));
    }
    let work = dir.join("reset-i386");
    let line = reset_i386(kernel, &work)
        .map_err(|why| format!("corpus case reset-i386 ({}): {why}", work.display()))?;
    lines.push(format!("reset-i386: {line}"));
    lines.push(triage(&dir)?);
    Ok(lines)
}

/// `crashkit triage` over the whole corpus with the kernel's ELF: each
/// case's dumps (crashkit's ELF, QEMU's ELF and kdump files) one
/// signature, the three cases three ([`crate::triage_check`]).
fn triage(dir: &Path) -> Result<String, String> {
    let crashes = CASES
        .iter()
        .map(|&(scenario, cpus)| {
            let work = dir.join(format!("{scenario}-smp{cpus}"));
            let mut dumps: Vec<PathBuf> = std::fs::read_dir(&work)
                .map_err(|e| format!("{}: {e}", work.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name == "crashkit.vmcore"
                        || name == "qemu.elf"
                        || (name.starts_with("qemu-") && name.ends_with(".flat"))
                })
                .collect();
            dumps.sort();
            Ok(crate::triage_check::Crash {
                name: format!("{scenario}-smp{cpus}"),
                dumps,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    crate::triage_check::check(
        &cli_check::crashkit()?,
        &[dir.to_path_buf()],
        Some(&dir.join("kernel.elf")),
        &crashes,
    )
}

/// RAM of the reset-state machine: enough that QEMU puts some above 4 GiB
/// and so writes an ELF64 file although no CPU is in long mode.
const RESET_RAM_MIB: u32 = 3072;
/// Where q35 stops low RAM when there is this much (the rest is at 4 GiB).
const Q35_LOW_RAM: u64 = 2 << 30;

/// QEMU's dump of a machine still at reset (`-S`): no CPU in long mode, so
/// `EM_386` and i386 `NT_PRSTATUS` notes in an ELF64 file, one of QEMU's
/// quirks. Checked, then deleted (3 GiB of RAM and dump).
fn reset_i386(kernel: &Path, work: &Path) -> Result<String, String> {
    let dump_path = work.join("qemu.elf");
    let _ = std::fs::remove_file(&dump_path);
    let boot = Boot {
        kernel,
        cpus: 2,
        append: "scenario=boot".into(),
        work_dir: work.to_path_buf(),
        timeout: Duration::from_secs(120),
        qmp: true,
        ram_mib: RESET_RAM_MIB,
        initrd: None,
        extra: vec!["-S".into()],
    };
    let mut taken: Result<Vec<(String, PathBuf)>, String> =
        Err("the dump was not attempted".to_owned());
    let outcome = boot.run(|work_dir| {
        taken = (|| {
            let mut qmp =
                Qmp::connect(&work_dir.join("qmp.sock")).map_err(|e| format!("QMP: {e}"))?;
            // Paused from the start (-S): nothing to stop. Its
            // kdump-compressed forms carry the same i386 notes under a
            // header that says x86_64.
            dump_all_forms(&mut qmp, work_dir, &dump_path)
        })();
    })?;
    let kdumps = taken?;
    let result = (|| {
        let ram = std::fs::read(&outcome.ram)
            .map_err(|e| format!("reading {}: {e}", outcome.ram.display()))?;
        let bytes =
            std::fs::read(&dump_path).map_err(|e| format!("{}: {e}", dump_path.display()))?;
        let dump = ElfDump::parse(&bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
        if dump.machine() != crashkit_dump_format::read::Machine::I386 || !dump.damage().is_empty()
        {
            return Err(format!(
                "machine {:?}, damage {:?}",
                dump.machine(),
                dump.damage()
            ));
        }
        for (index, cpu) in dump.cpus().iter().enumerate() {
            let CpuRegisters::I386(registers) = cpu.registers else {
                return Err(format!("cpu {index}: not i386 registers"));
            };
            let state = cpu.qemu.ok_or(format!("cpu {index}: no QEMU state"))?;
            // The reset vector: CS base 0xffff0000, IP 0xfff0.
            if registers.eip != 0xfff0 || state.in_long_mode_code() {
                return Err(format!(
                    "cpu {index}: eip {:#x}, not at reset",
                    registers.eip
                ));
            }
        }
        let mut compared = 0u64;
        let mut page = vec![0u8; PAGE_SIZE as usize];
        for segment in dump.segments() {
            for phys in (segment.paddr..segment.paddr + segment.memsz).step_by(PAGE_SIZE as usize) {
                // q35: RAM below 2 GiB at its address, the rest from 4 GiB.
                let offset = if phys >= 1 << 32 {
                    phys - (1 << 32) + Q35_LOW_RAM
                } else {
                    phys
                };
                let Some(expected) = ram.get(offset as usize..(offset + PAGE_SIZE) as usize) else {
                    continue;
                };
                // At reset the legacy area 0xc0000..0x100000 shows the BIOS
                // ROM (the chipset's PAM registers), and above low RAM is
                // the BIOS ROM's top copy: neither is RAM.
                if (0xc_0000..0x10_0000).contains(&phys) || (Q35_LOW_RAM..1 << 32).contains(&phys) {
                    continue;
                }
                dump.read_phys(phys, &mut page)
                    .map_err(|e| format!("page {phys:#x}: {e}"))?;
                if page != expected {
                    return Err(format!("page {phys:#x} differs from guest RAM"));
                }
                compared += 1;
            }
        }
        let mut forms = Vec::new();
        for (format, path) in &kdumps {
            forms.push(check_i386_kdump(format, path, &dump)?);
        }
        Ok(format!(
            "EM_386 ELF64 of {} GiB with {} i386 CPU notes at the reset vector, \
             {compared} pages equal to guest RAM; {} (files deleted)",
            bytes.len() >> 30,
            dump.cpus().len(),
            forms.join("; ")
        ))
    })();
    let _ = std::fs::remove_file(&dump_path);
    for (_, path) in &kdumps {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(&outcome.ram);
    result
}

/// One of QEMU's kdump-compressed dumps of the machine at reset: valid
/// (no damage, not called incomplete, `crashkit verify` passes), the same
/// i386 CPUs at the reset vector as the ELF dump, and every page the ELF
/// dump holds (already checked against guest RAM) equal in it.
fn check_i386_kdump(format: &str, path: &Path, elf: &ElfDump<'_>) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let kdump = crashkit_dump_format::KdumpDump::parse(&bytes)
        .map_err(|e| format!("QEMU's {format}: {e}"))?;
    if !kdump.damage().is_empty() || kdump.completeness() != Completeness::Unknown {
        return Err(format!(
            "QEMU's {format}: damage {:?}, completeness {}",
            kdump.damage(),
            kdump.completeness()
        ));
    }
    if kdump.cpus().len() != elf.cpus().len() {
        return Err(format!("QEMU's {format}: {} CPUs", kdump.cpus().len()));
    }
    for (index, (cpu, elf_cpu)) in kdump.cpus().iter().zip(elf.cpus()).enumerate() {
        match (cpu.registers, elf_cpu.registers) {
            (CpuRegisters::I386(ours), CpuRegisters::I386(theirs)) if ours == theirs => {}
            _ => {
                return Err(format!(
                    "QEMU's {format}: cpu {index}: not the ELF's i386 registers"
                ));
            }
        }
    }
    let (mut equal, mut zero_free) = (0u64, 0u64);
    let (mut ours, mut theirs) = (vec![0u8; PAGE_SIZE as usize], vec![0u8; PAGE_SIZE as usize]);
    for segment in elf.segments() {
        for phys in (segment.paddr..segment.paddr + segment.filesz).step_by(PAGE_SIZE as usize) {
            elf.read_phys(phys, &mut theirs)
                .map_err(|e| format!("the ELF's page {phys:#x}: {e}"))?;
            match kdump.read_phys(phys, &mut ours) {
                Ok(()) if ours == theirs => equal += 1,
                Ok(()) => return Err(format!("QEMU's {format}: page {phys:#x} differs")),
                // A zero page the kdump file does not hold.
                Err(_) if theirs.iter().all(|&b| b == 0) => zero_free += 1,
                Err(e) => return Err(format!("QEMU's {format}: page {phys:#x}: {e}")),
            }
        }
    }
    let crashkit = cli_check::crashkit()?;
    let verify = Command::new(&crashkit)
        .arg("verify")
        .arg(path)
        .output()
        .map_err(|e| format!("{}: {e}", crashkit.display()))?;
    if !verify.status.success() {
        return Err(format!(
            "crashkit verify on QEMU's {format} of i386 CPUs: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        ));
    }
    Ok(format!(
        "{format}: verifies, i386 CPUs as the ELF's, {equal} pages equal to it{}",
        if zero_free > 0 {
            format!(" ({zero_free} zero pages not in it)")
        } else {
            String::new()
        }
    ))
}

fn one_case(
    kernel: &Path,
    kernel_elf: &[u8],
    scenario: &str,
    cpus: u32,
    work: &Path,
) -> Result<String, String> {
    let qemu_elf = work.join("qemu.elf");
    let (outcome, kdumps) = crash_and_dump(kernel, scenario, cpus, work)?;
    let ram = std::fs::read(&outcome.ram)
        .map_err(|e| format!("reading {}: {e}", outcome.ram.display()))?;
    let qemu_bytes =
        std::fs::read(&qemu_elf).map_err(|e| format!("reading {}: {e}", qemu_elf.display()))?;

    // 1. QEMU's dump.
    let qemu = ElfDump::parse(&qemu_bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
    check_qemu_dump(&qemu, &ram, cpus)?;
    let compared = compare_with_ram(&qemu, &ram, "QEMU's dump")?;
    let mut kdump_lines = Vec::new();
    for (format, path) in &kdumps {
        let line =
            check_qemu_kdump(path, &ram, cpus).map_err(|why| format!("QEMU's {format}: {why}"))?;
        kdump_lines.push(format!("QEMU {format} {line}"));
    }

    // 2. crashkit's dump of the same crash.
    let (at, view) = only_record(&ram)?;
    let crashkit_path = work.join("crashkit.vmcore");
    let stats = write_crashkit_dump(&qemu, &view, at, kernel_elf, &crashkit_path)?;
    let crashkit_bytes = std::fs::read(&crashkit_path)
        .map_err(|e| format!("reading {}: {e}", crashkit_path.display()))?;
    let crashkit = ElfDump::parse(&crashkit_bytes).map_err(|e| format!("crashkit's dump: {e}"))?;
    check_crashkit_dump(&crashkit, &qemu, &view)?;
    compare_with_ram(&crashkit, &ram, "crashkit's dump")?;
    let function = check_with_tools(&crashkit_path, &work.join("../kernel.elf"), cpus)?;
    // 3. Every crashkit command over each dump, against RAM and its record.
    let mut crash = cli_check::Crash {
        symbols: None,
        ram: &ram,
        cpus: cpus as usize,
        record: Some(cli_check::Record {
            address: at as u64,
            owner: view
                .panic()
                .owner_cpu()
                .ok_or("the record in RAM has no owner")?,
            states: view
                .cpus()
                .take(cpus as usize)
                .map(|slot| match slot.state() {
                    Decoded::Known(state) => format!("{state:?}"),
                    Decoded::Unknown(code) => format!("unknown({code})"),
                })
                .collect(),
        }),
        virtual_pages: Vec::new(),
        log: None,
    };
    let crashkit = cli_check::crashkit()?;
    // The test kernel maps its memory one to one: the record's page and
    // pages around the kernel read the same by virtual address.
    crash.virtual_pages = [at as u64 & !0xfff, 0x10_0000, 0x20_0000, 0x40_0000]
        .into_iter()
        .map(|page| (page, page))
        .collect();
    let mut cli_lines = Vec::new();
    let mut dumps = vec![
        (qemu_elf.clone(), "elf", "qemu", false),
        (crashkit_path.clone(), "elf", "crashkit", true),
    ];
    for (_, path) in &kdumps {
        dumps.push((path.clone(), "kdump-compressed-flattened", "qemu", false));
    }
    // Backtraces of every CPU, against gdb's and the record.
    let kernel_path = std::path::absolute(work.join("../kernel.elf")).map_err(|e| e.to_string())?;
    let owner = crash.record.as_ref().map_or(0, |r| r.owner as usize);
    // QEMU's dump is taken after the shootdown: the CPUs the record says
    // stopped are parked in the stop handler (QEMU's notes are in CPU
    // order). crashkit's holds the registers each CPU stopped with.
    let parked: Vec<usize> = crash.record.as_ref().map_or(Vec::new(), |r| {
        (0..r.states.len())
            .filter(|&i| r.states[i] == "Stopped")
            .collect()
    });
    // The CLI numbers both dumps' CPUs by the record's index (QEMU's notes
    // are in CPU order; crashkit's carry the index in their control state,
    // the panicking CPU's note first).
    for (path, panicking, parked) in [
        (&qemu_elf, owner, &parked[..]),
        (&crashkit_path, owner, &[][..]),
    ] {
        let line = cli_check::backtraces(&crashkit, path, &kernel_path, panicking, parked)
            .map_err(|why| format!("bt on {}: {why}", path.display()))?;
        cli_lines.push(line);
    }
    // The crash log in each: found by scanning in QEMU's dumps (they have
    // no crashkit note), through the record in crashkit's.
    let stopped: Vec<u64> = crash.record.as_ref().map_or(Vec::new(), |r| {
        (0..r.states.len())
            .filter(|&i| r.states[i] == "Stopped")
            .map(|i| i as u64)
            .collect()
    });
    for (path, _, _, record_note) in &dumps {
        let expected = crashkit_qemu::crash_log::Expected {
            owner: u64::from(crash.record.as_ref().map_or(0, |r| r.owner)),
            stopped: &stopped,
            found_by: if *record_note { "record" } else { "scan" },
            after_handover: &[],
            live: true,
        };
        let line = crashkit_qemu::crash_log::check(&crashkit, path, &kernel_path, &expected)
            .map_err(|why| format!("{}: {why}", path.display()))?;
        cli_lines.push(line);
    }
    for (path, format, producer, record_note) in dumps {
        let files = [path];
        let dump = cli_check::Dump {
            files: &files,
            format,
            producer,
            record_note,
        };
        cli_lines.push(cli_check::check(&crashkit, &dump, &crash)?);
    }
    // The RAM file itself, as a user with QEMU's file-backed memory has it.
    cli_lines.push(cli_check::ram(&crashkit, &outcome.ram, &qemu_elf, &crash)?);
    // Checked: the RAM file (128 MiB) is not kept; the dumps are.
    let _ = std::fs::remove_file(&outcome.ram);
    Ok(format!(
        "QEMU ELF {} MiB, {compared} pages equal to guest RAM; {}; crash record at {at:#x}; \
         crashkit ELF {} MiB ({} segments, {} zero pages left out), complete, same pages; \
         gdb: {cpus} threads, panicking CPU in {function}; crashkit CLI on each: {}",
        qemu_bytes.len() >> 20,
        kdump_lines.join("; "),
        crashkit_bytes.len() >> 20,
        stats.segments,
        stats.zero_pages_excluded,
        cli_lines.join(" / "),
    ))
}

/// Boot the test kernel with `scenario` on `cpus` CPUs and `halt`, take
/// QEMU's dumps of the crash into `work` (`qemu.elf`, and the
/// kdump-compressed formats QEMU offers), quit. The RAM file stays in
/// `work` for the caller to check and delete.
pub fn crash_and_dump(
    kernel: &Path,
    scenario: &str,
    cpus: u32,
    work: &Path,
) -> Result<(crashkit_qemu::qemu::Outcome, Vec<(String, PathBuf)>), String> {
    let qemu_elf = work.join("qemu.elf");
    let _ = std::fs::remove_file(&qemu_elf);
    let boot = Boot {
        kernel,
        cpus,
        append: format!("scenario={scenario} halt"),
        work_dir: work.to_path_buf(),
        timeout: Duration::from_secs(120),
        qmp: true,
        ram_mib: crashkit_qemu::qemu::RAM_MIB,
        initrd: None,
        extra: Vec::new(),
    };
    let mut taken = Err("the dump was not attempted".to_owned());
    let outcome = boot.run(|work_dir| {
        taken = take_dump(work_dir, &qemu_elf);
    })?;
    let kdumps = taken.map_err(|why| format!("{why}\nserial:\n{}", outcome.serial))?;
    Ok((outcome, kdumps))
}

/// Wait for the kernel to halt after its crash, dump as ELF to `out` and
/// in each kdump format this QEMU offers into `work_dir`, quit. The kdump
/// formats taken, as `(format, file)`.
fn take_dump(work_dir: &Path, out: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    wait_for_line(
        &work_dir.join("serial.log"),
        HALTED,
        Duration::from_secs(90),
    )?;
    let mut qmp = Qmp::connect(&work_dir.join("qmp.sock")).map_err(|e| format!("QMP: {e}"))?;
    // Stop the guest first: QEMU pauses it during a dump but resumes it
    // after, and a guest that still runs (Linux's panic loop touches its
    // watchdog) would change RAM between the dump and the RAM file read.
    qmp.execute(r#"{"execute":"stop"}"#)?;
    dump_all_forms(&mut qmp, work_dir, out)
}

/// Over `qmp`, with the guest stopped: QEMU's ELF dump to `elf`, then its
/// kdump-compressed dump (flattened) in each format this QEMU offers into
/// `work_dir`, then quit. The kdump formats taken, as `(format, file)`.
fn dump_all_forms(
    qmp: &mut Qmp,
    work_dir: &Path,
    elf: &Path,
) -> Result<Vec<(String, PathBuf)>, String> {
    qmp.execute(&format!(
        r#"{{"execute":"dump-guest-memory","arguments":{{"paging":false,"protocol":"file:{}"}}}}"#,
        elf.display()
    ))?;
    // QEMU 7.2 offers kdump-zlib, kdump-lzo and kdump-snappy when built
    // with them (Debian's offers zlib); the reply lists what this one has.
    let formats = qmp.execute(r#"{"execute":"query-dump-guest-memory-capability"}"#)?;
    let mut kdumps = Vec::new();
    for format in ["kdump-zlib", "kdump-lzo", "kdump-snappy"] {
        if !formats.contains(&format!("\"{format}\"")) {
            continue;
        }
        let path = work_dir.join(format!("qemu-{format}.flat"));
        let _ = std::fs::remove_file(&path);
        qmp.execute(&format!(
            r#"{{"execute":"dump-guest-memory","arguments":{{"paging":false,"protocol":"file:{}","format":"{format}"}}}}"#,
            path.display()
        ))?;
        kdumps.push((format.to_owned(), path));
    }
    // Wait for the answer (or the socket closing): QEMU drops a command
    // whose client has gone.
    let _ = qmp.execute(r#"{"execute":"quit"}"#);
    if kdumps.is_empty() {
        return Err(format!("QEMU offers no kdump format: {formats}"));
    }
    Ok(kdumps)
}

/// QEMU's kdump-compressed dump (flattened) of the crash through crashkit's
/// kdump reader, read in place: QEMU's CPUs, and every frame of guest RAM
/// present with the RAM's bytes (or, where QEMU leaves a frame out, not
/// present, never different).
fn check_qemu_kdump(path: &Path, ram: &[u8], cpus: u32) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let kdump = crashkit_dump_format::KdumpDump::parse(&bytes).map_err(|e| format!("{e}"))?;
    if !kdump.is_flattened() || !kdump.damage().is_empty() {
        return Err(format!(
            "flattened {}, damage {:?}",
            kdump.is_flattened(),
            kdump.damage()
        ));
    }
    if kdump.cpus().len() != cpus as usize || kdump.cpus().iter().any(|c| c.qemu.is_none()) {
        return Err(format!(
            "{} CPUs, not {cpus} with QEMU's state",
            kdump.cpus().len()
        ));
    }
    let (present, absent) = crashkit_qemu::host::compare_kdump_with_ram(&kdump, ram)?;
    Ok(format!(
        "{} KiB, {present} pages equal to guest RAM, {absent} not in the dump",
        bytes.len() >> 10
    ))
}

fn check_qemu_dump(dump: &ElfDump<'_>, ram: &[u8], cpus: u32) -> Result<(), String> {
    let mut problems = Vec::new();
    if dump.producer() != Producer::Qemu {
        problems.push(format!("producer {:?}, not QEMU", dump.producer()));
    }
    if !dump.damage().is_empty() {
        problems.push(format!("damage: {:?}", dump.damage()));
    }
    if dump.completeness() != Completeness::Unknown {
        problems.push(format!("completeness {}", dump.completeness()));
    }
    if dump.header().e_ehsize != 8 || dump.header().e_phoff == 64 {
        problems.push("QEMU 7.2's header quirk (e_ehsize 8, e_phoff past 64) is gone".into());
    }
    if dump.cpus().len() != cpus as usize {
        problems.push(format!("{} CPUs, {cpus} expected", dump.cpus().len()));
    }
    for (index, cpu) in dump.cpus().iter().enumerate() {
        if !matches!(cpu.registers, CpuRegisters::X86_64(_)) || cpu.qemu.is_none() {
            problems.push(format!("cpu {index}: no x86_64 registers or QEMU state"));
        }
    }
    let beyond = ram.len() as u64 + 0x1000_0000;
    if dump.classify(beyond).state != PageState::Hole {
        problems.push(format!("{beyond:#x} is not a hole"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("QEMU's dump: {}", problems.join("; ")))
    }
}

fn only_record(ram: &[u8]) -> Result<(usize, RecordView<'_>), String> {
    let mut records = scan(ram).filter_map(|(at, parsed)| parsed.ok().map(|view| (at, view)));
    let first = records.next().ok_or("no crash record in guest RAM")?;
    if records.next().is_some() {
        return Err("more than one crash record in guest RAM".into());
    }
    Ok(first)
}

/// What the kernel ELF tells the dump: where it is loaded and its build-id.
struct KernelFacts {
    image: KernelImage,
    build_id: Vec<u8>,
}

/// The kernel ELF's load range and GNU build-id.
fn kernel_facts(kernel: &[u8]) -> Result<KernelFacts, String> {
    let header = elf::decode_header(kernel).ok_or("kernel ELF: no header")?;
    let mut lowest: Option<(u64, u64)> = None;
    let mut end = 0u64;
    let mut build_id = None;
    for index in 0..u64::from(header.e_phnum) {
        let at = header.e_phoff + index * elf::PROGRAM_HEADER_SIZE as u64;
        let ph = elf::decode_program_header(kernel, at as usize)
            .ok_or("kernel ELF: program header outside the file")?;
        match ph.p_type {
            elf::PT_LOAD => {
                if lowest.is_none_or(|(phys, _)| ph.p_paddr < phys) {
                    lowest = Some((ph.p_paddr, ph.p_vaddr));
                }
                end = end.max(ph.p_paddr + ph.p_memsz);
            }
            elf::PT_NOTE => {
                let bytes = kernel
                    .get(ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize)
                    .ok_or("kernel ELF: note segment outside the file")?;
                for found in notes::Notes::new(bytes, ph.p_offset).flatten() {
                    if found.name == b"GNU" && found.n_type == notes::NT_GNU_BUILD_ID {
                        build_id = Some(found.desc.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    let (phys, virt) = lowest.ok_or("kernel ELF: no PT_LOAD")?;
    let phys_page = phys & !(PAGE_SIZE - 1);
    let virt_page = virt - (phys - phys_page);
    let len = (end - phys_page).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    Ok(KernelFacts {
        image: KernelImage {
            phys_start: phys_page,
            virt_start: virt_page,
            len,
        },
        build_id: build_id.ok_or("kernel ELF: no GNU build-id note (link with --build-id)")?,
    })
}

fn write_crashkit_dump(
    qemu: &ElfDump<'_>,
    record: &RecordView<'_>,
    record_at: usize,
    kernel_elf: &[u8],
    out: &Path,
) -> Result<DumpStats, String> {
    let KernelFacts { image, build_id } = kernel_facts(kernel_elf)?;
    let crash_time = rewrite::now();
    let mut info = [0u8; 512];
    let mut writer = VmcoreInfoWriter::new(&mut info);
    writer
        .os_release("crashkit-test-kernel")
        .page_size(PAGE_SIZE)
        .crash_time(crash_time as i64)
        .build_id(&build_id)
        .kernel_offset(0)
        // The test kernel identity-maps: the record's address is physical.
        .crashkit(
            env!("CARGO_PKG_VERSION"),
            record_at as u64,
            record.bytes().len() as u64,
        );
    let vmcoreinfo = writer.as_bytes().to_vec();
    // The record's registers where it has them (captured by the panic
    // path), QEMU's live ones otherwise.
    let registers = |index: usize, live: Registers| {
        let mut slots = live.to_array();
        if let Some(frame) = record
            .cpu(index)
            .filter(|slot| slot.has_registers())
            .map(|slot| slot.registers())
        {
            slots[..frame.len()].copy_from_slice(&frame);
        }
        Registers::from_array(slots)
    };
    rewrite::write(
        qemu,
        &rewrite::Rewrite {
            vmcoreinfo: &vmcoreinfo,
            // The test kernel identity-maps its memory.
            direct_map: Some(0),
            kernel_image: Some(image),
            crash_record: record.bytes(),
            panic_cpu: record.panic().owner_cpu(),
            crash_time,
            exclude_zero_pages: true,
            registers: &registers,
            below: None,
            fill: None,
        },
        out,
    )
}

fn check_crashkit_dump(
    dump: &ElfDump<'_>,
    qemu: &ElfDump<'_>,
    record: &RecordView<'_>,
) -> Result<(), String> {
    if dump.completeness() != Completeness::Complete || !dump.damage().is_empty() {
        return Err(format!(
            "crashkit's dump: {}, damage {:?}",
            dump.completeness(),
            dump.damage()
        ));
    }
    if dump.cpus().len() != qemu.cpus().len() {
        return Err(format!("crashkit's dump has {} CPUs", dump.cpus().len()));
    }
    let owner = record
        .panic()
        .owner_cpu()
        .ok_or("the record names no panic owner")?;
    let first = dump.cpus().first().ok_or("crashkit's dump has no CPU")?;
    let expected = record
        .cpu(owner as usize)
        .filter(|slot| slot.has_registers())
        .map(|slot| slot.registers())
        .ok_or("the panic owner's slot has no registers")?;
    let CpuRegisters::X86_64(registers) = first.registers else {
        return Err("crashkit's dump: i386 registers".into());
    };
    if first.pid != owner + 1 || registers.to_array()[..21] != expected {
        return Err(format!(
            "crashkit's dump: first CPU is LWP {} with rip {:#x}; the owner is cpu {owner} with rip {:#x}",
            first.pid, registers.rip, expected[16]
        ));
    }
    let info = dump.vmcoreinfo().ok_or("crashkit's dump: no VMCOREINFO")?;
    if info.build_id().is_none() {
        return Err("crashkit's dump: no BUILD-ID in VMCOREINFO".into());
    }
    // crashkit's key leads to the record without a scan.
    let record_at = info
        .number("SYMBOL(crashkit_record)")
        .ok_or("crashkit's dump: no SYMBOL(crashkit_record)")?;
    let mut start = [0u8; 8];
    dump.read_phys(record_at, &mut start)
        .map_err(|e| format!("crashkit's dump: the record's address: {e}"))?;
    if !record.bytes().starts_with(&start) {
        return Err("crashkit's dump: SYMBOL(crashkit_record) does not point at the record".into());
    }
    if dump.crashkit().and_then(|c| c.crash_record) != Some(record.bytes()) {
        return Err("crashkit's dump: the crash record note differs from RAM's record".into());
    }
    Ok(())
}

/// readelf lists the dump; gdb with the kernel ELF shows a thread per CPU
/// and names the panicking CPU's function. Returns that function.
fn check_with_tools(dump: &Path, kernel: &Path, cpus: u32) -> Result<String, String> {
    let dump_arg = dump.to_str().ok_or("dump path is not UTF-8")?;
    let kernel: PathBuf = std::path::absolute(kernel).map_err(|e| e.to_string())?;
    let kernel_arg = kernel.to_str().ok_or("kernel path is not UTF-8")?;
    let listing = run(Command::new("readelf").args(["-n", "-l", "-W", dump_arg]))?;
    let prstatus = listing.matches("NT_PRSTATUS").count();
    if prstatus != cpus as usize {
        return Err(format!(
            "readelf lists {prstatus} NT_PRSTATUS notes, {cpus} expected"
        ));
    }
    let output = run(Command::new("gdb").args([
        "-batch",
        "-nx",
        kernel_arg,
        "-core",
        dump_arg,
        "-ex",
        "info threads",
        "-ex",
        "info symbol $pc",
    ]))?;
    let threads = output.matches("LWP ").count();
    if threads < cpus as usize {
        return Err(format!(
            "gdb shows {threads} threads, {cpus} expected:\n{output}"
        ));
    }
    // gdb's frame line of the selected thread (the panicking CPU, first
    // in the dump): `#0  0x… in FUNCTION (…) at FILE:LINE`, and the
    // enclosing symbol from `info symbol $pc`.
    let frame = output
        .lines()
        .find(|line| line.starts_with("#0 "))
        .and_then(|line| line.split(" in ").nth(1))
        .map(|rest| rest.split(" (").next().unwrap_or(rest).trim().to_owned())
        .ok_or_else(|| format!("gdb shows no frame for the panicking CPU:\n{output}"))?;
    let symbol = output
        .lines()
        .find(|line| line.contains(" in section .text"))
        .and_then(|line| line.split(" + ").next())
        .map(|name| name.trim().to_owned())
        .ok_or_else(|| format!("gdb names no symbol at the panicking CPU's pc:\n{output}"))?;
    // The owner's registers were captured at the top of the panic handler
    // (`RegisterFrame::capture`, inlined into `#[panic_handler]`, whose
    // symbol is `rust_begin_unwind`).
    let in_panic_path = frame.contains("RegisterFrame::capture")
        && (symbol.contains("rust_begin_unwind") || symbol.contains("panic"));
    if !in_panic_path {
        return Err(format!(
            "the panicking CPU's pc is in {frame} ({symbol}), not in the panic path:\n{output}"
        ));
    }
    let function = format!("{frame} inlined in {symbol}");
    Ok(function)
}
