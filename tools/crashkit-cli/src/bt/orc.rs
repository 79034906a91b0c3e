//! The ORC walk: a Linux kernel stack unwound with the ORC tables the
//! kernel keeps in memory (`crate::orc`), from one CPU's saved registers,
//! as Linux's own `unwind_next_frame` does it (docs/linux-orc.md):
//!
//! 1. The entry for the frame's address (the address itself for the first
//!    frame and after an interrupt, one byte before a return address).
//! 2. The CFA (the caller's stack pointer) from the entry's base register:
//!    RSP or RBP plus the offset, the word at RSP plus the offset, the
//!    word at RBP plus the offset, or a register a `pt_regs` saved.
//! 3. By the entry's kind: a call frame's return address is at CFA - 8; a
//!    `pt_regs` at the CFA gives every register of the interrupted
//!    context; an interrupt frame (RIP, CS, RFLAGS, RSP, SS) at the CFA
//!    gives the interrupted RIP and RSP, the other registers still live.
//! 4. RBP: unchanged, or read at the CFA or RBP plus the entry's offset.
//!
//! Where the tables have no entry (a module's code, BPF), the frame
//! pointer is tried; a frame pointer with its low bit set points one byte
//! past a `pt_regs` (`ENCODE_FRAME_POINTER`).
//!
//! A walk ends in one of the ways Linux's stacks end, and says which: a
//! `pt_regs` from user space (a system call or an interrupt of user code),
//! or an end-of-stack entry (a kernel thread's or an idle task's first
//! frame). Anything else stops it early, with the reason: an address no
//! entry covers and no frame pointer, an undefined entry, a stack the dump
//! lacks, a return address outside the kernel's code, a stack pointer
//! that goes down on one stack, a frame seen twice, or the frame limit.

use serde::Serialize;

use crashkit_dump_format::Registers;

use crate::orc::{Base, Entry, Kind};

/// Canonical kernel addresses start here.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// `struct pt_regs`: 21 words, in the order of `NT_PRSTATUS`'s first 21
/// (r15 first, ss last).
const PT_REGS_WORDS: u64 = 21;

/// Where `ip` is in `struct pt_regs` (the interrupt frame's start).
const PT_REGS_IP: u64 = 16 * 8;

/// What the walk needs of the kernel.
pub trait Kernel {
    /// The ORC entry covering `pc` and the address it starts at, `None`
    /// where the tables have none; an error when they cannot be read.
    fn entry(&self, pc: u64) -> Result<Option<(u64, Entry)>, String>;
    /// Whether `addr` is in the kernel's own code (`_stext` .. `_etext`).
    fn in_text(&self, addr: u64) -> bool;
    /// Whether `addr` may be code outside the image: a module's, BPF's
    /// (the tables do not cover it; the frame pointer is tried).
    fn in_modules(&self, addr: u64) -> bool;
    /// Where the function `addr` is in starts (its symbol).
    fn function_start(&self, addr: u64) -> Option<u64>;
}

/// How far up the stack a scan for a verified return address looks.
const SCAN_WORDS: u64 = 512;

/// The stacks, by virtual address.
pub trait Stack {
    /// The 8 bytes at `addr`, or why they cannot be read.
    fn read_u64(&self, addr: u64) -> Result<u64, String>;
}

/// How a frame's caller was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// An ORC call frame: the return address at CFA - 8.
    OrcCall,
    /// An ORC `pt_regs` frame: the interrupted context's registers.
    OrcRegs,
    /// An ORC interrupt-frame entry: the interrupted RIP and RSP.
    OrcIretFrame,
    /// The frame pointer (no ORC entry here).
    FramePointer,
    /// A frame pointer marking a `pt_regs` (`ENCODE_FRAME_POINTER`).
    FramePointerRegs,
    /// A function without ORC entries (objtool was told to skip it):
    /// the first word up the stack that is a return address right after
    /// a direct call to this function.
    CallScan,
}

impl Step {
    /// Its name in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::OrcCall => "orc",
            Self::OrcRegs => "orc pt_regs",
            Self::OrcIretFrame => "orc iret frame",
            Self::FramePointer => "frame pointer",
            Self::FramePointerRegs => "frame pointer pt_regs",
            Self::CallScan => "stack scan for a call to this function",
        }
    }
}

