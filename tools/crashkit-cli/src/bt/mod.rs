//! `crashkit bt DUMP [CPU] [-a] [--kernel ELF]`: each CPU's call stack,
//! unwound from the registers the dump holds for it.
//!
//! Two unwinders:
//! - a Linux dump: the ORC tables the kernel keeps in memory, found
//!   through its own kallsyms (`orc`, `crate::orc`), the stacks read
//!   through `init_top_pgt` (Linux's CPU notes have no CR3), frames named
//!   by kallsyms as Linux's own traces name them (`panic+0x118/0x2f4`), and
//!   by the kernel ELF's DWARF too (functions, inlined frames, file:line)
//!   when one is given or found. No vmlinux is needed.
//! - any other kernel (a crashkit kernel), or Linux without ORC tables:
//!   the kernel ELF's call-frame information (`.debug_frame`, else
//!   `.eh_frame`; gimli), frame pointers where there is none (`cfi`),
//!   the stack read through the CPU's own page tables (`vaddr`).
//!
//! The kernel ELF is `--kernel FILE`, or found by the dump's build-id
//! (VMCOREINFO `BUILD-ID`) under `--debug-dir` as
//! `.build-id/xx/rest.debug`. An ELF whose build-id differs from the
//! dump's is refused; a build-id missing on either side is a warning.
//!
//! An unwind is bounded: at most [`MOST_FRAMES`] frames, every step checked
//! (see each unwinder). Each backtrace says how it ended: complete (a
//! Linux stack's end-of-stack entry, or its entry from user space; a
//! return address of zero) or stopped early, and why. The command exits
//! with 1 when any stopped early.

mod call;
mod cfi;
mod kernel;
mod orc;

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Serialize;

use crashkit_dump_format::read::CpuRegisters;

pub use kernel::{Function, Kernel};
#[cfg(test)]
pub use orc::Interrupted;

use crate::cpus;
use crate::open::Opened;
use crate::symbols::Table;
use crate::vaddr;

/// The most frames one unwind gives.
pub const MOST_FRAMES: usize = 64;

/// One frame of a backtrace.
#[derive(Debug, Serialize)]
pub struct Frame {
    /// The instruction address (the return address for frames after the
    /// first, unless an interrupt frame gave it).
    pub pc: u64,
    /// The stack pointer in this frame.
    pub sp: u64,
    /// The symbol `pc` is in, as Linux prints it (`name+0xoff/0xsize`;
    /// kallsyms), when the dump has a symbol table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// The functions there from the kernel ELF's DWARF, innermost first
    /// (inlined ones before the one they are inlined into).
    pub functions: Vec<Function>,
    /// How the caller's frame was found from this one: `cfi`, `frame
    /// pointer`, `orc`, `orc pt_regs`, `orc iret frame`; absent on the last
    /// frame.
    pub unwound_by: Option<&'static str>,
    /// The saved registers the caller's frame came from (an interrupt,
    /// exception or system call entry), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<orc::Interrupted>,
}

/// One CPU's backtrace.
#[derive(Debug, Serialize)]
pub struct Backtrace {
    /// The CPU as `cpus` numbers it.
    pub cpu: usize,
    /// The panicking CPU.
    pub panicking: bool,
    /// How it was unwound.
    pub unwinder: String,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// The stack was walked to its start ([`Backtrace::stopped`] says
    /// which); false when it stopped early.
    pub complete: bool,
    /// How the unwind ended, or why it stopped.
    pub stopped: String,
}

/// Open the kernel ELF for `dump`: `kernel`, else the one under
/// `debug_dir` named by the dump's build-id. A build-id that differs is
/// an error; one missing on either side is a warning on standard error.
pub fn kernel_file(
    dump: &Opened<'_>,
    kernel: Option<&Path>,
    debug_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let dump_id = build_id(dump);
    match (kernel, &dump_id) {
        (Some(path), _) => Ok(path.to_path_buf()),
        (None, Some(id)) => {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let path = debug_file(id, debug_dir);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "no kernel ELF: give --kernel FILE (the dump's build-id {hex} is not at {})",
                    path.display()
                )
            }
        }
        (None, None) => bail!("no kernel ELF: give --kernel FILE (the dump names no build-id)"),
    }
}

