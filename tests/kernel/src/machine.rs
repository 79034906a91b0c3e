//! Bring-up state shared by the CPUs: how many are expected and how many
//! reported in, and what a CPU does when it has nothing to do.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::time::delay_us;

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
    let mut waited = 0;
    while online() < expected() {
        if waited >= timeout_us {
            return false;
        }
        delay_us(100);
        waited += 100;
    }
    true
}

/// Nothing left to do: halt with interrupts enabled, as an idle kernel does
/// (no maskable interrupt source is enabled, so only NMIs wake the CPU; a
/// stop NMI never returns here).
pub fn idle() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}
