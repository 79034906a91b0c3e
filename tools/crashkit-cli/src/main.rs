//! `crashkit`, the dump analysis CLI: `crashkit COMMAND DUMP [ARGS]`.
//!
//! It opens ELF vmcores and makedumpfile's kdump-compressed files (plain,
//! flattened, or the parts of a split dump joined by commas), found by
//! content, through the format library over memory maps, and answers as
//! text or, with `--json`, as JSON with a `schema` version. Exit codes: 0
//! ok, 1 a check failed, 2 usage (clap's), 3 the input is unusable (one
//! line: `crashkit: FILE: what, at offset N`). A dump that is incomplete
//! or damaged still answers, with a warning on standard error.
//!
//! Commands: `info`, `cpus`, `regs`, `record`, `rd` (virtual or `-p`
//! physical), `vtop`, `sym`, `bt`, `log`, `verify`, `report`, `triage`,
//! `convert`, `save` (clap's definitions
//! below; `tests/commands_doc.rs` checks this list, the README's and the
//! manual's against them). The manual is docs/cli.md.

mod bt;
mod cached;
mod convert;
mod cpus;
mod crashlog;
mod info;
mod linux;
mod log;
mod open;
mod orc;
mod provenance;
mod rd;
mod record;
mod report;
mod save;
mod scan;
mod sym;
mod symbols;
mod triage;
mod vaddr;
mod verify;
mod vmcoreinfo;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// crashkit: read crash dumps (ELF vmcore, kdump-compressed, flattened,
/// split) as text or JSON.
#[derive(Debug, Parser)]
#[command(name = "crashkit", version, about, long_about = None)]
struct Cli {
    /// Answer as JSON (a `schema` field gives the format's version).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What the dump is and holds: format, producer, completeness,
    /// OSRELEASE and VMCOREINFO, crash time, CPUs, memory, page counts.
    Info {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
    },
    /// One line per CPU: its state from the crash record, RIP, RSP,
    /// privilege level, the panicking one marked.
    Cpus {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// Without a record note (a QEMU dump), scan memory for the crash
        /// record to show CPU states (reads every page).
        #[arg(long)]
        scan: bool,
        /// DUMP is a raw image of RAM (QEMU's file-backed guest memory, a
        /// `pmemsave`): byte N is physical address N. It has no CPU notes:
        /// the CPUs are the crash record's, found by scanning (implies
        /// --scan).
        #[arg(long)]
        ram: bool,
        /// The kernel's ELF: name the function each RIP is in.
        #[arg(long)]
        kernel: Option<std::path::PathBuf>,
        /// Symbols from this System.map, or a copy of the crashed kernel's
        /// /proc/kallsyms, instead of the dump's own kallsyms (Linux 6.0
        /// and later); link-time addresses move by KASLR's offset.
        #[arg(long, value_name = "FILE")]
        system_map: Option<std::path::PathBuf>,
    },
    /// Every register the dump holds for one CPU, control state included.
    Regs {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// The CPU, as `cpus` numbers them (default: the panicking CPU,
        /// else 0).
        cpu: Option<usize>,
        /// The kernel's ELF: name the function RIP is in.
        #[arg(long)]
        kernel: Option<std::path::PathBuf>,
        /// Symbols from this System.map, or a copy of the crashed kernel's
        /// /proc/kallsyms, instead of the dump's own kallsyms (Linux 6.0
        /// and later); link-time addresses move by KASLR's offset.
        #[arg(long, value_name = "FILE")]
        system_map: Option<std::path::PathBuf>,
    },
    /// The crash record decoded: panic, timeline, shootdown, every CPU,
    /// notifier outcomes, escalations, counters. Read from the dump's note,
    /// else found by scanning memory (a QEMU dump of a crashkit kernel);
    /// exit code 1 when there is none.
    Record {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// Scan memory even when the dump has a record note.
        #[arg(long)]
        scan: bool,
        /// DUMP is a raw image of RAM (QEMU's file-backed guest memory, a
        /// `pmemsave`): byte N is physical address N; the record is found
        /// by scanning it.
        #[arg(long)]
        ram: bool,
    },
    /// Memory as hex and ASCII: virtual addresses through the dump's page
    /// tables, or physical ones with -p; memory the dump does not have
    /// (excluded, hole, lost, corrupt, not mapped) is said as such.
    Rd {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// ADDR is a physical address.
        #[arg(short = 'p', long = "physical")]
        physical: bool,
        /// Translate through this CPU's CR3 (as `cpus` numbers them;
        /// default: a Linux dump's init_top_pgt, else the panicking CPU).
        #[arg(long, conflicts_with = "physical")]
        cpu: Option<usize>,
        /// The address: hex (0x optional), or SYMBOL, SYMBOL+OFF (OFF
        /// hex).
        addr: String,
        /// How many bytes, decimal (or hex with 0x; default 64; at most
        /// 16 MiB).
        len: Option<String>,
        /// Write the bytes themselves to standard output (stops, with an
        /// error, at the first byte the dump does not have).
        #[arg(long)]
        raw: bool,
        /// DUMP is a raw image of RAM (QEMU's file-backed guest memory, a
        /// `pmemsave`): byte N is physical address N (with -p only: an
        /// image has no page tables to name).
        #[arg(long, requires = "physical")]
        ram: bool,
        /// Symbols from this System.map, or a copy of the crashed kernel's
        /// /proc/kallsyms, instead of the dump's own kallsyms (Linux 6.0
        /// and later); link-time addresses move by KASLR's offset.
        #[arg(long, value_name = "FILE")]
        system_map: Option<std::path::PathBuf>,
    },
    /// A virtual address's walk through the dump's page tables, entry by
    /// entry, to its physical address; exit code 1 when it is not mapped.
    Vtop {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// The virtual address: hex (0x optional), or SYMBOL, SYMBOL+OFF.
        addr: String,
        /// Through this CPU's CR3 (default: a Linux dump's init_top_pgt,
        /// else the panicking CPU).
        #[arg(long)]
        cpu: Option<usize>,
        /// Symbols from this System.map, or a copy of the crashed kernel's
        /// /proc/kallsyms, instead of the dump's own kallsyms (Linux 6.0
        /// and later); link-time addresses move by KASLR's offset.
        #[arg(long, value_name = "FILE")]
        system_map: Option<std::path::PathBuf>,
    },
    /// Symbols without debug information: a NAME's address, the symbol an
    /// ADDRESS (or NAME+OFF) is in as name+off/size, the symbols a glob
    /// PATTERN (`*`, `?`) matches. From the dump's own kallsyms (Linux 6.0
    /// and later), --system-map or --kernel.
    Sym {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// Names, addresses (hex, 0x optional), NAME+OFF, or patterns.
        #[arg(required_unless_present = "list")]
        what: Vec<String>,
        /// Every symbol, by address (crash's `sym -l`).
        #[arg(short = 'l', long, conflicts_with = "what")]
        list: bool,
        /// The kernel's ELF: symbols from its .symtab.
        #[arg(long, conflicts_with = "system_map")]
        kernel: Option<std::path::PathBuf>,
        /// Symbols from this System.map, or a copy of the crashed kernel's
        /// /proc/kallsyms, instead of the dump's own kallsyms (Linux 6.0
        /// and later); link-time addresses move by KASLR's offset.
        #[arg(long, value_name = "FILE")]
        system_map: Option<std::path::PathBuf>,
    },
    /// Each CPU's call stack, unwound from its saved registers: a Linux
    /// dump with its own ORC tables and kallsyms (no vmlinux needed), any
    /// other with the kernel ELF's call-frame information; symbolised with
    /// inlined frames and file:line when the ELF has DWARF. Exit code 1
    /// when a stack could not be walked to its start.
    Bt {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// The CPU, as `cpus` numbers them (default: the panicking CPU,
        /// else 0).
        cpu: Option<usize>,
        /// Every CPU.
        #[arg(short = 'a', long = "all", conflicts_with = "cpu")]
        all: bool,
        /// The kernel's ELF with its DWARF (default: found by the dump's
        /// build-id under --debug-dir; optional for a Linux dump with ORC
        /// tables).
        #[arg(long)]
        kernel: Option<std::path::PathBuf>,
        /// Where `.build-id/xx/rest.debug` files are.
        #[arg(long, default_value = "/usr/lib/debug")]
        debug_dir: std::path::PathBuf,
    },
    /// The kernel's log: a crashkit kernel's crash log (defmt frames
    /// decoded with the kernel's ELF, docs/crash-log.md), or a Linux dump's
    /// printk ring buffer (Linux 5.10 and later, found through VMCOREINFO),
    /// as the console printed it.
    Log {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// The crashkit kernel's ELF, with its `.defmt` section (default:
        /// found by the crash log's build-id under --debug-dir).
        #[arg(long)]
        kernel: Option<std::path::PathBuf>,
        /// Where `.build-id/xx/rest.debug` files are.
        #[arg(long, default_value = "/usr/lib/debug")]
        debug_dir: std::path::PathBuf,
        /// Only the last N messages (the accounts of what was read stay
        /// whole).
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Check the whole dump: structure, completeness, every page decodes
    /// to exactly one page; exit code 1 when anything is wrong.
    Verify {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
    },
    /// One self-contained HTML page about the crash: a summary, the crash
    /// record's timeline drawn, every CPU's registers and backtrace, the
    /// log's last lines, the notifiers, the verification, and what could
    /// not be shown and why. `--json` gives the same content as data.
    Report {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// Write the page (or the JSON) to this file instead of standard
        /// output.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// The kernel's ELF, for backtraces and a crashkit kernel's crash
        /// log (default: found by the dump's build-id under --debug-dir;
        /// optional for a Linux dump with ORC tables).
        #[arg(long)]
        kernel: Option<std::path::PathBuf>,
        /// Where `.build-id/xx/rest.debug` files are.
        #[arg(long, default_value = "/usr/lib/debug")]
        debug_dir: std::path::PathBuf,
        /// Do not read every page to verify the dump.
        #[arg(long)]
        no_verify: bool,
    },
    /// Many dumps at once: one row each (format, producer, release, panic,
    /// CPU, a crash signature, completeness), grouped by signature. PATHs
    /// are files, split dumps' parts joined by commas, or directories.
    /// Unreadable files are rows with their error.
    Triage {
        /// Dump files, split dumps (parts joined by commas), directories.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Also write DIR/index.html and one report per dump under
        /// DIR/reports/ (each dump then read whole, as `report` does).
        #[arg(long, value_name = "DIR")]
        html: Option<std::path::PathBuf>,
        /// A crashkit kernel's ELF, for the frames of the dumps it crashed
        /// (matched by build-id; others are looked up under --debug-dir).
        #[arg(long)]
        kernel: Option<std::path::PathBuf>,
        /// Where `.build-id/xx/rest.debug` files are.
        #[arg(long, default_value = "/usr/lib/debug")]
        debug_dir: std::path::PathBuf,
        /// Also read every page of every dump, as `verify` does (the
        /// `verified` column).
        #[arg(long)]
        verify: bool,
    },
    /// Write the dump again as an ELF vmcore, a kdump-compressed file or a
    /// flattened stream, zero pages stored as holes or shared, with a codec
    /// of choice.
    Convert {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
        /// The new file (it must not exist).
        out: std::path::PathBuf,
        /// The new file's format.
        #[arg(long, value_enum)]
        to: convert::Format,
        /// The page codec of a kdump-compressed output: raw, zlib (crashkit's
        /// page deflate at level 2), zlib:LEVEL (1 fastest to 3 smallest),
        /// lzo, snappy, zstd.
        #[arg(long, default_value = "zlib", value_name = "CODEC")]
        codec: convert::Codec,
        /// Write zero pages as they are (by default an ELF holds them as
        /// holes of a sparse file and a kdump file shares one zero page).
        #[arg(long, conflicts_with = "zero_tails")]
        keep_zero: bool,
        /// ELF: leave zero pages out as zero tails (`p_memsz > p_filesz`),
        /// as crashkit's crash path does; makedumpfile then needs
        /// `--non-mmap` and libkdumpfile reads them as no data.
        #[arg(long)]
        zero_tails: bool,
    },
    /// Copy the dump a capture kernel wrote on a dump device (or an image
    /// of one) into a file, after checking both of the device's headers.
    Save {
        /// The dump device or its image file.
        device: std::path::PathBuf,
        /// The new file (it must not exist).
        out: std::path::PathBuf,
        /// Copy a torn dump, or one saved before, anyway.
        #[arg(long)]
        force: bool,
        /// After a whole dump is saved, mark the device's dump as saved.
        #[arg(long)]
        clear: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are answers, not errors; a usage error under
        // `--json` is JSON like every other error.
        Err(error)
            if std::env::args().any(|a| a == "--json")
                && !matches!(
                    error.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
        {
            let rendered = error.render().to_string();
            let message = rendered.trim().trim_start_matches("error: ");
            return json_error(2, "usage", message);
        }
        Err(error) => error.exit(),
    };
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            let (code, kind) = if error.downcast_ref::<open::InputError>().is_some() {
                (3, "input")
            } else if error.downcast_ref::<cpus::NoSuchCpu>().is_some()
                || error.downcast_ref::<rd::BadRange>().is_some()
                || error.downcast_ref::<vaddr::NoSpace>().is_some()
                || error.downcast_ref::<UsageError>().is_some()
            {
                (2, "usage")
            } else {
                (1, "failed")
            };
            if cli.json {
                return json_error(code, kind, &format!("{error:#}"));
            }
            eprintln!("crashkit: {error:#}");
            ExitCode::from(code)
        }
    }
}

