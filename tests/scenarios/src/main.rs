//! `crashkit-scenarios`: boot the QEMU test kernel (`tests/kernel`) once per
//! scenario and CPU count, with a hard timeout, two QEMUs at a time at most
//! (the machines have 2 cores), and check what each left behind: the exit
//! status through isa-debug-exit (status 0, a triple fault, is a failure
//! unless the scenario ends in a reset), and the crash record, found by
//! scanning the file-backed guest RAM for its magic and parsed from bytes
//! alone, field by field.
//!
//! Usage (`--help` has every option):
//! `crashkit-scenarios [--minimal] [--kernel ELF] [--scenario NAME]... [--cpus N,M] [--accel kvm] [--repeat N] [--out DIR]`
//!
//! `--minimal` boots the minimal kernel (`tests/kernel/minimal`, crashkit
//! in 20 lines) with its own scenario table ([`scenario::MINIMAL`]), after
//! checking where its linker put the record it never named
//! ([`record_section`]).
//!
//! `--demo DIR` boots one crash (scenario [`DEMO_SCENARIO`] with
//! [`DEMO_CPUS`] CPUs), checks it like a test, prints the crash record's
//! summary and leaves the record, the summary and the serial log in `DIR`;
//! then boots the same crash with the kernel halting after it and leaves
//! QEMU's ELF dump of it as `DIR/qemu-dump.elf` (what `cargo xtask demo`
//! shows, and reads with `crashkit`).
//!
//! A new scenario is a row of [`scenario::ALL`] (or [`scenario::MINIMAL`])
//! and a function of the test kernel's scenario table. It never passes
//! without QEMU: a missing `qemu-system-x86_64` is an error (`cargo xtask
//! test` installs it first).

mod capture;
mod faults;
mod record_section;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use clap::Parser;
use crashkit_qemu::qemu::{Boot, Ending, KernelExit, Outcome};
use crashkit_qemu::qmp;
use crashkit_record::{RecordView, Summary, scan};

use scenario::Scenario;

/// Hard limit per boot (TCG; a panic with -smp 8 takes a few seconds).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// QEMUs at once.
const JOBS: usize = 2;

/// The crash `--demo` shows: cpu1 holds the console lock when it is
/// stopped, so the console notifier is skipped, not waited for.
const DEMO_SCENARIO: &str = "notifier-lock";

/// CPUs of the demo machine.
const DEMO_CPUS: u32 = 4;

/// The test kernel's serial line before `crashkit::reset` (the `reset`
/// scenario).
const RESETTING: &str = "crashkit-test: final action reached, resetting";

/// Boot the QEMU test kernels per scenario and check the crash record each
/// boot leaves in guest RAM.
#[derive(Debug, Parser)]
#[command(name = "crashkit-scenarios", about, long_about = None)]
struct Args {
    /// The kernel's ELF (default: the full test kernel, or the minimal one
    /// with --minimal, as `cargo xtask` builds them).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Boot the minimal kernel with its own scenario table.
    #[arg(long)]
    minimal: bool,
    /// Only this scenario (every row of that name); may be repeated.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Only these CPU counts of each scenario.
    #[arg(long, value_delimiter = ',', value_name = "N,M")]
    cpus: Option<Vec<u32>>,
    /// QEMU's accelerator (`kvm`; TCG unless given).
    #[arg(long)]
    accel: Option<String>,
    /// Boot every job this many times.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Where each boot's files go (default: target/qemu).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Boot the capture subset (`capture::SUBSET`): the test kernel loads
    /// the capture kernel and hands over to it; the dump it writes on a
    /// virtio-blk disk is saved, verified and compared with guest RAM.
    #[arg(long)]
    capture: bool,
    /// Two crashes through the capture kernel (`panic-ap`, 4 CPUs), the
    /// dumps written by the guest checked as `--capture` checks them and
    /// left as DIR/vmcore (ELF) and DIR/vmcore.kdump (LZO1X), each disk
    /// image beside them.
    #[arg(long, value_name = "DIR")]
    capture_demo: Option<PathBuf>,
    /// One crash, checked and summarised, its files and QEMU's dump of it
    /// left in DIR.
    #[arg(long, value_name = "DIR")]
    demo: Option<PathBuf>,
    /// Boot the dump path's faults (`faults::FAULTS`): a corrupted or
    /// missing capture kernel (the in-place writer), secrets, a device too
    /// small, a dump torn part way, an earlier dump replaced.
    #[arg(long)]
    dump_faults: bool,
    /// With --dump-faults: only this fault; may be repeated.
    #[arg(long = "fault", value_name = "NAME")]
    faults: Vec<String>,
}

