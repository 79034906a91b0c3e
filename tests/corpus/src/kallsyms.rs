//! The Linux guests' own `/proc/kallsyms`, handed out through guest RAM,
//! and the CLI's symbols checked against it (issue 28): the ground truth
//! for a distribution kernel whose symbols are nowhere else (Debian's
//! package ships a stub System.map; the real one is in the 5 GB `-dbg`
//! package).
//!
//! The guest's `/init` runs [`HAND_OUT`] before it crashes: busybox awk
//! copies `/proc/kallsyms` into one small file per 4000 bytes of whole
//! lines, each starting with `CRASHKIT-KALLSYMS NNNNN\n`, and a last file
//! `CRASHKIT-KALLSYMS-END NNNNN\n` with the count. The initramfs's files
//! live in the page cache, a page each, from the page's start (the rest of
//! the page zero), so the host finds every piece at a page start in the
//! guest's file-backed RAM ([`from_ram`]): no serial port (about 1 MiB/s),
//! no disk driver.
//!
//! Checked on every dump of every Linux guest ([`check`]): the panicking
//! CPU is the one the console's stack-dump header names; `sym` gives 64
//! names spread over the table the guest's addresses; every frame of the
//! console's Call Trace (`panic+0x118/0x2f4`, Linux's own `%pS`) is what
//! `sym` says of that address; `rd` of `linux_banner` by name equals guest
//! RAM where the kernel image is; and on one dump per guest `sym --list`
//! is the guest's table, line for line ([`check_list`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::cli_check;
use crate::oracle::START_KERNEL_MAP;

/// The `/init` lines that hand `/proc/kallsyms` out (busybox sh and awk).
pub const HAND_OUT: &str = r#"/bin/busybox mkdir -p /kallsyms
/bin/busybox awk 'BEGIN { n = 0; size = 0; file = sprintf("/kallsyms/%05d", n); printf "CRASHKIT-KALLSYMS %05d\n", n > file }
{ if (size + length($0) + 1 > 4000) { close(file); n++; size = 0; file = sprintf("/kallsyms/%05d", n); printf "CRASHKIT-KALLSYMS %05d\n", n > file }
  print > file; size += length($0) + 1 }
END { close(file); printf "CRASHKIT-KALLSYMS-END %05d\n", n + 1 > "/kallsyms/end"; close("/kallsyms/end") }' /proc/kallsyms
echo "crashkit-corpus: kallsyms handed out in $(/bin/busybox ls /kallsyms | /bin/busybox wc -l) files"
"#;

const PIECE: &[u8] = b"CRASHKIT-KALLSYMS ";
const END: &[u8] = b"CRASHKIT-KALLSYMS-END ";

