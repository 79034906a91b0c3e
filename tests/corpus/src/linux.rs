//! `crashkit-corpus linux DIR`: dumps of a crashed Linux guest, made and
//! checked.
//!
//! The guest is Debian's own kernel (the package `linux-image-amd64`
//! depends on, fetched with `apt-get download`, never installed on this
//! machine) with a tiny initramfs built here: busybox-static (also fetched
//! with `apt-get download`), `/dev/console`, and an `/init` that loads
//! `qemu_fw_cfg.ko` (through it, with QEMU's `-device vmcoreinfo`, Linux
//! publishes its VMCOREINFO to QEMU), says so on the serial console, and
//! crashes the kernel with SysRq-c (or, as the command line's
//! `crashkit.crash=` says, exits, or spins until QEMU injects an NMI:
//! [`Trigger`]). The runner waits for Linux's panic
//! line, takes QEMU's dumps over QMP (ELF, and makedumpfile's flattened
//! kdump-zlib form for the next format), and quits. Booted twice: with
//! KASLR (Debian's default) and with `nokaslr`; then on QEMU's `max` CPU
//! with 5-level paging; then crashed the two other ways; then through
//! Linux's own crash path to a genuine `/proc/vmcore` (the [`crate::kexec`]
//! module).
//!
//! Checked against the file-backed guest RAM: QEMU's ELF opens with no
//! damage, one CPU per `-smp` with QEMU's CPU state, Linux's VMCOREINFO
//! (OSRELEASE of the package, a non-zero KERNELOFFSET exactly when KASLR is
//! on, `init_top_pgt`, `phys_base`, the build-id), and every page equal to
//! RAM. Then makedumpfile `-E -d 31` of it (through a crashkit ELF of the
//! same memory: makedumpfile cannot read QEMU's), read back: present pages
//! equal RAM, filtered pages excluded. The packages, the initramfs, the
//! dumps and the serial logs stay in `DIR`, a cache outside the repository
//! (the packages are fetched once); the RAM files are deleted once checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crashkit_dump_format::KdumpDump;
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::read::{Completeness, PageState, Producer};

use crate::cli_check;
use crate::oracle::{START_KERNEL_MAP, page_offset};
use crashkit_qemu::host::{compare_with_ram, run};
use crashkit_qemu::qemu::{Boot, Outcome};
use crashkit_qemu::qmp::{Qmp, wait_for_line};
use crashkit_qemu::rewrite;

/// The line Linux prints when it panics (the guest's `/init` causes it).
pub(crate) const PANIC_LINE: &str = "Kernel panic - not syncing";
/// What `/init` prints once VMCOREINFO has gone to QEMU.
const READY_LINE: &str = "crashkit-corpus: vmcoreinfo published";
/// What it prints when QEMU has no VMCOREINFO device to publish to.
const NOT_READY_LINE: &str = "crashkit-corpus: no vmcoreinfo in fw_cfg";
/// Guest RAM.
pub(crate) const RAM_MIB: u32 = 256;
/// Guest CPUs.
pub(crate) const CPUS: u32 = 2;

/// The guest's `/init`: a busybox shell script.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox insmod /qemu_fw_cfg.ko
if [ -e /sys/firmware/qemu_fw_cfg/by_name/etc/vmcoreinfo ]; then
    echo 'crashkit-corpus: vmcoreinfo published'
else
    echo 'crashkit-corpus: no vmcoreinfo in fw_cfg'
fi
@KALLSYMS@case \"$(/bin/busybox cat /proc/cmdline)\" in
*crashkit.crash=exit*)
    echo 'crashkit-corpus: init exits'
    exit 1 ;;
*crashkit.crash=nmi*)
    echo 1 > /proc/sys/kernel/unknown_nmi_panic
    echo 'crashkit-corpus: spinning until an NMI'
    while :; do :; done ;;
esac
echo 1 > /proc/sys/kernel/sysrq
echo c > /proc/sysrq-trigger
";

/// The guest: kernel, initramfs, release.
#[derive(Debug)]
pub struct Guest {
    pub(crate) vmlinuz: PathBuf,
    initramfs: PathBuf,
    /// The kernel's release (its package's).
    pub release: String,
}

/// Make and check both guests' dumps; a summary line each.
pub fn make_and_check(dir: &Path) -> Result<Vec<String>, String> {
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let guest = prepare(&dir)?;
    let mut lines = Vec::new();
    for (name, kaslr) in [("linux-kaslr", true), ("linux-nokaslr", false)] {
        let work = dir.join(name);
        let line = one_guest(&guest, kaslr, &work)
            .map_err(|why| format!("{name} ({}): {why}", work.display()))?;
        lines.push(format!("{name}: {line}"));
    }
    let line =
        crate::kallsyms::check_system_maps(&dir.join("linux-kaslr"), &dir.join("linux-nokaslr"))
            .map_err(|why| format!("system maps: {why}"))?;
    lines.push(format!("system maps: {line}"));
    let work = dir.join("linux-no-vmcoreinfo");
    let line = twin_without_vmcoreinfo(&guest, &work, &dir.join("linux-nokaslr"))
        .map_err(|why| format!("linux-no-vmcoreinfo ({}): {why}", work.display()))?;
    lines.push(format!("linux-no-vmcoreinfo: {line}"));
    let line = split_sets(&dir.join("linux-kaslr"), &dir.join("linux-nokaslr"))
        .map_err(|why| format!("split sets: {why}"))?;
    lines.push(format!("split sets: {line}"));
    let work = dir.join("linux-la57");
    let line = la57_guest(&guest, &work)
        .map_err(|why| format!("linux-la57 ({}): {why}", work.display()))?;
    lines.push(format!("linux-la57: {line}"));
    for (name, trigger) in [
        ("linux-init-exit", Trigger::InitExit),
        ("linux-nmi", Trigger::Nmi),
    ] {
        let work = dir.join(name);
        let line = other_crash(&guest, trigger, &work)
            .map_err(|why| format!("{name} ({}): {why}", work.display()))?;
        lines.push(format!("{name}: {line}"));
    }
    let work = dir.join("linux-proc-vmcore");
    let line = crate::kexec::make_and_check(&guest, &dir, &work)
        .map_err(|why| format!("linux-proc-vmcore ({}): {why}", work.display()))?;
    lines.push(format!("linux-proc-vmcore: {line}"));
    lines.push(triage(&dir)?);
    Ok(lines)
}

/// The guests' directories, each holding one crash's dumps.
const GUESTS: &[(&str, &str)] = &[
    ("linux-kaslr", "sysrq"),
    ("linux-nokaslr", "sysrq"),
    ("linux-no-vmcoreinfo", "sysrq"),
    ("linux-la57", "sysrq"),
    ("linux-proc-vmcore", "sysrq"),
    ("linux-init-exit", "init-exit"),
    ("linux-nmi", "nmi"),
];

