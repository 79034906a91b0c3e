//! The ORC walk over synthetic stacks: each way a Linux stack is built
//! (calls based on RSP and RBP, a system call's `pt_regs`, an interrupt of
//! kernel code, an interrupt frame alone, the IRQ stack's switch, a
//! function without entries, code without tables) and each way a walk
//! must stop. The first stack is walked through real tables of each ORC
//! version (`crate::orc::tests` lays them out), the others through a
//! lookup of decoded entries.

use std::cell::RefCell;
use std::collections::HashMap;

use super::*;
use crate::orc::tests::{ALL, Described, TEXT, call, release, tables};
use crate::orc::{Tables, Version};

/// Stacks live here; modules' code at `MODULES`.
const STACK: u64 = 0xffff_c900_0000_4000;
const IRQ_STACK: u64 = 0xffff_c900_0010_8000;
const MODULES: u64 = 0xffff_ffff_c000_0000;

/// Bytes by address; anything else is not in the dump.
#[derive(Default)]
struct Memory(RefCell<HashMap<u64, u8>>);

impl Memory {
    fn put(&self, at: u64, bytes: &[u8]) {
        let mut map = self.0.borrow_mut();
        for (addr, &byte) in (at..).zip(bytes) {
            map.insert(addr, byte);
        }
    }
    fn word(&self, at: u64, value: u64) {
        self.put(at, &value.to_le_bytes());
    }
    /// A `pt_regs` at `at`: every register distinct, then rip, cs, rsp.
    fn pt_regs(&self, at: u64, rip: u64, cs: u64, rsp: u64, rbp: u64) {
        for index in 0..21u64 {
            self.word(at + 8 * index, 0x1000 + index);
        }
        self.word(at + 4 * 8, rbp);
        self.word(at + 16 * 8, rip);
        self.word(at + 17 * 8, cs);
        self.word(at + 19 * 8, rsp);
    }
    /// A direct call (`E8 rel32`) to `target` ending at `ret`.
    fn call_to(&self, ret: u64, target: u64) {
        let rel = i32::try_from(target.wrapping_sub(ret) as i64).unwrap();
        self.put(ret - 8, &[0x90; 3]);
        self.put(ret - 5, &[0xe8]);
        self.put(ret - 4, &rel.to_le_bytes());
    }
}

impl Stack for Memory {
    fn read_u64(&self, addr: u64) -> Result<u64, String> {
        let map = self.0.borrow();
        let mut bytes = [0u8; 8];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = *map
                .get(&(addr + i as u64))
                .ok_or_else(|| format!("{addr:#x} is not in the dump"))?;
        }
        Ok(u64::from_le_bytes(bytes))
    }
}

/// A kernel of decoded entries (by start address) and function starts.
struct Decoded {
    entries: Vec<(u64, Entry)>,
    functions: Vec<u64>,
}

impl Kernel for Decoded {
    fn entry(&self, pc: u64) -> Result<Option<(u64, Entry)>, String> {
        Ok(self
            .entries
            .iter()
            .rev()
            .find(|(start, _)| *start <= pc)
            .copied())
    }
    fn in_text(&self, addr: u64) -> bool {
        (TEXT..TEXT + 0x10_000).contains(&addr)
    }
    fn in_modules(&self, addr: u64) -> bool {
        (MODULES..MODULES + 0x10_000).contains(&addr)
    }
    fn function_start(&self, addr: u64) -> Option<u64> {
        self.functions.iter().rev().find(|&&f| f <= addr).copied()
    }
}

/// The same through real tables.
struct InTables<'m>(Tables<'m>);

impl Kernel for InTables<'_> {
    fn entry(&self, pc: u64) -> Result<Option<(u64, Entry)>, String> {
        self.0.find(pc)
    }
    fn in_text(&self, addr: u64) -> bool {
        (TEXT..TEXT + 0x10_000).contains(&addr)
    }
    fn in_modules(&self, _: u64) -> bool {
        false
    }
    fn function_start(&self, _: u64) -> Option<u64> {
        None
    }
}

fn decoded(list: &[(u64, Described)]) -> Decoded {
    Decoded {
        entries: list
            .iter()
            .map(|&(start, d)| {
                let bytes = crate::orc::tests::encode(d, Version::V3);
                (start, Entry::decode(bytes, Version::V3).unwrap())
            })
            .collect(),
        functions: list.iter().map(|&(start, _)| start).collect(),
    }
}

fn kind(kind: Kind, sp_reg: u16, sp_offset: i16) -> Described {
    Described {
        kind,
        ..call(sp_reg, sp_offset)
    }
}

const SP: u16 = 5;
const BP: u16 = 4;
const PREV_SP: u16 = 1;
const SP_INDIRECT: u16 = 9;