/// An error under `--json`: `{"schema": 1, "error": {"exit_code", "kind",
/// "message"}}` on standard output (where the answer would have been), and
/// the exit code it names.
fn json_error(code: u8, kind: &str, message: &str) -> ExitCode {
    #[derive(serde::Serialize)]
    struct Failure<'m> {
        exit_code: u8,
        kind: &'m str,
        message: &'m str,
    }
    #[derive(serde::Serialize)]
    struct Answer<'m> {
        schema: u32,
        error: Failure<'m>,
    }
    let value = Answer {
        schema: info::SCHEMA,
        error: Failure {
            exit_code: code,
            kind,
            message,
        },
    };
    match json(&value) {
        Ok(text) => {
            let _ = print(&text);
        }
        Err(_) => eprintln!("crashkit: {message}"),
    }
    ExitCode::from(code)
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Info { dump } => {
            let files = open::Files::map(dump)?;
            let opened = open::open(&files)?;
            let info = info::gather(&files, &opened);
            warn(&files, &info.completeness, &info.damage);
            let text = if cli.json {
                json(&info)?
            } else {
                info::render(&info)
            };
            print(&text)?;
        }
        Command::Cpus {
            dump,
            scan,
            ram,
            kernel,
            system_map,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_dump(&files, *ram)?;
            let record = with_progress(cli.json, |progress| {
                record::for_states(&opened, *scan || *ram, progress)
            });
            let mut lines = cpus::lines(&opened, record.as_ref());
            if let Some(path) = kernel {
                let map = open::Files::map_plain(path)?;
                let elf = open_kernel(&opened, &map, path)?;
                for line in &mut lines {
                    line.function = line.rip.and_then(|rip| elf.function_name(rip));
                }
            } else if let Some(table) = rip_names(&opened, system_map.as_deref())? {
                for line in &mut lines {
                    line.function = line
                        .rip
                        .and_then(|rip| table.name_of(rip))
                        .map(|named| named.to_string());
                }
            }
            answer(
                cli.json,
                Versioned {
                    cpus: Some(&lines),
                    ..Versioned::default()
                },
                || cpus::render_lines(&lines, !opened.is_linux()),
            )?;
        }
        Command::Regs {
            dump,
            cpu,
            kernel,
            system_map,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_and_warn(&files)?;
            let mut regs = cpus::regs(&opened, *cpu)?;
            let rip = regs
                .prstatus
                .iter()
                .find(|(name, _)| matches!(*name, "rip" | "eip"))
                .map(|&(_, value)| value);
            if let Some(path) = kernel {
                let map = open::Files::map_plain(path)?;
                let elf = open_kernel(&opened, &map, path)?;
                regs.function = rip.and_then(|rip| elf.function_name(rip));
            } else if let Some(table) = rip_names(&opened, system_map.as_deref())? {
                regs.function = rip
                    .and_then(|rip| table.name_of(rip))
                    .map(|named| named.to_string());
            }
            answer(
                cli.json,
                Versioned {
                    regs: Some(&regs),
                    ..Versioned::default()
                },
                || cpus::render_regs(&regs),
            )?;
        }
        Command::Rd {
            dump,
            physical,
            cpu,
            addr,
            len,
            raw,
            ram,
            system_map,
        } => {
            let len = match len {
                Some(text) => rd::number(text).map_err(rd::BadRange)?,
                None => 64,
            };
            let files = open::Files::map(dump)?;
            let opened = open_dump(&files, *ram)?;
            let addr = if *physical {
                sym::address(addr, &mut || {
                    anyhow::bail!("a physical address is a number, not a symbol")
                })?
            } else {
                let symbols = std::cell::OnceCell::new();
                sym::address(addr, &mut || {
                    lookup(&symbols, &opened, system_map.as_deref(), None)
                })?
            };
            let mut runs = if *physical {
                rd::runs(&opened, addr, len)?
            } else {
                let space = vaddr::space(&opened, *cpu)?;
                vaddr::runs(&opened, &space, addr, len)?
            };
            if cli.json {
                rd::add_hex(&mut runs);
            }
            if *raw {
                let mut out = std::io::stdout().lock();
                for run in &runs {
                    if run.bytes.is_empty() {
                        out.flush()?;
                        eprintln!(
                            "crashkit: {:#x}: {}: not in the dump ({} bytes)",
                            run.start, run.state, run.len
                        );
                        return Ok(ExitCode::from(1));
                    }
                    out.write_all(&run.bytes)?;
                }
                out.flush()?;
            } else {
                answer(
                    cli.json,
                    Versioned {
                        rd: Some(&runs),
                        ..Versioned::default()
                    },
                    || rd::render(&runs),
                )?;
            }
        }
        Command::Bt {
            dump,
            cpu,
            all,
            kernel,
            debug_dir,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_and_warn(&files)?;
            // A Linux dump unwinds with its own ORC tables: the ELF is
            // optional there (for DWARF's names and lines).
            let mut no_elf = None;
            let path = match bt::kernel_file(&opened, kernel.as_deref(), debug_dir) {
                Ok(path) => Some(path),
                Err(e) if opened.is_linux() => {
                    no_elf = Some(format!("{e:#}"));
                    None
                }
                Err(e) => return Err(UsageError(format!("{e:#}")).into()),
            };
            let kernel_file = path.as_deref().map(open::Files::map_plain).transpose()?;
            let elf = match (&path, &kernel_file) {
                (Some(path), Some(map)) => Some(open_kernel(&opened, map, path)?),
                _ => None,
            };
            let which = if *all {
                Some(cpus::numbers(cpus::cpus_of(&opened).0))
            } else {
                cpu.map(|c| vec![c])
            };
            let traces = bt::backtraces(&opened, elf.as_ref(), which).map_err(|e| {
                match e.downcast::<bt::NoUnwinder>() {
                    Ok(none) => UsageError(match &no_elf {
                        Some(why) => format!("{}; {why}", none.0),
                        None => none.0,
                    })
                    .into(),
                    Err(e) => e,
                }
            })?;
            answer(
                cli.json,
                Versioned {
                    bt: Some(&traces),
                    ..Versioned::default()
                },
                || bt::render(&traces),
            )?;
            let early: Vec<String> = traces
                .iter()
                .filter(|t| !t.complete)
                .map(|t| format!("CPU {}", t.cpu))
                .collect();
            if !early.is_empty() {
                eprintln!(
                    "crashkit: the backtrace stopped before the stack's start on {} (the reason is after its frames)",
                    early.join(", ")
                );
                return Ok(ExitCode::from(1));
            }
        }
        Command::Log {
            dump,
            kernel,
            debug_dir,
            tail,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_and_warn(&files)?;
            let linux = opened
                .vmcoreinfo()
                .is_some_and(|info| info.get("SYMBOL(prb)").is_some());
            if !linux && let Some((found_by, address, bytes)) = crashlog::find(&opened)? {
                // A damaged area is the dump's problem (exit 1); what
                // follows (the ELF) is the user's to give (exit 2).
                let area = crashkit_log::read::AreaView::parse(&bytes)
                    .with_context(|| format!("the crash log at {address:#x}"))?;
                let id = area.build_id().map(<[u8]>::to_vec);
                let path = crashlog::kernel_file(id.as_deref(), kernel.as_deref(), debug_dir)
                    .map_err(|e| UsageError(format!("{e:#}")))?;
                let elf = open::Files::map_plain(&path)?;
                let mut decoded = crashlog::decode(found_by, address, &bytes, &path, &elf)
                    .map_err(|e| UsageError(format!("{e:#}")))?;
                if let Some(count) = tail {
                    decoded.tail(*count);
                }
                answer(
                    cli.json,
                    Versioned {
                        crash_log: Some(&decoded),
                        ..Versioned::default()
                    },
                    || crashlog::render(&decoded),
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut log = log::read(&opened)?;
            if let Some(count) = tail {
                log.tail(*count);
            }
            answer(
                cli.json,
                Versioned {
                    log: Some(&log),
                    ..Versioned::default()
                },
                || log::render(&log),
            )?;
        }
        Command::Vtop {
            dump,
            addr,
            cpu,
            system_map,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_and_warn(&files)?;
            let symbols = std::cell::OnceCell::new();
            let addr = sym::address(addr, &mut || {
                lookup(&symbols, &opened, system_map.as_deref(), None)
            })?;
            let space = vaddr::space(&opened, *cpu)?;
            let translation = vaddr::translate(&opened, &space, addr);
            answer(
                cli.json,
                Versioned {
                    vtop: Some(&translation),
                    ..Versioned::default()
                },
                || vaddr::render(&translation),
            )?;
            if translation.phys.is_none() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Sym {
            dump,
            what,
            list,
            kernel,
            system_map,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_and_warn(&files)?;
            let table = sym::table(
                &opened,
                sym::Files {
                    system_map: system_map.as_deref(),
                    kernel: kernel.as_deref(),
                },
            )
            .map_err(|e| UsageError(format!("{e:#}")))?;
            let answers = if *list {
                sym::list(&table)
            } else {
                sym::answer(&table, what)?
            };
            answer(
                cli.json,
                Versioned {
                    sym: Some(&answers),
                    ..Versioned::default()
                },
                || sym::render(&answers),
            )?;
        }
        Command::Record { dump, scan, ram } => {
            let files = open::Files::map(dump)?;
            let opened = open_dump(&files, *ram)?;
            let found = with_progress(cli.json, |progress| record::find(&opened, *scan, progress));
            answer(
                cli.json,
                Versioned {
                    record: Some(&found),
                    ..Versioned::default()
                },
                || record::render(&found),
            )?;
            if found.records.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Verify { dump } => {
            let files = open::Files::map(dump)?;
            let opened = open::open(&files)?;
            let verdict = with_progress(cli.json, |progress| verify::verify(&opened, progress));
            answer(
                cli.json,
                Versioned {
                    verify: Some(&verdict),
                    ..Versioned::default()
                },
                || verify::render(&verdict),
            )?;
            if !verdict.ok {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Report {
            dump,
            output,
            kernel,
            debug_dir,
            no_verify,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_and_warn(&files)?;
            let symbols = report::Symbols {
                kernel: kernel.as_deref(),
                debug_dir,
            };
            let gathered = with_progress(cli.json, |progress| {
                report::gather(&files, &opened, &symbols, !*no_verify, progress)
            });
            let text = if cli.json {
                json(&Versioned {
                    report: Some(&gathered),
                    ..Versioned::default()
                })?
            } else {
                report::html::page(&gathered)
            };
            match output {
                Some(path) => {
                    std::fs::write(path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("crashkit: wrote {}", path.display());
                }
                None => print(&text)?,
            }
        }
        Command::Triage {
            paths,
            html,
            kernel,
            debug_dir,
            verify,
        } => {
            // The ELF is parsed once for every dump.
            let map = kernel.as_deref().map(open::Files::map_plain).transpose()?;
            let parsed = match (kernel.as_deref(), map.as_deref()) {
                (Some(path), Some(map)) => Some(
                    bt::Kernel::parse(map)
                        .with_context(|| format!("{}", path.display()))
                        .map_err(|e| UsageError(format!("{e:#}")))?,
                ),
                _ => None,
            };
            let kernels = triage::Kernels {
                kernel: kernel.as_deref().zip(parsed.as_ref()),
                debug_dir,
                verify: *verify,
            };
            let dumps = triage::expand(paths);
            let mut answer_ = with_progress(cli.json, |progress| {
                triage::triage(&dumps, &kernels, progress)
            });
            if let Some(dir) = html {
                write_triage_html(dir, &mut answer_, &kernels, cli.json)?;
            }
            answer(
                cli.json,
                Versioned {
                    triage: Some(&answer_),
                    ..Versioned::default()
                },
                || triage::render(&answer_),
            )?;
        }
        Command::Save {
            device,
            out,
            force,
            clear,
        } => {
            let saved = save::save(device, out, *force, *clear)?;
            answer(
                cli.json,
                Versioned {
                    save: Some(&saved),
                    ..Versioned::default()
                },
                || save::render(&saved),
            )?;
        }
        Command::Convert {
            dump,
            out,
            to,
            codec,
            keep_zero,
            zero_tails,
        } => {
            let files = open::Files::map(dump)?;
            let opened = open_and_warn(&files)?;
            let zero = match (keep_zero, zero_tails) {
                (true, _) => convert::ZeroPages::Written,
                (false, true) => convert::ZeroPages::Tails,
                (false, false) => convert::ZeroPages::Holes,
            };
            let written = with_progress(cli.json, |progress| {
                convert::convert(&opened, out, *to, *codec, zero, progress)
            });
            let written = written?;
            answer(
                cli.json,
                Versioned {
                    convert: Some(&written),
                    ..Versioned::default()
                },
                || convert::render(out, *to, &written),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `triage --html DIR`: a report per readable dump under DIR/reports/
/// (numbered in row order, named after the dump's first file), then
/// DIR/index.html linking them.
fn write_triage_html(
    dir: &std::path::Path,
    triaged: &mut triage::Triage,
    kernels: &triage::Kernels<'_>,
    json_wanted: bool,
) -> anyhow::Result<()> {
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports)
        .with_context(|| format!("cannot create {}", reports.display()))?;
    let bar = progress_bar(json_wanted);
    bar.set_length(triaged.rows.len() as u64);
    for (index, row) in triaged.rows.iter_mut().enumerate() {
        bar.set_position(index as u64);
        if row.error.is_some() {
            continue;
        }
        let Ok(files) = open::Files::map(&row.dump) else {
            continue;
        };
        let Ok(opened) = open::open(&files) else {
            continue;
        };
        let symbols = report::Symbols {
            kernel: kernels.kernel.map(|(path, _)| path),
            debug_dir: kernels.debug_dir,
        };
        let gathered = report::gather(&files, &opened, &symbols, true, &mut |_, _| {});
        let first = row.dump.split(',').next().unwrap_or("dump");
        let base = std::path::Path::new(first)
            .file_name()
            .map_or("dump".into(), |n| n.to_string_lossy().into_owned());
        let name = format!("{:04}-{base}.html", index + 1);
        let path = reports.join(&name);
        std::fs::write(&path, report::html::page(&gathered))
            .with_context(|| format!("cannot write {}", path.display()))?;
        row.report = Some(format!("reports/{name}"));
    }
    bar.finish_and_clear();
    let index = dir.join("index.html");
    std::fs::write(&index, triage::html::index(triaged))
        .with_context(|| format!("cannot write {}", index.display()))?;
    eprintln!("crashkit: wrote {}", index.display());
    Ok(())
}

/// The symbols that name RIPs without a kernel ELF: `--system-map`'s when
/// given (an error if it cannot be used), else a Linux dump's own kallsyms
/// when it has them (none otherwise: naming is a bonus, not a need).
fn rip_names<'o>(
    dump: &'o open::Opened<'_>,
    system_map: Option<&std::path::Path>,
) -> anyhow::Result<Option<sym::Symbols<'o>>> {
    match system_map {
        Some(path) => Ok(Some(
            sym::table(
                dump,
                sym::Files {
                    system_map: Some(path),
                    kernel: None,
                },
            )
            .map_err(|e| UsageError(format!("{e:#}")))?,
        )),
        None if dump.is_linux() => Ok(dump.kallsyms().ok().map(sym::Symbols::Dump)),
        None => Ok(None),
    }
}

/// The symbol table `cell` holds, loaded on first use ([`sym::table`]):
/// for an address argument that names a symbol.
fn lookup<'c>(
    cell: &'c std::cell::OnceCell<Result<sym::Symbols<'c>, String>>,
    dump: &'c open::Opened<'_>,
    system_map: Option<&std::path::Path>,
    kernel: Option<&std::path::Path>,
) -> anyhow::Result<&'c symbols::Table> {
    cell.get_or_init(|| {
        sym::table(dump, sym::Files { system_map, kernel }).map_err(|e| format!("{e:#}"))
    })
    .as_deref()
    .map_err(|why| anyhow::anyhow!("{why}"))
}

/// Parse the kernel ELF in `map` and check it is the dump's kernel.
fn open_kernel<'m>(
    dump: &open::Opened<'_>,
    map: &'m [u8],
    path: &std::path::Path,
) -> anyhow::Result<bt::Kernel<'m>> {
    let elf = bt::Kernel::parse(map).with_context(|| format!("{}", path.display()))?;
    bt::check_build_id(dump, &elf, path).map_err(|e| UsageError(format!("{e:#}")))?;
    Ok(elf)
}

/// A request that cannot be served as asked (exit code 2): no kernel ELF,
/// or not the kernel that crashed.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A command's JSON: the schema version first, then its one payload (a
/// default value has the current [`info::SCHEMA`] and no payload).
#[derive(serde::Serialize)]
struct Versioned<'a> {
    schema: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<&'a [cpus::CpuLine]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regs: Option<&'a cpus::CpuRegs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a record::Records>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rd: Option<&'a [rd::Run]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vtop: Option<&'a vaddr::Translation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sym: Option<&'a sym::Answers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a log::Log>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crash_log: Option<&'a crashlog::CrashLog>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bt: Option<&'a [bt::Backtrace]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<&'a verify::Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    convert: Option<&'a convert::Written>,
    #[serde(skip_serializing_if = "Option::is_none")]
    save: Option<&'a save::Saved>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a report::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    triage: Option<&'a triage::Triage>,
}

impl Default for Versioned<'_> {
    fn default() -> Self {
        Self {
            schema: info::SCHEMA,
            cpus: None,
            regs: None,
            record: None,
            rd: None,
            vtop: None,
            sym: None,
            log: None,
            crash_log: None,
            bt: None,
            verify: None,
            convert: None,
            save: None,
            report: None,
            triage: None,
        }
    }
}