/// `crashkit triage` over every guest's directory: SysRq-c made on five
/// boots (KASLR on and off, 5-level paging, no VMCOREINFO note, Linux's
/// own kexec path) and written by QEMU, makedumpfile (every format, split
/// sets) and Linux's /proc/vmcore is one signature; `/init` exiting and
/// the NMI are one each ([`crate::triage_check`]). A cut file is a row,
/// not one of the crash's dumps.
fn triage(dir: &Path) -> Result<String, String> {
    let mut crashes: Vec<crate::triage_check::Crash> = Vec::new();
    let mut paths = Vec::new();
    for &(guest, crash) in GUESTS {
        let work = dir.join(guest);
        paths.push(work.clone());
        let mut dumps: Vec<PathBuf> = std::fs::read_dir(&work)
            .map_err(|e| format!("{}: {e}", work.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let dump = [".elf", ".flat", ".kdump"]
                    .iter()
                    .any(|e| name.ends_with(e))
                    || name == "makedumpfile-split.1";
                dump && !name.contains("cut")
            })
            .collect();
        dumps.sort();
        match crashes.iter_mut().find(|c| c.name == crash) {
            Some(known) => known.dumps.extend(dumps),
            None => crashes.push(crate::triage_check::Crash {
                name: crash.to_owned(),
                dumps,
            }),
        }
    }
    crate::triage_check::check(&cli_check::crashkit()?, &paths, None, &crashes)
}

/// The guest on QEMU's `max` CPU, which has LA57 under TCG, so Linux runs
/// with 5-level paging (KASLR on): its VMCOREINFO must say so, QEMU's
/// dumps must equal RAM, and every crashkit command must work on them,
/// `vtop` walking five levels to the kernel image's pages (virtual `_stext`
/// plus k pages at physical `_stext` minus `__START_KERNEL_map` plus
/// phys_base plus k pages) and `log` giving the console's lines. (The
/// direct map's base is not checked here: the corpus finds it with a
/// 4-level walk of its own.)
fn la57_guest(guest: &Guest, work: &Path) -> Result<String, String> {
    let elf_path = work.join("qemu.elf");
    let kdump_path = work.join("qemu-kdump-zlib.flat");
    let outcome = crash_and_dump_on(
        guest,
        true,
        RAM_MIB,
        work,
        &elf_path,
        Some(&kdump_path),
        Machine {
            cpu: Some("max"),
            ..Machine::default()
        },
    )?;
    let (ram, bytes) = ram_and_dump(&outcome, &elf_path)?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
    let compared = compare_with_ram(&dump, &ram, "QEMU's dump")?;
    let info = dump.vmcoreinfo().ok_or("no VMCOREINFO")?;
    if info.number("NUMBER(pgtable_l5_enabled)") != Some(1) {
        return Err("the guest did not enable 5-level paging on -cpu max".into());
    }
    let stext = info.number("SYMBOL(_stext)").ok_or("no SYMBOL(_stext)")?;
    let phys_base = info.number("NUMBER(phys_base)").ok_or("no phys_base")?;
    let text_phys = stext.wrapping_sub(START_KERNEL_MAP).wrapping_add(phys_base);
    let virtual_pages: Vec<(u64, u64)> = (0..16u64)
        .map(|k| (stext + k * 0x1_0000, text_phys + k * 0x1_0000))
        .collect();
    let crashkit = cli_check::crashkit()?;
    // Five levels walked: the first entry is a PML5E.
    let vtop = Command::new(&crashkit)
        .args(["--json", "vtop"])
        .arg(&elf_path)
        .arg(format!("{stext:#x}"))
        .output()
        .map_err(|e| format!("crashkit vtop: {e}"))?;
    let vtop = String::from_utf8_lossy(&vtop.stdout);
    if !vtop.contains("\"levels\": 5") || !vtop.contains("\"entry\": \"PML5E\"") {
        return Err(format!(
            "crashkit vtop of _stext did not walk five levels: {vtop}"
        ));
    }
    // The log: its console lines in it; then the same from each dump.
    let (log, console, console_lines) = log_and_console(&crashkit, &elf_path, work)?;
    let truth = crate::kallsyms::truth(&ram, &console, phys_base, work)?;
    let listed = crate::kallsyms::check_list(&crashkit, path_str(&elf_path)?, &truth)?;
    let crash = cli_check::Crash {
        ram: &ram,
        cpus: 2,
        record: None,
        virtual_pages,
        log: Some(log),
        symbols: Some(&truth),
    };
    let mut lines = Vec::new();
    for (path, format) in [
        (&elf_path, "elf"),
        (&kdump_path, "kdump-compressed-flattened"),
    ] {
        let files = [path.clone()];
        let dump = cli_check::Dump {
            files: &files,
            format,
            producer: "qemu",
            record_note: false,
        };
        lines.push(cli_check::check(&crashkit, &dump, &crash)?);
    }
    let _ = std::fs::remove_file(&outcome.ram);
    Ok(format!(
        "5-level paging; QEMU ELF {compared} pages equal to RAM; vtop walks PML5E first; \
         log has the console's {console_lines} lines; {listed}; crashkit CLI on ELF and \
         kdump-zlib: {}",
        lines.join(" / ")
    ))
}

/// The guest crashed another way (issue 29): its stacks differ from
/// SysRq-c's. `InitExit`: `/init` exits and Linux panics in `do_exit`
/// ("Attempted to kill init!"), from the exit system call. `Nmi`: `/init`
/// spins in user space, QEMU injects an NMI (QMP `inject-nmi`), and Linux
/// (`unknown_nmi_panic`) panics in NMI context: the panicking CPU's
/// stack crosses the NMI's `pt_regs` into what it interrupted (on the
/// corpus's boots, the spinning shell in user space). The other CPU is
/// stopped as in any panic (seen: `stop_this_cpu` through the reboot
/// vector); one that had taken the NMI too would wait in
/// `nmi_panic_self_stop`, which the check also takes. KASLR
/// on, 128 MiB, QEMU's ELF only: the log holds the console, and the
/// symbol and backtrace checks of [`crate::kallsyms`] and
/// [`crate::backtrace`] pass, the Call Trace's reliable frames (the NMI
/// part and the task part) in the panicking CPU's backtrace.
fn other_crash(guest: &Guest, trigger: Trigger, work: &Path) -> Result<String, String> {
    let elf_path = work.join("qemu.elf");
    let outcome = crash_and_dump_on(
        guest,
        true,
        128,
        work,
        &elf_path,
        None,
        Machine {
            trigger,
            ..Machine::default()
        },
    )?;
    let (ram, bytes) = ram_and_dump(&outcome, &elf_path)?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
    let info = dump.vmcoreinfo().ok_or("no VMCOREINFO")?;
    let phys_base = info.number("NUMBER(phys_base)").ok_or("no phys_base")?;
    let want = match trigger {
        Trigger::InitExit => "Kernel panic - not syncing: Attempted to kill init!",
        Trigger::Nmi => "Kernel panic - not syncing: NMI: Not continuing",
        Trigger::Sysrq => "Kernel panic - not syncing: sysrq triggered crash",
    };
    if !outcome.serial.contains(want) {
        return Err(format!(
            "the console does not say {want:?}:\n{}",
            tail(&outcome.serial)
        ));
    }
    let crashkit = cli_check::crashkit()?;
    let (_, console, console_lines) = log_and_console(&crashkit, &elf_path, work)?;
    let truth = crate::kallsyms::truth(&ram, &console, phys_base, work)?;
    let arg = path_str(&elf_path)?;
    let symbols = crate::kallsyms::check(&crashkit, arg, &truth, &ram)?;
    // The stack the trigger leaves.
    let output = cli_check::run(&crashkit, &["--json", "bt", arg])?;
    let trace: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("bt: {e}"))?;
    let frames = trace["bt"][0]["frames"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = frames
        .iter()
        .filter_map(|f| f["symbol"].as_str()?.split('+').next())
        .collect();
    let crossed: Vec<&serde_json::Value> = frames
        .iter()
        .filter(|f| f["interrupted"].is_object())
        .collect();
    let shape = match trigger {
        Trigger::InitExit => names.iter().any(|n| n.starts_with("do_exit")) && crossed.len() == 1,
        // The NMI's pt_regs, then what it interrupted: the spinning shell
        // in user space, or the kernel on its way.
        Trigger::Nmi => names.iter().any(|n| n.contains("exc_nmi")) && !crossed.is_empty(),
        Trigger::Sysrq => true,
    };
    if !shape {
        return Err(format!(
            "the panicking CPU's stack is not the {trigger:?} one: {names:?}"
        ));
    }
    let _ = std::fs::remove_file(&outcome.ram);
    Ok(format!(
        "{want:?}; log has the console's {console_lines} lines; {symbols}; the panicking CPU through {}",
        names.join(" < ")
    ))
}

