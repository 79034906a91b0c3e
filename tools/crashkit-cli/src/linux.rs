//! Facts of a Linux dump that need its symbols: the kernel's memory as
//! kallsyms reads it, and which CPU panicked.
//!
//! The panicking CPU is Linux's `panic_cpu` (an `atomic_t`, -1 while no
//! CPU has panicked; `panic()` and `crash_kexec()` set it), found through
//! kallsyms, and cross-checked with the header Linux's stack dump printed
//! in the log (`CPU: N PID: P Comm: ...`) and, in a /proc/vmcore, with the
//! PID of that CPU's `NT_PRSTATUS` note (Linux writes the task it ran).
//! Linux numbers CPUs as the dump's notes are ordered (QEMU writes them in
//! CPU-index order, Linux in CPU order), so CPU N is the N-th note.

use serde::Serialize;

use crate::open::Opened;
use crate::symbols::START_KERNEL_MAP;
use crate::symbols::kallsyms::KernelMemory;
use crate::{rd, vaddr};

/// The crashed kernel's memory by virtual address: the kernel image
/// through Linux's own `__pa_symbol` (minus `__START_KERNEL_map`, plus
/// `NUMBER(phys_base)`), which needs no page tables; anything else through
/// `init_top_pgt`.
pub struct Memory<'d, 'a> {
    dump: &'d Opened<'a>,
    phys_base: u64,
    space: Option<vaddr::Space>,
}

impl<'d, 'a> Memory<'d, 'a> {
    /// The memory of `dump`, a Linux dump (its VMCOREINFO's `phys_base`).
    pub fn new(dump: &'d Opened<'a>) -> Self {
        let phys_base = dump
            .vmcoreinfo()
            .and_then(|info| info.number("NUMBER(phys_base)"))
            .unwrap_or(0);
        Self {
            dump,
            phys_base,
            space: vaddr::space(dump, None).ok(),
        }
    }
}

impl KernelMemory for Memory<'_, '_> {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, String> {
        if addr >= START_KERNEL_MAP {
            let phys = addr
                .wrapping_sub(START_KERNEL_MAP)
                .wrapping_add(self.phys_base);
            return rd::read_exact(self.dump, phys, len).map_err(|(at, state)| {
                format!(
                    "{addr:#x} (physical {phys:#x}): the dump has physical {at:#x} as {}",
                    state.name()
                )
            });
        }
        let space = self
            .space
            .as_ref()
            .ok_or_else(|| format!("{addr:#x}: no page tables to translate it"))?;
        vaddr::read(self.dump, space, addr, len)
    }
}

/// Which CPU panicked, and what says so.
#[derive(Clone, Debug, Serialize)]
pub struct PanicCpu {
    /// Linux's CPU number (the place of its note).
    pub cpu: u32,
    /// `panic_cpu`, when kallsyms found it and the dump has its page.
    pub panic_cpu: Option<i32>,
    /// The log's header: CPU, PID, command.
    pub log_header: Option<(u32, u32, String)>,
    /// What disagrees, in words (empty when nothing does).
    pub disagreements: Vec<String>,
}

/// The panicking CPU of a Linux dump, if `panic_cpu` or the log says.
pub fn panic_cpu(dump: &Opened<'_>) -> Option<PanicCpu> {
    if !dump.is_linux() {
        return None;
    }
    let cpus = crate::cpus::notes(dump);
    let variable = dump.kallsyms().ok().and_then(|table| {
        let (symbol, _) = table.by_name("panic_cpu").into_iter().next()?;
        let bytes = Memory::new(dump).read(symbol.addr, 4).ok()?;
        Some(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    });
    let header = crate::log::read(dump)
        .ok()
        .and_then(|log| log.panic_header());
    let mut disagreements = Vec::new();
    let from_variable = variable.and_then(|v| u32::try_from(v).ok());
    if let Some(value) = variable
        && (value < 0 || value as usize >= cpus.len().max(1))
        && value != -1
    {
        disagreements.push(format!(
            "panic_cpu is {value}, not one of the dump's {} CPUs",
            cpus.len()
        ));
    }
    let from_variable = from_variable.filter(|&c| (c as usize) < cpus.len());
    let cpu = match (from_variable, &header) {
        (Some(cpu), Some((logged, _, _))) => {
            if cpu != *logged {
                disagreements.push(format!(
                    "panic_cpu says CPU {cpu}, the log's last stack dump header CPU {logged}"
                ));
            }
            cpu
        }
        (Some(cpu), None) => cpu,
        // No panic_cpu (no kallsyms, or -1: a dump of a kernel that did
        // not panic): the log's header alone.
        (None, Some((logged, _, _))) if (*logged as usize) < cpus.len() => *logged,
        _ => return None,
    };
    // A /proc/vmcore's note for the CPU names the task it ran.
    if let (Some(note), Some((_, pid, comm))) = (cpus.get(cpu as usize), &header)
        && note.qemu.is_none()
        && note.control.is_none()
        && note.pid != *pid
        && header.as_ref().is_some_and(|h| h.0 == cpu)
    {
        disagreements.push(format!(
            "CPU {cpu}'s note ran PID {}, the log's header PID {pid} ({comm})",
            note.pid
        ));
    }
    Some(PanicCpu {
        cpu,
        panic_cpu: variable,
        log_header: header,
        disagreements,
    })
}
