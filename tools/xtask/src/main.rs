//! crashkit's task runner: `cargo xtask test` and `cargo xtask demo`.
//!
//! Both commands first make sure the machine has what they need, installing
//! it where they can (the pinned Rust toolchain with its `x86_64-unknown-none`
//! target, clippy and rustfmt through rustup; Debian packages through
//! `apt-get install -y --no-install-recommends` when running as root) and
//! stopping with a message that names what is missing otherwise.
//!
//! - `test`: formatting, clippy with warnings denied, a bare-metal build of
//!   every `no_std` crate (a test build hides no_std breakage; the dump
//!   format crate also with `alloc`), rustdoc with
//!   warnings denied, the whole test suite (the dump-format checks need
//!   binutils' `readelf` and `gdb`, installed with apt if missing), the QEMU crash-injection
//!   scenarios (the test kernel in `tests/kernel`, booted per scenario by
//!   `tests/qemu-runner`; QEMU is installed with apt if missing), the dump
//!   corpus of the crashed test kernel (QEMU's and crashkit's ELF dumps
//!   compared with guest RAM and checked by readelf and gdb, kept in the
//!   cache directory), the dump corpus of a crashed Linux guest (Debian's
//!   kernel fetched with `apt-get download`, with and without KASLR; QEMU's
//!   dumps and makedumpfile `-E` output read back and compared with guest
//!   RAM; makedumpfile installed with apt if missing), and the
//!   loom model of the queued spinlock (`--cfg loom`, release, target dir
//!   `target/loom`).
//!   `.ci/run` calls this.
//! - `demo`: the most complete real run crashkit has today (see README.md),
//!   with its artefacts in `target/demo/`; it ends with `crashkit info`,
//!   `crashkit cpus --scan`, `crashkit record` and `crashkit bt -a` on
//!   QEMU's dump of the crash under QEMU.
//! - `fuzz [SECONDS]`: each fuzz target of `kdump/format/fuzz` (the ELF and
//!   the kdump-compressed reader, and crashkit's page encoders round-tripped) for SECONDS (default 300) with
//!   `cargo fuzz run -s none` on the stable toolchain (cargo-fuzz is installed with `cargo
//!   install` if missing; libFuzzer needs g++, installed with apt). The
//!   corpus grows in the cache directory ([`cache_dir`]), seeded by the
//!   format crate's `seed_corpus` example.
//! - `bench-cli [ROUNDS]`: the `crashkit` CLI's benchmark (docs/benchmarks.md)
//!   against gdb, libkdumpfile and drgn on dumps of a 16 GiB machine made
//!   from the kdump benchmark's image (`tests/qemu-runner/src/cli_bench.rs`).
//! - `bench-kdump [ROUNDS] [CONTENDER]...`: the kdump-compressed writers'
//!   benchmark (docs/benchmarks.md): crashkit's codecs against makedumpfile
//!   `-c` and `-l` on a 1 GiB image made from a crashed Linux guest (kept
//!   in the cache directory), one core, ROUNDS rounds (default 5); the
//!   contenders can be named (`zlib`, `lzo`, `makedumpfile-l`...; see
//!   `tests/qemu-runner/src/kdump_bench.rs`). QEMU and makedumpfile are
//!   installed with apt if missing.
//! - `test-kvm`: both QEMU kernels' scenarios with `-accel kvm` ([`test_kvm`]);
//!   not part of `test` (KVM boots are slow on a paravirtual KVM).
//! - `fresh-check`: `demo` and `test` as a fresh machine runs them, in a
//!   throwaway Debian root without the packages the tasks install, from a
//!   new clone, with an empty cache ([`fresh_check`]); not part of `test`.

mod fresh_check;
mod prerequisites;
mod run;
mod test_kvm;

use std::process::ExitCode;
use std::time::Instant;

use run::{Step, cargo};

