//! `crashkit convert`'s files of a Linux guest's dump, read by the tools
//! nobody here wrote, must answer as the source does.
//!
//! The source is converted to every output `convert` writes: an ELF vmcore
//! (zero pages as holes, and as zero tails), a kdump-compressed file with each codec (raw, zlib, LZO1X, snappy, zstd)
//! and a flattened stream. Then, for each output:
//! - `makedumpfile --dump-dmesg` gives the source's log byte for byte (a
//!   flattened stream after `makedumpfile -R`; an ELF with zero tails with
//!   `--non-mmap`, see `answers`; Debian's makedumpfile is built without
//!   snappy and zstd, so those two are read by the others only, which is said
//!   in the summary);
//! - `crash --osrelease` gives the source's release, which is VMCOREINFO's
//!   `OSRELEASE` (never "unknown");
//! - libkdumpfile reads every page of the source's memory as the source
//!   gives it (`libkdumpfile_same_pages.py`: an ELF's left-out zero pages
//!   read as no data there);
//! - gdb shows the source's threads and registers (ELF outputs);
//! - crashkit gives the source's CPUs (PIDs, RIP, RSP, mode), crash time,
//!   release, panic line, memory ranges and page counts.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cli_check;
use crashkit_qemu::host::run;

/// The outputs: a file name and `convert`'s arguments.
const OUTPUTS: &[(&str, &[&str])] = &[
    ("convert.elf", &["--to", "elf"]),
    ("convert-zero-tails.elf", &["--to", "elf", "--zero-tails"]),
    ("convert-raw.kdump", &["--to", "kdump", "--codec", "raw"]),
    ("convert-zlib.kdump", &["--to", "kdump", "--codec", "zlib"]),
    ("convert-lzo.kdump", &["--to", "kdump", "--codec", "lzo"]),
    (
        "convert-snappy.kdump",
        &["--to", "kdump", "--codec", "snappy"],
    ),
    ("convert-zstd.kdump", &["--to", "kdump", "--codec", "zstd"]),
    ("convert-lzo.flat", &["--to", "flattened", "--codec", "lzo"]),
];

/// What the tools say about one dump.
#[derive(Debug, PartialEq)]
struct Answers {
    /// `makedumpfile --dump-dmesg`, `None` where it cannot read the codec.
    dmesg: Option<Vec<u8>>,
    /// `crash --osrelease`.
    release: String,
    /// gdb's threads and registers (ELF files).
    gdb: Option<String>,
    /// crashkit's `cpus --json` CPUs, without the fields a producer adds
    /// (crashkit's record states).
    cpus: Vec<Value>,
    /// crashkit's `info --json`, the fields that must carry over.
    info: Value,
}