/// A saved register frame the walk went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    /// Where the `pt_regs` (or the interrupt frame) is.
    pub at: u64,
    /// The whole `pt_regs`, or only the interrupt frame.
    pub full: bool,
    /// The interrupted RIP and RSP.
    pub rip: u64,
    pub rsp: u64,
    /// The interrupted code ran in user mode (CS's privilege level 3).
    pub user: bool,
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its address: where the CPU was (`exact`) or a return address.
    pub pc: u64,
    /// Its stack pointer.
    pub sp: u64,
    /// `pc` is where the CPU was, not a return address.
    pub exact: bool,
    /// How its caller was found (none on the last frame).
    pub step: Option<Step>,
    /// The register frame its caller was found in, if any.
    pub interrupted: Option<Interrupted>,
}

/// How a walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// At a `pt_regs` of user-mode code: the kernel was entered from user
    /// space there (or the CPU was in user space).
    User { rip: u64, rsp: u64 },
    /// At an end-of-stack entry, in the last frame.
    EndOfStack,
    /// Early: why.
    Stopped(String),
}

impl Ending {
    /// Whether the stack was walked to its start.
    pub fn complete(&self) -> bool {
        !matches!(self, Self::Stopped(_))
    }
}

/// The registers a frame knows, DWARF's numbering (rax rdx rcx rbx rsi
/// rdi rbp rsp r8-r15, rip as 16), as `bt::cfi` numbers them.
type Known = [Option<u64>; 17];

const RDX: usize = 1;
const RDI: usize = 5;
const RBP: usize = 6;
const RSP: usize = 7;
const R10: usize = 10;
const R13: usize = 13;
const RIP: usize = 16;

/// A saved register set as the walk knows it.
fn known(r: &Registers) -> Known {
    [
        Some(r.rax),
        Some(r.rdx),
        Some(r.rcx),
        Some(r.rbx),
        Some(r.rsi),
        Some(r.rdi),
        Some(r.rbp),
        Some(r.rsp),
        Some(r.r8),
        Some(r.r9),
        Some(r.r10),
        Some(r.r11),
        Some(r.r12),
        Some(r.r13),
        Some(r.r14),
        Some(r.r15),
        Some(r.rip),
    ]
}

/// A `pt_regs` read at `at`: its registers and CS. Its 21 words are the
/// first 21 slots of `NT_PRSTATUS`'s register set, in the same order.
fn pt_regs(stack: &dyn Stack, at: u64) -> Result<(Known, u64), String> {
    let mut slots = [0u64; Registers::NAMES.len()];
    for (index, slot) in (0u64..PT_REGS_WORDS).zip(slots.iter_mut()) {
        *slot = stack
            .read_u64(at.wrapping_add(8 * index))
            .map_err(|why| format!("the pt_regs at {at:#x}: {why}"))?;
    }
    let registers = Registers::from_array(slots);
    Ok((known(&registers), registers.cs))
}

