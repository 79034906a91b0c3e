//! `--dump-faults`: the faults a dump path meets in the field
//! (../shared/notes/dump-path-prior-art.md, "What fails in the field"),
//! each ending in a dump that says what happened or a device that says no
//! dump was written, never a dump that lies. Every fault boots the full
//! test kernel with the capture kernel as its boot module and a virtio-blk
//! disk, as `--capture` does:
//!
//! | fault | how | what must hold |
//! |-------|-----|----------------|
//! | `corrupt-image` | `capture=corrupt`: a byte of the loaded capture image flipped after load | the hand-over refuses (image changed); the in-place writer writes the dump; the record says `InPlace`, `ImageChanged`, `Complete`; the post-dump notifiers and the final action run |
//! | `no-capture` | `capture=none`: nothing loaded | the same, `NoCaptureKernel` |
//! | `secret` | `secret=1`, both paths | the run-time pattern of the registered range is nowhere on the disk image, in the saved file, or in any page the dump reads back |
//! | `small-device` | a 1 MiB disk | the dump is marked incomplete: `crashkit verify` fails saying so, `crashkit info` says incomplete |
//! | `torn` | `fill=24` (24 MiB no codec compresses), the machine stopped through QMP once the capture kernel printed 20% | `crashkit save` refuses: torn |
//! | `replace` | three boots on one disk: a complete dump, another crash's complete dump, then a torn one | the second replaces the first (its own record); the torn third is never taken for the second |
//!
//! Every in-place dump is also checked page by page against guest RAM:
//! equal everywhere but the ranges the record lists as changed while
//! writing (the writer's stack and the record) and those it left out (its
//! own state, the reservation, the secrets).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crashkit_dump_format::KdumpDump;
use crashkit_qemu::qemu::{Boot, Ending, KernelExit, Outcome};
use crashkit_qemu::qmp::Qmp;
use crashkit_record::{
    ChangedKind, Decoded, DumpOutcome, DumpPath, DumpResult, FallbackReason, RecordView, scan,
};

use crate::capture::{self, disk_at, run, run_failing};

/// One fault's boots.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// Its name (`--fault NAME` selects).
    pub name: &'static str,
    /// The test kernel's scenario.
    pub scenario: &'static str,
    /// CPU counts it runs at.
    pub cpus: &'static [u32],
    /// More command line.
    pub append: &'static str,
    /// What it checks.
    pub kind: Kind,
}

/// What a fault checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The in-place writer writes the dump, for this reason.
    InPlace(FallbackReason),
    /// The capture kernel writes it; a secret is registered.
    CaptureSecret,
    /// The disk is too small.
    SmallDevice,
    /// The machine stops part way through the capture kernel's writing.
    Torn,
    /// An earlier dump on the disk, replaced, then a torn one.
    Replace,
}

/// Every fault.
pub const FAULTS: &[Fault] = &[
    Fault {
        name: "corrupt-image",
        scenario: "panic-ap",
        cpus: &[2, 4],
        append: "capture=corrupt",
        kind: Kind::InPlace(FallbackReason::ImageChanged),
    },
    Fault {
        name: "no-capture",
        scenario: "panic-bsp",
        cpus: &[1, 4],
        append: "capture=none",
        kind: Kind::InPlace(FallbackReason::NoCaptureKernel),
    },
    Fault {
        name: "secret-in-place",
        scenario: "panic-ap",
        cpus: &[2],
        append: "capture=none secret=1",
        kind: Kind::InPlace(FallbackReason::NoCaptureKernel),
    },
    Fault {
        name: "secret-capture",
        scenario: "panic-ap",
        cpus: &[2],
        append: "secret=1",
        kind: Kind::CaptureSecret,
    },
    Fault {
        name: "small-device",
        scenario: "panic-bsp",
        cpus: &[2],
        append: "fill=8",
        kind: Kind::SmallDevice,
    },
    Fault {
        name: "torn",
        scenario: "panic-bsp",
        cpus: &[2],
        append: "fill=24",
        kind: Kind::Torn,
    },
    Fault {
        name: "replace",
        scenario: "panic-ap",
        cpus: &[2],
        append: "",
        kind: Kind::Replace,
    },
];

/// What the test kernel prints (`pause=1`) when the in-place writer
/// returned: guest RAM is then as the writer left it.
const PAUSED: &str = "crashkit-test: in-place dump returned, pausing";

