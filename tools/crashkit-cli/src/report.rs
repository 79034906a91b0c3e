//! `crashkit report DUMP [-o FILE.html]`: everything about one crash on one
//! page. What the other commands answer one at a time (`info`, `record`,
//! `cpus`, `regs`, `bt`, `log`, `verify`), gathered once, with the crash
//! record's timeline laid out ([`timeline`]) and drawn ([`html`]), and a
//! list of what could not be shown and why. `--json` gives the same
//! content as data: each part is the payload of the command it comes
//! from, under one `schema`.
//!
//! Nothing here fails for want of a part: a dump without a record, CPUs
//! without a kernel ELF to unwind them, a log that cannot be read, each
//! becomes an entry of `not_shown` and the rest is reported.

pub mod html;
pub mod timeline;

use std::path::Path;

use serde::Serialize;

use crate::open::{Files, Opened};
use crate::{bt, cpus, crashlog, info, log, record, verify};

/// The log lines a report keeps (the last ones).
pub const LOG_LINES: usize = 40;

/// What `report` gathers (the JSON form; docs/cli.md).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The summary at the top of the page.
    pub summary: Summary,
    /// `info`'s answer.
    pub info: info::Info,
    /// The crash record (`record`'s first record: the note's, else the
    /// first found in memory with a panic owner).
    pub record: Option<record::Report>,
    /// The record's timeline, laid out.
    pub timeline: Option<timeline::Timeline>,
    /// `cpus`'s answer.
    pub cpus: Vec<cpus::CpuLine>,
    /// `regs`'s answer for each CPU.
    pub regs: Vec<cpus::CpuRegs>,
    /// `bt -a`'s answer, when the CPUs could be unwound.
    pub bt: Option<Vec<bt::Backtrace>>,
    /// The last [`LOG_LINES`] of Linux's log (`log --tail`'s answer).
    pub log: Option<log::Log>,
    /// The last [`LOG_LINES`] of a crashkit kernel's crash log.
    pub crash_log: Option<crashlog::CrashLog>,
    /// `verify`'s answer (null with `--no-verify`).
    pub verify: Option<verify::Verdict>,
    /// What could not be shown, and why.
    pub not_shown: Vec<NotShown>,
}

/// The few lines that settle most crashes.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The dump's file names.
    pub dump: String,
    /// What crashed: `Linux 6.1.0-28-amd64`, `a crashkit kernel`, ...
    pub kernel: String,
    /// Why: the panic message (crashkit's record, or Linux's `Kernel panic`
    /// line).
    pub panic_message: Option<String>,
    /// On which CPU.
    pub panic_cpu: Option<u32>,
    /// When (seconds since 1970), and as UTC text.
    pub crash_time: Option<u64>,
    /// `crash_time` as `YYYY-MM-DD HH:MM:SS UTC`.
    pub crash_time_utc: Option<String>,
    /// How the dump was taken: producer, what it was made from, format.
    pub taken_by: String,
    /// `complete`, `incomplete: why` or `unknown`.
    pub completeness: String,
    /// Whether `verify` found every page sound (null: not verified).
    pub verified: Option<bool>,
    /// How far crashkit's panic path got, and its final action.
    pub panic_path: Option<String>,
}

/// A part of the report that is missing.
#[derive(Debug, Serialize)]
pub struct NotShown {
    /// The part: `crash record`, `backtraces`, `log`, ...
    pub what: &'static str,
    /// Why.
    pub why: String,
}

/// Where a report's symbols and unwinding information come from.
pub struct Symbols<'p> {
    /// `--kernel`.
    pub kernel: Option<&'p Path>,
    /// `--debug-dir`.
    pub debug_dir: &'p Path,
}