/// `crashkit log` of the dump at `elf_path`, the console the boot in `work`
/// printed, and how many of the console's lines are in the log, in order
/// ([`console_in_log`]).
fn log_and_console(
    crashkit: &Path,
    elf_path: &Path,
    work: &Path,
) -> Result<(String, String, usize), String> {
    let log = cli_check::run(crashkit, &["log", path_str(elf_path)?])?;
    let log = String::from_utf8_lossy(&log.stdout).into_owned();
    let console =
        std::fs::read_to_string(work.join("serial.log")).map_err(|e| format!("serial.log: {e}"))?;
    let lines = console_in_log(&console, &log)?;
    Ok((log, console, lines))
}

/// The guest RAM file a boot left and the ELF dump QEMU wrote, read.
fn ram_and_dump(outcome: &Outcome, elf_path: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let ram = std::fs::read(&outcome.ram)
        .map_err(|e| format!("reading {}: {e}", outcome.ram.display()))?;
    let bytes = std::fs::read(elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    Ok((ram, bytes))
}

/// The KASLR-off guest booted again without QEMU's `-device vmcoreinfo`
/// (issue 28): QEMU's ELF then has no VMCOREINFO note, and the CLI finds
/// Linux's own text in memory. `info` must say so and give the same
/// VMCOREINFO, key for key and value for value, as its twin's note (the
/// same kernel without KASLR lays itself out the same), and the same
/// release; `log` must hold this boot's console lines;
/// and the symbol checks of [`crate::kallsyms`] pass as on every dump.
fn twin_without_vmcoreinfo(guest: &Guest, work: &Path, twin: &Path) -> Result<String, String> {
    let elf_path = work.join("qemu.elf");
    let outcome = crash_and_dump_on(
        guest,
        false,
        RAM_MIB,
        work,
        &elf_path,
        None,
        Machine {
            no_vmcoreinfo_device: true,
            ..Machine::default()
        },
    )?;
    let (ram, bytes) = ram_and_dump(&outcome, &elf_path)?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
    if dump.vmcoreinfo().is_some() {
        return Err("QEMU's dump has a VMCOREINFO note without the device".into());
    }
    let crashkit = cli_check::crashkit()?;
    let info = |path: &Path| -> Result<serde_json::Value, String> {
        let output = cli_check::run(&crashkit, &["--json", "info", path_str(path)?])?;
        serde_json::from_slice(&output.stdout).map_err(|e| format!("info: {e}"))
    };
    let ours = info(&elf_path)?;
    let theirs = info(&twin.join("qemu.elf"))?;
    if ours["vmcoreinfo_source"]["found_by"] != "scan"
        || theirs["vmcoreinfo_source"]["found_by"] != "note"
    {
        return Err(format!(
            "info: VMCOREINFO found by {} here, by {} in the twin",
            ours["vmcoreinfo_source"], theirs["vmcoreinfo_source"]["found_by"]
        ));
    }
    // (Not the panicking CPU: the crashing shell runs on either CPU; each
    // dump's is checked against its own console below.)
    for key in ["vmcoreinfo", "osrelease"] {
        if ours[key] != theirs[key] {
            return Err(format!(
                "info: {key} differs from the twin's: {} against {}",
                ours[key], theirs[key]
            ));
        }
    }
    let entries = ours["vmcoreinfo"].as_array().map_or(0, Vec::len);
    // The twin's note (equal to what was found) places the image.
    let phys_base = ours["vmcoreinfo"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["key"] == "NUMBER(phys_base)")
        .and_then(|entry| entry["value"].as_str()?.parse::<i64>().ok())
        .ok_or("no NUMBER(phys_base) found")? as u64;
    let (_, console, console_lines) = log_and_console(&crashkit, &elf_path, work)?;
    let truth = crate::kallsyms::truth(&ram, &console, phys_base, work)?;
    let listed = crate::kallsyms::check_list(&crashkit, path_str(&elf_path)?, &truth)?;
    let symbols = crate::kallsyms::check(&crashkit, path_str(&elf_path)?, &truth, &ram)?;
    let _ = std::fs::remove_file(&outcome.ram);
    Ok(format!(
        "QEMU's ELF without a VMCOREINFO note: info finds Linux's text by scanning at {:#x}, \
         its {entries} entries the twin's note's; log has the console's {console_lines} lines; \
         {listed}; {symbols}",
        ours["vmcoreinfo_source"]["address"].as_u64().unwrap_or(0)
    ))
}

/// makedumpfile's 3-part split dumps given as users get them wrong (issue
/// 24): every broken set makes `crashkit verify` exit 1 naming the part
/// that is missing, doubled or foreign, as `makedumpfile --reassemble`
/// refuses them; the whole set verifies. `a` and `b` are two guests' work
/// directories (two different dumps).
fn split_sets(a: &Path, b: &Path) -> Result<String, String> {
    let crashkit = cli_check::crashkit()?;
    let part = |dir: &Path, n: u32| dir.join(format!("makedumpfile-split.{n}"));
    let cases: [(&str, Vec<PathBuf>, Option<&str>); 5] = [
        (
            "the whole set",
            vec![part(a, 1), part(a, 2), part(a, 3)],
            None,
        ),
        (
            "the middle part missing",
            vec![part(a, 1), part(a, 3)],
            Some("frames 0x5800..0xb000 are in a part not given"),
        ),
        (
            "a part given twice",
            vec![part(a, 1), part(a, 2), part(a, 2), part(a, 3)],
            Some("part 3 is part 2 again"),
        ),
        (
            "a part of another dump",
            vec![part(a, 1), part(b, 2), part(a, 3)],
            Some("part 2 is not of the same dump as part 1"),
        ),
        (
            "one part alone",
            vec![part(a, 2)],
            Some("frames 0xb000..0x10000 are in a part not given"),
        ),
    ];
    for (what, files, expected) in &cases {
        let argument = files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let output = cli_check::run(&crashkit, &["verify", &argument])?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match expected {
            None if output.status.code() != Some(0) => {
                return Err(format!(
                    "{what}: verify exits {:?}: {stdout}",
                    output.status.code()
                ));
            }
            Some(message) if output.status.code() != Some(1) || !stdout.contains(message) => {
                return Err(format!(
                    "{what}: verify exits {:?} without \"{message}\": {stdout}",
                    output.status.code()
                ));
            }
            _ => {}
        }
    }
    // A page of a part not given reads as that, not as lost or zeros.
    let alone = part(a, 2);
    let alone = alone.to_str().ok_or("a path that is not UTF-8")?;
    let output = cli_check::run(&crashkit, &["rd", alone, "-p", "0x100000", "16"])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.contains("in a part not given") {
        return Err(format!("rd of part 1's page from part 2 alone: {stdout}"));
    }
    Ok(format!(
        "verify passes the whole set and names the part in each of {} broken ones; a page of \
         a part not given reads as such",
        cases.len() - 1
    ))
}

/// The versioned kernel package `linux-image-amd64` depends on.
fn kernel_package() -> Result<String, String> {
    let find = || -> Result<String, String> {
        let depends = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
        depends
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Depends: "))
            .find(|package| package.starts_with("linux-image-"))
            .map(str::to_owned)
            .ok_or_else(|| "linux-image-amd64 depends on no linux-image package".to_owned())
    };
    find().or_else(|_| {
        // A fresh machine may have no package lists yet.
        run(Command::new("apt-get").args(["update", "-q"]))?;
        find()
    })
}

/// Fetch and unpack the packages (once), build the initramfs.
pub fn prepare(dir: &Path) -> Result<Guest, String> {
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let have = |prefix: &str| -> Option<PathBuf> {
        std::fs::read_dir(&debs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
            })
    };
    if have("linux-image-6").is_none() || have("busybox-static").is_none() {
        let package = kernel_package()?;
        println!("linux corpus: fetching {package} and busybox-static with apt-get download");
        run(Command::new("apt-get")
            .args(["download", &package, "busybox-static"])
            .current_dir(&debs))?;
    }
    let kernel_deb = have("linux-image-6").ok_or("the kernel package did not download")?;
    let busybox_deb = have("busybox-static").ok_or("busybox-static did not download")?;
    let root = dir.join("unpacked");
    for deb in [&kernel_deb, &busybox_deb] {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    }
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or("no vmlinuz in the kernel package")?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or("vmlinuz without a release")?
        .to_owned();
    let module = root
        .join("lib/modules")
        .join(&release)
        .join("kernel/drivers/firmware/qemu_fw_cfg.ko");
    let module_bytes = std::fs::read(&module).map_err(|e| format!("{}: {e}", module.display()))?;
    let busybox = root.join("bin/busybox");
    let busybox_bytes =
        std::fs::read(&busybox).map_err(|e| format!("{}: {e}", busybox.display()))?;
    let mut cpio = Cpio::default();
    for directory in ["bin", "dev", "proc", "sys"] {
        cpio.entry(directory, 0o040_755, &[], (0, 0));
    }
    cpio.entry("dev/console", 0o020_600, &[], (5, 1));
    cpio.entry("bin/busybox", 0o100_755, &busybox_bytes, (0, 0));
    cpio.entry("bin/sh", 0o120_777, b"busybox", (0, 0));
    let init = INIT.replace("@KALLSYMS@", crate::kallsyms::HAND_OUT);
    cpio.entry("init", 0o100_755, init.as_bytes(), (0, 0));
    cpio.entry("qemu_fw_cfg.ko", 0o100_644, &module_bytes, (0, 0));
    let initramfs = dir.join("initramfs.cpio");
    std::fs::write(&initramfs, cpio.finish())
        .map_err(|e| format!("{}: {e}", initramfs.display()))?;
    Ok(Guest {
        vmlinuz,
        initramfs,
        release,
    })
}

