//! Bring-up state shared by the CPUs: how many are expected and how many
//! reported in; what a CPU does when it has nothing to do; and a CPU made
//! unresponsive the way a hung NMI handler makes one ([`stuck_in_nmi`]).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

use crate::time::poll_until;

/// CPUs the BSP is bringing up (the MADT's, capped at `MAX_CPUS`).
static EXPECTED: AtomicUsize = AtomicUsize::new(0);
/// CPUs that finished their set-up (BSP included).
static ONLINE: AtomicUsize = AtomicUsize::new(0);

/// Set the number of CPUs being brought up (BSP, before the APs start).
pub fn set_expected(count: usize) {
    // Relaxed: the APs read it after their start-up IPI, which orders it.
    EXPECTED.store(count, Ordering::Relaxed);
}

/// CPUs being brought up.
pub fn expected() -> usize {
    // Relaxed: see `set_expected`.
    EXPECTED.load(Ordering::Relaxed)
}

/// The calling CPU finished its set-up.
pub fn report_online() {
    // Release: publishes the CPU's set-up (IDT, TSS, APIC, registration)
    // to whoever sees the count through `online` (Acquire).
    ONLINE.fetch_add(1, Ordering::Release);
}

/// CPUs online so far.
pub fn online() -> usize {
    // Acquire: pairs with `report_online`.
    ONLINE.load(Ordering::Acquire)
}

/// Wait until every expected CPU is online, at most `timeout_us`; whether
/// they all came.
pub fn wait_all_online(timeout_us: u64) -> bool {
    poll_until(timeout_us, || online() >= expected())
}

/// Nothing left to do: halt with interrupts enabled, as an idle kernel does
/// (no maskable interrupt source is enabled, so only NMIs wake the CPU; a
/// stop NMI never returns here).
pub fn idle() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Set by [`stuck_in_nmi`]'s NMI handler once the CPU is in it.
static STUCK: AtomicBool = AtomicBool::new(false);
/// Whether a CPU took [`stuck_in_nmi`]'s IDT already (one CPU only).
static STUCK_TAKEN: AtomicBool = AtomicBool::new(false);

/// The IDT of [`stuck_in_nmi`]: only an NMI entry, which never returns.
struct StuckIdt(UnsafeCell<InterruptDescriptorTable>);

// SAFETY: written once, by the one CPU that wins `STUCK_TAKEN`, before it
// loads the table; nobody else touches it.
unsafe impl Sync for StuckIdt {}

static STUCK_IDT: StuckIdt = StuckIdt(UnsafeCell::new(InterruptDescriptorTable::new()));

/// The stuck NMI handler: say so, then halt for good with NMIs blocked
/// (it never executes `iretq`), interrupts off.
///
/// Safety of the body: entered by the CPU through an interrupt gate; it
/// writes one byte of a static and never returns.
#[unsafe(naked)]
unsafe extern "C" fn stuck_nmi_stub() {
    core::arch::naked_asm!(
        "mov byte ptr [rip + {stuck}], 1",
        "2:",
        "cli",
        "hlt",
        "jmp 2b",
        stuck = sym STUCK,
    )
}

/// Make the calling CPU unresponsive the way a broken NMI handler does:
/// load an IDT whose NMI entry halts forever and send this CPU an NMI. The
/// CPU then sits in an NMI handler with NMIs blocked and interrupts off:
/// nothing reaches it any more (a shootdown's NMI stays latched). One CPU
/// only; [`is_stuck`] says when it got there.
pub fn stuck_in_nmi() -> ! {
    x86_64::instructions::interrupts::disable();
    // Relaxed: only guards against a second CPU; nothing is published.
    if STUCK_TAKEN.swap(true, Ordering::Relaxed) {
        crate::fail(format_args!("stuck_in_nmi: one CPU only"));
    }
    // SAFETY: this CPU won `STUCK_TAKEN`: the only user of the table.
    let idt: &'static mut InterruptDescriptorTable = unsafe { &mut *STUCK_IDT.0.get() };
    // SAFETY: the stub suits a vector without error code (NMI) and never
    // returns; the table is not loaded yet; no IST (the current stack is
    // fine for a handler that only halts).
    unsafe {
        idt.non_maskable_interrupt
            .set_handler_addr(VirtAddr::new_truncate(stuck_nmi_stub as *const () as u64));
    }
    idt.load();
    let icr_low = (crate::APIC_BASE + ICR_LOW) as *mut u32;
    // SAFETY: the xAPIC page is identity mapped uncacheable (boot stub) and
    // in xAPIC mode (checked at bring-up); ICR low with the "self"
    // shorthand sends this CPU an NMI, which enters the stub above.
    unsafe { icr_low.write_volatile(ICR_SELF_NMI) };
    loop {
        x86_64::instructions::hlt();
    }
}

/// Whether a CPU is stuck in [`stuck_in_nmi`]'s handler.
pub fn is_stuck() -> bool {
    // Acquire: the stub's plain byte store is the only write (x86 keeps
    // stores in order); the caller only learns that the CPU got there.
    STUCK.load(Ordering::Acquire)
}

/// xAPIC ICR, low half.
const ICR_LOW: usize = 0x300;
/// ICR: NMI delivery (0b100 << 8), level assert (1 << 14), destination
/// shorthand "self" (0b01 << 18).
const ICR_SELF_NMI: u32 = (0b100 << 8) | (1 << 14) | (0b01 << 18);
