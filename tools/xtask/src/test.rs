//! `cargo xtask test` (`.ci/run` calls it): formatting, clippy with
//! warnings denied, a bare-metal build of every `no_std` crate, rustdoc with
//! warnings denied, the whole test suite, the dump reader's fuzz target
//! built, the capture kernel built (format, clippy), the QEMU
//! crash-injection scenarios of both test kernels, without and with the
//! capture kernel writing the dump (a stated subset, `tests/scenarios`'s
//! `capture` module), the dump path's faults (`faults` there), the dump
//! corpora of the crashed test kernel and of a
//! crashed Linux guest, and the loom models of the queued spinlock and the
//! hand-over slot. It installs what it needs first
//! ([`crate::prerequisites`]).

use std::time::Instant;

use crate::prerequisites;
use crate::run::{self, BARE_METAL_TARGET, Step, cache_dir, cargo};

/// Crates that must build for `x86_64-unknown-none`.
const NO_STD_CRATES: &[&str] = &[
    "crashkit-log",
    "crashkit-nmi",
    "crashkit-record",
    "crashkit-record-format",
    "crashkit-shootdown",
    "crashkit-notifiers",
    "crashkit-panic-path",
    "crashkit-dump-format",
    "crashkit-kdump-load",
    "crashkit-kdump-handover",
    "crashkit-kdump-capture",
    "crashkit-kdump-pc",
    "crashkit-kdump-fallback",
    "crashkit",
];

/// The facade's features that must build for the bare-metal target too.
const FACADE_FEATURES: &[&str] = &["kdump", "dump-format", "crash-log", "defmt"];

/// no_std crates whose optional `alloc` feature must build for the
/// bare-metal target too (a capture kernel has an allocator).
const NO_STD_ALLOC_CRATES: &[&str] = &["crashkit-dump-format"];

/// Longest the whole test suite may run before it is killed and reported as
/// hung (every test bounds itself far below this; this is the backstop).
pub(crate) const TEST_SUITE_LIMIT_SECS: u64 = 20 * 60;

/// Longest the loom model may take, build included (it explores its models
/// in seconds; this is the backstop against a hang or a state explosion).
const LOOM_MODEL_LIMIT_SECS: u64 = 10 * 60;