/// Where a debug directory keeps the ELF of build-id `id`:
/// `DIR/.build-id/xx/rest.debug`, as gdb and debuginfod lay it out.
pub fn debug_file(id: &[u8], debug_dir: &Path) -> PathBuf {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    debug_dir
        .join(".build-id")
        .join(&hex[..2.min(hex.len())])
        .join(format!("{}.debug", hex.get(2..).unwrap_or("")))
}

/// The build-id VMCOREINFO names.
fn build_id(dump: &Opened<'_>) -> Option<Vec<u8>> {
    let info = dump.vmcoreinfo()?;
    let (bytes, len) = info.build_id()?;
    Some(bytes.get(..len)?.to_vec())
}

/// Check the kernel's build-id against the dump's: a mismatch is an
/// error; a missing one a warning on standard error.
pub fn check_build_id(dump: &Opened<'_>, kernel: &Kernel<'_>, path: &Path) -> anyhow::Result<()> {
    if let Some(warning) = build_id_unchecked(dump, kernel, path)? {
        eprintln!("crashkit: warning: {warning}");
    }
    Ok(())
}

/// [`check_build_id`]'s check: a mismatch is an error, a build-id missing
/// on either side the warning's text.
pub fn build_id_unchecked(
    dump: &Opened<'_>,
    kernel: &Kernel<'_>,
    path: &Path,
) -> anyhow::Result<Option<String>> {
    let hex = |id: &[u8]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok(match (build_id(dump), &kernel.build_id) {
        (Some(dump_id), Some(elf_id)) if dump_id != *elf_id => bail!(
            "{}: its build-id {} is not the dump's {}: not the kernel that crashed",
            path.display(),
            hex(elf_id),
            hex(&dump_id)
        ),
        (None, _) => Some(format!(
            "the dump names no build-id; cannot check that {} is the kernel that crashed",
            path.display()
        )),
        (_, None) => Some(format!(
            "{} has no build-id; cannot check that it is the kernel that crashed",
            path.display()
        )),
        _ => None,
    })
}

/// The ORC unwinder of a Linux dump: its tables, its symbols, its memory.
struct Linux<'d> {
    /// The stacks, read a page at a time.
    stacks: crate::cached::Cached<'d>,
    tables: crate::orc::Tables<'d>,
    symbols: &'d Table,
    /// `_stext` .. `_etext`, and `_sinittext` .. `_einittext` when the
    /// symbols have them: init code is freed after boot, but its ORC
    /// entries stay, and the boot CPU's idle stack starts there.
    text: [(u64, u64); 2],
    end: u64,
}

/// Modules and BPF code live above the image, below the fixmap.
const MODULES_END: u64 = 0xffff_ffff_ff00_0000;

impl orc::Kernel for Linux<'_> {
    fn entry(&self, pc: u64) -> Result<Option<(u64, crate::orc::Entry)>, String> {
        self.tables.find(pc)
    }
    fn in_text(&self, addr: u64) -> bool {
        self.text
            .iter()
            .any(|&(start, end)| (start..end).contains(&addr))
    }
    fn in_modules(&self, addr: u64) -> bool {
        (self.end..MODULES_END).contains(&addr)
    }
    fn function_start(&self, addr: u64) -> Option<u64> {
        self.symbols.name_of(addr).map(|named| named.symbol.addr)
    }
}

impl orc::Stack for Linux<'_> {
    fn read_u64(&self, addr: u64) -> Result<u64, String> {
        self.stacks.u64(addr)
    }
}

/// A frame's symbol as Linux prints it: the symbol `lookup` is in, with
/// the offset of `pc` (a return address names its call's function with
/// the return address's own offset, as `%pB` does).
fn linux_symbol(symbols: &Table, pc: u64, lookup: u64) -> Option<String> {
    let mut named = symbols.name_of(lookup)?;
    named.offset = pc.wrapping_sub(named.symbol.addr);
    Some(named.to_string())
}

/// The ORC unwinder of `dump`, or why there is none.
fn linux_unwinder<'d>(
    dump: &'d Opened<'_>,
    memory: &'d crate::linux::Memory<'d, '_>,
) -> Result<Linux<'d>, String> {
    let symbols = dump
        .kallsyms()
        .map_err(|why| format!("no kallsyms: {why}"))?;
    let release = dump
        .vmcoreinfo()
        .and_then(|info| info.get("OSRELEASE").map(str::to_owned));
    let tables = crate::orc::Tables::locate(symbols, release.as_deref(), memory)?;
    let init = match (
        symbols.address_of("_sinittext"),
        symbols.address_of("_einittext"),
    ) {
        (Ok(start), Ok(end)) => (start, end),
        _ => (0, 0),
    };
    let text = [
        (symbols.address_of("_stext")?, symbols.address_of("_etext")?),
        init,
    ];
    let end = symbols.address_of("_end")?;
    Ok(Linux {
        stacks: crate::cached::Cached::new(memory),
        tables,
        symbols,
        text,
        end,
    })
}

