//! `crashkit cpus DUMP` and `crashkit regs DUMP [CPU]`: the CPUs the dump
//! has register notes for, a line each, and every register the dump holds
//! for one of them.
//!
//! CPUs are numbered as the kernel numbered them where the dump says so:
//! crashkit's control-state notes carry each CPU's index (the crash
//! record's, the panic message's), and crashkit writes the panicking CPU's
//! note first, for gdb; when every note has one and no two agree, `cpus`,
//! `regs N`, `bt N` and `--cpu N` use those numbers, in that order.
//! Otherwise a CPU's number is its place in the notes (QEMU and Linux write
//! them in CPU-index order) ([`number`], [`place`]). Where a
//! dump has several sources for a register, each is shown under its own
//! heading: `NT_PRSTATUS` (the general registers), crashkit's control
//! state, QEMU's CPU state (control registers and segment caches).

use serde::Serialize;

use crashkit_dump_format::notes::prstatus::{I386Registers, Registers};
use crashkit_dump_format::notes::qemu::SEGMENT_NAMES;
use crashkit_dump_format::read::{Cpu, CpuRegisters};
use crashkit_dump_format::{ControlState, ElfDump};

use crate::open::{Dump, Opened};
use crate::record;

/// One line of `cpus`: a CPU with a register note, or a CPU the crash
/// record knows that has none.
#[derive(Debug, Serialize)]
pub struct CpuLine {
    /// The CPU's number ([`number`]: its index in crashkit's control state,
    /// else its place in the notes); null for a CPU without a note.
    pub cpu: Option<usize>,
    /// `pr_pid` of its `NT_PRSTATUS` note: in Linux's dumps the task the
    /// CPU ran (idle CPUs: 0); crashkit and QEMU write the CPU index plus
    /// one, a counter and no task.
    pub pid: Option<u32>,
    /// `pid` is the CPU's index plus one (QEMU's and crashkit's counter):
    /// when every CPU's is, the text leaves the PID column out.
    #[serde(skip)]
    pub pid_counts_cpus: bool,
    /// The CPU's index in the crash record (crashkit's control state says
    /// it; QEMU writes CPUs in index order), when there is a record.
    pub index: Option<u32>,
    /// Its shootdown state from the crash record (`PanicOwner`, `Stopped`,
    /// `Unresponsive`, `NmiSent`, `Running`): the record's note, or with
    /// `--scan` a record found in memory.
    pub state: Option<String>,
    /// The panicking CPU, where the dump says which (crashkit's identity
    /// note, or the record's owner).
    pub panicking: bool,
    /// Instruction pointer (null: no note).
    pub rip: Option<u64>,
    /// Stack pointer (null: no note).
    pub rsp: Option<u64>,
    /// Privilege level: CS's low two bits (null: no note).
    pub cpl: Option<u8>,
    /// `x86_64` or `i386` registers (null: no note).
    pub mode: Option<&'static str>,
    /// The function RIP is in: with `--kernel` from its DWARF; else, for a
    /// Linux dump or with `--system-map`, its symbol as `name+off/size`
    /// (absent when nothing names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

/// The CPU notes of `dump`, in file order.
pub fn notes<'d>(dump: &'d Dump<'_>) -> &'d [Cpu] {
    match dump {
        Dump::Elf(elf) => elf.cpus(),
        Dump::Kdump(parts) => parts[0].cpus(),
        // No CPU notes: the CPUs are the record's (found by scanning).
        Dump::Ram(_) => &[],
    }
}

/// The CPUs of `dump` and the panicking one, if known, as the index
/// [`cpu_index`] gives it: crashkit's identity note, else the owner in the
/// crash record's note, else a Linux dump's `panic_cpu` and log
/// ([`crate::linux`]).
pub fn cpus_of<'d>(dump: &'d Opened<'_>) -> (&'d [Cpu], Option<u32>) {
    let list = notes(dump);
    let noted = match &**dump {
        Dump::Elf(elf) => panic_cpu(elf),
        Dump::Kdump(parts) => parts[0].crashkit().and_then(|c| c.identity.panic_cpu),
        Dump::Ram(_) => None,
    };
    let panic = noted
        .or_else(|| record::noted(dump).and_then(|view| view.panic().owner_cpu()))
        .or_else(|| {
            let linux = dump.linux_panic()?;
            let place = linux.cpu as usize;
            Some(cpu_index(place, list.get(place)?))
        });
    (list, panic)
}

