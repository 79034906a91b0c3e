//! The `crashkit` binary end to end on dumps the format library writes:
//! what `info` says in text and JSON, the exit codes (0, 2 usage, 3
//! unusable input), and warnings for a cut dump.

mod common;

use std::process::{Command, Output};

use common::{elf, file, flattened, kdump};

fn crashkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crashkit"))
        .args(args)
        .output()
        .unwrap()
}

/// A file of the committed corpus, by name.
fn corpus(name: &str) -> String {
    format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn info_describes_each_format_in_text_and_json() {
    for (name, bytes, format) in [
        ("dump.elf", elf(), "elf"),
        ("dump.kdump", kdump(), "kdump-compressed"),
        ("dump.flat", flattened(), "kdump-compressed-flattened"),
    ] {
        let path = file(name, &bytes);
        let path = path.to_str().unwrap();
        let text = crashkit(&["info", path]);
        assert_eq!(text.status.code(), Some(0), "{name}: {text:?}");
        let stdout = String::from_utf8_lossy(&text.stdout);
        for expected in [
            format!("FORMAT: {format} (crashkit), x86_64"),
            "COMPLETE: complete".into(),
            "OSRELEASE: cli-test".into(),
            "CRASH TIME: 2026-12-05 08:03:48 UTC (1796457828)".into(),
            "CPUS: 2 (panicking: 1)".into(),
            "MEMORY: 256 KiB in 1 range: 0x100000-0x13ffff".into(),
        ] {
            assert!(
                stdout.contains(&expected),
                "{name}: no {expected:?} in\n{stdout}"
            );
        }
        assert!(
            text.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&text.stderr)
        );

        let output = crashkit(&["--json", "info", path]);
        assert_eq!(output.status.code(), Some(0));
        let info = json(&output);
        assert_eq!(info["schema"], 1);
        assert_eq!(info["format"], format);
        assert_eq!(info["producer"], "crashkit");
        assert_eq!(info["cpus"], 2);
        assert_eq!(info["memory"][0]["start"], 0x10_0000);
        assert_eq!(info["memory"][0]["end"], 0x14_0000);
        // 64 pages from 1 MiB: 8 zero (every 8th), 56 with data; the
        // kdump format keeps zero pages as dumpable (one shared page).
        let pages = &info["pages"];
        let (present, zero) = (pages["present"].as_u64(), pages["zero"].as_u64());
        if format == "elf" {
            assert_eq!((present, zero), (Some(56), Some(8)), "{name}: {pages}");
        } else {
            assert_eq!((present, zero), (Some(64), Some(0)), "{name}: {pages}");
        }
        assert_eq!(pages["hole"], 256, "{name}: the first MiB");
        assert_eq!(pages["lost"], 0);
        assert_eq!(info["vmcoreinfo"][0]["key"], "OSRELEASE");
    }
}