struct Options {
    kernel: PathBuf,
    minimal: bool,
    /// Where the kernel's ELF puts the record (`--minimal`): the record in
    /// RAM must be there.
    record_at: Option<u64>,
    scenarios: Vec<&'static Scenario>,
    /// `--cpus N,M`: only these CPU counts of each scenario.
    cpus: Option<Vec<u32>>,
    /// `--accel kvm`: QEMU's accelerator (TCG unless given).
    accel: Option<String>,
    repeat: u32,
    out: PathBuf,
    demo: Option<PathBuf>,
    capture: bool,
    capture_demo: Option<PathBuf>,
    dump_faults: bool,
    faults: Vec<String>,
}

fn options() -> Result<Options, String> {
    let args = Args::parse();
    let (table, default_kernel) = if args.minimal {
        (scenario::MINIMAL, crashkit_qemu::minimal_kernel())
    } else {
        (scenario::ALL, crashkit_qemu::test_kernel())
    };
    let mut scenarios = Vec::new();
    for name in &args.scenarios {
        // A name may have several rows (one per extra command line).
        let before = scenarios.len();
        scenarios.extend(table.iter().filter(|s| s.name == name));
        if scenarios.len() == before {
            let names: Vec<_> = table.iter().map(|s| s.name).collect();
            return Err(format!(
                "no scenario {name:?} (there are: {})",
                names.join(", ")
            ));
        }
    }
    if scenarios.is_empty() {
        scenarios = table.iter().collect();
    }
    Ok(Options {
        kernel: args.kernel.unwrap_or(default_kernel),
        minimal: args.minimal,
        record_at: None,
        scenarios,
        cpus: args.cpus,
        accel: args.accel,
        capture: args.capture,
        capture_demo: args.capture_demo,
        dump_faults: args.dump_faults,
        faults: args.faults,
        repeat: args.repeat,
        out: args
            .out
            .unwrap_or_else(|| crashkit_qemu::workspace_root().join("target/qemu")),
        demo: args.demo,
    })
}

/// One boot to make.
struct Job {
    scenario: &'static Scenario,
    cpus: u32,
    round: u32,
    /// `--capture`: the dump format the capture kernel writes.
    format: Option<&'static str>,
}

/// What one boot found.
struct Verdict {
    label: String,
    result: Result<Duration, String>,
}