fn panic_cpu(elf: &ElfDump<'_>) -> Option<u32> {
    elf.crashkit().and_then(|c| c.identity.panic_cpu)
}

/// Whether the notes number their CPUs themselves: every note has
/// crashkit's control state, and no two give the same index.
fn numbered_by_control(list: &[Cpu]) -> bool {
    let mut seen = std::collections::HashSet::new();
    !list.is_empty()
        && list
            .iter()
            .all(|cpu| cpu.control.is_some_and(|c| seen.insert(c.cpu)))
}

/// The number the CLI gives the CPU at `place` in the notes: its index in
/// crashkit's control state when the notes number themselves, else the
/// place.
pub fn number(list: &[Cpu], place: usize) -> usize {
    match list.get(place).and_then(|cpu| cpu.control) {
        Some(control) if numbered_by_control(list) => control.cpu as usize,
        _ => place,
    }
}

/// The place in the notes of the CPU numbered `number` ([`number`]).
pub fn place(list: &[Cpu], number: usize) -> Option<usize> {
    (0..list.len()).find(|&place| self::number(list, place) == number)
}

/// Every CPU's number, ascending.
pub fn numbers(list: &[Cpu]) -> Vec<usize> {
    let mut numbers: Vec<usize> = (0..list.len()).map(|place| number(list, place)).collect();
    numbers.sort_unstable();
    numbers
}

/// The CPU index the crash record uses for the CPU at `place` in the
/// notes: crashkit's control state says it; QEMU writes CPUs in
/// CPU-index order; crashkit's own `NT_PRSTATUS` has it as `pr_pid`.
pub fn cpu_index(place: usize, cpu: &Cpu) -> u32 {
    match (cpu.control, cpu.qemu) {
        (Some(control), _) => control.cpu,
        (None, Some(_)) => u32::try_from(place).unwrap_or(u32::MAX),
        (None, None) => cpu.pid,
    }
}

/// The `cpus` lines: every CPU with a note, in note order, then the CPUs
/// the crash record (`record`, from its note or a scan) knows that have no
/// register note (the record lists no `Absent` slot).
pub fn lines(dump: &Opened<'_>, record: Option<&record::Report>) -> Vec<CpuLine> {
    let (cpus, noted_panic) = cpus_of(dump);
    let panic = noted_panic.or_else(|| record.and_then(|r| r.panic.owner_cpu));
    let slot = |index: u32| {
        record.and_then(|r| {
            r.cpus
                .iter()
                .find(|c| u32::try_from(c.cpu).ok() == Some(index))
        })
    };
    let mut lines: Vec<CpuLine> = cpus
        .iter()
        .enumerate()
        .map(|(place, cpu)| {
            let (rsp, cs, mode) = match cpu.registers {
                CpuRegisters::X86_64(r) => (r.rsp, r.cs, "x86_64"),
                CpuRegisters::I386(r) => (u64::from(r.esp), u64::from(r.cs), "i386"),
            };
            let index = cpu_index(place, cpu);
            CpuLine {
                cpu: Some(number(cpus, place)),
                pid: Some(cpu.pid),
                pid_counts_cpus: index.checked_add(1) == Some(cpu.pid),
                index: record.map(|_| index),
                state: slot(index).map(|s| s.state.clone()),
                panicking: panic == Some(index),
                rip: Some(cpu.rip()),
                rsp: Some(rsp),
                cpl: Some((cs & 3) as u8),
                mode: Some(mode),
                function: None,
            }
        })
        .collect();
    lines.sort_by_key(|line| line.cpu);
    for cpu in record.map_or(&[][..], |r| &r.cpus) {
        let noted = cpus
            .iter()
            .enumerate()
            .any(|(place, c)| usize::try_from(cpu_index(place, c)).ok() == Some(cpu.cpu));
        if noted {
            continue;
        }
        lines.push(CpuLine {
            cpu: None,
            pid: None,
            pid_counts_cpus: true,
            index: u32::try_from(cpu.cpu).ok(),
            state: Some(cpu.state.clone()),
            panicking: panic.is_some_and(|p| usize::try_from(p).ok() == Some(cpu.cpu)),
            rip: None,
            rsp: None,
            cpl: None,
            mode: None,
            function: None,
        });
    }
    lines
}