#[test]
fn a_cut_dump_still_answers_with_a_warning() {
    let whole = kdump();
    let path = file("cut.kdump", &whole[..whole.len() - 5000]);
    let output = crashkit(&["--json", "info", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("crashkit: warning:") && stderr.contains("incomplete"),
        "{stderr}"
    );
    let info = json(&output);
    assert!(
        info["completeness"]
            .as_str()
            .unwrap()
            .starts_with("incomplete")
    );
    assert!(
        info["pages"]["lost"].as_u64().unwrap() > 0,
        "{}",
        info["pages"]
    );
}

#[test]
fn unusable_input_is_one_line_and_exit_code_3() {
    let garbage = file("garbage", b"this is not a dump at all");
    let empty = file("empty", b"");
    for path in [
        garbage.to_str().unwrap().to_owned(),
        empty.to_str().unwrap().to_owned(),
        "/nonexistent/vmcore".to_owned(),
    ] {
        let output = crashkit(&["info", &path]);
        assert_eq!(output.status.code(), Some(3), "{path}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!("crashkit: {path}: ")),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(output.stdout.is_empty());
    }
    // A kdump header with nothing after it: the reader names the offset.
    let cut = kdump();
    let header_only = file("header-only.kdump", &cut[..600]);
    let output = crashkit(&["info", header_only.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("offset"));
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(crashkit(&["info"]).status.code(), Some(2));
    assert_eq!(crashkit(&["frobnicate", "x"]).status.code(), Some(2));
    assert_eq!(crashkit(&["--help"]).status.code(), Some(0));
}

#[test]
fn cpus_and_regs_show_every_cpu_and_register() {
    for (name, bytes) in [("cpus.elf", elf()), ("cpus.kdump", kdump())] {
        let path = file(name, &bytes);
        let path = path.to_str().unwrap();
        let text = crashkit(&["cpus", path]);
        assert_eq!(text.status.code(), Some(0), "{name}");
        let stdout = String::from_utf8_lossy(&text.stdout);
        // crashkit writes the panicking CPU (1) first, for gdb; its
        // control-state note numbers it, so `cpus` lists it as CPU 1, in
        // number order. Its pr_pid is the CPU index plus one, a counter, so
        // there is no PID column. States come from the crash record's note.
        assert!(
            stdout.starts_with(
                "CPU   STATE         MODE    CPL  RIP                 RSP\n  \
                 0   Stopped       x86_64    0  0xffffffff81000000"
            ) && stdout.contains("\n  1*  PanicOwner    x86_64    0  0xffffffff81000001"),
            "{name}:\n{stdout}"
        );
        let cpus = json(&crashkit(&["--json", "cpus", path]));
        assert_eq!(cpus["schema"], 1);
        assert_eq!(cpus["cpus"][1]["cpu"], 1);
        assert_eq!(cpus["cpus"][1]["panicking"], true);
        assert_eq!(cpus["cpus"][1]["rip"], 0xffff_ffff_8100_0001u64);
        assert_eq!(cpus["cpus"][0]["panicking"], false);
        assert_eq!(cpus["cpus"][1]["state"], "PanicOwner");
        assert_eq!(cpus["cpus"][0]["state"], "Stopped");

        // Without a CPU: the panicking one.
        let regs = json(&crashkit(&["--json", "regs", path]));
        assert_eq!(regs["regs"]["cpu"], 1);
        assert_eq!(regs["regs"]["panicking"], true);
        let prstatus = regs["regs"]["prstatus"].as_array().unwrap();
        assert_eq!(prstatus.len(), 27, "every pr_reg slot");
        assert!(prstatus.contains(&serde_json::json!(["rip", 0xffff_ffff_8100_0001u64])));
        assert!(
            regs["regs"]["control"].is_array(),
            "crashkit's control state"
        );
        let text = crashkit(&["regs", path, "0"]);
        let stdout = String::from_utf8_lossy(&text.stdout);
        assert!(
            stdout.starts_with("CPU 0 (pid 1)\nNT_PRSTATUS\n"),
            "{stdout}"
        );
        assert!(stdout.contains("rip: 0xffffffff81000000"), "{stdout}");

        let missing = crashkit(&["regs", path, "5"]);
        assert_eq!(missing.status.code(), Some(2));
        assert_eq!(
            String::from_utf8_lossy(&missing.stderr),
            "crashkit: no CPU 5: the dump has 2 (0 to 1)\n"
        );
    }
}

#[test]
fn rd_shows_memory_and_says_what_is_not_there() {
    for (name, bytes) in [
        ("rd.elf", elf()),
        ("rd.kdump", kdump()),
        ("rd.flat", flattened()),
    ] {
        let path = file(name, &bytes);
        let path = path.to_str().unwrap();
        // Page 0x101000 holds 0x01 everywhere.
        let output = crashkit(&["rd", path, "-p", "0x101000", "16"]);
        assert_eq!(output.status.code(), Some(0), "{name}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "0000000000101000: 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01  |................|\n",
            "{name}"
        );
        // Below 1 MiB is not memory of this dump: one line says so.
        let output = crashkit(&["rd", path, "-p", "0xff000", "0x1010"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout
                .starts_with("00000000000ff000: hole (4096 bytes, to 0xfffff): not in the dump\n"),
            "{name}:\n{stdout}"
        );
        assert_eq!(stdout.lines().count(), 2, "{name}:\n{stdout}");
        // JSON: the runs with their states and bytes.
        let runs = json(&crashkit(&["--json", "rd", path, "-p", "0xfff00", "0x200"]));
        assert_eq!(runs["schema"], 1);
        assert_eq!(runs["rd"][0]["state"], "hole");
        assert_eq!(runs["rd"][0]["len"], 0x100);
        assert!(runs["rd"][0].get("hex").is_none());
        assert_eq!(runs["rd"][1]["start"], 0x10_0000);
        assert_eq!(runs["rd"][1]["hex"].as_str().unwrap().len(), 0x100 * 2);
        // --raw: the bytes themselves; stops at the first byte not there.
        let raw = crashkit(&["rd", path, "-p", "0x102000", "4096", "--raw"]);
        assert_eq!(raw.status.code(), Some(0));
        assert_eq!(raw.stdout, vec![2u8; 4096], "{name}");
        let raw = crashkit(&["rd", path, "-p", "0x13fff0", "0x20", "--raw"]);
        assert_eq!(raw.status.code(), Some(1), "{name}");
        assert_eq!(raw.stdout, vec![0x3f; 16], "{name}: what was there");
        assert!(
            String::from_utf8_lossy(&raw.stderr).contains("0x140000: hole: not in the dump"),
            "{name}"
        );
    }
    let path = file("rd-usage.elf", &elf());
    let path = path.to_str().unwrap();
    assert_eq!(crashkit(&["rd", path, "-p", "zz"]).status.code(), Some(2));
    assert_eq!(
        crashkit(&["rd", path, "-p", "0", "0x10000000"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        crashkit(&["rd", path, "-p", "0xffffffffffffffff", "2"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        crashkit(&["rd", path, "0x1000"]).status.code(),
        Some(2),
        "-p is required"
    );
}

#[test]
fn verify_passes_whole_dumps_and_names_every_broken_page() {
    for (name, bytes) in [
        ("verify.elf", elf()),
        ("verify.kdump", kdump()),
        ("verify.flat", flattened()),
    ] {
        let path = file(name, &bytes);
        let output = crashkit(&["verify", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{name}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("RESULT: ok"), "{name}:\n{stdout}");
    }
    // Break the LZO data of some pages: each is named, exit code 1.
    let mut broken = kdump();
    let dump = crashkit_dump_format::KdumpDump::parse(&broken).unwrap();
    let mut offsets = Vec::new();
    for frame in [0x101u64, 0x105, 0x10b] {
        let descriptor = dump.descriptor(frame).unwrap();
        offsets.push((frame, descriptor.offset));
    }
    drop(dump);
    for &(_, offset) in &offsets {
        // A literal-run opcode past the page: never decodes to one page.
        broken[offset as usize..offset as usize + 4].copy_from_slice(&[0x00, 0xff, 0xff, 0xff]);
    }
    let path = file("verify-broken.kdump", &broken);
    let output = crashkit(&["--json", "verify", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let verdict = json(&output);
    assert_eq!(verdict["verify"]["ok"], false);
    assert_eq!(
        verdict["verify"]["pages_corrupt"], 3,
        "{}",
        verdict["verify"]
    );
    let problems = verdict["verify"]["problems"].as_array().unwrap();
    for &(frame, offset) in &offsets {
        assert!(
            problems
                .iter()
                .any(|p| p["address"] == frame * 4096 && p["file_offset"] == offset),
            "frame {frame:#x} at {offset}: {problems:?}"
        );
    }
    // Cut: the pages past the end are lost, and the dump is incomplete.
    let whole = kdump();
    let path = file("verify-cut.kdump", &whole[..whole.len() - 3000]);
    let output = crashkit(&["verify", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("the dump is incomplete"), "{stdout}");
    assert!(stdout.contains("lost: its"), "{stdout}");
}

#[test]
fn every_command_survives_mutated_and_cut_dumps() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut runs = 0;
    for (name, whole) in [
        ("m.elf", elf()),
        ("m.kdump", kdump()),
        ("m.flat", flattened()),
    ] {
        let mut variants: Vec<Vec<u8>> = Vec::new();
        // Cuts through the headers, the notes, the metadata and the data.
        for cut in [1usize, 7, 63, 64, 200, 464, 4096, 4200, 5000, 9000, 20000] {
            if cut < whole.len() {
                variants.push(whole[..cut].to_vec());
            }
        }
        variants.push(whole[..whole.len() / 2].to_vec());
        // Bytes flipped: mostly in the first 12 KiB (headers, notes,
        // bitmaps, descriptors), some anywhere.
        for round in 0..30 {
            let mut bytes = whole.clone();
            for _ in 0..1 + round % 4 {
                let span = if round % 3 == 0 {
                    bytes.len()
                } else {
                    bytes.len().min(12288)
                };
                let at = next() as usize % span;
                bytes[at] ^= (next() as u8) | 1;
            }
            variants.push(bytes);
        }
        for (index, bytes) in variants.iter().enumerate() {
            let path = file(&format!("{name}.{index}"), bytes);
            let path = path.to_str().unwrap();
            for args in [
                vec!["info", path],
                vec!["--json", "info", path],
                vec!["cpus", path],
                vec!["regs", path],
                vec!["record", "--scan", path],
                vec!["--json", "cpus", "--scan", path],
                vec!["rd", path, "-p", "0x100000", "0x10000"],
                vec!["vtop", path, "0xffffffff81000000"],
                vec!["bt", path, "-a", "--kernel", "/bin/true"],
                vec!["verify", path],
            ] {
                common::survives(&args, path, name);
                runs += 1;
            }
        }
    }
    assert!(runs > 900, "{runs} runs");
}

#[test]
fn convert_goes_round_every_format_and_keeps_every_page() {
    let source = file("convert-source.elf", &elf());
    let dir = source.parent().unwrap().to_path_buf();
    let raw = |path: &std::path::Path| {
        let output = crashkit(&[
            "rd",
            path.to_str().unwrap(),
            "-p",
            "0x100000",
            "0x40000",
            "--raw",
        ]);
        assert_eq!(output.status.code(), Some(0), "{path:?}: {output:?}");
        output.stdout
    };
    let original = raw(&source);
    let mut from = source.clone();
    for (step, to, codec, extra) in [
        ("1.kdump", "kdump", "lzo", None),
        ("2.flat", "flattened", "zlib:1", None),
        ("3.kdump", "kdump", "snappy", None),
        ("4.elf", "elf", "zlib", Some("--keep-zero")),
        ("5.flat", "flattened", "zstd", None),
        ("6.kdump", "kdump", "zlib:3", None),
        ("7.elf", "elf", "raw", None),
    ] {
        let out = dir.join(format!("convert-{step}"));
        let _ = std::fs::remove_file(&out);
        let mut args = vec![
            "convert",
            from.to_str().unwrap(),
            out.to_str().unwrap(),
            "--to",
            to,
            "--codec",
            codec,
        ];
        args.extend(extra);
        let output = crashkit(&args);
        assert_eq!(output.status.code(), Some(0), "{step}: {output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("wrote "));
        let verify = crashkit(&["verify", out.to_str().unwrap()]);
        assert_eq!(verify.status.code(), Some(0), "{step}: {verify:?}");
        assert!(raw(&out) == original, "{step}: the memory changed");
        let info = json(&crashkit(&["--json", "info", out.to_str().unwrap()]));
        assert_eq!(info["completeness"], "complete", "{step}");
        assert_eq!(info["cpus"], 2, "{step}: the CPUs carried over");
        assert_eq!(info["panic_cpu"], 1, "{step}");
        assert_eq!(
            info["osrelease"], "cli-test",
            "{step}: VMCOREINFO carried over"
        );
        from = out;
    }
    // The output must be new.
    let output = crashkit(&[
        "convert",
        source.to_str().unwrap(),
        from.to_str().unwrap(),
        "--to",
        "elf",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("File exists"));
    assert_eq!(
        crashkit(&["convert", source.to_str().unwrap(), "x", "--to", "tar"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn cpus_lists_a_recorded_cpu_without_a_register_note() {
    let path = file("one-note.elf", &common::elf_panic_cpu_only());
    let path = path.to_str().unwrap();
    let text = crashkit(&["cpus", path]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("  1*  PanicOwner    x86_64    0  0xffffffff81000001"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  -   Stopped       -         -  (no register note)"),
        "the record's CPU 0, which has no note:\n{stdout}"
    );
    let cpus = json(&crashkit(&["--json", "cpus", path]));
    assert_eq!(cpus["cpus"].as_array().unwrap().len(), 2);
    assert_eq!(cpus["cpus"][1]["cpu"], serde_json::Value::Null);
    assert_eq!(cpus["cpus"][1]["state"], "Stopped");
    assert_eq!(cpus["cpus"][1]["rip"], serde_json::Value::Null);
}

#[test]
fn record_reads_the_note_or_scans_memory() {
    // A crashkit dump: the record's note.
    let path = file("record.kdump", &kdump());
    let path = path.to_str().unwrap();
    let noted = json(&crashkit(&["--json", "record", path]));
    let records = noted["record"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["found_by"], "note");
    assert_eq!(records[0]["panic"]["owner_cpu"], 1);
    assert_eq!(records[0]["panic"]["phase"], "FinalAction");
    assert!(
        records[0]["panic"]["message"]
            .as_str()
            .unwrap()
            .contains("panic-ap: cpu 1 panics on purpose")
    );
    assert_eq!(records[0]["cpus"][1]["state"], "PanicOwner");
    assert_eq!(records[0]["cpus"][1]["registers"][16][0], "rip");
    assert_eq!(noted["record"].get("pages_scanned"), None, "no scan");

    // QEMU's dump of the crashed test kernel: found by scanning, at the
    // record static's physical address.
    let qemu = corpus("qemu-test-kernel-panic-ap.kdump-zlib.flat");
    let scanned = json(&crashkit(&["--json", "record", &qemu]));
    let records = scanned["record"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{scanned}");
    assert_eq!(records[0]["found_by"], "scan");
    assert_eq!(records[0]["address"], 0x11_9000);
    assert!(scanned["record"]["pages_scanned"].as_u64().unwrap() > 1000);
    // The record scanned is the one this corpus's note carries.
    let bytes = crashkit(&["rd", &qemu, "-p", "0x119000", "3688", "--raw"]).stdout;
    assert_eq!(bytes, common::CRASH_RECORD);

    // `--scan` scans a crashkit dump too; its memory holds no record.
    let both = json(&crashkit(&["--json", "record", "--scan", path]));
    assert_eq!(both["record"]["records"].as_array().unwrap().len(), 1);
    assert!(both["record"]["pages_scanned"].as_u64().is_some());

    // A dump with neither: exit 1 and a plain statement.
    let plain = common::elf_without_record();
    let path = file("no-record.elf", &plain);
    let output = crashkit(&["record", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("no crash record: none in a note"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn record_reports_a_note_that_is_not_a_record_and_scans() {
    // A note (whole, its checksum right) whose record has a version this
    // reader does not know: rejected with the reader's reason, and memory
    // scanned instead.
    let mut record = common::CRASH_RECORD.to_vec();
    record[8] = 99;
    let path = file("bad-record.elf", &common::elf_with_record(&record));
    let output = crashkit(&["record", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("no crash record: none in a note, none in the 56 pages"),
        "{stdout}"
    );
    assert!(stdout.contains("not a record: the note: "), "{stdout}");
    assert!(stdout.contains("version 99"), "{stdout}");
}

#[test]
fn log_reads_the_synthetic_ring_and_survives_it_mutated() {
    let whole = common::linux::elf();
    let path = file("linux-synthetic.elf", &whole);
    let path = path.to_str().unwrap();
    let output = crashkit(&["log", path]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("(the 10 records before sequence number 10"),
        "{text}"
    );
    assert!(
        text.contains("] a block that wraps to the start of the ring\n"),
        "{text}"
    );
    assert!(
        text.contains("] first line\n                 second line\n"),
        "{text}"
    );
    assert!(!text.contains("reserved, never finished"), "{text}");
    let log = json(&crashkit(&["--json", "log", path]));
    let records = log["log"]["records"].as_array().unwrap();
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [10, 11, 12, 13, 14, 15, 16]);
    assert_eq!(records[6]["caller"], "C1");
    assert_eq!(records[0]["caller"], "T1000");
    assert_eq!(records[3]["text"], "");
    let info = json(&crashkit(&["--json", "info", path]));
    assert_eq!(
        info["panic_message"],
        "Kernel panic - not syncing: synthetic"
    );

    // Bytes of the tables' and the ring's pages flipped, one file at a
    // time (150 files): log, info, vtop and rd survive (never a panic, a
    // kill or an exit code outside 0-3), and no text printed is longer
    // than the ring.
    let mut runs = 0;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..150 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = whole.clone();
        // The pages hold the tables and the ring; find them by content in
        // the file (the writer may place them anywhere).
        let pages = common::linux::page_offsets(&whole);
        let page = pages[(state as usize) % pages.len()];
        let at = page + ((state >> 20) as usize) % 4096;
        bytes[at] ^= (state >> 40) as u8 | 1;
        let name = format!("linux-mutated-{round}.elf");
        let path = file(&name, &bytes);
        let path = path.to_str().unwrap();
        for args in [
            vec!["log", path],
            vec!["--json", "log", path],
            vec!["info", path],
            vec!["vtop", path, "0xffffffff80105000"],
            vec!["rd", path, "0xffffffff80102000", "0x40"],
        ] {
            common::survives(&args, path, &name);
            runs += 1;
        }
        let output = crashkit(&["log", path]);
        let text = String::from_utf8_lossy(&output.stdout);
        for line in text.lines().filter(|l| l.starts_with('[')) {
            let body = &line[line.find("] ").unwrap() + 2..];
            // A record's text may be cut (a damaged length) or come from a
            // damaged position, but the reader never reads past the ring:
            // anything it prints is bytes of the ring's data page.
            assert!(body.len() <= 4096, "{name}: {line}");
        }
    }
    assert!(runs >= 750, "{runs} runs");
}

/// The crash log's area with bytes flipped, one file at a time (150
/// files): `log --kernel` survives (never a panic, a kill or an exit code
/// outside 0-3), and every message it prints is one the undamaged log
/// holds: damage is reported or resynced past, never decoded as another
/// message.
#[test]
fn a_damaged_crash_log_never_decodes_as_another_message() {
    let whole = common::crashlog::dump(true);
    let kernel = file(
        "damaged-log-kernel.elf",
        &common::crashlog::kernel_elf(&common::crashlog::BUILD_ID),
    );
    let kernel = kernel.to_str().unwrap();
    let clean = file("damaged-log-clean.elf", &whole);
    let clean = crashkit(&["log", clean.to_str().unwrap(), "--kernel", kernel]);
    assert_eq!(clean.status.code(), Some(0));
    let messages = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with('['))
            .map(|l| l[l.find("] ").unwrap() + 2..].to_owned())
            .collect()
    };
    let known = messages(&String::from_utf8_lossy(&clean.stdout));
    let area = whole
        .windows(8)
        .position(|w| w == b"CKLOGRNG")
        .expect("the area is in the dump");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut decoded_after_damage = 0;
    for round in 0..150 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = whole.clone();
        // The header (128 bytes) a tenth of the time, the rings otherwise.
        let span = if round % 10 == 0 { 128 } else { 2048 };
        let at = area + (state >> 20) as usize % span;
        bytes[at] ^= (state >> 40) as u8 | 1;
        let name = format!("damaged-log-{round}.elf");
        let path = file(&name, &bytes);
        let path = path.to_str().unwrap();
        for args in [
            vec!["log", path, "--kernel", kernel],
            vec!["--json", "log", path, "--kernel", kernel],
        ] {
            common::survives(&args, path, &name);
        }
        let output = crashkit(&["log", path, "--kernel", kernel]);
        let printed = messages(&String::from_utf8_lossy(&output.stdout));
        for message in &printed {
            assert!(
                known.contains(message) || message.starts_with("(undecodable"),
                "{name}: {message:?} is not a message of the log"
            );
        }
        decoded_after_damage += printed.len();
    }
    // Most damage leaves most of the log readable.
    assert!(
        decoded_after_damage > 150 * known.len() / 2,
        "{decoded_after_damage}"
    );
}

#[test]
fn bt_refuses_a_kernel_that_is_not_the_dumps_and_names_what_it_has() {
    // The synthetic dump names build-id 0011...33; /bin/true is not it.
    let path = file("bt-linux.elf", &common::linux::elf());
    let path = path.to_str().unwrap();
    let output = crashkit(&["bt", path, "--kernel", "/bin/true"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not the dump's 00112233445566778899aabbccddeeff00112233"),
        "{stderr}"
    );
    // No kernel named and none under the debug directory, and the
    // dump's ORC tables left out: a usage error that says both.
    let without_orc = file(
        "bt-linux-no-orc.elf",
        &common::linux::elf_excluding(&[common::linux::orc_page()]),
    );
    let without_orc = without_orc.to_str().unwrap();
    let output = crashkit(&["bt", without_orc, "--debug-dir", "/nonexistent"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/.build-id/00/112233445566778899aabbccddeeff00112233.debug")
            && stderr.contains("Linux's ORC tables cannot be used")
            && stderr.contains("excluded"),
        "{stderr}"
    );
    // A dump without a build-id: the kernel is taken, with a warning, and
    // the unwind stops where the ELF has nothing to say, which is not a
    // whole stack (exit 1, and the text says it stopped early).
    let output = crashkit(&["bt", elf_path(), "--kernel", "/bin/true"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: the dump names no build-id"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("CPU 1 (panicking)\n #0  0xffffffff81000001 in ??")
            && stdout.contains(" (stopped early: "),
        "{stdout}"
    );
    assert!(
        stderr.contains("the backtrace stopped before the stack's start on CPU 1"),
        "{stderr}"
    );
}

/// A Linux dump unwinds with its own ORC tables and kallsyms, no ELF:
/// the synthetic dump's panicking CPU, from `panic` through
/// `sysrq_handle_crash` to the system call entry's pt_regs, named as
/// Linux names return addresses, and complete. Then its tables and stack
/// damaged a byte at a time: every run ends within the limits, and a
/// backtrace that reads as complete still starts at `panic` and names
/// only the kernel's symbols.
#[test]
fn bt_unwinds_a_linux_dump_with_its_own_orc_tables() {
    use common::linux::{RIP, RSP, USER_RIP, USER_RSP};
    let whole = common::linux::elf();
    let path = file("bt-orc.elf", &whole);
    let path = path.to_str().unwrap();
    let output = crashkit(&["bt", path, "--debug-dir", "/nonexistent"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let want = format!(
        "CPU 0 (panicking)\n \
         #0  {RIP:#018x} in panic+0x20/0x2f4\n \
         #1  0xffffffff810003fa in sysrq_handle_crash+0x6/0x10c\n \
         #2  0xffffffff81000540 in entry_SYSCALL_64+0x40/0x300\n     \
         -- pt_regs at {:#x}: from user space, RIP {USER_RIP:#x}, RSP {USER_RSP:#x}\n \
         (complete: entered from user space (RIP {USER_RIP:#x}, RSP {USER_RSP:#x}))\n",
        RSP + 24
    );
    assert_eq!(stdout, want);
    let output = crashkit(&["--json", "bt", path, "-a"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let trace = &json["bt"][0];
    assert_eq!(trace["complete"], true);
    assert!(
        trace["unwinder"]
            .as_str()
            .unwrap()
            .starts_with("orc (Linux's tables in the dump: format 1, 5 entries)"),
        "{trace}"
    );
    let steps: Vec<&str> = trace["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["unwound_by"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["orc", "orc", "orc pt_regs"]);
    assert_eq!(trace["frames"][2]["interrupted"]["user"], true);
    assert_eq!(trace["frames"][1]["sp"], RSP + 16);

    let offsets = common::linux::orc_offsets(&whole);
    let mut complete = 0;
    let mut refused = 0;
    let mut runs = 0;
    for (index, &offset) in offsets.iter().enumerate() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bytes = whole.clone();
            bytes[offset] ^= flip;
            let damaged = file(&format!("bt-orc-damaged.{index}.{flip}"), &bytes);
            let damaged = damaged.to_str().unwrap();
            let args = ["--json", "bt", damaged, "-a"];
            common::survives(&args, damaged, "bt on damaged ORC tables and stack");
            runs += 1;
            let output = crashkit(&args);
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
                continue;
            };
            if json["error"].is_object() {
                // Tables that do not read: refused whole, saying why.
                assert_eq!(output.status.code(), Some(2), "{json}");
                let message = json["error"]["message"].as_str().unwrap();
                assert!(message.contains("ORC tables cannot be used"), "{message}");
                refused += 1;
                continue;
            }
            let trace = &json["bt"][0];
            if trace["complete"] == true {
                complete += 1;
                assert_eq!(output.status.code(), Some(0));
                let frames = trace["frames"].as_array().unwrap();
                assert!(
                    frames[0]["symbol"]
                        .as_str()
                        .unwrap()
                        .starts_with("panic+0x20/"),
                    "{trace}"
                );
                for frame in frames {
                    let symbol = frame["symbol"].as_str().unwrap_or("??");
                    assert!(
                        common::linux::SYMBOLS
                            .iter()
                            .any(|(_, name, _)| symbol.starts_with(&format!("{name}+"))),
                        "{symbol}: {trace}"
                    );
                }
            } else {
                assert_eq!(output.status.code(), Some(1), "{trace}");
                assert!(!trace["stopped"].as_str().unwrap().is_empty());
            }
            let _ = std::fs::remove_file(damaged);
        }
    }
    println!("{complete} complete, {refused} refused, of {runs} damaged dumps");
    assert!(
        runs > 700 && complete > 0 && refused > 0 && complete + refused < runs,
        "{complete} complete and {refused} refused of {runs}"
    );
}

/// The same Linux dump with a kernel ELF that has DWARF (and the dump's
/// build-id, in `.notes` as a vmlinux keeps it): the frames ORC finds are
/// named by DWARF, with file:line and the function inlined into another;
/// the assembly entry, which has no DWARF, by kallsyms.
#[test]
fn bt_names_orc_frames_with_the_kernel_elfs_dwarf() {
    let dump = file("bt-orc-dwarf.elf", &common::linux::elf());
    let elf = file("bt-orc-dwarf-vmlinux", &common::linux::debug_elf());
    let output = crashkit(&[
        "bt",
        dump.to_str().unwrap(),
        "--kernel",
        elf.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "CPU 0 (panicking)");
    assert!(
        lines[1].ends_with("in panic (kernel/panic.c:321)"),
        "{stdout}"
    );
    assert!(
        lines[2].ends_with("in crash_now (drivers/tty/sysrq.c:10)"),
        "{stdout}"
    );
    assert!(
        lines[3].trim_start() == "inlined into sysrq_handle_crash (drivers/tty/sysrq.c:150)",
        "{stdout}"
    );
    assert!(
        lines[4].ends_with("in entry_SYSCALL_64+0x40/0x300"),
        "{stdout}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with(" (complete: entered from user space"),
        "{stdout}"
    );
}

fn elf_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| file("bt-plain.elf", &elf()).to_str().unwrap().to_owned())
}

#[test]
fn log_says_what_it_could_not_read_and_gives_the_rest() {
    // The text data ring's page excluded: every record with text is said
    // unreadable, with where and why; the one without text still reads.
    let dump = common::linux::elf_excluding(&[crashkit_dump_format::PhysRange::new(
        common::linux::DATA,
        4096,
    )]);
    let path = file("linux-no-text.elf", &dump);
    let output = crashkit(&["log", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("(not read: 6 records: text at 0xffffffff80105000 (4096 bytes): the dump has it as excluded)"),
        "{text}"
    );
    let records: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(records.len(), 1, "{text}");
}

#[test]
fn bt_finds_the_kernel_by_build_id_under_the_debug_directory() {
    // A .build-id tree with a file at the dump's build-id: found, and then
    // refused because its own build-id is not the dump's (it is
    // /bin/true): the lookup and the check, both.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debug-dir");
    let place = dir.join(".build-id/00");
    std::fs::create_dir_all(&place).unwrap();
    std::fs::copy(
        "/bin/true",
        place.join("112233445566778899aabbccddeeff00112233.debug"),
    )
    .unwrap();
    let path = file("bt-lookup.elf", &common::linux::elf());
    let output = crashkit(&[
        "bt",
        path.to_str().unwrap(),
        "--debug-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(".build-id/00/112233445566778899aabbccddeeff00112233.debug: its build-id"),
        "{stderr}"
    );
}

/// A raw RAM image: 256 KiB of memory with the committed crash record (a
/// QEMU run's, panic-ap on 2 CPUs) at physical 0x1_3008 and a marker page
/// at 0x2_0000.
fn ram_image() -> (Vec<u8>, Vec<u8>) {
    let record = std::fs::read(corpus("test-kernel-panic-ap.crash-record")).unwrap();
    let mut ram = vec![0u8; 256 << 10];
    ram[0x1_3008..0x1_3008 + record.len()].copy_from_slice(&record);
    for (index, byte) in ram[0x2_0000..0x2_1000].iter_mut().enumerate() {
        *byte = (index % 251) as u8;
    }
    (ram, record)
}

#[test]
fn ram_images_answer_record_cpus_and_rd() {
    let (ram, _) = ram_image();
    let path = file("guest.ram", &ram);
    let path = path.to_str().unwrap();

    let record = crashkit(&["--json", "record", "--ram", path]);
    assert_eq!(record.status.code(), Some(0), "{record:?}");
    let found = &json(&record)["record"]["records"];
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["found_by"], "scan");
    assert_eq!(found[0]["address"], 0x1_3008);
    assert_eq!(found[0]["panic"]["owner_cpu"], 1);
    let text = crashkit(&["record", "--ram", path]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("0x13008"),
        "{text:?}"
    );

    // cpus: the record's CPUs (no notes in an image), --scan implied.
    let cpus = crashkit(&["--json", "cpus", "--ram", path]);
    assert_eq!(cpus.status.code(), Some(0), "{cpus:?}");
    let lines = json(&cpus)["cpus"].as_array().cloned().unwrap();
    let panicking: Vec<_> = lines.iter().filter(|l| l["panicking"] == true).collect();
    assert_eq!(panicking.len(), 1, "{lines:?}");
    assert_eq!(panicking[0]["index"], 1);
    assert!(lines.iter().any(|l| l["state"] == "Stopped"), "{lines:?}");

    // rd -p: bytes as the image has them; past its end, a hole.
    let rd = crashkit(&["--json", "rd", "--ram", path, "-p", "0x20000", "4096"]);
    assert_eq!(rd.status.code(), Some(0), "{rd:?}");
    let runs = json(&rd)["rd"].clone();
    assert_eq!(runs[0]["state"], "present");
    let hex: String = ram[0x2_0000..0x2_1000]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(runs[0]["hex"], hex);
    let past = crashkit(&["--json", "rd", "--ram", path, "-p", "0x3fff8", "16"]);
    let runs = json(&past)["rd"].clone();
    assert_eq!(
        (runs[0]["state"].as_str(), runs[0]["len"].as_u64()),
        (Some("present"), Some(8))
    );
    assert_eq!(
        (runs[1]["state"].as_str(), runs[1]["len"].as_u64()),
        (Some("hole"), Some(8))
    );
}

#[test]
fn ram_misuse_gets_a_clear_error() {
    // A dump named with --ram: refused, not read as memory.
    let dump = file("a-dump.elf", &elf());
    let refused = crashkit(&["record", "--ram", dump.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("an ELF file, not a raw RAM image: drop --ram"),
        "{stderr}"
    );
    // An image has no page tables: rd --ram needs -p.
    let (ram, _) = ram_image();
    let path = file("guest2.ram", &ram);
    let usage = crashkit(&["rd", "--ram", path.to_str().unwrap(), "0x1000"]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    // No record in an image of zeros: exit 1, nothing found.
    let zeros = file("zeros.ram", &vec![0u8; 64 << 10]);
    let none = crashkit(&["record", "--ram", zeros.to_str().unwrap()]);
    assert_eq!(none.status.code(), Some(1), "{none:?}");
}

/// A write that fails is reported with its causes, not as a debug dump of
/// the error: what was being written, where the device failed, and the
/// operating system's reason. The output is cut by a 4 KiB file-size limit
/// (`SIGXFSZ` ignored, so the write fails with `EFBIG`).
#[test]
fn a_failed_write_says_where_and_why() {
    use std::os::unix::process::CommandExt;
    let source = file("convert-full.elf", &common::elf());
    let out = std::env::temp_dir().join(format!("crashkit-cli-{}-full.kdump", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crashkit"));
    command.args([
        "convert",
        source.to_str().unwrap(),
        out.to_str().unwrap(),
        "--to",
        "elf",
    ]);
    // SAFETY: the closure runs in the forked child before `exec` and only
    // calls `signal` and `setrlimit`, both async-signal-safe, on values it
    // owns; it touches no memory the parent shares, takes no lock and does
    // not allocate.
    unsafe {
        command.pre_exec(|| {
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    let _ = std::fs::remove_file(&out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "crashkit: writing {}: the device failed at offset 0x",
        out.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(
        !stderr.contains("Sink {"),
        "a debug dump of the error: {stderr}"
    );
}

/// `save` on a dump device image: a whole dump is copied out and opens;
/// `--clear` marks it saved, and a saved or torn dump is refused unless
/// `--force`; `info` on the device says what is there, and every command
/// reads the dump in place.
#[test]
fn save_copies_a_whole_dump_and_refuses_torn_or_saved_ones() {
    let image = common::device(1 << 20);
    let device = file("dump-device.img", &image);
    let device = device.to_str().unwrap();
    let dir = std::path::Path::new(device).parent().unwrap().to_path_buf();
    let out = |name: &str| {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path.to_str().unwrap().to_owned()
    };

    let info = crashkit(&["info", device]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert_eq!(info.status.code(), Some(0), "{info:?}");
    assert!(
        text.contains("DEVICE: crashkit dump device of 1 MiB: whole dump 0909090909090909"),
        "{text}"
    );
    assert!(
        text.contains("FORMAT: kdump-compressed (crashkit)"),
        "{text}"
    );
    assert!(text.contains("COMPLETE: complete"), "{text}");

    let saved = out("saved.kdump");
    let run = crashkit(&["save", device, &saved]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let copy = std::fs::read(&saved).unwrap();
    let plain = kdump();
    let first_difference = copy.iter().zip(&plain).position(|(a, b)| a != b);
    assert!(
        copy.len() == plain.len() && first_difference.is_none(),
        "the copy is {} bytes, the dump file {}; first difference at {first_difference:?}",
        copy.len(),
        plain.len()
    );
    assert_eq!(crashkit(&["verify", &saved]).status.code(), Some(0));

    let again = out("again.kdump");
    let run = crashkit(&["--json", "save", "--clear", device, &again]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let answer = json(&run);
    assert_eq!(answer["save"]["state"], "whole");
    assert_eq!(answer["save"]["cleared"], true);
    assert_eq!(answer["save"]["completeness"], "complete");
    let info = json(&crashkit(&["--json", "info", device]));
    assert_eq!(info["device"]["state"], "saved");

    let third = out("third.kdump");
    let run = crashkit(&["save", device, &third]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("was saved already"));
    assert_eq!(
        crashkit(&["save", "--force", device, &third]).status.code(),
        Some(0)
    );

    // The trailing header gone (a dump cut before its last steps): torn.
    let mut torn = image.clone();
    let last = torn.len() - 4096;
    torn[last..].fill(0);
    let torn_device = file("torn-device.img", &torn);
    let torn_device = torn_device.to_str().unwrap();
    let fourth = out("fourth.kdump");
    let run = crashkit(&["save", torn_device, &fourth]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("is torn: the trailing header does not read"),
        "{stderr}"
    );
    let run = crashkit(&["save", "--force", torn_device, &fourth]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stdout).contains("torn dump"));

    // Not a device: an input error.
    let plain = file("not-a-device.elf", &elf());
    let run = crashkit(&["save", plain.to_str().unwrap(), &out("fifth")]);
    assert_eq!(run.status.code(), Some(3), "{run:?}");
}

/// The synthetic Linux dump's kallsyms (`common::linux::SYMBOLS`): `sym`
/// answers from them, `--system-map` files are placed and checked against
/// them, and the tables' pages with bytes flipped (200 files) never make
/// `sym`, `cpus`, `info` or a symbolic `rd` panic, hang or exit outside
/// 0-3.
#[test]
fn symbols_come_from_the_dumps_kallsyms_and_survive_its_damage() {
    let whole = common::linux::elf();
    let path = file("linux-symbols.elf", &whole);
    let path = path.to_str().unwrap();
    let listed = json(&crashkit(&["--json", "sym", "-l", path]));
    let symbols: Vec<(String, u64)> = listed["sym"]["answers"][0]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["address"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = common::linux::SYMBOLS
        .iter()
        .map(|(_, name, addr)| ((*name).to_owned(), *addr))
        .collect();
    assert_eq!(symbols, expected);
    // The panicking CPU is panic_cpu's.
    let cpus = json(&crashkit(&["--json", "cpus", path]));
    assert_eq!(cpus["cpus"][0]["panicking"], true);
    assert_eq!(cpus["cpus"][0]["function"], "panic+0x20/0x2f4");
    // Addresses: hex with or without 0x; decimal is gone.
    for address in [
        "ffffffff80106000",
        "0xffffffff80106000",
        "init_uts_ns",
        "panic_cpu-0x200",
    ] {
        let read = crashkit(&["rd", "--raw", path, address, "8"]);
        assert_eq!(read.status.code(), Some(0), "{address}: {read:?}");
        assert_eq!(&read.stdout[..5], b"Linux", "{address}");
    }

    // A System.map: the same addresses agree; one that differs is warned
    // about; another kernel's (_stext elsewhere) is refused.
    let map: String = common::linux::SYMBOLS
        .iter()
        .map(|(kind, name, addr)| format!("{addr:016x} {kind} {name}\n"))
        .collect();
    let good = file("linux-symbols.map", map.as_bytes());
    let good = good.to_str().unwrap();
    let output = crashkit(&["sym", path, "panic", "--system-map", good]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let moved = map.replace("ffffffff81000100 T panic", "ffffffff81000108 T panic");
    let moved = file("linux-symbols-moved.map", moved.as_bytes());
    let output = crashkit(&[
        "sym",
        path,
        "panic",
        "--system-map",
        moved.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("disagree on 1 names (first: panic at 0xffffffff81000108"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ffffffff81000108 (T) panic"));
    let other = map.replace("ffffffff81000000 T _stext", "ffffffff82000000 T _stext");
    let other = file("linux-symbols-other.map", other.as_bytes());
    let output = crashkit(&[
        "sym",
        path,
        "panic",
        "--system-map",
        other.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not the crashed kernel's symbols"));

    // Damage: bytes of the kallsyms pages and init_uts_ns flipped.
    let pages = common::linux::page_offsets(&whole);
    let kallsyms_pages = &pages[6..9];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut refused = 0;
    for round in 0..200 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = whole.clone();
        let page = kallsyms_pages[(state as usize) % kallsyms_pages.len()];
        // Mostly the tables' first bytes, where the counts and names are.
        let at = page + ((state >> 20) as usize) % if round % 2 == 0 { 4096 } else { 96 };
        bytes[at] ^= (state >> 40) as u8 | 1;
        let name = format!("linux-symbols-mutated-{round}.elf");
        let mutated = file(&name, &bytes);
        let mutated = mutated.to_str().unwrap();
        for args in [
            vec!["sym", mutated, "panic", "ffffffff81000104", "*"],
            vec!["--json", "sym", "-l", mutated],
            vec!["cpus", mutated],
            vec!["info", mutated],
            vec!["rd", mutated, "init_uts_ns+0x80", "16"],
        ] {
            common::survives(&args, mutated, &name);
        }
        // What a damaged table may not do: give a symbol VMCOREINFO also
        // names another address, or addresses out of order. (A name's
        // letter changed is still a name: that reads.)
        let output = crashkit(&["--json", "sym", "-l", mutated]);
        if output.status.code() != Some(0) {
            refused += 1;
            continue;
        }
        let listed = json(&output);
        let list = listed["sym"]["answers"][0]["symbols"].as_array().unwrap();
        let address = |name: &str| {
            list.iter()
                .find(|s| s["name"] == name)
                .and_then(|s| s["address"].as_u64())
        };
        for (name, want) in [
            ("_stext", 0xffff_ffff_8100_0000),
            ("init_uts_ns", 0xffff_ffff_8010_6000),
        ] {
            assert!(
                address(name).is_none_or(|a| a == want),
                "{name}: {name} at {:x?}",
                address(name)
            );
        }
        let addresses: Vec<u64> = list
            .iter()
            .map(|s| s["address"].as_u64().unwrap())
            .collect();
        assert!(addresses.is_sorted(), "{name}: {addresses:x?}");
    }
    assert!(
        refused >= 20,
        "only {refused} of 200 damaged tables refused"
    );
}

/// `--kernel ELF` gives `sym` the ELF's `.symtab`: its own sizes
/// (`st_size`), its type letters, checked against the dump's kallsyms.
#[test]
fn sym_reads_a_kernel_elfs_symbol_table() {
    use object::write::{Object, Symbol as ElfSymbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
    };
    let mut elf = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = elf.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    elf.set_section_data(text, vec![0xcc; 16], 16);
    let data = elf.add_section(Vec::new(), b".data".to_vec(), SectionKind::Data);
    elf.set_section_data(data, vec![0; 16], 16);
    for (name, value, size, section, kind, scope) in [
        (
            "_stext",
            0xffff_ffff_8100_0000u64,
            0,
            text,
            SymbolKind::Text,
            SymbolScope::Linkage,
        ),
        (
            "panic",
            0xffff_ffff_8100_0100,
            0x2f0,
            text,
            SymbolKind::Text,
            SymbolScope::Linkage,
        ),
        (
            "panic_cpu",
            0xffff_ffff_8010_6200,
            4,
            data,
            SymbolKind::Data,
            SymbolScope::Compilation,
        ),
    ] {
        elf.add_symbol(ElfSymbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind,
            scope,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    }
    let kernel = file("sym-kernel.elf", &elf.write().unwrap());
    let dump = file("sym-kernel-dump.elf", &common::linux::elf());
    let output = crashkit(&[
        "sym",
        dump.to_str().unwrap(),
        "panic+0x10",
        "panic_cpu",
        "--kernel",
        kernel.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    // The ELF's st_size (0x2f0), not kallsyms' gap (0x2f4); a local data
    // symbol is `d`.
    assert_eq!(
        text,
        "ffffffff81000110 (T) panic+0x10/0x2f0\nffffffff80106200 (d) panic_cpu (size 0x4)\n"
    );
    let source = json(&crashkit(&[
        "--json",
        "sym",
        dump.to_str().unwrap(),
        "panic",
        "--kernel",
        kernel.to_str().unwrap(),
    ]));
    let source = source["sym"]["source"].as_str().unwrap();
    assert!(
        source.ends_with("(3 symbols; kallsyms agrees on 3 names)"),
        "{source}"
    );
}

/// A vmlinux keeps its build-id in `.notes`, after other notes (Xen's):
/// `bt --kernel` finds it there and takes the kernel as the dump's (no
/// warning, no refusal); a different id in `.notes` is refused.
#[test]
fn bt_finds_a_vmlinux_build_id_in_its_notes_section() {
    use object::write::Object;
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    let vmlinux = |id: &[u8]| {
        let mut elf = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let notes = elf.add_section(Vec::new(), b".notes".to_vec(), SectionKind::Note);
        let mut bytes = Vec::new();
        for (name, kind, desc) in [
            (&b"Xen\0"[..], 6u32, &b"linux\0\0\0"[..]),
            (b"GNU\0", 3, id),
        ] {
            bytes.extend_from_slice(&4u32.to_le_bytes());
            bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&kind.to_le_bytes());
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(desc);
            while bytes.len() % 4 != 0 {
                bytes.push(0);
            }
        }
        elf.set_section_data(notes, bytes, 4);
        elf.write().unwrap()
    };
    let dump = file("bt-notes-dump.elf", &common::linux::elf());
    let dump = dump.to_str().unwrap();
    let id = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff, 0x00, 0x11, 0x22, 0x33,
    ];
    let same = file("bt-notes-vmlinux", &vmlinux(&id));
    let output = crashkit(&["bt", dump, "--kernel", same.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("build-id"), "{stderr}");
    assert_ne!(output.status.code(), Some(2), "{output:?}");
    let other = file("bt-notes-other-vmlinux", &vmlinux(&[0xab; 20]));
    let output = crashkit(&["bt", dump, "--kernel", other.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("its build-id abab"),
        "{output:?}"
    );
}