/// Crates that must build for `x86_64-unknown-none`.
const NO_STD_CRATES: &[&str] = &[
    "crashkit-nmi",
    "crashkit-record",
    "crashkit-record-format",
    "crashkit-shootdown",
    "crashkit-notifiers",
    "crashkit-panic-path",
    "crashkit-dump-format",
    "crashkit",
];

/// no_std crates whose optional `alloc` feature must build for the
/// bare-metal target too (a capture kernel has an allocator).
const NO_STD_ALLOC_CRATES: &[&str] = &["crashkit-dump-format"];

/// The bare-metal target every no_std crate must build for.
const BARE_METAL_TARGET: &str = "x86_64-unknown-none";

/// Longest the whole test suite may run before it is killed and reported as
/// hung (every test bounds itself far below this; this is the backstop).
const TEST_SUITE_LIMIT_SECS: u64 = 20 * 60;

/// Longest the loom model may take, build included (it explores its models
/// in seconds; this is the backstop against a hang or a state explosion).
const LOOM_MODEL_LIMIT_SECS: u64 = 10 * 60;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("test") => test(&rest),
        Some("demo") => demo(&rest),
        Some("fuzz") => fuzz(&rest),
        Some("bench-kdump") => bench_kdump(&rest),
        Some("bench-cli") => bench_cli(&rest),
        Some("fresh-check") => fresh_check::run(&rest),
        Some("test-kvm") => test_kvm::run(&rest),
        Some("help") | Some("--help") | Some("-h") | None => {
            print_help();
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task `{other}`; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         test   format check, clippy, bare-metal builds, rustdoc, all tests, QEMU scenarios, loom model\n  \
         demo   the NMI core and a kernel panic on the host simulation, then a panic under QEMU\n  \
         fuzz [SECONDS]  fuzz each dump reader and the page encoders (default 300 s each; corpora in the cache directory)\n  \
         bench-kdump [ROUNDS] [CONTENDER]...  the kdump writers against makedumpfile on a 1 GiB image (default 5 rounds)\n  \
         bench-cli [ROUNDS]  the crashkit CLI against gdb, libkdumpfile and drgn on dumps of a 16 GiB machine (default 10 rounds)\n  \
         test-kvm  both QEMU kernels' scenarios under KVM (-accel kvm; needs /dev/kvm; not part of `test`)\n  \
         fresh-check  the README's two commands on a fresh machine: a new clone in a throwaway Debian root (mmdebstrap) without the packages the tasks install, an empty cache (root only; not part of `test`)\n  \
         help   this text"
    );
}