/// `cargo xtask test`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`test` takes no arguments (got `{extra}`)"));
    }
    let started = Instant::now();
    prerequisites::rust_toolchain()?;
    // Every package the suite uses, before the tests: the probe test in
    // `cargo test` then runs each one's probe on an installed package.
    prerequisites::qemu()?;
    prerequisites::dump_checkers()?;
    prerequisites::browser()?;

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
    for feature in FACADE_FEATURES {
        Step::new(
            &format!("bare-metal build of crashkit with {feature}"),
            cargo([
                "build",
                "--target",
                BARE_METAL_TARGET,
                "-p",
                "crashkit",
                "--features",
                feature,
            ]),
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
    // The CLI's binary and the facade's library are both `crashkit`: one
    // `cargo doc` of both writes them into one directory at once, and the
    // two rustdocs racing there failed a clean CI run with an I/O error
    // (cargo's "output filename collision"). The CLI first, then the rest,
    // whose facade is what `target/doc/crashkit` then shows.
    let mut cli_doc = cargo(["doc", "-p", "crashkit-cli", "--no-deps"]);
    cli_doc.env("RUSTDOCFLAGS", "-D warnings");
    Step::new("rustdoc of the crashkit CLI", cli_doc).run()?;
    let mut rustdoc = cargo([
        "doc",
        "--workspace",
        "--no-deps",
        "--exclude",
        "crashkit-cli",
    ]);
    rustdoc.env("RUSTDOCFLAGS", "-D warnings");
    Step::new("rustdoc", rustdoc).run()?;
    Step::new(
        "tests",
        cargo([
            "test",
            "--workspace",
            "--all-targets",
            "--exclude",
            "crashkit-cli",
        ]),
    )
    .time_limit(TEST_SUITE_LIMIT_SECS)
    .run()?;
    // The CLI's in release: the QEMU checks need its release binary anyway,
    // so its dependencies compile once, and the mutation corpora run the
    // optimised binary (overflow checks and debug assertions stay on: see
    // the release profile's overrides in Cargo.toml).
    Step::new(
        "tests of the crashkit CLI (release, overflow checks on)",
        cargo(["test", "--release", "-p", "crashkit-cli", "--all-targets"]),
    )
    .time_limit(TEST_SUITE_LIMIT_SECS)
    .run()?;
    // Without the CLI (a binary, no doctests) so that the crates it pulls
    // in are not built again with other features.
    Step::new(
        "doc tests",
        cargo(["test", "--workspace", "--doc", "--exclude", "crashkit-cli"]),
    )
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
/// and CPU count (`tests/scenarios`), which checks the crash record each
/// boot leaves in guest RAM; then the dump corpora (`tests/corpus`).
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
    capture_kernel()?;
    // The capture boots and the corpus runs check dumps with every crashkit
    // command, the release binary next to the runner.
    // `--all-targets`: the features its tests' build unified (a test-only
    // `object` feature among them), so the binary they built is reused
    // rather than built again.
    Step::new(
        "crashkit CLI, release build",
        cargo([
            "build",
            "--release",
            "-q",
            "-p",
            "crashkit-cli",
            "--all-targets",
        ]),
    )
    .time_limit(TEST_SUITE_LIMIT_SECS)
    .run()?;
    // Each kernel's scenarios (`crashkit-scenarios` with these options):
    // - the full test kernel, every scenario and CPU count;
    // - the capture subset: the panic path hands over to crashkit-capture,
    //   which writes the dump on a virtio-blk disk, each saved with
    //   `crashkit save`, verified and compared with guest RAM;
    // - the minimal kernel: crashkit wired in through the facade in at most
    //   20 lines (the line count is checked by `cargo test -p crashkit`);
    // - its dump wiring (at most 10 lines) through the capture kernel;
    // - the dump path's faults: a corrupted or missing capture kernel (the
    //   in-place writer), secrets on both paths, a device too small, a dump
    //   torn part way, an earlier dump replaced.
    let runs: [(&str, &[&str]); 5] = [
        ("QEMU crash-injection scenarios", &[]),
        ("QEMU scenarios through the capture kernel", &["--capture"]),
        ("QEMU dump-path faults", &["--dump-faults"]),
        ("QEMU scenarios of the minimal kernel", &["--minimal"]),
        (
            "QEMU scenarios of the minimal kernel through the capture kernel",
            &["--minimal", "--capture"],
        ),
    ];
    for (name, options) in runs {
        let mut scenarios = cargo(["run", "--release", "-q", "-p", "crashkit-scenarios", "--"]);
        scenarios.args(options);
        Step::new(name, scenarios)
            .time_limit(TEST_SUITE_LIMIT_SECS)
            .run()?;
    }
    // The dump corpus of the crashed test kernel: QEMU's ELF dumps and
    // crashkit's, read back and compared with guest RAM, checked by readelf
    // and gdb and by every crashkit command; kept in the cache directory
    // for later use.
    let mut corpus = cargo(["run", "--release", "-q", "-p", "crashkit-corpus", "--"]);
    corpus
        .arg("test-kernel")
        .arg(cache_dir()?.join("corpus").join("test-kernel"));
    Step::new("dump corpus of the crashed test kernel", corpus)
        .time_limit(TEST_SUITE_LIMIT_SECS)
        .run()?;
    // The Linux guest's dumps: Debian's kernel (apt-get download, never
    // installed), crashed under QEMU with and without KASLR; QEMU's dumps
    // compared with guest RAM, makedumpfile -E of them read back; every
    // crashkit command over each; crashkit convert's files of them read by
    // makedumpfile, crash, libkdumpfile and gdb.
    prerequisites::linux_corpus_tools()?;
    let mut linux = cargo(["run", "--release", "-q", "-p", "crashkit-corpus", "--"]);
    linux
        .arg("linux")
        .arg(cache_dir()?.join("corpus").join("linux"));
    Step::new("dump corpus of a crashed Linux guest", linux)
        .time_limit(TEST_SUITE_LIMIT_SECS)
        .run()
}

/// The capture kernel (`kdump/capture-kernel`, its own workspace): format,
/// clippy and its release build, which the capture boots load. Built into
/// the test kernels' target directory (`tests/kernel/target`, after them):
/// the crates both link (the dump formats, the loader, the hand-over)
/// compile once.
pub(crate) fn capture_kernel() -> Result<(), String> {
    let root = run::workspace_root()?;
    let manifest = root.join("kdump").join("capture-kernel").join("Cargo.toml");
    let target_dir = root.join("tests").join("kernel").join("target");
    let mut format = cargo(["fmt", "--all", "--check"]);
    format.arg("--manifest-path").arg(&manifest);
    Step::new("format of the capture kernel", format).run()?;
    let mut clippy = cargo(["clippy", "--release", "--target", BARE_METAL_TARGET]);
    clippy
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--", "-D", "warnings"]);
    Step::new("clippy of the capture kernel", clippy).run()?;
    let mut build = cargo(["build", "--release", "--target", BARE_METAL_TARGET]);
    build
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    Step::new("capture kernel build", build)
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

/// The loom models: `QSpinLock` (`nmi/tests/loom_qspinlock.rs`) and the
/// capture kernel's hand-over slot (`kdump/handover/tests/loom_capture.rs`).
/// Built with `--cfg loom`, in release mode (loom explores tens of
/// thousands of executions), into their own target directory so that the
/// changed `RUSTFLAGS` do not rebuild the normal one.
fn loom_model() -> Result<(), String> {
    let models = [
        ("crashkit-nmi", "loom_qspinlock", "loom model of QSpinLock"),
        (
            "crashkit-kdump-handover",
            "loom_capture",
            "loom model of the hand-over slot",
        ),
    ];
    for (package, test, name) in models {
        let mut loom = cargo([
            "test",
            "-p",
            package,
            "--test",
            test,
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
        Step::new(name, loom)
            .time_limit(LOOM_MODEL_LIMIT_SECS)
            .run()?;
    }
    Ok(())
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
