//! `crashkit triage` over a directory of 100 dumps, against a script that
//! runs `crashkit --json info` on each file, and against drgn where it can
//! answer (docs/benchmarks.md, "triage").
//!
//! The set: the dumps of the two corpora `cargo xtask test` makes (the
//! crashed test kernel: QEMU's ELF and kdump files and crashkit's ELF of
//! three crashes; the crashed Linux guest: QEMU's, makedumpfile's and
//! Linux's own /proc/vmcore dumps of SysRq-c on five boots, `/init`
//! exiting and an NMI; split parts and cut files left out), linked (hard
//! links, the same files) in turn under 100 names in one directory of the
//! cache.
//!
//! Measured, pinned to one core, whole processes, interleaved per round:
//! - `crashkit --json triage DIR --kernel ELF` (the test kernel's ELF, for
//!   its dumps' frames);
//! - `sh -c 'for f in DIR/*; do crashkit --json info "$f"; done'`;
//! - on the Linux dumps drgn opens (its kdump reading is libkdumpfile's,
//!   which does not read flattened files), Debian's drgn opening each
//!   with `set_core_dump` and reading its platform: all drgn can answer
//!   without the kernel's debug information (no panic message, no stack:
//!   those need its types); beside `crashkit --json triage` of the same
//!   files. crash cannot start without a vmlinux with debug information,
//!   which the corpus does not have (Debian's is 5.6 GB): it answers
//!   nothing here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cli::{Sample, sample};

/// Dumps in the set.
pub const DUMPS: usize = 100;

/// The corpora's dumps, in a stable order.
fn corpus_dumps(cache: &Path) -> Result<Vec<PathBuf>, String> {
    let corpus = cache.join("corpus");
    let mut dumps = Vec::new();
    let mut add = |dir: PathBuf, keep: &dyn Fn(&str) -> bool| -> Result<(), String> {
        let read = std::fs::read_dir(&dir).map_err(|e| {
            format!(
                "{}: {e} (`cargo xtask test` makes the corpora)",
                dir.display()
            )
        })?;
        let mut found: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(keep))
            .collect();
        found.sort();
        dumps.extend(found);
        Ok(())
    };
    for case in ["panic-bsp-smp4", "panic-ap-smp2", "unresponsive-smp2"] {
        add(corpus.join("test-kernel").join(case), &|name| {
            name == "crashkit.vmcore"
                || name == "qemu.elf"
                || (name.starts_with("qemu-") && name.ends_with(".flat"))
        })?;
    }
    for guest in [
        "linux-kaslr",
        "linux-nokaslr",
        "linux-no-vmcoreinfo",
        "linux-la57",
        "linux-proc-vmcore",
        "linux-init-exit",
        "linux-nmi",
    ] {
        add(corpus.join("linux").join(guest), &|name| {
            [".elf", ".flat", ".kdump"]
                .iter()
                .any(|e| name.ends_with(e))
                && !name.contains("cut")
        })?;
    }
    if dumps.is_empty() {
        return Err("the corpora hold no dumps (`cargo xtask test` makes them)".into());
    }
    Ok(dumps)
}

