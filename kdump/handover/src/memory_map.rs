//! The memory map to dump: the crashed kernel's RAM, as ranges of 16 bytes
//! (start, length; little-endian u64s), written into the control area at
//! load time as Linux writes its ELF core header when `kexec -p` loads.
//! Ranges are page aligned, non-empty, sorted and do not overlap; the
//! capture kernel leaves the reservation out of what it dumps.

use crashkit_dump_format::PhysRange;

use crate::block::{MAX_RANGES, RANGE_ENTRY_LEN};

/// Why a memory map is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// More ranges than [`MAX_RANGES`], or more than the buffer holds.
    TooMany,
    /// `ranges[index]` is empty, not page aligned, or wraps.
    BadRange {
        /// Its index.
        index: usize,
    },
    /// `ranges[index]` starts before the previous one ends.
    NotSorted {
        /// Its index.
        index: usize,
    },
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TooMany => write!(f, "more than {MAX_RANGES} memory ranges"),
            Self::BadRange { index } => {
                write!(f, "memory range {index} is empty, unaligned or wraps")
            }
            Self::NotSorted { index } => {
                write!(
                    f,
                    "memory range {index} starts before the previous one ends"
                )
            }
        }
    }
}

impl core::error::Error for MapError {}

/// Check `ranges` (see the module docs).
pub fn check(ranges: &[PhysRange]) -> Result<(), MapError> {
    const PAGE: u64 = 4096;
    if ranges.len() > MAX_RANGES {
        return Err(MapError::TooMany);
    }
    let mut previous_end = 0;
    for (index, range) in ranges.iter().enumerate() {
        let Some(end) = range.end() else {
            return Err(MapError::BadRange { index });
        };
        if range.len == 0 || !range.start.is_multiple_of(PAGE) || !range.len.is_multiple_of(PAGE) {
            return Err(MapError::BadRange { index });
        }
        if index > 0 && range.start < previous_end {
            return Err(MapError::NotSorted { index });
        }
        previous_end = end;
    }
    Ok(())
}

/// Write checked `ranges` into `buffer`; returns the bytes used.
pub fn write(ranges: &[PhysRange], buffer: &mut [u8]) -> Result<usize, MapError> {
    check(ranges)?;
    let used = ranges.len() * RANGE_ENTRY_LEN;
    let target = buffer.get_mut(..used).ok_or(MapError::TooMany)?;
    for (entry, range) in target.chunks_exact_mut(RANGE_ENTRY_LEN).zip(ranges) {
        let (start, len) = entry.split_at_mut(8);
        start.copy_from_slice(&range.start.to_le_bytes());
        len.copy_from_slice(&range.len.to_le_bytes());
    }
    Ok(used)
}

/// The ranges stored in `bytes` (`count` entries), checked, into `out`;
/// returns how many.
pub fn read(bytes: &[u8], count: usize, out: &mut [PhysRange]) -> Result<usize, MapError> {
    let len = count
        .checked_mul(RANGE_ENTRY_LEN)
        .ok_or(MapError::TooMany)?;
    let entries = bytes.get(..len).ok_or(MapError::TooMany)?;
    let out = out.get_mut(..count).ok_or(MapError::TooMany)?;
    for (entry, range) in entries.chunks_exact(RANGE_ENTRY_LEN).zip(out.iter_mut()) {
        let mut start = [0u8; 8];
        let mut length = [0u8; 8];
        start.copy_from_slice(&entry[..8]);
        length.copy_from_slice(&entry[8..]);
        *range = PhysRange::new(u64::from_le_bytes(start), u64::from_le_bytes(length));
    }
    check(out)?;
    Ok(count)
}
