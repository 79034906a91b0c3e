//! Time: the TSC, calibrated once against the PIT.
//!
//! A kernel's clock is the TSC scaled by its frequency, so the BSP measures
//! it first: PIT channel 2 counts 10 ms (mode 0, gate
//! through port 0x61) while the TSC is read before and after. Under QEMU TCG
//! both follow the host's clock, so the result is the host TSC rate; the
//! calibration is bounded and falls back to [`FALLBACK_TSC_HZ`] if the PIT
//! never signals.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

/// The PIT's input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// PIT ticks of the calibration window (10 ms).
const PIT_TICKS: u64 = PIT_HZ / 100;
/// Used when the PIT does not answer: a plausible TSC rate.
pub const FALLBACK_TSC_HZ: u64 = 2_000_000_000;
/// TSC ticks after which the calibration gives up (far above 10 ms at any
/// real frequency).
const CALIBRATION_LIMIT_TICKS: u64 = 50_000_000_000;

/// The calibrated TSC frequency, 0 before [`calibrate`].
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads the time-stamp counter; ring 0, no memory access.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measure the TSC frequency against PIT channel 2; returns it (Hz) and
/// keeps it for [`delay_us`]. BSP only, once, before any AP runs.
pub fn calibrate() -> u64 {
    let mut control: Port<u8> = Port::new(0x61);
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel2: Port<u8> = Port::new(0x42);
    // SAFETY: the PIT (0x42, 0x43) and the system control port B (0x61)
    // are used by nothing else in this kernel; channel 2 only drives the
    // (disabled) speaker. Interrupts are off: the PIT's channel 0 interrupt
    // is masked at the PIC anyway.
    let hz = unsafe {
        // Gate low, speaker off.
        let port_b = control.read();
        control.write(port_b & !0x03);
        // Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count).
        command.write(0b1011_0000);
        channel2.write((PIT_TICKS & 0xFF) as u8);
        channel2.write((PIT_TICKS >> 8) as u8);
        // Gate high: counting starts; OUT2 (port 0x61 bit 5) rises at zero.
        control.write((port_b & !0x02) | 0x01);
        let start = rdtsc();
        let mut end = start;
        while control.read() & 0x20 == 0 {
            end = rdtsc();
            if end.wrapping_sub(start) > CALIBRATION_LIMIT_TICKS {
                end = start;
                break;
            }
        }
        control.write(port_b & !0x03);
        let elapsed = end.wrapping_sub(start);
        if elapsed == 0 {
            FALLBACK_TSC_HZ
        } else {
            elapsed.saturating_mul(PIT_HZ) / PIT_TICKS
        }
    };
    // Relaxed: read by the BSP itself afterwards; APs that use `delay_us`
    // start after this, through the APIC start-up (a full barrier).
    TSC_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Busy-wait `micros` microseconds on the TSC (bounded by the TSC itself;
/// with no calibration yet it waits [`FALLBACK_TSC_HZ`]-based time).
pub fn delay_us(micros: u64) {
    // Relaxed: see `calibrate`.
    let hz = match TSC_HZ.load(Ordering::Relaxed) {
        0 => FALLBACK_TSC_HZ,
        hz => hz,
    };
    let ticks = micros.saturating_mul(hz) / 1_000_000;
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Check `done` every 100 µs until it holds or `limit_us` microseconds of
/// waiting passed; whether it held. Every bounded wait of the test
/// kernels goes through here.
pub fn poll_until(limit_us: u64, mut done: impl FnMut() -> bool) -> bool {
    let mut waited = 0;
    loop {
        if done() {
            return true;
        }
        if waited >= limit_us {
            return false;
        }
        delay_us(100);
        waited += 100;
    }
}

/// The TSC value `micros` microseconds from now (the calibrated rate, or
/// [`FALLBACK_TSC_HZ`] before calibration), for a wait bounded in time
/// rather than in turns: a turn of a spin loop costs a VM exit under some
/// hypervisors (PAUSE exits), which stretches a turn count without bound.
pub fn tsc_after_us(micros: u64) -> u64 {
    // Relaxed: see `calibrate`.
    let hz = match TSC_HZ.load(Ordering::Relaxed) {
        0 => FALLBACK_TSC_HZ,
        hz => hz,
    };
    rdtsc().wrapping_add(micros.saturating_mul(hz) / 1_000_000)
}

/// Whether the TSC has passed `deadline` (from [`tsc_after_us`]).
pub fn tsc_passed(deadline: u64) -> bool {
    rdtsc() >= deadline
}
