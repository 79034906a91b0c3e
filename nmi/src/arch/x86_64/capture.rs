//! [`RegisterFrame::capture`]: the calling CPU's own registers, right here.
//!
//! An NMI entry stub receives the *interrupted* context's registers from the
//! hardware. Two crash-path callers have no interrupted context to save: a
//! CPU that stops itself through the shootdown's poll (it is spinning with
//! NMIs blocked, so the stop NMI cannot reach it), and the panic owner when
//! the panic did not come from an exception (Linux's `crash_setup_regs`
//! reads the live registers with inline assembly for the same reason).
//!
//! The frame is the state *at the capture site*: `rip` is the address of an
//! instruction inside the function that inlined the capture, `rsp` and `rbp`
//! its stack and frame pointer there, the general registers whatever the
//! compiler had in them (two of them hold the frame's address and a scratch
//! value, by necessity). It is what a debugger needs to find the stack and
//! unwind from the capture point; it is not the state of some interrupted
//! code. `error_code` is 0.
//!
//! Everything used (`mov` from general and segment registers, `lea` of
//! `rip`, `pushfq`) is legal in every privilege level, so the same code runs
//! in the kernel and in the host simulation's user-mode threads.

use core::arch::asm;
use core::mem::offset_of;

use crate::RegisterFrame;

impl RegisterFrame {
    /// The calling CPU's registers at this point: general registers, `rip`
    /// (an address inside the caller, which this is inlined into), `rsp`,
    /// `rbp`, `rflags`, `cs`, `ss`. See the module docs (`arch::x86_64`'s
    /// capture) for what the values mean; `error_code` is 0.
    ///
    /// Callable from any context (NMI included): no memory but the returned
    /// frame is written, no lock, a fixed short instruction sequence.
    #[inline(always)]
    pub fn capture() -> Self {
        let mut frame = Self::ZERO;
        let frame_pointer: *mut Self = &mut frame;
        // SAFETY: the assembly writes only the 21 `u64` fields of `frame`
        // through `frame_pointer`, at offsets taken from the type itself
        // (`offset_of!`), so every store lands inside the local, which
        // nothing else references while the block runs. The general
        // registers are stored before `scratch` (an output not overlapping
        // the input, since it is not `lateout`) is written, so each store
        // sees the register's value at the capture point. `pushfq`/`pop`
        // use the stack, hence no `nostack`: without it the compiler keeps
        // the red zone below `rsp` free across the block. The block changes
        // no flags (`pushfq` and `pop` leave them alone), so
        // `preserves_flags`; it writes memory, so neither `nomem` nor
        // `readonly`, which also keeps the compiler from moving other
        // memory accesses across it.
        unsafe {
            asm!(
                "mov [{frame} + {r15}], r15",
                "mov [{frame} + {r14}], r14",
                "mov [{frame} + {r13}], r13",
                "mov [{frame} + {r12}], r12",
                "mov [{frame} + {rbp}], rbp",
                "mov [{frame} + {rbx}], rbx",
                "mov [{frame} + {r11}], r11",
                "mov [{frame} + {r10}], r10",
                "mov [{frame} + {r9}], r9",
                "mov [{frame} + {r8}], r8",
                "mov [{frame} + {rax}], rax",
                "mov [{frame} + {rcx}], rcx",
                "mov [{frame} + {rdx}], rdx",
                "mov [{frame} + {rsi}], rsi",
                "mov [{frame} + {rdi}], rdi",
                "mov [{frame} + {rsp}], rsp",
                // The address of the next instruction: the capture point.
                "lea {scratch}, [rip]",
                "mov [{frame} + {rip}], {scratch}",
                // `mov r64, Sreg` zero-extends the selector.
                "mov {scratch}, cs",
                "mov [{frame} + {cs}], {scratch}",
                "mov {scratch}, ss",
                "mov [{frame} + {ss}], {scratch}",
                "pushfq",
                "pop {scratch}",
                "mov [{frame} + {rflags}], {scratch}",
                frame = in(reg) frame_pointer,
                scratch = out(reg) _,
                r15 = const offset_of!(RegisterFrame, r15),
                r14 = const offset_of!(RegisterFrame, r14),
                r13 = const offset_of!(RegisterFrame, r13),
                r12 = const offset_of!(RegisterFrame, r12),
                rbp = const offset_of!(RegisterFrame, rbp),
                rbx = const offset_of!(RegisterFrame, rbx),
                r11 = const offset_of!(RegisterFrame, r11),
                r10 = const offset_of!(RegisterFrame, r10),
                r9 = const offset_of!(RegisterFrame, r9),
                r8 = const offset_of!(RegisterFrame, r8),
                rax = const offset_of!(RegisterFrame, rax),
                rcx = const offset_of!(RegisterFrame, rcx),
                rdx = const offset_of!(RegisterFrame, rdx),
                rsi = const offset_of!(RegisterFrame, rsi),
                rdi = const offset_of!(RegisterFrame, rdi),
                rsp = const offset_of!(RegisterFrame, rsp),
                rip = const offset_of!(RegisterFrame, rip),
                cs = const offset_of!(RegisterFrame, cs),
                ss = const offset_of!(RegisterFrame, ss),
                rflags = const offset_of!(RegisterFrame, rflags),
                options(preserves_flags),
            );
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in user mode on the x86_64 Linux host.
    #[test]
    fn capture_reads_the_live_state_of_the_caller() {
        let marker = 0u64;
        let frame = RegisterFrame::capture();
        let function = capture_reads_the_live_state_of_the_caller as *const () as u64;

        // `rip` is inside this function (inlined), after its start.
        assert!(
            frame.rip > function && frame.rip - function < 64 * 1024,
            "rip {:#x} not in this test (starts at {function:#x})",
            frame.rip
        );
        // `rsp` is this function's stack: just below a local of it.
        let local = core::ptr::addr_of!(marker) as u64;
        assert!(
            frame.rsp <= local && local - frame.rsp < 64 * 1024,
            "rsp {:#x} far from a local at {local:#x}",
            frame.rsp
        );
        // Linux user mode: CS 0x33 (64-bit user code), SS 0x2b; RPL 3.
        assert_eq!(frame.cs & 3, 3, "cs {:#x}", frame.cs);
        assert_eq!(frame.ss & 3, 3, "ss {:#x}", frame.ss);
        // RFLAGS bit 1 is always set; IF (bit 9) is set in user mode.
        assert_eq!(frame.rflags & 0x2, 0x2, "rflags {:#x}", frame.rflags);
        assert_eq!(frame.rflags & 0x200, 0x200, "rflags {:#x}", frame.rflags);
        assert_eq!(frame.error_code, 0);
    }

    #[test]
    fn two_captures_differ_in_rip_only_by_the_code_between() {
        let first = RegisterFrame::capture();
        let second = RegisterFrame::capture();
        assert!(second.rip > first.rip, "{first:x?} then {second:x?}");
        assert!(second.rip - first.rip < 4096);
        assert_eq!((first.cs, first.ss), (second.cs, second.ss));
    }
}