fn registers(rip: u64, rsp: u64, rbp: u64) -> Registers {
    Registers {
        rip,
        rsp,
        rbp,
        cs: 0x10,
        ..Registers::default()
    }
}

/// (pc, step) of each frame.
fn steps(frames: &[Frame]) -> Vec<(u64, Option<Step>)> {
    frames.iter().map(|f| (f.pc, f.step)).collect()
}

#[test]
fn a_system_call_stack_unwinds_through_the_tables_of_every_version() {
    // f0 (a leaf: CFA = RSP + 8), f1 (CFA = RSP + 24, RBP saved at
    // CFA - 16), f2 (RBP-based: CFA = RBP + 16, RBP at CFA - 16), the
    // system call entry (a pt_regs at RSP), then a terminator.
    let memory = Memory::default();
    let s = STACK;
    let f1_rbp_saved = s + 40;
    memory.word(s, TEXT + 0x210);
    memory.word(s + 16, f1_rbp_saved);
    memory.word(s + 24, TEXT + 0x310);
    memory.word(s + 40, 0x5555);
    memory.word(s + 48, TEXT + 0x410);
    memory.pt_regs(s + 56, 0x40_1000, 0x33, 0x7ffc_0000, 0x7ffc_0100);
    let f1 = Described {
        bp_reg: PREV_SP,
        bp_offset: -16,
        ..call(SP, 24)
    };
    let f2 = Described {
        bp_reg: PREV_SP,
        bp_offset: -16,
        ..call(BP, 16)
    };
    let addresses = [
        TEXT + 0x100,
        TEXT + 0x200,
        TEXT + 0x300,
        TEXT + 0x400,
        TEXT + 0x500,
    ];
    let entries = [
        call(SP, 8),
        f1,
        f2,
        kind(Kind::Regs, SP, 0),
        kind(Kind::Undefined, 0, 0),
    ];
    for version in ALL {
        let (flat, symbols) = tables(&addresses, &entries, version, None);
        let kernel = InTables(Tables::locate(&symbols, Some(release(version)), &flat).unwrap());
        let (frames, ending) = walk(&registers(TEXT + 0x110, s, 0x7777), &kernel, &memory, 64);
        assert_eq!(
            steps(&frames),
            [
                (TEXT + 0x110, Some(Step::OrcCall)),
                (TEXT + 0x210, Some(Step::OrcCall)),
                (TEXT + 0x310, Some(Step::OrcCall)),
                (TEXT + 0x410, Some(Step::OrcRegs)),
            ],
            "{version:?}"
        );
        assert_eq!(
            frames.iter().map(|f| f.sp).collect::<Vec<_>>(),
            [s, s + 8, s + 32, s + 56]
        );
        assert_eq!(
            ending,
            Ending::User {
                rip: 0x40_1000,
                rsp: 0x7ffc_0000
            }
        );
        let regs = frames[3].interrupted.unwrap();
        assert_eq!((regs.at, regs.full, regs.user), (s + 56, true, true));
        assert!(ending.complete());
    }
}

#[test]
fn an_interrupt_of_kernel_code_continues_at_the_exact_address_to_the_end_of_stack() {
    // A handler (leaf) called from an interrupt stub whose entry says a
    // pt_regs is at RSP; the interrupted idle function was at exactly
    // TEXT + 0x820, where a new entry starts: looking one byte before
    // would take the wrong one (CFA + 8) and read a wrong return address.
    let memory = Memory::default();
    let s = STACK;
    let s2 = STACK + 0x400;
    memory.word(s, TEXT + 0x710);
    memory.pt_regs(s + 8, TEXT + 0x820, 0x10, s2, 0x4242);
    memory.word(s2, 0xdead_0000);
    memory.word(s2 + 8, TEXT + 0x910);
    let kernel = decoded(&[
        (TEXT + 0x600, call(SP, 8)),
        (TEXT + 0x700, kind(Kind::Regs, SP, 0)),
        (TEXT + 0x800, call(SP, 8)),
        (TEXT + 0x820, call(SP, 16)),
        (TEXT + 0x900, kind(Kind::EndOfStack, 0, 0)),
    ]);
    let (frames, ending) = walk(&registers(TEXT + 0x610, s, 1), &kernel, &memory, 64);
    assert_eq!(
        steps(&frames),
        [
            (TEXT + 0x610, Some(Step::OrcCall)),
            (TEXT + 0x710, Some(Step::OrcRegs)),
            (TEXT + 0x820, Some(Step::OrcCall)),
            (TEXT + 0x910, None),
        ]
    );
    assert!(frames[2].exact && !frames[3].exact);
    let regs = frames[1].interrupted.unwrap();
    assert_eq!((regs.rip, regs.rsp, regs.user), (TEXT + 0x820, s2, false));
    assert_eq!(ending, Ending::EndOfStack);
}

