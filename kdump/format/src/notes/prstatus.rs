//! `NT_PRSTATUS`: the x86_64 and i386 `elf_prstatus` layouts, defined once.
//!
//! goblin has the note header but not the descriptor, so it is defined
//! here, field by field (Linux `include/linux/elfcore.h` for the layout,
//! QEMU `target/i386/arch_dump.c` as the cross-check; both agree):
//!
//! x86_64, 336 bytes: `pr_info` (3 x i32) @0, `pr_cursig` i16 @12,
//! `pr_sigpend` u64 @16, `pr_sighold` u64 @24, `pr_pid` i32 @32, `pr_ppid`
//! @36, `pr_pgrp` @40, `pr_sid` @44, four `timeval`s @48..112, `pr_reg`
//! 27 x u64 @112 (Linux's `user_regs_struct`, the order of [`Registers`]),
//! `pr_fpvalid` i32 @328, 4 bytes of padding.
//!
//! i386, 144 bytes: `pr_pid` @24, `pr_reg` 17 x u32 @72 (`ebx ecx edx esi
//! edi ebp eax ds es fs gs orig_eax eip cs eflags esp ss`; segment
//! selectors in the low 16 bits), `pr_fpvalid` @140. QEMU writes these when
//! CPU 0 is not in long mode, even in an ELF64 file.

use crate::bytes::{put_u32, put_u64, u32_at, u64_at};

/// Size of the x86_64 `elf_prstatus` descriptor.
pub const PRSTATUS_X86_64_SIZE: usize = 336;
/// Offset of `pr_pid` in the x86_64 descriptor.
pub const PR_PID_OFFSET_X86_64: usize = 32;
/// Offset of `pr_reg` in the x86_64 descriptor.
pub const PR_REG_OFFSET_X86_64: usize = 112;
/// Size of the i386 `elf_prstatus` descriptor.
pub const PRSTATUS_I386_SIZE: usize = 144;
/// Offset of `pr_pid` in the i386 descriptor.
pub const PR_PID_OFFSET_I386: usize = 24;
/// Offset of `pr_reg` in the i386 descriptor.
pub const PR_REG_OFFSET_I386: usize = 72;

macro_rules! register_set {
    ($(#[$meta:meta])* $name:ident, $ty:ty, [$($field:ident),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[allow(missing_docs)] // the fields are the architectural registers of the same name
        pub struct $name {
            $(pub $field: $ty,)+
        }

        impl $name {
            /// Register names in slot order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];

            /// The registers in slot order.
            pub const fn to_array(&self) -> [$ty; Self::NAMES.len()] {
                [$(self.$field),+]
            }

            /// The registers from slot order.
            pub const fn from_array(slots: [$ty; Self::NAMES.len()]) -> Self {
                let [$($field),+] = slots;
                Self { $($field),+ }
            }

            /// `(name, value)` pairs in slot order.
            pub fn named(&self) -> impl Iterator<Item = (&'static str, $ty)> {
                Self::NAMES.iter().copied().zip(self.to_array())
            }
        }
    };
}

register_set!(
    /// The 27 `pr_reg` slots of an x86_64 `NT_PRSTATUS`, in their order.
    /// `orig_rax` holds the error code of the exception that stopped the
    /// CPU (crashkit) or 0; `fs_base` and `gs_base` are the MSR values.
    Registers,
    u64,
    [
        r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip,
        cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs,
    ]
);

register_set!(
    /// The 17 `pr_reg` slots of an i386 `NT_PRSTATUS`, in their order.
    I386Registers,
    u32,
    [
        ebx, ecx, edx, esi, edi, ebp, eax, ds, es, fs, gs, orig_eax, eip, cs, eflags, esp, ss,
    ]
);

/// The x86_64 `elf_prstatus` descriptor for one CPU: `pr_pid` and
/// `pr_reg` filled, everything else zero.
pub fn encode_x86_64(pid: u32, registers: &Registers) -> [u8; PRSTATUS_X86_64_SIZE] {
    let mut desc = [0u8; PRSTATUS_X86_64_SIZE];
    put_u32(&mut desc, PR_PID_OFFSET_X86_64, pid);
    for (slot, value) in registers.to_array().into_iter().enumerate() {
        put_u64(&mut desc, PR_REG_OFFSET_X86_64 + slot * 8, value);
    }
    desc
}

/// `(pr_pid, pr_reg)` of an x86_64 descriptor; `None` unless it is exactly
/// [`PRSTATUS_X86_64_SIZE`] bytes.
pub fn decode_x86_64(desc: &[u8]) -> Option<(u32, Registers)> {
    if desc.len() != PRSTATUS_X86_64_SIZE {
        return None;
    }
    let pid = u32_at(desc, PR_PID_OFFSET_X86_64)?;
    let mut slots = [0u64; 27];
    for (slot, value) in slots.iter_mut().enumerate() {
        *value = u64_at(desc, PR_REG_OFFSET_X86_64 + slot * 8)?;
    }
    Some((pid, Registers::from_array(slots)))
}

/// `(pr_pid, pr_reg)` of an i386 descriptor; `None` unless it is exactly
/// [`PRSTATUS_I386_SIZE`] bytes. Selector slots keep only their low 16
/// bits (the high half is padding in the C struct).
pub fn decode_i386(desc: &[u8]) -> Option<(u32, I386Registers)> {
    if desc.len() != PRSTATUS_I386_SIZE {
        return None;
    }
    let pid = u32_at(desc, PR_PID_OFFSET_I386)?;
    let mut slots = [0u32; 17];
    for (slot, value) in slots.iter_mut().enumerate() {
        *value = u32_at(desc, PR_REG_OFFSET_I386 + slot * 4)?;
    }
    let mut registers = I386Registers::from_array(slots);
    for selector in [
        &mut registers.ds,
        &mut registers.es,
        &mut registers.fs,
        &mut registers.gs,
        &mut registers.cs,
        &mut registers.ss,
    ] {
        *selector &= 0xffff;
    }
    Some((pid, registers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_round_trip_and_slot_offsets() {
        let slots: [u64; 27] = core::array::from_fn(|i| 0x1111_0000_0000_0000 + i as u64);
        let registers = Registers::from_array(slots);
        let desc = encode_x86_64(7, &registers);
        assert_eq!(desc.len(), 336);
        assert_eq!(u32_at(&desc, 32), Some(7));
        // rip is slot 16, at 112 + 128 = 240; gs_base slot 22 at 288.
        assert_eq!(u64_at(&desc, 240), Some(registers.rip));
        assert_eq!(u64_at(&desc, 288), Some(registers.gs_base));
        assert_eq!(decode_x86_64(&desc), Some((7, registers)));
        assert_eq!(decode_x86_64(&desc[..335]), None);
        assert_eq!(Registers::NAMES[16], "rip");
    }

    #[test]
    fn i386_selectors_lose_their_padding_half() {
        let mut desc = [0u8; 144];
        put_u32(&mut desc, 24, 3);
        put_u32(&mut desc, 72 + 12 * 4, 0x0010_2000); // eip
        put_u32(&mut desc, 72 + 13 * 4, 0xdead_0008); // cs with junk padding
        let (pid, registers) = decode_i386(&desc).unwrap();
        assert_eq!((pid, registers.eip, registers.cs), (3, 0x0010_2000, 8));
        assert_eq!(decode_i386(&desc[..143]), None);
    }
}