/// kexec-tools from Debian's package and the library packages it needs
/// (`apt-cache depends --recurse`, the `lib*` ones), fetched once with
/// `apt-get download` and unpacked into the corpus's root beside the kernel
/// and busybox, never installed here; the root.
pub(crate) fn fetch_kexec_tools(dir: &Path) -> Result<PathBuf, String> {
    let debs = dir.join("debs-kexec");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let fetched = || -> Vec<PathBuf> {
        std::fs::read_dir(&debs)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                    .collect()
            })
            .unwrap_or_default()
    };
    if !fetched().iter().any(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("kexec-tools_"))
    }) {
        let depends = run(Command::new("apt-cache").args([
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            "kexec-tools",
        ]))?;
        let mut packages: Vec<&str> = depends
            .lines()
            .filter(|line| !line.starts_with(' ') && !line.starts_with('<'))
            .filter(|name| *name == "kexec-tools" || name.starts_with("lib") || *name == "zlib1g")
            .collect();
        packages.sort_unstable();
        packages.dedup();
        println!(
            "linux corpus: fetching {} with apt-get download",
            packages.join(" ")
        );
        run(Command::new("apt-get")
            .arg("download")
            .args(&packages)
            .current_dir(&debs))?;
    }
    let root = dir.join("unpacked");
    for deb in fetched() {
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    }
    Ok(root)
}

/// An uncompressed `newc` cpio archive, the format Linux unpacks into its
/// initial root file system: per entry a 110-byte ASCII header (`070701`,
/// then 13 eight-digit hex fields: inode, mode, uid, gid, nlink, mtime,
/// size, dev major, dev minor, rdev major, rdev minor, name size with the
/// NUL, checksum 0), the name and NUL padded to 4, the data padded to 4;
/// ended by the entry `TRAILER!!!`.
#[derive(Default)]
pub(crate) struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
}

impl Cpio {
    pub(crate) fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.inode += 1;
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let fields = [
            self.inode,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.bytes
    }
}

fn one_guest(guest: &Guest, kaslr: bool, work: &Path) -> Result<String, String> {
    let elf_path = work.join("qemu.elf");
    let kdump_path = work.join("qemu-kdump-zlib.flat");
    let outcome = crash_and_dump(guest, kaslr, RAM_MIB, work, &elf_path, Some(&kdump_path))?;
    let (ram, bytes) = ram_and_dump(&outcome, &elf_path)?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
    let facts = check_linux_dump(&dump, guest, kaslr)?;
    let compared = compare_with_ram(&dump, &ram, "QEMU's dump")?;
    let kdump_len = std::fs::metadata(&kdump_path).map_or(0, |m| m.len());
    let filtered = makedumpfile_elf(&dump, &ram, work)?;
    let qemu_kdump = check_kdump(&kdump_path, &dump, guest, kaslr)?;
    let makedumpfile = makedumpfile_kdump(&dump, work, guest)?;
    let cli = every_command(work, &ram)?;
    let converted = if kaslr {
        let line = crate::convert_check::check(work, &elf_path, true)
            .map_err(|why| format!("crashkit convert of QEMU's ELF: {why}"))?;
        format!("; QEMU's ELF {line}")
    } else {
        String::new()
    };
    // Checked: the RAM file and makedumpfile's input (crashkit's ELF of all
    // pages) are not kept; the dumps are.
    let _ = std::fs::remove_file(&outcome.ram);
    let _ = std::fs::remove_file(work.join("crashkit.vmcore"));
    Ok(format!(
        "booted in {:.1} s; QEMU ELF {} MiB, {compared} pages equal to guest RAM; {facts}; \
         kdump-zlib (flattened) {} KiB: {qemu_kdump}; {filtered}; {makedumpfile}; \
         crashkit CLI on each: {cli}{converted}",
        outcome.elapsed.as_secs_f64(),
        bytes.len() >> 20,
        kdump_len >> 10
    ))
}

