//! The machine around the capture: a random dump id, the wall clock from
//! the CMOS RTC, halt and reset.

use crate::serial::{inb, outb};

/// A dump id: RDRAND where CPUID.01H:ECX bit 30 says it exists (retried as
/// the SDM advises), mixed with the TSC and the crashed kernel's boot id.
pub fn dump_id(boot_id: u64) -> [u8; 16] {
    let has_rdrand = core::arch::x86_64::__cpuid(1).ecx & (1 << 30) != 0;
    let mut words = [0u64; 2];
    for word in &mut words {
        let mut value = 0u64;
        if has_rdrand {
            for _ in 0..10 {
                let ok: u8;
                // SAFETY: RDRAND exists (CPUID above); it writes only the
                // output register and CF.
                unsafe {
                    core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack));
                }
                if ok != 0 {
                    break;
                }
            }
        }
        // SAFETY: RDTSC reads the time-stamp counter, no side effect.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        *word = value ^ tsc.rotate_left(17) ^ boot_id.rotate_left(41);
        core::hint::spin_loop();
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&words[0].to_le_bytes());
    id[8..].copy_from_slice(&words[1].to_le_bytes());
    id
}

fn cmos(register: u8) -> u8 {
    // Bit 7 of the index port keeps NMIs disabled, as the crashed kernel
    // may have left it; port 0x70 then 0x71 (the MC146818 interface).
    outb(0x70, 0x80 | register);
    inb(0x71)
}

/// Seconds since 1970 from the CMOS real-time clock (UTC, as QEMU's
/// default `-rtc base=utc` keeps it), 0 if it reads as nonsense. Read
/// twice until equal, so an update in between is not taken half.
pub fn rtc_seconds() -> u64 {
    for _ in 0..5 {
        // Wait (bounded) while an update is in progress (status A bit 7).
        for _ in 0..100_000 {
            if cmos(0x0A) & 0x80 == 0 {
                break;
            }
        }
        let first = read_rtc();
        if first == read_rtc() {
            return first.map_or(0, |(y, mo, d, h, mi, s)| unix_seconds(y, mo, d, h, mi, s));
        }
    }
    0
}

type Clock = Option<(u64, u64, u64, u64, u64, u64)>;

fn read_rtc() -> Clock {
    let status_b = cmos(0x0B);
    let binary = status_b & 0x04 != 0;
    let decode = |raw: u8| -> u64 {
        if binary {
            u64::from(raw)
        } else {
            u64::from(raw >> 4) * 10 + u64::from(raw & 0x0F)
        }
    };
    let second = decode(cmos(0x00));
    let minute = decode(cmos(0x02));
    let hour_raw = cmos(0x04);
    let mut hour = decode(hour_raw & 0x7F);
    if status_b & 0x02 == 0 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12;
    }
    let day = decode(cmos(0x07));
    let month = decode(cmos(0x08));
    let year = 2000 + decode(cmos(0x09));
    let valid = second < 60
        && minute < 60
        && hour < 24
        && (1..=31).contains(&day)
        && (1..=12).contains(&month);
    valid.then_some((year, month, day, hour, minute, second))
}

/// Days from civil date (proleptic Gregorian) to seconds since 1970.
fn unix_seconds(year: u64, month: u64, day: u64, hour: u64, minute: u64, second: u64) -> u64 {
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + minute * 60 + second
}

/// Halt for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: interrupts stay off; HLT waits for an NMI or reset.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Reset the machine: the keyboard controller's pulse (command 0xFE on
/// port 0x64), then the reset control register (0x06 to port 0xCF9), then
/// a triple fault (an empty IDT and a breakpoint).
pub fn reset() -> ! {
    outb(0x64, 0xFE);
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
    outb(0xCF9, 0x02);
    outb(0xCF9, 0x06);
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
    let empty: [u8; 10] = [0; 10];
    // SAFETY: loading an empty IDT and raising #BP triple-faults the CPU,
    // which resets the machine; nothing runs after it.
    unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) empty.as_ptr(), options(nostack)) };
    halt()
}