/// The set's directory: [`DUMPS`] names, the corpus dumps in turn.
fn make_set(cache: &Path, dumps: &[PathBuf]) -> Result<(PathBuf, Vec<(PathBuf, PathBuf)>), String> {
    let dir = cache.join("triage-bench").join(format!("set-{DUMPS}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut links = Vec::with_capacity(DUMPS);
    for n in 0..DUMPS {
        let source = &dumps[n % dumps.len()];
        let parent = source
            .parent()
            .and_then(Path::file_name)
            .and_then(|p| p.to_str())
            .unwrap_or("dump");
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("dump");
        let link = dir.join(format!("{n:03}-{parent}-{name}"));
        std::fs::hard_link(source, &link)
            .map_err(|e| format!("linking {} to {}: {e}", source.display(), link.display()))?;
        links.push((link, source.clone()));
    }
    Ok((dir, links))
}

/// The drgn peer: open every file given, read its platform; fails on the
/// first it cannot open.
const DRGN: &str = "import sys, drgn\n\
                    for path in sys.argv[1:]:\n    \
                    prog = drgn.Program()\n    \
                    prog.set_core_dump(path)\n    \
                    prog.platform\n";

/// Whether drgn opens `path`.
fn drgn_opens(path: &Path) -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", DRGN])
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What `triage` and the `info` script answer about the set: dumps with a
/// panic message, and with frames in their signature.
fn answers(
    crashkit: &Path,
    dir: &Path,
    kernel: &Path,
    files: &[PathBuf],
) -> Result<String, String> {
    let json = |args: &[&std::ffi::OsStr]| -> Result<serde_json::Value, String> {
        let out = Command::new(crashkit)
            .args(args)
            .output()
            .map_err(|e| format!("crashkit: {e}"))?;
        serde_json::from_slice(&out.stdout).map_err(|e| format!("crashkit {args:?}: {e}"))
    };
    let triage = json(&[
        "--json".as_ref(),
        "triage".as_ref(),
        dir.as_os_str(),
        "--kernel".as_ref(),
        kernel.as_os_str(),
    ])?;
    let rows = triage["triage"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let messages = rows
        .iter()
        .filter(|r| r["panic_message"].is_string())
        .count();
    let frames = rows
        .iter()
        .filter(|r| r["signature"].as_str().is_some_and(|s| s.contains(" @ ")))
        .count();
    let groups = triage["triage"]["groups"].as_array().map_or(0, Vec::len);
    let mut info_messages = 0;
    for file in files {
        let info = json(&["--json".as_ref(), "info".as_ref(), file.as_os_str()])?;
        if info["panic_message"].is_string() {
            info_messages += 1;
        }
    }
    Ok(format!(
        "What they answer: `triage` gives {} rows, {messages} with a panic message and {frames} with frames in their signature, in {groups} signatures; `info` gives a panic message for {info_messages} (not for QEMU's dumps of a crashkit kernel, whose crash record only a scan of memory finds) and no signature; drgn opens the Linux dumps it reads and, without the kernel's debug information, gives neither.\n\n",
        rows.len()
    ))
}

/// Median, minimum and maximum of `samples`' wall times, and the largest
/// peak memory.
fn summary(samples: &[Sample]) -> (Duration, Duration, Duration, u64) {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort_unstable();
    let rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    (
        walls[walls.len() / 2],
        walls[0],
        walls[walls.len() - 1],
        rss,
    )
}

/// Make the set, measure `rounds` rounds; the Markdown report.
pub fn run(cache: &Path, crashkit: &Path, rounds: usize) -> Result<String, String> {
    let cache = std::path::absolute(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let dumps = corpus_dumps(&cache)?;
    let (dir, links) = make_set(&cache, &dumps)?;
    crate::kdump::pin_to_one_core()?;
    let files: Vec<PathBuf> = links.iter().map(|(l, _)| l.clone()).collect();
    // What drgn can open, decided once per source dump.
    let linux: Vec<&PathBuf> = dumps
        .iter()
        .filter(|d| d.components().any(|c| c.as_os_str() == "linux"))
        .collect();
    let opened: Vec<&PathBuf> = linux.iter().copied().filter(|d| drgn_opens(d)).collect();
    let drgn_files: Vec<PathBuf> = links
        .iter()
        .filter(|(_, source)| opened.contains(&source))
        .map(|(link, _)| link.clone())
        .collect();
    if drgn_files.is_empty() {
        return Err("drgn opens none of the Linux dumps".into());
    }
    // The test kernel's ELF names its dumps' frames (Linux dumps do not
    // use it: their build-id is not its).
    let kernel = cache.join("corpus/test-kernel/kernel.elf");
    let triage_all = || {
        let mut c = Command::new(crashkit);
        c.args(["--json", "triage"])
            .arg(&dir)
            .arg("--kernel")
            .arg(&kernel)
            .args(["--debug-dir", "/nonexistent"]);
        c
    };
    let info_script = || {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("for f in \"$@\"; do \"$CRASHKIT\" --json info \"$f\" >/dev/null 2>&1; done")
            .arg("sh")
            .args(&files)
            .env("CRASHKIT", crashkit);
        c
    };
    let triage_drgn = || {
        let mut c = Command::new(crashkit);
        c.args(["--json", "triage"])
            .args(&drgn_files)
            .args(["--debug-dir", "/nonexistent"]);
        c
    };
    let drgn = || {
        let mut c = Command::new("/usr/bin/python3");
        c.args(["-c", DRGN]).args(&drgn_files);
        c
    };
    // What each answers, counted once (unmeasured).
    let answered = answers(crashkit, &dir, &kernel, &files)?;
    // One unmeasured run of each: the files in the page cache.
    for mut command in [triage_all(), info_script(), triage_drgn(), drgn()] {
        sample(&mut command)?;
    }
    let mut measured: [Vec<Sample>; 4] = Default::default();
    for _ in 0..rounds {
        for (at, mut command) in [triage_all(), info_script(), triage_drgn(), drgn()]
            .into_iter()
            .enumerate()
        {
            measured[at].push(sample(&mut command)?);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let row = |what: &str, n: usize, s: &[Sample], base: Option<Duration>| {
        let (median, low, high, rss) = summary(s);
        let ratio = base.map_or("-".to_owned(), |b| {
            format!("{:.2}x", median.as_secs_f64() / b.as_secs_f64())
        });
        format!(
            "| {what} | {n} | {:.0} ms ({:.0}..{:.0}) | {:.1} ms | {:.1} MiB | {ratio} |",
            ms(median),
            ms(low),
            ms(high),
            ms(median) / n as f64,
            rss as f64 / 1024.0
        )
    };
    let triage_median = summary(&measured[0]).0;
    let triage_drgn_median = summary(&measured[2]).0;
    let mut out = String::new();
    out.push_str(&format!(
        "triage benchmark: {DUMPS} dumps (hard links to {} corpus dumps, in turn) in {}; {} of them Linux dumps drgn opens; {rounds} rounds, one core\n\n",
        dumps.len(),
        dir.display(),
        drgn_files.len()
    ));
    out.push_str(&answered);
    out.push_str("| contender | dumps | wall: median (min..max) | per dump | peak memory | / triage |\n|---|---|---|---|---|---|\n");
    out.push_str(&row(
        "`crashkit --json triage DIR`",
        DUMPS,
        &measured[0],
        None,
    ));
    out.push('\n');
    out.push_str(&row(
        "script: `crashkit --json info` per file",
        DUMPS,
        &measured[1],
        Some(triage_median),
    ));
    out.push('\n');
    out.push_str(&row(
        "`crashkit --json triage` of drgn's files",
        drgn_files.len(),
        &measured[2],
        None,
    ));
    out.push('\n');
    out.push_str(&row(
        "drgn: open each (no panic message or stack without debug info)",
        drgn_files.len(),
        &measured[3],
        Some(triage_drgn_median),
    ));
    out.push('\n');
    Ok(out)
}