/// The text of `cpus`; `hint` says how to find a crash record when the
/// lines have no states.
pub fn render_lines(lines: &[CpuLine], hint: bool) -> String {
    let dash = || "-".to_owned();
    let hex = |value: Option<u64>| value.map_or_else(dash, |v| format!("{v:#018x}"));
    // QEMU's and crashkit's pr_pid only count CPUs: no column for them.
    let pids = !lines.iter().all(|l| l.pid_counts_cpus);
    let mut out = String::from(if pids {
        "CPU   PID  STATE         MODE    CPL  RIP                 RSP\n"
    } else {
        "CPU   STATE         MODE    CPL  RIP                 RSP\n"
    });
    for line in lines {
        out.push_str(&format!(
            "{:>3}{}{}  {:<12}  {:<6}  {:>3}  {:<18}  {}\n",
            line.cpu.map_or_else(dash, |c| c.to_string()),
            if line.panicking { '*' } else { ' ' },
            if pids {
                format!(" {:>4}", line.pid.map_or_else(dash, |p| p.to_string()))
            } else {
                String::new()
            },
            line.state.clone().unwrap_or_else(dash),
            line.mode.unwrap_or("-"),
            line.cpl.map_or_else(dash, |c| c.to_string()),
            if line.rip.is_some() {
                hex(line.rip)
            } else {
                "(no register note)".to_owned()
            },
            if line.rsp.is_some() {
                hex(line.rsp)
            } else {
                String::new()
            },
        ));
        if let Some(function) = &line.function {
            // Under its line: names are long.
            out.push_str(&format!("      in {function}\n"));
        }
    }
    if lines.iter().any(|l| l.panicking) {
        out.push_str("(* panicking)\n");
    }
    if hint && lines.iter().all(|l| l.state.is_none()) {
        out.push_str("(no crash record note, so no states; `--scan` finds a record in memory)\n");
    }
    out
}