/// The five digits after `prefix` and the newline ending the header.
fn number(page: &[u8], prefix: &[u8]) -> Option<u32> {
    let digits = page.get(prefix.len()..prefix.len() + 5)?;
    if page.get(prefix.len() + 5) != Some(&b'\n') {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The guest's `/proc/kallsyms`, put back together from the pieces in
/// `ram` (guest RAM, flat from physical 0).
pub fn from_ram(ram: &[u8]) -> Result<String, String> {
    let mut pieces: BTreeMap<u32, &[u8]> = BTreeMap::new();
    let mut count = None;
    for (index, page) in ram.chunks_exact(4096).enumerate() {
        if page.starts_with(END) {
            let n = number(page, END).ok_or(format!("page {index:#x}: a bad end header"))?;
            if count.is_some_and(|c| c != n) {
                return Err(format!("two end pieces disagree: {count:?} and {n}"));
            }
            count = Some(n);
        } else if page.starts_with(PIECE) {
            let Some(n) = number(page, PIECE) else {
                continue;
            };
            let body = &page[PIECE.len() + 6..];
            let body = &body[..body.iter().position(|&b| b == 0).unwrap_or(body.len())];
            match pieces.get(&n) {
                Some(seen) if *seen != body => {
                    return Err(format!("two different copies of piece {n} in RAM"));
                }
                _ => {
                    pieces.insert(n, body);
                }
            }
        }
    }
    let count = count.ok_or("no end piece in RAM: the guest did not hand kallsyms out")?;
    if pieces.len() != count as usize || pieces.keys().next_back() != Some(&(count - 1)) {
        return Err(format!(
            "{} of {count} kallsyms pieces found in RAM",
            pieces.len()
        ));
    }
    let bytes: Vec<u8> = pieces.values().flat_map(|b| b.iter().copied()).collect();
    String::from_utf8(bytes).map_err(|_| "the pieces are not UTF-8".into())
}

/// The truth of a guest: its kallsyms from `ram` (also written to
/// `work/kallsyms.txt`, for [`check_system_maps`]), its `console`, and the
/// `phys_base` its VMCOREINFO gives.
pub fn truth(ram: &[u8], console: &str, phys_base: u64, work: &Path) -> Result<Truth, String> {
    let text = from_ram(ram)?;
    let path = work.join(KALLSYMS_FILE);
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    Truth::new(&text, console, phys_base)
}

/// Where [`truth`] keeps a guest's kallsyms.
const KALLSYMS_FILE: &str = "kallsyms.txt";

/// `--system-map` on real files (issue 28): the KASLR guest's dump with
/// the KASLR-off guest's `/proc/kallsyms`, which is the same kernel's
/// link-time map, must be moved by `KERNELOFFSET` and agree with the dump's
/// own kallsyms on every name both have once, giving the KASLR guest's
/// addresses; with the KASLR guest's own copy, nothing moves and its
/// module's symbols (`[qemu_fw_cfg]`, which kallsyms in VMCOREINFO does
/// not have) are found. `kaslr` and `nokaslr` are the guests' work
/// directories.
pub fn check_system_maps(kaslr: &Path, nokaslr: &Path) -> Result<String, String> {
    let crashkit = cli_check::crashkit()?;
    let dump = kaslr.join("qemu.elf");
    let dump = dump.to_str().ok_or("a path that is not UTF-8")?;
    let read_map = |dir: &Path| -> Result<(String, String), String> {
        let path = dir.join(KALLSYMS_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let path = path.to_str().ok_or("a path that is not UTF-8")?.to_owned();
        Ok((path, text))
    };
    let (own_map, own_text) = read_map(kaslr)?;
    let (link_map, _) = read_map(nokaslr)?;
    let address = |text: &str, name: &str, module: bool| {
        text.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            let (addr, _, found) = (fields.next()?, fields.next()?, fields.next()?);
            (found == name && fields.next().is_some() == module)
                .then(|| u64::from_str_radix(addr, 16).ok())
                .flatten()
        })
    };
    let want = address(&own_text, "panic", false).ok_or("no panic in the guest's kallsyms")?;
    let answer = json(
        &crashkit,
        &["--json", "sym", dump, "panic", "--system-map", &link_map],
    )?;
    let source = answer["sym"]["source"].as_str().unwrap_or("");
    let agreed: usize = source
        .split("kallsyms agrees on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let got = answer["sym"]["answers"][0]["symbols"][0]["address"].as_u64();
    if !source.contains("moved by KERNELOFFSET") || agreed < 10_000 || got != Some(want) {
        return Err(format!(
            "sym --system-map (the KASLR-off guest's kallsyms) on the KASLR guest's dump: \
             {source}; panic at {got:x?}, the guest's {want:#x}"
        ));
    }
    // The module's symbols, from the guest's own copy.
    let module = own_text
        .lines()
        .find(|line| {
            line.ends_with("[qemu_fw_cfg]")
                && matches!(line.split_whitespace().nth(1), Some("t" | "T"))
        })
        .and_then(|line| line.split_whitespace().nth(2))
        .ok_or("no [qemu_fw_cfg] function in the guest's kallsyms")?
        .to_owned();
    let module_address = address(&own_text, &module, true).ok_or("no module address")?;
    let answer = json(
        &crashkit,
        &["--json", "sym", dump, &module, "--system-map", &own_map],
    )?;
    let symbol = &answer["sym"]["answers"][0]["symbols"][0];
    if symbol["module"] != "qemu_fw_cfg" || symbol["address"].as_u64() != Some(module_address) {
        return Err(format!(
            "sym {module} --system-map (the guest's own kallsyms): {symbol}"
        ));
    }
    Ok(format!(
        "--system-map: the KASLR-off guest's map moved by KERNELOFFSET onto the KASLR dump \
         agrees with its kallsyms on {agreed} names; the guest's own copy names its module's \
         {module}"
    ))
}

/// One line of `/proc/kallsyms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The address, as the guest printed it.
    pub addr: u64,
    /// The type letter.
    pub kind: char,
    /// The name.
    pub name: String,
    /// The module (`[name]`), for a module's symbol.
    pub module: Option<String>,
}

/// The guest's truth: its symbols and what its console printed.
#[derive(Debug)]
pub struct Truth {
    /// Every line of its `/proc/kallsyms`.
    pub lines: Vec<Line>,
    /// The CPU the console's last stack-dump header names.
    pub panic_cpu: u64,
    /// The console's Call Trace frames, `name+0xoff/0xsize`.
    pub frames: Vec<String>,
    /// The last Call Trace's reliable frames (those Linux printed without
    /// `?`), in order, innermost first.
    pub reliable: Vec<String>,
    /// The header says a capture kernel was loaded (`Kdump: loaded`): the
    /// crash went through Linux's kexec path.
    pub kdump_loaded: bool,
    /// VMCOREINFO's `phys_base`: where the kernel image is in RAM.
    pub phys_base: u64,
}

impl Truth {
    /// Parse `kallsyms` (the guest's file) and the console (`serial`).
    pub fn new(kallsyms: &str, serial: &str, phys_base: u64) -> Result<Self, String> {
        let mut lines = Vec::new();
        for line in kallsyms.lines() {
            let mut fields = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("kallsyms line {line:?}"));
            };
            lines.push(Line {
                addr: u64::from_str_radix(addr, 16).map_err(|e| format!("{line:?}: {e}"))?,
                kind: kind.chars().next().unwrap_or('?'),
                name: name.to_owned(),
                module: fields.next().map(|m| m.trim_matches(['[', ']']).to_owned()),
            });
        }
        if lines.len() < 10_000 || lines.iter().all(|l| l.addr == 0) {
            return Err(format!(
                "the guest's kallsyms has {} lines{}",
                lines.len(),
                if lines.iter().all(|l| l.addr == 0) {
                    ", all at address 0 (kptr_restrict)"
                } else {
                    ""
                }
            ));
        }
        // The kernel's lines (`[ seconds] text`); lines user space wrote
        // to the console (the guest's `/init`) are left out: they can land
        // inside a Call Trace (`/init` says it exits as the panic prints).
        let body = |l: &str| -> Option<String> {
            let l = l.trim_end_matches('\r');
            if !l.trim_start().starts_with('[') {
                return None;
            }
            l.split_once("] ").map(|(_, rest)| rest.trim().to_owned())
        };
        let texts: Vec<String> = serial.lines().filter_map(body).collect();
        let panic_cpu = texts
            .iter()
            .rev()
            .find_map(|t| {
                let rest = t.strip_prefix("CPU: ")?;
                rest.split_once(" PID: ")?.0.parse().ok()
            })
            .ok_or("no `CPU: N PID:` header on the console")?;
        let kdump_loaded = texts
            .iter()
            .rev()
            .find(|t| t.starts_with("CPU: ") && t.contains(" PID: "))
            .is_some_and(|t| t.contains("Kdump: loaded"));
        let as_frame = |t: &String| -> Option<String> {
            let frame = t.strip_prefix("? ").unwrap_or(t);
            let (name, rest) = frame.split_once("+0x")?;
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.".contains(&b))
                && rest.contains("/0x")
                && !rest.contains(' ');
            ok.then(|| frame.to_owned())
        };
        let frames: Vec<String> = texts.iter().filter_map(as_frame).collect();
        // The last Call Trace: its frame lines up to the first line that is
        // neither a frame nor a stack marker (`<TASK>`, `<IRQ>`, ...).
        let trace_start = texts
            .iter()
            .rposition(|t| t == "Call Trace:")
            .ok_or("no Call Trace on the console")?;
        let reliable: Vec<String> = texts[trace_start + 1..]
            .iter()
            .filter(|t| !t.starts_with('<'))
            .map_while(|t| as_frame(t).map(|f| (t.starts_with("? "), f)))
            .filter(|(unreliable, _)| !unreliable)
            .map(|(_, f)| f)
            .collect();
        if frames.len() < 4 {
            return Err(format!(
                "only {} Call Trace frames on the console",
                frames.len()
            ));
        }
        Ok(Self {
            lines,
            panic_cpu,
            frames,
            reliable,
            kdump_loaded,
            phys_base,
        })
    }

    /// The kernel's own lines (no module's).
    fn vmlinux(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| l.module.is_none())
    }

    /// The address of `name` when exactly one kernel line has it.
    fn unique(&self, name: &str) -> Option<u64> {
        let mut found = self.vmlinux().filter(|l| l.name == name);
        let first = found.next()?;
        found.next().is_none().then_some(first.addr)
    }
}

