//! Every `crashkit` command over every dump of the corpora, as a user runs
//! them: the release binary next to this runner (`cargo xtask test` builds
//! it first), each command's exit code, its JSON, and what it says checked
//! against the crash itself: the crash record in guest RAM and guest RAM's
//! own bytes.
//!
//! Per dump (a file, or a split dump's parts joined by commas): `info` and
//! `--json info` (no warning; the format and producer expected; CPUs),
//! `cpus` and `--json cpus` (the CPU count; with `--scan` for another
//! producer's dump of the test kernel, every CPU's state as the record in
//! RAM has it), `regs` of each CPU, `record` (the test kernel: found in the
//! note or by scanning, at the record's address, with the owner the record
//! in RAM names; Linux: none, exit 1), `rd -p` of sample pages against
//! guest RAM (a page the dump has must read as RAM has it; at least one
//! must), and `verify` (ok).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crashkit_dump_format::PAGE_SIZE;

/// What the crash was, to check the commands' answers against.
#[derive(Debug)]
pub struct Crash<'r> {
    /// Guest RAM, flat from physical address 0.
    pub ram: &'r [u8],
    /// CPUs the guest had.
    pub cpus: usize,
    /// The test kernel's crash record in RAM: its address, owner and each
    /// CPU's state (`Debug` name). `None` for Linux.
    pub record: Option<Record>,
    /// Virtual addresses and the physical ones the guest's own layout
    /// gives them (Linux's direct map and kernel image; the test kernel's
    /// identity map), for `rd` without `-p` and `vtop`.
    pub virtual_pages: Vec<(u64, u64)>,
    /// The kernel log as `makedumpfile --dump-dmesg` prints it (Linux);
    /// `None` for a kernel without one (`log` must then refuse, exit 1).
    pub log: Option<String>,
    /// A Linux guest's own `/proc/kallsyms` and console: `sym`, symbolic
    /// `rd` and the panicking CPU are checked against them
    /// ([`crate::kallsyms::check`]).
    pub symbols: Option<&'r crate::kallsyms::Truth>,
}

/// The crash record as guest RAM has it.
#[derive(Debug)]
pub struct Record {
    /// Its physical address.
    pub address: u64,
    /// The panic owner.
    pub owner: u32,
    /// Each CPU's state, by index, for the CPUs the platform has.
    pub states: Vec<String>,
}

/// One dump to check: its argument and what its producer and format are.
#[derive(Debug)]
pub struct Dump<'a> {
    /// The files (comma-joined parts for a split dump).
    pub files: &'a [PathBuf],
    /// `format` as `info --json` says it.
    pub format: &'static str,
    /// `producer` as `info --json` says it, then ` from ` and its
    /// `made_from` where it has one (`makedumpfile from qemu`).
    pub producer: &'static str,
    /// Whether the crash record is in a note (crashkit's dumps and the
    /// files makedumpfile made of them) rather than only in memory.
    pub record_note: bool,
}

/// The `crashkit` release binary next to this runner.
pub fn crashkit() -> Result<PathBuf, String> {
    let path = std::env::current_exe()
        .map_err(|e| format!("where this runner is: {e}"))?
        .with_file_name("crashkit");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing (`cargo build --release -p crashkit-cli`; `cargo xtask test` builds it)",
            path.display()
        ))
    }
}

/// Run `crashkit` with `args`; its output, whatever the exit code.
pub(crate) fn run(crashkit: &Path, args: &[&str]) -> Result<Output, String> {
    Command::new(crashkit)
        .args(args)
        .output()
        .map_err(|e| format!("crashkit {args:?}: {e}"))
}

/// Run `args`, which must exit with `code` and print no warning; its
/// standard output.
fn expect(crashkit: &Path, args: &[&str], code: i32) -> Result<Vec<u8>, String> {
    let output = run(crashkit, args)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() != Some(code) {
        return Err(format!(
            "crashkit {}: exit {:?}, not {code}: {stderr}",
            args.join(" "),
            output.status.code()
        ));
    }
    if !stderr.is_empty() {
        return Err(format!(
            "crashkit {}: said on stderr: {stderr}",
            args.join(" ")
        ));
    }
    Ok(output.stdout)
}

fn json(crashkit: &Path, args: &[&str], code: i32) -> Result<Value, String> {
    let stdout = expect(crashkit, args, code)?;
    let value: Value = serde_json::from_slice(&stdout)
        .map_err(|e| format!("crashkit {}: not JSON: {e}", args.join(" ")))?;
    if value["schema"] != 1 {
        return Err(format!("crashkit {}: no schema 1", args.join(" ")));
    }
    Ok(value)
}

