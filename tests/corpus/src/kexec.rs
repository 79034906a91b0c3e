//! A genuine `/proc/vmcore`: the dump Linux itself writes, through its own
//! crash path (issue 23, section 4). The corpus's other Linux dumps are
//! QEMU's, and files rewritten from them; this one comes from kexec.
//!
//! The guest boots Debian's kernel with a `crashkernel=` reservation and an
//! initramfs that holds kexec-tools from Debian's package (unpacked with
//! `dpkg-deb -x` with the shared libraries it needs, never installed on
//! this machine), the same kernel, and a second, small initramfs for the
//! capture kernel. Its `/init` loads the capture kernel (`kexec -p`) and
//! crashes with SysRq-c; Linux's crash path stops the other CPU, saves the
//! notes and boots the capture kernel, whose `/init` copies `/proc/vmcore`
//! to a virtio disk, prints its size and powers off. The runner keeps the
//! first that many bytes of the disk as `proc-vmcore.elf`.
//!
//! Checked: it opens with no damage and no overlap that disagrees, as
//! Linux's own (producer `linux`, two CPUs, the package's OSRELEASE), with
//! the kernel-text `PT_LOAD` overlapping the direct map; its pages equal the
//! guest RAM file (which the capture kernel, running inside the
//! reservation, leaves alone; pages that differ are counted and must be few
//! and below 1 MiB, which the capture kernel's firmware path may touch);
//! every crashkit command over it and over makedumpfile's kdump-compressed
//! and ELF files made from it; and the truncation of section 3: the file cut
//! inside its RAM segment is "truncated", not damaged, and `log` still reads
//! the whole log through the intact kernel-text segment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crashkit_dump_format::PAGE_SIZE;
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_dump_format::read::{Completeness, DamageKind, Incomplete, Producer};

use crate::cli_check;
use crate::linux::{self, Guest};
use crate::oracle::{START_KERNEL_MAP, page_offset};
use crashkit_qemu::host::run;
use crashkit_qemu::qemu::Boot;

/// Guest RAM: more than the other Linux guests' 256 MiB, because Linux
/// refuses (`EINVAL`) to load a crash kernel whose segments (Debian's
/// kernel asks for 64 MiB to decompress into) exceed half the RAM it has
/// left beside the reservation.
const RAM_MIB: u32 = 512;
/// The reservation for the capture kernel.
const CRASHKERNEL: &str = "crashkernel=128M";
/// What the first kernel's `/init` prints once the capture kernel is loaded.
const LOADED_LINE: &str = "crashkit-corpus: capture kernel loaded";
/// What the capture kernel's `/init` prints after the copy, then the size.
const SAVED_LINE: &str = "crashkit-corpus: vmcore saved, bytes: ";
/// The virtio modules the capture kernel loads, in dependency order (each
/// one's `depends=` in its `.modinfo`: the package has no `modules.dep`).
const VIRTIO_MODULES: [&str; 6] = [
    "virtio/virtio_ring.ko",
    "virtio/virtio.ko",
    "virtio/virtio_pci_legacy_dev.ko",
    "virtio/virtio_pci_modern_dev.ko",
    "virtio/virtio_pci.ko",
    "block/virtio_blk.ko",
];

/// The first kernel's `/init`: `kexec_file_load` (`-s`), the kernel's own
/// loader, then the classic `kexec_load` if that fails.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
append='console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=-1'
if /sbin/kexec -s -p /vmlinuz --initrd=/capture.cpio --append=\"$append\" ||
    /sbin/kexec -p /vmlinuz --initrd=/capture.cpio --append=\"$append\"; then
    echo 'crashkit-corpus: capture kernel loaded'
else
    echo 'crashkit-corpus: kexec -p failed'
    /bin/busybox poweroff -f
fi
@KALLSYMS@echo 1 > /proc/sys/kernel/sysrq
echo c > /proc/sysrq-trigger
";

/// The capture kernel's `/init`.
const CAPTURE_INIT: &str = "#!/bin/busybox sh
echo 'crashkit-corpus: capture kernel up'
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
    /bin/busybox insmod /modules/$m.ko