/// Gather the report of `dump` (the mapped `files`); `verify_pages` runs
/// `verify` (every page read); `progress` is called while scanning and
/// verifying.
pub fn gather(
    files: &Files,
    dump: &Opened<'_>,
    symbols: &Symbols<'_>,
    verify_pages: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Report {
    let mut not_shown = Vec::new();
    let info = info::gather(files, dump);

    // The crash record: the note's, else memory's (not for another
    // kernel's dump, which has none to find).
    let record = if info.other_kernel {
        not_shown.push(NotShown {
            what: "crash record and timeline",
            why: "not a crashkit kernel: its dump has no crash record".into(),
        });
        None
    } else {
        let mut found = record::find(dump, false, progress);
        let chosen = found.take_chosen();
        if chosen.is_none() {
            let why = match found.rejected.first() {
                Some(first) => format!(
                    "no crash record parses ({} candidate(s) rejected; the first: {})",
                    found.rejected.len() as u64 + found.rejected_not_listed,
                    first.why
                ),
                None => "the dump has no crash record note and memory holds none".into(),
            };
            not_shown.push(NotShown {
                what: "crash record and timeline",
                why,
            });
        }
        chosen
    };
    let timeline = record.as_ref().and_then(|r| {
        let laid = timeline::layout(r);
        if laid.is_none() {
            not_shown.push(NotShown {
                what: "timeline",
                why: "the crash record has no time stamp".into(),
            });
        }
        laid
    });

    let mut cpus = cpus::lines(dump, record.as_ref());
    let numbers = cpus::numbers(cpus::cpus_of(dump).0);
    let regs: Vec<_> = numbers
        .iter()
        .filter_map(|&n| cpus::regs(dump, Some(n)).ok())
        .collect();
    if numbers.is_empty() {
        not_shown.push(NotShown {
            what: "registers",
            why: "the dump has no CPU notes and no crash record with saved registers".into(),
        });
    }

    let (bt, kernel_path) = backtraces(dump, symbols, &numbers, &mut not_shown);
    if let Some(traces) = &bt {
        for line in &mut cpus {
            if line.function.is_none()
                && let Some(frame) = traces
                    .iter()
                    .find(|t| Some(t.cpu) == line.cpu)
                    .and_then(|t| t.frames.first())
            {
                line.function = frame
                    .symbol
                    .clone()
                    .or_else(|| frame.functions.first().and_then(|f| f.name.clone()));
            }
        }
    } else if let Ok(table) = dump.kallsyms() {
        for line in &mut cpus {
            line.function = line
                .rip
                .and_then(|rip| table.name_of(rip))
                .map(|n| n.to_string());
        }
    }

    let (log, crash_log) = logs(dump, symbols, kernel_path.as_deref(), &mut not_shown);

    let verify = if verify_pages {
        Some(verify::verify(dump, progress))
    } else {
        not_shown.push(NotShown {
            what: "verification",
            why: "--no-verify: the pages were not read".into(),
        });
        None
    };

    let summary = summary(&info, record.as_ref(), verify.as_ref());
    if let (Some(noted), Some(owner)) = (
        info.panic_cpu,
        record.as_ref().and_then(|r| r.panic.owner_cpu),
    ) && noted != owner
    {
        not_shown.push(NotShown {
            what: "agreement on the panicking CPU",
            why: format!(
                "the dump's notes say CPU {noted}, the crash record CPU {owner}: the record's is shown"
            ),
        });
    }
    Report {
        summary,
        info,
        record,
        timeline,
        cpus,
        regs,
        bt,
        log,
        crash_log,
        verify,
        not_shown,
    }
}

/// Every CPU's backtrace, and the kernel ELF they used; or why not.
fn backtraces(
    dump: &Opened<'_>,
    symbols: &Symbols<'_>,
    numbers: &[usize],
    not_shown: &mut Vec<NotShown>,
) -> (Option<Vec<bt::Backtrace>>, Option<std::path::PathBuf>) {
    if numbers.is_empty() {
        not_shown.push(NotShown {
            what: "backtraces",
            why: "no CPU has saved registers".into(),
        });
        return (None, None);
    }
    let mut elf_problem = None;
    let path = match bt::kernel_file(dump, symbols.kernel, symbols.debug_dir) {
        Ok(path) => Some(path),
        Err(e) => {
            elf_problem = Some(format!("{e:#}"));
            None
        }
    };
    let map = match path.as_deref().map(Files::map_plain).transpose() {
        Ok(map) => map,
        Err(e) => {
            not_shown.push(NotShown {
                what: "backtraces",
                why: format!("{e:#}"),
            });
            return (None, None);
        }
    };
    let elf = match (&path, &map) {
        (Some(path), Some(map)) => match crate::open_kernel(dump, map, path) {
            Ok(elf) => Some(elf),
            Err(e) => {
                elf_problem = Some(format!("{e:#}"));
                None
            }
        },
        _ => None,
    };
    let good_path = elf.as_ref().and(path.clone());
    match bt::backtraces(dump, elf.as_ref(), Some(numbers.to_vec())) {
        Ok(traces) => {
            if let Some(why) = elf_problem
                && dump.is_linux()
            {
                not_shown.push(NotShown {
                    what: "file and line of frames",
                    why: format!("named from the dump's kallsyms only: {why}"),
                });
            }
            (Some(traces), good_path)
        }
        Err(e) => {
            // A Linux dump says why neither its ORC tables nor an ELF
            // serve; another kernel's needs the ELF, and the ELF's
            // problem is the whole story.
            let why = match (e.downcast_ref::<bt::NoUnwinder>(), elf_problem) {
                (Some(none), Some(elf)) if dump.is_linux() => format!("{}; {elf}", none.0),
                (Some(_), Some(elf)) => elf,
                _ => format!("{e:#}"),
            };
            not_shown.push(NotShown {
                what: "backtraces",
                why,
            });
            (None, good_path)
        }
    }
}

/// The log's last lines: a crashkit kernel's crash log (decoded with its
/// ELF), else Linux's printk ring; or why not.
fn logs(
    dump: &Opened<'_>,
    symbols: &Symbols<'_>,
    kernel: Option<&Path>,
    not_shown: &mut Vec<NotShown>,
) -> (Option<log::Log>, Option<crashlog::CrashLog>) {
    let linux = dump
        .vmcoreinfo()
        .is_some_and(|info| info.get("SYMBOL(prb)").is_some());
    if !linux {
        match crashlog::find(dump) {
            Ok(Some((found_by, address, bytes))) => {
                let decoded = crashkit_log::read::AreaView::parse(&bytes)
                    .map_err(|e| format!("the crash log at {address:#x}: {e}"))
                    .and_then(|area| {
                        let id = area.build_id().map(<[u8]>::to_vec);
                        let path = crashlog::kernel_file(
                            id.as_deref(),
                            symbols.kernel.or(kernel),
                            symbols.debug_dir,
                        )
                        .map_err(|e| format!("{e:#}"))?;
                        let elf = Files::map_plain(&path).map_err(|e| format!("{e:#}"))?;
                        crashlog::decode(found_by, address, &bytes, &path, &elf)
                            .map_err(|e| format!("{e:#}"))
                    });
                return match decoded {
                    Ok(mut decoded) => {
                        decoded.tail(LOG_LINES);
                        (None, Some(decoded))
                    }
                    Err(why) => {
                        not_shown.push(NotShown {
                            what: "log",
                            why: format!("the crash log cannot be decoded: {why}"),
                        });
                        (None, None)
                    }
                };
            }
            Ok(None) if !dump.is_linux() => {
                not_shown.push(NotShown {
                    what: "log",
                    why: "the dump holds no crashkit crash log (docs/crash-log.md) and is not a Linux dump".into(),
                });
                return (None, None);
            }
            Ok(None) => {}
            Err(e) => {
                not_shown.push(NotShown {
                    what: "log",
                    why: format!("{e:#}"),
                });
                return (None, None);
            }
        }
    }
    match log::read(dump) {
        Ok(mut read) => {
            read.tail(LOG_LINES);
            (Some(read), None)
        }
        Err(e) => {
            not_shown.push(NotShown {
                what: "log",
                why: e.0,
            });
            (None, None)
        }
    }
}

/// The summary from what was gathered.
fn summary(
    info: &info::Info,
    record: Option<&record::Report>,
    verdict: Option<&verify::Verdict>,
) -> Summary {
    let kernel = match (&info.osrelease, info.linux, record.is_some()) {
        (Some(release), true, _) => format!("Linux {release}"),
        (_, _, true) => match &info.osrelease {
            Some(release) => format!("a crashkit kernel ({release})"),
            None => "a crashkit kernel".into(),
        },
        (Some(release), false, false) => format!("a kernel that says it is {release}"),
        (None, true, _) => "Linux (release unknown)".into(),
        (None, false, false) => "unknown: no VMCOREINFO and no crash record".into(),
    };
    let panic_message = record
        .map(|r| r.panic.message.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| info.panic_message.clone().filter(|m| !m.is_empty()));
    // The record is the panic path's own account: its owner first.
    let panic_cpu = record.and_then(|r| r.panic.owner_cpu).or(info.panic_cpu);
    let made_from = info
        .made_from
        .map_or(String::new(), |from| format!(" of a {from} dump"));
    let taken_by = format!(
        "{}{made_from}, {} ({})",
        info.producer, info.format, info.machine
    );
    let panic_path = record.map(|r| {
        format!(
            "reached {}; final action {}; dump {}",
            r.panic.phase, r.panic.final_action, r.panic.dump_result
        )
    });
    Summary {
        dump: info.files.join(","),
        kernel,
        panic_message,
        panic_cpu,
        crash_time: info.crash_time,
        crash_time_utc: info.crash_time.map(info::utc),
        taken_by,
        completeness: info.completeness.clone(),
        verified: verdict.map(|v| v.ok),
        panic_path,
    }
}