/// Check every command on `dump` against `crash`; a one-line summary.
pub fn check(crashkit: &Path, dump: &Dump<'_>, crash: &Crash<'_>) -> Result<String, String> {
    let argument = dump
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let arg = argument.as_str();
    let fail = |what: String| format!("crashkit on {arg}: {what}");

    expect(crashkit, &["info", arg], 0)?;
    let info = json(crashkit, &["--json", "info", arg], 0)?;
    // `producer`, then ` from ` and `made_from` when the JSON has one.
    let producer = match (info["producer"].as_str(), info["made_from"].as_str()) {
        (Some(producer), Some(from)) => format!("{producer} from {from}"),
        (Some(producer), None) => producer.to_owned(),
        (None, _) => String::new(),
    };
    if info["format"] != dump.format || producer != dump.producer {
        return Err(fail(format!(
            "info says {} by {producer:?}, not {} by {:?}",
            info["format"], dump.format, dump.producer
        )));
    }
    if info["cpus"] != crash.cpus {
        return Err(fail(format!(
            "info: {} CPUs, not {}",
            info["cpus"], crash.cpus
        )));
    }

    expect(crashkit, &["cpus", arg], 0)?;
    let scan = crash.record.is_some() && !dump.record_note;
    let mut cpus_args = vec!["--json", "cpus", arg];
    if scan {
        cpus_args.push("--scan");
    }
    let cpus = json(crashkit, &cpus_args, 0)?;
    let lines = cpus["cpus"].as_array().cloned().unwrap_or_default();
    let noted = lines.iter().filter(|l| !l["cpu"].is_null()).count();
    if noted != crash.cpus {
        return Err(fail(format!(
            "cpus: {noted} CPUs with notes, not {}",
            crash.cpus
        )));
    }
    if let Some(record) = &crash.record {
        for line in &lines {
            let index = line["index"].as_u64().unwrap_or(u64::MAX) as usize;
            let want = record.states.get(index).map(String::as_str);
            if line["state"].as_str() != want {
                return Err(fail(format!(
                    "cpus: CPU {index} is {}, the record in RAM says {want:?}",
                    line["state"]
                )));
            }
            if line["panicking"] != (index as u32 == record.owner) {
                return Err(fail(format!(
                    "cpus: CPU {index} panicking is {}",
                    line["panicking"]
                )));
            }
        }
    }
    for cpu in 0..crash.cpus {
        expect(crashkit, &["regs", arg, &cpu.to_string()], 0)?;
    }

    let record_json = json(
        crashkit,
        &["--json", "record", arg],
        if crash.record.is_some() { 0 } else { 1 },
    )?;
    let records = record_json["record"]["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut said = String::new();
    match &crash.record {
        Some(record) => {
            let first = records.first().ok_or_else(|| fail("record: none".into()))?;
            let (by, address) = (first["found_by"].as_str(), first["address"].as_u64());
            let (want_by, want_address) = if dump.record_note {
                (Some("note"), None)
            } else {
                (Some("scan"), Some(record.address))
            };
            if by != want_by || address != want_address || records.len() != 1 {
                return Err(fail(format!(
                    "record: {} found, first by {by:?} at {address:?}; expected one by \
                     {want_by:?} at {want_address:?}",
                    records.len()
                )));
            }
            if first["panic"]["owner_cpu"] != record.owner {
                return Err(fail(format!(
                    "record: owner {}, RAM's record says {}",
                    first["panic"]["owner_cpu"], record.owner
                )));
            }
            said.push_str(&format!("record by {}", want_by.unwrap_or("?")));
        }
        None => {
            if !records.is_empty() {
                return Err(fail("record: found one in a Linux dump".into()));
            }
            said.push_str("no record (Linux)");
        }
    }

    let log = run(crashkit, &["log", arg])?;
    match &crash.log {
        Some(expected) => {
            if log.status.code() != Some(0) || log.stdout != expected.as_bytes() {
                return Err(fail(format!(
                    "log (exit {:?}) differs from makedumpfile --dump-dmesg: {}",
                    log.status.code(),
                    String::from_utf8_lossy(&log.stderr)
                )));
            }
            said.push_str(", log as expected");
        }
        // A crashkit kernel's dump: its crash log needs the kernel's ELF
        // (`--kernel`; the crash log check gives it), and says so.
        None if log.status.code() != Some(2)
            || !String::from_utf8_lossy(&log.stderr).contains("need the kernel's ELF") =>
        {
            return Err(fail(format!(
                "log without --kernel: exit {:?}, not 2 saying it needs the kernel's ELF: {}",
                log.status.code(),
                String::from_utf8_lossy(&log.stderr)
            )));
        }
        None => said.push_str(", log asks for the kernel's ELF"),
    }
    let (compared, absent) = sample_pages(crashkit, arg, crash.ram)?;
    let (virtual_compared, virtual_absent) = virtual_pages(crashkit, arg, crash)?;
    let verify = json(crashkit, &["--json", "verify", arg], 0)?;
    if verify["verify"]["ok"] != true {
        return Err(fail(format!("verify: {}", verify["verify"])));
    }
    if let Some(truth) = crash.symbols {
        let line = crate::kallsyms::check(crashkit, arg, truth, crash.ram)?;
        said.push_str(&format!(", {line}"));
    }
    Ok(format!(
        "info, cpus, regs x{}, {said}, rd -p ({compared} pages equal to RAM, {absent} not in the dump), \
         vtop and rd ({virtual_compared} virtual pages equal to RAM, {virtual_absent} not in the dump), verify",
        crash.cpus
    ))
}

/// `record`, `cpus` and `rd -p` with `--ram` on QEMU's RAM file (the
/// guest's file-backed memory, `ram_path`, whose bytes are `crash.ram`):
/// one record, found by scanning at the address the RAM's own scan found,
/// with the owner and every CPU's state of that record; sampled pages equal
/// to RAM; a page past the end a hole; a dump given with `--ram` refused.
pub fn ram(
    crashkit: &Path,
    ram_path: &Path,
    dump: &Path,
    crash: &Crash<'_>,
) -> Result<String, String> {
    let arg = ram_path
        .to_str()
        .ok_or("the RAM file's path is not UTF-8")?;
    let fail = |what: String| format!("crashkit --ram {arg}: {what}");
    let record = crash
        .record
        .as_ref()
        .ok_or_else(|| fail("no record in RAM to compare with".into()))?;
    expect(crashkit, &["record", "--ram", arg], 0)?;
    let found = json(crashkit, &["--json", "record", "--ram", arg], 0)?;
    let records = found["record"]["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match records.as_slice() {
        [one]
            if one["found_by"] == "scan"
                && one["address"] == record.address
                && one["panic"]["owner_cpu"] == record.owner => {}
        other => {
            return Err(fail(format!(
                "record: {other:?}; expected one, by scan at {:#x}, owner {}",
                record.address, record.owner
            )));
        }
    }
    let cpus = json(crashkit, &["--json", "cpus", "--ram", arg], 0)?;
    let lines = cpus["cpus"].as_array().cloned().unwrap_or_default();
    for (index, want) in record.states.iter().enumerate() {
        let line = lines
            .iter()
            .find(|line| line["index"].as_u64() == Some(index as u64))
            .ok_or_else(|| fail(format!("cpus: no line for CPU {index}")))?;
        if line["state"].as_str() != Some(want.as_str())
            || line["panicking"] != (index as u32 == record.owner)
        {
            return Err(fail(format!(
                "cpus: CPU {index} is {} (panicking {}), the record says {want}",
                line["state"], line["panicking"]
            )));
        }
    }
    let (compared, absent) = sample_pages_with(crashkit, &["--ram"], arg, crash.ram)?;
    if absent != 0 {
        return Err(fail(format!(
            "rd -p: {absent} sampled pages not in the image"
        )));
    }
    let past = format!("{:#x}", crash.ram.len());
    let beyond = json(
        crashkit,
        &["--json", "rd", "--ram", arg, "-p", &past, "16"],
        0,
    )?;
    if beyond["rd"][0]["state"] != "hole" {
        return Err(fail(format!(
            "rd -p {past} (past the end): {}",
            beyond["rd"]
        )));
    }
    let dump_arg = dump.to_str().ok_or("the dump's path is not UTF-8")?;
    let refused = run(crashkit, &["record", "--ram", dump_arg])?;
    if refused.status.code() != Some(3)
        || !String::from_utf8_lossy(&refused.stderr).contains("not a raw RAM image")
    {
        return Err(format!(
            "crashkit record --ram {dump_arg} (a dump): exit {:?}, {}",
            refused.status.code(),
            String::from_utf8_lossy(&refused.stderr)
        ));
    }
    Ok(format!(
        "--ram on QEMU's RAM file: record by scan at {:#x}, cpus with {} states, rd -p ({compared} pages equal), a dump refused",
        record.address,
        record.states.len()
    ))
}

/// The bytes of an `rd --json` run, from its `hex`.
fn hex_bytes(run: &Value) -> Vec<u8> {
    let hex = run["hex"].as_str().unwrap_or("");
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// `rd -p` of 32 pages spread over guest RAM (and the record's page): a
/// page the dump has reads as RAM has it. The pages equal and absent.
fn sample_pages(crashkit: &Path, arg: &str, ram: &[u8]) -> Result<(u32, u32), String> {
    sample_pages_with(crashkit, &[], arg, ram)
}

/// [`sample_pages`] with `flags` before the dump's name (`--ram`).
fn sample_pages_with(
    crashkit: &Path,
    flags: &[&str],
    arg: &str,
    ram: &[u8],
) -> Result<(u32, u32), String> {
    let pages = ram.len() as u64 / PAGE_SIZE;
    let (mut compared, mut absent) = (0u32, 0u32);
    for index in 0..32u64 {
        // Spread, and off the first page of each stretch.
        let phys = (pages * index / 32 + index) * PAGE_SIZE;
        let Some(expected) = ram.get(phys as usize..(phys + PAGE_SIZE) as usize) else {
            continue;
        };
        let phys_text = format!("{phys:#x}");
        let mut args = vec!["--json", "rd"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[arg, "-p", &phys_text, "4096"]);
        let value = json(crashkit, &args, 0)?;
        let runs = value["rd"].as_array().cloned().unwrap_or_default();
        match runs.as_slice() {
            [run] if run["hex"].is_string() => {
                if hex_bytes(run) != expected {
                    return Err(format!(
                        "crashkit rd {arg} -p {phys:#x}: differs from guest RAM"
                    ));
                }
                compared += 1;
            }
            [run] if matches!(run["state"].as_str(), Some("excluded" | "lost" | "hole")) => {
                absent += 1;
            }
            other => {
                return Err(format!(
                    "crashkit rd {arg} -p {phys:#x}: unexpected runs {other:?}"
                ));
            }
        }
    }
    if compared == 0 {
        return Err(format!("crashkit rd {arg}: no sampled page is in the dump"));
    }
    Ok((compared, absent))
}

/// `vtop` and `rd` without `-p` of each of the crash's virtual pages: the
/// walk ends at the physical address the guest's layout gives, and the
/// page reads as RAM has it there, or the dump does not have the page (or
/// a table on the way). At least one must read.
fn virtual_pages(crashkit: &Path, arg: &str, crash: &Crash<'_>) -> Result<(u32, u32), String> {
    let (mut compared, mut absent) = (0u32, 0u32);
    for &(virt, phys) in &crash.virtual_pages {
        let Some(expected) = crash.ram.get(phys as usize..(phys + PAGE_SIZE) as usize) else {
            continue;
        };
        let virt_text = format!("{virt:#x}");
        let output = run(crashkit, &["--json", "vtop", arg, &virt_text])?;
        let vtop: Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("crashkit vtop {arg} {virt_text}: not JSON: {e}"))?;
        let result = vtop["vtop"]["result"].as_str().unwrap_or("");
        match (result, output.status.code()) {
            ("mapped", Some(0)) => {
                if vtop["vtop"]["phys"] != phys {
                    return Err(format!(
                        "crashkit vtop {arg} {virt_text}: {}, not {phys:#x}",
                        vtop["vtop"]["phys"]
                    ));
                }
            }
            ("table not in the dump", Some(1)) => {
                absent += 1;
                continue;
            }
            other => {
                return Err(format!(
                    "crashkit vtop {arg} {virt_text}: {other:?}: {}",
                    vtop["vtop"]
                ));
            }
        }
        let value = json(crashkit, &["--json", "rd", arg, &virt_text, "4096"], 0)?;
        let runs = value["rd"].as_array().cloned().unwrap_or_default();
        match runs.as_slice() {
            [run] if run["hex"].is_string() => {
                if hex_bytes(run) != expected || run["phys"] != phys {
                    return Err(format!(
                        "crashkit rd {arg} {virt_text}: differs from guest RAM at {phys:#x}"
                    ));
                }
                compared += 1;
            }
            [run] if matches!(run["state"].as_str(), Some("excluded" | "lost" | "hole")) => {
                absent += 1;
            }
            other => {
                return Err(format!(
                    "crashkit rd {arg} {virt_text}: unexpected runs {other:?}"
                ));
            }
        }
    }
    if compared == 0 {
        return Err(format!("crashkit rd {arg}: no virtual page read"));
    }
    Ok((compared, absent))
}

/// `crashkit bt -a` on the ELF dump `dump` of the test kernel `kernel`:
/// every CPU's frames are the ones gdb unwinds from the same notes with
/// the same ELF (`thread apply all bt`: each of crashkit's frame
/// addresses, in order, is gdb's), the CPU numbered `panicking` (as `cpus`
/// and `bt` number CPUs: the record's index in the test kernel's dumps)
/// goes through the panic handler, and the CPUs numbered `parked` (stopped
/// CPUs in a dump taken after the shootdown) are in the shootdown's stop
/// handler.
///
/// Where the NMI stub switched stacks downwards (the NMI's IST stack lies
/// above the interrupted stack), gdb stops with "previous frame inner to
/// this frame" after the stub: it takes a lower CFA for a corrupt stack.
/// crashkit goes on; there gdb's frames must be the start of crashkit's,
/// and crashkit's next frame must be the interrupted code: the RIP the
/// shootdown saved in the crash record for that CPU (found in memory).
pub fn backtraces(
    crashkit: &Path,
    dump: &Path,
    kernel: &Path,
    panicking: usize,
    parked: &[usize],
) -> Result<String, String> {
    let dump_arg = dump.to_str().ok_or("path is not UTF-8")?;
    let kernel_arg = kernel.to_str().ok_or("path is not UTF-8")?;
    // A dump without a build-id warns on stderr: allowed here. Exit 1
    // says a backtrace stopped before its stack's start, and only then.
    let output = run(
        crashkit,
        &["--json", "bt", "-a", dump_arg, "--kernel", kernel_arg],
    )?;
    let value: Value = serde_json::from_slice(&output.stdout).map_err(|e| format!("bt: {e}"))?;
    let early = value["bt"]
        .as_array()
        .is_some_and(|traces| traces.iter().any(|t| t["complete"] != true));
    // The test kernel's stacks start where it was entered: the boot CPU's
    // in the PVH entry, which zeroes RBP (the psABI's deepest frame); the
    // APs' at the trampoline's call. Every stack must get there.
    if early {
        return Err(format!(
            "bt -a: a backtrace stopped early: {}",
            value["bt"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["complete"] != true)
                .map(|t| format!("CPU {}: {}", t["cpu"], t["stopped"]))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if output.status.code() != Some(if early { 1 } else { 0 }) {
        return Err(format!(
            "bt: exit {:?} with{} a backtrace that stopped early: {}",
            output.status.code(),
            if early { "" } else { "out" },
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let traces = value["bt"].as_array().cloned().unwrap_or_default();
    let cpus = json(crashkit, &["--json", "cpus", dump_arg], 0)?;
    let output = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            "thread apply all bt",
            kernel_arg,
            dump_arg,
        ])
        .output()
        .map_err(|e| format!("gdb: {e}"))?;
    let gdb = String::from_utf8_lossy(&output.stdout);
    // gdb's frames with an address, per LWP (the notes' pr_pid).
    let mut by_pid: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    let mut stopped_inner = std::collections::BTreeSet::new();
    let mut frame0_at_pc = std::collections::BTreeSet::new();
    let mut current = None;
    for line in gdb.lines() {
        if let Some(rest) = line.strip_prefix("Thread ")
            && let Some(lwp) = rest.split("(LWP ").nth(1)
        {
            current = lwp.trim_end_matches("):").parse::<u64>().ok();
            continue;
        }
        if line.starts_with("Backtrace stopped: previous frame inner to this frame")
            && let Some(pid) = current
        {
            stopped_inner.insert(pid);
            continue;
        }
        if let (Some(pid), Some(rest)) = (current, line.strip_prefix('#'))
            && let Some(address) = rest.split_whitespace().nth(1)
            && let Some(hex) = address.strip_prefix("0x")
            && let Ok(address) = u64::from_str_radix(hex, 16)
        {
            by_pid.entry(pid).or_default().push(address);
        } else if let (Some(pid), Some(rest)) = (current, line.strip_prefix("#0 ")) {
            // gdb prints frame 0 without its address when the pc starts a
            // line of the line table: that frame is at the thread's pc.
            let _ = rest;
            frame0_at_pc.insert(pid);
        }
    }
    // The record's saved RIPs, by CPU index (the test kernel's indices are
    // QEMU's CPU order, which is the notes' order).
    let saved_rips: Vec<Option<u64>> = json(crashkit, &["--json", "record", "--scan", dump_arg], 0)
        .ok()
        .and_then(|record| record["record"]["records"][0]["cpus"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|cpu| {
            cpu["registers"].as_array().and_then(|registers| {
                registers
                    .iter()
                    .find(|pair| pair[0] == "rip")
                    .and_then(|pair| pair[1].as_u64())
            })
        })
        .collect();
    let mut frames_total = 0;
    let mut past_gdb = 0;
    // `cpus` and `bt` number CPUs alike (the record's index where the
    // notes carry it, else the place in the notes): a trace's `cpu` is that
    // number, the record's index in the test kernel's dumps.
    let line_of = |number: usize| {
        cpus["cpus"]
            .as_array()
            .and_then(|lines| {
                lines
                    .iter()
                    .find(|l| l["cpu"].as_u64() == Some(number as u64))
            })
            .cloned()
            .unwrap_or(Value::Null)
    };
    for trace in &traces {
        let place = trace["cpu"].as_u64().unwrap_or(u64::MAX) as usize;
        let pid = line_of(place)["pid"].as_u64().ok_or("no pid")?;
        let ours: Vec<u64> = trace["frames"]
            .as_array()
            .map(|f| f.iter().filter_map(|f| f["pc"].as_u64()).collect())
            .unwrap_or_default();
        let mut theirs = by_pid.get(&pid).cloned().unwrap_or_default();
        if frame0_at_pc.contains(&pid)
            && let Some(pc) = line_of(place)["rip"].as_u64()
        {
            theirs.insert(0, pc);
        }
        let same = ours.len() >= 2 && theirs.get(..ours.len()) == Some(&ours[..]);
        let past_stack_switch = stopped_inner.contains(&pid)
            && theirs.len() >= 2
            && ours.get(..theirs.len()) == Some(&theirs[..])
            && ours
                .get(theirs.len())
                .copied()
                .is_some_and(|next| saved_rips.get(place).copied().flatten() == Some(next));
        if past_stack_switch {
            past_gdb += ours.len() - theirs.len();
        } else if !same {
            return Err(format!(
                "CPU {place}: crashkit's frames {ours:x?} are not gdb's {theirs:x?}{}",
                if stopped_inner.contains(&pid) {
                    format!(
                        " (gdb stopped at a stack switch; the record's RIP for the CPU is {:x?})",
                        saved_rips.get(place).copied().flatten()
                    )
                } else {
                    String::new()
                }
            ));
        }
        frames_total += ours.len();
        let names: Vec<String> = trace["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["functions"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect();
        let has = |needle: &str| names.iter().any(|n| n.contains(needle));
        if place == panicking && !has("rust_begin_unwind") {
            return Err(format!(
                "CPU {place}: the panicking CPU's frames miss the panic handler: {names:?}"
            ));
        }
        if parked.contains(&place) && !has("stop_here") {
            return Err(format!(
                "CPU {place}: a stopped CPU's frames miss the stop handler: {names:?}"
            ));
        }
    }
    if traces.is_empty() {
        return Err("bt -a gave no CPU".into());
    }
    // `cpus --kernel` names, for each CPU, the function of bt's frame #0.
    let output = run(
        crashkit,
        &["--json", "cpus", dump_arg, "--kernel", kernel_arg],
    )?;
    let named: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cpus --kernel: {e}"))?;
    for trace in &traces {
        let place = trace["cpu"].as_u64().unwrap_or(u64::MAX) as usize;
        let first = trace["frames"][0]["functions"][0]["name"]
            .as_str()
            .unwrap_or("??");
        let function = named["cpus"]
            .as_array()
            .and_then(|lines| {
                lines
                    .iter()
                    .find(|l| l["cpu"].as_u64() == Some(place as u64))
            })
            .and_then(|line| line["function"].as_str())
            .unwrap_or("");
        if !function.starts_with(first) {
            return Err(format!(
                "cpus --kernel: CPU {place} in {function:?}, bt's #0 is {first:?}"
            ));
        }
    }
    Ok(format!(
        "bt -a: {} CPUs, {frames_total} frames, each gdb's{}",
        traces.len(),
        if past_gdb > 0 {
            format!(
                " up to the NMI stack switch where gdb stops; {past_gdb} more past it, \
                 from the interrupted RIP the record saved"
            )
        } else {
            String::new()
        }
    ))
}
