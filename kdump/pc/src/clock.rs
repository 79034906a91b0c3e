//! The wall clock: seconds since 1970 from the CMOS real-time clock (the
//! MC146818 interface: index port 0x70, data port 0x71).

use crate::port::{inb, outb};

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
pub fn unix_seconds(year: u64, month: u64, day: u64, hour: u64, minute: u64, second: u64) -> u64 {
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

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates_become_unix_seconds() {
        // `date -u -d 2026-12-07T01:02:03 +%s`.
        assert_eq!(super::unix_seconds(2026, 12, 7, 1, 2, 3), 1_796_605_323);
        assert_eq!(super::unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        // A leap day.
        assert_eq!(super::unix_seconds(2024, 2, 29, 0, 0, 0), 1_709_164_800);
    }
}
