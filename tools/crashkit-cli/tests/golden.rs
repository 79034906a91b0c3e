//! Golden tests: every command's text and JSON output on a small corpus,
//! compared byte for byte with `tests/golden/NAME.txt` (standard output,
//! standard error and the exit code). The corpus: the dumps
//! `tests/common` writes (ELF, kdump-compressed, flattened), QEMU's
//! kdump-zlib dump of the crashed test kernel (`tests/corpus`, 1.5 MB)
//! with the kernel's ELF that crashed (2.8 MB, for `bt`),
//! one part of makedumpfile's split dump of the crashed Linux guest
//! (`tests/corpus`, 2.2 MB), and the first 16 or 64 KiB (headers and
//! notes) of the Linux guest's `/proc/vmcore`, of makedumpfile's `-E` and
//! `-c` files of it and of QEMU's ELF of the test kernel, for the producer
//! labels.
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
    // The same memory without a VMCOREINFO note, and with one whose
    // release is not the kernel's (memory is scanned for Linux's own).
    std::fs::write(
        generated.join("golden-linux-no-note.elf"),
        common::linux::elf_with_note(b""),
    )
    .unwrap();
    let wrong = common::linux::vmcoreinfo().replace("6.1.0-synthetic", "6.1.0-another");
    std::fs::write(
        generated.join("golden-linux-wrong-note.elf"),
        common::linux::elf_with_note(wrong.as_bytes()),
    )
    .unwrap();
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
        ("log-tail", vec!["log", synthetic, "--tail", "2"]),
        ("log-json", vec!["--json", "log", synthetic]),
        ("info", vec!["info", synthetic]),
        ("vtop-1g", vec!["vtop", synthetic, "0xffffffff80105000"]),
        ("rd", vec!["rd", synthetic, "0xffffffff80105000", "0x60"]),
        ("rd-symbol", vec!["rd", synthetic, "init_uts_ns+0x80", "24"]),
        ("vtop-symbol", vec!["vtop", synthetic, "panic_cpu"]),
        ("cpus", vec!["cpus", synthetic]),
        (
            "sym",
            vec![
                "sym",
                synthetic,
                "panic",
                "ffffffff81000104",
                "panic+0x2f4",
                "*_cpu*",
                "fixed_percpu_data",
                "ffffffff81001001",
            ],
        ),
        (
            "sym-json",
            vec!["--json", "sym", synthetic, "sysrq_handle_crash+8"],
        ),
        ("sym-list", vec!["sym", "-l", synthetic]),
        ("bt", vec!["bt", synthetic]),
        ("bt-json", vec!["--json", "bt", synthetic]),
        (
            "bt-no-vmcoreinfo-note",
            vec!["bt", "golden-linux-no-note.elf"],
        ),
        ("sym-unknown", vec!["sym", synthetic, "no_such_symbol"]),
        ("no-note-info", vec!["info", "golden-linux-no-note.elf"]),
        (
            "no-note-log",
            vec!["log", "golden-linux-no-note.elf", "--tail", "2"],
        ),
        (
            "no-note-sym",
            vec!["sym", "golden-linux-no-note.elf", "panic"],
        ),
        (
            "wrong-note-info-json",
            vec!["--json", "info", "golden-linux-wrong-note.elf"],
        ),
    ] {
        cases.push((format!("synthetic-{command}"), generated.as_path(), args));
    }
    // A crashkit kernel's crash log (tests/common/crashlog.rs): decoded with
    // its ELF, as JSON, found by scanning when the dump has no record note,
    // found by build-id under --debug-dir; refused with another build's
    // ELF; without an ELF, what it needs.
    std::fs::write(
        generated.join("golden-log.elf"),
        common::crashlog::dump(true),
    )
    .unwrap();
    std::fs::write(
        generated.join("golden-log-scan.elf"),
        common::crashlog::dump(false),
    )
    .unwrap();
    let kernel = common::crashlog::kernel_elf(&common::crashlog::BUILD_ID);
    std::fs::write(generated.join("golden-log-kernel.elf"), &kernel).unwrap();
    let debug = generated.join("golden-debug/.build-id/c0");
    std::fs::create_dir_all(&debug).unwrap();
    std::fs::write(
        debug.join("ffee00112233445566778899aabbccddee0102.debug"),
        &kernel,
    )
    .unwrap();
    std::fs::write(
        generated.join("golden-log-other-kernel.elf"),
        common::crashlog::kernel_elf(&[0x42; 20]),
    )
    .unwrap();
    for (command, args) in [
        (
            "log",
            vec!["log", "golden-log.elf", "--kernel", "golden-log-kernel.elf"],
        ),
        (
            "log-json",
            vec![
                "--json",
                "log",
                "golden-log.elf",
                "--kernel",
                "golden-log-kernel.elf",
            ],
        ),
        (
            "log-scan",
            vec![
                "log",
                "golden-log-scan.elf",
                "--kernel",
                "golden-log-kernel.elf",
            ],
        ),
        (
            "log-debug-dir",
            vec!["log", "golden-log.elf", "--debug-dir", "golden-debug"],
        ),
        (
            "log-wrong-elf",
            vec![
                "log",
                "golden-log.elf",
                "--kernel",
                "golden-log-other-kernel.elf",
            ],
        ),
        (
            "log-no-elf",
            vec!["log", "golden-log.elf", "--debug-dir", "nowhere"],
        ),
        (
            "log-tail",
            vec![
                "log",
                "golden-log.elf",
                "--kernel",
                "golden-log-kernel.elf",
                "--tail",
                "4",
            ],
        ),
    ] {
        cases.push((format!("crashlog-{command}"), generated.as_path(), args));
    }
    // Who wrote each file (docs/cli.md, "Producers"): the first 16 or 64
    // KiB of real files (headers and notes; cut, so they read as
    // incomplete) of the corpus's crashed Linux guest (`/proc/vmcore` and
    // makedumpfile's `-E -d 31` and `-c -d 31` files of it) and of QEMU's
    // ELF of the crashed test kernel; crashkit's and QEMU's kdump files
    // and makedumpfile's of a crashkit dump are above.
    for (tag, dump) in [
        ("linux", "linux-proc-vmcore.head16k.elf"),
        (
            "makedumpfile-E-of-linux",
            "linux-proc-vmcore.makedumpfile-E-d31.head16k.elf",
        ),
        (
            "makedumpfile-c-of-linux",
            "linux-proc-vmcore.makedumpfile-c-d31.head64k.kdump",
        ),
        ("qemu-elf", "qemu-test-kernel-panic-ap.head16k.elf"),
    ] {
        cases.push((
            format!("producer-{tag}-info"),
            corpus.as_path(),
            vec!["info", dump],
        ));
    }
    cases.push((
        "producer-makedumpfile-c-of-linux-info-json".into(),
        corpus.as_path(),
        vec![
            "--json",
            "info",
            "linux-proc-vmcore.makedumpfile-c-d31.head64k.kdump",
        ],
    ));
    // makedumpfile's file of a QEMU dump: makedumpfile 1.7.2 makes none
    // here (it reads no QEMU ELF and fails to refilter QEMU's kdump files
    // of the guest), so this is QEMU's kdump file with the one mark
    // makedumpfile leaves, a whole utsname in the header (QEMU fills only
    // `machine`), written in: the rule's test, not a real file.
    let mut refiltered = std::fs::read(corpus.join(qemu)).unwrap();
    let header = flattened_first_record(&refiltered);
    for (i, field) in [
        &b"Linux"[..],
        b"(none)",
        b"6.1.0-57-amd64",
        b"#1 SMP",
        b"x86_64",
        b"(none)",
    ]
    .iter()
    .enumerate()
    {
        let at = header + 12 + 65 * i;
        refiltered[at..at + 65].fill(0);
        refiltered[at..at + field.len()].copy_from_slice(field);
    }
    std::fs::write(
        generated.join("golden-makedumpfile-of-qemu.flat"),
        &refiltered,
    )
    .unwrap();
    cases.push((
        "producer-makedumpfile-of-qemu-info".into(),
        generated.as_path(),
        vec!["info", "golden-makedumpfile-of-qemu.flat"],
    ));
    // A dump device image (docs/kdump.md) holding the kdump dump above:
    // every command reads the dump in place; info says what the device
    // holds.
    std::fs::write(generated.join("golden-device.img"), common::device(1 << 20)).unwrap();
    for (command, args) in [
        ("info", vec!["info", "golden-device.img"]),
        ("info-json", vec!["--json", "info", "golden-device.img"]),
        ("cpus", vec!["cpus", "golden-device.img"]),
    ] {
        cases.push((format!("device-{command}"), generated.as_path(), args));
    }
    // `report` as JSON (the HTML is checked in a browser: tests/browser.rs):
    // crashkit's dump, the eventful record (every kind of timeline event,
    // markup in its texts), the crash log decoded, the synthetic Linux dump
    // (ORC backtraces, its log), QEMU's dump of the test kernel with its
    // ELF. `--debug-dir nowhere`: no machine's debug files change them.
    std::fs::write(
        generated.join("golden-eventful.elf"),
        common::elf_with_record(&common::eventful_record()),
    )
    .unwrap();
    for (tag, dir, args) in [
        (
            "elf-report-json",
            generated.as_path(),
            vec!["--json", "report", "golden-dump.elf"],
        ),
        (
            "eventful-report-json",
            generated.as_path(),
            vec!["--json", "report", "golden-eventful.elf"],
        ),
        (
            "crashlog-report-json",
            generated.as_path(),
            vec![
                "--json",
                "report",
                "golden-log.elf",
                "--kernel",
                "golden-log-kernel.elf",
                "--no-verify",
            ],
        ),
        (
            "synthetic-report-json",
            generated.as_path(),
            vec!["--json", "report", "golden-linux.elf"],
        ),
        (
            "qemu-report-json",
            corpus.as_path(),
            vec!["--json", "report", qemu, "--kernel", "test-kernel.elf"],
        ),
    ] {
        let mut args = args;
        if !args.contains(&"--kernel") {
            args.extend(["--debug-dir", "nowhere"]);
        }
        cases.push((tag.into(), dir, args));
    }
    // `triage` over a directory of the dumps above and of files that are
    // not dumps: every file a row, the same crash (one dump in three
    // formats) one signature.
    let set = generated.join("triage-set");
    std::fs::create_dir_all(&set).unwrap();
    for name in [
        "golden-dump.elf",
        "golden-dump.kdump",
        "golden-dump.flat",
        "golden-eventful.elf",
        "golden-linux.elf",
        "golden-linux-no-note.elf",
        "golden-log.elf",
    ] {
        std::fs::copy(generated.join(name), set.join(name)).unwrap();
    }
    std::fs::write(set.join("notes.txt"), "not a dump\n").unwrap();
    let dump = std::fs::read(generated.join("golden-dump.elf")).unwrap();
    std::fs::write(set.join("cut.elf"), &dump[..dump.len() / 3]).unwrap();
    for (tag, args) in [
        (
            "triage",
            vec!["triage", "triage-set", "--debug-dir", "nowhere"],
        ),
        (
            "triage-json",
            vec!["--json", "triage", "triage-set", "--debug-dir", "nowhere"],
        ),
        (
            "triage-verify",
            vec!["triage", "triage-set", "--verify", "--debug-dir", "nowhere"],
        ),
    ] {
        cases.push((tag.into(), generated.as_path(), args));
    }
    // Errors are output too; under --json as JSON.
    cases.push((
        "error-directory".into(),
        corpus.as_path(),
        vec!["info", "."],
    ));
    cases.push((
        "error-json-input".into(),
        corpus.as_path(),
        vec!["--json", "info", "../golden.rs"],
    ));
    cases.push((
        "error-json-usage".into(),
        corpus.as_path(),
        vec!["--json", "regs", qemu, "7"],
    ));
    cases.push((
        "error-json-arguments".into(),
        corpus.as_path(),
        vec!["--json", "info", "--bogus", qemu],
    ));
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

/// The file offset of the data of a flattened stream's first record, which
/// must be at reassembled offset 0 (the kdump header): a 4096-byte stream
/// header, then per record a big-endian i64 offset and i64 size.
fn flattened_first_record(stream: &[u8]) -> usize {
    let be = |at: usize| i64::from_be_bytes(stream[at..at + 8].try_into().unwrap());
    assert!(
        stream.starts_with(b"makedumpfile"),
        "not a flattened stream"
    );
    assert_eq!(be(4096), 0, "first record not at offset 0");
    assert!(
        be(4096 + 8) >= 464,
        "first record shorter than a kdump header"
    );
    4096 + 16
}
