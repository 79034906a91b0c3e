//! The entry from the hand-over (docs/kdump.md, "The entry contract") and
//! the descriptor tables: the crashed kernel's GDT, IDT and stack are left
//! behind before anything can fault.
//!
//! | step | what |
//! |------|------|
//! | 1 | `cld`; `rsp` = the top of this kernel's own 256 KiB stack |
//! | 2 | `lgdt` this kernel's GDT (64-bit code 0x08, data 0x10), CS reloaded by a far return, data segments 0x10, FS and GS 0 |
//! | 3 | `lidt` this kernel's IDT: vectors 0-31 print the exception and halt, NMI (2) returns at once |
//! | 4 | call `capture_main(block = rdi, cr0 = r9, cr3 = r10, cr4 = r11)` |

use core::arch::global_asm;

/// This kernel's stack.
pub const STACK_SIZE: usize = 256 * 1024;

// SAFETY (whole block): the first code of the capture kernel. It relies on
// the entry contract: 64-bit mode, CPL 0, interrupts off, this image
// identity mapped (the reservation is), rdi/r9/r10/r11 as documented. It
// writes only its own stack, GDTR, IDTR and segment registers, then calls
// Rust. The IDT's stubs run on this stack (no IST: nothing else runs).
global_asm!(
    r#"
    .section .bss.stack, "aw", @nobits
    .p2align 12
capture_stack_bottom:
    .skip {stack_size}
capture_stack_top:

    .section .rodata.gdt, "a"
    .p2align 3
capture_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data, DPL 0 */
capture_gdt_end:
    .p2align 3
capture_gdt_pointer:
    .word capture_gdt_end - capture_gdt - 1
    .quad capture_gdt

    .section .text.entry, "ax"
    .global capture_entry
capture_entry:
    cli
    cld
    lea capture_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    lgdt capture_gdt_pointer(%rip)
    pushq $0x08
    lea 1f(%rip), %rax
    pushq %rax
    lretq
1:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    /* rdi = block, rsi = cr0, rdx = cr3, rcx = cr4 */
    movq %r9, %rsi
    movq %r10, %rdx
    movq %r11, %rcx
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    call capture_load_idt
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    call capture_main
2:
    cli
    hlt
    jmp 2b

    /* The exception stubs: vector and error code (0 where the CPU pushes
       none) on the stack, then the common path. */
    .p2align 4
capture_nmi:
    iretq

    .irp n, 0,1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .p2align 4
capture_isr_\n:
    .if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    pushq $0
    .endif
    pushq $\n
    jmp capture_isr_common
    .endr

capture_isr_common:
    movq 0(%rsp), %rdi      /* vector */
    movq 8(%rsp), %rsi      /* error code */
    movq 16(%rsp), %rdx     /* rip */
    andq $-16, %rsp
    call capture_exception
3:
    cli
    hlt
    jmp 3b

    .section .rodata.isr_table, "a"
    .p2align 3
    .global capture_isr_table
capture_isr_table:
    .quad capture_isr_0, capture_isr_1, capture_nmi, capture_isr_3
    .quad capture_isr_4, capture_isr_5, capture_isr_6, capture_isr_7
    .quad capture_isr_8, capture_isr_9, capture_isr_10, capture_isr_11
    .quad capture_isr_12, capture_isr_13, capture_isr_14, capture_isr_15
    .quad capture_isr_16, capture_isr_17, capture_isr_18, capture_isr_19
    .quad capture_isr_20, capture_isr_21, capture_isr_22, capture_isr_23
    .quad capture_isr_24, capture_isr_25, capture_isr_26, capture_isr_27
    .quad capture_isr_28, capture_isr_29, capture_isr_30, capture_isr_31
"#,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    /// The stubs' addresses, vector by vector (NMI is `capture_nmi`).
    static capture_isr_table: [u64; 32];
}

/// The IDT: 32 interrupt gates (type 0xE, present, DPL 0, selector 0x08;
/// Intel SDM vol. 3A 6.14.1, figure 6-8), the other vectors not present.
#[repr(C, align(16))]
struct Idt([u64; 2 * 32]);

static mut IDT: Idt = Idt([0; 64]);

/// Fill and load the IDT (called once, from `capture_entry`).
#[unsafe(no_mangle)]
extern "C" fn capture_load_idt() {
    // SAFETY: `capture_isr_table` is the table defined in the asm above,
    // 32 quads in read-only data.
    let stubs = unsafe { &*core::ptr::addr_of!(capture_isr_table) };
    // SAFETY: called once, on the one CPU this kernel runs on, before
    // interrupts or exceptions can use the IDT; nothing else touches IDT.
    let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
    for (vector, &stub) in stubs.iter().enumerate() {
        let low = (stub & 0xFFFF) | (0x08 << 16) | (0x8E00 << 32) | ((stub >> 16) & 0xFFFF) << 48;
        idt.0[2 * vector] = low;
        idt.0[2 * vector + 1] = stub >> 32;
    }
    let pointer = (
        (core::mem::size_of::<Idt>() - 1) as u16,
        core::ptr::addr_of!(IDT) as u64,
    );
    #[repr(C, packed)]
    struct Pointer(u16, u64);
    let pointer = Pointer(pointer.0, pointer.1);
    // SAFETY: the IDT is a static that lives for good, filled above; its
    // gates name this image's stubs and the GDT's code selector 0x08.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) core::ptr::addr_of!(pointer), options(readonly, nostack, preserves_flags));
    }
}