/// A small disk: room for the headers and a little data.
const SMALL_DISK: u64 = 1 << 20;

/// How long one boot may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the runner does while a boot runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch<'a> {
    /// Nothing.
    Nothing,
    /// Stop the machine and quit QEMU once the serial shows the line.
    StopAt(&'a str),
    /// Copy guest RAM (the machine stopped meanwhile) once the serial
    /// shows the line.
    SnapshotAt(&'a str),
}

/// One boot of `fault` with `cpus` CPUs in `work_dir` (`scenario` and
/// `append` for this boot; `stop_at`: stop the machine through QMP once
/// the serial shows that line).
fn boot(
    kernel: &Path,
    work_dir: &Path,
    scenario: &str,
    append: &str,
    cpus: u32,
    disk: Vec<String>,
    watch: Watch<'_>,
) -> Result<Outcome, String> {
    let boot = Boot {
        kernel,
        cpus,
        append: format!("scenario={scenario} {append}").trim().to_owned(),
        work_dir: work_dir.to_path_buf(),
        timeout: BOOT_TIMEOUT,
        qmp: watch != Watch::Nothing,
        ram_mib: crashkit_qemu::qemu::RAM_MIB,
        initrd: Some(capture::capture_kernel()),
        extra: disk,
    };
    let mut stopped = Ok(());
    let outcome = boot.run(|dir| {
        stopped = match watch {
            Watch::Nothing => Ok(()),
            Watch::StopAt(line) => stop_when(&dir.join("serial.log"), &dir.join("qmp.sock"), line),
            Watch::SnapshotAt(line) => snapshot_when(dir, line),
        };
    })?;
    stopped?;
    Ok(outcome)
}

/// The RAM copy [`snapshot_when`] makes.
const RAM_AT_DUMP: &str = "ram-at-dump.bin";

/// Wait for `line`, stop the guest, copy its RAM file to [`RAM_AT_DUMP`],
/// let it go on.
fn snapshot_when(dir: &Path, line: &str) -> Result<(), String> {
    let mut qmp = Qmp::connect(&dir.join("qmp.sock")).map_err(|e| format!("QMP: {e}"))?;
    wait_for(&dir.join("serial.log"), line)?;
    qmp.execute(r#"{"execute":"stop"}"#)?;
    let copied = std::fs::copy(dir.join("ram.bin"), dir.join(RAM_AT_DUMP))
        .map_err(|e| format!("copying guest RAM: {e}"));
    qmp.execute(r#"{"execute":"cont"}"#)?;
    copied.map(|_| ())
}

/// Wait (bounded) until the serial log holds `line`.
fn wait_for(serial: &Path, line: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read(serial).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(line) {
            return Ok(());
        }
        if started.elapsed() > BOOT_TIMEOUT {
            return Err(format!("the serial never showed {line:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait for `line` on the serial log, then stop the guest and quit QEMU.
fn stop_when(serial: &Path, socket: &Path, line: &str) -> Result<(), String> {
    let mut qmp = Qmp::connect(socket).map_err(|e| format!("QMP: {e}"))?;
    wait_for(serial, line)?;
    qmp.execute(r#"{"execute":"stop"}"#)?;
    let text = String::from_utf8_lossy(&std::fs::read(serial).unwrap_or_default()).into_owned();
    if text.contains("crashkit-capture: dump written") {
        return Err("the dump was complete before the machine stopped".to_owned());
    }
    // QEMU closes the socket as it quits: no reply to wait for.
    let _ = qmp.execute(r#"{"execute":"quit"}"#);
    Ok(())
}

/// The one crash record in guest RAM.
fn record_in(memory: &[u8]) -> Result<(usize, RecordView<'_>), String> {
    let found: Vec<_> = scan(memory)
        .filter_map(|(at, parsed)| parsed.ok().map(|view| (at, view)))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        other => Err(format!("{} crash records in guest RAM", other.len())),
    }
}

/// Save the dump off `disk` into `saved` (replacing an earlier file).
fn save(disk: &Path, saved: &Path) -> Result<String, String> {
    let _ = std::fs::remove_file(saved);
    run(
        Command::new(capture::crashkit_cli())
            .arg("save")
            .arg(disk)
            .arg(saved),
        "crashkit save",
    )
}

/// The crash record note of a saved dump.
fn noted_record(file: &[u8]) -> Result<Vec<u8>, String> {
    capture::open(file)?
        .record
        .ok_or_else(|| "the saved dump has no crash record note".to_owned())
}

/// Run one fault at `cpus` CPUs, round `round`; `Ok(label)` or why not.
pub fn run_fault(
    kernel: &Path,
    out: &Path,
    fault: &Fault,
    cpus: u32,
    round: u32,
) -> Result<(), String> {
    let work_dir: PathBuf = out.join(format!("fault-{}-smp{}-run{}", fault.name, cpus, round + 1));
    std::fs::create_dir_all(&work_dir).map_err(|e| format!("{}: {e}", work_dir.display()))?;
    let disk = work_dir.join("disk.img");
    let saved = work_dir.join("vmcore");
    let result = match fault.kind {
        Kind::InPlace(reason) => {
            let outcome = boot(
                kernel,
                &work_dir,
                fault.scenario,
                &format!("{} pause=1", fault.append),
                cpus,
                disk_at(&disk, 64 << 20, false)?,
                Watch::SnapshotAt(PAUSED),
            )?;
            in_place(kernel, &outcome, &disk, &saved, reason)
        }
        Kind::CaptureSecret => {
            let outcome = boot(
                kernel,
                &work_dir,
                fault.scenario,
                fault.append,
                cpus,
                disk_at(&disk, 64 << 20, false)?,
                Watch::Nothing,
            )?;
            if outcome.ending != Ending::Reset {
                return Err(format!("{}", outcome.ending));
            }
            save(&disk, &saved)?;
            run(
                Command::new(capture::crashkit_cli())
                    .arg("verify")
                    .arg(&saved),
                "crashkit verify",
            )?;
            let memory = read(&outcome.ram)?;
            let (_, view) = record_in(&memory)?;
            secret_absent(&memory, &view, &disk, &saved)
        }
        Kind::SmallDevice => {
            let outcome = boot(
                kernel,
                &work_dir,
                fault.scenario,
                fault.append,
                cpus,
                disk_at(&disk, SMALL_DISK, false)?,
                Watch::Nothing,
            )?;
            if !outcome.serial.contains("DID NOT FIT") {
                return Err("the capture kernel did not say the dump did not fit".to_owned());
            }
            let said = save(&disk, &saved)?;
            if !said.contains("did not fit") {
                return Err(format!("crashkit save did not say it did not fit:\n{said}"));
            }
            let cli = capture::crashkit_cli();
            let verify = run_failing(
                Command::new(&cli).arg("verify").arg(&saved),
                "crashkit verify",
            )?;
            if !verify.contains("incomplete") {
                return Err(format!(
                    "crashkit verify does not say incomplete:\n{verify}"
                ));
            }
            let info = run(Command::new(&cli).arg("info").arg(&saved), "crashkit info")?;
            if !info.contains("incomplete") {
                return Err(format!("crashkit info does not say incomplete:\n{info}"));
            }
            Ok(())
        }
        Kind::Torn => {
            boot(
                kernel,
                &work_dir,
                fault.scenario,
                fault.append,
                cpus,
                disk_at(&disk, 64 << 20, false)?,
                Watch::StopAt("crashkit-capture: 20%"),
            )?;
            torn(&disk, &saved)
        }
        Kind::Replace => replace(kernel, &work_dir, &disk, &saved, cpus),
    };
    if result.is_ok() {
        let _ = std::fs::remove_file(work_dir.join("ram.bin"));
        let _ = std::fs::remove_file(work_dir.join(RAM_AT_DUMP));
        let _ = std::fs::remove_file(&disk);
    }
    result
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `crashkit save` refuses the disk as torn.
fn torn(disk: &Path, saved: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(saved);
    let said = run_failing(
        Command::new(capture::crashkit_cli())
            .arg("save")
            .arg(disk)
            .arg(saved),
        "crashkit save of a torn dump",
    )?;
    if !said.contains("torn") {
        return Err(format!(
            "crashkit save does not call the dump torn:\n{said}"
        ));
    }
    if saved.exists() {
        return Err("crashkit save wrote a file for a torn dump".to_owned());
    }
    Ok(())
}

/// Three boots on one disk: panic-bsp complete, panic-ap complete (it
/// replaces the first), panic-bsp torn (never taken for the second).
fn replace(
    kernel: &Path,
    work_dir: &Path,
    disk: &Path,
    saved: &Path,
    cpus: u32,
) -> Result<(), String> {
    let mut owners = Vec::new();
    for (index, scenario) in ["panic-bsp", "panic-ap"].into_iter().enumerate() {
        let dir = work_dir.join(format!("boot{}", index + 1));
        let outcome = boot(
            kernel,
            &dir,
            scenario,
            "",
            cpus,
            disk_at(disk, 64 << 20, index > 0)?,
            Watch::Nothing,
        )?;
        if outcome.ending != Ending::Reset {
            return Err(format!("boot {}: {}", index + 1, outcome.ending));
        }
        save(disk, saved)?;
        let record = noted_record(&read(saved)?)?;
        let view = RecordView::parse(&record).map_err(|e| format!("the saved record: {e}"))?;
        owners.push(view.panic().owner_cpu());
        let _ = std::fs::remove_file(dir.join("ram.bin"));
    }
    // panic-bsp panics on CPU 0, panic-ap on another.
    if owners[0] != Some(0) || owners[1] == Some(0) || owners[1].is_none() {
        return Err(format!(
            "the saved dumps' panicking CPUs are {owners:?}: the second crash's dump did not replace the first"
        ));
    }
    let dir = work_dir.join("boot3");
    boot(
        kernel,
        &dir,
        "panic-bsp",
        "fill=24",
        cpus,
        disk_at(disk, 64 << 20, true)?,
        Watch::StopAt("crashkit-capture: 20%"),
    )?;
    let _ = std::fs::remove_file(dir.join("ram.bin"));
    torn(disk, saved)
}

/// The in-place checks (see the module docs).
fn in_place(
    kernel: &Path,
    outcome: &Outcome,
    disk: &Path,
    saved: &Path,
    reason: FallbackReason,
) -> Result<(), String> {
    if outcome.ending != Ending::Kernel(KernelExit::Ran) {
        return Err(format!(
            "{} (the panic path should go on to its final action after the in-place dump)",
            outcome.ending
        ));
    }
    if !outcome.serial.contains("crashkit: dump written in place") {
        return Err("the serial lacks \"crashkit: dump written in place\"".to_owned());
    }
    // The record at the end (the panic path went on); the pages as the
    // writer left them (copied while the kernel paused after the dump).
    let memory = read(&outcome.ram)?;
    let (_, view) = record_in(&memory)?;
    let at_dump = read(&outcome.ram.with_file_name(RAM_AT_DUMP))?;
    let panic = view.panic();
    if panic.dump_result() != Decoded::Known(DumpResult::WrittenInPlace)
        || panic.dump_detail() != DumpOutcome::Complete.code()
    {
        return Err(format!(
            "dump result {:?} detail {}",
            panic.dump_result(),
            panic.dump_detail()
        ));
    }
    let dump = view.dump().ok_or("the record has no dump section")?;
    if dump.path() != Decoded::Known(DumpPath::InPlace)
        || dump.reason() != Decoded::Known(reason)
        || dump.outcome() != Decoded::Known(DumpOutcome::Complete)
    {
        return Err(format!(
            "dump section: path {:?}, reason {:?}, outcome {:?}",
            dump.path(),
            dump.reason(),
            dump.outcome()
        ));
    }
    let kinds: Vec<_> = dump.changed().map(|c| c.kind).collect();
    for kind in [
        ChangedKind::Stack,
        ChangedKind::Record,
        ChangedKind::WriterState,
    ] {
        if !kinds.contains(&Decoded::Known(kind)) {
            return Err(format!("the changed ranges lack {kind:?}: {kinds:?}"));
        }
    }
    save(disk, saved)?;
    run(
        Command::new(capture::crashkit_cli())
            .arg("verify")
            .arg(saved),
        "crashkit verify",
    )?;
    let file = read(saved)?;
    let noted = noted_record(&file)?;
    let copy = RecordView::parse(&noted).map_err(|e| format!("the dump's record: {e}"))?;
    let copied = copy.dump().ok_or("the dump's record has no dump section")?;
    if copied.path() != Decoded::Known(DumpPath::InPlace)
        || copied.reason() != Decoded::Known(reason)
        || copied.outcome() != Decoded::Known(DumpOutcome::Running)
    {
        return Err(format!(
            "the dump's own record: path {:?}, reason {:?}, outcome {:?} (Running expected: copied before the writing)",
            copied.path(),
            copied.reason(),
            copied.outcome()
        ));
    }
    // Page by page against RAM.
    let changed: Vec<(u64, u64, bool)> = dump
        .changed()
        .map(|c| (c.start, c.len, c.left_out))
        .collect();
    let excluded: Vec<(u64, u64)> = view.exclusions().collect();
    let dump_file = KdumpDump::parse(&file).map_err(|e| format!("the saved dump: {e}"))?;
    let mut page = vec![0u8; 4096];
    let mut compared = 0u64;
    for (index, ram) in at_dump.chunks_exact(4096).enumerate() {
        let phys = index as u64 * 4096;
        let touches = |(start, len): (u64, u64)| phys + 4096 > start && phys < start + len;
        let left_out = changed.iter().any(|c| c.2 && touches((c.0, c.1)))
            || excluded.iter().any(|&range| touches(range))
            || touches(capture::RESERVATION_RANGE);
        let present = dump_file.read_phys(phys, &mut page).is_ok();
        if left_out {
            if present && page.iter().any(|&b| b != 0) {
                return Err(format!(
                    "page {phys:#x} should be left out but is in the dump"
                ));
            }
            continue;
        }
        if !present || changed.iter().any(|c| !c.2 && touches((c.0, c.1))) {
            continue;
        }
        if page != ram {
            return Err(format!("page {phys:#x} differs from guest RAM"));
        }
        compared += 1;
    }
    if compared < 27_000 {
        return Err(format!("only {compared} pages of guest RAM compared"));
    }
    if !excluded.is_empty() {
        secret_absent(&memory, &view, disk, saved)?;
    }
    // The crash log in the dump the crashed kernel wrote: the panic path's
    // events, then the in-place writer's own.
    let owner = panic.owner_cpu().ok_or("the record has no owner")?;
    let stopped = capture::stopped_cpus(&view);
    crashkit_qemu::crash_log::check(
        &capture::crashkit_cli(),
        saved,
        kernel,
        &crashkit_qemu::crash_log::Expected {
            owner: u64::from(owner),
            stopped: &stopped,
            found_by: "record",
            after_handover: &["in-place dump: no hand-over"],
            live: false,
        },
    )?;
    Ok(())
}

/// The registered secret's bytes (from guest RAM) are nowhere on the disk
/// image or in the saved file, and its pages read back as absent.
fn secret_absent(
    memory: &[u8],
    view: &RecordView<'_>,
    disk: &Path,
    saved: &Path,
) -> Result<(), String> {
    let secrets: Vec<(u64, u64)> = view.exclusions().collect();
    let Some(&(start, len)) = secrets.first() else {
        return Err("no secret registered in the record".to_owned());
    };
    let pattern = memory
        .get(start as usize..(start + len) as usize)
        .ok_or("the secret is outside guest RAM")?;
    if pattern.iter().all(|&b| b == 0) {
        return Err("the secret in guest RAM is all zero".to_owned());
    }
    for (what, bytes) in [
        ("the disk image", read(disk)?),
        ("the saved file", read(saved)?),
    ] {
        if let Some(at) = find_piece(&bytes, pattern) {
            return Err(format!("part of the secret is in {what} at {at:#x}"));
        }
    }
    // Every page the dump reads back, decompressed.
    let file = read(saved)?;
    let read_page = capture::open(&file)?.read;
    let mut page = vec![0u8; 4096];
    let mut pages = Vec::new();
    for phys in (0..memory.len() as u64).step_by(4096) {
        if read_page(phys, &mut page) {
            pages.extend_from_slice(&page);
        }
    }
    if let Some(at) = find_piece(&pages, pattern) {
        return Err(format!(
            "part of the secret is in a decompressed page (byte {at:#x})"
        ));
    }
    Ok(())
}

/// Where any 32-byte piece of `pattern` (at a multiple of 32) occurs in
/// `haystack` (a filter on each position's first 8 bytes, then an exact
/// comparison).
fn find_piece(haystack: &[u8], pattern: &[u8]) -> Option<usize> {
    let key = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(word)
    };
    let mut filter = vec![false; 1 << 16];
    let pieces: Vec<&[u8]> = pattern.chunks_exact(32).collect();
    for piece in &pieces {
        filter[(key(piece) & 0xffff) as usize] = true;
    }
    (0..haystack.len().saturating_sub(31)).find(|&at| {
        filter[(key(&haystack[at..]) & 0xffff) as usize]
            && pieces.iter().any(|piece| &haystack[at..at + 32] == *piece)
    })
}
