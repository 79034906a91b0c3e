//! The interrupted register frame an NMI-like entry hands to Rust code.
//!
//! Layout (`#[repr(C)]`, 21 `u64`s, 168 bytes) is the order of the x86_64
//! general registers in Linux's `struct pt_regs` and therefore in the first 21
//! slots of an ELF core's `NT_PRSTATUS` `pr_reg` array: `r15 r14 r13 r12 rbp
//! rbx r11 r10 r9 r8 rax rcx rdx rsi rdi`, then `error_code` (Linux's
//! `orig_ax` slot), then the hardware interrupt frame `rip cs rflags rsp ss`
//! exactly as the CPU pushed it (Intel SDM vol. 3, 6.14.2 "64-Bit Mode Stack
//! Frame"). The x86_64 entry stubs in [`crate::arch::x86_64::entry`] build this
//! frame in place on the IST stack; the host simulation fills it from a
//! signal's `ucontext_t`. Keeping the ELF order means the dump writer copies
//! it without shuffling.

/// General registers and the hardware interrupt frame of the interrupted
/// context, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the architectural registers of the same name
pub struct RegisterFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// The exception's error code for vectors that push one (#DF pushes 0),
    /// zero for vectors that do not (NMI, #MC, #DB).
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl RegisterFrame {
    /// Size of the frame in bytes; the entry stubs rely on it.
    pub const SIZE: usize = 21 * 8;

    /// An all-zero frame, usable in `const` and `static` initialisers.
    pub const ZERO: Self = Self {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        rbp: 0,
        rbx: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rax: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        error_code: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    };

    /// The frame from 21 registers in ELF `pr_reg` order: the inverse of
    /// [`to_array`](Self::to_array).
    pub const fn from_array(regs: [u64; 21]) -> Self {
        let [
            r15,
            r14,
            r13,
            r12,
            rbp,
            rbx,
            r11,
            r10,
            r9,
            r8,
            rax,
            rcx,
            rdx,
            rsi,
            rdi,
            error_code,
            rip,
            cs,
            rflags,
            rsp,
            ss,
        ] = regs;
        Self {
            r15,
            r14,
            r13,
            r12,
            rbp,
            rbx,
            r11,
            r10,
            r9,
            r8,
            rax,
            rcx,
            rdx,
            rsi,
            rdi,
            error_code,
            rip,
            cs,
            rflags,
            rsp,
            ss,
        }
    }

    /// The frame as the 21 registers in ELF `pr_reg` order.
    pub fn to_array(&self) -> [u64; 21] {
        [
            self.r15,
            self.r14,
            self.r13,
            self.r12,
            self.rbp,
            self.rbx,
            self.r11,
            self.r10,
            self.r9,
            self.r8,
            self.rax,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.error_code,
            self.rip,
            self.cs,
            self.rflags,
            self.rsp,
            self.ss,
        ]
    }
}

const _: () = assert!(core::mem::size_of::<RegisterFrame>() == RegisterFrame::SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_offsets_follow_pt_regs_order() {
        assert_eq!(core::mem::offset_of!(RegisterFrame, r15), 0);
        assert_eq!(core::mem::offset_of!(RegisterFrame, rbp), 4 * 8);
        assert_eq!(core::mem::offset_of!(RegisterFrame, rax), 10 * 8);
        assert_eq!(core::mem::offset_of!(RegisterFrame, rdi), 14 * 8);
        assert_eq!(core::mem::offset_of!(RegisterFrame, error_code), 15 * 8);
        assert_eq!(core::mem::offset_of!(RegisterFrame, rip), 16 * 8);
        assert_eq!(core::mem::offset_of!(RegisterFrame, ss), 20 * 8);
    }

    #[test]
    fn to_array_is_memory_order() {
        let mut frame = RegisterFrame::ZERO;
        frame.r15 = 1;
        frame.rip = 17;
        frame.ss = 21;
        let regs = frame.to_array();
        assert_eq!(RegisterFrame::from_array(regs), frame);
        assert_eq!(regs[0], 1);
        assert_eq!(regs[16], 17);
        assert_eq!(regs[20], 21);
    }
}