/// A command's answer: `payload` as JSON (with the schema version) when
/// `--json` was given, else `text()`.
fn answer(
    json_wanted: bool,
    payload: Versioned<'_>,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json_wanted {
        print(&json(&payload)?)
    } else {
        print(&text())
    }
}

/// Run `job` with a progress callback `(done, total)` that draws a bar on
/// standard error (a terminal only, never with `--json`), cleared when the
/// job returns.
fn with_progress<T>(json_wanted: bool, job: impl FnOnce(&mut dyn FnMut(u64, u64)) -> T) -> T {
    let bar = progress_bar(json_wanted);
    let result = job(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    result
}

/// A progress bar on standard error: drawn on a terminal only, and never
/// with `--json`.
fn progress_bar(json_wanted: bool) -> indicatif::ProgressBar {
    if json_wanted {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
    }
}

/// Pretty JSON and a newline.
fn json(value: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// Open the mapped `files` as a dump, warning when it is incomplete or
/// damaged (from what opening found: no page counts, no page read).
fn open_and_warn(files: &open::Files) -> anyhow::Result<open::Opened<'_>> {
    let opened = open::open(files)?;
    let (completeness, damage) = opened.health();
    warn(files, &completeness.to_string(), &damage);
    Ok(opened)
}

/// Open `files` as a raw RAM image (`--ram`) or as a dump (warning when
/// it is incomplete or damaged).
fn open_dump(files: &open::Files, ram: bool) -> anyhow::Result<open::Opened<'_>> {
    if ram {
        open::open_ram(files)
    } else {
        open_and_warn(files)
    }
}

/// An incomplete or damaged dump still answers; say so on standard error.
fn warn(files: &open::Files, completeness: &str, damage: &[String]) {
    let files = files
        .parts
        .iter()
        .map(|(path, _)| path.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    if completeness.starts_with("incomplete") {
        eprintln!("crashkit: warning: {files}: {completeness}");
    }
    for damage in damage {
        eprintln!("crashkit: warning: {files}: {damage}");
    }
}

/// Write to standard output; a closed pipe (`| head`) ends quietly.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
