//! Golden tests: every command's text and JSON output on a small corpus,
//! compared byte for byte with `tests/golden/NAME.txt` (standard output,
//! standard error and the exit code). The corpus: the dumps
//! `tests/common` writes (ELF, kdump-compressed, flattened), QEMU's
//! kdump-zlib dump of the crashed test kernel (`tests/corpus`, 1.5 MB)
//! with the kernel's ELF that crashed (2.8 MB, for `bt`), and
//! one part of makedumpfile's split dump of the crashed Linux guest
//! (`tests/corpus`, 2.2 MB).
//!
//! Regenerate on purpose only: `CRASHKIT_GOLDEN=update cargo test -p
//! crashkit --test golden`, then review the diff.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Run `args` in `dir` (file names stay relative, so outputs do not name
/// the machine's paths); the golden text.
fn run(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_crashkit"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    format!(
        "$ crashkit {}\n{}--- stderr ---\n{}--- exit {} ---\n",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        output
            .status
            .code()
            .map_or("signal".into(), |c| c.to_string())
    )
}

#[test]
fn every_command_matches_its_golden_output() {
    let generated = common::file("golden-dump.elf", &common::elf())
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::write(generated.join("golden-dump.kdump"), common::kdump()).unwrap();
    std::fs::write(generated.join("golden-dump.flat"), common::flattened()).unwrap();
    std::fs::write(generated.join("golden-linux.elf"), common::linux::elf()).unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let qemu = "qemu-test-kernel-panic-ap.kdump-zlib.flat";
    let mut cases: Vec<(String, &Path, Vec<&str>)> = Vec::new();
    for (tag, dump) in [
        ("elf", "golden-dump.elf"),
        ("kdump", "golden-dump.kdump"),
        ("flat", "golden-dump.flat"),
    ] {
        for (command, args) in [
            ("info", vec!["info", dump]),
            ("info-json", vec!["--json", "info", dump]),
            ("cpus", vec!["cpus", dump]),
            ("cpus-json", vec!["--json", "cpus", dump]),
            ("regs", vec!["regs", dump]),
            ("regs-json", vec!["--json", "regs", dump, "0"]),
            ("rd", vec!["rd", dump, "-p", "0xfff00", "0x180"]),
            (
                "rd-json",
                vec!["--json", "rd", dump, "-p", "0x13ffe0", "0x30"],
            ),
            ("record", vec!["record", dump]),
            ("record-json", vec!["--json", "record", dump]),
            ("verify", vec!["verify", dump]),
            ("verify-json", vec!["--json", "verify", dump]),
        ] {
            cases.push((format!("{tag}-{command}"), generated.as_path(), args));
        }
    }
    for (command, args) in [
        ("info", vec!["info", qemu]),
        ("info-json", vec!["--json", "info", qemu]),
        ("cpus", vec!["cpus", qemu]),
        ("cpus-scan", vec!["cpus", "--scan", qemu]),
        ("cpus-scan-json", vec!["--json", "cpus", "--scan", qemu]),
        ("record", vec!["record", qemu]),
        ("record-json", vec!["--json", "record", qemu]),
        ("regs", vec!["regs", qemu, "1"]),
        ("regs-json", vec!["--json", "regs", qemu, "0"]),
        ("rd", vec!["rd", qemu, "-p", "0x9ffc0", "0x60"]),
        ("rd-virtual", vec!["rd", qemu, "0x119000", "0x40"]),
        ("rd-unmapped", vec!["rd", qemu, "0x7fffffffe000", "0x20"]),
        ("vtop", vec!["vtop", qemu, "0x119000"]),
        (
            "vtop-json",
            vec!["--json", "vtop", qemu, "0x119008", "--cpu", "1"],
        ),
        ("vtop-unmapped", vec!["vtop", qemu, "0xffff800000000000"]),
        ("vtop-not-canonical", vec!["vtop", qemu, "0x800000000000"]),
        ("log-not-linux", vec!["log", qemu]),
        (
            "bt-a",
            vec!["bt", "-a", qemu, "--kernel", "test-kernel.elf"],
        ),
        (
            "bt-json",
            vec!["--json", "bt", qemu, "1", "--kernel", "test-kernel.elf"],
        ),
        (
            "cpus-kernel",
            vec!["cpus", qemu, "--kernel", "test-kernel.elf"],
        ),
        ("verify", vec!["verify", qemu]),
    ] {
        cases.push((format!("qemu-{command}"), corpus.as_path(), args));
    }
    // makedumpfile's output of the crashed Linux guest: the second of three
    // parts of `makedumpfile --split -c -d 1` (2.2 MB; alone, the frames
    // of the other parts read as lost).
    let linux = "linux-guest.makedumpfile-c-split.2";
    for (command, args) in [
        ("info", vec!["info", linux]),
        ("info-json", vec!["--json", "info", linux]),
        ("cpus", vec!["cpus", linux]),
        ("regs", vec!["regs", linux, "1"]),
        ("record", vec!["record", linux]),
        ("rd", vec!["rd", linux, "-p", "0x5fffff0", "0x40"]),
        ("rd-lost", vec!["rd", linux, "-p", "0x1000000", "0x20"]),
        ("vtop-table-lost", vec!["vtop", linux, "0xffffffff81000000"]),
        ("log-table-lost", vec!["log", linux]),
        ("verify-json", vec!["--json", "verify", linux]),
    ] {
        cases.push((format!("linux-{command}"), corpus.as_path(), args));
    }
    // A small Linux-like dump with a printk ring (tests/common/linux.rs).
    let synthetic = "golden-linux.elf";
    for (command, args) in [
        ("log", vec!["log", synthetic]),
        ("log-json", vec!["--json", "log", synthetic]),
        ("info", vec!["info", synthetic]),
        ("vtop-1g", vec!["vtop", synthetic, "0xffffffff80105000"]),
        ("rd", vec!["rd", synthetic, "0xffffffff80105000", "0x60"]),
    ] {
        cases.push((format!("synthetic-{command}"), generated.as_path(), args));
    }
    // Errors are output too.
    cases.push((
        "error-not-a-dump".into(),
        corpus.as_path(),
        vec!["info", "../golden.rs"],
    ));
    cases.push((
        "error-no-page-tables".into(),
        generated.as_path(),
        vec!["rd", "golden-dump.elf", "0x100000"],
    ));
    cases.push((
        "error-no-cpu".into(),
        corpus.as_path(),
        vec!["regs", qemu, "7"],
    ));

    let update = std::env::var("CRASHKIT_GOLDEN").as_deref() == Ok("update");
    let mut differ = Vec::new();
    for (name, dir, args) in &cases {
        let got = run(dir, args);
        let path = golden_dir().join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            differ.push(format!("{name}:\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} outputs differ from tests/golden (CRASHKIT_GOLDEN=update to \
         regenerate, on purpose):\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
}
