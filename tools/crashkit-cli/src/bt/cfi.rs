//! Unwinding with the kernel ELF's call-frame information: every register
//! tracked in DWARF's numbering, so the rules of an interrupt stub
//! (expressions over the saved frame) are followed into the interrupted
//! code; frame pointers where there is no CFI.

use gimli::{CfaRule, EvaluationResult, Location, RegisterRule, Value};

use super::kernel::{Kernel, Slice};
use super::{Frame, MOST_FRAMES};
use crate::open::Dump;
use crate::vaddr::{self, Space};

/// DWARF's x86_64 register numbers: rax rdx rcx rbx rsi rdi rbp rsp r8-r15,
/// then 16, the return address (RIP).
const REGISTERS: usize = 17;

/// Registers kept by the callee in the SysV ABI (rbx, rbp, r12-r15): when
/// a row has no rule for one, it holds the caller's value.
const CALLEE_SAVED: [u16; 6] = [3, 6, 12, 13, 14, 15];

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

/// Unwind from the registers a CPU saved; the frames, how the unwind
/// ended, and whether that is the stack's start (a return address of 0,
/// a call from outside the kernel's text, the psABI's deepest frame).
/// Every register is tracked (DWARF numbering), so the rules of an
/// interrupt stub (expressions over the saved frame) are followed into the
/// interrupted code.
pub(super) fn unwind(
    dump: &Dump<'_>,
    space: &Space,
    kernel: &Kernel<'_>,
    saved: &crashkit_dump_format::Registers,
) -> (Vec<Frame>, String, bool) {
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
            return (frames, "the caller's RIP or RSP is not known".into(), false);
        };
        let lookup = if exact { rip } else { rip - 1 };
        frames.push(Frame {
            pc: rip,
            sp: rsp,
            symbol: None,
            functions: kernel.symbolise(lookup),
            unwound_by: None,
            interrupted: None,
        });
        if frames.len() >= MOST_FRAMES {
            return (
                frames,
                format!("{MOST_FRAMES} frames: the most shown"),
                false,
            );
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
                    Err(why) => return (frames, format!("the CFA: {why}"), false),
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
                            return (frames, format!("the return address: {why}"), false);
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
                // The x86-64 psABI (3.4.1): code marks the deepest frame by
                // setting RBP to zero; entry code without call-frame
                // information that did so is the stack's start.
                if registers[6] == Some(0) {
                    return (
                        frames,
                        format!(
                            "the deepest frame: no call-frame information at {lookup:#x} and RBP 0, \
                             the x86-64 psABI's mark of the stack's start"
                        ),
                        true,
                    );
                }
                let Some(rbp) = registers[6] else {
                    return (
                        frames,
                        format!("no call-frame information at {lookup:#x} and no frame pointer"),
                        false,
                    );
                };
                let (ra, next_rbp) = match (read(rbp.wrapping_add(8)), read(rbp)) {
                    (Ok(ra), Ok(next_rbp)) => (ra, next_rbp),
                    (Err(why), _) | (_, Err(why)) => {
                        return (frames, format!("the stack is not readable: {why}"), false);
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
            return (frames, "the return address is not known".into(), false);
        };
        if ra == 0 {
            return (
                frames,
                "the outermost frame (return address 0)".into(),
                true,
            );
        }
        if !kernel.in_text(ra) {
            // Where the kernel was entered from code that is not in its
            // ELF (a boot or AP trampoline, a bootloader): a canonical
            // return address right after a call instruction. Anything else
            // is a stack this unwind lost.
            let canonical = (ra as i64) >> 47 == 0 || (ra as i64) >> 47 == -1;
            let called = canonical
                && read(ra.wrapping_sub(8))
                    .ok()
                    .and_then(|word| super::call::before(ra, word.to_le_bytes()))
                    .is_some();
            if called {
                return (
                    frames,
                    format!(
                        "entered from code outside the kernel's text: return address {ra:#x} \
                         follows a call (a boot or AP trampoline, a bootloader)"
                    ),
                    true,
                );
            }
            return (
                frames,
                format!("return address {ra:#x} is outside the kernel's text"),
                false,
            );
        }
        // The stack pointer must move up, except out of a stub: an NMI or
        // exception may run on its own stack (IST), so the interrupted one
        // can be anywhere. The frame count still bounds the walk.
        if next_rsp <= rsp && !next_exact {
            return (
                frames,
                format!("the stack pointer did not move up ({next_rsp:#x})"),
                false,
            );
        }
        if let Some(last) = frames.last_mut() {
            last.unwound_by = Some(how);
        }
        registers = next;
        exact = next_exact;
    }
}