/// Walk from `saved`, at most `most` frames.
pub fn walk(
    saved: &Registers,
    kernel: &dyn Kernel,
    stack: &dyn Stack,
    most: usize,
) -> (Vec<Frame>, Ending) {
    let mut frames: Vec<Frame> = Vec::new();
    if saved.cs & 3 == 3 {
        // Saved in user mode (a CPU the crash NMI found in user space):
        // no kernel stack to walk.
        return (
            frames,
            Ending::User {
                rip: saved.rip,
                rsp: saved.rsp,
            },
        );
    }
    if saved.rip < KERNEL_HALF {
        return (
            frames,
            Ending::Stopped(format!(
                "RIP {:#x} with CS {:#x}: neither kernel code nor user mode",
                saved.rip, saved.cs
            )),
        );
    }
    let mut registers = known(saved);
    let mut exact = true;
    let mut seen = std::collections::HashSet::new();
    loop {
        let (Some(pc), Some(sp)) = (registers[RIP], registers[RSP]) else {
            return (
                frames,
                Ending::Stopped("the caller's RIP or RSP is not known".into()),
            );
        };
        frames.push(Frame {
            pc,
            sp,
            exact,
            step: None,
            interrupted: None,
        });
        if !seen.insert((pc, sp)) {
            return (
                frames,
                Ending::Stopped(format!(
                    "frame {pc:#x} at stack {sp:#x} seen before: a loop"
                )),
            );
        }
        if frames.len() >= most {
            return (
                frames,
                Ending::Stopped(format!("{most} frames: the most shown")),
            );
        }
        let lookup = if exact { pc } else { pc.wrapping_sub(1) };
        let found = if kernel.in_text(lookup) {
            match kernel.entry(lookup) {
                Ok(found) => found,
                Err(why) => return (frames, Ending::Stopped(format!("the ORC tables: {why}"))),
            }
        } else {
            None
        };
        let outcome = match found {
            Some((_, entry)) if entry.kind == Kind::EndOfStack => {
                return (frames, Ending::EndOfStack);
            }
            Some((_, entry)) if entry.kind != Kind::Undefined => {
                orc_step(&entry, &registers, stack)
            }
            // No entry, or one that says "no information": a function
            // objtool skipped (Linux 6.1's `__crash_kexec`, where the CPU
            // notes of a /proc/vmcore start), a module's or BPF's code.
            _ if kernel.in_text(lookup) || kernel.in_modules(lookup) => {
                let what = match found {
                    Some((start, _)) => format!(
                        "the ORC entry for {lookup:#x} (from {start:#x}) says its frame cannot be unwound"
                    ),
                    None => format!("no ORC entry for {lookup:#x}"),
                };
                call_scan_step(kernel, &registers, stack, lookup).or_else(|scan| {
                    frame_pointer_step(&registers, stack)
                        .map_err(|fp| format!("{what}; {scan}; no usable frame pointer: {fp}"))
                })
            }
            _ => Err(format!("{lookup:#x} is not in the kernel's code")),
        };
        let (next, step, interrupted) = match outcome {
            Ok(next) => next,
            Err(why) => return (frames, Ending::Stopped(why)),
        };
        if let Some(last) = frames.last_mut() {
            last.step = Some(step);
            last.interrupted = interrupted;
        }
        if let Some(regs) = interrupted {
            if regs.user {
                return (
                    frames,
                    Ending::User {
                        rip: regs.rip,
                        rsp: regs.rsp,
                    },
                );
            }
        } else {
            let (Some(ra), Some(next_sp)) = (next[RIP], next[RSP]) else {
                return (
                    frames,
                    Ending::Stopped("the return address is not known".into()),
                );
            };
            if ra == 0 {
                return (frames, Ending::Stopped("a return address of 0".into()));
            }
            if !kernel.in_text(ra) && !kernel.in_modules(ra) {
                return (
                    frames,
                    Ending::Stopped(format!(
                        "return address {ra:#x} is outside the kernel's code"
                    )),
                );
            }
            // On one stack the caller's frame is above: a call frame based
            // on RSP or RBP must move up. An indirect base switches
            // stacks (an IRQ stack's saved pointer), which may go down.
            let switches = matches!(step, Step::OrcCall)
                && found
                    .is_some_and(|(_, e)| matches!(e.sp_reg, Base::SpIndirect | Base::BpIndirect));
            if next_sp <= sp && !switches {
                return (
                    frames,
                    Ending::Stopped(format!(
                        "the stack pointer did not move up ({sp:#x} to {next_sp:#x})"
                    )),
                );
            }
        }
        exact = interrupted.is_some() || found.is_some_and(|(_, e)| e.signal);
        registers = next;
    }
}

/// The caller of a frame by its ORC entry: its registers, the step, and
/// the register frame it came through.
fn orc_step(
    entry: &Entry,
    registers: &Known,
    stack: &dyn Stack,
) -> Result<(Known, Step, Option<Interrupted>), String> {
    let register = |index: usize, name: &str| {
        registers[index].ok_or_else(|| format!("{name} is not known in this frame"))
    };
    let offset = i64::from(entry.sp_offset);
    let cfa = match entry.sp_reg {
        Base::Sp => register(RSP, "RSP")?.wrapping_add_signed(offset),
        Base::Bp => register(RBP, "RBP")?.wrapping_add_signed(offset),
        Base::SpIndirect => stack
            .read_u64(register(RSP, "RSP")?)?
            .wrapping_add_signed(offset),
        Base::BpIndirect => stack.read_u64(register(RBP, "RBP")?.wrapping_add_signed(offset))?,
        // A register a pt_regs saved, as it is (Linux adds no offset).
        Base::Dx => register(RDX, "RDX")?,
        Base::Di => register(RDI, "RDI")?,
        Base::R10 => register(R10, "R10")?,
        Base::R13 => register(R13, "R13")?,
        Base::Undefined | Base::PrevSp => {
            return Err(format!("an ORC entry based on {:?}", entry.sp_reg));
        }
    };
    let (mut next, step, interrupted) = match entry.kind {
        Kind::Call => {
            let ra = stack.read_u64(cfa.wrapping_sub(8))?;
            let mut next: Known = [None; 17];
            next[RIP] = Some(ra);
            next[RSP] = Some(cfa);
            // RBP is the caller's unless the entry says where it is kept.
            next[RBP] = registers[RBP];
            (next, Step::OrcCall, None)
        }
        Kind::Regs => {
            let (next, cs) = pt_regs(stack, cfa)?;
            let interrupted = Interrupted {
                at: cfa,
                full: true,
                rip: next[RIP].unwrap_or(0),
                rsp: next[RSP].unwrap_or(0),
                user: cs & 3 == 3,
            };
            (next, Step::OrcRegs, Some(interrupted))
        }
        Kind::RegsPartial => {
            let rip = stack.read_u64(cfa)?;
            let cs = stack.read_u64(cfa.wrapping_add(8))?;
            let rsp = stack.read_u64(cfa.wrapping_add(24))?;
            let mut next = *registers;
            next[RIP] = Some(rip);
            next[RSP] = Some(rsp);
            let interrupted = Interrupted {
                at: cfa.wrapping_sub(PT_REGS_IP),
                full: false,
                rip,
                rsp,
                user: cs & 3 == 3,
            };
            (next, Step::OrcIretFrame, Some(interrupted))
        }
        Kind::Undefined | Kind::EndOfStack => {
            return Err(format!(
                "an ORC entry of kind {:?} has no caller",
                entry.kind
            ));
        }
    };
    let bp_offset = i64::from(entry.bp_offset);
    match entry.bp_reg {
        Base::PrevSp => next[RBP] = Some(stack.read_u64(cfa.wrapping_add_signed(bp_offset))?),
        Base::Bp => {
            next[RBP] = Some(stack.read_u64(register(RBP, "RBP")?.wrapping_add_signed(bp_offset))?);
        }
        // Unchanged (a pt_regs gave it already).
        _ => {}
    }
    Ok((next, step, interrupted))
}

