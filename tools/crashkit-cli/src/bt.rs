//! `crashkit bt DUMP [CPU] [-a] --kernel ELF`: each CPU's call stack,
//! unwound from the registers the dump holds for it with the kernel ELF's
//! call-frame information (`.debug_frame`, else `.eh_frame`; gimli), frame
//! pointers where there is none, and symbolised with inlined frames and
//! file:line (addr2line). The stack is read through the CPU's own page
//! tables (`vaddr`).
//!
//! The kernel ELF is `--kernel FILE`, or found by the dump's build-id
//! (VMCOREINFO `BUILD-ID`) under `--debug-dir` as
//! `.build-id/xx/rest.debug`. An ELF whose build-id differs from the
//! dump's is refused; a build-id missing on either side is a warning.
//!
//! An unwind is bounded: at most [`MOST_FRAMES`] frames, and every step
//! must move the stack pointer up (except out of an interrupt or exception
//! stub, whose call-frame information hands over the interrupted registers,
//! possibly on another stack); it stops, saying why, at a return
//! address of zero or outside the kernel's text, a stack the dump does not
//! have, or a rule it does not evaluate.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use gimli::{
    BaseAddresses, CfaRule, DebugFrame, EhFrame, EndianSlice, EvaluationResult, LittleEndian,
    Location, RegisterRule, UnwindContext, UnwindExpression, UnwindSection, UnwindTableRow, Value,
};
use serde::Serialize;

use crashkit_dump_format::read::CpuRegisters;

use crate::cpus;
use crate::open::{Dump, Opened};
use crate::vaddr::{self, Space};

/// The most frames one unwind gives.
pub const MOST_FRAMES: usize = 64;

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// Which section a CFI row came from.
#[derive(Clone, Copy)]
enum Source {
    Debug,
    Eh,
}

/// DWARF's x86_64 register numbers: rax rdx rcx rbx rsi rdi rbp rsp r8-r15,
/// then 16, the return address (RIP).
const REGISTERS: usize = 17;

/// Registers kept by the callee in the SysV ABI (rbx, rbp, r12-r15): when
/// a row has no rule for one, it holds the caller's value.
const CALLEE_SAVED: [u16; 6] = [3, 6, 12, 13, 14, 15];

/// A kernel ELF opened for unwinding and symbols.
pub struct Kernel<'a> {
    symbols: addr2line::Context<Slice<'a>>,
    debug_frame: Option<DebugFrame<Slice<'a>>>,
    eh_frame: Option<(EhFrame<Slice<'a>>, BaseAddresses)>,
    /// The executable ranges (`[start, end)` of its `SHF_EXECINSTR` sections).
    text: Vec<(u64, u64)>,
    /// Its build-id, if it has one.
    pub build_id: Option<Vec<u8>>,
    /// Function symbols (`STT_FUNC`, with a size), by address: names for
    /// code without DWARF (assembly entry stubs).
    functions: Vec<(u64, u64, String)>,
}