fn json(crashkit: &Path, args: &[&str]) -> Result<Value, String> {
    let output = cli_check::run(crashkit, args)?;
    if output.status.code() != Some(0) || !output.stderr.is_empty() {
        return Err(format!(
            "crashkit {}: exit {:?}: {}",
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("crashkit {}: not JSON: {e}", args.join(" ")))
}

/// Check the symbol commands on the dump `arg` against `truth` and guest
/// `ram`; a summary.
pub fn check(crashkit: &Path, arg: &str, truth: &Truth, ram: &[u8]) -> Result<String, String> {
    let fail = |what: String| format!("crashkit on {arg}: {what}");
    // The panicking CPU.
    let cpus = json(crashkit, &["--json", "cpus", arg])?;
    let panicking: Vec<u64> = cpus["cpus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["panicking"] == true)
        .filter_map(|l| l["cpu"].as_u64())
        .collect();
    if panicking != [truth.panic_cpu] {
        return Err(fail(format!(
            "cpus marks {panicking:?} panicking; the console's header says CPU {}",
            truth.panic_cpu
        )));
    }
    // 64 names spread over the table, each unique, then every frame of
    // the console's Call Trace whose name is unique: one `sym`.
    let kernel: Vec<&Line> = truth.vmlinux().collect();
    let names: Vec<&str> = (0..64)
        .filter_map(|i| {
            let line = kernel[kernel.len() * i / 64 + i];
            truth.unique(&line.name).map(|_| line.name.as_str())
        })
        .collect();
    // A frame whose offset is its symbol's size is a return address just
    // past a function that ends in a call (`do_exit.cold+0x15/0x15`):
    // Linux names a return address by the byte before it (`%pB`), `sym`
    // names an address by itself (the next symbol); `bt` names it as
    // Linux does, checked in [`crate::backtrace`].
    let past_the_end = |f: &str| {
        let parts: Vec<&str> = f.split(['+', '/']).collect();
        parts.len() == 3 && parts[1] == parts[2]
    };
    let frames: Vec<&String> = truth
        .frames
        .iter()
        .filter(|f| truth.unique(f.split('+').next().unwrap_or("")).is_some())
        .filter(|f| !past_the_end(f))
        .collect();
    let queries: Vec<String> = frames
        .iter()
        .map(|f| f.split('/').next().unwrap_or("").to_owned())
        .collect();
    let mut args = vec!["--json", "sym", arg];
    args.extend(names.iter().copied());
    args.extend(queries.iter().map(String::as_str));
    let answers = json(crashkit, &args)?;
    let answers = answers["sym"]["answers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if answers.len() != names.len() + frames.len() {
        return Err(fail(format!(
            "sym of {} names and {} frames gave {} answers",
            names.len(),
            frames.len(),
            answers.len()
        )));
    }
    for (answer, name) in answers.iter().zip(&names) {
        let want = truth.unique(name);
        let got = answer["symbols"][0]["address"].as_u64();
        if got != want || answer["kind"] != "name" {
            return Err(fail(format!(
                "sym {name}: {got:x?}, the guest's kallsyms {want:x?}"
            )));
        }
    }
    for (answer, frame) in answers[names.len()..].iter().zip(&frames) {
        let symbol = &answer["symbols"][0];
        let said = format!(
            "{}+{:#x}/{:#x}",
            symbol["name"].as_str().unwrap_or("?"),
            symbol["offset"].as_u64().unwrap_or(u64::MAX),
            symbol["size"].as_u64().unwrap_or(u64::MAX)
        );
        if said != **frame {
            return Err(fail(format!("sym says {said}; Linux printed {frame}")));
        }
    }
    let frames = frames.len();
    // Data symbols read by name, equal to RAM at the image's place.
    let mut read = 0;
    for name in ["linux_banner"] {
        let Some(addr) = truth.unique(name) else {
            continue;
        };
        let bytes = cli_check::run(
            crashkit,
            &["rd", "--raw", arg, &format!("{name}+0x8"), "56"],
        )?;
        let phys = (addr + 8 - START_KERNEL_MAP + truth.phys_base) as usize;
        let want = ram
            .get(phys..phys + 56)
            .ok_or(format!("{name} is past RAM"))?;
        if bytes.status.code() != Some(0) || bytes.stdout != want {
            return Err(fail(format!(
                "rd --raw {name}+0x8 56 (exit {:?}) is not RAM at {phys:#x}",
                bytes.status.code()
            )));
        }
        read += 1;
    }
    if frames < 4 || read < 1 {
        return Err(fail(format!(
            "only {frames} Call Trace frames and {read} symbols checked"
        )));
    }
    let backtraces = crate::backtrace::check(crashkit, arg, truth)?;
    Ok(format!(
        "panicking CPU {}, sym of {} names, {frames} Call Trace frames as Linux printed them, \
         rd of {read} symbols equal to RAM, {backtraces}",
        truth.panic_cpu,
        names.len()
    ))
}

/// `sym --list` on `arg` is the guest's own table: every kernel line of its
/// `/proc/kallsyms`, same address, type and name, in the same order.
pub fn check_list(crashkit: &Path, arg: &str, truth: &Truth) -> Result<String, String> {
    let listed = json(crashkit, &["--json", "sym", "--list", arg])?;
    let ours: Vec<Line> = listed["sym"]["answers"][0]["symbols"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Line {
            addr: s["address"].as_u64().unwrap_or(0),
            kind: s["kind"]
                .as_str()
                .and_then(|k| k.chars().next())
                .unwrap_or('?'),
            name: s["name"].as_str().unwrap_or("").to_owned(),
            module: None,
        })
        .collect();
    let theirs: Vec<Line> = truth.vmlinux().cloned().collect();
    if let Some(at) = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i)) {
        return Err(format!(
            "crashkit sym --list {arg}: {} symbols; differs from the guest's kallsyms ({}) first \
             at line {at}: {:?} against {:?}",
            ours.len(),
            theirs.len(),
            ours.get(at),
            theirs.get(at)
        ));
    }
    Ok(format!(
        "sym --list is the guest's own kallsyms, all {} kernel symbols",
        ours.len()
    ))
}