/// The caller of a frame whose function has no unwind information: the
/// first word within [`SCAN_WORDS`] above the stack pointer that is a
/// return address in the kernel's code right after a direct call
/// (`E8 rel32`) to the function `lookup` is in. Checked against the code,
/// a stray word cannot pass for it; the RBP of the caller is taken as
/// unchanged (a guess only entries based on RBP would use).
fn call_scan_step(
    kernel: &dyn Kernel,
    registers: &Known,
    stack: &dyn Stack,
    lookup: u64,
) -> Result<(Known, Step, Option<Interrupted>), String> {
    let start = kernel
        .function_start(lookup)
        .ok_or("no symbol for it, so no call to scan for")?;
    let sp = registers[RSP].ok_or("RSP is not known")?;
    for slot in (0..SCAN_WORDS).map(|i| sp.wrapping_add(8 * i)) {
        let Ok(word) = stack.read_u64(slot) else {
            break;
        };
        if !(kernel.in_text(word) || kernel.in_modules(word)) {
            continue;
        }
        // The 8 bytes before the candidate return address.
        let Ok(code) = stack.read_u64(word.wrapping_sub(8)) else {
            continue;
        };
        if super::call::before(word, code.to_le_bytes())
            == Some(super::call::Call::Direct { target: start })
        {
            let mut next: Known = [None; 17];
            next[RIP] = Some(word);
            next[RSP] = Some(slot.wrapping_add(8));
            next[RBP] = registers[RBP];
            return Ok((next, Step::CallScan, None));
        }
    }
    Err(format!(
        "no return address after a call to {start:#x} in the {SCAN_WORDS} words above RSP"
    ))
}

/// The caller of a frame by its frame pointer.
fn frame_pointer_step(
    registers: &Known,
    stack: &dyn Stack,
) -> Result<(Known, Step, Option<Interrupted>), String> {
    let rbp = registers[RBP]
        .filter(|&rbp| rbp >= KERNEL_HALF)
        .ok_or("RBP is not a kernel address")?;
    if rbp & 1 == 1 {
        let at = rbp - 1;
        let (next, cs) = pt_regs(stack, at)?;
        let interrupted = Interrupted {
            at,
            full: true,
            rip: next[RIP].unwrap_or(0),
            rsp: next[RSP].unwrap_or(0),
            user: cs & 3 == 3,
        };
        return Ok((next, Step::FramePointerRegs, Some(interrupted)));
    }
    if registers[RSP].is_some_and(|sp| rbp < sp) {
        return Err(format!("RBP {rbp:#x} is below the stack pointer"));
    }
    let mut next: Known = [None; 17];
    next[RBP] = Some(stack.read_u64(rbp)?);
    next[RIP] = Some(stack.read_u64(rbp.wrapping_add(8))?);
    next[RSP] = Some(rbp.wrapping_add(16));
    Ok((next, Step::FramePointer, None))
}

#[cfg(test)]
mod tests;