impl<'a> Kernel<'a> {
    /// Parse `bytes`, an ELF with DWARF.
    pub fn parse(bytes: &'a [u8]) -> anyhow::Result<Self> {
        let elf = goblin::elf::Elf::parse(bytes).context("not an ELF file")?;
        let section = |name: &str| -> Option<(&'a [u8], u64)> {
            let header = elf
                .section_headers
                .iter()
                .find(|h| elf.shdr_strtab.get_at(h.sh_name) == Some(name))?;
            let range = header.file_range()?;
            Some((bytes.get(range)?, header.sh_addr))
        };
        let load = |id: gimli::SectionId| -> Result<Slice<'a>, gimli::Error> {
            Ok(EndianSlice::new(
                section(id.name()).map_or(&[][..], |(data, _)| data),
                LittleEndian,
            ))
        };
        let dwarf = gimli::Dwarf::load(load).context("reading its DWARF")?;
        let symbols =
            addr2line::Context::from_dwarf(dwarf).context("reading its DWARF line tables")?;
        let debug_frame = section(".debug_frame").map(|(data, _)| {
            let mut frame = DebugFrame::new(data, LittleEndian);
            frame.set_address_size(8);
            frame
        });
        let eh_frame = section(".eh_frame").map(|(data, addr)| {
            let mut bases = BaseAddresses::default().set_eh_frame(addr);
            if let Some((_, text)) = section(".text") {
                bases = bases.set_text(text);
            }
            (EhFrame::new(data, LittleEndian), bases)
        });
        let text = elf
            .section_headers
            .iter()
            .filter(|h| h.is_executable() && h.sh_addr != 0)
            .map(|h| (h.sh_addr, h.sh_addr.saturating_add(h.sh_size)))
            .collect();
        // GNU's build-id note (type 3, name `GNU`): in `.note.gnu.build-id`
        // for most ELFs, in `.notes` beside Xen's for a vmlinux, and in
        // the program headers' notes of a file without sections.
        let is_build_id = |note: &goblin::elf::note::Note<'_>| {
            note.n_type == 3 && note.name.trim_end_matches('\0') == "GNU"
        };
        let build_id = elf
            .iter_note_sections(bytes, None)
            .and_then(|mut notes| {
                notes.find_map(|note| note.ok().filter(is_build_id).map(|n| n.desc.to_vec()))
            })
            .or_else(|| {
                elf.iter_note_headers(bytes).and_then(|mut notes| {
                    notes.find_map(|note| note.ok().filter(is_build_id).map(|n| n.desc.to_vec()))
                })
            });
        let mut functions: Vec<(u64, u64, String)> = elf
            .syms
            .iter()
            .filter(|sym| sym.is_function() || sym.st_type() == goblin::elf::sym::STT_NOTYPE)
            .filter(|sym| sym.st_value != 0)
            .filter_map(|sym| {
                let name = elf.strtab.get_at(sym.st_name)?;
                (!name.is_empty() && !name.starts_with('.'))
                    .then(|| (sym.st_value, sym.st_size, name.to_owned()))
            })
            .collect();
        functions.sort_by_key(|&(addr, _, _)| addr);
        Ok(Self {
            symbols,
            debug_frame,
            eh_frame,
            text,
            build_id,
            functions,
        })
    }

    fn in_text(&self, addr: u64) -> bool {
        self.text
            .iter()
            .any(|&(start, end)| (start..end).contains(&addr))
    }

    /// The functions at `pc`, innermost (inlined) first, with file:line.
    pub fn symbolise(&self, pc: u64) -> Vec<Function> {
        let mut out = Vec::new();
        if let Ok(mut frames) = self.symbols.find_frames(pc).skip_all_loads() {
            while let Ok(Some(frame)) = frames.next() {
                let name = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map(Cow::into_owned);
                let (file, line) = frame
                    .location
                    .map_or((None, None), |l| (l.file.map(str::to_owned), l.line));
                out.push(Function { name, file, line });
                if out.len() >= 16 {
                    break;
                }
            }
        }
        if out.iter().all(|f| f.name.is_none()) {
            // No DWARF here: the symbol table's nearest function symbol at
            // or below `pc`, with the offset into it.
            let at = self.functions.partition_point(|&(addr, _, _)| addr <= pc);
            if let Some((addr, size, name)) = at.checked_sub(1).and_then(|i| self.functions.get(i))
                && (*size == 0 || pc < addr + size)
                && self.in_text(*addr)
            {
                out = vec![Function {
                    name: Some(format!("{}+{:#x}", demangle(name), pc - addr)),
                    file: None,
                    line: None,
                }];
            }
        }
        out
    }

    /// The name of the function `pc` is in: the innermost one, with the
    /// function it is inlined into, if any.
    pub fn function_name(&self, pc: u64) -> Option<String> {
        let functions = self.symbolise(pc);
        let inner = functions.first()?.name.clone()?;
        Some(match functions.last().and_then(|f| f.name.as_deref()) {
            Some(outer) if functions.len() > 1 => format!("{inner} (inlined into {outer})"),
            _ => inner,
        })
    }

    /// The CFI row for `pc` and the section it came from.
    fn row(&self, pc: u64) -> Option<(UnwindTableRow<usize>, Source)> {
        let mut context = UnwindContext::new();
        if let Some(frame) = &self.debug_frame
            && let Ok(row) = frame.unwind_info_for_address(
                &BaseAddresses::default(),
                &mut context,
                pc,
                DebugFrame::cie_from_offset,
            )
        {
            return Some((row.clone(), Source::Debug));
        }
        if let Some((frame, bases)) = &self.eh_frame
            && let Ok(row) =
                frame.unwind_info_for_address(bases, &mut context, pc, EhFrame::cie_from_offset)
        {
            return Some((row.clone(), Source::Eh));
        }
        None
    }

    /// A DWARF expression of a CFI rule, from the section it is in.
    fn expression(
        &self,
        source: Source,
        expression: &UnwindExpression<usize>,
    ) -> Option<gimli::Expression<Slice<'a>>> {
        match source {
            Source::Debug => expression.get(self.debug_frame.as_ref()?).ok(),
            Source::Eh => expression.get(&self.eh_frame.as_ref()?.0).ok(),
        }
    }
}