done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 60 ]; do /bin/busybox sleep 1; n=$((n+1)); done
size=$(/bin/busybox stat -c %s /proc/vmcore)
if /bin/busybox dd if=/proc/vmcore of=/dev/vda bs=1M 2>/dev/null; then
    /bin/busybox sync
    echo \"crashkit-corpus: vmcore saved, bytes: $size\"
else
    echo 'crashkit-corpus: copying /proc/vmcore failed'
fi
/bin/busybox poweroff -f
";

/// Make the genuine `/proc/vmcore` in `work` and check it; a summary.
pub fn make_and_check(guest: &Guest, dir: &Path, work: &Path) -> Result<String, String> {
    let initramfs = build_initramfs(guest, dir)?;
    let (vmcore, ram, elapsed) = crash_and_capture(guest, &initramfs, work)?;
    let bytes = std::fs::read(&vmcore).map_err(|e| format!("{}: {e}", vmcore.display()))?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("/proc/vmcore: {e}"))?;
    let facts = check_dump(&dump, guest)?;
    let (equal, differ) = compare(&dump, &ram)?;
    let cli = every_command(work, &vmcore, &dump, &ram)?;
    let cut = truncated(work, &vmcore, &dump)?;
    let converted = crate::convert_check::check(work, &vmcore, true)
        .map_err(|why| format!("crashkit convert of /proc/vmcore: {why}"))?;
    let kdump = work.join("makedumpfile-c-d31.kdump");
    let converted_kdump = crate::convert_check::check(work, &kdump, false)
        .map_err(|why| format!("crashkit convert of makedumpfile -c -d 31: {why}"))?;
    Ok(format!(
        "kexec'd and copied in {:.1} s; /proc/vmcore {} MiB: {facts}; {equal} pages equal to \
         guest RAM ({differ} below 1 MiB differ); {cli}; {cut}; /proc/vmcore {converted}; \
         makedumpfile -c -d 31 {converted_kdump}",
        elapsed.as_secs_f64(),
        bytes.len() >> 20
    ))
}