/// Every register the dump holds for one CPU.
#[derive(Debug, Serialize)]
pub struct CpuRegs {
    /// The CPU's number ([`number`]).
    pub cpu: usize,
    /// `pr_pid`.
    pub pid: u32,
    /// The panicking CPU.
    pub panicking: bool,
    /// `NT_PRSTATUS`'s registers, in `pr_reg` order, as `[name, value]`.
    pub prstatus: Vec<(&'static str, u64)>,
    /// crashkit's control state, where the dump has it: `[name, value]`
    /// for the registers the CPU could read.
    pub control: Option<Vec<(&'static str, u64)>>,
    /// QEMU's CPU state, where the dump has it.
    pub qemu: Option<QemuRegs>,
    /// The function RIP is in: with `--kernel` from its DWARF; else, for a
    /// Linux dump or with `--system-map`, its symbol as `name+off/size`
    /// (absent when nothing names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

/// QEMU's CPU state of one CPU.
#[derive(Debug, Serialize)]
pub struct QemuRegs {
    /// CR0, CR1 (reserved), CR2, CR3, CR4.
    pub cr: [u64; 5],
    /// RFLAGS.
    pub rflags: u64,
    /// The segment registers and descriptor tables, with QEMU's caches.
    pub segments: Vec<SegmentRegs>,
}

/// One segment register as QEMU caches it.
#[derive(Debug, Serialize)]
pub struct SegmentRegs {
    /// `cs`, `ds`, ..., `gdt`, `idt`.
    pub name: &'static str,
    /// The visible selector.
    pub selector: u32,
    /// The cached base.
    pub base: u64,
    /// The cached limit.
    pub limit: u32,
    /// The cached descriptor flags.
    pub flags: u32,
}

/// Why `regs` cannot show a CPU: asked for one the dump does not have.
#[derive(Debug)]
pub struct NoSuchCpu {
    /// The CPU asked for.
    pub asked: usize,
    /// CPUs in the dump.
    pub count: usize,
}

impl std::fmt::Display for NoSuchCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.count {
            0 => write!(f, "no CPU {}: the dump has no CPU notes", self.asked),
            n => write!(
                f,
                "no CPU {}: the dump has {n} (0 to {})",
                self.asked,
                n - 1
            ),
        }
    }
}

impl std::error::Error for NoSuchCpu {}

/// The registers of CPU `asked` (a number, [`number`]; default: the
/// panicking CPU, else the first note).
pub fn regs(dump: &Opened<'_>, asked: Option<usize>) -> Result<CpuRegs, NoSuchCpu> {
    let (cpus, panic) = cpus_of(dump);
    let chosen = match asked {
        Some(asked) => place(cpus, asked).ok_or(NoSuchCpu {
            asked,
            count: cpus.len(),
        })?,
        None => cpus
            .iter()
            .enumerate()
            .position(|(place, c)| panic == Some(cpu_index(place, c)))
            .unwrap_or(0),
    };
    let index = chosen;
    let cpu = cpus.get(index).ok_or(NoSuchCpu {
        asked: index,
        count: cpus.len(),
    })?;
    let prstatus = match cpu.registers {
        CpuRegisters::X86_64(r) => Registers::NAMES.iter().copied().zip(r.to_array()).collect(),
        CpuRegisters::I386(r) => I386Registers::NAMES
            .iter()
            .copied()
            .zip(r.to_array().map(u64::from))
            .collect(),
    };
    let control = cpu.control.map(|c: ControlState| {
        ControlState::NAMES
            .iter()
            .zip(c.fields())
            .filter_map(|(&name, value)| Some((name, value?)))
            .collect()
    });
    let qemu = cpu.qemu.map(|q| QemuRegs {
        cr: q.cr,
        rflags: q.rflags,
        segments: SEGMENT_NAMES
            .iter()
            .zip(q.segments)
            .map(|(&name, s)| SegmentRegs {
                name,
                selector: s.selector,
                base: s.base,
                limit: s.limit,
                flags: s.flags,
            })
            .collect(),
    });
    Ok(CpuRegs {
        cpu: number(cpus, index),
        pid: cpu.pid,
        panicking: panic == Some(cpu_index(index, cpu)),
        prstatus,
        control,
        qemu,
        function: None,
    })
}

/// The text of `regs`: three registers a row under each source's heading.
pub fn render_regs(regs: &CpuRegs) -> String {
    let mut out = format!(
        "CPU {} (pid {}){}\n",
        regs.cpu,
        regs.pid,
        if regs.panicking { ", panicking" } else { "" }
    );
    if let Some(function) = &regs.function {
        out.push_str(&format!("RIP in {function}\n"));
    }
    let mut table = |heading: &str, values: &[(&str, u64)]| {
        out.push_str(heading);
        out.push('\n');
        for row in values.chunks(3) {
            let cells: Vec<String> = row
                .iter()
                .map(|(name, value)| format!("{name:>14}: {value:#018x}"))
                .collect();
            out.push_str(&cells.join(" "));
            out.push('\n');
        }
    };
    table("NT_PRSTATUS", &regs.prstatus);
    if let Some(control) = &regs.control {
        table("crashkit control state", control);
    }
    if let Some(qemu) = &regs.qemu {
        let values = [
            ("cr0", qemu.cr[0]),
            ("cr2", qemu.cr[2]),
            ("cr3", qemu.cr[3]),
            ("cr4", qemu.cr[4]),
            ("rflags", qemu.rflags),
        ];
        table("QEMU CPU state", &values);
        out.push_str("       segment  selector  base                limit       flags\n");
        for s in &qemu.segments {
            out.push_str(&format!(
                "{:>14}  {:#06x}    {:#018x}  {:#010x}  {:#010x}\n",
                s.name, s.selector, s.base, s.limit, s.flags
            ));
        }
    }
    out
}
