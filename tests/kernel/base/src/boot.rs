//! PVH boot: from QEMU's 32-bit entry to the kernel's [`entry!`](crate::entry) in long mode.
//!
//! QEMU's `-kernel` loader finds the Xen ELF note of type 18
//! (`XEN_ELFNOTE_PHYS32_ENTRY`) and enters [`pvh_start32`] in 32-bit protected
//! mode, paging off, flat segments, interrupts off, with `ebx` = physical
//! address of the `hvm_start_info` (see [`crate::pvh`]). The stub here:
//!
//! | step | what | why |
//! |------|------|-----|
//! | 1 | keep `ebx` in `esi` | `rep stosb` uses `eax`/`ecx`/`edi` |
//! | 2 | zero `.bss` (`__bss_start..__bss_end`) | statics that start zeroed, page tables, stacks |
//! | 3 | `esp` = top of the 64 KiB boot stack | the 64-bit code calls Rust |
//! | 4 | page tables: one PML4 entry -> one PDPT with 4 entries -> 4 PDs of 512 2 MiB pages | identity map of the first 4 GiB: kernel, low memory (trampoline, ACPI tables, start info), the xAPIC page at `0xFEE0_0000`; the top GiB (MMIO) is mapped uncacheable (PCD/PWT) |
//! | 5 | CR4.PAE, CR3, EFER.LME, CR0.PG/PE | long mode needs all four, in this order (Intel SDM vol. 3A 9.8.5) |
//! | 6 | `lgdt` a GDT with a 64-bit code segment (0x08) and a data segment (0x10); far jump to 0x08 | enters 64-bit mode |
//! | 7 | data segments = 0x10, `rsp` = boot stack, `rdi` = start-info address, call `kernel_base_entry` (defined by the kernel's `entry!`) | System V call into Rust |
//!
//! Each CPU later replaces this GDT with its own (with a TSS, see
//! [`crate::cpu`]); the page tables stay for good and the APs reuse them (the
//! trampoline loads the BSP's CR3).

use core::arch::global_asm;

/// Size of the BSP's boot stack (also its stack for the whole run).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

// SAFETY (whole block): this is the first code that runs. It assumes what
// the PVH boot ABI guarantees (32-bit protected mode, flat 4 GiB segments,
// paging and interrupts off, `ebx` = start info) and what the linker script
// provides: the image is at its link address below 4 GiB, `.bss` lies
// between `__bss_start` and `__bss_end` and is writable RAM, and nothing
// else runs (the APs are still in wait-for-SIPI). It writes only `.bss`
// (the page tables and stack live there) and CPU control registers.
global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4                 /* namesz: "Xen\0" */
    .long 8                 /* descsz: one .quad */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32
    .p2align 2

    .section .bss.boot, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .p2align 4
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:

    .section .text.boot, "ax"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data, DPL 0 */
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi

    /* 2. zero .bss */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    /* 3. stack */
    movl $boot_stack_top, %esp

    /* 4. page tables: PML4[0] -> PDPT; PDPT[0..4] -> PD pages */
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jne 1b
    /* PD entries: 2 MiB pages, present | writable | page size (0x83);
       from 3 GiB up (entry 1536), also PCD | PWT (uncacheable MMIO) */
    xorl %ecx, %ecx
2:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    cmpl $1536, %ecx
    jb 3f
    orl $0x18, %eax
3:
    movl %eax, boot_pd(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 2b

    /* 5. PAE, CR3, EFER.LME, paging */
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0

    /* 6. GDT, far jump to 64-bit code */
    lgdt boot_gdt_pointer
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_top, %rsp
    movl %esi, %edi
    xorl %ebp, %ebp
    movabsq $kernel_base_entry, %rax
    call *%rax
4:
    cli
    hlt
    jmp 4b
"#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);