fn main() -> ExitCode {
    let mut options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("crashkit-scenarios: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = preflight(&options) {
        eprintln!("crashkit-scenarios: {error}");
        return ExitCode::FAILURE;
    }
    options.record_at = if options.minimal {
        match record_section::find(&options.kernel) {
            Ok(section) => {
                println!("{section}");
                Some(section.address)
            }
            Err(error) => {
                eprintln!(
                    "crashkit-scenarios: {}: the crash record's section: {error}",
                    options.kernel.display()
                );
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if let Some(dir) = &options.capture_demo {
        scenario::set_capture(true);
        return match capture_demo(&options, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("crashkit-scenarios: capture demo: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = &options.demo {
        return match demo(&options, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("crashkit-scenarios: demo: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if options.dump_faults {
        return dump_faults(&options);
    }
    scenario::set_capture(options.capture);
    let mut jobs = Vec::new();
    if options.capture {
        for path in [capture::capture_kernel(), capture::crashkit_cli()] {
            if let Err(error) = crashkit_qemu::check_kernel(&path) {
                eprintln!("crashkit-scenarios: --capture: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    for round in 0..options.repeat {
        if options.capture {
            let subset = if options.minimal {
                capture::MINIMAL_SUBSET
            } else {
                capture::SUBSET
            };
            for &(name, cpus, format) in subset {
                let selected = options.scenarios.iter().find(|s| s.name == name);
                let wanted = options
                    .cpus
                    .as_ref()
                    .is_none_or(|only| only.contains(&cpus));
                if let Some(scenario) = selected.filter(|_| wanted) {
                    jobs.push(Job {
                        scenario,
                        cpus,
                        round,
                        format: Some(format),
                    });
                }
            }
            continue;
        }
        for scenario in &options.scenarios {
            for &cpus in scenario.cpus {
                if options
                    .cpus
                    .as_ref()
                    .is_some_and(|only| !only.contains(&cpus))
                {
                    continue;
                }
                jobs.push(Job {
                    scenario,
                    cpus,
                    round,
                    format: None,
                });
            }
        }
    }
    let next = AtomicUsize::new(0);
    let verdicts = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..JOBS {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, SeqCst)) {
                    let verdict = run_job(&options, job);
                    let status = match &verdict.result {
                        Ok(time) => format!("ok ({:.2} s)", time.as_secs_f64()),
                        Err(_) => "FAILED".to_owned(),
                    };
                    println!("qemu: {} ... {status}", verdict.label);
                    if let Ok(mut all) = verdicts.lock() {
                        all.push(verdict);
                    }
                }
            });
        }
    });
    let verdicts = verdicts.into_inner().unwrap_or_default();
    let failed: Vec<_> = verdicts.iter().filter(|v| v.result.is_err()).collect();
    for verdict in &failed {
        if let Err(why) = &verdict.result {
            eprintln!("\n==== {} FAILED ====\n{why}", verdict.label);
        }
    }
    println!(
        "qemu: {} boots, {} passed, {} failed",
        verdicts.len(),
        verdicts.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--dump-faults`: every fault of `faults::FAULTS` (or those named), at
/// each of its CPU counts, `--repeat` times; two boots at a time.
fn dump_faults(options: &Options) -> ExitCode {
    for path in [capture::capture_kernel(), capture::crashkit_cli()] {
        if let Err(error) = crashkit_qemu::check_kernel(&path) {
            eprintln!("crashkit-scenarios: --dump-faults: {error}");
            return ExitCode::FAILURE;
        }
    }
    let mut jobs = Vec::new();
    for round in 0..options.repeat {
        for fault in faults::FAULTS {
            if !options.faults.is_empty() && !options.faults.iter().any(|f| f == fault.name) {
                continue;
            }
            for &cpus in fault.cpus {
                if options
                    .cpus
                    .as_ref()
                    .is_none_or(|only| only.contains(&cpus))
                {
                    jobs.push((fault, cpus, round));
                }
            }
        }
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let passed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..JOBS {
            scope.spawn(|| {
                while let Some(&(fault, cpus, round)) = jobs.get(next.fetch_add(1, SeqCst)) {
                    let started = std::time::Instant::now();
                    let label = format!(
                        "fault {} ({} {}) -smp {cpus}{}",
                        fault.name,
                        fault.scenario,
                        fault.append,
                        if options.repeat > 1 {
                            format!(" (run {})", round + 1)
                        } else {
                            String::new()
                        }
                    );
                    match faults::run_fault(&options.kernel, &options.out, fault, cpus, round) {
                        Ok(()) => {
                            passed.fetch_add(1, SeqCst);
                            println!(
                                "qemu: {label} ... ok ({:.2} s)",
                                started.elapsed().as_secs_f64()
                            );
                        }
                        Err(why) => {
                            println!("qemu: {label} ... FAILED");
                            if let Ok(mut all) = failures.lock() {
                                all.push((label, why));
                            }
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    for (label, why) in &failures {
        eprintln!("\n==== {label} FAILED ====\n{why}");
    }
    println!(
        "qemu: {} fault boots, {} passed, {} failed",
        jobs.len(),
        passed.load(SeqCst),
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// QEMU and the kernel must be there: a test never passes for want of them.
fn preflight(options: &Options) -> Result<(), String> {
    crashkit_qemu::check_qemu()?;
    crashkit_qemu::check_kernel(&options.kernel)
}

fn run_job(options: &Options, job: &Job) -> Verdict {
    let append = match job.format {
        Some(format) => format!("{} dumpfmt={format}", job.scenario.append)
            .trim_start()
            .to_owned(),
        None => job.scenario.append.to_owned(),
    };
    let label = format!(
        "{}{}{} -smp {}{}",
        job.scenario.name,
        if append.is_empty() { "" } else { " " },
        append,
        job.cpus,
        if options.repeat > 1 {
            format!(" (run {})", job.round + 1)
        } else {
            String::new()
        }
    );
    let work_dir = options.out.join(format!(
        "{}{}-smp{}-run{}",
        job.scenario.name,
        append
            .split_whitespace()
            .map(|word| format!("-{}", word.replace('=', "-")))
            .collect::<String>(),
        job.cpus,
        job.round + 1
    ));
    let boot = Boot {
        kernel: &options.kernel,
        cpus: job.cpus,
        append: format!("scenario={} {append}", job.scenario.name)
            .trim_end()
            .to_owned(),
        work_dir: work_dir.clone(),
        timeout: BOOT_TIMEOUT,
        qmp: job.scenario.qmp_inject_nmi,
        ram_mib: crashkit_qemu::qemu::RAM_MIB,
        initrd: job.format.map(|_| capture::capture_kernel()),
        extra: match &options.accel {
            Some(accel) => vec!["-accel".to_owned(), accel.clone()],
            None => Vec::new(),
        },
    };
    let mut boot = boot;
    if job.format.is_some() {
        match capture::disk(&work_dir) {
            Ok(extra) => boot.extra.extend(extra),
            Err(why) => {
                return Verdict {
                    label,
                    result: Err(why),
                };
            }
        }
    }
    let mut injected = String::new();
    let result = boot
        .run(|dir| {
            if job.scenario.qmp_inject_nmi {
                injected = qmp::inject_nmi_each_time_ready(
                    &dir.join("serial.log"),
                    &dir.join("qmp.sock"),
                    BOOT_TIMEOUT,
                );
            }
        })
        .and_then(|outcome| judge(options, job, &outcome).map(|()| outcome.elapsed))
        .map_err(|why| {
            if injected.is_empty() {
                why
            } else {
                format!("{why}\n(QMP: {injected})")
            }
        });
    // Keep a failure's files for a post-mortem; drop a pass's 128 MiB.
    if result.is_ok() {
        let _ = std::fs::remove_file(work_dir.join("ram.bin"));
    }
    Verdict { label, result }
}

/// The verdict on one boot: the exit, then the record.
fn judge(options: &Options, job: &Job, outcome: &Outcome) -> Result<(), String> {
    let context = |why: String| {
        let tail: Vec<&str> = outcome.serial.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{why}\nRAM: {}\nserial (last 40 lines):\n{}",
            outcome.ram.display(),
            tail.join("\n")
        )
    };
    // The capture kernel resets the machine after the dump.
    let expected = if job.scenario.ends_in_reset || job.format.is_some() {
        Ending::Reset
    } else {
        Ending::Kernel(KernelExit::Ran)
    };
    if outcome.ending != expected {
        return Err(context(format!("{}", outcome.ending)));
    }
    // A reset is also how a triple fault ends: the kernel says first that
    // it reached its final action.
    if job.scenario.ends_in_reset && job.format.is_none() && !outcome.serial.contains(RESETTING) {
        return Err(context(format!(
            "QEMU ended with a reset, but serial lacks {RESETTING:?}"
        )));
    }
    let memory = std::fs::read(&outcome.ram)
        .map_err(|e| context(format!("reading {}: {e}", outcome.ram.display())))?;
    let records: Vec<(usize, RecordView<'_>)> = scan(&memory)
        .filter_map(|(at, parsed)| parsed.ok().map(|view| (at, view)))
        .collect();
    let (at, view) = match records.as_slice() {
        [one] => one,
        [] => return Err(context("no crash record in guest RAM".to_owned())),
        many => {
            let places: Vec<String> = many.iter().map(|(at, _)| format!("{at:#x}")).collect();
            return Err(context(format!(
                "{} crash records in guest RAM (at {}): which one is the kernel's?",
                many.len(),
                places.join(", ")
            )));
        }
    };
    if let Some(expected) = options.record_at
        && *at as u64 != expected
    {
        return Err(context(format!(
            "the crash record is at physical {at:#x}, not at its section's {expected:#x}"
        )));
    }
    (job.scenario.check)(view, job.cpus).map_err(|why| {
        context(format!(
            "the record at physical {at:#x} is wrong: {why}\n{}",
            Summary(view)
        ))
    })?;
    if job.format.is_some() {
        let work_dir = outcome.ram.parent().unwrap_or(std::path::Path::new("."));
        capture::check(
            work_dir,
            &options.kernel,
            &outcome.serial,
            &memory,
            &outcome.ram,
            *at,
            view,
            job.cpus,
        )
        .map_err(|why| context(format!("the dump the capture kernel wrote: {why}")))?;
    }
    match job.scenario.serial_check {
        Some(check) => check(view, job.cpus, &outcome.serial)
            .map_err(|why| context(format!("serial and record disagree: {why}"))),
        None => Ok(()),
    }
}

/// `--capture-demo DIR`: `panic-ap` on 4 CPUs twice through the capture
/// kernel, as ELF and as kdump-compressed LZO1X; each boot judged as the
/// `--capture` boots are (saved with `crashkit save`, verified, compared
/// with guest RAM, read by the other tools); the saved dumps and the disk
/// images left in `dir`.
fn capture_demo(options: &Options, dir: &std::path::Path) -> Result<(), String> {
    let scenario = scenario::ALL
        .iter()
        .find(|s| s.name == "panic-ap")
        .ok_or("panic-ap is not in the table")?;
    for (format, name) in [("elf", "vmcore"), ("lzo", "vmcore.kdump")] {
        let job = Job {
            scenario,
            cpus: DEMO_CPUS,
            round: 0,
            format: Some(format),
        };
        let work_dir = dir.join(format!("capture-{format}"));
        let _ = std::fs::remove_dir_all(&work_dir);
        let mut boot = Boot {
            kernel: &options.kernel,
            cpus: DEMO_CPUS,
            append: format!("scenario=panic-ap dumpfmt={format}"),
            work_dir: work_dir.clone(),
            timeout: BOOT_TIMEOUT,
            qmp: false,
            ram_mib: crashkit_qemu::qemu::RAM_MIB,
            initrd: Some(capture::capture_kernel()),
            extra: Vec::new(),
        };
        boot.extra.extend(capture::disk(&work_dir)?);
        println!(
            "capture demo: booting the test kernel with {DEMO_CPUS} CPUs, panic-ap, dumpfmt={format}: \
             cpu1 panics, the capture kernel writes the dump on a virtio-blk disk"
        );
        let outcome = boot.run(|_| {})?;
        judge(options, &job, &outcome)?;
        let _ = std::fs::remove_file(&outcome.ram);
        let saved = work_dir.join("vmcore");
        let target = dir.join(name);
        std::fs::copy(&saved, &target)
            .map_err(|e| format!("{} to {}: {e}", saved.display(), target.display()))?;
        for line in outcome
            .serial
            .lines()
            .filter(|l| l.starts_with("crashkit-capture:"))
        {
            println!("  {line}");
        }
        println!(
            "capture demo: saved with `crashkit save {}` and checked: {}",
            work_dir.join("disk.img").display(),
            target.display()
        );
    }
    Ok(())
}

/// `--demo DIR`: one crash, checked, summarised, its files left in `dir`.
fn demo(options: &Options, dir: &std::path::Path) -> Result<(), String> {
    let scenario = scenario::ALL
        .iter()
        .find(|s| s.name == DEMO_SCENARIO)
        .ok_or("the demo scenario is not in the table")?;
    let work_dir = dir.join("qemu");
    let boot = Boot {
        kernel: &options.kernel,
        cpus: DEMO_CPUS,
        append: format!("scenario={DEMO_SCENARIO}"),
        work_dir: work_dir.clone(),
        timeout: BOOT_TIMEOUT,
        qmp: false,
        ram_mib: crashkit_qemu::qemu::RAM_MIB,
        initrd: None,
        extra: Vec::new(),
    };
    println!(
        "qemu demo: booting the test kernel with {DEMO_CPUS} CPUs, scenario {DEMO_SCENARIO}: \
         cpu0 panics while cpu1 holds the console lock"
    );
    let outcome = boot.run(|_| {})?;
    let job = Job {
        scenario,
        cpus: DEMO_CPUS,
        round: 0,
        format: None,
    };
    judge(options, &job, &outcome)?;
    let memory = std::fs::read(&outcome.ram)
        .map_err(|e| format!("reading {}: {e}", outcome.ram.display()))?;
    let (at, view) = scan(&memory)
        .find_map(|(at, parsed)| parsed.ok().map(|view| (at, view)))
        .ok_or("no crash record in guest RAM")?;
    let summary = format!(
        "crash record found at guest physical address {at:#x}\n{}",
        Summary(&view)
    );
    println!("{summary}");
    let files = [
        (dir.join("qemu-crash-record.bin"), view.bytes().to_vec()),
        (dir.join("qemu-crash-record.txt"), summary.into_bytes()),
        (
            dir.join("qemu-serial.log"),
            outcome.serial.clone().into_bytes(),
        ),
    ];
    for (path, bytes) in &files {
        std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let _ = std::fs::remove_file(&outcome.ram);
    // The same crash again, the kernel halting after it, for QEMU's dump of
    // it (what `crashkit` reads next in the demo).
    let dump_dir = dir.join("qemu-dump");
    let (dumped, _) = crashkit_corpus::test_kernel::crash_and_dump(
        &options.kernel,
        DEMO_SCENARIO,
        DEMO_CPUS,
        &dump_dir,
    )?;
    let _ = std::fs::remove_file(&dumped.ram);
    let elf = dump_dir.join("qemu.elf");
    let dump = dir.join("qemu-dump.elf");
    std::fs::rename(&elf, &dump)
        .map_err(|e| format!("{} to {}: {e}", elf.display(), dump.display()))?;
    println!();
    for (path, _) in &files {
        println!("qemu demo: wrote {}", path.display());
    }
    println!(
        "qemu demo: wrote {} (QEMU's dump of the same crash)",
        dump.display()
    );
    Ok(())
}
