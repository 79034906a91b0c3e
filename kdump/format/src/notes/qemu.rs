//! QEMU's per-CPU state note (name `QEMU`, type 0), read only.
//!
//! QEMU's `dump-guest-memory` writes one after all the `CORE` notes, per CPU
//! in the same order, in both the ELF and the kdump form. Layout
//! (`QEMUCPUState`, version 1, 432 bytes, little-endian): `version` u32 @0,
//! `size` u32 @4, `rax rbx rcx rdx rsi rdi rsp rbp r8 .. r15` u64 @8..136,
//! `rip` @136, `rflags` @144, ten segments of 24 bytes @152 (`cs ds es fs
//! gs ss ldt tr gdt idt`; each `selector` u32, `limit` u32, `flags` u32,
//! pad u32, `base` u64), `cr[0..5]` u64 @392. It stays 64-bit when the
//! `CORE` notes are i386 ones. It has no EFER: long mode shows in
//! `cs.flags` (the L bit, 1 << 21) and in CR4.PAE with CR0.PG.

use crate::bytes::{u32_at, u64_at};

/// Size of a version-1 `QEMUCPUState`.
pub const QEMU_CPU_STATE_SIZE: usize = 432;

/// One segment register as QEMU caches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The visible selector.
    pub selector: u32,
    /// The cached limit.
    pub limit: u32,
    /// QEMU's cached descriptor flags (type, S, DPL, P, AVL, L, D/B, G in
    /// descriptor-high-word bit positions).
    pub flags: u32,
    /// The cached base.
    pub base: u64,
}

/// Names of [`QemuCpuState::segments`], in order.
pub const SEGMENT_NAMES: [&str; 10] = [
    "cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt",
];
/// Names of [`QemuCpuState::general`], in order.
pub const GENERAL_NAMES: [&str; 16] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// A decoded `QEMUCPUState`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QemuCpuState {
    /// The structure's version (1 is the only one defined).
    pub version: u32,
    /// `rax rbx rcx rdx rsi rdi rsp rbp r8 .. r15`.
    pub general: [u64; 16],
    /// The instruction pointer.
    pub rip: u64,
    /// The flags register.
    pub rflags: u64,
    /// `cs ds es fs gs ss ldt tr gdt idt`.
    pub segments: [Segment; 10],
    /// CR0 to CR4 (CR1 is reserved and zero).
    pub cr: [u64; 5],
}

impl QemuCpuState {
    /// Decode a descriptor: `None` unless it is at least 432 bytes and says
    /// version 1 with a size of at least 432 (a newer, longer version
    /// would start with the same fields).
    pub fn decode(desc: &[u8]) -> Option<Self> {
        let version = u32_at(desc, 0)?;
        let size = u32_at(desc, 4)? as usize;
        if version != 1 || size < QEMU_CPU_STATE_SIZE || desc.len() < QEMU_CPU_STATE_SIZE {
            return None;
        }
        let mut state = Self {
            version,
            ..Self::default()
        };
        for (i, value) in state.general.iter_mut().enumerate() {
            *value = u64_at(desc, 8 + 8 * i)?;
        }
        state.rip = u64_at(desc, 136)?;
        state.rflags = u64_at(desc, 144)?;
        for (i, segment) in state.segments.iter_mut().enumerate() {
            let at = 152 + 24 * i;
            *segment = Segment {
                selector: u32_at(desc, at)?,
                limit: u32_at(desc, at + 4)?,
                flags: u32_at(desc, at + 8)?,
                base: u64_at(desc, at + 16)?,
            };
        }
        for (i, value) in state.cr.iter_mut().enumerate() {
            *value = u64_at(desc, 392 + 8 * i)?;
        }
        Some(state)
    }

    /// The code segment's L bit: the CPU was executing 64-bit code.
    pub fn in_long_mode_code(&self) -> bool {
        self.segments[0].flags & (1 << 21) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{put_u32, put_u64};

    #[test]
    fn decodes_version_one_and_refuses_others() {
        let mut desc = [0u8; 432];
        put_u32(&mut desc, 0, 1);
        put_u32(&mut desc, 4, 432);
        put_u64(&mut desc, 8 + 8 * 6, 0xffff_8000_0000_1000); // rsp
        put_u64(&mut desc, 136, 0x10_0000);
        put_u32(&mut desc, 152 + 8, 1 << 21); // cs.flags: L
        put_u64(&mut desc, 152 + 24 * 4 + 16, 0xdead_b000); // gs.base
        put_u64(&mut desc, 392 + 3 * 8, 0x1000); // cr3
        let state = QemuCpuState::decode(&desc).unwrap();
        assert_eq!(state.general[6], 0xffff_8000_0000_1000);
        assert_eq!((state.rip, state.cr[3]), (0x10_0000, 0x1000));
        assert_eq!(state.segments[4].base, 0xdead_b000);
        assert!(state.in_long_mode_code());
        assert_eq!(QemuCpuState::decode(&desc[..431]), None);
        put_u32(&mut desc, 0, 2);
        assert_eq!(QemuCpuState::decode(&desc), None);
    }
}