/// A symbol's name, demangled when it is a Rust one.
fn demangle(name: &str) -> String {
    addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned()
}

/// A function at an address.
#[derive(Debug, Serialize)]
pub struct Function {
    /// Its demangled name, if the DWARF names it.
    pub name: Option<String>,
    /// Its source file.
    pub file: Option<String>,
    /// Its line.
    pub line: Option<u32>,
}

/// One frame of a backtrace.
#[derive(Debug, Serialize)]
pub struct Frame {
    /// The instruction address (the return address for frames after the
    /// first).
    pub pc: u64,
    /// The stack pointer in this frame.
    pub sp: u64,
    /// The functions there, innermost first (inlined ones before the one
    /// they are inlined into).
    pub functions: Vec<Function>,
    /// How the caller's frame was found from this one: `cfi` or `frame
    /// pointer`; absent on the last frame.
    pub unwound_by: Option<&'static str>,
}

/// One CPU's backtrace.
#[derive(Debug, Serialize)]
pub struct Backtrace {
    /// The CPU as `cpus` numbers it.
    pub cpu: usize,
    /// The panicking CPU.
    pub panicking: bool,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// Why the unwind stopped.
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
/// error; a missing one a warning.
pub fn check_build_id(dump: &Opened<'_>, kernel: &Kernel<'_>, path: &Path) -> anyhow::Result<()> {
    let hex = |id: &[u8]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match (build_id(dump), &kernel.build_id) {
        (Some(dump_id), Some(elf_id)) if dump_id != *elf_id => bail!(
            "{}: its build-id {} is not the dump's {}: not the kernel that crashed",
            path.display(),
            hex(elf_id),
            hex(&dump_id)
        ),
        (None, _) => eprintln!(
            "crashkit: warning: the dump names no build-id; cannot check that {} is the kernel that crashed",
            path.display()
        ),
        (_, None) => eprintln!(
            "crashkit: warning: {} has no build-id; cannot check that it is the kernel that crashed",
            path.display()
        ),
        _ => {}
    }
    Ok(())
}

/// The backtraces of `which` CPUs, by number ([`cpus::number`]; `None`:
/// the panicking one, else the first note).
pub fn backtraces(
    dump: &Opened<'_>,
    kernel: &Kernel<'_>,
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
    let mut out = Vec::new();
    for number in numbers {
        let found = cpus::place(list, number);
        let Some((place, cpu)) = found.and_then(|place| Some((place, list.get(place)?))) else {
            bail!(crate::cpus::NoSuchCpu {
                asked: number,
                count: list.len()
            });
        };
        let CpuRegisters::X86_64(registers) = cpu.registers else {
            out.push(Backtrace {
                cpu: number,
                panicking: is_panicking(place),
                frames: Vec::new(),
                stopped: "i386 registers: not unwound".into(),
            });
            continue;
        };
        let (frames, stopped) = match vaddr::space(dump, Some(number)) {
            Ok(space) => unwind(dump, &space, kernel, &registers),
            // The first frame needs no memory; the rest need the stack.
            Err(why) => (
                vec![Frame {
                    pc: registers.rip,
                    sp: registers.rsp,
                    functions: kernel.symbolise(registers.rip),
                    unwound_by: None,
                }],
                format!("no page tables to read the stack with: {why}"),
            ),
        };
        out.push(Backtrace {
            cpu: number,
            panicking: is_panicking(place),
            frames,
            stopped,
        });
    }
    Ok(out)
}

/// Evaluate a CFI `expression` over `registers` and memory (`read`), the
/// CFA pushed first when given (a register rule's expression); the value it
/// leaves. At most 256 steps.
fn evaluate(
    expression: gimli::Expression<Slice<'_>>,
    registers: &[Option<u64>; REGISTERS],
    read: &dyn Fn(u64) -> Result<u64, String>,
    cfa: Option<u64>,
) -> Result<u64, String> {
    let encoding = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let mut evaluation = expression.evaluation(encoding);
    if let Some(cfa) = cfa {
        evaluation.set_initial_value(cfa);
    }
    let mut result = evaluation.evaluate().map_err(|e| format!("{e}"))?;
    for _ in 0..256 {
        result = match result {
            EvaluationResult::Complete => {
                return match evaluation.result().first().map(|piece| &piece.location) {
                    Some(Location::Address { address }) => Ok(*address),
                    Some(Location::Value { value }) => {
                        value.to_u64(u64::MAX).map_err(|e| format!("{e}"))
                    }
                    other => Err(format!("an expression result not used: {other:?}")),
                };
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let value = registers
                    .get(usize::from(register.0))
                    .copied()
                    .flatten()
                    .ok_or_else(|| format!("register {} is not known here", register.0))?;
                evaluation
                    .resume_with_register(Value::Generic(value))
                    .map_err(|e| format!("{e}"))?
            }
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let word = read(address)?;
                let value = if size >= 8 {
                    word
                } else {
                    word & ((1u64 << (u32::from(size) * 8)) - 1)
                };
                evaluation
                    .resume_with_memory(Value::Generic(value))
                    .map_err(|e| format!("{e}"))?
            }
            other => return Err(format!("an expression step not evaluated: {other:?}")),
        };
    }
    Err("an expression of more than 256 steps".into())
}

