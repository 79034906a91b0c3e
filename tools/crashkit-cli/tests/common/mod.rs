//! Dumps the CLI's tests run on, written by the format library: 64 pages at
//! 1 MiB (page `i` holds `i` repeated, every 8th is zero), two CPUs (CPU 1
//! panicked), a small VMCOREINFO and a crash record note; as ELF,
//! kdump-compressed (LZO) and flattened. Deterministic: the same bytes
//! every time. The crash record is a real one: the test kernel's, read
//! from QEMU's dump of its panic-ap scenario (`tests/corpus`, extracted
//! with `crashkit rd -p 0x119000 3688 --raw`): four CPUs, CPU 1 the owner,
//! so CPUs 2 and 3 are in the record but have no register note here.

#![allow(dead_code)]

pub mod crashlog;
pub mod linux;

use std::path::PathBuf;

use crashkit_dump_format::compressed::flat_writer::{FlatSink, StreamSink};
use crashkit_dump_format::compressed::writer::{LzoPages, write_kdump};
use crashkit_dump_format::plan::{CpuState, DumpPlan};
use crashkit_dump_format::write::WriteOptions;
use crashkit_dump_format::{ControlState, DumpSink, PhysMemory, PhysRange, Registers};

/// 64 pages at 1 MiB: page `i` holds `i` repeated, every 8th is zero.
struct Memory([u8; 4096]);

impl PhysMemory for Memory {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        let index = (phys >> 12) as u8;
        self.0.fill(if index.is_multiple_of(8) { 0 } else { index });
        Some(&self.0)
    }
}

#[derive(Default)]
struct VecSink(Vec<u8>);