#[test]
fn an_interrupt_frame_alone_keeps_the_other_registers_live() {
    // An entry stub before it saved registers: only RIP, CS, RFLAGS, RSP,
    // SS at RSP. The interrupted function is RBP-based: its CFA needs the
    // RBP the CPU still holds.
    let memory = Memory::default();
    let s = STACK;
    let s2 = STACK + 0x800;
    let rbp = s2 + 0x40;
    memory.put(s, &[0; 40]);
    memory.word(s, TEXT + 0x230);
    memory.word(s + 8, 0x10);
    memory.word(s + 24, s2);
    memory.word(rbp + 8, TEXT + 0x910);
    let kernel = decoded(&[
        (TEXT + 0x100, kind(Kind::RegsPartial, SP, 0)),
        (TEXT + 0x200, call(BP, 16)),
        (TEXT + 0x900, kind(Kind::EndOfStack, 0, 0)),
    ]);
    let (frames, ending) = walk(&registers(TEXT + 0x104, s, rbp), &kernel, &memory, 64);
    assert_eq!(
        steps(&frames),
        [
            (TEXT + 0x104, Some(Step::OrcIretFrame)),
            (TEXT + 0x230, Some(Step::OrcCall)),
            (TEXT + 0x910, None),
        ]
    );
    let regs = frames[0].interrupted.unwrap();
    assert!(!regs.full && regs.at == s - 128);
    assert_eq!(ending, Ending::EndOfStack);
}

#[test]
fn the_irq_stack_hands_back_to_the_task_stack_below_it() {
    // On the IRQ stack (above the task stack), `call_on_irqstack` saved
    // the task's RSP at the IRQ stack's top: CFA = [RSP] + 8. The stack
    // pointer goes down there, which only an indirect base may do.
    let memory = Memory::default();
    let task = STACK + 0x100;
    memory.word(IRQ_STACK, TEXT + 0x310);
    memory.word(IRQ_STACK + 8, task);
    memory.word(task, TEXT + 0x910);
    let kernel = decoded(&[
        (TEXT + 0x200, call(SP, 8)),
        (TEXT + 0x300, call(SP_INDIRECT, 8)),
        (TEXT + 0x900, kind(Kind::EndOfStack, 0, 0)),
    ]);
    let (frames, ending) = walk(&registers(TEXT + 0x210, IRQ_STACK, 0), &kernel, &memory, 64);
    assert_eq!(
        frames.iter().map(|f| f.sp).collect::<Vec<_>>(),
        [IRQ_STACK, IRQ_STACK + 8, task + 8]
    );
    assert_eq!(ending, Ending::EndOfStack);
    // A plain call frame may not go down.
    let kernel = decoded(&[
        (TEXT + 0x200, call(SP, 8)),
        (TEXT + 0x300, call(SP, -64)),
        (TEXT + 0x900, kind(Kind::EndOfStack, 0, 0)),
    ]);
    memory.word(IRQ_STACK - 64, TEXT + 0x910);
    let (_, ending) = walk(&registers(TEXT + 0x210, IRQ_STACK, 0), &kernel, &memory, 64);
    assert!(
        matches!(&ending, Ending::Stopped(why) if why.contains("did not move up")),
        "{ending:?}"
    );
}

#[test]
fn a_function_without_entries_is_left_by_a_verified_call_and_code_without_tables_by_rbp() {
    // f (at TEXT + 0x400) has an undefined entry. Above RSP: a word in
    // the text that does not follow a call, one after a call elsewhere,
    // then the return address after `call f`.
    let memory = Memory::default();
    let s = STACK;
    memory.word(s, 0x1234);
    memory.word(s + 8, TEXT + 0x123);
    memory.put(TEXT + 0x123 - 8, &[0x90; 11]);
    memory.word(s + 16, TEXT + 0x523);
    memory.call_to(TEXT + 0x523, TEXT + 0x100);
    memory.word(s + 24, TEXT + 0x623);
    memory.call_to(TEXT + 0x623, TEXT + 0x400);
    // The caller: a leaf-like frame whose return address is a module's.
    memory.word(s + 32, MODULES + 0x80);
    // The module's frame: RBP chain to the end of stack.
    let rbp = s + 0x100;
    memory.word(rbp, 0);
    memory.word(rbp + 8, TEXT + 0x910);
    let mut kernel = decoded(&[
        (TEXT + 0x400, kind(Kind::Undefined, 0, 0)),
        (TEXT + 0x600, call(SP, 8)),
        (TEXT + 0x900, kind(Kind::EndOfStack, 0, 0)),
    ]);
    kernel.functions = vec![TEXT + 0x100, TEXT + 0x400, TEXT + 0x600, TEXT + 0x900];
    let (frames, ending) = walk(&registers(TEXT + 0x410, s, rbp), &kernel, &memory, 64);
    assert_eq!(
        steps(&frames),
        [
            (TEXT + 0x410, Some(Step::CallScan)),
            (TEXT + 0x623, Some(Step::OrcCall)),
            (MODULES + 0x80, Some(Step::FramePointer)),
            (TEXT + 0x910, None),
        ]
    );
    assert_eq!(frames[1].sp, s + 32);
    assert_eq!(ending, Ending::EndOfStack);
    // No call to f anywhere up the stack, and RBP not a kernel address:
    // stopped, saying all three.
    let memory = Memory::default();
    memory.put(s, &[0; 4096]);
    let (frames, ending) = walk(&registers(TEXT + 0x410, s, 7), &kernel, &memory, 64);
    assert_eq!(frames.len(), 1);
    let Ending::Stopped(why) = ending else {
        panic!("{ending:?}")
    };
    assert!(
        why.contains("says its frame cannot be unwound")
            && why.contains("no return address after a call")
            && why.contains("no usable frame pointer"),
        "{why}"
    );
}

