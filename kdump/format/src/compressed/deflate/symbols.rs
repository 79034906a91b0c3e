//! Deflate's length and distance codes (RFC 1951 section 3.2.5), computed
//! from the value's highest bits instead of looked up, and the fixed
//! code's literal/length lengths (section 3.2.6).

/// Length code index (0 = symbol 257) of a match length 3 to 258.
#[inline(always)]
pub(super) fn length_code(length: usize) -> usize {
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

/// Extra bits of length code `code`, and the length its base stands for.
#[inline(always)]
pub(super) const fn length_extra(code: usize) -> (u32, usize) {
    if code < 8 {
        (0, code + 3)
    } else if code == 28 {
        (0, 258)
    } else {
        let bits = code / 4 - 1;
        (bits as u32, ((4 + (code & 3)) << bits) + 3)
    }
}

/// Distance code of a distance 1 to 32768.
#[inline(always)]
pub(super) fn distance_code(distance: usize) -> usize {
    let x = distance - 1;
    if x < 4 {
        x
    } else {
        let log = (usize::BITS - 1 - x.leading_zeros()) as usize;
        2 * log + ((x >> (log - 1)) & 1)
    }
}

/// Extra bits of distance code `code`, and the distance its base stands
/// for.
#[inline(always)]
pub(super) const fn distance_extra(code: usize) -> (u32, usize) {
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
