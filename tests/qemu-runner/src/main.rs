//! `crashkit-qemu-runner`: boot the QEMU test kernel (`tests/kernel`) once per
//! scenario and CPU count, with a hard timeout, two QEMUs at a time at most
//! (the machines have 2 cores), and check what each left behind: the exit
//! status through isa-debug-exit (status 0, a triple fault, is a failure),
//! and the crash record, found by scanning the file-backed guest RAM for its
//! magic and parsed from bytes alone, field by field.
//!
//! Usage:
//! `crashkit-qemu-runner [--minimal] [--kernel ELF] [--scenario NAME]... [--repeat N] [--out DIR]`
//!
//! `--minimal` boots the minimal kernel (`tests/kernel/minimal`, crashkit
//! in 20 lines) with its own scenario table ([`scenario::MINIMAL`]), after
//! checking where its linker put the record it never named
//! ([`record_section`]).
//!
//! `crashkit-qemu-runner --bench` runs the in-guest benchmark (see
//! `bench.rs`; docs/benchmarks.md has its results).
//!
//! `crashkit-qemu-runner --demo DIR` boots one crash (scenario
//! [`DEMO_SCENARIO`] with [`DEMO_CPUS`] CPUs), checks it like a test, prints
//! the crash record's summary and leaves the record, the summary and the
//! serial log in `DIR`; then boots the same crash with the kernel halting
//! after it and leaves QEMU's ELF dump of it as `DIR/qemu-dump.elf` (what
//! `cargo xtask demo` shows, and reads with `crashkit`).
//!
//! `crashkit-qemu-runner --corpus DIR` makes and checks the real-world dump
//! corpus of the crashed test kernel in `DIR` (see `corpus.rs`).
//!
//! `crashkit-qemu-runner --linux-corpus DIR` makes and checks the dumps of a
//! crashed Linux guest (Debian's kernel) in `DIR` (see `linux.rs`).
//!
//! `crashkit-qemu-runner --kdump-bench CACHE [--rounds N] [--contender NAME]...` runs the kdump
//! writers' benchmark against makedumpfile on a 1 GiB image made from a
//! crashed Linux guest (see `kdump_bench.rs`).
//!
//! `crashkit-qemu-runner --cli-bench CACHE [--rounds N]` runs the `crashkit`
//! CLI's benchmark against gdb, libkdumpfile and drgn on dumps of a 16 GiB
//! machine made from that image (see `cli_bench.rs`).
//!
//! It never passes without QEMU: a missing `qemu-system-x86_64` is an error
//! (`cargo xtask test` installs it first).

mod bench;
mod cli_bench;
mod cli_check;
mod corpus;
mod host;
mod kdump_bench;
mod linux;
mod qemu;
mod qmp;
mod record_section;
mod rewrite;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crashkit_record::{RecordView, Summary, scan};

use qemu::{Boot, Ending, KernelExit, Outcome};
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
    corpus: Option<PathBuf>,
    linux_corpus: Option<PathBuf>,
    bench: bool,
    kdump_bench: Option<PathBuf>,
    cli_bench: Option<PathBuf>,
    cli_bench_measure: Option<PathBuf>,
    rounds: usize,
    contenders: Vec<String>,
}

fn options() -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .ok_or("no workspace root")?;
    let mut options = Options {
        kernel: root.join("tests/kernel/target/x86_64-unknown-none/release/crashkit-test-kernel"),
        minimal: false,
        record_at: None,
        scenarios: Vec::new(),
        cpus: None,
        accel: None,
        repeat: 1,
        out: root.join("target/qemu"),
        demo: None,
        corpus: None,
        linux_corpus: None,
        bench: false,
        kdump_bench: None,
        cli_bench: None,
        cli_bench_measure: None,
        rounds: 5,
        contenders: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    let mut names = Vec::new();
    let mut kernel_given = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--kernel" => {
                options.kernel = PathBuf::from(value()?);
                kernel_given = true;
            }
            "--minimal" => options.minimal = true,
            "--out" => options.out = PathBuf::from(value()?),
            "--demo" => options.demo = Some(PathBuf::from(value()?)),
            "--corpus" => options.corpus = Some(PathBuf::from(value()?)),
            "--linux-corpus" => options.linux_corpus = Some(PathBuf::from(value()?)),
            "--bench" => options.bench = true,
            "--kdump-bench" => options.kdump_bench = Some(PathBuf::from(value()?)),
            "--cli-bench" => options.cli_bench = Some(PathBuf::from(value()?)),
            "--cli-bench-measure" => options.cli_bench_measure = Some(PathBuf::from(value()?)),
            "--contender" => options.contenders.push(value()?),
            "--rounds" => {
                let text = value()?;
                options.rounds = text
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--rounds {text}: not a positive number"))?;
            }
            "--repeat" => {
                let text = value()?;
                options.repeat = text
                    .parse()
                    .map_err(|_| format!("--repeat {text}: not a number"))?;
            }
            "--scenario" => names.push(value()?),
            "--cpus" => {
                let text = value()?;
                let counts: Result<Vec<u32>, _> = text.split(',').map(str::parse).collect();
                options.cpus = Some(counts.map_err(|_| format!("--cpus {text}: not N[,M..]"))?);
            }
            "--accel" => options.accel = Some(value()?),
            other => return Err(format!("unknown argument {other:?} (see the crate docs)")),
        }
    }
    let table = if options.minimal {
        if !kernel_given {
            options.kernel = root
                .join("tests/kernel/target/x86_64-unknown-none/release/crashkit-minimal-kernel");
        }
        scenario::MINIMAL
    } else {
        scenario::ALL
    };
    for name in names {
        // A name may have several rows (one per extra command line).
        let before = options.scenarios.len();
        options
            .scenarios
            .extend(table.iter().filter(|s| s.name == name));
        if options.scenarios.len() == before {
            let names: Vec<_> = table.iter().map(|s| s.name).collect();
            return Err(format!(
                "no scenario {name:?} (there are: {})",
                names.join(", ")
            ));
        }
    }
    if options.scenarios.is_empty() {
        options.scenarios = table.iter().collect();
    }
    Ok(options)
}