/// Every `crashkit` command over every dump of the guest in `work`: QEMU's
/// ELF and flattened kdump-zlib, makedumpfile's ELF, kdump (zlib, LZO),
/// flattened and split outputs (the parts named together), and QEMU's ELF
/// converted by `crashkit convert` to the kdump codecs nobody else here
/// writes (raw, snappy, zstd).
///
/// Also QEMU's flattened kdump-zlib reassembled by `makedumpfile -R`:
/// QEMU's own bytes, so still QEMU's. (makedumpfile 1.7.2 cannot make a
/// file of its own from QEMU's dumps of this guest: it reads no QEMU ELF,
/// and refiltering QEMU's kdump file fails at any dump level.)
fn every_command(work: &Path, ram: &[u8]) -> Result<String, String> {
    let crashkit = cli_check::crashkit()?;
    let reassembled = work.join("qemu-kdump-zlib.kdump");
    let _ = std::fs::remove_file(&reassembled);
    let flat = work.join("qemu-kdump-zlib.flat");
    let stream = std::fs::File::open(&flat).map_err(|e| format!("{}: {e}", flat.display()))?;
    run(Command::new("makedumpfile")
        .arg("-R")
        .arg(&reassembled)
        .stdin(stream))?;
    // Virtual pages whose physical address Linux's layout gives: the
    // kernel's first page of text (`_stext`, in the image mapping: minus
    // __START_KERNEL_map, plus phys_base) and pages of the direct map
    // (its base found from the dump, see `page_offset`).
    let elf_bytes = std::fs::read(work.join("qemu.elf")).map_err(|e| format!("qemu.elf: {e}"))?;
    let elf = ElfDump::parse(&elf_bytes).map_err(|e| format!("qemu.elf: {e}"))?;
    let info = elf.vmcoreinfo().ok_or("qemu.elf: no VMCOREINFO")?;
    let stext = info.number("SYMBOL(_stext)").ok_or("no SYMBOL(_stext)")?;
    let phys_base = info.number("NUMBER(phys_base)").ok_or("no phys_base")?;
    let direct = page_offset(&elf)?;
    let pages = ram.len() as u64 / 4096;
    let mut virtual_pages = vec![(
        stext,
        stext.wrapping_sub(START_KERNEL_MAP).wrapping_add(phys_base),
    )];
    for index in 1..16u64 {
        let phys = (pages * index / 16 + 3 * index) * 4096;
        virtual_pages.push((direct + phys, phys));
    }
    // The log as makedumpfile reads it, and the console's lines in it.
    let dmesg = work.join("makedumpfile-dmesg.txt");
    let _ = std::fs::remove_file(&dmesg);
    run(Command::new("makedumpfile")
        .arg("--dump-dmesg")
        .arg(work.join("makedumpfile-c-d1.kdump"))
        .arg(&dmesg))?;
    let log = std::fs::read_to_string(&dmesg).map_err(|e| format!("{}: {e}", dmesg.display()))?;
    let console =
        std::fs::read_to_string(work.join("serial.log")).map_err(|e| format!("serial.log: {e}"))?;
    let console_lines = console_in_log(&console, &log)?;
    let truth = crate::kallsyms::truth(ram, &console, phys_base, work)?;
    let listed = crate::kallsyms::check_list(&crashkit, path_str(&work.join("qemu.elf"))?, &truth)?;
    let crash = cli_check::Crash {
        ram,
        cpus: 2,
        record: None,
        virtual_pages,
        log: Some(log),
        symbols: Some(&truth),
    };
    let one = |name: &str| vec![work.join(name)];
    let split: Vec<PathBuf> = (1..=3)
        .map(|i| work.join(format!("makedumpfile-split.{i}")))
        .collect();
    let dumps = [
        (one("qemu.elf"), "elf", "qemu"),
        (
            one("qemu-kdump-zlib.flat"),
            "kdump-compressed-flattened",
            "qemu",
        ),
        (
            one("makedumpfile-E-d31.elf"),
            "elf",
            "makedumpfile from crashkit",
        ),
        (
            one("makedumpfile-c-d1.kdump"),
            "kdump-compressed",
            "makedumpfile from crashkit",
        ),
        (
            one("makedumpfile-l-d31.kdump"),
            "kdump-compressed",
            "makedumpfile from crashkit",
        ),
        (
            one("makedumpfile-F-c-d1.flat"),
            "kdump-compressed-flattened",
            "makedumpfile from crashkit",
        ),
        (split, "kdump-compressed", "makedumpfile from crashkit"),
        (vec![reassembled.clone()], "kdump-compressed", "qemu"),
    ];
    let mut lines = Vec::new();
    for (files, format, producer) in &dumps {
        let dump = cli_check::Dump {
            files,
            format,
            producer,
            record_note: false,
        };
        lines.push(cli_check::check(&crashkit, &dump, &crash)?);
    }
    let _ = std::fs::remove_file(&reassembled);
    // The codecs no producer here writes (makedumpfile 1.7.2 has neither
    // snappy nor zstd; QEMU offers only zlib): QEMU's ELF converted by
    // `crashkit convert`, checked the same way, then deleted.
    for codec in ["raw", "snappy", "zstd"] {
        let out = work.join(format!("crashkit-convert-{codec}.kdump"));
        let _ = std::fs::remove_file(&out);
        run(Command::new(&crashkit)
            .arg("convert")
            .arg(work.join("qemu.elf"))
            .arg(&out)
            .args(["--to", "kdump", "--codec", codec]))?;
        let files = [out.clone()];
        let dump = cli_check::Dump {
            files: &files,
            format: "kdump-compressed",
            producer: "crashkit",
            record_note: false,
        };
        let line = cli_check::check(&crashkit, &dump, &crash)
            .map_err(|why| format!("converted to {codec}: {why}"))?;
        lines.push(format!("convert --codec {codec}, then {line}"));
        let _ = std::fs::remove_file(&out);
    }
    Ok(format!(
        "{} dumps (the log: {console_lines} console lines in it, in order; {listed}): {}",
        lines.len(),
        lines.join(" / ")
    ))
}

/// A path as the UTF-8 argument the CLI is given.
pub(crate) fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{}: not UTF-8", path.display()))
}