/// Convert `source` (a Linux guest's dump; `elf` when it is an ELF) into
/// every output in `work` and check each against the source; a summary.
/// The outputs are deleted afterwards.
pub fn check(work: &Path, source: &Path, elf: bool) -> Result<String, String> {
    let crashkit = cli_check::crashkit()?;
    let codecs = makedumpfile_codecs()?;
    // makedumpfile 1.7.2 cannot read QEMU's ELF (it takes the program
    // headers to follow a 64-byte ELF header); there the source's log is
    // crashkit's, which the corpus checks against makedumpfile's on a copy
    // of the same memory.
    let (expected, log_from) = match answers(&crashkit, source, elf, work, true, false) {
        Ok(answers) => (answers, "makedumpfile's"),
        Err(why) if why.contains("--dump-dmesg") => {
            let mut answers = answers(&crashkit, source, elf, work, false, false)?;
            let path = source.to_str().ok_or("source path is not UTF-8")?;
            let log = cli_check::run(&crashkit, &["log", path])?;
            if !log.status.success() || log.stdout.is_empty() {
                return Err(format!(
                    "neither makedumpfile ({why}) nor crashkit log reads the source's log"
                ));
            }
            answers.dmesg = Some(log.stdout);
            (answers, "crashkit's (makedumpfile cannot read the source)")
        }
        Err(why) => return Err(why),
    };
    let release = expected
        .info
        .get("osrelease")
        .and_then(Value::as_str)
        .ok_or("the source has no OSRELEASE")?
        .to_owned();
    if expected.release != release {
        return Err(format!(
            "crash --osrelease says {:?} of the source, VMCOREINFO {release:?}",
            expected.release
        ));
    }
    let dmesg_lines = expected
        .dmesg
        .as_ref()
        .map_or(0, |log| log.split(|&b| b == b'\n').count());
    let mut readable = Vec::new();
    let mut skipped = Vec::new();
    let mut made = Vec::new();
    for &(name, args) in OUTPUTS {
        let out = work.join(name);
        let _ = std::fs::remove_file(&out);
        made.push(out.clone());
        let mut convert = vec!["convert"];
        convert.extend_from_slice(args);
        let source_arg = source.to_str().ok_or("source path is not UTF-8")?;
        let out_arg = out.to_str().ok_or("output path is not UTF-8")?;
        convert.extend_from_slice(&[source_arg, out_arg]);
        let output = cli_check::run(&crashkit, &convert)?;
        if !output.status.success() {
            return Err(format!(
                "crashkit {}: {}",
                convert.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        // The file the others read: a flattened stream reassembled.
        let plain = if name.ends_with(".flat") {
            let re = work.join(format!("{name}.reassembled"));
            let _ = std::fs::remove_file(&re);
            made.push(re.clone());
            let file = std::fs::File::open(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            run(Command::new("makedumpfile").arg("-R").arg(&re).stdin(file))?;
            // crash reads the stream itself too.
            let release = crash_release(&out)?;
            if release != expected.release {
                return Err(format!(
                    "{name}: crash --osrelease says {release:?}, the source {:?}",
                    expected.release
                ));
            }
            re
        } else {
            out.clone()
        };
        let codec = args.last().copied().unwrap_or("");
        let dmesg = codecs.iter().any(|c| c == codec) || !args.contains(&"--codec");
        let is_elf = args.contains(&"elf");
        let tails = args.contains(&"--zero-tails");
        let got = answers(&crashkit, &plain, is_elf, work, dmesg, tails)?;
        compare(name, &expected, &got, dmesg)?;
        if !dmesg {
            skipped.push(codec);
        }
        readable.push(plain);
    }
    let pages = same_pages(source, &expected.info, &readable)?;
    for path in made {
        let _ = std::fs::remove_file(path);
    }
    let not_read = if skipped.is_empty() {
        String::new()
    } else {
        format!(
            " (but {}: this makedumpfile is built without them)",
            skipped.join(" and ")
        )
    };
    let gdb = if elf {
        "gdb the source's threads and registers from the ELF, "
    } else {
        ""
    };
    Ok(format!(
        "convert to ELF, kdump (raw, zlib, lzo, snappy, zstd) and flattened: makedumpfile \
         --dump-dmesg gives the source's {dmesg_lines}-line log, {log_from}, from each{not_read}, \
         crash --osrelease {release} from each, {gdb}crashkit the same CPUs, PIDs, crash time, \
         panic line and pages; libkdumpfile: {pages}"
    ))
}

/// The codecs this makedumpfile decodes besides zlib (`makedumpfile -v`
/// lists `lzo enabled`, `snappy disabled`, ...), and `raw`.
fn makedumpfile_codecs() -> Result<Vec<String>, String> {
    let output = Command::new("makedumpfile")
        .arg("-v")
        .output()
        .map_err(|e| format!("makedumpfile -v: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut codecs = vec!["raw".to_owned(), "zlib".to_owned()];
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(codec), Some("enabled")) = (words.next(), words.next()) {
            codecs.push(codec.to_owned());
        }
    }
    Ok(codecs)
}

fn crash_release(dump: &Path) -> Result<String, String> {
    Ok(run(Command::new("crash").arg("--osrelease").arg(dump))?
        .trim()
        .to_owned())
}

/// What the tools answer on `dump`; `dmesg`: run makedumpfile, with
/// `--non-mmap` when `tails` (the file has zero tails: makedumpfile 1.7's
/// mmap path reads a tail as the file bytes that follow the segment's data,
/// which belong to the next segment).
fn answers(
    crashkit: &Path,
    dump: &Path,
    elf: bool,
    work: &Path,
    dmesg: bool,
    tails: bool,
) -> Result<Answers, String> {
    let dmesg = if dmesg {
        let log = work.join("convert-dmesg.txt");
        let _ = std::fs::remove_file(&log);
        run(Command::new("makedumpfile")
            .args(tails.then_some("--non-mmap"))
            .arg("--dump-dmesg")
            .arg(dump)
            .arg(&log))?;
        let bytes = std::fs::read(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let _ = std::fs::remove_file(&log);
        Some(bytes)
    } else {
        None
    };
    let gdb = if elf {
        let text = run(Command::new("gdb")
            .args(["-batch", "-nx", "-c"])
            .arg(dump)
            .args([
                "-ex",
                "info threads",
                "-ex",
                "thread apply all info registers",
            ]))?;
        if !text.contains("rip ") {
            return Err(format!(
                "{}: gdb shows no registers:\n{text}",
                dump.display()
            ));
        }
        Some(text)
    } else {
        None
    };
    let path = dump.to_str().ok_or("dump path is not UTF-8")?;
    let cpus = json(crashkit, &["cpus", "--json", path])?;
    let cpus = cpus["cpus"]
        .as_array()
        .ok_or("cpus --json has no cpus")?
        .iter()
        .map(|cpu| {
            let mut kept = serde_json::Map::new();
            for key in ["cpu", "pid", "rip", "rsp", "cpl", "mode"] {
                kept.insert(key.into(), cpu[key].clone());
            }
            Value::Object(kept)
        })
        .collect();
    let all = json(crashkit, &["info", "--json", path])?;
    let mut info = serde_json::Map::new();
    for key in ["osrelease", "crash_time", "cpus", "panic_message", "memory"] {
        info.insert(key.into(), all[key].clone());
    }
    // An ELF leaves zero pages out and a kdump file keeps them: what
    // carries over is the count of pages with contents.
    let pages = &all["pages"];
    let count = |key: &str| pages[key].as_u64().unwrap_or(0);
    info.insert(
        "pages with contents".into(),
        Value::from(count("present") + count("zero")),
    );
    for key in ["excluded", "lost", "in_parts_not_given"] {
        info.insert(key.into(), pages[key].clone());
    }
    Ok(Answers {
        dmesg,
        release: crash_release(dump)?,
        gdb,
        cpus,
        info: Value::Object(info),
    })
}

fn json(crashkit: &Path, args: &[&str]) -> Result<Value, String> {
    let output = cli_check::run(crashkit, args)?;
    if !output.status.success() {
        return Err(format!(
            "crashkit {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("crashkit {}: not JSON: {e}", args.join(" ")))
}

fn compare(name: &str, expected: &Answers, got: &Answers, dmesg: bool) -> Result<(), String> {
    if dmesg && got.dmesg != expected.dmesg {
        return Err(format!(
            "{name}: makedumpfile --dump-dmesg gives another log ({} bytes, the source's {})",
            got.dmesg.as_ref().map_or(0, Vec::len),
            expected.dmesg.as_ref().map_or(0, Vec::len)
        ));
    }
    if got.release != expected.release {
        return Err(format!(
            "{name}: crash --osrelease says {:?}, the source {:?}",
            got.release, expected.release
        ));
    }
    if let (Some(got), Some(expected)) = (&got.gdb, &expected.gdb)
        && got != expected
    {
        return Err(format!(
            "{name}: gdb shows other threads or registers:\n{got}\nthe source's:\n{expected}"
        ));
    }
    if got.cpus != expected.cpus {
        return Err(format!(
            "{name}: crashkit's CPUs {:?}, the source's {:?}",
            got.cpus, expected.cpus
        ));
    }
    if got.info != expected.info {
        return Err(format!(
            "{name}: crashkit info {}, the source's {}",
            got.info, expected.info
        ));
    }
    Ok(())
}

/// libkdumpfile's pages of every file against the source's.
fn same_pages(source: &Path, info: &Value, outputs: &[PathBuf]) -> Result<String, String> {
    let ranges: Vec<String> = info["memory"]
        .as_array()
        .ok_or("info --json has no memory")?
        .iter()
        .map(|r| {
            format!(
                "{:x}-{:x}",
                r["start"].as_u64().unwrap_or(0),
                r["end"].as_u64().unwrap_or(0)
            )
        })
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/libkdumpfile_same_pages.py");
    let text = run(Command::new("/usr/bin/python3")
        .arg(script)
        .arg(source)
        .arg(ranges.join(","))
        .args(outputs))?;
    // One line per output, in OUTPUTS' order: the two ELF files' counts
    // (zero pages held, then left out as tails), then the kdump files'.
    let counts: Vec<&str> = text
        .lines()
        .map(|line| line.rsplit_once(": ").map_or(line, |(_, counts)| counts))
        .collect();
    match counts.as_slice() {
        [holes, tails, kdumps @ ..] => Ok(format!(
            "ELF {holes}; ELF with zero tails {tails}; {} kdump-compressed files with every page",
            kdumps.len()
        )),
        _ => Err(format!(
            "libkdumpfile_same_pages.py said too little:\n{text}"
        )),
    }
}