/// The boot that crashes the guest through kdump: `ram_mib` of RAM, the
/// `crashkernel=` reservation, `initramfs`, and a virtio disk for the copy
/// (RAM plus 64 MiB, sparse) in `work`; the disk's path.
fn kdump_boot<'a>(
    guest: &'a Guest,
    initramfs: &Path,
    work: &Path,
    ram_mib: u32,
    timeout: Duration,
) -> Result<(Boot<'a>, PathBuf), String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let disk = work.join("vmcore-disk.img");
    let file = std::fs::File::create(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    file.set_len(u64::from(ram_mib + 64) << 20)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let boot = Boot {
        kernel: &guest.vmlinuz,
        cpus: linux::CPUS,
        append: format!("console=ttyS0 {CRASHKERNEL} panic=0"),
        work_dir: work.to_path_buf(),
        timeout,
        qmp: false,
        ram_mib,
        initrd: Some(initramfs.to_path_buf()),
        extra: vec![
            "-drive".into(),
            format!("file={},format=raw,if=virtio", disk.display()),
        ],
    };
    Ok((boot, disk))
}

/// What the capture kernel's `/init` prints first.
const CAPTURE_UP_LINE: &str = "crashkit-corpus: capture kernel up";

/// Linux's kdump, timed from the host (issue 26's benchmark): wall time
/// from the panic line to the capture kernel's `/init`, and from there to
/// `/proc/vmcore` copied to the virtio disk (a plain copy, `dd bs=1M`).
#[derive(Clone, Copy, Debug)]
pub struct KdumpTimes {
    /// Panic line to the capture kernel's `/init` (the crash path, kexec,
    /// the capture kernel's boot).
    pub panic_to_capture: Duration,
    /// `/init` to the copy's end (the virtio modules, the copy, `sync`).
    pub capture_to_saved: Duration,
    /// Bytes of `/proc/vmcore`.
    pub bytes: u64,
}

/// Crash the guest with `ram_mib` MiB through Linux's kdump once and time
/// it (serial lines polled every millisecond).
pub fn time_kdump(
    guest: &Guest,
    dir: &Path,
    work: &Path,
    ram_mib: u32,
) -> Result<KdumpTimes, String> {
    let initramfs = build_initramfs(guest, dir)?;
    let (boot, disk) = kdump_boot(guest, &initramfs, work, ram_mib, Duration::from_secs(600))?;
    let mut seen = [None; 3];
    let outcome = boot.run(|dir| {
        seen = crashkit_qemu::qmp::line_times(
            &dir.join("serial.log"),
            &[linux::PANIC_LINE, CAPTURE_UP_LINE, SAVED_LINE],
            &["reboot: Power down", "copying /proc/vmcore failed"],
            Duration::from_secs(600),
        );
    })?;
    let _ = std::fs::remove_file(&disk);
    let _ = std::fs::remove_file(&outcome.ram);
    let bytes = outcome
        .serial
        .lines()
        .find_map(|line| line.trim().strip_prefix(SAVED_LINE))
        .and_then(|n| n.trim().parse::<u64>().ok());
    let ([Some(panic), Some(up), Some(saved)], Some(bytes)) = (seen, bytes) else {
        return Err(format!(
            "no timed /proc/vmcore ({:?}, lines seen {seen:?}):\n{}",
            outcome.ending,
            linux::tail(&outcome.serial)
        ));
    };
    Ok(KdumpTimes {
        panic_to_capture: up.saturating_duration_since(panic),
        capture_to_saved: saved.saturating_duration_since(up),
        bytes,
    })
}

/// The first kernel's initramfs: the corpus's busybox and `qemu_fw_cfg`
/// root, plus kexec-tools with the libraries it loads, the kernel, and the
/// capture kernel's initramfs (busybox, the virtio modules, its `/init`).
fn build_initramfs(guest: &Guest, dir: &Path) -> Result<PathBuf, String> {
    let root = linux::fetch_kexec_tools(dir)?;
    let modules = root
        .join("lib/modules")
        .join(&guest.release)
        .join("kernel/drivers");
    let busybox = read(&root.join("bin/busybox"))?;

    let mut capture = linux::Cpio::default();
    for directory in ["bin", "dev", "proc", "sys", "modules"] {
        capture.entry(directory, 0o040_755, &[], (0, 0));
    }
    capture.entry("dev/console", 0o020_600, &[], (5, 1));
    capture.entry("bin/busybox", 0o100_755, &busybox, (0, 0));
    capture.entry("bin/sh", 0o120_777, b"busybox", (0, 0));
    capture.entry("init", 0o100_755, CAPTURE_INIT.as_bytes(), (0, 0));
    for module in VIRTIO_MODULES {
        let name = module.rsplit('/').next().unwrap_or(module);
        capture.entry(
            &format!("modules/{name}"),
            0o100_644,
            &read(&modules.join(module))?,
            (0, 0),
        );
    }
    let capture = capture.finish();

    let mut cpio = linux::Cpio::default();
    for directory in [
        "bin",
        "sbin",
        "dev",
        "proc",
        "sys",
        "lib",
        "lib64",
        "lib/x86_64-linux-gnu",
    ] {
        cpio.entry(directory, 0o040_755, &[], (0, 0));
    }
    cpio.entry("dev/console", 0o020_600, &[], (5, 1));
    cpio.entry("bin/busybox", 0o100_755, &busybox, (0, 0));
    cpio.entry("bin/sh", 0o120_777, b"busybox", (0, 0));
    let init = INIT.replace("@KALLSYMS@", crate::kallsyms::HAND_OUT);
    cpio.entry("init", 0o100_755, init.as_bytes(), (0, 0));
    let kexec = root.join("sbin/kexec");
    cpio.entry("sbin/kexec", 0o100_755, &read(&kexec)?, (0, 0));
    for (name, path) in needed_libraries(&root, &kexec)? {
        cpio.entry(
            &format!("lib/x86_64-linux-gnu/{name}"),
            0o100_755,
            &read(&path)?,
            (0, 0),
        );
    }
    cpio.entry(
        "lib64/ld-linux-x86-64.so.2",
        0o120_777,
        b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        (0, 0),
    );
    cpio.entry("vmlinuz", 0o100_644, &read(&guest.vmlinuz)?, (0, 0));
    cpio.entry("capture.cpio", 0o100_644, &capture, (0, 0));
    let path = dir.join("initramfs-kexec.cpio");
    std::fs::write(&path, cpio.finish()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The shared libraries `binary` loads, with the dynamic loader: its
/// `DT_NEEDED` entries (readelf), theirs, and so on, each found in the
/// unpacked packages under `root`.
fn needed_libraries(root: &Path, binary: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let dirs = [
        root.join("lib/x86_64-linux-gnu"),
        root.join("usr/lib/x86_64-linux-gnu"),
    ];
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.exists());
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let loader = "ld-linux-x86-64.so.2";
    found.push((
        loader.to_owned(),
        find(loader).ok_or("the dynamic loader is not in libc6")?,
    ));
    let mut todo = vec![binary.to_path_buf()];
    while let Some(file) = todo.pop() {
        let dynamic = run(Command::new("readelf").arg("-d").arg(&file))?;
        for line in dynamic.lines() {
            let Some(name) = line
                .split("Shared library: [")
                .nth(1)
                .and_then(|rest| rest.split(']').next())
            else {
                continue;
            };
            if found.iter().any(|(known, _)| known == name) {
                continue;
            }
            let path = find(name).ok_or_else(|| {
                format!(
                    "{} needs {name}, which no fetched package has",
                    file.display()
                )
            })?;
            found.push((name.to_owned(), path.clone()));
            todo.push(path);
        }
    }
    Ok(found)
}

/// Boot, crash, let the capture kernel copy `/proc/vmcore` to the disk;
/// the vmcore's path, guest RAM, and the run's wall time.
fn crash_and_capture(
    guest: &Guest,
    initramfs: &Path,
    work: &Path,
) -> Result<(PathBuf, Vec<u8>, Duration), String> {
    let (boot, disk) = kdump_boot(guest, initramfs, work, RAM_MIB, Duration::from_secs(480))?;
    let outcome = boot.run(|_| {})?;
    let serial = &outcome.serial;
    let size = serial
        .lines()
        .find_map(|line| line.trim().strip_prefix(SAVED_LINE))
        .and_then(|n| n.trim().parse::<u64>().ok());
    let (true, true, Some(size)) = (
        serial.contains(LOADED_LINE),
        serial.contains(linux::PANIC_LINE),
        size,
    ) else {
        return Err(format!(
            "no /proc/vmcore came out ({:?}):\n{}",
            outcome.ending,
            linux::tail(serial)
        ));
    };
    let mut bytes = read(&disk)?;
    let _ = std::fs::remove_file(&disk);
    if size == 0 || size > bytes.len() as u64 {
        return Err(format!(
            "/proc/vmcore of {size} bytes does not fit the disk"
        ));
    }
    bytes.truncate(size as usize);
    let vmcore = work.join("proc-vmcore.elf");
    std::fs::write(&vmcore, &bytes).map_err(|e| format!("{}: {e}", vmcore.display()))?;
    let ram = read(&outcome.ram)?;
    let _ = std::fs::remove_file(&outcome.ram);
    Ok((vmcore, ram, outcome.elapsed))
}

/// What the reader must see in Linux's own dump.
fn check_dump(dump: &ElfDump<'_>, guest: &Guest) -> Result<String, String> {
    let mut problems = Vec::new();
    if !dump.damage().is_empty() {
        problems.push(format!("damage {:?}", dump.damage()));
    }
    if !dump.overlap_damage().is_empty() {
        problems.push(format!("overlaps differ {:?}", dump.overlap_damage()));
    }
    if dump.producer() != Producer::LinuxKdump {
        problems.push(format!("producer {:?}", dump.producer()));
    }
    if dump.completeness() != Completeness::Unknown {
        problems.push(format!("completeness {:?}", dump.completeness()));
    }
    if dump.cpus().len() != linux::CPUS as usize || dump.cpus().iter().any(|c| c.is_empty()) {
        problems.push(format!("{} CPU notes (some empty?)", dump.cpus().len()));
    }
    let info = dump.vmcoreinfo().ok_or("no VMCOREINFO")?;
    if info.get("OSRELEASE") != Some(guest.release.as_str()) {
        problems.push(format!("OSRELEASE {:?}", info.get("OSRELEASE")));
    }
    // Linux's kernel-text segment (virtual addresses of the image mapping)
    // overlapping a direct-map one.
    let text = dump
        .segments()
        .iter()
        .find(|s| s.vaddr >= START_KERNEL_MAP)
        .ok_or("no kernel-text PT_LOAD")?;
    let overlapped = dump.segments().iter().any(|s| {
        s.index != text.index && s.paddr < text.paddr + text.memsz && text.paddr < s.paddr + s.memsz
    });
    if !overlapped {
        problems.push("the kernel-text PT_LOAD overlaps no other".into());
    }
    if !problems.is_empty() {
        return Err(format!("/proc/vmcore: {}", problems.join("; ")));
    }
    Ok(format!(
        "{} PT_LOADs (kernel text at {:#x} over the direct map), {} CPUs, no damage",
        dump.segments().len(),
        text.paddr,
        dump.cpus().len()
    ))
}

/// Every page of the vmcore against guest RAM: (equal, differing); pages
/// that differ must be below 1 MiB and few.
fn compare(dump: &ElfDump<'_>, ram: &[u8]) -> Result<(u64, u64), String> {
    let (mut equal, mut differ) = (0u64, 0u64);
    let mut page = vec![0u8; PAGE_SIZE as usize];
    for segment in dump.segments() {
        for phys in (segment.paddr..segment.paddr + segment.memsz).step_by(PAGE_SIZE as usize) {
            let Some(expected) = ram.get(phys as usize..(phys + PAGE_SIZE) as usize) else {
                continue;
            };
            dump.read_phys(phys, &mut page)
                .map_err(|e| format!("/proc/vmcore: page {phys:#x}: {e}"))?;
            if page == expected {
                equal += 1;
            } else if phys < 1 << 20 {
                differ += 1;
            } else {
                return Err(format!(
                    "/proc/vmcore: page {phys:#x} differs from guest RAM"
                ));
            }
        }
    }
    if equal < 1000 || differ > 64 {
        return Err(format!(
            "/proc/vmcore: {equal} pages equal to RAM, {differ} differ"
        ));
    }
    Ok((equal, differ))
}

/// Every command over the vmcore and over makedumpfile's files made from
/// it (`-c -d 31`, `-E -d 31`), and the log against the console's.
fn every_command(
    work: &Path,
    vmcore: &Path,
    dump: &ElfDump<'_>,
    ram: &[u8],
) -> Result<String, String> {
    let crashkit = cli_check::crashkit()?;
    let info = dump.vmcoreinfo().ok_or("no VMCOREINFO")?;
    let stext = info.number("SYMBOL(_stext)").ok_or("no SYMBOL(_stext)")?;
    let phys_base = info.number("NUMBER(phys_base)").ok_or("no phys_base")?;
    let direct = page_offset(dump)?;
    let mut virtual_pages = vec![(
        stext,
        stext.wrapping_sub(START_KERNEL_MAP).wrapping_add(phys_base),
    )];
    // Direct-map pages above 1 MiB inside the dump's segments.
    for segment in dump
        .segments()
        .iter()
        .filter(|s| s.vaddr < START_KERNEL_MAP)
    {
        let phys = (segment.paddr + segment.memsz / 2) & !(PAGE_SIZE - 1);
        if phys >= 1 << 20 {
            virtual_pages.push((direct + phys, phys));
        }
    }
    let dmesg = work.join("makedumpfile-dmesg.txt");
    let _ = std::fs::remove_file(&dmesg);
    run(Command::new("makedumpfile")
        .arg("--dump-dmesg")
        .arg(vmcore)
        .arg(&dmesg))?;
    let log = read(&dmesg).map(|b| String::from_utf8_lossy(&b).into_owned())?;
    let console =
        read(&work.join("serial.log")).map(|b| String::from_utf8_lossy(&b).into_owned())?;
    // The first kernel's lines: the capture kernel's follow its own
    // "Linux version" banner.
    let banner = "] Linux version ";
    let first = console
        .match_indices(banner)
        .nth(1)
        .map_or(console.as_str(), |(at, _)| {
            let line_start = console[..at].rfind('\n').map_or(0, |i| i + 1);
            &console[..line_start]
        });
    let console_lines = linux::console_in_log(first, &log)?;
    let truth = crate::kallsyms::truth(ram, first, phys_base, work)?;
    let listed = crate::kallsyms::check_list(&crashkit, linux::path_str(vmcore)?, &truth)?;
    let crash = cli_check::Crash {
        ram,
        cpus: linux::CPUS as usize,
        record: None,
        virtual_pages,
        log: Some(log),
        symbols: Some(&truth),
    };
    let kdump = work.join("makedumpfile-c-d31.kdump");
    let elf = work.join("makedumpfile-E-d31.elf");
    for (out, args) in [(&kdump, ["-c", "-d", "31"]), (&elf, ["-E", "-d", "31"])] {
        let _ = std::fs::remove_file(out);
        run(Command::new("makedumpfile").args(args).arg(vmcore).arg(out))?;
    }
    let mut lines = Vec::new();
    for (path, format, producer) in [
        (vmcore.to_path_buf(), "elf", "linux"),
        (kdump, "kdump-compressed", "makedumpfile from linux"),
        (elf, "elf", "makedumpfile from linux"),
    ] {
        let files = [path];
        let dump = cli_check::Dump {
            files: &files,
            format,
            producer,
            record_note: false,
        };
        lines.push(cli_check::check(&crashkit, &dump, &crash)?);
    }
    Ok(format!(
        "the log has the console's {console_lines} lines; {listed}; crashkit CLI on it and \
         makedumpfile's -c and -E files of it: {}",
        lines.join(" / ")
    ))
}

/// Section 3 on the genuine file: cut inside its largest direct-map
/// segment, it is truncated (not damaged), counts as present only what is
/// in it, and `log` reads the same log through the whole kernel-text
/// segment.
fn truncated(work: &Path, vmcore: &Path, dump: &ElfDump<'_>) -> Result<String, String> {
    let crashkit = cli_check::crashkit()?;
    let segment = dump
        .segments()
        .iter()
        .filter(|s| s.vaddr < START_KERNEL_MAP)
        .max_by_key(|s| s.filesz)
        .ok_or("no direct-map segment")?;
    let text_end = dump
        .segments()
        .iter()
        .filter(|s| s.vaddr >= START_KERNEL_MAP)
        .map(|s| s.offset + s.filesz)
        .max()
        .unwrap_or(0);
    let cut = (segment.offset + segment.filesz / 2).max(text_end);
    if cut >= segment.offset + segment.filesz {
        return Err("the largest segment ends before the kernel text's bytes".into());
    }
    let bytes = read(vmcore)?;
    let path = work.join("proc-vmcore-cut.elf");
    std::fs::write(&path, &bytes[..cut as usize])
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let cut_dump = ElfDump::parse(&bytes[..cut as usize]).map_err(|e| format!("cut: {e}"))?;
    let kinds: Vec<_> = cut_dump.damage().iter().map(|d| d.kind).collect();
    if !kinds
        .iter()
        .all(|k| matches!(k, DamageKind::SegmentPastEnd { .. }))
        || kinds.is_empty()
    {
        return Err(format!("cut at {cut}: damage {kinds:?}"));
    }
    if !matches!(
        cut_dump.completeness(),
        Completeness::Incomplete(Incomplete::Truncated { len, .. }) if len == cut
    ) {
        return Err(format!("cut at {cut}: {:?}", cut_dump.completeness()));
    }
    let (whole, part) = (dump.page_counts(), cut_dump.page_counts());
    if part.present + part.lost != whole.present || part.lost == 0 {
        return Err(format!(
            "cut at {cut}: {part:?} against the whole file's {whole:?}"
        ));
    }
    let log = |file: &Path| {
        let file = file.to_str().ok_or("a path that is not UTF-8")?;
        cli_check::run(&crashkit, &["log", file])
    };
    let (full, short) = (log(vmcore)?, log(&path)?);
    let _ = std::fs::remove_file(&path);
    if !short.status.success() || short.stdout != full.stdout {
        return Err(format!(
            "cut at {cut}: crashkit log exits {:?} and differs: {}",
            short.status.code(),
            String::from_utf8_lossy(&short.stderr)
        ));
    }
    Ok(format!(
        "cut at {} MiB inside segment {}: truncated, {} present and {} lost pages, the same log",
        cut >> 20,
        segment.index,
        part.present,
        part.lost
    ))
}