/// Every line the guest's console printed with a timestamp is in the log
/// (`makedumpfile --dump-dmesg`'s, which `crashkit log` must equal), in
/// the same order; the log has more (messages below the console's level).
/// The console repeats the prefix on a record's continuation lines where
/// dmesg indents them: compared without it. The lines compared.
pub(crate) fn console_in_log(console: &str, log: &str) -> Result<usize, String> {
    let body = |line: &str| -> String {
        let line = line.trim_end_matches('\r');
        // The text after the prefix, or after the indentation; leading
        // blanks of the text itself are not compared (the indentation
        // cannot tell them apart).
        match line.find("] ") {
            Some(end) if line.starts_with('[') => line[end + 2..].trim_start().to_owned(),
            _ => line.trim_start().to_owned(),
        }
    };
    let log: Vec<String> = log.lines().map(body).collect();
    let mut at = 0;
    let mut compared = 0;
    for line in console.lines().filter(|l| l.starts_with('[')) {
        let want = body(line);
        match log[at..].iter().position(|l| *l == want) {
            Some(found) => at += found + 1,
            None => {
                return Err(format!(
                    "console line {line:?} is not in the log (in order)"
                ));
            }
        }
        compared += 1;
    }
    if compared < 100 {
        return Err(format!("only {compared} console lines"));
    }
    Ok(compared)
}

/// Boot `guest` with `ram_mib` of RAM (KASLR on or off), wait for its
/// panic, take QEMU's ELF dump to `elf` (and its flattened kdump-zlib dump
/// to `kdump` when given), quit. The guest RAM file stays in `work`.
pub fn crash_and_dump(
    guest: &Guest,
    kaslr: bool,
    ram_mib: u32,
    work: &Path,
    elf: &Path,
    kdump: Option<&Path>,
) -> Result<Outcome, String> {
    crash_and_dump_on(guest, kaslr, ram_mib, work, elf, kdump, Machine::default())
}

/// What QEMU emulates beyond the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct Machine<'c> {
    /// The CPU model (`-cpu`).
    pub cpu: Option<&'c str>,
    /// Leave out `-device vmcoreinfo`: QEMU's dumps then have no
    /// VMCOREINFO note (Linux still builds its text in memory).
    pub no_vmcoreinfo_device: bool,
    /// How the guest crashes.
    pub trigger: Trigger,
}

/// How a guest crashes (its `/init` reads `crashkit.crash=` from the
/// command line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trigger {
    /// SysRq-c from the shell: `panic()` from a system call.
    #[default]
    Sysrq,
    /// `/init` exits: "Attempted to kill init!" from `do_exit`.
    InitExit,
    /// `/init` spins in user space; QEMU injects an NMI and Linux
    /// (`unknown_nmi_panic`) panics in NMI context.
    Nmi,
}

/// What `/init` prints before it spins, waiting for the NMI.
const SPINNING_LINE: &str = "crashkit-corpus: spinning until an NMI";

/// [`crash_and_dump`] on the `machine` given.
pub fn crash_and_dump_on(
    guest: &Guest,
    kaslr: bool,
    ram_mib: u32,
    work: &Path,
    elf: &Path,
    kdump: Option<&Path>,
    machine: Machine<'_>,
) -> Result<Outcome, String> {
    for stale in [Some(elf), kdump].into_iter().flatten() {
        let _ = std::fs::remove_file(stale);
    }
    let mut append = String::from("console=ttyS0 panic=0");
    if !kaslr {
        append.push_str(" nokaslr");
    }
    match machine.trigger {
        Trigger::Sysrq => {}
        Trigger::InitExit => append.push_str(" crashkit.crash=exit"),
        Trigger::Nmi => append.push_str(" crashkit.crash=nmi"),
    }
    let mut extra: Vec<String> = Vec::new();
    if !machine.no_vmcoreinfo_device {
        extra.extend(["-device".into(), "vmcoreinfo".into()]);
    }
    if let Some(cpu) = machine.cpu {
        extra.extend(["-cpu".into(), cpu.to_owned()]);
    }
    let boot = Boot {
        kernel: &guest.vmlinuz,
        cpus: CPUS,
        append,
        work_dir: work.to_path_buf(),
        timeout: Duration::from_secs(300),
        qmp: true,
        ram_mib,
        initrd: Some(guest.initramfs.clone()),
        extra,
    };
    let mut taken = Err("the dumps were not attempted".to_owned());
    let outcome = boot.run(|work_dir| {
        taken = take_dumps(work_dir, elf, kdump, machine.trigger);
    })?;
    taken.map_err(|why| format!("{why}\nserial (last lines):\n{}", tail(&outcome.serial)))?;
    let expected = if machine.no_vmcoreinfo_device {
        NOT_READY_LINE
    } else {
        READY_LINE
    };
    if !outcome.serial.contains(expected) {
        return Err(format!(
            "the guest did not say {expected:?}:\n{}",
            tail(&outcome.serial)
        ));
    }
    Ok(outcome)
}

