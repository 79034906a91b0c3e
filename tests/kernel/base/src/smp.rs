//! Starting the APs: INIT-SIPI-SIPI, a 16-bit trampoline at
//! [`TRAMPOLINE_BASE`], one AP at a time.
//!
//! The trampoline (assembled into the kernel, copied below 1 MiB by the BSP)
//! goes from real mode straight to long mode: `lgdt` its own GDT, CR4.PAE,
//! CR3 (the BSP's page tables), EFER.LME, CR0.PG|PE, far jump to its 64-bit
//! part, which loads the stack and calls the entry the BSP left in its data
//! block:
//!
//! | data word | written by the BSP before each start |
//! |-----------|--------------------------------------|
//! | `cr3` | the BSP's CR3 (identity map, below 4 GiB) |
//! | `stack` | top of the AP's own kernel stack ([`crate::cpu`]) |
//! | `entry` | `extern "C" fn(cpu_index: u64) -> !` |
//! | `argument` | the AP's dense CPU index |
//!
//! Protocol per AP (the data block is shared, so one AP at a time):
//!
//! | BSP | AP |
//! |-----|----|
//! | write the data block; `ARRIVED = false` | in wait-for-SIPI |
//! | INIT (ICR 0x4500), 10 ms, SIPI (0x4600 \| page), 200 µs | runs the trampoline, enters Rust |
//! | if not `ARRIVED`: second SIPI | `ARRIVED = true` (it has consumed the data block) |
//! | wait for `ARRIVED` (bounded, [`ARRIVAL_TIMEOUT_US`]), next AP | sets up its CPU, registers, reports online |
//!
//! An AP runs on the trampoline's GDT (at `TRAMPOLINE_BASE`) until it loads
//! its own; copying the trampoline for the next AP meanwhile rewrites that
//! GDT with the same bytes, and the AP's segment registers are loaded
//! already, so this is harmless.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::time::{delay_us, poll_until};

/// Physical address the trampoline is copied to (a page below 1 MiB; the
/// SIPI vector is its page number).
pub const TRAMPOLINE_BASE: usize = 0x8000;
/// How long the BSP waits for an AP to enter Rust after its SIPIs (TCG with
/// 8 vCPUs on 2 host cores can be slow).
pub const ARRIVAL_TIMEOUT_US: u64 = 2_000_000;

/// xAPIC registers used for the start-up IPIs (SDM vol. 3A, table 10-1).
const ICR_LOW: usize = 0x300;
const ICR_HIGH: usize = 0x310;
/// ICR: INIT, level assert (SDM 10.6.1).
const ICR_INIT: u32 = 0x4500;
/// ICR: start-up, level assert; OR the vector (page number).
const ICR_STARTUP: u32 = 0x4600;
/// ICR delivery status: send pending.
const ICR_PENDING: u32 = 1 << 12;

/// Set by an AP once it runs Rust code (it no longer needs the data block).
static ARRIVED: AtomicBool = AtomicBool::new(false);

// SAFETY (whole block): the trampoline is never executed where it is linked;
// the BSP copies it to TRAMPOLINE_BASE (`start_ap`) and an AP enters it from
// a SIPI in real mode with CS = TRAMPOLINE_BASE >> 4, IP = 0. Every address
// it uses is TRAMPOLINE_BASE plus an offset inside the copy, or the data
// block the BSP filled in; it assumes the BSP's page tables (CR3) identity
// map the trampoline page, the stack and the entry point. It touches only
// its own registers and the stack it is given.
global_asm!(
    r#"
    .section .text.trampoline, "ax"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl ap_trampoline_gdt_pointer - ap_trampoline_start
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl ap_trampoline_cr3 - ap_trampoline_start, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmpl $0x08, ${base} + (ap_trampoline_64 - ap_trampoline_start)

    .code64
ap_trampoline_64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq {base} + (ap_trampoline_stack - ap_trampoline_start), %rsp
    movq {base} + (ap_trampoline_argument - ap_trampoline_start), %rdi
    movq {base} + (ap_trampoline_entry - ap_trampoline_start), %rax
    xorl %ebp, %ebp
    call *%rax
1:
    cli
    hlt
    jmp 1b

    .p2align 3
ap_trampoline_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
ap_trampoline_gdt_pointer:
    .word 23
    .long {base} + (ap_trampoline_gdt - ap_trampoline_start)
    .p2align 3
    .global ap_trampoline_cr3
ap_trampoline_cr3:
    .quad 0
    .global ap_trampoline_stack
ap_trampoline_stack:
    .quad 0
    .global ap_trampoline_entry
ap_trampoline_entry:
    .quad 0
    .global ap_trampoline_argument
ap_trampoline_argument:
    .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
    .code64
"#,
    base = const TRAMPOLINE_BASE,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_trampoline_cr3: u8;
    static ap_trampoline_stack: u8;
    static ap_trampoline_entry: u8;
    static ap_trampoline_argument: u8;
}