#[test]
fn a_frame_pointer_with_its_low_bit_set_leads_to_a_pt_regs() {
    let memory = Memory::default();
    let regs_at = STACK + 0x200;
    memory.pt_regs(regs_at, 0x40_2000, 0x33, 0x7ffd_0000, 0);
    let kernel = decoded(&[(TEXT + 0x900, kind(Kind::EndOfStack, 0, 0))]);
    let (frames, ending) = walk(
        &registers(MODULES + 0x40, STACK, regs_at + 1),
        &kernel,
        &memory,
        64,
    );
    assert_eq!(
        steps(&frames),
        [(MODULES + 0x40, Some(Step::FramePointerRegs))]
    );
    assert_eq!(
        ending,
        Ending::User {
            rip: 0x40_2000,
            rsp: 0x7ffd_0000
        }
    );
}

#[test]
fn walks_stop_early_and_say_why() {
    let stopped = |frames: &[Frame], ending: &Ending, count: usize, what: &str| {
        assert_eq!(frames.len(), count, "{what}: {ending:?}");
        match ending {
            Ending::Stopped(why) => assert!(why.contains(what), "{what}: {why}"),
            other => panic!("{what}: {other:?}"),
        }
    };
    let kernel = decoded(&[
        (TEXT + 0x100, call(SP, 8)),
        (TEXT + 0x200, call(SP, 8)),
        (TEXT + 0x900, kind(Kind::EndOfStack, 0, 0)),
    ]);
    // The stack is not in the dump.
    let memory = Memory::default();
    let (frames, ending) = walk(&registers(TEXT + 0x110, STACK, 0), &kernel, &memory, 64);
    stopped(&frames, &ending, 1, "is not in the dump");
    // A return address of 0, and one outside the kernel's code.
    memory.word(STACK, 0);
    let (frames, ending) = walk(&registers(TEXT + 0x110, STACK, 0), &kernel, &memory, 64);
    stopped(&frames, &ending, 1, "a return address of 0");
    memory.word(STACK, 0xffff_8880_0000_1000);
    let (frames, ending) = walk(&registers(TEXT + 0x110, STACK, 0), &kernel, &memory, 64);
    stopped(&frames, &ending, 1, "outside the kernel's code");
    // A first RIP outside the code.
    let (frames, ending) = walk(
        &registers(0xffff_8880_0000_0000, STACK, 0),
        &kernel,
        &memory,
        64,
    );
    stopped(&frames, &ending, 1, "is not in the kernel's code");
    // The limit: a chain of 10 frames, 4 shown.
    for i in 0..10u64 {
        memory.word(STACK + 8 * i, TEXT + 0x110);
    }
    let (frames, ending) = walk(&registers(TEXT + 0x110, STACK, 0), &kernel, &memory, 4);
    stopped(&frames, &ending, 4, "4 frames: the most shown");
    // A pt_regs that points back at the same frame: a loop.
    let kernel = decoded(&[(TEXT + 0x100, kind(Kind::Regs, SP, 0))]);
    memory.pt_regs(STACK, TEXT + 0x110, 0x10, STACK, 0);
    let (frames, ending) = walk(&registers(TEXT + 0x110, STACK, 0), &kernel, &memory, 64);
    stopped(&frames, &ending, 2, "seen before: a loop");
    // A CPU in user space has no kernel stack: that is its whole story.
    let user = Registers {
        cs: 0x33,
        ..registers(0x40_1000, 0x7ffc_0000, 0)
    };
    let (frames, ending) = walk(&user, &kernel, &memory, 64);
    assert!(frames.is_empty() && ending.complete(), "{ending:?}");
    // A low RIP in kernel mode (a CPU never started): not a stack.
    let (frames, ending) = walk(&registers(0xfff0, 0, 0), &kernel, &memory, 64);
    stopped(&frames, &ending, 0, "neither kernel code nor user mode");
}