/// One boot to make.
struct Job {
    scenario: &'static Scenario,
    cpus: u32,
    round: u32,
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
            eprintln!("crashkit-qemu-runner: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(cache) = &options.kdump_bench {
        return match kdump_bench::run(cache, options.rounds, &options.contenders) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("crashkit-qemu-runner: kdump bench: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let cli_bench = match (&options.cli_bench, &options.cli_bench_measure) {
        (Some(cache), _) => Some(cli_bench::run(cache, options.rounds)),
        (None, Some(cache)) => Some(cli_bench::measure_only(cache, options.rounds)),
        (None, None) => None,
    };
    if let Some(result) = cli_bench {
        return match result {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("crashkit-qemu-runner: cli bench: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(error) = preflight(&options) {
        eprintln!("crashkit-qemu-runner: {error}");
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
                    "crashkit-qemu-runner: {}: the crash record's section: {error}",
                    options.kernel.display()
                );
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if options.bench {
        return match bench::run(&options.kernel, &options.out) {
            Ok(table) => {
                println!("{table}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("crashkit-qemu-runner: bench: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = &options.linux_corpus {
        return match linux::make_and_check(dir) {
            Ok(lines) => {
                for line in lines {
                    println!("linux corpus: {line}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("crashkit-qemu-runner: linux corpus: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = &options.corpus {
        return match corpus::make_and_check(&options.kernel, dir) {
            Ok(lines) => {
                for line in lines {
                    println!("corpus: {line}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("crashkit-qemu-runner: corpus: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = &options.demo {
        return match demo(&options, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("crashkit-qemu-runner: demo: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let mut jobs = Vec::new();
    for round in 0..options.repeat {
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

/// QEMU and the kernel must be there: a test never passes for want of them.
fn preflight(options: &Options) -> Result<(), String> {
    let qemu = std::process::Command::new(qemu::QEMU)
        .arg("--version")
        .output()
        .map_err(|e| {
            format!(
                "{} is not runnable ({e}); install qemu-system-x86",
                qemu::QEMU
            )
        })?;
    if !qemu.status.success() {
        return Err(format!("`{} --version` failed", qemu::QEMU));
    }
    if !options.kernel.is_file() {
        return Err(format!(
            "no test kernel at {} (build it: cargo build --release --manifest-path \
             tests/kernel/Cargo.toml --target x86_64-unknown-none)",
            options.kernel.display()
        ));
    }
    Ok(())
}

fn run_job(options: &Options, job: &Job) -> Verdict {
    let label = format!(
        "{}{}{} -smp {}{}",
        job.scenario.name,
        if job.scenario.append.is_empty() {
            ""
        } else {
            " "
        },
        job.scenario.append,
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
        job.scenario
            .append
            .split_whitespace()
            .map(|word| format!("-{}", word.replace('=', "-")))
            .collect::<String>(),
        job.cpus,
        job.round + 1
    ));
    let boot = Boot {
        kernel: &options.kernel,
        cpus: job.cpus,
        append: format!("scenario={} {}", job.scenario.name, job.scenario.append)
            .trim_end()
            .to_owned(),
        work_dir: work_dir.clone(),
        timeout: BOOT_TIMEOUT,
        qmp: job.scenario.qmp_inject_nmi,
        ram_mib: crate::qemu::RAM_MIB,
        initrd: None,
        extra: match &options.accel {
            Some(accel) => vec!["-accel".to_owned(), accel.clone()],
            None => Vec::new(),
        },
    };
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
    let expected = if job.scenario.ends_in_reset {
        Ending::Reset
    } else {
        Ending::Kernel(KernelExit::Ran)
    };
    if outcome.ending != expected {
        return Err(context(format!("{}", outcome.ending)));
    }
    // A reset is also how a triple fault ends: the kernel says first that
    // it reached its final action.
    if job.scenario.ends_in_reset && !outcome.serial.contains(RESETTING) {
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
    match job.scenario.serial_check {
        Some(check) => check(view, job.cpus, &outcome.serial)
            .map_err(|why| context(format!("serial and record disagree: {why}"))),
        None => Ok(()),
    }
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
        ram_mib: crate::qemu::RAM_MIB,
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
    let (dumped, _) = corpus::crash_and_dump(&options.kernel, DEMO_SCENARIO, DEMO_CPUS, &dump_dir)?;
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

/// An error and its causes, `what: why: why...`, for the runner's string
/// errors.
pub(crate) fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