/// Why an AP did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The trampoline does not fit its page (a build problem).
    TrampolineTooLarge(usize),
    /// The ICR stayed busy (a previous IPI was never accepted).
    IcrBusy,
    /// The AP never entered Rust within [`ARRIVAL_TIMEOUT_US`].
    NoArrival,
}

/// Where the AP starts, with its dense CPU index.
pub type ApEntry = extern "C" fn(u64) -> !;

/// Offset of `symbol` from the trampoline's start.
fn offset_of(symbol: *const u8) -> usize {
    (symbol as usize).wrapping_sub(&raw const ap_trampoline_start as usize)
}

fn icr_write(apic_base: usize, destination: u32, command: u32) -> Result<(), StartError> {
    let low = (apic_base + ICR_LOW) as *mut u32;
    let high = (apic_base + ICR_HIGH) as *mut u32;
    let wait_idle = || {
        for _ in 0..1_000_000 {
            // SAFETY: the xAPIC page is identity mapped (uncacheable) and
            // the ICR is a readable register; the BSP is the only CPU that
            // uses its own ICR here (NMIs from the panic path go through
            // LocalApic, and no panic can run during bring-up on the BSP
            // while this function is running: a panic never returns here).
            if unsafe { low.read_volatile() } & ICR_PENDING == 0 {
                return true;
            }
            core::hint::spin_loop();
        }
        false
    };
    if !wait_idle() {
        return Err(StartError::IcrBusy);
    }
    // SAFETY: as above; high first, the write to the low word sends.
    unsafe {
        high.write_volatile(destination << 24);
        low.write_volatile(command);
    }
    if wait_idle() {
        Ok(())
    } else {
        Err(StartError::IcrBusy)
    }
}

/// Start the AP with `apic_id` as CPU `cpu` at `entry`, on `stack_top`, and
/// wait until it arrived in Rust.
///
/// # Safety
/// BSP only, one AP at a time; `apic_base` is the identity-mapped xAPIC
/// page; the AP is in wait-for-SIPI (never started before); physical memory
/// at [`TRAMPOLINE_BASE`] (one page) is free RAM nothing else uses;
/// `stack_top` is the top of a stack reserved for this AP.
pub unsafe fn start_ap(
    apic_base: usize,
    apic_id: u32,
    cpu: usize,
    stack_top: u64,
    entry: ApEntry,
) -> Result<(), StartError> {
    let size = offset_of(&raw const ap_trampoline_end);
    if size > 4096 {
        return Err(StartError::TrampolineTooLarge(size));
    }
    let base = TRAMPOLINE_BASE as *mut u8;
    let cr3 = x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64();
    // SAFETY: the caller guarantees the page at TRAMPOLINE_BASE is free and
    // identity mapped; the copy is `size` <= 4096 bytes from the kernel
    // image (a different region). The data words are inside the copy, at
    // 8-aligned offsets (`.p2align 3`), written before the SIPI that makes
    // the AP read them (the ICR write is a serializing MMIO store).
    unsafe {
        core::ptr::copy_nonoverlapping(&raw const ap_trampoline_start, base, size);
        let word = |symbol: *const u8| base.add(offset_of(symbol)).cast::<u64>();
        word(&raw const ap_trampoline_cr3).write_volatile(cr3);
        word(&raw const ap_trampoline_stack).write_volatile(stack_top);
        word(&raw const ap_trampoline_entry).write_volatile(entry as usize as u64);
        word(&raw const ap_trampoline_argument).write_volatile(cpu as u64);
    }
    // Relaxed: the AP's Release store of `true` comes after this in the
    // start-up order (the IPI writes below happen after this store and
    // are what starts the AP).
    ARRIVED.store(false, Ordering::Relaxed);
    let vector = (TRAMPOLINE_BASE >> 12) as u32;
    icr_write(apic_base, apic_id, ICR_INIT)?;
    delay_us(10_000);
    icr_write(apic_base, apic_id, ICR_STARTUP | vector)?;
    delay_us(200);
    // Acquire: pairs with the AP's Release store in `arrived`.
    if !ARRIVED.load(Ordering::Acquire) {
        icr_write(apic_base, apic_id, ICR_STARTUP | vector)?;
    }
    // Acquire: as above.
    if poll_until(ARRIVAL_TIMEOUT_US, || ARRIVED.load(Ordering::Acquire)) {
        Ok(())
    } else {
        Err(StartError::NoArrival)
    }
}

/// Called by an AP first thing in Rust: the BSP may reuse the trampoline.
pub fn arrived() {
    // Release: the AP has read the data block (its stack, entry and index
    // are in registers) before the BSP may overwrite it for the next AP.
    ARRIVED.store(true, Ordering::Release);
}
