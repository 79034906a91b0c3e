//! `cargo xtask demo`: the most complete real run crashkit has today (see
//! README.md), with its artefacts in `target/demo/`: the NMI core and a
//! kernel panic on the host simulation, then a panic under QEMU, and
//! `crashkit info`, `cpus --scan`, `record`, the crash log's last lines
//! (`log --tail 12`) and `bt -a` on QEMU's dump of it; then two panics whose
//! dumps the guest writes through the capture kernel (`target/demo/vmcore`,
//! ELF, and `target/demo/vmcore.kdump`, LZO1X), saved with `crashkit save`
//! and read with `info`, `cpus`, `log --tail 12`, `bt -a` and `verify`;
//! last, `crashkit report` of the ELF one: `target/demo/report.html`, and
//! a screenshot of it (`report.png`) when Chromium is installed (docs/
//! holds one, shown in the README).

use crate::prerequisites;
use crate::run::{self, BARE_METAL_TARGET, Step, cargo};

/// `cargo xtask demo`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
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
    crate::test::build_test_kernel()?;
    let mut qemu_demo = cargo(["run", "--release", "-q", "-p", "crashkit-scenarios", "--"]);
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
    // The crash log's last lines, after the crash record: what the kernel
    // said just before it crashed (docs/crash-log.md).
    let log = ["log", "--tail", "12", "--kernel", kernel.as_str()];
    for command in [&["info"][..], &["cpus", "--scan"], &["record"], &log, &bt] {
        let mut crashkit = cargo(["run", "--release", "-q", "-p", "crashkit-cli", "--"]);
        crashkit.args(command).arg(&dump);
        let name = command.join(" ");
        Step::new(&format!("crashkit {name} on QEMU's dump"), crashkit)
            .time_limit(10 * 60)
            .run()?;
    }

    // The same kind of crash, the dump written by the guest itself; each
    // saved dump is checked with readelf, gdb, libkdumpfile and makedumpfile.
    prerequisites::dump_checkers()?;
    crate::test::capture_kernel()?;
    let mut capture_demo = cargo(["run", "--release", "-q", "-p", "crashkit-scenarios", "--"]);
    capture_demo.arg("--capture-demo").arg(&out_dir);
    Step::new(
        "two panics under QEMU, dumps written through the capture kernel",
        capture_demo,
    )
    .time_limit(10 * 60)
    .run()?;
    for file in ["vmcore", "vmcore.kdump"] {
        let dump = out_dir.join(file);
        for command in [&["info"][..], &["cpus"], &log, &bt, &["verify"]] {
            let mut crashkit = cargo(["run", "--release", "-q", "-p", "crashkit-cli", "--"]);
            crashkit.args(command).arg(&dump);
            let name = command.join(" ");
            Step::new(&format!("crashkit {name} on {file}"), crashkit)
                .time_limit(10 * 60)
                .run()?;
        }
    }

    // Everything about the ELF one on one page.
    let page = out_dir.join("report.html");
    let mut report = cargo(["run", "--release", "-q", "-p", "crashkit-cli", "--"]);
    report
        .args(["report", "--kernel", kernel.as_str(), "-o"])
        .arg(&page)
        .arg(out_dir.join("vmcore"));
    Step::new("crashkit report of vmcore", report)
        .time_limit(10 * 60)
        .run()?;
    if prerequisites::CHROMIUM.works() {
        let shot = out_dir.join("report.png");
        let mut chromium = std::process::Command::new(prerequisites::CHROMIUM.program);
        chromium
            .args(crate::run::HEADLESS_CHROMIUM)
            .args(["--hide-scrollbars", "--window-size=1100,1000"])
            .arg(format!(
                "--user-data-dir={}",
                out_dir.join("chromium-profile").display()
            ))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", page.display()));
        Step::new("a screenshot of the report (headless Chromium)", chromium)
            .time_limit(120)
            .run()?;
        println!("xtask: its screenshot: {}", shot.display());
    }
    println!("xtask: the crash on one page: {}", page.display());
    Ok(())
}