fn test(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`test` takes no arguments (got `{extra}`)"));
    }
    let started = Instant::now();
    prerequisites::rust_toolchain()?;
    // Every package the suite uses, before the tests: the probe test in
    // `cargo test` then runs each one's probe on an installed package.
    prerequisites::qemu()?;
    prerequisites::dump_checkers()?;

    Step::new("format", cargo(["fmt", "--all", "--", "--check"])).run()?;
    Step::new(
        "clippy",
        cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )
    .run()?;
    for krate in NO_STD_CRATES {
        Step::new(
            &format!("bare-metal build of {krate}"),
            cargo(["build", "--target", BARE_METAL_TARGET, "-p", krate]),
        )
        .run()?;
    }
    for krate in NO_STD_ALLOC_CRATES {
        Step::new(
            &format!("bare-metal build of {krate} with alloc"),
            cargo([
                "build",
                "--target",
                BARE_METAL_TARGET,
                "-p",
                krate,
                "--features",
                "alloc",
            ]),
        )
        .run()?;
    }
    fuzz_target_check()?;
    let mut rustdoc = cargo(["doc", "--workspace", "--no-deps"]);
    rustdoc.env("RUSTDOCFLAGS", "-D warnings");
    Step::new("rustdoc", rustdoc).run()?;
    Step::new("tests", cargo(["test", "--workspace", "--all-targets"]))
        .time_limit(TEST_SUITE_LIMIT_SECS)
        .run()?;
    Step::new("doc tests", cargo(["test", "--workspace", "--doc"]))
        .time_limit(TEST_SUITE_LIMIT_SECS)
        .run()?;
    qemu_scenarios()?;
    loom_model()?;

    println!(
        "xtask: all checks passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The QEMU crash-injection tests: build the test kernel (its own
/// workspace, bare-metal target, release), then boot it once per scenario
/// and CPU count with the runner (`tests/qemu-runner`), which checks the
/// crash record each boot leaves in guest RAM.
fn qemu_scenarios() -> Result<(), String> {
    prerequisites::qemu()?;
    let root = run::workspace_root()?;
    let manifest = root.join("tests").join("kernel").join("Cargo.toml");
    // The kernel is its own workspace: the root's fmt and clippy steps do
    // not see it.
    let mut format = cargo(["fmt", "--all", "--check"]);
    format.arg("--manifest-path").arg(&manifest);
    Step::new("format of the QEMU test kernels", format).run()?;
    let mut clippy = cargo([
        "clippy",
        "--workspace",
        "--release",
        "--target",
        BARE_METAL_TARGET,
    ]);
    clippy
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--", "-D", "warnings"]);
    Step::new("clippy of the QEMU test kernels", clippy).run()?;
    build_test_kernel()?;
    Step::new(
        "QEMU crash-injection scenarios",
        cargo(["run", "--release", "-q", "-p", "crashkit-qemu-runner"]),
    )
    .time_limit(TEST_SUITE_LIMIT_SECS)
    .run()?;
    // The minimal kernel: crashkit wired in through the facade in at most
    // 20 lines (the line count is checked by `cargo test -p crashkit`).
    Step::new(
        "QEMU scenarios of the minimal kernel",
        cargo([
            "run",
            "--release",
            "-q",
            "-p",
            "crashkit-qemu-runner",
            "--",
            "--minimal",
        ]),
    )
    .time_limit(TEST_SUITE_LIMIT_SECS)
    .run()?;
    // The corpus runs check every crashkit command over every dump with
    // the release binary next to the runner.
    Step::new(
        "crashkit CLI, release build",
        cargo(["build", "--release", "-q", "-p", "crashkit-cli"]),
    )
    .time_limit(TEST_SUITE_LIMIT_SECS)
    .run()?;
    // The dump corpus of the crashed test kernel: QEMU's ELF dumps and
    // crashkit's, read back and compared with guest RAM, checked by readelf
    // and gdb and by every crashkit command; kept in the cache directory
    // for later use.
    let mut corpus = cargo(["run", "--release", "-q", "-p", "crashkit-qemu-runner", "--"]);
    corpus
        .arg("--corpus")
        .arg(cache_dir()?.join("corpus").join("test-kernel"));
    Step::new("dump corpus of the crashed test kernel", corpus)
        .time_limit(TEST_SUITE_LIMIT_SECS)
        .run()?;
    // The Linux guest's dumps: Debian's kernel (apt-get download, never
    // installed), crashed under QEMU with and without KASLR; QEMU's dumps
    // compared with guest RAM, makedumpfile -E of them read back; every
    // crashkit command over each.
    prerequisites::makedumpfile()?;
    let mut linux = cargo(["run", "--release", "-q", "-p", "crashkit-qemu-runner", "--"]);
    linux
        .arg("--linux-corpus")
        .arg(cache_dir()?.join("corpus").join("linux"));
    Step::new("dump corpus of a crashed Linux guest", linux)
        .time_limit(TEST_SUITE_LIMIT_SECS)
        .run()
}

/// Build the QEMU test kernels (their own workspace, bare-metal, release):
/// the full test kernel and the minimal one.
pub(crate) fn build_test_kernel() -> Result<(), String> {
    let manifest = run::workspace_root()?
        .join("tests")
        .join("kernel")
        .join("Cargo.toml");
    let mut build = cargo([
        "build",
        "--workspace",
        "--release",
        "--target",
        BARE_METAL_TARGET,
    ]);
    build.arg("--manifest-path").arg(&manifest);
    Step::new("QEMU test kernel build", build)
        .time_limit(TEST_SUITE_LIMIT_SECS)
        .run()
}

/// The loom model of `QSpinLock` (`nmi/tests/loom_qspinlock.rs`): built with
/// `--cfg loom`, in release mode (loom explores tens of thousands of
/// executions), into its own target directory so that the changed
/// `RUSTFLAGS` do not rebuild the normal one.
fn loom_model() -> Result<(), String> {
    let mut loom = cargo([
        "test",
        "-p",
        "crashkit-nmi",
        "--test",
        "loom_qspinlock",
        "--release",
        "--",
        "--nocapture",
    ]);
    // CARGO_ENCODED_RUSTFLAGS would take precedence over RUSTFLAGS.
    loom.env("RUSTFLAGS", "--cfg loom")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(
            "CARGO_TARGET_DIR",
            run::workspace_root()?.join("target").join("loom"),
        );
    Step::new("loom model of QSpinLock", loom)
        .time_limit(LOOM_MODEL_LIMIT_SECS)
        .run()
}

/// The dump reader's fuzz target is its own workspace (cargo-fuzz layout):
/// check its format and that it builds and passes clippy, so it never rots
/// between fuzzing runs. libFuzzer's build needs g++.
fn fuzz_target_check() -> Result<(), String> {
    prerequisites::gxx()?;
    let manifest = run::workspace_root()?
        .join("kdump")
        .join("format")
        .join("fuzz")
        .join("Cargo.toml");
    let mut format = cargo(["fmt", "--check"]);
    format.arg("--manifest-path").arg(&manifest);
    Step::new("format of the dump reader's fuzz target", format).run()?;
    let mut clippy = cargo(["clippy"]);
    clippy
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--", "-D", "warnings"]);
    Step::new("clippy of the dump reader's fuzz target", clippy).run()
}

/// Where generated data lives, outside the repository: `$CRASHKIT_CACHE`,
/// else `$XDG_CACHE_HOME/crashkit`, else `$HOME/.cache/crashkit`.
pub(crate) fn cache_dir() -> Result<std::path::PathBuf, String> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = if let Some(dir) = env("CRASHKIT_CACHE") {
        std::path::PathBuf::from(dir)
    } else if let Some(dir) = env("XDG_CACHE_HOME") {
        std::path::PathBuf::from(dir).join("crashkit")
    } else if let Some(home) = env("HOME") {
        std::path::PathBuf::from(home)
            .join(".cache")
            .join("crashkit")
    } else {
        return Err("no cache directory: set CRASHKIT_CACHE or HOME".into());
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn bench_kdump(args: &[String]) -> Result<(), String> {
    let (rounds, contenders) = match args.split_first() {
        Some((first, rest)) if first.parse::<u32>().is_ok() => (first.as_str(), rest),
        _ => ("5", args),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::qemu()?;
    prerequisites::makedumpfile()?;
    let mut bench = cargo(["run", "--release", "-q", "-p", "crashkit-qemu-runner", "--"]);
    bench
        .arg("--kdump-bench")
        .arg(cache_dir()?)
        .args(["--rounds", rounds]);
    for contender in contenders {
        bench.args(["--contender", contender]);
    }
    Step::new("kdump writers against makedumpfile", bench)
        .time_limit(60 * 60)
        .run()
}

fn bench_cli(args: &[String]) -> Result<(), String> {
    let rounds = match args {
        [] => "10",
        [rounds] if rounds.parse::<u32>().is_ok_and(|n| n > 0) => rounds.as_str(),
        _ => return Err("`bench-cli` takes at most one argument, the rounds".into()),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::qemu()?;
    prerequisites::makedumpfile()?;
    prerequisites::cli_peers()?;
    Step::new(
        "crashkit CLI, release build",
        cargo(["build", "--release", "-q", "-p", "crashkit-cli"]),
    )
    .run()?;
    let mut bench = cargo(["run", "--release", "-q", "-p", "crashkit-qemu-runner", "--"]);
    bench
        .arg("--cli-bench")
        .arg(cache_dir()?)
        .args(["--rounds", rounds]);
    Step::new("crashkit CLI against gdb, libkdumpfile and drgn", bench)
        .time_limit(60 * 60)
        .run()
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args {
        [] => 300,
        [seconds] => seconds
            .parse()
            .map_err(|_| format!("`fuzz` takes a number of seconds (got `{seconds}`)"))?,
        _ => return Err("`fuzz` takes at most one argument, the seconds to fuzz".into()),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::cargo_fuzz()?;
    let corpora = cache_dir()?.join("fuzz");
    let mut seeds = cargo([
        "run",
        "--quiet",
        "-p",
        "crashkit-dump-format",
        "--example",
        "seed_corpus",
        "--",
    ]);
    seeds.arg(&corpora);
    Step::new("seed corpora of the dump readers", seeds).run()?;
    let root = run::workspace_root()?;
    for target in FUZZ_TARGETS {
        let mut fuzz = cargo(["fuzz", "run", "-s", "none", target]);
        fuzz.current_dir(root.join("kdump").join("format"))
            .arg(corpora.join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"));
        Step::new(&format!("fuzzing {target} for {seconds} s"), fuzz)
            .time_limit(seconds + 15 * 60)
            .run()?;
    }
    println!("xtask: no crash; corpora in {}", corpora.display());
    Ok(())
}

/// The fuzz targets of `kdump/format/fuzz`, each fuzzed for the seconds
/// `cargo xtask fuzz` is given.
const FUZZ_TARGETS: &[&str] = &["elf_reader", "kdump_reader", "page_encoders"];

fn demo(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`demo` takes no arguments (got `{extra}`)"));
    }
    prerequisites::rust_toolchain()?;
    let out_dir = run::workspace_root()?.join("target").join("demo");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let report = out_dir.join("nmi-demo.txt");
    let mut run_demo = cargo([
        "run",
        "--quiet",
        "--release",
        "-p",
        "crashkit-nmi",
        "--example",
        "nmi_demo",
        "--",
    ]);
    run_demo.arg(&report);
    Step::new("NMI core demo on the host simulation", run_demo)
        .time_limit(10 * 60)
        .run()?;
    println!("xtask: demo report written to {}", report.display());

    let mut crash_demo = cargo([
        "run",
        "--quiet",
        "--release",
        "-p",
        "crashkit-panic-path",
        "--example",
        "crash_demo",
        "--",
    ]);
    crash_demo.arg(&out_dir);
    Step::new("kernel panic on the host simulation", crash_demo)
        .time_limit(10 * 60)
        .run()?;

    prerequisites::qemu()?;
    build_test_kernel()?;
    let mut qemu_demo = cargo(["run", "--release", "-q", "-p", "crashkit-qemu-runner", "--"]);
    qemu_demo.arg("--demo").arg(&out_dir);
    Step::new("kernel panic under QEMU (4 CPUs)", qemu_demo)
        .time_limit(10 * 60)
        .run()?;

    // QEMU's dump of that crash, read by the dump CLI.
    let dump = out_dir.join("qemu-dump.elf");
    // QEMU's dump has no crash-record note: `cpus --scan` and `record`
    // find the record in memory.
    let kernel = run::workspace_root()?
        .join("tests/kernel/target")
        .join(BARE_METAL_TARGET)
        .join("release/crashkit-test-kernel");
    let kernel = kernel.to_string_lossy().into_owned();
    let bt = ["bt", "-a", "--kernel", kernel.as_str()];
    for command in [&["info"][..], &["cpus", "--scan"], &["record"], &bt] {
        let mut crashkit = cargo(["run", "--release", "-q", "-p", "crashkit-cli", "--"]);
        crashkit.args(command).arg(&dump);
        let name = command.join(" ");
        Step::new(&format!("crashkit {name} on QEMU's dump"), crashkit)
            .time_limit(10 * 60)
            .run()?;
    }
    Ok(())
}
