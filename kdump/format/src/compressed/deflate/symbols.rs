//! Deflate's length and distance codes (RFC 1951 section 3.2.5) and the
//! fixed code's literal/length lengths (section 3.2.6). The encoder's loops
//! take them without a branch: lengths and every code's extra bits and
//! base from tables built at compile time, distances from the value's
//! highest bits.

/// Length code index (0 = symbol 257) of a match length 3 to 258 (a
/// lookup; [`length_code_of`] computes it).
#[inline(always)]
pub(super) fn length_code(length: usize) -> usize {
    usize::from(LENGTH_CODES[length.min(MAX_LENGTH)])
}

const MAX_LENGTH: usize = 258;

/// [`length_code`]'s table, by length (0 to 2 unused).
const LENGTH_CODES: [u8; MAX_LENGTH + 1] = {
    let mut codes = [0u8; MAX_LENGTH + 1];
    let mut length = 3;
    while length <= MAX_LENGTH {
        codes[length] = length_code_of(length) as u8;
        length += 1;
    }
    codes
};

/// Length code index of a match length 3 to 258, from its highest bits.
const fn length_code_of(length: usize) -> usize {
    let x = length - 3;
    if x == 255 {
        28
    } else if x < 8 {
        x
    } else {
        let log = (usize::BITS - 1 - x.leading_zeros()) as usize;
        4 * (log - 1) + ((x >> (log - 2)) & 3)
    }
}

/// Extra bits of length code `code` (0 to 28), and the length its base
/// stands for (a lookup).
#[inline(always)]
pub(super) const fn length_extra(code: usize) -> (u32, usize) {
    let (bits, base) = LENGTH_EXTRA[code & 31];
    (bits as u32, base as usize)
}

/// [`length_extra`]'s table (codes 29 to 31 unused).
const LENGTH_EXTRA: [(u8, u16); 32] = {
    let mut table = [(0, 0); 32];
    let mut code = 0;
    while code < 29 {
        let (bits, base) = length_extra_of(code);
        table[code] = (bits as u8, base as u16);
        code += 1;
    }
    table
};

/// Extra bits of length code `code`, and the length its base stands for,
/// computed.
const fn length_extra_of(code: usize) -> (u32, usize) {
    if code < 8 {
        (0, code + 3)
    } else if code == 28 {
        (0, 258)
    } else {
        let bits = code / 4 - 1;
        (bits as u32, ((4 + (code & 3)) << bits) + 3)
    }
}

/// Distance code of a distance 1 to 32768: two codes per power of two
/// of `distance - 1` from 4 on, the bit under the highest choosing; below
/// 4 the value itself, which the same sum gives (for 0 and 1, the power is
/// 0 and the bit is the value's own), so there is no branch.
#[inline(always)]
pub(super) fn distance_code(distance: usize) -> usize {
    let x = distance.saturating_sub(1);
    let log = (x | 1).ilog2() as usize;
    2 * log + ((x >> log.saturating_sub(1)) & 1)
}

/// Extra bits of distance code `code` (0 to 29), and the distance its
/// base stands for (a lookup).
#[inline(always)]
pub(super) const fn distance_extra(code: usize) -> (u32, usize) {
    let (bits, base) = DISTANCE_EXTRA[code & 31];
    (bits as u32, base as usize)
}

/// [`distance_extra`]'s table (codes 30 and 31 unused).
const DISTANCE_EXTRA: [(u8, u16); 32] = {
    let mut table = [(0, 0); 32];
    let mut code = 0;
    while code < 30 {
        let (bits, base) = distance_extra_of(code);
        table[code] = (bits as u8, base as u16);
        code += 1;
    }
    table
};

/// Extra bits of distance code `code`, and the distance its base stands
/// for, computed.
const fn distance_extra_of(code: usize) -> (u32, usize) {
    if code < 4 {
        (0, code + 1)
    } else {
        let bits = code / 2 - 1;
        (bits as u32, ((2 + (code & 1)) << bits) + 1)
    }
}

/// The fixed code's literal/length lengths (RFC 1951 3.2.6).
pub(super) const fn fixed_litlen_length(symbol: usize) -> u32 {
    match symbol {
        0..=143 => 8,
        144..=255 => 9,
        256..=279 => 7,
        _ => 8,
    }
}