/// The backtraces of `which` CPUs, by number ([`cpus::number`]; `None`:
/// the panicking one, else the first note). A Linux dump is unwound with
/// its ORC tables when it has them, else with `kernel`'s CFI; without
/// either there is nothing to unwind with (an error naming both).
pub fn backtraces(
    dump: &Opened<'_>,
    kernel: Option<&Kernel<'_>>,
    which: Option<Vec<usize>>,
) -> anyhow::Result<Vec<Backtrace>> {
    let (list, panic) = cpus::cpus_of(dump);
    let is_panicking = |place: usize| {
        list.get(place)
            .is_some_and(|c| panic == Some(cpus::cpu_index(place, c)))
    };
    let numbers = which.unwrap_or_else(|| {
        vec![cpus::number(
            list,
            (0..list.len()).find(|&p| is_panicking(p)).unwrap_or(0),
        )]
    });
    let memory = crate::linux::Memory::new(dump);
    let linux = if dump.is_linux() {
        match linux_unwinder(dump, &memory) {
            Ok(linux) => Some(linux),
            Err(why) if kernel.is_some() => {
                eprintln!(
                    "crashkit: warning: Linux's ORC tables cannot be used ({why}); unwinding with the kernel ELF's call-frame information"
                );
                None
            }
            Err(why) => bail!(NoUnwinder(format!(
                "cannot unwind: Linux's ORC tables cannot be used ({why}), and there is no kernel ELF"
            ))),
        }
    } else {
        None
    };
    if linux.is_none() && kernel.is_none() {
        bail!(NoUnwinder("no kernel ELF: give --kernel FILE".into()));
    }
    let mut out = Vec::new();
    for number in numbers {
        let found = cpus::place(list, number);
        let Some((place, cpu)) = found.and_then(|place| Some((place, list.get(place)?))) else {
            bail!(crate::cpus::NoSuchCpu {
                asked: number,
                count: list.len()
            });
        };
        let panicking = is_panicking(place);
        let CpuRegisters::X86_64(registers) = cpu.registers else {
            out.push(Backtrace {
                cpu: number,
                panicking,
                unwinder: "none".into(),
                frames: Vec::new(),
                complete: false,
                stopped: "i386 registers: not unwound".into(),
            });
            continue;
        };
        if let Some(linux) = &linux {
            out.push(orc_backtrace(linux, kernel, number, panicking, &registers));
            continue;
        }
        let Some(kernel) = kernel else {
            bail!(NoUnwinder("no kernel ELF: give --kernel FILE".into()));
        };
        // The CPU's own page tables; a CPU whose CR3 the dump lacks (a
        // writer that saved control registers for some CPUs only) reads
        // its stack through another CPU's, the panicking one's first: a
        // kernel's CPUs share its mappings, and the unwinder says whose.
        let mut unwinder = "cfi (the kernel ELF's call-frame information)".to_owned();
        let (frames, stopped, complete) = match vaddr::space(dump, Some(number)) {
            Ok(space) => cfi::unwind(dump, &space, kernel, &registers),
            Err(why) => {
                let panicking_cpu = (0..list.len())
                    .find(|&p| is_panicking(p))
                    .map(|p| cpus::number(list, p));
                let borrowed = panicking_cpu
                    .into_iter()
                    .chain(cpus::numbers(list))
                    .find_map(|other| Some((other, vaddr::space(dump, Some(other)).ok()?)));
                match borrowed {
                    Some((other, space)) => {
                        unwinder.push_str(&format!(
                            "; the stack read through CPU {other}'s page tables (this CPU's CR3 is not in the dump)"
                        ));
                        cfi::unwind(dump, &space, kernel, &registers)
                    }
                    // The first frame needs no memory; the rest need the
                    // stack.
                    None => (
                        vec![Frame {
                            pc: registers.rip,
                            sp: registers.rsp,
                            symbol: None,
                            functions: kernel.symbolise(registers.rip),
                            unwound_by: None,
                            interrupted: None,
                        }],
                        format!("no page tables to read the stack with: {why}"),
                        false,
                    ),
                }
            }
        };
        out.push(Backtrace {
            cpu: number,
            panicking,
            unwinder,
            frames,
            complete,
            stopped,
        });
    }
    Ok(out)
}