impl DumpSink for VecSink {
    type Error = std::convert::Infallible;
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error> {
        let end = offset as usize + bytes.len();
        if self.0.len() < end {
            self.0.resize(end, 0);
        }
        self.0[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }
}

struct Stream(Vec<u8>);

impl StreamSink for Stream {
    type Error = std::convert::Infallible;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

const VMCOREINFO: &[u8] = b"OSRELEASE=cli-test\nPAGESIZE=4096\n";

/// The test kernel's crash record from its panic-ap scenario.
pub const CRASH_RECORD: &[u8] = include_bytes!("../corpus/test-kernel-panic-ap.crash-record");

fn with_plan<T>(f: impl FnOnce(&DumpPlan<'_>) -> T) -> T {
    with_cpus(0..2, CRASH_RECORD, f)
}

/// The plan with register notes for the CPUs in `noted` only, and
/// `crash_record` as the record's note (empty: none).
fn with_cpus<T>(
    noted: std::ops::Range<u64>,
    crash_record: &[u8],
    f: impl FnOnce(&DumpPlan<'_>) -> T,
) -> T {
    let ranges = [PhysRange::new(0x10_0000, 64 * 4096)];
    let cpus: Vec<CpuState> = noted
        .map(|cpu| CpuState {
            registers: Registers {
                rip: 0xffff_ffff_8100_0000 + cpu,
                ..Registers::default()
            },
            control: ControlState {
                cpu: cpu as u32,
                apic_id: cpu as u32,
                ..ControlState::default()
            },
            pid: None,
        })
        .collect();
    f(&DumpPlan {
        dump_id: [9; 16],
        crash_time: 1_796_457_828,
        ranges: &ranges,
        exclusions: &[],
        direct_map: Some(0xffff_8880_0000_0000),
        kernel_image: None,
        cpus: &cpus,
        panic_cpu: Some(1),
        vmcoreinfo: VMCOREINFO,
        crash_record,
        exclude_zero_pages: true,
        extra_segments: 8,
    })
}

pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crashkit-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

pub fn elf() -> Vec<u8> {
    with_plan(elf_of)
}

/// The ELF dump with a register note for CPU 1 (the panicking one) only:
/// the crash record's CPU 0 has none.
pub fn elf_panic_cpu_only() -> Vec<u8> {
    with_cpus(1..2, CRASH_RECORD, elf_of)
}

/// The ELF dump without a crash record note.
pub fn elf_without_record() -> Vec<u8> {
    elf_with_record(&[])
}

/// The ELF dump with `record` as the crash record note's bytes.
pub fn elf_with_record(record: &[u8]) -> Vec<u8> {
    with_cpus(0..2, record, elf_of)
}

fn elf_of(plan: &DumpPlan<'_>) -> Vec<u8> {
    {
        let mut sink = VecSink::default();
        crashkit_dump_format::write_elf_dump(
            plan,
            &mut Memory([0; 4096]),
            &mut sink,
            &mut |_| false,
            WriteOptions::default(),
            |_| {},
        )
        .unwrap();
        sink.0
    }
}

pub fn kdump() -> Vec<u8> {
    with_plan(|plan| {
        let mut sink = VecSink::default();
        write_kdump_to(plan, &mut sink);
        sink.0
    })
}

pub fn flattened() -> Vec<u8> {
    with_plan(|plan| {
        let mut sink = FlatSink::new(Stream(Vec::new()));
        write_kdump_to(plan, &mut sink);
        sink.finish().unwrap().0
    })
}

/// A dump device image of `len` bytes (filled with 0x5a) holding the plan
/// as a kdump-compressed dump, written through the format library's
/// `DeviceSink` as a capture kernel writes it.
pub fn device(len: usize) -> Vec<u8> {
    use crashkit_dump_format::device::{DeviceSink, Format};
    struct Disk(Vec<u8>);
    impl DumpSink for Disk {
        type Error = ();
        fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ()> {
            let at = offset as usize;
            self.0
                .get_mut(at..at + bytes.len())
                .ok_or(())?
                .copy_from_slice(bytes);
            Ok(())
        }
    }
    with_plan(|plan| {
        let mut sink = DeviceSink::begin(
            Disk(vec![0x5a; len]),
            len as u64,
            Format::Kdump,
            plan.dump_id,
            plan.crash_time,
        )
        .unwrap();
        let stats = write_kdump(
            plan,
            &mut Memory([0; 4096]),
            &mut sink,
            &mut |_| false,
            &mut LzoPages::default(),
            WriteOptions::default(),
            |_| {},
        )
        .unwrap();
        sink.finish(stats.total_length).unwrap().0.0
    })
}

/// The plan written as a kdump-compressed dump (LZO) to `sink`.
fn write_kdump_to<S: DumpSink>(plan: &DumpPlan<'_>, sink: &mut S)
where
    S::Error: std::fmt::Debug,
{
    write_kdump(
        plan,
        &mut Memory([0; 4096]),
        sink,
        &mut |_| false,
        &mut LzoPages::default(),
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
}

/// Run `crashkit args` as a hostile-input run: under a 1 GiB address-space
/// limit (`RLIMIT_AS`) and 10 s of CPU time (`RLIMIT_CPU`: the kernel
/// kills it past that), both set in the child before `exec`. What it
/// printed and how it ended (a kill ends with no exit code). A CPU limit,
/// not a wall-clock one: the CLI reads files and never waits on anything
/// else, so a hang is a spin; and the parent then needs no watchdog
/// threads (the mutation corpora make tens of thousands of runs, and the
/// polling loop this replaced was a third of their time).
pub fn bounded(args: &[&str]) -> std::process::Output {
    bounded_for(args, 10)
}

/// [`bounded`] with `cpu_seconds` of CPU time (a run over many files).
pub fn bounded_for(args: &[&str], cpu_seconds: u64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crashkit"));
    command.args(args).stdin(std::process::Stdio::null());
    // SAFETY: the closure runs in the forked child before `exec` and only
    // calls `setrlimit`, which is async-signal-safe, on limit structs it
    // owns; it touches no memory the parent shares, takes no lock and does
    // not allocate.
    unsafe {
        command.pre_exec(move || {
            for (resource, value) in [(libc::RLIMIT_AS, 1 << 30), (libc::RLIMIT_CPU, cpu_seconds)] {
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // Standard output and error are read together while it runs (std's
    // `output` polls both pipes), so a chatty child never blocks.
    command.output().unwrap()
}

/// Run `crashkit args` on the hostile `path` ([`bounded`]) and check that
/// it survived: an exit code of 0 to 3 (not a kill), no panic, and an
/// unusable file said in one line that names it. `what` names the case.
pub fn survives(args: &[&str], path: &str, what: &str) {
    let output = bounded(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0..=3)),
        "{what}: crashkit {args:?}: {:?}\n{stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{what}: {args:?}: {stderr}");
    if output.status.code() == Some(3) && args.contains(&"--json") {
        // Under --json the error is JSON on standard output.
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{what}: {args:?}: error not JSON: {e}"));
        assert_eq!(answer["schema"], 1, "{what}: {args:?}: {answer}");
        assert_eq!(
            answer["error"]["exit_code"], 3,
            "{what}: {args:?}: {answer}"
        );
        assert_eq!(
            answer["error"]["kind"], "input",
            "{what}: {args:?}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{path}: ")) && !message.contains('\n'),
            "{what}: {args:?}: {message}"
        );
    } else if output.status.code() == Some(3) {
        assert_eq!(
            stderr.lines().count(),
            1,
            "{what}: {args:?}: one line: {stderr}"
        );
        assert!(
            stderr.starts_with(&format!("crashkit: {path}: ")),
            "{what}: {stderr}"
        );
    }
}

/// A crash record with every kind of event the report's timeline draws,
/// and markup in its texts (a dump is hostile input: the HTML must show
/// it as text). Four CPU slots: CPU 0 owns the panic, CPU 1 stopped by
/// NMI, CPU 2 never answered three NMIs, CPU 3 absent. Notifiers in every
/// list with four outcomes, one escalation, the final action `Halt`.
pub fn eventful_record() -> Vec<u8> {
    use crashkit_nmi::{ControlRegisters, CpuIndex, RegisterFrame};
    use crashkit_record::{
        CrashRecord, DumpResult, FinalAction, NotifierEntry, NotifierList, NotifierOutcome,
        PanicPhase, PhaseStamp, ShootdownTotals, Skipped,
    };
    use std::fmt::Write as _;

    const MS: u64 = 1_000_000;
    let t0 = 5_000 * MS;
    let record = CrashRecord::<4, 8>::new();
    let panic = record.panic();
    panic.set_owner(CpuIndex(0));
    panic.stamp(PhaseStamp::PanicEntry, t0);
    let frame = RegisterFrame {
        rip: 0xffff_ffff_8100_0000,
        rsp: 0xffff_c900_0000_3f00,
        ..RegisterFrame::ZERO
    };
    let control = ControlRegisters::default();
    let slot = |cpu| record.cpu_slot(CpuIndex(cpu)).unwrap();
    slot(0)
        .record_owner(&frame, &control, 0, t0 + MS / 4)
        .unwrap();
    write!(
        panic.message_writer(),
        "panicked at src/<script>alert('x')</script>.rs:7:1:\ncpu 0 & \"friends\" <b>panic</b>"
    )
    .unwrap();
    panic.set_phase(PanicPhase::StoppingCpus);
    panic.stamp(PhaseStamp::ShootdownStart, t0 + MS / 2);
    assert!(slot(1).mark_nmi_sent(t0 + MS));
    assert!(slot(2).mark_nmi_sent(t0 + MS));
    slot(2).count_nmi_sent();
    slot(2).count_nmi_sent();
    assert!(slot(3).mark_absent());
    slot(1)
        .record_stop(
            &frame,
            &control,
            crashkit_record::StopPath::Nmi,
            1,
            t0 + 3 * MS / 2,
        )
        .unwrap();
    assert!(slot(2).mark_unresponsive());
    panic.record_shootdown(&ShootdownTotals {
        stopped: 1,
        unresponsive: 1,
        absent: 1,
        nmis_sent: 4,
        nmis_resent: 2,
        send_errors: 0,
    });
    panic.stamp(PhaseStamp::ShootdownEnd, t0 + 5 * MS);
    panic.set_phase(PanicPhase::Notifiers);
    panic.stamp(PhaseStamp::NotifiersStart, t0 + 5 * MS + MS / 10);
    for (list, outcome, ms, name) in [
        (
            NotifierList::Hypervisor,
            NotifierOutcome::Ran,
            1,
            "hv-<i>notify</i>",
        ),
        (
            NotifierList::PreDump,
            NotifierOutcome::SkippedLockBusy,
            0,
            "console-flush",
        ),
        (
            NotifierList::PreDump,
            NotifierOutcome::OverBudget,
            2,
            "nvme-quiesce",
        ),
    ] {
        record
            .record_notifier(&NotifierEntry::new(list, outcome, 0, ms * MS, name))
            .unwrap();
    }
    panic.set_phase(PanicPhase::DumpHandover);
    panic.stamp(PhaseStamp::DumpHandoverStart, t0 + 9 * MS);
    panic
        .record_escalation(
            PanicPhase::DumpHandover,
            Skipped::DUMP_HANDOVER,
            t0 + 10 * MS,
        )
        .unwrap();
    panic.set_dump_result(DumpResult::Failed, 7);
    panic.stamp(PhaseStamp::DumpHandoverEnd, t0 + 10 * MS);
    for (list, outcome, ms, name) in [
        (
            NotifierList::Informational,
            NotifierOutcome::Ran,
            1,
            "serial-report",
        ),
        (
            NotifierList::PostDump,
            NotifierOutcome::Panicked,
            1,
            "watchdog-off",
        ),
    ] {
        record
            .record_notifier(&NotifierEntry::new(list, outcome, 0, ms * MS, name))
            .unwrap();
    }
    panic.stamp(PhaseStamp::NotifiersEnd, t0 + 13 * MS);
    panic.set_phase(PanicPhase::FinalAction);
    panic.stamp(PhaseStamp::FinalAction, t0 + 14 * MS);
    panic.set_final_action(FinalAction::Halt);
    let mut bytes = vec![0u8; CrashRecord::<4, 8>::TOTAL_SIZE];
    record.snapshot(&mut bytes).unwrap();
    bytes
}