/// Unwind from the registers a CPU saved; the frames and why it stopped.
/// Every register is tracked (DWARF numbering), so the rules of an
/// interrupt stub (expressions over the saved frame) are followed into the
/// interrupted code.
fn unwind(
    dump: &Dump<'_>,
    space: &Space,
    kernel: &Kernel<'_>,
    saved: &crashkit_dump_format::Registers,
) -> (Vec<Frame>, String) {
    let read = |addr: u64| vaddr::read_u64(dump, space, addr);
    let mut registers: [Option<u64>; REGISTERS] = [
        Some(saved.rax),
        Some(saved.rdx),
        Some(saved.rcx),
        Some(saved.rbx),
        Some(saved.rsi),
        Some(saved.rdi),
        Some(saved.rbp),
        Some(saved.rsp),
        Some(saved.r8),
        Some(saved.r9),
        Some(saved.r10),
        Some(saved.r11),
        Some(saved.r12),
        Some(saved.r13),
        Some(saved.r14),
        Some(saved.r15),
        Some(saved.rip),
    ];
    let mut frames: Vec<Frame> = Vec::new();
    // The first frame's RIP, and an interrupted RIP handed over by a stub,
    // are where the CPU was; a return address points after a call.
    let mut exact = true;
    loop {
        let (Some(rip), Some(rsp)) = (registers[16], registers[7]) else {
            return (frames, "the caller's RIP or RSP is not known".into());
        };
        let lookup = if exact { rip } else { rip - 1 };
        frames.push(Frame {
            pc: rip,
            sp: rsp,
            functions: kernel.symbolise(lookup),
            unwound_by: None,
        });
        if frames.len() >= MOST_FRAMES {
            return (frames, format!("{MOST_FRAMES} frames: the most shown"));
        }
        let (next, how, next_exact) = match kernel.row(lookup) {
            Some((row, source)) => {
                let cfa = match row.cfa() {
                    CfaRule::RegisterAndOffset { register, offset } => registers
                        .get(usize::from(register.0))
                        .copied()
                        .flatten()
                        .map(|base| base.wrapping_add_signed(*offset))
                        .ok_or_else(|| format!("register {} is not known here", register.0)),
                    CfaRule::Expression(expression) => kernel
                        .expression(source, expression)
                        .ok_or_else(|| "a CFA expression out of its section".to_owned())
                        .and_then(|e| evaluate(e, &registers, &read, None)),
                };
                let cfa = match cfa {
                    Ok(cfa) => cfa,
                    Err(why) => return (frames, format!("the CFA: {why}")),
                };
                let mut next = [None; REGISTERS];
                next[7] = Some(cfa);
                for number in (0..REGISTERS as u16).filter(|&n| n != 7) {
                    let rule = row.register(gimli::Register(number)).unwrap_or(
                        if CALLEE_SAVED.contains(&number) {
                            RegisterRule::SameValue
                        } else {
                            RegisterRule::Undefined
                        },
                    );
                    let value = match rule {
                        RegisterRule::Undefined => Ok(None),
                        RegisterRule::SameValue => Ok(registers[usize::from(number)]),
                        RegisterRule::Offset(offset) => {
                            read(cfa.wrapping_add_signed(offset)).map(Some)
                        }
                        RegisterRule::ValOffset(offset) => {
                            Ok(Some(cfa.wrapping_add_signed(offset)))
                        }
                        RegisterRule::Register(other) => {
                            Ok(registers.get(usize::from(other.0)).copied().flatten())
                        }
                        RegisterRule::Expression(expression) => kernel
                            .expression(source, &expression)
                            .ok_or_else(|| "an expression out of its section".to_owned())
                            .and_then(|e| evaluate(e, &registers, &read, Some(cfa)))
                            .and_then(&read)
                            .map(Some),
                        RegisterRule::ValExpression(expression) => kernel
                            .expression(source, &expression)
                            .ok_or_else(|| "an expression out of its section".to_owned())
                            .and_then(|e| evaluate(e, &registers, &read, Some(cfa)))
                            .map(Some),
                        other => Err(format!("a register rule not evaluated: {other:?}")),
                    };
                    match value {
                        Ok(value) => next[usize::from(number)] = value,
                        // Only the return address must be known.
                        Err(why) if number == 16 => {
                            return (frames, format!("the return address: {why}"));
                        }
                        Err(_) => {}
                    }
                }
                // A CFA computed by an expression is an interrupt or
                // exception stub's: it hands over an interrupted RIP.
                let from_stub = matches!(row.cfa(), CfaRule::Expression(_));
                (next, "cfi", from_stub)
            }
            None => {
                let Some(rbp) = registers[6].filter(|&rbp| rbp != 0) else {
                    return (
                        frames,
                        format!("no call-frame information at {lookup:#x} and no frame pointer"),
                    );
                };
                let (ra, next_rbp) = match (read(rbp.wrapping_add(8)), read(rbp)) {
                    (Ok(ra), Ok(next_rbp)) => (ra, next_rbp),
                    (Err(why), _) | (_, Err(why)) => {
                        return (frames, format!("the stack is not readable: {why}"));
                    }
                };
                let mut next = [None; REGISTERS];
                for number in CALLEE_SAVED {
                    next[usize::from(number)] = registers[usize::from(number)];
                }
                next[6] = Some(next_rbp);
                next[7] = Some(rbp.wrapping_add(16));
                next[16] = Some(ra);
                (next, "frame pointer", false)
            }
        };
        let (Some(ra), Some(next_rsp)) = (next[16], next[7]) else {
            return (frames, "the return address is not known".into());
        };
        if ra == 0 {
            return (frames, "the outermost frame (return address 0)".into());
        }
        if !kernel.in_text(ra) {
            return (
                frames,
                format!("return address {ra:#x} is outside the kernel's text"),
            );
        }
        // The stack pointer must move up, except out of a stub: an NMI or
        // exception may run on its own stack (IST), so the interrupted one
        // can be anywhere. The frame count still bounds the walk.
        if next_rsp <= rsp && !next_exact {
            return (
                frames,
                format!("the stack pointer did not move up ({next_rsp:#x})"),
            );
        }
        if let Some(last) = frames.last_mut() {
            last.unwound_by = Some(how);
        }
        registers = next;
        exact = next_exact;
    }
}

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
            match functions.next() {
                Some(first) => out.push_str(&format!(
                    " #{index:<2} {:#018x} in {}\n",
                    frame.pc,
                    describe(first)
                )),
                None => out.push_str(&format!(" #{index:<2} {:#018x} in ??\n", frame.pc)),
            }
            for outer in functions {
                out.push_str(&format!("{:25}inlined into {}\n", "", describe(outer)));
            }
        }
        out.push_str(&format!(" ({})\n", trace.stopped));
    }
    out
}