/// One CPU's backtrace by the ORC tables.
fn orc_backtrace(
    linux: &Linux<'_>,
    kernel: Option<&Kernel<'_>>,
    number: usize,
    panicking: bool,
    registers: &crashkit_dump_format::Registers,
) -> Backtrace {
    let (walked, ending) = orc::walk(registers, linux, linux, MOST_FRAMES);
    let frames = walked
        .iter()
        .map(|frame| {
            let lookup = if frame.exact {
                frame.pc
            } else {
                frame.pc.wrapping_sub(1)
            };
            Frame {
                pc: frame.pc,
                sp: frame.sp,
                symbol: linux_symbol(linux.symbols, frame.pc, lookup),
                // DWARF's functions only: where the ELF has just a symbol
                // (assembly), kallsyms names it as Linux does.
                functions: kernel
                    .map(|k| k.symbolise(lookup))
                    .filter(|functions| functions.iter().any(|f| f.file.is_some()))
                    .unwrap_or_default(),
                unwound_by: frame.step.map(orc::Step::name),
                interrupted: frame.interrupted,
            }
        })
        .collect();
    let stopped = match &ending {
        orc::Ending::User { rip, rsp } if walked.is_empty() => {
            format!("the CPU was in user space (RIP {rip:#x}, RSP {rsp:#x}): no kernel stack")
        }
        orc::Ending::User { rip, rsp } => {
            format!("entered from user space (RIP {rip:#x}, RSP {rsp:#x})")
        }
        orc::Ending::EndOfStack => format!(
            "the end of the stack{}",
            walked
                .last()
                .and_then(|f| linux.symbols.name_of(f.pc))
                .map(|named| format!(" ({}, marked by ORC)", named.symbol.name))
                .unwrap_or_default()
        ),
        orc::Ending::Stopped(why) => why.clone(),
    };
    let layout = linux.tables.layout;
    Backtrace {
        cpu: number,
        panicking,
        unwinder: format!(
            "orc (Linux's tables in the dump: format {}, {} entries)",
            layout.version.number(),
            layout.count
        ),
        frames,
        complete: ending.complete(),
        stopped,
    }
}

/// Nothing to unwind with: a usage error (exit 2).
#[derive(Debug)]
pub struct NoUnwinder(pub String);

impl std::fmt::Display for NoUnwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoUnwinder {}

/// The text: per CPU, one line a frame, inlined functions under it.
pub fn render(traces: &[Backtrace]) -> String {
    let mut out = String::new();
    for trace in traces {
        out.push_str(&format!(
            "CPU {}{}\n",
            trace.cpu,
            if trace.panicking { " (panicking)" } else { "" }
        ));
        for (index, frame) in trace.frames.iter().enumerate() {
            let mut functions = frame.functions.iter();
            let describe = |f: &Function| {
                let name = f.name.as_deref().unwrap_or("??");
                match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!("{name} ({file}:{line})"),
                    (Some(file), None) => format!("{name} ({file})"),
                    _ => name.to_owned(),
                }
            };
            let named = functions.next().filter(|f| f.name.is_some());
            let name = match (named, &frame.symbol) {
                (Some(first), _) => describe(first),
                (None, Some(symbol)) => symbol.clone(),
                (None, None) => "??".to_owned(),
            };
            out.push_str(&format!(" #{index:<2} {:#018x} in {name}\n", frame.pc));
            if named.is_some() {
                for outer in functions {
                    out.push_str(&format!("{:25}inlined into {}\n", "", describe(outer)));
                }
            }
            if let Some(regs) = &frame.interrupted {
                out.push_str(&format!(
                    "     -- {} at {:#x}: {} RIP {:#x}, RSP {:#x}\n",
                    if regs.full {
                        "pt_regs"
                    } else {
                        "interrupt frame"
                    },
                    regs.at,
                    if regs.user {
                        "from user space,"
                    } else {
                        "interrupted kernel code at"
                    },
                    regs.rip,
                    regs.rsp
                ));
            }
        }
        out.push_str(&format!(
            " ({}: {})\n",
            if trace.complete {
                "complete"
            } else {
                "stopped early"
            },
            trace.stopped
        ));
    }
    out
}