pub(crate) fn tail(serial: &str) -> String {
    let lines: Vec<&str> = serial.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Wait for Linux's panic (injecting the NMI that causes it, for
/// [`Trigger::Nmi`]), dump as ELF (and as kdump-zlib), quit.
fn take_dumps(
    work_dir: &Path,
    elf: &Path,
    kdump: Option<&Path>,
    trigger: Trigger,
) -> Result<(), String> {
    let serial = work_dir.join("serial.log");
    let mut qmp = None;
    if trigger == Trigger::Nmi {
        wait_for_line(&serial, SPINNING_LINE, Duration::from_secs(240))?;
        // The shell is in its loop once it has printed the line.
        std::thread::sleep(Duration::from_millis(300));
        let mut connected =
            Qmp::connect(&work_dir.join("qmp.sock")).map_err(|e| format!("QMP: {e}"))?;
        connected.execute(r#"{"execute":"inject-nmi"}"#)?;
        qmp = Some(connected);
    }
    wait_for_line(&serial, PANIC_LINE, Duration::from_secs(240))?;
    // Let the panic finish printing and stop the other CPUs.
    std::thread::sleep(Duration::from_millis(500));
    let mut qmp = match qmp {
        Some(qmp) => qmp,
        None => Qmp::connect(&work_dir.join("qmp.sock")).map_err(|e| format!("QMP: {e}"))?,
    };
    // Stop the guest first: QEMU pauses it during a dump but resumes it
    // after, and a guest that still runs (Linux's panic loop touches its
    // watchdog) would change RAM between the dump and the RAM file read.
    qmp.execute(r#"{"execute":"stop"}"#)?;
    qmp.execute(&format!(
        r#"{{"execute":"dump-guest-memory","arguments":{{"paging":false,"protocol":"file:{}"}}}}"#,
        elf.display()
    ))?;
    if let Some(kdump) = kdump {
        qmp.execute(&format!(
            r#"{{"execute":"dump-guest-memory","arguments":{{"paging":false,"protocol":"file:{}","format":"kdump-zlib"}}}}"#,
            kdump.display()
        ))?;
    }
    let _ = qmp.execute(r#"{"execute":"quit"}"#);
    Ok(())
}

/// QEMU's dump of the Linux guest, as the reader sees it; what it found.
fn check_linux_dump(dump: &ElfDump<'_>, guest: &Guest, kaslr: bool) -> Result<String, String> {
    let mut problems = Vec::new();
    if dump.producer() != Producer::Qemu {
        problems.push(format!("producer {:?}", dump.producer()));
    }
    if !dump.damage().is_empty() {
        problems.push(format!("damage {:?}", dump.damage()));
    }
    if dump.cpus().len() != CPUS as usize || dump.cpus().iter().any(|c| c.qemu.is_none()) {
        problems.push(format!(
            "{} CPUs with QEMU state, {CPUS} expected",
            dump.cpus().len()
        ));
    }
    let info = dump.vmcoreinfo().ok_or("no VMCOREINFO note")?;
    if info.get("OSRELEASE") != Some(guest.release.as_str()) {
        problems.push(format!(
            "OSRELEASE {:?}, {:?} expected",
            info.get("OSRELEASE"),
            guest.release
        ));
    }
    if info.number("PAGESIZE") != Some(4096) {
        problems.push("PAGESIZE is not 4096".into());
    }
    let offset = info.number("KERNELOFFSET").ok_or("no KERNELOFFSET")?;
    if kaslr == (offset == 0) {
        problems.push(format!(
            "KERNELOFFSET {offset:#x} with KASLR {}",
            if kaslr { "on" } else { "off" }
        ));
    }
    let phys_base = info
        .signed("NUMBER(phys_base)")
        .ok_or("no NUMBER(phys_base)")?;
    let init_top_pgt = info
        .number("SYMBOL(init_top_pgt)")
        .ok_or("no SYMBOL(init_top_pgt)")?;
    let build_id = info.build_id().ok_or("no BUILD-ID")?;
    if info.malformed_lines() > 0 {
        problems.push(format!(
            "{} malformed VMCOREINFO lines",
            info.malformed_lines()
        ));
    }
    if !problems.is_empty() {
        return Err(format!("QEMU's dump: {}", problems.join("; ")));
    }
    Ok(format!(
        "VMCOREINFO: {} keys, KERNELOFFSET {offset:#x}, phys_base {phys_base:#x}, \
         init_top_pgt {init_top_pgt:#x}, build-id of {} bytes",
        info.entries().count(),
        build_id.1
    ))
}

/// makedumpfile `-E -d 31` of the guest's dump, read back: present pages
/// equal guest RAM, filtered ones excluded. makedumpfile 1.7.2 cannot read
/// QEMU 7.2's ELF (it expects the program headers right after the ELF
/// header), so its input is crashkit's ELF of the same memory, with
/// QEMU's VMCOREINFO and direct-map virtual addresses (makedumpfile finds
/// Linux's page offset from them).
fn makedumpfile_elf(dump: &ElfDump<'_>, ram: &[u8], work: &Path) -> Result<String, String> {
    let vmcoreinfo = dump.vmcoreinfo().ok_or("no VMCOREINFO")?;
    let text: Vec<u8> = vmcoreinfo
        .entries()
        .flat_map(|(key, value)| format!("{key}={value}\n").into_bytes())
        .collect();
    let direct_map = page_offset(dump)?;
    let input = work.join("crashkit.vmcore");
    rewrite::write(
        dump,
        &rewrite::Rewrite {
            vmcoreinfo: &text,
            direct_map: Some(direct_map),
            kernel_image: None,
            crash_record: &[],
            panic_cpu: None,
            crash_time: rewrite::now(),
            exclude_zero_pages: false,
            registers: &|_, live| live,
            below: None,
            fill: None,
        },
        &input,
    )?;
    let rewritten = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let rewritten = ElfDump::parse(&rewritten).map_err(|e| format!("crashkit's ELF: {e}"))?;
    if rewritten.completeness() != Completeness::Complete {
        return Err(format!("crashkit's ELF: {}", rewritten.completeness()));
    }
    compare_with_ram(&rewritten, ram, "crashkit's ELF")?;
    let output = work.join("makedumpfile-E-d31.elf");
    let _ = std::fs::remove_file(&output);
    run(Command::new("makedumpfile")
        .args(["-E", "-d", "31"])
        .arg(&input)
        .arg(&output))?;
    let bytes = std::fs::read(&output).map_err(|e| format!("{}: {e}", output.display()))?;
    let filtered = ElfDump::parse(&bytes).map_err(|e| format!("makedumpfile -E output: {e}"))?;
    if !filtered.notes_copied() || filtered.completeness() != Completeness::Unknown {
        return Err(format!(
            "makedumpfile -E output: notes copied {}, {} (expected: copied, unknown)",
            filtered.notes_copied(),
            filtered.completeness()
        ));
    }
    if !filtered.damage().is_empty() {
        return Err(format!(
            "makedumpfile -E output: damage {:?}",
            filtered.damage()
        ));
    }
    let (mut present, mut excluded) = (0u64, 0u64);
    let mut page = vec![0u8; 4096];
    for segment in filtered.segments() {
        for phys in (segment.paddr..segment.paddr + segment.memsz).step_by(4096) {
            let Some(expected) = ram.get(phys as usize..phys as usize + 4096) else {
                continue;
            };
            match filtered.classify(phys).state {
                PageState::Present => {
                    filtered
                        .read_phys(phys, &mut page)
                        .map_err(|e| format!("makedumpfile -E output: {e}"))?;
                    if page != expected {
                        return Err(format!(
                            "makedumpfile -E output: page {phys:#x} differs from RAM"
                        ));
                    }
                    present += 1;
                }
                PageState::Excluded => excluded += 1,
                state => {
                    return Err(format!(
                        "makedumpfile -E output: page {phys:#x} is {}",
                        state.name()
                    ));
                }
            }
        }
    }
    if excluded == 0 {
        return Err("makedumpfile -E -d 31 excluded no page".into());
    }
    Ok(format!(
        "direct map at {direct_map:#x}; makedumpfile -E -d 31 of crashkit's ELF: {present} pages \
         equal to RAM, {excluded} excluded, {}",
        filtered.completeness()
    ))
}

/// A kdump-compressed file (plain, flattened or one split part) read back:
/// every page it has equals the ELF dump of the same moment (itself equal
/// to guest RAM); what it says of the others.
fn compare_kdump(kdump: &KdumpDump<'_>, elf: &ElfDump<'_>, what: &str) -> Result<[u64; 3], String> {
    let (mut present, mut excluded, mut elsewhere) = (0u64, 0u64, 0u64);
    let mut page = vec![0u8; 4096];
    let mut expected = vec![0u8; 4096];
    for segment in elf.segments() {
        for phys in (segment.paddr..segment.paddr + segment.memsz).step_by(4096) {
            elf.read_phys(phys, &mut expected)
                .map_err(|e| format!("{what}: the ELF dump: {e}"))?;
            match kdump.read_page(phys / 4096, &mut page) {
                Ok(()) if page == expected => present += 1,
                Ok(()) => return Err(format!("{what}: page {phys:#x} differs from the ELF dump")),
                Err(problem) if problem.state == PageState::Excluded => excluded += 1,
                // makedumpfile takes memory Linux does not call RAM (the VGA
                // framebuffer at 0xfd000000, the BIOS ROM) for holes.
                Err(problem)
                    if problem.state == PageState::Hole
                        && (phys >= u64::from(RAM_MIB) << 20
                            || (0xa_0000..0x10_0000).contains(&phys)) =>
                {
                    excluded += 1
                }
                // A split part holds only its own frames: the others read
                // as in another part, never as lost.
                Err(problem)
                    if problem.state == PageState::InOtherPart && kdump.sub_header().split != 0 =>
                {
                    elsewhere += 1
                }
                Err(problem) => {
                    return Err(format!(
                        "{what}: page {phys:#x} is {} ({:?})",
                        problem.state.name(),
                        problem.decode
                    ));
                }
            }
        }
    }
    Ok([present, excluded, elsewhere])
}

/// QEMU's kdump-zlib (flattened) dump read in place: structure, notes,
/// and every page equal to the ELF dump of the same moment.
fn check_kdump(
    path: &Path,
    elf: &ElfDump<'_>,
    guest: &Guest,
    kaslr: bool,
) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let kdump = KdumpDump::parse(&bytes).map_err(|e| format!("QEMU's kdump: {e}"))?;
    let mut problems = Vec::new();
    if !kdump.is_flattened() || kdump.header().header_version != 6 {
        problems.push(format!(
            "flattened {}, version {}",
            kdump.is_flattened(),
            kdump.header().header_version
        ));
    }
    if kdump.completeness() != Completeness::Unknown || !kdump.damage().is_empty() {
        problems.push(format!(
            "{}; damage {:?}",
            kdump.completeness(),
            kdump.damage()
        ));
    }
    if kdump.cpus().len() != CPUS as usize || kdump.cpus().iter().any(|c| c.qemu.is_none()) {
        problems.push(format!("{} CPUs", kdump.cpus().len()));
    }
    let info = kdump.vmcoreinfo().ok_or("QEMU's kdump: no VMCOREINFO")?;
    if info.get("OSRELEASE") != Some(guest.release.as_str()) {
        problems.push("OSRELEASE differs".into());
    }
    // QEMU's quirk: it reads VMCOREINFO's decimal phys_base as hex, so its
    // sub-header is right only when phys_base is 0.
    let phys_base = info.number("NUMBER(phys_base)").unwrap_or(0);
    let header_right = kdump.sub_header().phys_base == phys_base;
    if !kaslr && !header_right {
        problems.push(format!(
            "sub-header phys_base {:#x}",
            kdump.sub_header().phys_base
        ));
    }
    if !problems.is_empty() {
        return Err(format!("QEMU's kdump: {}", problems.join("; ")));
    }
    let [present, excluded, _] = compare_kdump(&kdump, elf, "QEMU's kdump")?;
    Ok(format!(
        "{present} pages equal to the ELF dump, {excluded} excluded, sub-header phys_base {}",
        if header_right {
            "right"
        } else {
            "wrong (QEMU's KASLR quirk)"
        }
    ))
}

/// makedumpfile's kdump-compressed outputs of the guest's memory (zlib at
/// dump level 1, LZO at 31, flattened, split into parts), each read back
/// and compared with the ELF dump. Input: crashkit's ELF of all pages
/// (makedumpfile cannot read QEMU's ELF).
fn makedumpfile_kdump(elf: &ElfDump<'_>, work: &Path, guest: &Guest) -> Result<String, String> {
    let input = work.join("crashkit.vmcore");
    let mut lines = Vec::new();
    for (name, args) in [
        ("makedumpfile-c-d1.kdump", &["-c", "-d", "1"][..]),
        ("makedumpfile-l-d31.kdump", &["-l", "-d", "31"][..]),
    ] {
        let out = work.join(name);
        let _ = std::fs::remove_file(&out);
        run(Command::new("makedumpfile")
            .args(args)
            .arg(&input)
            .arg(&out))?;
        let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let kdump = KdumpDump::parse(&bytes).map_err(|e| format!("{name}: {e}"))?;
        check_makedumpfile_kdump(&kdump, guest, name)?;
        let [present, excluded, _] = compare_kdump(&kdump, elf, name)?;
        lines.push(format!(
            "{name}: {present} pages equal, {excluded} excluded"
        ));
    }
    // Flattened (to standard output).
    let flat = work.join("makedumpfile-F-c-d1.flat");
    let output = Command::new("makedumpfile")
        .args(["-F", "-c", "-d", "1"])
        .arg(&input)
        .output()
        .map_err(|e| format!("makedumpfile -F: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "makedumpfile -F: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::write(&flat, &output.stdout).map_err(|e| format!("{}: {e}", flat.display()))?;
    let kdump = KdumpDump::parse(&output.stdout).map_err(|e| format!("makedumpfile -F: {e}"))?;
    if !kdump.is_flattened() {
        return Err("makedumpfile -F: not read as flattened".into());
    }
    check_makedumpfile_kdump(&kdump, guest, "makedumpfile -F")?;
    let [present, _, _] = compare_kdump(&kdump, elf, "makedumpfile -F")?;
    lines.push(format!(
        "-F (flattened, read in place): {present} pages equal"
    ));
    // Split into three parts with a small block so that each gets frames.
    let parts: Vec<PathBuf> = (1..=3)
        .map(|i| work.join(format!("makedumpfile-split.{i}")))
        .collect();
    for part in &parts {
        let _ = std::fs::remove_file(part);
    }
    run(Command::new("makedumpfile")
        .args(["--split", "-c", "-d", "1", "--splitblock-size", "4096"])
        .arg(&input)
        .args(&parts))?;
    let mut total = [0u64; 3];
    let mut ranges = Vec::new();
    for part in &parts {
        let bytes = std::fs::read(part).map_err(|e| format!("{}: {e}", part.display()))?;
        let kdump = KdumpDump::parse(&bytes).map_err(|e| format!("split part: {e}"))?;
        let counts = compare_kdump(&kdump, elf, "split part")?;
        total[0] += counts[0];
        ranges.push(kdump.part());
    }
    let covered: Vec<bool> = ranges.windows(2).map(|w| w[0].1 == w[1].0).collect();
    if ranges.first().is_none_or(|r| r.0 != 0) || covered.contains(&false) {
        return Err(format!("split parts' frame ranges do not tile: {ranges:?}"));
    }
    lines.push(format!(
        "--split into 3 parts {ranges:x?}: {} pages equal, each from its own part",
        total[0]
    ));
    Ok(lines.join("; "))
}

fn check_makedumpfile_kdump(
    kdump: &KdumpDump<'_>,
    guest: &Guest,
    what: &str,
) -> Result<(), String> {
    // makedumpfile copies its input's notes, crashkit's completion marker
    // included, into its own headers: the reader sees the notes were copied
    // from another file and judges the dump as makedumpfile's (no marker of
    // its own: unknown), as it does for the ELF -E output
    // (docs/dump-formats.md, "Foreign headers").
    let completeness_expected =
        kdump.notes_copied() && kdump.completeness() == Completeness::Unknown;
    if kdump.header().header_version != 6 || !kdump.damage().is_empty() || !completeness_expected {
        return Err(format!(
            "{what}: version {}, {}, damage {:?}",
            kdump.header().header_version,
            kdump.completeness(),
            kdump.damage()
        ));
    }
    let release = kdump
        .vmcoreinfo()
        .and_then(|info| info.get("OSRELEASE").map(str::to_owned));
    if release.as_deref() != Some(guest.release.as_str()) {
        return Err(format!("{what}: OSRELEASE {release:?}"));
    }
    if kdump.cpus().len() != CPUS as usize {
        return Err(format!("{what}: {} CPUs", kdump.cpus().len()));
    }
    Ok(())
}
